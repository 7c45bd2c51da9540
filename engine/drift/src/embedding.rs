//! The multivariate side of the drift step: vectors (a model's embeddings,
//! `emb_0`, `emb_1`, … in JSON lines, as `gourd serve` logs them) compared
//! as a whole with MMD and a permutation test (see [`crate::mmd`]).

use std::io::BufRead;
use std::path::Path;

use crate::Error;
use crate::mmd::{self, Reservoir};
use crate::select::{ColumnReport, Test};

/// The report's name for the embedding test.
pub const COLUMN: &str = "embedding";

/// The `prefix` fields of JSON lines `path`, in index order, as a seeded
/// sample of at most `max_rows` rows. `dims`: the field names the reference
/// had, which the current file must have too.
pub fn read(
    path: &Path,
    prefix: &str,
    dims: Option<&[String]>,
    max_rows: usize,
    seed: u64,
) -> Result<(Vec<String>, Reservoir), Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let reader = std::io::BufReader::new(file);
    let mut names: Option<Vec<String>> = dims.map(<[String]>::to_vec);
    let mut reservoir: Option<Reservoir> = None;
    let mut row = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line_no = number as u64 + 1;
        let line = line.map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        if line.trim().is_empty() {
            continue;
        }
        let json = |message: String| Error::Json { path: path.to_path_buf(), line: line_no, message };
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).map_err(|e| json(e.to_string()))?;
        let names = names.get_or_insert_with(|| {
            let mut found: Vec<(usize, String)> = object
                .keys()
                .filter_map(|k| k.strip_prefix(prefix).and_then(|i| i.parse::<usize>().ok()).map(|i| (i, k.clone())))
                .collect();
            found.sort();
            found.into_iter().map(|(_, k)| k).collect()
        });
        if names.is_empty() {
            return Err(json(format!("no embedding fields (`{prefix}0`, `{prefix}1`, …)")));
        }
        row.clear();
        for name in names.iter() {
            match object.get(name) {
                Some(serde_json::Value::Number(n)) => row.push(n.as_f64().unwrap_or(f64::NAN) as f32),
                Some(other) => return Err(json(format!("`{name}` holds `{other}`, not a number"))),
                None => {
                    return Err(json(format!(
                        "`{name}` is missing: each row needs the {} embedding fields the reference has",
                        names.len()
                    )));
                }
            }
        }
        if let Some(extra) = object
            .keys()
            .filter(|k| k.strip_prefix(prefix).is_some_and(|i| i.parse::<usize>().is_ok()))
            .find(|k| !names.contains(k))
        {
            return Err(json(format!("`{extra}` is not among the reference's {} embedding fields", names.len())));
        }
        reservoir.get_or_insert_with(|| Reservoir::new(names.len(), max_rows, seed)).push(&row);
    }
    match (names, reservoir) {
        (Some(names), Some(reservoir)) if reservoir.sample.rows() >= 2 => Ok((names, reservoir)),
        _ => Err(Error::Config(format!("`{}` needs at least two rows with embeddings to compare", path.display()))),
    }
}

/// Compares the embeddings of the two files.
pub fn compare(
    reference: &Path,
    current: &Path,
    prefix: &str,
    threshold: f64,
    permutations: usize,
    max_rows: usize,
    seed: u64,
) -> Result<ColumnReport, Error> {
    let (names, x) = read(reference, prefix, None, max_rows, seed)?;
    let (_, y) = read(current, prefix, Some(&names), max_rows, seed.wrapping_add(1))?;
    let result = mmd::test(&x.sample, &y.sample, permutations, seed);
    Ok(ColumnReport {
        test: Test::Mmd,
        statistic: result.statistic,
        p_value: Some(result.p_value),
        threshold,
        drift: result.p_value < threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmd::SplitMix;

    /// JSON lines of `rows` 4-dimensional embeddings around `centre`, and a
    /// label field the embedding test ignores.
    fn log(path: &Path, rows: usize, centre: f64, seed: u64) {
        let mut rng = SplitMix(seed);
        let mut text = String::new();
        for _ in 0..rows {
            let mut line = serde_json::json!({ "label": "good", "brightness": 0.5 });
            for j in 0..4 {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                line[format!("emb_{j}")] = serde_json::json!(centre + u - 0.5);
            }
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    fn config(reference: &Path, current: &Path, extra: serde_json::Value) -> crate::Config {
        let mut value =
            serde_json::json!({ "reference": reference, "current": current, "output": "x.json", "embedding": "emb_" });
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        crate::Config::from_json(&value).unwrap()
    }

    #[test]
    fn embeddings_compare_as_a_whole_and_decide_alone_without_columns() {
        let tmp = tempfile::tempdir().unwrap();
        let (reference, same, shifted) =
            (tmp.path().join("r.jsonl"), tmp.path().join("s.jsonl"), tmp.path().join("t.jsonl"));
        log(&reference, 200, 0.0, 1);
        log(&same, 100, 0.0, 2);
        log(&shifted, 100, 0.3, 3);
        let report = crate::compare(&config(&reference, &same, serde_json::json!({})), Path::new("")).unwrap();
        assert!(!report.drift, "{report:?}");
        assert_eq!(report.columns.keys().collect::<Vec<_>>(), ["embedding"]);
        assert_eq!(report.columns["embedding"].test, Test::Mmd);
        let report = crate::compare(&config(&reference, &shifted, serde_json::json!({})), Path::new("")).unwrap();
        assert!(report.drift, "{report:?}");
        assert!(report.columns["embedding"].p_value.unwrap() < 0.05);
        // With columns named, they are tested too and share the verdict.
        let report = crate::compare(
            &config(&reference, &shifted, serde_json::json!({ "columns": ["brightness"], "drift_share": 1.0 })),
            Path::new(""),
        )
        .unwrap();
        assert_eq!(report.columns.len(), 2);
        assert!(!report.drift, "one of two drifted, and the share needed is 1: {report:?}");
        // The same files and seed give the same report.
        let a = crate::compare(&config(&reference, &shifted, serde_json::json!({ "seed": 4 })), Path::new("")).unwrap();
        let b = crate::compare(&config(&reference, &shifted, serde_json::json!({ "seed": 4 })), Path::new("")).unwrap();
        assert_eq!(a.columns["embedding"], b.columns["embedding"]);
    }

    #[test]
    fn rows_without_the_reference_embedding_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let reference = tmp.path().join("r.jsonl");
        log(&reference, 10, 0.0, 1);
        let current = tmp.path().join("c.jsonl");
        std::fs::write(&current, "{\"emb_0\": 1, \"emb_1\": 2, \"emb_2\": 3}\n").unwrap();
        let err = crate::compare(&config(&reference, &current, serde_json::json!({})), Path::new("")).unwrap_err();
        assert!(err.to_string().contains("line 1") && err.to_string().contains("`emb_3` is missing"), "{err}");
        std::fs::write(&current, "{\"emb_0\": 1, \"emb_1\": 2, \"emb_2\": 3, \"emb_3\": \"x\"}\n").unwrap();
        let err = crate::compare(&config(&reference, &current, serde_json::json!({})), Path::new("")).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
        std::fs::write(&current, "{\"label\": \"good\"}\n{\"label\": \"bad\"}\n").unwrap();
        let plain = config(&current, &reference, serde_json::json!({}));
        let err = crate::compare(&plain, Path::new("")).unwrap_err();
        assert!(err.to_string().contains("no embedding fields"), "{err}");
    }
}
