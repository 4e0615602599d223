//! Properties of analysis: the AnalysisRun machine driven with random metrics and random
//! answers, and a failing background analysis driven through the simulator.
#![allow(clippy::disallowed_methods)] // PROPTEST_CASES is read from the environment

use std::collections::BTreeMap;

use proptest::prelude::*;
use rollouts_core::analysis::run::{reconcile_run, record_answer, MeasurementAnswer};
use rollouts_core::api::{
    AnalysisPhase, AnalysisRun, AnalysisRunSpec, DryRun, IntOrString, Metric, MetricProvider, PrometheusMetric,
};
use rollouts_core::time::{Seconds, Timestamp};
use serde_json::json;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// One scripted answer: a value judged by `result[0] >= 0.5` (and `< 0.2` fails), or a
/// provider error.
#[derive(Clone, Debug)]
enum Answer {
    Value(f64),
    Error,
}

fn answer_strategy() -> impl Strategy<Value = Answer> {
    prop_oneof![4 => (0.0f64..1.0).prop_map(Answer::Value), 1 => Just(Answer::Error)]
}

#[derive(Clone, Debug)]
struct MetricGen {
    count: i32,
    interval: i64,
    failure_limit: i32,
    inconclusive_limit: i32,
    both_conditions: bool,
    dry_run: bool,
    answers: Vec<Answer>,
}

fn metric_strategy() -> impl Strategy<Value = MetricGen> {
    (1i32..=8, prop_oneof![Just(1i64), Just(10), Just(60), Just(300)], 0i32..=3, 0i32..=2, any::<bool>(), any::<bool>(),
        prop::collection::vec(answer_strategy(), 1..12))
        // Valid metrics only (validation wants count >= each limit): an invalid spec
        // errors the whole run, dry-run or not, which is not what these properties test.
        .prop_map(|(count, interval, failure_limit, inconclusive_limit, both_conditions, dry_run, answers)| MetricGen {
            count,
            interval,
            failure_limit: failure_limit.min(count),
            inconclusive_limit: inconclusive_limit.min(count),
            both_conditions,
            dry_run,
            answers,
        })
}

fn to_metric(i: usize, g: &MetricGen) -> Metric {
    Metric {
        name: format!("m{i}"),
        interval: Some(format!("{}s", g.interval)),
        count: Some(IntOrString::Int(g.count)),
        success_condition: Some("result[0] >= 0.5".into()),
        failure_condition: g.both_conditions.then(|| "result[0] < 0.2".to_string()),
        failure_limit: Some(IntOrString::Int(g.failure_limit)),
        inconclusive_limit: Some(IntOrString::Int(g.inconclusive_limit)),
        provider: MetricProvider {
            prometheus: Some(PrometheusMetric { address: "http://p:9090".into(), query: "q".into(), ..Default::default() }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn run_of(metrics: &[MetricGen], dry_run: bool) -> AnalysisRun {
    AnalysisRun {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("run".into()),
            uid: Some("uid".into()),
            ..Default::default()
        },
        spec: AnalysisRunSpec {
            metrics: metrics.iter().enumerate().map(|(i, g)| to_metric(i, g)).collect(),
            dry_run: metrics
                .iter()
                .enumerate()
                .filter(|(_, g)| dry_run && g.dry_run)
                .map(|(i, _)| DryRun { metric_name: format!("^m{i}$") })
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Drives a run the way the rollout does: reconcile, answer every requested measurement
/// with the metric's next scripted answer, jump to the next wake-up. Returns the final run
/// and how many reconciles it took (`None` when it did not complete within the budget).
fn drive(mut run: AnalysisRun, metrics: &[MetricGen]) -> (AnalysisRun, Option<usize>) {
    let mut now = Timestamp(1_700_000_000);
    let mut given: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..2_000 {
        let out = reconcile_run(&run, now);
        run.status = out.status;
        if run.status.phase.is_some_and(AnalysisPhase::completed) {
            return (run, Some(round));
        }
        let mut answered = false;
        for req in out.measure {
            let i: usize = req.metric.trim_start_matches('m').parse().unwrap_or(0);
            let script = &metrics[i].answers;
            let n = given.entry(req.metric.clone()).or_insert(0);
            let a = &script[(*n).min(script.len() - 1)];
            *n += 1;
            let answer = match a {
                Answer::Value(v) => MeasurementAnswer { value: json!([v]), ..Default::default() },
                Answer::Error => MeasurementAnswer { error: Some("connection refused".into()), ..Default::default() },
            };
            if let Some(s) = record_answer(&run, &req.metric, req.index, &answer, now) {
                run.status = s;
                answered = true;
            }
        }
        if !answered {
            match out.wake {
                Some(w) => now = w,
                None => now = now.plus(Seconds(1)),
            }
        }
    }
    (run, None)
}

fn rank(p: AnalysisPhase) -> u8 {
    // Best to worst: Successful < Running < Pending < Inconclusive < Error < Failed.
    match p {
        AnalysisPhase::Successful => 0,
        AnalysisPhase::Running => 1,
        AnalysisPhase::Pending => 2,
        AnalysisPhase::Inconclusive => 3,
        AnalysisPhase::Error => 4,
        AnalysisPhase::Failed => 5,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// A run whose metrics all have a `count` always completes: every metric takes at most
    /// `count` verdicts plus (consecutiveErrorLimit + 1) errors between them, each at least
    /// one interval (or the 10 s error retry) apart, so the run ends in bounded time.
    #[test]
    fn a_run_with_counts_always_terminates(metrics in prop::collection::vec(metric_strategy(), 1..4)) {
        let (run, rounds) = drive(run_of(&metrics, false), &metrics);
        prop_assert!(rounds.is_some(), "did not complete: {:?}", run.status);
    }

    /// A dry-run metric never changes the run's phase: the run with some metrics in dry-run
    /// mode ends in the same phase as the run of only the other metrics.
    #[test]
    fn a_dry_run_metric_never_changes_the_run_phase(metrics in prop::collection::vec(metric_strategy(), 1..4)) {
        prop_assume!(metrics.iter().any(|m| m.dry_run));
        let (with_dry, _) = drive(run_of(&metrics, true), &metrics);
        let wet: Vec<MetricGen> = metrics.iter().filter(|m| !m.dry_run).cloned().collect();
        let expected = if wet.is_empty() {
            Some(AnalysisPhase::Successful)
        } else {
            // The dry-run metrics are renamed away; the wet ones keep their answers.
            let (alone, _) = drive(run_of(&wet, false), &wet);
            alone.status.phase
        };
        prop_assert_eq!(with_dry.status.phase, expected, "{}", with_dry.status.message);
    }

    /// The run's phase is never better than its worst non-dry-run metric's phase.
    #[test]
    fn the_run_phase_is_never_better_than_its_worst_metric(metrics in prop::collection::vec(metric_strategy(), 1..4)) {
        let (run, _) = drive(run_of(&metrics, true), &metrics);
        let phase = run.status.phase.unwrap_or_default();
        for r in run.status.metric_results.iter().filter(|r| !r.dry_run && r.phase.completed()) {
            prop_assert!(rank(phase) >= rank(r.phase), "run {:?} better than metric {} {:?}", phase, r.name, r.phase);
        }
    }
}

fn background_scenario(replicas: i32, weight: i32, failure_limit: i32, max_surge: i32) -> String {
    format!(
        r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {{name: demo}}
    spec:
      replicas: {replicas}
      selector: {{matchLabels: {{app: demo}}}}
      template:
        metadata: {{labels: {{app: demo}}}}
        spec: {{containers: [{{name: app, image: "app:1"}}]}}
      strategy:
        canary:
          maxSurge: {max_surge}
          maxUnavailable: 1
          analysis: {{templates: [{{templateName: rate}}]}}
          steps: [{{setWeight: {weight}}}, {{pause: {{duration: 1h}}}}, {{setWeight: 100}}, {{pause: {{}}}}]
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {{name: rate}}
    spec:
      metrics:
        - name: rate
          interval: 30s
          failureLimit: {failure_limit}
          successCondition: result[0] >= 0.95
          provider: {{prometheus: {{address: "http://p:9090", query: q}}}}
metrics:
  rate: [{{value: [0.99]}}, {{value: [0.10]}}]
events:
  - {{at: 1m, setImage: {{rollout: demo, container: app, image: "app:2"}}}}
until: 2h
"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// A failing background analysis always ends with the rollout aborted: Degraded,
    /// `setWeight` 0, the stable ReplicaSet back at full size and every other at zero.
    #[test]
    fn a_failing_background_analysis_aborts_to_weight_zero(
        replicas in 1i32..12, weight in 1i32..100, failure_limit in 0i32..4, max_surge in 0i32..3,
    ) {
        let text = background_scenario(replicas, weight, failure_limit, max_surge);
        let sim = rollouts_core::sim::simulate(&rollouts_core::sim::parse_scenario(&text).unwrap()).unwrap();
        let last = &sim.final_state["demo"];
        prop_assert_eq!(last.phase.as_str(), "Degraded", "{}", last.message);
        prop_assert!(last.aborted);
        prop_assert_eq!(last.set_weight, Some(0));
        for rs in &last.replica_sets {
            let want = if rs.hash == last.stable_hash { replicas } else { 0 };
            prop_assert_eq!(rs.desired, want, "revision {}", rs.revision);
        }
        prop_assert_eq!(last.analysis_runs.last().map(|r| r.phase.as_str()), Some("Failed"));
    }
}
