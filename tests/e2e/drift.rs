//! The built-in `drift` step (docs/monitoring.md), run by the real `gourd`
//! binary with no libtorch: verdicts, early cutoff, the cache, and errors
//! that name the file and the column.

mod common;

use common::{TestWorkspace, expect};

const PIPELINE: &str = r#"let gourd = import "gourd-std.ncl" in
{
  stages = {
    drift = gourd.steps.drift {
      reference = "data/reference.csv",
      current = "data/current.csv",
      output = "metrics/drift.json",
      decision = "drift/decision.json",
    },
    retrain = {
      cmd = "echo retrain >> runs.log && cp drift/decision.json retrained.json",
      deps = ["drift/decision.json"],
      outs = ["retrained.json"],
    },
  },
}
"#;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// A table of `rows` rows: two numeric columns, a category and a flag; with
/// `shift`, the numbers move and the categories change shares.
fn table(seed: u64, rows: usize, shift: f64) -> String {
    let mut rng = Rng(seed);
    let mut out = String::from("age,income,city,flag\n");
    for _ in 0..rows {
        let age = 40.0 + 10.0 * rng.normal() + 10.0 * shift;
        let income = (10.0 + 0.5 * rng.normal() + shift).exp();
        let u = rng.uniform();
        let city = if u < 0.5 - 0.3 * shift {
            "north"
        } else if u < 0.8 {
            "south"
        } else {
            "east"
        };
        let flag = u64::from(rng.uniform() < 0.3 + 0.4 * shift);
        out.push_str(&format!("{age:.3},{income:.2},{city},{flag}\n"));
    }
    out
}

fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new(PIPELINE);
    ws.write("data/reference.csv", &table(101, 800, 0.0));
    ws
}

fn report(ws: &TestWorkspace) -> serde_json::Value {
    serde_json::from_str(&ws.read("metrics/drift.json")).unwrap()
}

#[test]
fn a_batch_like_the_reference_does_not_drift_and_changes_nothing_downstream() {
    let ws = workspace();
    ws.write("data/current.csv", &table(102, 500, 0.0));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("drift", "ran"), ("retrain", "ran")]));
    let first = report(&ws);
    assert_eq!(first["drift"], false, "{first:#}");
    // Evidently's choice for a reference of 800 rows.
    assert_eq!(first["columns"]["age"]["test"], "ks");
    assert_eq!(first["columns"]["income"]["test"], "ks");
    assert_eq!(first["columns"]["city"]["test"], "chi2");
    assert_eq!(first["columns"]["flag"]["test"], "z");
    for (name, column) in first["columns"].as_object().unwrap() {
        assert_eq!(column["threshold"], 0.05, "{name}");
        assert_eq!(column["drift"], column["p_value"].as_f64().unwrap() < 0.05, "{name}: {column}");
    }
    assert!(first["share"].as_f64().unwrap() < 0.5, "{first:#}");
    assert_eq!(ws.read("drift/decision.json"), "{\n  \"drift\": false\n}\n");

    // Another batch from the same distribution: a new report, the same
    // decision, so the stage downstream is not run again.
    ws.clear_executions();
    ws.write("data/current.csv", &table(103, 600, 0.0));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("drift", "ran"), ("retrain", "up-to-date")]));
    assert!(ws.executions().is_empty(), "{:?}", ws.executions());
    let second = report(&ws);
    assert_eq!(second["drift"], false);
    assert_ne!(second, first, "a new batch gives new statistics");
}

#[test]
fn a_shifted_batch_drifts_and_reruns_downstream() {
    let ws = workspace();
    ws.write("data/current.csv", &table(102, 500, 0.0));
    ws.run_json(&[]).success();
    ws.clear_executions();
    ws.write("data/current.csv", &table(104, 500, 1.0));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("drift", "ran"), ("retrain", "ran")]));
    let report = report(&ws);
    assert_eq!(report["drift"], true, "{report:#}");
    assert_eq!(report["share"], 1.0);
    for (name, column) in report["columns"].as_object().unwrap() {
        assert_eq!(column["drift"], true, "{name}: {column}");
        assert!(column["p_value"].as_f64().unwrap() < 0.05, "{name}");
    }
    assert_eq!(ws.read("retrained.json"), "{\n  \"drift\": true\n}\n");
}

#[test]
fn a_batch_seen_before_is_a_cache_hit() {
    let ws = workspace();
    ws.write("data/current.csv", &table(102, 500, 0.0));
    ws.run_json(&[]).success();
    let before = ws.read("metrics/drift.json");
    // Nothing changed: nothing runs.
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("drift", "up-to-date"), ("retrain", "up-to-date")]));
    // Another batch, then the first one again: its report comes back from
    // the cache, byte for byte, without running the step.
    ws.write("data/current.csv", &table(105, 500, 1.0));
    ws.run_json(&[]).success();
    ws.clear_executions();
    ws.write("data/current.csv", &table(102, 500, 0.0));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("drift", "restored"), ("retrain", "restored")]));
    assert!(ws.executions().is_empty(), "{:?}", ws.executions());
    assert_eq!(ws.read("metrics/drift.json"), before);
}

#[test]
fn tests_and_thresholds_can_be_chosen_per_column_and_json_lines_are_read() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{
  stages = {
    drift = gourd.steps.drift {
      reference = "reference.jsonl",
      current = "current.jsonl",
      output = "drift.json",
      tests = { x = "psi", kind = "jensenshannon" },
      thresholds = { x = 0.2 },
      categorical = ["code"],
      drift_share = 0.3,
    },
  },
}
"#,
    );
    let mut rng = Rng(9);
    let mut reference = String::new();
    let mut current = String::new();
    for i in 0..400 {
        let kind = if rng.uniform() < 0.5 { "a" } else { "b" };
        reference.push_str(&format!(
            "{{\"x\": {}, \"kind\": \"{kind}\", \"code\": {}, \"y\": {}}}\n",
            rng.normal(),
            i % 7,
            rng.normal()
        ));
        let kind = if rng.uniform() < 0.9 { "a" } else { "b" };
        current.push_str(&format!(
            "{{\"x\": {}, \"kind\": \"{kind}\", \"code\": {}, \"y\": null}}\n",
            rng.normal(),
            i % 7
        ));
        // A missing value is skipped, not compared.
        current.push_str(&format!(
            "{{\"x\": {}, \"kind\": \"a\", \"code\": 3, \"y\": {}}}\n",
            rng.normal(),
            rng.normal()
        ));
    }
    ws.write("reference.jsonl", &reference);
    ws.write("current.jsonl", &current);
    ws.run_json(&[]).success();
    let report: serde_json::Value = serde_json::from_str(&ws.read("drift.json")).unwrap();
    assert_eq!(report["columns"]["x"]["test"], "psi");
    assert_eq!(report["columns"]["x"]["threshold"], 0.2);
    assert_eq!(report["columns"]["x"]["p_value"], serde_json::Value::Null);
    assert_eq!(report["columns"]["kind"]["test"], "jensenshannon");
    assert_eq!(report["columns"]["kind"]["drift"], true, "{report:#}");
    assert_eq!(report["columns"]["code"]["test"], "chi2", "7 categories");
    assert_eq!(report["columns"]["y"]["test"], "ks");
    assert_eq!(report["drift"], true, "kind and code drift: 2 of 4 >= 0.3");
}

/// JSON lines as Excel or PowerShell write them (a byte order mark) are
/// read; a key given twice in one line, or a line that is no object, is
/// refused with its line, as a CSV header naming a column twice is.
#[test]
fn json_lines_with_a_byte_order_mark_are_read_and_a_key_twice_is_refused() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{ stages = { drift = gourd.steps.drift { reference = "reference.jsonl", current = "current.jsonl", output = "drift.json" } } }
"#,
    );
    let mut rng = Rng(3);
    let rows = |rng: &mut Rng| -> String {
        (0..200).map(|_| format!("{{\"x\": {}, \"y\": {}}}\n", rng.normal(), rng.normal())).collect()
    };
    ws.write("reference.jsonl", &format!("\u{feff}{}", rows(&mut rng)));
    let current = rows(&mut rng);
    ws.write("current.jsonl", &current);
    ws.run_json(&[]).success();
    let report: serde_json::Value = serde_json::from_str(&ws.read("drift.json")).unwrap();
    assert_eq!(report["columns"].as_object().unwrap().keys().collect::<Vec<_>>(), ["x", "y"], "{report:#}");
    // Python's `json.dumps` writes `NaN` and `Infinity`: missing values.
    let with_constants = format!("{current}{{\"x\": NaN, \"y\": Infinity}}\n{{\"x\": -Infinity, \"y\": \"a NaN\"}}\n");
    ws.write("current.jsonl", &with_constants.replace("\"y\": \"a NaN\"", "\"y\": 0.5"));
    ws.run_json(&[]).success();
    let with_missing: serde_json::Value = serde_json::from_str(&ws.read("drift.json")).unwrap();
    assert_eq!(with_missing["columns"]["x"], report["columns"]["x"], "the constants are left out of `x`");
    let mut lines: Vec<&str> = current.lines().collect();
    lines.insert(2, r#"{"x": 1, "y": 2, "x": 3}"#);
    ws.write("current.jsonl", &(lines.join("\n") + "\n"));
    let out = failing_run(&ws);
    assert!(out.contains("line 3 of `current.jsonl` is not valid: the key `x` appears twice"), "{out}");
    ws.write("current.jsonl", &format!("{current}[1, 2]\n"));
    let out = failing_run(&ws);
    assert!(out.contains("line 201 of `current.jsonl` is not valid: the line is not a JSON object"), "{out}");
}

/// Runs the drift pipeline on `current` and returns its failure output.
fn failing_run(ws: &TestWorkspace) -> String {
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    format!("{}{}", run.stdout, run.stderr)
}

#[test]
fn a_column_missing_from_the_current_file_is_named() {
    let ws = workspace();
    ws.write("data/current.csv", "age,income,flag\n41,20000,1\n");
    let out = failing_run(&ws);
    assert!(out.contains("`data/current.csv` has no column `city`"), "{out}");
}

#[test]
fn text_in_a_numeric_column_is_named_with_its_line() {
    let ws = workspace();
    let mut current = table(102, 50, 0.0);
    current.push_str("forty,20000,north,1\n");
    ws.write("data/current.csv", &current);
    let out = failing_run(&ws);
    assert!(out.contains("line 52 of `data/current.csv`: column `age` holds `forty`, which is not a number"), "{out}");
    assert!(out.contains("list `age` in `categorical`"), "{out}");
}

#[test]
fn an_empty_file_is_named() {
    let ws = workspace();
    ws.write("data/current.csv", "age,income,city,flag\n");
    let out = failing_run(&ws);
    assert!(out.contains("`data/current.csv` holds no rows"), "{out}");
    ws.write("data/current.csv", "");
    let out = failing_run(&ws);
    assert!(out.contains("`data/current.csv` holds no rows"), "{out}");
}

/// Rows with no fields, or `columns = []`, compare nothing: an error, never a
/// report that says no column drifted.
#[test]
fn nothing_to_compare_is_refused() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{ stages = { drift = gourd.steps.drift { reference = "reference.jsonl", current = "current.jsonl", output = "drift.json" } } }"#,
    );
    ws.write("reference.jsonl", "{}\n{}\n");
    ws.write("current.jsonl", "{}\n");
    let out = failing_run(&ws);
    assert!(out.contains("`reference.jsonl` has no columns to compare"), "{out}");
    assert!(!ws.exists("drift.json"), "no report says all is well");

    let ws = TestWorkspace::new(
        &PIPELINE.replace("decision = \"drift/decision.json\",", "decision = \"drift/decision.json\", columns = [],"),
    );
    ws.write("data/reference.csv", &table(1, 100, 0.0));
    ws.write("data/current.csv", &table(2, 100, 0.0));
    let out = failing_run(&ws);
    assert!(out.contains("`columns` is empty"), "{out}");
    assert!(!ws.exists("metrics/drift.json"));
    assert!(ws.executions().is_empty());
}

#[test]
fn a_column_with_no_values_in_either_file_is_named() {
    let ws = workspace();
    ws.write("data/current.csv", &table(102, 50, 0.0));
    let mut reference = String::from("age,income,city,flag\n");
    for _ in 0..20 {
        reference.push_str("NaN,20000,north,1\n");
    }
    ws.write("data/reference.csv", &reference);
    let out = failing_run(&ws);
    assert!(out.contains("column `age` has no values in `data/reference.csv`"), "{out}");
    assert!(!ws.exists("metrics/drift.json"), "no report says all is well");
    ws.write("data/reference.csv", &table(101, 800, 0.0));
    let mut current = String::from("age,income,city,flag\n");
    for _ in 0..20 {
        current.push_str("41,NA,north,1\n");
    }
    ws.write("data/current.csv", &current);
    let out = failing_run(&ws);
    assert!(out.contains("column `income` has no values in `data/current.csv`"), "{out}");
}

#[test]
fn a_column_named_twice_in_a_header_is_refused() {
    let ws = workspace();
    ws.write("data/current.csv", "age,income,city,age\n41,20000,north,1\n");
    let out = failing_run(&ws);
    assert!(out.contains("the header names column `age` twice (field 4 repeats it)"), "{out}");
}

/// A p-value threshold of 7 would call every column drifted; a negative
/// one, none: both are refused, naming the column and the test.
#[test]
fn a_threshold_out_of_its_range_is_refused() {
    for (threshold, wanted) in
        [("7", "a p-value, between 0 and 1, not 7"), ("-1", "a p-value, between 0 and 1, not -1")]
    {
        let ws = TestWorkspace::new(&PIPELINE.replace(
            "decision = \"drift/decision.json\",",
            &format!(
                "decision = \"drift/decision.json\", tests = {{ age = \"ks\" }}, thresholds = {{ age = {threshold} }},"
            ),
        ));
        ws.write("data/reference.csv", &table(1, 100, 0.0));
        ws.write("data/current.csv", &table(2, 100, 0.0));
        let out = failing_run(&ws);
        assert!(out.contains(&format!("column `age`: the threshold of `ks` is {wanted}")), "{out}");
        // Said by `gourd check` too, before anything runs.
        let check = ws.gourd(&["check"]);
        assert_eq!(check.code, 1, "{}", check.stderr);
        assert!(check.stderr.contains("the threshold of `ks`"), "{}", check.stderr);
    }
    // With the test left to the data, only a threshold at or below 0.
    let ws = TestWorkspace::new(
        &PIPELINE.replace("decision = \"drift/decision.json\",", "decision = \"drift/decision.json\", threshold = -1,"),
    );
    let check = ws.gourd(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(check.stderr.contains("a threshold is above 0, not -1"), "{}", check.stderr);
}

#[test]
fn an_unknown_test_is_refused_before_anything_runs() {
    let ws = TestWorkspace::new(&PIPELINE.replace(
        "decision = \"drift/decision.json\",",
        "decision = \"drift/decision.json\", tests = { age = \"kolmogorov\" },",
    ));
    ws.write("data/reference.csv", &table(1, 100, 0.0));
    ws.write("data/current.csv", &table(2, 100, 0.0));
    let out = failing_run(&ws);
    assert!(
        out.contains("stage `drift`: column `age`: unknown test `kolmogorov` (the tests are: ks, chi2, z"),
        "{out}"
    );
    assert!(!ws.exists("metrics/drift.json"));
    assert!(ws.executions().is_empty());
}

#[test]
fn images_without_gourd_step_are_refused_before_anything_runs() {
    let ws =
        TestWorkspace::new(&PIPELINE.replace(
            "decision = \"drift/decision.json\",",
            "decision = \"drift/decision.json\", model = \"data/model\",",
        ));
    ws.write("data/reference.csv", &table(1, 100, 0.0));
    ws.write("data/current.csv", &table(2, 100, 0.0));
    ws.write("data/model/model.json", "{}");
    let run = ws.gourd_env(&["run"], &[("GOURD_STEP", "/nonexistent/gourd-step")]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("`model` embeds images with libtorch, and `gourd-step` was not found"),
        "{}",
        run.stderr
    );
    assert!(!ws.exists("metrics/drift.json"));
    // Refused while checking the pipeline: no stage was started.
    assert!(!run.stderr.contains("failed drift") && !run.stdout.contains("failed drift"), "{}", run.stderr);
}
