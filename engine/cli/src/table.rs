//! Tables as aligned text or Markdown. Cells come from files a stage wrote
//! (metrics, params, registry notes): every control character is written
//! as an escape (`\x1b`), so that printing a table cannot move the cursor,
//! retitle the terminal or clear the screen.

use crate::commands::run_view::printable;

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| printable(s).into_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| printable(&c).into_owned()).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> =
                cells.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = widths[i])).collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = line(&self.header);
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    pub fn markdown(&self) -> String {
        // Every character Markdown (GitHub's included) could read as markup
        // is taken literally: a value from a params or metrics file never
        // becomes a link (`:` too, or `https://…` would), an image, HTML,
        // emphasis, math (`$`) or a mention (`@`) in a pull request.
        let escape = |c: &String| {
            if crate::report::markdown::links_itself(c) {
                return crate::report::markdown::code_span(c, true);
            }
            let mut out = String::with_capacity(c.len());
            for ch in c.chars() {
                // `www.` starts a link by itself too.
                let www = ch == '.' && out.to_ascii_lowercase().ends_with("www");
                if www
                    || matches!(
                        ch,
                        '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '<' | '>' | '|' | '!' | '&' | '#' | '$' | '@' | ':'
                    )
                {
                    out.push('\\');
                }
                out.push(ch);
            }
            out
        };
        let mut out = format!("| {} |\n", self.header.iter().map(escape).collect::<Vec<_>>().join(" | "));
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.iter().map(escape).collect::<Vec<_>>().join(" | ")));
        }
        out
    }
}

/// Flattens a JSON value into `(dotted.path, leaf)` pairs.
pub fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// A JSON value in a table cell.
pub fn cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => gourd_digest::canonical_json(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_cells_are_escaped() {
        let mut table = Table::new(&["name", "value\x1b[2J"]);
        table.row(vec!["k\x1b[31m".to_string(), "\x1b]0;PWNED\x07".to_string()]);
        let text = table.text();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(text.contains("k\\x1b[31m") && text.contains("\\x1b]0;PWNED\\x07"), "{text}");
        let markdown = table.markdown();
        assert!(!markdown.chars().any(|c| c.is_control() && c != '\n'), "{markdown:?}");
        assert!(markdown.contains("value\\\\x1b\\[2J"), "{markdown}");
        // A value is never markup where the table is read as Markdown.
        let mut table = Table::new(&["param"]);
        table.row(vec!["ü|[x](y)`![i](y)<b>*em*_u_~~s~~&amp;#h $x$ a:b".to_string()]);
        table.row(vec!["[x](https://evil.example) a@b.co WWW.x.y".to_string()]);
        assert_eq!(table.markdown().lines().nth(3), Some("| `[x](https://evil.example) a@b.co WWW.x.y` |"));
        assert_eq!(
            table.markdown().lines().nth(2),
            Some("| ü\\|\\[x\\](y)\\`\\!\\[i\\](y)\\<b\\>\\*em\\*\\_u\\_\\~\\~s\\~\\~\\&amp;\\#h \\$x\\$ a\\:b |")
        );
        // A right-to-left override would show the rest of the row reversed.
        let mut table = Table::new(&["name"]);
        table.row(vec!["evil\u{202e}gnp.exe".to_string()]);
        assert!(table.text().contains("evil\\u{202e}gnp.exe"), "{}", table.text());
    }
}
