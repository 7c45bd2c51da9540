//! The `select` step: the best of several models by a metric, copied to the
//! output, with a record of every candidate's value and the winner.

use std::path::Path;

use serde_json::{Value, json};

use crate::config::Select;
use crate::{StepError, dataset};

pub fn run(config: Select) -> Result<(), StepError> {
    if config.candidates.is_empty() {
        return Err(StepError::Config("`candidates` is empty".into()));
    }
    let maximise = match config.goal.as_str() {
        "max" => true,
        "min" => false,
        other => return Err(StepError::Config(format!("`goal` must be `max` or `min`, not `{other}`"))),
    };
    let mut values = Vec::new();
    for candidate in &config.candidates {
        let metrics: Value = serde_json::from_slice(&fs_err::read(&candidate.metrics)?)
            .map_err(|e| StepError::Data(format!("`{}` is not JSON: {e}", candidate.metrics)))?;
        let value =
            config.metric.split('.').try_fold(&metrics, |v, key| v.get(key)).and_then(Value::as_f64).ok_or_else(
                || StepError::Data(format!("`{}` has no number at `{}`", candidate.metrics, config.metric)),
            )?;
        values.push(value);
    }
    // The first of equal candidates wins, so the choice is stable.
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if (maximise && v > values[best]) || (!maximise && v < values[best]) {
            best = i;
        }
    }
    let winner = &config.candidates[best];
    let out = Path::new(&config.output);
    copy_dir(Path::new(&winner.model), out)?;
    let record = json!({
        "winner": winner.name,
        "model": winner.model,
        "metric": config.metric,
        "goal": config.goal,
        "value": values[best],
        "candidates": config.candidates.iter().zip(&values).map(|(c, v)| json!({ "name": c.name, "model": c.model, "value": v })).collect::<Vec<_>>(),
    });
    let record_path = match &config.record {
        Some(path) => Path::new(path).to_path_buf(),
        None => out.join("selection.json"),
    };
    dataset::write_json(&record_path, &record)?;
    eprintln!("select: `{}` wins with {} = {}", winner.name, config.metric, values[best]);
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), StepError> {
    if !from.is_dir() {
        return Err(StepError::Data(format!("the model `{}` is not a folder", from.display())));
    }
    fs_err::create_dir_all(to)?;
    for entry in fs_err::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs_err::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
