//! Template merging, argument merging and `{{args.*}}` resolution (Argo's
//! `FlattenTemplates`, `MergeArgs` and `ResolveArgs`; utils/analysis/helpers.go,
//! utils/analysis/factory.go `ResolveMetricArgs`, utils/template/template.go).

use std::collections::BTreeMap;

use serde::Serialize;

use super::condition::go_quote;
use crate::api::{
    AnalysisTemplate, Argument, DryRun, IntOrString, MeasurementRetention, Metric, MetricProvider,
    SecretKeyRef,
};

/// Templates flattened into one run spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlattenedTemplates {
    /// Metrics, namespaced templates' first, in order.
    pub metrics: Vec<Metric>,
    /// Arguments merged by name.
    pub args: Vec<Argument>,
    /// Dry-run rules.
    pub dry_run: Vec<DryRun>,
    /// Retention rules.
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// Why templates (and the caller's rules and arguments) do not merge; the messages are
/// Argo's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Two metrics of the merged templates share a name.
    #[error("two metrics have the same name '{0}'")]
    DuplicateMetric(String),
    /// Two dry-run rules name the same metric.
    #[error("two Dry-Run metric rules have the same name '{0}'")]
    DuplicateDryRun(String),
    /// Two measurement-retention rules name the same metric.
    #[error("two Measurement Retention metric rules have the same name '{0}'")]
    DuplicateRetention(String),
    /// Two templates give one argument different values.
    #[error("Argument `{name}` specified multiple times with different values: '{first}', '{second}'")]
    ConflictingArgument {
        /// The argument.
        name: String,
        /// The first template's value.
        first: String,
        /// The other template's value.
        second: String,
    },
    /// An argument ends with neither a value nor a `valueFrom`.
    #[error("args.{0} was not resolved")]
    UnresolvedArgument(String),
}

/// Merges templates (namespaced first, then cluster-scoped). Errors carry Argo's messages,
/// checked in Argo's order: metric names, dry-run rules, retention rules, arguments.
///
/// - metrics are concatenated; a name seen twice is `two metrics have the same name '<n>'`;
/// - dry-run and retention rules are concatenated; a `metricName` seen twice is
///   `two Dry-Run metric rules have the same name '<n>'` /
///   `two Measurement Retention metric rules have the same name '<n>'`;
/// - arguments are merged by name: two different values are
///   ``Argument `<n>` specified multiple times with different values: '<a>', '<b>'``, an
///   argument without a value is replaced by a later one with the same name (the whole
///   argument, `valueFrom` included), one with a value is never replaced.
///
/// Nested `spec.templates` references are not followed here: the caller fetches every
/// referenced template (recursively, de-duplicated by name per kind) and passes them all.
pub fn flatten_templates(
    namespaced: &[AnalysisTemplate],
    cluster: &[AnalysisTemplate],
) -> Result<FlattenedTemplates, TemplateError> {
    let all = || namespaced.iter().chain(cluster);

    let metrics: Vec<Metric> = all().flat_map(|t| t.spec.metrics.iter().cloned()).collect();
    first_duplicate(metrics.iter().map(|m| m.name.as_str())).map_or(Ok(()), |name| {
        Err(TemplateError::DuplicateMetric(name.to_string()))
    })?;

    let dry_run: Vec<DryRun> = all().flat_map(|t| t.spec.dry_run.iter().cloned()).collect();
    check_dry_run_names(&dry_run)?;

    let measurement_retention: Vec<MeasurementRetention> = all()
        .flat_map(|t| t.spec.measurement_retention.iter().cloned())
        .collect();
    check_retention_names(&measurement_retention)?;

    let mut args: Vec<Argument> = Vec::new();
    for arg in all().flat_map(|t| t.spec.args.iter()) {
        match args.iter_mut().find(|a| a.name == arg.name) {
            None => args.push(arg.clone()),
            Some(prev) => match (&prev.value, &arg.value) {
                (Some(a), Some(b)) if a != b => {
                    return Err(TemplateError::ConflictingArgument {
                        name: prev.name.clone(),
                        first: a.clone(),
                        second: b.clone(),
                    })
                }
                (Some(_), _) => {}
                (None, _) => *prev = arg.clone(),
            },
        }
    }

    Ok(FlattenedTemplates {
        metrics,
        args,
        dry_run,
        measurement_retention,
    })
}

/// The caller's dry-run rules (from the Rollout or Experiment) followed by the templates';
/// a `metricName` seen twice is Argo's `two Dry-Run metric rules have the same name '<n>'`.
pub fn merge_dry_run(caller: &[DryRun], templates: &[DryRun]) -> Result<Vec<DryRun>, TemplateError> {
    let merged: Vec<DryRun> = caller.iter().chain(templates).cloned().collect();
    check_dry_run_names(&merged)?;
    Ok(merged)
}

/// The caller's retention rules followed by the templates'; a `metricName` seen twice is
/// Argo's `two Measurement Retention metric rules have the same name '<n>'`.
pub fn merge_measurement_retention(
    caller: &[MeasurementRetention],
    templates: &[MeasurementRetention],
) -> Result<Vec<MeasurementRetention>, TemplateError> {
    let merged: Vec<MeasurementRetention> = caller.iter().chain(templates).cloned().collect();
    check_retention_names(&merged)?;
    Ok(merged)
}

fn check_dry_run_names(rules: &[DryRun]) -> Result<(), TemplateError> {
    first_duplicate(rules.iter().map(|r| r.metric_name.as_str()))
        .map_or(Ok(()), |name| Err(TemplateError::DuplicateDryRun(name.to_string())))
}

fn check_retention_names(rules: &[MeasurementRetention]) -> Result<(), TemplateError> {
    first_duplicate(rules.iter().map(|r| r.metric_name.as_str()))
        .map_or(Ok(()), |name| Err(TemplateError::DuplicateRetention(name.to_string())))
}

fn first_duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::BTreeSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

/// Merges the caller's arguments into the template's (Argo's `MergeArgs`): the result has
/// the template's arguments, in the template's order; an incoming argument with the same
/// name overrides the value (or, when it has no value, the `valueFrom`); incoming arguments
/// the template does not declare are dropped. Every argument must end with a value or a
/// `valueFrom`, else `args.<name> was not resolved`.
pub fn merge_args(
    template_args: &[Argument],
    incoming: &[Argument],
) -> Result<Vec<Argument>, TemplateError> {
    let mut merged = template_args.to_vec();
    for arg in incoming {
        // Argo's findArg: the first template argument of that name.
        if let Some(target) = merged.iter_mut().find(|a| a.name == arg.name) {
            if arg.value.is_some() {
                target.value = arg.value.clone();
            } else if arg.value_from.is_some() {
                target.value_from = arg.value_from.clone();
            }
        }
    }
    match merged
        .iter()
        .find(|a| a.value.is_none() && a.value_from.is_none())
    {
        Some(unresolved) => Err(TemplateError::UnresolvedArgument(unresolved.name.clone())),
        None => Ok(merged),
    }
}

/// Resolves `{{args.<name>}}` in every metric (Argo's `ResolveMetricArgs`): each metric is
/// serialised to JSON, placeholders are replaced by the JSON-escaped argument values, and
/// the text is decoded back into a metric. Arguments whose value comes from a Secret keep
/// their placeholder (the shell substitutes the secret right before measuring).
///
/// Errors are Argo's, see [`resolve_quoted_args`]; with several unresolved placeholders the
/// last one in JSON field order is reported. The JSON is written in the field order of
/// Argo's Go `Metric` struct (`consecutiveSuccessLimit` after `provider`), so that "last"
/// means the same thing as in Argo.
pub fn resolve_metrics(metrics: &[Metric], args: &[Argument]) -> Result<Vec<Metric>, String> {
    metrics.iter().map(|m| resolve_metric(m, args)).collect()
}

fn resolve_metric(metric: &Metric, args: &[Argument]) -> Result<Metric, String> {
    let json = serde_json::to_string(&GoOrderedMetric::from(metric)).map_err(|e| e.to_string())?;
    let resolved = resolve_quoted_args(&json, args)?;
    serde_json::from_str(&resolved).map_err(|e| e.to_string())
}

/// [`Metric`] with its fields in the order of Argo's Go struct, for serialisation only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GoOrderedMetric<'a> {
    name: &'a String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_delay: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: &'a Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_condition: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_condition: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_limit: &'a Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inconclusive_limit: &'a Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consecutive_error_limit: &'a Option<IntOrString>,
    provider: &'a MetricProvider,
    #[serde(skip_serializing_if = "Option::is_none")]
    consecutive_success_limit: &'a Option<IntOrString>,
}

impl<'a> From<&'a Metric> for GoOrderedMetric<'a> {
    fn from(metric: &'a Metric) -> Self {
        // Exhaustive on purpose: a field added to `Metric` must be added here too, or it
        // would be lost in resolution.
        let Metric {
            name,
            interval,
            initial_delay,
            count,
            success_condition,
            failure_condition,
            failure_limit,
            inconclusive_limit,
            consecutive_error_limit,
            consecutive_success_limit,
            provider,
        } = metric;
        GoOrderedMetric {
            name,
            interval,
            initial_delay,
            count,
            success_condition,
            failure_condition,
            failure_limit,
            inconclusive_limit,
            consecutive_error_limit,
            provider,
            consecutive_success_limit,
        }
    }
}

/// Substitutes `{{args.<name>}}` placeholders in `template` (Argo's `ResolveQuotedArgs`),
/// each value JSON-escaped so that a template which is JSON text stays valid JSON.
/// Whitespace inside the braces is ignored (`{{ args.x }}`). Errors, in Argo's order:
///
/// 1. an opening `{{` without a closing `}}`:
///    `Cannot find end tag="}}" in the template="<template>" starting from "<rest>"`;
/// 2. an argument (not from a Secret) without a value: `argument "<name>" was not supplied`;
/// 3. a placeholder that names no argument, `args.*` or not:
///    `failed to resolve {{<placeholder>}}` (the last one, with its whitespace).
///
/// Arguments with a `valueFrom.secretKeyRef` keep their placeholder verbatim.
///
/// Divergence from Argo: Argo escapes with Go's `strconv.Quote`, whose `\a`, `\v` and `\x..`
/// escapes are not JSON, so a value holding such a control character makes the run fail to
/// decode; JSON escaping has no such gap.
pub fn resolve_quoted_args(template: &str, args: &[Argument]) -> Result<String, String> {
    let pieces = parse_placeholders(template)?;

    let secrets = secret_args(args);
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for arg in args {
        if secrets.contains_key(&arg.name) {
            continue;
        }
        let Some(value) = &arg.value else {
            return Err(format!("argument \"{}\" was not supplied", arg.name));
        };
        values.insert(format!("args.{}", arg.name), json_escape(value));
    }

    let mut out = String::with_capacity(template.len());
    let mut unresolved = None;
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Tag(tag) => {
                let key = tag.trim();
                if let Some(value) = values.get(key) {
                    out.push_str(value);
                } else if key
                    .strip_prefix("args.")
                    .is_some_and(|name| secrets.contains_key(name))
                {
                    out.push_str("{{");
                    out.push_str(tag);
                    out.push_str("}}");
                } else {
                    // Argo keeps going and reports the last failure.
                    unresolved = Some(format!("failed to resolve {{{{{tag}}}}}"));
                }
            }
        }
    }
    match unresolved {
        Some(err) => Err(err),
        None => Ok(out),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Tag(&'a str),
}

/// Splits a template at `{{ ... }}` the way fasttemplate does: a tag runs from `{{` to the
/// first `}}` after it, with no nesting.
fn parse_placeholders(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        pieces.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "Cannot find end tag=\"}}}}\" in the template={} starting from {}",
                go_quote(template),
                go_quote(after)
            ));
        };
        pieces.push(Piece::Tag(&after[..close]));
        rest = &after[close + 2..];
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

/// The body of a JSON string literal holding `value`.
fn json_escape(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map_or_else(String::new, str::to_string)
}

/// The arguments whose values live in Secrets, by name.
pub fn secret_args(args: &[Argument]) -> BTreeMap<String, SecretKeyRef> {
    args.iter()
        .filter_map(|a| {
            a.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.clone())
                .map(|s| (a.name.clone(), s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AnalysisTemplateSpec, PrometheusMetric, ValueFrom, WebMetric};

    fn arg(name: &str, value: Option<&str>) -> Argument {
        Argument {
            name: name.into(),
            value: value.map(str::to_string),
            value_from: None,
        }
    }

    fn secret_arg(name: &str) -> Argument {
        Argument {
            name: name.into(),
            value: None,
            value_from: Some(ValueFrom {
                secret_key_ref: Some(SecretKeyRef {
                    name: "creds".into(),
                    key: "token".into(),
                }),
                field_ref: None,
            }),
        }
    }

    fn prom(name: &str, query: &str) -> Metric {
        Metric {
            name: name.into(),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric {
                    query: query.into(),
                    ..PrometheusMetric::default()
                }),
                ..MetricProvider::default()
            },
            ..Metric::default()
        }
    }

    fn template(
        metrics: Vec<Metric>,
        args: Vec<Argument>,
        dry: &[&str],
        keep: &[&str],
    ) -> AnalysisTemplate {
        AnalysisTemplate {
            spec: AnalysisTemplateSpec {
                metrics,
                args,
                dry_run: dry
                    .iter()
                    .map(|n| DryRun {
                        metric_name: n.to_string(),
                    })
                    .collect(),
                measurement_retention: keep
                    .iter()
                    .map(|n| MeasurementRetention {
                        metric_name: n.to_string(),
                        limit: 5,
                    })
                    .collect(),
                templates: vec![],
            },
            ..AnalysisTemplate::default()
        }
    }

    fn query(m: &Metric) -> &str {
        m.provider
            .prometheus
            .as_ref()
            .map(|p| p.query.as_str())
            .unwrap_or("")
    }

    // AR-10.

    #[test]
    fn last_unresolved_placeholder_is_reported() {
        let mut m = prom("m", "{{args.metric-name}}");
        m.success_condition = Some("{{args.does-not-exist}}".into());
        assert_eq!(
            resolve_metrics(&[m], &[]),
            Err("failed to resolve {{args.metric-name}}".into())
        );
    }

    #[test]
    fn consecutive_success_limit_comes_after_the_provider_as_in_go() {
        let mut m = prom("m", "{{args.a}}");
        m.consecutive_success_limit = Some(IntOrString::String("{{args.b}}".into()));
        assert_eq!(
            resolve_metrics(&[m], &[]),
            Err("failed to resolve {{args.b}}".into())
        );
    }

    #[test]
    fn argument_without_value_is_not_supplied() {
        let m = prom("m", "{{args.test}}");
        assert_eq!(
            resolve_metrics(&[m], &[arg("test", None)]),
            Err("argument \"test\" was not supplied".into())
        );
    }

    #[test]
    fn unterminated_tag_names_the_rest() {
        assert_eq!(
            resolve_quoted_args("test-{{args.var", &[arg("var", Some("foo"))]),
            Err("Cannot find end tag=\"}}\" in the template=\"test-{{args.var\" starting from \"args.var\"".into())
        );
    }

    #[test]
    fn whitespace_inside_braces_is_trimmed() {
        assert_eq!(
            resolve_quoted_args("test-{{ args.var }}", &[arg("var", Some("foo"))]),
            Ok("test-foo".into())
        );
        assert_eq!(
            resolve_quoted_args("{{args.var}}", &[arg("var", Some("foo"))]),
            Ok("foo".into())
        );
        // The error shows the placeholder as written.
        assert_eq!(
            resolve_quoted_args("{{ args.nope }}", &[]),
            Err("failed to resolve {{ args.nope }}".into())
        );
    }

    #[test]
    fn values_are_json_escaped() {
        let m = prom("m", "q {{args.v}}");
        let value = "a \"quoted\"\nnew\tline \\ é";
        let resolved = resolve_metrics(&[m], &[arg("v", Some(value))]).expect("resolves");
        assert_eq!(query(&resolved[0]), format!("q {value}"));
        assert_eq!(
            resolve_quoted_args("{{args.v}}", &[arg("v", Some("\"\n\t"))]),
            Ok("\\\"\\n\\t".into())
        );
    }

    #[test]
    fn other_placeholders_are_errors_like_in_argo() {
        // Argo resolves every `{{...}}`, not only `args.*`.
        assert_eq!(
            resolve_quoted_args("{{templates.x.podTemplateHash}}", &[]),
            Err("failed to resolve {{templates.x.podTemplateHash}}".into())
        );
    }

    #[test]
    fn secret_placeholders_are_kept() {
        let mut m = prom("m", "token={{ args.token }} svc={{args.svc}}");
        m.success_condition = Some("result[0] > {{args.threshold}}".into());
        let args = [
            secret_arg("token"),
            arg("svc", Some("api")),
            arg("threshold", Some("0.9")),
        ];
        let resolved = resolve_metrics(&[m], &args).expect("resolves");
        assert_eq!(query(&resolved[0]), "token={{ args.token }} svc=api");
        assert_eq!(
            resolved[0].success_condition.as_deref(),
            Some("result[0] > 0.9")
        );
    }

    #[test]
    fn seed_web_metric_resolves_and_keeps_the_token_placeholder() {
        use crate::api::WebMetricHeader;
        let m = Metric {
            name: "webmetric".into(),
            success_condition: Some("result == true".into()),
            provider: MetricProvider {
                web: Some(WebMetric {
                    url: "http://my-server.com/api/v1/measurement?service={{ args.service-name }}"
                        .into(),
                    headers: vec![WebMetricHeader {
                        key: "Authorization".into(),
                        value: "Bearer {{ args.api-token }}".into(),
                    }],
                    json_path: Some("{$.data.ok}".into()),
                    ..WebMetric::default()
                }),
                ..MetricProvider::default()
            },
            ..Metric::default()
        };
        let args = [
            arg("service-name", Some("guestbook")),
            secret_arg("api-token"),
        ];
        let resolved = resolve_metrics(&[m], &args).expect("resolves");
        let web = resolved[0].provider.web.as_ref().expect("web");
        assert_eq!(
            web.url,
            "http://my-server.com/api/v1/measurement?service=guestbook"
        );
        assert_eq!(web.headers[0].value, "Bearer {{ args.api-token }}");
        // A JSONPath's braces are not a placeholder.
        assert_eq!(web.json_path.as_deref(), Some("{$.data.ok}"));
    }

    #[test]
    fn int_or_string_fields_resolve() {
        let mut m = prom("m", "q");
        m.count = Some(IntOrString::String("{{args.count}}".into()));
        m.failure_limit = Some(IntOrString::Int(2));
        let resolved = resolve_metrics(&[m], &[arg("count", Some("5"))]).expect("resolves");
        assert_eq!(resolved[0].count, Some(IntOrString::String("5".into())));
        assert_eq!(resolved[0].failure_limit, Some(IntOrString::Int(2)));
    }

    #[test]
    fn resolution_without_placeholders_round_trips() {
        let mut m = prom("m", "sum(rate(x[5m]))");
        m.interval = Some("30s".into());
        m.initial_delay = Some("1m".into());
        m.count = Some(IntOrString::Int(3));
        m.success_condition = Some("result[0] >= 0.95".into());
        m.failure_condition = Some("result[0] < 0.5".into());
        m.failure_limit = Some(IntOrString::Int(1));
        m.inconclusive_limit = Some(IntOrString::Int(1));
        m.consecutive_error_limit = Some(IntOrString::Int(4));
        m.consecutive_success_limit = Some(IntOrString::String("2".into()));
        let mut web = prom("w", "");
        web.provider = MetricProvider {
            web: Some(WebMetric {
                url: "http://x/{{args.path}}".into(),
                ..WebMetric::default()
            }),
            ..MetricProvider::default()
        };
        let resolved =
            resolve_metrics(&[m.clone(), web], &[arg("path", Some("health"))]).expect("resolves");
        assert_eq!(resolved[0], m);
        assert_eq!(
            resolved[1].provider.web.as_ref().map(|w| w.url.as_str()),
            Some("http://x/health")
        );
    }

    #[test]
    fn unused_argument_without_value_is_still_an_error() {
        // Argo checks every argument before substituting.
        assert_eq!(
            resolve_metrics(&[prom("m", "q")], &[arg("unused", None)]),
            Err("argument \"unused\" was not supplied".into())
        );
    }

    // C8: FlattenTemplates.

    #[test]
    fn no_templates_flatten_to_nothing() {
        assert_eq!(
            flatten_templates(&[], &[]),
            Ok(FlattenedTemplates::default())
        );
    }

    #[test]
    fn one_template_is_unchanged() {
        let t = template(
            vec![prom("foo", "{{args.test}}")],
            vec![arg("test", Some("true"))],
            &[],
            &[],
        );
        let flat = flatten_templates(std::slice::from_ref(&t), &[]).expect("flattens");
        assert_eq!(flat.metrics, t.spec.metrics);
        assert_eq!(flat.args, t.spec.args);
    }

    #[test]
    fn metrics_and_rules_are_concatenated_namespaced_first() {
        let foo = template(vec![prom("foo", "")], vec![], &["foo"], &["foo"]);
        let bar = template(vec![prom("bar", "")], vec![], &["bar"], &["bar"]);
        for (namespaced, cluster) in [
            (vec![foo.clone(), bar.clone()], vec![]),
            (vec![foo.clone()], vec![bar.clone()]),
            (vec![], vec![foo.clone(), bar.clone()]),
        ] {
            let flat = flatten_templates(&namespaced, &cluster).expect("flattens");
            let names: Vec<_> = flat.metrics.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, ["foo", "bar"]);
            assert_eq!(
                flat.dry_run
                    .iter()
                    .map(|d| d.metric_name.as_str())
                    .collect::<Vec<_>>(),
                ["foo", "bar"]
            );
            assert_eq!(flat.measurement_retention.len(), 2);
            assert!(flat.args.is_empty());
        }
        let flat = flatten_templates(std::slice::from_ref(&bar), std::slice::from_ref(&foo))
            .expect("flattens");
        assert_eq!(flat.metrics[0].name, "bar");
    }

    #[test]
    fn duplicate_names_are_errors() {
        let a = template(vec![prom("foo", "")], vec![], &[], &[]);
        assert_eq!(
            flatten_templates(std::slice::from_ref(&a), std::slice::from_ref(&a)).map_err(|e| e.to_string()),
            Err("two metrics have the same name 'foo'".into())
        );
        let d1 = template(vec![prom("a", "")], vec![], &["foo"], &[]);
        let d2 = template(vec![prom("b", "")], vec![], &["foo"], &[]);
        assert_eq!(
            flatten_templates(&[d1, d2], &[]).map_err(|e| e.to_string()),
            Err("two Dry-Run metric rules have the same name 'foo'".into())
        );
        let r1 = template(vec![prom("a", "")], vec![], &[], &["foo"]);
        let r2 = template(vec![prom("b", "")], vec![], &[], &["foo"]);
        assert_eq!(
            flatten_templates(&[r1], &[r2]).map_err(|e| e.to_string()),
            Err("two Measurement Retention metric rules have the same name 'foo'".into())
        );
    }

    #[test]
    fn args_merge_by_name() {
        let t = |args| template(vec![], args, &[], &[]);
        let flat = flatten_templates(
            &[
                t(vec![arg("foo", Some("true"))]),
                t(vec![arg("bar", Some("true"))]),
            ],
            &[],
        )
        .expect("ok");
        assert_eq!(
            flat.args,
            vec![arg("foo", Some("true")), arg("bar", Some("true"))]
        );

        let flat = flatten_templates(
            &[t(vec![arg("foo", Some("true"))]), t(vec![arg("foo", None)])],
            &[],
        )
        .expect("ok");
        assert_eq!(flat.args, vec![arg("foo", Some("true"))]);
        let flat = flatten_templates(
            &[t(vec![arg("foo", None)])],
            &[t(vec![arg("foo", Some("true"))])],
        )
        .expect("ok");
        assert_eq!(flat.args, vec![arg("foo", Some("true"))]);

        assert_eq!(
            flatten_templates(
                &[
                    t(vec![arg("foo", Some("true"))]),
                    t(vec![arg("foo", Some("false"))])
                ],
                &[]
            ).map_err(|e| e.to_string()),
            Err(
                "Argument `foo` specified multiple times with different values: 'true', 'false'"
                    .into()
            )
        );
    }

    #[test]
    fn caller_rules_come_first_and_must_not_repeat() {
        let d = |n: &str| DryRun {
            metric_name: n.into(),
        };
        assert_eq!(
            merge_dry_run(&[d("a")], &[d("b")]),
            Ok(vec![d("a"), d("b")])
        );
        assert_eq!(
            merge_dry_run(&[d("a")], &[d("a")]).map_err(|e| e.to_string()),
            Err("two Dry-Run metric rules have the same name 'a'".into())
        );
        let r = |n: &str| MeasurementRetention {
            metric_name: n.into(),
            limit: 2,
        };
        assert_eq!(
            merge_measurement_retention(&[r("a")], &[r("b")]),
            Ok(vec![r("a"), r("b")])
        );
        assert_eq!(
            merge_measurement_retention(&[r("a")], &[r("a")]).map_err(|e| e.to_string()),
            Err("two Measurement Retention metric rules have the same name 'a'".into())
        );
    }

    // C8: MergeArgs.

    #[test]
    fn merge_args_keeps_template_defaults_and_secrets() {
        let template_args = [arg("foo", Some("bar")), secret_arg("my-secret")];
        assert_eq!(merge_args(&template_args, &[]), Ok(template_args.to_vec()));
        assert_eq!(merge_args(&[], &[]), Ok(vec![]));
    }

    #[test]
    fn merge_args_overrides_by_name_and_drops_extras() {
        let merged = merge_args(&[arg("foo", Some("bar"))], &[arg("foo", Some("overwrite"))]);
        assert_eq!(merged, Ok(vec![arg("foo", Some("overwrite"))]));
        let merged = merge_args(
            &[arg("foo", None)],
            &[arg("foo", Some("my-value")), arg("extra-arg", Some("x"))],
        );
        assert_eq!(merged, Ok(vec![arg("foo", Some("my-value"))]));
        let merged =
            merge_args(&[arg("foo", None)], &[secret_arg("foo")]).expect("valueFrom resolves");
        assert!(merged[0].value_from.is_some());
    }

    #[test]
    fn merge_args_requires_every_argument() {
        assert_eq!(
            merge_args(&[arg("foo", None)], &[]).map_err(|e| e.to_string()),
            Err("args.foo was not resolved".into())
        );
        assert_eq!(
            merge_args(&[arg("unresolved", None)], &[arg("other", Some("1"))]).map_err(|e| e.to_string()),
            Err("args.unresolved was not resolved".into())
        );
    }

    #[test]
    fn secret_args_by_name() {
        let secrets = secret_args(&[arg("a", Some("1")), secret_arg("s")]);
        assert_eq!(secrets.keys().collect::<Vec<_>>(), ["s"]);
    }

    #[test]
    fn garbage_templates_never_panic() {
        let args = [arg("a", Some("x")), arg("é", Some("}}{{")), secret_arg("s")];
        for text in [
            "",
            "{{",
            "}}",
            "{{}}",
            "{{{{}}}}",
            "{{args.a}",
            "{{ args.a }}}",
            "é{{args.é}}é",
            "{{args.s",
            "{{args.s}}",
            "\u{0}{{\u{0}}}",
        ] {
            let _ = resolve_quoted_args(text, &args);
            let _ = resolve_metrics(&[prom(text, text)], &args);
        }
    }
}
