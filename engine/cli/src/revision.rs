//! The pipeline and its metrics as they were at a git revision.

use std::collections::BTreeMap;
use std::path::Path;

use gourd_core::model::Pipeline;
use gourd_lineage::Lineage;

use crate::error::CommandError;

/// Which state of the workspace a diff side names.
pub enum Side {
    /// A git revision.
    Revision(String),
    /// The files as they are now.
    WorkingState,
}

impl Side {
    pub fn parse(arg: Option<&String>, default: Side) -> Side {
        match arg {
            Some(rev) => Side::Revision(rev.clone()),
            None => default,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Side::Revision(rev) => rev.clone(),
            Side::WorkingState => "workspace".to_string(),
        }
    }
}

/// Evaluates the pipeline file (and the Nickel files it imports) as they were
/// at `revision`, in a temporary folder; `None` when the file did not exist
/// then (a commit from before the project used gourd).
pub fn pipeline_at(
    lineage: &Lineage,
    root: &Path,
    file: &Path,
    revision: &str,
) -> Result<Option<Pipeline>, CommandError> {
    let rel = file.strip_prefix(root).unwrap_or(file).to_string_lossy().into_owned();
    let temp = tempfile::tempdir()?;
    let mut todo = vec![rel.clone()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let Some(bytes) = lineage.file_at(revision, &path)? else {
            if path == rel {
                return Ok(None);
            }
            continue;
        };
        let target = temp.path().join(&path);
        fs_err::create_dir_all(target.parent().expect("a file has a folder"))?;
        fs_err::write(&target, &bytes)?;
        let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
        for import in gourd_spec::imports(&String::from_utf8_lossy(&bytes)) {
            if let Some(normal) = normalize(&dir.join(import)) {
                todo.push(normal);
            }
        }
    }
    // Revisions whose pipeline files are the same bytes evaluate to the same
    // pipeline: once per process (`gc -T` on hundreds of tags).
    let mut text = Vec::new();
    for path in &seen {
        if let Ok(bytes) = std::fs::read(temp.path().join(path)) {
            text.extend_from_slice(path.as_bytes());
            text.push(0);
            text.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            text.extend_from_slice(&bytes);
        }
    }
    let same = gourd_digest::Hasher::digest_bytes(Default::default(), &text);
    static EVALUATED: std::sync::Mutex<BTreeMap<String, Pipeline>> = std::sync::Mutex::new(BTreeMap::new());
    if let Some(pipeline) = EVALUATED.lock().unwrap_or_else(|e| e.into_inner()).get(&same.to_string()) {
        return Ok(Some(pipeline.clone()));
    }
    let stdlib = gourd_spec::install_stdlib(&root.join(".gourd").join("stdlib"))?;
    let exe = std::env::current_exe()?;
    let limits = gourd_spec::EvalLimits::from_env();
    let loaded = gourd_spec::load(&exe, &temp.path().join(&rel), &stdlib, None, &limits, crate::ui::color_stderr());
    // Its diagnostics name the file as `REV:gourd.ncl`, not by the
    // temporary folder it was evaluated in.
    let pipeline = loaded.map_err(|err| {
        let mut err = CommandError::from(err);
        err.message = err.message.replace(&format!("{}/", temp.path().display()), &format!("{revision}:"));
        err
    })?;
    EVALUATED.lock().unwrap_or_else(|e| e.into_inner()).insert(same.to_string(), pipeline.clone());
    Ok(Some(pipeline))
}

fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Metrics files by path, as they were at `side`: at a revision, the file
/// committed there, else the value lineage holds for the results in force at
/// that commit (see [`records_in_force`]); in the working state, the files on
/// disk.
pub fn metrics_at(
    lineage: Option<&Lineage>,
    root: &Path,
    file: &Path,
    paths: &[String],
    side: &Side,
) -> Result<BTreeMap<String, serde_json::Value>, CommandError> {
    let mut out = BTreeMap::new();
    match side {
        Side::WorkingState => {
            for path in paths {
                let file = root.join(path);
                // Missing is normal (not run yet); there but unreadable is
                // said, or it would read as missing.
                let read = match std::fs::read(&file) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => Err(err.to_string()),
                    Ok(bytes) => gourd_core::metrics::parse(path, &bytes).map_err(|e| e.to_string()),
                };
                match read {
                    Ok(value) => {
                        out.insert(path.clone(), value);
                    }
                    Err(err) => eprintln!("warning: metrics file `{path}` cannot be read: {err}"),
                }
            }
        }
        Side::Revision(revision) => {
            let lineage = lineage.ok_or_else(|| CommandError::user("revisions need a git repository"))?;
            let commit = lineage.resolve(revision)?;
            let mut in_force = None;
            for path in paths {
                if let Some(bytes) = lineage.file_at(revision, path)? {
                    if let Ok(value) = gourd_core::metrics::parse(path, &bytes) {
                        out.insert(path.clone(), value);
                        continue;
                    }
                }
                if in_force.is_none() {
                    in_force = Some(records_at_commit(lineage, &lineage.history()?, root, file, &commit)?);
                }
                let records = in_force.as_ref().expect("just set");
                if let Some(value) = records.values().find_map(|r| r.metrics.get(path)) {
                    out.insert(path.clone(), value.clone());
                }
            }
        }
    }
    Ok(out)
}

/// [`records_in_force`], checked against the pipeline as it was at `commit`
/// (`file` is the pipeline file): a stage's record whose command, params,
/// env or committed dep files are not the stage's there gives way to the
/// newest record of the stage that has them, where one does. Such a record
/// is of another commit's run: a branch run about the same time, a commit
/// amended or rebased since, a shallow clone's first commit. Where the pipeline does not evaluate at
/// `commit`, the records are not checked.
pub fn records_at_commit(
    lineage: &Lineage,
    history: &[gourd_lineage::LineageCommit],
    root: &Path,
    file: &Path,
    commit: &str,
) -> Result<BTreeMap<String, gourd_lineage::Record>, CommandError> {
    let (mut found, trusted) = found_in_force(lineage, history, commit)?;
    // What a run with a clean workspace at the commit itself ran or
    // restored is what the commit holds: when that is every record, there
    // is nothing to check, nor a pipeline to evaluate. (Its other records,
    // of stages it did not run, may be of any earlier run.)
    if found.keys().all(|stage| trusted.contains(stage)) {
        return Ok(found);
    }
    let Ok(Some(pipeline)) = pipeline_at(lineage, root, file, commit) else { return Ok(found) };
    // A dep file the commit holds: its digest there (read once).
    let committed = std::cell::RefCell::new(BTreeMap::<String, Option<String>>::new());
    let dep_fits = |path: &str, digest: &str| {
        let mut committed = committed.borrow_mut();
        let there = committed.entry(path.to_string()).or_insert_with(|| {
            let bytes = lineage.file_at(commit, path).ok().flatten()?;
            Some(gourd_digest::Hasher::digest_bytes(Default::default(), &bytes).to_string())
        });
        // Not a file of the commit (a folder, an output, untracked data):
        // nothing to hold it against.
        there.as_deref().is_none_or(|there| there == digest)
    };
    let mut out = BTreeMap::new();
    for stage in &pipeline.stages {
        let manifest = gourd_core::key::manifest(stage, &BTreeMap::new(), Default::default());
        // Params as records hold them: a built-in step's configuration in.
        let params = stage.recorded_params();
        let fits = |r: &gourd_lineage::Record| {
            r.stage == stage.name
                && r.cmd == manifest["cmd"]
                && r.params == params
                && serde_json::to_value(&r.env).is_ok_and(|env| env == manifest["env"])
                && r.deps.iter().all(|(path, digest)| dep_fits(path, digest))
        };
        // None fits (the stage never ran so): what the commit-and-time rule
        // found stands, as before the check.
        let heuristic = found.remove(&stage.name);
        let record = match heuristic.as_ref().filter(|r| trusted.contains(&stage.name) || fits(r)) {
            Some(r) => Some(r.clone()),
            None => history.iter().flat_map(|c| &c.records).find(|r| fits(r)).cloned().or(heuristic),
        };
        out.extend(record.map(|r| (stage.name.clone(), r)));
    }
    Ok(out)
}

/// How many first-parent ancestors are searched for a recorded run.
const ANCESTORS_SEARCHED: usize = 1000;

/// The lineage records in force at a git commit: every stage's latest record
/// as of the last run recorded there, whether that run executed the stage or
/// found it up to date. A run recorded at the commit itself counts, else the
/// run that produced the commit (made on its parent with uncommitted changes,
/// before it was committed), else the same for the nearest first-parent
/// ancestor with a recorded run (nothing re-ran since).
pub fn records_in_force(
    lineage: &Lineage,
    history: &[gourd_lineage::LineageCommit],
    commit: &str,
) -> Result<BTreeMap<String, gourd_lineage::Record>, CommandError> {
    Ok(found_in_force(lineage, history, commit)?.0)
}

/// [`records_in_force`], and the stages whose records are sure to be what
/// `commit` holds: those a run with a clean workspace at `commit` itself
/// ran or restored.
fn found_in_force(
    lineage: &Lineage,
    history: &[gourd_lineage::LineageCommit],
    commit: &str,
) -> Result<(BTreeMap<String, gourd_lineage::Record>, std::collections::BTreeSet<String>), CommandError> {
    let mut next = Some(commit.to_string());
    let mut exact = true;
    for _ in 0..ANCESTORS_SEARCHED {
        let Some(commit) = next.take() else { break };
        let (parents, time) = lineage.commit_info(&commit)?;
        let committed_at =
            gourd_core::time::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.max(0) as u64 + 1));
        let at_commit = |run: &gourd_lineage::RunInfo| {
            !run.workspace_dirty && run.workspace_commit.as_deref() == Some(commit.as_str())
        };
        let before_commit = |run: &gourd_lineage::RunInfo| {
            run.workspace_dirty
                && run.workspace_commit.as_ref().map_or(parents.is_empty(), |c| parents.contains(c))
                && run.recorded_at <= committed_at
        };
        // History is newest first: the first match is the last run.
        if let Some(found) = history.iter().find(|c| c.run.as_ref().is_some_and(at_commit)) {
            let trusted = match exact {
                true => found.records.iter().map(|r| r.stage.clone()).collect(),
                false => Default::default(),
            };
            return Ok((lineage.records_at(&found.id)?, trusted));
        }
        if let Some(found) = history.iter().find(|c| c.run.as_ref().is_some_and(before_commit)) {
            return Ok((lineage.records_at(&found.id)?, Default::default()));
        }
        exact = false;
        next = parents.into_iter().next();
    }
    Ok((BTreeMap::new(), Default::default()))
}
