//! Arbitrary and malformed input for the no-panic and serde properties: random JSON,
//! valid manifests with fields replaced by random JSON, ReplicaSets / Services / Pods
//! with random numbers, random actions and events, and timestamps up to the `i64`
//! extremes.

use std::sync::Arc;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Affinity, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use proptest::sample::Index;
use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::AnalysisRun;
use rollouts_core::state::{Action, Event, EventType, MetadataPatch, Object, ObjectKind, ReplicaSetPatch, State, WakeReason};
use rollouts_core::time::Timestamp;
use serde_json::{json, Value};

use crate::spec::{self, ROLLOUT};

/// Strings that mean something to the core, mixed with random ones.
pub fn interesting_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9%.:/-]{0,12}",
        1 => prop::sample::select(vec![
            "", "25%", "25", "-5%", "1000000000000%", "abc", "1h", "10s", "-1s", "9999999999999h", "Rollout",
            "ReplicaSet", "demo", "demo-abc", "rollouts-pod-template-hash", "Paused", "CanaryPauseStep",
            "2024-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "NaN", "∞", "é",
        ])
        .prop_map(String::from),
        1 => any::<String>(),
    ]
    .boxed()
}

/// Numbers at the edges: 0, ±1, the `i32` / `i64` extremes, floats.
pub fn interesting_number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (-3i64..=60).prop_map(|n| json!(n)),
        1 => prop::sample::select(vec![
            i64::from(i32::MIN), i64::from(i32::MIN) + 1, -1, 100, 101, i64::from(i32::MAX),
            i64::from(i32::MAX) + 1, i64::MIN, i64::MAX,
        ])
        .prop_map(|n| json!(n)),
        1 => Just(json!(u64::MAX)),
        1 => any::<f64>().prop_filter("JSON has no NaN/inf", |f| f.is_finite()).prop_map(|f| json!(f)),
        1 => any::<i64>().prop_map(|n| json!(n)),
    ]
    .boxed()
}

/// A replica count or generation: mostly small, sometimes negative or huge.
pub fn count() -> BoxedStrategy<i32> {
    prop_oneof![
        4 => -2..=60i32,
        1 => prop::sample::select(vec![i32::MIN, i32::MIN + 1, -1, i32::MAX - 1, i32::MAX]),
        1 => any::<i32>(),
    ]
    .boxed()
}

/// Arbitrary JSON, nested up to a few levels.
pub fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        interesting_number(),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(interesting_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Every JSON pointer inside `v` (the root excluded).
pub fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, here: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let p = format!("{here}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    walk(c, p, out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let p = format!("{here}/{i}");
                    out.push(p.clone());
                    walk(c, p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// `manifest` with the values at some of its paths replaced by arbitrary JSON, and some
/// keys added to random maps.
pub fn mutate(manifest: Value) -> BoxedStrategy<Value> {
    (
        prop::collection::vec((any::<Index>(), json_value()), 1..4),
        prop::collection::vec((any::<Index>(), interesting_string(), json_value()), 0..2),
    )
        .prop_map(move |(replacements, additions)| {
            let mut v = manifest.clone();
            for (idx, new) in replacements {
                let paths = pointers(&v);
                if paths.is_empty() {
                    break;
                }
                if let Some(slot) = v.pointer_mut(&paths[idx.index(paths.len())]) {
                    *slot = new;
                }
            }
            for (idx, key, new) in additions {
                let maps: Vec<String> = std::iter::once(String::new())
                    .chain(pointers(&v))
                    .filter(|p| v.pointer(p).is_some_and(Value::is_object))
                    .collect();
                if let Some(Value::Object(m)) = v.pointer_mut(&maps[idx.index(maps.len())]) {
                    m.insert(key, new);
                }
            }
            v
        })
        .boxed()
}

/// A Rollout object as the core may receive it: arbitrary JSON, a valid generated
/// rollout (with or without a random status), or a valid rollout with fields replaced.
pub fn rollout_json() -> BoxedStrategy<Value> {
    let valid = || spec::any_rollout(-2..=60, spec::IMAGES.len()).prop_map(|r| r.manifest());
    prop_oneof![
        1 => json_value(),
        2 => valid(),
        2 => (valid(), status_json()).prop_map(|(mut m, s)| {
            m["status"] = s;
            m
        }),
        4 => valid().prop_flat_map(mutate),
    ]
    .boxed()
}

/// A plausible or implausible Rollout status.
pub fn status_json() -> BoxedStrategy<Value> {
    (
        any::<bool>(),
        prop::option::of(interesting_number()),
        interesting_string(),
        interesting_string(),
        prop::option::of(interesting_string()),
        any::<bool>(),
        interesting_number(),
    )
        .prop_map(|(abort, index, stable, current, pause_time, promote_full, n)| {
            let mut s = json!({
                "abort": abort,
                "stableRS": stable,
                "currentPodHash": current,
                "promoteFull": promote_full,
                "replicas": n,
                "availableReplicas": n,
                "observedGeneration": "1",
            });
            if let Some(i) = index {
                s["currentStepIndex"] = i;
            }
            if let Some(t) = pause_time {
                s["pauseConditions"] = json!([{"reason": "CanaryPauseStep", "startTime": t}]);
                s["controllerPause"] = json!(true);
            }
            s
        })
        .boxed()
}

/// A ReplicaSet of the rollout (or not) with random counts, hash, revision, times and
/// annotations, built from JSON; `None` when the JSON does not decode as a ReplicaSet.
pub fn replica_set() -> BoxedStrategy<Option<ReplicaSet>> {
    (
        prop::sample::select(vec!["demo-a", "demo-b", "demo-c", "other"]),
        prop::sample::select(vec!["a", "b", "c", ""]),
        prop::collection::vec(count(), 5),
        prop::option::of(interesting_string()),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            "2024-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "9999-12-30T00:00:00Z",
            "2024-01-01T00:10:00Z",
        ])),
        prop::option::of(interesting_string()),
        0..spec::IMAGES.len(),
    )
        .prop_map(|(name, hash, n, revision, owned, created, deadline, image)| {
            let mut labels = json!({"app": ROLLOUT});
            if !hash.is_empty() {
                labels["rollouts-pod-template-hash"] = json!(hash);
            }
            let mut annotations = json!({});
            if let Some(r) = revision {
                annotations["rollout.argoproj.io/revision"] = json!(r);
            }
            if let Some(d) = deadline {
                annotations["scale-down-deadline"] = json!(d);
            }
            let mut template = spec::template(spec::IMAGES[image]);
            template["metadata"]["labels"] = labels.clone();
            let mut v = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name, "namespace": "default", "labels": labels, "annotations": annotations,
                    "generation": n[4],
                },
                "spec": {"replicas": n[0], "selector": {"matchLabels": labels}, "template": template,
                         "minReadySeconds": n[4]},
                "status": {"replicas": n[1], "readyReplicas": n[2], "availableReplicas": n[3],
                           "observedGeneration": n[4]},
            });
            if owned {
                v["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": ROLLOUT,
                    "uid": format!("uid-rollout-{ROLLOUT}"), "controller": true, "blockOwnerDeletion": true,
                }]);
            }
            if let Some(c) = created {
                v["metadata"]["creationTimestamp"] = json!(c);
            }
            serde_json::from_value(v).ok()
        })
        .boxed()
}

/// A Service with a random name, selector hash and managed-by annotation.
pub fn service() -> BoxedStrategy<Service> {
    (
        prop::sample::select(vec![
            spec::ACTIVE_SERVICE,
            spec::PREVIEW_SERVICE,
            spec::CANARY_SERVICE,
            spec::STABLE_SERVICE,
            "other",
        ]),
        prop::option::of(prop::sample::select(vec!["a", "b", "c", ""])),
        prop::option::of(prop::sample::select(vec![ROLLOUT, "someone-else"])),
    )
        .prop_map(|(name, hash, managed)| {
            let mut v = spec::service_manifest(name);
            v["metadata"]["namespace"] = json!("default");
            if let Some(h) = hash {
                v["spec"]["selector"]["rollouts-pod-template-hash"] = json!(h);
            }
            if let Some(m) = managed {
                v["metadata"]["annotations"] = json!({"argo-rollouts.argoproj.io/managed-by-rollouts": m});
            }
            serde_json::from_value(v).unwrap_or_default()
        })
        .boxed()
}

/// A Pod of one of the ReplicaSets (or of none), ready or not.
pub fn pod() -> BoxedStrategy<Pod> {
    (
        "[a-z]{1,3}",
        prop::sample::select(vec!["demo-a", "demo-b", "other", ""]),
        any::<bool>(),
        prop::sample::select(vec!["2024-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-30T00:00:00Z"]),
    )
        .prop_map(|(name, owner, ready, time)| {
            let v = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": format!("{owner}-{name}"), "namespace": "default", "labels": {"app": ROLLOUT},
                    "creationTimestamp": time,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                         "uid": format!("uid-rs-{owner}"), "controller": true}],
                },
                "status": {"phase": if ready { "Running" } else { "Pending" },
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                           "lastTransitionTime": time}]},
            });
            serde_json::from_value(v).unwrap_or_default()
        })
        .boxed()
}

/// Timestamps anywhere in `i64`, with the extremes and the simulation epoch favoured.
pub fn any_timestamp() -> BoxedStrategy<Timestamp> {
    prop_oneof![
        2 => (1_704_067_200i64..1_704_067_200 + 86_400 * 30).prop_map(Timestamp),
        1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, 253_402_300_799, 253_402_300_800, i64::MAX - 1, i64::MAX])
            .prop_map(Timestamp),
        1 => any::<i64>().prop_map(Timestamp),
    ]
    .boxed()
}

/// Timestamps Kubernetes can represent (years 1970–9999): those serialize losslessly.
pub fn k8s_timestamp() -> BoxedStrategy<Timestamp> {
    prop_oneof![
        3 => (1_704_067_200i64..1_704_067_200 + 86_400 * 30).prop_map(Timestamp),
        1 => (0i64..=253_402_300_799).prop_map(Timestamp),
        1 => prop::sample::select(vec![0i64, 253_402_300_799]).prop_map(Timestamp),
    ]
    .boxed()
}

/// The anti-affinity the core injects: preferred, against the stable hash.
pub fn anti_affinity() -> Affinity {
    serde_json::from_value(json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 10,
        "podAffinityTerm": {
            "labelSelector": {"matchExpressions": [{"key": "rollouts-pod-template-hash", "operator": "In", "values": ["a"]}]},
            "namespaces": ["default"],
            "topologyKey": "kubernetes.io/hostname",
        },
    }]}}))
    .unwrap_or_default()
}

/// A Job with just a name.
pub fn job(name: &str) -> Job {
    Job { metadata: ObjectMeta { name: Some(name.to_string()), ..ObjectMeta::default() }, ..Job::default() }
}

/// An AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate (arbitrary JSON, or a
/// named object with an arbitrary spec) or a Job. Analysis is not generated for the
/// rollouts, but the core must take any of these in its stride.
pub fn analysis_object() -> BoxedStrategy<Object> {
    let named = |kind: &'static str| {
        (prop::sample::select(vec!["demo-a-1", "t", ""]), json_value()).prop_map(move |(name, spec)| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec})
        })
    };
    prop_oneof![
        prop_oneof![json_value(), named("AnalysisRun")].prop_map(Object::AnalysisRun),
        prop_oneof![json_value(), named("AnalysisTemplate")].prop_map(Object::AnalysisTemplate),
        prop_oneof![json_value(), named("ClusterAnalysisTemplate")].prop_map(Object::ClusterAnalysisTemplate),
        prop::sample::select(vec!["demo-a-1-job", "x"]).prop_map(|n| Object::Job(Box::new(job(n)))),
    ]
    .boxed()
}

/// A wake reason.
pub fn wake_reason() -> BoxedStrategy<WakeReason> {
    prop::sample::select(vec![
        WakeReason::PauseStepElapsed,
        WakeReason::AutoPromotion,
        WakeReason::ScaleDownDeadline,
        WakeReason::ProgressDeadline,
        WakeReason::Restart,
    ])
    .boxed()
}

/// Labels and annotations to set or remove.
pub fn metadata_patch() -> BoxedStrategy<MetadataPatch> {
    let keys = || prop::collection::btree_map("[a-z./-]{1,10}", prop::option::of(interesting_string()), 0..3);
    (keys(), keys()).prop_map(|(labels, annotations)| MetadataPatch { labels, annotations }).boxed()
}

/// Any action, with timestamps drawn from `time`.
pub fn action(time: BoxedStrategy<Timestamp>) -> BoxedStrategy<Action> {
    let names = || prop::sample::select(vec!["demo-a", "demo-b", "x", ""]).prop_map(String::from);
    prop_oneof![
        replica_set()
            .prop_filter_map("decodes", |rs| rs)
            .prop_map(|rs| Action::CreateReplicaSet { replica_set: Box::new(rs) }),
        (
            names(),
            prop::option::of(any::<i32>()),
            prop::collection::btree_map("[a-z./-]{1,10}", prop::option::of(interesting_string()), 0..3),
            prop::option::of(any::<i32>()),
            prop_oneof![Just(None), Just(Some(None)), Just(Some(Some(Box::new(anti_affinity()))))],
            metadata_patch(),
        )
            .prop_map(|(name, replicas, annotations, min_ready_seconds, affinity, template_metadata)| Action::PatchReplicaSet {
                name,
                patch: ReplicaSetPatch { replicas, annotations, min_ready_seconds, affinity, template_metadata },
            }),
        names().prop_map(|name| Action::DeleteReplicaSet { name }),
        (names(), interesting_string(), prop::option::of(interesting_string()))
            .prop_map(|(service, hash, managed_by)| Action::SetServiceSelector { service, hash, managed_by }),
        json_value().prop_map(|v| Action::PatchRolloutStatus { patch: json!({ "status": v }) }),
        json_value().prop_map(|patch| Action::PatchRollout { patch }),
        names().prop_map(|name| Action::EvictPod { name }),
        (names(), metadata_patch()).prop_map(|(name, patch)| Action::PatchPodMetadata { name, patch }),
        names().prop_map(|name| Action::CreateAnalysisRun {
            run: Box::new(AnalysisRun {
                metadata: ObjectMeta { name: Some(name), ..ObjectMeta::default() },
                ..AnalysisRun::default()
            }),
        }),
        (names(), json_value()).prop_map(|(name, patch)| Action::PatchAnalysisRun { name, patch }),
        names().prop_map(|name| Action::DeleteAnalysisRun { name }),
        (names(), "[a-z-]{0,8}", any::<i32>()).prop_map(|(run, metric, index)| Action::Measure {
            run,
            metric,
            index,
            provider: Box::default(),
            secrets: BTreeMap::new(),
            context: Default::default(),
        }),
        names().prop_map(|name| Action::CreateJob { job: Box::new(job(&name)) }),
        names().prop_map(|name| Action::DeleteJob { name }),
        (any::<bool>(), interesting_string(), interesting_string()).prop_map(|(w, reason, message)| {
            Action::RecordEvent { kind: if w { EventType::Warning } else { EventType::Normal }, reason, message }
        }),
        (time, wake_reason()).prop_map(|(at, reason)| Action::WakeAt { at, reason }),
    ]
    .boxed()
}

/// An object the core may be told about, or a deletion: `Applied` with a rollout from
/// [`rollout_json`], a random ReplicaSet, Service or Pod; `Deleted`; `Tick`;
/// `ActionFailed` of a random action.
pub fn event(time: BoxedStrategy<Timestamp>) -> BoxedStrategy<Event> {
    let kind = prop::sample::select(vec![
        ObjectKind::Rollout,
        ObjectKind::ReplicaSet,
        ObjectKind::Service,
        ObjectKind::Pod,
        ObjectKind::AnalysisRun,
        ObjectKind::AnalysisTemplate,
        ObjectKind::ClusterAnalysisTemplate,
        ObjectKind::Job,
    ]);
    prop_oneof![
        2 => rollout_json().prop_map(|v| Event::Applied(Object::Rollout(v.into()))),
        3 => replica_set().prop_filter_map("decodes", |rs| rs).prop_map(|rs| Event::Applied(Object::ReplicaSet(Arc::new(rs)))),
        1 => service().prop_map(|s| Event::Applied(Object::Service(Arc::new(s)))),
        1 => pod().prop_map(|p| Event::Applied(Object::Pod(Arc::new(p)))),
        1 => analysis_object().prop_map(Event::Applied),
        1 => ("[a-z-]{0,8}", "[a-z-]{0,8}", any::<i32>(), json_value(), prop::option::of(interesting_string()))
            .prop_map(|(run, metric, index, value, error)| Event::Measured {
                run,
                metric,
                index,
                answer: MeasurementAnswer { value, error, ..MeasurementAnswer::default() },
            }),
        1 => (kind, prop::sample::select(vec!["demo", "demo-a", "demo-b", "demo-active", "x"]))
            .prop_map(|(kind, name)| Event::Deleted { kind, name: name.into() }),
        2 => Just(Event::Tick),
        1 => Just(Event::Resync),
        1 => (action(time), interesting_string())
            .prop_map(|(a, error)| Event::ActionFailed { action: Box::new(a), error }),
    ]
    .boxed()
}

/// A State assembled from random parts: a decoded rollout (maybe), ReplicaSets, Services
/// and Pods, keyed by name as the core keys them.
pub fn state() -> BoxedStrategy<State> {
    (
        prop::option::of(rollout_json()),
        prop::collection::vec(replica_set(), 0..4),
        prop::collection::vec(service(), 0..3),
        prop::collection::vec(pod(), 0..3),
    )
        .prop_map(|(rollout, rss, svcs, pods)| {
            let (rollout, spec_error) = match rollout {
                Some(v) => {
                    let (r, e) = rollouts_core::rollout::decode_rollout(&v);
                    (Some(r), e)
                }
                None => (None, None),
            };
            let replica_sets: BTreeMap<String, Arc<ReplicaSet>> =
                rss.into_iter().flatten().map(|r| (r.metadata.name.clone().unwrap_or_default(), Arc::new(r))).collect();
            let services = svcs.into_iter().map(|s| (s.metadata.name.clone().unwrap_or_default(), Arc::new(s))).collect();
            let pods = pods.into_iter().map(|p| (p.metadata.name.clone().unwrap_or_default(), Arc::new(p))).collect();
            State { rollout, spec_error, replica_sets, services, pods, ..State::default() }
        })
        .boxed()
}
