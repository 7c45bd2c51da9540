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

    /// Spawns `command` and lists its group with the watchdog.
    fn spawn(&self, mut command: std::process::Command) -> io::Result<(std::process::Child, Group)> {
        let child = command.spawn()?;
        if let Some(watchdog) = &self.watchdog {
            watchdog.note('+', child.id());
        }
        let group = Group { pgid: child.id() as i32, watchdog: self.watchdog.clone() };
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
    /// Where the process runs, resolved already; `None`: the stage's
    /// `wdir` under `root`.
    pub cwd: Option<PathBuf>,
    pub log: PathBuf,
    pub extra_env: BTreeMap<String, String>,
    /// Values (the stage's secrets) never to be written to the log: the
    /// stage then writes to a pipe that gourd copies into the log,
    /// redacting as it goes.
    pub redact: Vec<Vec<u8>>,
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

/// A stage's process, started by [`start`] and waited for by [`wait`] on
/// the same blocking thread. Dropped unwaited (an error came between), its
/// group is killed and the process reaped.
pub struct Started {
    child: std::process::Child,
    group: Group,
    waited: bool,
    /// Says when the redacting copy into the log is done (see
    /// [`ExecRequest::redact`]).
    copied: Option<std::sync::mpsc::Receiver<()>>,
}

/// How long a stage's redacting copy may go on once its group is killed:
/// only a process that left the group (`setsid`) still holds the pipe
/// then, and the copy goes on redacting, unwaited.
const COPY_GRACE: Duration = Duration::from_secs(2);

impl Drop for Started {
    fn drop(&mut self) {
        if !self.waited {
            kill_group(self.group.pgid, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// How the run stops a stage it no longer wants (Ctrl-C): shared by the
/// stage's blocking thread, which waits for the process, and the
/// scheduler's thread, which sees the cancel (see [`stop_on_cancel`]).
#[derive(Default)]
pub struct Stop {
    /// The running stage's process group; 0 before it starts and once it
    /// is over.
    pgid: std::sync::atomic::AtomicI32,
    interrupted: std::sync::atomic::AtomicBool,
}

impl Stop {
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Signals the running group, if there is one.
    fn signal(&self, signal: i32) {
        let pgid = self.pgid.load(std::sync::atomic::Ordering::SeqCst);
        // Never 0: `killpg(0)` would signal gourd's own group.
        if pgid != 0 {
            kill_group(pgid, signal);
        }
    }
}

/// Opens the stage's log and spawns its process. Blocking: it runs on the
/// stage's blocking thread, after the work that clears its outputs and
/// before [`wait`], so that the scheduler's thread only launches and reaps.
pub fn start(request: ExecRequest<'_>) -> io::Result<Started> {
    let stage = request.stage;
    let mut command = match &stage.cmd {
        Command::Shell(script) => {
            // The stage's own `PATH`, if it sets one, finds `sh` itself.
            let own_path = stage.env.contains_key("PATH") || request.extra_env.contains_key("PATH");
            let mut c = std::process::Command::new(if own_path { std::ffi::OsStr::new("sh") } else { shell() });
            c.arg("-c").arg(script);
            c
        }
        Command::Argv(argv) => {
            let mut c = std::process::Command::new(&argv[0]);
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
            let mut c = std::process::Command::new(program);
            c.args(first).arg(name).arg(config);
            c
        }
    };
    if let Some(parent) = request.log.parent() {
        fs_err::create_dir_all(parent)?;
    }
    // Owner-only: a stage's output may hold what others must not read.
    let log = open_log(&request.log).map_err(|e| crate::hash::with_path(e, &request.log))?;
    let (output, copied) = if request.redact.is_empty() {
        (log, None)
    } else {
        let (reader, writer) = std::io::pipe()?;
        let (done, copied) = std::sync::mpsc::channel();
        let values = request.redact;
        std::thread::Builder::new().name("gourd-redact".into()).spawn(move || {
            // A log that cannot be written loses output, not a secret.
            let _ = crate::secrets::redact_stream(reader, log, &values);
            let _ = done.send(());
        })?;
        (std::fs::File::from(std::os::fd::OwnedFd::from(writer)), Some(copied))
    };
    command
        .current_dir(request.cwd.unwrap_or_else(|| stage.wdir.to_path(request.root)))
        .envs(&stage.env)
        .envs(&request.extra_env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output))
        .process_group(0);
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
        if err.raw_os_error() == Some(libc::E2BIG) {
            // Say which variable: the system's message names the arguments.
            let largest = stage
                .env
                .iter()
                .chain(&request.extra_env)
                .map(|(name, value)| (name.clone(), value.len()))
                .chain(std::env::vars_os().map(|(n, v)| (n.to_string_lossy().into_owned(), v.len())))
                .max_by_key(|(_, len)| *len);
            if let Some((name, len)) = largest {
                return io::Error::new(
                    err.kind(),
                    format!(
                        "cannot start `{program}`: its environment is larger than the system allows; the largest variable is `{name}` ({} KiB): pass large values in a file",
                        len / 1024
                    ),
                );
            }
        }
        io::Error::new(err.kind(), format!("cannot start `{program}`: {err}"))
    })?;
    Ok(Started { child, group, waited: false, copied })
}

/// Waits, blocking, for a started stage to end: it exits, or `timeout`
/// passes (then its group is stopped: SIGTERM, and SIGKILL after a grace
/// period), or `stop` interrupts it. Whatever the stage left running in
/// its group is killed when it is over.
pub fn wait(mut started: Started, timeout: Option<Duration>, stop: &Stop) -> io::Result<ExecOutcome> {
    use std::sync::atomic::Ordering::SeqCst;
    // Published before the flag is read, as the flag is set before the
    // group is read (`stop_on_cancel`): one side or the other signals it.
    stop.pgid.store(started.group.pgid, SeqCst);
    let outcome = wait_for(&mut started, timeout, stop);
    // However it went, the group is not signalled again (its id may be
    // reused), and what the stage left in it is killed as `started` is
    // dropped (reaped then if waiting failed).
    stop.pgid.store(0, SeqCst);
    started.waited = outcome.is_ok();
    let copied = started.copied.take();
    drop(started);
    // The group is gone, and with it every writer of the pipe but one that
    // left the group: the log is whole once the copy ends.
    if let Some(copied) = copied {
        let _ = copied.recv_timeout(COPY_GRACE);
    }
    outcome
}

fn wait_for(started: &mut Started, timeout: Option<Duration>, stop: &Stop) -> io::Result<ExecOutcome> {
    let pgid = started.group.pgid;
    // Cancelled while it started: stopped at once, as a stage past its
    // time is (the cancel's own signals may have come before its group
    // was known).
    let limit = if stop.interrupted() { Some(Duration::ZERO) } else { timeout };
    let status = match limit {
        None => Some(started.child.wait()?),
        Some(limit) => wait_until(&mut started.child, limit)?,
    };
    if let Some(status) = status {
        return Ok(match status.code() {
            _ if stop.interrupted() => ExecOutcome::Interrupted,
            Some(code) => ExecOutcome::Exited(code),
            // No exit code: a signal ended it (wait reports nothing else).
            None => ExecOutcome::Signaled(status.signal().unwrap_or_default()),
        });
    }
    kill_group(pgid, libc::SIGTERM);
    if wait_until(&mut started.child, KILL_GRACE)?.is_none() {
        kill_group(pgid, libc::SIGKILL);
        started.child.wait()?;
    }
    Ok(if stop.interrupted() { ExecOutcome::Interrupted } else { ExecOutcome::TimedOut(timeout.unwrap_or_default()) })
}

/// Waits for `child` for at most `limit`: its status, or `None` when the
/// time is up. On a pidfd where the kernel has them (Linux 5.3), else by
/// polling every 10 ms.
fn wait_until(child: &mut std::process::Child, limit: Duration) -> io::Result<Option<std::process::ExitStatus>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let deadline = std::time::Instant::now() + limit;
    // SAFETY: pidfd_open takes a pid and flags, and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    // SAFETY: a new fd of our own, closed when this is dropped.
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) });
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match &pidfd {
            Some(fd) => {
                let mut poll = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd; an interrupted poll is retried.
                unsafe { libc::poll(&mut poll, 1, ms) };
            }
            None => std::thread::sleep(left.min(Duration::from_millis(10))),
        }
    }
}

/// Awaits a stage's blocking `task` and, if the run is cancelled first,
/// stops the stage: SIGTERM to its group, then SIGKILL after a grace
/// period. The task sees `stop` and reports the stage interrupted.
pub async fn stop_on_cancel<T>(
    mut task: tokio::task::JoinHandle<T>,
    stop: &Stop,
    mut cancel: watch::Receiver<bool>,
) -> T {
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
    tokio::select! {
        done = &mut task => return done.expect("a stage's thread panicked"),
        () = cancelled => {}
    }
    stop.interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
    stop.signal(libc::SIGTERM);
    if let Ok(done) = tokio::time::timeout(KILL_GRACE, &mut task).await {
        return done.expect("a stage's thread panicked");
    }
    stop.signal(libc::SIGKILL);
    task.await.expect("a stage's thread panicked")
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

    /// Starts `script` as a stage would run, its output in `dir/s.log`.
    fn start_script(spawner: &Spawner, dir: &Path, script: &str) -> Started {
        let mut stage = crate::testing::stage("s", &[], &[]);
        stage.cmd = Command::Shell(script.to_string());
        let request = ExecRequest {
            stage: &stage,
            spawner,
            step: None,
            root: dir,
            cwd: None,
            log: dir.join("s.log"),
            extra_env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
            redact: Vec::new(),
        };
        start(request).unwrap()
    }

    /// Whether `pid` is gone within a few seconds: a signal is delivered
    /// when the process next runs, not when `kill` returns.
    fn dies(pid: i32) -> bool {
        (0..500).any(|_| {
            let gone = !alive(pid);
            if !gone {
                std::thread::sleep(Duration::from_millis(10));
            }
            gone
        })
    }

    /// The pid a script wrote to `dir/NAME.pid` once it is there.
    fn pid_in(dir: &Path, name: &str) -> i32 {
        for _ in 0..500 {
            if let Some(pid) =
                std::fs::read_to_string(dir.join(format!("{name}.pid"))).ok().and_then(|t| t.trim().parse().ok())
            {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{name}.pid was never written");
    }

    #[test]
    fn a_stage_runs_in_its_folder_with_its_environment_and_its_exit_code_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = Spawner::start().unwrap();
        let stop = Stop::default();
        let started = start_script(&spawner, dir.path(), "echo \"$GREETING from $PWD\"; echo oops >&2; exit 3");
        assert!(matches!(wait(started, None, &stop).unwrap(), ExecOutcome::Exited(3)));
        let log = std::fs::read_to_string(dir.path().join("s.log")).unwrap();
        assert_eq!(log, format!("hello from {}\noops\n", dir.path().canonicalize().unwrap().display()));
        let started = start_script(&spawner, dir.path(), "kill -s KILL $$");
        assert!(matches!(wait(started, Some(Duration::from_secs(60)), &stop).unwrap(), ExecOutcome::Signaled(9)));
        assert_eq!(stop.pgid.load(std::sync::atomic::Ordering::SeqCst), 0, "a stage that is over is not signalled");
    }

    /// A stage past its timeout is stopped, and so is what it started in
    /// its group; one that ignores SIGTERM gets SIGKILL after the grace.
    #[test]
    fn a_stage_past_its_timeout_is_stopped_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = Spawner::start().unwrap();
        let started = start_script(&spawner, dir.path(), "sleep 300 & echo $! > child.pid; wait");
        let child = pid_in(dir.path(), "child");
        let limit = Duration::from_millis(300);
        let outcome = wait(started, Some(limit), &Stop::default()).unwrap();
        assert!(matches!(outcome, ExecOutcome::TimedOut(l) if l == limit), "{outcome:?}");
        assert!(dies(child), "the stage's own child still runs");
        let started =
            start_script(&spawner, dir.path(), "trap '' TERM; echo $$ > stubborn.pid; while :; do sleep 0.05; done");
        let stubborn = pid_in(dir.path(), "stubborn");
        let outcome = wait(started, Some(Duration::from_millis(100)), &Stop::default()).unwrap();
        assert!(matches!(outcome, ExecOutcome::TimedOut(_)), "{outcome:?}");
        assert!(dies(stubborn));
    }

    /// Waiting with a limit returns a quick exit's status, and nothing once
    /// the limit is up.
    #[test]
    fn waiting_with_a_limit_sees_a_quick_exit_and_the_end_of_the_limit() {
        let mut quick = std::process::Command::new("sh").arg("-c").arg("exit 4").spawn().unwrap();
        let status = wait_until(&mut quick, Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(status.code(), Some(4));
        let mut slow = sleeper();
        let before = std::time::Instant::now();
        assert!(wait_until(&mut slow, Duration::from_millis(200)).unwrap().is_none());
        assert!(before.elapsed() >= Duration::from_millis(200));
        slow.kill().unwrap();
        slow.wait().unwrap();
    }

    /// Ctrl-C: the run's cancel stops the stage's group, and the stage is
    /// reported interrupted, not as whatever its exit code says.
    #[test]
    fn a_cancelled_run_interrupts_the_stage_and_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let spawner = Arc::new(Spawner::start().unwrap());
        let stop = Arc::new(Stop::default());
        let (cancel, cancelled) = watch::channel(false);
        let (path, spawner2, stop2) = (dir.path().to_path_buf(), spawner.clone(), stop.clone());
        let outcome = runtime.block_on(async move {
            let task = tokio::task::spawn_blocking(move || {
                let started =
                    start_script(&spawner2, &path, "trap 'exit 0' TERM; sleep 300 & echo $! > child.pid; wait");
                wait(started, None, &stop2)
            });
            let cancel_later = async {
                pid_in(dir.path(), "child");
                cancel.send(true).unwrap();
            };
            let (outcome, ()) = tokio::join!(stop_on_cancel(task, &stop, cancelled), cancel_later);
            (outcome, dir)
        });
        let (outcome, dir) = outcome;
        assert!(matches!(outcome.unwrap(), ExecOutcome::Interrupted));
        assert!(dies(pid_in(dir.path(), "child")));
        // Cancelled before it starts: signalled as soon as it does.
        let stop = Stop::default();
        stop.interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
        // (One that ignores SIGTERM once it can gets SIGKILL after the grace.)
        let started = start_script(&spawner, dir.path(), "trap '' TERM; while :; do sleep 0.05; done");
        assert!(matches!(wait(started, None, &stop).unwrap(), ExecOutcome::Interrupted));
        assert_eq!(stop.pgid.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    /// An error between start and wait: the stage is killed and reaped as
    /// it is dropped.
    #[test]
    fn a_started_stage_dropped_unwaited_is_killed_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = Spawner::start().unwrap();
        let started = start_script(&spawner, dir.path(), "echo $$ > me.pid; sleep 300");
        let pid = pid_in(dir.path(), "me");
        drop(started);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "not killed and reaped");
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
