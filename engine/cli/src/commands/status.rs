//! `gourd status`: which stages are stale, and why.

use std::collections::BTreeSet;
use std::process::ExitCode;

use gourd_core::graph::Dag;
use gourd_core::model::Pipeline;
use gourd_core::plan::{self, StageState, StageStatus};
use gourd_core::workspace::Workspace;
use serde_json::json;

use crate::error::CommandError;
use crate::ui::{self, Style};
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// Only these stages (and what they need).
    stages: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Exit with 1 if any stage is stale.
    #[arg(long)]
    exit_code: bool,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // Every dep is statted while hashing anyway; a missing one is a reason.
    let loaded = location.load_checked(false)?;
    let ws = Workspace::open(&loaded.root)?;
    let selected = loaded.dag.select(&loaded.pipeline, &args.stages)?;
    let statuses = statuses(&ws, &loaded.pipeline, &loaded.dag, &selected)?;
    save_state_if_possible(&ws);
    let stale = statuses.iter().filter(|s| !s.fresh).count();
    if args.json {
        let stages: Vec<_> = statuses
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "state": if s.fresh { "fresh" } else { "stale" },
                    "reasons": s.reasons,
                    "restorable": s.restorable,
                    "key": s.key.map(|k| k.to_string()),
                })
            })
            .collect();
        println!("{}", json!({ "stages": stages }));
    } else {
        let width = statuses.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &statuses {
            if s.fresh {
                println!("{:width$}  {}", s.name, ui::word("fresh", Style::Ok));
            } else {
                let what = if s.restorable { "stale (restorable from cache)" } else { "stale" };
                println!("{:width$}  {}: {}", s.name, ui::word(what, Style::Warn), s.reasons.join("; "));
            }
        }
        match stale {
            0 => println!("Everything is up to date."),
            n => println!("{n} of {} stages stale.", statuses.len()),
        }
    }
    Ok(if args.exit_code && stale > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The selected stages' states in topological order, as [`plan::status`]
/// decides them (each through [`plan::assess`]; a stage below a stale one is
/// stale too), but without saving: that is left to the caller, which may
/// let it fail.
pub fn statuses(
    ws: &Workspace,
    pipeline: &Pipeline,
    dag: &Dag,
    selected: &BTreeSet<usize>,
) -> std::io::Result<Vec<StageStatus>> {
    let mut fresh = vec![false; pipeline.stages.len()];
    let mut out = Vec::new();
    for &index in dag.order().iter().filter(|i| selected.contains(i)) {
        let stage = &pipeline.stages[index];
        let stale_upstream: Vec<String> = dag
            .upstream(index)
            .into_iter()
            .filter(|&u| !fresh[u])
            .map(|u| format!("upstream `{}` is stale", pipeline.stages[u].name))
            .collect();
        let status = if !stale_upstream.is_empty() {
            StageStatus {
                name: stage.name.clone(),
                fresh: false,
                restorable: false,
                reasons: stale_upstream,
                key: None,
            }
        } else {
            match plan::assess(ws, stage, false)? {
                Err(missing) => StageStatus {
                    name: stage.name.clone(),
                    fresh: false,
                    restorable: false,
                    reasons: vec![format!("dep `{missing}` is missing")],
                    key: None,
                },
                Ok(assessment) => {
                    let (is_fresh, restorable, reasons) = match assessment.state {
                        StageState::UpToDate(_) => (true, false, vec![]),
                        StageState::Restorable(_, reasons) => (false, true, reasons),
                        StageState::Stale(reasons) => (false, false, reasons),
                    };
                    StageStatus {
                        name: stage.name.clone(),
                        fresh: is_fresh,
                        restorable,
                        reasons,
                        key: Some(assessment.key),
                    }
                }
            }
        };
        fresh[index] = status.fresh;
        out.push(status);
    }
    Ok(out)
}

/// Saves what a read-only command learnt while hashing (the stat cache), so
/// the next command hashes less. It is only a saving of time: where it cannot
/// be written (a full disk, a read-only `.gourd/`), the command still answers.
pub fn save_state_if_possible(ws: &Workspace) {
    if let Err(err) = ws.save_state() {
        eprintln!("warning: gourd's state was not saved (the next command hashes the deps again): {err}");
    }
}
