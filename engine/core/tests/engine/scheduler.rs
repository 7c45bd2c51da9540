//! The scheduler (`gourd_core::run::run`) against real workspaces and real
//! processes: what each stage's outcome is, what it is handed, what enters
//! the cache and what a failure stops. The end-to-end tests check the same
//! through the binary; these pin the engine down on its own, and are what
//! mutation testing of `gourd-core` runs.

use std::collections::BTreeSet;
use std::fs;

use crate::common::{Fixture, options, stage};
use gourd_core::journal::Journal;
use gourd_core::model::{Command, Executor, Output, OutputKind};
use gourd_core::path::WsPath;
use gourd_core::run::Outcome;

#[test]
fn outcome_names() {
    let names: Vec<&str> = [Outcome::Ran, Outcome::Restored, Outcome::UpToDate, Outcome::Failed, Outcome::Skipped]
        .into_iter()
        .map(Outcome::as_str)
        .collect();
    assert_eq!(names, ["ran", "restored", "up-to-date", "failed", "skipped"]);
}

#[test]
fn stages_run_then_stay_up_to_date_then_are_restored() {
    let fx = Fixture::new();
    fx.write("in.txt", "x\n");
    let pipeline = vec![
        stage("a", "cat in.txt > a.txt", &["in.txt"], &["a.txt"]),
        stage("b", "cat a.txt a.txt > b.txt", &["a.txt"], &["b.txt"]),
        stage("c", "echo c > c.txt", &[], &["c.txt"]),
    ];

    let (summary, events) = fx.run(&pipeline, options());
    assert_eq!((summary.ran, summary.restored, summary.up_to_date, summary.failed, summary.skipped), (3, 0, 0, 0, 0));
    assert!(!summary.interrupted);
    assert_eq!(summary.reports.len(), 3);
    assert_eq!(fx.read("b.txt"), "x\nx\n");
    // Each stage is announced before it finishes, once.
    for name in ["a", "b", "c"] {
        let started = events.iter().position(|e| e == &format!("started {name}")).unwrap();
        let finished = events.iter().position(|e| e == &format!("finished {name} ran")).unwrap();
        assert!(started < finished, "{events:?}");
    }
    // A stage that ran has a key, a log, and its result in the store.
    for report in &summary.reports {
        let action = report.action.as_ref().unwrap();
        assert_eq!(report.key, Some(action.key));
        assert!(report.log.as_ref().unwrap().is_file());
        assert!(fx.ws.store.action(&action.key).is_some());
        assert_eq!(fx.ws.last_run(&report.stage).unwrap().status, "ran");
        assert_eq!(fx.ws.last_run(&report.stage).unwrap().key, action.key);
    }
    let journal: BTreeSet<(String, String)> =
        Journal::pending(&fx.ws.gourd_dir).into_iter().map(|e| (e.stage, e.status)).collect();
    assert_eq!(
        journal,
        BTreeSet::from([("a".into(), "ran".into()), ("b".into(), "ran".into()), ("c".into(), "ran".into())])
    );

    let (summary, events) = fx.run(&pipeline, options());
    assert_eq!((summary.ran, summary.restored, summary.up_to_date, summary.failed, summary.skipped), (0, 0, 3, 0, 0));
    assert!(summary.reports.iter().all(|r| r.outcome == Outcome::UpToDate && r.action.is_some()));
    // A no-op run reports its stages one by one, in the pipeline's order.
    let expected: Vec<String> =
        fx.order(&pipeline).iter().flat_map(|s| [format!("started {s}"), format!("finished {s} up-to-date")]).collect();
    assert_eq!(events, expected);

    fs::remove_file(fx.root().join("a.txt")).unwrap();
    fs::write(fx.root().join("c.txt"), "edited\n").unwrap();
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!((summary.ran, summary.restored, summary.up_to_date, summary.failed, summary.skipped), (0, 2, 1, 0, 0));
    assert_eq!(fx.read("a.txt"), "x\n");
    assert_eq!(fx.read("c.txt"), "c\n");
    assert_eq!(fx.ws.last_run("a").unwrap().status, "restored");
    assert_eq!(fx.ws.last_run("b").unwrap().status, "ran");
    let restored: BTreeSet<String> =
        Journal::pending(&fx.ws.gourd_dir).into_iter().filter(|e| e.status == "restored").map(|e| e.stage).collect();
    assert_eq!(restored, BTreeSet::from(["a".to_string(), "c".to_string()]));

    // The state reaches the disk: a workspace opened afresh knows the runs.
    let reopened = gourd_core::workspace::Workspace::open(fx.root()).unwrap();
    assert_eq!(reopened.last_run("c").unwrap().status, "restored");
}

#[test]
fn a_rerun_that_writes_the_same_bytes_leaves_downstream_up_to_date() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    let pipeline = vec![
        stage("a", "echo same > a.txt", &["in.txt"], &["a.txt"]),
        stage("b", "cat a.txt > b.txt; echo run >> runs", &["a.txt"], &["b.txt"]),
    ];
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!(summary.ran, 2);
    fx.write("in.txt", "2\n");
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!((summary.ran, summary.up_to_date), (1, 1));
    assert_eq!(summary.reports.iter().find(|r| r.stage == "b").unwrap().outcome, Outcome::UpToDate);
    assert_eq!(fx.read("runs"), "run\n");
}

#[test]
fn a_stage_is_decided_only_once_everything_upstream_is_done() {
    let fx = Fixture::new();
    fx.write("in-a.txt", "a1\n");
    fx.write("in-b.txt", "b1\n");
    // `c` reads what `a` and `b` write; `b` takes a while.
    let pipeline = vec![
        stage("a", "cat in-a.txt > a.txt", &["in-a.txt"], &["a.txt"]),
        stage("b", "sleep 0.3; cat in-b.txt > b.txt", &["in-b.txt"], &["b.txt"]),
        stage("c", "cat a.txt b.txt > c.txt", &["a.txt", "b.txt"], &["c.txt"]),
        stage("d", "cat c.txt > d.txt", &["c.txt"], &["d.txt"]),
    ];
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!(summary.ran, 4);
    // `a` is up to date, `b` is not: `c` and `d` wait for `b`, then run.
    fx.write("in-b.txt", "b2\n");
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!((summary.ran, summary.up_to_date), (3, 1), "{:?}", summary.reports);
    assert_eq!(fx.read("c.txt"), "a1\nb2\n");
    assert_eq!(fx.read("d.txt"), "a1\nb2\n");
    for name in ["b", "c", "d"] {
        assert_eq!(fx.report(&summary, name).outcome, Outcome::Ran, "{name}");
    }
}

#[test]
fn without_keep_going_a_failure_starts_nothing_new() {
    let fx = Fixture::new();
    // `c` comes before `a` in the order, and one job runs them one at a time.
    let pipeline = vec![
        stage("c", "echo partial > c.txt; exit 3", &[], &["c.txt"]),
        stage("b", "cat c.txt > b.txt", &["c.txt"], &["b.txt"]),
        stage("a", "echo a > a.txt", &[], &["a.txt"]),
    ];
    let order = fx.order(&pipeline);
    assert!(order.iter().position(|s| s == "c") < order.iter().position(|s| s == "a"), "{order:?}");
    let mut opts = options();
    opts.jobs = 1;
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!((summary.ran, summary.failed, summary.skipped), (0, 1, 2));
    assert!(!summary.interrupted);
    let c = fx.report(&summary, "c");
    assert_eq!(c.outcome, Outcome::Failed);
    assert_eq!(c.message.as_deref(), Some("exited with code 3"));
    assert!(c.key.is_some());
    assert_eq!(fs::read_to_string(c.log.as_ref().unwrap()).unwrap(), "");
    assert_eq!(fx.report(&summary, "b").message.as_deref(), Some("upstream `c` failed"));
    assert_eq!(fx.report(&summary, "a").message.as_deref(), Some("not started after a failure"));
    assert!(!fx.root().join("a.txt").exists());
    // A failure caches nothing and records no run.
    assert!(fx.ws.last_run("c").is_none());
    assert!(Journal::pending(&fx.ws.gourd_dir).is_empty());

    let mut opts = options();
    opts.jobs = 1;
    opts.keep_going = true;
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!((summary.ran, summary.failed, summary.skipped), (1, 1, 1));
    assert_eq!(fx.report(&summary, "a").outcome, Outcome::Ran);
    assert_eq!(fx.report(&summary, "b").message.as_deref(), Some("upstream `c` failed"));
}

#[test]
fn a_failure_skips_everything_below_it_but_not_beside_it() {
    let fx = Fixture::new();
    let pipeline = vec![
        stage("a", "echo a > a.txt", &[], &["a.txt"]),
        stage("b", "exit 1", &["a.txt"], &["b.txt"]),
        stage("c", "cat b.txt > c.txt", &["b.txt"], &["c.txt"]),
        stage("d", "cat c.txt > d.txt", &["c.txt"], &["d.txt"]),
        stage("e", "cat a.txt > e.txt", &["a.txt"], &["e.txt"]),
    ];
    let mut opts = options();
    opts.keep_going = true;
    let (summary, events) = fx.run(&pipeline, opts);
    assert_eq!((summary.ran, summary.failed, summary.skipped), (2, 1, 2));
    for below in ["c", "d"] {
        assert_eq!(fx.report(&summary, below).message.as_deref(), Some("upstream `b` failed"));
        assert!(!events.contains(&format!("started {below}")), "{events:?}");
    }
    // Skipped in order: `c` before `d`.
    let c = events.iter().position(|e| e == "finished c skipped").unwrap();
    let d = events.iter().position(|e| e == "finished d skipped").unwrap();
    assert!(c < d);
}

#[test]
fn targets_select_a_stage_and_what_is_upstream_of_it() {
    let fx = Fixture::new();
    let pipeline = vec![
        stage("a", "echo a > a.txt", &[], &["a.txt"]),
        stage("b", "cat a.txt > b.txt", &["a.txt"], &["b.txt"]),
        stage("c", "echo c > c.txt", &[], &["c.txt"]),
    ];
    let mut opts = options();
    opts.targets = vec!["b".to_string()];
    let (summary, _) = fx.run(&pipeline, opts);
    let ran: Vec<&str> = summary.reports.iter().map(|r| r.stage.as_str()).collect();
    assert_eq!(ran, ["a", "b"]);
    assert!(!fx.root().join("c.txt").exists());

    let mut opts = options();
    opts.targets = vec!["bb".to_string()];
    let err = fx.try_run(&pipeline, opts).unwrap_err();
    assert_eq!(err.to_string(), "no stage is named `bb`");
}

#[test]
fn force_runs_an_up_to_date_stage_and_always_run_runs_every_time() {
    let fx = Fixture::new();
    let mut always = stage("b", "echo b >> b.log; echo b > b.txt", &[], &["b.txt"]);
    always.always_run = true;
    let pipeline = vec![stage("a", "echo a >> a.log; echo a > a.txt", &[], &["a.txt"]), always];
    fx.run(&pipeline, options());
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!((summary.ran, summary.up_to_date), (1, 1));
    assert_eq!(fx.report(&summary, "b").outcome, Outcome::Ran);
    let mut opts = options();
    opts.force = BTreeSet::from(["a".to_string()]);
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!(summary.ran, 2);
    assert_eq!(fx.read("a.log"), "a\na\n");
    assert_eq!(fx.read("b.log"), "b\nb\nb\n");
}

#[test]
fn cancelled_before_the_start_nothing_runs() {
    let fx = Fixture::new();
    let pipeline = vec![stage("a", "echo a > a.txt", &[], &["a.txt"]), stage("b", "echo b > b.txt", &[], &["b.txt"])];
    fx.run(&pipeline, options());
    fs::remove_file(fx.root().join("b.txt")).unwrap();
    let (cancel, opts) = crate::common::options_with_cancel();
    cancel.send(true).unwrap();
    let (summary, events) = fx.run(&pipeline, opts);
    assert!(summary.interrupted);
    assert_eq!((summary.up_to_date, summary.restored, summary.skipped), (0, 0, 2));
    assert!(summary.reports.iter().all(|r| r.message.as_deref() == Some("interrupted")));
    assert!(events.iter().all(|e| !e.starts_with("started")), "{events:?}");
    assert!(!fx.root().join("b.txt").exists());
}

#[test]
fn cancelling_stops_the_running_stage_and_skips_the_rest() {
    let fx = Fixture::new();
    let pipeline = vec![
        stage("a", "touch started; sleep 60; echo a > a.txt", &[], &["a.txt"]),
        stage("b", "cat a.txt > b.txt", &["a.txt"], &["b.txt"]),
    ];
    let (cancel, opts) = crate::common::options_with_cancel();
    let started = fx.root().join("started");
    let canceller = std::thread::spawn(move || {
        crate::common::wait_until(|| started.exists());
        cancel.send(true).unwrap();
        cancel
    });
    let (summary, _) = fx.run(&pipeline, opts);
    drop(canceller.join().unwrap());
    assert!(summary.interrupted);
    assert_eq!(fx.report(&summary, "a").message.as_deref(), Some("interrupted"));
    assert_eq!(fx.report(&summary, "a").outcome, Outcome::Failed);
    assert_eq!(fx.report(&summary, "b").outcome, Outcome::Skipped);
    assert!(!fx.root().join("a.txt").exists());
}

#[test]
fn a_dropped_cancel_sender_stops_the_run() {
    let fx = Fixture::new();
    let pipeline =
        vec![stage("a", "echo a > a.txt", &[], &["a.txt"]), stage("b", "cat a.txt > b.txt", &["a.txt"], &["b.txt"])];
    let (cancel, opts) = crate::common::options_with_cancel();
    drop(cancel);
    let (summary, _) = fx.run(&pipeline, opts);
    // The first stage was under way; nothing new starts once the channel is gone.
    assert!(summary.interrupted);
    assert_eq!(fx.report(&summary, "b").message.as_deref(), Some("interrupted"));
}

#[test]
fn jobs_run_stages_side_by_side_and_cpus_take_slots() {
    let fx = Fixture::new();
    // Each waits until the other has started: with two jobs both run at once.
    let wait_for = |other: &str| {
        format!(
            "touch {me}.started; i=0; while [ ! -e {other}.started ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done; echo ok > {me}.txt",
            me = if other == "x" { "y" } else { "x" },
        )
    };
    let pipeline = vec![stage("x", &wait_for("y"), &[], &["x.txt"]), stage("y", &wait_for("x"), &[], &["y.txt"])];
    let mut opts = options();
    opts.jobs = 2;
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);

    // A stage asking two cpus holds both jobs: nothing runs beside it.
    let fx = Fixture::new();
    let alone = |me: &str, other: &str| {
        format!(
            "touch {me}.started; sleep 0.5; if [ -e {other}.started ] && [ ! -e {other}.done ]; then exit 7; fi; touch {me}.done; echo ok > {me}.txt"
        )
    };
    let mut wide = stage("x", &alone("x", "y"), &[], &["x.txt"]);
    wide.resources.cpus = 2;
    let pipeline = vec![wide, stage("y", &alone("y", "x"), &[], &["y.txt"])];
    let mut opts = options();
    opts.jobs = 2;
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);

    // More cpus than jobs: the stage still runs, on every job.
    let fx = Fixture::new();
    let mut huge = stage("x", "echo x > x.txt", &[], &["x.txt"]);
    huge.resources.cpus = 64;
    let mut opts = options();
    opts.jobs = 1;
    let (summary, _) = fx.run(&[huge], opts);
    assert_eq!(summary.ran, 1);
}

/// A stage's job slot is free once its process exits, while its outputs
/// are hashed and stored: never more processes at once than jobs.
#[test]
fn jobs_bound_the_processes_running_at_once_while_outputs_are_stored_beside_them() {
    let fx = Fixture::new();
    // Each notes its start and end in one shared file (appends of a line
    // are whole); half write 16 MiB, which takes a while to store.
    let pipeline: Vec<_> = (0..12)
        .map(|i| {
            let size = if i % 2 == 0 { 16 << 20 } else { 1 };
            let cmd = format!("echo + >> trace; head -c {size} /dev/zero > o{i}.bin; sleep 0.05; echo - >> trace");
            stage(&format!("s{i:02}"), &cmd, &[], &[&format!("o{i}.bin")])
        })
        .collect();
    for jobs in [1, 2] {
        let _ = std::fs::remove_file(fx.root().join("trace"));
        let mut opts = options();
        opts.jobs = jobs;
        opts.force = pipeline.iter().map(|s| s.name.clone()).collect();
        let (summary, _) = fx.run(&pipeline, opts);
        assert_eq!(summary.ran, 12, "{:?}", summary.reports);
        let (mut now, mut most) = (0i32, 0i32);
        for line in fx.read("trace").lines() {
            now += if line == "+" { 1 } else { -1 };
            most = most.max(now);
        }
        assert_eq!(most, jobs as i32, "at most {jobs} at once, and that many");
    }
}

#[test]
fn what_a_stage_is_handed() {
    let fx = Fixture::new();
    let mut s = stage(
        "show",
        "printf '%s|%s|%s|%s|%s|%s\\n' \"$GOURD_STAGE\" \"$GOURD_EXECUTOR\" \"$GOURD_WORKSPACE\" \"$GOURD_PARAM_LR\" \"${GOURD_RUN-unset}\" \"${CUDA_VISIBLE_DEVICES-unset}\" > env.txt; cat \"$GOURD_PARAMS\" > params.txt",
        &[],
        &["env.txt", "params.txt"],
    );
    s.params = serde_json::json!({ "lr": 0.5 });
    let mut opts = options();
    opts.run_token = Some("tok123".to_string());
    let (summary, _) = fx.run(&[s.clone()], opts);
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    let root = fx.root().display().to_string();
    assert_eq!(fx.read("env.txt"), format!("show|local|{root}|0.5|tok123|unset\n"));
    assert_eq!(fx.read("params.txt"), serde_json::to_string_pretty(&s.params).unwrap());

    // A 'cuda stage given no GPU sees none, rather than every device.
    let fx = Fixture::new();
    s.executor = Executor::Cuda;
    let (summary, _) = fx.run(&[s], options());
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    assert_eq!(fx.read("env.txt"), format!("show|cuda|{}|0.5|unset|\n", fx.root().display()));
}

#[test]
fn outputs_are_cleared_before_a_run_unless_persisted() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    let mut s = stage("s", "ls out > seen.txt; mkdir -p out; cat in.txt > out/new", &["in.txt"], &["out", "seen.txt"]);
    fx.run(&[s.clone()], options());
    assert_eq!(fx.read("seen.txt"), "");
    fx.write("in.txt", "2\n");
    fx.run(&[s.clone()], options());
    assert_eq!(fx.read("seen.txt"), "", "the old `out` was deleted first");
    s.outs[0].persist = true;
    fx.write("in.txt", "3\n");
    fx.run(&[s], options());
    assert_eq!(fx.read("seen.txt"), "new\n", "a persisted `out` is left for the stage");
}

#[test]
fn how_a_stage_can_fail() {
    let fx = Fixture::new();
    let mut timeout = stage("timeout", "sleep 60", &[], &["t.txt"]);
    timeout.timeout = Some(std::time::Duration::from_millis(500));
    let mut wdir = stage("wdir", "true", &[], &["w.txt"]);
    wdir.wdir = WsPath::new("nowhere").unwrap();
    // Through links: out of the workspace, and into `.gourd`.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), fx.root().join("out-link")).unwrap();
    let mut escapes = stage("escapes", "echo x > w.txt", &[], &["e.txt"]);
    escapes.wdir = WsPath::new("out-link").unwrap();
    std::fs::create_dir_all(fx.root().join(".gourd")).unwrap();
    std::os::unix::fs::symlink(".gourd", fx.root().join("gourd-link")).unwrap();
    let mut inside = stage("inside", "echo x > w.txt", &[], &["i.txt"]);
    inside.wdir = WsPath::new("gourd-link").unwrap();
    let mut a_file = stage("a-file", "true", &[], &["af.txt"]);
    a_file.wdir = WsPath::new("dep.txt").unwrap();
    let mut step = stage("step", "true", &[], &["st.txt"]);
    step.cmd = Command::Step { name: "train".to_string(), config: serde_json::json!({}) };
    let mut bad_metrics = stage("bad-metrics", "echo '{oops' > m.json", &[], &[]);
    bad_metrics.metrics = vec![WsPath::new("m.json").unwrap()];
    let mut dir_metrics = stage("dir-metrics", "mkdir md", &[], &[]);
    dir_metrics.metrics = vec![WsPath::new("md").unwrap()];
    let pipeline = vec![
        stage("missing-dep", "true", &["nothing"], &["md.txt"]),
        stage("no-out", "true", &[], &["never.txt"]),
        stage("signal", "kill -9 $$", &[], &["sig.txt"]),
        stage("changes-dep", "echo more >> dep.txt; echo x > cd.txt", &["dep.txt"], &["cd.txt"]),
        timeout,
        wdir,
        escapes,
        inside,
        a_file,
        step,
        bad_metrics,
        dir_metrics,
    ];
    fx.write("dep.txt", "dep\n");
    let mut opts = options();
    opts.keep_going = true;
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!((summary.failed, summary.ran), (12, 0), "{:?}", summary.reports);
    let message = |name: &str| fx.report(&summary, name).message.clone().unwrap();
    assert_eq!(message("missing-dep"), "dep `nothing` is missing");
    assert_eq!(message("no-out"), "did not create declared out `never.txt`");
    assert_eq!(message("signal"), "killed by signal 9");
    assert_eq!(
        message("changes-dep"),
        "dep `dep.txt` changed while the stage ran; its outputs were not cached (run again)"
    );
    assert_eq!(message("timeout"), "timed out after 0.5s");
    assert_eq!(message("wdir"), "its `wdir` `nowhere` is not a folder in the workspace");
    assert_eq!(message("escapes"), "its `wdir` `out-link` leads out of the workspace through a symbolic link");
    assert!(!outside.path().join("w.txt").exists(), "ran outside the workspace");
    assert_eq!(message("inside"), "its `wdir` `gourd-link` is in `.git` or `.gourd`, where gourd and git write");
    assert!(!fx.root().join(".gourd/w.txt").exists());
    assert_eq!(message("a-file"), "its `wdir` `dep.txt` is not a folder in the workspace");
    assert_eq!(message("step"), "this installation cannot run the built-in step `train`");
    assert!(
        message("bad-metrics").starts_with("metrics file `m.json` is not valid JSON"),
        "{}",
        message("bad-metrics")
    );
    assert_eq!(message("dir-metrics"), "metrics file `md` is a folder");
    // None of them left a result behind.
    assert!(summary.reports.iter().all(|r| fx.ws.last_run(&r.stage).is_none()));
}

fn step_runner(name: &str) -> Option<Vec<std::ffi::OsString>> {
    (name == "copy")
        .then(|| ["sh", "-c", "cp \"$1\" step-config.json; echo \"$0\" > step-name.txt"].map(Into::into).to_vec())
}

#[test]
fn a_built_in_step_runs_through_the_step_runner_with_its_configuration() {
    let fx = Fixture::new();
    let mut s = stage("s", "unused", &[], &["step-config.json", "step-name.txt"]);
    let config = serde_json::json!({ "lr": 0.1, "epochs": 3 });
    s.cmd = Command::Step { name: "copy".to_string(), config: config.clone() };
    let mut opts = options();
    opts.step_runner = Some(step_runner);
    let (summary, _) = fx.run(&[s.clone()], opts);
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    assert_eq!(fx.read("step-name.txt"), "copy\n");
    assert_eq!(fx.read("step-config.json"), serde_json::to_string_pretty(&config).unwrap());

    // A runner that does not know the step.
    s.cmd = Command::Step { name: "other".to_string(), config };
    let mut opts = options();
    opts.step_runner = Some(step_runner);
    let (summary, _) = fx.run(&[s], opts);
    assert_eq!(
        fx.report(&summary, "s").message.as_deref(),
        Some("this installation cannot run the built-in step `other`")
    );
}

#[test]
fn metrics_are_parsed_into_the_result_and_uncached_outs_stay_out_of_the_store() {
    let fx = Fixture::new();
    let mut s = stage("s", "echo '{\"acc\": 0.9}' > m.json; echo big > big.bin; echo small > small.txt", &[], &[]);
    s.metrics = vec![WsPath::new("m.json").unwrap()];
    s.outs = vec![
        Output { path: WsPath::new("big.bin").unwrap(), kind: OutputKind::Model, cache: false, persist: false },
        Output { path: WsPath::new("small.txt").unwrap(), kind: OutputKind::Data, cache: true, persist: false },
    ];
    let (summary, _) = fx.run(&[s.clone()], options());
    let action = fx.report(&summary, "s").action.clone().unwrap();
    assert_eq!(action.metrics["m.json"], serde_json::json!({ "acc": 0.9 }));
    assert!(!action.outputs["big.bin"].cached);
    assert!(action.outputs["small.txt"].cached);
    assert!(!fx.ws.store.object_path(&action.outputs["big.bin"].digest).exists());
    assert!(fx.ws.store.object_path(&action.outputs["small.txt"].digest).exists());
    assert_eq!(action.exit_code, 0);

    // Without the uncached out, the result cannot be restored: it runs again.
    fs::remove_file(fx.root().join("big.bin")).unwrap();
    let (summary, _) = fx.run(&[s.clone()], options());
    assert_eq!(summary.ran, 1);
    // With only a cached out gone, it is restored.
    fs::remove_file(fx.root().join("small.txt")).unwrap();
    let (summary, _) = fx.run(&[s], options());
    assert_eq!(
        summary.restored,
        1,
        "{:?}",
        summary.reports.iter().map(|r| (r.outcome, r.message.clone())).collect::<Vec<_>>()
    );
    assert_eq!(fx.read("small.txt"), "small\n");
}

#[test]
fn a_restore_that_finds_its_object_gone_runs_the_stage() {
    let fx = Fixture::new();
    let pipeline = vec![stage("a", "echo a >> runs; echo a > a.txt", &[], &["a.txt"])];
    let (summary, _) = fx.run(&pipeline, options());
    let action = summary.reports[0].action.clone().unwrap();
    fs::remove_file(fx.root().join("a.txt")).unwrap();
    let object = fx.ws.store.object_path(&action.outputs["a.txt"].digest);
    // The cached copy of the missing out is damaged: the stage runs again.
    let mut perms = fs::metadata(&object).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(&object, perms).unwrap();
    fs::write(&object, "not a\n").unwrap();
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    assert_eq!(fx.read("runs"), "a\na\n");
    assert_eq!(fx.read("a.txt"), "a\n");
}

/// DVC's frozen stage is never run; its outputs stand as they are. A
/// frozen stage gourd never ran, whose outputs are all there (a project
/// converted from DVC), keeps them instead of running over them; without
/// them it runs once; `--force` runs it.
#[test]
fn a_frozen_stage_never_run_here_keeps_the_outputs_already_there() {
    let fx = Fixture::new();
    fx.write("data.csv", "a\nb\n");
    let mut fetch = stage("fetch", "echo fetch >> runs; exit 6", &["https-origin"], &["data.csv"]);
    fetch.frozen = true;
    let count = stage("count", "wc -l < data.csv > n.txt", &["data.csv"], &["n.txt"]);
    let pipeline = vec![fetch.clone(), count.clone()];
    assert!(gourd_core::plan::frozen_and_kept(&fx.ws, &fetch));
    let (summary, _) = fx.run(&pipeline, options());
    let kept = fx.report(&summary, "fetch");
    assert_eq!(kept.outcome, Outcome::UpToDate, "{kept:?}");
    assert_eq!(kept.message.as_deref(), Some("frozen: kept the outputs that were there before gourd ran it"));
    assert_eq!(kept.key, None, "its dep is missing: no key");
    assert_eq!((summary.ran, summary.failed), (1, 0), "{:?}", summary.reports);
    assert!(!fx.root().join("runs").exists(), "the frozen stage ran");
    assert_eq!(fx.read("data.csv"), "a\nb\n");
    assert_eq!(fx.read("n.txt").trim(), "2");
    assert!(fx.ws.last_run("fetch").is_none(), "nothing recorded for it");
    // With its deps there, it says the key they give.
    let other = Fixture::new();
    other.write("data.csv", "a\n");
    let mut pinned = stage("pinned", "exit 6", &[], &["data.csv"]);
    pinned.frozen = true;
    let (summary, _) = other.run(std::slice::from_ref(&pinned), options());
    let kept = other.report(&summary, "pinned");
    assert_eq!(kept.outcome, Outcome::UpToDate);
    assert_eq!(kept.key.map(|k| k.to_string().len()), Some(64), "{kept:?}");
    // Not frozen, or with an output missing, it runs (and fails here).
    let unfrozen = stage("fetch", "echo fetch >> runs; exit 6", &[], &["data.csv"]);
    assert!(!gourd_core::plan::frozen_and_kept(&fx.ws, &unfrozen));
    let mut two = fetch.clone();
    two.outs.push(Output {
        path: WsPath::new("more.csv").unwrap(),
        kind: OutputKind::Data,
        cache: true,
        persist: false,
    });
    assert!(!gourd_core::plan::frozen_and_kept(&fx.ws, &two));
    let mut nothing = fetch.clone();
    nothing.outs.clear();
    assert!(!gourd_core::plan::frozen_and_kept(&fx.ws, &nothing), "nothing to keep");
    // A dangling link is no output.
    let mut linked = fetch.clone();
    linked.outs[0].path = WsPath::new("link.csv").unwrap();
    std::os::unix::fs::symlink("nowhere", fx.root().join("link.csv")).unwrap();
    assert!(!gourd_core::plan::frozen_and_kept(&fx.ws, &linked));
    // --force runs it.
    fx.write("https-origin", "");
    let mut opts = options();
    opts.force = BTreeSet::from(["fetch".to_string()]);
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!(fx.report(&summary, "fetch").outcome, Outcome::Failed);
    assert_eq!(fx.read("runs"), "fetch\n");
    // What that failed run left is not kept: the next run retries it.
    fx.write("data.csv", "partial\n");
    assert!(!gourd_core::plan::frozen_and_kept(&fx.ws, &fetch));
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!(fx.report(&summary, "fetch").outcome, Outcome::Failed);
    assert_eq!(fx.read("runs"), "fetch\nfetch\n");
}

#[test]
fn a_frozen_stage_keeps_its_result_and_fails_when_it_cannot_restore_it() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    let mut s = stage("f", "cat in.txt > f.txt; echo x > other.txt", &["in.txt"], &["f.txt"]);
    s.outs.push(Output {
        path: WsPath::new("other.txt").unwrap(),
        kind: OutputKind::Data,
        cache: false,
        persist: false,
    });
    fx.run(&[s.clone()], options());
    s.frozen = true;
    fx.write("in.txt", "2\n");
    let (summary, _) = fx.run(&[s.clone()], options());
    assert_eq!(summary.up_to_date, 1, "a frozen stage ignores its deps");
    assert_eq!(fx.read("f.txt"), "1\n");
    fs::remove_file(fx.root().join("other.txt")).unwrap();
    let (summary, _) = fx.run(&[s.clone()], options());
    assert_eq!(
        fx.report(&summary, "f").message.as_deref(),
        Some("frozen, and its last result cannot be restored (`--force` runs it)")
    );
    let mut opts = options();
    opts.force = BTreeSet::from(["f".to_string()]);
    let (summary, _) = fx.run(&[s], opts);
    assert_eq!(summary.ran, 1);
    assert_eq!(fx.read("f.txt"), "2\n");
}

#[test]
fn an_output_behind_a_link_out_of_the_workspace_is_refused() {
    let fx = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), fx.root().join("link")).unwrap();
    let pipeline = vec![stage("s", "echo x > link/o.txt", &[], &["link/o.txt"])];
    let (summary, _) = fx.run(&pipeline, options());
    let message = fx.report(&summary, "s").message.clone().unwrap();
    assert!(message.starts_with("refusing to write: "), "{message}");
    assert!(!outside.path().join("o.txt").exists());
}

#[test]
fn an_output_that_is_a_pipeline_file_through_a_link_in_the_workspace_is_refused() {
    let fx = Fixture::new();
    fx.write("gourd.ncl", "{}");
    assert!(fx.ws.sources().is_empty());
    fx.ws.set_sources(vec![WsPath::new("gourd.ncl").unwrap()]);
    assert_eq!(fx.ws.sources(), [WsPath::new("gourd.ncl").unwrap()]);
    std::os::unix::fs::symlink(".", fx.root().join("P")).unwrap();
    let pipeline = vec![stage("s", "echo x >> runs.log; exit 1", &[], &["P/gourd.ncl"])];
    let (summary, _) = fx.run(&pipeline, options());
    let message = fx.report(&summary, "s").message.clone().unwrap();
    assert!(
        message.starts_with("refusing to write: `P/gourd.ncl` is `gourd.ncl` through a symbolic link"),
        "{message}"
    );
    assert_eq!(fx.read("gourd.ncl"), "{}");
    assert!(!fx.root().join("runs.log").exists(), "the stage ran");
}

/// The folder git keeps the repository in under another name (`git init
/// --separate-git-dir gd`): an output reaching it through a link an earlier
/// stage planted is refused when its stage comes to run.
#[test]
fn an_output_reaching_the_repositorys_folder_through_a_link_is_refused() {
    let fx = Fixture::new();
    fx.write("gd/config", "[core]\n");
    assert!(fx.ws.git_dirs().is_empty());
    fx.ws.set_git_dirs(vec![WsPath::new("gd").unwrap()]);
    assert_eq!(fx.ws.git_dirs(), [WsPath::new("gd").unwrap()]);
    let plant = stage("plant", "ln -sfn gd P; echo a > a.txt", &[], &["a.txt"]);
    let harm = stage("harm", "echo x >> runs.log; exit 1", &["a.txt"], &["P/config"]);
    let (summary, _) = fx.run(&[plant, harm], options());
    let message = fx.report(&summary, "harm").message.clone().unwrap();
    assert_eq!(
        message,
        "refusing to write: `P/config` is, holds or lies in `gd`, the folder git keeps this repository in"
    );
    assert_eq!(fx.read("gd/config"), "[core]\n");
    assert!(!fx.root().join("runs.log").exists(), "the stage ran");
    // By its own name too.
    let direct = stage("direct", "exit 1", &[], &["gd/hooks"]);
    let (summary, _) = fx.run(&[direct], options());
    assert!(fx.report(&summary, "direct").message.as_deref().unwrap().contains("lies in `gd`"));
}

#[test]
fn what_a_stage_leaves_running_in_its_group_is_killed_when_it_ends() {
    // A background process of the stage, in the stage's process group:
    // when the stage ends, or times out, it goes too (it would otherwise
    // keep writing to outputs the run has recorded).
    let fx = Fixture::new();
    let exits = stage("exits", "sleep 60 & echo $! > exits.pid; echo x > e.txt", &[], &["e.txt"]);
    let mut times_out = stage("times-out", "sleep 60 & echo $! > late.pid; sleep 60", &[], &["t.txt"]);
    times_out.timeout = Some(std::time::Duration::from_millis(500));
    let mut opts = options();
    opts.keep_going = true;
    let (summary, _) = fx.run(&[exits, times_out], opts);
    assert_eq!((summary.ran, summary.failed), (1, 1), "{:?}", summary.reports);
    for file in ["exits.pid", "late.pid"] {
        let pid = fx.read(file).trim().to_string();
        let start = std::time::Instant::now();
        // Dead, or a zombie until init reaps it.
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        };
        while !gone() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "{file}: process {pid} still runs");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn a_stage_wanting_more_gpus_than_there_are_fails_at_once_even_with_every_slot_taken() {
    // `slow` holds the only job slot; `greedy` fails without a slot, at
    // once, and the run then starts nothing new: `after` never runs.
    let fx = Fixture::new();
    let slow = stage("slow", "sleep 1; echo s > slow.txt", &[], &["slow.txt"]);
    let mut greedy = stage("greedy", "true", &[], &["g.txt"]);
    greedy.resources.gpus = 64;
    let after = stage("after", "echo a > after.txt", &[], &["after.txt"]);
    let mut opts = options();
    opts.jobs = 1;
    let (summary, _) = fx.run(&[slow, greedy, after], opts);
    assert_eq!(fx.report(&summary, "greedy").outcome, Outcome::Failed, "{:?}", summary.reports);
    assert_eq!(fx.report(&summary, "slow").outcome, Outcome::Ran);
    assert_eq!(fx.report(&summary, "after").outcome, Outcome::Skipped, "{:?}", summary.reports);
    // One that may fall back to the CPU waits for a slot like any stage.
    let fx = Fixture::new();
    let slow = stage("slow", "sleep 1; echo s > slow.txt", &[], &["slow.txt"]);
    let mut flexible = stage("flexible", "echo f > f.txt", &[], &["f.txt"]);
    flexible.resources.gpus = 64;
    flexible.cpu_fallback = true;
    let mut opts = options();
    opts.jobs = 1;
    let (summary, _) = fx.run(&[slow, flexible], opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
}

#[test]
fn a_folder_dep_changed_while_its_stage_ran_is_seen_through_its_summary() {
    // The folder is old, so the assessment leaves a summary of it; the
    // stage then writes into it, and its outputs are not cached.
    let fx = Fixture::new();
    fx.write("data/a", "a\n");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options().write(true).open(fx.root().join("data/a")).unwrap().set_modified(old).unwrap();
    let writes = stage("writes", "echo more >> data/a; echo x > w.txt", &["data"], &["w.txt"]);
    let (summary, _) = fx.run(&[writes.clone()], options());
    assert_eq!(
        fx.report(&summary, "writes").message.as_deref(),
        Some("dep `data` changed while the stage ran; its outputs were not cached (run again)")
    );
    // Left alone, the same folder is not reported.
    std::fs::File::options().write(true).open(fx.root().join("data/a")).unwrap().set_modified(old).unwrap();
    let reads = stage("reads", "cat data/a > r.txt", &["data"], &["r.txt"]);
    let (summary, _) = fx.run(&[reads], options());
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
}

/// A stage outlives the threads of the runtime that started it: tokio's
/// blocking threads retire after 10 s idle, and when stages were forked by
/// one with `PR_SET_PDEATHSIG` (which fires when the forking *thread*
/// exits), a stage was killed 10 s into any run where nothing else used them.
#[test]
fn a_stage_outlives_the_idle_time_of_the_runtimes_threads() {
    let fx = Fixture::new();
    let long = stage("long", "sleep 12 && echo done > out.txt", &[], &["out.txt"]);
    let (summary, _) = fx.run(&[long], options());
    let report = fx.report(&summary, "long");
    assert_eq!(report.outcome, Outcome::Ran, "{:?}", report.message);
    assert_eq!(fx.read("out.txt"), "done\n");
}

/// What a stage leaves running in its process group is stopped as soon as
/// the stage ends, before the stages below it start (not only when the run
/// is over).
#[test]
fn what_a_stage_leaves_in_its_group_is_stopped_before_the_next_stage() {
    let fx = Fixture::new();
    let a = stage("a", "sleep 300 & echo $! > bg.pid; echo x > a.txt", &[], &["a.txt"]);
    // `kill -0` would count a zombie as alive: the state in /proc tells.
    let b = stage(
        "b",
        "state=$(sed 's/.*) //' /proc/$(cat bg.pid)/stat 2>/dev/null | cut -c1); \
         case $state in ''|Z) echo stopped ;; *) echo running ;; esac > b.txt",
        &["a.txt"],
        &["b.txt"],
    );
    let (summary, _) = fx.run(&[a, b], options());
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    let pid: i32 = fx.read("bg.pid").trim().parse().unwrap();
    if fx.read("b.txt") != "stopped\n" {
        // SAFETY: a plain kill(2) of the process the stage left.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the background process of `a` still ran when `b` started");
    }
}

/// A stage that sets `PATH` finds `sh` on its own `PATH`, not on gourd's.
#[test]
fn a_stage_that_sets_path_gets_the_sh_on_its_path() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let bin = fx.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("sh"), "#!/bin/sh\necho \"own sh: $*\" > out.txt\n").unwrap();
    std::fs::set_permissions(bin.join("sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = stage("s", "echo gourd's sh > out.txt", &[], &["out.txt"]);
    s.env.insert("PATH".to_string(), format!("{}:/usr/bin:/bin", bin.display()));
    let (summary, _) = fx.run(&[s], options());
    assert_eq!(fx.report(&summary, "s").outcome, Outcome::Ran);
    assert_eq!(fx.read("out.txt"), "own sh: -c echo gourd's sh > out.txt\n");
}

/// The folders under `.gourd-displaced`, one per run that moved something.
fn displaced(fx: &Fixture) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = fs::read_dir(fx.root().join(".gourd-displaced"))
        .map(|entries| entries.map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

fn message<'a>(summary: &'a gourd_core::run::Summary, stage: &str) -> &'a str {
    summary.reports.iter().find(|r| r.stage == stage).and_then(|r| r.message.as_deref()).unwrap_or("")
}

#[test]
fn what_gourd_did_not_write_at_an_output_path_is_moved_aside_not_deleted() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    fx.write("out/user.txt", "mine\n");
    let s = stage("s", "mkdir -p out; cat in.txt > out/new", &["in.txt"], &["out"]);
    let (summary, _) = fx.run(&[s.clone()], options());
    assert_eq!(summary.ran, 1);
    assert!(
        message(&summary, "s").starts_with("moved `out` aside to `.gourd-displaced/"),
        "{}",
        message(&summary, "s")
    );
    let [first] = &displaced(&fx)[..] else { panic!("{:?}", displaced(&fx)) };
    assert_eq!(fs::read_to_string(first.join("out/user.txt")).unwrap(), "mine\n");
    assert!(!fx.root().join("out/user.txt").exists());
    // Git is kept from listing it.
    assert!(fs::read_to_string(fx.root().join(".gourd-displaced/.gitignore")).unwrap().ends_with("\n*\n"));

    // What the last run wrote is replaced without a copy.
    fx.write("in.txt", "2\n");
    let (summary, _) = fx.run(&[s.clone()], options());
    assert_eq!((summary.ran, message(&summary, "s")), (1, ""));
    assert_eq!(displaced(&fx).len(), 1);

    // A hand edit is moved aside before a restore writes over it.
    fx.write("in.txt", "1\n");
    fx.write("out/new", "edited\n");
    let (summary, _) = fx.run(&[s], options());
    assert_eq!(
        summary.restored,
        1,
        "{:?}",
        summary.reports.iter().map(|r| (r.outcome, r.message.clone())).collect::<Vec<_>>()
    );
    assert!(message(&summary, "s").starts_with("moved `out` aside"), "{}", message(&summary, "s"));
    assert_eq!(fx.read("out/new"), "1\n");
    // Kept under another name where this process moved `out` aside before.
    let mut kept = Vec::new();
    let mut pending = vec![fx.root().join(".gourd-displaced")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().unwrap() != ".gitignore" {
                kept.push(fs::read_to_string(path).unwrap());
            }
        }
    }
    kept.sort();
    assert_eq!(kept, ["edited\n", "mine\n"]);
}

/// What a folder's digest leaves out (a link that leads nowhere, a named
/// pipe) is not gourd's: a folder holding one is moved aside, not removed,
/// though its digest is the last run's.
#[test]
fn what_the_digest_leaves_out_is_moved_aside_with_its_folder() {
    let fx = Fixture::new();
    // A link that leads somewhere is hashed as what it leads to: gourd's.
    let s = stage("s", "mkdir -p out/sub; echo x > out/sub/f; ln -s sub/f out/ln", &[], &["out"]);
    fx.run(&[s.clone()], options());
    std::os::unix::fs::symlink("/nonexistent/mine", fx.root().join("out/sub/mylink")).unwrap();
    let forced = || {
        let mut forced = options();
        forced.force.insert("s".to_string());
        forced
    };
    let (summary, _) = fx.run(&[s.clone()], forced());
    assert!(message(&summary, "s").starts_with("moved `out` aside"), "{}", message(&summary, "s"));
    let [first] = &displaced(&fx)[..] else { panic!("{:?}", displaced(&fx)) };
    assert_eq!(fs::read_link(first.join("out/sub/mylink")).unwrap(), std::path::Path::new("/nonexistent/mine"));
    // A named pipe, likewise.
    let fifo = std::ffi::CString::new(fx.root().join("out/pipe").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; the result is checked.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (summary, _) = fx.run(&[s.clone()], forced());
    assert!(message(&summary, "s").starts_with("moved `out` aside"), "{}", message(&summary, "s"));
    // With nothing of the kind (the stage's own link included), what the
    // last run wrote is replaced.
    let (summary, _) = fx.run(&[s], forced());
    assert_eq!(message(&summary, "s"), "");
}

#[test]
fn a_failed_runs_leftovers_are_removed_and_nothing_else() {
    let fx = Fixture::new();
    let f = stage("f", "echo partial > f.txt; test -f ok", &[], &["f.txt"]);
    let (summary, _) = fx.run(&[f.clone()], options());
    assert_eq!(summary.failed, 1);
    let left = fx.ws.leftovers("f");
    assert_eq!(left.len(), 1);
    assert!(left["f.txt"].is_some(), "the failed run's file is noted by its digest");
    // Its own leftovers: removed, not kept.
    let (summary, _) = fx.run(&[f.clone()], options());
    assert_eq!((summary.failed, message(&summary, "f").contains("aside")), (1, false));
    assert!(displaced(&fx).is_empty());
    // Someone else's file where it left one: kept.
    fx.write("f.txt", "mine\n");
    let (summary, _) = fx.run(&[f.clone()], options());
    assert!(message(&summary, "f").contains("moved `f.txt` aside"), "{}", message(&summary, "f"));
    assert_eq!(displaced(&fx).len(), 1);
    // Success forgets the leftovers.
    fx.write("ok", "");
    let (summary, _) = fx.run(&[f], options());
    assert_eq!(summary.ran, 1);
    assert!(fx.ws.leftovers("f").is_empty());
    // A failure on gourd's side after the outputs were cleared (here, the
    // store cannot make the object's folder): what the stage left is noted
    // all the same, and removed by the next run rather than moved aside.
    let bad = stage("bad", "echo stored > b.txt", &[], &["b.txt"]);
    let object = fx.ws.store.object_path(&gourd_digest::Hasher::digest_bytes(fx.ws.algorithm(), b"stored\n"));
    let shard = object.parent().unwrap().to_path_buf();
    let _ = fs::remove_dir_all(&shard);
    fs::write(&shard, "in the way").unwrap();
    let (summary, _) = fx.run(&[bad.clone()], options());
    assert_eq!(summary.failed, 1, "{:?}", summary.reports);
    assert!(fx.ws.leftovers("bad").get("b.txt").is_some_and(Option::is_some), "{:?}", fx.ws.leftovers("bad"));
    fs::remove_file(&shard).unwrap();
    let (summary, _) = fx.run(&[bad], options());
    assert_eq!((summary.ran, message(&summary, "bad")), (1, ""), "{:?}", summary.reports);
    // A persisted output is never cleared, so nothing is noted for it.
    let mut p = stage("p", "echo more >> p.txt; exit 1", &[], &["p.txt"]);
    p.outs[0].persist = true;
    fx.run(&[p], options());
    assert!(fx.ws.leftovers("p").is_empty());
}

/// A stage that fails before its process starts (its `wdir` is gone) has
/// no log of this run: the last run's log is not shown as this one's.
#[test]
fn a_stage_that_never_started_shows_no_log_of_an_earlier_run() {
    let fx = Fixture::new();
    fs::create_dir(fx.root().join("sub")).unwrap();
    let mut s = stage("s", "echo the-earlier-run; echo s > ../s.txt", &[], &["s.txt"]);
    s.wdir = WsPath::new("sub").unwrap();
    let (summary, _) = fx.run(std::slice::from_ref(&s), options());
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    let log = fx.report(&summary, "s").log.clone().expect("a log");
    assert_eq!(fs::read_to_string(&log).unwrap(), "the-earlier-run\n");
    fs::remove_dir_all(fx.root().join("sub")).unwrap();
    s.cmd = crate::common::shell("echo s > ../s.txt");
    let (summary, _) = fx.run(&[s], options());
    let report = fx.report(&summary, "s");
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.message.as_deref().unwrap().contains("is not a folder"), "{:?}", report.message);
    assert_eq!(report.log, None);
}

/// While a long stage runs and nothing else happens, what finished before
/// it is written to the state within a second or so: a run killed then
/// does not forget it.
#[test]
fn what_finished_is_saved_while_a_long_stage_runs() {
    // `long` waits (up to 30 s) until the state file names `a`: `a` ends at
    // once (before any save is due), or past the first second.
    for a in ["echo a > a.txt", "sleep 1.2; echo a > a.txt"] {
        let fx = Fixture::new();
        let state = ".gourd/state-v1/last-runs.json";
        let waits = format!(
            "i=0; until grep -q '\"a\"' {state} 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && exit 9; sleep 0.1; done; echo ok > long.txt"
        );
        let pipeline = vec![stage("a", a, &[], &["a.txt"]), stage("long", &waits, &[], &["long.txt"])];
        let mut opts = options();
        opts.jobs = 2;
        let (summary, _) = fx.run(&pipeline, opts);
        assert_eq!(summary.ran, 2, "a: `{a}`: {:?}", summary.reports);
    }
}

/// A stage whose environment the system refuses (one variable over 128
/// KiB) fails naming the variable, not "argument list too long".
#[test]
fn an_environment_too_large_to_start_names_its_largest_variable() {
    let fx = Fixture::new();
    let mut s = stage("s", "true", &[], &[]);
    s.env.insert("SMALL".to_string(), "x".to_string());
    s.env.insert("BIG".to_string(), "x".repeat(300 * 1024));
    let (summary, _) = fx.run(&[s], options());
    assert_eq!(summary.failed, 1);
    let said = message(&summary, "s");
    assert!(said.contains("cannot start `sh`: its environment is larger than the system allows"), "{said}");
    assert!(said.contains("the largest variable is `BIG` (300 KiB)"), "{said}");
}

/// A dep folder that changes while its stage runs is not cached under a
/// key it was not made from; when Python's bytecode cache is what changed
/// it, the message says so and what to do.
#[test]
fn a_dep_changed_while_running_names_pythons_bytecode_cache() {
    let fx = Fixture::new();
    fx.write("src/m.py", "x = 1\n");
    let python = stage("s", "mkdir -p src/__pycache__; echo b > src/__pycache__/m.pyc; echo o > o", &["src"], &["o"]);
    let (summary, _) = fx.run(&[python], options());
    assert_eq!(summary.failed, 1);
    let said = message(&summary, "s");
    assert!(said.starts_with("dep `src` changed while the stage ran"), "{said}");
    assert!(said.contains("Python wrote `__pycache__` into it; set `PYTHONDONTWRITEBYTECODE = \"1\"`"), "{said}");
    let other = stage("t", "echo y >> src/m.py; echo p > p", &["src"], &["p"]);
    let (summary, _) = fx.run(&[other], options());
    assert_eq!(
        message(&summary, "t"),
        "dep `src` changed while the stage ran; its outputs were not cached (run again)"
    );
}
