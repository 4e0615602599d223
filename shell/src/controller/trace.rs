//! `--record FILE`: every reconcile as one JSON line, `{"rollout", "now", "events",
//! "actions"}`, so that `rollouts replay FILE` can run the core on the same inputs and
//! check it decides the same, byte for byte.
//!
//! Measurement answers arrive redacted and no event carries a Secret, so a trace holds no
//! secret values.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;

use rollouts_core::state::{Action, Event};
use rollouts_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::router::RolloutKey;

/// One reconcile of one rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `namespace/name`.
    pub rollout: String,
    /// The time the core was given.
    pub now: Timestamp,
    /// The events observed, in order, before the reconcile.
    pub events: Vec<Event>,
    /// What the core returned.
    pub actions: Vec<Action>,
}

/// A trace file being written.
pub struct Trace {
    file: Mutex<File>,
}

impl Trace {
    /// Creates (or truncates) the trace file.
    pub fn create(path: &Path) -> std::io::Result<Trace> {
        Ok(Trace { file: Mutex::new(File::create(path)?) })
    }

    /// Appends one reconcile; a line is written whole and flushed, so a killed controller
    /// leaves a readable trace.
    pub fn record(&self, key: &RolloutKey, now: Timestamp, events: &[Event], actions: &[Action]) {
        let record = Record { rollout: key.to_string(), now, events: events.to_vec(), actions: actions.to_vec() };
        let mut line = match serde_json::to_string(&record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(rollout = %key, error = %e, "cannot encode the trace record");
                return;
            }
        };
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            tracing::error!(error = %e, "cannot write the trace");
        }
    }
}

/// Reads a trace; the error names the line.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        out.push(record);
    }
    Ok(out)
}
