//! The validated pipeline the engine trusts.
//!
//! `gourd-spec` builds these types from `gourd.ncl`; every check that can be
//! made without touching the disk has been made by then.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::path::WsPath;

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Stages sorted by name.
    pub stages: Vec<Stage>,
    /// The shared cache, if the pipeline names one.
    pub remote: Option<Remote>,
    /// The models the registry holds, by registry name (`registry` in
    /// `gourd.ncl`).
    pub registry: BTreeMap<String, RegisteredModel>,
    /// The plots: the stages' (`plots` of a stage, whose files are that
    /// stage's outputs) and the top-level `plots`, in that order.
    pub plots: Vec<Plot>,
    /// How outputs are restored from the cache (`cache.link`).
    pub link: Link,
}

/// How a restored file is made from its cache object (`cache.link` in
/// `gourd.ncl`, DVC's `cache.type`); see docs/cache.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// A file of its own: a reflink where the file system can make one,
    /// else a copy. Never shares bytes the cache holds with a later write.
    #[default]
    Copy,
    /// A reflink (copy-on-write clone), or an error where the file system
    /// cannot make one.
    Reflink,
    /// A hard link to the read-only object: no bytes written at all, and the
    /// output is read-only (a write to it would be a write to the cache).
    Hardlink,
}

impl Link {
    pub fn name(self) -> &'static str {
        match self {
            Link::Copy => "copy",
            Link::Reflink => "reflink",
            Link::Hardlink => "hardlink",
        }
    }
}

/// A plot (DVC's `plots`): series drawn from data files (JSON, CSV, TSV) or
/// an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// The name: the data file's path, or the key of a top-level plot.
    pub id: String,
    /// The stage that writes the files, for a stage's plots.
    pub stage: Option<String>,
    /// Data file → the fields drawn on y (empty: every numeric field but x).
    pub y: Vec<(WsPath, Vec<String>)>,
    /// Data file → the field on x (absent: the row's index, `step`).
    pub x: BTreeMap<WsPath, String>,
    pub template: PlotTemplate,
    pub title: Option<String>,
    pub x_label: Option<String>,
    pub y_label: Option<String>,
}

/// DVC's plot templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotTemplate {
    Linear,
    Simple,
    Scatter,
    ScatterJitter,
    Smooth,
    Confusion,
    ConfusionNormalized,
    BarHorizontal,
    BarHorizontalSorted,
}

impl PlotTemplate {
    pub const ALL: [(&'static str, PlotTemplate); 9] = [
        ("linear", PlotTemplate::Linear),
        ("simple", PlotTemplate::Simple),
        ("scatter", PlotTemplate::Scatter),
        ("scatter_jitter", PlotTemplate::ScatterJitter),
        ("smooth", PlotTemplate::Smooth),
        ("confusion", PlotTemplate::Confusion),
        ("confusion_normalized", PlotTemplate::ConfusionNormalized),
        ("bar_horizontal", PlotTemplate::BarHorizontal),
        ("bar_horizontal_sorted", PlotTemplate::BarHorizontalSorted),
    ];

    pub fn parse(name: &str) -> Option<PlotTemplate> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, t)| *t == self).map(|(n, _)| *n).expect("every template is listed")
    }
}

/// A model the pipeline puts in the registry: where it is, and the gates a
/// version must pass to enter each stage.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub path: WsPath,
    /// Stage → its gates, all of which must pass.
    pub gates: BTreeMap<String, Vec<crate::gate::Gate>>,
    /// The metrics files recorded with a version (empty: those of the stage
    /// that built it and of the stages that read it).
    pub metrics: Vec<WsPath>,
    /// What a model card says that lineage cannot know (`license`,
    /// `base_model`, `library_name`, ...), as written.
    pub card: BTreeMap<String, serde_json::Value>,
}

/// The `remote` record of `gourd.ncl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub kind: RemoteKind,
    pub endpoint: Option<String>,
    /// The bucket (S3).
    pub bucket: Option<String>,
    /// The folder (a folder remote), as written: relative to the workspace
    /// unless absolute.
    pub path: Option<String>,
    /// The instance name (REAPI).
    pub instance: String,
    pub prefix: String,
    pub region: Option<String>,
    /// Look results up in the remote cache.
    pub cache: bool,
    /// Publish new results to it.
    pub push: bool,
    /// Execute stages marked `remote` on the service (REAPI).
    pub execute: bool,
    /// Fail instead of executing locally when the remote cannot be reached.
    pub required: bool,
    /// How long a remote execution may take, queueing included.
    pub timeout: Duration,
    /// Platform properties sent with every remote action.
    pub platform: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteKind {
    S3,
    Reapi,
    Folder,
    Ssh,
}

impl RemoteKind {
    pub fn name(self) -> &'static str {
        match self {
            RemoteKind::S3 => "s3",
            RemoteKind::Reapi => "reapi",
            RemoteKind::Folder => "folder",
            RemoteKind::Ssh => "ssh",
        }
    }
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.binary_search_by(|s| s.name.as_str().cmp(name)).ok().map(|i| &self.stages[i])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub cmd: Command,
    pub deps: Vec<WsPath>,
    pub outs: Vec<Output>,
    pub metrics: Vec<WsPath>,
    /// A JSON object, kept as JSON so that `3` and `3.0` stay what they were.
    pub params: serde_json::Value,
    pub env: BTreeMap<String, String>,
    /// Names of environment variables passed through from the caller's
    /// environment. Neither names nor values enter the key or lineage's
    /// `env`; values are redacted from the stage's log.
    pub secrets: Vec<String>,
    pub executor: Executor,
    pub resources: Resources,
    pub wdir: WsPath,
    pub always_run: bool,
    /// Never executed: its last result here stands, whatever its deps say
    /// now (DVC's `frozen`).
    pub frozen: bool,
    /// A 'cuda stage runs on the CPU when no GPU is free to take.
    pub cpu_fallback: bool,
    /// Execute on the remote execution service when there is one.
    pub remote: bool,
    pub timeout: Option<Duration>,
    pub desc: Option<String>,
}

/// The largest param given as a `GOURD_PARAM_*` variable, in bytes.
pub const MAX_PARAM_VAR: usize = 32 * 1024;

impl Stage {
    /// Each param as an environment variable, so that shell stages need no
    /// JSON parser: `params = { train = { n_est = 50 } }` gives
    /// `GOURD_PARAM_TRAIN_N_EST=50`. Strings are given as they are, other
    /// values as JSON; names are upper-cased, with every character that is
    /// not a letter or digit written `_`.
    /// A value with a NUL cannot be passed in the environment, and one over
    /// [`MAX_PARAM_VAR`] bytes would keep the stage from starting at all
    /// (Linux takes at most 128 KiB in one variable): such params are in
    /// the `GOURD_PARAMS` file only.
    pub fn param_env(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        self.each_param_var(&mut |var, _, value| {
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if !value.contains('\0') && value.len() <= MAX_PARAM_VAR {
                out.insert(var, value);
            }
        });
        out
    }

    /// Two params that [`Stage::param_env`] would give one variable
    /// (`train.lr` and `train_lr`, `lr` and `LR`): their dotted names and
    /// the variable. One value would silently replace the other.
    pub fn param_env_clash(&self) -> Option<(String, String, String)> {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut clash = None;
        self.each_param_var(&mut |var, path, _| {
            if clash.is_none()
                && let Some(first) = seen.insert(var.clone(), path.to_string())
            {
                clash = Some((first, path.to_string(), var));
            }
        });
        clash
    }

    /// Calls `each` with the variable, the dotted name and the value of
    /// every param that is not a record.
    fn each_param_var(&self, each: &mut dyn FnMut(String, &str, &serde_json::Value)) {
        fn walk(
            var: &str,
            path: &str,
            value: &serde_json::Value,
            each: &mut dyn FnMut(String, &str, &serde_json::Value),
        ) {
            match value {
                serde_json::Value::Object(fields) => {
                    for (name, value) in fields {
                        let upper: String = name
                            .chars()
                            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
                            .collect();
                        let (var, path) = if path.is_empty() {
                            (upper, name.clone())
                        } else {
                            (format!("{var}_{upper}"), format!("{path}.{name}"))
                        };
                        walk(&var, &path, value, each);
                    }
                }
                other if !path.is_empty() => each(format!("GOURD_PARAM_{var}"), path, other),
                _ => {}
            }
        }
        walk("", "", &self.params, each);
    }

    /// The params the stage runs with, as lineage and `params diff` show
    /// them: its `params` and, for a built-in step, the step's configuration
    /// (`lr`, `epochs`, …) beside them (a field of `params` wins).
    pub fn recorded_params(&self) -> serde_json::Value {
        let Command::Step { config: serde_json::Value::Object(config), .. } = &self.cmd else {
            return self.params.clone();
        };
        let mut merged = config.clone();
        match &self.params {
            serde_json::Value::Object(params) => merged.extend(params.clone()),
            serde_json::Value::Null => {}
            other => {
                merged.insert("params".to_string(), other.clone());
            }
        }
        serde_json::Value::Object(merged)
    }

    /// Everything the stage writes: its outs, then its metrics files (which
    /// are cached like outs).
    pub fn outputs(&self) -> impl Iterator<Item = Output> + '_ {
        self.outs.iter().cloned().chain(self.metrics.iter().map(|path| Output {
            path: path.clone(),
            kind: OutputKind::Metrics,
            cache: true,
            persist: false,
        }))
    }

    /// Whether the stage takes secrets from the caller's environment, which
    /// never leave this machine: such a stage does not execute remotely.
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run by `sh -c`.
    Shell(String),
    /// Exec'd directly.
    Argv(Vec<String>),
    /// A built-in step, run by the gourd binary itself.
    Step { name: String, config: serde_json::Value },
}

impl Command {
    pub fn display(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Argv(argv) => argv.join(" "),
            Command::Step { name, .. } => format!("built-in step `{name}`"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub path: WsPath,
    pub kind: OutputKind,
    pub cache: bool,
    pub persist: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Data,
    Feature,
    Model,
    Metrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    #[default]
    Local,
    Cuda,
}

impl Executor {
    pub fn name(self) -> &'static str {
        match self {
            Executor::Local => "local",
            Executor::Cuda => "cuda",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
}

#[cfg(test)]
mod tests {
    use crate::testing::stage;

    #[test]
    fn params_become_variables_and_clashes_are_found() {
        let mut s = stage("a", &[], &[]);
        s.params = serde_json::json!({"train": {"lr": 0.1, "name": "x\u{0}y", "opt": "adam"}, "a-b": [1, 2]});
        let env = s.param_env();
        assert_eq!(
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
            [("GOURD_PARAM_A_B", "[1,2]"), ("GOURD_PARAM_TRAIN_LR", "0.1"), ("GOURD_PARAM_TRAIN_OPT", "adam")],
            "strings as they are, others as JSON, none holding a NUL"
        );
        assert_eq!(s.param_env_clash(), None);
        s.params = serde_json::json!({"train": {"lr": 0.1}, "train_lr": 99, "a": 1, "A": 2});
        assert_eq!(
            s.param_env_clash(),
            Some(("A".to_string(), "a".to_string(), "GOURD_PARAM_A".to_string())),
            "the first clash, in the params' order"
        );
        s.params = serde_json::json!(3);
        assert!(s.param_env().is_empty());
        // A list too large for the environment is in the params file only.
        let ids: Vec<u32> = (100_000..110_000).collect();
        s.params = serde_json::json!({"ids": ids, "small": "x".repeat(super::MAX_PARAM_VAR), "some": "y".repeat(4096)});
        assert_eq!(s.param_env().keys().collect::<Vec<_>>(), ["GOURD_PARAM_SMALL", "GOURD_PARAM_SOME"]);
    }
}
