//! Pipelines of thousands of generated stages load: the standard library's
//! `record_from_array` builds the stages record in runs of 48 fields merged
//! in halves (Nickel's own `std.record.from_array` copies the record per
//! field), and the
//! pipeline is evaluated without its contract and checked in Rust, the
//! contract being applied only to explain an error.

mod common;

use common::TestWorkspace;

fn generated(n: usize, name: &str) -> String {
    format!(
        r#"let gourd = import "gourd-std.ncl" in
{{
  stages = gourd.record_from_array (std.array.generate (fun i => {{
    field = {name},
    value = {{ cmd = "echo %{{std.to_string i}} > out/%{{std.to_string i}}.txt", outs = ["out/%{{std.to_string i}}.txt"] }},
  }}) {n}),
}}
"#
    )
}

#[test]
fn thousands_of_generated_stages_load() {
    let ws = TestWorkspace::new(&generated(3000, r#""shard-%{std.to_string i}""#));
    let check = ws.gourd(&["check"]).success();
    assert!(check.stdout.contains("3000 stages"), "{}", check.stdout);
    // Every stage is there, with the contract's defaults filled in by gourd.
    let dag = ws.gourd(&["dag", "--format", "json"]).success();
    let graph: serde_json::Value = serde_json::from_str(&dag.stdout).unwrap();
    assert_eq!(graph["stages"].as_array().map(Vec::len), Some(3000), "{}", &dag.stdout[..200.min(dag.stdout.len())]);
}

#[test]
fn a_name_generated_twice_is_an_error() {
    let ws = TestWorkspace::new(&generated(40, r#""shard-%{std.to_string (i % 30)}""#));
    let check = ws.gourd(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(check.stderr.contains("the field `shard-0` is given twice"), "{}", check.stderr);
    // Twice in different runs of 48 (shard-3 at 3 and 63), met by a merge.
    let ws = TestWorkspace::new(&generated(100, r#""shard-%{std.to_string (i % 60)}""#));
    let check = ws.gourd(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(check.stderr.contains("is given twice"), "{}", check.stderr);
}

#[test]
fn a_bad_field_is_still_explained_by_the_contract() {
    // Evaluated fast and refused in Rust, with the user's line and the
    // nearest field (an unknown field needs no second, checked evaluation).
    let ws = TestWorkspace::new("{\n  stages = {\n    a = { cmd = \"true\", outz = [\"x\"] },\n  },\n}\n");
    let check = ws.gourd(&["check"]);
    assert_eq!(check.code, 1);
    assert!(check.stderr.contains("outz"), "{}", check.stderr);
    assert!(check.stderr.contains("gourd.ncl:3"), "{}", check.stderr);
    // A stage name the contract refuses is refused without it too.
    let ws = TestWorkspace::new("{ stages = { \"-a\" = { cmd = \"true\" } } }\n");
    let check = ws.gourd(&["check"]);
    assert_eq!(check.code, 1);
    assert!(check.stderr.contains("invalid stage name `-a`"), "{}", check.stderr);
}
