//! The server-rendered pages: the rollouts of a namespace (grid or table, filtered by the URL's
//! query), and one rollout (actions, summary, containers with image editing, steps,
//! revisions with their pods). Plain HTML; `app.js` sends the actions with the CSRF token of
//! the page's `<meta>` and, on the watch stream's updates, fetches the page again and swaps
//! in its `data-live` parts (no reload: what the user is typing stays).
//! Every text from the cluster is HTML-escaped; the Content-Security-Policy allows no inline script.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use http::header;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::Value;

use super::api::{all_rollouts, bounded, one_rollout};
use super::{view, App};
use crate::cli::tree::{rollout_icon, ICON_BAD, ICON_OK, ICON_PROGRESSING, ICON_WAITING, ICON_WARNING};

const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// An icon of the API (Argo's CLI glyphs) as the page shows it: the pause sign `॥` is
/// Devanagari, which the usual fonts lack; `‖` reads the same.
fn glyph(icon: &str) -> String {
    escape(&icon.replace('\u{0965}', "\u{2016}"))
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

pub(super) fn page(app: &App, title: &str, watch: &str, body: &str) -> Response {
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

/// The statuses the list's filter offers (with counts), in Argo's order.
const STATUSES: [&str; 4] = ["Progressing", "Paused", "Degraded", "Healthy"];

/// The list's two layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Layout {
    #[default]
    Grid,
    Table,
}

/// What the list page shows, all of it in its URL (`?namespace=…&view=table&q=…&status=Paused&attention=1`)
/// so a reload or a shared link shows the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ListQuery {
    namespace: Option<String>,
    layout: Layout,
    /// Terms separated by commas or spaces, each a name substring or a `key=value` (or `key:value`) label.
    text: String,
    /// Empty: every status.
    statuses: BTreeSet<String>,
    /// Only the rollouts that need a person: Paused, Degraded or with an unknown status.
    attention: bool,
}

impl ListQuery {
    fn parse(query: Option<&str>) -> ListQuery {
        let mut q = ListQuery::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "namespace" if !value.trim().is_empty() => q.namespace = Some(value.trim().to_string()),
                "view" => q.layout = if value == "table" { Layout::Table } else { Layout::Grid },
                "q" => q.text = value.trim().to_string(),
                "status" if !value.is_empty() => {
                    q.statuses.insert(value.into_owned());
                }
                "attention" => q.attention = value == "1" || value == "on" || value == "true",
                _ => {}
            }
        }
        q
    }

    /// Whether the text filter lets `info` through (every term must match).
    fn text_matches(&self, info: &Value) -> bool {
        let name = s(info, "/objectMeta/name").to_lowercase();
        let labels = info.pointer("/objectMeta/labels").and_then(Value::as_object);
        self.text.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).all(|term| {
            match term.split_once(['=', ':']) {
                Some((key, value)) => labels
                    .and_then(|l| l.get(key))
                    .and_then(Value::as_str)
                    .is_some_and(|v| value.is_empty() || v == value),
                None => name.contains(&term.to_lowercase()),
            }
        })
    }

    fn status_matches(&self, info: &Value) -> bool {
        let status = s(info, "/status");
        (self.statuses.is_empty() || self.statuses.contains(status)) && (!self.attention || needs_attention(status))
    }
}

/// Argo's "requires attention", widened to every pause: a paused rollout waits for a person too.
fn needs_attention(status: &str) -> bool {
    !matches!(status, "Healthy" | "Progressing")
}

/// The namespaces the kubeconfig may list, or `None` when it may not (the page then offers a text box).
async fn listable_namespaces(app: &App) -> Option<Vec<String>> {
    let api: kube::Api<Namespace> = kube::Api::all(app.client.clone());
    let list = tokio::time::timeout(NAMESPACE_WAIT, api.list(&kube::api::ListParams::default())).await.ok()?.ok()?;
    Some(list.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// How long the list page waits for the namespaces before it offers a text box.
const NAMESPACE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn list(State(app): State<Arc<App>>, uri: http::Uri) -> Response {
    let query = ListQuery::parse(uri.query());
    let namespace = query.namespace.clone().unwrap_or_else(|| app.namespace.clone());
    let cluster = app.cluster(&namespace);
    let watch = format!("{}/api/v1/rollouts/{namespace}/info/watch", app.root);
    let (rollouts, namespaces) = tokio::join!(bounded(all_rollouts(&cluster)), listable_namespaces(&app));
    let body = match rollouts {
        Ok(all) => {
            let infos: Vec<Value> = all.iter().map(view::rollout_list_entry).collect();
            list_body(&app.root, &namespace, namespaces.as_deref(), &query, &infos)
        }
        Err(e) => format!("<p class=\"error\">{}</p>", escape(&e.message)),
    };
    page(&app, "Rollouts", &watch, &body)
}

/// The filter form (it works without script too: a GET of this page) and the rollouts shown.
/// The elements marked `data-live` are what `app.js` swaps in on a watch update.
fn list_body(root: &str, namespace: &str, namespaces: Option<&[String]>, query: &ListQuery, infos: &[Value]) -> String {
    let root = escape(root);
    let mut out = format!("<h1>Rollouts</h1><form id=\"filters\" class=\"filters\" method=\"get\" action=\"{root}/\">");
    match namespaces {
        Some(names) => {
            out.push_str("<label>Namespace <select name=\"namespace\" data-navigate=\"1\">");
            let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
            if !names.contains(&namespace) {
                names.push(namespace);
                names.sort_unstable();
            }
            for name in names {
                let selected = if name == namespace { " selected" } else { "" };
                out.push_str(&format!("<option{selected}>{}</option>", escape(name)));
            }
            out.push_str("</select></label>");
        }
        None => out.push_str(&format!(
            "<label>Namespace <input name=\"namespace\" data-navigate=\"1\" value=\"{}\" size=\"16\"></label>",
            escape(namespace)
        )),
    }
    out.push_str(&format!(
        "<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"name or key=value label\" aria-label=\"Filter\">",
        escape(&query.text)
    ));
    let shown: Vec<&Value> = infos.iter().filter(|i| query.text_matches(i)).collect();
    out.push_str("<span class=\"statuses\">");
    for status in STATUSES {
        let count = shown.iter().filter(|i| s(i, "/status") == status).count();
        let checked = if query.statuses.contains(status) { " checked" } else { "" };
        out.push_str(&format!(
            "<label class=\"status-{status}\"><input type=\"checkbox\" name=\"status\" value=\"{status}\"{checked}> {icon} {status} \
             <span class=\"count\" id=\"count-{status}\" data-live=\"1\">{count}</span></label>",
            icon = glyph(rollout_icon(status)),
        ));
    }
    let attention = shown.iter().filter(|i| needs_attention(s(i, "/status"))).count();
    out.push_str(&format!(
        "<label class=\"attention\"><input type=\"checkbox\" name=\"attention\" value=\"1\"{}> Needs attention \
         <span class=\"count\" id=\"count-attention\" data-live=\"1\">{attention}</span></label></span>",
        if query.attention { " checked" } else { "" }
    ));
    out.push_str("<span class=\"layouts\">");
    for (layout, value, label) in [(Layout::Grid, "grid", "Grid"), (Layout::Table, "table", "Table")] {
        let checked = if query.layout == layout { " checked" } else { "" };
        out.push_str(&format!("<label><input type=\"radio\" name=\"view\" value=\"{value}\"{checked}> {label}</label>"));
    }
    out.push_str("</span><noscript><button>Apply</button></noscript></form>");

    let visible: Vec<&Value> = shown.into_iter().filter(|i| query.status_matches(i)).collect();
    let href = |info: &Value| format!("{root}/rollout/{}/{}", escape(namespace), escape(s(info, "/objectMeta/name")));
    out.push_str("<div id=\"rollouts\" data-live=\"1\">");
    if infos.is_empty() {
        out.push_str(&format!("<p class=\"empty\">No rollouts in {}.</p>", escape(namespace)));
    } else if visible.is_empty() {
        out.push_str("<p class=\"empty\">No rollout matches the filters.</p>");
    } else if query.layout == Layout::Grid {
        out.push_str("<div class=\"grid\">");
        for info in visible {
            let status = escape(s(info, "/status"));
            let images: Vec<&str> =
                info.get("containers").and_then(Value::as_array).into_iter().flatten().map(|c| s(c, "/image")).collect();
            out.push_str(&format!(
                "<a class=\"card status-{status}\" href=\"{href}\" data-rollout=\"{name}\"><div class=\"card-title\">\
                 <span class=\"icon\">{icon}</span> {name}</div><dl><dt>Status</dt><dd>{status}</dd><dt>Strategy</dt><dd>{strategy}</dd>\
                 <dt>Step</dt><dd>{step}</dd><dt>Weight</dt><dd>{weight}</dd><dt>Ready</dt><dd>{ready}/{desired}</dd></dl>\
                 <div class=\"images\">{images}</div><div class=\"pods\">{pods}</div></a>",
                href = href(info),
                name = escape(s(info, "/objectMeta/name")),
                icon = glyph(s(info, "/icon")),
                strategy = escape(s(info, "/strategy")),
                step = escape(s(info, "/step")),
                weight = escape(s(info, "/setWeight")),
                ready = n(info, "/ready"),
                desired = n(info, "/desired"),
                images = escape(&images.join(", ")),
                pods = info
                    .get("replicaSets")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .flat_map(|rs| rs.get("pods").and_then(Value::as_array).into_iter().flatten())
                    .map(pod_square)
                    .collect::<String>(),
            ));
        }
        out.push_str("</div>");
    } else {
        out.push_str(
            "<table class=\"rollouts\"><thead><tr><th>Name</th><th>Strategy</th><th>Status</th><th>Step</th>\
             <th>Set weight</th><th>Ready</th><th>Images</th></tr></thead><tbody>",
        );
        for info in visible {
            let images: Vec<&str> =
                info.get("containers").and_then(Value::as_array).into_iter().flatten().map(|c| s(c, "/image")).collect();
            out.push_str(&format!(
                "<tr data-rollout=\"{name}\"><td>{icon} <a href=\"{href}\">{name}</a></td><td>{strategy}</td><td class=\"status-{status}\">{status}</td>\
                 <td>{step}</td><td>{weight}</td><td>{ready}/{desired}</td><td>{images}</td></tr>",
                href = href(info),
                icon = glyph(s(info, "/icon")),
                name = escape(s(info, "/objectMeta/name")),
                strategy = escape(s(info, "/strategy")),
                status = escape(s(info, "/status")),
                step = escape(s(info, "/step")),
                weight = escape(s(info, "/setWeight")),
                ready = n(info, "/ready"),
                desired = n(info, "/desired"),
                images = escape(&images.join(", ")),
            ));
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div>");
    out
}

/// A pod as a coloured square: green running, yellow on its way, red failing, grey otherwise.
fn pod_square(pod: &Value) -> String {
    let icon = s(pod, "/icon");
    let kind = match icon {
        ICON_OK => "ok",
        ICON_PROGRESSING | ICON_WAITING => "progressing",
        ICON_BAD => "bad",
        ICON_WARNING => "warning",
        _ => "unknown",
    };
    format!(
        "<span class=\"pod pod-{kind}\" title=\"{name}: {status}{ready}\">{icon}</span>",
        name = escape(s(pod, "/objectMeta/name")),
        status = escape(s(pod, "/status")),
        ready = match s(pod, "/ready") {
            "" => String::new(),
            r => format!(" ({} ready)", escape(r)),
        },
        icon = escape(icon),
    )
}

pub async fn rollout(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let cluster = app.cluster(&namespace);
    let watch = format!("{}/api/v1/rollouts/{namespace}/{name}/info/watch", app.root);
    let body = match bounded(one_rollout(&cluster, &name)).await {
        Ok(objects) => {
            let info = view::rollout_info(&objects);
            let mut body = rollout_body(&app.root, app.guard.read_only, &namespace, &info);
            // The analysis runs and experiments change as the rollout does: live too.
            body.push_str(&format!(
                "<div id=\"analysis\" data-live=\"1\">{}{}</div>",
                super::analysis::runs_section(&info),
                super::analysis::experiments_section(&info)
            ));
            body.push_str(&super::whatif::link(&app, &namespace, &name));
            body
        }
        Err(e) => format!("<p class=\"error\">{}</p>", escape(&e.message)),
    };
    page(&app, &name, &watch, &body)
}

/// The rollout page: the actions, then the summary, containers, steps and revisions, each
/// `data-live` so a watch update swaps it in.
fn rollout_body(root: &str, read_only: bool, namespace: &str, info: &Value) -> String {
    let name = s(info, "/objectMeta/name");
    let api = format!("{root}/api/v1/rollouts/{namespace}/{name}");
    let mut out = format!(
        "<h1 id=\"title\" data-live=\"1\"><span class=\"icon status-{status}\">{icon}</span> {name} <span class=\"badge status-{status}\">{status}</span></h1>",
        icon = glyph(s(info, "/icon")),
        name = escape(name),
        status = escape(s(info, "/status")),
    );
    if !read_only {
        out.push_str("<div class=\"actions\">");
        for (verb, label, body, confirm) in [
            ("restart", "Restart", "{}", "Restart the pods of this rollout?"),
            ("retry", "Retry", "{}", "Retry this aborted rollout?"),
            ("abort", "Abort", "{}", "Abort this rollout?"),
            ("promote", "Promote", "{\"full\":false}", "Promote this rollout to its next step?"),
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
    out.push_str("<section><h2>Summary</h2><dl class=\"summary\" id=\"summary\" data-live=\"1\">");
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
    out.push_str("</dl></section>");
    out.push_str(&containers_html(&api, read_only, info));
    out.push_str(&steps_html(info));
    out.push_str(&revisions_html(&api, read_only, info));
    out
}

/// Containers and init containers, each with its image and (unless read-only) an input and
/// "Update" that sends Argo's set-image action.
fn containers_html(api: &str, read_only: bool, info: &Value) -> String {
    let mut out = String::new();
    for (key, title, prefix) in [("containers", "Containers", "c"), ("initContainers", "Init containers", "i")] {
        let Some(list) = info.get(key).and_then(Value::as_array).filter(|l| !l.is_empty()) else { continue };
        out.push_str(&format!("<section><h2>{title}</h2><table class=\"containers\" id=\"{key}\"><tbody>"));
        for c in list {
            let container = s(c, "/name");
            let id = format!("{prefix}-{}", escape(container));
            out.push_str(&format!(
                "<tr><th>{name}</th><td><code class=\"image\" id=\"image-{id}\" data-live=\"1\">{image}</code></td>",
                name = escape(container),
                image = escape(s(c, "/image")),
            ));
            if !read_only {
                out.push_str(&format!(
                    "<td><input id=\"new-image-{id}\" placeholder=\"new image, as name:tag\" size=\"36\" aria-label=\"New image of {name}\"> \
                     <button data-set-image=\"{url}\" data-input=\"new-image-{id}\">Update</button></td>",
                    name = escape(container),
                    url = escape(&format!("{api}/set/{container}")),
                ));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></section>");
    }
    out
}

/// The canary steps, the current one marked, each with what it does.
fn steps_html(info: &Value) -> String {
    let Some(steps) = info.get("steps").and_then(Value::as_array) else { return String::new() };
    let current = s(info, "/step").split('/').next().and_then(|i| i.parse::<usize>().ok());
    let mut out = String::from("<section><h2>Steps</h2><ol class=\"steps\" id=\"steps\" data-live=\"1\" start=\"0\">");
    for (i, step) in steps.iter().enumerate() {
        let class = match current {
            Some(c) if c == i => " class=\"current\" aria-current=\"step\"",
            Some(c) if i < c => " class=\"done\"",
            _ => "",
        };
        out.push_str(&format!("<li{class}>{}</li>", step_html(step)));
    }
    out.push_str("</ol></section>");
    out
}

/// One step: its kind and parameters; match tables, templates and args in an expandable part.
fn step_html(step: &Value) -> String {
    let Some((kind, spec)) = step.as_object().and_then(|o| o.iter().next()) else {
        return format!("<code>{}</code>", escape(&step.to_string()));
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let field = |key: &str| spec.get(key).map(text).unwrap_or_default();
    match kind.as_str() {
        "setWeight" => format!("<b>Set weight</b> {}%", escape(&text(spec))),
        "pause" => match spec.get("duration") {
            Some(Value::Number(d)) => format!("<b>Pause</b> {d}s"),
            Some(d) => format!("<b>Pause</b> {}", escape(&text(d))),
            None => "<b>Pause</b> until promoted".to_string(),
        },
        "setCanaryScale" => {
            let what = if let Some(w) = spec.get("weight") {
                format!("weight {}%", escape(&text(w)))
            } else if let Some(r) = spec.get("replicas") {
                format!("{} replicas", escape(&text(r)))
            } else if spec.get("matchTrafficWeight").and_then(Value::as_bool) == Some(true) {
                "match the traffic weight".to_string()
            } else {
                escape(&spec.to_string())
            };
            format!("<b>Set canary scale</b> {what}")
        }
        "setHeaderRoute" => {
            let mut rows = String::new();
            for m in spec.get("match").and_then(Value::as_array).into_iter().flatten() {
                let (how, value) = string_match(m.get("headerValue"));
                rows.push_str(&format!("<tr><td>{}</td><td>{how}</td><td>{}</td></tr>", escape(s(m, "/headerName")), escape(&value)));
            }
            format!(
                "<details><summary><b>Set header route</b> {name}</summary><table class=\"match\"><thead><tr><th>Header</th><th>Match</th>\
                 <th>Value</th></tr></thead><tbody>{rows}</tbody></table></details>",
                name = escape(&field("name")),
                rows = if rows.is_empty() { "<tr><td colspan=\"3\">no match: the route is removed</td></tr>".to_string() } else { rows },
            )
        }
        "setMirrorRoute" => {
            let mut rows = String::new();
            for m in spec.get("match").and_then(Value::as_array).into_iter().flatten() {
                let mut parts = Vec::new();
                for key in ["method", "path"] {
                    if let Some(v) = m.get(key) {
                        let (how, value) = string_match(Some(v));
                        parts.push((key.to_string(), how, value));
                    }
                }
                for (header, v) in m.get("headers").and_then(Value::as_object).into_iter().flatten() {
                    let (how, value) = string_match(Some(v));
                    parts.push((format!("header {header}"), how, value));
                }
                let cells: Vec<String> = parts.iter().map(|(k, how, v)| format!("{} {how} {}", escape(k), escape(v))).collect();
                rows.push_str(&format!("<tr><td>{}</td></tr>", cells.join(" and ")));
            }
            format!(
                "<details><summary><b>Set mirror route</b> {name}{percent}</summary><table class=\"match\"><thead><tr><th>Match (any row)</th>\
                 </tr></thead><tbody>{rows}</tbody></table></details>",
                name = escape(&field("name")),
                percent = spec.get("percentage").map(|p| format!(" · {}% mirrored", escape(&text(p)))).unwrap_or_default(),
                rows = if rows.is_empty() { "<tr><td>no match: the route is removed</td></tr>".to_string() } else { rows },
            )
        }
        "analysis" => {
            let templates: Vec<String> = spec
                .get("templates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| {
                    let scope = if t.get("clusterScope").and_then(Value::as_bool) == Some(true) { " (cluster)" } else { "" };
                    format!("<li>{}{scope}</li>", escape(s(t, "/templateName")))
                })
                .collect();
            format!(
                "<details><summary><b>Analysis</b> {names}</summary><h4>Templates</h4><ul>{list}</ul>{args}</details>",
                names = escape(&spec.get("templates").and_then(Value::as_array).into_iter().flatten().map(|t| s(t, "/templateName")).collect::<Vec<_>>().join(", ")),
                list = templates.concat(),
                args = args_html(spec.get("args")),
            )
        }
        "experiment" => {
            let mut rows = String::new();
            for t in spec.get("templates").and_then(Value::as_array).into_iter().flatten() {
                rows.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(s(t, "/name")),
                    escape(s(t, "/specRef")),
                    escape(&t.get("replicas").map(text).unwrap_or_else(|| "1".into())),
                    escape(&t.get("weight").map(|w| format!("{}%", text(w))).unwrap_or_default()),
                ));
            }
            let analyses: Vec<String> = spec
                .get("analyses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|a| format!("<li>{} ({}){}</li>", escape(s(a, "/name")), escape(s(a, "/templateName")), args_html(a.get("args"))))
                .collect();
            format!(
                "<details><summary><b>Experiment</b>{duration}</summary><table class=\"match\"><thead><tr><th>Template</th><th>Spec</th>\
                 <th>Replicas</th><th>Weight</th></tr></thead><tbody>{rows}</tbody></table>{analyses}</details>",
                duration = spec.get("duration").map(|d| format!(" for {}", escape(&text(d)))).unwrap_or_default(),
                analyses = if analyses.is_empty() { String::new() } else { format!("<h4>Analyses</h4><ul>{}</ul>", analyses.concat()) },
            )
        }
        "plugin" => format!(
            "<details><summary><b>Plugin</b> {}</summary><pre>{}</pre></details>",
            escape(&field("name")),
            escape(&serde_json::to_string_pretty(spec.get("config").unwrap_or(&Value::Null)).unwrap_or_default())
        ),
        other => format!("<b>{}</b> <code>{}</code>", escape(other), escape(&spec.to_string())),
    }
}

/// Argo's `StringMatch` (`{exact|prefix|regex: value}`) as (how, value).
fn string_match(v: Option<&Value>) -> (&'static str, String) {
    for (key, how) in [("exact", "="), ("prefix", "starts with"), ("regex", "~")] {
        if let Some(value) = v.and_then(|v| v.get(key)).and_then(Value::as_str) {
            return (how, value.to_string());
        }
    }
    ("", v.map(Value::to_string).unwrap_or_default())
}

/// An analysis's args: a value, or where it comes from.
fn args_html(args: Option<&Value>) -> String {
    let Some(args) = args.and_then(Value::as_array).filter(|a| !a.is_empty()) else { return String::new() };
    let mut rows = String::new();
    for arg in args {
        let value = match (arg.get("value"), arg.get("valueFrom")) {
            (Some(v), _) => v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
            (None, Some(from)) => match (from.get("podTemplateHashValue").and_then(Value::as_str), from.pointer("/fieldRef/fieldPath").and_then(Value::as_str)) {
                (Some(hash), _) => format!("the {hash} pod template hash"),
                (None, Some(path)) => format!("field {path}"),
                _ => from.to_string(),
            },
            (None, None) => String::new(),
        };
        rows.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", escape(s(arg, "/name")), escape(&value)));
    }
    format!("<table class=\"args\"><thead><tr><th>Arg</th><th>Value</th></tr></thead><tbody>{rows}</tbody></table>")
}

/// One section per ReplicaSet (newest revision first, as the info lists them) with its pods,
/// the analysis runs and experiments of its revision, and a rollback button when it is not
/// the stable or canary one.
fn revisions_html(api: &str, read_only: bool, info: &Value) -> String {
    let mut out = String::from("<section><h2>Revisions</h2><div id=\"revisions\" data-live=\"1\">");
    let of_revision = |key: &str, revision: i64| -> Vec<&Value> {
        info.get(key).and_then(Value::as_array).into_iter().flatten().filter(|o| n(o, "/revision") == revision).collect()
    };
    for rs in info.get("replicaSets").and_then(Value::as_array).into_iter().flatten() {
        let tags: Vec<&str> = ["stable", "canary", "active", "preview", "ping", "pong"]
            .into_iter()
            .filter(|t| rs.get(*t).and_then(Value::as_bool).unwrap_or(false))
            .collect();
        let revision = n(rs, "/revision");
        out.push_str(&format!(
            "<section class=\"revision\" data-revision=\"{revision}\"><h3>Revision {revision} <span class=\"tags\">{tags}</span></h3>\
             <p>{icon} {rs_name} · {status} · {available}/{replicas} available · {images}</p><div class=\"pods\">",
            tags = escape(&tags.join(", ")),
            icon = escape(s(rs, "/icon")),
            rs_name = escape(s(rs, "/objectMeta/name")),
            status = escape(s(rs, "/status")),
            available = n(rs, "/available"),
            replicas = n(rs, "/replicas"),
            images = escape(&rs.get("images").and_then(Value::as_array).map(|i| i.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()),
        ));
        for pod in rs.get("pods").and_then(Value::as_array).into_iter().flatten() {
            out.push_str(&pod_square(pod));
        }
        out.push_str("</div>");
        let owned: Vec<String> = of_revision("analysisRuns", revision)
            .into_iter()
            .map(|a| ("AnalysisRun", a))
            .chain(of_revision("experiments", revision).into_iter().map(|e| ("Experiment", e)))
            .map(|(kind, o)| format!("<li>{} {kind} {} · {}</li>", escape(s(o, "/icon")), escape(s(o, "/objectMeta/name")), escape(s(o, "/status"))))
            .collect();
        if !owned.is_empty() {
            out.push_str(&format!("<ul class=\"owned\">{}</ul>", owned.concat()));
        }
        if !read_only && !tags.contains(&"stable") && !tags.contains(&"canary") && revision > 0 {
            out.push_str(&format!(
                "<button data-action=\"{}\" data-body=\"{{}}\" data-confirm=\"Roll back to revision {revision}?\">Rollback</button>",
                escape(&format!("{api}/undo/{revision}"))
            ));
        }
        out.push_str("</section>");
    }
    out.push_str("</div></section>");
    out
}


#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn entry(name: &str, status: &str, labels: Value) -> Value {
        json!({"objectMeta": {"name": name, "labels": labels}, "status": status, "icon": rollout_icon(status), "containers": [{"name": "app", "image": "x:1"}]})
    }

    #[test]
    fn the_list_query_reads_repeated_statuses_and_the_view() {
        let q = ListQuery::parse(Some("namespace=team-a&view=table&q=web%2C+tier%3Dfront&status=Paused&status=Degraded&attention=1"));
        assert_eq!(q.namespace.as_deref(), Some("team-a"));
        assert_eq!(q.layout, Layout::Table);
        assert_eq!(q.text, "web, tier=front");
        assert_eq!(q.statuses.iter().map(String::as_str).collect::<Vec<_>>(), ["Degraded", "Paused"]);
        assert!(q.attention);
        assert_eq!(ListQuery::parse(None), ListQuery::default());
        assert_eq!(ListQuery::parse(Some("namespace=&view=grid")).namespace, None);
    }

    #[test]
    fn names_match_by_substring_and_labels_by_key_and_value() {
        let web = entry("web-frontend", "Paused", json!({"tier": "front"}));
        let q = |text: &str| ListQuery { text: text.into(), ..ListQuery::default() };
        assert!(q("").text_matches(&web));
        assert!(q("FRONT").text_matches(&web));
        assert!(q("tier=front").text_matches(&web) && q("tier:front").text_matches(&web) && q("tier=").text_matches(&web));
        assert!(!q("tier=back").text_matches(&web));
        assert!(!q("web, tier=back").text_matches(&web), "every term must match");
        assert!(!q("api").text_matches(&web));
    }

    #[test]
    fn the_list_counts_each_status_and_filters_by_status_and_attention() {
        let infos = [
            entry("a", "Healthy", json!({})),
            entry("b", "Paused", json!({})),
            entry("c", "Degraded", json!({})),
            entry("d", "Healthy", json!({})),
        ];
        let all = list_body("/rollouts", "ns", Some(&["ns".into(), "other".into()]), &ListQuery::default(), &infos);
        assert!(all.contains("id=\"count-Healthy\" data-live=\"1\">2<"), "{all}");
        assert!(all.contains("id=\"count-Paused\" data-live=\"1\">1<"), "{all}");
        assert!(all.contains("id=\"count-attention\" data-live=\"1\">2<"), "{all}");
        assert!(all.contains("<option selected>ns</option><option>other</option>"), "{all}");
        assert!(all.contains("class=\"grid\"") && all.contains("href=\"/rollouts/rollout/ns/a\""), "{all}");
        let attention = ListQuery { attention: true, layout: Layout::Table, ..ListQuery::default() };
        let shown = list_body("/rollouts", "ns", None, &attention, &infos);
        let rows: Vec<&str> = shown.split("data-rollout=\"").skip(1).filter_map(|r| r.split('"').next()).collect();
        assert_eq!(rows, ["b", "c"]);
        assert!(shown.contains("<table class=\"rollouts\"") && shown.contains("<input name=\"namespace\""), "a text box when namespaces cannot be listed: {shown}");
        let healthy = ListQuery { statuses: ["Healthy".to_string()].into(), ..ListQuery::default() };
        let shown = list_body("", "ns", None, &healthy, &infos);
        let cards: Vec<&str> = shown.split("data-rollout=\"").skip(1).filter_map(|r| r.split('"').next()).collect();
        assert_eq!(cards, ["a", "d"]);
        assert!(list_body("", "ns", None, &ListQuery { text: "zzz".into(), ..ListQuery::default() }, &infos).contains("No rollout matches"));
    }

    #[test]
    fn steps_show_their_parameters_and_the_current_one() {
        let info = json!({"step": "1/3", "steps": [
            {"setWeight": 20},
            {"pause": {"duration": 30}},
            {"pause": {}},
        ]});
        let html = steps_html(&info);
        assert!(html.contains("<li class=\"done\"><b>Set weight</b> 20%</li>"), "{html}");
        assert!(html.contains("<li class=\"current\" aria-current=\"step\"><b>Pause</b> 30s</li>"), "{html}");
        assert!(html.contains("<li><b>Pause</b> until promoted</li>"), "{html}");
        assert_eq!(step_html(&json!({"pause": {"duration": "1h"}})), "<b>Pause</b> 1h");
        assert_eq!(step_html(&json!({"setCanaryScale": {"replicas": 3}})), "<b>Set canary scale</b> 3 replicas");
        assert_eq!(step_html(&json!({"setCanaryScale": {"matchTrafficWeight": true}})), "<b>Set canary scale</b> match the traffic weight");
        let header = step_html(&json!({"setHeaderRoute": {"name": "hdr", "match": [{"headerName": "X-Canary", "headerValue": {"prefix": "yes<"}}]}}));
        assert!(header.contains("<td>X-Canary</td><td>starts with</td><td>yes&lt;</td>"), "{header}");
        let mirror = step_html(&json!({"setMirrorRoute": {"name": "m", "percentage": 50, "match": [{"method": {"exact": "GET"}, "path": {"prefix": "/api"}, "headers": {"x-env": {"regex": "pr.*"}}}]}}));
        assert!(mirror.contains("m · 50% mirrored") && mirror.contains("method = GET and path starts with /api and header x-env ~ pr.*"), "{mirror}");
        let analysis = step_html(&json!({"analysis": {"templates": [{"templateName": "success-rate"}, {"templateName": "global", "clusterScope": true}],
            "args": [{"name": "service", "value": "web"}, {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]}}));
        assert!(analysis.contains("success-rate, global") && analysis.contains("<li>global (cluster)</li>"), "{analysis}");
        assert!(analysis.contains("<td>service</td><td>web</td>") && analysis.contains("<td>hash</td><td>the Latest pod template hash</td>"), "{analysis}");
        let experiment = step_html(&json!({"experiment": {"duration": "5m", "templates": [{"name": "canary", "specRef": "canary", "replicas": 2, "weight": 10}],
            "analyses": [{"name": "a", "templateName": "t"}]}}));
        assert!(experiment.contains("for 5m") && experiment.contains("<td>canary</td><td>canary</td><td>2</td><td>10%</td>") && experiment.contains("<li>a (t)</li>"), "{experiment}");
    }

    #[test]
    fn containers_get_an_image_input_unless_read_only_and_revisions_a_rollback() {
        let info = json!({
            "containers": [{"name": "app", "image": "x:1"}], "initContainers": [{"name": "init", "image": "busybox:1"}],
            "replicaSets": [
                {"revision": 2, "stable": true, "objectMeta": {"name": "r-2"}, "pods": [{"objectMeta": {"name": "p"}, "status": "Running", "icon": "✔"}]},
                {"revision": 1, "objectMeta": {"name": "r-1"}},
            ],
            "analysisRuns": [{"revision": 2, "objectMeta": {"name": "r-2-ar"}, "status": "Successful", "icon": "✔"}],
        });
        let html = containers_html("/api/v1/rollouts/ns/r", false, &info);
        assert!(html.contains("<code class=\"image\" id=\"image-c-app\" data-live=\"1\">x:1</code>"), "{html}");
        assert!(html.contains("data-set-image=\"/api/v1/rollouts/ns/r/set/app\" data-input=\"new-image-c-app\""), "{html}");
        assert!(html.contains("<h2>Init containers</h2>") && html.contains("/set/init\""), "{html}");
        assert!(!containers_html("/api", true, &info).contains("<input"));
        let revisions = revisions_html("/api", false, &info);
        assert!(revisions.contains("<span class=\"pod pod-ok\" title=\"p: Running\">✔</span>"), "{revisions}");
        assert!(revisions.contains("AnalysisRun r-2-ar · Successful"), "{revisions}");
        assert_eq!(revisions.matches("data-action=\"/api/undo/").count(), 1, "no rollback to the stable revision: {revisions}");
        assert!(revisions.contains("data-action=\"/api/undo/1\""), "{revisions}");
    }

    #[test]
    fn cluster_text_is_escaped() {
        assert_eq!(escape("<script>alert('x')</script> & \"q\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
    }
}
