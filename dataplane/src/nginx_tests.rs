use super::*;
use crate::ingress::{Backend, Canary, CanaryPolicy, Ignored};

fn location(
    host: &str,
    path: &str,
    path_type: &str,
    stable: &[u16],
    canary: Option<(&[u16], CanaryPolicy)>,
) -> Location {
    Location {
        host: host.into(),
        path: path.into(),
        path_type: path_type.into(),
        namespace: "ns".into(),
        ingress: "ns/stable".into(),
        stable: Backend {
            service: "stable".into(),
            ports: stable.to_vec(),
        },
        canary: canary.map(|(ports, policy)| Canary {
            ingress: "ns/canary".into(),
            backend: Backend {
                service: "canary".into(),
                ports: ports.to_vec(),
            },
            policy,
        }),
    }
}

fn policy(weight: i64, total: i64) -> CanaryPolicy {
    CanaryPolicy {
        weight,
        total,
        header: None,
        header_value: None,
        header_pattern: None,
        cookie: None,
    }
}

fn render_one(l: Location) -> Config {
    render(
        &Plan {
            locations: vec![l],
            ignored: vec![],
        },
        8080,
        Path::new("/state"),
        7,
    )
}

/// Undoes what nginx's configuration parser and `set`/`return` do to the served chunks.
fn unescape_chunks(served_conf: &str) -> String {
    let mut out = String::new();
    for line in served_conf.lines() {
        let Some(rest) = line.trim().strip_prefix("set $rollouts_served") else {
            continue;
        };
        let quoted = &rest[rest.find('\'').unwrap() + 1..rest.rfind('\'').unwrap()];
        assert!(
            quoted.len() < 4096,
            "a configuration token is limited to 4 KiB"
        );
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.push(chars.next().unwrap());
            } else {
                out.push(c);
            }
        }
    }
    out.replace("${rollouts_dollar}", "$")
}

#[test]
fn the_canary_share_is_weight_over_total_in_steps_of_a_hundredth_of_a_percent() {
    assert_eq!(basis_points(0, 100), 0);
    assert_eq!(basis_points(-5, 100), 0);
    assert_eq!(basis_points(20, 100), 2_000);
    assert_eq!(basis_points(100, 100), 10_000);
    assert_eq!(basis_points(150, 100), 10_000);
    assert_eq!(basis_points(50, 1000), 500);
    assert_eq!(basis_points(1, 3), 3_333);
    assert_eq!(basis_points(1, 1_000_000), 0);
}

#[test]
fn a_split_decides_by_header_then_cookie_then_weight() {
    let mut p = policy(20, 100);
    p.header = Some("X-Canary".into());
    p.cookie = Some("canary_cookie".into());
    let config = render_one(location("a.test", "/", "Prefix", &[1], Some((&[2], p))));
    let conf = &config.nginx_conf;
    let header = conf.find("map $http_x_canary $rollouts_h0 {").unwrap();
    let cookie = conf
        .find("map $cookie_canary_cookie $rollouts_c0 {")
        .unwrap();
    let weight = conf.find("split_clients \"${request_id}\" $rollouts_w0 {\n        20.00% canary;\n        * stable;").unwrap();
    let decision = conf
        .find("map \"${rollouts_h0}${rollouts_c0}${rollouts_w0}\" $rollouts_to0 {")
        .unwrap();
    assert!(header < cookie && cookie < weight && weight < decision);
    assert!(conf.contains("\"~^always$\" canary;\n        \"~^never$\" stable;"));
    assert!(conf.contains("default rollouts_u0;\n        \"~^canary\" rollouts_u1;"));
    assert!(conf.contains("location \"/\" { proxy_pass http://$rollouts_to0; }"));
    assert!(conf.contains("upstream rollouts_u1 {\n        server 127.0.0.1:2;"));
}

#[test]
fn a_header_value_is_an_anchored_literal_and_a_pattern_is_unanchored() {
    let mut p = policy(0, 100);
    p.header = Some("x-version".into());
    p.header_value = Some("v2.0$".into());
    p.header_pattern = Some("ignored".into());
    let conf = render_one(location(
        "a.test",
        "/",
        "Prefix",
        &[1],
        Some((&[2], p.clone())),
    ))
    .nginx_conf;
    assert!(conf.contains("\"~^v2\\\\.0\\\\$$\" canary;"), "{conf}");
    assert!(!conf.contains("ignored"));
    // Weight 0 leaves "stable" as the last word.
    assert!(conf.contains("map \"${rollouts_h0}stable\" $rollouts_to0"));

    p.header_value = None;
    p.header_pattern = Some("^v[0-9]+\"".into());
    let conf = render_one(location(
        "a.test",
        "/",
        "Prefix",
        &[1],
        Some((&[2], p.clone())),
    ))
    .nginx_conf;
    assert!(conf.contains("\"~^v[0-9]+\\\"\" canary;"), "{conf}");

    p.header_pattern = Some("(".into());
    let config = render_one(location("a.test", "/", "Prefix", &[1], Some((&[2], p))));
    assert!(config.nginx_conf.contains("\"~.\" stable;"));
    assert!(unescape_chunks(&config.served_conf).contains("does not compile"));
}

#[test]
fn constant_decisions_need_no_map() {
    let always = render_one(location(
        "a.test",
        "/",
        "Prefix",
        &[1],
        Some((&[2], policy(100, 100))),
    ))
    .nginx_conf;
    assert!(always.contains("location \"/\" { proxy_pass http://rollouts_u1; }"));
    assert!(!always.contains("split_clients"));
    let never = render_one(location(
        "a.test",
        "/",
        "Prefix",
        &[1],
        Some((&[2], policy(0, 100))),
    ))
    .nginx_conf;
    assert!(never.contains("location \"/\" { proxy_pass http://rollouts_u0; }"));
}

#[test]
fn no_ready_stable_answers_503_and_no_ready_canary_leaves_all_to_stable() {
    let no_stable = render_one(location(
        "a.test",
        "/",
        "Prefix",
        &[],
        Some((&[2], policy(100, 100))),
    ));
    assert!(no_stable
        .nginx_conf
        .contains("location \"/\" { return 503; }"));
    let no_canary = render_one(location(
        "a.test",
        "/",
        "Prefix",
        &[1],
        Some((&[], policy(100, 100))),
    ));
    assert!(no_canary
        .nginx_conf
        .contains("location \"/\" { proxy_pass http://rollouts_u0; }"));
    assert!(unescape_chunks(&no_canary.served_conf).contains("every request goes to stable"));
}

#[test]
fn paths_are_written_as_ingress_nginx_writes_them() {
    let plan = Plan {
        locations: vec![
            location("a.test", "/api", "Prefix", &[1], None),
            location("a.test", "/exact", "Exact", &[1], None),
            location("a.test", "/exact", "Prefix", &[1], None),
            location("a.test", "/impl", "ImplementationSpecific", &[1], None),
            location("b.test", "/", "Prefix", &[1], None),
        ],
        ignored: vec![],
    };
    let conf = render(&plan, 8080, Path::new("/state"), 1).nginx_conf;
    for wanted in [
        "location \"/api/\" {",
        "location = \"/api\" {",
        "location = \"/exact\" {",
        "location \"/exact/\" {",
        "location \"/impl\" {",
        "server_name \"b.test\";",
    ] {
        assert!(conf.contains(wanted), "{wanted} missing from\n{conf}");
    }
    assert_eq!(conf.matches("location = \"/exact\"").count(), 1);
    // a.test has no "/" location: 404 there; b.test has one; the catch-all server is default.
    assert_eq!(conf.matches("location / { return 404; }").count(), 2);
    assert!(conf.contains("listen 127.0.0.1:8080 default_server;\n        server_name \"_\";"));
}

#[test]
fn the_served_json_survives_the_configuration_syntax() {
    let mut p = policy(20, 100);
    p.header = Some("x".into());
    p.header_pattern = Some("^a$|'b\\d{2}\"".into());
    let mut plan = Plan {
        locations: vec![location("a.test", "/", "Prefix", &[1], Some((&[2], p)))],
        ignored: vec![],
    };
    for i in 0..200 {
        plan.ignored.push(Ignored {
            ingress: format!("ns/i{i}"),
            reason: "a long reason with $dollars and 'quotes'".into(),
        });
    }
    let config = render(&plan, 8080, Path::new("/state"), 42);
    let served: Value = serde_json::from_str(&unescape_chunks(&config.served_conf)).unwrap();
    assert_eq!(served["generation"], 42);
    assert_eq!(
        served["locations"][0]["canary"]["headerPattern"],
        "^a$|'b\\d{2}\""
    );
    assert_eq!(served["locations"][0]["canary"]["split"], "20.00%");
    assert_eq!(served["locations"][0]["stable"]["endpoints"], 1);
    assert_eq!(served["ignored"].as_array().unwrap().len(), 200);
    assert!(config.served_conf.matches("set $rollouts_served").count() > 1);
    assert!(config.nginx_conf.contains("generation 42"));
}

#[test]
fn a_cookie_name_that_is_no_variable_name_is_read_from_the_cookie_header() {
    let mut p = policy(0, 100);
    p.cookie = Some("canary-user".into());
    let conf = render_one(location("a.test", "/", "Prefix", &[1], Some((&[2], p)))).nginx_conf;
    assert!(conf.contains("map $http_cookie $rollouts_c0 {"), "{conf}");
    assert!(
        conf.contains(r#""~(?:^|;)\\s*(?i:canary\\-user)=always\\s*(?:;|$)" canary;"#),
        "{conf}"
    );
    let matcher = regex::Regex::new(r"(?:^|;)\s*(?i:canary\-user)=always\s*(?:;|$)").unwrap();
    assert!(matcher.is_match("a=1; Canary-User=always; b=2"));
    assert!(!matcher.is_match("not-canary-user=always"));
    assert!(!matcher.is_match("canary-user=always-not"));
}

/// nginx itself (Debian's, fetched into the cache by `deploy/dev-cluster/nginx`).
fn nginx_binary() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev-cluster/nginx");
    let out = std::process::Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .expect("run deploy/dev-cluster/nginx");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn every_kind_of_location_passes_nginx_own_configuration_test() {
    let mut header_value = policy(20, 100);
    header_value.header = Some("X-Canary".into());
    header_value.header_value = Some("v2\"'$".into());
    header_value.cookie = Some("canary".into());
    let mut pattern = policy(1, 3);
    pattern.header = Some("x-v".into());
    pattern.header_pattern = Some("^a'b\"c$|\\d{2}$|(?i:x)".into());
    pattern.cookie = Some("canary-user".into());
    let mut bad = policy(50, 1000);
    bad.header = Some("x.bad".into());
    bad.header_pattern = Some("(".into());
    let mut always = policy(100, 100);
    always.header = Some("x-always".into());
    let mut plan = Plan {
        locations: vec![
            location("a.test", "/", "Prefix", &[1, 2], Some((&[3], header_value))),
            location("a.test", "/api", "Prefix", &[1], Some((&[3], pattern))),
            location("a.test", "/api", "Exact", &[1], None),
            location(
                "a.test",
                "/weird \"path\" {x}; $y",
                "ImplementationSpecific",
                &[1],
                Some((&[3], bad)),
            ),
            location(
                "*.wild.test",
                "/",
                "Prefix",
                &[1],
                Some((&[], policy(50, 100))),
            ),
            location("b.test", "/", "Exact", &[], Some((&[3], always))),
            location("_", "/catch", "Prefix", &[1], None),
        ],
        ignored: vec![],
    };
    for i in 0..300 {
        plan.ignored.push(Ignored {
            ingress: format!("ns/i{i}"),
            reason: format!("reason {i} with $ and ' and \" and \\"),
        });
    }
    let dir =
        std::env::temp_dir().join(format!("rollouts-dataplane-nginx-t-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let config = render(&plan, 1, &dir, 3);
    std::fs::write(dir.join("served.conf"), &config.served_conf).unwrap();
    std::fs::write(dir.join("nginx.conf"), &config.nginx_conf).unwrap();
    let out = std::process::Command::new(nginx_binary())
        .args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .output()
        .expect("run nginx -t");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "nginx -t: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        config.nginx_conf
    );
}
