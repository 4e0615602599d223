//! Kubernetes Events, correlated the way client-go's recorder (which Argo Rollouts uses)
//! correlates them, so that a rollout walking many steps costs few writes:
//!
//! - **repeats**: the same event (object, type, reason, message) seen again within
//!   [`REPEAT_WINDOW`] is a patch of the existing Event's series (count, last observed time),
//!   never a new object;
//! - **similar events**: once an object has had [`MAX_SIMILAR`] different messages for one
//!   (type, reason) within [`REPEAT_WINDOW`], further ones are one Event,
//!   `(combined from similar events): <message>`, whose count grows;
//! - **spam filter**: each object has a token bucket of [`SPAM_BURST`] writes refilled at one
//!   per [`SPAM_REFILL`]; an event over the budget is not written (it is still logged, counted
//!   in `rollout_events_total` and notified: only the API write is dropped).
//!
//! Like client-go's broadcaster, the writes happen in the background, one at a time and in
//! the order recorded, from a queue of [`QUEUE`] events (a full queue drops the newest): a
//! reconcile never waits for its Events before its next write (a promote's `RolloutResumed`
//! and `RolloutStepCompleted` used to delay its ReplicaSet write by two round trips).
//!
//! kube's `Recorder` keys its cache without the message, so a repeat of a reason with a new
//! message patches the older Event and keeps the older message; it has no spam filter.
//! Events are written as `events.k8s.io/v1`, as kube's recorder wrote them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rollouts_core::state::EventType;

/// How long an Event can be patched as a repeat, and the window of similar events
/// (client-go's aggregation interval).
pub const REPEAT_WINDOW: Duration = Duration::from_secs(600);
/// Different messages of one (object, type, reason) before they are combined (client-go's
/// `defaultAggregateMaxEvents`).
pub const MAX_SIMILAR: usize = 10;
/// Writes an object's events may make at once (client-go's `defaultSpamBurst`).
pub const SPAM_BURST: f64 = 25.0;
/// One more write per this long (client-go's `defaultSpamQPS`, 1/300).
pub const SPAM_REFILL: Duration = Duration::from_secs(300);
/// Events waiting to be written (client-go's `maxQueuedEvents`).
pub const QUEUE: usize = 1000;
/// (object, type, reason) entries remembered at most (client-go's `maxLruCacheEntries`):
/// past it the least recently seen go, so the recorder's memory stays bounded however many
/// rollouts record events within the window. A repeat of a forgotten one is a new Event.
pub const MAX_ENTRIES: usize = 4096;
/// Prefix of a combined event's message (client-go's).
const COMBINED: &str = "(combined from similar events): ";

/// The object an event is about, as its key.
type ObjectKey = (String, String, String, String);

fn object_key(object: &ObjectReference) -> ObjectKey {
    (
        object.kind.clone().unwrap_or_default(),
        object.namespace.clone().unwrap_or_default(),
        object.name.clone().unwrap_or_default(),
        object.uid.clone().unwrap_or_default(),
    )
}

/// What to write for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new Event `name` with the message `note`.
    Create { name: String, note: String },
    /// The Event `name` happened again: its series now counts `count`; a combined Event
    /// shows the latest message (`note`).
    Repeat { name: String, count: i32, note: Option<String> },
    /// Over the object's budget: nothing is written.
    Drop,
}

/// An Event written for one (object, type, reason).
#[derive(Debug)]
struct Seen {
    /// The message it stands for, as its hash ([`message_hash`]); `None` for the combined
    /// Event.
    message: Option<u64>,
    name: Box<str>,
    count: i32,
    last: Instant,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What the recorder remembers of one (object, type, reason). Vectors, not maps: an object
/// has a few reasons and a reason at most [`MAX_SIMILAR`] + 1 Events, while a map's first
/// node has room for eleven entries (the maps were most of the recorder's memory, 5 MB of a
/// 20 MB live heap after an update of 1,000 rollouts).
#[derive(Debug)]
struct Reason {
    warning: bool,
    reason: Box<str>,
    /// The messages seen within the window, as hashes (at most [`MAX_SIMILAR`]): the window of
    /// similar events needs only to tell them apart.
    similar: Vec<u64>,
    /// When this (object, type, reason) was last seen.
    last: Instant,
    /// The Events written.
    seen: Vec<Seen>,
}

/// What the recorder remembers of one object: its key is stored once, however many
/// events it had (a thousand rollouts' keys, copied into every repeat and similar-message
/// entry, were most of the recorder's memory).
#[derive(Debug)]
struct PerObject {
    bucket: Bucket,
    reasons: Vec<Reason>,
}

/// Pushes one element, growing the vector by exactly one: the vectors here stay short and
/// are read far more often than they grow.
fn push_exact<T>(v: &mut Vec<T>, x: T) {
    v.reserve_exact(1);
    v.push(x);
}

/// The recorder's memory: plain bookkeeping, with the time as a parameter.
#[derive(Debug, Default)]
pub struct Correlator {
    objects: HashMap<ObjectKey, PerObject>,
    /// How many [`Reason`]s `objects` holds.
    entries: usize,
    pruned: Option<Instant>,
}

/// A message's hash, how [`Reason::similar`] and [`Seen::message`] know it: `DefaultHasher::new()`
/// has fixed keys, so the same message always hashes the same (two messages of one object's
/// reason sharing a 64-bit hash would count as one).
fn message_hash(note: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    note.hash(&mut h);
    h.finish()
}

impl Correlator {
    /// Decides what an event costs; `name` names a new Event.
    pub fn decide(
        &mut self,
        object: &ObjectReference,
        kind: EventType,
        reason: &str,
        note: &str,
        now: Instant,
        name: impl FnOnce() -> String,
    ) -> Write {
        self.prune(now);
        let per = self
            .objects
            .entry(object_key(object))
            .or_insert_with(|| PerObject { bucket: Bucket { tokens: SPAM_BURST, at: now }, reasons: Vec::new() });
        let warning = matches!(kind, EventType::Warning);
        let index = match per.reasons.iter().position(|r| r.warning == warning && *r.reason == *reason) {
            Some(i) => i,
            None => {
                self.entries += 1;
                let fresh = Reason { warning, reason: reason.into(), similar: Vec::new(), last: now, seen: Vec::new() };
                push_exact(&mut per.reasons, fresh);
                per.reasons.len() - 1
            }
        };
        let entry = &mut per.reasons[index];
        if now.duration_since(entry.last) > REPEAT_WINDOW {
            entry.similar.clear();
        }
        entry.last = now;
        let hash = message_hash(note);
        let known = entry.similar.contains(&hash);
        let (key, note) = if known || entry.similar.len() < MAX_SIMILAR {
            if !known {
                push_exact(&mut entry.similar, hash);
            }
            (Some(hash), note.to_string())
        } else {
            // One Event stands for all the others.
            (None, format!("{COMBINED}{note}"))
        };
        let allowed = per.bucket.take(now);
        let at = entry.seen.iter().position(|s| s.message == key);
        let write = match at.map(|i| &mut entry.seen[i]).filter(|s| now.duration_since(s.last) <= REPEAT_WINDOW) {
            Some(seen) => {
                // Counted even when dropped: the next write carries the true count.
                seen.count += 1;
                seen.last = now;
                if allowed {
                    Write::Repeat { name: seen.name.to_string(), count: seen.count, note: key.is_none().then_some(note) }
                } else {
                    Write::Drop
                }
            }
            None if allowed => {
                let name = name();
                let seen = Seen { message: key, name: name.as_str().into(), count: 1, last: now };
                match at {
                    // The one seen before the window: replaced.
                    Some(i) => entry.seen[i] = seen,
                    None => push_exact(&mut entry.seen, seen),
                }
                Write::Create { name, note }
            }
            None => Write::Drop,
        };
        if self.entries > MAX_ENTRIES {
            self.evict();
        }
        write
    }

    /// Forgets the Event `name` (its create failed, or the API server expired it): the next
    /// repeat creates a new one.
    pub fn forget(&mut self, name: &str) {
        for per in self.objects.values_mut() {
            for reason in &mut per.reasons {
                reason.seen.retain(|s| &*s.name != name);
            }
        }
    }

    /// Forgets the least recently seen eighth of the entries (one pass per
    /// `MAX_ENTRIES / 8` new ones, not a scan per event); an object left with none goes too,
    /// its budget with it (client-go's spam filter forgets it the same way).
    fn evict(&mut self) {
        let mut by_age: Vec<(Instant, &ObjectKey, bool, &str)> = self
            .objects
            .iter()
            .flat_map(|(obj, per)| per.reasons.iter().map(move |r| (r.last, obj, r.warning, &*r.reason)))
            .collect();
        by_age.sort();
        let go: Vec<(ObjectKey, bool, Box<str>)> = by_age
            .into_iter()
            .take(MAX_ENTRIES / 8)
            .map(|(_, obj, warning, reason)| (obj.clone(), warning, reason.into()))
            .collect();
        for (obj, warning, reason) in go {
            if let Some(per) = self.objects.get_mut(&obj) {
                if let Some(i) = per.reasons.iter().position(|r| r.warning == warning && r.reason == reason) {
                    per.reasons.swap_remove(i);
                    self.entries -= 1;
                }
                if per.reasons.is_empty() {
                    self.objects.remove(&obj);
                }
            }
        }
    }

    /// Drops what no longer matters, at most once a minute: repeats and similar messages
    /// older than the window, objects with nothing left whose bucket has filled up again.
    fn prune(&mut self, now: Instant) {
        if self.pruned.is_some_and(|p| now.duration_since(p) < Duration::from_secs(60)) {
            return;
        }
        self.pruned = Some(now);
        let entries = &mut self.entries;
        self.objects.retain(|_, per| {
            per.reasons.retain_mut(|r| {
                r.seen.retain(|s| now.duration_since(s.last) <= REPEAT_WINDOW);
                if now.duration_since(r.last) > REPEAT_WINDOW {
                    r.similar.clear();
                }
                let keep = !(r.seen.is_empty() && r.similar.is_empty());
                *entries -= usize::from(!keep);
                keep
            });
            !per.reasons.is_empty() || !per.bucket.full_by(now)
        });
    }
}

impl Bucket {
    /// Client-go's token bucket: whether the object may write now.
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(SPAM_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether it has filled up again by `now` (and can be forgotten).
    fn full_by(&self, now: Instant) -> bool {
        let full_at = SPAM_REFILL.as_secs_f64() * (SPAM_BURST - self.tokens);
        now.duration_since(self.at).as_secs_f64() >= full_at
    }
}

/// Records the controller's Events: queues them for a [`Writer`].
pub struct EventRecorder {
    queue: tokio::sync::mpsc::Sender<Queued>,
}

/// An event waiting to be written.
struct Queued {
    object: ObjectReference,
    kind: EventType,
    reason: String,
    note: String,
}

impl EventRecorder {
    /// A recorder whose writer runs on the current tokio runtime until the recorder is dropped.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        let writer = Writer::new(client, controller, instance);
        let (queue, mut rx) = tokio::sync::mpsc::channel::<Queued>(QUEUE);
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Err(error) = writer.publish(&e.object, e.kind, &e.reason, &e.note).await {
                    let object = e.object.name.as_deref().unwrap_or_default();
                    tracing::warn!(object, reason = e.reason, %error, "cannot record event");
                }
            }
        });
        EventRecorder { queue }
    }

    /// Queues an event on `object` for writing (or counting, or dropping: see [`Correlator`]).
    pub fn record(&self, object: &ObjectReference, kind: EventType, reason: &str, note: &str) {
        let queued = Queued { object: object.clone(), kind, reason: reason.to_string(), note: note.to_string() };
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(e)) = self.queue.try_send(queued) {
            let object = e.object.name.as_deref().unwrap_or_default();
            tracing::warn!(object, reason = e.reason, queued = QUEUE, "too many events waiting to be written: dropped");
        }
    }
}

/// Writes Events through a [`Correlator`].
struct Writer {
    client: Client,
    /// `reportingController`.
    controller: String,
    /// `reportingInstance`.
    instance: String,
    correlator: Mutex<Correlator>,
}

impl Writer {
    fn new(client: Client, controller: &str, instance: &str) -> Self {
        Writer {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            correlator: Mutex::default(),
        }
    }

    /// Writes (or counts, or drops) an event on `object`.
    async fn publish(&self, object: &ObjectReference, kind: EventType, reason: &str, note: &str) -> Result<(), kube::Error> {
        let ns = object.namespace.clone().unwrap_or_else(|| "default".to_string());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        // An Event the API server expired meanwhile is created anew, once.
        for _ in 0..2 {
            let now = jiff::Timestamp::now();
            let write = self.correlator().decide(object, kind, reason, note, Instant::now(), || {
                format!("{}.{:x}", object.name.as_deref().unwrap_or(&self.controller), now.as_nanosecond())
            });
            match write {
                Write::Drop => {
                    tracing::debug!(object = object.name.as_deref().unwrap_or_default(), reason, "event over the object's budget: not written");
                    return Ok(());
                }
                Write::Create { name, note } => {
                    let event = self.event(object, kind, reason, name.clone(), note, now);
                    return match api.create(&PostParams::default(), &event).await {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            self.correlator().forget(&name);
                            Err(e)
                        }
                    };
                }
                Write::Repeat { name, count, note } => {
                    let series = EventSeries { count, last_observed_time: MicroTime(now) };
                    let mut patch = serde_json::json!({ "series": series });
                    if let Some(note) = note {
                        patch["note"] = note.into();
                    }
                    match api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                        Ok(_) => return Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 404 => self.correlator().forget(&name),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    fn correlator(&self) -> std::sync::MutexGuard<'_, Correlator> {
        // The bookkeeping holds no invariant a panic elsewhere could break halfway.
        self.correlator.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn event(&self, object: &ObjectReference, kind: EventType, reason: &str, name: String, note: String, now: jiff::Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(reason.to_string()),
            reason: Some(reason.to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(object.clone()),
            note: Some(note),
            metadata: ObjectMeta { namespace: object.namespace.clone(), name: Some(name), ..ObjectMeta::default() },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(kind.as_str().to_string()),
            ..K8sEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Rollout".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    struct Clock {
        start: Instant,
        names: u32,
    }

    impl Clock {
        fn decide(&mut self, c: &mut Correlator, object: &str, reason: &str, note: &str, at_secs: u64) -> Write {
            self.names += 1;
            let n = self.names;
            c.decide(&rollout(object), EventType::Normal, reason, note, self.start + Duration::from_secs(at_secs), || format!("e{n}"))
        }
    }

    fn clock() -> Clock {
        Clock { start: Instant::now(), names: 0 }
    }

    #[test]
    fn a_repeat_within_the_window_counts_on_the_first_event() {
        let (mut c, mut t) = (Correlator::default(), clock());
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", 0), Write::Create { name: "e1".into(), note: "paused".into() });
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", 10), Write::Repeat { name: "e1".into(), count: 2, note: None });
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", 300), Write::Repeat { name: "e1".into(), count: 3, note: None });
        // Another message, another object, another reason: other Events.
        assert!(matches!(t.decide(&mut c, "web", "RolloutPaused", "paused again", 301), Write::Create { .. }));
        assert!(matches!(t.decide(&mut c, "api", "RolloutPaused", "paused", 302), Write::Create { .. }));
        assert!(matches!(t.decide(&mut c, "web", "RolloutResumed", "paused", 303), Write::Create { .. }));
    }

    #[test]
    fn a_repeat_after_the_window_is_a_new_event() {
        let (mut c, mut t) = (Correlator::default(), clock());
        assert!(matches!(t.decide(&mut c, "web", "RolloutPaused", "paused", 0), Write::Create { .. }));
        let later = REPEAT_WINDOW.as_secs() + 1;
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", later), Write::Create { name: "e2".into(), note: "paused".into() });
        // Expired between two prunes (at most one a minute): the new Event takes its place.
        let (mut c, mut t) = (Correlator::default(), clock());
        assert!(matches!(t.decide(&mut c, "web", "RolloutPaused", "paused", 0), Write::Create { .. }));
        assert!(matches!(t.decide(&mut c, "web", "RolloutResumed", "resumed", later - 30), Write::Create { .. }));
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", later), Write::Create { name: "e3".into(), note: "paused".into() });
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", later + 1), Write::Repeat { name: "e3".into(), count: 2, note: None });
        let seen: Vec<usize> = c.objects.values().flat_map(|p| p.reasons.iter().map(|r| r.seen.len())).collect();
        assert_eq!(seen, [1, 1]);
    }

    #[test]
    fn similar_messages_beyond_ten_are_combined_into_one_event() {
        let (mut c, mut t) = (Correlator::default(), clock());
        for i in 0..MAX_SIMILAR as u64 {
            let w = t.decide(&mut c, "web", "RolloutStepCompleted", &format!("step {i}"), i);
            assert!(matches!(w, Write::Create { .. }), "{w:?}");
        }
        let w = t.decide(&mut c, "web", "RolloutStepCompleted", "step 10", 20);
        let Write::Create { name, note } = w else { panic!("{w:?}") };
        assert_eq!(note, "(combined from similar events): step 10");
        assert_eq!(t.decide(&mut c, "web", "RolloutStepCompleted", "step 11", 21), Write::Repeat { name: name.clone(), count: 2, note: Some("(combined from similar events): step 11".into()) });
        // A message seen before the limit still counts on its own Event.
        assert_eq!(t.decide(&mut c, "web", "RolloutStepCompleted", "step 3", 22), Write::Repeat { name: "e4".into(), count: 2, note: None });
    }

    #[test]
    fn an_object_writes_at_most_a_burst_then_one_per_refill() {
        let (mut c, mut t) = (Correlator::default(), clock());
        let writes = (0..100u64)
            .filter(|i| !matches!(t.decide(&mut c, "web", &format!("R{}", i % 7), &format!("m{i}"), *i / 10), Write::Drop))
            .count();
        assert_eq!(writes, SPAM_BURST as usize);
        // Another object has a budget of its own.
        assert!(matches!(t.decide(&mut c, "api", "R", "m", 10), Write::Create { .. }));
        // One token per refill period.
        let refill = SPAM_REFILL.as_secs();
        assert!(matches!(t.decide(&mut c, "web", "R0", "m0", 10 + refill), Write::Create { .. } | Write::Repeat { .. }));
        assert_eq!(t.decide(&mut c, "web", "R0", "m0", 11 + refill), Write::Drop);
    }

    #[test]
    fn a_dropped_repeat_is_still_counted() {
        let (mut c, mut t) = (Correlator::default(), clock());
        assert!(matches!(t.decide(&mut c, "web", "RolloutPaused", "paused", 0), Write::Create { .. }));
        for i in 1..SPAM_BURST as u64 {
            assert!(matches!(t.decide(&mut c, "web", &format!("R{i}"), "m", 0), Write::Create { .. }));
        }
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", 1), Write::Drop);
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", 1 + SPAM_REFILL.as_secs()), Write::Repeat { name: "e1".into(), count: 3, note: None });
    }

    #[test]
    fn objects_whose_events_are_past_the_window_are_forgotten() {
        let (mut c, mut t) = (Correlator::default(), clock());
        for i in 0..100 {
            assert!(matches!(t.decide(&mut c, &format!("r{i}"), "RolloutPaused", "paused", 0), Write::Create { .. }));
        }
        assert!(matches!(t.decide(&mut c, "web", "RolloutPaused", "paused", 30), Write::Create { .. }));
        assert_eq!(c.objects.len(), 101);
        // Past the window, with their buckets full again, only `web` (seen within it) is left.
        let later = REPEAT_WINDOW.as_secs() + 1;
        assert!(matches!(t.decide(&mut c, "web", "RolloutPaused", "paused", later), Write::Repeat { count: 2, .. }));
        assert_eq!(c.objects.keys().map(|k| k.2.as_str()).collect::<Vec<_>>(), ["web"]);
        // A forgotten object starts afresh.
        assert_eq!(t.decide(&mut c, "r1", "RolloutPaused", "paused", later), Write::Create { name: "e103".into(), note: "paused".into() });
    }

    #[test]
    fn at_most_max_entries_are_remembered_the_least_recently_seen_go() {
        let (mut c, mut t) = (Correlator::default(), clock());
        // Five reasons on each of 1,000 objects, a second for every fourth (within the window).
        for i in 0..1000u64 {
            for r in 0..5 {
                let w = t.decide(&mut c, &format!("r{i}"), &format!("R{r}"), "m", i / 4);
                assert!(matches!(w, Write::Create { .. }), "{w:?}");
            }
        }
        assert!(c.entries <= MAX_ENTRIES, "{}", c.entries);
        assert_eq!(c.entries, c.objects.values().map(|p| p.reasons.len()).sum::<usize>());
        assert!(c.entries > MAX_ENTRIES - MAX_ENTRIES / 8 - 1, "{}", c.entries);
        // The oldest objects went whole; the most recent repeats on its Event, the oldest is a
        // new one.
        assert!((0..100).all(|i| !c.objects.contains_key(&("Rollout".into(), "ns".into(), format!("r{i}"), format!("uid-r{i}")))));
        assert!(matches!(t.decide(&mut c, "r999", "R4", "m", 250), Write::Repeat { count: 2, .. }));
        assert!(matches!(t.decide(&mut c, "r0", "R0", "m", 250), Write::Create { .. }));
    }

    #[test]
    fn a_forgotten_event_is_created_again() {
        let (mut c, mut t) = (Correlator::default(), clock());
        assert!(matches!(t.decide(&mut c, "web", "RolloutPaused", "paused", 0), Write::Create { .. }));
        c.forget("e1");
        assert_eq!(t.decide(&mut c, "web", "RolloutPaused", "paused", 1), Write::Create { name: "e2".into(), note: "paused".into() });
    }
}
