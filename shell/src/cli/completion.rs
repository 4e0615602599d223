//! `completion bash|zsh|fish|powershell`: the shell completion script (clap_complete).

use std::process::ExitCode;

use clap::{Args, CommandFactory, ValueEnum};

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells Argo's plugin writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

pub fn run(args: CompletionArgs) -> ExitCode {
    let shell = match args.shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
        CompletionShell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "rollouts", &mut script);
    // A closed pipe (`| head`) is not an error of ours.
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(&script);
    ExitCode::SUCCESS
}
