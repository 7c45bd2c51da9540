//! `gourd add PATH…`: put raw data under gourd's control (see `sources.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use gourd_core::workspace::Workspace;

use crate::error::CommandError;
use crate::workspace::{Location, workspace_path};

#[derive(clap::Args)]
pub struct Args {
    /// Files or folders of raw data (not outputs of a stage).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Where the data came from (a URL, a repository), recorded with it.
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let loaded = location.load_checked(false)?;
    let ws = Workspace::open(&loaded.root)?;
    let _lock = crate::workspace::lock(&ws)?;
    for typed in &args.paths {
        let path = workspace_path(&loaded.root, typed)?;
        let source = crate::sources::add(&ws, &loaded.pipeline, &path, args.origin.clone())?;
        println!("Added `{path}` ({}, {})", source.kind, crate::ui::bytes(source.size));
    }
    if let Err(err) = crate::gitignore::sync(&loaded.root, Some(&loaded.pipeline), false) {
        eprintln!("note: could not update `.gitignore`: {err}");
    }
    eprintln!(
        "Commit `{}` (and `.gitignore`); `gourd push` shares the data, `gourd pull` brings it back on a clone.",
        crate::sources::FILE
    );
    Ok(ExitCode::SUCCESS)
}
