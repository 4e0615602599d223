//! The data planes of the local control plane, without the rollouts controller: two versions
//! of an app (ReplicaSets whose pods carry distinct `rollouts-pod-template-hash` labels), a
//! stable and a canary Service, and the routing objects a controller would write; real
//! requests through nginx (Ingresses, ingress-nginx's canary rules) and Envoy (an HTTPRoute),
//! counted by the hash of the pod that answered.
//!
//! Each case changes an object, waits until the proxy serves the change, sends 1,000 requests
//! and checks the split with a binomial bound (exact for 0% and 100%). The counts are printed:
//! `cargo test -p rollouts --test dataplane -- --nocapture` shows them.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::traffic::{
    assert_binomial, count_by_hash, create, gateway_entries, gateway_url, ingress_location, ingress_url, merge_patch, wait_served,
};
use support::Env;

const N: u64 = 1000;
const STABLE_HASH: &str = "6f8b9c7d4f";
const CANARY_HASH: &str = "59c8d7b6f4";
const WAIT: Duration = Duration::from_secs(90);

/// Two ReplicaSets (2 blue stable pods, 1 yellow canary pod) and a Service for each.
fn two_versions() -> String {
    let rs = |name: &str, hash: &str, color: &str, replicas: u32| {
        format!(
            r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: demo, rollouts-pod-template-hash: "{hash}"}}}}
  template:
    metadata: {{labels: {{app: demo, rollouts-pod-template-hash: "{hash}"}}}}
    spec: {{containers: [{{name: demo, image: "argoproj/rollouts-demo:{color}"}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: demo, rollouts-pod-template-hash: "{hash}"}}
  ports: [{{port: 80, targetPort: 8080}}]
---"#
        )
    };
    rs("stable", STABLE_HASH, "blue", 2) + &rs("canary", CANARY_HASH, "yellow", 1)
}

fn count(counts: &std::collections::BTreeMap<String, u64>, hash: &str) -> u64 {
    counts.get(hash).copied().unwrap_or(0)
}

/// Every answer came from one of the two versions.
fn assert_only_pods(counts: &std::collections::BTreeMap<String, u64>, label: &str) {
    let answered = count(counts, STABLE_HASH) + count(counts, CANARY_HASH);
    assert_eq!(answered, N, "{label}: answers not from a pod of either version: {counts:?}");
}

fn annotations(pairs: &[(&str, Option<&str>)]) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in pairs {
        map.insert(format!("nginx.ingress.kubernetes.io/{name}"), json!(value));
    }
    json!({"metadata": {"annotations": map}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_splits_real_requests_by_ingress_nginx_canary_rules() {
    let started = Instant::now();
    let env = Env::new("dp-nginx").await;
    let url = ingress_url();
    let host = format!("{}.ingress.test", env.namespace);
    create(&env, &two_versions()).await;
    let ingress = |name: &str, service: &str, annotations: &str| {
        format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, annotations: {{{annotations}}}}}
spec:
  ingressClassName: nginx
  rules:
  - host: {host}
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}
---"#
        )
    };
    let canary = r#"nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-weight: "0""#;
    create(&env, &(ingress("demo", "stable", "") + &ingress("demo-canary", "canary", canary))).await;

    // What nginx must serve at host/: the canary Ingress merged, both versions ready, and the
    // canary settings given.
    let serving = |weight: i64, total: i64, header: Option<&'static str>, value: Option<&'static str>, cookie: Option<&'static str>| {
        let host = host.clone();
        move |served: &Value| {
            let Some(l) = ingress_location(served, &host, "/") else { return false };
            let c = &l["canary"];
            l["stable"]["endpoints"] == 2
                && c["endpoints"] == 1
                && c["weight"] == weight
                && c["total"] == total
                && c["header"] == json!(header)
                && c["headerValue"] == json!(value)
                && c["cookie"] == json!(cookie)
        }
    };
    let patch = |pairs: Vec<(&'static str, Option<&'static str>)>| {
        let env = &env;
        async move { merge_patch(env, "networking.k8s.io/v1", "Ingress", "demo-canary", annotations(&pairs)).await }
    };

    wait_served(&url, "canary weight 0", WAIT, serving(0, 100, None, None, None)).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_only_pods(&counts, "weight 0");
    assert_binomial(count(&counts, CANARY_HASH), N, 0.0, "nginx canary-weight 0: canary");

    patch(vec![("canary-weight", Some("20"))]).await;
    wait_served(&url, "canary weight 20", WAIT, serving(20, 100, None, None, None)).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_only_pods(&counts, "weight 20");
    assert_binomial(count(&counts, CANARY_HASH), N, 0.2, "nginx canary-weight 20: canary");

    patch(vec![("canary-weight", Some("100"))]).await;
    wait_served(&url, "canary weight 100", WAIT, serving(100, 100, None, None, None)).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 1.0, "nginx canary-weight 100: canary");

    patch(vec![("canary-weight", Some("50")), ("canary-weight-total", Some("1000"))]).await;
    wait_served(&url, "canary weight 50 of 1000", WAIT, serving(50, 1000, None, None, None)).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_only_pods(&counts, "weight 50/1000");
    assert_binomial(count(&counts, CANARY_HASH), N, 0.05, "nginx canary-weight 50 of canary-weight-total 1000: canary");

    // By header: always / never decide; any other value falls through to the weight.
    patch(vec![("canary-weight", Some("20")), ("canary-weight-total", None), ("canary-by-header", Some("X-Canary"))]).await;
    wait_served(&url, "canary by header X-Canary", WAIT, serving(20, 100, Some("X-Canary"), None, None)).await;
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "always")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 1.0, "nginx X-Canary: always (weight 20): canary");
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "never")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 0.0, "nginx X-Canary: never (weight 20): canary");
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "maybe")]).await;
    assert_only_pods(&counts, "X-Canary: maybe");
    assert_binomial(count(&counts, CANARY_HASH), N, 0.2, "nginx X-Canary: maybe (weight 20): canary");

    // With a header value, only that value counts ("always" is just another value).
    patch(vec![("canary-weight", Some("0")), ("canary-by-header-value", Some("v2"))]).await;
    wait_served(&url, "canary by header X-Canary: v2", WAIT, serving(0, 100, Some("X-Canary"), Some("v2"), None)).await;
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "v2")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 1.0, "nginx X-Canary: v2 (value v2, weight 0): canary");
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "always")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 0.0, "nginx X-Canary: always (value v2, weight 0): canary");

    // By cookie, after the header.
    patch(vec![("canary-by-header-value", None), ("canary-by-cookie", Some("canary"))]).await;
    wait_served(&url, "canary by cookie", WAIT, serving(0, 100, Some("X-Canary"), None, Some("canary"))).await;
    let counts = count_by_hash(&url, &host, N, &[("Cookie", "canary=always")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 1.0, "nginx cookie canary=always (weight 0): canary");
    let counts = count_by_hash(&url, &host, N, &[("Cookie", "canary=always"), ("X-Canary", "never")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 0.0, "nginx cookie canary=always, X-Canary: never: canary");

    // A pattern (when no value is set) is an unanchored regular expression.
    patch(vec![("canary-by-cookie", None), ("canary-by-header-pattern", Some("v[0-9]"))]).await;
    let with_pattern = {
        let host = host.clone();
        move |served: &Value| ingress_location(served, &host, "/").is_some_and(|l| l["canary"]["headerPattern"] == "v[0-9]" && l["canary"]["cookie"].is_null())
    };
    wait_served(&url, "canary by header pattern v[0-9]", WAIT, with_pattern).await;
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "is-v7")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 1.0, "nginx X-Canary: is-v7 (pattern v[0-9], weight 0): canary");
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "vx")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 0.0, "nginx X-Canary: vx (pattern v[0-9], weight 0): canary");

    // No ready canary pod: every request goes to stable, even at weight 100.
    patch(vec![("canary-weight", Some("100"))]).await;
    merge_patch(&env, "apps/v1", "ReplicaSet", "canary", json!({"spec": {"replicas": 0}})).await;
    let no_canary = {
        let host = host.clone();
        move |served: &Value| ingress_location(served, &host, "/").is_some_and(|l| l["canary"]["weight"] == 100 && l["canary"]["endpoints"] == 0)
    };
    wait_served(&url, "canary weight 100 without canary pods", WAIT, no_canary).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_binomial(count(&counts, STABLE_HASH), N, 1.0, "nginx weight 100, no ready canary pod: answered by stable");

    // No ready stable pod: 503, canary or not.
    merge_patch(&env, "apps/v1", "ReplicaSet", "stable", json!({"spec": {"replicas": 0}})).await;
    let nothing_ready = {
        let host = host.clone();
        move |served: &Value| ingress_location(served, &host, "/").is_some_and(|l| l["stable"]["endpoints"] == 0)
    };
    wait_served(&url, "no stable pods", WAIT, nothing_ready).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_binomial(count(&counts, "HTTP 503"), N, 1.0, "nginx no ready stable pod: 503");
    println!("nginx data plane test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_splits_real_requests_by_httproute_weights_and_matches() {
    let started = Instant::now();
    let env = Env::new("dp-envoy").await;
    let url = gateway_url();
    let host = format!("{}.gateway.test", env.namespace);
    create(&env, &two_versions()).await;
    let rules = |stable: u32, canary: u32, mirror: Option<u32>| {
        let mut split = json!({"name": "split", "backendRefs": [
            {"name": "stable", "port": 80, "weight": stable}, {"name": "canary", "port": 80, "weight": canary}]});
        if let Some(percent) = mirror {
            split["filters"] = json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "canary", "port": 80}, "percent": percent}}]);
        }
        json!([
            {"name": "canary-by-header", "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "X-Canary", "value": "yes"}]}],
             "backendRefs": [{"name": "canary", "port": 80}]},
            split,
        ])
    };
    let route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "demo"},
        "spec": {"parentRefs": [{"name": "gateway"}], "hostnames": [host], "rules": rules(80, 20, None)},
    });
    create(&env, &serde_yaml_ng::to_string(&route).unwrap()).await;

    // What Envoy must serve for host: the header rule first (more header matches), then the
    // split with these weights, both versions ready.
    let serving = |stable: u64, canary: u64, mirror: Option<u64>| {
        let host = host.clone();
        move |served: &Value| {
            let entries = gateway_entries(served, &host);
            let [header, split] = entries.as_slice() else { return false };
            let weights: Vec<(&Value, &Value, usize)> = split["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| (&b["service"], &b["weight"], b["ports"].as_array().map_or(0, Vec::len)))
                .collect();
            let mut wanted = Vec::new();
            let (stable_name, canary_name) = (json!("stable"), json!("canary"));
            let (stable_weight, canary_weight) = (json!(stable), json!(canary));
            if stable > 0 {
                wanted.push((&stable_name, &stable_weight, 2));
            }
            if canary > 0 {
                wanted.push((&canary_name, &canary_weight, 1));
            }
            header["ruleName"] == "canary-by-header"
                && header["backends"][0]["ports"].as_array().map_or(0, Vec::len) == 1
                && weights == wanted
                && split["mirror"]["perMillion"].as_u64() == mirror.map(|p| p * 10_000)
        }
    };

    wait_served(&url, "weights 80/20", WAIT, serving(80, 20, None)).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_only_pods(&counts, "80/20");
    assert_binomial(count(&counts, CANARY_HASH), N, 0.2, "envoy HTTPRoute weights 80/20: canary");
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "yes")]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 1.0, "envoy header match X-Canary: yes: canary");
    let counts = count_by_hash(&url, &host, N, &[("X-Canary", "no")]).await;
    assert_only_pods(&counts, "X-Canary: no");
    assert_binomial(count(&counts, CANARY_HASH), N, 0.2, "envoy X-Canary: no (weights 80/20): canary");

    merge_patch(&env, "gateway.networking.k8s.io/v1", "HTTPRoute", "demo", json!({"spec": {"rules": rules(100, 0, None)}})).await;
    wait_served(&url, "weights 100/0", WAIT, serving(100, 0, None)).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_binomial(count(&counts, CANARY_HASH), N, 0.0, "envoy HTTPRoute weights 100/0: canary");

    merge_patch(&env, "gateway.networking.k8s.io/v1", "HTTPRoute", "demo", json!({"spec": {"rules": rules(1, 3, None)}})).await;
    wait_served(&url, "weights 1/3", WAIT, serving(1, 3, None)).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_only_pods(&counts, "1/3");
    assert_binomial(count(&counts, CANARY_HASH), N, 0.75, "envoy HTTPRoute weights 1/3: canary");

    // A mirror: every request answered by stable, half of them copied to the canary pod.
    merge_patch(&env, "gateway.networking.k8s.io/v1", "HTTPRoute", "demo", json!({"spec": {"rules": rules(1, 0, Some(50))}})).await;
    wait_served(&url, "weights 1/0 with a 50% mirror to canary", WAIT, serving(1, 0, Some(50))).await;
    let before = canary_requests(&env).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_binomial(count(&counts, STABLE_HASH), N, 1.0, "envoy mirror 50%: answered by stable");
    let mirrored = canary_requests_since(&env, before).await;
    assert_binomial(mirrored, N, 0.5, "envoy mirror 50%: copies the canary pod received");

    // A backend that is no Service here answers 500 for its share; one without ready pods 503.
    let mut rules = rules(1, 1, None);
    rules[1]["backendRefs"].as_array_mut().unwrap().push(json!({"name": "missing", "port": 80, "weight": 2}));
    merge_patch(&env, "gateway.networking.k8s.io/v1", "HTTPRoute", "demo", json!({"spec": {"rules": rules}})).await;
    merge_patch(&env, "apps/v1", "ReplicaSet", "canary", json!({"spec": {"replicas": 0}})).await;
    let broken = {
        let host = host.clone();
        move |served: &Value| {
            let entries = gateway_entries(served, &host);
            let Some(split) = entries.get(1) else { return false };
            let backends = split["backends"].as_array().map(Vec::as_slice).unwrap_or_default();
            backends.len() == 3 && backends[1]["ports"] == json!([]) && backends[2]["invalid"].is_string()
        }
    };
    wait_served(&url, "weights 1/1/2 with no canary pod and a missing Service", WAIT, broken).await;
    let counts = count_by_hash(&url, &host, N, &[]).await;
    assert_binomial(count(&counts, STABLE_HASH), N, 0.25, "envoy weights 1/1/2: stable");
    assert_binomial(count(&counts, "HTTP 503"), N, 0.25, "envoy weights 1/1/2: 503 (canary without ready pods)");
    assert_binomial(count(&counts, "HTTP 500"), N, 0.5, "envoy weights 1/1/2: 500 (no such Service)");
    println!("envoy data plane test took {:?}", started.elapsed());
}

/// How many requests the canary pod has answered (its own counter; this question included).
async fn canary_requests(env: &Env) -> u64 {
    use k8s_openapi::api::core::v1::Pod;
    let pods: kube::Api<Pod> = kube::Api::namespaced(env.client.clone(), &env.namespace);
    let list = pods.list(&kube::api::ListParams::default().labels(&format!("rollouts-pod-template-hash={CANARY_HASH}"))).await.expect("list pods");
    let pod = list.items.first().expect("the canary pod");
    let port: u16 = pod.metadata.annotations.as_ref().and_then(|a| a.get("fake-kubelet/port")).and_then(|p| p.parse().ok()).expect("the canary pod's port");
    let body = support::http_get(([127, 0, 0, 1], port).into(), "/requests").expect("ask the canary pod");
    let answer: Value = serde_json::from_str(&body).expect("the pod's JSON");
    answer["requests"].as_u64().expect("a request count")
}

/// How many requests reached the canary pod since it said `before` (that question excluded),
/// once mirrored copies stop arriving (they trail the answers). Each question is a request too.
async fn canary_requests_since(env: &Env, before: u64) -> u64 {
    let mut last = before;
    for questions in 1..=50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = canary_requests(env).await;
        if now == last + 1 && questions > 1 {
            return now - before - questions;
        }
        last = now;
    }
    panic!("requests kept arriving at the canary pod for 10 s");
}
