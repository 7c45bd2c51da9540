//! `gourd.ncl` → [`Pipeline`].
//!
//! The only crate that knows Nickel. Loading happens in two steps, as with
//! ripgrep's low- and high-level arguments: Nickel evaluates the file, and the
//! exported JSON is then turned into the engine's validated types. When the
//! export is wrong, the file is evaluated again with the bundled `Pipeline`
//! contract applied, so that Nickel reports the bad value with the file and
//! line; an unknown field is reported from the export itself, with the
//! user's line and the nearest known field. Nickel's diagnostics are shown
//! without gourd's own frames, with hints for common mistakes (`diagnose`).
//!
//! A pipeline file is user code, and the evaluator can neither be interrupted
//! nor survive a deep enough recursion. So [`load`] evaluates it in a child
//! process (the gourd binary re-invoked through its hidden `__eval` command)
//! under a time and memory limit, and turns the child's death into an error.

mod cache;
mod diagnose;
mod fields;
mod isolate;
mod locate;
mod plots;
mod raw;
mod sources;

use std::path::{Path, PathBuf};

pub use fields::unknown_field_hint;
pub use isolate::{EvalLimits, load, load_with_sources};
pub use raw::validate;
pub use sources::{Source, imports};

/// The 1-based line of `literal` within stage `stage` of the pipeline file,
/// for errors found after evaluation.
pub fn line_of(file: &Path, stage: &str, literal: Option<&str>) -> Option<usize> {
    let source = std::fs::read_to_string(file).ok()?;
    locate::line_of(&source, stage, literal)
}

/// The files the pipeline file reads through `import`, itself included, as
/// absolute paths (those that exist).
pub fn sources(file: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut todo = vec![file.to_path_buf()];
    while let Some(path) = todo.pop() {
        let Ok(path) = std::fs::canonicalize(&path) else { continue };
        if found.contains(&path) {
            continue;
        }
        // Only a plain file is read: a FIFO would block the scan until
        // someone wrote to it (the evaluation reads it, once).
        let plain = std::fs::metadata(&path).is_ok_and(|meta| meta.is_file());
        if let Some(text) = plain.then(|| std::fs::read_to_string(&path).ok()).flatten() {
            let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            todo.extend(imports(&text).into_iter().filter(|i| i != STDLIB_NAME).map(|i| dir.join(i)));
        }
        found.push(path);
    }
    found
}

/// The standard library, compiled in.
pub const STDLIB: &str = include_str!("../../../stdlib/gourd-std.ncl");
/// The name pipeline files import the standard library by.
pub const STDLIB_NAME: &str = "gourd-std.ncl";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Nickel's diagnostics (without gourd's internal frames), and hints for
    /// the mistakes recognised in them.
    #[error("{}", .diagnostics.trim_end())]
    Nickel { diagnostics: String, hints: Vec<String> },
    #[error("evaluating `{}` crashed ({reason})", .file.display())]
    Crashed { file: PathBuf, reason: String },
    #[error("evaluating `{}` took longer than {seconds}s", .file.display())]
    TimedOut { file: PathBuf, seconds: u64 },
    #[error("in `{}{}`: {message}", .file.display(), .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { file: PathBuf, line: Option<usize>, message: String, hint: Option<String> },
    /// A field gourd does not know, in `place` ("stage `train`"); `known`
    /// are the fields that place has.
    #[error("in `{}{}`: {place} has no field `{field}`", .file.display(), .line.map(|l| format!(":{l}")).unwrap_or_default())]
    UnknownField { file: PathBuf, line: Option<usize>, place: String, field: String, known: Vec<String> },
    #[error("cannot evaluate `{}`: {source}", .file.display())]
    Io { file: PathBuf, source: std::io::Error },
}

/// Writes the standard library to a folder named after its content, so that
/// Nickel can import it, and returns the folder. Prefers `preferred` (under
/// `.gourd/`), falls back to the temp folder when that is not writable.
pub fn install_stdlib(preferred: &Path) -> std::io::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    STDLIB.hash(&mut hasher);
    let name = format!("v1-{:016x}", hasher.finish());
    let mut last_err = None;
    for base in [preferred.to_path_buf(), std::env::temp_dir().join("gourd-stdlib")] {
        let dir = base.join(&name);
        let file = dir.join(STDLIB_NAME);
        if std::fs::read_to_string(&file).is_ok_and(|text| text == STDLIB) {
            return Ok(dir);
        }
        let written = (|| {
            fs_err::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{STDLIB_NAME}.{}.tmp", std::process::id()));
            fs_err::write(&tmp, STDLIB)?;
            fs_err::rename(&tmp, &file)
        })();
        match written {
            Ok(()) => return Ok(dir),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.expect("tried at least one folder"))
}

/// What evaluating a pipeline file gave: its JSON export, and the files the
/// evaluation read with their digests (`None` when they cannot be known, or
/// changed while it ran).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub export: String,
    pub read: Option<Vec<Source>>,
}

impl Evaluation {
    /// What the `__eval` child prints: the files read as JSON on one line,
    /// then the export.
    pub fn to_wire(&self) -> String {
        let line = serde_json::to_string(&self.read).unwrap_or_else(|_| "null".to_string());
        format!("{line}\n{}", self.export)
    }

    /// The inverse of [`Evaluation::to_wire`].
    pub fn from_wire(wire: &str) -> Evaluation {
        let (line, export) = wire.split_once('\n').unwrap_or(("null", wire));
        Evaluation { export: export.to_string(), read: serde_json::from_str(line).ok().flatten() }
    }
}

/// Evaluates `file` in this process, or returns Nickel's diagnostics. This
/// is what the `__eval` child runs; call [`load`] instead.
///
/// With `checked`, the `Pipeline` contract is applied, so that Nickel reports
/// a bad field with its own position; without, the file is evaluated as it
/// is and [`validate`] checks the export in Rust, which costs a fraction of
/// applying a record contract to each of 10,000 stages. [`load`] does the
/// fast evaluation first and the checked one only when something is wrong.
pub fn evaluate_here(file: &Path, stdlib_dir: &Path, color: bool, checked: bool) -> Result<Evaluation, String> {
    let file_literal = serde_json::to_string(&file.display().to_string()).expect("a string");
    // The user's file is imported by its absolute path, so its diagnostics
    // carry its own name and lines, and its relative imports resolve.
    let source = if checked {
        format!("let gourd = import \"{STDLIB_NAME}\" in (import {file_literal}) | gourd.Pipeline\n")
    } else {
        format!("import {file_literal}\n")
    };
    let entry = file.with_file_name(diagnose::ENTRY_NAME);
    let import_paths = [stdlib_dir.to_path_buf()];
    // Read before and after: a file edited while Nickel read it must not be
    // recorded with a digest that does not go with the export.
    let before = sources::read_by(&entry, &source, &import_paths);
    let mut context = nickel_lang::Context::new()
        .with_source_name(entry.display().to_string())
        .with_added_import_paths(vec![stdlib_dir.as_os_str().to_owned()]);
    let format = if color { nickel_lang::ErrorFormat::AnsiText } else { nickel_lang::ErrorFormat::Text };
    let render = |err: nickel_lang::Error| {
        let mut buf = Vec::new();
        match err.format(&mut buf, format) {
            Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
            Err(e) => format!("error: {e}"),
        }
    };
    let expr = context.eval_deep_for_export(&source).map_err(render)?;
    // JSON has no enum tags: `'cuda` and `"cuda"` export alike. Without the
    // contract, a tag where a string belongs (`cmd = 'true'`) or a string
    // where a tag belongs would pass: the checked evaluation says which.
    if !checked {
        if let Some(at) = misplaced_tag(&expr, &mut Vec::new()) {
            return Err(format!("`{at}`: an enum tag where a string belongs, or a string where a tag belongs"));
        }
    }
    let export = context.expr_to_json(&expr).map_err(render)?;
    let after = sources::read_by(&entry, &source, &import_paths);
    Ok(Evaluation { export, read: before.filter(|before| Some(before) == after.as_ref()) })
}

/// The dotted path of the first enum tag (`'cuda`) in a pipeline's value
/// where the `Pipeline` contract wants a string, or of a string where it
/// wants a tag. Params, plots and a step's configuration take anything; a
/// field the contract does not know is left to [`validate`], which names
/// the nearest known one.
fn misplaced_tag(expr: &nickel_lang::Expr, path: &mut Vec<String>) -> Option<String> {
    let at = |path: &[String]| path.join(".");
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let tag_wanted = matches!(
        parts.as_slice(),
        ["stages", _, "executor"] | ["stages", _, "outs", _, "kind"] | ["remote", "kind"] | ["cache", "link"]
    );
    let string_wanted = matches!(
        parts.as_slice(),
        ["stages", _, "cmd" | "wdir" | "desc"]
            | ["stages", _, "cmd", _]
            | ["stages", _, "deps" | "outs" | "metrics" | "secrets" | "env", _]
            | ["stages", _, "outs", _, "path"]
            | ["remote", "endpoint" | "bucket" | "path" | "instance" | "prefix" | "region"]
            | ["remote", "platform", _]
            | ["registry", _, "path"]
            | ["registry", _, "metrics" | "card", _]
            | ["registry", _, "gates" | "card", _, _]
    );
    if expr.is_enum_tag() || expr.is_enum_variant() {
        return string_wanted.then(|| at(path));
    }
    if tag_wanted {
        return expr.is_string().then(|| at(path));
    }
    if matches!(
        parts.as_slice(),
        ["stages", _, "params" | "plots", ..] | ["stages", _, "cmd", "config", ..] | ["plots", ..]
    ) {
        return None;
    }
    if let Some(record) = expr.as_record() {
        for (name, value) in record.iter() {
            let Some(value) = value else { continue };
            path.push(name.to_string());
            let found = misplaced_tag(&value, path);
            path.pop();
            if found.is_some() {
                return found;
            }
        }
    } else if let Some(array) = expr.as_array() {
        for (i, value) in array.iter().enumerate() {
            path.push(i.to_string());
            let found = misplaced_tag(&value, path);
            path.pop();
            if found.is_some() {
                return found;
            }
        }
    }
    None
}
