//! The traffic plan a canary's reconcile hands to its routers: the Services Istio sends to
//! with ping-pong Services, the header and mirror routes put in force, and the weight of a
//! `dynamicStableScale` update that is aborted.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use rollouts_core::sim::{parse_scenario, simulate, Simulation, SIMULATION_EPOCH};
use rollouts_core::time::Seconds;
use rollouts_core::{Action, Object, Timestamp};
use serde_json::{json, Value};

use common::restart_controller;

fn run(text: &str) -> Simulation {
    let sim = simulate(&parse_scenario(text).unwrap()).unwrap();
    assert_eq!(sim.outcome.failed_expectations, Vec::<String>::new());
    sim
}

/// Istio host-level routing with `pingPong` and neither `canaryService` nor
/// `stableService` (2 replicas, steps [setWeight 20, pause]).
const ISTIO_PING_PONG: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: "web:1"}]}
      strategy:
        canary:
          pingPong: {pingService: web-ping, pongService: web-pong}
          trafficRouting:
            istio: {virtualService: {name: web-vsvc, routes: [primary]}}
          steps: [{setWeight: 20}, {pause: {}}]
  - {apiVersion: v1, kind: Service, metadata: {name: web-ping}, spec: {selector: {app: web}, ports: [{port: 8080}]}}
  - {apiVersion: v1, kind: Service, metadata: {name: web-pong}, spec: {selector: {app: web}, ports: [{port: 8080}]}}
  - apiVersion: networking.istio.io/v1alpha3
    kind: VirtualService
    metadata: {name: web-vsvc}
    spec:
      hosts: [web.example.com]
      http:
        - name: primary
          route:
            - {destination: {host: web-ping, port: {number: 8080}}, weight: 100}
            - {destination: {host: web-pong, port: {number: 8080}}, weight: 0}
cluster:
  podStartup: 1s
events:
  - {at: 1m, setImage: {rollout: web, container: web, image: "web:2"}}
until: 2m
"#;

/// Argo's `GetStableAndCanaryServices` for Istio: without canary and stable Services, the
/// VirtualService's destinations are the ping and pong Services, the stable one (ping, since
/// the first deploy) keeping what the canary (pong) does not get.
#[test]
fn istio_with_ping_pong_and_no_canary_or_stable_service_weighs_the_ping_and_pong_services() {
    let sim = run(ISTIO_PING_PONG);
    let last = &sim.final_state["web"];
    assert_eq!((last.phase.as_str(), last.current_step_index, last.actual_weight), ("Paused", Some(1), 20), "{last:?}");
    let route = &sim.objects["VirtualService/default/web-vsvc"]["spec"]["http"][0]["route"];
    assert_eq!(
        route,
        &json!([
            {"destination": {"host": "web-ping", "port": {"number": 8080}}, "weight": 80},
            {"destination": {"host": "web-pong", "port": {"number": 8080}}, "weight": 20},
        ])
    );
}

/// The Istio header and mirror routes fixture at 2m30s: revision 2 paused at its last step,
/// the `set-header` route in force.
fn istio_header_route_in_force() -> (Vec<Object>, Timestamp) {
    let fixture = include_str!("../../fixtures/scenarios/traffic-istio-header-and-mirror-routes.yaml");
    let head = fixture.split("expect:").next().unwrap().to_string() + "until: 2m30s\n";
    let sim = run(&head);
    let http = &sim.objects["VirtualService/default/web-vsvc"]["spec"]["http"];
    assert_eq!(http[0]["name"], "set-header", "{http:#}");
    (sim.final_objects["web"].clone(), SIMULATION_EPOCH.plus(Seconds(sim.outcome.t)))
}

/// The VirtualService patches among `actions`.
fn virtual_service_patches(actions: &[Action]) -> Vec<&Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::PatchRoute { name, patch, .. } if name == "web-vsvc" => Some(patch),
            _ => None,
        })
        .collect()
}

/// Header and mirror routes belong to updates (Argo sets none when a rollout is first
/// installed; the core asks for revision 2 or later): at revision 1 none is in force, even
/// past a `setHeaderRoute` step, while revision 2 keeps its route. (A first deploy has no stable ReplicaSet and routes nothing
/// at all; revision 1 with a stable to route to takes a stable that carries no revision,
/// one made before revisions were recorded or whose annotation was removed.)
#[test]
fn a_rollout_at_revision_one_puts_no_header_route_in_force() {
    let (objects, now) = istio_header_route_in_force();
    // Revision 2 as it is: a restarted controller keeps the route.
    let (_, actions) = restart_controller(&objects, now);
    assert_eq!(virtual_service_patches(&actions), Vec::<&Value>::new());
    // The same rollout numbered 1: the stable ReplicaSet has no revision, the update is 1.
    let mut objects = objects;
    let stable = objects.iter().find_map(|o| match o {
        Object::Rollout(ro) => ro["status"]["stableRS"].as_str().map(str::to_string),
        _ => None,
    });
    let stable = stable.expect("a stable ReplicaSet");
    for o in &mut objects {
        match o {
            Object::ReplicaSet(rs) => {
                let rs = Arc::make_mut(rs);
                let hash = rs.metadata.labels.as_ref().and_then(|l| l.get("rollouts-pod-template-hash")).cloned();
                let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
                if hash.as_deref() == Some(stable.as_str()) {
                    annotations.remove("rollout.argoproj.io/revision");
                } else {
                    annotations.insert("rollout.argoproj.io/revision".into(), "1".into());
                }
            }
            Object::Rollout(ro) => {
                let mut json = (**ro).clone();
                json["metadata"]["annotations"]["rollout.argoproj.io/revision"] = "1".into();
                *ro = Arc::new(json);
            }
            _ => {}
        }
    }
    let (_, actions) = restart_controller(&objects, now);
    let patches = virtual_service_patches(&actions);
    assert_eq!(patches.len(), 1, "{actions:#?}");
    let names: Vec<&Value> = patches[0]["spec"]["http"].as_array().expect("the http routes").iter().map(|r| &r["name"]).collect();
    assert_eq!(names, [&json!("primary")]);
}

/// DSS-01 with 3 replicas and a first step of 50: at setWeight 75 the stable is down to 1
/// pod (the canary 3). Aborted there, stepping back to setWeight 50 would hand the stable
/// half the traffic while it has a third of the pods available (its share, 33, is below the
/// 50 it would take): the weight is held at 75 until a second stable pod is available, then
/// it steps back.
#[test]
fn an_aborted_dynamic_stable_scale_update_holds_its_weight_until_the_stable_can_take_the_step_back() {
    let fixture = include_str!("../../fixtures/scenarios/traffic-dss01-dynamic-stable-scale.yaml");
    let head = fixture
        .split("expect:")
        .next()
        .unwrap()
        .replace("      replicas: 4\n", "      replicas: 3\n")
        .replace("- setWeight: 25\n", "- setWeight: 50\n");
    let at = |until: &str| {
        let sim = run(&format!("{head}until: {until}\n"));
        let last = sim.final_state["dynamic"].clone();
        let stable = last.replica_sets.iter().find(|rs| rs.role == "stable").map(|rs| rs.available);
        (last.aborted, last.actual_weight, stable)
    };
    assert_eq!(at("2m30s"), (false, 75, Some(1)));
    assert_eq!(at("3m5s"), (true, 75, Some(1)));
    // Two of three stable pods (3m10s): the weight steps back (to 50, then, the canary
    // shrunk to 2 pods, to the 34 the stable's share leaves).
    assert_eq!(at("3m15s"), (true, 34, Some(2)));
}
