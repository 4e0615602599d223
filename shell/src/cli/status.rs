//! `status NAME [--watch] [--timeout D]`: one line per status change until the rollout is
//! Healthy (exit 0) or Degraded (exit 1), as Argo's plugin does.

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args};
use rollouts_core::time::parse_go_duration;

use super::cluster::Cluster;
use rollouts_core::api::lenient::rollout_lenient;
use super::error::CliError;
use super::info::client_phase;
use rollouts_core::api::RolloutPhase;
use super::watch::{watch_rollout, Next};
use crate::kubeapi::KubeArgs;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The rollout to report on.
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Watch the status until the rollout is Healthy or Degraded (default); `--watch=false`
    /// prints the status once.
    #[arg(
        short,
        long,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub watch: bool,
    /// The length of time to watch before giving up (e.g. 30s, 2m, 1h); 0 waits forever.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_timeout, default_value = "0")]
    pub timeout: Timeout,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `--timeout`: `None` waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

fn parse_timeout(s: &str) -> Result<Timeout, String> {
    let nanos = parse_go_duration(s).map_err(|e| e.to_string())?;
    match u64::try_from(nanos) {
        Ok(0) => Ok(Timeout(None)),
        Ok(n) => Ok(Timeout(Some(Duration::from_nanos(n)))),
        Err(_) => Err(format!("a timeout cannot be negative ({s})")),
    }
}

/// What a status means for the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// With the rollout's message.
    Degraded(String),
    /// Progressing or Paused: not done yet.
    Pending,
}

pub fn verdict(phase: RolloutPhase, message: &str) -> Verdict {
    match phase {
        RolloutPhase::Healthy => Verdict::Healthy,
        RolloutPhase::Degraded => Verdict::Degraded(message.to_string()),
        RolloutPhase::Progressing | RolloutPhase::Paused => Verdict::Pending,
    }
}

/// The printed line: `Status` or `Status - Message`. A one-shot status of a finished rollout
/// is the bare phase, as Argo prints it.
pub fn status_line(phase: RolloutPhase, message: &str, watching: bool) -> String {
    let finished = matches!(verdict(phase, message), Verdict::Healthy | Verdict::Degraded(_));
    let status = phase.as_str();
    if message.is_empty() || (!watching && finished) {
        status.to_string()
    } else {
        format!("{status} - {message}")
    }
}

/// The exit of the verb once it stopped with the last seen status.
pub fn outcome(last: &Verdict, watching: bool) -> Result<ExitCode, CliError> {
    match last {
        Verdict::Healthy => Ok(ExitCode::SUCCESS),
        Verdict::Degraded(message) => {
            Err(CliError::refused(format!("The rollout is in a degraded state with message: {message}")))
        }
        Verdict::Pending if watching => Err(CliError::refused("Rollout status watch exceeded timeout")),
        Verdict::Pending => Ok(ExitCode::SUCCESS),
    }
}

pub async fn run(args: StatusArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.kube).await?;
    if !args.watch {
        let ro = rollout_lenient(&cluster.objects(&args.name).await?.rollout).rollout;
        let (status, message) = client_phase(&ro);
        println!("{}", status_line(status, &message, false));
        return outcome(&verdict(status, &message), false);
    }
    let deadline = args.timeout.0.map(|d| tokio::time::Instant::now() + d);
    let mut last = Verdict::Pending;
    let mut printed = String::new();
    watch_rollout(&cluster, &args.name, deadline, |objects| {
        let ro = rollout_lenient(&objects.rollout).rollout;
        let (status, message) = client_phase(&ro);
        let line = status_line(status, &message, true);
        if line != printed {
            println!("{line}");
            printed = line;
        }
        last = verdict(status, &message);
        match last {
            Verdict::Pending => Next::Continue,
            Verdict::Healthy | Verdict::Degraded(_) => Next::Stop,
        }
    })
    .await?;
    outcome(&last, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_message_when_there_is_one() {
        assert_eq!(status_line(RolloutPhase::Paused, "CanaryPauseStep", true), "Paused - CanaryPauseStep");
        assert_eq!(status_line(RolloutPhase::Healthy, "", true), "Healthy");
        assert_eq!(status_line(RolloutPhase::Degraded, "RolloutAborted: x", true), "Degraded - RolloutAborted: x");
        assert_eq!(status_line(RolloutPhase::Degraded, "RolloutAborted: x", false), "Degraded");
        assert_eq!(status_line(RolloutPhase::Progressing, "more replicas need to be updated", false), "Progressing - more replicas need to be updated");
    }

    #[test]
    fn healthy_exits_0_degraded_and_timeouts_fail_with_argos_messages() {
        assert!(outcome(&Verdict::Healthy, true).is_ok());
        let e = outcome(&verdict(RolloutPhase::Degraded, "RolloutAborted: aborted"), true).unwrap_err();
        assert_eq!(e.to_string(), "The rollout is in a degraded state with message: RolloutAborted: aborted");
        let e = outcome(&Verdict::Pending, true).unwrap_err();
        assert_eq!(e.to_string(), "Rollout status watch exceeded timeout");
        // A one-shot status of a rollout in progress is not a failure.
        assert!(outcome(&Verdict::Pending, false).is_ok());
        assert!(outcome(&verdict(RolloutPhase::Degraded, "x"), false).is_err());
    }

    #[test]
    fn timeouts_are_go_durations_and_zero_means_forever() {
        assert_eq!(parse_timeout("0").unwrap(), Timeout(None));
        assert_eq!(parse_timeout("90s").unwrap(), Timeout(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("1m30s").unwrap(), Timeout(Some(Duration::from_secs(90))));
        assert!(parse_timeout("10").is_err());
        assert!(parse_timeout("-1s").is_err());
    }
}
