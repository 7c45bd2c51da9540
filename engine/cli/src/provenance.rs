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

/// The stages that produced `record`'s deps, recursively, down to sources.
pub fn upstream(
    ws: &Workspace,
    records: &[Record],
    record: &Record,
    seen: &mut BTreeSet<String>,
    depth: usize,
) -> Vec<Value> {
    let mut out = Vec::new();
    for (dep, digest) in &record.deps {
        let producer = records.iter().find(|r| {
            r.stage != record.stage && r.output_holding(dep).is_some() && {
                let produced = digest_of(ws, r, dep);
                produced.is_none() || produced.as_deref() == Some(digest.as_str())
            }
        });
        let mut node = json!({ "path": dep, "digest": digest });
        match producer {
            Some(producer) => {
                node["stage"] = json!(producer.stage);
                node["key"] = json!(producer.key);
                let id = format!("{}@{}", producer.stage, producer.key);
                if depth < 64 && seen.insert(id) {
                    node["upstream"] = json!(upstream(ws, records, producer, seen, depth + 1));
                } else {
                    node["upstream"] = json!([]);
                    node["shown_above"] = json!(true);
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
