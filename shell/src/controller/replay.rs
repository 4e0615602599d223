//! `rollouts replay FILE`: re-runs the core on a recorded trace.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rollouts_core::state::State;
use rollouts_core::step_batch;

use super::experiment::Replayer;
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

/// What a replay went through.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Records replayed.
    pub records: usize,
    /// Distinct rollouts.
    pub rollouts: usize,
}

/// Why a replay stopped.
#[derive(Debug)]
pub enum ReplayError {
    /// The trace cannot be read.
    Unreadable(trace::TraceError),
    /// The core decided differently.
    Diverged(Box<Divergence>),
}

/// Replays records in order, one state per rollout (and per Experiment), exactly as the
/// controller's workers step their batches; records are taken one at a time, so any trace
/// length fits.
pub fn replay(records: impl IntoIterator<Item = Result<Record, trace::TraceError>>) -> Result<Replayed, ReplayError> {
    let mut states: BTreeMap<String, State> = BTreeMap::new();
    let mut experiments: BTreeMap<String, Replayer> = BTreeMap::new();
    let mut count = 0;
    for (i, r) in records.into_iter().enumerate() {
        let r = r.map_err(ReplayError::Unreadable)?;
        count += 1;
        // The key as `RolloutKey` shows it: `experiment <ns>/<name>` for an Experiment's worker.
        let actions = if r.rollout.starts_with("experiment ") {
            experiments.entry(r.rollout.clone()).or_default().step(r.events.iter().cloned(), r.now)
        } else {
            step_batch(states.entry(r.rollout.clone()).or_default(), r.events.iter().cloned(), r.now)
        };
        let expected = serde_json::to_string(&r.actions).unwrap_or_default();
        let actual = serde_json::to_string(&actions).unwrap_or_default();
        if expected != actual {
            return Err(ReplayError::Diverged(Box::new(Divergence { record: i + 1, rollout: r.rollout, expected, actual })));
        }
    }
    Ok(Replayed { records: count, rollouts: states.len() + experiments.len() })
}

/// Replays the trace.
pub fn run(args: ReplayArgs) -> ExitCode {
    let outcome = trace::open(&args.trace).map_err(ReplayError::Unreadable).and_then(replay);
    match outcome {
        Ok(r) => {
            println!("replayed {} reconciles of {} rollouts: every action matched", r.records, r.rollouts);
            ExitCode::SUCCESS
        }
        Err(ReplayError::Unreadable(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(ReplayError::Diverged(d)) => {
            eprintln!("error: record {} ({}): the core decided differently", d.record, d.rollout);
            eprintln!("recorded: {}", d.expected);
            eprintln!("replayed: {}", d.actual);
            ExitCode::FAILURE
        }
    }
}
