//! What-if: `/<root>/rollout/<ns>/<name>/whatif` runs the core's simulator on the rollout's
//! current objects (the Rollout and the Services, Ingresses, routes, templates and workload
//! it names, as the cluster holds them now) with the events the user picks, and draws the
//! timeline ([`crate::charts::timeline_chart`]) with the step table under it.
//!
//! A GET with query parameters, not a POST with the CSRF token: it changes nothing in the
//! cluster (it reads what the rollout page reads, with the same credentials, and simulates
//! offline), so a link to it may be shared and reloaded; another site that makes a browser
//! load it cannot read the answer (no CORS), and the work it causes is bounded
//! ([`MAX_EVENTS`], [`MAX_UNTIL`], [`SIMULATION_WAIT`]).
//!
//! The simulation starts from the rollout's current spec, deployed and healthy: its status
//! and older revisions are not carried over. Secrets are never read, so an analysis whose
//! arguments come from a Secret errors in the simulation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures::future::try_join_all;
use http::StatusCode;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{PodTemplate, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use rollouts_core::sim::{parse_scenario, simulate, Entry, Simulation};
use rollouts_core::time::{parse_duration, Seconds};
use serde_json::{json, Map, Value};

use super::api::bounded;
use super::pages::{escape, page};
use super::App;
use crate::charts::{scenario_events, timeline_chart};
use crate::cli::cluster::{to_value, Cluster};
use crate::cli::error::CliError;
use crate::kubeapi::{analysis_template_resource, cluster_analysis_template_resource, route_resource};

/// Events one what-if may script (set image, promotes, abort).
pub const MAX_EVENTS: usize = 20;
/// The longest simulated time one what-if may ask for.
pub const MAX_UNTIL: Seconds = Seconds(24 * 3600);
/// The longest a simulation may take on the server.
const SIMULATION_WAIT: Duration = Duration::from_secs(20);
/// Rows of the step table (the chart still shows the whole timeline, sampled).
const MAX_TABLE_ROWS: usize = 500;
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A field of the form that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), message: message.into() }
}

/// The rollout's objects as the simulation starts from them.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The Rollout, then the objects it names, cleaned to manifests.
    pub objects: Vec<Value>,
    /// The rollout's containers: (name, image).
    pub containers: Vec<(String, String)>,
    /// The metrics of the templates it names.
    pub metrics: BTreeSet<String>,
}

/// What the user picked.
#[derive(Debug, Clone, PartialEq)]
pub struct Choices {
    pub container: String,
    pub image: String,
    pub image_at: Seconds,
    pub promotes: Vec<Seconds>,
    pub abort: Option<Seconds>,
    pub pod_startup: Seconds,
    pub until: Option<Seconds>,
    /// Per metric: whether its measurements pass.
    pub passes: BTreeMap<String, bool>,
}

/// The form's fields as given (to show them again), by name.
type Fields = BTreeMap<String, String>;

const DEFAULT_IMAGE_AT: &str = "30s";
const DEFAULT_POD_STARTUP: &str = "5s";
const METRIC_PREFIX: &str = "metric.";

fn duration(field: &str, text: &str) -> Result<Seconds, FieldError> {
    let d = parse_duration(text).map_err(|e| field_error(field, format!("{:?} is not a duration such as 30s or 2m ({e})", text)))?;
    if d.0 < 0 {
        return Err(field_error(field, format!("{text:?} is negative")));
    }
    if d > MAX_UNTIL {
        return Err(field_error(field, format!("{text:?} is past the longest simulation, {}", MAX_UNTIL.human())));
    }
    Ok(d)
}

/// Reads the form's fields; every error names its field.
pub fn parse_choices(fields: &Fields, live: &Live) -> Result<Choices, FieldError> {
    const KNOWN: [&str; 8] = ["container", "image", "image_at", "promote", "abort", "pod_startup", "until", "run"];
    for key in fields.keys() {
        if !KNOWN.contains(&key.as_str()) && !key.starts_with(METRIC_PREFIX) {
            return Err(field_error(key, "unknown field"));
        }
    }
    let get = |k: &str| fields.get(k).map(|v| v.trim()).unwrap_or("");
    let container = match get("container") {
        "" => live.containers.first().map(|c| c.0.clone()).ok_or_else(|| field_error("container", "the rollout has no containers"))?,
        c if live.containers.iter().any(|(n, _)| n == c) => c.to_string(),
        c => return Err(field_error("container", format!("the rollout has no container {c:?}"))),
    };
    let image = get("image").to_string();
    if image.is_empty() {
        return Err(field_error("image", "give the image to set"));
    }
    if image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(field_error("image", format!("{image:?} is not an image reference")));
    }
    if live.containers.iter().any(|(n, i)| *n == container && *i == image) {
        return Err(field_error("image", format!("container {container} already runs {image}: nothing would change")));
    }
    let image_at = duration("image_at", if get("image_at").is_empty() { DEFAULT_IMAGE_AT } else { get("image_at") })?;
    let promotes = get("promote")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| duration("promote", t))
        .collect::<Result<Vec<_>, _>>()?;
    let abort = match get("abort") {
        "" => None,
        t => Some(duration("abort", t)?),
    };
    if 1 + promotes.len() + usize::from(abort.is_some()) > MAX_EVENTS {
        return Err(field_error("promote", format!("at most {MAX_EVENTS} events in one what-if")));
    }
    let pod_startup = duration("pod_startup", if get("pod_startup").is_empty() { DEFAULT_POD_STARTUP } else { get("pod_startup") })?;
    let until = match get("until") {
        "" => None,
        t => Some(duration("until", t)?),
    };
    let mut passes = BTreeMap::new();
    for metric in &live.metrics {
        let key = format!("{METRIC_PREFIX}{metric}");
        let pass = match fields.get(&key).map(|v| v.trim()).unwrap_or("pass") {
            "pass" => true,
            "fail" => false,
            other => return Err(field_error(&key, format!("{other:?}: choose pass or fail"))),
        };
        passes.insert(metric.clone(), pass);
    }
    if let Some(key) = fields.keys().find(|k| k.strip_prefix(METRIC_PREFIX).is_some_and(|m| !live.metrics.contains(m))) {
        return Err(field_error(key, "no template of this rollout has this metric"));
    }
    Ok(Choices { container, image, image_at, promotes, abort, pod_startup, until, passes })
}

/// The scenario (as JSON, which is YAML) of `rollout` with the user's choices.
pub fn scenario(rollout: &str, live: &Live, choices: &Choices) -> Value {
    let mut events = vec![json!({"at": choices.image_at.human(), "setImage": {"rollout": rollout, "container": choices.container, "image": choices.image}})];
    events.extend(choices.promotes.iter().map(|t| json!({"at": t.human(), "promote": {"rollout": rollout}})));
    events.extend(choices.abort.iter().map(|t| json!({"at": t.human(), "abort": {"rollout": rollout}})));
    // A metric answers with a phase, as a provider that judges itself: a pass or a fail
    // whatever the metric's conditions say.
    let metrics: Map<String, Value> = choices
        .passes
        .iter()
        .map(|(m, pass)| (m.clone(), json!([{"phase": if *pass { "Successful" } else { "Failed" }}])))
        .collect();
    let mut s = json!({
        "name": format!("what-if for {rollout}"),
        "objects": live.objects,
        "cluster": {"podStartup": choices.pod_startup.human()},
        "metrics": metrics,
        "events": events,
    });
    if let Some(until) = choices.until {
        s["until"] = json!(until.human());
    }
    s
}

/// An object as a manifest: no status, and of the metadata only what a user writes.
fn manifest(mut object: Value) -> Value {
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| matches!(k.as_str(), "name" | "labels" | "annotations"));
        if let Some(Value::Object(a)) = meta.get_mut("annotations") {
            a.remove(LAST_APPLIED);
        }
    }
    object
}

async fn get_value(api: Api<DynamicObject>, name: String) -> Result<Option<Value>, CliError> {
    match api.get_opt(&name).await {
        Ok(o) => Ok(o.as_ref().map(to_value)),
        // A kind the cluster does not serve: the simulation reports the missing object.
        Err(e) => match CliError::from(e) {
            e if e.is_not_found() => Ok(None),
            e => Err(e),
        },
    }
}

/// Reads the Rollout and what it names.
async fn live_objects(cluster: &Cluster, name: &str) -> Result<Live, CliError> {
    let ro = to_value(&cluster.get_rollout(name).await?);
    let (decoded, _) = rollouts_core::rollout::decode_rollout(&ro);
    let refs = rollouts_core::rollout::references(&decoded);
    let client = cluster.client.clone();
    let ns = cluster.namespace.as_str();
    let namespaced = |r: &ApiResource| Api::<DynamicObject>::namespaced_with(client.clone(), ns, r);
    let mut gets: Vec<(Api<DynamicObject>, String)> = Vec::new();
    gets.extend(refs.services.iter().map(|s| (namespaced(&ApiResource::erase::<Service>(&())), s.clone())));
    gets.extend(refs.ingresses.iter().map(|s| (namespaced(&ApiResource::erase::<Ingress>(&())), s.clone())));
    gets.extend(refs.templates.iter().map(|s| (namespaced(&analysis_template_resource()), s.clone())));
    gets.extend(refs.cluster_templates.iter().map(|s| (Api::all_with(client.clone(), &cluster_analysis_template_resource()), s.clone())));
    // Routes in another namespace, or named by no one, are left out: the simulated cluster
    // has one namespace.
    gets.extend(refs.routes.iter().filter(|r| r.namespace.is_none() && !r.name.is_empty()).map(|r| (namespaced(&route_resource(r.kind)), r.name.clone())));
    if let Some((kind, workload)) = &refs.workload {
        let resource = match kind.as_str() {
            "Deployment" => Some(ApiResource::erase::<Deployment>(&())),
            "ReplicaSet" => Some(ApiResource::erase::<ReplicaSet>(&())),
            "PodTemplate" => Some(ApiResource::erase::<PodTemplate>(&())),
            _ => None,
        };
        gets.extend(resource.map(|r| (namespaced(&r), workload.clone())));
    }
    let found = try_join_all(gets.into_iter().map(|(api, name)| get_value(api, name))).await?;
    let named: Vec<Value> = found.into_iter().flatten().map(manifest).collect();
    let metrics = named
        .iter()
        .filter(|o| matches!(o.get("kind").and_then(Value::as_str), Some("AnalysisTemplate" | "ClusterAnalysisTemplate")))
        .flat_map(|t| t.pointer("/spec/metrics").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let containers = ro
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("name"), s("image"))
        })
        .collect();
    let mut rollout = manifest(ro);
    // A restart asked for in the past would be in the simulation's future (its clock starts in 2024).
    if let Some(spec) = rollout.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("restartAt");
    }
    let mut objects = vec![rollout];
    objects.extend(named);
    Ok(Live { objects, containers, metrics })
}

/// `GET /<root>/rollout/<ns>/<name>/whatif[?…]`: the form, and with `run` the simulation.
pub async fn whatif(
    State(app): State<Arc<App>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let cluster = app.cluster(&namespace);
    let title = format!("What-if: {name}");
    let live = match bounded(live_objects(&cluster, &name)).await {
        Ok(l) => l,
        Err(e) => return (e.status, page(&app, &title, "", &format!("<p class=\"error\">{}</p>", escape(&e.message)))).into_response(),
    };
    let mut fields = Fields::new();
    for (k, v) in query {
        // A field given twice: the last one counts, as a form sends each once.
        fields.insert(k, v);
    }
    let form = form_html(&app, &namespace, &name, &live, &fields);
    if !fields.contains_key("run") {
        return page(&app, &title, "", &form);
    }
    let (status, result) = match run(&name, &live, &fields).await {
        Ok(html) => (StatusCode::OK, html),
        Err(e) => (StatusCode::BAD_REQUEST, format!("<p class=\"error\">{}</p>", escape(&e.to_string()))),
    };
    (status, page(&app, &title, "", &format!("{form}{result}"))).into_response()
}

async fn run(name: &str, live: &Live, fields: &Fields) -> Result<String, FieldError> {
    let choices = parse_choices(fields, live)?;
    let scenario_json = scenario(name, live, &choices);
    let yaml = serde_yaml_ng::to_string(&scenario_json).unwrap_or_default();
    let parsed = parse_scenario(&scenario_json.to_string()).map_err(|e| field_error("scenario", e.to_string()))?;
    let events = scenario_events(&parsed);
    let task = tokio::task::spawn_blocking(move || simulate(&parsed));
    let sim = match tokio::time::timeout(SIMULATION_WAIT, task).await {
        Ok(Ok(Ok(sim))) => sim,
        Ok(Ok(Err(e))) => return Err(field_error("simulation", e.to_string())),
        Ok(Err(e)) => return Err(field_error("simulation", format!("stopped: {e}"))),
        Err(_) => return Err(field_error("simulation", format!("took longer than {}s", SIMULATION_WAIT.as_secs()))),
    };
    Ok(result_html(name, &sim, &events, &yaml))
}

/// The rollout page's "What-if" section: the few fields most runs need, and a link to the
/// whole form.
pub fn link(app: &App, namespace: &str, name: &str) -> String {
    let url = format!("{}/rollout/{namespace}/{name}/whatif", app.root);
    format!(
        "<section class=\"whatif\"><h2>What-if</h2><form method=\"get\" action=\"{url}\">\
         <label>Set image <input name=\"image\" size=\"40\" placeholder=\"the next image\"></label> \
         <label>at <input name=\"image_at\" size=\"6\" value=\"{DEFAULT_IMAGE_AT}\"></label> \
         <label>promote at <input name=\"promote\" size=\"12\" placeholder=\"2m, 5m\"></label> \
         <button type=\"submit\" name=\"run\" value=\"1\">Simulate</button> <a href=\"{url}\">more choices</a></form>\
         <p>Runs the simulator on this rollout's current objects: nothing changes in the cluster.</p></section>",
        url = escape(&url),
    )
}

fn form_html(app: &App, namespace: &str, name: &str, live: &Live, fields: &Fields) -> String {
    let value = |k: &str, default: &str| escape(fields.get(k).map(String::as_str).unwrap_or(default));
    let chosen = fields.get("container").cloned().or_else(|| live.containers.first().map(|c| c.0.clone())).unwrap_or_default();
    let current_image = live.containers.iter().find(|c| c.0 == chosen).map(|c| c.1.as_str()).unwrap_or("");
    let mut out = format!(
        "<h1>What-if: {name}</h1><p>Simulates this rollout offline, from its current spec and the Services, Ingresses, \
         routes and templates it names: nothing changes in the cluster. <a href=\"{root}/rollout/{ns}/{name}\">Back to the rollout</a></p>\
         <form class=\"whatif\" method=\"get\" action=\"{root}/rollout/{ns}/{name}/whatif\"><fieldset><legend>Events (times from the start)</legend>\
         <label>Container <select name=\"container\">",
        name = escape(name),
        ns = escape(namespace),
        root = escape(&app.root),
    );
    for (c, _) in &live.containers {
        let selected = if *c == chosen { " selected" } else { "" };
        out.push_str(&format!("<option{selected}>{}</option>", escape(c)));
    }
    out.push_str(&format!(
        "</select></label> <label>set image <input name=\"image\" size=\"40\" value=\"{image}\"></label> \
         <label>at <input name=\"image_at\" size=\"6\" value=\"{image_at}\"></label><br>\
         <label>Promote at <input name=\"promote\" size=\"20\" placeholder=\"2m, 5m\" value=\"{promote}\"></label> \
         <label>Abort at <input name=\"abort\" size=\"6\" value=\"{abort}\"></label><br>\
         <label>Pod startup <input name=\"pod_startup\" size=\"6\" value=\"{startup}\"></label> \
         <label>Stop at <input name=\"until\" size=\"6\" placeholder=\"settled\" value=\"{until}\"></label></fieldset>",
        image = value("image", current_image),
        image_at = value("image_at", DEFAULT_IMAGE_AT),
        promote = value("promote", ""),
        abort = value("abort", ""),
        startup = value("pod_startup", DEFAULT_POD_STARTUP),
        until = value("until", ""),
    ));
    if !live.metrics.is_empty() {
        out.push_str("<fieldset><legend>Metric answers</legend>");
        for m in &live.metrics {
            let key = format!("{METRIC_PREFIX}{m}");
            let fail = fields.get(&key).is_some_and(|v| v == "fail");
            out.push_str(&format!(
                "<label>{m} <select name=\"{key}\"><option value=\"pass\"{p}>pass</option><option value=\"fail\"{f}>fail</option></select></label> ",
                m = escape(m),
                key = escape(&key),
                p = if fail { "" } else { " selected" },
                f = if fail { " selected" } else { "" },
            ));
        }
        out.push_str("</fieldset>");
    }
    out.push_str("<button type=\"submit\" name=\"run\" value=\"1\">Simulate</button></form>");
    out
}

fn result_html(name: &str, sim: &Simulation, events: &[(i64, String)], yaml: &str) -> String {
    let rows: Vec<&Entry> = sim.timeline.iter().filter(|e| e.rollout == name).collect();
    let ending = if sim.outcome.settled { format!("settled at {}", sim.outcome.at) } else { format!("stopped at {} without settling", sim.outcome.at) };
    let mut out = format!(
        "<section class=\"whatif-result\"><h2>Timeline</h2><p>{}</p><div class=\"chart timeline\">{}</div>",
        escape(&ending),
        timeline_chart(&sim.timeline, sim.outcome.t, events)
    );
    for note in &sim.notes {
        out.push_str(&format!("<p class=\"note\">{} {}</p>", escape(&Seconds(note.t).human()), escape(&note.what)));
    }
    out.push_str(
        "<table class=\"whatif-steps\"><thead><tr><th>Time</th><th>Phase</th><th>Step</th><th>Set weight</th><th>Actual weight</th>\
         <th>ReplicaSets (desired/ready/available)</th><th>Analysis</th><th>Message</th></tr></thead><tbody>",
    );
    let skipped = rows.len().saturating_sub(MAX_TABLE_ROWS);
    for e in &rows[..rows.len() - skipped] {
        let step = e.current_step_index.map(|i| format!("{i}/{}", e.step_count)).unwrap_or_else(|| "-".into());
        let sets: Vec<String> = e
            .replica_sets
            .iter()
            .filter(|r| r.desired > 0 || r.ready > 0 || r.role != "old")
            .map(|r| format!("r{} {} {}/{}/{}", r.revision, r.role, r.desired, r.ready, r.available))
            .collect();
        let runs: Vec<String> = e.analysis_runs.iter().map(|r| format!("{} {}", r.name, r.phase)).collect();
        let message = if e.aborted && !e.message.contains("abort") { format!("aborted; {}", e.message) } else { e.message.clone() };
        out.push_str(&format!(
            "<tr class=\"status-{phase}\"><td>{at}</td><td>{phase}</td><td>{step}</td><td>{set}</td><td>{actual}</td><td>{sets}</td><td>{runs}</td><td>{message}</td></tr>",
            at = escape(&e.at),
            phase = escape(&e.phase),
            set = e.set_weight.map(|w| w.to_string()).unwrap_or_else(|| "-".into()),
            actual = e.actual_weight,
            sets = escape(&sets.join(", ")),
            runs = escape(&runs.join(", ")),
            message = escape(&message),
        ));
    }
    if skipped > 0 {
        out.push_str(&format!("<tr><td colspan=\"8\">{skipped} later rows not listed</td></tr>"));
    }
    out.push_str(&format!(
        "</tbody></table><details><summary>The scenario (run it with <code>rollouts simulate FILE --plot timeline.svg</code>)</summary><pre>{}</pre></details></section>",
        escape(yaml)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Live {
        Live {
            objects: vec![json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "demo"}, "spec": {}})],
            containers: vec![("app".into(), "app:1".into())],
            metrics: ["success-rate".to_string()].into(),
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn choices_are_read_with_defaults() {
        let c = parse_choices(&fields(&[("image", "app:2"), ("promote", "2m, 5m"), ("metric.success-rate", "fail"), ("run", "1")]), &live()).unwrap();
        assert_eq!((c.container.as_str(), c.image.as_str(), c.image_at), ("app", "app:2", Seconds(30)));
        assert_eq!(c.promotes, [Seconds(120), Seconds(300)]);
        assert_eq!((c.abort, c.until, c.pod_startup), (None, None, Seconds(5)));
        assert_eq!(c.passes, [("success-rate".to_string(), false)].into());
    }

    #[test]
    fn a_bad_field_is_named() {
        let bad = |pairs: &[(&str, &str)]| parse_choices(&fields(pairs), &live()).unwrap_err();
        assert_eq!(bad(&[("image", "app:2"), ("promote", "soon")]).field, "promote");
        assert_eq!(bad(&[("image", "app:2"), ("abort", "-5s")]).field, "abort");
        assert_eq!(bad(&[("image", "app:2"), ("until", "48h")]).field, "until");
        assert_eq!(bad(&[("image", "")]).field, "image");
        assert_eq!(bad(&[("image", "app:1")]).field, "image");
        assert_eq!(bad(&[("image", "app:2"), ("container", "sidecar")]).field, "container");
        assert_eq!(bad(&[("image", "app:2"), ("metric.success-rate", "maybe")]).field, "metric.success-rate");
        assert_eq!(bad(&[("image", "app:2"), ("metric.latency", "pass")]).field, "metric.latency");
        assert_eq!(bad(&[("image", "app:2"), ("colour", "red")]).field, "colour");
        let many = vec!["1m"; MAX_EVENTS].join(",");
        let e = bad(&[("image", "app:2"), ("promote", &many)]);
        assert!(e.to_string().starts_with("promote: at most"), "{e}");
    }

    #[test]
    fn manifests_keep_what_a_user_writes() {
        let o = manifest(json!({
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "n", "uid": "u", "resourceVersion": "1", "managedFields": [],
                         "annotations": {LAST_APPLIED: "{}", "keep": "me"}},
            "spec": {"ports": []},
            "status": {"loadBalancer": {}},
        }));
        assert_eq!(o, json!({"kind": "Service", "metadata": {"name": "s", "annotations": {"keep": "me"}}, "spec": {"ports": []}}));
    }

    /// The objects of a fixture as the cluster would hold them, with the metrics of its templates.
    fn live_from_fixture(path: &str) -> Live {
        let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap();
        let objects = rollouts_core::sim::parse_scenario(&text).unwrap().objects;
        let metrics = objects.iter().flat_map(|o| o.pointer("/spec/metrics").and_then(Value::as_array).cloned().unwrap_or_default()).filter_map(|m| m["name"].as_str().map(str::to_string)).collect();
        let rollout = objects.iter().find(|o| o["kind"] == "Rollout").unwrap();
        let c = &rollout["spec"]["template"]["spec"]["containers"][0];
        Live { containers: vec![(c["name"].as_str().unwrap().into(), c["image"].as_str().unwrap().into())], metrics, objects }
    }

    #[test]
    fn a_failing_metric_aborts_the_simulated_update_and_a_passing_one_finishes_it() {
        let live = live_from_fixture("fixtures/scenarios/analysis-seed-inline-step-passes.yaml");
        let outcome = |answer: &str| {
            let c = parse_choices(&fields(&[("image", "example/guestbook:2"), ("metric.success-rate", answer), ("run", "1")]), &live).unwrap();
            let sim = simulate(&parse_scenario(&scenario("guestbook", &live, &c).to_string()).unwrap()).unwrap();
            let last = sim.final_state["guestbook"].clone();
            (last.phase, last.aborted, last.analysis_runs.iter().map(|r| r.phase.clone()).collect::<Vec<_>>())
        };
        assert_eq!(outcome("pass"), ("Healthy".to_string(), false, vec!["Successful".to_string()]));
        let (phase, aborted, runs) = outcome("fail");
        assert_eq!((phase.as_str(), aborted, runs), ("Degraded", true, vec!["Failed".to_string()]));
    }

    #[test]
    fn the_scenario_has_the_events_and_answers_picked() {
        let c = parse_choices(&fields(&[("image", "app:2"), ("promote", "2m"), ("abort", "3m"), ("until", "10m")]), &live()).unwrap();
        let s = scenario("demo", &live(), &c);
        assert_eq!(s["events"].as_array().map(Vec::len), Some(3));
        assert_eq!(s["events"][0]["setImage"], json!({"rollout": "demo", "container": "app", "image": "app:2"}));
        assert_eq!(s["metrics"]["success-rate"], json!([{"phase": "Successful"}]));
        assert_eq!(s["until"], "10m0s");
        parse_scenario(&s.to_string()).expect("a scenario the simulator reads");
    }
}
