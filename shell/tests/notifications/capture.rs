//! A server on 127.0.0.1 that records every request and answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }
}

/// The recorded requests and the answers still to give (then `fallback`).
#[derive(Clone)]
pub struct Capture {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl Capture {
    /// Serves on a free port; answers `fallback` once the scripted answers are used up.
    pub async fn start(fallback: (u16, &str)) -> Capture {
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let answers: Arc<Mutex<VecDeque<(u16, String)>>> = Arc::default();
        let (r, a) = (requests.clone(), answers.clone());
        let fallback = (fallback.0, fallback.1.to_string());
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (r, a, fallback) = (r.clone(), a.clone(), fallback.clone());
            async move {
                r.lock().unwrap().push(Request {
                    method: method.to_string(),
                    path: uri.to_string(),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let (status, body) = a.lock().unwrap().pop_front().unwrap_or(fallback);
                (StatusCode::from_u16(status).unwrap(), body)
            }
        });
        let port = super::support::serve(app).await;
        Capture { port, requests, answers }
    }

    /// Answers the next requests with these, in order.
    pub fn script(&self, answers: &[(u16, &str)]) {
        self.answers.lock().unwrap().extend(answers.iter().map(|(s, b)| (*s, b.to_string())));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) until `n` requests arrived; all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        super::support::wait_for(timeout, &format!("{n} request(s) at the test server"), || async {
            let got = self.requests();
            if got.len() >= n { Ok(got) } else { Err(format!("{} so far: {:?}", got.len(), got.iter().map(|r| &r.path).collect::<Vec<_>>())) }
        })
        .await
    }
}
