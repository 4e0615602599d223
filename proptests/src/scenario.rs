//! Random user commands at random times, and the simulator scenario they make.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rollouts_core::sim::scenario::{ClusterSpec, ImageBehaviour, MetricAnswer, Promote, RolloutRef, Scale, ScenarioEvent, SetImage};
use rollouts_core::sim::{simulate, Scenario, SimError, Simulation};
use rollouts_core::time::Seconds;

use crate::spec::{RolloutGen, BAD_IMAGE, CONTAINER, IMAGES, ROLLOUT};

/// A user command, as `kubectl argo rollouts` would send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// `set image demo app=IMAGES[i]`.
    SetImage(usize),
    /// `promote`.
    Promote,
    /// `promote --full`.
    PromoteFull,
    /// `abort`.
    Abort,
    /// `retry rollout`.
    Retry,
    /// `pause`.
    Pause,
    /// Clears `spec.paused`.
    Resume,
    /// `scale --replicas N`.
    Scale(i32),
    /// `restart`.
    Restart,
}

impl Cmd {
    /// The scenario event for this command at `at` seconds.
    pub fn event(&self, at: i64) -> ScenarioEvent {
        let r = || RolloutRef { rollout: ROLLOUT.into() };
        let mut ev = ScenarioEvent {
            at: Seconds(at),
            set_image: None,
            promote: None,
            abort: None,
            retry: None,
            pause: None,
            resume: None,
            restart: None,
            undo: None,
            scale: None,
            apply: None,
            delete: None,
            terminate: None,
        };
        match self {
            Cmd::SetImage(i) => {
                ev.set_image =
                    Some(SetImage { rollout: ROLLOUT.into(), container: CONTAINER.into(), image: IMAGES[*i].into() })
            }
            Cmd::Promote => ev.promote = Some(Promote { rollout: ROLLOUT.into(), full: false }),
            Cmd::PromoteFull => ev.promote = Some(Promote { rollout: ROLLOUT.into(), full: true }),
            Cmd::Abort => ev.abort = Some(r()),
            Cmd::Retry => ev.retry = Some(r()),
            Cmd::Pause => ev.pause = Some(r()),
            Cmd::Resume => ev.resume = Some(r()),
            Cmd::Scale(n) => ev.scale = Some(Scale { rollout: ROLLOUT.into(), replicas: *n }),
            Cmd::Restart => ev.restart = Some(r()),
        }
        ev
    }
}

/// A command at a time (seconds from the start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timed {
    /// Seconds from the start.
    pub at: i64,
    /// The command.
    pub cmd: Cmd,
}

/// Which commands a generated sequence may contain, and how often.
#[derive(Clone, Copy, Debug)]
pub struct CmdMix {
    /// Weight of `setImage`.
    pub set_image: u32,
    /// Weight of `promote`.
    pub promote: u32,
    /// Weight of `promote --full`.
    pub promote_full: u32,
    /// Weight of `abort`.
    pub abort: u32,
    /// Weight of `retry`.
    pub retry: u32,
    /// Weight of `pause`.
    pub pause: u32,
    /// Weight of `resume`.
    pub resume: u32,
    /// Weight of `scale`.
    pub scale: u32,
    /// Weight of `restart`.
    pub restart: u32,
    /// Images `setImage` picks from: the first `images` of [`IMAGES`].
    pub images: usize,
    /// Largest `scale` target.
    pub max_replicas: i32,
}

impl CmdMix {
    /// Every command.
    pub const ALL: CmdMix = CmdMix {
        set_image: 4,
        promote: 3,
        promote_full: 1,
        abort: 2,
        retry: 2,
        pause: 1,
        resume: 2,
        scale: 2,
        restart: 1,
        images: IMAGES.len(),
        max_replicas: 50,
    };
}

/// One command drawn from `mix` (commands of weight 0 never appear).
pub fn cmd(mix: CmdMix) -> impl Strategy<Value = Cmd> {
    let arms: Vec<(u32, BoxedStrategy<Cmd>)> = vec![
        (mix.set_image, (0..mix.images.max(1)).prop_map(Cmd::SetImage).boxed()),
        (mix.promote, Just(Cmd::Promote).boxed()),
        (mix.promote_full, Just(Cmd::PromoteFull).boxed()),
        (mix.abort, Just(Cmd::Abort).boxed()),
        (mix.retry, Just(Cmd::Retry).boxed()),
        (mix.pause, Just(Cmd::Pause).boxed()),
        (mix.resume, Just(Cmd::Resume).boxed()),
        (mix.scale, crate::spec::replica_count(0..=mix.max_replicas).prop_map(Cmd::Scale).boxed()),
        (mix.restart, Just(Cmd::Restart).boxed()),
    ];
    proptest::strategy::Union::new_weighted(arms.into_iter().filter(|(w, _)| *w > 0).collect())
}

/// Up to `max_len` commands, the first at `start` + 0–60 s, each next 0–`max_gap` s
/// after the previous (0: the same instant).
pub fn timeline(mix: CmdMix, start: i64, max_len: usize, max_gap: i64) -> impl Strategy<Value = Vec<Timed>> {
    (0..=60i64, prop::collection::vec((0..=max_gap, cmd(mix)), 0..=max_len)).prop_map(move |(first, cmds)| {
        let mut at = start + first;
        cmds.into_iter()
            .map(|(gap, cmd)| {
                at += gap;
                Timed { at, cmd }
            })
            .collect()
    })
}

/// A scenario: one rollout, how its pods behave, the user's commands, and when to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioGen {
    /// The rollout.
    pub rollout: RolloutGen,
    /// Seconds from pod creation to Ready.
    pub pod_startup: i64,
    /// Whether [`IMAGES`]`[BAD_IMAGE]` never becomes ready.
    pub bad_image: bool,
    /// The commands, in time order.
    pub events: Vec<Timed>,
    /// Seconds simulated after the last command.
    pub tail: i64,
}

impl ScenarioGen {
    /// The time the simulation stops.
    pub fn until(&self) -> i64 {
        self.events.last().map_or(0, |e| e.at) + self.tail
    }

    /// The simulator scenario.
    pub fn scenario(&self) -> Scenario {
        let mut images = BTreeMap::new();
        if self.bad_image {
            images.insert(IMAGES[BAD_IMAGE].to_string(), ImageBehaviour { ready: false, startup: None });
        }
        // Experiment analyses: a template per scripted outcome, its one metric answering
        // that phase after the scripted delay.
        let outcomes = self.rollout.experiment_outcomes();
        let mut objects: Vec<_> = outcomes.keys().map(|name| crate::experiments::outcome_template_manifest(name)).collect();
        objects.extend(self.rollout.objects());
        let metrics = outcomes
            .into_iter()
            .map(|(name, (phase, after))| {
                (name, vec![MetricAnswer { phase: Some(phase), after: Some(Seconds(after)), ..MetricAnswer::default() }])
            })
            .collect();
        Scenario {
            name: Some("generated".into()),
            objects,
            cluster: ClusterSpec { pod_startup: Seconds(self.pod_startup), images },
            metrics,
            events: self.events.iter().map(|e| e.cmd.event(e.at)).collect(),
            until: Some(Seconds(self.until())),
            expect: Vec::new(),
        }
    }

    /// Simulates the scenario. A hot loop gives `Ok(None)`: the property that reports it
    /// is `controller_settles_at_every_instant` (tests/settling.rs), and the others have
    /// no timeline to check. Any other simulator error fails the case: generated commands
    /// are always applicable.
    pub fn simulate(&self) -> Result<Option<Simulation>, TestCaseError> {
        match simulate(&self.scenario()) {
            Ok(s) => Ok(Some(s)),
            Err(SimError::HotLoop { .. }) => Ok(None),
            Err(e) => Err(TestCaseError::fail(format!("simulation failed: {e}\nscenario:\n{}", self.yaml()))),
        }
    }

    /// The scenario as YAML, for reporting a failing case.
    pub fn yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.scenario()).unwrap_or_else(|e| format!("<unrenderable: {e}>"))
    }

    /// `spec.replicas` in effect at `t` (commands at `t` included: the simulator applies
    /// them before it reconciles and records the instant).
    pub fn replicas_at(&self, t: i64) -> i32 {
        self.events.iter().take_while(|e| e.at <= t).fold(self.rollout.replicas(), |r, e| {
            if let Cmd::Scale(n) = e.cmd {
                n
            } else {
                r
            }
        })
    }

    /// Whether a `scale` command lowered `spec.replicas` at or before `t`.
    pub fn scaled_down_by(&self, t: i64) -> bool {
        let mut r = self.rollout.replicas();
        for e in self.events.iter().take_while(|e| e.at <= t) {
            if let Cmd::Scale(n) = e.cmd {
                if n < r {
                    return true;
                }
                r = n;
            }
        }
        false
    }

    /// Whether a `restart` command was given at or before `t`.
    pub fn restarted_by(&self, t: i64) -> bool {
        self.events.iter().take_while(|e| e.at <= t).any(|e| e.cmd == Cmd::Restart)
    }

    /// `minReadySeconds` of the rollout.
    pub fn min_ready_seconds(&self) -> i64 {
        i64::from(self.rollout.common.min_ready_seconds.unwrap_or(0))
    }
}

/// A scenario for `rollout` with commands from `mix` (at most `max_events`), pods that
/// start in 1–5 s, the bad image never ready when `bad_image`, and `tail` seconds after
/// the last command. The first command comes after the initial deploy has settled or
/// not (0–60 s + up to 60 s).
pub fn scenario(
    rollout: impl Strategy<Value = RolloutGen>,
    mix: CmdMix,
    max_events: usize,
    bad_image: impl Strategy<Value = bool>,
    tail: i64,
) -> impl Strategy<Value = ScenarioGen> {
    (rollout, 1..=5i64, bad_image, timeline(mix, 0, max_events, 120)).prop_map(
        move |(rollout, pod_startup, bad_image, events)| ScenarioGen { rollout, pod_startup, bad_image, events, tail },
    )
}
