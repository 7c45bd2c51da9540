//! Escaping for Markdown templates (`.md.j2`).
//!
//! A Markdown report is posted where it is rendered to HTML (a pull request
//! comment, a wiki), and what it shows is data anyone who can push a branch
//! controls: metric names and values, paths, stage descriptions. So every
//! value a `.md.j2` template prints is escaped unless marked `safe`: HTML
//! cannot get through, and a `|` or a line break cannot end a table cell.
//! Inside backticks escapes are not undone, so code spans come from the
//! `code` filter instead, which picks a fence the value cannot close.

use minijinja::value::{Kwargs, Value};
use minijinja::{AutoEscape, Environment, Error, Output, State};

/// The auto-escape mode of `.md.j2` templates.
pub const MODE: &str = "markdown";

/// Escapes `.md.j2` templates for Markdown and adds the `code` filter;
/// other templates keep minijinja's own escaping (HTML for `.html.j2`).
pub fn configure(env: &mut Environment<'_>) {
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html.j2") {
            AutoEscape::Html
        } else if name.ends_with(".md.j2") {
            AutoEscape::Custom(MODE.into())
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(format);
    env.add_filter("code", code);
}

fn format(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match state.auto_escape() {
        AutoEscape::Custom(mode) if mode == MODE => {
            if value.is_safe() {
                out.write_str(value.as_str().unwrap_or_default())?;
            } else if !value.is_undefined() {
                out.write_str(&escape(&value.to_string()))?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// `text` as Markdown that renders as `text`, inside a table cell too: HTML
/// characters as entities, Markdown's link, code and table punctuation
/// behind a backslash, line breaks as spaces.
pub fn escape(text: &str) -> String {
    if links_itself(text) {
        return code_span(text, true);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // Emphasis and strikethrough.
            '*' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '|' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Whether GitHub's Markdown would make a link of `text` whatever is
/// escaped: its autolinks (`www.`, `https://`, an e-mail address) act on the
/// text once escapes are undone. Such text is shown as code, never linked.
pub fn links_itself(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("www.") || lower.contains("://") || text.contains('@')
}

/// `{{ value | code }}`: `value` as a code span; `code(table=true)` in a
/// table cell, where a `|` must be escaped even inside backticks. Only a
/// Markdown template takes the span as is; any other escapes it as usual.
fn code(state: &State, value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let in_table = kwargs.get::<Option<bool>>("table")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let text = match value.as_str() {
        Some(text) => text.to_string(),
        None => value.to_string(),
    };
    let span = code_span(&text, in_table);
    Ok(match state.auto_escape() {
        AutoEscape::Custom(mode) if mode == MODE => Value::from_safe_string(span),
        _ => Value::from(span),
    })
}

/// A code span holding `text`: fenced by one backtick more than the longest
/// run of backticks in it, padded where it starts or ends with one.
pub fn code_span(text: &str, in_table: bool) -> String {
    let mut text = text.replace(['\n', '\r'], " ");
    if in_table {
        text = text.replace('|', "\\|");
    }
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_table_punctuation_are_escaped() {
        assert_eq!(escape("<img src=x onerror=alert(1)>"), "&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(
            escape("a|b [l](javascript:x) `c` \\ &amp;\nd"),
            "a\\|b \\[l\\](javascript:x) \\`c\\` \\\\ &amp;amp; d"
        );
        assert_eq!(escape("val_loss 0.25"), "val_loss 0.25");
        assert_eq!(escape("*em* ~~s~~"), "\\*em\\* \\~\\~s\\~\\~");
        // What GitHub links whatever is escaped is code.
        for linked in ["see www.evil.com/path", "a@b.co", "http://e.co"] {
            assert_eq!(escape(linked), format!("`{linked}`"));
        }
        assert_eq!(escape("x|y@z"), "`x\\|y@z`");
    }

    #[test]
    fn code_spans_cannot_be_closed_from_inside() {
        assert_eq!(code_span("data/raw", false), "`data/raw`");
        assert_eq!(code_span("a`b", false), "``a`b``");
        assert_eq!(code_span("`x``", false), "``` `x`` ```");
        assert_eq!(code_span("a|b", true), "`a\\|b`");
        assert_eq!(code_span("a|b\nc", false), "`a|b c`");
    }

    #[test]
    fn markdown_templates_escape_and_others_do_not() {
        let mut env = Environment::new();
        configure(&mut env);
        let source = "{{ name }} {{ name | code(table=true) }} {{ name | safe }}";
        env.add_template("t.md.j2", source).unwrap();
        env.add_template("t.html.j2", source).unwrap();
        env.add_template("t.txt", source).unwrap();
        let ctx = minijinja::context! { name => "<b>|" };
        assert_eq!(env.get_template("t.md.j2").unwrap().render(&ctx).unwrap(), "&lt;b&gt;\\| `<b>\\|` <b>|");
        assert_eq!(env.get_template("t.html.j2").unwrap().render(&ctx).unwrap(), "&lt;b&gt;| `&lt;b&gt;\\|` <b>|");
        assert_eq!(env.get_template("t.txt").unwrap().render(&ctx).unwrap(), "<b>| `<b>\\|` <b>|");
    }
}
