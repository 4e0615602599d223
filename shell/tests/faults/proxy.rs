//! A fault-injecting proxy between a controller and the test plane's apiserver, on 127.0.0.1.
//!
//! It terminates TLS with the apiserver's own certificate and key (`<state>/pki/apiserver.*`;
//! the controller's kubeconfig skips verification, as the plane's does), speaks HTTP/1.1 and
//! HTTP/2 to its clients (ALPN), and forwards every request over HTTPS (verified against the
//! plane's CA, HTTP/1.1) to the apiserver, streaming the answers, watches included.
//!
//! On a seeded share of requests it answers, instead of the apiserver:
//! - `409 Conflict` (writes only), `429 Too Many Requests` with `Retry-After: 1`, `500`, `503`,
//!   each with a Kubernetes `Status` body;
//! - a timeout: no answer for 1–4 s, then the connection (HTTP/1.1) or stream (HTTP/2) is reset;
//! - a lost answer (writes only): the request reaches the apiserver and takes effect, the answer
//!   is dropped as in a timeout (so a create is retried against an object that exists);
//!
//! and on a seeded share of the watches it forwards, it cuts the stream after 1–6 s: abruptly
//! (the body fails mid-stream), or the way an apiserver ends a watch whose resourceVersion is too
//! old (an `ERROR` event with a `410 Expired` Status, then the end), which makes a client re-list.
//!
//! The decisions come from one seeded generator in the order requests arrive: a seed replays the
//! same sequence of decisions, not the same request-to-decision mapping (arrival order between
//! concurrent requests is the scheduler's).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// A small seeded generator (SplitMix64): the tests' only randomness.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + (hi - lo).mul_f64(self.unit())
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next_u64() % from.len() as u64) as usize]
    }
}

/// The seed of a test: `$FAULT_SEED` when set (to replay a failure), else from the clock.
pub fn seed() -> u64 {
    std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// What the proxy does instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Conflict,
    TooManyRequests,
    InternalError,
    Unavailable,
    Timeout,
    LostAnswer,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Conflict => "409 Conflict",
            Fault::TooManyRequests => "429 Too Many Requests (Retry-After: 1)",
            Fault::InternalError => "500 Internal Server Error",
            Fault::Unavailable => "503 Service Unavailable",
            Fault::Timeout => "timeout (no answer, then reset)",
            Fault::LostAnswer => "lost answer (applied, then reset)",
        }
    }
}

/// How often and how the proxy misbehaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Share of requests (watches included, before they start) answered by a fault.
    pub share: f64,
    /// The faults to choose from (those that apply: 409 and lost answers for writes only).
    pub faults: Vec<Fault>,
    /// Share of forwarded watches cut, and when.
    pub cut_share: f64,
    pub cut_after: (Duration, Duration),
    /// How long a timeout holds a request before the reset.
    pub hold: (Duration, Duration),
}

impl Config {
    /// Every fault on `share` of the requests, half the watches cut.
    pub fn all(share: f64) -> Config {
        Config {
            share,
            faults: vec![
                Fault::Conflict,
                Fault::TooManyRequests,
                Fault::InternalError,
                Fault::Unavailable,
                Fault::Timeout,
                Fault::LostAnswer,
            ],
            cut_share: 0.5,
            cut_after: (Duration::from_secs(1), Duration::from_secs(6)),
            hold: (Duration::from_secs(1), Duration::from_secs(4)),
        }
    }
}

/// What the proxy saw and did, by name ("requests", "h2 connections", a fault's name, "watch
/// cut", "watch expired", "list <resource>").
#[derive(Default)]
pub struct Stats(Mutex<BTreeMap<String, u64>>);

impl Stats {
    fn add(&self, what: &str) {
        *self.0.lock().unwrap().entry(what.to_string()).or_default() += 1;
    }

    pub fn get(&self, what: &str) -> u64 {
        self.0.lock().unwrap().get(what).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }

    /// Faults injected (answers and timeouts, watch cuts not included).
    pub fn injected(&self) -> u64 {
        let all = [Fault::Conflict, Fault::TooManyRequests, Fault::InternalError, Fault::Unavailable, Fault::Timeout, Fault::LostAnswer];
        all.iter().map(|f| self.get(f.name())).sum()
    }
}

struct Ctx {
    upstream: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
    rng: Mutex<Rng>,
    config: Config,
    stats: Arc<Stats>,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// `https://127.0.0.1:<port>` of the `server:` line of a kubeconfig.
pub fn server_of(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .map(|s| s.trim().to_string())
        .expect("a server: line in the kubeconfig")
}

/// `kubeconfig` with its server replaced by the proxy.
pub fn through(kubeconfig: &str, proxy: SocketAddr) -> String {
    kubeconfig.replace(&server_of(kubeconfig), &format!("https://{proxy}"))
}

impl Proxy {
    /// Starts a proxy to `upstream` (`https://127.0.0.1:<port>`), with the certificates of the
    /// plane whose state dir is `state`.
    pub async fn start(upstream: &str, state: &Path, seed: u64, config: Config) -> Proxy {
        let pki = state.join("pki");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.join("apiserver.crt"))
            .expect("the apiserver's certificate")
            .collect::<Result<_, _>>()
            .expect("PEM certificates");
        let key = PrivateKeyDer::from_pem_file(pki.join("apiserver.key")).expect("the apiserver's key");
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("a TLS server configuration");
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));

        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki.join("ca.crt")).expect("the plane's CA") {
            roots.add(ca.expect("a PEM CA")).expect("the CA");
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(https);

        let stats = Arc::new(Stats::default());
        let ctx = Arc::new(Ctx {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            rng: Mutex::new(Rng::new(seed)),
            config,
            stats: stats.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the proxy");
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = TokioIo::new(tls);
                    let svc = hyper::service::service_fn(move |req| handle(req, ctx.clone(), h2));
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc).await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                    }
                });
            }
        });
        Proxy { addr, stats, accept }
    }
}

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [&str; 8] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host"];

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (injected by the fault proxy)"), "reason": reason, "details": {}, "code": code.as_u16(),
    });
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|e| match e {}).boxed());
    *res.status_mut() = code;
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>, h2: bool) -> Result<Response<Body>, BoxError> {
    let stats = &ctx.stats;
    stats.add("requests");
    if h2 {
        stats.add("requests over HTTP/2");
    }
    let watch = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let write = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let (kind, _, _, verb) = rollouts_shell::controller::metrics::describe(req.method(), req.uri());
    if verb == "List" {
        stats.add(&format!("list {kind}"));
    }
    let (fault, cut, hold, after) = {
        let mut rng = ctx.rng.lock().unwrap();
        let applicable: Vec<Fault> =
            ctx.config.faults.iter().copied().filter(|f| write || !matches!(f, Fault::Conflict | Fault::LostAnswer)).collect();
        let fault = (rng.unit() < ctx.config.share && !applicable.is_empty()).then(|| rng.pick(&applicable));
        let cut = (watch && rng.unit() < ctx.config.cut_share).then(|| rng.unit() < 0.5);
        (fault, cut, rng.between(ctx.config.hold.0, ctx.config.hold.1), rng.between(ctx.config.cut_after.0, ctx.config.cut_after.1))
    };
    if let Some(f) = fault {
        stats.add(f.name());
        stats.add(&format!("{} {kind}", f.name()));
    }
    let answer = match fault {
        Some(Fault::Conflict) => Some(status(StatusCode::CONFLICT, "Conflict")),
        Some(Fault::TooManyRequests) => {
            let mut res = status(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
            res.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            Some(res)
        }
        Some(Fault::InternalError) => Some(status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError")),
        Some(Fault::Unavailable) => Some(status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")),
        Some(Fault::Timeout) => {
            tokio::time::sleep(hold).await;
            return Err("timed out by the fault proxy".into());
        }
        Some(Fault::LostAnswer) | None => None,
    };
    if let Some(res) = answer {
        return Ok(res);
    }

    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut up = Request::builder().method(parts.method.clone()).uri(format!("{}{path}", ctx.upstream)).version(Version::HTTP_11);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            up = up.header(name, value);
        }
    }
    let res = ctx.client.request(up.body(body)?).await?;
    if fault == Some(Fault::LostAnswer) {
        drop(res);
        tokio::time::sleep(hold).await;
        return Err("the answer was lost by the fault proxy".into());
    }
    let (mut parts, body) = res.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    let body: Body = match cut {
        Some(expired) if parts.status.is_success() => {
            stats.add(if expired { "watch expired" } else { "watch cut" });
            let frames = TryStreamExt::map_err(BodyStream::new(body), BoxError::from).take_until(tokio::time::sleep(after));
            let tail = futures::stream::once(async move {
                if expired {
                    let status = serde_json::json!({
                        "type": "ERROR",
                        "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                   "message": "too old resource version (injected by the fault proxy)", "reason": "Expired", "code": 410},
                    });
                    Ok(Frame::data(Bytes::from(format!("{status}\n"))))
                } else {
                    Err(BoxError::from("watch cut by the fault proxy"))
                }
            });
            BodyExt::boxed(StreamBody::new(frames.chain(tail)))
        }
        _ => body.map_err(BoxError::from).boxed(),
    };
    Ok(Response::from_parts(parts, body))
}
