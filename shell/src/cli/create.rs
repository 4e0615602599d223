//! `create -f FILE…` and `create analysisrun --from NAME | --from-file FILE`: creates Argo
//! Rollouts objects from manifests, decoded strictly first (an unknown field is refused with
//! its path, before anything is sent).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use rollouts_core::analysis::args::merge_args;
use rollouts_core::api::parse::{from_value_strict, line_of_path, yaml_error, SpecError};
use rollouts_core::api::{AnalysisRun, AnalysisTemplate, Argument, Rollout};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::cluster::{to_value, Cluster};
use super::error::CliError;
use super::get::{GetCommand, GetExperimentArgs, GetRolloutArgs, ViewArgs};
use crate::kubeapi::{
    analysis_run_resource, analysis_template_resource, cluster_analysis_template_resource, experiment_resource,
    rollout_resource, KubeArgs,
};

/// The label that assigns an object to one controller instance (`--instance-id`).
const INSTANCE_ID_LABEL: &str = "argo-rollouts.argoproj.io/controller-instance-id";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub command: Option<CreateCommand>,
    /// Files to use to create the resource (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Watch live updates to the resource after creating it (one file of a Rollout or an
    /// Experiment).
    #[arg(short, long)]
    pub watch: bool,
    /// Do not colorize output.
    #[arg(long)]
    pub no_color: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create an AnalysisRun from an AnalysisTemplate or a ClusterAnalysisTemplate.
    #[command(visible_alias = "ar")]
    Analysisrun(CreateRunArgs),
}

#[derive(Debug, Args)]
pub struct CreateRunArgs {
    /// Create the run from this AnalysisTemplate (ClusterAnalysisTemplate with --global) in the cluster.
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// Create the run from the template in this local file.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Use a ClusterAnalysisTemplate instead of an AnalysisTemplate.
    #[arg(long)]
    pub global: bool,
    /// Arguments to the template, NAME=VALUE (repeatable).
    #[arg(short = 'a', long = "argument", value_name = "NAME=VALUE")]
    pub arguments: Vec<String>,
    /// Use the specified name for the run.
    #[arg(long)]
    pub name: Option<String>,
    /// Use the specified generateName for the run (default: `<template>-`).
    #[arg(long)]
    pub generate_name: Option<String>,
    /// Instance-ID for the AnalysisRun (the controller-instance-id label).
    #[arg(long)]
    pub instance_id: Option<String>,
}

/// The kinds `create -f` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rollout,
    Experiment,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    AnalysisRun,
}

impl Kind {
    fn of(value: &Value) -> Result<Kind, String> {
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        match (group, kind) {
            ("argoproj.io", "Rollout") => Ok(Kind::Rollout),
            ("argoproj.io", "Experiment") => Ok(Kind::Experiment),
            ("argoproj.io", "AnalysisTemplate") => Ok(Kind::AnalysisTemplate),
            ("argoproj.io", "ClusterAnalysisTemplate") => Ok(Kind::ClusterAnalysisTemplate),
            ("argoproj.io", "AnalysisRun") => Ok(Kind::AnalysisRun),
            _ => Err(format!("creates of {group}/{kind} unsupported")),
        }
    }

    fn resource(self) -> ApiResource {
        match self {
            Kind::Rollout => rollout_resource(),
            Kind::Experiment => experiment_resource(),
            Kind::AnalysisTemplate => analysis_template_resource(),
            Kind::ClusterAnalysisTemplate => cluster_analysis_template_resource(),
            Kind::AnalysisRun => analysis_run_resource(),
        }
    }

    /// The word of Argo's confirmation line (a ClusterAnalysisTemplate is printed as an
    /// `analysistemplate`, as Argo does).
    fn singular(self) -> &'static str {
        match self {
            Kind::Rollout => "rollout",
            Kind::Experiment => "experiment",
            Kind::AnalysisTemplate | Kind::ClusterAnalysisTemplate => "analysistemplate",
            Kind::AnalysisRun => "analysisrun",
        }
    }
}

/// Reads one object from a YAML or JSON file.
fn read_object(path: &Path) -> Result<(String, Value), CliError> {
    let shown = path.display();
    let text = super::files::read_capped(path, super::files::MAX_MANIFEST_BYTES, "file").map_err(|e| CliError::refused(format!("cannot read {shown}: {e}")))?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| CliError::refused(format!("{shown}: {}", yaml_error(&e))))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    match docs.len() {
        1 => Ok((text, docs.remove(0))),
        0 => Err(CliError::refused(format!("{shown}: no object in the file"))),
        n => Err(CliError::refused(format!("{shown}: {n} objects in the file; create takes one object per file"))),
    }
}

/// Strict decoding, the error naming the field and its line.
fn strict<T: DeserializeOwned>(path: &Path, text: &str, value: &Value) -> Result<T, CliError> {
    from_value_strict::<T>(value).map_err(|mut e: SpecError| {
        e.line = e.line.or_else(|| line_of_path(text, &e.path));
        CliError::refused(format!("{}: {e}", path.display()))
    })
}

/// Decodes the manifest strictly as its kind. Experiments are not modelled by this
/// version: only their kind and name are checked.
fn check(path: &Path, text: &str, kind: Kind, value: &Value) -> Result<(), CliError> {
    match kind {
        Kind::Rollout => strict::<Rollout>(path, text, value).map(drop),
        Kind::AnalysisTemplate | Kind::ClusterAnalysisTemplate => strict::<AnalysisTemplate>(path, text, value).map(drop),
        Kind::AnalysisRun => strict::<AnalysisRun>(path, text, value).map(drop),
        Kind::Experiment => Ok(()),
    }
}

fn api(cluster: &Cluster, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    match kind {
        Kind::ClusterAnalysisTemplate => Api::all_with(cluster.client.clone(), &kind.resource()),
        Kind::Rollout | Kind::Experiment | Kind::AnalysisTemplate | Kind::AnalysisRun => {
            Api::namespaced_with(cluster.client.clone(), namespace, &kind.resource())
        }
    }
}

pub async fn run(args: CreateArgs) -> Result<ExitCode, CliError> {
    if let Some(CreateCommand::Analysisrun(run)) = args.command {
        return create_run(run, &args.kube).await;
    }
    if args.watch && args.files.len() > 1 {
        return Err(CliError::refused("Cannot watch multiple resources"));
    }
    // Every file is read and decoded before anything is created.
    let mut objects = Vec::new();
    for path in &args.files {
        let (text, value) = read_object(path)?;
        let kind = Kind::of(&value).map_err(|e| CliError::refused(format!("{}: {e}", path.display())))?;
        check(path, &text, kind, &value)?;
        objects.push((kind, value));
    }
    if args.watch && objects.first().is_some_and(|(k, _)| !matches!(k, Kind::Rollout | Kind::Experiment)) {
        return Err(CliError::refused("Can only watch resources of type Rollout or Experiment"));
    }
    let cluster = Cluster::connect(&args.kube).await?;
    let mut watched = None;
    for (kind, value) in objects {
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(&cluster.namespace)
            .to_string();
        let object: DynamicObject = serde_json::from_value(value)
            .map_err(|e| CliError::refused(format!("cannot read the object's metadata: {e}")))?;
        let created = api(&cluster, kind, &namespace).create(&PostParams::default(), &object).await?;
        let name = created.metadata.name.clone().unwrap_or_default();
        println!("{}.argoproj.io/{name} created", kind.singular());
        watched = Some((kind, name, namespace));
    }
    if args.watch {
        if let Some((kind, name, namespace)) = watched {
            let mut kube = args.kube.clone();
            kube.namespace = Some(namespace);
            let view = ViewArgs { watch: true, no_color: args.no_color, timeout_seconds: 0, kube };
            // Only a Rollout or an Experiment gets here (checked above).
            let get = if kind == Kind::Experiment {
                GetCommand::Experiment(GetExperimentArgs { name, view })
            } else {
                GetCommand::Rollout(GetRolloutArgs { name, view })
            };
            return super::get::run(get).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME=VALUE` arguments.
fn parse_arguments(flags: &[String]) -> Result<Vec<Argument>, CliError> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((name, value)) => Ok(Argument { name: name.to_string(), value: Some(value.to_string()), value_from: None }),
            None => Err(CliError::refused("arguments must be in the form NAME=VALUE")),
        })
        .collect()
}

/// Argo's `NewAnalysisRunFromUnstructured`: the template's spec with the arguments merged
/// in, the kind switched to AnalysisRun, named or generate-named, in `namespace`. The
/// template's labels and annotations are kept; everything the API server wrote in its
/// metadata (uid, resourceVersion, managed fields) is dropped. `--instance-id` adds its
/// label (Argo's replaces all the labels with it).
pub fn run_from_template(
    template: &Value,
    arguments: &[Argument],
    name: Option<&str>,
    generate_name: Option<&str>,
    namespace: &str,
    instance_id: Option<&str>,
) -> Result<Value, CliError> {
    let template_name = template.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let (name, generate_name) = match (name.filter(|n| !n.is_empty()), generate_name.filter(|g| !g.is_empty())) {
        (Some(n), _) => (Some(n.to_string()), None),
        (None, Some(g)) => (None, Some(g.to_string())),
        (None, None) => (None, Some(format!("{template_name}-"))),
    };
    if name.is_none() && generate_name.as_deref() == Some("-") {
        return Err(CliError::refused("name is invalid"));
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    let args = match spec.get("args") {
        Some(declared) => {
            let declared: Vec<Argument> = serde_json::from_value(declared.clone())
                .map_err(|e| CliError::refused(format!("spec.args: {e}")))?;
            merge_args(&declared, arguments).map_err(CliError::refused)?
        }
        None => arguments.to_vec(),
    };
    if let Some(s) = spec.as_object_mut() {
        if args.is_empty() {
            s.remove("args");
        } else {
            s.insert("args".into(), serde_json::to_value(&args).unwrap_or(Value::Null));
        }
    }
    let mut metadata = serde_json::Map::new();
    if let Some(n) = name {
        metadata.insert("name".into(), json!(n));
    }
    if let Some(g) = generate_name {
        metadata.insert("generateName".into(), json!(g));
    }
    metadata.insert("namespace".into(), json!(namespace));
    let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    if let (Some(id), Some(l)) = (instance_id, labels.as_object_mut()) {
        l.insert(INSTANCE_ID_LABEL.into(), json!(id));
    }
    if labels.as_object().is_some_and(|l| !l.is_empty()) {
        metadata.insert("labels".into(), labels);
    }
    if let Some(a) = template.pointer("/metadata/annotations") {
        metadata.insert("annotations".into(), a.clone());
    }
    let api_version = template.get("apiVersion").cloned().unwrap_or_else(|| json!("argoproj.io/v1alpha1"));
    Ok(json!({"apiVersion": api_version, "kind": "AnalysisRun", "metadata": metadata, "spec": spec}))
}

async fn create_run(args: CreateRunArgs, kube: &KubeArgs) -> Result<ExitCode, CliError> {
    if args.from.is_some() == args.from_file.is_some() {
        return Err(CliError::refused("one of --from or --from-file must be specified"));
    }
    let arguments = parse_arguments(&args.arguments)?;
    let from_file = match &args.from_file {
        Some(path) => {
            let (text, value) = read_object(path)?;
            strict::<AnalysisTemplate>(path, &text, &value)?;
            Some(value)
        }
        None => None,
    };
    let cluster = Cluster::connect(kube).await?;
    let template = match (from_file, &args.from) {
        (Some(value), _) => value,
        (None, Some(name)) => {
            let kind = if args.global { Kind::ClusterAnalysisTemplate } else { Kind::AnalysisTemplate };
            to_value(&api(&cluster, kind, &cluster.namespace).get(name).await?)
        }
        (None, None) => return Err(CliError::refused("one of --from or --from-file must be specified")),
    };
    let run = run_from_template(
        &template,
        &arguments,
        args.name.as_deref(),
        args.generate_name.as_deref(),
        &cluster.namespace,
        args.instance_id.as_deref(),
    )?;
    from_value_strict::<AnalysisRun>(&run).map_err(|e| CliError::refused(format!("the run built from the template: {e}")))?;
    let object: DynamicObject =
        serde_json::from_value(run).map_err(|e| CliError::refused(format!("cannot build the run: {e}")))?;
    let created = cluster.analysis_runs().create(&PostParams::default(), &object).await?;
    println!("analysisrun.argoproj.io/{} created", created.metadata.name.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "rate", "namespace": "x", "resourceVersion": "7", "uid": "u", "labels": {"team": "a"}},
            "spec": {"args": [{"name": "svc"}, {"name": "port", "value": "80"}],
                     "metrics": [{"name": "m", "provider": {"web": {"url": "http://127.0.0.1/{{args.svc}}"}}}]}
        })
    }

    #[test]
    fn the_run_takes_the_templates_spec_with_the_arguments_merged() {
        let args = parse_arguments(&["svc=demo".into()]).unwrap();
        let run = run_from_template(&template(), &args, None, None, "ns", Some("blue")).unwrap();
        assert_eq!(run["kind"], "AnalysisRun");
        assert_eq!(run["metadata"]["generateName"], "rate-");
        assert_eq!(run["metadata"]["namespace"], "ns");
        assert!(run["metadata"].get("resourceVersion").is_none() && run["metadata"].get("uid").is_none());
        assert_eq!(run["metadata"]["labels"][INSTANCE_ID_LABEL], "blue");
        assert_eq!(run["metadata"]["labels"]["team"], "a");
        assert_eq!(run["spec"]["args"], json!([{"name": "svc", "value": "demo"}, {"name": "port", "value": "80"}]));
        from_value_strict::<AnalysisRun>(&run).unwrap();
    }

    #[test]
    fn an_argument_left_without_a_value_is_refused_as_argo_refuses_it() {
        let e = run_from_template(&template(), &[], Some("r"), None, "ns", None).unwrap_err();
        assert_eq!(e.to_string(), "args.svc was not resolved");
        assert_eq!(parse_arguments(&["novalue".into()]).unwrap_err().to_string(), "arguments must be in the form NAME=VALUE");
    }
}
