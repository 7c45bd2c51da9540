//! The server over real HTTP on loopback, with a small model written in
//! Rust (the libtorch model is tested end to end in tests/e2e/serve.rs):
//! the protocol, bad input, the queue, timeouts, batching, hot swap, metrics
//! and the input log.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use gourd_serve::{Decoded, Engine, Images, LogOptions, ModelInfo, Options, Prediction};
use serde_json::{Value, json};

/// Scores each row by its mean `m`: softmax of `[-m, 1 - |m|, m]`, so a dark
/// row is `low`, a grey one `mid`, a bright one `high`. Its embedding is `[m, m * scale]`.
struct MeanModel {
    info: ModelInfo,
    scale: f32,
    batches: Arc<Mutex<Vec<usize>>>,
    gate: Option<Arc<Gate>>,
}

/// Holds inference until opened, and says when a batch is waiting on it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
    waiting: Mutex<usize>,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }
    fn pass(&self) {
        *self.waiting.lock().unwrap() += 1;
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
    fn waiting(&self) -> usize {
        *self.waiting.lock().unwrap()
    }
}

fn info(version: &str) -> ModelInfo {
    ModelInfo {
        name: "toy".into(),
        version: version.into(),
        input: vec![3, 2, 2],
        labels: vec!["low".into(), "mid".into(), "high".into()],
    }
}

impl MeanModel {
    fn new(version: &str) -> MeanModel {
        MeanModel { info: info(version), scale: 1.0, batches: Default::default(), gate: None }
    }
}

impl Engine for MeanModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn infer(&mut self, x: &[f32], n: usize) -> Result<Prediction, String> {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        self.batches.lock().unwrap().push(n);
        let len = self.info.row_len();
        let mut probabilities = Vec::new();
        let mut embeddings = Vec::new();
        for row in x.chunks(len) {
            let m = row.iter().sum::<f32>() / len as f32;
            let e = [(-m).exp(), (1.0 - m.abs()).exp(), m.exp()];
            let total: f32 = e.iter().sum();
            probabilities.extend(e.iter().map(|v| v / total));
            embeddings.extend([m, m * self.scale]);
        }
        Ok(Prediction { probabilities, embeddings: Some((2, embeddings)) })
    }
}

/// This server takes no image files: it answers that, as any decoder
/// failure is answered.
struct NoImages;

impl Images for NoImages {
    fn decode(&self, _: &[u8], _: u32) -> Result<Decoded, String> {
        Err("this test server reads no image files".into())
    }
    fn pixels(&self, rgb: Vec<u8>, width: u32, height: u32, size: u32) -> Result<Decoded, String> {
        // Nearest-neighbour to size × size, channels first, in 0..1.
        let mut x = vec![0f32; 3 * (size * size) as usize];
        for c in 0..3 {
            for y in 0..size {
                for xx in 0..size {
                    let sy = y * height / size;
                    let sx = xx * width / size;
                    x[(c * size * size + y * size + xx) as usize] =
                        f32::from(rgb[((sy * width + sx) * 3 + c) as usize]) / 255.0;
                }
            }
        }
        let mean = |c: usize| {
            rgb.iter().skip(c).step_by(3).map(|&v| f32::from(v) / 255.0).sum::<f32>() / (width * height) as f32
        };
        Ok(Decoded { x, width, height, rgb_mean: [mean(0), mean(1), mean(2)], contrast: 0.0 })
    }
}

struct Server {
    address: SocketAddr,
    swaps: Option<SyncSender<Box<dyn Engine>>>,
}

fn start(options: Options, engine: MeanModel, with_swaps: bool) -> Server {
    type Swaps = (Option<SyncSender<Box<dyn Engine>>>, Option<Receiver<Box<dyn Engine>>>);
    let (swaps, receiver): Swaps = if with_swaps {
        let (s, r) = sync_channel(1);
        (Some(s), Some(r))
    } else {
        (None, None)
    };
    let (tx, rx) = sync_channel(1);
    std::thread::spawn(move || {
        let options = Options { port: 0, ..options };
        if let Err(err) = gourd_serve::serve(options, Box::new(engine), Arc::new(NoImages), receiver, |address| {
            tx.send(address).unwrap();
        }) {
            panic!("serve: {err}");
        }
    });
    Server { address: rx.recv_timeout(Duration::from_secs(10)).unwrap(), swaps }
}

struct Reply {
    status: u16,
    body: String,
    headers: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error in {}", self.body)).to_string()
    }
}

fn http(address: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply { status, body: body.to_string(), headers: head.to_string() }
}

fn get(server: &Server, path: &str) -> Reply {
    http(server.address, "GET", path, b"")
}

fn post(server: &Server, path: &str, body: &Value) -> Reply {
    http(server.address, "POST", path, body.to_string().as_bytes())
}

fn rows(values: &[f32]) -> Value {
    // One row per value, every element of the row that value.
    let data: Vec<f32> = values.iter().flat_map(|&v| std::iter::repeat_n(v, 12)).collect();
    json!({ "inputs": [{ "name": "input", "shape": [values.len(), 3, 2, 2], "datatype": "FP32", "data": data }] })
}

#[test]
fn answers_the_open_inference_protocol() {
    let server = start(Options::default(), MeanModel::new("v1"), false);
    assert_eq!(get(&server, "/v2/health/live").json(), json!({ "live": true }));
    assert_eq!(get(&server, "/v2/health/ready").json(), json!({ "ready": true }));
    assert_eq!(get(&server, "/v2").json()["name"], "gourd");
    let meta = get(&server, "/v2/models/toy").json();
    assert_eq!(meta["versions"], json!(["v1"]));
    assert_eq!(meta["inputs"][0], json!({ "name": "input", "datatype": "FP32", "shape": [-1, 3, 2, 2] }));
    assert_eq!(get(&server, "/v2/models/toy/versions/v1/ready").json()["ready"], true);
    assert_eq!(get(&server, "/v2/models/toy/versions/v9").status, 404);
    assert_eq!(get(&server, "/v2/models/other").status, 404);

    let mut request = rows(&[-2.0, 0.0, 3.0]);
    request["id"] = json!("abc");
    let reply = post(&server, "/v2/models/toy/infer", &request);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["id"], "abc");
    assert_eq!(answer["model_name"], "toy");
    assert_eq!(answer["model_version"], "v1");
    let outputs = answer["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["name"], "probabilities");
    assert_eq!(outputs[0]["shape"], json!([3, 3]));
    let p: Vec<f64> = outputs[0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let expected = |m: f64| {
        let e = [(-m).exp(), (1.0 - m.abs()).exp(), m.exp()];
        let t: f64 = e.iter().sum();
        e.map(|v| v / t)
    };
    for (i, m) in [-2.0, 0.0, 3.0].into_iter().enumerate() {
        for (j, want) in expected(m).into_iter().enumerate() {
            assert!((p[i * 3 + j] - want).abs() < 1e-5, "row {i}: {p:?}");
        }
    }
    assert_eq!(
        outputs[1],
        json!({ "name": "label", "datatype": "BYTES", "shape": [3], "data": ["low", "mid", "high"] })
    );

    // Nested data is the same tensor; asking for one output gives that one.
    let nested = json!({ "inputs": [{ "name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32",
        "data": [[[[1, 1], [1, 1]], [[1, 1], [1, 1]], [[1, 1], [1, 1]]]] }], "outputs": [{ "name": "label" }] });
    let answer = post(&server, "/v2/models/toy/versions/v1/infer", &nested).json();
    assert_eq!(answer["outputs"], json!([{ "name": "label", "datatype": "BYTES", "shape": [1], "data": ["high"] }]));

    // UINT8 pixels go through the model's image preprocessing.
    let pixels: Vec<u8> = (0..4 * 4 * 3).map(|_| 255).collect();
    let uint8 = json!({ "inputs": [{ "name": "input", "shape": [1, 4, 4, 3], "datatype": "UINT8", "data": pixels }] });
    let reply = post(&server, "/v2/models/toy/infer", &uint8);
    assert_eq!(reply.json()["outputs"][1]["data"], json!(["high"]), "{}", reply.body);
}

#[test]
fn answers_mlflow_clients() {
    let server = start(Options::default(), MeanModel::new("v1"), false);
    assert_eq!(get(&server, "/ping").status, 200);
    assert_eq!(get(&server, "/health").status, 200);
    let row = |v: f32| json!([[[v, v], [v, v]], [[v, v], [v, v]], [[v, v], [v, v]]]);
    for body in [
        json!({ "instances": [row(-3.0), row(4.0)] }),
        json!({ "inputs": [row(-3.0), row(4.0)] }),
        json!({ "inputs": { "input": [row(-3.0), row(4.0)] } }),
    ] {
        let reply = post(&server, "/invocations", &body);
        assert_eq!(reply.status, 200, "{body}: {}", reply.body);
        let predictions = reply.json()["predictions"].clone();
        assert_eq!(predictions[0]["label"], "low");
        assert_eq!(predictions[1]["label"], "high");
        assert_eq!(predictions[1]["probabilities"].as_array().unwrap().len(), 3);
    }
    let reply = post(&server, "/invocations", &json!({ "dataframe_split": { "columns": ["a"], "data": [[1]] } }));
    assert_eq!(reply.status, 400);
    assert!(reply.error().contains("instances"), "{}", reply.body);
    let reply = post(&server, "/invocations", &json!({ "instances": [[1, 2, 3]] }));
    assert_eq!(reply.status, 400);
    assert!(reply.error().contains("instance 0 has 3 values"), "{}", reply.body);
}

#[test]
fn bad_requests_get_400_naming_the_problem() {
    let options = Options { max_body_bytes: 4096, max_request_rows: 4, ..Options::default() };
    let server = start(options, MeanModel::new("v1"), false);
    let infer = |body: &[u8]| http(server.address, "POST", "/v2/models/toy/infer", body);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (b"".to_vec(), "not valid JSON"),
        (b"{\"inputs\": 3}".to_vec(), "expected fields"),
        (json!({ "inputs": [] }).to_string().into_bytes(), "`inputs` is empty"),
        (json!({ "inputs": [{ "name": "pixels", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": vec![0; 12] }] }).to_string().into_bytes(), "no input named `pixels`"),
        (json!({ "inputs": [{ "name": "input", "shape": [1, 3, 4, 4], "datatype": "FP32", "data": vec![0; 48] }] }).to_string().into_bytes(), "does not fit the model's input"),
        (json!({ "inputs": [{ "name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": vec![0; 11] }] }).to_string().into_bytes(), "holds 12 values, and `data` has 11"),
        (json!({ "inputs": [{ "name": "input", "shape": [1, 3, 2, 2], "datatype": "INT64", "data": vec![0; 12] }] }).to_string().into_bytes(), "datatype INT64 is not taken"),
        (json!({ "inputs": [{ "name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": vec![true; 12] }] }).to_string().into_bytes(), "holds booleans"),
        (json!({ "inputs": [{ "name": "input", "shape": [1, 2, 2, 3], "datatype": "UINT8", "data": vec![300; 12] }] }).to_string().into_bytes(), "from 0 to 255"),
        (json!({ "inputs": [{ "name": "input", "shape": [1], "datatype": "BYTES", "data": ["***"] }] }).to_string().into_bytes(), "element 0 is not base64"),
        (json!({ "inputs": [{ "name": "input", "shape": [1], "datatype": "BYTES", "data": ["aGVsbG8="] }] }).to_string().into_bytes(), "element 0 is not an image"),
        (json!({ "inputs": [{ "name": "input", "shape": [5, 3, 2, 2], "datatype": "FP32", "data": vec![0; 60] }] }).to_string().into_bytes(), "at most 4 are taken"),
        (json!({ "inputs": [{ "name": "input", "shape": [-1, 3, 2, 2], "datatype": "FP32", "data": vec![0; 12] }] }).to_string().into_bytes(), "negative"),
        (json!({ "inputs": [{ "name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": vec![0; 12] }], "outputs": [{ "name": "logits" }] }).to_string().into_bytes(), "no output named `logits`"),
        (vec![b' '; 5000], "too large"),
    ];
    for (body, expected) in cases {
        let reply = infer(&body);
        assert_eq!(reply.status, 400, "{}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]), reply.body);
        assert!(reply.headers.to_ascii_lowercase().contains("content-type: application/json"), "{}", reply.headers);
        let error = reply.error();
        assert!(error.contains(expected), "expected `{expected}` in `{error}`");
    }
    // The server is still there, and counted the errors.
    assert_eq!(post(&server, "/v2/models/toy/infer", &rows(&[1.0])).status, 200);
    let metrics = get(&server, "/metrics").body;
    assert!(metrics.contains("gourd_serve_errors_total{endpoint=\"infer\",code=\"400\"} 16"), "{metrics}");
    assert_eq!(get(&server, "/nowhere").status, 404);
    assert_eq!(http(server.address, "DELETE", "/v2/models/toy/infer", b"").status, 405);
}

#[test]
fn wrong_shapes_of_body_and_names_are_named() {
    let server = start(Options::default(), MeanModel::new("v1"), false);
    for (path, body, expected) in [
        ("/v2/models/toy/infer", "[]", "not a JSON object"),
        ("/invocations", "null", "not a JSON object"),
        (
            "/invocations",
            r#"{"inputs": {"pixels": [[1, 2]]}}"#,
            "`inputs` names the tensor `pixels`; the model's input is `input`",
        ),
    ] {
        let reply = http(server.address, "POST", path, body.as_bytes());
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.error().contains(expected), "{body}: {}", reply.body);
        assert!(!reply.error().contains("struct"), "{body}: {}", reply.body);
    }
    // An answer always has an `id`: a request without one is given one.
    let answer = post(&server, "/v2/models/toy/infer", &rows(&[1.0])).json();
    let id = answer["id"].as_str().unwrap_or_else(|| panic!("{answer}"));
    assert!(id.len() == 36 && id.as_bytes()[14] == b'4', "{id}");
    assert_ne!(post(&server, "/v2/models/toy/infer", &rows(&[1.0])).json()["id"], id);
}

/// A client that stops sending its body holds nothing past the request
/// timeout (a stopping server waits for it); a declared length past the
/// limit is refused before any of the body is read.
#[test]
fn a_stalled_body_is_answered_408_at_the_request_timeout() {
    let options = Options { timeout: Duration::from_millis(300), max_body_bytes: 4096, ..Options::default() };
    let server = start(options, MeanModel::new("v1"), false);
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = "POST /v2/models/toy/infer HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{\"in";
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = [0u8; 4096];
    let read = stream.read(&mut raw).unwrap();
    let reply = String::from_utf8_lossy(&raw[..read]).into_owned();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("did not arrive within the request timeout (300 ms)"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(15), "answered only after {:?}", started.elapsed());

    let mut stream = TcpStream::connect(server.address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999\r\n\r\n").unwrap();
    let read = stream.read(&mut raw).unwrap();
    let reply = String::from_utf8_lossy(&raw[..read]).into_owned();
    assert!(reply.starts_with("HTTP/1.1 400") && reply.contains("too large"), "{reply}");
}

/// Waits until `done` holds, or fails after 30 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_full_queue_answers_503_at_once_and_a_late_request_504() {
    let gate = Arc::new(Gate::default());
    let model = MeanModel { gate: Some(gate.clone()), ..MeanModel::new("v1") };
    let options = Options { max_batch_size: 1, queue_size: 2, timeout: Duration::from_secs(30), ..Options::default() };
    let server = start(options, model, false);
    let address = server.address;
    let send = move || {
        std::thread::spawn(move || http(address, "POST", "/v2/models/toy/infer", rows(&[1.0]).to_string().as_bytes()))
    };
    let first = send();
    wait_for("the first batch to reach the model", || gate.waiting() == 1);
    let queued: Vec<_> = (0..2).map(|_| send()).collect();
    wait_for("two requests in the queue", || get(&server, "/metrics").body.contains("gourd_serve_queue_depth 2"));
    let refused = post(&server, "/v2/models/toy/infer", &rows(&[1.0]));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.error().contains("queue is full"), "{}", refused.body);
    assert!(refused.headers.to_ascii_lowercase().contains("retry-after"), "{}", refused.headers);
    gate.open();
    assert_eq!(first.join().unwrap().status, 200);
    for request in queued {
        assert_eq!(request.join().unwrap().status, 200);
    }

    // A request that waits past its timeout is answered 504, not run.
    let gate = Arc::new(Gate::default());
    let batches = Arc::new(Mutex::new(Vec::new()));
    let model = MeanModel { gate: Some(gate.clone()), batches: batches.clone(), ..MeanModel::new("v1") };
    let options = Options { max_batch_size: 1, timeout: Duration::from_millis(300), ..Options::default() };
    let server = start(options, model, false);
    let address = server.address;
    let send = move || {
        std::thread::spawn(move || http(address, "POST", "/v2/models/toy/infer", rows(&[1.0]).to_string().as_bytes()))
    };
    let first = send();
    wait_for("the first batch to reach the model", || gate.waiting() == 1);
    let late = send();
    let late = late.join().unwrap();
    assert_eq!(late.status, 504, "{}", late.body);
    assert!(late.error().contains("timeout"), "{}", late.body);
    gate.open();
    first.join().unwrap();
    // Only the first ran: the late one was dropped when its turn came.
    wait_for("the queue to drain", || get(&server, "/metrics").body.contains("gourd_serve_queue_depth 0"));
    assert_eq!(*batches.lock().unwrap(), vec![1]);
}

#[test]
fn requests_waiting_together_run_as_one_batch() {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let model = MeanModel { batches: batches.clone(), ..MeanModel::new("v1") };
    let options = Options { max_batch_size: 4, max_queue_delay: Duration::from_millis(500), ..Options::default() };
    let server = start(options, model, false);
    let address = server.address;
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                http(address, "POST", "/v2/models/toy/infer", rows(&[i as f32 - 4.0]).to_string().as_bytes())
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let reply = client.join().unwrap();
        assert_eq!(reply.status, 200);
        // Each request gets its own rows back, whatever batch it ran in.
        let want = if i < 4 {
            "low"
        } else if i == 4 {
            "mid"
        } else {
            "high"
        };
        assert_eq!(reply.json()["outputs"][1]["data"], json!([want]), "request {i}");
    }
    let batches = batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 8);
    assert!(batches.iter().all(|&n| n <= 4), "{batches:?}");
    assert!(batches.len() < 8, "no two requests shared a batch: {batches:?}");
    let metrics = get(&server, "/metrics").body;
    assert!(metrics.contains(&format!("gourd_serve_batch_size_count {}", batches.len())), "{metrics}");
}

#[test]
fn a_new_version_takes_over_under_load_without_a_failed_request() {
    let server = start(Options { max_batch_size: 4, ..Options::default() }, MeanModel::new("v1"), true);
    let address = server.address;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let reply = http(address, "POST", "/v2/models/toy/infer", rows(&[2.0]).to_string().as_bytes());
                    assert_eq!(reply.status, 200, "{}", reply.body);
                    seen.push(reply.json()["model_version"].as_str().unwrap().to_string());
                }
                seen
            })
        })
        .collect();
    wait_for("some answers from v1", || {
        get(&server, "/metrics").body.contains("gourd_serve_batch_size_count")
            && !get(&server, "/metrics").body.contains("gourd_serve_batch_size_count 0")
    });
    server.swaps.as_ref().unwrap().send(Box::new(MeanModel::new("v2"))).unwrap();
    wait_for("v2 to answer", || get(&server, "/v2/models/toy").json()["versions"] == json!(["v2"]));
    // Let v2 answer a while under the same load.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.join().unwrap());
    }
    let first_v2 = all.iter().position(|v| v == "v2").expect("no answer from v2");
    assert!(all.iter().any(|v| v == "v1"), "no answer from v1");
    assert!(first_v2 > 0);
    let metrics = get(&server, "/metrics").body;
    assert!(metrics.contains("gourd_serve_model{name=\"toy\",version=\"v2\"} 1"), "{metrics}");
    assert!(metrics.contains("gourd_serve_model{name=\"toy\",version=\"v1\"} 0"), "{metrics}");
    assert!(metrics.contains("gourd_serve_model_swaps_total 1"), "{metrics}");
    assert!(!metrics.contains("code=\"5"), "a request failed: {metrics}");
}

#[test]
fn the_input_log_records_each_row_for_the_drift_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inputs");
    let options =
        Options { log: Some(LogOptions { dir: dir.clone(), max_bytes: 1 << 20, keep: 3 }), ..Options::default() };
    let server = start(options, MeanModel { scale: 10.0, ..MeanModel::new("v7") }, false);
    let mut request = rows(&[-1.0, 2.0]);
    request["id"] = json!("r-1");
    assert_eq!(post(&server, "/v2/models/toy/infer", &request).status, 200);
    let pixels: Vec<u8> = (0..2 * 2 * 3).map(|i| if i % 3 == 0 { 255 } else { 0 }).collect();
    let uint8 = json!({ "inputs": [{ "name": "input", "shape": [1, 2, 2, 3], "datatype": "UINT8", "data": pixels }] });
    assert_eq!(post(&server, "/v2/models/toy/infer", &uint8).status, 200);
    let file = dir.join(gourd_serve::LOG_FILE);
    let mut lines = Vec::new();
    wait_for("three log lines", || {
        lines = std::fs::read_to_string(&file).unwrap_or_default().lines().map(str::to_string).collect();
        lines.len() == 3
    });
    let rows: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows[0]["request"], "r-1");
    assert_eq!(rows[0]["version"], "v7");
    assert_eq!(rows[0]["label"], "low");
    assert_eq!(rows[1]["label"], "high");
    assert!((rows[0]["mean_0"].as_f64().unwrap() + 1.0).abs() < 1e-6, "{}", rows[0]);
    assert!((rows[1]["std_2"].as_f64().unwrap()).abs() < 1e-6, "{}", rows[1]);
    assert!((rows[1]["emb_1"].as_f64().unwrap() - 20.0).abs() < 1e-4, "{}", rows[1]);
    assert!(rows[0]["confidence"].as_f64().unwrap() > 0.5);
    // An image row records the colour of the original pixels.
    assert_eq!(rows[2]["red"], 1.0);
    assert_eq!(rows[2]["green"], 0.0);
    assert_eq!(rows[2]["width"], 2.0);
    assert!(rows[2].get("mean_0").is_none());
}
