use super::*;
use serde_json::{json, Value};

fn route(name: &str, created: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
        "spec": spec,
    }))
    .unwrap()
}

fn endpoints() -> Endpoints {
    let mut e = Endpoints::default();
    e.insert("ns", "stable", vec![1001]);
    e.insert("ns", "canary", vec![2001]);
    e.insert("ns", "empty", vec![]);
    e
}

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:00:01Z";

fn host<'a>(plan: &'a Plan, domain: &str) -> &'a VirtualHost {
    plan.virtual_hosts
        .iter()
        .find(|v| v.domain == domain)
        .unwrap()
}

#[test]
fn defaults_are_applied_as_the_crds_would() {
    let r = route(
        "r",
        T0,
        json!({"rules": [{"backendRefs": [{"name": "stable", "port": 80}]}]}),
    );
    let plan = plan([&r], &endpoints());
    let entry = &host(&plan, "*").entries[0];
    assert_eq!(entry.matches.path, PathMatch::PathPrefix("/".into()));
    assert_eq!(entry.backends[0].weight, 1);
    assert_eq!(entry.backends[0].ports, Some(vec![1001]));
    // No rules at all: one rule matching everything, without backends: 500.
    let empty = route("e", T0, json!({"hostnames": ["e.test"]}));
    let plan = super::plan([&empty], &endpoints());
    let entry = &host(&plan, "e.test").entries[0];
    assert_eq!(entry.matches.path, PathMatch::PathPrefix("/".into()));
    assert!(entry.backends.is_empty());
}

#[test]
fn weights_default_to_one_and_zero_drops_a_backend() {
    let r = route(
        "r",
        T0,
        json!({"rules": [{"backendRefs": [
        {"name": "stable", "weight": 80}, {"name": "canary", "weight": 20}, {"name": "empty", "weight": 0}, {"name": "canary"}]}]}),
    );
    let plan = plan([&r], &endpoints());
    let weights: Vec<(String, u32)> = host(&plan, "*").entries[0]
        .backends
        .iter()
        .map(|b| (b.service.clone(), b.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("stable".into(), 80),
            ("canary".into(), 20),
            ("canary".into(), 1)
        ]
    );
}

#[test]
fn a_backend_that_is_not_a_service_here_is_invalid() {
    let r = route(
        "r",
        T0,
        json!({"rules": [{"backendRefs": [
        {"name": "missing"}, {"name": "stable", "namespace": "other"}, {"name": "x", "group": "example.com", "kind": "Thing"},
        {"name": "stable", "namespace": "ns", "group": "", "kind": "Service"}]}]}),
    );
    let plan = plan([&r], &endpoints());
    let backends = &host(&plan, "*").entries[0].backends;
    let invalid: Vec<bool> = backends.iter().map(|b| b.invalid.is_some()).collect();
    assert_eq!(invalid, [true, true, true, false]);
}

#[test]
fn a_trailing_slash_of_a_path_prefix_is_ignored() {
    let r = route(
        "r",
        T0,
        json!({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api/"}}], "backendRefs": [{"name": "stable"}]}]}),
    );
    let plan = plan([&r], &endpoints());
    assert_eq!(
        host(&plan, "*").entries[0].matches.path,
        PathMatch::PathPrefix("/api".into())
    );
}

#[test]
fn matches_are_ordered_by_the_specs_precedence() {
    let r = route(
        "r",
        T0,
        json!({"rules": [
            {"name": "prefix", "matches": [{"path": {"value": "/"}}], "backendRefs": [{"name": "stable"}]},
            {"name": "longer", "matches": [{"path": {"value": "/api"}}], "backendRefs": [{"name": "stable"}]},
            {"name": "header", "matches": [{"headers": [{"name": "X-Canary", "value": "yes"}]}], "backendRefs": [{"name": "canary"}]},
            {"name": "two-headers", "matches": [{"headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2", "type": "RegularExpression"}]}], "backendRefs": [{"name": "canary"}]},
            {"name": "method", "matches": [{"method": "POST"}], "backendRefs": [{"name": "canary"}]},
            {"name": "query", "matches": [{"queryParams": [{"name": "q", "value": "1"}]}], "backendRefs": [{"name": "canary"}]},
            {"name": "regex", "matches": [{"path": {"type": "RegularExpression", "value": "/r/.*"}}], "backendRefs": [{"name": "canary"}]},
            {"name": "exact", "matches": [{"path": {"type": "Exact", "value": "/a"}}], "backendRefs": [{"name": "canary"}]},
        ]}),
    );
    let plan = plan([&r], &endpoints());
    let order: Vec<&str> = host(&plan, "*")
        .entries
        .iter()
        .map(|e| e.rule_name.as_deref().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "exact",
            "regex",
            "longer",
            "method",
            "two-headers",
            "header",
            "query",
            "prefix"
        ]
    );
}

#[test]
fn ties_go_to_the_oldest_route_then_by_name_then_to_the_first_rule() {
    let older = route(
        "zz",
        T0,
        json!({"rules": [{"name": "a", "backendRefs": [{"name": "stable"}]}, {"name": "b", "backendRefs": [{"name": "stable"}]}]}),
    );
    let newer = route(
        "aa",
        T1,
        json!({"rules": [{"name": "c", "backendRefs": [{"name": "stable"}]}]}),
    );
    let same_time = route(
        "mm",
        T0,
        json!({"rules": [{"name": "d", "backendRefs": [{"name": "stable"}]}]}),
    );
    let plan = plan([&newer, &older, &same_time], &endpoints());
    let order: Vec<&str> = host(&plan, "*")
        .entries
        .iter()
        .map(|e| e.rule_name.as_deref().unwrap())
        .collect();
    assert_eq!(order, ["d", "a", "b", "c"]);
}

#[test]
fn only_the_first_header_match_of_a_name_counts() {
    let r = route(
        "r",
        T0,
        json!({"rules": [{"matches": [{"headers": [
        {"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]}], "backendRefs": [{"name": "stable"}]}]}),
    );
    let plan = plan([&r], &endpoints());
    let headers = &host(&plan, "*").entries[0].matches.headers;
    assert_eq!(headers.len(), 1);
    assert_eq!(
        (headers[0].name.as_str(), headers[0].value.as_str()),
        ("x-a", "1")
    );
}

#[test]
fn the_routes_of_the_most_specific_hostname_come_first_then_the_others_that_match() {
    let exact = route(
        "exact",
        T1,
        json!({"hostnames": ["a.example.com"], "rules": [{"name": "exact", "backendRefs": [{"name": "stable"}]}]}),
    );
    let wildcard = route(
        "wild",
        T0,
        json!({"hostnames": ["*.example.com"], "rules": [{"name": "wild", "matches": [{"path": {"type": "Exact", "value": "/x"}}], "backendRefs": [{"name": "canary"}]}]}),
    );
    let any = route(
        "any",
        T0,
        json!({"rules": [{"name": "any", "backendRefs": [{"name": "canary"}]}]}),
    );
    let plan = plan([&any, &wildcard, &exact], &endpoints());
    let names = |d: &str| -> Vec<String> {
        host(&plan, d)
            .entries
            .iter()
            .map(|e| e.rule_name.clone().unwrap())
            .collect()
    };
    // Hostname specificity first: the exact route's PathPrefix / beats the wildcard's Exact /x.
    assert_eq!(names("a.example.com"), ["exact", "wild", "any"]);
    assert_eq!(names("*.example.com"), ["wild", "any"]);
    assert_eq!(names("*"), ["any"]);
    assert!(covers("*.example.com", "b.a.example.com"));
    assert!(!covers("*.example.com", "example.com"));
}

#[test]
fn a_mirror_copies_a_share_to_a_service_of_the_namespace() {
    let r = route(
        "r",
        T0,
        json!({"rules": [
            {"filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "canary", "port": 80}}}], "backendRefs": [{"name": "stable"}]},
            {"matches": [{"path": {"value": "/half"}}], "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "canary"}, "percent": 50}}], "backendRefs": [{"name": "stable"}]},
            {"matches": [{"path": {"value": "/third"}}], "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "canary"}, "fraction": {"numerator": 1, "denominator": 3}}}], "backendRefs": [{"name": "stable"}]},
            {"matches": [{"path": {"value": "/gone"}}], "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "missing"}}}], "backendRefs": [{"name": "stable"}]},
        ]}),
    );
    let plan = plan([&r], &endpoints());
    let mirrors: Vec<Option<u32>> = host(&plan, "*")
        .entries
        .iter()
        .map(|e| e.mirror.as_ref().map(|m| m.per_million))
        .collect();
    // Ordered by precedence: the longer prefixes first.
    assert_eq!(
        mirrors,
        [Some(333_333), Some(500_000), None, Some(1_000_000)]
    );
}

#[test]
fn a_route_envoy_cannot_carry_is_ignored_whole() {
    let bad = route(
        "bad",
        T0,
        json!({"rules": [{"matches": [{"headers": [{"name": "x", "value": "(", "type": "RegularExpression"}]}], "backendRefs": [{"name": "stable"}]}]}),
    );
    let unknown = route(
        "unknown",
        T0,
        json!({"rules": [{"matches": [{"path": {"type": "Glob", "value": "/*"}}]}]}),
    );
    let plan = plan([&bad, &unknown], &endpoints());
    assert!(plan.virtual_hosts.is_empty());
    assert_eq!(plan.ignored.len(), 2);
}
