//! The watch endpoints. Argo's grpc-gateway (v1, `runtime.ForwardResponseStream`) answers a
//! stream as newline-delimited JSON, one `{"result": <message>}` per line, and Argo's UI reads
//! it with an `EventSource`, taking `JSON.parse(data).result`. We send the same
//! `{"result": …}` objects: as Server-Sent Events (`data: …`) when the client accepts
//! `text/event-stream` (browsers), as newline-delimited JSON otherwise (scripts written
//! against Argo's gateway). An error ends the stream with `{"error": {…}}`, as the gateway's does.
//!
//! Updates are driven by watches on the namespace's Rollouts, ReplicaSets, Pods (and, for one
//! rollout, AnalysisRuns and Experiments), not by polling; each change is recomputed at most
//! once per [`MIN_INTERVAL`], and a rollout is sent only when its info changed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::Response;
use tokio::sync::mpsc;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use http::{header, HeaderMap, StatusCode};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::api::{all_rollouts, bounded, grpc_code, name_of, one_rollout};
use super::{view, App};
use crate::cli::cluster::Cluster;

/// At most one update per rollout in this interval (Argo's throttle).
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// A recomputation even without a watch event, and an SSE comment so a gone client is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long a stream lives; an `EventSource` reconnects by itself.
const MAX_LIFE: Duration = Duration::from_secs(30 * 60);
/// How long a send waits for a slow client before the stream is dropped.
const SEND_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    ServerSentEvents,
    JsonLines,
}

impl Framing {
    fn of(headers: &HeaderMap) -> Framing {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        if accept.contains("text/event-stream") {
            Framing::ServerSentEvents
        } else {
            Framing::JsonLines
        }
    }

    fn frame(self, message: &Value) -> Bytes {
        match self {
            Framing::ServerSentEvents => Bytes::from(format!("data: {message}\n\n")),
            Framing::JsonLines => Bytes::from(format!("{message}\n")),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Framing::ServerSentEvents => "text/event-stream",
            Framing::JsonLines => "application/json",
        }
    }
}

/// What a stream watches: one rollout (its `RolloutInfo` is the message) or a namespace
/// (`RolloutWatchEvent{type: "Updated", rolloutInfo}` per changed rollout).
#[derive(Debug, Clone)]
enum Subject {
    One(String),
    All,
}

pub async fn watch_one(State(app): State<Arc<App>>, Path((namespace, name)): Path<(String, String)>, headers: HeaderMap) -> Response {
    start(app.cluster(&namespace), Subject::One(name), Framing::of(&headers))
}

pub async fn watch_list(State(app): State<Arc<App>>, Path(namespace): Path<String>, headers: HeaderMap) -> Response {
    start(app.cluster(&namespace), Subject::All, Framing::of(&headers))
}

fn start(cluster: Cluster, subject: Subject, framing: Framing) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(8);
    let rx = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|frame| (frame, rx)) });
    tokio::spawn(feed(cluster, subject, framing, tx));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, framing.content_type())
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(rx))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Sends the infos that changed, then waits for the next watch event; ends when the client
/// goes, on an error, or after [`MAX_LIFE`].
async fn feed(cluster: Cluster, subject: Subject, framing: Framing, tx: mpsc::Sender<Result<Bytes, Infallible>>) {
    let deadline = Instant::now() + MAX_LIFE;
    let mut changes = changes(&cluster, &subject);
    let mut sent: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let computed = match &subject {
            Subject::One(name) => bounded(one_rollout(&cluster, name)).await.map(|o| vec![(name.clone(), view::rollout_info(&o))]),
            Subject::All => bounded(all_rollouts(&cluster))
                .await
                .map(|all| all.iter().map(|o| (name_of(&o.rollout).to_string(), view::rollout_list_entry(o))).collect()),
        };
        let infos: Vec<(String, Value)> = match computed {
            Ok(infos) => infos,
            Err(e) => {
                let error = json!({"error": {"grpc_code": grpc_code(e.status), "http_code": e.status.as_u16(), "message": e.message, "http_status": e.status.canonical_reason().unwrap_or("")}});
                let _ = send(&tx, framing.frame(&error)).await;
                return;
            }
        };
        let emitted = Instant::now();
        for (name, info) in infos {
            let text = info.to_string();
            if sent.get(&name) == Some(&text) {
                continue;
            }
            let message = match subject {
                Subject::One(_) => json!({"result": info}),
                Subject::All => json!({"result": {"type": "Updated", "rolloutInfo": info}}),
            };
            if !send(&tx, framing.frame(&message)).await {
                return;
            }
            sent.insert(name, text);
        }
        tokio::select! {
            change = changes.next() => if change.is_none() { return },
            () = tokio::time::sleep(KEEPALIVE) => {
                if framing == Framing::ServerSentEvents && !send(&tx, Bytes::from_static(b": keep-alive\n\n")).await {
                    return;
                }
            }
            () = tx.closed() => return,
        }
        tokio::time::sleep_until(emitted + MIN_INTERVAL).await;
        // Everything that happened meanwhile is covered by the next computation.
        while let Some(Some(())) = changes.next().now_or_never() {}
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Whether the client took the frame in time.
async fn send(tx: &mpsc::Sender<Result<Bytes, Infallible>>, frame: Bytes) -> bool {
    tx.send_timeout(Ok(frame), SEND_WAIT).await.is_ok()
}

/// One `()` per watch event that may change what the subject shows.
fn changes(cluster: &Cluster, subject: &Subject) -> BoxStream<'static, ()> {
    fn events<K>(api: kube::Api<K>, config: watcher::Config) -> BoxStream<'static, ()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        watcher(api, config).default_backoff().filter_map(|e| futures::future::ready(e.ok().map(|_| ()))).boxed()
    }
    let any = watcher::Config::default;
    let mut streams = vec![events(cluster.replica_sets(), any()), events(cluster.pods(), any())];
    match subject {
        Subject::One(name) => {
            streams.push(events(cluster.rollouts(), any().fields(&format!("metadata.name={name}"))));
            streams.push(events(cluster.analysis_runs(), any()));
            streams.push(events(cluster.experiments(), any()));
        }
        Subject::All => streams.push(events(cluster.rollouts(), any())),
    }
    futures::stream::select_all(streams).boxed()
}
