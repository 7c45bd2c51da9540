//! The pipeline loader under arbitrary input: whatever a pipeline file
//! holds, loading it gives a pipeline or an error, never a panic, and a
//! pipeline it accepts keeps the promises the engine relies on (paths
//! normalised and inside the workspace, stages sorted by name, no output
//! at the workspace root).
//!
//! `PROPTEST_CASES` sets how many inputs each property tries (CI runs many
//! more than the default).

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Strings a careless or hostile user might write in any field.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("/etc/passwd".to_string()),
        Just("a/../../b".to_string()),
        Just(".git".to_string()),
        Just("data//x/./".to_string()),
        Just("%{x}".to_string()),
        Just("\"".to_string()),
        Just("a\nb".to_string()),
        Just("\u{0}".to_string()),
        Just("é/ü/雪".to_string()),
        "[a-z./_-]{0,12}",
        any::<String>(),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        nasty_string().prop_map(Value::String),
    ]
}

/// JSON values a few levels deep.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(nasty_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const FIELDS: [&str; 17] = [
    "cmd",
    "deps",
    "outs",
    "metrics",
    "params",
    "env",
    "executor",
    "resources",
    "wdir",
    "always_run",
    "cpu_fallback",
    "remote",
    "timeout",
    "desc",
    "secrets",
    "path",
    "kind",
];

/// A stage record: mostly known fields with values of any shape, sometimes
/// well-typed ones, sometimes an unknown field.
fn stage() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        4 => prop::sample::select(FIELDS.to_vec()).prop_map(String::from),
        1 => nasty_string(),
    ];
    let typed = prop_oneof![
        nasty_string().prop_map(|s| json!({ "cmd": s })),
        prop::collection::vec(nasty_string(), 0..3).prop_map(|argv| json!({ "cmd": argv })),
        (nasty_string(), prop::collection::vec(nasty_string(), 0..3), prop::collection::vec(nasty_string(), 0..3))
            .prop_map(|(cmd, deps, outs)| json!({ "cmd": cmd, "deps": deps, "outs": outs })),
        (nasty_string(), nasty_string(), nasty_string()).prop_map(|(cmd, out, kind)| {
            json!({ "cmd": cmd, "outs": [{ "path": out, "kind": kind }], "timeout": -1 })
        }),
    ];
    prop_oneof![
        typed,
        prop::collection::btree_map(field, value(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
    ]
}

fn pipeline() -> impl Strategy<Value = Value> {
    let stages = prop::collection::btree_map(nasty_string(), stage(), 0..5);
    (stages, prop::option::of(value())).prop_map(|(stages, remote)| {
        let mut top = json!({ "stages": stages });
        if let Some(remote) = remote {
            top["remote"] = remote;
        }
        top
    })
}

fn check_accepted(pipeline: &gourd_core::model::Pipeline) {
    assert!(pipeline.stages.windows(2).all(|w| w[0].name < w[1].name), "stages sorted and unique");
    for stage in &pipeline.stages {
        let paths = stage.deps.iter().chain(stage.outs.iter().map(|o| &o.path)).chain(&stage.metrics);
        for path in paths.chain(std::iter::once(&stage.wdir)) {
            let text = path.as_str();
            assert!(!text.starts_with('/'), "absolute: {text}");
            assert!(!text.split('/').any(|p| p == ".." || p.is_empty() || (p == "." && text != ".")), "{text}");
        }
        for output in stage.outputs() {
            assert!(!output.path.is_root(), "an output at the root");
        }
        assert!(!matches!(&stage.cmd, gourd_core::model::Command::Argv(argv) if argv.is_empty()));
    }
}

/// `default` cases for a plain `cargo test`; with `PROPTEST_CASES` set,
/// that many divided by `cost` (a property that runs the evaluator tries
/// fewer inputs than one that only validates).
fn cases(default: u32, cost: u32) -> ProptestConfig {
    let cases =
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse::<u32>().ok()).map_or(default, |n| (n / cost).max(1));
    ProptestConfig { cases, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases(128, 1))]

    #[test]
    fn validate_never_panics_on_any_export(pipeline in pipeline()) {
        let text = pipeline.to_string();
        if let Ok(accepted) = gourd_spec::validate(&text, Path::new("gourd.ncl")) {
            check_accepted(&accepted);
        }
    }

    #[test]
    fn validate_never_panics_on_any_text(text in any::<String>()) {
        let _ = gourd_spec::validate(&text, Path::new("gourd.ncl"));
    }

    #[test]
    fn the_import_scan_never_panics(text in any::<String>()) {
        for import in gourd_spec::imports(&text) {
            prop_assert!(text.contains(import.chars().next().unwrap_or(' ')) || import.is_empty() || text.contains('\\'));
        }
    }

    #[test]
    fn locating_a_line_never_panics(text in any::<String>(), stage in nasty_string(), literal in nasty_string()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gourd.ncl");
        std::fs::write(&file, &text).unwrap();
        if let Some(line) = gourd_spec::line_of(&file, &stage, Some(&literal)) {
            prop_assert!(line >= 1 && line <= text.matches('\n').count() + 1);
        }
    }
}

/// Pipeline sources: a stage record written as Nickel, with nasty strings
/// in its fields (quotes, interpolation, escapes), and stray tokens.
fn nickel_source() -> impl Strategy<Value = String> {
    let literal = || nasty_string().prop_map(|s| serde_json::to_string(&s).unwrap());
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("let x = 1 in".to_string()),
        Just("'cuda".to_string()),
        Just("..".to_string()),
        Just("std.string.join".to_string()),
        Just("import \"nothing.ncl\"".to_string()),
        literal(),
    ];
    let field = (prop::sample::select(FIELDS.to_vec()), literal(), prop::collection::vec(literal(), 0..3)).prop_map(
        |(name, one, many)| match name {
            "deps" | "outs" | "metrics" | "secrets" => format!("{name} = [{}]", many.join(", ")),
            _ => format!("{name} = {one}"),
        },
    );
    let stage = prop::collection::vec(field, 1..4).prop_map(|fields| format!("{{ {} }}", fields.join(", ")));
    (prop::collection::vec(("[a-z]{1,4}", stage), 0..3), prop::collection::vec(token, 0..3)).prop_map(
        |(stages, noise)| {
            let body: Vec<String> = stages.into_iter().map(|(name, stage)| format!("{name} = {stage}")).collect();
            format!("{{ stages = {{ {} }} }} {}", body.join(", "), noise.join(" "))
        },
    )
}

proptest! {
    // Each case runs the Nickel evaluator: fewer of them.
    #![proptest_config(cases(16, 64))]

    #[test]
    fn evaluating_any_source_gives_a_pipeline_or_an_error(source in nickel_source()) {
        let dir = tempfile::tempdir().unwrap();
        let stdlib = gourd_spec::install_stdlib(&dir.path().join("stdlib")).unwrap();
        let file = dir.path().join("gourd.ncl");
        std::fs::write(&file, &source).unwrap();
        match gourd_spec::evaluate_here(&file, &stdlib, false, true) {
            Ok(evaluation) => {
                if let Some(read) = &evaluation.read {
                    prop_assert!(read.iter().any(|s| s.path == file && s.digest.is_some()), "{read:?}");
                }
                prop_assert_eq!(gourd_spec::Evaluation::from_wire(&evaluation.to_wire()), evaluation.clone());
                if let Ok(accepted) = gourd_spec::validate(&evaluation.export, &file) {
                    check_accepted(&accepted);
                }
            }
            Err(diagnostics) => prop_assert!(!diagnostics.trim().is_empty(), "an error without a message"),
        }
        // The fast evaluation (no contract, checked in Rust) accepts exactly
        // what the checked one accepts, and gives the same pipeline.
        let accepted = |checked: bool| {
            gourd_spec::evaluate_here(&file, &stdlib, false, checked)
                .ok()
                .and_then(|evaluation| gourd_spec::validate(&evaluation.export, &file).ok())
        };
        let fast = accepted(false);
        if fast.is_some() || accepted(true).is_some() {
            prop_assert_eq!(fast, accepted(true), "fast and checked evaluations disagree on:\n{}", source);
        }
    }
}
