//! Canary replica arithmetic: how many pods the new and the stable ReplicaSet should run.
//!
//! A port of the numbers Argo Rollouts computes in `utils/replicaset/canary.go` and the
//! fencepost resolution of `utils/replicaset/replicaset.go`, kept exact to the pod: the
//! rounding rules, the order in which budgets are spent and the quirks are Argo's, so a
//! rollout driven by this crate scales its ReplicaSets exactly as Argo would.
//!
//! Everything here is a pure function of the spec, the status and a few ReplicaSet counts.
//! Nothing panics: intermediates are `i64` (or `i128`), divisors are checked, and every
//! count handed back is clamped to `0..=i32::MAX`. A spec whose `maxSurge`/`maxUnavailable`
//! cannot be parsed is reported by [`canary_fenceposts`]; every other function then uses 0
//! for both limits, as Argo does when it swallows the same error.

use crate::api::{IntOrString, ProgressType, RolloutSpec, RolloutStatus, SetCanaryScale};

/// The numbers of one ReplicaSet that the arithmetic needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RsCounts {
    /// `spec.replicas` of the ReplicaSet.
    pub spec: i32,
    /// `status.replicas`: pods that exist, ready or not.
    pub status_replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// A canary's `maxSurge` or `maxUnavailable` that is neither an integer nor a percentage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("spec.strategy.canary.{field}: {source}")]
pub struct FencepostError {
    /// `maxSurge` or `maxUnavailable`.
    pub field: &'static str,
    /// Why the value does not resolve.
    #[source]
    pub source: crate::api::intstr::IntOrPercentError,
}

/// `(maxSurge, maxUnavailable)` resolved against `spec.replicas` for a canary: surge rounds
/// up, unavailable rounds down, both 0 ⇒ unavailable 1; `MaxUnavailable` capped at replicas
/// (0 when replicas is 0).
///
/// Any string is a percentage, with or without `%` (Argo's default is the bare string
/// `"25"`). An unparsable string (e.g. `"abc"`) is an `Err` naming the field
/// (`"spec.strategy.canary.maxSurge: ..."`). A rollout without a canary strategy has no
/// canary fenceposts: `(0, 0)`.
pub fn canary_fenceposts(spec: &RolloutSpec) -> Result<(i32, i32), FencepostError> {
    let Some(canary) = spec.canary() else {
        return Ok((0, 0));
    };
    let replicas = spec.replicas();
    let surge = resolve_int_or_percent(&canary.max_surge(), replicas, true)
        .map_err(|source| FencepostError { field: "maxSurge", source })?;
    let unavailable = resolve_int_or_percent(&canary.max_unavailable(), replicas, false)
        .map_err(|source| FencepostError { field: "maxUnavailable", source })?;
    // Rounding the unavailability down can leave both limits at 0, which would freeze the
    // rollout; Argo (like the Deployment controller) then allows one unavailable pod.
    let unavailable = if surge == 0 && unavailable == 0 {
        1
    } else {
        unavailable
    };
    let max_unavailable = if replicas == 0 {
        0
    } else {
        unavailable.min(replicas)
    };
    Ok((surge, max_unavailable))
}

/// `GetCurrentSetWeight`: aborted ⇒ 0; no steps or index ≥ len ⇒ `maxTrafficWeight`;
/// else the nearest `setWeight` at or before the current index, none ⇒ 0.
///
/// A missing `currentStepIndex` counts as 0. A negative index (never written by a
/// controller) also counts as 0 rather than failing.
pub fn current_set_weight(spec: &RolloutSpec, status: &RolloutStatus) -> i32 {
    if status.abort {
        return 0;
    }
    let Some(index) = current_step_index(spec, status) else {
        return spec.max_traffic_weight();
    };
    // Argo reads the `setWeight` field of each step, not the step's kind, so a step that
    // also carries another field still counts.
    spec.steps()[..=index]
        .iter()
        .rev()
        .find_map(|step| step.set_weight)
        .unwrap_or(0)
}

/// `GetCanaryReplicasOrWeight`, including `GetDesiredCanaryWeight`'s abort walk-back:
/// returns (explicit canary replicas from `setCanaryScale`, weight).
///
/// * `promoteFull`, an empty `status.stableRS`, or `stableRS == currentPodHash` ⇒
///   `(None, maxTrafficWeight)`.
/// * A `setCanaryScale` in effect (traffic routing only; the latest one at or before the
///   current step; `matchTrafficWeight` cancels it; ignored while aborted unless
///   `abortScaleDownDelaySeconds` is explicitly 0) ⇒ `(Some(replicas), 0)` or `(None, weight)`.
/// * Aborted with `dynamicStableScale`, both ReplicaSets known and distinct ⇒ the last
///   `setWeight` whose pod count is below the canary pods still needed (see below), else 0.
/// * Otherwise [`current_set_weight`].
///
/// The walk-back: the canary still needs `spec.replicas − stable.available` pods, or
/// `new.available` if more (the `max` is skipped when `abortScaleDownDelaySeconds` is
/// explicitly set above 0, which otherwise deadlocks the delayed scale-down); the weight
/// is the last `setWeight` step (scanning from the end) needing fewer canary pods than that.
///
/// `stable_is_new` is true when the stable RS is the new RS; `stable` is `None` when there
/// is no stable RS.
pub fn canary_replicas_or_weight(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    new: Option<RsCounts>,
    stable: Option<RsCounts>,
    stable_is_new: bool,
) -> (Option<i32>, i32) {
    if status.promote_full
        || status.stable_rs.is_empty()
        || status.current_pod_hash == status.stable_rs
    {
        return (None, spec.max_traffic_weight());
    }
    if let Some(scale) = set_canary_scale_in_effect(spec, status) {
        if let Some(replicas) = scale.replicas {
            return (Some(replicas), 0);
        }
        if let Some(weight) = scale.weight {
            return (None, weight);
        }
        // An empty setCanaryScale falls through to the weight, as in Argo.
    }
    let distinct_stable = stable.filter(|_| !stable_is_new);
    (
        None,
        desired_canary_weight(spec, status, new, distinct_stable),
    )
}

/// `approximateWeightedCanaryStableReplicaCounts` ⇒ `(canary, stable)` for a basic canary.
///
/// Chooses among `(⌈R·w/W⌉, R)`, `(⌊R·w/W⌋, R)` and, when `max_surge > 0`, the same two over
/// `R + 1` pods, the split whose canary share is closest to `w/W` (first wins on a tie).
/// A 0-pod canary is only allowed at weight 0 or W, or with one replica and no surge; a
/// floor candidate is dropped when floor and ceiling are equally far ("ties round up").
/// `replicas ≤ 0` or `max_weight ≤ 0` yields no canary. The canary is clamped to the
/// chosen total, so neither count is ever negative.
pub fn approximate_weighted_counts(
    replicas: i32,
    weight: i32,
    max_weight: i32,
    max_surge: i32,
) -> (i32, i32) {
    let (canary, stable) = approximate(
        i64::from(replicas),
        i64::from(weight),
        i64::from(max_weight),
        i64::from(max_surge),
    );
    (clamp_count(canary), clamp_count(stable))
}

/// `trafficWeightToReplicas`: `⌈replicas × weight / max_weight⌉`, computed in `i64` so large
/// weights (e.g. `maxTrafficWeight: 100000000`) cannot overflow. `max_weight ≤ 0` ⇒ 0; a
/// negative result is clamped to 0.
pub fn traffic_weight_to_replicas(replicas: i32, weight: i32, max_weight: i32) -> i32 {
    clamp_count(weight_to_replicas(
        i64::from(replicas),
        i64::from(weight),
        i64::from(max_weight),
    ))
}

/// `CalculateReplicaCountsForCanary` ⇒ (new RS desired replicas, stable RS desired replicas).
///
/// Without traffic routing this is Argo's basic canary (`CalculateReplicaCountsForBasicCanary`):
/// the weighted split of [`approximate_weighted_counts`], reached within `maxSurge` and
/// `maxUnavailable`, growing the stable before the canary, never shrinking either while an
/// older RS (`others`) still has replicas. With traffic routing it is
/// `CalculateReplicaCountsForTrafficRoutedCanary`: the canary follows the weight (or
/// `setCanaryScale`), the stable stays at `spec.replicas` unless `dynamicStableScale`, and
/// `minPodsPerReplicaSet` raises any non-zero count.
///
/// `others` are all other ReplicaSets of the rollout (neither new nor stable).
pub fn replica_counts_for_canary(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    new: Option<RsCounts>,
    stable: Option<RsCounts>,
    stable_is_new: bool,
    others: &[RsCounts],
) -> (i32, i32) {
    let (new_count, stable_count) =
        desired_counts(spec, status, new, stable, stable_is_new, others);
    (clamp_count(new_count), clamp_count(stable_count))
}

/// `AtDesiredReplicaCountsForCanary`: whether the current step's ReplicaSet counts are reached.
///
/// The new RS must meet `replicaProgressThreshold` against its desired count (default:
/// spec and available both equal to it; `Percent`: available ≥ value % of desired, desired 0
/// always passes; `Pods`: available ≥ value; a negative value means the default). The stable
/// RS must exist with spec and `status.replicas` equal to its desired count — its
/// availability is not checked, and the check is skipped for traffic routing with
/// `dynamicStableScale`. A basic canary also needs every other RS to have 0 available pods.
pub fn at_desired_replica_counts_for_canary(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    new: Option<RsCounts>,
    stable: Option<RsCounts>,
    stable_is_new: bool,
    others: &[RsCounts],
) -> bool {
    let (desired_new, desired_stable) =
        desired_counts(spec, status, new, stable, stable_is_new, others);
    if !replica_progress_threshold_met(spec, new, desired_new) {
        return false;
    }
    let traffic_routed = spec.has_traffic_routing();
    if (!traffic_routed || !dynamic_stable_scale(spec))
        && !all_desired_are_created(stable, desired_stable)
    {
        return false;
    }
    // Older ReplicaSets serve traffic only in a basic canary; behind a router they may
    // still be up while the step counts as reached.
    if !traffic_routed && others.iter().map(|rs| i64::from(rs.available)).sum::<i64>() != 0 {
        return false;
    }
    true
}

/// Argo's `ReplicaProgressThresholdMet`: whether `rs` has enough available pods for
/// `desired` under the rollout's `replicaProgressThreshold`. The one rule behind a step
/// being reached and the final promotion (see `Ctx::new_rs_progress_met`).
///
/// No threshold or a negative value ⇒ spec and available both equal `desired`. `Percent`
/// ⇒ `available × 100 ≥ value × desired` (desired 0 passes); `Pods` ⇒ `available ≥ value`.
/// A missing RS never meets it.
pub(crate) fn replica_progress_threshold_met(
    spec: &RolloutSpec,
    rs: Option<RsCounts>,
    desired: i64,
) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let available = i64::from(rs.available);
    let threshold = spec
        .canary()
        .and_then(|c| c.replica_progress_threshold.as_ref())
        .filter(|t| t.value >= 0);
    let Some(threshold) = threshold else {
        return all_desired_are_available(Some(rs), desired);
    };
    let value = i64::from(threshold.value);
    match threshold.kind {
        // Argo compares `available / desired × 100 ≥ value` in floating point with a 1e-10
        // tolerance; the integer cross-multiplication gives the same answer exactly.
        ProgressType::Percent => match desired.cmp(&0) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => {
                i128::from(available) * 100 >= i128::from(value) * i128::from(desired)
            }
            std::cmp::Ordering::Less => {
                i128::from(available) * 100 <= i128::from(value) * i128::from(desired)
            }
        },
        ProgressType::Pods => available >= value,
    }
}

// --- Fenceposts -----------------------------------------------------------------------------

/// `(maxSurge, maxUnavailable)` for the arithmetic; an unparsable limit makes both 0, because
/// Argo's `MaxSurge`/`MaxUnavailable` discard the error and the zeros it comes with.
fn fenceposts_or_zero(spec: &RolloutSpec) -> (i64, i64) {
    canary_fenceposts(spec)
        .map(|(surge, unavailable)| (i64::from(surge), i64::from(unavailable)))
        .unwrap_or((0, 0))
}

/// [`IntOrString::scaled_value`], saturating instead of overflowing on absurd percentages
/// (a percentage of several quintillion would overflow its `i64` product).
fn resolve_int_or_percent(
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, crate::api::intstr::IntOrPercentError> {
    if let IntOrString::String(s) = value {
        let digits = s.strip_suffix('%').unwrap_or(s).trim();
        if let Ok(pct) = digits.parse::<i64>() {
            if pct.checked_mul(i64::from(total)).is_none() {
                let positive = (pct > 0) == (total > 0);
                return Ok(if positive { i32::MAX } else { i32::MIN });
            }
        }
    }
    value.scaled_value(total, round_up)
}

// --- Steps and weights ----------------------------------------------------------------------

/// `GetCurrentCanaryStep`'s index: `None` without steps or past the last one.
fn current_step_index(spec: &RolloutSpec, status: &RolloutStatus) -> Option<usize> {
    let steps = spec.steps();
    if steps.is_empty() {
        return None;
    }
    let index = usize::try_from(status.current_step_index.unwrap_or(0)).unwrap_or(0);
    (index < steps.len()).then_some(index)
}

/// `UseSetCanaryScale`: the `setCanaryScale` governing the canary's size, if any.
fn set_canary_scale_in_effect<'a>(
    spec: &'a RolloutSpec,
    status: &RolloutStatus,
) -> Option<&'a SetCanaryScale> {
    let canary = spec.canary()?;
    canary.traffic_routing.as_ref()?;
    // An aborted canary is scaled by weight (so it drains), unless the user asked to keep
    // it up forever with abortScaleDownDelaySeconds: 0.
    if status.abort && canary.abort_scale_down_delay_seconds != Some(0) {
        return None;
    }
    let index = current_step_index(spec, status)?;
    // Like Argo, look at the `setCanaryScale` field of each step directly: a step object that
    // also sets `setWeight` still carries a scale.
    let scale = spec.steps()[..=index]
        .iter()
        .rev()
        .find_map(|step| step.set_canary_scale.as_ref())?;
    (!scale.match_traffic_weight).then_some(scale)
}

/// `GetDesiredCanaryWeight`: the current setWeight, except while aborting with
/// `dynamicStableScale`, where the weight steps back down through the setWeight steps as
/// the stable regains its pods (`stable` is `None` unless it is a distinct RS).
pub(crate) fn desired_canary_weight(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    new: Option<RsCounts>,
    stable: Option<RsCounts>,
) -> i32 {
    let (Some(new), Some(stable)) = (new, stable) else {
        return current_set_weight(spec, status);
    };
    if !status.abort || !dynamic_stable_scale(spec) {
        return current_set_weight(spec, status);
    }
    let replicas = i64::from(spec.replicas());
    let max_weight = i64::from(spec.max_traffic_weight());
    let missing_from_stable = replicas - i64::from(stable.available);
    // With an explicit delay the canary is only scaled down by the deadline annotation,
    // which waits for a full stable; bounding the walk by the canary's own pods would then
    // never let the weight fall (Argo issue #4898), so only the stable's shortfall counts.
    let explicit_delay = spec
        .canary()
        .and_then(|c| c.abort_scale_down_delay_seconds)
        .is_some_and(|d| d > 0);
    let canary_pods = if explicit_delay {
        missing_from_stable
    } else {
        missing_from_stable.max(i64::from(new.available))
    };
    spec.steps()
        .iter()
        .rev()
        .filter_map(|step| step.set_weight)
        .find(|&w| weight_to_replicas(replicas, i64::from(w), max_weight) < canary_pods)
        .unwrap_or(0)
}

fn dynamic_stable_scale(spec: &RolloutSpec) -> bool {
    spec.canary().is_some_and(|c| c.dynamic_stable_scale)
}

/// `⌈replicas × weight / max_weight⌉`; 0 for a non-positive `max_weight`.
fn weight_to_replicas(replicas: i64, weight: i64, max_weight: i64) -> i64 {
    if max_weight <= 0 {
        return 0;
    }
    ceil_div(replicas * weight, max_weight)
}

// --- Desired counts -------------------------------------------------------------------------

fn desired_counts(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    new: Option<RsCounts>,
    stable: Option<RsCounts>,
    stable_is_new: bool,
    others: &[RsCounts],
) -> (i64, i64) {
    if spec.has_traffic_routing() {
        traffic_routed_counts(spec, status, new, stable, stable_is_new)
    } else {
        basic_canary_counts(spec, status, new, stable, stable_is_new, others)
    }
}

/// `CalculateReplicaCountsForTrafficRoutedCanary` ⇒ (canary, stable).
fn traffic_routed_counts(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    new: Option<RsCounts>,
    stable: Option<RsCounts>,
    stable_is_new: bool,
) -> (i64, i64) {
    let replicas = i64::from(spec.replicas());
    let max_weight = i64::from(spec.max_traffic_weight());
    let (explicit, weight) = canary_replicas_or_weight(spec, status, new, stable, stable_is_new);
    let weight = i64::from(weight);
    let mut canary = match explicit {
        // An explicit setCanaryScale.replicas is taken as is, even above spec.replicas.
        Some(n) => i64::from(n),
        None => min_pods(spec, weight_to_replicas(replicas, weight, max_weight)),
    };
    if !dynamic_stable_scale(spec) {
        // Behind a router the stable keeps every pod until the update completes.
        return (canary, replicas);
    }
    // The stable may only shrink once traffic has left it, and must grow before traffic
    // returns: take the larger of the desired share and the share last sent to the router.
    let mut stable_count = weight_to_replicas(replicas, max_weight - weight, max_weight);
    if let Some(weights) = &status.canary.weights {
        let routed_stable =
            weight_to_replicas(replicas, i64::from(weights.stable.weight), max_weight);
        stable_count = stable_count.max(routed_stable);
        if status.abort {
            // Likewise the aborted canary keeps the pods its remaining traffic needs.
            let routed_canary =
                weight_to_replicas(replicas, i64::from(weights.canary.weight), max_weight);
            canary = canary.max(routed_canary);
        }
    }
    (min_pods(spec, canary), min_pods(spec, stable_count))
}

/// `CheckMinPodsPerReplicaSet`: a non-zero count behind a router is raised to
/// `minPodsPerReplicaSet`, which is itself capped at `spec.replicas`.
fn min_pods(spec: &RolloutSpec, count: i64) -> i64 {
    if count == 0 {
        return 0;
    }
    let Some(canary) = spec.canary() else {
        return count;
    };
    match (canary.min_pods_per_replica_set, &canary.traffic_routing) {
        (Some(min), Some(_)) => count.max(i64::from(min.min(spec.replicas()))),
        _ => count,
    }
}

/// `CalculateReplicaCountsForBasicCanary` ⇒ (new, stable).
fn basic_canary_counts(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    new: Option<RsCounts>,
    stable: Option<RsCounts>,
    stable_is_new: bool,
    others: &[RsCounts],
) -> (i64, i64) {
    let replicas = i64::from(spec.replicas());
    let (_, weight) = canary_replicas_or_weight(spec, status, new, stable, stable_is_new);
    let (max_surge, max_unavailable) = fenceposts_or_zero(spec);
    let (mut desired_new, mut desired_stable) = approximate(
        replicas,
        i64::from(weight),
        i64::from(spec.max_traffic_weight()),
        max_surge,
    );

    let spec_of = |rs: Option<RsCounts>| rs.map_or(0, |rs| i64::from(rs.spec));
    // `CheckStableRSExists`: without a stable distinct from the new RS there is no canary
    // split; the new RS goes straight to every replica.
    let distinct_stable = stable.filter(|_| !stable_is_new);
    let mut new_count = spec_of(new);
    let mut stable_count = spec_of(distinct_stable);
    if distinct_stable.is_none() {
        desired_new = replicas;
        desired_stable = 0;
    }

    let max_allowed = replicas + max_surge;
    let others_spec: i64 = others.iter().map(|rs| i64::from(rs.spec)).sum();
    let mut scale_up = max_allowed - (others_spec + spec_of(new) + spec_of(distinct_stable));

    // The stable is grown first so that a reduced weight (or an abort) restores capacity
    // before any canary pod goes away.
    if let Some(s) = distinct_stable {
        let current = i64::from(s.spec);
        if current < desired_stable && scale_up > 0 {
            if current + scale_up < desired_stable {
                stable_count = current + scale_up;
                scale_up = 0;
            } else {
                stable_count = desired_stable;
                scale_up -= desired_stable - current;
            }
        }
    }
    if let Some(n) = new {
        let current = i64::from(n.spec);
        if current < desired_new && scale_up > 0 {
            new_count = (current + scale_up).min(desired_new);
        }
    }

    // Older ReplicaSets are drained (elsewhere) before the new or stable RS may shrink.
    if others_spec > 0 {
        return (new_count, stable_count);
    }

    let min_available = replicas - max_unavailable;
    // When the canary grows, the stable's unavailable pods may be ignored (a crash-looping
    // stable must not block the update); when it shrinks, the canary's may be.
    let is_increasing = new.is_none_or(|n| desired_new >= i64::from(n.spec));
    // Argo counts the stable RS here even when it is the new RS, so those pods count twice
    // (quirk kept; B5 "NewDeployment" goes through it).
    let countable = replicas_for_scale_down(new, !is_increasing)
        + replicas_for_scale_down(stable, is_increasing);
    if countable <= min_available {
        return (new_count, stable_count);
    }
    let scale_down = countable - min_available;

    if !is_increasing {
        new_count = drain_toward(new, desired_new, scale_down, new_count);
        // Argo hands the stable RS over as given here, even when it is the new RS.
        adjust_within_limits(
            new,
            stable,
            new_count,
            stable_count,
            max_allowed,
            min_available,
        )
    } else if distinct_stable.is_some() {
        stable_count = drain_toward(distinct_stable, desired_stable, scale_down, stable_count);
        let (s, n) = adjust_within_limits(
            distinct_stable,
            new,
            stable_count,
            new_count,
            max_allowed,
            min_available,
        );
        (n, s)
    } else {
        (new_count, stable_count)
    }
}

/// `GetReplicasForScaleDown`: the pods of `rs` that may be counted as available. Pods above
/// `spec` are about to go anyway, so they never count.
fn replicas_for_scale_down(rs: Option<RsCounts>, ignore_availability: bool) -> i64 {
    let Some(rs) = rs else {
        return 0;
    };
    if rs.spec < rs.available || ignore_availability {
        i64::from(rs.spec)
    } else {
        i64::from(rs.available)
    }
}

/// `calculateScaleDownReplicaCount`: shrink the draining RS toward its desired count by at
/// most `scale_down`.
fn drain_toward(drain: Option<RsCounts>, desired: i64, scale_down: i64, current: i64) -> i64 {
    match drain {
        Some(rs) if i64::from(rs.spec) > desired => desired.max(i64::from(rs.spec) - scale_down),
        _ => current,
    }
}

/// `adjustReplicaWithinLimits` ⇒ (drain count, adjust count): first bring the total back
/// under `spec + maxSurge` by trimming the adjusted RS, then give back any of its available
/// pods needed to stay at `spec − maxUnavailable`, and take the overflow from the drained RS.
fn adjust_within_limits(
    drain: Option<RsCounts>,
    adjust: Option<RsCounts>,
    mut drain_count: i64,
    mut adjust_count: i64,
    max_allowed: i64,
    min_available: i64,
) -> (i64, i64) {
    let over = (adjust_count + drain_count - max_allowed).max(0);
    let mut total_available = drain.map_or(0, |rs| i64::from(rs.available).min(drain_count));
    if let Some(rs) = adjust {
        let rs_available = i64::from(rs.available);
        adjust_count -= over;
        total_available += rs_available.min(adjust_count);
        let trimmed_available = (rs_available - adjust_count).max(0);
        let still_needed = (min_available - total_available).max(0);
        adjust_count += trimmed_available.min(still_needed);
        drain_count -= (adjust_count + drain_count - max_allowed).max(0);
    }
    (drain_count, adjust_count)
}

fn all_desired_are_available(rs: Option<RsCounts>, desired: i64) -> bool {
    rs.is_some_and(|rs| desired == i64::from(rs.spec) && desired == i64::from(rs.available))
}

fn all_desired_are_created(rs: Option<RsCounts>, desired: i64) -> bool {
    rs.is_some_and(|rs| desired == i64::from(rs.spec) && desired == i64::from(rs.status_replicas))
}

// --- Weighted approximation -----------------------------------------------------------------

/// See [`approximate_weighted_counts`].
fn approximate(replicas: i64, weight: i64, max_weight: i64, max_surge: i64) -> (i64, i64) {
    if replicas <= 0 {
        return (0, 0);
    }
    if max_weight <= 0 {
        return (0, replicas);
    }
    let ceil = ceil_div(replicas * weight, max_weight);
    let floor = (replicas * weight).div_euclid(max_weight);
    let zero_allowed = weight == max_weight || weight == 0 || (replicas == 1 && max_surge == 0);

    let mut options: [(i64, i64); 4] = [(0, 0); 4];
    let mut len = 0;
    let mut push = |option: (i64, i64)| {
        options[len] = option;
        len += 1;
    };
    if ceil < replicas || zero_allowed {
        push((ceil, replicas));
    }
    if !floor_ceiling_tied(weight, max_weight, replicas) && (floor != 0 || zero_allowed) {
        push((floor, replicas));
    }
    if max_surge > 0 {
        push((ceil, replicas + 1));
        if !floor_ceiling_tied(weight, max_weight, replicas + 1) && (floor != 0 || zero_allowed) {
            push((floor, replicas + 1));
        }
    }
    let candidates = &options[..len];
    let Some(&first) = candidates.first() else {
        return (0, replicas);
    };
    let mut best = first;
    let mut best_delta = weight_delta(weight, max_weight, first);
    for &option in &candidates[1..] {
        let delta = weight_delta(weight, max_weight, option);
        if delta < best_delta {
            best = option;
            best_delta = delta;
        }
    }
    let (canary, total) = best;
    let canary = canary.clamp(0, total);
    (canary, total - canary)
}

/// Whether `total × weight / max_weight` lies exactly halfway between two integers.
///
/// Computed in `float64` as Argo does (`total × (weight / max)`), so the same candidates are
/// offered. The float test can miss an exact tie (25 × 0.14 ≠ 3.5); the floor candidate it
/// then lets in is exactly as far from the weight as the ceiling, which is listed first and
/// keeps winning — for weights 0..=100 and up to 5000 replicas this gives the same pods as
/// exact arithmetic.
fn floor_ceiling_tied(weight: i64, max_weight: i64, total: i64) -> bool {
    let share = (total as f64) * ((weight as f64) / (max_weight as f64));
    share.fract() == 0.5
}

/// How far `canary / total` is from the desired weight, in weight units, in `float64` as
/// Argo computes it (so equal-looking candidates compare exactly as they do there).
fn weight_delta(weight: i64, max_weight: i64, (canary, total): (i64, i64)) -> f64 {
    let actual = ((i128::from(canary) * i128::from(max_weight)) as f64) / (total as f64);
    (actual - weight as f64).abs()
}

// --- Integer helpers ------------------------------------------------------------------------

/// `⌈n / d⌉` for `d > 0`.
fn ceil_div(n: i64, d: i64) -> i64 {
    -((-n).div_euclid(d))
}

fn clamp_count(n: i64) -> i32 {
    i32::try_from(n.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        CanaryStep, CanaryStrategy, ReplicaProgressThreshold, RolloutPause, RolloutStrategy,
        RolloutTrafficRouting, TrafficWeights, WeightDestination,
    };

    // --- Harness ---------------------------------------------------------------------------

    fn int(n: i32) -> IntOrString {
        IntOrString::Int(n)
    }

    fn pct(v: &str) -> IntOrString {
        IntOrString::String(v.to_string())
    }

    /// An RS whose pods all exist (`status.replicas == spec`).
    fn rs(spec: i32, available: i32) -> RsCounts {
        RsCounts {
            spec,
            status_replicas: spec,
            available,
        }
    }

    fn nginx() -> RolloutTrafficRouting {
        RolloutTrafficRouting {
            nginx: Some(crate::api::NginxTrafficRouting { stable_ingress: "ingress".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    fn set_weight(w: i32) -> CanaryStep {
        CanaryStep {
            set_weight: Some(w),
            ..Default::default()
        }
    }

    fn pause() -> CanaryStep {
        CanaryStep {
            pause: Some(RolloutPause::default()),
            ..Default::default()
        }
    }

    fn scale(replicas: Option<i32>, weight: Option<i32>, match_weight: bool) -> SetCanaryScale {
        SetCanaryScale {
            replicas,
            weight,
            match_traffic_weight: match_weight,
        }
    }

    fn scale_step(replicas: Option<i32>, weight: Option<i32>, match_weight: bool) -> CanaryStep {
        CanaryStep {
            set_canary_scale: Some(scale(replicas, weight, match_weight)),
            ..Default::default()
        }
    }

    fn spec_with(replicas: i32, canary: CanaryStrategy) -> RolloutSpec {
        RolloutSpec {
            replicas: Some(replicas),
            strategy: RolloutStrategy {
                canary: Some(canary),
                blue_green: None,
            },
            ..Default::default()
        }
    }

    /// A canary with these steps and limits; `unavailable: None` keeps the 25 % default.
    fn basic(
        replicas: i32,
        steps: Vec<CanaryStep>,
        surge: IntOrString,
        unavailable: Option<IntOrString>,
    ) -> RolloutSpec {
        spec_with(
            replicas,
            CanaryStrategy {
                steps,
                max_surge: Some(surge),
                max_unavailable: unavailable,
                ..Default::default()
            },
        )
    }

    /// A traffic-routed canary (nginx) with these steps.
    fn routed(replicas: i32, steps: Vec<CanaryStep>, dynamic_stable_scale: bool) -> RolloutSpec {
        spec_with(
            replicas,
            CanaryStrategy {
                steps,
                traffic_routing: Some(nginx()),
                dynamic_stable_scale,
                ..Default::default()
            },
        )
    }

    fn canary_mut(spec: &mut RolloutSpec) -> &mut CanaryStrategy {
        spec.strategy.canary.get_or_insert_with(Default::default)
    }

    fn status(stable: &str, current: &str) -> RolloutStatus {
        RolloutStatus {
            stable_rs: stable.to_string(),
            current_pod_hash: current.to_string(),
            ..Default::default()
        }
    }

    /// Status of an update in progress (`stable` ≠ `canary`) at `index`.
    fn at(index: Option<i32>, abort: bool) -> RolloutStatus {
        RolloutStatus {
            current_step_index: index,
            abort,
            ..status("stable", "canary")
        }
    }

    fn weights(canary: i32, stable: i32) -> TrafficWeights {
        TrafficWeights {
            canary: WeightDestination {
                weight: canary,
                ..Default::default()
            },
            stable: WeightDestination {
                weight: stable,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    // --- B1: TestCalculateReplicaCountsForCanary -------------------------------------------

    struct B1 {
        id: &'static str,
        replicas: i32,
        weight: i32,
        surge: IntOrString,
        unavailable: IntOrString,
        stable: (i32, i32),
        canary: (i32, i32),
        older: Option<(i32, i32)>,
        scale: Option<SetCanaryScale>,
        traffic_routing: bool,
        promote_full: bool,
        abort: bool,
        abort_delay: Option<i32>,
        min_pods: Option<i32>,
        expect_stable: i32,
        expect_canary: i32,
    }

    /// A basic-canary row: RSs are (spec, available).
    #[allow(clippy::too_many_arguments)]
    fn b1(
        id: &'static str,
        replicas: i32,
        weight: i32,
        surge: IntOrString,
        unavailable: IntOrString,
        stable: (i32, i32),
        canary: (i32, i32),
        expect_stable: i32,
        expect_canary: i32,
    ) -> B1 {
        B1 {
            id,
            replicas,
            weight,
            surge,
            unavailable,
            stable,
            canary,
            older: None,
            scale: None,
            traffic_routing: false,
            promote_full: false,
            abort: false,
            abort_delay: None,
            min_pods: None,
            expect_stable,
            expect_canary,
        }
    }

    /// A traffic-routed row: no RS is passed and "—" limits are the int zero value.
    fn b1_tr(
        id: &'static str,
        replicas: i32,
        weight: i32,
        expect_stable: i32,
        expect_canary: i32,
    ) -> B1 {
        let zero = (0, 0);
        B1 {
            traffic_routing: true,
            ..b1(
                id,
                replicas,
                weight,
                int(0),
                int(0),
                zero,
                zero,
                expect_stable,
                expect_canary,
            )
        }
    }

    #[rustfmt::skip]
    fn b1_rows() -> Vec<B1> {
        let scs = |r, w, m| Some(scale(r, w, m));
        vec![
            //  id        R    w    maxSurge     maxUnav      stable    canary  ⇒ stable canary
            b1("B1-1",  10, 100, int(3),      int(0),      (7, 8),   (6, 3),   7, 6),
            b1("B1-2",  10, 20,  int(2),      int(0),      (10, 10), (0, 0),  10, 2),
            b1("B1-3",  10, 20,  pct("20%"),  int(0),      (10, 10), (0, 0),  10, 2),
            b1("B1-4",  10, 20,  pct("20%"),  int(0),      (10, 10), (2, 2),   8, 2),
            b1("B1-5",  10, 30,  int(2),      int(0),      (10, 10), (0, 0),  10, 2),
            b1("B1-6",  10, 20,  int(0),      int(2),      (10, 10), (0, 0),   8, 0),
            b1("B1-7",  10, 20,  int(0),      pct("20%"),  (10, 10), (0, 0),   8, 0),
            b1("B1-8",  10, 30,  int(0),      int(2),      (10, 10), (0, 0),   8, 0),
            b1("B1-9",  10, 50,  int(2),      int(1),      (10, 10), (0, 0),   9, 2),
            b1("B1-10", 10, 0,   int(1),      int(1),      (10, 10), (1, 1),  10, 0),
            b1("B1-11", 10, 100, int(1),      int(1),      (1, 1),   (10, 10), 0, 10),
            b1("B1-12", 1,  20,  int(1),      int(0),      (1, 1),   (0, 0),   1, 1),
            b1("B1-13", 1,  90,  int(1),      int(0),      (1, 1),   (0, 0),   1, 1),
            b1("B1-14", 1,  49,  int(0),      int(1),      (1, 1),   (0, 0),   1, 0),
            b1("B1-15", 1,  51,  int(0),      int(1),      (1, 1),   (0, 0),   0, 0),
            b1("B1-16", 1,  51,  int(0),      int(1),      (0, 0),   (0, 0),   0, 1),
            B1 { older: Some((3, 3)), ..b1("B1-17", 10, 30, int(1), int(0), (1, 1), (0, 0), 7, 1) },
            b1("B1-18", 10, 30,  int(0),      int(3),      (8, 5),   (4, 4),   7, 3),
            b1("B1-19", 10, 100, int(1),      int(0),      (10, 2),  (10, 8),  2, 9),
            B1 { older: Some((3, 3)), ..b1("B1-20", 10, 30, int(0), int(1), (8, 6), (4, 2), 8, 4) },
            b1("B1-21", 10, 5,   int(0),      int(1),      (10, 10), (0, 0),   9, 0),
            b1("B1-22", 10, 5,   int(0),      int(1),      (9, 9),   (0, 0),   9, 1),
            b1("B1-23", 10, 10,  pct("0%"),   pct("0%"),   (10, 10), (0, 0),   9, 0),
            B1 { scale: scs(Some(9), None, false), ..b1_tr("B1-24", 1, 100, 1, 9) },
            B1 { scale: scs(None, Some(200), false), ..b1_tr("B1-25", 4, 100, 4, 8) },
            B1 { surge: pct("20%"), scale: scs(Some(9), Some(100), true), ..b1_tr("B1-26", 10, 20, 10, 2) },
            B1 { scale: scs(Some(9), Some(100), false), ..b1("B1-27", 10, 20, pct("20%"), int(0), (10, 10), (0, 0), 10, 2) },
            b1("B1-28", 4,  100, int(1),      int(0),      (4, 1),   (0, 0),   4, 1),
            b1("B1-29", 3,  99,  int(0),      int(2),      (3, 3),   (0, 0),   1, 0),
            b1("B1-30", 3,  99,  int(0),      int(2),      (1, 1),   (0, 0),   1, 2),
            b1("B1-31", 4,  100, int(1),      int(0),      (4, 1),   (1, 1),   3, 1),
            b1("B1-32", 4,  0,   int(1),      int(0),      (0, 0),   (4, 4),   1, 4),
            b1("B1-33", 4,  0,   int(1),      int(0),      (1, 0),   (4, 4),   1, 4),
            b1("B1-34", 4,  0,   int(1),      int(0),      (1, 1),   (4, 4),   1, 3),
            B1 { promote_full: true, ..b1("B1-35", 4, 1, int(4), int(4), (4, 4), (0, 0), 0, 4) },
            B1 { promote_full: true, ..b1("B1-36", 4, 1, int(3), int(0), (4, 4), (0, 0), 4, 3) },
            B1 { scale: scs(Some(1), None, false), abort: true, abort_delay: Some(0), ..b1_tr("B1-37", 1, 0, 1, 1) },
            B1 { scale: scs(Some(1), None, false), abort: true, abort_delay: Some(30), ..b1_tr("B1-38", 1, 0, 1, 0) },
            B1 { min_pods: Some(2), ..b1_tr("B1-39", 10, 5, 10, 2) },
            B1 { promote_full: true, min_pods: Some(2), ..b1_tr("B1-40", 1, 100, 1, 1) },
        ]
    }

    #[test]
    fn b1_calculate_replica_counts_for_canary() {
        let rows = b1_rows();
        assert_eq!(rows.len(), 40);
        for row in rows {
            // Argo's harness puts setWeight and setCanaryScale into the same step object.
            let step = CanaryStep {
                set_weight: Some(row.weight),
                set_canary_scale: row.scale.clone(),
                ..Default::default()
            };
            let spec = spec_with(
                row.replicas,
                CanaryStrategy {
                    steps: vec![step],
                    max_surge: Some(row.surge.clone()),
                    max_unavailable: Some(row.unavailable.clone()),
                    traffic_routing: row.traffic_routing.then(nginx),
                    abort_scale_down_delay_seconds: row.abort_delay,
                    min_pods_per_replica_set: row.min_pods,
                    ..Default::default()
                },
            );
            let st = RolloutStatus {
                promote_full: row.promote_full,
                ..at(None, row.abort)
            };
            let (new, stable, others) = if row.traffic_routing {
                (None, None, vec![])
            } else {
                let others = row.older.map(|(s, a)| vec![rs(s, a)]).unwrap_or_default();
                (
                    Some(rs(row.canary.0, row.canary.1)),
                    Some(rs(row.stable.0, row.stable.1)),
                    others,
                )
            };
            let got = replica_counts_for_canary(&spec, &st, new, stable, false, &others);
            let want = (row.expect_canary, row.expect_stable);
            assert_eq!(got, want, "{} (new, stable)", row.id);
        }
    }

    #[test]
    fn older_replica_sets_drain_before_the_new_or_stable_moves_down() {
        // Argo's basic canary scales older ReplicaSets down first: while one has replicas,
        // the stable and the canary only grow into spare surge, the stable first; neither
        // shrinks toward its share, nor below its spec when the total is over budget.
        #[rustfmt::skip]
        let rows = [
            // id                     surge stable    canary   older  ⇒ (canary, stable)
            ("room to surge",           3,  (10, 10), (0, 0),  (1, 1), (2, 10)),
            ("over budget, stable low", 1,  (4, 4),   (6, 6),  (2, 2), (6, 4)),
            ("over budget, canary low", 1,  (5, 5),   (4, 4),  (3, 3), (4, 5)),
            ("canary above its share",  4,  (5, 5),   (7, 7),  (1, 1), (7, 5)),
        ];
        for (id, surge, stable, canary, older, want) in rows {
            let spec = basic(10, vec![set_weight(50)], int(surge), Some(int(0)));
            let got = replica_counts_for_canary(
                &spec,
                &at(None, false),
                Some(rs(canary.0, canary.1)),
                Some(rs(stable.0, stable.1)),
                false,
                &[rs(older.0, older.1)],
            );
            assert_eq!(got, want, "{id} (new, stable)");
        }
    }

    // --- B2: TestApproximateWeightedNewStableReplicaCounts ---------------------------------

    #[test]
    fn b2_approximate_weighted_counts() {
        // (replicas, weight, maxSurge, ⇒ canary, ⇒ stable); maxWeight 100.
        #[rustfmt::skip]
        let rows: [(i32, i32, i32, i32, i32); 57] = [
            (0, 0, 0, 0, 0), (0, 50, 0, 0, 0), (0, 100, 0, 0, 0),
            (0, 0, 1, 0, 0), (0, 50, 1, 0, 0), (0, 100, 1, 0, 0),
            (1, 0, 0, 0, 1), (1, 1, 0, 0, 1), (1, 49, 0, 0, 1), (1, 50, 0, 1, 0), (1, 99, 0, 1, 0), (1, 100, 0, 1, 0),
            (1, 0, 1, 0, 1), (1, 1, 1, 1, 1), (1, 49, 1, 1, 1), (1, 50, 1, 1, 1), (1, 99, 1, 1, 1), (1, 100, 1, 1, 0),
            (2, 0, 0, 0, 2), (2, 1, 0, 1, 1), (2, 50, 0, 1, 1), (2, 99, 0, 1, 1), (2, 100, 0, 2, 0),
            (2, 0, 1, 0, 2), (2, 1, 1, 1, 2), (2, 50, 1, 1, 1), (2, 99, 1, 2, 1), (2, 100, 1, 2, 0),
            (3, 10, 0, 1, 2), (3, 25, 0, 1, 2), (3, 33, 0, 1, 2), (3, 34, 0, 1, 2), (3, 49, 0, 1, 2), (3, 50, 0, 2, 1),
            (3, 10, 1, 1, 3), (3, 25, 1, 1, 3), (3, 33, 1, 1, 2), (3, 34, 1, 1, 2), (3, 49, 1, 2, 2), (3, 50, 1, 2, 2),
            (10, 0, 1, 0, 10), (10, 1, 0, 1, 9), (10, 14, 0, 1, 9), (10, 15, 0, 2, 8), (10, 16, 0, 2, 8),
            (10, 99, 0, 9, 1), (10, 100, 1, 10, 0),
            (10, 0, 1, 0, 10), (10, 1, 1, 1, 10), (10, 18, 1, 2, 9), (10, 19, 1, 2, 9), (10, 20, 1, 2, 8),
            (10, 23, 1, 2, 8), (10, 24, 1, 3, 8), (10, 25, 1, 3, 8), (10, 99, 1, 10, 1), (10, 100, 1, 10, 0),
        ];
        for (i, (replicas, weight, surge, canary, stable)) in rows.into_iter().enumerate() {
            let got = approximate_weighted_counts(replicas, weight, 100, surge);
            assert_eq!(
                got,
                (canary, stable),
                "B2-{} (R {replicas}, w {weight}, surge {surge})",
                i + 1
            );
        }
    }

    #[test]
    fn approximation_probes() {
        #[rustfmt::skip]
        let rows = [
            // Part D item 1 probes: (replicas, weight, maxWeight, surge) ⇒ (canary, stable).
            ("D1 3/50/0",         (3, 50, 100, 0),   (2, 1)),
            ("D1 1/49/0",         (1, 49, 100, 0),   (0, 1)),
            ("D1 1/50/0",         (1, 50, 100, 0),   (1, 0)),
            ("D1 10/1/1",         (10, 1, 100, 1),   (1, 10)),
            ("D1 2/99/1",         (2, 99, 100, 1),   (2, 1)),
            ("D1 10/24/1",        (10, 24, 100, 1),  (3, 8)),
            // CAN-06: 3 replicas, 20 %, default surge (25 % of 3, rounded up = 1).
            ("CAN-06 3/20/1",     (3, 20, 100, 1),   (1, 3)),
            // Argo's float64 tie test misses 25 × 0.14 = 3.5; the floor then offered is as far
            // from 14 % as the ceiling, so the ceiling (listed first) still wins.
            ("missed tie 25/14",  (25, 14, 100, 0),  (4, 21)),
            ("tie 7/50",          (7, 50, 100, 0),   (4, 3)),
            ("maxWeight 1000",    (10, 200, 1000, 1), (2, 8)),
            ("no replicas",       (0, 50, 100, 1),   (0, 0)),
            ("maxWeight 0",       (4, 50, 0, 1),     (0, 4)),
        ];
        for (id, (replicas, weight, max, surge), expect) in rows {
            assert_eq!(
                approximate_weighted_counts(replicas, weight, max, surge),
                expect,
                "{id}"
            );
        }
    }

    // --- B3: TestCalculateReplicaCountsForCanaryTrafficRoutingDynamicScale -----------------

    #[test]
    fn b3_traffic_routed_dynamic_stable_scale() {
        // Replicas 10, surge 0, unavailable 1; the canary RS's available equals its spec.
        #[rustfmt::skip]
        let rows = [
            // id     steps       abort  weights   canary   stable         ⇒ (canary, stable)
            ("B3-1", &[20, 60][..], true,  (60, 40), Some(6), Some((4, 4)), (6, 8)),
            ("B3-2", &[20, 60][..], true,  (60, 40), Some(1), Some((4, 4)), (6, 8)),
            ("B3-3", &[20, 60][..], true,  (60, 40), Some(2), Some((8, 4)), (6, 8)),
            ("B3-4", &[20, 60][..], true,  (60, 40), None,    None,         (6, 10)),
            ("B3-5", &[10][..],     false, (10, 90), None,    None,         (1, 9)),
            ("B3-6", &[20][..],     false, (10, 90), None,    None,         (2, 9)),
            ("B3-7", &[20][..],     true,  (20, 80), None,    None,         (2, 10)),
            ("B3-8", &[20][..],     true,  (10, 90), None,    None,         (1, 10)),
        ];
        for (id, steps, abort, (wc, ws), canary, stable, expect) in rows {
            let mut spec = routed(10, steps.iter().map(|&w| set_weight(w)).collect(), true);
            canary_mut(&mut spec).max_surge = Some(int(0));
            canary_mut(&mut spec).max_unavailable = Some(int(1));
            let mut st = at(None, abort);
            st.canary.weights = Some(weights(wc, ws));
            let new = canary.map(|n| rs(n, n));
            let stable = stable.map(|(s, a)| rs(s, a));
            assert_eq!(
                replica_counts_for_canary(&spec, &st, new, stable, false, &[]),
                expect,
                "{id}"
            );
        }
    }

    // --- B4: trafficWeightToReplicas --------------------------------------------------------

    #[test]
    fn b4_traffic_weight_to_replicas() {
        #[rustfmt::skip]
        let rows = [
            ("B4-1", 10, 0, 100, 0), ("B4-2", 10, 20, 100, 2), ("B4-3", 10, 25, 100, 3),
            ("B4-4", 10, 33, 100, 4), ("B4-5", 10, 99, 100, 10), ("B4-6", 10, 100, 100, 10),
            ("B4-7", 23, 100_000_000, 100_000_000, 23),
            // No division by zero, no overflow, no negative count.
            ("max 0", 10, 50, 0, 0), ("huge", i32::MAX, i32::MAX, 1, i32::MAX), ("negative", 10, -50, 100, 0),
        ];
        for (id, replicas, weight, max, expect) in rows {
            assert_eq!(
                traffic_weight_to_replicas(replicas, weight, max),
                expect,
                "{id}"
            );
        }
    }

    // --- B5: other helper cases of the same test file ---------------------------------------

    /// Argo's `newRollout(replicas, setWeight, surge, unavailable)`: one setWeight step.
    fn argo_rollout(replicas: i32, weight: i32, surge: i32, unavailable: i32) -> RolloutSpec {
        basic(
            replicas,
            vec![set_weight(weight)],
            int(surge),
            Some(int(unavailable)),
        )
    }

    #[test]
    fn b5_basic_canary_edge_cases() {
        let spec = argo_rollout(10, 10, 0, 1);
        let new_is_stable = rs(10, 0);
        let got = replica_counts_for_canary(
            &spec,
            &at(None, false),
            Some(new_is_stable),
            Some(new_is_stable),
            true,
            &[],
        );
        assert_eq!(
            got,
            (10, 0),
            "B5 NewDeployment: new and stable are the same RS"
        );

        let no_hashes = status("", "");
        let new = rs(9, 9);
        let got = replica_counts_for_canary(&spec, &no_hashes, Some(new), None, false, &[]);
        assert_eq!(got, (10, 0), "B5 StableRSdEdgeCases: nil stable");
        let got = replica_counts_for_canary(&spec, &no_hashes, Some(new), Some(new), true, &[]);
        assert_eq!(got, (10, 0), "B5 StableRSdEdgeCases: stable == new");

        let mut spec = argo_rollout(10, 10, 0, 1);
        canary_mut(&mut spec).traffic_routing = Some(nginx());
        let got = replica_counts_for_canary(&spec, &at(None, false), None, None, false, &[]);
        assert_eq!(got, (1, 10), "B5 TrafficRouting");
    }

    #[test]
    fn b5_current_set_weight() {
        let spec = argo_rollout(10, 10, 0, 1);
        #[rustfmt::skip]
        let rows = [("B5 index 1", Some(1), false, 100), ("B5 index 0", Some(0), false, 10), ("B5 abort", Some(0), true, 0)];
        for (id, index, abort, expect) in rows {
            let st = RolloutStatus {
                current_step_index: index,
                abort,
                ..Default::default()
            };
            assert_eq!(current_set_weight(&spec, &st), expect, "{id}");
        }

        // C.5: walk back to the nearest setWeight; none before ⇒ 0; past the end ⇒ max.
        let spec = spec_with(
            4,
            CanaryStrategy {
                steps: vec![pause(), set_weight(30), pause(), pause()],
                ..Default::default()
            },
        );
        #[rustfmt::skip]
        let rows = [
            ("C5 before any setWeight", Some(0), 0), ("C5 at setWeight", Some(1), 30), ("C5 after", Some(3), 30),
            ("C5 no index means 0", None, 0), ("C5 past the end", Some(4), 100), ("C5 negative index", Some(-3), 0),
        ];
        for (id, index, expect) in rows {
            let st = RolloutStatus {
                current_step_index: index,
                ..Default::default()
            };
            assert_eq!(current_set_weight(&spec, &st), expect, "{id}");
        }
        let mut no_steps = routed(4, vec![], false);
        if let Some(tr) = canary_mut(&mut no_steps).traffic_routing.as_mut() {
            tr.max_traffic_weight = Some(1000);
        }
        assert_eq!(
            current_set_weight(&no_steps, &RolloutStatus::default()),
            1000,
            "C5 no steps ⇒ maxTrafficWeight"
        );
    }

    #[test]
    fn b5_canary_replicas_or_weight() {
        let index_1 = RolloutStatus {
            current_step_index: Some(1),
            stable_rs: "stable-rs".into(),
            ..Default::default()
        };
        let blue_green = RolloutSpec {
            strategy: RolloutStrategy {
                blue_green: Some(Default::default()),
                canary: None,
            },
            ..Default::default()
        };
        let full = RolloutStatus {
            promote_full: true,
            ..Default::default()
        };
        let aborted = RolloutStatus {
            abort: true,
            ..Default::default()
        };
        let scs_weight = routed(
            10,
            vec![set_weight(10), scale_step(None, Some(20), false)],
            false,
        );
        let scs_replicas = routed(
            10,
            vec![set_weight(10), scale_step(Some(5), None, false)],
            false,
        );
        let rows = [
            ("B5 promote full", RolloutSpec::default(), full, (None, 100)),
            (
                "B5 setCanaryScale weight",
                scs_weight,
                index_1.clone(),
                (None, 20),
            ),
            (
                "B5 setCanaryScale replicas",
                scs_replicas,
                index_1,
                (Some(5), 0),
            ),
            (
                "B5 blue-green aborted, no stable",
                blue_green,
                aborted,
                (None, 100),
            ),
        ];
        for (id, spec, st, expect) in rows {
            assert_eq!(
                canary_replicas_or_weight(&spec, &st, None, None, false),
                expect,
                "{id}"
            );
        }
    }

    #[test]
    fn b5_replicas_for_scale_down_and_all_desired_available() {
        #[rustfmt::skip]
        let rows = [
            ("B5 nil", None, false, 0), ("B5 spec < available", Some(rs(3, 5)), false, 3),
            ("B5 ignore availability", Some(rs(3, 2)), true, 3), ("B5 count availability", Some(rs(3, 2)), false, 2),
        ];
        for (id, set, ignore, expect) in rows {
            assert_eq!(replicas_for_scale_down(set, ignore), expect, "{id}");
        }
        // TestAllDesiredAreAvailable; Argo's "spec nil" is 1 replica.
        #[rustfmt::skip]
        let rows = [
            ("B5 10/10 desired 10", Some(rs(10, 10)), 10, true), ("B5 10/9 desired 10", Some(rs(10, 9)), 10, false),
            ("B5 nil", None, 10, false), ("B5 spec nil avail 10 desired 10", Some(rs(1, 10)), 10, false),
            ("B5 spec nil avail 1 desired 1", Some(rs(1, 1)), 1, true),
        ];
        for (id, set, desired, expect) in rows {
            assert_eq!(all_desired_are_available(set, desired), expect, "{id}");
        }
    }

    #[test]
    fn b5_replica_progress_threshold() {
        let with = |threshold: Option<(ProgressType, i32)>| {
            let mut spec = argo_rollout(10, 10, 1, 0);
            canary_mut(&mut spec).replica_progress_threshold =
                threshold.map(|(kind, value)| ReplicaProgressThreshold { kind, value });
            spec
        };
        use ProgressType::{Percent, Pods};
        #[rustfmt::skip]
        let rows = [
            // TestAllReplicaProgressThresholdMet
            ("B5 90% 9/10",                 Some((Percent, 90)),   Some(rs(10, 9)),   10, true),
            ("B5 pods 9, 9 available",      Some((Pods, 9)),       Some(rs(10, 9)),   10, true),
            ("B5 90% 8/10",                 Some((Percent, 90)),   Some(rs(10, 8)),   10, false),
            ("B5 pods 8, 7 available",      Some((Pods, 8)),       Some(rs(10, 7)),   10, false),
            ("B5 -100 ⇒ default",           Some((Percent, -100)), Some(rs(10, 10)),  10, true),
            ("B5 nil, spec 5 avail 10",     None,                    Some(rs(5, 10)),   10, false),
            ("B5 nil rs",                   Some((Percent, 90)),   None,              10, false),
            ("B5 100% 100/10",              Some((Percent, 100)),  Some(rs(10, 100)), 10, true),
            ("B5 90% desired 0",            Some((Percent, 90)),   Some(rs(10, 0)),   0,  true),
            // TestCheckReplicasAvailableWithReplicaProgressThreshold: 5 pods needed.
            ("B5 check 80% 4/5",            Some((Percent, 80)),   Some(rs(5, 4)),    5,  true),
            ("B5 check 80% 3/5",            Some((Percent, 80)),   Some(rs(5, 3)),    5,  false),
            ("B5 check nil 4/5",            None,                    Some(rs(5, 4)),    5,  false),
            // TestShouldFullPromoteWithReplicaProgressThreshold: 10 pods needed.
            ("B5 promote 90% 9/10",         Some((Percent, 90)),   Some(rs(10, 9)),   10, true),
            ("B5 promote 90% 8/10",         Some((Percent, 90)),   Some(rs(10, 8)),   10, false),
            ("B5 promote nil 9/10",         None,                    Some(rs(10, 9)),   10, false),
            ("B5 pods 1, 9 available",      Some((Pods, 1)),         Some(rs(10, 9)),   10, true),
        ];
        for (id, threshold, set, desired, expect) in rows {
            assert_eq!(
                replica_progress_threshold_met(&with(threshold), set, desired),
                expect,
                "{id}"
            );
        }
    }

    #[test]
    fn percent_threshold_agrees_with_argos_float_comparison() {
        // Argo: available / desired × 100 ≥ value, in float64 with a 1e-10 tolerance (so
        // 9/10 at 90 % holds although 0.9 × 100 is not exactly 90). A negative desired
        // count (an unvalidated setCanaryScale) flips the inequality of the integer form.
        for value in 0..=120 {
            let mut spec = argo_rollout(10, 10, 1, 0);
            canary_mut(&mut spec).replica_progress_threshold = Some(ReplicaProgressThreshold {
                kind: ProgressType::Percent,
                value,
            });
            for desired in (-6..=12).filter(|d| *d != 0) {
                for available in 0..=12 {
                    let argo = f64::from(available) / f64::from(desired) * 100.0
                        >= f64::from(value) - 1e-10;
                    let met = replica_progress_threshold_met(
                        &spec,
                        Some(rs(12, available)),
                        i64::from(desired),
                    );
                    assert_eq!(
                        met,
                        argo,
                        "{available} available of {desired} desired at {value} %"
                    );
                }
            }
        }
    }

    #[test]
    fn b5_at_desired_replica_counts_for_canary() {
        // Basic canary, 4 replicas, surge 1, unavailable 1; one step holding setWeight and a
        // setCanaryScale (ignored: no traffic routing).
        let spec_for = |weight: i32, scs: SetCanaryScale| {
            let step = CanaryStep {
                set_weight: Some(weight),
                set_canary_scale: Some(scs),
                ..Default::default()
            };
            basic(4, vec![step], int(1), Some(int(1)))
        };
        let two = scale(Some(2), Some(2), false);
        let empty = SetCanaryScale::default;
        let c = |spec, status_replicas, available| RsCounts {
            spec,
            status_replicas,
            available,
        };
        #[rustfmt::skip]
        let rows = [
            // id                         spec                       new (spec, status, avail)  stable
            ("B5 at desired",             spec_for(50, two.clone()), c(2, 2, 2), c(2, 2, 2), true),
            ("B5 new not available",      spec_for(50, two.clone()), c(2, 2, 1), c(2, 2, 2), false),
            ("B5 stable above desired",   spec_for(75, empty()),     c(3, 3, 3), c(2, 2, 2), false),
            ("B5 stable count only",      spec_for(75, empty()),     c(3, 1, 3), c(1, 1, 0), true),
            ("B5 stable status lags",     spec_for(50, two),         c(2, 2, 2), c(2, 3, 2), false),
        ];
        let st = status("stable", "current");
        for (id, spec, new, stable, expect) in rows {
            let got = at_desired_replica_counts_for_canary(
                &spec,
                &st,
                Some(new),
                Some(stable),
                false,
                &[],
            );
            assert_eq!(got, expect, "{id}");
        }

        // Further D.6 rules: (id, spec, new, stable, others) ⇒ reached.
        let half = spec_for(50, empty());
        let mut threshold = routed(10, vec![set_weight(100)], false);
        canary_mut(&mut threshold).replica_progress_threshold = Some(ReplicaProgressThreshold {
            kind: ProgressType::Percent,
            value: 90,
        });
        let (r22, r1010) = (Some(rs(2, 2)), Some(rs(10, 10)));
        #[rustfmt::skip]
        let rows = [
            ("D6 basic: empty older RS",       half.clone(),                         r22, r22,  vec![rs(0, 0)], true),
            ("D6 basic: available older RS",   half.clone(),                         r22, r22,  vec![rs(0, 1)], false),
            ("D6 no new RS",                   half.clone(),                         None, r22, vec![], false),
            ("D6 basic: no stable RS",         half,                                 r22, None, vec![], false),
            ("D6 TR: stable at 10",            routed(10, vec![set_weight(20)], false), r22, r1010, vec![rs(3, 3)], true),
            ("D6 TR: stable below 10",         routed(10, vec![set_weight(20)], false), r22, Some(rs(8, 8)), vec![], false),
            ("D6 TR+DSS: stable not checked",  routed(10, vec![set_weight(20)], true),  r22, Some(rs(3, 3)), vec![], true),
            ("D6 threshold 90% with 9/10",     threshold,                            Some(rs(10, 9)), r1010, vec![], true),
        ];
        for (id, spec, new, stable, others, expect) in rows {
            let got = at_desired_replica_counts_for_canary(&spec, &st, new, stable, false, &others);
            assert_eq!(got, expect, "{id}");
        }
    }

    #[test]
    fn b5_desired_canary_weight_on_abort_with_scale_down_delay() {
        let spec_for = |delay: Option<i32>| {
            let mut spec = routed(10, vec![set_weight(10), set_weight(50)], true);
            let canary = canary_mut(&mut spec);
            canary.max_surge = Some(int(1));
            canary.max_unavailable = Some(int(0));
            canary.abort_scale_down_delay_seconds = delay;
            spec
        };
        let mut st = at(None, true);
        let canary = Some(rs(5, 5));
        #[rustfmt::skip]
        let rows = [
            ("B5 no delay, stable avail 9",        None,     9, 10),
            ("B5 delay 30, stable avail 5",        Some(30), 5, 10),
            ("B5 delay 30, stable avail 9",        Some(30), 9, 0),
            ("B5 explicit delay 0, stable avail 9", Some(0), 9, 10),
        ];
        for (id, delay, stable_available, expect) in rows {
            let stable = Some(rs(10, stable_available));
            assert_eq!(
                canary_replicas_or_weight(&spec_for(delay), &st, canary, stable, false),
                (None, expect),
                "{id}"
            );
        }
        st.canary.weights = Some(weights(10, 90));
        let (_, stable) =
            replica_counts_for_canary(&spec_for(Some(30)), &st, canary, Some(rs(9, 9)), false, &[]);
        assert_eq!(
            stable, 10,
            "B5 delay 30, stable 9/9, weights 10/90 ⇒ stable count"
        );
    }

    #[test]
    fn dss04_desired_abort_weight() {
        // Only GetDesiredCanaryWeight belongs here; the router weight rule (G.8) does not.
        let spec_for = |replicas: i32, steps: Vec<CanaryStep>| {
            let mut spec = basic(replicas, steps, int(1), Some(int(1)));
            let canary = canary_mut(&mut spec);
            canary.traffic_routing = Some(RolloutTrafficRouting {
                smi: Some(crate::api::SmiTrafficRouting::default()),
                ..Default::default()
            });
            canary.dynamic_stable_scale = true;
            spec
        };
        let st = at(Some(1), true);
        #[rustfmt::skip]
        let rows = [
            ("DSS-04 never increase",       spec_for(5, vec![set_weight(50), pause()]), rs(5, 4), rs(0, 0), 0),
            ("DSS-04 step below canary",    spec_for(5, vec![set_weight(50), pause()]), rs(5, 3), rs(4, 4), 50),
            ("DSS-04 no setWeight step",    spec_for(5, vec![pause()]),                 rs(5, 1), rs(4, 4), 0),
            ("DSS-04 zero replicas",        spec_for(0, vec![set_weight(50), pause()]), rs(0, 0), rs(0, 0), 0),
        ];
        for (id, spec, stable, canary, expect) in rows {
            let got = canary_replicas_or_weight(&spec, &st, Some(canary), Some(stable), false);
            assert_eq!(got, (None, expect), "{id}");
        }
    }

    // --- Worked examples and Part A scenarios -----------------------------------------------

    #[test]
    fn d4_worked_examples() {
        // From new 0 and a fully available stable ⇒ (new, stable).
        #[rustfmt::skip]
        let rows = [
            // id    R   w   unav surge stable
            ("D4-1", 10, 10, 1, 1, 10, (1, 9)),
            ("D4-2", 10, 30, 0, 3, 10, (3, 10)),
            ("D4-3", 10, 30, 5, 0, 10, (0, 7)),
            // argo-features.md quotes Argo's doc comment "⇒ 1/9", which predates the weighted
            // approximation: 5 % of 10 with surge 1 is best approximated by 1 canary beside 10
            // stable pods (1 of 11 = 9.1 % beats 1 of 10 = 10 %, see B2), so the stable keeps 10.
            ("D4-4", 10, 5, 1, 1, 10, (1, 10)),
            ("D4-5", 1, 5, 0, 1, 1, (1, 1)),
            ("D4-6", 1, 95, 0, 1, 1, (1, 1)),
        ];
        for (id, replicas, weight, unavailable, surge, stable, expect) in rows {
            let spec = argo_rollout(replicas, weight, surge, unavailable);
            let got = replica_counts_for_canary(
                &spec,
                &at(None, false),
                Some(rs(0, 0)),
                Some(rs(stable, stable)),
                false,
                &[],
            );
            assert_eq!(got, expect, "{id} (new, stable)");
        }
    }

    #[test]
    fn part_a_single_calculations() {
        let sw10 = || vec![set_weight(10)];
        let sw25 = || vec![set_weight(25), pause()];
        let can11 = || {
            vec![
                set_weight(100),
                pause(),
                set_weight(0),
                pause(),
                set_weight(100),
                pause(),
            ]
        };
        let d25 = || pct("25");
        #[rustfmt::skip]
        let rows = [
            // id                                R   steps    surge          unav          index    abort  new       stable    ⇒ (new, stable)
            ("CAN-02 canary surges first",       10, sw10(),  int(1),        Some(int(0)), Some(0), false, rs(0, 0), rs(10, 10), (1, 10)),
            ("CAN-02 then stable drains",        10, sw10(),  int(1),        Some(int(0)), Some(0), false, rs(1, 1), rs(10, 10), (1, 9)),
            ("CAN-04 stable first, no surge",    10, sw10(),  int(0),        Some(int(1)), Some(0), false, rs(0, 0), rs(10, 10), (0, 9)),
            ("CAN-05 drain within surge",        10, sw10(),  int(3),        Some(int(0)), Some(1), false, rs(4, 4), rs(9, 9),   (4, 6)),
            // CAN-07: default limits (25 % up / 25 % down).
            ("CAN-07 paused at 1 replica",       1,  sw25(),  d25(),         None,         Some(1), false, rs(1, 1), rs(1, 1),   (1, 1)),
            ("CAN-07 scale to 8",                8,  sw25(),  d25(),         None,         Some(1), false, rs(1, 1), rs(1, 1),   (2, 6)),
            ("CAN-07 steady at 8",               8,  sw25(),  d25(),         None,         Some(1), false, rs(2, 2), rs(6, 6),   (2, 6)),
            ("CAN-07 scale to 4, stable settles", 4, sw25(),  d25(),         None,         Some(1), false, rs(1, 1), rs(4, 4),   (1, 3)),
            ("CAN-08 scale-up grows stable",     10, vec![set_weight(20)], int(1), Some(int(0)), Some(0), false, rs(0, 0), rs(5, 5), (2, 8)),
            ("CAN-10 surge 100 %",               4,  vec![],  pct("100%"),   None,         None,    false, rs(0, 0), rs(4, 4),   (4, 3)),
            ("CAN-10 scale to 8",                8,  vec![],  pct("100%"),   None,         None,    false, rs(4, 0), rs(3, 3),   (8, 3)),
            ("CAN-10 scale to 4",                4,  vec![],  pct("100%"),   None,         None,    false, rs(8, 0), rs(3, 3),   (4, 3)),
            ("CAN-11 weight 0 surges stable",    3,  can11(), int(2),        Some(int(0)), Some(2), false, rs(3, 3), rs(0, 0),   (3, 2)),
            ("CAN-11 abort",                     3,  can11(), int(2),        Some(int(0)), Some(0), true,  rs(3, 3), rs(0, 0),   (3, 2)),
        ];
        for (id, replicas, steps, surge, unavailable, index, abort, new, stable, expect) in rows {
            let spec = basic(replicas, steps, surge, unavailable);
            let got = replica_counts_for_canary(
                &spec,
                &at(index, abort),
                Some(new),
                Some(stable),
                false,
                &[],
            );
            assert_eq!(got, expect, "{id} (new, stable)");
        }

        // CAN-02 / CAN-16: when the step counts as reached (a zero-replica older RS does not block).
        let spec = basic(10, sw10(), int(1), Some(int(0)));
        let reached = |new, stable, others: &[RsCounts]| {
            at_desired_replica_counts_for_canary(
                &spec,
                &at(Some(0), false),
                Some(new),
                Some(stable),
                false,
                others,
            )
        };
        assert!(
            !reached(rs(1, 1), rs(10, 10), &[]),
            "CAN-02 stable not yet drained"
        );
        assert!(reached(rs(1, 1), rs(9, 9), &[]), "CAN-02 step complete");
        assert!(
            reached(rs(1, 1), rs(9, 9), &[rs(0, 0)]),
            "CAN-16 empty older RS"
        );

        // CAN-14: older ReplicaSets with replicas block any shrinking of new/stable; their own
        // scale-down budget comes from the fenceposts.
        let spec = basic(4, vec![], int(1), Some(int(0)));
        let current = rs(5, 0);
        let got = replica_counts_for_canary(
            &spec,
            &status("rev3", "rev3"),
            Some(current),
            Some(current),
            true,
            &[rs(5, 5), rs(5, 5)],
        );
        assert_eq!(got, (5, 0), "CAN-14 (new, stable)");
        assert_eq!(canary_fenceposts(&spec), Ok((1, 0)), "CAN-14 fenceposts");
    }

    #[test]
    fn traffic_routed_scenarios() {
        // SCS-01: setCanaryScale weight / replicas / matchTrafficWeight across the steps.
        let steps = vec![
            pause(),
            scale_step(None, Some(25), false),
            pause(),
            set_weight(50),
            pause(),
            scale_step(Some(3), None, false),
            pause(),
            scale_step(None, None, true),
            pause(),
        ];
        let spec = routed(4, steps, false);
        #[rustfmt::skip]
        let rows = [("SCS-01 index 0", 0, (0, 4)), ("SCS-01 index 2", 2, (1, 4)), ("SCS-01 index 4", 4, (1, 4)),
                    ("SCS-01 index 6", 6, (3, 4)), ("SCS-01 index 8", 8, (2, 4))];
        for (id, index, expect) in rows {
            assert_eq!(
                replica_counts_for_canary(&spec, &at(Some(index), false), None, None, false, &[]),
                expect,
                "{id}"
            );
        }

        // SCS-04: abortScaleDownDelaySeconds 0 keeps the setCanaryScale canary; otherwise it goes.
        #[rustfmt::skip]
        let rows = [("SCS-04 delay 0", Some(0), (1, 1)), ("SCS-04 delay 1", Some(1), (0, 1)), ("SCS-04 default", None, (0, 1))];
        for (id, delay, expect) in rows {
            let mut spec = routed(1, vec![scale_step(Some(1), None, false), pause()], false);
            canary_mut(&mut spec).abort_scale_down_delay_seconds = delay;
            assert_eq!(
                replica_counts_for_canary(&spec, &at(None, true), None, None, false, &[]),
                expect,
                "{id}"
            );
        }

        // TRF-04: maxTrafficWeight scales the replica maths.
        for (id, max, weight, expect) in [
            ("TRF-04 A", None, 10, (1, 10)),
            ("TRF-04 B", Some(1000), 200, (2, 10)),
        ] {
            let mut spec = routed(10, vec![set_weight(weight)], false);
            let canary = canary_mut(&mut spec);
            canary.max_surge = Some(int(1));
            canary.max_unavailable = Some(int(0));
            if let Some(tr) = canary.traffic_routing.as_mut() {
                tr.max_traffic_weight = max;
            }
            let got = replica_counts_for_canary(
                &spec,
                &at(Some(0), false),
                Some(rs(0, 0)),
                Some(rs(10, 10)),
                false,
                &[],
            );
            assert_eq!(got, expect, "{id}");
        }

        // DSS-01 (4 replicas, dynamicStableScale): the counts at each documented moment.
        let spec = routed(
            4,
            vec![set_weight(25), pause(), set_weight(75), pause()],
            true,
        );
        #[rustfmt::skip]
        let rows = [
            // id                                        index abort weights   new       stable    ⇒ (new, stable)
            ("DSS-01 paused at 25",                      1, false, (25, 75),  rs(1, 1), rs(4, 4), (1, 3)),
            ("DSS-01 at 75",                             3, false, (75, 25),  rs(3, 3), rs(3, 3), (3, 1)),
            ("DSS-01 abort holds canary, grows stable",  0, true,  (75, 25),  rs(3, 3), rs(1, 1), (3, 3)),
            ("DSS-01 abort at 25, canary shrunk",        0, true,  (25, 75),  rs(1, 1), rs(3, 3), (1, 4)),
            ("DSS-01 abort done",                        0, true,  (0, 100),  rs(1, 1), rs(4, 4), (0, 4)),
        ];
        for (id, index, abort, (wc, ws), new, stable, expect) in rows {
            let mut st = at(Some(index), abort);
            st.canary.weights = Some(weights(wc, ws));
            assert_eq!(
                replica_counts_for_canary(&spec, &st, Some(new), Some(stable), false, &[]),
                expect,
                "{id}"
            );
        }
    }

    // --- Fenceposts -------------------------------------------------------------------------

    #[test]
    fn fenceposts() {
        let spec_for =
            |replicas: i32, surge: Option<IntOrString>, unavailable: Option<IntOrString>| {
                spec_with(
                    replicas,
                    CanaryStrategy {
                        max_surge: surge,
                        max_unavailable: unavailable,
                        ..Default::default()
                    },
                )
            };
        #[rustfmt::skip]
        let rows = [
            ("defaults at 1",                   spec_for(1, None, None),                        Ok((1, 0))),
            ("defaults at 4",                   spec_for(4, None, None),                        Ok((1, 1))),
            ("defaults at 10",                  spec_for(10, None, None),                       Ok((3, 2))),
            ("defaults at 0",                   spec_for(0, None, None),                        Ok((0, 0))),
            ("bare string is a percentage",     spec_for(10, Some(pct("25")), Some(pct("25"))), Ok((3, 2))),
            ("0% and 0% ⇒ one unavailable",     spec_for(10, Some(pct("0%")), Some(pct("0%"))), Ok((0, 1))),
            ("0 and 0 ⇒ one unavailable",       spec_for(10, Some(int(0)), Some(int(0))),       Ok((0, 1))),
            ("unavailable capped at replicas",  spec_for(3, Some(int(0)), Some(int(5))),        Ok((0, 3))),
            ("100% surge",                      spec_for(4, Some(pct("100%")), None),           Ok((4, 1))),
            ("integers as is",                  spec_for(10, Some(int(2)), Some(int(1))),       Ok((2, 1))),
            ("absurd percentage saturates",     spec_for(10, Some(pct("9223372036854775807%")), None), Ok((i32::MAX, 2))),
        ];
        for (id, spec, expect) in rows {
            assert_eq!(canary_fenceposts(&spec), expect, "{id}");
        }
        let bad_surge = canary_fenceposts(&spec_for(10, Some(pct("abc")), None));
        assert!(
            bad_surge
                .as_ref()
                .is_err_and(|e| e.to_string().starts_with("spec.strategy.canary.maxSurge: ")),
            "{bad_surge:?}"
        );
        let bad_unavailable = canary_fenceposts(&spec_for(10, None, Some(pct("x%"))));
        let is_named = |e: &FencepostError| e.to_string().starts_with("spec.strategy.canary.maxUnavailable: ");
        assert!(
            bad_unavailable.as_ref().is_err_and(is_named),
            "{bad_unavailable:?}"
        );
        let blue_green = RolloutSpec {
            strategy: RolloutStrategy {
                blue_green: Some(Default::default()),
                canary: None,
            },
            ..Default::default()
        };
        assert_eq!(canary_fenceposts(&blue_green), Ok((0, 0)), "blue-green");

        // A bad limit makes both limits 0 for the arithmetic, as in Argo: with nothing allowed
        // to surge or be unavailable, a 20 % step moves nothing.
        let bad = basic(10, vec![set_weight(20)], pct("abc"), Some(int(3)));
        let got = replica_counts_for_canary(
            &bad,
            &at(Some(0), false),
            Some(rs(0, 0)),
            Some(rs(10, 10)),
            false,
            &[],
        );
        assert_eq!(got, (0, 10), "bad maxSurge");
    }

    // --- Robustness -------------------------------------------------------------------------

    #[test]
    fn exhaustive_small_inputs_never_panic_or_go_negative() {
        let mut calls = 0u64;
        for replicas in 0..=12 {
            let variants = [
                None,
                Some(rs(0, 0)),
                Some(rs(replicas, replicas)),
                Some(RsCounts {
                    spec: replicas / 2,
                    status_replicas: replicas,
                    available: 0,
                }),
                Some(RsCounts {
                    spec: replicas + 2,
                    status_replicas: replicas + 1,
                    available: replicas + 3,
                }),
            ];
            for weight in (0..=100).step_by(7) {
                for surge in 0..=3 {
                    for unavailable in 0..=3 {
                        // 0 basic, 1 routed, 2 routed + dynamicStableScale (aborted), 3 with
                        // minPodsPerReplicaSet and a setCanaryScale step.
                        for mode in 0..4 {
                            let mut steps =
                                vec![set_weight(weight), pause(), set_weight(100 - weight)];
                            if mode == 3 {
                                steps.push(scale_step(Some(weight / 10), None, false));
                            }
                            let mut spec =
                                basic(replicas, steps, int(surge), Some(int(unavailable)));
                            let canary = canary_mut(&mut spec);
                            canary.traffic_routing = (mode > 0).then(nginx);
                            canary.dynamic_stable_scale = mode >= 2;
                            canary.min_pods_per_replica_set = (mode == 3).then_some(2);
                            let mut st = at(Some(weight % 5), mode == 2 || weight % 2 == 1);
                            st.canary.weights = (mode >= 2).then(|| weights(weight, 100 - weight));
                            let (c, s) = approximate_weighted_counts(replicas, weight, 100, surge);
                            assert!(c >= 0 && s >= 0);
                            for new in variants {
                                for stable in variants {
                                    for stable_is_new in [false, true] {
                                        for others in [&[][..], &[rs(3, 3)][..]] {
                                            let (n, s) = replica_counts_for_canary(
                                                &spec,
                                                &st,
                                                new,
                                                stable,
                                                stable_is_new,
                                                others,
                                            );
                                            let case = format!("R {replicas} w {weight} s {surge} u {unavailable} mode {mode}");
                                            assert!(n >= 0 && s >= 0, "negative counts for {case}");
                                            at_desired_replica_counts_for_canary(
                                                &spec,
                                                &st,
                                                new,
                                                stable,
                                                stable_is_new,
                                                others,
                                            );
                                            canary_replicas_or_weight(
                                                &spec,
                                                &st,
                                                new,
                                                stable,
                                                stable_is_new,
                                            );
                                            calls += 1;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(calls > 100_000);
    }

    #[test]
    fn extreme_inputs_never_panic_or_go_negative() {
        let values = [i32::MIN, -7, -1, 0, 1, 3, 100, 1000, i32::MAX];
        for replicas in values {
            for weight in values {
                for max in values {
                    for surge in values {
                        let (c, s) = approximate_weighted_counts(replicas, weight, max, surge);
                        assert!(c >= 0 && s >= 0, "{replicas} {weight} {max} {surge}");
                    }
                    assert!(traffic_weight_to_replicas(replicas, weight, max) >= 0);
                }
            }
        }
        let strings = [
            "abc",
            "",
            "%",
            "-5%",
            "9223372036854775807",
            "-9223372036854775808%",
            "99999999999999999999%",
        ];
        for replicas in values {
            for value in values {
                for limit in strings.iter().map(|s| pct(s)).chain([int(value)]) {
                    for weight in [i32::MIN, -1, 0, 50, i32::MAX] {
                        for max in [None, Some(0), Some(-5), Some(1), Some(i32::MAX)] {
                            let steps = vec![
                                set_weight(weight),
                                scale_step(Some(value), Some(weight), false),
                            ];
                            let mut spec = basic(replicas, steps, limit.clone(), Some(int(value)));
                            let canary = canary_mut(&mut spec);
                            canary.traffic_routing = max.map(|m| RolloutTrafficRouting {
                                max_traffic_weight: Some(m),
                                ..nginx()
                            });
                            canary.dynamic_stable_scale = max.is_some();
                            canary.min_pods_per_replica_set = Some(value);
                            canary.replica_progress_threshold = Some(ReplicaProgressThreshold {
                                kind: ProgressType::Percent,
                                value,
                            });
                            canary.abort_scale_down_delay_seconds = Some(value);
                            let _ = canary_fenceposts(&spec);
                            for index in [None, Some(-1), Some(1), Some(i32::MAX)] {
                                let mut st = at(index, weight < 0);
                                st.canary.weights = Some(weights(value, weight));
                                current_set_weight(&spec, &st);
                                let odd = RsCounts {
                                    spec: value,
                                    status_replicas: replicas,
                                    available: weight,
                                };
                                for (new, stable) in
                                    [(Some(odd), Some(odd)), (Some(odd), None), (None, Some(odd))]
                                {
                                    let (n, s) = replica_counts_for_canary(
                                        &spec,
                                        &st,
                                        new,
                                        stable,
                                        false,
                                        &[odd, odd],
                                    );
                                    assert!(n >= 0 && s >= 0);
                                    at_desired_replica_counts_for_canary(
                                        &spec,
                                        &st,
                                        new,
                                        stable,
                                        false,
                                        &[odd],
                                    );
                                    canary_replicas_or_weight(&spec, &st, new, stable, false);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
