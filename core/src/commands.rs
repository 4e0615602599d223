//! User commands: what each verb of Argo's kubectl plugin sends, decided once.
//!
//! Every user command reaches the controller as a change of the Rollout, exactly as Argo's
//! `kubectl argo rollouts` plugin makes it, so either CLI drives either controller. The CLI,
//! the simulator's scripted `events:` and the property-test driver all call [`plan`]; only
//! sending the result differs (an API request, or a change of a stored object).
//!
//! | command | what is sent |
//! |---|---|
//! | `pause` | merge patch `{"spec":{"paused":true}}` |
//! | `resume` (simulator only) | merge patch `{"spec":{"paused":false}}` |
//! | `abort` | merge patch `{"status":{"abort":true}}` on `/status` (the object itself if that is 404) |
//! | `retry rollout` | merge patch `{"status":{"abort":false}}` on `/status` (likewise) |
//! | `restart [--in D]` | merge patch `{"spec":{"restartAt":"<now + D, RFC 3339>"}}` |
//! | `promote [--full]` | see [`promote`] |
//! | `set image` | update (PUT) of the object with the container images changed, see [`set_image`] |
//! | `undo [--to-revision N]` | JSON patch `replace /spec/template` with the revision's template, see [`undo`] |
//! | `scale` (`kubectl scale`) | merge patch `{"spec":{"replicas":N}}` |
//! | `terminate analysisrun` | merge patch `{"spec":{"terminate":true}}` on the AnalysisRun, see [`terminate_patch`] |

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{json, Value};

pub use crate::api::merge::merge_patch;
use crate::api::merge::merge_patch_owned;
use crate::api::lenient::rollout_lenient;
use crate::api::{keys, AnalysisPhase, Rollout};
use crate::objects::ReplicaSetExt;
use crate::rollout::templates_equal;
use crate::time::Timestamp;

/// `terminate analysisrun`: the merge patch sent to the run (not to the Rollout); the run
/// then stops measuring and ends with the measurements it has.
pub fn terminate_patch() -> Value {
    json!({"spec": {"terminate": true}})
}

/// A user command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `promote`, or `promote --full`.
    Promote {
        /// `--full`: skip every remaining step, analysis and pause.
        full: bool,
    },
    /// `abort`.
    Abort,
    /// `retry rollout`.
    Retry,
    /// `pause`.
    Pause,
    /// Clears a user pause (the simulator's `resume`; Argo's plugin has no such verb).
    Resume,
    /// `restart`: pods created before `at` are restarted.
    Restart {
        /// The time the CLI computed (`now + --in`).
        at: Timestamp,
    },
    /// `undo`: back to revision `to_revision`, or with 0 to the previous one.
    Undo {
        /// `--to-revision` (0: the previous revision).
        to_revision: i64,
    },
    /// `set image CONTAINER=IMAGE`; container `*` means every container.
    SetImage {
        /// Container name, or `*`.
        container: String,
        /// The new image.
        image: String,
    },
    /// `kubectl scale --replicas N`.
    Scale {
        /// The new `spec.replicas`.
        replicas: i32,
    },
}

/// What to send for a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// RFC 7386 merge patches: `status` to the status subresource first, then `object` to
    /// the object. When the CRD has no status subresource (the status request is 404, as
    /// with Argo Rollouts before 0.10), `unified` goes to the object instead of both, so the
    /// status change is not lost.
    Merge {
        /// For the status subresource.
        status: Option<Value>,
        /// For the object itself.
        object: Option<Value>,
        /// For the object, instead of both, without a status subresource.
        unified: Option<Value>,
    },
    /// An RFC 6902 JSON patch of the object.
    JsonPatch(Value),
    /// An update (PUT): the whole object as read (its `resourceVersion` included), changed.
    Replace(Value),
    /// Nothing to send; the command succeeds and says why.
    Skip(Skipped),
}

/// Why a command that succeeds sends nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// `undo` to the template the rollout already has.
    AlreadyAtRevision {
        /// The revision asked for.
        revision: i64,
    },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::AlreadyAtRevision { revision } => {
                write!(f, "skipped rollback (current template already matches revision {revision})")
            }
        }
    }
}

/// Why a command cannot be carried out. The messages are the CLI's (Argo's where Argo
/// reports the same thing).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `promote` of a rollout that is not paused and has no step left to skip. Argo's plugin
    /// sends a patch that changes nothing; telling the user is kinder.
    #[error("rollout '{rollout}' is not paused and has no step left to skip: nothing to promote")]
    NothingToPromote {
        /// The rollout.
        rollout: String,
    },
    /// `promote --full` of a rollout whose stable ReplicaSet is already the desired one.
    #[error("rollout '{rollout}' is already fully promoted")]
    AlreadyFullyPromoted {
        /// The rollout.
        rollout: String,
    },
    /// `set image` of a container the template does not have.
    #[error("unable to find container named {container:?} in {kind} {name:?}: {}", known(.available))]
    NoSuchContainer {
        /// The container asked for.
        container: String,
        /// The kind of the object, lower case (`rollout`, `deployment`).
        kind: String,
        /// The object's name.
        name: String,
        /// The containers the template has (init, app and ephemeral, in that order).
        available: Vec<String>,
    },
    /// The pod template is not in the Rollout but in its `workloadRef`: `set image` must
    /// change the referenced workload instead (see [`set_image`]).
    #[error("rollout '{rollout}' takes its template from spec.workloadRef {kind}/{name}")]
    TemplateInWorkload {
        /// The rollout.
        rollout: String,
        /// `workloadRef.kind`.
        kind: String,
        /// `workloadRef.name`.
        name: String,
    },
    /// `undo` of a rollout whose template is in a workload.
    #[error("rollout '{rollout}' takes its template from spec.workloadRef; roll back the referenced workload instead")]
    UndoOfWorkload {
        /// The rollout.
        rollout: String,
    },
    /// `undo --to-revision N` and no ReplicaSet of the rollout has revision N.
    #[error("unable to find specified revision {revision} in history")]
    RevisionNotInHistory {
        /// The revision asked for.
        revision: i64,
    },
    /// `undo` and no earlier revision than the current one.
    #[error("no revision found for rollout {rollout:?}")]
    NoPreviousRevision {
        /// The rollout.
        rollout: String,
    },
    /// `scale` to a negative count.
    #[error("replicas must be 0 or more, not {replicas}")]
    NegativeReplicas {
        /// The count asked for.
        replicas: i32,
    },
}

fn known(available: &[String]) -> String {
    if available.is_empty() {
        "it has none".to_string()
    } else {
        format!("it has {}", available.join(", "))
    }
}

/// What `command` sends for the Rollout `rollout` (as read from the cluster, unknown fields
/// and all), given the ReplicaSets it controls (needed by `undo` only).
pub fn plan(command: &Command, rollout: &Value, replica_sets: &[&ReplicaSet]) -> Result<Change, CommandError> {
    match command {
        Command::Pause => Ok(object_patch(json!({"spec": {"paused": true}}))),
        Command::Resume => Ok(object_patch(json!({"spec": {"paused": false}}))),
        Command::Abort => Ok(status_patch(json!({"status": {"abort": true}}))),
        Command::Retry => Ok(status_patch(json!({"status": {"abort": false}}))),
        Command::Restart { at } => Ok(object_patch(json!({"spec": {"restartAt": at.to_rfc3339()}}))),
        Command::Scale { replicas } if *replicas < 0 => Err(CommandError::NegativeReplicas { replicas: *replicas }),
        Command::Scale { replicas } => Ok(object_patch(json!({"spec": {"replicas": replicas}}))),
        Command::Promote { full } => promote(&rollout_lenient(rollout).rollout, *full),
        Command::SetImage { container, image } => {
            if let Some(workload) = rollout.pointer("/spec/workloadRef") {
                let field = |f: &str| workload.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
                return Err(CommandError::TemplateInWorkload { rollout: name_of(rollout), kind: field("kind"), name: field("name") });
            }
            let mut object = rollout.clone();
            set_image(&mut object, container, image)?;
            Ok(Change::Replace(object))
        }
        Command::Undo { to_revision } => undo(&rollout_lenient(rollout).rollout, replica_sets, *to_revision),
    }
}

fn object_patch(patch: Value) -> Change {
    Change::Merge { status: None, object: Some(patch), unified: None }
}

fn status_patch(patch: Value) -> Change {
    Change::Merge { status: Some(patch.clone()), object: None, unified: Some(patch) }
}

fn name_of(object: &Value) -> String {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Argo's `GetCurrentCanaryStep` index: `None` without canary steps, else the status index
/// (0 when unset), which may be past the last step.
fn step_index(ro: &Rollout) -> Option<i32> {
    if ro.spec.steps().is_empty() {
        return None;
    }
    Some(ro.status.current_step_index.unwrap_or(0))
}

/// The next step index, not past the end.
fn next_step(ro: &Rollout, index: i32) -> i32 {
    let steps = i32::try_from(ro.spec.steps().len()).unwrap_or(i32::MAX);
    if index < steps {
        index + 1
    } else {
        index
    }
}

/// `promote [--full]`, as Argo's plugin decides it:
///
/// * `--full`: `{"status":{"promoteFull":true}}` unless the rollout is fully promoted.
/// * otherwise `{"spec":{"paused":false}}` when user-paused, and on the status one of:
///   - a canary paused on an Inconclusive step analysis: clear the pauses and
///     `controllerPause`, move to the next step;
///   - any pause condition: clear the pause conditions;
///   - a canary with steps: move to the next step (skips a running analysis, experiment or
///     `setWeight` step) and clear the pause conditions.
///
/// Where Argo sends a no-op (a blue-green or canary that is not paused and has no step left),
/// this is an error instead, so the user learns the promote did nothing.
pub fn promote(ro: &Rollout, full: bool) -> Result<Change, CommandError> {
    let rollout = ro.metadata.name.clone().unwrap_or_default();
    if full {
        if ro.status.current_pod_hash == ro.status.stable_rs {
            return Err(CommandError::AlreadyFullyPromoted { rollout });
        }
        return Ok(status_patch(json!({"status": {"promoteFull": true}})));
    }
    let status = &ro.status;
    let object = ro.spec.paused.then(|| json!({"spec": {"paused": false}}));
    let mut unified = json!({"spec": {"paused": false}, "status": {"pauseConditions": null}});
    let inconclusive = ro.spec.canary().is_some()
        && status
            .canary
            .current_step_analysis_run_status
            .as_ref()
            .is_some_and(|s| s.status == AnalysisPhase::Inconclusive.as_str());
    let status_patch = if inconclusive && !status.pause_conditions.is_empty() && status.controller_pause {
        step_index(ro).map(|index| {
            json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": next_step(ro, index)}})
        })
    } else if !status.pause_conditions.is_empty() {
        Some(json!({"status": {"pauseConditions": null}}))
    } else if ro.spec.canary().is_some() {
        match step_index(ro) {
            Some(index) if next_step(ro, index) != index || ro.spec.paused => {
                let next = next_step(ro, index);
                unified = json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": next}});
                Some(json!({"status": {"pauseConditions": null, "currentStepIndex": next}}))
            }
            Some(_) | None => None,
        }
    } else {
        None
    };
    if object.is_none() && status_patch.is_none() {
        return Err(CommandError::NothingToPromote { rollout });
    }
    Ok(Change::Merge { status: status_patch, object, unified: Some(unified) })
}

/// `set image CONTAINER=IMAGE` on an object with a pod template at `spec.template` (a Rollout,
/// or the Deployment of a `workloadRef`): every init, app and ephemeral container of that
/// name, or all of them for `*`, gets `image`. Unknown fields are kept as they are.
pub fn set_image(object: &mut Value, container: &str, image: &str) -> Result<(), CommandError> {
    let mut found = false;
    let mut available = Vec::new();
    let template = template_pointer(object);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let pointer = format!("{template}/spec/{list}");
        let Some(Value::Array(containers)) = object.pointer_mut(&pointer) else { continue };
        for c in containers.iter_mut() {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            if name == container || container == "*" {
                if let Value::Object(map) = c {
                    map.insert("image".into(), Value::String(image.to_string()));
                    found = true;
                }
            }
            available.push(name);
        }
    }
    if found {
        return Ok(());
    }
    Err(CommandError::NoSuchContainer {
        container: container.to_string(),
        kind: object.get("kind").and_then(Value::as_str).unwrap_or("Rollout").to_lowercase(),
        name: name_of(object),
        available,
    })
}

/// A ReplicaSet's revision: without the annotation 0, unreadable `None` (skipped).
fn revision(rs: &ReplicaSet) -> Option<i64> {
    match rs.annotation(keys::REVISION) {
        None => Some(0),
        Some(r) => r.parse::<i64>().ok(),
    }
}

/// The ReplicaSet `undo` goes back to: revision `to_revision`, or with 0 the second-highest
/// distinct revision among the rollout's ReplicaSets (as Argo's plugin picks it).
pub fn undo_source<'a>(ro: &Rollout, replica_sets: &[&'a ReplicaSet], to_revision: i64) -> Result<&'a ReplicaSet, CommandError> {
    if to_revision > 0 {
        return replica_sets
            .iter()
            .copied()
            .find(|rs| revision(rs) == Some(to_revision))
            .ok_or(CommandError::RevisionNotInHistory { revision: to_revision });
    }
    let mut by_revision: Vec<(i64, &ReplicaSet)> =
        replica_sets.iter().copied().filter_map(|rs| revision(rs).map(|r| (r, rs))).collect();
    by_revision.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name().cmp(b.1.name())));
    by_revision.dedup_by_key(|(r, _)| *r);
    by_revision
        .get(1)
        .map(|(_, rs)| *rs)
        .ok_or_else(|| CommandError::NoPreviousRevision { rollout: ro.metadata.name.clone().unwrap_or_default() })
}

/// A revision's pod template as `undo` restores it: the ReplicaSet's, without the hash label
/// and the ephemeral metadata the controller added (Argo's plugin copies the latter back
/// into the Rollout, whose template then matches no ReplicaSet: a divergence).
pub fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    let mut template = crate::rollout::template_without_injected(rs).map(std::borrow::Cow::into_owned).unwrap_or_default();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(keys::POD_TEMPLATE_HASH);
    }
    template
}

/// Where an object keeps its pod template: `/template` in a PodTemplate, `/spec/template`
/// in a Rollout, Deployment or ReplicaSet.
pub fn template_pointer(object: &Value) -> &'static str {
    if object.get("kind").and_then(Value::as_str) == Some("PodTemplate") {
        "/template"
    } else {
        "/spec/template"
    }
}

/// The object a Rollout's `workloadRef` names, as (apiVersion, kind, name), when it takes
/// its template from one.
pub fn workload_of(rollout: &Value) -> Option<(String, String, String)> {
    let w = rollout.pointer("/spec/workloadRef")?;
    let field = |f: &str| w.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
    Some((field("apiVersion"), field("kind"), field("name")))
}

/// `set image` or `undo` of a rollout whose template is in its `workloadRef`: the change
/// to the referenced `workload` (as read from the cluster), as Argo's plugin makes it —
/// the workload with the images set, or a JSON patch replacing its template with the
/// revision's. Other commands act on the Rollout ([`plan`]).
pub fn plan_workload(command: &Command, rollout: &Value, workload: &Value, replica_sets: &[&ReplicaSet]) -> Result<Change, CommandError> {
    match command {
        Command::SetImage { container, image } => {
            let mut object = workload.clone();
            set_image(&mut object, container, image)?;
            Ok(Change::Replace(object))
        }
        Command::Undo { to_revision } => {
            let ro = rollout_lenient(rollout).rollout;
            let source = undo_source(&ro, replica_sets, *to_revision)?;
            let template = template_of(source);
            let pointer = template_pointer(workload);
            let current: PodTemplateSpec =
                workload.pointer(pointer).and_then(|t| serde_json::from_value(t.clone()).ok()).unwrap_or_default();
            if templates_equal(&template, &current, &ro) {
                return Ok(Change::Skip(Skipped::AlreadyAtRevision { revision: revision(source).unwrap_or(0) }));
            }
            Ok(Change::JsonPatch(json!([{"op": "replace", "path": pointer, "value": template}])))
        }
        Command::Pause | Command::Resume | Command::Abort | Command::Retry | Command::Restart { .. } | Command::Scale { .. } | Command::Promote { .. } => {
            plan(command, rollout, replica_sets)
        }
    }
}

/// `undo [--to-revision N]`: a JSON patch replacing `spec.template` with the revision's
/// template, or [`Skipped::AlreadyAtRevision`] when the rollout already has it.
pub fn undo(ro: &Rollout, replica_sets: &[&ReplicaSet], to_revision: i64) -> Result<Change, CommandError> {
    if ro.spec.workload_ref.is_some() {
        return Err(CommandError::UndoOfWorkload { rollout: ro.metadata.name.clone().unwrap_or_default() });
    }
    let source = undo_source(ro, replica_sets, to_revision)?;
    let template = template_of(source);
    let desired = ro.spec.template.clone().unwrap_or_default();
    if templates_equal(&template, &desired, ro) {
        return Ok(Change::Skip(Skipped::AlreadyAtRevision { revision: revision(source).unwrap_or(0) }));
    }
    Ok(Change::JsonPatch(json!([{"op": "replace", "path": "/spec/template", "value": template}])))
}

impl Change {
    /// Makes the change to a stored object, the way the API server would: the status and
    /// object merge patches in order, the JSON patch, or the replacement (which keeps the
    /// stored status, as an update of a resource with a status subresource does). Returns false for
    /// [`Change::Skip`] (nothing changed) and for a JSON patch the object cannot take.
    pub fn apply_to(self, object: &mut Value) -> bool {
        match self {
            Change::Merge { status, object: patch, unified: _ } => {
                for p in [status, patch].into_iter().flatten() {
                    merge_patch_owned(object, p);
                }
                true
            }
            Change::JsonPatch(ops) => json_patch(object, &ops),
            Change::Replace(new) => {
                // An update of the object leaves its status subresource as it is.
                let status = object.get_mut("status").map(Value::take);
                *object = new;
                if let (Some(status), Value::Object(map)) = (status, &mut *object) {
                    map.insert("status".into(), status);
                }
                true
            }
            Change::Skip(_) => false,
        }
    }
}

/// The RFC 6902 operations the commands send (`replace`, `add` of an object member); false,
/// with `object` unchanged, for anything else or a path that does not lead anywhere.
fn json_patch(object: &mut Value, ops: &Value) -> bool {
    let Some(ops) = ops.as_array() else { return false };
    let mut out = object.clone();
    for op in ops {
        let (Some(kind), Some(path), Some(value)) =
            (op.get("op").and_then(Value::as_str), op.get("path").and_then(Value::as_str), op.get("value"))
        else {
            return false;
        };
        let Some((parent, key)) = path.rsplit_once('/') else { return false };
        let key = key.replace("~1", "/").replace("~0", "~");
        let Some(Value::Object(map)) = out.pointer_mut(parent) else { return false };
        match kind {
            "replace" if map.contains_key(&key) => {
                map.insert(key, value.clone());
            }
            "add" => {
                map.insert(key, value.clone());
            }
            _ => return false,
        }
    }
    *object = out;
    true
}

#[cfg(test)]
mod tests;
