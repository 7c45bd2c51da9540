//! The registry in the report: per model its versions, what each stage
//! holds now, who held each stage over which time span and why, and every
//! move with its gate evidence, so that "which model was in production on
//! day X, and why" is read off the page.

use std::collections::BTreeMap;
use std::path::Path;

use gourd_lineage::registry::state::{self, Replay};
use gourd_lineage::registry::time::format_instant;
use gourd_lineage::registry::{Action, Event, Registry};
use serde_json::{Value, json};

use crate::error::CommandError;

/// The registry of the repository holding `root`: one entry per model,
/// by name; empty outside git or with no registry tags.
pub fn context(root: &Path) -> Result<Vec<Value>, CommandError> {
    let Some(registry) = Registry::open(root)? else { return Ok(Vec::new()) };
    let mut models = Vec::new();
    for (name, events) in registry.all_events_full()? {
        models.push(model(&name, &events));
    }
    Ok(models)
}

fn model(name: &str, events: &[Event]) -> Value {
    let now = state::fold(events, None);
    let registration = |version: &str| {
        events.iter().rev().find(|e| e.action == Action::Register && e.version.as_deref() == Some(version))
    };
    let versions: Vec<Value> = now
        .versions
        .iter()
        .map(|v| {
            let registered = &events[v.registered_by];
            let record = registration(&v.version).and_then(|e| e.record.as_deref());
            let digest = record.and_then(|r| r.digest.clone());
            let mut metrics = Vec::new();
            for (path, value) in record.map(|r| &r.metrics).into_iter().flatten() {
                let mut leaves = Vec::new();
                crate::table::flatten("", value, &mut leaves);
                for (metric, leaf) in leaves {
                    if let Some(shown) = super::values::scalar(&leaf) {
                        metrics.push(json!({"path": path, "metric": metric, "value": shown.text}));
                    }
                }
            }
            json!({
                "version": v.version,
                "active": v.active,
                "commit": v.commit,
                "short_commit": short(&v.commit),
                "digest": digest,
                "short_digest": digest.as_deref().map(short),
                "registered_at": format_instant(registered.time),
                "registered_by": registered.who,
                "why": first_line(&registered.message),
                "path": record.and_then(|r| r.path.clone()),
                "lineage_key": record.and_then(|r| r.lineage.as_ref()).map(|l| l.key.clone()),
                "stages": now.stages.iter().filter(|(_, h)| h.version == v.version).map(|(s, _)| s.clone()).collect::<Vec<_>>(),
                "metrics": metrics,
            })
        })
        .collect();
    let stages: Vec<Value> = now
        .stages
        .iter()
        .map(|(stage, holder)| {
            let by = &events[holder.assigned_by];
            json!({
                "stage": stage,
                "version": holder.version,
                "since": format_instant(by.time),
                "by": by.who,
                "why": first_line(&by.message),
                "forced": forced(by),
                "tag": by.tag,
            })
        })
        .collect();
    json!({
        "name": name,
        "latest": now.latest().map(|v| v.version.clone()),
        "deprecated": now.deprecated,
        "stages": stages,
        "versions": versions,
        "timeline": timeline(events),
        "moves": moves(events),
    })
}

/// Who held each stage from when until when: one span per holder, in
/// order of stage, then time; the last span of a stage still held has no
/// `until`.
fn timeline(events: &[Event]) -> Vec<Value> {
    let mut replay = Replay::default();
    // Stage → (version, the assignment that put it there, since).
    let mut open: BTreeMap<&str, (String, usize, i64)> = BTreeMap::new();
    let mut spans: Vec<(String, i64, Value)> = Vec::new();
    let mut stages: Vec<&str> = Vec::new();
    let span = |stage: &str, (version, by, since): (String, usize, i64), until: Option<i64>| {
        let event = &events[by];
        json!({
            "stage": stage,
            "version": version,
            "from": format_instant(since),
            "until": until.map(format_instant),
            "by": event.who,
            "why": first_line(&event.message),
            "forced": forced(event),
            "gates": gates_summary(event),
            "tag": event.tag,
        })
    };
    for (index, event) in events.iter().enumerate() {
        replay.apply(index, event);
        if let Some(stage) = event.stage.as_deref()
            && !stages.contains(&stage)
        {
            stages.push(stage);
        }
        // A deregistration leaves every stage that held the version.
        for &stage in &stages {
            let holder = replay.holder(stage);
            let same = match (open.get(stage), &holder) {
                (Some((version, by, _)), Some(h)) => *version == h.version && *by == h.assigned_by,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(closed) = open.remove(stage) {
                spans.push((stage.to_string(), closed.2, span(stage, closed, Some(event.time))));
            }
            if let Some(h) = holder {
                open.insert(stage, (h.version, h.assigned_by, event.time));
            }
        }
    }
    for (stage, still) in open {
        spans.push((stage.to_string(), still.2, span(stage, still, None)));
    }
    spans.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    spans.into_iter().map(|(_, _, v)| v).collect()
}

/// Every move, oldest first. The unassignment gourd writes before
/// promoting another version is shown as part of that promotion.
fn moves(events: &[Event]) -> Vec<Value> {
    let mut replay = Replay::default();
    let mut out = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let before = event.stage.as_deref().and_then(|s| replay.holder(s)).map(|h| h.version);
        replay.apply(index, event);
        let record = event.record.as_deref();
        if event.action == Action::Unassign && record.is_some_and(|r| r.replaced_by.is_some()) {
            continue;
        }
        let version = event.version.clone().unwrap_or_default();
        let stage = event.stage.clone().unwrap_or_default();
        let previous = before.or_else(|| record.and_then(|r| r.previous.as_ref()).map(|p| p.version.clone()));
        let what = match event.action {
            Action::Register => format!("register {version}"),
            Action::Deregister => format!("deregister {version}"),
            Action::Assign => format!("{stage}: {} → {version}", previous.as_deref().unwrap_or("(none)")),
            Action::Unassign => format!("{stage}: {version} → (none)"),
            Action::Deprecate => "deprecate".to_string(),
            Action::Create => "create".to_string(),
        };
        let gates: Vec<Value> = record
            .map(|r| {
                r.gates
                    .iter()
                    .map(|g| json!({"gate": g["gate"], "passed": g["passed"], "reason": g["reason"]}))
                    .collect()
            })
            .unwrap_or_default();
        out.push(json!({
            "time": format_instant(event.time),
            "action": event.action.name(),
            "what": what,
            "version": event.version,
            "stage": event.stage,
            "previous": previous,
            "who": event.who,
            "why": first_line(&event.message),
            "forced": forced(event),
            "gates": gates,
            "gates_summary": gates_summary(event),
            "via": record.and_then(|r| r.via.clone()),
            "tag": event.tag,
        }));
    }
    out
}

fn forced(event: &Event) -> bool {
    event.record.as_ref().is_some_and(|r| r.forced)
}

/// `2/2 passed`, `FORCED: 1 of 2 failed`, or empty without gates.
fn gates_summary(event: &Event) -> String {
    let Some(record) = &event.record else { return String::new() };
    let total = record.gates.len();
    let failed = record.gates.iter().filter(|g| g["passed"] != json!(true)).count();
    match (record.forced, total) {
        (true, 0) => "FORCED".to_string(),
        (true, _) => format!("FORCED: {failed} of {total} failed"),
        (false, 0) => String::new(),
        (false, _) => format!("{}/{total} passed", total - failed),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn short(hex: &str) -> String {
    hex[..hex.len().min(12)].to_string()
}
