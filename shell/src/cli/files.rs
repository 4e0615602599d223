//! Reading the files the verbs are given.

use std::io::Read;
use std::path::Path;

/// The most a manifest or template file may hold (a scenario may hold more:
/// `rollouts_core::sim::scenario::MAX_SCENARIO_BYTES`).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Reads a UTF-8 file, refusing more than `limit` bytes without reading further
/// (`/dev/zero`, a huge file by mistake); `what` names it in that error.
pub fn read_capped(path: &Path, limit: usize, what: &str) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        let msg = format!("the {what} is larger than {} MiB", limit / (1024 * 1024));
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg));
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
