//! Stage manifests: the canonical record of everything that can change a
//! stage's outputs. The key is the digest of the manifest; the manifest is
//! stored next to the result, so `gourd explain` is a diff of two manifests.
//!
//! The encoding is documented in `docs/keys.md` and pinned by golden tests.
//! Changing it means bumping `SCHEMA_VERSION`.

use std::collections::BTreeMap;

use gourd_digest::{Digest, DigestAlgorithm};
use serde_json::{Value, json};

use crate::model::{Command, Stage};
use crate::path::WsPath;

pub const SCHEMA_VERSION: u64 = 1;

/// The version of gourd's built-in steps: part of the key of every stage that
/// uses one, bumped whenever a step's results change for the same inputs.
pub const STEP_VERSION: u64 = 1;

/// The manifest of `stage`, given the content digest of each of its deps.
pub fn manifest(stage: &Stage, deps: &BTreeMap<WsPath, Digest>, algorithm: DigestAlgorithm) -> Value {
    let (cmd, step) = match &stage.cmd {
        Command::Shell(script) => (json!({ "shell": script }), Value::Null),
        Command::Argv(argv) => (json!({ "argv": argv }), Value::Null),
        Command::Step { name, config } => {
            (json!({ "step": name }), json!({ "name": name, "version": STEP_VERSION, "config": config }))
        }
    };
    let deps: serde_json::Map<String, Value> =
        deps.iter().map(|(path, digest)| (path.to_string(), Value::String(digest.to_string()))).collect();
    let mut outs: Vec<&str> = stage.outs.iter().map(|o| o.path.as_str()).collect();
    outs.sort();
    let mut metrics: Vec<&str> = stage.metrics.iter().map(|m| m.as_str()).collect();
    metrics.sort();
    json!({
        "schema": SCHEMA_VERSION,
        "digest": algorithm.name(),
        "cmd": cmd,
        "env": stage.env,
        "executor": stage.executor.name(),
        "wdir": stage.wdir.as_str(),
        "params": stage.params,
        "deps": deps,
        "outs": outs,
        "metrics": metrics,
        "step": step,
    })
}

pub fn key(manifest: &Value, algorithm: DigestAlgorithm) -> Digest {
    gourd_digest::stage_key(algorithm, manifest)
}

/// One field that differs between two manifests, named by a dotted path
/// (`params.lr`, `deps.data/raw`, `cmd`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl FieldChange {
    /// A short human reason: `dep \`data/raw\` changed`, `param \`lr\` changed`.
    pub fn reason(&self) -> String {
        let (section, rest) = self.field.split_once('.').unwrap_or((self.field.as_str(), ""));
        let what = match (&self.old, &self.new) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            _ => "changed",
        };
        match section {
            "deps" => format!("dep `{rest}` {what}"),
            "params" => format!("param `{rest}` {what}"),
            "env" => format!("env `{rest}` {what}"),
            "cmd" => "command changed".to_string(),
            "step" => "step configuration changed".to_string(),
            "outs" | "metrics" => format!("declared {section} changed"),
            "schema" | "digest" => "gourd's key format changed".to_string(),
            other => format!("{other} changed"),
        }
    }
}

/// The fields that differ between `old` and `new`, in a stable order.
/// Maps are compared entry by entry, so one changed dep is one change.
pub fn diff(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    diff_into("", old, new, 0, &mut changes);
    changes
}

fn diff_into(prefix: &str, old: &Value, new: &Value, depth: usize, out: &mut Vec<FieldChange>) {
    if old == new {
        return;
    }
    // `cmd` is compared as a whole: half a command is not a useful reason.
    let descend = prefix != "cmd" && (depth == 0 || prefix.starts_with("params") || depth == 1);
    match (old, new) {
        (Value::Object(a), Value::Object(b)) if descend => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let field = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff_into(&field, x, y, depth + 1, out),
                    (x, y) => out.push(FieldChange { field, old: x.cloned(), new: y.cloned() }),
                }
            }
        }
        _ => out.push(FieldChange { field: prefix.to_string(), old: Some(old.clone()), new: Some(new.clone()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stage;

    #[test]
    fn golden_manifest_and_key() {
        let mut s = stage("train", &["data"], &["model.bin"]);
        s.params = json!({"lr": 0.01, "epochs": 3});
        s.env.insert("PYTHONHASHSEED".into(), "0".into());
        let deps = BTreeMap::from([(
            WsPath::new("data").unwrap(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262".parse().unwrap(),
        )]);
        let m = manifest(&s, &deps, DigestAlgorithm::Blake3);
        assert_eq!(
            gourd_digest::canonical_json(&m),
            r#"{"cmd":{"shell":"true"},"deps":{"data":"af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},"digest":"blake3","env":{"PYTHONHASHSEED":"0"},"executor":"local","metrics":[],"outs":["model.bin"],"params":{"epochs":3,"lr":0.01},"schema":1,"step":null,"wdir":"."}"#
        );
        assert_eq!(
            key(&m, DigestAlgorithm::Blake3).to_string(),
            "246f5a0da335f78649bc544fc23f6864feb4bfccf055ff063473cd123d45e6cc"
        );
    }

    #[test]
    fn name_and_resources_do_not_enter_the_key() {
        let a = stage("a", &[], &["x"]);
        let mut b = stage("b", &[], &["x"]);
        b.resources.cpus = 4;
        b.desc = Some("other".into());
        let deps = BTreeMap::new();
        let algo = DigestAlgorithm::Blake3;
        assert_eq!(key(&manifest(&a, &deps, algo), algo), key(&manifest(&b, &deps, algo), algo));
    }

    #[test]
    fn a_step_enters_the_key_by_name_version_and_configuration() {
        let mut s = stage("train", &[], &["m"]);
        s.cmd = Command::Step { name: "train".into(), config: json!({"lr": 0.1}) };
        let algo = DigestAlgorithm::Blake3;
        let m = manifest(&s, &BTreeMap::new(), algo);
        assert_eq!(m["step"], json!({"name": "train", "version": STEP_VERSION, "config": {"lr": 0.1}}));
        let mut t = s.clone();
        t.cmd = Command::Step { name: "train".into(), config: json!({"lr": 0.2}) };
        assert_ne!(key(&m, algo), key(&manifest(&t, &BTreeMap::new(), algo), algo));
        let reasons: Vec<String> =
            diff(&m, &manifest(&t, &BTreeMap::new(), algo)).iter().map(FieldChange::reason).collect();
        assert_eq!(reasons, vec!["step configuration changed"]);
    }

    #[test]
    fn diff_names_fields() {
        let old = json!({"cmd": {"shell": "a"}, "deps": {"x": "1", "y": "2"}, "params": {"opt": {"lr": 1}}});
        let new = json!({"cmd": {"shell": "b"}, "deps": {"x": "1", "z": "3"}, "params": {"opt": {"lr": 2}}});
        let reasons: Vec<String> = diff(&old, &new).iter().map(FieldChange::reason).collect();
        assert_eq!(reasons, vec!["command changed", "dep `y` removed", "dep `z` added", "param `opt.lr` changed"]);
    }
}
