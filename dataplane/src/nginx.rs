//! The nginx configuration that carries out an ingress plan (`ingress.rs`), without Lua
//! (Debian's nginx has none): plain `map`s and `split_clients` decide per request.
//!
//! For a location with a canary, three variables are computed, each `canary`, `stable` or
//! empty (no decision), and concatenated in the order of the balancer's rules; the first word
//! decides:
//!
//! - `$rollouts_hN`: a `map` of the request header (`$http_<name>`): `~^<value>$` (the exact
//!   value, case-sensitive), or `~<pattern>` (unanchored PCRE), or `~^always$` / `~^never$`;
//! - `$rollouts_cN`: a `map` of the cookie (`$cookie_<name>`, else `$http_cookie`):
//!   `always` / `never`;
//! - `$rollouts_wN`: `split_clients` on `$request_id` (16 random bytes per request): `canary`
//!   for `weight / total` of the requests. nginx splits in steps of 0.01%, so the share is
//!   rounded to the nearest step (exact for totals dividing 10000: 100, 1000, 10000); weight
//!   ≤ 0 is never canary and weight ≥ total always.
//!
//! then `map "${rollouts_hN}${rollouts_cN}${rollouts_wN}" $rollouts_toN { ~^canary <canary upstream>;
//! default <stable upstream>; }` and `proxy_pass http://$rollouts_toN`. Upstreams are the
//! Services' ready pods at `127.0.0.1:<port>`.
//!
//! Paths as ingress-nginx writes them: `Exact` → `location = P`; `Prefix` → `location P/`
//! plus `location = P` (unless an Exact location has P), `/` → `location /`;
//! `ImplementationSpecific` → `location P`. A host without a `/` location answers 404 there;
//! an unknown host gets the catch-all server (`_`, rules without host), 404 by default.
//!
//! Limits: header names must be `[A-Za-z0-9_-]` (an nginx variable name), else the header rule
//! is left out; a cookie whose name is not a variable name (`canary-user`) is looked for in the
//! Cookie header with a regular expression; a header present with an empty value counts as
//! absent; header patterns are checked with Rust's `regex` (RE2 syntax, like ingress-nginx's Go
//! validation): one that does not compile counts as a regex error (a request with the header
//! goes to stable).
//!
//! Every server also answers `GET /.rollouts/served` with the JSON of what this configuration
//! serves and its generation, from the configuration itself (so it proves that the reload took
//! effect).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::cluster::{Endpoints, Snapshot};
use crate::ingress::{Location, Plan};
use crate::served::{self, SERVED_PATH};
use crate::{Error, Proxy};

/// How a location's requests are routed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// 503: no ready endpoint behind the location.
    Unavailable,
    /// Always this upstream.
    Upstream(String),
    /// Decided per request by `$rollouts_to<N>`.
    Split(usize),
}

/// nginx's share of canary requests in 0.01% steps, given the weight and the effective total.
pub fn basis_points(weight: i64, total: i64) -> i64 {
    if weight <= 0 || total <= 0 {
        0
    } else if weight >= total {
        10_000
    } else {
        let w = i128::from(weight) * 10_000;
        let t = i128::from(total);
        i64::try_from((w + t / 2) / t).unwrap_or(10_000)
    }
}

/// A `"..."` token of the nginx configuration (backslashes and double quotes escaped).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A regular expression that matches `s` literally.
fn literal_regex(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c.is_ascii() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_cookie_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The rendered configuration: `nginx.conf`, and `served.conf` (the served-JSON location,
/// included by every server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub nginx_conf: String,
    pub served_conf: String,
}

/// Renders the configuration for `plan`, listening on `127.0.0.1:port`, with files under
/// `dir`.
pub fn render(plan: &Plan, port: u16, dir: &Path, generation: u64) -> Config {
    let mut http = String::new();
    let mut notes: BTreeMap<usize, Vec<String>> = BTreeMap::new();

    // Upstreams: one per Service with ready endpoints.
    let mut upstreams: BTreeMap<(String, String), String> = BTreeMap::new();
    let backends = plan.locations.iter().flat_map(|l| {
        let canary = l.canary.iter().map(move |c| (l, &c.backend));
        std::iter::once((l, &l.stable)).chain(canary)
    });
    for (l, backend) in backends {
        let key = (l.namespace.clone(), backend.service.clone());
        if backend.ports.is_empty() || upstreams.contains_key(&key) {
            continue;
        }
        let name = format!("rollouts_u{}", upstreams.len());
        let _ = writeln!(http, "    # {}/{}", key.0, key.1);
        let _ = writeln!(http, "    upstream {name} {{");
        for port in &backend.ports {
            let _ = writeln!(http, "        server 127.0.0.1:{port};");
        }
        let _ = writeln!(http, "        keepalive 16;\n    }}");
        upstreams.insert(key, name);
    }
    let upstream = |l: &Location, service: &str| {
        upstreams
            .get(&(l.namespace.clone(), service.to_string()))
            .cloned()
    };

    // Per location: the route, and the maps that decide a split.
    let mut routes = Vec::new();
    let mut splits = Vec::new();
    for (i, l) in plan.locations.iter().enumerate() {
        let note = |notes: &mut BTreeMap<usize, Vec<String>>, s: String| {
            notes.entry(i).or_default().push(s)
        };
        let Some(stable) = upstream(l, &l.stable.service) else {
            note(&mut notes, "the Service has no ready endpoint: 503".into());
            routes.push(Route::Unavailable);
            splits.push(None);
            continue;
        };
        let canary = l.canary.as_ref();
        let canary_upstream = canary.and_then(|c| upstream(l, &c.backend.service));
        let (Some(c), Some(canary_upstream)) = (canary, canary_upstream) else {
            if canary.is_some() {
                note(
                    &mut notes,
                    "the canary Service has no ready endpoint: every request goes to stable".into(),
                );
            }
            routes.push(Route::Upstream(stable));
            splits.push(None);
            continue;
        };
        let p = &c.policy;
        let mut sources = String::new();
        let mut maps = String::new();
        if let Some(header) = &p.header {
            if is_header_name(header) {
                let var = format!("$http_{}", header.to_ascii_lowercase().replace('-', "_"));
                let entries = if let Some(value) = &p.header_value {
                    vec![(format!("~^{}$", literal_regex(value)), "canary")]
                } else if let Some(pattern) = &p.header_pattern {
                    if regex::Regex::new(pattern).is_ok() {
                        vec![(format!("~{pattern}"), "canary")]
                    } else {
                        note(&mut notes, format!("header pattern {pattern:?} does not compile: a request with the header goes to stable"));
                        vec![("~.".to_string(), "stable")]
                    }
                } else {
                    vec![
                        ("~^always$".to_string(), "canary"),
                        ("~^never$".to_string(), "stable"),
                    ]
                };
                let _ = writeln!(
                    maps,
                    "    map {var} $rollouts_h{i} {{\n        default \"\";"
                );
                for (key, value) in entries {
                    let _ = writeln!(maps, "        {} {value};", quoted(&key));
                }
                maps.push_str("    }\n");
                let _ = write!(sources, "${{rollouts_h{i}}}");
            } else {
                note(&mut notes, format!("header name {header:?} is not an nginx variable name: header rule left out"));
            }
        }
        if let Some(cookie) = &p.cookie {
            if is_cookie_name(cookie) {
                let _ = writeln!(
                    maps,
                    "    map $cookie_{cookie} $rollouts_c{i} {{\n        default \"\";\n        \"~^always$\" canary;\n        \"~^never$\" stable;\n    }}"
                );
            } else {
                // Not a variable name: the Cookie header itself, the name matched without
                // regard to case (as $cookie_ does), the value exactly.
                let name = literal_regex(cookie);
                let entry =
                    |value: &str| quoted(&format!("~(?:^|;)\\s*(?i:{name})={value}\\s*(?:;|$)"));
                let _ = writeln!(
                    maps,
                    "    map $http_cookie $rollouts_c{i} {{\n        default \"\";\n        {} canary;\n        {} stable;\n    }}",
                    entry("always"),
                    entry("never")
                );
            }
            let _ = write!(sources, "${{rollouts_c{i}}}");
        }
        let bp = basis_points(p.weight, p.total);
        let exact =
            i128::from(p.weight.clamp(0, p.total)) * 10_000 == i128::from(bp) * i128::from(p.total);
        if !exact {
            note(
                &mut notes,
                format!(
                    "weight {}/{} rounded to {}.{:02}%",
                    p.weight,
                    p.total,
                    bp / 100,
                    bp % 100
                ),
            );
        }
        match bp {
            0 => sources.push_str("stable"),
            10_000 => sources.push_str("canary"),
            _ => {
                let _ = writeln!(
                    maps,
                    "    split_clients \"${{request_id}}\" $rollouts_w{i} {{\n        {}.{:02}% canary;\n        * stable;\n    }}",
                    bp / 100,
                    bp % 100
                );
                let _ = write!(sources, "${{rollouts_w{i}}}");
            }
        }
        if sources == "stable" || sources == "canary" {
            let to = if sources == "canary" {
                canary_upstream
            } else {
                stable
            };
            routes.push(Route::Upstream(to));
            splits.push(Some(bp));
            continue;
        }
        let _ = writeln!(
            maps,
            "    map \"{sources}\" $rollouts_to{i} {{\n        default {stable};\n        \"~^canary\" {canary_upstream};\n    }}"
        );
        http.push_str(&maps);
        routes.push(Route::Split(i));
        splits.push(Some(bp));
    }

    // Servers: the catch-all first (default_server), then one per host.
    let mut hosts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    hosts.entry("_").or_default();
    for (i, l) in plan.locations.iter().enumerate() {
        hosts.entry(l.host.as_str()).or_default().push(i);
    }
    let served_conf_path = dir.join("served.conf");
    for (host, indices) in &hosts {
        let default = if *host == "_" { " default_server" } else { "" };
        let _ = writeln!(
            http,
            "    server {{\n        listen 127.0.0.1:{port}{default};\n        server_name {};",
            quoted(host)
        );
        let _ = writeln!(
            http,
            "        include {};",
            quoted(&served_conf_path.to_string_lossy())
        );
        let exact: BTreeSet<&str> = indices
            .iter()
            .map(|&i| &plan.locations[i])
            .filter(|l| l.path_type == "Exact")
            .map(|l| l.path.as_str())
            .collect();
        let mut written: BTreeSet<String> = BTreeSet::new();
        written.insert(format!("= {SERVED_PATH}"));
        for &i in indices {
            let l = &plan.locations[i];
            let mut names = Vec::new();
            match l.path_type.as_str() {
                "Exact" => names.push(format!("= {}", l.path)),
                "Prefix" if l.path == "/" => names.push("/".to_string()),
                "Prefix" => {
                    let prefix = if l.path.ends_with('/') {
                        l.path.clone()
                    } else {
                        format!("{}/", l.path)
                    };
                    names.push(prefix);
                    if !exact.contains(l.path.as_str()) {
                        names.push(format!("= {}", l.path));
                    }
                }
                _ => names.push(l.path.clone()),
            }
            for name in names {
                if !written.insert(name.clone()) {
                    notes
                        .entry(i)
                        .or_default()
                        .push(format!("location {name} is already served by another path"));
                    continue;
                }
                let (modifier, path) = match name.strip_prefix("= ") {
                    Some(p) => ("= ", p),
                    None => ("", name.as_str()),
                };
                let body = match &routes[i] {
                    Route::Unavailable => "return 503;".to_string(),
                    Route::Upstream(u) => format!("proxy_pass http://{u};"),
                    Route::Split(n) => format!("proxy_pass http://$rollouts_to{n};"),
                };
                let _ = writeln!(
                    http,
                    "        location {modifier}{} {{ {body} }}",
                    quoted(path)
                );
            }
        }
        if !written.contains("/") {
            http.push_str("        location / { return 404; }\n");
        }
        http.push_str("    }\n");
    }

    let served = served_json(plan, generation, &notes, &splits);
    Config {
        nginx_conf: wrap(&http, dir, generation),
        served_conf: served_location(&served),
    }
}

/// The JSON published at `/.rollouts/served`.
fn served_json(
    plan: &Plan,
    generation: u64,
    notes: &BTreeMap<usize, Vec<String>>,
    splits: &[Option<i64>],
) -> Value {
    let locations: Vec<Value> = plan
        .locations
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let canary = l.canary.as_ref().map(|c| {
                let p = &c.policy;
                let split = splits[i].map(|bp| format!("{}.{:02}%", bp / 100, bp % 100));
                json!({"ingress": c.ingress, "service": c.backend.service, "endpoints": c.backend.ports.len(),
                       "weight": p.weight, "total": p.total, "split": split, "header": p.header,
                       "headerValue": p.header_value, "headerPattern": p.header_pattern, "cookie": p.cookie})
            });
            json!({"host": l.host, "path": l.path, "pathType": l.path_type, "namespace": l.namespace,
                   "ingress": l.ingress, "stable": {"service": l.stable.service, "endpoints": l.stable.ports.len()},
                   "canary": canary, "notes": notes.get(&i).cloned().unwrap_or_default()})
        })
        .collect();
    json!({"proxy": "nginx", "instance": served::instance(), "generation": generation, "locations": locations, "ignored": plan.ignored})
}

/// The `location = /.rollouts/served` block: the JSON in `set` chunks (a configuration token
/// is limited to 4 KiB), `$` written as `${rollouts_dollar}`.
fn served_location(served: &Value) -> String {
    let text = served.to_string();
    let mut chunks = vec![String::new()];
    for c in text.chars() {
        let piece = match c {
            '\\' => "\\\\".to_string(),
            '\'' => "\\'".to_string(),
            '$' => "${rollouts_dollar}".to_string(),
            c => c.to_string(),
        };
        if chunks
            .last()
            .is_some_and(|last| last.len() + piece.len() > 3000)
        {
            chunks.push(String::new());
        }
        if let Some(last) = chunks.last_mut() {
            last.push_str(&piece);
        }
    }
    let mut out = format!("location = {SERVED_PATH} {{\n    default_type application/json;\n");
    let mut all = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let _ = writeln!(out, "    set $rollouts_served{i} '{chunk}';");
        let _ = write!(all, "$rollouts_served{i}");
    }
    let _ = writeln!(out, "    return 200 \"{all}\";\n}}");
    out
}

/// The whole `nginx.conf` around the `http` block's body.
fn wrap(http: &str, dir: &Path, generation: u64) -> String {
    let d = |sub: &str| quoted(&dir.join(sub).to_string_lossy());
    format!(
        "# Written by rollouts-dataplane (generation {generation}); do not edit.\n\
daemon off;\nmaster_process on;\nworker_processes 1;\npid {pid};\nerror_log stderr warn;\n\
events {{\n    worker_connections 4096;\n}}\n\
http {{\n    access_log off;\n    default_type application/octet-stream;\n\
    client_body_temp_path {body};\n    proxy_temp_path {proxy};\n    fastcgi_temp_path {fastcgi};\n\
    uwsgi_temp_path {uwsgi};\n    scgi_temp_path {scgi};\n    proxy_max_temp_file_size 0;\n\
    server_names_hash_bucket_size 256;\n    server_names_hash_max_size 16384;\n\
    variables_hash_bucket_size 256;\n    variables_hash_max_size 65536;\n\
    map_hash_bucket_size 256;\n    keepalive_requests 100000;\n\
    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n    proxy_set_header Host $host;\n\
    proxy_connect_timeout 2s;\n    proxy_next_upstream error timeout;\n\
    geo $rollouts_dollar {{\n        default \"$\";\n    }}\n{http}}}\n",
        pid = d("nginx.pid"),
        body = d("tmp/body"),
        proxy = d("tmp/proxy"),
        fastcgi = d("tmp/fastcgi"),
        uwsgi = d("tmp/uwsgi"),
        scgi = d("tmp/scgi"),
    )
}

/// nginx as a child process (master + one worker), started with the first configuration and
/// reloaded (`nginx -s reload`) with every later one.
pub struct Nginx {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Nginx {
    pub fn new(bin: PathBuf, dir: PathBuf, port: u16) -> Nginx {
        Nginx {
            bin,
            dir,
            port,
            child: None,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-e", "stderr"]);
        command.stdin(Stdio::null());
        command
    }

    /// Writes `config` into the state dir, checked with `nginx -t` first.
    async fn install(&self, config: &Config) -> Result<(), Error> {
        let dir = &self.dir;
        tokio::fs::create_dir_all(dir.join("tmp"))
            .await
            .map_err(|e| Error::io(dir, e))?;
        served::write_atomically(&dir.join("served.conf"), config.served_conf.as_bytes()).await?;
        let candidate = dir.join("nginx.conf.new");
        tokio::fs::write(&candidate, &config.nginx_conf)
            .await
            .map_err(|e| Error::io(&candidate, e))?;
        let mut test = Command::new(&self.bin);
        test.arg("-t")
            .arg("-q")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&candidate)
            .args(["-e", "stderr"]);
        let test = test
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::io(&self.bin, e))?;
        if !test.status.success() {
            return Err(Error::Proxy(format!(
                "nginx -t refused the configuration ({}): {}",
                candidate.display(),
                String::from_utf8_lossy(&test.stderr).trim()
            )));
        }
        let conf = dir.join("nginx.conf");
        tokio::fs::rename(&candidate, &conf)
            .await
            .map_err(|e| Error::io(&conf, e))
    }
}

impl Proxy for Nginx {
    type Config = Config;

    fn render(&self, snapshot: &Snapshot, generation: u64) -> Config {
        let endpoints = Endpoints::of(snapshot);
        let plan = crate::ingress::plan(snapshot.ingresses.iter().map(|i| i.as_ref()), &endpoints);
        render(&plan, self.port, &self.dir, generation)
    }

    /// Installs `config` and starts or reloads nginx; returns once it serves `generation`.
    async fn apply(&mut self, config: &Config, generation: u64) -> Result<(), Error> {
        self.install(config).await?;
        if self.child.is_none() {
            let child = self
                .command()
                .spawn()
                .map_err(|e| Error::io(&self.bin, e))?;
            info!(pid = child.id(), port = self.port, "nginx started");
            served::write_pid(&self.dir, child.id()).await?;
            self.child = Some(child);
        } else {
            let status = self
                .command()
                .args(["-s", "reload"])
                .status()
                .await
                .map_err(|e| Error::io(&self.bin, e))?;
            if !status.success() {
                return Err(Error::Proxy(format!("nginx -s reload failed ({status})")));
            }
        }
        served::wait_generation_of(
            self.child.as_mut(),
            self.port,
            generation,
            Duration::from_secs(20),
        )
        .await
    }

    fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Fast shutdown (the master stops its workers); killed after 5 s.
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Err(e) = self.command().args(["-s", "stop"]).status().await {
            warn!(error = %e, "nginx -s stop failed");
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            warn!("nginx did not stop within 5 s; killing it");
            let _ = child.kill().await;
        }
    }
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
