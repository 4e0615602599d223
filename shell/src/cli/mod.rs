//! Command-line verbs.

pub(crate) mod actions;
mod age;
mod analyze;
pub(crate) mod cluster;
mod completion;
mod create;
mod dashboard;
pub(crate) mod error;
pub(crate) mod experiment;
mod files;
mod get;
pub(crate) mod info;
mod lint;
mod list;
mod notifications;
mod pods;
mod simulate;
mod status;
mod tabwriter;
mod terminate;
pub(crate) mod tree;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::controller;

/// Progressive delivery for Kubernetes, compatible with Argo Rollouts.
#[derive(Debug, Parser)]
#[command(name = "rollouts", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a rollout plan offline: no cluster needed.
    Simulate(simulate::SimulateArgs),
    /// Run the controller against the cluster of the current kubeconfig.
    Controller(Box<controller::ControllerArgs>),
    /// Re-run the core on a trace recorded with `controller --record`; fails if any action differs.
    Replay(controller::replay::ReplayArgs),
    /// Show a rollout or an experiment: its ReplicaSets, pods, experiments and analysis runs
    /// as a tree.
    #[command(subcommand)]
    Get(get::GetCommand),
    /// List rollouts or experiments in a table.
    #[command(subcommand)]
    List(list::ListCommand),
    /// Set fields of a rollout (`set image ROLLOUT CONTAINER=IMAGE`).
    #[command(subcommand)]
    Set(actions::SetCommand),
    /// Promote a paused rollout to the next step, or with `--full` to the end.
    Promote(actions::PromoteArgs),
    /// Abort a rollout: traffic and replicas go back to the stable ReplicaSet.
    Abort(actions::NamesArgs),
    /// Retry an aborted rollout or a failed experiment.
    #[command(subcommand)]
    Retry(actions::RetryCommand),
    /// Pause a rollout (`spec.paused: true`).
    Pause(actions::NamesArgs),
    /// Restart the pods of a rollout (sets `spec.restartAt`).
    Restart(actions::RestartArgs),
    /// Roll back to an earlier revision's pod template.
    Undo(actions::UndoArgs),
    /// Report a rollout's status; by default wait until it is Healthy (exit 0) or Degraded
    /// (exit 1); a timeout also exits 1, as Argo's does.
    Status(status::StatusArgs),
    /// Run an AnalysisTemplate once and print each metric's measurement and verdict (exit 0
    /// when the run is Successful, 1 when not, 2 for a template that cannot be read).
    Analyze(analyze::AnalyzeArgs),
    /// Argo's notification tools: templates and triggers of the notification ConfigMap
    /// (`template get|notify`, `trigger get|run`).
    Notifications(notifications::NotificationsArgs),
    /// Serve the dashboard and Argo's REST API (`/<root>/api/v1/…`) on 127.0.0.1:3100.
    Dashboard(dashboard::DashboardArgs),
    /// Lint and validate the Rollouts of a file, offline (exit 1 with every error).
    Lint(lint::LintArgs),
    /// Create a Rollout, Experiment, AnalysisTemplate, ClusterAnalysisTemplate, or AnalysisRun
    /// resource (`create -f FILE`, `create analysisrun --from TEMPLATE`).
    Create(create::CreateArgs),
    /// Terminate an AnalysisRun or an Experiment (`terminate analysisrun|experiment NAME…`).
    #[command(subcommand)]
    Terminate(terminate::TerminateCommand),
    /// Write the shell completion script (bash, zsh, fish or powershell).
    Completion(completion::CompletionArgs),
    /// Print the version.
    Version(VersionArgs),
}

#[derive(Debug, clap::Args)]
struct VersionArgs {
    /// Print just the version number.
    #[arg(long)]
    short: bool,
}

/// Parses the command line and runs the chosen verb.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs the chosen verb.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Controller(args) => controller::main(*args),
        Command::Replay(args) => controller::replay::run(args),
        Command::Get(command) => cluster::run(get::run(command)),
        Command::List(command) => cluster::run(list::run(command)),
        Command::Set(command) => cluster::run(actions::set(command)),
        Command::Promote(args) => cluster::run(actions::promote(args)),
        Command::Abort(args) => cluster::run(actions::abort(args)),
        Command::Retry(command) => cluster::run(actions::retry(command)),
        Command::Pause(args) => cluster::run(actions::pause(args)),
        Command::Restart(args) => cluster::run(actions::restart(args)),
        Command::Undo(args) => cluster::run(actions::undo(args)),
        Command::Status(args) => cluster::run(status::run(args)),
        Command::Analyze(args) => analyze::run(args),
        Command::Notifications(args) => notifications::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Create(args) => cluster::run(create::run(args)),
        Command::Terminate(command) => cluster::run(terminate::run(command)),
        Command::Completion(args) => completion::run(args),
        Command::Version(args) => {
            println!("rollouts: v{}", env!("CARGO_PKG_VERSION"));
            if !args.short {
                println!("  Platform: {}/{}", std::env::consts::OS, std::env::consts::ARCH);
            }
            ExitCode::SUCCESS
        }
    }
}
