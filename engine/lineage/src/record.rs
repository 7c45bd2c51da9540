//! The record format. Documented in `docs/lineage.md`; fields are only ever
//! added, never renamed, so old lineage stays readable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one stage execution (or restore) produced, and from what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub stage: String,
    /// The stage key (hex).
    pub key: String,
    /// `{"shell": "…"}` or `{"argv": […]}`.
    pub cmd: serde_json::Value,
    /// Dep path → content digest.
    pub deps: BTreeMap<String, String>,
    /// Output path → content digest (metrics files included).
    pub outs: BTreeMap<String, String>,
    /// Output path → kind (`data`, `feature`, `model`, `metrics`).
    #[serde(default)]
    pub out_kinds: BTreeMap<String, String>,
    pub params: serde_json::Value,
    /// Metrics file path → its parsed JSON.
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub executor: String,
    /// Where a stage executed remotely: the service, and its worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_by: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default)]
    pub duration_ms: u64,
    pub exit_code: i32,
    /// `ran` or `restored`.
    pub status: String,
    /// HEAD when the run happened; `None` in a repository with no commits.
    pub workspace_commit: Option<String>,
    pub workspace_dirty: bool,
    pub gourd_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
}

impl Record {
    /// The output holding `path`: `path` itself or a folder above it.
    pub fn output_holding(&self, path: &str) -> Option<(&str, &str)> {
        self.outs
            .iter()
            .find(|(out, _)| {
                path == out.as_str() || path.strip_prefix(out.as_str()).is_some_and(|r| r.starts_with('/'))
            })
            .map(|(out, digest)| (out.as_str(), digest.as_str()))
    }
}

/// What a lineage commit records about the run as a whole (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Stages this run ran or restored.
    pub stages: Vec<String>,
    pub recorded_at: String,
    pub workspace_commit: Option<String>,
    pub workspace_dirty: bool,
    pub gourd_version: String,
}
