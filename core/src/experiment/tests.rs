//! Unit tests of the Experiment machine, one rule each, with Argo's numbers and messages.

use serde_json::{json, Value};

use super::world::ExperimentWorld;
use super::*;
use crate::api::{keys, AnalysisTemplate, ConditionStatus, ExperimentConditionType, TemplateStatusCode};
use crate::objects::ReplicaSetExt;

const T0: Timestamp = Timestamp(1_700_000_000);

fn at(secs: i64) -> Timestamp {
    T0.plus(Seconds(secs))
}

fn template(name: &str) -> Value {
    json!({
        "name": name,
        "selector": {"matchLabels": {"app": "demo"}},
        "template": {
            "metadata": {"labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": format!("demo:{name}"),
                                      "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}
        }
    })
}

fn experiment(spec: Value) -> Experiment {
    crate::api::parse::from_value_strict(&json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "ex", "namespace": "default", "uid": "ex-uid"},
        "spec": spec,
    }))
    .unwrap()
}

fn world(spec: Value) -> ExperimentWorld {
    let mut w = ExperimentWorld::new(experiment(spec));
    let t: AnalysisTemplate = serde_json::from_value(json!({
        "metadata": {"name": "pass"},
        "spec": {"args": [{"name": "hash"}], "metrics": [{"name": "m", "provider": {"job": {"spec": {}}}}],
                 "dryRun": [{"metricName": "other"}]}
    }))
    .unwrap();
    w.analysis_templates.insert("pass".into(), Ok(t));
    w
}

fn events(r: &ExperimentReconcile) -> Vec<(String, String)> {
    r.actions
        .iter()
        .filter_map(|a| {
            let Action::RecordEvent { reason, message, .. } = a else { return None };
            Some((reason.clone(), message.clone()))
        })
        .collect()
}

fn mutating(r: &ExperimentReconcile) -> Vec<&Action> {
    r.actions.iter().filter(|a| a.is_mutating()).collect()
}

fn template_status(w: &ExperimentWorld, name: &str) -> TemplateStatus {
    w.experiment.status.template_statuses.iter().find(|t| t.name == name).cloned().unwrap()
}

fn phase(w: &ExperimentWorld) -> Option<AnalysisPhase> {
    w.experiment.status.phase
}

/// Runs the world until `until`, reconciling at every wake-up and pod change.
fn run_until(w: &mut ExperimentWorld, from: Timestamp, until: Timestamp) -> Timestamp {
    let mut now = from;
    for _ in 0..200 {
        let before = w.experiment.status.clone();
        let r = w.reconcile(now);
        let next = [r.wake.map(|w| w.at), w.next_pod_change(now)].into_iter().flatten().min();
        if !mutating(&r).is_empty() || r.status != before {
            continue;
        }
        match next.filter(|t| *t <= until) {
            Some(t) => now = t,
            None => return now,
        }
    }
    now
}

use crate::api::TemplateStatus;

#[test]
fn replica_set_is_created_at_zero_with_argo_names_labels_annotations_and_owner() {
    let mut w = world(json!({"templates": [template("baseline")]}));
    let r = w.reconcile(T0);
    let [Action::CreateReplicaSet { replica_set }] = mutating(&r).as_slice() else { panic!("{:#?}", r.actions) };
    assert_eq!(replica_set.name(), "ex-baseline");
    assert_eq!(replica_set.spec_replicas(), 0);
    let hash = crate::hash::pod_template_hash(&w.experiment.spec.templates[0].template, None);
    assert_eq!(replica_set.pod_hash(), hash);
    let selector = replica_set.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();
    assert_eq!(selector.get(keys::POD_TEMPLATE_HASH), Some(&hash));
    assert_eq!(replica_set.annotation("experiment.argoproj.io/name"), Some("ex"));
    assert_eq!(replica_set.annotation("experiment.argoproj.io/template-name"), Some("baseline"));
    let owner = &replica_set.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str(), owner.controller), ("Experiment", "ex", "ex-uid", Some(true)));
    assert_eq!(phase(&w), Some(AnalysisPhase::Pending));
    assert_eq!(template_status(&w, "baseline").status, Some(TemplateStatusCode::Progressing));
    assert_eq!(
        events(&r),
        vec![
            ("TemplateProgressing".into(), "Template 'baseline' transitioned from  -> Progressing".into()),
            ("ExperimentPending".into(), "Experiment transitioned from  -> Pending".into()),
        ]
    );
}

#[test]
fn the_collision_count_changes_the_hash() {
    let mut w = world(json!({"templates": [template("a")]}));
    w.experiment.status.template_statuses.push(TemplateStatus { name: "a".into(), collision_count: Some(1), ..Default::default() });
    let r = w.reconcile(T0);
    let [Action::CreateReplicaSet { replica_set }] = mutating(&r).as_slice() else { panic!() };
    let with = crate::hash::pod_template_hash(&w.experiment.spec.templates[0].template, Some(1));
    assert_eq!(replica_set.pod_hash(), with);
    assert_ne!(with, crate::hash::pod_template_hash(&w.experiment.spec.templates[0].template, None));
}

fn with(mut t: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

#[test]
fn replica_set_is_scaled_to_the_template_replicas_on_the_next_reconcile() {
    let mut w = world(json!({"templates": [with(template("canary"), json!({"replicas": 2}))]}));
    w.reconcile(T0);
    let r = w.reconcile(at(1));
    let [Action::PatchReplicaSet { name, patch }] = mutating(&r).as_slice() else { panic!("{:#?}", r.actions) };
    assert_eq!((name.as_str(), patch.replicas), ("ex-canary", Some(2)));
    assert!(events(&r).contains(&("ScalingReplicaSet".into(), "Scaled up ReplicaSet ex-canary from 0 to 2".into())));
    assert_eq!(template_status(&w, "canary").last_transition_time, Some(at(1)));
}

#[test]
fn available_templates_run_for_the_duration_then_succeed_and_scale_down_after_30s() {
    let mut w = world(json!({"duration": "60s", "templates": [template("baseline"), template("canary")]}));
    w.reconcile(T0);
    w.reconcile(at(1)); // scaled to 1, pods ready at 2
    let r = w.reconcile(at(2));
    assert_eq!(phase(&w), Some(AnalysisPhase::Running));
    assert_eq!(w.experiment.status.available_at, Some(at(2)));
    assert_eq!(r.wake, Some(ExperimentWake { at: at(62), reason: ExperimentWakeReason::Duration }));
    let cond = &w.experiment.status.conditions[0];
    assert_eq!((cond.reason.as_str(), cond.message.as_str()), ("ReplicaSetUpdated", "Experiment \"ex\" is progressing."));
    // Nothing to do before the duration ends.
    let r = w.reconcile(at(61));
    assert!(mutating(&r).is_empty(), "{:#?}", r.actions);
    assert_eq!(phase(&w), Some(AnalysisPhase::Running));
    let cond = &w.experiment.status.conditions[0];
    assert_eq!((cond.reason.as_str(), cond.message.as_str()), ("NewReplicaSetAvailable", "Experiment \"ex\" is running."));
    // The duration ends: every template Successful, the experiment Successful.
    let r = w.reconcile(at(62));
    assert_eq!(phase(&w), Some(AnalysisPhase::Successful));
    assert_eq!(template_status(&w, "canary").status, Some(TemplateStatusCode::Successful));
    assert!(events(&r).contains(&("ExperimentSuccessful".into(), "Experiment transitioned from Running -> Successful".into())));
    let cond = &w.experiment.status.conditions[0];
    assert_eq!(cond.status, ConditionStatus::False);
    assert_eq!((cond.reason.as_str(), cond.message.as_str()), ("ExperimentCompleted", "Experiment \"ex\" has successfully ran and completed."));
    // Finished: the scale-down deadline is set 30 s ahead, the size kept until then.
    let r = w.reconcile(at(63));
    let deadline = at(93).to_rfc3339();
    assert_eq!(w.replica_sets["ex-baseline"].annotation(keys::SCALE_DOWN_DEADLINE), Some(deadline.as_str()));
    assert_eq!(w.replica_sets["ex-baseline"].spec_replicas(), 1);
    assert_eq!(r.wake, Some(ExperimentWake { at: at(93), reason: ExperimentWakeReason::ScaleDownDeadline }));
    let r = w.reconcile(at(92));
    assert!(mutating(&r).is_empty(), "{:#?}", r.actions);
    let r = w.reconcile(at(93));
    assert_eq!(w.replica_sets["ex-baseline"].spec_replicas(), 0);
    assert_eq!(w.replica_sets["ex-canary"].spec_replicas(), 0);
    assert!(events(&r).contains(&("ScalingReplicaSet".into(), "Scaled down ReplicaSet ex-baseline from 1 to 0".into())));
    // Converged.
    let r = w.reconcile(at(94));
    assert!(mutating(&r).is_empty() && r.wake.is_none(), "{r:#?}");
    assert_eq!(phase(&w), Some(AnalysisPhase::Successful));
}

#[test]
fn a_template_not_available_within_its_progress_deadline_fails_the_experiment() {
    let mut w = world(json!({"progressDeadlineSeconds": 30, "templates": [template("baseline"), template("canary")]}));
    w.never_ready.insert("ex-canary".into());
    w.reconcile(T0);
    let r = w.reconcile(at(1)); // scaled up: the deadline counts from here
    assert_eq!(r.wake, Some(ExperimentWake { at: at(31), reason: ExperimentWakeReason::ProgressDeadline }));
    let r = w.reconcile(at(2)); // the pod exists (unavailable): a new replica count restarts it
    assert_eq!(r.wake, Some(ExperimentWake { at: at(32), reason: ExperimentWakeReason::ProgressDeadline }));
    w.reconcile(at(31));
    assert_eq!(template_status(&w, "canary").status, Some(TemplateStatusCode::Progressing));
    let r = w.reconcile(at(32));
    let ts = template_status(&w, "canary");
    assert_eq!(ts.status, Some(TemplateStatusCode::Failed));
    assert_eq!(ts.message, "Template 'canary' exceeded its progressDeadlineSeconds (30)");
    assert_eq!(phase(&w), Some(AnalysisPhase::Failed));
    assert_eq!(w.experiment.status.message, "Template 'canary' exceeded its progressDeadlineSeconds (30)");
    let warning = r.actions.iter().any(|a| matches!(a, Action::RecordEvent { kind: EventType::Warning, reason, message }
        if reason == "TemplateFailed" && message == "Template 'canary' transitioned from Progressing -> Failed: Template 'canary' exceeded its progressDeadlineSeconds (30)"));
    assert!(warning, "{:#?}", r.actions);
    // Terminating: everything scales down after the delay; the healthy template ends Successful.
    let end = run_until(&mut w, at(33), at(200));
    assert!(w.replica_sets.values().all(|rs| rs.spec_replicas() == 0), "{end:?}");
    assert_eq!(template_status(&w, "baseline").status, Some(TemplateStatusCode::Successful));
    assert_eq!(phase(&w), Some(AnalysisPhase::Failed));
}

#[test]
fn terminate_ends_the_experiment_successfully_and_scales_down() {
    let mut w = world(json!({"templates": [template("baseline")]}));
    let now = run_until(&mut w, T0, at(10));
    assert_eq!(phase(&w), Some(AnalysisPhase::Running));
    w.experiment.spec.terminate = true;
    w.reconcile(now);
    assert_eq!(template_status(&w, "baseline").status, Some(TemplateStatusCode::Successful));
    assert_eq!(phase(&w), Some(AnalysisPhase::Successful));
    run_until(&mut w, now, now.plus(Seconds(100)));
    assert_eq!(w.replica_sets["ex-baseline"].spec_replicas(), 0);
    let scaled = w.log.iter().find(|(_, a)| matches!(a, Action::PatchReplicaSet { patch, .. } if patch.replicas == Some(0)));
    assert_eq!(scaled.map(|(t, _)| *t), Some(now.plus(Seconds(30))), "30 s after terminate");
}

#[test]
fn a_zero_scale_down_delay_scales_down_at_once_and_removes_a_deadline() {
    let mut w = world(json!({"scaleDownDelaySeconds": 0, "templates": [template("baseline")]}));
    let now = run_until(&mut w, T0, at(10));
    w.replica_sets.get_mut("ex-baseline").unwrap().metadata.annotations.as_mut().unwrap()
        .insert(keys::SCALE_DOWN_DEADLINE.into(), at(1000).to_rfc3339());
    w.experiment.spec.terminate = true;
    w.reconcile(now);
    let r = w.reconcile(now);
    assert_eq!(w.replica_sets["ex-baseline"].spec_replicas(), 0, "{:#?}", r.actions);
    assert_eq!(w.replica_sets["ex-baseline"].annotation(keys::SCALE_DOWN_DEADLINE), None);
}

#[test]
fn a_template_service_is_created_when_scaled_up_and_deleted_at_zero_available() {
    let mut w = world(json!({"scaleDownDelaySeconds": 0, "templates": [with(template("canary"), json!({"service": {}}))]}));
    w.reconcile(T0);
    assert!(w.services.is_empty(), "not before the ReplicaSet exists");
    let r = w.reconcile(at(1));
    let svc = &w.services["ex-canary"];
    assert!(matches!(mutating(&r).as_slice(), [Action::CreateService { .. }, Action::PatchReplicaSet { .. }]), "{:#?}", r.actions);
    let rs = &w.replica_sets["ex-canary"];
    assert_eq!(svc.spec.as_ref().unwrap().selector, rs.metadata.labels);
    let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), 8080, Some("TCP")));
    assert_eq!(svc.metadata.annotations.as_ref().unwrap()["experiment.argoproj.io/template-name"], "canary");
    let ts = template_status(&w, "canary");
    assert_eq!((ts.service_name.as_str(), ts.pod_template_hash.as_str()), ("ex-canary", rs.pod_hash()));
    let now = run_until(&mut w, at(2), at(10));
    w.experiment.spec.terminate = true;
    run_until(&mut w, now, now.plus(Seconds(10)));
    assert!(w.services.is_empty());
    let ts = template_status(&w, "canary");
    assert_eq!((ts.service_name.as_str(), ts.pod_template_hash.as_str()), ("", ""));
}

#[test]
fn a_named_service_owned_by_someone_else_is_a_template_error() {
    let mut w = world(json!({"templates": [with(template("canary"), json!({"service": {"name": "taken"}}))]}));
    w.services.insert("taken".into(), Default::default());
    w.reconcile(T0);
    w.reconcile(at(1));
    let ts = template_status(&w, "canary");
    assert_eq!(ts.status, Some(TemplateStatusCode::Error));
    assert_eq!(ts.message, "Failed to create Service taken for template 'canary': service taken already exists and is not owned by experiment template canary");
    assert_eq!(phase(&w), Some(AnalysisPhase::Error));
}

fn analysis(name: &str, required: bool) -> Value {
    json!({"name": name, "templateName": "pass", "requiredForCompletion": required,
           "args": [{"name": "hash", "value": "{{templates.canary.podTemplateHash}}"}]})
}

#[test]
fn a_missing_template_is_an_analysis_error_before_the_experiment_is_available() {
    let mut w = world(json!({"templates": [template("canary")],
                              "analyses": [{"name": "a", "templateName": "nope"}, {"name": "c", "templateName": "nope", "clusterScope": true}]}));
    w.reconcile(T0);
    w.reconcile(at(1));
    let runs = &w.experiment.status.analysis_runs;
    assert_eq!(runs[0].message, "AnalysisTemplate verification failed for analysis 'a': analysistemplate.argoproj.io \"nope\" not found");
    assert_eq!(runs[1].message, "ClusterAnalysisTemplate verification failed for analysis 'c': clusteranalysistemplate.argoproj.io \"nope\" not found");
    assert_eq!(phase(&w), Some(AnalysisPhase::Error), "an analysis error ends the experiment early");
}

#[test]
fn runs_are_created_once_available_with_experiment_arguments_and_rules() {
    let mut w = world(json!({
        "templates": [template("canary")], "analyses": [analysis("a", false)],
        "dryRun": [{"metricName": "m"}], "measurementRetention": [{"metricName": "m", "limit": 2}],
        "analysisRunMetadata": {"labels": {"team": "x"}, "annotations": {"note": "y"}},
    }));
    let now = run_until(&mut w, T0, at(10));
    let run = &w.analysis_runs["ex-a"];
    let hash = w.replica_sets["ex-canary"].pod_hash().to_string();
    assert_eq!(run.spec.args[0].value.as_deref(), Some(hash.as_str()));
    assert_eq!(run.spec.dry_run.iter().map(|d| d.metric_name.as_str()).collect::<Vec<_>>(), ["m", "other"]);
    assert_eq!(run.spec.measurement_retention[0].limit, 2);
    assert_eq!(run.metadata.labels.as_ref().unwrap()["team"], "x");
    assert_eq!(run.metadata.annotations.as_ref().unwrap()["note"], "y");
    assert_eq!(run.metadata.owner_references.as_ref().unwrap()[0].kind, "Experiment");
    let status = &w.experiment.status.analysis_runs[0];
    // Pending when created, kept while the run has no phase of its own.
    assert_eq!((status.analysis_run.as_str(), status.phase), ("ex-a", Some(AnalysisPhase::Pending)));
    assert!(w.log.iter().any(|(_, a)| matches!(a, Action::RecordEvent { reason, .. } if reason == "AnalysisRunPending")));
    // Its phase is tracked; a non-required success does not end an experiment without duration.
    w.set_run_phase("ex-a", AnalysisPhase::Successful, "");
    w.reconcile(now);
    assert_eq!(w.experiment.status.analysis_runs[0].phase, Some(AnalysisPhase::Successful));
    assert_eq!(phase(&w), Some(AnalysisPhase::Running));
}

#[test]
fn a_failed_analysis_fails_the_experiment_and_warns_the_owning_rollout() {
    let mut w = world(json!({"templates": [template("canary")], "analyses": [analysis("a", false)]}));
    w.experiment.metadata.owner_references =
        Some(vec![OwnerReference { kind: "Rollout".into(), name: "demo".into(), ..Default::default() }]);
    let now = run_until(&mut w, T0, at(10));
    w.set_run_phase("ex-a", AnalysisPhase::Running, "");
    w.reconcile(now);
    w.set_run_phase("ex-a", AnalysisPhase::Failed, "metric \"m\" assessed Failed");
    let r = w.reconcile(now);
    assert_eq!(phase(&w), Some(AnalysisPhase::Failed));
    assert_eq!(w.experiment.status.message, "metric \"m\" assessed Failed");
    let msg = "AnalysisRun 'a' transitioned from Running -> Failed: metric \"m\" assessed Failed".to_string();
    assert_eq!(r.rollout_events, vec![Action::RecordEvent { kind: EventType::Warning, reason: "AnalysisRunFailed".into(), message: msg }]);
    run_until(&mut w, now, now.plus(Seconds(100)));
    assert_eq!(w.replica_sets["ex-canary"].spec_replicas(), 0);
}

#[test]
fn required_analyses_complete_the_experiment_and_others_are_terminated() {
    let mut w = world(json!({"templates": [template("canary")], "analyses": [analysis("req", true), analysis("other", false)]}));
    let now = run_until(&mut w, T0, at(10));
    w.set_run_phase("ex-req", AnalysisPhase::Successful, "");
    w.set_run_phase("ex-other", AnalysisPhase::Running, "");
    w.reconcile(now);
    // "other" is Running, worse than Successful: the phase stays on the templates (Running).
    assert_eq!(phase(&w), Some(AnalysisPhase::Running));
    // Every required analysis Successful makes the experiment terminate: running runs are stopped.
    let r = w.reconcile(now.plus(Seconds(1)));
    assert!(r.actions.contains(&Action::PatchAnalysisRun { name: "ex-other".into(), patch: json!({"spec": {"terminate": true}}) }), "{:#?}", r.actions);
    assert!(events(&r).contains(&("AnalysisRunTerminating".into(), "Terminating other (ex-other)".into())));
    assert_eq!(template_status(&w, "canary").status, Some(TemplateStatusCode::Successful));
    // "other" still runs: the phase follows the analyses until the terminated run ends.
    assert_eq!(phase(&w), Some(AnalysisPhase::Running));
    w.reconcile(now.plus(Seconds(2)));
    assert_eq!(w.experiment.status.analysis_runs[1].phase, Some(AnalysisPhase::Successful));
    assert_eq!(phase(&w), Some(AnalysisPhase::Successful));
    assert_eq!(w.experiment.status.message, "Required AnalysisRuns completed");
}

#[test]
fn only_required_analyses_successful_gives_argo_message() {
    let mut w = world(json!({"templates": [template("canary")], "analyses": [analysis("req", true)]}));
    let now = run_until(&mut w, T0, at(10));
    w.set_run_phase("ex-req", AnalysisPhase::Successful, "done");
    w.reconcile(now);
    assert_eq!(phase(&w), Some(AnalysisPhase::Successful));
    assert_eq!(w.experiment.status.message, "Required AnalysisRuns completed");
}

#[test]
fn a_taken_run_name_gets_a_collision_suffix() {
    let mut w = world(json!({"templates": [template("canary")], "analyses": [analysis("a", false)]}));
    w.analysis_runs.insert("ex-a".into(), AnalysisRun::default());
    run_until(&mut w, T0, at(10));
    assert_eq!(w.experiment.status.analysis_runs[0].analysis_run, "ex-a.1");
    assert!(w.analysis_runs.contains_key("ex-a.1"));
}

#[test]
fn an_unresolvable_placeholder_is_an_analysis_error() {
    let mut w = world(json!({"templates": [template("canary")],
        "analyses": [{"name": "a", "templateName": "pass", "args": [{"name": "hash", "value": "{{templates.nope.podTemplateHash}}"}]}]}));
    run_until(&mut w, T0, at(10));
    let status = &w.experiment.status.analysis_runs[0];
    assert_eq!(status.message, "Failed to create AnalysisRun for analysis 'a': failed to resolve {{templates.nope.podTemplateHash}}");
    assert_eq!(phase(&w), Some(AnalysisPhase::Error));
}

#[test]
fn invalid_specs_get_argo_messages_and_nothing_else() {
    let no_selector = json!({"name": "a", "template": {}});
    let empty_selector = json!({"name": "a", "selector": {}, "template": {}});
    let cases = [
        (json!({"templates": [no_selector]}), "Rollout has missing field '.Spec.Templates[0].Selector'"),
        (json!({"templates": [empty_selector]}), "This experiment is selecting all pods at index 0. A non-empty selector is required."),
        (json!({"progressDeadlineSeconds": 5, "templates": [with(template("a"), json!({"minReadySeconds": 6}))]}),
         "MinReadySeconds cannot be longer than ProgressDeadlineSeconds. Check template index 0"),
        (json!({"templates": [template("a"), template("")]}), "Experiment ex has empty template name at index 1"),
        (json!({"templates": [template("a"), template("a")]}), "Experiment ex has repeated template name 'a' in templates"),
        (json!({"duration": "1x", "templates": [template("a")]}), "spec.duration: invalid duration \"1x\": time: unknown unit \"x\" in duration \"1x\""),
    ];
    for (spec, message) in cases {
        let mut w = world(spec);
        let r = w.reconcile(T0);
        assert!(r.actions.is_empty(), "{message}: {:#?}", r.actions);
        let cond = &w.experiment.status.conditions[0];
        assert_eq!((cond.kind, cond.reason.as_str(), cond.message.as_str()), (ExperimentConditionType::InvalidSpec, "InvalidSpec", message));
        assert_eq!(phase(&w), None);
    }
    // Fixed: the condition goes away and the experiment starts.
    let mut w = world(json!({"templates": [template("a"), template("a")]}));
    w.reconcile(T0);
    w.experiment.spec.templates.pop();
    w.reconcile(at(1));
    assert!(w.experiment.status.conditions.iter().all(|c| c.kind != ExperimentConditionType::InvalidSpec));
    assert_eq!(phase(&w), Some(AnalysisPhase::Pending));
}

#[test]
fn reconcile_is_deterministic_and_converges() {
    let spec = json!({"duration": "30s", "templates": [with(template("canary"), json!({"service": {}}))], "analyses": [analysis("a", false)]});
    let run = || {
        let mut w = world(spec.clone());
        let end = run_until(&mut w, T0, at(3600));
        (end, w.experiment.clone(), w.log.clone())
    };
    let first = run();
    assert_eq!(first, run());
    assert_eq!(first.1.status.phase, Some(AnalysisPhase::Successful));
}
