//! Converted stages as a readable `gourd.ncl`.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::convert::{Out, Pipeline, Plot, Stage};

/// What goes into the file besides the stages.
pub struct Extras<'a> {
    pub source: &'a str,
    pub remote: Option<&'a str>,
    /// What the `.dvc` files track.
    pub sources: &'a [super::Tracked],
}

pub fn render(pipeline: &Pipeline, extras: &Extras) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Converted from `{}` by `gourd import-dvc`.", extras.source);
    out.push_str("# Paths are relative to this folder; a stage with `wdir` runs its command there.\n");
    if pipeline.stages.iter().any(|s| s.dvc_name != s.name) {
        out.push_str("# DVC's `stage@item` is `stage-item` here (gourd stage names take no `@`).\n");
    }
    if pipeline.stages.iter().any(|s| s.cmd.contains("$GOURD_PARAM_") || s.cmd.contains("${GOURD_PARAM_")) {
        out.push_str(
            "# `${key}` of params.yaml in a command is `$GOURD_PARAM_KEY`: `gourd run --set key=value` changes it.\n",
        );
    }
    if !extras.sources.is_empty() {
        out.push_str(
            "#\n# Sources tracked by DVC's `.dvc` files; gourd tracks them in gourd.sources.json (`gourd add`):\n",
        );
        for source in extras.sources {
            let origin = source.origin.as_ref().map(|o| format!(", imported from {o}")).unwrap_or_default();
            let _ = writeln!(out, "#   {}  (from {}{origin})", source.path, source.file);
        }
    }
    // Names of bindings must not be fields in scope (stage names, stage fields).
    let mut taken: BTreeSet<String> = pipeline.stages.iter().map(|s| s.name.clone()).collect();
    taken.extend(
        ["stages", "remote", "cmd", "deps", "outs", "metrics", "params", "wdir", "frozen", "always_run", "desc"]
            .map(String::from),
    );
    let files: BTreeSet<&str> = pipeline.stages.iter().flat_map(|s| s.params.iter().map(|(f, _)| f.as_str())).collect();
    let mut bindings = Vec::new();
    if pipeline.stages.iter().any(|s| s.params.iter().any(|(_, keys)| keys.is_some())) {
        bindings.push(("gourd-std.ncl".to_string(), fresh("gourd", &mut taken)));
    }
    for file in files {
        let base: String =
            file.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let base = if base.starts_with(|c: char| c.is_ascii_alphabetic()) { base } else { format!("f_{base}") };
        bindings.push((file.to_string(), fresh(&base, &mut taken)));
    }
    let binding = |file: &str| -> String {
        bindings.iter().find(|(f, _)| f == file).map_or_else(|| file.to_string(), |(_, b)| b.clone())
    };
    out.push('\n');
    for (file, name) in &bindings {
        let _ = writeln!(out, "let {name} = import {} in", string(file));
    }
    out.push_str("{\n");
    if let Some(remote) = extras.remote {
        let _ = writeln!(out, "  remote = {remote},");
    }
    out.push_str("  stages = {\n");
    for (index, stage) in pipeline.stages.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        render_stage(&mut out, stage, &binding);
    }
    out.push_str("  },\n");
    if !pipeline.plots.is_empty() {
        let plots = serde_yaml::Value::Sequence(pipeline.plots.clone());
        let _ = writeln!(out, "  plots = {},", pretty(&plots, "  ", "  plots = ".len()));
    }
    if !pipeline.registry.is_empty() {
        out.push_str("  registry = {\n");
        for (name, path) in &pipeline.registry {
            let _ = writeln!(out, "    {} = {{ path = {} }},", field(name), string(path));
        }
        out.push_str("  },\n");
    }
    out.push_str("}\n");
    out
}

fn fresh(base: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name = base.to_string();
    while taken.contains(&name) {
        name.push('_');
    }
    taken.insert(name.clone());
    name
}

fn render_stage(out: &mut String, stage: &Stage, binding: &dyn Fn(&str) -> String) {
    if stage.dvc_name != stage.name {
        let _ = writeln!(out, "    # {}", stage.dvc_name);
    }
    let _ = writeln!(out, "    {} = {{", field(&stage.name));
    let mut line = |name: &str, value: String| {
        let _ = writeln!(out, "      {name} = {value},");
    };
    if let Some(desc) = &stage.desc {
        line("desc", string(desc));
    }
    line("cmd", string(&stage.cmd));
    if let Some(wdir) = &stage.wdir {
        line("wdir", string(wdir));
    }
    if !stage.deps.is_empty() {
        line("deps", array(&stage.deps.iter().map(|d| string(d)).collect::<Vec<_>>()));
    }
    if !stage.params.is_empty() {
        let parts: Vec<String> = stage
            .params
            .iter()
            .map(|(file, keys)| match keys {
                Some(keys) => {
                    let keys = array(&keys.iter().map(|k| string(k)).collect::<Vec<_>>());
                    format!("{}.params {} {keys}", binding("gourd-std.ncl"), binding(file))
                }
                None => binding(file),
            })
            .collect();
        line("params", parts.join(" & "));
    }
    if !stage.outs.is_empty() {
        line("outs", array(&stage.outs.iter().map(output).collect::<Vec<_>>()));
    }
    if !stage.metrics.is_empty() {
        line("metrics", array(&stage.metrics.iter().map(|m| string(m)).collect::<Vec<_>>()));
    }
    if stage.frozen {
        line("frozen", "true".to_string());
    }
    if stage.always_run {
        line("always_run", "true".to_string());
    }
    if !stage.plots.is_empty() {
        line("plots", array(&stage.plots.iter().map(plot).collect::<Vec<_>>()));
    }
    out.push_str("    },\n");
}

fn plot(plot: &Plot) -> String {
    if plot.props.is_empty() && plot.cache {
        return string(&plot.path);
    }
    let mut fields = vec![format!("path = {}", string(&plot.path))];
    fields.extend(plot.props.iter().map(|(k, v)| format!("{} = {}", field(k.as_str().unwrap_or_default()), value(v))));
    if !plot.cache {
        fields.push("cache = false".to_string());
    }
    format!("{{ {} }}", fields.join(", "))
}

/// A YAML value as a Nickel value: on one line where it fits in 100
/// columns after `used` of them, else one element or field a line.
fn pretty(v: &serde_yaml::Value, indent: &str, used: usize) -> String {
    use serde_yaml::Value;
    let one_line = value(v);
    if indent.len() + used + one_line.len() <= 100 {
        return one_line;
    }
    let inner = format!("{indent}  ");
    let (open, close, items): (&str, &str, Vec<String>) = match v {
        Value::Sequence(items) => ("[", "]", items.iter().map(|item| pretty(item, &inner, 0)).collect()),
        Value::Mapping(m) => (
            "{",
            "}",
            m.iter()
                .map(|(k, v)| {
                    let key = field(&super::interpolate::scalar_text(k).unwrap_or_default());
                    format!("{key} = {}", pretty(v, &inner, key.len() + 3))
                })
                .collect(),
        ),
        _ => return one_line,
    };
    let mut out = format!("{open}\n");
    for item in items {
        let _ = writeln!(out, "{inner}{item},");
    }
    let _ = write!(out, "{indent}{close}");
    out
}

/// A YAML value as a Nickel value, on one line.
fn value(v: &serde_yaml::Value) -> String {
    use serde_yaml::Value;
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Sequence(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::Mapping(m) if m.is_empty() => "{}".to_string(),
        Value::Mapping(m) => {
            let fields: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    let key = super::interpolate::scalar_text(k).unwrap_or_default();
                    format!("{} = {}", field(&key), value(v))
                })
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Tagged(tagged) => value(&tagged.value),
    }
}

fn output(out: &Out) -> String {
    if out.cache && !out.persist && !out.model {
        return string(&out.path);
    }
    let mut fields = vec![format!("path = {}", string(&out.path))];
    if out.model {
        fields.push("kind = 'model".to_string());
    }
    if !out.cache {
        fields.push("cache = false".to_string());
    }
    if out.persist {
        fields.push("persist = true".to_string());
    }
    format!("{{ {} }}", fields.join(", "))
}

/// An array on one line when it is short, else one element a line.
fn array(items: &[String]) -> String {
    array_at(items, "      ")
}

/// `array`, for a field indented by `indent`.
fn array_at(items: &[String], indent: &str) -> String {
    let one_line = format!("[{}]", items.join(", "));
    if one_line.len() + indent.len() <= 78 {
        return one_line;
    }
    let mut out = String::from("[\n");
    for item in items {
        let _ = writeln!(out, "{indent}  {item},");
    }
    let _ = write!(out, "{indent}]");
    out
}

/// A Nickel string literal: `%{` would interpolate, so `%` is escaped before `{`.
pub fn string(text: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '%' if chars.peek() == Some(&'{') => out.push_str("\\%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A record field name, quoted unless it is a plain Nickel identifier.
pub fn field(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "let",
        "in",
        "if",
        "then",
        "else",
        "fun",
        "import",
        "match",
        "null",
        "true",
        "false",
        "rec",
        "forall",
        "default",
        "doc",
        "optional",
        "priority",
        "force",
        "not_exported",
        "include",
        "Array",
        "Number",
        "String",
        "Bool",
        "Dyn",
    ];
    let plain = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !KEYWORDS.contains(&name);
    if plain { name.to_string() } else { string(name) }
}
