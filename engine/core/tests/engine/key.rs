//! Stage manifests and keys: what enters them, and how two manifests'
//! differences are named.

use std::collections::BTreeMap;

use crate::common::stage;
use gourd_core::key::{FieldChange, diff, key, manifest};
use gourd_core::model::{Command, Executor};
use gourd_core::path::WsPath;
use gourd_digest::DigestAlgorithm;
use serde_json::json;

#[test]
fn what_a_manifest_holds() {
    let mut s = stage("s", "", &["b", "a"], &["z.bin", "a.bin"]);
    s.cmd = Command::Argv(vec!["python".into(), "train.py".into()]);
    s.metrics = vec![WsPath::new("m2.json").unwrap(), WsPath::new("m1.json").unwrap()];
    s.executor = Executor::Cuda;
    s.wdir = WsPath::new("sub").unwrap();
    s.env.insert("SEED".into(), "1".into());
    let digest = gourd_digest::Hasher::digest_bytes(DigestAlgorithm::Sha256, b"dep");
    let deps = BTreeMap::from([(WsPath::new("a").unwrap(), digest)]);
    let m = manifest(&s, &deps, DigestAlgorithm::Sha256);
    assert_eq!(m["cmd"], json!({ "argv": ["python", "train.py"] }));
    assert_eq!(m["step"], json!(null));
    assert_eq!(m["outs"], json!(["a.bin", "z.bin"]));
    assert_eq!(m["metrics"], json!(["m1.json", "m2.json"]));
    assert_eq!(m["digest"], json!("sha256"));
    assert_eq!(m["executor"], json!("cuda"));
    assert_eq!(m["wdir"], json!("sub"));
    assert_eq!(m["env"], json!({ "SEED": "1" }));
    assert_eq!(m["deps"], json!({ "a": digest.to_string() }));
    assert_eq!(m["schema"], json!(1));

    let k = key(&m, DigestAlgorithm::Sha256);
    assert_eq!(k, key(&m.clone(), DigestAlgorithm::Sha256));
    assert_ne!(k, key(&m, DigestAlgorithm::Blake3));
    let mut other = m.clone();
    other["wdir"] = json!(".");
    assert_ne!(k, key(&other, DigestAlgorithm::Sha256));
}

fn reasons(old: serde_json::Value, new: serde_json::Value) -> Vec<String> {
    diff(&old, &new).iter().map(FieldChange::reason).collect()
}

#[test]
fn each_kind_of_change_is_named() {
    let base = json!({
        "schema": 1, "digest": "blake3", "cmd": {"shell": "a"}, "env": {"A": "1"}, "executor": "local",
        "wdir": ".", "params": {"lr": 1}, "deps": {"x": "1"}, "outs": ["o"], "metrics": [], "step": null,
    });
    let changed = |field: &str, value: serde_json::Value| {
        let mut new = base.clone();
        new[field] = value;
        reasons(base.clone(), new)
    };
    assert_eq!(reasons(base.clone(), base.clone()), Vec::<String>::new());
    assert_eq!(changed("schema", json!(2)), ["gourd's key format changed"]);
    assert_eq!(changed("digest", json!("sha256")), ["gourd's key format changed"]);
    assert_eq!(changed("cmd", json!({"argv": ["a"]})), ["command changed"]);
    assert_eq!(changed("env", json!({"A": "2", "B": "3"})), ["env `A` changed", "env `B` added"]);
    assert_eq!(changed("env", json!({})), ["env `A` removed"]);
    assert_eq!(changed("executor", json!("cuda")), ["executor changed"]);
    assert_eq!(changed("wdir", json!("sub")), ["wdir changed"]);
    assert_eq!(changed("params", json!({"lr": 2, "new": 1})), ["param `lr` changed", "param `new` added"]);
    assert_eq!(changed("deps", json!({"x": "2"})), ["dep `x` changed"]);
    assert_eq!(changed("outs", json!(["o", "p"])), ["declared outs changed"]);
    assert_eq!(changed("metrics", json!(["m.json"])), ["declared metrics changed"]);
    assert_eq!(changed("step", json!({"name": "t"})), ["step configuration changed"]);
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("step");
    assert_eq!(reasons(base.clone(), missing.clone()), ["step configuration changed"]);
    let change = &diff(&base, &missing)[0];
    assert_eq!((change.field.as_str(), change.old.clone(), change.new.clone()), ("step", Some(json!(null)), None));
}

#[test]
fn how_deep_a_difference_is_followed() {
    // Params to any depth; everything else to the field under the section.
    let old = json!({
        "params": {"a": {"b": {"c": 1, "d": 1}}},
        "step": {"name": "t", "version": 1, "config": {"lr": 1, "epochs": 1}},
        "cmd": {"shell": "x", "extra": 1},
        "deps": {"data": "1"},
    });
    let new = json!({
        "params": {"a": {"b": {"c": 2, "d": 2}}},
        "step": {"name": "t", "version": 1, "config": {"lr": 2, "epochs": 2}},
        "cmd": {"shell": "y", "extra": 2},
        "deps": {"data": "2"},
    });
    let fields: Vec<String> = diff(&old, &new).into_iter().map(|c| c.field).collect();
    assert_eq!(fields, ["cmd", "deps.data", "params.a.b.c", "params.a.b.d", "step.config"]);
    // A value that is an object on one side only is one change.
    let fields: Vec<String> =
        diff(&json!({"params": {"a": 1}}), &json!({"params": {"a": {"b": 1}}})).into_iter().map(|c| c.field).collect();
    assert_eq!(fields, ["params.a"]);
    // Whole manifests that differ at the top: one change, unnamed.
    let whole = diff(&json!(1), &json!(2));
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].field, "");
}
