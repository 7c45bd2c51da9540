//! `gourd status`: which stages are stale, and why.

use std::process::ExitCode;

use gourd_core::plan;
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
    let (loaded, hashing) = location.load_prefetching(false)?;
    let ws = Workspace::open_with(&loaded.root, hashing)?;
    let selected = loaded.dag.select(&loaded.pipeline, &args.stages)?;
    let statuses = plan::status(&ws, &loaded.pipeline, &loaded.dag, &selected)?;
    for line in crate::sources::differing(&ws) {
        eprintln!("note: {line}");
    }
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
        println!("{}", serde_json::to_string_pretty(&json!({ "stages": stages })).unwrap());
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

/// Saves what a read-only command learnt while hashing (the stat cache), so
/// the next command hashes less. It is only a saving of time: where it cannot
/// be written (a full disk, a read-only `.gourd/`), the command still answers.
pub fn save_state_if_possible(ws: &Workspace) {
    if let Err(err) = ws.save_state() {
        eprintln!("warning: gourd's state was not saved (the next command hashes the deps again): {err}");
    }
}
