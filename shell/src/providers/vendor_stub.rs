//! A stand-in for the vendors' HTTP APIs in the providers' unit tests (Datadog, New Relic,
//! Wavefront, Kayenta): it records every request and answers with what the test says.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;

/// One request the stub received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query's pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-case; a repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Seen {
    /// The header `name` (lower-case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A running stub on 127.0.0.1.
pub struct Stub {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the stub's log").clone()
    }
}

/// Starts a stub that answers each request with `answer(request)`: (status, JSON body).
pub async fn start(answer: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Stub {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let answer = Arc::new(answer);
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
        let log = log.clone();
        let answer = answer.clone();
        async move {
            let url = reqwest::Url::parse(&format!("http://stub{uri}")).expect("a request URI");
            let request = Seen {
                method: method.to_string(),
                path: url.path().to_string(),
                query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect(),
                body,
            };
            let (status, body) = answer(&request);
            log.lock().expect("the stub's log").push(request);
            let status = StatusCode::from_u16(status).expect("a status code");
            (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let port = listener.local_addr().expect("a bound port").port();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the stub server") });
    Stub { base: format!("http://127.0.0.1:{port}"), seen }
}

/// Pairs, owned, for comparing with [`Seen::query`].
pub fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
