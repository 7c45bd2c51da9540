//! `gourd log [STAGE]`: the execution history recorded in lineage.

use std::process::ExitCode;

use gourd_lineage::Lineage;
use serde_json::json;

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// Only this stage.
    stage: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// At most N entries.
    #[arg(short = 'n', long, value_name = "N")]
    max_count: Option<usize>,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    if args.max_count == Some(0) {
        return Err(CommandError::user("`-n` must be at least 1"));
    }
    let root = location.root()?;
    let Some(lineage) = Lineage::open(&root)? else {
        return Err(CommandError::user(format!("`{}` is not in a git repository; lineage is off", root.display())));
    };
    let mut entries = Vec::new();
    for commit in lineage.history()? {
        // Within one run, the stage that finished last comes first.
        for record in commit.records.into_iter().rev() {
            if args.stage.as_ref().is_some_and(|s| s != &record.stage) {
                continue;
            }
            entries.push((commit.id.clone(), record));
        }
    }
    if let Some(stage) = args.stage.as_ref().filter(|_| entries.is_empty()) {
        check_stage_exists(location, stage)?;
    }
    if let Some(n) = args.max_count {
        entries.truncate(n);
    }
    if args.json {
        let entries: Vec<_> = entries
            .iter()
            .map(|(commit, r)| {
                json!({
                    "lineage_commit": commit,
                    "stage": r.stage,
                    "status": r.status,
                    "key": r.key,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "duration_ms": r.duration_ms,
                    "workspace_commit": r.workspace_commit,
                    "workspace_dirty": r.workspace_dirty,
                    "params": r.params,
                    "metrics": r.metrics,
                    "outs": r.outs,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "entries": entries })).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("No lineage recorded yet.");
        return Ok(ExitCode::SUCCESS);
    }
    let width = entries.iter().map(|(_, r)| r.stage.len()).max().unwrap_or(0);
    for (commit, r) in &entries {
        let workspace = match &r.workspace_commit {
            Some(c) => format!("at {}{}", &c[..c.len().min(10)], if r.workspace_dirty { "+dirty" } else { "" }),
            None => "before the first commit".to_string(),
        };
        println!(
            "{}  {:<width$}  {:<8}  key {}  {workspace}  (lineage {})",
            r.finished_at,
            r.stage,
            r.status,
            &r.key[..12.min(r.key.len())],
            &commit[..10.min(commit.len())]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A stage with no history must at least be in the pipeline: a typo is an
/// error, not an empty history.
fn check_stage_exists(location: &Location, stage: &str) -> Result<(), CommandError> {
    let loaded = location.load_checked(false)?;
    if loaded.pipeline.stage(stage).is_some() {
        return Ok(());
    }
    Err(gourd_core::graph::GraphError::unknown_stage(&loaded.pipeline, stage).into())
}
