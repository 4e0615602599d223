//! `rollouts analyze`: the real binary runs a template once against a real HTTP server this
//! test serves on 127.0.0.1 (the web provider), and offline from `--answer`; no cluster.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::support;

const WEB_TEMPLATE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: healthy}
spec:
  args:
    - name: url
    - name: token
      valueFrom: {secretKeyRef: {name: api, key: token}}
  metrics:
    - name: healthy
      interval: 1m
      count: 3
      failureLimit: 2
      successCondition: result.ok == true
      provider:
        web:
          url: "{{args.url}}"
          headers: [{key: Authorization, value: "Bearer {{args.token}}"}]
          jsonPath: "{$.data}"
"#;

fn template_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("analyze-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn analyze(args: &[&str]) -> Output {
    // No cluster: the command must not need one when nothing comes from a Secret.
    Command::new(env!("CARGO_BIN_EXE_rollouts"))
        .arg("analyze")
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("run rollouts analyze")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A server answering `{"data": {"ok": <ok>}}` to requests that carry the bearer token.
async fn health_server(ok: Arc<AtomicBool>, hits: Arc<AtomicUsize>) -> u16 {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let (ok, hits) = (ok.clone(), hits.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
                    return (axum::http::StatusCode::UNAUTHORIZED, "no".to_string());
                }
                (axum::http::StatusCode::OK, format!(r#"{{"data": {{"ok": {}}}}}"#, ok.load(Ordering::SeqCst)))
            }
        }),
    );
    support::serve(app).await
}

/// One measurement decides: the server's answer passes (exit 0) or fails (exit 1) the
/// condition, the value is printed, each run is one request, and the token never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_measures_a_web_metric_once_against_a_real_server() {
    let (ok, hits) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
    let port = health_server(ok.clone(), hits.clone()).await;
    let file = template_file("web.yaml", WEB_TEMPLATE);
    let url = format!("url=http://127.0.0.1:{port}/health");
    let args = ["-f", file.to_str().unwrap(), "-a", &url, "-a", "token=s3cret"];

    let passed = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || analyze(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(passed.status.code(), Some(0), "{}", text(&passed));
    let out = text(&passed);
    assert!(out.contains(r#"{"ok":true}"#) && out.contains("Successful"), "{out}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one measurement, not count: 3");

    ok.store(false, Ordering::SeqCst);
    let failed = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || analyze(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let out = text(&failed);
    // failureLimit: 2 would tolerate it in a rollout; one measurement decides here.
    assert_eq!(failed.status.code(), Some(1), "{out}");
    assert!(out.contains("Phase:     Failed"), "{out}");
    assert!(!out.contains("s3cret"), "the token is never printed: {out}");

    // A wrong token: the server says 401, the measurement is an Error, exit 1.
    let wrong = tokio::task::spawn_blocking({
        let url = url.clone();
        let file = file.clone();
        move || analyze(&["-f", file.to_str().unwrap(), "-a", &url, "-a", "token=wrong"])
    })
    .await
    .unwrap();
    let out = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{out}");
    assert!(out.contains("Error") && out.contains("401"), "{out}");
}

/// Offline: `--answer` judges a given result without asking anyone; `--at` is the instant shown.
#[test]
fn analyze_judges_given_answers_offline() {
    let file = template_file("offline.yaml", WEB_TEMPLATE);
    let f = file.to_str().unwrap();
    let base = ["-f", f, "-a", "url=http://127.0.0.1:9/unused", "-a", "token=x", "--at", "2026-12-05T10:00:00Z"];
    let pass = analyze(&[&base[..], &["--answer", r#"healthy={"ok":true}"#]].concat());
    assert_eq!(pass.status.code(), Some(0), "{}", text(&pass));
    assert!(text(&pass).contains("At:        2026-12-05T10:00:00Z"), "{}", text(&pass));
    let fail = analyze(&[&base[..], &["--answer", r#"healthy={"ok":false}"#]].concat());
    assert_eq!(fail.status.code(), Some(1), "{}", text(&fail));
}

/// What cannot be run exits 2 with the field or argument named: an unknown field, an
/// argument the template does not have, a Secret argument without a cluster, a bad time.
#[test]
fn analyze_refuses_bad_templates_and_arguments_with_exit_2() {
    let typo = template_file("typo.yaml", &WEB_TEMPLATE.replace("successCondition", "succesCondition"));
    let out = analyze(&["-f", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("succesCondition"), "{}", text(&out));

    let file = template_file("args.yaml", WEB_TEMPLATE);
    let f = file.to_str().unwrap();
    let out = analyze(&["-f", f, "-a", "nope=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(r#"no argument "nope""#), "{}", text(&out));

    let out = analyze(&["-f", f, "-a", "url=http://127.0.0.1:9/"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("token") && text(&out).contains("Secret"), "{}", text(&out));

    let out = analyze(&["-f", f, "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--at"), "{}", text(&out));

    let out = analyze(&["-f", "/nonexistent/template.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
