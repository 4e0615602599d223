//! The server-rendered pages: the rollouts of a namespace, and one rollout (summary, steps,
//! ReplicaSets with their pods, the action buttons). Plain HTML; `app.js` sends the actions
//! with the CSRF token of the page's `<meta>` and reloads on the watch stream's updates.
//! Every text from the cluster is HTML-escaped; the Content-Security-Policy allows no inline script.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use http::header;
use serde_json::Value;

use super::api::{all_rollouts, bounded, one_rollout};
use super::{view, App};

const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// `?namespace=NAME` on the list page (a namespace name needs no decoding).
fn namespace_param(uri: &http::Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|p| p.strip_prefix("namespace=")).filter(|n| !n.is_empty()).map(str::to_string)
}

pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn page(app: &App, title: &str, watch: &str, body: &str) -> Response {
    let root = escape(&app.root);
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"csrf-token\" content=\"{csrf}\"><meta name=\"root\" content=\"{root}\">\
         <meta name=\"watch\" content=\"{watch}\"><meta name=\"read-only\" content=\"{ro}\">\
         <link rel=\"stylesheet\" href=\"{root}/assets/style.css\"><script src=\"{root}/assets/app.js\" defer></script>\
         </head><body><header><a href=\"{root}/\">Rollouts</a> <span class=\"version\">v{version}</span></header>\
         <main>{body}</main></body></html>",
        title = escape(title),
        csrf = escape(&app.guard.csrf),
        watch = escape(watch),
        ro = app.guard.read_only,
        version = env!("CARGO_PKG_VERSION"),
    );
    Html(html).into_response()
}

pub async fn list(State(app): State<Arc<App>>, uri: http::Uri) -> Response {
    let namespace = namespace_param(&uri).unwrap_or_else(|| app.namespace.clone());
    let cluster = app.cluster(&namespace);
    let watch = format!("{}/api/v1/rollouts/{namespace}/info/watch", app.root);
    let body = match bounded(all_rollouts(&cluster)).await {
        Ok(all) => {
            let mut rows = String::new();
            for objects in &all {
                let info = view::rollout_list_entry(objects);
                let name = s(&info, "/objectMeta/name");
                rows.push_str(&format!(
                    "<tr><td>{icon} <a href=\"{root}/rollout/{ns}/{name}\">{name}</a></td><td>{strategy}</td><td class=\"status-{status}\">{status}</td>\
                     <td>{step}</td><td>{weight}</td><td>{ready}/{desired}</td></tr>",
                    icon = escape(s(&info, "/icon")),
                    root = escape(&app.root),
                    ns = escape(&namespace),
                    name = escape(name),
                    strategy = escape(s(&info, "/strategy")),
                    status = escape(s(&info, "/status")),
                    step = escape(s(&info, "/step")),
                    weight = escape(s(&info, "/setWeight")),
                    ready = n(&info, "/ready"),
                    desired = n(&info, "/desired"),
                ));
            }
            if all.is_empty() {
                rows.push_str("<tr><td colspan=\"6\">No rollouts in this namespace.</td></tr>");
            }
            format!(
                "<h1>Rollouts in {ns}</h1><table class=\"rollouts\"><thead><tr><th>Name</th><th>Strategy</th><th>Status</th>\
                 <th>Step</th><th>Set weight</th><th>Ready</th></tr></thead><tbody>{rows}</tbody></table>",
                ns = escape(&namespace)
            )
        }
        Err(e) => format!("<p class=\"error\">{}</p>", escape(&e.message)),
    };
    page(&app, "Rollouts", &watch, &body)
}

pub async fn rollout(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let cluster = app.cluster(&namespace);
    let watch = format!("{}/api/v1/rollouts/{namespace}/{name}/info/watch", app.root);
    let body = match bounded(one_rollout(&cluster, &name)).await {
        Ok(objects) => rollout_body(&app, &namespace, &view::rollout_info(&objects)),
        Err(e) => format!("<p class=\"error\">{}</p>", escape(&e.message)),
    };
    page(&app, &name, &watch, &body)
}

fn rollout_body(app: &App, namespace: &str, info: &Value) -> String {
    let name = s(info, "/objectMeta/name");
    let api = format!("{}/api/v1/rollouts/{namespace}/{name}", app.root);
    let mut out = format!("<h1>{} {}</h1>", escape(s(info, "/icon")), escape(name));
    if !app.guard.read_only {
        out.push_str("<div class=\"actions\">");
        for (verb, label, body, confirm) in [
            ("restart", "Restart", "{}", ""),
            ("retry", "Retry", "{}", ""),
            ("abort", "Abort", "{}", "Abort this rollout?"),
            ("promote", "Promote", "{\"full\":false}", ""),
            ("promote", "Promote full", "{\"full\":true}", "Promote fully, skipping the remaining steps, pauses and analysis?"),
        ] {
            out.push_str(&format!(
                "<button data-action=\"{url}\" data-body=\"{body}\" data-confirm=\"{confirm}\">{label}</button>",
                url = escape(&format!("{api}/{verb}")),
                body = escape(body),
            ));
        }
        out.push_str("</div>");
    }
    out.push_str("<h2>Summary</h2><dl class=\"summary\">");
    for (label, value) in [
        ("Status", format!("{} {}", s(info, "/status"), s(info, "/message"))),
        ("Strategy", s(info, "/strategy").to_string()),
        ("Step", s(info, "/step").to_string()),
        ("Set weight", s(info, "/setWeight").to_string()),
        ("Actual weight", s(info, "/actualWeight").to_string()),
        ("Replicas", format!("desired {} · current {} · updated {} · ready {} · available {}", n(info, "/desired"), n(info, "/current"), n(info, "/updated"), n(info, "/ready"), n(info, "/available"))),
        ("Restarted", s(info, "/restartedAt").to_string()),
    ] {
        out.push_str(&format!("<dt>{label}</dt><dd>{}</dd>", escape(value.trim())));
    }
    out.push_str("</dl><h2>Containers</h2><ul>");
    for c in info.get("containers").and_then(Value::as_array).into_iter().flatten() {
        out.push_str(&format!("<li><b>{}</b> {}</li>", escape(s(c, "/name")), escape(s(c, "/image"))));
    }
    out.push_str("</ul>");
    if let Some(steps) = info.get("steps").and_then(Value::as_array) {
        let current = s(info, "/step").split('/').next().and_then(|i| i.parse::<usize>().ok());
        out.push_str("<h2>Steps</h2><ol class=\"steps\" start=\"0\">");
        for (i, step) in steps.iter().enumerate() {
            let class = if Some(i) == current { " class=\"current\"" } else { "" };
            out.push_str(&format!("<li{class}><code>{}</code></li>", escape(&step.to_string())));
        }
        out.push_str("</ol>");
    }
    out.push_str("<h2>Revisions</h2>");
    for rs in info.get("replicaSets").and_then(Value::as_array).into_iter().flatten() {
        let tags: Vec<&str> = ["stable", "canary", "active", "preview", "ping", "pong"]
            .into_iter()
            .filter(|t| rs.get(*t).and_then(Value::as_bool).unwrap_or(false))
            .collect();
        let revision = n(rs, "/revision");
        out.push_str(&format!(
            "<section class=\"revision\"><h3>Revision {revision} {tags}</h3><p>{icon} {rs_name} · {status} · {available}/{replicas} available · {images}</p><div class=\"pods\">",
            tags = escape(&tags.join(", ")),
            icon = escape(s(rs, "/icon")),
            rs_name = escape(s(rs, "/objectMeta/name")),
            status = escape(s(rs, "/status")),
            available = n(rs, "/available"),
            replicas = n(rs, "/replicas"),
            images = escape(&rs.get("images").and_then(Value::as_array).map(|i| i.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()),
        ));
        for pod in rs.get("pods").and_then(Value::as_array).into_iter().flatten() {
            out.push_str(&format!(
                "<span class=\"pod status-{status}\" title=\"{name} {status} {ready}\">{icon}</span>",
                status = escape(s(pod, "/status")),
                name = escape(s(pod, "/objectMeta/name")),
                ready = escape(s(pod, "/ready")),
                icon = escape(s(pod, "/icon")),
            ));
        }
        out.push_str("</div>");
        if !app.guard.read_only && !tags.contains(&"stable") && !tags.contains(&"canary") && revision > 0 {
            out.push_str(&format!(
                "<button data-action=\"{}\" data-body=\"{{}}\" data-confirm=\"Roll back to revision {revision}?\">Rollback</button>",
                escape(&format!("{api}/undo/{revision}"))
            ));
        }
        out.push_str("</section>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_text_is_escaped() {
        assert_eq!(escape("<script>alert('x')</script> & \"q\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
    }
}
