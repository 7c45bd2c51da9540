//! Plots (DVC's `plots`): data files read as tables, drawn as SVG, and put
//! in one HTML page that needs no JavaScript.
//!
//! Everything read from a data file is untrusted: every piece of text that
//! reaches the page goes through [`svg::escape`].

pub mod data;
pub mod svg;

use std::collections::BTreeMap;
use std::path::Path;

use gourd_core::model::Plot;
use gourd_lineage::Lineage;

use crate::error::CommandError;
use crate::revision::{Side, records_at_commit};

/// A plot's file as it was at one side: its bytes, or why there are none.
pub type Files = BTreeMap<String, Result<Vec<u8>, String>>;

/// Reads `paths` as they are at `side`: on disk for the working state; at a
/// revision, the file committed there, else the cached output of the result
/// in force at that commit (by its digest in lineage's `outs`), fetched from
/// the pipeline's remote cache when this one lacks it.
pub fn files_at(
    lineage: Option<&Lineage>,
    pipeline: &gourd_core::model::Pipeline,
    root: &Path,
    file: &Path,
    paths: &[String],
    side: &Side,
) -> Result<Files, CommandError> {
    let mut out = Files::new();
    match side {
        Side::WorkingState => {
            for path in paths {
                let read = std::fs::read(root.join(path)).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => "does not exist; `gourd run` writes it".to_string(),
                    _ => e.to_string(),
                });
                out.insert(path.clone(), read);
            }
        }
        Side::Revision(revision) => {
            let lineage = lineage.ok_or_else(|| CommandError::user("revisions need a git repository"))?;
            let commit = lineage.resolve(revision)?;
            let mut in_force = None;
            let mut store = None;
            for path in paths {
                if let Some(bytes) = lineage.file_at(revision, path)? {
                    out.insert(path.clone(), Ok(bytes));
                    continue;
                }
                if in_force.is_none() {
                    in_force = Some(records_at_commit(lineage, &lineage.history()?, root, file, &commit)?);
                }
                let records = in_force.as_ref().expect("just set");
                let Some((record, (out_path, digest))) =
                    records.values().find_map(|r| Some((r, r.output_holding(path)?)))
                else {
                    out.insert(
                        path.clone(),
                        Err(format!("is neither committed nor a recorded output at `{revision}`")),
                    );
                    continue;
                };
                if store.is_none() {
                    store = Some(gourd_core::workspace::Workspace::open(root)?.store);
                }
                let store = store.as_ref().expect("just set");
                let read = || {
                    let digest = digest.parse::<gourd_digest::Digest>().ok()?;
                    let rel = path[out_path.len()..].trim_start_matches('/');
                    let object =
                        if rel.is_empty() { digest } else { store.find_in_tree(&digest, rel).map(|(_, d)| d)? };
                    std::fs::read(store.object_path(&object)).ok()
                };
                let mut bytes = read();
                let mut fetch_failed = None;
                if bytes.is_none()
                    && let Ok(key) = record.key.parse()
                {
                    match fetch(pipeline, root, key, store)? {
                        Ok(true) => bytes = read(),
                        Ok(false) => {}
                        Err(why) => fetch_failed = Some(why),
                    }
                }
                out.insert(
                    path.clone(),
                    bytes.ok_or_else(|| match fetch_failed {
                        Some(why) => format!("is not in the cache, and {why}"),
                        None => format!(
                            "is not in the cache: the output recorded at `{revision}` was built elsewhere, or dropped by `gourd gc`"
                        ),
                    }),
                );
            }
        }
    }
    Ok(out)
}

/// Fetches the result of stage key `key` from the pipeline's remote cache
/// into `store`: whether there was one to fetch, or why fetching failed.
fn fetch(
    pipeline: &gourd_core::model::Pipeline,
    root: &Path,
    key: gourd_digest::Digest,
    store: &gourd_core::store::Store,
) -> Result<Result<bool, String>, CommandError> {
    let Some(cache) = crate::remote::from_pipeline(pipeline, root)?.and_then(|r| r.cache) else { return Ok(Ok(false)) };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match runtime.block_on(cache.fetch(key, store)) {
        Ok(Some(action)) => {
            store.put_action(&action)?;
            Ok(Ok(true))
        }
        Ok(None) => Ok(Ok(false)),
        Err(err) => Ok(Err(format!("fetching it from {} failed: {err}", cache.describe()))),
    }
}

/// Every data file the plots read.
pub fn paths(plots: &[Plot]) -> Vec<String> {
    let mut paths: Vec<String> = plots.iter().flat_map(|p| p.y.iter().map(|(f, _)| f.to_string())).collect();
    paths.sort();
    paths.dedup();
    paths
}

/// One plot drawn for each side (`(label, files)`): an SVG figure, or an
/// error naming the file and the field.
pub fn render(plot: &Plot, sides: &[(String, &Files)]) -> Result<String, String> {
    if plot.y.iter().all(|(file, _)| data::is_image(file.as_str())) {
        return Ok(images(plot, sides));
    }
    let mut tables = Vec::new();
    for (label, files) in sides {
        for (file, fields) in &plot.y {
            let path = file.as_str();
            let bytes = match files.get(path) {
                Some(Ok(bytes)) => bytes,
                Some(Err(why)) => return Err(format!("plot `{}`: `{path}` {why}", plot.id)),
                None => return Err(format!("plot `{}`: `{path}` was not read", plot.id)),
            };
            let table = data::Table::parse(path, bytes)?;
            tables.push(svg::Source {
                side: label.clone(),
                file: path.to_string(),
                x: plot.x.get(file).cloned(),
                y: fields.clone(),
                table,
            });
        }
    }
    svg::figure(plot, &tables)
}

fn images(plot: &Plot, sides: &[(String, &Files)]) -> String {
    let mut html = String::new();
    for (label, files) in sides {
        for (file, _) in &plot.y {
            let path = file.as_str();
            let caption = svg::escape(&if sides.len() > 1 { format!("{label}: {path}") } else { path.to_string() });
            match files.get(path) {
                Some(Ok(bytes)) => {
                    use base64::Engine as _;
                    let mime = data::image_mime(path);
                    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                    html.push_str(&format!(
                        "<figure class=\"image\"><img alt=\"{caption}\" src=\"data:{mime};base64,{encoded}\"><figcaption>{caption}</figcaption></figure>"
                    ));
                }
                Some(Err(why)) => {
                    html.push_str(&format!("<p class=\"missing\">{caption}: {}</p>", svg::escape(why)));
                }
                None => {}
            }
        }
    }
    html
}

/// The HTML page: one section per plot.
pub fn page(title: &str, sections: &[(String, String)]) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
    );
    html.push_str(&format!("<title>{}</title>", svg::escape(title)));
    html.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}section{margin-bottom:2em}\
         figure.image img{max-width:640px}.missing{color:#a00}</style></head><body>",
    );
    html.push_str(&format!("<h1>{}</h1>", svg::escape(title)));
    for (heading, body) in sections {
        html.push_str(&format!("<section class=\"plot\"><h2>{}</h2>{body}</section>", svg::escape(heading)));
    }
    html.push_str("</body></html>\n");
    html
}

/// The pipeline's plots drawn from the working state, for the report:
/// `{id, heading, svg}`, or `{id, heading, error}` for a plot that cannot be
/// drawn (its file not written yet, say), so that the report still renders.
pub fn report_context(pipeline: &gourd_core::model::Pipeline, root: &Path) -> serde_json::Value {
    let read = match files_at(None, pipeline, root, root, &paths(&pipeline.plots), &Side::WorkingState) {
        Ok(files) => files,
        Err(e) => return serde_json::json!([{ "id": "plots", "heading": "plots", "error": e.message }]),
    };
    let sides = [("workspace".to_string(), &read)];
    let drawn: Vec<serde_json::Value> = pipeline
        .plots
        .iter()
        .map(|plot| {
            let heading = match &plot.stage {
                Some(stage) => format!("{} (stage {stage})", plot.title.as_deref().unwrap_or(&plot.id)),
                None => plot.title.clone().unwrap_or_else(|| plot.id.clone()),
            };
            match render(plot, &sides) {
                Ok(svg) => serde_json::json!({ "id": plot.id, "heading": heading, "svg": svg }),
                Err(error) => serde_json::json!({ "id": plot.id, "heading": heading, "error": error }),
            }
        })
        .collect();
    serde_json::Value::Array(drawn)
}
