//! Data drift between a reference table and a current one: per-column
//! statistics chosen as Evidently chooses them by default, computed as scipy
//! computes them, over CSV or JSON-lines files streamed in bounded memory.
//! This is gourd's built-in `drift` step (see docs/monitoring.md); it needs
//! no libtorch.

pub mod column;
pub mod embedding;
pub mod grid;
pub mod ks;
pub mod mmd;
pub mod read;
pub mod select;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use select::{ColumnReport, Test};

use crate::column::{CURRENT, REFERENCE};
use crate::read::{Column, Format};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("`{}` is not valid CSV: {message}", path.display())]
    Csv { path: PathBuf, message: String },
    #[error("line {line} of `{}` is not valid: {message}", path.display())]
    Json { path: PathBuf, line: u64, message: String },
    #[error("`{}` holds no rows", path.display())]
    Empty { path: PathBuf },
    #[error("`{}` has no columns to compare (its rows have no fields)", path.display())]
    NoColumns { path: PathBuf },
    #[error("`{}` has no column `{column}`", path.display())]
    MissingColumn { path: PathBuf, column: String },
    #[error("column `{column}` has no values in `{}` (every value is missing)", path.display())]
    NoValues { path: PathBuf, column: String },
    #[error(
        "line {line} of `{}`: column `{column}` holds `{value}`, which is not a number; the column is numeric (line {first_line} of `{}` holds a number)",
        path.display(),
        first_file.display()
    )]
    NotNumeric { path: PathBuf, line: u64, column: String, value: String, first_file: PathBuf, first_line: u64 },
    #[error("column `{column}`: unknown test `{name}` (the tests are: ks, chi2, z, wasserstein, jensenshannon, psi)")]
    UnknownTest { column: String, name: String },
    #[error("column `{column}` is categorical, and the `{test}` test needs numbers")]
    NeedsNumeric { column: String, test: &'static str },
    #[error(
        "column `{column}` has more than {} distinct values: too many to count for the `{test}` test",
        column::DISTINCT_LIMIT
    )]
    TooManyValues { column: String, test: &'static str },
    #[error("the step's configuration: {0}")]
    Config(String),
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl Error {
    /// What the user can do about it, where there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotNumeric { column, .. } => {
                Some(format!("list `{column}` in `categorical` to compare its values as categories, or fix the value"))
            }
            Error::MissingColumn { .. } => {
                Some("both files need every compared column; choose them with `columns`".to_string())
            }
            _ => None,
        }
    }
}

fn default_share() -> f64 {
    0.5
}

/// The `drift` step's configuration, as `gourd.steps.drift { .. }` gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The data the model was trained on.
    pub reference: PathBuf,
    /// The new data.
    pub current: PathBuf,
    /// The report.
    pub output: PathBuf,
    /// A file holding only `{"drift": bool}`, for stages that should re-run
    /// only when the verdict changes.
    #[serde(default)]
    pub decision: Option<PathBuf>,
    /// The columns to compare (default: all of the reference's).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Columns read as categories even when they hold numbers.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// A test for every column, instead of the defaults.
    #[serde(default)]
    pub test: Option<String>,
    /// A test per column.
    #[serde(default)]
    pub tests: BTreeMap<String, String>,
    /// A threshold for every column.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// A threshold per column.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    /// The data set drifts when at least this share of its columns do.
    #[serde(default = "default_share")]
    pub drift_share: f64,
    /// `csv` or `jsonl` (default: from each file's extension).
    #[serde(default)]
    pub format: Option<String>,
    /// Compare the fields `PREFIX0`, `PREFIX1`, … of JSON lines as one
    /// vector (a model's embedding) with MMD, reported as `embedding`.
    /// Without `columns`, nothing else is compared.
    #[serde(default)]
    pub embedding: Option<String>,
    /// A model folder whose embeddings of image folders are compared
    /// (`reference` and `current` are then folders of images, or JSON lines
    /// as `gourd serve` logs them); needs the torch build.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Permutations for the MMD test's p-value.
    #[serde(default = "default_permutations")]
    pub permutations: usize,
    /// Rows of each side the MMD test takes at most (a seeded random choice).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Seeds the MMD test's sampling and permutations.
    #[serde(default)]
    pub seed: u64,
}

fn default_permutations() -> usize {
    100
}

fn default_max_rows() -> usize {
    1000
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub drift: bool,
    pub share: f64,
    pub columns: BTreeMap<String, ColumnReport>,
}

impl Config {
    pub fn from_json(value: &serde_json::Value) -> Result<Config, Error> {
        let config: Config = serde_json::from_value(value.clone()).map_err(|e| Error::Config(e.to_string()))?;
        if !(0.0..=1.0).contains(&config.drift_share) {
            return Err(Error::Config(format!("`drift_share` must be between 0 and 1, not {}", config.drift_share)));
        }
        if let Some(format) = &config.format
            && Format::parse(format).is_none()
        {
            return Err(Error::Config(format!("unknown `format` `{format}` (expected `csv` or `jsonl`)")));
        }
        if let Some(name) = &config.test
            && Test::parse(name).is_none()
        {
            return Err(Error::UnknownTest { column: "*".to_string(), name: name.clone() });
        }
        for (column, name) in &config.tests {
            if Test::parse(name).is_none() {
                return Err(Error::UnknownTest { column: column.clone(), name: name.clone() });
            }
        }
        if let Some(prefix) = &config.embedding
            && prefix.is_empty()
        {
            return Err(Error::Config("`embedding` is the prefix of the embedding fields, e.g. `emb_`".into()));
        }
        if config.embedding.is_none() && config.columns.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::Config(
                "`columns` is empty: list the columns to compare, or leave it out to compare all of them".into(),
            ));
        }
        if config.max_rows < 2 {
            return Err(Error::Config("`max_rows` must be at least 2".into()));
        }
        // Thresholds in range, before anything runs: against the test a
        // column is given, else only above 0 (its test is chosen by the data).
        let given = |column: &str| {
            if config.embedding.is_some() && column == embedding::COLUMN {
                return Some(Test::Mmd);
            }
            config.tests.get(column).or(config.test.as_ref()).and_then(|name| Test::parse(name))
        };
        let thresholds = config.threshold.map(|t| ("*", t)).into_iter();
        for (column, threshold) in thresholds.chain(config.thresholds.iter().map(|(c, t)| (c.as_str(), *t))) {
            match given(column) {
                Some(test) => select::check_threshold(column, test, threshold)?,
                None if !(threshold.is_finite() && threshold > 0.0) => {
                    return Err(Error::Config(format!("column `{column}`: a threshold is above 0, not {threshold}")));
                }
                None => {}
            }
        }
        Ok(config)
    }

    fn format_of(&self, path: &Path) -> Format {
        self.format.as_deref().and_then(Format::parse).unwrap_or_else(|| Format::of(path))
    }
}

/// Compares the two files of `config` (paths relative to `root`).
pub fn compare(config: &Config, root: &Path) -> Result<Report, Error> {
    let reference = root.join(&config.reference);
    let current = root.join(&config.current);
    let mut reports = BTreeMap::new();
    if let Some(prefix) = &config.embedding {
        let threshold = config.thresholds.get(embedding::COLUMN).copied().unwrap_or(0.05);
        select::check_threshold(embedding::COLUMN, Test::Mmd, threshold)?;
        let report = embedding::compare(
            &reference,
            &current,
            prefix,
            threshold,
            config.permutations,
            config.max_rows,
            config.seed,
        )?;
        reports.insert(embedding::COLUMN.to_string(), report);
        if config.columns.as_ref().is_none_or(Vec::is_empty) {
            return Ok(decide(reports, config.drift_share));
        }
    }
    let mut columns: Vec<Column> = match &config.columns {
        Some(names) => names.iter().map(|n| Column::new(n.clone(), config.categorical.contains(n))).collect(),
        None => Vec::new(),
    };
    read::read(&reference, config.format_of(&config.reference), REFERENCE, &mut columns, &config.categorical)?;
    if columns.is_empty() {
        return Err(Error::NoColumns { path: reference.clone() });
    }
    for column in &mut columns {
        if let Some(column::Accumulator::Numeric(acc)) = &mut column.acc {
            acc.reference_done();
        }
    }
    let tabular = |name: &&String| config.embedding.is_none() || name.as_str() != embedding::COLUMN;
    for name in config.tests.keys().chain(config.thresholds.keys().filter(tabular)).chain(&config.categorical) {
        if !columns.iter().any(|c| &c.name == name) {
            return Err(Error::MissingColumn { path: reference.clone(), column: name.clone() });
        }
    }
    read::read(&current, config.format_of(&config.current), CURRENT, &mut columns, &config.categorical)?;

    for column in &columns {
        let Some(acc) = &column.acc else {
            return Err(Error::NoValues { path: reference.clone(), column: column.name.clone() });
        };
        if acc.n()[REFERENCE] == 0 {
            return Err(Error::NoValues { path: reference.clone(), column: column.name.clone() });
        }
        if acc.n()[CURRENT] == 0 {
            return Err(Error::NoValues { path: current.clone(), column: column.name.clone() });
        }
        let test = match config.tests.get(&column.name).or(config.test.as_ref()) {
            Some(name) => Test::parse(name).expect("checked with the configuration"),
            None => select::default_test(acc),
        };
        let threshold = config
            .thresholds
            .get(&column.name)
            .copied()
            .or(config.threshold)
            .unwrap_or_else(|| test.default_threshold());
        reports.insert(column.name.clone(), select::run(&column.name, acc, test, threshold)?);
    }
    Ok(decide(reports, config.drift_share))
}

fn decide(reports: BTreeMap<String, ColumnReport>, drift_share: f64) -> Report {
    let drifted = reports.values().filter(|r| r.drift).count();
    let share = if reports.is_empty() { 0.0 } else { drifted as f64 / reports.len() as f64 };
    Report { drift: !reports.is_empty() && share >= drift_share, share, columns: reports }
}

/// Runs the step: compares, writes the report (and the decision).
pub fn run_step(config: &serde_json::Value, root: &Path) -> Result<Report, Error> {
    let config = Config::from_json(config)?;
    let report = compare(&config, root)?;
    write_json(&root.join(&config.output), &report)?;
    if let Some(decision) = &config.decision {
        write_json(&root.join(decision), &serde_json::json!({ "drift": report.drift }))?;
    }
    Ok(report)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(value).expect("plain data");
    text.push('\n');
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::Write { path: path.to_path_buf(), source: e })?;
    }
    std::fs::write(path, text).map_err(|e| Error::Write { path: path.to_path_buf(), source: e })
}
