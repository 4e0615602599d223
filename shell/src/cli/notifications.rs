//! `rollouts notifications`: Argo's notification tools (notifications-engine's CLI), against
//! the `argo-rollouts-notification-configmap` and `-secret` of the namespace, or of files.
//!
//! - `template get [NAME] [-o wide|name|json|yaml]`: the templates, with a preview;
//! - `template notify NAME ROLLOUT [--recipient SERVICE:RECIPIENT]…`: renders the template
//!   for a rollout (a file, or a name in the namespace) and sends it; the default recipient
//!   `console:stdout` prints the notification instead;
//! - `trigger get [NAME] [-o …]`: the triggers, their templates and conditions;
//! - `trigger run NAME ROLLOUT`: each condition of the trigger and whether it holds.
//!
//! `--config-map FILE` and `--secret FILE` read the objects from files (`--secret :empty`:
//! no secret); without them they are read from the cluster. Argo's tools print errors and
//! still exit 0; these exit 1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use serde_json::Value;

use super::cluster::Cluster;
use super::error::CliError;
use super::tabwriter;
use crate::kubeapi::KubeArgs;
use crate::notifications::notifier::{render, secret_data, variables_of};
use crate::notifications::services::Http;
use crate::notifications::subscriptions::Destination;
use crate::notifications::{Config, CONFIG_MAP, SECRET};

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// The argo-rollouts-notification-configmap as a YAML file (default: read from the cluster).
    #[arg(long = "config-map", global = true, value_name = "FILE")]
    config_map: Option<PathBuf>,
    /// The argo-rollouts-notification-secret as a YAML file; `:empty` for none (default: read
    /// from the cluster).
    #[arg(long, global = true, value_name = "FILE")]
    secret: Option<String>,
    #[command(subcommand)]
    command: NotificationsCommand,
}

#[derive(Debug, Subcommand)]
enum NotificationsCommand {
    /// Notification templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Notification triggers.
    #[command(subcommand)]
    Trigger(TriggerCommand),
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// Print the configured templates (all, or NAME).
    Get {
        name: Option<String>,
        /// Output format: wide, name, json or yaml.
        #[arg(short, long, default_value = "wide")]
        output: String,
    },
    /// Render template NAME for a rollout (a file, or a name) and send it to the recipients.
    Notify {
        name: String,
        rollout: String,
        /// SERVICE:RECIPIENT (repeatable); `console:stdout` prints the notification.
        #[arg(long = "recipient", default_value = "console:stdout", value_name = "SERVICE:RECIPIENT")]
        recipients: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TriggerCommand {
    /// Print the configured triggers (all, or NAME).
    Get {
        name: Option<String>,
        /// Output format: wide, name, json or yaml.
        #[arg(short, long, default_value = "wide")]
        output: String,
    },
    /// Evaluate trigger NAME's conditions for a rollout (a file, or a name).
    Run { name: String, rollout: String },
}

/// Runs the verb.
pub fn run(args: NotificationsArgs) -> ExitCode {
    super::cluster::run(execute(args))
}

/// Connects on first use: a verb given files never needs a cluster.
struct Source<'a> {
    kube: &'a KubeArgs,
    cluster: Option<Cluster>,
}

impl Source<'_> {
    async fn cluster(&mut self) -> Result<&Cluster, CliError> {
        if self.cluster.is_none() {
            self.cluster = Some(Cluster::connect(self.kube).await?);
        }
        self.cluster.as_ref().ok_or_else(|| CliError::refused("no cluster"))
    }
}

async fn execute(args: NotificationsArgs) -> Result<ExitCode, CliError> {
    let mut source = Source { kube: &args.kube, cluster: None };
    let data = match &args.config_map {
        Some(path) => config_map_file(path)?,
        None => {
            let c = source.cluster().await?;
            let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
            api.get(CONFIG_MAP).await?.data.unwrap_or_default()
        }
    };
    let secret = match args.secret.as_deref() {
        Some(":empty") => BTreeMap::new(),
        Some(path) => secret_file(&PathBuf::from(path))?,
        None => {
            let c = source.cluster().await?;
            let api: Api<Secret> = Api::namespaced(c.client.clone(), &c.namespace);
            api.get_opt(SECRET).await?.map(|s| secret_data(&s)).unwrap_or_default()
        }
    };
    let config = Config::parse(&data, &secret).map_err(|e| CliError::refused(format!("{CONFIG_MAP}: {e}")))?;
    match args.command {
        NotificationsCommand::Template(TemplateCommand::Get { name, output }) => {
            let items: BTreeMap<&String, _> = config.templates.iter().filter(|(n, _)| name.as_ref().is_none_or(|w| w == *n)).collect();
            let rows = items.iter().map(|(n, t)| format!("{n}\t{}\n", t.preview())).collect::<String>();
            print_items(&output, &items, "NAME\tPREVIEW\n", &rows)?;
        }
        NotificationsCommand::Trigger(TriggerCommand::Get { name, output }) => {
            let items: BTreeMap<&String, _> = config.triggers.iter().filter(|(n, _)| name.as_ref().is_none_or(|w| w == *n)).collect();
            let mut rows = String::new();
            for (n, conditions) in &items {
                for (i, c) in conditions.iter().enumerate() {
                    let shown = if i == 0 { n.as_str() } else { "" };
                    rows.push_str(&format!("{shown}\t{}\t{}\n", c.send.join(", "), c.when));
                }
            }
            print_items(&output, &items, "NAME\tTEMPLATE\tCONDITION\n", &rows)?;
        }
        NotificationsCommand::Trigger(TriggerCommand::Run { name, rollout }) => {
            let Some(trigger) = config.compiled_triggers.get(&name) else {
                let names: Vec<&str> = config.triggers.keys().map(String::as_str).collect();
                return Err(CliError::refused(format!("trigger with name '{name}' does not exist (found {})", names.join(", "))));
            };
            let vars = variables_of(load_rollout(&mut source, &rollout).await?, Value::Null, &config);
            let mut table = "CONDITION\tRESULT\n".to_string();
            for (c, r) in config.triggers[&name].iter().zip(trigger.run(&vars)) {
                table.push_str(&format!("{}\t{}\n", c.when, r.triggered));
                if let Some(e) = r.error {
                    eprintln!("warning: condition {}: {e}", r.key);
                }
            }
            print!("{}", tabwriter::align(&table));
        }
        NotificationsCommand::Template(TemplateCommand::Notify { name, rollout, recipients }) => {
            if !config.templates.contains_key(&name) {
                return Err(CliError::refused(format!("template '{name}' is not supported")));
            }
            let vars = variables_of(load_rollout(&mut source, &rollout).await?, Value::Null, &config);
            let http = Http::new().map_err(CliError::refused)?;
            let secrets = config.secret_values();
            for recipient in &recipients {
                let dest = Destination::parse(recipient);
                let failed = |e: String| CliError::refused(format!("failed to notify '{recipient}': {}", crate::notifications::redact(&e, &secrets)));
                if dest.service == "console" {
                    let n = render(&config, std::slice::from_ref(&name), &vars, &dest, "console").map_err(failed)?;
                    print!("{}", serde_yaml_ng::to_string(&n).map_err(|e| failed(e.to_string()))?);
                    continue;
                }
                let entry = config
                    .services
                    .get(&dest.service)
                    .ok_or_else(|| failed(format!("notification service '{}' is not supported", dest.service)))?;
                let service = entry.service.as_ref().map_err(|e| failed(e.clone()))?;
                let n = render(&config, std::slice::from_ref(&name), &vars, &dest, service.kind()).map_err(failed)?;
                service.send_with_retries(&http, &n, &dest, |e, wait| eprintln!("retrying in {wait:?}: {}", crate::notifications::redact(&e.message, &secrets))).await.map_err(|(e, _)| failed(e.message))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_items<T: serde::Serialize>(output: &str, items: &BTreeMap<&String, T>, header: &str, rows: &str) -> Result<(), CliError> {
    match output {
        "" | "wide" => print!("{}", tabwriter::align(&format!("{header}{rows}"))),
        "name" => items.keys().for_each(|n| println!("{n}")),
        "json" => println!("{}", serde_json::to_string_pretty(items).map_err(|e| CliError::refused(e.to_string()))?),
        "yaml" => print!("{}", serde_yaml_ng::to_string(items).map_err(|e| CliError::refused(e.to_string()))?),
        other => return Err(CliError::refused(format!("unknown output format {other:?} (wide, name, json, yaml)"))),
    }
    Ok(())
}

/// The documents of a YAML file.
fn documents(path: &PathBuf) -> Result<Vec<Value>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::refused(format!("cannot read {}: {e}", path.display())))?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| CliError::refused(format!("{}: {e}", path.display())))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// The document of `kind` named `name` in the file.
fn find(path: &PathBuf, kind: &str, name: &str) -> Result<Value, CliError> {
    documents(path)?
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .ok_or_else(|| CliError::refused(format!("file '{}' does not have '{kind}/{name}'", path.display())))
}

fn config_map_file(path: &PathBuf) -> Result<BTreeMap<String, String>, CliError> {
    let cm: ConfigMap = serde_json::from_value(find(path, "ConfigMap", CONFIG_MAP)?)
        .map_err(|e| CliError::refused(format!("{}: ConfigMap {CONFIG_MAP}: {e}", path.display())))?;
    Ok(cm.data.unwrap_or_default())
}

fn secret_file(path: &PathBuf) -> Result<BTreeMap<String, String>, CliError> {
    // Never echo the Secret's content: only where it failed.
    let s: Secret = serde_json::from_value(find(path, "Secret", SECRET)?)
        .map_err(|e| CliError::refused(format!("{}: Secret {SECRET} is not valid (line {})", path.display(), e.line())))?;
    Ok(secret_data(&s))
}

/// A rollout from a file (when `name` is one), else from the cluster.
async fn load_rollout(source: &mut Source<'_>, name: &str) -> Result<Value, CliError> {
    let path = PathBuf::from(name);
    if path.is_file() {
        return documents(&path)?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::refused(format!("{}: no object in the file", path.display())));
    }
    let c = source.cluster().await?;
    let ro = c.rollouts().get(name).await?;
    serde_json::to_value(ro).map_err(|e| CliError::refused(e.to_string()))
}
