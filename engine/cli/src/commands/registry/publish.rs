//! `gourd registry publish NAME [PATH] --to STAGE... --receipt FILE`: the
//! registry move a pipeline makes as one of its stages. It registers the
//! model (or finds the version holding these bytes), then promotes it to
//! each stage in turn while their gates pass; a failing gate ends the
//! promotions without failing the stage, and so does a commit that cannot
//! take a version (none yet, or one holding a version with other bytes:
//! commit, and the next run registers). Every step is idempotent, so the
//! stage runs at every `gourd run` and a second run with the same inputs
//! moves nothing. The receipt (the stage's output) says what happened.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::moves::{PromoteArgs, Promoted, promote_with};
use super::register::{self, Registered};
use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct PublishArgs {
    name: String,
    /// The model output (default: the pipeline's `registry.NAME.path`).
    path: Option<PathBuf>,
    /// Promote to STAGE if its gates pass; repeat for a sequence
    /// (`--to staging --to prod`), which stops at the first refusal.
    #[arg(long = "to", value_name = "STAGE")]
    to: Vec<String>,
    /// Write what happened as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// The message of every move.
    #[arg(short = 'm', long = "message", value_name = "MSG")]
    message: Option<String>,
}

pub fn publish(location: &Location, args: &PublishArgs) -> Result<ExitCode, CommandError> {
    for stage in &args.to {
        super::stage_name(stage)?;
    }
    // Before anything is registered or moved.
    if let Some(receipt) = &args.receipt {
        crate::ui::refuse_reserved_output(receipt)?;
        if receipt.is_dir() {
            return Err(CommandError::user(format!("`--receipt {}` is a folder: name a file", receipt.display())));
        }
    }
    let via = match std::env::var("GOURD_STAGE") {
        Ok(stage) if !stage.is_empty() => format!("pipeline stage `{stage}`"),
        _ => "command line".to_string(),
    };
    let register_args = register::Args {
        name: args.name.clone(),
        path: args.path.clone(),
        version: None,
        message: args.message.clone(),
    };
    let (version, registered, mut tags) = match register::register(location, &register_args, &via, true)? {
        Registered::New { version, tag } => (version, true, vec![tag]),
        Registered::Already { version } => (version, false, Vec::new()),
        Registered::Skipped { reason } => {
            eprintln!("warning: {} not registered: {reason}", args.name);
            let receipt = json!({ "name": args.name, "registered": false, "skipped": reason });
            return write_receipt(args, &receipt);
        }
    };
    let mut stages = serde_json::Map::new();
    for stage in &args.to {
        let promote = PromoteArgs {
            name: args.name.clone(),
            version: version.clone(),
            stage: stage.clone(),
            message: args.message.clone(),
            force: false,
            soft: true,
        };
        let outcome = promote_with(location, &promote, &via)?;
        let (value, stop) = match outcome {
            Promoted::Moved { tags: moved, gates } => {
                tags.extend(moved);
                (json!({ "outcome": "promoted", "gates": gates }), false)
            }
            Promoted::Already => (json!({ "outcome": "held already" }), false),
            Promoted::Refused { gates, summary } => {
                (json!({ "outcome": "refused", "why": summary, "gates": gates }), true)
            }
        };
        stages.insert(stage.clone(), value);
        if stop {
            break;
        }
    }
    let receipt = json!({
        "name": args.name,
        "version": version,
        "registered": registered,
        "tags": tags,
        "stages": stages,
    });
    write_receipt(args, &receipt)
}

fn write_receipt(args: &PublishArgs, receipt: &serde_json::Value) -> Result<ExitCode, CommandError> {
    let text = serde_json::to_string_pretty(receipt).expect("JSON") + "\n";
    match &args.receipt {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs_err::create_dir_all(parent)?;
            }
            crate::ui::write_through(path, text.as_bytes())?;
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
