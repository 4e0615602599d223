//! Random Rollout specs, rendered as the manifests a user would apply.
//!
//! Every generated rollout is named [`ROLLOUT`], selects `app: demo`, and runs one
//! container [`CONTAINER`] with one of [`IMAGES`]. Few images, so that templates repeat:
//! setting an image back to an earlier one is a rollback to an existing ReplicaSet.

use proptest::prelude::*;
use serde_json::{json, Value};

/// Name of every generated rollout.
pub const ROLLOUT: &str = "demo";
/// Name of its only container.
pub const CONTAINER: &str = "app";
/// The images a rollout can run. The last one is the image scenarios may declare as
/// never becoming ready.
pub const IMAGES: [&str; 4] = ["example/app:1", "example/app:2", "example/app:3", "example/app:bad"];
/// Index in [`IMAGES`] of the image that can be made never-ready.
pub const BAD_IMAGE: usize = 3;

/// An `IntOrString` for `maxSurge` / `maxUnavailable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Amount {
    /// A plain integer (pods).
    Int(i32),
    /// `"N%"`.
    Percent(i32),
    /// `"N"`: a string without `%`, which Argo also reads as a percentage.
    BarePercent(i32),
}

impl Amount {
    /// The manifest value.
    pub fn to_json(&self) -> Value {
        match self {
            Amount::Int(n) => json!(n),
            Amount::Percent(p) => json!(format!("{p}%")),
            Amount::BarePercent(p) => json!(p.to_string()),
        }
    }

    /// Whether the literal value is zero (`0`, `"0%"`, `"0"`); Argo rejects both limits zero.
    pub fn is_literal_zero(&self) -> bool {
        matches!(self, Amount::Int(0) | Amount::Percent(0) | Amount::BarePercent(0))
    }
}

/// One canary step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepGen {
    /// `setWeight: N`.
    SetWeight(i32),
    /// `pause: {}` (until promoted).
    Pause,
    /// `pause: {duration: N}` (seconds, as an integer).
    PauseSeconds(i32),
    /// `pause: {duration: "Ns"}` (seconds, as a Go duration string).
    PauseDuration(i32),
    /// `experiment: {...}` (run by [`crate::experiments`] on the step-level driver, by the
    /// simulator's Experiment controller in a scenario).
    Experiment(ExperimentStepGen),
}

/// An `experiment` step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExperimentStepGen {
    /// Its templates (named `t0`, `t1`, ...).
    pub templates: Vec<ExperimentTemplateGen>,
    /// `duration` in seconds (a Go duration string).
    pub duration: Option<i32>,
    /// One analysis, its outcome scripted ([`crate::experiments::outcome_template`]).
    pub analysis: Option<ExperimentAnalysisGen>,
    /// `scaleDownDelaySeconds`.
    pub scale_down_delay_seconds: Option<i32>,
}

/// A template of an `experiment` step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExperimentTemplateGen {
    /// `specRef: stable` rather than `canary`.
    pub stable: bool,
    /// `replicas`.
    pub replicas: Option<i32>,
    /// `weight` (only behind the Gateway API).
    pub weight: Option<i32>,
}

/// The analysis of an `experiment` step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExperimentAnalysisGen {
    /// `requiredForCompletion`.
    pub required: bool,
    /// The phase its run ends in.
    pub outcome: rollouts_core::api::AnalysisPhase,
    /// Seconds from the run's start to its end.
    pub after: i64,
}

impl ExperimentStepGen {
    /// The step's manifest value.
    pub fn to_json(&self) -> Value {
        let templates: Vec<Value> = self
            .templates
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = json!({"name": format!("t{i}"), "specRef": if t.stable { "stable" } else { "canary" }});
                if let Some(r) = t.replicas {
                    v["replicas"] = json!(r);
                }
                if let Some(w) = t.weight {
                    v["weight"] = json!(w);
                }
                v
            })
            .collect();
        let mut e = json!({"templates": templates});
        if let Some(d) = self.duration {
            e["duration"] = json!(format!("{d}s"));
        }
        if let Some(d) = self.scale_down_delay_seconds {
            e["scaleDownDelaySeconds"] = json!(d);
        }
        if let Some(a) = &self.analysis {
            e["analyses"] = json!([{
                "name": "check",
                "templateName": crate::experiments::outcome_template(a.outcome, a.after),
                "requiredForCompletion": a.required,
            }]);
        }
        json!({"experiment": e})
    }
}

impl StepGen {
    /// The manifest value.
    pub fn to_json(&self) -> Value {
        match self {
            StepGen::SetWeight(w) => json!({"setWeight": w}),
            StepGen::Pause => json!({"pause": {}}),
            StepGen::PauseSeconds(s) => json!({"pause": {"duration": s}}),
            StepGen::PauseDuration(s) => json!({"pause": {"duration": format!("{s}s")}}),
            StepGen::Experiment(e) => e.to_json(),
        }
    }

    /// Whether the step waits for a promote.
    pub fn is_indefinite_pause(&self) -> bool {
        matches!(self, StepGen::Pause)
    }
}

/// Fields every strategy shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommonGen {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: Option<i32>,
    /// `spec.progressDeadlineSeconds` (always greater than `minReadySeconds`, or absent).
    pub progress_deadline_seconds: Option<i32>,
    /// `spec.revisionHistoryLimit`.
    pub revision_history_limit: Option<i32>,
    /// Index in [`IMAGES`] of the initial image.
    pub image: usize,
    /// The template (and selector) in a Deployment the Rollout's `workloadRef` names, with
    /// this `scaleDown` (`""` for none); `None`: in the Rollout.
    pub workload_ref: Option<&'static str>,
}

/// Name of the Deployment a `workloadRef` rollout takes its template from.
pub const WORKLOAD: &str = "demo-workload";

/// A canary: basic, or behind a traffic router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryGen {
    /// `steps`.
    pub steps: Vec<StepGen>,
    /// `maxSurge` (absent: Argo's default `"25"`).
    pub max_surge: Option<Amount>,
    /// `maxUnavailable` (absent: Argo's default `"25"`).
    pub max_unavailable: Option<Amount>,
    /// Whether `canaryService` / `stableService` are set (and the Services created).
    pub services: bool,
    /// The traffic router, if any (the Services are then always set).
    pub router: Option<RouterGen>,
}

/// A traffic router and the fields that only apply behind one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterGen {
    /// Gateway API (an HTTPRoute) rather than NGINX (an Ingress).
    pub gateway_api: bool,
    /// `dynamicStableScale`.
    pub dynamic_stable_scale: bool,
    /// `abortScaleDownDelaySeconds`.
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// `scaleDownDelaySeconds` (never with `dynamicStableScale`).
    pub scale_down_delay_seconds: Option<i32>,
    /// `setCanaryScale` steps to insert: (index in the steps, replicas).
    pub canary_scale: Option<(usize, i32)>,
}

/// Name of the NGINX router's stable Ingress / the Gateway API router's HTTPRoute.
pub const ROUTE: &str = "demo-route";

/// A blue-green strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlueGreenGen {
    /// Whether a `previewService` is set (and created).
    pub preview_service: bool,
    /// `previewReplicaCount`.
    pub preview_replica_count: Option<i32>,
    /// `autoPromotionEnabled`.
    pub auto_promotion_enabled: Option<bool>,
    /// `autoPromotionSeconds`.
    pub auto_promotion_seconds: Option<i32>,
    /// `scaleDownDelaySeconds`.
    pub scale_down_delay_seconds: Option<i32>,
    /// `abortScaleDownDelaySeconds`.
    pub abort_scale_down_delay_seconds: Option<i32>,
}

/// The strategy of a generated rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrategyGen {
    /// Basic canary.
    Canary(CanaryGen),
    /// Blue-green.
    BlueGreen(BlueGreenGen),
}

/// A generated rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutGen {
    /// Shared fields.
    pub common: CommonGen,
    /// The strategy.
    pub strategy: StrategyGen,
}

/// Name of the canary strategy's canary Service.
pub const CANARY_SERVICE: &str = "demo-canary";
/// Name of the canary strategy's stable Service.
pub const STABLE_SERVICE: &str = "demo-stable";
/// Name of the blue-green active Service.
pub const ACTIVE_SERVICE: &str = "demo-active";
/// Name of the blue-green preview Service.
pub const PREVIEW_SERVICE: &str = "demo-preview";

/// A Service selecting the rollout's pods.
pub fn service_manifest(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": ROLLOUT},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    })
}

/// The pod template running `image`.
pub fn template(image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": ROLLOUT}},
        "spec": {"containers": [{"name": CONTAINER, "image": image}]}
    })
}

impl RolloutGen {
    /// `spec.replicas`.
    pub fn replicas(&self) -> i32 {
        self.common.replicas
    }

    /// The canary strategy, if that is the one generated.
    pub fn canary(&self) -> Option<&CanaryGen> {
        match &self.strategy {
            StrategyGen::Canary(c) => Some(c),
            StrategyGen::BlueGreen(_) => None,
        }
    }

    /// The Rollout manifest.
    pub fn manifest(&self) -> Value {
        let c = &self.common;
        let strategy = match &self.strategy {
            StrategyGen::Canary(cg) => {
                let mut canary = serde_json::Map::new();
                if !cg.steps.is_empty() {
                    canary.insert("steps".into(), Value::Array(cg.steps.iter().map(StepGen::to_json).collect()));
                }
                if let Some(s) = &cg.max_surge {
                    canary.insert("maxSurge".into(), s.to_json());
                }
                if let Some(u) = &cg.max_unavailable {
                    canary.insert("maxUnavailable".into(), u.to_json());
                }
                if cg.services || cg.router.is_some() {
                    canary.insert("canaryService".into(), json!(CANARY_SERVICE));
                    canary.insert("stableService".into(), json!(STABLE_SERVICE));
                }
                if let Some(r) = &cg.router {
                    let tr = if r.gateway_api {
                        json!({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": ROUTE}}})
                    } else {
                        json!({"nginx": {"stableIngress": ROUTE}})
                    };
                    canary.insert("trafficRouting".into(), tr);
                    if r.dynamic_stable_scale {
                        canary.insert("dynamicStableScale".into(), json!(true));
                    }
                    if let Some(d) = r.abort_scale_down_delay_seconds {
                        canary.insert("abortScaleDownDelaySeconds".into(), json!(d));
                    }
                    if let Some(d) = r.scale_down_delay_seconds {
                        canary.insert("scaleDownDelaySeconds".into(), json!(d));
                    }
                    if let (Some((at, replicas)), Some(Value::Array(steps))) = (r.canary_scale, canary.get_mut("steps")) {
                        let at = at.min(steps.len());
                        steps.insert(at, json!({"setCanaryScale": {"replicas": replicas}}));
                    }
                }
                json!({"canary": canary})
            }
            StrategyGen::BlueGreen(bg) => {
                let mut b = serde_json::Map::new();
                b.insert("activeService".into(), json!(ACTIVE_SERVICE));
                if bg.preview_service {
                    b.insert("previewService".into(), json!(PREVIEW_SERVICE));
                }
                let opt = |b: &mut serde_json::Map<String, Value>, k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        b.insert(k.into(), v);
                    }
                };
                opt(&mut b, "previewReplicaCount", bg.preview_replica_count.map(|v| json!(v)));
                opt(&mut b, "autoPromotionEnabled", bg.auto_promotion_enabled.map(|v| json!(v)));
                opt(&mut b, "autoPromotionSeconds", bg.auto_promotion_seconds.map(|v| json!(v)));
                opt(&mut b, "scaleDownDelaySeconds", bg.scale_down_delay_seconds.map(|v| json!(v)));
                opt(&mut b, "abortScaleDownDelaySeconds", bg.abort_scale_down_delay_seconds.map(|v| json!(v)));
                json!({"blueGreen": b})
            }
        };
        let mut spec = json!({
            "replicas": c.replicas,
            "selector": {"matchLabels": {"app": ROLLOUT}},
            "template": template(IMAGES[c.image]),
            "strategy": strategy,
        });
        if let Some(m) = c.min_ready_seconds {
            spec["minReadySeconds"] = json!(m);
        }
        if let Some(p) = c.progress_deadline_seconds {
            spec["progressDeadlineSeconds"] = json!(p);
        }
        if let Some(r) = c.revision_history_limit {
            spec["revisionHistoryLimit"] = json!(r);
        }
        if let (Some(scale_down), Some(s)) = (c.workload_ref, spec.as_object_mut()) {
            s.remove("template");
            s.remove("selector");
            s.insert("workloadRef".into(), json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKLOAD, "scaleDown": scale_down}));
        }
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": ROLLOUT},
            "spec": spec,
        })
    }

    /// The Services the rollout references.
    pub fn services(&self) -> Vec<Value> {
        match &self.strategy {
            StrategyGen::Canary(c) if c.services || c.router.is_some() => {
                vec![service_manifest(CANARY_SERVICE), service_manifest(STABLE_SERVICE)]
            }
            StrategyGen::Canary(_) => Vec::new(),
            StrategyGen::BlueGreen(bg) => {
                let mut v = vec![service_manifest(ACTIVE_SERVICE)];
                if bg.preview_service {
                    v.push(service_manifest(PREVIEW_SERVICE));
                }
                v
            }
        }
    }

    /// The router's object (the stable Ingress or the HTTPRoute), if routed.
    pub fn router_object(&self) -> Option<Value> {
        let r = self.canary()?.router.as_ref()?;
        Some(if r.gateway_api {
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": ROUTE},
                "spec": {"rules": [{"backendRefs": [
                    {"name": STABLE_SERVICE, "port": 80},
                    {"name": CANARY_SERVICE, "port": 80}
                ]}]}
            })
        } else {
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": ROUTE},
                "spec": {"ingressClassName": "nginx", "rules": [{"host": "demo.local", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": STABLE_SERVICE, "port": {"number": 80}}}}
                ]}}]}
            })
        })
    }

    /// The scripted outcome of every experiment analysis of the steps, by template name:
    /// the phase its run ends in and the seconds it takes.
    pub fn experiment_outcomes(&self) -> std::collections::BTreeMap<String, (rollouts_core::api::AnalysisPhase, i64)> {
        let steps = self.canary().map(|c| c.steps.as_slice()).unwrap_or_default();
        steps
            .iter()
            .filter_map(|s| match s {
                StepGen::Experiment(ExperimentStepGen { analysis: Some(a), .. }) => {
                    Some((crate::experiments::outcome_template(a.outcome, a.after), (a.outcome, a.after)))
                }
                _ => None,
            })
            .collect()
    }

    /// The Services and router objects, then the Rollout: what a scenario's `objects:` holds.
    pub fn objects(&self) -> Vec<Value> {
        let mut v = self.services();
        if self.common.workload_ref.is_some() {
            v.push(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": WORKLOAD},
                "spec": {
                    "replicas": self.common.replicas,
                    "selector": {"matchLabels": {"app": ROLLOUT}},
                    "template": template(IMAGES[self.common.image]),
                },
            }));
        }
        v.extend(self.router_object());
        v.push(self.manifest());
        v
    }
}

/// `maxSurge` / `maxUnavailable` values: ints 0–10, `"0%"`–`"100%"`, and bare `"0"`–`"100"`.
pub fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        4 => (0..=10i32).prop_map(Amount::Int),
        4 => (0..=100i32).prop_map(Amount::Percent),
        1 => (0..=100i32).prop_map(Amount::BarePercent),
    ]
}

/// One canary step: `setWeight` 0–100, `pause: {}`, or a timed pause of 0–120 s.
pub fn step() -> impl Strategy<Value = StepGen> {
    prop_oneof![
        5 => (0..=100i32).prop_map(StepGen::SetWeight),
        2 => Just(StepGen::Pause),
        2 => (0..=120i32).prop_map(StepGen::PauseSeconds),
        1 => (0..=120i32).prop_map(StepGen::PauseDuration),
    ]
}

/// An `experiment` step: one or two templates (weighted only when `weights`), a
/// duration or not, and an analysis whose run ends in a random phase or none.
pub fn experiment_step(weights: bool) -> impl Strategy<Value = StepGen> {
    let template = (any::<bool>(), prop::option::of(0..=2i32), prop::option::of(1..=20i32))
        .prop_map(move |(stable, replicas, weight)| ExperimentTemplateGen { stable, replicas, weight: weight.filter(|_| weights) });
    let analysis = (
        any::<bool>(),
        prop::sample::select(vec![
            rollouts_core::api::AnalysisPhase::Successful,
            rollouts_core::api::AnalysisPhase::Failed,
            rollouts_core::api::AnalysisPhase::Error,
            rollouts_core::api::AnalysisPhase::Inconclusive,
        ]),
        0..=90i64,
    )
        .prop_map(|(required, outcome, after)| ExperimentAnalysisGen { required, outcome, after });
    (
        prop::collection::vec(template, 1..=2),
        prop::option::weighted(0.7, 1..=120i32),
        prop::option::of(analysis),
        prop::option::of(0..=40i32),
    )
        .prop_map(|(templates, duration, analysis, scale_down_delay_seconds)| {
            StepGen::Experiment(ExperimentStepGen { templates, duration, analysis, scale_down_delay_seconds })
        })
}

/// A canary step, an `experiment` one about one time in three (weighted templates only
/// when `weights`).
pub fn step_with_experiments(weights: bool) -> impl Strategy<Value = StepGen> {
    prop_oneof![2 => step(), 1 => experiment_step(weights)]
}

/// A replica count in `range`, small counts (at most 10) four times as likely as large
/// ones: the simulator's cost grows with the pods, and most arithmetic edge cases live
/// below 10.
pub fn replica_count(range: std::ops::RangeInclusive<i32>) -> impl Strategy<Value = i32> {
    let (lo, hi) = (*range.start(), *range.end());
    let small_hi = hi.min(lo.max(10));
    let large_lo = (small_hi + 1).min(hi);
    prop_oneof![4 => lo..=small_hi, 1 => large_lo..=hi]
}

/// Shared fields with `replicas` in `replicas` (see [`replica_count`]) and the initial
/// image among the first `images` of [`IMAGES`].
pub fn common(replicas: std::ops::RangeInclusive<i32>, images: usize) -> impl Strategy<Value = CommonGen> {
    (
        replica_count(replicas),
        prop::option::of(0..=15i32),
        prop::option::of(16..=900i32),
        prop::option::of(0..=10i32),
        0..images,
        prop::option::weighted(0.2, prop_oneof![Just(""), Just("onsuccess"), Just("progressively")]),
    )
        .prop_map(|(replicas, min_ready_seconds, progress_deadline_seconds, revision_history_limit, image, workload_ref)| {
            CommonGen { replicas, min_ready_seconds, progress_deadline_seconds, revision_history_limit, image, workload_ref }
        })
}

/// A basic canary strategy with 0–10 steps; `maxSurge` and `maxUnavailable` never both
/// literally zero.
pub fn canary_strategy() -> impl Strategy<Value = CanaryGen> {
    (prop::collection::vec(step(), 0..=10), prop::option::of(amount()), prop::option::of(amount()), any::<bool>())
        .prop_filter("maxSurge and maxUnavailable both zero", |(_, s, u, _)| {
            !(s.as_ref().is_some_and(Amount::is_literal_zero) && u.as_ref().is_some_and(Amount::is_literal_zero))
        })
        .prop_map(|(steps, max_surge, max_unavailable, services)| CanaryGen {
            steps,
            max_surge,
            max_unavailable,
            services,
            router: None,
        })
}

/// A router and its fields: NGINX or the Gateway API, `dynamicStableScale` or a
/// `scaleDownDelaySeconds` (never both), an abort delay (0 keeps the canary), and
/// sometimes a `setCanaryScale` step.
pub fn router() -> impl Strategy<Value = RouterGen> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0..=40i32),
        prop::option::of(0..=40i32),
        prop::option::of((0..=10usize, 0..=12i32)),
    )
        .prop_map(|(gateway_api, dynamic_stable_scale, abort, delay, canary_scale)| RouterGen {
            gateway_api,
            dynamic_stable_scale,
            abort_scale_down_delay_seconds: abort,
            scale_down_delay_seconds: if dynamic_stable_scale { None } else { delay },
            canary_scale,
        })
}

/// A canary behind a traffic router, with `replicas` in range.
pub fn routed_canary_rollout(replicas: std::ops::RangeInclusive<i32>, images: usize) -> impl Strategy<Value = RolloutGen> {
    (common(replicas, images), canary_strategy(), router()).prop_map(|(common, mut c, r)| {
        c.router = Some(r);
        RolloutGen { common, strategy: StrategyGen::Canary(c) }
    })
}

/// A canary with 1–6 steps that sometimes include `experiment` steps: basic, or behind
/// the Gateway API (the router that carries experiment weights), with `replicas` in range.
/// For the step-level driver, which runs Experiments (the simulator does not yet).
pub fn experiment_canary_rollout(replicas: std::ops::RangeInclusive<i32>, images: usize) -> impl Strategy<Value = RolloutGen> {
    let basic = (common(replicas.clone(), images), canary_strategy(), prop::collection::vec(step_with_experiments(false), 1..=6))
        .prop_map(|(common, mut c, steps)| {
            c.steps = steps;
            RolloutGen { common, strategy: StrategyGen::Canary(c) }
        });
    let routed = (common(replicas, images), canary_strategy(), router(), prop::collection::vec(step_with_experiments(true), 1..=6))
        .prop_map(|(common, mut c, mut r, steps)| {
            c.steps = steps;
            r.gateway_api = true;
            c.router = Some(r);
            RolloutGen { common, strategy: StrategyGen::Canary(c) }
        });
    prop_oneof![basic.boxed(), routed.boxed()]
}

/// A blue-green strategy; `previewReplicaCount` is at most `max_replicas`.
pub fn blue_green_strategy(max_replicas: i32) -> impl Strategy<Value = BlueGreenGen> {
    (
        any::<bool>(),
        prop::option::of(0..=max_replicas.max(0)),
        prop::option::of(any::<bool>()),
        prop::option::of(0..=120i32),
        prop::option::of(0..=60i32),
        prop::option::of(0..=60i32),
    )
        .prop_map(
            |(
                preview_service,
                preview_replica_count,
                auto_promotion_enabled,
                auto_promotion_seconds,
                scale_down_delay_seconds,
                abort_scale_down_delay_seconds,
            )| BlueGreenGen {
                preview_service,
                preview_replica_count,
                auto_promotion_enabled,
                auto_promotion_seconds,
                scale_down_delay_seconds,
                abort_scale_down_delay_seconds,
            },
        )
}

/// A basic-canary rollout with `replicas` in range, starting on one of the first
/// `images` images.
pub fn canary_rollout(replicas: std::ops::RangeInclusive<i32>, images: usize) -> impl Strategy<Value = RolloutGen> {
    (common(replicas, images), canary_strategy())
        .prop_map(|(common, c)| RolloutGen { common, strategy: StrategyGen::Canary(c) })
}

/// A blue-green rollout with `replicas` in range.
pub fn blue_green_rollout(replicas: std::ops::RangeInclusive<i32>, images: usize) -> impl Strategy<Value = RolloutGen> {
    let max = *replicas.end();
    (common(replicas, images), blue_green_strategy(max))
        .prop_map(|(common, b)| RolloutGen { common, strategy: StrategyGen::BlueGreen(b) })
}

/// Any strategy: a basic canary three times as often as blue-green or a routed canary.
pub fn any_rollout(replicas: std::ops::RangeInclusive<i32>, images: usize) -> impl Strategy<Value = RolloutGen> {
    // Boxed: the composed strategy types are deep enough that generating a value
    // overflows a test thread's stack in debug builds otherwise.
    prop_oneof![
        3 => canary_rollout(replicas.clone(), images).boxed(),
        1 => blue_green_rollout(replicas.clone(), images).boxed(),
        1 => routed_canary_rollout(replicas, images).boxed(),
    ]
}
