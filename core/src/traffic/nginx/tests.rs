//! The canary Ingress, case by case as Argo's `nginx_test.go` has them (scenarios TRF-01,
//! TRF-02, TRF-04, TRF-05).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;

use super::*;
use crate::api::{HeaderRoutingMatch, SetHeaderRoute, StringMatch};

fn plan(weight: i32) -> TrafficPlan {
    TrafficPlan {
        rollout: "rollout".into(),
        rollout_uid: "uid-rollout".into(),
        canary_service: "canary-service".into(),
        stable_service: "stable-service".into(),
        weight,
        max_weight: 100,
        ..TrafficPlan::default()
    }
}

fn cfg() -> NginxTrafficRouting {
    NginxTrafficRouting { stable_ingress: "stable-ingress".into(), ..Default::default() }
}

fn stable_ingress(name: &str, backend: &str) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"annotation-key1": "annotation-value1"}, "labels": {"label-key1": "label-value1"}},
        "spec": {
            "ingressClassName": "nginx-ext",
            "defaultBackend": {"service": {"name": backend, "port": {"number": 80}}},
            "rules": [
                {"host": "fakehost.example.com", "http": {"paths": [
                    {"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": backend, "port": {"number": 80}}}},
                    {"path": "/other", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}
                ]}},
                {"host": "unrelated.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}
                ]}}
            ]
        }
    }))
    .unwrap()
}

fn ingresses(list: Vec<Ingress>) -> BTreeMap<String, Ingress> {
    list.into_iter().map(|i| (i.metadata.name.clone().unwrap_or_default(), i)).collect()
}

#[test]
fn trf01_the_canary_ingress_copies_only_the_rules_of_the_stable_service_and_owns_nothing_else() {
    let mut all = ingresses(vec![stable_ingress("stable-ingress", "stable-service")]);
    let actions = reconcile(&cfg(), &plan(10), &mut all, Some("ns".into())).unwrap();
    let created = actions.iter().find_map(|a| if let Action::CreateIngress { ingress } = a { Some(ingress.as_ref().clone()) } else { None });
    let created = serde_json::to_value(created.expect("one create")).unwrap();
    assert_eq!(
        created,
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "rollout-stable-ingress-canary",
                "namespace": "ns",
                "annotations": {
                    "nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10"
                },
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "rollout",
                    "uid": "uid-rollout", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "ingressClassName": "nginx-ext",
                "rules": [{"host": "fakehost.example.com", "http": {"paths": [
                    {"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": "canary-service", "port": {"number": 80}}}},
                    {"path": "/other", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}
                ]}}]
            }
        })
    );
    assert!(matches!(&actions[0], Action::RecordEvent { reason, message, .. }
        if reason == "CreatingCanaryIngress" && message == "Creating canary ingress `rollout-stable-ingress-canary` with weight `10`"));
    // Applied to the working copy: the next reconcile patches nothing.
    assert_eq!(reconcile(&cfg(), &plan(10), &mut all, Some("ns".into())).unwrap(), vec![]);
}

#[test]
fn trf01_tls_the_ingress_class_annotation_and_each_of_several_stable_ingresses() {
    let mut a = stable_ingress("stable-ingress", "stable-service");
    a.metadata.annotations.get_or_insert_with(BTreeMap::new).insert("kubernetes.io/ingress.class".into(), "nginx-foo".into());
    a.spec.as_mut().unwrap().tls = Some(serde_json::from_value(json!([
        {"hosts": ["fakehost.example.com"], "secretName": "tls-secret-name"},
        {"hosts": ["fakehost.example.com", "*.example.com"], "secretName": "tls-secret-name-two"}
    ])).unwrap());
    let b = stable_ingress("additional-stable-ingress", "stable-service");
    let cfg = NginxTrafficRouting {
        stable_ingresses: vec!["stable-ingress".into(), "additional-stable-ingress".into()],
        ..Default::default()
    };
    let mut all = ingresses(vec![a, b]);
    let actions = reconcile(&cfg, &plan(10), &mut all, None).unwrap();
    let created: Vec<&Ingress> = actions
        .iter()
        .filter_map(|a| if let Action::CreateIngress { ingress } = a { Some(ingress.as_ref()) } else { None })
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].metadata.name.as_deref(), Some("rollout-stable-ingress-canary"));
    assert_eq!(created[1].metadata.name.as_deref(), Some("rollout-additional-stable-ingress-canary"));
    let first = serde_json::to_value(created[0]).unwrap();
    assert_eq!(first["metadata"]["annotations"]["kubernetes.io/ingress.class"], "nginx-foo");
    assert_eq!(first["spec"]["tls"][1]["hosts"][1], "*.example.com");
    assert!(serde_json::to_value(created[1]).unwrap()["spec"].get("tls").is_none(), "no TLS on the stable, none on the canary");
}

#[test]
fn trf02_only_the_changed_weight_is_patched_and_an_equal_one_is_not() {
    let mut all = ingresses(vec![stable_ingress("stable-ingress", "stable-service")]);
    let _ = reconcile(&cfg(), &plan(10), &mut all, None).unwrap();
    let actions = reconcile(&cfg(), &plan(15), &mut all, None).unwrap();
    assert_eq!(
        actions[1],
        Action::PatchIngress {
            name: "rollout-stable-ingress-canary".into(),
            patch: json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "15"}}}),
        }
    );
    assert!(matches!(&actions[0], Action::RecordEvent { reason, message, .. }
        if reason == "PatchingCanaryIngress" && message == "Updating Ingress `rollout-stable-ingress-canary` to desiredWeight '15'"));
    assert_eq!(reconcile(&cfg(), &plan(15), &mut all, None).unwrap(), vec![]);
}

#[test]
fn trf02_a_changed_stable_rule_is_carried_to_the_canary() {
    let mut all = ingresses(vec![stable_ingress("stable-ingress", "stable-service")]);
    let _ = reconcile(&cfg(), &plan(10), &mut all, None).unwrap();
    let stable = all.get_mut("stable-ingress").unwrap();
    stable.spec.as_mut().unwrap().rules.as_mut().unwrap()[0].http.as_mut().unwrap().paths[0].path = Some("/bar".into());
    let actions = reconcile(&cfg(), &plan(10), &mut all, None).unwrap();
    let Action::PatchIngress { patch, .. } = &actions[1] else { panic!("{actions:?}") };
    assert_eq!(patch["spec"]["rules"][0]["http"]["paths"][0]["path"], "/bar");
    assert!(patch.get("metadata").is_none(), "{patch}");
}

#[test]
fn trf04_max_traffic_weight_adds_the_total() {
    let mut all = ingresses(vec![stable_ingress("stable-ingress", "stable-service")]);
    let mut p = plan(10);
    p.max_weight = 1000;
    p.max_weight_set = true;
    let _ = reconcile(&cfg(), &p, &mut all, None).unwrap();
    p.weight = 15;
    let actions = reconcile(&cfg(), &p, &mut all, None).unwrap();
    assert_eq!(
        actions[1],
        Action::PatchIngress {
            name: "rollout-stable-ingress-canary".into(),
            patch: json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "15"}}}),
        }
    );
    let live = serde_json::to_value(&all["rollout-stable-ingress-canary"]).unwrap();
    assert_eq!(live["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight-total"], "1000");
}

#[test]
fn annotations_in_argos_order_with_the_prefix_and_live_extras_kept() {
    let cfg = NginxTrafficRouting {
        stable_ingress: "stable-ingress".into(),
        annotation_prefix: "custom.nginx".into(),
        additional_ingress_annotations: BTreeMap::from([
            ("canary-by-header".into(), "X-Canary".into()),
            ("custom.nginx/canary-weight".into(), "99".into()),
        ]),
        canary_ingress_annotations: BTreeMap::from([("my-org/team".into(), "a".into())]),
        ..Default::default()
    };
    let mut all = ingresses(vec![stable_ingress("stable-ingress", "stable-service")]);
    let _ = reconcile(&cfg, &plan(5), &mut all, None).unwrap();
    let live = all.get_mut("rollout-stable-ingress-canary").unwrap();
    let ann = live.metadata.annotations.as_mut().unwrap();
    assert_eq!(ann["custom.nginx/canary-by-header"], "X-Canary");
    assert_eq!(ann["custom.nginx/canary-weight"], "5", "canary-weight always wins");
    assert_eq!(ann["my-org/team"], "a");
    ann.insert("rancher/added".into(), "x".into());
    assert_eq!(reconcile(&cfg, &plan(5), &mut all, None).unwrap(), vec![], "an annotation someone else added stays");
}

#[test]
fn a_header_route_is_written_as_canary_by_header_and_removed_with_the_route() {
    let mut all = ingresses(vec![stable_ingress("stable-ingress", "stable-service")]);
    let mut p = plan(5);
    p.header_routes = vec![SetHeaderRoute {
        name: "h".into(),
        matches: Some(vec![HeaderRoutingMatch {
            header_name: "X-Canary".into(),
            header_value: StringMatch { prefix: "yes.".into(), ..Default::default() },
        }]),
    }];
    let _ = reconcile(&cfg(), &p, &mut all, None).unwrap();
    let ann = all["rollout-stable-ingress-canary"].metadata.annotations.clone().unwrap();
    assert_eq!(ann["nginx.ingress.kubernetes.io/canary-by-header"], "X-Canary");
    assert_eq!(ann["nginx.ingress.kubernetes.io/canary-by-header-pattern"], "^yes\\.");
    p.header_routes.clear();
    let actions = reconcile(&cfg(), &p, &mut all, None).unwrap();
    assert_eq!(
        actions[1],
        Action::PatchIngress {
            name: "rollout-stable-ingress-canary".into(),
            patch: json!({"metadata": {"annotations": {
                "nginx.ingress.kubernetes.io/canary-by-header": null,
                "nginx.ingress.kubernetes.io/canary-by-header-pattern": null
            }}}),
        }
    );
}

#[test]
fn trf05_the_error_cases() {
    let mut none = BTreeMap::new();
    assert_eq!(
        reconcile(&cfg(), &plan(10), &mut none, None).unwrap_err().to_string(),
        "Ingress `stable-ingress` not found"
    );
    let mut wrong = ingresses(vec![stable_ingress("stable-ingress", "other-service")]);
    assert_eq!(
        reconcile(&cfg(), &plan(10), &mut wrong, None).unwrap_err().to_string(),
        "ingress `stable-ingress` has no rules using service stable-service backend"
    );
    let mut all = ingresses(vec![stable_ingress("stable-ingress", "stable-service")]);
    let _ = reconcile(&cfg(), &plan(10), &mut all, None).unwrap();
    all.get_mut("rollout-stable-ingress-canary").unwrap().metadata.owner_references = None;
    assert_eq!(
        reconcile(&cfg(), &plan(15), &mut all, None).unwrap_err().to_string(),
        "canary ingress `rollout-stable-ingress-canary` controlled by different object"
    );
}

#[test]
fn the_canary_name_is_cut_as_argo_cuts_it() {
    let long = "x".repeat(300);
    let name = canary_ingress_name("ro", &long);
    assert_eq!(name.len(), 253);
    assert!(name.starts_with("ro-xxx") && name.ends_with("x-canary"));
    assert_eq!(canary_ingress_name("rollouts-demo", "rollouts-demo-stable"), "rollouts-demo-rollouts-demo-stable-canary");
}
