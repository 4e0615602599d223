//! Experiments: invariants of `rollouts_core::experiment::reconcile` over random specs,
//! pod behaviours, analysis outcomes and terminate times, driven on the core's
//! `ExperimentWorld` with a virtual clock that jumps to the next thing that happens.

use proptest::prelude::*;
use rollouts_core::api::{AnalysisPhase, AnalysisTemplate, Experiment};
use rollouts_core::experiment::world::ExperimentWorld;
use rollouts_core::objects::ReplicaSetExt;
use rollouts_core::time::{Seconds, Timestamp};
use serde_json::json;

const T0: Timestamp = Timestamp(1_700_000_000);

/// One analysis: whether it is required, and the phases its run goes through (at seconds
/// after the run is first seen).
#[derive(Clone, Debug)]
struct AnalysisGen {
    required: bool,
    script: Vec<(i64, AnalysisPhase)>,
}

#[derive(Clone, Debug)]
struct ExperimentGen {
    /// Per template: replicas, and whether its pods never become available.
    templates: Vec<(Option<i32>, bool)>,
    duration: Option<i64>,
    progress_deadline: Option<i32>,
    scale_down_delay: Option<i32>,
    pod_startup: i64,
    analyses: Vec<AnalysisGen>,
    /// Seconds after the start at which `spec.terminate` is set.
    terminate_at: Option<i64>,
}

fn phase() -> impl Strategy<Value = AnalysisPhase> {
    prop::sample::select(vec![
        AnalysisPhase::Running,
        AnalysisPhase::Successful,
        AnalysisPhase::Failed,
        AnalysisPhase::Error,
        AnalysisPhase::Inconclusive,
    ])
}

fn analysis(completes: bool) -> impl Strategy<Value = AnalysisGen> {
    (any::<bool>(), prop::collection::vec((0i64..300, phase()), 0..3), phase()).prop_map(
        move |(required, mut script, last)| {
            script.sort_by_key(|(t, _)| *t);
            if completes {
                let end = script.last().map_or(0, |(t, _)| *t) + 1;
                let last = if last == AnalysisPhase::Running { AnalysisPhase::Successful } else { last };
                script.push((end, last));
            }
            AnalysisGen { required, script }
        },
    )
}

fn experiment_gen(with_duration: bool, runs_complete: bool) -> impl Strategy<Value = ExperimentGen> {
    (
        prop::collection::vec((prop::option::of(0i32..3), prop::bool::weighted(0.2)), 1..=3),
        if with_duration { (1i64..600).prop_map(Some).boxed() } else { prop::option::of(1i64..600).boxed() },
        prop::option::of(5i32..200),
        prop::option::of(0i32..90),
        0i64..30,
        prop::collection::vec(analysis(runs_complete), 0..=2),
        prop::option::of(0i64..900),
    )
        .prop_map(|(templates, duration, progress_deadline, scale_down_delay, pod_startup, analyses, terminate_at)| {
            ExperimentGen { templates, duration, progress_deadline, scale_down_delay, pod_startup, analyses, terminate_at }
        })
}

fn build(g: &ExperimentGen) -> ExperimentWorld {
    let templates: Vec<_> = g
        .templates
        .iter()
        .enumerate()
        .map(|(i, (replicas, _))| {
            let mut t = json!({
                "name": format!("t{i}"),
                "selector": {"matchLabels": {"app": format!("t{i}")}},
                "template": {"metadata": {"labels": {"app": format!("t{i}")}},
                             "spec": {"containers": [{"name": "c", "image": format!("img:{i}"),
                                                      "ports": [{"containerPort": 80}]}]}},
                "service": {},
            });
            if let Some(r) = replicas {
                t["replicas"] = json!(r);
            }
            t
        })
        .collect();
    let mut spec = json!({"templates": templates});
    if let Some(d) = g.duration {
        spec["duration"] = json!(format!("{d}s"));
    }
    if let Some(p) = g.progress_deadline {
        spec["progressDeadlineSeconds"] = json!(p);
    }
    if let Some(s) = g.scale_down_delay {
        spec["scaleDownDelaySeconds"] = json!(s);
    }
    spec["analyses"] = json!(g
        .analyses
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"name": format!("a{i}"), "templateName": "t", "requiredForCompletion": a.required}))
        .collect::<Vec<_>>());
    let ex: Experiment = serde_json::from_value(json!({
        "metadata": {"name": "ex", "namespace": "default", "uid": "u"},
        "spec": spec,
    }))
    .expect("experiment decodes");
    let mut w = ExperimentWorld::new(ex);
    w.pod_startup = Seconds(g.pod_startup);
    for (i, (_, never_ready)) in g.templates.iter().enumerate() {
        if *never_ready {
            w.never_ready.insert(format!("ex-t{i}"));
        }
    }
    let template: AnalysisTemplate =
        serde_json::from_value(json!({"metadata": {"name": "t"}, "spec": {"metrics": [{"name": "m", "provider": {"job": {"spec": {}}}}]}}))
            .expect("template decodes");
    w.analysis_templates.insert("t".into(), Ok(template));
    w
}

/// What one run looked like at a time: the experiment's phase, its required analyses'
/// recorded phases (with whether a run exists), and every template ReplicaSet's size.
#[derive(Debug)]
struct Snapshot {
    t: i64,
    phase: Option<AnalysisPhase>,
    required: Vec<(Option<AnalysisPhase>, bool)>,
    sizes: Vec<i32>,
}

/// Drives the world until `horizon` seconds after the start: at each moment the runs'
/// scripts and the terminate command are applied, then the experiment reconciled; time
/// jumps to the earliest of the experiment's wake-up, a pod change, a script step and the
/// terminate time. Bounded by a step count.
fn drive(g: &ExperimentGen, horizon: i64) -> (ExperimentWorld, Vec<Snapshot>) {
    let mut w = build(g);
    let mut now = T0;
    let mut first_seen: Vec<Option<Timestamp>> = vec![None; g.analyses.len()];
    let mut snaps = Vec::new();
    let end = T0.plus(Seconds(horizon));
    for _ in 0..2000 {
        if g.terminate_at.is_some_and(|t| now >= T0.plus(Seconds(t))) {
            w.experiment.spec.terminate = true;
        }
        // Scripted run phases (a completed run stays completed, as a real one does).
        for (i, a) in g.analyses.iter().enumerate() {
            let name = format!("ex-a{i}");
            let Some(run) = w.analysis_runs.get(&name) else { continue };
            let seen = *first_seen[i].get_or_insert(now);
            if run.status.phase.is_some_and(AnalysisPhase::completed) {
                continue;
            }
            if let Some((_, p)) = a.script.iter().rev().find(|(t, _)| now >= seen.plus(Seconds(*t))) {
                w.set_run_phase(&name, *p, "");
            }
        }
        let before = w.experiment.status.clone();
        let r = w.reconcile(now);
        snaps.push(Snapshot {
            t: now.since(T0).0,
            phase: w.experiment.status.phase,
            required: g
                .analyses
                .iter()
                .enumerate()
                .filter(|(_, a)| a.required)
                .map(|(i, _)| {
                    let s = w.experiment.status.analysis_runs.iter().find(|s| s.name == format!("a{i}"));
                    (s.and_then(|s| s.phase), s.is_some_and(|s| !s.analysis_run.is_empty()))
                })
                .collect(),
            sizes: w.replica_sets.values().map(|rs| rs.spec_replicas()).collect(),
        });
        if r.actions.iter().any(|a| a.is_mutating()) || r.status != before {
            continue; // the world changed: reconcile again at the same time
        }
        let mut next: Vec<Timestamp> = [r.wake.map(|w| w.at), w.next_pod_change(now)].into_iter().flatten().collect();
        if let Some(t) = g.terminate_at {
            next.push(T0.plus(Seconds(t)));
        }
        for (i, a) in g.analyses.iter().enumerate() {
            if let Some(seen) = first_seen[i] {
                next.extend(a.script.iter().map(|(t, _)| seen.plus(Seconds(*t))));
            }
        }
        match next.into_iter().filter(|t| *t > now && *t <= end).min() {
            Some(t) => now = t,
            None => break,
        }
    }
    (w, snaps)
}

fn bad(p: Option<AnalysisPhase>) -> bool {
    matches!(p, Some(AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive))
}

proptest! {
    #![proptest_config(rollouts_proptests::config())]

    /// With a duration, and analyses whose runs all end, the experiment always ends, and
    /// every template ReplicaSet ends at size 0.
    #[test]
    fn an_experiment_with_a_duration_always_ends(g in experiment_gen(true, true)) {
        let (w, snaps) = drive(&g, 6 * 3600);
        let last = snaps.last().expect("one reconcile at least");
        prop_assert!(last.phase.is_some_and(AnalysisPhase::completed), "not finished: {last:?}\n{g:#?}");
        prop_assert!(w.replica_sets.values().all(|rs| rs.spec_replicas() == 0), "{:?}\n{g:#?}", last.sizes);
    }

    /// Once `terminate` is set, every template is at size 0 when the scale-down delay has
    /// passed, and the experiment has ended.
    #[test]
    fn terminating_scales_every_template_to_zero_after_the_delay(mut g in experiment_gen(false, false), at in 0i64..900) {
        g.terminate_at = Some(at);
        let delay = i64::from(g.scale_down_delay.unwrap_or(30).max(0));
        let (w, snaps) = drive(&g, at + delay + 1);
        let by = snaps.iter().filter(|s| s.t >= at + delay).collect::<Vec<_>>();
        let last = snaps.last().expect("one reconcile at least");
        // The drive stops early only when nothing more would happen: the last state holds then.
        prop_assert!(by.iter().all(|s| s.sizes.iter().all(|n| *n == 0)), "{by:?}\n{g:#?}");
        prop_assert!(w.replica_sets.values().all(|rs| rs.spec_replicas() == 0));
        prop_assert!(last.phase.is_some_and(AnalysisPhase::completed), "{last:?}");
    }

    /// The experiment is never better than its worst required analysis: while a required
    /// analysis is Failed, Error or Inconclusive, the experiment is not Successful (and a
    /// completed experiment with such an analysis is itself Failed, Error or
    /// Inconclusive); a Successful experiment has every started required analysis Successful.
    #[test]
    fn the_phase_is_never_better_than_its_worst_required_analysis(g in experiment_gen(false, false)) {
        let (_, snaps) = drive(&g, 6 * 3600);
        for s in &snaps {
            if s.required.iter().any(|(p, _)| bad(*p)) {
                prop_assert!(s.phase != Some(AnalysisPhase::Successful), "{s:?}\n{g:#?}");
                if s.phase.is_some_and(AnalysisPhase::completed) {
                    prop_assert!(bad(s.phase), "{s:?}");
                }
            }
            if s.phase == Some(AnalysisPhase::Successful) {
                for (p, started) in &s.required {
                    prop_assert!(!started || *p == Some(AnalysisPhase::Successful), "{s:?}\n{g:#?}");
                }
            }
        }
    }

    /// Same input, same run: actions, times and the final Experiment.
    #[test]
    fn experiments_are_deterministic(g in experiment_gen(false, false)) {
        let (a, _) = drive(&g, 3600);
        let (b, _) = drive(&g, 3600);
        prop_assert_eq!(&a.log, &b.log);
        prop_assert_eq!(&a.experiment, &b.experiment);
    }
}
