//! AWS ALB: the forward-action annotation (and header-route annotations and path) the
//! controller writes on the user's Ingress, and ping-pong Services. No AWS load balancer
//! reads them here; the annotations are checked as the AWS Load Balancer Controller would
//! read them.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use serde_json::Value;

use crate::support::{field, healthy, phase, rollout_until, wait_for, within_timeout, Env};

const MINUTE: Duration = Duration::from_secs(60);



fn service(name: &str, app: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {app}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n")
}

/// An Ingress whose one path sends everything to `service` on `use-annotation`, as the AWS
/// Load Balancer Controller's documentation writes it.
fn alb_ingress(name: &str, service: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  annotations:
    kubernetes.io/ingress.class: alb
    alb.ingress.kubernetes.io/scheme: internet-facing
spec:
  rules:
    - http:
        paths:
          - path: /*
            pathType: ImplementationSpecific
            backend:
              service: {{name: {service}, port: {{name: use-annotation}}}}
"#
    )
}

fn rollout(name: &str, canary: &str, steps: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
          ports: [{{name: http, containerPort: 8080}}]
  strategy:
    canary:
{canary}
      steps:
{steps}
"#
    )
}

async fn ingress(env: &Env, name: &str) -> Ingress {
    Api::<Ingress>::namespaced(env.client.clone(), &env.namespace).get(name).await.expect("get the Ingress")
}

fn annotation(ing: &Ingress, key: &str) -> Option<String> {
    ing.metadata.annotations.as_ref()?.get(key).cloned()
}

/// Argo's forward action with two target groups, as the annotation holds it.
fn forward(canary: &str, weight: i64, stable: &str) -> String {
    format!(
        r#"{{"Type":"forward","ForwardConfig":{{"TargetGroups":[{{"ServiceName":"{canary}","ServicePort":"80","Weight":{weight}}},{{"ServiceName":"{stable}","ServicePort":"80","Weight":{}}}]}}}}"#,
        100 - weight
    )
}

/// Waits until annotation `key` of Ingress `name` is `want` (`None`: absent) and returns
/// the Ingress.
async fn annotated(env: &Env, name: &str, key: &str, want: Option<&str>) -> Ingress {
    wait_for(MINUTE, &format!("{name} {key} = {want:?}"), || async {
        let ing = ingress(env, name).await;
        let got = annotation(&ing, key);
        if got.as_deref() == want { Ok(ing) } else { Err(format!("{got:?}")) }
    })
    .await
}

/// The backends of the paths of the Ingress's first rule, in order.
fn path_services(ing: &Ingress) -> Vec<String> {
    let rules = ing.spec.as_ref().and_then(|s| s.rules.as_ref()).expect("rules");
    rules[0].http.as_ref().expect("http").paths.iter().filter_map(|p| p.backend.service.as_ref()).map(|s| s.name.clone()).collect()
}

async fn selected_hash(env: &Env, name: &str) -> String {
    let svc = Api::<Service>::namespaced(env.client.clone(), &env.namespace).get(name).await.expect("get the Service");
    svc.spec.and_then(|s| s.selector).and_then(|s| s.get("rollouts-pod-template-hash").cloned()).unwrap_or_default()
}

fn paused_at(ro: &Value, index: i64) -> bool {
    phase(ro) == "Paused" && ro.pointer("/status/currentStepIndex").and_then(Value::as_i64) == Some(index)
}

/// A canary through ALB with a header route: the action annotation at 0, 20, 50 and back to
/// 0 after promotion, the header route's annotations and path while its step is in force,
/// all managed keys recorded, the user's annotations kept, `verified` null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_weights_and_header_route_on_the_ingress() {
    within_timeout("the ALB walkthrough", async {
        let env = Env::new("tr-alb").await;
        let _controller = env.controller(&[]);
        let canary = "      stableService: web-stable
      canaryService: web-canary
      trafficRouting:
        managedRoutes: [{name: beta}]
        alb: {ingress: web, servicePort: 80}";
        let steps = "        - setWeight: 20
        - setHeaderRoute: {name: beta, match: [{headerName: X-Beta, headerValue: {exact: 'on'}}]}
        - pause: {}
        - setWeight: 50
        - pause: {}";
        let yaml = [service("web-stable", "web"), service("web-canary", "web"), alb_ingress("web", "web-stable"), rollout("web", canary, steps)]
            .join("---\n");
        env.apply(&yaml).await;
        let action = "alb.ingress.kubernetes.io/actions.web-stable";
        let managed = "rollouts.argoproj.io/managed-alb-annotations";

        rollout_until(&env, "web", "the first deploy to be Healthy", MINUTE, healthy).await;
        let ing = annotated(&env, "web", action, Some(&forward("web-canary", 0, "web-stable"))).await;
        let ro = rollout_until(&env, "web", "the weights", MINUTE, |ro| field(ro, "/status/canary/weights/stable/weight") == "100").await;
        assert_eq!(field(&ro, "/status/canary/weights/verified"), "<none>", "no AWS here: verified stays null");
        assert_eq!(annotation(&ing, managed).as_deref(), Some(r#"{"web":["alb.ingress.kubernetes.io/actions.web-stable"]}"#));
        assert_eq!(annotation(&ing, "alb.ingress.kubernetes.io/scheme").as_deref(), Some("internet-facing"));

        env.cli_ok(&["set", "image", "web", "app=argoproj/rollouts-demo:yellow"]);
        rollout_until(&env, "web", "the pause after the header route", MINUTE, |ro| paused_at(ro, 2)).await;
        annotated(&env, "web", action, Some(&forward("web-canary", 20, "web-stable"))).await;
        let ing = wait_for(MINUTE, "the header route", || async {
            let ing = ingress(&env, "web").await;
            if annotation(&ing, "alb.ingress.kubernetes.io/conditions.beta").is_some() { Ok(ing) } else { Err(format!("{:?}", ing.metadata.annotations)) }
        })
        .await;
        assert_eq!(
            annotation(&ing, "alb.ingress.kubernetes.io/actions.beta").as_deref(),
            Some(r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"web-canary","ServicePort":"80","Weight":100}]}}"#)
        );
        assert_eq!(
            annotation(&ing, "alb.ingress.kubernetes.io/conditions.beta").as_deref(),
            Some(r#"[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Beta","values":["on"]}}]"#)
        );
        assert_eq!(path_services(&ing), vec!["beta", "web-stable"]);
        assert_eq!(
            annotation(&ing, managed).as_deref(),
            Some(r#"{"web":["alb.ingress.kubernetes.io/actions.web-stable","alb.ingress.kubernetes.io/actions.beta","alb.ingress.kubernetes.io/conditions.beta"]}"#)
        );

        env.cli_ok(&["promote", "web"]);
        rollout_until(&env, "web", "the second pause", MINUTE, |ro| paused_at(ro, 4)).await;
        annotated(&env, "web", action, Some(&forward("web-canary", 50, "web-stable"))).await;

        env.cli_ok(&["promote", "web"]);
        // The reconcile that moves stableRS still reports the canary's 100 (true then: the
        // canary is the new stable); the next one sets the weight back to 0, as in Argo.
        rollout_until(&env, "web", "the update to be Healthy with the canary weight back at 0", 2 * MINUTE, |ro| {
            healthy(ro)
                && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
                && field(ro, "/status/canary/weights/canary/weight") == "0"
        })
        .await;
        annotated(&env, "web", action, Some(&forward("web-canary", 0, "web-stable"))).await;
        let ing = annotated(&env, "web", "alb.ingress.kubernetes.io/conditions.beta", None).await;
        assert_eq!(annotation(&ing, "alb.ingress.kubernetes.io/actions.beta"), None);
        assert_eq!(path_services(&ing), vec!["web-stable"]);
        assert_eq!(annotation(&ing, managed).as_deref(), Some(r#"{"web":["alb.ingress.kubernetes.io/actions.web-stable"]}"#));
    })
    .await;
}

/// Ping-pong through ALB: the target groups are the ping and pong Services; during an
/// update the non-stable one selects the new ReplicaSet and gets the canary weight; on
/// promotion `stablePingPong` flips and the other Service gets everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_ping_pong_flips_on_promotion() {
    within_timeout("the ALB ping-pong update", async {
        let env = Env::new("tr-alb-pp").await;
        let _controller = env.controller(&[]);
        let canary = "      pingPong: {pingService: pp-ping, pongService: pp-pong}
      trafficRouting:
        alb: {ingress: pp, rootService: pp-root, servicePort: 80}";
        let steps = "        - setWeight: 30\n        - pause: {}";
        let yaml = [
            service("pp-root", "pp"),
            service("pp-ping", "pp"),
            service("pp-pong", "pp"),
            alb_ingress("pp", "pp-root"),
            rollout("pp", canary, steps),
        ]
        .join("---\n");
        env.apply(&yaml).await;
        let action = "alb.ingress.kubernetes.io/actions.pp-root";

        let ro = rollout_until(&env, "pp", "the first deploy to be Healthy", MINUTE, healthy).await;
        let first = field(&ro, "/status/stableRS");
        let ro = rollout_until(&env, "pp", "stablePingPong ping", MINUTE, |ro| field(ro, "/status/canary/stablePingPong") == "ping").await;
        assert_eq!(field(&ro, "/status/stableRS"), first);
        annotated(&env, "pp", action, Some(&forward("pp-pong", 0, "pp-ping"))).await;
        assert_eq!(selected_hash(&env, "pp-ping").await, first, "ping followed the first ReplicaSet");

        env.cli_ok(&["set", "image", "pp", "app=argoproj/rollouts-demo:yellow"]);
        let ro = rollout_until(&env, "pp", "the pause at 30", MINUTE, |ro| paused_at(ro, 1)).await;
        let second = field(&ro, "/status/currentPodHash");
        annotated(&env, "pp", action, Some(&forward("pp-pong", 30, "pp-ping"))).await;
        assert_eq!(selected_hash(&env, "pp-pong").await, second, "pong follows the new ReplicaSet");
        assert_eq!(selected_hash(&env, "pp-ping").await, first, "ping stays on the stable");
        assert_eq!(field(&ro, "/status/canary/stablePingPong"), "ping");

        env.cli_ok(&["promote", "pp"]);
        let ro = rollout_until(&env, "pp", "the promotion", 2 * MINUTE, |ro| {
            healthy(ro) && field(ro, "/status/stableRS") == second
        })
        .await;
        assert_eq!(field(&ro, "/status/canary/stablePingPong"), "pong");
        annotated(&env, "pp", action, Some(&forward("pp-ping", 0, "pp-pong"))).await;
        assert_eq!(selected_hash(&env, "pp-pong").await, second);
    })
    .await;
}
