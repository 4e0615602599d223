//! What the controller changed in the simulated cluster, one line per action (the golden
//! files show these under the timeline table), and notes about the run itself.

use serde::{Deserialize, Serialize};

use crate::objects::ReplicaSetExt;
use crate::state::{Action, ReplicaSetPatch};
use crate::time::Seconds;

/// One change to the simulated cluster (or a note about the run), as a line of text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Seconds since the start.
    pub t: i64,
    /// The rollout whose controller made it (or the command was for).
    pub rollout: String,
    /// `CreateReplicaSet demo-6f7c9 replicas=1`, `PatchRolloutStatus {...}`, ...
    pub what: String,
}

/// One line for an action that changes the cluster; `None` for a timer.
pub fn describe(action: &Action) -> Option<String> {
    let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    Some(match action {
        Action::CreateReplicaSet { replica_set } => {
            format!("CreateReplicaSet {} replicas={}", replica_set.name(), replica_set.spec_replicas())
        }
        Action::PatchReplicaSet { name, patch } => {
            let rest = ReplicaSetPatch { replicas: None, ..patch.clone() };
            let mut line = format!("PatchReplicaSet {name}");
            if let Some(r) = patch.replicas {
                line.push_str(&format!(" replicas={r}"));
            }
            if rest != ReplicaSetPatch::default() {
                line.push(' ');
                line.push_str(&serde_json::to_string(&rest).unwrap_or_default());
            }
            line
        }
        Action::DeleteReplicaSet { name } => format!("DeleteReplicaSet {name}"),
        Action::SetServiceSelector { service, hash, managed_by } => match managed_by {
            Some(m) => format!("SetServiceSelector {service} hash={hash} managedBy={m}"),
            None => format!("SetServiceSelector {service} hash={hash}"),
        },
        Action::CreateService { service } => {
            format!("CreateService {}", service.metadata.name.as_deref().unwrap_or_default())
        }
        Action::DeleteService { name } => format!("DeleteService {name}"),
        Action::PatchRolloutStatus { patch } => format!("PatchRolloutStatus {}", json(patch)),
        Action::PatchRollout { patch } => format!("PatchRollout {}", json(patch)),
        Action::EvictPod { name } => format!("EvictPod {name}"),
        Action::PatchPodMetadata { name, patch } => {
            format!("PatchPodMetadata {name} {}", serde_json::to_string(patch).unwrap_or_default())
        }
        Action::CreateAnalysisRun { run } => {
            format!("CreateAnalysisRun {}", run.metadata.name.as_deref().unwrap_or_default())
        }
        Action::PatchAnalysisRun { name, patch } => format!("PatchAnalysisRun {name} {}", json(patch)),
        Action::DeleteAnalysisRun { name } => format!("DeleteAnalysisRun {name}"),
        Action::CreateExperiment { experiment } => {
            format!("CreateExperiment {}", experiment.metadata.name.as_deref().unwrap_or_default())
        }
        Action::PatchExperiment { name, patch } => format!("PatchExperiment {name} {}", json(patch)),
        Action::DeleteExperiment { name } => format!("DeleteExperiment {name}"),
        Action::Measure { run, metric, index, .. } => format!("Measure {run} {metric} #{index}"),
        Action::CreateJob { job } => format!("CreateJob {}", job.metadata.name.as_deref().unwrap_or_default()),
        Action::DeleteJob { name } => format!("DeleteJob {name}"),
        Action::ScaleDeployment { name, replicas } => format!("ScaleDeployment {name} replicas={replicas}"),
        Action::CreateIngress { ingress } => {
            // What the line would repeat (its kind, name, namespace, the owning Rollout) left out.
            let mut v = serde_json::to_value(ingress).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("apiVersion");
                o.remove("kind");
            }
            if let Some(m) = v.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
                for key in ["name", "namespace", "ownerReferences"] {
                    m.remove(key);
                }
            }
            let owner = ingress.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
            match owner {
                Some(o) => format!(
                    "CreateIngress {} owner={}/{} {}",
                    ingress.metadata.name.as_deref().unwrap_or_default(),
                    o.kind,
                    o.name,
                    json(&v)
                ),
                None => format!("CreateIngress {} {}", ingress.metadata.name.as_deref().unwrap_or_default(), json(&v)),
            }
        }
        Action::PatchIngress { name, patch } => format!("PatchIngress {name} {}", json(patch)),
        Action::CreateRoute { kind, object } => format!(
            "Create{} {} {}",
            kind.as_str(),
            object.pointer("/metadata/name").and_then(serde_json::Value::as_str).unwrap_or_default(),
            json(object)
        ),
        Action::PatchRoute { kind, namespace, name, patch } => match namespace {
            Some(ns) => format!("Patch{} {ns}/{name} {}", kind.as_str(), json(patch)),
            None => format!("Patch{} {name} {}", kind.as_str(), json(patch)),
        },
        Action::DeleteRoute { kind, namespace, name } => match namespace {
            Some(ns) => format!("Delete{} {ns}/{name}", kind.as_str()),
            None => format!("Delete{} {name}", kind.as_str()),
        },
        Action::RecordEvent { kind, reason, message } => format!("Event {kind:?} {reason}: {message}"),
        Action::WakeAt { .. } => return None,
    })
}

/// One line per change: `<time> <rollout> <what>`.
pub fn render_changes(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!("{} {} {}\n", Seconds(c.t).human(), c.rollout, c.what));
    }
    out
}
