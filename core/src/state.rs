//! The data `step` works on: [`State`] in, [`Event`] in, [`Action`]s out.
//!
//! Everything here is plain serde data, so a controller can record the `(now, event)`
//! stream and the actions it got back, and a replay can check them byte for byte.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Affinity, Pod, PodTemplateSpec, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde::{Deserialize, Serialize};

use crate::analysis::run::{MeasureContext, MeasurementAnswer};
use crate::api::{
    AnalysisRun, AnalysisTemplate, Experiment, MetricProvider, Rollout, RolloutSpec, RouteKind, SecretKeyRef, SpecError,
};
use crate::time::Timestamp;

/// Everything one rollout's decisions depend on.
///
/// The state holds what was observed in the cluster, plus the controller's own writes
/// applied optimistically (a status patch, a scaled ReplicaSet), so that a timer firing
/// before the watch delivers the write does not make the controller repeat itself. The
/// next observation of an object replaces the optimistic copy, except that a ReplicaSet
/// observed with a lower `metadata.generation` than the copy (a watch event older than
/// our own spec change) only updates its status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The Rollout, if it has been observed and not deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Why the observed Rollout manifest does not decode strictly (an unknown field, a
    /// wrong type). The rollout then carries only its metadata and status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_error: Option<SpecError>,
    /// ReplicaSets owned by (or matching) the rollout, by name. Behind an `Arc`, as are the
    /// Pods and Services: the controller's cache and its worker share one copy of each
    /// object (a change makes the worker's own, [`Arc::make_mut`]), and a map's node holds
    /// eleven values inline, so a rollout with one ReplicaSet inline would carry room for
    /// ten more (about 25 KB, the pod template inline).
    #[serde(default)]
    pub replica_sets: BTreeMap<String, Arc<ReplicaSet>>,
    /// Services in the rollout's namespace that it may reference, by name.
    #[serde(default)]
    pub services: BTreeMap<String, Arc<Service>>,
    /// Pods of the rollout's ReplicaSets, by name (needed for `restartAt` and ephemeral
    /// metadata).
    #[serde(default)]
    pub pods: BTreeMap<String, Arc<Pod>>,
    /// AnalysisRuns owned by the rollout, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub analysis_runs: BTreeMap<String, AnalysisRun>,
    /// Experiments owned by the rollout (its `experiment` steps'), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub experiments: BTreeMap<String, Experiment>,
    /// AnalysisTemplates in the rollout's namespace, by name, as decoded (a template with
    /// an unknown field is kept as its error, reported when a rollout uses it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub analysis_templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
    /// ClusterAnalysisTemplates, by name, as decoded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_analysis_templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
    /// Jobs created for the rollout's job metrics, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jobs: BTreeMap<String, Job>,
    /// Ingresses the rollout's NGINX router references (its stable Ingresses) or writes (its
    /// canary Ingresses), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ingresses: BTreeMap<String, Ingress>,
    /// Router objects the rollout references or writes (Gateway API routes, Istio
    /// VirtualServices and DestinationRules, SMI TrafficSplits), as raw JSON, by
    /// [`route_key`] (`HTTPRoute/<name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, serde_json::Value>,
    /// The objects a `workloadRef` names (a Deployment, ReplicaSet or PodTemplate), as raw
    /// JSON, by `<Kind>/<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workloads: BTreeMap<String, serde_json::Value>,
    /// Hashes derived from the Rollout's spec, kept between steps (see [`SpecDigests`]).
    #[serde(skip)]
    pub digests: SpecDigests,
}

/// What the core derives from the Rollout's spec alone, remembered with the generation
/// (or, without one, the spec) it was computed from.
///
/// The hashes run over the JSON of the pod template and of the steps, and validation
/// parses every step; together they cost more than the rest of a reconcile at rest, while
/// the spec changes only when someone edits the Rollout. The entry is recomputed whenever
/// the generation (or the spec, or the collision count the template hash includes)
/// differs, so this is derived data only: it is never serialized, equality of
/// states ignores it, and a state read back from JSON (an empty cache) gives the same
/// outputs.
#[derive(Clone, Debug, Default)]
pub struct SpecDigests {
    entry: Option<Box<SpecDigest>>,
    /// The `metadata.generation` of the last Rollout manifest decoded whole: while the
    /// cluster reports that generation, its spec is the one decoded (the API server bumps
    /// the generation with every spec change). `None` after a failed action, whose re-read
    /// must be decoded whole, and in a state read back from JSON.
    pub(crate) decoded_generation: Option<i64>,
}

/// One [`SpecDigests`] entry.
#[derive(Clone, Debug)]
pub(crate) struct SpecDigest {
    /// The spec digested, kept only when it has no generation to recognise it by (boxed:
    /// inline, even `None` would take a spec's room, a few KB).
    spec: Option<Box<RolloutSpec>>,
    /// The Rollout's `metadata.generation` when the digest was made.
    generation: Option<i64>,
    collision_count: Option<i32>,
    /// The strings a reconcile copies from the digest.
    pub hashes: SpecHashes,
    /// [`crate::rollout::validation::validate_spec`] of the spec.
    pub validation: Result<(), crate::rollout::validation::ValidationError>,
}

/// The strings of a [`SpecDigest`].
#[derive(Clone, Debug)]
pub(crate) struct SpecHashes {
    /// [`crate::hash::pod_template_hash`] of the template (the default one when unset).
    pub template_hash: String,
    /// [`crate::hash::steps_hash`] of the canary steps.
    pub steps_hash: String,
    /// `spec.selector` rendered for `status.selector`.
    pub selector: String,
}

impl PartialEq for SpecDigests {
    fn eq(&self, _: &Self) -> bool {
        // Derived from the rest of the state, so never a difference of its own.
        true
    }
}

impl SpecDigests {
    /// The digest of `spec`, computed once per spec. While the Rollout's `generation` is
    /// the one of the digest, the spec is the same (the API server bumps the generation
    /// with every spec change), so a long spec is not compared step by step on every
    /// reconcile; without a generation the specs are compared.
    pub(crate) fn of(&mut self, spec: &RolloutSpec, generation: Option<i64>, collision_count: Option<i32>) -> &SpecDigest {
        let reusable = self.entry.as_ref().is_some_and(|d| {
            d.collision_count == collision_count
                && if generation.is_some() {
                    d.generation == generation
                } else {
                    d.spec.as_deref() == Some(spec)
                }
        });
        if !reusable {
            self.entry = None;
        }
        self.entry.get_or_insert_with(|| {
            let template_hash = match &spec.template {
                Some(t) => crate::hash::pod_template_hash(t, collision_count),
                None => {
                    crate::hash::pod_template_hash(&PodTemplateSpec::default(), collision_count)
                }
            };
            Box::new(SpecDigest {
                spec: generation.is_none().then(|| Box::new(spec.clone())),
                generation,
                collision_count,
                hashes: SpecHashes {
                    template_hash,
                    steps_hash: crate::hash::steps_hash(spec.steps()),
                    selector: spec
                        .selector
                        .as_ref()
                        .map(crate::objects::format_label_selector)
                        .unwrap_or_default(),
                },
                validation: crate::rollout::validation::validate_spec(spec),
            })
        })
    }
}

/// The key of a route in [`State::routes`]: `<Kind>/<name>` (App Mesh's VirtualService:
/// `AppMeshVirtualService/<name>`, see [`RouteKind::key_name`]).
pub fn route_key(kind: RouteKind, name: &str) -> String {
    format!("{}/{name}", kind.key_name())
}

/// A Kubernetes object the core is told about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "object")]
pub enum Object {
    /// A Rollout, as raw JSON: the core decodes it strictly so that a malformed manifest
    /// becomes an `InvalidSpec` condition rather than an event the shell cannot deliver.
    /// Shared, so that a cache holding the manifest (the simulator's API server) hands it
    /// over without copying it; it serializes as the JSON it holds.
    Rollout(std::sync::Arc<serde_json::Value>),
    /// A ReplicaSet.
    ReplicaSet(Arc<ReplicaSet>),
    /// A Service.
    Service(Arc<Service>),
    /// A Pod.
    Pod(Arc<Pod>),
    /// An AnalysisRun, as raw JSON.
    AnalysisRun(serde_json::Value),
    /// An AnalysisTemplate, as raw JSON (decoded strictly by the core).
    AnalysisTemplate(serde_json::Value),
    /// An Experiment, as raw JSON (one that does not decode is left out).
    Experiment(serde_json::Value),
    /// A ClusterAnalysisTemplate, as raw JSON (decoded strictly by the core).
    ClusterAnalysisTemplate(serde_json::Value),
    /// A Job (job metrics).
    Job(Box<Job>),
    /// A `networking.k8s.io/v1` Ingress (NGINX traffic routing).
    Ingress(Box<Ingress>),
    /// A traffic-router object held as raw JSON (a Gateway API route, an Istio
    /// VirtualService or DestinationRule, an SMI TrafficSplit; see [`RouteKind`]): its
    /// `kind` says which.
    Route(serde_json::Value),
    /// The object a `workloadRef` names (`apps/v1` Deployment or ReplicaSet, `v1`
    /// PodTemplate), as raw JSON: its `kind` says which.
    Workload(serde_json::Value),
}

/// The kind of an object, for deletions and failed actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    /// `argoproj.io/v1alpha1` Rollout.
    Rollout,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `v1` Service.
    Service,
    /// `v1` Pod.
    Pod,
    /// `argoproj.io/v1alpha1` AnalysisRun.
    AnalysisRun,
    /// `argoproj.io/v1alpha1` AnalysisTemplate.
    AnalysisTemplate,
    /// `argoproj.io/v1alpha1` Experiment.
    Experiment,
    /// `argoproj.io/v1alpha1` ClusterAnalysisTemplate.
    ClusterAnalysisTemplate,
    /// `batch/v1` Job.
    Job,
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `gateway.networking.k8s.io/v1` HTTPRoute.
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    /// `gateway.networking.k8s.io/v1` GRPCRoute.
    #[serde(rename = "GRPCRoute")]
    GrpcRoute,
    /// `gateway.networking.k8s.io/v1alpha2` TCPRoute.
    #[serde(rename = "TCPRoute")]
    TcpRoute,
    /// `networking.istio.io` VirtualService.
    VirtualService,
    /// `networking.istio.io` DestinationRule.
    DestinationRule,
    /// `split.smi-spec.io` TrafficSplit.
    TrafficSplit,
    /// `traefik.io` TraefikService.
    TraefikService,
    /// `getambassador.io` Mapping.
    Mapping,
    /// `apisix.apache.org` ApisixRoute.
    ApisixRoute,
    /// `appmesh.k8s.aws` VirtualService.
    AppMeshVirtualService,
    /// `appmesh.k8s.aws` VirtualRouter.
    VirtualRouter,
    /// `appmesh.k8s.aws` VirtualNode.
    VirtualNode,
    /// `apps/v1` Deployment (a `workloadRef`).
    Deployment,
    /// `v1` PodTemplate (a `workloadRef`).
    PodTemplate,
}

impl ObjectKind {
    /// The route kind, for the router kinds held as raw JSON ([`RouteKind`]).
    pub fn route_kind(self) -> Option<RouteKind> {
        match self {
            ObjectKind::HttpRoute => Some(RouteKind::Http),
            ObjectKind::GrpcRoute => Some(RouteKind::Grpc),
            ObjectKind::TcpRoute => Some(RouteKind::Tcp),
            ObjectKind::VirtualService => Some(RouteKind::VirtualService),
            ObjectKind::DestinationRule => Some(RouteKind::DestinationRule),
            ObjectKind::TrafficSplit => Some(RouteKind::TrafficSplit),
            ObjectKind::TraefikService => Some(RouteKind::TraefikService),
            ObjectKind::Mapping => Some(RouteKind::Mapping),
            ObjectKind::ApisixRoute => Some(RouteKind::ApisixRoute),
            ObjectKind::AppMeshVirtualService => Some(RouteKind::AppMeshVirtualService),
            ObjectKind::VirtualRouter => Some(RouteKind::VirtualRouter),
            ObjectKind::VirtualNode => Some(RouteKind::VirtualNode),
            ObjectKind::Rollout
            | ObjectKind::ReplicaSet
            | ObjectKind::Service
            | ObjectKind::Pod
            | ObjectKind::AnalysisRun
            | ObjectKind::AnalysisTemplate
            | ObjectKind::Experiment
            | ObjectKind::ClusterAnalysisTemplate
            | ObjectKind::Job
            | ObjectKind::Ingress
            | ObjectKind::Deployment
            | ObjectKind::PodTemplate => None,
        }
    }
}

impl From<RouteKind> for ObjectKind {
    fn from(kind: RouteKind) -> Self {
        match kind {
            RouteKind::Http => ObjectKind::HttpRoute,
            RouteKind::Grpc => ObjectKind::GrpcRoute,
            RouteKind::Tcp => ObjectKind::TcpRoute,
            RouteKind::VirtualService => ObjectKind::VirtualService,
            RouteKind::DestinationRule => ObjectKind::DestinationRule,
            RouteKind::TrafficSplit => ObjectKind::TrafficSplit,
            RouteKind::TraefikService => ObjectKind::TraefikService,
            RouteKind::Mapping => ObjectKind::Mapping,
            RouteKind::ApisixRoute => ObjectKind::ApisixRoute,
            RouteKind::AppMeshVirtualService => ObjectKind::AppMeshVirtualService,
            RouteKind::VirtualRouter => ObjectKind::VirtualRouter,
            RouteKind::VirtualNode => ObjectKind::VirtualNode,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Event {
    /// An object was created or changed (a watch event, or an item of a re-list).
    /// User commands arrive this way too: `promote`, `abort`, `retry` are patches of the
    /// Rollout, exactly as Argo's kubectl plugin makes them.
    Applied(Object),
    /// An object was deleted.
    Deleted {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
    /// A wake-up the core asked for ([`Action::WakeAt`]), or a periodic resync.
    Tick,
    /// The shell has just started driving this rollout (a new or restarted controller,
    /// a new leader), after the objects it listed: what was in flight in the previous
    /// process is taken up again (measurements are asked for anew). Recorded in traces, so
    /// a replay resumes the same way.
    Resync,
    /// The answer to an [`Action::Measure`].
    Measured {
        /// AnalysisRun name.
        run: String,
        /// Metric name.
        metric: String,
        /// The measurement number the action carried.
        index: i32,
        /// What the provider returned. Secret values must already be redacted (`*****`).
        answer: MeasurementAnswer,
    },
    /// The shell could not carry out an action. The shell also re-lists the object the
    /// action was about, so the core sees its real state again.
    ActionFailed {
        /// The action that failed.
        action: Box<Action>,
        /// The API server's message.
        error: String,
    },
}

/// An intention for the shell, idempotent and addressed by deterministic names.
/// Actions are returned in the order the shell must execute them.
#[must_use = "an action does nothing until the shell executes it"]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Create this ReplicaSet (owned by the rollout). If it already exists with the same
    /// owner, the shell treats the create as done.
    CreateReplicaSet {
        /// The full object to create.
        replica_set: Box<ReplicaSet>,
    },
    /// Merge-patch a ReplicaSet.
    PatchReplicaSet {
        /// ReplicaSet name.
        name: String,
        /// What to change.
        patch: ReplicaSetPatch,
    },
    /// Delete a ReplicaSet (revision history cleanup).
    DeleteReplicaSet {
        /// ReplicaSet name.
        name: String,
    },
    /// Set `spec.selector.rollouts-pod-template-hash` of a Service (strategic merge patch),
    /// and the `managed-by-rollouts` annotation when `managed_by` is set.
    SetServiceSelector {
        /// Service name.
        service: String,
        /// The pod-template hash to select.
        hash: String,
        /// Rollout name to record in the managed-by annotation, when missing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        managed_by: Option<String>,
    },
    /// Create this Service (an Experiment template's, owned by the Experiment). If it
    /// already exists, the create is done when the Experiment owns it; otherwise it fails.
    CreateService {
        /// The full object to create.
        service: Box<Service>,
    },
    /// Delete a Service (an Experiment template's). One already gone is done.
    DeleteService {
        /// Service name.
        name: String,
    },
    /// JSON-merge-patch the Rollout's `status` subresource. The patch sets removed fields
    /// to `null`, as Argo's two-way merge patch does.
    PatchRolloutStatus {
        /// RFC 7386 merge patch of the form `{"status": {...}}`.
        patch: serde_json::Value,
    },
    /// JSON-merge-patch the Rollout object itself (the revision annotation, defaulting
    /// `spec.replicas`).
    PatchRollout {
        /// RFC 7386 merge patch.
        patch: serde_json::Value,
    },
    /// Evict a pod through the Eviction API (restarts). A 429 is not an error: the pod is
    /// left and the core asks again later.
    EvictPod {
        /// Pod name.
        name: String,
    },
    /// Merge-patch a pod's labels and annotations in place (ephemeral metadata): the pod
    /// keeps running. A pod that no longer exists is done.
    PatchPodMetadata {
        /// Pod name.
        name: String,
        /// What to change.
        patch: MetadataPatch,
    },
    /// Create this AnalysisRun (owned by the rollout).
    CreateAnalysisRun {
        /// The full object.
        run: Box<AnalysisRun>,
    },
    /// JSON-merge-patch an AnalysisRun (its `status`, or `spec.terminate`).
    PatchAnalysisRun {
        /// AnalysisRun name.
        name: String,
        /// RFC 7386 merge patch.
        patch: serde_json::Value,
    },
    /// Delete an AnalysisRun (history limits, or with its ReplicaSet).
    DeleteAnalysisRun {
        /// AnalysisRun name.
        name: String,
    },
    /// Take a measurement and report it with [`Event::Measured`] (same run, metric and
    /// index). Retried actions are harmless: an answer for a measurement no longer in
    /// flight is ignored.
    Measure {
        /// AnalysisRun name.
        run: String,
        /// Metric name.
        metric: String,
        /// Measurement number.
        index: i32,
        /// The provider, every argument resolved except the secret ones.
        provider: Box<MetricProvider>,
        /// Arguments to read from Secrets in the run's namespace and substitute for their
        /// `{{args.<name>}}` placeholders in `provider` before measuring. Their values must
        /// never be logged, stored or reported (redact them as `*****`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        secrets: BTreeMap<String, SecretKeyRef>,
        /// What the provider may need besides its spec (the metric's interval, when the
        /// run started, and what an asynchronous provider left on the measurement).
        #[serde(default, skip_serializing_if = "MeasureContext::is_empty")]
        context: MeasureContext,
    },
    /// Create this Experiment (an `experiment` step's, owned by the rollout). If it
    /// already exists with the same owner, the create is done.
    CreateExperiment {
        /// The full object.
        experiment: Box<Experiment>,
    },
    /// JSON-merge-patch an Experiment (`spec.terminate`).
    PatchExperiment {
        /// Experiment name.
        name: String,
        /// RFC 7386 merge patch.
        patch: serde_json::Value,
    },
    /// Delete an Experiment (history limits, or with its ReplicaSet).
    DeleteExperiment {
        /// Experiment name.
        name: String,
    },
    /// Create a Job for a job metric (owned by the AnalysisRun).
    CreateJob {
        /// The full object.
        job: Box<Job>,
    },
    /// Delete a job metric's Job (foreground), when its run terminates.
    DeleteJob {
        /// Job name.
        name: String,
    },
    /// Create this Ingress (a canary Ingress, owned by the rollout). If it already exists,
    /// the shell re-reads it (the core then patches it, or reports who owns it).
    CreateIngress {
        /// The full object to create.
        ingress: Box<Ingress>,
    },
    /// JSON-merge-patch an Ingress (the rollout's canary Ingress).
    PatchIngress {
        /// Ingress name.
        name: String,
        /// RFC 7386 merge patch.
        patch: serde_json::Value,
    },
    /// Create this router object (an SMI TrafficSplit, owned by the rollout), as raw JSON.
    /// If it already exists, the shell re-reads it (the core then patches it, or reports
    /// who owns it). A TrafficSplit is written in the controller's TrafficSplit API version
    /// ([`crate::traffic::smi::in_version`]).
    CreateRoute {
        /// The object's kind.
        kind: RouteKind,
        /// The full object (its namespace, when unset, is the rollout's).
        object: serde_json::Value,
    },
    /// JSON-merge-patch a router object held as raw JSON (a Gateway API route's rules and
    /// in-progress label, a VirtualService's routes, a DestinationRule's subsets, a
    /// TrafficSplit's backends).
    PatchRoute {
        /// The route's kind.
        kind: RouteKind,
        /// Its namespace, when not the rollout's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// Its name.
        name: String,
        /// RFC 7386 merge patch.
        patch: serde_json::Value,
    },
    /// Delete a router object held as raw JSON that the rollout wrote (an Ambassador
    /// `<mapping>-canary` Mapping back at weight 0, an APISIX header route no longer in
    /// force). Already gone counts as done.
    DeleteRoute {
        /// The object's kind.
        kind: RouteKind,
        /// Its namespace, when not the rollout's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
    /// Record a Kubernetes Event on the Rollout.
    RecordEvent {
        /// `Normal` or `Warning`.
        #[serde(rename = "type")]
        kind: EventType,
        /// Machine-readable reason (`ScalingReplicaSet`, `RolloutStepCompleted`, ...).
        reason: String,
        /// Human-readable message.
        message: String,
    },
    /// Set the `spec.replicas` of the Deployment a `workloadRef` names (`scaleDown:
    /// onsuccess` or `progressively`, while the rollout takes over from it).
    ScaleDeployment {
        /// Deployment name.
        name: String,
        /// Its new `spec.replicas`.
        replicas: i32,
    },
    /// Call `step` with [`Event::Tick`] at `at` (or earlier, if something else happens).
    /// At most one per step: the earliest time the core needs.
    WakeAt {
        /// When.
        at: Timestamp,
        /// Why.
        reason: WakeReason,
    },
}

impl Action {
    /// Whether the action changes the cluster (everything but events and wake-ups).
    pub fn is_mutating(&self) -> bool {
        match self {
            Action::CreateReplicaSet { .. }
            | Action::PatchReplicaSet { .. }
            | Action::DeleteReplicaSet { .. }
            | Action::SetServiceSelector { .. }
            | Action::CreateService { .. }
            | Action::DeleteService { .. }
            | Action::PatchRolloutStatus { .. }
            | Action::PatchRollout { .. }
            | Action::EvictPod { .. }
            | Action::PatchPodMetadata { .. }
            | Action::CreateAnalysisRun { .. }
            | Action::PatchAnalysisRun { .. }
            | Action::DeleteAnalysisRun { .. }
            | Action::CreateExperiment { .. }
            | Action::PatchExperiment { .. }
            | Action::DeleteExperiment { .. }
            | Action::Measure { .. }
            | Action::CreateJob { .. }
            | Action::DeleteJob { .. }
            | Action::ScaleDeployment { .. }
            | Action::CreateIngress { .. }
            | Action::PatchIngress { .. }
            | Action::CreateRoute { .. }
            | Action::PatchRoute { .. }
            | Action::DeleteRoute { .. } => true,
            Action::RecordEvent { .. } | Action::WakeAt { .. } => false,
        }
    }
}

/// A merge patch of a ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetPatch {
    /// New `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Annotations to set (`Some`) or remove (`None`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Option<String>>,
    /// New `spec.minReadySeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// New `spec.template.spec.affinity` (`Some(None)` removes it: serialized as `null`,
    /// which must read back as `Some(None)`, not as an absent field).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present_or_null")]
    pub affinity: Option<Option<Box<Affinity>>>,
    /// Labels and annotations of `spec.template.metadata` to set or remove (ephemeral
    /// metadata).
    #[serde(default, skip_serializing_if = "MetadataPatch::is_empty")]
    pub template_metadata: MetadataPatch,
}

/// Labels and annotations to set (`Some`) or remove (`None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataPatch {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Option<String>>,
}

impl MetadataPatch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }

    /// The RFC 7386 merge patch of an object's `metadata` (`null` removes a key).
    pub fn to_merge_patch(&self) -> serde_json::Value {
        let map = |m: &BTreeMap<String, Option<String>>| -> serde_json::Map<String, serde_json::Value> {
            m.iter().map(|(k, v)| (k.clone(), v.clone().map_or(serde_json::Value::Null, serde_json::Value::String))).collect()
        };
        let mut root = serde_json::Map::new();
        if !self.labels.is_empty() {
            root.insert("labels".into(), serde_json::Value::Object(map(&self.labels)));
        }
        if !self.annotations.is_empty() {
            root.insert("annotations".into(), serde_json::Value::Object(map(&self.annotations)));
        }
        serde_json::Value::Object(root)
    }

    /// Applies the patch to an object's labels and annotations, as the API server does (a
    /// map left empty is dropped); whether anything changed.
    pub fn apply(
        &self,
        labels: &mut Option<BTreeMap<String, String>>,
        annotations: &mut Option<BTreeMap<String, String>>,
    ) -> bool {
        fn apply_one(patch: &BTreeMap<String, Option<String>>, map: &mut Option<BTreeMap<String, String>>) -> bool {
            let mut changed = false;
            for (k, v) in patch {
                let current = map.as_ref().and_then(|m| m.get(k));
                if current == v.as_ref() {
                    continue;
                }
                changed = true;
                match v {
                    Some(v) => {
                        map.get_or_insert_with(BTreeMap::new).insert(k.clone(), v.clone());
                    }
                    None => {
                        if let Some(m) = map.as_mut() {
                            m.remove(k);
                        }
                    }
                }
            }
            if map.as_ref().is_some_and(BTreeMap::is_empty) {
                *map = None;
            }
            changed
        }
        let l = apply_one(&self.labels, labels);
        let a = apply_one(&self.annotations, annotations);
        l || a
    }
}

/// A field that is present, `null` included, reads as `Some` (an absent one, through
/// `#[serde(default)]`, as `None`): keeps "remove" and "leave alone" apart.
fn present_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl ReplicaSetPatch {
    /// The RFC 7386 merge patch for this change.
    pub fn to_merge_patch(&self) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        if !self.annotations.is_empty() {
            let ann: serde_json::Map<String, serde_json::Value> = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(serde_json::Value::Null, serde_json::Value::String)))
                .collect();
            root.insert("metadata".into(), serde_json::json!({ "annotations": ann }));
        }
        let mut spec = serde_json::Map::new();
        if let Some(r) = self.replicas {
            spec.insert("replicas".into(), r.into());
        }
        if let Some(m) = self.min_ready_seconds {
            spec.insert("minReadySeconds".into(), m.into());
        }
        let mut template = serde_json::Map::new();
        if let Some(a) = &self.affinity {
            let v = serde_json::to_value(a).unwrap_or(serde_json::Value::Null);
            template.insert("spec".into(), serde_json::json!({ "affinity": v }));
        }
        if !self.template_metadata.is_empty() {
            template.insert("metadata".into(), self.template_metadata.to_merge_patch());
        }
        if !template.is_empty() {
            spec.insert("template".into(), serde_json::Value::Object(template));
        }
        if !spec.is_empty() {
            root.insert("spec".into(), serde_json::Value::Object(spec));
        }
        serde_json::Value::Object(root)
    }
}

/// Kubernetes Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    /// The type as Kubernetes writes it (`Normal`, `Warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Why the core wants to be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WakeReason {
    /// A timed `pause` step ends.
    PauseStepElapsed,
    /// Blue-green `autoPromotionSeconds` ends.
    AutoPromotion,
    /// An old ReplicaSet's `scale-down-deadline` passes.
    ScaleDownDeadline,
    /// The progress deadline may pass without progress.
    ProgressDeadline,
    /// `spec.restartAt` is reached, or pods still need restarting.
    Restart,
    /// An AnalysisRun's next measurement is due (interval, initial delay, retry).
    Analysis,
    /// A traffic router's weight is checked again (`verified` was false).
    TrafficVerify,
    /// The stable Service's new selector has had its time to reach the proxies: the canary's
    /// weight goes to 0 ([`crate::rollout::STABLE_SERVICE_SETTLE`]).
    StableServiceSettle,
    /// A router object is cleaned up after a delay (Ambassador deletes its canary Mapping
    /// 5 s after setting its weight to 0).
    RouterCleanup,
}

#[cfg(test)]
mod tests {
    use super::ReplicaSetPatch;

    #[test]
    fn removing_the_affinity_survives_json() {
        for affinity in [None, Some(None), Some(Some(Box::default()))] {
            let patch = ReplicaSetPatch { affinity, ..ReplicaSetPatch::default() };
            let text = serde_json::to_string(&patch).unwrap();
            assert_eq!(serde_json::from_str::<ReplicaSetPatch>(&text).unwrap(), patch, "{text}");
        }
    }
}
