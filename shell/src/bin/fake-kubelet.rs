//! `fake-kubelet`: the stand-in for kubelets on the local control plane (`deploy/dev-cluster/`).
//!
//! The plane has no kubelet and no scheduler, so nothing would ever run a Pod. This program
//! registers one Node (`--node-name`, Ready), watches Pods in all namespaces and does what the
//! scheduler and a kubelet would do, so that the ReplicaSet, Job and endpoint controllers see
//! pods become ready, available or complete:
//!
//! - an unscheduled Pod is bound to the node at once;
//! - a Pod that is not yet Running becomes Running after `--ready-after`, with the
//!   `PodScheduled`, `Initialized`, `ContainersReady` and `Ready` conditions `True`, running
//!   container statuses, a host IP of 127.0.0.1 and a made-up pod IP in 10.88.0.0/16;
//! - a Pod with a container whose image matches a `--never-ready` image becomes Running but
//!   stays unready (`ContainersReady`/`Ready` `False`);
//! - a Pod owned by a Job additionally terminates `--job-duration` after it started running:
//!   `Succeeded` with exit code 0, or `Failed` with exit code 1 when one of its images matches a
//!   `--fail-image`, or with exit code `n` from the annotation `fake-kubelet/exit-code: "n"`
//!   (any `n` other than 0 fails it). The restart policy is ignored: a failing pod fails once;
//! - a Pod being deleted (graceful deletion sets `deletionTimestamp` on a bound pod) is
//!   deleted for good at once, as a kubelet does once its containers have stopped.
//!
//! Every pod that runs (Pending pods about to run, Running pods, ready or not, Job pods until
//! they terminate) is served over HTTP on a 127.0.0.1 port of its own (an ephemeral port; the
//! pod keeps its made-up 10.88.x.x address, which nothing can reach). The port is published on
//! the pod as the annotation `fake-kubelet/port: "<n>"`, in the same patch that makes the pod
//! Running (or, for a pod a previous fake kubelet ran, in a patch of its own as soon as it is
//! seen). The server answers like `argoproj/rollouts-demo`:
//!
//! - `GET /color`: the image tag of the pod's first container as a JSON string (`"yellow"` for
//!   `argoproj/rollouts-demo:yellow`; `"latest"` for an image without a tag);
//! - any other request: `{"color", "pod", "hash", "requests", "host", "path"}` (`requests`
//!   counts the requests this pod has answered, this one included; `host` is the request's
//!   Host header), so that mirrored traffic can be counted too;
//! - every answer carries `X-Pod-Name: <pod>` and `X-Pod-Template-Hash: <the pod's
//!   rollouts-pod-template-hash label>` (empty when the label is missing).
//!
//! Serving stops (the listener is closed and idle connections are shut) when the pod is
//! deleted, marked for deletion, or terminated. Unready pods (`--never-ready`) are served too:
//! whoever routes traffic to pods must, like the endpoint controller, pick Ready pods only.
//!
//! An image pattern matches an image when equal to it, or, when the pattern has no tag or
//! digest, when it equals the image's name without its tag or digest (`nginx` matches
//! `nginx:1.19`, `nginx:1.19` does not match `nginx:1.20`).
//!
//! Binding matters: the endpoint and endpoint-slice controllers refuse pods without a node.
//! Configuration comes from `KUBECONFIG` (or the in-cluster environment). Logs go to stderr;
//! `RUST_LOG` filters them (default `info`).

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

/// The annotation that sets a Job pod's exit code.
const EXIT_CODE_ANNOTATION: &str = "fake-kubelet/exit-code";
/// The annotation the fake kubelet publishes a pod's 127.0.0.1 port in.
const PORT_ANNOTATION: &str = "fake-kubelet/port";
/// The label that carries a pod's template hash (set by Argo Rollouts and by us).
const HASH_LABEL: &str = "rollouts-pod-template-hash";

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "fake-kubelet",
    about = "Marks pods Running/Ready and completes Job pods, for a node-less control plane"
)]
struct Args {
    /// How long after it is seen a pod becomes Running (and Ready).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    ready_after: Duration,
    /// Pods with a container of this image run but never become Ready (repeatable).
    #[arg(long = "never-ready", value_name = "IMAGE")]
    never_ready: Vec<String>,
    /// How long a Job pod runs before it terminates.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    job_duration: Duration,
    /// Job pods with a container of this image exit with code 1 (repeatable).
    #[arg(long = "fail-image", value_name = "IMAGE")]
    fail_image: Vec<String>,
    /// The name of the Node this kubelet registers and binds pods to.
    #[arg(long, default_value = "fake-node")]
    node_name: String,
}

/// Whether `pattern` (from the command line) matches `image` (from a pod spec).
fn image_matches(pattern: &str, image: &str) -> bool {
    if pattern == image {
        return true;
    }
    let has_tag =
        |s: &str| s.contains('@') || s.rsplit('/').next().is_some_and(|last| last.contains(':'));
    if has_tag(pattern) {
        return false;
    }
    let name = image.split('@').next().unwrap_or(image);
    let name = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    };
    pattern == name
}

/// The images of a pod's (regular) containers.
fn images(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.image.as_deref())
}

fn any_image_matches(pod: &Pod, patterns: &[String]) -> bool {
    images(pod).any(|i| patterns.iter().any(|p| image_matches(p, i)))
}

fn is_job_pod(pod: &Pod) -> bool {
    pod.owner_references().iter().any(|o| o.kind == "Job")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// What the fake kubelet still has to do for a pod, given its current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Nothing: it is terminated, being deleted, or already running as it should.
    Nothing,
    /// Mark it Running (then, for a Job pod, terminate it).
    Run,
    /// It runs already: terminate it (Job pods only).
    Terminate,
}

impl Args {
    fn plan(&self, pod: &Pod) -> Plan {
        if pod.metadata.deletion_timestamp.is_some() {
            return Plan::Nothing;
        }
        let should_be_ready = !any_image_matches(pod, &self.never_ready);
        match phase(pod) {
            "Succeeded" | "Failed" => Plan::Nothing,
            "Running" if is_job_pod(pod) => Plan::Terminate,
            "Running" if is_ready(pod) == should_be_ready => Plan::Nothing,
            _ => Plan::Run,
        }
    }

    /// The exit code of a Job pod: the annotation, else 1 for a `--fail-image`, else 0.
    fn exit_code(&self, pod: &Pod) -> i32 {
        let annotated = pod.annotations().get(EXIT_CODE_ANNOTATION);
        match annotated.map(|v| v.trim().parse::<i32>()) {
            Some(Ok(code)) => code,
            Some(Err(_)) => {
                warn!(pod = %pod.name_any(), "annotation {EXIT_CODE_ANNOTATION} is not an integer; using 1");
                1
            }
            None if any_image_matches(pod, &self.fail_image) => 1,
            None => 0,
        }
    }
}

/// The colour `argoproj/rollouts-demo` answers with: the tag of the pod's first container
/// image (`latest` when it has none).
fn color(pod: &Pod) -> String {
    let image = images(pod).next().unwrap_or_default();
    let name = image.split('@').next().unwrap_or(image);
    match name.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag.to_string(),
        _ => "latest".to_string(),
    }
}

/// What a pod's HTTP server answers with.
#[derive(Clone)]
struct PodApp {
    name: String,
    hash: String,
    color: String,
    requests: Arc<AtomicU64>,
}

async fn answer(State(app): State<PodApp>, uri: Uri, headers: HeaderMap) -> Response {
    let requests = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let body = if uri.path() == "/color" {
        json!(app.color)
    } else {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        json!({"color": app.color, "pod": app.name, "hash": app.hash, "requests": requests,
               "host": host, "path": uri.path()})
    };
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    let mut response = body.to_string().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-pod-name", value(&app.name));
    headers.insert("x-pod-template-hash", value(&app.hash));
    response
}

/// A pod's HTTP server; dropping it stops the server.
struct PodServer {
    port: u16,
    _stop: oneshot::Sender<()>,
}

/// Starts serving `pod` on an ephemeral 127.0.0.1 port.
fn serve(pod: &Pod) -> std::io::Result<PodServer> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = PodApp {
        name: pod.name_any(),
        hash: pod.labels().get(HASH_LABEL).cloned().unwrap_or_default(),
        color: color(pod),
        requests: Arc::default(),
    };
    let router = axum::Router::new().fallback(answer).with_state(app);
    let (stop, stopped) = oneshot::channel::<()>();
    let name = pod.name_any();
    tokio::spawn(async move {
        // Dropping the sender (the pod is gone) shuts the server: the listener closes at
        // once, idle keep-alive connections are closed.
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(pod = %name, error = %e, "serving the pod failed");
        }
    });
    Ok(PodServer { port, _stop: stop })
}

/// The port published on a pod, if any.
fn published_port(pod: &Pod) -> Option<u16> {
    pod.annotations()
        .get(PORT_ANNOTATION)
        .and_then(|p| p.parse().ok())
}

/// Publishes `port` on a pod that already runs (a patch of its metadata).
async fn publish_port(client: Client, pod: Pod, port: u16) {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {PORT_ANNOTATION: port.to_string()}}});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => debug!(pod = %pod.name_any(), port, "port published"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => warn!(pod = %pod.name_any(), error = %e, "publishing the port failed"),
    }
}

/// The current time as the apiserver writes it (RFC 3339, whole seconds, UTC).
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn condition(type_: &str, ok: bool, at: &str) -> Value {
    let mut c = json!({"type": type_, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": at});
    if !ok {
        c["reason"] = json!("ContainersNotReady");
        c["message"] = json!("fake-kubelet: image is listed in --never-ready");
    }
    c
}

/// Container statuses for every container of `pod`, in `state` (`{"running": ...}` or
/// `{"terminated": ...}`).
fn container_statuses(pod: &Pod, ready: bool, state: &Value) -> Vec<Value> {
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    containers
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "containerID": format!("fake://{}/{}", pod.uid().unwrap_or_default(), c.name),
                "ready": ready,
                "started": state.get("running").is_some(),
                "restartCount": 0,
                "state": state,
            })
        })
        .collect()
}

/// Init containers (if any) are reported as having completed.
fn init_container_statuses(pod: &Pod, at: &str) -> Vec<Value> {
    let inits = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten());
    inits
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "ready": true, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at}},
            })
        })
        .collect()
}

/// The status patch that makes `pod` Running, publishing the port it is served on (the
/// pods/status subresource takes metadata changes too, so this is one patch).
fn running_status(pod: &Pod, ready: bool, pod_ip: &str, port: u16) -> Value {
    let at = now();
    json!({"metadata": {"annotations": {PORT_ANNOTATION: port.to_string()}}, "status": {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": at,
        "conditions": [
            condition("Initialized", true, &at),
            condition("Ready", ready, &at),
            condition("ContainersReady", ready, &at),
            condition("PodScheduled", true, &at),
        ],
        "initContainerStatuses": init_container_statuses(pod, &at),
        "containerStatuses": container_statuses(pod, ready, &json!({"running": {"startedAt": at}})),
    }})
}

/// The status patch that terminates a (Job) pod with `exit_code`.
fn terminated_status(pod: &Pod, exit_code: i32, started: &str) -> Value {
    let at = now();
    let reason = if exit_code == 0 { "Completed" } else { "Error" };
    let state = json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": at}});
    json!({"status": {
        "phase": if exit_code == 0 { "Succeeded" } else { "Failed" },
        "conditions": [
            condition("Initialized", true, &at),
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastProbeTime": null, "lastTransitionTime": at},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastProbeTime": null, "lastTransitionTime": at},
            condition("PodScheduled", true, &at),
        ],
        "containerStatuses": container_statuses(pod, false, &state),
    }})
}

/// Creates (or updates) the Node this kubelet stands for, with a Ready status. Retries until
/// the apiserver accepts it.
async fn register_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
    });
    let at = now();
    let resources =
        json!({"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"});
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "fake-kubelet is posting ready status",
                        "lastHeartbeatTime": at, "lastTransitionTime": at}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "capacity": resources, "allocatable": resources,
        "nodeInfo": {"kubeletVersion": "v1.20.2-fake", "kubeProxyVersion": "v1.20.2-fake",
                     "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "fake://0",
                     "kernelVersion": "", "osImage": "", "machineID": "", "systemUUID": "", "bootID": ""},
    }});
    let apply = PatchParams::apply("fake-kubelet").force();
    for attempt in 1u64.. {
        let result = async {
            nodes.patch(name, &apply, &Patch::Apply(&node)).await?;
            nodes
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await
        };
        match result.await {
            Ok(_) => return info!(node = name, "node registered"),
            Err(e) => {
                warn!(node = name, attempt, error = %e, "registering the node failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt.min(10))).await;
            }
        }
    }
}

/// Binds an unscheduled pod to `node`, as the scheduler would. Returns false when the pod is
/// gone.
async fn bind(client: &Client, pod: &Pod, node: &str) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    for attempt in 1..=5 {
        match api
            .create_subresource::<_, Value>("binding", &name, &PostParams::default(), &binding)
            .await
        {
            Ok(_) => return true,
            Err(kube::Error::Api(e)) if e.code == 404 => return false,
            // Already bound (by us, before a restart, or by someone else).
            Err(kube::Error::Api(e)) if e.code == 409 => return true,
            Err(e) => {
                warn!(pod = %name, attempt, error = %e, "binding failed");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
        }
    }
    false
}

/// Removes a pod that is being deleted, as a kubelet does once its containers stopped.
async fn finalize(client: Client, pod: Pod) {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    let mut dp = DeleteParams::default().grace_period(0);
    dp.preconditions = Some(Preconditions {
        uid: pod.uid(),
        resource_version: None,
    });
    match api.delete(&name, &dp).await {
        Ok(_) => {
            debug!(namespace = %pod.namespace().unwrap_or_default(), pod = %name, "pod deleted")
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => warn!(pod = %name, error = %e, "deleting the pod failed"),
    }
}

/// Patches the status of `pod`, retrying transient errors a few times. Returns false when the
/// pod is gone.
async fn patch_status(client: &Client, pod: &Pod, patch: &Value) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    for attempt in 1..=5 {
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return true,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                debug!(pod = %name, "pod is gone");
                return false;
            }
            Err(e) => {
                warn!(pod = %name, attempt, error = %e, "status patch failed");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
        }
    }
    false
}

/// Drives one pod from its current status to its final one.
async fn drive(client: Client, args: Arc<Args>, pod: Pod, plan: Plan, pod_ip: String, port: u16) {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let mut started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    if plan == Plan::Run {
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if !bound && !bind(&client, &pod, &args.node_name).await {
            return;
        }
        tokio::time::sleep(args.ready_after).await;
        let ready = !any_image_matches(&pod, &args.never_ready);
        let patch = running_status(&pod, ready, &pod_ip, port);
        if !patch_status(&client, &pod, &patch).await {
            return;
        }
        info!(namespace = %ns, pod = %name, ready, port, "pod running");
        started = patch["status"]["startTime"].as_str().map(str::to_owned);
    }
    if is_job_pod(&pod) {
        tokio::time::sleep(args.job_duration).await;
        let exit_code = args.exit_code(&pod);
        let started = started.unwrap_or_else(now);
        if patch_status(&client, &pod, &terminated_status(&pod, exit_code, &started)).await {
            info!(namespace = %ns, pod = %name, exit_code, "job pod terminated");
        }
    }
}

/// Pods being driven (or done with), by uid, so that each is driven once.
#[derive(Default)]
struct Pods {
    tasks: HashMap<String, AbortHandle>,
    /// Pods being deleted for good.
    finalizing: HashSet<String>,
    /// Uids seen since the watch (re)started, to forget pods deleted while it was down.
    relisted: Option<Vec<String>>,
    /// Pod IPs in use (by pod uid), so that a restarted fake kubelet hands out fresh ones.
    ips: HashMap<String, String>,
    next_ip: u32,
    /// The HTTP server of each pod that runs, by uid.
    servers: HashMap<String, PodServer>,
    /// The port last published on each pod (by a patch in flight or done), by uid.
    published: HashMap<String, u16>,
}

impl Pods {
    /// A made-up pod IP in 10.88.0.0/16 that no known pod has.
    fn new_pod_ip(&mut self) -> String {
        loop {
            self.next_ip = self.next_ip % 65_000 + 1;
            let ip = format!("10.88.{}.{}", self.next_ip / 256, self.next_ip % 256);
            if !self.ips.values().any(|used| *used == ip) {
                return ip;
            }
        }
    }

    fn seen(&mut self, client: &Client, args: &Arc<Args>, pod: Pod) {
        let Some(uid) = pod.uid() else { return };
        if let Some(seen) = self.relisted.as_mut() {
            seen.push(uid.clone());
        }
        if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
            self.ips.insert(uid.clone(), ip);
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.servers.remove(&uid);
            if let Some(task) = self.tasks.get(&uid) {
                task.abort();
            }
            if self.finalizing.insert(uid) {
                tokio::spawn(finalize(client.clone(), pod));
            }
            return;
        }
        let Some(port) = self.serving(client, &uid, &pod) else {
            return;
        };
        // One task drives a pod all the way; later events (including ones that predate our
        // own patches) change nothing.
        if self.tasks.contains_key(&uid) {
            return;
        }
        let plan = args.plan(&pod);
        if plan == Plan::Nothing {
            return;
        }
        debug!(namespace = %pod.namespace().unwrap_or_default(), pod = %pod.name_any(), ?plan, "driving pod");
        let pod_ip = match self.ips.get(&uid) {
            Some(ip) => ip.clone(),
            None => self.new_pod_ip(),
        };
        self.ips.insert(uid.clone(), pod_ip.clone());
        self.published.insert(uid.clone(), port);
        let task = tokio::spawn(drive(client.clone(), args.clone(), pod, plan, pod_ip, port));
        self.tasks.insert(uid, task.abort_handle());
    }

    /// Serves a pod that runs or is about to (starting its server on first sight, and
    /// publishing the port of a Running pod whose annotation does not name it: a pod a
    /// previous fake kubelet ran); stops serving a terminated one. The port, or None when the
    /// pod is terminated or cannot be served.
    fn serving(&mut self, client: &Client, uid: &str, pod: &Pod) -> Option<u16> {
        if matches!(phase(pod), "Succeeded" | "Failed") {
            self.servers.remove(uid);
            return None;
        }
        let port = match self.servers.get(uid) {
            Some(server) => server.port,
            None => match serve(pod) {
                Ok(server) => {
                    let port = server.port;
                    self.servers.insert(uid.to_string(), server);
                    port
                }
                Err(e) => {
                    warn!(pod = %pod.name_any(), error = %e, "cannot serve the pod");
                    return None;
                }
            },
        };
        let stale = published_port(pod) != Some(port) && self.published.get(uid) != Some(&port);
        if phase(pod) == "Running" && stale {
            self.published.insert(uid.to_string(), port);
            tokio::spawn(publish_port(client.clone(), pod.clone(), port));
        }
        Some(port)
    }

    fn deleted(&mut self, pod: &Pod) {
        let Some(uid) = pod.uid() else { return };
        self.servers.remove(&uid);
        self.published.remove(&uid);
        if let Some(task) = self.tasks.remove(&uid) {
            task.abort();
        }
        self.finalizing.remove(&uid);
        self.ips.remove(&uid);
    }

    fn relist_done(&mut self) {
        let Some(seen) = self.relisted.take() else {
            return;
        };
        let seen: HashSet<String> = seen.into_iter().collect();
        self.tasks.retain(|uid, task| {
            let keep = seen.contains(uid);
            if !keep {
                task.abort();
            }
            keep
        });
        self.finalizing.retain(|uid| seen.contains(uid));
        self.ips.retain(|uid, _| seen.contains(uid));
        self.servers.retain(|uid, _| seen.contains(uid));
        self.published.retain(|uid, _| seen.contains(uid));
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Arc::new(Args::parse());
    let client = Client::try_default().await?;
    register_node(&client, &args.node_name).await;
    info!(node = %args.node_name, ready_after = ?args.ready_after, job_duration = ?args.job_duration, never_ready = ?args.never_ready, fail_image = ?args.fail_image, "fake kubelet started");

    let pods_api: Api<Pod> = Api::all(client.clone());
    let mut events =
        std::pin::pin!(watcher::watcher(pods_api, watcher::Config::default()).default_backoff());
    let mut pods = Pods::default();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => pods.relisted = Some(Vec::new()),
            Ok(Event::InitApply(pod) | Event::Apply(pod)) => pods.seen(&client, &args, pod),
            Ok(Event::InitDone) => {
                pods.relist_done();
                info!(known = pods.tasks.len(), "watching pods");
            }
            Ok(Event::Delete(pod)) => pods.deleted(&pod),
            Err(e) => warn!(error = %e, "watch error; retrying"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{color, image_matches};
    use k8s_openapi::api::core::v1::Pod;

    fn pod_with_image(image: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": image}, {"name": "b", "image": "other:red"}]},
        }))
        .unwrap()
    }

    #[test]
    fn the_color_is_the_tag_of_the_first_container_image() {
        assert_eq!(
            color(&pod_with_image("argoproj/rollouts-demo:yellow")),
            "yellow"
        );
        assert_eq!(color(&pod_with_image("registry:5000/demo:blue")), "blue");
        assert_eq!(color(&pod_with_image("registry:5000/demo")), "latest");
        assert_eq!(color(&pod_with_image("demo:green@sha256:abc")), "green");
    }

    #[test]
    fn an_image_pattern_without_tag_matches_any_tag() {
        assert!(image_matches("nginx", "nginx:1.19"));
        assert!(image_matches("nginx", "nginx"));
        assert!(image_matches("registry:5000/app", "registry:5000/app:v2"));
        assert!(image_matches("app", "app@sha256:abc"));
        assert!(!image_matches("registry:5000/app", "registry:5000/app2"));
    }

    #[test]
    fn an_image_pattern_with_tag_matches_only_that_tag() {
        assert!(image_matches("nginx:1.19", "nginx:1.19"));
        assert!(!image_matches("nginx:1.19", "nginx:1.20"));
        assert!(!image_matches("nginx:1.19", "nginx"));
    }
}
