//! `rollouts dashboard`: one axum server with Argo's REST API (`/<root>/api/v1/…`, the paths
//! and JSON of Argo's grpc-gateway) and server-rendered pages, every request acting through
//! the kubeconfig of whoever started it (the API server's RBAC decides, as for the CLI).
//!
//! Safe by default, unlike Argo's (see [`guard`]): it listens on 127.0.0.1; a non-loopback
//! address needs `--token-file`; actions need the page's CSRF token and the own Origin.

mod analysis;
mod api;
pub mod guard;
mod login;
mod pages;
mod stream;
pub mod view;
mod whatif;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, put};
use axum::Router;
use http::header::{HeaderName, HeaderValue};
use kube::Client;

use crate::cli::cluster::Cluster;
use crate::kubeapi::{ConnectError, KubeArgs};
use guard::{Guard, Refusal};

/// Argo's listener retries: 5 attempts, 500 ms apart.
const LISTEN_ATTEMPTS: u32 = 5;
const LISTEN_BACKOFF: Duration = Duration::from_millis(500);

/// What `rollouts dashboard` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub address: String,
    pub port: u16,
    pub root_path: String,
    pub read_only: bool,
    pub token_file: Option<PathBuf>,
    pub kube: KubeArgs,
}

/// Why the dashboard did not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("--address {0:?} is not an IP address (nor `localhost`)")]
    Address(String),
    #[error(
        "refusing to listen on {0} without --token-file: anyone who can reach that address could \
         drive your rollouts with your credentials (listen on 127.0.0.1, or give a token file)"
    )]
    NeedsToken(IpAddr),
    #[error("cannot read the token file {path}: {source}")]
    TokenFile { path: String, source: std::io::Error },
    #[error("the token file {0} is empty")]
    EmptyToken(String),
    #[error("--root-path {0:?}: use letters, digits, '-', '_', '.' and '/' only")]
    RootPath(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create the CSRF token: {0}")]
    Random(std::io::Error),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// What every handler shares.
pub(crate) struct App {
    pub client: Client,
    /// The namespace of the kubeconfig (or `-n`): the pages' default.
    pub namespace: String,
    /// `""` or `/rollouts`: the prefix of every path.
    pub root: String,
    pub guard: Guard,
}

impl App {
    /// The cluster as seen from `namespace`.
    pub fn cluster(&self, namespace: &str) -> Cluster {
        Cluster { client: self.client.clone(), namespace: namespace.to_string() }
    }
}

/// Checks the options, listens, and serves until SIGINT/SIGTERM.
pub async fn serve(options: Options) -> Result<(), DashboardError> {
    let root = root_path(&options.root_path)?;
    let ip = parse_address(&options.address)?;
    let token = options.token_file.as_deref().map(read_token).transpose()?;
    if !ip.is_loopback() && token.is_none() {
        return Err(DashboardError::NeedsToken(ip));
    }
    let connection = options.kube.connect().await?;
    let listener = listen(SocketAddr::new(ip, options.port)).await?;
    let local = listener.local_addr().map_err(DashboardError::Serve)?;
    let guard = Guard {
        token,
        csrf: guard::random_token().map_err(DashboardError::Random)?,
        read_only: options.read_only,
        hosts: own_hosts(ip, local.port()),
    };
    let app = Arc::new(App { client: connection.client, namespace: connection.namespace, root: root.clone(), guard });
    let shown = if ip.is_loopback() { format!("localhost:{}", local.port()) } else { local.to_string() };
    println!("INFO: Rollouts dashboard is now available at http://{shown}{root}/");
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown()).await.map_err(DashboardError::Serve)
}

/// The routes, behind the guard.
pub(crate) fn router(app: Arc<App>) -> Router {
    let r = app.root.clone();
    let v1 = format!("{r}/api/v1");
    let mut router = Router::new()
        .route(&format!("{v1}/version"), get(api::version))
        .route(&format!("{v1}/namespace"), get(api::namespace))
        .route(&format!("{v1}/rollouts/{{namespace}}/info"), get(api::list))
        .route(&format!("{v1}/rollouts/{{namespace}}/info/watch"), get(stream::watch_list))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/info"), get(api::info))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/info/watch"), get(stream::watch_one))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/promote"), put(api::promote))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/abort"), put(api::abort))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/retry"), put(api::retry))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/restart"), put(api::restart))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/set/{{container}}/{{*image}}"), put(api::set_image))
        .route(&format!("{v1}/rollouts/{{namespace}}/{{name}}/undo/{{revision}}"), put(api::undo))
        .route(&format!("{r}/assets/app.js"), get(pages::script))
        .route(&format!("{r}/assets/style.css"), get(pages::style))
        .route(&format!("{r}/rollout/{{namespace}}/{{name}}"), get(pages::rollout))
        .route(&format!("{r}/rollout/{{namespace}}/{{name}}/whatif"), get(whatif::whatif))
        .route(&format!("{r}/login"), get(login::form).post(login::submit))
        .route(&format!("{r}/"), get(pages::list));
    if !r.is_empty() {
        let home = format!("{r}/");
        router = router
            .route("/", get({
                let home = home.clone();
                move || async move { Redirect::to(&home) }
            }))
            .route(&r, get(move || async move { Redirect::to(&home) }));
    }
    router.layer(axum::middleware::from_fn_with_state(app.clone(), guarded)).with_state(app)
}

/// Applies [`Guard::check`] to every request, and the headers that keep the pages from being
/// framed or sniffed. The login form and the static assets it uses are open to all; a page
/// asked for without the token leads to the form.
async fn guarded(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let open = app.guard.token.is_some()
        && (path == format!("{}/login", app.root) || (request.method() == http::Method::GET && path.starts_with(&format!("{}/assets/", app.root))));
    let checked = if open { Ok(()) } else { app.guard.check(request.method(), request.headers()) };
    let mut response = match checked {
        Err(Refusal::Unauthenticated) if request.method() == http::Method::GET && !path.starts_with(&format!("{}/api/", app.root)) => {
            Redirect::to(&format!("{}/login", app.root)).into_response()
        }
        Ok(()) => {
            let mut response = next.run(request).await;
            // Only a page of this dashboard can read it: no CORS headers, and the Host was
            // checked (the open login form and assets never carry it).
            if let (false, Ok(token)) = (open, HeaderValue::from_str(&app.guard.csrf)) {
                response.headers_mut().insert(HeaderName::from_static(guard::CSRF_HEADER), token);
            }
            response
        }
        Err(refusal) => refused(refusal),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}

fn refused(refusal: Refusal) -> Response {
    api::ApiError { status: refusal.status(), message: refusal.to_string() }.into_response()
}

/// `rollouts` → `/rollouts`; `""` or `/` → `""`.
fn root_path(raw: &str) -> Result<String, DashboardError> {
    let trimmed = raw.trim_matches('/');
    let ok = trimmed.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !trimmed.split('/').any(|s| s == ".." || s == "." || (s.is_empty() && !trimmed.is_empty()));
    if !ok {
        return Err(DashboardError::RootPath(raw.to_string()));
    }
    Ok(if trimmed.is_empty() { String::new() } else { format!("/{trimmed}") })
}

fn parse_address(raw: &str) -> Result<IpAddr, DashboardError> {
    if raw.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    raw.trim_matches(|c| c == '[' || c == ']').parse().map_err(|_| DashboardError::Address(raw.to_string()))
}

fn read_token(path: &std::path::Path) -> Result<String, DashboardError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| DashboardError::TokenFile { path: path.display().to_string(), source })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(DashboardError::EmptyToken(path.display().to_string()));
    }
    Ok(token.to_string())
}

/// The `Host` values that name this listener.
fn own_hosts(ip: IpAddr, port: u16) -> BTreeSet<String> {
    let shown = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    [format!("{shown}:{port}"), format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
        .into_iter()
        .collect()
}

async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener, DashboardError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(source) if attempt >= LISTEN_ATTEMPTS => return Err(DashboardError::Listen { addr, source }),
            Err(_) => tokio::time::sleep(LISTEN_BACKOFF).await,
        }
    }
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_paths_are_normalised_and_dot_dot_refused() {
        assert_eq!(root_path("rollouts").unwrap(), "/rollouts");
        assert_eq!(root_path("/a/b/").unwrap(), "/a/b");
        assert_eq!(root_path("").unwrap(), "");
        assert!(root_path("../x").is_err());
        assert!(root_path("a//b").is_err());
        assert!(root_path("a b").is_err());
    }

    #[test]
    fn addresses_and_their_hosts() {
        assert!(parse_address("localhost").unwrap().is_loopback());
        assert!(!parse_address("0.0.0.0").unwrap().is_loopback());
        assert!(parse_address("[::1]").unwrap().is_loopback());
        assert!(parse_address("example.com").is_err());
        assert!(own_hosts(parse_address("127.0.0.1").unwrap(), 3100).contains("localhost:3100"));
    }
}
