//! Promotion gates: the checks a version must pass to enter a stage.

use super::Loaded;
use crate::error::CommandError;
use crate::workspace::Location;

/// What the gates of a stage found for a candidate.
#[derive(Default)]
pub struct Evidence {
    pub checks: Vec<serde_json::Value>,
}

impl Evidence {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c["passed"] == serde_json::json!(true))
    }

    pub fn summary(&self) -> String {
        String::new()
    }

    pub fn suffix(&self) -> String {
        String::new()
    }

    pub fn refusal(&self, name: &str, version: &str, stage: &str) -> CommandError {
        CommandError::user(format!("{name} {version} cannot enter `{stage}`"))
    }

    pub fn to_json(&self) -> Vec<serde_json::Value> {
        self.checks.clone()
    }
}

/// Checks the gates the pipeline declares for `stage`.
pub fn check(_location: &Location, _loaded: &Loaded, _version: &str, _stage: &str) -> Result<Evidence, CommandError> {
    Ok(Evidence::default())
}
