//! Escaping for the deployment templates.
//!
//! A deployment file is run by something powerful (docker, Kubernetes,
//! systemd as root), and some of what it holds comes from outside: a model
//! path can hold spaces, quotes, `$`, `%` or backslashes. So no template
//! prints a string as it is. In YAML every string is quoted; in a Dockerfile
//! or a unit file a bare string must be a plain word (a validated name, a
//! version, a digest), and anything else goes through the filter for its
//! place: `exec_path` and `exec_arg` (the program and the other words of
//! `ExecStart=`), `unit_path` (a path setting), `path_list_entry`,
//! `shell` (a command shown in a comment), `comment`. A value that none of
//! them can write (a line break) is an error, never a broken file.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};

const YAML: &str = "yaml";
const DOCKERFILE: &str = "dockerfile";
const SYSTEMD: &str = "systemd";

/// Picks each template's escaping from its name, and adds the filters.
pub fn configure(env: &mut Environment<'_>) {
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".yaml.j2") {
            AutoEscape::Custom(YAML.into())
        } else if name.ends_with(".service.j2") {
            AutoEscape::Custom(SYSTEMD.into())
        } else {
            AutoEscape::Custom(DOCKERFILE.into())
        }
    });
    env.set_formatter(format);
    env.add_filter("exec_path", |text: String| safe(exec_path(&text)));
    env.add_filter("exec_arg", |text: String| safe(exec_arg(&text)));
    env.add_filter("unit_path", |text: String| safe(unit_path(&text)));
    env.add_filter("path_list_entry", |text: String| safe(path_list_entry(&text)));
    env.add_filter("shell", |text: String| safe(shell(&text)));
    env.add_filter("comment", |text: String| safe(single_line(&text).map(str::to_string)));
}

fn safe(result: Result<String, String>) -> Result<Value, Error> {
    result.map(Value::from_safe_string).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
}

fn format(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "a template printed an undefined value"));
    }
    let text = match value.as_str() {
        Some(text) if !value.is_safe() => text,
        // Numbers, booleans and filtered values are printed as they are.
        _ => return minijinja::escape_formatter(out, state, &Value::from_safe_string(value.to_string())),
    };
    let written = match state.auto_escape() {
        AutoEscape::Custom(mode) if mode == YAML => yaml(text),
        _ if is_word(text) => text.to_string(),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{text:?} is not a plain word; it needs a filter for where it goes"),
            ));
        }
    };
    out.write_str(&written).map_err(Error::from)
}

/// A string that means the same in every format: letters, digits and
/// `._:/@#+=-` (names, versions, digests, image references, addresses).
pub fn is_word(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@#+=-".contains(c))
}

/// A YAML double-quoted scalar: JSON's string syntax is a subset of YAML's,
/// and it escapes quotes, backslashes and every control character.
pub fn yaml(text: &str) -> String {
    // JSON leaves U+2028 and U+2029 as they are; YAML readers take them for
    // line breaks.
    serde_json::to_string(text)
        .expect("a string serializes")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// `text` with no control character (a line break would end a line of the
/// file and start another).
fn single_line(text: &str) -> Result<&str, String> {
    match text.chars().find(|&c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        None => Ok(text),
        Some(c) => Err(format!("{text:?} holds the control character {c:?}")),
    }
}

/// One word of a systemd `ExecStart=` line, quoted: systemd first replaces
/// `%` specifiers in the whole line, then splits it into words undoing C
/// escapes inside quotes, then replaces `$VAR` in each word. So `%` is
/// doubled, `\` and `"` are escaped, and `$` is doubled.
pub fn exec_arg(text: &str) -> Result<String, String> {
    let text = single_line(text)?;
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The program of a systemd `ExecStart=` line, quoted. It is not a word
/// like the others: `$` is not replaced in it, and systemd refuses a
/// program whose path holds a quote or a backslash.
pub fn exec_path(text: &str) -> Result<String, String> {
    let text = single_line(text)?;
    if !text.starts_with('/') {
        return Err(format!("{text:?} is not an absolute path"));
    }
    if text.contains(['"', '\'', '\\']) {
        return Err(format!("{text:?} holds a quote or a backslash, which systemd refuses in a program's path"));
    }
    Ok(format!("\"{}\"", text.replace('%', "%%")))
}

/// An absolute path as the value of a systemd path setting
/// (`WorkingDirectory=`): these are not unquoted, only `%` specifiers are
/// replaced, and the value's surrounding whitespace is dropped.
pub fn unit_path(text: &str) -> Result<String, String> {
    let text = single_line(text)?;
    if !text.starts_with('/') {
        return Err(format!("{text:?} is not an absolute path"));
    }
    if text.ends_with(char::is_whitespace) {
        return Err(format!("{text:?} ends with a space, which a unit file drops"));
    }
    Ok(text.replace('%', "%%"))
}

/// An absolute path as one entry of a systemd path list
/// (`ReadWritePaths=`): these are split into words and unquoted first, then
/// their `%` specifiers are replaced.
pub fn path_list_entry(text: &str) -> Result<String, String> {
    let text = single_line(text)?;
    if !text.starts_with('/') {
        return Err(format!("{text:?} is not an absolute path"));
    }
    Ok(format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%")))
}

/// `text` as one POSIX shell word, for commands shown in comments.
pub fn shell(text: &str) -> Result<String, String> {
    let text = single_line(text)?;
    if is_word(text) && !text.contains('#') {
        return Ok(text.to_string());
    }
    Ok(format!("'{}'", text.replace('\'', r"'\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_line_separators_never_break_a_line() {
        assert_eq!(yaml("a\u{2028}b\u{2029}c"), "\"a\\u2028b\\u2029c\"");
        assert!(exec_arg("a\u{2028}b").is_err());
    }

    #[test]
    fn exec_args_are_quoted_for_systemd() {
        assert_eq!(exec_arg("/srv/models/best").unwrap(), r#""/srv/models/best""#);
        assert_eq!(exec_arg(r#"/a b/"c"/$HOME/%n/\x"#).unwrap(), r#""/a b/\"c\"/$$HOME/%%n/\\x""#);
        assert!(exec_arg("/a\nExecStartPre=/bin/sh").is_err());
    }

    #[test]
    fn the_program_keeps_its_dollars_and_refuses_quotes() {
        assert_eq!(exec_path("/opt/a b/$x/%n/gourd").unwrap(), r#""/opt/a b/$x/%%n/gourd""#);
        assert!(exec_path("/opt/it's/gourd").is_err());
        assert!(exec_path("gourd").is_err());
    }

    #[test]
    fn unit_paths_double_percent_and_refuse_what_a_unit_file_would_change() {
        assert_eq!(unit_path("/srv/50% off").unwrap(), "/srv/50%% off");
        assert!(unit_path("relative").is_err());
        assert!(unit_path("/srv/x ").is_err());
        assert!(unit_path("/srv/\tx").is_err());
    }

    #[test]
    fn path_list_entries_are_quoted_without_doubling_dollars() {
        assert_eq!(path_list_entry(r#"/a b/"c"/$x/%n/\y"#).unwrap(), r#""/a b/\"c\"/$x/%%n/\\y""#);
    }

    #[test]
    fn yaml_strings_are_double_quoted() {
        assert_eq!(yaml("a: b\n- c"), r#""a: b\n- c""#);
        let parsed: String = serde_yaml::from_str(&yaml("it's \"x\" # $y\\")).unwrap();
        assert_eq!(parsed, "it's \"x\" # $y\\");
    }

    #[test]
    fn shell_words_are_single_quoted_when_needed() {
        assert_eq!(shell("models/best").unwrap(), "models/best");
        assert_eq!(shell("it's here").unwrap(), r"'it'\''s here'");
        assert_eq!(shell("a#b").unwrap(), "'a#b'");
    }
}
