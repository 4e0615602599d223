//! The shape of what the controller creates: ReplicaSet names, labels, selectors,
//! annotations, owner references, the injected anti-affinity, and Service selectors; when a
//! live ReplicaSet's template counts as the rollout's; and how ReplicaSets are scaled up and
//! down while an update goes on.

use std::sync::Arc;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use rollouts_core::api::Rollout;
use rollouts_core::rollout::templates_equal;
use rollouts_core::sim::{parse_scenario, simulate};
use rollouts_core::{step, Action, Event, Object, State, Timestamp};
use serde_json::json;

const CANARY: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: web, annotations: {team: payments}}
    spec:
      replicas: 3
      minReadySeconds: 5
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: "web:1"}]}
      strategy:
        canary:
          canaryService: web-canary
          stableService: web-stable
          steps: [{setWeight: 34}, {pause: {}}]
  - {apiVersion: v1, kind: Service, metadata: {name: web-canary}, spec: {selector: {app: web}}}
  - {apiVersion: v1, kind: Service, metadata: {name: web-stable}, spec: {selector: {app: web}}}
events:
  - {at: 1m, setImage: {rollout: web, container: web, image: "web:2"}}
until: 3m
"#;

fn replica_sets(objects: &[Object]) -> Vec<ReplicaSet> {
    let mut v: Vec<ReplicaSet> = objects
        .iter()
        .filter_map(|o| match o {
            Object::ReplicaSet(rs) => Some((**rs).clone()),
            _ => None,
        })
        .collect();
    v.sort_by_key(|rs| rs.metadata.annotations.as_ref().unwrap()["rollout.argoproj.io/revision"].clone());
    v
}

fn service<'a>(objects: &'a [Object], name: &str) -> &'a Service {
    objects
        .iter()
        .find_map(|o| match o {
            Object::Service(s) if s.metadata.name.as_deref() == Some(name) => Some(&**s),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_template_change_creates_a_replica_set_named_for_its_hash() {
    let sim = simulate(&parse_scenario(CANARY).unwrap()).unwrap();
    let objects = &sim.final_objects["web"];
    let rss = replica_sets(objects);
    assert_eq!(rss.len(), 2);
    for (rs, revision) in rss.iter().zip(["1", "2"]) {
        let hash = rs.metadata.labels.as_ref().unwrap()["rollouts-pod-template-hash"].clone();
        assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
        let spec = rs.spec.as_ref().unwrap();
        let sel = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(sel.get("rollouts-pod-template-hash"), Some(&hash));
        assert_eq!(sel.get("app").map(String::as_str), Some("web"));
        let pod_labels = spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(pod_labels.get("rollouts-pod-template-hash"), Some(&hash));
        let ann = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["rollout.argoproj.io/revision"], revision);
        assert_eq!(ann["rollout.argoproj.io/desired-replicas"], "3");
        assert_eq!(ann["team"], "payments", "rollout annotations are copied");
        assert_eq!(spec.min_ready_seconds, Some(5));
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("Rollout", "web", Some(true)));
    }
    // Paused at 34 %: one canary pod of three, services on their hashes.
    let last = &sim.final_state["web"];
    assert_eq!(last.phase, "Paused");
    let stable_hash = last.stable_hash.clone();
    let canary_hash = last.canary_hash.clone();
    assert_ne!(stable_hash, canary_hash);
    let sel = |name| service(objects, name).spec.as_ref().unwrap().selector.clone().unwrap();
    assert_eq!(sel("web-stable")["rollouts-pod-template-hash"], stable_hash);
    assert_eq!(sel("web-canary")["rollouts-pod-template-hash"], canary_hash);
    let managed = service(objects, "web-canary").metadata.annotations.clone().unwrap();
    assert_eq!(managed["argo-rollouts.argoproj.io/managed-by-rollouts"], "web");
}

/// Argo's `copyRolloutAnnotationsToReplicaSet`: a ReplicaSet carries the rollout's own
/// annotations and its revision bookkeeping, never kubectl's last-applied copy, the
/// rollout's revision or the notification record.
#[test]
fn a_replica_set_carries_the_rollout_annotations_and_nothing_else() {
    let scenario = CANARY.replace(
        "annotations: {team: payments}",
        "annotations: {team: payments, kubectl.kubernetes.io/last-applied-configuration: '{}', \
         notified.notifications.argoproj.io: '{}', rollout.argoproj.io/revision-history: '7'}",
    );
    let sim = simulate(&parse_scenario(&scenario).unwrap()).unwrap();
    let rss = replica_sets(&sim.final_objects["web"]);
    assert_eq!(rss.len(), 2);
    for rs in &rss {
        let mut keys: Vec<&str> = rs.metadata.annotations.as_ref().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["rollout.argoproj.io/desired-replicas", "rollout.argoproj.io/revision", "team"],
            "{:?}",
            rs.metadata.name
        );
    }
}

/// A ReplicaSet whose template equals the rollout's (as the API server stores it: with
/// defaults filled in, and another controller's hash label) is adopted, not duplicated.
#[test]
fn a_semantically_equal_replica_set_is_reused() {
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1,
                     "annotations": {"rollout.argoproj.io/revision": "1"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]}]}},
                 "strategy": {"canary": {"steps": [{"setWeight": 50}]}}},
        "status": {"stableRS": "argohash", "currentPodHash": "argohash", "observedGeneration": "1"}
    });
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web-argohash", "namespace": "default", "uid": "r1",
                     "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1,
                     "labels": {"app": "web", "rollouts-pod-template-hash": "argohash"},
                     "annotations": {"rollout.argoproj.io/revision": "1", "rollout.argoproj.io/desired-replicas": "2"},
                     "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "u1", "controller": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "rollouts-pod-template-hash": "argohash"}},
                 "template": {"metadata": {"labels": {"app": "web", "rollouts-pod-template-hash": "argohash"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1",
                                                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                                        "imagePullPolicy": "IfNotPresent",
                                                        "terminationMessagePath": "/dev/termination-log",
                                                        "terminationMessagePolicy": "File", "resources": {}}],
                                       "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                                       "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
                                       "securityContext": {}, "serviceAccount": "default"}}},
        "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1}
    }))
    .unwrap();
    let now = Timestamp(1_704_067_300);
    let (state, _) = step(State::default(), Event::Applied(Object::ReplicaSet(Arc::new(rs))), now);
    let (_, actions) = step(state, Event::Applied(Object::Rollout(rollout.into())), now);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::CreateReplicaSet { .. })),
        "no new ReplicaSet expected, got {actions:#?}"
    );
}

#[test]
fn blue_green_anti_affinity_is_rendered_into_the_new_replica_set() {
    let text = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: bg}
    spec:
      replicas: 2
      selector: {matchLabels: {app: bg}}
      template:
        metadata: {labels: {app: bg}}
        spec: {containers: [{name: bg, image: "bg:1"}]}
      strategy:
        blueGreen:
          activeService: bg-active
          previewService: bg-preview
          autoPromotionEnabled: false
          antiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: {weight: 50}}
  - {apiVersion: v1, kind: Service, metadata: {name: bg-active}, spec: {selector: {app: bg}}}
  - {apiVersion: v1, kind: Service, metadata: {name: bg-preview}, spec: {selector: {app: bg}}}
events:
  - {at: 1m, setImage: {rollout: bg, container: bg, image: "bg:2"}}
until: 2m
"#;
    let sim = simulate(&parse_scenario(text).unwrap()).unwrap();
    let objects = &sim.final_objects["bg"];
    let rss = replica_sets(objects);
    let stable_hash = sim.final_state["bg"].stable_hash.clone();
    let new = &rss[1];
    let affinity = new.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().affinity.clone();
    let term = &affinity.unwrap().pod_anti_affinity.unwrap().preferred_during_scheduling_ignored_during_execution.unwrap()[0];
    assert_eq!(term.weight, 50);
    let req = &term.pod_affinity_term.label_selector.as_ref().unwrap().match_expressions.as_ref().unwrap()[0];
    assert_eq!((req.key.as_str(), req.operator.as_str()), ("rollouts-pod-template-hash", "In"));
    assert_eq!(req.values.as_ref().unwrap(), &vec![stable_hash.clone()]);
    assert_eq!(term.pod_affinity_term.topology_key, "kubernetes.io/hostname");
    // The first ReplicaSet had no stable to avoid.
    assert!(rss[0].spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().affinity.is_none());
    // Paused before promotion: preview on the new hash, active still on the old one.
    let last = &sim.final_state["bg"];
    assert_eq!(last.phase, "Paused");
    let sel = |name| service(objects, name).spec.as_ref().unwrap().selector.clone().unwrap()["rollouts-pod-template-hash"].clone();
    assert_eq!(sel("bg-active"), stable_hash);
    assert_eq!(sel("bg-preview"), last.canary_hash);
}

/// Simulates a scenario and checks its `expect:` entries.
fn assert_scenario(text: &str) -> rollouts_core::sim::Simulation {
    let sim = simulate(&parse_scenario(text).unwrap()).unwrap();
    assert_eq!(sim.outcome.failed_expectations, Vec::<String>::new());
    sim
}

/// A pod template from its JSON.
fn pod_template(value: serde_json::Value) -> PodTemplateSpec {
    serde_json::from_value(value).expect("a pod template")
}

/// A canary rollout whose strategy asks for the preferred anti-affinity term.
fn anti_affine_rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
                 "strategy": {"canary": {"antiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 50}}}}},
        "status": {"stableRS": "stablehash"}
    }))
    .expect("a Rollout")
}

/// The API server may store an empty list or map where the user wrote none, or drop one
/// the user wrote: neither makes the templates differ.
#[test]
fn empty_lists_and_maps_do_not_make_templates_differ() {
    let ro = anti_affine_rollout();
    let desired = pod_template(json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:1", "args": []}]}
    }));
    let live = pod_template(json!({
        "metadata": {"labels": {"app": "web"}, "annotations": {}},
        "spec": {"containers": [{"name": "web", "image": "web:1", "env": []}], "volumes": [], "nodeSelector": {}}
    }));
    assert!(templates_equal(&live, &desired, &ro));
    let other = pod_template(json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:1", "args": ["--verbose"]}]}
    }));
    assert!(!templates_equal(&live, &other, &ro), "a non-empty difference still counts");
}

/// The anti-affinity term the controller injects against the stable pods is ignored when a
/// live template is compared; the template's own affinity is not.
#[test]
fn only_the_injected_anti_affinity_term_is_ignored_in_a_template() {
    let ro = anti_affine_rollout();
    let own_affinity = json!({
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}},
                                               "topologyKey": "kubernetes.io/hostname"}}]}
    });
    let injected = json!({"weight": 50, "podAffinityTerm": {
        "labelSelector": {"matchExpressions": [{"key": "rollouts-pod-template-hash", "operator": "In", "values": ["stablehash"]}]},
        "namespaces": ["default"], "topologyKey": "kubernetes.io/hostname"}});
    let template = |affinity: serde_json::Value| {
        let mut spec = json!({"containers": [{"name": "web", "image": "web:1"}]});
        if !affinity.is_null() {
            spec["affinity"] = affinity;
        }
        pod_template(json!({"metadata": {"labels": {"app": "web"}}, "spec": spec}))
    };
    let mut live_affinity = own_affinity.clone();
    live_affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array_mut()
        .unwrap()
        .push(injected.clone());
    let live = template(live_affinity);
    assert!(templates_equal(&live, &template(own_affinity), &ro), "the same own affinity plus the injected term");
    assert!(!templates_equal(&live, &template(serde_json::Value::Null), &ro), "an affinity the rollout's template lacks");
    let only_injected = template(json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [injected]}}));
    assert!(templates_equal(&only_injected, &template(serde_json::Value::Null), &ro));
}

/// Revision 1 of `demo` (`replicas`, the given strategy, `spec_extra` beside it in the spec,
/// image `example/app:1`), its Services, then the scenario's `rest` (events, expectations).
fn demo(replicas: i32, spec_extra: &str, strategy: &str, rest: &str) -> String {
    format!(
        r#"
objects:
  - {{apiVersion: v1, kind: Service, metadata: {{name: demo-active}}, spec: {{selector: {{app: demo}}}}}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {{name: demo}}
    spec:
      replicas: {replicas}
      selector: {{matchLabels: {{app: demo}}}}
      template:
        metadata: {{labels: {{app: demo}}}}
        spec: {{containers: [{{name: app, image: "example/app:1"}}]}}
      strategy: {strategy}
{spec_extra}
cluster:
  podStartup: 1s
  images:
    "example/app:crash": {{ready: false}}
{rest}
"#
    )
}

/// `setImage` of `demo` to `example/app:<tag>` at `at`.
fn set_image(at: &str, tag: &str) -> String {
    format!("  - {{at: {at}, setImage: {{rollout: demo, container: app, image: \"example/app:{tag}\"}}}}\n")
}

/// BG-05 with automatic promotion: the new ReplicaSet first gets `previewReplicaCount` pods,
/// and only once those are available all of them, before the active Service switches.
#[test]
fn blue_green_brings_up_the_preview_count_before_the_full_count() {
    let text = demo(
        2,
        "",
        "{blueGreen: {activeService: demo-active, previewReplicaCount: 1}}",
        &format!(
            "events:\n{}expect:
  - {{at: 10s, rollout: demo, stableRevision: 1, replicaSets: {{\"1\": {{desired: 2, role: active}}, \"2\": {{desired: 1, available: 0}}}}}}
  - {{at: 11s, rollout: demo, stableRevision: 1, replicaSets: {{\"1\": {{desired: 2, role: active}}, \"2\": {{desired: 2, available: 1}}}}}}
  - {{at: 12s, rollout: demo, phase: Healthy, stableRevision: 2, replicaSets: {{\"2\": {{desired: 2, available: 2, role: active}}}}}}
",
            set_image("10s", "2")
        ),
    );
    assert_scenario(&text);
}

/// Without `scaleDownDelayRevisionLimit`, every old ReplicaSet keeps its pods through its
/// own scale-down delay, however many updates follow (the limit's own case is the fixture
/// `bluegreen-scale-down-delay-revision-limit`).
#[test]
fn without_a_revision_limit_every_old_replica_set_waits_out_its_delay() {
    let text = demo(
        1,
        "",
        "{blueGreen: {activeService: demo-active, scaleDownDelaySeconds: 60}}",
        &format!(
            "events:\n{}{}expect:
  - {{at: 21s, rollout: demo, phase: Healthy, stableRevision: 3, replicaSets: {{\"3\": {{desired: 1, role: active}}, \"2\": {{desired: 1, available: 1}}, \"1\": {{desired: 1, available: 1}}}}}}
  - {{at: 70s, rollout: demo, replicaSets: {{\"2\": {{desired: 1}}, \"1\": {{desired: 1}}}}}}
  - {{at: 71s, rollout: demo, replicaSets: {{\"2\": {{desired: 1}}, \"1\": {{desired: 0}}}}}}
  - {{at: 81s, rollout: demo, replicaSets: {{\"3\": {{desired: 1, role: active}}, \"2\": {{desired: 0}}, \"1\": {{desired: 0}}}}}}
",
            set_image("10s", "2"),
            set_image("20s", "3")
        ),
    );
    assert_scenario(&text);
}

/// An update interrupted by another: the ReplicaSet in between, whose pods never became
/// available, is scaled down to its available pods (none) at once, even though
/// `maxUnavailable: 0` leaves no room to scale down anything available.
#[test]
fn an_interrupted_update_drops_its_unavailable_pods_at_once() {
    let text = demo(
        4,
        "",
        "{canary: {maxSurge: 1, maxUnavailable: 0, steps: [{setWeight: 25}, {pause: {}}]}}",
        &format!(
            "events:\n{}{}expect:
  - {{at: 29s, rollout: demo, replicaSets: {{\"1\": {{desired: 4, available: 4}}, \"2\": {{desired: 1, available: 0}}}}}}
  - {{at: 30s, rollout: demo, replicaSets: {{\"1\": {{desired: 4, available: 4}}, \"2\": {{desired: 0}}}}}}
",
            set_image("10s", "crash"),
            set_image("30s", "3")
        ),
    );
    assert_scenario(&text);
}

/// An update interrupted by another: the ReplicaSet in between, all of its pods available,
/// is scaled down no faster than `maxUnavailable` allows, so the rollout never has fewer
/// than `replicas − maxUnavailable` pods available.
#[test]
fn an_interrupted_update_scales_down_within_max_unavailable() {
    let text = demo(
        4,
        "",
        "{canary: {maxSurge: 1, maxUnavailable: 1, steps: [{setWeight: 50}, {pause: {}}]}}",
        &format!("events:\n{}{}until: 2m\n", set_image("10s", "2"), set_image("30s", "3")),
    );
    let sim = assert_scenario(&text);
    let mut available = std::collections::BTreeMap::new();
    for e in sim.timeline.iter().filter(|e| e.rollout == "demo") {
        for rs in &e.replica_sets {
            available.insert(rs.revision, rs.available);
        }
        if e.t >= 30 {
            let total: i32 = available.values().sum();
            assert!(total >= 3, "at {}: {total} pods available ({available:?})", e.at);
        }
    }
    // Revision 2 went 2 -> 1 -> 0 while revision 3 came up.
    assert_eq!(sim.final_state["demo"].replica_sets.iter().map(|r| (r.revision, r.desired)).collect::<Vec<_>>(), [(3, 2), (2, 0), (1, 2)]);
}

/// `workloadRef.scaleDown: progressively`: the Deployment gives up the pods the rollout
/// already serves (its ready pods) before the rollout is Healthy (here held back by
/// `minReadySeconds`), not only once it is.
#[test]
fn a_progressively_replaced_deployment_shrinks_as_the_rollout_pods_get_ready() {
    let text = r#"
objects:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 4
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: "example/web:1"}]}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: web}
    spec:
      replicas: 4
      minReadySeconds: 20
      workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web, scaleDown: progressively}
      strategy: {canary: {maxSurge: 1, maxUnavailable: 0, steps: [{setWeight: 50}, {pause: {}}]}}
cluster:
  podStartup: 5s
expect:
  - {at: 4s, rollout: web, phase: Progressing, objects: {"Deployment/default/web": {spec: {replicas: 4}}}}
  - {at: 10s, rollout: web, phase: Progressing, replicaSets: {"1": {desired: 4, ready: 4, available: 0}},
     objects: {"Deployment/default/web": {spec: {replicas: 0}}}}
  - {at: 30s, rollout: web, phase: Healthy, objects: {"Deployment/default/web": {spec: {replicas: 0}}}}
"#;
    assert_scenario(text);
}

/// A `workloadRef` takes the template of the Deployment it names, not of another one the
/// controller also sees (observed after it).
#[test]
fn a_workload_ref_takes_the_template_of_the_deployment_it_names() {
    let deployment = |name: &str, image: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "uid": format!("d-{name}"), "generation": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}
        })
    };
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1},
        "spec": {"replicas": 2,
                 "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    });
    let now = Timestamp(1_704_067_300);
    let mut state = State::default();
    for workload in [deployment("web", "example/web:1"), deployment("web-next", "example/web-next:1")] {
        state = step(state, Event::Applied(Object::Workload(workload)), now).0;
    }
    let (state, mut actions) = step(state, Event::Applied(Object::Rollout(rollout.into())), now);
    // The first reconcile writes the status; the ReplicaSet is created by the next.
    actions.extend(step(state, Event::Tick, now).1);
    let images: Vec<Option<String>> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateReplicaSet { replica_set } => {
                Some(replica_set.spec.as_ref()?.template.as_ref()?.spec.as_ref()?.containers[0].image.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(images, [Some("example/web:1".to_string())], "{actions:#?}");
}

/// Ping-pong Services (rule E.1): during an update the one that is not the stable follows
/// the new ReplicaSet at once, the other keeps the stable pods.
#[test]
fn the_ping_pong_service_that_is_not_stable_follows_the_new_replica_set() {
    let fixture = include_str!("../../fixtures/scenarios/traffic-alb-ping-pong.yaml");
    let head = fixture.split("expect:").next().unwrap().replace("until: 4m", "until: 1m30s");
    let sim = simulate(&parse_scenario(&head).unwrap()).unwrap();
    let last = &sim.final_state["alb-pp"];
    assert_eq!(last.phase, "Paused");
    assert_ne!(last.stable_hash, last.canary_hash);
    let objects = &sim.final_objects["alb-pp"];
    let selected = |name| service(objects, name).spec.as_ref().unwrap().selector.clone().unwrap().get("rollouts-pod-template-hash").cloned();
    // `ping` became the stable one at the first deploy.
    assert_eq!(selected("alb-pp-ping").as_ref(), Some(&last.stable_hash));
    assert_eq!(selected("alb-pp-pong").as_ref(), Some(&last.canary_hash));
}

/// BG-05: once promoted (`scaleUpPreviewCheckPoint`), the new ReplicaSet is scaled to the
/// full count; a rollout paused before the switch goes back to `previewReplicaCount`, and
/// resumed it scales up again.
#[test]
fn a_blue_green_paused_after_its_promotion_keeps_only_the_preview_count() {
    let text = demo(
        2,
        "",
        "{blueGreen: {activeService: demo-active, previewReplicaCount: 1, autoPromotionEnabled: false}}",
        "events:
  - {at: 10s, setImage: {rollout: demo, container: app, image: \"example/app:slow\"}}
  - {at: 30s, promote: {rollout: demo}}
  - {at: 33s, pause: {rollout: demo}}
  - {at: 60s, resume: {rollout: demo}}
expect:
  - {at: 29s, rollout: demo, phase: Paused, replicaSets: {\"2\": {desired: 1, available: 1}}}
  - {at: 31s, rollout: demo, stableRevision: 1, replicaSets: {\"2\": {desired: 2}}}
  - {at: 35s, rollout: demo, stableRevision: 1, replicaSets: {\"1\": {desired: 2, role: active}, \"2\": {desired: 1}}}
  - {at: 59s, rollout: demo, stableRevision: 1, replicaSets: {\"2\": {desired: 1}}}
  - {at: 90s, rollout: demo, phase: Healthy, stableRevision: 2}
",
    )
    .replace("images:\n", "images:\n    \"example/app:slow\": {startup: 10s}\n");
    assert_scenario(&text);
}

/// Argo's `reconcileCanaryReplicaSets` makes one scaling move per reconcile, and a reconcile
/// that made one does not also enter the step's pause: the pause waits for the next
/// reconcile, which sees the ReplicaSet as scaled.
#[test]
fn a_reconcile_that_scales_down_an_old_replica_set_does_not_enter_the_pause_too() {
    // Revision 2 at setWeight 50, paused at the last step.
    let text = demo(
        4,
        "",
        "{canary: {maxSurge: 0, maxUnavailable: 1, steps: [{pause: {}}, {setWeight: 50}, {pause: {}}]}}",
        &format!(
            "events:\n{}  - {{at: 20s, promote: {{rollout: demo}}}}\nuntil: 29s\nexpect:\n  \
             - {{at: 29s, rollout: demo, phase: Paused, currentStepIndex: 2, replicaSets: {{\"1\": {{desired: 2, available: 2}}, \"2\": {{desired: 2, available: 2}}}}}}\n",
            set_image("10s", "2")
        ),
    );
    let sim = assert_scenario(&text);
    let now = rollouts_core::sim::SIMULATION_EPOCH.plus(rollouts_core::time::Seconds(sim.outcome.t));
    // A fresh controller fed the cluster's objects, the rollout last.
    let (rollouts, rest): (Vec<Object>, Vec<Object>) =
        sim.final_objects["demo"].iter().cloned().partition(|o| matches!(o, Object::Rollout(_)));
    let mut state = State::default();
    for o in rest.into_iter().chain(rollouts.iter().cloned()) {
        state = step(state, Event::Applied(o), now).0;
    }
    // The update to revision 3 starts over at the first step, a pause; revision 2 is
    // scaled down within maxUnavailable.
    let Object::Rollout(stored) = &rollouts[0] else { unreachable!() };
    let mut edited = (**stored).clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "example/app:3".into();
    edited["metadata"]["generation"] = (edited["metadata"]["generation"].as_i64().unwrap_or(1) + 1).into();
    let (mut state, mut actions) = step(state, Event::Applied(Object::Rollout(edited.into())), now);
    let mut batches = Vec::new();
    for _ in 0..4 {
        batches.push(actions);
        (state, actions) = step(state, Event::Tick, now);
    }
    let scales_down = |a: &Action| matches!(a, Action::PatchReplicaSet { patch, .. } if patch.replicas.is_some_and(|r| r < 2));
    let batch = batches.iter().find(|b| b.iter().any(scales_down)).unwrap_or_else(|| panic!("revision 2 scaled down: {batches:#?}"));
    let status = batch.iter().find_map(|a| match a {
        Action::PatchRolloutStatus { patch } => Some(patch.clone()),
        _ => None,
    });
    // Revision 2's pause condition goes (`null`), none is added.
    let adds_pause = |patch: &serde_json::Value| {
        patch.pointer("/status/pauseConditions").and_then(serde_json::Value::as_array).is_some_and(|v| !v.is_empty())
    };
    assert!(!status.as_ref().is_some_and(adds_pause), "{batch:#?}");
    // The next reconcile enters the pause.
    let paused = batches
        .iter()
        .flatten()
        .chain(&actions)
        .any(|a| matches!(a, Action::PatchRolloutStatus { patch } if adds_pause(patch)));
    assert!(paused, "{batches:#?}");
}

/// DSS-01 scaled to zero: with `dynamicStableScale`, an update of a rollout with no
/// replicas can still be aborted (no weight is derived from zero pods: the canary gets 0).
#[test]
fn a_dynamic_stable_scale_rollout_without_replicas_can_be_aborted() {
    let fixture = include_str!("../../fixtures/scenarios/traffic-dss01-dynamic-stable-scale.yaml");
    let text = fixture.split("expect:").next().unwrap().replace("      replicas: 4\n", "      replicas: 0\n")
        + "until: 4m\n";
    let sim = simulate(&parse_scenario(&text).unwrap()).expect("the aborted update simulates");
    let last = &sim.final_state["dynamic"];
    assert!(last.aborted, "{last:?}");
    assert_eq!(last.actual_weight, 0);
}
