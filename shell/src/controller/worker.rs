//! One task per rollout (or per AnalysisRun no rollout owns): it owns the `State`, takes
//! every event that arrived (coalescing them like a work queue), reconciles once, executes
//! the actions in order, and sleeps until the next event or the wake-up the core asked for.
//! A run's State has no Rollout: the core's step advances its runs all the same.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplate, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, DynamicObject, EvictParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rollouts_core::state::{Action, Event, EventType, Object, ObjectKind, State};
use rollouts_core::{step_batch, Timestamp};
use tokio::sync::mpsc::{UnboundedReceiver, WeakUnboundedSender};

use super::metrics::Metrics;
use super::router::RolloutKey;
use super::trace::Trace;
use crate::kubeapi::{analysis_run_resource, experiment_resource, rollout_resource, route_resource};

/// What every worker shares.
pub struct Shared {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: super::events::EventRecorder,
    pub trace: Option<Trace>,
    /// A periodic Tick when the core asked for no wake-up (Argo's resync).
    pub resync: Duration,
    /// Sends the notifications of recorded events.
    pub notifier: crate::notifications::Notifier,
    /// Where an idle rollout worker asks to be let go (`None`: never; see [`super::pool`]).
    pub dormancy: Option<super::pool::Dormancy>,
}

impl Shared {
    /// Counts an Event on `object` in `rollout_events_total` and queues it for writing
    /// (the recorder writes it in the background, best effort).
    pub(super) fn record_event(&self, namespace: &str, object: &ObjectReference, kind: EventType, reason: &str, note: &str) {
        let labels = self.metrics.event_labels(namespace, object.name.as_deref().unwrap_or_default(), kind, reason);
        self.metrics.events.get_or_create(&labels).inc();
        self.recorder.record(object, kind, reason, note);
    }
}

/// Longest wait between retries of a failing reconcile.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest wait for the API server's answer to one write or read of a worker. A request
/// that outlives it (an API server that stopped answering mid-request, a connection lost
/// without a reset) is a failed action: the objects are read again and the reconcile is
/// retried with backoff, rather than the worker waiting forever. Watches are not affected.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one API request of a worker under [`REQUEST_TIMEOUT`].
pub(super) async fn within_request_timeout<T>(request: impl std::future::Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from the API server within {}s", REQUEST_TIMEOUT.as_secs())))
}

/// Fire timers a little after the second they name: the core works in whole seconds.
const WAKE_MARGIN: Duration = Duration::from_millis(20);

/// The current time as the core sees it.
pub fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// How long until `at` (and a margin), as a sleep.
pub(super) fn until(at: Timestamp) -> Duration {
    let target = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix()).unwrap_or(0));
    target.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO) + WAKE_MARGIN
}

/// Runs a rollout's (or a run's) reconciles until its channel closes (it was deleted).
///
/// Events come boxed: a channel allocates room for 32 of them at once, and an `Event` inline
/// is about 250 bytes (8 KB a worker, most of them never used).
pub async fn run(key: RolloutKey, mut rx: UnboundedReceiver<Box<Event>>, me: WeakUnboundedSender<Box<Event>>, shared: Arc<Shared>) {
    let mut state = State::default();
    let mut wake: Option<Timestamp> = None;
    let mut backoff = Duration::ZERO;
    let mut first = true;
    // Asked the pool to be let go (see `super::pool`); the rollout was deleted.
    let (mut asked, mut deleted) = (false, false);
    // Told the pool it may let this worker go while it waits, since its last reconcile.
    let mut offered = false;
    // One clone per measurement in flight: a worker never goes idle while one may answer.
    let measuring = Arc::new(());
    let live = std::sync::Mutex::new(LiveRollout::default());
    // What a failed action was about and could not be read back: the state may hold
    // optimistic copies of writes that never happened (a scale the API server never saw),
    // and a reconcile from those would wait for them forever. Read again, with backoff,
    // before the next reconcile.
    let mut unread: BTreeSet<(ObjectKind, String)> = BTreeSet::new();
    let labels = shared.metrics.rollout_labels(&key.namespace, &key.name);
    loop {
        if !unread.is_empty() {
            let before = shared.notifier.before(&state);
            let exec = Executor { key: &key, shared: &shared, me: &me, state: &state, before: &before, live: &live, measuring: &measuring };
            unread = Box::pin(exec.reread(std::mem::take(&mut unread))).await;
            if !unread.is_empty() {
                backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                tracing::info!(rollout = %key, backoff = ?backoff, "reading again after backoff");
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        let mut events = Vec::new();
        let mut sleep = wake.map_or(shared.resync, until);
        let held = lock(&live).held_until();
        if let Some(due) = held {
            sleep = sleep.min(due.saturating_duration_since(Instant::now()));
        }
        let settled = is_settled(held, &unread, &measuring);
        let dormancy = shared.dormancy.as_ref().filter(|_| key.is_rollout() && !first);
        let mut timer = Timer::Tick;
        if let Some(d) = dormancy.filter(|d| settled && wake.is_none() && !asked && !d.after.is_zero() && d.after < sleep) {
            (timer, sleep) = (Timer::Ask(d), d.after);
        }
        if let Some(d) = dormancy.filter(|d| settled && d.cap > 0 && !offered && !asked && WAITING_QUIET < sleep && lock(&live).caught_up()) {
            (timer, sleep) = (Timer::Offer(d), WAITING_QUIET);
        }
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(e) => events.push(*e),
                None => break,
            },
            () = tokio::time::sleep(sleep) => match timer {
                Timer::Ask(d) => {
                    // Served until the pool closes the channel.
                    asked = true;
                    let _ = d.tx.send(super::pool::Idle::Ask(key.clone(), me.clone()));
                    continue;
                }
                Timer::Offer(d) => {
                    // Served until the pool closes the channel, or an event comes.
                    offered = true;
                    let wake_at = wake.map(|at| Instant::now() + until(at));
                    let _ = d.tx.send(super::pool::Idle::Waiting { key: key.clone(), channel: me.clone(), until: wake_at });
                    continue;
                }
                Timer::Tick => events.push(Event::Tick),
            },
        }
        while let Ok(e) = rx.try_recv() {
            events.push(*e);
        }
        // Anything that came withdrew an offer to go (the pool saw it pass).
        offered = false;
        deleted |= events.iter().any(|e| matches!(e, Event::Deleted { kind, name } if *kind == key.object_kind() && *name == key.name));
        {
            let mut live = lock(&live);
            events.retain(|e| live.observe(e));
        }
        if events.is_empty() && !first {
            // Only echoes older than a write of ours: nothing new.
            continue;
        }
        let started = Instant::now();
        let now = now();
        let fresh = std::mem::take(&mut first);
        if fresh {
            // After the objects the router listed: take up what a previous controller left in flight.
            events.push(Event::Resync);
        }
        let before = shared.notifier.before(&state);
        let actions = step_batch(&mut state, events.iter().cloned(), now);
        if let Some(trace) = &shared.trace {
            trace.record(&key, now, &events, &actions, fresh);
        }
        wake = actions.iter().find_map(|a| match a {
            Action::WakeAt { at, .. } => Some(*at),
            _ => None,
        });
        let exec = Executor { key: &key, shared: &shared, me: &me, state: &state, before: &before, live: &live, measuring: &measuring };
        // Boxed: the requests' futures are most of the task's size, and a task holds its
        // largest state for as long as it lives; idle, a worker then costs little more than
        // its State.
        let result = Box::pin(exec.execute(&actions)).await;
        let mut ok = result.is_ok();
        if let Err(targets) = result {
            unread = targets;
        }
        if ok {
            ok = exec.flush_held_status().await;
        }
        let took = started.elapsed();
        // Argo's histogram buckets are too coarse for a median; the soak reads this line.
        tracing::debug!(rollout = %key, micros = took.as_micros() as u64, ok, "reconciled");
        if key.is_rollout() {
            shared.metrics.reconcile.get_or_create(&labels).observe(took.as_secs_f64());
            shared.metrics.observe_rollout(&key.namespace, &key.name, state.rollout.as_ref(), state.spec_error.is_some());
        }
        if ok {
            backoff = Duration::ZERO;
        } else {
            if key.is_rollout() {
                shared.metrics.reconcile_error.get_or_create(&labels).inc();
            }
            backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
            tracing::info!(rollout = %key, backoff = ?backoff, "retrying after a failed action");
            tokio::time::sleep(backoff).await;
        }
    }
    if let (false, Some(d)) = (deleted, shared.dormancy.as_ref().filter(|_| key.is_rollout())) {
        // Let go while idle or waiting: the rollout lives on in the cache and its series stay.
        let settled = is_settled(lock(&live).held_until(), &unread, &measuring);
        let wake_at = wake.map(|at| Instant::now() + until(at));
        let _ = d.tx.send(super::pool::Idle::Ended { key, settled, until: wake_at });
        return;
    }
    if key.is_rollout() {
        shared.metrics.observe_rollout(&key.namespace, &key.name, None, false);
    }
    tracing::info!(rollout = %key, "deleted; worker stopped");
}

/// Whether a worker has nothing pending but, perhaps, a wake-up: no status write held back, no
/// object to read again, no measurement in flight (`measuring` is cloned into each). A
/// worker let go then loses nothing: the wake-up is the pool's to keep.
fn is_settled(held: Option<Instant>, unread: &BTreeSet<(ObjectKind, String)>, measuring: &Arc<()>) -> bool {
    held.is_none() && unread.is_empty() && Arc::strong_count(measuring) == 1
}

/// What a worker's sleep ends with, when no event comes first.
enum Timer<'a> {
    /// A reconcile (the wake-up the core asked for, or the resync).
    Tick,
    /// Asking the pool to let it go: idle for `--worker-idle-timeout`.
    Ask(&'a super::pool::Dormancy),
    /// Telling the pool it may be let go while it waits (see [`super::pool`]).
    Offer(&'a super::pool::Dormancy),
}

/// How long a worker waits without an event before it offers to be let go: the watch's echo
/// of its last writes has come by then in all but a loaded cluster, and a wait shorter than
/// this is not worth a restart from the cache.
pub(super) const WAITING_QUIET: Duration = Duration::from_secs(1);

/// Carries out one reconcile's actions.
struct Executor<'a> {
    key: &'a RolloutKey,
    shared: &'a Shared,
    me: &'a WeakUnboundedSender<Box<Event>>,
    state: &'a State,
    /// The rollout before this reconcile, for the notifications of its events.
    before: &'a crate::notifications::notifier::Before,
    live: &'a std::sync::Mutex<LiveRollout>,
    /// Cloned into each measurement in flight.
    measuring: &'a Arc<()>,
}

/// The newest Rollout the worker knows the API server holds: from the watch, or from the
/// answer to a write of its own, which the watch delivers later. It keeps two things from
/// happening: a watch event older than that write (the echo of an earlier write) taking the
/// core's copy back in time, and a status write that would change nothing.
#[derive(Debug, Default)]
pub(super) struct LiveRollout {
    /// `metadata.resourceVersion`, when it reads as the API server's counter.
    resource_version: Option<u64>,
    /// The newest `resourceVersion` the watch delivered (the controller's cache holds that
    /// one or a newer), and the newest one a write of ours returned.
    observed: Option<u64>,
    written: Option<u64>,
    /// The Rollout as the API server returned it, for its `status`: the watch's manifest,
    /// shared with the controller's cache, or the answer to a write of ours.
    manifest: Option<Arc<serde_json::Value>>,
    /// A status patch not written yet, and since when: it only recounted replicas.
    held: Option<(serde_json::Value, Instant)>,
}

/// How long a status write that only recounts the replicas (`replicas`, `readyReplicas`, …,
/// or a condition's `lastUpdateTime`) may wait for the next write, which carries it along.
/// A canary step otherwise writes the status for every pod that is created, becomes ready
/// or goes away; with this, once per step however many pods it moves, plus one write per
/// this period while pods keep changing and nothing else does. The counts in the Rollout's
/// status (and the HPA's `HPAReplicas`) lag the ReplicaSets by this much at most.
pub(super) const HOLD_RECOUNTS: Duration = Duration::from_secs(10);

/// Status fields that only count replicas.
const COUNTS: [&str; 5] = ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "HPAReplicas"];

impl LiveRollout {
    /// Takes in an event; false for an observation of the Rollout older than the newest
    /// known (the core must not see it).
    ///
    /// Resource versions are compared as numbers: every API server backed by etcd writes
    /// its revision there. One that does not parse is taken as the newest.
    pub(super) fn observe(&mut self, event: &Event) -> bool {
        match event {
            Event::Applied(Object::Rollout(value)) => {
                let seen = resource_version(value);
                if let (Some(known), Some(seen)) = (self.resource_version, seen) {
                    if seen < known {
                        return false;
                    }
                }
                self.resource_version = seen;
                self.observed = self.observed.max(seen);
                self.manifest = Some(value.clone());
                true
            }
            Event::Deleted { kind: ObjectKind::Rollout, .. } => {
                *self = LiveRollout::default();
                true
            }
            _ => true,
        }
    }

    /// Takes in the Rollout an API write returned.
    pub(super) fn wrote(&mut self, value: serde_json::Value) {
        let written = resource_version(&value);
        self.written = self.written.max(written);
        if let (Some(known), Some(written)) = (self.resource_version, written) {
            if written < known {
                return;
            }
        }
        self.resource_version = written;
        self.manifest = Some(Arc::new(value));
    }

    /// Whether the controller's cache holds the Rollout as our last write left it (or
    /// newer): a worker started again from the cache then reconciles from what this one
    /// knows, and repeats none of its writes.
    pub(super) fn caught_up(&self) -> bool {
        match (self.written, self.observed) {
            (None, _) => true,
            (Some(written), Some(observed)) => observed >= written,
            (Some(_), None) => false,
        }
    }

    /// The status patches to write now for the core's `patch`, in order: none when it is
    /// held (see [`HOLD_RECOUNTS`]) or changes nothing; a held one goes along with the next.
    pub(super) fn plan_status_write(&mut self, patch: &serde_json::Value, now: Instant) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let (pending, since) = match self.held.take() {
            None => (patch.clone(), now),
            Some((held, since)) => match rollouts_core::api::merge::compose_merge_patches(&held, patch) {
                Some(both) => (both, since),
                None => {
                    out.push(held);
                    (patch.clone(), now)
                }
            },
        };
        if out.is_empty() && self.unchanged_by(&pending) {
            return out;
        }
        if out.is_empty() && self.only_recounts(&pending) && now.saturating_duration_since(since) < HOLD_RECOUNTS {
            self.held = Some((pending, since));
            return out;
        }
        out.push(pending);
        out
    }

    /// When the held patch is due.
    pub(super) fn held_until(&self) -> Option<Instant> {
        self.held.as_ref().map(|(_, since)| *since + HOLD_RECOUNTS)
    }

    /// The held patch, when due.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<serde_json::Value> {
        if self.held_until().is_some_and(|due| due <= now) {
            return self.held.take().map(|(patch, _)| patch);
        }
        None
    }

    /// Gives back a held patch whose write failed, to be tried again.
    pub(super) fn hold_again(&mut self, patch: serde_json::Value, since: Instant) {
        if self.held.is_none() {
            self.held = Some((patch, since));
        }
    }

    /// Whether `patch` changes nothing of the known status but replica counts and the
    /// `lastUpdateTime` of conditions.
    fn only_recounts(&self, patch: &serde_json::Value) -> bool {
        let Some(change) = patch.get("status").and_then(serde_json::Value::as_object) else { return false };
        change.iter().all(|(key, value)| match key.as_str() {
            "conditions" => {
                let live = self.status().and_then(|s| s.get("conditions"));
                live.is_some_and(|live| without_update_times(live) == without_update_times(value))
            }
            other => COUNTS.contains(&other) && value.is_number(),
        })
    }

    /// The known `status`.
    fn status(&self) -> Option<&serde_json::Value> {
        self.manifest.as_deref().and_then(|m| m.get("status"))
    }

    /// Whether `patch` (a merge patch of the whole Rollout) leaves the known status as it is.
    pub(super) fn unchanged_by(&self, patch: &serde_json::Value) -> bool {
        let Some(status) = self.status() else { return false };
        let Some(change) = patch.get("status") else { return false };
        let mut patched = status.clone();
        rollouts_core::api::merge::merge_patch(&mut patched, change);
        &patched == status
    }
}

/// Conditions without their `lastUpdateTime`, in a fixed order.
fn without_update_times(conditions: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = conditions
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("lastUpdateTime");
            }
            c
        })
        .collect();
    out.sort_by_key(|c| c.get("type").and_then(serde_json::Value::as_str).unwrap_or_default().to_string());
    out
}

fn resource_version(value: &serde_json::Value) -> Option<u64> {
    value.pointer("/metadata/resourceVersion").and_then(serde_json::Value::as_str).and_then(|v| v.parse().ok())
}

/// The worker's lock: held for no await, and no panic leaves its data half-written.
fn lock(live: &std::sync::Mutex<LiveRollout>) -> std::sync::MutexGuard<'_, LiveRollout> {
    live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why an action failed.
pub(super) type Failure = String;

impl Executor<'_> {
    fn send(&self, event: Event) {
        if let Some(tx) = self.me.upgrade() {
            let _ = tx.send(Box::new(event));
        }
    }

    /// Writes the held status patch once it is due; false when that fails (it is kept).
    async fn flush_held_status(&self) -> bool {
        let now = Instant::now();
        let Some(patch) = lock(self.live).take_due(now) else { return true };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client(), self.ns(), &rollout_resource());
        let result = within_request_timeout(async {
            api.patch_status(&self.key.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| message(&e))
        })
        .await;
        match result {
            Ok(written) => {
                self.wrote(&written);
                true
            }
            Err(error) => {
                tracing::warn!(rollout = %self.key, %error, "cannot write the replica counts");
                // Due again at once: the retry after the backoff writes it.
                lock(self.live).hold_again(patch, now.checked_sub(HOLD_RECOUNTS).unwrap_or(now));
                false
            }
        }
    }

    fn wrote(&self, written: &DynamicObject) {
        if let Ok(value) = serde_json::to_value(written) {
            lock(self.live).wrote(value);
        }
    }

    fn client(&self) -> Client {
        self.shared.client.clone()
    }

    /// The namespace of a router object the rollout names, when not its own (Gateway API
    /// routes' `namespace`, an Istio VirtualService's `name.namespace`).
    fn route_namespace(&self, kind: rollouts_core::api::RouteKind, name: &str) -> Option<String> {
        let ro = self.state.rollout.as_ref()?;
        rollouts_core::rollout::references(ro).routes.into_iter().find(|r| r.kind == kind && r.name == name)?.namespace
    }

    fn ns(&self) -> &str {
        &self.key.namespace
    }

    /// Executes `actions` in order; on the first failure reports it, re-reads what the
    /// failed and skipped actions were about, and returns what it could not read.
    async fn execute(&self, actions: &[Action]) -> Result<(), BTreeSet<(ObjectKind, String)>> {
        for (i, action) in actions.iter().enumerate() {
            if action.is_mutating() {
                // What each write is, to account for them (`--loglevel rollouts_shell=debug`).
                tracing::debug!(rollout = %self.key, action = action_name(action), what = %serde_json::to_string(action).unwrap_or_default(), "write");
            }
            let Err(error) = within_request_timeout(self.execute_one(action)).await else { continue };
            tracing::warn!(rollout = %self.key, action = action_name(action), %error, "action failed");
            self.send(Event::ActionFailed { action: Box::new(action.clone()), error });
            let mut targets: BTreeSet<(ObjectKind, String)> =
                actions[i..].iter().filter_map(target).collect();
            targets.insert((self.key.object_kind(), self.key.name.clone()));
            return Err(self.reread(targets).await);
        }
        Ok(())
    }

    /// Reads `targets` back and delivers them (gone ones as deletions); returns those the
    /// API server did not answer.
    async fn reread(&self, targets: BTreeSet<(ObjectKind, String)>) -> BTreeSet<(ObjectKind, String)> {
        let mut unread = BTreeSet::new();
        for (kind, name) in targets {
            match within_request_timeout(async { self.read(kind, &name).await.map_err(|e| e.to_string()) }).await {
                Ok(Some(obj)) => self.send(Event::Applied(obj)),
                Ok(None) => self.send(Event::Deleted { kind, name }),
                Err(e) => {
                    tracing::warn!(rollout = %self.key, ?kind, %name, error = %e, "cannot re-read");
                    unread.insert((kind, name));
                }
            }
        }
        unread
    }

    async fn execute_one(&self, action: &Action) -> Result<(), Failure> {
        let client = self.client();
        let ns = self.ns().to_string();
        let params = PatchParams::default();
        match action {
            Action::CreateReplicaSet { replica_set } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, &ns);
                let mut rs = (**replica_set).clone();
                rs.metadata.namespace = Some(ns.clone());
                // Successes come back through the watch, like every other change.
                match api.create(&PostParams::default(), &rs).await {
                    Ok(_) => Ok(()),
                    Err(e) if already_exists(&e) => {
                        // Created before (a retry, or a restarted controller): fine if it is ours.
                        let name = rs.metadata.name.clone().unwrap_or_default();
                        let existing = api.get(&name).await.map_err(|e| message(&e))?;
                        let ours = existing
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| o.kind == "Rollout" && o.name == self.key.name);
                        if ours {
                            Ok(())
                        } else {
                            Err(format!("replicaset {name:?} already exists and is not owned by rollout {:?}", self.key.name))
                        }
                    }
                    Err(e) => Err(message(&e)),
                }
            }
            Action::PatchReplicaSet { name, patch } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, &ns);
                api.patch(name, &params, &Patch::Merge(patch.to_merge_patch())).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteReplicaSet { name } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, &ns);
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            // An Experiment template's Service (the Experiment workers create theirs in
            // `experiment.rs`; the rollout machine does not return these today).
            Action::CreateService { service } => {
                let api: Api<Service> = Api::namespaced(client, &ns);
                let mut svc = (**service).clone();
                svc.metadata.namespace = Some(ns.clone());
                match api.create(&PostParams::default(), &svc).await {
                    Ok(_) => Ok(()),
                    Err(e) if already_exists(&e) => {
                        // Created before: fine if its controller is the one this Service names.
                        let name = svc.metadata.name.clone().unwrap_or_default();
                        let existing = api.get(&name).await.map_err(|e| message(&e))?;
                        let controller = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                            m.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.clone())
                        };
                        let wanted = controller(&svc.metadata);
                        if wanted.is_some() && controller(&existing.metadata) == wanted {
                            Ok(())
                        } else {
                            Err(format!("service {name:?} already exists and has another controller"))
                        }
                    }
                    Err(e) => Err(message(&e)),
                }
            }
            Action::DeleteService { name } => {
                let api: Api<Service> = Api::namespaced(client, &ns);
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::SetServiceSelector { service, hash, managed_by } => {
                let api: Api<Service> = Api::namespaced(client, &ns);
                let mut patch = serde_json::json!({
                    "spec": {"selector": {rollouts_core::api::keys::POD_TEMPLATE_HASH: hash}}
                });
                if let Some(owner) = managed_by {
                    patch["metadata"] = serde_json::json!({
                        "annotations": {rollouts_core::api::keys::MANAGED_BY_ROLLOUTS: owner}
                    });
                }
                api.patch(service, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::PatchRolloutStatus { patch } => {
                let writes = lock(self.live).plan_status_write(patch, Instant::now());
                if writes.is_empty() {
                    tracing::debug!(rollout = %self.key, "status unchanged, or only recounted: not written yet");
                }
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &rollout_resource());
                for patch in writes {
                    let written = api.patch_status(&self.key.name, &params, &Patch::Merge(&patch)).await.map_err(|e| message(&e))?;
                    self.wrote(&written);
                }
                Ok(())
            }
            Action::PatchRollout { patch } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &rollout_resource());
                let written = api.patch(&self.key.name, &params, &Patch::Merge(patch)).await.map_err(|e| message(&e))?;
                self.wrote(&written);
                Ok(())
            }
            Action::EvictPod { name } => {
                let api: Api<Pod> = Api::namespaced(client, &ns);
                match api.evict(name, &EvictParams::default()).await {
                    Ok(_) => Ok(()),
                    // A disruption budget refused it: the core asks again later.
                    Err(e) if code(&e) == Some(429) => {
                        tracing::info!(rollout = %self.key, pod = %name, "eviction refused by a disruption budget");
                        Ok(())
                    }
                    Err(e) => gone_is_fine(Err(e)),
                }
            }
            Action::PatchPodMetadata { name, patch } => {
                // In place: a pod's labels and annotations change without a restart.
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let patch = serde_json::json!({ "metadata": patch.to_merge_patch() });
                gone_is_fine(api.patch(name, &params, &Patch::Merge(patch)).await.map(drop))
            }
            Action::CreateAnalysisRun { run } => create_argo_object(client, &ns, &analysis_run_resource(), run).await,
            Action::PatchAnalysisRun { name, patch } => {
                // Like Argo's, the AnalysisRun CRD has no status subresource.
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &analysis_run_resource());
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteAnalysisRun { name } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &analysis_run_resource());
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::CreateExperiment { experiment } => {
                create_argo_object(client, &ns, &experiment_resource(), experiment).await
            }
            Action::PatchExperiment { name, patch } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &experiment_resource());
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteExperiment { name } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &experiment_resource());
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::CreateIngress { ingress } => {
                let api: Api<Ingress> = Api::namespaced(client, &ns);
                let mut ing = (**ingress).clone();
                ing.metadata.namespace = Some(ns.clone());
                match api.create(&PostParams::default(), &ing).await {
                    Ok(_) => Ok(()),
                    // Created meanwhile: the re-read lets the core patch it or say whose it is.
                    Err(e) => Err(message(&e)),
                }
            }
            Action::PatchIngress { name, patch } => {
                let api: Api<Ingress> = Api::namespaced(client, &ns);
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::CreateRoute { kind, object } => {
                let mut object = object.clone();
                if *kind == rollouts_core::api::RouteKind::TrafficSplit {
                    // The controller's TrafficSplit version (v1alpha1 weights are quantities).
                    let api_version = crate::kubeapi::route_api_version(*kind);
                    let version = api_version.rsplit_once('/').map_or(api_version.as_str(), |(_, v)| v);
                    object = rollouts_core::traffic::smi::in_version(&object, version);
                }
                if *kind == rollouts_core::api::RouteKind::Mapping {
                    // A clone of the base Mapping, written in the controller's Mapping API
                    // (--ambassador-api-version) whatever the base was read as.
                    let resource = route_resource(*kind);
                    object["apiVersion"] = serde_json::json!(resource.api_version);
                    object["kind"] = serde_json::json!(resource.kind);
                }
                let route_ns = object.pointer("/metadata/namespace").and_then(serde_json::Value::as_str).unwrap_or(&ns).to_string();
                let obj: DynamicObject = match serde_json::from_value(object) {
                    Ok(o) => o,
                    Err(e) => return Err(format!("{} is not an object: {e}", kind.as_str())),
                };
                let api: Api<DynamicObject> = Api::namespaced_with(client, &route_ns, &route_resource(*kind));
                // Created meanwhile: the re-read lets the core patch it or say whose it is.
                api.create(&PostParams::default(), &obj).await.map(drop).map_err(|e| message(&e))
            }
            Action::PatchRoute { kind, namespace, name, patch } => {
                let route_ns = namespace.clone().unwrap_or_else(|| ns.clone());
                let api: Api<DynamicObject> = Api::namespaced_with(client, &route_ns, &route_resource(*kind));
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteRoute { kind, namespace, name } => {
                let route_ns = namespace.clone().unwrap_or_else(|| ns.clone());
                let api: Api<DynamicObject> = Api::namespaced_with(client, &route_ns, &route_resource(*kind));
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::Measure { run, metric, index, provider, secrets, context } => {
                let (client, me, token) = (self.client(), self.me.clone(), self.measuring.clone());
                let (run, metric, index, provider, secrets, context) =
                    (run.clone(), metric.clone(), *index, provider.clone(), secrets.clone(), context.clone());
                tokio::spawn(async move {
                    let answer = crate::providers::measure(&client, &ns, &provider, &secrets, &context).await;
                    if let Some(tx) = me.upgrade() {
                        let _ = tx.send(Box::new(Event::Measured { run, metric, index, answer }));
                    }
                    drop(token);
                });
                Ok(())
            }
            Action::CreateJob { job } => {
                let api: Api<Job> = Api::namespaced(client, &ns);
                let mut job = (**job).clone();
                job.metadata.namespace = Some(ns.clone());
                match api.create(&PostParams::default(), &job).await {
                    Ok(_) => Ok(()),
                    Err(e) if already_exists(&e) => Ok(()),
                    Err(e) => Err(message(&e)),
                }
            }
            Action::DeleteJob { name } => {
                let api: Api<Job> = Api::namespaced(client, &ns);
                gone_is_fine(api.delete(name, &DeleteParams::foreground()).await.map(drop))
            }
            Action::ScaleDeployment { name, replicas } => {
                let api: Api<Deployment> = Api::namespaced(client, &ns);
                let patch = serde_json::json!({"spec": {"replicas": replicas}});
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::RecordEvent { kind, reason, message: note } => {
                self.record_event(*kind, reason, note);
                let (ns, name) = (&self.key.namespace, &self.key.name);
                self.shared.notifier.notify(ns, name, self.state, *kind, reason, note, self.before);
                Ok(())
            }
            Action::WakeAt { .. } => Ok(()),
        }
    }

    /// Records a Kubernetes Event on the rollout (written in the background; a failure is
    /// logged, never fatal).
    fn record_event(&self, kind: EventType, reason: &str, note: &str) {
        tracing::info!(rollout = %self.key, reason, message = note, "event");
        let reference = ObjectReference {
            api_version: Some(rollouts_core::api::API_VERSION.to_string()),
            kind: Some("Rollout".to_string()),
            name: Some(self.key.name.clone()),
            namespace: Some(self.key.namespace.clone()),
            uid: self.state.rollout.as_ref().and_then(|r| r.metadata.uid.clone()),
            ..ObjectReference::default()
        };
        self.shared.record_event(&self.key.namespace, &reference, kind, reason, note);
    }

    /// Reads an object back (after a failed action).
    async fn read(&self, kind: ObjectKind, name: &str) -> Result<Option<Object>, kube::Error> {
        let (client, ns) = (self.client(), self.ns());
        fn dynamic(o: Option<DynamicObject>, f: fn(serde_json::Value) -> Object) -> Option<Object> {
            o.and_then(|o| serde_json::to_value(o).ok()).map(f)
        }
        Ok(match kind {
            ObjectKind::Rollout => {
                dynamic(Api::namespaced_with(client, ns, &rollout_resource()).get_opt(name).await?, |v| Object::Rollout(v.into()))
            }
            ObjectKind::AnalysisRun => {
                dynamic(Api::namespaced_with(client, ns, &analysis_run_resource()).get_opt(name).await?, Object::AnalysisRun)
            }
            ObjectKind::Experiment => {
                dynamic(Api::namespaced_with(client, ns, &experiment_resource()).get_opt(name).await?, Object::Experiment)
            }
            ObjectKind::ReplicaSet => {
                Api::<ReplicaSet>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::ReplicaSet(Arc::new(o)))
            }
            ObjectKind::Service => Api::<Service>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Service(Arc::new(o))),
            ObjectKind::Pod => Api::<Pod>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Pod(Arc::new(o))),
            ObjectKind::Job => Api::<Job>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Job(Box::new(o))),
            ObjectKind::Ingress => {
                Api::<Ingress>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Ingress(Box::new(o)))
            }
            ObjectKind::HttpRoute
            | ObjectKind::GrpcRoute
            | ObjectKind::TcpRoute
            | ObjectKind::VirtualService
            | ObjectKind::DestinationRule
            | ObjectKind::TrafficSplit
            | ObjectKind::TraefikService
            | ObjectKind::Mapping
            | ObjectKind::ApisixRoute
            | ObjectKind::AppMeshVirtualService
            | ObjectKind::VirtualRouter
            | ObjectKind::VirtualNode => {
                let Some(route) = kind.route_kind() else { return Ok(None) };
                let route_ns = self.route_namespace(route, name).unwrap_or_else(|| ns.to_string());
                dynamic(Api::namespaced_with(client, &route_ns, &route_resource(route)).get_opt(name).await?, Object::Route)
            }
            ObjectKind::Deployment => {
                Api::<Deployment>::namespaced(client, ns).get_opt(name).await?.and_then(|o| serde_json::to_value(o).ok()).map(Object::Workload)
            }
            ObjectKind::PodTemplate => {
                Api::<PodTemplate>::namespaced(client, ns).get_opt(name).await?.and_then(|o| serde_json::to_value(o).ok()).map(Object::Workload)
            }
            // Templates are only read, never written: nothing to re-read.
            ObjectKind::AnalysisTemplate | ObjectKind::ClusterAnalysisTemplate => return Ok(None),
        })
    }
}

/// The object an action is about.
fn target(action: &Action) -> Option<(ObjectKind, String)> {
    match action {
        Action::CreateReplicaSet { replica_set } => {
            Some((ObjectKind::ReplicaSet, replica_set.metadata.name.clone().unwrap_or_default()))
        }
        Action::PatchReplicaSet { name, .. } | Action::DeleteReplicaSet { name } => Some((ObjectKind::ReplicaSet, name.clone())),
        Action::SetServiceSelector { service, .. } => Some((ObjectKind::Service, service.clone())),
        Action::CreateService { service } => Some((ObjectKind::Service, service.metadata.name.clone().unwrap_or_default())),
        Action::DeleteService { name } => Some((ObjectKind::Service, name.clone())),
        Action::PatchRolloutStatus { .. } | Action::PatchRollout { .. } | Action::RecordEvent { .. } | Action::WakeAt { .. } => None,
        Action::EvictPod { name } | Action::PatchPodMetadata { name, .. } => Some((ObjectKind::Pod, name.clone())),
        Action::CreateAnalysisRun { run } => Some((ObjectKind::AnalysisRun, run.metadata.name.clone().unwrap_or_default())),
        Action::PatchAnalysisRun { name, .. } | Action::DeleteAnalysisRun { name } => Some((ObjectKind::AnalysisRun, name.clone())),
        Action::Measure { run, .. } => Some((ObjectKind::AnalysisRun, run.clone())),
        Action::CreateExperiment { experiment } => {
            Some((ObjectKind::Experiment, experiment.metadata.name.clone().unwrap_or_default()))
        }
        Action::PatchExperiment { name, .. } | Action::DeleteExperiment { name } => Some((ObjectKind::Experiment, name.clone())),
        Action::CreateJob { job } => Some((ObjectKind::Job, job.metadata.name.clone().unwrap_or_default())),
        Action::DeleteJob { name } => Some((ObjectKind::Job, name.clone())),
        Action::ScaleDeployment { name, .. } => Some((ObjectKind::Deployment, name.clone())),
        Action::CreateIngress { ingress } => Some((ObjectKind::Ingress, ingress.metadata.name.clone().unwrap_or_default())),
        Action::PatchIngress { name, .. } => Some((ObjectKind::Ingress, name.clone())),
        Action::CreateRoute { kind, object } => {
            Some(((*kind).into(), object.pointer("/metadata/name").and_then(serde_json::Value::as_str).unwrap_or_default().to_string()))
        }
        Action::PatchRoute { kind, name, .. } | Action::DeleteRoute { kind, name, .. } => Some(((*kind).into(), name.clone())),
    }
}

/// A short name of an action, for logs.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::CreateReplicaSet { .. } => "CreateReplicaSet",
        Action::PatchReplicaSet { .. } => "PatchReplicaSet",
        Action::DeleteReplicaSet { .. } => "DeleteReplicaSet",
        Action::SetServiceSelector { .. } => "SetServiceSelector",
        Action::CreateService { .. } => "CreateService",
        Action::DeleteService { .. } => "DeleteService",
        Action::PatchRolloutStatus { .. } => "PatchRolloutStatus",
        Action::PatchRollout { .. } => "PatchRollout",
        Action::EvictPod { .. } => "EvictPod",
        Action::PatchPodMetadata { .. } => "PatchPodMetadata",
        Action::CreateAnalysisRun { .. } => "CreateAnalysisRun",
        Action::PatchAnalysisRun { .. } => "PatchAnalysisRun",
        Action::DeleteAnalysisRun { .. } => "DeleteAnalysisRun",
        Action::CreateExperiment { .. } => "CreateExperiment",
        Action::PatchExperiment { .. } => "PatchExperiment",
        Action::DeleteExperiment { .. } => "DeleteExperiment",
        Action::Measure { .. } => "Measure",
        Action::CreateJob { .. } => "CreateJob",
        Action::DeleteJob { .. } => "DeleteJob",
        Action::ScaleDeployment { .. } => "ScaleDeployment",
        Action::CreateIngress { .. } => "CreateIngress",
        Action::PatchIngress { .. } => "PatchIngress",
        Action::CreateRoute { .. } => "CreateRoute",
        Action::PatchRoute { .. } => "PatchRoute",
        Action::DeleteRoute { .. } => "DeleteRoute",
        Action::RecordEvent { .. } => "RecordEvent",
        Action::WakeAt { .. } => "WakeAt",
    }
}

/// Creates an object of one of Argo's kinds (an AnalysisRun, an Experiment) in `ns`. One
/// that already exists is done: the rollout names them deterministically and re-reads them.
async fn create_argo_object(
    client: Client,
    ns: &str,
    resource: &kube::core::ApiResource,
    object: &impl serde::Serialize,
) -> Result<(), Failure> {
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, resource);
    let mut value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    value["metadata"]["namespace"] = ns.into();
    let obj: DynamicObject = serde_json::from_value(value).map_err(|e| e.to_string())?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(e) if already_exists(&e) => Ok(()),
        Err(e) => Err(message(&e)),
    }
}

/// A create refused because the object exists (`AlreadyExists`). Not any 409: a create
/// can be refused with a `Conflict` too (a proxy, an apiserver storage conflict), and
/// taking that as "created before" would leave the object missing for good.
pub(super) fn already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}

/// The HTTP status of an API error.
pub(super) fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// What an error says (the API server's message for an API error).
pub(super) fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Deleting what is already gone is done.
fn gone_is_fine(r: Result<(), kube::Error>) -> Result<(), Failure> {
    match r {
        Err(e) if code(&e) == Some(404) => Ok(()),
        Err(e) => Err(message(&e)),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(rv: &str, status: serde_json::Value) -> Event {
        Event::Applied(Object::Rollout(json!({"metadata": {"name": "web", "resourceVersion": rv}, "status": status}).into()))
    }

    #[test]
    fn a_status_patch_that_changes_nothing_live_is_not_a_write() {
        let mut live = LiveRollout::default();
        assert!(!live.unchanged_by(&json!({"status": {"phase": "Paused"}})), "nothing known: write");
        assert!(live.observe(&rollout("10", json!({"phase": "Paused", "replicas": 3, "canary": {"weights": null}}))));
        assert!(live.unchanged_by(&json!({"status": {"phase": "Paused", "replicas": 3}})));
        assert!(live.unchanged_by(&json!({"status": {"message": null}})), "removing what is absent");
        assert!(!live.unchanged_by(&json!({"status": {"phase": "Progressing"}})));
        assert!(!live.unchanged_by(&json!({"status": {"replicas": null}})));
        assert!(!live.unchanged_by(&json!({"spec": {"paused": true}})), "not a status patch");
    }

    #[test]
    fn an_echo_older_than_our_write_is_not_observed() {
        let mut live = LiveRollout::default();
        assert!(live.observe(&rollout("10", json!({"phase": "Paused"}))));
        // Our write answered with the Rollout at 12; the watch still delivers 11, then 12.
        live.wrote(json!({"metadata": {"resourceVersion": "12"}, "status": {"phase": "Progressing", "currentStepIndex": 2}}));
        assert!(!live.observe(&rollout("11", json!({"phase": "Progressing", "currentStepIndex": 1}))));
        assert!(live.unchanged_by(&json!({"status": {"currentStepIndex": 2}})), "the write's answer is the live status");
        assert!(live.observe(&rollout("12", json!({"phase": "Progressing", "currentStepIndex": 2}))));
        assert!(live.observe(&rollout("13", json!({"phase": "Paused", "currentStepIndex": 2}))));
        // Other objects, and versions that are not counters, always pass.
        assert!(live.observe(&Event::Tick));
        assert!(live.observe(&rollout("opaque", json!({}))));
        assert!(live.observe(&rollout("5", json!({}))), "after an opaque version nothing is older");
        // A deleted Rollout starts over.
        assert!(live.observe(&Event::Deleted { kind: ObjectKind::Rollout, name: "web".into() }));
        assert!(live.observe(&rollout("1", json!({}))));
    }

    #[test]
    fn the_cache_has_caught_up_once_the_watch_delivered_our_last_write() {
        let mut live = LiveRollout::default();
        assert!(live.caught_up(), "nothing written");
        assert!(live.observe(&rollout("10", json!({"phase": "Paused"}))));
        assert!(live.caught_up());
        live.wrote(json!({"metadata": {"resourceVersion": "12"}, "status": {"phase": "Progressing"}}));
        assert!(!live.caught_up(), "the cache still holds 10");
        assert!(!live.observe(&rollout("11", json!({"phase": "Paused"}))));
        assert!(!live.caught_up(), "11 is older than our write");
        assert!(live.observe(&rollout("12", json!({"phase": "Progressing"}))));
        assert!(live.caught_up());
        live.wrote(json!({"metadata": {"resourceVersion": "14"}, "status": {"phase": "Healthy"}}));
        assert!(live.observe(&rollout("15", json!({"phase": "Healthy"}))), "someone else's write after ours");
        assert!(live.caught_up());
    }

    fn paused_at_three() -> LiveRollout {
        let mut live = LiveRollout::default();
        let conditions = json!([
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "lastUpdateTime": "t1", "lastTransitionTime": "t0"},
            {"type": "Available", "status": "True", "reason": "AvailableReason", "lastUpdateTime": "t0", "lastTransitionTime": "t0"}
        ]);
        assert!(live.observe(&rollout("10", json!({"phase": "Progressing", "replicas": 3, "readyReplicas": 3, "conditions": conditions}))));
        live
    }

    #[test]
    fn recounts_wait_for_the_next_write_and_go_with_it() {
        let mut live = paused_at_three();
        let t0 = Instant::now();
        assert_eq!(live.plan_status_write(&json!({"status": {"replicas": 4, "HPAReplicas": 4}}), t0), Vec::<serde_json::Value>::new());
        let bumped = json!([
            {"type": "Available", "status": "True", "reason": "AvailableReason", "lastUpdateTime": "t0", "lastTransitionTime": "t0"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "lastUpdateTime": "t2", "lastTransitionTime": "t0"}
        ]);
        let later = t0 + Duration::from_secs(1);
        assert!(live.plan_status_write(&json!({"status": {"readyReplicas": 4, "conditions": bumped}}), later).is_empty(), "a lastUpdateTime is a recount");
        assert_eq!(live.held_until(), Some(t0 + HOLD_RECOUNTS));
        // The next real change carries them.
        let writes = live.plan_status_write(&json!({"status": {"phase": "Paused"}}), later);
        assert_eq!(writes, vec![json!({"status": {"replicas": 4, "HPAReplicas": 4, "readyReplicas": 4, "conditions": bumped, "phase": "Paused"}})]);
        assert_eq!(live.held_until(), None);
    }

    #[test]
    fn recounts_are_written_when_due_and_not_when_they_come_back() {
        let mut live = paused_at_three();
        let t0 = Instant::now();
        assert!(live.plan_status_write(&json!({"status": {"replicas": 4}}), t0).is_empty());
        assert_eq!(live.take_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(live.take_due(t0 + HOLD_RECOUNTS), Some(json!({"status": {"replicas": 4}})));
        // A recount held past its time is written with the next one.
        assert!(live.plan_status_write(&json!({"status": {"replicas": 5}}), t0).is_empty());
        assert_eq!(live.plan_status_write(&json!({"status": {"readyReplicas": 5}}), t0 + HOLD_RECOUNTS), vec![json!({"status": {"replicas": 5, "readyReplicas": 5}})]);
        // Counts that go back to the live ones cancel the held write.
        let mut live = paused_at_three();
        assert!(live.plan_status_write(&json!({"status": {"replicas": 4}}), t0).is_empty());
        assert!(live.plan_status_write(&json!({"status": {"replicas": 3}}), t0).is_empty());
        assert_eq!(live.held_until(), None);
        // A condition that changes more than its lastUpdateTime is written at once.
        let mut live = paused_at_three();
        let paused = json!([{"type": "Progressing", "status": "Unknown", "reason": "RolloutPaused", "lastUpdateTime": "t2", "lastTransitionTime": "t2"}]);
        assert_eq!(live.plan_status_write(&json!({"status": {"conditions": paused}}), t0).len(), 1);
    }

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status { code, reason: reason.into(), ..kube::core::Status::failure("refused", reason) }))
    }

    /// Only `AlreadyExists` means "created before": a create refused with another 409 (the
    /// fault proxy's `Conflict`) is a failed action, so the object is created on the retry.
    #[test]
    fn a_conflict_on_create_is_not_already_exists() {
        assert!(already_exists(&api_error(409, "AlreadyExists")));
        assert!(!already_exists(&api_error(409, "Conflict")));
        assert!(!already_exists(&api_error(500, "InternalError")));
    }
}
