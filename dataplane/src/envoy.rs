//! The Envoy configuration that carries out a Gateway API plan (`gateway.rs`), with the
//! virtual hosts of the Istio VirtualServices and SMI TrafficSplits added (`mesh.rs`).
//!
//! A static bootstrap (written once) holds the listener on `127.0.0.1:<port>`; its routes come
//! from `xds/rds.json` and its clusters from `xds/cds.json`, read from files
//! (`path_config_source` with `watched_directory`): each is replaced by an atomic rename, the
//! clusters first, so that a route never names a cluster Envoy does not know yet. A cluster
//! the new routes no longer name (a backend whose weight went to 0) goes only once Envoy
//! serves them: until then the routes it still serves may send requests there (they would
//! answer 500, `cluster_not_found_response_code`). Nothing restarts, and a route change
//! drains no connection.
//!
//! - a virtual host per hostname (`*` for routes without hostnames), `strip_any_host_port`;
//! - a route per match, in precedence order: `path` / `path_separated_prefix` (element-wise
//!   PathPrefix; `prefix: /` for `/`) / `safe_regex`; header and query matches; the method as
//!   `:method`;
//! - one cluster per Service, `STATIC`, its ready pods at `127.0.0.1:<port>` (no endpoint:
//!   Envoy answers 503); `weighted_clusters` for several backends (Envoy draws at random per
//!   request); an invalid backend names a cluster that does not exist and
//!   `cluster_not_found_response_code: INTERNAL_SERVER_ERROR` makes its share 500; no backend:
//!   a direct 500;
//! - `request_mirror_policies` with a `runtime_fraction` per million for RequestMirror;
//! - first in every virtual host, `GET /.rollouts/served`: a direct response with the JSON of
//!   the plan and its generation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tracing::info;

use crate::cluster::{Endpoints, Snapshot};
use crate::gateway::{self, Entry, PathMatch, Plan, ValueMatch};
use crate::served::{self, SERVED_PATH};
use crate::{Error, Proxy};

const ROUTE_CONFIG: &str = "rollouts";

/// The cluster name of a Service.
fn cluster_name(namespace: &str, service: &str) -> String {
    format!("{namespace}/{service}")
}

/// The rendered dynamic configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The CDS file's JSON.
    pub clusters: Value,
    /// The RDS file's JSON.
    pub routes: Value,
}

fn string_match(kind: &str, value: &str) -> Value {
    match kind {
        "RegularExpression" => json!({"safe_regex": {"regex": value}}),
        "Prefix" => json!({"prefix": value}),
        _ => json!({"exact": value}),
    }
}

fn route_match(entry: &Entry) -> Value {
    let m = &entry.matches;
    let mut out = match &m.path {
        PathMatch::Exact(p) => json!({"path": p}),
        PathMatch::PathPrefix(p) if p == "/" => json!({"prefix": "/"}),
        PathMatch::PathPrefix(p) => json!({"path_separated_prefix": p}),
        PathMatch::RegularExpression(p) => json!({"safe_regex": {"regex": p}}),
        PathMatch::Prefix(p) => json!({"prefix": p}),
    };
    let header =
        |v: &ValueMatch| json!({"name": v.name, "string_match": string_match(&v.kind, &v.value)});
    let mut headers: Vec<Value> = m.headers.iter().map(header).collect();
    if let Some(method) = &m.method {
        headers.push(json!({"name": ":method", "string_match": {"exact": method}}));
    }
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    if !m.query_params.is_empty() {
        out["query_parameters"] = json!(m.query_params.iter().map(header).collect::<Vec<_>>());
    }
    out
}

fn route_action(entry: &Entry) -> Value {
    let name = |b: &gateway::Backend| match b.invalid {
        Some(_) => format!("invalid:{}", cluster_name(&b.namespace, &b.service)),
        None => cluster_name(&b.namespace, &b.service),
    };
    let mut action = match entry.backends.as_slice() {
        [] => return json!({"direct_response": {"status": 500}}),
        [one] => json!({"cluster": name(one)}),
        several => {
            let clusters: Vec<Value> = several
                .iter()
                .map(|b| json!({"name": name(b), "weight": b.weight}))
                .collect();
            json!({"weighted_clusters": {"clusters": clusters}})
        }
    };
    action["cluster_not_found_response_code"] = json!("INTERNAL_SERVER_ERROR");
    if let Some(m) = &entry.mirror {
        action["request_mirror_policies"] = json!([{
            "cluster": cluster_name(&m.namespace, &m.service),
            "runtime_fraction": {"default_value": {"numerator": m.per_million, "denominator": "MILLION"}},
        }]);
    }
    json!({"route": action})
}

/// Renders the dynamic configuration for `plan`, stamped with `generation`.
pub fn render(plan: &Plan, generation: u64) -> Config {
    let clusters: Vec<Value> = gateway::services(plan)
        .into_iter()
        .map(|((namespace, service), ports)| {
            let name = cluster_name(&namespace, &service);
            let endpoints: Vec<Value> = ports
                .iter()
                .map(|p| json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}))
                .collect();
            json!({
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": name,
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
            })
        })
        .collect();
    let published = json!({"proxy": "envoy", "instance": served::instance(), "generation": generation, "virtualHosts": plan.virtual_hosts, "ignored": plan.ignored});
    let served_route = json!({
        "match": {"path": SERVED_PATH},
        "direct_response": {"status": 200, "body": {"inline_string": published.to_string()}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"},
                                      "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
    });
    let mut virtual_hosts: Vec<Value> = plan
        .virtual_hosts
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut routes = vec![served_route.clone()];
            routes.extend(v.entries.iter().map(|e| {
                let mut route = route_action(e);
                route["match"] = route_match(e);
                route["name"] = json!(format!("{} rule {}", e.route, e.rule));
                route
            }));
            json!({"name": format!("vh{i} {}", v.domain), "domains": [v.domain], "routes": routes})
        })
        .collect();
    if !plan.virtual_hosts.iter().any(|v| v.domain == "*") {
        virtual_hosts
            .push(json!({"name": "catch-all", "domains": ["*"], "routes": [served_route]}));
    }
    let route_configuration = json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": ROUTE_CONFIG,
        "validate_clusters": false,
        "max_direct_response_body_size_bytes": 16 * 1024 * 1024,
        "virtual_hosts": virtual_hosts,
    });
    Config {
        clusters: json!({"version_info": generation.to_string(), "resources": clusters}),
        routes: json!({"version_info": generation.to_string(), "resources": [route_configuration]}),
    }
}

/// The clusters of `old` that `new` drops, added to `new` (`None` when it drops none): what
/// Envoy must know while it may still serve the routes that named them.
fn with_dropped(old: &Value, new: &Value) -> Option<Value> {
    let names = |v: &Value| -> Vec<Value> {
        v["resources"].as_array().into_iter().flatten().map(|c| c["name"].clone()).collect()
    };
    let kept = names(new);
    let dropped: Vec<Value> = old["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| !kept.contains(&c["name"]))
        .cloned()
        .collect();
    if dropped.is_empty() {
        return None;
    }
    let mut both = new.clone();
    if let Some(resources) = both["resources"].as_array_mut() {
        resources.extend(dropped);
    }
    Some(both)
}

/// The bootstrap: the listener, and where the routes and clusters come from.
fn bootstrap(dir: &Path, port: u16) -> Value {
    let xds = dir.join("xds");
    let source = |file: &str| {
        json!({"resource_api_version": "V3", "path_config_source": {
            "path": xds.join(file), "watched_directory": {"path": xds}}})
    };
    json!({
        "node": {"id": "rollouts-dataplane", "cluster": "rollouts-dataplane"},
        "dynamic_resources": {"cds_config": source("cds.json")},
        "static_resources": {"listeners": [{
            "name": "rollouts",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "rollouts",
                    "strip_any_host_port": true,
                    "rds": {"route_config_name": ROUTE_CONFIG, "config_source": source("rds.json")},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                },
            }]}],
        }]},
    })
}

/// Envoy as a child process, started with the first configuration; later ones are picked up
/// from the files.
pub struct Envoy {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The clusters last written (`cds.json`'s JSON): a bridge until the routes are served.
    clusters: Option<Value>,
}

impl Envoy {
    pub fn new(bin: PathBuf, dir: PathBuf, port: u16) -> Envoy {
        Envoy {
            bin,
            dir,
            port,
            child: None,
            clusters: None,
        }
    }

    async fn write(&self, file: &str, value: &Value) -> Result<(), Error> {
        // Written next to the watched directory, then renamed into it: one move event.
        let tmp = self.dir.join(format!("{file}.tmp"));
        tokio::fs::write(&tmp, value.to_string())
            .await
            .map_err(|e| Error::io(&tmp, e))?;
        let path = self.dir.join("xds").join(file);
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| Error::io(&path, e))
    }
}

impl Proxy for Envoy {
    type Config = Config;

    fn render(&self, snapshot: &Snapshot, generation: u64) -> Config {
        let endpoints = Endpoints::of(snapshot);
        let mut plan = gateway::plan(snapshot.routes.iter().map(|r| r.as_ref()), &endpoints);
        crate::mesh::add_to(&mut plan, snapshot, &endpoints);
        render(&plan, generation)
    }

    async fn apply(&mut self, config: &Config, generation: u64) -> Result<(), Error> {
        let xds = self.dir.join("xds");
        tokio::fs::create_dir_all(&xds)
            .await
            .map_err(|e| Error::io(&xds, e))?;
        // Make before break: the clusters the served routes name stay until the new routes
        // are served.
        let bridge = self
            .clusters
            .as_ref()
            .and_then(|old| with_dropped(old, &config.clusters));
        let first = bridge.unwrap_or_else(|| config.clusters.clone());
        self.write("cds.json", &first).await?;
        // What is on disk, should the wait below fail: the next bridge starts from it.
        self.clusters = Some(first);
        self.write("rds.json", &config.routes).await?;
        if self.child.is_none() {
            let path = self.dir.join("bootstrap.json");
            served::write_atomically(
                &path,
                bootstrap(&self.dir, self.port).to_string().as_bytes(),
            )
            .await?;
            let child = Command::new(&self.bin)
                .arg("-c")
                .arg(&path)
                .args([
                    "--disable-hot-restart",
                    "--concurrency",
                    "2",
                    "--log-level",
                    "warn",
                ])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| Error::io(&self.bin, e))?;
            info!(pid = child.id(), port = self.port, "envoy started");
            served::write_pid(&self.dir, child.id()).await?;
            self.child = Some(child);
        }
        served::wait_generation_of(
            self.child.as_mut(),
            self.port,
            generation,
            Duration::from_secs(30),
        )
        .await?;
        if self.clusters.as_ref() != Some(&config.clusters) {
            self.write("cds.json", &config.clusters).await?;
            self.clusters = Some(config.clusters.clone());
        }
        Ok(())
    }

    fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

#[cfg(test)]
#[path = "envoy_tests.rs"]
mod tests;
