//! `gourd params diff [A [B]]`: stage params between two revisions.

use std::collections::BTreeMap;
use std::process::ExitCode;

use gourd_lineage::Lineage;
use serde_json::{Value, json};

use crate::error::CommandError;
use crate::revision::{Side, pipeline_at};
use crate::table::{Table, cell, flatten};
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Compare params between revision A (default `HEAD`) and B (default: the working state).
    Diff(DiffArgs),
}

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The revision compared from: a commit, branch or tag (default `HEAD`).
    a: Option<String>,
    /// The revision compared to (default: the working state, as files on disk).
    b: Option<String>,
    /// Show unchanged params too.
    #[arg(long)]
    all: bool,
    /// Print JSON.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print a Markdown table.
    #[arg(long)]
    md: bool,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let Command::Diff(args) = &args.command;
    let file = location.pipeline_file()?;
    let root = location.root()?;
    let Some(lineage) = Lineage::open(&root)? else {
        return Err(CommandError::user("`gourd params diff` compares git revisions; this is not a git repository"));
    };
    let a = Side::parse(args.a.as_ref(), Side::Revision("HEAD".into()));
    let b = Side::parse(args.b.as_ref(), Side::WorkingState);
    let params = |side: &Side| -> Result<BTreeMap<(String, String), Value>, CommandError> {
        let pipeline = match side {
            Side::Revision(rev) => match pipeline_at(&lineage, &root, &file, rev)? {
                Some(pipeline) => pipeline,
                None => {
                    // A commit from before the switch (from DVC, say): every
                    // param is new since.
                    let rel = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
                    eprintln!("note: `{rel}` does not exist at revision `{rev}`: no params there");
                    return Ok(BTreeMap::new());
                }
            },
            Side::WorkingState => location.load_checked(false)?.pipeline,
        };
        let mut out = BTreeMap::new();
        for stage in &pipeline.stages {
            let mut leaves = Vec::new();
            flatten("", &stage.recorded_params(), &mut leaves);
            for (name, value) in leaves {
                if !name.is_empty() {
                    out.insert((stage.name.clone(), name), value);
                }
            }
        }
        Ok(out)
    };
    let (left, right) = (params(&a)?, params(&b)?);
    let mut keys: Vec<&(String, String)> = left.keys().chain(right.keys()).collect();
    keys.sort();
    keys.dedup();
    let rows: Vec<_> = keys
        .into_iter()
        .filter(|k| args.all || left.get(*k) != right.get(*k))
        .map(|k| (k, left.get(k), right.get(k)))
        .collect();
    if args.json {
        let rows: Vec<_> =
            rows.iter().map(|((stage, param), x, y)| json!({"stage": stage, "param": param, "a": x, "b": y})).collect();
        println!("{}", serde_json::to_string_pretty(&json!({"a": a.label(), "b": b.label(), "params": rows})).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["stage", "param", &a.label(), &b.label()]);
    for ((stage, param), x, y) in &rows {
        table.row(vec![stage.clone(), param.clone(), cell(*x), cell(*y)]);
    }
    if table.is_empty() && !args.md {
        println!("No params differ between {} and {}.", a.label(), b.label());
    } else {
        print!("{}", if args.md { table.markdown() } else { table.text() });
    }
    Ok(ExitCode::SUCCESS)
}
