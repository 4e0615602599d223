//! `rollouts simulate SCENARIO.yaml [--output table|json] [--plot timeline.svg]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rollouts_core::sim::scenario::MAX_SCENARIO_BYTES;
use rollouts_core::sim::{parse_scenario, render_table, simulate};

/// Exit code for a scenario that cannot be read or parsed.
const EXIT_BAD_SCENARIO: u8 = 2;
/// Exit code when the simulation ran but an expectation did not hold.
const EXIT_EXPECTATION_FAILED: u8 = 1;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario file (YAML).
    scenario: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Also draw the timeline (setWeight, actual weight, each ReplicaSet's ready pods) as an SVG chart into this file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned columns, one line per change.
    Table,
    /// The machine-readable timeline.
    Json,
}

pub fn run(args: SimulateArgs) -> ExitCode {
    let path = args.scenario.display().to_string();
    let text = match super::files::read_capped(&args.scenario, MAX_SCENARIO_BYTES, "scenario") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {path}: {e}");
            return ExitCode::from(EXIT_BAD_SCENARIO);
        }
    };
    let scenario = match parse_scenario(&text) {
        Ok(s) => s,
        Err(e) => {
            match e.line {
                Some(line) => eprintln!("error: {path}:{line}: {}", without_line(&e)),
                None => eprintln!("error: {path}: {e}"),
            }
            return ExitCode::from(EXIT_BAD_SCENARIO);
        }
    };
    let sim = match simulate(&scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            return ExitCode::from(EXIT_BAD_SCENARIO);
        }
    };
    if let Some(plot) = &args.plot {
        let svg = crate::charts::timeline_chart(&sim.timeline, sim.outcome.t, &crate::charts::scenario_events(&scenario));
        if let Err(e) = std::fs::write(plot, svg) {
            eprintln!("error: cannot write the chart to {}: {e}", plot.display());
            return ExitCode::FAILURE;
        }
    }
    // A command the CLI would refuse for having nothing to do did not stop the run.
    for n in &sim.notes {
        eprintln!("note: {} {}: {}", rollouts_core::time::Seconds(n.t).human(), n.rollout, n.what);
    }
    match args.output {
        Output::Json => match serde_json::to_string_pretty(&sim) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot render the timeline: {e}");
                return ExitCode::FAILURE;
            }
        },
        Output::Table => {
            if !sim.scenario.is_empty() {
                println!("scenario: {}", sim.scenario);
            }
            print!("{}", render_table(&sim.timeline));
            if sim.outcome.settled {
                println!("settled at {}", sim.outcome.at);
            } else {
                println!("stopped at {} without settling", sim.outcome.at);
            }
        }
    }
    if sim.outcome.failed_expectations.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &sim.outcome.failed_expectations {
            eprintln!("expectation failed: {f}");
        }
        ExitCode::from(EXIT_EXPECTATION_FAILED)
    }
}

fn without_line(e: &rollouts_core::api::SpecError) -> String {
    let mut e = e.clone();
    e.line = None;
    e.to_string()
}
