//! `gourd init`: a starter pipeline and an ignore entry for `.gourd/`.

use std::process::ExitCode;

use crate::error::CommandError;
use crate::workspace::{Location, PIPELINE_FILE};

#[derive(clap::Args)]
pub struct Args {}

const STARTER: &str = include_str!("../../../../templates/gourd.ncl");

pub fn run(location: &Location, _args: &Args) -> Result<ExitCode, CommandError> {
    let file = match &location.file {
        Some(file) => std::env::current_dir()?.join(file),
        None => std::env::current_dir()?.join(PIPELINE_FILE),
    };
    if file.exists() {
        return Err(CommandError::user(format!("`{}` already exists", file.display()))
            .with_hint("edit it, or remove it first to start over"));
    }
    fs_err::write(&file, STARTER)?;
    let root = file.parent().expect("a file has a folder");
    let ignore = root.join(".gitignore");
    let current = std::fs::read_to_string(&ignore).unwrap_or_default();
    if !current.lines().any(|l| matches!(l.trim(), ".gourd" | ".gourd/" | "/.gourd" | "/.gourd/")) {
        let sep = if current.is_empty() || current.ends_with('\n') { "" } else { "\n" };
        fs_err::write(&ignore, format!("{current}{sep}.gourd/\n"))?;
    }
    eprintln!("Created `{}`; try `gourd run`.", file.display());
    Ok(ExitCode::SUCCESS)
}
