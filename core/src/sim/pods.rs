//! A ReplicaSet's pods as counts: pods created at the same instant form one cohort, so
//! memory and time grow with the number of scale-ups, not with the replica count
//! (`replicas: 2147483647` is one cohort).
//!
//! Pods are numbered in creation order across the cluster; a cohort holds the pods
//! `first..first + count`, and a pod's name is `<replicaset>-<number:05>`. A pod has the
//! labels and annotations of its ReplicaSet's template when it was created, unless it was
//! patched since (ephemeral metadata): only patched pods are stored one by one. Individual
//! pods only exist as objects when a controller needs them (see
//! [`super::cluster::PodObjects`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::objects::to_kube_time;
use crate::state::MetadataPatch;
use crate::time::{Seconds, Timestamp};

/// A pod's labels and annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Pods of one ReplicaSet created at the same instant (so they become ready together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cohort {
    /// When they were created.
    pub created: Timestamp,
    /// When they become ready; `None` for images that never do.
    pub ready_at: Option<Timestamp>,
    /// How many are left.
    pub count: u64,
    /// Whether their readiness has been seen by [`PodSet::became_ready`].
    ready_announced: bool,
    /// The labels and annotations they were created with (their ReplicaSet's template's).
    meta: PodMeta,
}

impl Cohort {
    fn is_ready(&self, now: Timestamp) -> bool {
        self.ready_at.is_some_and(|t| t <= now)
    }
}

/// Pod numbers `start..end`.
pub type PodRange = std::ops::Range<u64>;

/// The pods of one ReplicaSet, as cohorts keyed by their first pod number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSet {
    cohorts: BTreeMap<u64, Cohort>,
    /// The metadata of pods patched since their creation, by pod number.
    patched: BTreeMap<u64, PodMeta>,
}

impl PodSet {
    /// Number of pods.
    pub fn len(&self) -> u64 {
        self.cohorts.values().map(|c| c.count).sum()
    }

    /// Whether there are no pods.
    pub fn is_empty(&self) -> bool {
        self.cohorts.is_empty()
    }

    /// Pods ready at `now`.
    pub fn ready(&self, now: Timestamp) -> u64 {
        self.cohorts.values().filter(|c| c.is_ready(now)).map(|c| c.count).sum()
    }

    /// Pods ready for at least `min_ready` at `now`.
    pub fn available(&self, now: Timestamp, min_ready: Seconds) -> u64 {
        self.cohorts.values().filter(|c| c.ready_at.is_some_and(|t| t.plus(min_ready) <= now)).map(|c| c.count).sum()
    }

    /// Adds `count` pods numbered from `first`, with metadata `meta`.
    pub fn create(&mut self, first: u64, count: u64, created: Timestamp, ready_at: Option<Timestamp>, meta: PodMeta) -> PodRange {
        if count > 0 {
            self.cohorts.insert(first, Cohort { created, ready_at, count, ready_announced: false, meta });
        }
        first..first.saturating_add(count)
    }

    /// Removes `n` pods the way the ReplicaSet controller picks them: not-ready pods
    /// first, then the newest (the highest number among equals). Returns what went.
    pub fn remove_newest(&mut self, n: u64, now: Timestamp) -> Vec<PodRange> {
        let mut order: Vec<(bool, Timestamp, u64)> =
            self.cohorts.iter().map(|(first, c)| (c.is_ready(now), c.created, *first)).collect();
        order.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        let mut left = n;
        let mut removed = Vec::new();
        for (_, _, first) in order {
            if left == 0 {
                break;
            }
            let Some(c) = self.cohorts.get_mut(&first) else { continue };
            let take = left.min(c.count);
            let end = first + c.count;
            c.count -= take;
            left -= take;
            removed.push(end - take..end);
            if c.count == 0 {
                self.cohorts.remove(&first);
            }
        }
        if !self.patched.is_empty() {
            self.patched.retain(|n, _| !removed.iter().any(|r| r.contains(n)));
        }
        removed
    }

    /// Removes pod number `pod`; whether it existed.
    pub fn remove_pod(&mut self, pod: u64) -> bool {
        let Some((&first, c)) = self.cohorts.range(..=pod).next_back() else { return false };
        if pod >= first + c.count {
            return false;
        }
        let c = c.clone();
        self.cohorts.remove(&first);
        self.patched.remove(&pod);
        if pod > first {
            self.cohorts.insert(first, Cohort { count: pod - first, ..c.clone() });
        }
        let after = first + c.count - (pod + 1);
        if after > 0 {
            self.cohorts.insert(pod + 1, Cohort { count: after, ..c });
        }
        true
    }

    /// Cohorts that became ready since the last call, marked as seen.
    pub fn became_ready(&mut self, now: Timestamp) -> Vec<PodRange> {
        self.cohorts
            .iter_mut()
            .filter(|(_, c)| !c.ready_announced && c.is_ready(now))
            .map(|(first, c)| {
                c.ready_announced = true;
                *first..first + c.count
            })
            .collect()
    }

    /// The next time after `now` a pod becomes ready or available.
    pub fn next_transition(&self, now: Timestamp, min_ready: Seconds) -> Option<Timestamp> {
        self.cohorts
            .values()
            .filter_map(|c| c.ready_at)
            .flat_map(|r| [r, r.plus(min_ready)])
            .filter(|t| *t > now)
            .min()
    }

    /// The pod numbers of every cohort, one range each.
    pub fn ranges(&self) -> Vec<PodRange> {
        self.cohorts.iter().map(|(first, c)| *first..first + c.count).collect()
    }

    /// Every pod: its number and cohort.
    pub fn pods(&self) -> impl Iterator<Item = (u64, &Cohort)> + '_ {
        self.cohorts.iter().flat_map(|(first, c)| (*first..first + c.count).map(move |n| (n, c)))
    }

    /// The labels and annotations of pod number `pod` of `cohort`.
    pub fn meta<'a>(&'a self, pod: u64, cohort: &'a Cohort) -> &'a PodMeta {
        self.patched.get(&pod).unwrap_or(&cohort.meta)
    }

    /// Merge-patches the labels and annotations of pod number `pod`; whether it exists and
    /// changed.
    pub fn patch_meta(&mut self, pod: u64, patch: &MetadataPatch) -> bool {
        let Some(cohort) = self.cohort_of(pod) else { return false };
        let mut meta = self.meta(pod, cohort).clone();
        if !patch.apply(&mut meta.labels, &mut meta.annotations) {
            return false;
        }
        self.patched.insert(pod, meta);
        true
    }

    /// The cohort of pod number `pod`.
    pub fn cohort_of(&self, pod: u64) -> Option<&Cohort> {
        self.cohorts.range(..=pod).next_back().filter(|(first, c)| pod < *first + c.count).map(|(_, c)| c)
    }
}

/// The name of pod number `pod` of ReplicaSet `rs`.
pub fn pod_name(rs: &str, pod: u64) -> String {
    format!("{rs}-{pod:05}")
}

/// The ReplicaSet name and pod number in a pod name made by [`pod_name`].
pub fn parse_pod_name(name: &str) -> Option<(&str, u64)> {
    let (rs, n) = name.rsplit_once('-')?;
    Some((rs, n.parse().ok()?))
}

/// A pod as the API server would return it.
pub fn kube_pod(
    rs: &str,
    pod: u64,
    cohort: &Cohort,
    namespace: &str,
    meta: &PodMeta,
    now: Timestamp,
) -> Pod {
    let ready = cohort.is_ready(now);
    let since = if ready { cohort.ready_at.unwrap_or(cohort.created) } else { cohort.created };
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(rs, pod)),
            namespace: Some(namespace.to_string()),
            labels: meta.labels.clone(),
            annotations: meta.annotations.clone(),
            creation_timestamp: Some(to_kube_time(cohort.created)),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: rs.to_string(),
                uid: format!("uid-rs-{rs}"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some(if ready { "Running" } else { "Pending" }.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(to_kube_time(since)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(0);

    #[test]
    fn two_billion_replicas_are_one_cohort() {
        let mut s = PodSet::default();
        s.create(1, i32::MAX as u64, T0, Some(T0.plus(Seconds(1))), PodMeta::default());
        assert_eq!((s.len(), s.ready(T0), s.ready(T0.plus(Seconds(1)))), (i32::MAX as u64, 0, i32::MAX as u64));
        assert_eq!(s.cohorts.len(), 1);
    }

    #[test]
    fn not_ready_pods_go_first_then_the_newest() {
        let mut s = PodSet::default();
        s.create(1, 3, T0, Some(T0.plus(Seconds(1))), PodMeta::default());
        s.create(4, 2, T0.plus(Seconds(5)), Some(T0.plus(Seconds(6))), PodMeta::default());
        s.create(6, 2, T0.plus(Seconds(2)), None, PodMeta::default());
        let now = T0.plus(Seconds(10));
        assert_eq!(s.remove_newest(3, now), vec![6..8, 5..6]);
        assert_eq!(s.remove_newest(2, now), vec![4..5, 3..4]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn evicting_one_pod_splits_its_cohort() {
        let mut s = PodSet::default();
        s.create(10, 5, T0, None, PodMeta::default());
        assert!(s.remove_pod(12));
        assert!(!s.remove_pod(12));
        assert!(!s.remove_pod(15));
        assert_eq!(s.pods().map(|(n, _)| n).collect::<Vec<_>>(), vec![10, 11, 13, 14]);
    }

    #[test]
    fn a_patched_pod_keeps_its_metadata_until_it_goes() {
        let label = |v: &str| PodMeta { labels: Some([("role".to_string(), v.to_string())].into()), annotations: None };
        let mut s = PodSet::default();
        s.create(1, 3, T0, Some(T0), label("canary"));
        let patch = MetadataPatch { labels: [("role".to_string(), Some("stable".to_string()))].into(), ..MetadataPatch::default() };
        assert!(s.patch_meta(2, &patch));
        assert!(!s.patch_meta(2, &patch), "the same patch again changes nothing");
        assert!(!s.patch_meta(9, &patch), "no such pod");
        let roles = |s: &PodSet| s.pods().map(|(n, c)| s.meta(n, c).clone()).collect::<Vec<_>>();
        assert_eq!(roles(&s), vec![label("canary"), label("stable"), label("canary")]);
        assert!(s.remove_pod(2));
        s.create(2, 1, T0, Some(T0), label("canary"));
        assert_eq!(roles(&s), vec![label("canary"); 3], "a new pod with the same number is a new pod");
        assert!(s.patch_meta(3, &patch));
        s.remove_newest(1, T0);
        assert!(s.patched.is_empty(), "a removed pod's metadata goes with it");
    }

    #[test]
    fn pod_names_round_trip() {
        assert_eq!(parse_pod_name(&pod_name("demo-6f7c9", 42)), Some(("demo-6f7c9", 42)));
    }
}
