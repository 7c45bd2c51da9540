//! `gourd gc`: drop cache entries that nothing in scope needs.
//!
//! Always kept: the result of each stage's last run in this workspace, the
//! result its current key would use (together, the workspace scope), and the
//! results behind registered model versions. The scopes widen what is kept,
//! as DVC's do: the results in force at the tip of every branch, at every
//! tag, at every commit, and each stage's last N results in lineage.
//! Everything else goes, with the objects only it used.

use std::collections::{BTreeSet, HashSet};
use std::process::ExitCode;

use gourd_core::workspace::Workspace;
use gourd_digest::Digest;
use gourd_lineage::Lineage;

use crate::error::CommandError;
use crate::revision::{records_at_commit, records_in_force};
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// Keep what the working state uses: each stage's last run and current
    /// result (the default scope, always included).
    #[arg(short = 'w', long)]
    workspace: bool,
    /// Also keep the results in force at the tip of every local branch.
    #[arg(short = 'a', long)]
    all_branches: bool,
    /// Also keep the results in force at every tag.
    #[arg(short = 'T', long)]
    all_tags: bool,
    /// Also keep the results in force at every commit of the repository.
    #[arg(short = 'A', long)]
    all_commits: bool,
    /// Also keep each stage's last N results recorded in lineage.
    #[arg(long, value_name = "N")]
    keep_last: Option<usize>,
    /// Say what would be removed and how much it takes, remove nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Collect the remote cache instead of the local one (see docs/cache.md).
    #[arg(long)]
    remote: bool,
    /// With --remote: also remove results that lineage from other clones
    /// (fetched with `gourd pull`) still names.
    #[arg(long, requires = "remote")]
    force: bool,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // Reads the pipeline and history only: a clone without the data works.
    let loaded = location.load_checked(false)?;
    let ws = Workspace::open(&loaded.root)?;
    let _lock = crate::workspace::lock(&ws)?;
    // Every stage's last run here, of this pipeline file or another that
    // ran in this folder (`--file`): they share `.gourd`.
    let mut keep: HashSet<Digest> = ws.last_run_keys().into_iter().collect();
    let all: BTreeSet<usize> = (0..loaded.pipeline.stages.len()).collect();
    for status in gourd_core::plan::status(&ws, &loaded.pipeline, &loaded.dag, &all)? {
        keep.extend(status.key);
    }
    crate::commands::status::save_state_if_possible(&ws);
    // Tracked sources are data nothing else holds.
    keep.extend(crate::sources::keys(&loaded.root));

    let lineage = Lineage::open(&loaded.root)?;
    let wider = args.all_branches || args.all_tags || args.all_commits || args.keep_last.is_some();
    match &lineage {
        Some(lineage) => {
            let scoped = scope_keys(lineage, &loaded, args)?;
            keep.extend(scoped.iter().filter_map(|k| k.parse::<Digest>().ok()));
            // `gourd registry get` restores from them.
            keep.extend(crate::commands::registry::sync::registered_keys(&loaded.root, &ws)?);
        }
        None if wider => {
            return Err(CommandError::user(
                "--all-branches, --all-tags, --all-commits and --keep-last read lineage, which needs a git repository",
            ));
        }
        None => {}
    }
    if args.remote {
        return crate::commands::gc_remote::run(&loaded, lineage.as_ref(), &keep, args.dry_run, args.force);
    }

    let report = ws.store.collect_garbage(&keep, args.dry_run)?;
    let verb = if args.dry_run { "Would remove" } else { "Removed" };
    if args.dry_run {
        for removed in &report.removed {
            let outputs =
                if removed.outputs.is_empty() { "(unreadable result)".to_string() } else { removed.outputs.join(", ") };
            println!(
                "  {outputs}  {}  {}  {}",
                removed.finished_at.as_deref().unwrap_or("-"),
                crate::ui::bytes(removed.bytes),
                removed.key.short()
            );
        }
    }
    println!(
        "{verb} {} results, {} objects and {} folder listings ({}); kept {} results.",
        report.actions,
        report.objects,
        report.trees,
        crate::ui::bytes(report.bytes),
        report.kept_actions
    );
    Ok(ExitCode::SUCCESS)
}

/// The cache keys of the tracked sources `gourd.sources.json` records at
/// `commit` (none when it has no such file; every key-shaped word in it when
/// this gourd cannot read it, see `sources::keys_in`).
fn source_keys_at(lineage: &Lineage, commit: &str) -> Vec<String> {
    let Ok(Some(bytes)) = lineage.file_at(commit, crate::sources::FILE) else { return Vec::new() };
    crate::sources::keys_in(&String::from_utf8_lossy(&bytes)).iter().map(ToString::to_string).collect()
}

/// The stage keys the scopes beyond the workspace keep.
fn scope_keys(
    lineage: &Lineage,
    loaded: &crate::workspace::Loaded,
    args: &Args,
) -> Result<BTreeSet<String>, CommandError> {
    let mut keys = BTreeSet::new();
    if !(args.all_branches || args.all_tags || args.all_commits || args.keep_last.is_some()) {
        return Ok(keys);
    }
    let history = lineage.history()?;
    let mut commits = BTreeSet::new();
    if args.all_branches {
        commits.extend(lineage.tips("refs/heads/*")?);
    }
    if args.all_tags {
        commits.extend(lineage.tips("refs/tags/*")?);
    }
    if args.all_commits {
        // Every commit's is at least every tip's.
        commits.extend(lineage.tips("refs/heads/*")?);
        commits.extend(lineage.tips("refs/tags/*")?);
    }
    for commit in &commits {
        // The records the heuristic finds, and those that have the
        // pipeline's commands and params there: whichever is right, it stays.
        keys.extend(records_in_force(lineage, &history, commit)?.into_values().map(|r| r.key));
        let checked = records_at_commit(lineage, &history, &loaded.root, &loaded.file, commit)?;
        keys.extend(checked.into_values().map(|r| r.key));
        // The tracked sources that commit records: raw data, which nothing
        // can build again.
        keys.extend(source_keys_at(lineage, commit));
    }
    if args.all_commits {
        // A commit with no run of its own has an ancestor's results in
        // force, and that ancestor is in scope too: every run recorded at
        // a commit of the repository is all it takes.
        let all = lineage.all_commits()?;
        for commit in &all {
            keys.extend(source_keys_at(lineage, commit));
        }
        for entry in &history {
            let Some(run) = &entry.run else { continue };
            // A run made before the first commit (no commit to name) is in
            // force at that commit.
            if run.workspace_commit.as_ref().is_none_or(|c| all.contains(c)) {
                keys.extend(lineage.records_at(&entry.id)?.into_values().map(|r| r.key));
            }
        }
    }
    if let Some(n) = args.keep_last {
        let mut per_stage: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for entry in &history {
            for record in &entry.records {
                let kept = per_stage.entry(record.stage.as_str()).or_default();
                if kept.len() < n && !kept.contains(&record.key.as_str()) {
                    kept.push(record.key.as_str());
                }
            }
        }
        keys.extend(per_stage.into_values().flatten().map(String::from));
    }
    Ok(keys)
}
