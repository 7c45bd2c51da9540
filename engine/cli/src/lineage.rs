//! Turning a run's results into lineage records.

use std::time::SystemTime;

use gourd_core::journal::Journal;
use gourd_core::model::{Pipeline, Stage};
use gourd_core::run::{Outcome, Summary};
use gourd_core::store::ActionResult;
use gourd_core::workspace::Workspace;
use gourd_lineage::{Lineage, Record, RunInfo};

use crate::error::CommandError;

impl From<gourd_lineage::LineageError> for CommandError {
    fn from(err: gourd_lineage::LineageError) -> Self {
        match err {
            err @ gourd_lineage::LineageError::UnknownRevision(_) => CommandError::user(err.to_string()),
            err => CommandError::environment(format!("lineage: {err}")),
        }
    }
}

/// Opens the lineage of the repository holding `root`, or says (once) that
/// lineage is off outside a git repository.
pub fn open_or_note(root: &std::path::Path) -> Result<Option<Lineage>, CommandError> {
    let lineage = Lineage::open(root)?;
    if lineage.is_none() {
        eprintln!("note: `{}` is not in a git repository; lineage is off", root.display());
    }
    Ok(lineage)
}

/// Records every stage that ran or was restored. Returns the lineage commit.
/// `overridden`: params were set for this run only (`run --set`), so the run
/// is not what the commit says, and is recorded as a run with changes.
/// `state`: the workspace's commit and whether it had changes, when asked
/// already (else asked here).
pub fn record_run(
    lineage: &Lineage,
    pipeline: &Pipeline,
    summary: &Summary,
    overridden: bool,
    state: Option<(Option<String>, bool)>,
) -> Result<Option<String>, CommandError> {
    let done: Vec<_> = summary
        .reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Ran | Outcome::Restored))
        .filter_map(|r| Some((r, r.action.as_ref()?, pipeline.stage(&r.stage)?)))
        .collect();
    if done.is_empty() {
        return Ok(None);
    }
    let (workspace_commit, workspace_dirty) = match state {
        Some(state) => state,
        None => lineage.workspace_state()?,
    };
    let workspace_dirty = workspace_dirty || overridden;
    let now = SystemTime::now();
    let records: Vec<Record> = done
        .iter()
        .map(|(report, action, stage)| {
            let timing = match report.outcome {
                Outcome::Ran => (action.started_at.clone(), action.finished_at.clone(), action.duration_ms),
                _ => {
                    let started = now.checked_sub(report.duration).unwrap_or(now);
                    let ms = report.duration.as_millis() as u64;
                    (gourd_core::time::rfc3339(started), gourd_core::time::rfc3339(now), ms)
                }
            };
            let status = if report.outcome == Outcome::Ran { "ran" } else { "restored" };
            let state = (workspace_commit.clone(), workspace_dirty);
            build_record(stage, action, status, report.executed_by.clone(), timing, state)
        })
        .collect();
    record(lineage, records, workspace_commit, workspace_dirty, now).map(Some)
}

/// Records the lineage of stages that finished in a run killed before it
/// recorded them (see `gourd_core::journal`), then forgets them. A stage
/// whose result never landed, or that the pipeline no longer has, is
/// dropped: there is nothing true to say about it.
pub fn recover(root: &std::path::Path, ws: &Workspace, pipeline: &Pipeline) -> Result<(), CommandError> {
    let pending = Journal::pending(&ws.gourd_dir);
    if pending.is_empty() {
        return Ok(());
    }
    let Some(lineage) = Lineage::open(root)? else {
        Journal::clear(&ws.gourd_dir)?;
        return Ok(());
    };
    let (workspace_commit, workspace_dirty) = lineage.workspace_state()?;
    let records: Vec<Record> = pending
        .iter()
        .filter_map(|entry| {
            let action = ws.store.action(&entry.key)?;
            let stage = pipeline.stage(&entry.stage)?;
            let timing = match entry.status.as_str() {
                "ran" => (action.started_at.clone(), action.finished_at.clone(), action.duration_ms),
                _ => (entry.started_at.clone(), entry.noted_at.clone(), 0),
            };
            let state = (workspace_commit.clone(), workspace_dirty);
            Some(build_record(stage, &action, &entry.status, entry.executed_by.clone(), timing, state))
        })
        .collect();
    if !records.is_empty() {
        let count = records.len();
        record(&lineage, records, workspace_commit, workspace_dirty, SystemTime::now())?;
        eprintln!("note: recorded the lineage of {count} stage(s) from an earlier `gourd run` that was killed");
    }
    Journal::clear(&ws.gourd_dir)?;
    Ok(())
}

/// The records of the stages a run still going on has finished (noted in
/// the journal, not yet in lineage), newest first: a stage of that run (a
/// registry step) sees what ran before it.
pub fn pending_records(lineage: &Lineage, ws: &Workspace, pipeline: &Pipeline) -> Result<Vec<Record>, CommandError> {
    let pending = Journal::pending(&ws.gourd_dir);
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let (workspace_commit, workspace_dirty) = lineage.workspace_state()?;
    Ok(pending
        .iter()
        .rev()
        .filter_map(|entry| {
            let action = ws.store.action(&entry.key)?;
            let stage = pipeline.stage(&entry.stage)?;
            let timing = (action.started_at.clone(), action.finished_at.clone(), action.duration_ms);
            let state = (workspace_commit.clone(), workspace_dirty);
            Some(build_record(stage, &action, &entry.status, entry.executed_by.clone(), timing, state))
        })
        .collect())
}

fn record(
    lineage: &Lineage,
    records: Vec<Record>,
    workspace_commit: Option<String>,
    workspace_dirty: bool,
    now: SystemTime,
) -> Result<String, CommandError> {
    let run = RunInfo {
        stages: records.iter().map(|r| r.stage.clone()).collect(),
        recorded_at: gourd_core::time::rfc3339(now),
        workspace_commit,
        workspace_dirty,
        gourd_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(lineage.record(&run, &records)?)
}

/// The lineage record of one stage's result. `timing` is (started at,
/// finished at, milliseconds); `state` the workspace's commit and whether
/// it had uncommitted changes.
pub(crate) fn build_record(
    stage: &Stage,
    action: &ActionResult,
    status: &str,
    executed_by: Option<String>,
    timing: (String, String, u64),
    state: (Option<String>, bool),
) -> Record {
    let (started_at, finished_at, duration_ms) = timing;
    let deps = action.manifest["deps"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    Record {
        stage: stage.name.clone(),
        key: action.key.to_string(),
        cmd: action.manifest["cmd"].clone(),
        deps,
        outs: action.outputs.iter().map(|(p, o)| (p.clone(), o.digest.to_string())).collect(),
        out_kinds: stage
            .outputs()
            .map(|o| (o.path.to_string(), serde_json::to_value(o.kind).unwrap().as_str().unwrap_or("data").to_string()))
            .collect(),
        params: stage.recorded_params(),
        metrics: action.metrics.clone(),
        env: stage.env.clone(),
        executor: stage.executor.name().to_string(),
        executed_by,
        started_at,
        finished_at,
        duration_ms,
        exit_code: action.exit_code,
        status: status.to_string(),
        workspace_commit: state.0,
        workspace_dirty: state.1,
        gourd_version: env!("CARGO_PKG_VERSION").to_string(),
        desc: stage.desc.clone(),
    }
}
