//! `terminate analysisrun NAME…`: stops analysis runs (Argo's `kubectl argo rollouts terminate`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kube::api::{Patch, PatchParams};
use rollouts_core::commands::terminate_patch;

use super::cluster::Cluster;
use super::error::CliError;
use crate::kubeapi::KubeArgs;

#[derive(Debug, Subcommand)]
pub enum TerminateCommand {
    /// Terminate analysis runs: no further measurements, the run ends with what it has.
    #[command(visible_aliases = ["ar", "analysisruns"])]
    Analysisrun(TerminateArgs),
}

#[derive(Debug, Args)]
pub struct TerminateArgs {
    /// One or more analysis runs.
    #[arg(value_name = "ANALYSISRUN_NAME", required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

pub async fn run(command: TerminateCommand) -> Result<ExitCode, CliError> {
    let TerminateCommand::Analysisrun(args) = command;
    let cluster = Cluster::connect(&args.kube).await?;
    let patch = terminate_patch();
    for name in &args.names {
        cluster.analysis_runs().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        println!("analysisRun '{name}' terminated");
    }
    Ok(ExitCode::SUCCESS)
}
