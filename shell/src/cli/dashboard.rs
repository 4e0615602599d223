//! `rollouts dashboard`: Argo's REST API and the pages, on 127.0.0.1:3100 by default.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::dashboard::{self, Options};
use crate::kubeapi::KubeArgs;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Port to listen on (0: any free port, printed at start).
    #[arg(short = 'p', long, default_value_t = 3100)]
    pub port: u16,
    /// The path everything is served under (`/<root-path>/`, the API at `/<root-path>/api/v1/`).
    #[arg(long, default_value = "rollouts")]
    pub root_path: String,
    /// The address to listen on. Anything but a loopback address needs `--token-file`.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// Refuse every action (promote, abort, retry, restart, set image, undo) and hide their buttons.
    #[arg(long)]
    pub read_only: bool,
    /// A file holding the bearer token every request must carry (`Authorization: Bearer <token>`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Runs the dashboard until interrupted; exit 1 with `error: …` when it cannot start.
pub fn run(args: DashboardArgs) -> ExitCode {
    let options = Options {
        address: args.address,
        port: args.port,
        root_path: args.root_path,
        read_only: args.read_only,
        token_file: args.token_file,
        kube: args.kube,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dashboard::serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
