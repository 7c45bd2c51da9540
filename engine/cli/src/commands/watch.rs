//! `gourd watch [STAGE…]`: brings the pipeline up to date, then again
//! whenever one of its sources changes, for a machine that receives new
//! data.
//!
//! The sources are the pipeline's files (the ones its evaluation read) and
//! the deps no stage writes; outputs are never watched, so a run does not
//! trigger the next. Each run is a child `gourd run`, one at a time: changes
//! made while it runs start one more run after it, and a burst of changes is
//! one run once they have been quiet for a moment (debounced). Ctrl-C stops
//! a running `gourd run` the way it always stops (its stages are killed and
//! nothing half-written is kept) and then stops watching.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use notify::Watcher;
use tokio::signal::unix::{SignalKind, signal};

use crate::error::CommandError;
use crate::workspace::Location;

/// Changes closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(300);

#[derive(clap::Args)]
pub struct Args {
    /// Stages to bring up to date (with their upstream); default: all.
    stages: Vec<String>,
    /// Run at most N stages at once (passed to `gourd run`).
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<usize>,
}

/// What to watch: folders (with everything under them) and files.
#[derive(Debug, Default, PartialEq)]
struct Sources {
    dirs: BTreeSet<PathBuf>,
    files: BTreeSet<PathBuf>,
}

impl Sources {
    fn of(location: &Location) -> Result<Sources, CommandError> {
        let file = location.pipeline_file()?;
        let mut sources = Sources::default();
        for path in gourd_spec::sources(&file) {
            sources.files.insert(path);
        }
        sources.files.insert(file.clone());
        // A pipeline that does not evaluate is still watched: its files are.
        let Ok(loaded) = location.load_checked(false) else {
            return Ok(sources);
        };
        let written: Vec<String> =
            loaded.pipeline.stages.iter().flat_map(|s| s.outputs()).map(|o| o.path.as_str().to_string()).collect();
        for stage in &loaded.pipeline.stages {
            for dep in &stage.deps {
                let produced =
                    written.iter().any(|out| dep.as_str() == out || dep.as_str().starts_with(&format!("{out}/")));
                if produced {
                    continue;
                }
                let path = loaded.root.join(dep.as_str());
                if path.is_dir() {
                    sources.dirs.insert(path);
                } else {
                    sources.files.insert(path);
                }
            }
        }
        Ok(sources)
    }

    fn len(&self) -> usize {
        self.dirs.len() + self.files.len()
    }

    /// Whether a change at `path` is a change of a source.
    fn covers(&self, path: &Path) -> bool {
        self.files.contains(path) || self.dirs.iter().any(|dir| path.starts_with(dir))
    }

    /// Watches every source: folders recursively, files through their
    /// folder (an editor replaces a file rather than writing it in place).
    fn watch(&self, watcher: &mut impl Watcher) -> Result<(), CommandError> {
        let mut parents = BTreeSet::new();
        for file in &self.files {
            // The nearest existing folder, so that a file created later is seen.
            let mut parent = file.parent().map(Path::to_path_buf);
            while let Some(p) = &parent {
                if p.is_dir() {
                    break;
                }
                parent = p.parent().map(Path::to_path_buf);
            }
            if let Some(parent) = parent {
                parents.insert(parent);
            }
        }
        for dir in &self.dirs {
            watcher
                .watch(dir, notify::RecursiveMode::Recursive)
                .map_err(|e| CommandError::environment(format!("cannot watch `{}`: {e}", dir.display())))?;
        }
        for parent in parents.iter().filter(|p| !self.dirs.iter().any(|d| p.starts_with(d))) {
            watcher
                .watch(parent, notify::RecursiveMode::NonRecursive)
                .map_err(|e| CommandError::environment(format!("cannot watch `{}`: {e}", parent.display())))?;
        }
        Ok(())
    }
}

fn is_change(event: &notify::Event) -> bool {
    !matches!(event.kind, notify::EventKind::Access(_))
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(watch(location, args))
}

async fn watch(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // What no change of a source can make right is said once, not retried.
    if args.jobs == Some(0) {
        return Err(CommandError::user("`-j` must be at least 1"));
    }
    if let (false, Ok(loaded)) = (args.stages.is_empty(), location.load_checked(false)) {
        for name in &args.stages {
            if loaded.pipeline.stage(name).is_none() {
                return Err(gourd_core::graph::GraphError::unknown_stage(&loaded.pipeline, name).into());
            }
        }
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    // The terminal closed: stop as for `kill`, the run included (not under
    // `nohup`: the run then inherits the hangup ignored).
    let mut hangup = if crate::ui::hangup_ignored() { None } else { Some(signal(SignalKind::hangup())?) };
    let exe = std::env::current_exe()?;
    let mut watched_before = false;
    loop {
        let sources = match Sources::of(location) {
            Ok(sources) => sources,
            // The pipeline file gone since (deleted, or a checkout of a
            // branch without it): said, and waited for, as a failed run is.
            Err(err) if watched_before => {
                eprintln!("note: {}; watching for it to come back (Ctrl-C to stop)", err.message);
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
                        _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
                        () = hung_up(&mut hangup) => return Ok(ExitCode::SUCCESS),
                    }
                    if location.pipeline_file().is_ok() {
                        break;
                    }
                }
                continue;
            }
            Err(err) => return Err(err),
        };
        watched_before = true;
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let _ = sender.send(event);
        })
        .map_err(|e| CommandError::environment(format!("cannot watch for changes: {e}")))?;
        sources.watch(&mut watcher)?;

        let mut command = tokio::process::Command::new(&exe);
        if let Some(file) = &location.file {
            command.arg("--file").arg(file);
        }
        command.arg("run").args(&args.stages);
        if let Some(jobs) = args.jobs {
            command.arg("-j").arg(jobs.to_string());
        }
        let mut child = command.kill_on_drop(true).spawn()?;
        let status = tokio::select! {
            status = child.wait() => status?,
            signal = async {
                tokio::select! {
                    _ = interrupt.recv() => libc::SIGINT,
                    _ = terminate.recv() => libc::SIGTERM,
                    () = hung_up(&mut hangup) => libc::SIGHUP,
                }
            } => {
                // From a terminal the run got the Ctrl-C too; from `kill`,
                // pass it on. Either way, let the run stop cleanly.
                if let Some(pid) = child.id() {
                    // SAFETY: signals a child of ours that has not been reaped.
                    unsafe { libc::kill(pid as i32, signal) };
                }
                child.wait().await?;
                return Ok(ExitCode::from(130));
            }
        };
        if !status.success() {
            eprintln!("note: the run failed; watching for the next change");
        }
        eprintln!("watching {} source(s) for changes (Ctrl-C to stop)", sources.len());

        // The first change of a source (perhaps made during the run)...
        loop {
            tokio::select! {
                event = receiver.recv() => match event {
                    Some(Ok(event)) if is_change(&event) && event.paths.iter().any(|p| sources.covers(p)) => break,
                    Some(Ok(_)) => {}
                    Some(Err(err)) => eprintln!("note: watching: {err}"),
                    None => return Err(CommandError::internal("the file watcher stopped")),
                },
                _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
                _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
                () = hung_up(&mut hangup) => return Ok(ExitCode::SUCCESS),
            }
        }
        // ...and the changes that follow it, until sources have been quiet
        // for a moment (reads, and writes elsewhere, do not count).
        let quiet = tokio::time::sleep(DEBOUNCE);
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                event = receiver.recv() => match event {
                    Some(Ok(event)) if is_change(&event) && event.paths.iter().any(|p| sources.covers(p)) => {
                        quiet.as_mut().reset(tokio::time::Instant::now() + DEBOUNCE);
                    }
                    Some(_) => {}
                    None => break,
                },
                () = &mut quiet => break,
                _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
                _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
                () = hung_up(&mut hangup) => return Ok(ExitCode::SUCCESS),
            }
        }
        drop(watcher);
    }
}

/// A SIGHUP, when gourd listens for it; else never.
async fn hung_up(hangup: &mut Option<tokio::signal::unix::Signal>) {
    match hangup {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
