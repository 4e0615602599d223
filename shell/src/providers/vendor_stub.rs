//! A stand-in for the vendors' HTTP APIs in the providers' unit tests: it records every
//! request as it arrived and answers with what the test says.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;

/// One request the stub received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query's pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The query exactly as sent (not decoded).
    pub raw_query: Option<String>,
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

/// What the stub answers: status, `Content-Type`, body.
pub type Answer = (u16, &'static str, String);

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

    /// The only request so far.
    pub fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "{seen:#?}");
        seen[0].clone()
    }
}

/// Starts a stub that answers each request with `answer(request)`: (status, JSON body).
pub async fn start(answer: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Stub {
    start_typed(move |r| {
        let (status, body) = answer(r);
        (status, "application/json", body)
    })
    .await
}

/// Starts a stub that answers each request with `answer(request)`: (status, content type, body).
pub async fn start_typed(answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Stub {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let answer = Arc::new(answer);
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (log, answer) = (log.clone(), answer.clone());
        async move {
            let url = reqwest::Url::parse(&format!("http://stub{uri}")).expect("a request URI");
            let request = Seen {
                method: method.to_string(),
                path: uri.path().to_string(),
                query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
                raw_query: uri.query().map(str::to_string),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, content_type, body) = answer(&request);
            log.lock().expect("the stub's log").push(request);
            let status = StatusCode::from_u16(status).expect("a status code");
            (status, [(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
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

/// A 127.0.0.1 port nothing listens on (it was free a moment ago).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound port").port()
}
