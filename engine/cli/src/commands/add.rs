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
    // The pipeline's own files (what it imports): a clone reads them from
    // git before anything is pulled, so they stay in git.
    let canonical_root = fs_err::canonicalize(&loaded.root)?;
    // (The pipeline file itself is refused below, as gourd's own.)
    let main_file = std::fs::canonicalize(&loaded.file).ok();
    let read_by_pipeline: Vec<_> =
        gourd_spec::sources(&loaded.file).into_iter().filter(|file| Some(file) != main_file.as_ref()).collect();
    for typed in &args.paths {
        let path = workspace_path(&loaded.root, typed)?;
        let held = canonical_root.join(path.as_str());
        let held = std::fs::canonicalize(&held).unwrap_or(held);
        if let Some(file) = read_by_pipeline.iter().find(|file| file.starts_with(&held)) {
            let shown = file.strip_prefix(&canonical_root).unwrap_or(file).display();
            return Err(CommandError::user(format!(
                "`{path}` holds `{shown}`, which the pipeline reads: it belongs in git, where a clone finds it before any data is pulled"
            ))
            .with_hint("commit it to git; add only raw data"));
        }
        let source = crate::sources::add(&ws, &loaded.pipeline, &path, args.origin.clone())?;
        println!("Added `{path}` ({}, {})", source.kind, crate::ui::bytes(source.size));
    }
    if let Err(err) = crate::gitignore::sync(&loaded.file, Some(&loaded.pipeline), false) {
        eprintln!("note: could not update `.gitignore`: {err}");
    }
    eprintln!(
        "Commit `{}` (and `.gitignore`); `gourd push` shares the data, `gourd pull` brings it back on a clone.",
        crate::sources::FILE
    );
    Ok(ExitCode::SUCCESS)
}
