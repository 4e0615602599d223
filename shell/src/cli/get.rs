//! `get rollout NAME [--watch]`: the header and tree of a rollout, redrawn on changes.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use rollouts_core::Timestamp;

use super::cluster::Cluster;
use rollouts_core::api::lenient::rollout_lenient;
use super::error::CliError;
use super::info::rollout_info;
use super::tree::render_rollout;
use super::watch::{watch_rollout, Next};
use crate::kubeapi::KubeArgs;

/// Moves the cursor home and clears the screen before a redraw.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J\x1b[0;0H";

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Get details about and a visual representation of a rollout.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(GetRolloutArgs),
}

#[derive(Debug, Args)]
pub struct GetRolloutArgs {
    /// The rollout to show.
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Watch live updates to the rollout (until interrupted).
    #[arg(short, long)]
    pub watch: bool,
    /// Do not colorize output.
    #[arg(long)]
    pub no_color: bool,
    /// With --watch: stop after this many seconds (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub timeout_seconds: u64,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Colours on a terminal unless `--no-color` or `TERM=dumb`, as Argo decides.
pub fn use_colour(no_color: bool) -> bool {
    !no_color && std::io::stdout().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

pub async fn run(command: GetCommand) -> Result<ExitCode, CliError> {
    let GetCommand::Rollout(args) = command;
    let cluster = Cluster::connect(&args.kube).await?;
    let colour = use_colour(args.no_color);
    if !args.watch {
        let objects = cluster.objects(&args.name).await?;
        for e in rollout_lenient(&objects.rollout).dropped {
            eprintln!("warning: not shown, this version does not read it: {e}");
        }
        print!("{}", render_rollout(&rollout_info(&objects), now(), colour));
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = (args.timeout_seconds > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_secs(args.timeout_seconds));
    let mut shown = String::new();
    watch_rollout(&cluster, &args.name, deadline, |objects| {
        let text = render_rollout(&rollout_info(objects), now(), colour);
        if text != shown {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{CLEAR_SCREEN}{text}");
            let _ = out.flush();
            shown = text;
        }
        Next::Continue
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
