//! An artifact's registry state at any instant, folded from its moves in
//! order (tag time, then GTO's counter).
//!
//! A stage holds the version most recently assigned to it and not
//! unassigned since. gourd unassigns the previous holder whenever it
//! promotes another version, so a stage holds one version, and GTO (which
//! ranks a stage's versions by their first assignment) reads the same
//! holder after a rollback.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::record::MoveRecord;
use super::tag::{Action, parse_version};

/// One registry tag of an artifact, read.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub tag: String,
    pub action: Action,
    /// The version moved: from the tag name, or for a stage move, the
    /// version registered at the tagged commit (as GTO finds it).
    pub version: Option<String>,
    pub stage: Option<String>,
    pub counter: Option<u64>,
    /// The tagged commit.
    pub commit: String,
    /// Tagger time, seconds since the epoch.
    pub time: i64,
    pub who: String,
    pub email: String,
    /// The human part of the tag message.
    pub message: String,
    /// Boxed: events are sorted by the ten thousand, and moving a record
    /// inline would dominate that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<MoveRecord>>,
    /// The tag object.
    #[serde(skip)]
    pub oid: git2::Oid,
    /// Whether `who`, `email`, `message` and `record` were read (see
    /// `Registry::load`); a light event has only what orders it.
    #[serde(skip)]
    pub loaded: bool,
}

impl Event {
    /// The order of moves: time, then counter, then what GTO's priorities say
    /// for moves of the same second without counters.
    pub fn order_key(&self) -> (i64, u64, u8) {
        let priority = match self.action {
            Action::Create => 0,
            Action::Register => 1,
            Action::Deregister => 2,
            Action::Assign => 5,
            Action::Unassign => 6,
            Action::Deprecate => 7,
        };
        (self.time, self.counter.unwrap_or(0), priority)
    }

    /// The artifact's digest as this move recorded it.
    pub fn digest(&self) -> Option<&str> {
        self.record.as_ref()?.digest.as_deref()
    }
}

/// A version as the state knows it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionState {
    pub version: String,
    pub commit: String,
    /// Registered and not deregistered.
    pub active: bool,
    /// The index of its registration among the artifact's events.
    pub registered_by: usize,
}

/// The version holding a stage, and the assignment that put it there.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub version: String,
    pub assigned_by: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ArtifactState {
    /// Every version registered so far, greatest first.
    pub versions: Vec<VersionState>,
    pub stages: BTreeMap<String, Holder>,
    pub deprecated: bool,
}

impl ArtifactState {
    pub fn version(&self, version: &str) -> Option<&VersionState> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The greatest active version (GTO's `@latest`, `@greatest`).
    pub fn latest(&self) -> Option<&VersionState> {
        self.versions.iter().find(|v| v.active)
    }
}

/// Sorts `events` into the order of moves and names each stage move's
/// version: the version registered at its commit (latest registration
/// wins), else its record's version, else the commit itself (GTO does
/// the same for a stage assigned to an unregistered commit).
pub fn prepare(events: &mut Vec<Event>) {
    // Sort positions, then move each event once. Moves equal in time,
    // counter and kind (two registrations in one second) are ordered by
    // their tags' names: the tags are listed in no fixed order, and every
    // read must give the same history.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        (events[a].order_key(), &events[a].tag).cmp(&(events[b].order_key(), &events[b].tag))
    });
    let mut slots: Vec<Option<Event>> = events.drain(..).map(Some).collect();
    events.extend(order.into_iter().filter_map(|i| slots[i].take()));
    // Borrowed from the registrations, then written to the stage moves.
    let mut by_commit: HashMap<&str, &str> = HashMap::new();
    let mut pairs: HashSet<(&str, &str)> = HashSet::new();
    for event in events.iter() {
        if event.action == Action::Register
            && let Some(version) = &event.version
        {
            by_commit.insert(&event.commit, version);
            pairs.insert((&event.commit, version));
        }
    }
    let versions: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.action, Action::Assign | Action::Unassign))
        .map(|(i, event)| {
            let recorded = event.record.as_ref().and_then(|r| r.version.as_deref());
            let version = match recorded {
                // Two versions at one commit: the record says which.
                Some(v) if pairs.contains(&(event.commit.as_str(), v)) => v,
                recorded => by_commit.get(event.commit.as_str()).copied().or(recorded).unwrap_or(&event.commit),
            };
            (i, version.to_string())
        })
        .collect();
    for (i, version) in versions {
        events[i].version = Some(version);
    }
}

/// The state after the moves of `events` (prepared) up to and including
/// the instant `at` (all of them with `None`).
pub fn fold(events: &[Event], at: Option<i64>) -> ArtifactState {
    let mut replay = Replay::default();
    for (index, event) in events.iter().enumerate() {
        if at.is_some_and(|at| event.time > at) {
            break;
        }
        replay.apply(index, event);
    }
    replay.state(events)
}

/// The state, move by move. Borrows names from the events: replaying
/// 10,000 moves allocates only for what the state keeps.
#[derive(Default)]
pub struct Replay<'a> {
    /// Version → (its registration's index, still registered).
    versions: BTreeMap<&'a str, (usize, bool)>,
    /// Per stage: version → the index of its last assignment.
    active: BTreeMap<&'a str, BTreeMap<&'a str, usize>>,
    deprecated: bool,
}

impl<'a> Replay<'a> {
    pub fn apply(&mut self, index: usize, event: &'a Event) {
        let version = event.version.as_deref().unwrap_or_default();
        match event.action {
            Action::Register => {
                self.versions.insert(version, (index, true));
                self.deprecated = false;
            }
            Action::Deregister => {
                if let Some(v) = self.versions.get_mut(version) {
                    v.1 = false;
                }
                for holders in self.active.values_mut() {
                    holders.remove(version);
                }
            }
            Action::Assign => {
                // A deregistered version holds no stage, as GTO reads it:
                // whatever the order of the moves, which within one second
                // put the deregistration (no counter) before the stage moves
                // (counted) that came first.
                if self.versions.get(version).is_some_and(|(_, active)| !active) {
                    return;
                }
                let stage = event.stage.as_deref().unwrap_or_default();
                self.active.entry(stage).or_default().insert(version, index);
                self.deprecated = false;
            }
            Action::Unassign => {
                let stage = event.stage.as_deref().unwrap_or_default();
                self.active.entry(stage).or_default().remove(version);
            }
            Action::Deprecate => self.deprecated = true,
            Action::Create => {}
        }
    }

    /// The version holding `stage` now.
    pub fn holder(&self, stage: &str) -> Option<Holder> {
        let holders = self.active.get(stage)?;
        let (version, index) = holders.iter().max_by_key(|(_, index)| **index)?;
        Some(Holder { version: version.to_string(), assigned_by: *index })
    }

    /// The state now; `events` are those replayed.
    pub fn state(&self, events: &[Event]) -> ArtifactState {
        let stages = self.active.keys().filter_map(|stage| Some((stage.to_string(), self.holder(stage)?))).collect();
        let mut versions: Vec<VersionState> = self
            .versions
            .iter()
            .map(|(version, (index, active))| VersionState {
                version: version.to_string(),
                commit: events[*index].commit.clone(),
                active: *active,
                registered_by: *index,
            })
            .collect();
        // Greatest first: semantic versions by precedence, before any other name.
        versions.sort_by_cached_key(|v| {
            let semver = parse_version(&v.version);
            std::cmp::Reverse((semver.is_some(), semver, v.version.clone()))
        });
        ArtifactState { versions, stages, deprecated: self.deprecated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tag::TagName;

    pub(crate) fn event(tag: &str, commit: &str, time: i64) -> Event {
        let name = TagName::parse(tag).unwrap();
        Event {
            tag: tag.into(),
            action: name.action,
            version: name.version.clone(),
            stage: name.stage.clone(),
            counter: name.counter,
            commit: commit.into(),
            time,
            who: "t".into(),
            email: "t@x".into(),
            message: String::new(),
            record: None,
            oid: git2::Oid::ZERO_SHA1,
            loaded: true,
        }
    }

    #[test]
    fn a_stage_holds_the_last_assigned_version_and_rollbacks_work() {
        let mut events = vec![
            event("m@v0.0.1", "c1", 10),
            event("m@v0.0.2", "c2", 20),
            event("m#prod#1", "c1", 30),
            event("m#prod!#2", "c1", 40),
            event("m#prod#3", "c2", 40),
            event("m#prod!#4", "c2", 50),
            event("m#prod#5", "c1", 50),
        ];
        prepare(&mut events);
        let stage = |at| fold(&events, Some(at)).stages.get("prod").map(|h| h.version.clone());
        assert_eq!(stage(25), None);
        assert_eq!(stage(30).as_deref(), Some("v0.0.1"));
        assert_eq!(stage(45).as_deref(), Some("v0.0.2"));
        assert_eq!(stage(50).as_deref(), Some("v0.0.1"), "the rollback");
        let now = fold(&events, None);
        assert_eq!(now.latest().unwrap().version, "v0.0.2");
        assert_eq!(now.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["v0.0.2", "v0.0.1"]);
    }

    #[test]
    fn moves_of_one_second_follow_the_counter_and_deregistering_leaves_stages() {
        let mut events = vec![
            event("m#prod#10", "c2", 5),
            event("m@v0.0.2", "c2", 5),
            event("m@v0.0.1", "c1", 5),
            event("m#prod#9", "c1", 5),
        ];
        prepare(&mut events);
        assert_eq!(fold(&events, None).stages["prod"].version, "v0.0.2", "#10 after #9, not before it");
        events.push(event("m@v0.0.2!", "c2", 6));
        prepare(&mut events);
        let state = fold(&events, None);
        assert_eq!(state.stages["prod"].version, "v0.0.1", "v0.0.1 was never unassigned");
        assert!(!state.version("v0.0.2").unwrap().active);
        assert_eq!(state.latest().unwrap().version, "v0.0.1");
    }
}
