//! `dvc.yaml` to plain stages: templating resolved, `foreach`/`matrix`
//! expanded, paths made workspace-relative, and a note for everything that
//! has no gourd equivalent. Reading files is left to the caller through
//! `Files`, so the conversion is tested without a disk.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::{Mapping, Value};

use super::interpolate::{self, Context, Origin, Piece};

/// The files a conversion reads (params and vars files), by workspace path.
pub trait Files {
    fn read(&self, path: &str) -> Option<String>;
}

#[derive(Debug, Default)]
pub struct Stage {
    /// The name in `dvc.yaml` (`train@us` for an expanded one).
    pub dvc_name: String,
    pub name: String,
    pub desc: Option<String>,
    pub cmd: String,
    pub wdir: Option<String>,
    pub deps: Vec<String>,
    /// Params files (workspace paths) with the keys taken from each; `None`: all of it.
    pub params: Vec<(String, Option<Vec<String>>)>,
    pub outs: Vec<Out>,
    pub metrics: Vec<String>,
    pub plots: Vec<Plot>,
    pub frozen: bool,
    pub always_run: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Out {
    pub path: String,
    pub cache: bool,
    pub persist: bool,
    /// Registered as an artifact: a `'model` output, which the registry
    /// takes versions of.
    pub model: bool,
}

/// A stage's plot: its file, DVC's fields for drawing it, and `cache`.
#[derive(Debug, PartialEq)]
pub struct Plot {
    pub path: String,
    pub props: Mapping,
    pub cache: bool,
}

/// The fields of a plot gourd draws by, as DVC names them.
const PLOT_FIELDS: [&str; 6] = ["x", "y", "template", "title", "x_label", "y_label"];
const TEMPLATES: [&str; 9] = [
    "linear",
    "simple",
    "scatter",
    "scatter_jitter",
    "smooth",
    "confusion",
    "confusion_normalized",
    "bar_horizontal",
    "bar_horizontal_sorted",
];

#[derive(Debug, Default)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
    /// Top-level `plots`: paths, and `{ id: fields }`.
    pub plots: Vec<Value>,
    /// `artifacts`, as registry models: name and path.
    pub registry: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// The default params file of DVC.
pub const PARAMS_FILE: &str = "params.yaml";

pub fn convert(doc: &Value, files: &dyn Files) -> Result<Pipeline, String> {
    let top = doc.as_mapping().ok_or("the file is not a YAML mapping (`stages:` at the top level)")?;
    let mut out = Pipeline::default();
    let mut context = Context::default();
    if let Some(params) = files.read(PARAMS_FILE).and_then(|text| serde_yaml::from_str::<Mapping>(&text).ok()) {
        context = context.with(params, Origin::ParamsFile);
    }
    if let Some(vars) = top.get("vars") {
        context = load_vars(vars, ".", &context, files, "vars", &mut out.notes);
    }
    let empty = Mapping::new();
    let stages = match top.get("stages") {
        Some(Value::Mapping(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err("`stages` is not a mapping of stage names to stages".to_string()),
    };
    for (name, body) in stages {
        let Some(name) = name.as_str() else {
            out.notes.push(format!("stage name `{name:?}` is not a string; skipped"));
            continue;
        };
        let Some(body) = body.as_mapping() else {
            out.notes.push(format!("stage `{name}`: not a mapping; skipped"));
            continue;
        };
        for (dvc_name, body, ctx) in expand(name, body, &context, &mut out.notes) {
            if let Some(stage) = convert_stage(&dvc_name, &body, &ctx, files, &mut out.notes) {
                out.stages.push(stage);
            }
        }
    }
    let mut seen = BTreeSet::new();
    out.stages.retain(|s| {
        let fresh = seen.insert(s.name.clone());
        if !fresh {
            out.notes.push(format!(
                "stage `{}` (from `{}`): a stage of that name exists already; skipped",
                s.name, s.dvc_name
            ));
        }
        fresh
    });
    for (key, value) in top {
        match key.as_str().unwrap_or_default() {
            "stages" | "vars" => {}
            "metrics" => top_metrics(value, &mut out),
            "plots" => {
                for plot in value.as_sequence().into_iter().flatten() {
                    let mut note = |text: String| out.notes.push(format!("top-level `plots`: {text}"));
                    match plot {
                        Value::String(_) => out.plots.push(plot.clone()),
                        Value::Mapping(m) if m.len() == 1 => {
                            let (id, fields) = m.iter().next().expect("one entry");
                            let id_text = interpolate::scalar_text(id).unwrap_or_default();
                            let fields = fields.as_mapping().cloned().unwrap_or_default();
                            let props = plot_fields(&fields, ".", &id_text, &mut note);
                            out.plots.push(Value::Mapping(mapping([(id_text.as_str(), Value::Mapping(props))])));
                        }
                        other => note(format!("entry `{}` not translated", compact(other))),
                    }
                }
            }
            "params" => out.notes.push(format!(
                "top-level `params` ({}): gourd compares the params its stages take (`gourd params diff`); a file no stage reads has no equivalent",
                compact(value)
            )),
            "artifacts" => artifacts(value, &mut out),
            other => out.notes.push(format!("top-level `{other}`: not translated")),
        }
    }
    // An artifact's path is a model output: the registry takes versions of
    // models only.
    for (name, path) in &out.registry {
        let made = out.stages.iter_mut().flat_map(|s| s.outs.iter_mut()).find(|o| o.path == *path);
        match made {
            Some(output) => output.model = true,
            None => out.notes.push(format!(
                "artifact `{name}`: `{path}` is no stage's output; `gourd registry register` needs it to be one"
            )),
        }
    }
    Ok(out)
}

/// The most stages one `matrix` is expanded to.
const MAX_MATRIX_STAGES: usize = 10_000;

/// A stage per `foreach` or `matrix` item, named as DVC names them.
fn expand(name: &str, body: &Mapping, context: &Context, notes: &mut Vec<String>) -> Vec<(String, Mapping, Context)> {
    if let Some(foreach) = body.get("foreach") {
        let Some(Value::Mapping(template)) = body.get("do") else {
            notes.push(format!("stage `{name}`: `foreach` without a `do` mapping; skipped"));
            return vec![];
        };
        let items = match resolve_whole(foreach, context) {
            Some(items) => items,
            None => {
                notes.push(format!("stage `{name}`: cannot resolve `foreach: {}`; skipped", compact(foreach)));
                return vec![];
            }
        };
        let mut out = Vec::new();
        match &items {
            Value::Sequence(items) => {
                for (index, item) in items.iter().enumerate() {
                    let key = interpolate::scalar_text(item).unwrap_or_else(|| index.to_string());
                    let local = mapping([("item", item.clone())]);
                    out.push((format!("{name}@{key}"), template.clone(), context.with(local, Origin::Other)));
                }
            }
            Value::Mapping(items) => {
                for (key, item) in items {
                    let key_text = interpolate::scalar_text(key).unwrap_or_default();
                    let local = mapping([("item", item.clone()), ("key", Value::String(key_text.clone()))]);
                    out.push((format!("{name}@{key_text}"), template.clone(), context.with(local, Origin::Other)));
                }
            }
            _ => notes.push(format!("stage `{name}`: `foreach` is neither a list nor a dict; skipped")),
        }
        return out;
    }
    if let Some(matrix) = body.get("matrix") {
        let Some(matrix) = matrix.as_mapping() else {
            notes.push(format!("stage `{name}`: `matrix` is not a mapping; skipped"));
            return vec![];
        };
        // Every combination, the first dimension varying slowest, as DVC does.
        let mut dimensions = Vec::with_capacity(matrix.len());
        for (dimension, values) in matrix {
            let dimension = dimension.as_str().unwrap_or_default().to_string();
            let Some(Value::Sequence(values)) = resolve_whole(values, context) else {
                notes.push(format!("stage `{name}`: `matrix.{dimension}` is not a list; skipped"));
                return vec![];
            };
            dimensions.push((dimension, values));
        }
        // Counted before any is made: eight lists of ten are 10^8 stages.
        let count = dimensions.iter().try_fold(1usize, |n, (_, values)| n.checked_mul(values.len()));
        if count.is_none_or(|n| n > MAX_MATRIX_STAGES) {
            let count = count.map_or_else(|| "more stages than can be counted".to_string(), |n| format!("{n} stages"));
            notes.push(format!(
                "stage `{name}`: `matrix` makes {count}, more than the {MAX_MATRIX_STAGES} gourd imports from one; skipped"
            ));
            return vec![];
        }
        let mut points: Vec<(Vec<String>, Mapping)> = vec![(vec![], Mapping::new())];
        for (dimension, values) in dimensions {
            points = points
                .into_iter()
                .flat_map(|(parts, item)| {
                    let dimension = dimension.clone();
                    let values = values.clone();
                    values.into_iter().enumerate().map(move |(index, value)| {
                        let mut parts = parts.clone();
                        parts.push(interpolate::scalar_text(&value).unwrap_or_else(|| format!("{dimension}{index}")));
                        let mut item = item.clone();
                        item.insert(Value::String(dimension.clone()), value);
                        (parts, item)
                    })
                })
                .collect();
        }
        let mut template = body.clone();
        template.remove("matrix");
        return points
            .into_iter()
            .map(|(parts, item)| {
                let local = mapping([("item", Value::Mapping(item))]);
                (format!("{name}@{}", parts.join("-")), template.clone(), context.with(local, Origin::Other))
            })
            .collect();
    }
    vec![(name.to_string(), body.clone(), context.clone())]
}

/// A value that may be a whole `${ref}` (`foreach: ${models}`), resolved.
fn resolve_whole(value: &Value, context: &Context) -> Option<Value> {
    match value {
        Value::String(s) => match interpolate::split(s).ok()?.as_slice() {
            [Piece::Ref(expr)] => context.resolve(expr).map(|(v, _)| v),
            _ => Some(value.clone()),
        },
        other => Some(other.clone()),
    }
}

fn mapping<const N: usize>(entries: [(&str, Value); N]) -> Mapping {
    entries.into_iter().map(|(k, v)| (Value::String(k.to_string()), v)).collect()
}

/// `vars:` entries: inline mappings, and files (`file.yaml` or `file.yaml:key1,key2`).
fn load_vars(
    vars: &Value,
    wdir: &str,
    context: &Context,
    files: &dyn Files,
    what: &str,
    notes: &mut Vec<String>,
) -> Context {
    let mut context = context.clone();
    for entry in vars.as_sequence().into_iter().flatten() {
        match entry {
            Value::Mapping(values) => context = context.with(values.clone(), Origin::Other),
            Value::String(spec) => {
                let (file, keys) = match spec.split_once(':') {
                    Some((file, keys)) => (file, Some(keys.split(',').map(str::trim).collect::<Vec<_>>())),
                    None => (spec.as_str(), None),
                };
                // A file outside the workspace is not read: its values
                // would be written into `gourd.ncl`.
                let Ok(path) = join(wdir, file) else {
                    notes.push(format!(
                        "{what}: `{file}` is outside the workspace; not read, so its values are not known"
                    ));
                    continue;
                };
                let Some(values) = files.read(&path).and_then(|t| serde_yaml::from_str::<Mapping>(&t).ok()) else {
                    notes.push(format!("{what}: cannot read `{path}` as YAML or JSON; its values are not known"));
                    continue;
                };
                let values = match keys {
                    Some(keys) => {
                        values.into_iter().filter(|(k, _)| keys.contains(&k.as_str().unwrap_or_default())).collect()
                    }
                    None => values,
                };
                let origin = if path == PARAMS_FILE { Origin::ParamsFile } else { Origin::Other };
                context = context.with(values, origin);
            }
            other => notes.push(format!("{what}: entry `{}` not translated", compact(other))),
        }
    }
    context
}

fn convert_stage(
    dvc_name: &str,
    body: &Mapping,
    context: &Context,
    files: &dyn Files,
    notes: &mut Vec<String>,
) -> Option<Stage> {
    let mut stage = Stage { dvc_name: dvc_name.to_string(), name: stage_name(dvc_name), ..Stage::default() };
    let context = match body.get("vars") {
        Some(vars) => load_vars(vars, ".", context, files, &format!("stage `{dvc_name}`: `vars`"), notes),
        None => context.clone(),
    };
    let mut note = |text: String| notes.push(format!("stage `{dvc_name}`: {text}"));
    // Every string except the command takes values as they are now.
    let text = |value: &Value, field: &str, note: &mut dyn FnMut(String)| -> Option<String> {
        let raw = match value {
            Value::String(s) => s.clone(),
            other => interpolate::scalar_text(other)?,
        };
        substitute(&raw, &context).map_err(|e| note(format!("`{field}`: {e}"))).ok()
    };
    let wdir_raw = body.get("wdir").and_then(|w| text(w, "wdir", &mut note)).unwrap_or_else(|| ".".to_string());
    let wdir = match join(".", &wdir_raw) {
        Ok(w) => w,
        Err(e) => {
            note(format!("`wdir: {wdir_raw}` {e}; skipped"));
            return None;
        }
    };
    if wdir != "." {
        stage.wdir = Some(wdir.clone());
    }
    let path_of = |value: &Value, field: &str, note: &mut dyn FnMut(String)| -> Option<String> {
        let raw = text(value, field, note)?;
        join(&wdir, &raw).map_err(|e| note(format!("`{field}`: `{raw}` {e}; left out"))).ok()
    };
    let mut params: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    // The declared params first, then those the command interpolates.
    let mut entries: Vec<_> = body.iter().collect();
    entries.sort_by_key(|(key, _)| key.as_str() != Some("params"));
    for (key, value) in entries {
        let key = key.as_str().unwrap_or_default();
        match key {
            "cmd" => {
                let parts: Vec<String> = match value {
                    Value::Sequence(parts) => parts.iter().filter_map(|p| p.as_str().map(String::from)).collect(),
                    Value::String(s) => vec![s.clone()],
                    other => vec![interpolate::scalar_text(other).unwrap_or_default()],
                };
                let mut cmd = Vec::new();
                for part in parts {
                    match command(&part, &context, &mut params) {
                        Ok((text, problems)) => {
                            problems.into_iter().for_each(&mut note);
                            cmd.push(text);
                        }
                        Err(e) => {
                            note(format!("`cmd`: {e}"));
                            cmd.push(part);
                        }
                    }
                }
                stage.cmd = commands_in_turn(&cmd);
            }
            "deps" => {
                for dep in items(value) {
                    if let Some(path) = path_of(dep, "deps", &mut note) {
                        stage.deps.push(path);
                    }
                }
            }
            "outs" | "metrics" | "plots" => {
                for entry in items(value) {
                    let (path_value, options) = match entry {
                        Value::Mapping(m) if m.len() == 1 => {
                            let (k, v) = m.iter().next().expect("one entry");
                            (k.clone(), v.as_mapping().cloned().unwrap_or_default())
                        }
                        other => (other.clone(), Mapping::new()),
                    };
                    let Some(path) = path_of(&path_value, key, &mut note) else { continue };
                    let flag =
                        |name: &str, default: bool| options.get(name).and_then(Value::as_bool).unwrap_or(default);
                    let (cache, persist) = (flag("cache", true), flag("persist", false));
                    for (option, value) in &options {
                        let option = option.as_str().unwrap_or_default();
                        match (key, option) {
                            ("outs", "cache" | "persist") => {}
                            ("metrics", "cache") if !cache => {
                                note(format!("`{path}`: gourd always caches metrics files (`cache: false` dropped)"))
                            }
                            ("plots", _) => {}
                            _ => {
                                note(format!("`{key}` `{path}`: option `{option}: {}` not translated", compact(value)))
                            }
                        }
                    }
                    match key {
                        "outs" => stage.outs.push(Out { path, cache, persist, model: false }),
                        "metrics" => stage.metrics.push(path),
                        _ => {
                            let props = plot_fields(&options, &wdir, &path, &mut note);
                            stage.plots.push(Plot { path, props, cache });
                        }
                    }
                }
            }
            "params" => {
                for entry in items(value) {
                    match entry {
                        Value::String(k) => {
                            add_param(&mut params, &join(&wdir, PARAMS_FILE).unwrap_or_default(), Some(k))
                        }
                        Value::Mapping(m) => {
                            for (file, keys) in m {
                                let Some(file) = file.as_str() else { continue };
                                let Ok(file) = join(&wdir, file) else {
                                    note(format!("`params`: `{file}` is outside the workspace; left out"));
                                    continue;
                                };
                                match keys.as_sequence() {
                                    Some(keys) if !keys.is_empty() => keys
                                        .iter()
                                        .filter_map(Value::as_str)
                                        .for_each(|k| add_param(&mut params, &file, Some(k))),
                                    _ => add_param(&mut params, &file, None),
                                }
                            }
                        }
                        other => note(format!("`params`: entry `{}` not translated", compact(other))),
                    }
                }
            }
            "frozen" => stage.frozen = value.as_bool().unwrap_or(false),
            "always_changed" => stage.always_run = value.as_bool().unwrap_or(false),
            // `${item}` in a foreach's description, as DVC shows it.
            "desc" => stage.desc = value.as_str().map(|d| substitute(d, &context).unwrap_or_else(|_| d.to_string())),
            "wdir" | "vars" => {}
            "meta" => note(format!("`meta` ({}) has no gourd field; left out", compact(value))),
            other => note(format!("field `{other}` not translated")),
        }
    }
    if stage.cmd.trim().is_empty() {
        note("no `cmd`; skipped".to_string());
        return None;
    }
    stage.params = check_params(params, files, &mut note);
    Some(stage)
}

fn add_param(params: &mut BTreeMap<String, Option<Vec<String>>>, file: &str, key: Option<&str>) {
    let entry = params.entry(file.to_string()).or_insert_with(|| Some(vec![]));
    match (entry.as_mut(), key) {
        (Some(keys), Some(key)) => {
            // A key under one taken already adds nothing; one above it replaces it.
            if keys.iter().any(|k| k == key || key.starts_with(&format!("{k}."))) {
                return;
            }
            keys.retain(|k| !k.starts_with(&format!("{key}.")));
            keys.push(key.to_string());
        }
        (_, None) => *entry = None,
        (None, Some(_)) => {}
    }
}

/// Keys the params file has not are left out with a note, since
/// `gourd.params` would stop the pipeline on them.
fn check_params(
    params: BTreeMap<String, Option<Vec<String>>>,
    files: &dyn Files,
    note: &mut dyn FnMut(String),
) -> Vec<(String, Option<Vec<String>>)> {
    let mut out = Vec::new();
    for (file, keys) in params {
        let extension = file.rsplit('.').next().unwrap_or_default();
        if !["yaml", "yml", "json", "toml"].contains(&extension) {
            note(format!("`params`: `{file}` is not YAML, JSON or TOML, which Nickel imports; left out"));
            continue;
        }
        let Some(text) = files.read(&file) else {
            note(format!("`params`: `{file}` does not exist; left out"));
            continue;
        };
        let keys = match (keys, extension) {
            (Some(keys), "yaml" | "yml" | "json") => {
                let context = match serde_yaml::from_str::<Mapping>(&text) {
                    Ok(values) => Context::default().with(values, Origin::Other),
                    Err(e) => {
                        note(format!("`params`: `{file}` cannot be read: {e}; left out"));
                        continue;
                    }
                };
                let (known, missing): (Vec<_>, Vec<_>) = keys.into_iter().partition(|k| context.resolve(k).is_some());
                for key in missing {
                    note(format!("`params`: `{file}` has no key `{key}`; left out"));
                }
                if known.is_empty() {
                    continue;
                }
                Some(known)
            }
            (keys, _) => keys,
        };
        out.push((file, keys));
    }
    out
}

/// The command with every `${…}` resolved: values of `params.yaml` become
/// `$GOURD_PARAM_…` (and params of the stage), others their text.
fn command(
    cmd: &str,
    context: &Context,
    params: &mut BTreeMap<String, Option<Vec<String>>>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::new();
    let mut problems = Vec::new();
    let pieces = interpolate::split(cmd)?;
    for (index, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Ref(expr) => {
                // The stage tracks the same key of another params file (its
                // `wdir`'s params.yaml, say): both in its params would not
                // merge, so the value DVC interpolates is written in.
                let tracked_elsewhere = params.iter().any(|(file, keys)| {
                    file != PARAMS_FILE
                        && keys.as_ref().is_none_or(|keys| {
                            keys.iter().any(|k| {
                                k == expr || expr.starts_with(&format!("{k}.")) || k.starts_with(&format!("{expr}."))
                            })
                        })
                });
                match context.resolve(expr) {
                    Some((value, Origin::ParamsFile))
                        if tracked_elsewhere && interpolate::scalar_text(&value).is_some() =>
                    {
                        out.push_str(&interpolate::scalar_text(&value).unwrap_or_default());
                        problems.push(format!(
                            "`cmd`: `${{{expr}}}` is params.yaml's value, written into the command: the stage tracks \
                             `{expr}` of another params file, so `gourd run --set` does not reach it"
                        ));
                    }
                    Some((value, Origin::ParamsFile))
                        if interpolate::is_dotted_key(expr) && interpolate::scalar_text(&value).is_some() =>
                    {
                        add_param(params, PARAMS_FILE, Some(expr));
                        let variable = interpolate::param_variable(expr);
                        let glued = matches!(pieces.get(index + 1), Some(Piece::Text(t)) if t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
                        if interpolate::in_single_quotes(&out) {
                            out.push_str(&format!("'\"${variable}\"'"));
                        } else if glued {
                            out.push_str(&format!("${{{variable}}}"));
                        } else {
                            out.push_str(&format!("${variable}"));
                        }
                    }
                    Some((value, _)) => match interpolate::scalar_text(&value) {
                        Some(text) => out.push_str(&text),
                        None => {
                            problems.push(format!("`cmd`: `${{{expr}}}` is a list or dict (`{}`), which gourd does not unpack; left as it is", compact(&value)));
                            out.push_str(&format!("${{{expr}}}"));
                        }
                    },
                    None => {
                        problems.push(format!(
                            "`cmd`: `${{{expr}}}` names no value of params.yaml, `vars` or the item; left as it is"
                        ));
                        out.push_str(&format!("${{{expr}}}"));
                    }
                }
            }
        }
    }
    Ok((out, problems))
}

/// A string outside the command, with every `${…}` replaced by its value now.
fn substitute(text: &str, context: &Context) -> Result<String, String> {
    let mut out = String::new();
    for piece in interpolate::split(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(expr) => {
                let value = context.resolve(&expr).ok_or(format!("`${{{expr}}}` names no known value"))?.0;
                out.push_str(&interpolate::scalar_text(&value).ok_or(format!("`${{{expr}}}` is not a single value"))?);
            }
        }
    }
    Ok(out)
}

/// `path` (relative to `wdir`) as a workspace path.
pub fn join(wdir: &str, path: &str) -> Result<String, String> {
    if path.contains("://") || path.starts_with("remote://") {
        return Err("is outside the workspace (gourd reads only workspace files)".to_string());
    }
    if path.starts_with('/') {
        return Err("is absolute (gourd paths are relative to the workspace)".to_string());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in wdir.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("is outside the workspace".to_string());
                }
            }
            other => parts.push(other),
        }
    }
    if let Some(reserved) = parts.first().filter(|first| [".git", ".gourd"].contains(first)) {
        return Err(format!("is in `{reserved}`, where git and gourd write (gourd refuses it)"));
    }
    Ok(if parts.is_empty() { ".".to_string() } else { parts.join("/") })
}

/// A gourd stage name for a DVC one: `train@us` → `train-us`.
pub fn stage_name(dvc_name: &str) -> String {
    let mut name: String = dvc_name
        .chars()
        .map(|c| match c {
            '@' => '-',
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') => c,
            _ => '_',
        })
        .collect();
    if name.starts_with(['-', '.']) || name.is_empty() {
        name.insert(0, '_');
    }
    name
}

/// Top-level `metrics`: each goes to the stage whose out holds it.
fn top_metrics(value: &Value, out: &mut Pipeline) {
    for path in value.as_sequence().into_iter().flatten().filter_map(Value::as_str) {
        let Ok(path) = join(".", path) else {
            out.notes.push(format!("top-level `metrics`: `{path}` is outside the workspace; left out"));
            continue;
        };
        if out.stages.iter().any(|s| s.metrics.contains(&path)) {
            continue;
        }
        let owner = out
            .stages
            .iter_mut()
            .find(|s| s.outs.iter().any(|o| path == o.path || path.starts_with(&format!("{}/", o.path))));
        match owner {
            Some(stage) => {
                stage.outs.retain(|o| o.path != path);
                stage.metrics.push(path);
            }
            None => out.notes.push(format!(
                "top-level `metrics`: no stage writes `{path}`; gourd's metrics belong to the stage that writes them"
            )),
        }
    }
}

/// `artifacts: {name: {path, type, …}}` as registry models (GTO's names, as DVC's).
fn artifacts(value: &Value, out: &mut Pipeline) {
    for (name, artifact) in value.as_mapping().into_iter().flatten() {
        let name = interpolate::scalar_text(name).unwrap_or_default();
        let mut note = |text: String| out.notes.push(format!("artifact `{name}`: {text}"));
        let Some(path) = artifact["path"].as_str() else {
            note("no `path`; left out".to_string());
            continue;
        };
        let path = match join(".", path) {
            Ok(path) => path,
            Err(e) => {
                note(format!("`{path}` {e}; left out"));
                continue;
            }
        };
        for (field, value) in artifact.as_mapping().into_iter().flatten() {
            match (field.as_str().unwrap_or_default(), value.as_str()) {
                ("path", _) | ("type", Some("model")) => {}
                (field, _) => note(format!("`{field}: {}` has no registry field; left out", compact(value))),
            }
        }
        out.registry.push((name, path));
    }
}

/// The fields gourd draws a plot by; files named in `x`/`y` made workspace paths.
fn plot_fields(fields: &Mapping, wdir: &str, plot: &str, note: &mut dyn FnMut(String)) -> Mapping {
    let mut out = Mapping::new();
    for (name, value) in fields {
        let name = name.as_str().unwrap_or_default();
        if !PLOT_FIELDS.contains(&name) {
            if name != "cache" {
                note(format!("plot `{plot}`: `{name}: {}` has no gourd equivalent; left out", compact(value)));
            }
            continue;
        }
        let value = match (name, value) {
            ("template", Value::String(t)) if !TEMPLATES.contains(&t.as_str()) => {
                note(format!(
                    "plot `{plot}`: template `{t}` is not one gourd draws ({}); left out",
                    TEMPLATES.join(", ")
                ));
                continue;
            }
            ("x" | "y", Value::Mapping(files)) => Value::Mapping(
                files
                    .iter()
                    .map(|(file, field)| {
                        let file = file.as_str().and_then(|f| join(wdir, f).ok()).map_or(file.clone(), Value::String);
                        (file, field.clone())
                    })
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(Value::String(name.to_string()), value);
    }
    out
}

/// A YAML value on one line (JSON, which YAML reads too).
pub fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// DVC's `cmd` list as one shell command: each given to a shell of its own
/// (`sh -c '…'`), the next only when it succeeded, as DVC runs them. A `cd`
/// or a variable does not carry over, `a || true` in one does not swallow
/// another's failure (as a plain ` && ` join would), and whatever one
/// holds (a comment, a trailing `\`, nothing) is read as DVC's shell reads
/// it.
fn commands_in_turn(cmd: &[String]) -> String {
    match cmd {
        [one] => one.clone(),
        several => several
            .iter()
            .map(|part| format!("sh -c '{}'", part.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" && "),
    }
}

/// The entries of a list field (`deps`, `outs`, `params`...); one value
/// written without the list (`outs: model.pkl`) is that one entry, not
/// none.
fn items(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}
