//! Experiments on the local plane: a standalone Experiment's ReplicaSet, Service, duration
//! and scale-down delay, with the real controller and the fake kubelet's pods.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::support::{field, healthy, phase, rollout_until, step, summary, wait_for, Env};
use super::MINUTE;

/// One template of 2 pods with a Service, 5 s once available, then 5 s before scaling down.
const STANDALONE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata: {name: exp}
spec:
  duration: 5s
  scaleDownDelaySeconds: 5
  templates:
    - name: canary
      replicas: 2
      selector: {matchLabels: {app: exp}}
      service: {}
      template:
        metadata: {labels: {app: exp}}
        spec:
          containers:
            - name: app
              image: argoproj/rollouts-demo:blue
              ports: [{name: http, containerPort: 8080}]
"#;

/// The Experiment as JSON.
pub async fn experiment(env: &Env, name: &str) -> Value {
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::experiment_resource());
    serde_json::to_value(api.get(name).await.unwrap_or_else(|e| panic!("get experiment {name}: {e}"))).unwrap()
}

/// `phase`, `message` and the template statuses, for failure messages.
pub fn experiment_summary(ex: &Value) -> String {
    format!(
        "phase={} message={:?} availableAt={} templates={} runs={}",
        field(ex, "/status/phase"),
        field(ex, "/status/message"),
        field(ex, "/status/availableAt"),
        field(ex, "/status/templateStatuses"),
        field(ex, "/status/analysisRuns"),
    )
}

/// Waits until the Experiment satisfies `ok`.
pub async fn experiment_until(env: &Env, name: &str, what: &str, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    wait_for(timeout, what, || async {
        let ex = experiment(env, name).await;
        if ok(&ex) { Ok(ex) } else { Err(experiment_summary(&ex)) }
    })
    .await
}

/// `(reason, note)` of the Events recorded on an object of `kind`, oldest first.
pub async fn events_on(env: &Env, kind: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<K8sEvent> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut events: Vec<K8sEvent> = api
        .list(&Default::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().is_some_and(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)))
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0).or(e.metadata.creation_timestamp.as_ref().map(|t| t.0)));
    events.into_iter().map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default())).collect()
}

fn seconds(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap_or_else(|e| panic!("a time, not {rfc3339:?}: {e}")).as_second()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_experiment_runs_its_duration_then_scales_down_after_the_delay_and_removes_its_service() {
    let env = Env::new("e2e-experiment").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(STANDALONE).await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.namespace);
    let svc_api: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);

    // Running: the template's ReplicaSet has its 2 pods, its Service selects them.
    let ex = experiment_until(&env, "exp", "the Experiment to be Running", MINUTE, |ex| {
        field(ex, "/status/phase") == "Running" && field(ex, "/status/templateStatuses/0/serviceName") == "exp-canary"
    })
    .await;
    let available_at = seconds(&field(&ex, "/status/availableAt"));
    let rs = rs_api.get("exp-canary").await.expect("the template's ReplicaSet");
    let hash = rs.metadata.labels.as_ref().and_then(|l| l.get("rollouts-pod-template-hash")).cloned().unwrap_or_default();
    assert!(!hash.is_empty(), "{:?}", rs.metadata.labels);
    assert_eq!(field(&ex, "/status/templateStatuses/0/podTemplateHash"), hash);
    assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let owner = rs.metadata.owner_references.clone().unwrap_or_default();
    assert!(owner.iter().any(|o| o.kind == "Experiment" && o.name == "exp" && o.controller == Some(true)), "{owner:?}");
    let annotations = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("experiment.argoproj.io/template-name").map(String::as_str), Some("canary"));
    let svc = svc_api.get("exp-canary").await.expect("the template's Service");
    let selector = svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    assert_eq!(selector.get("rollouts-pod-template-hash"), Some(&hash), "{selector:?}");
    assert_eq!(svc.spec.as_ref().and_then(|s| s.ports.as_ref()).map(|p| p[0].port), Some(8080));

    // Successful once the duration has passed since availableAt; the ReplicaSet keeps its pods
    // until the scale-down deadline, 5 s later.
    let ex = experiment_until(&env, "exp", "the Experiment to be Successful", MINUTE, |ex| field(ex, "/status/phase") == "Successful").await;
    let succeeded = Instant::now();
    let now = jiff::Timestamp::now().as_second();
    assert!(now >= available_at + 5, "Successful {}s after availableAt: {}", now - available_at, experiment_summary(&ex));
    assert_eq!(field(&ex, "/status/templateStatuses/0/status"), "Successful", "{}", experiment_summary(&ex));
    let rs = wait_for(MINUTE, "the scale-down deadline on the ReplicaSet", || async {
        let rs = rs_api.get("exp-canary").await.map_err(|e| e.to_string())?;
        let deadline = rs.metadata.annotations.as_ref().and_then(|a| a.get("scale-down-deadline")).cloned();
        match deadline {
            Some(d) => Ok((rs, d)),
            None => Err(format!("{:?}", rs.metadata.annotations)),
        }
    })
    .await;
    let deadline = seconds(&rs.1);
    assert!(deadline >= now + 3 && deadline <= now + 6, "deadline {} s after the success", deadline - now);

    // Scaled to 0 at the deadline, not before; then the Service goes.
    let scaled = wait_for(MINUTE, "the ReplicaSet to be scaled to 0", || async {
        let rs = rs_api.get("exp-canary").await.map_err(|e| e.to_string())?;
        let replicas = rs.spec.as_ref().and_then(|s| s.replicas);
        if replicas == Some(0) { Ok(Instant::now()) } else { Err(format!("replicas {replicas:?}\n{}", controller.log_tail())) }
    })
    .await;
    assert!(scaled - succeeded >= Duration::from_secs(3), "scaled down {:?} after the success", scaled - succeeded);
    assert!(jiff::Timestamp::now().as_second() >= deadline, "scaled down before the deadline");
    wait_for(MINUTE, "the Service to be deleted", || async {
        match svc_api.get_opt("exp-canary").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err(experiment_summary(&experiment(&env, "exp").await)),
        }
    })
    .await;
    let ex = experiment_until(&env, "exp", "the status to drop the Service", MINUTE, |ex| {
        ex.pointer("/status/templateStatuses/0/serviceName").is_none()
    })
    .await;
    assert_eq!(field(&ex, "/status/phase"), "Successful");
    assert_eq!(field(&ex, "/status/templateStatuses/0/replicas"), "0", "{}", experiment_summary(&ex));

    // Argo's events, on the Experiment.
    let reasons: Vec<String> = events_on(&env, "Experiment", "exp").await.into_iter().map(|(r, _)| r).collect();
    for want in ["ExperimentPending", "ExperimentRunning", "ExperimentSuccessful", "TemplateRunning", "ScalingReplicaSet"] {
        assert!(reasons.iter().any(|r| r == want), "no {want} event: {reasons:?}");
    }
    let metrics = controller.metrics_text();
    let info = format!(r#"experiment_info{{namespace="{}",name="exp",phase="Successful"}} 1"#, env.namespace);
    assert!(metrics.contains(&info), "{metrics}");

    // Settled: no more writes (a status that changed at every reconcile would write forever).
    let writes = || controller.requests(&[r#"kind="experiments""#, r#"verb="Patch""#]) + controller.requests(&[r#"kind="replicasets""#, r#"verb="Patch""#]);
    let before = writes();
    assert!(before > 0, "the status was written: {metrics}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(writes(), before, "writes after the Experiment settled:\n{}", controller.log_tail());
    drop(controller);
}

/// Two Job templates: one whose Job succeeds, one whose Job's pod exits 1.
const JOB_TEMPLATES: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: job-pass}
spec:
  metrics:
    - name: check
      provider:
        job:
          spec:
            backoffLimit: 0
            template:
              spec:
                containers: [{name: check, image: "argoproj/rollouts-demo:check"}]
                restartPolicy: Never
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: job-fail}
spec:
  metrics:
    - name: check
      provider:
        job:
          spec:
            backoffLimit: 0
            template:
              metadata:
                annotations: {fake-kubelet/exit-code: "1"}
              spec:
                containers: [{name: check, image: "argoproj/rollouts-demo:check"}]
                restartPolicy: Never
"#;

/// A standalone Experiment with one required analysis of `template`, no duration.
fn analysed(name: &str, template: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  scaleDownDelaySeconds: 0
  templates:
    - name: baseline
      selector: {{matchLabels: {{app: {name}}}}}
      template:
        metadata: {{labels: {{app: {name}}}}}
        spec:
          containers: [{{name: app, image: "argoproj/rollouts-demo:blue"}}]
  analyses:
    - name: check
      templateName: {template}
      requiredForCompletion: true
      args: [{{name: hash, value: "{{{{templates.baseline.podTemplateHash}}}}"}}]
"#
    )
}

/// An Experiment's AnalysisRun is created by the Experiment (its arguments resolved), measured
/// by a run worker of its own (a Job), and decides the Experiment: a passing required analysis
/// completes it, a failing one fails it; either way its ReplicaSet is scaled to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiments_job_analysis_decides_it() {
    let env = Env::new("e2e-experiment-analysis").await;
    let trace = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.trace.jsonl", env.namespace));
    let controller = env.controller(&["--leader-elect=false", "--record", trace.to_str().unwrap()]);
    env.apply(JOB_TEMPLATES).await;
    env.apply(&analysed("passes", "job-pass")).await;
    env.apply(&analysed("fails", "job-fail")).await;

    let ex = experiment_until(&env, "passes", "the required analysis to complete the Experiment", MINUTE, |ex| {
        field(ex, "/status/phase") == "Successful"
    })
    .await;
    assert_eq!(field(&ex, "/status/analysisRuns/0/analysisRun"), "passes-check", "{}", experiment_summary(&ex));
    assert_eq!(field(&ex, "/status/analysisRuns/0/phase"), "Successful", "{}", experiment_summary(&ex));
    assert_eq!(field(&ex, "/status/message"), "Required AnalysisRuns completed", "{}", experiment_summary(&ex));
    let runs = super::support::analysis_runs(&env).await;
    let run = runs.iter().find(|r| field(r, "/metadata/name") == "passes-check").expect("the run passes-check");
    assert_eq!(field(run, "/metadata/ownerReferences/0/kind"), "Experiment");
    assert_eq!(field(run, "/spec/args/0/value"), field(&ex, "/status/templateStatuses/0/podTemplateHash"), "{run}");

    let ex = experiment_until(&env, "fails", "the failing analysis to fail the Experiment", MINUTE, |ex| {
        field(ex, "/status/phase") == "Failed"
    })
    .await;
    assert_eq!(field(&ex, "/status/analysisRuns/0/phase"), "Failed", "{}", experiment_summary(&ex));

    let rs_api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.namespace);
    for name in ["passes-baseline", "fails-baseline"] {
        wait_for(MINUTE, &format!("{name} to be scaled to 0"), || async {
            let rs = rs_api.get(name).await.map_err(|e| e.to_string())?;
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas);
            if replicas == Some(0) { Ok(()) } else { Err(format!("replicas {replicas:?}\n{}", controller.log_tail())) }
        })
        .await;
    }
    let reasons: Vec<String> = events_on(&env, "Experiment", "fails").await.into_iter().map(|(r, _)| r).collect();
    assert!(reasons.iter().any(|r| r == "AnalysisRunFailed") && reasons.iter().any(|r| r == "ExperimentFailed"), "{reasons:?}");
    drop(controller);

    // The recorded trace (Experiment workers and run workers alike) replays to the same actions.
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_rollouts")).arg("replay").arg(&trace).output().unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success() && stdout.contains("every action matched"), "{stdout}{}", String::from_utf8_lossy(&replay.stderr));
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains(r#""rollout":"experiment "#), "the Experiment workers' reconciles are recorded");
}

/// A canary whose second step is an experiment of the canary's pod template with one required
/// analysis of `template`, then an indefinite pause.
fn rollout_with_experiment_step(name: &str, template: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: "argoproj/rollouts-demo:blue"}}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - experiment:
            scaleDownDelaySeconds: 0
            templates:
              - {{name: baseline, specRef: stable}}
              - {{name: canary, specRef: canary}}
            analyses:
              - name: check
                templateName: {template}
                requiredForCompletion: true
        - pause: {{}}
"#
    )
}

/// The Experiments of the namespace owned by `rollout`, as JSON.
async fn experiments_of(env: &Env, rollout: &str) -> Vec<Value> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::experiment_resource());
    api.list(&Default::default())
        .await
        .expect("list Experiments")
        .items
        .into_iter()
        .filter(|e| e.metadata.owner_references.iter().flatten().any(|o| o.kind == "Rollout" && o.name == rollout))
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// The canary `experiment` step on the local plane: the rollout creates the Experiment
/// (`<rollout>-<hash>-<revision>-<step>`, owned by it), whose worker runs the stable and canary
/// templates and a Job analysis. A failing analysis aborts the rollout with Argo's message; a
/// passing one completes the step and the rollout moves on to the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_step_aborts_the_rollout_when_its_analysis_fails_and_moves_on_when_it_passes() {
    let env = Env::new("e2e-experiment-step").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(JOB_TEMPLATES).await;
    env.apply(&rollout_with_experiment_step("fails", "job-fail")).await;
    env.apply(&rollout_with_experiment_step("passes", "job-pass")).await;
    for name in ["fails", "passes"] {
        rollout_until(&env, name, "the first deploy to be Healthy", MINUTE, healthy).await;
        env.cli_ok(&["set", "image", name, "app=argoproj/rollouts-demo:yellow"]);
    }

    // Failing analysis: the Experiment fails, the rollout aborts with Argo's message.
    let ro = rollout_until(&env, "fails", "the rollout to abort", MINUTE, |ro| phase(ro) == "Degraded").await;
    let message = field(&ro, "/status/message");
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2: Experiment analysis phase is error/failed"),
        "{}\n{}",
        summary(&ro),
        controller.log_tail()
    );
    let experiments = experiments_of(&env, "fails").await;
    assert_eq!(experiments.len(), 1, "{experiments:?}");
    let ex = &experiments[0];
    let canary = field(&ro, "/status/currentPodHash");
    assert_eq!(field(ex, "/metadata/name"), format!("fails-{canary}-2-1"));
    assert_eq!(field(ex, "/status/phase"), "Failed", "{}", experiment_summary(ex));
    let warnings: Vec<String> = events_on(&env, "Rollout", "fails").await.into_iter().map(|(r, _)| r).collect();
    assert!(warnings.iter().any(|r| r == "AnalysisRunFailed"), "the Experiment's run failure on the Rollout: {warnings:?}");

    // Passing analysis: the step completes, the rollout pauses at the next step.
    let ro = rollout_until(&env, "passes", "the rollout to move on to the pause", MINUTE, |ro| {
        phase(ro) == "Paused" && step(ro) == 2
    })
    .await;
    assert_eq!(field(&ro, "/status/abort"), "<none>", "{}", summary(&ro));
    let experiments = experiments_of(&env, "passes").await;
    assert_eq!(experiments.len(), 1, "{experiments:?}");
    assert_eq!(field(&experiments[0], "/status/phase"), "Successful", "{}", experiment_summary(&experiments[0]));
    let templates: Vec<String> = experiments[0]["status"]["templateStatuses"]
        .as_array()
        .map(|t| t.iter().map(|t| field(t, "/name")).collect())
        .unwrap_or_default();
    assert_eq!(templates, ["baseline", "canary"]);
    drop(controller);
}
