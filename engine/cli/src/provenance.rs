//! Following lineage records upstream, from an artifact to its sources.

use std::collections::BTreeSet;

use gourd_core::workspace::Workspace;
use gourd_lineage::Record;
use serde_json::{Value, json};

/// The digest of `path` as `record` produced it: the output's own digest, or
/// for a path inside an output folder, its entry in the stored listing.
pub fn digest_of(ws: &Workspace, record: &Record, path: &str) -> Option<String> {
    let (output, digest) = record.output_holding(path)?;
    if output == path {
        return Some(digest.to_string());
    }
    let rel = &path[output.len() + 1..];
    let digest = digest.parse().ok()?;
    ws.store.find_in_tree(&digest, rel).map(|(_, d)| d.to_string())
}

/// How deep `gourd lineage` follows inputs upstream unless told otherwise.
pub const DEFAULT_DEPTH: usize = 64;

/// The stages that produced `record`'s deps, recursively, down to sources,
/// at most `max_depth` stages deep. A producer met again is marked
/// `shown_above`; one at the depth limit is marked `cut`, with the number of
/// distinct stage runs above it in `more_upstream`.
pub fn upstream(
    ws: &Workspace,
    records: &[Record],
    record: &Record,
    seen: &mut BTreeSet<String>,
    depth: usize,
    max_depth: usize,
) -> Vec<Value> {
    let mut out = Vec::new();
    for (dep, digest) in &record.deps {
        let mut node = json!({ "path": dep, "digest": digest });
        match producer(ws, records, record, dep, digest) {
            Some(producer) => {
                node["stage"] = json!(producer.stage);
                node["key"] = json!(producer.key);
                node["upstream"] = json!([]);
                if seen.contains(&run_id(producer)) {
                    node["shown_above"] = json!(true);
                } else if depth >= max_depth {
                    node["cut"] = json!(true);
                    node["more_upstream"] = json!(count_upstream(ws, records, producer));
                } else {
                    seen.insert(run_id(producer));
                    node["upstream"] = json!(upstream(ws, records, producer, seen, depth + 1, max_depth));
                }
            }
            None => {
                node["stage"] = Value::Null;
                node["source"] = json!(true);
            }
        }
        out.push(node);
    }
    out
}

/// The record that wrote `dep` with this `digest`, if a recorded stage did.
fn producer<'a>(ws: &Workspace, records: &'a [Record], record: &Record, dep: &str, digest: &str) -> Option<&'a Record> {
    records.iter().find(|r| {
        r.stage != record.stage && r.output_holding(dep).is_some() && {
            let produced = digest_of(ws, r, dep);
            produced.is_none() || produced.as_deref() == Some(digest)
        }
    })
}

fn run_id(record: &Record) -> String {
    format!("{}@{}", record.stage, record.key)
}

/// How many distinct stage runs lie upstream of `record`.
fn count_upstream(ws: &Workspace, records: &[Record], record: &Record) -> usize {
    let mut found = BTreeSet::new();
    let mut todo = vec![record];
    while let Some(current) = todo.pop() {
        for (dep, digest) in &current.deps {
            if let Some(producer) = producer(ws, records, current, dep, digest) {
                if producer.key != record.key && found.insert(run_id(producer)) {
                    todo.push(producer);
                }
            }
        }
    }
    found.len()
}
