//! Graphite measured by the controller: Debian's carbon-cache and graphite-web (fetched by
//! `deploy/dev-cluster/graphite`), started by the test on 127.0.0.1 with every file in a
//! directory of its own, fed over carbon's plaintext protocol.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::support::{self, analysis_runs, field, healthy, phase, rollout_until, summary, wait_for, Env};
use super::MINUTE;

/// carbon-cache and graphite-web on free 127.0.0.1 ports; both killed when dropped.
pub struct Graphite {
    carbon: Child,
    web: Child,
    /// carbon's plaintext (line) receiver.
    pub line_port: u16,
    /// graphite-web (Django's server).
    pub web_port: u16,
    pub dir: PathBuf,
}

impl Graphite {
    /// Starts both servers with their configuration, data and logs in a fresh directory
    /// under the test's target dir; fails the test when the packages cannot be fetched.
    pub fn start(name: &str) -> Graphite {
        let fetch = support::repo().join("deploy/dev-cluster/graphite");
        let out = Command::new(&fetch).stdin(Stdio::null()).output().expect("run deploy/dev-cluster/graphite");
        assert!(out.status.success(), "no Graphite: {}", String::from_utf8_lossy(&out.stderr));
        let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let root = python.parent().expect("the graphite cache dir").to_path_buf();

        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("graphite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["whisper", "lists", "carbon-log", "webapp-log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let [line_port, pickle_port, query_port, web_port] = std::array::from_fn(|_| support::free_port());
        let d = dir.display();
        // Every point kept at one-second resolution for an hour; no limits on writes.
        std::fs::write(dir.join("storage-schemas.conf"), "[all]\npattern = .*\nretentions = 1s:1h\n").unwrap();
        std::fs::write(
            dir.join("carbon.conf"),
            format!(
                "[cache]\nSTORAGE_DIR = {d}\nLOCAL_DATA_DIR = {d}/whisper\nWHITELISTS_DIR = {d}/lists\nCONF_DIR = {d}\n\
                 LOG_DIR = {d}/carbon-log\nPID_DIR = {d}\nUSER =\nENABLE_LOGROTATION = False\n\
                 MAX_CACHE_SIZE = inf\nMAX_UPDATES_PER_SECOND = inf\nMAX_CREATES_PER_MINUTE = inf\n\
                 LINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {line_port}\nENABLE_UDP_LISTENER = False\n\
                 PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle_port}\n\
                 CACHE_QUERY_INTERFACE = 127.0.0.1\nCACHE_QUERY_PORT = {query_port}\n"
            ),
        )
        .unwrap();
        // graphite-web reads this module over its defaults (GRAPHITE_SETTINGS_MODULE); it
        // asks carbon's cache for points not yet written to disk.
        std::fs::write(
            dir.join("rollouts_graphite_settings.py"),
            format!(
                "SECRET_KEY = 'rollouts-test'\nSTORAGE_DIR = '{d}'\nWHISPER_DIR = '{d}/whisper/'\nSTANDARD_DIRS = ['{d}/whisper/']\n\
                 LOG_DIR = '{d}/webapp-log'\nINDEX_FILE = '{d}/index'\nCARBONLINK_HOSTS = ['127.0.0.1:{query_port}']\n"
            ),
        )
        .unwrap();

        let log = |file: &str| std::fs::File::create(dir.join(file)).unwrap();
        let carbon = Command::new(&python)
            .arg(root.join("usr/bin/carbon-cache"))
            .arg(format!("--config={d}/carbon.conf"))
            .arg(format!("--pidfile={d}/carbon.pid"))
            .args(["--nodaemon", "start"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log("carbon.out"))
            .stderr(log("carbon.err"))
            .spawn()
            .expect("start carbon-cache");
        let web = Command::new(&python)
            .args(["-m", "django", "runserver", "--noreload", &format!("127.0.0.1:{web_port}")])
            .env("DJANGO_SETTINGS_MODULE", "graphite.settings")
            .env("GRAPHITE_SETTINGS_MODULE", "rollouts_graphite_settings")
            .env("PYTHONPATH", &dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log("web.out"))
            .stderr(log("web.err"))
            .spawn()
            .expect("start graphite-web");
        Graphite { carbon, web, line_port, web_port, dir }
    }

    /// `http://127.0.0.1:<graphite-web>`.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.web_port)
    }

    /// Sends `path value timestamp` lines to carbon (retrying until it listens).
    pub async fn feed(&self, points: &[(&str, f64)], at: SystemTime) {
        let ts = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let lines: String = points.iter().map(|(path, value)| format!("{path} {value} {ts}\n")).collect();
        let addr: SocketAddr = ([127, 0, 0, 1], self.line_port).into();
        wait_for(MINUTE, "carbon to take the points", || {
            let lines = lines.clone();
            async move {
                let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
                stream.set_write_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
                stream.write_all(lines.as_bytes()).map_err(|e| e.to_string())
            }
        })
        .await;
    }

    /// Waits until graphite-web answers `query` (as the provider sends it) with a body
    /// containing `needle`.
    pub async fn wait_for_render(&self, query: &str, needle: &str) -> String {
        let url = rollouts_shell::providers::graphite::render_url(&self.address(), query).unwrap();
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let addr: SocketAddr = ([127, 0, 0, 1], self.web_port).into();
        let logs = self.dir.display().to_string();
        wait_for(MINUTE, &format!("graphite-web to answer {needle} (logs in {logs})"), || {
            let path = path.clone();
            async move {
                let body = tokio::task::spawn_blocking(move || support::http_get(addr, &path)).await.unwrap()?;
                if body.contains(needle) {
                    Ok(body)
                } else {
                    Err(body)
                }
            }
        })
        .await
    }
}

impl Drop for Graphite {
    fn drop(&mut self) {
        for child in [&mut self.carbon, &mut self.web] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The query of Argo's Graphite documentation, for one service.
const SUCCESS_PERCENT: &str = "target=summarize(
  asPercent(
    sumSeries(app.SERVICE.requests.{SUCCESS,REDIRECTION}.count),
    sumSeries(app.SERVICE.requests.*.count)
  ),
  '5min',
  'avg'
)&from=-5min";

const GRAPHITE_ANALYSIS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args:
    - name: address
    - name: service-name
  metrics:
    - name: success-rate
      interval: 1s
      count: 2
      successCondition: result[0] >= 90
      provider:
        graphite:
          address: "{{args.address}}"
          query: |
            target=summarize(
              asPercent(
                sumSeries(app.{{args.service-name}}.requests.{SUCCESS,REDIRECTION}.count),
                sumSeries(app.{{args.service-name}}.requests.*.count)
              ),
              '5min',
              'avg'
            )&from=-5min
"#;

const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: SERVICE}
spec:
  replicas: 2
  selector: {matchLabels: {app: SERVICE}}
  template:
    metadata: {labels: {app: SERVICE}}
    spec:
      containers: [{name: app, image: argoproj/rollouts-demo:blue}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis:
            templates: [{templateName: success-rate}]
            args: [{name: address, value: "ADDRESS"}, {name: service-name, value: SERVICE}]
"#;

/// Argo's documented Graphite analysis (a multi-line `summarize(asPercent(sumSeries…))`
/// query) measured by the controller against a real carbon-cache and graphite-web: the
/// `checkout` service answers 97 % and its rollout finishes; `payments` answers 40 % and its
/// rollout aborts. Both values are in the runs' measurements as the provider read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_step_with_a_graphite_metric_against_a_real_graphite() {
    let graphite = Graphite::start("success-rate");
    let g = &graphite;
    let feed = move |at| async move {
        g.feed(
            &[
                ("app.checkout.requests.SUCCESS.count", 97.0),
                ("app.checkout.requests.CLIENT_ERROR.count", 3.0),
                ("app.payments.requests.SUCCESS.count", 40.0),
                ("app.payments.requests.SERVER_ERROR.count", 60.0),
            ],
            at,
        )
        .await
    };
    feed(SystemTime::now()).await;
    graphite.wait_for_render(&SUCCESS_PERCENT.replace("SERVICE", "checkout"), "[97.0,").await;
    graphite.wait_for_render(&SUCCESS_PERCENT.replace("SERVICE", "payments"), "[40.0,").await;

    let env = Env::new("e2e-graphite").await;
    let controller = env.controller(&["--leader-elect=false"]);
    let rollout = |service: &str| ROLLOUT.replace("SERVICE", service).replace("ADDRESS", &graphite.address());
    env.apply(&format!("{GRAPHITE_ANALYSIS}---{}---{}", rollout("checkout"), rollout("payments"))).await;
    for service in ["checkout", "payments"] {
        rollout_until(&env, service, "the first deploy", MINUTE, healthy).await;
    }

    // Fresh points: the query looks five minutes back.
    feed(SystemTime::now()).await;
    for service in ["checkout", "payments"] {
        env.cli_ok(&["set", "image", service, "app=argoproj/rollouts-demo:green"]);
    }
    rollout_until(&env, "checkout", "the passing analysis to finish the rollout", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    let ro = rollout_until(&env, "payments", "the failing analysis to abort the rollout", MINUTE, |ro| phase(ro) == "Degraded").await;
    assert_eq!(field(&ro, "/status/abort"), "true", "{}", summary(&ro));

    let runs = analysis_runs(&env).await;
    let run_of = |service: &str| {
        runs.iter()
            .find(|r| field(r, "/metadata/name").starts_with(&format!("{service}-")))
            .unwrap_or_else(|| panic!("no run for {service}: {runs:#?}\n{}", controller.log_tail()))
    };
    let passed = run_of("checkout");
    assert_eq!(field(passed, "/status/phase"), "Successful", "{passed}\n{}", controller.log_tail());
    assert_eq!(field(passed, "/status/metricResults/0/measurements/0/value"), "[97.0]", "{passed}");
    assert_eq!(field(passed, "/status/metricResults/0/count"), "2", "{passed}");
    let failed = run_of("payments");
    assert_eq!(field(failed, "/status/phase"), "Failed", "{failed}");
    assert_eq!(field(failed, "/status/metricResults/0/measurements/0/value"), "[40.0]", "{failed}");
    drop(controller);
    drop(graphite);
}
