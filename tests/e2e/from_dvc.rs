//! A DVC project, written for this test (tests/e2e/dvc_project: params.yaml,
//! four shell stages with `foreach`, `wdir`, metrics and plots, a frozen
//! stage, a `dvc add`ed file and a folder remote in `.dvc/config`), converted
//! with `gourd import-dvc` and then used as a DVC user would: run, change a
//! param, compare runs and metrics, and restore everything in a fresh clone.

mod common;

use common::{TestWorkspace, expect};

const PROJECT: &[(&str, &str)] = &[
    ("dvc.yaml", include_str!("dvc_project/dvc.yaml")),
    ("params.yaml", include_str!("dvc_project/params.yaml")),
    ("data/data.xml", include_str!("dvc_project/data/data.xml")),
    ("data/data.xml.dvc", include_str!("dvc_project/data/data.xml.dvc")),
    ("src/prepare.sh", include_str!("dvc_project/src/prepare.sh")),
    ("src/featurize.sh", include_str!("dvc_project/src/featurize.sh")),
    ("src/train.sh", include_str!("dvc_project/src/train.sh")),
    ("src/evaluate.sh", include_str!("dvc_project/src/evaluate.sh")),
];

/// The DVC project in a fresh git repository, its DVC remote at `storage`.
fn dvc_project(storage: &std::path::Path) -> TestWorkspace {
    let ws = TestWorkspace::bare();
    ws.git(&["init", "-q", "-b", "main"]);
    ws.git(&["config", "user.email", "test@example.com"]);
    ws.git(&["config", "user.name", "Test"]);
    for (path, text) in PROJECT {
        ws.write(path, text);
    }
    ws.write(
        ".dvc/config",
        &format!("[core]\n    remote = storage\n['remote \"storage\"']\n    url = {}\n", storage.display()),
    );
    ws
}

fn accuracy(ws: &TestWorkspace) -> f64 {
    let metrics: serde_json::Value = serde_json::from_str(&ws.read("eval/metrics.json")).unwrap();
    metrics["accuracy"].as_f64().unwrap()
}

#[test]
fn a_dvc_project_converts_runs_experiments_and_restores_in_a_clone() {
    let storage = tempfile::tempdir().unwrap();
    let ws = dvc_project(storage.path());

    // Convert: every stage, with a note for what has no equivalent.
    let import = ws.gourd(&["import-dvc"]).success();
    let pipeline = ws.read("gourd.ncl");
    assert!(pipeline.starts_with("# Converted from `dvc.yaml` by `gourd import-dvc`."), "{pipeline}");
    for expected in [
        "featurize-en = {",
        "featurize-fr = {",
        r#"wdir = "src","#,
        r#"deps = ["src/featurize.sh", "data/prepared"],"#,
        r#"outs = ["data/features/fr"],"#,
        "sh src/train.sh data/features model.txt $GOURD_PARAM_TRAIN_N_EST",
        r#"params = gourd.params params_yaml ["train"],"#,
        r#"metrics = ["eval/metrics.json"],"#,
        "frozen = true,",
        &format!("remote = {{ kind = 'folder, path = \"{}\" }},", storage.path().display()),
        "#   data/data.xml  (from data/data.xml.dvc)",
        r#"plots = [{ path = "eval/prc.json", x = "recall", y = "precision" }],"#,
        "      Precision-Recall = {\n        template = \"simple\",",
        r#"y = { "eval/prc.json" = "precision" },"#,
    ] {
        assert!(pipeline.contains(expected), "`{expected}` in:\n{pipeline}");
    }
    for expected in ["`cache: false` dropped", "6 stage(s), 1 tracked source(s)"] {
        assert!(import.stderr.contains(expected), "`{expected}` in:\n{}", import.stderr);
    }

    // An existing pipeline stays unless --force.
    let again = ws.gourd(&["import-dvc"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("`gourd.ncl` exists") && again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(ws.read("gourd.ncl"), pipeline);
    ws.gourd(&["import-dvc", "--force"]).success();
    // The `dvc add`ed file is a tracked source: recorded for git, the data ignored.
    let sources: serde_json::Value = serde_json::from_str(&ws.read("gourd.sources.json")).unwrap();
    assert_eq!(sources["sources"]["data/data.xml"]["kind"], "file", "{sources}");
    assert!(ws.read(".gitignore").lines().any(|l| l == "/data/data.xml"), "{}", ws.read(".gitignore"));

    ws.gourd(&["check"]).success();
    let first = ws.run_json(&[]).success();
    assert_eq!(
        first.statuses(),
        expect(&[
            ("prepare", "ran"),
            ("featurize-en", "ran"),
            ("featurize-fr", "ran"),
            ("train", "ran"),
            ("evaluate", "ran"),
            ("baseline", "ran")
        ])
    );
    // `wdir` stages ran in src/ and wrote where their workspace paths say.
    assert!(ws.exists("data/features/en/features.txt") && ws.exists("data/features/fr/features.txt"));
    assert_eq!(ws.read("model.txt").lines().next().unwrap().split(' ').next(), Some("n_est=50"));
    assert_eq!(accuracy(&ws), 0.9804);
    // DVC's plots, drawn: the stage's and the top-level one.
    let page = ws.gourd(&["plots", "show"]).success();
    let html = std::fs::read_to_string(page.stdout.trim()).unwrap();
    assert!(html.contains("<svg") && html.contains("Precision-Recall") && html.contains("eval/prc.json"), "{html}");
    ws.git(&["add", "."]);
    ws.git(&["commit", "-q", "-m", "converted from DVC"]);

    // A param changed in params.yaml re-runs only the stages that take it.
    ws.write("params.yaml", &ws.read("params.yaml").replace("n_est: 50", "n_est: 200"));
    let changed = ws.run_json(&[]).success();
    assert_eq!(changed.statuses()["prepare"], "up-to-date");
    assert_eq!(changed.statuses()["featurize-en"], "up-to-date");
    assert_eq!(changed.statuses()["baseline"], "up-to-date");
    assert_eq!(changed.statuses()["train"], "ran");
    assert_eq!(accuracy(&ws), 0.995);
    ws.git(&["commit", "-q", "-am", "more estimators"]);
    let diff = ws.gourd(&["metrics", "diff", "HEAD~1", "HEAD", "--json"]).success();
    let diff: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    let text = diff.to_string();
    assert!(text.contains("accuracy") && text.contains("0.9804") && text.contains("0.995"), "{text}");

    // An experiment: `dvc exp run -S train.n_est=100`.
    let experiment = ws.run_json(&["--set", "train.n_est=100"]).success();
    assert_eq!(experiment.statuses()["train"], "ran");
    assert_eq!(accuracy(&ws), 0.9901);
    let shown = ws.gourd(&["exp", "show", "--json"]).success();
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let runs: Vec<(f64, f64)> = shown["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|run| {
            let values = &run["values"];
            Some((values["train:train.n_est"].as_f64()?, values["eval/metrics.json:accuracy"].as_f64()?))
        })
        .collect();
    assert_eq!(runs, [(100.0, 0.9901), (200.0, 0.995), (50.0, 0.9804)], "{shown}");

    // As `dvc exp run -S`, the value is written into params.yaml; checking
    // the file out again brings back the committed run's results.
    assert!(ws.read("params.yaml").contains("n_est: 100"), "{}", ws.read("params.yaml"));
    ws.git(&["checkout", "params.yaml"]);
    let back = ws.run_json(&[]).success();
    assert_eq!(back.statuses()["train"], "restored", "{}", back.stdout);
    assert_eq!(accuracy(&ws), 0.995);

    // A teammate's fresh clone gets the data and every output from the
    // folder remote, running nothing.
    let origin = tempfile::tempdir().unwrap();
    let bare = origin.path().join("project.git");
    ws.git(&["init", "-q", "-b", "main", "--bare", bare.to_str().unwrap()]);
    ws.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    ws.git(&["push", "-q", "origin", "main"]);
    ws.gourd(&["push"]).success();

    let clone = TestWorkspace::clone_of(&bare);
    clone.git(&["config", "user.email", "mate@example.com"]);
    clone.git(&["config", "user.name", "Mate"]);
    assert!(!clone.exists("model.txt") && !clone.exists("data/data.xml"));
    clone.gourd(&["pull"]).success();
    let restored = clone.run_json(&[]).success();
    assert!(
        restored.statuses().values().all(|s| s == "restored" || s == "up-to-date"),
        "{:?}\n{}",
        restored.statuses(),
        restored.stderr
    );
    for path in [
        "data/data.xml",
        "model.txt",
        "eval/metrics.json",
        "eval/prc.json",
        "data/features/en/features.txt",
        "baseline.txt",
    ] {
        assert_eq!(clone.read(path), ws.read(path), "{path}");
    }
    let diff = clone.gourd(&["metrics", "diff", "HEAD~1", "HEAD", "--json"]).success();
    assert!(diff.stdout.contains("0.9804") && diff.stdout.contains("0.995"), "{}", diff.stdout);
    let page = clone.gourd(&["plots", "diff", "HEAD~1", "HEAD"]).success();
    let html = std::fs::read_to_string(page.stdout.trim()).unwrap();
    assert!(html.contains("<svg") && html.contains("Precision-Recall"), "{html}");
}

#[test]
fn a_dvc_yaml_that_is_not_yaml_is_named_with_its_line() {
    let ws = TestWorkspace::bare();
    ws.write("dvc.yaml", "stages:\n  train:\n    cmd: [python train.py\n    deps: x\n");
    let run = ws.gourd(&["import-dvc"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("`dvc.yaml` at line "), "{}", run.stderr);
    assert!(!ws.exists("gourd.ncl"));

    let missing = ws.gourd(&["import-dvc", "other/dvc.yaml"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(missing.stderr.contains("cannot read `other/dvc.yaml`"), "{}", missing.stderr);

    ws.write("dvc.yaml", "- just\n- a list\n");
    let list = ws.gourd(&["import-dvc"]);
    assert_eq!(list.code, 1, "{}", list.stderr);
    assert!(list.stderr.contains("`dvc.yaml`: the file is not a YAML mapping"), "{}", list.stderr);
}

#[test]
fn a_pipeline_file_that_is_a_link_is_never_written_through() {
    let ws = TestWorkspace::bare();
    ws.write("dvc.yaml", "stages:\n  prepare:\n    cmd: echo hi > out.txt\n    outs:\n      - out.txt\n");
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::os::unix::fs::symlink(&victim, ws.path("gourd.ncl")).unwrap();
    let run = ws.gourd(&["import-dvc"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("`gourd.ncl` exists"), "{}", run.stderr);
    assert!(!victim.exists(), "written through a dangling link");
    // `--force` replaces the link, not what it points to.
    std::fs::write(&victim, "keep").unwrap();
    ws.gourd(&["import-dvc", "--force"]).success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(!std::fs::symlink_metadata(ws.path("gourd.ncl")).unwrap().file_type().is_symlink());
    assert!(ws.read("gourd.ncl").contains("prepare"));
    // Nor is a pipe (or a device: `-o /dev/null` as root) replaced by a file.
    assert!(std::process::Command::new("mkfifo").arg(ws.path("pipe")).status().unwrap().success());
    let pipe = ws.gourd(&["import-dvc", "-o", "pipe", "--force"]);
    assert_eq!(pipe.code, 1, "{}", pipe.stderr);
    assert!(pipe.stderr.contains("is not a regular file"), "{}", pipe.stderr);
    assert!(!std::fs::symlink_metadata(ws.path("pipe")).unwrap().is_file());
}

#[test]
fn what_has_no_equivalent_is_noted_and_the_rest_still_checks() {
    let ws = TestWorkspace::bare();
    ws.write("params.yaml", "lr: 0.1\n");
    ws.write(
        "dvc.yaml",
        "stages:\n  fetch:\n    cmd: curl -o raw.csv https://example.com/raw.csv\n    deps: [s3://bucket/raw.csv]\n    outs: [raw.csv]\n    meta: {owner: ml}\n    params: [lr, missing]\n  weird:\n    cmd: echo ${nothing} > w.txt\n    outs: [w.txt]\n",
    );
    ws.write(
        "imported.csv.dvc",
        "deps:\n- path: data/raw.csv\n  repo:\n    url: https://github.com/acme/data\n    rev_lock: 0a1b2c\nouts:\n- path: imported.csv\n",
    );
    ws.write("ext/table.tsv.dvc", "deps:\n- path: https://example.com/table.tsv\nouts:\n- path: table.tsv\n");
    ws.write("ext/table.tsv", "a\tb\n");
    ws.write("nested/dvc.yaml", "stages: {}\n");
    let run = ws.gourd(&["import-dvc", "-o", "pipeline.ncl"]).success();
    for expected in [
        "stage `fetch`: `deps`: `s3://bucket/raw.csv` is outside the workspace",
        "stage `fetch`: `meta`",
        "`nested/dvc.yaml`: a pipeline of its own, not converted",
        "stage `fetch`: `params`: `params.yaml` has no key `missing`",
        "stage `weird`: `cmd`: `${nothing}` names no value",
        "`imported.csv` (from `imported.csv.dvc`) is not here: `gourd import https://github.com/acme/data data/raw.csv -o imported.csv --rev 0a1b2c`",
    ] {
        assert!(run.stderr.contains(expected), "`{expected}` in:\n{}", run.stderr);
    }
    ws.gourd(&["--file", "pipeline.ncl", "check"]).success();
    // A pipeline written away from dvc.yaml would read its paths elsewhere: said.
    std::fs::create_dir_all(ws.path("sub")).unwrap();
    let elsewhere = ws.gourd(&["import-dvc", "-o", "sub/pipeline.ncl"]).success();
    assert!(elsewhere.stderr.contains("`sub/pipeline.ncl` is not beside `dvc.yaml`"), "{}", elsewhere.stderr);
    // An import that is here is a tracked source with its origin.
    let sources: serde_json::Value = serde_json::from_str(&ws.read("gourd.sources.json")).unwrap();
    assert_eq!(sources["sources"]["ext/table.tsv"]["origin"], "https://example.com/table.tsv", "{sources}");
}
