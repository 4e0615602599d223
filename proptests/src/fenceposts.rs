//! Argo's fencepost resolution for a basic canary (`resolveFenceposts`,
//! `utils/replicaset/replicaset.go`), restated from the reference
//! (`argo-features.md` §3 D.1) rather than imported from the core:
//!
//! * an integer is taken as is; **any string is a percentage** (`"25%"` and `"25"` alike);
//! * `maxSurge` rounds up, `maxUnavailable` rounds down;
//! * absent values default to the string `"25"`;
//! * both resolving to 0 ⇒ `maxUnavailable` = 1;
//! * `maxUnavailable` is capped at `replicas` (0 when `replicas` is 0).

use crate::spec::{Amount, CanaryGen};

/// Resolves one value against `replicas`.
pub fn resolve(amount: Option<&Amount>, replicas: i32, round_up: bool) -> i64 {
    let percent = |p: i32| {
        let n = i64::from(p) * i64::from(replicas);
        if round_up {
            (n + 99).div_euclid(100)
        } else {
            n.div_euclid(100)
        }
    };
    match amount {
        None => percent(25),
        Some(Amount::Int(n)) => i64::from(*n),
        Some(Amount::Percent(p)) | Some(Amount::BarePercent(p)) => percent(*p),
    }
}

/// `(maxSurge, maxUnavailable)` of `canary` for `replicas`.
pub fn canary(canary: &CanaryGen, replicas: i32) -> (i64, i64) {
    let surge = resolve(canary.max_surge.as_ref(), replicas, true);
    let mut unavailable = resolve(canary.max_unavailable.as_ref(), replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let unavailable = if replicas <= 0 { 0 } else { unavailable.min(i64::from(replicas)) };
    (surge, unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cg(s: Option<Amount>, u: Option<Amount>) -> CanaryGen {
        CanaryGen { steps: vec![], max_surge: s, max_unavailable: u, services: false, router: None }
    }

    #[test]
    fn reference_rows() {
        // argo-features.md §3 D.1 and scenarios.md CAN-07 / CAN-10 / B1-23.
        assert_eq!(canary(&cg(None, None), 1), (1, 0));
        assert_eq!(canary(&cg(Some(Amount::Percent(100)), None), 4), (4, 1));
        assert_eq!(canary(&cg(Some(Amount::Percent(0)), Some(Amount::Percent(0))), 10), (0, 1));
        assert_eq!(canary(&cg(Some(Amount::BarePercent(5)), Some(Amount::Int(3))), 10), (1, 3));
        assert_eq!(canary(&cg(Some(Amount::Int(0)), Some(Amount::Int(7))), 5), (0, 5));
        assert_eq!(canary(&cg(None, None), 0), (0, 0));
    }
}
