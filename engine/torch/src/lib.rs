//! gourd's built-in ML steps, natively on libtorch: the only crate that links
//! `tch`. `gourd run` runs a step in a child process (`gourd-step NAME CONFIG`)
//! with the workspace root as working directory, so every path in a step's
//! configuration is workspace-relative.
//!
//! - `images`: labelled image folders to a tensor dataset (safetensors);
//! - `validate`: data checks with thresholds, a report, and hard failures;
//! - `train`: a model described as a list of layers, trained deterministically;
//! - `evaluate`: accuracy, loss, per-class precision and recall, confusion;
//! - `predict`: batch inference;
//! - `select`: the best of several models by a metric.

mod config;
mod dataset;
mod device;
mod error;
mod evaluate;
mod imaging;
mod model;
mod predict;
mod select;
pub mod serving;
mod train;
mod validate;

pub use device::cuda_device_count;
pub use error::StepError;

/// Runs the built-in step `name` with its configuration (JSON).
pub fn run_step(name: &str, config: &serde_json::Value) -> Result<(), StepError> {
    match name {
        "images" => dataset::run(config::parse(config)?),
        "validate" => validate::run(config::parse(config)?),
        "train" => train::run(config::parse(config)?),
        "evaluate" => evaluate::run(config::parse(config)?),
        "predict" => predict::run(config::parse(config)?),
        "select" => select::run(config::parse(config)?),
        other => Err(StepError::Config(format!("there is no built-in step `{other}`"))),
    }
}
