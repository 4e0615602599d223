//! Ephemeral metadata (Argo's rule set M.1): the labels and annotations of
//! `canaryMetadata`/`stableMetadata` (canary) and `previewMetadata`/`activeMetadata`
//! (blue-green), put on the pods of the ReplicaSet that has that role now and moved in
//! place when the role changes. Nothing here touches the pod template the hash is
//! computed from (the Rollout's own): a ReplicaSet keeps its name and hash, its pods keep
//! running.
//!
//! A ReplicaSet's pod template gets the metadata (so pods it creates later have it) and
//! the `rollout.argoproj.io/ephemeral-metadata` annotation records what was injected, so
//! that keys no longer wanted can be removed without touching labels someone else put on
//! the pods (a sidecar injector's, the template's own). Then every existing pod of a
//! ReplicaSet with a non-zero size is patched.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Deserialize;

use super::context::Ctx;
use crate::api::{keys, PodTemplateMetadata, RolloutSpec};
use crate::objects::{pod_owner, ReplicaSetExt};
use crate::state::{Action, MetadataPatch, ReplicaSetPatch};

/// The (new or canary / preview, stable / active) metadata the strategy configures; `None`
/// when it configures neither (then nothing is reconciled, not even a removal).
fn configured(spec: &RolloutSpec) -> Option<(Option<&PodTemplateMetadata>, Option<&PodTemplateMetadata>)> {
    let (canary, stable) = if let Some(c) = spec.canary() {
        (c.canary_metadata.as_ref(), c.stable_metadata.as_ref())
    } else if let Some(b) = spec.blue_green() {
        (b.preview_metadata.as_ref(), b.active_metadata.as_ref())
    } else {
        return None;
    };
    (canary.is_some() || stable.is_some()).then_some((canary, stable))
}

/// Whether the spec configures ephemeral metadata (the simulator then shows the rollout's
/// controller its pods, as a real cluster's watch does).
pub fn configures_ephemeral_metadata(spec: &RolloutSpec) -> bool {
    configured(spec).is_some()
}

/// What the ReplicaSet's annotation says the controller injected; `None` without the
/// annotation or when it does not read as metadata (as in Argo, which then removes
/// nothing). Unknown fields are ignored, as Go's decoder does.
pub(crate) fn injected(rs: &ReplicaSet) -> Option<PodTemplateMetadata> {
    #[derive(Deserialize)]
    struct Recorded {
        #[serde(default)]
        labels: Option<BTreeMap<String, String>>,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    let text = rs.annotation(keys::EPHEMERAL_METADATA)?;
    let r: Recorded = serde_json::from_str(text).ok()?;
    Some(PodTemplateMetadata { labels: r.labels.unwrap_or_default(), annotations: r.annotations.unwrap_or_default() })
}

/// What makes an object's `labels` and `annotations` carry `desired`, and no longer carry
/// the keys `injected` put there that `desired` does not want (Argo's
/// `SyncEphemeralPodMetadata`). Keys nobody injected are never removed.
///
/// Divergence from Argo: a desired empty value (`role: ""`) is added to an object without
/// the key; Argo compares with Go's zero value and so never adds it.
pub(crate) fn metadata_patch(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
    injected: Option<&PodTemplateMetadata>,
    desired: Option<&PodTemplateMetadata>,
) -> MetadataPatch {
    fn one(
        current: Option<&BTreeMap<String, String>>,
        injected: Option<&BTreeMap<String, String>>,
        desired: Option<&BTreeMap<String, String>>,
        out: &mut BTreeMap<String, Option<String>>,
    ) {
        for (k, v) in desired.into_iter().flatten() {
            if current.and_then(|c| c.get(k)) != Some(v) {
                out.insert(k.clone(), Some(v.clone()));
            }
        }
        for k in injected.into_iter().flat_map(BTreeMap::keys) {
            let wanted = desired.is_some_and(|d| d.contains_key(k));
            if !wanted && current.is_some_and(|c| c.contains_key(k)) {
                out.insert(k.clone(), None);
            }
        }
    }
    let mut patch = MetadataPatch::default();
    one(labels, injected.map(|i| &i.labels), desired.map(|d| &d.labels), &mut patch.labels);
    one(annotations, injected.map(|i| &i.annotations), desired.map(|d| &d.annotations), &mut patch.annotations);
    patch
}

/// The ReplicaSet's pod template without the metadata the controller injected, for
/// comparing it with the Rollout's template (Argo strips it the same way).
pub fn template_without_injected(rs: &ReplicaSet) -> Option<Cow<'_, PodTemplateSpec>> {
    let template = rs.spec.as_ref()?.template.as_ref()?;
    let Some(injected) = injected(rs) else { return Some(Cow::Borrowed(template)) };
    let meta = template.metadata.as_ref();
    let patch = metadata_patch(meta.and_then(|m| m.labels.as_ref()), meta.and_then(|m| m.annotations.as_ref()), Some(&injected), None);
    if patch.is_empty() {
        return Some(Cow::Borrowed(template));
    }
    let mut stripped = template.clone();
    let meta = stripped.metadata.get_or_insert_with(Default::default);
    patch.apply(&mut meta.labels, &mut meta.annotations);
    Some(Cow::Owned(stripped))
}

/// The template a new ReplicaSet is created with: the Rollout's, plus the metadata of the
/// role it starts in (canary / preview when a stable ReplicaSet exists, else stable /
/// active), recorded in `annotations`.
pub(super) fn inject_into_new(
    spec: &RolloutSpec,
    has_stable: bool,
    template: &mut PodTemplateSpec,
    annotations: &mut BTreeMap<String, String>,
) {
    let Some((canary, stable)) = configured(spec) else { return };
    let desired = if has_stable { canary } else { stable };
    let meta = template.metadata.get_or_insert_with(Default::default);
    let patch = metadata_patch(meta.labels.as_ref(), meta.annotations.as_ref(), None, desired);
    if patch.is_empty() {
        return;
    }
    patch.apply(&mut meta.labels, &mut meta.annotations);
    if let Some(d) = desired {
        annotations.insert(keys::EPHEMERAL_METADATA.to_string(), recorded(d));
    }
}

/// The annotation's value: the metadata as JSON (labels first, keys sorted, as Go writes it).
fn recorded(metadata: &PodTemplateMetadata) -> String {
    serde_json::to_string(metadata).unwrap_or_default()
}

impl Ctx<'_> {
    /// Argo's `reconcileEphemeralMetadata`: fully rolled out (no stable, or the stable is
    /// the new ReplicaSet), the new ReplicaSet gets the stable / active metadata; during an
    /// update it gets the canary / preview metadata and the stable ReplicaSet the stable /
    /// active one. Every other ReplicaSet loses what was injected.
    pub(super) fn reconcile_ephemeral_metadata(&mut self) {
        let Some((canary, stable)) = configured(&self.ro.spec) else { return };
        let (canary, stable) = (canary.cloned(), stable.cloned());
        let stable_hash = self.ro.status.stable_rs.as_str();
        let fully_rolled_out = stable_hash.is_empty() || self.new_rs().is_some_and(|rs| rs.pod_hash() == stable_hash);
        let (new_rs, stable_rs) = (self.new_rs.clone(), self.stable_rs.clone());
        if fully_rolled_out {
            self.sync_ephemeral_metadata(new_rs.as_deref(), stable.as_ref());
        } else {
            self.sync_ephemeral_metadata(new_rs.as_deref(), canary.as_ref());
            self.sync_ephemeral_metadata(stable_rs.as_deref(), stable.as_ref());
        }
        for other in self.other_rs.clone() {
            self.sync_ephemeral_metadata(Some(&other), None);
        }
    }

    /// Argo's `syncEphemeralMetadata`: the ReplicaSet's template first (so pods created
    /// meanwhile get the new metadata), then each of its pods, when it has a size. The
    /// pods are compared with what the ReplicaSet recorded *before* this change, so keys
    /// injected under the previous role are removed from them.
    fn sync_ephemeral_metadata(&mut self, name: Option<&str>, desired: Option<&PodTemplateMetadata>) {
        let Some((name, rs)) = name.and_then(|n| Some((n.to_string(), self.rs(n)?))) else { return };
        let injected = injected(rs);
        let meta = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref());
        let template_patch =
            metadata_patch(meta.and_then(|m| m.labels.as_ref()), meta.and_then(|m| m.annotations.as_ref()), injected.as_ref(), desired);
        let sized = rs.spec_replicas() > 0;
        if !template_patch.is_empty() {
            let mut patch = ReplicaSetPatch { template_metadata: template_patch, ..ReplicaSetPatch::default() };
            patch.annotations.insert(keys::EPHEMERAL_METADATA.to_string(), desired.map(recorded));
            self.patch_rs(&name, patch);
        }
        if !sized {
            return;
        }
        let pods: Vec<(String, MetadataPatch)> = self
            .state
            .pods
            .iter()
            .filter(|(_, p)| pod_owner(p) == Some(name.as_str()))
            .filter_map(|(pod, p)| {
                let m = &p.metadata;
                let patch = metadata_patch(m.labels.as_ref(), m.annotations.as_ref(), injected.as_ref(), desired);
                (!patch.is_empty()).then(|| (pod.clone(), patch))
            })
            .collect();
        for (pod, patch) in pods {
            if let Some(p) = self.state.pods.get_mut(&pod).map(std::sync::Arc::make_mut) {
                patch.apply(&mut p.metadata.labels, &mut p.metadata.annotations);
            }
            self.actions.push(Action::PatchPodMetadata { name: pod, patch });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sim::{parse_scenario, simulate, Simulation, SIMULATION_EPOCH};
    use crate::state::{Event, Object};
    use crate::time::Seconds;

    const CANARY: &str = include_str!("../../../fixtures/scenarios/ephemeral-metadata-canary-moves-to-stable.yaml");
    const CHANGED: &str = include_str!("../../../fixtures/scenarios/ephemeral-metadata-canary-changed-keys-replaced-in-place.yaml");
    const BLUE_GREEN: &str = include_str!("../../../fixtures/scenarios/ephemeral-metadata-bluegreen-preview-then-active.yaml");

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> PodTemplateMetadata {
        PodTemplateMetadata { labels: map(pairs), annotations: BTreeMap::new() }
    }

    /// The scenario cut at `until` (its expectations dropped).
    fn run_until(text: &str, until: &str) -> Simulation {
        let mut scenario = parse_scenario(text).expect("the fixture parses");
        scenario.expect.clear();
        scenario.until = Some(crate::time::parse_duration(until).expect("a duration"));
        simulate(&scenario).expect("the fixture simulates")
    }

    use crate::rollout::restarted;

    fn mutating(actions: &[Action]) -> Vec<&Action> {
        actions.iter().filter(|a| a.is_mutating()).collect()
    }

    #[test]
    fn the_patch_sets_what_is_desired_and_removes_only_what_was_injected() {
        let current = map(&[("app", "web"), ("role", "canary"), ("sidecar", "istio"), ("old", "x")]);
        let injected = labels(&[("role", "canary"), ("old", "x"), ("gone", "y")]);
        let desired = labels(&[("role", "stable"), ("new", "")]);
        let patch = metadata_patch(Some(&current), None, Some(&injected), Some(&desired));
        let want: BTreeMap<String, Option<String>> = [
            ("new", Some("")), // an empty value is still added (Argo never adds it)
            ("old", None),
            ("role", Some("stable")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect();
        assert_eq!(patch.labels, want, "app and sidecar were never injected; gone is not there");
        assert!(patch.annotations.is_empty());
        let (mut l, mut a) = (Some(current), None);
        assert!(patch.apply(&mut l, &mut a));
        assert_eq!(l, Some(map(&[("app", "web"), ("new", ""), ("role", "stable"), ("sidecar", "istio")])));
        assert!(metadata_patch(l.as_ref(), None, Some(&desired), Some(&desired)).is_empty(), "in place: nothing more to do");
        let removal = metadata_patch(l.as_ref(), None, Some(&desired), None);
        assert_eq!(removal.labels.keys().collect::<Vec<_>>(), ["new", "role"], "no metadata wanted: the injected keys go");
    }

    #[test]
    fn the_recorded_metadata_reads_back_and_a_broken_record_removes_nothing() {
        let mut rs = ReplicaSet::default();
        let recorded_value = recorded(&PodTemplateMetadata { labels: map(&[("b", "2"), ("a", "1")]), annotations: map(&[("n", "v")]) });
        assert_eq!(recorded_value, r#"{"labels":{"a":"1","b":"2"},"annotations":{"n":"v"}}"#, "Go's field order and sorted keys");
        for (text, want) in [
            (recorded_value.as_str(), Some(PodTemplateMetadata { labels: map(&[("a", "1"), ("b", "2")]), annotations: map(&[("n", "v")]) })),
            (r#"{"labels":{"a":"1"},"future":true}"#, Some(labels(&[("a", "1")]))),
            ("{}", Some(PodTemplateMetadata::default())),
            ("not json", None),
        ] {
            rs.metadata.annotations = Some(map(&[(keys::EPHEMERAL_METADATA, text)]));
            assert_eq!(injected(&rs), want, "{text}");
        }
    }

    #[test]
    fn a_merge_patch_of_a_replica_set_carries_template_metadata_beside_the_affinity() {
        let patch = ReplicaSetPatch {
            affinity: Some(None),
            template_metadata: MetadataPatch {
                labels: [("role".to_string(), None), ("role2".to_string(), Some("x".to_string()))].into(),
                ..MetadataPatch::default()
            },
            ..ReplicaSetPatch::default()
        };
        assert_eq!(
            patch.to_merge_patch(),
            serde_json::json!({"spec": {"template": {"spec": {"affinity": null}, "metadata": {"labels": {"role": null, "role2": "x"}}}}})
        );
        let text = serde_json::to_string(&patch).unwrap();
        assert_eq!(serde_json::from_str::<ReplicaSetPatch>(&text).unwrap(), patch, "{text}");
    }

    /// The same scenarios without any ephemeral metadata create the very same ReplicaSets
    /// (names, hence pod-template hashes) and run the same timeline.
    #[test]
    fn ephemeral_metadata_never_changes_a_hash_nor_the_timeline() {
        for text in [CANARY, CHANGED, BLUE_GREEN] {
            let mut with = parse_scenario(text).unwrap();
            with.expect.clear();
            let mut without = with.clone();
            let strip = |v: &mut serde_json::Value| {
                for strategy in ["canary", "blueGreen"] {
                    if let Some(s) = v.pointer_mut(&format!("/spec/strategy/{strategy}")).and_then(serde_json::Value::as_object_mut) {
                        for key in ["canaryMetadata", "stableMetadata", "previewMetadata", "activeMetadata"] {
                            s.remove(key);
                        }
                    }
                }
            };
            without.objects.iter_mut().for_each(strip);
            without.events.iter_mut().filter_map(|e| e.apply.as_mut()).for_each(strip);
            let (a, b) = (simulate(&with).unwrap(), simulate(&without).unwrap());
            let sets = |s: &Simulation| s.objects.keys().filter(|k| k.starts_with("ReplicaSet/")).cloned().collect::<Vec<_>>();
            assert_eq!(sets(&a), sets(&b), "{:?}", with.name);
            assert_eq!(serde_json::to_value(&a.timeline).unwrap(), serde_json::to_value(&b.timeline).unwrap(), "{:?}", with.name);
            assert!(a.objects.keys().any(|k| k.starts_with("Pod/")), "the pods of a rollout with ephemeral metadata are shown");
            assert!(!b.objects.keys().any(|k| k.starts_with("Pod/")), "other pods are not");
        }
    }

    /// Level-triggered and restart-safe: a controller restarted on what each scenario leaves
    /// (pods included) finds every label in place and changes nothing.
    #[test]
    fn a_restarted_controller_finds_the_metadata_in_place() {
        for (text, until) in [(CANARY, "15s"), (CANARY, "60s"), (CHANGED, "25s"), (CHANGED, "60s"), (BLUE_GREEN, "15s"), (BLUE_GREEN, "25s")] {
            let sim = run_until(text, until);
            let now = SIMULATION_EPOCH.plus(Seconds(sim.outcome.t));
            for objects in sim.final_objects.values() {
                assert!(objects.iter().any(|o| matches!(o, Object::Pod(_))), "the pods are listed");
                let (_, actions) = restarted(objects, now);
                assert!(mutating(&actions).is_empty(), "{until}: {:#?}", mutating(&actions));
            }
        }
    }

    /// A changed `canaryMetadata` (no template change): the canary ReplicaSet's template is
    /// patched first, then its pod, in place; nothing is created and the hash stays.
    #[test]
    fn changed_metadata_patches_the_replica_set_then_its_pods() {
        let sim = run_until(CANARY, "15s");
        let now = SIMULATION_EPOCH.plus(Seconds(15));
        let objects = &sim.final_objects["ephemeral-label"];
        let (state, _) = restarted(objects, now);
        let mut rollout = objects
            .iter()
            .find_map(|o| if let Object::Rollout(v) = o { Some((**v).clone()) } else { None })
            .unwrap();
        rollout["spec"]["strategy"]["canary"]["canaryMetadata"] = serde_json::json!({"labels": {"role2": "canary2"}, "annotations": {"note": "x"}});
        rollout["metadata"]["generation"] = serde_json::json!(3);
        let (state, actions) = crate::step(state, Event::Applied(Object::Rollout(rollout.into())), now);
        let canary_rs = "ephemeral-label-679dc4d6b9";
        let changes: Vec<&Action> = mutating(&actions).into_iter().filter(|a| !matches!(a, Action::PatchRolloutStatus { .. })).collect();
        let want_template = MetadataPatch {
            labels: [("role".to_string(), None), ("role2".to_string(), Some("canary2".to_string()))].into(),
            annotations: [("note".to_string(), Some("x".to_string()))].into(),
        };
        let want_rs = ReplicaSetPatch {
            annotations: [(keys::EPHEMERAL_METADATA.to_string(), Some(r#"{"labels":{"role2":"canary2"},"annotations":{"note":"x"}}"#.to_string()))]
                .into(),
            template_metadata: want_template.clone(),
            ..ReplicaSetPatch::default()
        };
        assert_eq!(
            changes,
            [
                &Action::PatchReplicaSet { name: canary_rs.into(), patch: want_rs },
                &Action::PatchPodMetadata { name: format!("{canary_rs}-00003"), patch: want_template },
            ],
            "the stable ReplicaSet and its pod already carry role=stable"
        );
        let ro = state.rollout.as_ref().unwrap();
        assert_eq!(ro.status.current_pod_hash, "679dc4d6b9");
        assert_eq!(state.replica_sets.len(), 2);
        let (_, again) = crate::step(state, Event::Tick, now);
        assert!(mutating(&again).is_empty(), "applied optimistically, so not repeated: {again:#?}");
    }

    /// Pods of a ReplicaSet scaled to zero are left alone (Argo's `isZeroReplicaReplicaSet`);
    /// its template still loses the injected metadata.
    #[test]
    fn the_pods_of_a_replica_set_without_size_are_not_patched() {
        // The promoted canary at 25 s: the old ReplicaSet is at size 0 and cleaned. Put back
        // its injected label and one of its terminating pods, as they were at 15 s.
        let old_rs = "ephemeral-label-5d57d475fc";
        let pod = run_until(CANARY, "15s").final_objects["ephemeral-label"]
            .iter()
            .find(|o| matches!(o, Object::Pod(p) if p.metadata.name.as_deref() == Some("ephemeral-label-5d57d475fc-00001")))
            .cloned()
            .expect("the old pod at 15 s");
        let mut objects = run_until(CANARY, "25s").final_objects["ephemeral-label"].clone();
        for o in objects.iter_mut() {
            if let Object::ReplicaSet(rs) = o {
                if rs.metadata.name.as_deref() == Some(old_rs) {
                    let rs = std::sync::Arc::make_mut(rs);
                    assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(0));
                    rs.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(keys::EPHEMERAL_METADATA.into(), recorded(&labels(&[("role", "stable")])));
                    let meta = rs.spec.as_mut().unwrap().template.as_mut().unwrap().metadata.as_mut().unwrap();
                    meta.labels.get_or_insert_with(BTreeMap::new).insert("role".into(), "stable".into());
                }
            }
        }
        objects.push(pod);
        let (_, actions) = restarted(&objects, SIMULATION_EPOCH.plus(Seconds(25)));
        let template_patch = MetadataPatch { labels: [("role".to_string(), None)].into(), ..MetadataPatch::default() };
        assert!(
            actions.iter().any(|a| matches!(a, Action::PatchReplicaSet { name, patch } if name == old_rs && patch.template_metadata == template_patch)),
            "the template loses role=stable: {actions:#?}"
        );
        assert!(!actions.iter().any(|a| matches!(a, Action::PatchPodMetadata { .. })), "no pod is patched: {actions:#?}");
    }

    /// A ReplicaSet found by comparing templates (its hash label is not the computed one) is
    /// recognised although its template carries injected labels: no new ReplicaSet.
    #[test]
    fn a_replica_set_with_injected_metadata_is_recognised_by_its_template() {
        let sim = run_until(CANARY, "5s");
        let now = SIMULATION_EPOCH.plus(Seconds(5));
        let mut objects = sim.final_objects["ephemeral-label"].clone();
        for o in objects.iter_mut() {
            if let Object::ReplicaSet(rs) = o {
                let rs = std::sync::Arc::make_mut(rs);
                rs.metadata.labels.get_or_insert_with(BTreeMap::new).insert(keys::POD_TEMPLATE_HASH.into(), "argohash".into());
                let t = rs.spec.as_mut().unwrap().template.as_mut().unwrap();
                assert_eq!(t.metadata.as_ref().unwrap().labels.as_ref().unwrap().get("role").map(String::as_str), Some("stable"));
            }
        }
        let (_, actions) = restarted(&objects, now);
        assert!(!actions.iter().any(|a| matches!(a, Action::CreateReplicaSet { .. })), "{actions:#?}");
    }
}
