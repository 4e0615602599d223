//! The end-to-end harness: the local control plane of `deploy/dev-cluster/` (started once per
//! test binary, built on first use), the CRDs applied to it, one namespace per test, the real
//! controller binary as a child process and the real CLI.
//!
//! Nothing is skipped: when the plane cannot be built or started, every test fails with the
//! reason and the end of `up`'s output.
#![allow(dead_code)] // each test binary uses a part

pub mod traffic;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rollouts_shell::kubeapi::rollout_resource;
use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The state directory of the plane the tests use (not the developer's own plane).
pub fn state_dir() -> PathBuf {
    std::env::var_os("ROLLOUTS_E2E_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rollouts-e2e-plane"))
}

static PLANE: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// An image whose pods the plane's fake kubelet runs (and serves) but never makes Ready
/// (`--never-ready`), for tests of what happens before a pod is ready.
pub const NEVER_READY_IMAGE: &str = "argoproj/rollouts-demo:never-ready";

/// Starts the plane (once per process) and returns its kubeconfig; panics with the reason when
/// it cannot be built or started.
pub fn kubeconfig() -> PathBuf {
    // On a thread of its own: callers are inside a tokio runtime, and starting the plane
    // blocks (and runs a runtime of its own to apply the CRDs).
    let start = || std::thread::spawn(|| start_plane_in(&state_dir())).join().unwrap_or_else(|_| Err("starting the plane panicked".into()));
    match PLANE.get_or_init(start) {
        Ok(path) => path.clone(),
        Err(why) => panic!("the local control plane is not available, so the end-to-end tests cannot run:\n{why}"),
    }
}

/// Starts (or finds running) a plane in `state` and applies the CRDs; its kubeconfig. Blocks:
/// call it from a thread of its own when inside a tokio runtime.
pub fn start_plane_in(state: &Path) -> Result<PathBuf, String> {
    let up = repo().join("deploy/dev-cluster/up");
    let output = Command::new(&up)
        .env("ROLLOUTS_DEV_CLUSTER_STATE", state)
        .env("ROLLOUTS_FAKE_KUBELET", env!("CARGO_BIN_EXE_fake-kubelet"))
        .env("ROLLOUTS_FAKE_KUBELET_ARGS", format!("--never-ready {NEVER_READY_IMAGE}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", up.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    if !output.status.success() {
        return Err(format!("{} exited with {}; its last lines:\n{}", up.display(), output.status, tail.join("\n")));
    }
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export KUBECONFIG="))
        .ok_or_else(|| format!("{} printed no `export KUBECONFIG=` line; stdout: {stdout:?}", up.display()))?;
    let path = PathBuf::from(path.trim());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(apply_crds(&path))?;
    Ok(path)
}

/// Applies `deploy/crds/*.yaml` and the third-party CRDs of `deploy/dev-cluster/crds/*.yaml`
/// (several per file: the Gateway API routes) server-side, and waits until each is
/// Established: the check that our generated CRDs, and the ones the data planes read, load on
/// this apiserver.
async fn apply_crds(kubeconfig: &Path) -> Result<(), String> {
    let client = client_for(kubeconfig).await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let mut names = Vec::new();
    let mut files = Vec::new();
    for dir in [repo().join("deploy/crds"), repo().join("deploy/dev-cluster/crds")] {
        let mut in_dir: Vec<_> = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten().map(|e| e.path()).collect();
        in_dir.retain(|f| f.extension().is_some_and(|e| e == "yaml"));
        in_dir.sort();
        files.extend(in_dir);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| format!("{}: {e}", file.display()))?;
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition = serde_json::from_value(value).map_err(|e| format!("{}: {e}", file.display()))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &PatchParams::apply("rollouts-e2e").force(), &Patch::Apply(&crd))
                .await
                .map_err(|e| format!("the apiserver refused {} ({name}): {e}", file.display()))?;
            names.push(name);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = api.get(&name).await.map_err(|e| e.to_string())?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("CRD {name} was not Established within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// A client of the plane.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("the plane's kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("a client config");
    // A test never waits forever on one request (an API server killed mid-request by the
    // fault tests); watches are cut after a minute without data and start again.
    config.read_timeout = Some(Duration::from_secs(60));
    config.reset_reader_on_write = true;
    Client::try_from(config).expect("a client")
}

/// One test's namespace on the plane, with a client and the CLI pointed at it.
pub struct Env {
    pub kubeconfig: PathBuf,
    pub client: Client,
    pub namespace: String,
}

impl Env {
    /// A fresh namespace named after the test (and this process, so reruns never collide).
    pub async fn new(test: &str) -> Env {
        Env::on(kubeconfig(), test).await
    }

    /// [`Env::new`] on the plane of `kubeconfig` (a plane of a test's own).
    pub async fn on(kubeconfig: PathBuf, test: &str) -> Env {
        let client = client_for(&kubeconfig).await;
        let namespace = format!("{test}-{}", std::process::id());
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create the namespace");
        Env { kubeconfig, client, namespace }
    }

    /// Creates the objects of a YAML document stream in the namespace.
    pub async fn apply(&self, yaml: &str) {
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("test YAML");
            if value.is_null() {
                continue;
            }
            let mut object: DynamicObject = serde_json::from_value(value.clone()).expect("an object");
            object.metadata.namespace = Some(self.namespace.clone());
            let types = object.types.clone().expect("apiVersion and kind");
            let resource = resource(&types.api_version, &types.kind);
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
            api.create(&PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("create {} {:?}: {e}", types.kind, object.metadata.name));
        }
    }

    /// The rollout as JSON.
    pub async fn rollout(&self, name: &str) -> Value {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.namespace, &rollout_resource());
        serde_json::to_value(api.get(name).await.unwrap_or_else(|e| panic!("get rollout {name}: {e}"))).unwrap()
    }

    /// The ReplicaSets owned by the rollout, by name.
    pub async fn replica_sets(&self, rollout: &str) -> Vec<ReplicaSet> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut owned: Vec<ReplicaSet> = api
            .list(&ListParams::default())
            .await
            .expect("list ReplicaSets")
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata.owner_references.iter().flatten().any(|o| o.kind == "Rollout" && o.name == rollout)
            })
            .collect();
        owned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        owned
    }

    /// Runs the CLI (`rollouts ARGS -n NAMESPACE`) and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rollouts"))
            .args(args)
            .args(["-n", &self.namespace])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("run the CLI")
    }

    /// Runs the CLI and fails the test unless it succeeds.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "`rollouts {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a controller watching only this namespace, electing its leader on a Lease here.
    pub fn controller(&self, extra: &[&str]) -> Controller {
        Controller::start(self, extra, &[])
    }

    /// [`Env::controller`] with extra environment variables (a provider's endpoint or
    /// credentials; `POD_NAMESPACE` for where it reads provider Secrets).
    pub fn controller_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Controller {
        Controller::start(self, extra, env)
    }
}

/// A kubeconfig of the plane that authenticates as the ServiceAccount `account` of the test's
/// namespace (1.20: the token controller writes the account's token into a Secret), so a
/// process started with it has exactly the rights RBAC gives that account.
pub async fn account_kubeconfig(env: &Env, account: &str) -> PathBuf {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    let accounts: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.namespace);
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    let token = wait_for(Duration::from_secs(60), &format!("the token of the service account {account}"), || async {
        let sa = accounts.get(account).await.map_err(|e| e.to_string())?;
        let name = sa.secrets.unwrap_or_default().into_iter().find_map(|r| r.name).ok_or("no token secret yet")?;
        let secret = secrets.get(&name).await.map_err(|e| e.to_string())?;
        let token = secret.data.unwrap_or_default().remove("token").ok_or("no token yet")?;
        String::from_utf8(token.0).map_err(|e| e.to_string())
    })
    .await;
    let text = std::fs::read_to_string(&env.kubeconfig).expect("the plane's kubeconfig");
    let mut config: Value = serde_yaml_ng::from_str(&text).expect("kubeconfig YAML");
    for user in config["users"].as_array_mut().expect("kubeconfig users") {
        user["user"] = serde_json::json!({"token": token});
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{account}.kubeconfig", env.namespace));
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

/// Polls `probe` every 100 ms until it returns `Some`, or fails the test after `timeout` with
/// `what` and the last thing `describe` said.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        // A probe that hangs counts as a failed look, so the deadline still holds.
        let answer = tokio::time::timeout(Duration::from_secs(20), probe()).await.unwrap_or_else(|_| Err("no answer within 20 s".to_string()));
        match answer {
            Ok(t) => return t,
            Err(last) if Instant::now() > deadline => panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A field of a JSON value by a `/`-separated pointer, as a string for messages.
pub fn field(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "<none>".into(),
    }
}

/// A short description of a rollout's status for failure messages.
/// `status.phase`.
pub fn phase(ro: &Value) -> String {
    field(ro, "/status/phase")
}

/// `status.currentStepIndex` (-1 when absent).
pub fn step(ro: &Value) -> i64 {
    ro.pointer("/status/currentStepIndex").and_then(Value::as_i64).unwrap_or(-1)
}

/// The controller has seen the latest spec (its status is written with observedGeneration).
pub fn observed(ro: &Value) -> bool {
    let generation = ro.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    field(ro, "/status/observedGeneration") == generation.to_string()
}

/// Observed and Healthy.
pub fn healthy(ro: &Value) -> bool {
    observed(ro) && phase(ro) == "Healthy"
}

pub fn summary(ro: &Value) -> String {
    format!(
        "phase={} message={:?} step={} stableRS={} currentPodHash={} abort={}",
        field(ro, "/status/phase"),
        field(ro, "/status/message"),
        field(ro, "/status/currentStepIndex"),
        field(ro, "/status/stableRS"),
        field(ro, "/status/currentPodHash"),
        field(ro, "/status/abort"),
    )
}

/// `(name, spec.replicas, ready replicas)` of each ReplicaSet.
pub fn sizes(sets: &[ReplicaSet]) -> Vec<(String, i32, i32)> {
    sets.iter().map(|rs| (rs.metadata.name.clone().unwrap_or_default(), desired(rs), ready(rs))).collect()
}

/// The ReplicaSet of a pod-template hash.
pub fn by_hash<'a>(sets: &'a [ReplicaSet], hash: &str) -> Option<&'a ReplicaSet> {
    sets.iter().find(|rs| rs.metadata.labels.as_ref().and_then(|l| l.get("rollouts-pod-template-hash")).map(String::as_str) == Some(hash))
}

/// Desired and ready replicas of the ReplicaSet of `hash` (0, 0 when there is none).
pub fn replicas_of(sets: &[ReplicaSet], hash: &str) -> (i32, i32) {
    by_hash(sets, hash).map_or((0, 0), |rs| (desired(rs), ready(rs)))
}

/// A plain HTTP/1.0 GET; the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// Serves `app` on a free 127.0.0.1 port for the rest of the test; the port.
pub async fn serve(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let port = listener.local_addr().expect("a bound port").port();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the test server") });
    port
}

/// Desired replicas of a ReplicaSet.
pub fn desired(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// Ready replicas of a ReplicaSet.
pub fn ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// A 127.0.0.1 port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The controller the tests start: this build's, or `$ROLLOUTS_CONTROLLER_BIN` (another
/// build of `rollouts`, for a bench comparing two versions on the same plane).
pub fn controller_binary() -> PathBuf {
    std::env::var_os("ROLLOUTS_CONTROLLER_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rollouts")), PathBuf::from)
}

/// The controller binary running as a child process; SIGKILLed when dropped.
pub struct Controller {
    child: Child,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

impl Controller {
    fn start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Controller {
        let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let healthz: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{}-controller-{}.log", env.namespace, metrics.port()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(controller_binary())
            .arg("controller")
            .args(["--namespaced", "-n", &env.namespace, "--leader-election-namespace", &env.namespace])
            .args(["--metrics-addr", &metrics.to_string(), "--healthz-addr", &healthz.to_string()])
            .args(["--loglevel", "info,rollouts_shell=debug"])
            .args(extra)
            .env("KUBECONFIG", &env.kubeconfig)
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start the controller");
        Controller { child, metrics, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `/metrics`, or an empty string when it does not answer.
    pub fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").unwrap_or_default()
    }

    /// Sum of `controller_clientset_k8s_request_total` over the series whose labels contain
    /// every one of `labels` (e.g. `kind="ReplicaSet"`).
    pub fn requests(&self, labels: &[&str]) -> u64 {
        self.metrics_text()
            .lines()
            .filter(|l| l.starts_with("controller_clientset_k8s_request_total{"))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// The last lines of the controller's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("{} (last lines):\n{}", self.log.display(), lines[lines.len().saturating_sub(25)..].join("\n"))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// No test may take longer than this, whatever hangs.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn within_timeout(what: &str, body: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{what} did not finish within {TEST_TIMEOUT:?}");
    }
}

/// The API resource of a kind the tests create or read, by `apiVersion` and kind.
pub fn resource(api_version: &str, kind: &str) -> kube::core::ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Rollout" => "rollouts",
        "Service" => "services",
        "Secret" => "secrets",
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "AnalysisTemplate" => "analysistemplates",
        "Deployment" => "deployments",
        "Experiment" => "experiments",
        "Ingress" => "ingresses",
        "HTTPRoute" => "httproutes",
        "VirtualService" => "virtualservices",
        "DestinationRule" => "destinationrules",
        "TrafficSplit" => "trafficsplits",
        "TraefikService" => "traefikservices",
        "Mapping" => "mappings",
        "ApisixRoute" => "apisixroutes",
        "VirtualRouter" => "virtualrouters",
        "VirtualNode" => "virtualnodes",
        other => panic!("the harness does not know the plural of {other}"),
    };
    kube::core::ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk(group, version, kind), plural)
}

/// Waits until the rollout satisfies `ok`; the failure message shows its status.
pub async fn rollout_until(env: &Env, name: &str, what: &str, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    wait_for(timeout, what, || async {
        let ro = env.rollout(name).await;
        if ok(&ro) { Ok(ro) } else { Err(format!("{} weights={}", summary(&ro), field(&ro, "/status/canary/weights"))) }
    })
    .await
}

/// `(name, replicas, revision annotation, pod-template hash)` of every ReplicaSet of a rollout.
pub async fn final_sets(env: &Env, name: &str) -> Vec<(String, i32, String, String)> {
    env.replica_sets(name)
        .await
        .into_iter()
        .map(|rs| {
            let annotation = |k: &str| rs.metadata.annotations.as_ref().and_then(|a| a.get(k).cloned()).unwrap_or_default();
            let label = |k: &str| rs.metadata.labels.as_ref().and_then(|a| a.get(k).cloned()).unwrap_or_default();
            (
                rs.metadata.name.clone().unwrap_or_default(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                annotation("rollout.argoproj.io/revision"),
                label("rollouts-pod-template-hash"),
            )
        })
        .collect()
}

/// Pid in the holder identity (`host_pid-nanos`) of the namespace's controller Lease.
pub async fn lease_holder(env: &Env) -> Option<u32> {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(env.client.clone(), &env.namespace);
    let lease = api.get_opt("argo-rollouts-controller-lock").await.ok()??;
    let holder = lease.spec?.holder_identity?;
    holder.rsplit_once('_')?.1.split('-').next()?.parse().ok()
}

/// The AnalysisRuns of the namespace, oldest first.
pub async fn analysis_runs(env: &Env) -> Vec<Value> {
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::analysis_run_resource());
    let mut runs: Vec<Value> =
        api.list(&Default::default()).await.unwrap().items.iter().map(|o| serde_json::to_value(o).unwrap()).collect();
    runs.sort_by_key(|r| field(r, "/metadata/creationTimestamp") + &field(r, "/metadata/name"));
    runs
}

