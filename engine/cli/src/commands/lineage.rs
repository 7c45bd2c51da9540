//! `gourd lineage PATH`: where an artifact came from.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use gourd_core::workspace::Workspace;
use gourd_lineage::{Lineage, Record};
use serde_json::{Value, json};

use crate::error::CommandError;
use crate::provenance::{digest_of, upstream};
use crate::workspace::{Location, workspace_path};

#[derive(clap::Args)]
pub struct Args {
    /// A file or folder that a stage wrote.
    path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Follow inputs at most N stages upstream.
    #[arg(long, value_name = "N", default_value_t = crate::provenance::DEFAULT_DEPTH)]
    depth: usize,
}

/// How the bytes on disk relate to the record shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnDisk {
    /// The file on disk is what this record produced.
    Matches,
    /// The file exists but matches no recorded output: changed by hand.
    Modified,
    Missing,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let root = location.root()?;
    let path = workspace_path(&root, &args.path)?;
    let Some(lineage) = Lineage::open(&root)? else {
        return Err(CommandError::user(format!("`{}` is not in a git repository; lineage is off", root.display()))
            .with_hint("run `git init` and `gourd run` to start recording lineage"));
    };
    let ws = Workspace::open(&root)?;
    let records: Vec<Record> = lineage.history()?.into_iter().flat_map(|c| c.records).collect();
    let candidates: Vec<&Record> = records.iter().filter(|r| r.output_holding(path.as_str()).is_some()).collect();
    if candidates.is_empty() {
        return Err(CommandError::user(format!("no recorded stage wrote `{path}`"))
            .with_hint("`gourd lineage` answers for outputs of stages that ran or were restored in a git repository"));
    }
    let current = ws.hash(&path)?.map(|t| t.digest().to_string());
    let found = candidates.iter().find(|r| current.is_some() && digest_of(&ws, r, path.as_str()) == current);
    let (record, on_disk) = match (found, &current) {
        (Some(record), _) => (*record, OnDisk::Matches),
        (None, Some(_)) => (candidates[0], OnDisk::Modified),
        (None, None) => (candidates[0], OnDisk::Missing),
    };
    // A restored result was built by an earlier run (here, in another
    // clone, or remotely): that run's timing is what the user asks about.
    let built: Option<Built> = if record.status == "ran" {
        None
    } else if let Some(ran) = records.iter().find(|r| r.key == record.key && r.status == "ran") {
        Some(Built {
            finished_at: ran.finished_at.clone(),
            duration_ms: ran.duration_ms,
            executed_by: ran.executed_by.clone(),
        })
    } else {
        record.key.parse().ok().and_then(|key| ws.store.action(&key)).map(|action| Built {
            finished_at: action.finished_at,
            duration_ms: action.duration_ms,
            executed_by: None,
        })
    };
    let mut seen = BTreeSet::new();
    let upstream = upstream(&ws, &records, record, &mut seen, 0, args.depth);
    let (output, _) = record.output_holding(path.as_str()).expect("a candidate holds the path");
    let state = match on_disk {
        OnDisk::Matches => "current",
        OnDisk::Modified => "modified",
        OnDisk::Missing => "missing",
    };
    if args.json {
        let value = json!({
            "path": path.as_str(),
            "output": output,
            "kind": record.out_kinds.get(output),
            "on_disk": state,
            "record": record,
            "built": built.as_ref().map(|b| json!({
                "finished_at": b.finished_at,
                "duration_ms": b.duration_ms,
                "executed_by": b.executed_by,
            })),
            "upstream": upstream,
        });
        println!("{}", serde_json::to_string_pretty(&value).unwrap());
        return Ok(ExitCode::SUCCESS);
    }

    match on_disk {
        OnDisk::Modified => eprintln!(
            "warning: `{path}` was changed after gourd produced it: its bytes match no recorded output.\n         The latest record of the stage that writes it is shown."
        ),
        OnDisk::Missing => eprintln!("warning: `{path}` does not exist; its latest record is shown."),
        OnDisk::Matches => {}
    }
    let kind = record.out_kinds.get(output).map(String::as_str).unwrap_or("data");
    if output == path.as_str() {
        println!("{path}  ({kind}, written by stage `{}`)", record.stage);
    } else {
        println!("{path}  (inside {kind} output `{output}` of stage `{}`)", record.stage);
    }
    let commit = match &record.workspace_commit {
        Some(c) => format!(
            "{}{}",
            &c[..c.len().min(12)],
            if record.workspace_dirty { " (with uncommitted changes)" } else { "" }
        ),
        None => "none yet (no commit in the repository)".to_string(),
    };
    println!("  key        {}", record.key);
    match &built {
        Some(built) => {
            println!("  built      {} ({} ms, exit code {})", built.finished_at, built.duration_ms, record.exit_code);
            println!("  {:<10} {}", record.status, record.finished_at);
        }
        None => println!(
            "  {:<10} {} ({} ms, exit code {})",
            record.status, record.finished_at, record.duration_ms, record.exit_code
        ),
    }
    println!("  executor   {}", record.executor);
    if let Some(by) = built.as_ref().and_then(|b| b.executed_by.as_ref()).or(record.executed_by.as_ref()) {
        println!("  executed   remotely by {by}");
    }
    println!("  commit     {commit}");
    println!("  command    {}", command_line(&record.cmd));
    if record.params.as_object().is_some_and(|p| !p.is_empty()) {
        println!("  params     {}", gourd_digest::canonical_json(&record.params));
    }
    for (file, metrics) in &record.metrics {
        println!("  metrics    {file}: {}", gourd_digest::canonical_json(metrics));
    }
    println!("  inputs");
    print_tree(&upstream, 4, args.depth);
    Ok(ExitCode::SUCCESS)
}

/// The run that built a restored result.
struct Built {
    finished_at: String,
    duration_ms: u64,
    executed_by: Option<String>,
}

fn command_line(cmd: &Value) -> String {
    match (cmd.get("shell"), cmd.get("argv")) {
        (Some(Value::String(s)), _) => {
            let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            match lines.len() {
                0 | 1 => lines.concat(),
                n => format!("{} … ({n} lines)", lines[0]),
            }
        }
        (_, Some(Value::Array(argv))) => argv.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => cmd.to_string(),
    }
}

fn print_tree(nodes: &[Value], indent: usize, max_depth: usize) {
    let width = nodes.iter().filter_map(|n| n["path"].as_str()).map(str::len).max().unwrap_or(0);
    for node in nodes {
        let path = node["path"].as_str().unwrap_or_default();
        let digest = node["digest"].as_str().unwrap_or_default();
        let short = &digest[..digest.len().min(12)];
        let origin = match node["stage"].as_str() {
            Some(stage) if node["shown_above"] == json!(true) => format!("<- stage `{stage}` (shown above)"),
            Some(stage) if node["cut"] == json!(true) => {
                let more = match node["more_upstream"].as_u64().unwrap_or(0) {
                    0 => String::new(),
                    1 => "; 1 more upstream stage".to_string(),
                    n => format!("; {n} more upstream stages"),
                };
                format!("<- stage `{stage}` (cut at depth {max_depth}{more}, see `--depth`)")
            }
            Some(stage) => format!("<- stage `{stage}`"),
            None => "source".to_string(),
        };
        println!("{:indent$}{path:<width$}  {short}  {origin}", "");
        if let Some(children) = node["upstream"].as_array() {
            print_tree(children, indent + 2, max_depth);
        }
    }
}
