//! `rollouts controller`: kube-rs watches in, the core's actions out.
//!
//! - one watch per kind feeds the [`router::Router`], which caches objects (without their
//!   `managedFields`) and routes each change to the rollout or Experiment it concerns;
//!   Experiments, Ingresses and the Gateway API routes (HTTPRoute, GRPCRoute v1, TCPRoute
//!   v1alpha2) are watched when the cluster serves them and RBAC allows it, and looked for
//!   again every minute otherwise;
//! - one [`worker`] task per rollout owns its `State`, coalesces what arrived, reconciles
//!   once and executes the actions in order; one [`experiment`] task per Experiment does the
//!   same with the Experiment machine;
//! - [`leader`] election on a Lease lets several replicas run, one acting;
//! - `/metrics` and `/healthz` are served on 127.0.0.1 unless told otherwise.

pub mod events;
pub mod experiment;
pub mod leader;
pub mod metrics;
pub mod pool;
pub mod replay;
pub mod router;
pub mod trace;
pub mod worker;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodStatus, PodTemplate, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DynamicObject, ListParams};
use kube::client::ClientBuilder;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use rollouts_core::api::RouteKind;
use rollouts_core::state::{Object, ObjectKind};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::kubeapi::{
    analysis_run_resource, analysis_template_resource, cluster_analysis_template_resource, experiment_resource, rollout_resource,
    route_resource, KubeArgs,
};
use metrics::Metrics;
use router::{Router, Watched};
/// The label that assigns an object to one controller instance (`--instance-id`).
use rollouts_core::api::keys::CONTROLLER_INSTANCE_ID as INSTANCE_ID_LABEL;

/// Argo's Lease name.
const LEASE_NAME: &str = "argo-rollouts-controller-lock";
/// The reporting controller name on Kubernetes Events.
const REPORTER: &str = "rollouts-controller";

/// Flags of `rollouts controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Watch only the namespace of `--namespace` (or the kubeconfig's), not the whole cluster.
    #[arg(long)]
    pub namespaced: bool,
    /// Where to serve Prometheus metrics (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    pub metrics_addr: SocketAddr,
    /// Where to serve the health check (`/healthz`); may equal `--metrics-addr`.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub healthz_addr: SocketAddr,
    /// Take part in leader election, so that only one replica acts (`--leader-elect=false` to disable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub leader_elect: bool,
    /// Namespace of the election Lease (default: $POD_NAMESPACE, else `argo-rollouts`).
    #[arg(long, value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// How long a Lease is held without renewal before another replica may take it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub leader_election_renew_deadline: Duration,
    /// How often candidates try to take, and the leader to renew, the Lease.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub leader_election_retry_period: Duration,
    /// Handle only objects labelled `argo-rollouts.argoproj.io/controller-instance-id=<ID>`
    /// (without it: only objects without that label).
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// Reconcile every rollout at least this often, even when nothing happens.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub rollout_resync: Duration,
    /// Let go of the worker (and its memory) of a rollout that had nothing to do this long: no
    /// event, no timer, no write pending. Its next event or resync starts one again from the
    /// cache. `0s`: never.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub worker_idle_timeout: Duration,
    /// Rollout workers kept alive at most while they wait (for pods, a pause's end, the next
    /// measurement). Over it, a rollout that had no event for a second and has nothing
    /// pending but a timer gives its worker up; its next event or its timer starts one again
    /// from the cache. Bounds the memory of a burst (every rollout updated at once). `0`: no
    /// bound. (Argo reconciles with 10 `--rollout-threads`.)
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_workers: usize,
    /// Write every reconcile's events and actions to FILE as JSON lines (see `rollouts replay`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// The Istio API version of VirtualServices and DestinationRules.
    #[arg(long, default_value = rollouts_core::api::ISTIO_DEFAULT_VERSION, value_name = "VERSION")]
    pub istio_api_version: String,
    /// The SMI TrafficSplit API version (v1alpha1 writes weights as quantities).
    #[arg(long, default_value = rollouts_core::api::SMI_DEFAULT_VERSION, value_parser = ["v1alpha1", "v1alpha2", "v1alpha3"], value_name = "VERSION")]
    pub traffic_split_api_version: String,
    /// The Traefik API group of TraefikServices.
    #[arg(long, default_value = rollouts_core::api::TRAEFIK_DEFAULT_GROUP, value_name = "GROUP")]
    pub traefik_api_group: String,
    /// The Traefik API version of TraefikServices (`group/version`; the version is used).
    #[arg(long, default_value = rollouts_core::api::TRAEFIK_DEFAULT_VERSION, value_name = "VERSION")]
    pub traefik_api_version: String,
    /// The Ambassador Mapping API version (`x.getambassador.io/...` serves `ambassadormappings`).
    #[arg(long, default_value = rollouts_core::api::AMBASSADOR_DEFAULT_VERSION, value_name = "VERSION")]
    pub ambassador_api_version: String,
    /// The App Mesh CRD version (`appmesh.k8s.aws/<version>`).
    #[arg(long, default_value = rollouts_core::api::APPMESH_DEFAULT_VERSION, value_name = "VERSION")]
    pub appmesh_crd_version: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub logformat: LogFormat,
    /// Log level (`error`, `warn`, `info`, `debug`, or a tracing filter); $RUST_LOG wins.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub loglevel: String,
}

/// `--logformat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Connect(#[from] crate::kubeapi::ConnectError),
    #[error("cannot build a client: {0}")]
    Client(kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create the trace file {path}: {source}")]
    Trace { path: String, source: std::io::Error },
    #[error("leadership lost")]
    LeadershipLost,
    #[error(transparent)]
    Lease(#[from] leader::LeaseError),
    #[error("the watch streams ended")]
    WatchesEnded,
}

/// Runs the controller until it is stopped.
pub fn main(args: ControllerArgs) -> ExitCode {
    init_logging(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "controller stopped");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &ControllerArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.loglevel))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match args.logformat {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// API requests sent and not answered yet (a watch counts until its response begins), at
/// most. kube's client speaks HTTP/1.1: each request in flight holds a connection of its
/// own, with its buffers and TLS state (about 40 KB), kept in the pool afterwards. Without a
/// bound a burst (every rollout reconciling at once after a restart or an update of all of
/// them) opened a connection per rollout; the others now wait their turn. client-go
/// multiplexes its requests over one HTTP/2 connection.
const MAX_REQUESTS_IN_FLIGHT: usize = 32;

async fn run(args: ControllerArgs) -> Result<(), ControllerError> {
    // reqwest (metric providers) uses rustls with ring, like kube.
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::kubeapi::set_router_api_versions(&args.istio_api_version, &args.traffic_split_api_version);
    crate::kubeapi::set_proxy_api_versions(&args.traefik_api_group, &args.traefik_api_version, &args.ambassador_api_version);
    crate::kubeapi::set_appmesh_crd_version(&args.appmesh_crd_version);
    let config = args.kube.config().await?;
    let namespace = config.default_namespace.clone();
    let metrics = Metrics::new();
    let client = ClientBuilder::try_from(config)
        .map_err(ControllerError::Client)?
        .with_layer(&metrics::CountRequests(metrics.clone()))
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(MAX_REQUESTS_IN_FLIGHT))
        .build();
    serve(&args, metrics.clone()).await?;

    let (lost_tx, mut lost_rx) = tokio::sync::watch::channel(false);
    if args.leader_elect {
        let config = leader::LeaderConfig {
            namespace: args
                .leader_election_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "argo-rollouts".to_string()),
            name: match &args.instance_id {
                Some(id) => format!("{LEASE_NAME}-{id}"),
                None => LEASE_NAME.to_string(),
            },
            identity: identity(),
            lease_duration: args.leader_election_lease_duration,
            renew_deadline: args.leader_election_renew_deadline,
            retry_period: args.leader_election_retry_period,
        };
        let mut elector = leader::Elector::new(client.clone(), config);
        // A lease that can never be taken (its namespace is missing, RBAC forbids it) stops the
        // controller at once with what to do, exit code 1: out of the cluster the user reads it
        // right away; in a Pod, the restarts (CrashLoopBackOff) show it, and the controller
        // starts once the namespace or the permission exists.
        tokio::select! {
            acquired = elector.acquire() => acquired?,
            () = shutdown_signal() => return Ok(()),
        }
        tokio::spawn(elector.keep(lost_tx));
    }

    let trace = match &args.record {
        Some(path) => Some(trace::Trace::create(path).map_err(|source| ControllerError::Trace {
            path: path.display().to_string(),
            source,
        })?),
        None => None,
    };
    // Notifications read their ConfigMap and Secret where Argo's do: $POD_NAMESPACE, else
    // the namespace a --namespaced controller is confined to, else `argo-rollouts`.
    let notification_ns = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .or_else(|| args.namespaced.then(|| namespace.clone()))
        .unwrap_or_else(|| "argo-rollouts".to_string());
    let notifier = crate::notifications::Notifier::start(client.clone(), &notification_ns, Some(metrics.clone()));
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel::<pool::Idle>();
    let shared = Arc::new(worker::Shared {
        client: client.clone(),
        notifier,
        metrics,
        recorder: events::EventRecorder::new(client.clone(), REPORTER, &identity()),
        trace,
        resync: args.rollout_resync,
        dormancy: (!args.worker_idle_timeout.is_zero() || args.max_workers > 0).then(|| pool::Dormancy {
            after: args.worker_idle_timeout,
            cap: args.max_workers,
            tx: idle_tx,
        }),
    });

    let scope = args.namespaced.then_some(namespace);
    let (tx, mut rx) = mpsc::unbounded_channel::<Watched>();
    let kinds = spawn_watches(&client, scope.as_deref(), args.instance_id.as_deref(), &tx).await;
    // Confined to a namespace, the controller still watches the routes its rollouts name in
    // other namespaces (`namespace:` of the Gateway API configuration).
    let extra_tx = scope.is_some().then(|| tx.downgrade());
    let mut extra_routes: BTreeSet<(ObjectKind, String)> = BTreeSet::new();
    drop(tx);
    let mut router = Router::new(kinds);
    let mut workers = pool::Pool::new(args.max_workers);
    tracing::info!(scope = scope.as_deref().unwrap_or("all namespaces"), "controller started; listing objects");
    loop {
        let resync = workers.next_resync();
        tokio::select! {
            watched = rx.recv() => {
                let Some(watched) = watched else { return Err(ControllerError::WatchesEnded) };
                let was_started = router.started();
                for routed in router.handle(watched) {
                    workers.dispatch(routed, &mut router, &shared);
                }
                let changed = router.take_references_changed();
                if let (true, Some(scope), Some(tx)) = (changed, &scope, extra_tx.as_ref().and_then(mpsc::WeakUnboundedSender::upgrade)) {
                    for (kind, ns) in router.route_namespaces() {
                        if ns != *scope && extra_routes.insert((kind, ns.clone())) {
                            watch_routes_in(&client, kind, ns, &tx);
                        }
                    }
                }
                if !was_started && router.started() {
                    tracing::info!(rollouts = workers.running(), objects = router.cached(), "caches synced; reconciling");
                }
            }
            Some(idle) = idle_rx.recv() => workers.idle(idle, &mut router, &shared),
            () = sleep_until(resync) => workers.resync_due(std::time::Instant::now(), &mut router, &shared),
            _ = lost_rx.changed() => return Err(ControllerError::LeadershipLost),
            () = shutdown_signal() => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Starts one watch per kind; returns the kinds the router must see listed before it
/// starts the workers.
///
/// Ingresses and the Gateway API routes are optional: a cluster without the Gateway API CRDs
/// (404) or a controller whose RBAC does not let it list them (403) still serves everything
/// else. Such a kind is logged once and probed again every [`DISCOVERY_RETRY`]; once it can
/// be listed its watch starts, and its objects reach the rollouts that reference them.
async fn spawn_watches(
    client: &Client,
    scope: Option<&str>,
    instance_id: Option<&str>,
    tx: &mpsc::UnboundedSender<Watched>,
) -> Vec<ObjectKind> {
    let instance = match instance_id {
        Some(id) => format!("{INSTANCE_ID_LABEL}={id}"),
        None => format!("!{INSTANCE_ID_LABEL}"),
    };
    let by_instance = watcher::Config::default().labels(&instance);
    let dynamic = |ar: &kube::core::ApiResource| -> Api<DynamicObject> {
        match scope {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        }
    };
    fn typed<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(client: &Client, scope: Option<&str>) -> Api<K>
    where
        K::DynamicType: Default,
    {
        match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    fn raw(o: DynamicObject) -> serde_json::Value {
        serde_json::to_value(o).unwrap_or_default()
    }
    let hash = watcher::Config::default().labels(rollouts_core::api::keys::POD_TEMPLATE_HASH);
    watch(dynamic(&rollout_resource()), by_instance.clone(), ObjectKind::Rollout, |o| Object::Rollout(raw(without_last_applied(o)).into()), tx);
    watch(typed::<ReplicaSet>(client, scope), hash.clone(), ObjectKind::ReplicaSet, |o| Object::ReplicaSet(Arc::new(o)), tx);
    watch(typed::<Pod>(client, scope), hash, ObjectKind::Pod, |o| Object::Pod(Arc::new(trim_pod(o))), tx);
    watch(typed::<Service>(client, scope), watcher::Config::default(), ObjectKind::Service, |o| Object::Service(Arc::new(o)), tx);
    watch(dynamic(&analysis_run_resource()), by_instance.clone(), ObjectKind::AnalysisRun, |o| Object::AnalysisRun(raw(o)), tx);
    watch(dynamic(&analysis_template_resource()), by_instance.clone(), ObjectKind::AnalysisTemplate, |o| Object::AnalysisTemplate(raw(o)), tx);
    let jobs = watcher::Config::default().labels(rollouts_core::rollout::JOB_RUN_UID);
    watch(typed::<Job>(client, scope), jobs, ObjectKind::Job, |o| Object::Job(Box::new(o)), tx);
    let mut kinds = vec![
        ObjectKind::Rollout,
        ObjectKind::ReplicaSet,
        ObjectKind::Pod,
        ObjectKind::Service,
        ObjectKind::AnalysisRun,
        ObjectKind::AnalysisTemplate,
        ObjectKind::Job,
    ];
    // Cluster-scoped templates are watched unless the controller is confined to a namespace.
    if scope.is_none() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &cluster_analysis_template_resource());
        watch(api, watcher::Config::default(), ObjectKind::ClusterAnalysisTemplate, |o| {
            Object::ClusterAnalysisTemplate(raw(o))
        }, tx);
        kinds.push(ObjectKind::ClusterAnalysisTemplate);
    }
    // The traffic routers' objects, when the cluster serves them and we may list them.
    let ingresses = typed::<Ingress>(client, scope);
    // What `workloadRef`s name: optional too (RBAC may leave them out).
    let workload = |o: serde_json::Value| Object::Workload(trim_workload(o));
    let all = watcher::Config::default;
    // Experiments too: a cluster without their CRD (an upgrade that skipped it) still serves
    // rollouts.
    let (ingress, routes, deployments, pod_templates, experiments) = futures::join!(
        watch_optional(ingresses, all(), ObjectKind::Ingress, None, |o| Object::Ingress(Box::new(o)), tx),
        futures::future::join_all(RouteKind::ALL.map(|route| {
            let resource = route_resource(route);
            watch_optional(dynamic(&resource), all(), route.into(), None, move |o| Object::Route(route_json(o, route)), tx)
        })),
        watch_optional(typed::<Deployment>(client, scope), all(), ObjectKind::Deployment, None, move |o| workload(typed_json(&o)), tx),
        watch_optional(typed::<PodTemplate>(client, scope), all(), ObjectKind::PodTemplate, None, move |o| workload(typed_json(&o)), tx),
        watch_optional(dynamic(&experiment_resource()), by_instance.clone(), ObjectKind::Experiment, None, |o| Object::Experiment(raw(o)), tx),
    );
    kinds.extend(experiments);
    kinds.extend(ingress);
    kinds.extend(routes.into_iter().flatten());
    kinds.extend(deployments);
    kinds.extend(pod_templates);
    kinds
}

/// Starts a watch of `kind` routes in `namespace` (for a controller confined to another
/// namespace whose rollouts name routes there), in the background: like the controller's own
/// route watches, it waits while the API is missing or forbidden.
fn watch_routes_in(client: &Client, kind: ObjectKind, namespace: String, tx: &mpsc::UnboundedSender<Watched>) {
    let Some(route) = kind.route_kind() else { return };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &route_resource(route));
    tracing::info!(?kind, %namespace, "a rollout names routes in another namespace; watching them there too");
    let tx = tx.clone();
    tokio::spawn(async move {
        watch_optional(api, watcher::Config::default(), kind, Some(namespace), move |o| Object::Route(route_json(o, route)), &tx).await;
    });
}

/// How often a kind the cluster did not serve (or RBAC forbade) is looked for again.
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(60);

/// A typed object as JSON (k8s-openapi writes its `apiVersion` and `kind`).
fn typed_json<K: serde::Serialize>(o: &K) -> serde_json::Value {
    serde_json::to_value(o).unwrap_or_default()
}

/// A Pod as the core reads it: its metadata (owner, labels and annotations for ephemeral
/// metadata, creation and deletion times for restarts) and its `Ready` condition
/// ([`rollouts_core::objects::pod_ready_since`]). The spec, the other conditions and the rest
/// of the status are most of a pod, and every pod of every rollout is cached: they are dropped.
fn trim_pod(pod: Pod) -> Pod {
    let conditions = pod.status.and_then(|s| s.conditions).map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect());
    Pod { metadata: pod.metadata, spec: None, status: Some(PodStatus { conditions, ..PodStatus::default() }) }
}

/// A Rollout without `kubectl apply`'s copy of itself (often half of it): the core never
/// copies it to a ReplicaSet nor reads it.
fn without_last_applied(mut o: DynamicObject) -> DynamicObject {
    if let Some(annotations) = o.metadata.annotations.as_mut() {
        annotations.remove(rollouts_core::api::keys::LAST_APPLIED);
    }
    o
}

/// A Deployment or PodTemplate as a `workloadRef` reads it: its kind and name, its
/// generation (recorded on the Rollout), and its template, selector and replicas. Every
/// Deployment of the watched namespaces is cached, referenced or not: the rest (labels,
/// annotations, status) is dropped so that a cluster's Deployments cost little more than
/// their templates.
fn trim_workload(o: serde_json::Value) -> serde_json::Value {
    use serde_json::{Map, Value};
    let pick = |o: Option<&Value>, keys: &[&str]| -> Value {
        let kept: Map<String, Value> =
            keys.iter().filter_map(|k| Some((k.to_string(), o?.get(*k)?.clone()))).collect();
        Value::Object(kept)
    };
    let Value::Object(mut top) = pick(Some(&o), &["apiVersion", "kind", "template"]) else { return o };
    top.insert("metadata".into(), pick(o.get("metadata"), &["name", "namespace", "uid", "generation", "resourceVersion"]));
    if o.get("spec").is_some() {
        top.insert("spec".into(), pick(o.get("spec"), &["replicas", "selector", "template"]));
    }
    Value::Object(top)
}

/// A Gateway API route as the core reads it: raw JSON with its `apiVersion` and `kind` set
/// (list items may come without them).
fn route_json(mut o: DynamicObject, route: RouteKind) -> serde_json::Value {
    o.types = Some(kube::core::TypeMeta { api_version: crate::kubeapi::route_api_version(route), kind: route.as_str().to_string() });
    serde_json::to_value(o).unwrap_or_default()
}

/// Why a kind cannot be watched, when the answer to a list says it never will be without a
/// change to the cluster (the CRD is not installed, RBAC forbids it); `None` for an answer
/// worth retrying at the watch's pace (a timeout, a 500).
pub fn unavailable(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(s) if matches!(s.code, 403 | 404) => Some(format!("{} ({})", s.message, s.code)),
        _ => None,
    }
}

/// Watches `kind` if the cluster serves it and we may list it: returns the kind for the
/// router to wait for. Otherwise logs why once, returns `None`, and keeps probing every
/// [`DISCOVERY_RETRY`] in the background, starting the watch when a probe succeeds.
async fn watch_optional<K, F>(
    api: Api<K>,
    config: watcher::Config,
    kind: ObjectKind,
    extra: Option<String>,
    to_object: F,
    tx: &mpsc::UnboundedSender<Watched>,
) -> Option<ObjectKind>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(K) -> Object + Send + 'static,
{
    let probe = |api: Api<K>| async move {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => None,
            Err(e) => unavailable(&e),
        }
    };
    let Some(why) = probe(api.clone()).await else {
        watch_listing(api, config, kind, extra, to_object, tx);
        return Some(kind);
    };
    tracing::warn!(
        ?kind,
        namespace = extra.as_deref().unwrap_or("(the controller's)"),
        reason = %why,
        retry = ?DISCOVERY_RETRY,
        "cannot list these objects (API not installed, or not allowed); serving everything else, and rollouts that reference them wait"
    );
    let tx = tx.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(DISCOVERY_RETRY).await;
            if tx.is_closed() {
                return;
            }
            if probe(api.clone()).await.is_none() {
                tracing::info!(?kind, namespace = extra.as_deref().unwrap_or("(the controller's)"), "these objects can be listed now; watching them");
                watch_listing(api, config, kind, extra, to_object, &tx);
                return;
            }
        }
    });
    None
}

/// Runs one watch (list, then watch; re-listing with backoff after errors) into the router's
/// channel. Objects are cached without `metadata.managedFields` (the core never reads them;
/// they are often the bulk of an object). A failing watch is logged once, at warn, until it
/// recovers.
fn watch<K, F>(api: Api<K>, config: watcher::Config, kind: ObjectKind, to_object: F, tx: &mpsc::UnboundedSender<Watched>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(K) -> Object + Send + 'static,
{
    watch_listing(api, config, kind, None, to_object, tx);
}

/// [`watch`], reporting its lists as those of one more namespace (`extra`) when given.
fn watch_listing<K, F>(
    api: Api<K>,
    config: watcher::Config,
    kind: ObjectKind,
    extra: Option<String>,
    to_object: F,
    tx: &mpsc::UnboundedSender<Watched>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(K) -> Object + Send + 'static,
{
    let tx = tx.clone();
    let convert = move |mut o: K| {
        o.meta_mut().managed_fields = None;
        to_object(o)
    };
    tokio::spawn(async move {
        let mut stream = watcher(api, config).default_backoff().boxed();
        let mut failing = false;
        while let Some(event) = stream.next().await {
            let watched = match event {
                Ok(watcher::Event::Init) => match &extra {
                    Some(ns) => Watched::InitIn(kind, ns.clone()),
                    None => Watched::Init(kind),
                },
                Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => Watched::Apply(convert(o)),
                Ok(watcher::Event::Delete(o)) => Watched::Delete(convert(o)),
                Ok(watcher::Event::InitDone) => match &extra {
                    Some(ns) => Watched::InitDoneIn(kind, ns.clone()),
                    None => Watched::InitDone(kind),
                },
                Err(e) => {
                    if std::mem::replace(&mut failing, true) {
                        tracing::debug!(?kind, error = %e, "watch still failing; retrying");
                    } else {
                        tracing::warn!(?kind, error = %e, "watch failed; retrying with backoff");
                    }
                    continue;
                }
            };
            if std::mem::take(&mut failing) {
                tracing::info!(?kind, "watch recovered");
            }
            if tx.send(watched).is_err() {
                return;
            }
        }
    });
}

/// `<hostname>_<pid>-<nanos>`: unique per process, readable in the Lease.
fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rollouts".to_string());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{host}_{}-{nanos:08x}", std::process::id())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Serves `/metrics` and `/healthz` (on one listener when the addresses are equal).
async fn serve(args: &ControllerArgs, metrics: Arc<Metrics>) -> Result<(), ControllerError> {
    use axum::routing::get;
    let metrics_route = {
        let metrics = metrics.clone();
        get(move || {
            let body = metrics.render();
            async move {
                (
                    [(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    body,
                )
            }
        })
    };
    let healthz = get(|| async { "ok" });
    let listen = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr).await.map_err(|source| ControllerError::Listen { addr, source })
    };
    let mut apps = Vec::new();
    if args.metrics_addr == args.healthz_addr {
        let app = axum::Router::new().route("/metrics", metrics_route).route("/healthz", healthz);
        apps.push(("metrics and healthz", listen(args.metrics_addr).await?, app));
    } else {
        apps.push(("metrics", listen(args.metrics_addr).await?, axum::Router::new().route("/metrics", metrics_route)));
        apps.push(("healthz", listen(args.healthz_addr).await?, axum::Router::new().route("/healthz", healthz)));
    }
    for (what, listener, app) in apps {
        let addr = listener.local_addr().map_err(|source| ControllerError::Listen { addr: args.metrics_addr, source })?;
        tracing::info!(%addr, "serving {what}");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%addr, error = %e, "server stopped");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": code, "message": "the server could not find the requested resource"}))
                .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_missing_api_or_a_forbidden_list_makes_a_kind_unavailable_other_errors_are_retried_by_the_watch() {
        assert!(unavailable(&api_error(404)).is_some_and(|m| m.contains("(404)")));
        assert!(unavailable(&api_error(403)).is_some());
        assert_eq!(unavailable(&api_error(500)), None);
        assert_eq!(unavailable(&api_error(429)), None);
    }

    #[test]
    fn a_route_listed_without_its_type_gets_it() {
        let o: DynamicObject = serde_json::from_value(serde_json::json!({"metadata": {"name": "r", "namespace": "ns"}})).unwrap();
        let v = route_json(o, RouteKind::Tcp);
        assert_eq!(v["kind"], "TCPRoute");
        assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1alpha2");
        assert_eq!(router::kind_of(&Object::Route(v)), ObjectKind::TcpRoute);
    }

    #[test]
    fn a_cached_pod_keeps_what_the_core_reads_and_drops_its_spec() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-abc-1", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"rollouts-pod-template-hash": "abc"}, "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u", "controller": true}]
            },
            "spec": {"containers": [{"name": "app", "image": "argoproj/rollouts-demo:blue", "env": [{"name": "X", "value": "y"}]}]},
            "status": {
                "phase": "Running", "podIP": "10.88.0.1",
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ],
                "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 0}]
            }
        }))
        .unwrap();
        let trimmed = trim_pod(pod.clone());
        assert_eq!(trimmed.metadata, pod.metadata);
        assert_eq!(trimmed.spec, None);
        let status = trimmed.status.clone().unwrap();
        assert_eq!((status.phase, status.pod_ip, status.container_statuses), (None, None, None));
        let kept: Vec<String> = status.conditions.unwrap_or_default().into_iter().map(|c| c.type_).collect();
        assert_eq!(kept, ["Ready"]);
        assert_eq!(rollouts_core::objects::pod_owner(&trimmed), Some("web-abc"));
        assert_eq!(rollouts_core::objects::pod_ready_since(&trimmed), rollouts_core::objects::pod_ready_since(&pod));
        assert!(rollouts_core::objects::pod_ready_since(&trimmed).is_some());
    }

    #[test]
    fn a_cached_workload_keeps_its_kind_name_generation_template_selector_and_replicas() {
        let template = serde_json::json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "i"}]}});
        let deployment = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "ns", "uid": "u", "generation": 3, "resourceVersion": "7",
                "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
            },
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template, "strategy": {"type": "RollingUpdate"}},
            "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]}
        });
        assert_eq!(
            trim_workload(deployment),
            serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "ns", "uid": "u", "generation": 3, "resourceVersion": "7"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template}
            })
        );
        let pod_template = serde_json::json!({
            "apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t", "namespace": "ns", "labels": {"x": "y"}}, "template": template
        });
        let trimmed = trim_workload(pod_template);
        assert_eq!(trimmed["template"], template);
        assert_eq!(trimmed["metadata"], serde_json::json!({"name": "t", "namespace": "ns"}));
        assert_eq!(router::kind_of(&Object::Workload(trimmed)), ObjectKind::PodTemplate);
    }

    #[test]
    fn a_cached_rollout_drops_kubectl_s_copy_of_itself_only() {
        let o: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}}
        }))
        .unwrap();
        let kept = without_last_applied(o).metadata.annotations.unwrap();
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![("keep".to_string(), "me".to_string())]);
    }

    #[test]
    fn app_mesh_s_virtual_service_is_not_istio_s() {
        let o = || serde_json::from_value::<DynamicObject>(serde_json::json!({"metadata": {"name": "vs", "namespace": "ns"}})).unwrap();
        let app_mesh = route_json(o(), RouteKind::AppMeshVirtualService);
        assert_eq!((app_mesh["kind"].as_str(), app_mesh["apiVersion"].as_str()), (Some("VirtualService"), Some("appmesh.k8s.aws/v1beta2")));
        assert_eq!(router::kind_of(&Object::Route(app_mesh)), ObjectKind::AppMeshVirtualService);
        assert_eq!(router::kind_of(&Object::Route(route_json(o(), RouteKind::VirtualService))), ObjectKind::VirtualService);
        let resource = route_resource(RouteKind::VirtualNode);
        assert_eq!((resource.group.as_str(), resource.plural.as_str()), ("appmesh.k8s.aws", "virtualnodes"));
    }
}
