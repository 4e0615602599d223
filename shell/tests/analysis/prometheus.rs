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

