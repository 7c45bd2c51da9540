//! Staleness: whether a stage must run, can be restored, or is up to date,
//! and why. `gourd status`, `gourd explain`, `gourd run --dry-run` and the
//! scheduler all decide through [`assess`] (and [`status`] for a stage with
//! its upstream), so they never disagree.
//!
//! A reason names what changed since the stage's last run in this workspace
//! (a param, a dep, the command): when the workspace's outputs differ from the
//! result of the current key only because they are the last run's, that change
//! is the cause, not the outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use gourd_digest::Digest;
use serde_json::Value;

use crate::graph::Dag;
use crate::key;
use crate::model::{Pipeline, Stage};
use crate::path::WsPath;
use crate::store::{ActionResult, OutputRecord, StoreError};
use crate::workspace::Workspace;

#[derive(Debug, Clone)]
pub struct Assessment {
    pub key: Digest,
    pub manifest: Value,
    pub state: StageState,
}

#[derive(Debug, Clone)]
pub enum StageState {
    /// The key has a result and the workspace holds its outputs.
    UpToDate(ActionResult),
    /// The key has a result, but some outputs are missing or differ, and the
    /// cache holds all of them.
    Restorable(ActionResult, Vec<String>),
    /// The stage must run.
    Stale(Vec<String>),
}

/// Whether `stage` is frozen, no run of it ever began here, and its outputs
/// are all there already: they are kept as they are, as DVC keeps a frozen
/// stage's (a project converted from DVC holds them), rather than run over.
/// Once an output is missing, the stage runs once, as a frozen stage does
/// before its first run; `--force` runs it. What a failed or stopped run
/// of it left is not kept: that run is retried.
pub fn frozen_and_kept(ws: &Workspace, stage: &Stage) -> bool {
    stage.frozen
        && ws.last_run(&stage.name).is_none()
        && !ws.attempted(&stage.name)
        && stage.outputs().next().is_some()
        // Followed: a dangling link is no output.
        && stage.outputs().all(|output| std::fs::metadata(ws.root.join(output.path.as_str())).is_ok())
}

/// Decides what `stage` needs, hashing its deps as they are in the workspace.
/// `Err(dep)` names a dep that does not exist.
pub fn assess(ws: &Workspace, stage: &Stage, force: bool) -> io::Result<Result<Assessment, WsPath>> {
    Ok(assess_over(ws, stage, force, &[])?
        .unwrap_or_else(|| unreachable!("with nothing restored, every dep is read from the workspace")))
}

/// What a dep will hold once the outputs of stages above it are restored.
enum Restored {
    /// It is none of them, nor in or above one: as in the workspace.
    Untouched,
    /// It is one of them, or in one whose listing the store keeps.
    As(Digest),
    /// It holds one, or lies in one whose listing the store lacks.
    Unknown,
}

/// [`Restored`] for `dep`, given the outputs `restored` as their results
/// recorded them.
fn restored_dep(ws: &Workspace, restored: &[(WsPath, OutputRecord)], dep: &WsPath) -> Restored {
    for (out, record) in restored {
        if dep == out {
            return Restored::As(record.digest);
        }
        if let Some(inside) = dep.as_str().strip_prefix(out.as_str()).and_then(|rest| rest.strip_prefix('/')) {
            // (A file output has no listing: nothing is inside it.)
            return match ws.store.find_in_tree(&record.digest, inside) {
                Some((_, digest)) => Restored::As(digest),
                None => Restored::Unknown,
            };
        }
        if out.as_str().strip_prefix(dep.as_str()).is_some_and(|rest| rest.starts_with('/')) {
            return Restored::Unknown;
        }
    }
    Restored::Untouched
}

/// [`assess`], with the outputs `restored` (of stages above it that would
/// be restored, not run) read as their results recorded them rather than
/// as the workspace holds them now. `None` when a dep cannot be known so.
fn assess_over(
    ws: &Workspace,
    stage: &Stage,
    force: bool,
    restored: &[(WsPath, OutputRecord)],
) -> io::Result<Option<Result<Assessment, WsPath>>> {
    if stage.frozen && !force {
        // Its last result stands: the deps are not even read (they may be
        // gone, as for an import whose origin is elsewhere).
        if let Some(action) = ws.last_run(&stage.name).and_then(|last| ws.store.action(&last.key)) {
            let (key, manifest) = (action.key, action.manifest.clone());
            let state = match check_outputs(ws, action, &stage.name, &manifest)? {
                StageState::Stale(mut reasons) => {
                    reasons.push("frozen, and its last result cannot be restored (`--force` runs it)".to_string());
                    StageState::Stale(reasons)
                }
                other => other,
            };
            return Ok(Some(Ok(Assessment { key, manifest, state })));
        }
    }
    let mut known = BTreeMap::new();
    let mut on_disk = Vec::with_capacity(stage.deps.len());
    for dep in &stage.deps {
        match restored_dep(ws, restored, dep) {
            Restored::Untouched => on_disk.push(dep.clone()),
            Restored::As(digest) => {
                known.insert(dep.clone(), digest);
            }
            Restored::Unknown => return Ok(None),
        }
    }
    let deps = match ws.hash_deps(&on_disk)? {
        Ok(mut deps) => {
            deps.extend(known);
            deps
        }
        Err(missing) => return Ok(Some(Err(missing))),
    };
    let manifest = key::manifest(stage, &deps, ws.algorithm());
    let key = key::key(&manifest, ws.algorithm());
    let state = if force {
        StageState::Stale(vec!["forced".to_string()])
    } else if stage.always_run {
        StageState::Stale(vec!["always_run is set".to_string()])
    } else {
        match ws.store.action(&key) {
            Some(action) => check_outputs(ws, action, &stage.name, &manifest)?,
            None => StageState::Stale(reasons_against_last_run(ws, &stage.name, &manifest)),
        }
    };
    Ok(Some(Ok(Assessment { key, manifest, state })))
}

fn check_outputs(ws: &Workspace, action: ActionResult, stage: &str, manifest: &Value) -> io::Result<StageState> {
    let mut reasons = Vec::new();
    let mut damaged = Vec::new();
    let mut restorable = true;
    for (path, record) in &action.outputs {
        let Ok(path) = WsPath::new(path) else {
            continue;
        };
        let current = ws.hash(&path)?;
        if current.as_ref().map(|t| t.digest()) == Some(record.digest) {
            continue;
        }
        reasons.push(match current {
            None => format!("out `{path}` is missing"),
            Some(_) => format!("out `{path}` was modified"),
        });
        // Restorable means the bytes are there and whole, not merely that
        // files with the right names exist.
        restorable &= record.cached
            && match ws.store.verify(record.kind, &record.digest) {
                Ok(()) => true,
                Err(StoreError::Missing { .. }) => false,
                Err(StoreError::Corrupt { .. }) => {
                    damaged.push(format!("cache object of out `{path}` is corrupt (removed)"));
                    false
                }
                Err(StoreError::Io(err)) => return Err(err),
                Err(StoreError::Foreign | StoreError::Link { .. } | StoreError::Displace(_)) => false,
            };
    }
    if !reasons.is_empty() {
        // The outputs are another run's: say what changed since that run.
        if let Some(changed) = changes_since_last_run(ws, stage, &action.key, manifest) {
            reasons = changed;
        }
    }
    reasons.extend(damaged);
    Ok(if reasons.is_empty() {
        StageState::UpToDate(action)
    } else if restorable {
        StageState::Restorable(action, reasons)
    } else {
        StageState::Stale(reasons)
    })
}

/// What changed since the stage's last run, when that run had another key
/// than `key` (the workspace then holds its outputs).
fn changes_since_last_run(ws: &Workspace, stage: &str, key: &Digest, manifest: &Value) -> Option<Vec<String>> {
    let last = ws.last_run(stage).filter(|last| last.key != *key)?;
    let previous = ws.store.action(&last.key)?;
    let reasons = reasons_for(ws, &key::diff(&previous.manifest, manifest));
    (!reasons.is_empty()).then_some(reasons)
}

fn reasons_against_last_run(ws: &Workspace, stage: &str, manifest: &Value) -> Vec<String> {
    let Some(last) = ws.last_run(stage) else {
        let why =
            if ws.attempted(stage) { "never run to the end (its last run failed or was stopped)" } else { "never run" };
        return vec![why.to_string()];
    };
    let Some(previous) = ws.store.action(&last.key) else {
        return vec!["no cached result".to_string()];
    };
    let reasons = reasons_for(ws, &key::diff(&previous.manifest, manifest));
    if reasons.is_empty() {
        return vec!["no cached result".to_string()];
    }
    reasons
}

/// One reason per change; a folder dep says how many files changed in it.
fn reasons_for(ws: &Workspace, changes: &[key::FieldChange]) -> Vec<String> {
    let mut reasons: Vec<String> = changes
        .iter()
        .map(|change| match dep_folder_changes(ws, change) {
            Some(inside) if !inside.summary().is_empty() => format!("{}: {}", change.reason(), inside.summary()),
            _ => change.reason(),
        })
        .collect();
    reasons.dedup();
    reasons
}

/// For a changed dep that is a folder, the files that changed in it, when
/// the store kept the folder's listing at the earlier run.
pub fn dep_folder_changes(ws: &Workspace, change: &key::FieldChange) -> Option<crate::changes::FolderChanges> {
    let dep = change.field.strip_prefix("deps.")?;
    let old: Digest = change.old.as_ref()?.as_str()?.parse().ok()?;
    let now = ws.hash(&WsPath::new(dep).ok()?).ok()??;
    crate::changes::folder_changes(&ws.store, &old, &now)
}

/// The state of one stage as `gourd status` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageStatus {
    pub name: String,
    pub fresh: bool,
    pub restorable: bool,
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Digest>,
}

/// What a stage will hold when the stages below it come to run, as
/// [`status`] decided it.
#[derive(Debug, Clone, Copy)]
enum Upstream {
    Fresh,
    /// Restored from the result of this key.
    Restored(Digest),
    Stale,
}

/// The status of the selected stages, in topological order. A stage below a
/// stale one is stale too: its deps are not known until the upstream runs.
/// Below one that would be restored, the restored outputs are read as its
/// result recorded them, so that the stage's key is known (`gc` keeps its
/// result, `run --dry-run` says it would be restored).
/// Stages are assessed on all cores, wave by wave: a wave holds the stages
/// whose upstream stages are all decided, so each gets the answer it would
/// get in its turn. Saving what hashing learnt ([`Workspace::save_state`]) is
/// left to the caller: a read-only command answers even when it cannot be
/// saved.
pub fn status(
    ws: &Workspace,
    pipeline: &Pipeline,
    dag: &Dag,
    selected: &BTreeSet<usize>,
) -> io::Result<Vec<StageStatus>> {
    use rayon::prelude::*;
    let mut upstream = vec![Upstream::Stale; pipeline.stages.len()];
    let mut decided: Vec<Option<StageStatus>> = vec![None; pipeline.stages.len()];
    // An upstream stage left out of the selection counts as stale.
    let mut waiting_on: BTreeMap<usize, usize> = selected
        .iter()
        .map(|&index| (index, dag.upstream(index).into_iter().filter(|u| selected.contains(u)).count()))
        .collect();
    let mut wave: Vec<usize> = dag.order().iter().copied().filter(|index| waiting_on.get(index) == Some(&0)).collect();
    while !wave.is_empty() {
        let statuses: Vec<io::Result<StageStatus>> =
            wave.par_iter().map(|&index| stage_status(ws, pipeline, dag, index, &upstream)).collect();
        let mut next = Vec::new();
        for (&index, status) in wave.iter().zip(statuses) {
            let status = status?;
            upstream[index] = match (status.fresh, status.restorable, status.key) {
                (true, _, _) => Upstream::Fresh,
                (false, true, Some(key)) => Upstream::Restored(key),
                _ => Upstream::Stale,
            };
            decided[index] = Some(status);
            for down in dag.downstream(index) {
                if let Some(n) = waiting_on.get_mut(&down) {
                    *n -= 1;
                    if *n == 0 {
                        next.push(down);
                    }
                }
            }
        }
        wave = next;
    }
    Ok(dag.order().iter().filter_map(|&index| decided[index].take()).collect())
}

/// One stage's status, given what the stages above it will hold.
fn stage_status(
    ws: &Workspace,
    pipeline: &Pipeline,
    dag: &Dag,
    index: usize,
    upstream: &[Upstream],
) -> io::Result<StageStatus> {
    let stage = &pipeline.stages[index];
    let above = dag.upstream(index);
    let unknown = |stages: &[usize]| StageStatus {
        name: stage.name.clone(),
        fresh: false,
        restorable: false,
        reasons: stages.iter().map(|&u| format!("upstream `{}` is stale", pipeline.stages[u].name)).collect(),
        key: None,
    };
    let not_fresh: Vec<usize> = above.iter().copied().filter(|&u| !matches!(upstream[u], Upstream::Fresh)).collect();
    let mut restored = Vec::new();
    for &u in &not_fresh {
        let result = match upstream[u] {
            Upstream::Restored(key) => ws.store.action(&key),
            _ => None,
        };
        let Some(result) = result else {
            let stale: Vec<usize> =
                not_fresh.iter().copied().filter(|&u| !matches!(upstream[u], Upstream::Restored(_))).collect();
            return Ok(unknown(if stale.is_empty() { &not_fresh } else { &stale }));
        };
        restored
            .extend(result.outputs.into_iter().filter_map(|(path, record)| Some((WsPath::new(&path).ok()?, record))));
    }
    if frozen_and_kept(ws, stage) {
        return Ok(StageStatus {
            name: stage.name.clone(),
            fresh: true,
            restorable: false,
            reasons: vec![],
            key: None,
        });
    }
    let Some(assessment) = assess_over(ws, stage, false, &restored)? else {
        return Ok(unknown(&not_fresh));
    };
    Ok(match assessment {
        Err(missing) => StageStatus {
            name: stage.name.clone(),
            fresh: false,
            restorable: false,
            reasons: vec![format!("dep `{missing}` is missing")],
            key: None,
        },
        Ok(assessment) => {
            let (fresh, restorable, reasons) = match assessment.state {
                StageState::UpToDate(_) => (true, false, vec![]),
                StageState::Restorable(_, reasons) => (false, true, reasons),
                StageState::Stale(reasons) => (false, false, reasons),
            };
            StageStatus { name: stage.name.clone(), fresh, restorable, reasons, key: Some(assessment.key) }
        }
    })
}
