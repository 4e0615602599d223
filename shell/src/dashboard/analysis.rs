//! The rollout page's "Analysis runs" and "Experiments" sections, from the `RolloutInfo`
//! JSON ([`super::view`]): per run its phase and message, and per metric a chart of its
//! measurements over time ([`crate::charts`]) with the measurement table, as Argo's
//! dashboard shows them.

use serde_json::Value;

use super::pages::escape;
use crate::charts::{metric_chart, numeric_value, MetricPoint};

/// Rows of one metric's measurement table; older ones are left out (the chart still has
/// them, sampled).
const MAX_TABLE_ROWS: usize = 50;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The runs of `info` (a rollout's or an experiment's), newest first.
fn newest_first(info: &Value) -> Vec<&Value> {
    let mut runs: Vec<&Value> = list(info, "analysisRuns").collect();
    runs.sort_by(|a, b| {
        let key = |r: &Value| (r.get("revision").and_then(Value::as_i64).unwrap_or(0), text(r, "/objectMeta/creationTimestamp").to_string());
        key(b).cmp(&key(a)).then_with(|| text(a, "/objectMeta/name").cmp(text(b, "/objectMeta/name")))
    });
    runs
}

/// The "Analysis runs" section of a rollout page (empty when the rollout has none).
pub fn runs_section(info: &Value) -> String {
    let runs = newest_first(info);
    if runs.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section class=\"analysis-runs\"><h2>Analysis runs</h2>");
    for run in runs {
        out.push_str(&run_html(run, "h3"));
    }
    out.push_str("</section>");
    out
}

/// The "Experiments" section: name, phase, templates with their pods, and their runs.
pub fn experiments_section(info: &Value) -> String {
    let experiments: Vec<&Value> = list(info, "experiments").collect();
    if experiments.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section class=\"experiments\"><h2>Experiments</h2>");
    for exp in experiments {
        let message = text(exp, "/message");
        out.push_str(&format!(
            "<div class=\"experiment\"><h3>{icon} {name}</h3><p>{phase}{sep}{message}</p>\
             <table><thead><tr><th>Template</th><th>ReplicaSet</th><th>Status</th><th>Available</th><th>Images</th></tr></thead><tbody>",
            icon = escape(text(exp, "/icon")),
            name = escape(text(exp, "/objectMeta/name")),
            phase = escape(text(exp, "/status")),
            sep = if message.is_empty() { "" } else { " · " },
            message = escape(message),
        ));
        for rs in list(exp, "replicaSets") {
            let images: Vec<&str> = list(rs, "images").filter_map(Value::as_str).collect();
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
                escape(text(rs, "/template")),
                escape(text(rs, "/objectMeta/name")),
                escape(text(rs, "/status")),
                rs.get("available").and_then(Value::as_i64).unwrap_or(0),
                rs.get("replicas").and_then(Value::as_i64).unwrap_or(0),
                escape(&images.join(", ")),
            ));
        }
        out.push_str("</tbody></table>");
        for run in newest_first(exp) {
            out.push_str(&run_html(run, "h4"));
        }
        out.push_str("</div>");
    }
    out.push_str("</section>");
    out
}

fn run_html(run: &Value, heading: &str) -> String {
    let status = run.pointer("/specAndStatus/status").unwrap_or(&Value::Null);
    let phase = match text(run, "/status") {
        "" => "Pending",
        p => p,
    };
    let message = text(status, "/message");
    let mut out = format!(
        "<div class=\"analysis-run\"><{heading}>{icon} {name}</{heading}><p class=\"status-{phase}\">{phase}{sep}{message}</p>",
        icon = escape(text(run, "/icon")),
        name = escape(text(run, "/objectMeta/name")),
        phase = escape(phase),
        sep = if message.is_empty() { "" } else { " · " },
        message = escape(message),
    );
    let results: Vec<&Value> = list(status, "metricResults").collect();
    if results.is_empty() {
        out.push_str("<p>No measurements yet.</p>");
    }
    for result in results {
        out.push_str(&metric_html(result));
    }
    out.push_str("</div>");
    out
}

/// A metric's chart and measurement table.
fn metric_html(result: &Value) -> String {
    let name = text(result, "/name");
    let measurements: Vec<&Value> = list(result, "measurements").collect();
    let starts: Vec<Option<jiff::Timestamp>> = measurements.iter().map(|m| text(m, "/startedAt").parse().ok()).collect();
    let first = starts.iter().flatten().min().copied();
    let points: Vec<MetricPoint> = measurements
        .iter()
        .zip(&starts)
        .enumerate()
        .map(|(i, (m, start))| MetricPoint {
            // A measurement without a start time sits after the one before it.
            t: match (start, first) {
                (Some(s), Some(f)) => s.duration_since(f).as_secs_f64(),
                _ => i as f64,
            },
            value: numeric_value(text(m, "/value")),
            phase: text(m, "/phase").to_string(),
        })
        .collect();
    let result_phase = text(result, "/phase");
    let mut out = format!(
        "<div class=\"metric\"><h5>{name} <span class=\"status-{phase}\">{phase}</span></h5><div class=\"chart\">{chart}</div>",
        name = escape(name),
        phase = escape(result_phase),
        chart = metric_chart(name, &points),
    );
    out.push_str("<table class=\"measurements\"><thead><tr><th>Started</th><th>Finished</th><th>Phase</th><th>Value</th><th>Message</th></tr></thead><tbody>");
    let skipped = measurements.len().saturating_sub(MAX_TABLE_ROWS);
    if skipped > 0 {
        out.push_str(&format!("<tr><td colspan=\"5\">{skipped} older measurements not listed</td></tr>"));
    }
    for m in &measurements[skipped..] {
        out.push_str(&format!(
            "<tr class=\"status-{phase}\"><td>{}</td><td>{}</td><td>{phase}</td><td>{}</td><td>{}</td></tr>",
            escape(text(m, "/startedAt")),
            escape(text(m, "/finishedAt")),
            escape(text(m, "/value")),
            escape(text(m, "/message")),
            phase = escape(text(m, "/phase")),
        ));
    }
    out.push_str("</tbody></table></div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(name: &str, revision: i64, created: &str) -> Value {
        json!({
            "objectMeta": {"name": name, "creationTimestamp": created},
            "icon": "✔", "revision": revision, "status": "Failed",
            "specAndStatus": {"status": {"phase": "Failed", "message": "Metric \"rate\" assessed Failed", "metricResults": [{
                "name": "rate", "phase": "Failed",
                "measurements": [
                    {"startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:00:01Z", "phase": "Successful", "value": "[0.99]"},
                    {"startedAt": "2024-01-01T00:00:10Z", "finishedAt": "2024-01-01T00:00:11Z", "phase": "Failed", "value": "[0.5]", "message": "<b>low</b>"},
                ],
            }]}},
        })
    }

    #[test]
    fn runs_are_listed_newest_first_with_a_chart_and_a_table_per_metric() {
        let info = json!({"analysisRuns": [run("old", 1, "2024-01-01T00:00:00Z"), run("new", 2, "2024-01-01T00:10:00Z")]});
        let html = runs_section(&info);
        assert!(html.find("new</h3>").unwrap() < html.find("old</h3>").unwrap(), "{html}");
        assert_eq!(html.matches("<svg").count(), 2, "{html}");
        assert_eq!(html.matches("<table class=\"measurements\">").count(), 2);
        assert!(html.contains("<td>[0.5]</td>") && html.contains("Metric &quot;rate&quot; assessed Failed"), "{html}");
        assert!(html.contains("&lt;b&gt;low&lt;/b&gt;") && !html.contains("<b>low"), "{html}");
        assert_eq!(runs_section(&json!({})), "");
    }

    #[test]
    fn experiments_show_their_templates_and_runs() {
        let info = json!({"experiments": [{
            "objectMeta": {"name": "exp-1"}, "status": "Running", "icon": "◌",
            "replicaSets": [{"objectMeta": {"name": "exp-1-baseline-abc"}, "template": "baseline", "status": "Healthy", "replicas": 1, "available": 1, "images": ["app:1"]}],
            "analysisRuns": [run("exp-1-run", 0, "2024-01-01T00:00:00Z")],
        }]});
        let html = experiments_section(&info);
        assert!(html.contains("exp-1</h3>") && html.contains("<td>baseline</td>") && html.contains("<td>1/1</td>"), "{html}");
        assert!(html.contains("exp-1-run</h4>") && html.contains("<svg"), "{html}");
    }
}
