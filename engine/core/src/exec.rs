//! Running one stage's command as a child process.
//!
//! Each stage runs in its own process group, so that a timeout or Ctrl-C can
//! stop the whole tree it started (`sh -c` and whatever it spawns). The
//! direct child also gets `PR_SET_PDEATHSIG`, so it dies with gourd even when
//! gourd is killed with SIGKILL.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;

use crate::model::{Command, Stage};

/// Starts stages' processes from one thread that lives as long as the run.
/// A child's `PR_SET_PDEATHSIG` fires when the *thread* that forked it
/// exits, not the process: forked from a pooled thread that retires when
/// idle (tokio's blocking threads do after 10 s), a stage would be killed
/// mid-run. Forking copies gourd's page tables, so it is kept off the
/// scheduler's thread, which goes on launching and reaping meanwhile.
pub struct Spawner {
    jobs: std::sync::mpsc::Sender<SpawnJob>,
}

type SpawnJob = (tokio::process::Command, tokio::sync::oneshot::Sender<io::Result<tokio::process::Child>>);

impl Spawner {
    /// Starts the thread, in the current runtime's context (a child is
    /// reaped by the runtime that started it). The thread ends when the
    /// spawner is dropped.
    pub fn start() -> io::Result<Spawner> {
        let runtime = tokio::runtime::Handle::current();
        let (jobs, received) = std::sync::mpsc::channel::<SpawnJob>();
        std::thread::Builder::new().name("gourd-spawner".to_string()).spawn(move || {
            let _entered = runtime.enter();
            for (mut command, reply) in received {
                let _ = reply.send(command.spawn());
            }
        })?;
        Ok(Spawner { jobs })
    }

    async fn spawn(&self, command: tokio::process::Command) -> io::Result<tokio::process::Child> {
        let (reply, spawned) = tokio::sync::oneshot::channel();
        let gone = || io::Error::other("gourd's spawner thread is gone");
        self.jobs.send((command, reply)).map_err(|_| gone())?;
        spawned.await.map_err(|_| gone())?
    }
}

pub struct ExecRequest<'a> {
    pub stage: &'a Stage,
    pub spawner: &'a Spawner,
    /// How to run a built-in step: the program and its first arguments
    /// (`gourd-step`, or `gourd __step`), and the file holding the step's
    /// configuration.
    pub step: Option<(&'a [std::ffi::OsString], PathBuf)>,
    pub root: &'a Path,
    pub log: PathBuf,
    pub extra_env: BTreeMap<String, String>,
}

#[derive(Debug)]
pub enum ExecOutcome {
    Exited(i32),
    Signaled(i32),
    TimedOut(Duration),
    Interrupted,
}

/// Grace period between SIGTERM and SIGKILL when stopping a stage.
const KILL_GRACE: Duration = Duration::from_secs(3);

pub async fn execute(request: ExecRequest<'_>, mut cancel: watch::Receiver<bool>) -> io::Result<ExecOutcome> {
    let stage = request.stage;
    let mut command = match &stage.cmd {
        Command::Shell(script) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(script);
            c
        }
        Command::Argv(argv) => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        Command::Step { name, .. } => {
            let Some((runner, config)) = &request.step else {
                return Err(io::Error::other(format!("no runner for the built-in step `{name}`")));
            };
            let Some((program, first)) = runner.split_first() else {
                return Err(io::Error::other(format!("no runner for the built-in step `{name}`")));
            };
            let mut c = tokio::process::Command::new(program);
            c.args(first).arg(name).arg(config);
            c
        }
    };
    if let Some(parent) = request.log.parent() {
        fs_err::create_dir_all(parent)?;
    }
    // Owner-only: a stage's output may hold what others must not read.
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&request.log)
            .map_err(|e| crate::hash::with_path(e, &request.log))?
    };
    command
        .current_dir(stage.wdir.to_path(request.root))
        .envs(&stage.env)
        .envs(&request.extra_env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let spawned = request.spawner.spawn(command).await;
    let mut child = spawned.map_err(|err| {
        let program = match &stage.cmd {
            Command::Shell(_) => "sh".to_string(),
            Command::Argv(argv) => argv[0].clone(),
            Command::Step { .. } => request
                .step
                .as_ref()
                .and_then(|(runner, _)| runner.first())
                .map_or_else(|| "gourd-step".to_string(), |p| p.to_string_lossy().into_owned()),
        };
        io::Error::new(err.kind(), format!("cannot start `{program}`: {err}"))
    })?;
    let pgid = child.id().map(|id| id as i32);

    let timeout = async {
        match stage.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = async {
        loop {
            if *cancel.borrow() {
                return;
            }
            if cancel.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };

    let outcome = tokio::select! {
        status = child.wait() => {
            let status = status?;
            // The stage's own process is gone; stop anything it left behind
            // in its group, which would otherwise keep writing outputs.
            if let Some(pgid) = pgid {
                kill_group(pgid, libc::SIGKILL);
            }
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) => ExecOutcome::Exited(code),
                (None, Some(signal)) => ExecOutcome::Signaled(signal),
                (None, None) => ExecOutcome::Exited(-1),
            });
        }
        () = timeout => ExecOutcome::TimedOut(stage.timeout.unwrap_or_default()),
        () = cancelled => ExecOutcome::Interrupted,
    };
    if let Some(pgid) = pgid {
        kill_group(pgid, libc::SIGTERM);
        if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
            kill_group(pgid, libc::SIGKILL);
        }
        kill_group(pgid, libc::SIGKILL);
    }
    let _ = child.wait().await;
    Ok(outcome)
}

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: plain syscall; a group that no longer exists gives ESRCH.
    unsafe {
        libc::killpg(pgid, signal);
    }
}
