//! The pipeline model's own behaviour: names, lookups, the params a stage
//! sees in its environment and records, and what it writes.

use crate::common::{pipeline, stage};
use gourd_core::model::{Command, Executor, Link, OutputKind, PlotTemplate, RemoteKind};
use gourd_core::path::WsPath;
use serde_json::json;

#[test]
fn names_of_plot_templates_remotes_and_executors() {
    for (name, template) in PlotTemplate::ALL {
        assert_eq!(PlotTemplate::parse(name), Some(template));
        assert_eq!(template.name(), name);
    }
    assert_eq!(PlotTemplate::parse("scatter"), Some(PlotTemplate::Scatter));
    assert_eq!(PlotTemplate::Confusion.name(), "confusion");
    assert_eq!(PlotTemplate::parse("pie"), None);
    let kinds: Vec<&str> =
        [RemoteKind::S3, RemoteKind::Reapi, RemoteKind::Folder, RemoteKind::Ssh].map(RemoteKind::name).to_vec();
    assert_eq!(kinds, ["s3", "reapi", "folder", "ssh"]);
    assert_eq!((Executor::Local.name(), Executor::Cuda.name()), ("local", "cuda"));
}

#[test]
fn stages_are_found_by_name() {
    let p = pipeline(&[stage("prepare", "", &[], &[]), stage("train", "", &[], &[]), stage("eval", "", &[], &[])]);
    for name in ["eval", "prepare", "train"] {
        assert_eq!(p.stage(name).map(|s| s.name.as_str()), Some(name));
    }
    assert!(p.stage("deploy").is_none());
}

#[test]
fn params_as_environment_variables() {
    let mut s = stage("s", "", &[], &[]);
    s.params = json!({
        "train": { "n-est": 50, "lr": 0.5, "name": "forest", "deep": { "on": true } },
        "tags": ["a", "b"],
        "nothing": null,
        "with_nul": "a\u{0}b",
        "ünï": "x",
    });
    let env = s.param_env();
    let expected: Vec<(&str, &str)> = vec![
        ("GOURD_PARAM_NOTHING", "null"),
        ("GOURD_PARAM_TAGS", "[\"a\",\"b\"]"),
        ("GOURD_PARAM_TRAIN_DEEP_ON", "true"),
        ("GOURD_PARAM_TRAIN_LR", "0.5"),
        ("GOURD_PARAM_TRAIN_NAME", "forest"),
        ("GOURD_PARAM_TRAIN_N_EST", "50"),
        ("GOURD_PARAM__N_", "x"),
    ];
    let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, expected);
    // Params that are not an object name no variable.
    for params in [json!("text"), json!(3), json!(null)] {
        s.params = params;
        assert!(s.param_env().is_empty(), "{}", s.params);
    }
}

#[test]
fn recorded_params_put_a_steps_configuration_beside_its_params() {
    let mut s = stage("s", "", &[], &[]);
    s.params = json!({ "seed": 1, "lr": 0.2 });
    assert_eq!(s.recorded_params(), json!({ "seed": 1, "lr": 0.2 }));
    s.cmd = Command::Step { name: "train".into(), config: json!({ "lr": 0.1, "epochs": 3 }) };
    assert_eq!(s.recorded_params(), json!({ "seed": 1, "lr": 0.2, "epochs": 3 }));
    s.params = serde_json::Value::Null;
    assert_eq!(s.recorded_params(), json!({ "lr": 0.1, "epochs": 3 }));
    s.params = json!(7);
    assert_eq!(s.recorded_params(), json!({ "lr": 0.1, "epochs": 3, "params": 7 }));
    s.cmd = Command::Step { name: "train".into(), config: json!("not an object") };
    assert_eq!(s.recorded_params(), json!(7));
}

#[test]
fn outputs_are_the_outs_then_the_metrics_files() {
    let mut s = stage("s", "", &[], &["model.pt", "data"]);
    s.outs[0].kind = OutputKind::Model;
    s.outs[0].persist = true;
    s.metrics = vec![WsPath::new("m.json").unwrap()];
    let outputs: Vec<(String, OutputKind, bool, bool)> =
        s.outputs().map(|o| (o.path.to_string(), o.kind, o.cache, o.persist)).collect();
    assert_eq!(
        outputs,
        [
            ("model.pt".to_string(), OutputKind::Model, true, true),
            ("data".to_string(), OutputKind::Data, true, false),
            ("m.json".to_string(), OutputKind::Metrics, true, false),
        ]
    );
}

#[test]
fn secrets_and_how_commands_are_shown() {
    let mut s = stage("s", "python train.py", &[], &[]);
    assert!(!s.has_secrets());
    s.secrets = vec!["TOKEN".into()];
    assert!(s.has_secrets());
    assert_eq!(s.cmd.display(), "python train.py");
    assert_eq!(Command::Argv(vec!["python".into(), "-m".into(), "train".into()]).display(), "python -m train");
    assert_eq!(Command::Step { name: "drift".into(), config: json!({}) }.display(), "built-in step `drift`");
}

#[test]
fn link_types_are_named_as_written() {
    // Named in the message when a file system cannot make a link.
    assert_eq!(Link::Copy.name(), "copy");
    assert_eq!(Link::Reflink.name(), "reflink");
    assert_eq!(Link::Hardlink.name(), "hardlink");
}
