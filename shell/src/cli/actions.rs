//! The verbs that change a Rollout: `promote`, `abort`, `retry rollout`, `pause`, `restart`,
//! `set image` and `undo`. Each reads what it needs, sends the patch of [`super::patch`], and
//! prints Argo's confirmation line.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use rollouts_core::api::Rollout;
use rollouts_core::objects::format_label_selector;
use rollouts_core::time::parse_duration;
use rollouts_core::Timestamp;

use super::cluster::{from_value, to_value, Cluster};
use super::decode::rollout_lenient;
use super::error::CliError;
use super::patch::{self, NoRevision, NothingToPromote};
use crate::kubeapi::KubeArgs;

/// `set image` retries this many times when the object changed under it (409 Conflict).
const SET_IMAGE_ATTEMPTS: usize = 5;

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The rollout to promote.
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Perform a full promotion, skipping analysis, pauses, and steps.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// One or more rollouts.
    #[arg(value_name = "ROLLOUT_NAME", required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
pub enum RetryCommand {
    /// Retry an aborted rollout (clears `status.abort`).
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(NamesArgs),
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The rollout whose pods are restarted.
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Amount of time before a restart (e.g. 30s, 5m, 1h; a bare number is seconds).
    #[arg(short = 'i', long = "in", value_name = "DURATION", value_parser = parse_delay)]
    pub delay: Option<Delay>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// A `--in` duration and how the user wrote it (echoed in the confirmation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay {
    pub text: String,
    pub seconds: i64,
}

fn parse_delay(s: &str) -> Result<Delay, String> {
    let seconds = parse_duration(s).map_err(|e| e.to_string())?.0;
    if seconds < 0 {
        return Err(format!("a restart cannot be in the past ({s})"));
    }
    Ok(Delay { text: s.to_string(), seconds })
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Update the image of a rollout's containers.
    Image(SetImageArgs),
}

#[derive(Debug, Args)]
pub struct SetImageArgs {
    /// The rollout to update.
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// CONTAINER=IMAGE; CONTAINER `*` means every container.
    #[arg(value_name = "CONTAINER=IMAGE", value_parser = parse_container_image)]
    pub image: ContainerImage,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `CONTAINER=IMAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    pub container: String,
    pub image: String,
}

fn parse_container_image(s: &str) -> Result<ContainerImage, String> {
    match s.split('=').collect::<Vec<_>>().as_slice() {
        [container, image] if !container.is_empty() && !image.is_empty() => {
            Ok(ContainerImage { container: container.to_string(), image: image.to_string() })
        }
        _ => Err(format!("expected CONTAINER=IMAGE, got {s:?}")),
    }
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The rollout to roll back.
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// The revision to roll back to (default 0: the previous revision).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub to_revision: i64,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// The Rollout as the core's types read it (leniently: a newer Argo's fields are skipped).
fn decode(object: &DynamicObject) -> Rollout {
    rollout_lenient(&to_value(object)).rollout
}

pub async fn promote(args: PromoteArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    let ro = decode(&cluster.get_rollout(&args.name).await?);
    let plan = patch::promote(&ro, args.full).map_err(|e| match e {
        NothingToPromote::NotPaused => CliError::refused(format!(
            "rollout '{}' is not paused and has no step left to skip: nothing to promote",
            args.name
        )),
        NothingToPromote::AlreadyFullyPromoted => {
            CliError::refused(format!("rollout '{}' is already fully promoted", args.name))
        }
    })?;
    let mut spec = plan.spec;
    if let Some(status) = &plan.status {
        if cluster.status_patch(&args.name, status, None).await?.is_none() {
            // No status subresource: one patch of the object carries both.
            spec = plan.unified;
        }
    }
    if let Some(spec) = &spec {
        cluster.merge_patch(&args.name, spec).await?;
    }
    let how = if args.full { "fully promoted" } else { "promoted" };
    println!("rollout '{}' {how}", args.name);
    Ok(ExitCode::SUCCESS)
}

pub async fn abort(args: NamesArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    for name in &args.names {
        let body = patch::abort();
        cluster.status_patch(name, &body, Some(&body)).await?;
        println!("rollout '{name}' aborted");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(command: RetryCommand) -> Result<ExitCode, CliError> {
    let RetryCommand::Rollout(args) = command;
    let cluster = Cluster::connect(&args.kube).await?;
    for name in &args.names {
        let body = patch::retry();
        cluster.status_patch(name, &body, Some(&body)).await?;
        println!("rollout '{name}' retried");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pause(args: NamesArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    for name in &args.names {
        cluster.merge_patch(name, &patch::pause()).await?;
        println!("rollout '{name}' paused");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn restart(args: RestartArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    // Argo reads the rollout first, so a missing one is reported before anything is sent.
    cluster.get_rollout(&args.name).await?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let seconds = args.delay.as_ref().map_or(0, |d| d.seconds);
    cluster.merge_patch(&args.name, &patch::restart(now.plus(rollouts_core::time::Seconds(seconds)))).await?;
    let text = args.delay.map_or_else(|| "0s".to_string(), |d| d.text);
    println!("rollout '{}' restarts in {text}", args.name);
    Ok(ExitCode::SUCCESS)
}

pub async fn set(command: SetCommand) -> Result<ExitCode, CliError> {
    let SetCommand::Image(args) = command;
    let cluster = Cluster::connect(&args.kube).await?;
    let mut attempt = 0;
    let (kind, name) = loop {
        attempt += 1;
        match set_image_once(&cluster, &args).await {
            Err(CliError::Api(kube::Error::Api(s))) if s.code == 409 && attempt < SET_IMAGE_ATTEMPTS => continue,
            other => break other?,
        }
    };
    println!("{} \"{name}\" image updated", kind.to_lowercase());
    Ok(ExitCode::SUCCESS)
}

/// Reads the object carrying the template (the Rollout, or its `workloadRef` Deployment),
/// changes the images and writes it back with the version read, as Argo's plugin does.
async fn set_image_once(cluster: &Cluster, args: &SetImageArgs) -> Result<(String, String), CliError> {
    let ro = cluster.get_rollout(&args.name).await?;
    let ro_value = to_value(&ro);
    let (api, mut object) = match ro_value.pointer("/spec/workloadRef") {
        Some(workload) => {
            let deployment = workload.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                CliError::refused(format!("rollout '{}' has a spec.workloadRef without a name", args.name))
            })?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &ApiResource::erase::<Deployment>(&()));
            let object = to_value(&api.get(deployment).await?);
            (api, object)
        }
        None => (cluster.rollouts(), ro_value),
    };
    let kind = object.get("kind").and_then(|k| k.as_str()).unwrap_or("Rollout").to_string();
    let name = object.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or(&args.name).to_string();
    let ContainerImage { container, image } = &args.image;
    patch::set_image(&mut object, container, image).map_err(|e| {
        let known = if e.available.is_empty() { "it has none".to_string() } else { format!("it has {}", e.available.join(", ")) };
        CliError::refused(format!("unable to find container named {container:?} in {} {name:?}: {known}", kind.to_lowercase()))
    })?;
    api.replace(&name, &PostParams::default(), &from_value(object)?).await?;
    Ok((kind, name))
}

pub async fn undo(args: UndoArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    let object = cluster.get_rollout(&args.name).await?;
    let ro = decode(&object);
    if ro.spec.workload_ref.is_some() {
        return Err(CliError::refused(format!(
            "rollout '{}' takes its template from spec.workloadRef; roll back the referenced workload instead",
            args.name
        )));
    }
    let owned = owned_replica_sets(&cluster, &object, &ro).await?;
    let source = patch::undo_source(&owned, args.to_revision).map_err(|e| match e {
        NoRevision::NotInHistory(n) => CliError::refused(format!("unable to find specified revision {n} in history")),
        NoRevision::NoPrevious => CliError::refused(format!("no revision found for rollout {:?}", args.name)),
    })?;
    let revision = source.metadata.annotations.as_ref().and_then(|a| a.get(rollouts_core::api::keys::REVISION));
    let revision = revision.map_or("0", String::as_str);
    if patch::undo_is_noop(&ro, source) {
        println!("skipped rollback (current template already matches revision {revision})");
        return Ok(ExitCode::SUCCESS);
    }
    cluster
        .json_patch(&args.name, &patch::undo(source))
        .await
        .map_err(|e| CliError::refused(format!("failed restoring revision {revision}: {e}")))?;
    println!("rollout '{}' undo", args.name);
    Ok(ExitCode::SUCCESS)
}

/// The ReplicaSets the rollout controls: those matching its selector whose controller
/// reference is the rollout.
async fn owned_replica_sets(cluster: &Cluster, object: &DynamicObject, ro: &Rollout) -> Result<Vec<ReplicaSet>, CliError> {
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let mut lp = ListParams::default();
    if let Some(selector) = &ro.spec.selector {
        lp = lp.labels(&format_label_selector(selector));
    }
    let all = cluster.replica_sets().list(&lp).await?.items;
    Ok(all
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_image_takes_exactly_one_equals_sign() {
        assert_eq!(
            parse_container_image("app=demo:yellow").unwrap(),
            ContainerImage { container: "app".into(), image: "demo:yellow".into() }
        );
        assert_eq!(parse_container_image("*=x").unwrap().container, "*");
        assert!(parse_container_image("app").is_err());
        assert!(parse_container_image("app=a=b").is_err());
        assert!(parse_container_image("=x").is_err());
    }

    #[test]
    fn restart_delays_read_like_argo_durations() {
        assert_eq!(parse_delay("30s").unwrap().seconds, 30);
        assert_eq!(parse_delay("1h30m").unwrap().seconds, 5400);
        assert_eq!(parse_delay("45").unwrap().seconds, 45);
        assert!(parse_delay("soon").is_err());
        assert!(parse_delay("-5s").is_err());
    }
}
