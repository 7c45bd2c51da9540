//! `gourd registry`: model versions and stages, kept as git tags in GTO's
//! format (see `gourd_lineage::registry` and docs/registry.md). One file per
//! group of subcommands: registering, moving between stages, reading.

mod card;
mod gates;
pub(crate) mod get;
mod moves;
mod publish;
pub(crate) mod query;
mod register;
pub mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use gourd_lineage::registry::{self, ArtifactState, Event, Registry, RegistryError};

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Register a model output as a new version, at the current commit.
    Register(register::Args),
    /// Put a version into a stage, if the stage's gates pass.
    Promote(moves::PromoteArgs),
    /// Take the version out of a stage.
    Demote(moves::DemoteArgs),
    /// Deregister a version, or deprecate the whole artifact.
    Deprecate(moves::DeprecateArgs),
    /// Show artifacts, their versions and what each stage holds.
    Show(query::ShowArgs),
    /// Show every move of an artifact, or what a stage held at a time.
    History(query::HistoryArgs),
    /// Print the version and digest that `NAME@STAGE` or `NAME@VERSION` names.
    Resolve(query::ResolveArgs),
    /// Put a registered version's files in a folder, verified byte by byte.
    Get(get::GetArgs),
    /// Write a version's model card (Markdown, Hugging Face front matter) from lineage.
    Card(card::CardArgs),
    /// Register a model and promote it through stages whose gates pass (a pipeline stage).
    Publish(publish::PublishArgs),
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    match &args.command {
        Command::Register(args) => register::run(location, args),
        Command::Promote(args) => moves::promote(location, args),
        Command::Demote(args) => moves::demote(location, args),
        Command::Deprecate(args) => moves::deprecate(location, args),
        Command::Show(args) => query::show(location, args),
        Command::History(args) => query::history(location, args),
        Command::Resolve(args) => query::resolve(location, args),
        Command::Get(args) => get::get(location, args),
        Command::Card(args) => card::card(location, args),
        Command::Publish(args) => publish::publish(location, args),
    }
}

impl From<RegistryError> for CommandError {
    fn from(err: RegistryError) -> Self {
        match err {
            err @ RegistryError::TagExists(_) => CommandError::user(err.to_string())
                .with_hint("another move took this name; run the command again (or `gourd pull` first)"),
            err @ RegistryError::NoCommit => {
                CommandError::user(err.to_string()).with_hint("commit the pipeline (`git commit`), then register")
            }
            err @ RegistryError::Exhausted(_) => CommandError::user(err.to_string()),
            err => CommandError::environment(format!("registry: {err}")),
        }
    }
}

/// The workspace root and the registry of the repository holding it.
pub(crate) fn open(location: &Location) -> Result<(PathBuf, Registry), CommandError> {
    // The registry is the repository's: a folder without `gourd.ncl` (a
    // repository GTO manages) has one too.
    let root = match location.root() {
        Ok(root) => root,
        Err(_) if location.file.is_none() => std::env::current_dir()?,
        Err(err) => return Err(err),
    };
    match Registry::open(&root)? {
        Some(registry) => Ok((root, registry)),
        None => Err(CommandError::user(format!(
            "`{}` is not in a git repository; the registry lives in git tags",
            root.display()
        ))
        .with_hint("run `git init` and commit the pipeline")),
    }
}

/// Checks an artifact name against GTO's grammar.
fn artifact_name(name: &str) -> Result<(), CommandError> {
    if registry::tag::is_artifact(name) {
        return Ok(());
    }
    Err(CommandError::user(format!("`{name}` is not a registry name")).with_hint(
        "names use letters, digits, `-`, `_` and `/`, start and end with a letter or digit, and may be prefixed by a folder and `:` (`models/cv:pumpkin`)",
    ))
}

/// The registry's writer lock, saying so while another move holds it.
fn lock(registry: &Registry) -> Result<registry::WriterLock, CommandError> {
    Ok(registry.lock_or_wait(|| eprintln!("Waiting for another registry move in this repository to finish..."))?)
}

fn stage_name(stage: &str) -> Result<(), CommandError> {
    // `NAME@latest` and `NAME@greatest` are versions: a stage so named, in
    // any case, would read as one.
    if stage.eq_ignore_ascii_case("latest") || stage.eq_ignore_ascii_case("greatest") {
        return Err(CommandError::user(format!("`{stage}` is not a stage name: `NAME@{stage}` means a version"))
            .with_hint("name the stage otherwise: `prod`, `staging`, `canary`"));
    }
    if registry::tag::is_name(stage) {
        return Ok(());
    }
    Err(CommandError::user(format!("`{stage}` is not a stage name"))
        .with_hint("stage names use letters, digits, `-`, `_` and `/`, and start and end with a letter or digit"))
}

/// An artifact's moves and its state now.
struct Loaded {
    name: String,
    events: Vec<Event>,
    state: ArtifactState,
}

impl Loaded {
    /// Every move, read whole.
    fn read(registry: &Registry, name: &str) -> Result<Loaded, CommandError> {
        let mut loaded = Loaded::read_light(registry, name)?;
        let all = 0..loaded.events.len();
        registry.load(&mut loaded.events, all)?;
        Ok(loaded)
    }

    /// Every artifact, every move read whole, by name.
    fn read_all(registry: &Registry) -> Result<Vec<Loaded>, CommandError> {
        let all = registry.all_events_full()?.into_iter().map(|(name, events)| {
            let state = registry::state::fold(&events, None);
            Loaded { name, events, state }
        });
        Ok(all.collect())
    }

    /// Every move, light: enough to order them and know the state at any
    /// time; [`Loaded::load`] reads the moves a command shows.
    fn read_light(registry: &Registry, name: &str) -> Result<Loaded, CommandError> {
        artifact_name(name)?;
        let events = registry.events(name)?;
        let state = registry::state::fold(&events, None);
        Ok(Loaded { name: name.to_string(), events, state })
    }

    /// Reads the moves at `which`, and the registrations of their versions
    /// (which hold the digests).
    fn load(&mut self, registry: &Registry, which: &[usize]) -> Result<(), CommandError> {
        let mut all: Vec<usize> = which.to_vec();
        for &i in which {
            if let Some(version) = self.events.get(i).and_then(|e| e.version.clone()) {
                all.extend(self.registration_index(&version));
            }
        }
        registry.load(&mut self.events, all)?;
        Ok(())
    }

    fn registration_index(&self, version: &str) -> Option<usize> {
        self.events
            .iter()
            .rposition(|e| e.action == registry::Action::Register && e.version.as_deref() == Some(version))
    }

    /// Fails, naming what exists, when the artifact has no moves.
    fn require(self, registry: &Registry) -> Result<Loaded, CommandError> {
        if !self.events.is_empty() {
            return Ok(self);
        }
        let known = registry.artifacts()?;
        let mut err = CommandError::user(format!("the registry has no artifact `{}`", self.name));
        err = match known.len() {
            0 => err.with_hint("register one with `gourd registry register NAME PATH`"),
            _ => err.with_hint(format!(
                "the registry has: {}",
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )),
        };
        Err(err)
    }

    /// The registration of `version` (the last one, if it was registered
    /// twice in some way).
    fn registration(&self, version: &str) -> Option<&Event> {
        self.events
            .iter()
            .rev()
            .find(|e| e.action == registry::Action::Register && e.version.as_deref() == Some(version))
    }

    /// An active version, or an error saying which exist.
    fn active_version(&self, version: &str) -> Result<&registry::VersionState, CommandError> {
        match self.state.version(version) {
            Some(v) if v.active => Ok(v),
            Some(_) => Err(CommandError::user(format!("{} {version} was deregistered", self.name))),
            None => {
                let known: Vec<&str> =
                    self.state.versions.iter().filter(|v| v.active).map(|v| v.version.as_str()).collect();
                let err = CommandError::user(format!("{} has no version {version}", self.name));
                Err(match known.is_empty() {
                    true => err,
                    false => err.with_hint(format!("its versions: {}", known.join(", "))),
                })
            }
        }
    }

    /// The digest the registration of `version` recorded.
    fn digest(&self, version: &str) -> Option<String> {
        self.registration(version).and_then(|e| e.digest().map(String::from))
    }
}

/// The first 12 characters of a digest or commit.
fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

/// `--at`: an instant, with an error that shows the forms accepted.
fn instant(text: &str) -> Result<i64, CommandError> {
    registry::time::parse_instant(text).ok_or_else(|| {
        CommandError::user(format!("`{text}` is not a time")).with_hint(
            "write `2026-11-30T12:00:00Z`, `2026-11-30T13:00:00+01:00` or a day, `2026-11-30` (its end, UTC)",
        )
    })
}
