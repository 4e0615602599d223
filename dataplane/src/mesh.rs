//! Our reading of the service-mesh routing objects, served by the same Envoy as the Gateway
//! API (sources: istio/api `networking/v1alpha3/virtual_service.proto`,
//! `destination_rule.proto`; servicemeshinterface/smi-spec `traffic-split/v1alpha1..3`).
//!
//! Pure: VirtualServices, DestinationRules, TrafficSplits and endpoints in, virtual hosts
//! out, added to the Gateway API plan (a domain both name gets the Gateway API's entries
//! first).
//!
//! - **VirtualService**: a virtual host per entry of `hosts`; its `http` routes in order,
//!   the first that matches serves (Istio's first-match order); a route's `match` entries are
//!   alternatives (one entry per match; none: every request), each the AND of `uri`
//!   (exact / prefix — a plain string prefix — / regex), `headers` (same kinds; names
//!   case-insensitive) and `method` (exact). A route's destinations share the requests by
//!   `weight` (a lone destination without one gets all of them; weight 0 none). A
//!   destination's `host` names a Service: `name` in the VirtualService's namespace, or
//!   `name.namespace[.svc.cluster.local]`; with a `subset`, only the Service's ready pods
//!   that also carry the subset's labels (the DestinationRule of that host, in the
//!   Service's namespace) — a subset that does not exist answers 500 for its share.
//!   `mirror` sends a copy of `mirrorPercentage.value` % (default 100) of the requests to its
//!   destination (answers dropped). TLS and TCP routes are not served (HTTP only here).
//! - **TrafficSplit**: requests for the root Service (`spec.service`, by the names a client
//!   uses: `svc`, `svc.ns`, `svc.ns.svc.cluster.local`) are shared among the backends by
//!   weight (v1alpha1 quantities such as `"10"` or `"500m"`, or integers).
//! - Something Envoy cannot carry (a method match that is not exact, a regular expression
//!   that does not compile) leaves the whole object out, listed under `ignored`.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use kube::ResourceExt;
use serde::Deserialize;

use crate::cluster::{Endpoints, Snapshot};
use crate::gateway::{Backend, Entry, Ignored, Match, Mirror, PathMatch, Plan, ValueMatch, VirtualHost};

type Labels = BTreeMap<String, String>;

#[derive(Debug, Default, Deserialize)]
struct VirtualServiceSpec {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    http: Vec<HttpRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRoute {
    name: Option<String>,
    #[serde(default, rename = "match")]
    matches: Vec<HttpMatch>,
    #[serde(default)]
    route: Vec<RouteDestination>,
    mirror: Option<Destination>,
    mirror_percentage: Option<Percent>,
}

#[derive(Debug, Default, Deserialize)]
struct HttpMatch {
    uri: Option<StringMatch>,
    #[serde(default)]
    headers: BTreeMap<String, StringMatch>,
    method: Option<StringMatch>,
}

#[derive(Debug, Default, Deserialize)]
struct StringMatch {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RouteDestination {
    destination: Destination,
    weight: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct Destination {
    host: String,
    subset: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Percent {
    value: f64,
}

#[derive(Debug, Default, Deserialize)]
struct DestinationRuleSpec {
    #[serde(default)]
    host: String,
    #[serde(default)]
    subsets: Vec<Subset>,
}

#[derive(Debug, Default, Deserialize)]
struct Subset {
    name: String,
    #[serde(default)]
    labels: Labels,
}

#[derive(Debug, Default, Deserialize)]
struct TrafficSplitSpec {
    service: String,
    #[serde(default)]
    backends: Vec<SplitBackend>,
}

#[derive(Debug, Default, Deserialize)]
struct SplitBackend {
    service: String,
    weight: Option<serde_json::Value>,
}

fn spec<T: for<'de> Deserialize<'de> + Default>(object: &DynamicObject) -> Result<T, String> {
    match object.data.get("spec") {
        Some(spec) => serde_json::from_value(spec.clone()).map_err(|e| format!("spec: {e}")),
        None => Ok(T::default()),
    }
}

fn key(object: &DynamicObject) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

/// The Service a mesh host names: `name` (in `namespace`) or `name.namespace[...]`.
fn service_of(host: &str, namespace: &str) -> (String, String) {
    let mut parts = host.split('.');
    let name = parts.next().unwrap_or_default().to_string();
    let ns = parts.next().map_or_else(|| namespace.to_string(), str::to_string);
    (ns, name)
}

/// A string match as Envoy carries it: `(kind, value)`.
fn string_match(m: &StringMatch) -> Result<(String, String), String> {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), None, None) => Ok(("Exact".into(), e.clone())),
        (None, Some(p), None) => Ok(("Prefix".into(), p.clone())),
        (None, None, Some(r)) => {
            regex::Regex::new(r).map_err(|e| format!("regular expression {r:?}: {e}"))?;
            Ok(("RegularExpression".into(), r.clone()))
        }
        _ => Err("a string match needs exactly one of exact, prefix, regex".into()),
    }
}

fn route_match(m: &HttpMatch) -> Result<Match, String> {
    let path = match &m.uri {
        None => PathMatch::Prefix("/".into()),
        Some(uri) => match string_match(uri)? {
            (kind, v) if kind == "Exact" => PathMatch::Exact(v),
            (kind, v) if kind == "Prefix" => PathMatch::Prefix(v),
            (_, v) => PathMatch::RegularExpression(v),
        },
    };
    let mut headers = Vec::new();
    for (name, value) in &m.headers {
        let (kind, value) = string_match(value)?;
        headers.push(ValueMatch { name: name.to_ascii_lowercase(), kind, value });
    }
    let method = match &m.method {
        None => None,
        Some(StringMatch { exact: Some(e), prefix: None, regex: None }) => Some(e.clone()),
        Some(_) => return Err("only exact method matches are served here".into()),
    };
    Ok(Match { path, headers, query_params: Vec::new(), method })
}

/// The DestinationRules by the Service their host names.
fn subsets_by_service(rules: &[std::sync::Arc<DynamicObject>]) -> BTreeMap<(String, String), Vec<Subset>> {
    let mut out: BTreeMap<(String, String), Vec<Subset>> = BTreeMap::new();
    for rule in rules {
        let Ok(spec) = spec::<DestinationRuleSpec>(rule) else { continue };
        let ns = rule.namespace().unwrap_or_default();
        out.entry(service_of(&spec.host, &ns)).or_default().extend(spec.subsets);
    }
    out
}

/// A destination as a backend: its Service (or subset) and ready ports, or why not.
fn backend(d: &Destination, namespace: &str, weight: u32, subsets: &BTreeMap<(String, String), Vec<Subset>>, endpoints: &Endpoints) -> Backend {
    let (ns, service) = service_of(&d.host, namespace);
    let (name, result) = match d.subset.as_deref().filter(|s| !s.is_empty()) {
        None => (service.clone(), endpoints.get(&ns, &service).map(<[u16]>::to_vec).ok_or_else(|| format!("Service {service} not found"))),
        Some(subset) => {
            let labels = subsets.get(&(ns.clone(), service.clone())).and_then(|s| s.iter().find(|s| s.name == subset));
            let result = match labels {
                None => Err(format!("subset {subset} of {service} not found in a DestinationRule")),
                Some(s) => endpoints.subset(&ns, &service, &s.labels).ok_or_else(|| format!("Service {service} not found")),
            };
            (format!("{service}/{subset}"), result)
        }
    };
    let (ports, invalid) = match result {
        Ok(p) => (Some(p), None),
        Err(why) => (None, Some(why)),
    };
    Backend { namespace: ns, service: name, weight, ports, invalid }
}

fn virtual_service(
    object: &DynamicObject,
    subsets: &BTreeMap<(String, String), Vec<Subset>>,
    endpoints: &Endpoints,
) -> Result<(Vec<String>, Vec<Entry>), String> {
    let spec: VirtualServiceSpec = spec(object)?;
    let namespace = object.namespace().unwrap_or_default();
    let mut entries = Vec::new();
    for (index, route) in spec.http.iter().enumerate() {
        let lone = route.route.len() == 1;
        let backends: Vec<Backend> = route
            .route
            .iter()
            .filter_map(|d| {
                let weight = d.weight.unwrap_or(if lone { 100 } else { 0 }).max(0);
                let weight = u32::try_from(weight).unwrap_or(u32::MAX);
                (weight > 0).then(|| backend(&d.destination, &namespace, weight, subsets, endpoints))
            })
            .collect();
        let mirror = route.mirror.as_ref().and_then(|m| {
            let b = backend(m, &namespace, 1, subsets, endpoints);
            let percent = route.mirror_percentage.as_ref().map_or(100.0, |p| p.value).clamp(0.0, 100.0);
            Some(Mirror {
                namespace: b.namespace,
                service: b.service,
                per_million: (percent * 10_000.0).round() as u32,
                ports: b.ports?,
            })
        });
        let matches = if route.matches.is_empty() { vec![HttpMatch::default()] } else { Vec::new() };
        for m in route.matches.iter().chain(&matches) {
            entries.push(Entry {
                route: key(object),
                rule: index,
                rule_name: route.name.clone(),
                matches: route_match(m)?,
                backends: backends.clone(),
                mirror: mirror.clone(),
            });
        }
    }
    Ok((spec.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(), entries))
}

fn traffic_split(object: &DynamicObject, endpoints: &Endpoints) -> Result<(Vec<String>, Entry), String> {
    let spec: TrafficSplitSpec = spec(object)?;
    let namespace = object.namespace().unwrap_or_default();
    let mut backends = Vec::new();
    for b in &spec.backends {
        let weight = b.weight.as_ref().and_then(weight_value).unwrap_or(0).max(0);
        let weight = u32::try_from(weight).unwrap_or(u32::MAX);
        if weight > 0 {
            let d = Destination { host: b.service.clone(), subset: None };
            backends.push(backend(&d, &namespace, weight, &BTreeMap::new(), endpoints));
        }
    }
    let root = &spec.service;
    let domains = vec![root.clone(), format!("{root}.{namespace}"), format!("{root}.{namespace}.svc.cluster.local")];
    let entry = Entry {
        route: key(object),
        rule: 0,
        rule_name: None,
        matches: Match { path: PathMatch::Prefix("/".into()), headers: Vec::new(), query_params: Vec::new(), method: None },
        backends,
        mirror: None,
    };
    Ok((domains, entry))
}

/// A TrafficSplit weight in whole units: an integer, or a quantity (`"10"`, `"500m"`).
pub fn weight_value(weight: &serde_json::Value) -> Option<i64> {
    match weight {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => match s.strip_suffix('m') {
            Some(milli) => milli.parse::<i64>().ok().map(|m| m / 1000),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// Objects in the order they are served: oldest first, then by namespace and name.
fn ordered(objects: &[std::sync::Arc<DynamicObject>]) -> Vec<&DynamicObject> {
    let mut out: Vec<&DynamicObject> = objects.iter().map(|o| o.as_ref()).collect();
    out.sort_by_key(|o| (o.metadata.creation_timestamp.clone(), key(o)));
    out
}

/// Adds the virtual hosts of the snapshot's VirtualServices and TrafficSplits to `plan`.
pub fn add_to(plan: &mut Plan, snapshot: &Snapshot, endpoints: &Endpoints) {
    let subsets = subsets_by_service(&snapshot.destination_rules);
    let mut hosts: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for object in ordered(&snapshot.virtual_services) {
        match virtual_service(object, &subsets, endpoints) {
            Ok((domains, entries)) => {
                for d in domains {
                    hosts.entry(d).or_default().extend(entries.iter().cloned());
                }
            }
            Err(reason) => plan.ignored.push(Ignored { route: format!("VirtualService {}", key(object)), reason }),
        }
    }
    for object in ordered(&snapshot.traffic_splits) {
        match traffic_split(object, endpoints) {
            Ok((domains, entry)) => {
                for d in domains {
                    hosts.entry(d).or_default().push(entry.clone());
                }
            }
            Err(reason) => plan.ignored.push(Ignored { route: format!("TrafficSplit {}", key(object)), reason }),
        }
    }
    for (domain, entries) in hosts {
        match plan.virtual_hosts.iter_mut().find(|v| v.domain == domain) {
            Some(v) => v.entries.extend(entries),
            None => plan.virtual_hosts.push(VirtualHost { domain, entries }),
        }
    }
}

#[cfg(test)]
#[path = "mesh_tests.rs"]
mod tests;
