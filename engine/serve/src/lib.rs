//! A model as a prediction service over HTTP:
//!
//! - the Open Inference Protocol (KServe V2) over HTTP/JSON: `/v2/health/*`,
//!   `/v2`, `/v2/models/{name}[/versions/{version}][/ready|/infer]`;
//! - MLflow's scoring protocol: `POST /invocations`, `GET /ping`, `/health`,
//!   `/version`;
//! - `GET /metrics` in the Prometheus text format.
//!
//! Requests go through a bounded queue to one inference thread, which groups
//! whatever is queued (up to `max_batch_size` rows, waiting at most
//! `max_queue_delay` after the first) into one batch, with Triton's
//! semantics. A full queue answers 503 at once; a request that waits past
//! its timeout answers 504. A new model version is loaded beside the one
//! serving and takes over between two batches: no request fails. SIGTERM or
//! Ctrl-C stop accepting, finish the requests in flight, and return.
//!
//! This crate knows nothing of libtorch: the model is an [`Engine`], and
//! image files become model inputs through [`Images`] (both implemented by
//! the step binary on gourd's built-in steps).

mod batcher;
mod http;
mod log;
mod metrics;
mod protocol;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

pub use log::{LOG_FILE, image_fields, line as log_line};

/// What a loaded model is and takes.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Served under this name (`/v2/models/{name}`).
    pub name: String,
    /// Which version answers (a registry version, or a digest's prefix).
    pub version: String,
    /// One input row's shape, channels first (`[3, 32, 32]`).
    pub input: Vec<i64>,
    /// The class names, in the order of the model's scores.
    pub labels: Vec<String>,
}

impl ModelInfo {
    /// Values in one input row.
    pub fn row_len(&self) -> usize {
        self.input.iter().product::<i64>().max(0) as usize
    }

    /// The side an image is resized to, for a `[3, size, size]` input.
    pub fn image_size(&self) -> Option<u32> {
        match self.input.as_slice() {
            [3, h, w] if h == w && *h > 0 => u32::try_from(*h).ok(),
            _ => None,
        }
    }
}

/// One batch's results.
#[derive(Debug, Default)]
pub struct Prediction {
    /// `n × classes` probabilities, row-major.
    pub probabilities: Vec<f32>,
    /// The rows' penultimate-layer embeddings, `n × dim`, when the model has one.
    pub embeddings: Option<(usize, Vec<f32>)>,
}

/// A loaded model. Runs on the inference thread only.
pub trait Engine: Send + 'static {
    fn info(&self) -> &ModelInfo;
    /// Runs `n` rows (`x` holds `n × info().row_len()` values).
    fn infer(&mut self, x: &[f32], n: usize) -> Result<Prediction, String>;
}

/// An image as a model input, with what the input log records of it.
#[derive(Debug)]
pub struct Decoded {
    /// The model's input: channels first, preprocessed as in training.
    pub x: Vec<f32>,
    pub width: u32,
    pub height: u32,
    /// Mean of the red, green and blue channels of the original pixels, in 0..1.
    pub rgb_mean: [f32; 3],
    /// Their standard deviation over all pixels and channels (contrast).
    pub contrast: f32,
}

/// Images to model inputs, through the preprocessing the model was trained with.
pub trait Images: Send + Sync + 'static {
    /// An image file's bytes (PNG, JPEG).
    fn decode(&self, bytes: &[u8], size: u32) -> Result<Decoded, String>;
    /// Raw 8-bit RGB pixels, `height × width × 3`.
    fn pixels(&self, rgb: Vec<u8>, width: u32, height: u32, size: u32) -> Result<Decoded, String>;
}

/// Where the input log goes (see docs/serving.md, "The input log").
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub dir: PathBuf,
    /// A file is rotated when it passes this size.
    pub max_bytes: u64,
    /// Rotated files kept besides the current one.
    pub keep: usize,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub host: String,
    pub port: u16,
    /// Most rows one batch holds (1: no batching).
    pub max_batch_size: usize,
    /// How long the first request of a batch may wait for others.
    pub max_queue_delay: Duration,
    /// Requests waiting at most; more get 503.
    pub queue_size: usize,
    /// A request still waiting after this gets 504.
    pub timeout: Duration,
    pub max_body_bytes: usize,
    /// Most rows in one request.
    pub max_request_rows: usize,
    pub log: Option<LogOptions>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            host: "127.0.0.1".into(),
            port: 8080,
            max_batch_size: 32,
            max_queue_delay: Duration::ZERO,
            queue_size: 256,
            timeout: Duration::from_secs(30),
            max_body_bytes: 32 << 20,
            max_request_rows: 256,
            log: None,
        }
    }
}

#[derive(Debug)]
pub enum ServeError {
    Bind(String, std::io::Error),
    Io(std::io::Error),
    Config(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Bind(address, err) => write!(f, "cannot listen on {address}: {err}"),
            ServeError::Io(err) => write!(f, "{err}"),
            ServeError::Config(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<std::io::Error> for ServeError {
    fn from(err: std::io::Error) -> ServeError {
        ServeError::Io(err)
    }
}

/// Serves `engine` until SIGTERM or Ctrl-C. `swaps` brings new versions of
/// the model, loaded already; `on_ready` is told the address once the
/// server listens (port 0 picks a free one).
pub fn serve(
    options: Options,
    engine: Box<dyn Engine>,
    images: Arc<dyn Images>,
    swaps: Option<Receiver<Box<dyn Engine>>>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if options.max_batch_size == 0 || options.queue_size == 0 || options.max_request_rows == 0 {
        return Err(ServeError::Config(
            "the batch size, the queue size and the rows per request must be at least 1".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).min(4))
        .thread_name("gourd-serve-http")
        .enable_all()
        .build()?;
    runtime.block_on(http::run(options, engine, images, swaps, on_ready))
}
