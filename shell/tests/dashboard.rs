//! `rollouts dashboard` over real HTTP against the local control plane (`deploy/dev-cluster/`):
//! each of Argo's REST paths once, the watch streams, and the safety rules.

mod support;
#[path = "dashboard/client.rs"]
mod client;

use std::time::Duration;

use client::Dashboard;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use support::{field, healthy, observed, phase, rollout_until, step, wait_for, within_timeout, Env};

const SEED_CANARY: &str = include_str!("../../fixtures/rollouts/seed-basic-canary.yaml");
const MINUTE: Duration = Duration::from_secs(60);
const NAME: &str = "rollouts-demo";

fn image(ro: &Value) -> String {
    field(ro, "/spec/template/spec/containers/0/image")
}

/// Every REST path of Argo's dashboard, called as a script or the page calls it, each
/// action checked on the Rollout; the watch stream sees a `set image` without polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argos_rest_api_reads_and_acts_on_the_seed_canary() {
    let env = Env::new("dash-api").await;
    let _controller = env.controller(&["--leader-elect=false"]);
    env.apply(SEED_CANARY).await;
    rollout_until(&env, NAME, "the first deploy to be Healthy", MINUTE, healthy).await;
    let dash = Dashboard::start(&env, &[]).await;
    let ns = &env.namespace;
    let api = format!("/rollouts/api/v1/rollouts/{ns}");

    // GET version, namespace.
    let version = dash.own("GET", "/rollouts/api/v1/version", "").await.json();
    assert_eq!(version["rolloutsVersion"], format!("v{}", env!("CARGO_PKG_VERSION")));
    let namespace = dash.own("GET", "/rollouts/api/v1/namespace", "").await.json();
    assert_eq!(namespace["namespace"], ns.as_str());
    assert!(namespace["availableNamespaces"].as_array().unwrap().iter().any(|n| n == ns.as_str()), "{namespace}");

    // GET info: Argo's RolloutInfo of the healthy seed canary.
    let info = dash.own("GET", &format!("{api}/{NAME}/info"), "").await.json();
    assert_eq!(info["objectMeta"]["name"], NAME);
    assert_eq!(info["objectMeta"]["namespace"], ns.as_str());
    assert_eq!((info["status"].as_str(), info["icon"].as_str(), info["strategy"].as_str()), (Some("Healthy"), Some("✔"), Some("Canary")));
    assert_eq!((info["step"].as_str(), info["setWeight"].as_str(), info["actualWeight"].as_str()), (Some("8/8"), Some("100"), Some("100")));
    assert_eq!((info["desired"].as_i64(), info["ready"].as_i64(), info["available"].as_i64()), (Some(5), Some(5), Some(5)), "{info}");
    assert_eq!(info["restartedAt"], "Never");
    assert_eq!(info["containers"], serde_json::json!([{"name": NAME, "image": "argoproj/rollouts-demo:blue"}]));
    assert_eq!(info["steps"].as_array().map(Vec::len), Some(8));
    let rs = &info["replicaSets"][0];
    assert_eq!((rs["stable"].as_bool(), rs["revision"].as_i64(), rs["status"].as_str()), (Some(true), Some(1), Some("Healthy")), "{rs}");
    assert_eq!(rs["pods"].as_array().map(Vec::len), Some(5), "{rs}");
    assert_eq!(rs["pods"][0]["status"], "Running");

    // GET list.
    let list = dash.own("GET", &format!("{api}/info"), "").await.json();
    let names: Vec<&str> = list["rollouts"].as_array().unwrap().iter().filter_map(|r| r["objectMeta"]["name"].as_str()).collect();
    assert_eq!(names, [NAME]);
    assert!(list["rollouts"][0].get("analysisRuns").is_none());

    // PUT set image, while the watch stream is open: the stream delivers the new image.
    let watch_path = format!("{api}/{NAME}/info/watch");
    let watch = dash.stream_until(&watch_path, "text/event-stream", MINUTE, |text| {
        text.lines().any(|l| l.starts_with("data: ") && l.contains("argoproj/rollouts-demo:yellow"))
    });
    let set = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        dash.own("PUT", &format!("{api}/{NAME}/set/{NAME}/argoproj/rollouts-demo/yellow"), "{}").await.json()
    };
    let (stream, set) = tokio::join!(watch, set);
    assert_eq!(image(&set), "argoproj/rollouts-demo:yellow", "the answer is the Rollout after the change");
    let frames: Vec<Value> =
        stream.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).expect("a JSON frame")).collect();
    assert!(frames.len() >= 2, "the current info first, then the update: {stream}");
    assert_eq!(frames[0]["result"]["containers"][0]["image"], "argoproj/rollouts-demo:blue");
    assert!(stream.contains("content-type: text/event-stream"), "{stream}");

    // PUT promote: the canary paused at step 1 moves on.
    rollout_until(&env, NAME, "the canary to pause at step 1", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1).await;
    let promoted = dash.own("PUT", &format!("{api}/{NAME}/promote"), r#"{"full": false}"#).await.json();
    assert_eq!(promoted["metadata"]["name"], NAME);
    rollout_until(&env, NAME, "the promote to take the canary past step 1", MINUTE, |ro| step(ro) >= 2).await;

    // PUT abort, retry.
    dash.own("PUT", &format!("{api}/{NAME}/abort"), "{}").await.json();
    rollout_until(&env, NAME, "the abort to degrade the rollout", MINUTE, |ro| ro.pointer("/status/abort") == Some(&Value::Bool(true)) && phase(ro) == "Degraded").await;
    dash.own("PUT", &format!("{api}/{NAME}/retry"), "{}").await.json();
    let ro = env.rollout(NAME).await;
    assert_ne!(ro.pointer("/status/abort"), Some(&Value::Bool(true)), "retry clears status.abort: {ro}");

    // PUT restart.
    let restarted = dash.own("PUT", &format!("{api}/{NAME}/restart"), "{}").await.json();
    assert!(!field(&restarted, "/spec/restartAt").is_empty(), "{restarted}");
    assert!(!field(&env.rollout(NAME).await, "/spec/restartAt").is_empty());

    // PUT undo to revision 1: the template is blue again.
    let undone = dash.own("PUT", &format!("{api}/{NAME}/undo/1"), "{}").await.json();
    assert_eq!(image(&undone), "argoproj/rollouts-demo:blue");
    assert_eq!(image(&env.rollout(NAME).await), "argoproj/rollouts-demo:blue");

    // The namespace stream, as grpc-gateway's JSON lines when the client does not ask for SSE.
    let lines = dash.stream_until(&format!("{api}/info/watch"), "application/json", MINUTE, |t| t.contains("}\n")).await;
    let first = lines.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("").lines().next().unwrap_or("");
    let event: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {lines}"));
    assert_eq!(event["result"]["type"], "Updated");
    assert_eq!(event["result"]["rolloutInfo"]["objectMeta"]["name"], NAME);

    // A missing rollout: the API server's 404 with grpc-gateway's error shape.
    let missing = dash.own("GET", &format!("{api}/nope/info"), "").await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let error: Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(error["code"], 5);
    assert!(error["message"].as_str().unwrap().contains("nope"), "{error}");
}

/// Actions from another site, without the CSRF token, or to a read-only dashboard are
/// refused and change nothing; reads keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_refused_cross_origin_without_the_csrf_token_and_when_read_only() {
    let env = Env::new("dash-safety").await;
    env.apply(SEED_CANARY).await;
    let dash = Dashboard::start(&env, &[]).await;
    let abort = format!("/rollouts/api/v1/rollouts/{}/{NAME}/abort", env.namespace);
    let csrf = dash.csrf().await;
    let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let host = dash.host();

    // The pages: `/` leads to the list, which links the rollout; its page carries the token and the buttons.
    let home = dash.own("GET", "/", "").await;
    assert_eq!((home.status, home.header("location").as_deref()), (303, Some("/rollouts/")), "{home:?}");
    let list = dash.own("GET", "/rollouts/", "").await;
    assert_eq!(list.status, 200, "{list:?}");
    assert!(list.body.contains(&format!("href=\"/rollouts/rollout/{}/{NAME}\"", env.namespace)), "{}", list.body);
    let page = dash.own("GET", &format!("/rollouts/rollout/{}/{NAME}", env.namespace), "").await;
    assert!(page.body.contains(&format!("name=\"csrf-token\" content=\"{csrf}\"")), "{}", page.body);
    assert!(page.body.contains("data-action=\"/rollouts/api/v1/rollouts/") && page.body.contains(">Promote full<"), "{}", page.body);
    assert!(page.header("content-security-policy").is_some_and(|p| p.contains("frame-ancestors 'none'")));

    let cross = dash.raw("PUT", &abort, &h(&[("Host", &host), ("Origin", "https://evil.example"), ("X-CSRF-Token", &csrf)]), "{}").await;
    assert_eq!(cross.status, 403, "{cross:?}");
    assert!(cross.body.contains("cross-origin"), "{cross:?}");
    let no_token = dash.raw("PUT", &abort, &h(&[("Host", &host), ("Origin", &format!("http://{host}"))]), "{}").await;
    assert_eq!(no_token.status, 403, "{no_token:?}");
    assert!(no_token.body.contains("X-CSRF-Token"), "{no_token:?}");
    let rebound = dash.raw("GET", "/rollouts/api/v1/version", &h(&[("Host", "evil.example:3100")]), "").await;
    assert_eq!(rebound.status, 403, "a foreign Host (DNS rebinding) is refused: {rebound:?}");
    assert!(rebound.header("x-csrf-token").is_none());
    assert_ne!(env.rollout(NAME).await.pointer("/status/abort"), Some(&Value::Bool(true)), "nothing was aborted");
    // The same request with the token and the own Origin goes through.
    let own = dash.raw("PUT", &abort, &h(&[("Host", &host), ("Origin", &format!("http://{host}")), ("X-CSRF-Token", &csrf)]), "{}").await;
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(env.rollout(NAME).await.pointer("/status/abort"), Some(&Value::Bool(true)));

    let read_only = Dashboard::start(&env, &["--read-only"]).await;
    let retry = format!("/rollouts/api/v1/rollouts/{}/{NAME}/retry", env.namespace);
    let refused = read_only.own("PUT", &retry, "{}").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("read-only"), "{refused:?}");
    assert_eq!(env.rollout(NAME).await.pointer("/status/abort"), Some(&Value::Bool(true)), "the retry was not done");
    let info = read_only.own("GET", &format!("/rollouts/api/v1/rollouts/{}/{NAME}/info", env.namespace), "").await.json();
    let page = read_only.own("GET", &format!("/rollouts/rollout/{}/{NAME}", env.namespace), "").await;
    assert!(page.body.contains(NAME) && !page.body.contains("data-action"), "read-only hides the buttons: {}", page.body);
    assert_eq!(info["objectMeta"]["name"], NAME);
}

/// Listening beyond loopback needs a token; with one, every request must carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_dashboard_and_is_required_beyond_loopback() {
    let env = Env::new("dash-token").await;
    let port = support::free_port().to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(client::binary())
            .args(["dashboard", "--address", "0.0.0.0", "-p", &port, "-n", &env.namespace])
            .env("KUBECONFIG", &env.kubeconfig)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the dashboard refuses at once")
    .expect("run the dashboard");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0 without --token-file"), "{stderr}");

    let dash = Dashboard::start_with_token(&env, &[], Some("s3cret-token")).await;
    let host = dash.host();
    let version = "/rollouts/api/v1/version";
    let anonymous = dash.raw("GET", version, &[("Host".into(), host.clone())], "").await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let wrong = dash.raw("GET", version, &[("Host".into(), host.clone()), ("Authorization".into(), "Bearer guess".into())], "").await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(dash.own("GET", version, "").await.status, 200);
}

const MEASURED: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: error-budget}
spec:
  metrics:
    - name: success-rate
      interval: 1s
      count: 3
      failureLimit: 1
      successCondition: result >= 0.9
      provider: {web: {url: "http://127.0.0.1:PORT/rate", jsonPath: "{$.rate}"}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: measured}
spec:
  replicas: 1
  selector: {matchLabels: {app: measured}}
  template:
    metadata: {labels: {app: measured}}
    spec:
      containers: [{name: app, image: "argoproj/rollouts-demo:blue"}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis: {templates: [{templateName: error-budget}]}
"#;

/// The rollout page of a rollout whose step analysis finished: the run with its phase, a
/// chart of the metric's measurements (the failed one marked) and the measurement table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_page_charts_a_finished_analysis_run() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let env = Env::new("dash-analysis").await;
    // The second measurement is below the condition: one failure, within failureLimit 1.
    let served = Arc::new(AtomicU32::new(0));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/rate",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { format!("{{\"rate\": {}}}", if n == 1 { 0.5 } else { 0.97 }) }
        }),
    );
    let port = support::serve(app).await;
    let _controller = env.controller(&["--leader-elect=false"]);
    env.apply(&MEASURED.replace("PORT", &port.to_string())).await;
    rollout_until(&env, "measured", "the first deploy to be Healthy", MINUTE, healthy).await;
    env.cli_ok(&["set", "image", "measured", "app=argoproj/rollouts-demo:yellow"]);
    rollout_until(&env, "measured", "the analysis to pass and the update to finish", 2 * MINUTE, |ro| {
        healthy(ro) && image(ro).ends_with(":yellow") && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    assert!(served.load(Ordering::SeqCst) >= 3, "three measurements");

    let dash = Dashboard::start(&env, &[]).await;
    let page = dash.own("GET", &format!("/rollouts/rollout/{}/measured", env.namespace), "").await;
    assert_eq!(page.status, 200, "{page:?}");
    let body = &page.body;
    let section = &body[body.find("<h2>Analysis runs</h2>").unwrap_or_else(|| panic!("no analysis section: {body}"))..];
    assert!(section.contains("Successful"), "the run's phase: {section}");
    let svg = &section[section.find("<svg").expect("a chart")..section.find("</svg>").expect("the chart ends")];
    for text in ["success-rate", "value", "Successful", "Failed", "time since the first measurement"] {
        assert!(svg.contains(&format!("\n{text}\n")), "no {text:?} in the chart: {svg}");
    }
    assert!(svg.contains("<polyline") && svg.matches("<circle").count() >= 3 + 2, "a line and a mark per measurement: {svg}");
    let table = &section[section.find("<table class=\"measurements\">").expect("the measurement table")..];
    assert!(table.contains("<th>Started</th><th>Finished</th><th>Phase</th><th>Value</th><th>Message</th>"), "{table}");
    assert!(table.contains("<td>Failed</td><td>0.5</td>"), "the failed measurement and its value: {table}");
    assert_eq!(table.matches("<td>Successful</td><td>0.97</td>").count(), 2, "{table}");
    // The page offers the what-if.
    assert!(body.contains(&format!("action=\"/rollouts/rollout/{}/measured/whatif\"", env.namespace)), "{body}");
}

/// The what-if of the seed canary with a promote: a timeline chart of the simulated update and
/// its step table, from the live objects, changing nothing in the cluster; a bad field is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whatif_simulates_the_seed_canary_with_a_promote() {
    let env = Env::new("dash-whatif").await;
    env.apply(SEED_CANARY).await;
    let before = env.rollout(NAME).await;
    let dash = Dashboard::start(&env, &[]).await;
    let path = format!("/rollouts/rollout/{}/{NAME}/whatif", env.namespace);

    let form = dash.own("GET", &path, "").await;
    assert_eq!(form.status, 200, "{form:?}");
    assert!(form.body.contains("value=\"argoproj/rollouts-demo:blue\"") && form.body.contains(">Simulate</button>"), "{}", form.body);

    let run = dash.own("GET", &format!("{path}?image=argoproj/rollouts-demo:yellow&image_at=10s&promote=2m&run=1"), "").await;
    assert_eq!(run.status, 200, "{run:?}");
    let body = &run.body;
    let svg = &body[body.find("<svg").expect("the timeline chart")..body.find("</svg>").expect("the chart ends")];
    for series in ["setWeight", "actual weight", "r1 ready pods", "r2 ready pods", "weight %", "set image", "promote"] {
        assert!(svg.contains(&format!("\n{series}\n")), "no {series:?} in the chart: {svg}");
    }
    let table = &body[body.find("<table class=\"whatif-steps\">").expect("the step table")..];
    let rows: Vec<&str> = table.split("<tr class=").skip(1).collect();
    let row = |at: &str| rows.iter().find(|r| r.contains(&format!("><td>{at}</td>"))).unwrap_or_else(|| panic!("no row at {at}: {table}"));
    // Pods start in 5 s: the image set at 10s pauses at setWeight 20 at 15s, until the promote at 2m.
    assert!(row("15s").contains("<td>Paused</td><td>1/8</td><td>20</td><td>20</td>"), "{table}");
    assert!(row("2m0s").contains("<td>Progressing</td><td>2/8</td><td>40</td>"), "{table}");
    let last = rows.last().unwrap();
    assert!(last.contains("<td>Healthy</td><td>8/8</td><td>100</td><td>100</td><td>r2 stable 5/5/5"), "{table}");
    assert!(body.contains("settled at"), "{body}");
    assert_eq!(env.rollout(NAME).await.pointer("/spec"), before.pointer("/spec"), "the what-if changed nothing");

    let bad = dash.own("GET", &format!("{path}?image=argoproj/rollouts-demo:yellow&promote=soon&run=1"), "").await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("promote: &quot;soon&quot; is not a duration"), "{}", bad.body);
}

/// A browser cannot send the bearer header: with a token, a page leads to the login form,
/// which trades the right token (from the dashboard's own site only) for an HttpOnly,
/// SameSite=Strict cookie; with the cookie the pages open, and actions still need the page's
/// CSRF token. The form and the stylesheet are all that is open without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_with_the_token_form_and_gets_a_strict_cookie() {
    let env = Env::new("dash-login").await;
    env.apply(SEED_CANARY).await;
    let dash = Dashboard::start_with_token(&env, &[], Some("s3cret-token")).await;
    let host = dash.host();
    let own_origin = format!("http://{host}");
    let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");

    let page = dash.raw("GET", "/rollouts/", &h(&[("Host", &host)]), "").await;
    assert_eq!((page.status, page.header("location").as_deref()), (303, Some("/rollouts/login")), "{page:?}");
    let form = dash.raw("GET", "/rollouts/login", &h(&[("Host", &host)]), "").await;
    assert_eq!(form.status, 200, "{form:?}");
    assert!(form.body.contains("<form method=\"post\" action=\"/rollouts/login\">") && form.body.contains("name=\"token\""), "{}", form.body);
    assert!(form.header("x-csrf-token").is_none(), "the open form does not hand out the CSRF token");
    assert_eq!(dash.raw("GET", "/rollouts/assets/style.css", &h(&[("Host", &host)]), "").await.status, 200);
    assert_eq!(dash.raw("GET", "/rollouts/api/v1/version", &h(&[("Host", &host)]), "").await.status, 401, "the API answers 401, not the form");

    let wrong = dash.raw("POST", "/rollouts/login", &h(&[("Host", &host), ("Origin", &own_origin), form_type]), "token=guess").await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.header("set-cookie").is_none() && wrong.body.contains("wrong token"), "{wrong:?}");
    let foreign = dash.raw("POST", "/rollouts/login", &h(&[("Host", &host), ("Origin", "https://evil.example"), form_type]), "token=s3cret-token").await;
    assert_eq!(foreign.status, 403, "{foreign:?}");
    assert!(foreign.header("set-cookie").is_none(), "{foreign:?}");
    let login = dash.raw("POST", "/rollouts/login", &h(&[("Host", &host), ("Origin", &own_origin), form_type]), "token=s3cret-token").await;
    assert_eq!((login.status, login.header("location").as_deref()), (303, Some("/rollouts/")), "{login:?}");
    assert_eq!(login.header("set-cookie").as_deref(), Some("rollouts-token=s3cret-token; Path=/rollouts; HttpOnly; SameSite=Strict"));

    let cookie = ("Cookie", "rollouts-token=s3cret-token");
    let list = dash.raw("GET", "/rollouts/", &h(&[("Host", &host), cookie]), "").await;
    assert_eq!(list.status, 200, "{list:?}");
    assert!(list.body.contains(NAME), "{}", list.body);
    let csrf = list.header("x-csrf-token").expect("the CSRF token on an authenticated page");
    let abort = format!("/rollouts/api/v1/rollouts/{}/{NAME}/abort", env.namespace);
    let no_csrf = dash.raw("PUT", &abort, &h(&[("Host", &host), ("Origin", &own_origin), cookie]), "{}").await;
    assert_eq!(no_csrf.status, 403, "the cookie alone does not act: {no_csrf:?}");
    let act = dash.raw("PUT", &abort, &h(&[("Host", &host), ("Origin", &own_origin), cookie, ("X-CSRF-Token", &csrf)]), "{}").await;
    assert_eq!(act.status, 200, "{act:?}");
    assert_eq!(env.rollout(NAME).await.pointer("/status/abort"), Some(&Value::Bool(true)));
}

// --- the dashboard under the RBAC of deploy/dashboard-install.yaml ---------------------------

const ACCOUNT: &str = "argo-rollouts-dashboard";

/// The objects of `deploy/dashboard-install.yaml`.
fn install_objects() -> Vec<Value> {
    let text = std::fs::read_to_string(support::repo().join("deploy/dashboard-install.yaml")).expect("deploy/dashboard-install.yaml");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("deploy/dashboard-install.yaml is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Applies the file's ClusterRoles as they are (server-side, so a rerun changes nothing).
async fn apply_cluster_roles(env: &Env) {
    let api: Api<ClusterRole> = Api::all(env.client.clone());
    for object in install_objects().into_iter().filter(|o| o["kind"] == "ClusterRole") {
        let role: ClusterRole = serde_json::from_value(object).expect("a ClusterRole");
        let name = role.metadata.name.clone().expect("a named ClusterRole");
        api.patch(&name, &PatchParams::apply("rollouts-e2e").force(), &Patch::Apply(&role)).await.unwrap_or_else(|e| panic!("apply ClusterRole {name}: {e}"));
    }
}

/// Binds the file's ClusterRole `role` to the dashboard's account, in the test's namespace only.
async fn bind(env: &Env, role: &str) {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": env.namespace}],
    });
    env.apply(&serde_yaml_ng::to_string(&binding).unwrap()).await;
}

/// The whole install file applies (a server-side dry run, its namespace swapped for the
/// test's). Then the dashboard runs out of the cluster as the file's ServiceAccount with the
/// file's ClusterRoles bound in the test's namespace: with the reading role alone the pages,
/// the REST reads and the watch stream work and the API server refuses a promote; with the
/// actions role too, promote and set image (of the Rollout, and of the Deployment a
/// `workloadRef` names) go through. Requests outside both roles (deletes,
/// Secrets, scaling a ReplicaSet, creating a pod, Events) are refused to that account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_files_rbac_is_what_the_dashboard_uses_and_no_more() {
    within_timeout("the dashboard RBAC test", async {
        let env = Env::new("dash-rbac").await;
        let text = std::fs::read_to_string(support::repo().join("deploy/dashboard-install.yaml")).unwrap();
        let here = text.replace("namespace: argo-rollouts", &format!("namespace: {}", env.namespace));
        let dry_run = kubectl(&env, &["apply", "--dry-run=server", "-f", "-"], &here);
        for object in install_objects() {
            let (kind, name) = (object["kind"].as_str().unwrap().to_lowercase(), object["metadata"]["name"].as_str().unwrap());
            let line = format!("{kind}.");
            assert!(dry_run.lines().any(|l| (l.starts_with(&line) || l.starts_with(&format!("{kind}/"))) && l.contains(&format!("/{name} "))), "{kind} {name} in:\n{dry_run}");
        }

        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(SEED_CANARY).await;
        rollout_until(&env, NAME, "the first deploy to be Healthy", MINUTE, healthy).await;
        env.cli_ok(&["set", "image", NAME, "rollouts-demo=argoproj/rollouts-demo:yellow"]);
        rollout_until(&env, NAME, "the canary to pause at step 1", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1).await;

        apply_cluster_roles(&env).await;
        env.apply(&format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {ACCOUNT}}}\n")).await;
        bind(&env, "argo-rollouts-dashboard").await;
        let kubeconfig = support::account_kubeconfig(&env, ACCOUNT).await;
        let as_account = Env { kubeconfig: kubeconfig.clone(), client: env.client.clone(), namespace: env.namespace.clone() };
        let dash = Dashboard::start(&as_account, &[]).await;
        let api = format!("/rollouts/api/v1/rollouts/{}", env.namespace);

        // Reads: the list, one rollout's info with its ReplicaSets and pods, the namespace, the pages, the stream.
        let list = wait_for(Duration::from_secs(10), "the reading role to take effect", || async {
            let reply = dash.own("GET", &format!("{api}/info"), "").await;
            if reply.status == 200 { Ok(reply.json()) } else { Err(format!("{reply:?}")) }
        })
        .await;
        assert_eq!(list["rollouts"][0]["objectMeta"]["name"], NAME, "{list}");
        let info = dash.own("GET", &format!("{api}/{NAME}/info"), "").await.json();
        assert_eq!((info["status"].as_str(), info["step"].as_str()), (Some("Paused"), Some("1/8")), "{info}");
        let pods: usize = info["replicaSets"].as_array().unwrap().iter().map(|rs| rs["pods"].as_array().map_or(0, Vec::len)).sum();
        assert_eq!(pods, 5, "the pods were listed: {info}");
        assert_eq!(dash.own("GET", "/rollouts/api/v1/namespace", "").await.json()["namespace"], env.namespace.as_str());
        let page = dash.own("GET", &format!("/rollouts/rollout/{}/{NAME}", env.namespace), "").await;
        assert!(page.status == 200 && page.body.contains("rollouts-demo:yellow"), "{page:?}");
        let stream = dash.stream_until(&format!("{api}/{NAME}/info/watch"), "text/event-stream", MINUTE, |t| t.contains("\ndata: ")).await;
        assert!(stream.contains("\"Paused\""), "the stream's first frame: {stream}");

        // Without the actions role the API server refuses the promote; nothing changes.
        let refused = dash.own("PUT", &format!("{api}/{NAME}/promote"), "{}").await;
        assert_eq!(refused.status, 403, "{refused:?}");
        assert!(refused.body.contains("forbidden") && refused.body.contains(&format!("system:serviceaccount:{}:{ACCOUNT}", env.namespace)), "{refused:?}");
        assert_eq!(step(&env.rollout(NAME).await), 1, "the refused promote changed nothing");

        // With it, promote (status and spec patches) and set image (an update) go through.
        bind(&env, "argo-rollouts-dashboard-actions").await;
        wait_for(Duration::from_secs(10), "the actions role to take effect", || async {
            let reply = dash.own("PUT", &format!("{api}/{NAME}/promote"), "{}").await;
            if reply.status == 200 { Ok(()) } else { Err(format!("{reply:?}")) }
        })
        .await;
        rollout_until(&env, NAME, "the promote to take the canary past step 1", MINUTE, |ro| step(ro) >= 2).await;
        // The set image reaches the open stream through the account's watch.
        let watch_path = format!("{api}/{NAME}/info/watch");
        let watch = dash.stream_until(&watch_path, "text/event-stream", MINUTE, |text| {
            text.lines().any(|l| l.starts_with("data: ") && l.contains("argoproj/rollouts-demo:green"))
        });
        let set = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            dash.own("PUT", &format!("{api}/{NAME}/set/{NAME}/argoproj/rollouts-demo/green"), "{}").await
        };
        let (stream, set) = tokio::join!(watch, set);
        assert_eq!(set.status, 200, "{set:?}");
        assert_eq!(image(&env.rollout(NAME).await), "argoproj/rollouts-demo:green");
        let frames = stream.lines().filter(|l| l.starts_with("data: ")).count();
        assert!(frames >= 2 && stream.contains("argoproj/rollouts-demo:green"), "the first frame, then the update: {stream}");

        // A rollout whose template is in a Deployment: set image updates the Deployment.
        env.apply(WORKLOAD_REF).await;
        let set = dash.own("PUT", &format!("{api}/wl/set/app/argoproj/rollouts-demo/green"), "{}").await;
        assert_eq!(set.status, 200, "{set:?}");
        let deployment = Api::<Deployment>::namespaced(env.client.clone(), &env.namespace).get("wl-template").await.unwrap();
        let containers = deployment.spec.and_then(|s| s.template.spec).map(|s| s.containers).unwrap_or_default();
        assert_eq!(containers[0].image.as_deref(), Some("argoproj/rollouts-demo:green"));

        // Nothing beyond the two roles: each of these is the API server's 403 for the account.
        let client = support::client_for(&kubeconfig).await;
        let ns = env.namespace.as_str();
        let rollouts: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollouts_shell::kubeapi::rollout_resource());
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        let rs = env.replica_sets(NAME).await[0].metadata.name.clone().unwrap();
        let pods_now = Api::<Pod>::namespaced(env.client.clone(), ns).list(&ListParams::default()).await.unwrap().items;
        let pod_name = pods_now[0].metadata.name.clone().unwrap();
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "intruder"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})).unwrap();
        let attempts: Vec<(&str, Result<(), kube::Error>)> = vec![
            ("delete the rollout", rollouts.delete(NAME, &DeleteParams::default()).await.map(drop)),
            ("create a rollout", rollouts.create(&PostParams::default(), &another_rollout()).await.map(drop)),
            ("list secrets", Api::<Secret>::namespaced(client.clone(), ns).list(&ListParams::default()).await.map(drop)),
            ("scale a ReplicaSet", replica_sets.patch(&rs, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 9}}))).await.map(drop)),
            ("create a pod", Api::<Pod>::namespaced(client.clone(), ns).create(&PostParams::default(), &pod).await.map(drop)),
            ("delete a pod", Api::<Pod>::namespaced(client.clone(), ns).delete(&pod_name, &DeleteParams::default()).await.map(drop)),
            ("list events", Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.map(drop)),
            ("delete an AnalysisRun", Api::<DynamicObject>::namespaced_with(client.clone(), ns, &rollouts_shell::kubeapi::analysis_run_resource()).delete("any", &DeleteParams::default()).await.map(drop)),
        ];
        for (what, result) in attempts {
            match result {
                Err(kube::Error::Api(s)) if s.code == 403 => {}
                other => panic!("{what} as the dashboard's account: expected 403 Forbidden, got {other:?}"),
            }
        }
        assert_eq!(env.replica_sets(NAME).await.len(), 3, "nothing was deleted or created");
    })
    .await;
}

/// A rollout taking its template from a Deployment (`workloadRef`), as in Argo's example.
const WORKLOAD_REF: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: wl-template}
spec:
  replicas: 0
  selector: {matchLabels: {app: wl}}
  template:
    metadata: {labels: {app: wl}}
    spec:
      containers: [{name: app, image: "argoproj/rollouts-demo:blue"}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: wl}
spec:
  replicas: 1
  selector: {matchLabels: {app: wl}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: wl-template}
  strategy:
    canary: {steps: [{setWeight: 50}, {pause: {}}]}
"#;

/// The seed canary under another name.
fn another_rollout() -> DynamicObject {
    let mut ro: Value = serde_yaml_ng::from_str(SEED_CANARY).unwrap();
    ro["metadata"]["name"] = json!("another");
    serde_json::from_value(ro).unwrap()
}

/// Runs kubectl against the plane with `stdin`; its stdout, or the test fails with its stderr.
fn kubectl(env: &Env, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kubectl {}: {}{stdout}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    stdout
}
