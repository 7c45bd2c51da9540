//! The model registry on real repositories: GTO tags written and read,
//! moves read light and whole, the tag index, and pulls from another clone.

use std::path::Path;

use gourd_lineage::registry::{Action, MoveRecord, NewMove, Registry, RegistryError};

use crate::common::{commit, empty_repo, git, repo};

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
            stage: stage.map(String::from),
            ..MoveRecord::default()
        },
    }
}

/// A stage move whose record names the version it moves.
fn assign(stage: &str, version: &str, commit: &str) -> NewMove {
    let mut m = mv(Action::Assign, None, Some(stage), commit);
    m.record.version = Some(version.into());
    m
}

fn open(dir: &Path) -> Registry {
    Registry::open(dir).unwrap().expect("a repository")
}

#[test]
fn outside_a_repository_there_is_no_registry_and_a_broken_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Registry::open(dir.path()).unwrap().is_none());
    std::fs::write(dir.path().join(".git"), "not a gitdir line\n").unwrap();
    assert!(matches!(Registry::open(dir.path()), Err(RegistryError::Git(_))));
    let empty = empty_repo();
    let registry = open(empty.path());
    assert_eq!(registry.head(), None, "no commit yet");
    assert!(registry.tags().unwrap().is_empty());
}

#[test]
fn each_artifact_reads_only_its_own_tags() {
    let dir = repo();
    let registry = open(dir.path());
    let c1 = registry.head().unwrap();
    assert_eq!(c1, git(dir.path(), &["rev-parse", "HEAD"]));
    for artifact in ["m", "mx", "dir:m", "m-2"] {
        let names = registry
            .write(
                &registry.lock().unwrap(),
                artifact,
                &[mv(Action::Register, Some("v0.0.1"), None, &c1), assign("prod", "v0.0.1", &c1)],
            )
            .unwrap();
        let in_tag = artifact.replace(':', "=");
        assert_eq!(names, [format!("{in_tag}@v0.0.1"), format!("{in_tag}#prod#1")]);
    }
    git(dir.path(), &["tag", "-a", "release-1", "-m", "not a registry tag"]);
    git(dir.path(), &["tag", "-a", "m@not-a-version", "-m", "not a registry tag either"]);
    for artifact in ["m", "mx", "dir:m", "m-2"] {
        let events = registry.events_full(artifact).unwrap();
        let in_tag = artifact.replace(':', "=");
        let tags: Vec<&str> = events.iter().map(|e| e.tag.as_str()).collect();
        assert_eq!(tags, [format!("{in_tag}@v0.0.1"), format!("{in_tag}#prod#1")], "{artifact}");
        assert!(events.iter().all(|e| e.commit == c1));
    }
    assert_eq!(registry.artifacts().unwrap().into_iter().collect::<Vec<_>>(), ["dir:m", "m", "m-2", "mx"]);
    let mut names = registry.local_tag_names().unwrap();
    names.sort();
    assert_eq!(
        names,
        ["dir=m#prod#1", "dir=m@v0.0.1", "m#prod#1", "m-2#prod#1", "m-2@v0.0.1", "m@v0.0.1", "mx#prod#1", "mx@v0.0.1"]
    );
    let listed = registry.tags().unwrap();
    assert_eq!(listed.len(), 8);
    for (name, short, oid) in &listed {
        assert_eq!(&name.render(), short);
        assert_eq!(oid.to_string(), git(dir.path(), &["rev-parse", &format!("refs/tags/{short}")]));
    }
    assert!(registry.events("none").unwrap().is_empty());
}

#[test]
fn counters_follow_the_highest_of_the_artifact() {
    let dir = repo();
    let registry = open(dir.path());
    let c1 = registry.head().unwrap();
    // A counter GTO wrote, above gourd's own.
    git(dir.path(), &["tag", "-a", "m#dev#7", "-m", "Assigning stage dev"]);
    let names = registry
        .write(
            &registry.lock().unwrap(),
            "m",
            &[
                mv(Action::Register, Some("v0.0.1"), None, &c1),
                assign("prod", "v0.0.1", &c1),
                mv(Action::Deprecate, None, None, &c1),
            ],
        )
        .unwrap();
    assert_eq!(names, ["m@v0.0.1", "m#prod#8", "m@deprecated#9"]);
    assert_eq!(
        registry.write(&registry.lock().unwrap(), "other", &[assign("prod", "v1.0.0", &c1)]).unwrap(),
        ["other#prod#1"]
    );
    // A tag written at a commit that is not one is refused, and nothing of
    // the batch lands.
    let bad = registry.write(
        &registry.lock().unwrap(),
        "m",
        &[assign("qa", "v0.0.1", &c1), assign("qa", "v0.0.1", &"0".repeat(39))],
    );
    assert!(bad.is_err());
    assert!(git(dir.path(), &["tag", "-l", "m#qa*"]).is_empty());
}

#[test]
fn a_stage_move_at_a_commit_of_two_versions_is_read_at_once_and_others_stay_light() {
    let dir = repo();
    let registry = open(dir.path());
    let c1 = registry.head().unwrap();
    registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Register, Some("v1.0.0"), None, &c1)]).unwrap();
    registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Register, Some("v1.1.0"), None, &c1)]).unwrap();
    registry.write(&registry.lock().unwrap(), "m", &[assign("prod", "v1.0.0", &c1)]).unwrap();
    let c2 = commit(dir.path(), "two");
    registry.write(&registry.lock().unwrap(), "m", &[mv(Action::Register, Some("v2.0.0"), None, &c2)]).unwrap();
    registry.write(&registry.lock().unwrap(), "m", &[assign("staging", "v2.0.0", &c2)]).unwrap();
    let mut events = registry.events("m").unwrap();
    let find = |events: &[gourd_lineage::registry::Event], tag: &str| events.iter().position(|e| e.tag == tag).unwrap();
    let prod = find(&events, "m#prod#1");
    assert_eq!(events[prod].version.as_deref(), Some("v1.0.0"), "its record says which of the two");
    assert!(events[prod].loaded);
    assert_eq!(events[prod].message, "assign prod");
    let staging = find(&events, "m#staging#2");
    assert_eq!(events[staging].version.as_deref(), Some("v2.0.0"));
    for (i, e) in events.iter().enumerate() {
        if i != prod {
            assert!(!e.loaded && e.message.is_empty() && e.who.is_empty() && e.record.is_none(), "{} is light", e.tag);
        }
    }
    registry.load(&mut events, [staging, 99]).unwrap();
    let e = &events[staging];
    assert!(e.loaded);
    assert_eq!((e.who.as_str(), e.email.as_str(), e.message.as_str()), ("T", "t@example.com", "assign staging"));
    assert_eq!(e.record.as_ref().unwrap().stage.as_deref(), Some("staging"));
    let full = registry.events_full("m").unwrap();
    assert!(full.iter().all(|e| e.loaded && e.who == "T"));
    let state = gourd_lineage::registry::state::fold(&full, None);
    assert_eq!(state.stages["prod"].version, "v1.0.0");
    assert_eq!(state.stages["staging"].version, "v2.0.0");
}

#[test]
fn tags_packed_nested_or_written_by_git_read_alike() {
    let dir = repo();
    let c1 = git(dir.path(), &["rev-parse", "HEAD"]);
    git(dir.path(), &["tag", "-a", "m@v1.0.0", "-m", "Registering"]);
    git(dir.path(), &["tag", "-a", "inner", "-m", "inner"]);
    git(dir.path(), &["-c", "advice.nestedTag=false", "tag", "-a", "m#prod#1", "-m", "nested", "inner"]);
    git(dir.path(), &["tag", "m#light#2"]);
    let read = |dir: &Path| {
        let events = open(dir).events_full("m").unwrap();
        events.iter().map(|e| (e.tag.clone(), e.commit.clone(), e.version.clone())).collect::<Vec<_>>()
    };
    let expected = vec![
        ("m@v1.0.0".to_string(), c1.clone(), Some("v1.0.0".to_string())),
        ("m#prod#1".to_string(), c1.clone(), Some("v1.0.0".to_string())),
    ];
    assert_eq!(read(dir.path()), expected, "a lightweight tag is not a move; a nested tag names its commit");
    git(dir.path(), &["pack-refs", "--all"]);
    std::fs::remove_file(dir.path().join(".git").join(gourd_index_file())).unwrap();
    assert_eq!(read(dir.path()), expected, "packed");
    // Refs git's files cannot list (a reftable folder): listed by libgit2.
    std::fs::create_dir(dir.path().join(".git/reftable")).unwrap();
    assert_eq!(read(dir.path()), expected, "listed by libgit2");
    assert_eq!(open(dir.path()).local_tag_names().unwrap().len(), 3);
}

fn gourd_index_file() -> &'static str {
    "gourd-registry-index-v1"
}

#[test]
fn the_index_orders_moves_without_reading_tags_and_forgets_deleted_ones() {
    let dir = repo();
    let registry = open(dir.path());
    let c1 = registry.head().unwrap();
    registry
        .write(
            &registry.lock().unwrap(),
            "m",
            &[mv(Action::Register, Some("v0.0.1"), None, &c1), assign("prod", "v0.0.1", &c1)],
        )
        .unwrap();
    registry.write(&registry.lock().unwrap(), "other", &[mv(Action::Register, Some("v0.0.1"), None, &c1)]).unwrap();
    let index = dir.path().join(".git").join(gourd_index_file());
    assert!(!index.exists());
    let events = registry.events("m").unwrap();
    let header = b"gourd registry index v1\n";
    let bytes = std::fs::read(&index).unwrap();
    assert!(bytes.starts_with(header));
    assert_eq!(bytes.len(), header.len() + 2 * 48, "one entry per tag read");
    // Entries are trusted: a time changed in the index is the move's time.
    let prod = git(dir.path(), &["rev-parse", "refs/tags/m#prod#1"]);
    let prod = git2::Oid::from_str(&prod).unwrap();
    let mut edited = bytes.clone();
    let at = header.len() + edited[header.len()..].chunks(48).position(|e| &e[..20] == prod.as_bytes()).unwrap() * 48;
    assert_eq!(&edited[at + 20..at + 40], git2::Oid::from_str(&c1).unwrap().as_bytes());
    let time = i64::from_le_bytes(edited[at + 40..at + 48].try_into().unwrap());
    assert_eq!(time, events.iter().find(|e| e.tag == "m#prod#1").unwrap().time);
    edited[at + 40..at + 48].copy_from_slice(&(-7i64).to_le_bytes());
    std::fs::write(&index, &edited).unwrap();
    let events = open(dir.path()).events("m").unwrap();
    assert_eq!(events[0].tag, "m#prod#1", "now the earlier move");
    assert_eq!(events[0].time, -7);
    // Reading again adds nothing: the file is not rewritten.
    assert_eq!(std::fs::read(&index).unwrap(), edited);
    // A deleted tag's entry goes when the index next gains one.
    git(dir.path(), &["tag", "-d", "m#prod#1"]);
    open(dir.path()).events("other").unwrap();
    assert_eq!(std::fs::read(&index).unwrap().len(), header.len() + 2 * 48);
    // A damaged index only costs reading the tags again.
    std::fs::write(&index, b"gourd registry index v1\nshort").unwrap();
    let events = open(dir.path()).events("m").unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].time > 1_700_000_000);
}

#[test]
fn revisions_name_commits() {
    let dir = repo();
    let c1 = git(dir.path(), &["rev-parse", "HEAD"]);
    let c2 = commit(dir.path(), "two");
    git(dir.path(), &["tag", "-a", "t1", "-m", "t1", &c1]);
    let registry = open(dir.path());
    assert_eq!(registry.head().as_deref(), Some(c2.as_str()));
    assert_eq!(registry.commit_of("HEAD~1").as_deref(), Some(c1.as_str()));
    assert_eq!(registry.commit_of("t1").as_deref(), Some(c1.as_str()), "a tag, peeled");
    assert_eq!(registry.commit_of(&c2[..10]).as_deref(), Some(c2.as_str()));
    assert_eq!(registry.commit_of("nope"), None);
    assert_eq!(registry.commit_of("HEAD^{tree}"), None, "a tree is not a commit");
}

#[test]
fn pulling_adds_new_tags_skips_taken_versions_and_drops_what_cannot_be_renamed() {
    let (a, b) = (repo(), tempfile::tempdir().unwrap());
    git(b.path(), &["clone", "-q", a.path().to_str().unwrap(), "."]);
    git(b.path(), &["config", "user.email", "b@example.com"]);
    git(b.path(), &["config", "user.name", "B"]);
    let (ra, rb) = (open(a.path()), open(b.path()));
    let c1 = ra.head().unwrap();
    ra.write(&ra.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.1"), None, &c1)]).unwrap();
    git(b.path(), &["fetch", "-q", "origin", "+refs/tags/*:refs/tags/*"]);
    let ca = commit(a.path(), "a2");
    ra.write(&ra.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.2"), None, &ca)]).unwrap();
    ra.write(&ra.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.3"), None, &ca)]).unwrap();
    ra.write(&ra.lock().unwrap(), "m", &[mv(Action::Deregister, Some("v0.0.1"), None, &c1)]).unwrap();
    let cb = commit(b.path(), "b2");
    rb.write(&rb.lock().unwrap(), "m", &[mv(Action::Register, Some("v0.0.2"), None, &cb)]).unwrap();
    rb.write(&rb.lock().unwrap(), "m", &[mv(Action::Deregister, Some("v0.0.1"), None, &c1)]).unwrap();
    git(b.path(), &["fetch", "-q", "--no-tags", "origin", "+refs/tags/*:refs/gourd-fetch/origin/tags/*"]);
    let report = rb.integrate("refs/gourd-fetch/origin/tags/").unwrap();
    assert_eq!(report.added, 1, "v0.0.3");
    assert_eq!(report.renamed, [("m@v0.0.2".to_string(), "m@v0.0.4".to_string())], "v0.0.3 is taken");
    assert_eq!(report.dropped, ["m@v0.0.1!"], "the same move made on both sides");
    for tag in ["m@v0.0.1", "m@v0.0.1!", "m@v0.0.2", "m@v0.0.3"] {
        let tag = format!("refs/tags/{tag}");
        assert_eq!(git(b.path(), &["rev-parse", &tag]), git(a.path(), &["rev-parse", &tag]), "{tag} is theirs");
    }
    let events = rb.events_full("m").unwrap();
    let ours = events.iter().find(|e| e.tag == "m@v0.0.4").unwrap();
    assert_eq!((ours.commit.as_str(), ours.who.as_str()), (cb.as_str(), "B"));
    assert_eq!(ours.record.as_ref().unwrap().version.as_deref(), Some("v0.0.4"));
    assert!(ours.message.starts_with("register v0.0.2\n\n(Registered as v0.0.2 in another clone"), "{}", ours.message);
    assert_eq!(events.len(), 5);
    assert!(git(b.path(), &["for-each-ref", "refs/gourd-fetch"]).is_empty());
    // Nothing fetched: nothing to do.
    let none = rb.integrate("refs/gourd-fetch/origin/tags/").unwrap();
    assert_eq!((none.added, none.renamed.len(), none.dropped.len()), (0, 0, 0));
}

#[test]
fn a_renumbered_stage_move_keeps_its_tagger_time_and_record() {
    let (a, b) = (repo(), tempfile::tempdir().unwrap());
    git(b.path(), &["clone", "-q", a.path().to_str().unwrap(), "."]);
    git(b.path(), &["config", "user.name", "B"]);
    let (ra, rb) = (open(a.path()), open(b.path()));
    let c1 = ra.head().unwrap();
    ra.write(&ra.lock().unwrap(), "m", &[assign("prod", "v0.0.1", &c1), assign("dev", "v0.0.1", &c1)]).unwrap();
    rb.write(&rb.lock().unwrap(), "m", &[assign("prod", "v0.0.1", &c1)]).unwrap();
    let our_time = git(b.path(), &["for-each-ref", "--format=%(taggerdate:unix)", "refs/tags/m#prod#1"]);
    git(b.path(), &["fetch", "-q", "--no-tags", "origin", "+refs/tags/*:refs/gourd-fetch/origin/tags/*"]);
    let report = rb.integrate("refs/gourd-fetch/origin/tags/").unwrap();
    assert_eq!(report.renamed, [("m#prod#1".to_string(), "m#prod#3".to_string())], "after their #2");
    assert_eq!(report.added, 1, "their m#dev#2");
    let format = "--format=%(taggername)|%(taggerdate:unix)|%(contents)";
    let moved = git(b.path(), &["for-each-ref", format, "refs/tags/m#prod#3"]);
    assert!(moved.starts_with(&format!("B|{our_time}|assign prod\n\ngourd-record-v1: ")), "{moved}");
    assert_eq!(git(b.path(), &["rev-parse", "m#prod#3^{commit}"]), c1);
}
