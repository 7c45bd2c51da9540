//! Step configurations, as the pipeline gives them.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::StepError;

pub fn parse<T: DeserializeOwned>(config: &serde_json::Value) -> Result<T, StepError> {
    serde_json::from_value(config.clone()).map_err(|e| StepError::Config(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// A folder holding one subfolder per label.
    pub input: String,
    pub output: String,
    /// Side of the square images in the dataset.
    #[serde(default = "default_size")]
    pub size: u32,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    #[serde(default)]
    pub seed: u64,
    /// A `validate` report; the images it rejected are left out.
    pub validation: Option<String>,
}

fn default_size() -> u32 {
    32
}

fn default_test_fraction() -> f64 {
    0.2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    pub input: String,
    /// The report (JSON).
    pub output: String,
    /// Images smaller than this on either side are rejected.
    #[serde(default = "default_min_size")]
    pub min_size: u32,
    /// Images whose sharpness (variance of the Laplacian) is below this are rejected as blurry.
    #[serde(default = "default_min_sharpness")]
    pub min_sharpness: f64,
    /// Images with more than this fraction of green-dominated pixels are rejected.
    #[serde(default = "default_max_green")]
    pub max_green_fraction: f64,
    /// Hard check: every label keeps at least this many accepted images.
    #[serde(default = "default_min_per_class")]
    pub min_per_class: usize,
    /// Hard check: largest class / smallest class, after rejections.
    #[serde(default = "default_max_imbalance")]
    pub max_imbalance: f64,
    /// Hard check: a CSV file's header and column types.
    pub table: Option<Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub path: String,
    pub columns: Vec<Column>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    /// `string`, `number` or `integer`.
    #[serde(rename = "type")]
    pub kind: String,
}

fn default_min_size() -> u32 {
    16
}
fn default_min_sharpness() -> f64 {
    15.0
}
fn default_max_green() -> f64 {
    0.1
}
fn default_min_per_class() -> usize {
    5
}
fn default_max_imbalance() -> f64 {
    4.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Train {
    pub dataset: String,
    pub output: String,
    /// The layers, in order: `{ type = "conv2d", out = 16, kernel = 3 }`, ...
    pub model: Vec<serde_json::Value>,
    #[serde(default = "default_optimizer")]
    pub optimizer: String,
    pub lr: f64,
    pub epochs: u32,
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    #[serde(default)]
    pub seed: u64,
    /// Threads for libtorch on the CPU; results are bit-identical for a fixed seed and thread count.
    #[serde(default = "default_threads")]
    pub threads: u32,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Where to write training curves (JSON), usually declared as metrics.
    pub curves: Option<String>,
}

fn default_optimizer() -> String {
    "adam".into()
}
fn default_batch() -> u32 {
    32
}
fn default_threads() -> u32 {
    1
}
fn default_momentum() -> f64 {
    0.9
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluate {
    pub model: String,
    pub dataset: String,
    pub output: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predict {
    pub model: String,
    /// A folder of images (searched recursively) or a `.safetensors` file with an `x` tensor.
    pub input: String,
    pub output: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    pub candidates: Vec<Candidate>,
    /// A dotted path into each candidate's metrics JSON, e.g. `accuracy`.
    pub metric: String,
    /// `max` or `min`.
    #[serde(default = "default_goal")]
    pub goal: String,
    /// Where the winner's model folder is copied.
    pub output: String,
    /// Where to record the choice (JSON); default `OUTPUT/selection.json`.
    /// Kept apart from the model, the model's bytes change only when the
    /// winner does, and what reads the model re-runs only then.
    pub record: Option<String>,
}

#[derive(Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    pub name: String,
    pub model: String,
    pub metrics: String,
}

fn default_goal() -> String {
    "max".into()
}
