//! `rollouts controller`: kube-rs watches in, the core's actions out.

pub mod replay;

use std::process::ExitCode;

use clap::Args;

use crate::kubeapi::KubeArgs;

/// Flags of `rollouts controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Runs the controller until it is stopped.
pub fn main(_args: ControllerArgs) -> ExitCode {
    eprintln!("error: the controller is not built yet");
    ExitCode::FAILURE
}
