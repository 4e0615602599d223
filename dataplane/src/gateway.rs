//! Our reading of Gateway API HTTPRoute semantics (sources: kubernetes-sigs/gateway-api
//! `apis/v1/httproute_types.go`, `shared_types.go`), as one Gateway that accepts every
//! HTTPRoute of every namespace (`parentRefs` are not looked at; there are no Gateway or
//! ReferenceGrant objects here).
//!
//! Pure: HTTPRoutes and endpoints in, virtual hosts with their ordered routes out. `envoy.rs`
//! writes them as Envoy configuration.
//!
//! - **Defaults** the real CRDs would have applied: no rules → one rule matching PathPrefix
//!   `/`; no matches → PathPrefix `/`; path type PathPrefix, value `/`; header and query
//!   matches Exact; backendRef group `""`, kind `Service`, namespace the route's, weight 1.
//! - **Hostnames.** A route with hostnames serves those (a `*.example.com` wildcard matches
//!   any name ending in `.example.com`, not `example.com`); one without serves every host.
//!   For a request, the rules of the routes with the most specific matching hostname come
//!   first (most characters of a non-wildcard hostname, then most characters), then the
//!   others that match it: each virtual host lists every route whose hostnames cover it.
//! - **Precedence** inside that: Exact path, then RegularExpression path (our choice: the
//!   spec leaves it to the implementation), then PathPrefix with the most characters; then a
//!   method match; then the most header matches; then the most query matches; then the
//!   oldest route, then `namespace/name` alphabetically; then rule order, then match order.
//!   The first entry that matches a request serves it (Envoy's route order). No match: 404.
//! - **Matches.** PathPrefix is element-wise (`/abc` matches `/abc`, `/abc/`, `/abc/def`, not
//!   `/abcd`; a trailing `/` of the value is ignored); Exact is case-sensitive; regular
//!   expressions are RE2 and must match the whole path, header or query value. Of several
//!   header (or query) matches of the same name (case-insensitive for headers), only the
//!   first counts.
//! - **Backends.** Each gets `weight / sum of weights` of the requests; weight 0 gets none; a
//!   rule whose weights are all 0 (or that has no backendRefs) answers 500. A backend that is
//!   not a Service of the route's namespace, or a Service that does not exist, is invalid: its
//!   share answers 500. A Service without ready endpoints: its share answers 503.
//! - **RequestMirror**: a copy of `percent`% (or `fraction`; default all) of the requests goes
//!   to the mirror Service (its answers are dropped; Envoy appends `-shadow` to the Host); a
//!   mirror that is not a Service of the namespace is dropped. Other filters are ignored.
//! - A route with something Envoy cannot carry (an unknown match type, a regular expression
//!   that does not compile) is not served at all, and listed under `ignored`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DynamicObject;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::cluster::Endpoints;

/// How a path is matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathMatch {
    Exact(String),
    /// Normalized: no trailing `/` (except for `/` itself).
    PathPrefix(String),
    RegularExpression(String),
    /// A plain string prefix (Istio's `uri.prefix`; not element-wise).
    Prefix(String),
}

/// How a header or query value is matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValueMatch {
    pub name: String,
    /// `Exact` or `RegularExpression`.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// One match of a rule, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    pub path: PathMatch,
    /// Header names lower-cased; only the first of each name.
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    pub method: Option<String>,
}

/// Where a share of the requests goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    pub weight: u32,
    /// The ready endpoints' 127.0.0.1 ports; None when the backend is invalid.
    pub ports: Option<Vec<u16>>,
    /// Why the backend is invalid (its share answers 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

/// Where copies of the requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    pub namespace: String,
    pub service: String,
    /// The share of requests copied, in millionths.
    pub per_million: u32,
    pub ports: Vec<u16>,
}

/// A match of a rule of a route, in the order a virtual host tries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The route, `namespace/name`.
    pub route: String,
    pub rule: usize,
    pub rule_name: Option<String>,
    #[serde(rename = "match")]
    pub matches: Match,
    /// The backends with a weight above 0; none: the rule answers 500.
    pub backends: Vec<Backend>,
    pub mirror: Option<Mirror>,
}

/// The routes served for one hostname (`*` for every other one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualHost {
    pub domain: String,
    pub entries: Vec<Entry>,
}

/// A route that is not served, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub route: String,
    pub reason: String,
}

/// What the proxy must serve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub virtual_hosts: Vec<VirtualHost>,
    pub ignored: Vec<Ignored>,
}

// --- the HTTPRoute as written (only what we read) -------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    hostnames: Vec<String>,
    rules: Option<Vec<RuleSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleSpec {
    name: Option<String>,
    matches: Option<Vec<MatchSpec>>,
    #[serde(default)]
    filters: Vec<FilterSpec>,
    #[serde(default)]
    backend_refs: Vec<RefSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatchSpec {
    path: Option<TypedValue>,
    #[serde(default)]
    headers: Vec<NamedValue>,
    #[serde(default)]
    query_params: Vec<NamedValue>,
    method: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct TypedValue {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct NamedValue {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterSpec {
    #[serde(rename = "type")]
    kind: String,
    request_mirror: Option<MirrorSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MirrorSpec {
    backend_ref: RefSpec,
    percent: Option<i64>,
    fraction: Option<FractionSpec>,
}

#[derive(Debug, Default, Deserialize)]
struct FractionSpec {
    numerator: i64,
    denominator: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct RefSpec {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    weight: Option<i64>,
}

// --- normalizing ------------------------------------------------------------------------------

/// A route, defaults applied and validated.
struct Route {
    key: String,
    created: Option<Time>,
    hostnames: Vec<String>,
    rules: Vec<Rule>,
}

/// A rule of a route, defaults applied.
struct Rule {
    index: usize,
    name: Option<String>,
    matches: Vec<Match>,
    backends: Vec<Backend>,
    mirror: Option<Mirror>,
}

fn value_match(v: &NamedValue, lower: bool) -> Result<ValueMatch, String> {
    let kind = v.kind.clone().unwrap_or_else(|| "Exact".into());
    match kind.as_str() {
        "Exact" => {}
        "RegularExpression" => {
            regex::Regex::new(&v.value)
                .map_err(|e| format!("regular expression {:?}: {e}", v.value))?;
        }
        other => return Err(format!("unsupported match type {other:?}")),
    }
    let name = if lower {
        v.name.to_ascii_lowercase()
    } else {
        v.name.clone()
    };
    Ok(ValueMatch {
        name,
        kind,
        value: v.value.clone(),
    })
}

/// The first match of each name.
fn first_of_each(values: &[NamedValue], lower: bool) -> Result<Vec<ValueMatch>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for v in values {
        let m = value_match(v, lower)?;
        if seen.insert(m.name.clone()) {
            out.push(m);
        }
    }
    Ok(out)
}

fn path_match(path: Option<&TypedValue>) -> Result<PathMatch, String> {
    let kind = path
        .and_then(|p| p.kind.clone())
        .unwrap_or_else(|| "PathPrefix".into());
    let value = path
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "/".into());
    match kind.as_str() {
        "Exact" => Ok(PathMatch::Exact(value)),
        "PathPrefix" => {
            let trimmed = value.trim_end_matches('/');
            Ok(PathMatch::PathPrefix(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            }))
        }
        "RegularExpression" => {
            regex::Regex::new(&value).map_err(|e| format!("regular expression {value:?}: {e}"))?;
            Ok(PathMatch::RegularExpression(value))
        }
        other => Err(format!("unsupported path match type {other:?}")),
    }
}

/// A backendRef or mirror reference: the Service it names in `namespace`, or why not.
fn service_ref(r: &RefSpec, namespace: &str, endpoints: &Endpoints) -> Result<Vec<u16>, String> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err(format!("{group}/{kind} {} is not a Service", r.name));
    }
    if r.namespace.as_deref().is_some_and(|ns| ns != namespace) {
        return Err(format!(
            "Service {} is in another namespace (no ReferenceGrant here)",
            r.name
        ));
    }
    endpoints
        .get(namespace, &r.name)
        .map(<[u16]>::to_vec)
        .ok_or_else(|| format!("Service {} not found", r.name))
}

fn route(object: &DynamicObject, endpoints: &Endpoints) -> Result<Route, String> {
    let namespace = object.namespace().unwrap_or_default();
    let spec: Spec = match object.data.get("spec") {
        Some(spec) => serde_json::from_value(spec.clone()).map_err(|e| format!("spec: {e}"))?,
        None => Spec::default(),
    };
    let rules = spec.rules.unwrap_or_else(|| vec![RuleSpec::default()]);
    let mut out = Vec::new();
    let match_all = MatchSpec::default();
    for (index, rule) in rules.iter().enumerate() {
        let specs = match &rule.matches {
            Some(m) if !m.is_empty() => m.iter().collect(),
            _ => vec![&match_all],
        };
        let mut matches = Vec::new();
        for m in specs {
            matches.push(Match {
                path: path_match(m.path.as_ref())?,
                headers: first_of_each(&m.headers, true)?,
                query_params: first_of_each(&m.query_params, false)?,
                method: m.method.clone(),
            });
        }
        let mut backends = Vec::new();
        for r in &rule.backend_refs {
            let weight = u32::try_from(r.weight.unwrap_or(1).max(0)).unwrap_or(u32::MAX);
            if weight == 0 {
                continue;
            }
            let (ports, invalid) = match service_ref(r, &namespace, endpoints) {
                Ok(ports) => (Some(ports), None),
                Err(why) => (None, Some(why)),
            };
            backends.push(Backend {
                namespace: namespace.clone(),
                service: r.name.clone(),
                weight,
                ports,
                invalid,
            });
        }
        let mirror = rule
            .filters
            .iter()
            .filter(|f| f.kind == "RequestMirror")
            .find_map(|f| {
                let m = f.request_mirror.as_ref()?;
                let ports = service_ref(&m.backend_ref, &namespace, endpoints).ok()?;
                let per_million = match (&m.fraction, m.percent) {
                    (Some(f), _) => {
                        let d = f.denominator.unwrap_or(100).max(1);
                        (f.numerator.clamp(0, d) * 1_000_000) / d
                    }
                    (None, Some(p)) => p.clamp(0, 100) * 10_000,
                    (None, None) => 1_000_000,
                };
                Some(Mirror {
                    namespace: namespace.clone(),
                    service: m.backend_ref.name.clone(),
                    per_million: u32::try_from(per_million).unwrap_or(1_000_000),
                    ports,
                })
            });
        out.push(Rule {
            index,
            name: rule.name.clone(),
            matches,
            backends,
            mirror,
        });
    }
    Ok(Route {
        key: format!("{namespace}/{}", object.name_any()),
        created: object.metadata.creation_timestamp.clone(),
        hostnames: spec
            .hostnames
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        rules: out,
    })
}

// --- hostnames and precedence -------------------------------------------------------------------

/// Whether route hostname `h` matches every name of virtual host `domain`.
fn covers(h: &str, domain: &str) -> bool {
    match h.strip_prefix('*') {
        Some(suffix) => domain.len() > suffix.len() && domain.ends_with(suffix),
        None => h == domain,
    }
}

/// How specific the hostname by which a route applies to `domain` is (higher wins): characters
/// of a non-wildcard hostname, then characters. None when the route does not apply.
fn hostname_rank(route: &Route, domain: &str) -> Option<(usize, usize)> {
    if route.hostnames.is_empty() {
        return Some((0, 0));
    }
    let ranks = route.hostnames.iter().filter(|h| covers(h, domain));
    ranks
        .map(|h| (if h.starts_with('*') { 0 } else { h.len() }, h.len()))
        .max()
}

/// The precedence of a match (lower sorts first).
fn match_rank(
    m: &Match,
) -> (
    u8,
    std::cmp::Reverse<usize>,
    bool,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
) {
    use std::cmp::Reverse;
    let (kind, len) = match &m.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::RegularExpression(p) => (1, p.len()),
        PathMatch::PathPrefix(p) | PathMatch::Prefix(p) => (2, if p == "/" { 0 } else { p.len() }),
    };
    (
        kind,
        Reverse(len),
        m.method.is_none(),
        Reverse(m.headers.len()),
        Reverse(m.query_params.len()),
    )
}

/// The virtual hosts and their ordered entries for these HTTPRoutes.
pub fn plan<'a>(
    objects: impl IntoIterator<Item = &'a DynamicObject>,
    endpoints: &Endpoints,
) -> Plan {
    let mut plan = Plan::default();
    let mut routes = Vec::new();
    for object in objects {
        match route(object, endpoints) {
            Ok(r) => routes.push(r),
            Err(reason) => plan.ignored.push(Ignored {
                route: format!(
                    "{}/{}",
                    object.namespace().unwrap_or_default(),
                    object.name_any()
                ),
                reason,
            }),
        }
    }
    let mut domains: BTreeSet<String> = routes
        .iter()
        .flat_map(|r| r.hostnames.iter().cloned())
        .collect();
    if routes.iter().any(|r| r.hostnames.is_empty()) {
        domains.insert("*".into());
    }
    for domain in domains {
        let mut keyed = Vec::new();
        for route in &routes {
            let rank = if domain == "*" {
                route.hostnames.is_empty().then_some((0, 0))
            } else {
                hostname_rank(route, &domain)
            };
            let Some((exact_len, len)) = rank else {
                continue;
            };
            for rule in &route.rules {
                for (m_index, m) in rule.matches.iter().enumerate() {
                    let key = (
                        std::cmp::Reverse((exact_len, len)),
                        match_rank(m),
                        route.created.clone(),
                        route.key.clone(),
                        rule.index,
                        m_index,
                    );
                    let entry = Entry {
                        route: route.key.clone(),
                        rule: rule.index,
                        rule_name: rule.name.clone(),
                        matches: m.clone(),
                        backends: rule.backends.clone(),
                        mirror: rule.mirror.clone(),
                    };
                    keyed.push((key, entry));
                }
            }
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let entries = keyed.into_iter().map(|(_, e)| e).collect();
        plan.virtual_hosts.push(VirtualHost { domain, entries });
    }
    plan
}

/// Every Service the plan sends traffic (or copies) to, with its ports.
pub fn services(plan: &Plan) -> BTreeMap<(String, String), Vec<u16>> {
    let mut out = BTreeMap::new();
    for entry in plan.virtual_hosts.iter().flat_map(|v| &v.entries) {
        for b in &entry.backends {
            if let Some(ports) = &b.ports {
                out.insert((b.namespace.clone(), b.service.clone()), ports.clone());
            }
        }
        if let Some(m) = &entry.mirror {
            out.insert((m.namespace.clone(), m.service.clone()), m.ports.clone());
        }
    }
    out
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
