//! `gourd-step drift CONFIG`: the drift step with `model` set, for images.
//! Each side that is a folder of images is embedded by the model (the input
//! of its last layer) and described as `gourd serve` logs its inputs (size,
//! colour, the model's answer); a side that is a file is read as such a log.
//! Then the tabular drift step compares them: the embeddings with MMD and a
//! permutation test, and any `columns` named besides (docs/monitoring.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gourd_torch::serving::{self, ServedModel};
use serde_json::{Value, json};

/// Images embedded per batch.
const BATCH: usize = 64;

pub fn main(config_path: &str) -> ExitCode {
    let mut config: Value = match crate::read_config::<Value>(config_path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: cannot read the step configuration: {err}");
            return ExitCode::from(2);
        }
    };
    match run(&mut config) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: step `drift`: {err}");
            ExitCode::from(1)
        }
    }
}

fn run(config: &mut Value) -> Result<String, String> {
    let parsed = gourd_drift::Config::from_json(config).map_err(|e| e.to_string())?;
    let model_dir = parsed.model.clone().ok_or("`model` is not set")?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut model: Option<ServedModel> = None;
    for (side, path) in [("reference", &parsed.reference), ("current", &parsed.current)] {
        if !path.is_dir() {
            continue;
        }
        let model = match &mut model {
            Some(model) => model,
            None => model.insert(ServedModel::load(&model_dir.to_string_lossy(), false).map_err(|e| e.to_string())?),
        };
        let rows = scratch.path().join(format!("{side}.jsonl"));
        let count = embed(model, path, &rows)?;
        eprintln!("drift: embedded {count} images of `{}`", path.display());
        config[side] = json!(rows);
    }
    if let Some(object) = config.as_object_mut() {
        object.remove("model");
        object.entry("embedding").or_insert(json!("emb_"));
    }
    let report = gourd_drift::run_step(config, Path::new("")).map_err(|e| {
        let hint = e.hint().map(|h| format!("\n\nhint: {h}")).unwrap_or_default();
        format!("{e}{hint}")
    })?;
    let drifted = report.columns.values().filter(|c| c.drift).count();
    Ok(format!(
        "drift: {} ({drifted} of {} tests drifted, share {:.3})",
        if report.drift { "yes" } else { "no" },
        report.columns.len(),
        report.share
    ))
}

/// Writes one line per image under `dir` (sorted), as `gourd serve` logs
/// an input: its size and colour, the model's label and confidence, and its
/// embedding. Returns how many.
fn embed(model: &ServedModel, dir: &Path, out: &Path) -> Result<usize, String> {
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(|e| format!("`{}`: {e}", dir.display()))?;
    files.sort();
    if files.is_empty() {
        return Err(format!("`{}` holds no images (PNG or JPEG)", dir.display()));
    }
    let [3, h, w] = model.input()[..] else {
        return Err(format!("the model's input {:?} is not an image", model.input()));
    };
    if h != w {
        return Err(format!("the model's input {:?} is not square", model.input()));
    }
    let mut text = String::new();
    for chunk in files.chunks(BATCH) {
        let mut x = Vec::new();
        let mut images = Vec::new();
        for file in chunk {
            let bytes = fs_err::read(file).map_err(|e| e.to_string())?;
            let image = serving::decode(&bytes, h as u32).map_err(|e| format!("`{}`: {e}", file.display()))?;
            x.extend_from_slice(&image.x);
            images.push(image);
        }
        let (probabilities, embeddings) = model.infer(&x, chunk.len(), true).map_err(|e| e.to_string())?;
        let (dim, embeddings) = embeddings.ok_or("the model has a single layer: there is no embedding to compare")?;
        let classes = probabilities.len() / chunk.len();
        for (i, (file, image)) in chunk.iter().zip(&images).enumerate() {
            let p = &probabilities[i * classes..(i + 1) * classes];
            let best = (0..classes).fold(0, |b, c| if p[c] > p[b] { c } else { b });
            let mut head = serde_json::Map::new();
            head.insert("input".into(), json!(file));
            head.insert("label".into(), json!(model.labels().get(best)));
            head.insert("confidence".into(), json!(p[best]));
            let fields = gourd_serve::image_fields(image.width, image.height, image.rgb_mean, image.contrast);
            text.push_str(&gourd_serve::log_line(head, &fields, Some(&embeddings[i * dim..(i + 1) * dim])));
        }
    }
    fs_err::write(out, text).map_err(|e| e.to_string())?;
    Ok(files.len())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}
