//! The verbs that change a Rollout: `promote`, `abort`, `retry rollout`, `pause`, `restart`,
//! `set image` and `undo`. Each reads what it needs, sends the patch of [`super::patch`], and
//! prints Argo's confirmation line. Also `retry experiment`, which restarts an Experiment.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use rollouts_core::api::lenient::rollout_lenient;
use rollouts_core::api::Rollout;
use rollouts_core::commands::{self, Change, Command, CommandError};
use rollouts_core::objects::format_label_selector;
use rollouts_core::time::parse_duration;
use rollouts_core::Timestamp;

use super::cluster::{from_value, patch_status_or_object, to_value, Cluster};
use super::error::CliError;
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
    /// Retry a failed experiment: its status is cleared and it runs again from the start.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(ExperimentNamesArgs),
}

#[derive(Debug, Args)]
pub struct ExperimentNamesArgs {
    /// One or more experiments.
    #[arg(value_name = "EXPERIMENT_NAME", required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
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

/// Reads the rollout, plans `command` with the core and sends the change. A command the
/// core refuses is reported as the CLI's error, before anything is sent.
pub(crate) async fn run_command(cluster: &Cluster, name: &str, command: &Command) -> Result<Change, CliError> {
    let object = cluster.get_rollout(name).await?;
    let value = to_value(&object);
    let owned = match command {
        Command::Undo { .. } => owned_replica_sets(cluster, &object, &rollout_lenient(&value).rollout).await?,
        Command::Promote { .. }
        | Command::Abort
        | Command::Retry
        | Command::Pause
        | Command::Resume
        | Command::Restart { .. }
        | Command::SetImage { .. }
        | Command::Scale { .. } => Vec::new(),
    };
    let owned: Vec<&ReplicaSet> = owned.iter().collect();
    if let (Some(workload), Command::Undo { .. } | Command::SetImage { .. }) = (commands::workload_of(&value), command) {
        // The template is in the referenced workload: the command changes it instead.
        let (api, name) = workload_api(cluster, name, &workload)?;
        let live = to_value(&api.get(&name).await?);
        let change = commands::plan_workload(command, &value, &live, &owned).map_err(refused)?;
        match &change {
            Change::JsonPatch(ops) => {
                let ops = serde_json::from_value(ops.clone())
                    .map_err(|e| CliError::refused(format!("internal error: not a JSON patch: {e}")))?;
                api.patch(&name, &PatchParams::default(), &Patch::<()>::Json(ops)).await?;
            }
            Change::Replace(object) => {
                api.replace(&name, &PostParams::default(), &from_value(object.clone())?).await?;
            }
            Change::Merge { .. } | Change::Skip(_) => {}
        }
        return Ok(change);
    }
    let change = commands::plan(command, &value, &owned).map_err(refused)?;
    cluster.send(name, &change).await?;
    Ok(change)
}

/// The API of the object a rollout's `workloadRef` names (a Deployment, ReplicaSet or
/// PodTemplate in the rollout's namespace) and its name.
fn workload_api(cluster: &Cluster, rollout: &str, (api_version, kind, name): &(String, String, String)) -> Result<(Api<DynamicObject>, String), CliError> {
    let resource = match (api_version.as_str(), kind.as_str()) {
        ("apps/v1", "Deployment") => ApiResource::erase::<Deployment>(&()),
        ("apps/v1", "ReplicaSet") => ApiResource::erase::<ReplicaSet>(&()),
        ("v1", "PodTemplate") => ApiResource::erase::<k8s_openapi::api::core::v1::PodTemplate>(&()),
        _ => return Err(CliError::refused(format!("rollout '{rollout}': workload of type {api_version}/{kind} is not supported"))),
    };
    if name.is_empty() {
        return Err(CliError::refused(format!("rollout '{rollout}' has a spec.workloadRef without a name")));
    }
    Ok((Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &resource), name.clone()))
}

fn refused(e: CommandError) -> CliError {
    CliError::refused(e.to_string())
}

pub async fn promote(args: PromoteArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    run_command(&cluster, &args.name, &Command::Promote { full: args.full }).await?;
    let how = if args.full { "fully promoted" } else { "promoted" };
    println!("rollout '{}' {how}", args.name);
    Ok(ExitCode::SUCCESS)
}

/// Sends `command` to each rollout named, confirming each as Argo does (`rollout 'x' <done>`).
async fn each(args: NamesArgs, command: Command, done: &str) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    for name in &args.names {
        run_command(&cluster, name, &command).await?;
        println!("rollout '{name}' {done}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn abort(args: NamesArgs) -> Result<ExitCode, CliError> {
    each(args, Command::Abort, "aborted").await
}

pub async fn retry(command: RetryCommand) -> Result<ExitCode, CliError> {
    match command {
        RetryCommand::Rollout(args) => each(args, Command::Retry, "retried").await,
        RetryCommand::Experiment(args) => retry_experiments(args).await,
    }
}

/// `retry experiment`: Argo's merge patch `{"status":null}`, so the controller starts the
/// experiment again from scratch. Argo sends it to the object, which clears the status only
/// because Argo's Experiment CRD has no status subresource; it is sent to the status
/// subresource here, and to the object when the CRD has none, so it works with either CRD.
async fn retry_experiments(args: ExperimentNamesArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    let api = cluster.experiments();
    let patch = serde_json::json!({"status": null});
    for name in &args.names {
        patch_status_or_object(&api, name, &patch).await?;
        println!("experiment '{name}' retried");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pause(args: NamesArgs) -> Result<ExitCode, CliError> {
    each(args, Command::Pause, "paused").await
}

pub async fn restart(args: RestartArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let seconds = args.delay.as_ref().map_or(0, |d| d.seconds);
    run_command(&cluster, &args.name, &Command::Restart { at: now.plus(rollouts_core::time::Seconds(seconds)) }).await?;
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
    println!("{kind} \"{name}\" image updated");
    Ok(ExitCode::SUCCESS)
}

/// Reads the object carrying the template (the Rollout, or the Deployment its `workloadRef`
/// names), changes the images and writes it back with the version read, as Argo's plugin does.
async fn set_image_once(cluster: &Cluster, args: &SetImageArgs) -> Result<(String, String), CliError> {
    let ContainerImage { container, image } = &args.image;
    let command = Command::SetImage { container: container.clone(), image: image.clone() };
    let rollout = to_value(&cluster.get_rollout(&args.name).await?);
    let target = match commands::workload_of(&rollout) {
        Some((_, kind, name)) => (kind.to_lowercase(), name),
        None => ("rollout".to_string(), args.name.clone()),
    };
    run_command(cluster, &args.name, &command).await?;
    Ok(target)
}

pub async fn undo(args: UndoArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    match run_command(&cluster, &args.name, &Command::Undo { to_revision: args.to_revision }).await? {
        Change::Skip(skipped) => println!("{skipped}"),
        Change::Merge { .. } | Change::JsonPatch(_) | Change::Replace(_) => println!("rollout '{}' undo", args.name),
    }
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
