use super::*;
use crate::api::{HeaderRoutingMatch, StickinessConfig, StringMatch, WeightDestination};
use crate::traffic::PingPongServices;

fn cfg() -> AlbTrafficRouting {
    AlbTrafficRouting { ingress: "ingress".into(), service_port: 443, ..AlbTrafficRouting::default() }
}

fn plan(weight: i32) -> TrafficPlan {
    TrafficPlan {
        rollout: "rollout".into(),
        rollout_uid: "uid".into(),
        canary_service: "canary-svc".into(),
        stable_service: "stable-svc".into(),
        weight,
        max_weight: 100,
        ..TrafficPlan::default()
    }
}

/// Argo's test Ingress: one rule whose one path goes to `action_service` on
/// `use-annotation`, plus `annotations`.
fn ingress(name: &str, action_service: &str, annotations: Value) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"rules": [{"http": {"paths": [
            {"pathType": "ImplementationSpecific", "backend": {"service": {"name": action_service, "port": {"name": "use-annotation"}}}}
        ]}}]}
    }))
    .unwrap()
}

fn ingresses(list: Vec<Ingress>) -> BTreeMap<String, Ingress> {
    list.into_iter().map(|i| (i.metadata.name.clone().unwrap_or_default(), i)).collect()
}

fn annotation(ingresses: &BTreeMap<String, Ingress>, name: &str, key: &str) -> Option<String> {
    ingresses[name].metadata.annotations.as_ref()?.get(key).cloned()
}

#[test]
fn the_forward_action_is_argo_s_json_byte_for_byte() {
    assert_eq!(
        forward_action(&cfg(), &plan(10)).unwrap(),
        r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"canary-svc","ServicePort":"443","Weight":10},{"ServiceName":"stable-svc","ServicePort":"443","Weight":90}]}}"#
    );
    // A zero weight is written, not left out (Argo's TestGetForwardActionStringMarshalsZeroCorrectly).
    assert!(forward_action(&cfg(), &plan(0)).unwrap().contains(r#""ServiceName":"canary-svc","ServicePort":"443","Weight":0}"#));
}

#[test]
fn stickiness_is_written_when_enabled_and_refused_out_of_aws_s_range() {
    let mut c = cfg();
    c.stickiness_config = Some(StickinessConfig { enabled: true, duration_seconds: 300 });
    assert!(forward_action(&c, &plan(10))
        .unwrap()
        .ends_with(r#"],"TargetGroupStickinessConfig":{"Enabled":true,"DurationSeconds":300}}}"#));
    c.stickiness_config = Some(StickinessConfig { enabled: false, duration_seconds: 300 });
    assert!(!forward_action(&c, &plan(10)).unwrap().contains("Stickiness"));
    for bad in [0, -1, 604_801] {
        c.stickiness_config = Some(StickinessConfig { enabled: true, duration_seconds: bad });
        let err = forward_action(&c, &plan(10)).unwrap_err();
        assert_eq!(err.to_string(), "TargetGroupStickinessConfig's duration must be between 1 and 604800 seconds (7 days)!");
    }
}

#[test]
fn experiment_destinations_sit_between_canary_and_stable_and_take_from_the_stable() {
    let mut p = plan(10);
    p.additional = vec![
        WeightDestination { weight: 5, service_name: "ex-a".into(), pod_template_hash: "a".into() },
        WeightDestination { weight: 15, service_name: "ex-b".into(), pod_template_hash: "b".into() },
    ];
    assert_eq!(
        forward_action(&cfg(), &p).unwrap(),
        r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"canary-svc","ServicePort":"443","Weight":10},{"ServiceName":"ex-a","ServicePort":"443","Weight":5},{"ServiceName":"ex-b","ServicePort":"443","Weight":15},{"ServiceName":"stable-svc","ServicePort":"443","Weight":70}]}}"#
    );
}

#[test]
fn the_first_weight_adds_the_action_and_records_the_key_as_managed_by_the_rollout() {
    let mut live = ingresses(vec![ingress("ingress", "stable-svc", json!({"other": "kept"}))]);
    let actions = reconcile(&cfg(), &plan(10), &mut live).unwrap();
    let [Action::RecordEvent { reason, message, .. }, Action::PatchIngress { name, patch }] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(reason, "PatchingALBIngress");
    assert_eq!(message, "Updating Ingress `ingress` to desiredWeight '10'");
    assert_eq!(name, "ingress");
    assert_eq!(
        patch,
        &json!({"metadata": {"annotations": {
            "alb.ingress.kubernetes.io/actions.stable-svc": forward_action(&cfg(), &plan(10)).unwrap(),
            "rollouts.argoproj.io/managed-alb-annotations": r#"{"rollout":["alb.ingress.kubernetes.io/actions.stable-svc"]}"#,
        }}})
    );
    assert_eq!(annotation(&live, "ingress", "other").as_deref(), Some("kept"));
    // Nothing to do at the same weight (Argo's TestNoChanges).
    assert_eq!(reconcile(&cfg(), &plan(10), &mut live).unwrap(), vec![]);
    // The next weight patches the action only.
    let actions = reconcile(&cfg(), &plan(30), &mut live).unwrap();
    let [_, Action::PatchIngress { patch, .. }] = &actions[..] else { panic!("{actions:?}") };
    let keys: Vec<&String> = patch["metadata"]["annotations"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["alb.ingress.kubernetes.io/actions.stable-svc"]);
}

#[test]
fn other_rollouts_keys_and_a_custom_prefix_and_root_service_are_respected() {
    let mut c = cfg();
    c.annotation_prefix = "custom.alb.io".into();
    c.root_service = "root".into();
    let managed = r#"{"another":["custom.alb.io/actions.theirs"]}"#;
    let mut live = ingresses(vec![ingress("ingress", "root", json!({MANAGED_ALB_ANNOTATIONS: managed}))]);
    reconcile(&c, &plan(20), &mut live).unwrap();
    assert!(annotation(&live, "ingress", "custom.alb.io/actions.root").is_some());
    assert_eq!(
        annotation(&live, "ingress", MANAGED_ALB_ANNOTATIONS).as_deref(),
        Some(r#"{"another":["custom.alb.io/actions.theirs"],"rollout":["custom.alb.io/actions.root"]}"#)
    );
}

#[test]
fn every_ingress_of_ingresses_gets_the_action_and_errors_are_argo_s() {
    let mut c = cfg();
    c.ingress.clear();
    c.ingresses = vec!["ingress".into(), "multi-ingress".into()];
    let mut live = ingresses(vec![ingress("ingress", "stable-svc", json!({})), ingress("multi-ingress", "stable-svc", json!({}))]);
    let actions = reconcile(&c, &plan(10), &mut live).unwrap();
    assert_eq!(actions.iter().filter(|a| matches!(a, Action::PatchIngress { .. })).count(), 2);

    let mut missing = ingresses(vec![ingress("ingress", "stable-svc", json!({}))]);
    assert_eq!(reconcile(&c, &plan(10), &mut missing).unwrap_err().to_string(), "Ingress `multi-ingress` not found");
    let mut no_rule = ingresses(vec![ingress("ingress", "other", json!({}))]);
    assert_eq!(
        reconcile(&cfg(), &plan(10), &mut no_rule).unwrap_err().to_string(),
        "ingress `ingress` does not have service `stable-svc` in rules"
    );
    let mut bad = ingresses(vec![ingress("ingress", "stable-svc", json!({MANAGED_ALB_ANNOTATIONS: "test"}))]);
    assert!(reconcile(&cfg(), &plan(10), &mut bad).unwrap_err().to_string().contains(MANAGED_ALB_ANNOTATIONS));
}

#[test]
fn with_ping_pong_the_target_groups_are_the_ping_and_pong_services() {
    let mut c = cfg();
    c.root_service = "root-service".into();
    let mut p = plan(10);
    p.stable_service.clear();
    p.canary_service.clear();
    p.ping_pong = Some(PingPongServices { stable: "ping-service".into(), canary: "pong-service".into() });
    let mut live = ingresses(vec![ingress("ingress", "root-service", json!({}))]);
    reconcile(&c, &p, &mut live).unwrap();
    assert_eq!(
        annotation(&live, "ingress", "alb.ingress.kubernetes.io/actions.root-service").as_deref(),
        Some(r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"pong-service","ServicePort":"443","Weight":10},{"ServiceName":"ping-service","ServicePort":"443","Weight":90}]}}"#)
    );
}

fn header_route(name: &str, matches: &[(&str, &str)]) -> SetHeaderRoute {
    SetHeaderRoute {
        name: name.into(),
        matches: Some(
            matches
                .iter()
                .map(|(h, v)| HeaderRoutingMatch {
                    header_name: h.to_string(),
                    header_value: StringMatch { exact: v.to_string(), ..StringMatch::default() },
                })
                .collect(),
        ),
    }
}

#[test]
fn a_header_route_adds_its_action_conditions_and_path_and_goes_away_with_the_route() {
    let mut p = plan(10);
    p.managed_routes = vec!["header-route".into()];
    p.header_routes =
        vec![header_route("header-route", &[("origin", "https://a.example"), ("Agent", "Chrome"), ("origin", "https://b.example")])];
    let mut live = ingresses(vec![ingress("ingress", "stable-svc", json!({}))]);
    reconcile(&cfg(), &p, &mut live).unwrap();
    assert_eq!(
        annotation(&live, "ingress", "alb.ingress.kubernetes.io/actions.header-route").as_deref(),
        Some(r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"canary-svc","ServicePort":"443","Weight":100}]}}"#)
    );
    // Two exact matches on one header share a condition (Argo's upsertCondition).
    assert_eq!(
        annotation(&live, "ingress", "alb.ingress.kubernetes.io/conditions.header-route").as_deref(),
        Some(r#"[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"origin","values":["https://a.example","https://b.example"]}},{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"Agent","values":["Chrome"]}}]"#)
    );
    assert_eq!(
        annotation(&live, "ingress", MANAGED_ALB_ANNOTATIONS).as_deref(),
        Some(r#"{"rollout":["alb.ingress.kubernetes.io/actions.stable-svc","alb.ingress.kubernetes.io/actions.header-route","alb.ingress.kubernetes.io/conditions.header-route"]}"#)
    );
    let paths = serde_json::to_value(&live["ingress"].spec.as_ref().unwrap().rules.as_ref().unwrap()[0]).unwrap();
    assert_eq!(
        paths["http"]["paths"],
        json!([
            {"path": "/*", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "header-route", "port": {"name": "use-annotation"}}}},
            {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "stable-svc", "port": {"name": "use-annotation"}}}},
        ])
    );
    assert_eq!(reconcile(&cfg(), &p, &mut live).unwrap(), vec![], "converged");

    // The route is removed (promotion, abort, or a step without match): all three go.
    p.header_routes.clear();
    let actions = reconcile(&cfg(), &p, &mut live).unwrap();
    let [Action::RecordEvent { message, .. }, Action::PatchIngress { patch, .. }] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(message, "Updating Ingress `ingress` removing managed routes");
    assert_eq!(patch["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.header-route"], Value::Null);
    assert_eq!(patch["spec"]["rules"][0]["http"]["paths"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        annotation(&live, "ingress", MANAGED_ALB_ANNOTATIONS).as_deref(),
        Some(r#"{"rollout":["alb.ingress.kubernetes.io/actions.stable-svc"]}"#)
    );
    assert!(annotation(&live, "ingress", "alb.ingress.kubernetes.io/conditions.header-route").is_none());
}

#[test]
fn managed_route_paths_come_first_in_managed_routes_order() {
    let mut p = plan(10);
    p.managed_routes = vec!["first".into(), "second".into()];
    p.header_routes = vec![header_route("second", &[("h", "2")])];
    let mut live = ingresses(vec![ingress("ingress", "stable-svc", json!({}))]);
    reconcile(&cfg(), &p, &mut live).unwrap();
    p.header_routes = vec![header_route("first", &[("h", "1")]), header_route("second", &[("h", "2")])];
    reconcile(&cfg(), &p, &mut live).unwrap();
    let rule = &live["ingress"].spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    let order: Vec<&str> = rule.http.as_ref().unwrap().paths.iter().filter_map(path_service).collect();
    assert_eq!(order, vec!["first", "second", "stable-svc"]);
}
