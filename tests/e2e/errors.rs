//! Bad input: every error exits 1 before anything runs, and names the file
//! and line, the field, or the stages involved. Messages are part of the
//! product, so they are snapshotted.

mod common;

use common::TestWorkspace;

/// Runs `gourd run` on `pipeline`, checks that it failed as a user error and
/// that nothing executed, and returns the normalised message.
fn rejected(pipeline: &str) -> String {
    let ws = TestWorkspace::new(pipeline);
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "nothing is reported as data: {}", run.stdout);
    assert!(!ws.exists("runs.log"), "a stage executed");
    assert!(!ws.exists(".gourd/cache-v1"), "the cache was touched");
    run.normalized(&ws)
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(rejected("{ stages = { a = { cmd = \"echo a >> runs.log\", outs = [\"x\"] }\n"));
}

#[test]
fn unknown_field() {
    insta::assert_snapshot!(rejected(
        "{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", outz = [\"x\"] },\n  },\n}\n"
    ));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(rejected(
        "{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", deps = \"x\" },\n  },\n}\n"
    ));
}

#[test]
fn absolute_path() {
    insta::assert_snapshot!(rejected(
        "{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", outs = [\"/tmp/x\"] },\n  },\n}\n"
    ));
}

#[test]
fn path_escaping_the_workspace() {
    insta::assert_snapshot!(rejected(
        "{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", deps = [\"data/../../x\"] },\n  },\n}\n"
    ));
}

#[test]
fn bad_enum_tag() {
    insta::assert_snapshot!(rejected(
        "{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", executor = 'tpu },\n  },\n}\n"
    ));
}

#[test]
fn cycle() {
    insta::assert_snapshot!(rejected(
        r#"{ stages = {
            a = { cmd = "echo a >> runs.log", deps = ["c.txt"], outs = ["a.txt"] },
            b = { cmd = "echo b >> runs.log", deps = ["a.txt"], outs = ["b.txt"] },
            c = { cmd = "echo c >> runs.log", deps = ["b.txt"], outs = ["c.txt"] },
            d = { cmd = "echo d >> runs.log", deps = ["c.txt"], outs = ["d.txt"] },
        } }"#
    ));
}

#[test]
fn duplicate_outs() {
    insta::assert_snapshot!(rejected(
        r#"{ stages = {
            a = { cmd = "echo a >> runs.log", outs = ["model.bin"] },
            b = { cmd = "echo b >> runs.log", outs = ["model.bin"] },
        } }"#
    ));
}

#[test]
fn nested_outs() {
    insta::assert_snapshot!(rejected(
        r#"{ stages = {
            a = { cmd = "echo a >> runs.log", outs = ["data"] },
            b = { cmd = "echo b >> runs.log", outs = ["data/features"] },
        } }"#
    ));
}

#[test]
fn dep_that_is_its_own_out() {
    insta::assert_snapshot!(rejected(
        r#"{ stages = { a = { cmd = "echo a >> runs.log", deps = ["out/x"], outs = ["out"] } } }"#
    ));
}

#[test]
fn dep_that_nothing_provides() {
    insta::assert_snapshot!(rejected(
        r#"{ stages = { a = { cmd = "echo a >> runs.log", deps = ["data/raw.csv"], outs = ["x"] } } }"#
    ));
}

#[test]
fn unknown_target_stage() {
    let ws = TestWorkspace::new(r#"{ stages = { a = { cmd = "echo a >> runs.log", outs = ["x"] } } }"#);
    let run = ws.gourd(&["run", "trian"]);
    assert_eq!(run.code, 1);
    assert!(!ws.exists("runs.log"));
    insta::assert_snapshot!(run.normalized(&ws), @"error: no stage is named `trian`");
}

#[test]
fn no_pipeline_file() {
    let ws = TestWorkspace::bare();
    let run = ws.gourd(&["status"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!(run.normalized(&ws));
}

#[test]
fn bad_command_line_exits_1() {
    let ws = TestWorkspace::new(r#"{ stages = {} }"#);
    let run = ws.gourd(&["run", "--no-such-flag"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
}

#[test]
fn runaway_recursion_is_stopped_by_the_memory_limit() {
    let ws = TestWorkspace::new(
        "let rec grow = fun n => 1 + grow (n + 1) in\n{ stages = { a = { cmd = \"echo a >> runs.log\", params = { x = grow 0 } } } }\n",
    );
    let run = ws.gourd_env(&["check"], &[("GOURD_EVAL_MEMORY_MB", "256")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("crashed"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn deep_nesting_does_not_crash_gourd() {
    // A value nested deep enough to overflow the evaluator's stack.
    let depth = 100_000;
    let source = format!(
        "{{ stages = {{ a = {{ cmd = \"echo a >> runs.log\", params = {{ x = {}1{} }} }} }} }}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let ws = TestWorkspace::new(&source);
    let run = ws.gourd(&["check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error:"), "{}", run.stderr);
}

#[test]
fn a_loop_without_end_is_stopped_by_the_time_limit() {
    let ws = TestWorkspace::new(
        "let rec spin = fun n => if n < 0 then 0 else spin (n + 1) in\n{ stages = { a = { cmd = \"true\", params = { x = spin 0 } } } }\n",
    );
    // The loop also grows memory: left alone, the memory limit would stop it
    // (after ~20 s at the default 4 GiB), which says "crashed" instead.
    let started = std::time::Instant::now();
    let run = ws.gourd_env(&["check"], &[("GOURD_EVAL_TIMEOUT", "2")]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("took longer than 2s"), "{}", run.stderr);
    assert!(run.stderr.contains("`GOURD_EVAL_TIMEOUT` raises the limit"), "{}", run.stderr);
    assert!(took < std::time::Duration::from_secs(15), "stopped after {took:?}, not 2 s");
}

#[test]
fn unknown_built_in_step() {
    let message = rejected(r#"{ stages = { a = { cmd = { step = "transmogrify", config = {} }, outs = ["x"] } } }"#);
    assert!(message.contains("the built-in step `transmogrify`, which does not exist"), "{message}");
    assert!(message.contains("hint: the built-in steps are: images, validate, train"), "{message}");
}

#[test]
fn built_in_steps_need_gourd_step() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
        { stages = { images = gourd.steps.images { input = "photos", output = "data" } } }"#,
    );
    let run = ws.gourd_env(&["run"], &[("GOURD_STEP", "/nonexistent/gourd-step")]);
    assert_eq!(run.code, 1);
    let message = run.normalized(&ws);
    assert!(message.contains("`gourd-step` was not found"), "{message}");
    assert!(message.contains("--features torch"), "{message}");
}

#[test]
fn dep_that_is_a_symbolic_link_loop() {
    let ws =
        TestWorkspace::new(r#"{ stages = { a = { cmd = "echo a >> runs.log", deps = ["loop"], outs = ["x"] } } }"#);
    std::os::unix::fs::symlink("loop", ws.path("loop")).unwrap();
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!ws.exists("runs.log"), "a stage executed");
    insta::assert_snapshot!(run.normalized(&ws), @r"
    error: in `[WS]/gourd.ncl`: stage `a` depends on `loop`, a symbolic link that loops back on itself

    hint: make `loop` a link to a file or folder that exists, or replace it by one
    ");
}

#[test]
fn argv_with_an_empty_program() {
    let pipeline = r#"{ stages = { a = { cmd = [""], outs = ["x"] } } }"#;
    let check = TestWorkspace::new(pipeline).gourd(&["check"]);
    assert_eq!(check.code, 1, "`gourd check` accepts it: {}", check.stdout);
    insta::assert_snapshot!(rejected(pipeline));
}

#[test]
fn pipeline_file_that_is_a_folder() {
    let ws = TestWorkspace::new(r#"{ stages = {} }"#);
    std::fs::create_dir(ws.path("pipelines")).unwrap();
    let run = ws.gourd(&["--file", "pipelines", "check"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!(run.normalized(&ws), @r"
    error: `[WS]/pipelines` is a folder, not a pipeline file

    hint: pass the file inside it (`--file [WS]/pipelines/gourd.ncl`), or `-C [WS]/pipelines`
    ");
}

#[test]
fn pipeline_file_that_is_a_fifo() {
    let ws = TestWorkspace::new(r#"{ stages = {} }"#);
    let fifo = std::ffi::CString::new(ws.path("pipe.ncl").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let run = ws.gourd(&["--file", "pipe.ncl", "check"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!(run.normalized(&ws), @"error: pipeline file `[WS]/pipe.ncl` is not a regular file");
}
