//! The exported JSON, as Nickel gave it, and its validation into the
//! engine's types: everything the `Pipeline` contract checks (types, unknown
//! fields, names), so that a valid file needs no contract, and what the
//! contract cannot say.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gourd_core::gate::Gate;
use gourd_core::model::{
    Command, Executor, Link, Output, OutputKind, Pipeline, RegisteredModel, RemoteKind, Resources, Stage,
};
use gourd_core::path::WsPath;
use gourd_core::secrets;
use serde::Deserialize;

use crate::SpecError;

/// `T` read from a JSON object only. Serde also reads a struct from an
/// array of its fields in order, which would take `cmd = ["train", {...}]`
/// for the built-in step `train`, or `outs = [["m", "model", false, true]]`
/// for an output record; the `Pipeline` contract refuses both, and the
/// evaluation with it then says where.
struct Record<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Record<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as a map, straight into `T`: no copy of the value, and an
        // array is the deserializer's "invalid type" error.
        struct Map<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Map<T> {
            type Value = Record<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Record<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Record)
            }
        }
        deserializer.deserialize_map(Map(std::marker::PhantomData))
    }
}

impl<T: Default> Default for Record<T> {
    fn default() -> Self {
        Record(T::default())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    stages: BTreeMap<String, Record<RawStage>>,
    remote: Option<Record<RawRemote>>,
    #[serde(default)]
    registry: BTreeMap<String, Record<RawRegisteredModel>>,
    plots: Option<serde_json::Value>,
    cache: Option<Record<RawCache>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    #[serde(default)]
    link: Link,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegisteredModel {
    path: String,
    #[serde(default)]
    gates: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    card: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    kind: RemoteKind,
    endpoint: Option<String>,
    bucket: Option<String>,
    path: Option<String>,
    #[serde(default)]
    instance: String,
    #[serde(default = "default_prefix")]
    prefix: String,
    region: Option<String>,
    #[serde(default = "yes")]
    cache: bool,
    #[serde(default = "yes")]
    push: bool,
    #[serde(default = "yes")]
    execute: bool,
    #[serde(default)]
    required: bool,
    timeout: Option<f64>,
    #[serde(default)]
    platform: BTreeMap<String, String>,
}

fn default_prefix() -> String {
    "gourd".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    cmd: RawCommand,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    outs: Vec<RawOutput>,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    plots: Vec<serde_json::Value>,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    executor: Executor,
    #[serde(default)]
    resources: Record<RawResources>,
    wdir: Option<String>,
    #[serde(default)]
    always_run: bool,
    #[serde(default)]
    frozen: bool,
    #[serde(default)]
    cpu_fallback: bool,
    #[serde(default)]
    remote: bool,
    timeout: Option<f64>,
    desc: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Shell(String),
    Argv(Vec<String>),
    Step(Record<RawStep>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    step: String,
    #[serde(default)]
    config: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawOutput {
    Path(String),
    Record(Record<RawOutputRecord>),
}

/// `{ path, kind, cache, persist }`: a misspelt `persist` must not quietly
/// let the output be removed before the stage runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutputRecord {
    path: String,
    #[serde(default = "data")]
    kind: OutputKind,
    #[serde(default = "yes")]
    cache: bool,
    #[serde(default)]
    persist: bool,
}

fn data() -> OutputKind {
    OutputKind::Data
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResources {
    cpus: Option<u32>,
    gpus: Option<u32>,
}

/// A problem found in the exported value, with what locates it in the file.
struct Problem {
    stage: String,
    /// The offending string, as written in the file, to find its line.
    literal: Option<String>,
    /// Or the offending field of a record in the stage (`NAME = ...`).
    field: Option<String>,
    message: String,
    hint: Option<String>,
}

/// Turns the JSON export of `file` into a validated pipeline.
pub fn validate(json: &str, file: &Path) -> Result<Pipeline, SpecError> {
    let raw: RawPipeline = serde_json::from_str(json).map_err(|e| {
        unknown_field(json, file).unwrap_or_else(|| {
            // The position is in gourd's JSON export of the pipeline, not in
            // the user's file: it is left out.
            let message = e.to_string();
            let message = message
                .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
                .unwrap_or(&message)
                .to_string();
            let message = if message == "recursion limit exceeded" {
                "a value nests records or arrays more than 128 deep, more than gourd reads".to_string()
            } else {
                message
            };
            SpecError::Invalid { file: file.to_path_buf(), line: None, message, hint: None }
        })
    })?;
    let mut stages = Vec::with_capacity(raw.stages.len());
    let mut plots = Vec::new();
    for (name, Record(raw)) in raw.stages {
        if !is_stage_name(&name) {
            let source = std::fs::read_to_string(file).unwrap_or_default();
            return Err(SpecError::Invalid {
                file: file.to_path_buf(),
                line: crate::locate::line_of(&source, &name, None),
                message: format!("invalid stage name `{name}`"),
                hint: Some(format!(
                    "stage names use letters, digits, `_`, `-` and `.`, do not start with `-` or `.`, and are at most {MAX_STAGE_NAME} bytes long"
                )),
            });
        }
        match validate_stage(name, raw) {
            Ok((stage, stage_plots)) => {
                stages.push(stage);
                plots.extend(stage_plots);
            }
            Err(problem) => {
                let source = std::fs::read_to_string(file).unwrap_or_default();
                let line = match &problem.field {
                    Some(field) => crate::locate::line_of_field(&source, &problem.stage, field),
                    None => crate::locate::line_of(&source, &problem.stage, problem.literal.as_deref()),
                };
                let (message, hint) = (problem.message, problem.hint);
                return Err(SpecError::Invalid { file: file.to_path_buf(), line, message, hint });
            }
        }
    }
    stages.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(err) = stages.iter().find_map(|stage| python_quoted(stage, file)) {
        return Err(err);
    }
    let remote = match raw.remote {
        Some(Record(r)) => Some(validate_remote(r).map_err(|message| {
            let source = std::fs::read_to_string(file).unwrap_or_default();
            let line = source
                .lines()
                .position(|l| l.split_once("remote").is_some_and(|(_, rest)| rest.trim_start().starts_with('=')))
                .map(|i| i + 1);
            let message = format!("field `remote`: {message}");
            SpecError::Invalid { file: file.to_path_buf(), line, message, hint: None }
        })?),
        None => None,
    };
    let registry = validate_registry(raw.registry, file)?;
    if let Some(value) = &raw.plots {
        plots.extend(crate::plots::top_level(value).map_err(|(id, message)| {
            // The plot's id after the first `plots =`, else that `plots =`.
            let source = std::fs::read_to_string(file).unwrap_or_default();
            let plots_at = source.match_indices("plots").find(|(i, _)| source[i + 5..].trim_start().starts_with('='));
            let from = plots_at.map_or(0, |(i, _)| i);
            let id_at = id.and_then(|id| {
                let quoted = format!("\"{id}\"");
                source[from..].find(&quoted).or_else(|| source[from..].find(&format!("{id} ="))).map(|i| i + from)
            });
            let line = id_at.or(plots_at.map(|(i, _)| i)).map(|at| source[..at].matches('\n').count() + 1);
            SpecError::Invalid {
                file: file.to_path_buf(),
                line,
                message: format!("field `plots`: {message}"),
                hint: None,
            }
        })?);
    }
    let link = raw.cache.map(|cache| cache.0.link).unwrap_or_default();
    Ok(Pipeline { stages, remote, registry, plots, link })
}

/// The first field of the export that gourd does not know, found by
/// deserializing each record on its own, innermost first, so that serde names
/// the record's known fields (they cannot drift from the types).
fn unknown_field(json: &str, file: &Path) -> Option<SpecError> {
    fn check<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Option<(String, Vec<String>)> {
        let err = serde_json::from_value::<T>(value.clone()).err()?.to_string();
        crate::fields::parse_unknown_field(&err)
    }
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut found = None;
    if let Some(stages) = value.get("stages").and_then(|s| s.as_object()) {
        found = stages.iter().find_map(|(name, stage)| {
            let resources = || {
                let field = check::<RawResources>(stage.get("resources")?)?;
                Some((format!("the `resources` of stage `{name}`"), field))
            };
            let step = || {
                let field = check::<RawStep>(stage.get("cmd").filter(|c| c.is_object())?)?;
                Some((format!("the built-in step of stage `{name}`"), field))
            };
            let output = || {
                let outs = stage.get("outs")?.as_array()?;
                let field = outs.iter().filter(|o| o.is_object()).find_map(check::<RawOutputRecord>)?;
                Some((format!("an output of stage `{name}`"), field))
            };
            let own = || Some((format!("stage `{name}`"), check::<RawStage>(stage)?));
            let (place, field) = resources().or_else(step).or_else(output).or_else(own)?;
            Some((name.clone(), place, field))
        });
    }
    if found.is_none()
        && let Some(models) = value.get("registry").and_then(|r| r.as_object())
    {
        found = models.iter().find_map(|(name, model)| {
            Some((name.clone(), format!("registry model `{name}`"), check::<RawRegisteredModel>(model)?))
        });
    }
    found = found
        .or_else(|| Some(("remote".to_string(), "`remote`".to_string(), check::<RawRemote>(value.get("remote")?)?)))
        .or_else(|| Some(("cache".to_string(), "`cache`".to_string(), check::<RawCache>(value.get("cache")?)?)))
        .or_else(|| Some((String::new(), "the pipeline".to_string(), check::<RawPipeline>(&value)?)));
    let (within, place, (field, known)) = found?;
    let source = std::fs::read_to_string(file).unwrap_or_default();
    let line = crate::locate::line_of_field(&source, &within, &field);
    Some(SpecError::UnknownField { file: file.to_path_buf(), line, place, field, known })
}

/// Python's `'resnet'` is valid Nickel, the enum tag `resnet'` (a quote may
/// end a name), exported as the string `resnet'`: a value ending in a quote
/// that the file spells with a quote in front is that mistake.
fn python_quoted(stage: &Stage, file: &Path) -> Option<SpecError> {
    fn strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(fields) => fields.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    strings(&stage.params, &mut found);
    found.extend(stage.deps.iter().map(|d| d.as_str()));
    found.extend(stage.outs.iter().map(|o| o.path.as_str()));
    let suspect: Vec<&str> = found.into_iter().filter(|s| s.len() > 1 && s.ends_with('\'')).collect();
    if suspect.is_empty() {
        return None;
    }
    let source = std::fs::read_to_string(file).ok()?;
    suspect.into_iter().find_map(|value| {
        let bare = &value[..value.len() - 1];
        let at = source.find(&format!("'{value}"))?;
        Some(SpecError::Invalid {
            file: file.to_path_buf(),
            line: Some(source[..at].matches('\n').count() + 1),
            message: format!("stage `{}`: `'{value}` is the enum tag `{value}`, not the string \"{bare}\"", stage.name),
            hint: Some(format!("Nickel strings take double quotes: write `\"{bare}\"`")),
        })
    })
}

/// `^[A-Za-z0-9_][A-Za-z0-9_.-]*$`, as the stdlib's `StageNames` says.
/// The longest stage name: its log, `.gourd/logs/NAME.log`, must be a file
/// name every file system takes (255 bytes).
const MAX_STAGE_NAME: usize = 200;

fn is_stage_name(name: &str) -> bool {
    if name.len() > MAX_STAGE_NAME {
        return false;
    }
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `^([A-Za-z0-9_./-]+:)?[A-Za-z0-9]([A-Za-z0-9_/-]*[A-Za-z0-9])?$`, as the
/// stdlib's `RegistryNames` says (GTO's names, with a folder prefix).
fn is_registry_name(name: &str) -> bool {
    let bare = match name.split_once(':') {
        Some((dir, bare)) => {
            if dir.is_empty()
                || !dir.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
            {
                return false;
            }
            bare
        }
        None => name,
    };
    let bytes = bare.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'-'))
}

/// The `registry` record: paths inside the workspace, gates that parse.
fn validate_registry(
    raw: BTreeMap<String, Record<RawRegisteredModel>>,
    file: &Path,
) -> Result<BTreeMap<String, RegisteredModel>, SpecError> {
    let invalid = |name: &str, literal: &str, message: String| {
        let source = std::fs::read_to_string(file).unwrap_or_default();
        let line = crate::locate::line_of(&source, name, Some(literal));
        SpecError::Invalid {
            file: file.to_path_buf(),
            line,
            message: format!("registry `{name}`: {message}"),
            hint: None,
        }
    };
    let mut registry = BTreeMap::new();
    for (name, Record(model)) in raw {
        if let Some(bad) = std::iter::once(&name).chain(model.gates.keys()).find(|n| !is_registry_name(n)) {
            return Err(invalid(&name, bad, format!("invalid registry name `{bad}`")));
        }
        let path =
            |field: &str, raw: &str| WsPath::new(raw).map_err(|e| invalid(&name, raw, format!("field `{field}`: {e}")));
        let model_path = path("path", &model.path)?;
        let metrics = model.metrics.iter().map(|m| path("metrics", m)).collect::<Result<Vec<_>, _>>()?;
        let mut gates = BTreeMap::new();
        for (stage, texts) in model.gates {
            let parsed = texts
                .iter()
                .map(|text| {
                    Gate::parse(text)
                        .map_err(|e| invalid(&name, text, format!("gate `{text}` of stage `{stage}`: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            gates.insert(stage, parsed);
        }
        registry.insert(name, RegisteredModel { path: model_path, gates, metrics, card: model.card });
    }
    Ok(registry)
}

fn validate_remote(r: RawRemote) -> Result<gourd_core::model::Remote, String> {
    match r.kind {
        RemoteKind::S3 if r.bucket.as_deref().is_none_or(|b| b.trim().is_empty()) => {
            return Err("an 's3 remote needs a `bucket`".to_string());
        }
        RemoteKind::Reapi => {
            let Some(endpoint) = &r.endpoint else {
                return Err("a 'reapi remote needs an `endpoint` (`grpc://host:port` or `grpcs://host:port`)".into());
            };
            // `host:port` alone means plain gRPC.
            if endpoint.contains("://")
                && !["grpc://", "grpcs://", "http://", "https://"].iter().any(|s| endpoint.starts_with(s))
            {
                return Err(format!("endpoint `{endpoint}`: expected `grpc://host:port` or `grpcs://host:port`"));
            }
        }
        RemoteKind::Folder if r.path.as_deref().is_none_or(|p| p.trim().is_empty()) => {
            return Err("a 'folder remote needs a `path` (a folder on a local or mounted disk)".to_string());
        }
        RemoteKind::Ssh if r.endpoint.as_deref().is_none_or(|e| !e.contains(':')) => {
            return Err("an 'ssh remote needs an `endpoint`: `[user@]host:/path` or `ssh://[user@]host[:port]/path`"
                .to_string());
        }
        RemoteKind::S3 | RemoteKind::Folder | RemoteKind::Ssh => {}
    }
    let timeout = match r.timeout {
        None => Duration::from_secs(3600),
        Some(t) => seconds(t).map_err(|e| format!("`timeout`: {e}"))?,
    };
    Ok(gourd_core::model::Remote {
        kind: r.kind,
        endpoint: r.endpoint,
        bucket: r.bucket,
        path: r.path,
        instance: r.instance,
        prefix: r.prefix,
        region: r.region,
        cache: r.cache,
        push: r.push,
        execute: r.execute,
        required: r.required,
        timeout,
        platform: r.platform,
    })
}

fn validate_stage(name: String, raw: RawStage) -> Result<(Stage, Vec<gourd_core::model::Plot>), Problem> {
    let problem = |literal: Option<&str>, message: String| Problem {
        stage: name.clone(),
        literal: literal.map(String::from),
        field: None,
        message: format!("stage `{name}`: {message}"),
        hint: None,
    };
    let path =
        |field: &str, raw: &str| WsPath::new(raw).map_err(|e| problem(Some(raw), format!("field `{field}`: {e}")));
    let cmd = match raw.cmd {
        RawCommand::Shell(script) if !script.trim().is_empty() => Command::Shell(script),
        RawCommand::Argv(argv) if argv.first().is_some_and(|program| program.is_empty()) => {
            return Err(problem(
                None,
                "field `cmd`: the program (the first element of the array) is empty".to_string(),
            ));
        }
        RawCommand::Argv(argv) if !argv.is_empty() => Command::Argv(argv),
        RawCommand::Step(Record(step)) => Command::Step { name: step.step, config: step.config },
        _ => return Err(problem(None, "field `cmd`: the command is empty".to_string())),
    };
    if raw.remote && matches!(cmd, Command::Step { .. }) {
        return Err(problem(
            None,
            "field `remote`: built-in steps run on this machine (the workers have no `gourd-step`)".to_string(),
        ));
    }
    let deps = raw.deps.iter().map(|d| path("deps", d)).collect::<Result<Vec<_>, _>>()?;
    // gourd writes under `.gourd` (and lineage under `.git`) while stages
    // run: such a dep would change under every stage, or never settle.
    if let Some((raw_dep, dep)) = raw
        .deps
        .iter()
        .zip(&deps)
        .find(|(_, dep)| dep.is_root() || dep.as_str().split('/').any(|part| part == ".gourd" || part == ".git"))
    {
        let what = if dep.is_root() {
            "the whole workspace, which holds `.gourd`".to_string()
        } else {
            let reserved =
                dep.as_str().split('/').find(|part| *part == ".gourd" || *part == ".git").unwrap_or_default();
            format!("in a `{reserved}` folder")
        };
        return Err(problem(
            Some(raw_dep),
            format!(
                "field `deps`: `{raw_dep}` is {what}, which gourd and git write to while stages run, so it would never settle: name the files or folders the stage reads"
            ),
        ));
    }
    let mut outs = Vec::new();
    for out in raw.outs {
        outs.push(match out {
            RawOutput::Path(p) => {
                Output { path: path("outs", &p)?, kind: OutputKind::Data, cache: true, persist: false }
            }
            RawOutput::Record(Record(RawOutputRecord { path: p, kind, cache, persist })) => {
                if kind == OutputKind::Metrics {
                    return Err(problem(None, "field `outs`: declare metrics files in `metrics`".to_string()));
                }
                Output { path: path("outs", &p)?, kind, cache, persist }
            }
        });
    }
    let metrics = raw.metrics.iter().map(|m| path("metrics", m)).collect::<Result<Vec<_>, _>>()?;
    // A plot's file is an output of the stage, cached like its other outputs
    // (DVC's `plots` are outs), unless a declared output holds it already.
    let mut plots = Vec::with_capacity(raw.plots.len());
    for entry in &raw.plots {
        let crate::plots::StagePlot { plot, cache } =
            crate::plots::stage_plot(&name, entry).map_err(|message| Problem {
                stage: name.clone(),
                literal: None,
                field: Some("plots".to_string()),
                message: format!("stage `{name}`: {message}"),
                hint: None,
            })?;
        let file = &plot.y[0].0;
        let declared = outs.iter().map(|o| &o.path).chain(&metrics).any(|p| file.is_at_or_under(p));
        if !declared {
            outs.push(Output { path: file.clone(), kind: OutputKind::Data, cache, persist: false });
        }
        plots.push(plot);
    }
    if let Some(root) = outs.iter().map(|o| &o.path).chain(&metrics).find(|p| p.is_root()) {
        return Err(problem(Some(root.as_str()), "an output cannot be the workspace root".to_string()));
    }
    let wdir = match raw.wdir {
        Some(w) => path("wdir", &w)?,
        None => WsPath::root(),
    };
    if let Some(reserved) = wdir.as_str().split('/').find(|part| *part == ".gourd" || *part == ".git") {
        return Err(problem(
            None,
            format!(
                "field `wdir`: `{wdir}` is in a `{reserved}` folder, where gourd and git write: a stage runs in the workspace"
            ),
        ));
    }
    let timeout = match raw.timeout {
        Some(t) => Some(seconds(t).map_err(|e| problem(None, format!("field `timeout`: {e}")))?),
        None => None,
    };
    let secrets = validate_secrets(&name, &raw.env, raw.secrets, raw.remote)?;
    let gpus = raw.resources.0.gpus.unwrap_or(if raw.executor == Executor::Cuda { 1 } else { 0 });
    let stage = Stage {
        cmd,
        deps,
        outs,
        metrics,
        params: serde_json::Value::Object(raw.params),
        env: raw.env,
        secrets,
        executor: raw.executor,
        resources: Resources { cpus: raw.resources.0.cpus.unwrap_or(1), gpus },
        wdir,
        always_run: raw.always_run,
        frozen: raw.frozen,
        cpu_fallback: raw.cpu_fallback,
        remote: raw.remote,
        timeout,
        desc: raw.desc,
        name: name.clone(),
    };
    if let Some((first, second, var)) = stage.param_env_clash() {
        return Err(Problem {
            hint: Some(
                "rename one of them (the JSON file that `GOURD_PARAMS` names holds both as they are)".to_string(),
            ),
            ..problem(
                None,
                format!(
                    "field `params`: `{first}` and `{second}` would both be `{var}`, and one value would replace the other"
                ),
            )
        });
    }
    Ok((stage, plots))
}

/// Checks `env` for what looks like a secret, and `secrets` for names a
/// shell can export, and returns `secrets` without repeats.
fn validate_secrets(
    stage: &str,
    env: &BTreeMap<String, String>,
    secrets: Vec<String>,
    remote: bool,
) -> Result<Vec<String>, Problem> {
    let problem = |literal: Option<&str>, field: Option<&str>, message: String, hint: Option<String>| Problem {
        stage: stage.to_string(),
        literal: literal.map(String::from),
        field: field.map(String::from),
        message: format!("stage `{stage}`: {message}"),
        hint,
    };
    for (name, value) in env {
        if !secrets::is_env_name(name) {
            return Err(problem(
                None,
                Some(name),
                format!(
                    "field `env`: `{name}` is not an environment variable's name (letters, digits and `_`, not starting with a digit)"
                ),
                None,
            ));
        }
        if name.starts_with("GOURD_") {
            return Err(problem(
                None,
                Some(name),
                format!(
                    "field `env`: `{name}`: names starting with `GOURD_` are gourd's own (it sets `GOURD_STAGE`, `GOURD_PARAMS`, `GOURD_PARAM_*`, ...)"
                ),
                Some("a value a stage reads belongs in `params` (each is also `GOURD_PARAM_NAME`)".to_string()),
            ));
        }
        if value.contains('\0') {
            return Err(problem(
                None,
                Some(name),
                format!("field `env`: the value of `{name}` holds a NUL byte, which no environment variable can"),
                None,
            ));
        }
    }
    if let Some(name) = env.keys().find(|name| secrets::looks_secret(name)) {
        return Err(problem(
            None,
            Some(name),
            format!("field `env`: `{name}` looks like a secret, and `env` enters the stage key, the cache and lineage"),
            Some(format!("declare it in `secrets = [\"{name}\"]` instead and export it in the shell that runs gourd")),
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(secrets.len());
    for name in secrets {
        if !secrets::is_env_name(&name) {
            return Err(problem(
                Some(&name),
                None,
                format!(
                    "field `secrets`: `{name}` is not an environment variable's name (letters, digits and `_`, not starting with a digit)"
                ),
                None,
            ));
        }
        if name.starts_with("GOURD_") {
            return Err(problem(
                Some(&name),
                None,
                format!("field `secrets`: `{name}`: names starting with `GOURD_` are gourd's own"),
                None,
            ));
        }
        if env.contains_key(&name) {
            return Err(problem(
                Some(&name),
                None,
                format!("field `secrets`: `{name}` is also set in `env`"),
                Some(format!("a secret's value comes from the environment gourd runs in: remove `{name}` from `env`")),
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if remote && !names.is_empty() {
        return Err(problem(
            None,
            Some("remote"),
            "field `remote`: a stage with `secrets` executes on this machine, never remotely".to_string(),
            Some("an action's environment is part of what a remote execution service stores and shows".to_string()),
        ));
    }
    Ok(names)
}

/// The longest `timeout`: ten years, far past any stage, and far from
/// where adding it to the clock would overflow.
const LONGEST_TIMEOUT_S: f64 = 10.0 * 365.0 * 24.0 * 3600.0;

/// A `timeout` in seconds: positive and finite, at most
/// [`LONGEST_TIMEOUT_S`].
fn seconds(t: f64) -> Result<Duration, String> {
    if !(t.is_finite() && t > 0.0) {
        return Err("expected a positive number of seconds".to_string());
    }
    if t > LONGEST_TIMEOUT_S {
        return Err(format!("more than ten years ({LONGEST_TIMEOUT_S} s); leave `timeout` out for no limit"));
    }
    Ok(Duration::from_secs_f64(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_record_outputs() {
        let json = r#"{"stages": {"train": {
            "cmd": ["python", "train.py"], "deps": ["data//x/"],
            "outs": ["a", {"path": "m.bin", "kind": "model", "cache": false}],
            "executor": "cuda", "resources": {"cpus": 2}, "timeout": 1.5,
            "params": {"lr": 0.01, "epochs": 3}
        }}}"#;
        let pipeline = validate(json, Path::new("gourd.ncl")).unwrap();
        let stage = &pipeline.stages[0];
        assert_eq!(stage.deps[0].as_str(), "data/x");
        assert_eq!(stage.outs[1].kind, OutputKind::Model);
        assert!(!stage.outs[1].cache);
        assert_eq!(stage.resources, Resources { cpus: 2, gpus: 1 });
        assert_eq!(stage.params["epochs"], serde_json::json!(3));
        assert_eq!(stage.timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn an_unknown_field_is_named_with_where_it_is_and_the_nearest_known_one() {
        let file = Path::new("gourd.ncl");
        let cases = [
            (
                r#"{"stages": {"a": {"cmd": "true", "outs": ["x", {"path": "y", "persit": true}]}}}"#,
                "an output of stage `a`",
                "persit",
            ),
            (r#"{"stages": {"a": {"cmd": "true", "resources": {"gpu": 1}}}}"#, "the `resources` of stage `a`", "gpu"),
            (r#"{"stages": {"a": {"cmdd": "true"}}}"#, "stage `a`", "cmdd"),
            (r#"{"stage": {}}"#, "the pipeline", "stage"),
        ];
        for (json, place, field) in cases {
            match validate(json, file).unwrap_err() {
                SpecError::UnknownField { place: p, field: f, known, .. } => {
                    assert_eq!((p.as_str(), f.as_str()), (place, field), "{json}");
                    assert!(!known.is_empty(), "{json}");
                }
                other => panic!("{json}: {other}"),
            }
        }
    }

    #[test]
    fn deps_on_the_workspace_or_gourds_and_gits_folders_are_refused() {
        let file = Path::new("gourd.ncl");
        let cases = [
            (".", "the whole workspace"),
            ("./", "the whole workspace"),
            (".gourd", "in a `.gourd` folder"),
            (".gourd/logs", "in a `.gourd` folder"),
            ("sub/.gourd", "in a `.gourd` folder"),
            (".git", "in a `.git` folder"),
            ("a/.git/HEAD", "in a `.git` folder"),
        ];
        for (dep, what) in cases {
            let json = format!(r#"{{"stages": {{"a": {{"cmd": "true", "deps": ["{dep}"]}}}}}}"#);
            let err = validate(&json, file).unwrap_err().to_string();
            assert!(err.contains("field `deps`") && err.contains("would never settle"), "{dep}: {err}");
            assert!(err.contains(what), "{dep}: {err}");
        }
        for dep in ["data", ".github/x", "gourd", "x.git", "a.gourd/b"] {
            let json = format!(r#"{{"stages": {{"a": {{"cmd": "true", "deps": ["{dep}"]}}}}}}"#);
            assert!(validate(&json, file).is_ok(), "{dep}");
        }
    }

    #[test]
    fn rejects_what_the_contract_cannot() {
        let err = validate(r#"{"stages": {"a": {"cmd": "true", "outs": ["."]}}}"#, Path::new("gourd.ncl")).unwrap_err();
        assert!(err.to_string().contains("stage `a`"), "{err}");
    }

    #[test]
    fn remote_records_and_remote_stages() {
        let file = Path::new("gourd.ncl");
        let ok = r#"{"stages": {"a": {"cmd": "true", "remote": true}},
            "remote": {"kind": "reapi", "endpoint": "grpc://h:1", "platform": {"OSFamily": "linux"}, "timeout": 5}}"#;
        let pipeline = validate(ok, file).unwrap();
        assert!(pipeline.stages[0].remote);
        let remote = pipeline.remote.unwrap();
        assert_eq!(remote.timeout, Duration::from_secs(5));
        assert_eq!(remote.platform["OSFamily"], "linux");
        assert!(remote.execute && remote.cache && remote.instance.is_empty());

        let no_bucket = r#"{"stages": {}, "remote": {"kind": "s3"}}"#;
        assert!(validate(no_bucket, file).unwrap_err().to_string().contains("needs a `bucket`"));
        let step = r#"{"stages": {"a": {"cmd": {"step": "train"}, "remote": true}}}"#;
        assert!(validate(step, file).unwrap_err().to_string().contains("built-in steps run on this machine"));
    }

    /// Serde reads a struct from an array of its fields in order; the
    /// records of a pipeline are records only.
    #[test]
    fn records_are_not_read_from_arrays() {
        let file = Path::new("gourd.ncl");
        for json in [
            r#"{"stages": {"a": {"cmd": ["sleep", 5]}}}"#,
            r#"{"stages": {"a": {"cmd": ["train", {"lr": 1}]}}}"#,
            r#"{"stages": {"a": {"cmd": "true", "outs": [["o.txt", "model", false, true]]}}}"#,
            r#"{"stages": {"a": {"cmd": "true", "resources": [4, 0]}}}"#,
            r#"{"stages": {"a": ["true"]}}"#,
            r#"{"stages": {}, "cache": ["hardlink"]}"#,
            r#"{"stages": {}, "remote": ["folder", null, null, "/tmp/r"]}"#,
            r#"{"stages": {}, "registry": {"m": ["models/m"]}}"#,
        ] {
            assert!(validate(json, file).is_err(), "{json}");
        }
        let fine = r#"{"stages": {"a": {"cmd": {"step": "train", "config": {"lr": 1}}, "outs": [{"path": "o", "kind": "model"}], "resources": {"cpus": 2}}}, "cache": {"link": "copy"}}"#;
        let stage = &validate(fine, file).unwrap().stages[0];
        assert!(matches!(&stage.cmd, Command::Step { name, .. } if name == "train"));
        assert_eq!((stage.outs[0].kind, stage.resources.cpus), (OutputKind::Model, 2));
    }

    #[test]
    fn stage_names_fit_a_file_name() {
        let file = Path::new("gourd.ncl");
        let named = |name: &str| validate(&format!(r#"{{"stages": {{"{name}": {{"cmd": "true"}}}}}}"#), file);
        assert!(named(&"a".repeat(200)).is_ok());
        let err = named(&"a".repeat(201)).unwrap_err();
        assert!(err.to_string().contains("invalid stage name"), "{err}");
    }

    /// A position in gourd's JSON export means nothing to the user.
    #[test]
    fn errors_in_the_export_say_no_position_in_it() {
        let file = Path::new("gourd.ncl");
        let deep = format!(
            r#"{{"stages": {{"a": {{"cmd": "true", "params": {{"x": {}1{}}}}}}}}}"#,
            "[".repeat(130),
            "]".repeat(130)
        );
        let message = validate(&deep, file).unwrap_err().to_string();
        assert!(message.contains("a value nests records or arrays more than 128 deep"), "{message}");
        assert!(!message.contains("at line"), "{message}");
        let wrong = r#"{"stages": {"a": {"cmd": "true", "frozen": "yes"}}}"#;
        let message = validate(wrong, file).unwrap_err().to_string();
        assert!(message.contains("invalid type: string \"yes\", expected a boolean"), "{message}");
        assert!(!message.contains("column"), "{message}");
    }

    /// `train.lr` and `train_lr` are both `GOURD_PARAM_TRAIN_LR`: one value
    /// would silently replace the other in the stage's environment.
    #[test]
    fn params_that_would_share_a_variable_are_refused() {
        let file = Path::new("gourd.ncl");
        for (params, first, second, var) in [
            (r#"{"train": {"lr": 0.1}, "train_lr": 99}"#, "train.lr", "train_lr", "GOURD_PARAM_TRAIN_LR"),
            (r#"{"a-b": 1, "a_b": 2}"#, "a-b", "a_b", "GOURD_PARAM_A_B"),
            (r#"{"LR": 1, "lr": 2}"#, "LR", "lr", "GOURD_PARAM_LR"),
            (r#"{"x": {"y": {"z": 1}}, "x_y": {"z": 2}}"#, "x.y.z", "x_y.z", "GOURD_PARAM_X_Y_Z"),
        ] {
            let json = format!(r#"{{"stages": {{"a": {{"cmd": "true", "params": {params}}}}}}}"#);
            match validate(&json, file).unwrap_err() {
                SpecError::Invalid { message, hint, .. } => {
                    let expected = format!(
                        "stage `a`: field `params`: `{first}` and `{second}` would both be `{var}`, and one value would replace the other"
                    );
                    assert!(message.contains(&expected), "{params}: {message}");
                    assert!(hint.unwrap().contains("rename one of them"));
                }
                other => panic!("{other}"),
            }
        }
        // Names that differ in the environment too are fine, nested or not.
        let fine = r#"{"stages": {"a": {"cmd": "true", "params": {"train": {"lr": 0.1, "epochs": 3}, "lr": 1, "tags": ["x"]}}}}"#;
        let stage = &validate(fine, file).unwrap().stages[0];
        let env = stage.param_env();
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            ["GOURD_PARAM_LR", "GOURD_PARAM_TAGS", "GOURD_PARAM_TRAIN_EPOCHS", "GOURD_PARAM_TRAIN_LR"]
        );
        assert_eq!(env["GOURD_PARAM_TAGS"], r#"["x"]"#);
    }

    #[test]
    fn secrets_are_names_a_shell_can_export() {
        let file = Path::new("gourd.ncl");
        let ok = r#"{"stages": {"a": {"cmd": "true", "secrets": ["HF_TOKEN", "_X", "HF_TOKEN"],
            "env": {"PYTHONHASHSEED": "0", "TOKENIZERS_PARALLELISM": "false"}}}}"#;
        let stage = &validate(ok, file).unwrap().stages[0];
        assert_eq!(stage.secrets, ["HF_TOKEN", "_X"], "without repeats, in order");
        assert!(stage.has_secrets());

        let refused = |json: &str| match validate(json, file).unwrap_err() {
            SpecError::Invalid { message, hint, .. } => (message, hint),
            other => panic!("{other}"),
        };
        let (message, _) = refused(r#"{"stages": {"a": {"cmd": "true", "secrets": ["GOURD_RUN"]}}}"#);
        assert!(
            message.contains("field `secrets`: `GOURD_RUN`: names starting with `GOURD_` are gourd's own"),
            "{message}"
        );
        let (message, _) = refused(r#"{"stages": {"a": {"cmd": "true", "secrets": ["1X"]}}}"#);
        assert!(message.contains("field `secrets`: `1X` is not an environment variable's name"), "{message}");
        let (message, _) = refused(r#"{"stages": {"a": {"cmd": "true", "secrets": ["T"], "env": {"T": "x"}}}}"#);
        assert!(message.contains("`T` is also set in `env`"), "{message}");
        let (message, _) = refused(r#"{"stages": {"a": {"cmd": "true", "secrets": ["T"], "remote": true}}}"#);
        assert!(message.contains("field `remote`: a stage with `secrets` executes on this machine"), "{message}");
        // `env` names a shell can export, none of gourd's own, and values
        // an environment can hold.
        for (env, expected) in [
            (r#"{"A=B": "x"}"#, "field `env`: `A=B` is not an environment variable's name"),
            (r#"{"": "x"}"#, "field `env`: `` is not an environment variable's name"),
            (r#"{"9A": "x"}"#, "field `env`: `9A` is not an environment variable's name"),
            (r#"{"GOURD_STAGE": "spoof"}"#, "field `env`: `GOURD_STAGE`: names starting with `GOURD_` are gourd's own"),
            (r#"{"A": "x\u0000y"}"#, "field `env`: the value of `A` holds a NUL byte"),
        ] {
            let (message, _) = refused(&format!(r#"{{"stages": {{"a": {{"cmd": "true", "env": {env}}}}}}}"#));
            assert!(message.contains(expected), "{env}: {message}");
        }
        let fine = r#"{"stages": {"a": {"cmd": "true", "env": {"_A1": "x", "LANG": "C", "MY_GOURD_X": "y"}}}}"#;
        assert!(validate(fine, Path::new("gourd.ncl")).is_ok());
        for wdir in [".git", ".gourd/x", "a/.git"] {
            let (message, _) = refused(&format!(r#"{{"stages": {{"a": {{"cmd": "true", "wdir": "{wdir}"}}}}}}"#));
            assert!(message.contains(&format!("field `wdir`: `{wdir}` is in a")), "{wdir}: {message}");
        }
    }

    #[test]
    fn registry_models_and_their_gates() {
        let file = Path::new("gourd.ncl");
        let ok = r#"{"stages": {}, "registry": {"pumpkin": {"path": "models/best",
            "gates": {"prod": ["accuracy >= 0.9", "accuracy >= champion.accuracy"]}}}}"#;
        let pipeline = validate(ok, file).unwrap();
        let model = &pipeline.registry["pumpkin"];
        assert_eq!(model.path.as_str(), "models/best");
        assert_eq!(model.gates["prod"].len(), 2);
        assert!(model.gates["prod"][1].needs_champion());
        let bad = r#"{"stages": {}, "registry": {"pumpkin": {"path": "m", "gates": {"prod": ["accuracy = 0.9"]}}}}"#;
        let err = validate(bad, file).unwrap_err().to_string();
        assert!(
            err.contains("registry `pumpkin`: gate `accuracy = 0.9` of stage `prod`: `=` is not a comparison"),
            "{err}"
        );
        let outside = r#"{"stages": {}, "registry": {"pumpkin": {"path": "../m"}}}"#;
        assert!(validate(outside, file).unwrap_err().to_string().contains("registry `pumpkin`: field `path`"));
    }

    #[test]
    fn env_refuses_what_looks_like_a_secret() {
        let json = r#"{"stages": {"train": {"cmd": "true", "env": {"AWS_SECRET_ACCESS_KEY": "x"}}}}"#;
        match validate(json, Path::new("gourd.ncl")).unwrap_err() {
            SpecError::Invalid { message, hint, .. } => {
                assert!(message.starts_with("stage `train`: field `env`: `AWS_SECRET_ACCESS_KEY` looks like a secret"));
                assert!(hint.unwrap().contains(r#"`secrets = ["AWS_SECRET_ACCESS_KEY"]`"#));
            }
            other => panic!("{other}"),
        }
    }
}
