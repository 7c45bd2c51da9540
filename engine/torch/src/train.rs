//! The `train` step. On the CPU, a fixed seed and thread count give
//! bit-identical weights, so a re-run restores the same bytes and an
//! accidental re-execution does not change what downstream stages see.

use std::path::Path;

use serde_json::json;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::config::Train;
use crate::{StepError, dataset, device, model};

pub fn run(config: Train) -> Result<(), StepError> {
    let begun = std::time::Instant::now();
    if config.epochs == 0 || config.batch_size == 0 || !(config.lr > 0.0) {
        return Err(StepError::Config("`epochs`, `batch_size` and `lr` must be positive".into()));
    }
    let device = device::for_stage()?;
    // The device is named in the log, so that a GPU run can be told from a
    // CPU one (tests/gpu/run.sh checks it).
    eprintln!("train: on {}", if let Device::Cuda(i) = device { format!("cuda:{i}") } else { "cpu".to_string() });
    tch::set_num_threads(config.threads.max(1) as i32);
    tch::manual_seed(config.seed as i64);
    if let Device::Cuda(_) = device {
        tch::Cuda::manual_seed_all(config.seed);
    }

    // Check the model against the data before any training.
    let data = dataset::load(&config.dataset, device)?;
    if data.manifest.train == 0 {
        return Err(StepError::Data(format!(
            "the dataset `{}` has no training images (it was made with `test_fraction = 1`, for evaluation)",
            config.dataset
        )));
    }
    let layers = model::parse(&config.model)?;
    let size = i64::from(data.manifest.size);
    let input = vec![3, size, size];
    let classes = data.manifest.labels.len() as i64;
    let mut inputs = vec![input.clone()];
    inputs.extend(model::shapes(&layers, &input, classes)?);

    let vs = nn::VarStore::new(device);
    let net = model::build(&vs.root(), &layers, &inputs);
    let mut optimizer = match config.optimizer.as_str() {
        "adam" => nn::Adam { wd: config.weight_decay, ..Default::default() }.build(&vs, config.lr)?,
        "sgd" => nn::Sgd { momentum: config.momentum, wd: config.weight_decay, ..Default::default() }
            .build(&vs, config.lr)?,
        other => return Err(StepError::Config(format!("unknown optimizer `{other}` (adam, sgd)"))),
    };

    let n = data.train_y.size()[0];
    let batch = i64::from(config.batch_size);
    let mut curves = Vec::new();
    let mut first = true;
    for epoch in 1..=config.epochs {
        let started = std::time::Instant::now();
        let order = Tensor::randperm(n, (Kind::Int64, device));
        let (mut loss_sum, mut correct) = (0f64, 0i64);
        for start in (0..n).step_by(batch as usize) {
            let len = (n - start).min(batch);
            let index = order.narrow(0, start, len);
            let x = data.train_x.index_select(0, &index);
            let y = data.train_y.index_select(0, &index);
            let logits = net.forward_t(&x, true);
            let loss = logits.cross_entropy_for_logits(&y);
            optimizer.backward_step(&loss);
            loss_sum += loss.double_value(&[]) * len as f64;
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
            if first {
                // What start-up costs: loading the data and building the model.
                first = false;
                eprintln!("train: first step after {:.3}s", begun.elapsed().as_secs_f64());
            }
        }
        let (loss, accuracy) = (loss_sum / n as f64, correct as f64 / n as f64);
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("epoch {epoch}/{}: loss {loss:.4}, train accuracy {accuracy:.3} ({seconds:.2}s)", config.epochs);
        curves.push(
            json!({ "epoch": epoch, "loss": round(loss), "accuracy": round(accuracy), "seconds": round(seconds) }),
        );
    }

    let out = Path::new(&config.output);
    fs_err::create_dir_all(out)?;
    vs.save(out.join("model.safetensors"))?;
    let description = json!({
        "layers": config.model,
        "input": input,
        "labels": data.manifest.labels,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "step_version": 1,
    });
    dataset::write_json(&out.join("model.json"), &description)?;
    if let Some(curves_path) = &config.curves {
        let last = curves.last().cloned().unwrap_or_default();
        // Seconds vary between runs; they go to the log, not the metrics file,
        // so identical training gives identical bytes.
        let epochs: Vec<_> = curves
            .iter()
            .map(|c| json!({ "epoch": c["epoch"], "loss": c["loss"], "accuracy": c["accuracy"] }))
            .collect();
        let metrics = json!({ "epochs": epochs, "final_loss": last["loss"], "final_train_accuracy": last["accuracy"] });
        dataset::write_json(Path::new(curves_path), &metrics)?;
    }
    Ok(())
}

/// Six significant decimals: enough for curves, and stable text.
pub fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
