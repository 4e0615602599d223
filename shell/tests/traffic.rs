//! Traffic routing end to end: the real controller (under the RBAC `deploy/rbac.yaml` grants)
//! and the real CLI move a canary's weight, and real proxies (Debian's nginx for Ingresses,
//! Envoy for Gateway API routes, both configured from the cluster by `rollouts-dataplane`)
//! split real requests between the pods the fake kubelet serves. Every check of a weight
//! counts ≥1,000 answers per pod-template hash and prints the counts.
//!
//! Each test has its own namespace, controller and Host names, so they run in parallel on one
//! plane and one proxy of each kind.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{json, Value};
use support::{field, healthy, observed, phase, resource, rollout_until, step, summary, traffic, wait_for, within_timeout, Env, NEVER_READY_IMAGE};

const MINUTE: Duration = Duration::from_secs(60);
/// Requests per measurement.
const REQUESTS: usize = 1000;


// --- rollouts -------------------------------------------------------------------------------


/// `status.canary.weights.canary.weight`, -1 without weights.
fn canary_weight(ro: &Value) -> i64 {
    ro.pointer("/status/canary/weights/canary/weight").and_then(Value::as_i64).unwrap_or(-1)
}

// --- objects --------------------------------------------------------------------------------



async fn ingress(env: &Env, name: &str) -> Option<Ingress> {
    Api::<Ingress>::namespaced(env.client.clone(), &env.namespace).get_opt(name).await.expect("get ingress")
}

async fn http_route(env: &Env, name: &str) -> Value {
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource("gateway.networking.k8s.io/v1", "HTTPRoute"));
    serde_json::to_value(api.get(name).await.expect("get the HTTPRoute")).unwrap()
}

fn annotation<'a>(ing: &'a Ingress, key: &str) -> Option<&'a str> {
    ing.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

// --- the controller under the deployed RBAC -------------------------------------------------

/// The rules of the ClusterRole in `deploy/rbac.yaml`, without those whose resources match
/// `drop`.
fn deployed_rules(drop: &[&str]) -> Vec<Value> {
    let text = std::fs::read_to_string(support::repo().join("deploy/rbac.yaml")).expect("deploy/rbac.yaml");
    let role = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("deploy/rbac.yaml is YAML"))
        .find(|doc| doc["kind"] == "ClusterRole")
        .expect("a ClusterRole in deploy/rbac.yaml");
    let rules = role["rules"].as_array().expect("rules").clone();
    rules
        .into_iter()
        .filter(|r| !r["resources"].as_array().into_iter().flatten().any(|res| drop.contains(&res.as_str().unwrap_or_default())))
        .collect()
}

/// A ServiceAccount bound (in the test's namespace) to the deployed ClusterRole's rules minus
/// `drop`, and a kubeconfig that authenticates as it: what the controller runs with in a
/// cluster, confined to this namespace (`--namespaced`).
async fn service_account_kubeconfig(env: &Env, drop: &[&str]) -> PathBuf {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "argo-rollouts"},
        "rules": deployed_rules(drop),
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "argo-rollouts"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "argo-rollouts"},
        "subjects": [{"kind": "ServiceAccount", "name": "argo-rollouts", "namespace": env.namespace}],
    });
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "argo-rollouts"}});
    let yaml = [account, role, binding].iter().map(|v| serde_yaml_ng::to_string(v).unwrap()).collect::<Vec<_>>().join("---\n");
    env.apply(&yaml).await;
    support::account_kubeconfig(env, "argo-rollouts").await
}

/// The test's environment with the controller's credentials instead of the admin's (the
/// CLI keeps the admin's: it is the user).
fn as_controller(env: &Env, kubeconfig: PathBuf) -> Env {
    Env { kubeconfig, client: env.client.clone(), namespace: env.namespace.clone() }
}

// --- (a) the seed's NGINX walkthrough, through the CLI ---------------------------------------

/// The seed's manifests (service.yaml, ingress.yaml, rollout.yaml of "Argo Rollouts 与 NGINX
/// Ingress 集成"), the Ingress's host made unique to the test.
fn seed_nginx(host: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: rollouts-demo-canary}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: rollouts-demo}}
---
apiVersion: v1
kind: Service
metadata: {{name: rollouts-demo-stable}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: rollouts-demo}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: rollouts-demo-stable}}
spec:
  ingressClassName: nginx
  rules:
    - host: {host}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: rollouts-demo-stable
                port: {{number: 80}}
---
{}"#,
        include_str!("../../fixtures/rollouts/seed-nginx-canary.yaml")
    )
}

const NAME: &str = "rollouts-demo";
const CANARY_INGRESS: &str = "rollouts-demo-rollouts-demo-stable-canary";

/// The nginx location of `host` in the served JSON.
fn nginx_location<'a>(served: &'a Value, host: &str) -> Option<&'a Value> {
    served["locations"].as_array()?.iter().find(|l| l["host"] == host)
}

/// Waits until nginx serves `host` with the canary at `weight` and the given numbers of
/// ready endpoints behind the stable and (when given) canary Services. (Until a canary pod is
/// available the canary Service selects the stable pods, as in Argo.)
async fn nginx_serves(proxy: &Proxy, host: &str, weight: i64, stable_endpoints: u64, canary_endpoints: Option<u64>) {
    proxy
        .wait_served(&format!("nginx to serve {host} with canary weight {weight}"), |served| {
            let Some(l) = nginx_location(served, host) else { return false };
            l["stable"]["endpoints"].as_u64() == Some(stable_endpoints)
                && l["canary"]["weight"].as_i64() == Some(weight)
                && canary_endpoints.is_none_or(|n| l["canary"]["endpoints"].as_u64() == Some(n))
        })
        .await;
}

/// The seed's NGINX walkthrough end to end, through the CLI, with requests through nginx at
/// every weight: all stable before the update; 0 on a canary that is not ready, and after
/// its abort; 5 % at `setWeight: 5`; all on the new version after `promote`; 0 on a canary
/// aborted at 5 %. The controller runs with the deployed RBAC grants minus the Gateway API's:
/// it cannot list routes, and serves everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_nginx_walkthrough_through_the_cli() {
    within_timeout("the NGINX walkthrough", async {
        let proxy = Proxy::nginx().await;
        let env = Env::new("tr-nginx").await;
        let host = format!("{}.rollouts-demo.local", env.namespace);
        let kubeconfig = service_account_kubeconfig(&env, &["httproutes"]).await;
        let controller = as_controller(&env, kubeconfig).controller(&[]);
        env.apply(&seed_nginx(&host)).await;

        // First deploy: Healthy on blue; the canary Ingress is Argo's clone at weight 0.
        let ro = rollout_until(&env, NAME, "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        let canary_ingress = wait_for(MINUTE, "the canary Ingress", || async {
            let ing = ingress(&env, CANARY_INGRESS).await.ok_or("none yet")?;
            if annotation(&ing, "nginx.ingress.kubernetes.io/canary-weight") == Some("0") { Ok(ing) } else { Err(format!("{:?}", ing.metadata.annotations)) }
        })
        .await;
        assert_eq!(annotation(&canary_ingress, "nginx.ingress.kubernetes.io/canary"), Some("true"));
        let owner = canary_ingress.metadata.owner_references.clone().unwrap_or_default();
        assert!(owner.iter().any(|o| o.kind == "Rollout" && o.name == NAME), "{owner:?}");
        let rule = &canary_ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some(host.as_str()));
        let backend = rule.http.as_ref().unwrap().paths[0].backend.service.as_ref().unwrap();
        assert_eq!(backend.name, "rollouts-demo-canary");
        nginx_serves(&proxy, &host, 0, 1, None).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("nginx", "before the update", &counts);
        assert_eq!(counts, BTreeMap::from([(blue.clone(), REQUESTS as u64)]), "all to the stable hash");

        // A canary that never becomes ready: the step asks for 5, the canary gets 0.
        env.cli_ok(&["set", "image", NAME, &format!("rollouts-demo={NEVER_READY_IMAGE}")]);
        let ro = rollout_until(&env, NAME, "the unready canary to be created", MINUTE, |ro| {
            observed(ro) && field(ro, "/status/currentPodHash") != blue
        })
        .await;
        let unready = field(&ro, "/status/currentPodHash");
        wait_running_unready(&env, &unready).await;
        let ro = env.rollout(NAME).await;
        assert_eq!(canary_weight(&ro), 0, "weights of an unready canary: {}", field(&ro, "/status/canary/weights"));
        assert_eq!(step(&ro), 0, "{}", summary(&ro));
        let ing = ingress(&env, CANARY_INGRESS).await.unwrap();
        assert_eq!(annotation(&ing, "nginx.ingress.kubernetes.io/canary-weight"), Some("0"));
        nginx_serves(&proxy, &host, 0, 1, None).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("nginx", "canary not ready (setWeight 5)", &counts);
        assert_eq!(counts.get(&unready), None, "requests reached a canary that is not ready: {counts:?}");
        assert_eq!(counts, BTreeMap::from([(blue.clone(), REQUESTS as u64)]));

        // Abort: still all on blue.
        env.cli_ok(&["abort", NAME]);
        rollout_until(&env, NAME, "the abort", MINUTE, |ro| phase(ro) == "Degraded").await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("nginx", "after aborting the unready canary", &counts);
        assert_eq!(counts, BTreeMap::from([(blue.clone(), REQUESTS as u64)]));

        // The seed's update: yellow, paused at setWeight 5, 5 % of the requests.
        env.cli_ok(&["set", "image", NAME, "rollouts-demo=argoproj/rollouts-demo:yellow"]);
        let ro = rollout_until(&env, NAME, "yellow to pause at step 1 with weight 5", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && canary_weight(ro) == 5
        })
        .await;
        let yellow = field(&ro, "/status/currentPodHash");
        assert_eq!(field(&ro, "/status/stableRS"), blue);
        let weights = ro.pointer("/status/canary/weights").cloned().unwrap_or_default();
        assert_eq!(weights["canary"], json!({"weight": 5, "podTemplateHash": yellow, "serviceName": "rollouts-demo-canary"}));
        assert_eq!(weights["stable"], json!({"weight": 95, "podTemplateHash": blue, "serviceName": "rollouts-demo-stable"}));
        let ing = ingress(&env, CANARY_INGRESS).await.unwrap();
        assert_eq!(annotation(&ing, "nginx.ingress.kubernetes.io/canary-weight"), Some("5"));
        let tree = env.cli_ok(&["get", "rollout", NAME]);
        assert!(tree.contains("  SetWeight:     5\n") && tree.contains("  ActualWeight:  5\n"), "{tree}");
        nginx_serves(&proxy, &host, 5, 1, Some(1)).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("nginx", "setWeight 5", &counts);
        assert_only(&counts, &[&blue, &yellow]);
        assert_binomial(&counts, &yellow, 0.05);

        // promote: Healthy on yellow, every request to yellow. The canary keeps its weight for
        // 5 s after the promotion, while the stable Service's new selector reaches nginx; then
        // 0. Requests go on all the while: once all of them reach yellow, none may go back to
        // blue (argoproj/argo-rollouts#1826: the weight of 0 read before the selector).
        env.cli_ok(&["promote", NAME]);
        let mut on_yellow = false;
        let mut batches = 0;
        loop {
            let ro = env.rollout(NAME).await;
            let done = healthy(&ro) && field(&ro, "/status/stableRS") == yellow && canary_weight(&ro) == 0;
            let batch = proxy.count_quietly(&host, 100).await;
            batches += 1;
            if batch.keys().all(|h| *h == yellow) {
                on_yellow = true;
            } else {
                assert!(!on_yellow, "requests went back to the old version after all had reached {yellow} (batch {batches}): {batch:?}");
            }
            if done && on_yellow {
                break;
            }
            assert!(batches < 600, "not Healthy on {yellow} with every request there after {batches} batches: {}", summary(&ro));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let counts = all_to(&proxy, &host, &yellow).await;
        print_counts("nginx", "after promote", &counts);

        // Another update, aborted at 5 %: the canary's share goes back to 0.
        env.cli_ok(&["set", "image", NAME, "rollouts-demo=argoproj/rollouts-demo:red"]);
        let ro = rollout_until(&env, NAME, "red to pause at weight 5", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && canary_weight(ro) == 5
        })
        .await;
        let red = field(&ro, "/status/currentPodHash");
        nginx_serves(&proxy, &host, 5, 1, Some(1)).await;
        env.cli_ok(&["abort", NAME]);
        let ro = rollout_until(&env, NAME, "the abort to set the weight to 0", MINUTE, |ro| phase(ro) == "Degraded" && canary_weight(ro) == 0).await;
        assert_eq!(field(&ro, "/status/stableRS"), yellow);
        wait_for(MINUTE, "the canary Ingress at weight 0", || async {
            let ing = ingress(&env, CANARY_INGRESS).await.unwrap();
            let w = annotation(&ing, "nginx.ingress.kubernetes.io/canary-weight").map(str::to_string);
            if w.as_deref() == Some("0") { Ok(()) } else { Err(format!("{w:?}")) }
        })
        .await;
        proxy.wait_served("nginx to serve the canary at weight 0", |served| {
            nginx_location(served, &host).is_some_and(|l| l["canary"]["weight"].as_i64() == Some(0))
        })
        .await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("nginx", "after aborting at setWeight 5", &counts);
        assert_eq!(counts.get(&red), None, "requests reached an aborted canary: {counts:?}");
        assert_eq!(counts, BTreeMap::from([(yellow.clone(), REQUESTS as u64)]));

        // The controller could not list routes (no grant) and said so once per kind.
        let log = std::fs::read_to_string(&controller.log).unwrap_or_default();
        let refused = log.lines().filter(|l| l.contains("cannot list these objects")).count();
        assert_eq!(refused, 3, "one line per route kind:\n{}", controller.log_tail());
        let metrics = controller.metrics_text();
        let info = metrics.lines().find(|l| l.starts_with("rollout_info{")).unwrap_or_default();
        assert!(info.contains(r#"strategy="canary",traffic_router="Nginx""#), "{metrics}");
    })
    .await;
}

/// Waits until the pods of `hash` run (and are served by the fake kubelet) but are not ready.
async fn wait_running_unready(env: &Env, hash: &str) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    wait_for(MINUTE, "the canary pod to run, unready", || async {
        let list = pods
            .list(&kube::api::ListParams::default().labels(&format!("rollouts-pod-template-hash={hash}")))
            .await
            .map_err(|e| e.to_string())?;
        let pod = list.items.first().ok_or("no pod yet")?;
        let status = pod.status.clone().unwrap_or_default();
        let ready = status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
        let served = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("fake-kubelet/port"));
        assert!(!ready, "the pod of {NEVER_READY_IMAGE} became Ready: the plane's fake kubelet was started without `--never-ready {NEVER_READY_IMAGE}` (stop it with deploy/dev-cluster/down and rerun)");
        if status.phase.as_deref() == Some("Running") && served { Ok(()) } else { Err(format!("{:?}", status.phase)) }
    })
    .await;
}

/// Waits until requests to `host` all reach `hash` (the proxies follow Service endpoints
/// and the configuration as they change), then counts [`REQUESTS`] of them, all on `hash`.
async fn all_to(proxy: &Proxy, host: &str, hash: &str) -> BTreeMap<String, u64> {
    wait_for(MINUTE, &format!("every request to {host} to reach {hash}"), || async {
        let probe = proxy.count(host, 20, &[]).await;
        if probe.keys().all(|h| h == hash) { Ok(()) } else { Err(format!("{probe:?}")) }
    })
    .await;
    let counts = proxy.count(host, REQUESTS, &[]).await;
    assert_eq!(counts, BTreeMap::from([(hash.to_string(), REQUESTS as u64)]));
    counts
}

/// Fails unless every answer came from one of `hashes`.
fn assert_only(counts: &BTreeMap<String, u64>, hashes: &[&str]) {
    let others: Vec<&String> = counts.keys().filter(|h| !hashes.contains(&h.as_str())).collect();
    assert!(others.is_empty(), "answers from {others:?}: {counts:?}");
}

// --- (b) Gateway API: weights and a header route, through Envoy ------------------------------

fn gateway_manifests(host: &str, namespace: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: gw-stable}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: gw}}
---
apiVersion: v1
kind: Service
metadata: {{name: gw-canary}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: gw}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: gw-route}}
spec:
  parentRefs: [{{name: rollouts-e2e}}]
  hostnames: ["{host}"]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /}}}}]
      backendRefs:
        - {{name: gw-stable, port: 80}}
        - {{name: gw-canary, port: 80, weight: 0}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: gw}}
spec:
  replicas: 1
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: gw}}}}
  template:
    metadata: {{labels: {{app: gw}}}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
  strategy:
    canary:
      canaryService: gw-canary
      stableService: gw-stable
      trafficRouting:
        managedRoutes:
          - name: canary-header
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: gw-route
            namespace: {namespace}
      steps:
        - setWeight: 20
        - pause: {{}}
        - setHeaderRoute:
            name: canary-header
            match:
              - headerName: X-Canary
                headerValue: {{exact: "yes"}}
        - setWeight: 50
        - pause: {{}}
"#
    )
}

/// The backendRef weights of the route's first rule, by Service.
fn backend_weights(route: &Value) -> BTreeMap<String, i64> {
    route
        .pointer("/spec/rules/0/backendRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|b| (field(b, "/name"), b["weight"].as_i64().unwrap_or(1)))
        .collect()
}

/// The route's rules that match on the X-Canary header.
fn header_rules(route: &Value) -> Vec<Value> {
    route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.to_string().contains("X-Canary"))
        .cloned()
        .collect()
}

/// Waits until the HTTPRoute's first rule has these backendRef weights.
async fn route_weights(env: &Env, stable: i64, canary: i64) -> Value {
    wait_for(MINUTE, &format!("the HTTPRoute at {stable}/{canary}"), || async {
        let route = http_route(env, "gw-route").await;
        let w = backend_weights(&route);
        if w.get("gw-stable") == Some(&stable) && w.get("gw-canary") == Some(&canary) { Ok(route) } else { Err(format!("{w:?}")) }
    })
    .await
}

/// A rollout configured for Argo's gatewayAPI plugin, driven natively: the weights at 20 %
/// and 50 % measured through Envoy, a header route that sends every request carrying
/// `X-Canary: yes` to the canary, removed after promote. The controller runs with the
/// deployed RBAC grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_plugin_weights_and_header_route_through_envoy() {
    within_timeout("the Gateway API walkthrough", async {
        let proxy = Proxy::envoy().await;
        let env = Env::new("tr-gateway").await;
        let host = format!("{}.gateway.local", env.namespace);
        let kubeconfig = service_account_kubeconfig(&env, &[]).await;
        let controller = as_controller(&env, kubeconfig).controller(&["--leader-elect=false"]);
        env.apply(&gateway_manifests(&host, &env.namespace)).await;
        let header = [("X-Canary", "yes")];

        let ro = rollout_until(&env, "gw", "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        route_weights(&env, 100, 0).await;
        let counts = all_to(&proxy, &host, &blue).await;
        print_counts("envoy", "before the update", &counts);

        // setWeight 20, paused.
        env.cli_ok(&["set", "image", "gw", "app=argoproj/rollouts-demo:green"]);
        let ro = rollout_until(&env, "gw", "green to pause at weight 20", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && canary_weight(ro) == 20
        })
        .await;
        let green = field(&ro, "/status/currentPodHash");
        route_weights(&env, 80, 20).await;
        envoy_serves(&proxy, &host, &[("gw-stable", 80, 1), ("gw-canary", 20, 1)], 0).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "setWeight 20", &counts);
        assert_only(&counts, &[&blue, &green]);
        assert_binomial(&counts, &green, 0.20);

        // promote: the header route, then setWeight 50, paused.
        env.cli_ok(&["promote", "gw"]);
        rollout_until(&env, "gw", "the pause at weight 50", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 4 && canary_weight(ro) == 50
        })
        .await;
        let route = route_weights(&env, 50, 50).await;
        let rules = header_rules(&route);
        assert_eq!(rules.len(), 1, "one header rule: {route}");
        envoy_serves(&proxy, &host, &[("gw-stable", 50, 1), ("gw-canary", 50, 1)], 1).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "setWeight 50", &counts);
        assert_only(&counts, &[&blue, &green]);
        assert_binomial(&counts, &green, 0.50);
        let counts = proxy.count(&host, REQUESTS, &header).await;
        print_counts("envoy", "setWeight 50, X-Canary: yes", &counts);
        assert_eq!(counts, BTreeMap::from([(green.clone(), REQUESTS as u64)]), "every request with the header to the canary");

        // promote: Healthy on green, the header rule removed, everything to green.
        env.cli_ok(&["promote", "gw"]);
        rollout_until(&env, "gw", "Healthy on green", MINUTE, |ro| healthy(ro) && field(ro, "/status/stableRS") == green).await;
        let route = wait_for(MINUTE, "the header rule to be removed", || async {
            let route = http_route(&env, "gw-route").await;
            if header_rules(&route).is_empty() { Ok(route) } else { Err(route.to_string()) }
        })
        .await;
        assert_eq!(backend_weights(&route), BTreeMap::from([("gw-canary".to_string(), 0), ("gw-stable".to_string(), 100)]));
        let counts = all_to(&proxy, &host, &green).await;
        print_counts("envoy", "after promote", &counts);
        let counts = proxy.count(&host, REQUESTS, &header).await;
        print_counts("envoy", "after promote, X-Canary: yes", &counts);
        assert_eq!(counts, BTreeMap::from([(green.clone(), REQUESTS as u64)]));
        // Argo leaves traffic_router empty for a plugin.
        let metrics = controller.metrics_text();
        let info = metrics.lines().find(|l| l.starts_with("rollout_info{")).unwrap_or_default();
        assert!(info.contains(r#"strategy="canary",traffic_router="",phase="#), "{metrics}");
    })
    .await;
}

/// Waits until Envoy serves `host` with these backends (Service, weight, ready endpoints) on
/// the route's rule without header matches, and `header_entries` entries with header matches.
async fn envoy_serves(proxy: &Proxy, host: &str, backends: &[(&str, u64, usize)], header_entries: usize) {
    let want: BTreeMap<String, (u64, usize)> = backends.iter().map(|(s, w, n)| (s.to_string(), (*w, *n))).collect();
    proxy
        .wait_served(&format!("envoy to serve {host} with {backends:?} and {header_entries} header rule(s)"), |served| {
            let Some(vhost) = served["virtualHosts"].as_array().into_iter().flatten().find(|v| v["domain"] == host) else {
                return false;
            };
            let entries: Vec<&Value> = vhost["entries"].as_array().into_iter().flatten().collect();
            let with_headers = |e: &&Value| e["match"]["headers"].as_array().is_some_and(|h| !h.is_empty());
            let Some(default) = entries.iter().find(|e| !with_headers(e)) else { return false };
            let got: BTreeMap<String, (u64, usize)> = default["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    let ports = b["ports"].as_array().map_or(0, Vec::len);
                    (field(b, "/service"), (b["weight"].as_u64().unwrap_or(0), ports))
                })
                .collect();
            got == want && entries.iter().filter(|e| with_headers(e)).count() == header_entries
        })
        .await;
}

/// A controller confined to its namespace (`--namespaced`) still follows a route its rollout
/// names in another namespace (`namespace:` of the plugin configuration): it watches routes
/// there too, and moves the weights in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_controller_moves_a_route_in_another_namespace() {
    within_timeout("the route in another namespace", async {
        let env = Env::new("tr-route-ns").await;
        let elsewhere = Env {
            kubeconfig: env.kubeconfig.clone(),
            client: env.client.clone(),
            namespace: format!("{}-routes", env.namespace),
        };
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": elsewhere.namespace}})).unwrap();
        Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create the routes' namespace");
        let controller = env.controller(&["--leader-elect=false"]);
        let manifests = gateway_manifests(&format!("{}.gateway.local", env.namespace), &elsewhere.namespace);
        let (route, rest): (Vec<&str>, Vec<&str>) = manifests.split("\n---\n").partition(|doc| doc.contains("kind: HTTPRoute"));
        // The route's backends are the rollout's Services, in the rollout's namespace.
        let route = route[0].replace("- {name: gw-stable, port: 80}", &format!("- {{name: gw-stable, namespace: {}, port: 80}}", env.namespace)).replace(
            "- {name: gw-canary, port: 80, weight: 0}",
            &format!("- {{name: gw-canary, namespace: {}, port: 80, weight: 0}}", env.namespace),
        );
        elsewhere.apply(&route).await;
        env.apply(&rest.join("\n---\n")).await;
        rollout_until(&env, "gw", "the first deploy to be Healthy", MINUTE, healthy).await;
        env.cli_ok(&["set", "image", "gw", "app=argoproj/rollouts-demo:green"]);
        rollout_until(&env, "gw", "the pause at weight 20", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && canary_weight(ro) == 20).await;
        route_weights(&elsewhere, 80, 20).await;
        let log = std::fs::read_to_string(&controller.log).unwrap_or_default();
        assert!(log.contains("watching them there too"), "{}", controller.log_tail());
    })
    .await;
}

// --- (b2) a weighted experiment template's share, through Envoy ------------------------------

/// A rollout behind an HTTPRoute whose second step is an experiment of the canary's pod
/// template with a `weight` of 10 (no baseline template), then an indefinite pause.
fn weighted_experiment_manifests(host: &str, namespace: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: gwx-stable}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: gwx}}
---
apiVersion: v1
kind: Service
metadata: {{name: gwx-canary}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: gwx}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: gwx-route}}
spec:
  parentRefs: [{{name: rollouts-e2e}}]
  hostnames: ["{host}"]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /}}}}]
      backendRefs:
        - {{name: gwx-stable, port: 80}}
        - {{name: gwx-canary, port: 80, weight: 0}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: gwx}}
spec:
  replicas: 1
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: gwx}}}}
  template:
    metadata: {{labels: {{app: gwx}}}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
  strategy:
    canary:
      canaryService: gwx-canary
      stableService: gwx-stable
      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: gwx-route
            namespace: {namespace}
      steps:
        - setWeight: 20
        - experiment:
            duration: 10m
            templates:
              - name: exp-canary
                specRef: canary
                weight: 10
        - pause: {{}}
"#
    )
}

/// The Experiment `name` of the test's namespace, as JSON.
async fn experiment(env: &Env, name: &str) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::experiment_resource());
    serde_json::to_value(api.get(name).await.unwrap_or_else(|e| panic!("get experiment {name}: {e}"))).unwrap()
}

/// Waits until the first rule of the HTTPRoute `route` has exactly these backendRef weights.
async fn route_backends(env: &Env, route: &str, want: &[(&str, i64)]) -> Value {
    let want: BTreeMap<String, i64> = want.iter().map(|(s, w)| (s.to_string(), *w)).collect();
    wait_for(MINUTE, &format!("the HTTPRoute {route} at {want:?}"), || async {
        let r = http_route(env, route).await;
        if backend_weights(&r) == want { Ok(r) } else { Err(format!("{:?}", backend_weights(&r))) }
    })
    .await
}

/// Issue 12's weighted experiment through a real proxy: at the canary's `experiment` step the
/// template's weight (10) becomes a third backendRef of the HTTPRoute (the experiment's
/// Service) and the stable's weight drops to 70; Envoy sends about 20 % of real requests to
/// the canary pod and 10 % to the experiment's pod (a pod-template hash of its own). After
/// `terminate experiment` the step completes, the backendRef leaves the route and the traffic
/// goes back to two backends (80/20). The controller runs with the deployed RBAC grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_weighted_template_gets_its_share_through_envoy() {
    within_timeout("the weighted experiment walkthrough", async {
        let proxy = Proxy::envoy().await;
        let env = Env::new("tr-experiment").await;
        let host = format!("{}.gateway.local", env.namespace);
        let kubeconfig = service_account_kubeconfig(&env, &[]).await;
        let controller = as_controller(&env, kubeconfig).controller(&["--leader-elect=false"]);
        env.apply(&weighted_experiment_manifests(&host, &env.namespace)).await;

        let ro = rollout_until(&env, "gwx", "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        route_backends(&env, "gwx-route", &[("gwx-stable", 100), ("gwx-canary", 0)]).await;
        let counts = all_to(&proxy, &host, &blue).await;
        print_counts("envoy", "experiment: before the update", &counts);

        // setWeight 20, then the experiment step: its Experiment Running, its template weighted.
        env.cli_ok(&["set", "image", "gwx", "app=argoproj/rollouts-demo:green"]);
        let ro = rollout_until(&env, "gwx", "the experiment step with its weight", MINUTE, |ro| {
            observed(ro) && step(ro) == 1 && canary_weight(ro) == 20 && ro.pointer("/status/canary/weights/additional/0").is_some()
        })
        .await;
        let green = field(&ro, "/status/currentPodHash");
        let name = format!("gwx-{green}-2-1");
        let ex = wait_for(MINUTE, "the Experiment to be Running", || async {
            let ex = experiment(&env, &name).await;
            if field(&ex, "/status/phase") == "Running" { Ok(ex) } else { Err(format!("{}\n{}", field(&ex, "/status"), controller.log_tail())) }
        })
        .await;
        let exp_hash = field(&ex, "/status/templateStatuses/0/podTemplateHash");
        let exp_service = format!("{name}-exp-canary");
        assert_eq!(field(&ex, "/status/templateStatuses/0/serviceName"), exp_service, "{ex}");
        assert!(![blue.as_str(), green.as_str(), "<none>", ""].contains(&exp_hash.as_str()), "the experiment's pods have a hash of their own: {exp_hash}");
        let weights = ro.pointer("/status/canary/weights").cloned().unwrap_or_default();
        assert_eq!(weights["canary"], json!({"weight": 20, "podTemplateHash": green, "serviceName": "gwx-canary"}), "{weights}");
        assert_eq!(weights["stable"], json!({"weight": 70, "podTemplateHash": blue, "serviceName": "gwx-stable"}), "{weights}");
        assert_eq!(weights["additional"], json!([{"weight": 10, "podTemplateHash": exp_hash, "serviceName": exp_service}]), "{weights}");
        let route = route_backends(&env, "gwx-route", &[("gwx-stable", 70), ("gwx-canary", 20), (&exp_service, 10)]).await;
        let extra = route.pointer("/spec/rules/0/backendRefs").and_then(Value::as_array).into_iter().flatten().find(|b| b["name"] == exp_service.as_str());
        assert_eq!(extra.map(|b| b["port"].clone()), Some(json!(8080)), "the experiment Service's port: {route}");

        // Envoy: three backends, each with its one ready pod; the shares of real requests.
        envoy_serves(&proxy, &host, &[("gwx-stable", 70, 1), ("gwx-canary", 20, 1), (&exp_service, 10, 1)], 0).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "experiment step: 70/20 + experiment 10", &counts);
        assert_only(&counts, &[&blue, &green, &exp_hash]);
        assert_binomial(&counts, &green, 0.20);
        let total: u64 = counts.values().sum();
        traffic::assert_binomial(counts.get(&exp_hash).copied().unwrap_or(0), total, 0.10, &format!("experiment {exp_hash}"));
        traffic::assert_binomial(counts.get(&blue).copied().unwrap_or(0), total, 0.70, &format!("stable {blue}"));

        // terminate: the Experiment ends Successful, the step completes (paused at 20/80), the
        // experiment's backendRef leaves the route and the traffic goes back to two backends.
        env.cli_ok(&["terminate", "experiment", &name]);
        let ro = rollout_until(&env, "gwx", "the pause after the experiment, without its weight", MINUTE, |ro| {
            observed(ro)
                && phase(ro) == "Paused"
                && step(ro) == 2
                && canary_weight(ro) == 20
                && ro.pointer("/status/canary/weights/additional").and_then(Value::as_array).is_none_or(Vec::is_empty)
        })
        .await;
        assert_eq!(field(&ro, "/status/canary/weights/stable/weight"), "80", "{}", field(&ro, "/status/canary/weights"));
        assert_eq!(field(&experiment(&env, &name).await, "/status/phase"), "Successful");
        route_backends(&env, "gwx-route", &[("gwx-stable", 80), ("gwx-canary", 20)]).await;
        envoy_serves(&proxy, &host, &[("gwx-stable", 80, 1), ("gwx-canary", 20, 1)], 0).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "experiment terminated: 80/20", &counts);
        assert_only(&counts, &[&blue, &green]);
        assert_binomial(&counts, &green, 0.20);
    })
    .await;
}

// --- (c) NGINX with maxTrafficWeight and a header route ----------------------------------------

fn nginx_header_manifests(host: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: nx-canary}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: nx}}
---
apiVersion: v1
kind: Service
metadata: {{name: nx-stable}}
spec:
  ports: [{{port: 80, targetPort: http, protocol: TCP, name: http}}]
  selector: {{app: nx}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: nx}}
spec:
  ingressClassName: nginx
  rules:
    - host: {host}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: nx-stable
                port: {{number: 80}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: nx}}
spec:
  replicas: 2
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: nx}}}}
  template:
    metadata: {{labels: {{app: nx}}}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
  strategy:
    canary:
      canaryService: nx-canary
      stableService: nx-stable
      trafficRouting:
        maxTrafficWeight: 1000
        managedRoutes:
          - name: canary-header
        nginx:
          stableIngress: nx
      steps:
        - setWeight: 300
        - setHeaderRoute:
            name: canary-header
            match:
              - headerName: X-Canary
                headerValue: {{exact: "yes"}}
        - pause: {{}}
"#
    )
}

/// NGINX with `maxTrafficWeight: 1000` (`canary-weight-total`) and a header route carried by
/// the canary Ingress's `canary-by-header` annotations: 300 of 1000 is 30 % of the requests,
/// every request with `X-Canary: yes` goes to the canary, one with another value is split by
/// weight; after an abort nothing reaches the canary, with the header or without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_max_traffic_weight_and_header_route() {
    within_timeout("the NGINX header-route walkthrough", async {
        let proxy = Proxy::nginx().await;
        let env = Env::new("tr-nginx-header").await;
        let host = format!("{}.nx.local", env.namespace);
        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(&nginx_header_manifests(&host)).await;
        let canary_ingress = "nx-nx-canary";
        let (yes, no) = ([("X-Canary", "yes")], [("X-Canary", "no")]);

        let ro = rollout_until(&env, "nx", "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        env.cli_ok(&["set", "image", "nx", "app=argoproj/rollouts-demo:orange"]);
        let ro = rollout_until(&env, "nx", "the pause with weight 300 of 1000", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 2 && canary_weight(ro) == 300
        })
        .await;
        let orange = field(&ro, "/status/currentPodHash");
        let ing = ingress(&env, canary_ingress).await.expect("the canary Ingress");
        let a = |k: &str| annotation(&ing, &format!("nginx.ingress.kubernetes.io/{k}")).map(str::to_string);
        assert_eq!(
            (a("canary-weight"), a("canary-weight-total"), a("canary-by-header"), a("canary-by-header-value")),
            (Some("300".into()), Some("1000".into()), Some("X-Canary".into()), Some("yes".into())),
            "{:?}",
            ing.metadata.annotations
        );
        proxy
            .wait_served("nginx to serve 300 of 1000 and the header", |served| {
                nginx_location(served, &host).is_some_and(|l| {
                    l["canary"]["weight"].as_i64() == Some(300)
                        && l["canary"]["total"].as_i64() == Some(1000)
                        && l["canary"]["header"] == "X-Canary"
                        && l["canary"]["endpoints"].as_u64() == Some(1)
                        && l["stable"]["endpoints"].as_u64() == Some(2)
                })
            })
            .await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("nginx", "setWeight 300 of maxTrafficWeight 1000", &counts);
        assert_only(&counts, &[&blue, &orange]);
        assert_binomial(&counts, &orange, 0.30);
        let counts = proxy.count(&host, REQUESTS, &yes).await;
        print_counts("nginx", "setWeight 300/1000, X-Canary: yes", &counts);
        assert_eq!(counts, BTreeMap::from([(orange.clone(), REQUESTS as u64)]), "every request with the header to the canary");
        let counts = proxy.count(&host, REQUESTS, &no).await;
        print_counts("nginx", "setWeight 300/1000, X-Canary: no", &counts);
        assert_only(&counts, &[&blue, &orange]);
        assert_binomial(&counts, &orange, 0.30);

        // Abort: the weight and the header route go; nothing reaches the canary.
        env.cli_ok(&["abort", "nx"]);
        rollout_until(&env, "nx", "the abort to set the weight to 0", MINUTE, |ro| phase(ro) == "Degraded" && canary_weight(ro) == 0).await;
        proxy
            .wait_served("nginx to serve weight 0 without the header route", |served| {
                nginx_location(served, &host).is_some_and(|l| l["canary"]["weight"].as_i64() == Some(0) && l["canary"]["header"].is_null())
            })
            .await;
        for (what, headers) in [("after the abort", &[][..]), ("after the abort, X-Canary: yes", &yes[..])] {
            let counts = proxy.count(&host, REQUESTS, headers).await;
            print_counts("nginx", what, &counts);
            assert_eq!(counts, BTreeMap::from([(blue.clone(), REQUESTS as u64)]), "{what}");
        }
    })
    .await;
}

// --- the data planes ------------------------------------------------------------------------

/// A data plane of the test plane (shared by every test of this process).
struct Proxy {
    url: String,
}

impl Proxy {
    /// nginx, following Ingresses.
    async fn nginx() -> Proxy {
        Proxy { url: tokio::task::spawn_blocking(traffic::ingress_url).await.expect("the ingress data plane") }
    }

    /// Envoy, following HTTPRoutes.
    async fn envoy() -> Proxy {
        Proxy { url: tokio::task::spawn_blocking(traffic::gateway_url).await.expect("the gateway data plane") }
    }

    /// Answers of `n` requests to `host`, by pod-template hash.
    async fn count(&self, host: &str, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, u64> {
        traffic::count_by_hash(&self.url, host, n as u64, headers).await
    }

    /// Answers of `n` requests to `host`, by pod-template hash, without printing them.
    async fn count_quietly(&self, host: &str, n: u64) -> BTreeMap<String, u64> {
        traffic::count_by_hash_quietly(&self.url, host, n, &[]).await
    }

    /// Waits until the proxy serves a configuration `ok` accepts.
    async fn wait_served(&self, what: &str, ok: impl Fn(&Value) -> bool) {
        traffic::wait_served(&self.url, what, MINUTE, ok).await;
    }
}

/// Prints one measurement as a line of the table in the issue's note.
fn print_counts(proxy: &str, moment: &str, counts: &BTreeMap<String, u64>) {
    let total: u64 = counts.values().sum();
    traffic::report(&format!("TRAFFIC {proxy:<5} | {moment:<40} | {total} requests | {counts:?}"));
}

/// Checks the share of `hash` in `counts` against a binomial draw with probability `p`.
fn assert_binomial(counts: &BTreeMap<String, u64>, hash: &str, p: f64) {
    let total: u64 = counts.values().sum();
    let got = counts.get(hash).copied().unwrap_or(0);
    traffic::assert_binomial(got, total, p, &format!("canary {hash}"));
}

// --- (f) Istio and SMI through Envoy -----------------------------------------------------------

/// An object of the test's namespace as JSON.
async fn get_object(env: &Env, api_version: &str, kind: &str, name: &str) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &resource(api_version, kind));
    serde_json::to_value(api.get(name).await.unwrap_or_else(|e| panic!("get {kind} {name}: {e}"))).unwrap()
}

/// How many requests the pods of `hash` have answered (their own counters).
async fn requests_at(env: &Env, hash: &str) -> u64 {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let list = pods.list(&kube::api::ListParams::default().labels(&format!("rollouts-pod-template-hash={hash}"))).await.expect("list pods");
    let mut total = 0;
    for pod in list.items {
        let port: u16 = pod.metadata.annotations.as_ref().and_then(|a| a.get("fake-kubelet/port")).and_then(|p| p.parse().ok()).expect("a pod port");
        let body = support::http_get(([127, 0, 0, 1], port).into(), "/requests").expect("ask the pod");
        let answer: Value = serde_json::from_str(&body).expect("the pod's JSON");
        total += answer["requests"].as_u64().expect("a request count");
    }
    total
}

/// The requests the pods of `hash` received since they said `before`, once mirrored copies
/// stop arriving (they trail the answers); each question is a request too.
async fn requests_since(env: &Env, hash: &str, before: u64) -> u64 {
    let mut last = before;
    for questions in 1..=50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = requests_at(env, hash).await;
        if now == last + 1 && questions > 1 {
            return now - before - questions;
        }
        last = now;
    }
    panic!("requests kept arriving at {hash} for 10 s");
}

/// Waits until Envoy serves `host` with `entries` entries, the last (the weighted route) with
/// these backends (name, weight, ready endpoints).
async fn envoy_serves_mesh(proxy: &Proxy, host: &str, entries: usize, backends: &[(&str, u64, usize)]) {
    let want: BTreeMap<String, (u64, usize)> = backends.iter().map(|(s, w, n)| (s.to_string(), (*w, *n))).collect();
    proxy
        .wait_served(&format!("envoy to serve {host} with {entries} entries, the last {backends:?}"), |served| {
            let Some(vhost) = served["virtualHosts"].as_array().into_iter().flatten().find(|v| v["domain"] == host) else {
                return false;
            };
            let list: Vec<&Value> = vhost["entries"].as_array().into_iter().flatten().collect();
            let Some(last) = list.last() else { return false };
            let got: BTreeMap<String, (u64, usize)> = last["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| (field(b, "/service"), (b["weight"].as_u64().unwrap_or(0), b["ports"].as_array().map_or(0, Vec::len))))
                .collect();
            list.len() == entries && got == want
        })
        .await;
}

fn istio_host_manifests(host: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: ih-stable}}
spec:
  ports: [{{port: 80, targetPort: http, name: http}}]
  selector: {{app: ih}}
---
apiVersion: v1
kind: Service
metadata: {{name: ih-canary}}
spec:
  ports: [{{port: 80, targetPort: http, name: http}}]
  selector: {{app: ih}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: ih-vsvc}}
spec:
  hosts: ["{host}"]
  http:
    - name: primary
      route:
        - destination: {{host: ih-stable, port: {{number: 80}}}}
          weight: 100
        - destination: {{host: ih-canary, port: {{number: 80}}}}
          weight: 0
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: ih}}
spec:
  replicas: 1
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: ih}}}}
  template:
    metadata: {{labels: {{app: ih}}}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
  strategy:
    canary:
      canaryService: ih-canary
      stableService: ih-stable
      trafficRouting:
        managedRoutes:
          - name: canary-header
          - name: mirror-all
        istio:
          virtualService:
            name: ih-vsvc
            routes: [primary]
      steps:
        - setCanaryScale: {{replicas: 1}}
        - setMirrorRoute:
            name: mirror-all
            percentage: 50
            match:
              - path: {{prefix: /}}
        - pause: {{}}
        - setWeight: 20
        - setHeaderRoute:
            name: canary-header
            match:
              - headerName: X-Canary
                headerValue: {{exact: "yes"}}
        - pause: {{}}
"#
    )
}

/// Istio host-level routing driven by the controller (with the deployed RBAC) and measured
/// through Envoy: a mirror route at weight 0 (every answer from the stable pod, about half
/// the requests copied to the canary pod), then weight 20 with a header route (`X-Canary:
/// yes` always to the canary), then promotion (the managed routes removed, everything to the
/// new pods).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_host_level_weights_header_and_mirror_routes_through_envoy() {
    within_timeout("the Istio host-level walkthrough", async {
        let proxy = Proxy::envoy().await;
        let env = Env::new("tr-istio-host").await;
        let host = format!("{}.istio.local", env.namespace);
        let kubeconfig = service_account_kubeconfig(&env, &[]).await;
        let _controller = as_controller(&env, kubeconfig).controller(&["--leader-elect=false"]);
        env.apply(&istio_host_manifests(&host)).await;
        let header = [("X-Canary", "yes")];

        let ro = rollout_until(&env, "ih", "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        envoy_serves_mesh(&proxy, &host, 1, &[("ih-stable", 100, 1)]).await;
        let counts = all_to(&proxy, &host, &blue).await;
        print_counts("envoy", "istio host-level before the update", &counts);

        // setCanaryScale 1, setMirrorRoute 50 %, paused at weight 0.
        env.cli_ok(&["set", "image", "ih", "app=argoproj/rollouts-demo:green"]);
        let ro = rollout_until(&env, "ih", "green to pause with the mirror route", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 2 && canary_weight(ro) == 0
        })
        .await;
        let green = field(&ro, "/status/currentPodHash");
        envoy_serves_mesh(&proxy, &host, 2, &[("ih-stable", 100, 1)]).await;
        let before = requests_at(&env, &green).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "istio mirror 50% at weight 0: answers", &counts);
        assert_eq!(counts, BTreeMap::from([(blue.clone(), REQUESTS as u64)]), "every answer from the stable pod");
        let mirrored = requests_since(&env, &green, before).await;
        traffic::report(&format!("TRAFFIC envoy | {:<40} | {REQUESTS} requests | {mirrored} copies at the canary pod", "istio mirror 50% at weight 0: copies"));
        traffic::assert_binomial(mirrored, REQUESTS as u64, 0.5, "istio mirror 50%: copies the canary pod received");

        // promote: setWeight 20 and the header route, paused.
        env.cli_ok(&["promote", "ih"]);
        rollout_until(&env, "ih", "the pause at weight 20", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 5 && canary_weight(ro) == 20
        })
        .await;
        let vs = get_object(&env, "networking.istio.io/v1alpha3", "VirtualService", "ih-vsvc").await;
        let names: Vec<String> = vs.pointer("/spec/http").and_then(Value::as_array).into_iter().flatten().map(|r| field(r, "/name")).collect();
        assert_eq!(names, ["canary-header", "mirror-all", "primary"], "managed routes first, in managedRoutes order: {vs}");
        envoy_serves_mesh(&proxy, &host, 3, &[("ih-stable", 80, 1), ("ih-canary", 20, 1)]).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "istio host-level setWeight 20", &counts);
        assert_only(&counts, &[&blue, &green]);
        assert_binomial(&counts, &green, 0.20);
        let counts = proxy.count(&host, REQUESTS, &header).await;
        print_counts("envoy", "istio setWeight 20, X-Canary: yes", &counts);
        assert_eq!(counts, BTreeMap::from([(green.clone(), REQUESTS as u64)]), "every request with the header to the canary");

        // promote: Healthy on green, the managed routes removed.
        env.cli_ok(&["promote", "ih"]);
        rollout_until(&env, "ih", "Healthy on green", MINUTE, |ro| healthy(ro) && field(ro, "/status/stableRS") == green).await;
        envoy_serves_mesh(&proxy, &host, 1, &[("ih-stable", 100, 1)]).await;
        let counts = all_to(&proxy, &host, &green).await;
        print_counts("envoy", "istio host-level after promote", &counts);
    })
    .await;
}

fn istio_subset_manifests(host: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: is-svc}}
spec:
  ports: [{{port: 80, targetPort: http, name: http}}]
  selector: {{app: is}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: is-vsvc}}
spec:
  hosts: ["{host}"]
  http:
    - name: primary
      route:
        - destination: {{host: is-svc, subset: stable}}
          weight: 100
        - destination: {{host: is-svc, subset: canary}}
          weight: 0
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: is-destrule}}
spec:
  host: is-svc
  subsets:
    - name: canary
      labels: {{app: is}}
    - name: stable
      labels: {{app: is}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: is}}
spec:
  replicas: 2
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: is}}}}
  template:
    metadata: {{labels: {{app: is}}}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
  strategy:
    canary:
      trafficRouting:
        istio:
          virtualService: {{name: is-vsvc, routes: [primary]}}
          destinationRule: {{name: is-destrule, canarySubsetName: canary, stableSubsetName: stable}}
      steps:
        - setWeight: 30
        - pause: {{}}
        - setWeight: 60
        - pause: {{}}
"#
    )
}

/// Istio subset-level routing (no canary or stable Service): the DestinationRule's subsets
/// select the pods by their hash, measured through Envoy at 30 % and 60 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_subset_level_weights_through_envoy() {
    within_timeout("the Istio subset-level walkthrough", async {
        let proxy = Proxy::envoy().await;
        let env = Env::new("tr-istio-subset").await;
        let host = format!("{}.istio-subset.local", env.namespace);
        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(&istio_subset_manifests(&host)).await;

        let ro = rollout_until(&env, "is", "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        envoy_serves_mesh(&proxy, &host, 1, &[("is-svc/stable", 100, 2)]).await;
        let rule = get_object(&env, "networking.istio.io/v1alpha3", "DestinationRule", "is-destrule").await;
        assert_eq!(field(&rule, "/spec/subsets/1/labels/rollouts-pod-template-hash"), blue, "{rule}");
        let counts = all_to(&proxy, &host, &blue).await;
        print_counts("envoy", "istio subset-level before the update", &counts);

        env.cli_ok(&["set", "image", "is", "app=argoproj/rollouts-demo:green"]);
        let ro = rollout_until(&env, "is", "green to pause at weight 30", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && canary_weight(ro) == 30
        })
        .await;
        let green = field(&ro, "/status/currentPodHash");
        envoy_serves_mesh(&proxy, &host, 1, &[("is-svc/stable", 70, 2), ("is-svc/canary", 30, 1)]).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "istio subset-level setWeight 30", &counts);
        assert_only(&counts, &[&blue, &green]);
        assert_binomial(&counts, &green, 0.30);

        env.cli_ok(&["promote", "is"]);
        rollout_until(&env, "is", "the pause at weight 60", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 3 && canary_weight(ro) == 60
        })
        .await;
        envoy_serves_mesh(&proxy, &host, 1, &[("is-svc/stable", 40, 2), ("is-svc/canary", 60, 2)]).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "istio subset-level setWeight 60", &counts);
        assert_only(&counts, &[&blue, &green]);
        assert_binomial(&counts, &green, 0.60);

        env.cli_ok(&["promote", "is"]);
        rollout_until(&env, "is", "Healthy on green", MINUTE, |ro| healthy(ro) && field(ro, "/status/stableRS") == green).await;
        let counts = all_to(&proxy, &host, &green).await;
        print_counts("envoy", "istio subset-level after promote", &counts);
    })
    .await;
}

fn smi_manifests() -> String {
    r#"
apiVersion: v1
kind: Service
metadata: {name: smi-root}
spec:
  ports: [{port: 80, targetPort: http, name: http}]
  selector: {app: smi}
---
apiVersion: v1
kind: Service
metadata: {name: smi-stable}
spec:
  ports: [{port: 80, targetPort: http, name: http}]
  selector: {app: smi}
---
apiVersion: v1
kind: Service
metadata: {name: smi-canary}
spec:
  ports: [{port: 80, targetPort: http, name: http}]
  selector: {app: smi}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: smi}
spec:
  replicas: 1
  revisionHistoryLimit: 2
  selector: {matchLabels: {app: smi}}
  template:
    metadata: {labels: {app: smi}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{name: http, containerPort: 8080, protocol: TCP}]
  strategy:
    canary:
      canaryService: smi-canary
      stableService: smi-stable
      trafficRouting:
        smi: {rootService: smi-root}
      steps:
        - setWeight: 40
        - pause: {}
"#
    .to_string()
}

/// SMI: the controller creates its TrafficSplit (v1alpha1, quantity weights, owned by the
/// Rollout) and Envoy serves the root Service by its backends, measured at 40 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smi_traffic_split_weights_through_envoy() {
    within_timeout("the SMI walkthrough", async {
        let proxy = Proxy::envoy().await;
        let env = Env::new("tr-smi").await;
        let host = format!("smi-root.{}", env.namespace);
        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(&smi_manifests()).await;

        let ro = rollout_until(&env, "smi", "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        let split = get_object(&env, "split.smi-spec.io/v1alpha1", "TrafficSplit", "smi").await;
        assert_eq!(split["spec"]["backends"], json!([{"service": "smi-canary", "weight": "0"}, {"service": "smi-stable", "weight": "100"}]), "{split}");
        assert_eq!(field(&split, "/metadata/ownerReferences/0/kind"), "Rollout");
        envoy_serves_mesh(&proxy, &host, 1, &[("smi-stable", 100, 1)]).await;
        let counts = all_to(&proxy, &host, &blue).await;
        print_counts("envoy", "smi before the update", &counts);

        env.cli_ok(&["set", "image", "smi", "app=argoproj/rollouts-demo:green"]);
        let ro = rollout_until(&env, "smi", "green to pause at weight 40", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && canary_weight(ro) == 40
        })
        .await;
        let green = field(&ro, "/status/currentPodHash");
        envoy_serves_mesh(&proxy, &host, 1, &[("smi-canary", 40, 1), ("smi-stable", 60, 1)]).await;
        let counts = proxy.count(&host, REQUESTS, &[]).await;
        print_counts("envoy", "smi setWeight 40", &counts);
        assert_only(&counts, &[&blue, &green]);
        assert_binomial(&counts, &green, 0.40);

        env.cli_ok(&["promote", "smi"]);
        rollout_until(&env, "smi", "Healthy on green", MINUTE, |ro| healthy(ro) && field(ro, "/status/stableRS") == green).await;
        let counts = all_to(&proxy, &host, &green).await;
        print_counts("envoy", "smi after promote", &counts);
    })
    .await;
}
