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
        _ => {
            serde_json::from_slice::<Value>(bytes).map_err(|e| format!("metrics file `{path}` is not valid JSON: {e}"))
        }
    }
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
    fn a_broken_file_names_its_format() {
        assert!(parse("m.yaml", b"a: [1,").unwrap_err().contains("`m.yaml` is not valid YAML"));
        assert!(parse("m.toml", b"a = ").unwrap_err().contains("`m.toml` is not valid TOML"));
        assert!(parse("m.json", b"{").unwrap_err().contains("`m.json` is not valid JSON"));
    }
}
