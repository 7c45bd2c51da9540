//! Each example in `examples/` is also an end-to-end test.

mod common;

use std::path::Path;

use common::TestWorkspace;

fn copy_example(name: &str) -> TestWorkspace {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    let ws = TestWorkspace::new("");
    copy_dir(&source, ws.root());
    ws
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".gourd" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn quickstart() {
    let ws = copy_example("quickstart");
    ws.gourd(&["check"]).success();
    let run = ws.run_json(&[]).success();
    assert_eq!(run.summary()["ran"], 5);
    let metrics: serde_json::Value = serde_json::from_str(&ws.read("metrics.json")).unwrap();
    assert_eq!(metrics["accuracy"], 1.0);
    assert!(ws.exists("model/good.words"));

    let run = ws.run_json(&[]).success();
    assert_eq!(run.summary()["up_to_date"], 5);

    // A blank line changes the raw data but not the prepared data.
    ws.write("data/raw/good.txt", &format!("{}\n\n", ws.read("data/raw/good.txt")));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["prepare"], "ran");
    assert_eq!(run.summary()["up_to_date"], 4);

    // Only `evaluate` reads the held-out set.
    ws.write("data/holdout.txt", &format!("{}bad|Mould everywhere.\n", ws.read("data/holdout.txt")));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.summary()["ran"], 1);
    assert_eq!(run.statuses()["evaluate"], "ran");
}
