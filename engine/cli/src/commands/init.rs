//! `gourd init`: a starter pipeline, and the `.gitignore` block for
//! `.gourd/` and the pipeline's outputs. On an existing pipeline it keeps the
//! pipeline and repairs the block.

use std::process::ExitCode;

use crate::error::CommandError;
use crate::gitignore::{self, Synced};
use crate::workspace::{Location, PIPELINE_FILE};

#[derive(clap::Args)]
pub struct Args {}

const STARTER: &str = include_str!("../../../../templates/gourd.ncl");

pub fn run(location: &Location, _args: &Args) -> Result<ExitCode, CommandError> {
    let file = match &location.file {
        Some(file) => std::env::current_dir()?.join(file),
        None => std::env::current_dir()?.join(PIPELINE_FILE),
    };
    if file.is_dir() {
        return Err(CommandError::user(format!("`{}` is a folder, not a pipeline file", file.display()))
            .with_hint("rename the folder, then `gourd init` again"));
    }
    let existed = file.exists();
    if !existed {
        fs_err::write(&file, STARTER)?;
    }
    // The outputs come from the pipeline; one that does not load yet still
    // gets `.gourd/` ignored.
    let loaded = Location { file: Some(file.clone()) }.load_checked(false).ok();
    let synced = gitignore::sync(&file, loaded.as_ref().map(|l| &l.pipeline), true)?;
    let ignore = match &synced {
        Synced::Written(path) => format!("; updated `{}`", path.display()),
        Synced::Refused(path) => {
            format!(
                "; left `{}` alone (not a plain file): add `.gourd/` and the outputs to it yourself",
                path.display()
            )
        }
        Synced::Unchanged | Synced::Skipped => String::new(),
    };
    if existed {
        eprintln!("`{}` exists; kept it{ignore}.", file.display());
    } else {
        eprintln!("Created `{}`{ignore}; try `gourd run`.", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
