//! `gourd gc`: drop cache entries that nothing needs.
//!
//! Kept: the result of each stage's last run in this workspace, the result
//! its current key would use, and every result a lineage record on any
//! `refs/gourd/*` ref names (so `gourd lineage` and restores of recorded
//! states keep working). Everything else goes, with the objects only it used.

use std::collections::{BTreeSet, HashSet};
use std::process::ExitCode;

use gourd_core::lock::WorkspaceLock;
use gourd_core::workspace::Workspace;
use gourd_lineage::Lineage;

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let loaded = location.load()?;
    let ws = Workspace::open(&loaded.root)?;
    let _lock = WorkspaceLock::acquire(&ws.gourd_dir, |_| {
        eprintln!("Waiting for the `gourd run` in this workspace to finish...");
    })?;
    let mut keep = HashSet::new();
    for stage in &loaded.pipeline.stages {
        if let Some(last) = ws.last_run(&stage.name) {
            keep.insert(last.key);
        }
    }
    let all: BTreeSet<usize> = (0..loaded.pipeline.stages.len()).collect();
    for status in gourd_core::plan::status(&ws, &loaded.pipeline, &loaded.dag, &all)? {
        keep.extend(status.key);
    }
    crate::commands::status::save_state_if_possible(&ws);
    if let Some(lineage) = Lineage::open(&loaded.root)? {
        keep.extend(lineage.all_keys()?.iter().filter_map(|k| k.parse::<gourd_digest::Digest>().ok()));
    }
    let report = ws.store.collect_garbage(&keep, args.dry_run)?;
    let verb = if args.dry_run { "Would remove" } else { "Removed" };
    println!(
        "{verb} {} results, {} objects and {} folder listings ({:.1} MiB); kept {} results.",
        report.actions,
        report.objects,
        report.trees,
        report.bytes as f64 / (1024.0 * 1024.0),
        report.kept_actions
    );
    Ok(ExitCode::SUCCESS)
}
