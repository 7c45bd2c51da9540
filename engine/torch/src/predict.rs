//! The `predict` step: batch inference over a folder of images or a tensor
//! file, to a JSON list of predictions.

use std::path::{Path, PathBuf};

use serde_json::json;
use tch::{Kind, Tensor};

use crate::config::Predict;
use crate::train::round;
use crate::{StepError, dataset, device, imaging, model};

pub fn run(config: Predict) -> Result<(), StepError> {
    let device = device::for_stage()?;
    tch::set_num_threads(1);
    let saved = model::load(&config.model, device)?;
    let size = saved.input[1];
    let input = Path::new(&config.input);
    let (names, x) = if input.is_dir() {
        let mut files = Vec::new();
        collect(input, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(StepError::Data(format!("`{}` holds no images", config.input)));
        }
        let mut pixels = Vec::new();
        for file in &files {
            pixels.extend(imaging::standardise(&imaging::load(file)?, size as u32));
        }
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let x = Tensor::from_slice(&pixels).view([files.len() as i64, 3, size, size]);
        (names, x)
    } else {
        let tensors = Tensor::read_safetensors(input)?;
        let (_, x) = tensors
            .into_iter()
            .find(|(name, _)| name == "x")
            .ok_or_else(|| StepError::Data(format!("`{}` has no tensor named `x`", config.input)))?;
        let names = (0..x.size()[0]).map(|i| format!("{}#{i}", config.input)).collect();
        (names, x.to_kind(Kind::Float))
    };
    let probabilities =
        model::predict(&saved.net, &x.to_device(device)).softmax(-1, Kind::Float).to_device(tch::Device::Cpu);
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let row = probabilities.get(i as i64);
        let class = row.argmax(0, false).int64_value(&[]) as usize;
        out.push(json!({ "input": name, "label": saved.labels[class], "confidence": round(row.double_value(&[class as i64])) }));
    }
    dataset::write_json(Path::new(&config.output), &json!({ "predictions": out }))?;
    eprintln!("predict: {} inputs", out.len());
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StepError> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if imaging::is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}
