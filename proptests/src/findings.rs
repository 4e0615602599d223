//! Findings of these property tests that would otherwise dominate the runtime of
//! unrelated properties, detected at run time so that coverage comes back by itself once
//! the core is fixed.
//!
//! **The user-pause hot loop** (found by `controller_settles_at_every_instant` and the
//! idempotence properties; fixed in the core by "No progress estimation while paused").
//! Pausing (`spec.paused: true`) a fully promoted rollout made the controller flip the
//! `Progressing` condition between `RolloutPaused` (Unknown) and `NewReplicaSetAvailable`
//! (True) on every reconcile, so it never stopped patching the status; the simulator gave
//! up after 5 000 reconciles (`HotLoop`), which costs seconds per case in a debug build.
//! Should it come back, `controller_settles_at_every_instant` (tests/settling.rs) reports
//! it, and the properties about bounds, weights and abort draw their commands without
//! `pause` ([`without_known_hot_loops`]) so as not to spend minutes on it.

use std::sync::OnceLock;

use crate::driver::Driver;
use crate::scenario::{Cmd, CmdMix, Timed};
use crate::spec::{CanaryGen, CommonGen, RolloutGen, StrategyGen};

/// The smallest scenario showing the hot loop: a healthy one-replica canary, paused.
/// `rollouts simulate` on it fails with "the controller did not settle at 30s".
pub const PAUSE_HOT_LOOP_YAML: &str = r#"name: pausing a healthy canary never settles
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo}
    spec:
      replicas: 1
      selector: {matchLabels: {app: demo}}
      strategy: {canary: {}}
      template:
        metadata: {labels: {app: demo}}
        spec: {containers: [{name: app, image: "example/app:1"}]}
events:
  - {at: 30s, pause: {rollout: demo}}
until: 1m
"#;

/// Whether the user-pause hot loop is present in the core under test (checked once per
/// test binary, cheaply: the same scenario through the step-level driver, which gives up
/// after 200 reconciles at one instant; a healthy rollout being paused needs a handful).
pub fn pause_hot_loop_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        let rollout = RolloutGen {
            common: CommonGen {
                replicas: 1,
                min_ready_seconds: None,
                progress_deadline_seconds: None,
                revision_history_limit: None,
                image: 0,
                workload_ref: None,
            },
            strategy: StrategyGen::Canary(CanaryGen {
                steps: Vec::new(),
                max_surge: None,
                max_unavailable: None,
                services: false,
                router: None,
            }),
        };
        let mut d = Driver::new(&rollout.objects(), Default::default());
        d.max_steps_per_instant = 200;
        let present = d.run(&[Timed { at: 30, cmd: Cmd::Pause }], 60).is_err();
        if present {
            eprintln!(
                "note: the user-pause hot loop is present; `pause` is left out of the command mix of this \
                 property (see rollouts_proptests::findings)"
            );
        }
        present
    })
}

/// `mix` without the commands that trigger a known hot loop, while it is present.
pub fn without_known_hot_loops(mix: CmdMix) -> CmdMix {
    if pause_hot_loop_present() {
        CmdMix { pause: 0, ..mix }
    } else {
        mix
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reported_scenario_parses() {
        assert!(rollouts_core::sim::parse_scenario(super::PAUSE_HOT_LOOP_YAML).is_ok());
    }
}
