//! Golden timelines: every scenario in `fixtures/scenarios/` simulated and snapshotted as
//! the table `rollouts simulate` prints (one line per timeline entry), then every change
//! the controller made to the cluster (one line each), then the outcome. A behaviour
//! change shows up here as a short reviewed diff (`cargo insta review`).

use rollouts_core::sim::{parse_scenario, render_changes, render_table, simulate, simulate_with, SimOptions, Simulation};

/// The golden text of one simulation.
fn golden(sim: &Simulation) -> String {
    let mut out = render_table(&sim.timeline);
    out.push_str("---- changes\n");
    out.push_str(&render_changes(&sim.changes));
    // The traffic-router objects the plan leaves, as the cluster holds them at the end.
    let routers: Vec<(&String, &serde_json::Value)> = sim
        .objects
        .iter()
        .filter(|(k, _)| ["Ingress/", "HTTPRoute/", "GRPCRoute/", "TCPRoute/", "VirtualService/", "DestinationRule/", "TrafficSplit/", "TraefikService/", "Mapping/", "ApisixRoute/", "VirtualRouter/", "VirtualNode/"].iter().any(|p| k.starts_with(p)))
        .collect();
    if !routers.is_empty() {
        out.push_str("---- router objects\n");
        for (key, obj) in routers {
            out.push_str(&format!("{key}\n{}\n", serde_json::to_string_pretty(obj).unwrap_or_default()));
        }
    }
    // The pods of a rollout with ephemeral metadata (the only ones in `objects`): their
    // labels and annotations at the end, one line each.
    let pods: Vec<(&String, &serde_json::Value)> = sim.objects.iter().filter(|(k, _)| k.starts_with("Pod/")).collect();
    if !pods.is_empty() {
        out.push_str("---- pods\n");
        for (key, pod) in pods {
            let field = |f: &str| serde_json::to_string(&pod["metadata"][f]).unwrap_or_default();
            out.push_str(&format!("{key} labels={} annotations={}\n", field("labels"), field("annotations")));
        }
    }
    out.push_str("---- outcome\n");
    let how = if sim.outcome.settled { "settled" } else { "stopped without settling" };
    out.push_str(&format!("{how} at {}\n", sim.outcome.at));
    for f in &sim.outcome.failed_expectations {
        out.push_str(&format!("expectation failed: {f}\n"));
    }
    out
}

#[test]
fn every_fixture_scenario_timeline() {
    insta::glob!("../../fixtures/scenarios", "*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let scenario = parse_scenario(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let simulation = simulate_with(&scenario, SimOptions { record_changes: true })
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        insta::assert_snapshot!(golden(&simulation));
    });
}

#[test]
fn simulations_are_byte_identical_when_repeated() {
    insta::glob!("../../fixtures/scenarios", "*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let scenario = parse_scenario(&text).expect("fixture parses");
        let a = serde_json::to_string(&simulate(&scenario).expect("simulates")).expect("serializes");
        let b = serde_json::to_string(&simulate(&scenario).expect("simulates")).expect("serializes");
        assert_eq!(a, b, "{}", path.display());
    });
}
