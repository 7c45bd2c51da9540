//! `gourd exp show`: every recorded run as a row, with the params and
//! metrics in force after it side by side (DVC's `dvc exp show`), from
//! lineage.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use gourd_lineage::Lineage;
use serde_json::{Value, json};

use crate::error::CommandError;
use crate::table::{Table, cell, flatten};
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// A table of runs with their params and metrics, newest first.
    Show(ShowArgs),
}

#[derive(clap::Args)]
struct ShowArgs {
    /// Sort by this column (a param `stage:name` or a metric `file:name`).
    #[arg(long, value_name = "COLUMN")]
    sort_by: Option<String>,
    /// With --sort-by: `asc` or `desc` (default: `desc`).
    #[arg(long, value_name = "ORDER", default_value = "desc", value_parser = ["asc", "desc"])]
    sort_order: String,
    /// Show at most N runs.
    #[arg(short = 'n', long, value_name = "N")]
    num: Option<usize>,
    /// Show columns whose value is the same in every run too.
    #[arg(long)]
    all_columns: bool,
    /// Print JSON.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print a Markdown table.
    #[arg(long)]
    md: bool,
}

/// One run: when, at which commit, and its params and metrics by column.
struct Row {
    id: String,
    recorded_at: String,
    commit: Option<String>,
    dirty: bool,
    stages: Vec<String>,
    values: BTreeMap<String, Value>,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let Command::Show(show) = &args.command;
    let root = location.root()?;
    let Some(lineage) = Lineage::open(&root)? else {
        return Err(CommandError::user(format!(
            "`{}` is not in a git repository; runs are not recorded",
            root.display()
        )));
    };
    let mut rows = Vec::new();
    for entry in lineage.history()? {
        let Some(run) = entry.run.filter(|r| !r.stages.is_empty()) else { continue };
        let mut values = BTreeMap::new();
        for (stage, record) in lineage.records_at(&entry.id)? {
            let mut leaves = Vec::new();
            flatten("", &record.params, &mut leaves);
            // A list is one param (`layers: [16, 32]`), shown whole.
            for (name, value) in leaves.into_iter().filter(|(n, _)| !n.is_empty()) {
                values.insert(format!("{stage}:{name}"), value);
            }
            for (file, metrics) in &record.metrics {
                let mut leaves = Vec::new();
                flatten("", metrics, &mut leaves);
                for (name, value) in leaves.into_iter().filter(|(_, v)| scalar(v)) {
                    let name = if name.is_empty() { "value".to_string() } else { name };
                    values.insert(format!("{file}:{name}"), value);
                }
            }
        }
        rows.push(Row {
            id: entry.id,
            recorded_at: run.recorded_at,
            commit: run.workspace_commit,
            dirty: run.workspace_dirty,
            stages: run.stages,
            values,
        });
    }
    if rows.is_empty() {
        println!("No runs recorded yet; `gourd run` in a git repository records them.");
        return Ok(ExitCode::SUCCESS);
    }

    let mut columns: BTreeSet<String> = rows.iter().flat_map(|r| r.values.keys().cloned()).collect();
    // A metric or param by its own name (`accuracy` for
    // `eval/metrics.json:accuracy`), as DVC takes it, when only one column
    // has that name.
    let sort_by = match &show.sort_by {
        Some(wanted) if !columns.contains(wanted) => {
            let named: Vec<&String> = columns
                .iter()
                .filter(|c| {
                    c.rsplit_once(':').is_some_and(|(_, name)| name == wanted) || c.rsplit('.').next() == Some(wanted)
                })
                .collect();
            match named[..] {
                [one] => Some(one.clone()),
                [] => Some(wanted.clone()),
                ref several => {
                    let names: Vec<String> = several.iter().map(|c| format!("`{c}`")).collect();
                    return Err(CommandError::user(format!("`{wanted}` names several columns: {}", names.join(", ")))
                        .with_hint("name one of them in full"));
                }
            }
        }
        other => other.clone(),
    };
    if let Some(column) = &sort_by {
        if !columns.contains(column) {
            let known: Vec<&str> = columns.iter().map(String::as_str).collect();
            let mut err = CommandError::user(format!("no column `{column}`"));
            if let Some(near) = gourd_core::suggest::closest(column, known.iter().copied()) {
                err = err.with_hint(format!("did you mean `{near}`?"));
            }
            return Err(err);
        }
        let key = |r: &Row| r.values.get(column).and_then(Value::as_f64);
        rows.sort_by(|a, b| {
            let order = match (key(a), key(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            if show.sort_order == "desc" && key(a).is_some() && key(b).is_some() { order.reverse() } else { order }
        });
    }
    if let Some(n) = show.num {
        rows.truncate(n);
    }
    if !show.all_columns && rows.len() > 1 {
        // Columns that never change say nothing about the runs.
        columns.retain(|c| {
            let first = rows[0].values.get(c);
            rows.iter().any(|r| r.values.get(c) != first) || sort_by.as_deref() == Some(c)
        });
    }

    if show.json {
        let runs: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "run": r.id,
                    "recorded_at": r.recorded_at,
                    "workspace_commit": r.commit,
                    "workspace_dirty": r.dirty,
                    "stages": r.stages,
                    "values": r.values,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "runs": runs })).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["run", "recorded", "commit"];
    header.extend(columns.iter().map(String::as_str));
    let mut table = Table::new(&header);
    for row in &rows {
        let commit = match &row.commit {
            Some(c) => format!("{}{}", &c[..c.len().min(8)], if row.dirty { "*" } else { "" }),
            None => "-".to_string(),
        };
        let mut cells = vec![row.id[..8].to_string(), row.recorded_at.clone(), commit];
        cells.extend(columns.iter().map(|c| cell(row.values.get(c))));
        table.row(cells);
    }
    print!("{}", if show.md { table.markdown() } else { table.text() });
    Ok(ExitCode::SUCCESS)
}

fn scalar(value: &Value) -> bool {
    !value.is_array() && !value.is_object()
}
