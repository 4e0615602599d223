//! Kubernetes `IntOrString`, as used by `maxSurge`, `maxUnavailable` and `pause.duration`.

use serde::{Deserialize, Serialize};

/// An integer or a string, serialized untagged exactly as Kubernetes does (`1` or `"25%"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum IntOrString {
    /// A plain number.
    Int(i32),
    /// A string; for `maxSurge`/`maxUnavailable` always a percentage.
    String(String),
}

/// Why an int-or-percent value could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?}: must be an integer or a percentage such as \"25%\"")]
pub struct IntOrPercentError {
    /// The offending text.
    pub value: String,
}

impl IntOrString {
    /// Resolves the value against `total` the way Argo Rollouts does for `maxSurge` and
    /// `maxUnavailable`: an integer is taken as is; **any string is a percentage**, with or
    /// without the `%` sign (Argo's default is the bare string `"25"`, meaning 25 %).
    /// Percentages round up when `round_up`, else down.
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, IntOrPercentError> {
        match self {
            IntOrString::Int(n) => Ok(*n),
            IntOrString::String(s) => {
                let digits = s.strip_suffix('%').unwrap_or(s);
                let pct: i64 = digits
                    .trim()
                    .parse()
                    .map_err(|_| IntOrPercentError { value: s.clone() })?;
                let num = pct.saturating_mul(i64::from(total));
                let floor = num.div_euclid(100);
                let v = if round_up && num.rem_euclid(100) != 0 { floor + 1 } else { floor };
                Ok(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_always_percentages() {
        let s = |v: &str| IntOrString::String(v.to_string());
        assert_eq!(s("25%").scaled_value(10, true), Ok(3));
        assert_eq!(s("25%").scaled_value(10, false), Ok(2));
        assert_eq!(s("25").scaled_value(10, true), Ok(3));
        assert_eq!(IntOrString::Int(2).scaled_value(10, true), Ok(2));
        assert!(s("abc").scaled_value(10, true).is_err());
        assert!(s("9223372036854775807%").scaled_value(10, true).is_ok());
    }
}
