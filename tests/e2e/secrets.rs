//! Secrets: what a stage takes from the environment by name enters neither
//! its key, nor the cache, nor lineage, nor its log, and `env` refuses what
//! looks like one.

mod common;

use common::TestWorkspace;

const SECRET: &str = "s3cr3t-Value-0f-a-Token-8472";
const OTHER_SECRET: &str = "another-s3cr3t-Value-1234";

/// A stage that takes `DEMO_API_TOKEN` and writes its length, not its value.
const PIPELINE: &str = r#"{
  stages = {
    fetch = {
      cmd = "printf %s \"$DEMO_API_TOKEN\" | wc -c | tr -d ' ' > length.txt; echo fetch >> runs.log",
      outs = ["length.txt"],
      secrets = ["DEMO_API_TOKEN"],
    },
    use = {
      cmd = "cp length.txt copy.txt; echo use >> runs.log",
      deps = ["length.txt"],
      outs = [{ path = "copy.txt", kind = 'model }],
    },
  },
}
"#;

/// Every file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Every object reachable from the lineage ref whose content holds `needle`.
fn lineage_objects_holding(ws: &TestWorkspace, needle: &str) -> Vec<String> {
    let objects = ws.git(&["rev-list", "--objects", "refs/gourd/lineage"]);
    assert!(!objects.trim().is_empty(), "lineage was recorded");
    objects
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|id| {
            let kind = ws.git(&["cat-file", "-t", id]);
            ws.git(&["cat-file", kind.trim(), id]).contains(needle)
        })
        .map(String::from)
        .collect()
}

#[test]
fn a_secret_reaches_the_stage_and_nothing_gourd_keeps() {
    let ws = TestWorkspace::new(PIPELINE);
    let run = ws.gourd_env(&["run"], &[("DEMO_API_TOKEN", SECRET)]).success();
    assert_eq!(ws.read("length.txt").trim(), SECRET.len().to_string(), "the stage saw the secret");
    assert_eq!(ws.executions(), ["fetch", "use"]);

    let mut shown = run.stdout + &run.stderr;
    for args in [&["log"][..], &["lineage", "copy.txt", "--json"], &["status", "--json"], &["report", "--format", "md"]]
    {
        let out = ws.gourd(args).success();
        shown += &(out.stdout + &out.stderr);
    }
    assert!(!shown.contains(SECRET), "gourd printed the secret: {shown}");
    assert_eq!(files_holding(&ws.path(".gourd"), SECRET.as_bytes()), Vec::<String>::new());
    assert_eq!(lineage_objects_holding(&ws, SECRET), Vec::<String>::new());

    // A new value of the secret is not a new input.
    ws.clear_executions();
    let again = ws.gourd_env(&["run", "--json"], &[("DEMO_API_TOKEN", OTHER_SECRET)]).success();
    assert_eq!(again.statuses(), common::expect(&[("fetch", "up-to-date"), ("use", "up-to-date")]));
    assert!(ws.executions().is_empty());
}

#[test]
fn a_secret_a_stage_prints_is_redacted_from_its_log() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
          ok = { cmd = "echo \"token=$DEMO_API_TOKEN.\"; echo done > ok.txt", outs = ["ok.txt"], secrets = ["DEMO_API_TOKEN"] },
          bad = { cmd = "echo \"token=$DEMO_API_TOKEN.\" >&2; exit 3", secrets = ["DEMO_API_TOKEN"] },
        } }"#,
    );
    let run = ws.gourd_env(&["run", "--keep-going"], &[("DEMO_API_TOKEN", SECRET)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(ws.read(".gourd/logs/ok.log"), "token=***.\n");
    assert_eq!(ws.read(".gourd/logs/bad.log"), "token=***.\n");
    assert!(run.stderr.contains("token=***."), "the failed stage's log tail is shown: {}", run.stderr);
    assert!(!(run.stdout + &run.stderr).contains(SECRET));
    assert_eq!(files_holding(&ws.path(".gourd"), SECRET.as_bytes()), Vec::<String>::new());
}

#[test]
fn a_secret_is_never_shown_by_a_verbose_run_nor_left_in_a_log_by_a_killed_one() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
          fetch = { cmd = "echo \"using $DEMO_API_TOKEN\"; echo \"again $DEMO_API_TOKEN\" >&2; sleep 0.5; echo done > f.txt", outs = ["f.txt"], secrets = ["DEMO_API_TOKEN"] },
        } }"#,
    );
    // `-v` streams the log while the stage runs, pauses included.
    let run = ws.gourd_env(&["run", "-v"], &[("DEMO_API_TOKEN", SECRET)]).success();
    assert!(!(run.stdout.clone() + &run.stderr).contains(SECRET), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.matches("fetch | using ***").count(), 1, "{}", run.stdout);
    assert_eq!(run.stdout.matches("fetch | again ***").count(), 1, "{}", run.stdout);
    // Killed while the stage runs, gourd never redacts afterwards: the log
    // must never have held the value.
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("sleep 0.5", "sleep 30"));
    let mut gourd = ws.command(&["run"]);
    gourd.env("DEMO_API_TOKEN", SECRET).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut gourd = gourd.spawn().unwrap();
    let log = ws.path(".gourd/logs/fetch.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("again")) {
        assert!(std::time::Instant::now() < deadline, "the stage never printed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    gourd.kill().unwrap();
    gourd.wait().unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "using ***\nagain ***\n");
    assert_eq!(files_holding(&ws.path(".gourd"), SECRET.as_bytes()), Vec::<String>::new());
}

#[test]
fn a_missing_secret_fails_the_run_before_anything_runs() {
    let ws = TestWorkspace::new(PIPELINE);
    ws.gourd(&["check"]).success();
    let run = ws.gourd_env(&["run"], &[("DEMO_API_TOKEN", "")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(ws.executions().is_empty(), "a stage executed");
    assert!(!ws.exists(".gourd/cache-v1"), "the cache was touched");
    insta::assert_snapshot!(run.normalized(&ws));
    // Showing what would run needs no secret.
    ws.gourd(&["run", "--dry-run"]).success();
}

#[test]
fn env_refuses_a_variable_that_looks_secret() {
    let ws = TestWorkspace::new(
        "{\n  stages = {\n    train = {\n      cmd = \"echo train >> runs.log\",\n      env = {\n        PYTHONHASHSEED = \"0\",\n        AWS_SECRET_ACCESS_KEY = \"x\",\n      },\n    },\n  },\n}\n",
    );
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(ws.executions().is_empty(), "a stage executed");
    insta::assert_snapshot!(run.normalized(&ws));
}
