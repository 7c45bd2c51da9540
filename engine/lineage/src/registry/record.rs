//! gourd's record of a registry move, kept in the annotated tag's message
//! after the human message, on one line of its own:
//!
//! ```text
//! Promote: accuracy up 2 points            ← what GTO shows as the message
//!
//! gourd-record-v1: {"action":"assign","version":"v0.0.2",…}
//! ```
//!
//! Fields are only ever added, never renamed; a tag without the line (one
//! GTO wrote) is still a registry move, with only what its name and the
//! tag object say.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tag::Action;

const MARKER: &str = "gourd-record-v1: ";

/// What gourd records with a move.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MoveRecord {
    pub action: Option<Action>,
    /// The version moved (for an assignment: the version now in the stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The artifact's workspace path when it was registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The artifact's content digest (BLAKE3 of the file, or gourd's folder
    /// digest; see docs/keys.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `file` or `dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// The lineage of the run that built it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<LineageRef>,
    /// Metrics file → its JSON: the producing stage's and those of the
    /// stages that evaluated exactly these bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
    /// The producing stage's inputs: path → digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub cmd: serde_json::Value,
    /// Why, as the user said it (`-m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The version that held the stage before this move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
    /// The gates checked, and what each found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<serde_json::Value>,
    /// A failing gate was overridden (`--force`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// Set on the unassignment gourd writes for the previous holder when it
    /// promotes another version: the version that replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// When the move was made, to the millisecond (the tag says seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Where the move was made: a pipeline stage, or the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default)]
    pub gourd_version: String,
}

/// The lineage that produced a registered artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineageRef {
    pub stage: String,
    /// The stage key: the cache entry that holds the artifact.
    pub key: String,
    pub workspace_commit: Option<String>,
    pub workspace_dirty: bool,
    pub finished_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The tag that had put it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// The tag message: `human`, a blank line, the record line.
pub fn compose(human: &str, record: &MoveRecord) -> String {
    let json = serde_json::to_string(record).expect("records serialize");
    format!("{}\n\n{MARKER}{json}\n", human.trim_end())
}

/// The human part of a tag message and gourd's record, if it has one.
pub fn split(message: &str) -> (String, Option<MoveRecord>) {
    match message.rfind(&format!("\n{MARKER}")).map(|at| at + 1).or(message.starts_with(MARKER).then_some(0)) {
        Some(at) => {
            let line = message[at + MARKER.len()..].lines().next().unwrap_or_default();
            let record = serde_json::from_str(line).ok();
            (message[..at].trim().to_string(), record)
        }
        None => (message.trim().to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_back_and_the_human_part_stays_first() {
        let record = MoveRecord {
            action: Some(Action::Assign),
            version: Some("v0.0.2".into()),
            digest: Some("ab".repeat(32)),
            gates: vec![serde_json::json!({"gate": "accuracy >= 0.9", "passed": true})],
            ..MoveRecord::default()
        };
        let message = compose("Better on the new data\nsecond line\n", &record);
        assert!(message.starts_with("Better on the new data\nsecond line\n\ngourd-record-v1: {"));
        assert_eq!(split(&message), ("Better on the new data\nsecond line".to_string(), Some(record)));
        assert_eq!(split("Assigning stage prod"), ("Assigning stage prod".to_string(), None));
    }
}
