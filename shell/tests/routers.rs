//! The routers without a data plane here (Traefik, Ambassador, APISIX, ALB, App Mesh), end to end on the
//! local control plane by the objects they leave: the real controller and the real CLI move
//! a canary; each test reads the router's objects back from the API server at each weight
//! and after promotion. Their CRDs are the minimal ones of `deploy/dev-cluster/crds/`.
//!
//! Each test has its own namespace and controller, so they run in parallel on one plane.

mod support;

/// ALB: the annotations on the user's Ingress, and ping-pong Services.
#[path = "routers/alb.rs"]
mod alb;

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use serde_json::{json, Value};
use support::{field, healthy, observed, phase, resource, rollout_until, step, wait_for, within_timeout, Env};

const MINUTE: Duration = Duration::from_secs(60);




/// The object, or `None` when it does not exist.
async fn object(env: &Env, api_version: &str, kind: &str, name: &str) -> Option<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &resource(api_version, kind));
    let found = api.get_opt(name).await.unwrap_or_else(|e| panic!("get {kind} {name}: {e}"));
    found.map(|o| serde_json::to_value(o).unwrap())
}

/// Waits until the object `kind/name` satisfies `ok` (`None`: it does not exist).
async fn object_until(
    env: &Env,
    (api_version, kind, name): (&str, &str, &str),
    what: &str,
    ok: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    wait_for(MINUTE, what, || async {
        let o = object(env, api_version, kind, name).await;
        if ok(o.as_ref()) { Ok(o) } else { Err(format!("{kind} {name}: {}", o.map_or("absent".into(), |o| o["spec"].to_string()))) }
    })
    .await
}


fn canary_weight(ro: &Value) -> i64 {
    ro.pointer("/status/canary/weights/canary/weight").and_then(Value::as_i64).unwrap_or(-1)
}

/// The Services and the Rollout, `router` its `trafficRouting` (YAML flow), `steps` its
/// steps (YAML flow list).
fn manifests(app: &str, router: &str, steps: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {app}-stable}}
spec:
  ports: [{{port: 80, targetPort: http, name: http}}]
  selector: {{app: {app}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {app}-canary}}
spec:
  ports: [{{port: 80, targetPort: http, name: http}}]
  selector: {{app: {app}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {app}}}
spec:
  replicas: 1
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}}}}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
  strategy:
    canary:
      canaryService: {app}-canary
      stableService: {app}-stable
      trafficRouting: {router}
      steps: {steps}
"#
    )
}

/// Traefik: the TraefikService's weighted services at 0/100, 30/70, then 0/100 after
/// promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_weighted_service_follows_the_canary() {
    within_timeout("the Traefik walkthrough", async {
        let env = Env::new("tr-traefik").await;
        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(
            r#"
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: traefik-svc}
spec:
  weighted:
    services:
      - {name: tf-stable, port: 80}
      - {name: tf-canary, port: 80}
"#,
        )
        .await;
        env.apply(&manifests("tf", "{traefik: {weightedTraefikServiceName: traefik-svc}}", "[{setWeight: 30}, {pause: {}}]")).await;
        let ts = ("traefik.io/v1alpha1", "TraefikService", "traefik-svc");
        let weights = |o: Option<&Value>| o.map(|o| o["spec"]["weighted"]["services"].clone()).unwrap_or_default();
        rollout_until(&env, "tf", "the first deploy to be Healthy", MINUTE, healthy).await;
        object_until(&env, ts, "weights 100/0", |o| {
            weights(o) == json!([{"name": "tf-stable", "port": 80, "weight": 100}, {"name": "tf-canary", "port": 80, "weight": 0}])
        })
        .await;

        env.cli_ok(&["set", "image", "tf", "app=argoproj/rollouts-demo:green"]);
        rollout_until(&env, "tf", "a pause at weight 30", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && canary_weight(ro) == 30).await;
        object_until(&env, ts, "weights 70/30", |o| {
            weights(o) == json!([{"name": "tf-stable", "port": 80, "weight": 70}, {"name": "tf-canary", "port": 80, "weight": 30}])
        })
        .await;

        env.cli_ok(&["promote", "tf"]);
        rollout_until(&env, "tf", "Healthy on green", MINUTE, |ro| healthy(ro) && step(ro) == 2).await;
        object_until(&env, ts, "weights back to 100/0", |o| {
            weights(o) == json!([{"name": "tf-stable", "port": 80, "weight": 100}, {"name": "tf-canary", "port": 80, "weight": 0}])
        })
        .await;
    })
    .await;
}

/// Ambassador: no canary Mapping before the update; `<mapping>-canary` routing to the canary
/// Service at weight 30 (the base Mapping untouched); after promotion it is set to 0 and
/// deleted about 5 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambassador_canary_mapping_is_created_weighted_and_deleted() {
    within_timeout("the Ambassador walkthrough", async {
        let env = Env::new("tr-ambassador").await;
        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(
            r#"
apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: amb-mapping}
spec: {prefix: /, service: "amb-stable:80"}
"#,
        )
        .await;
        env.apply(&manifests("amb", "{ambassador: {mappings: [amb-mapping]}}", "[{setWeight: 30}, {pause: {}}]")).await;
        let canary = ("getambassador.io/v2", "Mapping", "amb-mapping-canary");
        rollout_until(&env, "amb", "the first deploy to be Healthy", MINUTE, healthy).await;
        assert!(object(&env, canary.0, canary.1, canary.2).await.is_none(), "no canary Mapping at weight 0");

        env.cli_ok(&["set", "image", "amb", "app=argoproj/rollouts-demo:green"]);
        rollout_until(&env, "amb", "a pause at weight 30", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && canary_weight(ro) == 30).await;
        let m = object_until(&env, canary, "the canary Mapping at 30", |o| o.is_some_and(|o| o["spec"]["weight"] == 30)).await.unwrap();
        assert_eq!(m["spec"], json!({"prefix": "/", "service": "amb-canary:80", "weight": 30}), "{m}");
        assert!(m["metadata"].get("labels").is_none() && m["metadata"].get("ownerReferences").is_none(), "{m}");
        let base = object(&env, "getambassador.io/v2", "Mapping", "amb-mapping").await.unwrap();
        assert_eq!(base["spec"], json!({"prefix": "/", "service": "amb-stable:80"}), "{base}");

        env.cli_ok(&["promote", "amb"]);
        rollout_until(&env, "amb", "Healthy on green", MINUTE, |ro| healthy(ro) && step(ro) == 2).await;
        object_until(&env, canary, "the canary Mapping deleted", |o| o.is_none()).await;
    })
    .await;
}

/// APISIX: the route's backends at 100/0, 80/20 with the `set-header` ApisixRoute (owned,
/// canary only, header expression), then 100/0 and the header route deleted after promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apisix_route_weights_and_header_route() {
    within_timeout("the APISIX walkthrough", async {
        let env = Env::new("tr-apisix").await;
        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(
            r#"
apiVersion: apisix.apache.org/v2
kind: ApisixRoute
metadata: {name: apx-route}
spec:
  http:
    - name: apx-rule
      match: {paths: ["/*"]}
      backends:
        - {serviceName: apx-stable, servicePort: 80}
        - {serviceName: apx-canary, servicePort: 80}
"#,
        )
        .await;
        env.apply(
            &manifests(
                "apx",
                "{managedRoutes: [{name: set-header}], apisix: {route: {name: apx-route, rules: [apx-rule]}}}",
                "[{setWeight: 20}, {setHeaderRoute: {name: set-header, match: [{headerName: trace, headerValue: {exact: on}}]}}, {pause: {}}]",
            ),
        )
        .await;
        let route = ("apisix.apache.org/v2", "ApisixRoute", "apx-route");
        let header = ("apisix.apache.org/v2", "ApisixRoute", "set-header");
        let backends = |o: Option<&Value>| o.map(|o| o["spec"]["http"][0]["backends"].clone()).unwrap_or_default();
        rollout_until(&env, "apx", "the first deploy to be Healthy", MINUTE, healthy).await;
        object_until(&env, route, "backends 100/0", |o| {
            backends(o) == json!([{"serviceName": "apx-stable", "servicePort": 80, "weight": 100}, {"serviceName": "apx-canary", "servicePort": 80, "weight": 0}])
        })
        .await;

        env.cli_ok(&["set", "image", "apx", "app=argoproj/rollouts-demo:green"]);
        rollout_until(&env, "apx", "a pause after the header route", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 2 && canary_weight(ro) == 20).await;
        object_until(&env, route, "backends 80/20", |o| {
            backends(o) == json!([{"serviceName": "apx-stable", "servicePort": 80, "weight": 80}, {"serviceName": "apx-canary", "servicePort": 80, "weight": 20}])
        })
        .await;
        let h = object_until(&env, header, "the header route", |o| o.is_some()).await.unwrap();
        assert_eq!(field(&h, "/metadata/ownerReferences/0/kind"), "Rollout", "{h}");
        assert_eq!(
            h["spec"]["http"][0],
            json!({"name": "apx-rule", "priority": 1,
                "match": {"paths": ["/*"], "exprs": [{"subject": {"scope": "Header", "name": "trace"}, "op": "Equal", "value": "on"}]},
                "backends": [{"serviceName": "apx-canary", "servicePort": 80, "weight": 100}]}),
            "{h}"
        );

        env.cli_ok(&["promote", "apx"]);
        rollout_until(&env, "apx", "Healthy on green", MINUTE, |ro| healthy(ro) && step(ro) == 3).await;
        object_until(&env, header, "the header route deleted", |o| o.is_none()).await;
        object_until(&env, route, "backends back to 100/0", |o| {
            backends(o) == json!([{"serviceName": "apx-stable", "servicePort": 80, "weight": 100}, {"serviceName": "apx-canary", "servicePort": 80, "weight": 0}])
        })
        .await;
    })
    .await;
}

/// App Mesh: the VirtualRouter's weighted targets at 0/100, 30/70, then 0/100 after
/// promotion; the VirtualNodes' pod selectors get the stable and canary hashes (Argo's
/// `canary-hash` placeholder while the canary is the stable) and the managed-by annotation.
/// The App Mesh VirtualService shares its kind name with Istio's: the controller tells them
/// apart by the API group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appmesh_virtual_router_and_nodes_follow_the_canary() {
    within_timeout("the App Mesh walkthrough", async {
        let env = Env::new("tr-appmesh").await;
        let _controller = env.controller(&["--leader-elect=false"]);
        let node = |name: &str, hash: &str| {
            format!(
                "apiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualNode\nmetadata: {{name: {name}}}\nspec:\n  podSelector:\n    matchLabels: {{app: am, rollouts-pod-template-hash: {hash}}}\n  listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]\n---\n"
            )
        };
        let mesh = format!(
            r#"{}{}
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata: {{name: am-svc}}
spec:
  provider:
    virtualRouter:
      virtualRouterRef: {{name: am-vrouter}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata: {{name: am-vrouter}}
spec:
  listeners: [{{portMapping: {{port: 80, protocol: http}}}}]
  routes:
    - name: primary
      httpRoute:
        match: {{prefix: /}}
        action:
          weightedTargets:
            - {{virtualNodeRef: {{name: am-vn-canary}}, weight: 0}}
            - {{virtualNodeRef: {{name: am-vn-stable}}, weight: 100}}
"#,
            node("am-vn-canary", "canary-tbd"),
            node("am-vn-stable", "stable-tbd")
        );
        env.apply(&mesh).await;
        let router = "{appMesh: {virtualService: {name: am-svc}, virtualNodeGroup: {canaryVirtualNodeRef: {name: am-vn-canary}, stableVirtualNodeRef: {name: am-vn-stable}}}}";
        env.apply(&manifests("am", router, "[{setWeight: 30}, {pause: {}}]")).await;
        let vr = ("appmesh.k8s.aws/v1beta2", "VirtualRouter", "am-vrouter");
        let targets = |o: Option<&Value>| o.map(|o| o["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"].clone()).unwrap_or_default();
        let weighted = |canary: i64, stable: i64| {
            json!([{"virtualNodeRef": {"name": "am-vn-canary"}, "weight": canary}, {"virtualNodeRef": {"name": "am-vn-stable"}, "weight": stable}])
        };
        let hash_of = |o: Option<&Value>| {
            o.and_then(|o| o.pointer("/spec/podSelector/matchLabels/rollouts-pod-template-hash")).and_then(Value::as_str).unwrap_or_default().to_string()
        };
        let nodes_until = |what: &'static str, stable: String, canary: String| {
            let env = &env;
            async move {
                for (name, hash) in [("am-vn-stable", stable), ("am-vn-canary", canary)] {
                    let vn = object_until(env, ("appmesh.k8s.aws/v1beta2", "VirtualNode", name), what, |o| hash_of(o) == hash).await.unwrap();
                    assert_eq!(vn["spec"]["podSelector"]["matchLabels"]["app"], "am", "{name}: other labels kept");
                    assert_eq!(vn["metadata"]["annotations"]["argo-rollouts.argoproj.io/managed-by-rollouts"], "am", "{name}");
                }
            }
        };
        let ro = rollout_until(&env, "am", "the first deploy to be Healthy", MINUTE, healthy).await;
        let blue = field(&ro, "/status/stableRS");
        object_until(&env, vr, "weights 0/100", |o| targets(o) == weighted(0, 100)).await;
        nodes_until("the stable node on blue, the canary on the placeholder", blue.clone(), "canary-hash".into()).await;

        env.cli_ok(&["set", "image", "am", "app=argoproj/rollouts-demo:green"]);
        let ro = rollout_until(&env, "am", "a pause at weight 30", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && canary_weight(ro) == 30).await;
        let green = field(&ro, "/status/currentPodHash");
        assert_ne!(green, blue);
        object_until(&env, vr, "weights 30/70", |o| targets(o) == weighted(30, 70)).await;
        nodes_until("the canary node on green", blue, green.clone()).await;

        env.cli_ok(&["promote", "am"]);
        rollout_until(&env, "am", "Healthy on green", MINUTE, |ro| healthy(ro) && step(ro) == 2).await;
        object_until(&env, vr, "weights back to 0/100", |o| targets(o) == weighted(0, 100)).await;
        nodes_until("the stable node on green, the canary back on the placeholder", green, "canary-hash".into()).await;
        // Istio's VirtualService kind is another resource: none was made.
        assert!(object(&env, "networking.istio.io/v1alpha3", "VirtualService", "am-svc").await.is_none());
    })
    .await;
}
