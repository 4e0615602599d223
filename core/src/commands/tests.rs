use super::*;

fn rollout(v: Value) -> Rollout {
    rollout_lenient(&v).rollout
}

fn canary_value(status: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "demo"},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}]}}},
        "status": status
    })
}

fn canary(status: Value) -> Rollout {
    rollout(canary_value(status))
}

fn merge(status: Option<Value>, object: Option<Value>, unified: Option<Value>) -> Change {
    Change::Merge { status, object, unified }
}

/// Each verb's request body, pinned to the bodies of Argo's kubectl plugin
/// (reference/argo-features.md §7.2).
#[test]
fn every_command_sends_the_plugins_patch() {
    let paused_at_step = canary_value(json!({
        "currentStepIndex": 1, "controllerPause": true,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}],
        "stableRS": "old", "currentPodHash": "new"
    }));
    let at = Timestamp::from_unix(1_700_000_000);
    let abort = json!({"status": {"abort": true}});
    let retry = json!({"status": {"abort": false}});
    let rows: Vec<(Command, Change)> = vec![
        (Command::Pause, merge(None, Some(json!({"spec": {"paused": true}})), None)),
        (Command::Resume, merge(None, Some(json!({"spec": {"paused": false}})), None)),
        (Command::Abort, merge(Some(abort.clone()), None, Some(abort))),
        (Command::Retry, merge(Some(retry.clone()), None, Some(retry))),
        (Command::Restart { at }, merge(None, Some(json!({"spec": {"restartAt": "2023-11-14T22:13:20Z"}})), None)),
        (Command::Scale { replicas: 7 }, merge(None, Some(json!({"spec": {"replicas": 7}})), None)),
        (
            Command::Promote { full: false },
            merge(
                Some(json!({"status": {"pauseConditions": null}})),
                None,
                Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null}})),
            ),
        ),
        (
            Command::Promote { full: true },
            merge(Some(json!({"status": {"promoteFull": true}})), None, Some(json!({"status": {"promoteFull": true}}))),
        ),
    ];
    for (command, want) in rows {
        assert_eq!(plan(&command, &paused_at_step, &[]).unwrap(), want, "{command:?}");
    }
}

#[test]
fn promote_of_a_user_paused_rollout_unpauses_the_spec() {
    let ro = rollout(json!({"spec": {"paused": true, "strategy": {"blueGreen": {"activeService": "a"}}}}));
    let Change::Merge { status, object, .. } = promote(&ro, false).unwrap() else { panic!("a merge patch") };
    assert_eq!(object, Some(json!({"spec": {"paused": false}})));
    assert_eq!(status, None);
}

#[test]
fn promote_of_a_blue_green_pause_clears_it() {
    let ro = rollout(json!({
        "spec": {"strategy": {"blueGreen": {"activeService": "a", "autoPromotionEnabled": false}}},
        "status": {"pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2024-01-01T00:00:00Z"}]}
    }));
    let Change::Merge { status, .. } = promote(&ro, false).unwrap() else { panic!("a merge patch") };
    assert_eq!(status, Some(json!({"status": {"pauseConditions": null}})));
}

#[test]
fn promote_of_a_running_canary_step_skips_it() {
    let want = merge(
        Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 1}})),
        None,
        Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": 1}})),
    );
    assert_eq!(promote(&canary(json!({"currentStepIndex": 0})), false).unwrap(), want);
    // No index yet counts as step 0.
    assert_eq!(promote(&canary(json!({})), false).unwrap(), want);
}

#[test]
fn promote_after_an_inconclusive_step_analysis_moves_on_and_clears_the_controller_pause() {
    let ro = canary(json!({
        "currentStepIndex": 1, "controllerPause": true,
        "pauseConditions": [{"reason": "InconclusiveAnalysisRun", "startTime": "2024-01-01T00:00:00Z"}],
        "canary": {"currentStepAnalysisRunStatus": {"name": "demo-x-1", "status": "Inconclusive"}}
    }));
    let Change::Merge { status, .. } = promote(&ro, false).unwrap() else { panic!("a merge patch") };
    assert_eq!(status, Some(json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": 2}})));
}

#[test]
fn promote_with_nothing_paused_and_no_step_left_is_refused() {
    let nothing = |v: Value| {
        let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
        assert_eq!(plan(&Command::Promote { full: false }, &v, &[]), Err(CommandError::NothingToPromote { rollout: name }));
    };
    nothing(canary_value(json!({"currentStepIndex": 3, "stableRS": "abc", "currentPodHash": "abc"})));
    nothing(json!({"metadata": {"name": "bg"}, "spec": {"strategy": {"blueGreen": {"activeService": "a"}}}}));
    nothing(json!({"metadata": {"name": "plain"}, "spec": {"strategy": {"canary": {}}}}));
    assert_eq!(
        CommandError::NothingToPromote { rollout: "demo".into() }.to_string(),
        "rollout 'demo' is not paused and has no step left to skip: nothing to promote"
    );
}

#[test]
fn promote_full_asks_the_controller_for_a_full_promotion_once() {
    let done = canary_value(json!({"stableRS": "new", "currentPodHash": "new"}));
    assert_eq!(
        plan(&Command::Promote { full: true }, &done, &[]),
        Err(CommandError::AlreadyFullyPromoted { rollout: "demo".into() })
    );
}

fn with_containers() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "demo", "resourceVersion": "7"},
        "spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "busybox:1"}],
            "containers": [{"name": "app", "image": "demo:blue", "futureField": 1}, {"name": "sidecar", "image": "proxy:1"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox:1"}]
        }}},
        "status": {"phase": "Healthy"}
    })
}

#[test]
fn set_image_replaces_the_object_with_the_named_container_changed_and_nothing_else() {
    let command = Command::SetImage { container: "app".into(), image: "demo:yellow".into() };
    let mut want = with_containers();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("demo:yellow");
    assert_eq!(plan(&command, &with_containers(), &[]).unwrap(), Change::Replace(want));
}

#[test]
fn set_image_reaches_init_and_ephemeral_containers_and_star_means_all() {
    let mut v = with_containers();
    set_image(&mut v, "init", "busybox:2").unwrap();
    assert_eq!(v["spec"]["template"]["spec"]["initContainers"][0]["image"], "busybox:2");
    let mut v = with_containers();
    set_image(&mut v, "debug", "busybox:3").unwrap();
    assert_eq!(v["spec"]["template"]["spec"]["ephemeralContainers"][0]["image"], "busybox:3");
    let mut v = with_containers();
    set_image(&mut v, "*", "x:1").unwrap();
    let spec = &v["spec"]["template"]["spec"];
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[list].as_array().unwrap() {
            assert_eq!(c["image"], "x:1", "{list}");
        }
    }
}

#[test]
fn set_image_of_an_unknown_container_lists_the_known_ones() {
    let mut v = with_containers();
    let e = set_image(&mut v, "ap", "x").unwrap_err();
    assert_eq!(e.to_string(), r#"unable to find container named "ap" in rollout "demo": it has init, app, sidecar, debug"#);
    assert_eq!(v, with_containers());
}

#[test]
fn set_image_of_a_workload_ref_rollout_names_the_workload() {
    let v = json!({"metadata": {"name": "demo"}, "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}});
    let e = plan(&Command::SetImage { container: "app".into(), image: "x".into() }, &v, &[]).unwrap_err();
    assert_eq!(e, CommandError::TemplateInWorkload { rollout: "demo".into(), kind: "Deployment".into(), name: "web".into() });
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

fn refs(replica_sets: &[ReplicaSet]) -> Vec<&ReplicaSet> {
    replica_sets.iter().collect()
}

fn demo_rollout(image: &str) -> Value {
    json!({"metadata": {"name": "demo"}, "spec": {
        "selector": {"matchLabels": {"app": "demo"}},
        "template": {"metadata": {"labels": {"app": "demo"}}, "spec": {"containers": [{"name": "app", "image": image}]}}
    }})
}

#[test]
fn undo_goes_back_to_the_second_newest_distinct_revision_or_the_one_asked_for() {
    let ro = rollout(demo_rollout("demo:red"));
    let rss = [rs("a", Some("1"), "demo:blue"), rs("c", Some("3"), "demo:red"), rs("b", Some("2"), "demo:yellow")];
    assert_eq!(undo_source(&ro, &refs(&rss), 0).unwrap().metadata.name.as_deref(), Some("b"));
    assert_eq!(undo_source(&ro, &refs(&rss), 1).unwrap().metadata.name.as_deref(), Some("a"));
    assert_eq!(undo_source(&ro, &refs(&rss), 7).unwrap_err(), CommandError::RevisionNotInHistory { revision: 7 });
    assert_eq!(undo_source(&ro, &refs(&rss[..1]), 0).unwrap_err(), CommandError::NoPreviousRevision { rollout: "demo".into() });
    assert_eq!(undo_source(&ro, &[], 0).unwrap_err(), CommandError::NoPreviousRevision { rollout: "demo".into() });
    // Two ReplicaSets with the newest revision count once.
    let dup = [rs("c", Some("3"), "demo:red"), rs("d", Some("3"), "demo:red"), rs("b", Some("2"), "demo:yellow")];
    assert_eq!(undo_source(&ro, &refs(&dup), 0).unwrap().metadata.name.as_deref(), Some("b"));
}

#[test]
fn undo_replaces_the_template_without_the_hash_label() {
    let change = plan(&Command::Undo { to_revision: 1 }, &demo_rollout("demo:red"), &[&rs("a", Some("1"), "demo:blue")]).unwrap();
    let want = json!([{"op": "replace", "path": "/spec/template", "value": {
        "metadata": {"labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "app", "image": "demo:blue"}]}
    }}]);
    assert_eq!(change, Change::JsonPatch(want));
    let mut stored = demo_rollout("demo:red");
    assert!(change.apply_to(&mut stored));
    assert_eq!(stored["spec"]["template"]["spec"]["containers"][0]["image"], "demo:blue");
}

#[test]
fn undo_leaves_out_the_ephemeral_metadata_the_controller_injected() {
    let mut old = rs("a", Some("1"), "demo:blue");
    old.metadata.annotations.get_or_insert_with(Default::default).insert(keys::EPHEMERAL_METADATA.into(), r#"{"labels":{"role":"stable"}}"#.into());
    let labels = old.spec.as_mut().and_then(|s| s.template.as_mut()).and_then(|t| t.metadata.as_mut()).and_then(|m| m.labels.as_mut()).unwrap();
    labels.insert("role".into(), "stable".into());
    let change = plan(&Command::Undo { to_revision: 1 }, &demo_rollout("demo:red"), &[&old]).unwrap();
    let Change::JsonPatch(ops) = change else { panic!("a JSON patch, got {change:?}") };
    assert_eq!(ops[0]["value"]["metadata"], json!({"labels": {"app": "demo"}}), "{ops}");
}

#[test]
fn undo_to_the_current_template_is_skipped() {
    let rss = [rs("a", Some("1"), "demo:blue"), rs("b", Some("2"), "demo:red")];
    let change = plan(&Command::Undo { to_revision: 1 }, &demo_rollout("demo:blue"), &refs(&rss)).unwrap();
    let Change::Skip(skipped) = change else { panic!("skipped, got {change:?}") };
    assert_eq!(skipped, Skipped::AlreadyAtRevision { revision: 1 });
    assert_eq!(skipped.to_string(), "skipped rollback (current template already matches revision 1)");
}

#[test]
fn applying_a_change_is_what_the_api_server_does() {
    let mut stored = canary_value(json!({"abort": false, "currentStepIndex": 1}));
    assert!(plan(&Command::Abort, &stored.clone(), &[]).unwrap().apply_to(&mut stored));
    assert_eq!(stored["status"], json!({"abort": true, "currentStepIndex": 1}));
    // An update keeps the stored status, whatever the object read carried.
    let read = with_containers();
    let mut stored = with_containers();
    stored["status"] = json!({"phase": "Paused"});
    let change = plan(&Command::SetImage { container: "app".into(), image: "demo:green".into() }, &read, &[]).unwrap();
    assert!(change.apply_to(&mut stored));
    assert_eq!(stored["status"], json!({"phase": "Paused"}));
    assert_eq!(stored["spec"]["template"]["spec"]["containers"][0]["image"], "demo:green");
    // A JSON patch that does not apply changes nothing.
    let mut v = json!({"spec": {}});
    assert!(!Change::JsonPatch(json!([{"op": "replace", "path": "/spec/template", "value": 1}])).apply_to(&mut v));
    assert_eq!(v, json!({"spec": {}}));
}

#[test]
fn merge_patches_follow_rfc_7386() {
    let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1, 2]});
    merge_patch(&mut v, &json!({"a": {"b": null, "e": 3}, "d": [3], "f": "x"}));
    assert_eq!(v, json!({"a": {"c": 2, "e": 3}, "d": [3], "f": "x"}));
    let mut scalar = json!(1);
    merge_patch(&mut scalar, &json!({"a": 1}));
    assert_eq!(scalar, json!({"a": 1}));
}

#[test]
fn a_negative_scale_is_refused() {
    assert_eq!(
        plan(&Command::Scale { replicas: -1 }, &json!({}), &[]).unwrap_err().to_string(),
        "replicas must be 0 or more, not -1"
    );
}
