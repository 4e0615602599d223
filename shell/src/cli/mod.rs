//! Command-line verbs.

mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Print the version.
    Version,
}

/// Runs the chosen verb.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Version => {
            println!("rollouts: v{}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
