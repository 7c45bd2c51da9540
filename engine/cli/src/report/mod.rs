//! `gourd report`: the pipeline, its state, metrics and lineage, rendered
//! with minijinja from templates (built in, or the user's own).

mod layout;
pub mod markdown;
mod registry;
pub mod svg;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};

use gourd_core::plan;
use gourd_core::workspace::Workspace;
use gourd_lineage::Lineage;
use serde_json::{Value, json};

use crate::error::CommandError;
use crate::revision::{Side, metrics_at};
use crate::workspace::Loaded;

pub const HTML_TEMPLATE: &str = include_str!("../../../../templates/report.html.j2");
pub const MD_TEMPLATE: &str = include_str!("../../../../templates/report.md.j2");

/// Everything a template can show. Documented in `docs/reports.md`.
pub fn context(loaded: &Loaded, base: &str) -> Result<Value, CommandError> {
    let ws = Workspace::open(&loaded.root)?;
    let lineage = Lineage::open(&loaded.root)?;
    let pipeline = &loaded.pipeline;
    let dag = &loaded.dag;
    let all: BTreeSet<usize> = (0..pipeline.stages.len()).collect();
    let statuses = plan::status(&ws, pipeline, dag, &all)?;
    crate::commands::status::save_state_if_possible(&ws);
    let by_name: BTreeMap<&str, &plan::StageStatus> = statuses.iter().map(|s| (s.name.as_str(), s)).collect();
    let latest = match &lineage {
        Some(l) => l.latest()?,
        None => BTreeMap::new(),
    };
    let history = match &lineage {
        Some(l) => l.history()?,
        None => Vec::new(),
    };

    let mut stages = Vec::new();
    for &i in dag.order() {
        let stage = &pipeline.stages[i];
        let status = by_name[stage.name.as_str()];
        let action = status.key.and_then(|k| ws.store.action(&k));
        let record = latest.get(&stage.name);
        let cache = match (&action, status.fresh, status.restorable) {
            (Some(_), true, _) => "cached, up to date",
            (Some(_), false, true) => "cached, restorable",
            _ => "not cached",
        };
        stages.push(json!({
            "name": stage.name,
            "desc": stage.desc,
            "state": if status.fresh { "fresh" } else { "stale" },
            "reasons": status.reasons,
            "key": status.key.map(|k| k.to_string()),
            "short_key": status.key.map(|k| k.short()),
            "cache": cache,
            "duration_ms": action.as_ref().map(|a| a.duration_ms).or(record.map(|r| r.duration_ms)),
            "last_run": record.map(|r| json!({"status": r.status, "finished_at": r.finished_at})),
            "executor": stage.executor.name(),
            "upstream": dag.upstream(i).into_iter().map(|u| pipeline.stages[u].name.clone()).collect::<Vec<_>>(),
            "outs": stage.outputs().map(|o| json!({"path": o.path.as_str(), "kind": o.kind})).collect::<Vec<_>>(),
        }));
    }

    let nodes: Vec<svg::Node> = pipeline
        .stages
        .iter()
        .map(|s| svg::Node { name: &s.name, state: if by_name[s.name.as_str()].fresh { "fresh" } else { "stale" } })
        .collect();
    let dag_svg = svg::dag(&nodes, dag.order(), &dag.edges());
    let mut mermaid = String::from("graph LR\n");
    for &i in dag.order() {
        mermaid.push_str(&format!("  s{i}[\"{}\"]\n", pipeline.stages[i].name));
    }
    for (a, b) in dag.edges() {
        mermaid.push_str(&format!("  s{a} --> s{b}\n"));
    }

    // Metrics now, against the base revision.
    let paths: Vec<String> = pipeline.stages.iter().flat_map(|s| s.metrics.iter().map(|m| m.to_string())).collect();
    let now = metrics_at(lineage.as_ref(), &loaded.root, &loaded.file, &paths, &Side::WorkingState)?;
    let (base_label, then) = match &lineage {
        Some(_) if !paths.is_empty() => {
            match metrics_at(lineage.as_ref(), &loaded.root, &loaded.file, &paths, &Side::Revision(base.into())) {
                Ok(then) => (Some(base.to_string()), then),
                // A revision the user named must be one; the default HEAD
                // of a repository with no commit yet is compared with nothing.
                Err(err) if base != "HEAD" => return Err(err),
                Err(_) => (None, BTreeMap::new()),
            }
        }
        _ => (None, BTreeMap::new()),
    };
    // Scalars only: an array (per-epoch values) shows its last element,
    // and is plotted below.
    let metrics: Vec<Value> = crate::commands::metrics::diff_rows(&then, &now, true)
        .into_iter()
        .filter_map(|(path, metric, base, value, _)| metric_row(path, metric, base, value))
        .collect();

    // Each numeric metric over the history of the lineage ref.
    let mut series: BTreeMap<(String, String), Vec<(f64, String)>> = BTreeMap::new();
    for commit in history.iter().rev() {
        for record in &commit.records {
            for (path, value) in &record.metrics {
                let mut leaves = Vec::new();
                crate::table::flatten("", value, &mut leaves);
                for (name, leaf) in leaves {
                    if let Value::Number(n) = &leaf
                        && let Some(v) = n.as_f64()
                    {
                        series.entry((path.clone(), name)).or_default().push((v, values::number(n)));
                    }
                }
            }
        }
    }
    let mut plots: Vec<Value> = series
        .iter()
        .map(|((path, metric), points)| {
            let values: Vec<f64> = points.iter().map(|p| p.0).collect();
            let last = points.last().map(|p| p.1.clone()).unwrap_or_default();
            json!({
                "path": path,
                "metric": metric,
                "values": values,
                "kind": "runs",
                "caption": format!("{}, last {last}", count(values.len(), "run")),
                "svg": svg::sparkline(&values, &format!("{path} {metric}"), "run"),
            })
        })
        .collect();
    // Arrays of numbers in the metrics now (per-epoch values, say): one
    // plot each, step by step.
    for (path, value) in &now {
        let mut leaves = Vec::new();
        crate::table::flatten("", value, &mut leaves);
        for (metric, leaf) in leaves {
            let Value::Array(items) = &leaf else { continue };
            let numbers: Vec<(f64, String)> = items
                .iter()
                .filter_map(|v| match v {
                    Value::Number(n) => Some((n.as_f64()?, values::number(n))),
                    _ => None,
                })
                .collect();
            if numbers.is_empty() || numbers.len() != items.len() {
                continue;
            }
            let values: Vec<f64> = numbers.iter().map(|p| p.0).collect();
            let last = numbers.last().map(|p| p.1.clone()).unwrap_or_default();
            plots.push(json!({
                "path": path,
                "metric": metric,
                "values": values,
                "kind": "steps",
                "caption": format!("{} of the latest run, last {last}", count(values.len(), "step")),
                "svg": svg::sparkline(&values, &format!("{path} {metric}"), "step"),
            }));
        }
    }

    // The lineage of every model output.
    let records: Vec<gourd_lineage::Record> = history.iter().flat_map(|c| c.records.clone()).collect();
    let mut models = Vec::new();
    for stage in &pipeline.stages {
        for out in stage.outs.iter().filter(|o| o.kind == gourd_core::model::OutputKind::Model) {
            let record = latest.get(&stage.name).filter(|r| r.outs.contains_key(out.path.as_str()));
            let mut seen = BTreeSet::new();
            let chain = record.map(|r| {
                flatten_chain(
                    &crate::provenance::upstream(&ws, &records, r, &mut seen, 0, crate::provenance::DEFAULT_DEPTH),
                    0,
                )
            });
            models.push(json!({
                "path": out.path.as_str(),
                "stage": stage.name,
                "key": record.map(|r| r.key.clone()),
                "digest": record.and_then(|r| r.outs.get(out.path.as_str()).cloned()),
                "finished_at": record.map(|r| r.finished_at.clone()),
                "workspace_commit": record.and_then(|r| r.workspace_commit.clone()),
                "params": record.map(|r| r.params.clone()),
                "inputs": chain.unwrap_or_default(),
            }));
        }
    }

    let git = match &lineage {
        Some(l) => {
            let (head, dirty) = l.workspace_state()?;
            json!({"head": head, "dirty": dirty})
        }
        None => Value::Null,
    };
    Ok(json!({
        "title": format!("gourd report: {}", loaded.root.file_name().unwrap_or_default().to_string_lossy()),
        "generated_at": gourd_core::time::now(),
        "gourd_version": env!("CARGO_PKG_VERSION"),
        "git": git,
        "summary": {
            "stages": statuses.len(),
            "fresh": statuses.iter().filter(|s| s.fresh).count(),
            "stale": statuses.iter().filter(|s| !s.fresh).count(),
            "edges": dag.edge_count(),
            "runs": history.len(),
        },
        "stages": stages,
        "dag_svg": dag_svg,
        "mermaid": mermaid,
        "base": base_label,
        "metrics": metrics,
        "plots": plots,
        "pipeline_plots": crate::plots::report_context(pipeline, &loaded.root),
        "models": models,
        "registry": registry::context(&loaded.root)?,
    }))
}

/// `1 run`, `3 runs`.
fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// A row of the metrics table, or `None` for a leaf no cell can show.
fn metric_row(path: String, metric: String, base: Option<Value>, value: Option<Value>) -> Option<Value> {
    let (value, base) = (value.as_ref().and_then(values::scalar), base.as_ref().and_then(values::scalar));
    if value.is_none() && base.is_none() {
        return None;
    }
    let change = match (value.as_ref().and_then(|v| v.number), base.as_ref().and_then(|b| b.number)) {
        (Some(v), Some(b)) => Some(((v - b) * 1e9).round() / 1e9),
        _ => None,
    };
    Some(json!({
        "path": path,
        "metric": metric,
        "value": value.as_ref().map(|v| v.value.clone()),
        "base": base.as_ref().map(|b| b.value.clone()),
        "change": change,
        "value_text": value.as_ref().map(|v| v.text.clone()),
        "base_text": base.as_ref().map(|b| b.text.clone()),
        "change_text": change.map(values::change),
        "note": value.as_ref().and_then(|v| v.note.clone()),
        "base_note": base.as_ref().and_then(|b| b.note.clone()),
        "lower_is_better": values::lower_is_better(&metric),
        "trend": change.and_then(|c| values::trend(&metric, c)),
    }))
}

/// The upstream tree as a flat list with depths, for templates.
fn flatten_chain(nodes: &[Value], depth: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for node in nodes {
        out.push(json!({
            "depth": depth,
            "indent": "  ".repeat(depth),
            "path": node["path"],
            "digest": node["digest"],
            "short": node["digest"].as_str().map(|d| d[..d.len().min(12)].to_string()),
            "stage": node["stage"],
            "source": node["stage"].is_null(),
        }));
        if let Some(children) = node["upstream"].as_array() {
            out.extend(flatten_chain(children, depth + 1));
        }
    }
    out
}
