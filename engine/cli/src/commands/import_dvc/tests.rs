use std::collections::BTreeMap;

use super::convert::{self, Files, Out, Pipeline};
use super::render;

struct Memory(BTreeMap<&'static str, &'static str>);

impl Files for Memory {
    fn read(&self, path: &str) -> Option<String> {
        self.0.get(path).map(|s| s.to_string())
    }
}

const PARAMS: &str = "train:\n  lr: 0.1\n  epochs: 5\nprepare:\n  split: 0.2\nmodels: [cnn, xgb]\n";

fn convert(yaml: &str) -> Pipeline {
    let files = Memory(BTreeMap::from([("params.yaml", PARAMS), ("src/params.yaml", "seed: 7\n")]));
    convert::convert(&serde_yaml::from_str(yaml).unwrap(), &files).unwrap()
}

fn names(p: &Pipeline) -> Vec<(&str, &str)> {
    p.stages.iter().map(|s| (s.dvc_name.as_str(), s.name.as_str())).collect()
}

#[test]
fn foreach_lists_and_dicts_expand_to_one_stage_per_item() {
    let p = convert(
        r#"stages:
  clean:
    foreach: [us, uk]
    do:
      cmd: clean ${item}
      outs: ["out/${item}.csv"]
  build:
    foreach:
      - {os: win, v: 3}
      - {os: mac, v: 4}
    do:
      cmd: build ${item.os} ${item.v}
      outs: ["bin/${item.os}"]
  fetch:
    foreach:
      small: {rows: 10}
      big: {rows: 1000}
    do:
      cmd: fetch ${key} ${item.rows}
      desc: per size ${key}
      outs: ["raw/${key}"]
"#,
    );
    assert_eq!(
        names(&p),
        [
            ("clean@us", "clean-us"),
            ("clean@uk", "clean-uk"),
            ("build@0", "build-0"),
            ("build@1", "build-1"),
            ("fetch@small", "fetch-small"),
            ("fetch@big", "fetch-big")
        ]
    );
    assert_eq!(p.stages[1].cmd, "clean uk");
    assert_eq!(p.stages[1].outs, [Out { path: "out/uk.csv".into(), cache: true, persist: false, model: false }]);
    assert_eq!(p.stages[3].cmd, "build mac 4");
    assert_eq!(p.stages[5].cmd, "fetch big 1000");
    assert_eq!(p.stages[5].desc.as_deref(), Some("per size big"), "a description is interpolated too");
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn matrix_expands_every_combination_and_foreach_reads_params() {
    let p = convert(
        r#"stages:
  train:
    matrix:
      model: ${models}
      lr: [0.1, 0.01]
    cmd: train ${item.model} ${item.lr}
    outs: ["models/${item.model}-${item.lr}"]
  eval:
    foreach: ${models}
    do:
      cmd: eval ${item}
"#,
    );
    assert_eq!(
        names(&p).iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        ["train-cnn-0.1", "train-cnn-0.01", "train-xgb-0.1", "train-xgb-0.01", "eval-cnn", "eval-xgb"]
    );
    assert_eq!(p.stages[2].cmd, "train xgb 0.1");
    assert_eq!(p.stages[2].outs[0].path, "models/xgb-0.1");
}

#[test]
fn paths_under_wdir_become_workspace_paths() {
    let p = convert(
        r#"stages:
  train:
    wdir: src
    cmd: python train.py ../data/x
    deps: [train.py, ../data/x, ./lib/]
    params: [seed]
    outs: [{../models/m.pkl: {cache: false}}, {../logs: {persist: true}}]
    metrics: [../eval/m.json]
  bad:
    cmd: x
    deps: [../../outside, s3://bucket/key]
"#,
    );
    let s = &p.stages[0];
    assert_eq!(s.wdir.as_deref(), Some("src"));
    assert_eq!(s.deps, ["src/train.py", "data/x", "src/lib"]);
    assert_eq!(
        s.outs,
        [
            Out { path: "models/m.pkl".into(), cache: false, persist: false, model: false },
            Out { path: "logs".into(), cache: true, persist: true, model: false }
        ]
    );
    assert_eq!(s.metrics, ["eval/m.json"]);
    assert_eq!(s.params, [("src/params.yaml".to_string(), Some(vec!["seed".to_string()]))]);
    assert_eq!(s.cmd, "python train.py ../data/x", "the command runs in wdir, as it is");
    assert!(p.stages[1].deps.is_empty());
    assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
    assert!(p.notes[0].contains("`../../outside` is outside the workspace"), "{:?}", p.notes);
}

#[test]
fn params_in_commands_become_variables_and_vars_become_text() {
    let p = convert(
        r#"vars:
  - out: models
stages:
  train:
    vars: [{tag: v2}]
    cmd:
      - python train.py --lr ${train.lr} --epochs ${train.epochs}x
      - echo '${prepare.split}' > ${out}/${tag}.txt
    params: [train]
    outs: ["${out}"]
  odd:
    cmd: echo ${train} ${nothing}
"#,
    );
    let s = &p.stages[0];
    assert_eq!(
        s.cmd,
        format!(
            "{} && {}",
            in_sh("python train.py --lr $GOURD_PARAM_TRAIN_LR --epochs ${GOURD_PARAM_TRAIN_EPOCHS}x"),
            in_sh("echo ''\"$GOURD_PARAM_PREPARE_SPLIT\"'' > models/v2.txt")
        )
    );
    // `train` covers `train.lr`; `prepare.split` is added, as DVC tracks the values it interpolates.
    assert_eq!(s.params, [("params.yaml".to_string(), Some(vec!["train".to_string(), "prepare.split".to_string()]))]);
    assert_eq!(s.outs[0].path, "models");
    assert_eq!(p.stages[1].cmd, "echo ${train} ${nothing}");
    assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
}

#[test]
fn fields_map_and_the_untranslatable_is_noted() {
    let p = convert(
        r#"stages:
  eval:
    cmd: eval
    desc: Evaluates
    frozen: true
    always_changed: true
    params: [missing.key, {custom.py: [x]}]
    outs: [eval]
    plots: [{eval/roc.json: {x: fpr, y: tpr}}]
    meta: {owner: me}
metrics: [eval/metrics.json]
plots:
  - ROC: {x: fpr, y: {eval/roc.json: tpr}}
artifacts: {m: {path: model.pkl, type: model, desc: best}}
"#,
    );
    let s = &p.stages[0];
    assert!(s.frozen && s.always_run);
    assert_eq!(s.desc.as_deref(), Some("Evaluates"));
    assert!(s.params.is_empty());
    assert_eq!(s.metrics, ["eval/metrics.json"], "a top-level metrics file goes to the stage writing it");
    assert_eq!(s.outs.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(), ["eval"]);
    assert_eq!(s.plots.len(), 1);
    assert_eq!(p.plots.len(), 1);
    assert_eq!(p.registry, [("m".to_string(), "model.pkl".to_string())]);
    let notes = p.notes.join("\n");
    for expected in [
        "no key `missing.key`",
        "`custom.py` is not YAML",
        "`meta`",
        "artifact `m`: `desc: \"best\"` has no registry field",
        "artifact `m`: `model.pkl` is no stage's output",
    ] {
        assert!(notes.contains(expected), "{expected} in {notes}");
    }
}

#[test]
fn rendered_strings_and_names_are_valid_nickel() {
    assert_eq!(render::string("echo \"%{x}\" \\ 100%"), r#""echo \"\%{x}\" \\ 100%""#);
    assert_eq!(render::field("train-us"), "train-us");
    assert_eq!(render::field("train-0.1"), "\"train-0.1\"");
    assert_eq!(render::field("import"), "\"import\"");
    assert_eq!(convert::stage_name("train@a b"), "train-a_b");
}

#[test]
fn plots_keep_dvc_fields_with_paths_under_wdir() {
    let p = convert(
        r#"stages:
  eval:
    wdir: src
    cmd: eval
    plots:
      - ../eval/roc.json: {x: fpr, y: tpr, template: simple, cache: false}
      - ../eval/cm.csv: {template: .dvc/plots/mine.json, persist: true}
      - ../eval/importance.png
plots:
  - eval/importance.png
  - ROC:
      x: fpr
      y: {eval/roc.json: tpr}
      title: ROC
"#,
    );
    let plots = &p.stages[0].plots;
    assert_eq!(
        plots.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        ["eval/roc.json", "eval/cm.csv", "eval/importance.png"]
    );
    assert!(!plots[0].cache && plots[1].cache);
    assert_eq!(plots[0].props.len(), 3);
    assert!(plots[1].props.is_empty(), "the custom template and persist are left out");
    let notes = p.notes.join("\n");
    assert!(notes.contains("template `.dvc/plots/mine.json` is not one gourd draws"), "{notes}");
    assert!(notes.contains("`persist: true` has no gourd equivalent"), "{notes}");
    let rendered = render::render(&p, &render::Extras { source: "dvc.yaml", remote: None, sources: &[] });
    assert!(
        rendered.contains(r#"{ path = "eval/roc.json", x = "fpr", y = "tpr", template = "simple", cache = false }"#),
        "{rendered}"
    );
    assert!(
        rendered.contains(r#"{ ROC = { x = "fpr", y = { "eval/roc.json" = "tpr" }, title = "ROC" } },"#),
        "{rendered}"
    );
}

/// A `matrix` is counted before it is expanded: eight lists of ten would be
/// 10^8 stages, and gigabytes before anything is written.
#[test]
fn a_matrix_too_large_to_import_is_skipped_with_a_note() {
    let ten = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    let dimensions: String = "abcdefgh".chars().map(|d| format!("      {d}: {ten}\n")).collect();
    let p = convert(&format!(
        "stages:\n  big:\n    matrix:\n{dimensions}    cmd: echo ${{item.a}}\n  small:\n    cmd: echo hi\n"
    ));
    assert_eq!(names(&p), [("small", "small")]);
    assert!(
        p.notes.iter().any(|n| n.contains(
            "stage `big`: `matrix` makes 100000000 stages, more than the 10000 gourd imports from one; skipped"
        )),
        "{:?}",
        p.notes
    );
    // At the limit, every stage.
    let p = convert(&format!(
        "stages:\n  edge:\n    matrix:\n{}    cmd: echo ${{item.a}}\n",
        "abcd".chars().map(|d| format!("      {d}: {ten}\n")).collect::<String>()
    ));
    assert_eq!(p.stages.len(), 10_000);
}

/// `vars` naming a file outside the workspace is not read: its values (a
/// secret, say) would be written into `gourd.ncl`.
#[test]
fn vars_files_outside_the_workspace_are_not_read() {
    struct Everywhere;
    impl Files for Everywhere {
        fn read(&self, path: &str) -> Option<String> {
            (path != "params.yaml").then(|| format!("leak: read {path}\n"))
        }
    }
    for file in ["/etc/secret.yaml", "../secret.yaml", "sub/../../secret.yaml"] {
        let yaml = format!("vars: [{file}]\nstages:\n  s:\n    cmd: echo ${{leak}}\n");
        let p = convert::convert(&serde_yaml::from_str(&yaml).unwrap(), &Everywhere).unwrap();
        assert_eq!(p.stages[0].cmd, "echo ${leak}", "{file}");
        assert!(
            p.notes.iter().any(|n| n.contains(&format!("`{file}` is outside the workspace; not read"))),
            "{file}: {:?}",
            p.notes
        );
    }
    let p = convert::convert(
        &serde_yaml::from_str("vars: [ok.yaml]\nstages:\n  s:\n    cmd: echo ${leak}\n").unwrap(),
        &Everywhere,
    )
    .unwrap();
    assert_eq!(p.stages[0].cmd, "echo read ok.yaml");
}

/// `gourd check` refuses outputs and deps in `.git` or `.gourd`; the import
/// leaves them out and says so, rather than write a pipeline that fails.
#[test]
fn paths_in_git_or_gourd_are_left_out_with_a_note() {
    let p =
        convert("stages:\n  s:\n    cmd: echo\n    deps: [.git/HEAD, data]\n    outs: [.git, sub/../.gourd/x, out]\n");
    let s = &p.stages[0];
    assert_eq!(s.deps, ["data"]);
    assert_eq!(s.outs.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(), ["out"]);
    for path in [".git/HEAD", ".git", "sub/../.gourd/x"] {
        assert!(p.notes.iter().any(|n| n.contains(&format!("`{path}` is in `"))), "{path}: {:?}", p.notes);
    }
}

#[test]
fn an_artifacts_path_is_a_model_output() {
    let p = convert(
        r#"stages:
  train:
    cmd: python train.py
    outs: [model.pkl, {report.txt: {cache: false}}]
artifacts: {clf: {path: model.pkl, type: model}}
"#,
    );
    let outs = &p.stages[0].outs;
    assert!(outs[0].model && !outs[1].model, "{outs:?}");
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    let rendered = render::render(&p, &render::Extras { source: "dvc.yaml", remote: None, sources: &[] });
    assert!(rendered.contains(r#"{ path = "model.pkl", kind = 'model },"#), "{rendered}");
    assert!(rendered.contains(r#"{ path = "report.txt", cache = false },"#), "{rendered}");
    assert!(rendered.contains(r#"clf = { path = "model.pkl" }"#), "{rendered}");
}

/// A stage in `wdir: src` tracks `train.lr` of `src/params.yaml` while its
/// command interpolates `train.lr` of the root params.yaml, as DVC does:
/// both in its params would not merge, so the interpolated value is
/// written into the command.
#[test]
fn an_interpolated_key_the_stage_tracks_in_another_file_is_written_in() {
    let files = Memory(BTreeMap::from([
        ("params.yaml", "train:\n  lr: 0.1\n  epochs: 5\n"),
        ("src/params.yaml", "train:\n  lr: 0.7\n"),
    ]));
    let yaml = r#"stages:
  train:
    wdir: src
    params: [train.lr]
    cmd: python train.py --lr ${train.lr} --epochs ${train.epochs}
    outs: [model.txt]
"#;
    let p = convert::convert(&serde_yaml::from_str(yaml).unwrap(), &files).unwrap();
    let s = &p.stages[0];
    assert_eq!(s.cmd, "python train.py --lr 0.1 --epochs $GOURD_PARAM_TRAIN_EPOCHS");
    assert_eq!(
        s.params,
        [
            ("params.yaml".to_string(), Some(vec!["train.epochs".to_string()])),
            ("src/params.yaml".to_string(), Some(vec!["train.lr".to_string()]))
        ]
    );
    let notes = p.notes.join("\n");
    assert!(notes.contains("`${train.lr}` is params.yaml's value, written into the command"), "{notes}");
}

#[test]
fn a_cmd_list_runs_as_dvc_runs_it_each_command_on_its_own_while_they_succeed() {
    let p = convert(
        r#"stages:
  fails:
    cmd:
      - exit 3
      - echo after || true
  moves:
    cmd:
      - cd /
      - pwd  # where am I
"#,
    );
    let run = |cmd: &str| std::process::Command::new("sh").args(["-c", cmd]).current_dir("/tmp").output().unwrap();
    let fails = run(&p.stages[0].cmd);
    assert_eq!(fails.status.code(), Some(3), "{}: the first failure stops it", p.stages[0].cmd);
    assert!(fails.stdout.is_empty());
    let moves = run(&p.stages[1].cmd);
    assert!(moves.status.success(), "{}", p.stages[1].cmd);
    assert_eq!(String::from_utf8_lossy(&moves.stdout), "/tmp\n", "a `cd` does not carry over: {}", p.stages[1].cmd);
}

#[test]
fn a_list_field_written_as_one_value_is_that_one_entry() {
    let p = convert(
        "stages:\n  a:\n    cmd: echo hi > m.pkl\n    deps: x.csv\n    outs: m.pkl\n    metrics: {m.json: {cache: false}}\n",
    );
    let s = &p.stages[0];
    assert_eq!(s.deps, ["x.csv"]);
    assert_eq!(s.outs.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(), ["m.pkl"]);
    assert_eq!(s.metrics, ["m.json"]);
}

/// One command of a DVC list as the converter writes it.
fn in_sh(command: &str) -> String {
    format!("sh -c '{}'", command.replace('\'', "'\\''"))
}

#[test]
fn whatever_a_cmd_list_entry_holds_is_read_as_dvc_reads_it() {
    let p = convert(
        "stages:\n  odd:\n    cmd:\n      - echo a \\\n      - '# a note'\n      - ''\n      - echo \"it's\"\n",
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &p.stages[0].cmd])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", p.stages[0].cmd, String::from_utf8_lossy(&out.stderr));
    // As `sh -c 'echo a \'` prints it: the backslash kept, the next entry its own.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a \\\nit's\n");
}
