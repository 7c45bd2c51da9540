//! Plot data files as tables: JSON or YAML (an array of records, or a record
//! holding one such array), CSV and TSV (a header row, then values).

use serde_json::Value;

/// Rows of named values, with the fields in the order the file gives them.
pub struct Table {
    pub fields: Vec<String>,
    pub rows: Vec<Vec<Option<Value>>>,
}

pub fn is_image(path: &str) -> bool {
    image_mime(path) != "application/octet-stream"
}

pub fn image_mime(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

impl Table {
    /// Parses `bytes`, read from `path`; the format follows the extension
    /// (`.csv`, `.tsv`, `.yaml`, `.yml`, else JSON).
    pub fn parse(path: &str, bytes: &[u8]) -> Result<Table, String> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            delimited(path, bytes, b',')
        } else if lower.ends_with(".tsv") {
            delimited(path, bytes, b'\t')
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            let value = serde_yaml::from_slice(bytes).map_err(|e| format!("`{path}`: not YAML: {e}"))?;
            records(path, value)
        } else {
            let value = serde_json::from_slice(bytes)
                .map_err(|e| format!("`{path}`: not JSON (plots read JSON, YAML, CSV and TSV): {e}"))?;
            records(path, value)
        }
    }

    pub fn column(&self, field: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == field)
    }
}

fn delimited(path: &str, bytes: &[u8], delimiter: u8) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(bytes);
    let fields: Vec<String> =
        reader.headers().map_err(|e| format!("`{path}`: {e}"))?.iter().map(|h| h.trim().to_string()).collect();
    if fields.is_empty() || fields.iter().all(String::is_empty) {
        return Err(format!("`{path}`: no header row"));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("`{path}`: {e}"))?;
        rows.push(
            (0..fields.len()).map(|i| record.get(i).map(|cell| Value::String(cell.trim().to_string()))).collect(),
        );
    }
    Ok(Table { fields, rows })
}

fn records(path: &str, value: Value) -> Result<Table, String> {
    let records = |items: &Vec<Value>| items.iter().all(Value::is_object);
    let items = match &value {
        Value::Array(items) if records(items) => items.clone(),
        Value::Object(fields) => {
            let arrays: Vec<(&String, &Vec<Value>)> = fields
                .iter()
                .filter_map(|(k, v)| v.as_array().filter(|a| !a.is_empty() && records(a)).map(|a| (k, a)))
                .collect();
            match arrays.as_slice() {
                [(_, items)] => (*items).clone(),
                [] => return Err(format!("`{path}`: expected an array of records, or a record holding one")),
                several => {
                    let names: Vec<String> = several.iter().map(|(k, _)| format!("`{k}`")).collect();
                    return Err(format!(
                        "`{path}`: the record holds several arrays of records ({}); plot one file per array",
                        names.join(", ")
                    ));
                }
            }
        }
        _ => return Err(format!("`{path}`: expected an array of records, or a record holding one")),
    };
    let mut fields: Vec<String> = Vec::new();
    for item in &items {
        for key in item.as_object().expect("records").keys() {
            if !fields.contains(key) {
                fields.push(key.clone());
            }
        }
    }
    let rows = items.iter().map(|item| fields.iter().map(|f| item.get(f).cloned()).collect()).collect();
    Ok(Table { fields, rows })
}

/// A cell as a number: JSON numbers, and strings that parse as one.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// A cell as a category's label.
pub fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_gives_a_table() {
        let csv = Table::parse("a.csv", b"fpr,tpr\n0,0\n0.5,0.9\n").unwrap();
        assert_eq!(csv.fields, ["fpr", "tpr"]);
        assert_eq!(csv.rows.len(), 2);
        let tsv = Table::parse("a.tsv", b"x\ty\n1\t2\n").unwrap();
        assert_eq!(tsv.fields, ["x", "y"]);
        let held = Table::parse("c.json", br#"{"epochs": [{"epoch": 1, "loss": 0.5}], "final": 0.5}"#).unwrap();
        assert_eq!(held.rows.len(), 1);
        let yaml = Table::parse("p.yaml", b"points:\n  - {x: 1, y: 2}\n  - {x: 2, y: 3}\n").unwrap();
        assert_eq!((yaml.fields.len(), yaml.rows.len()), (2, 2));
        let err = Table::parse("c.json", br#"{"a": [{"x": 1}], "b": [{"x": 2}]}"#).err().unwrap();
        assert!(err.contains("several arrays of records (`a`, `b`)"), "{err}");
    }
}
