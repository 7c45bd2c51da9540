//! Finding the line of a value in the pipeline file, for errors found after
//! evaluation (when Nickel's positions are gone).

/// The 1-based line of `literal` (as a quoted string) in `source`, looking
/// first after the definition of `stage`. `None` when the value was computed
/// rather than written out, or when there is no literal to look for, in which
/// case the stage's own line is given if it can be found.
pub fn line_of(source: &str, stage: &str, literal: Option<&str>) -> Option<usize> {
    let stage_at = find_definition(source, stage);
    let offset = match literal {
        Some(literal) => {
            let quoted = serde_json::to_string(literal).ok()?;
            let from = stage_at.unwrap_or(0);
            // Written another way (`./.git` for `.git`): the stage's line.
            source[from..].find(&quoted).map(|i| i + from).or_else(|| source.find(&quoted)).or(stage_at)
        }
        None => stage_at,
    }?;
    Some(source[..offset].matches('\n').count() + 1)
}

/// The 1-based line where the field `field` is defined (`field =` or
/// `"field" =`), looking first after the definition of `stage`; else the
/// stage's own line.
pub fn line_of_field(source: &str, stage: &str, field: &str) -> Option<usize> {
    let stage_at = find_definition(source, stage);
    let from = stage_at.unwrap_or(0);
    let offset = find_definition(&source[from..], field).map(|i| i + from).or(stage_at)?;
    Some(source[..offset].matches('\n').count() + 1)
}

/// Where `name =` (or `"name" =`) starts, if written out.
fn find_definition(source: &str, name: &str) -> Option<usize> {
    // A stage may be named `""`: an empty name matches everywhere.
    if name.is_empty() {
        return None;
    }
    let quoted = format!("\"{name}\"");
    for candidate in [name, quoted.as_str()] {
        let mut from = 0;
        while let Some(i) = source[from..].find(candidate) {
            let at = from + i;
            let before_ok = at == 0 || !is_ident(source.as_bytes()[at - 1]);
            let rest = &source[at + candidate.len()..];
            let after = rest.trim_start();
            let after_ok = rest.as_bytes().first().is_none_or(|&c| !is_ident(c));
            if before_ok && after_ok && after.starts_with('=') && !after.starts_with("==") {
                return Some(at);
            }
            from = at + candidate.len();
        }
    }
    None
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'\''
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_literal_within_its_stage() {
        let source =
            "{\n  stages = {\n    a = { deps = [\"x\"] },\n    b = {\n      deps = [\"x\"],\n    },\n  },\n}\n";
        assert_eq!(line_of(source, "b", Some("x")), Some(5));
        assert_eq!(line_of(source, "a", Some("x")), Some(3));
        assert_eq!(line_of(source, "b", None), Some(4));
        assert_eq!(line_of(source, "c", Some("nowhere")), None);
        // A literal written another way than the normalised path: the stage.
        assert_eq!(line_of(source, "b", Some("nowhere")), Some(4));
        // An empty stage name (`"" = { .. }` is valid Nickel) used to loop forever.
        assert_eq!(line_of(source, "", Some("x")), Some(3));
        assert_eq!(line_of(source, "", None), None);
    }

    #[test]
    fn finds_a_field_within_its_stage() {
        let source =
            "{\n  a = { env = { TOKEN = \"x\" } },\n  b = {\n    env = {\n      TOKEN = \"y\",\n    },\n  },\n}\n";
        assert_eq!(line_of_field(source, "b", "TOKEN"), Some(5));
        assert_eq!(line_of_field(source, "a", "TOKEN"), Some(2));
        assert_eq!(line_of_field(source, "b", "OTHER"), Some(3), "the stage's line when the field is not written out");
    }
}
