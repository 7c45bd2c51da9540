//! `gourd man`: the manual page, generated from the clap definitions: gourd(1)
//! on stdout, or with `--dir`, one page per command (gourd-run(1), ...).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::CommandError;

#[derive(clap::Args)]
pub struct Args {
    /// Write gourd.1 and a page for each command (gourd-run.1, ...) into DIR.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(args: &Args, cli: clap::Command) -> Result<ExitCode, CommandError> {
    let Some(dir) = &args.dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cli).render(&mut out)?;
        std::io::stdout().write_all(&out)?;
        return Ok(ExitCode::SUCCESS);
    };
    if dir.exists() && !dir.is_dir() {
        return Err(CommandError::user(format!("`{}` is not a folder", dir.display())));
    }
    fs_err::create_dir_all(dir)?;
    clap_mangen::generate_to(cli, dir).map_err(|e| {
        CommandError::environment(format!("cannot write the manual pages into `{}`: {e}", dir.display()))
    })?;
    eprintln!("Wrote the manual pages into `{}`.", dir.display());
    Ok(ExitCode::SUCCESS)
}
