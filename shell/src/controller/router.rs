//! Routes watch events to the rollouts (and Experiments) they concern.
//!
//! The router keeps the latest version of every watched object (the informer caches) and
//! knows which rollout each belongs to: ReplicaSets, AnalysisRuns and Experiments by their
//! owner reference, Pods through their ReplicaSet, Jobs through their AnalysisRun, Services,
//! templates, Ingresses and Gateway API routes through the names a rollout's spec references
//! (a route in another namespace when the router configuration names it). It is plain data
//! in, plain data out, so it is unit-tested without a cluster; `controller::run` feeds it
//! and carries out what it returns.
//!
//! Every Experiment has a worker of its own (standalone or created by a rollout's step; the
//! rollout also gets its Experiments). It receives the ReplicaSets, Services and AnalysisRuns
//! the Experiment controls, those bearing the names it would create (a clash is its to
//! report), and the analysis templates it names: only what its decisions read, never a whole
//! namespace. An Experiment's AnalysisRuns are measured by a run worker of their own, as any
//! run no rollout owns.
//!
//! Nothing is routed until every expected kind has been listed once: a rollout reconciled
//! before its ReplicaSets are known would think it has none. A kind that is not expected
//! (the cluster did not serve it at startup) may be listed later; its objects then reach the
//! rollouts that reference them like any change.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rollouts_core::api::lenient::rollout_lenient;
use rollouts_core::rollout::{references, References};
use rollouts_core::state::{Event, Object, ObjectKind};
use serde_json::Value;

/// What a worker drives: a rollout, by namespace and name, an AnalysisRun that no rollout
/// owns (`rollouts create analysisrun`, an Experiment's: Argo's analysis controller runs
/// those too), or an Experiment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RolloutKey {
    pub namespace: String,
    pub name: String,
    pub kind: WorkerKind,
}

/// The object a worker drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkerKind {
    /// A Rollout and everything it owns and references.
    #[default]
    Rollout,
    /// An AnalysisRun of its own, with its Jobs.
    AnalysisRun,
    /// An Experiment, with the objects its decisions read.
    Experiment,
}

impl RolloutKey {
    /// The worker of a rollout.
    pub fn rollout(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        RolloutKey { namespace: namespace.into(), name: name.into(), kind: WorkerKind::Rollout }
    }

    /// The worker of an AnalysisRun no rollout owns.
    pub fn run(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        RolloutKey { namespace: namespace.into(), name: name.into(), kind: WorkerKind::AnalysisRun }
    }

    /// The worker of an Experiment.
    pub fn experiment(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        RolloutKey { namespace: namespace.into(), name: name.into(), kind: WorkerKind::Experiment }
    }

    /// Whether the worker drives a rollout.
    pub fn is_rollout(&self) -> bool {
        self.kind == WorkerKind::Rollout
    }

    /// The kind of the object the worker drives.
    pub fn object_kind(&self) -> ObjectKind {
        match self.kind {
            WorkerKind::Rollout => ObjectKind::Rollout,
            WorkerKind::AnalysisRun => ObjectKind::AnalysisRun,
            WorkerKind::Experiment => ObjectKind::Experiment,
        }
    }
}

impl std::fmt::Display for RolloutKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            WorkerKind::Rollout => write!(f, "{}/{}", self.namespace, self.name),
            WorkerKind::AnalysisRun => write!(f, "analysisrun {}/{}", self.namespace, self.name),
            WorkerKind::Experiment => write!(f, "experiment {}/{}", self.namespace, self.name),
        }
    }
}

/// What a watch stream reported.
#[derive(Clone, Debug)]
pub enum Watched {
    /// A (re-)list of `kind` begins (the controller's own watch of the kind: every namespace,
    /// or the one it is confined to).
    Init(ObjectKind),
    /// An object was listed, added or changed.
    Apply(Object),
    /// An object was deleted.
    Delete(Object),
    /// The (re-)list of `kind` is complete.
    InitDone(ObjectKind),
    /// A (re-)list of `kind` in one more namespace begins: a watch the controller started
    /// because a rollout names a route in a namespace its own watches do not cover.
    InitIn(ObjectKind, String),
    /// That list is complete.
    InitDoneIn(ObjectKind, String),
}

/// What the router asks of the controller.
#[derive(Debug, PartialEq)]
pub enum Routed {
    /// Start a worker for a rollout, with these events first.
    Start(RolloutKey, Vec<Event>),
    /// Deliver events to a running worker.
    Deliver(RolloutKey, Vec<Event>),
    /// The rollout is gone: deliver its deletion and let its worker end.
    Stop(RolloutKey),
}

type Name = (String, String);

/// A listing: a kind, in every namespace the controller's own watch covers (`None`) or in one
/// more namespace of its own.
type Listing = (ObjectKind, Option<String>);

/// A cached object. The kinds a cluster holds by the thousand — Rollouts, ReplicaSets, Pods,
/// Services and the Deployments or PodTemplates a `workloadRef` may name — are kept as their
/// JSON text, with their owner references beside it for routing. Parsed, an object is a
/// tree of small allocations (a ReplicaSet with its pod template about a hundred, a Rollout
/// with its status four times its text), and the cache holds each for as long as it lives:
/// as text, the live heap at 1,000 Healthy rollouts fell from 28.3 to 16.4 MiB (heaptrack;
/// the RSS is set by the burst of reconciles, see the README). A worker parses what it is
/// started with; a running worker holds the objects the watch delivered anyway.
#[derive(Debug)]
enum Cached {
    Object(Object),
    Text { text: Box<str>, owners: Box<[Owner]> },
}

/// One owner reference of a cached object, as routing reads it.
#[derive(Debug)]
struct Owner {
    kind: Box<str>,
    name: Box<str>,
    controller: bool,
}

impl Owner {
    fn typed(meta: &ObjectMeta) -> Box<[Owner]> {
        let refs = meta.owner_references.iter().flatten();
        refs.map(|o| Owner { kind: o.kind.as_str().into(), name: o.name.as_str().into(), controller: o.controller == Some(true) }).collect()
    }

    fn raw(v: &Value) -> Box<[Owner]> {
        let refs = v.pointer("/metadata/ownerReferences").and_then(Value::as_array).into_iter().flatten();
        refs.map(|o| {
            let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().into();
            Owner { kind: text("kind"), name: text("name"), controller: o.get("controller").and_then(Value::as_bool) == Some(true) }
        })
        .collect()
    }
}

impl Cached {
    fn new(obj: &Object) -> Cached {
        fn typed<T: serde::Serialize>(o: &T, meta: &ObjectMeta) -> Cached {
            // A typed Kubernetes object always serializes (string keys, no failing `Serialize`).
            let text = serde_json::to_string(o).unwrap_or_default().into_boxed_str();
            Cached::Text { text, owners: Owner::typed(meta) }
        }
        match obj {
            Object::Rollout(v) => Cached::Text { text: v.to_string().into_boxed_str(), owners: Owner::raw(v) },
            Object::Workload(v) => Cached::Text { text: v.to_string().into_boxed_str(), owners: Owner::raw(v) },
            Object::ReplicaSet(o) => typed(&**o, &o.metadata),
            Object::Pod(o) => typed(&**o, &o.metadata),
            Object::Service(o) => typed(&**o, &o.metadata),
            other => Cached::Object(other.clone()),
        }
    }

    /// The object (parsed again when kept as text). `None` only if text this cache wrote
    /// from a typed object no longer parses as that type, which serde's round trip rules out.
    fn object(&self, kind: ObjectKind) -> Option<Object> {
        let text = match self {
            Cached::Object(o) => return Some(o.clone()),
            Cached::Text { text, .. } => text,
        };
        fn typed<T: serde::de::DeserializeOwned>(text: &str) -> Option<std::sync::Arc<T>> {
            serde_json::from_str(text).ok().map(std::sync::Arc::new)
        }
        match kind {
            ObjectKind::Rollout => Some(Object::Rollout(std::sync::Arc::new(serde_json::from_str(text).unwrap_or(Value::Null)))),
            ObjectKind::Deployment | ObjectKind::PodTemplate => serde_json::from_str(text).ok().map(Object::Workload),
            ObjectKind::ReplicaSet => typed(text).map(Object::ReplicaSet),
            ObjectKind::Pod => typed(text).map(Object::Pod),
            ObjectKind::Service => typed(text).map(Object::Service),
            _ => None,
        }
    }

    /// The object in place, for the kinds not kept as text (see [`Cached`]).
    fn as_object(&self) -> Option<&Object> {
        match self {
            Cached::Object(o) => Some(o),
            Cached::Text { .. } => None,
        }
    }

    /// The name of the object's owner of `kind`, read in place.
    fn owner(&self, kind: &str) -> Option<&str> {
        match self {
            Cached::Object(o) => owner_of(o, kind),
            Cached::Text { owners, .. } => owners.iter().find(|o| &*o.kind == kind).map(|o| &*o.name),
        }
    }

    /// Whether the object's controller is the `kind` named `name`.
    fn controlled_by(&self, kind: &str, name: &str) -> bool {
        match self {
            Cached::Object(o) => meta_of(o)
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.kind == kind && o.name == name),
            Cached::Text { owners, .. } => owners.iter().any(|o| o.controller && &*o.kind == kind && &*o.name == name),
        }
    }
}

/// The router's caches.
#[derive(Default)]
pub struct Router {
    cache: BTreeMap<ObjectKind, BTreeMap<Name, Cached>>,
    relisting: BTreeMap<Listing, BTreeSet<Name>>,
    /// The namespaces listed by watches of their own, per kind.
    extra: BTreeSet<(ObjectKind, String)>,
    synced: BTreeSet<ObjectKind>,
    expected: BTreeSet<ObjectKind>,
    started: bool,
    running: BTreeMap<RolloutKey, References>,
    /// The running Experiment workers and the names their Experiments use.
    experiments: BTreeMap<RolloutKey, ExperimentRefs>,
    /// Whether a running rollout's references changed since [`Router::take_references_changed`].
    references_changed: bool,
}

impl Router {
    /// A router that starts routing once each of `kinds` has been listed.
    pub fn new(kinds: impl IntoIterator<Item = ObjectKind>) -> Self {
        Router { expected: kinds.into_iter().collect(), ..Router::default() }
    }

    /// Whether every kind has been listed and workers run.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Number of cached objects (for logs).
    pub fn cached(&self) -> usize {
        self.cache.values().map(BTreeMap::len).sum()
    }

    /// The listing an object of `kind` in `namespace` belongs to.
    fn listing(&self, kind: ObjectKind, namespace: &str) -> Listing {
        let extra = self.extra.contains(&(kind, namespace.to_string()));
        (kind, extra.then(|| namespace.to_string()))
    }

    /// Whether the references of the running rollouts changed since the last call.
    pub fn take_references_changed(&mut self) -> bool {
        std::mem::take(&mut self.references_changed)
    }

    /// The Gateway API routes the running rollouts name, as (kind, namespace), the namespace
    /// defaulted to the rollout's: the controller watches those outside its own scope.
    pub fn route_namespaces(&self) -> BTreeSet<(ObjectKind, String)> {
        self.running
            .iter()
            .flat_map(|(k, refs)| {
                refs.routes.iter().map(|r| (ObjectKind::from(r.kind), r.namespace.clone().unwrap_or_else(|| k.namespace.clone())))
            })
            .collect()
    }

    /// Takes one watch report; returns what to start, deliver or stop.
    pub fn handle(&mut self, watched: Watched) -> Vec<Routed> {
        match watched {
            Watched::Init(kind) => {
                self.relisting.insert((kind, None), BTreeSet::new());
                Vec::new()
            }
            Watched::InitIn(kind, namespace) => {
                self.extra.insert((kind, namespace.clone()));
                self.relisting.insert((kind, Some(namespace)), BTreeSet::new());
                Vec::new()
            }
            Watched::InitDoneIn(kind, namespace) => self.relisted((kind, Some(namespace))),
            Watched::Apply(obj) => {
                let kind = kind_of(&obj);
                let meta = meta_of(&obj);
                let key = name_of(&meta);
                let listing = self.listing(kind, &key.0);
                if let Some(seen) = self.relisting.get_mut(&listing) {
                    seen.insert(key.clone());
                }
                let existed = self.cache.get(&kind).is_some_and(|c| c.contains_key(&key));
                self.cache.entry(kind).or_default().insert(key, Cached::new(&obj));
                if !self.started {
                    return Vec::new();
                }
                let for_experiments = self.route_apply_experiments(&obj, &meta);
                let mut out = self.route_apply(obj, &meta, existed);
                out.extend(for_experiments);
                out
            }
            Watched::Delete(obj) => {
                let kind = kind_of(&obj);
                let meta = meta_of(&obj);
                let key = name_of(&meta);
                let out = if self.started {
                    let mut out = self.route_delete(kind, &meta);
                    out.extend(self.route_delete_experiments(kind, &meta));
                    out
                } else {
                    Vec::new()
                };
                if let Some(c) = self.cache.get_mut(&kind) {
                    c.remove(&key);
                }
                out
            }
            Watched::InitDone(kind) => {
                let mut out = self.relisted((kind, None));
                self.synced.insert(kind);
                if !self.started && self.expected.is_subset(&self.synced) {
                    self.started = true;
                    let rollouts: Vec<Name> =
                        self.cache.get(&ObjectKind::Rollout).map(|c| c.keys().cloned().collect()).unwrap_or_default();
                    for (namespace, name) in rollouts {
                        out.extend(self.start(RolloutKey::rollout(namespace, name)));
                    }
                    let runs: Vec<Object> =
                        self.cache.get(&ObjectKind::AnalysisRun).map(|c| c.values().filter_map(|o| o.object(ObjectKind::AnalysisRun)).collect()).unwrap_or_default();
                    for run in runs {
                        if let Some(key) = self.owner_rollout(ObjectKind::AnalysisRun, &meta_of(&run)).filter(|k| !k.is_rollout()) {
                            out.extend(self.start(key));
                        }
                    }
                    let experiments: Vec<Name> =
                        self.cache.get(&ObjectKind::Experiment).map(|c| c.keys().cloned().collect()).unwrap_or_default();
                    for (namespace, name) in experiments {
                        out.extend(self.start(RolloutKey::experiment(namespace, name)));
                    }
                }
                out
            }
        }
    }

    /// A (re-)list is complete: objects of the listing that were cached but not re-listed
    /// were deleted meanwhile.
    fn relisted(&mut self, listing: Listing) -> Vec<Routed> {
        let Some(seen) = self.relisting.remove(&listing) else { return Vec::new() };
        let gone: Vec<Object> = self
            .cache
            .get(&listing.0)
            .map(|c| {
                c.iter()
                    .filter(|(k, _)| !seen.contains(*k) && self.listing(listing.0, &k.0) == listing)
                    .filter_map(|(_, o)| o.object(listing.0))
                    .collect()
            })
            .unwrap_or_default();
        gone.into_iter().flat_map(|obj| self.handle(Watched::Delete(obj))).collect()
    }

    /// A cached object (parsed from its text for the kinds kept so).
    fn get(&self, kind: ObjectKind, namespace: &str, name: &str) -> Option<Object> {
        self.entry(kind, namespace, name)?.object(kind)
    }

    /// A cached object in place; only of the kinds not kept as text (see [`Cached`]).
    fn get_ref(&self, kind: ObjectKind, namespace: &str, name: &str) -> Option<&Object> {
        self.entry(kind, namespace, name)?.as_object()
    }

    fn entry(&self, kind: ObjectKind, namespace: &str, name: &str) -> Option<&Cached> {
        self.cache.get(&kind)?.get(&(namespace.to_string(), name.to_string()))
    }

    /// The cached objects of `kind` in `namespace` (a range of the cache, not a scan of it).
    fn in_namespace<'a>(&'a self, kind: ObjectKind, namespace: &'a str) -> impl Iterator<Item = (&'a String, &'a Cached)> + 'a {
        self.cache
            .get(&kind)
            .into_iter()
            .flat_map(move |c| c.range((namespace.to_string(), String::new())..).take_while(move |((ns, _), _)| ns == namespace))
            .map(|((_, name), o)| (name, o))
    }

    /// The cached objects of `kind` in `namespace` whose owner of `owner_kind` is `owner`.
    fn owned_by<'a>(
        &'a self,
        kind: ObjectKind,
        namespace: &'a str,
        owner_kind: &'a str,
        owner: &'a str,
    ) -> impl Iterator<Item = (&'a String, Object)> + 'a {
        self.in_namespace(kind, namespace).filter(move |(_, o)| o.owner(owner_kind) == Some(owner)).filter_map(move |(n, o)| Some((n, o.object(kind)?)))
    }

    /// The rollout an object belongs to, by owner references.
    fn owner_rollout(&self, kind: ObjectKind, meta: &ObjectMeta) -> Option<RolloutKey> {
        let namespace = meta.namespace.clone().unwrap_or_default();
        match kind {
            ObjectKind::Rollout => Some(RolloutKey::rollout(namespace, meta.name.clone()?)),
            ObjectKind::ReplicaSet | ObjectKind::Experiment => {
                owner_named(meta, "Rollout").map(|name| RolloutKey::rollout(namespace, name))
            }
            ObjectKind::AnalysisRun => match owner_named(meta, "Rollout") {
                Some(name) => Some(RolloutKey::rollout(namespace, name)),
                None => Some(RolloutKey::run(namespace, meta.name.clone()?)),
            },
            ObjectKind::Pod => {
                let rs = owner_named(meta, "ReplicaSet")?;
                let rs = self.entry(ObjectKind::ReplicaSet, &namespace, &rs)?;
                rs.owner("Rollout").map(|name| RolloutKey::rollout(namespace, name))
            }
            ObjectKind::Job => {
                let run = owner_named(meta, "AnalysisRun")?;
                let run = self.get_ref(ObjectKind::AnalysisRun, &namespace, &run)?;
                self.owner_rollout(ObjectKind::AnalysisRun, &meta_of(run))
            }
            // Named by a rollout's spec, owned by none (see `by_reference`).
            _ => None,
        }
    }

    /// The running rollouts a Service or template concerns.
    fn referencing(&self, kind: ObjectKind, meta: &ObjectMeta) -> Vec<RolloutKey> {
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        self.running
            .iter()
            .filter(|(k, refs)| match kind {
                ObjectKind::Service => k.namespace == namespace && refs.services.contains(&name),
                ObjectKind::AnalysisTemplate => k.namespace == namespace && refs.templates.contains(&name),
                ObjectKind::ClusterAnalysisTemplate => refs.cluster_templates.contains(&name),
                ObjectKind::Ingress => k.namespace == namespace && refs.ingresses.contains(&name),
                ObjectKind::Deployment | ObjectKind::PodTemplate => {
                    k.namespace == namespace && refs.workload.as_ref().is_some_and(|(wk, wn)| *wn == name && workload_kind(wk) == Some(kind))
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
                | ObjectKind::VirtualNode => refs.routes.iter().any(|r| {
                    kind.route_kind().is_some_and(|k| r.covers(k, &name))
                        && r.namespace.as_deref().unwrap_or(k.namespace.as_str()) == namespace
                }),
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn route_apply(&mut self, obj: Object, meta: &ObjectMeta, existed: bool) -> Vec<Routed> {
        let kind = kind_of(&obj);
        match kind {
            ObjectKind::Rollout => {
                let Some(key) = self.owner_rollout(kind, meta) else { return Vec::new() };
                let Some(old_refs) = self.running.get(&key).cloned() else { return self.start(key) };
                let refs = refs_of(&obj);
                let mut events = vec![Event::Applied(obj)];
                if refs != old_refs {
                    events.extend(self.referenced(&key.namespace, &refs));
                    self.running.insert(key.clone(), refs);
                    self.references_changed = true;
                }
                vec![Routed::Deliver(key, events)]
            }
            kind if by_reference(kind) => self
                .referencing(kind, meta)
                .into_iter()
                .map(|k| Routed::Deliver(k, vec![Event::Applied(obj.clone())]))
                .collect(),
            _ => {
                let standalone = self.owner_rollout(kind, meta).filter(|k| !k.is_rollout() && !self.running.contains_key(k));
                if let (ObjectKind::AnalysisRun, Some(key)) = (kind, standalone) {
                    return self.start(key);
                }
                let Some(key) = self.owner_rollout(kind, meta).filter(|k| self.running.contains_key(k)) else {
                    return Vec::new();
                };
                let mut events = vec![Event::Applied(obj)];
                // Children seen before their parent (a Pod before its ReplicaSet) follow it now.
                if !existed {
                    let namespace = meta.namespace.clone().unwrap_or_default();
                    let name = meta.name.clone().unwrap_or_default();
                    let child = match kind {
                        ObjectKind::ReplicaSet => Some((ObjectKind::Pod, "ReplicaSet")),
                        ObjectKind::AnalysisRun => Some((ObjectKind::Job, "AnalysisRun")),
                        _ => None,
                    };
                    if let Some((child_kind, owner_kind)) = child {
                        events.extend(self.owned_by(child_kind, &namespace, owner_kind, &name).map(|(_, o)| Event::Applied(o)));
                    }
                }
                vec![Routed::Deliver(key, events)]
            }
        }
    }

    fn route_delete(&mut self, kind: ObjectKind, meta: &ObjectMeta) -> Vec<Routed> {
        let name = meta.name.clone().unwrap_or_default();
        let deleted = || Event::Deleted { kind, name: name.clone() };
        match kind {
            ObjectKind::Rollout => {
                let Some(key) = self.owner_rollout(kind, meta) else { return Vec::new() };
                if self.running.remove(&key).is_some() {
                    vec![Routed::Stop(key)]
                } else {
                    Vec::new()
                }
            }
            kind if by_reference(kind) => {
                self.referencing(kind, meta).into_iter().map(|k| Routed::Deliver(k, vec![deleted()])).collect()
            }
            ObjectKind::AnalysisRun if self.owner_rollout(kind, meta).is_some_and(|k| !k.is_rollout()) => {
                match self.owner_rollout(kind, meta).filter(|k| self.running.remove(k).is_some()) {
                    Some(key) => vec![Routed::Stop(key)],
                    None => Vec::new(),
                }
            }
            _ => match self.owner_rollout(kind, meta).filter(|k| self.running.contains_key(k)) {
                Some(key) => vec![Routed::Deliver(key, vec![deleted()])],
                None => Vec::new(),
            },
        }
    }

    /// Starts the worker of a rollout again (it was let go while idle) with what the cache
    /// holds now; nothing when the rollout is gone.
    pub fn restart(&mut self, key: RolloutKey) -> Vec<Routed> {
        if !self.running.contains_key(&key) {
            return Vec::new();
        }
        self.start(key)
    }

    /// Starts a worker for a rollout with everything it owns and references, for an
    /// AnalysisRun of its own with its Jobs, or for an Experiment with what it reads.
    fn start(&mut self, key: RolloutKey) -> Vec<Routed> {
        if key.kind == WorkerKind::Experiment {
            return self.start_experiment(key);
        }
        if !key.is_rollout() {
            let Some(run) = self.get(ObjectKind::AnalysisRun, &key.namespace, &key.name) else { return Vec::new() };
            let mut events = vec![Event::Applied(run)];
            events.extend(self.owned_by(ObjectKind::Job, &key.namespace, "AnalysisRun", &key.name).map(|(_, o)| Event::Applied(o)));
            self.running.insert(key.clone(), References::default());
            return vec![Routed::Start(key, events)];
        }
        let Some(rollout) = self.get(ObjectKind::Rollout, &key.namespace, &key.name) else {
            return Vec::new();
        };
        let refs = refs_of(&rollout);
        let mut events = vec![Event::Applied(rollout)];
        let owned = |router: &Router, kind: ObjectKind, owner_kind: &str, owner: &str| -> Vec<(String, Object)> {
            router.owned_by(kind, &key.namespace, owner_kind, owner).map(|(n, o)| (n.clone(), o)).collect()
        };
        for (rs_name, rs) in owned(self, ObjectKind::ReplicaSet, "Rollout", &key.name) {
            events.push(Event::Applied(rs));
            events.extend(owned(self, ObjectKind::Pod, "ReplicaSet", &rs_name).into_iter().map(|(_, p)| Event::Applied(p)));
        }
        for (run_name, run) in owned(self, ObjectKind::AnalysisRun, "Rollout", &key.name) {
            events.push(Event::Applied(run));
            events.extend(owned(self, ObjectKind::Job, "AnalysisRun", &run_name).into_iter().map(|(_, j)| Event::Applied(j)));
        }
        events.extend(owned(self, ObjectKind::Experiment, "Rollout", &key.name).into_iter().map(|(_, e)| Event::Applied(e)));
        events.extend(self.referenced(&key.namespace, &refs));
        self.running.insert(key.clone(), refs);
        self.references_changed = true;
        vec![Routed::Start(key, events)]
    }

    /// An Experiment changed or appeared: its worker starts, or gets it (with the objects of
    /// names it did not use before). Any other object goes to the Experiments it concerns.
    fn route_apply_experiments(&mut self, obj: &Object, meta: &ObjectMeta) -> Vec<Routed> {
        let kind = kind_of(obj);
        if kind == ObjectKind::Experiment {
            let key = RolloutKey::experiment(meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
            let Some(old) = self.experiments.get(&key) else { return self.start(key) };
            let refs = experiment_refs(obj);
            let mut events = vec![Event::Applied(obj.clone())];
            if refs != *old {
                events.extend(self.experiment_objects(&key, &refs).into_iter().map(Event::Applied));
                self.experiments.insert(key.clone(), refs);
            }
            return vec![Routed::Deliver(key, events)];
        }
        self.experiments_concerned(kind, meta).into_iter().map(|k| Routed::Deliver(k, vec![Event::Applied(obj.clone())])).collect()
    }

    /// An Experiment was deleted: its worker stops. Any other object's deletion goes to the
    /// Experiments it concerned.
    fn route_delete_experiments(&mut self, kind: ObjectKind, meta: &ObjectMeta) -> Vec<Routed> {
        let name = meta.name.clone().unwrap_or_default();
        if kind == ObjectKind::Experiment {
            let key = RolloutKey::experiment(meta.namespace.clone().unwrap_or_default(), name);
            return match self.experiments.remove(&key) {
                Some(_) => vec![Routed::Stop(key)],
                None => Vec::new(),
            };
        }
        self.experiments_concerned(kind, meta)
            .into_iter()
            .map(|k| Routed::Deliver(k, vec![Event::Deleted { kind, name: name.clone() }]))
            .collect()
    }

    /// The running Experiment workers an object concerns.
    fn experiments_concerned(&self, kind: ObjectKind, meta: &ObjectMeta) -> Vec<RolloutKey> {
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        self.experiments
            .iter()
            .filter(|(k, refs)| (kind == ObjectKind::ClusterAnalysisTemplate || k.namespace == namespace) && refs.concerns(&k.name, kind, meta))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The cached objects an Experiment reads: those it controls and those of the names it uses.
    fn experiment_objects(&self, key: &RolloutKey, refs: &ExperimentRefs) -> Vec<Object> {
        let mut out = Vec::new();
        for kind in [ObjectKind::ReplicaSet, ObjectKind::Service, ObjectKind::AnalysisRun, ObjectKind::AnalysisTemplate] {
            out.extend(
                self.in_namespace(kind, &key.namespace)
                    .filter(|(name, o)| refs.concerns_named(kind, name, || o.controlled_by("Experiment", &key.name)))
                    .filter_map(|(_, o)| o.object(kind)),
            );
        }
        for name in &refs.cluster_templates {
            out.extend(self.get(ObjectKind::ClusterAnalysisTemplate, "", name));
        }
        out
    }

    /// Starts an Experiment's worker with the Experiment and the objects it reads.
    fn start_experiment(&mut self, key: RolloutKey) -> Vec<Routed> {
        let Some(experiment) = self.get(ObjectKind::Experiment, &key.namespace, &key.name) else {
            return Vec::new();
        };
        let refs = experiment_refs(&experiment);
        let mut events = vec![Event::Applied(experiment)];
        events.extend(self.experiment_objects(&key, &refs).into_iter().map(Event::Applied));
        self.experiments.insert(key.clone(), refs);
        vec![Routed::Start(key, events)]
    }

    /// The cached Services and templates `refs` names.
    fn referenced(&self, namespace: &str, refs: &References) -> Vec<Event> {
        let mut out = Vec::new();
        for name in &refs.services {
            out.extend(self.get(ObjectKind::Service, namespace, name).map(Event::Applied));
        }
        for name in &refs.templates {
            out.extend(self.get(ObjectKind::AnalysisTemplate, namespace, name).map(Event::Applied));
        }
        for name in &refs.cluster_templates {
            out.extend(self.get(ObjectKind::ClusterAnalysisTemplate, "", name).map(Event::Applied));
        }
        for name in &refs.ingresses {
            out.extend(self.get(ObjectKind::Ingress, namespace, name).map(Event::Applied));
        }
        if let Some((kind, name)) = &refs.workload {
            if let Some(kind) = workload_kind(kind) {
                out.extend(self.get(kind, namespace, name).map(Event::Applied));
            }
        }
        for r in &refs.routes {
            let ns = r.namespace.as_deref().unwrap_or(namespace);
            if r.name.is_empty() {
                // Every object of the kind there (App Mesh's VirtualRouters).
                out.extend(self.in_namespace(r.kind.into(), ns).filter_map(|(_, o)| o.object(r.kind.into())).map(Event::Applied));
            } else {
                out.extend(self.get(r.kind.into(), ns, &r.name).map(Event::Applied));
            }
        }
        out
    }
}

/// The names an Experiment's decisions read besides the objects it controls: the
/// ReplicaSets and Services it would create (`<experiment>-<template>`, or the template's
/// Service name), its AnalysisRuns (`<experiment>-<analysis>`, and the `.N` a collision
/// adds), the templates its analyses name. Read from the raw object, so an Experiment with a
/// field from a newer Argo still gets its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ExperimentRefs {
    replica_sets: BTreeSet<String>,
    services: BTreeSet<String>,
    runs: BTreeSet<String>,
    templates: BTreeSet<String>,
    cluster_templates: BTreeSet<String>,
}

impl ExperimentRefs {
    /// Whether an object of `kind` (in the Experiment's namespace, or cluster-scoped) concerns
    /// the Experiment `experiment`.
    fn concerns(&self, experiment: &str, kind: ObjectKind, meta: &ObjectMeta) -> bool {
        let controlled = || {
            meta.owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.kind == "Experiment" && o.name == experiment)
        };
        self.concerns_named(kind, meta.name.as_deref().unwrap_or_default(), controlled)
    }

    /// [`ExperimentRefs::concerns`] by the object's name and whether the Experiment is its
    /// controller.
    fn concerns_named(&self, kind: ObjectKind, name: &str, controlled: impl Fn() -> bool) -> bool {
        match kind {
            ObjectKind::ReplicaSet => self.replica_sets.contains(name) || controlled(),
            ObjectKind::Service => self.services.contains(name) || controlled(),
            ObjectKind::AnalysisRun => {
                let base = name.rsplit_once('.').filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                self.runs.contains(name) || base.is_some_and(|(b, _)| self.runs.contains(b)) || controlled()
            }
            ObjectKind::AnalysisTemplate => self.templates.contains(name),
            ObjectKind::ClusterAnalysisTemplate => self.cluster_templates.contains(name),
            ObjectKind::Rollout
            | ObjectKind::Pod
            | ObjectKind::Experiment
            | ObjectKind::Job
            | ObjectKind::Ingress
            | ObjectKind::HttpRoute
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
            | ObjectKind::VirtualNode
            | ObjectKind::Deployment
            | ObjectKind::PodTemplate => false,
        }
    }
}

/// The names an Experiment uses (see [`ExperimentRefs`]).
fn experiment_refs(obj: &Object) -> ExperimentRefs {
    let Object::Experiment(v) = obj else { return ExperimentRefs::default() };
    let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let list = |field: &str| v.pointer(field).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut refs = ExperimentRefs::default();
    for t in list("/spec/templates") {
        let rs = format!("{name}-{}", text(t, "name"));
        if let Some(service) = t.get("service").filter(|s| !s.is_null()) {
            let service_name = text(service, "name");
            refs.services.insert(if service_name.is_empty() { rs.clone() } else { service_name });
        }
        refs.replica_sets.insert(rs);
    }
    for a in list("/spec/analyses") {
        refs.runs.insert(format!("{name}-{}", text(a, "name")));
        let template = text(a, "templateName");
        if a.get("clusterScope").and_then(Value::as_bool).unwrap_or(false) {
            refs.cluster_templates.insert(template);
        } else {
            refs.templates.insert(template);
        }
    }
    refs
}

/// Whether objects of `kind` reach a rollout because its spec names them (Services,
/// templates, router objects) rather than because it owns them.
fn by_reference(kind: ObjectKind) -> bool {
    match kind {
        ObjectKind::Service
        | ObjectKind::AnalysisTemplate
        | ObjectKind::ClusterAnalysisTemplate
        | ObjectKind::Ingress
        | ObjectKind::HttpRoute
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
        | ObjectKind::VirtualNode
        | ObjectKind::Deployment
        | ObjectKind::PodTemplate => true,
        ObjectKind::Rollout
        | ObjectKind::ReplicaSet
        | ObjectKind::Pod
        | ObjectKind::AnalysisRun
        | ObjectKind::Experiment
        | ObjectKind::Job => false,
    }
}

/// The kind of an object.
pub fn kind_of(obj: &Object) -> ObjectKind {
    match obj {
        Object::Rollout(_) => ObjectKind::Rollout,
        Object::ReplicaSet(_) => ObjectKind::ReplicaSet,
        Object::Service(_) => ObjectKind::Service,
        Object::Pod(_) => ObjectKind::Pod,
        Object::AnalysisRun(_) => ObjectKind::AnalysisRun,
        Object::Experiment(_) => ObjectKind::Experiment,
        Object::AnalysisTemplate(_) => ObjectKind::AnalysisTemplate,
        Object::ClusterAnalysisTemplate(_) => ObjectKind::ClusterAnalysisTemplate,
        Object::Job(_) => ObjectKind::Job,
        Object::Ingress(_) => ObjectKind::Ingress,
        Object::Workload(v) => match v.get("kind").and_then(Value::as_str) {
            Some("PodTemplate") => ObjectKind::PodTemplate,
            Some("ReplicaSet") => ObjectKind::ReplicaSet,
            _ => ObjectKind::Deployment,
        },
        Object::Route(v) => rollouts_core::api::RouteKind::of_object(v).map_or(ObjectKind::HttpRoute, ObjectKind::from),
    }
}

/// The metadata of an object (decoded from raw JSON for Argo's kinds).
pub fn meta_of(obj: &Object) -> ObjectMeta {
    let raw = |v: &Value| v.get("metadata").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default();
    match obj {
        Object::Rollout(v) => raw(v),
        Object::AnalysisRun(v)
        | Object::Experiment(v)
        | Object::AnalysisTemplate(v)
        | Object::ClusterAnalysisTemplate(v)
        | Object::Route(v)
        | Object::Workload(v) => raw(v),
        Object::Ingress(o) => o.metadata.clone(),
        Object::ReplicaSet(o) => o.metadata.clone(),
        Object::Service(o) => o.metadata.clone(),
        Object::Pod(o) => o.metadata.clone(),
        Object::Job(o) => o.metadata.clone(),
    }
}

fn name_of(meta: &ObjectMeta) -> Name {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// The watched kind of a `workloadRef`'s referent (a ReplicaSet referent is not watched
/// by name: the rollout says it is not found).
fn workload_kind(kind: &str) -> Option<ObjectKind> {
    match kind {
        "Deployment" => Some(ObjectKind::Deployment),
        "PodTemplate" => Some(ObjectKind::PodTemplate),
        _ => None,
    }
}

/// The name of an object's owner of `kind`, read in place (no copy of the metadata: a
/// worker's start looks at every object of a kind in the namespace).
fn owner_of<'a>(obj: &'a Object, kind: &str) -> Option<&'a str> {
    let typed = |meta: &'a ObjectMeta| meta.owner_references.as_ref()?.iter().find(|o| o.kind == kind).map(|o| o.name.as_str());
    match obj {
        Object::Rollout(v) => raw_owner(v, kind),
        Object::AnalysisRun(v)
        | Object::Experiment(v)
        | Object::AnalysisTemplate(v)
        | Object::ClusterAnalysisTemplate(v)
        | Object::Route(v)
        | Object::Workload(v) => raw_owner(v, kind),
        Object::Ingress(o) => typed(&o.metadata),
        Object::ReplicaSet(o) => typed(&o.metadata),
        Object::Service(o) => typed(&o.metadata),
        Object::Pod(o) => typed(&o.metadata),
        Object::Job(o) => typed(&o.metadata),
    }
}

/// [`owner_of`] for an object held as JSON.
fn raw_owner<'a>(v: &'a Value, kind: &str) -> Option<&'a str> {
    v.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some(kind))?
        .get("name")?
        .as_str()
}

/// The name of the owner of `kind`, from the owner references.
fn owner_named(meta: &ObjectMeta, kind: &str) -> Option<String> {
    meta.owner_references.as_ref()?.iter().find(|o| o.kind == kind).map(|o| o.name.clone())
}

/// The Services and templates a rollout's spec names, as the core reads them (leniently,
/// so a rollout with a field from a newer Argo still gets its Services).
fn refs_of(obj: &Object) -> References {
    match obj {
        Object::Rollout(v) => references(&rollout_lenient(v).rollout),
        Object::ReplicaSet(_)
        | Object::Service(_)
        | Object::Pod(_)
        | Object::AnalysisRun(_)
        | Object::Experiment(_)
        | Object::AnalysisTemplate(_)
        | Object::ClusterAnalysisTemplate(_)
        | Object::Job(_)
        | Object::Ingress(_)
        | Object::Route(_)
        | Object::Workload(_) => References::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{Pod, Service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;

    const ALL: [ObjectKind; 8] = [
        ObjectKind::Rollout,
        ObjectKind::ReplicaSet,
        ObjectKind::Service,
        ObjectKind::Pod,
        ObjectKind::AnalysisRun,
        ObjectKind::AnalysisTemplate,
        ObjectKind::ClusterAnalysisTemplate,
        ObjectKind::Job,
    ];

    fn rollout(name: &str, canary_service: &str) -> Object {
        Object::Rollout(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"strategy": {"canary": {
                "canaryService": canary_service,
                "steps": [{"analysis": {"templates": [{"templateName": "rate"}, {"templateName": "global", "clusterScope": true}]}}]
            }}}
        }).into())
    }

    fn owned(kind: &str, owner: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("ns".into()),
            owner_references: Some(vec![OwnerReference {
                kind: kind.into(),
                name: owner.into(),
                api_version: "v1".into(),
                uid: "u".into(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    fn rs(name: &str, owner: &str) -> Object {
        let mut meta = owned("Rollout", owner);
        meta.name = Some(name.into());
        Object::ReplicaSet(Arc::new(ReplicaSet { metadata: meta, ..ReplicaSet::default() }))
    }

    fn pod(name: &str, rs: &str) -> Object {
        let mut meta = owned("ReplicaSet", rs);
        meta.name = Some(name.into());
        Object::Pod(Arc::new(Pod { metadata: meta, ..Pod::default() }))
    }

    fn service(name: &str) -> Object {
        Object::Service(Arc::new(Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..ObjectMeta::default() },
            ..Service::default()
        }))
    }

    fn template(kind: ObjectKind, name: &str) -> Object {
        let v = json!({"metadata": {"name": name, "namespace": if kind == ObjectKind::AnalysisTemplate { "ns" } else { "" }}});
        if kind == ObjectKind::AnalysisTemplate { Object::AnalysisTemplate(v) } else { Object::ClusterAnalysisTemplate(v) }
    }

    fn key(name: &str) -> RolloutKey {
        RolloutKey::rollout("ns", name)
    }

    fn synced(router: &mut Router) -> Vec<Routed> {
        ALL.iter().flat_map(|k| router.handle(Watched::InitDone(*k))).collect()
    }

    #[test]
    fn nothing_is_routed_before_every_kind_is_listed_then_each_rollout_starts_with_its_objects() {
        let mut r = Router::new(ALL);
        for o in [
            rollout("web", "web-canary"),
            pod("web-abc-1", "web-abc"), // before its ReplicaSet
            rs("web-abc", "web"),
            rs("other-xyz", "other"),
            service("web-canary"),
            service("unrelated"),
            template(ObjectKind::AnalysisTemplate, "rate"),
            template(ObjectKind::ClusterAnalysisTemplate, "global"),
        ] {
            assert!(r.handle(Watched::Apply(o)).is_empty());
        }
        let out = synced(&mut r);
        assert_eq!(out.len(), 1);
        let Routed::Start(k, events) = &out[0] else { panic!("{out:?}") };
        assert_eq!(k, &key("web"));
        let names: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Applied(o) => meta_of(o).name.unwrap_or_default(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["web", "web-abc", "web-abc-1", "web-canary", "rate", "global"]);
    }

    fn run(name: &str, owner: Option<&str>) -> Object {
        let owners = owner.map_or(json!([]), |o| json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": o, "uid": "u"}]));
        Object::AnalysisRun(json!({"metadata": {"name": name, "namespace": "ns", "ownerReferences": owners}}))
    }

    fn job(name: &str, run: &str) -> Object {
        let mut meta = owned("AnalysisRun", run);
        meta.name = Some(name.into());
        Object::Job(Box::new(k8s_openapi::api::batch::v1::Job { metadata: meta, ..Default::default() }))
    }

    /// An AnalysisRun no rollout owns (`rollouts create analysisrun`) gets a worker of its
    /// own, with its Jobs; a rollout's run goes to the rollout; deleting the run stops it.
    #[test]
    fn a_run_without_a_rollout_gets_a_worker_of_its_own() {
        let mut r = Router::new(ALL);
        r.handle(Watched::Apply(run("listed", None)));
        r.handle(Watched::Apply(job("listed.m.1", "listed")));
        let out = synced(&mut r);
        let Some(Routed::Start(k, events)) = out.first() else { panic!("{out:?}") };
        assert_eq!((k, events.len(), out.len()), (&RolloutKey::run("ns", "listed"), 2, 1), "{out:?}");
        assert_eq!(k.to_string(), "analysisrun ns/listed");

        let out = r.handle(Watched::Apply(run("later", None)));
        assert!(matches!(&out[..], [Routed::Start(k, e)] if k == &RolloutKey::run("ns", "later") && e.len() == 1), "{out:?}");
        let out = r.handle(Watched::Apply(run("later", None)));
        assert!(matches!(&out[..], [Routed::Deliver(k, _)] if k == &RolloutKey::run("ns", "later")), "{out:?}");
        let out = r.handle(Watched::Apply(job("later.m.1", "later")));
        assert!(matches!(&out[..], [Routed::Deliver(k, _)] if k == &RolloutKey::run("ns", "later")), "{out:?}");

        // A rollout's run is the rollout's (no worker of its own, nothing while it is not running).
        assert_eq!(r.handle(Watched::Apply(run("web-1", Some("web")))), vec![]);

        assert_eq!(r.handle(Watched::Delete(run("later", None))), vec![Routed::Stop(RolloutKey::run("ns", "later"))]);
        assert_eq!(r.handle(Watched::Delete(run("later", None))), vec![]);
    }

    fn experiment(name: &str, rollout: Option<&str>) -> Object {
        let owners = rollout.map_or(json!([]), |r| {
            json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": r, "uid": "ru", "controller": true}])
        });
        Object::Experiment(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": name, "namespace": "ns", "ownerReferences": owners},
            "spec": {
                "templates": [{"name": "base"}, {"name": "canary", "service": {"name": "canary-svc"}}, {"name": "other", "service": {}}],
                "analyses": [{"name": "a", "templateName": "rate"}, {"name": "g", "templateName": "global", "clusterScope": true}]
            }
        }))
    }

    fn controlled_by_experiment(meta: &mut ObjectMeta, experiment: &str) {
        meta.owner_references = Some(vec![OwnerReference {
            kind: "Experiment".into(),
            name: experiment.into(),
            api_version: "argoproj.io/v1alpha1".into(),
            uid: "eu".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
    }

    fn named_rs(name: &str, experiment: Option<&str>) -> Object {
        let mut meta = ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..ObjectMeta::default() };
        if let Some(e) = experiment {
            controlled_by_experiment(&mut meta, e);
        }
        Object::ReplicaSet(Arc::new(ReplicaSet { metadata: meta, ..ReplicaSet::default() }))
    }

    fn experiment_run(name: &str, experiment: Option<&str>) -> Object {
        let owners = experiment.map_or(json!([]), |e| {
            json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "name": e, "uid": "eu", "controller": true}])
        });
        Object::AnalysisRun(json!({"metadata": {"name": name, "namespace": "ns", "ownerReferences": owners}}))
    }

    fn with_experiments() -> Router {
        Router::new(ALL.iter().chain(&[ObjectKind::Experiment]).copied())
    }

    fn synced_with_experiments(router: &mut Router) -> Vec<Routed> {
        ALL.iter().chain(&[ObjectKind::Experiment]).flat_map(|k| router.handle(Watched::InitDone(*k))).collect()
    }

    fn started(out: &[Routed]) -> BTreeMap<String, Vec<String>> {
        out.iter()
            .map(|o| match o {
                Routed::Start(k, e) => (k.to_string(), applied_names(e)),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// An Experiment's worker gets the Experiment, the objects it controls, those bearing the
    /// names it would create (to report a clash), its runs (with a collision suffix) and the
    /// templates its analyses name; nothing else. Its runs are measured by workers of their
    /// own; a rollout gets the Experiments it owns.
    #[test]
    fn an_experiment_gets_a_worker_with_what_it_reads_and_its_rollout_gets_it() {
        let mut r = with_experiments();
        for o in [
            rollout("web", "web-canary"),
            experiment("web-exp", Some("web")),
            named_rs("web-exp-base", Some("web-exp")),
            named_rs("web-exp-canary", None), // a clash: not controlled, but its name
            named_rs("renamed-by-user", Some("web-exp")),
            named_rs("stranger", None),
            service("canary-svc"),
            service("web-exp-other"),
            service("web-exp-base"), // the template has no Service: not its name
            experiment_run("web-exp-a", Some("web-exp")),
            experiment_run("web-exp-a.1", None),
            experiment_run("web-exp-ab", None),
            template(ObjectKind::AnalysisTemplate, "rate"),
            template(ObjectKind::ClusterAnalysisTemplate, "global"),
            template(ObjectKind::AnalysisTemplate, "unrelated"),
        ] {
            r.handle(Watched::Apply(o));
        }
        let starts = started(&synced_with_experiments(&mut r));
        assert_eq!(
            starts["experiment ns/web-exp"],
            [
                "Experiment/web-exp",
                "ReplicaSet/renamed-by-user",
                "ReplicaSet/web-exp-base",
                "ReplicaSet/web-exp-canary",
                "Service/canary-svc",
                "Service/web-exp-other",
                "AnalysisRun/web-exp-a",
                "AnalysisRun/web-exp-a.1",
                "AnalysisTemplate/rate",
                "ClusterAnalysisTemplate/global",
            ]
        );
        assert!(starts["ns/web"].contains(&"Experiment/web-exp".to_string()), "{starts:?}");
        assert!(starts.contains_key("analysisrun ns/web-exp-a"), "the run is measured by a worker of its own: {starts:?}");
        assert_eq!(starts.len(), 5, "rollout, experiment, three standalone runs: {starts:?}");
        assert_eq!(RolloutKey::experiment("ns", "web-exp").object_kind(), ObjectKind::Experiment);
    }

    #[test]
    fn an_experiments_objects_reach_it_as_they_change_and_its_deletion_stops_it() {
        let mut r = with_experiments();
        r.handle(Watched::Apply(rollout("web", "web-canary")));
        synced_with_experiments(&mut r);
        let ex = RolloutKey::experiment("ns", "web-exp");

        // Created by the rollout's step: its worker starts, the rollout gets it.
        let out = r.handle(Watched::Apply(experiment("web-exp", Some("web"))));
        assert!(matches!(&out[..], [Routed::Deliver(k, e), Routed::Start(s, _)] if k == &key("web") && applied_names(e) == ["Experiment/web-exp"] && s == &ex), "{out:?}");

        let out = r.handle(Watched::Apply(named_rs("web-exp-base", Some("web-exp"))));
        assert_eq!(out, vec![Routed::Deliver(ex.clone(), vec![Event::Applied(named_rs("web-exp-base", Some("web-exp")))])]);
        assert_eq!(r.handle(Watched::Apply(named_rs("stranger", None))), vec![]);
        let out = r.handle(Watched::Apply(service("canary-svc")));
        assert!(matches!(&out[..], [Routed::Deliver(k, _)] if k == &ex), "{out:?}");

        // Its run: a worker of its own measures it, the Experiment follows it.
        let out = r.handle(Watched::Apply(experiment_run("web-exp-a", Some("web-exp"))));
        assert!(
            matches!(&out[..], [Routed::Start(run, _), Routed::Deliver(k, _)] if run == &RolloutKey::run("ns", "web-exp-a") && k == &ex),
            "{out:?}"
        );
        let out = r.handle(Watched::Delete(service("canary-svc")));
        assert_eq!(out, vec![Routed::Deliver(ex.clone(), vec![Event::Deleted { kind: ObjectKind::Service, name: "canary-svc".into() }])]);

        // A spec naming another template gets it at once.
        r.handle(Watched::Apply(template(ObjectKind::AnalysisTemplate, "later")));
        let Object::Experiment(mut v) = experiment("web-exp", Some("web")) else { unreachable!() };
        v["spec"]["analyses"][0]["templateName"] = "later".into();
        let out = r.handle(Watched::Apply(Object::Experiment(v)));
        let [Routed::Deliver(_, to_rollout), Routed::Deliver(k, events)] = &out[..] else { panic!("{out:?}") };
        assert_eq!(applied_names(to_rollout), ["Experiment/web-exp"]);
        assert_eq!(k, &ex);
        assert!(applied_names(events).contains(&"AnalysisTemplate/later".to_string()), "{events:?}");

        let out = r.handle(Watched::Delete(experiment("web-exp", Some("web"))));
        assert_eq!(
            out,
            vec![
                Routed::Deliver(key("web"), vec![Event::Deleted { kind: ObjectKind::Experiment, name: "web-exp".into() }]),
                Routed::Stop(ex.clone()),
            ]
        );
        assert_eq!(r.handle(Watched::Apply(named_rs("web-exp-base", Some("web-exp")))), vec![]);
    }

    #[test]
    fn children_reach_their_rollout_and_strangers_do_not() {
        let mut r = Router::new(ALL);
        r.handle(Watched::Apply(rollout("web", "web-canary")));
        synced(&mut r);
        assert_eq!(r.handle(Watched::Apply(rs("other-1", "other"))), vec![]);
        let out = r.handle(Watched::Apply(rs("web-1", "web")));
        assert!(matches!(&out[..], [Routed::Deliver(k, e)] if k == &key("web") && e.len() == 1));
        let out = r.handle(Watched::Apply(pod("web-1-a", "web-1")));
        assert!(matches!(&out[..], [Routed::Deliver(k, _)] if k == &key("web")));
        assert_eq!(r.handle(Watched::Apply(service("unrelated"))), vec![]);
        let out = r.handle(Watched::Apply(service("web-canary")));
        assert!(matches!(&out[..], [Routed::Deliver(k, _)] if k == &key("web")));
        let out = r.handle(Watched::Delete(pod("web-1-a", "web-1")));
        assert_eq!(
            out,
            vec![Routed::Deliver(key("web"), vec![Event::Deleted { kind: ObjectKind::Pod, name: "web-1-a".into() }])]
        );
    }

    /// A rollout whose worker was let go while idle starts again with what the cache holds
    /// now: its own children only (not those of a rollout of the same name elsewhere), and
    /// nothing once it is gone.
    #[test]
    fn a_restart_replays_the_cache_of_that_rollout_and_no_other() {
        let mut r = Router::new(ALL);
        r.handle(Watched::Apply(rollout("web", "web-canary")));
        synced(&mut r);
        for obj in [rs("web-1", "web"), pod("web-1-a", "web-1"), service("web-canary"), rs("other-1", "other")] {
            r.handle(Watched::Apply(obj));
        }
        let Object::ReplicaSet(elsewhere) = rs("web-2", "web") else { unreachable!() };
        let mut elsewhere = (*elsewhere).clone();
        elsewhere.metadata.namespace = Some("ns2".into());
        r.handle(Watched::Apply(Object::ReplicaSet(Arc::new(elsewhere))));
        let out = r.restart(key("web"));
        assert_eq!(
            started(&out),
            BTreeMap::from([("ns/web".to_string(), vec!["Rollout/web".into(), "ReplicaSet/web-1".into(), "Pod/web-1-a".into(), "Service/web-canary".into()])])
        );
        assert_eq!(r.restart(key("never")), vec![]);
        assert_eq!(r.handle(Watched::Delete(rollout("web", "web-canary"))), vec![Routed::Stop(key("web"))]);
        assert_eq!(r.restart(key("web")), vec![]);
    }

    #[test]
    fn objects_kept_as_text_come_back_as_they_went_in_and_route_by_their_owners() {
        fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
            serde_json::from_value(v).unwrap()
        }
        let rs_json = json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"app": "web", "rollouts-pod-template-hash": "1"},
                "annotations": {"rollout.argoproj.io/revision": "2"}, "resourceVersion": "7",
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "u", "controller": true}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "demo:blue",
                    "ports": [{"containerPort": 8080}], "resources": {"limits": {"cpu": "100m"}}}]}}},
            "status": {"replicas": 3, "availableReplicas": 2, "readyReplicas": 2, "observedGeneration": 1}
        });
        let objects = [
            (ObjectKind::ReplicaSet, Object::ReplicaSet(Arc::new(typed(rs_json)))),
            (ObjectKind::Pod, pod("web-1-a", "web-1")),
            (ObjectKind::Service, Object::Service(Arc::new(typed(json!({"metadata": {"name": "web", "namespace": "ns"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))))),
            (ObjectKind::Rollout, rollout("web", "web")),
            (ObjectKind::Deployment, Object::Workload(json!({"kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"}}))),
        ];
        for (kind, obj) in objects {
            let cached = Cached::new(&obj);
            assert!(matches!(cached, Cached::Text { .. }), "{kind:?} is kept as text");
            assert_eq!(cached.object(kind), Some(obj), "{kind:?}");
        }
        let cached = Cached::new(&rs("web-1", "web"));
        assert_eq!((cached.owner("Rollout"), cached.owner("Experiment")), (Some("web"), None));
        assert!(!cached.controlled_by("Rollout", "web"), "the owner reference does not say it is the controller");
        let Object::ReplicaSet(controlled) = rs("web-1", "web") else { unreachable!() };
        let mut controlled = (*controlled).clone();
        controlled.metadata.owner_references.as_mut().unwrap()[0].controller = Some(true);
        assert!(Cached::new(&Object::ReplicaSet(Arc::new(controlled))).controlled_by("Rollout", "web"));
        // Kinds read in place stay parsed.
        assert!(matches!(Cached::new(&run("r", Some("web"))), Cached::Object(_)));
    }

    #[test]
    fn a_rollout_that_references_a_new_service_gets_it() {
        let mut r = Router::new(ALL);
        r.handle(Watched::Apply(rollout("web", "a")));
        r.handle(Watched::Apply(service("b")));
        synced(&mut r);
        let out = r.handle(Watched::Apply(rollout("web", "b")));
        let Routed::Deliver(_, events) = &out[0] else { panic!("{out:?}") };
        assert_eq!(events.len(), 2, "the rollout and Service b: {events:?}");
    }

    fn traffic_rollout(name: &str, traffic: Value) -> Object {
        Object::Rollout(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"strategy": {"canary": {
                "canaryService": "canary", "stableService": "stable",
                "trafficRouting": traffic,
                "steps": [{"setWeight": 5}]
            }}}
        }).into())
    }

    fn ingress(namespace: &str, name: &str) -> Object {
        Object::Ingress(Box::new(k8s_openapi::api::networking::v1::Ingress {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(namespace.into()), ..ObjectMeta::default() },
            ..Default::default()
        }))
    }

    fn route(kind: &str, namespace: &str, name: &str) -> Object {
        Object::Route(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"rules": []}
        }))
    }

    const TRAFFIC: [ObjectKind; 4] = [ObjectKind::Ingress, ObjectKind::HttpRoute, ObjectKind::GrpcRoute, ObjectKind::TcpRoute];

    fn synced_all(router: &mut Router) -> Vec<Routed> {
        ALL.iter().chain(&TRAFFIC).flat_map(|k| router.handle(Watched::InitDone(*k))).collect()
    }

    fn applied_names(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Applied(o) => format!("{:?}/{}", kind_of(o), meta_of(o).name.unwrap_or_default()),
                Event::Deleted { kind, name } => format!("deleted {kind:?}/{name}"),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_nginx_rollout_gets_its_stable_and_canary_ingresses_and_no_other() {
        let mut r = Router::new(ALL.iter().chain(&TRAFFIC).copied());
        r.handle(Watched::Apply(traffic_rollout("web", json!({"nginx": {"stableIngress": "web-ing"}}))));
        r.handle(Watched::Apply(ingress("ns", "web-ing")));
        r.handle(Watched::Apply(ingress("ns", "web-web-ing-canary")));
        r.handle(Watched::Apply(ingress("ns", "other")));
        r.handle(Watched::Apply(ingress("elsewhere", "web-ing")));
        let out = synced_all(&mut r);
        let [Routed::Start(k, events)] = &out[..] else { panic!("{out:?}") };
        assert_eq!(k, &key("web"));
        assert_eq!(applied_names(events), ["Rollout/web", "Ingress/web-ing", "Ingress/web-web-ing-canary"]);

        // Changes and deletions of its Ingresses reach it; others do not.
        assert_eq!(r.handle(Watched::Apply(ingress("ns", "other"))), vec![]);
        assert_eq!(r.handle(Watched::Apply(ingress("elsewhere", "web-ing"))), vec![]);
        let out = r.handle(Watched::Apply(ingress("ns", "web-web-ing-canary")));
        assert!(matches!(&out[..], [Routed::Deliver(k, e)] if k == &key("web") && applied_names(e) == ["Ingress/web-web-ing-canary"]), "{out:?}");
        let out = r.handle(Watched::Delete(ingress("ns", "web-web-ing-canary")));
        assert_eq!(out, vec![Routed::Deliver(key("web"), vec![Event::Deleted { kind: ObjectKind::Ingress, name: "web-web-ing-canary".into() }])]);
    }

    #[test]
    fn gateway_routes_reach_the_rollout_by_kind_name_and_the_configured_namespace() {
        let mut r = Router::new(ALL.iter().chain(&TRAFFIC).copied());
        // The plugin configuration Argo users write, routes in namespace `gw`.
        let plugin = json!({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web-route", "namespace": "gw"}}});
        r.handle(Watched::Apply(traffic_rollout("web", plugin)));
        // The native block, routes in the rollout's own namespace.
        let native = json!({"gatewayAPI": {"grpcRoutes": [{"name": "api"}], "tcpRoute": "db"}});
        r.handle(Watched::Apply(traffic_rollout("api", native)));
        for o in [
            route("HTTPRoute", "gw", "web-route"),
            route("HTTPRoute", "ns", "web-route"), // same name, not the configured namespace
            route("GRPCRoute", "ns", "api"),
            route("HTTPRoute", "ns", "api"), // same name, other kind
        ] {
            r.handle(Watched::Apply(o));
        }
        let mut out = synced_all(&mut r);
        out.sort_by_key(|o| format!("{o:?}"));
        let starts: Vec<(String, Vec<String>)> = out
            .iter()
            .map(|o| match o {
                Routed::Start(k, e) => (k.name.clone(), applied_names(e)),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            starts,
            [
                ("api".to_string(), vec!["Rollout/api".to_string(), "GrpcRoute/api".to_string()]),
                ("web".to_string(), vec!["Rollout/web".to_string(), "HttpRoute/web-route".to_string()]),
            ]
        );
        let out = r.handle(Watched::Apply(route("HTTPRoute", "gw", "web-route")));
        assert!(matches!(&out[..], [Routed::Deliver(k, _)] if k == &key("web")), "{out:?}");
        assert_eq!(r.handle(Watched::Apply(route("HTTPRoute", "ns", "web-route"))), vec![]);
        assert_eq!(r.handle(Watched::Apply(route("HTTPRoute", "ns", "api"))), vec![]);
        let out = r.handle(Watched::Apply(route("TCPRoute", "ns", "db")));
        assert!(matches!(&out[..], [Routed::Deliver(k, _)] if k == &key("api")), "{out:?}");
        let out = r.handle(Watched::Delete(route("HTTPRoute", "gw", "web-route")));
        assert_eq!(out, vec![Routed::Deliver(key("web"), vec![Event::Deleted { kind: ObjectKind::HttpRoute, name: "web-route".into() }])]);
    }

    #[test]
    fn a_rollout_that_starts_referencing_a_route_gets_the_cached_route() {
        let mut r = Router::new(ALL.iter().chain(&TRAFFIC).copied());
        r.handle(Watched::Apply(traffic_rollout("web", json!({"nginx": {"stableIngress": "web-ing"}}))));
        r.handle(Watched::Apply(route("HTTPRoute", "ns", "web-route")));
        synced_all(&mut r);
        let out = r.handle(Watched::Apply(traffic_rollout("web", json!({"gatewayAPI": {"httpRoute": "web-route"}}))));
        let [Routed::Deliver(_, events)] = &out[..] else { panic!("{out:?}") };
        assert_eq!(applied_names(events), ["Rollout/web", "HttpRoute/web-route"]);
    }

    #[test]
    fn a_kind_the_cluster_did_not_serve_at_startup_does_not_hold_the_workers_and_is_routed_once_listed() {
        // The Gateway API CRDs were missing: the controller starts without the route kinds.
        let mut r = Router::new(ALL.iter().chain(&[ObjectKind::Ingress]).copied());
        r.handle(Watched::Apply(traffic_rollout("web", json!({"gatewayAPI": {"httpRoute": "web-route"}}))));
        let out: Vec<Routed> = ALL.iter().chain(&[ObjectKind::Ingress]).flat_map(|k| r.handle(Watched::InitDone(*k))).collect();
        assert!(matches!(&out[..], [Routed::Start(k, _)] if k == &key("web")), "{out:?}");
        // Installed later: the first list delivers the route.
        r.handle(Watched::Init(ObjectKind::HttpRoute));
        let out = r.handle(Watched::Apply(route("HTTPRoute", "ns", "web-route")));
        assert!(matches!(&out[..], [Routed::Deliver(k, e)] if k == &key("web") && applied_names(e) == ["HttpRoute/web-route"]), "{out:?}");
        assert_eq!(r.handle(Watched::InitDone(ObjectKind::HttpRoute)), vec![]);
    }

    #[test]
    fn a_route_in_a_namespace_of_its_own_listing_is_routed_and_relists_do_not_mix() {
        // A controller confined to `ns`; the rollout names its HTTPRoute in `gw`.
        let mut r = Router::new(ALL.iter().chain(&TRAFFIC).copied());
        let plugin = json!({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web-route", "namespace": "gw"}}});
        r.handle(Watched::Apply(traffic_rollout("web", plugin)));
        r.handle(Watched::Apply(route("HTTPRoute", "ns", "local")));
        synced_all(&mut r);
        assert!(r.take_references_changed() && !r.take_references_changed());
        assert_eq!(
            r.route_namespaces(),
            BTreeSet::from([(ObjectKind::HttpRoute, "gw".to_string())]),
            "the controller is asked to watch HTTPRoutes in gw"
        );
        // The extra watch lists gw.
        r.handle(Watched::InitIn(ObjectKind::HttpRoute, "gw".into()));
        let out = r.handle(Watched::Apply(route("HTTPRoute", "gw", "web-route")));
        assert!(matches!(&out[..], [Routed::Deliver(k, e)] if k == &key("web") && applied_names(e) == ["HttpRoute/web-route"]), "{out:?}");
        assert_eq!(r.handle(Watched::InitDoneIn(ObjectKind::HttpRoute, "gw".into())), vec![]);
        // A relist of the controller's own HTTPRoute watch (ns) does not take gw's route for deleted...
        r.handle(Watched::Init(ObjectKind::HttpRoute));
        r.handle(Watched::Apply(route("HTTPRoute", "ns", "local")));
        assert_eq!(r.handle(Watched::InitDone(ObjectKind::HttpRoute)), vec![]);
        // ...and a relist of gw without the route reports its deletion.
        r.handle(Watched::InitIn(ObjectKind::HttpRoute, "gw".into()));
        let out = r.handle(Watched::InitDoneIn(ObjectKind::HttpRoute, "gw".into()));
        assert_eq!(out, vec![Routed::Deliver(key("web"), vec![Event::Deleted { kind: ObjectKind::HttpRoute, name: "web-route".into() }])]);
    }

    #[test]
    fn a_relist_reports_what_disappeared_meanwhile_and_deleting_the_rollout_stops_it() {
        let mut r = Router::new(ALL);
        r.handle(Watched::Apply(rollout("web", "a")));
        r.handle(Watched::Apply(rs("web-1", "web")));
        synced(&mut r);
        r.handle(Watched::Init(ObjectKind::ReplicaSet));
        let out = r.handle(Watched::InitDone(ObjectKind::ReplicaSet));
        assert_eq!(
            out,
            vec![Routed::Deliver(key("web"), vec![Event::Deleted { kind: ObjectKind::ReplicaSet, name: "web-1".into() }])]
        );
        assert_eq!(r.handle(Watched::Delete(rollout("web", "a"))), vec![Routed::Stop(key("web"))]);
        assert_eq!(r.handle(Watched::Apply(rs("web-2", "web"))), vec![]);
    }
}
