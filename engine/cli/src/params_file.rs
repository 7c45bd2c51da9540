//! `gourd run --set KEY=VALUE` on a params file, as `dvc exp run -S` does:
//! when the workspace's `params.yaml` (or `params.json`) has KEY, the value
//! is written there, so that scripts reading the file and the pipeline
//! importing it both see it; else when exactly one other params file the
//! pipeline imports has it (`custom.yaml`, a stage's `src/params.yaml`),
//! there; `FILE:KEY` names the file, as DVC's `-S` does. Only the value's
//! own text is replaced (YAML line by line, JSON by the value's place in
//! the text): comments, order, layout and every other value stay as
//! written. The result is parsed back and must equal the file with that one
//! value changed, or nothing is written.
//!
//! A key that a params file holds is never set for one run only: the
//! script reading the file would not see the value, and the result would
//! be cached under params it was not made with.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The params files looked at first, in order.
const FILES: [&str; 3] = ["params.yaml", "params.yml", "params.json"];

/// Writes `value` at the dotted `key` of the params file that has it:
/// `FILE:KEY` names the file; else the workspace's own params file, else
/// the one of `imported` (the files the pipeline reads, canonical) that has
/// it. Returns the file written, `None` when no params file has the key (it
/// is then a param of the pipeline alone), or an error saying why a file
/// that has it cannot be edited, or which of several to edit. gourd edits
/// only files inside the workspace (links followed: the file a link leads
/// to is edited, the link stays), outside `.git` and `.gourd`.
pub fn set(root: &Path, key: &str, value: &Value, imported: &[PathBuf]) -> Result<Option<PathBuf>, String> {
    let canonical_root = std::fs::canonicalize(root).map_err(|e| format!("`{}`: {e}", root.display()))?;
    let shown = |real: &Path| real.strip_prefix(&canonical_root).unwrap_or(real).display().to_string();
    // Where `file` really is, if gourd may write there.
    let writable = |file: &Path, name: &str| -> Result<PathBuf, String> {
        let real = std::fs::canonicalize(file).map_err(|e| format!("`{name}`: {e}"))?;
        let Ok(rel) = real.strip_prefix(&canonical_root) else {
            return Err(format!("`{name}` is outside the workspace (`{}`); gourd edits no file there", real.display()));
        };
        if rel.components().any(|c| matches!(c.as_os_str().to_str(), Some(".git" | ".gourd"))) {
            return Err(format!("`{name}` lies in `.git` or `.gourd`; gourd edits no params file there"));
        }
        Ok(real)
    };
    let own: Vec<PathBuf> = FILES.iter().filter_map(|f| std::fs::canonicalize(root.join(f)).ok()).collect();
    if let Some((name, inner)) = key.split_once(':') {
        let file = root.join(name);
        if Path::new(name).is_absolute() || name.split('/').any(|part| part == "..") || !file.is_file() {
            return Err(format!("`{name}` (in `{key}`) is not a file of the workspace"));
        }
        let real = writable(&file, name)?;
        if !params_like(&real) || (!imported.contains(&real) && !own.contains(&real)) {
            return Err(format!("`{name}` is not a params file the pipeline imports"));
        }
        return match edit(&real, &shown(&real), inner, value)? {
            Some(()) => Ok(Some(real)),
            None => Err(format!("`{name}` has no `{inner}`")),
        };
    }
    for name in FILES {
        let file = root.join(name);
        if std::fs::symlink_metadata(&file).is_err() || !has_key(&file, key) {
            continue;
        }
        let real = writable(&file, name)?;
        if edit(&real, &shown(&real), key, value)?.is_some() {
            return Ok(Some(real));
        }
    }
    // The other params files the pipeline imports, inside the workspace or
    // not: one outside that has the key is refused, not overridden.
    let mut holding: Vec<&PathBuf> =
        imported.iter().filter(|file| params_like(file) && !own.contains(file) && has_key(file, key)).collect();
    holding.sort();
    holding.dedup();
    match &holding[..] {
        [] => Ok(None),
        [file] => {
            let real = writable(file, &shown(file))?;
            match edit(&real, &shown(&real), key, value)? {
                Some(()) => Ok(Some(real)),
                None => Err(format!("`{}`: cannot edit `{key}` in place", shown(&real))),
            }
        }
        several => {
            let names: Vec<String> = several.iter().map(|file| format!("`{}`", shown(file))).collect();
            Err(format!("`{key}` is in {}: name the file, as `{}:{key}=…`", names.join(" and "), shown(several[0])))
        }
    }
}

/// Whether `file` is named as a params file is: YAML, JSON or TOML.
fn params_like(file: &Path) -> bool {
    file.extension().is_some_and(|e| ["yaml", "yml", "json", "toml"].iter().any(|x| e == *x))
}

/// Whether the params file `file` has the dotted `key`.
fn has_key(file: &Path, key: &str) -> bool {
    let path: Vec<&str> = key.split('.').collect();
    let Ok(bytes) = std::fs::read(file) else { return false };
    // Read as metrics files are: JSON, YAML or TOML by extension.
    let parsed = gourd_core::metrics::parse(&file.to_string_lossy(), &bytes);
    parsed.is_ok_and(|parsed| lookup(&parsed, &path).is_some())
}

/// Writes `value` at the dotted `key` of `file` (shown as `name`):
/// `Some(())` when written, `None` when the file is missing or lacks the
/// key, an error when it has the key and cannot be edited in place.
fn edit(file: &Path, name: &str, key: &str, value: &Value) -> Result<Option<()>, String> {
    let path: Vec<&str> = key.split('.').collect();
    let Ok(text) = std::fs::read_to_string(file) else { return Ok(None) };
    let json = name.ends_with(".json");
    if name.ends_with(".toml") {
        return if has_key(file, key) {
            Err(format!("`{name}`: gourd edits YAML and JSON params files in place, not TOML; edit `{key}` there"))
        } else {
            Ok(None)
        };
    }
    let parsed: Value = if json {
        serde_json::from_str(&text).map_err(|e| format!("`{name}`: {e}"))?
    } else {
        serde_yaml::from_str(&text).map_err(|e| format!("`{name}`: {e}"))?
    };
    if lookup(&parsed, &path).is_none() {
        return Ok(None);
    }
    let edited = if json { edit_json(&text, &path, value) } else { edit_yaml(&text, &path, value) }
        .ok_or_else(|| format!("`{name}`: cannot edit `{key}` in place (flow style or an unusual layout)"))?;
    let check: Value = if json {
        serde_json::from_str(&edited).map_err(|e| format!("`{name}`: edit broke it: {e}"))?
    } else {
        serde_yaml::from_str(&edited).map_err(|e| format!("`{name}`: edit broke it: {e}"))?
    };
    // The edit changed that value and nothing else (a key of the same
    // name elsewhere, say), but what shares it through a YAML anchor.
    let old = lookup(&parsed, &path).expect("found above").clone();
    let mut changed = Vec::new();
    differences(&parsed, &check, &mut Vec::new(), &mut changed);
    let target: Vec<String> = path.iter().map(|p| p.to_string()).collect();
    let only_that_value = (changed.contains(&target) || old == *value)
        && changed.iter().all(|at| {
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            lookup(&parsed, &at) == Some(&old) && lookup(&check, &at) == Some(value)
        });
    if !only_that_value {
        return Err(format!(
            "`{name}`: `{key}` cannot be edited in place without changing something else (is it there twice?); nothing was written"
        ));
    }
    replace_keeping_mode(file, edited.as_bytes()).map_err(|e| format!("`{name}`: {e}"))?;
    Ok(Some(()))
}

/// The paths (lists of keys; an index of an array as its number) where
/// `a` and `b` differ, as deep as both are records.
fn differences(a: &Value, b: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                at.push(key.clone());
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(x, y, at, out),
                    _ => out.push(at.clone()),
                }
                at.pop();
            }
        }
        _ if a != b => out.push(at.clone()),
        _ => {}
    }
}

pub fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |here, name| here.as_object()?.get(*name))
}

/// The value at a dotted path (split into `path`) inside `value`.
pub fn lookup_mut<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |here, name| here.as_object_mut()?.get_mut(*name))
}

/// The fields the dotted `key` names in `value`, a name holding dots
/// (`"y.z" = 8`) read whole where it is one: at each level the whole rest
/// first, then its longest dotted prefix that is a field.
pub fn dotted_path(value: &Value, key: &str) -> Option<Vec<String>> {
    let Value::Object(map) = value else { return None };
    if map.contains_key(key) {
        return Some(vec![key.to_string()]);
    }
    let mut cut = key.len();
    while let Some(at) = key[..cut].rfind('.') {
        let (head, rest) = (&key[..at], &key[at + 1..]);
        if let Some(mut path) = map.get(head).and_then(|inner| dotted_path(inner, rest)) {
            path.insert(0, head.to_string());
            return Some(path);
        }
        cut = at;
    }
    None
}

/// `text` with the scalar at `path` replaced by `value` (in JSON form, which
/// YAML reads), keeping everything else byte for byte.
fn edit_yaml(text: &str, path: &[&str], value: &Value) -> Option<String> {
    if value.is_object() {
        return None;
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let ignorable = |line: &str| line.trim().is_empty() || line.trim_start().starts_with('#');
    let (mut start, mut end) = (0, lines.len());
    let mut target = None;
    for (depth, name) in path.iter().enumerate() {
        // The keys of this level are the lines at the indent of its first
        // line; deeper ones belong to a key's own block.
        let level = indent(lines[(start..end).find(|&i| !ignorable(lines[i]))?]);
        let found = (start..end).find(|&i| {
            let line = lines[i];
            !ignorable(line)
                && indent(line) == level
                && line.trim_start().strip_prefix(*name).is_some_and(|rest| rest.starts_with(':'))
        })?;
        if depth + 1 == path.len() {
            target = Some(found);
            break;
        }
        // The block under it: the following lines indented deeper.
        start = found + 1;
        end = (start..end).find(|&i| !ignorable(lines[i]) && indent(lines[i]) <= level).unwrap_or(end);
        if start >= end {
            return None;
        }
    }
    let line = lines[target?];
    let name_end = line.find(':')? + 1;
    let rest = &line[name_end..];
    let body = rest.trim_end_matches(['\n', '\r']);
    // Keep an inline comment; a value that starts a block or is quoted with
    // `#` inside is beyond a line edit.
    let comment = body.find(" #").map(|i| &body[i..]).unwrap_or("");
    let value_part = &body[..body.len() - comment.len()];
    let current = value_part.trim();
    if current.is_empty() || current.starts_with(['|', '>', '&', '*', '!']) || current.contains('#') {
        return None;
    }
    // The spaces between the value and its comment stay too.
    let spacing = &value_part[value_part.trim_end().len()..];
    let newline = &rest[body.len()..];
    let new = serde_json::to_string(value).ok()?;
    let replaced = format!("{} {new}{spacing}{comment}{newline}", &line[..name_end]);
    let mut out = String::with_capacity(text.len() + 16);
    for (i, l) in lines.iter().enumerate() {
        out.push_str(if Some(i) == target { &replaced } else { l });
    }
    Some(out)
}

/// `text` (JSON) with the value at `path` replaced by `value`, every other
/// byte as it was: no reordering, no reformatting, and numbers beyond a
/// float's precision kept as written.
fn edit_json(text: &str, path: &[&str], value: &Value) -> Option<String> {
    let bytes = text.as_bytes();
    let mut at = 0;
    skip_space(bytes, &mut at);
    for name in path {
        if bytes.get(at) != Some(&b'{') {
            return None;
        }
        at += 1;
        loop {
            skip_space(bytes, &mut at);
            let key_start = at;
            skip_string(bytes, &mut at)?;
            let key: String = serde_json::from_str(&text[key_start..at]).ok()?;
            skip_space(bytes, &mut at);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            at += 1;
            skip_space(bytes, &mut at);
            if key == *name {
                break;
            }
            skip_value(bytes, &mut at)?;
            skip_space(bytes, &mut at);
            match bytes.get(at) {
                Some(b',') => at += 1,
                _ => return None,
            }
        }
    }
    let start = at;
    skip_value(bytes, &mut at)?;
    Some(format!("{}{}{}", &text[..start], serde_json::to_string(value).ok()?, &text[at..]))
}

fn skip_space(bytes: &[u8], at: &mut usize) {
    while bytes.get(*at).is_some_and(|b| b.is_ascii_whitespace()) {
        *at += 1;
    }
}

/// Past the string that starts at `at`.
fn skip_string(bytes: &[u8], at: &mut usize) -> Option<()> {
    if bytes.get(*at) != Some(&b'"') {
        return None;
    }
    *at += 1;
    loop {
        match bytes.get(*at)? {
            b'\\' => *at += 2,
            b'"' => {
                *at += 1;
                return Some(());
            }
            _ => *at += 1,
        }
    }
}

/// Past the value that starts at `at`.
fn skip_value(bytes: &[u8], at: &mut usize) -> Option<()> {
    match bytes.get(*at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match bytes.get(*at)? {
                    b'"' => {
                        skip_string(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            *at += 1;
                            return Some(());
                        }
                    }
                    _ => {}
                }
                *at += 1;
            }
        }
        _ => {
            let start = *at;
            while bytes.get(*at).is_some_and(|b| !b",}] \t\r\n".contains(b)) {
                *at += 1;
            }
            (*at > start).then_some(())
        }
    }
}

/// The params files `--set` may write, as they are before it does, put
/// back when dropped unless [`Undo::keep`] was called: a run that does not
/// start (a later `--set` refused, an unknown stage, `-j 0`, a dry run)
/// leaves them as they were. So does a signal that stops gourd before the
/// run starts (Ctrl-C while the pipeline loads): SIGINT, SIGTERM and SIGHUP
/// are taken by a thread of their own meanwhile, which puts the files back,
/// then lets the signal stop gourd.
pub struct Undo {
    state: std::sync::Arc<std::sync::Mutex<Saved>>,
    // Dropped after the files are put back.
    _held: Option<HeldSignals>,
}

struct Saved {
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Kept (the run started) or put back: nothing more to do.
    settled: bool,
}

impl Saved {
    fn put_back(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        for (file, bytes) in &self.files {
            if std::fs::read(file).is_ok_and(|now| now != *bytes) {
                match replace_keeping_mode(file, bytes) {
                    Ok(()) => eprintln!("note: `{}` is as it was before `--set`", file.display()),
                    Err(err) => eprintln!("warning: could not put `{}` back as it was: {err}", file.display()),
                }
            }
        }
    }
}

impl Undo {
    /// Saves every file `--set KEY=…` could write for `keys`: the
    /// workspace's own params files, the params files of `imported`, and
    /// the files `FILE:KEY` names.
    pub fn save(root: &Path, keys: &[&str], imported: &[PathBuf]) -> Undo {
        let mut files: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
        files.extend(imported.iter().filter(|f| params_like(f)).cloned());
        files.extend(keys.iter().filter_map(|key| key.split_once(':')).map(|(name, _)| root.join(name)));
        let mut saved: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for file in files {
            let Ok(real) = std::fs::canonicalize(&file) else { continue };
            if saved.iter().any(|(done, _)| *done == real) {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&real) {
                saved.push((real, bytes));
            }
        }
        let state = std::sync::Arc::new(std::sync::Mutex::new(Saved { files: saved, settled: false }));
        let held = HeldSignals::hold(state.clone());
        Undo { state, _held: held }
    }

    /// Held while the files are written: a signal meanwhile puts them back
    /// once the write is through.
    pub fn editing(&self) -> impl Sized + '_ {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The edits stay: the run starts. (A signal that came first has
    /// stopped gourd already, the files put back.)
    pub fn keep(self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).settled = true;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).put_back();
    }
}

/// The signals that stop gourd, blocked on this thread (and so on the
/// threads it starts; a child process starts with none blocked) until
/// dropped, and taken meanwhile by a thread of their own: one that comes
/// before the run starts puts the saved files back, then stops gourd as it
/// would have.
struct HeldSignals {
    old: libc::sigset_t,
}

impl HeldSignals {
    const STOPPING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    fn hold(saved: std::sync::Arc<std::sync::Mutex<Saved>>) -> Option<HeldSignals> {
        // SAFETY: sigset_t is a plain C struct, filled by sigemptyset and
        // sigaddset before use; pthread_sigmask writes the old mask into
        // `old`.
        let (set, old) = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            // A signal ignored from the start (`nohup`, `trap '' INT`) stays
            // ignored: held, it would be queued and taken here.
            for signal in Self::STOPPING {
                let mut action: libc::sigaction = std::mem::zeroed();
                let ignored =
                    libc::sigaction(signal, std::ptr::null(), &mut action) == 0 && action.sa_sigaction == libc::SIG_IGN;
                if !ignored {
                    libc::sigaddset(&mut set, signal);
                }
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
                return None;
            }
            (set, old)
        };
        let taker = std::thread::Builder::new().name("gourd-set-signals".into()).spawn(move || {
            let mut signal = 0;
            // SAFETY: `set` is initialised above; sigwait writes `signal`.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                return;
            }
            let mut saved = saved.lock().unwrap_or_else(|e| e.into_inner());
            if saved.settled {
                // Kept: the run is starting and listens for it (its thread
                // lets it through once the mask is put back).
                // SAFETY: a plain kill(2) of this process.
                unsafe { libc::kill(libc::getpid(), signal) };
                return;
            }
            saved.put_back();
            // SAFETY: the signal's default action, let through on this
            // thread only, then raised on it: gourd stops as it would
            // have without the hold.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                let mut one: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut one);
                libc::sigaddset(&mut one, signal);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
                libc::raise(signal);
            }
        });
        if taker.is_err() {
            // SAFETY: puts back the mask just saved.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return None;
        }
        Some(HeldSignals { old })
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        // SAFETY: puts back the mask `hold` saved.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// `file` replaced whole by `bytes`, with the mode it had (a 0600 params
/// file stays 0600).
fn replace_keeping_mode(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mode = std::fs::metadata(file)?.permissions();
    gourd_core::fsutil::write_replace(file, bytes, true)?;
    std::fs::set_permissions(file, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nested_value_is_replaced_and_everything_else_stays() {
        let text = "# knobs\nprepare:\n  lr: 9 # not this one\ntrain:\n  # the rate\n  lr: 0.1  # tuned by hand\n  epochs: 3\n";
        let edited = edit_yaml(text, &["train", "lr"], &json!(0.3)).unwrap();
        assert_eq!(
            edited,
            "# knobs\nprepare:\n  lr: 9 # not this one\ntrain:\n  # the rate\n  lr: 0.3  # tuned by hand\n  epochs: 3\n"
        );
        let edited = edit_yaml(text, &["train", "epochs"], &json!("five")).unwrap();
        assert!(edited.ends_with("  epochs: \"five\"\n"), "{edited}");
    }

    /// A key of the same name at another level is not the one asked for.
    #[test]
    fn only_a_key_at_its_own_level_is_edited() {
        let text = "prepare:\n  lr: 9\nlr: 0.1\n";
        assert_eq!(edit_yaml(text, &["lr"], &json!(0.5)).unwrap(), "prepare:\n  lr: 9\nlr: 0.5\n");
        let text = "train:\n  opt:\n    lr: 9\n  lr: 0.1\n";
        assert_eq!(edit_yaml(text, &["train", "lr"], &json!(0.5)).unwrap(), "train:\n  opt:\n    lr: 9\n  lr: 0.5\n");
        assert_eq!(edit_yaml("train:\n  opt:\n    lr: 9\n", &["train", "lr"], &json!(0.5)), None);
    }

    #[test]
    fn json_is_edited_in_place() {
        let text = "{\n  \"seed\": 123456789012345678901234567890,\n  \"z\": {\"lr\": 0.1, \"s\": \"a\\\"}\"},\n  \"a\": [1, {\"lr\": 2}]\n}\n";
        assert_eq!(edit_json(text, &["z", "lr"], &json!(0.25)).unwrap(), text.replace("\"lr\": 0.1", "\"lr\": 0.25"));
        assert_eq!(edit_json(text, &["a"], &json!(3)).unwrap(), text.replace("[1, {\"lr\": 2}]", "3"));
        assert_eq!(edit_json(text, &["z", "nope"], &json!(1)), None);
        assert_eq!(edit_json("[1]", &["a"], &json!(1)), None);
    }

    /// The whole file is checked: what a line edit got wrong is never
    /// written.
    #[test]
    fn an_edit_that_changes_anything_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("params.json"), "{\"lr\": 1, \"lr\": 2}").unwrap();
        let err = set(dir.path(), "lr", &json!(3), &[]).unwrap_err();
        assert!(err.contains("`lr` cannot be edited in place without changing something else"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("params.json")).unwrap(), "{\"lr\": 1, \"lr\": 2}");
        std::fs::remove_file(dir.path().join("params.json")).unwrap();
        std::fs::write(dir.path().join("params.yaml"), "train:\n  lr: 0.1\nlr: 0.1\n").unwrap();
        set(dir.path(), "lr", &json!(0.1), &[]).unwrap();
        set(dir.path(), "train.lr", &json!(0.3), &[]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("params.yaml")).unwrap(), "train:\n  lr: 0.3\nlr: 0.1\n");
    }

    /// A value shared through a YAML anchor changes wherever it is used,
    /// as YAML means; nothing else may.
    #[test]
    fn a_value_under_an_anchor_changes_with_its_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("params.yaml");
        std::fs::write(&file, "base: &base\n  lr: 0.1\ntrain: *base\nother:\n  lr: 0.1\n").unwrap();
        set(dir.path(), "base.lr", &json!(0.2), &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "base: &base\n  lr: 0.2\ntrain: *base\nother:\n  lr: 0.1\n"
        );
    }

    #[test]
    fn layouts_a_line_edit_cannot_handle_are_refused() {
        assert!(edit_yaml("train: {lr: 0.1}\n", &["train", "lr"], &json!(0.2)).is_none());
        assert!(edit_yaml("train:\n  lr: |\n    0.1\n", &["train", "lr"], &json!(0.2)).is_none());
        assert!(edit_yaml("train:\n  lr: 0.1\n", &["train", "nope"], &json!(0.2)).is_none());
    }
}
