//! The login form of a dashboard started with `--token-file` (as in the cluster, see
//! `deploy/dashboard-install.yaml`). A browser cannot add the bearer header, so the form
//! trades the token for the `rollouts-token` cookie — HttpOnly (no script reads it) and
//! SameSite=Strict (no other site's page sends it along) — after which the pages work as
//! they do on loopback; their actions still need the page's CSRF token (see [`super::guard`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{header, HeaderMap, StatusCode};

use super::guard::{same, TOKEN_COOKIE};
use super::pages::escape;
use super::App;

/// The form.
pub async fn form(State(app): State<Arc<App>>) -> Response {
    login_page(&app, StatusCode::OK, "")
}

/// Checks the submitted token; sets the cookie and goes to the list when it is right.
pub async fn submit(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(expected) = app.guard.token.as_deref() else {
        // Without a token there is nothing to log in to.
        return Redirect::to(&format!("{}/", app.root)).into_response();
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if ![format!("http://{host}"), format!("https://{host}")].iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return login_page(&app, StatusCode::FORBIDDEN, "cross-origin login refused");
        }
    }
    let token = form_urlencoded::parse(&body).find(|(k, _)| k == "token").map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    if !same(&token, expected) {
        return login_page(&app, StatusCode::UNAUTHORIZED, "wrong token");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic() && !b"\";,\\".contains(&b)) {
        return login_page(
            &app,
            StatusCode::BAD_REQUEST,
            "this token cannot be kept in a cookie (it holds a space, quote, comma, semicolon or backslash): \
             choose one of letters, digits and + / = - _ . only, or send it as `Authorization: Bearer`",
        );
    }
    let path = if app.root.is_empty() { "/".to_string() } else { app.root.clone() };
    let cookie = format!("{TOKEN_COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to(&format!("{}/", app.root)).into_response();
    if let Ok(value) = cookie.parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn login_page(app: &App, status: StatusCode, error: &str) -> Response {
    let root = escape(&app.root);
    let error = if error.is_empty() { String::new() } else { format!("<p class=\"error\">{}</p>", escape(error)) };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Log in · Rollouts</title>\
         <link rel=\"stylesheet\" href=\"{root}/assets/style.css\"></head><body>\
         <header><a href=\"{root}/\">Rollouts</a></header><main><h1>Log in</h1>{error}\
         <form method=\"post\" action=\"{root}/login\"><label>Token \
         <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label> \
         <button type=\"submit\">Log in</button></form>\
         <p>The token of the dashboard's <code>--token-file</code> (in the cluster: the Secret \
         <code>argo-rollouts-dashboard-token</code>).</p></main></body></html>"
    );
    (status, Html(html)).into_response()
}
