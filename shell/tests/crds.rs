//! The CRDs in `deploy/crds/` and `deploy/install.yaml` are generated from the core's types:
//! this test fails when the committed files differ from what the types generate, and
//! `UPDATE_CRDS=1 cargo test -p rollouts --test crds` rewrites them.
//!
//! It also checks that every schema is structural and loads on Kubernetes 1.20 (no defaults,
//! no CEL rules), that the Rollout CRD stays under the 256 KiB limit of the
//! `last-applied-configuration` annotation, and that every Rollout, analysis and Experiment object in
//! `fixtures/` fits its schema: nothing the core reads would be pruned by the apiserver.

use std::path::{Path, PathBuf};

use rollouts_shell::crds::{self, check, Kind};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1")
}

/// Compares `path` with `expected`, or rewrites it under `UPDATE_CRDS=1`.
fn compare(path: &Path, expected: &str) -> Result<(), String> {
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, expected).unwrap();
        return Ok(());
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == expected {
        return Ok(());
    }
    let line = committed.lines().zip(expected.lines()).position(|(a, b)| a != b).map_or_else(
        || committed.lines().count().min(expected.lines().count()) + 1,
        |i| i + 1,
    );
    Err(format!("{} differs from the generated file from line {line} on", path.display()))
}

#[test]
fn committed_crds_and_install_bundle_are_generated_from_the_types() {
    let mut stale = Vec::new();
    for kind in Kind::ALL {
        let text = crds::render(kind).unwrap();
        stale.extend(compare(&deploy().join("crds").join(kind.file_name()), &text).err());
    }
    let parts: Vec<(String, String)> = crds::install_parts()
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(deploy().join(&name))
                .unwrap_or_else(|e| panic!("deploy/{name} cannot be read: {e}"));
            (name, text)
        })
        .collect();
    stale.extend(compare(&deploy().join("install.yaml"), &crds::install_bundle(&parts)).err());
    assert!(stale.is_empty(), "{}\nregenerate with: {}", stale.join("\n"), crds::REGENERATE);
}

#[test]
fn every_schema_is_structural_and_loads_on_1_20() {
    for kind in Kind::ALL {
        let crd = kind.crd().unwrap();
        let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
        let found = check::structural_violations(schema);
        assert!(found.is_empty(), "{}: {}", kind.kind(), found.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
        let text = serde_json::to_string(&crd).unwrap();
        for banned in ["x-kubernetes-validations", "\"default\":", "$ref"] {
            assert!(!text.contains(banned), "{} CRD contains {banned}, which 1.20 refuses", kind.kind());
        }
        // `kubectl apply` stores the whole object in an annotation limited to 256 KiB.
        assert!(text.len() < 256 * 1024, "{} CRD is {} bytes: too big for client-side apply", kind.kind(), text.len());
    }
}

#[test]
fn rollout_crd_has_argos_names_columns_and_subresources() {
    let crd = Kind::Rollout.crd().unwrap();
    assert_eq!(crd.metadata.name.as_deref(), Some("rollouts.argoproj.io"));
    assert_eq!(crd.spec.names.short_names, Some(vec!["ro".to_string()]));
    let version = &crd.spec.versions[0];
    let columns: Vec<_> = version.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["Desired", "Current", "Up-to-date", "Available", "Age"]);
    let sub = version.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    assert_eq!(sub.scale.as_ref().unwrap().status_replicas_path, ".status.HPAReplicas");
    // Argo's AnalysisRun has no status subresource: its controller patches the object.
    assert!(Kind::AnalysisRun.crd().unwrap().spec.versions[0].subresources.is_none());
}

#[test]
fn experiment_crd_has_argos_names_columns_and_no_status_subresource() {
    let crd = Kind::Experiment.crd().unwrap();
    assert_eq!(crd.metadata.name.as_deref(), Some("experiments.argoproj.io"));
    assert_eq!(crd.spec.names.short_names, Some(vec!["exp".to_string()]));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    let columns: Vec<_> =
        version.additional_printer_columns.as_ref().unwrap().iter().map(|c| (c.name.as_str(), c.json_path.as_str())).collect();
    assert_eq!(columns, [("Status", ".status.phase"), ("Age", ".metadata.creationTimestamp")]);
    // Argo's controller patches an Experiment's status into the object and Argo's `retry
    // experiment` patches `{"status": null}` into it: a status subresource would drop both.
    assert!(version.subresources.is_none());
    let schema = version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
    let status = &schema.properties.as_ref().unwrap()["status"];
    for field in ["phase", "message", "templateStatuses", "availableAt", "conditions", "analysisRuns"] {
        assert!(status.properties.as_ref().unwrap().contains_key(field), "status.{field} is kept by the apiserver");
    }
    let experiment = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "e"},
        "spec": {
            "duration": "30s", "scaleDownDelaySeconds": 5, "progressDeadlineSeconds": 60,
            "templates": [{"name": "canary", "replicas": 2, "selector": {"matchLabels": {"app": "x"}},
                           "service": {"name": "svc"},
                           "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}],
            "analyses": [{"name": "a", "templateName": "t", "requiredForCompletion": true, "args": [{"name": "x", "value": "1"}]}]
        },
        "status": {"phase": "Running", "availableAt": "2024-01-01T00:00:00Z",
                   "templateStatuses": [{"name": "canary", "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                                         "availableReplicas": 2, "status": "Running", "serviceName": "svc", "podTemplateHash": "abc",
                                         "lastTransitionTime": "2024-01-01T00:00:00Z"}],
                   "analysisRuns": [{"name": "a", "analysisRun": "e-a", "phase": ""}]}
    });
    let found = check::fit(schema, &experiment);
    assert!(found.is_empty(), "{}", found.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
}

/// Every YAML document in `dir` (recursively) whose kind has a CRD.
fn fixture_objects(dir: &Path, out: &mut Vec<(PathBuf, Kind, serde_json::Value)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            fixture_objects(&path, out);
            continue;
        }
        if !matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            continue;
        }
        // `rollouts lint`'s invalid inputs are wrong on purpose.
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("invalid-")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let Ok(value) = <serde_json::Value as serde::Deserialize>::deserialize(doc) else { continue };
            collect(&path, &value, out);
        }
    }
}

/// Objects with a CRD kind anywhere in `value` (scenarios embed them in lists). A reference
/// to one (an owner reference: apiVersion and kind, no metadata) is not an object.
fn collect(path: &Path, value: &serde_json::Value, out: &mut Vec<(PathBuf, Kind, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) => {
            let kind = map.get("kind").and_then(|k| k.as_str()).and_then(Kind::from_kind);
            let argo = map.get("apiVersion").and_then(|v| v.as_str()) == Some("argoproj.io/v1alpha1");
            match kind {
                Some(kind) if argo && map.contains_key("metadata") => out.push((path.to_path_buf(), kind, value.clone())),
                _ => map.values().for_each(|v| collect(path, v, out)),
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(path, v, out)),
        _ => {}
    }
}

#[test]
fn every_fixture_object_fits_its_crd() {
    let mut objects = Vec::new();
    fixture_objects(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures"), &mut objects);
    assert!(objects.len() >= 20, "expected the fixtures' rollouts and templates, found {}", objects.len());
    let mut problems = Vec::new();
    for (path, kind, value) in &objects {
        let crd = kind.crd().unwrap();
        let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
        for finding in check::fit(schema, value) {
            problems.push(format!("{}: {} {finding}", path.display(), kind.kind()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
