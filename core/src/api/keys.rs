//! Labels and annotations Argo Rollouts reads and writes.

/// Pod-template hash label on ReplicaSets, their selectors and pods, and Service selectors.
pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";
/// Revision of a Rollout / ReplicaSet.
pub const REVISION: &str = "rollout.argoproj.io/revision";
/// Former revisions of a reused ReplicaSet.
pub const REVISION_HISTORY: &str = "rollout.argoproj.io/revision-history";
/// `spec.replicas` of the Rollout when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "rollout.argoproj.io/desired-replicas";
/// RFC 3339 time after which an old ReplicaSet may be scaled to zero.
pub const SCALE_DOWN_DEADLINE: &str = "scale-down-deadline";
/// Rollout that manages a Service.
pub const MANAGED_BY_ROLLOUTS: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
/// JSON of injected ephemeral metadata.
pub const EPHEMERAL_METADATA: &str = "rollout.argoproj.io/ephemeral-metadata";
/// Workload generation (workloadRef).
pub const WORKLOAD_GENERATION: &str = "rollout.argoproj.io/workload-generation";
/// Client-side apply bookkeeping, never copied to ReplicaSets.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The controller instance an object belongs to (`rollouts controller --instance-id`):
/// copied from a Rollout or Experiment onto the AnalysisRuns it creates, as Argo does, so
/// that a controller watching only its instance sees them.
pub const CONTROLLER_INSTANCE_ID: &str = "argo-rollouts.argoproj.io/controller-instance-id";
/// Notification dedupe, never copied to ReplicaSets.
pub const NOTIFIED: &str = "notified.notifications.argoproj.io";

/// Rollout annotations that are not copied onto its ReplicaSets.
pub const NOT_COPIED_TO_REPLICA_SETS: [&str; 5] =
    [LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, NOTIFIED];
