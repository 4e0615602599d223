//! The controller's side of notifications.
//!
//! - The ConfigMap and Secret are watched (by name, in the controller's namespace) and the
//!   configuration rebuilt on every change; without the ConfigMap notifications are off.
//! - [`Notifier::notify`] is called where a rollout's event is recorded. It only looks up who
//!   subscribes to the event's trigger and queues a job (a bounded queue: when full, the
//!   notification is dropped, logged and counted), so a reconcile never waits for it.
//! - One task takes the jobs in order: it evaluates the trigger's conditions, skips what the
//!   Rollout's record (`notified.notifications.argoproj.io`) says was sent, renders the
//!   templates and sends each notification in a task of its own, retried with backoff
//!   (bounded), at most [`MAX_PARALLEL`] at a time. A sent notification is added to the
//!   record on the Rollout (a merge patch of its annotations); a failed one is logged, with
//!   every secret value redacted, and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use rollouts_core::api::Rollout;
use rollouts_core::state::{EventType, State};
use serde_json::{json, Value};
use sha1::Digest;
use tokio::sync::{mpsc, Semaphore};

use super::config::{Config, ServiceEntry, CONFIG_MAP, SECRET};
use super::sent::{self, Sent};
use super::services::{Http, SendError};
use super::subscriptions::{self, Destination};
use super::templates::{self, Notification};
use crate::controller::metrics::{EventKind, EventLabels, Metrics};
use crate::kubeapi::rollout_resource;

/// Jobs waiting for the delivery task; beyond this, notifications are dropped.
pub const QUEUE: usize = 256;
/// Notifications being sent at once.
pub const MAX_PARALLEL: usize = 8;

/// The Rollout's status before the reconcile that records an event: what tells one
/// occurrence of an event from another (see [`sent`]).
#[derive(Debug, Clone, Default)]
pub struct Before(Option<String>);

/// One recorded event, queued.
struct Job {
    namespace: String,
    name: String,
    trigger: String,
    labels: EventLabels,
    occurrence: String,
    destinations: Vec<Destination>,
    /// `rollout`, `analysisRuns`, `secrets`, `context`.
    vars: Value,
    /// The record on the Rollout when the event was recorded.
    observed: Option<String>,
    config: Arc<Config>,
}

/// What was sent to one rollout's subscribers, as this process knows it.
#[derive(Default)]
struct Record {
    sent: Sent,
    in_flight: BTreeSet<String>,
}

struct Inner {
    client: Option<Client>,
    config: RwLock<Option<Arc<Config>>>,
    queue: mpsc::Sender<Job>,
    records: tokio::sync::Mutex<BTreeMap<(String, String), Record>>,
    http: Option<Http>,
    metrics: Option<Arc<Metrics>>,
    parallel: Semaphore,
    /// The `notifications.argoproj.io/` annotations of each namespace: subscriptions for
    /// every rollout in it.
    namespaces: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
}

/// Notifications for the controller (cheap to clone).
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl Notifier {
    /// A notifier that never sends (no configuration is ever loaded).
    pub fn disabled() -> Notifier {
        let (queue, _) = mpsc::channel(1);
        Notifier {
            inner: Arc::new(Inner {
                client: None,
                config: RwLock::new(None),
                queue,
                records: Default::default(),
                http: None,
                metrics: None,
                parallel: Semaphore::new(MAX_PARALLEL),
                namespaces: RwLock::default(),
            }),
        }
    }

    /// Starts watching the configuration in `namespace` and the delivery task; must be called
    /// inside a tokio runtime.
    pub fn start(client: Client, namespace: &str, metrics: Option<Arc<Metrics>>) -> Notifier {
        let (queue, rx) = mpsc::channel(QUEUE);
        let http = match Http::new() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(error = %e, "notifications: cannot build an HTTP client; HTTP services will fail");
                None
            }
        };
        let notifier = Notifier {
            inner: Arc::new(Inner {
                client: Some(client.clone()),
                config: RwLock::new(None),
                queue,
                records: Default::default(),
                http,
                metrics,
                parallel: Semaphore::new(MAX_PARALLEL),
                namespaces: RwLock::default(),
            }),
        };
        tokio::spawn(watch_namespaces(client.clone(), notifier.clone()));
        tokio::spawn(watch_config(client, namespace.to_string(), notifier.clone()));
        tokio::spawn(deliver(rx, notifier.clone()));
        notifier
    }

    /// A notifier with a fixed configuration and no cluster: the record of sent
    /// notifications stays in memory ([`Notifier::recorded`]). For tests and tools; must be
    /// called inside a tokio runtime.
    pub fn offline(config: Config) -> Notifier {
        let (queue, rx) = mpsc::channel(QUEUE);
        let notifier = Notifier {
            inner: Arc::new(Inner {
                client: None,
                config: RwLock::new(Some(Arc::new(config))),
                queue,
                records: Default::default(),
                http: Http::new().ok(),
                metrics: None,
                parallel: Semaphore::new(MAX_PARALLEL),
                namespaces: RwLock::default(),
            }),
        };
        tokio::spawn(deliver(rx, notifier.clone()));
        notifier
    }

    /// The record of what was sent for a rollout, as the annotation's value would be.
    pub async fn recorded(&self, namespace: &str, name: &str) -> Option<String> {
        let records = self.inner.records.lock().await;
        records.get(&(namespace.to_string(), name.to_string())).map(|r| r.sent.to_annotation())
    }

    /// Uses `config` from now on (`None`: notifications off).
    pub fn set_config(&self, config: Option<Config>) {
        let mut slot = self.inner.config.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = config.map(Arc::new);
    }

    /// Sets the subscription annotations of `namespace` (what the namespace watch reports;
    /// only `notifications.argoproj.io/` keys are kept).
    pub fn set_namespace_annotations(&self, namespace: &str, annotations: &BTreeMap<String, String>) {
        let kept: BTreeMap<String, String> =
            annotations.iter().filter(|(k, _)| k.starts_with(NOTIFICATIONS_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut slot = self.inner.namespaces.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.is_empty() {
            slot.remove(namespace);
        } else {
            slot.insert(namespace.to_string(), kept);
        }
    }

    fn namespace_annotations(&self, namespace: &str) -> BTreeMap<String, String> {
        let slot = self.inner.namespaces.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get(namespace).cloned().unwrap_or_default()
    }

    fn config(&self) -> Option<Arc<Config>> {
        self.inner.config.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Digests the rollout's status before a reconcile (nothing while notifications are off).
    pub fn before(&self, state: &State) -> Before {
        if self.config().is_none() {
            return Before(None);
        }
        Before(state.rollout.as_ref().map(status_digest))
    }

    /// Queues the notifications of an event recorded on a rollout; never waits.
    #[allow(clippy::too_many_arguments)]
    pub fn notify(&self, namespace: &str, name: &str, state: &State, kind: EventType, reason: &str, message: &str, before: &Before) {
        let Some(config) = self.config() else { return };
        let Some(rollout) = state.rollout.as_ref() else { return };
        let trigger = super::trigger_for_reason(reason);
        let annotations = rollout.metadata.annotations.clone().unwrap_or_default();
        let labels = rollout.metadata.labels.clone().unwrap_or_default();
        let mut dests = subscriptions::global(&config.subscriptions, &config.default_triggers, &labels);
        // The namespace's subscriptions hold for every rollout in it.
        let namespace_annotations = self.namespace_annotations(namespace);
        subscriptions::merge(&mut dests, subscriptions::from_annotations(&namespace_annotations, &config.default_triggers, &config.service_default_triggers));
        subscriptions::merge(&mut dests, subscriptions::from_annotations(&annotations, &config.default_triggers, &config.service_default_triggers));
        let Some(destinations) = dests.remove(&trigger).filter(|d| !d.is_empty()) else { return };
        if !config.compiled_triggers.contains_key(&trigger) {
            tracing::debug!(rollout = %format!("{namespace}/{name}"), %trigger, "subscribed trigger is not configured; nothing to send");
            return;
        }
        let event_labels = EventLabels {
            namespace: namespace.into(),
            name: name.into(),
            event: EventKind { r#type: kind.as_str(), reason: reason.into() },
        };
        let occurrence = {
            let digest = before.0.clone().unwrap_or_else(|| status_digest(rollout));
            short_hash(&format!("{reason}\n{message}\n{digest}"))
        };
        let job = Job {
            namespace: namespace.to_string(),
            name: name.to_string(),
            trigger,
            labels: event_labels,
            occurrence,
            destinations,
            vars: variables(rollout, state, &config),
            observed: annotations.get(sent::ANNOTATION).cloned(),
            config,
        };
        if let Err(e) = self.inner.queue.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            tracing::warn!(rollout = %format!("{namespace}/{name}"), trigger = %job.trigger, "notification queue full; dropping this event's notifications");
            self.count(&job.labels, false);
        }
    }

    fn count(&self, labels: &EventLabels, ok: bool) {
        if let Some(m) = &self.inner.metrics {
            let family = if ok { &m.notification_success } else { &m.notification_error };
            family.get_or_create(labels).inc();
        }
    }
}

/// The template variables of a rollout: the object, its current revision's AnalysisRuns
/// (newest first), the Secret's values and the `context`.
fn variables(rollout: &Rollout, state: &State, config: &Config) -> Value {
    let revision = rollout.metadata.annotations.as_ref().and_then(|a| a.get(rollouts_core::api::keys::REVISION)).cloned();
    let hash = rollout.status.current_pod_hash.clone();
    let mut runs: Vec<&rollouts_core::api::AnalysisRun> = state
        .analysis_runs
        .values()
        .filter(|r| {
            let labels = r.metadata.labels.as_ref();
            let annotations = r.metadata.annotations.as_ref();
            labels.and_then(|l| l.get(rollouts_core::api::keys::POD_TEMPLATE_HASH)) == Some(&hash)
                && annotations.and_then(|a| a.get(rollouts_core::api::keys::REVISION)).cloned() == revision
        })
        .collect();
    runs.sort_by(|a, b| b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp));
    let runs: Vec<Value> = runs.into_iter().filter_map(|r| serde_json::to_value(r).ok()).collect();
    let runs = if runs.is_empty() { Value::Null } else { Value::Array(runs) };
    variables_of(serde_json::to_value(rollout).unwrap_or(Value::Null), runs, config)
}

/// The template and condition variables of a rollout given as JSON.
pub fn variables_of(rollout: Value, analysis_runs: Value, config: &Config) -> Value {
    json!({
        "rollout": rollout,
        "analysisRuns": analysis_runs,
        "secrets": config.secrets,
        "context": config.context,
    })
}

/// The status fields a reconcile's decisions leave behind (conditions with their transition
/// times, hashes, step, abort and pauses), digested.
fn status_digest(rollout: &Rollout) -> String {
    let status = serde_json::to_value(&rollout.status).unwrap_or(Value::Null);
    let conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| json!([c.get("type"), c.get("status"), c.get("reason"), c.get("lastTransitionTime")])).collect())
        .unwrap_or_default();
    let picked = json!([
        conditions,
        status.get("currentPodHash"),
        status.get("stableRS"),
        status.get("currentStepIndex"),
        status.get("abort"),
        status.get("abortedAt"),
        status.get("pauseConditions"),
        rollout.metadata.uid,
    ]);
    short_hash(&picked.to_string())
}

fn short_hash(text: &str) -> String {
    sha1::Sha1::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The delivery task.
async fn deliver(mut rx: mpsc::Receiver<Job>, notifier: Notifier) {
    while let Some(job) = rx.recv().await {
        let Some(trigger) = job.config.compiled_triggers.get(&job.trigger) else { continue };
        let results = trigger.run(&job.vars);
        let rollout_key = (job.namespace.clone(), job.name.clone());
        for result in results {
            if let Some(e) = &result.error {
                tracing::warn!(rollout = %format!("{}/{}", job.namespace, job.name), trigger = %job.trigger, condition = %result.key, error = %e, "notification condition not evaluated");
            }
            if !result.triggered {
                continue;
            }
            for dest in &job.destinations {
                let key = sent::key(result.once_per.as_deref(), &job.occurrence, &job.trigger, &result.key, &dest.service, &dest.recipient);
                {
                    let mut records = notifier.inner.records.lock().await;
                    let record = records.entry(rollout_key.clone()).or_insert_with(|| Record {
                        sent: Sent::parse(job.observed.as_deref()),
                        in_flight: BTreeSet::new(),
                    });
                    if record.sent.contains(&key) || record.in_flight.contains(&key) {
                        tracing::info!(rollout = %format!("{}/{}", job.namespace, job.name), trigger = %job.trigger, destination = %dest, "notification already sent");
                        continue;
                    }
                    record.in_flight.insert(key.clone());
                }
                let send = Delivery {
                    notifier: notifier.clone(),
                    namespace: job.namespace.clone(),
                    name: job.name.clone(),
                    trigger: job.trigger.clone(),
                    labels: job.labels.clone(),
                    key,
                    dest: dest.clone(),
                    templates: result.templates.clone(),
                    vars: job.vars.clone(),
                    config: job.config.clone(),
                };
                tokio::spawn(send.run());
            }
        }
    }
}

/// One notification to one destination.
struct Delivery {
    notifier: Notifier,
    namespace: String,
    name: String,
    trigger: String,
    labels: EventLabels,
    key: String,
    dest: Destination,
    templates: Vec<String>,
    vars: Value,
    config: Arc<Config>,
}

impl Delivery {
    async fn run(self) {
        let inner = &self.notifier.inner;
        let Ok(_permit) = inner.parallel.acquire().await else { return };
        let started = Instant::now();
        let result = self.attempt().await;
        if let Some(m) = &inner.metrics {
            let labels = m.rollout_labels(&self.namespace, &self.name);
            m.notification_send.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        }
        let rollout = format!("{}/{}", self.namespace, self.name);
        let mut records = inner.records.lock().await;
        let record = records.entry((self.namespace.clone(), self.name.clone())).or_default();
        record.in_flight.remove(&self.key);
        match result {
            Ok(()) => {
                tracing::info!(rollout = %rollout, trigger = %self.trigger, destination = %self.dest, "notification sent");
                self.notifier.count(&self.labels, true);
                let now = jiff::Timestamp::now().as_second();
                record.sent.insert(self.key.clone(), now);
                let value = record.sent.to_annotation();
                // Written while holding the records, so two writes never cross.
                if let Some(client) = &inner.client {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &self.namespace, &rollout_resource());
                    let patch = json!({"metadata": {"annotations": {sent::ANNOTATION: value}}});
                    if let Err(e) = api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                        tracing::warn!(rollout = %rollout, error = %e, "cannot record the sent notification on the rollout");
                    }
                }
            }
            Err(e) => {
                let secrets = self.config.secret_values();
                tracing::warn!(rollout = %rollout, trigger = %self.trigger, destination = %self.dest, error = %super::redact(&e, &secrets), "notification not delivered");
                self.notifier.count(&self.labels, false);
            }
        }
    }

    /// Renders and sends, retrying what may succeed later.
    async fn attempt(&self) -> Result<(), String> {
        let entry: &ServiceEntry = self
            .config
            .services
            .get(&self.dest.service)
            .ok_or_else(|| format!("notification service '{}' is not configured", self.dest.service))?;
        let service = entry.service.as_ref().map_err(|e| format!("service {}: {e}", self.dest.service))?;
        let http = self.notifier.inner.http.as_ref().ok_or("no HTTP client")?;
        let notification = render(&self.config, &self.templates, &self.vars, &self.dest, service.kind())?;
        let rollout = format!("{}/{}", self.namespace, self.name);
        let redact = |e: &SendError| super::redact(&e.message, &entry.secret_values);
        let result = service
            .send_with_retries(http, &notification, &self.dest, |e, wait| {
                tracing::info!(rollout = %rollout, destination = %self.dest, error = %redact(e), retry_in = ?wait, "notification not delivered yet; retrying");
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err((e, attempts)) => Err(format!("{} (after {attempts} attempt{})", redact(&e), if attempts == 1 { "" } else { "s" })),
        }
    }
}

/// Renders the templates for one destination (`recipient` and `serviceType` added).
pub fn render(config: &Config, names: &[String], vars: &Value, dest: &Destination, service_type: &str) -> Result<Notification, String> {
    let mut vars = vars.clone();
    if let Value::Object(m) = &mut vars {
        m.insert("recipient".into(), dest.recipient.clone().into());
        m.insert("serviceType".into(), service_type.into());
    }
    templates::render(&config.compiled_templates, names, &templates::variables(&vars))
}

/// The annotation prefix of subscriptions.
const NOTIFICATIONS_PREFIX: &str = "notifications.argoproj.io/";

/// Watches the namespaces' metadata for subscription annotations. Optional: without the
/// right to list namespaces (a namespaced installation) it says so once and tries again
/// every minute; rollouts' own subscriptions work regardless.
async fn watch_namespaces(client: Client, notifier: Notifier) {
    // Metadata only: a namespace's spec and status are of no use here.
    let api: Api<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut warned = false;
    loop {
        let Some(event) = stream.next().await else { return };
        match event {
            Ok(watcher::Event::Apply(m) | watcher::Event::InitApply(m)) => {
                let name = m.metadata.name.clone().unwrap_or_default();
                notifier.set_namespace_annotations(&name, &m.metadata.annotations.unwrap_or_default());
            }
            Ok(watcher::Event::Delete(m)) => {
                notifier.set_namespace_annotations(&m.metadata.name.unwrap_or_default(), &BTreeMap::new());
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::info!(error = %e, "notifications: namespaces cannot be watched; subscriptions on namespaces are off until they can");
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
}

/// Watches the ConfigMap and the Secret, rebuilding the configuration on every change.
async fn watch_config(client: Client, namespace: String, notifier: Notifier) {
    enum Change {
        ConfigMap(Option<BTreeMap<String, String>>),
        Secret(Option<BTreeMap<String, String>>),
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let secret_api: Api<Secret> = Api::namespaced(client, &namespace);
    tokio::spawn(watch_one(cm_api, CONFIG_MAP, tx.clone(), |cm: ConfigMap| Change::ConfigMap(Some(cm.data.unwrap_or_default())), || Change::ConfigMap(None)));
    tokio::spawn(watch_one(secret_api, SECRET, tx, |s: Secret| Change::Secret(Some(secret_data(&s))), || Change::Secret(None)));
    let (mut cm, mut secret): (Option<BTreeMap<String, String>>, BTreeMap<String, String>) = (None, BTreeMap::new());
    let mut last_state = String::new();
    while let Some(change) = rx.recv().await {
        match change {
            Change::ConfigMap(c) => cm = c,
            Change::Secret(s) => secret = s.unwrap_or_default(),
        }
        // Both watches report their first list quickly; take what arrived meanwhile.
        while let Ok(more) = rx.try_recv() {
            match more {
                Change::ConfigMap(c) => cm = c,
                Change::Secret(s) => secret = s.unwrap_or_default(),
            }
        }
        let (config, state) = match &cm {
            None => (None, format!("off: no ConfigMap {namespace}/{CONFIG_MAP}")),
            Some(data) => match Config::parse(data, &secret) {
                Ok(c) => {
                    let summary = format!("on: {} services, {} triggers, {} templates", c.services.len(), c.triggers.len(), c.templates.len());
                    for (name, entry) in &c.services {
                        if let Err(e) = &entry.service {
                            tracing::warn!(service = %name, error = %e, "notification service unusable");
                        }
                    }
                    (Some(c), summary)
                }
                Err(e) => (None, format!("off: {namespace}/{CONFIG_MAP}: {e}")),
            },
        };
        notifier.set_config(config);
        if state != last_state {
            if state.starts_with("off: ") && state.contains(": no ConfigMap") {
                tracing::info!(state = %state, "notifications");
            } else if state.starts_with("off: ") {
                tracing::error!(state = %state, "notifications: the configuration cannot be used");
            } else {
                tracing::info!(state = %state, "notifications");
            }
            last_state = state;
        }
    }
}

/// A Secret's values as strings (`data`, and `stringData` when read from a file).
pub fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        s.data.iter().flatten().map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())).collect();
    out.extend(s.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Watches one object by name (a field selector, so RBAC may limit the controller to it);
/// reports it, or its absence.
async fn watch_one<K, T>(api: Api<K>, name: &'static str, tx: mpsc::UnboundedSender<T>, present: fn(K) -> T, absent: fn() -> T)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).boxed();
    let mut listed: Option<K> = None;
    let mut failing = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(event) = stream.next().await else { return };
        let change = match event {
            Ok(watcher::Event::Init) => {
                listed = None;
                None
            }
            Ok(watcher::Event::InitApply(o)) => {
                listed = Some(o);
                None
            }
            Ok(watcher::Event::InitDone) => Some(match listed.take() {
                Some(o) => present(o),
                None => absent(),
            }),
            Ok(watcher::Event::Apply(o)) => Some(present(o)),
            Ok(watcher::Event::Delete(_)) => Some(absent()),
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(object = name, error = %e, "cannot watch the notification configuration; retrying with backoff");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!(object = name, "watching the notification configuration again");
        }
        backoff = Duration::from_secs(1);
        if let Some(c) = change {
            if tx.send(c).is_err() {
                return;
            }
        }
    }
}
