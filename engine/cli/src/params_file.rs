//! `gourd run --set KEY=VALUE` on a params file, as `dvc exp run -S` does:
//! when the workspace's `params.yaml` (or `params.json`) has KEY, the value
//! is written there, so that scripts reading the file and the pipeline
//! importing it both see it. YAML is edited line by line (comments, order
//! and layout stay); the result is parsed back and checked before it is
//! written, and a file whose layout this cannot edit is left alone.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The params files looked at, in order.
const FILES: [&str; 3] = ["params.yaml", "params.yml", "params.json"];

/// Writes `value` at the dotted `key` of the workspace's params file, if it
/// has that key. Returns the file written, `None` when no params file has
/// the key, or an error saying why a file that has it could not be edited.
pub fn set(root: &Path, key: &str, value: &Value) -> Result<Option<PathBuf>, String> {
    let path: Vec<&str> = key.split('.').collect();
    for name in FILES {
        let file = root.join(name);
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let json = name.ends_with(".json");
        let parsed: Value = if json {
            serde_json::from_str(&text).map_err(|e| format!("`{name}`: {e}"))?
        } else {
            serde_yaml::from_str(&text).map_err(|e| format!("`{name}`: {e}"))?
        };
        if lookup(&parsed, &path).is_none() {
            continue;
        }
        let edited = if json {
            let mut whole = parsed;
            *lookup_mut(&mut whole, &path).expect("found above") = value.clone();
            format!("{}\n", serde_json::to_string_pretty(&whole).expect("serializable"))
        } else {
            let edited = edit_yaml(&text, &path, value)
                .ok_or_else(|| format!("`{name}`: cannot edit `{key}` in place (flow style or an unusual layout)"))?;
            let check: Value = serde_yaml::from_str(&edited).map_err(|e| format!("`{name}`: edit broke it: {e}"))?;
            if lookup(&check, &path) != Some(value) {
                return Err(format!("`{name}`: editing `{key}` did not give the value asked for"));
            }
            edited
        };
        gourd_core::fsutil::write_replace(&file, edited.as_bytes(), false).map_err(|e| format!("`{name}`: {e}"))?;
        return Ok(Some(file));
    }
    Ok(None)
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |here, name| here.as_object()?.get(*name))
}

/// The value at a dotted path (split into `path`) inside `value`.
pub fn lookup_mut<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |here, name| here.as_object_mut()?.get_mut(*name))
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
    let (mut start, mut end, mut parent_indent) = (0, lines.len(), None::<usize>);
    let mut target = None;
    for (depth, name) in path.iter().enumerate() {
        let found = (start..end).find(|&i| {
            let line = lines[i];
            !ignorable(line)
                && parent_indent.is_none_or(|p| indent(line) > p)
                && line.trim_start().strip_prefix(*name).is_some_and(|rest| rest.starts_with(':'))
        })?;
        let own = indent(lines[found]);
        if depth + 1 == path.len() {
            target = Some(found);
            break;
        }
        // The block under it: the following lines indented deeper.
        start = found + 1;
        end = (start..end).find(|&i| !ignorable(lines[i]) && indent(lines[i]) <= own).unwrap_or(end);
        parent_indent = Some(own);
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

    #[test]
    fn layouts_a_line_edit_cannot_handle_are_refused() {
        assert!(edit_yaml("train: {lr: 0.1}\n", &["train", "lr"], &json!(0.2)).is_none());
        assert!(edit_yaml("train:\n  lr: |\n    0.1\n", &["train", "lr"], &json!(0.2)).is_none());
        assert!(edit_yaml("train:\n  lr: 0.1\n", &["train", "nope"], &json!(0.2)).is_none());
    }
}
