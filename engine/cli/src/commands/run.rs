//! `gourd run`: bring stages up to date.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use gourd_core::journal::Journal;
use gourd_core::lock::WorkspaceLock;
use gourd_core::orphans::RunMark;
use gourd_core::run::{self as engine, RunOptions};
use gourd_core::workspace::Workspace;
use serde_json::json;

use crate::error::CommandError;
use crate::workspace::{Loaded, Location};

#[derive(clap::Args)]
pub struct Args {
    /// Stages to bring up to date, with what they need (default: all).
    stages: Vec<String>,
    /// Run at most N stages at once here (default: number of cores).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
    /// Show what would run, run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run STAGE even if it is up to date (repeatable).
    #[arg(long, value_name = "STAGE")]
    force: Vec<String>,
    /// Keep running independent stages after a failure.
    #[arg(long, short = 'k')]
    keep_going: bool,
    /// Print one JSON event per line.
    #[arg(long)]
    json: bool,
    /// Show each executing stage's output as it is written, prefixed with
    /// the stage's name.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Execute every stage remotely, not only those marked `remote = true`.
    #[arg(long, visible_alias = "remote", conflicts_with = "local")]
    remote_exec: bool,
    /// Execute every stage on this machine (the remote cache still applies).
    #[arg(long)]
    local: bool,
    /// Override a param for this run: `train.lr=0.1` sets `lr` under `train`
    /// in every stage whose params have it, `STAGE.NAME=VALUE` in one stage
    /// (repeatable; VALUE is JSON, or else a string). A key of a params
    /// file (params.yaml, another the pipeline imports, or `FILE:KEY`) is
    /// written there, as `dvc exp run -S` does; other keys hold for this
    /// run only. Recorded in lineage.
    #[arg(long = "set", short = 'S', value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Remote executions at once (default 32); they take no `-j` slot.
    #[arg(long, value_name = "N")]
    remote_jobs: Option<usize>,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // `--set` on a key of the workspace's params file writes it there first,
    // as `dvc exp run -S` does; other keys override the loaded params.
    // A key a params file holds is never set for this run only: a script
    // reading the file would not see it, and its result would be cached
    // under params it was not made with.
    if args.jobs == Some(0) {
        return Err(CommandError::user("`-j` must be at least 1"));
    }
    if args.remote_jobs == Some(0) {
        return Err(CommandError::user("`--remote-jobs` must be at least 1"));
    }
    let mut overrides = Vec::new();
    let mut written = Vec::new();
    let mut undo = None;
    // `--set` writes files a running `gourd run` reads: the workspace is
    // this run's before anything is written (a Ctrl-C while waiting leaves
    // the files as they were).
    let mut early_lock = None;
    if !args.set.is_empty() {
        let root = location.root()?;
        early_lock = Some(WorkspaceLock::acquire(&root.join(".gourd"), waiting)?);
        let imported = gourd_spec::sources(&location.pipeline_file()?);
        let keys: Vec<&str> = args.set.iter().map(|a| a.split_once('=').map_or(a.as_str(), |(k, _)| k)).collect();
        undo = Some(crate::params_file::Undo::save(&root, &keys, &imported));
        let _editing = undo.as_ref().map(crate::params_file::Undo::editing);
        for assignment in &args.set {
            let (key, value) = parse_assignment(assignment)?;
            match crate::params_file::set(&root, key, &value, &imported) {
                Ok(Some(file)) => {
                    let real_root = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
                    let shown = file.strip_prefix(&real_root).unwrap_or(&file).display().to_string();
                    eprintln!("Set `{key}` to {value} in `{shown}`.");
                    written.push((key, shown));
                }
                Ok(None) => overrides.push(assignment),
                Err(message) => {
                    return Err(CommandError::user(format!("--set `{assignment}`: {message}"))
                        .with_hint("edit the params file yourself, then run again"));
                }
            }
        }
    }
    let (mut loaded, hashing) = location.load_prefetching(true)?;
    // A key written to a file that no stage's params hold reaches no stage
    // through its key (a value written into a command when the pipeline was
    // made, say): nothing runs again for it, which is said.
    // A file a stage writes is that stage's, not a params file to edit
    // (`params.json` as an output, say): refused, and put back.
    for (key, file) in &written {
        if let Some(stage) = loaded.pipeline.stages.iter().find(|stage| {
            stage.outputs().any(|o| file == o.path.as_str() || file.starts_with(&format!("{}/", o.path.as_str())))
        }) {
            return Err(CommandError::user(format!(
                "--set `{key}`: `{file}` is an output of stage `{}`; --set edits params files, never what a stage writes",
                stage.name
            ))
            .with_hint("set the param in the pipeline (`STAGE.NAME=VALUE`), or in the params file the pipeline imports"));
        }
    }
    for (key, _) in written {
        let key = key.split_once(':').map_or(key, |(_, inner)| inner);
        let path: Vec<&str> = key.split('.').collect();
        if !loaded.pipeline.stages.iter().any(|stage| crate::params_file::lookup(&stage.params, &path).is_some()) {
            eprintln!(
                "warning: no stage's params hold `{key}`: no stage runs again for it (a value written into a command, as `gourd import-dvc` writes `foreach` items, is not a param)"
            );
        }
    }
    let overridden = !overrides.is_empty();
    for assignment in overrides {
        set_param(&mut loaded.pipeline, assignment)?;
    }
    for name in args.stages.iter().chain(&args.force) {
        if loaded.pipeline.stage(name).is_none() {
            return Err(gourd_core::graph::GraphError::unknown_stage(&loaded.pipeline, name).into());
        }
    }
    // A dry run executes nothing and needs no secret, nor `gourd-step`.
    if !args.dry_run {
        let selected = loaded.dag.select(&loaded.pipeline, &args.stages)?;
        let stages = selected.iter().map(|&i| &loaded.pipeline.stages[i]);
        crate::commands::step::check_stages(stages, true).map_err(|e| crate::workspace::in_file(&loaded.file, e))?;
        gourd_core::secrets::check_set(&loaded.pipeline, selected)?;
    }
    let ws = Workspace::open_with(&loaded.root, hashing)?;
    // What lineage recorded of each output, so that what gourd wrote is
    // known after `.gourd` was deleted; the repository is opened on first
    // use, which is rare (something not gourd's last output is in the way).
    let lineage_root = loaded.root.clone();
    let lineage = std::sync::Mutex::new(None::<Option<gourd_lineage::Lineage>>);
    ws.set_sources(loaded.sources.clone());
    ws.set_git_dirs(loaded.git_dirs.clone());
    ws.set_recorded_outputs(Box::new(move |stage, path| {
        let mut lineage = lineage.lock().unwrap();
        let lineage = lineage.get_or_insert_with(|| gourd_lineage::Lineage::open(&lineage_root).ok().flatten());
        let record = lineage.as_ref()?.latest_of(stage).ok()??;
        record.outs.get(path)?.parse().ok()
    }));
    let _lock = match early_lock {
        Some(lock) => lock,
        None => WorkspaceLock::acquire(&ws.gourd_dir, waiting)?,
    };
    ws.store.clean_tmp()?;
    if args.dry_run {
        return dry_run(&loaded, &ws, args);
    }
    // Before any output is looked at: stop what a killed run left running,
    // and record the lineage it did not get to record.
    let (run_mark, leftovers) = RunMark::begin(&ws.gourd_dir)?;
    if leftovers > 0 {
        eprintln!("note: stopped {leftovers} process(es) left running by an earlier `gourd run` that was killed");
    }
    crate::lineage::recover(&loaded.root, &ws, &loaded.pipeline)?;
    // New outputs are ignored by git before they exist.
    match crate::gitignore::sync(&loaded.file, Some(&loaded.pipeline), false) {
        Ok(crate::gitignore::Synced::Refused(path)) => {
            eprintln!("note: `{}` is not a plain file; outputs are not added to it", path.display())
        }
        Ok(_) => {}
        Err(err) => eprintln!("note: could not update `.gitignore`: {err}"),
    }
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let remote = crate::remote::from_pipeline(&loaded.pipeline, &loaded.root)?;
    if args.remote_exec && remote.as_ref().is_none_or(|r| r.executor.is_none()) {
        return Err(CommandError::user(
            "`--remote-exec` needs a remote execution service: a `remote` record with `kind = 'reapi`",
        ));
    }
    // Everything checked: the params files `--set` wrote stay so.
    if let Some(undo) = undo {
        undo.keep();
    }
    let placement = if args.local {
        engine::Placement::Nothing
    } else if args.remote_exec {
        engine::Placement::Everything
    } else {
        engine::Placement::Marked
    };
    // A stage executing here holds a blocking thread from its start until
    // its outputs are stored (at most `jobs` running and `jobs` storing);
    // tokio's default of 512 would cap `-j` and queue every other blocking
    // task behind the stages.
    let blocking_threads = jobs.saturating_mul(2).saturating_add(512);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(blocking_threads).build()?;
    // Tracked sources missing here (a fresh clone): from the cache or the remote.
    let remote_cache = remote.as_ref().and_then(|r| r.cache.as_deref());
    let (restored, unavailable) = runtime.block_on(crate::sources::restore_missing(&ws, remote_cache))?;
    for path in restored {
        eprintln!("Restored source `{path}`.");
    }
    for path in unavailable {
        eprintln!("warning: source `{path}` is missing, and neither the cache nor a remote cache has it");
    }
    for line in crate::sources::differing(&ws) {
        eprintln!("warning: {line}");
    }
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let options = RunOptions {
        jobs,
        targets: args.stages.clone(),
        force: args.force.iter().cloned().collect::<BTreeSet<_>>(),
        keep_going: args.keep_going,
        cancel: cancel_rx,
        step_runner: Some(crate::commands::step::command),
        gpu_probe: crate::commands::step::gpu_probe(),
        remote_writable: remote.as_ref().is_some_and(|r| r.push),
        remote_required: remote.as_ref().is_some_and(|r| r.required),
        remote_executor: remote.as_ref().and_then(|r| r.executor.clone()),
        placement,
        remote_jobs: args.remote_jobs.unwrap_or(32),
        remote: remote.and_then(|r| r.cache),
        run_token: Some(run_mark.token().to_string()),
    };
    // Whether the work tree differs from its commit, as lineage records it
    // with the run: asked now, beside the stages, rather than after them
    // (git compares every tracked file). Stages write outputs, which git
    // ignores, so the answer is the one the run starts from.
    let lineage_root = loaded.root.clone();
    let workspace_state = std::thread::Builder::new().name("gourd-git-state".into()).spawn(move || {
        let lineage = gourd_lineage::Lineage::open(&lineage_root).ok().flatten()?;
        lineage.workspace_state().ok()
    })?;
    let total = loaded.dag.select(&loaded.pipeline, &args.stages)?.len();
    let mut printer =
        super::run_view::Printer::new(args.json, args.verbose, ws.root.clone(), ws.gourd_dir.clone(), total);
    let started = Instant::now();
    let ws = Arc::new(ws);
    let pipeline = Arc::new(loaded.pipeline.clone());
    let summary = runtime.block_on(async {
        tokio::spawn(async move {
            // SIGTERM, and SIGHUP (the terminal closed; not under `nohup`),
            // stop the run as Ctrl-C does: stages are stopped, what finished
            // is recorded.
            use tokio::signal::unix::{SignalKind, signal};
            let hangup = !crate::ui::hangup_ignored();
            let received = |kind: SignalKind| {
                let mut stream = signal(kind).ok();
                async move {
                    match stream.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = received(SignalKind::terminate()) => {}
                () = async {
                    // Only asked for when listened to: making the stream
                    // installs the handler, under `nohup` too.
                    if hangup { received(SignalKind::hangup()).await } else { std::future::pending().await }
                } => {}
            }
            let _ = cancel_tx.send(true);
        });
        engine::run(ws.clone(), pipeline, &loaded.dag, options, &mut |event| printer.event(event)).await
    })?;
    printer.finish(&summary, started.elapsed());
    // Only a stage that executed here can have left a process behind.
    let executed = summary.ran + summary.failed > 0 || summary.interrupted;
    let stray = if executed {
        run_mark.end()
    } else {
        run_mark.end_without_processes();
        0
    };
    if stray > 0 {
        eprintln!("note: stopped {stray} process(es) that stages left running");
    }
    match crate::lineage::open_or_note(&loaded.root)? {
        Some(lineage) => match crate::lineage::record_run(
            &lineage,
            &loaded.pipeline,
            &summary,
            overridden,
            workspace_state.join().ok().flatten(),
        ) {
            Ok(_) => Journal::clear(&ws.gourd_dir)?,
            // The journal keeps it: the next run records it.
            Err(err) => eprintln!("warning: the run finished but its lineage was not recorded: {}", err.message),
        },
        None => Journal::clear(&ws.gourd_dir)?,
    }
    // The run's writes reach the disk before gourd says it is done.
    ws.store.wait_synced();
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn dry_run(loaded: &Loaded, ws: &Workspace, args: &Args) -> Result<ExitCode, CommandError> {
    let selected = loaded.dag.select(&loaded.pipeline, &args.stages)?;
    let statuses = gourd_core::plan::status(ws, &loaded.pipeline, &loaded.dag, &selected)?;
    crate::commands::status::save_state_if_possible(ws);
    let (mut run, mut restore, mut fresh) = (0, 0, 0);
    let width = statuses.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &statuses {
        let forced = args.force.contains(&s.name);
        let (status, reasons) = if forced {
            ("would-run", vec!["forced".to_string()])
        } else if s.fresh {
            ("up-to-date", vec![])
        } else if s.restorable {
            ("would-restore", s.reasons.clone())
        } else {
            ("would-run", s.reasons.clone())
        };
        match status {
            "would-run" => run += 1,
            "would-restore" => restore += 1,
            _ => fresh += 1,
        }
        if args.json {
            let key = s.key.map(|k| k.to_string());
            println!(
                "{}",
                json!({"event": "stage", "stage": s.name, "status": status, "key": key, "reasons": reasons})
            );
        } else if reasons.is_empty() {
            println!("{status:>13} {:width$}", s.name);
        } else {
            println!("{status:>13} {:width$}  {}", s.name, reasons.join("; "));
        }
    }
    if args.json {
        println!(
            "{}",
            // The counts every summary has (nothing ran, was restored,
            // failed or was skipped), and what would happen.
            json!({"event": "summary", "dry_run": true, "ran": 0, "restored": 0, "up_to_date": fresh, "failed": 0,
                   "skipped": 0, "would_run": run, "would_restore": restore})
        );
    } else {
        println!("Dry run: {run} would run, {restore} would be restored, {fresh} up to date.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `KEY=VALUE`, VALUE read as JSON or else taken as a string.
/// Says what a run waits for.
fn waiting(holder: Option<u32>) {
    let who = holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default();
    eprintln!("Waiting for another `gourd run`{who} in this workspace to finish...");
}

fn parse_assignment(assignment: &str) -> Result<(&str, serde_json::Value), CommandError> {
    let Some((key, text)) = assignment.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
        return Err(CommandError::user(format!("--set `{assignment}`: expected KEY=VALUE, e.g. `train.lr=0.01`")));
    };
    let value = serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()));
    Ok((key, value))
}

/// Applies one `--set KEY=VALUE` to the loaded params.
fn set_param(pipeline: &mut gourd_core::model::Pipeline, assignment: &str) -> Result<(), CommandError> {
    let (key, value) = parse_assignment(assignment)?;
    let mut hits = 0;
    for stage in &mut pipeline.stages {
        // `STAGE.NAME` names a param of that stage; otherwise the dotted
        // path is looked up in every stage's params (a name holding dots,
        // `"a.b" = 1`, read whole where it is one).
        let own = key.strip_prefix(stage.name.as_str()).and_then(|rest| rest.strip_prefix('.'));
        let found = own
            .and_then(|rest| crate::params_file::dotted_path(&stage.params, rest))
            .or_else(|| crate::params_file::dotted_path(&stage.params, key));
        let Some(path) = found else { continue };
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        if let Some(slot) = crate::params_file::lookup_mut(&mut stage.params, &path) {
            *slot = value.clone();
            hits += 1;
        }
    }
    if hits == 0 {
        let mut known = Vec::new();
        for stage in &pipeline.stages {
            let mut leaves = Vec::new();
            crate::table::flatten("", &stage.params, &mut leaves);
            known.extend(leaves.into_iter().filter(|(n, _)| !n.is_empty()).map(|(n, _)| n));
        }
        let mut err = CommandError::user(format!("--set `{key}`: no stage has a param `{key}`"));
        if let Some(near) = gourd_core::suggest::closest(key, known.iter().map(String::as_str)) {
            err = err.with_hint(format!("did you mean `{near}`?"));
        }
        return Err(err);
    }
    Ok(())
}
