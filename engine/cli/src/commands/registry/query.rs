//! `gourd registry show`, `history` and `resolve`: reading the registry.
//! Each reads the tag refs once and opens only the asked artifact's tags.

use std::process::ExitCode;

use gourd_lineage::registry::state::Replay;
use gourd_lineage::registry::time::format_instant;
use gourd_lineage::registry::{self, Action, ArtifactState, Event};
use serde_json::{Value, json};

use super::{Loaded, artifact_name, instant, open, short};
use crate::error::CommandError;
use crate::table::Table;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct ShowArgs {
    /// Only this artifact, with all its versions.
    name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    name: String,
    /// Only the moves of this stage.
    #[arg(long)]
    stage: Option<String>,
    /// What each stage held at this time (`2026-11-30T12:00:00Z`, or a day).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ResolveArgs {
    /// `NAME@STAGE`, `NAME#STAGE`, `NAME@vX.Y.Z` or `NAME@latest`.
    reference: String,
    /// As the registry was at this time.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What a reference names.
pub struct Resolved {
    pub name: String,
    pub version: String,
    pub stage: Option<String>,
    pub commit: String,
    pub digest: Option<String>,
    /// The registration's record (path, kind, lineage), when gourd made it.
    pub registration: Option<Event>,
    /// The tag that put the version there (its assignment or registration).
    pub tag: String,
}

/// What `reference` names in the registry, as it was at `at` (now with
/// `None`).
pub fn resolve_reference(
    registry: &registry::Registry,
    reference: &str,
    at: Option<i64>,
) -> Result<Resolved, CommandError> {
    let Some(split) = reference.find(['@', '#']) else {
        return Err(CommandError::user(format!("`{reference}` names no version or stage"))
            .with_hint("write `NAME@prod`, `NAME#prod`, `NAME@v1.2.0` or `NAME@latest`"));
    };
    let (name, rest) = reference.split_at(split);
    let (sign, what) = rest.split_at(1);
    artifact_name(name)?;
    let mut loaded = Loaded::read_light(registry, name)?.require(registry)?;
    let state = match at {
        Some(at) => registry::state::fold(&loaded.events, Some(at)),
        None => loaded.state.clone(),
    };
    let when = at.map(|at| format!(" at {}", format_instant(at))).unwrap_or_default();
    let (version, stage, tag) = if sign == "@" && registry::tag::is_version(what) {
        let v = state
            .version(what)
            .filter(|v| v.active)
            .ok_or_else(|| CommandError::user(format!("{name} has no active version {what}{when}")))?;
        (v.version.clone(), None, loaded.events[v.registered_by].tag.clone())
    } else if sign == "@" && (what.eq_ignore_ascii_case("latest") || what.eq_ignore_ascii_case("greatest")) {
        let v = state.latest().ok_or_else(|| CommandError::user(format!("{name} has no active version{when}")))?;
        (v.version.clone(), None, loaded.events[v.registered_by].tag.clone())
    } else {
        super::stage_name(what)?;
        let holder = state.stages.get(what).ok_or_else(|| {
            let stages: Vec<&str> = state.stages.keys().map(String::as_str).collect();
            let err = CommandError::user(format!("`{what}` held no version of {name}{when}"));
            match stages.is_empty() {
                true => err,
                false => err.with_hint(format!("stages holding a version: {}", stages.join(", "))),
            }
        })?;
        (holder.version.clone(), Some(what.to_string()), loaded.events[holder.assigned_by].tag.clone())
    };
    let commit = state.version(&version).map(|v| v.commit.clone()).unwrap_or_default();
    let shown: Vec<usize> = loaded.registration_index(&version).into_iter().collect();
    loaded.load(registry, &shown)?;
    Ok(Resolved {
        name: name.to_string(),
        digest: loaded.digest(&version),
        registration: loaded.registration(&version).cloned(),
        version,
        stage,
        commit,
        tag,
    })
}

pub fn resolve(location: &Location, args: &ResolveArgs) -> Result<ExitCode, CommandError> {
    let (_, registry) = open(location)?;
    let at = args.at.as_deref().map(instant).transpose()?;
    let r = resolve_reference(&registry, &args.reference, at)?;
    if args.json {
        let record = r.registration.as_ref().and_then(|e| e.record.as_ref());
        let value = json!({
            "name": r.name,
            "version": r.version,
            "stage": r.stage,
            "digest": r.digest,
            "commit": r.commit,
            "tag": r.tag,
            "path": record.and_then(|r| r.path.clone()),
            "kind": record.and_then(|r| r.kind.clone()),
        });
        println!("{}", serde_json::to_string_pretty(&value).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    match &r.digest {
        Some(digest) => println!("{} {digest}", r.version),
        None => {
            println!("{}", r.version);
            eprintln!("note: {} {} was registered without gourd; its digest is unknown", r.name, r.version);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(location: &Location, args: &ShowArgs) -> Result<ExitCode, CommandError> {
    let (_, registry) = open(location)?;
    let artifacts = match &args.name {
        Some(name) => vec![Loaded::read(&registry, name)?.require(&registry)?],
        None => Loaded::read_all(&registry)?,
    };
    if args.json {
        let value: Vec<Value> = artifacts.iter().map(artifact_json).collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "artifacts": value })).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    if args.name.is_none() {
        if artifacts.is_empty() {
            eprintln!("The registry is empty: register a model with `gourd registry register NAME PATH`.");
            return Ok(ExitCode::SUCCESS);
        }
        let mut table = Table::new(&["NAME", "LATEST", "STAGES"]);
        for a in &artifacts {
            let latest = a.state.latest().map(|v| v.version.clone()).unwrap_or_else(|| "-".into());
            let latest = if a.state.deprecated { format!("{latest} (deprecated)") } else { latest };
            table.row(vec![a.name.clone(), latest, stages_line(&a.state)]);
        }
        print!("{}", table.text());
        return Ok(ExitCode::SUCCESS);
    }
    let a = &artifacts[0];
    if a.state.deprecated {
        println!("{} (deprecated)", a.name);
    }
    let mut table = Table::new(&["VERSION", "STAGES", "DIGEST", "COMMIT", "REGISTERED", "BY"]);
    for v in &a.state.versions {
        let registration = &a.events[v.registered_by];
        let stages = if v.active { stages_of(&a.state, &v.version).join(", ") } else { "(deregistered)".into() };
        table.row(vec![
            v.version.clone(),
            if stages.is_empty() { "-".into() } else { stages },
            a.digest(&v.version).map(|d| short(&d).to_string()).unwrap_or_else(|| "-".into()),
            short(&v.commit).to_string(),
            format_instant(registration.time),
            registration.who.clone(),
        ]);
    }
    // A stage GTO assigned to a bare commit: held by no registered version.
    for (stage, holder) in &a.state.stages {
        if a.state.versions.iter().all(|v| v.version != holder.version) {
            let assignment = &a.events[holder.assigned_by];
            table.row(vec![
                holder.version.clone(),
                stage.clone(),
                "-".into(),
                short(&assignment.commit).to_string(),
                "(not registered)".into(),
                assignment.who.clone(),
            ]);
        }
    }
    print!("{}", table.text());
    Ok(ExitCode::SUCCESS)
}

fn stages_of<'a>(state: &'a ArtifactState, version: &str) -> Vec<&'a str> {
    state.stages.iter().filter(|(_, h)| h.version == version).map(|(s, _)| s.as_str()).collect()
}

fn stages_line(state: &ArtifactState) -> String {
    let parts: Vec<String> = state.stages.iter().map(|(s, h)| format!("{s}={}", h.version)).collect();
    if parts.is_empty() { "-".into() } else { parts.join(" ") }
}

fn artifact_json(a: &Loaded) -> Value {
    let versions: Vec<Value> = a
        .state
        .versions
        .iter()
        .map(|v| {
            let registration = &a.events[v.registered_by];
            json!({
                "version": v.version,
                "active": v.active,
                "commit": v.commit,
                "digest": a.digest(&v.version),
                "stages": stages_of(&a.state, &v.version),
                "registered_at": format_instant(registration.time),
                "registered_by": registration.who,
                "tag": registration.tag,
            })
        })
        .collect();
    let stages: serde_json::Map<String, Value> =
        a.state.stages.iter().map(|(s, h)| (s.clone(), json!(h.version))).collect();
    json!({
        "name": a.name,
        "latest": a.state.latest().map(|v| v.version.clone()),
        "deprecated": a.state.deprecated,
        "stages": stages,
        "versions": versions,
    })
}

pub fn history(location: &Location, args: &HistoryArgs) -> Result<ExitCode, CommandError> {
    let (_, registry) = open(location)?;
    if let Some(stage) = &args.stage {
        super::stage_name(stage)?;
    }
    match &args.at {
        Some(at) => {
            let at = instant(at)?;
            let mut loaded = Loaded::read_light(&registry, &args.name)?.require(&registry)?;
            let state = registry::state::fold(&loaded.events, Some(at));
            let shown: Vec<usize> = state.stages.values().map(|h| h.assigned_by).collect();
            loaded.load(&registry, &shown)?;
            history_at(&loaded, &state, args, at)
        }
        None => history_all(&Loaded::read(&registry, &args.name)?.require(&registry)?, args),
    }
}

/// Each move with the version that held its stage just before it.
fn moves_with_previous(loaded: &Loaded) -> Vec<(&Event, Option<String>)> {
    let mut replay = Replay::default();
    let mut out = Vec::with_capacity(loaded.events.len());
    for (index, event) in loaded.events.iter().enumerate() {
        let before = event.stage.as_deref().and_then(|s| replay.holder(s)).map(|h| h.version);
        replay.apply(index, event);
        out.push((event, before));
    }
    out
}

fn event_json(event: &Event, previous: Option<&str>) -> Value {
    let record = event.record.as_ref();
    let previous = previous.or_else(|| record.and_then(|r| r.previous.as_ref()).map(|p| p.version.as_str()));
    json!({
        "tag": event.tag,
        "action": event.action.name(),
        "version": event.version,
        "stage": event.stage,
        "time": format_instant(event.time),
        "who": event.who,
        "email": event.email,
        "why": event.message,
        "commit": event.commit,
        "previous": previous,
        "digest": record.and_then(|r| r.digest.clone()),
        "gates": record.map(|r| r.gates.clone()).unwrap_or_default(),
        "forced": record.is_some_and(|r| r.forced),
        "replaced_by": record.and_then(|r| r.replaced_by.clone()),
        "via": record.and_then(|r| r.via.clone()),
    })
}

fn history_all(loaded: &Loaded, args: &HistoryArgs) -> Result<ExitCode, CommandError> {
    let moves: Vec<(&Event, Option<String>)> = moves_with_previous(loaded)
        .into_iter()
        .filter(|(e, _)| args.stage.is_none() || e.stage == args.stage)
        .collect();
    if args.json {
        let value: Vec<Value> = moves.iter().map(|(e, p)| event_json(e, p.as_deref())).collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "name": loaded.name, "moves": value })).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["WHEN", "MOVE", "BY", "WHY", "GATES"]);
    for (event, before) in &moves {
        let record = event.record.as_ref();
        // The unassignment gourd writes before promoting another version
        // shows as part of that promotion.
        if record.is_some_and(|r| r.replaced_by.is_some()) && event.action == Action::Unassign {
            continue;
        }
        let version = event.version.clone().unwrap_or_default();
        let stage = event.stage.clone().unwrap_or_default();
        let previous = before.clone().or_else(|| record.and_then(|r| r.previous.as_ref()).map(|p| p.version.clone()));
        let what = match event.action {
            Action::Register => format!("register {version}"),
            Action::Deregister => format!("deregister {version}"),
            Action::Assign => format!("{stage}: {} -> {version}", previous.as_deref().unwrap_or("(none)")),
            Action::Unassign => format!("{stage}: {version} -> (none)"),
            Action::Deprecate => "deprecate".to_string(),
            Action::Create => "create".to_string(),
        };
        let why = event.message.lines().next().unwrap_or_default().to_string();
        table.row(vec![format_instant(event.time), what, event.who.clone(), why, gates_cell(event)]);
    }
    print!("{}", table.text());
    Ok(ExitCode::SUCCESS)
}

fn gates_cell(event: &Event) -> String {
    let Some(record) = &event.record else { return String::new() };
    if record.gates.is_empty() {
        return if record.forced { "forced".into() } else { String::new() };
    }
    let passed = record.gates.iter().filter(|g| g["passed"] == json!(true)).count();
    let total = record.gates.len();
    match (record.forced, passed == total) {
        (true, _) => format!("FORCED: {} of {total} failed", total - passed),
        (false, true) => format!("{passed}/{total} passed"),
        (false, false) => format!("{passed}/{total} passed"),
    }
}

fn history_at(loaded: &Loaded, state: &ArtifactState, args: &HistoryArgs, at: i64) -> Result<ExitCode, CommandError> {
    let stages: Vec<(&String, &registry::Holder)> =
        state.stages.iter().filter(|(s, _)| args.stage.as_ref().is_none_or(|want| want == *s)).collect();
    if args.json {
        let mut map = serde_json::Map::new();
        for (stage, holder) in &stages {
            let event = &loaded.events[holder.assigned_by];
            let mut value = event_json(event, None);
            value["digest"] = json!(loaded.digest(&holder.version));
            value["version"] = json!(holder.version);
            if let Some(object) = value.as_object_mut() {
                let since = object.remove("time").unwrap_or_default();
                object.insert("since".into(), since);
            }
            map.insert((*stage).clone(), value);
        }
        if let Some(stage) = &args.stage
            && !map.contains_key(stage)
        {
            map.insert(stage.clone(), Value::Null);
        }
        let value = json!({ "name": loaded.name, "at": format_instant(at), "stages": map });
        println!("{}", serde_json::to_string_pretty(&value).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    if stages.is_empty() {
        match &args.stage {
            Some(stage) => println!("At {}, `{stage}` held no version of {}.", format_instant(at), loaded.name),
            None => println!("At {}, no stage held a version of {}.", format_instant(at), loaded.name),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["STAGE", "VERSION", "SINCE", "BY", "WHY", "GATES", "TAG"]);
    for (stage, holder) in stages {
        let event = &loaded.events[holder.assigned_by];
        table.row(vec![
            stage.clone(),
            holder.version.clone(),
            format_instant(event.time),
            event.who.clone(),
            event.message.lines().next().unwrap_or_default().to_string(),
            gates_cell(event),
            event.tag.clone(),
        ]);
    }
    println!("At {}:", format_instant(at));
    print!("{}", table.text());
    Ok(ExitCode::SUCCESS)
}
