//! Promotion gates: every comparison at, above and below its bound, the
//! arithmetic and its precedence, what a gate needs, and what it says.

use gourd_core::gate::{Gate, Metrics, lookup, number};

fn metrics(pairs: &'static [(&'static str, f64)]) -> impl Fn(&str) -> Option<f64> {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn passes(text: &str) -> bool {
    let candidate = metrics(&[("a", 2.0), ("b", 3.0), ("zero", 0.0), ("x_1", 5.0), ("val-loss", 0.25)]);
    let champion = metrics(&[("a", 4.0)]);
    let check = Gate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).check(&candidate, Some(&champion));
    assert!(check.reason.contains(" vs "), "{text}: {}", check.reason);
    check.passed
}

#[test]
fn each_comparison_at_and_around_its_bound() {
    for (text, expected) in [
        ("a >= 1", true),
        ("a >= 2", true),
        ("a >= 3", false),
        ("a > 1", true),
        ("a > 2", false),
        ("a > 3", false),
        ("a <= 1", false),
        ("a <= 2", true),
        ("a <= 3", true),
        ("a < 1", false),
        ("a < 2", false),
        ("a < 3", true),
        ("a == 2", true),
        ("a == 3", false),
        ("a != 2", false),
        ("a != 3", true),
    ] {
        assert_eq!(passes(text), expected, "{text}");
    }
}

#[test]
fn arithmetic_and_its_precedence() {
    for (text, expected) in [
        ("a + b == 5", true),
        ("b - a == 1", true),
        ("a - b == -1", true),
        ("a * b == 6", true),
        ("b / a == 1.5", true),
        ("a / b * 3 == 2", true),
        ("1 + a * b == 7", true),
        ("(1 + a) * b == 9", true),
        ("b - a - 1 == 0", true),
        ("-a == -2", true),
        ("- - a == 2", true),
        ("-(a + b) == -5", true),
        ("champion.a / a == 2", true),
        ("x_1 == 5", true),
        ("`val-loss` * 4 == 1", true),
        ("\"val-loss\" == 0.25", true),
        ("\ta\t==\t2", true),
        ("2e1 == 20", true),
        ("2.5E-1 == 0.25", true),
        ("1e+1 == 10", true),
        (".5 == 0.5", true),
    ] {
        assert_eq!(passes(text), expected, "{text}");
    }
}

#[test]
fn division_by_zero_fails_the_gate() {
    let candidate = metrics(&[("a", 2.0), ("zero", 0.0)]);
    let check = Gate::parse("a / zero > 1").unwrap().check(&candidate, None);
    assert!(!check.passed);
    assert_eq!(check.reason, "division by zero");
    assert_eq!((check.left, check.right, check.margin), (None, None, None));
    // A zero on the left of `/` is fine.
    assert!(Gate::parse("zero / a == 0").unwrap().check(&candidate, None).passed);
}

#[test]
fn margins_say_by_how_much_in_the_gates_direction() {
    let candidate = metrics(&[("acc", 0.9), ("loss", 0.3)]);
    let check = |text: &str| Gate::parse(text).unwrap().check(&candidate, None);
    let c = check("acc > 0.8");
    assert_eq!((c.passed, c.reason.as_str()), (true, "0.9 vs 0.8: passes by 0.1"));
    assert!((c.margin.unwrap() - 0.1).abs() < 1e-12);
    let c = check("loss < 0.25");
    assert_eq!((c.passed, c.reason.as_str()), (false, "0.3 vs 0.25: short by 0.05"));
    assert!((c.margin.unwrap() + 0.05).abs() < 1e-12);
    let c = check("loss <= 0.5");
    assert_eq!(c.reason, "0.3 vs 0.5: passes by 0.2");
    let c = check("acc == 0.9");
    assert_eq!((c.passed, c.margin, c.reason.as_str()), (true, None, "0.9 vs 0.9: holds"));
    let c = check("acc != 0.9");
    assert_eq!((c.passed, c.margin, c.reason.as_str()), (false, None, "0.9 vs 0.9: does not hold"));
    assert_eq!(c.gate, "acc != 0.9");
    assert_eq!(Gate::parse("  acc > 1  ").unwrap().text, "acc > 1");
}

#[test]
fn what_needs_a_champion() {
    for (text, needs) in [
        ("a > 1", false),
        ("a > champion.a", true),
        ("champion.a < a", true),
        ("a > 1 + champion.a", true),
        ("a > champion.a + 1", true),
        ("a > -champion.a", true),
        ("a * 2 > 1 - b", false),
    ] {
        assert_eq!(Gate::parse(text).unwrap().needs_champion(), needs, "{text}");
    }
    // Without a champion, a gate that needs none is still checked.
    let candidate = metrics(&[("a", 2.0)]);
    let check = Gate::parse("a > 3").unwrap().check(&candidate, None);
    assert!(!check.passed);
    assert_eq!(check.reason, "2 vs 3: short by 1");
    let check = Gate::parse("a > champion.a").unwrap().check(&candidate, None);
    assert_eq!((check.passed, check.reason.as_str()), (true, "no champion: the stage holds no version yet"));
    // A champion without the metric fails the gate.
    let champion = metrics(&[]);
    let check = Gate::parse("a > champion.a").unwrap().check(&candidate, Some(&champion as Metrics<'_>));
    assert_eq!((check.passed, check.reason.as_str()), (false, "the champion has no metric `a`"));
}

#[test]
fn malformed_gates() {
    for (text, error) in [
        ("a >= 0.9 )", "`)` after the comparison is not understood"),
        ("a >= 0.9 b", "`b` after the comparison is not understood"),
        ("a >= 0.9 (", "`(` after the comparison is not understood"),
        ("a 0.9", "expected a comparison (`>=`, `>`, `<=`, `<`, `==`, `!=`), found the number `0.9`"),
        ("a + > 1", "expected a number or a metric, found a second comparison"),
        (">= 1", "expected a number or a metric, found a second comparison"),
        ("a =< 1", "`=<` is not a comparison: write `<=`"),
        ("a ! 1", "`!` is not a comparison (write `==` or `!=`)"),
        ("a >= 1.2.3", "`1.2.3` is not a number"),
        ("a..b >= 1", "`a..b` is not a metric name"),
        ("\"a >= 1", "an unclosed quote"),
        ("`` >= 1", "an empty metric name"),
        ("(a >= 1", "a `(` without its `)`"),
        ("(a b) >= 1", "a `(` without its `)`"),
    ] {
        assert_eq!(Gate::parse(text).unwrap_err(), error, "{text}");
    }
}

#[test]
fn numbers_as_people_read_them() {
    for (value, text) in [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (0.5, "0.5"),
        (-2.25, "-2.25"),
        (1.0 / 3.0, "0.333333"),
        (10.0, "10"),
        (-0.0000001, "0"),
    ] {
        assert_eq!(number(value), text, "{value}");
    }
}

#[test]
fn metrics_by_dotted_path() {
    let json = serde_json::json!({"a": {"b": [1, {"c": false}]}, "s": "text", "n": null});
    assert_eq!(lookup(&json, "a.b.0"), Some(1.0));
    assert_eq!(lookup(&json, "a.b.1.c"), Some(0.0));
    assert_eq!(lookup(&json, "a.b.x"), None);
    assert_eq!(lookup(&json, "a.b.5"), None);
    assert_eq!(lookup(&json, "s"), None);
    assert_eq!(lookup(&json, "s.t"), None);
    assert_eq!(lookup(&json, "n"), None);
    assert_eq!(lookup(&json, "missing"), None);
}

#[test]
fn numbers_with_exponents_may_end_the_expression() {
    for (text, expected) in [("zero < 1e-3", true), ("a < 2e+0", false), ("a <= 2E0", true), ("a > 1e", false)] {
        match Gate::parse(text) {
            Ok(_) if text.ends_with("1e") => panic!("{text}: `1e` is not a number"),
            Ok(_) => assert_eq!(passes(text), expected, "{text}"),
            Err(err) => {
                assert!(text.ends_with("1e"), "{text}: {err}");
                assert!(err.contains("`1e` is not a number"), "{text}: {err}");
            }
        }
    }
}
