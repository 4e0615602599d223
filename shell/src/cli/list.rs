//! `list rollouts` and `list experiments`: one line per object, in Argo's columns.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use futures::StreamExt;
use kube::api::{DynamicObject, ListParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use rollouts_core::replicas::current_set_weight;
use rollouts_core::Timestamp;
use serde_json::Value;

use super::cluster::{to_value, Cluster};
use rollouts_core::api::lenient::rollout_lenient;
use super::error::CliError;
use super::experiment::experiments_table;
use super::info::{client_phase, step, strategy, Strategy};
use super::tabwriter::align;
use crate::kubeapi::KubeArgs;

const HEADER: &str = "NAME\tSTRATEGY\tSTATUS\tSTEP\tSET-WEIGHT\tREADY\tDESIRED\tUP-TO-DATE\tAVAILABLE";

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List rollouts.
    #[command(visible_aliases = ["ro", "rollout"])]
    Rollouts(ListRolloutsArgs),
    /// List experiments.
    #[command(visible_aliases = ["exp", "experiment"])]
    Experiments(ListExperimentsArgs),
}

#[derive(Debug, Args)]
pub struct ListExperimentsArgs {
    /// Include all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Args)]
pub struct ListRolloutsArgs {
    /// Only show the rollout with this name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Include all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Watch for changes: print a line whenever a rollout's columns change.
    #[arg(short, long)]
    pub watch: bool,
    /// Print a timestamp on each line.
    #[arg(long)]
    pub timestamps: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// One rollout's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub strategy: &'static str,
    pub status: String,
    pub step: String,
    pub set_weight: String,
    pub ready: String,
    pub desired: i32,
    pub up_to_date: i32,
    pub available: i32,
}

/// The columns of a Rollout object.
pub fn row(object: &Value) -> Row {
    let ro = rollout_lenient(object).rollout;
    let strategy = strategy(&ro);
    Row {
        namespace: ro.metadata.namespace.clone().unwrap_or_default(),
        name: ro.metadata.name.clone().unwrap_or_default(),
        strategy: match strategy {
            Strategy::Canary => "Canary",
            Strategy::BlueGreen => "BlueGreen",
            Strategy::Unknown => "unknown",
        },
        status: client_phase(&ro).0.as_str().to_string(),
        step: step(&ro).unwrap_or_else(|| "-".into()),
        set_weight: match strategy {
            Strategy::Canary => current_set_weight(&ro.spec, &ro.status).to_string(),
            Strategy::BlueGreen | Strategy::Unknown => "-".into(),
        },
        ready: format!("{}/{}", ro.status.ready_replicas, ro.status.replicas),
        desired: ro.spec.replicas(),
        up_to_date: ro.status.updated_replicas,
        available: ro.status.available_replicas,
    }
}

/// The tab-separated cells of a row, pre-padded to the header widths as Argo pads them.
fn cells(row: &Row, all_namespaces: bool, timestamp: Option<Timestamp>) -> String {
    let mut line = String::new();
    if let Some(t) = timestamp {
        line.push_str(&format!("{:<20}\t", t.to_rfc3339()));
    }
    if all_namespaces {
        line.push_str(&format!("{:<9}\t", row.namespace));
    }
    line.push_str(&format!(
        "{:<10}\t{:<9}\t{:<12}\t{:<4}\t{:<10}\t{:<5}\t{:<7}\t{:<10}\t{:<9}",
        row.name, row.strategy, row.status, row.step, row.set_weight, row.ready, row.desired, row.up_to_date, row.available
    ));
    line
}

fn header(all_namespaces: bool, timestamps: bool) -> String {
    let mut h = String::new();
    if timestamps {
        h.push_str("TIMESTAMP\t");
    }
    if all_namespaces {
        h.push_str("NAMESPACE\t");
    }
    h.push_str(HEADER);
    h
}

/// The table of `rollouts` (in the order given), aligned.
pub fn table(rollouts: &[Value], all_namespaces: bool, timestamp: Option<Timestamp>) -> String {
    let mut text = header(all_namespaces, timestamp.is_some());
    text.push('\n');
    for ro in rollouts {
        text.push_str(&cells(&row(ro), all_namespaces, timestamp));
        text.push('\n');
    }
    align(&text)
}

pub async fn run(command: ListCommand) -> Result<ExitCode, CliError> {
    match command {
        ListCommand::Rollouts(args) => list_rollouts(args).await,
        ListCommand::Experiments(args) => list_experiments(args).await,
    }
}

/// Objects sorted by namespace, then name.
fn sorted(objects: &[DynamicObject]) -> Vec<Value> {
    let mut items: Vec<Value> = objects.iter().map(to_value).collect();
    items.sort_by_key(|v| {
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
        (text("/metadata/namespace"), text("/metadata/name"))
    });
    items
}

async fn list_experiments(args: ListExperimentsArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    let api = if args.all_namespaces { cluster.all_experiments() } else { cluster.experiments() };
    let items = sorted(&api.list(&ListParams::default()).await?.items);
    if items.is_empty() {
        eprintln!("No resources found.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", experiments_table(&items, args.all_namespaces, Timestamp::from_system_time(SystemTime::now())));
    Ok(ExitCode::SUCCESS)
}

async fn list_rollouts(args: ListRolloutsArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    let api = if args.all_namespaces { cluster.all_rollouts() } else { cluster.rollouts() };
    let mut lp = ListParams::default();
    if let Some(name) = &args.name {
        lp = lp.fields(&format!("metadata.name={name}"));
    }
    let items = sorted(&api.list(&lp).await?.items);
    let stamp = || args.timestamps.then(|| Timestamp::from_system_time(SystemTime::now()));
    if items.is_empty() && !args.watch {
        eprintln!("No resources found.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&items, args.all_namespaces, stamp()));
    if !args.watch {
        return Ok(ExitCode::SUCCESS);
    }
    // Print a rollout's line again whenever its columns change.
    let mut shown: BTreeMap<(String, String), Row> =
        items.iter().map(row).map(|r| ((r.namespace.clone(), r.name.clone()), r)).collect();
    let mut config = watcher::Config::default();
    if let Some(name) = &args.name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let object: DynamicObject = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => o,
            Ok(Event::Delete(_) | Event::Init | Event::InitDone) | Err(_) => continue,
        };
        let r = row(&to_value(&object));
        let key = (r.namespace.clone(), r.name.clone());
        if shown.get(&key) != Some(&r) {
            let mut text = header(args.all_namespaces, args.timestamps);
            text.push('\n');
            text.push_str(&cells(&r, args.all_namespaces, stamp()));
            text.push('\n');
            // Aligned with the header's widths, without printing the header again.
            if let Some(line) = align(&text).lines().nth(1) {
                println!("{line}");
            }
            shown.insert(key, r);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canary_guestbook() -> Value {
        json!({
            "metadata": {"name": "can-guestbook", "namespace": "default", "generation": 3},
            "spec": {"replicas": 5, "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}}},
            "status": {"observedGeneration": "3", "currentStepIndex": 1, "replicas": 4, "readyReplicas": 1,
                       "updatedReplicas": 3, "availableReplicas": 2, "phase": "Progressing", "message": "more replicas need to be updated"}
        })
    }

    fn bluegreen() -> Value {
        json!({
            "metadata": {"name": "bg", "namespace": "team-a", "generation": 1},
            "spec": {"replicas": 2, "paused": true, "strategy": {"blueGreen": {"activeService": "bg-active"}}},
            "status": {"observedGeneration": "1", "replicas": 4, "readyReplicas": 2, "updatedReplicas": 2,
                       "availableReplicas": 2, "phase": "Paused", "message": "manually paused"}
        })
    }

    #[test]
    fn rows_read_the_client_side_phase_step_and_weight() {
        let r = row(&canary_guestbook());
        assert_eq!(r.strategy, "Canary");
        assert_eq!(r.status, "Progressing");
        assert_eq!(r.step, "1/3");
        assert_eq!(r.set_weight, "10");
        assert_eq!(r.ready, "1/4");
        let r = row(&bluegreen());
        assert_eq!((r.strategy, r.step.as_str(), r.set_weight.as_str()), ("BlueGreen", "-", "-"));
    }

    #[test]
    fn the_table_is_laid_out_like_argos() {
        let got = table(&[canary_guestbook(), bluegreen()], false, None);
        assert_eq!(
            got,
            "NAME           STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE\n\
             can-guestbook  Canary     Progressing   1/3   10          1/4    5        3           2\n\
             bg             BlueGreen  Paused        -     -           2/4    2        2           2\n"
        );
    }

    #[test]
    fn all_namespaces_and_timestamps_add_leading_columns() {
        let got = table(&[bluegreen()], true, Some(Timestamp::from_unix(0)));
        let mut lines = got.lines();
        assert!(lines.next().unwrap().starts_with("TIMESTAMP             NAMESPACE  NAME"));
        assert!(lines.next().unwrap().starts_with("1970-01-01T00:00:00Z  team-a     bg "));
    }
}
