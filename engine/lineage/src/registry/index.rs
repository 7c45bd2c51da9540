//! A derived index of registry tag objects: for each annotated tag object,
//! the commit it points at and its tagger time, so that ordering an
//! artifact's moves reads no object. A tag object never changes (its id is
//! the digest of its bytes), so an entry is never stale; entries of tags
//! that are gone are dropped when the index is rewritten. Deleting the file
//! only costs reading the objects again.
//!
//! ```text
//! .git/gourd-registry-index-v1
//!   "gourd registry index v1\n"
//!   entry*: tag object id (20 bytes) | commit id (20) | time (i64, little endian)
//! ```

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use git2::Oid;

const HEADER: &[u8] = b"gourd registry index v1\n";
const ENTRY: usize = 48;
pub const FILE: &str = "gourd-registry-index-v1";

#[derive(Default)]
pub struct Index {
    path: PathBuf,
    entries: HashMap<Oid, (Oid, i64)>,
    added: bool,
}

impl Index {
    /// Reads the index in `git_dir`; an absent or damaged file is empty.
    pub fn load(git_dir: &Path) -> Index {
        let path = git_dir.join(FILE);
        let mut entries = HashMap::new();
        if let Ok(bytes) = std::fs::read(&path)
            && let Some(body) = bytes.strip_prefix(HEADER)
            && body.len().is_multiple_of(ENTRY)
        {
            entries.reserve(body.len() / ENTRY);
            for entry in body.chunks_exact(ENTRY) {
                let (Ok(tag), Ok(commit)) = (Oid::from_bytes(&entry[..20]), Oid::from_bytes(&entry[20..40])) else {
                    continue;
                };
                let time = i64::from_le_bytes(entry[40..48].try_into().expect("8 bytes"));
                entries.insert(tag, (commit, time));
            }
        }
        Index { path, entries, added: false }
    }

    pub fn get(&self, tag: &Oid) -> Option<(Oid, i64)> {
        self.entries.get(tag).copied()
    }

    pub fn insert(&mut self, tag: Oid, commit: Oid, time: i64) {
        if self.entries.insert(tag, (commit, time)).is_none() {
            self.added = true;
        }
    }

    /// Writes the index if it gained entries, keeping only the tag objects
    /// in `live`. Best effort: a read-only repository just stays unindexed.
    pub fn save(&self, live: &HashSet<Oid>) {
        if !self.added {
            return;
        }
        let mut bytes = Vec::with_capacity(HEADER.len() + self.entries.len() * ENTRY);
        bytes.extend_from_slice(HEADER);
        for (tag, (commit, time)) in &self.entries {
            if live.contains(tag) {
                bytes.extend_from_slice(tag.as_bytes());
                bytes.extend_from_slice(commit.as_bytes());
                bytes.extend_from_slice(&time.to_le_bytes());
            }
        }
        let temp = self.path.with_extension(format!("tmp-{}", std::process::id()));
        if std::fs::write(&temp, &bytes).is_ok() && std::fs::rename(&temp, &self.path).is_err() {
            let _ = std::fs::remove_file(&temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_round_trip_and_damage_means_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) =
            (Oid::from_str(&"a".repeat(40)).unwrap(), Oid::from_str(&"b".repeat(40)).unwrap(), Oid::ZERO_SHA1);
        let mut index = Index::load(dir.path());
        index.insert(a, b, 1_796_040_000);
        index.insert(c, b, -5);
        index.save(&HashSet::from([a]));
        let index = Index::load(dir.path());
        assert_eq!(index.get(&a), Some((b, 1_796_040_000)));
        assert_eq!(index.get(&c), None, "a tag that is gone is dropped");
        std::fs::write(dir.path().join(FILE), b"gourd registry index v1\nshort").unwrap();
        assert_eq!(Index::load(dir.path()).get(&a), None);
    }
}
