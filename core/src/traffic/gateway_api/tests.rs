//! What the Gateway API plugin does to routes (its `httproute_test.go` cases), plus the
//! mirror rule it lacks.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::api::{GatewayRouteRef, HeaderRoutingMatch, RouteMatch, SetHeaderRoute, SetMirrorRoute, WeightDestination};

fn plan(weight: i32) -> TrafficPlan {
    TrafficPlan {
        rollout: "demo".into(),
        canary_service: "demo-canary".into(),
        stable_service: "demo-stable".into(),
        weight,
        max_weight: 100,
        managed_routes: vec!["canary-header".into(), "mirror".into()],
        ..TrafficPlan::default()
    }
}

fn route(kind: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "demo-route", "namespace": "ns"},
        "spec": {"rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "X-From", "value": "gw"}]}}],
            "backendRefs": [
                {"name": "demo-stable", "port": 80},
                {"name": "demo-canary", "port": 80}
            ]
        }]}
    })
}

fn cfg() -> GatewayApiTrafficRouting {
    GatewayApiTrafficRouting { http_route: "demo-route".into(), ..Default::default() }
}

fn routes(v: Value) -> BTreeMap<String, Value> {
    BTreeMap::from([(route_key(RouteKind::Http, "demo-route"), v)])
}

#[test]
fn weights_go_to_the_backend_refs_named_after_the_services_with_the_in_progress_label() {
    let mut all = routes(route("HTTPRoute"));
    let actions = reconcile(&cfg(), &plan(20), &mut all).unwrap();
    let [Action::PatchRoute { kind: RouteKind::Http, namespace: None, name, patch }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(name, "demo-route");
    assert_eq!(patch["metadata"], json!({"labels": {"rollouts.argoproj.io/gatewayapi-canary": "in-progress"}}));
    let refs = &patch["spec"]["rules"][0]["backendRefs"];
    assert_eq!(refs, &json!([{"name": "demo-stable", "port": 80, "weight": 80}, {"name": "demo-canary", "port": 80, "weight": 20}]));
    assert_eq!(reconcile(&cfg(), &plan(20), &mut all).unwrap(), vec![], "nothing to do twice");
    // Weight 0 removes the label.
    let actions = reconcile(&cfg(), &plan(0), &mut all).unwrap();
    let [Action::PatchRoute { patch, .. }] = actions.as_slice() else { panic!("{actions:?}") };
    assert_eq!(patch["metadata"], json!({"labels": {"rollouts.argoproj.io/gatewayapi-canary": null}}));
}

#[test]
fn max_traffic_weight_is_the_total_of_both_backends() {
    let mut p = plan(50);
    p.max_weight = 1000;
    let rules = desired_rules(RouteKind::Http, route("HTTPRoute")["spec"]["rules"].as_array().unwrap(), &p, true).unwrap();
    assert_eq!(rules[0]["backendRefs"][0]["weight"], 950);
    assert_eq!(rules[0]["backendRefs"][1]["weight"], 50);
}

#[test]
fn a_route_without_both_services_is_an_error_worded_as_the_plugin() {
    let mut r = route("HTTPRoute");
    r["spec"]["rules"][0]["backendRefs"] = json!([{"name": "demo-stable", "port": 80}]);
    let mut all = routes(r);
    assert_eq!(reconcile(&cfg(), &plan(20), &mut all).unwrap_err().to_string(), "backendRef was not found in httpRoute");
    assert_eq!(
        reconcile(&cfg(), &plan(20), &mut BTreeMap::new()).unwrap_err().to_string(),
        "HTTPRoute `demo-route` not found"
    );
}

fn header_route() -> SetHeaderRoute {
    SetHeaderRoute {
        name: "canary-header".into(),
        matches: Some(vec![HeaderRoutingMatch {
            header_name: "X-Canary".into(),
            header_value: StringMatch { exact: "yes".into(), ..Default::default() },
        }]),
    }
}

#[test]
fn a_header_route_adds_a_rule_named_after_it_that_sends_its_requests_to_the_canary() {
    let mut p = plan(20);
    p.header_routes = vec![header_route()];
    let mut all = routes(route("HTTPRoute"));
    let _ = reconcile(&cfg(), &p, &mut all).unwrap();
    let rules = all[&route_key(RouteKind::Http, "demo-route")]["spec"]["rules"].clone();
    assert_eq!(rules.as_array().unwrap().len(), 2);
    assert_eq!(
        rules[1],
        json!({
            "name": "canary-header",
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "X-Canary", "type": "Exact", "value": "yes"}]}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "X-From", "value": "gw"}]}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": "demo-canary", "port": 80}]
        })
    );
    // Weights move without touching the managed rule; removing the route removes it.
    p.weight = 50;
    let _ = reconcile(&cfg(), &p, &mut all).unwrap();
    let rules = all[&route_key(RouteKind::Http, "demo-route")]["spec"]["rules"].clone();
    assert_eq!(rules[0]["backendRefs"][1]["weight"], 50);
    assert_eq!(rules[1]["name"], "canary-header");
    p.header_routes.clear();
    let _ = reconcile(&cfg(), &p, &mut all).unwrap();
    assert_eq!(all[&route_key(RouteKind::Http, "demo-route")]["spec"]["rules"].as_array().unwrap().len(), 1);
}

#[test]
fn header_routes_only_go_to_routes_that_use_them_and_never_to_tcp_routes() {
    let mut p = plan(20);
    p.header_routes = vec![header_route()];
    let rules = route("HTTPRoute")["spec"]["rules"].as_array().unwrap().clone();
    assert_eq!(desired_rules(RouteKind::Http, &rules, &p, false).unwrap().len(), 1);
    let tcp = json!([{"backendRefs": [{"name": "demo-stable", "port": 80}, {"name": "demo-canary", "port": 80}]}]);
    let got = desired_rules(RouteKind::Tcp, tcp.as_array().unwrap(), &p, true).unwrap();
    assert_eq!(got, vec![json!({"backendRefs": [{"name": "demo-stable", "port": 80, "weight": 80}, {"name": "demo-canary", "port": 80, "weight": 20}]})]);
    // The list form: each route with its own useHeaderRoutes.
    let cfg = GatewayApiTrafficRouting {
        http_routes: vec![GatewayRouteRef { name: "a".into(), use_header_routes: false }],
        tcp_route: "t".into(),
        ..Default::default()
    };
    let kinds: Vec<(RouteKind, bool)> = cfg.routes().into_iter().map(|(k, r)| (k, r.use_header_routes)).collect();
    assert_eq!(kinds, vec![(RouteKind::Http, false), (RouteKind::Tcp, true)]);
}

#[test]
fn prefix_and_regex_header_values_become_regular_expressions() {
    let m = |v: StringMatch| header_match("X", &v);
    assert_eq!(m(StringMatch { prefix: "ab".into(), ..Default::default() })["value"], "ab.*");
    assert_eq!(m(StringMatch { regex: "a+".into(), ..Default::default() })["type"], "RegularExpression");
}

#[test]
fn a_mirror_route_copies_the_weighted_rule_with_a_request_mirror_to_the_canary() {
    let mut p = plan(20);
    p.mirror_routes = vec![SetMirrorRoute {
        name: "mirror".into(),
        matches: Some(vec![RouteMatch {
            method: Some(StringMatch { exact: "GET".into(), ..Default::default() }),
            path: Some(StringMatch { prefix: "/api".into(), ..Default::default() }),
            ..Default::default()
        }]),
        percentage: Some(35),
    }];
    let rules = desired_rules(RouteKind::Http, route("HTTPRoute")["spec"]["rules"].as_array().unwrap(), &p, true).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["name"], "mirror");
    assert_eq!(rules[1]["matches"], json!([{"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET"}]));
    assert_eq!(rules[1]["backendRefs"], rules[0]["backendRefs"]);
    assert_eq!(
        rules[1]["filters"][1],
        json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "demo-canary", "port": 80}, "percent": 35}})
    );
}

#[test]
fn rules_of_older_plugin_versions_are_recognised_as_managed() {
    let mut r = route("HTTPRoute");
    r["spec"]["rules"].as_array_mut().unwrap().push(json!({
        "matches": [{"headers": [{"name": "X-Canary", "value": "yes"}]}],
        "backendRefs": [{"name": "demo-canary", "port": 80}]
    }));
    r["spec"]["rules"].as_array_mut().unwrap().push(json!({"name": "canary-header-1", "backendRefs": [{"name": "x", "port": 80}]}));
    let rules = desired_rules(RouteKind::Http, r["spec"]["rules"].as_array().unwrap(), &plan(10), true).unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
}

/// An Experiment's weighted templates: one more backendRef per destination in each rule
/// that sends traffic to the canary or stable Service, with its weight and port; the
/// stable gets what neither the canary nor the experiment gets; a destination no longer in
/// the plan is taken out again, and other backends are left alone.
#[test]
fn experiment_destinations_become_backend_refs_and_leave_again() {
    let mut with = plan(10);
    with.additional = vec![WeightDestination { weight: 5, service_name: "exp-svc".into(), pod_template_hash: "h3".into() }];
    with.additional_ports = BTreeMap::from([("exp-svc".to_string(), 8080)]);
    // A template Service named like the canary's is never taken for an Experiment's.
    with.experiment_services = ["exp-svc".to_string(), "old-exp-svc".to_string(), "demo-canary".to_string()].into();
    let mut live = route("HTTPRoute");
    live["spec"]["rules"].as_array_mut().unwrap().push(json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
        "backendRefs": [{"name": "other", "port": 80}, {"name": "old-exp-svc", "port": 80, "weight": 3}]
    }));
    let rules = desired_rules(RouteKind::Http, live["spec"]["rules"].as_array().unwrap(), &with, false).unwrap();
    assert_eq!(
        rules[0]["backendRefs"],
        json!([
            {"name": "demo-stable", "port": 80, "weight": 85},
            {"name": "demo-canary", "port": 80, "weight": 10},
            {"group": "", "kind": "Service", "name": "exp-svc", "port": 8080, "weight": 5}
        ])
    );
    assert_eq!(rules[1]["backendRefs"], json!([{"name": "other", "port": 80}]), "no rollout backend: nothing added");
    // The weight of a destination already there is kept up to date, once.
    with.additional[0].weight = 7;
    let again = desired_rules(RouteKind::Http, &rules, &with, false).unwrap();
    assert_eq!(again[0]["backendRefs"].as_array().unwrap().len(), 3);
    assert_eq!(again[0]["backendRefs"][2]["weight"], 7);
    assert_eq!(again[0]["backendRefs"][0]["weight"], 83);
    // The Experiment stops: its backend goes.
    let mut without = plan(10);
    without.experiment_services = with.experiment_services.clone();
    let after = desired_rules(RouteKind::Http, &again, &without, false).unwrap();
    assert_eq!(
        after[0]["backendRefs"],
        json!([{"name": "demo-stable", "port": 80, "weight": 90}, {"name": "demo-canary", "port": 80, "weight": 10}])
    );
    // Without a known port the destination waits (a Service backend needs one).
    with.additional_ports.clear();
    let waiting = desired_rules(RouteKind::Http, live["spec"]["rules"].as_array().unwrap(), &with, false).unwrap();
    assert_eq!(waiting[0]["backendRefs"].as_array().unwrap().len(), 2);
}
