//! `lint -f FILE`: checks a manifest file offline, without a cluster.
//!
//! Every document is decoded (YAML or JSON, several per file). Each Rollout is decoded
//! strictly, its spec validated by the core, and its references checked against the other
//! objects of the same file with the core's own reference validation: a [`State`] is built
//! from the file's Services, Ingresses, Gateway API routes, analysis templates and workloads,
//! so the message is the one the controller would put in the `InvalidSpec` condition.
//!
//! A file is taken to be complete for each kind it contains: a rollout naming a Service the
//! file does not have is an error when the file has Services, but not when it has none (the
//! Services are then deployed from elsewhere). The same holds for Ingresses, Gateway API
//! routes, analysis templates and `workloadRef` referents. Argo's lint checks only the
//! objects present; ours also reports the missing ones in a file that has their kind.
//!
//! Output: one line per error on stdout, `<Kind> "<name>" (document <n>): <error>`; exit 1
//! when there is any (the summary `error: …` goes to stderr), 0 and nothing when clean.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::api::networking::v1::Ingress;
use rollouts_core::api::parse::from_value_strict;
use rollouts_core::api::{AnalysisTemplate, Rollout, GATEWAY_API_PLUGIN};
use rollouts_core::rollout::decode_rollout;
use rollouts_core::rollout::validation::{validate_references, validate_spec};
use rollouts_core::state::{route_key, State};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct LintArgs {
    /// File to lint (YAML or JSON; several documents separated by `---`).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub file: PathBuf,
}

/// One object of the file, where it was.
struct Document {
    /// 1-based position in the file.
    index: usize,
    kind: String,
    name: String,
    value: Value,
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub document: usize,
    pub kind: String,
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} (document {}): {}", self.kind, self.name, self.document, self.message)
    }
}

pub fn run(args: LintArgs) -> ExitCode {
    let path = args.file.display().to_string();
    let text = match super::files::read_capped(&args.file, super::files::MAX_MANIFEST_BYTES, "file") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let findings = match lint_text(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if findings.is_empty() {
        return ExitCode::SUCCESS;
    }
    for f in &findings {
        println!("{f}");
    }
    let n = findings.len();
    eprintln!("error: {path}: {n} error{}", if n == 1 { "" } else { "s" });
    ExitCode::FAILURE
}

/// Splits the text into documents; `Err` for text that is not YAML (or JSON) at all.
fn documents(text: &str) -> Result<Vec<Document>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| {
            let at = e.location().map(|l| format!(" (line {})", l.line())).unwrap_or_default();
            format!("document {}: {}{at}", i + 1, rollouts_core::api::parse::yaml_error(&e).message)
        })?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        out.push(Document { index: i + 1, kind, name, value });
    }
    Ok(out)
}

/// Lints a file's text: every error, in document order.
pub fn lint_text(text: &str) -> Result<Vec<Finding>, String> {
    let docs = documents(text)?;
    let mut findings = Vec::new();
    let mut base = State::default();
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    let finding = |d: &Document, message: String| Finding { document: d.index, kind: d.kind.clone(), name: d.name.clone(), message };
    for d in &docs {
        let group = d.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().split('/').next().unwrap_or_default().to_string();
        kinds.insert(d.kind.clone());
        match d.kind.as_str() {
            "Service" => match serde_json::from_value::<Service>(d.value.clone()) {
                Ok(svc) => {
                    base.services.insert(d.name.clone(), std::sync::Arc::new(svc));
                }
                Err(e) => findings.push(finding(d, format!("cannot decode the Service: {e}"))),
            },
            "Ingress" if group == "networking.k8s.io" || group == "extensions" => {
                match serde_json::from_value::<Ingress>(d.value.clone()) {
                    Ok(ing) => {
                        base.ingresses.insert(d.name.clone(), ing);
                    }
                    Err(e) => findings.push(finding(d, format!("cannot decode the Ingress: {e}"))),
                }
            }
            _ if rollouts_core::api::RouteKind::of_object(&d.value).is_some() => {
                if let Some(kind) = rollouts_core::api::RouteKind::of_object(&d.value) {
                    base.routes.insert(route_key(kind, &d.name), d.value.clone());
                }
            }
            "AnalysisTemplate" | "ClusterAnalysisTemplate" if group == "argoproj.io" => {
                let decoded = from_value_strict::<AnalysisTemplate>(&d.value);
                if let Err(e) = &decoded {
                    findings.push(finding(d, e.to_string()));
                }
                let map = if d.kind == "AnalysisTemplate" { &mut base.analysis_templates } else { &mut base.cluster_analysis_templates };
                map.insert(d.name.clone(), decoded);
            }
            "Deployment" | "ReplicaSet" | "PodTemplate" => {
                base.workloads.insert(rollouts_core::rollout::workload::workload_key(&d.kind, &d.name), d.value.clone());
            }
            _ => {}
        }
    }
    for d in docs.iter().filter(|d| d.kind == "Rollout") {
        if let Some(message) = lint_rollout(&d.value, &base, &kinds) {
            findings.push(finding(d, message));
        }
    }
    findings.sort_by_key(|f| f.document);
    Ok(findings)
}

/// The first error of one Rollout, as the controller would report it.
fn lint_rollout(value: &Value, base: &State, kinds: &BTreeSet<String>) -> Option<String> {
    let (mut ro, error) = decode_rollout(value);
    if let Some(e) = error {
        return Some(e.to_string());
    }
    let has = |k: &str| kinds.contains(k);
    let mut state = base.clone();
    // Resolve a `workloadRef` as the controller does before validating.
    let mut services_checkable = true;
    if let Some(r) = ro.spec.workload_ref.clone() {
        if ro.spec.template.as_ref().is_some_and(|t| t != &PodTemplateSpec::default()) {
            return Some("template must be empty for workload reference rollout".to_string());
        }
        match rollouts_core::rollout::workload::referent(&state, &r) {
            Some(w) => {
                let (template, selector) = if r.kind == "PodTemplate" { ("/template", None) } else { ("/spec/template", Some("/spec/selector")) };
                if let Some(t) = w.pointer(template) {
                    match serde_json::from_value(t.clone()) {
                        Ok(t) => ro.spec.template = Some(t),
                        Err(e) => return Some(format!("the template of {} {}: {e}", r.kind, r.name)),
                    }
                }
                if ro.spec.selector.is_none() {
                    ro.spec.selector = selector.and_then(|p| w.pointer(p)).and_then(|s| serde_json::from_value(s.clone()).ok());
                }
            }
            None if has(&r.kind) => {
                let resource = if r.kind == "PodTemplate" { "podtemplates".to_string() } else { format!("{}s.apps", r.kind.to_ascii_lowercase()) };
                return Some(format!("{resource} \"{}\" not found", r.name));
            }
            None => services_checkable = false,
        }
    }
    if ro.spec.replicas.is_none() {
        // The controller writes the default before validating.
        ro.spec.replicas = Some(rollouts_core::api::defaults::REPLICAS);
    }
    if let Err(e) = validate_spec(&ro.spec) {
        return Some(e.to_string());
    }
    // What the file does not have is taken to be deployed from elsewhere: stand-ins for
    // Services, and no check of the routers or analyses whose objects are absent.
    for name in service_names(&ro) {
        if !has("Service") || !services_checkable {
            state.services.insert(name.clone(), std::sync::Arc::new(stand_in_service(&name)));
        }
    }
    if let Some(tr) = ro.spec.strategy.canary.as_mut().and_then(|c| c.traffic_routing.as_mut()) {
        if !has("Ingress") {
            tr.nginx = None;
            tr.alb = None;
        }
        if !(has("HTTPRoute") || has("GRPCRoute") || has("TCPRoute")) {
            tr.gateway_api = None;
            if let Some(p) = tr.plugins.as_mut().and_then(Value::as_object_mut) {
                p.remove(GATEWAY_API_PLUGIN);
            }
        }
        if !has("TraefikService") {
            tr.traefik = None;
        }
        if !has("Mapping") {
            tr.ambassador = None;
        }
        if !has("ApisixRoute") {
            tr.apisix = None;
        }
        if !has("VirtualRouter") {
            tr.app_mesh = None;
        }
    }
    let templates_present = |cluster: bool| has(if cluster { "ClusterAnalysisTemplate" } else { "AnalysisTemplate" });
    let checkable = |ts: &[rollouts_core::api::RolloutAnalysisTemplate]| ts.iter().all(|t| templates_present(t.cluster_scope));
    if let Some(c) = ro.spec.strategy.canary.as_mut() {
        for step in &mut c.steps {
            if step.analysis.as_ref().is_some_and(|a| !checkable(&a.templates)) {
                step.analysis = None;
            }
        }
        if c.analysis.as_ref().is_some_and(|a| !checkable(&a.templates)) {
            c.analysis = None;
        }
    }
    if let Some(bg) = ro.spec.strategy.blue_green.as_mut() {
        if bg.pre_promotion_analysis.as_ref().is_some_and(|a| !checkable(&a.templates)) {
            bg.pre_promotion_analysis = None;
        }
        if bg.post_promotion_analysis.as_ref().is_some_and(|a| !checkable(&a.templates)) {
            bg.post_promotion_analysis = None;
        }
    }
    validate_references(&ro, &state).err().map(|e| e.to_string())
}

/// The Services a rollout names.
fn service_names(ro: &Rollout) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(bg) = ro.spec.blue_green() {
        names.extend([bg.active_service.clone(), bg.preview_service.clone()]);
    } else if let Some(c) = ro.spec.canary() {
        names.extend([c.stable_service.clone(), c.canary_service.clone()]);
        if let Some(pp) = &c.ping_pong {
            names.extend([pp.ping_service.clone(), pp.pong_service.clone()]);
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// A Service that selects nothing in particular, for one deployed from another file.
fn stand_in_service(name: &str) -> Service {
    let mut svc = Service::default();
    svc.metadata.name = Some(name.to_string());
    svc
}
