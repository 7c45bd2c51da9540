//! An artifact's state folded from its moves: the order of moves, the
//! version each stage move names, and the state at any instant.

use gourd_lineage::registry::state::{Event, fold, prepare};
use gourd_lineage::registry::{Action, MoveRecord, TagName};

fn event(tag: &str, commit: &str, time: i64) -> Event {
    let name = TagName::parse(tag).unwrap();
    Event {
        tag: tag.into(),
        action: name.action,
        version: name.version,
        stage: name.stage,
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

fn with_record(mut event: Event, version: &str) -> Event {
    event.record = Some(Box::new(MoveRecord { version: Some(version.into()), ..MoveRecord::default() }));
    event
}

fn tags(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.tag.as_str()).collect()
}

#[test]
fn moves_are_ordered_by_time_then_counter_then_gto_priority() {
    // One second, no counters: GTO's priorities.
    let mut events = vec![
        event("m@deprecated", "c", 5),
        event("m#prod!", "c", 5),
        event("m#prod", "c", 5),
        event("m@v1.0.0!", "c", 5),
        event("m@v1.0.0", "c", 5),
        event("m@created", "c", 5),
    ];
    prepare(&mut events);
    let actions: Vec<Action> = events.iter().map(|e| e.action).collect();
    use Action::*;
    assert_eq!(actions, [Create, Register, Deregister, Assign, Unassign, Deprecate]);
    // The counter before the priority, the time before the counter.
    let mut events = vec![
        event("m#prod#2", "c", 5),
        event("m#prod!#1", "c", 5),
        event("m@deprecated#9", "c", 4),
        event("m@v1.0.0", "c", 6),
        event("m#dev#3", "c", -1),
    ];
    prepare(&mut events);
    assert_eq!(tags(&events), ["m#dev#3", "m@deprecated#9", "m#prod!#1", "m#prod#2", "m@v1.0.0"]);
    assert_eq!(events[0].order_key(), (-1, 3, 5));
    assert_eq!(events[4].order_key(), (6, 0, 1));
}

/// Moves equal in time, counter and kind (two versions registered in one
/// second) come in the order of their tags, whatever order the tags were
/// listed in: every read gives the same history.
#[test]
fn moves_of_one_second_and_kind_are_ordered_by_tag() {
    let listed = ["m@v1.0.1", "m@v1.0.0", "m@v2.0.0", "m@v1.0.2"];
    let mut orders = Vec::new();
    for rotation in 0..listed.len() {
        let mut tags_listed = listed.to_vec();
        tags_listed.rotate_left(rotation);
        let mut events: Vec<Event> = tags_listed.iter().map(|tag| event(tag, "c", 7)).collect();
        prepare(&mut events);
        orders.push(tags(&events).into_iter().map(String::from).collect::<Vec<_>>());
    }
    assert!(orders.iter().all(|order| order == &["m@v1.0.0", "m@v1.0.1", "m@v1.0.2", "m@v2.0.0"]), "{orders:?}");
}

#[test]
fn a_stage_move_names_the_version_at_its_commit() {
    let mut events = vec![
        event("m@v1.0.0", "c1", 1),
        event("m@v1.1.0", "c1", 2),
        event("m@v2.0.0", "c2", 3),
        // Two versions at c1: the record says which.
        with_record(event("m#a#1", "c1", 4), "v1.0.0"),
        // No record: the version registered last at c1.
        event("m#b#2", "c1", 5),
        // A record naming a version not registered at c2: c2's version wins.
        with_record(event("m#c#3", "c2", 6), "v1.0.0"),
        // Nothing registered at c3: the record's version, else the commit.
        with_record(event("m#d#4", "c3", 7), "v9.0.0"),
        event("m#e#5", "c3", 8),
        with_record(event("m#a!#6", "c1", 9), "v1.0.0"),
    ];
    prepare(&mut events);
    let version = |tag: &str| events.iter().find(|e| e.tag == tag).unwrap().version.clone().unwrap();
    assert_eq!(version("m#a#1"), "v1.0.0");
    assert_eq!(version("m#b#2"), "v1.1.0");
    assert_eq!(version("m#c#3"), "v2.0.0");
    assert_eq!(version("m#d#4"), "v9.0.0");
    assert_eq!(version("m#e#5"), "c3");
    assert_eq!(version("m#a!#6"), "v1.0.0");
    assert_eq!(version("m@v1.1.0"), "v1.1.0", "registrations keep their own");
    let state = fold(&events, Some(8));
    assert_eq!(state.stages["a"].version, "v1.0.0");
    assert_eq!(state.stages["a"].assigned_by, 3);
    assert_eq!(state.stages["b"].version, "v1.1.0");
    assert!(!fold(&events, None).stages.contains_key("a"), "unassigned at 9");
}

#[test]
fn the_state_at_an_instant_includes_the_moves_of_that_second() {
    let mut events = vec![event("m@v0.0.1", "c1", 10), event("m#prod#1", "c1", 20), event("m@v0.0.1!", "c1", 30)];
    prepare(&mut events);
    assert!(fold(&events, Some(9)).versions.is_empty());
    let at_10 = fold(&events, Some(10));
    assert_eq!(at_10.versions.len(), 1);
    assert!(at_10.stages.is_empty());
    assert_eq!(fold(&events, Some(20)).stages["prod"].version, "v0.0.1");
    assert_eq!(fold(&events, Some(29)).stages["prod"].assigned_by, 1);
    let at_30 = fold(&events, Some(30));
    assert!(at_30.stages.is_empty(), "deregistering leaves every stage");
    assert!(!at_30.version("v0.0.1").unwrap().active);
    assert!(at_30.latest().is_none());
}

/// Register v1, prod v1, register v2, prod v2, deregister v1, all in one
/// second: the deregistration (no counter) sorts before the stage moves
/// (counted), as GTO's history sorts it; the prod move of v1 that then
/// follows it must not bring the deregistered version back. GTO leaves a
/// deregistered version out of every stage.
#[test]
fn a_deregistered_version_holds_no_stage_whatever_the_order_in_its_second() {
    let mut events = vec![
        event("m@v0.0.1", "c1", 7),
        event("m#prod#1", "c1", 7),
        event("m@v0.0.2", "c2", 7),
        event("m#prod#2", "c2", 7),
        event("m@v0.0.1!", "c1", 7),
    ];
    prepare(&mut events);
    assert_eq!(tags(&events), ["m@v0.0.1", "m@v0.0.2", "m@v0.0.1!", "m#prod#1", "m#prod#2"]);
    let state = fold(&events, None);
    assert_eq!(state.stages["prod"].version, "v0.0.2");
    // Without the second version: prod is empty.
    events.retain(|e| e.commit == "c1");
    prepare(&mut events);
    let state = fold(&events, None);
    assert!(state.stages.is_empty(), "{:?}", state.stages);
    assert!(!state.version("v0.0.1").unwrap().active);
    // Registered again, it can be promoted again.
    events.push(event("m@v0.0.1", "c1", 8));
    events.push(event("m#prod#3", "c1", 9));
    prepare(&mut events);
    assert_eq!(fold(&events, None).stages["prod"].version, "v0.0.1");
}

#[test]
fn versions_greatest_first_and_the_latest_active() {
    let mut events = vec![
        event("m@v0.9.0", "c1", 1),
        event("m@v0.10.0", "c2", 2),
        event("m@v0.10.0-rc.1", "c3", 3),
        event("m@v0.2.0", "c4", 4),
    ];
    prepare(&mut events);
    let state = fold(&events, None);
    let order: Vec<&str> = state.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(order, ["v0.10.0", "v0.10.0-rc.1", "v0.9.0", "v0.2.0"], "semantic precedence, not text");
    assert_eq!(state.latest().unwrap().version, "v0.10.0");
    let v09 = state.version("v0.9.0").unwrap();
    assert_eq!((v09.commit.as_str(), v09.active, v09.registered_by), ("c1", true, 0));
    assert_eq!(state.version("v0.2.0").unwrap().commit, "c4");
    assert!(state.version("v0.3.0").is_none());
    events.push(event("m@v0.10.0!", "c2", 5));
    prepare(&mut events);
    let state = fold(&events, None);
    assert_eq!(state.latest().unwrap().version, "v0.10.0-rc.1", "the greatest still active");
    assert_eq!(state.versions.len(), 4, "a deregistered version stays listed");
}

#[test]
fn deprecation_lasts_until_the_next_registration_or_assignment() {
    let mut events = vec![
        event("m@v0.0.1", "c1", 1),
        event("m@deprecated#1", "c1", 2),
        event("m#prod#2", "c1", 3),
        event("m@deprecated#3", "c1", 4),
        event("m@v0.0.2", "c2", 5),
    ];
    prepare(&mut events);
    let deprecated: Vec<bool> = (1..=5).map(|at| fold(&events, Some(at)).deprecated).collect();
    assert_eq!(deprecated, [false, true, false, true, false]);
}

#[test]
fn a_move_carries_its_digest() {
    let mut moved = event("m#prod#1", "c1", 1);
    assert_eq!(moved.digest(), None);
    moved.record = Some(Box::new(MoveRecord { digest: Some("ab12".into()), ..MoveRecord::default() }));
    assert_eq!(moved.digest(), Some("ab12"));
}
