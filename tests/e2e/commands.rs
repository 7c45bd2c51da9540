//! The user-facing output of each command, snapshotted.

mod common;

use common::TestWorkspace;

const PIPELINE: &str = r#"let rate = 0.1 in
{
  stages = {
    prepare = { cmd = "mkdir -p data && cp raw.txt data/clean.txt", deps = ["raw.txt"], outs = ["data"] },
    train = {
      cmd = "cat data/clean.txt $GOURD_PARAMS > model.bin",
      deps = ["data"],
      params = { lr = rate, epochs = 3 },
      outs = [{ path = "model.bin", kind = 'model }],
    },
    evaluate = {
      cmd = "echo '{\"accuracy\": 0.9}' > metrics.json",
      deps = ["model.bin", "data"],
      metrics = ["metrics.json"],
    },
  },
}
"#;

fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new(PIPELINE);
    ws.write("raw.txt", "raw\n");
    ws
}

#[test]
fn init_writes_a_pipeline_that_runs() {
    let ws = TestWorkspace::bare();
    let run = ws.gourd(&["init"]).success();
    assert!(run.stderr.contains("Created"));
    assert!(ws.read(".gitignore").contains(".gourd/"));
    ws.gourd(&["check"]).success();
    ws.gourd(&["run"]).success();
    let pipeline = ws.read("gourd.ncl");
    ws.write("gourd.ncl", &format!("# mine\n{pipeline}"));
    let again = ws.gourd(&["init"]).success();
    assert!(again.stderr.contains("exists; kept it"), "{}", again.stderr);
    assert_eq!(ws.read("gourd.ncl"), format!("# mine\n{pipeline}"), "init must not overwrite");
}

#[test]
fn reading_a_pipeline_in_a_fresh_repository_leaves_nothing_for_git_to_list() {
    let ws = TestWorkspace::bare();
    ws.git(&["init", "-q"]);
    ws.write("gourd.ncl", PIPELINE);
    ws.write("raw.txt", "raw\n");
    for command in ["check", "status", "dag"] {
        ws.gourd(&[command]).success();
    }
    assert!(ws.exists(".gourd"));
    assert_eq!(ws.git(&["status", "--porcelain", "--untracked-files=all"]), "?? gourd.ncl\n?? raw.txt\n");
    assert!(!ws.exists(".gitignore"), "reading writes no file of the user's");
}

#[test]
fn check_counts_stages_and_edges() {
    let ws = workspace();
    insta::assert_snapshot!(ws.gourd(&["check"]).success().stdout, @"gourd.ncl: ok, 3 stages, 3 edges");
}

#[test]
fn run_prints_one_line_per_stage_and_a_summary() {
    let ws = workspace();
    insta::assert_snapshot!(ws.gourd(&["run", "-j", "1"]).success().normalized(&ws), @r"
           ran prepare ([TIME])
           ran train ([TIME])
           ran evaluate ([TIME])
    Metrics:
      evaluate  metrics.json  accuracy 0.9
    3 ran, 0 restored, 0 up-to-date, 0 failed, 0 skipped in [TIME]
    ");
}

#[test]
fn status_says_why() {
    let ws = workspace();
    insta::assert_snapshot!(ws.gourd(&["status"]).success().normalized(&ws), @r"
    prepare   stale: never run
    train     stale: upstream `prepare` is stale
    evaluate  stale: upstream `prepare` is stale; upstream `train` is stale
    3 of 3 stages stale.
    ");
    ws.gourd(&["run"]).success();
    ws.write("raw.txt", "new\n");
    ws.remove("metrics.json");
    let status = ws.gourd(&["status", "--exit-code"]);
    assert_eq!(status.code, 1);
    insta::assert_snapshot!(status.normalized(&ws), @r"
    prepare   stale: dep `raw.txt` changed
    train     stale: upstream `prepare` is stale
    evaluate  stale: upstream `prepare` is stale; upstream `train` is stale
    3 of 3 stages stale.
    ");
    ws.write("raw.txt", "raw\n");
    let json = ws.gourd(&["status", "--json"]).success();
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["stages"][2]["name"], "evaluate");
    assert_eq!(json["stages"][2]["state"], "stale");
    assert_eq!(json["stages"][2]["reasons"][0], "out `metrics.json` is missing");
    assert_eq!(json["stages"][2]["restorable"], true);
    assert_eq!(json["stages"][0]["state"], "fresh");
}

#[test]
fn explain_diffs_the_key_inputs() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    ws.write("gourd.ncl", &PIPELINE.replace("0.1", "0.05"));
    insta::assert_snapshot!(ws.gourd(&["explain", "train"]).success().normalized(&ws), @r"
    stage `train`: stale (param `lr` changed)
    key:      [DIGEST]
    last run: [DIGEST] (ran, [TIMESTAMP])
    Changed since the last run:
      params.lr  0.1 -> 0.05
    ");
}

#[test]
fn dry_run_runs_nothing() {
    let ws = workspace();
    let run = ws.gourd(&["run", "--dry-run"]).success();
    assert!(!ws.exists("data"));
    insta::assert_snapshot!(run.normalized(&ws), @r"
        would-run prepare   never run
        would-run train     upstream `prepare` is stale
        would-run evaluate  upstream `prepare` is stale; upstream `train` is stale
    Dry run: 3 would run, 0 would be restored, 0 up to date.
    ");
}

#[test]
fn dag_in_every_format() {
    let ws = workspace();
    insta::assert_snapshot!(ws.gourd(&["dag"]).success().stdout, @r"
    prepare
    train     <- prepare
    evaluate  <- prepare, train
    ");
    insta::assert_snapshot!(ws.gourd(&["dag", "--format", "mermaid"]).success().stdout, @r#"
    graph LR
      s1["prepare"]
      s2["train"]
      s0["evaluate"]
      s1 --> s0
      s1 --> s2
      s2 --> s0
    "#);
    let dot = ws.gourd(&["dag", "--format", "dot"]).success().stdout;
    assert!(dot.contains("\"prepare\" -> \"train\";"), "{dot}");
    let json: serde_json::Value =
        serde_json::from_str(&ws.gourd(&["dag", "--format", "json"]).success().stdout).unwrap();
    assert_eq!(json["edges"].as_array().unwrap().len(), 3);
}

#[test]
fn help_is_stable() {
    let ws = TestWorkspace::bare();
    insta::assert_snapshot!(ws.gourd(&["--help"]).success().stdout);
    insta::assert_snapshot!(ws.gourd(&["run", "--help"]).success().stdout);
}

#[test]
fn works_from_a_subfolder_and_with_dash_c_and_file() {
    let ws = workspace();
    std::fs::create_dir_all(ws.path("sub/deeper")).unwrap();
    let mut command = ws.command(&["check"]);
    command.current_dir(ws.path("sub/deeper"));
    assert!(command.output().unwrap().status.success());
    let outside = TestWorkspace::bare();
    let root = ws.root().display().to_string();
    outside.gourd(&["-C", &root, "check"]).success();
    std::fs::rename(ws.path("gourd.ncl"), ws.path("other.ncl")).unwrap();
    outside.gourd(&["--file", &format!("{root}/other.ncl"), "run"]).success();
    assert!(ws.exists("model.bin"));
}

#[test]
fn outside_a_git_repository_gourd_still_works() {
    let ws = TestWorkspace::bare();
    ws.write("gourd.ncl", r#"{ stages = { s = { cmd = "echo x > x", outs = ["x"] } } }"#);
    ws.gourd(&["run"]).success();
    assert_eq!(ws.read("x"), "x\n");
}

#[test]
fn gc_drops_what_nothing_needs_and_keeps_what_its_scope_names() {
    let pipeline = r#"{ stages = { s = { cmd = "echo s >> runs.log && cp in.txt out.txt", deps = ["in.txt"], outs = ["out.txt"] } } }"#;
    // Outside git: only the workspace's current state is kept.
    let ws = TestWorkspace::bare();
    ws.write("gourd.ncl", pipeline);
    ws.write("in.txt", "v1\n");
    ws.gourd(&["run"]).success();
    ws.write("in.txt", "v2\n");
    ws.gourd(&["run"]).success();
    let dry = ws.gourd(&["gc", "--dry-run"]).success();
    assert!(dry.stdout.contains("\nWould remove 1 results, 1 objects"), "{}", dry.stdout);
    assert!(dry.stdout.starts_with("  out.txt  "), "{}", dry.stdout);
    assert!(ws.gourd(&["gc"]).success().stdout.starts_with("Removed 1 results, 1 objects"));
    assert!(ws.gourd(&["gc"]).success().stdout.starts_with("Removed 0 results"));
    ws.clear_executions();
    ws.write("in.txt", "v1\n");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["s"], "ran", "the collected result is gone");

    // In git, lineage names both results: `--keep-last 2` keeps both.
    let ws = TestWorkspace::new(pipeline);
    ws.write("in.txt", "v1\n");
    ws.gourd(&["run"]).success();
    ws.write("in.txt", "v2\n");
    ws.gourd(&["run"]).success();
    assert!(ws.gourd(&["gc", "--keep-last", "2"]).success().stdout.starts_with("Removed 0 results"));
    ws.write("in.txt", "v1\n");
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "restored");
}

#[test]
fn a_missing_source_is_a_reason_for_status_and_an_error_for_run() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    ws.remove("raw.txt");
    let status = ws.gourd(&["status", "--json"]).success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["stages"][0]["reasons"][0], "dep `raw.txt` is missing");
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("depends on `raw.txt`, which does not exist"), "{}", run.stderr);
}

#[test]
fn json_events_carry_the_key_wherever_it_is_known_and_every_summary_has_every_count() {
    let ws = TestWorkspace::new(
        "{ stages = {\n  a = { cmd = \"exit 1\", outs = [\"a.txt\"] },\n  b = { cmd = \"cat a.txt > b.txt\", deps = [\"a.txt\"], outs = [\"b.txt\"] },\n  c = { cmd = [\"no-such-program-gourd-test\"], outs = [\"c.txt\"] },\n} }\n",
    );
    let hex =
        |v: &serde_json::Value| v.as_str().is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    let events = |run: &common::Run| -> Vec<serde_json::Value> {
        run.stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    };
    let dry = ws.gourd(&["run", "--dry-run", "--json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry = events(&dry);
    let run = ws.gourd(&["run", "--json"]);
    assert_eq!(run.code, 1);
    let run = events(&run);
    for (name, events) in [("dry run", &dry), ("run", &run)] {
        let summary = events.last().unwrap();
        assert_eq!(summary["event"], "summary", "{name}");
        for count in ["ran", "restored", "up_to_date", "failed", "skipped"] {
            assert!(summary[count].is_u64(), "{name}: {count} in {summary}");
        }
        let stage = |stage: &str| events.iter().find(|e| e["stage"] == stage).unwrap().clone();
        // A stage that cannot start was assessed: its key is known.
        assert!(hex(&stage("a")["key"]) && hex(&stage("c")["key"]), "{name}: {events:?}");
        // Below a stage that failed (or would run), what it reads is not made.
        assert!(stage("b")["key"].is_null(), "{name}");
    }
    let stage = |stage: &str| run.iter().find(|e| e["stage"] == stage).unwrap().clone();
    assert_eq!((stage("a")["status"].as_str(), stage("c")["status"].as_str()), (Some("failed"), Some("failed")));
    assert_eq!(stage("b")["status"], "skipped");
    assert_eq!((run.last().unwrap()["failed"].as_u64(), run.last().unwrap()["skipped"].as_u64()), (Some(2), Some(1)));
    assert_eq!(dry.last().unwrap()["would_run"], 3);
}
