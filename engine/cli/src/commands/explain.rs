//! `gourd explain STAGE`: the stage's state as `gourd status` gives it (the
//! same function decides), then its current key inputs against those of its
//! last recorded run, field by field, and file by file for a folder dep.

use std::process::ExitCode;

use gourd_core::key;
use gourd_core::plan;
use gourd_core::workspace::Workspace;

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// The stage to explain.
    stage: String,
}

/// Files listed per kind of change before the rest is only counted.
const LISTED: usize = 20;

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let loaded = location.load()?;
    let Some(stage) = loaded.pipeline.stage(&args.stage) else {
        return Err(gourd_core::graph::GraphError::unknown_stage(&loaded.pipeline, &args.stage).into());
    };
    let ws = Workspace::open(&loaded.root)?;
    let selected = loaded.dag.select(&loaded.pipeline, std::slice::from_ref(&args.stage))?;
    let statuses = plan::status(&ws, &loaded.pipeline, &loaded.dag, &selected)?;
    let status = statuses.iter().find(|s| s.name == stage.name).expect("the stage is selected");
    let state = if status.fresh {
        "up to date".to_string()
    } else if status.restorable {
        format!("restorable from cache ({})", status.reasons.join("; "))
    } else {
        format!("stale ({})", status.reasons.join("; "))
    };
    println!("stage `{}`: {state}", stage.name);
    let assessment = match plan::assess(&ws, stage, false)? {
        Ok(a) => a,
        Err(missing) => {
            println!("Its key cannot be computed while dep `{missing}` is missing.");
            crate::commands::status::save_state_if_possible(&ws);
            return Ok(ExitCode::SUCCESS);
        }
    };
    crate::commands::status::save_state_if_possible(&ws);
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
        let index = loaded.pipeline.stages.iter().position(|s| s.name == stage.name).expect("a stage");
        let waiting: Vec<String> = loaded
            .dag
            .upstream(index)
            .into_iter()
            .map(|u| loaded.pipeline.stages[u].name.as_str())
            .filter(|name| statuses.iter().any(|s| s.name == *name && !s.fresh))
            .map(|name| format!("`{name}`"))
            .collect();
        if waiting.is_empty() {
            println!("No key input changed since the last run.");
        } else {
            println!(
                "No key input changed since the last run, with the deps as they are now: `{}` runs again only if \
                 {} changes them when it runs.",
                stage.name,
                waiting.join(" or ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("Changed since the last run:");
    let width = changes.iter().map(|c| c.field.len()).max().unwrap_or(0);
    for change in &changes {
        match plan::dep_folder_changes(&ws, change) {
            Some(inside) if !inside.summary().is_empty() => {
                let dep = change.field.trim_start_matches("deps.");
                println!("  {:width$}  folder: {}", change.field, inside.summary());
                for (what, files) in
                    [("added", &inside.added), ("removed", &inside.removed), ("modified", &inside.modified)]
                {
                    for file in files.iter().take(LISTED) {
                        println!("    {what:8}  {dep}/{file}");
                    }
                    if files.len() > LISTED {
                        println!("    {what:8}  … and {} more", files.len() - LISTED);
                    }
                }
            }
            _ => println!("  {:width$}  {} -> {}", change.field, show(&change.old), show(&change.new)),
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
