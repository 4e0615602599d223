//! `get rollout NAME [--watch]` and `get experiment NAME [--watch]`: the header and tree of
//! a rollout or an experiment, redrawn on changes.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use rollouts_core::api::lenient::rollout_lenient;
use rollouts_core::Timestamp;

use super::cluster::{Cluster, Root, Tree};
use super::error::CliError;
use super::experiment::experiment_view;
use super::info::rollout_info;
use super::tree::{render_experiment, render_rollout};
use super::watch::{watch_tree, Next};
use crate::kubeapi::KubeArgs;

/// Moves the cursor home and clears the screen before a redraw.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J\x1b[0;0H";

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Get details about and a visual representation of a rollout.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(GetRolloutArgs),
    /// Get details about and a visual representation of an experiment: its ReplicaSets,
    /// pods and analysis runs.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(GetExperimentArgs),
}

#[derive(Debug, Args)]
pub struct GetRolloutArgs {
    /// The rollout to show.
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    #[command(flatten)]
    pub view: ViewArgs,
}

#[derive(Debug, Args)]
pub struct GetExperimentArgs {
    /// The experiment to show.
    #[arg(value_name = "EXPERIMENT_NAME")]
    pub name: String,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// How both `get` verbs show their tree.
#[derive(Debug, Clone, Args)]
pub struct ViewArgs {
    /// Watch live updates (until interrupted).
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
    match command {
        GetCommand::Rollout(args) => {
            show_tree(Root::Rollout, &args.name, &args.view, |tree, now, colour| {
                let objects = tree.into_objects();
                let dropped = rollout_lenient(&objects.rollout).dropped.iter().map(ToString::to_string).collect();
                (render_rollout(&rollout_info(&objects), now, colour), dropped)
            })
            .await
        }
        GetCommand::Experiment(args) => {
            show_tree(Root::Experiment, &args.name, &args.view, |tree, now, colour| {
                (render_experiment(&experiment_view(&tree.into_experiment_objects()), now, colour), Vec::new())
            })
            .await
        }
    }
}

/// Prints the tree of the `root` object `name` once, or with `--watch` redraws it whenever
/// the text changes, until interrupted or the timeout. `render` gives the text, and the
/// fields it could not read (warned about in a one-shot view).
async fn show_tree<R>(root: Root, name: &str, view: &ViewArgs, render: R) -> Result<ExitCode, CliError>
where
    R: Fn(Tree, Timestamp, bool) -> (String, Vec<String>),
{
    let cluster = Cluster::connect(&view.kube).await?;
    let colour = use_colour(view.no_color);
    if !view.watch {
        let (text, dropped) = render(cluster.tree(root, name).await?, now(), colour);
        for e in dropped {
            eprintln!("warning: not shown, this version does not read it: {e}");
        }
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = (view.timeout_seconds > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_secs(view.timeout_seconds));
    let mut shown = String::new();
    watch_tree(&cluster, root, name, deadline, |tree| {
        let (text, _) = render(tree, now(), colour);
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
