//! The shape of what the controller creates: ReplicaSet names, labels, selectors,
//! annotations, owner references, the injected anti-affinity, and Service selectors.

use std::sync::Arc;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
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
