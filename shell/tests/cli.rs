//! The CLI verbs as a person runs them: the real binary, offline for `lint`, `completion`,
//! `--help` and `version`, against the local control plane for `create`, `create analysisrun`,
//! `terminate analysisrun`, the experiment verbs and the watching verbs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{analysis_runs, field, Env};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rollouts(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollouts")).args(args).stdin(Stdio::null()).output().expect("run the CLI")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A file of its own under the temp dir for this process.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rollouts-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn lint(path: &Path) -> (i32, String, String) {
    let out = rollouts(&["lint", "-f", path.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Argo-style invalid manifests: each gives its error (the controller's wording, naming the
/// document and the field) and exit 1.
#[test]
fn lint_reports_each_invalid_manifest_with_its_field() {
    let cases = [
        ("invalid-max-surge.yaml", r#"Rollout "demo" (document 1): spec.strategy.canary.maxSurge: Invalid value: 0: MaxSurge and MaxUnavailable both can not be zero"#),
        ("invalid-multiple-docs.yaml", r#"Rollout "demo-two" (document 2): spec.strategy.canary.maxSurge: Invalid value: 0: MaxSurge and MaxUnavailable both can not be zero"#),
        ("invalid-unknown-field.yaml", r#"Rollout "demo" (document 1): spec.strategy.unknown-strategy: unknown field"#),
        ("invalid-missing-selector.yaml", r#"Rollout "demo" (document 1): spec.selector: Required value: Rollout has missing field '.spec.selector'"#),
        ("invalid-service-labels.yaml", r#"Rollout "demo" (document 3): spec.strategy.canary.canaryService: Invalid value: "demo-canary": Service "demo-canary" has unmatch label "app" in rollout"#),
        ("invalid-missing-service.yaml", r#"Rollout "demo" (document 2): spec.strategy.canary.canaryService: Invalid value: "demo-canary": service "demo-canary" not found"#),
        ("invalid-ingress-without-stable-rule.yaml", r#"Rollout "demo" (document 4): spec.strategy.canary.trafficRouting.nginx.stableIngress: Invalid value: "demo": ingress `demo` has no rules using service demo-stable backend"#),
        ("invalid-experiment-weight-without-traffic-routing.yaml", r#"Rollout "demo" (document 1): spec.strategy.canary.steps[1].experiment.templates[0].weight: Invalid value: 10: Experiment template weight cannot be set unless TrafficRouting is enabled"#),
        ("invalid-analysis-template.yaml", r#"Rollout "demo" (document 2): spec.strategy.canary.steps[1].analysis.templates: Invalid value: "templateNames: [rate]": args.service was not resolved"#),
    ];
    for (file, expected) in cases {
        let path = repo().join("fixtures/lint").join(file);
        let (code, stdout, stderr) = lint(&path);
        assert_eq!(code, 1, "{file}: exit code; stdout {stdout}");
        assert_eq!(stdout, format!("{expected}\n"), "{file}");
        assert!(stderr.contains("1 error"), "{file}: stderr {stderr}");
    }
}

/// Every complete manifest file of fixtures/ lints clean; the seed's Rollout fragments
/// (strategies without selector and template) lint clean once completed.
#[test]
fn lint_passes_every_valid_fixture() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["fixtures/lint", "fixtures/manifests"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && !name.starts_with("invalid-") {
                files.push(e.path());
            }
        }
    }
    // The NGINX seed with its Services and Ingress: the references are checked too.
    let nginx = format!(
        "{}\n---\n{}",
        std::fs::read_to_string(repo().join("fixtures/manifests/seed-nginx-services-ingress.yaml")).unwrap(),
        std::fs::read_to_string(repo().join("fixtures/rollouts/seed-nginx-canary.yaml")).unwrap()
    );
    files.push(temp_file("nginx-with-references.yaml", &nginx));
    for e in std::fs::read_dir(repo().join("fixtures/rollouts")).unwrap().flatten() {
        let mut ro: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
        let spec = ro["spec"].as_object_mut().unwrap();
        spec.entry("selector").or_insert(serde_json::json!({"matchLabels": {"app": "guestbook"}}));
        spec.entry("template").or_insert(serde_json::json!({
            "metadata": {"labels": {"app": "guestbook"}},
            "spec": {"containers": [{"name": "guestbook", "image": "argoproj/rollouts-demo:blue"}]}
        }));
        let name = e.file_name().to_string_lossy().into_owned();
        files.push(temp_file(&name, &serde_json::to_string(&ro).unwrap()));
    }
    assert!(files.len() >= 13, "{files:?}");
    for f in &files {
        let (code, stdout, stderr) = lint(f);
        assert_eq!((code, stdout.as_str()), (0, ""), "{}: {stderr}", f.display());
    }
}

/// The objects of every scenario lint as the simulator judges them: the scenarios that
/// expect an InvalidSpec from the start get the simulator's message, the others lint clean.
#[test]
fn lint_agrees_with_the_simulator_on_the_scenarios() {
    let prefix = "InvalidSpec: The Rollout \"";
    let (mut clean, mut invalid, mut skipped) = (0, 0, Vec::new());
    let mut entries: Vec<_> = std::fs::read_dir(repo().join("fixtures/scenarios")).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let source = std::fs::read_to_string(&path).unwrap();
        let scenario: Value = match serde_yaml_ng::from_str(&source) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let Some(objects) = scenario["objects"].as_array() else { continue };
        let docs: Vec<String> = objects.iter().map(|o| serde_json::to_string(o).unwrap()).collect();
        let file = temp_file(&format!("scenario-{}", path.file_name().unwrap().to_string_lossy()), &docs.join("\n---\n"));
        let (code, stdout, stderr) = lint(&file);
        let at_start: Vec<&Value> = scenario["expect"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["at"] == "0s" || e["at"] == 0)
            .filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
            .collect();
        let name = path.display().to_string();
        if let Some(e) = at_start.first() {
            let message = e["message"].as_str().unwrap();
            let (rollout, error) = message[prefix.len()..].split_once("\" is invalid: ").unwrap();
            assert_eq!(code, 1, "{name}: lint found nothing; the simulator says {message}");
            let line = format!("Rollout {rollout:?} (document ");
            assert!(
                stdout.lines().any(|l| l.starts_with(&line) && l.ends_with(&format!("): {error}"))),
                "{name}: lint says\n{stdout}{stderr}\nthe simulator: {error}"
            );
            invalid += 1;
        } else if !source.contains("InvalidSpec") {
            assert_eq!((code, stdout.as_str()), (0, ""), "{name}: {stderr}");
            clean += 1;
        } else {
            // InvalidSpec later in the run (after an event changed an object).
            skipped.push(name);
        }
    }
    assert!(clean >= 80, "only {clean} scenarios linted clean");
    assert!(invalid >= 3, "only {invalid} InvalidSpec scenarios compared (skipped {skipped:?})");
}

#[test]
fn lint_without_a_file_is_a_usage_error_and_a_missing_file_fails() {
    assert_eq!(rollouts(&["lint"]).status.code(), Some(2));
    let out = rollouts(&["lint", "-f", "/nonexistent/rollout.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/rollout.yaml"), "{}", text(&out.stderr));
}

#[test]
fn completion_writes_a_script_for_each_shell() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef rollouts"), ("fish", "complete -c rollouts"), ("powershell", "Register-ArgumentCompleter")] {
        let out = rollouts(&["completion", shell]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {}", &script[..script.len().min(300)]);
        assert!(script.contains("lint") && script.contains("analysisrun"), "{shell}: the verbs are completed");
        assert!(script.contains("experiments"), "{shell}: the experiment verbs and their aliases are completed");
    }
    assert_eq!(rollouts(&["completion", "tcsh"]).status.code(), Some(2));
}

/// Each verb group lists its experiment verb with Argo's aliases.
#[test]
fn help_lists_the_experiment_verbs() {
    for (group, aliases) in [("get", "exp, experiments"), ("list", "exp, experiment"), ("terminate", "exp, experiments"), ("retry", "exp, experiments")] {
        let out = rollouts(&[group, "--help"]);
        assert!(out.status.success(), "{group}");
        let help = text(&out.stdout);
        let line = help.lines().find(|l| l.trim_start().starts_with("experiment")).unwrap_or_else(|| panic!("{group} --help: {help}"));
        assert!(line.contains(&format!("[aliases: {aliases}]")), "{group}: {line}");
    }
    let top = text(&rollouts(&["--help"]).stdout);
    for verb in ["get", "list", "terminate", "retry"] {
        let line = top.lines().find(|l| l.trim_start().starts_with(&format!("{verb} "))).unwrap_or_else(|| panic!("{top}"));
        assert!(line.to_lowercase().contains("experiment"), "{line}");
    }
}

#[test]
fn version_short_prints_just_the_version() {
    let short = rollouts(&["version", "--short"]);
    assert_eq!(text(&short.stdout), format!("rollouts: v{}\n", env!("CARGO_PKG_VERSION")));
    let long = text(&rollouts(&["version"]).stdout);
    assert!(long.starts_with(&text(&short.stdout)) && long.lines().count() > 1, "{long}");
}

/// `simulate --plot` draws the timeline of a fixture: the weights and a line per ReplicaSet.
#[test]
fn simulate_plot_writes_the_timeline_chart() {
    let scenario = repo().join("fixtures/scenarios/canary-indefinite-pause-promote.yaml");
    let plot = temp_file("timeline.svg", "");
    std::fs::remove_file(&plot).unwrap();
    let out = rollouts(&["simulate", scenario.to_str().unwrap(), "--plot", plot.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("settled at"), "the table is printed as before: {}", text(&out.stdout));
    let svg = std::fs::read_to_string(&plot).expect("the chart was written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    for series in ["setWeight", "actual weight", "r1 ready pods", "r2 ready pods"] {
        assert!(svg.contains(&format!("\n{series}\n")), "no {series:?} series in {svg}");
    }
    // Each series is drawn and shown in the legend (the axes are the black lines).
    let lines = svg.lines().filter(|l| l.starts_with("<polyline") && !l.contains("stroke=\"#000000\"")).count();
    assert_eq!(lines, 8, "{svg}");
    assert!(svg.contains("\nset image\n") && svg.contains("\npromote\n"), "the scenario's events are marked: {svg}");

    let nowhere = repo().join("no/such/dir/timeline.svg");
    let out = rollouts(&["simulate", scenario.to_str().unwrap(), "--plot", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot write the chart to") && text(&out.stderr).contains("no/such/dir"), "{}", text(&out.stderr));
}

const TEMPLATE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: web-check}
spec:
  args: [{name: path}, {name: limit, value: "1"}]
  metrics:
    - name: answer
      count: COUNT
      interval: 1s
      successCondition: result.ok == true
      provider: {web: {url: "http://127.0.0.1:PORT/{{args.path}}", jsonPath: "{$}"}}
"#;

const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: created}
spec:
  replicas: 1
  selector: {matchLabels: {app: created}}
  template:
    metadata: {labels: {app: created}}
    spec:
      containers: [{name: app, image: "argoproj/rollouts-demo:blue"}]
  strategy:
    canary: {steps: [{setWeight: 50}, {pause: {}}]}
"#;

/// `create -f` of each kind the CRDs serve prints Argo's line; an unknown field is refused
/// with its path before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_each_kind_and_refuse_unknown_fields() {
    let env = Env::new("cli-create").await;
    let template = TEMPLATE.replace("PORT", "1").replace("COUNT", "1");
    let cluster_template = template.replace("kind: AnalysisTemplate", "kind: ClusterAnalysisTemplate").replace("web-check", &format!("web-check-{}", env.namespace));
    let run = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {name: hand-made}
spec:
  metrics: [{name: m, provider: {web: {url: "http://127.0.0.1:1/"}}}]
"#;
    let files = [
        (temp_file("ro.yaml", ROLLOUT), "rollout.argoproj.io/created created\n".to_string()),
        (temp_file("at.yaml", &template), "analysistemplate.argoproj.io/web-check created\n".to_string()),
        (temp_file("cat.yaml", &cluster_template), format!("analysistemplate.argoproj.io/web-check-{} created\n", env.namespace)),
        (temp_file("ar.json", &serde_json::to_string(&serde_yaml_ng::from_str::<Value>(run).unwrap()).unwrap()), "analysisrun.argoproj.io/hand-made created\n".to_string()),
    ];
    for (file, line) in &files {
        assert_eq!(env.cli_ok(&["create", "-f", file.to_str().unwrap()]), *line);
    }
    assert_eq!(field(&env.rollout("created").await, "/spec/strategy/canary/steps/0/setWeight"), "50");
    let bad = temp_file("bad.yaml", &ROLLOUT.replace("name: created", "name: bad").replace("canary: {steps", "canary: {stepz"));
    let out = env.cli(&["create", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("spec.strategy.canary.stepz: unknown field"), "{}", text(&out.stderr));
    assert!(env.cli(&["get", "rollout", "bad"]).status.code() == Some(1), "nothing was created");
    let two = env.cli(&["create", "-w", "-f", files[0].0.to_str().unwrap(), "-f", files[1].0.to_str().unwrap()]);
    assert!(text(&two.stderr).contains("Cannot watch multiple resources"), "{}", text(&two.stderr));
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(env.client.clone(), &rollouts_shell::kubeapi::cluster_analysis_template_resource());
    let _ = api.delete(&format!("web-check-{}", env.namespace), &Default::default()).await;
}

/// `create analysisrun --from` builds the run from the template with the arguments merged
/// (kind switched, generate-named); `terminate analysisrun` sends `spec.terminate: true`.
///
/// Not yet checked: a controller measuring the run. The controller handles only runs owned
/// by a Rollout, so a standalone run stays Pending (see the report of this change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_analysisrun_from_a_template_then_terminate_it() {
    let env = Env::new("cli-ar").await;
    env.apply(&TEMPLATE.replace("PORT", "1").replace("COUNT", "2")).await;
    let out = env.cli_ok(&["create", "analysisrun", "--from", "web-check", "-a", "path=good", "--name", "short", "--instance-id", "blue"]);
    assert_eq!(out, "analysisrun.argoproj.io/short created\n");
    let out = env.cli_ok(&["create", "ar", "--from", "web-check", "-a", "path=other"]);
    let name = out.trim().strip_prefix("analysisrun.argoproj.io/").and_then(|s| s.strip_suffix(" created")).unwrap().to_string();
    assert!(name.starts_with("web-check-") && name.len() > "web-check-".len(), "{name}");
    let runs = analysis_runs(&env).await;
    let short = runs.iter().find(|r| field(r, "/metadata/name") == "short").unwrap();
    assert_eq!(short["kind"], "AnalysisRun");
    assert_eq!(short["spec"]["args"], serde_json::json!([{"name": "path", "value": "good"}, {"name": "limit", "value": "1"}]));
    assert_eq!(short["metadata"]["labels"]["argo-rollouts.argoproj.io/controller-instance-id"], "blue");
    assert_eq!(short["spec"]["metrics"][0]["provider"]["web"]["url"], "http://127.0.0.1:1/{{args.path}}");

    // A missing argument, or both sources, are refused as Argo refuses them.
    let out = env.cli(&["create", "ar", "--from", "web-check"]);
    assert!(text(&out.stderr).contains("args.path was not resolved"), "{}", text(&out.stderr));
    let out = env.cli(&["create", "ar", "--from", "web-check", "--from-file", "x.yaml"]);
    assert!(text(&out.stderr).contains("one of --from or --from-file must be specified"), "{}", text(&out.stderr));

    assert_eq!(env.cli_ok(&["terminate", "analysisrun", "short", &name]), format!("analysisRun 'short' terminated\nanalysisRun '{name}' terminated\n"));
    for run in analysis_runs(&env).await {
        assert_eq!(run["spec"]["terminate"], true, "{}", field(&run, "/metadata/name"));
    }
    let out = env.cli(&["terminate", "ar", "no-such-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no-such-run"), "{}", text(&out.stderr));
}

/// `status --watch --timeout` and `get rollout --watch --timeout-seconds` as child
/// processes with piped output: the status line stream, the redrawn tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_verbs_stream_their_output_until_the_timeout() {
    let env = Env::new("cli-watch").await;
    env.apply(ROLLOUT).await;
    // No controller: the rollout never becomes Healthy, so the watch ends at the timeout.
    let out = env.cli(&["status", "created", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("Rollout status watch exceeded timeout"), "{}", text(&out.stderr));
    let _controller = env.controller(&["--leader-elect=false"]);
    let out = env.cli(&["get", "rollout", "created", "--watch", "--timeout-seconds", "8"]);
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(screen.contains("\x1b[H\x1b[2J"), "redrawn: {screen:?}");
    let last = screen.rsplit("\x1b[2J").next().unwrap_or_default();
    assert!(last.contains("Name:            created"), "{last}");
    assert!(last.lines().any(|l| l.starts_with("NAME") && l.contains("KIND") && l.contains("STATUS")), "{last}");
    assert!(last.contains("⟳ created"), "{last}");
}

/// A run made by `create analysisrun` is measured by the controller like Argo's standalone
/// runs (a worker of its own): a short one ends Successful; a long one is ended by
/// `terminate analysisrun`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_analysisrun_is_measured_by_the_controller_and_ends_when_terminated() {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/good",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { r#"{"ok": true}"# }
        }),
    );
    let port = support::serve(app).await;
    let env = Env::new("cli-ar-run").await;
    env.apply(&TEMPLATE.replace("PORT", &port.to_string()).replace("COUNT", "2")).await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.cli_ok(&["create", "analysisrun", "--from", "web-check", "-a", "path=good", "--name", "short"]);
    let run = support::wait_for(std::time::Duration::from_secs(60), "the short run to be Successful", || async {
        let runs = analysis_runs(&env).await;
        let run = runs.into_iter().find(|r| field(r, "/metadata/name") == "short").ok_or("no run")?;
        if field(&run, "/status/phase") == "Successful" { Ok(run) } else { Err(format!("{run}\n{}", controller.log_tail())) }
    })
    .await;
    assert_eq!(field(&run, "/status/metricResults/0/count"), "2", "{run}");

    env.apply(&TEMPLATE.replace("web-check", "long-check").replace("PORT", &port.to_string()).replace("COUNT", "1000")).await;
    env.cli_ok(&["create", "analysisrun", "--from", "long-check", "-a", "path=good", "--name", "long"]);
    support::wait_for(std::time::Duration::from_secs(60), "the long run to have measured twice", || async {
        let runs = analysis_runs(&env).await;
        let run = runs.into_iter().find(|r| field(r, "/metadata/name") == "long").ok_or("no run")?;
        let count: i64 = field(&run, "/status/metricResults/0/count").parse().unwrap_or(0);
        if count >= 2 && field(&run, "/status/phase") == "Running" { Ok(()) } else { Err(run.to_string()) }
    })
    .await;
    env.cli_ok(&["terminate", "analysisrun", "long"]);
    let run = support::wait_for(std::time::Duration::from_secs(60), "the terminated run to end", || async {
        let runs = analysis_runs(&env).await;
        let run = runs.into_iter().find(|r| field(r, "/metadata/name") == "long").ok_or("no run")?;
        if field(&run, "/status/phase") == "Successful" { Ok(run) } else { Err(run.to_string()) }
    })
    .await;
    assert_eq!(field(&run, "/status/message"), "Run Terminated", "{run}");
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    drop(controller);
}

const EXPERIMENT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata: {name: demo-exp}
spec:
  duration: 1h
  templates:
    - name: baseline
      selector: {matchLabels: {app: demo-exp, template: baseline}}
      template:
        metadata: {labels: {app: demo-exp, template: baseline}}
        spec: {containers: [{name: app, image: "argoproj/rollouts-demo:blue"}]}
    - name: canary
      selector: {matchLabels: {app: demo-exp, template: canary}}
      template:
        metadata: {labels: {app: demo-exp, template: canary}}
        spec: {containers: [{name: app, image: "argoproj/rollouts-demo:yellow"}]}
"#;

fn experiments_api(env: &Env) -> kube::Api<kube::api::DynamicObject> {
    kube::Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::experiment_resource())
}

async fn experiment(env: &Env, name: &str) -> Value {
    serde_json::to_value(experiments_api(env).get(name).await.unwrap_or_else(|e| panic!("get experiment {name}: {e}"))).unwrap()
}

/// Writes `status` as a controller would: through the status subresource, or the object
/// when the CRD has none (Argo's Experiment and AnalysisRun CRDs have none).
async fn set_status(api: &kube::Api<kube::api::DynamicObject>, name: &str, status: Value) {
    use kube::api::{Patch, PatchParams};
    let patch = serde_json::json!({"status": status});
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_or_else(|e| panic!("status of {name}: {e}"));
        }
        Err(e) => panic!("status of {name}: {e}"),
    }
}

/// The ReplicaSet an experiment controller makes for a template: owned by the experiment,
/// annotated with its template, one pod (which the plane's ReplicaSet controller creates and
/// its fake kubelet makes Ready).
fn template_replica_set(exp: &Value, template: &str, image: &str) -> k8s_openapi::api::apps::v1::ReplicaSet {
    let name = field(exp, "/metadata/name");
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("{name}-{template}"),
            "labels": {"app": "demo-exp", "template": template},
            "annotations": {"experiment.argoproj.io/name": name, "experiment.argoproj.io/template-name": template},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "name": name,
                                  "uid": field(exp, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "demo-exp", "template": template}},
            "template": {"metadata": {"labels": {"app": "demo-exp", "template": template}},
                         "spec": {"containers": [{"name": "app", "image": image}]}}
        }
    }))
    .unwrap()
}

/// The experiment verbs against the local plane, with the Experiment's objects and status
/// written by the test as a controller would (no controller runs): `create -f`, `get
/// experiment` (once and `--watch`), `list experiments` (`-A`, an empty namespace),
/// `terminate experiment` (spec.terminate), `retry experiment` (the status gone) and
/// `create --watch`; a missing experiment fails each verb with the API server's message and
/// exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_verbs_show_terminate_and_retry_an_experiment() {
    use kube::api::PostParams;
    let env = Env::new("cli-exp").await;
    let file = temp_file("experiment.yaml", EXPERIMENT);
    assert_eq!(env.cli_ok(&["create", "-f", file.to_str().unwrap()]), "experiment.argoproj.io/demo-exp created\n");
    let exp = experiment(&env, "demo-exp").await;

    let replica_sets: kube::Api<k8s_openapi::api::apps::v1::ReplicaSet> = kube::Api::namespaced(env.client.clone(), &env.namespace);
    for (template, image) in [("baseline", "argoproj/rollouts-demo:blue"), ("canary", "argoproj/rollouts-demo:yellow")] {
        replica_sets.create(&PostParams::default(), &template_replica_set(&exp, template, image)).await.expect("create the template's ReplicaSet");
    }
    let runs: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::analysis_run_resource());
    let run: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "demo-exp-check", "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "name": "demo-exp", "uid": field(&exp, "/metadata/uid"), "controller": true}]},
        "spec": {"metrics": [{"name": "m", "provider": {"web": {"url": "http://127.0.0.1:1/"}}}]}
    }))
    .unwrap();
    runs.create(&PostParams::default(), &run).await.expect("create the experiment's run");
    set_status(&runs, "demo-exp-check", serde_json::json!({
        "phase": "Running",
        "metricResults": [{"name": "m", "phase": "Running", "count": 3, "successful": 2, "failed": 1}]
    }))
    .await;
    let available_at = field(&exp, "/metadata/creationTimestamp");
    set_status(&experiments_api(&env), "demo-exp", serde_json::json!({
        "phase": "Running",
        "availableAt": available_at,
        "templateStatuses": [
            {"name": "baseline", "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "status": "Running"},
            {"name": "canary", "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "status": "Running"}
        ]
    }))
    .await;

    // Both templates' pods are up: the whole tree shows.
    let shown = support::wait_for(std::time::Duration::from_secs(60), "both template pods Running in `get experiment`", || async {
        let out = env.cli(&["get", "experiment", "demo-exp", "--no-color"]);
        let shown = text(&out.stdout);
        let running = shown.lines().filter(|l| l.contains(" Pod ") && l.contains("✔ Running") && l.ends_with("ready:1/1")).count();
        if out.status.success() && running == 2 { Ok(shown) } else { Err(format!("{shown}{}", text(&out.stderr))) }
    })
    .await;
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "Name:            demo-exp".to_string(),
            format!("Namespace:       {}", env.namespace),
            "Status:          ◌ Running".to_string(),
            "Images:          argoproj/rollouts-demo:blue (Σ:baseline)".to_string(),
            "                 argoproj/rollouts-demo:yellow (Σ:canary)".to_string(),
            String::new(),
        ],
        "{shown}"
    );
    let tree: Vec<String> = lines[6..].iter().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(tree[0], "NAME KIND STATUS AGE INFO", "{shown}");
    assert!(tree[1].starts_with("Σ demo-exp Experiment ◌ Running "), "{shown}");
    assert!(tree[2].starts_with("├──⧉ demo-exp-baseline ReplicaSet ✔ Healthy "), "{shown}");
    assert!(tree[3].starts_with("│ └──□ demo-exp-baseline-") && tree[3].ends_with("ready:1/1"), "{shown}");
    assert!(tree[4].starts_with("├──⧉ demo-exp-canary ReplicaSet ✔ Healthy "), "{shown}");
    assert!(tree[5].starts_with("│ └──□ demo-exp-canary-") && tree[5].ends_with("ready:1/1"), "{shown}");
    assert!(tree[6].starts_with("└──α demo-exp-check AnalysisRun ◌ Running ") && tree[6].ends_with("✔ 2,✖ 1"), "{shown}");
    assert_eq!(tree.len(), 7, "{shown}");
    // The alias and the watch: redrawn until the timeout, then exit 0.
    let out = env.cli(&["get", "exp", "demo-exp", "--watch", "--timeout-seconds", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let screen = text(&out.stdout);
    assert!(screen.starts_with("\x1b[H\x1b[2J"), "{screen:?}");
    assert!(screen.rsplit("\x1b[2J").next().unwrap_or_default().contains("Σ demo-exp"), "{screen}");

    // The list: a duration of 1h (Kubernetes' HumanDuration says "60m") started at creation,
    // so under an hour remains.
    let list = env.cli_ok(&["list", "experiments"]);
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "DURATION", "REMAINING", "AGE"], "{list}");
    assert_eq!(rows[1][..3], ["demo-exp", "Running", "60m"], "{list}");
    assert!(rows[1][3].ends_with('m') && rows[1][3].trim_end_matches('m').parse::<u32>().is_ok_and(|m| m < 60), "{list}");
    assert_eq!(rows.len(), 2, "{list}");
    let all = env.cli_ok(&["list", "exp", "-A"]);
    assert!(all.starts_with("NAMESPACE "), "{all}");
    assert!(all.lines().any(|l| l.split_whitespace().take(3).eq([env.namespace.as_str(), "demo-exp", "Running"])), "{all}");
    let empty = Env::new("cli-exp-empty").await;
    let out = empty.cli(&["list", "experiments"]);
    assert!(out.status.success());
    assert_eq!((text(&out.stdout).as_str(), text(&out.stderr).as_str()), ("", "No resources found.\n"));

    // Terminate: spec.terminate, the status untouched.
    assert_eq!(env.cli_ok(&["terminate", "experiment", "demo-exp"]), "experiment 'demo-exp' terminated\n");
    let terminated = experiment(&env, "demo-exp").await;
    assert_eq!(terminated["spec"]["terminate"], true, "{terminated}");
    assert_eq!(field(&terminated, "/status/phase"), "Running");

    // Retry: the status is gone, so a controller starts the experiment again.
    assert_eq!(env.cli_ok(&["retry", "experiment", "demo-exp"]), "experiment 'demo-exp' retried\n");
    let retried = experiment(&env, "demo-exp").await;
    assert!(retried.get("status").is_none_or(Value::is_null), "{retried}");
    assert_eq!(retried["spec"]["templates"].as_array().map(Vec::len), Some(2), "the spec is kept: {retried}");
    let shown = env.cli_ok(&["get", "experiment", "demo-exp", "--no-color"]);
    assert!(shown.contains("\nStatus:\n"), "{shown}");

    // A missing experiment: the API server's message and exit 1, as for the rollout verbs.
    for verb in [&["get", "experiment", "nope"][..], &["terminate", "experiment", "nope"], &["retry", "experiment", "nope"]] {
        let out = env.cli(verb);
        assert_eq!(out.status.code(), Some(1), "{verb:?}");
        assert_eq!(text(&out.stderr), "error: experiments.argoproj.io \"nope\" not found\n", "{verb:?}");
        assert_eq!(text(&out.stdout), "", "{verb:?}");
    }
    // `create --watch` of an Experiment shows its tree (until interrupted: `timeout` stops it).
    let second = temp_file("experiment-2.yaml", &EXPERIMENT.replace("name: demo-exp}", "name: demo-exp-2}"));
    let out = Command::new("timeout")
        .args(["4", env!("CARGO_BIN_EXE_rollouts"), "create", "--watch", "--no-color", "-f", second.to_str().unwrap(), "-n", &env.namespace])
        .env("KUBECONFIG", &env.kubeconfig)
        .stdin(Stdio::null())
        .output()
        .expect("run the CLI under timeout");
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(124), "still watching when stopped: {screen}{}", text(&out.stderr));
    assert!(screen.starts_with("experiment.argoproj.io/demo-exp-2 created\n\x1b[H\x1b[2J"), "{screen:?}");
    assert!(screen.contains("Name:            demo-exp-2\n") && screen.contains("Σ demo-exp-2"), "{screen}");

    // Several names: each confirmed in order, the first missing one stops the verb.
    let out = env.cli(&["terminate", "exp", "demo-exp", "nope", "demo-exp"]);
    assert_eq!((out.status.code(), text(&out.stdout).as_str()), (Some(1), "experiment 'demo-exp' terminated\n"));
}
