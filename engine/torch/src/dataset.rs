//! The `images` step, and the dataset format it writes:
//!
//! ```text
//! OUTPUT/
//! ├── dataset.safetensors   train_x [N,3,S,S] f32, train_y [N] i64, test_x, test_y
//! └── manifest.json         labels, size, counts, each file's split, what was dropped and why
//! ```
//!
//! The split is decided per file by a seeded hash of its path, so adding a
//! photo never moves another photo between train and test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Device, Kind, Tensor};

use crate::config::Images;
use crate::{StepError, imaging};

#[derive(Serialize, Deserialize)]
pub struct Manifest {
    pub labels: Vec<String>,
    pub size: u32,
    pub train: usize,
    pub test: usize,
    pub per_label: BTreeMap<String, BTreeMap<String, usize>>,
    pub dropped: Vec<serde_json::Value>,
    pub files: Vec<serde_json::Value>,
}

pub struct Dataset {
    pub manifest: Manifest,
    pub train_x: Tensor,
    pub train_y: Tensor,
    pub test_x: Tensor,
    pub test_y: Tensor,
}

pub fn run(config: Images) -> Result<(), StepError> {
    // 1: every image is for testing (a frozen evaluation set).
    if !(0.0..=1.0).contains(&config.test_fraction) {
        return Err(StepError::Config("`test_fraction` must be from 0 to 1".into()));
    }
    if config.size < 4 {
        return Err(StepError::Config("`size` must be at least 4".into()));
    }
    let (labels, images) = imaging::labelled_images(&config.input)?;
    let rejected: BTreeMap<String, String> = match &config.validation {
        Some(report) => crate::validate::rejected(report)?,
        None => BTreeMap::new(),
    };
    let n = (3 * config.size * config.size) as usize;
    let (mut train_x, mut train_y, mut test_x, mut test_y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut dropped = Vec::new();
    let mut files = Vec::new();
    let mut per_label: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for image in &images {
        if let Some(reason) = rejected.get(&image.path) {
            dropped.push(json!({ "path": image.path, "label": image.label, "reason": reason }));
            continue;
        }
        let pixels = imaging::standardise(&imaging::load(&image.file)?, config.size);
        debug_assert_eq!(pixels.len(), n);
        let class = labels.iter().position(|l| l == &image.label).expect("a known label") as i64;
        let hash = imaging::stable_hash(config.seed, &image.path);
        let test = config.test_fraction >= 1.0 || (hash as f64 / u64::MAX as f64) < config.test_fraction;
        let split = if test { "test" } else { "train" };
        if test {
            test_x.extend(pixels);
            test_y.push(class);
        } else {
            train_x.extend(pixels);
            train_y.push(class);
        }
        *per_label.entry(image.label.clone()).or_default().entry(split.to_string()).or_default() += 1;
        files.push(json!({ "path": image.path, "label": image.label, "split": split }));
    }
    let kept: BTreeSet<&String> = per_label.keys().collect();
    if let Some(empty) = labels.iter().find(|l| !kept.contains(l)) {
        return Err(StepError::Data(format!("every image of the label `{empty}` was dropped")));
    }
    if train_y.is_empty() && config.test_fraction < 1.0 {
        return Err(StepError::Data("no image is left for training".into()));
    }
    let s = i64::from(config.size);
    let tensor = |x: &[f32], count: usize| Tensor::from_slice(x).view([count as i64, 3, s, s]);
    let tensors = [
        ("train_x", tensor(&train_x, train_y.len())),
        ("train_y", Tensor::from_slice(&train_y)),
        ("test_x", tensor(&test_x, test_y.len())),
        ("test_y", Tensor::from_slice(&test_y)),
    ];
    let manifest =
        Manifest { labels, size: config.size, train: train_y.len(), test: test_y.len(), per_label, dropped, files };
    let out = Path::new(&config.output);
    fs_err::create_dir_all(out)?;
    Tensor::write_safetensors(&tensors, out.join("dataset.safetensors"))?;
    write_json(&out.join("manifest.json"), &manifest)?;
    eprintln!(
        "images: {} train, {} test, {} dropped, {} labels at {}x{}",
        manifest.train,
        manifest.test,
        manifest.dropped.len(),
        manifest.labels.len(),
        config.size,
        config.size
    );
    Ok(())
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StepError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent)?;
    }
    let mut text = serde_json::to_string_pretty(value).map_err(|e| StepError::Data(e.to_string()))?;
    text.push('\n');
    fs_err::write(path, text)?;
    Ok(())
}

pub fn load(folder: &str, device: Device) -> Result<Dataset, StepError> {
    let dir = Path::new(folder);
    let manifest: Manifest = serde_json::from_slice(&fs_err::read(dir.join("manifest.json"))?)
        .map_err(|e| StepError::Data(format!("`{folder}/manifest.json` is not a dataset manifest: {e}")))?;
    let mut tensors: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("dataset.safetensors"))?.into_iter().collect();
    let mut take = |name: &str, kind: Kind| {
        tensors
            .remove(name)
            .map(|t| t.to_kind(kind).to_device(device))
            .ok_or_else(|| StepError::Data(format!("`{folder}/dataset.safetensors` has no `{name}` tensor")))
    };
    Ok(Dataset {
        train_x: take("train_x", Kind::Float)?,
        train_y: take("train_y", Kind::Int64)?,
        test_x: take("test_x", Kind::Float)?,
        test_y: take("test_y", Kind::Int64)?,
        manifest,
    })
}
