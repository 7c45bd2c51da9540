//! `gourd registry register NAME [PATH]`: a model output, as gourd produced
//! it, becomes a version at the current commit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use gourd_core::store::OutputRecord;
use gourd_core::workspace::Workspace;
use gourd_lineage::registry::{self, Action, LineageRef, MoveRecord, NewMove};
use gourd_lineage::{Lineage, Record};

use super::{Loaded, open, short};
use crate::error::CommandError;
use crate::workspace::{Location, workspace_path};

#[derive(clap::Args)]
pub struct Args {
    /// The artifact's name in the registry (`pumpkin`, `models/cv:pumpkin`).
    pub name: String,
    /// The model output to register (default: the pipeline's
    /// `registry.NAME.path`).
    pub path: Option<PathBuf>,
    /// The version, `vX.Y.Z` (default: the next patch).
    #[arg(long)]
    pub version: Option<String>,
    /// Why: the tag's message.
    #[arg(short = 'm', long = "message", value_name = "MSG")]
    pub message: Option<String>,
}

/// What registering did.
pub enum Registered {
    New {
        version: String,
        tag: String,
    },
    /// A version holds these bytes already; nothing moved.
    Already {
        version: String,
    },
    /// With `soft`: the commit cannot take a version (none yet, or it holds
    /// one with other bytes); nothing moved, and why.
    Skipped {
        reason: String,
    },
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let outcome = register(location, args, "command line", false)?;
    match outcome {
        Registered::New { tag, .. } => println!("{tag}"),
        Registered::Already { version } => println!("{}@{version}", registry::tag::artifact_in_tag(&args.name)),
        Registered::Skipped { .. } => unreachable!("only with `soft`"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Registers `args.path` under `args.name`; `via` says where the move was
/// made (the command line, or a pipeline stage).
/// With `soft` (a pipeline stage), a commit that cannot take a version is
/// an outcome, not an error.
pub fn register(location: &Location, args: &Args, via: &str, soft: bool) -> Result<Registered, CommandError> {
    let (root, registry) = open(location)?;
    super::artifact_name(&args.name)?;
    if let Some(v) = args.version.as_ref().filter(|v| !registry::tag::is_version(v)) {
        return Err(CommandError::user(format!("`{v}` is not a version"))
            .with_hint("versions are `v` and a semantic version: `v1.2.0`, `v2.0.0-rc.1`"));
    }
    let pipeline = super::gates::pipeline(location)?;
    let declared = pipeline.as_ref().and_then(|p| p.registry.get(&args.name).cloned());
    let typed = match (&args.path, &declared) {
        (Some(path), _) => path.clone(),
        (None, Some(model)) => root.join(model.path.as_str()),
        (None, None) => {
            return Err(CommandError::user(format!("which output is `{}`?", args.name)).with_hint(format!(
                "pass its path (`gourd registry register {} PATH`), or declare it in the pipeline: `registry = {{ {} = {{ path = \"models/best\" }} }}`",
                args.name, args.name
            )));
        }
    };
    let ws = Workspace::open(&root)?;
    let path = workspace_path(&root, &typed)?;
    let Some(tree) = ws.hash(&path)? else {
        return Err(CommandError::user(format!("`{path}` does not exist"))
            .with_hint("run `gourd run` to build it, or `gourd registry get` to fetch a registered version"));
    };
    let output = OutputRecord::from_tree(&tree, true);
    let digest = output.digest.to_string();
    let lineage = Lineage::open(&root)?.ok_or_else(|| CommandError::user("lineage is off outside git"))?;
    // Stages finished earlier in a run still going on (this is a stage of
    // it) are in the journal, not yet in lineage: newest first.
    let mut records = match &pipeline {
        Some(pipeline) => crate::lineage::pending_records(&lineage, &ws, pipeline)?,
        None => Vec::new(),
    };
    records.extend(lineage.history()?.into_iter().flat_map(|c| c.records));
    let Some(record) =
        records.iter().find(|r| crate::provenance::digest_of(&ws, r, path.as_str()) == Some(digest.clone()))
    else {
        return Err(CommandError::user(format!("the bytes at `{path}` match no output gourd recorded"))
            .with_hint("a version is a model a stage produced: run `gourd run`, then register what it wrote"));
    };
    let (out, _) = record.output_holding(path.as_str()).expect("found by its output");
    let kind = record.out_kinds.get(out).map(String::as_str).unwrap_or("data");
    if kind != "model" {
        return Err(CommandError::user(format!(
            "`{path}` is a '{kind} output of stage `{}`; the registry holds models",
            record.stage
        ))
        .with_hint(format!("declare it as `{{ path = \"{out}\", kind = 'model }}` in the stage's `outs`")));
    }

    // Held from the read to the write: two registrations (from two
    // worktrees, say) never pick the same version.
    let lock = super::lock(&registry)?;
    let loaded = Loaded::read(&registry, &args.name)?;
    if let Some(same) =
        loaded.state.versions.iter().find(|v| v.active && loaded.digest(&v.version) == Some(digest.clone()))
    {
        eprintln!("{} {} holds these bytes already ({}); nothing registered.", args.name, same.version, short(&digest));
        return Ok(Registered::Already { version: same.version.clone() });
    }
    let commit = match registry.head() {
        Some(commit) => commit,
        None if soft => return Ok(Registered::Skipped { reason: "the repository has no commit yet".into() }),
        None => return Err(registry::RegistryError::NoCommit.into()),
    };
    if let Some(here) = loaded.state.versions.iter().find(|v| v.active && v.commit == commit) {
        if soft {
            let reason =
                format!("commit {} holds {} already, with other bytes: commit first", short(&commit), here.version);
            return Ok(Registered::Skipped { reason });
        }
        return Err(CommandError::user(format!(
            "commit {} holds {} {} already, with other bytes; a version is one commit",
            short(&commit),
            args.name,
            here.version
        ))
        .with_hint("commit what changed (`git commit`), then register: GTO and gourd find a version by its commit"));
    }
    let version = match &args.version {
        Some(v) => v.clone(),
        None => next_version(&loaded)?,
    };
    if loaded.registration(&version).is_some() {
        let err = CommandError::user(format!("{} {version} is registered already", args.name));
        return Err(match next_version(&loaded) {
            Ok(next) => err.with_hint(format!("the next free patch is {next}")),
            Err(_) => err,
        });
    }
    let (_, dirty) = lineage.workspace_state()?;
    // Whether the commit the version will point at builds these bytes: the
    // stage's key from the inputs as they are now is the key of the run
    // that wrote them. (A run made before committing its changes, then
    // committed, is fine; one whose inputs changed since is not.)
    let rebuilt_otherwise = pipeline.as_ref().and_then(|p| p.stage(&record.stage)).and_then(|stage| {
        match gourd_core::plan::assess(&ws, stage, false) {
            Ok(Ok(now)) if now.key.to_string() != record.key => Some(format!("stage `{}` is stale", stage.name)),
            Ok(Err(missing)) => Some(format!("dep `{missing}` of stage `{}` is missing", stage.name)),
            _ => None,
        }
    });
    // A pipeline stage registers only what the commit builds: with
    // uncommitted changes, the bytes may come from inputs the commit does
    // not hold (a params file edited since), and the version would say
    // otherwise. The run after the commit registers them.
    if soft {
        // What the commit may not hold: changes to tracked files, and inputs
        // of the model (or of the stages upstream of it) that git neither
        // tracks nor ignores. Files a stage leaves beside its outputs (logs,
        // `__pycache__`) are neither, and do not count.
        let why = match &rebuilt_otherwise {
            Some(why) => Some(why.clone()),
            None if lineage.tracked_changes()? => Some("tracked files have uncommitted changes".to_string()),
            None => {
                let inputs = upstream_inputs(record, &records);
                let untracked = lineage.untracked_files(inputs.iter().map(String::as_str));
                untracked.first().map(|path| format!("input `{path}` is in no commit (git does not track it)"))
            }
        };
        if let Some(why) = why {
            let reason = format!("{why}; commit {} may not hold what built these bytes: commit first", short(&commit));
            return Ok(Registered::Skipped { reason });
        }
    }
    if dirty {
        eprintln!(
            "warning: the workspace has uncommitted changes; {version} points at commit {}, which may not hold what built it",
            short(&commit)
        );
    } else if let Some(why) = rebuilt_otherwise {
        eprintln!(
            "warning: `{path}` was built from other inputs than commit {} holds ({why}); {version} points at that commit all the same\n         run `gourd run`, commit, and register what it builds, so that the version's commit is what built it",
            short(&commit)
        );
    }
    let now = registry.now()?;
    let move_record = MoveRecord {
        action: Some(Action::Register),
        version: Some(version.clone()),
        path: Some(path.to_string()),
        digest: Some(digest.clone()),
        kind: Some(if output.kind == gourd_digest::EntryKind::Dir { "dir" } else { "file" }.to_string()),
        executable: output.executable,
        lineage: Some(LineageRef {
            stage: record.stage.clone(),
            key: record.key.clone(),
            workspace_commit: record.workspace_commit.clone(),
            workspace_dirty: record.workspace_dirty,
            finished_at: record.finished_at.clone(),
        }),
        metrics: match declared.as_ref().filter(|m| !m.metrics.is_empty()) {
            Some(model) => declared_metrics(&records, &model.metrics),
            None => metrics_of(&records, record, path.as_str(), &digest, &ws),
        },
        params: record.params.clone(),
        inputs: record.deps.clone(),
        cmd: record.cmd.clone(),
        why: args.message.clone(),
        when: Some(registry::time::format_instant(now)),
        via: Some(via.to_string()),
        gourd_version: env!("CARGO_PKG_VERSION").to_string(),
        ..MoveRecord::default()
    };
    let message =
        args.message.clone().unwrap_or_else(|| format!("Registering artifact {} version {version}", args.name));
    let new = NewMove {
        action: Action::Register,
        version: Some(version.clone()),
        stage: None,
        counted: false,
        commit: commit.clone(),
        message,
        record: move_record,
    };
    let tag = registry.write(&lock, &args.name, &[new])?.remove(0);
    eprintln!(
        "Registered `{path}` as {} {version} ({}, built by stage `{}`, at commit {}).",
        args.name,
        short(&digest),
        record.stage,
        short(&commit)
    );
    Ok(Registered::New { version, tag })
}

/// The next patch after the greatest version ever registered (deregistered
/// ones included: their tags keep the name), or `v0.0.1`, as GTO does.
fn next_version(loaded: &Loaded) -> Result<String, CommandError> {
    let greatest = loaded
        .events
        .iter()
        .filter(|e| e.action == Action::Register)
        .filter_map(|e| registry::tag::parse_version(e.version.as_deref()?))
        .max();
    match greatest {
        None => Ok("v0.0.1".to_string()),
        Some(v) => registry::tag::next_patch(&v).ok_or_else(|| {
            CommandError::user(format!(
                "{} v{v} has no next patch version (its patch is the largest number there is)",
                loaded.name
            ))
            .with_hint("register with `--version vX.Y.Z`")
        }),
    }
}

/// The metrics that belong to this model: its own stage's, and those of
/// the latest run of every stage that read exactly these bytes (the
/// evaluations).
fn metrics_of(
    records: &[Record],
    producer: &Record,
    path: &str,
    digest: &str,
    ws: &Workspace,
) -> BTreeMap<String, serde_json::Value> {
    let mut metrics = producer.metrics.clone();
    let mut seen = std::collections::BTreeSet::new();
    for record in records {
        // Any dep with these bytes (a copy elsewhere counts: `select` copies
        // the winner, which its `evaluate` read), or a file inside them.
        let reads_it = record.deps.iter().any(|(dep, d)| {
            d == digest
                || dep.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
                    && crate::provenance::digest_of(ws, producer, dep).as_ref() == Some(d)
        });
        // Newest first: the latest evaluation of these bytes by each stage.
        if reads_it && seen.insert(record.stage.clone()) {
            for (file, value) in &record.metrics {
                metrics.entry(file.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    metrics
}

/// The latest recorded values of the metrics files the pipeline names.
fn declared_metrics(records: &[Record], files: &[gourd_core::path::WsPath]) -> BTreeMap<String, serde_json::Value> {
    files
        .iter()
        .filter_map(|file| {
            let value = records.iter().find_map(|r| r.metrics.get(file.as_str()))?;
            Some((file.to_string(), value.clone()))
        })
        .collect()
}

/// The inputs of `record` and of the records upstream of it (the latest
/// record writing each input), transitively.
fn upstream_inputs(record: &Record, records: &[Record]) -> Vec<String> {
    let mut inputs = std::collections::BTreeSet::new();
    let mut todo = vec![record];
    let mut seen = std::collections::HashSet::new();
    while let Some(record) = todo.pop() {
        if !seen.insert((record.stage.as_str(), record.key.as_str())) {
            continue;
        }
        for dep in record.deps.keys() {
            if inputs.insert(dep.clone())
                && let Some(writer) = records.iter().find(|r| r.output_holding(dep).is_some())
            {
                todo.push(writer);
            }
        }
    }
    inputs.into_iter().collect()
}
