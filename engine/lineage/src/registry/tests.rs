use std::process::Command;

use super::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["config", "user.email", "t@example.com"]);
    git(dir.path(), &["config", "user.name", "T"]);
    commit(dir.path(), "one");
    dir
}

fn commit(dir: &Path, what: &str) -> String {
    std::fs::write(dir.join("file"), what).unwrap();
    git(dir, &["add", "file"]);
    git(dir, &["commit", "-q", "-m", what]);
    git(dir, &["rev-parse", "HEAD"])
}

fn mv(action: Action, version: Option<&str>, stage: Option<&str>, commit: &str) -> NewMove {
    NewMove {
        action,
        version: version.map(String::from),
        stage: stage.map(String::from),
        counted: !matches!(action, Action::Register | Action::Deregister),
        commit: commit.to_string(),
        message: format!("{} {}", action.name(), version.or(stage).unwrap_or_default()),
        record: MoveRecord {
            action: Some(action),
            version: version.map(String::from),
            digest: Some("d".repeat(64)),
            ..MoveRecord::default()
        },
    }
}

#[test]
fn moves_are_gto_tags_and_read_back_in_order() {
    let dir = repo();
    let registry = Registry::open(dir.path()).unwrap().unwrap();
    let c1 = registry.head().unwrap();
    let names = registry
        .write(&registry.lock().unwrap(), "pumpkin", &[mv(Action::Register, Some("v0.0.1"), None, &c1)])
        .unwrap();
    assert_eq!(names, ["pumpkin@v0.0.1"]);
    let names = registry
        .write(
            &registry.lock().unwrap(),
            "pumpkin",
            &[mv(Action::Assign, None, Some("prod"), &c1), mv(Action::Assign, None, Some("staging"), &c1)],
        )
        .unwrap();
    assert_eq!(names, ["pumpkin#prod#1", "pumpkin#staging#2"]);
    assert_eq!(
        registry.write(&registry.lock().unwrap(), "pumpkin", &[mv(Action::Unassign, None, Some("prod"), &c1)]).unwrap(),
        ["pumpkin#prod!#3"]
    );
    // Another artifact has counters of its own.
    assert_eq!(
        registry.write(&registry.lock().unwrap(), "models:other", &[mv(Action::Deprecate, None, None, &c1)]).unwrap(),
        ["models=other@deprecated#1"]
    );
    assert!(git(dir.path(), &["cat-file", "-t", "pumpkin#prod#1"]).contains("tag"), "annotated");
    let events = registry.events_full("pumpkin").unwrap();
    let tags: Vec<&str> = events.iter().map(|e| e.tag.as_str()).collect();
    assert_eq!(tags, ["pumpkin@v0.0.1", "pumpkin#prod#1", "pumpkin#staging#2", "pumpkin#prod!#3"]);
    assert_eq!(events[1].version.as_deref(), Some("v0.0.1"));
    assert_eq!(events[1].message, "assign prod");
    assert_eq!(events[1].record.as_ref().unwrap().digest.as_deref(), Some("d".repeat(64).as_str()));
    assert_eq!(events[1].who, "T");
    let state = state::fold(&events, None);
    assert_eq!(state.stages.keys().collect::<Vec<_>>(), ["staging"]);
    assert_eq!(registry.artifacts().unwrap().into_iter().collect::<Vec<_>>(), ["models:other", "pumpkin"]);
    // A name taken already is refused, and nothing of the batch is written.
    let again = registry.write(
        &registry.lock().unwrap(),
        "pumpkin",
        &[mv(Action::Assign, None, Some("dev"), &c1), mv(Action::Register, Some("v0.0.1"), None, &c1)],
    );
    assert!(matches!(again, Err(RegistryError::TagExists(t)) if t == "pumpkin@v0.0.1"));
    assert!(git(dir.path(), &["tag", "-l", "pumpkin#dev*"]).is_empty());
}

#[test]
fn tags_gto_wrote_are_moves_too_and_lightweight_tags_are_not() {
    let dir = repo();
    let c1 = git(dir.path(), &["rev-parse", "HEAD"]);
    git(dir.path(), &["tag", "-a", "pumpkin@v1.0.0", "-m", "Registering artifact pumpkin version v1.0.0"]);
    git(dir.path(), &["tag", "-a", "pumpkin#prod#1", "-m", "Assigning stage prod"]);
    git(dir.path(), &["tag", "pumpkin#staging#2"]);
    git(dir.path(), &["tag", "-a", "release-1", "-m", "not ours"]);
    let registry = Registry::open(dir.path()).unwrap().unwrap();
    let events = registry.events_full("pumpkin").unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].version.as_deref(), Some("v1.0.0"), "found by commit");
    assert_eq!(events[1].commit, c1);
    assert!(events[1].record.is_none());
    assert_eq!(state::fold(&events, None).stages["prod"].version, "v1.0.0");
}

#[test]
fn a_registration_record_naming_another_version_is_not_read() {
    let dir = repo();
    let registry = Registry::open(dir.path()).unwrap().unwrap();
    let c1 = registry.head().unwrap();
    registry.write(&registry.lock().unwrap(), "pumpkin", &[mv(Action::Register, Some("v0.0.1"), None, &c1)]).unwrap();
    let c2 = commit(dir.path(), "two");
    let forged = |version: &str| {
        let record =
            MoveRecord { version: Some(version.into()), digest: Some("e".repeat(64)), ..MoveRecord::default() };
        record::compose("by hand", &record)
    };
    git(dir.path(), &["tag", "-a", "pumpkin@v0.0.3", "-m", &forged("v9.9.9"), &c2]);
    git(dir.path(), &["tag", "-a", "pumpkin#prod#1", "-m", &forged("v7.7.7"), &c2]);
    let events = registry.events_full("pumpkin").unwrap();
    let records: Vec<(&str, Option<&str>)> =
        events.iter().map(|e| (e.tag.as_str(), e.record.as_ref().and_then(|r| r.version.as_deref()))).collect();
    assert_eq!(
        records,
        [("pumpkin@v0.0.1", Some("v0.0.1")), ("pumpkin@v0.0.3", None), ("pumpkin#prod#1", Some("v7.7.7"))],
        "a registration's record must name its version; an assignment's names the version it assigned"
    );
    assert!(events[1].record.is_none(), "no digest is taken from a record of another version");
}

#[test]
fn a_move_carries_the_time_it_was_made() {
    let dir = repo();
    let registry = Registry::open(dir.path()).unwrap().unwrap();
    let c1 = registry.head().unwrap();
    let before = registry.now().unwrap();
    registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.1"), None, &c1)]).unwrap();
    let event = &registry.events_full("m").unwrap()[0];
    assert!(event.time >= before && event.time <= before + 5);
}

#[test]
fn pulling_renumbers_a_local_move_that_took_a_fetched_name() {
    let (a, b) = (repo(), tempfile::tempdir().unwrap());
    git(b.path(), &["clone", "-q", a.path().to_str().unwrap(), "."]);
    git(b.path(), &["config", "user.email", "b@example.com"]);
    git(b.path(), &["config", "user.name", "B"]);
    let (ra, rb) = (Registry::open(a.path()).unwrap().unwrap(), Registry::open(b.path()).unwrap().unwrap());
    let c1 = ra.head().unwrap();
    ra.write(&ra.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.1"), None, &c1)]).unwrap();
    git(b.path(), &["fetch", "-q", "origin", "+refs/tags/*:refs/tags/*"]);
    // Both clones register v0.0.2 and assign prod#1 at once.
    let ca = commit(a.path(), "a2");
    let cb = commit(b.path(), "b2");
    ra.write(&ra.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.2"), None, &ca)]).unwrap();
    ra.write(&ra.lock().unwrap(), "m", &[mv(Action::Assign, None, Some("prod"), &ca)]).unwrap();
    rb.write(&rb.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.2"), None, &cb)]).unwrap();
    rb.write(&rb.lock().unwrap(), "m", &[mv(Action::Assign, None, Some("prod"), &cb)]).unwrap();
    git(b.path(), &["fetch", "-q", "origin", "+refs/tags/*:refs/gourd-fetch/origin/tags/*"]);
    let report = rb.integrate("refs/gourd-fetch/origin/tags/").unwrap();
    let mut renamed = report.renamed.clone();
    renamed.sort();
    assert_eq!(
        renamed,
        [("m#prod#1".to_string(), "m#prod#2".to_string()), ("m@v0.0.2".to_string(), "m@v0.0.3".to_string())]
    );
    assert!(git(b.path(), &["for-each-ref", "refs/gourd-fetch"]).is_empty(), "fetched refs are gone");
    let events = rb.events_full("m").unwrap();
    assert_eq!(events.len(), 5, "every move of both clones: {events:#?}");
    let ours = events.iter().find(|e| e.tag == "m#prod#2").unwrap();
    assert_eq!((ours.version.as_deref(), ours.who.as_str(), ours.commit.as_str()), (Some("v0.0.3"), "B", cb.as_str()));
    let theirs = events.iter().find(|e| e.tag == "m#prod#1").unwrap();
    assert_eq!(theirs.version.as_deref(), Some("v0.0.2"));
    assert_eq!(theirs.commit, ca);
    let registered = events.iter().find(|e| e.tag == "m@v0.0.3").unwrap();
    assert_eq!(registered.record.as_ref().unwrap().version.as_deref(), Some("v0.0.3"));
    assert!(registered.message.contains("Registered as v0.0.2 in another clone"));
    // Integrating again changes nothing.
    git(b.path(), &["fetch", "-q", "origin", "+refs/tags/*:refs/gourd-fetch/origin/tags/*"]);
    let again = rb.integrate("refs/gourd-fetch/origin/tags/").unwrap();
    assert_eq!((again.added, again.renamed.len(), again.dropped.len()), (0, 0, 0));
}

/// A local lightweight tag with a fetched move's name is the user's own
/// (not a move): kept, the fetched move reported as not brought in, and
/// the fetched refs cleared all the same.
#[test]
fn pulling_keeps_a_local_lightweight_tag_that_has_a_fetched_moves_name() {
    let (a, b) = (repo(), tempfile::tempdir().unwrap());
    git(b.path(), &["clone", "-q", a.path().to_str().unwrap(), "."]);
    let ra = Registry::open(a.path()).unwrap().unwrap();
    let c1 = ra.head().unwrap();
    ra.write(&ra.lock().unwrap(), "zz", &[mv(Action::Register, Some("v0.0.1"), None, &c1)]).unwrap();
    ra.write(&ra.lock().unwrap(), "zz", &[mv(Action::Register, Some("v0.0.2"), None, &c1)]).unwrap();
    git(b.path(), &["tag", "zz@v0.0.1"]);
    let mine = git(b.path(), &["rev-parse", "zz@v0.0.1"]);
    git(b.path(), &["fetch", "-q", "--no-tags", "origin", "+refs/tags/*:refs/gourd-fetch/origin/tags/*"]);
    let rb = Registry::open(b.path()).unwrap().unwrap();
    let report = rb.integrate("refs/gourd-fetch/origin/tags/").unwrap();
    assert_eq!((report.added, report.blocked.clone()), (1, vec!["zz@v0.0.1".to_string()]));
    assert_eq!(git(b.path(), &["rev-parse", "zz@v0.0.1"]), mine, "left as it was");
    assert!(git(b.path(), &["for-each-ref", "refs/gourd-fetch"]).is_empty(), "fetched refs are gone");
}

/// A counter at the end of its range (a tag pushed by hand) is an error
/// naming it, never a wrap to `#0`.
#[test]
fn a_counter_at_its_end_is_an_error_not_a_wrap() {
    let dir = repo();
    let registry = Registry::open(dir.path()).unwrap().unwrap();
    let c1 = registry.head().unwrap();
    registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.1"), None, &c1)]).unwrap();
    git(dir.path(), &["tag", "-a", "-m", "forged", &format!("m#prod#{}", u64::MAX), &c1]);
    let err = registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Assign, None, Some("staging"), &c1)]);
    let Err(err @ RegistryError::Exhausted(_)) = err else { panic!("{err:?}") };
    assert!(err.to_string().contains(&format!("m's tags already count to {}", u64::MAX)), "{err}");
    assert!(git(dir.path(), &["tag", "-l", "m#staging*"]).is_empty());
}

#[test]
fn worktrees_of_one_repository_share_the_writer_lock() {
    let dir = repo();
    let other = tempfile::tempdir().unwrap();
    let worktree = other.path().join("wt");
    git(dir.path(), &["worktree", "add", "-q", "-b", "side", worktree.to_str().unwrap()]);
    let here = Registry::open(dir.path()).unwrap().unwrap();
    let held = here.lock().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let there = Registry::open(&worktree).unwrap().unwrap();
            let told = std::cell::Cell::new(false);
            let _lock = there.lock_or_wait(|| told.set(true)).unwrap();
            assert!(told.get(), "waited without being told");
            sender.send(()).unwrap();
        });
        // The worktree waits while the main checkout holds the lock, and
        // is told so.
        let waited = receiver.recv_timeout(std::time::Duration::from_millis(300));
        assert!(waited.is_err(), "both held the lock at once");
        drop(held);
        receiver.recv_timeout(std::time::Duration::from_secs(30)).expect("taken once it was let go");
    });
    // Free: taken at once, nobody told.
    let _lock = Registry::open(&worktree).unwrap().unwrap().lock_or_wait(|| panic!("waited for a free lock")).unwrap();
}

#[test]
fn the_writer_lock_is_never_taken_through_a_link() {
    let dir = repo();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted");
    std::os::unix::fs::symlink(&target, dir.path().join(".git/gourd-registry.lock")).unwrap();
    let registry = Registry::open(dir.path()).unwrap().unwrap();
    assert!(matches!(registry.lock(), Err(RegistryError::Lock(_))));
    assert!(!target.exists(), "created through the link");
}

/// The moves of every artifact read at once are those read one artifact at
/// a time, names that share a start (`m`, `m2`, `dir/m`) included.
#[test]
fn all_events_are_each_artifacts_events() {
    let dir = repo();
    let registry = Registry::open(dir.path()).unwrap().unwrap();
    let c1 = registry.head().unwrap();
    for artifact in ["m", "m2", "dir/m", "models:m"] {
        registry
            .write(&registry.lock().unwrap(), artifact, &[mv(Action::Register, Some("v1.0.0"), None, &c1)])
            .unwrap();
    }
    let c2 = commit(dir.path(), "two");
    registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Register, Some("v1.0.1"), None, &c2)]).unwrap();
    registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Assign, None, Some("prod"), &c2)]).unwrap();
    registry.write(&registry.lock().unwrap(), "m2", &[mv(Action::Deprecate, None, None, &c2)]).unwrap();
    let all = registry.all_events().unwrap();
    let names: Vec<&String> = all.keys().collect();
    assert_eq!(names, ["dir/m", "m", "m2", "models:m"]);
    assert_eq!(all.keys().cloned().collect::<BTreeSet<_>>(), registry.artifacts().unwrap());
    for (artifact, events) in &all {
        let one = registry.events(artifact).unwrap();
        let tags = |events: &[Event]| events.iter().map(|e| (e.tag.clone(), e.commit.clone())).collect::<Vec<_>>();
        assert_eq!(tags(events), tags(&one), "{artifact}");
    }
    assert_eq!(all["m"].len(), 3);
    // Read whole: as each artifact's moves read whole.
    let full = registry.all_events_full().unwrap();
    assert_eq!(full.keys().collect::<Vec<_>>(), all.keys().collect::<Vec<_>>());
    for (artifact, events) in full {
        let one = registry.events_full(&artifact).unwrap();
        let read = |events: &[Event]| {
            events.iter().map(|e| (e.tag.clone(), e.who.clone(), e.message.clone())).collect::<Vec<_>>()
        };
        assert!(events.iter().all(|e| e.loaded), "{artifact}");
        assert_eq!(read(&events), read(&one), "{artifact}");
    }
}
