//! `gourd gc --remote`: the same collection on the shared cache (an S3 bucket
//! or a folder remote).
//!
//! Kept: what the local scopes keep and, unless `--force`, every result a
//! lineage record on any `refs/gourd/*` ref names, the git remotes' lineage
//! fetched first: other clones' runs reach this clone through `gourd pull`
//! and may still restore from them.
//! Results, objects and listings written in the last hour stay whatever
//! names them: a clone may be publishing them right now, before the lineage
//! (or the result) that will name them reaches anyone.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use gourd_core::remote::RemoteCache;
use gourd_digest::{Digest, EntryKind};
use gourd_lineage::Lineage;
use gourd_remote::ObjectCache;

use crate::error::CommandError;
use crate::workspace::Loaded;

/// Younger entries are never removed.
const GRACE: Duration = Duration::from_secs(3600);

pub fn run(
    loaded: &Loaded,
    lineage: Option<&Lineage>,
    keep: &HashSet<Digest>,
    dry_run: bool,
    force: bool,
) -> Result<ExitCode, CommandError> {
    let remote = crate::remote::from_pipeline(&loaded.pipeline, &loaded.root)?
        .ok_or_else(|| CommandError::user("`gc --remote`: the pipeline has no remote cache (see docs/remote.md)"))?;
    let Some(objects) = remote.objects else {
        return Err(CommandError::user(
            "`gc --remote` works on 's3 and 'folder remotes; a REAPI service evicts its cache by itself",
        ));
    };
    let mut keep = keep.clone();
    if !force {
        if let Some(lineage) = lineage {
            // Other clones' runs, as their pushes left them on the git
            // remotes: a fresh clone has not pulled them.
            crate::commands::sync::fetch_remote_lineages(lineage)?;
            keep.extend(lineage.all_keys()?.iter().filter_map(|k| k.parse::<Digest>().ok()));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime
        .block_on(collect(&objects, &keep, dry_run))
        .map_err(|e| CommandError::user(format!("remote cache {}: {e}", objects.describe())))?;
    let verb = if dry_run { "Would remove" } else { "Removed" };
    println!(
        "{verb} {} results, {} objects and {} folder listings ({}) from {}; kept {} results.",
        report.actions,
        report.objects,
        report.trees,
        crate::ui::bytes(report.bytes),
        objects.describe(),
        report.kept
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Default)]
struct Report {
    actions: usize,
    objects: usize,
    trees: usize,
    bytes: u64,
    kept: usize,
}

async fn collect(objects: &ObjectCache, keep: &HashSet<Digest>, dry_run: bool) -> Result<Report, String> {
    let mut report = Report::default();
    let now = SystemTime::now();
    let young = |at: SystemTime| now.duration_since(at).is_ok_and(|age| age < GRACE) || at > now;
    let (mut live_objects, mut live_trees) = (HashSet::new(), HashSet::new());
    let mut going = Vec::new();
    for (key, size, written) in objects.list("ac").await.map_err(|e| e.to_string())? {
        let action = if keep.contains(&key) || young(written) {
            objects.action(&key).await.map_err(|e| e.to_string())?
        } else {
            None
        };
        match action {
            Some(action) => {
                report.kept += 1;
                for output in action.outputs.values().filter(|o| o.cached) {
                    match output.kind {
                        EntryKind::File => {
                            live_objects.insert(output.digest);
                        }
                        EntryKind::Dir => mark_tree(objects, output.digest, &mut live_objects, &mut live_trees).await?,
                    }
                }
            }
            None => {
                report.actions += 1;
                report.bytes += size;
                going.push(key);
            }
        }
    }
    // Results first, then what only they reached: a reader never finds a
    // result whose objects are gone.
    if !dry_run {
        for key in &going {
            objects.remove("ac", key).await.map_err(|e| e.to_string())?;
        }
    }
    for (kind, live) in [("cas", &live_objects), ("trees", &live_trees)] {
        for (digest, size, written) in objects.list(kind).await.map_err(|e| e.to_string())? {
            if live.contains(&digest) || young(written) {
                continue;
            }
            if kind == "cas" {
                report.objects += 1;
            } else {
                report.trees += 1;
            }
            report.bytes += size;
            if !dry_run {
                objects.remove(kind, &digest).await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(report)
}

/// Marks a kept folder and everything under it; a listing that cannot be
/// read stops the collection before anything is removed from under it.
async fn mark_tree(
    objects: &ObjectCache,
    root: Digest,
    live_objects: &mut HashSet<Digest>,
    live_trees: &mut HashSet<Digest>,
) -> Result<(), String> {
    let mut todo = vec![root];
    while let Some(tree) = todo.pop() {
        if !live_trees.insert(tree) {
            continue;
        }
        let Some(entries) = objects.tree(&tree).await.map_err(|e| e.to_string())? else {
            return Err(format!("folder listing {tree} of a kept result cannot be read; nothing was removed"));
        };
        for entry in entries {
            match entry.kind {
                EntryKind::File => {
                    live_objects.insert(entry.digest);
                }
                EntryKind::Dir => todo.push(entry.digest),
            }
        }
    }
    Ok(())
}
