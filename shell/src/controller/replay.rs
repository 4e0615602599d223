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
/// controller's workers step their batches — a record of a new worker (`fresh`) starts its
/// rollout's state anew; records are taken one at a time, so any trace length fits.
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
            let state = states.entry(r.rollout.clone()).or_default();
            if r.fresh {
                *state = State::default();
            }
            step_batch(state, r.events.iter().cloned(), r.now)
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

#[cfg(test)]
mod tests {
    use rollouts_core::state::{Event, Object};
    use rollouts_core::Timestamp;

    use super::*;

    /// Two records of a worker's first reconcile, as a worker let go while idle and started
    /// again writes them: the same objects, the same decisions, each from an empty state.
    #[test]
    fn a_fresh_record_starts_its_rollout_anew() {
        let manifest: serde_json::Value =
            serde_yaml_ng::from_str(include_str!("../../../fixtures/rollouts/seed-basic-canary.yaml")).expect("the seed manifest");
        let events = vec![Event::Applied(Object::Rollout(manifest.into())), Event::Resync];
        let now = Timestamp::from_unix(1_700_000_000);
        let actions = step_batch(&mut State::default(), events.iter().cloned(), now);
        assert!(!actions.is_empty(), "a new rollout's first reconcile creates its ReplicaSet");
        let record = |fresh| Record { rollout: "ns/seed".into(), now, events: events.clone(), actions: actions.clone(), fresh };
        assert_eq!(replay([Ok(record(true)), Ok(record(true))]).expect("replays"), Replayed { records: 2, rollouts: 1 });
        // Stepped on from the first record's state, the second decides otherwise.
        let Err(ReplayError::Diverged(d)) = replay([Ok(record(true)), Ok(record(false))]) else { panic!("no divergence") };
        assert_eq!(d.record, 2);
    }
}
