//! `gourd dag`: the stage graph as text, Graphviz, Mermaid or JSON.

use std::fmt::Write;
use std::process::ExitCode;

use clap::ValueEnum;
use serde_json::json;

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ascii)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Ascii,
    Dot,
    Mermaid,
    Json,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // Reads the pipeline and history only: a clone without the data works.
    let loaded = location.load_checked(false)?;
    let stages = &loaded.pipeline.stages;
    let dag = &loaded.dag;
    let name = |i: usize| stages[i].name.as_str();
    let mut out = String::new();
    match args.format {
        Format::Ascii => {
            let width = stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for &i in dag.order() {
                let up: Vec<&str> = dag.upstream(i).into_iter().map(name).collect();
                if up.is_empty() {
                    writeln!(out, "{}", name(i)).unwrap();
                } else {
                    writeln!(out, "{:width$}  <- {}", name(i), up.join(", ")).unwrap();
                }
            }
        }
        Format::Dot => {
            out.push_str("digraph gourd {\n  rankdir=LR;\n  node [shape=box];\n");
            for &i in dag.order() {
                writeln!(out, "  {:?};", name(i)).unwrap();
            }
            for (a, b) in dag.edges() {
                writeln!(out, "  {:?} -> {:?};", name(a), name(b)).unwrap();
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("graph LR\n");
            for &i in dag.order() {
                writeln!(out, "  s{i}[\"{}\"]", name(i)).unwrap();
            }
            for (a, b) in dag.edges() {
                writeln!(out, "  s{a} --> s{b}").unwrap();
            }
        }
        Format::Json => {
            let nodes: Vec<_> = dag
                .order()
                .iter()
                .map(|&i| {
                    let s = &stages[i];
                    json!({
                        "name": s.name,
                        "deps": s.deps,
                        "outs": s.outputs().map(|o| o.path).collect::<Vec<_>>(),
                        "upstream": dag.upstream(i).into_iter().map(name).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let edges: Vec<_> = dag.edges().into_iter().map(|(a, b)| json!({"from": name(a), "to": name(b)})).collect();
            out = serde_json::to_string_pretty(&json!({"stages": nodes, "edges": edges})).unwrap();
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
