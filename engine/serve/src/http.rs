//! The HTTP routes, and serving until a signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::batcher::{self, Answer, Failure, Job, Queue, Refused, Settings};
use crate::log::Log;
use crate::metrics::Metrics;
use crate::protocol::{self, BadRequest, INPUT, LABEL, PROBABILITIES, Rows};
use crate::{Engine, Images, ModelInfo, Options, ServeError};

struct Served {
    options: Options,
    queue: Queue,
    images: Arc<dyn Images>,
    metrics: Arc<Metrics>,
    log: Option<Log>,
    ready: AtomicBool,
}

type Shared = Arc<Served>;

pub async fn run(
    options: Options,
    engine: Box<dyn Engine>,
    images: Arc<dyn Images>,
    swaps: Option<Receiver<Box<dyn Engine>>>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let address = format!("{}:{}", options.host, options.port);
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|e| ServeError::Bind(address.clone(), e))?;
    let metrics = Arc::new(Metrics::new());
    let (log, log_thread) = match &options.log {
        Some(log_options) => {
            let (log, thread) = Log::start(log_options.clone(), metrics.clone())
                .map_err(|e| ServeError::Config(format!("the input log in `{}`: {e}", log_options.dir.display())))?;
            (Some(log), Some(thread))
        }
        None => (None, None),
    };
    let settings = Settings {
        max_batch_size: options.max_batch_size,
        max_queue_delay: options.max_queue_delay,
        queue_size: options.queue_size,
    };
    let (queue, inference) = batcher::start(settings, engine, swaps, metrics.clone());
    let served = Arc::new(Served { options, queue, images, metrics, log, ready: AtomicBool::new(true) });
    let app = routes(served.clone());
    on_ready(listener.local_addr()?);
    let stopping = served.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            signal().await;
            stopping.ready.store(false, Ordering::SeqCst);
            eprintln!("serve: stopping; finishing the requests in flight");
        })
        .await?;
    // Every connection is closed: the last handle on the queue goes, the
    // inference thread finishes what is queued and stops, then the log.
    drop(served);
    tokio::task::spawn_blocking(move || {
        let _ = inference.join();
        if let Some(thread) = log_thread {
            let _ = thread.join();
        }
    })
    .await
    .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
    Ok(())
}

async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn routes(served: Shared) -> Router {
    Router::new()
        .route("/v2/health/live", get(|| async { json_response(StatusCode::OK, &json!({ "live": true })) }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_version_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_version_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .route("/invocations", post(invocations))
        .route("/ping", get(ping))
        .route("/health", get(ping))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /v2 and /invocations") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here") })
        .with_state(served)
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, serde_json::to_vec(value).unwrap_or_default()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

async fn server_ready(State(served): State<Shared>) -> Response {
    let ready = served.ready.load(Ordering::SeqCst);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &json!({ "ready": ready }))
}

async fn ping(State(served): State<Shared>) -> Response {
    if served.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "\n").into_response()
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, "stopping")
    }
}

async fn server_metadata() -> Response {
    json_response(StatusCode::OK, &json!({ "name": "gourd", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }))
}

/// The model serving now, if `name` (and `version`) name it; else the 404.
#[allow(clippy::result_large_err)]
fn find(served: &Served, name: &str, version: Option<&str>) -> Result<Arc<ModelInfo>, Response> {
    let info = served.queue.model();
    if info.name != name {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("there is no model named `{name}`; this server serves `{}`", info.name),
        ));
    }
    if let Some(version) = version.filter(|v| *v != info.version) {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("version `{version}` of `{name}` is not loaded; version `{}` answers", info.version),
        ));
    }
    Ok(info)
}

fn metadata(info: &ModelInfo) -> Value {
    let mut shape = vec![-1];
    shape.extend(&info.input);
    json!({
        "name": info.name,
        "versions": [info.version],
        "platform": "gourd_libtorch",
        "inputs": [{ "name": INPUT, "datatype": "FP32", "shape": shape }],
        "outputs": [
            { "name": PROBABILITIES, "datatype": "FP32", "shape": [-1, info.labels.len()] },
            { "name": LABEL, "datatype": "BYTES", "shape": [-1] },
        ],
        "parameters": { "labels": info.labels, "version": info.version },
    })
}

async fn model_metadata(State(served): State<Shared>, Path(name): Path<String>) -> Response {
    match find(&served, &name, None) {
        Ok(info) => json_response(StatusCode::OK, &metadata(&info)),
        Err(response) => response,
    }
}

async fn model_version_metadata(
    State(served): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match find(&served, &name, Some(&version)) {
        Ok(info) => json_response(StatusCode::OK, &metadata(&info)),
        Err(response) => response,
    }
}

fn readiness(served: &Served, name: &str, version: Option<&str>) -> Response {
    match find(served, name, version) {
        Ok(info) => {
            let ready = served.ready.load(Ordering::SeqCst);
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            json_response(status, &json!({ "name": info.name, "version": info.version, "ready": ready }))
        }
        Err(response) => response,
    }
}

async fn model_ready(State(served): State<Shared>, Path(name): Path<String>) -> Response {
    readiness(&served, &name, None)
}

async fn model_version_ready(State(served): State<Shared>, Path((name, version)): Path<(String, String)>) -> Response {
    readiness(&served, &name, Some(&version))
}

async fn metrics(State(served): State<Shared>) -> Response {
    let mut response = served.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Reads the body, at most `max_body_bytes` of it, by `deadline`: a client
/// that stops sending gets 408 then, and holds nothing (a stopping server
/// included) past it.
#[allow(clippy::result_large_err)]
async fn read_body(served: &Served, body: Body, deadline: Instant) -> Result<Bytes, Response> {
    let limit = served.options.max_body_bytes;
    let too_large =
        || error(StatusCode::BAD_REQUEST, &format!("the body is too large: at most {limit} bytes are taken"));
    // A declared length past the limit is refused before anything is read.
    if usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).map_or(true, |n| n > limit) {
        return Err(too_large());
    }
    match tokio::time::timeout_at(deadline.into(), axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!("the body did not arrive within the request timeout ({} ms)", served.options.timeout.as_millis()),
        )),
    }
}

/// Bodies past this size are decoded on a blocking thread, so that the
/// request timeout holds while they are.
const DECODE_INLINE_BYTES: usize = 64 << 10;

/// `decode(body)`, by `deadline`.
#[allow(clippy::result_large_err)]
async fn decode<T: Send + 'static>(
    served: &Served,
    body: Bytes,
    deadline: Instant,
    decode: impl FnOnce(&[u8]) -> Result<T, BadRequest> + Send + 'static,
) -> Result<T, Response> {
    let decoded = if body.len() <= DECODE_INLINE_BYTES {
        Ok(decode(&body))
    } else {
        match tokio::time::timeout_at(deadline.into(), tokio::task::spawn_blocking(move || decode(&body))).await {
            Ok(Ok(decoded)) => Ok(decoded),
            Ok(Err(_)) => return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "decoding the request failed")),
            Err(_) => Err(()),
        }
    };
    match decoded {
        _ if Instant::now() >= deadline => Err(timed_out(served)),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(BadRequest(message))) => Err(error(StatusCode::BAD_REQUEST, &message)),
        Err(()) => Err(timed_out(served)),
    }
}

fn timed_out(served: &Served) -> Response {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        &format!("no answer within the request timeout ({} ms)", served.options.timeout.as_millis()),
    )
}

/// Queues the rows and waits for their answer, until `deadline`.
async fn predict(served: &Served, rows: Rows, deadline: Instant) -> Result<Answer, Response> {
    let now = Instant::now();
    let (reply, answer) = oneshot::channel();
    let job = Job { x: rows.x, n: rows.n, enqueued: now, deadline, reply };
    match served.queue.submit(job, &served.metrics) {
        Ok(()) => {}
        Err(Refused::Full) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the queue is full ({} requests waiting); try again shortly", served.options.queue_size),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(response);
        }
        Err(Refused::Closed) => return Err(error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")),
    }
    match tokio::time::timeout_at((deadline + Duration::from_millis(100)).into(), answer).await {
        Ok(Ok(Ok(answer))) => Ok(answer),
        Ok(Ok(Err(Failure::Shape(message)))) => Err(error(StatusCode::BAD_REQUEST, &message)),
        Ok(Ok(Err(Failure::Model(message)))) => {
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, &format!("the model failed: {message}")))
        }
        Ok(Ok(Err(Failure::TimedOut))) | Err(_) => Err(timed_out(served)),
        Ok(Err(_)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")),
    }
}

fn labels_of(answer: &Answer) -> Vec<&str> {
    answer
        .probabilities
        .chunks(answer.classes.max(1))
        .map(|row| {
            let best = row.iter().enumerate().fold(0, |best, (i, p)| if *p > row[best] { i } else { best });
            answer.info.labels.get(best).map_or("?", String::as_str)
        })
        .collect()
}

async fn infer(State(served): State<Shared>, Path(name): Path<String>, body: Body) -> Response {
    timed(&served, "infer", infer_for(&served, name, None, body)).await
}

async fn infer_version(
    State(served): State<Shared>,
    Path((name, version)): Path<(String, String)>,
    body: Body,
) -> Response {
    timed(&served, "infer", infer_for(&served, name, Some(version), body)).await
}

async fn timed(served: &Served, endpoint: &'static str, work: impl Future<Output = Response>) -> Response {
    let started = Instant::now();
    let _in_flight = InFlight::new(&served.metrics);
    let response = work.await;
    served.metrics.answered(endpoint, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// Counts a request in flight until it is answered or its client goes.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a Metrics) -> InFlight<'a> {
        metrics.in_flight.inc();
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

async fn infer_for(served: &Served, name: String, version: Option<String>, body: Body) -> Response {
    let deadline = Instant::now() + served.options.timeout;
    let info = match find(served, &name, version.as_deref()) {
        Ok(info) => info,
        Err(response) => return response,
    };
    let body = match read_body(served, body, deadline).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (images, max_rows, model) = (served.images.clone(), served.options.max_request_rows, info.clone());
    let decoded = decode(served, body, deadline, move |body| protocol::infer(body, &model, images.as_ref(), max_rows));
    let request = match decoded.await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let stats = served.log.as_ref().map(|_| row_stats(&request.rows, info.input.first().copied().unwrap_or(1)));
    let n = request.rows.n;
    let answer = match predict(served, request.rows, deadline).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let labels = labels_of(&answer);
    let wants = |output: &str| request.outputs.as_ref().is_none_or(|o| o.iter().any(|w| w == output));
    let mut outputs = Vec::new();
    if wants(PROBABILITIES) {
        outputs.push(json!({
            "name": PROBABILITIES, "datatype": "FP32", "shape": [n, answer.classes], "data": answer.probabilities,
        }));
    }
    if wants(LABEL) {
        outputs.push(json!({ "name": LABEL, "datatype": "BYTES", "shape": [n], "data": labels }));
    }
    let mut response = json!({
        "model_name": answer.info.name,
        "model_version": answer.info.version,
        "outputs": outputs,
    });
    // The protocol's answer always has an `id`: the request's, or one made
    // for it (as KServe makes one).
    response["id"] = json!(request.id.clone().unwrap_or_else(new_request_id));
    if let (Some(log), Some(stats)) = (&served.log, stats) {
        log.append(log_lines(&answer, &labels, &stats, request.id.as_deref()));
    }
    json_response(StatusCode::OK, &response)
}

async fn invocations(State(served): State<Shared>, body: Body) -> Response {
    timed(&served, "invocations", invocations_for(&served, body)).await
}

async fn invocations_for(served: &Served, body: Body) -> Response {
    let deadline = Instant::now() + served.options.timeout;
    let info = served.queue.model();
    let body = match read_body(served, body, deadline).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (images, max_rows, model) = (served.images.clone(), served.options.max_request_rows, info.clone());
    let decoded =
        decode(served, body, deadline, move |body| protocol::scoring(body, &model, images.as_ref(), max_rows));
    let rows = match decoded.await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let stats = served.log.as_ref().map(|_| row_stats(&rows, info.input.first().copied().unwrap_or(1)));
    let answer = match predict(served, rows, deadline).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let labels = labels_of(&answer);
    let predictions: Vec<Value> = labels
        .iter()
        .zip(answer.probabilities.chunks(answer.classes.max(1)))
        .map(|(label, probabilities)| json!({ "label": label, "probabilities": probabilities }))
        .collect();
    if let (Some(log), Some(stats)) = (&served.log, stats) {
        log.append(log_lines(&answer, &labels, &stats, None));
    }
    json_response(StatusCode::OK, &json!({ "predictions": predictions }))
}

/// A request id in UUID v4 form, for a request that came without one.
fn new_request_id() -> String {
    let bits = (fastrand::u128(..) & !(0xf000 << 64) & !(0xc << 60)) | (0x4000 << 64) | (0x8 << 60);
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// What the input log records of one row besides the model's answer.
struct RowStats {
    fields: Vec<(String, f64)>,
}

/// Per row: for images, the size and colour of the original; for tensors,
/// each channel's mean and standard deviation.
fn row_stats(rows: &Rows, channels: i64) -> Vec<RowStats> {
    let per = rows.x.len().checked_div(rows.n).unwrap_or(0);
    let channels = (channels.max(1) as usize).min(per.max(1));
    (0..rows.n)
        .map(|i| {
            let fields = if let Some(Some(image)) = rows.images.get(i) {
                crate::log::image_fields(image.width, image.height, image.rgb_mean, image.contrast)
            } else {
                let mut fields = Vec::new();
                let row = &rows.x[i * per..(i + 1) * per];
                let plane = per / channels;
                for c in 0..channels {
                    let values = &row[c * plane..(c + 1) * plane];
                    let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / plane.max(1) as f64;
                    let var = values.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / plane.max(1) as f64;
                    fields.push((format!("mean_{c}"), mean));
                    fields.push((format!("std_{c}"), var.sqrt()));
                }
                fields
            };
            RowStats { fields }
        })
        .collect()
}

fn log_lines(answer: &Answer, labels: &[&str], stats: &[RowStats], id: Option<&str>) -> String {
    let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let mut out = String::new();
    for (i, row) in stats.iter().enumerate() {
        let mut line = serde_json::Map::new();
        line.insert("time".into(), json!(time));
        line.insert("model".into(), json!(answer.info.name));
        line.insert("version".into(), json!(answer.info.version));
        if let Some(id) = id {
            line.insert("request".into(), json!(id));
        }
        line.insert("label".into(), json!(labels[i]));
        let probabilities = &answer.probabilities[i * answer.classes..(i + 1) * answer.classes];
        let confidence = probabilities.iter().copied().fold(0f32, f32::max);
        line.insert("confidence".into(), json!(confidence));
        let embedding = answer.embeddings.as_ref().map(|(dim, e)| &e[i * dim..(i + 1) * dim]);
        out.push_str(&crate::log::line(line, &row.fields, embedding));
    }
    out
}
