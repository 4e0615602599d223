//! Argo's Istio cases (`rollout/trafficrouting/istio/istio_test.go`), as objects in and
//! patches out.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::api::{HeaderRoutingMatch, IstioTcpRoute, IstioTlsRoute, RouteMatch, StringMatch, WeightDestination};

fn plan(weight: i32) -> TrafficPlan {
    TrafficPlan {
        rollout: "web".into(),
        rollout_uid: "uid-web".into(),
        canary_service: "canary".into(),
        stable_service: "stable".into(),
        weight,
        max_weight: 100,
        canary_hash: "c4n4ry".into(),
        stable_hash: "st4bl3".into(),
        ..TrafficPlan::default()
    }
}

fn host_level(vs: &str) -> IstioTrafficRouting {
    IstioTrafficRouting { virtual_service: Some(IstioVirtualService { name: vs.into(), ..Default::default() }), ..Default::default() }
}

fn vs(spec: Value) -> Value {
    json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService", "metadata": {"name": "vs"}, "spec": spec})
}

fn store(objects: &[(RouteKind, &str, Value)]) -> BTreeMap<String, Value> {
    objects.iter().map(|(k, n, v)| (route_key(*k, n), v.clone())).collect()
}

fn http_route(name: Option<&str>, stable: i64, canary: i64) -> Value {
    let mut r = json!({"route": [
        {"destination": {"host": "stable", "port": {"number": 8080}}, "weight": stable},
        {"destination": {"host": "canary.default.svc.cluster.local", "port": {"number": 8080}}, "weight": canary},
    ]});
    if let Some(n) = name {
        r["name"] = json!(n);
    }
    r
}

fn patches(actions: &[Action]) -> Vec<(RouteKind, String, Value)> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::PatchRoute { kind, name, patch, .. } = a {
            out.push((*kind, name.clone(), patch.clone()));
        }
    }
    out
}

#[test]
fn host_level_weights_go_to_the_destinations_by_short_host_and_nothing_is_written_twice() {
    let mut routes = store(&[(RouteKind::VirtualService, "vs", vs(json!({"hosts": ["web"], "http": [http_route(None, 100, 0)]})))]);
    let actions = reconcile(&host_level("vs"), &plan(10), &mut routes).unwrap();
    let p = patches(&actions);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].2["spec"]["http"][0]["route"][0]["weight"], 90);
    assert_eq!(p[0].2["spec"]["http"][0]["route"][1]["weight"], 10);
    assert!(actions.iter().any(|a| matches!(a, Action::RecordEvent { message, .. } if message == "VirtualService `vs` set to desiredWeight '10'")));
    assert_eq!(reconcile(&host_level("vs"), &plan(10), &mut routes).unwrap(), vec![]);
}

#[test]
fn named_routes_are_the_weighted_ones_and_a_missing_one_is_argo_s_error() {
    let spec = json!({"http": [http_route(Some("primary"), 100, 0), http_route(Some("secondary"), 100, 0), http_route(Some("other"), 100, 0)]});
    let mut cfg = host_level("vs");
    cfg.virtual_service.as_mut().unwrap().routes = vec!["primary".into(), "secondary".into()];
    let mut routes = store(&[(RouteKind::VirtualService, "vs", vs(spec.clone()))]);
    let p = patches(&reconcile(&cfg, &plan(20), &mut routes).unwrap());
    let http = &p[0].2["spec"]["http"];
    assert_eq!((http[0]["route"][1]["weight"].clone(), http[1]["route"][1]["weight"].clone()), (json!(20), json!(20)));
    assert_eq!(http[2]["route"][1]["weight"], 0, "an unnamed route is left alone");
    cfg.virtual_service.as_mut().unwrap().routes = vec!["missing".into()];
    let err = reconcile(&cfg, &plan(20), &mut store(&[(RouteKind::VirtualService, "vs", vs(spec.clone()))])).unwrap_err();
    assert_eq!(err.to_string(), "HTTP Route 'missing' is not found in the defined Virtual Service.");
    // Several routes and none named: Argo's error.
    let err = reconcile(&host_level("vs"), &plan(20), &mut store(&[(RouteKind::VirtualService, "vs", vs(spec))])).unwrap_err();
    assert!(err.to_string().starts_with("spec.http[] should be set in VirtualService and it must have exactly one route"), "{err}");
}

#[test]
fn a_route_without_both_services_is_refused_and_other_destinations_are_removed() {
    let missing = json!({"http": [{"route": [{"destination": {"host": "stable"}, "weight": 100}]}]});
    let err = reconcile(&host_level("vs"), &plan(5), &mut store(&[(RouteKind::VirtualService, "vs", vs(missing))])).unwrap_err();
    assert_eq!(err.to_string(), "Canary Service 'canary' not found in route");
    let extra = json!({"http": [{"route": [
        {"destination": {"host": "stable"}, "weight": 50}, {"destination": {"host": "canary"}, "weight": 0},
        {"destination": {"host": "legacy"}, "weight": 50}]}]});
    let p = patches(&reconcile(&host_level("vs"), &plan(5), &mut store(&[(RouteKind::VirtualService, "vs", vs(extra))])).unwrap());
    assert_eq!(
        p[0].2["spec"]["http"][0]["route"],
        json!([{"destination": {"host": "stable"}, "weight": 95}, {"destination": {"host": "canary"}, "weight": 5}])
    );
}

#[test]
fn experiment_destinations_are_appended_and_taken_from_the_stable() {
    let mut p = plan(10);
    p.additional = vec![WeightDestination { weight: 5, service_name: "exp-svc".into(), pod_template_hash: "e1".into() }];
    let mut routes = store(&[(RouteKind::VirtualService, "vs", vs(json!({"http": [http_route(None, 100, 0)]})))]);
    let out = patches(&reconcile(&host_level("vs"), &p, &mut routes).unwrap());
    let route = &out[0].2["spec"]["http"][0]["route"];
    assert_eq!(route[0]["weight"], 85);
    assert_eq!(route[1]["weight"], 10);
    assert_eq!(route[2], json!({"destination": {"host": "exp-svc"}, "weight": 5}));
    // The experiment ends: its destination goes.
    let out = patches(&reconcile(&host_level("vs"), &plan(10), &mut routes).unwrap());
    assert_eq!(out[0].2["spec"]["http"][0]["route"].as_array().map(Vec::len), Some(2));
}

fn subset_level() -> (IstioTrafficRouting, BTreeMap<String, Value>) {
    let cfg = IstioTrafficRouting {
        virtual_service: Some(IstioVirtualService { name: "vs".into(), routes: vec!["primary".into()], ..Default::default() }),
        destination_rule: Some(IstioDestinationRule {
            name: "dr".into(),
            canary_subset_name: "canary".into(),
            stable_subset_name: "stable".into(),
            additional_subset_names: vec!["pinned".into()],
        }),
        ..Default::default()
    };
    let spec = json!({"http": [{"name": "primary", "route": [
        {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
        {"destination": {"host": "web", "subset": "canary"}, "weight": 0},
        {"destination": {"host": "web", "subset": "pinned"}, "weight": 10}]}]});
    let dr = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule", "metadata": {"name": "dr"},
        "spec": {"host": "web", "subsets": [
            {"name": "stable", "labels": {"app": "web"}, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
            {"name": "canary", "labels": {"app": "web"}},
            {"name": "pinned", "labels": {"version": "v0"}},
            {"name": "stray", "labels": {"app": "web"}}]}});
    (cfg, store(&[(RouteKind::VirtualService, "vs", vs(spec)), (RouteKind::DestinationRule, "dr", dr)]))
}

#[test]
fn subset_level_labels_the_subsets_marks_the_rule_and_weights_by_subset() {
    let (cfg, mut routes) = subset_level();
    let mut p = plan(30);
    (p.canary_service, p.stable_service) = (String::new(), String::new());
    let actions = reconcile(&cfg, &p, &mut routes).unwrap();
    let out = patches(&actions);
    assert_eq!(out.iter().map(|(k, n, _)| (*k, n.as_str())).collect::<Vec<_>>(), [(RouteKind::DestinationRule, "dr"), (RouteKind::VirtualService, "vs")]);
    let subsets = &out[0].2["spec"]["subsets"];
    assert_eq!(subsets[0]["labels"], json!({"app": "web", "rollouts-pod-template-hash": "st4bl3"}));
    assert_eq!(subsets[0]["trafficPolicy"]["loadBalancer"]["simple"], "ROUND_ROBIN", "other subset fields are kept");
    assert_eq!(subsets[1]["labels"], json!({"app": "web", "rollouts-pod-template-hash": "c4n4ry"}));
    assert_eq!(subsets[2]["name"], "pinned");
    assert_eq!(subsets.as_array().map(Vec::len), Some(3), "a subset that is neither is dropped: {subsets}");
    assert_eq!(out[0].2["metadata"]["annotations"]["argo-rollouts.argoproj.io/managed-by-rollouts"], "web");
    let route = &out[1].2["spec"]["http"][0]["route"];
    // The stable gives the additional subset its 10 too: 100 − 30 − 10.
    assert_eq!([route[0]["weight"].clone(), route[1]["weight"].clone(), route[2]["weight"].clone()], [json!(60), json!(30), json!(10)]);
    // Back to weight 0 with another canary: the VirtualService moves first.
    let mut p = p.clone();
    p.weight = 0;
    p.canary_hash = "n3w".into();
    let out = patches(&reconcile(&cfg, &p, &mut routes).unwrap());
    assert_eq!(out.iter().map(|(k, _, _)| *k).collect::<Vec<_>>(), [RouteKind::VirtualService, RouteKind::DestinationRule]);
}

#[test]
fn the_rule_waits_for_a_traffic_receiving_replica_set_only_without_services() {
    let (cfg, _) = subset_level();
    let rs = |name: &str, hash: &str, replicas: i32, available: i32| -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"rollouts-pod-template-hash": hash}},
            "spec": {"replicas": replicas, "selector": {}}, "status": {"replicas": replicas, "availableReplicas": available}}))
        .unwrap()
    };
    let sets = [rs("web-st4bl3", "st4bl3", 3, 3), rs("web-c4n4ry", "c4n4ry", 1, 0), rs("web-old", "old", 1, 0)];
    let mut p = plan(10);
    assert_eq!(delayed_by(&cfg, &p, &sets, false), None, "with Services, never");
    (p.canary_service, p.stable_service) = (String::new(), String::new());
    assert_eq!(delayed_by(&cfg, &p, &sets, false).as_deref(), Some("web-c4n4ry"));
    assert_eq!(delayed_by(&cfg, &p, &sets, true), None, "an aborting canary does not hold the stable back");
    assert_eq!(delayed_by(&host_level("vs"), &p, &sets, false), None, "host level: no rule to delay");
}

#[test]
fn header_and_mirror_routes_come_first_in_managed_routes_order_and_go_when_not_in_force() {
    let (cfg, mut routes) = subset_level();
    let mut p = plan(20);
    p.managed_routes = vec!["mirror".into(), "header".into()];
    p.header_routes = vec![SetHeaderRoute {
        name: "header".into(),
        matches: Some(vec![HeaderRoutingMatch { header_name: "x-canary".into(), header_value: StringMatch { exact: "yes".into(), ..Default::default() } }]),
    }];
    p.mirror_routes = vec![SetMirrorRoute {
        name: "mirror".into(),
        matches: Some(vec![RouteMatch { path: Some(StringMatch { prefix: "/api".into(), ..Default::default() }), ..Default::default() }]),
        percentage: None,
    }];
    let out = patches(&reconcile(&cfg, &p, &mut routes).unwrap());
    let http = &out[1].2["spec"]["http"];
    assert_eq!(http[0]["name"], "mirror");
    assert_eq!(http[0]["match"], json!([{"uri": {"prefix": "/api"}}]));
    assert_eq!(http[0]["mirror"], json!({"host": "web", "subset": "canary"}));
    assert_eq!(http[0]["mirrorPercentage"], json!({"value": 100}));
    assert_eq!(http[0]["route"], http[2]["route"], "the mirror route keeps the weighted route's destinations");
    assert_eq!(
        http[1],
        json!({"name": "header", "match": [{"headers": {"x-canary": {"exact": "yes"}}}],
               "route": [{"destination": {"host": "web", "subset": "canary"}, "weight": 100}]})
    );
    assert_eq!(http[2]["name"], "primary");
    // The steps' routes are no longer in force: both go (Argo's RemoveManagedRoutes).
    p.header_routes.clear();
    p.mirror_routes.clear();
    let out = patches(&reconcile(&cfg, &p, &mut routes).unwrap());
    let http = out[0].2["spec"]["http"].as_array().cloned().unwrap_or_default();
    assert_eq!(http.iter().map(|r| r["name"].clone()).collect::<Vec<_>>(), [json!("primary")]);
}

#[test]
fn a_header_route_on_host_level_goes_to_the_canary_service_on_the_weighted_port() {
    let mut p = plan(0);
    p.managed_routes = vec!["h".into()];
    p.header_routes = vec![SetHeaderRoute {
        name: "h".into(),
        matches: Some(vec![HeaderRoutingMatch { header_name: "agent".into(), header_value: StringMatch { regex: ".*Firefox.*".into(), ..Default::default() } }]),
    }];
    let mut routes = store(&[(RouteKind::VirtualService, "vs", vs(json!({"http": [http_route(None, 100, 0)]})))]);
    let out = patches(&reconcile(&host_level("vs"), &p, &mut routes).unwrap());
    assert_eq!(out[0].2["spec"]["http"][0]["route"], json!([{"destination": {"host": "canary", "port": {"number": 8080}}, "weight": 100}]));
    assert_eq!(out[0].2["spec"]["http"][0]["match"], json!([{"headers": {"agent": {"regex": ".*Firefox.*"}}}]));
}

#[test]
fn tls_and_tcp_routes_are_found_by_port_and_sni_hosts() {
    let dest = json!([{"destination": {"host": "stable"}, "weight": 100}, {"destination": {"host": "canary"}, "weight": 0}]);
    let spec = json!({
        "tls": [{"match": [{"port": 443, "sniHosts": ["a.example"]}], "route": dest},
                {"match": [{"port": 443, "sniHosts": ["b.example"]}], "route": dest}],
        "tcp": [{"match": [{"port": 5432}], "route": dest}, {"match": [{"port": 6379}], "route": dest}],
    });
    let mut cfg = host_level("vs.mesh");
    let v = cfg.virtual_service.as_mut().unwrap();
    v.tls_routes = vec![IstioTlsRoute { port: 443, sni_hosts: vec!["b.example".into()] }];
    v.tcp_routes = vec![IstioTcpRoute { port: 6379 }];
    let mut routes = store(&[(RouteKind::VirtualService, "vs", vs(spec))]);
    let actions = reconcile(&cfg, &plan(40), &mut routes).unwrap();
    let [Action::PatchRoute { namespace, patch, .. }, ..] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(namespace.as_deref(), Some("mesh"), "name.namespace names the namespace");
    assert_eq!(patch["spec"]["tls"][0]["route"][1]["weight"], 0);
    assert_eq!(patch["spec"]["tls"][1]["route"][1]["weight"], 40);
    assert_eq!(patch["spec"]["tcp"][0]["route"][1]["weight"], 0);
    assert_eq!(patch["spec"]["tcp"][1]["route"][1]["weight"], 40);
    cfg.virtual_service.as_mut().unwrap().tcp_routes = vec![IstioTcpRoute { port: 1 }];
    let err = reconcile(&cfg, &plan(40), &mut routes).unwrap_err();
    assert_eq!(err.to_string(), "No matching TCP routes found in the defined Virtual Service.");
}

#[test]
fn a_missing_object_is_not_found_and_nothing_is_written() {
    let (cfg, mut routes) = subset_level();
    routes.remove(&route_key(RouteKind::VirtualService, "vs"));
    let before = routes.clone();
    let err = reconcile(&cfg, &plan(10), &mut routes).unwrap_err();
    assert_eq!(err, RouterError::NotFound { kind: "VirtualService", name: "vs".into() });
    // The rule was patched in the map before the VirtualService was found missing; the
    // orchestration works on a copy and drops it.
    assert_ne!(routes, before);
}
