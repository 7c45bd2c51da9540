//! The lineage journal's file: notes kept across processes, cleared, and
//! errors that are not "nothing there".

use gourd_core::journal::{Journal, JournalEntry};

fn entry(stage: &str, status: &str) -> JournalEntry {
    JournalEntry {
        stage: stage.into(),
        key: gourd_digest::Hasher::digest_bytes(gourd_digest::DigestAlgorithm::Blake3, stage.as_bytes()),
        status: status.into(),
        executed_by: Some("grpc://service on w1".into()),
        started_at: "t0".into(),
        noted_at: "t1".into(),
    }
}

#[test]
fn notes_are_kept_per_stage_across_journals_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Journal::pending(dir.path()).is_empty());
    Journal::new(dir.path()).note(&entry("a", "ran")).unwrap();
    // Another process (another journal) appends to the same file.
    let second = Journal::new(dir.path());
    second.note(&entry("b", "restored")).unwrap();
    second.note(&entry("c", "ran")).unwrap();
    assert_eq!(Journal::pending(dir.path()), [entry("a", "ran"), entry("b", "restored"), entry("c", "ran")]);
    assert!(dir.path().join("state-v1/journal-v1.jsonl").is_file());
    Journal::clear(dir.path()).unwrap();
    assert!(Journal::pending(dir.path()).is_empty());
    assert!(!dir.path().join("state-v1/journal-v1.jsonl").exists());
}

#[test]
fn a_journal_that_cannot_be_written_or_cleared_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state-v1/journal-v1.jsonl")).unwrap();
    let err = Journal::new(dir.path()).note(&entry("a", "ran")).unwrap_err();
    assert!(err.to_string().contains("journal-v1.jsonl"), "{err}");
    assert!(Journal::clear(dir.path()).is_err());
}
