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
        { stages = {
          images = gourd.steps.images { input = "photos", output = "data" },
          harvest = { cmd = "echo h >> runs.log; echo h > h.txt", outs = ["h.txt"] },
        } }"#,
    );
    ws.write("photos/a/1.png", "not an image");
    let without = [("GOURD_STEP", "/nonexistent/gourd-step")];
    let run = ws.gourd_env(&["run"], &without);
    assert_eq!(run.code, 1);
    let message = run.normalized(&ws);
    assert!(
        message.contains("stage `images` uses the built-in step `images`, but `gourd-step` was not found"),
        "{message}"
    );
    assert!(message.contains("pip install \"gourd-ml[torch]\""), "{message}");
    assert!(message.contains("--features torch"), "{message}");
    assert!(!ws.exists("runs.log"), "refused before anything ran");
    // `check` says so too; running the pipeline's plain stages needs no
    // `gourd-step`, nor do `status` and `dag`.
    let check = ws.gourd_env(&["check"], &without);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(check.stderr.contains("`gourd-step` was not found"), "{}", check.stderr);
    ws.gourd_env(&["status"], &without).success();
    ws.gourd_env(&["run", "harvest"], &without).success();
    assert_eq!(ws.read("h.txt"), "h\n");
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

const TRAIN_AND_EVALUATE: &str = r#"{ stages = {
  prepare = { cmd = "echo p >> runs.log; mkdir -p data; echo 1 > data/clean.csv", outs = ["data/clean.csv"] },
  train = { cmd = "echo t >> runs.log; echo 2 > model.bin", deps = ["data/clean.csv"], outs = ["model.bin"] },
} }"#;

#[test]
fn a_mistyped_stage_name_is_corrected() {
    let ws = TestWorkspace::new(TRAIN_AND_EVALUATE);
    for command in [&["run", "trian"][..], &["explain", "trian"], &["status", "trian"], &["run", "--force", "trian"]] {
        let run = ws.gourd(command);
        assert_eq!(run.code, 1, "{command:?}: {}", run.stderr);
        assert!(!ws.exists("runs.log"), "{command:?} ran a stage");
        insta::allow_duplicates! {
            insta::assert_snapshot!(run.normalized(&ws), @r"
            error: no stage is named `trian`

            hint: did you mean `train`?
            ");
        }
    }
    // A name close to none says only that it is unknown.
    let run = ws.gourd(&["explain", "report"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!(run.normalized(&ws), @"error: no stage is named `report`");
}

#[test]
fn a_dep_close_to_a_stage_output_is_corrected() {
    let pipeline = TRAIN_AND_EVALUATE.replace(r#"deps = ["data/clean.csv"]"#, r#"deps = ["data/clean.cvs"]"#);
    insta::assert_snapshot!(rejected(&pipeline), @r"
    error: in `[WS]/gourd.ncl`: stage `train` depends on `data/clean.cvs`, which does not exist and no stage writes

    hint: did you mean `data/clean.csv`? (an output of stage `prepare`)
    ");
}

#[test]
fn a_dep_close_to_a_file_in_the_workspace_is_corrected() {
    let ws = TestWorkspace::new(
        r#"{ stages = { a = { cmd = "echo a >> runs.log", deps = ["data/raw.cvs"], outs = ["x"] } } }"#,
    );
    std::fs::create_dir(ws.path("data")).unwrap();
    std::fs::write(ws.path("data/raw.csv"), "1\n").unwrap();
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!ws.exists("runs.log"));
    insta::assert_snapshot!(run.normalized(&ws), @r"
    error: in `[WS]/gourd.ncl`: stage `a` depends on `data/raw.cvs`, which does not exist and no stage writes

    hint: did you mean `data/raw.csv`? (it exists in the workspace)
    ");
}

#[test]
fn a_mistyped_subcommand_is_corrected() {
    let ws = TestWorkspace::new(r#"{ stages = {} }"#);
    let run = ws.gourd(&["rnu"]);
    assert_eq!(run.code, 1);
    let message = run.normalized(&ws);
    assert!(message.contains("unrecognized subcommand 'rnu'"), "{message}");
    assert!(message.contains("tip: a similar subcommand exists: 'run'"), "{message}");
    let run = ws.gourd(&["stauts"]);
    assert!(run.normalized(&ws).contains("a similar subcommand exists: 'status'"), "{}", run.stderr);
}

/// `rejected`, and checks that the message shows none of gourd's insides.
fn rejected_for_the_user(pipeline: &str) -> String {
    let message = rejected(pipeline);
    for internal in ["gourd-std.ncl", ".gourd/stdlib", "<gourd:", "Append `, ..`"] {
        assert!(!message.contains(internal), "`{internal}` shown:\n{message}");
    }
    message
}

#[test]
fn a_field_defined_as_itself() {
    insta::assert_snapshot!(rejected_for_the_user(
        "let lr = 0.1 in\n{\n  stages = {\n    train = { cmd = \"echo t >> runs.log\", params = { lr = lr } },\n  },\n}\n"
    ));
}

/// `gourd.params` raises a missing key in the standard library; the hint
/// names the user's line that asks for it.
#[test]
fn a_params_key_the_file_lacks_is_named_with_the_line_asking_for_it() {
    let ws = TestWorkspace::new(
        "let gourd = import \"gourd-std.ncl\" in\nlet p = import \"params.yaml\" in\n{\n  stages = {\n    train = { cmd = \"echo t >> runs.log\", params = gourd.params p [\"train.lrx\"] },\n  },\n}\n",
    );
    ws.write("params.yaml", "train:\n  lr: 0.1\n");
    let out = ws.gourd(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("the params file has no key `train.lrx`"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("hint: `train.lrx` is asked for at `gourd.ncl:5`: check its spelling against the params file"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_field_defined_as_itself_in_a_function() {
    let message = rejected_for_the_user(
        "let train = fun epochs => { cmd = \"echo t >> runs.log\", params = { epochs = epochs } } in\n{ stages = { a = train 5 } }\n",
    );
    assert!(message.contains("hint: `epochs = epochs` defines the field `epochs` as itself"), "{message}");
    assert!(message.contains("`let base_epochs = … in` … `epochs = base_epochs`"), "{message}");
}

/// A stage's own field (`deps = deps @ [..]`): the hint's example must not
/// move it under `params`.
#[test]
fn a_stage_field_defined_through_itself() {
    let message = rejected_for_the_user(
        "let deps = [\"data.csv\"] in\n{ stages = { train = { cmd = \"echo t >> runs.log\", deps = deps @ [\"x\"] } } }\n",
    );
    assert!(message.contains("`let base_deps = [\"data.csv\"] in` … `deps = base_deps`"), "{message}");
    assert!(!message.contains("params ="), "{message}");
}

/// An enum tag where a string belongs (`cmd = 'true'` is the tag `true'`):
/// refused by the contract, not run as the string `true'`.
#[test]
fn an_enum_tag_where_a_string_belongs() {
    let message = rejected_for_the_user("{ stages = { train = { cmd = 'hello, outs = [] } } }\n");
    assert!(message.contains("contract broken by the value of `cmd`"), "{message}");
    assert!(message.contains("gourd.ncl:1"), "{message}");
    let message = rejected_for_the_user("{ stages = { train = { cmd = \"true\", outs = ['x] } } }\n");
    assert!(message.contains("contract broken by the value of `outs`"), "{message}");
}

#[test]
fn yaml_colons() {
    insta::assert_snapshot!(rejected_for_the_user(
        "{\n  stages = {\n    train = {\n      cmd = \"echo t >> runs.log\",\n      params = { epochs: 5, lr: 0.1 },\n    },\n  },\n}\n"
    ));
}

#[test]
fn yaml_colon_on_a_record() {
    let message = rejected_for_the_user("{\n  stages: {\n    train = { cmd = \"echo t >> runs.log\" },\n  },\n}\n");
    assert!(
        message.contains("hint: `stages: {` on line 2 of `gourd.ncl` is YAML: Nickel gives a field its value with `=`, as in `stages = {`"),
        "{message}"
    );
}

/// An imported YAML file is YAML: its `key: value` is no mistake, and no
/// hint says it is.
#[test]
fn a_broken_yaml_import_gets_no_hint_to_write_nickel() {
    let ws = TestWorkspace::new(
        "let p = import \"params.yaml\" in\n{ stages = { a = { cmd = \"echo a >> runs.log\", params = p } } }\n",
    );
    ws.write("params.yaml", "lr: 1\nnested:\n  bad: [\n");
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("params.yaml"), "{}", run.stderr);
    assert!(!run.stderr.contains("is YAML: Nickel gives"), "{}", run.stderr);
    assert!(!ws.exists("runs.log"));
}

#[test]
fn python_quotes() {
    insta::assert_snapshot!(rejected_for_the_user(
        "{\n  stages = {\n    train = {\n      cmd = \"echo t >> runs.log\",\n      deps = ['data/raw.csv'],\n    },\n  },\n}\n"
    ));
}

#[test]
fn python_quotes_around_a_word() {
    // `'model.bin'` is the enum tag `'model` with a field access `.bin'`.
    let message =
        rejected_for_the_user("{ stages = { train = { cmd = \"echo t >> runs.log\", outs = ['model.bin'] } } }\n");
    assert!(
        message.contains(
            "hint: `'model.bin'` on line 1 of `gourd.ncl`: Nickel strings take double quotes, as in `\"model.bin\"`"
        ),
        "{message}"
    );
}

#[test]
fn mistyped_stage_fields() {
    for (typo, meant, line) in [("cmdd", "cmd", 4), ("dep", "deps", 5), ("out", "outs", 5)] {
        let cmd = if typo == "cmdd" { "cmdd" } else { "cmd" };
        let pipeline = format!(
            "{{\n  stages = {{\n    train = {{\n      {cmd} = \"echo t >> runs.log\",\n      {} = [\"x\"],\n    }},\n  }},\n}}\n",
            if typo == "cmdd" { "outs" } else { typo },
        );
        let message = rejected_for_the_user(&pipeline);
        let first = message.lines().next().unwrap();
        assert_eq!(
            first,
            format!("error: in `[WS]/gourd.ncl:{line}`: stage `train` has no field `{typo}`"),
            "{message}"
        );
        assert!(message.contains(&format!("hint: did you mean `{meant}`?")), "{message}");
    }
}

#[test]
fn mistyped_fields_elsewhere() {
    let resources = rejected_for_the_user(
        "{ stages = { a = {\n  cmd = \"echo a >> runs.log\",\n  resources = { gpu = 1 },\n} } }\n",
    );
    assert!(
        resources.starts_with("error: in `[WS]/gourd.ncl:3`: the `resources` of stage `a` has no field `gpu`"),
        "{resources}"
    );
    assert!(resources.contains("hint: did you mean `gpus`?"), "{resources}");
    // A misspelt `persist` would let the output be removed before the stage runs.
    let output = rejected_for_the_user(
        "{ stages = { a = {\n  cmd = \"echo a >> runs.log\",\n  outs = [\n    { path = \"log.txt\", persit = true },\n  ],\n} } }\n",
    );
    assert!(
        output.starts_with("error: in `[WS]/gourd.ncl:4`: an output of stage `a` has no field `persit`"),
        "{output}"
    );
    assert!(output.contains("hint: did you mean `persist`?"), "{output}");
    let top = rejected_for_the_user("{ stage = { a = { cmd = \"echo a >> runs.log\" } } }\n");
    assert!(top.starts_with("error: in `[WS]/gourd.ncl:1`: the pipeline has no field `stage`"), "{top}");
    assert!(top.contains("hint: did you mean `stages`?"), "{top}");
}

#[test]
fn python_quotes_that_nickel_accepts() {
    // `'resnet'` is the enum tag `resnet'`: valid Nickel, exported as the
    // string "resnet'", which no one means.
    insta::assert_snapshot!(rejected_for_the_user(
        "{\n  stages = {\n    train = {\n      cmd = \"echo t >> runs.log\",\n      params = { model = 'resnet' },\n    },\n  },\n}\n"
    ), @r#"
    error: in `[WS]/gourd.ncl:5`: stage `train`: `'resnet'` is the enum tag `resnet'`, not the string "resnet"

    hint: Nickel strings take double quotes: write `"resnet"`
    "#);
}

#[test]
fn a_mistyped_field_under_a_contract_the_pipeline_applies() {
    // Here Nickel finds the field, at the user's line; gourd adds the nearest one.
    insta::assert_snapshot!(rejected_for_the_user(
        "let gourd = import \"gourd-std.ncl\" in\n{\n  stages = {\n    a | gourd.Stage = {\n      cmdd = \"echo a >> runs.log\",\n    },\n  },\n}\n"
    ));
}

/// `gourd run 2>&1 | head -1` on a broken pipeline: the reader is gone
/// before the error is written (`run` ignores SIGPIPE), and the exit code
/// is still the error's, not an abort.
#[test]
fn an_error_written_to_a_closed_pipe_still_exits_1() {
    let ws = TestWorkspace::new("{ stages = { a = { cmd = 5 } } }\n");
    // (Other commands end by SIGPIPE, as `gourd dag | head` should.)
    for command in ["run"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = std::process::Command::new(common::gourd_bin())
            .arg(command)
            .current_dir(ws.root())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(1), "{command}: {status:?}");
    }
}

/// An argv with a number in it is no built-in step (serde reads a struct
/// from an array of its fields): the contract's error, at its line.
#[test]
fn an_array_is_never_read_as_a_record() {
    let message = rejected("{ stages = {\n  wait = {\n    cmd = [\"sleep\", 5],\n  },\n} }\n");
    assert!(message.contains("every element of an argv command must be a String"), "{message}");
    assert!(message.contains("gourd.ncl:3:11"), "{message}");
    assert!(!message.contains("built-in step"), "{message}");
    let message = rejected("{ stages = { a = { cmd = \"true\", outs = [[\"o.txt\", \"model\", false, true]] } } }\n");
    assert!(message.contains("contract broken"), "{message}");
}

/// Command-line mistakes that no change of a source can make right are
/// exit 1 at once, with what to fix: `watch` does not start watching, a
/// revision or remote the user named must exist, and a template folder
/// must hold the template.
#[test]
fn named_things_that_do_not_exist_are_user_errors() {
    let ws = TestWorkspace::new(r#"{ stages = { a = { cmd = "echo '{\"x\": 1}' > m.json", metrics = ["m.json"] } } }"#);
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    ws.gourd(&["run"]).success();
    for (args, said) in [
        (&["watch", "-j", "0"][..], "`-j` must be at least 1"),
        (&["watch", "nosuch"], "nosuch"),
        (&["report", "--base", "nosuch"], "nosuch"),
        (&["report", "--template-dir", "nowhere"], "`--template-dir nowhere`: cannot read `report.html.j2`"),
        (&["push", "nosuch"], "no git remote `nosuch`"),
        (&["pull", "nosuch"], "no git remote `nosuch`"),
    ] {
        let out = ws.gourd(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
    // The default remote of a repository with none yet is a note.
    let push = ws.gourd(&["push"]).success();
    assert!(push.stderr.contains("has no git remote `origin`"), "{}", push.stderr);
    let option = ws.gourd(&["import", ".", "m.json", "--rev=--upload-pack=touch pwned"]);
    assert_eq!(option.code, 1, "{}", option.stderr);
    assert!(option.stderr.contains("a revision, not an option"), "{}", option.stderr);
    assert!(!ws.exists("pwned"));
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"raw\xff");
        std::fs::write(ws.root().join(name), "x").unwrap();
        let out = ws.command(&["add"]).arg(name).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a UTF-8 name"));
        std::fs::remove_file(ws.root().join(name)).unwrap();
    }
    let none = ws.gourd(&["log", "-n", "0"]);
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(none.stderr.contains("`-n` must be at least 1"), "{}", none.stderr);
    // A folder named as the pipeline file is said to be one, by both.
    let folder = TestWorkspace::bare();
    std::fs::create_dir(folder.path("gourd.ncl")).unwrap();
    std::fs::create_dir(folder.path("sub")).unwrap();
    let below = folder.command(&["check"]).current_dir(folder.path("sub")).output().unwrap();
    assert_eq!(below.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&below.stderr).contains("gourd.ncl` is a folder, not a pipeline file"));
    for command in ["check", "init"] {
        let out = folder.gourd(&[command]);
        assert_eq!(out.code, 1, "{command}: {}", out.stderr);
        assert!(out.stderr.contains("gourd.ncl` is a folder, not a pipeline file"), "{command}: {}", out.stderr);
    }
    // A revision's pipeline that does not evaluate is named by revision.
    let old = TestWorkspace::new("{ stages = { a = { cmd = 5 } } }\n");
    old.git(&["add", "-A"]);
    old.git(&["commit", "-qm", "broken"]);
    old.write("gourd.ncl", "{ stages = { a = { cmd = \"true\" } } }\n");
    let out = old.gourd(&["params", "diff"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("HEAD:gourd.ncl"), "{}", out.stderr);
    assert!(!out.stderr.contains("/tmp/"), "{}", out.stderr);
    // A pipeline file that is not text is said to be so, not "not found".
    let binary = TestWorkspace::bare();
    binary.write("gourd.ncl", "{ stages = {} } # \u{0}");
    std::fs::write(binary.path("gourd.ncl"), b"{ stages = {} } # \xff").unwrap();
    let out = binary.gourd(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is not UTF-8 text (byte 18 is not valid)"), "{}", out.stderr);
    binary.write("gourd.ncl", "let p = import \"params.yaml\" in { stages = {} }");
    std::fs::write(binary.path("params.yaml"), b"lr: 0.1 # \xe9\n").unwrap();
    let out = binary.gourd(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("params.yaml` (imported by"), "{}", out.stderr);
    assert!(out.stderr.contains("is not UTF-8 text (byte 10 is not valid)"), "{}", out.stderr);
    std::fs::write(binary.path("gourd.ncl"), b"\xef\xbb\xbf{ stages = {} }").unwrap();
    let out = binary.gourd(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("starts with a byte order mark"), "{}", out.stderr);
    // A metrics file there but unreadable is said, not taken for missing.
    ws.write("m.json", "{bad");
    for command in [&["metrics", "show"][..], &["metrics", "diff"]] {
        let out = ws.gourd(command).success();
        assert!(out.stderr.contains("warning: metrics file `m.json` cannot be read"), "{command:?}: {}", out.stderr);
    }
}

/// A count past what gourd holds is the contract's error, at its line, not
/// a message about `u32` naming no file.
#[test]
fn resource_count_too_large() {
    for value in ["99999999999999999999", "4294967296"] {
        let message = rejected(&format!(
            "{{\n  stages = {{\n    a = {{ cmd = \"echo a >> runs.log\", resources = {{ cpus = {value} }} }},\n  }},\n}}\n"
        ));
        assert!(message.contains("`cpus`") && message.contains("gourd.ncl:3:"), "{message}");
        assert!(message.contains("from 0 to 4294967295"), "{message}");
    }
}

/// A wrong type says what was expected, at the value's line: `stages` that
/// is not a record (not a frame of the standard library), a dep or a
/// metrics file that is not a path.
#[test]
fn wrong_types_name_what_was_expected() {
    for (pipeline, expected) in [
        ("{\n  stages = 5,\n}\n", "expected a record of stages"),
        (
            "{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", deps = [5] },\n  },\n}\n",
            "expected a path (a String), got a Number",
        ),
        (
            "{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", metrics = [true] },\n  },\n}\n",
            "expected a path (a String), got a Bool",
        ),
    ] {
        let message = rejected(pipeline);
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("stdlib"), "{message}");
        assert!(message.contains("gourd.ncl:2:") || message.contains("gourd.ncl:3:"), "{message}");
    }
}
