//! The model registry: versions and stages as git tags in GTO's format (see
//! [`tag`]), each an annotated tag whose message carries gourd's record of
//! the move (see [`record`]). Tags are the registry: nothing else is
//! stored, so `git push`, `git clone`, GTO and DVC Studio all see it.
//!
//! Reads are shaped for repositories with many tags: the tag refs are
//! listed once (names and targets, no objects), every name is parsed (cheap),
//! and only the tags of the artifact asked about are opened.
//!
//! Writers serialise on `gourd-registry.lock` in the repository's common
//! folder (`.git`, shared by its worktrees): a writer holds it from before
//! it reads the registry until its tags are written (see [`Registry::lock`]),
//! so that two moves in one clone never take the same counter, and a move is
//! decided on the registry as it is when written (a promotion's gates
//! against the champion it replaces). Moves made in two clones may take the
//! same counter, and [`Registry::integrate`] renumbers the local one when
//! pulling.

mod index;
pub mod record;
mod refs;
pub mod state;
pub mod tag;
pub mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use git2::{ErrorCode, ObjectType, Oid, Repository, Signature};

pub use record::{LineageRef, MoveRecord, Previous};
pub use state::{ArtifactState, Event, Holder, VersionState};
pub use tag::{Action, TagName};

/// The registry's writer lock, held until dropped (see [`Registry::lock`]).
#[must_use]
pub struct WriterLock {
    _file: std::fs::File,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("the tag `{0}` exists already")]
    TagExists(String),
    #[error("the repository has no commit yet: a version is registered at a commit")]
    NoCommit,
    #[error("{0}")]
    Lock(String),
    /// A counter or version at the end of its range (a tag pushed by hand).
    #[error("{0}")]
    Exhausted(String),
}

pub struct Registry {
    repo: Repository,
}

/// A move to write: one tag.
#[derive(Debug, Clone)]
pub struct NewMove {
    pub action: Action,
    pub version: Option<String>,
    pub stage: Option<String>,
    /// Whether the tag takes GTO's counter (`#N`): stage moves and
    /// deprecations do, registrations do not.
    pub counted: bool,
    /// The commit the tag points at.
    pub commit: String,
    /// The human message (GTO shows it).
    pub message: String,
    pub record: MoveRecord,
}

/// What [`Registry::integrate`] did with fetched tags.
#[derive(Debug, Default)]
pub struct Integrated {
    /// Tags new to this clone.
    pub added: usize,
    /// Local moves that took a name the other side had taken for another
    /// move: (old name, new name). Nothing is lost.
    pub renamed: Vec<(String, String)>,
    /// Local tags dropped because the other side made the same move
    /// (a simple tag such as `name@v1.0.0!` cannot be renumbered).
    pub dropped: Vec<String>,
    /// Fetched moves not brought in: a local lightweight tag (not a move,
    /// the user's own) has their name, and is left as it is.
    pub blocked: Vec<String>,
}

const TAGS: &str = "refs/tags/";

fn exhausted_counter(artifact: &str, counter: u64) -> RegistryError {
    RegistryError::Exhausted(format!(
        "{artifact}'s tags already count to {counter}, the largest counter there is (a tag such as `{artifact}#STAGE#{counter}` was made by hand): delete that tag to move {artifact} again"
    ))
}

fn exhausted_version(artifact: &str, version: &str) -> RegistryError {
    RegistryError::Exhausted(format!(
        "{artifact} {version} has no next patch version (its patch is the largest number there is): register with `--version`"
    ))
}

impl Registry {
    /// Opens the repository holding `workspace`; `None` outside any.
    pub fn open(workspace: &Path) -> Result<Option<Registry>, RegistryError> {
        match Repository::discover(workspace) {
            Ok(repo) => Ok(Some(Registry { repo })),
            Err(err) if err.code() == ErrorCode::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Every registry tag: its parsed name and the object its ref names,
    /// without reading any object.
    pub fn tags(&self) -> Result<Vec<(TagName, String, Oid)>, RegistryError> {
        self.tags_under(TAGS, None)
    }

    fn tags_under(&self, prefix: &str, artifact: Option<&str>) -> Result<Vec<(TagName, String, Oid)>, RegistryError> {
        self.tags_collecting(prefix, artifact, &mut Vec::new())
    }

    /// The registry tags under `prefix` (of `artifact` only, if given),
    /// and into `live` the targets of every registry tag there.
    fn tags_collecting(
        &self,
        prefix: &str,
        artifact: Option<&str>,
        live: &mut Vec<Oid>,
    ) -> Result<Vec<(TagName, String, Oid)>, RegistryError> {
        let in_tag = artifact.map(tag::artifact_in_tag);
        let mut out = Vec::new();
        let listed = match refs::list(self.repo.commondir(), prefix) {
            Some(listed) => listed,
            None => {
                let mut listed = Vec::new();
                for reference in self.repo.references_glob(&format!("{prefix}*"))? {
                    let reference = reference?;
                    if let (Ok(full), Some(target)) = (reference.name(), reference.target()) {
                        listed.push((full[prefix.len()..].to_string(), target));
                    }
                }
                listed
            }
        };
        for (short, target) in listed {
            if !short.contains(['#', '@']) {
                continue;
            }
            live.push(target);
            if let Some(in_tag) = &in_tag
                && !(short.starts_with(in_tag.as_str()) && short[in_tag.len()..].starts_with(['#', '@']))
            {
                continue;
            }
            if let Some(name) = TagName::parse(&short) {
                out.push((name, short, target));
            }
        }
        Ok(out)
    }

    /// The names of the registry's artifacts.
    pub fn artifacts(&self) -> Result<BTreeSet<String>, RegistryError> {
        Ok(self.tags()?.into_iter().map(|(name, _, _)| name.artifact).collect())
    }

    /// Every move of `artifact`, in order, light: what orders the moves
    /// and names their versions (tag, commit, time), from the index where
    /// it has them. [`Registry::load`] reads the rest of the moves a
    /// command shows. Lightweight tags are not moves (GTO ignores them too).
    pub fn events(&self, artifact: &str) -> Result<Vec<Event>, RegistryError> {
        let mut index = index::Index::load(self.repo.path());
        let mut live = Vec::new();
        let tags = self.tags_collecting(TAGS, Some(artifact), &mut live)?;
        let events = self.events_of(tags, &mut index)?;
        index.save(&live);
        Ok(events)
    }

    /// [`Registry::events`] of every artifact, by name: the tags are listed
    /// and the index read once, not once per artifact (a registry of
    /// thousands of models, each listing every tag, took seconds; minutes
    /// with loose refs).
    pub fn all_events(&self) -> Result<BTreeMap<String, Vec<Event>>, RegistryError> {
        let mut index = index::Index::load(self.repo.path());
        let mut live = Vec::new();
        let mut by_artifact: BTreeMap<String, Vec<(TagName, String, Oid)>> = BTreeMap::new();
        for tag in self.tags_collecting(TAGS, None, &mut live)? {
            by_artifact.entry(tag.0.artifact.clone()).or_default().push(tag);
        }
        let mut all = BTreeMap::new();
        for (artifact, tags) in by_artifact {
            all.insert(artifact, self.events_of(tags, &mut index)?);
        }
        index.save(&live);
        Ok(all)
    }

    /// The moves the registry tags `tags` (of one artifact) make, in order,
    /// light; `index` gains what it did not know.
    fn events_of(
        &self,
        tags: Vec<(TagName, String, Oid)>,
        index: &mut index::Index,
    ) -> Result<Vec<Event>, RegistryError> {
        let mut events = Vec::new();
        for (name, short, target) in tags {
            let (commit, time) = match index.get(&target) {
                Some(known) => known,
                None => {
                    let Ok(tag) = self.repo.find_tag(target) else { continue };
                    let Some(commit) = tag_commit(&tag) else { continue };
                    let time = tag.tagger().map(|s| s.when().seconds()).unwrap_or(0);
                    index.insert(target, commit, time);
                    (commit, time)
                }
            };
            events.push(Event {
                tag: short,
                action: name.action,
                version: name.version,
                stage: name.stage,
                counter: name.counter,
                commit: commit.to_string(),
                time,
                who: String::new(),
                email: String::new(),
                message: String::new(),
                record: None,
                oid: target,
                loaded: false,
            });
        }
        // A stage move at a commit holding two versions names its version in
        // its record only.
        let mut registered: BTreeMap<&str, usize> = BTreeMap::new();
        for e in events.iter().filter(|e| e.action == Action::Register) {
            *registered.entry(e.commit.as_str()).or_default() += 1;
        }
        let ambiguous: Vec<usize> = (0..events.len())
            .filter(|&i| {
                matches!(events[i].action, Action::Assign | Action::Unassign)
                    && registered.get(events[i].commit.as_str()).is_some_and(|n| *n > 1)
            })
            .collect();
        self.load(&mut events, ambiguous)?;
        state::prepare(&mut events);
        Ok(events)
    }

    /// [`Registry::all_events`], every move read whole.
    pub fn all_events_full(&self) -> Result<BTreeMap<String, Vec<Event>>, RegistryError> {
        let mut all = self.all_events()?;
        for events in all.values_mut() {
            let moves = 0..events.len();
            self.load(events, moves)?;
        }
        Ok(all)
    }

    /// [`Registry::events`], every move read whole.
    pub fn events_full(&self, artifact: &str) -> Result<Vec<Event>, RegistryError> {
        let mut events = self.events(artifact)?;
        let all = 0..events.len();
        self.load(&mut events, all)?;
        Ok(events)
    }

    /// Reads who made the moves at `which`, their messages and records.
    pub fn load(&self, events: &mut [Event], which: impl IntoIterator<Item = usize>) -> Result<(), RegistryError> {
        for i in which {
            let Some(event) = events.get_mut(i).filter(|e| !e.loaded) else { continue };
            let tag = self.repo.find_tag(event.oid)?;
            if let Some(s) = tag.tagger() {
                event.who = String::from_utf8_lossy(s.name_bytes()).into_owned();
                event.email = String::from_utf8_lossy(s.email_bytes()).into_owned();
            }
            let (message, record) = record::split(&String::from_utf8_lossy(tag.message_bytes().unwrap_or_default()));
            // A registration's record names the version its tag does: one
            // that names another (copied onto this tag by hand) is not this
            // move's, and its digest is not this version's.
            let named = matches!(event.action, Action::Register | Action::Deregister);
            let record = record.filter(|r| !named || r.version.is_none() || r.version == event.version);
            event.message = message;
            event.record = record.map(Box::new);
            event.loaded = true;
        }
        Ok(())
    }

    /// HEAD's commit, if there is one.
    pub fn head(&self) -> Option<String> {
        self.repo.head().ok()?.peel_to_commit().ok().map(|c| c.id().to_string())
    }

    /// The commit a revision names.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        self.repo.revparse_single(revision).ok()?.peel_to_commit().ok().map(|c| c.id().to_string())
    }

    /// Who makes a move: git's `user.name` and `user.email`, and the time,
    /// `GIT_COMMITTER_DATE` when set (as git does).
    fn signature(&self) -> Result<Signature<'static>, RegistryError> {
        let base = self.repo.signature().or_else(|_| Signature::now("gourd", "gourd@localhost"))?;
        let (name, email) = (base.name().unwrap_or("gourd").to_string(), base.email().unwrap_or("").to_string());
        let date = std::env::var("GIT_COMMITTER_DATE").ok().and_then(|d| time::parse_instant(&d));
        Ok(match date {
            Some(seconds) => Signature::new(&name, &email, &git2::Time::new(seconds, 0))?,
            None => Signature::now(&name, &email)?,
        })
    }

    /// The time the next move will carry (seconds since the epoch).
    pub fn now(&self) -> Result<i64, RegistryError> {
        Ok(self.signature()?.when().seconds())
    }

    /// Waits for, then holds, the registry's writer lock: taken before the
    /// registry is read for a move, and given to [`Registry::write`].
    pub fn lock(&self) -> Result<WriterLock, RegistryError> {
        self.lock_or_wait(|| {})
    }

    /// [`Registry::lock`], calling `waiting` first when another move holds
    /// the lock (to say why nothing happens meanwhile).
    pub fn lock_or_wait(&self, waiting: impl FnOnce()) -> Result<WriterLock, RegistryError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.repo.commondir().join("gourd-registry.lock");
        let locked = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            // Never created or opened through a link planted there.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|file| match file.try_lock() {
                Ok(()) => Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {
                    waiting();
                    file.lock().map(|()| file)
                }
                Err(std::fs::TryLockError::Error(err)) => Err(err),
            });
        locked
            .map(|file| WriterLock { _file: file })
            .map_err(|e| RegistryError::Lock(format!("{}: {e}", path.display())))
    }

    /// Writes `moves` of `artifact` as tags, all or none, numbering the
    /// counted ones after the highest counter of the artifact's tags.
    /// Returns the tag names. The caller holds the writer lock since it
    /// read what the moves were decided on.
    pub fn write(&self, _lock: &WriterLock, artifact: &str, moves: &[NewMove]) -> Result<Vec<String>, RegistryError> {
        let signature = self.signature()?;
        let mut counter = self.max_counter(artifact)?;
        let mut named = Vec::new();
        for m in moves {
            let counter = match m.counted {
                true => {
                    counter = counter.checked_add(1).ok_or_else(|| exhausted_counter(artifact, counter))?;
                    Some(counter)
                }
                false => None,
            };
            let name = TagName {
                artifact: artifact.to_string(),
                action: m.action,
                version: m.version.clone(),
                stage: m.stage.clone(),
                counter,
            };
            let short = name.render();
            if self.repo.find_reference(&format!("{TAGS}{short}")).is_ok() {
                return Err(RegistryError::TagExists(short));
            }
            let target = self.repo.find_object(Oid::from_str(&m.commit)?, Some(ObjectType::Commit))?;
            let message = record::compose(&m.message, &m.record);
            let oid = self.repo.tag_annotation_create(&short, &target, &signature, &message)?;
            named.push((short, oid));
        }
        self.create_refs(&named, "gourd registry")?;
        Ok(named.into_iter().map(|(name, _)| name).collect())
    }

    /// Creates the tag refs in one transaction; fails, creating none, when
    /// one exists.
    fn create_refs(&self, named: &[(String, Oid)], why: &str) -> Result<(), RegistryError> {
        let mut transaction = self.repo.transaction()?;
        for (short, _) in named {
            transaction.lock_ref(&format!("{TAGS}{short}"))?;
        }
        for (short, oid) in named {
            let full = format!("{TAGS}{short}");
            if self.repo.find_reference(&full).is_ok() {
                return Err(RegistryError::TagExists(short.clone()));
            }
            transaction.set_target(&full, *oid, None, why)?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn max_counter(&self, artifact: &str) -> Result<u64, RegistryError> {
        Ok(self.tags_under(TAGS, Some(artifact))?.iter().filter_map(|(n, _, _)| n.counter).max().unwrap_or(0))
    }

    /// The names of every local registry tag.
    pub fn local_tag_names(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.tags()?.into_iter().map(|(_, short, _)| short).collect())
    }

    /// Brings the registry tags fetched under `prefix` (a ref folder ending
    /// in `/`, e.g. `refs/gourd-fetch/origin/tags/`) into `refs/tags/`.
    /// Where a local tag has the name of a different fetched one (two
    /// clones made a move each and took the same counter or version), the
    /// fetched tag keeps the name and the local move is renamed: a counted
    /// tag takes the next counter, a registration the next free patch
    /// version. Nothing is lost; the local move keeps its time, author and
    /// record. Fetched refs are deleted afterwards.
    pub fn integrate(&self, prefix: &str) -> Result<Integrated, RegistryError> {
        let _lock = self.lock()?;
        let fetched = self.tags_under(prefix, None)?;
        let local: BTreeMap<String, (TagName, Oid)> =
            self.tags()?.into_iter().map(|(name, short, oid)| (short, (name, oid))).collect();
        let mut taken: BTreeSet<String> = local.keys().cloned().collect();
        taken.extend(fetched.iter().map(|(_, short, _)| short.clone()));
        let mut counters: BTreeMap<String, u64> = BTreeMap::new();
        for name in fetched.iter().map(|(n, _, _)| n).chain(local.values().map(|(n, _)| n)) {
            if let Some(c) = name.counter {
                let max = counters.entry(name.artifact.clone()).or_default();
                *max = (*max).max(c);
            }
        }
        let mut report = Integrated::default();
        let result = self.bring_in(&fetched, &local, &mut taken, &mut counters, &mut report);
        // The fetched refs go, whatever happened: they are a copy of the
        // remote's, fetched again next time.
        let names: Vec<String> = self
            .repo
            .references_glob(&format!("{prefix}*"))?
            .filter_map(|r| r.ok()?.name().ok().map(String::from))
            .collect();
        for name in names {
            if let Ok(mut reference) = self.repo.find_reference(&name) {
                let _ = reference.delete();
            }
        }
        result.map(|()| report)
    }

    /// [`Registry::integrate`]'s moves into `refs/tags/`.
    fn bring_in(
        &self,
        fetched: &[(TagName, String, Oid)],
        local: &BTreeMap<String, (TagName, Oid)>,
        taken: &mut BTreeSet<String>,
        counters: &mut BTreeMap<String, u64>,
        report: &mut Integrated,
    ) -> Result<(), RegistryError> {
        // Local moves to rename, renamed in the order they were made (by
        // their counter), whatever order the fetched names come in: an
        // unassignment and the assignment it made way for keep their order.
        let mut colliding = Vec::new();
        for (name, short, theirs) in fetched {
            let full = format!("{TAGS}{short}");
            match local.get(short) {
                Some((_, ours)) if ours == theirs => {}
                // A lightweight tag is no move (GTO's moves are annotated):
                // the user's own, kept.
                Some((_, ours)) if self.repo.find_tag(*ours).is_err() => report.blocked.push(short.clone()),
                Some((_, ours)) => colliding.push((name, short, *theirs, *ours)),
                None => {
                    self.repo.reference(&full, *theirs, false, "gourd pull")?;
                    report.added += 1;
                }
            }
        }
        colliding.sort_by_key(|(name, short, _, _)| (name.counter.is_none(), name.counter, short.as_str()));
        for (name, short, theirs, ours) in colliding {
            match self.renamed(name, ours, counters, taken)? {
                Some((new_name, new_oid)) => {
                    taken.insert(new_name.clone());
                    self.create_refs(&[(new_name.clone(), new_oid)], "gourd pull: renumbered")?;
                    report.renamed.push((short.clone(), new_name));
                }
                None => report.dropped.push(short.clone()),
            }
            self.repo.reference(&format!("{TAGS}{short}"), theirs, true, "gourd pull")?;
        }
        Ok(())
    }

    /// A copy of the local tag `ours` under a free name; `None` for a tag
    /// that cannot be renamed without changing its meaning.
    fn renamed(
        &self,
        name: &TagName,
        ours: Oid,
        counters: &mut BTreeMap<String, u64>,
        taken: &BTreeSet<String>,
    ) -> Result<Option<(String, Oid)>, RegistryError> {
        let tag = self.repo.find_tag(ours)?;
        let mut new = name.clone();
        let original = String::from_utf8_lossy(tag.message_bytes().unwrap_or_default()).into_owned();
        let (mut human, mut record) = record::split(&original);
        if name.counter.is_some() {
            let next = counters.entry(name.artifact.clone()).or_default();
            *next = next.checked_add(1).ok_or_else(|| exhausted_counter(&name.artifact, *next))?;
            new.counter = Some(*next);
        } else if name.action == Action::Register {
            let Some(mut version) = name.version.as_deref().and_then(tag::parse_version) else { return Ok(None) };
            let old = name.version.clone().unwrap_or_default();
            loop {
                let next = tag::next_patch(&version).ok_or_else(|| exhausted_version(&name.artifact, &old))?;
                version = tag::parse_version(&next).expect("a bumped version parses");
                new.version = Some(next);
                if !taken.contains(&new.render()) {
                    break;
                }
            }
            human = format!(
                "{human}\n\n(Registered as {old} in another clone, which `gourd pull` renamed: the remote had another {old}.)"
            );
            if let Some(record) = &mut record {
                record.version = new.version.clone();
            }
        } else {
            return Ok(None);
        }
        let message = match &record {
            Some(record) => record::compose(&human, record),
            None => original,
        };
        let tagger = tag.tagger().map(|s| s.to_owned());
        let tagger = match tagger {
            Some(s) => s,
            None => self.signature()?,
        };
        let target = tag.target()?;
        let short = new.render();
        let oid = self.repo.tag_annotation_create(&short, &target, &tagger, &message)?;
        Ok(Some((short, oid)))
    }
}

/// The commit a tag object points at, through nested tags.
fn tag_commit(tag: &git2::Tag<'_>) -> Option<Oid> {
    match tag.target_type() {
        Some(ObjectType::Commit) => Some(tag.target_id()),
        _ => tag.target().ok()?.peel_to_commit().ok().map(|c| c.id()),
    }
}

#[cfg(test)]
mod tests;
