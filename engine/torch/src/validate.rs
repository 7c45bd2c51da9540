//! The `validate` step: data checks with thresholds from the pipeline.
//!
//! Soft checks reject single images (too small, blurry, colours of something
//! that is not the subject, unreadable); the `images` step leaves them out.
//! Hard checks (too few images left in a class, classes out of balance, a
//! table whose columns do not match its schema) fail the stage after the
//! report is written, so the report says why.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::config::{Table, Validate};
use crate::{StepError, imaging};

pub fn run(config: Validate) -> Result<(), StepError> {
    let (labels, images) = imaging::labelled_images(&config.input)?;
    let mut rejected = Vec::new();
    let mut accepted: BTreeMap<&str, usize> = labels.iter().map(|l| (l.as_str(), 0)).collect();
    for image in &images {
        let mut reasons = Vec::new();
        match imaging::load(&image.file) {
            Err(err) => reasons.push(format!("unreadable: {err}")),
            Ok(pixels) => {
                let (w, h) = pixels.dimensions();
                if w < config.min_size || h < config.min_size {
                    reasons.push(format!("too small: {w}x{h} (minimum {0}x{0})", config.min_size));
                } else {
                    let sharpness = imaging::sharpness(&pixels);
                    if sharpness < config.min_sharpness {
                        reasons.push(format!("blurry: sharpness {sharpness:.1} (minimum {})", config.min_sharpness));
                    }
                }
                let green = imaging::green_fraction(&pixels);
                if green > config.max_green_fraction {
                    reasons.push(format!(
                        "colours: {:.0}% green pixels (maximum {:.0}%): not the subject",
                        100.0 * green,
                        100.0 * config.max_green_fraction
                    ));
                }
            }
        }
        if reasons.is_empty() {
            *accepted.get_mut(image.label.as_str()).expect("known label") += 1;
        } else {
            rejected.push(json!({ "path": image.path, "label": image.label, "reasons": reasons }));
        }
    }

    let mut failures = Vec::new();
    for (label, &count) in &accepted {
        if count < config.min_per_class {
            failures.push(format!(
                "class `{label}` keeps {count} images, fewer than the {} required",
                config.min_per_class
            ));
        }
    }
    let most = accepted.values().copied().max().unwrap_or(0);
    let least = accepted.values().copied().min().unwrap_or(0);
    if least > 0 && most as f64 / least as f64 > config.max_imbalance {
        failures.push(format!(
            "classes out of balance: {most} against {least} images (at most {}x allowed)",
            config.max_imbalance
        ));
    }
    if let Some(table) = &config.table {
        failures.extend(check_table(table)?);
    }
    let report = json!({
        "checked": images.len(),
        "accepted": accepted.values().sum::<usize>(),
        "per_class": accepted,
        "rejected": rejected,
        "hard_failures": failures,
        "ok": failures.is_empty(),
        "thresholds": {
            "min_size": config.min_size,
            "min_sharpness": config.min_sharpness,
            "max_green_fraction": config.max_green_fraction,
            "min_per_class": config.min_per_class,
            "max_imbalance": config.max_imbalance,
        },
    });
    crate::dataset::write_json(Path::new(&config.output), &report)?;
    eprintln!(
        "validate: {} images, {} rejected, {} hard failures",
        images.len(),
        report["rejected"].as_array().map_or(0, Vec::len),
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(StepError::Data(format!("hard checks failed (see `{}`):\n  {}", config.output, failures.join("\n  "))))
    }
}

fn check_table(table: &Table) -> Result<Vec<String>, StepError> {
    let text = fs_err::read_to_string(&table.path)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
    let expected: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    if header != expected {
        return Ok(vec![format!("table `{}`: columns are {header:?}, expected {expected:?}", table.path)]);
    }
    let mut failures = Vec::new();
    for (row, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != expected.len() {
            failures.push(format!(
                "table `{}` row {}: {} cells, expected {}",
                table.path,
                row + 2,
                cells.len(),
                expected.len()
            ));
            continue;
        }
        for (cell, column) in cells.iter().zip(&table.columns) {
            let ok = match column.kind.as_str() {
                "number" => cell.parse::<f64>().is_ok(),
                "integer" => cell.parse::<i64>().is_ok(),
                "string" => true,
                other => {
                    return Err(StepError::Config(format!(
                        "column `{}`: unknown type `{other}` (string, number, integer)",
                        column.name
                    )));
                }
            };
            if !ok {
                failures.push(format!(
                    "table `{}` row {}: `{}` is not a {} ({})",
                    table.path,
                    row + 2,
                    cell,
                    column.kind,
                    column.name
                ));
            }
        }
        if failures.len() > 20 {
            break;
        }
    }
    Ok(failures)
}

/// The images a validation report rejected, with the first reason each.
pub fn rejected(report: &str) -> Result<BTreeMap<String, String>, StepError> {
    let value: Value = serde_json::from_slice(&fs_err::read(report)?)
        .map_err(|e| StepError::Data(format!("`{report}` is not a validation report: {e}")))?;
    Ok(value["rejected"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let path = r["path"].as_str()?.to_string();
            let reason = r["reasons"].as_array()?.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ");
            Some((path, reason))
        })
        .collect())
}
