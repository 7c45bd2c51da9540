//! Promotion gates: small comparisons a model version must pass to enter a
//! registry stage, written in the pipeline as strings:
//!
//! ```text
//! accuracy >= 0.9
//! accuracy >= champion.accuracy
//! loss <= champion.loss * 1.05
//! per_class.cat.recall > 0.8
//! ```
//!
//! A name is a metric of the candidate, looked up by its dotted path in
//! each of its metrics files in turn; `champion.NAME` is the same metric of
//! the version the stage holds now. Numbers, `+ - * /`, parentheses, and one
//! of `>= > <= < == !=` between two sides. Parsed when the pipeline is
//! loaded, so a typo fails before anything runs.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub text: String,
    left: Expr,
    op: Op,
    right: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Number(f64),
    Metric { champion: bool, path: String },
    Neg(Box<Expr>),
    Binary(Box<Expr>, char, Box<Expr>),
}

/// What checking one gate found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub gate: String,
    pub passed: bool,
    /// The two sides' values, when both could be computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<f64>,
    /// By how much it passed (positive) or failed (negative), for an
    /// ordering comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Why it passed or failed, in words.
    pub reason: String,
}

/// The metrics of a version: a dotted path to a number.
pub type Metrics<'a> = &'a dyn Fn(&str) -> Option<f64>;

impl Gate {
    pub fn parse(text: &str) -> Result<Gate, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let left = parser.expr()?;
        let op = match parser.next() {
            Some(Token::Cmp(op)) => op,
            Some(other) => {
                return Err(format!(
                    "expected a comparison (`>=`, `>`, `<=`, `<`, `==`, `!=`), found {}",
                    other.describe()
                ));
            }
            None => return Err("expected a comparison, such as `accuracy >= 0.9`".to_string()),
        };
        let right = parser.expr()?;
        match parser.next() {
            None => {}
            Some(Token::Cmp(_)) => return Err("one comparison per gate: write two gates".to_string()),
            Some(extra) => return Err(format!("{} after the comparison is not understood", extra.describe())),
        }
        Ok(Gate { text: text.trim().to_string(), left, op, right })
    }

    /// Whether the gate compares against the stage's current holder.
    pub fn needs_champion(&self) -> bool {
        self.left.needs_champion() || self.right.needs_champion()
    }

    /// Checks the gate for a candidate; `champion` is `None` when the stage
    /// holds no version (a comparison with it then passes, saying so).
    pub fn check(&self, candidate: Metrics<'_>, champion: Option<Metrics<'_>>) -> Check {
        let fail = |reason: String| Check {
            gate: self.text.clone(),
            passed: false,
            left: None,
            right: None,
            margin: None,
            reason,
        };
        if champion.is_none() && self.needs_champion() {
            return Check {
                gate: self.text.clone(),
                passed: true,
                left: None,
                right: None,
                margin: None,
                reason: "no champion: the stage holds no version yet".to_string(),
            };
        }
        let (left, right) = match (self.left.eval(candidate, champion), self.right.eval(candidate, champion)) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => return fail(e),
        };
        let passed = match self.op {
            Op::Ge => left >= right,
            Op::Gt => left > right,
            Op::Le => left <= right,
            Op::Lt => left < right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        };
        let margin = match self.op {
            Op::Ge | Op::Gt => Some(left - right),
            Op::Le | Op::Lt => Some(right - left),
            Op::Eq | Op::Ne => None,
        };
        let reason = match (passed, margin) {
            (true, Some(m)) => format!("{} vs {}: passes by {}", number(left), number(right), number(m)),
            (false, Some(m)) => format!("{} vs {}: short by {}", number(left), number(right), number(-m)),
            (true, None) => format!("{} vs {}: holds", number(left), number(right)),
            (false, None) => format!("{} vs {}: does not hold", number(left), number(right)),
        };
        Check { gate: self.text.clone(), passed, left: Some(left), right: Some(right), margin, reason }
    }
}

/// A number as people read it: up to 6 decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_string() } else { text.to_string() }
}

impl Expr {
    fn needs_champion(&self) -> bool {
        match self {
            Expr::Number(_) => false,
            Expr::Metric { champion, .. } => *champion,
            Expr::Neg(e) => e.needs_champion(),
            Expr::Binary(a, _, b) => a.needs_champion() || b.needs_champion(),
        }
    }

    fn eval(&self, candidate: Metrics<'_>, champion: Option<Metrics<'_>>) -> Result<f64, String> {
        Ok(match self {
            Expr::Number(n) => *n,
            Expr::Metric { champion: false, path } => {
                candidate(path).ok_or_else(|| format!("the candidate has no metric `{path}`"))?
            }
            Expr::Metric { champion: true, path } => champion
                .and_then(|metrics| metrics(path))
                .ok_or_else(|| format!("the champion has no metric `{path}`"))?,
            Expr::Neg(e) => -e.eval(candidate, champion)?,
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.eval(candidate, champion)?, b.eval(candidate, champion)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ if b == 0.0 => return Err("division by zero".to_string()),
                    _ => a / b,
                }
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Op(char),
    Cmp(Op),
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Number(n) => format!("the number `{}`", number(*n)),
            Token::Name(n) => format!("`{n}`"),
            Token::Op(c) => format!("`{c}`"),
            Token::Cmp(_) => "a second comparison".to_string(),
            Token::Open => "`(`".to_string(),
            Token::Close => "`)`".to_string(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' | ')' | '+' | '-' | '*' | '/' => {
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    op => Token::Op(op),
                });
                i += 1;
            }
            '=' if matches!(chars.get(i + 1), Some('>' | '<')) => {
                let flipped = format!("{}=", chars[i + 1]);
                return Err(format!("`={}` is not a comparison: write `{flipped}`", chars[i + 1]));
            }
            '>' | '<' | '=' | '!' => {
                let two = chars.get(i + 1) == Some(&'=');
                let op = match (c, two) {
                    ('>', true) => Op::Ge,
                    ('>', false) => Op::Gt,
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    ('=', true) => Op::Eq,
                    ('!', true) => Op::Ne,
                    _ => return Err(format!("`{c}` is not a comparison (write `==` or `!=`)")),
                };
                tokens.push(Token::Cmp(op));
                i += if two { 2 } else { 1 };
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                // An exponent: 1e-3.
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    i += 1;
                    if i < chars.len() && (chars[i] == '-' || chars[i] == '+') {
                        i += 1;
                    }
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let literal: String = chars[start..i].iter().collect();
                let value = literal.parse().map_err(|_| format!("`{literal}` is not a number"))?;
                tokens.push(Token::Number(value));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.ends_with('.') || name.contains("..") {
                    return Err(format!("`{name}` is not a metric name"));
                }
                tokens.push(Token::Name(name));
            }
            '"' | '`' => {
                // A quoted metric path, for names with other characters:
                // "val-loss", `top-5.accuracy`.
                let end = chars[i + 1..].iter().position(|&q| q == c).ok_or("an unclosed quote")?;
                let name: String = chars[i + 1..i + 1 + end].iter().collect();
                if name.is_empty() {
                    return Err("an empty metric name".to_string());
                }
                tokens.push(Token::Name(name));
                i += end + 2;
            }
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            left = Expr::Binary(Box::new(left), op, Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.at += 1;
            left = Expr::Binary(Box::new(left), op, Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Op('-')) => Ok(Expr::Neg(Box::new(self.unary()?))),
            Some(Token::Number(n)) => Ok(Expr::Number(n)),
            Some(Token::Name(name)) => Ok(match name.strip_prefix("champion.") {
                Some(path) => Expr::Metric { champion: true, path: path.to_string() },
                None if name == "champion" => {
                    return Err("`champion` names a version: write `champion.METRIC`".to_string());
                }
                None => Expr::Metric { champion: false, path: name },
            }),
            Some(Token::Open) => {
                let inner = self.expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("a `(` without its `)`".to_string()),
                }
            }
            Some(other) => Err(format!("expected a number or a metric, found {}", other.describe())),
            None => Err("expected a number or a metric at the end".to_string()),
        }
    }
}

/// The number at dotted `path` in a metrics file's JSON (`true`/`false`
/// count as 1 and 0).
pub fn lookup(json: &serde_json::Value, path: &str) -> Option<f64> {
    let mut value = json;
    for part in path.split('.') {
        value = match value {
            serde_json::Value::Object(map) => map.get(part)?,
            serde_json::Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &'static [(&'static str, f64)]) -> impl Fn(&str) -> Option<f64> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    #[test]
    fn checks_thresholds_and_champions_and_says_by_how_much() {
        let candidate = metrics(&[("accuracy", 0.91), ("loss", 0.30)]);
        let champion = metrics(&[("accuracy", 0.93), ("loss", 0.29)]);
        let check = |text: &str, with_champion: bool| {
            let champ: Option<Metrics<'_>> = if with_champion { Some(&champion) } else { None };
            Gate::parse(text).unwrap().check(&candidate, champ)
        };
        let c = check("accuracy >= 0.9", true);
        assert!(c.passed);
        assert_eq!(c.reason, "0.91 vs 0.9: passes by 0.01");
        let c = check("accuracy >= champion.accuracy", true);
        assert!(!c.passed);
        assert_eq!(c.reason, "0.91 vs 0.93: short by 0.02");
        assert_eq!((c.left, c.right), (Some(0.91), Some(0.93)));
        assert!(check("loss <= champion.loss * 1.05", true).passed);
        assert!(check("accuracy >= champion.accuracy - 0.05", true).passed);
        assert!(check("-(loss) < -0.2", true).passed);
        let none = check("accuracy > champion.accuracy", false);
        assert!(none.passed);
        assert!(none.reason.contains("no champion"));
        let missing = check("f1 >= 0.5", true);
        assert!(!missing.passed);
        assert_eq!(missing.reason, "the candidate has no metric `f1`");
        assert!(check("\"accuracy\" == 0.91", true).passed);
        assert!(check("1e-3 < 0.01", true).passed);
    }

    #[test]
    fn a_malformed_gate_says_what_is_wrong() {
        for (text, error) in [
            ("accuracy", "expected a comparison, such as `accuracy >= 0.9`"),
            ("accuracy = 0.9", "`=` is not a comparison (write `==` or `!=`)"),
            ("accuracy => 0.9", "`=>` is not a comparison: write `>=`"),
            ("accuracy >= ", "expected a number or a metric at the end"),
            ("accuracy >= 0.9 >= 0.8", "one comparison per gate: write two gates"),
            ("accuracy >= 0.9 0.8", "the number `0.8` after the comparison is not understood"),
            ("accuracy >= champion", "`champion` names a version: write `champion.METRIC`"),
            ("(accuracy >= 0.9", "a `(` without its `)`"),
            ("accuracy >= 0.9 %", "unexpected `%`"),
            ("accuracy. >= 1", "`accuracy.` is not a metric name"),
        ] {
            assert_eq!(Gate::parse(text).unwrap_err(), error, "{text}");
        }
    }

    #[test]
    fn looks_metrics_up_by_dotted_path() {
        let json =
            serde_json::json!({"accuracy": 0.9, "per_class": {"cat": {"recall": 0.8}}, "top": [0.5, 0.7], "ok": true});
        assert_eq!(lookup(&json, "accuracy"), Some(0.9));
        assert_eq!(lookup(&json, "per_class.cat.recall"), Some(0.8));
        assert_eq!(lookup(&json, "top.1"), Some(0.7));
        assert_eq!(lookup(&json, "ok"), Some(1.0));
        assert_eq!(lookup(&json, "per_class"), None);
    }
}
