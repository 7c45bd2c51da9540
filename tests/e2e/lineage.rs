//! Lineage in git: records on `refs/gourd/lineage`, and the commands that
//! read them (lineage, log, params and metrics diffs, reports, push/pull).

mod common;

use common::TestWorkspace;
use serde_json::Value;

/// raw → prepare → features → train → evaluate, with a model and metrics.
const PIPELINE: &str = r#"let rate = 0.5 in
{
  stages = {
    prepare = { cmd = "mkdir -p data/clean && cp data/raw/* data/clean/", deps = ["data/raw"], outs = ["data/clean"] },
    features = { cmd = "cat data/clean/* | wc -l > features.txt", deps = ["data/clean", "features.sh"], outs = [{ path = "features.txt", kind = 'feature }] },
    train = {
      cmd = "cat features.txt train.cfg $GOURD_PARAMS > model.bin",
      deps = ["features.txt", "train.cfg"],
      params = { lr = rate, layers = 2 },
      outs = [{ path = "model.bin", kind = 'model }],
    },
    evaluate = {
      cmd = "echo \"{\\\"accuracy\\\": $(wc -c < model.bin)}\" > metrics.json",
      deps = ["model.bin"],
      metrics = ["metrics.json"],
    },
  },
}
"#;

fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new(PIPELINE);
    ws.write("data/raw/a.txt", "a\n");
    ws.write("data/raw/b.txt", "b\n");
    ws.write("features.sh", "# features\n");
    ws.write("train.cfg", "cfg\n");
    ws.write(".gitignore", ".gourd/\ndata/clean/\nfeatures.txt\nmodel.bin\nmetrics.json\n");
    // The ignore block a run would add, committed with the pipeline.
    ws.gourd(&["init"]).success();
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    ws
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_run_records_one_commit_and_touches_nothing_else() {
    let ws = workspace();
    let head = ws.git(&["rev-parse", "HEAD"]);
    let status = ws.git(&["status", "--porcelain", "--untracked-files=all"]);
    let branches = ws.git(&["for-each-ref", "refs/heads", "refs/tags"]);
    ws.gourd(&["run"]).success();
    assert_eq!(ws.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(ws.git(&["status", "--porcelain", "--untracked-files=all"]), status);
    assert_eq!(ws.git(&["for-each-ref", "refs/heads", "refs/tags"]), branches);
    assert_eq!(ws.git(&["diff", "--cached", "--name-only"]), "");

    let log = ws.git(&["log", "--format=%s", "refs/gourd/lineage"]);
    assert_eq!(log.lines().count(), 1, "{log}");
    let record = json(&ws.git(&["show", "refs/gourd/lineage:stages/train.json"]));
    for field in [
        "stage",
        "key",
        "cmd",
        "deps",
        "outs",
        "params",
        "metrics",
        "executor",
        "started_at",
        "finished_at",
        "exit_code",
        "status",
        "workspace_commit",
        "workspace_dirty",
        "gourd_version",
    ] {
        assert!(record.get(field).is_some(), "missing `{field}` in {record}");
    }
    assert_eq!(record["status"], "ran");
    assert_eq!(record["workspace_commit"].as_str().unwrap(), head.trim());
    assert_eq!(record["workspace_dirty"], false);
    assert_eq!(record["params"]["lr"], 0.5);
    // The values, not only the fields: a record of nulls is no lineage.
    assert_eq!(record["stage"], "train");
    assert_eq!(record["executor"], "local");
    assert_eq!(record["exit_code"], 0);
    assert_eq!(record["gourd_version"], env!("CARGO_PKG_VERSION"));
    let (started, finished) = (record["started_at"].as_str().unwrap(), record["finished_at"].as_str().unwrap());
    assert!(started.len() >= 20 && started <= finished, "{started} .. {finished}");
    assert_eq!(record["cmd"]["shell"], "cat features.txt train.cfg $GOURD_PARAMS > model.bin");
    assert!(record["deps"]["features.txt"].as_str().is_some_and(|d| d.len() == 64), "{record}");
    let model = std::fs::read(ws.path("model.bin")).unwrap();
    let digest = gourd_digest::Hasher::digest_bytes(gourd_digest::DigestAlgorithm::Blake3, &model);
    assert_eq!(record["outs"]["model.bin"], digest.to_string(), "the output's digest");
    assert_eq!(record["out_kinds"]["model.bin"], "model");
    let status = json(&ws.gourd(&["status", "--json"]).success().stdout);
    let key = status["stages"].as_array().unwrap().iter().find(|s| s["name"] == "train").unwrap()["key"].clone();
    assert_eq!(record["key"], key, "the key the stage has");
    let evaluate = json(&ws.git(&["show", "refs/gourd/lineage:stages/evaluate.json"]));
    assert!(evaluate["metrics"]["metrics.json"]["accuracy"].is_number());

    // A run that changes nothing records nothing; a restore is recorded.
    ws.gourd(&["run"]).success();
    assert_eq!(ws.git(&["log", "--format=%s", "refs/gourd/lineage"]).lines().count(), 1);
    ws.remove("model.bin");
    ws.gourd(&["run"]).success();
    assert_eq!(ws.git(&["log", "--format=%s", "refs/gourd/lineage"]).lines().count(), 2);
    let restored = json(&ws.git(&["show", "refs/gourd/lineage:stages/train.json"]));
    assert_eq!(restored["status"], "restored");
    // `gourd lineage` of the restored model shows the run that built it.
    let shown = json(&ws.gourd(&["lineage", "model.bin", "--json"]).success().stdout);
    assert_eq!(shown["record"]["status"], "restored");
    assert_eq!(shown["built"]["finished_at"], record["finished_at"], "{shown}");
    assert_eq!(shown["built"]["duration_ms"], record["duration_ms"], "{shown}");
    let text = ws.gourd(&["lineage", "model.bin"]).success().stdout;
    let built = format!("  built      {} ({} ms", record["finished_at"].as_str().unwrap(), record["duration_ms"]);
    assert!(text.contains(&built), "{text}");
    assert!(text.contains(&format!("  restored   {}", restored["finished_at"].as_str().unwrap())), "{text}");
}

#[test]
fn works_before_the_first_commit_on_a_detached_head_and_in_a_worktree() {
    let ws = TestWorkspace::new(r#"{ stages = { s = { cmd = "echo x > x", outs = ["x"] } } }"#);
    ws.gourd(&["run"]).success();
    let record = json(&ws.git(&["show", "refs/gourd/lineage:stages/s.json"]));
    assert_eq!(record["workspace_commit"], Value::Null);
    assert_eq!(record["workspace_dirty"], true);

    ws.git(&["add", "gourd.ncl", ".gitignore"]);
    ws.git(&["commit", "-qm", "one"]);
    ws.git(&["checkout", "-q", "--detach"]);
    ws.gourd(&["run", "--force", "s"]).success();
    assert_eq!(ws.git(&["log", "--format=%s", "refs/gourd/lineage"]).lines().count(), 2);

    let worktree = ws.path("../").join(format!("{}-wt", ws.root().file_name().unwrap().to_string_lossy()));
    ws.git(&["worktree", "add", "-q", worktree.to_str().unwrap(), "HEAD"]);
    let mut command = ws.command(&["run"]);
    command.current_dir(&worktree);
    assert!(command.output().unwrap().status.success());
    assert_eq!(ws.git(&["log", "--format=%s", "refs/gourd/lineage"]).lines().count(), 3, "the worktree shares the ref");
    std::fs::remove_dir_all(&worktree).unwrap();
}

#[test]
fn lineage_of_a_model_lists_every_upstream_input() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    let out = json(&ws.gourd(&["lineage", "model.bin", "--json"]).success().stdout);
    assert_eq!(out["record"]["stage"], "train");
    assert_eq!(out["on_disk"], "current");
    assert_eq!(out["kind"], "model");
    let mut sources = Vec::new();
    let mut stages = Vec::new();
    fn walk(nodes: &Value, sources: &mut Vec<String>, stages: &mut Vec<String>) {
        for node in nodes.as_array().unwrap() {
            match node["stage"].as_str() {
                Some(stage) => stages.push(stage.to_string()),
                None => sources.push(node["path"].as_str().unwrap().to_string()),
            }
            if let Some(up) = node.get("upstream") {
                walk(up, sources, stages);
            }
        }
    }
    walk(&out["upstream"], &mut sources, &mut stages);
    sources.sort();
    stages.sort();
    assert_eq!(sources, vec!["data/raw", "features.sh", "train.cfg"]);
    assert_eq!(stages, vec!["features", "prepare"]);

    // Inside a folder output, too.
    let inner = json(&ws.gourd(&["lineage", "data/clean/a.txt", "--json"]).success().stdout);
    assert_eq!(inner["record"]["stage"], "prepare");
    assert_eq!(inner["on_disk"], "current");
}

#[test]
fn lineage_says_when_a_file_was_changed_by_hand() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    ws.write("model.bin", "tampered");
    let run = ws.gourd(&["lineage", "model.bin"]).success();
    assert!(run.stderr.contains("was changed after gourd produced it"), "{}", run.stderr);
    assert_eq!(json(&ws.gourd(&["lineage", "model.bin", "--json"]).stdout)["on_disk"], "modified");
}

#[test]
fn lineage_answers_for_an_older_output_still_on_disk() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    let first_key = json(&ws.gourd(&["lineage", "model.bin", "--json"]).stdout)["record"]["key"].clone();
    ws.write("train.cfg", "cfg v2\n");
    ws.gourd(&["run"]).success();
    ws.write("train.cfg", "cfg\n");
    ws.gourd(&["run"]).success(); // restores the first model
    let out = json(&ws.gourd(&["lineage", "model.bin", "--json"]).success().stdout);
    assert_eq!(out["on_disk"], "current");
    assert_eq!(out["record"]["key"], first_key);
}

#[test]
fn lineage_text_output() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    insta::assert_snapshot!(ws.gourd(&["lineage", "metrics.json"]).success().normalized(&ws));
}

#[test]
fn log_lists_history_newest_first() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    ws.write("train.cfg", "cfg v2\n");
    ws.gourd(&["run"]).success();
    let log = json(&ws.gourd(&["log", "--json"]).success().stdout);
    let stages: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, vec!["evaluate", "train", "evaluate", "train", "features", "prepare"]);
    let train = json(&ws.gourd(&["log", "train", "--json"]).success().stdout);
    assert_eq!(train["entries"].as_array().unwrap().len(), 2);
    insta::assert_snapshot!(ws.gourd(&["log", "train"]).success().normalized(&ws));

    // `-n N`: the newest N, of everything or of one stage.
    let all = log["entries"].as_array().unwrap();
    let three = json(&ws.gourd(&["log", "-n", "3", "--json"]).success().stdout);
    assert_eq!(three["entries"].as_array().unwrap(), &all[..3]);
    let newest = json(&ws.gourd(&["log", "train", "-n", "1", "--json"]).success().stdout);
    assert_eq!(newest["entries"].as_array().unwrap(), &train["entries"].as_array().unwrap()[..1]);
    assert_eq!(newest["entries"][0]["key"], json(&ws.git(&["show", "refs/gourd/lineage:stages/train.json"]))["key"]);
    let text = ws.gourd(&["log", "--max-count", "2"]).success().stdout;
    let full = ws.gourd(&["log"]).success().stdout;
    assert!(text.lines().count() < full.lines().count(), "{text}");
    assert!(full.starts_with(&text), "{text}\n---\n{full}");
}

#[test]
fn params_and_metrics_diffs_across_commits() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    ws.write("gourd.ncl", &PIPELINE.replace("rate = 0.5", "rate = 0.25").replace("layers = 2", "layers = 3"));
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-qam", "smaller rate, more layers"]);

    let params = json(&ws.gourd(&["params", "diff", "HEAD~1", "HEAD", "--json"]).success().stdout);
    let rows = params["params"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{params}");
    assert_eq!(rows[1]["param"], "lr");
    assert_eq!(rows[1]["a"], 0.5);
    assert_eq!(rows[1]["b"], 0.25);
    insta::assert_snapshot!(ws.gourd(&["params", "diff", "HEAD~1", "HEAD"]).success().stdout, @r"
    stage  param   HEAD~1  HEAD
    train  layers  2       3
    train  lr      0.5     0.25
    ");

    let metrics = json(&ws.gourd(&["metrics", "diff", "HEAD~1", "HEAD", "--json"]).success().stdout);
    let row = &metrics["metrics"][0];
    assert_eq!(row["metric"], "accuracy");
    assert!(row["a"].as_f64().unwrap() != row["b"].as_f64().unwrap(), "{metrics}");
    insta::assert_snapshot!(ws.gourd(&["metrics", "diff", "HEAD~1", "HEAD", "--md"]).success().stdout);
    // HEAD against the working state: nothing changed since the commit.
    assert!(ws.gourd(&["metrics", "diff"]).success().stdout.contains("No metrics differ"));
    assert!(ws.gourd(&["metrics", "show"]).success().stdout.contains("accuracy"));
    // Against a commit from before the pipeline (a project switching from
    // DVC): every param is new, not an error.
    let branch = ws.git(&["rev-parse", "--abbrev-ref", "HEAD"]).trim().to_string();
    ws.git(&["checkout", "-q", "--orphan", "before"]);
    ws.git(&["rm", "-rq", "--cached", "."]);
    ws.git(&["commit", "-q", "--allow-empty", "-m", "before gourd"]);
    ws.git(&["checkout", "-q", "-f", &branch]);
    let diff = ws.gourd(&["params", "diff", "before", "HEAD", "--json"]).success();
    assert!(
        diff.stderr.contains("`gourd.ncl` does not exist at revision `before`: no params there"),
        "{}",
        diff.stderr
    );
    let params = json(&diff.stdout);
    let rows = params["params"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["param"] == "lr" && r["a"].is_null() && r["b"] == 0.25), "{params}");
}

#[test]
fn markdown_report() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    ws.write("train.cfg", "cfg v2\n");
    ws.gourd(&["run"]).success();
    let report = ws.gourd(&["report", "--format", "md"]).success();
    insta::assert_snapshot!(report.normalized(&ws));
}

#[test]
fn report_compares_metrics_with_the_base_revision() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    let first = json(&ws.read("metrics.json"))["accuracy"].as_f64().unwrap();
    ws.write("train.cfg", "a longer configuration\n");
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-qam", "longer configuration"]);
    let second = json(&ws.read("metrics.json"))["accuracy"].as_f64().unwrap();
    assert_ne!(first, second);
    ws.write(
        "t/report.md.j2",
        "base={{ base }}\n{% for m in metrics %}{{ m.path }} {{ m.metric }} {{ m.value }} {{ m.base }} {{ m.change }}\n{% endfor %}",
    );
    let report = |extra: &[&str]| {
        let mut args = vec!["report", "--format", "md", "--template-dir", "t"];
        args.extend_from_slice(extra);
        ws.gourd(&args).success().stdout
    };
    // `base=REV`, then `path metric value base change` per metric.
    let rows = |text: &str| -> (String, Vec<String>) {
        let mut lines = text.lines();
        (lines.next().unwrap().to_string(), lines.next().unwrap().split(' ').map(String::from).collect())
    };
    let (base, row) = rows(&report(&["--base", "HEAD~1"]));
    assert_eq!(base, "base=HEAD\\~1", "a tilde is escaped: two would strike out what lies between");
    assert_eq!(row[..4], ["metrics.json", "accuracy", &second.to_string(), &first.to_string()]);
    assert_eq!(row[4].parse::<f64>().unwrap(), second - first);
    // By default the base is HEAD, whose metrics are those on disk.
    let (base, row) = rows(&report(&[]));
    assert_eq!(base, "base=HEAD");
    assert_eq!(row[..4], ["metrics.json", "accuracy", &second.to_string(), &second.to_string()]);
    assert_eq!(row[4].parse::<f64>().unwrap(), 0.0);
}

#[test]
fn html_report_holds_the_graph_metrics_and_plot() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    ws.write("train.cfg", "cfg v2\n");
    ws.gourd(&["run"]).success();
    ws.gourd(&["report", "-o", "report.html"]).success();
    let html = ws.read("report.html");
    assert!(html.contains(r#"<svg xmlns="http://www.w3.org/2000/svg" id="dag-svg""#));
    assert_eq!(html.matches(r#"<g class="node"#).count(), 4);
    assert!(html.contains(r#"<table id="metrics">"#));
    assert_eq!(html.matches("<circle").count(), 2, "one point per recorded run of the metric");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count(),
        "no network"
    );

    // Templates are data: a user's own directory replaces them.
    ws.write("my-templates/report.md.j2", "{% for s in stages %}{{ s.name }}={{ s.state }}\n{% endfor %}");
    let custom = ws.gourd(&["report", "--format", "md", "--template-dir", "my-templates"]).success();
    assert_eq!(custom.stdout, "prepare=fresh\nfeatures=fresh\ntrain=fresh\nevaluate=fresh\n");
    ws.write("my-templates/report.md.j2", "{% for s in stages %}");
    let run = ws.gourd(&["report", "--format", "md", "--template-dir", "my-templates"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("report.md.j2"), "{}", run.stderr);
}

#[test]
fn markdown_report_escapes_what_the_pipeline_holds() {
    let ws = TestWorkspace::new("");
    let weird = "odd|<i>folder";
    ws.write(
        &format!("{weird}/gourd.ncl"),
        r#"{ stages = {
          score = {
            cmd = "cp scores.src 'scores|v1.json'; cp scores.src 'model`x|<b>.bin'",
            deps = ["scores.src"],
            metrics = ["scores|v1.json"],
            outs = [{ path = "model`x|<b>.bin", kind = 'model }],
          },
        } }"#,
    );
    ws.write(
        &format!("{weird}/scores.src"),
        r#"{"<img src=x onerror=alert(1)>": 1, "a|b": "<script>alert(2)</script>", "ok": 0.5}"#,
    );
    ws.gourd(&["-C", weird, "run"]).success();
    let report = ws.gourd(&["-C", weird, "report", "--format", "md"]).success().stdout;
    // Inside a code span, `<b>` is text; anywhere else it is markup.
    for raw in ["<img", "<script", "<i>"] {
        assert!(!report.contains(raw), "`{raw}` got through:\n{report}");
    }
    let lines = |needle: &str| -> Vec<String> {
        report.lines().filter(|l| l.contains(needle)).map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(lines("## gourd report"), ["## gourd report: odd\\|&lt;i&gt;folder"]);
    assert_eq!(
        lines("scores\\|v1.json"),
        [
            "| `scores\\|v1.json` | &lt;img src=x onerror=alert(1)&gt; | 1 |",
            "| `scores\\|v1.json` | a\\|b | &lt;script&gt;alert(2)&lt;/script&gt; |",
            "| `scores\\|v1.json` | ok | 0.5 |",
        ]
    );
    assert_eq!(lines("from **score**").len(), 1, "{report}");
    assert!(lines("from **score**")[0].starts_with("- ``model`x|<b>.bin`` from **score**"), "{report}");
}

#[test]
fn outside_git_lineage_is_off_and_said_once() {
    let ws = TestWorkspace::bare();
    ws.write("gourd.ncl", r#"{ stages = { a = { cmd = "echo a > a", outs = ["a"] }, b = { cmd = "cp a b", deps = ["a"], outs = ["b"] } } }"#);
    let run = ws.gourd(&["run"]).success();
    assert_eq!(run.stderr.matches("lineage is off").count(), 1, "{}", run.stderr);
    assert_eq!(ws.gourd(&["lineage", "b"]).code, 1);
}

#[test]
fn push_and_pull_share_lineage_through_a_remote() {
    let remote = TestWorkspace::bare();
    remote.git(&["init", "-q", "--bare", "-b", "main"]);
    let remote_url = remote.root().display().to_string();

    let alice = workspace();
    alice.git(&["remote", "add", "origin", &remote_url]);
    alice.git(&["push", "-q", "origin", "main"]);
    alice.gourd(&["run"]).success();
    alice.gourd(&["push"]).success();

    let bob = TestWorkspace::bare();
    bob.git(&["clone", "-q", &remote_url, "."]);
    assert_eq!(bob.gourd(&["log", "--json"]).success().stdout.matches("\"stage\"").count(), 0);
    bob.gourd(&["pull"]).success();
    let log = json(&bob.gourd(&["log", "--json"]).success().stdout);
    assert_eq!(log["entries"].as_array().unwrap().len(), 4);

    // Both record runs; pulling merges the histories.
    bob.write("train.cfg", "bob's config\n");
    bob.gourd(&["run"]).success();
    alice.write("features.sh", "# alice's features\n");
    alice.gourd(&["run"]).success();
    alice.gourd(&["push"]).success();
    let rejected = bob.gourd(&["push"]);
    assert_eq!(rejected.code, 1);
    assert!(rejected.stderr.contains("gourd pull"), "{}", rejected.stderr);
    let pulled = bob.gourd(&["pull"]).success();
    assert!(pulled.stderr.contains("Merged"), "{}", pulled.stderr);
    bob.gourd(&["push"]).success();
    let merged = bob.git(&["log", "--format=%s", "refs/gourd/lineage"]);
    assert!(merged.starts_with("gourd pull: merge lineage"), "{merged}");
    assert_eq!(merged.lines().count(), 4, "{merged}");
}

#[test]
fn lineage_of_a_long_chain_says_where_it_is_cut() {
    // src → a0 → a1 → … → a99, each stage copying its input: deeper than
    // the 64 stages `gourd lineage` follows by default.
    let stages: String = (0..100)
        .map(|i| {
            let input = if i == 0 { "src".to_string() } else { format!("a{}", i - 1) };
            format!("    a{i} = {{ cmd = \"cp {input} a{i}\", deps = [\"{input}\"], outs = [\"a{i}\"] }},\n")
        })
        .collect();
    let ws = TestWorkspace::new(&format!("{{\n  stages = {{\n{stages}  }},\n}}\n"));
    ws.write("src", "chain\n");
    ws.gourd(&["run"]).success();

    let text = ws.gourd(&["lineage", "a99"]).success().stdout;
    assert!(!text.contains("shown above"), "nothing was shown above:\n{text}");
    let last = text.lines().last().unwrap().trim_start();
    assert!(last.starts_with("a34 "), "{last}");
    assert!(last.ends_with("<- stage `a34` (cut at depth 64; 34 more upstream stages, see `--depth`)"), "{last}");

    let full = ws.gourd(&["lineage", "a99", "--depth", "100"]).success().stdout;
    assert!(!full.contains("cut at depth") && !full.contains("shown above"), "{full}");
    assert!(full.lines().last().unwrap().trim_start().starts_with("src "), "{full}");
    assert_eq!(full.lines().filter(|l| l.contains("<- stage")).count(), 99);

    let out = json(&ws.gourd(&["lineage", "a99", "--json", "--depth", "10"]).success().stdout);
    let mut node = &out["upstream"][0];
    for _ in 0..10 {
        node = &node["upstream"][0];
    }
    assert_eq!(
        (&node["stage"], &node["cut"], &node["more_upstream"]),
        (&serde_json::json!("a88"), &serde_json::json!(true), &serde_json::json!(88))
    );
}

#[test]
fn log_of_a_stage_the_pipeline_does_not_have_is_an_error() {
    let ws = workspace();
    ws.gourd(&["run"]).success();
    let run = ws.gourd(&["log", "trian"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    insta::assert_snapshot!(run.normalized(&ws), @r"
    error: no stage is named `trian`

    hint: did you mean `train`?
    ");
    let far = ws.gourd(&["log", "nothing-like-it", "--json"]);
    assert_eq!(far.code, 1, "{}", far.stdout);
    assert_eq!(far.normalized(&ws), "error: no stage is named `nothing-like-it`\n");

    // A stage of the pipeline without history is not an error.
    ws.write("gourd.ncl", &PIPELINE.replace("  },\n}", "    later = { cmd = \"true\" },\n  },\n}"));
    let later = ws.gourd(&["log", "later"]).success();
    assert_eq!(later.stdout, "No lineage recorded yet.\n");
}

/// Two stages with metrics; only one re-runs at the second commit, and a
/// third commit runs nothing. Every commit still has both stages' values,
/// read back to the exact float each file held.
#[test]
fn metrics_at_a_commit_include_stages_that_were_up_to_date_there() {
    let pipeline = r#"{
  stages = {
    a = { cmd = "cat a.txt > a.json", deps = ["a.txt"], metrics = ["a.json"] },
    b = { cmd = "cat b.txt > b.json", deps = ["b.txt"], metrics = ["b.json"] },
  },
}
"#;
    let ws = TestWorkspace::new(pipeline);
    ws.write(".gitignore", ".gourd/\na.json\nb.json\n");
    // 0.9888475857414213 is one ULP away from what serde_json's fast parser returns.
    ws.write("a.txt", r#"{"accuracy": 0.9888475857414213}"#);
    ws.write("b.txt", r#"{"loss": 0.5}"#);
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "first"]);
    ws.gourd(&["run"]).success();
    ws.write("b.txt", r#"{"loss": 0.25}"#);
    ws.git(&["commit", "-qam", "b only"]);
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), common::expect(&[("a", "up-to-date"), ("b", "ran")]));
    ws.write("README", "notes\n");
    ws.git(&["add", "README"]);
    ws.git(&["commit", "-qm", "docs only"]);

    let diff = json(&ws.gourd(&["metrics", "diff", "HEAD~2", "HEAD~1", "--json", "--all"]).success().stdout);
    let rows = diff["metrics"].as_array().unwrap();
    let row = |metric: &str| rows.iter().find(|r| r["metric"] == metric).unwrap_or_else(|| panic!("{diff}"));
    assert_eq!(row("accuracy")["a"].as_f64(), Some(0.9888475857414213), "{diff}");
    assert_eq!(row("accuracy")["b"].as_f64(), Some(0.9888475857414213), "{diff}");
    assert_eq!(row("loss")["a"].as_f64(), Some(0.5), "{diff}");
    assert_eq!(row("loss")["b"].as_f64(), Some(0.25), "{diff}");
    let text = ws.gourd(&["metrics", "diff", "HEAD~2", "HEAD~1", "--all"]).success().stdout;
    assert!(text.contains("0.9888475857414213"), "{text}");
    assert!(!text.contains(" - "), "{text}");

    // HEAD ran nothing: its values are those in force since HEAD~1.
    let same = json(&ws.gourd(&["metrics", "diff", "HEAD~1", "HEAD", "--json", "--all"]).success().stdout);
    for row in same["metrics"].as_array().unwrap() {
        assert!(row["a"].is_number() && row["a"] == row["b"], "{same}");
    }
    let shown = json(&ws.gourd(&["metrics", "show", "--json"]).success().stdout);
    assert_eq!(shown["metrics"]["a.json"]["accuracy"].as_f64(), Some(0.9888475857414213));
}

/// The executor a record names is the stage's: a `'cuda` stage (on the
/// device `GOURD_GPUS` gives) is recorded as such, not as local.
#[test]
fn a_cuda_stage_is_recorded_with_its_executor() {
    let ws = TestWorkspace::new(
        "{ stages = { gpu = { cmd = \"echo $CUDA_VISIBLE_DEVICES > devices.txt\", executor = 'cuda, outs = [\"devices.txt\"] } } }",
    );
    ws.gourd_env(&["run"], &[("GOURD_GPUS", "0")]).success();
    assert_eq!(ws.read("devices.txt"), "0\n");
    let record = json(&ws.git(&["show", "refs/gourd/lineage:stages/gpu.json"]));
    assert_eq!(record["executor"], "cuda", "{record}");
}

/// A pipeline whose param `v` (and command) is set by `let bv = V`.
fn versioned(v: u32) -> String {
    format!(
        r#"let bv = {v} in
{{ stages = {{ train = {{ cmd = "echo %{{std.to_string bv}} > model.bin; echo '{{\"v\": %{{std.to_string bv}}}}' > m.json", params = {{ v = bv }}, outs = ["model.bin"], metrics = ["m.json"] }} }} }}
"#
    )
}

fn metric_v(ws: &TestWorkspace, a: &str, b: &str) -> (serde_json::Value, serde_json::Value) {
    let diff = json(&ws.gourd(&["metrics", "diff", a, b, "--json", "--all"]).success().stdout);
    let row = diff["metrics"].as_array().unwrap().iter().find(|r| r["metric"] == "v").cloned();
    let row = row.unwrap_or_else(|| panic!("{diff}"));
    (row["a"].clone(), row["b"].clone())
}

/// Which run's results are in force at a commit is checked against the
/// pipeline there: two branches run and committed within a second, and an
/// amended commit, each have their own values, and `gc -a` keeps each
/// branch's result.
#[test]
fn the_results_at_a_commit_are_those_of_its_pipeline() {
    let ws = TestWorkspace::new(&versioned(1));
    ws.write(".gitignore", ".gourd/\nmodel.bin\nm.json\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "base"]);
    ws.git(&["checkout", "-qb", "b1"]);
    ws.write("gourd.ncl", &versioned(5));
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-qam", "b1"]);
    ws.git(&["checkout", "-q", "main"]);
    ws.git(&["checkout", "-qb", "b2"]);
    ws.write("gourd.ncl", &versioned(7));
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-qam", "b2"]);
    assert_eq!(metric_v(&ws, "b1", "b2"), (serde_json::json!(5), serde_json::json!(7)));

    // An amended commit: its values are the amended pipeline's.
    ws.write("gourd.ncl", &versioned(8));
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-qam", "b2 next"]);
    ws.write("gourd.ncl", &versioned(9));
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-q", "--amend", "-am", "b2 next, amended"]);
    assert_eq!(metric_v(&ws, "HEAD~1", "HEAD"), (serde_json::json!(7), serde_json::json!(9)));

    // Each branch's result stays through `gc -a`, and is restored there.
    ws.gourd(&["gc", "-a"]).success();
    ws.git(&["checkout", "-q", "b1"]);
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), common::expect(&[("train", "restored")]), "{}", run.stdout);
    assert_eq!(ws.read("model.bin"), "5\n");
}

/// A run made before the first commit is in force there: `gc -A` keeps it,
/// as `gc -T` does.
#[test]
fn gc_all_commits_keeps_the_run_made_before_the_first_commit() {
    let ws = TestWorkspace::new(&versioned(1));
    ws.write(".gitignore", ".gourd/\nmodel.bin\nm.json\n");
    ws.gourd(&["run"]).success();
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "v1"]);
    for v in [2, 3] {
        ws.write("gourd.ncl", &versioned(v));
        ws.gourd(&["run"]).success();
        ws.git(&["commit", "-qam", &format!("v{v}")]);
    }
    ws.gourd(&["gc", "-A"]).success();
    ws.git(&["checkout", "-q", "HEAD~2"]);
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), common::expect(&[("train", "restored")]), "{}", run.stdout);
    assert_eq!(ws.read("model.bin"), "1\n");
}

/// A built-in step's record holds its configuration among its params: the
/// check against the pipeline at a commit takes them so (a drift step's
/// metrics stay known at every commit).
#[test]
fn a_steps_metrics_are_known_at_each_commit() {
    let ws = TestWorkspace::new(
        "let gourd = import \"gourd-std.ncl\" in\n{ stages = { drift = gourd.steps.drift { reference = \"ref.csv\", current = \"cur.csv\", output = \"drift.json\" } } }\n",
    );
    ws.write("ref.csv", "age\n1\n2\n3\n4\n5\n");
    ws.write("cur.csv", "age\n1\n2\n3\n4\n9\n");
    ws.write(".gitignore", ".gourd/\ndrift.json\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "a"]);
    ws.gourd(&["run"]).success();
    ws.write("cur.csv", "age\n50\n60\n70\n80\n90\n");
    ws.git(&["commit", "-qam", "b"]);
    ws.gourd(&["run"]).success();
    let diff = json(&ws.gourd(&["metrics", "diff", "HEAD~1", "HEAD", "--json", "--all"]).success().stdout);
    let rows = diff["metrics"].as_array().unwrap();
    let drift = rows.iter().find(|r| r["metric"] == "drift").unwrap_or_else(|| panic!("{diff}"));
    assert_eq!((drift["a"].clone(), drift["b"].clone()), (serde_json::json!(false), serde_json::json!(true)), "{diff}");
}

/// A run at a commit that ran one stage (`gourd run a`) vouches for that
/// stage's record only: another stage's latest record, of an earlier
/// commit's pipeline, is checked against the commit's.
#[test]
fn a_partial_run_at_a_commit_vouches_for_its_own_stages_only() {
    let pipeline = |a: u32, b: u32| {
        format!(
            "{{ stages = {{ a = {{ cmd = \"echo '{{\\\"ma\\\": {a}}}' > ma.json\", metrics = [\"ma.json\"] }}, b = {{ cmd = \"echo '{{\\\"mb\\\": {b}}}' > mb.json\", metrics = [\"mb.json\"] }} }} }}\n"
        )
    };
    let ws = TestWorkspace::new(&pipeline(1, 1));
    ws.write(".gitignore", ".gourd/\nma.json\nmb.json\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "c1"]);
    ws.gourd(&["run"]).success();
    ws.write("gourd.ncl", &pipeline(1, 2));
    ws.git(&["commit", "-qam", "c2"]);
    ws.gourd(&["run"]).success();
    // Back to b's first command, a changed, and only a run.
    ws.write("gourd.ncl", &pipeline(3, 1));
    ws.git(&["commit", "-qam", "c3"]);
    ws.gourd(&["run", "a"]).success();
    let diff = json(&ws.gourd(&["metrics", "diff", "HEAD~2", "HEAD", "--json", "--all"]).success().stdout);
    let rows = diff["metrics"].as_array().unwrap();
    let value = |metric: &str| {
        let row = rows.iter().find(|r| r["metric"] == metric).unwrap_or_else(|| panic!("{diff}"));
        (row["a"].clone(), row["b"].clone())
    };
    assert_eq!(value("ma"), (serde_json::json!(1), serde_json::json!(3)), "{diff}");
    assert_eq!(value("mb"), (serde_json::json!(1), serde_json::json!(1)), "{diff}");
}

/// The check against a commit takes the dep files it holds too: a record of
/// the same command on another branch's data is not the commit's.
#[test]
fn the_results_at_a_commit_are_those_of_its_committed_data() {
    let pipeline = |a: u32| {
        format!(
            "{{ stages = {{ a = {{ cmd = \"echo '{{\\\"ma\\\": {a}}}' > ma.json\", metrics = [\"ma.json\"] }}, b = {{ cmd = \"cat data.txt > mb.json\", deps = [\"data.txt\"], metrics = [\"mb.json\"] }} }} }}\n"
        )
    };
    let ws = TestWorkspace::new(&pipeline(1));
    ws.write(".gitignore", ".gourd/\nma.json\nmb.json\n");
    ws.write("data.txt", "{\"mb\": 1}\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "c1"]);
    ws.gourd(&["run"]).success();
    ws.git(&["checkout", "-qb", "feat"]);
    ws.write("data.txt", "{\"mb\": 2}\n");
    ws.git(&["commit", "-qam", "f1"]);
    ws.gourd(&["run"]).success();
    ws.git(&["checkout", "-q", "main"]);
    ws.write("gourd.ncl", &pipeline(3));
    ws.git(&["commit", "-qam", "c2"]);
    ws.gourd(&["run", "a"]).success();
    let diff = json(&ws.gourd(&["metrics", "diff", "main~1", "main", "--json", "--all"]).success().stdout);
    let rows = diff["metrics"].as_array().unwrap();
    let row = rows.iter().find(|r| r["metric"] == "mb").unwrap_or_else(|| panic!("{diff}"));
    assert_eq!((row["a"].clone(), row["b"].clone()), (serde_json::json!(1), serde_json::json!(1)), "{diff}");
    // `gc -a` keeps main's result for `b`: back on main, it is restored.
    ws.git(&["checkout", "-q", "--", ".gitignore"]);
    ws.git(&["checkout", "-q", "feat"]);
    ws.gourd(&["run"]).success();
    ws.gourd(&["gc", "-a"]).success();
    ws.git(&["checkout", "-q", "main"]);
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["b"], "restored", "{}", run.stdout);
}
