//! `gourd explain STAGE`: the stage's current key inputs against those of its
//! last recorded run, field by field.

use std::process::ExitCode;

use gourd_core::key;
use gourd_core::plan::{self, StageState};
use gourd_core::workspace::Workspace;

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// The stage to explain.
    stage: String,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let loaded = location.load()?;
    let Some(stage) = loaded.pipeline.stage(&args.stage) else {
        return Err(gourd_core::graph::GraphError::unknown_stage(&loaded.pipeline, &args.stage).into());
    };
    let ws = Workspace::open(&loaded.root)?;
    let assessment = match plan::assess(&ws, stage, false)? {
        Ok(a) => a,
        Err(missing) => {
            println!("stage `{}`: dep `{missing}` is missing, so its key cannot be computed.", stage.name);
            return Ok(ExitCode::SUCCESS);
        }
    };
    crate::commands::status::save_state_if_possible(&ws);
    let state = match &assessment.state {
        StageState::UpToDate(_) => "up to date".to_string(),
        StageState::Restorable(_, reasons) => {
            format!("restorable from cache ({})", reasons.join("; "))
        }
        StageState::Stale(reasons) => format!("stale ({})", reasons.join("; ")),
    };
    println!("stage `{}`: {state}", stage.name);
    println!("key:      {}", assessment.key);
    let Some(last) = ws.last_run(&stage.name) else {
        println!("last run: none recorded in this workspace");
        return Ok(ExitCode::SUCCESS);
    };
    println!("last run: {} ({}, {})", last.key, last.status, last.finished_at);
    let Some(previous) = ws.store.action(&last.key) else {
        println!("The last run's record is no longer in the cache (`gourd gc` removed it).");
        return Ok(ExitCode::SUCCESS);
    };
    let changes = key::diff(&previous.manifest, &assessment.manifest);
    if changes.is_empty() {
        println!("No key input changed since the last run.");
    } else {
        println!("Changed since the last run:");
        let width = changes.iter().map(|c| c.field.len()).max().unwrap_or(0);
        for change in &changes {
            println!("  {:width$}  {} -> {}", change.field, show(&change.old), show(&change.new));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(value: &Option<serde_json::Value>) -> String {
    match value {
        None => "(absent)".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => gourd_digest::canonical_json(v),
    }
}
