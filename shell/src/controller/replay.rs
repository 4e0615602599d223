//! `rollouts replay FILE`: re-runs the core on a recorded trace.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rollouts_core::state::State;
use rollouts_core::step_batch;

use super::trace::{self, Record};

/// Flags of `rollouts replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A trace written by `rollouts controller --record FILE`.
    pub trace: PathBuf,
}

/// Where a replay first decided differently from the recording.
#[derive(Debug, PartialEq)]
pub struct Divergence {
    /// 1-based record number (= line, blank lines aside).
    pub record: usize,
    pub rollout: String,
    pub expected: String,
    pub actual: String,
}

/// Replays records in order, one state per rollout, exactly as the controller's workers
/// observe and reconcile. Returns the number of records replayed.
pub fn replay(records: &[Record]) -> Result<usize, Box<Divergence>> {
    let mut states: BTreeMap<&str, State> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let state = states.entry(r.rollout.as_str()).or_default();
        let actions = step_batch(state, r.events.iter().cloned(), r.now);
        let expected = serde_json::to_string(&r.actions).unwrap_or_default();
        let actual = serde_json::to_string(&actions).unwrap_or_default();
        if expected != actual {
            return Err(Box::new(Divergence { record: i + 1, rollout: r.rollout.clone(), expected, actual }));
        }
    }
    Ok(records.len())
}

/// Replays the trace.
pub fn run(args: ReplayArgs) -> ExitCode {
    let records = match trace::read(&args.trace) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match replay(&records) {
        Ok(n) => {
            let rollouts: std::collections::BTreeSet<&str> = records.iter().map(|r| r.rollout.as_str()).collect();
            println!("replayed {n} reconciles of {} rollouts: every action matched", rollouts.len());
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("error: record {} ({}): the core decided differently", d.record, d.rollout);
            eprintln!("recorded: {}", d.expected);
            eprintln!("replayed: {}", d.actual);
            ExitCode::FAILURE
        }
    }
}
