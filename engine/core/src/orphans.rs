//! Processes a killed run left behind.
//!
//! Each stage runs in its own process group, which a watchdog kills when
//! gourd dies (see `crate::exec::Spawner`). But a process can leave its
//! group (`setsid`), and the watchdog itself can be killed: a training
//! script's data loader workers, say, would keep running and keep writing
//! into outputs that the next run is about to hash and cache. So every process a stage starts
//! carries `GOURD_RUN=TOKEN` in its environment, and the run leaves a file
//! named after its token under `.gourd/state-v1/runs/`. A run that ends
//! kills what is still marked with its token and removes its file; the next run, holding the workspace lock, finds the
//! files of runs that did not end, and kills every process still carrying
//! their tokens before it looks at any output.
//!
//! A process that both clears its environment and leaves for a session of
//! its own escapes this; only cgroups could follow it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that marks a stage's processes.
pub const RUN_ENV: &str = "GOURD_RUN";

pub struct RunMark {
    file: PathBuf,
    token: String,
}

impl RunMark {
    /// Kills what earlier runs in this workspace left running, then marks
    /// this run. Call only while holding the workspace lock. Returns the
    /// mark and how many leftover processes were killed.
    pub fn begin(gourd_dir: &Path) -> io::Result<(RunMark, usize)> {
        let dir = gourd_dir.join("state-v1/runs");
        fs_err::create_dir_all(&dir)?;
        let mut killed = 0;
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            let token = entry.file_name().to_string_lossy().into_owned();
            if valid_token(&token) {
                killed += kill_marked(&token);
            }
            let _ = std::fs::remove_file(entry.path());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let token = format!("{}-{nanos:x}", std::process::id());
        let file = dir.join(&token);
        fs_err::write(&file, b"")?;
        Ok((RunMark { file, token }, killed))
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The run ended: whatever its stages left running (in a session of
    /// its own, out of reach of the stage's process group) is killed.
    /// Returns how many.
    pub fn end(self) -> usize {
        let killed = kill_marked(&self.token);
        let _ = std::fs::remove_file(&self.file);
        killed
    }

    /// Ends a run that started no process (every stage was up to date or
    /// restored): nothing can carry its token, so `/proc` is not searched.
    pub fn end_without_processes(self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Sends SIGKILL to every process whose environment holds `GOURD_RUN=token`,
/// again and again until none is left (one may fork while being killed).
/// Returns how many were killed.
fn kill_marked(token: &str) -> usize {
    let needle = format!("{RUN_ENV}={token}");
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..200 {
        let found = marked_processes(&needle, me);
        if found.is_empty() {
            break;
        }
        for pid in found {
            // Never 0 (our own process group), 1, or what does not fit a
            // pid_t (a negative one names a whole group, -1 everything).
            let Some(pid) = i32::try_from(pid).ok().filter(|&pid| pid > 1 && pid as u32 != me) else { continue };
            // SAFETY: plain syscall on a pid just read from /proc.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    killed
}

/// Live processes (not zombies) whose environment holds `needle` as a whole
/// entry.
fn marked_processes(needle: &str, me: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        if environ.split(|&b| b == 0).any(|var| var == needle.as_bytes()) && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_left_over_process_is_killed_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let (mark, killed) = RunMark::begin(dir.path()).unwrap();
        assert_eq!(killed, 0);
        // A process of this run that outlives it, in a session of its own.
        let mut child =
            std::process::Command::new("setsid").args(["sleep", "600"]).env(RUN_ENV, mark.token()).spawn().unwrap();
        let unrelated = std::process::Command::new("sleep").arg("600").spawn().unwrap();
        // Until it has exec'd, the child shows its parent's environment, and
        // while `setsid` execs `sleep` its environment cannot be read: wait
        // for `sleep` with the token, as a real stage's process would be.
        let token = format!("{RUN_ENV}={}", mark.token());
        let environ = format!("/proc/{}/environ", child.id());
        let comm = format!("/proc/{}/comm", child.id());
        let started = std::time::Instant::now();
        while !(std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep")
            && std::fs::read(&environ).is_ok_and(|e| e.split(|b| *b == 0).any(|v| v == token.as_bytes())))
        {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "the child never started");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The run is killed: its file stays.
        std::mem::forget(mark);
        let (next, killed) = RunMark::begin(dir.path()).unwrap();
        assert!(killed >= 1, "killed {killed}");
        let status = child.wait().unwrap();
        assert!(!status.success());
        // Nothing else was touched.
        let mut unrelated = unrelated;
        assert!(unrelated.try_wait().unwrap().is_none());
        unrelated.kill().unwrap();
        let _ = unrelated.wait();
        next.end();
        assert_eq!(std::fs::read_dir(dir.path().join("state-v1/runs")).unwrap().count(), 0);
    }
}
