//! The life cycle's loop on the real libtorch (`--features torch`), with
//! examples/pumpkin/loop: deliveries of photos are checked for drift
//! through an encoder's embeddings; only drifted deliveries grow the
//! training set, and the registry's gate promotes a retrained model only if
//! it beats the champion on the frozen holdout.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::serving::{Server, image_files, post};

use common::TestWorkspace;
use pumpkin_photos::Farm;
use serde_json::Value;

fn workspace() -> TestWorkspace {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pumpkin/loop");
    let ws = TestWorkspace::new("");
    std::fs::copy(source.join("gourd.ncl"), ws.path("gourd.ncl")).unwrap();
    pumpkin_photos::batch(&ws.path("photos"), 60, 2026, Farm::Home).unwrap();
    pumpkin_photos::batch(&ws.path("holdout"), 15, 900, Farm::Home).unwrap();
    pumpkin_photos::batch(&ws.path("holdout"), 15, 901, Farm::Other).unwrap();
    ws
}

/// Commits what arrived (a version is one commit), then `gourd run --json`.
fn deliver_and_run(ws: &TestWorkspace, message: &str) -> BTreeMap<String, String> {
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-q", "--allow-empty", "-m", message]);
    let bin = Path::new(common::gourd_bin()).parent().unwrap().to_str().unwrap().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let run = ws.gourd_env(&["run", "--json"], &[("PATH", &path)]).success();
    run.statuses()
}

fn json(ws: &TestWorkspace, path: &str) -> Value {
    serde_json::from_str(&ws.read(path)).unwrap()
}

fn ran(statuses: &BTreeMap<String, String>) -> Vec<&str> {
    statuses.iter().filter(|(_, s)| *s == "ran").map(|(n, _)| n.as_str()).collect()
}

fn prod(ws: &TestWorkspace) -> String {
    ws.gourd(&["registry", "resolve", "pumpkin@prod"]).success().stdout.split(' ').next().unwrap().to_string()
}

/// Asks `server` about every image under `dir`, one request each.
fn classify(server: &Server, dir: &Path) -> usize {
    let files = common::files_under(dir);
    for file in &files {
        let reply = post(server.address, "/v2/models/pumpkin/infer", &image_files(&[std::fs::read(file).unwrap()]));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    files.len()
}

const DOWNSTREAM: [&str; 7] = ["dataset", "train-0", "train-1", "evaluate-0", "evaluate-1", "select", "publish"];

#[test]
fn drift_retrains_and_the_gate_promotes_only_a_better_model() {
    let ws = workspace();
    pumpkin_photos::batch(&ws.path("incoming/d1"), 20, 501, Farm::Home).unwrap();
    let first = deliver_and_run(&ws, "the farm, and a first delivery from it");
    assert_eq!(ran(&first).len(), 12, "{first:?}");
    assert_eq!(json(&ws, "metrics/drift.json")["drift"], false);
    assert_eq!(prod(&ws), "v0.0.1");
    let champion = json(&ws, "metrics/selection.json")["value"].as_f64().unwrap();
    // prod serves, and logs what it is asked.
    let server = Server::start(&ws, &["pumpkin@prod", "--poll", "0.2", "--log-dir", "serving"]);
    assert_eq!(server.version("pumpkin"), "v0.0.1");

    // A delivery like the farm's own photos: drift is checked, and nothing
    // downstream runs (the training set is the same bytes).
    pumpkin_photos::batch(&ws.path("incoming/d2"), 20, 502, Farm::Home).unwrap();
    let same = deliver_and_run(&ws, "a delivery from the farm");
    assert_eq!(ran(&same), ["admit", "drift", "publish"], "{same:?}");
    assert_eq!(json(&ws, "metrics/drift.json")["drift"], false);
    assert_eq!(json(&ws, "registry/pumpkin.json")["registered"], false);

    // Customers bring paler, larger pumpkins from another farm to the served
    // model; a drift stage on the served inputs (the log, against the farm's
    // photos seen through the served model) sees it.
    pumpkin_photos::batch(&ws.path("customers"), 10, 777, Farm::Other).unwrap();
    let asked = classify(&server, &ws.path("customers"));
    let log = ws.path("serving/inputs.jsonl");
    common::wait_until("the served inputs in the log", || {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() == asked
    });
    let monitored = format!(
        "let gourd = import \"gourd-std.ncl\" in\n(import \"loop.ncl\") & {{ stages = {{ served = gourd.steps.drift {{ reference = \"photos\", current = \"serving/inputs.jsonl\", model = \"models/best\", output = \"metrics/served-drift.json\", seed = 2 }} }} }}\n"
    );
    std::fs::rename(ws.path("gourd.ncl"), ws.path("loop.ncl")).unwrap();
    ws.write("gourd.ncl", &monitored);
    let watched = deliver_and_run(&ws, "watch what prod is asked");
    assert_eq!(watched["served"], "ran", "{watched:?}");
    assert_eq!(json(&ws, "metrics/served-drift.json")["drift"], true, "{}", ws.read("metrics/served-drift.json"));

    // Paler, larger pumpkins from another farm, delivered and labelled: drift,
    // so the deliveries join the training set; the retrained model beats the
    // champion on the holdout, prod takes it, and the server swaps to it.
    pumpkin_photos::batch(&ws.path("incoming/d3"), 20, 503, Farm::Other).unwrap();
    let shifted = deliver_and_run(&ws, "a delivery from another farm");
    for stage in DOWNSTREAM.iter().chain(&["drift", "admit"]) {
        assert_eq!(shifted[*stage], "ran", "{stage}: {shifted:?}");
    }
    let drift = json(&ws, "metrics/drift.json");
    assert_eq!(drift["drift"], true, "{drift}");
    assert_eq!(drift["columns"]["embedding"]["test"], "mmd");
    let manifest = json(&ws, "data/dataset/manifest.json");
    assert_eq!(manifest["train"].as_u64().unwrap() + manifest["test"].as_u64().unwrap(), 180 + 3 * 60);
    let retrained = json(&ws, "metrics/selection.json")["value"].as_f64().unwrap();
    assert!(retrained > champion, "{retrained} vs {champion}");
    assert_eq!(prod(&ws), "v0.0.2");
    common::wait_until("the server to swap to v0.0.2", || server.version("pumpkin") == "v0.0.2");
    // The chain is in lineage: the model back to the delivery.
    let lineage = ws.gourd(&["lineage", "models/best"]).success().stdout;
    for link in ["stage `admit`", "stage `drift`", "incoming", "stage `frozen`"] {
        assert!(lineage.contains(link), "{link} missing from\n{lineage}");
    }

    // The same trigger again runs nothing (the registry stage moves nothing).
    let again = deliver_and_run(&ws, "nothing new");
    assert_eq!(ran(&again), ["publish"], "{again:?}");
    assert_eq!(json(&ws, "registry/pumpkin.json")["registered"], false);

    // Deliveries seen before are a cache hit, all the way down.
    std::fs::remove_dir_all(ws.path("incoming/d3")).unwrap();
    let withdrawn = deliver_and_run(&ws, "the other farm's delivery withdrawn");
    assert_eq!(withdrawn["drift"], "restored", "{withdrawn:?}");
    for stage in &DOWNSTREAM[..6] {
        assert_eq!(withdrawn[*stage], "restored", "{stage}: {withdrawn:?}");
    }
    assert_eq!(prod(&ws), "v0.0.2", "bytes registered before move nothing");

    // A retrained model that is worse is registered, not promoted: the
    // champion keeps prod.
    pumpkin_photos::batch(&ws.path("incoming/d3"), 20, 503, Farm::Other).unwrap();
    let careless =
        ws.read("loop.ncl").replace("epochs = 8", "epochs = 1").replace("[0.004, 0.0015]", "[0.00002, 0.00001]");
    assert_ne!(careless, ws.read("loop.ncl"));
    ws.write("loop.ncl", &careless);
    let worse = deliver_and_run(&ws, "a careless change of the training");
    for stage in ["encoder", "train-0", "train-1", "select", "publish"] {
        assert_eq!(worse[stage], "ran", "{stage}: {worse:?}");
    }
    let receipt = json(&ws, "registry/pumpkin.json");
    assert_eq!(receipt["version"], "v0.0.3", "{receipt}");
    assert_eq!(receipt["stages"]["prod"]["outcome"], "refused", "{receipt}");
    assert_eq!(prod(&ws), "v0.0.2");
    classify(&server, &ws.path("incoming/d1"));
    assert_eq!(server.version("pumpkin"), "v0.0.2", "the champion keeps serving");

    // The report shows drift run by run, and which version held prod when.
    ws.gourd(&["report", "-o", "report.html"]).success();
    let report = ws.read("report.html");
    let over_time = &report[report.find("Metrics over time").expect("a metrics-over-time section")..];
    assert!(
        over_time.contains("metrics&#x2f;drift.json") || over_time.contains("metrics/drift.json"),
        "no drift over time"
    );
    assert!(report.contains("Who held each stage"), "no stage history");
    assert!(report.contains("v0.0.3"), "the refused version is listed");
}
