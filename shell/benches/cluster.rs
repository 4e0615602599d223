//! Measurements of the controller on the local control plane (`deploy/dev-cluster/`):
//!
//! 1. reaction time: from the promote patch (what `rollouts promote` sends to the status
//!    subresource) to the next ReplicaSet scale write, as seen by a watch; median of 20;
//! 2. API requests per canary step: the controller's own count
//!    (`controller_clientset_k8s_request_total`, watches excluded) from one pause to the next,
//!    over a `setWeight` step;
//! 3. the controller's resident memory, idle, with 100 Healthy rollouts.
//!
//! Run with `cargo bench -p rollouts --bench cluster` (it starts the plane like the e2e tests;
//! `ROLLOUTS_E2E_STATE` picks its state directory). The test command only compiles it.
//!
//! `ROLLOUTS_BENCH_SCALE=N` runs the scale mode instead (see `scale/mod.rs`): N rollouts, the
//! controller's memory, its restart, and kube-controller-manager beside it.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "scale/mod.rs"]
mod scale;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use rollouts_shell::kubeapi::rollout_resource;
use serde_json::{json, Value};
use support::{field, summary, wait_for, Env};

const TRIES: usize = 20;

fn rollout_yaml() -> String {
    let mut steps = String::new();
    for i in 1..=TRIES {
        steps.push_str(&format!("        - pause: {{}}\n        - setWeight: {}\n", i * 100 / TRIES));
    }
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: react}}
spec:
  replicas: {TRIES}
  selector: {{matchLabels: {{app: react}}}}
  template:
    metadata: {{labels: {{app: react}}}}
    spec:
      containers: [{{name: app, image: argoproj/rollouts-demo:blue}}]
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps:
{steps}"#
    )
}

fn step(ro: &Value) -> i64 {
    ro.pointer("/status/currentStepIndex").and_then(Value::as_i64).unwrap_or(-1)
}

fn paused_at(ro: &Value, index: i64) -> bool {
    field(ro, "/status/phase") == "Paused" && step(ro) == index
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(n) = std::env::var("ROLLOUTS_BENCH_SCALE") {
        let n = n.parse().unwrap_or_else(|_| panic!("ROLLOUTS_BENCH_SCALE={n:?}: expected a number of rollouts"));
        scale::run(n).await;
        return;
    }
    let env = Env::new("bench-cluster").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(&rollout_yaml()).await;
    wait_for(Duration::from_secs(120), "the first deploy", || async {
        let ro = env.rollout("react").await;
        if field(&ro, "/status/phase") == "Healthy" { Ok(()) } else { Err(summary(&ro)) }
    })
    .await;
    env.cli_ok(&["set", "image", "react", "app=argoproj/rollouts-demo:green"]);

    let rollouts: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &rollout_resource());
    let sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut reactions = Vec::new();
    let mut requests = Vec::new();
    // Writes per step, by (kind, verb): one entry per try.
    let mut writes = std::collections::BTreeMap::<(String, String), Vec<f64>>::new();
    for i in 0..TRIES {
        let pause = 2 * i as i64;
        wait_for(Duration::from_secs(120), &format!("the pause at step {pause}"), || async {
            let ro = env.rollout("react").await;
            if paused_at(&ro, pause) { Ok(()) } else { Err(summary(&ro)) }
        })
        .await;
        // Let the status writes of the pause settle before counting.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = count(&controller);
        let kinds_before = by_kind_verb(&controller);
        // A watch that starts now: its first events replay the current ReplicaSets.
        let mut stream = watcher::watcher(sets.clone(), watcher::Config::default()).boxed();
        let mut known = std::collections::BTreeMap::new();
        loop {
            match stream.next().await {
                Some(Ok(watcher::Event::InitApply(rs))) => {
                    known.insert(rs.metadata.name.clone().unwrap_or_default(), support::desired(&rs));
                }
                Some(Ok(watcher::Event::InitDone)) => break,
                Some(Ok(_)) => {}
                other => panic!("the ReplicaSet watch failed: {other:?}"),
            }
        }
        let sent = Instant::now();
        rollouts
            .patch_status("react", &PatchParams::default(), &Patch::Merge(json!({"status": {"pauseConditions": null}})))
            .await
            .expect("the promote patch");
        let reacted = loop {
            match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                Ok(Some(Ok(watcher::Event::Apply(rs)))) => {
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    if known.get(&name) != Some(&support::desired(&rs)) {
                        break sent.elapsed();
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("no ReplicaSet scale write within 30 s of the promote: {other:?}\n{}", controller.log_tail()),
            }
        };
        reactions.push(reacted.as_secs_f64() * 1000.0);
        // The step is done when the rollout pauses again (or, after the last, is Healthy).
        wait_for(Duration::from_secs(120), "the step to complete", || async {
            let ro = env.rollout("react").await;
            let done = if i + 1 < TRIES { paused_at(&ro, pause + 2) } else { field(&ro, "/status/phase") == "Healthy" };
            if done { Ok(()) } else { Err(summary(&ro)) }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        requests.push((count(&controller) - before) as f64);
        let kinds_after = by_kind_verb(&controller);
        for (key, n) in &kinds_after {
            let delta = n - kinds_before.get(key).copied().unwrap_or(0.0);
            if is_write(&key.1) {
                writes.entry(key.clone()).or_insert_with(|| vec![0.0; TRIES])[i] = delta;
            }
        }
    }
    println!("reaction, promote patch -> ReplicaSet scale write (ms), {TRIES} tries: median {:.1}, min {:.1}, max {:.1}",
        median(reactions.clone()),
        reactions.iter().copied().fold(f64::MAX, f64::min),
        reactions.iter().copied().fold(0.0, f64::max));
    println!("API requests per canary step (promote -> setWeight -> next pause, watches excluded): median {}, min {}, max {}",
        median(requests.clone()),
        requests.iter().copied().fold(f64::MAX, f64::min),
        requests.iter().copied().fold(0.0, f64::max));
    let totals: Vec<f64> = (0..TRIES).map(|i| writes.values().map(|v| v[i]).sum()).collect();
    println!("API writes per canary step (promote -> setWeight -> next pause): median {}, min {}, max {}",
        median(totals.clone()),
        totals.iter().copied().fold(f64::MAX, f64::min),
        totals.iter().copied().fold(0.0, f64::max));
    for ((kind, verb), per_step) in &writes {
        println!("  {kind} {verb} per step: median {}, min {}, max {}, mean {:.2}",
            median(per_step.clone()),
            per_step.iter().copied().fold(f64::MAX, f64::min),
            per_step.iter().copied().fold(0.0, f64::max),
            per_step.iter().sum::<f64>() / TRIES as f64);
    }
    println!("requests by kind and verb over the whole run:\n{}", by_kind(&controller));
    drop(controller);

    // Memory: 100 rollouts, idle.
    let env = Env::new("bench-memory").await;
    let mut controller = env.controller(&["--leader-elect=false"]);
    let mut yaml = String::new();
    for i in 0..100 {
        yaml.push_str(&format!(
            "---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {{name: idle-{i}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: idle-{i}}}}}\n  template:\n    metadata: {{labels: {{app: idle-{i}}}}}\n    spec:\n      containers: [{{name: app, image: argoproj/rollouts-demo:blue}}]\n  strategy:\n    canary:\n      steps: [{{setWeight: 50}}, {{pause: {{}}}}]\n"
        ));
    }
    env.apply(&yaml).await;
    wait_for(Duration::from_secs(300), "100 rollouts to be Healthy", || async {
        let list = Api::<DynamicObject>::namespaced_with(env.client.clone(), &env.namespace, &rollout_resource())
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let healthy = list.items.iter().filter(|o| o.data.pointer("/status/phase").and_then(Value::as_str) == Some("Healthy")).count();
        if healthy == 100 { Ok(()) } else { Err(format!("{healthy} Healthy")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(controller.running(), "{}", controller.log_tail());
    let status = std::fs::read_to_string(format!("/proc/{}/status", controller.pid())).unwrap();
    let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: ?");
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: ?");
    println!("controller memory idle with 100 Healthy rollouts: {rss:?}, peak {hwm:?}");
    let before = count(&controller);
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!("API requests in 10 s idle with 100 rollouts: {}", count(&controller) - before);
}

/// Requests other than watches.
fn count(controller: &support::Controller) -> u64 {
    controller.requests(&[]) - controller.requests(&["verb=\"Watch\""])
}

/// Whether a request verb writes (a status write is a `rollouts` Patch like a spec write).
fn is_write(verb: &str) -> bool {
    matches!(verb, "Create" | "Update" | "Patch" | "Delete")
}

/// `controller_clientset_k8s_request_total` summed by (kind, verb).
fn by_kind_verb(controller: &support::Controller) -> std::collections::BTreeMap<(String, String), f64> {
    let mut totals = std::collections::BTreeMap::<(String, String), f64>::new();
    for line in controller.metrics_text().lines().filter(|l| l.starts_with("controller_clientset_k8s_request_total{")) {
        let label = |k: &str| line.split(&format!("{k}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string();
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *totals.entry((label("kind"), label("verb"))).or_default() += value;
    }
    totals
}

fn by_kind(controller: &support::Controller) -> String {
    let totals = by_kind_verb(controller);
    totals.iter().map(|((k, v), n)| format!("  {k} {v}: {n}")).collect::<Vec<_>>().join("\n")
}
