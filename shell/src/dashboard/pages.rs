//! The server-rendered pages.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use super::App;

pub async fn list(State(_app): State<Arc<App>>) -> Response {
    Html("<!doctype html><title>Rollouts</title>").into_response()
}

pub async fn rollout(State(_app): State<Arc<App>>, Path((_namespace, _name)): Path<(String, String)>) -> Response {
    Html("<!doctype html><title>Rollout</title>").into_response()
}

pub async fn script() -> Response {
    ([(http::header::CONTENT_TYPE, "text/javascript")], "").into_response()
}

pub async fn style() -> Response {
    ([(http::header::CONTENT_TYPE, "text/css")], "").into_response()
}
