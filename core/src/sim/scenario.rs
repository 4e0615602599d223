//! The scenario file: objects the cluster starts with, how the simulated cluster behaves,
//! scripted metric answers, user commands at simulated times, and optional expectations.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::duplicate_keys::{self as unique, second_occurrence, DUPLICATE_KEY};
use crate::api::parse::{line_of_path, yaml_error};
use crate::api::SpecError;
use crate::time::{parse_duration, Seconds};

/// A parsed scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Manifests the cluster starts with (Rollout, Service, ...).
    #[serde(default, deserialize_with = "unique::values")]
    pub objects: Vec<Value>,
    /// How the simulated cluster behaves.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// Scripted metric-provider answers, by metric name (used by analysis).
    #[serde(default, deserialize_with = "unique::map")]
    pub metrics: BTreeMap<String, Vec<MetricAnswer>>,
    /// User commands and manifest changes at simulated times.
    #[serde(default)]
    pub events: Vec<ScenarioEvent>,
    /// Stop at this time; default: when every rollout has settled (at most 24 h).
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub until: Option<Seconds>,
    /// Checks on the timeline; `rollouts simulate` exits 1 when one fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Expectation>,
}

/// `cluster:` — the simulated cluster's behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Time from pod creation to Ready (default 1s).
    #[serde(default = "one_second", deserialize_with = "duration")]
    pub pod_startup: Seconds,
    /// Behaviour per image.
    #[serde(default, deserialize_with = "unique::map")]
    pub images: BTreeMap<String, ImageBehaviour>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec { pod_startup: Seconds(1), images: BTreeMap::new() }
    }
}

fn one_second() -> Seconds {
    Seconds(1)
}

/// Behaviour of pods running an image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageBehaviour {
    /// `false`: pods of this image never become ready.
    #[serde(default = "yes")]
    pub ready: bool,
    /// Overrides `podStartup` for this image.
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub startup: Option<Seconds>,
}

fn yes() -> bool {
    true
}

/// One scripted answer of a metric provider (`metrics:`): what the provider says, and
/// how long after the measurement started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricAnswer {
    /// What the provider returned (any JSON).
    #[serde(default, deserialize_with = "unique::opt_value", skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The provider failed with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A Job's outcome, or a provider that judges itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::api::AnalysisPhase>,
    /// The answer arrives this much later (default 0; a Job: the cluster's `podStartup`).
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub after: Option<Seconds>,
}

/// One scripted event: a time and exactly one command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioEvent {
    /// Simulated time from the start.
    #[serde(deserialize_with = "duration")]
    pub at: Seconds,
    /// `kubectl argo rollouts set image ROLLOUT CONTAINER=IMAGE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_image: Option<SetImage>,
    /// `promote [--full]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<Promote>,
    /// `abort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<RolloutRef>,
    /// `retry rollout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RolloutRef>,
    /// `pause` (sets `spec.paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutRef>,
    /// Clears `spec.paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<RolloutRef>,
    /// `restart` (sets `spec.restartAt` to now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RolloutRef>,
    /// `undo [--to-revision N]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<Undo>,
    /// Sets `spec.replicas` (`kubectl scale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    /// Creates or replaces any object.
    #[serde(default, deserialize_with = "unique::opt_value", skip_serializing_if = "Option::is_none")]
    pub apply: Option<Value>,
    /// Deletes an object (`kubectl delete KIND NAME`); a Rollout takes what it owns with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Delete>,
    /// `terminate experiment NAME` (sets the Experiment's `spec.terminate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<Terminate>,
}

/// `terminate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terminate {
    /// The Experiment's name.
    pub experiment: String,
}

/// `delete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    /// The object's kind (`Rollout`, `Ingress`, `Service`, ...).
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// The command of a [`ScenarioEvent`].
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// See [`ScenarioEvent::set_image`].
    SetImage(SetImage),
    /// See [`ScenarioEvent::promote`].
    Promote(Promote),
    /// See [`ScenarioEvent::abort`].
    Abort(RolloutRef),
    /// See [`ScenarioEvent::retry`].
    Retry(RolloutRef),
    /// See [`ScenarioEvent::pause`].
    Pause(RolloutRef),
    /// See [`ScenarioEvent::resume`].
    Resume(RolloutRef),
    /// See [`ScenarioEvent::restart`].
    Restart(RolloutRef),
    /// See [`ScenarioEvent::undo`].
    Undo(Undo),
    /// See [`ScenarioEvent::scale`].
    Scale(Scale),
    /// See [`ScenarioEvent::apply`].
    Apply(Value),
    /// See [`ScenarioEvent::delete`].
    Delete(Delete),
    /// See [`ScenarioEvent::terminate`].
    Terminate(Terminate),
}

impl Command {
    /// The rollout the command is for (`None` for `apply`, and for a command on another
    /// kind).
    pub fn rollout(&self) -> Option<&str> {
        match self {
            Command::SetImage(c) => Some(&c.rollout),
            Command::Promote(c) => Some(&c.rollout),
            Command::Abort(c) | Command::Retry(c) | Command::Pause(c) | Command::Resume(c) | Command::Restart(c) => {
                Some(&c.rollout)
            }
            Command::Undo(c) => Some(&c.rollout),
            Command::Scale(c) => Some(&c.rollout),
            Command::Delete(d) if d.kind == "Rollout" => Some(&d.name),
            Command::Apply(_) | Command::Delete(_) | Command::Terminate(_) => None,
        }
    }
}

impl Command {
    /// The object the command is about: its rollout, or the Experiment `terminate` names
    /// (`None` for `apply` and `delete` of another kind).
    pub fn subject(&self) -> Option<&str> {
        match self {
            Command::Terminate(t) => Some(&t.experiment),
            Command::SetImage(_)
            | Command::Promote(_)
            | Command::Abort(_)
            | Command::Retry(_)
            | Command::Pause(_)
            | Command::Resume(_)
            | Command::Restart(_)
            | Command::Undo(_)
            | Command::Scale(_)
            | Command::Apply(_)
            | Command::Delete(_) => self.rollout(),
        }
    }
}

impl ScenarioEvent {
    /// The single command of this event, or an error when there is none or several.
    pub fn command(&self) -> Result<Command, String> {
        let mut found: Vec<Command> = Vec::new();
        if let Some(c) = &self.set_image {
            found.push(Command::SetImage(c.clone()));
        }
        if let Some(c) = &self.promote {
            found.push(Command::Promote(c.clone()));
        }
        if let Some(c) = &self.abort {
            found.push(Command::Abort(c.clone()));
        }
        if let Some(c) = &self.retry {
            found.push(Command::Retry(c.clone()));
        }
        if let Some(c) = &self.pause {
            found.push(Command::Pause(c.clone()));
        }
        if let Some(c) = &self.resume {
            found.push(Command::Resume(c.clone()));
        }
        if let Some(c) = &self.restart {
            found.push(Command::Restart(c.clone()));
        }
        if let Some(c) = &self.undo {
            found.push(Command::Undo(c.clone()));
        }
        if let Some(c) = &self.scale {
            found.push(Command::Scale(c.clone()));
        }
        if let Some(c) = &self.apply {
            found.push(Command::Apply(c.clone()));
        }
        if let Some(c) = &self.delete {
            found.push(Command::Delete(c.clone()));
        }
        if let Some(c) = &self.terminate {
            found.push(Command::Terminate(c.clone()));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err("an event needs one command: setImage, promote, abort, retry, pause, resume, restart, undo, scale, apply, delete or terminate".into()),
            _ => Err("an event may hold only one command".into()),
        }
    }
}

/// Names a rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRef {
    /// Rollout name.
    pub rollout: String,
}

/// `setImage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetImage {
    /// Rollout name.
    pub rollout: String,
    /// Container name (`*` for every container, as the CLI allows).
    pub container: String,
    /// New image.
    pub image: String,
}

/// `promote`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// Rollout name.
    pub rollout: String,
    /// `--full`.
    #[serde(default)]
    pub full: bool,
}

/// `undo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Undo {
    /// Rollout name.
    pub rollout: String,
    /// Revision to go back to (default: the previous one).
    #[serde(default)]
    pub to_revision: Option<i64>,
}

/// `scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Rollout name.
    pub rollout: String,
    /// New `spec.replicas`.
    pub replicas: i32,
}

/// A check on the rollout's state at a time: every key given must match the timeline
/// entry in effect then (the last one at or before `at`). A standalone Experiment's rows
/// are checked the same way, with its name as `rollout`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    /// When (simulated time from the start).
    #[serde(deserialize_with = "duration")]
    pub at: Seconds,
    /// Which rollout.
    pub rollout: String,
    /// Expected phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Expected message (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Expected `currentStepIndex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Expected `setWeight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    /// Expected `actualWeight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_weight: Option<i32>,
    /// Expected `aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<bool>,
    /// Expected pause reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_conditions: Option<Vec<String>>,
    /// Expected ReplicaSets by revision: any of `desired`, `ready`, `available`, `role`,
    /// `images`. A revision listed with `absent: true` must not exist.
    #[serde(default, deserialize_with = "unique::value_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub replica_sets: BTreeMap<String, Value>,
    /// The number of ReplicaSets the rollout owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_set_count: Option<usize>,
    /// The revision of the stable ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<i64>,
    /// The rollout's AnalysisRuns, oldest first: as many as listed, each matching the
    /// keys given (`name`, `phase`).
    #[serde(default, deserialize_with = "unique::opt_values", skip_serializing_if = "Option::is_none")]
    pub analysis_runs: Option<Vec<Value>>,
    /// The entry's Experiments, oldest first: as many as listed, each matching the keys
    /// given (`name`, `phase`, `templates`: as for `weights`).
    #[serde(default, deserialize_with = "unique::opt_values", skip_serializing_if = "Option::is_none")]
    pub experiments: Option<Vec<Value>>,
    /// Expected `weights` (Argo's `status.canary.weights`): `null` for none, else the keys
    /// given must match (maps compared key by key, lists element by element).
    #[serde(default, deserialize_with = "unique::present_value", skip_serializing_if = "Option::is_none")]
    pub weights: Option<Value>,
    /// Objects as the cluster holds them at `at`, by `"Kind/namespace/name"` (the keys of
    /// the JSON output's `objects`): each must exist and match the keys given (as for
    /// `weights`); `null` means it must not exist.
    #[serde(default, deserialize_with = "unique::value_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, Value>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
    let v = Value::deserialize(d)?;
    let text = match &v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other @ (Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_)) => {
            return Err(serde::de::Error::custom(format!("expected a duration such as \"30s\", got {other}")))
        }
    };
    let d = parse_duration(&text).map_err(serde::de::Error::custom)?;
    if d.0 < 0 {
        return Err(serde::de::Error::custom(format!("a duration here cannot be negative, got {text:?}")));
    }
    if d > MAX_SCENARIO_DURATION {
        return Err(serde::de::Error::custom(format!("a duration here can be at most 100 years, got {text:?}")));
    }
    Ok(d)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Seconds>, D::Error> {
    duration(d).map(Some)
}

/// The longest duration a scenario may give (`at`, `until`, ...): 100 years. Simulated
/// time must stay far from the end of the clock.
pub const MAX_SCENARIO_DURATION: Seconds = Seconds(100 * 365 * 24 * 3600);

/// The largest scenario file accepted (16 MiB): anything bigger is a mistake (or
/// `/dev/zero`), and refusing it early keeps memory bounded.
pub const MAX_SCENARIO_BYTES: usize = 16 * 1024 * 1024;

/// Parses a scenario file. Errors name the field and, where known, the line.
pub fn parse_scenario(text: &str) -> Result<Scenario, SpecError> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(SpecError {
            line: None,
            path: String::new(),
            message: format!("the scenario is larger than {} MiB", MAX_SCENARIO_BYTES / (1024 * 1024)),
        });
    }
    // A key given twice is refused while reading (see `duplicate_keys`).
    let scenario: Scenario = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut e = yaml_error(&e);
        if let (Some(key), Some(from)) = (e.message.strip_prefix(DUPLICATE_KEY), e.line) {
            e.line = second_occurrence(text, key, from).or(e.line);
            return e;
        }
        // The parser points at the enclosing map; a value it refused is on its own line.
        if let (Some(value), Some(from)) = (e.message.split_once(" got \"").map(|(_, v)| v.trim_end_matches('"')), e.line) {
            let key = e.path.rsplit(['.', ']']).next().unwrap_or_default().to_string();
            e.line = line_of_value(text, from, &key, value).or(e.line);
        }
        e
    })?;
    if scenario.objects.is_empty() && scenario.events.is_empty() {
        return Err(SpecError {
            line: Some(1),
            path: "objects".into(),
            message: "the scenario is empty: it needs objects (and usually events)".into(),
        });
    }
    for (i, ev) in scenario.events.iter().enumerate() {
        if let Err(message) = ev.command() {
            let path = format!("events[{i}]");
            return Err(SpecError { line: line_of_event(text, i), path, message });
        }
    }
    for (i, obj) in scenario.objects.iter().enumerate() {
        check_object(obj).map_err(|mut e| {
            e.line = line_of_path(text, &e.path);
            e.path = format!("objects[{i}].{}", e.path);
            e
        })?;
    }
    for (i, ev) in scenario.events.iter().enumerate() {
        if let Some(obj) = &ev.apply {
            check_object(obj).map_err(|mut e| {
                e.line = line_of_path(text, &e.path);
                e.path = format!("events[{i}].apply.{}", e.path);
                e
            })?;
        }
    }
    Ok(scenario)
}

/// The apiVersions each kind the simulator knows is served at (the first is the one the
/// simulated API server stores).
const KNOWN_KINDS: &[(&str, &[&str])] = &[
    ("Rollout", &["argoproj.io/v1alpha1"]),
    ("AnalysisTemplate", &["argoproj.io/v1alpha1"]),
    ("ClusterAnalysisTemplate", &["argoproj.io/v1alpha1"]),
    ("AnalysisRun", &["argoproj.io/v1alpha1"]),
    ("Experiment", &["argoproj.io/v1alpha1"]),
    ("Service", &["v1"]),
    ("Secret", &["v1"]),
    ("ConfigMap", &["v1"]),
    ("Pod", &["v1"]),
    ("ReplicaSet", &["apps/v1"]),
    ("Deployment", &["apps/v1"]),
    ("Job", &["batch/v1"]),
    ("Ingress", &["networking.k8s.io/v1"]),
    ("HTTPRoute", &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]),
    ("GRPCRoute", &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha2"]),
    ("TCPRoute", &["gateway.networking.k8s.io/v1alpha2"]),
    ("Gateway", &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]),
    ("GatewayClass", &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]),
];

/// Every object needs a kind and a name; a kind the simulator knows needs its
/// apiVersion; Rollouts, Services, Ingresses and Experiments must decode strictly.
fn check_object(obj: &Value) -> Result<(), SpecError> {
    let err = |path: &str, message: String| SpecError { path: path.into(), message, line: None };
    if !obj.is_object() {
        return Err(err("", format!("expected a manifest (a map), got {}", kind_of_json(obj))));
    }
    let kind = obj.get("kind").and_then(Value::as_str).ok_or_else(|| err("kind", "missing kind".into()))?;
    if let Some((_, versions)) = KNOWN_KINDS.iter().find(|(k, _)| *k == kind) {
        let served = versions.join(" or ");
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some(v) if versions.contains(&v) => {}
            Some(v) => return Err(err("apiVersion", format!("{kind} is served as {served}, not {v}"))),
            None => return Err(err("apiVersion", format!("missing apiVersion (a {kind} is {served})"))),
        }
    }
    let meta = obj.get("metadata");
    if meta.and_then(|m| m.get("name")).and_then(Value::as_str).is_none() {
        // The API server would invent a random suffix; a simulation must be reproducible.
        if meta.and_then(|m| m.get("generateName")).is_some() {
            return Err(err("metadata.name", "missing name (generateName is not supported: the simulator needs a fixed name)".into()));
        }
        return Err(err("metadata.name", "missing name".into()));
    }
    match kind {
        "Rollout" => crate::api::parse::from_value_strict::<crate::api::Rollout>(obj).map(|_| ()),
        "Service" => crate::api::parse::from_value_strict::<k8s_openapi::api::core::v1::Service>(obj).map(|_| ()),
        "Ingress" => crate::api::parse::from_value_strict::<k8s_openapi::api::networking::v1::Ingress>(obj).map(|_| ()),
        "Experiment" => crate::api::parse::from_value_strict::<crate::api::Experiment>(obj).map(|_| ()),
        _ => Ok(()),
    }
}

fn kind_of_json(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The first line from line `from` on where `key` has the value `value` (best effort).
fn line_of_value(text: &str, from: usize, key: &str, value: &str) -> Option<usize> {
    let plain = format!("{key}: {value}");
    let quoted = format!("{key}: \"{value}\"");
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(&plain) || l.contains(&quoted))
        .map(|(i, _)| i + 1)
}

/// Line of the i-th entry of `events:` (best effort).
fn line_of_event(text: &str, index: usize) -> Option<usize> {
    let start = text.lines().position(|l| l.trim_start().starts_with("events:"))?;
    text.lines()
        .enumerate()
        .skip(start + 1)
        .filter(|(_, l)| l.trim_start().starts_with("- "))
        .nth(index)
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_reported_with_their_line() {
        let text = "name: x\ncluster:\n  podStartup: 2s\n  podStrtup: 1s\n";
        let e = parse_scenario(text).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.to_string().contains("podStrtup"), "{e}");
    }

    #[test]
    fn an_event_needs_exactly_one_command() {
        let text = "events:\n  - {at: 1s}\n";
        let e = parse_scenario(text).unwrap_err();
        assert_eq!((e.path.as_str(), e.line), ("events[0]", Some(2)));
    }

    #[test]
    fn a_typo_inside_a_rollout_names_the_field_and_line() {
        let text = "objects:\n  - apiVersion: argoproj.io/v1alpha1\n    kind: Rollout\n    metadata: {name: a}\n    spec:\n      strategy:\n        canary:\n          stepz: []\n";
        let e = parse_scenario(text).unwrap_err();
        assert_eq!(e.path, "objects[0].spec.strategy.canary.stepz");
        assert_eq!(e.line, Some(8));
    }

    #[test]
    fn bad_durations_are_rejected() {
        let e = parse_scenario("until: soon\n").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
    }
}
