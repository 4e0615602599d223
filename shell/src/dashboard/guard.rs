//! The dashboard's safety rules, decided from a request's method and headers alone.
//!
//! Argo's dashboard has none (argoproj/argo-rollouts#1323): any page the user visits could
//! PUT a promote to `localhost:3100`. Here:
//! - with a token file, every request carries `Authorization: Bearer <token>` (or the
//!   `rollouts-token` cookie the login form sets);
//! - without one (the listener is then on a loopback address), the `Host` header must name
//!   that listener, so a DNS-rebinding page cannot read the API either;
//! - a request that changes something (anything but GET/HEAD) is refused when read-only,
//!   when its `Origin` (or `Sec-Fetch-Site`) says another site sent it, and when it lacks
//!   the per-process CSRF token in `X-CSRF-Token` — unless the bearer header authenticated
//!   it, which no other site's page can add.

use std::collections::BTreeSet;

use http::{HeaderMap, Method};

/// The header carrying the CSRF token; the pages read the token from their `<meta>` tag.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The cookie the login form sets to the bearer token (HttpOnly, SameSite=Strict).
pub const TOKEN_COOKIE: &str = "rollouts-token";

/// What a request is checked against; built once at start.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The bearer token, when the dashboard was started with `--token-file`.
    pub token: Option<String>,
    /// The per-process CSRF token.
    pub csrf: String,
    pub read_only: bool,
    /// The `Host` values accepted without a token (`127.0.0.1:3100`, `localhost:3100`, ...).
    pub hosts: BTreeSet<String>,
}

/// Why a request was refused; each is a 401 or 403 with this sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this dashboard needs `Authorization: Bearer <token>` (the token of --token-file)")]
    Unauthenticated,
    #[error("the Host header does not name this dashboard")]
    ForeignHost,
    #[error("the dashboard is read-only (--read-only): actions are refused")]
    ReadOnly,
    #[error("cross-origin request refused: the Origin is not this dashboard")]
    CrossOrigin,
    #[error("missing or wrong X-CSRF-Token header (the token is in the pages and the X-CSRF-Token header of every GET)")]
    Csrf,
}

impl Refusal {
    pub fn status(self) -> http::StatusCode {
        match self {
            Refusal::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            Refusal::ForeignHost | Refusal::ReadOnly | Refusal::CrossOrigin | Refusal::Csrf => http::StatusCode::FORBIDDEN,
        }
    }
}

/// How the request proved who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// No token is configured.
    Open,
    /// The bearer header: only a program that holds the token can set it.
    Bearer,
    /// The cookie: a browser sends it with any request to us, so actions still need the CSRF token.
    Cookie,
}

impl Guard {
    /// Whether the request may proceed.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let credential = match &self.token {
            None => Credential::Open,
            Some(token) => {
                let bearer = header("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
                if bearer.is_some_and(|b| same(b, token)) {
                    Credential::Bearer
                } else if cookie(headers, TOKEN_COOKIE).is_some_and(|c| same(&c, token)) {
                    Credential::Cookie
                } else {
                    return Err(Refusal::Unauthenticated);
                }
            }
        };
        let host = header("host").unwrap_or("");
        if credential == Credential::Open && !self.hosts.contains(&host.to_ascii_lowercase()) {
            return Err(Refusal::ForeignHost);
        }
        if matches!(*method, Method::GET | Method::HEAD) {
            return Ok(());
        }
        if self.read_only {
            return Err(Refusal::ReadOnly);
        }
        if let Some(origin) = header("origin") {
            let own = [format!("http://{host}"), format!("https://{host}")];
            if !own.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                return Err(Refusal::CrossOrigin);
            }
        }
        if header("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
            return Err(Refusal::CrossOrigin);
        }
        if credential != Credential::Bearer && !header(CSRF_HEADER).is_some_and(|t| same(t, &self.csrf)) {
            return Err(Refusal::Csrf);
        }
        Ok(())
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token: 32 bytes of the kernel's randomness, hex.
pub fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>, read_only: bool) -> Guard {
        Guard {
            token: token.map(str::to_string),
            csrf: "c5rf".into(),
            read_only,
            hosts: ["127.0.0.1:3100".to_string(), "localhost:3100".to_string()].into(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn reads_need_only_the_own_host_without_a_token() {
        let g = guard(None, false);
        assert_eq!(g.check(&Method::GET, &headers(&[("host", "localhost:3100")])), Ok(()));
        assert_eq!(g.check(&Method::GET, &headers(&[("host", "evil.example:3100")])), Err(Refusal::ForeignHost));
        assert_eq!(g.check(&Method::GET, &headers(&[])), Err(Refusal::ForeignHost));
    }

    #[test]
    fn actions_need_the_csrf_token_and_the_own_origin() {
        let g = guard(None, false);
        let ok = [("host", "127.0.0.1:3100"), ("x-csrf-token", "c5rf")];
        assert_eq!(g.check(&Method::PUT, &headers(&ok)), Ok(()));
        assert_eq!(g.check(&Method::PUT, &headers(&[("host", "127.0.0.1:3100"), ("origin", "http://127.0.0.1:3100"), ("x-csrf-token", "c5rf")])), Ok(()));
        assert_eq!(g.check(&Method::PUT, &headers(&[("host", "127.0.0.1:3100")])), Err(Refusal::Csrf));
        assert_eq!(g.check(&Method::PUT, &headers(&[("host", "127.0.0.1:3100"), ("x-csrf-token", "c5rg")])), Err(Refusal::Csrf));
        let foreign = [("host", "127.0.0.1:3100"), ("origin", "https://evil.example"), ("x-csrf-token", "c5rf")];
        assert_eq!(g.check(&Method::POST, &headers(&foreign)), Err(Refusal::CrossOrigin));
        let fetch = [("host", "127.0.0.1:3100"), ("sec-fetch-site", "cross-site"), ("x-csrf-token", "c5rf")];
        assert_eq!(g.check(&Method::PUT, &headers(&fetch)), Err(Refusal::CrossOrigin));
    }

    #[test]
    fn read_only_refuses_every_action_but_no_read() {
        let g = guard(None, true);
        let h = headers(&[("host", "127.0.0.1:3100"), ("x-csrf-token", "c5rf")]);
        assert_eq!(g.check(&Method::PUT, &h), Err(Refusal::ReadOnly));
        assert_eq!(g.check(&Method::DELETE, &h), Err(Refusal::ReadOnly));
        assert_eq!(g.check(&Method::GET, &h), Ok(()));
    }

    #[test]
    fn a_token_is_needed_on_every_request_and_the_bearer_replaces_the_csrf_token() {
        let g = guard(Some("s3cret"), false);
        assert_eq!(g.check(&Method::GET, &headers(&[("host", "any.example")])), Err(Refusal::Unauthenticated));
        assert_eq!(g.check(&Method::GET, &headers(&[("authorization", "Bearer s3cres")])), Err(Refusal::Unauthenticated));
        assert_eq!(g.check(&Method::GET, &headers(&[("host", "any.example"), ("authorization", "Bearer s3cret")])), Ok(()));
        assert_eq!(g.check(&Method::PUT, &headers(&[("host", "any.example"), ("authorization", "Bearer s3cret")])), Ok(()));
        // The cookie comes with any request a browser sends: actions still need the CSRF token.
        let cookie = [("host", "any.example"), ("cookie", "a=b; rollouts-token=s3cret")];
        assert_eq!(g.check(&Method::GET, &headers(&cookie)), Ok(()));
        assert_eq!(g.check(&Method::PUT, &headers(&cookie)), Err(Refusal::Csrf));
    }
}
