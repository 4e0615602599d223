//! `terminate analysisrun NAME…` and `terminate experiment NAME…`: stops analysis runs and
//! experiments (Argo's `kubectl argo rollouts terminate`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use rollouts_core::commands::terminate_patch;

use super::cluster::Cluster;
use super::error::CliError;
use crate::kubeapi::KubeArgs;

#[derive(Debug, Subcommand)]
pub enum TerminateCommand {
    /// Terminate analysis runs: no further measurements, the run ends with what it has.
    #[command(visible_aliases = ["ar", "analysisruns"])]
    Analysisrun(TerminateArgs),
    /// Terminate experiments: their ReplicaSets are scaled down and their analysis runs
    /// terminated.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(TerminateExperimentArgs),
}

#[derive(Debug, Args)]
pub struct TerminateArgs {
    /// One or more analysis runs.
    #[arg(value_name = "ANALYSISRUN_NAME", required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Args)]
pub struct TerminateExperimentArgs {
    /// One or more experiments.
    #[arg(value_name = "EXPERIMENT_NAME", required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

pub async fn run(command: TerminateCommand) -> Result<ExitCode, CliError> {
    match command {
        TerminateCommand::Analysisrun(args) => {
            let cluster = Cluster::connect(&args.kube).await?;
            terminate_each(&cluster.analysis_runs(), &args.names, "analysisRun").await
        }
        // Divergence: Argo's plugin confirms a terminated experiment with "experiment 'x'
        // retried" (a copy-paste slip in terminate.go); this one says "terminated".
        TerminateCommand::Experiment(args) => {
            let cluster = Cluster::connect(&args.kube).await?;
            terminate_each(&cluster.experiments(), &args.names, "experiment").await
        }
    }
}

/// Sends `{"spec":{"terminate":true}}` to each object named, in order, confirming each with
/// `<noun> '<name>' terminated`; the first error stops the verb.
async fn terminate_each(api: &Api<DynamicObject>, names: &[String], noun: &str) -> Result<ExitCode, CliError> {
    let patch = terminate_patch();
    for name in names {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        println!("{noun} '{name}' terminated");
    }
    Ok(ExitCode::SUCCESS)
}
