//! Golden timelines: every scenario in `fixtures/scenarios/` simulated, its JSON timeline
//! snapshotted. A behaviour change shows up here as a reviewed diff (`cargo insta review`).

use rollouts_core::sim::{parse_scenario, simulate};

#[test]
fn every_fixture_scenario_timeline() {
    insta::glob!("../../fixtures/scenarios", "*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let scenario = parse_scenario(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let simulation = simulate(&scenario).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        insta::assert_json_snapshot!(simulation);
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
