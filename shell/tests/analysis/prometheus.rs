//! Prometheus measured by the controller: Debian's server, started by the test on
//! 127.0.0.1, scraping a target the test serves.

use std::path::PathBuf;

use super::support::{self, analysis_runs, field, healthy, phase, rollout_until, summary, wait_for, Env};
use super::MINUTE;

/// A real Prometheus server (Debian's, fetched by `deploy/dev-cluster/prometheus`) scraping
/// one target every second; killed when dropped.
pub struct Prometheus {
    child: std::process::Child,
    pub port: u16,
    _dir: PathBuf,
}

impl Prometheus {
    /// Waits until the query `app_success_rate` answers with a body containing `needle`
    /// (Prometheus has scraped the target since it changed).
    pub async fn wait_for_answer(&self, needle: &str) {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], self.port).into();
        wait_for(MINUTE, &format!("Prometheus to answer {needle}"), || async move {
            let body = tokio::task::spawn_blocking(move || support::http_get(addr, "/api/v1/query?query=app_success_rate"))
                .await
                .unwrap()?;
            if body.contains(needle) { Ok(()) } else { Err(body) }
        })
        .await;
    }

    /// Waits until Prometheus holds at least `n` samples of `app_success_rate` from the last
    /// 30 s (a range query over that window then has that many points).
    pub async fn wait_for_samples(&self, n: u32) {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], self.port).into();
        wait_for(MINUTE, &format!("Prometheus to hold {n} samples"), || async move {
            let path = "/api/v1/query?query=count_over_time(app_success_rate%5B30s%5D)";
            let body = tokio::task::spawn_blocking(move || support::http_get(addr, path)).await.unwrap()?;
            let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            let count = json.pointer("/data/result/0/value/1").and_then(|v| v.as_str()).and_then(|v| v.parse::<f64>().ok());
            if count.is_some_and(|c| c >= f64::from(n)) { Ok(()) } else { Err(body) }
        })
        .await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_prometheus(name: &str, target_port: u16) -> Prometheus {
    let fetch = support::repo().join("deploy/dev-cluster/prometheus");
    let out = std::process::Command::new(&fetch).output().expect("run deploy/dev-cluster/prometheus");
    assert!(out.status.success(), "no Prometheus binary: {}", String::from_utf8_lossy(&out.stderr));
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prometheus-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = support::free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    Prometheus { child, port, _dir: dir }
}

/// A target exposing `app_success_rate` in the Prometheus text format; its value is
/// `rate_permille / 1000`.
pub async fn app_target(rate_permille: std::sync::Arc<std::sync::atomic::AtomicU32>) -> u16 {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let rate = rate_permille.clone();
            async move {
                let value = f64::from(rate.load(std::sync::atomic::Ordering::SeqCst)) / 1000.0;
                format!("# TYPE app_success_rate gauge\napp_success_rate {value}\n")
            }
        }),
    );
    support::serve(app).await
}

const PROMETHEUS_ANALYSIS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args:
    - name: address
  metrics:
    - name: success-rate
      interval: 1s
      count: 2
      successCondition: result[0] >= 0.95
      provider:
        prometheus:
          address: "{{args.address}}"
          query: app_success_rate{job="app"}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: measured}
spec:
  replicas: 2
  selector: {matchLabels: {app: measured}}
  template:
    metadata: {labels: {app: measured}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis:
            templates: [{templateName: success-rate}]
            args: [{name: address, value: "ADDRESS"}]
"#;

/// The seed's success-rate analysis measured by the controller against a real Prometheus that
/// scrapes a real target: 0.97 passes and the rollout finishes; 0.42 fails and aborts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_step_with_a_prometheus_metric_against_a_real_prometheus() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let rate = std::sync::Arc::new(AtomicU32::new(970));
    let target = app_target(rate.clone()).await;
    let prometheus = start_prometheus("success-rate", target);
    let address = format!("http://127.0.0.1:{}", prometheus.port);
    // Wait until Prometheus has scraped the target: the query then has a sample.
    prometheus.wait_for_answer("\"app_success_rate\"").await;

    let env = Env::new("e2e-prometheus").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(&PROMETHEUS_ANALYSIS.replace("ADDRESS", &address)).await;
    rollout_until(&env, "measured", "the first deploy", MINUTE, healthy).await;

    env.cli_ok(&["set", "image", "measured", "app=argoproj/rollouts-demo:green"]);
    rollout_until(&env, "measured", "the passing analysis to finish the rollout", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    let runs = analysis_runs(&env).await;
    assert_eq!(field(&runs[0], "/status/phase"), "Successful", "{}\n{}", runs[0], controller.log_tail());
    assert_eq!(field(&runs[0], "/status/metricResults/0/measurements/0/value"), "[0.97]", "{}", runs[0]);

    rate.store(420, Ordering::SeqCst);
    prometheus.wait_for_answer("\"0.42\"").await;
    env.cli_ok(&["set", "image", "measured", "app=argoproj/rollouts-demo:red"]);
    let ro = rollout_until(&env, "measured", "the failing analysis to abort the rollout", MINUTE, |ro| phase(ro) == "Degraded").await;
    assert_eq!(field(&ro, "/status/abort"), "true", "{}", summary(&ro));
    let runs = analysis_runs(&env).await;
    assert_eq!(field(&runs[1], "/status/phase"), "Failed", "{}", runs[1]);
    assert_eq!(field(&runs[1], "/status/metricResults/0/measurements/0/value"), "[0.42]", "{}", runs[1]);
    drop(controller);
    drop(prometheus);
}


const RANGE_ANALYSIS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate-range}
spec:
  args:
    - name: address
    - name: lookback
      value: 30s
  metrics:
    - name: success-rate-range
      count: 1
      successCondition: "len(result) >= 3 && all(result, {# >= 0.95})"
      provider:
        prometheus:
          address: "{{args.address}}"
          query: app_success_rate{job="app"}
          rangeQuery:
            start: 'now() - duration("{{args.lookback}}")'
            end: 'now()'
            step: 1s
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: ranged}
spec:
  replicas: 2
  selector: {matchLabels: {app: ranged}}
  template:
    metadata: {labels: {app: ranged}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis:
            templates: [{templateName: success-rate-range}]
            args: [{name: address, value: "ADDRESS"}]
"#;

/// A canary analysis with a range query: the controller asks Prometheus for every sample of
/// the last 30 s (start and end evaluated from `now()`), gets several, and the rollout
/// finishes because all of them pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_query_analysis_passes_on_every_sample_of_the_window() {
    let rate = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(990));
    let target = app_target(rate).await;
    let prometheus = start_prometheus("range", target);
    prometheus.wait_for_answer("\"app_success_rate\"").await;
    let address = format!("http://127.0.0.1:{}", prometheus.port);

    let env = Env::new("e2e-prometheus-range").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(&RANGE_ANALYSIS.replace("ADDRESS", &address)).await;
    rollout_until(&env, "ranged", "the first deploy", MINUTE, healthy).await;
    // Let Prometheus gather a few seconds of samples for the window.
    prometheus.wait_for_samples(4).await;

    env.cli_ok(&["set", "image", "ranged", "app=argoproj/rollouts-demo:green"]);
    rollout_until(&env, "ranged", "the passing range analysis to finish the rollout", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    let runs = analysis_runs(&env).await;
    assert_eq!(field(&runs[0], "/status/phase"), "Successful", "{}\n{}", runs[0], controller.log_tail());
    let value: serde_json::Value = serde_json::from_str(&field(&runs[0], "/status/metricResults/0/measurements/0/value")).unwrap();
    let samples = value.as_array().unwrap_or_else(|| panic!("a list of samples: {value}"));
    // An instant query would give one sample; the range gives one per step of the window.
    assert!(samples.len() >= 3 && samples.iter().all(|s| s.as_f64() == Some(0.99)), "{value}");
    drop(controller);
    drop(prometheus);
}

const AUTHENTICATED_ANALYSIS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: prometheus-token}
stringData: {token: TOKEN}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: with-token}
spec:
  args:
    - name: address
    - name: token
      valueFrom: {secretKeyRef: {name: prometheus-token, key: token}}
  metrics:
    - name: success-rate
      interval: 1s
      count: 2
      successCondition: result[0] >= 0.95
      provider:
        prometheus:
          address: "{{args.address}}"
          query: app_success_rate{job="app"}
          headers: [{key: Authorization, value: "Bearer {{args.token}}"}]
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: without-token}
spec:
  args:
    - name: address
  metrics:
    - name: success-rate
      interval: 1s
      count: 10
      successCondition: result[0] >= 0.95
      provider:
        prometheus:
          address: "{{args.address}}"
          query: app_success_rate{job="app"}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: authed}
spec:
  replicas: 1
  selector: {matchLabels: {app: authed}}
  template:
    metadata: {labels: {app: authed}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis:
            templates: [{templateName: with-token}]
            args: [{name: address, value: "ADDRESS"}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: anonymous}
spec:
  replicas: 1
  selector: {matchLabels: {app: anonymous}}
  template:
    metadata: {labels: {app: anonymous}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis:
            templates: [{templateName: without-token}]
            args: [{name: address, value: "ADDRESS"}]
"#;

/// Requests a proxy in front of Prometheus let through, and refused.
#[derive(Default)]
struct ProxyCounts {
    passed: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
}

/// A reverse proxy on 127.0.0.1 in front of Prometheus that requires
/// `Authorization: Bearer <token>` (401 otherwise); its port.
async fn bearer_proxy(prometheus_port: u16, token: &'static str, counts: std::sync::Arc<ProxyCounts>) -> u16 {
    use std::sync::atomic::Ordering;
    let client = rollouts_shell::providers::http::client(std::time::Duration::from_secs(10), false).unwrap();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (client, counts) = (client.clone(), counts.clone());
        async move {
            let expected = format!("Bearer {token}");
            let authorized = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
            if !authorized {
                counts.refused.fetch_add(1, Ordering::SeqCst);
                return (http::StatusCode::UNAUTHORIZED, [(http::header::CONTENT_TYPE, "text/plain".to_string())], "Unauthorized".to_string());
            }
            counts.passed.fetch_add(1, Ordering::SeqCst);
            let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            let upstream = match client.get(format!("http://127.0.0.1:{prometheus_port}{path}")).send().await {
                Ok(r) => r,
                Err(e) => return (http::StatusCode::BAD_GATEWAY, [(http::header::CONTENT_TYPE, "text/plain".to_string())], e.to_string()),
            };
            let status = http::StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(http::StatusCode::BAD_GATEWAY);
            let content_type = upstream.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string();
            (status, [(http::header::CONTENT_TYPE, content_type)], upstream.text().await.unwrap_or_default())
        }
    });
    support::serve(app).await
}

/// Prometheus behind a proxy that wants a bearer token: the analysis that sends the token
/// (read from a Secret into `headers`) passes and its rollout finishes; the one without it
/// gets 401s, its measurements are Errors, the run is Error and its rollout aborts. The
/// token never shows in a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_behind_a_bearer_token_proxy_passes_only_with_the_secret_token() {
    const TOKEN: &str = "e2e-prometheus-token-7f3a";
    let rate = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(980));
    let target = app_target(rate).await;
    let prometheus = start_prometheus("bearer", target);
    prometheus.wait_for_answer("\"app_success_rate\"").await;
    let counts = std::sync::Arc::new(ProxyCounts::default());
    let proxy = bearer_proxy(prometheus.port, TOKEN, counts.clone()).await;
    let address = format!("http://127.0.0.1:{proxy}");

    let env = Env::new("e2e-prometheus-bearer").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(&AUTHENTICATED_ANALYSIS.replace("ADDRESS", &address).replace("TOKEN", TOKEN)).await;
    rollout_until(&env, "authed", "the first deploy", MINUTE, healthy).await;
    rollout_until(&env, "anonymous", "the first deploy", MINUTE, healthy).await;

    env.cli_ok(&["set", "image", "authed", "app=argoproj/rollouts-demo:green"]);
    env.cli_ok(&["set", "image", "anonymous", "app=argoproj/rollouts-demo:green"]);
    rollout_until(&env, "authed", "the analysis with the token to finish the rollout", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    let ro = rollout_until(&env, "anonymous", "the analysis without the token to abort the rollout", MINUTE, |ro| phase(ro) == "Degraded").await;
    assert_eq!(field(&ro, "/status/abort"), "true", "{}", summary(&ro));

    let runs = analysis_runs(&env).await;
    let run_of = |rollout: &str| {
        runs.iter()
            .find(|r| field(r, "/metadata/name").starts_with(rollout))
            .unwrap_or_else(|| panic!("no run of {rollout}: {runs:?}\n{}", controller.log_tail()))
    };
    let authed = run_of("authed");
    assert_eq!(field(authed, "/status/phase"), "Successful", "{authed}\n{}", controller.log_tail());
    assert_eq!(field(authed, "/status/metricResults/0/measurements/0/value"), "[0.98]", "{authed}");
    let anonymous = run_of("anonymous");
    assert_eq!(field(anonymous, "/status/phase"), "Error", "{anonymous}");
    assert_eq!(field(anonymous, "/status/metricResults/0/measurements/0/phase"), "Error", "{anonymous}");
    assert_eq!(field(anonymous, "/status/metricResults/0/measurements/0/message"), "client_error: client error: 401", "{anonymous}");
    assert!(counts.passed.load(std::sync::atomic::Ordering::SeqCst) >= 2, "the proxy let the token's queries through");
    assert!(counts.refused.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the proxy refused the queries without a token");
    for run in &runs {
        assert!(!run.to_string().contains(TOKEN), "the token shows in a run: {run}");
    }
    drop(controller);
    drop(prometheus);
}
