//! Unknown fields, as serde reports them, made into a "did you mean".

/// The unknown field and the known ones, from serde's message
/// "unknown field `outz`, expected one of `cmd`, `deps`, …" (or "expected
/// `a` or `b`", "expected `a`", "there are no fields").
pub(crate) fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let known = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((field.to_string(), known))
}

/// The hint for an unknown `field` among `known`: the nearest known name,
/// and all of them.
pub fn unknown_field_hint(field: &str, known: &[String]) -> String {
    let all = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    match gourd_core::suggest::closest(field, known.iter().map(String::as_str)) {
        Some(near) => format!("did you mean `{near}`? The known fields are {all}"),
        None if known.is_empty() => "no fields are allowed here".to_string(),
        None => format!("the known fields are {all}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_are_read() {
        let parsed = parse_unknown_field("unknown field `outz`, expected one of `cmd`, `deps`, `outs`");
        assert_eq!(parsed, Some(("outz".to_string(), vec!["cmd".into(), "deps".into(), "outs".into()])));
        let two = parse_unknown_field("unknown field `x`, expected `cpus` or `gpus`");
        assert_eq!(two, Some(("x".to_string(), vec!["cpus".into(), "gpus".into()])));
        assert_eq!(parse_unknown_field("invalid type: string, expected a sequence"), None);
    }

    #[test]
    fn the_hint_names_the_nearest_field() {
        let known: Vec<String> = ["cmd", "deps", "outs"].map(String::from).to_vec();
        assert_eq!(
            unknown_field_hint("cmdd", &known),
            "did you mean `cmd`? The known fields are `cmd`, `deps`, `outs`"
        );
        assert_eq!(unknown_field_hint("zzzzzz", &known), "the known fields are `cmd`, `deps`, `outs`");
    }
}
