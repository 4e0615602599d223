//! The scale mode of the cluster bench (`ROLLOUTS_BENCH_SCALE=N`): N one-replica canary
//! rollouts with one Service each, on the local plane, and the same plane's
//! kube-controller-manager as the yardstick.
//!
//! It prints, in this order:
//!
//! 1. the time until all N are Healthy, the controller's RSS then (anonymous and file-backed
//!    parts) and again once the idle workers were let go (`--worker-idle-timeout`), the same
//!    after one update (`set image`) of all of them, and the series count of
//!    `controller_clientset_k8s_request_total`;
//! 2. kube-controller-manager's RSS before and after N Deployments (1 replica each) got their
//!    ReplicaSets, in the rollouts' namespace, and the controller's RSS beside them (the
//!    Deployments, their ReplicaSets and pods are what it must not grow with);
//! 3. reaction, 20 tries each: a Deployment's template change to kube-controller-manager's
//!    ReplicaSet write, and a Rollout promote to our ReplicaSet write (both seen by a watch),
//!    medians, min/max and their ratio;
//! 4. a restart: the controller killed, all N rollouts updated meanwhile, a new controller
//!    started; the time until it has listed everything (its "caches synced" log line) and
//!    until all N are Healthy again, and its RSS then and once idle.
//!
//! `ROLLOUTS_BENCH_SCALE_ONLY=healthy` stops after the first deploy (1, the series count and
//! kube-controller-manager's RSS with the rollouts' ReplicaSets and pods);
//! `ROLLOUTS_BENCH_SCALE_ONLY=update` after the update of all (1 in full).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use rollouts_shell::kubeapi::rollout_resource;
use serde_json::{json, Value};

use crate::support::{self, field, healthy, wait_for, Controller, Env};

/// Requests in flight while creating or updating N objects.
const CONCURRENCY: usize = 32;
const TRIES: usize = 20;
/// A little more than the controller's default `--worker-idle-timeout`.
const IDLE: Duration = Duration::from_secs(35);
const IMAGE: &str = "argoproj/rollouts-demo";

/// The controller's log level: the e2e default (debug) writes lines by the thousand here.
const QUIET: [(&str, &str); 1] = [("RUST_LOG", "info")];

fn rollout(i: usize) -> Value {
    let name = format!("s-{i}");
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": format!("{IMAGE}:blue")}]}},
            "strategy": {"canary": {"stableService": name, "steps": [{"setWeight": 50}]}}
        }
    })
}

fn service(i: usize) -> Service {
    let name = format!("s-{i}");
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn deployment(name: &str, tag: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"dep": name}},
            "template": {"metadata": {"labels": {"dep": name}}, "spec": {"containers": [{"name": "app", "image": format!("{IMAGE}:{tag}")}]}}
        }
    }))
    .unwrap()
}

/// Runs `f` on 0..n, `CONCURRENCY` at a time; panics on the first error.
async fn each<F, Fut>(n: usize, what: &str, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    futures::stream::iter((0..n).map(&f))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Every object of a list, page by page (a list of 10,000 rollouts is too big for one answer).
async fn list_all<K>(api: &Api<K>) -> Result<Vec<K>, String>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut all = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.map_err(|e| e.to_string())?;
        all.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(all),
        }
    }
}

/// Waits until all `n` `s-*` rollouts are observed and Healthy with `tag`; the time it took.
async fn all_healthy(env: &Env, n: usize, tag: &str, since: Instant) -> Duration {
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &rollout_resource());
    let image = format!("{IMAGE}:{tag}");
    let timeout = Duration::from_secs(300 + n as u64 / 2);
    wait_for(timeout, &format!("{n} rollouts Healthy with {image}"), || async {
        let list = list_all(&api).await?;
        let done = list
            .iter()
            .filter(|o| o.metadata.name.as_deref().is_some_and(|n| n.starts_with("s-")))
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .filter(|ro| healthy(ro) && field(ro, "/spec/template/spec/containers/0/image") == image)
            .count();
        if done == n {
            Ok(())
        } else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Err(format!("{done} of {n}"))
        }
    })
    .await;
    since.elapsed()
}

async fn set_image(env: &Env, n: usize, tag: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &rollout_resource());
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("{IMAGE}:{tag}")}]}}}});
    each(n, "set image", |i| {
        let (api, patch) = (api.clone(), patch.clone());
        async move { api.patch(&format!("s-{i}"), &PatchParams::default(), &Patch::Merge(patch)).await.map(drop) }
    })
    .await;
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Anonymous and file-backed (the binary's code and data) parts of a process's RSS, MiB.
fn parts(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mib = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()).unwrap_or(f64::NAN)
            / 1024.0
    };
    format!("anonymous {:.1} MiB, file {:.1} MiB", mib("RssAnon:"), mib("RssFile:"))
}

/// Waits past the controller's `--worker-idle-timeout` (30 s) and prints its RSS then.
async fn once_idle(controller: &Controller, what: &str) {
    tokio::time::sleep(IDLE).await;
    let (rss, hwm) = memory(controller.pid());
    println!("controller RSS {what}, {} s later (idle workers let go): {rss:.1} MiB (peak {hwm:.1} MiB; {})", IDLE.as_secs() + 5, parts(controller.pid()));
}

fn kcm_pid() -> u32 {
    let path = support::state_dir().join("pids/kube-controller-manager");
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no kube-controller-manager pid in {}", path.display()))
}

fn series(controller: &Controller) -> usize {
    controller.metrics_text().lines().filter(|l| l.starts_with("controller_clientset_k8s_request_total{")).count()
}

fn stats(name: &str, v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    println!("{name} (ms), {} tries: median {median:.1}, min {:.1}, max {:.1}", v.len(), v[0], v[v.len() - 1]);
    median
}

type SetStream = futures::stream::BoxStream<'static, Result<watcher::Event<ReplicaSet>, watcher::Error>>;

/// A watch of the namespace's ReplicaSets (`labels` selects), past its initial list; the
/// desired replicas of each ReplicaSet it listed.
async fn replica_set_watch(sets: &Api<ReplicaSet>, labels: &str) -> (SetStream, std::collections::BTreeMap<String, i32>) {
    let mut stream = watcher::watcher(sets.clone(), watcher::Config::default().labels(labels)).boxed();
    let mut known = std::collections::BTreeMap::new();
    loop {
        match stream.next().await {
            Some(Ok(watcher::Event::InitApply(rs))) => {
                known.insert(rs.metadata.name.clone().unwrap_or_default(), support::desired(&rs));
            }
            Some(Ok(watcher::Event::InitDone)) => return (stream, known),
            Some(Ok(_)) => {}
            other => panic!("the ReplicaSet watch failed: {other:?}"),
        }
    }
}

/// Waits for a ReplicaSet write: one the watch had not listed, or a new `spec.replicas`.
async fn next_write(
    stream: &mut SetStream,
    known: &std::collections::BTreeMap<String, i32>,
    what: &str,
) {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(watcher::Event::Apply(rs)))) => {
                if known.get(rs.metadata.name.as_deref().unwrap_or_default()) != Some(&support::desired(&rs)) {
                    return;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no ReplicaSet write within 30 s of {what}: {other:?}"),
        }
    }
}

/// Deployment template change -> kube-controller-manager's ReplicaSet write.
async fn deployment_reactions(env: &Env) -> Vec<f64> {
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.namespace);
    let name = "react-dep";
    deployments.create(&PostParams::default(), &deployment(name, "blue")).await.expect("create the Deployment");
    let done = || async {
        let d = deployments.get(name).await.map_err(|e| e.to_string())?;
        let status = d.status.clone().unwrap_or_default();
        let settled = status.observed_generation == d.metadata.generation
            && status.updated_replicas == Some(1)
            && status.available_replicas == Some(1)
            && status.replicas == Some(1);
        if settled { Ok(()) } else { Err(format!("{status:?}")) }
    };
    wait_for(Duration::from_secs(120), "the Deployment to be available", done).await;
    let mut reactions = Vec::new();
    for i in 0..TRIES {
        let (mut stream, known) = replica_set_watch(&sets, &format!("dep={name}")).await;
        let tag = format!("try-{i}");
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("{IMAGE}:{tag}")}]}}}});
        let sent = Instant::now();
        deployments.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.expect("the Deployment patch");
        next_write(&mut stream, &known, "the Deployment's change").await;
        reactions.push(sent.elapsed().as_secs_f64() * 1000.0);
        wait_for(Duration::from_secs(120), "the Deployment's rollout", done).await;
    }
    reactions
}

/// Rollout promote -> our ReplicaSet write, over the pauses of the cluster bench's rollout.
async fn promote_reactions(env: &Env, controller: &Controller) -> Vec<f64> {
    env.apply(&crate::rollout_yaml()).await;
    wait_for(Duration::from_secs(300), "the first deploy of `react`", || async {
        let ro = env.rollout("react").await;
        if healthy(&ro) { Ok(()) } else { Err(support::summary(&ro)) }
    })
    .await;
    env.cli_ok(&["set", "image", "react", "app=argoproj/rollouts-demo:green"]);
    let rollouts: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &rollout_resource());
    let sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut reactions = Vec::new();
    for i in 0..TRIES {
        let pause = 2 * i as i64;
        wait_for(Duration::from_secs(300), &format!("the pause at step {pause}"), || async {
            let ro = env.rollout("react").await;
            if crate::paused_at(&ro, pause) { Ok(()) } else { Err(support::summary(&ro)) }
        })
        .await;
        let (mut stream, known) = replica_set_watch(&sets, "app=react").await;
        let sent = Instant::now();
        rollouts
            .patch_status("react", &PatchParams::default(), &Patch::Merge(json!({"status": {"pauseConditions": null}})))
            .await
            .expect("the promote patch");
        next_write(&mut stream, &known, &format!("the promote\n{}", controller.log_tail())).await;
        reactions.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    reactions
}

pub async fn run(n: usize) {
    println!("scale mode: {n} rollouts (1 replica, 1 Service each); controller binary {}", support::controller_binary().display());
    let env = Env::new("bench-scale").await;
    let mut controller = env.controller_with_env(&["--leader-elect=false"], &QUIET);
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);
    let rollouts: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &rollout_resource());

    let start = Instant::now();
    each(n, "create the Services", |i| {
        let api = services.clone();
        async move { api.create(&PostParams::default(), &service(i)).await.map(drop) }
    })
    .await;
    each(n, "create the rollouts", |i| {
        let api = rollouts.clone();
        async move {
            let ro: DynamicObject = serde_json::from_value(rollout(i)).unwrap();
            api.create(&PostParams::default(), &ro).await.map(drop)
        }
    })
    .await;
    let created = start.elapsed();
    let took = all_healthy(&env, n, "blue", start).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(controller.running(), "{}", controller.log_tail());
    let (rss, hwm) = memory(controller.pid());
    println!("created in {:.1} s; all {n} Healthy after {:.1} s", created.as_secs_f64(), took.as_secs_f64());
    println!("controller RSS with {n} Healthy rollouts: {rss:.1} MiB (peak {hwm:.1} MiB; {})", parts(controller.pid()));
    once_idle(&controller, &format!("with {n} Healthy rollouts")).await;
    if std::env::var("ROLLOUTS_BENCH_SCALE_ONLY").as_deref() == Ok("healthy") {
        // The first deploy alone (N = 10,000 takes long enough). The yardstick then is the
        // same plane's kube-controller-manager running the rollouts' ReplicaSets and pods.
        println!("series of controller_clientset_k8s_request_total: {}", series(&controller));
        let (kcm, kcm_hwm) = memory(kcm_pid());
        println!("kube-controller-manager RSS with the rollouts' ReplicaSets and pods: {kcm:.1} MiB (peak {kcm_hwm:.1} MiB)");
        return;
    }

    let start = Instant::now();
    set_image(&env, n, "green").await;
    let took = all_healthy(&env, n, "green", start).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, hwm) = memory(controller.pid());
    println!(
        "one update of all {n}: Healthy after {:.1} s; controller RSS {rss:.1} MiB (peak {hwm:.1} MiB; {})",
        took.as_secs_f64(),
        parts(controller.pid())
    );
    once_idle(&controller, &format!("after the update of all {n}")).await;
    println!("series of controller_clientset_k8s_request_total: {}", series(&controller));
    if std::env::var("ROLLOUTS_BENCH_SCALE_ONLY").as_deref() == Ok("update") {
        return;
    }

    // The yardstick: kube-controller-manager with N Deployments, beside the rollouts.
    let kcm = kcm_pid();
    let (kcm_before, _) = memory(kcm);
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let start = Instant::now();
    each(n, "create the Deployments", |i| {
        let api = deployments.clone();
        async move { api.create(&PostParams::default(), &deployment(&format!("d-{i}"), "blue")).await.map(drop) }
    })
    .await;
    let sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.namespace);
    wait_for(Duration::from_secs(300 + n as u64 / 2), &format!("{n} Deployments' ReplicaSets, available"), || async {
        let list = list_all(&sets).await?;
        let ready = list
            .iter()
            .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.kind == "Deployment" && o.name.starts_with("d-")))
            .filter(|rs| support::ready(rs) == 1)
            .count();
        if ready == n {
            Ok(())
        } else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Err(format!("{ready} of {n}"))
        }
    })
    .await;
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (kcm_after, kcm_hwm) = memory(kcm);
    let (rss, hwm) = memory(controller.pid());
    println!(
        "kube-controller-manager RSS: {kcm_before:.1} MiB with the rollouts' objects; {kcm_after:.1} MiB (peak {kcm_hwm:.1}) \
         once {n} Deployments had ready ReplicaSets ({:.1} s)",
        took.as_secs_f64()
    );
    println!("controller RSS beside them (the Deployments in its namespace): {rss:.1} MiB (peak {hwm:.1} MiB; {})", parts(controller.pid()));

    let deployment = deployment_reactions(&env).await;
    let promote = promote_reactions(&env, &controller).await;
    let kcm_median = stats("reaction, Deployment template change -> kube-controller-manager's ReplicaSet write", &deployment);
    let ours = stats("reaction, Rollout promote -> our ReplicaSet write", &promote);
    println!("reaction ratio (ours / kube-controller-manager's, medians): {:.2}", ours / kcm_median);

    // A restart with work waiting: every rollout updated while no controller runs.
    controller.kill();
    set_image(&env, n, "yellow").await;
    let start = Instant::now();
    let controller = env.controller_with_env(&["--leader-elect=false"], &QUIET);
    let synced = wait_for(Duration::from_secs(300), "the new controller's caches to sync", || async {
        let log = std::fs::read_to_string(&controller.log).unwrap_or_default();
        if log.contains("caches synced") {
            Ok(start.elapsed())
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err("not yet".to_string())
        }
    })
    .await;
    let took = all_healthy(&env, n, "yellow", start).await;
    let (rss, hwm) = memory(controller.pid());
    println!(
        "restart (cold list of {n} rollouts, {n} Deployments and what they own; each rollout updated while down): \
         caches synced after {:.1} s, all {n} Healthy after {:.1} s; RSS {rss:.1} MiB (peak {hwm:.1} MiB; {})",
        synced.as_secs_f64(),
        took.as_secs_f64(),
        parts(controller.pid())
    );
    once_idle(&controller, "after the restart").await;
}
