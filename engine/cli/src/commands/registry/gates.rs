//! Promotion gates: the checks the pipeline declares for a registry stage
//! (`registry.NAME.gates.STAGE`), run against the metrics recorded with the
//! candidate version and with the champion (the version the stage holds).

use gourd_core::gate::{self, Check};
use gourd_core::model::Pipeline;
use serde_json::json;

use super::Loaded;
use crate::error::CommandError;
use crate::workspace::Location;

/// What the gates of a stage found for a candidate.
#[derive(Default)]
pub struct Evidence {
    pub checks: Vec<Check>,
    /// The version the stage held, compared against.
    pub champion: Option<String>,
}

impl Evidence {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }

    pub fn summary(&self) -> String {
        format!("{} of {} gates failed", self.failed(), self.checks.len())
    }

    /// What to add to the line saying a promotion happened.
    pub fn suffix(&self) -> String {
        match (self.checks.len(), self.passed()) {
            (0, _) => String::new(),
            (n, true) => format!(" Gates: {n} of {n} passed."),
            (n, false) => format!(" Gates: {} of {n} failed, overridden.", self.failed()),
        }
    }

    /// One line per check.
    pub fn lines(&self) -> String {
        let champion = self.champion.as_deref().map(|c| format!(" (champion {c})")).unwrap_or_default();
        self.checks
            .iter()
            .map(|c| {
                let mark = if c.passed { "passed" } else { "FAILED" };
                let against = if c.gate.contains("champion.") { champion.as_str() } else { "" };
                format!("  {mark}  {}{against}: {}", c.gate, c.reason)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn refusal(&self, name: &str, version: &str, stage: &str) -> CommandError {
        CommandError::user(format!("{name} {version} cannot enter `{stage}`: {}\n{}", self.summary(), self.lines()))
            .with_hint("`--force` promotes it anyway (for a rollback); history records the override and the evidence")
    }

    /// The evidence as the tag's record keeps it.
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        self.checks
            .iter()
            .map(|c| {
                let mut value = serde_json::to_value(c).expect("checks serialize");
                if c.gate.contains("champion.") {
                    value["champion"] = json!(self.champion);
                }
                value
            })
            .collect()
    }
}

/// The pipeline, when the workspace has one; a repository without
/// `gourd.ncl` (one GTO manages) declares no gates.
pub fn pipeline(location: &Location) -> Result<Option<Pipeline>, CommandError> {
    if location.file.is_none() && location.pipeline_file().is_err() {
        return Ok(None);
    }
    Ok(Some(location.load_checked(false)?.pipeline))
}

/// Checks the gates the pipeline declares for `stage` of `loaded`'s
/// artifact, for `version`.
pub fn check(location: &Location, loaded: &Loaded, version: &str, stage: &str) -> Result<Evidence, CommandError> {
    let Some(pipeline) = pipeline(location)? else { return Ok(Evidence::default()) };
    let Some(gates) = pipeline.registry.get(&loaded.name).and_then(|m| m.gates.get(stage)) else {
        return Ok(Evidence::default());
    };
    let metrics_of = |version: &str| {
        loaded.registration(version).and_then(|e| e.record.as_ref()).map(|r| r.metrics.clone()).unwrap_or_default()
    };
    let candidate_files = metrics_of(version);
    let candidate = |path: &str| candidate_files.values().find_map(|json| gate::lookup(json, path));
    let champion = loaded.state.stages.get(stage).map(|h| h.version.clone());
    let champion_files = champion.as_deref().map(metrics_of).unwrap_or_default();
    let champion_lookup = |path: &str| champion_files.values().find_map(|json| gate::lookup(json, path));
    let champion_metrics: Option<gate::Metrics<'_>> = champion.as_ref().map(|_| &champion_lookup as gate::Metrics<'_>);
    let checks = gates.iter().map(|g| g.check(&candidate, champion_metrics)).collect();
    Ok(Evidence { checks, champion })
}
