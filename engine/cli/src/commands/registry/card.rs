//! `gourd registry card NAME@VERSION`: a model card (Markdown with Hugging
//! Face's YAML front matter: license, datasets, metrics, base_model,
//! library_name, tags, model-index) written from what gourd knows: the
//! version's record, the lineage of the run that built it (data digests and
//! sources, params, the command), and the registry's moves of the version.
//! What lineage cannot know (license, base model, library) comes from the
//! pipeline's `registry.NAME.card`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use gourd_core::workspace::Workspace;
use gourd_lineage::registry::time::format_instant;
use gourd_lineage::registry::{Action, MoveRecord};
use gourd_lineage::{Lineage, Record};
use serde_json::Value;

use super::query::resolve_reference;
use super::{Loaded, open, short};
use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct CardArgs {
    /// `NAME@vX.Y.Z`, `NAME@STAGE` or `NAME@latest`.
    reference: String,
    /// Write to FILE instead of stdout (e.g. the model folder's README.md).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn card(location: &Location, args: &CardArgs) -> Result<ExitCode, CommandError> {
    let (root, registry) = open(location)?;
    let resolved = resolve_reference(&registry, &args.reference, None)?;
    let loaded = Loaded::read(&registry, &resolved.name)?;
    let registration = resolved.registration.clone();
    let record = registration.as_ref().and_then(|e| e.record.clone()).unwrap_or_default();
    let declared = super::gates::pipeline(location)?.and_then(|p| p.registry.get(&resolved.name).cloned());
    let meta: BTreeMap<String, Value> = declared.map(|m| m.card).unwrap_or_default();

    // The run that built it, and everything upstream, from lineage.
    let records: Vec<Record> = match Lineage::open(&root)? {
        Some(lineage) => lineage.history()?.into_iter().flat_map(|c| c.records).collect(),
        None => Vec::new(),
    };
    let key = record.lineage.as_ref().map(|l| l.key.clone()).unwrap_or_default();
    let producer = records.iter().find(|r| r.key == key);
    let ws = Workspace::open(&root)?;
    let mut inputs: Vec<(String, String, String)> = Vec::new();
    let mut params: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(producer) = producer {
        params.insert(producer.stage.clone(), producer.params.clone());
        let tree = crate::provenance::upstream(
            &ws,
            &records,
            producer,
            &mut BTreeSet::new(),
            0,
            crate::provenance::DEFAULT_DEPTH,
        );
        flatten_inputs(&tree, &records, &mut inputs, &mut params);
    } else {
        for (path, digest) in &record.inputs {
            inputs.push((path.clone(), digest.clone(), "input".into()));
        }
        if let Some(stage) = record.lineage.as_ref().map(|l| l.stage.clone()) {
            params.insert(stage, record.params.clone());
        }
    }
    let metrics = flat_metrics(&record);
    let text = render(
        &resolved.name,
        &resolved.version,
        &record,
        registration.as_ref(),
        &loaded,
        &meta,
        &inputs,
        &params,
        &metrics,
    );
    match &args.output {
        Some(path) => {
            crate::ui::refuse_reserved_output(path)?;
            crate::ui::write_through(path, text.as_bytes())?;
            eprintln!("Wrote the card of {} {} to `{}`.", resolved.name, resolved.version, path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Every input upstream: (path, digest, where it came from), sources last;
/// and each upstream stage's params.
fn flatten_inputs(
    nodes: &[Value],
    records: &[Record],
    out: &mut Vec<(String, String, String)>,
    params: &mut BTreeMap<String, Value>,
) {
    for node in nodes {
        let path = node["path"].as_str().unwrap_or_default().to_string();
        let digest = node["digest"].as_str().unwrap_or_default().to_string();
        let origin = match node["stage"].as_str() {
            Some(stage) => {
                if let Some(key) = node["key"].as_str()
                    && let Some(r) = records.iter().find(|r| r.key == key)
                {
                    params.entry(stage.to_string()).or_insert_with(|| r.params.clone());
                }
                format!("stage `{stage}`")
            }
            None => "source".to_string(),
        };
        if !out.iter().any(|(p, d, _)| *p == path && *d == digest) {
            out.push((path, digest, origin));
        }
        if let Some(children) = node["upstream"].as_array() {
            flatten_inputs(children, records, out, params);
        }
    }
}

/// (file, dotted metric, value) for every number in the version's metrics.
fn flat_metrics(record: &MoveRecord) -> Vec<(String, String, f64)> {
    fn walk(file: &str, prefix: &str, value: &Value, out: &mut Vec<(String, String, f64)>) {
        match value {
            Value::Number(n) => out.push((file.to_string(), prefix.to_string(), n.as_f64().unwrap_or(f64::NAN))),
            Value::Object(map) => {
                for (k, v) in map {
                    let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(file, &name, v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (file, value) in &record.metrics {
        walk(file, "", value, &mut out);
    }
    out
}

/// A YAML scalar: JSON's quoting is valid YAML.
fn yaml(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => serde_json::to_string(&other.to_string()).unwrap(),
    }
}

fn list(meta: &BTreeMap<String, Value>, key: &str) -> Vec<Value> {
    match meta.get(key) {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        _ => Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn render(
    name: &str,
    version: &str,
    record: &MoveRecord,
    registration: Option<&gourd_lineage::registry::Event>,
    loaded: &Loaded,
    meta: &BTreeMap<String, Value>,
    inputs: &[(String, String, String)],
    params: &BTreeMap<String, Value>,
    metrics: &[(String, String, f64)],
) -> String {
    let mut out = String::from("---\n");
    for key in ["license", "library_name", "pipeline_tag"] {
        if let Some(value) = meta.get(key) {
            let _ = writeln!(out, "{key}: {}", yaml(value));
        }
    }
    let base = list(meta, "base_model");
    if !base.is_empty() {
        let _ = writeln!(out, "base_model:");
        base.iter().for_each(|b| _ = writeln!(out, "- {}", yaml(b)));
    }
    // Datasets: declared ones, else the sources lineage found.
    let mut datasets = list(meta, "datasets");
    if datasets.is_empty() {
        datasets = inputs.iter().filter(|(_, _, o)| o == "source").map(|(p, _, _)| Value::String(p.clone())).collect();
    }
    if !datasets.is_empty() {
        let _ = writeln!(out, "datasets:");
        datasets.iter().for_each(|d| _ = writeln!(out, "- {}", yaml(d)));
    }
    let mut names: Vec<&str> = metrics.iter().map(|(_, m, _)| m.as_str()).collect();
    names.dedup();
    if !names.is_empty() {
        let _ = writeln!(out, "metrics:");
        names.iter().for_each(|m| _ = writeln!(out, "- {}", yaml(&Value::String(m.to_string()))));
    }
    let _ = writeln!(out, "tags:\n- gourd");
    for tag in list(meta, "tags") {
        let _ = writeln!(out, "- {}", yaml(&tag));
    }
    if !metrics.is_empty() {
        let task = meta.get("pipeline_tag").cloned().unwrap_or(Value::String("other".into()));
        let dataset = datasets.first().cloned().unwrap_or(Value::String("local".into()));
        let _ = writeln!(
            out,
            "model-index:\n- name: {}\n  results:\n  - task:\n      type: {}",
            yaml(&Value::String(name.into())),
            yaml(&task)
        );
        let _ = writeln!(out, "    dataset:\n      name: {}\n      type: \"local\"", yaml(&dataset));
        let _ = writeln!(out, "    metrics:");
        for (file, metric, value) in metrics {
            let _ = writeln!(
                out,
                "    - type: {}\n      value: {}\n      name: {}",
                yaml(&Value::String(metric.clone())),
                gourd_core::gate::number(*value),
                yaml(&Value::String(format!("{metric} ({file})")))
            );
        }
    }
    out.push_str("---\n\n");

    let _ = writeln!(out, "# {name} {version}\n");
    if let Some(e) = registration {
        let why = match e.message.lines().next() {
            Some(line) if !line.is_empty() && !line.starts_with("Registering artifact") => format!(": {line}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "Registered by {} on {} at commit `{}` (tag `{}`){why}.\n",
            e.who,
            format_instant(e.time),
            short(&e.commit),
            e.tag
        );
    }
    let stages: Vec<&str> =
        loaded.state.stages.iter().filter(|(_, h)| h.version == version).map(|(s, _)| s.as_str()).collect();
    if !stages.is_empty() {
        let _ = writeln!(out, "Now in: {}.\n", stages.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "));
    }
    if let Some(path) = &record.path {
        let _ = writeln!(
            out,
            "- Artifact: `{path}` ({}), digest `{}`",
            record.kind.as_deref().unwrap_or("file"),
            record.digest.as_deref().unwrap_or("-")
        );
    }
    if let Some(l) = &record.lineage {
        let dirty = if l.workspace_dirty { ", with uncommitted changes" } else { "" };
        let _ = writeln!(
            out,
            "- Built by: stage `{}`, key `{}`, finished {}{dirty}",
            l.stage,
            short(&l.key),
            l.finished_at
        );
    }
    if !record.cmd.is_null() {
        let _ = writeln!(out, "- Command: `{}`", command(&record.cmd).replace('`', "'"));
    }
    let _ = writeln!(out, "- gourd: {}", if record.gourd_version.is_empty() { "-" } else { &record.gourd_version });
    if !metrics.is_empty() {
        let _ = writeln!(out, "\n## Metrics\n\n| metric | value | file |\n|---|---:|---|");
        for (file, metric, value) in metrics {
            let _ = writeln!(out, "| {metric} | {} | `{file}` |", gourd_core::gate::number(*value));
        }
    }
    let params: Vec<(&String, &Value)> =
        params.iter().filter(|(_, p)| p.as_object().is_some_and(|o| !o.is_empty())).collect();
    if !params.is_empty() {
        let _ = writeln!(out, "\n## Parameters\n\n| stage | parameter | value |\n|---|---|---|");
        for (stage, p) in params {
            for (k, v) in p.as_object().into_iter().flatten() {
                let _ = writeln!(out, "| `{stage}` | {k} | `{}` |", gourd_digest::canonical_json(v));
            }
        }
    }
    if !inputs.is_empty() {
        let _ = writeln!(out, "\n## Data and inputs\n\n| path | digest | from |\n|---|---|---|");
        for (path, digest, origin) in inputs {
            let _ = writeln!(out, "| `{path}` | `{}` | {origin} |", short(digest));
        }
    }
    let moves: Vec<_> = loaded
        .events
        .iter()
        .filter(|e| e.version.as_deref() == Some(version))
        .filter(|e| !(e.action == Action::Unassign && e.record.as_ref().is_some_and(|r| r.replaced_by.is_some())))
        .collect();
    if !moves.is_empty() {
        let _ = writeln!(out, "\n## Registry history\n\n| when | move | by | why |\n|---|---|---|---|");
        for e in moves {
            let what = match e.action {
                Action::Assign => format!("into `{}`", e.stage.as_deref().unwrap_or_default()),
                Action::Unassign => format!("out of `{}`", e.stage.as_deref().unwrap_or_default()),
                other => other.name().to_string(),
            };
            let forced = if e.record.as_ref().is_some_and(|r| r.forced) { " (gates overridden)" } else { "" };
            let why = e.message.lines().next().unwrap_or_default().replace('|', "\\|");
            let _ = writeln!(out, "| {} | {what}{forced} | {} | {why} |", format_instant(e.time), e.who);
        }
    }
    out
}

fn command(cmd: &Value) -> String {
    match (cmd.get("shell"), cmd.get("argv"), cmd.get("step")) {
        (Some(Value::String(s)), _, _) => {
            s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
        }
        (_, Some(Value::Array(argv)), _) => argv.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        (_, _, Some(step)) => format!("built-in step {step}"),
        _ => cmd.to_string(),
    }
}
