//! End to end, against the local control plane (`deploy/dev-cluster/`): the real controller
//! binary and the real CLI drive real ReplicaSets, whose pods the fake kubelet makes ready.
//!
//! Each test has its own namespace and its own controller (`--namespaced`), so they run in
//! parallel on one plane. When the plane cannot be built or started, every test fails and
//! says why.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use serde_json::Value;
use support::{analysis_runs, field, final_sets, healthy, lease_holder, observed, phase, replicas_of, rollout_until, sizes, step, summary, wait_for, Env};

const SEED_CANARY: &str = include_str!("../../fixtures/rollouts/seed-basic-canary.yaml");
const MINUTE: Duration = Duration::from_secs(60);

/// The seed's canary walkthrough, step for step, through the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_canary_walkthrough() {
    let env = Env::new("e2e-canary").await;
    let trace = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.trace.jsonl", env.namespace));
    let controller = env.controller(&["--leader-elect=false", "--record", trace.to_str().unwrap()]);
    env.apply(SEED_CANARY).await;
    let name = "rollouts-demo";

    // First deploy: 100% at once, steps skipped.
    let ro = rollout_until(&env, name, "the first deploy to be Healthy", MINUTE, healthy).await;
    let blue = field(&ro, "/status/stableRS");
    assert_eq!(replicas_of(&env.replica_sets(name).await, &blue), (5, 5), "{}", controller.log_tail());

    // set image yellow: paused at step 1 with 1 of 5 pods new.
    env.cli_ok(&["set", "image", name, "rollouts-demo=argoproj/rollouts-demo:yellow"]);
    let ro = rollout_until(&env, name, "the canary to pause at step 1", MINUTE, |ro| {
        observed(ro) && phase(ro) == "Paused" && step(ro) == 1
    })
    .await;
    let yellow = field(&ro, "/status/currentPodHash");
    assert_ne!(yellow, blue);
    assert_eq!(field(&ro, "/status/stableRS"), blue);
    let sets = env.replica_sets(name).await;
    assert_eq!(replicas_of(&sets, &yellow).0, 1, "{:?}", sizes(&sets));
    assert_eq!(replicas_of(&sets, &blue).0, 4, "{:?}", sizes(&sets));
    let tree = env.cli_ok(&["get", "rollout", name]);
    assert!(tree.contains("Step:          1/8") && tree.contains("Paused"), "{tree}");

    // promote: 40 / 60 / 80 with 10 s pauses, then Healthy on yellow.
    env.cli_ok(&["promote", name]);
    let mut entered = Vec::new();
    for (index, canary, stable) in [(3, 2, 3), (5, 3, 2), (7, 4, 1)] {
        let ro = rollout_until(&env, name, &format!("step {index}"), MINUTE, |ro| step(ro) >= index).await;
        assert_eq!(step(&ro), index, "a 10 s pause step was skipped: {}", summary(&ro));
        entered.push(Instant::now());
        let sets = env.replica_sets(name).await;
        assert_eq!((replicas_of(&sets, &yellow).0, replicas_of(&sets, &blue).0), (canary, stable), "at step {index}: {:?}", sizes(&sets));
    }
    let ro = rollout_until(&env, name, "Healthy on yellow", MINUTE, healthy).await;
    let done = Instant::now();
    let pauses: Vec<Duration> = entered.windows(2).map(|w| w[1] - w[0]).chain([done - entered[2]]).collect();
    for pause in &pauses {
        assert!(*pause >= Duration::from_millis(9500), "a `pause: {{duration: 10}}` lasted {pause:?}: {pauses:?}");
    }
    assert_eq!(field(&ro, "/status/stableRS"), yellow);
    let sets = env.replica_sets(name).await;
    assert_eq!(replicas_of(&sets, &yellow), (5, 5), "{:?}", sizes(&sets));
    assert_eq!(replicas_of(&sets, &blue).0, 0, "{:?}", sizes(&sets));

    // set image red, abort: Degraded, stable yellow at 5 pods, canary at 0.
    env.cli_ok(&["set", "image", name, "rollouts-demo=argoproj/rollouts-demo:red"]);
    let ro = rollout_until(&env, name, "red to pause at step 1", MINUTE, |ro| observed(ro) && phase(ro) == "Paused").await;
    let red = field(&ro, "/status/currentPodHash");
    env.cli_ok(&["abort", name]);
    let ro = rollout_until(&env, name, "the abort to make it Degraded with the canary at 0", MINUTE, |ro| phase(ro) == "Degraded").await;
    assert!(field(&ro, "/status/message").starts_with("RolloutAborted: Rollout aborted update to revision 3"), "{}", summary(&ro));
    let sets = wait_for(MINUTE, "the canary to be scaled to 0", || async {
        let sets = env.replica_sets(name).await;
        if replicas_of(&sets, &red).0 == 0 && replicas_of(&sets, &yellow) == (5, 5) { Ok(sets) } else { Err(format!("{:?}", sizes(&sets))) }
    })
    .await;
    let status = env.cli(&["status", name, "--watch=false"]);
    assert_eq!(status.status.code(), Some(1), "status of a degraded rollout exits 1");
    let count = sets.len();

    // set image yellow again: Healthy at once, no new ReplicaSet.
    env.cli_ok(&["set", "image", name, "rollouts-demo=argoproj/rollouts-demo:yellow"]);
    let ro = rollout_until(&env, name, "the rollback to yellow to be Healthy", MINUTE, healthy).await;
    assert_eq!(field(&ro, "/status/stableRS"), yellow);
    let sets = env.replica_sets(name).await;
    assert_eq!(sets.len(), count, "a new ReplicaSet was created: {:?}", sizes(&sets));
    assert_eq!(replicas_of(&sets, &yellow), (5, 5));
    env.cli_ok(&["status", name, "--timeout", "10s"]);
    drop(controller);

    // The recorded trace replays to the same actions.
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_rollouts")).arg("replay").arg(&trace).output().unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success() && stdout.contains("every action matched"), "{stdout}{}", String::from_utf8_lossy(&replay.stderr));
}

const BLUE_GREEN: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: bg-active}
spec:
  selector: {app: bg}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: bg-preview}
spec:
  selector: {app: bg}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bg}
spec:
  replicas: 2
  revisionHistoryLimit: 2
  selector: {matchLabels: {app: bg}}
  template:
    metadata: {labels: {app: bg}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
  strategy:
    blueGreen:
      activeService: bg-active
      previewService: bg-preview
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 10
"#;

async fn selector_hash(env: &Env, service: &str) -> String {
    let api: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);
    let svc = api.get(service).await.unwrap();
    svc.spec.and_then(|s| s.selector).and_then(|s| s.get("rollouts-pod-template-hash").cloned()).unwrap_or_default()
}

/// The seed's blue-green case: test on the preview service, then promote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_blue_green_preview_then_promote() {
    let env = Env::new("e2e-bluegreen").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(BLUE_GREEN).await;
    let ro = rollout_until(&env, "bg", "the first deploy to be Healthy", MINUTE, healthy).await;
    let blue = field(&ro, "/status/stableRS");
    assert_eq!(selector_hash(&env, "bg-active").await, blue, "{}", controller.log_tail());

    env.cli_ok(&["set", "image", "bg", "app=argoproj/rollouts-demo:green"]);
    let ro = rollout_until(&env, "bg", "the new ReplicaSet behind the preview service, paused", MINUTE, |ro| {
        observed(ro) && phase(ro) == "Paused"
    })
    .await;
    let green = field(&ro, "/status/currentPodHash");
    wait_for(MINUTE, "preview to select green and active to stay on blue", || async {
        let (preview, active) = (selector_hash(&env, "bg-preview").await, selector_hash(&env, "bg-active").await);
        if preview == green && active == blue { Ok(()) } else { Err(format!("preview={preview} active={active}")) }
    })
    .await;
    let sets = env.replica_sets("bg").await;
    assert_eq!(replicas_of(&sets, &green).0, 2, "{:?}", sizes(&sets));
    assert_eq!(replicas_of(&sets, &blue).0, 2, "{:?}", sizes(&sets));

    env.cli_ok(&["promote", "bg"]);
    let promoted = Instant::now();
    wait_for(MINUTE, "active to switch to green", || async {
        let active = selector_hash(&env, "bg-active").await;
        if active == green { Ok(()) } else { Err(format!("active={active}")) }
    })
    .await;
    rollout_until(&env, "bg", "Healthy on green", MINUTE, |ro| healthy(ro) && field(ro, "/status/stableRS") == green).await;
    // The old ReplicaSet keeps its pods for scaleDownDelaySeconds (10 s), then goes to 0.
    assert_eq!(replicas_of(&env.replica_sets("bg").await, &blue).0, 2, "blue was scaled down before the delay");
    wait_for(MINUTE, "blue to be scaled down after the delay", || async {
        let sets = env.replica_sets("bg").await;
        if replicas_of(&sets, &blue).0 == 0 { Ok(()) } else { Err(format!("{:?}", sizes(&sets))) }
    })
    .await;
    let waited = promoted.elapsed();
    assert!(waited >= Duration::from_secs(9), "blue was scaled down {waited:?} after the promotion, before scaleDownDelaySeconds");
    drop(controller);
}

const SHORT_CANARY: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: restart}
spec:
  replicas: 5
  revisionHistoryLimit: 3
  selector: {matchLabels: {app: restart}}
  template:
    metadata: {labels: {app: restart}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {duration: 3}
        - setWeight: 40
        - pause: {duration: 3}
        - setWeight: 60
        - pause: {duration: 3}
        - setWeight: 80
        - pause: {duration: 3}
"#;

/// Runs the short canary to the end; with `kill_at`, SIGKILLs the controller once the rollout
/// reaches that step and starts a new one two seconds later.
async fn run_short_canary(env: &Env, kill_at: Option<i64>) -> Vec<(String, i32, String, String)> {
    let mut controller = env.controller(&["--leader-elect=false"]);
    env.apply(SHORT_CANARY).await;
    rollout_until(env, "restart", "the first deploy", MINUTE, healthy).await;
    env.cli_ok(&["set", "image", "restart", "app=argoproj/rollouts-demo:yellow"]);
    if let Some(index) = kill_at {
        rollout_until(env, "restart", "the step to kill at", MINUTE, |ro| observed(ro) && step(ro) >= index).await;
        controller.kill();
        tokio::time::sleep(Duration::from_secs(2)).await;
        controller = env.controller(&["--leader-elect=false"]);
    }
    let ro = rollout_until(env, "restart", "the rollout to finish", 2 * MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash") && step(ro) == 8
    })
    .await;
    // Let the old ReplicaSet's scale-down land.
    let stable = field(&ro, "/status/stableRS");
    wait_for(MINUTE, "only the stable ReplicaSet to have pods", || async {
        let sets = env.replica_sets("restart").await;
        let others: i32 = sets.iter().filter(|rs| rs.metadata.name.as_deref() != Some(&format!("restart-{stable}"))).map(support::desired).sum();
        if others == 0 { Ok(()) } else { Err(format!("{:?}", sizes(&sets))) }
    })
    .await;
    let out = final_sets(env, "restart").await;
    drop(controller);
    out
}

/// The controller SIGKILLed in the middle of a rollout continues from the status and ends with
/// exactly the ReplicaSets of an uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_mid_rollout_continues_from_status() {
    let (plain, killed) = (Env::new("e2e-uninterrupted").await, Env::new("e2e-killed").await);
    let (reference, restarted) = tokio::join!(run_short_canary(&plain, None), run_short_canary(&killed, Some(3)));
    assert_eq!(reference, restarted, "the ReplicaSets after a restart differ from an uninterrupted run");
    assert_eq!(reference.len(), 2, "{reference:?}");
}

/// Two controllers: only the leader acts; when it is killed, the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_one_leader_and_failover() {
    let env = Env::new("e2e-leader").await;
    let election = ["--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s", "--leader-election-retry-period", "500ms"];
    let a = env.controller(&election);
    let b = env.controller(&election);
    let leader_pid = wait_for(MINUTE, "a leader", || async { lease_holder(&env).await.ok_or_else(|| "no holder".to_string()) }).await;
    let (mut leader, follower) = if leader_pid == a.pid() { (a, b) } else { (b, a) };
    assert_eq!(leader.pid(), leader_pid, "the lease holder is neither controller");

    env.apply(SEED_CANARY).await;
    rollout_until(&env, "rollouts-demo", "the first deploy", MINUTE, healthy).await;
    env.cli_ok(&["set", "image", "rollouts-demo", "rollouts-demo=argoproj/rollouts-demo:yellow"]);
    rollout_until(&env, "rollouts-demo", "the pause at step 1", MINUTE, |ro| observed(ro) && step(ro) == 1 && phase(ro) == "Paused").await;
    assert!(leader.requests(&["kind=\"replicasets\"", "verb=\"Create\""]) >= 2, "the leader created no ReplicaSet: {}", leader.log_tail());
    for kind in ["replicasets", "rollouts", "pods"] {
        let n = follower.requests(&[&format!("kind=\"{kind}\"")]);
        assert_eq!(n, 0, "the follower sent {n} requests about {kind}: {}", follower.log_tail());
    }

    leader.kill();
    env.cli_ok(&["promote", "rollouts-demo"]);
    let ro = rollout_until(&env, "rollouts-demo", "the follower to take over and finish", 2 * MINUTE, healthy).await;
    assert_eq!(field(&ro, "/status/stableRS"), field(&ro, "/status/currentPodHash"));
    assert_eq!(lease_holder(&env).await, Some(follower.pid()));
    assert!(follower.requests(&["kind=\"replicasets\"", "verb=\"Patch\""]) > 0, "{}", follower.log_tail());
}

const INVALID_AND_VALID: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: invalid}
spec:
  replicas: 2
  selector: {matchLabels: {app: invalid}}
  template:
    metadata: {labels: {app: invalid}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps:
        - setWeight: 150
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: valid}
spec:
  replicas: 2
  selector: {matchLabels: {app: valid}}
  template:
    metadata: {labels: {app: valid}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"#;

/// An invalid Rollout gets the InvalidSpec condition naming the field; the others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rollout_gets_invalid_spec_and_others_are_served() {
    let env = Env::new("e2e-invalid").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(INVALID_AND_VALID).await;
    let ro = rollout_until(&env, "invalid", "the InvalidSpec condition", MINUTE, |ro| phase(ro) == "Degraded").await;
    let conditions = ro.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let invalid = conditions.iter().find(|c| c["type"] == "InvalidSpec").unwrap_or_else(|| panic!("no InvalidSpec: {conditions:?}"));
    assert_eq!(invalid["status"], "True");
    assert!(invalid["message"].as_str().unwrap_or_default().contains("setWeight"), "{invalid}");
    assert!(env.replica_sets("invalid").await.is_empty(), "an invalid rollout got a ReplicaSet");

    rollout_until(&env, "valid", "the valid rollout to be Healthy", MINUTE, healthy).await;
    env.cli_ok(&["set", "image", "valid", "app=argoproj/rollouts-demo:green"]);
    rollout_until(&env, "valid", "the valid rollout to pause at 50%", MINUTE, |ro| observed(ro) && phase(ro) == "Paused").await;
    let out = env.cli(&["promote", "no-such-rollout"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-rollout") && stderr.contains("not found"), "{stderr}");
    drop(controller);
}

const WEB_ANALYSIS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: web-token}
stringData: {token: s3cr3t-t0ken}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: web-check}
spec:
  args:
    - name: port
    - name: token
      valueFrom: {secretKeyRef: {name: web-token, key: token}}
  metrics:
    - name: webmetric
      interval: 1s
      count: 2
      successCondition: "result.ok && result.successPercent >= 0.90"
      provider:
        web:
          url: "http://127.0.0.1:{{args.port}}/measurement"
          headers:
            - {key: Authorization, value: "Bearer {{args.token}}"}
          jsonPath: "{$.data}"
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: analyzed}
spec:
  replicas: 2
  selector: {matchLabels: {app: analyzed}}
  template:
    metadata: {labels: {app: analyzed}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis:
            templates: [{templateName: web-check}]
            args: [{name: port, value: "PORT"}]
"#;

/// A real HTTP server answering the web metric: `ok` decides the answer; it checks the bearer
/// token resolved from the Secret and counts the requests.
async fn metric_server(ok: std::sync::Arc<std::sync::atomic::AtomicBool>, hits: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> u16 {
    use std::sync::atomic::Ordering;
    let app = axum::Router::new().route(
        "/measurement",
        axum::routing::get(move |headers: http::HeaderMap| {
            let (ok, hits) = (ok.clone(), hits.clone());
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cr3t-t0ken") {
                    return (http::StatusCode::UNAUTHORIZED, "wrong token".to_string());
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let percent = if ok.load(Ordering::SeqCst) { 0.97 } else { 0.42 };
                (http::StatusCode::OK, serde_json::json!({"data": {"ok": true, "successPercent": percent}}).to_string())
            }
        }),
    );
    support::serve(app).await
}

/// An analysis step measured by the controller against a real HTTP server, with a Secret
/// argument: a passing run lets the rollout finish, a failing one aborts it; the secret never
/// reaches the run's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_step_with_a_web_metric_against_a_real_server() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let (ok, hits) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
    let port = metric_server(ok.clone(), hits.clone()).await;
    let env = Env::new("e2e-analysis").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(&WEB_ANALYSIS.replace("PORT", &port.to_string())).await;
    rollout_until(&env, "analyzed", "the first deploy", MINUTE, healthy).await;

    env.cli_ok(&["set", "image", "analyzed", "app=argoproj/rollouts-demo:green"]);
    let ro = rollout_until(&env, "analyzed", "the passing analysis to finish the rollout", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    let runs = analysis_runs(&env).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(field(&runs[0], "/status/phase"), "Successful", "{}\n{}", runs[0], controller.log_tail());
    assert_eq!(field(&runs[0], "/status/metricResults/0/count"), "2");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the server was asked {} times", hits.load(Ordering::SeqCst));
    assert!(!runs[0].to_string().contains("s3cr3t-t0ken"), "the secret is in the run: {}", runs[0]);
    assert_eq!(field(&ro, "/status/stableRS"), field(&ro, "/status/currentPodHash"));

    ok.store(false, Ordering::SeqCst);
    env.cli_ok(&["set", "image", "analyzed", "app=argoproj/rollouts-demo:red"]);
    let ro = rollout_until(&env, "analyzed", "the failing analysis to abort the rollout", MINUTE, |ro| phase(ro) == "Degraded").await;
    assert_eq!(field(&ro, "/status/abort"), "true", "{}", summary(&ro));
    let runs = analysis_runs(&env).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(field(&runs[1], "/status/phase"), "Failed", "{}", runs[1]);
    let red = field(&ro, "/status/currentPodHash");
    wait_for(MINUTE, "the failed canary to be scaled to 0", || async {
        let sets = env.replica_sets("analyzed").await;
        if replicas_of(&sets, &red).0 == 0 { Ok(()) } else { Err(format!("{:?}", sizes(&sets))) }
    })
    .await;
    drop(controller);
}

/// The verbs the walkthroughs do not use, on the cluster: `list rollouts`, `pause` (and
/// `promote` to resume), `undo` to the previous template, `restart` (pods replaced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pause_undo_and_restart_through_the_cli() {
    let env = Env::new("e2e-verbs").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(SEED_CANARY).await;
    let name = "rollouts-demo";
    let ro = rollout_until(&env, name, "the first deploy", MINUTE, healthy).await;
    let blue = field(&ro, "/status/stableRS");
    let list = env.cli_ok(&["list", "rollouts"]);
    assert!(list.lines().any(|l| l.starts_with(name) && l.contains("Canary") && l.contains("Healthy")), "{list}");

    env.cli_ok(&["pause", name]);
    rollout_until(&env, name, "the user pause", MINUTE, |ro| observed(ro) && phase(ro) == "Paused").await;
    env.cli_ok(&["promote", name]);
    rollout_until(&env, name, "the resume", MINUTE, healthy).await;

    env.cli_ok(&["set", "image", name, "rollouts-demo=argoproj/rollouts-demo:yellow"]);
    rollout_until(&env, name, "the pause at step 1", MINUTE, |ro| observed(ro) && step(ro) == 1 && phase(ro) == "Paused").await;
    env.cli_ok(&["undo", name]);
    let ro = rollout_until(&env, name, "the undo to blue", MINUTE, |ro| healthy(ro) && field(ro, "/status/currentPodHash") == blue).await;
    assert_eq!(field(&ro, "/status/stableRS"), blue, "{}", summary(&ro));
    let images = field(&ro, "/spec/template/spec/containers/0/image");
    assert_eq!(images, "argoproj/rollouts-demo:blue");

    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let before: std::collections::BTreeSet<String> =
        pods.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|p| p.metadata.name).collect();
    env.cli_ok(&["restart", name]);
    wait_for(2 * MINUTE, "every pod to be replaced by the restart", || async {
        let now = pods.list(&Default::default()).await.map_err(|e| e.to_string())?.items;
        let old = now.iter().filter(|p| p.metadata.name.as_ref().is_some_and(|n| before.contains(n))).count();
        let ro = env.rollout(name).await;
        if old == 0 && healthy(&ro) && now.len() == 5 { Ok(()) } else { Err(format!("{old} old pods of {}; {}", now.len(), summary(&ro))) }
    })
    .await;
    drop(controller);
}

/// Argo's ephemeral-metadata e2e manifest (test/e2e/functional/ephemeral-labels.yaml), unchanged.
const EPHEMERAL_LABELS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: ephemeral-label
spec:
  replicas: 2
  strategy:
    canary:
      stableMetadata:
        labels:
          role: stable
      canaryMetadata:
        labels:
          role: canary
      steps:
      - setWeight: 50
      - pause: {}
  revisionHistoryLimit: 2
  selector:
    matchLabels:
      app: ephemeral-label
  template:
    metadata:
      labels:
        app: ephemeral-label
    spec:
      containers:
      - name: ephemeral-label
        image: argoproj/rollouts-demo:blue
        ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        resources:
          requests:
            memory: 32Mi
            cpu: 5m
"#;

/// `(name, uid, labels)` of the running pods of one pod-template hash, by name.
async fn pods_of(env: &Env, hash: &str) -> Vec<(String, String, std::collections::BTreeMap<String, String>)> {
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let params = kube::api::ListParams::default().labels(&format!("rollouts-pod-template-hash={hash}"));
    let mut pods: Vec<_> = api
        .list(&params)
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.metadata.name.unwrap_or_default(), p.metadata.uid.unwrap_or_default(), p.metadata.labels.unwrap_or_default()))
        .collect();
    pods.sort();
    pods
}

/// Waits until the pods of `hash` number `count` and every one carries `want` (`None`: the
/// label is absent); returns them.
async fn pods_labelled(
    env: &Env,
    hash: &str,
    count: usize,
    want: &[(&str, Option<&str>)],
    what: &str,
) -> Vec<(String, String, std::collections::BTreeMap<String, String>)> {
    wait_for(MINUTE, what, || async {
        let pods = pods_of(env, hash).await;
        let labelled = pods.iter().all(|(_, _, labels)| want.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == *v));
        if pods.len() == count && labelled { Ok(pods) } else { Err(format!("{pods:?}")) }
    })
    .await
}

/// Name and uid of each pod.
fn identities(pods: &[(String, String, std::collections::BTreeMap<String, String>)]) -> Vec<(String, String)> {
    pods.iter().map(|(n, u, _)| (n.clone(), u.clone())).collect()
}

/// Ephemeral metadata on the cluster, with Argo's e2e manifest and the steps of Argo's
/// `TestEphemeralMetadata` (canary): the first pods get the stable labels; the canary's pod
/// the canary labels while the stable's keep theirs; a change of `canaryMetadata` replaces
/// the label on the running canary pod; after `promote` the same pods (names and uids
/// unchanged: patched, not restarted) carry the stable labels, and a change of
/// `stableMetadata` moves them again. No ReplicaSet is created for any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_metadata_moves_in_place_when_the_canary_becomes_stable() {
    let env = Env::new("e2e-ephemeral").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(EPHEMERAL_LABELS).await;
    let name = "ephemeral-label";
    let ro = rollout_until(&env, name, "the first deploy to be Healthy", MINUTE, healthy).await;
    let blue = field(&ro, "/status/stableRS");
    pods_labelled(&env, &blue, 2, &[("role", Some("stable")), ("app", Some(name))], "the first pods to carry role=stable").await;

    env.cli_ok(&["set", "image", name, "ephemeral-label=argoproj/rollouts-demo:yellow"]);
    let ro = rollout_until(&env, name, "the canary to pause at setWeight 50", MINUTE, |ro| {
        observed(ro) && phase(ro) == "Paused" && step(ro) == 1
    })
    .await;
    let yellow = field(&ro, "/status/currentPodHash");
    let canary = pods_labelled(&env, &yellow, 1, &[("role", Some("canary"))], "the canary pod to carry role=canary").await;
    pods_labelled(&env, &blue, 1, &[("role", Some("stable"))], "the stable pod to keep role=stable").await;
    let rs = env.replica_sets(name).await;
    let yellow_rs = rs.iter().find(|r| r.metadata.name.as_deref() == Some(&format!("{name}-{yellow}"))).expect("the canary ReplicaSet");
    let recorded = yellow_rs.metadata.annotations.as_ref().and_then(|a| a.get("rollout.argoproj.io/ephemeral-metadata"));
    assert_eq!(recorded.map(String::as_str), Some(r#"{"labels":{"role":"canary"}}"#), "{:?}", yellow_rs.metadata);

    // Argo's PatchSpec: canaryMetadata {role: null, role2: canary2}.
    let rollouts: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::rollout_resource());
    let patch = |v: Value| kube::api::Patch::Merge(v);
    rollouts
        .patch(name, &Default::default(), &patch(serde_json::json!({"spec": {"strategy": {"canary": {"canaryMetadata": {"labels": {"role": null, "role2": "canary2"}}}}}})))
        .await
        .expect("patch canaryMetadata");
    let changed =
        pods_labelled(&env, &yellow, 1, &[("role", None), ("role2", Some("canary2"))], "the canary pod to carry role2=canary2 only").await;
    assert_eq!(identities(&changed), identities(&canary), "the canary pod was replaced, not patched");

    env.cli_ok(&["promote", name]);
    let ro = rollout_until(&env, name, "Healthy on yellow", MINUTE, |ro| healthy(ro) && field(ro, "/status/stableRS") == yellow).await;
    let stable = pods_labelled(&env, &yellow, 2, &[("role", Some("stable")), ("role2", None)], "the promoted pods to carry role=stable").await;
    let kept = identities(&stable);
    assert!(identities(&canary).iter().all(|p| kept.contains(p)), "the canary pod {canary:?} is not among the stable pods {stable:?}");

    rollouts
        .patch(name, &Default::default(), &patch(serde_json::json!({"spec": {"strategy": {"canary": {"stableMetadata": {"labels": {"role": null, "role2": "stable2"}}}}}})))
        .await
        .expect("patch stableMetadata");
    let moved = pods_labelled(&env, &yellow, 2, &[("role", None), ("role2", Some("stable2")), ("app", Some(name))], "the pods to carry role2=stable2 only").await;
    assert_eq!(identities(&moved), kept, "the stable pods were replaced, not patched");
    let sets = env.replica_sets(name).await;
    assert_eq!(sets.len(), 2, "a ReplicaSet was created for metadata: {:?}", sizes(&sets));
    assert_eq!(field(&env.rollout(name).await, "/status/currentPodHash"), field(&ro, "/status/currentPodHash"));
    drop(controller);
}

#[path = "e2e/workload.rs"]
mod workload;

#[path = "e2e/experiment.rs"]
mod experiment;

/// The API writes of a canary step (promote, setWeight, the next pause), from the
/// controller's own request counter: a guard against writes creeping back (a status write
/// per reconcile, a new Event per repeat). `cargo bench -p rollouts --bench cluster` gives
/// the figure; this test only bounds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_step_costs_few_api_writes() {
    let env = Env::new("e2e-writes").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: writes}
spec:
  replicas: 4
  selector: {matchLabels: {app: writes}}
  template:
    metadata: {labels: {app: writes}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps: [{pause: {}}, {setWeight: 25}, {pause: {}}, {setWeight: 50}, {pause: {}}, {setWeight: 75}, {pause: {}}]
"#,
    )
    .await;
    rollout_until(&env, "writes", "the first deploy", MINUTE, healthy).await;
    env.cli_ok(&["set", "image", "writes", "app=argoproj/rollouts-demo:green"]);
    let writes = |verb: &str, kind: &str| controller.requests(&[&format!("verb=\"{verb}\""), &format!("kind=\"{kind}\"")]);
    let mut per_step = Vec::new();
    for pause in [0, 2, 4] {
        rollout_until(&env, "writes", &format!("the pause at step {pause}"), MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == pause
        })
        .await;
        // The pause's own writes land before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = (writes("Patch", "rollouts"), writes("Patch", "replicasets"), writes("Create", "events") + writes("Patch", "events"));
        env.cli_ok(&["promote", "writes"]);
        rollout_until(&env, "writes", &format!("the pause at step {}", pause + 2), MINUTE, |ro| {
            phase(ro) == "Paused" && step(ro) == pause + 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = (writes("Patch", "rollouts"), writes("Patch", "replicasets"), writes("Create", "events") + writes("Patch", "events"));
        per_step.push((after.0 - before.0, after.1 - before.1, after.2 - before.2));
    }
    for (i, &(status, sets, events)) in per_step.iter().enumerate() {
        // One scale up and one scale down.
        assert_eq!(sets, 2, "ReplicaSet writes at step {i}: {per_step:?}\n{}", controller.log_tail());
        // A status write per reconcile made this 7. Now: resumed and advanced, then the next
        // pause with the pods recounted; a third when the step outlasts the 10 s a recount
        // may wait (a slow machine).
        assert!(status <= 3, "Rollout writes at step {i}: {per_step:?}\n{}", controller.log_tail());
        // Each event (resumed, step completed twice, scaled up and down, paused) is one write
        // until the object's budget is spent.
        assert!(events <= 6, "event writes at step {i}: {per_step:?}\n{}", controller.log_tail());
    }
}

/// How often `needle` appears in the controller's log.
fn log_count(controller: &support::Controller, needle: &str) -> usize {
    std::fs::read_to_string(&controller.log).unwrap_or_default().matches(needle).count()
}

/// A rollout with nothing to do gives its worker up (`--worker-idle-timeout`); its resync
/// starts one from the cache that writes nothing, its series stay, and the next change (a
/// new image, a promote) is carried out as by a worker that never left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_rollout_lets_its_worker_go_and_the_next_change_wakes_it() {
    let env = Env::new("e2e-idle").await;
    let controller = env.controller(&["--leader-elect=false", "--worker-idle-timeout=2s", "--rollout-resync=5s"]);
    env.apply(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: idle}
spec:
  replicas: 2
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"#,
    )
    .await;
    rollout_until(&env, "idle", "the first deploy", MINUTE, healthy).await;
    let let_go = format!("rollout={}/idle", env.namespace);
    let asleep = |c: &support::Controller| {
        std::fs::read_to_string(&c.log).unwrap_or_default().lines().filter(|l| l.contains("worker let go") && l.contains(&let_go)).count()
    };
    wait_for(MINUTE, "the idle rollout's worker to be let go", || async {
        if asleep(&controller) >= 1 { Ok(()) } else { Err(controller.log_tail()) }
    })
    .await;
    let versions = |ro: &Value, sets: &[k8s_openapi::api::apps::v1::ReplicaSet]| {
        let mut v = vec![field(ro, "/metadata/resourceVersion")];
        v.extend(sets.iter().map(|rs| rs.metadata.resource_version.clone().unwrap_or_default()));
        v
    };
    let before = versions(&env.rollout("idle").await, &env.replica_sets("idle").await);
    let writes = || controller.requests(&["verb=\"Patch\""]) + controller.requests(&["verb=\"Create\""]) + controller.requests(&["verb=\"Update\""]);
    let writes_before = writes();
    assert!(controller.metrics_text().contains("rollout_info{"), "the series of an idle rollout stay\n{}", controller.log_tail());
    // Two resyncs (every 5 s): each starts a worker that reconciles from the cache, finds
    // nothing to do, and is let go again.
    let woken = log_count(&controller, "waking an idle rollout");
    wait_for(MINUTE, "two resyncs of the idle rollout", || async {
        if log_count(&controller, "waking an idle rollout") >= woken + 2 && asleep(&controller) >= 3 {
            Ok(())
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err(controller.log_tail())
        }
    })
    .await;
    let after = versions(&env.rollout("idle").await, &env.replica_sets("idle").await);
    assert_eq!(before, after, "a resync of an idle rollout wrote to it\n{}", controller.log_tail());
    assert_eq!(writes(), writes_before, "a resync of an idle rollout wrote\n{}", controller.log_tail());

    // The next change reaches the rollout as ever.
    env.cli_ok(&["set", "image", "idle", "app=argoproj/rollouts-demo:green"]);
    let ro = rollout_until(&env, "idle", "the pause after 50 %", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1).await;
    let sets = env.replica_sets("idle").await;
    let (canary, stable) = (field(&ro, "/status/currentPodHash"), field(&ro, "/status/stableRS"));
    assert_eq!((replicas_of(&sets, &canary).0, replicas_of(&sets, &stable).0), (1, 1), "{:?}\n{}", sizes(&sets), controller.log_tail());
    // Paused without a timer, it is let go again; the promote wakes it.
    let idle_before = asleep(&controller);
    wait_for(MINUTE, "the paused rollout's worker to be let go", || async {
        if asleep(&controller) > idle_before { Ok(()) } else { Err(controller.log_tail()) }
    })
    .await;
    env.cli_ok(&["promote", "idle"]);
    rollout_until(&env, "idle", "the promoted rollout to be Healthy on green", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash") && step(ro) == 2
    })
    .await;

    // Deleted while idle: its series go.
    wait_for(MINUTE, "the Healthy rollout's worker to be let go", || async {
        if log_count(&controller, "worker let go") > idle_before + 1 { Ok(()) } else { Err(controller.log_tail()) }
    })
    .await;
    let rollouts: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::rollout_resource());
    rollouts.delete("idle", &Default::default()).await.expect("delete the rollout");
    wait_for(MINUTE, "the deleted rollout's series to go", || async {
        if controller.metrics_text().contains("rollout_info{") { Err(controller.log_tail()) } else { Ok(()) }
    })
    .await;
}

/// More rollouts than `--max-workers` (here 1): those that wait (for their pods, for a timed
/// pause to end) give their workers up, the pool wakes them at their timer or their next
/// event, and each finishes as ever, with no ReplicaSet created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_over_max_workers_give_up_their_workers_while_they_wait_and_finish_as_ever() {
    let env = Env::new("e2e-cap").await;
    let controller = env.controller(&["--leader-elect=false", "--max-workers=1"]);
    let names = ["cap-a", "cap-b", "cap-c"];
    for name in names {
        env.apply(&format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: argoproj/rollouts-demo:blue}}]
  strategy:
    canary:
      steps: [{{setWeight: 50}}, {{pause: {{duration: 4s}}}}]
"#
        ))
        .await;
    }
    for name in names {
        rollout_until(&env, name, "the first deploy", MINUTE, healthy).await;
    }
    for name in names {
        env.cli_ok(&["set", "image", name, "app=argoproj/rollouts-demo:green"]);
    }
    for name in names {
        rollout_until(&env, name, "the update to be Healthy on green", MINUTE, |ro| {
            healthy(ro) && step(ro) == 2 && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
        })
        .await;
        let sets = env.replica_sets(name).await;
        assert_eq!(sets.len(), 2, "{name}: {:?}\n{}", sizes(&sets), controller.log_tail());
    }
    assert!(log_count(&controller, "too many workers; letting a waiting one go") >= 1, "no worker was let go\n{}", controller.log_tail());
    assert!(log_count(&controller, "waking an idle rollout") >= 1, "no rollout was woken\n{}", controller.log_tail());
    let creates = controller.requests(&["kind=\"replicasets\"", "verb=\"Create\""]);
    assert_eq!(creates, 6, "one ReplicaSet per rollout and version, each created once\n{}", controller.log_tail());
}
