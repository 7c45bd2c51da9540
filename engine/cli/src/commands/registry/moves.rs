//! `gourd registry promote`, `demote` and `deprecate`: moves between stages,
//! each one or two GTO tags carrying gourd's record (who, when, why, the
//! previous holder, the gates' evidence).

use std::process::ExitCode;

use gourd_lineage::registry::{Action, MoveRecord, NewMove, Previous};

use super::{Loaded, open, stage_name};
use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct PromoteArgs {
    pub name: String,
    /// The version to promote (`v1.2.0`).
    pub version: String,
    /// The stage (`staging`, `prod`).
    pub stage: String,
    /// Why: the tag's message.
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    pub message: Option<String>,
    /// Promote even if a gate fails (a rollback); history records it.
    #[arg(long)]
    pub force: bool,
    /// A failing gate is an outcome, not an error (for `publish`).
    #[arg(skip)]
    pub soft: bool,
}

#[derive(clap::Args)]
pub struct DemoteArgs {
    name: String,
    stage: String,
    /// Why: the tag's message.
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    message: Option<String>,
}

#[derive(clap::Args)]
pub struct DeprecateArgs {
    name: String,
    /// The version to deregister; without it, the whole artifact is
    /// deprecated.
    version: Option<String>,
    /// Why: the tag's message.
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    message: Option<String>,
    /// Deregister a version even while it holds a stage.
    #[arg(long)]
    force: bool,
}

/// What a promotion did.
pub enum Promoted {
    Moved {
        tags: Vec<String>,
        gates: Vec<serde_json::Value>,
    },
    /// The stage holds the version already; nothing moved.
    Already,
    /// A gate failed (with `soft`): what they found.
    Refused {
        gates: Vec<serde_json::Value>,
        summary: String,
    },
}

fn base_record(action: Action, why: &Option<String>, now: i64, via: &str) -> MoveRecord {
    MoveRecord {
        action: Some(action),
        why: why.clone(),
        when: Some(gourd_lineage::registry::time::format_instant(now)),
        via: Some(via.to_string()),
        gourd_version: env!("CARGO_PKG_VERSION").to_string(),
        ..MoveRecord::default()
    }
}

pub fn promote(location: &Location, args: &PromoteArgs) -> Result<ExitCode, CommandError> {
    match promote_with(location, args, "command line")? {
        Promoted::Moved { tags, .. } => tags.iter().for_each(|t| println!("{t}")),
        Promoted::Already | Promoted::Refused { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Promotes; `via` says where the move was made.
pub fn promote_with(location: &Location, args: &PromoteArgs, via: &str) -> Result<Promoted, CommandError> {
    let (_, registry) = open(location)?;
    stage_name(&args.stage)?;
    // Held from the read to the write: the gates are checked against the
    // champion the move replaces, not one another promotion replaced since.
    let lock = super::lock(&registry)?;
    let loaded = Loaded::read(&registry, &args.name)?.require(&registry)?;
    let target = loaded.active_version(&args.version)?.clone();
    let holder = loaded.state.stages.get(&args.stage).cloned();
    if holder.as_ref().is_some_and(|h| h.version == args.version) {
        eprintln!("{} {} is in `{}` already; nothing moved.", args.name, args.version, args.stage);
        return Ok(Promoted::Already);
    }
    let evidence = super::gates::check(location, &loaded, &args.version, &args.stage)?;
    if !evidence.passed() {
        if args.soft && !args.force {
            eprintln!(
                "{} {} stays out of `{}`: {}\n{}",
                args.name,
                args.version,
                args.stage,
                evidence.summary(),
                evidence.lines()
            );
            return Ok(Promoted::Refused { gates: evidence.to_json(), summary: evidence.summary() });
        }
        if !args.force {
            return Err(evidence.refusal(&args.name, &args.version, &args.stage));
        }
        eprintln!(
            "warning: {}; promoting anyway (--force), and history records it:\n{}",
            evidence.summary(),
            evidence.lines()
        );
    }
    let now = registry.now()?;
    let mut moves = Vec::new();
    let previous = holder.map(|h| {
        let assigned = &loaded.events[h.assigned_by];
        let previous_commit =
            loaded.state.version(&h.version).map(|v| v.commit.clone()).unwrap_or_else(|| assigned.commit.clone());
        let mut record = base_record(Action::Unassign, &args.message, now, via);
        record.version = Some(h.version.clone());
        record.stage = Some(args.stage.clone());
        record.replaced_by = Some(args.version.clone());
        moves.push(NewMove {
            action: Action::Unassign,
            version: None,
            stage: Some(args.stage.clone()),
            counted: true,
            commit: previous_commit,
            message: format!(
                "Unassigning stage {} from {} version {}: replaced by {}",
                args.stage, args.name, h.version, args.version
            ),
            record,
        });
        Previous { version: h.version.clone(), digest: loaded.digest(&h.version), tag: Some(assigned.tag.clone()) }
    });
    let mut record = base_record(Action::Assign, &args.message, now, via);
    record.version = Some(args.version.clone());
    record.stage = Some(args.stage.clone());
    record.digest = loaded.digest(&args.version);
    record.previous = previous.clone();
    record.gates = evidence.to_json();
    record.forced = args.force && !evidence.passed();
    let message = args.message.clone().unwrap_or_else(|| {
        format!("Assigning stage {} to artifact {} version {}", args.stage, args.name, args.version)
    });
    moves.push(NewMove {
        action: Action::Assign,
        version: None,
        stage: Some(args.stage.clone()),
        counted: true,
        commit: target.commit.clone(),
        message,
        record,
    });
    let tags = registry.write(&lock, &args.name, &moves)?;
    let was = previous.map(|p| format!(" (was {})", p.version)).unwrap_or_default();
    eprintln!("Promoted {} {} to `{}`{was}.{}", args.name, args.version, args.stage, evidence.suffix());
    Ok(Promoted::Moved { tags, gates: evidence.to_json() })
}

pub fn demote(location: &Location, args: &DemoteArgs) -> Result<ExitCode, CommandError> {
    let (_, registry) = open(location)?;
    stage_name(&args.stage)?;
    let lock = super::lock(&registry)?;
    let loaded = Loaded::read(&registry, &args.name)?.require(&registry)?;
    let Some(holder) = loaded.state.stages.get(&args.stage) else {
        return Err(CommandError::user(format!("`{}` holds no version of {}", args.stage, args.name)));
    };
    let commit = loaded.state.version(&holder.version).map(|v| v.commit.clone());
    let commit = commit.unwrap_or_else(|| loaded.events[holder.assigned_by].commit.clone());
    let mut record = base_record(Action::Unassign, &args.message, registry.now()?, "command line");
    record.version = Some(holder.version.clone());
    record.stage = Some(args.stage.clone());
    let message = args.message.clone().unwrap_or_else(|| {
        format!("Unassigning stage {} from artifact {} version {}", args.stage, args.name, holder.version)
    });
    let new = NewMove {
        action: Action::Unassign,
        version: None,
        stage: Some(args.stage.clone()),
        counted: true,
        commit,
        message,
        record,
    };
    for tag in registry.write(&lock, &args.name, &[new])? {
        println!("{tag}");
    }
    eprintln!("`{}` of {} holds nothing now (was {}).", args.stage, args.name, holder.version);
    Ok(ExitCode::SUCCESS)
}

pub fn deprecate(location: &Location, args: &DeprecateArgs) -> Result<ExitCode, CommandError> {
    let (_, registry) = open(location)?;
    let lock = super::lock(&registry)?;
    let loaded = Loaded::read(&registry, &args.name)?.require(&registry)?;
    let now = registry.now()?;
    let new = match &args.version {
        Some(version) => {
            let v = loaded.active_version(version)?;
            let held: Vec<&str> =
                loaded.state.stages.iter().filter(|(_, h)| h.version == *version).map(|(s, _)| s.as_str()).collect();
            if !held.is_empty() && !args.force {
                return Err(CommandError::user(format!(
                    "{} {version} is in {}",
                    args.name,
                    held.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ))
                .with_hint(format!(
                    "demote it first (`gourd registry demote {} {}`), or pass `--force`",
                    args.name, held[0]
                )));
            }
            let mut record = base_record(Action::Deregister, &args.message, now, "command line");
            record.version = Some(version.clone());
            record.digest = loaded.digest(version);
            NewMove {
                action: Action::Deregister,
                version: Some(version.clone()),
                stage: None,
                counted: false,
                commit: v.commit.clone(),
                message: args
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("Deregistering artifact {} version {version}", args.name)),
                record,
            }
        }
        None => {
            if loaded.state.deprecated {
                eprintln!("{} is deprecated already; nothing moved.", args.name);
                return Ok(ExitCode::SUCCESS);
            }
            let commit = loaded.events.last().map(|e| e.commit.clone()).expect("required above");
            NewMove {
                action: Action::Deprecate,
                version: None,
                stage: None,
                counted: true,
                commit,
                message: args.message.clone().unwrap_or_else(|| format!("Deprecating artifact '{}'", args.name)),
                record: base_record(Action::Deprecate, &args.message, now, "command line"),
            }
        }
    };
    for tag in registry.write(&lock, &args.name, &[new])? {
        println!("{tag}");
    }
    match &args.version {
        Some(version) => eprintln!("Deregistered {} {version}.", args.name),
        None => eprintln!("Deprecated {}.", args.name),
    }
    Ok(ExitCode::SUCCESS)
}
