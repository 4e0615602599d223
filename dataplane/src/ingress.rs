//! Our reading of how ingress-nginx serves Ingresses, canaries included (sources:
//! kubernetes/ingress-nginx `internal/ingress/controller/controller.go` — `getBackendServers`,
//! `mergeAlternativeBackends`, `updateServerLocations` —, `internal/ingress/controller/store`
//! — `sortIngressSlice` —, `internal/ingress/annotations/canary/main.go` and
//! `rootfs/etc/nginx/lua/balancer.lua` — `route_to_alternative_balancer`, `get_balancer`).
//!
//! Pure: Ingresses and endpoints in, the locations to serve out. The nginx configuration that
//! carries them out is `nginx.rs`'s.
//!
//! - **Class.** An Ingress is ours when its class — the `kubernetes.io/ingress.class`
//!   annotation when present, else `spec.ingressClassName` — is `nginx`, or when it has none
//!   (ingress-nginx with `--watch-ingress-without-class`). No IngressClass object is needed.
//! - **Order.** Ingresses by creation time, then by `namespace/name` *descending* (as
//!   ingress-nginx sorts them); for each host (`_` when none) + path (`/` when empty) +
//!   pathType, the first non-canary Ingress serves it.
//! - **Canary.** `nginx.ingress.kubernetes.io/canary: "true"` (Go's `ParseBool`) makes an
//!   Ingress a canary. Canary annotations without it make the Ingress invalid ("configured but
//!   not enabled"): it is ignored altogether. A canary path is merged where host, path and
//!   pathType equal a location of a non-canary Ingress (the host must have one) and its
//!   Service differs from the location's; else it is dropped. The first canary merged into a
//!   location is the one that counts (the balancer only looks at the first alternative).
//! - **Per request** (balancer.lua): header `canary-by-header`, when the request has it: with
//!   `canary-by-header-value`, an exact match → canary, else fall through; else with
//!   `canary-by-header-pattern` (unanchored PCRE), a match → canary, a regex error → stable
//!   (stop), else fall through; else `always` → canary, `never` → stable (stop), else fall
//!   through. Then cookie `canary-by-cookie`: `always` → canary, `never` → stable, else fall
//!   through. Then the weight: canary when `math.random(T) <= weight`, `math.random(T)` being
//!   uniform in 1..=T, i.e. with probability `clamp(weight, 0, T) / T`: never with weight 0,
//!   always with weight ≥ T. `T` is `canary-weight-total` when above 100, else 100; weights and
//!   totals that do not parse as integers are 0 and 100.
//! - **Endpoints.** A location whose (stable) Service has no ready endpoint answers 503, canary
//!   or not (`get_balancer` finds no balancer). A canary without ready endpoints gets nothing:
//!   every request goes to the stable Service ("no alternative balancer").
//!
//! Not modelled: `spec.defaultBackend`, session affinity, `use-regex`, rewrites, TLS, and
//! ingress-nginx's habit of attaching a canary to the stable *upstream* (so that other
//! locations with the same stable Service would be split too): here a canary applies to the
//! location it was merged into only. A Service used by a canary Ingress is not withdrawn from
//! the non-canary Ingresses that use it either.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use serde::Serialize;

use crate::cluster::Endpoints;

/// The prefix of ingress-nginx's annotations.
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// The ingress class we serve.
pub const CLASS: &str = "nginx";

/// What the canary of a location does with each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryPolicy {
    /// `canary-weight` (0 when absent or not an integer).
    pub weight: i64,
    /// The effective total: `canary-weight-total` when above 100, else 100.
    pub total: i64,
    /// `canary-by-header`, when set.
    pub header: Option<String>,
    /// `canary-by-header-value`, when set.
    pub header_value: Option<String>,
    /// `canary-by-header-pattern`, when set (ignored when a value is set).
    pub header_pattern: Option<String>,
    /// `canary-by-cookie`, when set.
    pub cookie: Option<String>,
}

/// A Service behind a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub service: String,
    /// 127.0.0.1 ports of the Service's ready pods.
    pub ports: Vec<u16>,
}

/// The canary merged into a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// The canary Ingress, `namespace/name`.
    pub ingress: String,
    pub backend: Backend,
    pub policy: CanaryPolicy,
}

/// One host + path + pathType served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// The host, `_` for rules without one (the catch-all server).
    pub host: String,
    pub path: String,
    /// `Exact`, `Prefix` or `ImplementationSpecific`.
    pub path_type: String,
    pub namespace: String,
    /// The Ingress that serves it, `namespace/name`.
    pub ingress: String,
    pub stable: Backend,
    pub canary: Option<Canary>,
}

/// An Ingress (or a part of one) that is not served, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub ingress: String,
    pub reason: String,
}

/// What the proxy must serve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub locations: Vec<Location>,
    pub ignored: Vec<Ignored>,
}

/// Whether an Ingress is of our class (or of none).
pub fn is_ours(ingress: &Ingress) -> bool {
    let annotated = ingress.annotations().get("kubernetes.io/ingress.class");
    let named = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_ref());
    match annotated.or(named) {
        Some(class) => class == CLASS,
        None => true,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The canary settings of an Ingress: `Ok(None)` for a plain Ingress, `Err` for an invalid one.
pub fn canary_policy(ingress: &Ingress) -> Result<Option<CanaryPolicy>, String> {
    let annotations = ingress.annotations();
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let int = |name: &str| get(name).and_then(|v| v.trim().parse::<i64>().ok());
    let enabled = get("canary").and_then(|v| parse_bool(&v)).unwrap_or(false);
    let weight = int("canary-weight").unwrap_or(0);
    let total_annotation = int("canary-weight-total").unwrap_or(100);
    let policy = CanaryPolicy {
        weight,
        total: if total_annotation > 100 {
            total_annotation
        } else {
            100
        },
        header: get("canary-by-header"),
        header_value: get("canary-by-header-value"),
        header_pattern: get("canary-by-header-pattern"),
        cookie: get("canary-by-cookie"),
    };
    if enabled {
        return Ok(Some(policy));
    }
    let configured = policy.weight > 0
        || policy.header.is_some()
        || policy.header_value.is_some()
        || policy.header_pattern.is_some()
        || policy.cookie.is_some();
    if configured {
        return Err("canary annotations configured but not enabled".into());
    }
    Ok(None)
}

/// The ingress-nginx order: creation time, then `namespace/name` descending.
fn sort(ingresses: &mut [&Ingress]) {
    let key = |i: &Ingress| format!("{}/{}", i.namespace().unwrap_or_default(), i.name_any());
    ingresses.sort_by(|a, b| {
        let (ta, tb) = (
            &a.metadata.creation_timestamp,
            &b.metadata.creation_timestamp,
        );
        ta.cmp(tb).then_with(|| key(b).cmp(&key(a)))
    });
}

/// A path of an Ingress rule with a Service backend.
struct PathRef {
    host: String,
    path: String,
    path_type: String,
    service: String,
}

fn paths(ingress: &Ingress) -> Vec<PathRef> {
    let rules = ingress.spec.iter().flat_map(|s| s.rules.iter().flatten());
    let mut out = Vec::new();
    for rule in rules {
        let host = rule
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "_".into());
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let Some(service) = path.backend.service.as_ref() else {
                continue;
            };
            out.push(PathRef {
                host: host.clone(),
                path: path
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into()),
                path_type: path.path_type.clone(),
                service: service.name.clone(),
            });
        }
    }
    out
}

/// The locations to serve for these Ingresses, given the cluster's endpoints.
pub fn plan<'a>(ingresses: impl IntoIterator<Item = &'a Ingress>, endpoints: &Endpoints) -> Plan {
    let mut plan = Plan::default();
    let mut ours = Vec::new();
    for ingress in ingresses {
        if !is_ours(ingress) {
            continue;
        }
        match canary_policy(ingress) {
            Ok(policy) => ours.push((ingress, policy)),
            Err(reason) => plan.ignored.push(Ignored {
                ingress: name(ingress),
                reason,
            }),
        }
    }
    let mut order: Vec<&Ingress> = ours.iter().map(|(i, _)| *i).collect();
    sort(&mut order);
    let policies: BTreeMap<String, Option<CanaryPolicy>> =
        ours.iter().map(|(i, p)| (name(i), p.clone())).collect();
    let backend = |namespace: &str, service: &str| Backend {
        service: service.to_string(),
        ports: endpoints
            .get(namespace, service)
            .map(<[u16]>::to_vec)
            .unwrap_or_default(),
    };

    // Non-canary Ingresses first, in order; the first one to claim a host+path+pathType wins.
    let mut index: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for ingress in &order {
        if policies[&name(ingress)].is_some() {
            continue;
        }
        let namespace = ingress.namespace().unwrap_or_default();
        for p in paths(ingress) {
            let key = (p.host.clone(), p.path.clone(), p.path_type.clone());
            if index.contains_key(&key) {
                continue;
            }
            index.insert(key, plan.locations.len());
            plan.locations.push(Location {
                host: p.host,
                path: p.path,
                path_type: p.path_type,
                namespace: namespace.clone(),
                ingress: name(ingress),
                stable: backend(&namespace, &p.service),
                canary: None,
            });
        }
    }
    let hosts: BTreeSet<String> = plan.locations.iter().map(|l| l.host.clone()).collect();

    // Then the canaries, merged into matching locations.
    for ingress in &order {
        let Some(policy) = &policies[&name(ingress)] else {
            continue;
        };
        let namespace = ingress.namespace().unwrap_or_default();
        for p in paths(ingress) {
            let key = (p.host.clone(), p.path.clone(), p.path_type.clone());
            let target = index.get(&key).map(|&i| &mut plan.locations[i]);
            let why = match target {
                None if !hosts.contains(&p.host) => {
                    Some(format!("no non-canary Ingress serves host {}", p.host))
                }
                None => Some(format!(
                    "no non-canary Ingress serves {}{} ({})",
                    p.host, p.path, p.path_type
                )),
                Some(l) if l.namespace == namespace && l.stable.service == p.service => {
                    Some(format!(
                        "{}{}: the canary Service {} is the location's own",
                        p.host, p.path, p.service
                    ))
                }
                Some(l) if l.canary.is_some() => None, // the first canary counts; the others are silent
                Some(l) => {
                    l.canary = Some(Canary {
                        ingress: name(ingress),
                        backend: backend(&namespace, &p.service),
                        policy: policy.clone(),
                    });
                    None
                }
            };
            if let Some(reason) = why {
                plan.ignored.push(Ignored {
                    ingress: name(ingress),
                    reason,
                });
            }
        }
    }
    plan.locations
        .sort_by(|a, b| (&a.host, &a.path, &a.path_type).cmp(&(&b.host, &b.path, &b.path_type)));
    plan
}

fn name(ingress: &Ingress) -> String {
    format!(
        "{}/{}",
        ingress.namespace().unwrap_or_default(),
        ingress.name_any()
    )
}

/// What a request gets at a location, per the balancer's rules, given what the request
/// carries and a draw of `math.random(T)` (1..=T). The reference the nginx configuration is
/// tested against.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Stable,
    Canary,
    /// 503: the location's Service has no ready endpoint.
    Unavailable,
}

/// A request as the canary rules see it.
#[cfg(test)]
#[derive(Debug, Default, Clone)]
pub struct Request<'a> {
    /// Request headers (names lower-case).
    pub headers: BTreeMap<String, &'a str>,
    pub cookies: BTreeMap<String, &'a str>,
}

/// The balancer's decision for a request (`draw` is `math.random(T)`, in 1..=T).
#[cfg(test)]
pub fn decide(location: &Location, request: &Request, draw: i64) -> Decision {
    if location.stable.ports.is_empty() {
        return Decision::Unavailable;
    }
    let Some(canary) = location
        .canary
        .as_ref()
        .filter(|c| !c.backend.ports.is_empty())
    else {
        return Decision::Stable;
    };
    let policy = &canary.policy;
    if let Some(value) = policy
        .header
        .as_ref()
        .and_then(|h| request.headers.get(&h.to_ascii_lowercase()))
    {
        if let Some(wanted) = &policy.header_value {
            if value == wanted {
                return Decision::Canary;
            }
        } else if let Some(pattern) = &policy.header_pattern {
            match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(value) => return Decision::Canary,
                Ok(_) => {}
                Err(_) => return Decision::Stable,
            }
        } else if *value == "always" {
            return Decision::Canary;
        } else if *value == "never" {
            return Decision::Stable;
        }
    }
    if let Some(value) = policy.cookie.as_ref().and_then(|c| request.cookies.get(c)) {
        match *value {
            "always" => return Decision::Canary,
            "never" => return Decision::Stable,
            _ => {}
        }
    }
    if draw <= policy.weight {
        Decision::Canary
    } else {
        Decision::Stable
    }
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
