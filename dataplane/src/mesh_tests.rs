use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::cluster::PORT_ANNOTATION;

fn object(v: Value) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(v).unwrap())
}

fn pod(name: &str, hash: &str, port: u16) -> Arc<k8s_openapi::api::core::v1::Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web", "rollouts-pod-template-hash": hash},
                         "annotations": {PORT_ANNOTATION: port.to_string()}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap(),
    )
}

fn service(name: &str, selector: Value) -> Arc<k8s_openapi::api::core::v1::Service> {
    Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"selector": selector}})).unwrap())
}

fn snapshot() -> Snapshot {
    Snapshot {
        pods: vec![pod("s1", "st", 1001), pod("s2", "st", 1002), pod("c1", "ca", 2001)],
        services: vec![
            service("web", json!({"app": "web"})),
            service("web-stable", json!({"app": "web", "rollouts-pod-template-hash": "st"})),
            service("web-canary", json!({"app": "web", "rollouts-pod-template-hash": "ca"})),
        ],
        ..Snapshot::default()
    }
}

fn plan_of(snapshot: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    add_to(&mut plan, snapshot, &Endpoints::of(snapshot));
    plan
}

#[test]
fn routes_are_served_in_order_with_weights_subsets_and_a_mirror() {
    let mut s = snapshot();
    s.destination_rules = vec![object(json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule",
        "metadata": {"name": "dr", "namespace": "ns"},
        "spec": {"host": "web", "subsets": [
            {"name": "stable", "labels": {"rollouts-pod-template-hash": "st"}},
            {"name": "canary", "labels": {"rollouts-pod-template-hash": "ca"}}]}}))];
    s.virtual_services = vec![object(json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "vs", "namespace": "ns"},
        "spec": {"hosts": ["Web.Example"], "http": [
            {"name": "mirror", "match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"}}],
             "route": [{"destination": {"host": "web", "subset": "stable"}, "weight": 100}],
             "mirror": {"host": "web", "subset": "canary"}, "mirrorPercentage": {"value": 25.5}},
            {"name": "header", "match": [{"headers": {"X-Canary": {"exact": "yes"}}}, {"headers": {"x-beta": {"prefix": "on"}}}],
             "route": [{"destination": {"host": "web.ns.svc.cluster.local", "subset": "canary"}}]},
            {"name": "primary", "route": [
                {"destination": {"host": "web", "subset": "stable"}, "weight": 70},
                {"destination": {"host": "web", "subset": "canary"}, "weight": 30},
                {"destination": {"host": "web", "subset": "gone"}, "weight": 0}]}]}}))];
    let plan = plan_of(&s);
    assert_eq!(plan.ignored, vec![]);
    let [vh] = plan.virtual_hosts.as_slice() else { panic!("{plan:?}") };
    assert_eq!(vh.domain, "web.example");
    let names: Vec<_> = vh.entries.iter().map(|e| e.rule_name.clone().unwrap_or_default()).collect();
    assert_eq!(names, ["mirror", "header", "header", "primary"], "first match, one entry per match");
    assert_eq!(vh.entries[0].matches.path, PathMatch::Prefix("/api".into()));
    assert_eq!(vh.entries[0].matches.method.as_deref(), Some("GET"));
    let mirror = vh.entries[0].mirror.as_ref().unwrap();
    assert_eq!((mirror.service.as_str(), mirror.per_million, mirror.ports.clone()), ("web/canary", 255_000, vec![2001]));
    assert_eq!(vh.entries[1].matches.headers[0].name, "x-canary");
    assert_eq!(vh.entries[2].matches.headers[0].kind, "Prefix");
    assert_eq!(vh.entries[1].backends[0].weight, 100, "a lone destination gets everything");
    let primary = &vh.entries[3].backends;
    assert_eq!(primary.len(), 2, "weight 0 gets nothing");
    assert_eq!((primary[0].service.as_str(), primary[0].ports.clone()), ("web/stable", Some(vec![1001, 1002])));
    assert_eq!((primary[1].weight, primary[1].ports.clone()), (30, Some(vec![2001])));
}

#[test]
fn host_level_destinations_are_services_and_a_missing_subset_is_invalid() {
    let mut s = snapshot();
    s.virtual_services = vec![object(json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "vs", "namespace": "ns"},
        "spec": {"hosts": ["web"], "http": [{"route": [
            {"destination": {"host": "web-stable"}, "weight": 90},
            {"destination": {"host": "web-canary.ns.svc.cluster.local"}, "weight": 10},
            {"destination": {"host": "web", "subset": "nope"}, "weight": 5}]}]}}))];
    let plan = plan_of(&s);
    let b = &plan.virtual_hosts[0].entries[0].backends;
    assert_eq!(b[0].ports, Some(vec![1001, 1002]));
    assert_eq!((b[1].service.as_str(), b[1].ports.clone()), ("web-canary", Some(vec![2001])));
    assert!(b[2].invalid.is_some());
}

#[test]
fn a_traffic_split_serves_its_root_service_by_weight_in_any_version() {
    let mut s = snapshot();
    s.traffic_splits = vec![object(json!({"apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"service": "web", "backends": [{"service": "web-canary", "weight": "25"}, {"service": "web-stable", "weight": 75}]}}))];
    let plan = plan_of(&s);
    let domains: Vec<_> = plan.virtual_hosts.iter().map(|v| v.domain.as_str()).collect();
    assert_eq!(domains, ["web", "web.ns", "web.ns.svc.cluster.local"]);
    let b = &plan.virtual_hosts[0].entries[0].backends;
    assert_eq!((b[0].weight, b[1].weight), (25, 75));
    assert_eq!(weight_value(&json!("1500m")), Some(1));
}

#[test]
fn something_envoy_cannot_carry_leaves_the_object_out() {
    let mut s = snapshot();
    s.virtual_services = vec![object(json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "vs", "namespace": "ns"},
        "spec": {"hosts": ["web"], "http": [{"match": [{"method": {"prefix": "G"}}], "route": [{"destination": {"host": "web"}}]}]}}))];
    let plan = plan_of(&s);
    assert!(plan.virtual_hosts.is_empty());
    assert_eq!(plan.ignored.len(), 1);
}
