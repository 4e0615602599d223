//! `workloadRef` on the local plane: a running Deployment (kube-controller-manager's
//! Deployment controller, pods made ready by the fake kubelet) handed over to a Rollout with
//! `scaleDown: progressively`; `set image` and `undo` change the Deployment, which the
//! Rollout follows.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;

use super::support::{field, healthy, phase, rollout_until, step, wait_for, Env};
use super::MINUTE;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "argoproj/rollouts-demo:blue"}]
"#;

const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 3
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web, scaleDown: progressively}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"#;

async fn deployment(env: &Env) -> Deployment {
    Api::<Deployment>::namespaced(env.client.clone(), &env.namespace).get("web").await.expect("the Deployment")
}

fn replicas(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    (spec, ready)
}

fn image(d: &Deployment) -> String {
    let v = serde_json::to_value(d).unwrap_or(Value::Null);
    field(&v, "/spec/template/spec/containers/0/image")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_ref_takes_over_a_running_deployment_and_follows_it() {
    let env = Env::new("e2e-workload").await;
    env.apply(DEPLOYMENT).await;
    wait_for(MINUTE, "the Deployment's 3 pods to be ready", || async {
        let d = deployment(&env).await;
        if replicas(&d) == (3, 3) { Ok(()) } else { Err(format!("{:?}", replicas(&d))) }
    })
    .await;

    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(ROLLOUT).await;
    let ro = rollout_until(&env, "web", "the rollout to take over", MINUTE, healthy).await;
    wait_for(MINUTE, "the Deployment to be scaled to 0 (progressively, then Healthy)", || async {
        let d = deployment(&env).await;
        if replicas(&d).0 == 0 { Ok(()) } else { Err(format!("{:?}\n{}", replicas(&d), controller.log_tail())) }
    })
    .await;
    assert_eq!(field(&ro, "/status/availableReplicas"), "3", "{ro}");
    // The rollout records the Deployment's generation (each scale made a new one).
    let generation = deployment(&env).await.metadata.generation.unwrap_or(0).to_string();
    assert_ne!(generation, "1", "the scale-down changed the Deployment's spec");
    rollout_until(&env, "web", "the Deployment's generation to be observed", MINUTE, |ro| {
        field(ro, "/metadata/annotations/rollout.argoproj.io~1workload-generation") == generation
            && field(ro, "/status/workloadObservedGeneration") == generation
    })
    .await;

    // `set image` changes the Deployment, not the Rollout; the Rollout follows it.
    let out = env.cli_ok(&["set", "image", "web", "web=argoproj/rollouts-demo:green"]);
    assert!(out.contains(r#"deployment "web" image updated"#), "{out}");
    assert_eq!(image(&deployment(&env).await), "argoproj/rollouts-demo:green");
    let ro = rollout_until(&env, "web", "revision 2 paused at setWeight 50", MINUTE, |ro| phase(ro) == "Paused" && step(ro) == 1).await;
    assert!(ro.pointer("/spec/template").is_none(), "the Rollout's own spec keeps no template: {ro}");
    let generation = deployment(&env).await.metadata.generation.unwrap_or(0).to_string();
    assert_eq!(field(&ro, "/metadata/annotations/rollout.argoproj.io~1workload-generation"), generation, "{ro}");
    env.cli_ok(&["promote", "web"]);
    rollout_until(&env, "web", "revision 2 to be stable", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    // The first revision only is a migration: the Deployment stays at 0.
    assert_eq!(replicas(&deployment(&env).await).0, 0);

    // `undo` puts revision 1's template back in the Deployment.
    env.cli_ok(&["undo", "web"]);
    assert_eq!(image(&deployment(&env).await), "argoproj/rollouts-demo:blue");
    rollout_until(&env, "web", "the rollback to be paused at setWeight 50 again", MINUTE, |ro| {
        phase(ro) == "Paused" && field(ro, "/metadata/annotations/rollout.argoproj.io~1revision") == "3"
    })
    .await;
    drop(controller);
}

/// Argo's `examples/workload-ref` unchanged: the Deployment keeps its 0 replicas, the Rollout
/// runs 5 pods of its template and follows a change of it through the steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argos_workload_ref_example_runs_unchanged() {
    let env = Env::new("e2e-workload-example").await;
    let controller = env.controller(&["--leader-elect=false"]);
    env.apply(include_str!("../../../fixtures/manifests/argo-workload-ref.yaml")).await;
    let ro = rollout_until(&env, "rollout-ref-deployment", "the example to be Healthy", MINUTE, healthy).await;
    assert_eq!(field(&ro, "/status/availableReplicas"), "5", "{ro}");
    let api = Api::<Deployment>::namespaced(env.client.clone(), &env.namespace);
    let d = api.get("rollout-ref-deployment").await.unwrap();
    assert_eq!(replicas(&d).0, 0, "scaleDown unset: the Deployment is left as it is");

    let out = env.cli_ok(&["set", "image", "rollout-ref-deployment", "rollouts-demo=argoproj/rollouts-demo:green"]);
    assert!(out.contains(r#"deployment "rollout-ref-deployment" image updated"#), "{out}");
    rollout_until(&env, "rollout-ref-deployment", "revision 2 at setWeight 20, then through the 10 s pause", MINUTE, |ro| {
        phase(ro) == "Paused" && step(ro) == 1
    })
    .await;
    rollout_until(&env, "rollout-ref-deployment", "revision 2 to be stable", MINUTE, |ro| {
        healthy(ro) && field(ro, "/status/stableRS") == field(ro, "/status/currentPodHash")
    })
    .await;
    drop(controller);
}
