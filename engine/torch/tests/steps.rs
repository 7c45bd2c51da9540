//! Each built-in step on tiny inputs, against the real libtorch.

use std::path::Path;

use gourd_torch::run_step;
use serde_json::{Value, json};

/// libtorch's random generator and thread count are global to a process:
/// steps that train must not interleave, or a fixed seed stops meaning the
/// same bytes. (gourd runs each step in a process of its own.)
static LIBTORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    LIBTORCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn photos(dir: &Path, per_class: usize) {
    let options = pumpkin_photos::Options { per_class, size: 24, seed: 5, watermelons: 2, blurry: 0, tiny: 1 };
    pumpkin_photos::generate(dir, &options).unwrap();
}

fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).display().to_string()
}

fn cnn() -> Value {
    json!([
        {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1}, {"type": "relu"},
        {"type": "maxpool2d", "kernel": 2}, {"type": "flatten"}, {"type": "linear", "out": 3},
    ])
}

fn read(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn images_train_evaluate_predict_select() {
    let _libtorch = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    photos(&d.join("photos"), 12);
    run_step(
        "validate",
        &json!({"input": p(d, "photos"), "output": p(d, "report.json"), "min_size": 16, "min_per_class": 5, "max_imbalance": 3.0}),
    )
    .unwrap();
    let report = read(&p(d, "report.json"));
    let rejected: Vec<&str> =
        report["rejected"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(rejected.len(), 3, "two watermelons and one tiny photo: {report}");
    run_step(
        "images",
        &json!({"input": p(d, "photos"), "validation": p(d, "report.json"), "output": p(d, "data"), "size": 16, "test_fraction": 0.3}),
    )
    .unwrap();
    let manifest = read(&p(d, "data/manifest.json"));
    assert_eq!(manifest["dropped"].as_array().unwrap().len(), 3);
    assert_eq!(manifest["train"].as_u64().unwrap() + manifest["test"].as_u64().unwrap(), 36);

    let train = |out: &str, lr: f64| {
        run_step(
            "train",
            &json!({"dataset": p(d, "data"), "output": p(d, out), "model": cnn(), "lr": lr, "epochs": 2,
                    "batch_size": 8, "seed": 3, "curves": p(d, &format!("{out}-curves.json"))}),
        )
        .unwrap();
    };
    train("m1", 0.01);
    train("m1-again", 0.01);
    let weights = |m: &str| std::fs::read(d.join(m).join("model.safetensors")).unwrap();
    assert_eq!(weights("m1"), weights("m1-again"), "same seed and threads: same bytes");
    assert_eq!(read(&p(d, "m1-curves.json"))["epochs"].as_array().unwrap().len(), 2);
    train("m2", 0.0001);

    for m in ["m1", "m2"] {
        run_step("evaluate", &json!({"model": p(d, m), "dataset": p(d, "data"), "output": p(d, &format!("{m}.json"))}))
            .unwrap();
        let metrics = read(&p(d, &format!("{m}.json")));
        // Every test image is counted once, in the row of its true label,
        // and the accuracy is the diagonal's share.
        let labels: Vec<&str> =
            metrics["confusion"]["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        assert_eq!(labels, ["bad", "fine", "good"], "{metrics}");
        let matrix: Vec<Vec<u64>> = serde_json::from_value(metrics["confusion"]["matrix"].clone()).unwrap();
        assert_eq!(matrix.len(), 3);
        for (row, label) in matrix.iter().zip(&labels) {
            let expected = manifest["per_label"][*label]["test"].as_u64().unwrap_or(0);
            assert_eq!(row.iter().sum::<u64>(), expected, "test images of `{label}`: {metrics}");
            assert_eq!(metrics["per_class"][*label]["support"], expected);
        }
        let total: u64 = matrix.iter().flatten().sum();
        assert_eq!(total, manifest["test"].as_u64().unwrap());
        assert_eq!(metrics["examples"], total);
        let correct: u64 = (0..3).map(|i| matrix[i][i]).sum();
        let accuracy = metrics["accuracy"].as_f64().unwrap();
        assert!((accuracy - correct as f64 / total as f64).abs() < 1e-6, "{metrics}");
        let good = labels.iter().position(|l| *l == "good").unwrap();
        let recall = metrics["per_class"]["good"]["recall"].as_f64().unwrap();
        // The split hashes each image's path, here under a random temporary
        // folder: a class may have no test image, and its recall is then 0.
        let support = matrix[good].iter().sum::<u64>() as f64;
        let expected = if support == 0.0 { 0.0 } else { matrix[good][good] as f64 / support };
        assert!((recall - expected).abs() < 1e-6, "{metrics}");
        assert!(metrics["loss"].as_f64().unwrap() > 0.0, "{metrics}");
    }
    run_step(
        "select",
        &json!({"candidates": [
            {"name": "m1", "model": p(d, "m1"), "metrics": p(d, "m1.json")},
            {"name": "m2", "model": p(d, "m2"), "metrics": p(d, "m2.json")},
        ], "metric": "loss", "goal": "min", "output": p(d, "best")}),
    )
    .unwrap();
    let selection = read(&p(d, "best/selection.json"));
    let (l1, l2) = (read(&p(d, "m1.json"))["loss"].as_f64().unwrap(), read(&p(d, "m2.json"))["loss"].as_f64().unwrap());
    assert_eq!(selection["winner"], if l1 <= l2 { "m1" } else { "m2" });
    assert!(d.join("best/model.safetensors").exists());

    run_step("predict", &json!({"model": p(d, "best"), "input": p(d, "photos/good"), "output": p(d, "pred.json")}))
        .unwrap();
    assert!(read(&p(d, "pred.json"))["predictions"].as_array().unwrap().len() >= 12);
}

#[test]
fn model_errors_are_reported_with_the_layer_position_before_training() {
    let _libtorch = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let options = pumpkin_photos::Options { per_class: 4, size: 24, seed: 5, watermelons: 0, blurry: 0, tiny: 0 };
    pumpkin_photos::generate(&d.join("photos"), &options).unwrap();
    run_step("images", &json!({"input": p(d, "photos"), "output": p(d, "data"), "size": 8})).unwrap();
    let train = |model: Value| {
        run_step(
            "train",
            &json!({"dataset": p(d, "data"), "output": p(d, "m"), "model": model, "lr": 0.01, "epochs": 1}),
        )
        .unwrap_err()
        .to_string()
    };
    let err = train(json!([{"type": "flatten"}, {"type": "lstm", "out": 3}]));
    assert!(err.contains("layer 2") && err.contains("unknown layer type `lstm`"), "{err}");
    let err = train(json!([{"type": "conv2d", "out": 4, "kernel": 3}, {"type": "linear", "out": 3}]));
    assert!(err.contains("layer 2 (linear)") && err.contains("flatten"), "{err}");
    assert!(!d.join("m").exists(), "nothing is written before the model is known to fit");
}

#[test]
fn tiny_images_are_kept_when_not_validated_but_unreadable_ones_fail_naming_the_file() {
    let _libtorch = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let options = pumpkin_photos::Options { per_class: 3, size: 24, seed: 5, watermelons: 0, blurry: 0, tiny: 0 };
    pumpkin_photos::generate(&d.join("photos"), &options).unwrap();
    std::fs::write(d.join("photos/bad/broken.png"), b"not a png").unwrap();
    let err = run_step("images", &json!({"input": p(d, "photos"), "output": p(d, "data"), "size": 8}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.png"), "{err}");
    // The validate step catches it instead, and the images step then skips it.
    run_step("validate", &json!({"input": p(d, "photos"), "output": p(d, "r.json"), "min_per_class": 1})).unwrap();
    assert!(read(&p(d, "r.json"))["rejected"][0]["reasons"][0].as_str().unwrap().starts_with("unreadable"));
    run_step(
        "images",
        &json!({"input": p(d, "photos"), "validation": p(d, "r.json"), "output": p(d, "data"), "size": 8}),
    )
    .unwrap();
}

#[test]
fn empty_class_folder_and_hard_checks_fail() {
    let _libtorch = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let options = pumpkin_photos::Options { per_class: 3, size: 24, seed: 5, watermelons: 0, blurry: 0, tiny: 0 };
    pumpkin_photos::generate(&d.join("photos"), &options).unwrap();
    let err = run_step("validate", &json!({"input": p(d, "photos"), "output": p(d, "r.json"), "min_per_class": 10}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("hard checks failed") && err.contains("fewer than the 10 required"), "{err}");
    assert_eq!(read(&p(d, "r.json"))["ok"], false, "the report is written before failing");
    std::fs::write(d.join("log.csv"), "date,kg\n2026-01-01,twelve\n").unwrap();
    let err = run_step(
        "validate",
        &json!({"input": p(d, "photos"), "output": p(d, "r.json"), "min_per_class": 1,
                "table": {"path": p(d, "log.csv"), "columns": [{"name": "date", "type": "string"}, {"name": "kg", "type": "number"}]}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`twelve` is not a number"), "{err}");
    std::fs::create_dir_all(d.join("photos/empty")).unwrap();
    let err = run_step("images", &json!({"input": p(d, "photos"), "output": p(d, "data")})).unwrap_err().to_string();
    assert!(err.contains("photos/empty") && err.contains("holds no images"), "{err}");
}

#[test]
fn an_evaluation_set_holds_every_image_and_cannot_be_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    photos(&d.join("photos"), 5);
    run_step("images", &json!({"input": p(d, "photos"), "output": p(d, "eval"), "size": 16, "test_fraction": 1.0}))
        .unwrap();
    let manifest = read(&p(d, "eval/manifest.json"));
    assert_eq!(manifest["train"], 0);
    assert!(manifest["test"].as_u64().unwrap() > 0);
    let err = run_step(
        "train",
        &json!({"dataset": p(d, "eval"), "output": p(d, "m"), "model": cnn(), "epochs": 1, "batch_size": 4, "lr": 0.01}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("has no training images") && err.contains("test_fraction = 1"), "{err}");
    let err = run_step("images", &json!({"input": p(d, "photos"), "output": p(d, "x"), "test_fraction": 1.5}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`test_fraction` must be from 0 to 1"), "{err}");
}
