//! Metric validation (Argo's `ValidateMetrics`, utils/analysis/factory.go) and dry-run /
//! retention rule matching (`GetDryRunMetrics`, `GetMeasurementRetentionMetrics`,
//! utils/analysis/helpers.go).

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use super::condition::check_condition;
use crate::api::{DryRun, IntOrString, MeasurementRetention, Metric};

/// Validates a run's metrics, after argument resolution. `Err` is Argo's message, prefixed
/// with the metric's index (`metrics[0]: no provider specified`); the first problem wins.
///
/// Per metric, in Argo's order: count against failureLimit + consecutiveSuccessLimit and
/// inconclusiveLimit, interval required when count > 1, interval and initialDelay parse as
/// Go durations, limit ranges, exactly one provider. Then, beyond Argo:
///
/// - a limit or count given as a string must be an integer (`count: "{{args.n}}"` resolved
///   to `"5"` is fine). Argo reads a non-numeric string as 0 without a word;
/// - `successCondition` and `failureCondition` must compile ([`check_condition`]), so a
///   typo fails the run here instead of erroring every measurement. A condition still
///   holding a placeholder (an argument from a Secret) is not checked.
pub fn validate_metrics(metrics: &[Metric]) -> Result<(), String> {
    if metrics.is_empty() {
        return Err("no metrics specified".into());
    }
    let mut names = BTreeSet::new();
    for (i, metric) in metrics.iter().enumerate() {
        if !names.insert(metric.name.as_str()) {
            return Err(format!("metrics[{i}]: duplicate name '{}'", metric.name));
        }
        validate_metric(metric).map_err(|e| format!("metrics[{i}]: {e}"))?;
    }
    Ok(())
}

fn validate_metric(metric: &Metric) -> Result<(), String> {
    let count = int_value("count", metric.count.as_ref())?.unwrap_or(0);
    let failure_limit = int_value("failureLimit", metric.failure_limit.as_ref())?.unwrap_or(0);
    let inconclusive_limit =
        int_value("inconclusiveLimit", metric.inconclusive_limit.as_ref())?.unwrap_or(0);
    let consecutive_error_limit = int_value(
        "consecutiveErrorLimit",
        metric.consecutive_error_limit.as_ref(),
    )?;
    let consecutive_success_limit = int_value(
        "consecutiveSuccessLimit",
        metric.consecutive_success_limit.as_ref(),
    )?
    .unwrap_or(0);
    let interval = metric.interval.as_deref().unwrap_or("");
    let initial_delay = metric.initial_delay.as_deref().unwrap_or("");

    if count > 0 {
        if failure_limit >= 0
            && consecutive_success_limit >= 0
            && count < failure_limit.saturating_add(consecutive_success_limit)
        {
            return Err(format!(
                "count ({count}) must be >= failureLimit + consecutiveSuccessLimit ({failure_limit} + {consecutive_success_limit}) if both >= 0"
            ));
        }
        if failure_limit < 0 && count < consecutive_success_limit {
            return Err(format!(
                "count ({count}) must be >= consecutiveSuccessLimit ({consecutive_success_limit}) if failureLimit < 0"
            ));
        }
        if count < inconclusive_limit {
            return Err("count must be >= inconclusiveLimit".into());
        }
    }
    if count > 1 && interval.is_empty() {
        return Err("interval must be specified when count > 1".into());
    }
    if !interval.is_empty() {
        crate::time::parse_go_duration(interval).map_err(|e| format!("invalid interval string: {e}"))?;
    }
    if !initial_delay.is_empty() {
        crate::time::parse_go_duration(initial_delay).map_err(|e| format!("invalid startDelay string: {e}"))?;
    }
    if failure_limit < -1 {
        return Err("failureLimit must be >= 0, or -1 to be disabled".into());
    }
    if inconclusive_limit < 0 {
        return Err("inconclusiveLimit must be >= 0".into());
    }
    if consecutive_error_limit.is_some_and(|l| l < 0) {
        return Err("consecutiveErrorLimit must be >= 0".into());
    }
    if consecutive_success_limit < 0 {
        return Err("consecutiveSuccessLimit must be >= 0".into());
    }
    if consecutive_success_limit == 0 && failure_limit == -1 {
        return Err("failureLimit and consecutiveSuccessLimit cannot both be disabled".into());
    }
    match metric.provider.kinds().len() {
        0 => return Err("no provider specified".into()),
        1 => {}
        _ => return Err("multiple providers specified".into()),
    }
    for (field, condition) in [
        ("successCondition", &metric.success_condition),
        ("failureCondition", &metric.failure_condition),
    ] {
        let Some(condition) = condition.as_deref().filter(|c| !c.is_empty()) else {
            continue;
        };
        // `{{` is not expr syntax; after resolution only a Secret's placeholder remains.
        if condition.contains("{{") {
            continue;
        }
        check_condition(condition).map_err(|e| format!("invalid {field} \"{condition}\": {e}"))?;
    }
    Ok(())
}

/// An `IntOrString` count or limit as a number. Kubernetes' `IntValue()` reads a
/// non-numeric string as 0; we refuse it instead.
fn int_value(field: &str, value: Option<&IntOrString>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        Some(IntOrString::Int(n)) => Ok(Some(i64::from(*n))),
        Some(IntOrString::String(s)) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{field} must be an integer, got \"{s}\"")),
    }
}

/// The metrics a rule's `metricName` selects, read as Argo does: an unanchored regular
/// expression. Argo ignores the compile error, so an invalid expression (the documented
/// wildcard `*` is one) selects nothing.
fn rule_selects<'m>(pattern: &str, metrics: &'m [Metric]) -> impl Iterator<Item = &'m Metric> {
    let re = Regex::new(pattern).ok();
    metrics
        .iter()
        .filter(move |m| re.as_ref().is_some_and(|re| re.is_match(&m.name)))
}

/// The names of the metrics run in dry-run mode. A rule that matches no metric is an
/// error (`dryRun[0]: Rule didn't match any metric name(s)`), reported for the first such
/// rule.
pub fn dry_run_metrics(rules: &[DryRun], metrics: &[Metric]) -> Result<BTreeSet<String>, String> {
    let mut names = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut matched = false;
        for metric in rule_selects(&rule.metric_name, metrics) {
            matched = true;
            names.insert(metric.name.clone());
        }
        if !matched {
            return Err(format!("dryRun[{i}]: Rule didn't match any metric name(s)"));
        }
    }
    Ok(names)
}

/// Measurement history limit per metric name, for metrics a retention rule matches. A
/// rule that matches no metric is an error
/// (`measurementRetention[0]: Rule didn't match any metric name(s)`).
///
/// When several rules match a metric, the last one applies: Argo fills its map rule by
/// rule, each match overwriting the previous one. Argo only honours a limit above 0 (else
/// it keeps its default of 10), so a metric whose applicable rule has `limit <= 0` is left
/// out of the map: the caller's default applies to every name missing here.
pub fn retention_limits(
    rules: &[MeasurementRetention],
    metrics: &[Metric],
) -> Result<BTreeMap<String, i32>, String> {
    let mut applicable: BTreeMap<String, i32> = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut matched = false;
        for metric in rule_selects(&rule.metric_name, metrics) {
            matched = true;
            applicable.insert(metric.name.clone(), rule.limit);
        }
        if !matched {
            return Err(format!(
                "measurementRetention[{i}]: Rule didn't match any metric name(s)"
            ));
        }
    }
    applicable.retain(|_, limit| *limit > 0);
    Ok(applicable)
}

#[cfg(test)]
mod tests {
    use crate::time::parse_go_duration;
    use super::*;
    use crate::api::{JobMetric, MetricProvider, PrometheusMetric, WebMetric};
    use serde_json::json;

    fn prom(name: &str) -> Metric {
        Metric {
            name: name.into(),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric::default()),
                ..MetricProvider::default()
            },
            ..Metric::default()
        }
    }

    fn int(n: i32) -> Option<IntOrString> {
        Some(IntOrString::Int(n))
    }

    fn check(metric: Metric) -> Result<(), String> {
        validate_metrics(&[metric])
    }

    // C7, row by row.

    #[test]
    fn count_must_cover_failure_limit() {
        let m = Metric {
            count: int(1),
            failure_limit: int(2),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err("metrics[0]: count (1) must be >= failureLimit + consecutiveSuccessLimit (2 + 0) if both >= 0".into())
        );
        assert_eq!(
            check(Metric {
                count: int(0),
                failure_limit: int(2),
                ..prom("m")
            }),
            Ok(())
        );
    }

    #[test]
    fn count_must_cover_inconclusive_limit() {
        let m = Metric {
            count: int(1),
            inconclusive_limit: int(2),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err("metrics[0]: count must be >= inconclusiveLimit".into())
        );
        assert_eq!(
            check(Metric {
                count: int(0),
                inconclusive_limit: int(2),
                ..prom("m")
            }),
            Ok(())
        );
    }

    #[test]
    fn count_with_interval_and_failure_limit_is_valid() {
        let m = Metric {
            count: int(2),
            interval: Some("60s".into()),
            failure_limit: int(2),
            ..prom("m")
        };
        assert_eq!(check(m), Ok(()));
    }

    #[test]
    fn intervals_parse_as_go_durations() {
        let m = Metric {
            interval: Some("60s-typo".into()),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err("metrics[0]: invalid interval string: time: unknown unit \"s-typo\" in duration \"60s-typo\"".into())
        );
        let m = Metric {
            initial_delay: Some("60s-typo".into()),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err("metrics[0]: invalid startDelay string: time: unknown unit \"s-typo\" in duration \"60s-typo\"".into())
        );
    }

    #[test]
    fn no_metrics_is_an_error() {
        assert_eq!(validate_metrics(&[]), Err("no metrics specified".into()));
    }

    #[test]
    fn count_above_one_needs_an_interval() {
        let m = Metric {
            count: int(2),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err("metrics[0]: interval must be specified when count > 1".into())
        );
    }

    #[test]
    fn duplicate_metric_names() {
        assert_eq!(
            validate_metrics(&[prom("success-rate"), prom("success-rate")]),
            Err("metrics[1]: duplicate name 'success-rate'".into())
        );
    }

    #[test]
    fn limit_ranges() {
        assert_eq!(
            check(Metric {
                failure_limit: int(-2),
                ..prom("m")
            }),
            Err("metrics[0]: failureLimit must be >= 0, or -1 to be disabled".into())
        );
        assert_eq!(
            check(Metric {
                inconclusive_limit: int(-1),
                ..prom("m")
            }),
            Err("metrics[0]: inconclusiveLimit must be >= 0".into())
        );
        assert_eq!(
            check(Metric {
                consecutive_error_limit: int(-1),
                ..prom("m")
            }),
            Err("metrics[0]: consecutiveErrorLimit must be >= 0".into())
        );
        assert_eq!(
            check(Metric {
                consecutive_success_limit: int(-1),
                ..prom("m")
            }),
            Err("metrics[0]: consecutiveSuccessLimit must be >= 0".into())
        );
        assert_eq!(
            check(Metric {
                consecutive_success_limit: int(0),
                failure_limit: int(-1),
                ..prom("m")
            }),
            Err(
                "metrics[0]: failureLimit and consecutiveSuccessLimit cannot both be disabled"
                    .into()
            )
        );
        assert_eq!(
            check(Metric {
                consecutive_success_limit: int(3),
                failure_limit: int(-1),
                ..prom("m")
            }),
            Ok(())
        );
        assert_eq!(
            check(Metric {
                consecutive_error_limit: int(0),
                ..prom("m")
            }),
            Ok(())
        );
    }

    #[test]
    fn count_covers_consecutive_success_limit_when_failures_are_disabled() {
        let m = Metric {
            count: int(2),
            interval: Some("1m".into()),
            failure_limit: int(-1),
            consecutive_success_limit: int(3),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err(
                "metrics[0]: count (2) must be >= consecutiveSuccessLimit (3) if failureLimit < 0"
                    .into()
            )
        );
        let m = Metric {
            count: int(3),
            interval: Some("1m".into()),
            failure_limit: int(1),
            consecutive_success_limit: int(3),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err("metrics[0]: count (3) must be >= failureLimit + consecutiveSuccessLimit (1 + 3) if both >= 0".into())
        );
    }

    #[test]
    fn exactly_one_provider() {
        let none = Metric {
            name: "m".into(),
            count: int(1),
            ..Metric::default()
        };
        assert_eq!(check(none), Err("metrics[0]: no provider specified".into()));
        let mut many: MetricProvider = serde_json::from_value(json!({
            "prometheus": {}, "kayenta": {}, "web": {}, "datadog": {}, "wavefront": {}, "newRelic": {},
            "job": {}, "cloudWatch": {}, "graphite": {}, "influxdb": {}
        }))
        .expect("providers");
        assert_eq!(many.kinds().len(), 10);
        assert_eq!(
            check(Metric {
                name: "m".into(),
                provider: many.clone(),
                ..Metric::default()
            }),
            Err("metrics[0]: multiple providers specified".into())
        );
        many = MetricProvider {
            plugin: Some(
                [
                    ("a/b".to_string(), json!({})),
                    ("c/d".to_string(), json!({})),
                ]
                .into_iter()
                .collect(),
            ),
            ..MetricProvider::default()
        };
        assert_eq!(
            check(Metric {
                name: "m".into(),
                provider: many,
                ..Metric::default()
            }),
            Err("metrics[0]: multiple providers specified".into())
        );
        let job = MetricProvider {
            job: Some(JobMetric::default()),
            ..MetricProvider::default()
        };
        assert_eq!(
            check(Metric {
                name: "m".into(),
                provider: job,
                ..Metric::default()
            }),
            Ok(())
        );
    }

    #[test]
    fn the_index_names_the_bad_metric() {
        let bad = Metric {
            name: "b".into(),
            ..Metric::default()
        };
        assert_eq!(
            validate_metrics(&[prom("a"), bad]),
            Err("metrics[1]: no provider specified".into())
        );
    }

    #[test]
    fn string_limits_must_be_integers() {
        let s = |v: &str| Some(IntOrString::String(v.into()));
        assert_eq!(
            check(Metric {
                count: s("1"),
                failure_limit: s("2"),
                ..prom("m")
            })
            .map_err(|e| e.contains("(2 + 0)")),
            Err(true)
        );
        assert_eq!(
            check(Metric {
                count: s("abc"),
                ..prom("m")
            }),
            Err("metrics[0]: count must be an integer, got \"abc\"".into())
        );
        assert_eq!(
            check(Metric {
                failure_limit: s("{{args.limit}}"),
                ..prom("m")
            }),
            Err("metrics[0]: failureLimit must be an integer, got \"{{args.limit}}\"".into())
        );
        assert!(check(Metric {
            consecutive_success_limit: s("25%"),
            ..prom("m")
        })
        .is_err());
        assert_eq!(
            check(Metric {
                inconclusive_limit: s("3"),
                count: s("3"),
                interval: Some("1m".into()),
                ..prom("m")
            }),
            Ok(())
        );
    }

    #[test]
    fn conditions_must_compile() {
        let m = Metric {
            success_condition: Some("result[0] >=".into()),
            ..prom("m")
        };
        assert_eq!(
            check(m),
            Err("metrics[0]: invalid successCondition \"result[0] >=\": syntax error at 1:13: unexpected end of expression".into())
        );
        let m = Metric {
            failure_condition: Some("result ==== 1".into()),
            ..prom("m")
        };
        assert!(check(m)
            .unwrap_err()
            .starts_with("metrics[0]: invalid failureCondition \"result ==== 1\": syntax error"));
        let ok = Metric {
            success_condition: Some("result[0] >= 0.95".into()),
            failure_condition: Some(String::new()),
            ..prom("m")
        };
        assert_eq!(check(ok), Ok(()));
        let secret = Metric {
            success_condition: Some("result > {{args.threshold}}".into()),
            ..prom("m")
        };
        assert_eq!(check(secret), Ok(()));
    }

    #[test]
    fn web_metric_validates() {
        let web = MetricProvider {
            web: Some(WebMetric::default()),
            ..MetricProvider::default()
        };
        assert_eq!(
            check(Metric {
                name: "w".into(),
                provider: web,
                ..Metric::default()
            }),
            Ok(())
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("-1m"), Ok(-60_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("1µs"), Ok(1_000));
        assert_eq!(
            parse_go_duration("10").map_err(|e| e.to_string()),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            parse_go_duration("").map_err(|e| e.to_string()),
            Err("time: invalid duration \"\"".into())
        );
        assert_eq!(
            parse_go_duration("s").map_err(|e| e.to_string()),
            Err("time: invalid duration \"s\"".into())
        );
        assert_eq!(
            parse_go_duration(".s").map_err(|e| e.to_string()),
            Err("time: invalid duration \".s\"".into())
        );
        assert_eq!(
            parse_go_duration("5 m").map_err(|e| e.to_string()),
            Err("time: unknown unit \" m\" in duration \"5 m\"".into())
        );
        assert_eq!(
            parse_go_duration("3é").map_err(|e| e.to_string()),
            Err("time: unknown unit \"\\xc3\\xa9\" in duration \"3\\xc3\\xa9\"".into())
        );
        assert_eq!(
            parse_go_duration("9999999999999999999h").map_err(|e| e.to_string()),
            Err("time: invalid duration \"9999999999999999999h\"".into())
        );
        assert_eq!(
            parse_go_duration("3000000h").map_err(|e| e.to_string()),
            Err("time: invalid duration \"3000000h\"".into())
        );
        assert_eq!(parse_go_duration("-2562047h47m16.854775808s"), Ok(i64::MIN));
        assert!(parse_go_duration("2562047h47m16.854775808s").is_err());
        for garbage in [
            "-",
            "+",
            "--1s",
            "1..5s",
            "1.2.3s",
            "1e3s",
            "\u{0}",
            "1s2",
            "0.0000000000000000000000001ns",
            "١s",
        ] {
            let _ = parse_go_duration(garbage);
        }
    }

    // AR-11 and the dry-run / retention rules.

    #[test]
    fn dry_run_rules_are_unanchored_regexes() {
        let metrics = [prom("success-rate"), prom("error-rate"), prom("latency")];
        let rule = |n: &str| DryRun {
            metric_name: n.into(),
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(dry_run_metrics(&[], &metrics), Ok(BTreeSet::new()));
        assert_eq!(
            dry_run_metrics(&[rule(".*")], &metrics),
            Ok(names(&["error-rate", "latency", "success-rate"]))
        );
        assert_eq!(
            dry_run_metrics(&[rule("rate")], &metrics),
            Ok(names(&["error-rate", "success-rate"]))
        );
        assert_eq!(
            dry_run_metrics(&[rule("^latency$")], &metrics),
            Ok(names(&["latency"]))
        );
        assert_eq!(
            dry_run_metrics(&[rule("latency"), rule("throughput")], &metrics),
            Err("dryRun[1]: Rule didn't match any metric name(s)".into())
        );
        assert_eq!(
            dry_run_metrics(&[rule("error-rate")], &[prom("success-rate")]),
            Err("dryRun[0]: Rule didn't match any metric name(s)".into())
        );
    }

    #[test]
    fn a_lone_star_matches_nothing() {
        // Argo quirk: the documented wildcard `*` is an invalid regexp.
        let metrics = [prom("metric2")];
        assert_eq!(
            dry_run_metrics(
                &[DryRun {
                    metric_name: "*".into()
                }],
                &metrics
            ),
            Err("dryRun[0]: Rule didn't match any metric name(s)".into())
        );
        assert_eq!(
            retention_limits(
                &[MeasurementRetention {
                    metric_name: "*".into(),
                    limit: 2
                }],
                &metrics
            ),
            Err("measurementRetention[0]: Rule didn't match any metric name(s)".into())
        );
    }

    #[test]
    fn retention_limits_by_metric() {
        let metrics = [prom("metric1"), prom("metric2")];
        let rule = |n: &str, limit| MeasurementRetention {
            metric_name: n.into(),
            limit,
        };
        assert_eq!(retention_limits(&[], &metrics), Ok(BTreeMap::new()));
        assert_eq!(
            retention_limits(&[rule("metric2", 2)], &metrics),
            Ok([("metric2".to_string(), 2)].into_iter().collect())
        );
        assert_eq!(
            retention_limits(&[rule("error-rate", 2)], &metrics),
            Err("measurementRetention[0]: Rule didn't match any metric name(s)".into())
        );
        // Several rules matching one metric: the last wins, as in Argo.
        let limits = retention_limits(&[rule("metric", 3), rule("2$", 7)], &metrics).expect("ok");
        assert_eq!(
            limits,
            [("metric1".to_string(), 3), ("metric2".to_string(), 7)]
                .into_iter()
                .collect()
        );
        // A limit of 0 leaves the default in force.
        let limits = retention_limits(&[rule("metric", 3), rule("2$", 0)], &metrics).expect("ok");
        assert_eq!(limits, [("metric1".to_string(), 3)].into_iter().collect());
    }
}
