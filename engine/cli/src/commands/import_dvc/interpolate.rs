//! DVC's templating: `${…}` in `dvc.yaml` names a value of `params.yaml`,
//! of `vars`, or of a `foreach`/`matrix` item. The converter resolves every
//! reference once; those into `params.yaml` inside a command become
//! `GOURD_PARAM_*` variables, so `gourd run --set` reaches them.

use serde_yaml::{Mapping, Value};

/// Where a value came from: only `params.yaml`'s values are params (DVC
/// tracks those it interpolates); `vars` and items are written as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    ParamsFile,
    Other,
}

/// The values a stage can refer to, innermost last.
#[derive(Clone, Default)]
pub struct Context {
    layers: Vec<(Mapping, Origin)>,
}

impl Context {
    pub fn with(&self, values: Mapping, origin: Origin) -> Context {
        let mut context = self.clone();
        context.layers.push((values, origin));
        context
    }

    /// The value `expr` (`train.lr`, `item.model`, `models[0]`) names.
    pub fn resolve(&self, expr: &str) -> Option<(Value, Origin)> {
        let segments = segments(expr)?;
        let Segment::Key(first) = &segments[0] else { return None };
        let (layer, origin) = self.layers.iter().rev().find(|(layer, _)| layer.contains_key(first.as_str()))?;
        let mut value = layer.get(first.as_str())?;
        for segment in &segments[1..] {
            value = match segment {
                Segment::Key(key) => value.as_mapping()?.get(key.as_str())?,
                Segment::Index(index) => value.as_sequence()?.get(*index)?,
            };
        }
        Some((value.clone(), *origin))
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

/// `a.b[0].c` as keys and indices; `None` when it is not such a path.
fn segments(expr: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in expr.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if key.is_empty() && out.is_empty() {
            return None;
        }
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            out.push(Segment::Index(inner[..end].trim().parse().ok()?));
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// True when `expr` is a plain dotted key (`train.lr`), as `gourd.params` takes.
pub fn is_dotted_key(expr: &str) -> bool {
    !expr.contains('[') && expr.split('.').all(|part| !part.is_empty())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Ref(String),
}

/// `text` as literal text and `${…}` references; `\${` is a literal `${`.
pub fn split(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('\\') {
            literal.push_str(&rest[..at - 1]);
            literal.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        literal.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{text}`"));
        };
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Ref(rest[at + 2..at + end].trim().to_string()));
        rest = &rest[at + end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// A scalar as DVC writes it into a string; `None` for lists, dicts, null.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The variable gourd hands a param over in: `train.n_est` → `GOURD_PARAM_TRAIN_N_EST`.
pub fn param_variable(key: &str) -> String {
    let name: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("GOURD_PARAM_{name}")
}

/// Whether the end of `text` (a shell command so far) is inside single quotes.
pub fn in_single_quotes(text: &str) -> bool {
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
    }
    single
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(yaml: &str, origin: Origin) -> Context {
        Context::default().with(serde_yaml::from_str(yaml).unwrap(), origin)
    }

    #[test]
    fn references_are_split_from_text_and_escapes_stay_literal() {
        assert_eq!(
            split("python train.py --lr ${train.lr} \\${HOME}").unwrap(),
            vec![
                Piece::Text("python train.py --lr ".into()),
                Piece::Ref("train.lr".into()),
                Piece::Text(" ${HOME}".into())
            ]
        );
        assert!(split("echo ${oops").is_err());
    }

    #[test]
    fn inner_layers_win_and_keep_their_origin() {
        let ctx = context("train: {lr: 0.1, layers: [8, 16]}\nname: p", Origin::ParamsFile)
            .with(serde_yaml::from_str("name: v").unwrap(), Origin::Other);
        assert_eq!(ctx.resolve("train.lr"), Some((Value::from(0.1), Origin::ParamsFile)));
        assert_eq!(ctx.resolve("train.layers[1]"), Some((Value::from(16), Origin::ParamsFile)));
        assert_eq!(ctx.resolve("name"), Some((Value::from("v"), Origin::Other)));
        assert_eq!(ctx.resolve("train.missing"), None);
        assert_eq!(ctx.resolve("train.layers[9]"), None);
    }

    #[test]
    fn variables_and_quotes() {
        assert_eq!(param_variable("train.n-est"), "GOURD_PARAM_TRAIN_N_EST");
        assert!(in_single_quotes("echo 'a "));
        assert!(!in_single_quotes("echo 'a' \"b'"));
        assert!(is_dotted_key("train.lr") && !is_dotted_key("a[0]"));
    }
}
