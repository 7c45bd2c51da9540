//! Running one stage's command as a child process.
//!
//! Each stage runs in its own process group, so that a timeout or Ctrl-C can
//! stop the whole tree it started (`sh -c` and whatever it spawns). When
//! gourd itself dies, SIGKILL included, a watchdog kills those groups (see
//! [`Spawner`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::model::{Command, Stage};

/// Starts stages' processes, and keeps a watchdog that kills their process
/// groups if gourd dies while they run.
///
/// Children are started by `posix_spawn` (std does so when no code runs
/// between fork and exec): forking would copy gourd's page tables and
/// tear them down again at exec, which at 1,000 stages cost ~0.6 ms a stage.
/// So nothing is set in the child, not even `PR_SET_PDEATHSIG`; instead the
/// watchdog, a small `sh` loop started with the first stage in a process group of
/// its own, reads `+PGID` and `-PGID` lines on a pipe from gourd, and at end
/// of file, which comes when gourd exits or is killed, kills every group
/// still listed. A stage is started on a blocking thread, with its outputs
/// cleared and its log opened there too ([`start`]), so the scheduler's
/// thread goes on launching and reaping meanwhile.
pub struct Spawner {
    watchdog: Option<Arc<Watchdog>>,
}

/// The watchdog's loop: `live` holds the listed groups, space-separated.
const WATCHDOG: &str = r#"trap '' INT TERM HUP QUIT
live=' '
while IFS= read -r line; do
  case $line in
    +*) live="$live${line#+} " ;;
    -*) g=${line#-}
        case $live in *" $g "*) live="${live% $g *} ${live#* $g }" ;; esac ;;
  esac
done
for g in $live; do kill -s KILL -- "-$g" 2>/dev/null; done
"#;

struct Watchdog {
    lines: Mutex<Option<std::process::ChildStdin>>,
    process: Mutex<std::process::Child>,
}

impl Watchdog {
    fn start() -> io::Result<Watchdog> {
        let mut process = std::process::Command::new(shell())
            .arg("-c")
            .arg(WATCHDOG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let lines = process.stdin.take();
        Ok(Watchdog { lines: Mutex::new(lines), process: Mutex::new(process) })
    }

    /// Lists (`+`) or unlists (`-`) a process group. A watchdog that is gone
    /// protects nothing more; the run goes on.
    fn note(&self, sign: char, pgid: u32) {
        if let Some(lines) = self.lines.lock().unwrap().as_mut() {
            // One write, which a pipe keeps whole: gourd killed halfway
            // through a line would leave a group unlisted.
            let _ = lines.write_all(format!("{sign}{pgid}\n").as_bytes());
        }
    }

    /// Ends the watchdog after the run: every group is unlisted by then.
    fn close(&self) {
        drop(self.lines.lock().unwrap().take());
        let _ = self.process.lock().unwrap().wait();
    }
}

/// The absolute path of `sh` on `PATH`, looked up once: each spawn would
/// otherwise try every folder on `PATH` in turn.
fn shell() -> &'static std::ffi::OsStr {
    static SHELL: OnceLock<OsString> = OnceLock::new();
    SHELL.get_or_init(|| {
        std::env::var_os("PATH")
            .and_then(|path| find_program("sh", &path))
            .map_or_else(|| OsString::from("sh"), PathBuf::into_os_string)
    })
}

/// The first executable file `name` in the folders of `path`, as `execvp`
/// would find it.
fn find_program(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

impl Spawner {
    /// Starts the watchdog; it ends when the spawner is dropped. Without a
    /// watchdog (no `sh` to run it), stages left by a killed gourd are
    /// stopped by the next run (see `crate::orphans`).
    pub fn start() -> io::Result<Spawner> {
        Ok(Spawner { watchdog: Watchdog::start().ok().map(Arc::new) })
    }

    /// Spawns `command` and lists its group with the watchdog. Called in
    /// the runtime's context (a child is reaped by the runtime that started
    /// it): on its thread or one of its blocking threads.
    fn spawn(&self, mut command: tokio::process::Command) -> io::Result<(tokio::process::Child, Option<Group>)> {
        let child = command.spawn()?;
        let group = child.id().map(|pid| {
            if let Some(watchdog) = &self.watchdog {
                watchdog.note('+', pid);
            }
            Group { pgid: pid as i32, watchdog: self.watchdog.clone() }
        });
        Ok((child, group))
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        if let Some(watchdog) = &self.watchdog {
            watchdog.close();
        }
    }
}

/// A running stage's process group: killed, and unlisted from the
/// watchdog, when the stage is over, however it ends.
struct Group {
    pgid: i32,
    watchdog: Option<Arc<Watchdog>>,
}

impl Drop for Group {
    fn drop(&mut self) {
        // Anything the stage left behind in its group would otherwise keep
        // writing outputs.
        kill_group(self.pgid, libc::SIGKILL);
        if let Some(watchdog) = &self.watchdog {
            watchdog.note('-', self.pgid as u32);
        }
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

/// A stage's process, started by [`start`]: its group is killed when this
/// is dropped, however the stage ends.
pub struct Started {
    child: tokio::process::Child,
    group: Option<Group>,
}

/// Opens the stage's log and spawns its process. Blocking: it runs on a
/// blocking thread of the run's runtime, beside the work that clears the
/// stage's outputs, so that the scheduler's thread only launches and reaps.
pub fn start(request: ExecRequest<'_>) -> io::Result<Started> {
    let stage = request.stage;
    let mut command = match &stage.cmd {
        Command::Shell(script) => {
            // The stage's own `PATH`, if it sets one, finds `sh` itself.
            let own_path = stage.env.contains_key("PATH") || request.extra_env.contains_key("PATH");
            let mut c = tokio::process::Command::new(if own_path { std::ffi::OsStr::new("sh") } else { shell() });
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
    let log = open_log(&request.log).map_err(|e| crate::hash::with_path(e, &request.log))?;
    command
        .current_dir(stage.wdir.to_path(request.root))
        .envs(&stage.env)
        .envs(&request.extra_env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true);
    let (child, group) = request.spawner.spawn(command).map_err(|err| {
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
    Ok(Started { child, group })
}

/// Waits for a started stage to end: it exits, or its `timeout` passes, or
/// the run is cancelled (then its group is stopped: SIGTERM, and SIGKILL
/// after a grace period).
pub async fn wait(started: Started, stage: &Stage, mut cancel: watch::Receiver<bool>) -> io::Result<ExecOutcome> {
    let Started { mut child, group: _group } = started;
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
            // The stage's own process is gone; what it left behind in its
            // group is stopped as `_group` is dropped.
            let status = status?;
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

/// Opens a stage's log for writing, empty and owner-only. What is planted
/// at its path is replaced, never written through: a symbolic link (not
/// followed), or a hard link to a file elsewhere (the log would be written
/// into that file).
pub(crate) fn open_log(path: &std::path::Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let open =
        || std::fs::OpenOptions::new().write(true).create(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path);
    let file = match open() {
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            std::fs::remove_file(path)?;
            open()?
        }
        opened => opened?,
    };
    let file = if file.metadata()?.nlink() > 1 {
        drop(file);
        std::fs::remove_file(path)?;
        open()?
    } else {
        file
    };
    file.set_len(0)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_program_is_the_first_executable_file_of_that_name_on_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, plain, real) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        std::fs::create_dir_all(folder.join("sh")).unwrap();
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("sh"), "").unwrap();
        std::fs::set_permissions(plain.join("sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("sh"), "").unwrap();
        std::fs::set_permissions(real.join("sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = std::env::join_paths([&folder, &plain, &real]).unwrap();
        assert_eq!(find_program("sh", &path), Some(real.join("sh")));
        assert_eq!(find_program("sh", &std::env::join_paths([&folder, &plain]).unwrap()), None);
    }

    fn alive(pid: i32) -> bool {
        // A zombie is dead: its state is `Z` in /proc/PID/stat.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
    }

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep").arg("300").process_group(0).spawn().unwrap()
    }

    fn wait_dead(child: &mut std::process::Child) -> bool {
        for _ in 0..500 {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The end of the pipe from gourd (here: closed by hand, as gourd's death
    /// closes it) kills the groups still listed, and only those.
    #[test]
    fn the_watchdog_kills_the_groups_still_listed_when_its_pipe_closes() {
        let watchdog = Watchdog::start().unwrap();
        let (mut listed, mut unlisted, mut never) = (sleeper(), sleeper(), sleeper());
        watchdog.note('+', listed.id());
        watchdog.note('+', unlisted.id());
        watchdog.note('-', unlisted.id());
        // A group unlisted twice, or never listed, changes nothing.
        watchdog.note('-', unlisted.id());
        watchdog.note('-', never.id());
        drop(watchdog.lines.lock().unwrap().take());
        assert!(wait_dead(&mut listed), "the listed group was not killed");
        assert!(watchdog.process.lock().unwrap().wait().unwrap().success());
        assert!(alive(unlisted.id() as i32) && alive(never.id() as i32));
        for child in [&mut unlisted, &mut never] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Dropping the spawner (the run is over) ends the watchdog and reaps it.
    #[test]
    fn dropping_the_spawner_ends_and_reaps_the_watchdog() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _entered = runtime.enter();
        let spawner = Spawner::start().unwrap();
        let pid = spawner.watchdog.as_ref().unwrap().process.lock().unwrap().id();
        drop(spawner);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the watchdog was not reaped");
    }

    /// After the run, the watchdog is ended and reaped, and kills nothing.
    #[test]
    fn closing_the_watchdog_ends_it() {
        let watchdog = Watchdog::start().unwrap();
        let pid = watchdog.process.lock().unwrap().id() as i32;
        let mut bystander = sleeper();
        watchdog.note('+', bystander.id());
        watchdog.note('-', bystander.id());
        watchdog.close();
        assert!(!alive(pid), "the watchdog still runs");
        assert!(watchdog.lines.lock().unwrap().is_none());
        assert!(alive(bystander.id() as i32));
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }

    #[test]
    fn a_log_is_emptied_and_what_is_planted_at_its_path_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.log");
        let victim = dir.path().join("victim");
        let write = |text: &str| std::io::Write::write_all(&mut open_log(&log).unwrap(), text.as_bytes()).unwrap();
        std::fs::write(&log, "the last run's long output\n").unwrap();
        write("new\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "new\n");
        for plant in ["symlink", "hard link"] {
            std::fs::write(&victim, "precious\n").unwrap();
            std::fs::remove_file(&log).unwrap();
            match plant {
                "symlink" => std::os::unix::fs::symlink(&victim, &log).unwrap(),
                _ => std::fs::hard_link(&victim, &log).unwrap(),
            }
            write("hello\n");
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{plant}");
            assert_eq!(std::fs::read_to_string(&log).unwrap(), "hello\n", "{plant}");
            assert!(!std::fs::symlink_metadata(&log).unwrap().file_type().is_symlink(), "{plant}");
        }
    }
}
