//! Real traffic for the end-to-end tests: the data planes of `deploy/dev-cluster/` (nginx
//! following Ingresses, Envoy following HTTPRoutes), started once per test process on the test
//! plane and shared by every test (each test has its own namespace and its own Host names),
//! and requests counted by the pod-template hash of the pod that answered.
//!
//! A test changes routing objects, waits with [`wait_served`] until the proxy *serves* the
//! configuration it expects (the proxy answers `/.rollouts/served` from the configuration it
//! has loaded), then sends requests with [`count_by_hash`] and checks each count with
//! [`assert_binomial`]. Requests only ever go to 127.0.0.1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use super::{kubeconfig, repo, state_dir, Env};

/// The path both proxies answer their served configuration on.
pub const SERVED_PATH: &str = "/.rollouts/served";

static INGRESS: OnceLock<Result<String, String>> = OnceLock::new();
static GATEWAY: OnceLock<Result<String, String>> = OnceLock::new();

/// The URL (`http://127.0.0.1:<port>`) of the test plane's ingress data plane (nginx),
/// started on first use; panics with the reason when it cannot start.
pub fn ingress_url() -> String {
    started(&INGRESS, "ingress", "ROLLOUTS_INGRESS_URL")
}

/// The URL of the test plane's Gateway API data plane (Envoy), started on first use.
pub fn gateway_url() -> String {
    started(&GATEWAY, "gateway", "ROLLOUTS_GATEWAY_URL")
}

fn started(cell: &'static OnceLock<Result<String, String>>, script: &'static str, var: &'static str) -> String {
    // The plane (and its CRDs) first; then the script, on a thread of its own: it blocks (the
    // first run fetches the proxy and may build the translator).
    let _ = kubeconfig();
    let start = || std::thread::spawn(move || start(script, var)).join().unwrap_or_else(|_| Err(format!("starting {script} panicked")));
    match cell.get_or_init(start) {
        Ok(url) => url.clone(),
        Err(why) => panic!("the {script} data plane is not available, so the traffic tests cannot run:\n{why}"),
    }
}

/// The workspace's target directory, from the test binary's path (`<target>/<profile>/deps/`),
/// so that the script finds (or builds) the translator where `cargo test` put it.
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.to_path_buf())
}

fn start(script: &str, var: &str) -> Result<String, String> {
    let path = repo().join("deploy/dev-cluster").join(script);
    let mut command = Command::new(&path);
    command.env("ROLLOUTS_DEV_CLUSTER_STATE", state_dir()).stdin(Stdio::null());
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        if let Some(dir) = target_dir() {
            command.env("CARGO_TARGET_DIR", dir);
        }
    }
    let output = command.output().map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(format!("{} exited with {}; its last lines:\n{}", path.display(), output.status, tail.join("\n")));
    }
    let prefix = format!("export {var}=");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|url| url.trim().to_string())
        .ok_or_else(|| format!("{} printed no `{prefix}` line; stdout: {stdout:?}", path.display()))
}

/// The 127.0.0.1 port of a data plane URL; panics on anything but `http://127.0.0.1:<port>`.
fn port_of(url: &str) -> u16 {
    url.strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{url} is not http://127.0.0.1:<port>: traffic only goes to 127.0.0.1"))
}

/// What the proxy at `url` serves now (its `/.rollouts/served` JSON).
pub async fn served(url: &str) -> Result<Value, String> {
    let port = port_of(url);
    tokio::task::spawn_blocking(move || served_now(port)).await.map_err(|e| e.to_string())?
}

fn served_now(port: u16) -> Result<Value, String> {
    let mut connection = Connection::open(port)?;
    let answer = connection.get(SERVED_PATH, "rollouts-e2e", &[])?;
    if answer.status != 200 {
        return Err(format!("{SERVED_PATH} answered {}", answer.status));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("{SERVED_PATH} is not JSON: {e}"))
}

/// How long a proxy may still answer some new connections with the previous configuration
/// after answering with the new one: nginx's master lets the old workers accept for 100 ms
/// after starting the new ones (then tells them to stop accepting); Envoy's worker threads
/// take a new route table each on its own, a moment apart.
const SETTLE: Duration = Duration::from_millis(250);

/// Waits until the proxy at `url` serves a configuration for which `expected` holds, and still
/// does [`SETTLE`] later on fresh connections (so that no worker with an older configuration
/// takes the requests that follow); returns that configuration. Fails the test after
/// `timeout`, showing `what` and the last configuration seen.
pub async fn wait_served(url: &str, what: &str, timeout: Duration, expected: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    let mut first_seen: Option<Instant> = None;
    loop {
        let last = match served(url).await {
            Ok(v) if expected(&v) => match first_seen {
                Some(at) if at.elapsed() >= SETTLE => return v,
                Some(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                None => {
                    first_seen = Some(Instant::now());
                    tokio::time::sleep(SETTLE).await;
                    continue;
                }
            },
            Ok(v) => v.to_string(),
            Err(e) => e,
        };
        first_seen = None;
        if Instant::now() > deadline {
            let shown: String = last.chars().take(4000).collect();
            panic!("timed out after {timeout:?} waiting for {url} to serve {what}; last served: {shown}\n{}", translator_log(url));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The end of the log of the translator behind `url`, for failure messages (a configuration
/// the proxy refused is only reported there).
fn translator_log(url: &str) -> String {
    let is = |cell: &OnceLock<Result<String, String>>| matches!(cell.get(), Some(Ok(u)) if u == url);
    let name = if is(&INGRESS) {
        "ingress"
    } else if is(&GATEWAY) {
        "gateway"
    } else {
        return String::new();
    };
    let log = state_dir().join("logs").join(format!("{name}-dataplane.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("Server cert bypassed")).collect();
    format!("{} (last lines):\n{}", log.display(), lines[lines.len().saturating_sub(15)..].join("\n"))
}

/// The ingress location nginx serves for `host` + `path` (first of any pathType), if any.
pub fn ingress_location<'a>(served: &'a Value, host: &str, path: &str) -> Option<&'a Value> {
    served["locations"].as_array()?.iter().find(|l| l["host"] == host && l["path"] == path)
}

/// The entries (in precedence order) Envoy serves for hostname `domain`.
pub fn gateway_entries<'a>(served: &'a Value, domain: &str) -> Vec<&'a Value> {
    let hosts = served["virtualHosts"].as_array().map(Vec::as_slice).unwrap_or_default();
    hosts.iter().filter(|h| h["domain"] == domain).flat_map(|h| h["entries"].as_array().into_iter().flatten()).collect()
}

/// One HTTP answer.
struct Answer {
    status: u16,
    hash: Option<String>,
    body: Vec<u8>,
    close: bool,
}

/// A keep-alive HTTP/1.1 connection to 127.0.0.1 (blocking, with timeouts).
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(port: u16) -> Result<Connection, String> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).map_err(|e| format!("{address}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
        Ok(Connection { reader: BufReader::new(stream) })
    }

    fn get(&mut self, path: &str, host: &str, headers: &[(&str, &str)]) -> Result<Answer, String> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.reader.get_mut().write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("not an HTTP answer: {line:?}"))?;
        let (mut length, mut chunked, mut hash, mut close) = (None, false, None, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else { continue };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "x-pod-template-hash" => hash = Some(value.to_string()),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).map_err(|e| e.to_string())?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        } else {
            self.reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
            close = true;
        }
        Ok(Answer { status, hash, body, close })
    }
}

/// How many requests to send at once (each on its own keep-alive connection).
const PARALLEL: u64 = 8;

/// Sends `n` requests `GET /color` with `Host: host` (and `extra_headers`) to the proxy at
/// `url`, a few at a time on keep-alive connections, and counts the answers by the
/// `X-Pod-Template-Hash` of the pod that answered; an answer without one (a 404, 500 or 503 of
/// the proxy) counts under `HTTP <status>`. Fails the test when requests fail or take over a
/// minute.
pub async fn count_by_hash(url: &str, host: &str, n: u64, extra_headers: &[(&str, &str)]) -> BTreeMap<String, u64> {
    let started = Instant::now();
    let total = count_by_hash_quietly(url, host, n, extra_headers).await;
    println!("{n} requests to {host} {extra_headers:?} in {:?}: {total:?}", started.elapsed());
    total
}

/// [`count_by_hash`] without the line it prints.
pub async fn count_by_hash_quietly(url: &str, host: &str, n: u64, extra_headers: &[(&str, &str)]) -> BTreeMap<String, u64> {
    let port = port_of(url);
    let next = Arc::new(AtomicU64::new(0));
    let headers: Arc<Vec<(String, String)>> = Arc::new(extra_headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let mut workers = Vec::new();
    for _ in 0..PARALLEL.min(n) {
        let (next, headers, host) = (next.clone(), headers.clone(), host.to_string());
        workers.push(tokio::task::spawn_blocking(move || {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let mut connection: Option<Connection> = None;
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let mut retried = false;
                let answer = loop {
                    let c = match connection.as_mut() {
                        Some(c) => c,
                        None => connection.insert(Connection::open(port)?),
                    };
                    match c.get("/color", &host, &headers) {
                        Ok(answer) => break answer,
                        // A keep-alive connection the proxy closed (a reload drains them): once more.
                        Err(_) if !retried => {
                            retried = true;
                            connection = None;
                        }
                        Err(e) => return Err(e),
                    }
                };
                if answer.close {
                    connection = None;
                }
                let key = match (answer.status, answer.hash) {
                    (200, Some(hash)) => hash,
                    (status, _) => format!("HTTP {status}"),
                };
                *counts.entry(key).or_default() += 1;
            }
            Ok::<_, String>(counts)
        }));
    }
    let all = async {
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for worker in workers {
            let counts = worker.await.map_err(|e| e.to_string())??;
            for (k, v) in counts {
                *total.entry(k).or_default() += v;
            }
        }
        Ok::<_, String>(total)
    };
    match tokio::time::timeout(Duration::from_secs(60), all).await {
        Ok(Ok(total)) => total,
        Ok(Err(e)) => panic!("requests to {url} (Host: {host}) failed: {e}"),
        Err(_) => panic!("{n} requests to {url} (Host: {host}) took over a minute"),
    }
}

/// Checks that `count` of `n` requests is what a binomial draw with probability `p` gives:
/// exactly 0 for p = 0, exactly n for p = 1, else within 5 standard deviations of n·p. Prints
/// the count either way, so that the measured split shows in the test output.
pub fn assert_binomial(count: u64, n: u64, p: f64, label: &str) {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let ok = if p <= 0.0 {
        count == 0
    } else if p >= 1.0 {
        count == n
    } else {
        (count as f64 - mean).abs() <= 5.0 * sigma
    };
    report(&format!(
        "{label}: {count} of {n} (expected {mean:.1} ± {:.1}, p = {p}) {}",
        5.0 * sigma,
        if ok { "ok" } else { "OUT OF RANGE" }
    ));
    assert!(ok, "{label}: {count} of {n} requests, expected {mean:.1} ± {:.1} (5σ, p = {p})", 5.0 * sigma);
}

/// Prints a measurement, and appends it to the file `$ROLLOUTS_TRAFFIC_REPORT` when set:
/// `scripts/test.sh` prints that file after the tests, so the request counts show in the
/// test command's output although cargo hides a passing test's.
pub fn report(line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os("ROLLOUTS_TRAFFIC_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// The plural of the kinds the traffic tests create.
fn plural(kind: &str) -> &'static str {
    match kind {
        "ReplicaSet" => "replicasets",
        "Service" => "services",
        "Ingress" => "ingresses",
        "HTTPRoute" => "httproutes",
        "GRPCRoute" => "grpcroutes",
        "TCPRoute" => "tcproutes",
        "Rollout" => "rollouts",
        other => panic!("the traffic harness does not know the plural of {other}"),
    }
}

fn api_for(env: &Env, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, plural(kind));
    Api::namespaced_with(env.client.clone(), &env.namespace, &resource)
}

/// Creates the objects of a YAML stream in the test's namespace (any kind [`plural`] knows).
pub async fn create(env: &Env, yaml: &str) {
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("test YAML");
        if value.is_null() {
            continue;
        }
        let mut object: DynamicObject = serde_json::from_value(value).expect("an object");
        object.metadata.namespace = Some(env.namespace.clone());
        let types = object.types.clone().expect("apiVersion and kind");
        api_for(env, &types.api_version, &types.kind)
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create {} {:?}: {e}", types.kind, object.metadata.name));
    }
}

/// A JSON merge patch of an object of the test's namespace.
pub async fn merge_patch(env: &Env, api_version: &str, kind: &str, name: &str, patch: Value) {
    api_for(env, api_version, kind)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch {kind} {name}: {e}"));
}
