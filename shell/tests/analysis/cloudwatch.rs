//! CloudWatch measured by the controller: moto's AWS server (PyPI's `moto[server]`, fetched
//! by `deploy/dev-cluster/moto`), started by the test on 127.0.0.1 with IAM authentication
//! on, so that every request's SigV4 signature is checked by another implementation
//! (botocore's) and a wrongly signed request is refused.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use rollouts_shell::providers::sigv4::{self, Credentials};
use serde_json::{json, Value};

use super::support::{self, analysis_runs, field, healthy, phase, rollout_until, summary, wait_for, Env};
use super::MINUTE;

/// IAM calls the test makes before authentication starts: CreateUser, PutUserPolicy,
/// CreateAccessKey. Every later request must be signed with the key they create.
const UNAUTHENTICATED_SETUP_CALLS: &str = "3";
const REGION: &str = "us-east-1";

/// A moto server on 127.0.0.1; killed when dropped.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
    http: reqwest::Client,
    _dir: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_moto(name: &str) -> Moto {
    let fetch = support::repo().join("deploy/dev-cluster/moto");
    let out = std::process::Command::new(&fetch).output().expect("run deploy/dev-cluster/moto");
    assert!(out.status.success(), "no moto_server: {}", String::from_utf8_lossy(&out.stderr));
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = support::free_port();
    let log = std::fs::File::create(dir.join("moto.log")).unwrap();
    let child = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", UNAUTHENTICATED_SETUP_CALLS)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start moto_server");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), http, _dir: dir };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // moto's own API: answering it counts as no AWS call.
    wait_for(MINUTE, "moto_server to answer", || async move {
        tokio::task::spawn_blocking(move || support::http_get(addr, "/moto-api/data.json")).await.unwrap().map(|_| ())
    })
    .await;
    moto
}

impl Moto {
    /// Sends `req` signed with `creds` for `service`: the status and the body.
    async fn send(&self, mut req: reqwest::Request, creds: &Credentials, service: &str) -> (u16, String) {
        sigv4::sign(&mut req, creds, REGION, service, SystemTime::now()).unwrap();
        let resp = self.http.execute(req).await.expect("moto answers");
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// An IAM user allowed `cloudwatch:*` (moto names the actions by the signing name,
    /// `monitoring:*`), and its access key (the setup calls; moto checks
    /// no signature for them).
    async fn create_access_key(&self) -> Credentials {
        let anyone = Credentials { access_key_id: "AKIASETUP".into(), secret_access_key: "setup".into(), session_token: None };
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["cloudwatch:*", "monitoring:*"], "Resource": "*"}]});
        let calls = [
            vec![("Action", "CreateUser".to_string()), ("UserName", "rollouts".into())],
            vec![("Action", "PutUserPolicy".to_string()), ("UserName", "rollouts".into()), ("PolicyName", "cw".into()), ("PolicyDocument", policy.to_string())],
            vec![("Action", "CreateAccessKey".to_string()), ("UserName", "rollouts".into())],
        ];
        let mut body = String::new();
        for mut params in calls {
            params.push(("Version", "2010-05-08".into()));
            // The form encoding of the Query protocol, by way of a URL's query.
            let mut form = reqwest::Url::parse("http://form/").unwrap();
            form.query_pairs_mut().extend_pairs(&params);
            let req = self
                .http
                .post(&self.endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.query().unwrap_or_default().to_string())
                .build()
                .unwrap();
            let (status, text) = self.send(req, &anyone, "iam").await;
            assert_eq!(status, 200, "IAM {}: {text}", params[0].1);
            body = text;
        }
        let tag = |name: &str| {
            let start = body.find(&format!("<{name}>")).unwrap_or_else(|| panic!("no {name} in {body}")) + name.len() + 2;
            body[start..start + body[start..].find('<').unwrap()].to_string()
        };
        Credentials { access_key_id: tag("AccessKeyId"), secret_access_key: tag("SecretAccessKey"), session_token: None }
    }

    /// PutMetricData (CloudWatch's JSON protocol) of `value` now for `App/ErrorRate{Service=web}`.
    async fn put_error_rate(&self, creds: &Credentials, value: f64) -> (u16, String) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let body = json!({"Namespace": "App", "MetricData": [{
            "MetricName": "ErrorRate", "Dimensions": [{"Name": "Service", "Value": "web"}], "Timestamp": now, "Value": value}]});
        let req = self
            .http
            .request(Method::POST, &self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "GraniteServiceVersion20100801.PutMetricData")
            .body(body.to_string())
            .build()
            .unwrap();
        self.send(req, creds, "monitoring").await
    }
}

const CLOUDWATCH_ANALYSIS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: error-rate}
spec:
  metrics:
    - name: error-rate
      successCondition: "all(result[0].Values, {# <= 0.01})"
      provider:
        cloudWatch:
          interval: 5m
          metricDataQueries:
            - id: rate
              metricStat:
                metric:
                  namespace: App
                  metricName: ErrorRate
                  dimensions: [{name: Service, value: web}]
                period: 60
                stat: Maximum
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
            templates: [{templateName: error-rate}]
"#;

/// The measurement's recorded value: as Argo records it, Go's print of each result's
/// values (`[[0.005]]`).
fn recorded_value(run: &Value) -> String {
    field(run, "/status/metricResults/0/measurements/0/value")
}

/// Argo's documented CloudWatch analysis measured by the controller against moto, every call
/// SigV4-signed and checked: an error rate of 0.005 passes and the rollout finishes; a
/// later 0.5 fails the next analysis and aborts the rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_step_with_a_cloudwatch_metric_against_moto() {
    let moto = start_moto("error-rate").await;
    let creds = moto.create_access_key().await;
    // moto checks signatures: a wrong secret is refused, the right one accepted.
    let forged = Credentials { secret_access_key: "not-the-secret".into(), ..creds.clone() };
    let (status, text) = moto.put_error_rate(&forged, 0.9).await;
    assert_eq!(status, 403, "a wrongly signed PutMetricData must be refused: {text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    let (status, text) = moto.put_error_rate(&creds, 0.005).await;
    assert_eq!(status, 200, "PutMetricData: {text}");

    let env = Env::new("e2e-cloudwatch").await;
    let controller = env.controller_with_env(
        &["--leader-elect=false"],
        &[
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", creds.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.as_str()),
            ("AWS_REGION", REGION),
        ],
    );
    env.apply(CLOUDWATCH_ANALYSIS).await;
    rollout_until(&env, "measured", "the first deploy", MINUTE, healthy).await;

    env.cli_ok(&["set", "image", "measured", "app=argoproj/rollouts-demo:green"]);
    rollout_until(&env, "measured", "the passing analysis to finish the rollout", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    let runs = analysis_runs(&env).await;
    assert_eq!(field(&runs[0], "/status/phase"), "Successful", "{}\n{}", runs[0], controller.log_tail());
    assert_eq!(recorded_value(&runs[0]), "[[0.005]]", "{}", runs[0]);
    assert!(!runs[0].to_string().contains(&creds.secret_access_key), "the secret must not be recorded");

    let (status, text) = moto.put_error_rate(&creds, 0.5).await;
    assert_eq!(status, 200, "PutMetricData: {text}");
    env.cli_ok(&["set", "image", "measured", "app=argoproj/rollouts-demo:red"]);
    let ro = rollout_until(&env, "measured", "the failing analysis to abort the rollout", MINUTE, |ro| phase(ro) == "Degraded").await;
    assert_eq!(field(&ro, "/status/abort"), "true", "{}", summary(&ro));
    let runs = analysis_runs(&env).await;
    assert_eq!(field(&runs[1], "/status/phase"), "Failed", "{}\n{}", runs[1], controller.log_tail());
    // One value (both points in one minute: its maximum) or two.
    let value = recorded_value(&runs[1]);
    assert!(value.starts_with("[[") && value.contains("0.5"), "{value}\n{}", runs[1]);
    drop(controller);
    drop(moto);
}
