//! `gourd watch`: the real binary re-runs the pipeline when its sources
//! change, and Ctrl-C stops it cleanly.

mod common;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use common::{TestWorkspace, alive, wait_until};

fn interrupt(child: &Child) {
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

/// The lines `child` writes to stderr, as they come.
fn stderr_lines(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Waits until gourd watch has finished `runs` runs and is waiting.
fn wait_idle_after(lines: &Arc<Mutex<Vec<String>>>, runs: usize) {
    wait_until(&format!("run {runs} to finish"), || {
        lines.lock().unwrap().iter().filter(|l| l.starts_with("watching ")).count() >= runs
    });
}

/// Whether `rel` holds `content` (a run clears an output before it writes it).
fn holds(ws: &TestWorkspace, rel: &str, content: &str) -> bool {
    std::fs::read_to_string(ws.path(rel)).is_ok_and(|text| text == content)
}

fn exit_code(child: &mut Child) -> i32 {
    let mut code = None;
    wait_until("gourd watch to exit", || {
        code = child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
        code.is_some()
    });
    code.unwrap()
}

#[test]
fn a_changed_source_or_pipeline_runs_again_and_ctrl_c_stops_watching() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            copy = { cmd = "echo copy >> runs.log && cp data/in.txt out.txt", deps = ["data/in.txt"], outs = ["out.txt"] },
        } }"#,
    );
    ws.write("data/in.txt", "one\n");
    let mut child = ws.command(&["watch"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = stderr_lines(&mut child);
    wait_until("the first run", || holds(&ws, "out.txt", "one\n"));

    ws.write("data/in.txt", "two\n");
    wait_until("a run after the source changed", || holds(&ws, "out.txt", "two\n"));
    wait_idle_after(&lines, 2);

    // A new stage in the pipeline file is picked up.
    ws.write(
        "gourd.ncl",
        r#"{ stages = {
            copy = { cmd = "echo copy >> runs.log && cp data/in.txt out.txt", deps = ["data/in.txt"], outs = ["out.txt"] },
            shout = { cmd = "echo shout >> runs.log && tr a-z A-Z < out.txt > loud.txt", deps = ["out.txt"], outs = ["loud.txt"] },
        } }"#,
    );
    wait_until("the new stage to run", || holds(&ws, "loud.txt", "TWO\n"));
    wait_idle_after(&lines, 3);

    // The pipeline file gone for a while (a checkout of a branch without
    // it): said, and the watch goes on; back, it runs again.
    let pipeline = ws.read("gourd.ncl");
    std::fs::remove_file(ws.path("gourd.ncl")).unwrap();
    wait_until("the missing pipeline to be said", || {
        lines.lock().unwrap().iter().any(|l| l.contains("watching for it to come back"))
    });
    assert!(child.try_wait().unwrap().is_none(), "the watch ended");
    ws.write("data/in.txt", "three\n");
    ws.write("gourd.ncl", &pipeline);
    wait_until("a run after the pipeline came back", || holds(&ws, "loud.txt", "THREE\n"));
    wait_idle_after(&lines, 4);

    interrupt(&child);
    assert_eq!(exit_code(&mut child), 0, "Ctrl-C while watching is a clean stop");
    // Outputs written by the runs started nothing more: one run per change.
    assert_eq!(ws.executions(), vec!["copy", "copy", "shout", "copy", "shout"]);
    // Nothing is left half-done: the next run has nothing to do.
    let run = ws.run_json(&[]).success();
    assert!(run.statuses().values().all(|s| s == "up-to-date"), "{:?}", run.statuses());
}

#[test]
fn ctrl_c_during_a_run_stops_the_run_and_its_stages() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            slow = { cmd = "echo $$ > pid && sleep 60 && echo done > out.txt", deps = ["in.txt"], outs = ["out.txt"] },
        } }"#,
    );
    ws.write("in.txt", "x\n");
    let mut child = ws.command(&["watch"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("pid") && !ws.read("pid").trim().is_empty());
    let stage: i32 = ws.read("pid").trim().parse().unwrap();
    assert!(alive(stage));

    interrupt(&child);
    assert_eq!(exit_code(&mut child), 130, "an interrupted run exits as interrupted");
    wait_until("the stage's process to be gone", || !alive(stage));
    assert!(!ws.exists("out.txt"));
    let status = ws.gourd(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["stages"][0]["state"], "stale");
}

#[test]
fn a_closed_terminal_sighup_stops_the_run_and_its_stages_too() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            slow = { cmd = "echo $$ > pid && sleep 60 && echo done > out.txt", deps = ["in.txt"], outs = ["out.txt"] },
        } }"#,
    );
    ws.write("in.txt", "x\n");
    // As from a terminal: SIGHUP at its default, whatever this test runs
    // under (`nohup` passes it on ignored).
    let mut command = ws.command(&["watch"]);
    // SAFETY: between fork and exec, only async-signal-safe `signal`.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("pid") && !ws.read("pid").trim().is_empty());
    let stage: i32 = ws.read("pid").trim().parse().unwrap();
    assert!(alive(stage));

    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert_eq!(exit_code(&mut child), 130, "a run stopped by the hangup exits as interrupted");
    // Not left running, orphaned, by the watch that started it.
    wait_until("the stage's process to be gone", || !alive(stage));
    assert!(!ws.exists("out.txt"));
}

/// A failed run is said and the watch goes on; a change made while a run
/// is going starts one more run after it (docs/monitoring.md).
#[test]
fn a_failed_run_does_not_end_the_watch_and_a_change_during_a_run_is_not_missed() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            copy = { cmd = "v=$(cat in.txt); touch started.$v && sleep 0.5 && test $v != bad && printf $v > out.txt", deps = ["in.txt"], outs = ["out.txt"] },
        } }"#,
    );
    ws.write("in.txt", "bad");
    let mut child = ws.command(&["watch"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = stderr_lines(&mut child);
    wait_idle_after(&lines, 1);
    assert!(lines.lock().unwrap().iter().any(|l| l.contains("the run failed; watching for the next change")));
    assert!(child.try_wait().unwrap().is_none(), "the watch ended after a failed run");

    ws.write("in.txt", "one");
    wait_until("the run of `one` to start", || ws.exists("started.one"));
    // Changed again while that run sleeps: the watch must see it.
    ws.write("in.txt", "two");
    wait_until("a run of the change made during the last", || holds(&ws, "out.txt", "two"));
    wait_idle_after(&lines, 3);
    interrupt(&child);
    assert_eq!(exit_code(&mut child), 0);
}
