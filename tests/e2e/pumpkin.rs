//! The pumpkin pipeline end to end, on the real libtorch (`--features torch`):
//! validate, standardise, train a sweep, evaluate, select, predict.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::TestWorkspace;
use serde_json::Value;

/// The test accuracy the example's README promises, at least.
const ACCURACY_FLOOR: f64 = 0.85;

fn example() -> (TestWorkspace, pumpkin_photos::Summary) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pumpkin");
    let ws = TestWorkspace::new("");
    for file in ["gourd.ncl", "harvest.csv", ".gitignore"] {
        std::fs::copy(source.join(file), ws.path(file)).unwrap();
    }
    let summary = pumpkin_photos::generate(&ws.path("photos"), &pumpkin_photos::Options::default()).unwrap();
    pumpkin_photos::one_more(&ws.path("inbox"), 77, "delivery").unwrap();
    // A registry version is a commit.
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-q", "-m", "the pumpkin pipeline"]);
    (ws, summary)
}

/// `gourd run --json`, with `gourd` on PATH for the registry stage.
fn run(ws: &TestWorkspace) -> common::Run {
    let bin = Path::new(common::gourd_bin()).parent().unwrap().to_str().unwrap().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    ws.gourd_env(&["run", "--json"], &[("PATH", &path)])
}

fn json(ws: &TestWorkspace, path: &str) -> Value {
    serde_json::from_str(&ws.read(path)).unwrap()
}

fn ran(run: &common::Run) -> BTreeSet<String> {
    run.statuses().into_iter().filter(|(_, s)| s == "ran").map(|(n, _)| n).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pumpkin_pipeline() {
    let (ws, summary) = example();
    let first = run(&ws).success();
    assert_eq!(first.summary()["ran"], 10, "{}", first.stdout);

    // The citizens' watermelons, blurry and tiny photos were dropped.
    let manifest = json(&ws, "data/dataset/manifest.json");
    let dropped: BTreeSet<String> =
        manifest["dropped"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap().to_string()).collect();
    for melon in &summary.watermelons {
        assert!(dropped.contains(&format!("photos/{melon}")), "watermelon {melon} kept: {dropped:?}");
    }
    for photo in summary.blurry.iter().chain(&summary.tiny) {
        assert!(dropped.contains(&format!("photos/{photo}")), "{photo} kept: {dropped:?}");
    }
    assert_eq!(dropped.len(), summary.watermelons.len() + summary.blurry.len() + summary.tiny.len());

    // The sweep picked the best model by its metric, and it is good enough.
    let accuracy = |i: usize| json(&ws, &format!("metrics/{i}.json"))["accuracy"].as_f64().unwrap();
    let (a0, a1) = (accuracy(0), accuracy(1));
    let selection = json(&ws, "metrics/selection.json");
    assert_eq!(selection["winner"], if a0 >= a1 { "train-0" } else { "train-1" });
    assert_eq!(selection["value"].as_f64().unwrap(), a0.max(a1));
    assert!(a0.max(a1) >= ACCURACY_FLOOR, "best accuracy {} below {ACCURACY_FLOOR}", a0.max(a1));
    assert_eq!(json(&ws, "reports/inbox-predictions.json")["predictions"][0]["label"], "good");

    // Each training's curves are a plot of its stage: loss and accuracy per epoch.
    ws.gourd(&["plots", "show", "train-0", "train-1", "-o", "plots.html"]).success();
    let page = ws.read("plots.html");
    for stage in ["train-0", "train-1"] {
        let at = page.find(&format!("<h2>Training curves (stage {stage})</h2>")).expect("a plot per training");
        let figure = &page[at..at + page[at..].find("</svg>").unwrap()];
        let epochs = json(&ws, &format!("metrics/curves-{}.json", &stage[6..]))["epochs"].as_array().unwrap().len();
        assert!(epochs > 0);
        assert_eq!(figure.matches("class=\"line\"").count(), 2, "loss and accuracy");
        assert_eq!(figure.matches("class=\"point\"").count(), 2 * epochs);
    }

    // The best model is registered and promoted to staging and prod behind
    // their gates, with the evaluation's accuracy as evidence.
    let receipt = json(&ws, "registry/pumpkin.json");
    assert_eq!(receipt["version"], "v0.0.1", "{receipt}");
    assert_eq!(receipt["stages"]["prod"]["outcome"], "promoted", "{receipt}");
    let show: Value = serde_json::from_str(&ws.gourd(&["registry", "show", "--json"]).success().stdout).unwrap();
    assert_eq!(show["artifacts"][0]["stages"], serde_json::json!({"prod": "v0.0.1", "staging": "v0.0.1"}));
    let history: Value = serde_json::from_str(
        &ws.gourd(&["registry", "history", "pumpkin", "--stage", "prod", "--json"]).success().stdout,
    )
    .unwrap();
    let gates = &history["moves"][0]["gates"];
    assert_eq!(gates[0]["gate"], "accuracy >= 0.85");
    assert_eq!(gates[0]["left"].as_f64().unwrap(), a0.max(a1));
    assert_eq!(ws.gourd(&["registry", "resolve", "pumpkin@prod"]).success().stdout.split(' ').next(), Some("v0.0.1"));

    // Nothing changed: nothing runs but the registry stage, which moves nothing.
    let again = run(&ws).success();
    assert_eq!(again.summary()["up_to_date"], 9, "{}", again.stdout);
    assert_eq!(again.statuses()["publish"], "ran");
    assert_eq!(json(&ws, "registry/pumpkin.json")["registered"], false);

    // One new photo: what reads photos re-runs, the harvest does not.
    pumpkin_photos::one_more(&ws.path("photos"), 1234, "farm-new").unwrap();
    let after_photo = run(&ws).success();
    let rerun = ran(&after_photo);
    for stage in ["validate", "images", "train-0", "train-1", "evaluate-0", "evaluate-1", "select"] {
        assert!(rerun.contains(stage), "{stage} did not re-run: {}", after_photo.stdout);
    }
    assert_eq!(after_photo.statuses()["harvest"], "up-to-date");

    // One sweep point's learning rate: only that branch and `select`.
    let pipeline = ws.read("gourd.ncl").replace("lr = [0.004, 0.0015]", "lr = [0.004, 0.002]");
    ws.write("gourd.ncl", &pipeline);
    let after_lr = run(&ws).success();
    let rerun = ran(&after_lr);
    let winner_changed = json(&ws, "metrics/selection.json")["winner"] != selection["winner"];
    let mut expected = set(&["train-1", "evaluate-1", "select", "publish"]);
    if winner_changed {
        expected.insert("predict".to_string());
    }
    assert_eq!(rerun, expected, "{}", after_lr.stdout);
}

#[test]
fn a_cuda_step_without_a_gpu_fails_clearly_or_falls_back_to_the_cpu() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
        { stages = { images = gourd.steps.images { input = "photos", output = "data", size = 8 } & { executor = 'cuda } } }"#,
    );
    let options = pumpkin_photos::Options { per_class: 3, size: 16, seed: 1, watermelons: 0, blurry: 0, tiny: 0 };
    pumpkin_photos::generate(&ws.path("photos"), &options).unwrap();
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("no GPU was found"), "{}", run.stdout);
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("executor = 'cuda", "executor = 'cuda, cpu_fallback = true"));
    assert_eq!(ws.run_json(&[]).success().statuses()["images"], "ran");
}

#[test]
#[ignore = "needs GTO: eval \"$(scripts/setup-gto.sh)\", then --include-ignored"]
fn gto_reads_the_pumpkin_registry() {
    let gto = match std::env::var("GOURD_TEST_GTO") {
        Ok(path) if !path.is_empty() => path,
        _ => panic!("GOURD_TEST_GTO is not set: install GTO with `eval \"$(scripts/setup-gto.sh)\"`"),
    };
    let (ws, _) = example();
    run(&ws).success();
    let out = std::process::Command::new(gto).args(["show", "--json"]).current_dir(ws.root()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let show: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(show["pumpkin"]["version"], "v0.0.1", "{show}");
    assert_eq!(show["pumpkin"]["stage"], serde_json::json!({"prod": "v0.0.1", "staging": "v0.0.1"}), "{show}");
}
