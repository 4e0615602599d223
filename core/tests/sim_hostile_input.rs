//! Malformed and extreme scenarios: each is refused with an error naming the field and
//! line (or simulated), never a panic.

use rollouts_core::sim::{parse_scenario, simulate, SimError};

const ROLLOUT: &str = "objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo}
    spec:
      replicas: 3
      selector: {matchLabels: {app: demo}}
      template:
        metadata: {labels: {app: demo}}
        spec: {containers: [{name: app, image: app:1}]}
      strategy: {canary: {steps: [{setWeight: 50}, {pause: {}}]}}
";

fn refused(text: &str) -> (String, Option<usize>) {
    let e = parse_scenario(text).expect_err("refused");
    (e.to_string(), e.line)
}

#[test]
fn negative_durations_are_refused_with_their_line() {
    for (text, line) in [
        (format!("{ROLLOUT}until: -5m\n"), 12),
        (format!("{ROLLOUT}cluster: {{podStartup: -1s}}\n"), 12),
        (format!("{ROLLOUT}events:\n  - {{at: -30s, abort: {{rollout: demo}}}}\n"), 13),
        (format!("{ROLLOUT}metrics:\n  m:\n    - {{value: 1, after: -2s}}\n"), 14),
    ] {
        let (e, l) = refused(&text);
        assert!(e.contains("cannot be negative"), "{e}");
        assert_eq!(l, Some(line), "{e}");
    }
}

#[test]
fn durations_beyond_a_century_are_refused() {
    let (e, line) = refused(&format!("{ROLLOUT}events:\n  - {{at: 9223372036854775807, abort: {{rollout: demo}}}}\n"));
    assert!(e.contains("at most 100 years"), "{e}");
    assert_eq!(line, Some(13), "{e}");
}

#[test]
fn a_key_given_twice_is_refused() {
    let text = ROLLOUT.replace("      replicas: 3\n", "      replicas: 3\n      replicas: 4\n");
    let (e, line) = refused(&text);
    assert!(e.contains("duplicate key replicas"), "{e}");
    assert_eq!(line, Some(7));
}

#[test]
fn metric_answers_of_the_wrong_shape_are_refused() {
    let (e, line) = refused(&format!("{ROLLOUT}metrics:\n  m:\n    - {{valeu: 1}}\n"));
    assert!(e.contains("valeu"), "{e}");
    assert_eq!(line, Some(14));
    let (e, line) = refused(&format!("{ROLLOUT}metrics:\n  m:\n    - [1, 2]\n"));
    assert!(e.contains("metrics.m[0]") && e.contains("sequence"), "{e}");
    assert_eq!(line, Some(14));
    let (e, _) = refused(&format!("{ROLLOUT}metrics:\n  m:\n    - {{phase: Great}}\n"));
    assert!(e.contains("Great"), "{e}");
}

#[test]
fn an_empty_scenario_is_refused() {
    for text in ["", "\n# nothing\n", "{}\n", "name: x\n"] {
        let e = parse_scenario(text).expect_err("refused");
        assert_eq!((e.path.as_str(), e.line), ("objects", Some(1)), "{text:?}: {e}");
    }
}

#[test]
fn an_unknown_api_version_of_a_known_kind_is_refused() {
    let (e, line) = refused(&ROLLOUT.replace("argoproj.io/v1alpha1", "argoproj.io/v9"));
    assert!(e.starts_with("objects[0].apiVersion"), "{e}");
    assert!(e.contains("argoproj.io/v9"), "{e}");
    assert_eq!(line, Some(2));
}

#[test]
fn an_object_with_only_generate_name_is_refused() {
    let text = "objects:\n  - apiVersion: argoproj.io/v1alpha1\n    kind: AnalysisRun\n    metadata: {generateName: run-}\n";
    let (e, _) = refused(text);
    assert!(e.starts_with("objects[0].metadata.name") && e.contains("generateName"), "{e}");
}

#[test]
fn a_scenario_over_16_mib_is_refused_before_parsing() {
    let text = format!("{ROLLOUT}#{}\n", "x".repeat(16 * 1024 * 1024));
    let (e, _) = refused(&text);
    assert!(e.contains("larger than 16 MiB"), "{e}");
}

#[test]
fn the_largest_replica_count_simulates() {
    let text = format!(
        "{}events:\n  - {{at: 1m, setImage: {{rollout: demo, container: app, image: app:2}}}}\n",
        ROLLOUT.replace("replicas: 3", "replicas: 2147483647")
    );
    let sim = simulate(&parse_scenario(&text).expect("parses")).expect("simulates");
    let last = &sim.final_state["demo"];
    assert_eq!(last.phase, "Paused", "{last:?}");
    // 50 % of an odd count rounds up for the canary; the stable keeps its half.
    let available: Vec<i32> = last.replica_sets.iter().map(|r| r.available).collect();
    assert_eq!(available, vec![1_073_741_824, 1_073_741_824], "{last:?}");
}

#[test]
fn restarting_a_huge_rollout_is_refused_in_one_sentence() {
    let text = format!(
        "{}events:\n  - {{at: 1m, restart: {{rollout: demo}}}}\n",
        ROLLOUT.replace("replicas: 3", "replicas: 2147483647")
    );
    let e = simulate(&parse_scenario(&text).expect("parses")).expect_err("refused");
    assert!(matches!(e, SimError::Scenario(_)), "{e}");
    assert!(e.to_string().contains("at most 100000"), "{e}");
}

#[test]
fn a_thousand_rollouts_at_one_instant_are_not_a_hot_loop() {
    let mut text = String::from("objects:\n");
    for i in 0..1500 {
        text.push_str(&format!(
            "  - {{apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: {{name: r{i}}}, spec: {{replicas: 1, selector: {{matchLabels: {{app: r{i}}}}}, template: {{metadata: {{labels: {{app: r{i}}}}}, spec: {{containers: [{{name: app, image: a}}]}}}}, strategy: {{canary: {{}}}}}}}}\n"
        ));
    }
    let sim = simulate(&parse_scenario(&text).expect("parses")).expect("no hot loop");
    assert_eq!(sim.final_state.len(), 1500);
    assert!(sim.final_state.values().all(|e| e.phase == "Healthy"));
}

#[test]
fn a_command_with_nothing_to_do_is_a_note_and_the_run_goes_on() {
    let text = format!("{ROLLOUT}events:\n  - {{at: 1m, promote: {{rollout: demo}}}}\n  - {{at: 2m, setImage: {{rollout: demo, container: app, image: app:2}}}}\n");
    let sim = simulate(&parse_scenario(&text).expect("parses")).expect("simulates");
    assert_eq!(sim.notes.len(), 1, "{:?}", sim.notes);
    assert!(sim.notes[0].what.contains("events[0]") && sim.notes[0].what.contains("nothing to promote"), "{:?}", sim.notes);
    assert_eq!(sim.final_state["demo"].phase, "Paused", "the later update still ran");
}

#[test]
fn a_command_for_no_such_rollout_or_container_names_the_event() {
    let text = format!("{ROLLOUT}events:\n  - {{at: 1m, abort: {{rollout: nope}}}}\n");
    let e = simulate(&parse_scenario(&text).expect("parses")).expect_err("refused");
    assert!(e.to_string().starts_with("events[0] at 1m0s: rollout \"nope\" not found"), "{e}");
    let text = format!("{ROLLOUT}events:\n  - {{at: 1m, setImage: {{rollout: demo, container: web, image: x}}}}\n");
    let e = simulate(&parse_scenario(&text).expect("parses")).expect_err("refused");
    assert!(e.to_string().starts_with("events[0] at 1m0s: unable to find container named \"web\""), "{e}");
}
