//! The lineage journal: stages that finished in a run whose lineage is not
//! recorded yet.
//!
//! Lineage is written once, at the end of a run, in one git commit. A run
//! killed before that would lose the lineage of every stage that finished,
//! for good: the next run finds them up to date and records nothing. So
//! each stage is noted here, one JSON line appended, *before* its result
//! enters the action cache (or its restore starts); the next run records
//! every noted stage whose result exists, then clears the journal. A note
//! whose result never landed is dropped.
//!
//! ```text
//! .gourd/state-v1/journal-v1.jsonl   one line per finished stage
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gourd_digest::Digest;
use serde::{Deserialize, Serialize};

const FILE: &str = "state-v1/journal-v1.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub stage: String,
    pub key: Digest,
    /// `ran` or `restored`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_by: Option<String>,
    pub started_at: String,
    pub noted_at: String,
}

pub struct Journal {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl Journal {
    pub fn new(gourd_dir: &Path) -> Journal {
        Journal { path: gourd_dir.join(FILE), file: Mutex::new(None) }
    }

    /// Appends `entry` as one line, in one write.
    pub fn note(&self, entry: &JournalEntry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap();
        if file.is_none() {
            if let Some(parent) = self.path.parent() {
                fs_err::create_dir_all(parent)?;
            }
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| crate::hash::with_path(e, &self.path))?;
            *file = Some(opened);
        }
        file.as_mut().expect("opened above").write_all(&line)
    }

    /// The entries of runs that ended before recording them, the last note
    /// of each stage only. A line cut short by a kill is skipped.
    pub fn pending(gourd_dir: &Path) -> Vec<JournalEntry> {
        let Ok(text) = std::fs::read(gourd_dir.join(FILE)) else {
            return Vec::new();
        };
        let mut entries: Vec<JournalEntry> = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let Ok(entry) = serde_json::from_slice::<JournalEntry>(line) else { continue };
            entries.retain(|e| e.stage != entry.stage);
            entries.push(entry);
        }
        entries
    }

    /// Forgets every entry: their lineage is recorded.
    pub fn clear(gourd_dir: &Path) -> io::Result<()> {
        match std::fs::remove_file(gourd_dir.join(FILE)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stage: &str, status: &str) -> JournalEntry {
        JournalEntry {
            stage: stage.into(),
            key: gourd_digest::Hasher::digest_bytes(gourd_digest::DigestAlgorithm::Blake3, stage.as_bytes()),
            status: status.into(),
            executed_by: None,
            started_at: "t0".into(),
            noted_at: "t1".into(),
        }
    }

    #[test]
    fn notes_survive_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        journal.note(&entry("a", "restored")).unwrap();
        journal.note(&entry("b", "ran")).unwrap();
        journal.note(&entry("a", "ran")).unwrap();
        // A kill in the middle of a write leaves half a line.
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(br#"{"stage":"c","key":"#);
        std::fs::write(&path, bytes).unwrap();

        let pending = Journal::pending(dir.path());
        assert_eq!(pending, vec![entry("b", "ran"), entry("a", "ran")]);
        Journal::clear(dir.path()).unwrap();
        assert!(Journal::pending(dir.path()).is_empty());
        Journal::clear(dir.path()).unwrap();
    }
}
