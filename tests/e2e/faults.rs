//! Real faults: processes killed mid-stage, interrupts, concurrent runs and a
//! damaged cache. Nothing may be lost or poisoned.

mod common;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestWorkspace, alive, expect, files_under, wait_until};

/// When a test fails, SIGKILLs the stage process it names, so that no stage
/// is left looping (only if that pid still runs a stage's loop).
struct Reaper(i32);

impl Drop for Reaper {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if std::thread::panicking() && String::from_utf8_lossy(&cmdline).contains("while true") {
            // SAFETY: a plain kill(2) of the stage's process.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

const SLOW_UNTIL_RELEASED: &str = r#"{ stages = {
    slow = {
      cmd = "echo slow >> runs.log; echo partial > slow.txt; sleep 30 & echo $! > sleep.pid; touch started; if [ ! -e release ]; then wait; fi; echo done > slow.txt",
      outs = ["slow.txt"],
    },
    after = { cmd = "cp slow.txt after.txt", deps = ["slow.txt"], outs = ["after.txt"] },
} }"#;

#[test]
fn sigkill_mid_stage_leaves_no_partial_entry_and_the_next_run_completes() {
    let ws = TestWorkspace::new(SLOW_UNTIL_RELEASED);
    let mut child = ws.command(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("started"));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert!(files_under(&ws.path(".gourd/cache-v1/actions")).is_empty(), "no result was recorded");
    let status = ws.gourd(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["stages"][0]["state"], "stale");

    ws.write("release", "");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("slow", "ran"), ("after", "ran")]));
    assert_eq!(ws.read("after.txt"), "done\n");
    assert!(files_under(&ws.path(".gourd/cache-v1/tmp")).is_empty());
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 0);
}

#[test]
fn interrupt_stops_the_stage_processes() {
    let ws = TestWorkspace::new(SLOW_UNTIL_RELEASED);
    let child = ws.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("started"));
    let sleeper: i32 = ws.read("sleep.pid").trim().parse().unwrap();
    assert!(alive(sleeper));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let started = Instant::now();
    while alive(sleeper) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(sleeper), "the stage's process survived the interrupt");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed slow: interrupted"), "{stderr}");
    assert!(files_under(&ws.path(".gourd/cache-v1/actions")).is_empty());
}

#[test]
fn sigterm_stops_stages_politely_then_kills_those_that_ignore_it() {
    // `polite` exits on SIGTERM, saying so; `stubborn` (and every process it
    // starts) ignores SIGTERM, so only the SIGKILL after the grace period
    // stops it.
    let ws = TestWorkspace::new(
        r#"{ stages = {
            polite = { cmd = "trap 'echo term > polite.term; exit 1' TERM; touch polite.started; while true; do sleep 0.1; done", outs = ["p"] },
            stubborn = { cmd = "trap '' TERM; echo $$ > stubborn.pid; while true; do sleep 0.1; done", outs = ["s"] },
        } }"#,
    );
    let mut child = ws.command(&["run", "-j", "2"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("both stages to start", || {
        ws.exists("polite.started") && ws.path("stubborn.pid").metadata().is_ok_and(|m| m.len() > 0)
    });
    let stubborn: i32 = ws.read("stubborn.pid").trim().parse().unwrap();
    let _reaper = Reaper(stubborn);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let signalled = Instant::now();
    let mut status = None;
    wait_until("gourd to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let took = signalled.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.unwrap().code(), Some(130), "{stderr}");
    assert_eq!(ws.read("polite.term"), "term\n", "SIGTERM came first");
    wait_until("the stubborn stage to be gone", || !alive(stubborn));
    assert!(took >= Duration::from_millis(2500), "SIGKILL came after {took:?}, before the 3 s grace");
    assert!(took < Duration::from_secs(20), "stopping took {took:?}");
    assert!(
        stderr.contains("failed polite: interrupted") && stderr.contains("failed stubborn: interrupted"),
        "{stderr}"
    );
    assert!(files_under(&ws.path(".gourd/cache-v1/actions")).is_empty());
}

#[test]
fn sighup_stops_a_run_as_sigterm_does_and_keeps_what_finished() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            quick = { cmd = "echo q > q.txt", outs = ["q.txt"] },
            polite = { cmd = "trap 'echo term > polite.term; exit 1' TERM; touch polite.started; while true; do sleep 0.1; done", deps = ["q.txt"], outs = ["p"] },
        } }"#,
    );
    // As from a terminal: SIGHUP at its default, whatever this test runs
    // under (`nohup` passes it on ignored).
    let mut command = ws.command(&["run"]);
    hangup_by_default(&mut command);
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the second stage to start", || ws.exists("polite.started"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let mut status = None;
    wait_until("gourd to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.unwrap().code(), Some(130), "{stderr}");
    assert_eq!(ws.read("polite.term"), "term\n", "the stage was asked to stop: {stderr}");
    assert!(stderr.contains("failed polite: interrupted"), "{stderr}");
    // What finished before the hangup is kept, and known.
    let status = ws.gourd(&["status", "--json"]).success().stdout;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let state =
        |name: &str| status["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["state"].clone();
    assert_eq!((state("quick"), state("polite")), ("fresh".into(), "stale".into()), "{status}");
}

/// `gc` holds the workspace lock: it waits for a running `gourd run`
/// rather than dropping what the run has stored but not yet recorded.
/// `status`, `check`, `explain` and `dag` take no lock: they answer at once.
#[test]
fn gc_waits_for_a_running_run_and_read_only_commands_do_not() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "touch started; while [ ! -e go ]; do sleep 0.05; done; echo x > o", outs = ["o"] } } }"#,
    );
    let mut run = ws.command(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("started"));
    for args in [&["status"][..], &["check"], &["explain", "s"], &["dag"]] {
        let started = Instant::now();
        let out = ws.gourd(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("Waiting"), "{args:?}: {}", out.stderr);
        assert!(started.elapsed() < Duration::from_secs(20), "{args:?} waited for the run");
    }
    let mut gc = ws.command(&["gc"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(gc.try_wait().unwrap().is_none(), "gc did not wait for the run");
    ws.write("go", "");
    assert!(run.wait().unwrap().success());
    let gc = gc.wait_with_output().unwrap();
    assert!(gc.status.success());
    assert!(String::from_utf8_lossy(&gc.stderr).contains("Waiting for the `gourd run` in this workspace to finish"));
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains("Removed 0 results"),
        "{}",
        String::from_utf8_lossy(&gc.stdout)
    );
    ws.write("gourd.ncl", "{ stages = { s = { cmd = \"touch started; while [ ! -e go ]; do sleep 0.05; done; echo x > o\", outs = [\"o\"] } } }");
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 0, "the run's result survived the gc");
}

/// `run -S` waits for a running `gourd run` before it writes the params
/// file that run reads: the run already going is not broken, and the file
/// changes only once the workspace is the new run's.
#[test]
fn run_set_waits_for_the_running_run_before_it_writes_params() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{ stages = { train = { cmd = "touch started; while [ ! -e go ]; do sleep 0.05; done; grep lr params.yaml > model.txt", params = gourd.params (import "params.yaml") ["lr"], outs = ["model.txt"] } } }"#,
    );
    ws.write("params.yaml", "lr: 0.1\n");
    let first = ws.command(&["run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("started"));
    let second = ws.command(&["run", "-S", "lr=0.9"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(ws.read("params.yaml"), "lr: 0.1\n", "written while the other run held the workspace");
    ws.write("go", "");
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(ws.read("model.txt"), "lr: 0.1\n");
    let second = second.wait_with_output().unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(ws.read("params.yaml"), "lr: 0.9\n");
    assert_eq!(ws.read("model.txt"), "lr: 0.9\n");
}

/// A pipeline whose load waits on a FIFO it imports (`gate.ncl`) until
/// [`feed_gate`] writes to it; `params.yaml` holds `lr: 0.1`.
fn gated_workspace() -> TestWorkspace {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{ stages = { train = { cmd = "grep lr params.yaml > model.txt", desc = import "gate.ncl", params = gourd.params (import "params.yaml") ["lr"], outs = ["model.txt"] } } }"#,
    );
    ws.write("params.yaml", "lr: 0.1\n");
    let gate = std::ffi::CString::new(ws.path("gate.ncl").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a path of the test's own workspace.
    assert_eq!(unsafe { libc::mkfifo(gate.as_ptr(), 0o644) }, 0);
    ws
}

/// Whoever has the gate open for reading gets one evaluation's worth; two
/// writes a reader takes as one still read as one value (the rest of the
/// line is a comment).
fn feed_gate(ws: &TestWorkspace) {
    let opened = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(ws.path("gate.ncl"));
    if let Ok(mut fifo) = opened {
        let _ = std::io::Write::write_all(&mut fifo, b"\"gated\" # ");
    }
}

/// A signal while `run -S` loads the pipeline (after it wrote the params
/// file, before the run starts) puts the file back before gourd stops. The
/// pipeline imports a FIFO, so the load waits until the test feeds it.
#[test]
fn a_signal_while_run_set_loads_puts_the_params_file_back() {
    use std::os::unix::process::ExitStatusExt;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let ws = gated_workspace();
        let mut child =
            ws.command(&["run", "-S", "lr=0.9"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        // Only the evaluation reads the FIFO, after the edit: it waits there.
        wait_until("`-S` to write params.yaml", || ws.read("params.yaml") == "lr: 0.9\n");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        // gourd stops while the load still waits (on a FIFO here; a hung
        // network mount in life): nothing is fed to it.
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                while child.try_wait().unwrap().is_none() {
                    feed_gate(&ws);
                    std::thread::sleep(Duration::from_millis(20));
                }
                panic!("gourd did not stop until the load was fed");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.signal(), Some(signal), "{stderr}");
        assert_eq!(ws.read("params.yaml"), "lr: 0.1\n", "{stderr}");
        assert!(stderr.contains("is as it was before `--set`"), "{stderr}");
        assert!(!ws.exists("model.txt"), "the stage ran");
    }
}

/// A signal ignored from the start (`nohup`: SIGHUP) stays ignored while
/// `run -S` loads: the run goes on, the edit kept.
#[test]
fn under_nohup_a_hangup_while_run_set_loads_is_ignored() {
    use std::os::unix::process::CommandExt;
    let ws = gated_workspace();
    let mut command = ws.command(&["run", "-S", "lr=0.9"]);
    // SAFETY: between fork and exec, only async-signal-safe `signal`.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("`-S` to write params.yaml", || ws.read("params.yaml") == "lr: 0.9\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "a hangup under nohup stopped gourd");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        feed_gate(&ws);
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(ws.read("params.yaml"), "lr: 0.9\n");
    assert_eq!(ws.read("model.txt"), "lr: 0.9\n");
}

/// Once the run has started, `run -S`'s edit is the run's: Ctrl-C stops it
/// as any run (130, its stage stopped) and the edit stays, as DVC's does.
#[test]
fn ctrl_c_during_a_run_set_run_stops_it_and_keeps_the_edit() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{ stages = { train = { cmd = "touch started; sleep 30 & echo $! > sleep.pid; wait; grep lr params.yaml > model.txt", params = gourd.params (import "params.yaml") ["lr"], outs = ["model.txt"] } } }"#,
    );
    ws.write("params.yaml", "lr: 0.1\n");
    let child = ws.command(&["run", "-S", "lr=0.9"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("started") && ws.exists("sleep.pid"));
    let sleeper: i32 = ws.read("sleep.pid").trim().parse().unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(ws.read("params.yaml"), "lr: 0.9\n");
    let started = Instant::now();
    while alive(sleeper) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(sleeper), "the stage's process survived the interrupt");
}

/// Under `nohup` (SIGHUP ignored from the start) a hangup is not gourd's to
/// act on: the run goes on to the end.
#[test]
fn under_nohup_a_hangup_does_not_stop_the_run() {
    use std::os::unix::process::CommandExt;
    let ws =
        TestWorkspace::new(r#"{ stages = { s = { cmd = "touch started; sleep 1; echo hi > o", outs = ["o"] } } }"#);
    let mut command = ws.command(&["run"]);
    // SAFETY: between fork and exec, only async-signal-safe `signal`.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("started"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(ws.read("o"), "hi\n");
}

/// What the environment breaks is exit 2, not 1 (SPEC): the user's
/// pipeline is fine, `.gourd` is a file where a folder must be.
#[test]
fn an_unusable_gourd_folder_is_an_environment_error() {
    let ws = TestWorkspace::new(r#"{ stages = { s = { cmd = "echo x > o", outs = ["o"] } } }"#);
    ws.write(".gourd", "");
    let out = ws.gourd(&["run"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(".gourd/"), "the path is named: {}", out.stderr);
    assert!(!ws.exists("o"), "nothing ran");
}

#[test]
fn stages_die_with_gourd_when_it_is_killed() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo $$ > stage.pid; while true; do sleep 0.1; done", outs = ["x"] } } }"#,
    );
    let mut child = ws.command(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the stage to start", || ws.path("stage.pid").metadata().is_ok_and(|m| m.len() > 0));
    let stage: i32 = ws.read("stage.pid").trim().parse().unwrap();
    let _reaper = Reaper(stage);
    assert!(alive(stage));
    child.kill().unwrap(); // SIGKILL: gourd can do nothing about it
    child.wait().unwrap();
    wait_until("the stage's process to die with gourd", || !alive(stage));
}

/// What a stage started in the background dies with gourd too: the stage's
/// whole process group is killed, by a watchdog that outlives gourd, even
/// when gourd's whole process group is killed at once (as a CI runner or
/// `kill -9 -PGID` does).
#[test]
fn a_stages_background_processes_die_with_gourd_and_its_group() {
    use std::os::unix::process::CommandExt;
    let ws = TestWorkspace::new(
        r#"{ stages = { s = {
            cmd = "(while true; do sleep 0.1; done) & echo $! > bg.pid; echo $$ > stage.pid; while true; do sleep 0.1; done",
            outs = ["x"],
        } } }"#,
    );
    let mut child = ws.command(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0).spawn().unwrap();
    wait_until("the stage to start", || {
        ws.path("stage.pid").metadata().is_ok_and(|m| m.len() > 0)
            && ws.path("bg.pid").metadata().is_ok_and(|m| m.len() > 0)
    });
    let stage: i32 = ws.read("stage.pid").trim().parse().unwrap();
    let background: i32 = ws.read("bg.pid").trim().parse().unwrap();
    let (_reap_stage, _reap_background) = (Reaper(stage), Reaper(background));
    assert!(alive(stage) && alive(background));
    // gourd tells the watchdog about the stage's group just after starting
    // it; on a loaded machine the stage can write its pid files first. A
    // gourd killed in that moment leaves the group to the next run's stop of
    // what killed runs left (crate `orphans`), which this test is not about.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: a plain syscall, on the group the test made for gourd.
    unsafe { libc::killpg(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    wait_until("the stage's processes to die with gourd", || !alive(stage) && !alive(background));
}

#[test]
fn two_runs_at_once_do_not_corrupt_each_other() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            a = { cmd = "echo a >> runs.log && sleep 1 && echo a > a.txt", outs = ["a.txt"] },
            b = { cmd = "echo b >> runs.log && cat a.txt > b.txt", deps = ["a.txt"], outs = ["b.txt"] },
        } }"#,
    );
    let first = ws.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let second = ws.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(
        first.status.success() && second.status.success(),
        "first: {}\n{}\nsecond: {}\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr),
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(ws.executions(), vec!["a", "b"], "each stage executed once");
    let stderr = format!("{}{}", String::from_utf8_lossy(&first.stderr), String::from_utf8_lossy(&second.stderr));
    assert!(stderr.contains("Waiting for another `gourd run`"), "{stderr}");
    assert_eq!(ws.read("b.txt"), "a\n");
}

#[test]
fn a_corrupt_cache_object_is_detected_and_the_stage_reruns() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && mkdir -p out && echo precious > out/data.txt", outs = ["out"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    for object in files_under(&ws.path(".gourd/cache-v1/objects")) {
        std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&object, "rotten").unwrap();
    }
    ws.remove("out");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["s"], "ran", "a corrupt object must not be restored");
    assert_eq!(ws.read("out/data.txt"), "precious\n");

    // The cache healed: deleting the output now restores it.
    ws.remove("out");
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "restored");
    assert_eq!(ws.read("out/data.txt"), "precious\n");
}

#[test]
fn unreadable_state_files_cost_a_rerun_not_a_crash() {
    let ws = TestWorkspace::new(r#"{ stages = { s = { cmd = "echo s >> runs.log && echo x > x", outs = ["x"] } } }"#);
    ws.gourd(&["run"]).success();
    for file in
        files_under(&ws.path(".gourd/cache-v1/actions")).into_iter().chain(files_under(&ws.path(".gourd/state-v1")))
    {
        std::fs::write(file, "{ not json").unwrap();
    }
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["s"], "ran");
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "up-to-date");
}

#[test]
fn deleting_the_gourd_folder_only_costs_reruns() {
    let ws = TestWorkspace::new(r#"{ stages = { s = { cmd = "echo s >> runs.log && echo x > x", outs = ["x"] } } }"#);
    ws.gourd(&["run"]).success();
    ws.remove(".gourd");
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "ran");
    assert_eq!(ws.read("x"), "x\n");
}

#[test]
fn read_only_commands_answer_when_their_state_cannot_be_saved() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && cp input x", deps = ["input"], outs = ["x"] } } }"#,
    );
    ws.write("input", "data\n");
    // Old enough for its digest to be worth remembering in the stat cache.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(ws.path("input")).unwrap().set_modified(an_hour_ago).unwrap();
    ws.gourd(&["run"]).success();
    // A folder (not empty) where the stat cache's file belongs: replacing it
    // fails, root or not, as it does on a full disk. The cache is unreadable,
    // so the deps are hashed afresh and there is something to save.
    let _ = std::fs::remove_file(ws.path(".gourd/state-v1/stat-cache.json"));
    ws.write(".gourd/state-v1/stat-cache.json/blocker", "");
    let status = ws.gourd(&["status"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.stdout, "s  fresh\nEverything is up to date.\n");
    assert!(status.stderr.starts_with("warning: gourd's state was not saved"), "{}", status.stderr);
    let explain = ws.gourd(&["explain", "s"]);
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(explain.stdout.starts_with("stage `s`: up to date\n"), "{}", explain.stdout);
    let dry_run = ws.gourd(&["run", "--dry-run"]);
    assert_eq!(dry_run.code, 0, "{}", dry_run.stderr);
    assert!(dry_run.stdout.contains("up-to-date s"), "{}", dry_run.stdout);
    assert!(ws.path(".gourd/state-v1/stat-cache.json/blocker").exists());
}

/// `gourd run | head -1`: the reader goes away after the first line. The
/// run goes on to the end (stages, lineage), not killed by SIGPIPE midway.
#[test]
fn a_run_whose_reader_goes_away_still_finishes_and_records_lineage() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
          first = { cmd = "echo 1 > a.txt", outs = ["a.txt"] },
          second = { cmd = "sleep 0.5; cat a.txt > b.txt", deps = ["a.txt"], outs = ["b.txt"] },
          third = { cmd = "sleep 0.5; cat b.txt > c.txt", deps = ["b.txt"], outs = ["c.txt"] },
        } }"#,
    );
    let mut child = ws.command(&["run", "-j", "1"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(ws.read("c.txt"), "1\n");
    assert_eq!(ws.git(&["rev-list", "--count", "refs/gourd/lineage"]).trim(), "1");
    assert_eq!(ws.gourd(&["status", "--json"]).success().stdout.matches("\"fresh\"").count(), 3);
}

/// A stage that runs gourd on its own workspace (`make`'s habit) would
/// wait for the run that waits for it: it is refused at once, and says why.
#[test]
fn a_stage_that_runs_gourd_on_its_own_workspace_is_refused_not_left_waiting() {
    let gourd = common::gourd_bin();
    let ws = common::TestWorkspace::new(&format!(
        r#"{{ stages = {{
  a = {{ cmd = "echo a > a.txt", outs = ["a.txt"] }},
  b = {{ cmd = "{gourd} run a && cat a.txt > b.txt", outs = ["b.txt"] }},
}} }}"#
    ));
    // (Before, this call never returned.)
    let run = ws.gourd(&["run", "b"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let log = ws.read(".gourd/logs/b.log");
    assert!(log.contains("a stage cannot run gourd on the workspace it runs in"), "{log}");
    assert!(!log.contains("Waiting for another"), "{log}");
}

/// A long list in `params` is in the params file only (one variable may
/// hold at most 128 KiB), so the stage starts; a variable of `env` too
/// large to start with is named.
#[test]
fn values_too_large_for_the_environment_are_not_what_keeps_a_stage_from_starting() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
  a = { cmd = "echo ${GOURD_PARAM_IDS:-unset} > o; wc -c < $GOURD_PARAMS >> o", outs = ["o"],
        params = { ids = std.array.generate (fun i => i + 100000) 25000 } },
} }"#,
    );
    ws.gourd(&["run"]).success();
    let out = ws.read("o");
    assert!(out.starts_with("unset\n"), "{out}");
    let size: usize = out.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(size > 150_000, "the file has them all: {size}");
    let big = "x".repeat(200_000);
    ws.write("gourd.ncl", &format!(r#"{{ stages = {{ b = {{ cmd = "true", env = {{ BIG = "{big}" }} }} }} }}"#));
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("its environment is larger than the system allows; the largest variable is `BIG` (195 KiB)"),
        "{said}"
    );
}

/// SIGHUP at its default in `command`'s process, as in a terminal session.
fn hangup_by_default(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec, only async-signal-safe `signal`.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
}
