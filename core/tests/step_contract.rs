//! The core contract: level-triggered, restart-safe, total, deterministic.
#![allow(clippy::disallowed_methods)] // tests may read files and the environment

use rollouts_core::api::{ConditionType, Rollout};
use rollouts_core::sim::{parse_scenario, simulate, Simulation};
use rollouts_core::rollout::STABLE_SERVICE_SETTLE;
use rollouts_core::{step, Action, Event, Object, State, Timestamp, WakeReason};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../fixtures/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn run(text: &str) -> Simulation {
    simulate(&parse_scenario(text).unwrap()).unwrap()
}

mod common;
use common::restart_controller;

fn end_time(sim: &Simulation) -> Timestamp {
    rollouts_core::sim::SIMULATION_EPOCH.plus(rollouts_core::time::Seconds(sim.outcome.t))
}

#[test]
fn a_restarted_controller_finds_nothing_to_do_on_a_finished_rollout() {
    let sim = run(&fixture("seed-canary-walkthrough.yaml"));
    let now = end_time(&sim);
    let (state, actions) = restart_controller(&sim.final_objects["rollouts-demo"], now);
    let mutating: Vec<_> = actions.iter().filter(|a| a.is_mutating()).collect();
    assert!(mutating.is_empty(), "restart mutated: {mutating:#?}");
    // A converged state stepped with timers, even much later, stays quiet.
    let mut state = state;
    for later in [1, 60, 3600, 86_400 * 30] {
        let (s, a) = step(state, Event::Tick, now.plus(rollouts_core::time::Seconds(later)));
        state = s;
        assert!(a.iter().all(|a| !a.is_mutating()), "tick at +{later}s mutated: {a:#?}");
    }
}

#[test]
fn a_controller_restarted_mid_rollout_carries_on_where_it_was() {
    let text = fixture("seed-canary-walkthrough.yaml");
    // Stop while paused at step 1 of 8 (the first promote is at 3m).
    let cut = text.replace("expect:", "until: 2m\nexpect_ignored:");
    let cut = cut.split("expect_ignored:").next().unwrap().to_string();
    let sim = run(&cut);
    let now = end_time(&sim);
    let (_, actions) = restart_controller(&sim.final_objects["rollouts-demo"], now);
    let mutating: Vec<_> = actions.iter().filter(|a| a.is_mutating()).collect();
    assert!(mutating.is_empty(), "restart mutated a paused rollout: {mutating:#?}");
    let last = &sim.final_state["rollouts-demo"];
    assert_eq!((last.phase.as_str(), last.current_step_index), ("Paused", Some(1)));
}

#[test]
fn an_unknown_field_becomes_an_invalid_spec_condition_naming_it() {
    let manifest = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "typo", "generation": 3},
        "spec": {"replicas": 2, "strategy": {"canary": {"steps": [{"setWieght": 20}]}}}
    });
    let (state, actions) = step(State::default(), Event::Applied(Object::Rollout(manifest.into())), Timestamp(1000));
    let ro: &Rollout = state.rollout.as_ref().unwrap();
    let cond = ro.status.conditions.iter().find(|c| c.kind == ConditionType::InvalidSpec).expect("InvalidSpec set");
    assert_eq!(
        cond.message,
        "The Rollout \"typo\" is invalid: spec.strategy.canary.steps[0].setWieght: unknown field"
    );
    assert_eq!(ro.status.phase.map(|p| p.as_str()), Some("Degraded"));
    assert_eq!(ro.status.observed_generation, "3");
    assert!(matches!(&actions[..], [Action::PatchRolloutStatus { .. }]), "{actions:#?}");
    // The same input again changes nothing.
    let (_, again) = step(state, Event::Tick, Timestamp(2000));
    assert!(again.is_empty(), "{again:#?}");
}

/// A spec still invalid after an edit, for another reason: the condition names the new one.
#[test]
fn an_invalid_spec_condition_follows_the_latest_error() {
    let manifest = |generation: i64, step: serde_json::Value, status: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "typo", "generation": generation},
            "spec": {"replicas": 2, "strategy": {"canary": {"steps": [step]}}},
            "status": status
        })
    };
    let first = manifest(3, serde_json::json!({"setWieght": 20}), serde_json::json!({}));
    let (state, _) = step(State::default(), Event::Applied(Object::Rollout(first.into())), Timestamp(1000));
    // The edit arrives with the status the first reconcile wrote.
    let written = serde_json::to_value(&state.rollout.as_ref().unwrap().status).unwrap();
    let second = manifest(4, serde_json::json!({"pauze": {}}), written);
    let (state, _) = step(state, Event::Applied(Object::Rollout(second.into())), Timestamp(1010));
    let ro: &Rollout = state.rollout.as_ref().unwrap();
    let conds: Vec<_> = ro.status.conditions.iter().filter(|c| c.kind == ConditionType::InvalidSpec).collect();
    assert_eq!(conds.len(), 1, "{conds:#?}");
    assert_eq!(conds[0].message, "The Rollout \"typo\" is invalid: spec.strategy.canary.steps[0].pauze: unknown field");
    assert_eq!(ro.status.observed_generation, "4");
}

#[test]
fn step_is_deterministic() {
    let sim = run(&fixture("seed-canary-walkthrough.yaml"));
    let objects = &sim.final_objects["rollouts-demo"];
    let a = restart_controller(objects, Timestamp(5));
    let b = restart_controller(objects, Timestamp(5));
    assert_eq!(serde_json::to_string(&a.0).unwrap(), serde_json::to_string(&b.0).unwrap());
    assert_eq!(serde_json::to_string(&a.1).unwrap(), serde_json::to_string(&b.1).unwrap());
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        serde_json::json!(null),
        serde_json::json!([1, 2, 3]),
        serde_json::json!({"metadata": "x"}),
        serde_json::json!({"metadata": {"name": "a"}, "spec": {"replicas": -5, "strategy": {"canary": {"maxSurge": "abc"}}}}),
        serde_json::json!({"metadata": {"name": "a"}, "spec": {"strategy": {"canary": {}, "blueGreen": {}}}}),
    ];
    for input in inputs {
        for now in [Timestamp(i64::MIN), Timestamp(0), Timestamp(i64::MAX)] {
            let (s, _) = step(State::default(), Event::Applied(Object::Rollout(input.clone().into())), now);
            let _ = step(s, Event::Tick, now);
        }
    }
}

/// A canary whose analysis step measures a web metric whose answer takes an hour.
const SLOW_MEASUREMENT: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: slow}
    spec:
      metrics:
        - name: slow
          successCondition: result == true
          provider: {web: {url: "http://127.0.0.1:9/ok"}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo}
    spec:
      replicas: 2
      selector: {matchLabels: {app: demo}}
      template:
        metadata: {labels: {app: demo}}
        spec: {containers: [{name: app, image: "app:1"}]}
      strategy:
        canary:
          steps:
            - setWeight: 50
            - analysis: {templates: [{templateName: slow}]}
metrics:
  slow:
    - {value: true, after: 1h}
events:
  - {at: 1m, setImage: {rollout: demo, container: app, image: "app:2"}}
until: 10m
"#;

#[test]
fn a_restarted_controller_asks_again_for_the_measurements_in_flight_on_resync() {
    let sim = run(SLOW_MEASUREMENT);
    let now = end_time(&sim);
    let objects = &sim.final_objects["demo"];
    let (state, actions) = restart_controller(objects, now);
    let measures = |actions: &[Action]| actions.iter().filter(|a| matches!(a, Action::Measure { .. })).count();
    assert_eq!(measures(&actions), 0, "the measurement is in flight, not due: {actions:#?}");
    let mut state = state;
    let resumed = rollouts_core::step_batch(&mut state, [Event::Resync], now);
    let asked: Vec<(&str, &str, i32)> = resumed
        .iter()
        .filter_map(|a| match a {
            Action::Measure { run, metric, index, .. } => Some((run.as_str(), metric.as_str(), *index)),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{resumed:#?}");
    assert_eq!((asked[0].1, asked[0].2), ("slow", 1));
    assert!(state.analysis_runs.contains_key(asked[0].0));
}

#[test]
fn a_batch_of_failed_actions_alone_is_not_reconciled() {
    // A measurement in flight: every reconcile asks to be woken when its answer is due.
    let sim = run(SLOW_MEASUREMENT);
    let now = end_time(&sim);
    let (state, _) = restart_controller(&sim.final_objects["demo"], now);
    let failed = Event::ActionFailed {
        action: Box::new(Action::DeleteReplicaSet { name: "gone".into() }),
        error: "conflict".into(),
    };
    let mut quiet = state.clone();
    assert!(rollouts_core::step_batch(&mut quiet, [failed.clone(), failed.clone()], now).is_empty());
    assert!(rollouts_core::step_batch(&mut quiet, [], now).is_empty());
    // With any other event in the batch, the reconcile runs once: the same actions as
    // stepping the batch's last event alone on the same state.
    let mut batched = state.clone();
    let with_tick = rollouts_core::step_batch(&mut batched, [failed, Event::Tick], now);
    let (_, single) = step(state, Event::Tick, now);
    assert!(!single.is_empty(), "a reconcile of this state says something");
    assert_eq!(with_tick, single);
}

/// A rollout of a controller instance (`--instance-id`) labels its AnalysisRuns with that
/// instance, as Argo does: that controller watches only its instance's runs.
#[test]
fn analysis_runs_carry_the_rollouts_controller_instance_id() {
    let sim = run(r#"
name: instance-id on runs
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: pass, labels: {argo-rollouts.argoproj.io/controller-instance-id: blue}}
    spec:
      metrics:
        - name: pass
          successCondition: result == 1
          provider: {prometheus: {address: "http://prometheus.example.com:9090", query: vector(1)}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo, labels: {argo-rollouts.argoproj.io/controller-instance-id: blue}}
    spec:
      replicas: 1
      selector: {matchLabels: {app: demo}}
      template:
        metadata: {labels: {app: demo}}
        spec: {containers: [{name: app, image: "example/app:1"}]}
      strategy: {canary: {steps: [{setWeight: 50}, {analysis: {templates: [{templateName: pass}]}}]}}
metrics:
  pass: [{value: 1}]
events:
  - {at: 10s, setImage: {rollout: demo, container: app, image: "example/app:2"}}
"#);
    let runs: Vec<&serde_json::Value> =
        sim.objects.iter().filter(|(k, _)| k.starts_with("AnalysisRun/")).map(|(_, v)| v).collect();
    assert_eq!(runs.len(), 1, "{:?}", sim.objects.keys().collect::<Vec<_>>());
    assert_eq!(runs[0]["metadata"]["labels"]["argo-rollouts.argoproj.io/controller-instance-id"], "blue");
}

/// A reconcile that revises the status twice (the new ReplicaSet's condition, then the
/// step's status) writes it once, after the ReplicaSet it reports, and what it writes is
/// the status the core holds.
#[test]
fn a_batch_writes_the_rollout_status_once_at_most() {
    let manifest = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "ns", "generation": 1, "uid": "u1"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
        }
    });
    let (state, actions) = step(State::default(), Event::Applied(Object::Rollout(manifest.clone().into())), Timestamp(1000));
    let patches: Vec<(usize, &serde_json::Value)> = actions
        .iter()
        .enumerate()
        .filter_map(|(i, a)| if let Action::PatchRolloutStatus { patch } = a { Some((i, patch)) } else { None })
        .collect();
    assert_eq!(patches.len(), 1, "{actions:#?}");
    let created = actions.iter().position(|a| matches!(a, Action::CreateReplicaSet { .. })).expect("a ReplicaSet is created");
    assert!(created < patches[0].0, "the status is written after the ReplicaSet it reports: {actions:#?}");
    let mut live = manifest;
    rollouts_core::api::merge::merge_patch(&mut live, patches[0].1);
    let written: rollouts_core::api::RolloutStatus = serde_json::from_value(live["status"].clone()).unwrap();
    assert_eq!(&written, &state.rollout.as_ref().unwrap().status);
}

/// A canary whose analysis step runs a Job that takes an hour.
const SLOW_JOB: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: slow-job}
    spec:
      metrics:
        - name: check
          provider:
            job:
              spec:
                template:
                  spec:
                    containers: [{name: check, image: "check:1"}]
                    restartPolicy: Never
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo}
    spec:
      replicas: 2
      selector: {matchLabels: {app: demo}}
      template:
        metadata: {labels: {app: demo}}
        spec: {containers: [{name: app, image: "app:1"}]}
      strategy:
        canary:
          steps:
            - setWeight: 50
            - analysis: {templates: [{templateName: slow-job}]}
metrics:
  check:
    - {phase: Successful, after: 1h}
events:
  - {at: 1m, setImage: {rollout: demo, container: app, image: "app:2"}}
until: 10m
"#;

/// The run's status says its job measurement is running (written before the Job's create),
/// and the create failed or never ran (a 500, a timeout, a lost answer to the status write,
/// a kill): the Job is asked for again after the failure and on resync, else the analysis
/// would wait forever for a Job nobody creates. Once the Job is seen, nothing is asked.
#[test]
fn a_failed_job_create_is_asked_again() {
    let sim = run(SLOW_JOB);
    let now = end_time(&sim);
    let objects = &sim.final_objects["demo"];
    let job = objects
        .iter()
        .find_map(|o| match o {
            Object::Job(j) => Some((**j).clone()),
            _ => None,
        })
        .expect("the Job is running at the end");
    let without_job: Vec<Object> = objects.iter().filter(|o| !matches!(o, Object::Job(_))).cloned().collect();
    let (mut state, _) = restart_controller(&without_job, now);
    let mut create = job.clone();
    create.status = None;
    let failed = Event::ActionFailed { action: Box::new(Action::CreateJob { job: Box::new(create) }), error: "injected 500".into() };
    let again = rollouts_core::step_batch(&mut state, [failed.clone()], now);
    let names: Vec<&str> = again
        .iter()
        .filter_map(|a| match a {
            Action::CreateJob { job } => job.metadata.name.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec![job.metadata.name.as_deref().unwrap()], "{again:#?}");
    // A controller killed between the run's status write and the Job's create: the resync
    // after its restart asks for the Job.
    let (mut restarted, _) = restart_controller(&without_job, now);
    let resumed = rollouts_core::step_batch(&mut restarted, [Event::Resync], now);
    assert!(resumed.iter().any(|a| matches!(a, Action::CreateJob { job: j } if j.metadata.name == job.metadata.name)), "{resumed:#?}");
    let (mut seen, _) = restart_controller(objects, now);
    assert!(rollouts_core::step_batch(&mut seen, [failed], now).is_empty(), "the Job exists: nothing to ask");
    assert!(!rollouts_core::step_batch(&mut seen, [Event::Resync], now).iter().any(|a| matches!(a, Action::CreateJob { .. })));
}

/// The rollout's status write that named its step's AnalysisRun was lost (the run was
/// created, the status never said so): the controller adopts the run it finds, as Argo's
/// create-with-collision-counter does for an equal run, instead of creating `<name>.1`.
#[test]
fn a_step_run_the_status_lost_is_adopted_not_created_again() {
    let sim = run(SLOW_JOB);
    let now = end_time(&sim);
    let lost: Vec<Object> = sim.final_objects["demo"]
        .iter()
        .map(|o| match o {
            Object::Rollout(ro) => {
                let mut ro = (**ro).clone();
                let canary = ro.pointer_mut("/status/canary").and_then(serde_json::Value::as_object_mut).unwrap();
                assert!(canary.remove("currentStepAnalysisRunStatus").is_some(), "the run is in the status at the end");
                Object::Rollout(ro.into())
            }
            other => other.clone(),
        })
        .collect();
    let (mut state, mut actions) = restart_controller(&lost, now);
    actions.extend(rollouts_core::step_batch(&mut state, [Event::Resync], now));
    let created: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateAnalysisRun { run } => run.metadata.name.as_deref(),
            _ => None,
        })
        .collect();
    assert!(created.is_empty(), "created again: {created:?}\n{actions:#?}");
}

/// The reconcile that entered the analysis step created its run, and its status write was
/// lost: the status read back is still at the step before. The run is not cancelled as a
/// stranger while the rollout catches up, and the analysis step adopts it: one run, one
/// Job, as without the fault (the fault-proxy soak created `<name>.1` and a second Job).
#[test]
fn a_run_created_ahead_of_a_lost_status_write_is_kept_and_adopted() {
    let sim = run(&SLOW_JOB.replace("until: 10m", "until: 80s"));
    let now = end_time(&sim);
    let objects = &sim.final_objects["demo"];
    let run_name = objects
        .iter()
        .find_map(|o| match o {
            Object::AnalysisRun(r) => r.pointer("/metadata/name").and_then(serde_json::Value::as_str).map(str::to_string),
            _ => None,
        })
        .expect("the step's run exists");
    let before_the_step: Vec<Object> = objects
        .iter()
        .map(|o| match o {
            Object::Rollout(ro) => {
                let mut ro = (**ro).clone();
                assert_eq!(ro.pointer("/status/currentStepIndex"), Some(&serde_json::json!(1)));
                ro["status"]["currentStepIndex"] = serde_json::json!(0);
                ro["status"]["canary"].as_object_mut().unwrap().remove("currentStepAnalysisRunStatus");
                Object::Rollout(ro.into())
            }
            other => other.clone(),
        })
        .collect();
    let (mut state, mut actions) = restart_controller(&before_the_step, now);
    actions.extend(rollouts_core::step_batch(&mut state, [Event::Resync], now));
    let touched: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateAnalysisRun { run } => Some(format!("create {}", run.metadata.name.as_deref().unwrap_or_default())),
            Action::PatchAnalysisRun { name, patch } if patch.pointer("/spec/terminate").is_some() => Some(format!("terminate {name}")),
            _ => None,
        })
        .collect();
    assert!(touched.is_empty(), "{touched:?}\n{actions:#?}");
    let ro = state.rollout.as_ref().expect("the rollout");
    assert_eq!(ro.status.current_step_index, Some(1), "the step was entered again");
    assert_eq!(
        ro.status.canary.current_step_analysis_run_status.as_ref().map(|s| s.name.clone()),
        Some(run_name),
        "the step adopted the run"
    );
}

/// The weight goes back to 0 only once the stable Service selects the new pods and that
/// change has had [`STABLE_SERVICE_SETTLE`] to reach the proxies: never in the reconcile that
/// points it there, nor on its watch event a few milliseconds later
/// (argoproj/argo-rollouts#1826: a proxy that reads the weight before the selector sends
/// every request to the old pods for a while).
#[test]
fn the_canary_keeps_its_weight_until_the_stable_service_selects_it() {
    let (objects, now) = promoted_nginx_walkthrough(100);
    let weight_patch = |actions: &[Action]| {
        actions.iter().find_map(|a| match a {
            Action::PatchIngress { patch, .. } => patch["metadata"]["annotations"][NGINX_WEIGHT].as_str().map(str::to_string),
            _ => None,
        })
    };
    let (state, actions) = restart_controller(&objects, now);
    let switched = actions.iter().find_map(|a| match a {
        Action::SetServiceSelector { service, hash, .. } if service == "rollouts-demo-stable" => Some(hash.clone()),
        _ => None,
    });
    assert_eq!(switched.as_deref(), Some("5dc888f465"), "{actions:#?}");
    assert_eq!(weight_patch(&actions), None, "the weight moved with the selector: {actions:#?}");
    // The Service's watch event: now the weight goes to 0.
    let service = objects.iter().find_map(|o| match o {
        Object::Service(svc) if svc.metadata.name.as_deref() == Some("rollouts-demo-stable") => Some(svc.clone()),
        _ => None,
    });
    let mut service = service.expect("the stable Service");
    std::sync::Arc::make_mut(&mut service).spec.as_mut().unwrap().selector.as_mut().unwrap().insert("rollouts-pod-template-hash".into(), "5dc888f465".into());
    let (state, actions) = step(state, Event::Applied(Object::Service(service)), now);
    assert_eq!(weight_patch(&actions), None, "the weight moved on the selector's echo: {actions:#?}");
    let settled = now.plus(STABLE_SERVICE_SETTLE);
    let wake = actions.iter().find_map(|a| match a {
        Action::WakeAt { at, reason: WakeReason::StableServiceSettle } => Some(*at),
        _ => None,
    });
    assert_eq!(wake, Some(settled), "{actions:#?}");
    let (state, actions) = step(state, Event::Tick, settled.plus(rollouts_core::time::Seconds(-1)));
    assert_eq!(weight_patch(&actions), None, "a second early: {actions:#?}");
    let (_, actions) = step(state, Event::Tick, settled);
    assert_eq!(weight_patch(&actions).as_deref(), Some("0"), "{actions:#?}");
}

/// A canary that already carries no traffic when it is promoted has nothing to hold: the
/// weights status names the new stable at once, and no settle wake-up is asked for.
#[test]
fn a_promoted_canary_without_weight_has_nothing_to_hold() {
    let (objects, now) = promoted_nginx_walkthrough(0);
    let (_, actions) = restart_controller(&objects, now);
    assert!(
        actions.iter().any(|a| matches!(a, Action::SetServiceSelector { service, .. } if service == "rollouts-demo-stable")),
        "{actions:#?}"
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::WakeAt { reason: WakeReason::StableServiceSettle, .. })), "{actions:#?}");
    let stable_hash = actions.iter().find_map(|a| match a {
        Action::PatchRolloutStatus { patch } => patch.pointer("/status/canary/weights/stable/podTemplateHash").and_then(|h| h.as_str()),
        _ => None,
    });
    assert_eq!(stable_hash, Some("5dc888f465"), "{actions:#?}");
}

const NGINX_WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

/// The seed's NGINX walkthrough the moment after the reconcile that made the canary the
/// stable: the stable Service still selects the old pods, the canary Ingress and the weights
/// status carry `canary_weight` (as the last step wrote them).
fn promoted_nginx_walkthrough(canary_weight: i32) -> (Vec<Object>, Timestamp) {
    let sim = run(&fixture("traffic-seed-nginx-walkthrough.yaml"));
    let now = end_time(&sim);
    let mut objects = sim.final_objects["rollouts-demo"].clone();
    let old_hash = objects.iter().find_map(|o| match o {
        Object::ReplicaSet(rs) if rs.metadata.name.as_deref() != Some("rollouts-demo-5dc888f465") => {
            rs.metadata.labels.as_ref().and_then(|l| l.get("rollouts-pod-template-hash")).cloned()
        }
        _ => None,
    });
    let old_hash = old_hash.expect("the old ReplicaSet");
    for o in &mut objects {
        match o {
            Object::Rollout(ro) => {
                // The weights as the last step wrote them, the old pods still the stable's.
                let mut json = (**ro).clone();
                json["status"]["canary"]["weights"]["canary"]["weight"] = canary_weight.into();
                json["status"]["canary"]["weights"]["stable"]["weight"] = (100 - canary_weight).into();
                json["status"]["canary"]["weights"]["stable"]["podTemplateHash"] = old_hash.clone().into();
                // Promoted at this very moment.
                json["status"]["duration"]["finishedAt"] = now.to_rfc3339().into();
                *ro = std::sync::Arc::new(json);
            }
            Object::Service(svc) if svc.metadata.name.as_deref() == Some("rollouts-demo-stable") => {
                let selector = std::sync::Arc::make_mut(svc).spec.as_mut().unwrap().selector.as_mut().unwrap();
                selector.insert("rollouts-pod-template-hash".into(), old_hash.clone());
            }
            Object::Ingress(ing) if ing.metadata.name.as_deref() == Some("rollouts-demo-rollouts-demo-stable-canary") => {
                ing.metadata.annotations.as_mut().unwrap().insert(NGINX_WEIGHT.into(), canary_weight.to_string());
            }
            _ => {}
        }
    }
    (objects, now)
}
