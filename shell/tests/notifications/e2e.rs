//! On the local control plane: an aborted rollout notifies each subscription exactly once,
//! also across a controller restart.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use super::capture::Capture;
use super::support::{field, observed, phase, rollout_until, step, wait_for, Env};

const MINUTE: Duration = Duration::from_secs(60);

const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: notified
  annotations:
    notifications.argoproj.io/subscribe.on-rollout-aborted.hook: "team-a;team-b"
spec:
  replicas: 2
  selector: {matchLabels: {app: notified}}
  template:
    metadata: {labels: {app: notified}}
    spec:
      containers:
        - name: app
          image: argoproj/rollouts-demo:blue
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {}
"#;

async fn create_config(env: &Env, hook: &Capture) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "argo-rollouts-notification-configmap"},
        "data": {
            "service.webhook.hook": "url: $hook-url\nretryWaitMin: 200ms\n",
            "template.rollout-aborted": "message: Rollout {{.rollout.metadata.name}} has been aborted.\nwebhook:\n  hook:\n    method: POST\n    path: /aborted/{{.rollout.metadata.name}}\n    body: '{\"rollout\": \"{{.rollout.metadata.name}}\", \"recipient\": \"{{.recipient}}\", \"aborted\": {{.rollout.status.abort}}}'\n",
        }
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "argo-rollouts-notification-secret"},
        "stringData": {"hook-url": hook.url()}
    }))
    .unwrap();
    Api::<Secret>::namespaced(env.client.clone(), &env.namespace).create(&PostParams::default(), &secret).await.expect("create the Secret");
    Api::<ConfigMap>::namespaced(env.client.clone(), &env.namespace).create(&PostParams::default(), &cm).await.expect("create the ConfigMap");
}

fn log(controller: &super::support::Controller) -> String {
    std::fs::read_to_string(&controller.log).unwrap_or_default()
}

/// The controller's one notification per subscription of an abort, also after a restart;
/// the ConfigMap created after the controller started (notifications off until then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_rollout_notifies_each_subscription_once_also_across_a_controller_restart() {
    let env = Env::new("notify-abort").await;
    let hook = Capture::start((200, "ok")).await;
    let pod_ns = [("POD_NAMESPACE", env.namespace.as_str())];
    let mut controller = env.controller_with_env(&["--leader-elect=false"], &pod_ns);
    env.apply(ROLLOUT).await;
    rollout_until(&env, "notified", "the first deploy", MINUTE, |ro| observed(ro) && phase(ro) == "Healthy").await;
    assert!(log(&controller).contains("no ConfigMap"), "notifications are off without the ConfigMap: {}", controller.log_tail());

    create_config(&env, &hook).await;
    wait_for(MINUTE, "the controller to load the configuration", || async {
        let l = log(&controller);
        if l.contains("state=on: 1 services") || l.contains("state=\"on: 1 services") { Ok(()) } else { Err(controller.log_tail()) }
    })
    .await;
    env.cli_ok(&["set", "image", "notified", "app=argoproj/rollouts-demo:yellow"]);
    rollout_until(&env, "notified", "the pause", MINUTE, |ro| observed(ro) && step(ro) == 1 && phase(ro) == "Paused").await;
    assert!(hook.requests().is_empty(), "nothing subscribed before the abort: {:?}", hook.requests());

    // A subscription on the namespace holds for every rollout in it.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    let subscribe = json!({"metadata": {"annotations": {"notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "ops"}}});
    namespaces.patch(&env.namespace, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&subscribe)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    env.cli_ok(&["abort", "notified"]);
    rollout_until(&env, "notified", "the abort", MINUTE, |ro| observed(ro) && phase(ro) == "Degraded").await;
    let got = hook.wait_for(3, MINUTE).await;
    let mut bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b["recipient"].to_string());
    assert_eq!(bodies, [
        json!({"rollout": "notified", "recipient": "ops", "aborted": true}),
        json!({"rollout": "notified", "recipient": "team-a", "aborted": true}),
        json!({"rollout": "notified", "recipient": "team-b", "aborted": true}),
    ]);
    assert!(got.iter().all(|r| r.method == "POST" && r.path == "/aborted/notified"), "{got:?}");

    // The record of what was sent lands on the Rollout.
    let record = wait_for(MINUTE, "the notified annotation", || async {
        let ro = env.rollout("notified").await;
        let value = field(&ro, "/metadata/annotations/notified.notifications.argoproj.io");
        let entries: serde_json::Map<String, Value> = serde_json::from_str(&value).map_err(|_| value.clone())?;
        if entries.len() == 3 { Ok(entries) } else { Err(value) }
    })
    .await;
    assert!(record.keys().any(|k| k.ends_with(":on-rollout-aborted:[0].2jmj7l5rSw0yVb_vlWAYkK_YBwk:hook:team-a")), "{record:?}");
    let metrics = controller.metrics_text();
    let sent: Vec<&str> = metrics.lines().filter(|l| l.starts_with("notification_send_success_total{")).collect();
    assert!(sent.len() == 1 && sent[0].contains("reason=\"RolloutAborted\"") && sent[0].ends_with(" 3"), "{sent:?}");

    // A new controller takes over the aborted rollout: nothing is sent again.
    controller.kill();
    let restarted = env.controller_with_env(&["--leader-elect=false"], &pod_ns);
    wait_for(MINUTE, "the restarted controller to reconcile", || async {
        let l = log(&restarted);
        if l.contains("caches synced") && l.contains("state=on") || l.contains("state=\"on") && l.contains("caches synced") {
            Ok(())
        } else {
            Err(restarted.log_tail())
        }
    })
    .await;
    // A change to the rollout makes it reconcile again, with the abort still in its status.
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &rollouts_shell::kubeapi::rollout_resource());
    let touch = json!({"metadata": {"labels": {"touched": "yes"}}});
    api.patch("notified", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&touch)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ro = env.rollout("notified").await;
    assert_eq!(phase(&ro), "Degraded", "still aborted: {}", super::support::summary(&ro));
    assert_eq!(hook.requests().len(), 3, "sent again after the restart: {:?}", hook.requests());
    assert!(!log(&restarted).contains("notification not delivered"), "{}", restarted.log_tail());
}

/// `deploy/rbac.yaml`'s notifications Role, applied in the test's namespace to a user the test
/// impersonates: the controller's watch of the ConfigMap and Secret by name is allowed, and
/// nothing else about ConfigMaps and Secrets is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_role_allows_watching_only_the_notification_configmap_and_secret() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::api::{ListParams, WatchParams};
    use futures::StreamExt;

    let env = Env::new("notify-rbac").await;
    let hook = Capture::start((200, "ok")).await;
    create_config(&env, &hook).await;
    let text = std::fs::read_to_string(super::support::repo().join("deploy/rbac.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let named = |kind: &str| {
        let mut doc = docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == "argo-rollouts-notifications").cloned().unwrap_or_else(|| panic!("a {kind} argo-rollouts-notifications in deploy/rbac.yaml"));
        doc["metadata"]["namespace"] = env.namespace.clone().into();
        doc
    };
    let user = format!("notifications-{}", std::process::id());
    let mut binding = named("RoleBinding");
    binding["subjects"] = json!([{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]);
    let role: Role = serde_json::from_value(named("Role")).unwrap();
    let binding: RoleBinding = serde_json::from_value(binding).unwrap();
    Api::<Role>::namespaced(env.client.clone(), &env.namespace).create(&PostParams::default(), &role).await.unwrap();
    Api::<RoleBinding>::namespaced(env.client.clone(), &env.namespace).create(&PostParams::default(), &binding).await.unwrap();

    let kc = kube::config::Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.unwrap();
    config.auth_info.impersonate = Some(user);
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &env.namespace);
    let secrets: Api<Secret> = Api::namespaced(client, &env.namespace);
    let code = |e: kube::Error| match e {
        kube::Error::Api(s) => s.code,
        other => panic!("{other}"),
    };
    let by_name = |name: &str| ListParams::default().fields(&format!("metadata.name={name}"));
    // RBAC is evaluated as soon as the binding exists; allow the authorizer's cache a moment.
    wait_for(MINUTE, "the Role to allow the named ConfigMap", || async {
        cms.list(&by_name("argo-rollouts-notification-configmap")).await.map(drop).map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(cms.list(&by_name("argo-rollouts-notification-configmap")).await.unwrap().items.len(), 1);
    assert_eq!(secrets.list(&by_name("argo-rollouts-notification-secret")).await.unwrap().items.len(), 1);
    let mut watch = cms
        .watch(&WatchParams::default().fields("metadata.name=argo-rollouts-notification-configmap").timeout(2), "0")
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap();
    assert!(matches!(first, Some(Ok(_))), "watching the named ConfigMap: {first:?}");
    assert!(secrets.get("argo-rollouts-notification-secret").await.is_ok());
    assert_eq!(code(cms.list(&ListParams::default()).await.unwrap_err()), 403, "listing every ConfigMap");
    assert_eq!(code(secrets.list(&ListParams::default()).await.unwrap_err()), 403, "listing every Secret");
    assert_eq!(code(secrets.get("someone-elses").await.unwrap_err()), 403, "reading another Secret");
}
