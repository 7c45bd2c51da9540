//! `gourd-step serve CONFIG`: the prediction service that `gourd serve`
//! starts (docs/serving.md). The model runs on libtorch in this process;
//! new versions arrive as JSON lines on stdin (`{"model": DIR, "version":
//! V}`), are loaded beside the one serving, and take over between batches.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use gourd_serve::{Decoded, Engine, Images, LogOptions, ModelInfo, Options, Prediction};
use gourd_torch::serving::{self, ServedModel};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    model: String,
    name: String,
    version: String,
    host: String,
    port: u16,
    max_batch_size: usize,
    max_queue_delay_us: u64,
    queue_size: usize,
    timeout_ms: u64,
    max_body_bytes: usize,
    max_request_rows: usize,
    log_dir: Option<String>,
    log_max_bytes: u64,
    log_keep: usize,
    threads: Option<i32>,
    cuda: bool,
    /// Read new versions from stdin.
    swaps: bool,
}

#[derive(Deserialize)]
struct Swap {
    model: String,
    version: String,
}

struct TorchEngine {
    model: ServedModel,
    info: ModelInfo,
    embeddings: bool,
}

impl TorchEngine {
    fn load(folder: &str, name: &str, version: &str, cuda: bool, embeddings: bool) -> Result<TorchEngine, String> {
        let model = ServedModel::load(folder, cuda).map_err(|e| format!("`{folder}`: {e}"))?;
        let info = ModelInfo {
            name: name.to_string(),
            version: version.to_string(),
            input: model.input().to_vec(),
            labels: model.labels().to_vec(),
        };
        Ok(TorchEngine { model, info, embeddings })
    }
}

impl Engine for TorchEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn infer(&mut self, x: &[f32], n: usize) -> Result<Prediction, String> {
        let (probabilities, embeddings) = self.model.infer(x, n, self.embeddings).map_err(|e| e.to_string())?;
        Ok(Prediction { probabilities, embeddings })
    }
}

struct TorchImages;

fn decoded(image: serving::Image) -> Decoded {
    Decoded { x: image.x, width: image.width, height: image.height, rgb_mean: image.rgb_mean, contrast: image.contrast }
}

impl Images for TorchImages {
    fn decode(&self, bytes: &[u8], size: u32) -> Result<Decoded, String> {
        serving::decode(bytes, size).map(decoded).map_err(|e| e.to_string())
    }

    fn pixels(&self, rgb: Vec<u8>, width: u32, height: u32, size: u32) -> Result<Decoded, String> {
        serving::pixels(rgb, width, height, size).map(decoded).map_err(|e| e.to_string())
    }
}

pub fn main(config_path: &str) -> ExitCode {
    let config: Config = match crate::read_config::<Config>(config_path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: cannot read the serving configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let threads = config.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as i32));
    serving::set_threads(threads);
    let embeddings = config.log_dir.is_some();
    let engine = match TorchEngine::load(&config.model, &config.name, &config.version, config.cuda, embeddings) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("error: cannot load the model {err}");
            return ExitCode::from(1);
        }
    };
    if engine.info.image_size().is_none() {
        eprintln!(
            "warning: the model's input {:?} is not an image; only FP32 tensors will be taken",
            engine.info.input
        );
    }
    let swaps = if config.swaps {
        let (sender, receiver) = sync_channel(1);
        let (name, cuda) = (config.name.clone(), config.cuda);
        std::thread::Builder::new()
            .name("gourd-serve-swaps".into())
            .spawn(move || read_swaps(sender, &name, cuda, embeddings))
            .expect("cannot start a thread");
        Some(receiver)
    } else {
        None
    };
    let options = Options {
        host: config.host,
        port: config.port,
        max_batch_size: config.max_batch_size,
        max_queue_delay: Duration::from_micros(config.max_queue_delay_us),
        queue_size: config.queue_size,
        timeout: Duration::from_millis(config.timeout_ms),
        max_body_bytes: config.max_body_bytes,
        max_request_rows: config.max_request_rows,
        log: config.log_dir.map(|dir| LogOptions {
            dir: dir.into(),
            max_bytes: config.log_max_bytes,
            keep: config.log_keep,
        }),
    };
    let (name, version) = (config.name.clone(), config.version.clone());
    let result = gourd_serve::serve(options, Box::new(engine), Arc::new(TorchImages), swaps, |address| {
        eprintln!("Serving `{name}` version {version} on http://{address}");
        eprintln!("  Open Inference Protocol: http://{address}/v2/models/{name}/infer");
        eprintln!("  MLflow scoring:          http://{address}/invocations");
        eprintln!("  Prometheus metrics:      http://{address}/metrics");
    });
    match result {
        Ok(()) => {
            eprintln!("serve: stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            // A port in use or an I/O failure is the machine's; a setting, the user's.
            match err {
                gourd_serve::ServeError::Config(_) => ExitCode::from(1),
                gourd_serve::ServeError::Bind(..) | gourd_serve::ServeError::Io(_) => ExitCode::from(2),
            }
        }
    }
}

/// New versions from stdin, each loaded here (beside the one serving) and
/// handed to the inference thread once ready. A version that does not load
/// is reported and the one serving stays.
fn read_swaps(sender: SyncSender<Box<dyn Engine>>, name: &str, cuda: bool, embeddings: bool) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let swap: Swap = match serde_json::from_str(&line) {
            Ok(swap) => swap,
            Err(err) => {
                eprintln!("serve: ignoring a control line: {err}");
                continue;
            }
        };
        match TorchEngine::load(&swap.model, name, &swap.version, cuda, embeddings) {
            Ok(engine) => {
                eprintln!("serve: version {} of `{name}` loaded", swap.version);
                if sender.send(Box::new(engine)).is_err() {
                    break;
                }
            }
            Err(err) => eprintln!("serve: version {} did not load, the one serving stays: {err}", swap.version),
        }
    }
}
