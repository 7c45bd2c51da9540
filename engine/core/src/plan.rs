//! Staleness: whether a stage must run, can be restored, or is up to date,
//! and why. `gourd status`, `gourd run --dry-run` and the scheduler all decide
//! through [`assess`], so they never disagree.

use std::collections::BTreeSet;
use std::io;

use gourd_digest::Digest;
use serde_json::Value;

use crate::graph::Dag;
use crate::key;
use crate::model::{Pipeline, Stage};
use crate::path::WsPath;
use crate::store::{ActionResult, StoreError};
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

/// Decides what `stage` needs, hashing its deps as they are in the workspace.
/// `Err(dep)` names a dep that does not exist.
pub fn assess(ws: &Workspace, stage: &Stage, force: bool) -> io::Result<Result<Assessment, WsPath>> {
    let deps = match ws.hash_deps(&stage.deps)? {
        Ok(deps) => deps,
        Err(missing) => return Ok(Err(missing)),
    };
    let manifest = key::manifest(stage, &deps, ws.algorithm());
    let key = key::key(&manifest, ws.algorithm());
    let state = if force {
        StageState::Stale(vec!["forced".to_string()])
    } else if stage.always_run {
        StageState::Stale(vec!["always_run is set".to_string()])
    } else {
        match ws.store.action(&key) {
            Some(action) => check_outputs(ws, action)?,
            None => StageState::Stale(reasons_against_last_run(ws, &stage.name, &manifest)),
        }
    };
    Ok(Ok(Assessment { key, manifest, state }))
}

fn check_outputs(ws: &Workspace, action: ActionResult) -> io::Result<StageState> {
    let mut reasons = Vec::new();
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
                    reasons.push(format!("cache object of out `{path}` is corrupt (removed)"));
                    false
                }
                Err(StoreError::Io(err)) => return Err(err),
                Err(StoreError::Foreign) => false,
            };
    }
    Ok(if reasons.is_empty() {
        StageState::UpToDate(action)
    } else if restorable {
        StageState::Restorable(action, reasons)
    } else {
        StageState::Stale(reasons)
    })
}

fn reasons_against_last_run(ws: &Workspace, stage: &str, manifest: &Value) -> Vec<String> {
    let Some(last) = ws.last_run(stage) else {
        return vec!["never run".to_string()];
    };
    let Some(previous) = ws.store.action(&last.key) else {
        return vec!["no cached result".to_string()];
    };
    let changes = key::diff(&previous.manifest, manifest);
    if changes.is_empty() {
        return vec!["no cached result".to_string()];
    }
    let mut reasons: Vec<String> = changes.iter().map(key::FieldChange::reason).collect();
    reasons.dedup();
    reasons
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

/// The status of the selected stages, in topological order. A stage below a
/// stale one is stale too: its deps are not known until the upstream runs.
/// Saving what hashing learnt ([`Workspace::save_state`]) is left to the
/// caller: a read-only command answers even when it cannot be saved.
pub fn status(
    ws: &Workspace,
    pipeline: &Pipeline,
    dag: &Dag,
    selected: &BTreeSet<usize>,
) -> io::Result<Vec<StageStatus>> {
    let mut fresh = vec![false; pipeline.stages.len()];
    let mut out = Vec::new();
    for &index in dag.order() {
        if !selected.contains(&index) {
            continue;
        }
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
            match assess(ws, stage, false)? {
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
