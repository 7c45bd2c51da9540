//! SPEC.md, "Behaviour that must hold", against the real binary.

mod common;

use common::{TestWorkspace, expect, files_under};

/// A diamond: prepare → (left, right) → join. Each stage appends its name to
/// `runs.log` when it executes, so tests can tell executing from restoring.
const DIAMOND: &str = r#"
{
  stages = {
    prepare = {
      cmd = "echo prepare >> runs.log && mkdir -p data/prepared && for f in data/raw/*; do grep -v '^#' $f > data/prepared/$(basename $f); done",
      deps = ["data/raw"],
      outs = ["data/prepared"],
    },
    left = {
      cmd = "echo left >> runs.log && tr a-z A-Z < data/prepared/a.txt > left.txt",
      deps = ["data/prepared/a.txt"],
      outs = ["left.txt"],
    },
    right = {
      cmd = "echo right >> runs.log && rev < data/prepared/b.txt > right.txt",
      deps = ["data/prepared/b.txt"],
      outs = ["right.txt"],
    },
    join = {
      cmd = "echo join >> runs.log && cat left.txt right.txt > joined.txt",
      deps = ["left.txt", "right.txt"],
      outs = ["joined.txt"],
      metrics = ["metrics.json"],
    } & { cmd | force = "echo join >> runs.log && cat left.txt right.txt > joined.txt && echo '{\"lines\": 2}' > metrics.json" },
  },
}
"#;

fn diamond() -> TestWorkspace {
    let ws = TestWorkspace::new(DIAMOND);
    ws.write("data/raw/a.txt", "alpha\n");
    ws.write("data/raw/b.txt", "beta\n");
    ws
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn first_run_runs_everything_and_second_run_executes_nothing() {
    let ws = diamond();
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("left", "ran"), ("right", "ran"), ("join", "ran")]));
    assert_eq!(ws.read("joined.txt"), "ALPHA\nateb\n");
    assert_eq!(run.summary()["ran"], 4);

    ws.clear_executions();
    let run = ws.run_json(&[]).success();
    assert!(ws.executions().is_empty(), "executed {:?}", ws.executions());
    assert_eq!(run.summary()["up_to_date"], 4);
    for event in run.events().iter().filter(|e| e["event"] == "stage") {
        assert_eq!(event["key"].as_str().unwrap().len(), 64, "{event}");
    }
}

#[test]
fn changing_one_dep_reruns_exactly_what_depends_on_it() {
    let ws = diamond();
    ws.run_json(&[]).success();
    ws.clear_executions();
    ws.write("data/raw/b.txt", "bravo\n");
    let run = ws.run_json(&[]).success();
    assert_eq!(sorted(ws.executions()), vec!["join", "prepare", "right"]);
    assert_eq!(run.statuses()["left"], "up-to-date");
    assert_eq!(ws.read("joined.txt"), "ALPHA\novarb\n");
}

#[test]
fn identical_upstream_output_stops_the_rebuild_early() {
    let ws = diamond();
    ws.run_json(&[]).success();
    ws.clear_executions();
    // A comment is dropped by `prepare`: its output bytes do not change.
    ws.write("data/raw/a.txt", "# a comment\nalpha\n");
    let run = ws.run_json(&[]).success();
    assert_eq!(ws.executions(), vec!["prepare"]);
    assert_eq!(
        run.statuses(),
        expect(&[("prepare", "ran"), ("left", "up-to-date"), ("right", "up-to-date"), ("join", "up-to-date")])
    );
}

#[test]
fn changing_a_param_or_a_command_reruns_that_stage_and_what_it_changes() {
    let pipeline = |lr: &str, suffix: &str| {
        format!(
            r#"let learning_rate = {lr} in {{ stages = {{
                train = {{ cmd = "echo train >> runs.log && cat $GOURD_PARAMS > model.txt{suffix}", params = {{ lr = learning_rate }}, outs = ["model.txt"] }},
                report = {{ cmd = "echo report >> runs.log && cp model.txt report.txt", deps = ["model.txt"], outs = ["report.txt"] }},
                other = {{ cmd = "echo other >> runs.log && echo x > other.txt", outs = ["other.txt"] }},
            }} }}"#
        )
    };
    let ws = TestWorkspace::new(&pipeline("0.1", ""));
    ws.run_json(&[]).success();
    assert!(ws.read("model.txt").contains("0.1"));

    ws.clear_executions();
    ws.write("gourd.ncl", &pipeline("0.2", ""));
    ws.run_json(&[]).success();
    assert_eq!(sorted(ws.executions()), vec!["report", "train"]);

    // A command change that writes the same bytes: downstream stays.
    ws.clear_executions();
    ws.write("gourd.ncl", &pipeline("0.2", " && true"));
    let run = ws.run_json(&[]).success();
    assert_eq!(ws.executions(), vec!["train"]);
    assert_eq!(run.statuses()["report"], "up-to-date");
}

#[test]
fn deleted_outputs_are_restored_without_executing() {
    let ws = diamond();
    ws.run_json(&[]).success();
    ws.clear_executions();
    ws.remove("data/prepared");
    ws.remove("joined.txt");
    let run = ws.run_json(&[]).success();
    assert!(ws.executions().is_empty(), "executed {:?}", ws.executions());
    assert_eq!(run.statuses()["prepare"], "restored");
    assert_eq!(run.statuses()["join"], "restored");
    assert_eq!(run.statuses()["left"], "up-to-date");
    assert_eq!(ws.read("data/prepared/a.txt"), "alpha\n");
    assert_eq!(ws.read("joined.txt"), "ALPHA\nateb\n");
}

#[test]
fn a_restored_file_shares_no_bytes_with_the_cache() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && mkdir -p out && echo precious > out/data.txt && echo model > model.bin", outs = ["out", "model.bin"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    ws.remove("out");
    ws.remove("model.bin");
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "restored");
    let objects: Vec<u64> =
        files_under(&ws.path(".gourd/cache-v1/objects")).iter().map(|p| std::fs::metadata(p).unwrap().ino()).collect();
    assert_eq!(objects.len(), 2);
    for restored in ["out/data.txt", "model.bin"] {
        let meta = std::fs::metadata(ws.path(restored)).unwrap();
        assert_eq!(meta.nlink(), 1, "`{restored}` has another name");
        assert!(!objects.contains(&meta.ino()), "`{restored}` is a cache object");
    }
    // Editing a restored file in place leaves the cache as it was: the next
    // restore brings back the original bytes.
    for restored in ["out/data.txt", "model.bin"] {
        let mut file = std::fs::OpenOptions::new().write(true).open(ws.path(restored)).unwrap();
        file.write_all(b"EDITED").unwrap();
    }
    ws.remove("out");
    ws.remove("model.bin");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["s"], "restored", "{}", run.stdout);
    assert_eq!(ws.read("out/data.txt"), "precious\n");
    assert_eq!(ws.read("model.bin"), "model\n");
    assert_eq!(ws.executions(), vec!["s"], "executed once, restored twice");
}

#[test]
fn checking_out_old_inputs_restores_their_outputs() {
    let ws = diamond();
    ws.git(&["add", "data", "gourd.ncl", ".gitignore"]);
    ws.git(&["commit", "-qm", "v1"]);
    ws.run_json(&[]).success();
    ws.write("data/raw/a.txt", "apple\n");
    ws.git(&["commit", "-qam", "v2"]);
    ws.run_json(&[]).success();
    assert_eq!(ws.read("joined.txt"), "APPLE\nateb\n");

    ws.clear_executions();
    ws.git(&["checkout", "-q", "HEAD~1", "--", "data"]);
    let run = ws.run_json(&[]).success();
    assert!(ws.executions().is_empty(), "executed {:?}", ws.executions());
    assert_eq!(run.summary()["restored"], 3);
    assert_eq!(ws.read("joined.txt"), "ALPHA\nateb\n");
}

/// Two stages that each wait for the other's marker: they finish only if
/// both run at the same time.
const MEETING: &str = r#"{ stages = {
    a = { cmd = "touch a.started; for i in $(seq 100); do [ -e b.started ] && break; sleep 0.1; done; [ -e b.started ] && touch a.out", outs = ["a.out"] },
    b = { cmd = "touch b.started; for i in $(seq 100); do [ -e a.started ] && break; sleep 0.1; done; [ -e a.started ] && touch b.out", outs = ["b.out"] },
} }"#;

#[test]
fn independent_stages_run_concurrently() {
    let ws = TestWorkspace::new(MEETING);
    ws.gourd(&["run", "-j", "2"]).success();
}

/// Without `-j`, as many stages at once as there are cores (SPEC): on a
/// machine with two or more, the two stages above meet.
#[test]
fn by_default_as_many_stages_run_at_once_as_there_are_cores() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: one core");
        return;
    }
    let ws = TestWorkspace::new(MEETING);
    ws.gourd(&["run"]).success();
    // And `-j 1` runs one at a time: they never meet.
    let one = TestWorkspace::new(
        r#"{ stages = {
            a = { cmd = "[ ! -e b.running ] && touch a.running && sleep 0.3 && [ ! -e b.running ] && rm a.running && touch a.out", outs = ["a.out"] },
            b = { cmd = "[ ! -e a.running ] && touch b.running && sleep 0.3 && [ ! -e a.running ] && rm b.running && touch b.out", outs = ["b.out"] },
        } }"#,
    );
    one.gourd(&["run", "-j", "1"]).success();
}

/// A stage's stdin is closed (docs/running.md): one that reads it sees its
/// end at once, even while gourd's own stdin is open and never written to.
#[test]
fn a_stage_reads_end_of_file_from_stdin() {
    use std::io::Write;
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "if read line; then echo got $line > o; else echo eof > o; fi", outs = ["o"] } } }"#,
    );
    let mut child = ws
        .command(&["run"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"hello\n");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the stage waited on gourd's stdin");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(ws.read("o"), "eof\n");
}

/// More stages at once than tokio's default of 512 blocking threads (each
/// stage executing here holds one): all of them run side by side. Each
/// waits until every one has started, and gives up after a minute.
#[test]
fn more_than_five_hundred_stages_run_at_once_when_jobs_allow() {
    let n = 520;
    let stages: String = (0..n)
        .map(|i| {
            format!(
                r#"s{i} = {{ cmd = "touch on/{i}; for t in $(seq 60); do [ $(ls on | wc -l) -ge {n} ] && break; sleep 1; done; [ $(ls on | wc -l) -ge {n} ] && touch out/{i}", outs = ["out/{i}"] }},"#
            )
        })
        .collect();
    let ws = TestWorkspace::new(&format!("{{ stages = {{ {stages} }} }}"));
    std::fs::create_dir_all(ws.path("on")).unwrap();
    ws.gourd(&["run", "-j", &n.to_string()]).success();
}

#[test]
fn one_job_runs_one_stage_at_a_time() {
    let stage = |name: &str| {
        format!(
            r#"{name} = {{ cmd = "mkdir running.lock && sleep 0.2 && rmdir running.lock && touch {name}.out", outs = ["{name}.out"] }},"#
        )
    };
    let ws = TestWorkspace::new(&format!("{{ stages = {{ {} {} {} }} }}", stage("a"), stage("b"), stage("c")));
    ws.gourd(&["run", "-j", "1"]).success();
}

#[test]
fn a_stage_takes_as_many_job_slots_as_it_asks_cpus() {
    // Each stage says it is running, then watches for a second against the
    // other for a second: with `-j 2`, `wide` (2 cpus) leaves no slot for
    // `narrow`, so they never meet.
    let watch = |me: &str, other: &str, cpus: u32| {
        format!(
            r#"{me} = {{ cmd = "touch {me}.on; for i in $(seq 20); do [ -e {other}.on ] && touch overlap; sleep 0.05; done; rm {me}.on; touch {me}.out", outs = ["{me}.out"], resources = {{ cpus = {cpus} }} }},"#
        )
    };
    let pipeline =
        |cpus: u32| format!("{{ stages = {{ {} {} }} }}", watch("wide", "narrow", cpus), watch("narrow", "wide", 1));
    let ws = TestWorkspace::new(&pipeline(2));
    ws.gourd(&["run", "-j", "2"]).success();
    assert!(!ws.exists("overlap"), "`wide` ran beside another stage");

    // The same stages, each on one slot, do meet: the test can tell.
    let ws = TestWorkspace::new(&pipeline(1));
    ws.gourd(&["run", "-j", "2"]).success();
    assert!(ws.exists("overlap"), "two one-slot stages did not run side by side with -j 2");

    // More cpus than `-j` allows: the stage takes them all, and runs.
    let ws = TestWorkspace::new(r#"{ stages = { s = { cmd = "touch x", outs = ["x"], resources = { cpus = 64 } } } }"#);
    ws.gourd(&["run", "-j", "2"]).success();
    assert!(ws.exists("x"));
}

#[test]
fn gpus_are_assigned_per_device_and_never_double_booked() {
    // Three one-GPU stages on two devices: each claims its device with a
    // lock folder that must not exist yet.
    let stage = |name: &str| {
        format!(
            r#"{name} = {{
                cmd = "echo $CUDA_VISIBLE_DEVICES > {name}.dev && mkdir gpu$CUDA_VISIBLE_DEVICES.lock && sleep 0.3 && rmdir gpu$CUDA_VISIBLE_DEVICES.lock",
                outs = ["{name}.dev"], executor = 'cuda, resources = {{ gpus = 1 }},
            }},"#
        )
    };
    let ws = TestWorkspace::new(&format!("{{ stages = {{ {} {} {} }} }}", stage("a"), stage("b"), stage("c")));
    ws.gourd_env(&["run", "-j", "3"], &[("GOURD_GPUS", "0,1")]).success();
    for name in ["a", "b", "c"] {
        let device = ws.read(&format!("{name}.dev"));
        assert!(matches!(device.trim(), "0" | "1"), "{name} got `{device}`");
    }
}

/// Two one-GPU stages, each writing the devices it was given.
const TWO_GPU_STAGES: &str = r#"{ stages = {
    a = { cmd = "echo $CUDA_VISIBLE_DEVICES > a.dev", outs = ["a.dev"], executor = 'cuda, resources = { gpus = 1 } },
    b = { cmd = "echo $CUDA_VISIBLE_DEVICES > b.dev", outs = ["b.dev"], executor = 'cuda, resources = { gpus = 1 } },
} }"#;

/// An executable script `name` printing `output`, in a folder of its own.
fn fake_program(ws: &TestWorkspace, name: &str, output: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = ws.path(&format!("fake-bin/{name}"));
    ws.write(&format!("fake-bin/{name}"), &format!("#!/bin/sh\nprintf '{output}'\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `gourd run -j 2` with GPUs discovered, not given: no `GOURD_GPUS`, the
/// fake programs first on `PATH`, and `gourd-step` at `step`.
fn run_discovering_gpus(ws: &TestWorkspace, step: &std::path::Path) -> common::Run {
    let path = format!("{}:{}", ws.path("fake-bin").display(), std::env::var("PATH").unwrap());
    let mut command = ws.command(&["run", "--json", "-j", "2"]);
    command.env_remove("GOURD_GPUS").env("PATH", path).env("GOURD_STEP", step);
    let output = command.output().unwrap();
    common::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn without_gourd_gpus_the_devices_come_from_libtorch_then_nvidia_smi() {
    // libtorch (through `gourd-step --cuda-devices`) sees two devices; it is
    // asked before `nvidia-smi`, which would say one.
    let ws = TestWorkspace::new(TWO_GPU_STAGES);
    let step = fake_program(&ws, "gourd-step", "2\\n");
    fake_program(&ws, "nvidia-smi", "GPU 0: Fake (UUID: GPU-0)\\n");
    ws.write(".gitignore", ".gourd/\nfake-bin/\n");
    run_discovering_gpus(&ws, &step).success();
    let mut devices = vec![ws.read("a.dev"), ws.read("b.dev")];
    devices.sort();
    assert_eq!(devices, ["0\n", "1\n"]);

    // No libtorch: `nvidia-smi -L` lists the devices.
    let ws = TestWorkspace::new(TWO_GPU_STAGES);
    fake_program(&ws, "nvidia-smi", "GPU 0: Fake (UUID: GPU-0)\\nGPU 1: Fake (UUID: GPU-1)\\n");
    run_discovering_gpus(&ws, &ws.path("no-gourd-step")).success();
    let mut devices = vec![ws.read("a.dev"), ws.read("b.dev")];
    devices.sort();
    assert_eq!(devices, ["0\n", "1\n"]);

    // One device from `nvidia-smi`: the stages take turns on it.
    let ws = TestWorkspace::new(TWO_GPU_STAGES);
    fake_program(&ws, "nvidia-smi", "GPU 0: Fake (UUID: GPU-0)\\n");
    run_discovering_gpus(&ws, &ws.path("no-gourd-step")).success();
    assert_eq!((ws.read("a.dev"), ws.read("b.dev")), ("0\n".into(), "0\n".into()));

    // Neither: no GPU.
    let ws = TestWorkspace::new(TWO_GPU_STAGES);
    fake_program(&ws, "nvidia-smi", "");
    let run = run_discovering_gpus(&ws, &ws.path("no-gourd-step"));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("no GPU was found"), "{}", run.stdout);
}

#[test]
fn a_cuda_stage_without_a_gpu_fails_clearly() {
    let ws = TestWorkspace::new(r#"{ stages = { t = { cmd = "touch m", outs = ["m"], executor = 'cuda } } }"#);
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no GPU was found"), "{}", run.stderr);
}

#[test]
fn a_failing_stage_skips_downstream_caches_nothing_and_is_retried() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            a = { cmd = "echo a >> runs.log && echo partial > a.txt && test -e ok", outs = ["a.txt"] },
            b = { cmd = "echo b >> runs.log && cp a.txt b.txt", deps = ["a.txt"], outs = ["b.txt"] },
        } }"#,
    );
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.statuses(), expect(&[("a", "failed"), ("b", "skipped")]));
    assert_eq!(ws.executions(), vec!["a"]);
    let status = ws.gourd(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["stages"][0]["state"], "stale");

    ws.clear_executions();
    ws.write("ok", "");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("a", "ran"), ("b", "ran")]));
    assert_eq!(ws.executions(), vec!["a", "b"]);
}

#[test]
fn failure_stops_new_stages_unless_keep_going() {
    let pipeline = r#"{ stages = {
        a = { cmd = "exit 3", outs = ["a.txt"] },
        b = { cmd = "touch b.txt", deps = ["a.txt"], outs = ["b.txt"] },
        z = { cmd = "sleep 0.3 && touch z.txt", outs = ["z.txt"] },
    } }"#;
    let ws = TestWorkspace::new(pipeline);
    let run = ws.run_json(&["-j", "1", "--keep-going"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.statuses(), expect(&[("a", "failed"), ("b", "skipped"), ("z", "ran")]));
    let failure = run.events().into_iter().find(|e| e["stage"] == "a").unwrap();
    assert_eq!(failure["message"], "exited with code 3");
}

#[test]
fn without_keep_going_a_failure_starts_nothing_new_and_running_stages_finish() {
    // `fail` and `slow` start together; `slow` is held until the run has
    // reported `fail` as failed, so `later` (below `slow`, not below `fail`)
    // becomes ready only after the failure.
    let ws = TestWorkspace::new(
        r#"{ stages = {
            fail = { cmd = "exit 3", outs = ["fail.txt"] },
            slow = { cmd = "i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; echo slow > slow.txt", outs = ["slow.txt"] },
            later = { cmd = "echo later >> runs.log && cp slow.txt later.txt", deps = ["slow.txt"], outs = ["later.txt"] },
        } }"#,
    );
    let mut child = ws
        .command(&["run", "--json", "-j", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut stdout = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if line.contains(r#""stage":"fail""#) {
            break;
        }
    }
    assert!(stdout.contains(r#""status":"failed""#), "{stdout}");
    ws.write("go", "");
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let code = child.wait().unwrap().code();
    let run = common::Run { code: code.unwrap_or(-1), stdout, stderr: String::new() };
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.statuses(), expect(&[("fail", "failed"), ("slow", "ran"), ("later", "skipped")]));
    let later = run.events().into_iter().find(|e| e["stage"] == "later").unwrap();
    assert_eq!(later["message"], "not started after a failure");
    assert!(ws.executions().is_empty(), "`later` executed");
    assert_eq!(ws.read("slow.txt"), "slow\n", "the running stage finished");
    assert_eq!(run.summary()["skipped"], 1);
}

#[test]
fn a_failed_stage_is_reported_on_stderr_and_the_rest_on_stdout() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            good = { cmd = "touch g", outs = ["g"] },
            bad = { cmd = "echo oops; exit 3", deps = ["g"], outs = ["b"] },
        } }"#,
    );
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!(common::normalize(&run.stdout, &ws), @r"
           ran good ([TIME])
    1 ran, 0 restored, 0 up-to-date, 1 failed, 0 skipped in [TIME]
    ");
    insta::assert_snapshot!(common::normalize(&run.stderr, &ws), @r"
        failed bad: exited with code 3 (log: `.gourd/logs/bad.log`)
      | oops
    ");
    // `--json` events are data, a failure's included.
    let json = ws.run_json(&[]);
    assert_eq!(json.statuses()["bad"], "failed");
}

#[test]
fn a_failed_stage_log_tail_is_decoded_lossily_and_cannot_drive_the_terminal() {
    // A byte that is not UTF-8, a colour, a window title ended by a bell, and
    // a progress bar redrawn after a carriage return.
    let ws = TestWorkspace::new(
        r#"{ stages = { s = {
            cmd = "printf 'before\\n\\377 bad byte\\n\\033[31mred\\033]0;owned\\007\\nprogress 10%%\\rprogress 100%%\\n'; exit 1",
            outs = ["x"],
        } } }"#,
    );
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1);
    assert!(!run.stderr.contains(['\u{1b}', '\u{7}', '\r']), "{:?}", run.stderr);
    insta::assert_snapshot!(common::normalize(&run.stderr, &ws), @r"
        failed s: exited with code 1 (log: `.gourd/logs/s.log`)
      | before
      | � bad byte
      | \x1b[31mred\x1b]0;owned\x07
      | progress 100%
    ");
}

#[test]
fn a_stage_that_times_out_fails() {
    let ws =
        TestWorkspace::new(r#"{ stages = { slow = { cmd = "sleep 30; touch x", outs = ["x"], timeout = 0.5 } } }"#);
    let started = std::time::Instant::now();
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.statuses()["slow"], "failed");
    assert!(run.stdout.contains("timed out after 0.5s"), "{}", run.stdout);
    assert!(started.elapsed().as_secs() < 25, "the stage was not stopped");
    assert!(!ws.exists("x"));
}

#[test]
fn a_metrics_file_that_is_not_json_fails_the_stage() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            evaluate = { cmd = "echo 'accuracy: high' > metrics.json", metrics = ["metrics.json"] },
            report = { cmd = "cp metrics.json report.txt", deps = ["metrics.json"], outs = ["report.txt"] },
        } }"#,
    );
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.statuses(), expect(&[("evaluate", "failed"), ("report", "skipped")]));
    let failure = run.events().into_iter().find(|e| e["stage"] == "evaluate").unwrap();
    assert!(
        failure["message"].as_str().unwrap().starts_with("metrics file `metrics.json` is not valid JSON"),
        "{failure}"
    );
    assert!(files_under(&ws.path(".gourd/cache-v1/actions")).is_empty(), "a result was cached");
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 1);
}

#[test]
fn a_stage_that_does_not_write_a_declared_out_fails() {
    let ws = TestWorkspace::new(r#"{ stages = { s = { cmd = "touch one", outs = ["one", "two"] } } }"#);
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("did not create declared out `two`"), "{}", run.stderr);
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 1);
}

#[test]
fn previous_outputs_are_removed_before_a_run_unless_persisted() {
    let ws = TestWorkspace::new(
        r#"let version = "1" in { stages = {
            fresh = { cmd = "mkdir -p out && touch out/v1", outs = ["out"], params = { v = version } },
            kept = { cmd = "mkdir -p keep && touch keep/v1", outs = [{ path = "keep", persist = true }], params = { v = version } },
        } }"#,
    );
    ws.gourd(&["run"]).success();
    ws.write("out/stale", "");
    ws.write("keep/stale", "");
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("\"1\"", "\"2\""));
    ws.gourd(&["run"]).success();
    assert!(!ws.exists("out/stale"));
    assert!(ws.exists("keep/stale"));
}

#[test]
fn stages_see_their_name_params_and_env_and_inherited_env_stays_out_of_the_key() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = {
            cmd = ["sh", "-c", "echo $GOURD_STAGE $SEED > env.txt && cat $GOURD_PARAMS > params.json"],
            params = { lr = 0.5, layers = [1, 2] },
            env = { SEED = "7" },
            outs = ["env.txt", "params.json"],
        } } }"#,
    );
    ws.gourd(&["run"]).success();
    assert_eq!(ws.read("env.txt"), "s 7\n");
    let params: serde_json::Value = serde_json::from_str(&ws.read("params.json")).unwrap();
    assert_eq!(params, serde_json::json!({"lr": 0.5, "layers": [1, 2]}));

    let run = ws.gourd_env(&["run", "--json"], &[("SOMETHING_ELSE", "x")]).success();
    assert_eq!(run.statuses()["s"], "up-to-date");
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("\"7\"", "\"8\""));
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "ran");
}

#[test]
fn targets_run_only_what_they_need_and_force_reruns() {
    let ws = diamond();
    let run = ws.run_json(&["left"]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("left", "ran")]));
    assert!(!ws.exists("right.txt"));

    ws.clear_executions();
    let run = ws.run_json(&["left", "--force", "left"]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "up-to-date"), ("left", "ran")]));
    assert_eq!(ws.executions(), vec!["left"]);
}

#[test]
fn always_run_stages_run_every_time() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && touch x", outs = ["x"], always_run = true } } }"#,
    );
    ws.gourd(&["run"]).success();
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions(), vec!["s", "s"]);
}

#[test]
fn the_log_holds_the_last_runs_output() {
    let pipeline = |run: &str| {
        format!(
            r#"{{ stages = {{ s = {{ cmd = "echo {run}-stdout; echo {run}-stderr >&2; touch x", outs = ["x"] }} }} }}"#
        )
    };
    let ws = TestWorkspace::new(&pipeline("first"));
    ws.gourd(&["run"]).success();
    let log = ws.read(".gourd/logs/s.log");
    assert!(log.contains("first-stdout") && log.contains("first-stderr"), "{log}");
    ws.write("gourd.ncl", &pipeline("second"));
    ws.gourd(&["run"]).success();
    let log = ws.read(".gourd/logs/s.log");
    assert!(log.contains("second-stdout") && log.contains("second-stderr"), "{log}");
    assert!(!log.contains("first"), "the earlier run's output is gone: {log}");
    // A run that executes nothing leaves the log alone.
    ws.gourd(&["run"]).success();
    assert_eq!(ws.read(".gourd/logs/s.log"), log);
}

#[test]
fn changes_in_imported_nickel_files_are_seen() {
    // Evaluations are cached by the files they import: a change two imports
    // deep must still reach the stage.
    let ws = TestWorkspace::new(
        r#"let settings = import "config/settings.ncl" in
        { stages = { s = { cmd = "cat $GOURD_PARAMS > p.json", params = settings, outs = ["p.json"] } } }"#,
    );
    ws.write("config/settings.ncl", r#"{ lr = (import "lr.json").value }"#);
    ws.write("config/lr.json", r#"{ "value": 0.1 }"#);
    ws.run_json(&[]).success();
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "up-to-date");
    ws.write("config/lr.json", r#"{ "value": 0.2 }"#);
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "ran");
    assert!(ws.read("p.json").contains("0.2"));
}

/// The first line `gourd explain STAGE` prints, and the line of STAGE in
/// `gourd status`: both come from one decision, so they must agree.
fn status_and_explain(ws: &TestWorkspace, stage: &str) -> (String, String) {
    let status = ws.gourd(&["status"]).success().stdout;
    let line = status.lines().find(|l| l.split_whitespace().next() == Some(stage)).unwrap_or_default();
    let explain = ws.gourd(&["explain", stage]).success().stdout;
    (line.split_whitespace().collect::<Vec<_>>().join(" "), explain)
}

#[test]
fn a_param_change_is_named_even_when_the_cache_holds_its_result() {
    let pipeline = |lr: &str| {
        format!(
            r#"{{ stages = {{ train = {{ cmd = "echo train >> runs.log && mkdir -p models && cat $GOURD_PARAMS > models/model.json", params = {{ lr = {lr} }}, outs = ["models/model.json"] }} }} }}"#
        )
    };
    let ws = TestWorkspace::new(&pipeline("0.1"));
    ws.gourd(&["run"]).success();
    ws.write("gourd.ncl", &pipeline("0.2"));
    let (status, explain) = status_and_explain(&ws, "train");
    assert_eq!(status, "train stale: param `lr` changed");
    assert!(explain.starts_with("stage `train`: stale (param `lr` changed)\n"), "{explain}");
    ws.gourd(&["run"]).success();
    // Back to 0.1: the cache holds that result, and the workspace holds the
    // 0.2 run's model. The cause is the param, not the model.
    ws.write("gourd.ncl", &pipeline("0.1"));
    let (status, explain) = status_and_explain(&ws, "train");
    assert_eq!(status, "train stale (restorable from cache): param `lr` changed");
    assert!(explain.starts_with("stage `train`: restorable from cache (param `lr` changed)\n"), "{explain}");
    assert!(explain.contains("  params.lr  0.2 -> 0.1\n"), "{explain}");
    let dry = ws.gourd(&["run", "--dry-run"]).success().stdout;
    assert!(dry.contains("param `lr` changed"), "{dry}");
    assert!(!dry.contains("was modified"), "{dry}");
    // An output edited by hand, with nothing else changed, is the cause.
    ws.gourd(&["run"]).success();
    ws.write("models/model.json", "{}");
    let (status, explain) = status_and_explain(&ws, "train");
    assert_eq!(status, "train stale (restorable from cache): out `models/model.json` was modified");
    assert!(
        explain.starts_with("stage `train`: restorable from cache (out `models/model.json` was modified)"),
        "{explain}"
    );
}

#[test]
fn status_and_explain_agree_while_an_upstream_waits_to_run() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
            prep = { cmd = "echo prep >> runs.log && sh prep.sh", deps = ["prep.sh"], outs = ["clean.csv"] },
            train = { cmd = "echo train >> runs.log && cp clean.csv model.txt", deps = ["clean.csv"], outs = ["model.txt"] },
        } }"#,
    );
    ws.write("prep.sh", "echo 1,2 > clean.csv\n");
    ws.gourd(&["run"]).success();
    // A comment changes the script, not what it writes.
    ws.write("prep.sh", "# writes the clean table\necho 1,2 > clean.csv\n");
    let (status, explain) = status_and_explain(&ws, "train");
    assert_eq!(status, "train stale: upstream `prep` is stale");
    assert!(explain.starts_with("stage `train`: stale (upstream `prep` is stale)\n"), "{explain}");
    assert!(
        explain.contains(
            "No key input changed since the last run, with the deps as they are now: `train` runs again only if `prep` changes them when it runs."
        ),
        "{explain}"
    );
    let (status, explain) = status_and_explain(&ws, "prep");
    assert_eq!(status, "prep stale: dep `prep.sh` changed");
    assert!(explain.starts_with("stage `prep`: stale (dep `prep.sh` changed)\n"), "{explain}");
    // The run agrees: prep re-runs to the same table, so train does not run.
    ws.clear_executions();
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions(), ["prep"]);
    let (status, explain) = status_and_explain(&ws, "train");
    assert_eq!(status, "train fresh");
    assert!(explain.starts_with("stage `train`: up to date\n"), "{explain}");
    assert!(explain.contains("No key input changed since the last run.\n"), "{explain}");
}

#[test]
fn explain_lists_the_files_that_changed_in_a_folder_dep() {
    let ws = TestWorkspace::new(
        r#"{ stages = { count = { cmd = "echo count >> runs.log && find data -type f | sort > files.txt", deps = ["data"], outs = ["files.txt"] } } }"#,
    );
    ws.write("data/a.csv", "1\n");
    ws.write("data/b.csv", "2\n");
    ws.write("data/sub/c.csv", "3\n");
    ws.write("data/old/e.csv", "5\n");
    ws.gourd(&["run"]).success();
    ws.write("data/a.csv", "changed\n");
    ws.remove("data/b.csv");
    ws.remove("data/old");
    ws.write("data/sub/d.csv", "4\n");
    ws.write("data/new/f.csv", "6\n");
    let (status, _) = status_and_explain(&ws, "count");
    assert_eq!(status, "count stale: dep `data` changed: 2 files added, 2 removed, 1 modified");
    let explain = ws.gourd(&["explain", "count"]).success();
    insta::assert_snapshot!(explain.normalized(&ws), @r"
    stage `count`: stale (dep `data` changed: 2 files added, 2 removed, 1 modified)
    key:      [DIGEST]
    last run: [DIGEST] (ran, [TIMESTAMP])
    Changed since the last run:
      deps.data  folder: 2 files added, 2 removed, 1 modified
        added     data/new/f.csv
        added     data/sub/d.csv
        removed   data/b.csv
        removed   data/old/e.csv
        modified  data/a.csv
    ");
}
