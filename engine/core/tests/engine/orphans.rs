//! Marking runs, and what the next run kills: only processes that carry a
//! run's token.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gourd_core::orphans::{RUN_ENV, RunMark};

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

fn gone_within(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !alive(child) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A process carrying `GOURD_RUN=token`, once it shows it (until it has
/// exec'd, a child shows its parent's environment).
fn marked(token: &str) -> Child {
    let child = Command::new("sleep").arg("30").env(RUN_ENV, token).spawn().unwrap();
    let entry = format!("{RUN_ENV}={token}");
    let environ = format!("/proc/{}/environ", child.id());
    let start = Instant::now();
    while !std::fs::read(&environ).is_ok_and(|e| e.split(|b| *b == 0).any(|v| v == entry.as_bytes())) {
        assert!(start.elapsed() < Duration::from_secs(30), "the child never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn a_run_that_started_nothing_leaves_no_mark() {
    let dir = tempfile::tempdir().unwrap();
    let (mark, killed) = RunMark::begin(dir.path()).unwrap();
    assert_eq!(killed, 0);
    let file = dir.path().join("state-v1/runs").join(mark.token());
    assert!(file.exists(), "the run is marked while it lasts");
    mark.end_without_processes();
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(dir.path().join("state-v1/runs")).unwrap().count(), 0);
}

#[test]
fn only_a_well_formed_token_is_searched_for() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("state-v1/runs");
    std::fs::create_dir_all(&runs).unwrap();
    // A file in runs/ that no run wrote: its name is not a token (tokens
    // are the pid and time in hex), and a process carrying it is not
    // gourd's to kill.
    std::fs::write(runs.join("zz"), "").unwrap();
    let mut stranger = marked("zz");
    // A real leftover of an earlier run, alongside.
    std::fs::write(runs.join("1f-2a"), "").unwrap();
    let mut leftover = marked("1f-2a");

    let (mark, killed) = RunMark::begin(dir.path()).unwrap();
    assert!(gone_within(&mut leftover, Duration::from_secs(10)), "the earlier run's process is killed");
    // Counted once: a killed child is a zombie until its parent (this
    // test) waits for it, and a zombie is not killed again and again.
    assert!((1..10).contains(&killed), "{killed}");
    assert!(alive(&mut stranger), "a malformed token is not searched for");
    assert!(!runs.join("zz").exists() && !runs.join("1f-2a").exists(), "old marks are cleared");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    mark.end_without_processes();
}
