use super::*;
use serde_json::{json, Value};

fn ingress(name: &str, created: &str, annotations: Value, rules: Value) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created, "annotations": annotations},
        "spec": {"rules": rules},
    }))
    .unwrap()
}

fn rule(host: &str, path: &str, path_type: &str, service: &str) -> Value {
    json!({"host": host, "http": {"paths": [
        {"path": path, "pathType": path_type, "backend": {"service": {"name": service, "port": {"number": 80}}}}]}})
}

fn canary(weight: &str) -> Value {
    json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": weight})
}

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:00:01Z";

fn endpoints() -> Endpoints {
    let mut e = Endpoints::default();
    e.insert("ns", "stable", vec![1001]);
    e.insert("ns", "canary", vec![2001, 2002]);
    e.insert("ns", "other", vec![3001]);
    e.insert("ns", "empty", vec![]);
    e
}

#[test]
fn only_ingresses_of_class_nginx_or_of_no_class_are_served() {
    let mut named = ingress("a", T0, json!({}), json!([]));
    assert!(is_ours(&named));
    named.spec.as_mut().unwrap().ingress_class_name = Some("nginx".into());
    assert!(is_ours(&named));
    named.spec.as_mut().unwrap().ingress_class_name = Some("traefik".into());
    assert!(!is_ours(&named));
    // The annotation wins over the field.
    named.metadata.annotations = Some(
        [(
            "kubernetes.io/ingress.class".to_string(),
            "nginx".to_string(),
        )]
        .into(),
    );
    assert!(is_ours(&named));
    let other = ingress(
        "b",
        T0,
        json!({"kubernetes.io/ingress.class": "alb"}),
        json!([]),
    );
    assert!(!is_ours(&other));
}

#[test]
fn canary_annotations_without_canary_true_make_the_ingress_invalid() {
    let invalid = ingress(
        "c",
        T0,
        json!({"nginx.ingress.kubernetes.io/canary-weight": "20"}),
        json!([]),
    );
    assert_eq!(
        canary_policy(&invalid),
        Err("canary annotations configured but not enabled".into())
    );
    let disabled = ingress(
        "c",
        T0,
        json!({"nginx.ingress.kubernetes.io/canary": "false"}),
        json!([]),
    );
    assert_eq!(canary_policy(&disabled), Ok(None));
    // A zero weight alone is not "configured".
    let zero = ingress(
        "c",
        T0,
        json!({"nginx.ingress.kubernetes.io/canary-weight": "0"}),
        json!([]),
    );
    assert_eq!(canary_policy(&zero), Ok(None));
    let plan = plan([&invalid], &endpoints());
    assert_eq!(plan.ignored.len(), 1);
}

#[test]
fn the_weight_total_counts_only_above_100_and_bad_numbers_fall_back() {
    let total = |t: &str| {
        let mut a = canary("5");
        a["nginx.ingress.kubernetes.io/canary-weight-total"] = json!(t);
        canary_policy(&ingress("c", T0, a, json!([])))
            .unwrap()
            .unwrap()
            .total
    };
    assert_eq!(total("1000"), 1000);
    assert_eq!(total("50"), 100);
    assert_eq!(total("lots"), 100);
    let bad_weight = canary_policy(&ingress("c", T0, canary("x"), json!([])))
        .unwrap()
        .unwrap();
    assert_eq!(bad_weight.weight, 0);
    let enabled_by_go_bool = ingress(
        "c",
        T0,
        json!({"nginx.ingress.kubernetes.io/canary": "T"}),
        json!([]),
    );
    assert!(canary_policy(&enabled_by_go_bool).unwrap().is_some());
}

#[test]
fn a_canary_merges_only_where_host_path_and_path_type_are_equal() {
    let stable = ingress(
        "stable",
        T0,
        json!({}),
        json!([
            rule("a.test", "/", "Prefix", "stable"),
            rule("a.test", "/api", "Prefix", "stable")
        ]),
    );
    let canary_ing = ingress(
        "canary",
        T1,
        canary("20"),
        json!([
            rule("a.test", "/", "Prefix", "canary"),
            rule("a.test", "/api", "Exact", "canary"),
            rule("b.test", "/", "Prefix", "canary"),
        ]),
    );
    let plan = plan([&canary_ing, &stable], &endpoints());
    let root = plan.locations.iter().find(|l| l.path == "/").unwrap();
    let c = root.canary.as_ref().unwrap();
    assert_eq!(
        (
            c.ingress.as_str(),
            c.backend.service.as_str(),
            c.backend.ports.clone()
        ),
        ("ns/canary", "canary", vec![2001, 2002])
    );
    assert_eq!(c.policy.weight, 20);
    let api = plan.locations.iter().find(|l| l.path == "/api").unwrap();
    assert_eq!(api.canary, None);
    let reasons: Vec<&str> = plan.ignored.iter().map(|i| i.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "no non-canary Ingress serves a.test/api (Exact)",
            "no non-canary Ingress serves host b.test"
        ]
    );
    // A canary never creates a location of its own.
    assert_eq!(plan.locations.len(), 2);
}

#[test]
fn the_oldest_ingress_claims_a_path_and_ties_go_to_the_greater_name() {
    let old = ingress(
        "zz-old",
        T0,
        json!({}),
        json!([rule("a.test", "/", "Prefix", "stable")]),
    );
    let new = ingress(
        "aa-new",
        T1,
        json!({}),
        json!([rule("a.test", "/", "Prefix", "other")]),
    );
    assert_eq!(
        plan([&new, &old], &endpoints()).locations[0].stable.service,
        "stable"
    );
    let a = ingress(
        "a",
        T0,
        json!({}),
        json!([rule("a.test", "/", "Prefix", "stable")]),
    );
    let b = ingress(
        "b",
        T0,
        json!({}),
        json!([rule("a.test", "/", "Prefix", "other")]),
    );
    assert_eq!(plan([&a, &b], &endpoints()).locations[0].ingress, "ns/b");
    // Same path, other pathType: two locations.
    let exact = ingress(
        "c",
        T1,
        json!({}),
        json!([rule("a.test", "/", "Exact", "other")]),
    );
    assert_eq!(plan([&a, &exact], &endpoints()).locations.len(), 2);
}

#[test]
fn the_first_canary_merged_into_a_location_counts() {
    let stable = ingress(
        "stable",
        T0,
        json!({}),
        json!([rule("a.test", "/", "Prefix", "stable")]),
    );
    let first = ingress(
        "first",
        T0,
        canary("10"),
        json!([rule("a.test", "/", "Prefix", "canary")]),
    );
    let second = ingress(
        "second",
        T1,
        canary("90"),
        json!([rule("a.test", "/", "Prefix", "other")]),
    );
    let plan = plan([&second, &stable, &first], &endpoints());
    assert_eq!(
        plan.locations[0].canary.as_ref().unwrap().ingress,
        "ns/first"
    );
}

#[test]
fn rules_without_host_or_path_go_to_the_catch_all_server_at_root() {
    let catch_all: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "all", "namespace": "ns"},
        "spec": {"rules": [{"http": {"paths": [{"pathType": "ImplementationSpecific",
            "backend": {"service": {"name": "stable", "port": {"number": 80}}}}]}}]},
    }))
    .unwrap();
    let l = &plan([&catch_all], &endpoints()).locations[0];
    assert_eq!((l.host.as_str(), l.path.as_str()), ("_", "/"));
}

fn location(weight: i64, total: i64, stable: &str, canary_service: &str) -> Location {
    let e = endpoints();
    let ports = |s: &str| e.get("ns", s).unwrap().to_vec();
    Location {
        host: "a.test".into(),
        path: "/".into(),
        path_type: "Prefix".into(),
        namespace: "ns".into(),
        ingress: "ns/stable".into(),
        stable: Backend {
            service: stable.into(),
            ports: ports(stable),
        },
        canary: Some(Canary {
            ingress: "ns/canary".into(),
            backend: Backend {
                service: canary_service.into(),
                ports: ports(canary_service),
            },
            policy: CanaryPolicy {
                weight,
                total,
                header: None,
                header_value: None,
                header_pattern: None,
                cookie: None,
            },
        }),
    }
}

fn headers(pairs: &[(&str, &'static str)]) -> Request<'static> {
    Request {
        headers: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        cookies: BTreeMap::new(),
    }
}

#[test]
fn the_weight_is_compared_with_a_draw_from_1_to_the_total() {
    let l = location(20, 100, "stable", "canary");
    let canary_draws = (1..=100)
        .filter(|&d| decide(&l, &Request::default(), d) == Decision::Canary)
        .count();
    assert_eq!(canary_draws, 20);
    let never = location(0, 100, "stable", "canary");
    assert!((1..=100).all(|d| decide(&never, &Request::default(), d) == Decision::Stable));
    let always = location(100, 100, "stable", "canary");
    assert!((1..=100).all(|d| decide(&always, &Request::default(), d) == Decision::Canary));
    let per_mille = location(50, 1000, "stable", "canary");
    assert_eq!(
        (1..=1000)
            .filter(|&d| decide(&per_mille, &Request::default(), d) == Decision::Canary)
            .count(),
        50
    );
}

#[test]
fn without_ready_endpoints_the_stable_answers_503_and_the_canary_gets_nothing() {
    let no_stable = location(100, 100, "empty", "canary");
    assert_eq!(
        decide(&no_stable, &Request::default(), 1),
        Decision::Unavailable
    );
    let no_canary = location(100, 100, "stable", "empty");
    assert_eq!(
        decide(&no_canary, &headers(&[("x-canary", "always")]), 1),
        Decision::Stable
    );
}

#[test]
fn header_then_cookie_then_weight() {
    let mut l = location(0, 100, "stable", "canary");
    let policy = &mut l.canary.as_mut().unwrap().policy;
    policy.header = Some("X-Canary".into());
    policy.cookie = Some("canary".into());
    let with = |h: &[(&str, &'static str)], cookie: Option<&'static str>, draw| {
        let mut r = headers(h);
        if let Some(c) = cookie {
            r.cookies.insert("canary".into(), c);
        }
        decide(&l, &r, draw)
    };
    assert_eq!(
        with(&[("x-canary", "always")], Some("never"), 100),
        Decision::Canary
    );
    assert_eq!(
        with(&[("x-canary", "never")], Some("always"), 1),
        Decision::Stable
    );
    // Any other value falls through to the cookie, then to the weight.
    assert_eq!(
        with(&[("x-canary", "yes")], Some("always"), 100),
        Decision::Canary
    );
    assert_eq!(with(&[("x-canary", "Always")], None, 100), Decision::Stable);
    assert_eq!(with(&[], Some("always"), 100), Decision::Canary);
    assert_eq!(with(&[], Some("never"), 1), Decision::Stable);
}

#[test]
fn a_header_value_is_matched_exactly_and_replaces_always_and_never() {
    let mut l = location(100, 100, "stable", "canary");
    let policy = &mut l.canary.as_mut().unwrap().policy;
    policy.header = Some("x-canary".into());
    policy.header_value = Some("v2".into());
    policy.header_pattern = Some("^never-used$".into());
    assert_eq!(
        decide(&l, &headers(&[("x-canary", "v2")]), 1),
        Decision::Canary
    );
    // "never" is just another value here: it falls through to the weight (100: canary).
    assert_eq!(
        decide(&l, &headers(&[("x-canary", "never")]), 100),
        Decision::Canary
    );
    let policy = &mut l.canary.as_mut().unwrap().policy;
    policy.weight = 0;
    assert_eq!(
        decide(&l, &headers(&[("x-canary", "V2")]), 1),
        Decision::Stable
    );
}

#[test]
fn a_header_pattern_is_unanchored_and_a_bad_one_sends_to_stable() {
    let mut l = location(100, 100, "stable", "canary");
    let policy = &mut l.canary.as_mut().unwrap().policy;
    policy.header = Some("x-canary".into());
    policy.header_pattern = Some("v[0-9]".into());
    assert_eq!(
        decide(&l, &headers(&[("x-canary", "is-v2-ok")]), 100),
        Decision::Canary
    );
    l.canary.as_mut().unwrap().policy.weight = 0;
    assert_eq!(
        decide(&l, &headers(&[("x-canary", "nope")]), 1),
        Decision::Stable
    );
    l.canary.as_mut().unwrap().policy.weight = 100;
    l.canary.as_mut().unwrap().policy.header_pattern = Some("(".into());
    assert_eq!(
        decide(&l, &headers(&[("x-canary", "x")]), 1),
        Decision::Stable
    );
    assert_eq!(decide(&l, &Request::default(), 1), Decision::Canary);
}
