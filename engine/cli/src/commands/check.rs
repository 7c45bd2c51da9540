//! `gourd check`: evaluate and validate, run nothing.

use std::process::ExitCode;

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(location: &Location, _args: &Args) -> Result<ExitCode, CommandError> {
    // Says too what the built-in steps need to run (`gourd-step`, its
    // libtorch), for every stage; `run` asks it for the stages it runs.
    let loaded = location.load()?;
    // What `run` would refuse of the remote settings (the pipeline's
    // `remote` record and the GOURD_REMOTE_* variables), `check` refuses.
    crate::remote::check(&loaded.pipeline, &loaded.root)?;
    let stages = loaded.pipeline.stages.len();
    let edges = loaded.dag.edge_count();
    println!(
        "{}: ok, {stages} stage{}, {edges} edge{}",
        loaded.file.file_name().unwrap_or_default().to_string_lossy(),
        if stages == 1 { "" } else { "s" },
        if edges == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
