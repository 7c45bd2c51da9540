//! Metric values as the report prints them: scalars only, integers as
//! integers, floats as the shortest text that reads back as the same
//! number, and changes coloured by whether the metric should rise or fall.

use serde_json::Value;

/// A metric leaf reduced to what a table cell shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// The scalar shown: the value itself, or an array's last element.
    pub value: Value,
    pub text: String,
    pub number: Option<f64>,
    /// Why the cell differs from the file, e.g. `last of 20`.
    pub note: Option<String>,
}

/// What a table cell shows for `value`: a number, string or boolean as
/// it is; an array (per-epoch values, say) as its last element, noted;
/// `None` for what no cell can show (an array of objects, an empty array,
/// null).
pub fn scalar(value: &Value) -> Option<Shown> {
    match value {
        Value::Array(items) => {
            let last = items.last()?;
            if matches!(last, Value::Array(_) | Value::Object(_)) {
                return None;
            }
            let mut shown = scalar(last)?;
            shown.note = Some(format!("last of {}", items.len()));
            Some(shown)
        }
        Value::Object(_) | Value::Null => None,
        Value::Number(n) => Some(Shown { value: value.clone(), text: number(n), number: n.as_f64(), note: None }),
        Value::String(s) => Some(Shown { value: value.clone(), text: s.clone(), number: None, note: None }),
        Value::Bool(b) => Some(Shown { value: value.clone(), text: b.to_string(), number: None, note: None }),
    }
}

/// An integer as an integer (`200`, also when the file wrote `200.0`), any
/// other float as the shortest decimal that parses back to the same f64.
pub fn number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (_, Some(u), _) => u.to_string(),
        (_, _, Some(f)) => float(f),
        _ => n.to_string(),
    }
}

/// `f` as Rust prints it (shortest round-trip form; `200` for `200.0`).
pub fn float(f: f64) -> String {
    if f == 0.0 { "0".to_string() } else { f.to_string() }
}

/// A change, signed: `+0.02`, `-3`, `0`.
pub fn change(c: f64) -> String {
    if c > 0.0 { format!("+{}", float(c)) } else { float(c) }
}

/// Whether a smaller value of the metric `name` is better: losses, errors
/// and their usual abbreviations, perplexity, latency. Matched on the words
/// of the name (`val_loss`, `eval.rmse`, `error-rate`, `trainloss`).
pub fn lower_is_better(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "loss",
        "error",
        "err",
        "mse",
        "mae",
        "rmse",
        "mape",
        "smape",
        "msle",
        "rmsle",
        "nll",
        "wer",
        "cer",
        "ter",
        "perplexity",
        "ppl",
        "latency",
        "fpr",
        "fnr",
        "eer",
        "brier",
        "logloss",
        "hamming",
        "distance",
        "regret",
    ];
    let lower = name.to_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| WORDS.contains(&word) || word.ends_with("loss") || word.ends_with("losses") || word == "errors")
}

/// `better`, `worse`, or `None` for no change: `change` judged by the
/// metric's direction.
pub fn trend(name: &str, change: f64) -> Option<&'static str> {
    if change == 0.0 || change.is_nan() {
        return None;
    }
    Some(if (change > 0.0) != lower_is_better(name) { "better" } else { "worse" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_integers_or_round_trip() {
        let text = |v: Value| scalar(&v).unwrap().text;
        assert_eq!(text(json!(200)), "200");
        assert_eq!(text(serde_json::from_str("200.0").unwrap()), "200");
        assert_eq!(text(json!(-3)), "-3");
        assert_eq!(text(json!(u64::MAX)), u64::MAX.to_string());
        for f in [0.9888475857414213, 0.1 + 0.2, 1e-7, 123456.789, -0.5, f64::MIN_POSITIVE] {
            let shown = text(json!(f));
            assert_eq!(shown.parse::<f64>().unwrap().to_bits(), f.to_bits(), "{shown}");
        }
        assert_eq!(text(json!(0.9888475857414213)), "0.9888475857414213");
        assert_eq!(text(json!(-0.0)), "0");
    }

    #[test]
    fn arrays_show_their_last_scalar_and_say_so() {
        let shown = scalar(&json!([0.9, 0.5, 0.25])).unwrap();
        assert_eq!((shown.text.as_str(), shown.note.as_deref()), ("0.25", Some("last of 3")));
        assert_eq!(shown.value, json!(0.25));
        assert_eq!(scalar(&json!([])), None);
        assert_eq!(scalar(&json!([{"a": 1}])), None);
        assert_eq!(scalar(&json!({"a": 1})), None);
        assert_eq!(scalar(&json!("ok")).unwrap().text, "ok");
    }

    #[test]
    fn losses_and_errors_should_fall() {
        for name in [
            "loss",
            "val_loss",
            "losses",
            "trainloss",
            "train.loss",
            "rmse",
            "eval.MAE",
            "error-rate",
            "mean_squared_error",
            "wer",
        ] {
            assert!(lower_is_better(name), "{name}");
            assert_eq!(trend(name, -0.1), Some("better"), "{name}");
            assert_eq!(trend(name, 0.1), Some("worse"), "{name}");
        }
        for name in ["accuracy", "f1", "auc", "precision", "recall", "terror_free", "glossary_size"] {
            assert!(!lower_is_better(name), "{name}");
            assert_eq!(trend(name, 0.1), Some("better"), "{name}");
        }
        assert_eq!(trend("loss", 0.0), None);
    }

    #[test]
    fn changes_carry_their_sign() {
        assert_eq!(change(0.02), "+0.02");
        assert_eq!(change(-3.0), "-3");
        assert_eq!(change(0.0), "0");
    }
}
