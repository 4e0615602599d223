//! Command-line verbs.

mod simulate;

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
    Controller(controller::ControllerArgs),
    /// Re-run the core on a trace recorded with `controller --record`; fails if any action differs.
    Replay(controller::replay::ReplayArgs),
    /// Print the version.
    Version,
}

/// Parses the command line and runs the chosen verb.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs the chosen verb.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Controller(args) => controller::main(args),
        Command::Replay(args) => controller::replay::run(args),
        Command::Version => {
            println!("rollouts: v{}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
