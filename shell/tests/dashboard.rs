//! `rollouts dashboard` over real HTTP against the local control plane (`deploy/dev-cluster/`):
//! each of Argo's REST paths once, the watch streams, and the safety rules.

mod support;
#[path = "dashboard/client.rs"]
mod client;

use std::time::Duration;

use client::Dashboard;
use serde_json::Value;
use support::{field, healthy, observed, phase, rollout_until, step, Env};

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
