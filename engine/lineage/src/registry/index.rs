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
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::path::{Path, PathBuf};

use git2::Oid;

/// An object id's bytes, as a key: compared inline (`Oid`'s equality is a
/// call into libgit2) and hashed by its first eight bytes, which are
/// uniformly distributed already. With ten thousand tags this halves the
/// cost of the lookups.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Id([u8; 20]);

impl Id {
    /// `None` for an id that is not SHA-1 (never indexed).
    pub fn of(oid: &Oid) -> Option<Id> {
        oid.as_bytes().try_into().ok().map(Id)
    }
}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes")));
    }
}

/// Passes [`Id`]'s hash through.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type IdMap<V> = HashMap<Id, V, BuildHasherDefault<IdHasher>>;
pub type IdSet = HashSet<Id, BuildHasherDefault<IdHasher>>;

const HEADER: &[u8] = b"gourd registry index v1\n";
const ENTRY: usize = 48;
pub const FILE: &str = "gourd-registry-index-v1";

#[derive(Default)]
pub struct Index {
    path: PathBuf,
    entries: IdMap<([u8; 20], i64)>,
    added: bool,
}

impl Index {
    /// Reads the index in `git_dir`; an absent or damaged file is empty.
    pub fn load(git_dir: &Path) -> Index {
        let path = git_dir.join(FILE);
        let mut entries = IdMap::default();
        if let Ok(bytes) = std::fs::read(&path)
            && let Some(body) = bytes.strip_prefix(HEADER)
            && body.len().is_multiple_of(ENTRY)
        {
            entries.reserve(body.len() / ENTRY);
            for entry in body.chunks_exact(ENTRY) {
                let tag = Id(entry[..20].try_into().expect("20 bytes"));
                let commit: [u8; 20] = entry[20..40].try_into().expect("20 bytes");
                let time = i64::from_le_bytes(entry[40..48].try_into().expect("8 bytes"));
                entries.insert(tag, (commit, time));
            }
        }
        Index { path, entries, added: false }
    }

    pub fn get(&self, tag: &Oid) -> Option<(Oid, i64)> {
        let (commit, time) = self.entries.get(&Id::of(tag)?)?;
        Some((Oid::from_bytes(commit).ok()?, *time))
    }

    pub fn insert(&mut self, tag: Oid, commit: Oid, time: i64) {
        let (Some(tag), Some(commit)) = (Id::of(&tag), Id::of(&commit)) else { return };
        if self.entries.insert(tag, (commit.0, time)).is_none() {
            self.added = true;
        }
    }

    /// Writes the index if it gained entries, keeping only the tag objects
    /// in `live`. Best effort: a read-only repository just stays unindexed.
    pub fn save(&self, live: &[Oid]) {
        if !self.added {
            return;
        }
        let live: IdSet = live.iter().filter_map(Id::of).collect();
        let mut bytes = Vec::with_capacity(HEADER.len() + self.entries.len() * ENTRY);
        bytes.extend_from_slice(HEADER);
        for (tag, (commit, time)) in &self.entries {
            if live.contains(tag) {
                bytes.extend_from_slice(&tag.0);
                bytes.extend_from_slice(commit);
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
        index.save(&[a]);
        let index = Index::load(dir.path());
        assert_eq!(index.get(&a), Some((b, 1_796_040_000)));
        assert_eq!(index.get(&c), None, "a tag that is gone is dropped");
        std::fs::write(dir.path().join(FILE), b"gourd registry index v1\nshort").unwrap();
        assert_eq!(Index::load(dir.path()).get(&a), None);
    }

    #[test]
    fn the_file_is_the_header_and_one_entry_per_live_tag() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Oid::from_str(&"a".repeat(40)).unwrap(), Oid::from_str(&"b".repeat(40)).unwrap());
        let mut index = Index::load(dir.path());
        index.insert(a, b, 0x0102_0304);
        index.save(&[a, b]);
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(a.as_bytes());
        expected.extend_from_slice(b.as_bytes());
        expected.extend_from_slice(&0x0102_0304i64.to_le_bytes());
        assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap(), expected);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        // Nothing new: nothing written, even with fewer live tags.
        let mut index = Index::load(dir.path());
        index.insert(a, b, 0x0102_0304);
        index.save(&[]);
        assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap(), expected);
        // Without the header, the file is empty.
        std::fs::write(dir.path().join(FILE), &expected[HEADER.len()..]).unwrap();
        assert_eq!(Index::load(dir.path()).get(&a), None);
    }

    #[test]
    fn an_id_hashes_as_its_first_eight_bytes() {
        use std::hash::BuildHasher;
        let oid = Oid::from_str("0102030405060708090a0b0c0d0e0f1011121314").unwrap();
        let id = Id::of(&oid).unwrap();
        let hash = BuildHasherDefault::<IdHasher>::default().hash_one(id);
        assert_eq!(hash, 0x0807_0605_0403_0201);
        let mut hasher = IdHasher::default();
        hasher.write(&[0xff, 1, 2, 3, 4, 5, 6, 7, 0x0f]);
        assert_eq!(hasher.finish(), 0x0102_0304_0506_07f0, "the ninth byte mixed into the first");
        let mut ids = IdSet::default();
        ids.insert(id);
        assert!(ids.contains(&id));
        assert!(!ids.contains(&Id([0; 20])));
    }
}
