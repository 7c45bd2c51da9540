//! The `evaluate` step: how the model does on the held-out split.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use tch::Kind;

use crate::config::Evaluate;
use crate::train::round;
use crate::{StepError, dataset, device, model};

pub fn run(config: Evaluate) -> Result<(), StepError> {
    let device = device::for_stage()?;
    tch::set_num_threads(1);
    let saved = model::load(&config.model, device)?;
    let data = dataset::load(&config.dataset, device)?;
    if saved.labels != data.manifest.labels {
        return Err(StepError::Data(format!(
            "the model knows the labels {:?} but the dataset has {:?}",
            saved.labels, data.manifest.labels
        )));
    }
    let n = data.test_y.size()[0];
    if n == 0 {
        return Err(StepError::Data(format!("the dataset `{}` has no test images", config.dataset)));
    }
    let logits = model::predict(&saved.net, &data.test_x);
    let loss = logits.cross_entropy_for_logits(&data.test_y).double_value(&[]);
    let predicted: Vec<i64> =
        Vec::<i64>::try_from(logits.argmax(-1, false).to_kind(Kind::Int64).to_device(tch::Device::Cpu))?;
    let actual: Vec<i64> = Vec::<i64>::try_from(data.test_y.to_device(tch::Device::Cpu))?;
    let k = saved.labels.len();
    let mut confusion = vec![vec![0u64; k]; k];
    for (&a, &p) in actual.iter().zip(&predicted) {
        confusion[a as usize][p as usize] += 1;
    }
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let mut per_class = BTreeMap::new();
    for (i, label) in saved.labels.iter().enumerate() {
        let tp = confusion[i][i] as f64;
        let predicted_i: u64 = (0..k).map(|a| confusion[a][i]).sum();
        let support: u64 = confusion[i].iter().sum();
        per_class.insert(
            label.clone(),
            json!({
                "precision": if predicted_i > 0 { round(tp / predicted_i as f64) } else { 0.0 },
                "recall": if support > 0 { round(tp / support as f64) } else { 0.0 },
                "support": support,
            }),
        );
    }
    let metrics = json!({
        "accuracy": round(correct as f64 / n as f64),
        "loss": round(loss),
        "examples": n,
        "per_class": per_class,
        "confusion": { "labels": saved.labels, "matrix": confusion },
    });
    dataset::write_json(Path::new(&config.output), &metrics)?;
    eprintln!("evaluate: accuracy {:.3} on {n} test images, loss {loss:.4}", correct as f64 / n as f64);
    Ok(())
}
