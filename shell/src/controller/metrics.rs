//! The controller's Prometheus metrics, under Argo Rollouts' names, and the client layer that
//! counts every request to the API server (`controller_clientset_k8s_request_total`).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use futures::FutureExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rollouts_core::api::{ConditionStatus, ConditionType, Rollout};
use rollouts_core::state::EventType;

/// At most this many `controller_clientset_k8s_request_total` series carry an object name;
/// requests that would open another named series are counted with an empty name instead
/// (the counters stay monotonic: no series is ever evicted).
pub const MAX_NAMED_REQUEST_SERIES: usize = 10_000;

/// Labels of `controller_clientset_k8s_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: Label,
    pub namespace: Label,
    pub name: Label,
    pub verb: &'static str,
    pub status_code: Label,
}

/// A label value many series share (a rollout's namespace and name): cloning it shares one
/// allocation, so a rollout's dozen series hold one copy of its name, not a dozen.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label(Arc<str>);

impl From<&str> for Label {
    fn from(s: &str) -> Self {
        Label(Arc::from(s))
    }
}

/// Looks a [`Metrics::label`] up by its text (the derived `Hash` and `Eq` are the text's).
impl std::borrow::Borrow<str> for Label {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl prometheus_client::encoding::EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder) -> Result<(), std::fmt::Error> {
        (&*self.0).encode(encoder)
    }
}

/// Labels of the per-rollout series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct RolloutLabels {
    pub namespace: Label,
    pub name: Label,
}

/// Labels of `rollout_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutInfoLabels {
    pub namespace: Label,
    pub name: Label,
    pub strategy: &'static str,
    pub traffic_router: &'static str,
    pub phase: &'static str,
}

/// Labels of `experiment_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExperimentInfoLabels {
    pub namespace: Label,
    pub name: Label,
    pub phase: &'static str,
}

/// Labels of `rollout_phase`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutPhaseLabels {
    pub namespace: Label,
    pub name: Label,
    pub strategy: &'static str,
    pub phase: &'static str,
}

/// Labels of `rollout_events_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub namespace: Label,
    pub name: Label,
    #[prometheus(flatten)]
    pub event: EventKind,
}

/// Type and reason of a recorded event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventKind {
    pub r#type: &'static str,
    pub reason: Label,
}

/// Every metric the controller serves.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// How many series of `requests` carry a name.
    named_requests: Mutex<usize>,
    /// Label values from small sets (namespaces, kinds, reasons, status codes), one copy of
    /// each that every series shares ([`Metrics::label`]). Never emptied: it grows with the
    /// namespaces the controller has seen, like the request and event series (never removed).
    interned: Mutex<std::collections::HashSet<Label>>,
    pub reconcile: Family<RolloutLabels, Histogram>,
    pub reconcile_error: Family<RolloutLabels, Counter>,
    pub events: Family<EventLabels, Counter>,
    /// Notifications delivered / not delivered, and how long sending took (Argo's
    /// `notification_send_success`, `notification_send_error`, `notification_send`).
    pub notification_success: Family<EventLabels, Counter>,
    pub notification_error: Family<EventLabels, Counter>,
    pub notification_send: Family<RolloutLabels, Histogram>,
    info: Family<RolloutInfoLabels, Gauge>,
    phase: Family<RolloutPhaseLabels, Gauge>,
    available: Family<RolloutLabels, Gauge>,
    unavailable: Family<RolloutLabels, Gauge>,
    desired: Family<RolloutLabels, Gauge>,
    updated: Family<RolloutLabels, Gauge>,
    /// The `rollout_info` labels last set per rollout, to remove the old series on change.
    last_info: Mutex<std::collections::BTreeMap<RolloutLabels, RolloutInfoLabels>>,
    /// Experiment reconciles: duration and failures (Argo's `experiment_reconcile`,
    /// `experiment_reconcile_error`).
    pub experiment_reconcile: Family<RolloutLabels, Histogram>,
    pub experiment_reconcile_error: Family<RolloutLabels, Counter>,
    experiment_info: Family<ExperimentInfoLabels, Gauge>,
    /// The `experiment_info` labels last set per Experiment.
    last_experiment_info: Mutex<std::collections::BTreeMap<RolloutLabels, ExperimentInfoLabels>>,
}

/// Argo's phases for the deprecated `rollout_phase` gauge family.
const PHASES: [&str; 7] = ["Progressing", "Completed", "Paused", "Timeout", "Error", "Abort", "InvalidSpec"];

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "controller_clientset_k8s_request",
            "Number of kubernetes requests executed during application reconciliation.",
            requests.clone(),
        );
        let reconcile = Family::<RolloutLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.15, 0.25, 0.5, 1.0])
        });
        registry.register("rollout_reconcile", "Rollout reconciliation performance.", reconcile.clone());
        let reconcile_error = Family::<RolloutLabels, Counter>::default();
        registry.register("rollout_reconcile_error", "Error occurring during the rollout", reconcile_error.clone());
        let events = Family::<EventLabels, Counter>::default();
        registry.register("rollout_events", "Count of rollout events", events.clone());
        let notification_success = Family::<EventLabels, Counter>::default();
        registry.register("notification_send_success", "Notification send success.", notification_success.clone());
        let notification_error = Family::<EventLabels, Counter>::default();
        registry.register("notification_send_error", "Error sending the notification", notification_error.clone());
        let notification_send =
            Family::<RolloutLabels, Histogram>::new_with_constructor(|| Histogram::new([0.01, 0.15, 0.25, 0.5, 1.0]));
        registry.register("notification_send", "Notification send performance.", notification_send.clone());
        let info = Family::<RolloutInfoLabels, Gauge>::default();
        registry.register("rollout_info", "Information about rollout.", info.clone());
        let phase = Family::<RolloutPhaseLabels, Gauge>::default();
        registry.register("rollout_phase", "Information on the state of the rollout (DEPRECATED - use rollout_info)", phase.clone());
        let available = Family::<RolloutLabels, Gauge>::default();
        registry.register("rollout_info_replicas_available", "The number of available replicas per rollout.", available.clone());
        let unavailable = Family::<RolloutLabels, Gauge>::default();
        registry.register("rollout_info_replicas_unavailable", "The number of unavailable replicas per rollout.", unavailable.clone());
        let desired = Family::<RolloutLabels, Gauge>::default();
        registry.register("rollout_info_replicas_desired", "The number of desired replicas per rollout.", desired.clone());
        let updated = Family::<RolloutLabels, Gauge>::default();
        registry.register("rollout_info_replicas_updated", "The number of updated replicas per rollout.", updated.clone());
        let experiment_reconcile =
            Family::<RolloutLabels, Histogram>::new_with_constructor(|| Histogram::new([0.01, 0.15, 0.25, 0.5, 1.0]));
        registry.register("experiment_reconcile", "Experiments reconciliation performance.", experiment_reconcile.clone());
        let experiment_reconcile_error = Family::<RolloutLabels, Counter>::default();
        registry.register("experiment_reconcile_error", "Error occurring during the experiment", experiment_reconcile_error.clone());
        let experiment_info = Family::<ExperimentInfoLabels, Gauge>::default();
        registry.register("experiment_info", "Information about Experiment.", experiment_info.clone());
        let controller_info = Family::<Vec<(String, String)>, Gauge>::default();
        controller_info.get_or_create(&vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())]).set(1);
        registry.register("argo_rollouts_controller_info", "Running Argo-rollouts version", controller_info);
        Arc::new(Metrics {
            registry,
            requests,
            named_requests: Mutex::new(0),
            interned: Mutex::default(),
            reconcile,
            reconcile_error,
            events,
            notification_success,
            notification_error,
            notification_send,
            info,
            phase,
            available,
            unavailable,
            desired,
            updated,
            last_info: Mutex::default(),
            experiment_reconcile,
            experiment_reconcile_error,
            experiment_info,
            last_experiment_info: Mutex::default(),
        })
    }

    /// Counts one request under Argo's labels, with the series bounded: Events get no name
    /// (every recorded or aggregated Event has a name of its own, so a name per Event would be a
    /// series per Event for the life of the process), and past [`MAX_NAMED_REQUEST_SERIES`]
    /// named series a new name is counted with an empty one.
    pub fn count_request(&self, kind: &str, namespace: &str, name: &str, verb: &'static str, status_code: &str) {
        let name = if kind == "events" { "" } else { name };
        let [kind, namespace, status_code, unnamed] = self.labels([kind, namespace, status_code, ""]);
        let mut labels = RequestLabels {
            kind,
            namespace,
            name: if name.is_empty() { unnamed.clone() } else { name.into() },
            verb,
            status_code,
        };
        if !name.is_empty() && self.requests.get(&labels).is_none() {
            let mut named = self.named_requests.lock().unwrap_or_else(|e| e.into_inner());
            if *named >= MAX_NAMED_REQUEST_SERIES {
                labels.name = unnamed;
            } else if self.requests.get(&labels).is_none() {
                *named += 1;
                self.requests.get_or_create(&labels).inc();
                return;
            }
        }
        self.requests.get_or_create(&labels).inc();
    }

    /// The shared copy of a label value from a small set (a namespace, a kind, a reason).
    pub fn label(&self, value: &str) -> Label {
        let [label] = self.labels([value]);
        label
    }

    /// [`Metrics::label`] of several values, under one lock (a request counts four).
    fn labels<const N: usize>(&self, values: [&str; N]) -> [Label; N] {
        let mut interned = self.interned.lock().unwrap_or_else(|e| e.into_inner());
        values.map(|value| match interned.get(value) {
            Some(label) => label.clone(),
            None => {
                let label = Label::from(value);
                interned.insert(label.clone());
                label
            }
        })
    }

    /// A rollout's (or Experiment's) labels, its namespace shared.
    pub fn rollout_labels(&self, namespace: &str, name: &str) -> RolloutLabels {
        RolloutLabels { namespace: self.label(namespace), name: name.into() }
    }

    /// The labels of `rollout_events_total` (and the notification counters).
    pub fn event_labels(&self, namespace: &str, name: &str, kind: EventType, reason: &str) -> EventLabels {
        let [namespace, reason] = self.labels([namespace, reason]);
        EventLabels { namespace, name: name.into(), event: EventKind { r#type: kind.as_str(), reason } }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Updates the per-rollout gauges from the rollout as the core last saw it.
    pub fn observe_rollout(&self, namespace: &str, name: &str, rollout: Option<&Rollout>, invalid: bool) {
        let key = self.rollout_labels(namespace, name);
        let mut last = self.last_info.lock().unwrap_or_else(|e| e.into_inner());
        // The series are made again below with the key they had (its name shared).
        let (key, old) = match last.remove_entry(&key) {
            Some((key, old)) => (key, Some(old)),
            None => (key, None),
        };
        if let Some(old) = old {
            for phase in PHASES {
                self.phase.remove(&RolloutPhaseLabels {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    strategy: old.strategy,
                    phase,
                });
            }
            self.info.remove(&old);
        }
        let Some(ro) = rollout else {
            for g in [&self.available, &self.unavailable, &self.desired, &self.updated] {
                g.remove(&key);
            }
            return;
        };
        let strategy = if ro.spec.strategy.blue_green.is_some() {
            "blueGreen"
        } else if ro.spec.strategy.canary.is_some() {
            "canary"
        } else {
            "none"
        };
        let phase = info_phase(ro, invalid);
        let labels = RolloutInfoLabels {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            strategy,
            traffic_router: traffic_router(ro),
            phase,
        };
        self.info.get_or_create(&labels).set(1);
        for p in PHASES {
            let l = RolloutPhaseLabels {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                strategy,
                phase: p,
            };
            self.phase.get_or_create(&l).set(i64::from(p == phase));
        }
        let s = &ro.status;
        self.available.get_or_create(&key).set(i64::from(s.available_replicas));
        self.unavailable.get_or_create(&key).set(i64::from((s.replicas - s.available_replicas).max(0)));
        self.desired.get_or_create(&key).set(i64::from(ro.spec.replicas.unwrap_or(1)));
        self.updated.get_or_create(&key).set(i64::from(s.updated_replicas));
        last.insert(key, labels);
    }
}

impl Metrics {
    /// Sets `experiment_info` (phase as Argo reports it: the status phase, `Pending` before
    /// the first one) from the Experiment as last seen; `None` removes its series.
    pub fn observe_experiment(&self, namespace: &str, name: &str, experiment: Option<&rollouts_core::api::Experiment>) {
        let key = self.rollout_labels(namespace, name);
        let mut last = self.last_experiment_info.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = last.remove(&key) {
            self.experiment_info.remove(&old);
        }
        let Some(ex) = experiment else { return };
        let phase = ex.status.phase.map_or("Pending", rollouts_core::api::AnalysisPhase::as_str);
        let labels = ExperimentInfoLabels { namespace: key.namespace.clone(), name: key.name.clone(), phase };
        self.experiment_info.get_or_create(&labels).set(1);
        last.insert(key, labels);
    }
}

/// The `traffic_router` label of `rollout_info`, as Argo sets it: the last of ALB, Ambassador,
/// Istio, Nginx, SMI, AppMesh configured wins; other routers and traffic-router plugins (the
/// `argoproj-labs/gatewayAPI` plugin included) leave it empty. Our first-class
/// `trafficRouting.gatewayAPI` block, which Argo does not have, reads `GatewayAPI`.
pub fn traffic_router(ro: &Rollout) -> &'static str {
    let Some(tr) = ro.spec.canary().and_then(|c| c.traffic_routing.as_ref()) else { return "" };
    [
        ("ALB", tr.alb.is_some()),
        ("Ambassador", tr.ambassador.is_some()),
        ("Istio", tr.istio.is_some()),
        ("Nginx", tr.nginx.is_some()),
        ("SMI", tr.smi.is_some()),
        ("AppMesh", tr.app_mesh.is_some()),
    ]
    .into_iter()
    .rev()
    .find_map(|(name, set)| set.then_some(name))
    .unwrap_or(if tr.gateway_api.is_some() { "GatewayAPI" } else { "" })
}

/// Argo's `rollout_info` phase, derived from the Progressing condition's reason.
fn info_phase(ro: &Rollout, invalid: bool) -> &'static str {
    let has = |t: ConditionType| ro.status.conditions.iter().any(|c| c.kind == t && c.status == ConditionStatus::True);
    if invalid || has(ConditionType::InvalidSpec) {
        return "InvalidSpec";
    }
    let progressing = ro.status.conditions.iter().find(|c| c.kind == ConditionType::Progressing);
    match progressing.map(|c| c.reason.as_str()) {
        Some("RolloutAborted") => "Abort",
        Some("ProgressDeadlineExceeded") => "Timeout",
        Some("RolloutPaused") => "Paused",
        Some("NewReplicaSetAvailable") if has(ConditionType::Available) => "Completed",
        Some("ReplicaSetCreateError") => "Error",
        _ => "Progressing",
    }
}

/// A tower layer counting requests by kind, namespace, name, verb and status code.
#[derive(Clone)]
pub struct CountRequests(pub Arc<Metrics>);

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Counted { inner, metrics: self.0.clone() }
    }
}

/// The service [`CountRequests`] wraps around the client's.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (kind, namespace, name, verb) = describe(req.method(), req.uri());
        let metrics = self.metrics.clone();
        self.inner
            .call(req)
            .map(move |res| {
                let status_code = match &res {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(_) => "<error>".to_string(),
                };
                metrics.count_request(&kind, &namespace, &name, verb, &status_code);
                res
            })
            .boxed()
    }
}

/// (kind, namespace, name, verb) of a request path such as
/// `/apis/apps/v1/namespaces/ns/replicasets/name` or `/api/v1/pods?watch=true`.
pub fn describe(method: &http::Method, uri: &http::Uri) -> (String, String, String, &'static str) {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    // Skip `api/v1` or `apis/group/version`.
    let rest: &[&str] = match parts.first() {
        Some(&"api") => parts.get(2..).unwrap_or(&[]),
        Some(&"apis") => parts.get(3..).unwrap_or(&[]),
        _ => &[],
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (ns.to_string(), tail),
        other => (String::new(), other),
    };
    let kind = rest.first().copied().unwrap_or("Unknown").to_string();
    let name = rest.get(1).copied().unwrap_or_default().to_string();
    let watch = uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "Watch",
        http::Method::GET if name.is_empty() => "List",
        http::Method::GET => "Get",
        http::Method::POST => "Create",
        http::Method::PUT => "Update",
        http::Method::PATCH => "Patch",
        http::Method::DELETE => "Delete",
        _ => "Unknown",
    };
    (kind, namespace, name, verb)
}

/// Seconds since `start`, for histograms.
pub fn elapsed(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(method: http::Method, uri: &str) -> (String, String, String, &'static str) {
        describe(&method, &uri.parse().unwrap())
    }

    #[test]
    fn request_paths_name_kind_namespace_and_verb() {
        assert_eq!(
            d(http::Method::PATCH, "/apis/apps/v1/namespaces/ns/replicasets/web-abc"),
            ("replicasets".into(), "ns".into(), "web-abc".into(), "Patch")
        );
        assert_eq!(
            d(http::Method::PATCH, "/apis/argoproj.io/v1alpha1/namespaces/ns/rollouts/web/status"),
            ("rollouts".into(), "ns".into(), "web".into(), "Patch")
        );
        assert_eq!(
            d(http::Method::GET, "/api/v1/pods?labelSelector=x&watch=true&resourceVersion=1"),
            ("pods".into(), "".into(), "".into(), "Watch")
        );
        assert_eq!(d(http::Method::GET, "/api/v1/namespaces/ns/services").3, "List");
        assert_eq!(d(http::Method::POST, "/apis/batch/v1/namespaces/ns/jobs").0, "jobs");
        assert_eq!(
            d(http::Method::GET, "/api/v1/namespaces/ns"),
            ("namespaces".into(), "".into(), "ns".into(), "Get")
        );
    }

    fn request(m: &Metrics, kind: &str, name: &str) {
        m.count_request(kind, "ns", name, "Patch", "200");
    }

    fn series(m: &Metrics) -> Vec<String> {
        m.render().lines().filter(|l| l.starts_with("controller_clientset_k8s_request_total{")).map(str::to_string).collect()
    }

    #[test]
    fn request_series_are_bounded_events_without_names_then_a_cap() {
        let m = Metrics::new();
        for i in 0..100 {
            request(&m, "events", &format!("web.{i:x}"));
        }
        assert_eq!(
            series(&m),
            [r#"controller_clientset_k8s_request_total{kind="events",namespace="ns",name="",verb="Patch",status_code="200"} 100"#]
        );
        for i in 0..MAX_NAMED_REQUEST_SERIES + 50 {
            request(&m, "replicasets", &format!("web-{i}"));
        }
        // A name seen before keeps counting under its own series after the cap.
        request(&m, "replicasets", "web-0");
        let all = series(&m);
        assert_eq!(all.len(), 1 + MAX_NAMED_REQUEST_SERIES + 1, "events, the named series, one unnamed");
        assert!(all.contains(&r#"controller_clientset_k8s_request_total{kind="replicasets",namespace="ns",name="web-0",verb="Patch",status_code="200"} 2"#.to_string()));
        assert!(all.contains(&r#"controller_clientset_k8s_request_total{kind="replicasets",namespace="ns",name="",verb="Patch",status_code="200"} 50"#.to_string()));
    }

    #[test]
    fn label_values_from_small_sets_are_shared() {
        let m = Metrics::new();
        let (a, b) = (m.event_labels("ns", "web", EventType::Normal, "RolloutUpdated"), m.event_labels("ns", "api", EventType::Normal, "RolloutUpdated"));
        assert!(Arc::ptr_eq(&a.namespace.0, &b.namespace.0) && Arc::ptr_eq(&a.event.reason.0, &b.event.reason.0));
        assert!(Arc::ptr_eq(&m.rollout_labels("ns", "web").namespace.0, &a.namespace.0));
        assert!(!Arc::ptr_eq(&m.label("other").0, &a.namespace.0));
    }

    fn rollout(traffic: serde_json::Value) -> Rollout {
        rollouts_core::api::lenient::rollout_lenient(&serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"strategy": {"canary": {"trafficRouting": traffic}}}
        }))
        .rollout
    }

    #[test]
    fn rollout_info_names_the_traffic_router_as_argo_does() {
        let m = Metrics::new();
        let nginx = rollout(serde_json::json!({"nginx": {"stableIngress": "ing"}}));
        m.observe_rollout("ns", "web", Some(&nginx), false);
        let text = m.render();
        assert!(
            text.contains(r#"rollout_info{namespace="ns",name="web",strategy="canary",traffic_router="Nginx",phase="Progressing"} 1"#),
            "{text}"
        );
        // Argo leaves the label empty for traffic-router plugins, the Gateway API plugin included.
        let plugin = rollout(serde_json::json!({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "r"}}}));
        m.observe_rollout("ns", "web", Some(&plugin), false);
        let text = m.render();
        assert!(text.contains(r#"strategy="canary",traffic_router="",phase="#), "{text}");
        assert!(!text.contains(r#"traffic_router="Nginx""#), "the old series is removed: {text}");
        assert_eq!(traffic_router(&rollout(serde_json::json!({"gatewayAPI": {"httpRoute": "r"}}))), "GatewayAPI");
        // The last of Argo's list wins, as in Argo.
        assert_eq!(traffic_router(&rollout(serde_json::json!({"nginx": {"stableIngress": "i"}, "smi": {}}))), "SMI");
        assert_eq!(traffic_router(&rollout(serde_json::json!({"istio": {}, "alb": {}}))), "Istio");
        assert_eq!(traffic_router(&rollout(serde_json::json!({"traefik": {}}))), "");
        assert_eq!(traffic_router(&rollout(serde_json::json!(null))), "");
    }

    #[test]
    fn experiment_info_follows_the_phase_and_goes_with_the_experiment() {
        let m = Metrics::new();
        let ex = |phase: serde_json::Value| -> rollouts_core::api::Experiment {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "e"}, "status": {"phase": phase}})).unwrap()
        };
        m.observe_experiment("ns", "e", Some(&ex(serde_json::Value::Null)));
        assert!(m.render().contains(r#"experiment_info{namespace="ns",name="e",phase="Pending"} 1"#), "{}", m.render());
        m.observe_experiment("ns", "e", Some(&ex("Successful".into())));
        let text = m.render();
        assert!(text.contains(r#"experiment_info{namespace="ns",name="e",phase="Successful"} 1"#), "{text}");
        assert!(!text.contains(r#"phase="Pending""#), "{text}");
        m.observe_experiment("ns", "e", None);
        assert!(!m.render().contains("experiment_info{"), "{}", m.render());
    }

    #[test]
    fn metric_names_are_argos() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                kind: "rollouts".into(),
                namespace: "ns".into(),
                name: "web".into(),
                verb: "Get",
                status_code: "200".into(),
            })
            .inc();
        let text = m.render();
        assert!(text.contains("controller_clientset_k8s_request_total{kind=\"rollouts\""), "{text}");
        assert!(text.contains("argo_rollouts_controller_info{version="), "{text}");
    }
}
