//! `gourd serve` end to end, on the real libtorch (`--features torch`): the
//! pumpkin model answers the Open Inference Protocol and MLflow clients with
//! the `predict` step's labels, survives bad input, logs its inputs, follows
//! a registry stage with a hot swap under load, and finishes requests in
//! flight on SIGTERM.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use common::serving::{Server, http, image_files as bytes_request, post};
use common::{TestWorkspace, wait_until};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The pumpkin example, built: `models/best` and the `predict` step's labels
/// for the inbox, and `pumpkin` v0.0.1 in prod.
fn pumpkin() -> TestWorkspace {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pumpkin");
    let ws = TestWorkspace::new("");
    for file in ["gourd.ncl", "harvest.csv", ".gitignore"] {
        std::fs::copy(source.join(file), ws.path(file)).unwrap();
    }
    pumpkin_photos::generate(&ws.path("photos"), &pumpkin_photos::Options::default()).unwrap();
    for (label, seed) in [("good", 11), ("fine", 12), ("bad", 13)] {
        pumpkin_photos::one_more(&ws.path("inbox"), seed, &format!("{label}-delivery")).unwrap();
    }
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-q", "-m", "the pumpkin pipeline"]);
    run(&ws);
    ws
}

fn run(ws: &TestWorkspace) {
    let bin = Path::new(common::gourd_bin()).parent().unwrap().to_str().unwrap().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    ws.gourd_env(&["run"], &[("PATH", &path)]).success();
}

/// The inbox photos, sorted as the `predict` step lists them, and its labels.
fn inbox(ws: &TestWorkspace) -> (Vec<Vec<u8>>, Vec<String>) {
    let predictions: Value = serde_json::from_str(&ws.read("reports/inbox-predictions.json")).unwrap();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for p in predictions["predictions"].as_array().unwrap() {
        files.push(std::fs::read(ws.path(p["input"].as_str().unwrap())).unwrap());
        labels.push(p["label"].as_str().unwrap().to_string());
    }
    assert_eq!(files.len(), 3);
    (files, labels)
}

#[test]
fn the_pumpkin_model_answers_as_the_predict_step_does() {
    let ws = pumpkin();
    let (files, labels) = inbox(&ws);
    let log = ws.path("served-inputs");
    let server = Server::start(&ws, &["models/best", "--log-dir", log.to_str().unwrap()]);
    let address = server.address;
    assert!(server.stderr().contains("Serving `best` version"), "{}", server.stderr());

    // The Open Inference Protocol, image files as BYTES.
    let reply = post(address, "/v2/models/best/infer", &bytes_request(&files));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["model_name"], "best");
    assert_eq!(answer["outputs"][1]["data"], json!(labels));
    let meta = http(address, "GET", "/v2/models/best", b"").json();
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 3, 32, 32]));
    assert_eq!(answer["model_version"], meta["versions"][0]);

    // MLflow's /invocations, with both ways of sending an image.
    let body = json!({ "instances": [b64(&files[0]), { "b64": b64(&files[1]) }, b64(&files[2])] });
    let reply = post(address, "/invocations", &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got: Vec<String> = reply.json()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, labels);

    // UINT8 pixels of the same photo give its label.
    let image = image_rgb(&files[2]);
    let uint8 = json!({ "inputs": [{ "name": "input", "shape": [1, image.1, image.0, 3], "datatype": "UINT8", "data": image.2 }] });
    let reply = post(address, "/v2/models/best/infer", &uint8);
    assert_eq!(reply.json()["outputs"][1]["data"], json!([labels[2]]), "{}", reply.body);

    // Bad input is a 400 naming it, and the server answers on.
    let mut corrupt = files[0].clone();
    corrupt.truncate(corrupt.len() / 3);
    let reply = post(address, "/v2/models/best/infer", &bytes_request(&[files[0].clone(), corrupt]));
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["error"].as_str().unwrap().contains("element 1 is not an image"), "{}", reply.body);
    let reply = post(
        address,
        "/v2/models/best/infer",
        &json!({ "inputs": [{ "name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": vec![0.0; 192] }] }),
    );
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("[N, 3, 32, 32]"), "{}", reply.body);
    assert_eq!(post(address, "/v2/models/best/infer", &bytes_request(&files)).status, 200);

    // Every served row is in the input log, with its colour and embedding.
    let file = log.join("inputs.jsonl");
    let mut rows: Vec<Value> = Vec::new();
    wait_until("the input log", || {
        rows = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.len() == 3 + 3 + 1 + 3
    });
    assert_eq!(rows[0]["label"], labels[0].as_str());
    assert!(rows[0]["brightness"].as_f64().unwrap() > 0.0);
    assert!(rows[0]["emb_0"].is_number(), "{}", rows[0]);
    let metrics = http(address, "GET", "/metrics", b"").body;
    assert!(metrics.contains("gourd_serve_requests_total{endpoint=\"infer\",code=\"400\"} 2"), "{metrics}");

    // A second server on the same port: an environment error (exit 2) naming the address.
    let port = address.port().to_string();
    let taken = ws.gourd(&["serve", "models/best", "--port", &port]);
    assert_eq!(taken.code, 2, "{}", taken.stderr);
    assert!(taken.stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", taken.stderr);
}

/// Width, height and the RGB bytes of an image file.
fn image_rgb(file: &[u8]) -> (u32, u32, Vec<u8>) {
    let image = image::load_from_memory(file).unwrap().to_rgb8();
    (image.width(), image.height(), image.into_raw())
}

#[test]
fn sigterm_finishes_the_requests_in_flight() {
    let ws = pumpkin();
    let (files, labels) = inbox(&ws);
    // Batches wait up to 2 s for company: requests are in flight for a while.
    let mut server = Server::start(&ws, &["models/best", "--max-queue-delay-ms", "2000", "--max-batch-size", "64"]);
    let address = server.address;
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let body = bytes_request(&files[i..i + 1]);
            std::thread::spawn(move || post(address, "/v2/models/best/infer", &body))
        })
        .collect();
    wait_until("three requests in flight", || server.metric("gourd_serve_requests_in_flight") == 3.0);
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    for (i, client) in clients.into_iter().enumerate() {
        let reply = client.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["outputs"][1]["data"], json!([labels[i]]));
    }
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", server.stderr());
    assert!(server.stderr().contains("finishing the requests in flight"), "{}", server.stderr());
    assert!(TcpStream::connect(address).is_err(), "still listening after SIGTERM");
}

#[test]
fn a_registry_stage_is_followed_and_a_new_version_takes_over_under_load() {
    let ws = pumpkin();
    let (files, _) = inbox(&ws);
    // A second version, registered and staged but not in prod.
    let pipeline = ws
        .read("gourd.ncl")
        .replace("lr = [0.004, 0.0015]", "lr = [0.003, 0.0015]")
        .replace(r#"to = ["staging", "prod"]"#, r#"to = ["staging"]"#);
    ws.write("gourd.ncl", &pipeline);
    ws.git(&["commit", "-q", "-am", "a second model"]);
    run(&ws);
    let resolve = |reference: &str| ws.gourd(&["registry", "resolve", reference]).success().stdout;
    assert!(resolve("pumpkin@prod").starts_with("v0.0.1"));
    assert!(resolve("pumpkin@staging").starts_with("v0.0.2"));

    let server = Server::start(&ws, &["pumpkin@prod", "--poll", "0.2"]);
    let address = server.address;
    assert_eq!(http(address, "GET", "/v2/models/pumpkin", b"").json()["versions"], json!(["v0.0.1"]));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            let body = bytes_request(&files[i % 3..i % 3 + 1]);
            std::thread::spawn(move || {
                let mut versions = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let reply = post(address, "/v2/models/pumpkin/infer", &body);
                    assert_eq!(reply.status, 200, "{}", reply.body);
                    versions.push(reply.json()["model_version"].as_str().unwrap().to_string());
                }
                versions
            })
        })
        .collect();
    wait_until("answers under load", || server.metric("gourd_serve_batch_size_count") > 20.0);
    ws.gourd(&["registry", "promote", "pumpkin", "v0.0.2", "prod", "--force", "-m", "the new one"]).success();
    wait_until("v0.0.2 to answer", || server.version("pumpkin") == "v0.0.2");
    let answered = server.metric("gourd_serve_batch_size_count");
    wait_until("answers from v0.0.2 under load", || server.metric("gourd_serve_batch_size_count") > answered + 20.0);
    stop.store(true, Ordering::SeqCst);
    let versions: Vec<String> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert!(versions.iter().any(|v| v == "v0.0.1") && versions.iter().any(|v| v == "v0.0.2"), "{versions:?}");
    let metrics = http(address, "GET", "/metrics", b"").body;
    assert!(!metrics.contains("code=\"5"), "a request failed: {metrics}");
    assert!(metrics.contains("gourd_serve_model{name=\"pumpkin\",version=\"v0.0.2\"} 1"), "{metrics}");
    assert!(server.stderr().contains("`pumpkin@prod` moved from v0.0.1 to v0.0.2"), "{}", server.stderr());
}
