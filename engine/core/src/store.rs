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
//! Every write goes to `tmp/` first and is renamed into place, and an action
//! result is written only after all the objects it names: a process killed at
//! any moment leaves at worst unreferenced objects, never an action that names
//! something missing or half-written. Nothing is fsynced file by file: a run
//! ends with one `syncfs` (a group commit), and every read verifies what it
//! reads (results parse and name their key, objects and listings match their
//! digest), so whatever a power failure damaged is treated as missing and
//! the stage runs again (git makes the same trade for loose objects).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gourd_digest::{Digest, DigestAlgorithm, EntryKind, Hasher, TreeEntry};
use serde::{Deserialize, Serialize};

use crate::fsutil::{remove_path, temp_name};
use crate::hash::{Tree, with_path};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("cache object `{digest}` is missing")]
    Missing { digest: Digest },
    #[error("cache object `{digest}` is corrupt (its bytes do not match its digest); it was removed")]
    Corrupt { digest: Digest },
    #[error("the recorded result names other outputs than the stage declares")]
    Foreign,
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

    /// The listing of a stored folder, verified against its digest.
    pub fn tree_entries(&self, digest: &Digest) -> Result<Vec<TreeEntry>, StoreError> {
        self.read_tree(digest)
    }

    /// Adds a file object received from elsewhere, after checking its bytes
    /// against `digest`.
    pub fn put_object_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if Hasher::digest_bytes(self.algorithm, bytes) != *digest {
            return Err(StoreError::Corrupt { digest: *digest });
        }
        let target = self.object_path(digest);
        if !target.exists() {
            let tmp = self.tmp_path();
            fs_err::write(&tmp, bytes)?;
            fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))?;
            fs_err::create_dir_all(target.parent().expect("sharded path"))?;
            fs_err::rename(&tmp, &target)?;
        }
        Ok(())
    }

    /// A fresh path in the store's scratch folder, for a file received from
    /// elsewhere that is too large to hold in memory; see [`Store::adopt_object`].
    pub fn receiving_path(&self) -> PathBuf {
        self.tmp_path()
    }

    /// Hashes the file at `received` (under [`Store::receiving_path`]) and
    /// moves it into the store; returns its digest.
    pub fn adopt_object(&self, received: &Path) -> Result<Digest, StoreError> {
        let digest = Hasher::digest_file(self.algorithm, received)?;
        let target = self.object_path(&digest);
        if target.exists() {
            fs_err::remove_file(received)?;
        } else {
            fs_err::set_permissions(received, std::fs::Permissions::from_mode(0o444))?;
            fs_err::create_dir_all(target.parent().expect("sharded path"))?;
            fs_err::rename(received, &target)?;
        }
        Ok(digest)
    }

    /// Adds a folder listing received from elsewhere, after checking it.
    pub fn put_tree_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<Vec<TreeEntry>, StoreError> {
        let entries: Vec<TreeEntry> =
            serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt { digest: *digest })?;
        if gourd_digest::tree_digest(self.algorithm, &entries) != *digest {
            return Err(StoreError::Corrupt { digest: *digest });
        }
        let target = self.tree_path(digest);
        if !target.exists() {
            self.install(bytes, &target)?;
        }
        Ok(entries)
    }

    /// The bytes of a stored listing, as they would travel.
    pub fn tree_bytes(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        fs_err::read(self.tree_path(digest))
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
    /// Not fsynced one by one: [`Store::sync`] makes a whole run durable at
    /// once (a group commit), and a result a power failure damaged fails
    /// to parse or to verify, and is treated as absent.
    pub fn put_action(&self, result: &ActionResult) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(result).map_err(io::Error::other)?;
        crate::fsutil::write_replace(&self.action_path(&result.key), &bytes, false)
    }

    /// Flushes everything written to the store's file system (`syncfs`).
    pub fn sync(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let dir = fs_err::File::open(&self.root)?;
        // SAFETY: a valid fd; syncfs only flushes.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Forgets the result for `key` (its objects turned out to be corrupt).
    pub fn drop_action(&self, key: &Digest) {
        let _ = std::fs::remove_file(self.action_path(key));
    }
}

/// What [`Store::collect_garbage`] removed (or would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub actions: usize,
    pub objects: usize,
    pub trees: usize,
    pub bytes: u64,
    pub kept_actions: usize,
}

impl Store {
    /// Removes every action result whose key is not in `keep`, then every
    /// object and listing no kept result reaches. With `dry_run`, removes
    /// nothing and reports what it would remove. Call only while holding the
    /// workspace lock.
    pub fn collect_garbage(&self, keep: &std::collections::HashSet<Digest>, dry_run: bool) -> io::Result<GcReport> {
        let mut report = GcReport::default();
        let mut live_objects = std::collections::HashSet::new();
        let mut live_trees = std::collections::HashSet::new();
        for (path, name) in self.list("actions")? {
            let key = name.trim_end_matches(".json").parse::<Digest>().ok();
            let action = key.filter(|k| keep.contains(k)).and_then(|k| self.action(&k));
            match action {
                Some(action) => {
                    report.kept_actions += 1;
                    for output in action.outputs.values().filter(|o| o.cached) {
                        self.mark(output.kind, &output.digest, &mut live_objects, &mut live_trees);
                    }
                }
                None => {
                    report.actions += 1;
                    report.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    if !dry_run {
                        fs_err::remove_file(&path)?;
                    }
                }
            }
        }
        for (kind, live) in [("objects", &live_objects), ("trees", &live_trees)] {
            for (path, name) in self.list(kind)? {
                let digest = name.trim_end_matches(".json").parse::<Digest>().ok();
                if digest.is_some_and(|d| live.contains(&d)) {
                    continue;
                }
                if kind == "objects" {
                    report.objects += 1
                } else {
                    report.trees += 1
                }
                report.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if !dry_run {
                    fs_err::remove_file(&path)?;
                }
            }
        }
        if !dry_run {
            self.clean_tmp()?;
        }
        Ok(report)
    }

    fn mark(
        &self,
        kind: EntryKind,
        digest: &Digest,
        objects: &mut std::collections::HashSet<Digest>,
        trees: &mut std::collections::HashSet<Digest>,
    ) {
        match kind {
            EntryKind::File => {
                objects.insert(*digest);
            }
            EntryKind::Dir => {
                if trees.insert(*digest) {
                    for entry in self.read_tree(digest).unwrap_or_default() {
                        self.mark(entry.kind, &entry.digest, objects, trees);
                    }
                }
            }
        }
    }

    /// Every file under `kind/`, with its name rebuilt as `shard + rest`.
    fn list(&self, kind: &str) -> io::Result<Vec<(PathBuf, String)>> {
        let mut out = Vec::new();
        let dir = self.root.join(kind);
        for shard in fs_err::read_dir(&dir)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            let prefix = shard.file_name().to_string_lossy().into_owned();
            for entry in fs_err::read_dir(shard.path())? {
                let entry = entry?;
                out.push((entry.path(), format!("{prefix}{}", entry.file_name().to_string_lossy())));
            }
        }
        Ok(out)
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
    fn garbage_collection_keeps_what_kept_results_reach() {
        let (dir, store, hashing) = setup();
        let mut keys = Vec::new();
        for (i, content) in ["one", "two"].iter().enumerate() {
            let out = dir.path().join(format!("out{i}"));
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("f"), content).unwrap();
            let tree = hashing.hash(&out).unwrap().unwrap();
            store.put(&out, &tree).unwrap();
            let key = Hasher::digest_bytes(DigestAlgorithm::Blake3, content.as_bytes());
            let record = OutputRecord { kind: EntryKind::Dir, digest: tree.digest(), executable: false, cached: true };
            store
                .put_action(&ActionResult {
                    key,
                    manifest: serde_json::json!({}),
                    outputs: BTreeMap::from([(format!("out{i}"), record.clone())]),
                    metrics: BTreeMap::new(),
                    exit_code: 0,
                    started_at: String::new(),
                    finished_at: String::new(),
                    duration_ms: 0,
                })
                .unwrap();
            keys.push((key, record));
        }
        let keep = std::collections::HashSet::from([keys[0].0]);
        let dry = store.collect_garbage(&keep, true).unwrap();
        assert_eq!((dry.actions, dry.objects, dry.trees), (1, 1, 1));
        assert!(store.action(&keys[1].0).is_some(), "a dry run removes nothing");
        let done = store.collect_garbage(&keep, false).unwrap();
        assert_eq!(done, dry);
        assert!(store.action(&keys[1].0).is_none());
        assert!(store.has(keys[0].1.kind, &keys[0].1.digest));
        assert!(!store.has(keys[1].1.kind, &keys[1].1.digest));
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
