//! The dashboard binary as a child process, and a small HTTP/1.0 client whose every header
//! is the test's to choose (Host, Origin, the CSRF token) and whose every wait is bounded.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::support::{free_port, Env};

/// The longest one request waits.
const REQUEST_WAIT: Duration = Duration::from_secs(30);

/// The `rollouts` binary under test.
pub fn binary() -> String {
    env!("CARGO_BIN_EXE_rollouts").to_string()
}

/// `rollouts dashboard` on a free 127.0.0.1 port; SIGKILLed when dropped.
pub struct Dashboard {
    child: Child,
    pub port: u16,
    /// The bearer token, for a dashboard started with `--token-file`.
    pub token: Option<String>,
}

impl Dashboard {
    /// Starts it with `extra` flags and waits (at most 30 s) until it answers.
    pub async fn start(env: &Env, extra: &[&str]) -> Dashboard {
        Self::start_with_token(env, extra, None).await
    }

    pub async fn start_with_token(env: &Env, extra: &[&str], token: Option<&str>) -> Dashboard {
        let port = free_port();
        let mut command = Command::new(binary());
        command.args(["dashboard", "-p", &port.to_string(), "-n", &env.namespace]).args(extra);
        if let Some(token) = token {
            let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{port}.token", env.namespace));
            std::fs::write(&file, format!("{token}\n")).unwrap();
            command.arg("--token-file").arg(&file);
        }
        let child = command
            .env("KUBECONFIG", &env.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the dashboard");
        let mut dashboard = Dashboard { child, port, token: token.map(str::to_string) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return dashboard;
            }
            if let Ok(Some(status)) = dashboard.child.try_wait() {
                panic!("the dashboard exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "the dashboard did not listen on {port} within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A request as the dashboard's own page sends it: own Host, and for anything but GET
    /// the own Origin and the CSRF token it reads from a GET.
    pub async fn own(&self, method: &str, path: &str, body: &str) -> Reply {
        let mut headers = vec![("Host".to_string(), self.host())];
        if let Some(token) = &self.token {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        if method != "GET" {
            let csrf = self.csrf().await;
            headers.push(("Origin".into(), format!("http://{}", self.host())));
            headers.push(("X-CSRF-Token".into(), csrf));
        }
        self.raw(method, path, &headers, body).await
    }

    /// The CSRF token, as a page of the dashboard gets it.
    pub async fn csrf(&self) -> String {
        let mut headers = vec![("Host".to_string(), self.host())];
        if let Some(token) = &self.token {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        let reply = self.raw("GET", "/rollouts/api/v1/version", &headers, "").await;
        reply.header("x-csrf-token").unwrap_or_else(|| panic!("no X-CSRF-Token on a GET: {reply:?}"))
    }

    /// One request with exactly these headers (plus the body's length).
    pub async fn raw(&self, method: &str, path: &str, headers: &[(String, String)], body: &str) -> Reply {
        let text = exchange(self.port, &request(method, path, headers, body), |_| false, REQUEST_WAIT).await;
        Reply::parse(&text)
    }

    /// Opens a stream and reads until `done` holds for what arrived, at most `wait`; what arrived.
    pub async fn stream_until(&self, path: &str, accept: &str, wait: Duration, done: impl Fn(&str) -> bool) -> String {
        let headers = vec![("Host".to_string(), self.host()), ("Accept".to_string(), accept.to_string())];
        let request = request("GET", path, &headers, "");
        exchange(self.port, &request, done, wait).await
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(method: &str, path: &str, headers: &[(String, String)], body: &str) -> String {
    let mut text = format!("{method} {path} HTTP/1.0\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        text.push_str("Content-Type: application/json\r\n");
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// Sends `request` and reads until the server closes or `done` holds for the text so far.
async fn exchange(port: u16, request: &str, done: impl Fn(&str) -> bool, wait: Duration) -> String {
    let work = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the dashboard");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut text = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.expect("read the answer");
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
            if done(&String::from_utf8_lossy(&text)) {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    };
    match timeout(wait, work).await {
        Ok(text) => text,
        Err(_) => panic!("no (complete) answer within {wait:?} to {request}"),
    }
}

/// A parsed answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    fn parse(text: &str) -> Reply {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Reply { status, headers, body: body.to_string() }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// The body as JSON; fails the test with the answer when it is not a 200 with JSON.
    pub fn json(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}
