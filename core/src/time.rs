//! Time as the core sees it: a wall-clock instant with whole-second resolution.
//!
//! Kubernetes `Time` fields (condition timestamps, pause start times, the
//! `scale-down-deadline` annotation) keep whole seconds, so the core works in whole
//! seconds everywhere. The shell floors its clock reading before calling `step`; the
//! simulator's virtual clock only ever holds whole seconds. That makes every boundary
//! comparison exact and reproducible.

use std::fmt;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A wall-clock instant, seconds since the Unix epoch, serialized as RFC 3339 (`2024-01-01T00:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `secs` seconds after the Unix epoch.
    pub const fn from_unix(secs: i64) -> Self {
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `d` (saturating).
    pub fn plus(self, d: Seconds) -> Self {
        Timestamp(self.0.saturating_add(d.0))
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Seconds {
        Seconds(self.0.saturating_sub(earlier.0))
    }

    /// Parses RFC 3339 (`2024-01-01T00:00:00Z`, fractions are truncated to whole seconds).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t = humantime::parse_rfc3339_weak(s.trim()).ok()?;
        let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
        i64::try_from(secs).ok().map(Timestamp)
    }

    /// The latest instant RFC 3339 can write (9999-12-31T23:59:59Z).
    pub const MAX_RFC3339: Timestamp = Timestamp(253_402_300_799);

    /// Formats as RFC 3339 with whole seconds, the way Kubernetes writes `Time`. Instants
    /// outside years 1970..=9999 are clamped into that range.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.clamp(0, Self::MAX_RFC3339.0) as u64;
        let t = UNIX_EPOCH + StdDuration::from_secs(secs);
        humantime::format_rfc3339_seconds(t).to_string()
    }

    /// Converts from a `SystemTime` (for the shell), flooring to whole seconds.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_secs() as i64),
            Err(_) => Timestamp(0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {s:?}")))
    }
}

/// A span of whole seconds. Durations written by users are parsed with [`parse_duration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Seconds(pub i64);

impl Seconds {
    /// Renders the compact human form used by the simulator (`0s`, `45s`, `1m30s`, `2h0m5s`).
    pub fn human(self) -> String {
        let mut s = self.0;
        let mut out = String::new();
        if s < 0 {
            out.push('-');
            s = -s;
        }
        let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
        if h > 0 {
            out.push_str(&format!("{h}h{m}m{sec}s"));
        } else if m > 0 {
            out.push_str(&format!("{m}m{sec}s"));
        } else {
            out.push_str(&format!("{sec}s"));
        }
        out
    }
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a duration the way Argo Rollouts does for `pause.duration`: a bare integer is
/// seconds, otherwise Go's `time.ParseDuration` syntax (`30s`, `5m`, `1h30m`, `1.5h`,
/// `500ms`). The result is truncated to whole seconds, as Go's `int32(d.Seconds())` does.
pub fn parse_duration(input: &str) -> Result<Seconds, DurationError> {
    let err = |reason| DurationError { input: input.to_string(), reason };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(Seconds(n));
    }
    let (negative, mut rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Seconds(0));
    }
    if rest.is_empty() {
        return Err(err("missing number"));
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("missing unit"))?;
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err("unknown unit (use ns, us, ms, s, m or h)")),
        };
        nanos += value * scale;
        rest = &rest[unit_len..];
    }
    let secs = (nanos / 1e9).trunc();
    if !secs.is_finite() || secs > i32::MAX as f64 {
        return Err(err("out of range"));
    }
    Ok(Seconds(if negative { -(secs as i64) } else { secs as i64 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_whole_seconds() {
        let t = Timestamp::parse_rfc3339("2024-01-01T00:01:30Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-01T00:01:30Z");
        assert_eq!(Timestamp::parse_rfc3339("2024-01-01T00:01:30.75Z"), Some(t));
    }

    #[test]
    fn extreme_instants_format_without_panicking() {
        assert_eq!(Timestamp(i64::MAX).to_rfc3339(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp(i64::MIN).to_rfc3339(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn go_durations_parse_like_argo() {
        assert_eq!(parse_duration("10"), Ok(Seconds(10)));
        assert_eq!(parse_duration("30s"), Ok(Seconds(30)));
        assert_eq!(parse_duration("5m"), Ok(Seconds(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Seconds(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Seconds(5400)));
        assert_eq!(parse_duration("1500ms"), Ok(Seconds(1)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10x").is_err());
    }

    #[test]
    fn human_form_is_compact() {
        assert_eq!(Seconds(0).human(), "0s");
        assert_eq!(Seconds(90).human(), "1m30s");
        assert_eq!(Seconds(3605).human(), "1h0m5s");
    }
}
