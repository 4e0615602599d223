//! Table tests of the AnalysisRun machine: scenarios.md Part C and A.9.

use super::*;
use crate::api::{DryRun, JobMetric, MeasurementRetention, PrometheusMetric, WebMetric};

const BASE: i64 = 1_700_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp(BASE + s)
}

fn prometheus() -> MetricProvider {
    MetricProvider {
        prometheus: Some(PrometheusMetric {
            address: "http://prometheus.example:9090".into(),
            query: "sum(up)".into(),
            ..PrometheusMetric::default()
        }),
        ..MetricProvider::default()
    }
}

fn job() -> MetricProvider {
    MetricProvider {
        job: Some(JobMetric::default()),
        ..MetricProvider::default()
    }
}

fn web() -> MetricProvider {
    MetricProvider {
        web: Some(WebMetric {
            url: "http://web.example/metric".into(),
            ..WebMetric::default()
        }),
        ..MetricProvider::default()
    }
}

/// A metric measured with Prometheus, adjusted by `f`.
fn metric(name: &str, f: impl FnOnce(&mut Metric)) -> Metric {
    let mut m = Metric {
        name: name.into(),
        provider: prometheus(),
        ..Metric::default()
    };
    f(&mut m);
    m
}

/// A metric without provider, for the rule tables that never validate.
fn bare(name: &str, f: impl FnOnce(&mut Metric)) -> Metric {
    let mut m = Metric {
        name: name.into(),
        ..Metric::default()
    };
    f(&mut m);
    m
}

fn int(n: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(n))
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn new_run(metrics: Vec<Metric>) -> AnalysisRun {
    let mut run = AnalysisRun::default();
    run.spec.metrics = metrics;
    run
}

fn finished(phase: AnalysisPhase, at: Timestamp) -> Measurement {
    Measurement {
        phase,
        started_at: Some(at),
        finished_at: Some(at),
        ..Measurement::default()
    }
}

fn in_flight(started: Timestamp) -> Measurement {
    Measurement {
        phase: AnalysisPhase::Running,
        started_at: Some(started),
        ..Measurement::default()
    }
}

fn result(name: &str, phase: AnalysisPhase, measurements: Vec<Measurement>) -> MetricResult {
    MetricResult {
        name: name.into(),
        phase,
        measurements,
        ..MetricResult::default()
    }
}

fn answer(phase: AnalysisPhase) -> MeasurementAnswer {
    MeasurementAnswer {
        phase: Some(phase),
        ..MeasurementAnswer::default()
    }
}

fn error_answer(message: &str) -> MeasurementAnswer {
    MeasurementAnswer {
        error: Some(message.into()),
        ..MeasurementAnswer::default()
    }
}

fn dry(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn summary(
    count: i32,
    successful: i32,
    failed: i32,
    inconclusive: i32,
    error: i32,
) -> Option<RunSummary> {
    Some(RunSummary {
        count,
        successful,
        failed,
        inconclusive,
        error,
    })
}

/// Reconciles, answers every request with `answer_for`, and reconciles again whenever
/// the status changed, jumping to `wake` otherwise, until the run completes.
/// Returns the run and the number of measurements answered.
fn drive(
    mut run: AnalysisRun,
    start: Timestamp,
    mut answer_for: impl FnMut(&MeasureRequest) -> MeasurementAnswer,
) -> (AnalysisRun, usize) {
    let mut now = start;
    let mut answered = 0;
    for _ in 0..10_000 {
        let before = run.status.clone();
        let r = reconcile_run(&run, now);
        run.status = r.status;
        if is_completed(&run.status) {
            return (run, answered);
        }
        for req in &r.measure {
            run.status = record_answer(&run, &req.metric, req.index, &answer_for(req), now)
                .expect("a fresh request takes its answer");
            answered += 1;
        }
        if !r.measure.is_empty() || run.status != before {
            continue;
        }
        let wake = r
            .wake
            .expect("an unfinished run always has something to wait for");
        assert!(wake > now, "wake {wake:?} must be after now {now:?}");
        now = wake;
    }
    panic!("run did not complete: {:#?}", run.status);
}

// ---- C1: assessMetricStatus --------------------------------------------------------

#[test]
fn c1_metric_phase_table() {
    use AnalysisPhase::{Error, Failed, Inconclusive, Pending, Running, Successful};
    let done = |p| finished(p, t(-60));
    let counted = |f: i32, s: i32, cs: i32, c: i32, last: AnalysisPhase| MetricResult {
        failed: f,
        successful: s,
        consecutive_success: cs,
        count: c,
        measurements: vec![done(last)],
        ..MetricResult::default()
    };
    let fl_csl = |fl: i32, csl: i32, count: Option<i32>| {
        bare("m", |m| {
            m.failure_limit = int(fl);
            m.consecutive_success_limit = int(csl);
            m.interval = s("60s");
            m.count = count.and_then(int);
        })
    };
    // (id, metric, result, not terminating, terminating)
    let rows: Vec<(
        &str,
        Metric,
        MetricResult,
        AnalysisPhase,
        Option<AnalysisPhase>,
    )> = vec![
        (
            "C1-1",
            bare("m", |_| {}),
            MetricResult::default(),
            Pending,
            Some(Successful),
        ),
        (
            "C1-2",
            bare("m", |_| {}),
            MetricResult {
                measurements: vec![done(Successful), in_flight(t(0))],
                ..MetricResult::default()
            },
            Running,
            Some(Running),
        ),
        (
            "C1-3",
            bare("m", |m| {
                m.failure_limit = int(2);
                m.interval = s("60s");
            }),
            MetricResult {
                failed: 3,
                count: 3,
                measurements: vec![done(Failed)],
                ..MetricResult::default()
            },
            Failed,
            Some(Failed),
        ),
        (
            "C1-4",
            bare("m", |m| {
                m.failure_limit = int(3);
                m.interval = s("60s");
            }),
            MetricResult {
                failed: 3,
                count: 3,
                measurements: vec![done(Failed)],
                ..MetricResult::default()
            },
            Running,
            Some(Successful),
        ),
        (
            "C1-5",
            fl_csl(-1, 3, None),
            counted(3, 4, 3, 7, Failed),
            Successful,
            Some(Successful),
        ),
        (
            "C1-6",
            fl_csl(-1, 5, None),
            counted(3, 4, 3, 7, Failed),
            Running,
            Some(Successful),
        ),
        (
            "C1-7",
            fl_csl(-1, 5, Some(7)),
            counted(3, 4, 3, 7, Failed),
            Failed,
            Some(Failed),
        ),
        (
            "C1-8",
            fl_csl(-1, 3, Some(7)),
            counted(3, 4, 3, 7, Failed),
            Successful,
            Some(Successful),
        ),
        (
            "C1-9",
            fl_csl(-1, 3, Some(9)),
            counted(3, 4, 3, 7, Failed),
            Successful,
            Some(Successful),
        ),
        (
            "C1-10",
            fl_csl(-1, 5, Some(9)),
            counted(3, 4, 3, 7, Failed),
            Running,
            Some(Successful),
        ),
        (
            "C1-11",
            fl_csl(4, 4, None),
            counted(3, 4, 3, 7, Successful),
            Running,
            Some(Successful),
        ),
        (
            "C1-12",
            fl_csl(4, 4, None),
            counted(5, 9, 0, 9, Failed),
            Failed,
            Some(Failed),
        ),
        (
            "C1-13",
            fl_csl(4, 4, None),
            counted(3, 5, 4, 8, Successful),
            Successful,
            Some(Successful),
        ),
        (
            "C1-14",
            fl_csl(4, 4, None),
            counted(5, 5, 4, 10, Successful),
            Failed,
            Some(Failed),
        ),
        (
            "C1-15",
            fl_csl(4, 4, Some(10)),
            counted(4, 6, 3, 10, Successful),
            Inconclusive,
            Some(Inconclusive),
        ),
        (
            "C1-16",
            fl_csl(4, 4, Some(10)),
            counted(5, 5, 3, 10, Successful),
            Failed,
            Some(Failed),
        ),
        (
            "C1-17",
            fl_csl(4, 4, Some(10)),
            counted(4, 6, 4, 10, Successful),
            Successful,
            Some(Successful),
        ),
        (
            "C1-18",
            fl_csl(4, 4, Some(10)),
            counted(5, 5, 4, 10, Successful),
            Failed,
            Some(Failed),
        ),
        (
            "C1-19",
            fl_csl(4, 4, Some(10)),
            counted(3, 5, 3, 8, Successful),
            Running,
            Some(Successful),
        ),
        (
            "C1-20",
            fl_csl(4, 4, Some(10)),
            counted(5, 3, 3, 8, Successful),
            Failed,
            Some(Failed),
        ),
        (
            "C1-21",
            fl_csl(4, 4, Some(10)),
            counted(3, 5, 4, 8, Successful),
            Successful,
            Some(Successful),
        ),
        (
            "C1-22",
            fl_csl(4, 4, Some(10)),
            counted(5, 4, 4, 9, Successful),
            Failed,
            Some(Failed),
        ),
        (
            "C1-23",
            bare("m", |m| {
                m.inconclusive_limit = int(2);
                m.interval = s("60s");
            }),
            MetricResult {
                inconclusive: 3,
                count: 3,
                measurements: vec![done(Inconclusive)],
                ..MetricResult::default()
            },
            Inconclusive,
            Some(Inconclusive),
        ),
        (
            "C1-24",
            bare("m", |m| {
                m.inconclusive_limit = int(3);
                m.interval = s("60s");
            }),
            MetricResult {
                inconclusive: 3,
                count: 3,
                measurements: vec![done(Inconclusive)],
                ..MetricResult::default()
            },
            Running,
            Some(Successful),
        ),
        (
            "C1-25",
            bare("m", |m| m.interval = s("60s")),
            MetricResult {
                consecutive_error: 5,
                count: 5,
                measurements: vec![done(Error)],
                ..MetricResult::default()
            },
            Error,
            Some(Error),
        ),
        (
            "C1-26",
            bare("m", |m| m.interval = s("60s")),
            MetricResult {
                consecutive_error: 4,
                count: 5,
                measurements: vec![done(Error)],
                ..MetricResult::default()
            },
            Running,
            Some(Successful),
        ),
        (
            "C1-27",
            bare("m", |m| m.count = int(10)),
            MetricResult {
                successful: 10,
                count: 10,
                measurements: vec![done(Successful)],
                ..MetricResult::default()
            },
            Successful,
            None,
        ),
        (
            "C1-28",
            bare("m", |m| m.count = int(10)),
            MetricResult {
                successful: 5,
                inconclusive: 5,
                count: 10,
                measurements: vec![done(Successful)],
                ..MetricResult::default()
            },
            Inconclusive,
            None,
        ),
        (
            "C1-29",
            bare("m", |_| {}),
            MetricResult {
                failed: 1,
                measurements: vec![finished(Failed, t(0))],
                ..MetricResult::default()
            },
            Failed,
            Some(Failed),
        ),
        (
            "C1-30",
            bare("m", |_| {}),
            MetricResult {
                inconclusive: 1,
                measurements: vec![finished(Inconclusive, t(0))],
                ..MetricResult::default()
            },
            Inconclusive,
            Some(Inconclusive),
        ),
        (
            "C1-31",
            bare("m", |_| {}),
            MetricResult {
                consecutive_error: 5,
                measurements: vec![finished(Error, t(0))],
                ..MetricResult::default()
            },
            Error,
            Some(Error),
        ),
    ];
    assert_eq!(rows.len(), 31);
    for (id, metric, result, running, terminating) in rows {
        assert_eq!(
            assess_metric(&metric, &result, false),
            running,
            "{id} (not terminating)"
        );
        if let Some(expected) = terminating {
            assert_eq!(
                assess_metric(&metric, &result, true),
                expected,
                "{id} (terminating)"
            );
        }
    }
}

#[test]
fn c1_29_to_31_limit_messages() {
    let m = bare("m", |_| {});
    let failed = MetricResult {
        failed: 1,
        ..MetricResult::default()
    };
    let inconclusive = MetricResult {
        inconclusive: 1,
        ..MetricResult::default()
    };
    let errors = MetricResult {
        consecutive_error: 5,
        ..MetricResult::default()
    };
    assert_eq!(
        limit_check(&m, &failed),
        Some((
            AnalysisPhase::Failed,
            "failed (1) > failureLimit (0)".into()
        ))
    );
    assert_eq!(
        limit_check(&m, &inconclusive),
        Some((
            AnalysisPhase::Inconclusive,
            "inconclusive (1) > inconclusiveLimit (0)".into()
        ))
    );
    assert_eq!(
        limit_check(&m, &errors),
        Some((
            AnalysisPhase::Error,
            "consecutiveErrors (5) > consecutiveErrorLimit (4)".into()
        ))
    );
    // Later checks overwrite earlier ones.
    let all = MetricResult {
        failed: 1,
        inconclusive: 1,
        consecutive_error: 5,
        ..MetricResult::default()
    };
    assert_eq!(
        limit_check(&m, &all).map(|h| h.0),
        Some(AnalysisPhase::Error)
    );
}

// ---- C2: run-level cases -----------------------------------------------------------

/// Argo's `newTerminatingRun`: run-forever (Job) in flight, failed-metric (Job)
/// completed with `phase`.
fn terminating_run(phase: AnalysisPhase, dry_run: bool) -> AnalysisRun {
    let mut run = new_run(vec![
        metric("run-forever", |m| m.provider = job()),
        metric("failed-metric", |m| m.provider = job()),
    ]);
    if dry_run {
        run.spec.dry_run = vec![
            DryRun {
                metric_name: "run-forever".into(),
            },
            DryRun {
                metric_name: "failed-metric".into(),
            },
        ];
    }
    let mut failed = MetricResult {
        name: "failed-metric".into(),
        phase,
        count: 1,
        dry_run,
        measurements: vec![finished(phase, t(-60))],
        ..MetricResult::default()
    };
    match phase {
        AnalysisPhase::Failed => failed.failed = 1,
        AnalysisPhase::Inconclusive => failed.inconclusive = 1,
        AnalysisPhase::Error => {
            failed.error = 1;
            failed.measurements = vec![finished(AnalysisPhase::Error, t(-120))];
        }
        AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Successful => {}
    }
    run.status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        started_at: Some(t(-60)),
        metric_results: vec![
            MetricResult {
                dry_run,
                ..result(
                    "run-forever",
                    AnalysisPhase::Running,
                    vec![in_flight(t(-60))],
                )
            },
            failed,
        ],
        ..AnalysisRunStatus::default()
    };
    run
}

fn dry_set(rules: &[DryRun]) -> BTreeSet<String> {
    rules.iter().map(|d| d.metric_name.clone()).collect()
}

#[test]
fn c2_01_a_running_metric_keeps_the_run_running() {
    let metrics = vec![bare("latency", |_| {}), bare("success-rate", |_| {})];
    let mut status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        metric_results: vec![
            result("latency", AnalysisPhase::Successful, vec![]),
            result("success-rate", AnalysisPhase::Running, vec![]),
        ],
        ..AnalysisRunStatus::default()
    };
    assert_eq!(
        assess_run(&mut status, &metrics, &dry(&[]), false),
        (AnalysisPhase::Running, String::new())
    );
}

#[test]
fn c2_02_the_worst_completed_metric_decides() {
    let metrics = vec![bare("latency", |_| {}), bare("success-rate", |_| {})];
    let mut status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        metric_results: vec![
            result("latency", AnalysisPhase::Successful, vec![]),
            result("success-rate", AnalysisPhase::Failed, vec![]),
        ],
        ..AnalysisRunStatus::default()
    };
    assert_eq!(
        assess_run(&mut status, &metrics, &dry(&[]), false),
        (AnalysisPhase::Failed, String::new())
    );
}

fn update_result_run() -> AnalysisRun {
    let mut run = new_run(vec![
        metric("sleep-infinity", |m| m.provider = job()),
        metric("fail-after-30", |m| {
            m.provider = job();
            m.count = int(1);
        }),
    ]);
    run.status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        started_at: Some(t(-60)),
        metric_results: vec![
            result(
                "sleep-infinity",
                AnalysisPhase::Running,
                vec![in_flight(t(-60))],
            ),
            MetricResult {
                count: 1,
                failed: 1,
                ..result(
                    "fail-after-30",
                    AnalysisPhase::Running,
                    vec![finished(AnalysisPhase::Failed, t(0))],
                )
            },
        ],
        ..AnalysisRunStatus::default()
    };
    run
}

#[test]
fn c2_03_a_failing_metric_flips_first_and_fails_the_run_on_the_next_reconcile() {
    let run = update_result_run();
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Running));
    assert_eq!(r.status.message, "");
    assert_eq!(r.status.metric_results[1].phase, AnalysisPhase::Failed);
    assert_eq!(r.status.metric_results[0].phase, AnalysisPhase::Running);
    assert!(r.measure.is_empty() && r.terminated.is_empty());
    // The Job in flight has no timer of its own: only a re-reconcile moves on.
    assert_eq!(r.wake, None);
}

#[test]
fn c2_04_a_terminating_run_stops_the_sibling_and_takes_the_failed_phase() {
    for phase in [
        AnalysisPhase::Failed,
        AnalysisPhase::Inconclusive,
        AnalysisPhase::Error,
    ] {
        let run = terminating_run(phase, false);
        let r = reconcile_run(&run, t(0));
        assert_eq!(r.status.phase, Some(phase), "{phase:?}");
        assert_eq!(r.status.completed_at, Some(t(0)));
        assert_eq!(r.status.metric_results[1].phase, phase);
        let forever = &r.status.metric_results[0];
        assert_eq!(forever.phase, AnalysisPhase::Successful);
        assert_eq!(forever.message, "Metric Terminated");
        // Adapted: the stopped measurement is always Successful here (Argo asks the
        // provider's Terminate, which may say Inconclusive).
        assert_eq!(forever.measurements[0].phase, AnalysisPhase::Successful);
        assert_eq!(forever.measurements[0].message, "Metric Terminated");
        assert_eq!(forever.measurements[0].finished_at, Some(t(0)));
        assert_eq!((forever.count, forever.successful), (1, 1));
        assert_eq!(r.terminated, vec![("run-forever".to_string(), 1)]);
        assert!(r.measure.is_empty());
        assert_eq!(r.wake, None);
    }
}

fn preset_forever(run: &mut AnalysisRun, phase: AnalysisPhase, failed: i32) {
    run.status.metric_results[0].phase = phase;
    run.status.metric_results[0].failed = failed;
}

#[test]
fn c2_05_the_run_message_names_the_failed_metric_and_its_limit() {
    let mut run = terminating_run(AnalysisPhase::Failed, false);
    preset_forever(&mut run, AnalysisPhase::Successful, 0);
    let (phase, message) = assess_run(
        &mut run.status,
        &run.spec.metrics,
        &dry_set(&run.spec.dry_run),
        false,
    );
    assert_eq!(phase, AnalysisPhase::Failed);
    assert_eq!(
        message,
        "Metric \"failed-metric\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert_eq!(run.status.dry_run_summary, summary(0, 0, 0, 0, 0));
    assert_eq!(run.status.run_summary, summary(2, 1, 1, 0, 0));
}

#[test]
fn c2_06_dry_run_failures_leave_the_run_successful() {
    let mut run = terminating_run(AnalysisPhase::Failed, true);
    preset_forever(&mut run, AnalysisPhase::Successful, 0);
    let (phase, message) = assess_run(
        &mut run.status,
        &run.spec.metrics,
        &dry_set(&run.spec.dry_run),
        false,
    );
    assert_eq!((phase, message.as_str()), (AnalysisPhase::Successful, ""));
    assert_eq!(run.status.dry_run_summary, summary(2, 1, 1, 0, 0));
    assert_eq!(run.status.run_summary, summary(0, 0, 0, 0, 0));
}

#[test]
fn c2_07_the_provider_message_is_appended() {
    let mut run = terminating_run(AnalysisPhase::Failed, false);
    preset_forever(&mut run, AnalysisPhase::Successful, 0);
    run.status.metric_results[1].message = "Provider Error".into();
    let (phase, message) = assess_run(
        &mut run.status,
        &run.spec.metrics,
        &dry_set(&run.spec.dry_run),
        false,
    );
    assert_eq!(phase, AnalysisPhase::Failed);
    assert_eq!(
        message,
        "Metric \"failed-metric\" assessed Failed due to failed (1) > failureLimit (0): \"Error Message: Provider Error\""
    );
    assert_eq!(run.status.dry_run_summary, summary(0, 0, 0, 0, 0));
}

#[test]
fn c2_08_the_provider_message_of_a_dry_run_metric_is_not() {
    let mut run = terminating_run(AnalysisPhase::Failed, true);
    preset_forever(&mut run, AnalysisPhase::Successful, 0);
    run.status.metric_results[1].message = "Provider Error".into();
    let (phase, message) = assess_run(
        &mut run.status,
        &run.spec.metrics,
        &dry_set(&run.spec.dry_run),
        false,
    );
    assert_eq!((phase, message.as_str()), (AnalysisPhase::Successful, ""));
    assert_eq!(run.status.dry_run_summary, summary(2, 1, 1, 0, 0));
}

#[test]
fn c2_09_with_several_failures_the_first_in_spec_order_is_named() {
    let mut run = terminating_run(AnalysisPhase::Failed, false);
    preset_forever(&mut run, AnalysisPhase::Failed, 1);
    let (phase, message) = assess_run(
        &mut run.status,
        &run.spec.metrics,
        &dry_set(&run.spec.dry_run),
        false,
    );
    assert_eq!(phase, AnalysisPhase::Failed);
    assert_eq!(
        message,
        "Metric \"run-forever\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert_eq!(run.status.dry_run_summary, summary(0, 0, 0, 0, 0));
}

#[test]
fn c2_10_several_dry_run_failures_are_only_tallied() {
    let mut run = terminating_run(AnalysisPhase::Failed, true);
    preset_forever(&mut run, AnalysisPhase::Failed, 1);
    let (phase, message) = assess_run(
        &mut run.status,
        &run.spec.metrics,
        &dry_set(&run.spec.dry_run),
        false,
    );
    assert_eq!((phase, message.as_str()), (AnalysisPhase::Successful, ""));
    assert_eq!(run.status.dry_run_summary, summary(2, 0, 2, 0, 0));
}

#[test]
fn c2_11_the_worst_message_reaches_the_run_status() {
    let mut run = terminating_run(AnalysisPhase::Failed, false);
    preset_forever(&mut run, AnalysisPhase::Failed, 1);
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Failed));
    assert_eq!(
        r.status.message,
        "Metric \"run-forever\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert_eq!(r.status.completed_at, Some(t(0)));
    // Both metrics were already complete: nothing is measured or stopped.
    assert!(r.measure.is_empty() && r.terminated.is_empty());
}

#[test]
fn c2_12_dry_run_metrics_carry_their_own_message() {
    let mut run = terminating_run(AnalysisPhase::Failed, true);
    preset_forever(&mut run, AnalysisPhase::Failed, 1);
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    assert_eq!(r.status.message, "");
    assert_eq!(r.status.dry_run_summary, summary(2, 0, 2, 0, 0));
    for result in &r.status.metric_results {
        assert_eq!(
            result.message,
            "Metric assessed Failed due to failed (1) > failureLimit (0)"
        );
    }
}

#[test]
fn c2_13_only_dry_run_metrics_means_successful() {
    let mut run = new_run(vec![metric("success-metric", |m| m.provider = job())]);
    run.spec.dry_run = vec![DryRun {
        metric_name: "success-metric".into(),
    }];
    run.status.metric_results = vec![MetricResult {
        count: 1,
        successful: 1,
        dry_run: true,
        ..result(
            "success-metric",
            AnalysisPhase::Successful,
            vec![finished(AnalysisPhase::Successful, t(-60))],
        )
    }];
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    assert!(r.measure.is_empty());
}

#[test]
fn c2_14_a_dry_run_failure_does_not_hide_a_wet_inconclusive() {
    let mut run = new_run(vec![
        metric("run-forever", |m| m.provider = job()),
        metric("success-metric", |m| m.provider = job()),
    ]);
    run.spec.dry_run = vec![DryRun {
        metric_name: "success-metric".into(),
    }];
    run.status.started_at = Some(t(-60));
    run.status.metric_results = vec![
        MetricResult {
            inconclusive: 1,
            ..result(
                "run-forever",
                AnalysisPhase::Running,
                vec![in_flight(t(-60))],
            )
        },
        MetricResult {
            count: 1,
            failed: 1,
            dry_run: true,
            ..result(
                "success-metric",
                AnalysisPhase::Successful,
                vec![finished(AnalysisPhase::Failed, t(-60))],
            )
        },
    ];
    // Argo's Resume answers Successful.
    run.status = record_answer(
        &run,
        "run-forever",
        1,
        &answer(AnalysisPhase::Successful),
        t(0),
    )
    .unwrap();
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Inconclusive));
    assert_eq!(
        r.status.message,
        "Metric \"run-forever\" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)"
    );
}

fn terminated_run(dry_run: bool) -> AnalysisRun {
    let mut run = new_run(vec![metric("success-rate", |m| {
        m.provider = web();
        m.initial_delay = s("20s");
        m.interval = s("20s");
        m.success_condition = s("result[0] > 0.90");
    })]);
    run.spec.terminate = true;
    if dry_run {
        run.spec.dry_run = vec![DryRun {
            metric_name: "success-rate".into(),
        }];
    }
    run.status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        started_at: Some(t(0)),
        ..AnalysisRunStatus::default()
    };
    run
}

#[test]
fn c2_15_and_ar_08_manual_termination_before_any_measurement() {
    let r = reconcile_run(&terminated_run(false), t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    assert_eq!(r.status.message, "Run Terminated");
    assert_eq!(r.status.completed_at, Some(t(0)));
    assert!(r.measure.is_empty() && r.status.metric_results.is_empty());
    assert_eq!(r.wake, None);

    let r = reconcile_run(&terminated_run(true), t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    assert_eq!(r.status.message, "Run Terminated");
    assert_eq!(r.status.dry_run_summary, summary(1, 0, 0, 0, 0));
    assert!(r.measure.is_empty());
}

#[test]
fn c2_16_an_in_flight_measurement_that_answers_completes_the_run() {
    let mut run = new_run(vec![metric("test", |m| m.provider = job())]);
    run.status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        started_at: Some(t(-60)),
        metric_results: vec![result(
            "test",
            AnalysisPhase::Running,
            vec![in_flight(t(-60))],
        )],
        ..AnalysisRunStatus::default()
    };
    run.status =
        record_answer(&run, "test", 1, &answer(AnalysisPhase::Successful), t(0)).unwrap();
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    let m = &r.status.metric_results[0];
    assert_eq!(m.phase, AnalysisPhase::Successful);
    assert_eq!(m.measurements[0].phase, AnalysisPhase::Successful);
    assert_eq!(m.measurements[0].finished_at, Some(t(0)));
}

#[test]
fn c2_17_reaching_the_count_fills_completed_at() {
    let mut run = new_run(vec![metric("success-rate", |m| {
        m.count = int(1);
        m.interval = s("60s");
    })]);
    run.status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        started_at: Some(t(-60)),
        metric_results: vec![MetricResult {
            count: 1,
            successful: 1,
            ..result(
                "success-rate",
                AnalysisPhase::Running,
                vec![finished(AnalysisPhase::Successful, t(-10))],
            )
        }],
        ..AnalysisRunStatus::default()
    };
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    assert_eq!(r.status.completed_at, Some(t(0)));
    assert!(r.measure.is_empty());
}

// ---- C3, C4 ------------------------------------------------------------------------

#[test]
fn c3_severity_order() {
    use AnalysisPhase::{Error, Failed, Inconclusive, Pending, Running, Successful};
    let rows = [
        (Successful, Successful, false),
        (Successful, Inconclusive, true),
        (Successful, Error, true),
        (Successful, Failed, true),
        (Inconclusive, Successful, false),
        (Inconclusive, Inconclusive, false),
        (Inconclusive, Error, true),
        (Inconclusive, Failed, true),
        (Error, Error, false),
        (Error, Successful, false),
        (Error, Inconclusive, false),
        (Error, Failed, true),
        (Failed, Successful, false),
        (Failed, Inconclusive, false),
        (Failed, Error, false),
        (Failed, Failed, false),
        (Successful, Running, true),
        (Running, Pending, true),
        (Pending, Inconclusive, true),
    ];
    for (current, new, expected) in rows {
        assert_eq!(is_worse(current, new), expected, "{current:?} -> {new:?}");
    }
    assert_eq!(worst(Successful, Failed), Failed);
    assert_eq!(worst(Failed, Successful), Failed);
}

#[test]
fn c4_is_terminating() {
    let with = |terminate: bool, results: Vec<MetricResult>| {
        let mut run = new_run(vec![]);
        run.spec.terminate = terminate;
        run.status.metric_results = results;
        is_terminating(&run)
    };
    let r = |phase, dry_run| MetricResult {
        dry_run,
        ..result("m", phase, vec![])
    };
    assert!(!with(
        false,
        vec![
            r(AnalysisPhase::Running, false),
            r(AnalysisPhase::Running, false)
        ]
    ));
    assert!(with(true, vec![r(AnalysisPhase::Running, false)]));
    assert!(!with(false, vec![r(AnalysisPhase::Error, true)]));
    for phase in [
        AnalysisPhase::Error,
        AnalysisPhase::Failed,
        AnalysisPhase::Inconclusive,
    ] {
        assert!(
            with(
                false,
                vec![r(AnalysisPhase::Running, false), r(phase, false)]
            ),
            "{phase:?}"
        );
    }
    assert!(!with(false, vec![]));
    assert!(!is_terminating(&AnalysisRun::default()));
}

// ---- C5: which metrics get a measurement -------------------------------------------

fn running_status(results: Vec<MetricResult>) -> AnalysisRunStatus {
    AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        metric_results: results,
        ..AnalysisRunStatus::default()
    }
}

fn tasks_for(
    status: &AnalysisRunStatus,
    metrics: &[Metric],
    now: Timestamp,
) -> Vec<(usize, Task)> {
    plan(status, metrics, terminating(false, status), now)
}

#[test]
fn c5_interval_boundaries() {
    let metrics = vec![bare("success-rate", |m| m.interval = s("60s"))];
    let at = |ago: i64| {
        running_status(vec![result(
            "success-rate",
            AnalysisPhase::Running,
            vec![finished(AnalysisPhase::Successful, t(-ago))],
        )])
    };
    assert!(tasks_for(&at(50), &metrics, t(0)).is_empty());
    assert_eq!(tasks_for(&at(61), &metrics, t(0)), vec![(0, Task::Start)]);
    // Whole seconds: due exactly at lastFinishedAt + interval.
    assert_eq!(tasks_for(&at(60), &metrics, t(0)), vec![(0, Task::Start)]);
    assert!(tasks_for(&at(59), &metrics, t(0)).is_empty());
}

#[test]
fn c5_no_new_measurements_while_terminating() {
    let metrics = vec![bare("success-rate", |_| {}), bare("latency", |_| {})];
    let failing = running_status(vec![result("latency", AnalysisPhase::Failed, vec![])]);
    assert!(tasks_for(&failing, &metrics, t(0)).is_empty());
    let fresh = running_status(vec![]);
    assert_eq!(
        tasks_for(&fresh, &metrics, t(0)),
        vec![(0, Task::Start), (1, Task::Start)]
    );
}

#[test]
fn c5_single_shot_metrics() {
    let metrics = vec![bare("success-rate", |_| {})];
    let reached = running_status(vec![MetricResult {
        count: 1,
        ..result(
            "success-rate",
            AnalysisPhase::Pending,
            vec![finished(AnalysisPhase::Successful, t(-50))],
        )
    }]);
    assert!(tasks_for(&reached, &metrics, t(0)).is_empty());
    let untouched =
        running_status(vec![result("success-rate", AnalysisPhase::Pending, vec![])]);
    assert_eq!(
        tasks_for(&untouched, &metrics, t(0)),
        vec![(0, Task::Start)]
    );
}

#[test]
fn c5_in_flight_without_deadline_is_resumed() {
    let metrics = vec![bare("success-rate", |_| {})];
    let status = running_status(vec![result(
        "success-rate",
        AnalysisPhase::Running,
        vec![Measurement {
            phase: AnalysisPhase::Successful,
            started_at: Some(t(-50)),
            ..Measurement::default()
        }],
    )]);
    assert_eq!(tasks_for(&status, &metrics, t(0)), vec![(0, Task::Resend)]);
    // A Job in flight waits for its Job.
    let jobs = vec![bare("success-rate", |m| m.provider = job())];
    assert!(tasks_for(&status, &jobs, t(0)).is_empty());
}

#[test]
fn c5_resume_at_future_and_past() {
    let metrics = vec![bare("success-rate", |_| {}), bare("success-rate2", |_| {})];
    let waiting = |name: &str, resume: Timestamp| {
        result(
            name,
            AnalysisPhase::Running,
            vec![Measurement {
                phase: AnalysisPhase::Successful,
                started_at: Some(t(-50)),
                resume_at: Some(resume),
                ..Measurement::default()
            }],
        )
    };
    let status = running_status(vec![
        waiting("success-rate", t(10)),
        waiting("success-rate2", t(-10)),
    ]);
    assert_eq!(tasks_for(&status, &metrics, t(0)), vec![(1, Task::Resend)]);
}

#[test]
fn c5_error_retry_after_ten_seconds_whatever_the_interval() {
    for interval in [None, s("5m")] {
        let metrics = vec![bare("success-rate", |m| m.interval = interval.clone())];
        let status = running_status(vec![MetricResult {
            error: 1,
            ..result(
                "success-rate",
                AnalysisPhase::Running,
                vec![finished(AnalysisPhase::Error, t(-120))],
            )
        }]);
        assert_eq!(
            tasks_for(&status, &metrics, t(0)),
            vec![(0, Task::Start)],
            "{interval:?}"
        );
        let recent = running_status(vec![MetricResult {
            error: 1,
            ..result(
                "success-rate",
                AnalysisPhase::Running,
                vec![finished(AnalysisPhase::Error, t(-9))],
            )
        }]);
        assert!(tasks_for(&recent, &metrics, t(0)).is_empty());
        let due = running_status(vec![MetricResult {
            error: 1,
            ..result(
                "success-rate",
                AnalysisPhase::Running,
                vec![finished(AnalysisPhase::Error, t(-10))],
            )
        }]);
        assert_eq!(tasks_for(&due, &metrics, t(0)), vec![(0, Task::Start)]);
    }
}

// ---- C6: next reconcile ------------------------------------------------------------

#[test]
fn c6_next_wake() {
    let interval = vec![bare("success-rate", |m| m.interval = s("60s"))];
    let mut status = running_status(vec![result(
        "success-rate",
        AnalysisPhase::Running,
        vec![finished(AnalysisPhase::Successful, t(-30))],
    )]);
    assert_eq!(next_wake(&status, &interval, t(0)), Some(t(30)));

    status.metric_results[0].measurements[0].finished_at = None;
    status.metric_results[0].measurements[0].phase = AnalysisPhase::Running;
    assert_eq!(next_wake(&status, &interval, t(0)), None);

    let completed = running_status(vec![result(
        "success-rate",
        AnalysisPhase::Successful,
        vec![finished(AnalysisPhase::Successful, t(-120))],
    )]);
    assert_eq!(next_wake(&completed, &interval, t(0)), None);

    let once = vec![bare("success-rate", |m| m.count = int(1))];
    let reached = running_status(vec![MetricResult {
        count: 1,
        ..result(
            "success-rate",
            AnalysisPhase::Running,
            vec![finished(AnalysisPhase::Successful, t(0))],
        )
    }]);
    assert_eq!(next_wake(&reached, &once, t(0)), None);

    let two = vec![
        bare("success-rate", |m| m.interval = s("60s")),
        bare("latency", |m| m.interval = s("60s")),
    ];
    let both = running_status(vec![
        result(
            "success-rate",
            AnalysisPhase::Running,
            vec![finished(AnalysisPhase::Successful, t(-30))],
        ),
        result(
            "latency",
            AnalysisPhase::Running,
            vec![finished(AnalysisPhase::Successful, t(-50))],
        ),
    ]);
    assert_eq!(next_wake(&both, &two, t(0)), Some(t(10)));

    let resuming = running_status(vec![result(
        "success-rate",
        AnalysisPhase::Running,
        vec![Measurement {
            resume_at: Some(t(10)),
            ..in_flight(t(-30))
        }],
    )]);
    assert_eq!(next_wake(&resuming, &interval, t(0)), Some(t(10)));

    for iv in [None, s("5m")] {
        let m = vec![bare("success-rate", |m| m.interval = iv.clone())];
        let errored = running_status(vec![MetricResult {
            error: 1,
            ..result(
                "success-rate",
                AnalysisPhase::Running,
                vec![finished(AnalysisPhase::Error, t(0))],
            )
        }]);
        assert_eq!(next_wake(&errored, &m, t(0)), Some(t(10)), "{iv:?}");
    }
}

#[test]
fn c6_and_ar_05_initial_delay_wake() {
    let mut metrics = vec![
        bare("success-rate", |m| m.interval = s("60s")),
        bare("start-delay", |m| {
            m.interval = s("60s");
            m.initial_delay = s("40s");
        }),
    ];
    let status = AnalysisRunStatus {
        started_at: Some(t(-30)),
        ..running_status(vec![result(
            "success-rate",
            AnalysisPhase::Running,
            vec![finished(AnalysisPhase::Successful, t(-30))],
        )])
    };
    assert_eq!(next_wake(&status, &metrics, t(0)), Some(t(10)));
    metrics[1].initial_delay = s("not-valid-start-delay");
    assert_eq!(next_wake(&status, &metrics, t(0)), Some(t(30)));
}

#[test]
fn sub_second_intervals_still_let_time_pass() {
    for interval in ["0s", "500ms", "-5s"] {
        let run = new_run(vec![metric("m", |m| {
            m.interval = s(interval);
            m.count = int(3);
        })]);
        let (run, answered) = drive(run, t(0), |_| answer(AnalysisPhase::Successful));
        assert_eq!(answered, 3, "{interval}");
        assert_eq!(run.status.completed_at, Some(t(2)), "{interval}");
    }
}

#[test]
fn wake_is_never_at_or_before_now() {
    let metrics = vec![bare("success-rate", |m| m.interval = s("60s"))];
    // A due time in the past that this reconcile could not act on (a foreign status).
    let status = running_status(vec![result(
        "success-rate",
        AnalysisPhase::Running,
        vec![Measurement {
            resume_at: Some(t(-100)),
            ..in_flight(t(-200))
        }],
    )]);
    assert_eq!(next_wake(&status, &metrics, t(0)), Some(t(1)));
}

// ---- C9: measurement history ---------------------------------------------------------

fn c9_status() -> (AnalysisRunStatus, Vec<Metric>) {
    let metrics = vec![
        bare("metric1", |m| m.interval = s("60s")),
        bare("metric2", |m| m.interval = s("60s")),
    ];
    let valued = |v: &str, at: i64| Measurement {
        value: v.into(),
        ..finished(AnalysisPhase::Successful, t(at))
    };
    let status = running_status(vec![
        result("metric1", AnalysisPhase::Running, vec![valued("1", -60)]),
        result(
            "metric2",
            AnalysisPhase::Running,
            vec![valued("2", -60), valued("3", -30)],
        ),
    ]);
    (status, metrics)
}

fn values(status: &AnalysisRunStatus, i: usize) -> Vec<String> {
    status.metric_results[i]
        .measurements
        .iter()
        .map(|m| m.value.clone())
        .collect()
}

#[test]
fn c9_trimming_keeps_the_newest() {
    // (default limit, metric2's retention limit, metric1 kept, metric2 kept)
    type Row = (
        usize,
        Option<i32>,
        &'static [&'static str],
        &'static [&'static str],
    );
    let rows: [Row; 4] = [
        (2, None, &["1"], &["2", "3"]),
        (1, None, &["1"], &["3"]),
        // Argo's rows `*` and `metric2` only differ in the rule text; both reach the
        // trimming as "metric2 keeps 2".
        (1, Some(2), &["1"], &["2", "3"]),
        (1, Some(2), &["1"], &["2", "3"]),
    ];
    for (limit, metric2, one, two) in rows {
        let (mut status, metrics) = c9_status();
        let retention: BTreeMap<String, i32> = metric2
            .map(|l| ("metric2".to_string(), l))
            .into_iter()
            .collect();
        trim_measurements(&mut status, &metrics, &retention, limit);
        assert_eq!(values(&status, 0), one.to_vec(), "limit {limit}");
        assert_eq!(values(&status, 1), two.to_vec(), "limit {limit}");
    }
}

#[test]
fn c9_trimming_with_arguments_in_the_provider() {
    let provider = |_: &mut Metric| {};
    let mut metrics = vec![bare("metric1", provider), bare("metric2", provider)];
    for m in &mut metrics {
        m.provider = MetricProvider {
            prometheus: Some(PrometheusMetric {
                address: "https://prometheus.kubeaddons:{{args.port}}".into(),
                ..PrometheusMetric::default()
            }),
            ..MetricProvider::default()
        };
    }
    let valued = |v: &str| Measurement {
        value: v.into(),
        ..finished(AnalysisPhase::Successful, t(-30))
    };
    let mut status = running_status(vec![
        result(
            "metric1",
            AnalysisPhase::Running,
            vec![valued("1"), valued("2")],
        ),
        result(
            "metric2",
            AnalysisPhase::Running,
            vec![valued("2"), valued("3"), valued("4")],
        ),
    ]);
    trim_measurements(
        &mut status,
        &metrics,
        &BTreeMap::from([("metric2".to_string(), 2)]),
        1,
    );
    assert_eq!(values(&status, 0), vec!["2"]);
    assert_eq!(values(&status, 1), vec!["3", "4"]);
}

#[test]
fn c9_reconcile_keeps_ten_measurements_or_the_retention_limit() {
    let mut run = new_run(vec![
        metric("metric1", |m| m.interval = s("10s")),
        metric("metric2", |m| m.interval = s("10s")),
    ]);
    run.spec.measurement_retention = vec![MeasurementRetention {
        metric_name: "metric2".into(),
        limit: 3,
    }];
    let mut now = t(0);
    for _ in 0..15 {
        let r = reconcile_run(&run, now);
        run.status = r.status;
        for req in &r.measure {
            run.status = record_answer(
                &run,
                &req.metric,
                req.index,
                &answer(AnalysisPhase::Successful),
                now,
            )
            .unwrap();
        }
        now = now.plus(Seconds(10));
    }
    let r = reconcile_run(&run, now);
    assert_eq!(r.status.metric_results[0].measurements.len(), 10);
    assert_eq!(r.status.metric_results[1].measurements.len(), 3);
    // Counters keep the whole history.
    assert_eq!(r.status.metric_results[0].count, 15);
    assert_eq!(r.measure[0].index, 16);
}

// ---- A.9 scenarios -----------------------------------------------------------------

/// One reconcile that starts a measurement, its answer, and the reconcile after.
fn measure_once(run: &mut AnalysisRun, now: Timestamp, phase: AnalysisPhase) -> RunReconcile {
    let r = reconcile_run(run, now);
    run.status = r.status;
    assert_eq!(r.measure.len(), 1, "one measurement due at {now:?}");
    let req = &r.measure[0];
    run.status = record_answer(run, &req.metric, req.index, &answer(phase), now).unwrap();
    let r = reconcile_run(run, now);
    run.status = r.status.clone();
    r
}

#[test]
fn ar_01_single_shot_interval_and_count() {
    // interval 60s, no count: measured, still running.
    let mut run = new_run(vec![metric("success-rate", |m| m.interval = s("60s"))]);
    let r = measure_once(&mut run, t(0), AnalysisPhase::Successful);
    assert_eq!(r.status.metric_results[0].phase, AnalysisPhase::Running);
    assert_eq!(r.status.phase, Some(AnalysisPhase::Running));
    assert_eq!(r.status.metric_results[0].measurements.len(), 1);
    assert_eq!(
        r.status.metric_results[0].measurements[0].phase,
        AnalysisPhase::Successful
    );
    assert_eq!(r.status.completed_at, None);
    assert_eq!(r.wake, Some(t(60)));

    // count 1: done at once.
    let mut run = new_run(vec![metric("success-rate", |m| {
        m.interval = s("60s");
        m.count = int(1);
    })]);
    let r = measure_once(&mut run, t(0), AnalysisPhase::Successful);
    assert_eq!(r.status.metric_results[0].phase, AnalysisPhase::Successful);
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    assert_eq!(r.status.completed_at, Some(t(0)));
    assert_eq!(r.wake, None);

    // no interval, count 0: effective count 1.
    let mut run = new_run(vec![metric("success-rate", |m| {
        m.interval = s("");
        m.count = int(0);
    })]);
    let r = measure_once(&mut run, t(0), AnalysisPhase::Successful);
    assert_eq!(r.status.phase, Some(AnalysisPhase::Successful));
    assert_eq!(r.status.metric_results[0].measurements.len(), 1);

    // count 3, one taken: running, not completed.
    let mut run = new_run(vec![metric("success-rate", |m| {
        m.interval = s("60s");
        m.count = int(3);
    })]);
    let r = measure_once(&mut run, t(0), AnalysisPhase::Successful);
    assert_eq!(r.status.phase, Some(AnalysisPhase::Running));
    assert_eq!(r.status.completed_at, None);
    assert_eq!(r.status.started_at, Some(t(0)));
}

#[test]
fn ar_02_failure_limit_counting() {
    let mut run = new_run(vec![metric("m", |m| {
        m.interval = s("60s");
        m.failure_limit = int(2);
    })]);
    for i in 0..2 {
        let r = measure_once(&mut run, t(60 * i), AnalysisPhase::Failed);
        assert_eq!(
            r.status.metric_results[0].phase,
            AnalysisPhase::Running,
            "failure {}",
            i + 1
        );
        assert_eq!(r.status.phase, Some(AnalysisPhase::Running));
    }
    let r = measure_once(&mut run, t(120), AnalysisPhase::Failed);
    assert_eq!(r.status.metric_results[0].phase, AnalysisPhase::Failed);
    assert_eq!(r.status.phase, Some(AnalysisPhase::Failed));
    assert_eq!(
        r.status.message,
        "Metric \"m\" assessed Failed due to failed (3) > failureLimit (2)"
    );
    assert_eq!(r.status.run_summary, summary(1, 0, 1, 0, 0));

    // Default failureLimit 0: the first failure fails the metric.
    let mut run = new_run(vec![metric("m", |m| m.interval = s("60s"))]);
    let r = measure_once(&mut run, t(0), AnalysisPhase::Failed);
    assert_eq!(r.status.phase, Some(AnalysisPhase::Failed));
    assert_eq!(
        r.status.message,
        "Metric \"m\" assessed Failed due to failed (1) > failureLimit (0)"
    );
}

#[test]
fn ar_04_errors_retry_every_ten_seconds_and_do_not_count() {
    let mut run = new_run(vec![metric("success-rate", |m| m.interval = s("5m"))]);
    let mut now = t(0);
    let mut indexes = Vec::new();
    for i in 1..=5 {
        let r = reconcile_run(&run, now);
        run.status = r.status;
        assert_eq!(r.measure.len(), 1, "error retry {i}");
        indexes.push(r.measure[0].index);
        run.status = record_answer(
            &run,
            "success-rate",
            r.measure[0].index,
            &error_answer("connection refused"),
            now,
        )
        .unwrap();
        let r = reconcile_run(&run, now);
        run.status = r.status.clone();
        let result = &run.status.metric_results[0];
        assert_eq!(
            (result.error, result.consecutive_error, result.count),
            (i, i, 0)
        );
        if i < 5 {
            assert_eq!(result.phase, AnalysisPhase::Running);
            assert_eq!(
                r.wake,
                Some(now.plus(Seconds(10))),
                "retry after 10 s, not 5 m"
            );
            // Nothing before the retry is due.
            assert!(reconcile_run(&run, now.plus(Seconds(9))).measure.is_empty());
            now = now.plus(Seconds(10));
        }
    }
    assert_eq!(indexes, vec![1, 2, 3, 4, 5]);
    assert_eq!(run.status.metric_results[0].phase, AnalysisPhase::Error);
    assert_eq!(run.status.phase, Some(AnalysisPhase::Error));
    assert_eq!(
        run.status.message,
        "Metric \"success-rate\" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): \"Error Message: connection refused\""
    );
    assert_eq!(
        run.status.metric_results[0].measurements[4].message,
        "connection refused"
    );
}

#[test]
fn ar_04_a_verdict_resets_the_consecutive_errors() {
    for phase in [
        AnalysisPhase::Successful,
        AnalysisPhase::Failed,
        AnalysisPhase::Inconclusive,
    ] {
        let mut run = new_run(vec![metric("test", |_| {})]);
        run.status.metric_results = vec![MetricResult {
            consecutive_error: 4,
            count: 4,
            error: 4,
            consecutive_success: 2,
            ..result("test", AnalysisPhase::Running, vec![in_flight(t(0))])
        }];
        let index = 9; // count + error + 1
        let status = record_answer(&run, "test", index, &answer(phase), t(1)).unwrap();
        let r = &status.metric_results[0];
        assert_eq!(
            (r.consecutive_error, r.error, r.count),
            (0, 4, 5),
            "{phase:?}"
        );
        let streak = if phase == AnalysisPhase::Successful {
            3
        } else {
            0
        };
        assert_eq!(r.consecutive_success, streak);
        let status = record_answer(&run, "test", index, &error_answer("boom"), t(1)).unwrap();
        let r = &status.metric_results[0];
        assert_eq!(
            (r.consecutive_error, r.error, r.count, r.consecutive_success),
            (5, 5, 4, 0)
        );
    }
}

#[test]
fn ar_05_initial_delay() {
    let metrics = vec![bare("success-rate", |m| m.initial_delay = s("20s"))];
    let mut status = running_status(vec![]);
    assert!(
        tasks_for(&status, &metrics, t(0)).is_empty(),
        "startedAt unset"
    );
    status.started_at = Some(t(-10));
    assert!(tasks_for(&status, &metrics, t(0)).is_empty(), "now - 10 s");
    status.started_at = Some(t(-20));
    assert_eq!(
        tasks_for(&status, &metrics, t(0)),
        vec![(0, Task::Start)],
        "now - 20 s"
    );
    let invalid = vec![bare("success-rate", |m| {
        m.initial_delay = s("invalid-start-delay")
    })];
    assert!(
        tasks_for(&status, &invalid, t(0)).is_empty(),
        "invalid delay"
    );

    // End to end: the first reconcile starts the clock and waits for the delay.
    let run = new_run(vec![metric("success-rate", |m| m.initial_delay = s("20s"))]);
    let r = reconcile_run(&run, t(0));
    assert!(r.measure.is_empty());
    assert_eq!(r.status.started_at, Some(t(0)));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Running));
    assert_eq!(r.wake, Some(t(20)));
    let mut run = run;
    run.status = r.status;
    assert!(reconcile_run(&run, t(19)).measure.is_empty());
    assert_eq!(reconcile_run(&run, t(20)).measure.len(), 1);
}

#[test]
fn ar_07_fail_fast_terminates_the_siblings() {
    let mut run = new_run(vec![
        metric("sleep-infinity", |m| m.provider = job()),
        metric("fail-after-30", |m| {
            m.provider = job();
            m.count = int(1);
        }),
    ]);
    let r = reconcile_run(&run, t(0));
    run.status = r.status;
    assert_eq!(r.measure.len(), 2);
    assert!(
        run.status
            .metric_results
            .iter()
            .all(|m| m.measurements[0].resume_at.is_none()),
        "a Job waits"
    );
    assert_eq!(r.wake, None);

    run.status = record_answer(
        &run,
        "fail-after-30",
        1,
        &answer(AnalysisPhase::Failed),
        t(30),
    )
    .unwrap();
    let r = reconcile_run(&run, t(30));
    run.status = r.status;
    assert_eq!(run.status.metric_results[1].phase, AnalysisPhase::Failed);
    assert_eq!(
        run.status.phase,
        Some(AnalysisPhase::Running),
        "same reconcile: still running"
    );
    assert!(r.terminated.is_empty());

    let r = reconcile_run(&run, t(30));
    assert_eq!(r.terminated, vec![("sleep-infinity".to_string(), 1)]);
    let sleeper = &r.status.metric_results[0];
    assert_eq!(sleeper.phase, AnalysisPhase::Successful);
    assert_eq!(sleeper.message, "Metric Terminated");
    assert_eq!(sleeper.measurements[0].message, "Metric Terminated");
    assert_eq!(sleeper.measurements[0].finished_at, Some(t(30)));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Failed));
    assert_eq!(
        r.status.message,
        "Metric \"fail-after-30\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert_eq!(r.status.completed_at, Some(t(30)));
    // The stopped Job's late answer is stale.
    run.status = r.status;
    assert_eq!(
        record_answer(
            &run,
            "sleep-infinity",
            1,
            &answer(AnalysisPhase::Successful),
            t(31)
        ),
        None
    );
}

#[test]
fn ar_07_settle_run_reaches_the_end_in_one_call() {
    let mut run = update_result_run();
    run.status.metric_results[1].phase = AnalysisPhase::Running;
    let r = settle_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Failed));
    assert_eq!(r.terminated, vec![("sleep-infinity".to_string(), 1)]);
    assert_eq!(r.wake, None);
}

#[test]
fn ar_11_invalid_specs_fail_immediately() {
    let mut no_provider = new_run(vec![bare("success-rate", |_| {})]);
    let mut dry_run = new_run(vec![metric("success-rate", |_| {})]);
    dry_run.spec.dry_run = vec![DryRun {
        metric_name: "error-rate".into(),
    }];
    let mut retention = new_run(vec![metric("success-rate", |_| {})]);
    retention.spec.measurement_retention = vec![MeasurementRetention {
        metric_name: "error-rate".into(),
        limit: 2,
    }];
    let rows = [
        (&mut no_provider, "Analysis spec invalid: metrics[0]: no provider specified"),
        (&mut dry_run, "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)"),
        (
            &mut retention,
            "Analysis spec invalid: measurementRetention[0]: Rule didn't match any metric name(s)",
        ),
    ];
    for (run, message) in rows {
        run.status.phase = Some(AnalysisPhase::Running);
        let r = reconcile_run(run, t(5));
        assert_eq!(r.status.phase, Some(AnalysisPhase::Error), "{message}");
        assert_eq!(r.status.message, message);
        assert_eq!(r.status.completed_at, Some(t(5)));
        assert!(r.measure.is_empty());
        assert_eq!(r.wake, None);
        // An Error run is completed: nothing changes any more.
        run.status = r.status.clone();
        assert_eq!(reconcile_run(run, t(60)).status, r.status);
    }
}

#[test]
fn unresolvable_arguments_error_the_run_dry_run_or_not() {
    for dry_run in [false, true] {
        let mut run = new_run(vec![metric("rate", |m| {
            m.success_condition = s("{{args.does-not-exist}}");
            m.provider.prometheus.as_mut().unwrap().query = "{{args.metric-name}}".into();
        })]);
        if dry_run {
            run.spec.dry_run = vec![DryRun {
                metric_name: ".*".into(),
            }];
        }
        let r = reconcile_run(&run, t(0));
        assert_eq!(r.status.phase, Some(AnalysisPhase::Error));
        assert_eq!(
            r.status.message,
            "Unable to resolve metric arguments: failed to resolve {{args.metric-name}}"
        );
        assert_eq!(r.status.completed_at, Some(t(0)));
        assert!(r.measure.is_empty());
    }
}

#[test]
fn conditions_judge_the_value() {
    let mut run = new_run(vec![metric("rate", |m| {
        m.interval = s("60s");
        m.success_condition = s("result[0] >= 0.99");
    })]);
    run.status = reconcile_run(&run, t(0)).status;
    let judge = |value: Value| {
        let a = MeasurementAnswer {
            value,
            ..MeasurementAnswer::default()
        };
        let status = record_answer(&run, "rate", 1, &a, t(1)).unwrap();
        status.metric_results[0].measurements[0].clone()
    };
    let m = judge(serde_json::json!([0.995]));
    assert_eq!(
        (m.phase, m.value.as_str()),
        (AnalysisPhase::Successful, "[0.995]")
    );
    assert_eq!(judge(serde_json::json!([0.5])).phase, AnalysisPhase::Failed);
    let m = judge(Value::Null);
    assert_eq!(m.phase, AnalysisPhase::Error);
    assert!(!m.message.is_empty());
}

#[test]
fn a_broken_condition_fails_the_run_up_front() {
    let run = new_run(vec![metric("rate", |m| {
        m.success_condition = s("result >=")
    })]);
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.status.phase, Some(AnalysisPhase::Error));
    assert!(
        r.status.message.starts_with(
            "Analysis spec invalid: metrics[0]: invalid successCondition \"result >=\": "
        ),
        "{}",
        r.status.message
    );
}

// ---- Measurement protocol ----------------------------------------------------------

#[test]
fn a_request_carries_the_resolved_provider_and_the_secret_references() {
    use crate::api::{Argument, ValueFrom};
    let mut run = new_run(vec![metric("rate", |m| {
        let p = m.provider.prometheus.as_mut().unwrap();
        p.query = "rate({{args.service}})".into();
        p.headers = vec![crate::api::WebMetricHeader {
            key: "token".into(),
            value: "{{args.token}}".into(),
        }];
    })]);
    let secret = SecretKeyRef {
        name: "creds".into(),
        key: "token".into(),
    };
    run.spec.args = vec![
        Argument {
            name: "service".into(),
            value: s("checkout"),
            value_from: None,
        },
        Argument {
            name: "token".into(),
            value: None,
            value_from: Some(ValueFrom {
                secret_key_ref: Some(secret.clone()),
                field_ref: None,
            }),
        },
    ];
    let r = reconcile_run(&run, t(0));
    assert_eq!(r.measure.len(), 1);
    let req = &r.measure[0];
    assert_eq!((req.metric.as_str(), req.index), ("rate", 1));
    let p = req.provider.prometheus.as_ref().unwrap();
    assert_eq!(p.query, "rate(checkout)");
    assert_eq!(
        p.headers[0].value, "{{args.token}}",
        "secrets stay placeholders"
    );
    assert_eq!(req.secrets, BTreeMap::from([("token".to_string(), secret)]));
    let result = &r.status.metric_results[0];
    assert_eq!(result.phase, AnalysisPhase::Running);
    assert_eq!(
        result
            .metadata
            .get("ResolvedPrometheusQuery")
            .map(String::as_str),
        Some("rate(checkout)")
    );
    let m = &result.measurements[0];
    assert_eq!(
        (m.phase, m.started_at, m.resume_at),
        (AnalysisPhase::Running, Some(t(0)), Some(t(30)))
    );
}

#[test]
fn a_measure_action_keeps_its_context_through_a_recorded_trace() {
    // A recorded trace stores actions as JSON and must replay to the same actions: the
    // provider's context (interval, run start, a resumed measurement's metadata) is written
    // whenever it holds anything, and left out only when it is empty.
    use crate::state::Action;
    let run = new_run(vec![metric("rate", |m| m.interval = s("1m"))]);
    let req = reconcile_run(&run, t(0)).measure.remove(0);
    assert_eq!(req.context.interval.as_deref(), Some("1m"));
    let without_context = MeasureRequest {
        context: MeasureContext::default(),
        ..req.clone()
    };
    for (req, context_written) in [(req, true), (without_context, false)] {
        let action = Action::Measure {
            run: "checkout-1".into(),
            metric: req.metric,
            index: req.index,
            provider: Box::new(req.provider),
            secrets: req.secrets,
            context: req.context,
        };
        let json = serde_json::to_value(&action).unwrap();
        assert_eq!(json["measure"].get("context").is_some(), context_written, "{json}");
        let replayed: Action = serde_json::from_value(json).unwrap();
        assert_eq!(replayed, action);
    }
}

#[test]
fn answer_deadlines_follow_the_provider_timeouts() {
    let with = |provider: MetricProvider| {
        let run = new_run(vec![metric("m", |m| m.provider = provider)]);
        reconcile_run(&run, t(0)).status.metric_results[0].measurements[0].resume_at
    };
    assert_eq!(with(prometheus()), Some(t(30)));
    let mut quick = prometheus();
    quick.prometheus.as_mut().unwrap().timeout = Some(5);
    assert_eq!(with(quick), Some(t(5)));
    assert_eq!(with(web()), Some(t(10)));
    let mut slow = web();
    slow.web.as_mut().unwrap().timeout_seconds = Some(45);
    assert_eq!(with(slow), Some(t(45)));
    // `timeoutSeconds: 0` is Go's zero value, an unset field: Argo's 10 s default.
    let mut unset = web();
    unset.web.as_mut().unwrap().timeout_seconds = Some(0);
    assert_eq!(with(unset), Some(t(10)));
    assert_eq!(with(job()), None);
    assert_eq!(
        answer_timeout(&MetricProvider::default()),
        Some(Seconds(30))
    );
}

#[test]
fn an_overdue_answer_is_asked_for_again_with_the_same_index() {
    let mut run = new_run(vec![metric("m", |m| m.interval = s("60s"))]);
    let r = reconcile_run(&run, t(0));
    run.status = r.status;
    assert_eq!(r.wake, Some(t(30)));
    assert!(reconcile_run(&run, t(29)).measure.is_empty());
    let again = reconcile_run(&run, t(30));
    assert_eq!(again.measure, r.measure);
    assert_eq!(again.status.metric_results[0].measurements.len(), 1);
    assert_eq!(
        again.status.metric_results[0].measurements[0].resume_at,
        Some(t(60))
    );
    assert_eq!(again.wake, Some(t(60)));
    // The answer to either request completes the one measurement.
    run.status = again.status;
    let status =
        record_answer(&run, "m", 1, &answer(AnalysisPhase::Successful), t(31)).unwrap();
    assert_eq!(
        status.metric_results[0].measurements[0].finished_at,
        Some(t(31))
    );
    assert_eq!(status.metric_results[0].measurements[0].resume_at, None);
}

#[test]
fn stale_answers_are_refused() {
    let mut run = new_run(vec![metric("m", |m| m.interval = s("60s"))]);
    let r = reconcile_run(&run, t(0));
    run.status = r.status;
    assert_eq!(
        record_answer(&run, "m", 2, &answer(AnalysisPhase::Successful), t(1)),
        None,
        "wrong index"
    );
    assert_eq!(
        record_answer(&run, "other", 1, &answer(AnalysisPhase::Successful), t(1)),
        None,
        "no metric"
    );
    run.status = record_answer(&run, "m", 1, &answer(AnalysisPhase::Successful), t(1)).unwrap();
    assert_eq!(
        record_answer(&run, "m", 1, &answer(AnalysisPhase::Failed), t(2)),
        None,
        "answered"
    );
    assert_eq!(
        record_answer(
            &AnalysisRun::default(),
            "m",
            1,
            &answer(AnalysisPhase::Failed),
            t(2)
        ),
        None
    );
    let mut done = run.clone();
    done.status.phase = Some(AnalysisPhase::Successful);
    done.status.metric_results[0].measurements[0].finished_at = None;
    assert_eq!(
        record_answer(&done, "m", 1, &answer(AnalysisPhase::Failed), t(2)),
        None,
        "completed run"
    );
}

#[test]
fn answers_are_booked_as_argo_does() {
    let mut run = new_run(vec![metric("m", |m| m.interval = s("60s"))]);
    run.status = reconcile_run(&run, t(0)).status;
    let book = |a: MeasurementAnswer| {
        record_answer(&run, "m", 1, &a, t(7))
            .unwrap()
            .metric_results[0]
            .clone()
    };

    let r = book(MeasurementAnswer {
        value: serde_json::json!([0.99]),
        metadata: BTreeMap::from([("warnings".to_string(), "none".to_string())]),
        ..answer(AnalysisPhase::Failed)
    });
    let m = &r.measurements[0];
    assert_eq!(
        (m.phase, m.value.as_str(), m.finished_at),
        (AnalysisPhase::Failed, "[0.99]", Some(t(7)))
    );
    assert_eq!(m.metadata.get("warnings").map(String::as_str), Some("none"));
    assert_eq!((r.failed, r.count), (1, 1));
    assert_eq!(
        r.phase,
        AnalysisPhase::Running,
        "phases wait for the reconcile"
    );

    let r = book(MeasurementAnswer {
        value: serde_json::json!("text"),
        error: Some("timeout".into()),
        ..MeasurementAnswer::default()
    });
    assert_eq!(
        (
            r.measurements[0].phase,
            r.measurements[0].message.as_str(),
            r.measurements[0].value.as_str()
        ),
        (AnalysisPhase::Error, "timeout", "text")
    );
    assert_eq!((r.error, r.count), (1, 0));

    // No conditions: the measurement is Inconclusive (Argo's documented behaviour).
    let r = book(MeasurementAnswer::default());
    assert_eq!(
        (r.measurements[0].phase, r.measurements[0].value.as_str()),
        (AnalysisPhase::Inconclusive, "")
    );
    let r = book(MeasurementAnswer {
        value: serde_json::json!({"a": 1.5}),
        ..MeasurementAnswer::default()
    });
    assert_eq!(r.measurements[0].value, "{\"a\":1.5}");

    // Progress reports leave the measurement in flight.
    let r = book(MeasurementAnswer {
        metadata: BTreeMap::from([("job-name".to_string(), "uid.m.1".to_string())]),
        ..answer(AnalysisPhase::Running)
    });
    assert_eq!(r.measurements[0].finished_at, None);
    assert_eq!(
        r.measurements[0]
            .metadata
            .get("job-name")
            .map(String::as_str),
        Some("uid.m.1")
    );
    assert_eq!(r.count, 0);
}

#[test]
fn render_value_forms() {
    assert_eq!(render_value(&Value::Null), "");
    assert_eq!(render_value(&serde_json::json!("0.5")), "0.5");
    assert_eq!(render_value(&serde_json::json!(0.5)), "0.5");
    assert_eq!(render_value(&serde_json::json!([0.99, 1])), "[0.99,1]");
    assert_eq!(render_value(&serde_json::json!(true)), "true");
}

#[test]
fn new_results_follow_the_spec_order() {
    let mut run = new_run(vec![
        metric("a", |m| m.initial_delay = s("30s")),
        metric("b", |_| {}),
        metric("c", |m| m.initial_delay = s("10s")),
    ]);
    run.status = reconcile_run(&run, t(0)).status;
    let names = |run: &AnalysisRun| {
        run.status
            .metric_results
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&run), vec!["b"]);
    run.status = reconcile_run(&run, t(10)).status;
    assert_eq!(names(&run), vec!["b", "c"]);
    run.status = reconcile_run(&run, t(30)).status;
    assert_eq!(names(&run), vec!["a", "b", "c"]);
}

#[test]
fn in_flight_requests_rebuild_what_the_shell_lost() {
    let mut run = new_run(vec![
        metric("j", |m| m.provider = job()),
        metric("p", |_| {}),
    ]);
    let r = reconcile_run(&run, t(0));
    run.status = r.status;
    assert_eq!(in_flight_requests(&run), r.measure);
    run.status = record_answer(&run, "p", 1, &answer(AnalysisPhase::Successful), t(1)).unwrap();
    assert_eq!(in_flight_requests(&run), vec![r.measure[0].clone()]);
}

#[test]
fn settle_run_drops_a_measurement_started_and_stopped_at_once() {
    // "b" is due again while "a" has just failed: one pass starts b's measurement,
    // the next stops it because the run is terminating.
    let mut run = new_run(vec![
        metric("a", |m| m.interval = s("60s")),
        metric("b", |m| m.interval = s("60s")),
    ]);
    run.status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        started_at: Some(t(-120)),
        metric_results: vec![
            MetricResult {
                failed: 1,
                count: 1,
                ..result(
                    "a",
                    AnalysisPhase::Running,
                    vec![finished(AnalysisPhase::Failed, t(0))],
                )
            },
            MetricResult {
                successful: 1,
                count: 1,
                ..result(
                    "b",
                    AnalysisPhase::Running,
                    vec![finished(AnalysisPhase::Successful, t(-60))],
                )
            },
        ],
        ..AnalysisRunStatus::default()
    };
    let once = reconcile_run(&run, t(0));
    assert_eq!(
        once.measure.len(),
        1,
        "Argo takes it too: terminating is not known yet"
    );
    let r = settle_run(&run, t(0));
    assert!(r.measure.is_empty() && r.terminated.is_empty());
    assert_eq!(r.status.phase, Some(AnalysisPhase::Failed));
    assert_eq!(
        r.status.metric_results[1].measurements[1].message,
        "Metric Terminated"
    );
}

// ---- Properties --------------------------------------------------------------------

#[test]
fn counted_runs_always_finish_with_exactly_their_count() {
    for count in 1..=10 {
        for interval in ["1s", "30s", "60s", "5m"] {
            let run = new_run(vec![metric("m", |m| {
                m.count = int(count);
                m.interval = s(interval);
            })]);
            let (run, answered) = drive(run, t(0), |_| answer(AnalysisPhase::Successful));
            assert_eq!(
                run.status.phase,
                Some(AnalysisPhase::Successful),
                "count {count} interval {interval}"
            );
            assert_eq!(answered, count as usize);
            let step = parse_duration(interval).unwrap().0;
            assert_eq!(
                run.status.completed_at,
                Some(t(step * i64::from(count - 1)))
            );
        }
    }
}

/// A deterministic mix of answers, by metric and index.
fn mixed_answer(req: &MeasureRequest, seed: usize) -> MeasurementAnswer {
    let pick = (req.index as usize)
        .wrapping_mul(7)
        .wrapping_add(req.metric.len())
        .wrapping_add(seed)
        % 6;
    match pick {
        0 | 1 => answer(AnalysisPhase::Successful),
        2 => answer(AnalysisPhase::Failed),
        3 => answer(AnalysisPhase::Inconclusive),
        _ => error_answer("flaky"),
    }
}

fn limits_run(count: i32, interval: &str, seed: usize) -> AnalysisRun {
    let mut run = new_run(vec![
        metric("wet", |m| {
            m.count = int(count);
            m.interval = s(interval);
            m.failure_limit = int((seed % 3) as i32);
            m.inconclusive_limit = int((seed % 2) as i32);
            m.consecutive_error_limit = int((seed % 4) as i32);
        }),
        metric("dry", |m| {
            m.count = int(count);
            m.interval = s(interval);
        }),
    ]);
    run.spec.dry_run = vec![DryRun {
        metric_name: "dry".into(),
    }];
    run
}

#[test]
fn any_mix_of_answers_terminates_and_the_run_is_never_better_than_its_worst_wet_metric() {
    for count in 1..=10 {
        for interval in ["1s", "60s"] {
            for seed in 0..12 {
                let (run, _) = drive(limits_run(count, interval, seed), t(0), |req| {
                    mixed_answer(req, seed)
                });
                let phase = run.status.phase.unwrap();
                assert!(phase.completed());
                for (metric, result) in run.spec.metrics.iter().zip(&run.status.metric_results)
                {
                    assert_eq!(metric.name, result.name, "spec order");
                    if !result.dry_run {
                        assert!(
                            !is_worse(phase, result.phase),
                            "run {phase:?} but {} {:?}",
                            result.name,
                            result.phase
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_dry_run_metric_never_changes_the_run_phase() {
    for seed in 0..12 {
        for dry_answer in [
            answer(AnalysisPhase::Successful),
            answer(AnalysisPhase::Failed),
            answer(AnalysisPhase::Inconclusive),
            error_answer("down"),
        ] {
            let with_dry = limits_run(3, "30s", seed);
            let mut without = with_dry.clone();
            without.spec.metrics.truncate(1);
            without.spec.dry_run.clear();
            let wet = |req: &MeasureRequest| mixed_answer(req, seed);
            let (a, _) = drive(with_dry, t(0), |req| {
                if req.metric == "dry" {
                    dry_answer.clone()
                } else {
                    wet(req)
                }
            });
            let (b, _) = drive(without, t(0), wet);
            assert_eq!(
                a.status.phase, b.status.phase,
                "seed {seed} dry {dry_answer:?}"
            );
            assert_eq!(a.status.message, b.status.message);
            assert_eq!(a.status.run_summary, b.status.run_summary);
        }
    }
}

#[test]
fn reconcile_is_deterministic_and_idempotent_at_rest() {
    let run = limits_run(3, "30s", 5);
    let r1 = reconcile_run(&run, t(0));
    assert_eq!(r1, reconcile_run(&run, t(0)));
    let mut next = run.clone();
    next.status = r1.status.clone();
    let r2 = reconcile_run(&next, t(0));
    assert_eq!(
        r2.status, r1.status,
        "nothing more happens at the same instant"
    );
    assert!(r2.measure.is_empty());
}

#[test]
fn garbage_never_panics() {
    let huge = |m: &mut Metric| {
        m.count = int(i32::MAX);
        m.interval = s("2562047h");
        m.failure_limit = int(i32::MIN);
        m.consecutive_error_limit = Some(IntOrString::String("99999999999999999999".into()));
    };
    let metrics = vec![
        bare("no-provider", |_| {}),
        metric("negative", |m| {
            m.count = int(-5);
            m.interval = s("-10s");
            m.inconclusive_limit = int(-1);
            m.consecutive_success_limit = int(-3);
        }),
        metric("bad-durations", |m| {
            m.interval = s("soon");
            m.initial_delay = s("later");
            m.count = Some(IntOrString::String("three".into()));
        }),
        metric("huge", huge),
        metric("job", |m| m.provider = job()),
    ];
    let weird_results = vec![
        MetricResult {
            name: "ghost".into(),
            phase: AnalysisPhase::Failed,
            ..MetricResult::default()
        },
        MetricResult {
            name: "huge".into(),
            count: i32::MAX,
            error: i32::MAX,
            failed: i32::MAX,
            consecutive_error: i32::MAX,
            measurements: vec![
                Measurement {
                    finished_at: Some(Timestamp(i64::MAX)),
                    ..Measurement::default()
                },
                Measurement {
                    resume_at: Some(Timestamp(i64::MIN)),
                    ..Measurement::default()
                },
            ],
            ..MetricResult::default()
        },
        MetricResult {
            name: "negative".into(),
            count: -7,
            measurements: vec![finished(AnalysisPhase::Pending, Timestamp(i64::MIN))],
            ..MetricResult::default()
        },
        MetricResult {
            name: "negative".into(),
            ..MetricResult::default()
        },
    ];
    for terminate in [false, true] {
        for now in [Timestamp(i64::MIN), Timestamp(0), t(0), Timestamp(i64::MAX)] {
            for status in [
                AnalysisRunStatus::default(),
                running_status(weird_results.clone()),
            ] {
                let mut run = new_run(metrics.clone());
                run.spec.terminate = terminate;
                run.status = status.clone();
                let r = reconcile_run(&run, now);
                let _ = settle_run(&run, now);
                let _ = in_flight_requests(&run);
                for (name, index) in [
                    ("huge", i32::MAX),
                    ("negative", -6),
                    ("job", 1),
                    ("ghost", 0),
                ] {
                    let _ = record_answer(&run, name, index, &error_answer("x"), now);
                    let _ = record_answer(
                        &run,
                        name,
                        index,
                        &answer(AnalysisPhase::Successful),
                        now,
                    );
                }
                if let Some(wake) = r.wake {
                    assert!(wake > now || now == Timestamp(i64::MAX));
                }
                // The rules themselves, without validation in front of them.
                let mut raw = status;
                for terminating in [false, true] {
                    let _ = plan(&raw, &metrics, terminating, now);
                }
                let _ = assess_run(&mut raw, &metrics, &dry(&["huge"]), terminate);
                let _ = next_wake(&raw, &metrics, now);
                trim_measurements(
                    &mut raw,
                    &metrics,
                    &BTreeMap::from([("huge".to_string(), -1)]),
                    0,
                );
                for m in &metrics {
                    for res in &raw.metric_results {
                        let _ = assess_metric(m, res, terminate);
                    }
                }
            }
        }
    }
}
