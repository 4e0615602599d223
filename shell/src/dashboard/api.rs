//! Argo's REST API (pkg/apiclient/rollout/rollout.proto): the reads return `RolloutInfo`s,
//! the actions plan their change with the same core commands as the CLI
//! ([`crate::cli::actions::run_command`]) and answer with the Rollout as it is afterwards.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use kube::api::ListParams;
use rollouts_core::commands::Command;
use rollouts_core::Timestamp;
use serde_json::{json, Value};

use super::{view, App};
use crate::cli::actions::run_command;
use crate::cli::cluster::{list_if_served, to_value, Cluster};
use crate::cli::error::CliError;
use crate::cli::info::Objects;

/// The longest any request waits for the API server.
pub const KUBE_WAIT: Duration = Duration::from_secs(30);
/// `set image` retries this many times when the object changed under it (409 Conflict).
const SET_IMAGE_ATTEMPTS: usize = 5;

/// An error answer, shaped as grpc-gateway's: `{error, code, message}` (`code` is the gRPC code).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

impl From<CliError> for ApiError {
    fn from(e: CliError) -> Self {
        let status = match &e {
            CliError::Api(kube::Error::Api(s)) => StatusCode::from_u16(s.code).unwrap_or(StatusCode::BAD_GATEWAY),
            CliError::Refused(_) => StatusCode::BAD_REQUEST,
            CliError::Api(_) | CliError::Transport(_) => StatusCode::BAD_GATEWAY,
            CliError::Connect(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError { status, message: e.to_string() }
    }
}

impl From<kube::Error> for ApiError {
    fn from(e: kube::Error) -> Self {
        CliError::from(e).into()
    }
}

/// The gRPC status code grpc-gateway maps to this HTTP status.
pub fn grpc_code(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 10,
        429 => 8,
        501 => 12,
        503 => 14,
        504 => 4,
        _ => 2,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "code": grpc_code(self.status), "message": self.message});
        json_response(self.status, &body)
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// Waits at most [`KUBE_WAIT`] for `work`.
pub async fn bounded<T>(work: impl Future<Output = Result<T, CliError>>) -> Result<T, ApiError> {
    match tokio::time::timeout(KUBE_WAIT, work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError { status: StatusCode::GATEWAY_TIMEOUT, message: "the API server did not answer in time".into() }),
    }
}

/// Everything one rollout's `RolloutInfo` is built from.
pub async fn one_rollout(cluster: &Cluster, name: &str) -> Result<Objects, CliError> {
    cluster.objects(name).await
}

/// Every rollout of the namespace with the namespace's ReplicaSets and pods, sorted by name.
pub async fn all_rollouts(cluster: &Cluster) -> Result<Vec<Objects>, CliError> {
    let lp = ListParams::default();
    let rollouts = list_if_served(&cluster.rollouts()).await?.unwrap_or_default();
    if rollouts.is_empty() {
        return Ok(Vec::new());
    }
    let replica_sets = cluster.replica_sets().list(&lp).await?.items;
    let pods = cluster.pods().list(&lp).await?.items;
    let mut all: Vec<Objects> = rollouts
        .into_iter()
        .map(|rollout| Objects {
            rollout,
            replica_sets: replica_sets.clone(),
            pods: pods.clone(),
            analysis_runs: Vec::new(),
            experiments: Vec::new(),
        })
        .collect();
    all.sort_by(|a, b| name_of(&a.rollout).cmp(name_of(&b.rollout)));
    Ok(all)
}

pub fn name_of(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

pub async fn version() -> Response {
    ok(&json!({"rolloutsVersion": format!("v{}", env!("CARGO_PKG_VERSION"))}))
}

/// `{namespace, availableNamespaces}`: the namespaces holding rollouts, when the kubeconfig
/// may list rollouts cluster-wide; otherwise only its own namespace.
pub async fn namespace(State(app): State<Arc<App>>) -> Response {
    let cluster = app.cluster(&app.namespace);
    let mut available: Vec<String> = match bounded(async { Ok(cluster.all_rollouts().list(&ListParams::default()).await?) }).await {
        Ok(list) => list.items.iter().filter_map(|r| r.metadata.namespace.clone()).collect(),
        Err(_) => Vec::new(),
    };
    available.push(app.namespace.clone());
    available.sort();
    available.dedup();
    ok(&json!({"namespace": app.namespace, "availableNamespaces": available}))
}

pub async fn info(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let cluster = app.cluster(&namespace);
    let objects = bounded(one_rollout(&cluster, &name)).await?;
    Ok(ok(&view::rollout_info(&objects)))
}

pub async fn list(State(app): State<Arc<App>>, Path(namespace): Path<String>) -> Result<Response, ApiError> {
    let cluster = app.cluster(&namespace);
    let all = bounded(all_rollouts(&cluster)).await?;
    let mut body = json!({"rollouts": all.iter().map(view::rollout_list_entry).collect::<Vec<_>>()});
    view::omit_empty(&mut body, &[]);
    Ok(ok(&body))
}

/// Runs `command` on the rollout and answers with the Rollout afterwards.
async fn act(app: &App, namespace: &str, name: &str, command: Command) -> Result<Response, ApiError> {
    let cluster = app.cluster(namespace);
    bounded(run_command(&cluster, name, &command)).await?;
    let rollout = bounded(cluster.get_rollout(name)).await?;
    Ok(ok(&to_value(&rollout)))
}

/// The request body: empty, or a JSON object (Argo's clients send the path fields again).
fn body_object(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) | Err(_) => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

pub async fn promote(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>, body: Bytes) -> Result<Response, ApiError> {
    let full = match body_object(&body)?.get("full") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("`full` must be true or false")),
    };
    act(&app, &namespace, &name, Command::Promote { full }).await
}

pub async fn abort(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>, body: Bytes) -> Result<Response, ApiError> {
    body_object(&body)?;
    act(&app, &namespace, &name, Command::Abort).await
}

pub async fn retry(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>, body: Bytes) -> Result<Response, ApiError> {
    body_object(&body)?;
    act(&app, &namespace, &name, Command::Retry).await
}

pub async fn restart(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>, body: Bytes) -> Result<Response, ApiError> {
    body_object(&body)?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    act(&app, &namespace, &name, Command::Restart { at: now }).await
}

/// `…/set/{container}/{image=**}/{tag}`: the image may hold slashes; the tag is the last segment.
pub async fn set_image(
    State(app): State<Arc<App>>,
    Path((namespace, name, container, rest)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    body_object(&body)?;
    let Some((image, tag)) = rest.rsplit_once('/').filter(|(i, t)| !i.is_empty() && !t.is_empty()) else {
        return Err(ApiError::bad_request("expected …/set/{container}/{image}/{tag}"));
    };
    let command = Command::SetImage { container, image: format!("{image}:{tag}") };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match act(&app, &namespace, &name, command.clone()).await {
            Err(e) if e.status == StatusCode::CONFLICT && attempt < SET_IMAGE_ATTEMPTS => continue,
            other => return other,
        }
    }
}

pub async fn undo(
    State(app): State<Arc<App>>,
    Path((namespace, name, revision)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    body_object(&body)?;
    let to_revision: i64 = revision.parse().map_err(|_| ApiError::bad_request(format!("revision {revision:?} is not a number")))?;
    act(&app, &namespace, &name, Command::Undo { to_revision }).await
}
