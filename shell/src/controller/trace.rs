//! `--record FILE`: every reconcile as one JSON line, `{"rollout", "now", "events",
//! "actions"}`, so that `rollouts replay FILE` can run the core on the same inputs and
//! check it decides the same, byte for byte.
//!
//! Measurement answers arrive redacted and no event carries a Secret, so a trace holds no
//! secret values.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
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
    /// The first reconcile of a new worker (the controller started, or the rollout's worker
    /// was let go while idle and started again): the core began from an empty state, and so
    /// does the replay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
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
    pub fn record(&self, key: &RolloutKey, now: Timestamp, events: &[Event], actions: &[Action], fresh: bool) {
        let record = Record { rollout: key.to_string(), now, events: events.to_vec(), actions: actions.to_vec(), fresh };
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

/// The longest record `replay` reads: a record holds one reconcile's events (at a start,
/// every object of one rollout), far below this; a longer line is not a trace.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Reads a trace one record at a time, so that memory stays bounded whatever the file's
/// size; the error names the line.
pub struct Records<R> {
    reader: R,
    origin: String,
    line: usize,
    buf: Vec<u8>,
}

/// Why a trace cannot be read. Every error names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("{at}: {source}")]
    Read {
        at: String,
        #[source]
        source: std::io::Error,
    },
    /// A line longer than [`MAX_RECORD_BYTES`].
    #[error("{at}: a record is longer than {} MiB: not a trace", MAX_RECORD_BYTES >> 20)]
    TooLong { at: String },
    /// A line that is not UTF-8.
    #[error("{at}: not UTF-8 text: {source}")]
    NotText {
        at: String,
        #[source]
        source: std::str::Utf8Error,
    },
    /// A line that is not a record.
    #[error("{at}: {source}")]
    NotARecord {
        at: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Opens a trace file for reading.
pub fn open(path: &Path) -> Result<Records<BufReader<File>>, TraceError> {
    let file = File::open(path).map_err(|source| TraceError::Open { path: path.display().to_string(), source })?;
    Ok(Records::new(BufReader::new(file), path.display().to_string()))
}

impl<R: BufRead> Records<R> {
    /// Records from `reader`; errors name `origin` and the line.
    pub fn new(reader: R, origin: String) -> Self {
        Records { reader, origin, line: 0, buf: Vec::new() }
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Record, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            let limit = u64::try_from(MAX_RECORD_BYTES).unwrap_or(u64::MAX) + 1;
            let read = Read::take(self.reader.by_ref(), limit).read_until(b'\n', &mut self.buf);
            let at = format!("{}:{}", self.origin, self.line);
            match read {
                Err(source) => return Some(Err(TraceError::Read { at, source })),
                Ok(0) => return None,
                Ok(_) if self.buf.len() > MAX_RECORD_BYTES => return Some(Err(TraceError::TooLong { at })),
                Ok(_) => {}
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t,
                Err(source) => return Some(Err(TraceError::NotText { at, source })),
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(serde_json::from_str(text).map_err(|source| TraceError::NotARecord { at, source }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> Vec<Result<Record, TraceError>> {
        Records::new(text, "t.jsonl".into()).collect()
    }

    #[test]
    fn records_are_read_one_per_line_and_errors_name_the_line() {
        let good = r#"{"rollout":"ns/a","now":"2024-01-01T00:00:00Z","events":["tick"],"actions":[]}"#;
        let text = format!("{good}\n\n{good}\nnot json\n");
        let records = read(text.as_bytes());
        assert_eq!(records.len(), 3, "{records:?}");
        assert!(records[0].is_ok() && records[1].is_ok(), "{records:?}");
        assert!(records[2].as_ref().unwrap_err().to_string().starts_with("t.jsonl:4: "), "{records:?}");
    }

    #[test]
    fn an_endless_line_is_refused_without_reading_it_all() {
        let endless = std::io::BufReader::new(std::io::repeat(0));
        let mut records = Records::new(endless, "/dev/zero".into());
        let e = records.next().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "/dev/zero:1: a record is longer than 64 MiB: not a trace");
    }
}
