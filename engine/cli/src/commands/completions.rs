//! `gourd completions SHELL`: a completion script for a shell, generated from
//! the same clap definitions as the command line itself.

use std::io::Write;
use std::process::ExitCode;

use crate::error::CommandError;

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn run(args: &Args, cli: clap::Command) -> Result<ExitCode, CommandError> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut without_hidden_commands(cli), "gourd", &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The command line less its hidden commands (gourd's internal `__eval`),
/// which clap_complete would otherwise offer. Only names, arguments and
/// commands matter to a completion script.
fn without_hidden_commands(cli: clap::Command) -> clap::Command {
    clap::Command::new("gourd")
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|command| !command.is_hide_set()).cloned())
}
