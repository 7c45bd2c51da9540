//! `gourd metrics show` and `gourd metrics diff [A [B]]`.

use std::process::ExitCode;

use gourd_lineage::Lineage;
use serde_json::{Value, json};

use crate::error::CommandError;
use crate::revision::{Side, metrics_at};
use crate::table::{Table, cell, flatten};
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Show the metrics in the working state.
    Show(Format),
    /// Compare metrics between revision A (default `HEAD`) and B (default: the working state).
    Diff(DiffArgs),
}

#[derive(clap::Args)]
struct Format {
    /// Print JSON.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print a Markdown table.
    #[arg(long)]
    md: bool,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The revision compared from: a commit, branch or tag (default `HEAD`).
    a: Option<String>,
    /// The revision compared to (default: the working state, as files on disk).
    b: Option<String>,
    /// Show unchanged metrics too.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    format: Format,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // Reads the pipeline and history only: a clone without the data works.
    let loaded = location.load_checked(false)?;
    let paths: Vec<String> =
        loaded.pipeline.stages.iter().flat_map(|s| s.metrics.iter().map(|m| m.to_string())).collect();
    let lineage = Lineage::open(&loaded.root)?;
    match &args.command {
        Command::Show(format) => {
            let metrics = metrics_at(lineage.as_ref(), &loaded.root, &loaded.file, &paths, &Side::WorkingState)?;
            let mut rows = Vec::new();
            for (path, value) in &metrics {
                let mut leaves = Vec::new();
                flatten("", value, &mut leaves);
                rows.extend(leaves.into_iter().map(|(name, v)| (path.clone(), name, v)));
            }
            if format.json {
                println!("{}", serde_json::to_string_pretty(&json!({ "metrics": metrics })).unwrap());
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("No metrics files yet; `gourd run` writes them.");
                return Ok(ExitCode::SUCCESS);
            }
            // Tables show scalars; arrays (per-epoch curves) belong to plots
            // and to --json.
            let arrays = rows.iter().filter(|(_, _, v)| v.is_array()).count();
            let mut table = Table::new(&["path", "metric", "value"]);
            for (path, name, value) in rows.into_iter().filter(|(_, _, v)| !v.is_array()) {
                table.row(vec![path, name, cell(Some(&value))]);
            }
            print!("{}", if format.md { table.markdown() } else { table.text() });
            if arrays > 0 {
                eprintln!("note: {arrays} metric(s) holding arrays are not shown; `--json` has them");
            }
        }
        Command::Diff(diff) => {
            let a = Side::parse(diff.a.as_ref(), Side::Revision("HEAD".into()));
            let b = Side::parse(diff.b.as_ref(), Side::WorkingState);
            let left = metrics_at(lineage.as_ref(), &loaded.root, &loaded.file, &paths, &a)?;
            let right = metrics_at(lineage.as_ref(), &loaded.root, &loaded.file, &paths, &b)?;
            let revisions = [&a, &b].iter().any(|side| matches!(side, Side::Revision(_)));
            let no_lineage =
                lineage.as_ref().is_some_and(|l| l.tips(gourd_lineage::LINEAGE_REF).is_ok_and(|t| t.is_empty()));
            if revisions && no_lineage {
                eprintln!(
                    "note: this clone has no lineage yet, so metrics not committed to git are unknown at revisions; \
                     `gourd pull` fetches lineage (and results) from the git remote"
                );
            }
            let rows = diff_rows(&left, &right, diff.all);
            if diff.format.json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(path, metric, x, y, change)| {
                        json!({"path": path, "metric": metric, "a": x, "b": y, "change": change})
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"a": a.label(), "b": b.label(), "metrics": rows})).unwrap()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["path", "metric", &a.label(), &b.label(), "change"]);
            let array = |v: &Option<Value>| v.as_ref().is_some_and(Value::is_array);
            for (path, metric, x, y, change) in rows.iter().filter(|(_, _, x, y, _)| !array(x) && !array(y)) {
                let change = change.map(|c| format!("{c:+}")).unwrap_or_else(|| "-".into());
                table.row(vec![path.clone(), metric.clone(), cell(x.as_ref()), cell(y.as_ref()), change]);
            }
            if table.is_empty() && !diff.format.md && left.is_empty() && right.is_empty() {
                // Nothing to compare is not "nothing differs".
                println!("No metrics are known at {} or {}.", a.label(), b.label());
            } else if table.is_empty() && !diff.format.md {
                println!("No metrics differ between {} and {}.", a.label(), b.label());
            } else {
                print!("{}", if diff.format.md { table.markdown() } else { table.text() });
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

type Row = (String, String, Option<Value>, Option<Value>, Option<f64>);

/// `(path, metric, a, b, b − a)` for each leaf that differs (or all).
pub fn diff_rows(
    left: &std::collections::BTreeMap<String, Value>,
    right: &std::collections::BTreeMap<String, Value>,
    all: bool,
) -> Vec<Row> {
    let leaves = |m: &std::collections::BTreeMap<String, Value>| {
        let mut out = std::collections::BTreeMap::new();
        for (path, value) in m {
            let mut leaves = Vec::new();
            flatten("", value, &mut leaves);
            for (name, v) in leaves {
                out.insert((path.clone(), name), v);
            }
        }
        out
    };
    let (l, r) = (leaves(left), leaves(right));
    let mut keys: Vec<_> = l.keys().chain(r.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| all || l.get(k) != r.get(k))
        .map(|k| {
            let (x, y) = (l.get(&k).cloned(), r.get(&k).cloned());
            let change = match (x.as_ref().and_then(Value::as_f64), y.as_ref().and_then(Value::as_f64)) {
                (Some(a), Some(b)) => Some(((b - a) * 1e9).round() / 1e9),
                _ => None,
            };
            (k.0, k.1, x, y, change)
        })
        .collect()
}
