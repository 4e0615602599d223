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
        self.rfc3339().to_string()
    }

    /// [`Timestamp::to_rfc3339`], as something to display.
    fn rfc3339(self) -> humantime::Rfc3339Timestamp {
        let secs = self.0.clamp(0, Self::MAX_RFC3339.0) as u64;
        humantime::format_rfc3339_seconds(UNIX_EPOCH + StdDuration::from_secs(secs))
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
        // Written straight into the output, without a string of its own first.
        s.collect_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rfc3339;
        impl serde::de::Visitor<'_> for Rfc3339 {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(s).ok_or_else(|| E::custom(format!("invalid RFC 3339 time {s:?}")))
            }
        }
        d.deserialize_str(Rfc3339)
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
    /// What is wrong with it, in Go's words (`time: unknown unit "x" in duration "1x"`).
    #[source]
    pub reason: GoDurationError,
}

/// Why Go's `time.ParseDuration` rejects a string; the messages are Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoDurationError {
    /// Not a duration at all, or out of range.
    #[error("time: invalid duration {}", time_quote(.input))]
    Invalid {
        /// The whole input.
        input: String,
    },
    /// A number without a unit.
    #[error("time: missing unit in duration {}", time_quote(.input))]
    MissingUnit {
        /// The whole input.
        input: String,
    },
    /// A unit Go does not know.
    #[error("time: unknown unit {} in duration {}", time_quote(.unit), time_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
}

/// Parses a duration the way Argo Rollouts does for `pause.duration`: a bare integer is
/// seconds, otherwise Go's `time.ParseDuration` syntax (`30s`, `5m`, `1h30m`, `1.5h`,
/// `500ms`). The result is truncated to whole seconds, as Go's `int32(d.Seconds())` does.
pub fn parse_duration(input: &str) -> Result<Seconds, DurationError> {
    let s = input.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(Seconds(n));
    }
    let nanos = parse_go_duration(s).map_err(|reason| DurationError { input: input.to_string(), reason })?;
    Ok(Seconds(nanos / 1_000_000_000))
}

/// Parses a duration exactly as Go's `time.ParseDuration` does (what Argo uses for a
/// metric's `interval` and `initialDelay`), returning nanoseconds. Unlike
/// [`parse_duration`], a bare number other than `0` is an error; the error
/// texts are Go's (`time: unknown unit "s-typo" in duration "60s-typo"`).
pub fn parse_go_duration(input: &str) -> Result<i64, GoDurationError> {
    let invalid = || GoDurationError::Invalid { input: input.to_string() };
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_digits, rest) = s.split_at(int_len);
        let whole: u64 = if int_digits.is_empty() {
            0
        } else {
            leading_int(int_digits).ok_or_else(invalid)?
        };
        s = rest;
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_fraction = false;
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (frac_digits, rest) = rest.split_at(frac_len);
            had_fraction = !frac_digits.is_empty();
            // Go keeps the digits that fit and ignores the rest (they are below a nanosecond).
            for d in frac_digits.bytes() {
                if fraction > (1u64 << 63) / 10 {
                    break;
                }
                fraction = fraction * 10 + u64::from(d - b'0');
                scale *= 10.0;
            }
            s = rest;
        }
        if int_digits.is_empty() && !had_fraction {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(GoDurationError::MissingUnit { input: input.to_string() });
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit_nanos: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(GoDurationError::UnknownUnit { unit: unit.to_string(), input: input.to_string() });
            }
        };
        if whole > (1u64 << 63) / unit_nanos {
            return Err(invalid());
        }
        let mut value = whole * unit_nanos;
        if fraction > 0 {
            value += (fraction as f64 * (unit_nanos as f64 / scale)) as u64;
            if value > 1u64 << 63 {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= 1u64 << 63)
            .ok_or_else(invalid)?;
    }
    if negative {
        // -(1 << 63) is the one value that fits only when negative.
        Ok(0i64.wrapping_sub_unsigned(total))
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

/// Go's `leadingInt`: the digits as a number, `None` past 1 << 63.
fn leading_int(digits: &str) -> Option<u64> {
    let mut x: u64 = 0;
    for d in digits.bytes() {
        if x > (1u64 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(d - b'0');
        if x > 1u64 << 63 {
            return None;
        }
    }
    Some(x)
}

/// The `quote` of Go's time package: double quotes, `"` and `\` escaped, bytes outside
/// printable ASCII as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
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
