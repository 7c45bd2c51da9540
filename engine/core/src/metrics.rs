//! Metrics files: JSON, YAML or TOML (by extension; anything else is read as
//! JSON), each read into one JSON value, so every command compares them the
//! same way.

use serde_json::Value;

/// The metrics in `bytes`, read from the file at `path`.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Value, String> {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "yaml" | "yml" => {
            serde_yaml::from_slice::<Value>(bytes).map_err(|e| format!("metrics file `{path}` is not valid YAML: {e}"))
        }
        "toml" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| format!("metrics file `{path}` is not valid TOML: not UTF-8"))?;
            toml::from_str::<Value>(text).map_err(|e| format!("metrics file `{path}` is not valid TOML: {e}"))
        }
        _ => serde_json::from_slice::<Value>(bytes).or_else(|e| {
            // Python's `json.dump` writes `NaN` and `Infinity` for a loss
            // that diverged; kept as text, so that a gate on it fails.
            python_constants(bytes)
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .ok_or_else(|| format!("metrics file `{path}` is not valid JSON: {e}"))
        }),
    }
}

/// `bytes` with every `NaN`, `Infinity` and `-Infinity` outside a string
/// written as a string (`"NaN"`); `None` when there is none.
fn python_constants(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if let Some(constant) =
            [&b"-Infinity"[..], b"Infinity", b"NaN"].into_iter().find(|c| bytes[at..].starts_with(c))
        {
            out.push(b'"');
            out.extend_from_slice(constant);
            out.push(b'"');
            at += constant.len();
            changed = true;
            continue;
        }
        out.push(byte);
        at += 1;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_three_formats_read_to_the_same_value() {
        let want = json!({"accuracy": 0.9888475857414213, "epochs": 5, "per_class": {"a": 0.5}});
        let json_text = br#"{"accuracy": 0.9888475857414213, "epochs": 5, "per_class": {"a": 0.5}}"#;
        assert_eq!(parse("m.json", json_text).unwrap(), want);
        assert_eq!(parse("m.yaml", b"accuracy: 0.9888475857414213\nepochs: 5\nper_class:\n  a: 0.5\n").unwrap(), want);
        assert_eq!(parse("m.YML", b"accuracy: 0.9888475857414213\nepochs: 5\nper_class: {a: 0.5}\n").unwrap(), want);
        assert_eq!(
            parse("m.toml", b"accuracy = 0.9888475857414213\nepochs = 5\n[per_class]\na = 0.5\n").unwrap(),
            want
        );
        assert_eq!(parse("metrics", json_text).unwrap(), want);
    }

    #[test]
    fn python_s_nan_and_infinity_are_read_as_text() {
        let text = br#"{"loss": NaN, "max": Infinity, "min": -Infinity, "note": "NaN and \"Infinity\"", "n": [NaN]}"#;
        assert_eq!(
            parse("m.json", text).unwrap(),
            json!({"loss": "NaN", "max": "Infinity", "min": "-Infinity", "note": "NaN and \"Infinity\"", "n": ["NaN"]})
        );
        // Only outside strings, and only where the file is not JSON already.
        assert_eq!(python_constants(br#"{"a": "NaN"}"#), None);
        assert!(parse("m.json", b"{\"a\": NaNx}").unwrap_err().contains("`m.json` is not valid JSON"));
    }

    #[test]
    fn a_broken_file_names_its_format() {
        assert!(parse("m.yaml", b"a: [1,").unwrap_err().contains("`m.yaml` is not valid YAML"));
        assert!(parse("m.toml", b"a = ").unwrap_err().contains("`m.toml` is not valid TOML"));
        assert!(parse("m.json", b"{").unwrap_err().contains("`m.json` is not valid JSON"));
    }
}
