//! Ephemeral metadata (argo-features.md §3 M.1) changes pod labels and nothing else.
//!
//! Each generated scenario (canary, routed canary or blue-green, any commands) is simulated
//! twice: as generated, and with ephemeral metadata on its strategy (`canaryMetadata` /
//! `stableMetadata`, or `previewMetadata` / `activeMetadata`), also in every `apply`.

use proptest::prelude::*;
use rollouts_core::sim::{simulate, Scenario, SimError, Simulation};
use rollouts_core::state::{Action, Event, State};
use rollouts_core::time::Seconds;
use rollouts_proptests::driver::{Delivery, Driver, Pods};
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, BAD_IMAGE, IMAGES, ROLLOUT};
use serde_json::{json, Value};

fn any_scenario() -> impl Strategy<Value = ScenarioGen> {
    scenario::scenario(spec::any_rollout(0..=12, IMAGES.len()), CmdMix::ALL, 8, any::<bool>(), 600)
}

/// The label key of the metadata; its value names the role.
const ROLE: &str = "ephemeral-role";

/// Adds ephemeral metadata to a Rollout manifest: a label naming the role and an
/// annotation.
fn add_metadata(v: &mut Value) {
        if v.get("kind").and_then(Value::as_str) != Some("Rollout") {
            return;
        }
        let meta = |role: &str| json!({"labels": {ROLE: role}, "annotations": {"example.com/role": role}});
        if let Some(c) = v.pointer_mut("/spec/strategy/canary").and_then(Value::as_object_mut) {
            c.insert("canaryMetadata".into(), meta("canary"));
            c.insert("stableMetadata".into(), meta("stable"));
        }
        if let Some(b) = v.pointer_mut("/spec/strategy/blueGreen").and_then(Value::as_object_mut) {
            b.insert("previewMetadata".into(), meta("preview"));
            b.insert("activeMetadata".into(), meta("active"));
        }
}

/// The scenario with ephemeral metadata on the rollout (see [`add_metadata`]).
fn with_metadata(mut s: Scenario) -> Scenario {
    s.objects.iter_mut().for_each(add_metadata);
    s.events.iter_mut().filter_map(|e| e.apply.as_mut()).for_each(add_metadata);
    s
}

fn run(s: &Scenario, g: &ScenarioGen) -> Result<Option<Simulation>, TestCaseError> {
    match simulate(s) {
        Ok(sim) => Ok(Some(sim)),
        // Reported by `controller_settles_at_every_instant`.
        Err(SimError::HotLoop { .. }) => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!("simulation failed: {e}\nscenario:\n{}", g.yaml()))),
    }
}

fn keys_with(sim: &Simulation, prefix: &str) -> Vec<String> {
    sim.objects.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// With ephemeral metadata the run is the same: the same timeline (phases, steps,
    /// weights, every ReplicaSet's name, hash, role and sizes) and the same ReplicaSets at
    /// the end, so the metadata never changes a pod-template hash nor creates a ReplicaSet.
    /// And where the run ends, every pod carries the metadata of its ReplicaSet's role by
    /// Argo's rule: the new ReplicaSet's pods the stable (active) metadata once it is the
    /// stable one, else the canary (preview) metadata; the stable ReplicaSet's pods the
    /// stable (active) metadata; any other pod none of it.
    #[test]
    fn ephemeral_metadata_changes_pod_labels_only(g in any_scenario()) {
        let plain = g.scenario();
        let labelled = with_metadata(plain.clone());
        let (Some(a), Some(b)) = (run(&plain, &g)?, run(&labelled, &g)?) else { return Ok(()) };
        prop_assert_eq!(
            serde_json::to_value(&a.timeline).unwrap(),
            serde_json::to_value(&b.timeline).unwrap(),
            "the timelines differ\nscenario:\n{}", g.yaml()
        );
        prop_assert_eq!(keys_with(&a, "ReplicaSet/"), keys_with(&b, "ReplicaSet/"), "scenario:\n{}", g.yaml());
        prop_assert!(keys_with(&a, "Pod/").is_empty());

        let rollout = &b.objects[&format!("Rollout/default/{ROLLOUT}")];
        if rollout.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|c| {
            c.iter().any(|c| c["type"] == "InvalidSpec")
        }) {
            return Ok(());
        }
        let blue_green = rollout.pointer("/spec/strategy/blueGreen").is_some();
        let (new_role, stable_role) = if blue_green { ("preview", "active") } else { ("canary", "stable") };
        let stable = str_at(rollout, "/status/stableRS");
        let current = str_at(rollout, "/status/currentPodHash");
        let fully_rolled_out = stable.is_empty() || stable == current;
        for (key, pod) in b.objects.iter().filter(|(k, _)| k.starts_with("Pod/")) {
            let hash = str_at(pod, "/metadata/labels/rollouts-pod-template-hash");
            let want = if hash == current {
                Some(if fully_rolled_out { stable_role } else { new_role })
            } else if hash == stable {
                Some(stable_role)
            } else {
                None
            };
            let label = pod.pointer(&format!("/metadata/labels/{ROLE}")).and_then(Value::as_str);
            let annotation = pod.pointer("/metadata/annotations/example.com~1role").and_then(Value::as_str);
            prop_assert_eq!(
                (label, annotation),
                (want, want),
                "{} (stableRS {}, currentPodHash {})\nscenario:\n{}", key, stable, current, g.yaml()
            );
        }
    }
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// Level-triggered with pods: driven one `step` per watch event, each event carrying the
    /// object as it was when it changed (so a pod event can predate the controller's own
    /// patch of that pod), a rollout with ephemeral metadata converges; the converged state
    /// stepped with `Tick` (now, 1 min and 1 day later) and a controller restarted on the
    /// converged objects (pods included) both ask for no mutating action.
    #[test]
    fn ephemeral_metadata_converges_with_stale_pod_events(g in any_scenario()) {
        let mut objects = g.rollout.objects();
        objects.iter_mut().for_each(add_metadata);
        let unready = if g.bad_image { [IMAGES[BAD_IMAGE].to_string()].into() } else { Default::default() };
        let mut d = Driver::with(&objects, unready, Pods::Simulated { startup: g.pod_startup }, Delivery::Snapshot);
        match d.run(&g.events, g.until() + 86_400) {
            Ok(true) => {}
            // Not converged (a timer still set a day later) or a hot loop: the settling
            // and idempotence properties report those.
            Ok(false) | Err(_) => return Ok(()),
        }
        let mutating = |a: &[Action]| a.iter().filter(|a| a.is_mutating()).cloned().collect::<Vec<_>>();
        let mut state = d.state.clone();
        for dt in [0, 60, 86_400] {
            let (s, actions) = rollouts_core::step(state, Event::Tick, d.now.plus(Seconds(dt)));
            state = s;
            prop_assert!(mutating(&actions).is_empty(), "Tick +{}s: {:?}\nscenario:\n{}", dt, mutating(&actions), g.yaml());
        }
        let mut restarted = State::default();
        let mut acted = Vec::new();
        for obj in d.objects() {
            let (s, actions) = rollouts_core::step(restarted, Event::Applied(obj), d.now);
            restarted = s;
            acted.extend(mutating(&actions));
        }
        let relabel: Vec<&Action> = acted
            .iter()
            .filter(|a| match a {
                Action::PatchPodMetadata { .. } => true,
                Action::PatchReplicaSet { patch, .. } => !patch.template_metadata.is_empty(),
                _ => false,
            })
            .collect();
        prop_assert!(relabel.is_empty(), "a restarted controller relabels pods: {:?}\nscenario:\n{}", relabel, g.yaml());
    }
}
