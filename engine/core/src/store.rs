//! The content-addressed store and the action cache.
//!
//! ```text
//! .gourd/cache-v1/
//! ├── objects/ab/cdef…       file contents by digest, read-only
//! ├── trees/ab/cdef….json    folder listings by tree digest
//! ├── actions/ab/cdef….json  action results by stage key
//! └── tmp/                   writes in flight; anything here is garbage
//! ```
//!
//! Every write goes to `tmp/` first, is fsynced and renamed into place, and an
//! action result is written only after all the objects it names: a process
//! killed at any moment leaves at worst unreferenced objects, never an action
//! that names something missing or half-written. Objects are verified when
//! they are restored; one whose bytes do not match its digest is deleted and
//! reported as missing, so the stage runs again.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gourd_digest::{Digest, DigestAlgorithm, EntryKind, Hasher, TreeEntry};
use serde::{Deserialize, Serialize};

use crate::fsutil::{remove_path, temp_name, write_atomic};
use crate::hash::{Tree, with_path};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("cache object `{digest}` is missing")]
    Missing { digest: Digest },
    #[error("cache object `{digest}` is corrupt (its bytes do not match its digest); it was removed")]
    Corrupt { digest: Digest },
}

/// One output of a stage as recorded in an action result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub kind: EntryKind,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// Whether the bytes are in the store (an out with `cache = false` is not).
    pub cached: bool,
}

/// What a successful execution of a stage key produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionResult {
    pub key: Digest,
    /// The canonical manifest the key was computed from.
    pub manifest: serde_json::Value,
    pub outputs: BTreeMap<String, OutputRecord>,
    /// Parsed metrics files, by path.
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
}

pub struct Store {
    root: PathBuf,
    algorithm: DigestAlgorithm,
}

impl Store {
    pub const DIR: &'static str = "cache-v1";

    /// Opens (creating if needed) the store under `gourd_dir`.
    pub fn open(gourd_dir: &Path, algorithm: DigestAlgorithm) -> io::Result<Store> {
        let root = gourd_dir.join(Self::DIR);
        for sub in ["objects", "trees", "actions", "tmp"] {
            fs_err::create_dir_all(root.join(sub))?;
        }
        Ok(Store { root, algorithm })
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    fn sharded(&self, kind: &str, digest: &Digest, suffix: &str) -> PathBuf {
        let hex = digest.to_string();
        self.root.join(kind).join(&hex[..2]).join(format!("{}{suffix}", &hex[2..]))
    }

    pub fn object_path(&self, digest: &Digest) -> PathBuf {
        self.sharded("objects", digest, "")
    }

    fn tree_path(&self, digest: &Digest) -> PathBuf {
        self.sharded("trees", digest, ".json")
    }

    fn action_path(&self, key: &Digest) -> PathBuf {
        self.sharded("actions", key, ".json")
    }

    /// Removes writes left in flight by a process that died. Call only while
    /// holding the workspace lock.
    pub fn clean_tmp(&self) -> io::Result<()> {
        let tmp = self.root.join("tmp");
        remove_path(&tmp)?;
        fs_err::create_dir_all(tmp)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(temp_name("w"))
    }

    /// Stores the file or folder at `path`, already hashed as `tree`.
    pub fn put(&self, path: &Path, tree: &Tree) -> io::Result<()> {
        match tree {
            Tree::File { digest, .. } => self.put_file(path, digest),
            Tree::Dir { digest, children } => {
                for (name, child) in children {
                    self.put(&path.join(name), child)?;
                }
                let target = self.tree_path(digest);
                if !target.exists() {
                    let bytes = serde_json::to_vec(&Tree::entries(children)).map_err(io::Error::other)?;
                    self.install(&bytes, &target)?;
                }
                Ok(())
            }
        }
    }

    fn install(&self, bytes: &[u8], target: &Path) -> io::Result<()> {
        let tmp = self.tmp_path();
        fs_err::write(&tmp, bytes)?;
        fs_err::File::open(&tmp)?.sync_all()?;
        fs_err::create_dir_all(target.parent().expect("sharded path"))?;
        fs_err::rename(&tmp, target)
    }

    fn put_file(&self, path: &Path, digest: &Digest) -> io::Result<()> {
        let target = self.object_path(digest);
        if target.exists() {
            return Ok(());
        }
        let tmp = self.tmp_path();
        reflink_copy::reflink_or_copy(path, &tmp).map_err(|e| with_path(e, path))?;
        let file = fs_err::File::open(&tmp)?;
        file.sync_all()?;
        // Read-only, so that a restored hard link or a stray write cannot
        // change what the digest promises.
        fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))?;
        fs_err::create_dir_all(target.parent().expect("sharded path"))?;
        fs_err::rename(&tmp, &target)
    }

    /// Whether every object under an output is present (not verified).
    pub fn has(&self, kind: EntryKind, digest: &Digest) -> bool {
        match kind {
            EntryKind::File => self.object_path(digest).exists(),
            EntryKind::Dir => match self.read_tree(digest) {
                Ok(entries) => entries.iter().all(|e| self.has(e.kind, &e.digest)),
                Err(_) => false,
            },
        }
    }

    fn read_tree(&self, digest: &Digest) -> Result<Vec<TreeEntry>, StoreError> {
        let path = self.tree_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing { digest: *digest });
            }
            Err(err) => return Err(with_path(err, &path).into()),
        };
        let entries: Vec<TreeEntry> = match serde_json::from_slice(&bytes) {
            Ok(entries) => entries,
            Err(_) => return Err(self.corrupt(&path, digest)),
        };
        if gourd_digest::tree_digest(self.algorithm, &entries) != *digest {
            return Err(self.corrupt(&path, digest));
        }
        Ok(entries)
    }

    fn corrupt(&self, path: &Path, digest: &Digest) -> StoreError {
        let _ = std::fs::remove_file(path);
        StoreError::Corrupt { digest: *digest }
    }

    /// Restores an output to `dest`, replacing whatever is there. The content
    /// is built beside `dest` and renamed into place, and every file is
    /// verified against its digest on the way.
    pub fn restore(&self, record: &OutputRecord, dest: &Path) -> Result<(), StoreError> {
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let tmp = crate::fsutil::temp_beside(dest);
        let result = self.restore_into(record.kind, &record.digest, record.executable, &tmp);
        if let Err(err) = result {
            let _ = remove_path(&tmp);
            return Err(err);
        }
        remove_path(dest)?;
        fs_err::rename(&tmp, dest)?;
        Ok(())
    }

    fn restore_into(&self, kind: EntryKind, digest: &Digest, executable: bool, dest: &Path) -> Result<(), StoreError> {
        match kind {
            EntryKind::File => {
                let object = self.object_path(digest);
                if let Err(err) = reflink_copy::reflink_or_copy(&object, dest) {
                    return Err(if err.kind() == io::ErrorKind::NotFound {
                        StoreError::Missing { digest: *digest }
                    } else {
                        with_path(err, &object).into()
                    });
                }
                if Hasher::digest_file(self.algorithm, dest).map_err(|e| with_path(e, dest))? != *digest {
                    let _ = std::fs::remove_file(dest);
                    return Err(self.corrupt(&object, digest));
                }
                let mode = if executable { 0o755 } else { 0o644 };
                fs_err::set_permissions(dest, std::fs::Permissions::from_mode(mode))?;
                Ok(())
            }
            EntryKind::Dir => {
                let entries = self.read_tree(digest)?;
                fs_err::create_dir(dest)?;
                for entry in entries {
                    self.restore_into(entry.kind, &entry.digest, entry.executable, &dest.join(&entry.name))?;
                }
                Ok(())
            }
        }
    }

    /// The entry at `rel` (`a/b.txt`) inside the stored folder `root`, if the
    /// store holds that folder's listings.
    pub fn find_in_tree(&self, root: &Digest, rel: &str) -> Option<(EntryKind, Digest)> {
        let mut current = (EntryKind::Dir, *root);
        for name in rel.split('/').filter(|s| !s.is_empty()) {
            if current.0 != EntryKind::Dir {
                return None;
            }
            let entries = self.read_tree(&current.1).ok()?;
            let entry = entries.into_iter().find(|e| e.name == name)?;
            current = (entry.kind, entry.digest);
        }
        Some(current)
    }

    /// The recorded result for `key`, if any. A result that cannot be read
    /// is treated as absent.
    pub fn action(&self, key: &Digest) -> Option<ActionResult> {
        let bytes = std::fs::read(self.action_path(key)).ok()?;
        serde_json::from_slice::<ActionResult>(&bytes).ok().filter(|a| a.key == *key)
    }

    /// Records `result`. Call only after every object it names is stored.
    pub fn put_action(&self, result: &ActionResult) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(result).map_err(io::Error::other)?;
        write_atomic(&self.action_path(&result.key), &bytes)
    }

    /// Forgets the result for `key` (its objects turned out to be corrupt).
    pub fn drop_action(&self, key: &Digest) {
        let _ = std::fs::remove_file(self.action_path(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hashing;

    fn setup() -> (tempfile::TempDir, Store, Hashing) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        (dir, store, hashing)
    }

    #[test]
    fn folder_round_trip() {
        let (dir, store, hashing) = setup();
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("nested")).unwrap();
        std::fs::write(out.join("nested/x"), "x").unwrap();
        std::fs::write(out.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(out.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let tree = hashing.hash(&out).unwrap().unwrap();
        store.put(&out, &tree).unwrap();
        let record = OutputRecord { kind: EntryKind::Dir, digest: tree.digest(), executable: false, cached: true };
        assert!(store.has(record.kind, &record.digest));

        std::fs::remove_dir_all(&out).unwrap();
        store.restore(&record, &out).unwrap();
        assert_eq!(hashing.hash(&out).unwrap().unwrap(), tree);
        assert_eq!(std::fs::read_to_string(out.join("nested/x")).unwrap(), "x");
    }

    #[test]
    fn corrupt_object_is_detected_and_removed() {
        let (dir, store, hashing) = setup();
        let file = dir.path().join("f");
        std::fs::write(&file, "good").unwrap();
        let tree = hashing.hash(&file).unwrap().unwrap();
        store.put(&file, &tree).unwrap();
        let object = store.object_path(&tree.digest());
        std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&object, "evil").unwrap();

        std::fs::remove_file(&file).unwrap();
        let record = OutputRecord { kind: EntryKind::File, digest: tree.digest(), executable: false, cached: true };
        assert!(matches!(store.restore(&record, &file), Err(StoreError::Corrupt { .. })));
        assert!(!file.exists(), "nothing half-restored is left behind");
        assert!(!object.exists());
    }
}
