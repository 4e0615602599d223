//! Every Rollout manifest in the seed document (fixtures/rollouts) and in the scenario
//! fixtures decodes strictly; typos are rejected with the field's path.
#![allow(clippy::disallowed_methods)] // tests read their fixtures

use rollouts_core::api::parse::from_yaml_strict;
use rollouts_core::api::Rollout;

fn yaml_files(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = format!("{}/../fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_rollout_decodes() {
    let files = yaml_files("rollouts");
    assert!(files.len() >= 10, "the seed has at least ten Rollout manifests");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let ro: Rollout = from_yaml_strict(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(ro.kind, "Rollout", "{}", path.display());
        // Decoding then encoding keeps every field (nothing was dropped).
        let original: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let round_trip = serde_json::to_value(&ro).unwrap();
        assert_eq!(strip_empty_status(round_trip), original, "{}", path.display());
    }
}

fn strip_empty_status(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        if o.get("status").is_some_and(|s| s.as_object().is_some_and(|m| m.is_empty())) {
            o.remove("status");
        }
    }
    v
}

#[test]
fn every_rollout_in_the_scenarios_decodes() {
    for path in yaml_files("scenarios") {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        for obj in doc.get("objects").and_then(|o| o.as_array()).into_iter().flatten() {
            if obj.get("kind").and_then(|k| k.as_str()) == Some("Rollout") {
                rollouts_core::api::parse::from_value_strict::<Rollout>(obj)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}

#[test]
fn typos_are_rejected_with_their_path() {
    let text = std::fs::read_to_string(format!("{}/../fixtures/rollouts/seed-basic-canary.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for (from, to, path) in [
        ("setWeight: 40", "setWieght: 40", "spec.strategy.canary.steps[2].setWieght"),
        ("containerPort: 8080", "containerPrt: 8080", "spec.template.spec.containers[0].ports[0].containerPrt"),
        ("revisionHistoryLimit: 2", "revisionHistoryLimt: 2", "spec.revisionHistoryLimt"),
    ] {
        let e = from_yaml_strict::<Rollout>(&text.replace(from, to)).unwrap_err();
        assert_eq!(e.path, path);
        assert!(e.line.is_some(), "{e}");
    }
}

#[test]
fn every_seed_analysis_template_decodes() {
    let files = yaml_files("analysis");
    assert!(files.len() >= 12, "the seed has at least twelve analysis examples");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let t: rollouts_core::api::AnalysisTemplate =
            from_yaml_strict(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!t.spec.metrics.is_empty(), "{}", path.display());
    }
}

#[test]
fn a_typo_in_a_metric_is_rejected_with_its_path() {
    let text = std::fs::read_to_string(format!("{}/../fixtures/analysis/seed-error-rate.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let e = from_yaml_strict::<rollouts_core::api::AnalysisTemplate>(&text.replace("successCondition", "sucessCondition")).unwrap_err();
    assert_eq!(e.path, "spec.metrics[0].sucessCondition");
    let e = from_yaml_strict::<rollouts_core::api::AnalysisTemplate>(&text.replace("address:", "adress:")).unwrap_err();
    assert_eq!(e.path, "spec.metrics[0].provider.prometheus.adress");
}

#[test]
fn an_unknown_replica_progress_threshold_type_is_a_decode_error_naming_the_field() {
    let text = std::fs::read_to_string(format!(
        "{}/../fixtures/rollouts/seed-basic-canary.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let with = |kind: &str| {
        text.replace(
            "canary:\n",
            &format!("canary:\n      replicaProgressThreshold: {{type: {kind}, value: 1}}\n"),
        )
    };
    for kind in ["Percent", "Pods"] {
        let ro = from_yaml_strict::<Rollout>(&with(kind)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(
            ro.spec
                .canary()
                .and_then(|c| c.replica_progress_threshold.as_ref())
                .is_some(),
            "{kind}"
        );
    }
    let e = from_yaml_strict::<Rollout>(&with("Pod")).unwrap_err();
    assert_eq!(
        e.path, "spec.strategy.canary.replicaProgressThreshold.type",
        "{e}"
    );
}
