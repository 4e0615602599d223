//! Faults, end to end on the local plane: the controller killed at seeded random points, a
//! fault-injecting proxy between it and the apiserver, an apiserver restart, a leader killed
//! mid-step, and a lease namespace that does not exist. Each walkthrough must end with the
//! ReplicaSets, Services, status and AnalysisRuns of an undisturbed run of the same walkthrough
//! (run once per test process), and no ReplicaSet, AnalysisRun or Job created twice.
//!
//! Seeds are printed (`FAULT_SEED=<n>`); set `FAULT_SEED` to replay one. `FAULT_KILLS` (default 5,
//! in rounds of 5) and `FAULT_PROXY_SHARE` (default 0.15) are for the soak (`scripts/soak.sh`).

mod support;
#[path = "faults/proxy.rs"]
mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use proxy::{Config, Fault, Proxy, Rng};
use serde_json::Value;
use support::{analysis_runs, field, final_sets, healthy, lease_holder, observed, rollout_until, sizes, step, wait_for, Controller, Env};

const MINUTE: Duration = Duration::from_secs(60);
const NAME: &str = "faults";
/// The walkthrough's last step index.
const LAST_STEP: i64 = 7;

/// A canary with a stable and a canary Service and a Job analysis step between two timed pauses.
const WALK: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: faults-stable}
spec:
  selector: {app: faults}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: faults-canary}
spec:
  selector: {app: faults}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: job-ok}
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
kind: Rollout
metadata: {name: faults}
spec:
  replicas: 4
  revisionHistoryLimit: 3
  selector: {matchLabels: {app: faults}}
  template:
    metadata: {labels: {app: faults}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      canaryService: faults-canary
      stableService: faults-stable
      steps:
        - setWeight: 25
        - pause: {duration: 2}
        - analysis: {templates: [{templateName: job-ok}]}
        - setWeight: 50
        - pause: {duration: 2}
        - setWeight: 75
        - pause: {duration: 2}
"#;

/// What a walkthrough leaves behind.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    /// `(name, replicas, revision, hash)` of each ReplicaSet.
    sets: Vec<(String, i32, String, String)>,
    /// `(name, selector)` of each Service.
    services: Vec<(String, String)>,
    /// The rollout's status without timestamps.
    status: Value,
    /// `(name, phase)` of each AnalysisRun.
    runs: Vec<(String, String)>,
    jobs: usize,
}

/// Drops every `…Time` and `…At` key (when things happened differs from run to run).
fn without_times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !(k.ends_with("Time") || k.ends_with("At")));
            map.values_mut().for_each(without_times);
        }
        Value::Array(items) => items.iter_mut().for_each(without_times),
        _ => {}
    }
}

async fn outcome(env: &Env) -> Outcome {
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut svc: Vec<(String, String)> = services
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), format!("{:?}", s.spec.as_ref().and_then(|s| s.selector.clone()))))
        .collect();
    svc.sort();
    let mut status = env.rollout(NAME).await["status"].clone();
    without_times(&mut status);
    // The order of conditions is their history (a changed condition moves to the end, as in
    // Argo): a run whose controller saw a transient `Available: False` the other missed ends
    // with the same conditions in another order.
    if let Some(Value::Array(conditions)) = status.get_mut("conditions") {
        conditions.sort_by_key(|c| c["type"].as_str().unwrap_or_default().to_string());
    }
    let runs = analysis_runs(env).await.iter().map(|r| (field(r, "/metadata/name"), field(r, "/status/phase"))).collect();
    let jobs = Api::<Job>::namespaced(env.client.clone(), &env.namespace).list(&Default::default()).await.unwrap().items.len();
    Outcome { sets: final_sets(env, NAME).await, services: svc, status, runs, jobs }
}

/// The walkthrough up to the update: the first deploy Healthy, then `set image`.
async fn walk_start(env: &Env) {
    env.apply(WALK).await;
    rollout_until(env, NAME, "the first deploy to be Healthy", 2 * MINUTE, healthy).await;
    env.cli_ok(&["set", "image", NAME, "app=argoproj/rollouts-demo:yellow"]);
}

/// The rest: every step done, the old ReplicaSet scaled down, both Services on the new one.
async fn walk_finish(env: &Env) -> Outcome {
    let ro = rollout_until(env, NAME, "the canary to finish", 3 * MINUTE, |ro| {
        healthy(ro) && step(ro) == LAST_STEP && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    let stable = field(&ro, "/status/stableRS");
    wait_for(MINUTE, "only the stable ReplicaSet to have pods, both Services on it", || async {
        let sets = env.replica_sets(NAME).await;
        let others: i32 = sets.iter().filter(|rs| rs.metadata.name.as_deref() != Some(&format!("{NAME}-{stable}"))).map(support::desired).sum();
        let services: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);
        let on_stable = services.list(&Default::default()).await.map_err(|e| e.to_string())?.items.iter().all(|s| {
            s.spec.as_ref().and_then(|s| s.selector.as_ref()).and_then(|m| m.get("rollouts-pod-template-hash")) == Some(&stable)
        });
        if others == 0 && on_stable { Ok(()) } else { Err(format!("{:?}, services on stable: {on_stable}", sizes(&sets))) }
    })
    .await;
    outcome(env).await
}

async fn walk(env: &Env) -> Outcome {
    walk_start(env).await;
    walk_finish(env).await
}

static REFERENCE: tokio::sync::OnceCell<Outcome> = tokio::sync::OnceCell::const_new();

/// The outcome of an undisturbed run (once per test process).
async fn reference() -> Outcome {
    REFERENCE
        .get_or_init(|| async {
            let env = Env::new("faults-reference").await;
            let _controller = env.controller(&["--leader-elect=false"]);
            walk(&env).await
        })
        .await
        .clone()
}

/// The uids seen per `(kind, name)`.
type Seen = Arc<Mutex<BTreeMap<(String, String), BTreeSet<String>>>>;

/// Every uid seen per `(kind, name)` of the namespace's ReplicaSets, AnalysisRuns and Jobs.
struct Creations {
    seen: Seen,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Creations {
    fn start(env: &Env) -> Creations {
        let seen: Seen = Arc::default();
        fn track<K>(api: Api<K>, kind: &'static str, seen: &Seen) -> tokio::task::JoinHandle<()>
        where
            K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
            K::DynamicType: Default,
        {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
                while let Some(event) = stream.next().await {
                    if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = event {
                        let (name, uid) = (o.meta().name.clone().unwrap_or_default(), o.meta().uid.clone().unwrap_or_default());
                        seen.lock().unwrap().entry((kind.to_string(), name)).or_default().insert(uid);
                    }
                }
            })
        }
        let runs: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::analysis_run_resource());
        let dynamic_runs = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream = watcher(runs, watcher::Config::default()).default_backoff().boxed();
                while let Some(event) = stream.next().await {
                    if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = event {
                        let (name, uid) = (o.metadata.name.clone().unwrap_or_default(), o.metadata.uid.clone().unwrap_or_default());
                        seen.lock().unwrap().entry(("AnalysisRun".to_string(), name)).or_default().insert(uid);
                    }
                }
            })
        };
        let tasks = vec![
            track(Api::<ReplicaSet>::namespaced(env.client.clone(), &env.namespace), "ReplicaSet", &seen),
            track(Api::<Job>::namespaced(env.client.clone(), &env.namespace), "Job", &seen),
            dynamic_runs,
        ];
        Creations { seen, tasks }
    }

    /// Fails unless every object was created once, and returns how many there were per kind.
    fn assert_once(&self) -> BTreeMap<String, usize> {
        let seen = self.seen.lock().unwrap();
        let twice: Vec<_> = seen.iter().filter(|(_, uids)| uids.len() > 1).collect();
        assert!(twice.is_empty(), "created more than once (several uids for one name): {twice:?}");
        let mut per_kind = BTreeMap::new();
        for (kind, _) in seen.keys() {
            *per_kind.entry(kind.clone()).or_default() += 1;
        }
        per_kind
    }
}

impl Drop for Creations {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

fn assert_same(what: &str, seed: u64, got: &Outcome, want: &Outcome) {
    assert_eq!(got, want, "{what} (FAULT_SEED={seed}) ended differently from an undisturbed run");
    assert_eq!(got.sets.len(), 2, "{got:?}");
    assert_eq!(got.runs.len(), 1, "{got:?}");
}

/// Peak resident memory (VmHWM) of a process, in KiB.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// Reconcile durations in µs from a controller's log (its debug line `reconciled … micros=N`).
fn reconcile_micros(controller: &Controller) -> Vec<u64> {
    let text = std::fs::read_to_string(&controller.log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(" reconciled "))
        .filter_map(|l| l.split("micros=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect()
}

/// `reconciles=… reconcile_p50_ms=… reconcile_p99_ms=…` of `micros`; with `SOAK_LATENCY_FILE`
/// set, the durations are also appended there (one per line) for the soak's totals.
fn latency_report(mut micros: Vec<u64>) -> String {
    if let Ok(path) = std::env::var("SOAK_LATENCY_FILE") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("SOAK_LATENCY_FILE");
        let lines: String = micros.iter().map(|m| format!("{m}\n")).collect();
        file.write_all(lines.as_bytes()).expect("SOAK_LATENCY_FILE");
    }
    micros.sort_unstable();
    let quantile = |q: f64| micros.get(((micros.len() as f64 * q).ceil() as usize).saturating_sub(1)).map_or(0.0, |&m| m as f64 / 1000.0);
    format!("reconciles={} reconcile_p50_ms={:.1} reconcile_p99_ms={:.1}", micros.len(), quantile(0.5), quantile(0.99))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `kill -9` of the controller at seeded random points of the walkthrough (5 per round), each
/// time started again: every round ends as an undisturbed run, nothing created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_at_seeded_random_points() {
    let seed = proxy::seed();
    let kills: usize = env_or("FAULT_KILLS", 5);
    println!("FAULT_SEED={seed} kills={kills}");
    let mut rng = Rng::new(seed);
    let want = reference().await;
    let started = Instant::now();
    let mut peak = 0;
    let mut micros = Vec::new();
    for round in 0..kills.div_ceil(5) {
        let env = Env::new(&format!("faults-kills-{round}")).await;
        let creations = Creations::start(&env);
        let schedule: Vec<(Duration, Duration)> = (0..5.min(kills - round * 5))
            .map(|_| (rng.between(Duration::from_secs(1), Duration::from_secs(6)), rng.between(Duration::ZERO, Duration::from_millis(500))))
            .collect();
        println!("round {round}: kill after {:?}, restart after {:?}", schedule.iter().map(|s| s.0).collect::<Vec<_>>(), schedule.iter().map(|s| s.1).collect::<Vec<_>>());
        let disrupt = async {
            let mut controller = env.controller(&["--leader-elect=false"]);
            let mut points = Vec::new();
            for (alive, gap) in &schedule {
                tokio::time::sleep(*alive).await;
                let ro = env.rollout(NAME).await;
                points.push(format!("step {} {}", step(&ro), field(&ro, "/status/phase")));
                peak = peak.max(peak_rss(controller.pid()));
                controller.kill();
                micros.extend(reconcile_micros(&controller));
                tokio::time::sleep(*gap).await;
                controller = env.controller(&["--leader-elect=false"]);
            }
            (controller, points)
        };
        let (got, (controller, points)) = tokio::join!(walk(&env), disrupt);
        println!("round {round}: killed at {points:?}");
        assert_same(&format!("round {round} of the kills"), seed, &got, &want);
        let created = creations.assert_once();
        println!("round {round}: created once each: {created:?}");
        peak = peak.max(peak_rss(controller.pid()));
        micros.extend(reconcile_micros(&controller));
    }
    println!(
        "FAULTS kills={kills} rounds={} divergences=0 seconds={} peak_rss_kib={peak} {}",
        kills.div_ceil(5),
        started.elapsed().as_secs(),
        latency_report(micros)
    );
}

/// The controller's view of its requests: `status_code -> count`, and its failed reconciles.
fn controller_view(metrics: &str) -> (BTreeMap<String, u64>, u64) {
    let mut codes = BTreeMap::new();
    let mut errors = 0;
    for line in metrics.lines() {
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        if line.starts_with("controller_clientset_k8s_request_total{") {
            if let Some(code) = line.split("status_code=\"").nth(1).and_then(|s| s.split('"').next()) {
                *codes.entry(code.to_string()).or_default() += value;
            }
        } else if line.starts_with("rollout_reconcile_error_total{") {
            errors += value;
        }
    }
    (codes, errors)
}

/// A kubeconfig of the plane that points at `proxy`.
fn proxied_kubeconfig(env: &Env, proxy: &Proxy) -> PathBuf {
    let text = std::fs::read_to_string(&env.kubeconfig).unwrap();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.kubeconfig", env.namespace));
    std::fs::write(&path, proxy::through(&text, proxy.addr)).unwrap();
    path
}

/// 409, 429 (Retry-After), 500, 503, timeouts and lost answers on a seeded share of the
/// controller's requests, and its watches cut or expired: it retries, re-lists, and the
/// walkthrough ends as an undisturbed run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_through_a_fault_proxy() {
    let seed = proxy::seed();
    let share: f64 = env_or("FAULT_PROXY_SHARE", 0.15);
    println!("FAULT_SEED={seed} share={share}");
    let want = reference().await;
    let env = Env::new("faults-proxy").await;
    let creations = Creations::start(&env);
    let upstream = proxy::server_of(&std::fs::read_to_string(&env.kubeconfig).unwrap());
    let proxy = Proxy::start(&upstream, &support::state_dir(), seed, Config::all(share)).await;
    let kubeconfig = proxied_kubeconfig(&env, &proxy);
    // Without election: a lease renewal that fails for 10 s ends leadership, and the process
    // (as Argo's) exits; the election has a test of its own below.
    let controller = env.controller_with_env(&["--leader-elect=false"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    let started = Instant::now();
    let got = walk(&env).await;
    let seconds = started.elapsed().as_secs();
    assert_same("the walkthrough through the fault proxy", seed, &got, &want);
    let created = creations.assert_once();
    let stats = proxy.stats.snapshot();
    let (codes, reconcile_errors) = controller_view(&controller.metrics_text());
    println!("proxy: {stats:#?}");
    println!("controller saw status codes {codes:?}; failed reconciles retried with backoff: {reconcile_errors}; created once: {created:?}");
    let injected = proxy.stats.injected();
    assert!(injected >= 5, "only {injected} faults were injected: the test proves nothing ({stats:?})");
    assert!(proxy.stats.get("watch cut") + proxy.stats.get("watch expired") >= 2, "no watch was cut: {stats:?}");
    let relisted = stats.iter().filter(|(k, v)| k.starts_with("list ") && **v > 1).count();
    assert!(relisted >= 1, "no kind was listed again after a cut: {stats:?}");
    assert!(controller_view(&controller.metrics_text()).0.keys().any(|c| c != "200" && c != "201"), "the controller saw no failed request: {codes:?}");
    println!(
        "FAULTS proxy share={share} injected={injected} watch_cuts={} relisted_kinds={relisted} reconcile_retries={reconcile_errors} seconds={seconds} peak_rss_kib={} {}",
        proxy.stats.get("watch cut") + proxy.stats.get("watch expired"),
        peak_rss(controller.pid()),
        latency_report(reconcile_micros(&controller))
    );
}

/// The proxy itself: HTTP/1.1 and HTTP/2 pass, a watch streams through HTTP/2, cuts end a watch
/// (failing, or with a 410 Expired event), and each fault answers as it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_proxy_passes_http1_http2_and_watches_and_injects_each_fault() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = Env::new("faults-proxy-self").await;
    let text = std::fs::read_to_string(&env.kubeconfig).unwrap();
    let upstream = proxy::server_of(&text);
    let token = text.lines().find_map(|l| l.trim().strip_prefix("token:")).unwrap().trim().to_string();
    let quiet = Config { share: 0.0, cut_share: 0.0, ..Config::all(0.0) };
    let client = |http2: bool| {
        let b = reqwest::Client::builder().danger_accept_invalid_certs(true).timeout(Duration::from_secs(20));
        if http2 { b.http2_prior_knowledge() } else { b.http1_only() }.build().unwrap()
    };
    let p = Proxy::start(&upstream, &support::state_dir(), 1, quiet.clone()).await;
    let base = format!("https://{}", p.addr);
    for http2 in [false, true] {
        let res = client(http2).get(format!("{base}/version")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), if http2 { reqwest::Version::HTTP_2 } else { reqwest::Version::HTTP_11 });
    }
    let mut watch = client(true).get(format!("{base}/api/v1/namespaces?watch=1")).bearer_auth(&token).send().await.unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(10), watch.chunk()).await.expect("a watch event within 10 s").unwrap().unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains("\"ADDED\""), "{chunk:?}");
    assert!(p.stats.get("requests over HTTP/2") >= 2, "{:?}", p.stats.snapshot());

    // Cuts: every watch ends after 1 s, failing or with 410 Expired.
    let cutting = Config { cut_share: 1.0, cut_after: (Duration::from_secs(1), Duration::from_secs(1)), ..quiet.clone() };
    let p = Proxy::start(&upstream, &support::state_dir(), 7, cutting).await;
    let (mut failed, mut expired) = (0, 0);
    for http2 in [false, true, false, true, false, true, false, true] {
        let mut watch = client(http2)
            .get(format!("https://{}/api/v1/namespaces?watch=1", p.addr))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let mut last = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match watch.chunk().await {
                    Ok(Some(c)) if c.is_empty() => {}
                    Ok(Some(c)) => last = c.to_vec(),
                    Ok(None) => return true,
                    Err(_) => return false,
                }
            }
        })
        .await
        .expect("the cut watch ends within 5 s");
        if ended {
            let last = String::from_utf8_lossy(&last);
            assert!(last.contains("\"code\":410"), "a watch (HTTP/2: {http2}) ended without a 410: {last:?}");
            expired += 1;
        } else {
            failed += 1;
        }
    }
    assert!(failed > 0 && expired > 0, "failed {failed}, expired {expired}");
    assert_eq!(p.stats.get("watch cut") + p.stats.get("watch expired"), 8);

    // Each fault, on every request.
    let cm = |name: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let cms = format!("/api/v1/namespaces/{}/configmaps", env.namespace);
    for (fault, code) in [(Fault::Conflict, 409), (Fault::TooManyRequests, 429), (Fault::InternalError, 500), (Fault::Unavailable, 503)] {
        let config = Config { share: 1.0, faults: vec![fault], hold: (Duration::from_secs(1), Duration::from_secs(1)), ..quiet.clone() };
        let p = Proxy::start(&upstream, &support::state_dir(), 3, config).await;
        let res = client(false).post(format!("https://{}{cms}", p.addr)).bearer_auth(&token).json(&cm("c")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), code, "{fault:?}");
        if code == 429 {
            assert_eq!(res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()), Some("1".into()));
        }
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["code"], code, "{body}");
    }
    for (fault, name) in [(Fault::Timeout, "timeout"), (Fault::LostAnswer, "lost")] {
        let config = Config { share: 1.0, faults: vec![fault], hold: (Duration::from_secs(1), Duration::from_secs(1)), ..quiet.clone() };
        let p = Proxy::start(&upstream, &support::state_dir(), 3, config).await;
        let sent = Instant::now();
        let res = client(false).post(format!("https://{}{cms}", p.addr)).bearer_auth(&token).json(&cm(name)).send().await;
        assert!(res.is_err() && sent.elapsed() >= Duration::from_secs(1), "{fault:?}: {res:?} after {:?}", sent.elapsed());
        let direct = client(false).get(format!("{upstream}{cms}/{name}")).bearer_auth(&token).send().await.unwrap();
        // A timeout never reaches the apiserver; a lost answer did.
        assert_eq!(direct.status().as_u16(), if fault == Fault::LostAnswer { 200 } else { 404 }, "{fault:?}");
    }
}

/// `rollouts controller` with leader election on and no namespace for the lease: it says what
/// is wrong and what to do, and exits 1, at once (it used to warn every 2 s forever).
#[test]
fn a_missing_lease_namespace_stops_the_controller_at_once_with_what_to_do() {
    let kubeconfig = support::kubeconfig();
    let missing = format!("faults-missing-{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollouts"))
        .args(["controller", "--leader-election-namespace", &missing])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", support::free_port())])
        .args(["--healthz-addr", &format!("127.0.0.1:{}", support::free_port())])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after 20 s: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    for want in [
        format!("the namespace \"{missing}\" of the lease does not exist"),
        format!("kubectl create namespace {missing}"),
        "--leader-election-namespace".to_string(),
        "--leader-elect=false".to_string(),
    ] {
        assert!(stderr.contains(&want), "{want:?} missing from:\n{stderr}");
    }
}

/// A plane of the test's own, stopped (`down`) when dropped.
struct OwnPlane {
    state: PathBuf,
}

impl Drop for OwnPlane {
    fn drop(&mut self) {
        let _ = Command::new(support::repo().join("deploy/dev-cluster/down"))
            .env("ROLLOUTS_DEV_CLUSTER_STATE", &self.state)
            .stdin(Stdio::null())
            .output();
    }
}

/// kube-apiserver stopped and started again mid-rollout (etcd keeps the data): the controller,
/// with leader election on, keeps its lease, re-watches and finishes as an undisturbed run.
/// On a plane of its own: every client of the plane sees errors meanwhile, and the other tests'
/// helpers fail on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_mid_rollout() {
    let want = reference().await;
    let state = std::env::temp_dir().join(format!("rollouts-faults-restart-{}", std::process::id()));
    let plane = OwnPlane { state: state.clone() };
    let started = Instant::now();
    let kubeconfig = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || support::start_plane_in(&state)).await.unwrap().expect("a plane of the test's own")
    };
    println!("own plane up in {:?}", started.elapsed());
    let env = Env::on(kubeconfig, "faults-restart").await;
    let creations = Creations::start(&env);
    // Leader election on, with a renew deadline longer than the restart: with Argo's 10 s, an
    // apiserver slower to come back ends leadership and the process exits (as Argo's does; its
    // Pod restarts), which is not what this test is about.
    let mut controller = env.controller(&["--leader-election-lease-duration", "60s", "--leader-election-renew-deadline", "45s"]);
    walk_start(&env).await;
    // Observed: before the controller sees the update, the status still has the first deploy's
    // last step.
    rollout_until(&env, NAME, "the canary's first step", MINUTE, |ro| observed(ro) && (1..LAST_STEP).contains(&step(ro))).await;
    let pid_file = state.join("pids/kube-apiserver");
    let before = std::fs::read_to_string(&pid_file).unwrap();
    // SIGKILL (a crash): a graceful stop of this apiserver takes 10 s or more.
    // Off the runtime's workers: the watches and the test's own timers keep running.
    let restart = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(support::repo().join("deploy/dev-cluster/restart-apiserver"))
                .arg("--kill")
                .env("ROLLOUTS_DEV_CLUSTER_STATE", &state)
                .env("ROLLOUTS_DEV_CLUSTER_TIMEOUT", "60")
                .stdin(Stdio::null())
                .output()
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert!(restart.status.success(), "restart-apiserver failed: {}", String::from_utf8_lossy(&restart.stderr));
    let down = String::from_utf8_lossy(&restart.stdout).trim().to_string();
    assert_ne!(std::fs::read_to_string(&pid_file).unwrap(), before, "the apiserver was not restarted");
    println!("apiserver down for about {down} s, at step {}", step(&env.rollout(NAME).await));
    let got = walk_finish(&env).await;
    assert!(controller.running(), "the controller exited: {}", controller.log_tail());
    assert_same("the walkthrough across an apiserver restart", 0, &got, &want);
    creations.assert_once();
    // The watches first: without an apiserver they would retry (with backoff) until the
    // runtime stops; a task is aborted only where it yields.
    drop(creations);
    drop(controller);
    drop(plane);
    println!("FAULTS apiserver_restart down_seconds={down} seconds={}", started.elapsed().as_secs());
}

/// Two controllers; the leader is killed at a seeded moment just after the analysis step began
/// (it is creating the AnalysisRun and its Job): the follower takes the lease and finishes, with
/// no ReplicaSet, AnalysisRun or Job created twice, ending as an undisturbed run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_step_the_follower_finishes_without_a_double_action() {
    let seed = proxy::seed();
    let delay = Rng::new(seed).between(Duration::ZERO, Duration::from_millis(400));
    println!("FAULT_SEED={seed}: the leader is killed {delay:?} after the analysis step begins");
    let want = reference().await;
    let env = Env::new("faults-leader").await;
    let creations = Creations::start(&env);
    let election = ["--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s", "--leader-election-retry-period", "500ms"];
    let a = env.controller(&election);
    let b = env.controller(&election);
    let leader_pid = wait_for(MINUTE, "a leader", || async { lease_holder(&env).await.ok_or_else(|| "no holder".to_string()) }).await;
    let (mut leader, follower) = if leader_pid == a.pid() { (a, b) } else { (b, a) };
    assert_eq!(leader.pid(), leader_pid, "the lease holder is neither controller");
    walk_start(&env).await;
    rollout_until(&env, NAME, "the analysis step", MINUTE, |ro| observed(ro) && (2..LAST_STEP).contains(&step(ro))).await;
    tokio::time::sleep(delay).await;
    leader.kill();
    let killed_at = env.rollout(NAME).await;
    let runs_then = analysis_runs(&env).await.len();
    println!("killed at step {} with {runs_then} AnalysisRun(s)", step(&killed_at));
    let got = walk_finish(&env).await;
    assert_same("the walkthrough after the leader was killed", seed, &got, &want);
    creations.assert_once();
    assert_eq!(lease_holder(&env).await, Some(follower.pid()), "the follower did not take the lease");
    assert!(follower.requests(&["verb=\"Patch\""]) > 0, "the follower did nothing: {}", follower.log_tail());
}
