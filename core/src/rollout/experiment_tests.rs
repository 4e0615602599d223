//! Unit tests of the canary `experiment` step, one rule each (Argo's
//! `rollout/experiment_test.go`, scenarios EXP-01, EXP-02, EXP-04).
//!
//! A rollout is simulated to the instant its update reaches the step (the simulator runs
//! the Experiment, which stays Running); a fresh controller is fed the cluster's objects
//! (without any Experiment: the Experiment's own phase is what each test sets), and the
//! test then shows it the Experiment in the phase it needs.

// Picking one kind of action or object out of a list.
#![allow(clippy::wildcard_enum_match_arm)]

use std::sync::Arc;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::api::{ConditionType, PauseReason, RolloutPhase};
use crate::sim::{parse_scenario, simulate, SIMULATION_EPOCH};
use crate::state::{Event, Object, State};
use crate::time::{Seconds, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

const ROLLOUT: &str = "foo";

/// The scenario: revision 1 of `foo` (`replicas`, the given canary strategy), then its
/// image set to `foo:2` at 1 m; `extra` objects beside it; stops at `until`.
fn scenario(strategy: Value, replicas: i32, extra: Vec<Value>, until: &str) -> String {
    scenario_with(json!({}), strategy, replicas, extra, until)
}

/// [`scenario`], with `spec_extra` fields in the Rollout's spec.
fn scenario_with(spec_extra: Value, strategy: Value, replicas: i32, extra: Vec<Value>, until: &str) -> String {
    let mut rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": ROLLOUT, "labels": {"team": "a"}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 120,
            "selector": {"matchLabels": {"app": "foo"}},
            "template": {
                "metadata": {"labels": {"app": "foo"}},
                "spec": {"containers": [{"name": "app", "image": "foo:1", "ports": [{"name": "http", "containerPort": 8080}]}]}
            },
            "strategy": {"canary": strategy}
        }
    });
    if let (Some(spec), Some(more)) = (rollout["spec"].as_object_mut(), spec_extra.as_object()) {
        spec.extend(more.clone());
    }
    // The simulator runs the step's Experiment: the template its analyses name exists
    // (with defaults for the arguments the tests pass) and keeps measuring, so that the
    // Experiment stays Running and leaves the rollout as the step found it.
    let args: Vec<Value> = ["stable", "latest", "me", "baseline"].iter().map(|a| json!({"name": a, "value": "x"})).collect();
    let bar = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "bar"},
        "spec": {
            "args": args,
            "metrics": [{"name": "m", "interval": "1h", "successCondition": "result == 1",
                         "provider": {"prometheus": {"address": "http://prometheus", "query": "check"}}}]
        }
    });
    let mut objects = vec![rollout, bar];
    objects.extend(extra);
    let scenario = json!({
        "objects": objects,
        "metrics": {"m": [{"value": 1}]},
        "events": [{"at": "1m", "setImage": {"rollout": ROLLOUT, "container": "app", "image": "foo:2"}}],
        "until": until,
    });
    serde_json::to_string(&scenario).expect("a scenario renders")
}

/// A basic canary `{maxSurge: 0, maxUnavailable: 1, steps}` (plus `extra` fields).
fn basic(steps: Value, extra: Value) -> Value {
    let mut s = json!({"maxSurge": 0, "maxUnavailable": 1, "steps": steps});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    s
}

/// A controller restarted on the simulated cluster's objects at the end (the Rollout
/// last), with `edit` applied to them first; the state, its actions, and the time.
fn restarted(text: &str, edit: impl FnOnce(&mut Vec<Object>)) -> (State, Vec<Action>, Timestamp) {
    let sim = simulate(&parse_scenario(text).expect("the scenario parses")).expect("the scenario simulates");
    let now = SIMULATION_EPOCH.plus(Seconds(sim.outcome.t));
    let mut objects: Vec<Object> =
        sim.final_objects[ROLLOUT].iter().filter(|o| !matches!(o, Object::Experiment(_))).cloned().collect();
    edit(&mut objects);
    let (state, actions) = crate::rollout::restarted(&objects, now);
    (state, actions, now)
}

fn status(state: &State) -> &crate::api::RolloutStatus {
    &state.rollout.as_ref().expect("a rollout").status
}

fn created(actions: &[Action]) -> Vec<&Experiment> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateExperiment { experiment } => Some(&**experiment),
            _ => None,
        })
        .collect()
}

fn terminated(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::PatchExperiment { name, patch } if patch == &json!({"spec": {"terminate": true}}) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn deleted(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteExperiment { name } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn events<'a>(actions: &'a [Action], reason: &str) -> Vec<&'a str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RecordEvent { reason: r, message, .. } if r == reason => Some(message.as_str()),
            _ => None,
        })
        .collect()
}

/// The one Experiment of the state.
fn the_experiment(state: &State) -> Experiment {
    assert_eq!(state.experiments.len(), 1, "{:?}", state.experiments.keys().collect::<Vec<_>>());
    state.experiments.values().next().cloned().expect("an experiment")
}

/// The controller observes `ex` (as its own controller wrote it) and reconciles.
fn observe(state: State, ex: &Experiment, now: Timestamp) -> (State, Vec<Action>) {
    let value = serde_json::to_value(ex).expect("an experiment serializes");
    crate::step(state, Event::Applied(Object::Experiment(value)), now)
}

/// `ex` in `phase`, with `message`.
fn in_phase(mut ex: Experiment, phase: AnalysisPhase, message: &str) -> Experiment {
    ex.status.phase = Some(phase);
    ex.status.message = message.to_string();
    ex
}

/// The Rollout as stored, changed by `edit`, observed by the controller.
fn edit_rollout(state: State, now: Timestamp, edit: impl FnOnce(&mut Value)) -> (State, Vec<Action>) {
    let mut value = serde_json::to_value(state.rollout.as_ref().expect("a rollout")).expect("a rollout serializes");
    edit(&mut value);
    crate::step(state, Event::Applied(Object::Rollout(value.into())), now)
}

fn rs_hash(state: &State, revision: &str) -> String {
    state
        .replica_sets
        .values()
        .find(|rs| rs.annotation(keys::REVISION) == Some(revision))
        .map(|rs| rs.pod_hash().to_string())
        .expect("the revision's ReplicaSet")
}

/// EXP-01's step: one template from the stable ReplicaSet and one analysis.
fn exp01_steps() -> Value {
    json!([{"experiment": {
        "templates": [{"name": "stable-template", "specRef": "stable", "replicas": 1}],
        "analyses": [{"name": "test", "templateName": "bar"}]
    }}, {"pause": {}}])
}

#[test]
fn the_step_creates_its_experiment_named_after_hash_revision_and_step() {
    let (state, actions, _) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let new_hash = rs_hash(&state, "2");
    let name = format!("{ROLLOUT}-{new_hash}-2-0");
    let made = created(&actions);
    assert_eq!(made.len(), 1, "{actions:#?}");
    let ex = made[0];
    assert_eq!(ex.metadata.name.as_deref(), Some(name.as_str()));
    let namespace = state.rollout.as_ref().and_then(|ro| ro.metadata.namespace.clone());
    assert!(namespace.is_some(), "the simulated rollout has a namespace");
    assert_eq!(ex.metadata.namespace, namespace, "created in the rollout's namespace");
    assert_eq!(events(&actions, "ExperimentCreated"), [format!("Created Experiment '{name}'")]);
    let labels = ex.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"), "the rollout's labels");
    assert_eq!(labels.get(keys::POD_TEMPLATE_HASH), Some(&new_hash));
    assert_eq!(ex.metadata.annotations.as_ref().and_then(|a| a.get(keys::REVISION)).map(String::as_str), Some("2"));
    let owner = &ex.metadata.owner_references.as_ref().expect("an owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("Rollout", ROLLOUT, Some(true)));
    assert_eq!(ex.spec.progress_deadline_seconds, Some(120), "the rollout's progress deadline");
    assert_eq!(
        ex.spec.analyses,
        [ExperimentAnalysisTemplateRef { name: "test".into(), template_name: "bar".into(), ..Default::default() }]
    );
    assert_eq!(status(&state).canary.current_experiment, name);
    assert_eq!(status(&state).phase, Some(RolloutPhase::Progressing));
}

#[test]
fn a_running_experiment_is_followed_without_writing_anything() {
    let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let ex = in_phase(the_experiment(&state), AnalysisPhase::Running, "");
    let (state, actions) = observe(state, &ex, now);
    assert!(actions.iter().all(|a| !a.is_mutating()), "{actions:#?}");
    let (_, actions) = crate::step(state, Event::Tick, now.plus(Seconds(30)));
    assert!(actions.iter().all(|a| !a.is_mutating()), "{actions:#?}");
}

#[test]
fn templates_copy_the_canary_or_stable_replica_set_with_the_step_metadata() {
    let steps = json!([{"experiment": {
        "duration": "5m",
        "scaleDownDelaySeconds": 7,
        "dryRun": [{"metricName": "m"}],
        "analysisRunMetadata": {"labels": {"l": "1"}, "annotations": {"a": "2"}},
        "templates": [
            {"name": "baseline", "specRef": "stable", "metadata": {"labels": {"role": "baseline"}, "annotations": {"note": "x"}}},
            {"name": "canary", "specRef": "canary", "replicas": 2, "selector": {"matchLabels": {"app": "foo", "only": "me"}}},
            {"name": "svc", "specRef": "canary", "service": {"name": "named"}},
            {"name": "unnamed", "specRef": "canary", "service": {}}
        ],
        "analyses": [{"name": "hashes", "templateName": "bar", "requiredForCompletion": true, "args": [
            {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
            {"name": "latest", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "me", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "baseline", "value": "{{templates.baseline.podTemplateHash}}"}
        ]}]
    }}]);
    let (state, actions, _) = restarted(&scenario(basic(steps, json!({})), 1, vec![], "61s"), |_| {});
    let ex = created(&actions)[0].clone();
    let rs_of = |rev: &str| state.replica_sets.values().find(|rs| rs.annotation(keys::REVISION) == Some(rev)).cloned().unwrap();
    let (stable, canary) = (rs_of("1"), rs_of("2"));
    let spec = &ex.spec;
    assert_eq!(spec.duration.as_deref(), Some("5m"));
    assert_eq!(spec.scale_down_delay_seconds, Some(7));
    assert_eq!(spec.dry_run[0].metric_name, "m");
    assert_eq!(spec.analysis_run_metadata.as_ref().map(|m| m.labels.clone()), Some(BTreeMap::from([("l".into(), "1".into())])));
    let [baseline, can, svc, unnamed] = &spec.templates[..] else { panic!("four templates: {:#?}", spec.templates) };
    // The stable template, with the step's labels in the template and the selector.
    let mut want = stable.spec.as_ref().unwrap().template.clone().unwrap();
    let meta = want.metadata.get_or_insert_with(Default::default);
    meta.labels.get_or_insert_with(BTreeMap::new).insert("role".into(), "baseline".into());
    meta.annotations.get_or_insert_with(BTreeMap::new).insert("note".into(), "x".into());
    assert_eq!(baseline.template, want);
    let mut selector = stable.spec.as_ref().unwrap().selector.clone();
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert("role".into(), "baseline".into());
    assert_eq!(baseline.selector.as_ref(), Some(&selector));
    assert_eq!((baseline.replicas, &baseline.service), (None, &None));
    // The canary template, with the step's own selector.
    assert_eq!(Some(&can.template), canary.spec.as_ref().unwrap().template.as_ref());
    assert_eq!(can.replicas, Some(2));
    assert_eq!(can.selector.as_ref().and_then(|s| s.match_labels.as_ref()).and_then(|l| l.get("only")).map(String::as_str), Some("me"));
    assert_eq!(svc.service, Some(TemplateService { name: "named".into() }));
    assert_eq!(unnamed.service, Some(TemplateService::default()));
    // Arguments resolved like a rollout analysis's; experiment placeholders left to the
    // Experiment.
    let args: BTreeMap<&str, Option<&str>> = spec.analyses[0].args.iter().map(|a| (a.name.as_str(), a.value.as_deref())).collect();
    assert_eq!(args["stable"], Some(stable.pod_hash()));
    assert_eq!(args["latest"], Some(canary.pod_hash()));
    assert_eq!(args["me"], Some(ROLLOUT));
    assert_eq!(args["baseline"], Some("{{templates.baseline.podTemplateHash}}"));
    assert!(spec.analyses[0].required_for_completion);
}

#[test]
fn a_weighted_template_gets_a_service() {
    let steps = json!([{"experiment": {"templates": [
        {"name": "w", "specRef": "stable", "weight": 5},
        {"name": "plain", "specRef": "canary"}
    ]}}]);
    let (_, actions, _) = restarted(&scenario(gateway(steps), 1, gateway_objects(), "61s"), |_| {});
    let ex = created(&actions)[0];
    assert_eq!(ex.spec.templates[0].service, Some(TemplateService::default()));
    assert_eq!(ex.spec.templates[1].service, None);
}

#[test]
fn no_experiment_without_a_stable_replica_set() {
    let text = scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s");
    let (_, actions, _) = restarted(&text, |objects| {
        // The stable ReplicaSet (revision 1) is gone.
        objects.retain(|o| !matches!(o, Object::ReplicaSet(rs) if rs.annotation(keys::REVISION) == Some("1")));
    });
    assert!(created(&actions).is_empty(), "{actions:#?}");
}

#[test]
fn a_successful_experiment_completes_the_step() {
    let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let mut ex = in_phase(the_experiment(&state), AnalysisPhase::Successful, "");
    ex.status.available_at = Some(now);
    let (state, actions) = observe(state, &ex, now);
    let s = status(&state);
    assert_eq!(s.current_step_index, Some(1));
    assert_eq!(s.canary.current_experiment, "", "a successful Experiment is no longer current");
    assert_eq!(events(&actions, "RolloutStepCompleted"), ["Rollout step 1/2 completed (experiment)"]);
    assert!(terminated(&actions).is_empty() && deleted(&actions).is_empty(), "{actions:#?}");
}

#[test]
fn a_failed_experiment_aborts_the_update_with_its_message() {
    for (phase, message, want) in [
        (AnalysisPhase::Failed, "", "Experiment analysis phase is error/failed"),
        (AnalysisPhase::Error, "Template 'a' exceeded its progressDeadlineSeconds (30)",
         "Experiment analysis phase is error/failed: Template 'a' exceeded its progressDeadlineSeconds (30)"),
    ] {
        let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
        let ex = in_phase(the_experiment(&state), phase, message);
        let (state, actions) = observe(state, &ex, now);
        let s = status(&state);
        assert!(s.abort && s.aborted_at == Some(now), "{phase:?}");
        assert_eq!(s.canary.current_experiment, "");
        assert_eq!(s.phase, Some(RolloutPhase::Degraded));
        assert_eq!(s.message, format!("RolloutAborted: Rollout aborted update to revision 2: {want}"));
        assert_eq!(s.duration.as_ref().and_then(|d| d.completion_status), Some(crate::api::CompletionStatus::Aborted));
        assert!(terminated(&actions).is_empty(), "a finished Experiment is not terminated again");
    }
}

#[test]
fn an_inconclusive_experiment_pauses_until_promoted_then_runs_again() {
    let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let first = the_experiment(&state);
    let name = first.metadata.name.clone().unwrap();
    let (state, _) = observe(state, &in_phase(first, AnalysisPhase::Inconclusive, ""), now);
    let s = status(&state);
    assert_eq!(s.pause_conditions.iter().map(|p| p.reason).collect::<Vec<_>>(), [PauseReason::InconclusiveExperiment]);
    assert_eq!((s.phase, s.message.as_str()), (Some(RolloutPhase::Paused), "InconclusiveExperiment"));
    assert_eq!(s.current_step_index, Some(0));
    // Held: no new Experiment while the pause stands (Argo would make one per reconcile).
    let (state, actions) = crate::step(state, Event::Tick, now.plus(Seconds(10)));
    assert!(created(&actions).is_empty(), "{actions:#?}");
    // `promote` clears the pause: the step runs a new Experiment.
    let (state, resumed) = edit_rollout(state, now.plus(Seconds(20)), |ro| {
        ro["status"].as_object_mut().map(|s| s.remove("pauseConditions"));
        ro["status"]["controllerPause"] = Value::Bool(false);
    });
    // The first reconcile records the resume; the next one runs the step.
    let (state, actions) = crate::step(state, Event::Tick, now.plus(Seconds(20)));
    let actions = [resumed, actions].concat();
    let made = created(&actions);
    assert_eq!(made.iter().map(|e| e.metadata.name.clone().unwrap()).collect::<Vec<_>>(), [format!("{name}-1")]);
    assert_eq!(status(&state).canary.current_experiment, format!("{name}-1"));
}

#[test]
fn abort_and_full_promotion_terminate_the_running_experiment() {
    let edits: [fn(&mut Value); 2] = [|ro| ro["status"]["abort"] = Value::Bool(true), |ro| ro["status"]["promoteFull"] = Value::Bool(true)];
    for edit in edits {
        let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
        let ex = in_phase(the_experiment(&state), AnalysisPhase::Running, "");
        let name = ex.metadata.name.clone().unwrap();
        let (state, _) = observe(state, &ex, now);
        let (state, actions) = edit_rollout(state, now, edit);
        assert_eq!(terminated(&actions), [name.as_str()], "{actions:#?}");
        assert!(state.experiments[&name].spec.terminate);
        assert_eq!(status(&state).canary.current_experiment, "");
        // Terminated once.
        let (_, actions) = crate::step(state, Event::Tick, now.plus(Seconds(1)));
        assert!(terminated(&actions).is_empty(), "{actions:#?}");
    }
}

#[test]
fn the_experiment_of_a_step_promoted_past_is_terminated() {
    let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let ex = in_phase(the_experiment(&state), AnalysisPhase::Running, "");
    let name = ex.metadata.name.clone().unwrap();
    let (state, _) = observe(state, &ex, now);
    // `promote` at an experiment step moves to the next step.
    let (state, actions) = edit_rollout(state, now, |ro| ro["status"]["currentStepIndex"] = json!(1));
    assert_eq!(terminated(&actions), [name.as_str()], "{actions:#?}");
    assert_eq!(status(&state).canary.current_experiment, "");
}

/// An Experiment `foo` owns (as the API server returns it), labelled `hash`.
fn owned_experiment(state: &State, name: &str, hash: Option<&str>, phase: Option<AnalysisPhase>, created_at: Timestamp) -> Experiment {
    let ro = state.rollout.as_ref().expect("a rollout");
    let labels = hash.map(|h| BTreeMap::from([(keys::POD_TEMPLATE_HASH.to_string(), h.to_string())]));
    Experiment {
        api_version: crate::api::API_VERSION.into(),
        kind: "Experiment".into(),
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: ro.metadata.namespace.clone(),
            uid: Some(format!("uid-{name}")),
            labels,
            creation_timestamp: Some(crate::objects::to_kube_time(created_at)),
            owner_references: Some(vec![OwnerReference {
                api_version: crate::api::API_VERSION.into(),
                kind: "Rollout".into(),
                name: ROLLOUT.into(),
                uid: ro.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: ExperimentSpec::default(),
        status: crate::api::ExperimentStatus { phase, ..Default::default() },
    }
}

#[test]
fn other_experiments_of_the_rollout_are_terminated() {
    let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let current = in_phase(the_experiment(&state), AnalysisPhase::Running, "");
    let hash = rs_hash(&state, "1");
    let extra = owned_experiment(&state, "extra", Some(&hash), Some(AnalysisPhase::Pending), now);
    let (state, _) = observe(state, &current, now);
    let (state, actions) = observe(state, &extra, now);
    assert_eq!(terminated(&actions), ["extra"], "{actions:#?}");
    assert!(state.experiments["extra"].spec.terminate);
    // Another rollout's Experiment is not this rollout's business.
    let mut foreign = owned_experiment(&state, "foreign", Some(&hash), Some(AnalysisPhase::Running), now);
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "another".into();
    let (_, actions) = observe(state, &foreign, now);
    assert!(terminated(&actions).is_empty(), "{actions:#?}");
}

#[test]
fn a_name_taken_by_a_finished_experiment_gets_a_suffix_and_an_equal_running_one_is_adopted() {
    let (state, _, now) = restarted(&scenario(basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let name = the_experiment(&state).metadata.name.clone().unwrap();
    // The status lost the name (a status write that never happened).
    let forget_current = |ro: &mut Value| {
        ro["status"]["canary"].as_object_mut().map(|c| c.remove("currentExperiment"));
    };
    let with_phase = |phase: AnalysisPhase| {
        let mut s = state.clone();
        if let Some(ex) = s.experiments.get_mut(&name) {
            ex.status.phase = Some(phase);
        }
        s
    };
    // Finished: the next free name.
    let (after, actions) = edit_rollout(with_phase(AnalysisPhase::Failed), now, forget_current);
    assert_eq!(created(&actions).iter().map(|e| e.metadata.name.clone().unwrap()).collect::<Vec<_>>(), [format!("{name}-1")]);
    assert_eq!(status(&after).canary.current_experiment, format!("{name}-1"));
    // Still running with the same spec: taken as it is.
    let (after, actions) = edit_rollout(with_phase(AnalysisPhase::Running), now, forget_current);
    assert!(created(&actions).is_empty(), "{actions:#?}");
    assert_eq!(status(&after).canary.current_experiment, name);
}

#[test]
fn finished_experiments_are_pruned_by_the_history_limits_and_their_replica_set() {
    let limits = json!({"analysis": {"successfulRunHistoryLimit": 1, "unsuccessfulRunHistoryLimit": 1}});
    let (mut state, _, now) = restarted(&scenario_with(limits, basic(exp01_steps(), json!({})), 1, vec![], "61s"), |_| {});
    let hash = rs_hash(&state, "1");
    let t = |s: i64| now.plus(Seconds(-s));
    let mut going = owned_experiment(&state, "deleting", Some("gone"), Some(AnalysisPhase::Successful), t(5));
    going.metadata.deletion_timestamp = Some(crate::objects::to_kube_time(now));
    let others = [
        owned_experiment(&state, "ok-new", Some(&hash), Some(AnalysisPhase::Successful), t(10)),
        owned_experiment(&state, "ok-old", Some(&hash), Some(AnalysisPhase::Successful), t(20)),
        owned_experiment(&state, "bad-new", Some(&hash), Some(AnalysisPhase::Failed), t(10)),
        owned_experiment(&state, "bad-old", Some(&hash), Some(AnalysisPhase::Inconclusive), t(20)),
        owned_experiment(&state, "running", Some(&hash), Some(AnalysisPhase::Running), t(30)),
        owned_experiment(&state, "no-label", None, Some(AnalysisPhase::Successful), t(5)),
        owned_experiment(&state, "no-rs", Some("gone"), Some(AnalysisPhase::Running), t(5)),
        going,
    ];
    for ex in others {
        state.experiments.insert(ex.metadata.name.clone().unwrap(), ex);
    }
    let (state, actions) = crate::step(state, Event::Tick, now);
    let mut gone = deleted(&actions);
    gone.sort_unstable();
    assert_eq!(gone, ["bad-old", "no-label", "no-rs", "ok-old"], "{actions:#?}");
    assert!(state.experiments.contains_key("deleting") && !state.experiments.contains_key("ok-old"));
    let mut stopped = terminated(&actions);
    stopped.sort_unstable();
    assert_eq!(stopped, ["no-rs", "running"], "the ones still going are terminated first");
}

#[test]
fn deleting_an_old_replica_set_deletes_its_experiments() {
    let text = scenario_with(json!({"revisionHistoryLimit": 0}), basic(exp01_steps(), json!({})), 1, vec![], "61s");
    let (probe, _, now) = restarted(&text, |_| {});
    let of_old = owned_experiment(&probe, "of-old", Some("0ld"), Some(AnalysisPhase::Successful), now);
    let (_, actions, _) = restarted(&text, |objects| {
        // A revision-0 ReplicaSet, scaled to 0 long ago, and an Experiment of its hash.
        let mut old = objects
            .iter()
            .find_map(|o| match o {
                Object::ReplicaSet(rs) if rs.annotation(keys::REVISION) == Some("1") => Some((**rs).clone()),
                _ => None,
            })
            .expect("the stable ReplicaSet");
        old.metadata.name = Some(format!("{ROLLOUT}-0ld"));
        old.metadata.uid = Some("uid-old".into());
        old.metadata.creation_timestamp = Some(crate::objects::to_kube_time(Timestamp(0)));
        old.metadata.labels.get_or_insert_with(BTreeMap::new).insert(keys::POD_TEMPLATE_HASH.into(), "0ld".into());
        old.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(keys::REVISION.into(), "0".into());
        old.spec.get_or_insert_with(Default::default).replicas = Some(0);
        old.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
            observed_generation: old.metadata.generation,
            ..Default::default()
        });
        objects.insert(0, Object::ReplicaSet(Arc::new(old)));
        objects.insert(0, Object::Experiment(serde_json::to_value(&of_old).expect("serializes")));
    });
    assert!(actions.contains(&Action::DeleteReplicaSet { name: format!("{ROLLOUT}-0ld") }), "{actions:#?}");
    assert_eq!(deleted(&actions), ["of-old"], "{actions:#?}");
}

/// A traffic-routed canary on the Gateway API (one HTTPRoute rule to both Services).
fn gateway(steps: Value) -> Value {
    json!({
        "maxSurge": 1, "maxUnavailable": 0,
        "stableService": "foo-stable", "canaryService": "foo-canary",
        "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "foo-route", "namespace": "default"}}},
        "steps": steps
    })
}

fn gateway_objects() -> Vec<Value> {
    let service = |name: &str| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": "foo"}, "ports": [{"port": 80}]}});
    vec![
        service("foo-stable"),
        service("foo-canary"),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "foo-route"},
            "spec": {"rules": [{"backendRefs": [{"name": "foo-stable", "kind": "Service", "port": 80},
                                                {"name": "foo-canary", "kind": "Service", "port": 80}]}]}}),
    ]
}

/// EXP-04's step 1: a weighted canary template and an unweighted stable one.
fn exp04_steps() -> Value {
    json!([{"setWeight": 10}, {"experiment": {"templates": [
        {"name": "experiment-template", "specRef": "canary", "replicas": 1, "weight": 5},
        {"name": "experiment-template-without-weight", "specRef": "stable", "replicas": 1}
    ]}}])
}

fn route_refs(actions: &[Action]) -> Option<Vec<Value>> {
    actions.iter().rev().find_map(|a| match a {
        Action::PatchRoute { patch, .. } => patch.pointer("/spec/rules/0/backendRefs").and_then(Value::as_array).cloned(),
        _ => None,
    })
}

/// The experiment's template statuses as its controller writes them once running.
fn running_templates(mut ex: Experiment) -> Experiment {
    ex.status.template_statuses = vec![
        crate::api::TemplateStatus {
            name: "experiment-template".into(),
            service_name: "experiment-service".into(),
            pod_template_hash: "h3".into(),
            status: Some(crate::api::TemplateStatusCode::Running),
            ..Default::default()
        },
        crate::api::TemplateStatus {
            name: "experiment-template-without-weight".into(),
            pod_template_hash: "h4".into(),
            status: Some(crate::api::TemplateStatusCode::Running),
            ..Default::default()
        },
    ];
    ex
}

#[test]
fn a_running_experiment_gets_its_template_weights_from_the_stable_share() {
    let (state, _, now) = restarted(&scenario(gateway(exp04_steps()), 10, gateway_objects(), "2m"), |_| {});
    assert_eq!(status(&state).current_step_index, Some(1));
    let ex = running_templates(the_experiment(&state));
    // Pending: no additional destination yet.
    let (pending, actions) = observe(state.clone(), &in_phase(ex.clone(), AnalysisPhase::Pending, ""), now);
    let weights = status(&pending).canary.weights.clone().unwrap();
    assert_eq!((weights.canary.weight, weights.stable.weight, weights.additional.len()), (10, 90, 0));
    assert!(route_refs(&actions).is_none(), "{actions:#?}");
    // Running: 10 / 85 / 5.
    let (running, actions) = observe(pending, &in_phase(ex.clone(), AnalysisPhase::Running, ""), now);
    let weights = status(&running).canary.weights.clone().unwrap();
    assert_eq!((weights.canary.weight, weights.stable.weight), (10, 85));
    assert_eq!(
        weights.additional,
        [WeightDestination { weight: 5, service_name: "experiment-service".into(), pod_template_hash: "h3".into() }]
    );
    let refs = route_refs(&actions).expect("the route is patched");
    assert_eq!(refs[0]["weight"], 85);
    assert_eq!(refs[1]["weight"], 10);
    assert_eq!(refs[2], json!({"group": "", "kind": "Service", "name": "experiment-service", "port": 8080, "weight": 5}));
    assert_eq!(refs.len(), 3);
    // The step ends: the destination goes.
    let (done, actions) = observe(running, &in_phase(ex, AnalysisPhase::Successful, ""), now);
    assert_eq!(status(&done).current_step_index, Some(2));
    let (done, more) = crate::step(done, Event::Tick, now);
    let refs = route_refs(&[actions, more].concat()).expect("the route is patched");
    assert!(refs.iter().all(|r| r["name"] != "experiment-service"), "{refs:#?}");
    assert!(status(&done).canary.weights.as_ref().is_some_and(|w| w.additional.is_empty()));
}

#[test]
fn validation_accepts_the_step_and_refuses_what_argo_refuses() {
    let spec = |strategy: Value| -> crate::api::RolloutSpec {
        let ro = json!({"selector": {"matchLabels": {"app": "foo"}},
            "template": {"metadata": {"labels": {"app": "foo"}}, "spec": {"containers": [{"name": "app", "image": "foo:1"}]}},
            "strategy": {"canary": strategy}});
        crate::api::parse::from_value_strict(&ro).expect("the spec decodes")
    };
    let check = |strategy: Value| super::super::validation::validate_spec(&spec(strategy)).map_err(|e| e.to_string());
    let step = |templates: Value| json!([{"experiment": {"templates": templates}}]);
    assert_eq!(check(json!({"steps": exp01_steps()})), Ok(()));
    assert_eq!(check(gateway(exp04_steps())), Ok(()));
    let p = "spec.strategy.canary.steps[0].experiment";
    for (strategy, want) in [
        (json!({"steps": step(json!([{"name": "a", "specRef": "canary", "weight": 5}]))}),
         format!("{p}.templates[0].weight: Invalid value: 5: Experiment template weight cannot be set unless TrafficRouting is enabled")),
        (json!({"stableService": "s", "canaryService": "c", "trafficRouting": {"nginx": {"stableIngress": "i"}},
                "steps": step(json!([{"name": "a", "specRef": "canary", "weight": 5}]))}),
         format!("{p}.templates[0].weight: Invalid value: 5: Experiment template weight is only available for TrafficRouting with SMI, ALB, Istio and Plugins at this time")),
        (json!({"steps": step(json!([{"name": "", "specRef": "canary"}]))}),
         format!("{p}.templates[0].name: Invalid value: \"\": Experiment has empty template name at index 0")),
        (json!({"steps": step(json!([{"name": "a", "specRef": "canary"}, {"name": "a", "specRef": "stable"}]))}),
         format!("{p}.templates[1].name: Invalid value: \"a\": Experiment has repeated template name 'a' in templates")),
        (json!({"steps": step(json!([{"name": "a", "specRef": "preview"}]))}),
         format!("{p}.templates[0].specRef: Invalid value: \"preview\": Invalid template step SpecRef: must be canary or stable")),
        (json!({"steps": [{"experiment": {"duration": "5x", "templates": []}}]}),
         format!("{p}.duration: Invalid value: \"5x\": time: unknown unit \"x\" in duration \"5x\"")),
        (json!({"steps": [{"experiment": {"templates": [], "analyses": [{"name": "a", "templateName": "t"}, {"name": "a", "templateName": "u"}]}}]}),
         format!("{p}.analyses[1].name: Invalid value: \"a\": Experiment has repeated analysis name 'a' in analyses")),
    ] {
        assert_eq!(check(strategy), Err(want));
    }
}

#[test]
fn the_condition_names_an_invalid_step() {
    let steps = json!([{"experiment": {"templates": [{"name": "a", "specRef": "canary", "weight": 5}]}}]);
    let (state, _, _) = restarted(&scenario(basic(steps, json!({})), 1, vec![], "10s"), |_| {});
    let cond = status(&state).conditions.iter().find(|c| c.kind == ConditionType::InvalidSpec).expect("InvalidSpec");
    assert!(cond.message.ends_with("Experiment template weight cannot be set unless TrafficRouting is enabled"), "{}", cond.message);
}
