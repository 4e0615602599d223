//! The changes each verb makes to a Rollout: exactly the patches Argo's kubectl plugin sends,
//! so either CLI drives either controller. Pure functions of the object read just before.
//!
//! | verb | request |
//! |---|---|
//! | `pause` | merge patch `{"spec":{"paused":true}}` |
//! | `abort` | merge patch `{"status":{"abort":true}}` on `/status` (the object itself if that is 404) |
//! | `retry rollout` | merge patch `{"status":{"abort":false}}` on `/status` (likewise) |
//! | `restart` | merge patch `{"spec":{"restartAt":"<RFC 3339>"}}` |
//! | `promote` | see [`promote`] |
//! | `set image` | update (PUT) of the object with the container images changed |
//! | `undo` | JSON patch `replace /spec/template` with the revision's template |

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use rollouts_core::api::{keys, AnalysisPhase, Rollout};
use rollouts_core::objects::ReplicaSetExt;
use rollouts_core::rollout::templates_equal;
use rollouts_core::Timestamp;
use serde_json::{json, Value};

/// `pause`: the user pause.
pub fn pause() -> Value {
    json!({"spec": {"paused": true}})
}

/// `abort`: sent to the status subresource.
pub fn abort() -> Value {
    json!({"status": {"abort": true}})
}

/// `retry rollout`: sent to the status subresource.
pub fn retry() -> Value {
    json!({"status": {"abort": false}})
}

/// `restart [--in D]`: pods created before `at` are restarted.
pub fn restart(at: Timestamp) -> Value {
    json!({"spec": {"restartAt": at.to_rfc3339()}})
}

/// The merge patches of a promote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// For the object itself.
    pub spec: Option<Value>,
    /// For the status subresource, sent first.
    pub status: Option<Value>,
    /// Sent to the object instead of `spec` when the CRD has no status subresource (Argo
    /// Rollouts before 0.10), so the status change is not lost.
    pub unified: Option<Value>,
}

/// Why a promote would change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NothingToPromote {
    /// Not paused, and no canary step left to skip.
    NotPaused,
    /// `--full` on a rollout whose stable ReplicaSet is already the desired one.
    AlreadyFullyPromoted,
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
/// this returns an error instead, so the user learns the promote did nothing.
pub fn promote(ro: &Rollout, full: bool) -> Result<Promotion, NothingToPromote> {
    if full {
        if ro.status.current_pod_hash == ro.status.stable_rs {
            return Err(NothingToPromote::AlreadyFullyPromoted);
        }
        let patch = json!({"status": {"promoteFull": true}});
        return Ok(Promotion { spec: None, status: Some(patch.clone()), unified: Some(patch) });
    }
    let status = &ro.status;
    let spec = ro.spec.paused.then(|| json!({"spec": {"paused": false}}));
    let mut unified = Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null}}));
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
                unified = Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": next}}));
                Some(json!({"status": {"pauseConditions": null, "currentStepIndex": next}}))
            }
            _ => None,
        }
    } else {
        None
    };
    if spec.is_none() && status_patch.is_none() {
        return Err(NothingToPromote::NotPaused);
    }
    Ok(Promotion { spec, status: status_patch, unified })
}

/// Why `set image` changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchContainer {
    /// The containers the template has (init, app and ephemeral), in that order.
    pub available: Vec<String>,
}

/// `set image CONTAINER=IMAGE` on an object with a pod template at `spec.template` (a Rollout
/// or the Deployment of its `workloadRef`): every init, app and ephemeral container of that
/// name, or all of them for `*`, gets `image`. Unknown fields are kept as they are.
pub fn set_image(object: &mut Value, container: &str, image: &str) -> Result<(), NoSuchContainer> {
    let mut found = false;
    let mut available = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let pointer = format!("/spec/template/spec/{list}");
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
        Ok(())
    } else {
        Err(NoSuchContainer { available })
    }
}

/// Why `undo` has no revision to go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRevision {
    /// `--to-revision N` and no ReplicaSet of the rollout has revision N.
    NotInHistory(i64),
    /// No earlier revision than the current one.
    NoPrevious,
}

/// The ReplicaSet `undo` goes back to: revision `to_revision`, or with 0 the second-newest
/// revision among the rollout's ReplicaSets (as Argo's plugin picks it).
pub fn undo_source(replica_sets: &[ReplicaSet], to_revision: i64) -> Result<&ReplicaSet, NoRevision> {
    // A ReplicaSet without the annotation counts as revision 0; an unreadable one is skipped.
    let revision = |rs: &ReplicaSet| match rs.annotation(keys::REVISION) {
        None => Some(0),
        Some(r) => r.parse::<i64>().ok(),
    };
    if to_revision > 0 {
        return replica_sets
            .iter()
            .find(|rs| revision(rs) == Some(to_revision))
            .ok_or(NoRevision::NotInHistory(to_revision));
    }
    let mut by_revision: Vec<(i64, &ReplicaSet)> =
        replica_sets.iter().filter_map(|rs| revision(rs).map(|r| (r, rs))).collect();
    by_revision.sort_by(|a, b| b.0.cmp(&a.0));
    by_revision.dedup_by_key(|(r, _)| *r);
    by_revision.get(1).map(|(_, rs)| *rs).ok_or(NoRevision::NoPrevious)
}

/// The revision's pod template without the hash label the controller added.
fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    let mut template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(keys::POD_TEMPLATE_HASH);
    }
    template
}

/// Whether the rollout's template already is the revision's (nothing to undo).
pub fn undo_is_noop(ro: &Rollout, source: &ReplicaSet) -> bool {
    let desired = ro.spec.template.clone().unwrap_or_default();
    templates_equal(&template_of(source), &desired, ro)
}

/// `undo`: a JSON patch replacing `spec.template` with the revision's template.
pub fn undo(source: &ReplicaSet) -> Value {
    json!([{"op": "replace", "path": "/spec/template", "value": template_of(source)}])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::decode::rollout_lenient;

    fn rollout(v: Value) -> Rollout {
        rollout_lenient(&v).rollout
    }

    fn canary(status: Value) -> Rollout {
        rollout(json!({
            "metadata": {"name": "demo"},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}]}}},
            "status": status
        }))
    }

    #[test]
    fn pause_abort_retry_and_restart_are_argos_bodies() {
        assert_eq!(pause().to_string(), r#"{"spec":{"paused":true}}"#);
        assert_eq!(abort().to_string(), r#"{"status":{"abort":true}}"#);
        assert_eq!(retry().to_string(), r#"{"status":{"abort":false}}"#);
        assert_eq!(
            restart(Timestamp::from_unix(1_700_000_000)).to_string(),
            r#"{"spec":{"restartAt":"2023-11-14T22:13:20Z"}}"#
        );
    }

    #[test]
    fn promote_at_a_canary_pause_step_clears_the_pause_conditions() {
        let ro = canary(json!({
            "currentStepIndex": 1, "controllerPause": true,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}]
        }));
        let p = promote(&ro, false).unwrap();
        assert_eq!(p.spec, None);
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
        assert_eq!(p.unified, Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null}})));
    }

    #[test]
    fn promote_of_a_user_paused_rollout_unpauses_the_spec() {
        let ro = rollout(json!({"spec": {"paused": true, "strategy": {"blueGreen": {"activeService": "a"}}}}));
        let p = promote(&ro, false).unwrap();
        assert_eq!(p.spec, Some(json!({"spec": {"paused": false}})));
        assert_eq!(p.status, None);
    }

    #[test]
    fn promote_of_a_blue_green_pause_clears_it() {
        let ro = rollout(json!({
            "spec": {"strategy": {"blueGreen": {"activeService": "a", "autoPromotionEnabled": false}}},
            "status": {"pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2024-01-01T00:00:00Z"}]}
        }));
        assert_eq!(promote(&ro, false).unwrap().status, Some(json!({"status": {"pauseConditions": null}})));
    }

    #[test]
    fn promote_of_a_running_canary_step_skips_it() {
        let ro = canary(json!({"currentStepIndex": 0}));
        let p = promote(&ro, false).unwrap();
        assert_eq!(p.spec, None);
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 1}})));
        assert_eq!(
            p.unified,
            Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": 1}}))
        );
        // No index yet counts as step 0.
        let p = promote(&canary(json!({})), false).unwrap();
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 1}})));
    }

    #[test]
    fn promote_after_an_inconclusive_step_analysis_moves_on_and_clears_the_controller_pause() {
        let ro = canary(json!({
            "currentStepIndex": 1, "controllerPause": true,
            "pauseConditions": [{"reason": "InconclusiveAnalysisRun", "startTime": "2024-01-01T00:00:00Z"}],
            "canary": {"currentStepAnalysisRunStatus": {"name": "demo-x-1", "status": "Inconclusive"}}
        }));
        let p = promote(&ro, false).unwrap();
        assert_eq!(
            p.status,
            Some(json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": 2}}))
        );
    }

    #[test]
    fn promote_with_nothing_paused_and_no_step_left_is_refused() {
        let done = canary(json!({"currentStepIndex": 3, "stableRS": "abc", "currentPodHash": "abc"}));
        assert_eq!(promote(&done, false), Err(NothingToPromote::NotPaused));
        let bg = rollout(json!({"spec": {"strategy": {"blueGreen": {"activeService": "a"}}}}));
        assert_eq!(promote(&bg, false), Err(NothingToPromote::NotPaused));
        let no_steps = rollout(json!({"spec": {"strategy": {"canary": {}}}}));
        assert_eq!(promote(&no_steps, false), Err(NothingToPromote::NotPaused));
    }

    #[test]
    fn promote_full_asks_the_controller_for_a_full_promotion() {
        let ro = canary(json!({"currentStepIndex": 1, "stableRS": "old", "currentPodHash": "new"}));
        let p = promote(&ro, true).unwrap();
        assert_eq!(p.spec, None);
        assert_eq!(p.status.unwrap().to_string(), r#"{"status":{"promoteFull":true}}"#);
        let done = canary(json!({"stableRS": "new", "currentPodHash": "new"}));
        assert_eq!(promote(&done, true), Err(NothingToPromote::AlreadyFullyPromoted));
    }

    fn with_containers() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "demo", "resourceVersion": "7"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "containers": [{"name": "app", "image": "demo:blue", "futureField": 1}, {"name": "sidecar", "image": "proxy:1"}]
            }}}
        })
    }

    #[test]
    fn set_image_changes_the_named_container_and_nothing_else() {
        let mut v = with_containers();
        set_image(&mut v, "app", "demo:yellow").unwrap();
        let mut want = with_containers();
        want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("demo:yellow");
        assert_eq!(v, want);
    }

    #[test]
    fn set_image_reaches_init_containers_and_star_means_all() {
        let mut v = with_containers();
        set_image(&mut v, "init", "busybox:2").unwrap();
        assert_eq!(v["spec"]["template"]["spec"]["initContainers"][0]["image"], "busybox:2");
        let mut v = with_containers();
        set_image(&mut v, "*", "x:1").unwrap();
        let spec = &v["spec"]["template"]["spec"];
        for image in [&spec["initContainers"][0]["image"], &spec["containers"][0]["image"], &spec["containers"][1]["image"]] {
            assert_eq!(image, "x:1");
        }
    }

    #[test]
    fn set_image_of_an_unknown_container_lists_the_known_ones() {
        let mut v = with_containers();
        let e = set_image(&mut v, "ap", "x").unwrap_err();
        assert_eq!(e.available, ["init", "app", "sidecar"]);
        assert_eq!(v, with_containers());
    }

    fn rs(name: &str, revision: Option<&str>, image: &str) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = revision {
            annotations.insert(keys::REVISION.into(), json!(r));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"app": "demo"}}, "template": {
                "metadata": {"labels": {"app": "demo", "rollouts-pod-template-hash": "h"}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }}
        }))
        .unwrap()
    }

    #[test]
    fn undo_goes_back_to_the_second_newest_revision_or_the_one_asked_for() {
        let rss = [rs("a", Some("1"), "demo:blue"), rs("c", Some("3"), "demo:red"), rs("b", Some("2"), "demo:yellow")];
        assert_eq!(undo_source(&rss, 0).unwrap().metadata.name.as_deref(), Some("b"));
        assert_eq!(undo_source(&rss, 1).unwrap().metadata.name.as_deref(), Some("a"));
        assert_eq!(undo_source(&rss, 7).unwrap_err(), NoRevision::NotInHistory(7));
        assert_eq!(undo_source(&rss[..1], 0).unwrap_err(), NoRevision::NoPrevious);
        assert_eq!(undo_source(&[], 0).unwrap_err(), NoRevision::NoPrevious);
    }

    #[test]
    fn undo_replaces_the_template_without_the_hash_label() {
        let patch = undo(&rs("a", Some("1"), "demo:blue"));
        assert_eq!(
            patch,
            json!([{"op": "replace", "path": "/spec/template", "value": {
                "metadata": {"labels": {"app": "demo"}},
                "spec": {"containers": [{"name": "app", "image": "demo:blue"}]}
            }}])
        );
    }

    #[test]
    fn undo_to_the_current_template_is_a_noop() {
        let ro = rollout(json!({"spec": {"template": {
            "metadata": {"labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": "demo:blue"}]}
        }}}));
        assert!(undo_is_noop(&ro, &rs("a", Some("1"), "demo:blue")));
        assert!(!undo_is_noop(&ro, &rs("b", Some("2"), "demo:red")));
    }
}
