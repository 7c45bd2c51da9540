//! The content-addressed store and the action cache.
//!
//! ```text
//! .gourd/cache-v1/
//! ├── objects/ab/cdef…       file contents by digest, read-only (0444, or
//! │                          0400 when some output with these bytes was private)
//! ├── trees/ab/cdef….json    folder listings by tree digest (of outputs, and of
//! │                          folder deps, for `gourd explain`)
//! ├── actions/ab/cdef….json  action results by stage key (sealed: a header with
//! │                          format, length and digest, see `gourd_digest::seal`)
//! └── tmp/                   writes and restores in flight (0700); anything
//!                            here is garbage, swept when `gourd run` starts
//! ```
//!
//! Every write goes to `tmp/` first and is renamed into place, and an action
//! result is written only after all the objects it names: a process killed at
//! any moment leaves at worst unreferenced objects, never an action that names
//! something missing or half-written. Nothing is fsynced file by file: a run
//! ends with one `syncfs` (a group commit), and every read verifies what it
//! reads (results match their seal and name their key, objects and listings
//! match their digest), so whatever a power failure damaged is treated as
//! missing and the stage runs again (git makes the same trade for loose
//! objects).
//!
//! Permissions follow the outputs: a file its stage left unreadable to group
//! and others is stored owner-only and restored owner-only (see
//! `gourd_digest::is_private_mode`).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gourd_digest::{Digest, DigestAlgorithm, EntryKind, Hasher, TreeEntry};
use serde::{Deserialize, Serialize};

use crate::fsutil::{remove_path, temp_name};
use crate::hash::{Tree, with_path};
use crate::model::Link;

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
    /// The file system cannot make the link `cache.link` asks for. Not the
    /// cache's fault: the result is kept, and the stage fails.
    #[error(
        "`cache.link` is '{}, but `{}` cannot be made that way from the cache ({source}); `cache.link = 'copy` restores by copy",
        .link.name(),
        .path.display()
    )]
    Link { link: Link, path: PathBuf, source: io::Error },
    /// What is at an output path was not written by gourd and could not be
    /// moved aside: the result is kept, and the stage fails.
    #[error("{0}")]
    Displace(String),
}

/// The format tag of stored action results; see `gourd_digest::seal`.
const ACTION_FORMAT: &str = "gourd action v2";

/// One output of a stage as recorded in an action result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub kind: EntryKind,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// A file not readable by group and others: restored so wherever the
    /// result goes (a remote keeps no permissions). A folder's files carry
    /// this in its listing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// Whether the bytes are in the store (an out with `cache = false` is not).
    pub cached: bool,
}

impl OutputRecord {
    /// The record of an output hashed as `tree`.
    pub fn from_tree(tree: &Tree, cached: bool) -> OutputRecord {
        OutputRecord {
            kind: tree.kind(),
            digest: tree.digest(),
            executable: matches!(tree, Tree::File { executable: true, .. }),
            private: matches!(tree, Tree::File { private: true, .. }),
            cached,
        }
    }
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

/// A file to restore: its bytes' digest and the permissions it had.
struct FileEntry {
    digest: Digest,
    executable: bool,
    private: bool,
}

pub struct Store {
    root: PathBuf,
    algorithm: DigestAlgorithm,
    /// Objects and listings this process hashed and found whole.
    verified: Mutex<HashSet<Digest>>,
    /// Objects found whole by earlier processes, with their stat data then;
    /// read on first use.
    stamps: std::sync::OnceLock<Mutex<Stamps>>,
    stamps_file: PathBuf,
    /// A [`Store::sync_in_background`] under way: waited for when the
    /// store is dropped.
    syncing: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.wait_synced();
    }
}

/// A read-only object's size, mtime and inode when it was last hashed
/// whole. While the object is still read-only and shows them, its bytes are
/// as they were: writing to it (through a hard link, say) means making it
/// writable first, and changes its mtime. Not its ctime, which every hard
/// link made or removed changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i64,
    inode: u64,
}

impl Stamp {
    /// The stamp of an object, if it is read-only.
    fn of(meta: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        (meta.mode() & 0o222 == 0).then(|| Stamp {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            inode: meta.ino(),
        })
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Stamps {
    algorithm: DigestAlgorithm,
    objects: std::collections::HashMap<Digest, Stamp>,
    #[serde(skip)]
    dirty: bool,
}

/// Sealed (see `gourd_digest::seal`): stamps decide which objects are
/// hashed at all, so an edited file is not believed.
const STAMPS_FORMAT: &str = "gourd verified-objects v1";
/// As for the stat cache (`crate::hash`): an object changed within this
/// window of its stamp could keep every stat field.
const STAMP_RACY_WINDOW_NS: i64 = 2_000_000_000;

impl Store {
    pub const DIR: &'static str = "cache-v1";

    /// Opens (creating if needed) the store under `gourd_dir`.
    pub fn open(gourd_dir: &Path, algorithm: DigestAlgorithm) -> io::Result<Store> {
        let root = gourd_dir.join(Self::DIR);
        for sub in ["objects", "trees", "actions"] {
            fs_err::create_dir_all(root.join(sub))?;
        }
        crate::fsutil::create_private_dir(&root.join("tmp"))?;
        let stamps_file = gourd_dir.join("state-v1").join("verified-objects.json");
        Ok(Store {
            root,
            algorithm,
            verified: Mutex::default(),
            stamps: Default::default(),
            stamps_file,
            syncing: Mutex::default(),
        })
    }

    fn stamps(&self) -> &Mutex<Stamps> {
        self.stamps.get_or_init(|| {
            let stamps = std::fs::read(&self.stamps_file)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Stamps>(gourd_digest::unseal(STAMPS_FORMAT, &bytes)?).ok())
                .filter(|stamps| stamps.algorithm == self.algorithm)
                .unwrap_or(Stamps { algorithm: self.algorithm, ..Default::default() });
            Mutex::new(stamps)
        })
    }

    /// Writes the stamps of objects verified by this process, if any.
    pub fn save_stamps(&self) -> io::Result<()> {
        let Some(stamps) = self.stamps.get() else {
            return Ok(());
        };
        // Serialized under the lock, written outside it: objects are
        // verified meanwhile.
        let body = {
            let mut stamps = stamps.lock().unwrap();
            if !std::mem::take(&mut stamps.dirty) {
                return Ok(());
            }
            serde_json::to_vec(&*stamps).map_err(io::Error::other)?
        };
        let written = crate::fsutil::write_replace(&self.stamps_file, &gourd_digest::seal(STAMPS_FORMAT, &body), false);
        if written.is_err() {
            stamps.lock().unwrap().dirty = true;
        }
        written
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
        crate::fsutil::create_private_dir(&tmp)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(temp_name("w"))
    }

    /// Stores the file or folder at `path`, already hashed as `tree`.
    pub fn put(&self, path: &Path, tree: &Tree) -> io::Result<()> {
        match tree {
            Tree::File { digest, private, .. } => self.put_file(path, digest, *private),
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

    fn put_file(&self, path: &Path, digest: &Digest, private: bool) -> io::Result<()> {
        let target = self.object_path(digest);
        let mode = if private { 0o400 } else { 0o444 };
        if let Ok(meta) = std::fs::metadata(&target) {
            // The same bytes were stored for a readable output: they are
            // private now (a private output's bytes never become readable).
            if private && !gourd_digest::is_private_mode(meta.permissions().mode()) {
                fs_err::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
            }
            return Ok(());
        }
        let tmp = self.tmp_path();
        clone_or_copy(path, &tmp).map_err(|e| with_path(e, path))?;
        // Read-only, so that a restored hard link or a stray write cannot
        // change what the digest promises.
        fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        fs_err::create_dir_all(target.parent().expect("sharded path"))?;
        fs_err::rename(&tmp, &target)
    }

    /// Makes the object holding a private file's bytes readable by its
    /// owner only (it may have come from elsewhere, stored readable). An
    /// object not there is the restore's to report; a failed change leaves
    /// the bytes readable in the cache, and the restored file private all
    /// the same.
    fn keep_private(&self, digest: &Digest) {
        let _ = std::fs::set_permissions(self.object_path(digest), std::fs::Permissions::from_mode(0o400));
    }

    /// Whether the object holding a file output's bytes is private: such an
    /// output is restored readable by its owner only.
    fn object_is_private(&self, digest: &Digest) -> bool {
        std::fs::metadata(self.object_path(digest))
            .map(|meta| gourd_digest::is_private_mode(meta.permissions().mode()))
            .unwrap_or(false)
    }

    /// Checks that everything under an output is in the store and matches
    /// its digest (hashing each object once per process, and not again in
    /// a later one while its stat data is as when it was hashed, see
    /// [`Stamp`]). A corrupt object or listing is removed and reported as
    /// [`StoreError::Corrupt`].
    pub fn verify(&self, kind: EntryKind, digest: &Digest) -> Result<(), StoreError> {
        if self.verified.lock().unwrap().contains(digest) {
            return Ok(());
        }
        match kind {
            EntryKind::File => {
                let object = self.object_path(digest);
                // Taken before the bytes are read: a change in between
                // leaves a stamp that no longer matches.
                let stamp = match std::fs::metadata(&object) {
                    Ok(meta) => Stamp::of(&meta),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        return Err(StoreError::Missing { digest: *digest });
                    }
                    Err(err) => return Err(with_path(err, &object).into()),
                };
                let stamped = stamp.is_some() && self.stamps().lock().unwrap().objects.get(digest) == stamp.as_ref();
                if !stamped {
                    match Hasher::digest_file(self.algorithm, &object) {
                        Ok(found) if found == *digest => {}
                        Ok(_) => return Err(self.corrupt(&object, digest)),
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {
                            return Err(StoreError::Missing { digest: *digest });
                        }
                        Err(err) => return Err(with_path(err, &object).into()),
                    }
                    let now = crate::time::now_ns();
                    if let Some(stamp) = stamp.filter(|stamp| now - stamp.mtime_ns > STAMP_RACY_WINDOW_NS) {
                        let mut stamps = self.stamps().lock().unwrap();
                        stamps.objects.insert(*digest, stamp);
                        stamps.dirty = true;
                    }
                }
            }
            EntryKind::Dir => {
                for entry in self.read_tree(digest)? {
                    self.verify(entry.kind, &entry.digest)?;
                }
            }
        }
        self.verified.lock().unwrap().insert(*digest);
        Ok(())
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
        match self.parse_tree(digest, &bytes) {
            Some(entries) => Ok(entries),
            None => Err(self.corrupt(&path, digest)),
        }
    }

    /// A listing, if `bytes` hold one whose names are file names and whose
    /// digest is `digest`.
    fn parse_tree(&self, digest: &Digest, bytes: &[u8]) -> Option<Vec<TreeEntry>> {
        let entries: Vec<TreeEntry> = serde_json::from_slice(bytes).ok()?;
        gourd_digest::check_listing(&entries).ok()?;
        (gourd_digest::tree_digest(self.algorithm, &entries) == *digest).then_some(entries)
    }

    fn corrupt(&self, path: &Path, digest: &Digest) -> StoreError {
        let _ = std::fs::remove_file(path);
        self.verified.lock().unwrap().remove(digest);
        let mut stamps = self.stamps().lock().unwrap();
        if stamps.objects.remove(digest).is_some() {
            stamps.dirty = true;
        }
        drop(stamps);
        StoreError::Corrupt { digest: *digest }
    }

    /// Restores an output to `dest`, replacing whatever is there. The content
    /// is built in the store's `tmp/` (never inside the output's folder,
    /// where a restore killed half-way would leave a stray file for the
    /// next stage to see) and renamed into place, and every file is verified
    /// against its digest on the way. Only when `dest` is on another file
    /// system than the store is it built beside `dest` instead.
    pub fn restore(&self, record: &OutputRecord, dest: &Path) -> Result<(), StoreError> {
        self.restore_linked(record, dest, Link::Copy)
    }

    /// [`Store::restore`], making each file as `link` says (see
    /// [`Link`]). With [`Link::Hardlink`], a file whose object holds other
    /// permissions than the output had (executable, or private where the
    /// output was not) is copied instead, as is one whose object has as many
    /// links as the file system allows.
    pub fn restore_linked(&self, record: &OutputRecord, dest: &Path, link: Link) -> Result<(), StoreError> {
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let private = record.kind == EntryKind::File && (record.private || self.object_is_private(&record.digest));
        if record.private {
            // Bytes received from a remote are stored readable: a private
            // output's bytes never stay so.
            self.keep_private(&record.digest);
        }
        let staged = self.tmp_path();
        self.stage(record, private, link, &staged, dest)?;
        remove_path(dest)?;
        match std::fs::rename(&staged, dest) {
            Ok(()) => Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EXDEV) => {
                let _ = remove_path(&staged);
                let beside = crate::fsutil::temp_beside(dest);
                self.stage(record, private, link, &beside, dest)?;
                let renamed = fs_err::rename(&beside, dest);
                if renamed.is_err() {
                    let _ = remove_path(&beside);
                }
                Ok(renamed?)
            }
            Err(err) => {
                let _ = remove_path(&staged);
                Err(with_path(err, dest).into())
            }
        }
    }

    /// Builds the output `record` describes at `at`, to be renamed to
    /// `dest`; on failure, leaves nothing there.
    fn stage(
        &self,
        record: &OutputRecord,
        private: bool,
        link: Link,
        at: &Path,
        dest: &Path,
    ) -> Result<(), StoreError> {
        let file = FileEntry { digest: record.digest, executable: record.executable, private };
        let result = self.restore_into(record.kind, &file, link, at);
        if result.is_err() {
            let _ = remove_path(at);
        }
        result.map_err(|err| match err {
            // Named where the user will look for it, not where it was built.
            StoreError::Link { link, path, source } => {
                let inside = path.strip_prefix(at).unwrap_or(Path::new(""));
                let path = if inside.as_os_str().is_empty() { dest.to_path_buf() } else { dest.join(inside) };
                StoreError::Link { link, path, source }
            }
            other => other,
        })
    }

    fn restore_into(&self, kind: EntryKind, file: &FileEntry, link: Link, dest: &Path) -> Result<(), StoreError> {
        match kind {
            EntryKind::File if link == Link::Hardlink && self.hard_link(file, dest)? => Ok(()),
            EntryKind::File => self.restore_file(file, link, dest),
            EntryKind::Dir => {
                let entries = self.read_tree(&file.digest)?;
                fs_err::create_dir(dest)?;
                // A folder closed to others makes its files private, which
                // is in the digest, and a restore must give back the digest
                // asked for. So a folder whose files are all private (the
                // files of a closed folder are) comes back closed: nobody
                // else lists their names. Any other folder comes back
                // listable and enterable by group and others whatever the
                // umask (its other bits kept: a group-writable umask stays
                // so), a closed one holding no file among them: its digest
                // does not say it was closed. Private files are restored
                // private.
                let mode = fs_err::metadata(dest)?.permissions().mode();
                let wanted = if self.all_private(&entries)? == Some(true) { mode & !0o077 } else { mode | 0o055 };
                if wanted != mode {
                    fs_err::set_permissions(dest, std::fs::Permissions::from_mode(wanted))?;
                }
                // The files of a folder are restored in parallel: a restore
                // is mostly waiting on the file system, one file at a time.
                use rayon::prelude::*;
                entries.par_iter().try_for_each(|entry| {
                    let child =
                        FileEntry { digest: entry.digest, executable: entry.executable, private: entry.private };
                    self.restore_into(entry.kind, &child, link, &dest.join(&entry.name))
                })
            }
        }
    }

    /// Whether the files in a folder holding `entries`, in it or in its
    /// folders, are all private: `None` when it holds no file at all.
    fn all_private(&self, entries: &[TreeEntry]) -> Result<Option<bool>, StoreError> {
        let mut found = None;
        for entry in entries {
            let private = match entry.kind {
                EntryKind::File => Some(entry.private),
                EntryKind::Dir => self.all_private(&self.read_tree(&entry.digest)?)?,
            };
            match private {
                Some(false) => return Ok(Some(false)),
                Some(true) => found = Some(true),
                None => {}
            }
        }
        Ok(found)
    }

    /// A file of its own at `dest`, holding the object's bytes, checked
    /// against its digest.
    fn restore_file(&self, file: &FileEntry, link: Link, dest: &Path) -> Result<(), StoreError> {
        let digest = &file.digest;
        let object = self.object_path(digest);
        let made = match link {
            Link::Reflink => reflink_copy::reflink(&object, dest),
            Link::Copy | Link::Hardlink => clone_or_copy(&object, dest),
        };
        if let Err(err) = made {
            return Err(if err.kind() == io::ErrorKind::NotFound && !object.exists() {
                StoreError::Missing { digest: *digest }
            } else if link == Link::Reflink {
                StoreError::Link { link, path: dest.to_path_buf(), source: err }
            } else {
                with_path(err, &object).into()
            });
        }
        if Hasher::digest_file(self.algorithm, dest).map_err(|e| with_path(e, dest))? != *digest {
            let _ = std::fs::remove_file(dest);
            return Err(self.corrupt(&object, digest));
        }
        let mode = match (file.executable, file.private) {
            (true, false) => 0o755,
            (false, false) => 0o644,
            (true, true) => 0o700,
            (false, true) => 0o600,
        };
        fs_err::set_permissions(dest, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    /// Makes `dest` a hard link to the file's object, once the object is
    /// verified and read-only. `Ok(false)` when the file is to be copied
    /// instead: the object's permissions are not the output's (an executable
    /// file, or bytes some other output stored private), or it has as many
    /// links as the file system allows.
    fn hard_link(&self, file: &FileEntry, dest: &Path) -> Result<bool, StoreError> {
        let object = self.object_path(&file.digest);
        let meta = match std::fs::metadata(&object) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing { digest: file.digest });
            }
            Err(err) => return Err(with_path(err, &object).into()),
        };
        let mode = meta.permissions().mode();
        if file.executable || gourd_digest::is_private_mode(mode) != file.private {
            return Ok(false);
        }
        self.verify(EntryKind::File, &file.digest)?;
        // An object someone made writable (through a restored link, which
        // is the same file) is made read-only again before it is shared.
        if mode & 0o222 != 0 {
            let read_only = if file.private { 0o400 } else { 0o444 };
            fs_err::set_permissions(&object, std::fs::Permissions::from_mode(read_only))?;
        }
        match std::fs::hard_link(&object, dest) {
            Ok(()) => Ok(true),
            Err(err) if err.raw_os_error() == Some(libc::EMLINK) => Ok(false),
            Err(err) if err.kind() == io::ErrorKind::NotFound && !object.exists() => {
                Err(StoreError::Missing { digest: file.digest })
            }
            Err(err) => Err(StoreError::Link { link: Link::Hardlink, path: dest.to_path_buf(), source: err }),
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
            // Received from elsewhere, which keeps no permissions: stored
            // readable (an object already here keeps its own mode).
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

    /// Keeps the listings of the folder `tree` and of the folders in it (not
    /// the files' bytes), so that a later change to the folder can be told
    /// file by file (`gourd explain`). Listings already kept are not written
    /// again. A listing alone never makes an output restorable: [`Store::has`]
    /// and [`Store::verify`] look for every object under it.
    pub fn keep_listings(&self, tree: &Tree) -> io::Result<()> {
        if let Tree::Dir { digest, children } = tree {
            let target = self.tree_path(digest);
            if target.exists() {
                return Ok(());
            }
            for (_, child) in children {
                self.keep_listings(child)?;
            }
            let bytes = serde_json::to_vec(&Tree::entries(children)).map_err(io::Error::other)?;
            self.install(&bytes, &target)?;
        }
        Ok(())
    }

    /// Adds a folder listing received from elsewhere, after checking it.
    pub fn put_tree_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<Vec<TreeEntry>, StoreError> {
        let entries = self.parse_tree(digest, bytes).ok_or(StoreError::Corrupt { digest: *digest })?;
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

    /// The recorded result for `key`, if any. A result that cannot be read,
    /// does not match its seal (truncated, damaged, edited, from another
    /// version) or names another key is treated as absent.
    pub fn action(&self, key: &Digest) -> Option<ActionResult> {
        let bytes = std::fs::read(self.action_path(key)).ok()?;
        let body = gourd_digest::unseal(ACTION_FORMAT, &bytes)?;
        serde_json::from_slice::<ActionResult>(body).ok().filter(|a| a.key == *key)
    }

    /// Records `result`. Call only after every object it names is stored.
    /// Not fsynced one by one: [`Store::sync`] makes a whole run durable at
    /// once (a group commit), and a result a power failure damaged fails
    /// to parse or to verify, and is treated as absent.
    pub fn put_action(&self, result: &ActionResult) -> io::Result<()> {
        let body = serde_json::to_vec_pretty(result).map_err(io::Error::other)?;
        let bytes = gourd_digest::seal(ACTION_FORMAT, &body);
        crate::fsutil::write_replace(&self.action_path(&result.key), &bytes, false)
    }

    /// Flushes everything written to the store's file system (`syncfs`).
    pub fn sync(&self) -> io::Result<()> {
        sync_file_system(&self.root)
    }

    /// [`Store::sync`] on a thread of its own, so that what the process
    /// does last (recording lineage) overlaps the wait for the disk. The
    /// store waits for it when dropped, or at [`Store::wait_synced`].
    pub fn sync_in_background(&self) {
        let root = self.root.clone();
        let started = std::thread::Builder::new().name("gourd-sync".into()).spawn(move || {
            let _ = sync_file_system(&root);
        });
        let previous = match started {
            Ok(handle) => self.syncing.lock().unwrap().replace(handle),
            // No thread: flushed here and now.
            Err(_) => {
                let _ = self.sync();
                None
            }
        };
        if let Some(previous) = previous {
            let _ = previous.join();
        }
    }

    /// Waits for a [`Store::sync_in_background`] under way, if any.
    pub fn wait_synced(&self) {
        let pending = self.syncing.lock().ok().and_then(|mut syncing| syncing.take());
        if let Some(pending) = pending {
            let _ = pending.join();
        }
    }

    /// Forgets the result for `key` (its objects turned out to be corrupt).
    pub fn drop_action(&self, key: &Digest) {
        let _ = std::fs::remove_file(self.action_path(key));
    }
}

/// Flushes everything written to the file system that holds `path`.
fn sync_file_system(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = fs_err::File::open(path)?;
    // SAFETY: a valid fd; syncfs only flushes.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What [`Store::collect_garbage`] removed (or would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub actions: usize,
    pub objects: usize,
    pub trees: usize,
    pub bytes: u64,
    pub kept_actions: usize,
    /// The results removed, newest first.
    pub removed: Vec<RemovedResult>,
}

/// One action result [`Store::collect_garbage`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedResult {
    pub key: Digest,
    /// Its outputs' paths (empty when the result could not be read).
    pub outputs: Vec<String>,
    pub finished_at: Option<String>,
    /// The bytes of the objects only this result (of those removed before
    /// it in this list) used.
    pub bytes: u64,
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
        // Apart from `live_trees`: a folder met first as a dep (its listing
        // only) and then as another kept result's output must still have
        // its files marked, whichever result is listed first.
        let mut dep_listings = std::collections::HashSet::new();
        let mut going = Vec::new();
        for (path, name) in self.list("actions")? {
            let key = name.trim_end_matches(".json").parse::<Digest>().ok();
            let kept = key.filter(|k| keep.contains(k)).and_then(|k| self.action(&k));
            match kept {
                Some(action) => {
                    report.kept_actions += 1;
                    for output in action.outputs.values().filter(|o| o.cached) {
                        self.mark(output.kind, &output.digest, &mut live_objects, &mut live_trees);
                    }
                    // The listings of its folder deps, for `gourd explain`.
                    let deps = action.manifest.get("deps").and_then(|d| d.as_object());
                    for digest in deps.into_iter().flat_map(|d| d.values()).filter_map(|d| d.as_str()?.parse().ok()) {
                        self.mark_listings(&digest, &mut dep_listings);
                    }
                }
                None => {
                    report.actions += 1;
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    report.bytes += size;
                    going.push((path, key, key.and_then(|k| self.action(&k)), size));
                }
            }
        }
        live_trees.extend(dep_listings);
        // What each removed result alone held, newest first.
        going.sort_by(|a, b| b.2.as_ref().map(|r| &r.finished_at).cmp(&a.2.as_ref().map(|r| &r.finished_at)));
        let (mut counted_objects, mut counted_trees) = (live_objects.clone(), live_trees.clone());
        for (path, key, action, size) in going {
            let mut bytes = size;
            if let Some(action) = &action {
                let (mut objects, mut trees) = (std::collections::HashSet::new(), std::collections::HashSet::new());
                for output in action.outputs.values().filter(|o| o.cached) {
                    self.mark(output.kind, &output.digest, &mut objects, &mut trees);
                }
                for digest in objects {
                    if counted_objects.insert(digest) {
                        bytes += std::fs::metadata(self.object_path(&digest)).map(|m| m.len()).unwrap_or(0);
                    }
                }
                counted_trees.extend(trees);
            }
            if let Some(key) = key {
                report.removed.push(RemovedResult {
                    key,
                    outputs: action.as_ref().map(|a| a.outputs.keys().cloned().collect()).unwrap_or_default(),
                    finished_at: action.map(|a| a.finished_at),
                    bytes,
                });
            }
            if !dry_run {
                fs_err::remove_file(&path)?;
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
            // The stamps of removed objects go with them (`gc` saves the
            // state after collecting).
            let mut stamps = self.stamps().lock().unwrap();
            let before = stamps.objects.len();
            stamps.objects.retain(|digest, _| live_objects.contains(digest));
            stamps.dirty |= stamps.objects.len() != before;
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

    /// Marks the listing `digest` and the listings under it, where the store
    /// holds them (a folder dep's listing is kept without its files).
    fn mark_listings(&self, digest: &Digest, trees: &mut std::collections::HashSet<Digest>) {
        let Ok(entries) = self.read_tree(digest) else { return };
        if trees.insert(*digest) {
            for entry in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
                self.mark_listings(&entry.digest, trees);
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
        // In the order of the names, not the file system's: what `gc` does
        // must not depend on it.
        out.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }
}

/// Makes `to`, a new file readable by its owner only, hold `from`'s bytes:
/// a reflink where the file system makes one, else a copy into that same
/// file. Trying the reflink in a file of its own (as `reflink_or_copy` does)
/// creates and removes an inode for every object where the file system
/// makes none, and on ext4 without a journal every later create then skips
/// the recently freed inodes one by one.
fn clone_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(not(target_os = "linux"))]
    return reflink_copy::reflink_or_copy(from, to).map(|_| ());
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let mut source = std::fs::File::open(from)?;
        let mut dest = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
        // SAFETY: FICLONE takes the source descriptor as its argument; both
        // descriptors are open for the whole call.
        if unsafe { libc::ioctl(dest.as_raw_fd(), libc::FICLONE, source.as_raw_fd()) } == 0 {
            return Ok(());
        }
        // std's copy between two files is copy_file_range (or sendfile) in
        // the kernel.
        io::copy(&mut source, &mut dest).map(|_| ()).inspect_err(|_| {
            let _ = std::fs::remove_file(to);
        })
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
        let record = OutputRecord::from_tree(&tree, true);
        assert!(store.has(record.kind, &record.digest));

        std::fs::remove_dir_all(&out).unwrap();
        store.restore(&record, &out).unwrap();
        assert_eq!(hashing.hash(&out).unwrap().unwrap(), tree);
        assert_eq!(std::fs::read_to_string(out.join("nested/x")).unwrap(), "x");
    }

    #[test]
    fn a_folder_whose_files_are_all_private_comes_back_closed_and_any_other_open() {
        let (dir, store, hashing) = setup();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        // Closed, holding a folder of files, an empty folder and a file.
        let vault = dir.path().join("vault");
        std::fs::create_dir_all(vault.join("inner")).unwrap();
        std::fs::create_dir_all(vault.join("empty")).unwrap();
        std::fs::write(vault.join("f"), "secret").unwrap();
        std::fs::write(vault.join("inner/g"), "deeper").unwrap();
        std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Open, holding a private file and a readable one.
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("id"), "secret").unwrap();
        std::fs::set_permissions(keys.join("id"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(keys.join("id.pub"), "public").unwrap();
        for out in [&vault, &keys] {
            let tree = hashing.hash(out).unwrap().unwrap();
            store.put(out, &tree).unwrap();
            let record = OutputRecord::from_tree(&tree, true);
            std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::remove_dir_all(out).unwrap();
            store.restore(&record, out).unwrap();
            assert_eq!(hashing.hash(out).unwrap().unwrap(), tree, "{}", out.display());
        }
        assert_eq!((mode(&vault), mode(&vault.join("inner"))), (0o700, 0o700));
        // A folder with no file is open: nothing in it says it was closed.
        assert_eq!(mode(&vault.join("empty")) & 0o755, 0o755);
        assert_eq!(mode(&keys) & 0o755, 0o755);
        assert_eq!((mode(&keys.join("id")), mode(&keys.join("id.pub"))), (0o600, 0o644));
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
            let record = OutputRecord::from_tree(&tree, true);
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
        let size = |path: PathBuf| std::fs::metadata(path).unwrap().len();
        let going = [
            size(store.action_path(&keys[1].0)),
            size(store.object_path(&Hasher::digest_bytes(DigestAlgorithm::Blake3, b"two"))),
            size(store.tree_path(&keys[1].1.digest)),
        ];
        let tmp = dir.path().join(".gourd").join(Store::DIR).join("tmp");
        std::fs::write(tmp.join("left-over"), "x").unwrap();
        let stamp = Stamp { size: 3, mtime_ns: 1, inode: 1 };
        let one = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"one");
        let two = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"two");
        store.stamps().lock().unwrap().objects.extend([(one, stamp), (two, stamp)]);
        let dry = store.collect_garbage(&keep, true).unwrap();
        assert_eq!((dry.actions, dry.objects, dry.trees, dry.kept_actions), (1, 1, 1, 1));
        assert_eq!(store.stamps().lock().unwrap().objects.len(), 2, "a dry run keeps every stamp");
        assert_eq!(dry.bytes, going.iter().sum::<u64>());
        // What the removed result alone held: its own file and its object.
        assert_eq!(dry.removed.len(), 1);
        assert_eq!((dry.removed[0].key, dry.removed[0].bytes), (keys[1].0, going[0] + going[1]));
        assert!(store.action(&keys[1].0).is_some(), "a dry run removes nothing");
        assert!(tmp.join("left-over").exists(), "a dry run leaves tmp/ alone");
        let done = store.collect_garbage(&keep, false).unwrap();
        assert_eq!(done, dry);
        assert!(!tmp.join("left-over").exists());
        assert!(store.action(&keys[1].0).is_none());
        assert!(store.has(keys[0].1.kind, &keys[0].1.digest));
        assert!(!store.has(keys[1].1.kind, &keys[1].1.digest));
        let stamps = store.stamps().lock().unwrap();
        assert_eq!(stamps.objects.keys().collect::<Vec<_>>(), [&one], "the removed object's stamp went with it");
        assert!(stamps.dirty);
    }

    #[test]
    fn garbage_collection_keeps_the_folder_listings_of_kept_results_deps() {
        let (dir, store, hashing) = setup();
        let mut keys = Vec::new();
        for content in ["one", "two"] {
            let dep = dir.path().join(format!("data-{content}"));
            std::fs::create_dir_all(dep.join("sub")).unwrap();
            std::fs::write(dep.join("sub/f"), content).unwrap();
            let tree = hashing.hash(&dep).unwrap().unwrap();
            store.keep_listings(&tree).unwrap();
            let key = Hasher::digest_bytes(DigestAlgorithm::Blake3, content.as_bytes());
            store
                .put_action(&ActionResult {
                    key,
                    manifest: serde_json::json!({ "deps": { "data": tree.digest().to_string() } }),
                    outputs: BTreeMap::new(),
                    metrics: BTreeMap::new(),
                    exit_code: 0,
                    started_at: String::new(),
                    finished_at: String::new(),
                    duration_ms: 0,
                })
                .unwrap();
            keys.push((key, tree));
        }
        let keep = std::collections::HashSet::from([keys[0].0]);
        let done = store.collect_garbage(&keep, false).unwrap();
        assert_eq!((done.actions, done.objects, done.trees), (1, 0, 2), "the other result's two listings go");
        let kept = store.tree_entries(&keys[0].1.digest()).unwrap();
        assert_eq!(kept[0].name, "sub");
        assert!(store.tree_entries(&kept[0].digest).is_ok(), "listings under a kept one are kept");
        assert!(store.tree_entries(&keys[1].1.digest()).is_err());
        assert!(!store.has(EntryKind::Dir, &keys[0].1.digest()), "a listing alone is not a restorable output");
    }

    #[test]
    fn garbage_collection_keeps_the_files_of_a_kept_output_that_a_kept_result_reads() {
        // `prepare` writes the folder `prepared`; `train` reads it. Both
        // results are kept, and the folder's files must stay, whichever of
        // the two `gc` meets first: the keys put each first in turn.
        for (prepare_key, train_key) in [(0xff, 0x00), (0x00, 0xff)] {
            let (dir, store, hashing) = setup();
            let prepared = dir.path().join("prepared");
            std::fs::create_dir_all(prepared.join("sub")).unwrap();
            std::fs::write(prepared.join("sub/p.txt"), "prepared bytes").unwrap();
            let tree = hashing.hash(&prepared).unwrap().unwrap();
            store.put(&prepared, &tree).unwrap();
            let model = dir.path().join("model.bin");
            std::fs::write(&model, "weights").unwrap();
            let model_tree = hashing.hash(&model).unwrap().unwrap();
            store.put(&model, &model_tree).unwrap();
            let key = |byte: u8| format!("{byte:02x}").repeat(32).parse::<Digest>().unwrap();
            let action = |key: Digest, deps: serde_json::Value, name: &str, out: &Tree| ActionResult {
                key,
                manifest: serde_json::json!({ "deps": deps }),
                outputs: BTreeMap::from([(name.to_string(), OutputRecord::from_tree(out, true))]),
                metrics: BTreeMap::new(),
                exit_code: 0,
                started_at: String::new(),
                finished_at: String::new(),
                duration_ms: 0,
            };
            store.put_action(&action(key(prepare_key), serde_json::json!({}), "prepared", &tree)).unwrap();
            let deps = serde_json::json!({ "prepared": tree.digest().to_string() });
            store.put_action(&action(key(train_key), deps, "model.bin", &model_tree)).unwrap();

            let keep = std::collections::HashSet::from([key(prepare_key), key(train_key)]);
            let done = store.collect_garbage(&keep, false).unwrap();
            assert_eq!((done.actions, done.objects, done.trees), (0, 0, 0), "prepare first: {}", prepare_key == 0);
            std::fs::remove_dir_all(&prepared).unwrap();
            store.restore(&OutputRecord::from_tree(&tree, true), &prepared).unwrap();
            assert_eq!(std::fs::read_to_string(prepared.join("sub/p.txt")).unwrap(), "prepared bytes");
        }
    }

    #[test]
    fn a_private_files_record_keeps_it_private_when_its_object_came_readable() {
        let (dir, store, hashing) = setup();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "private key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = hashing.hash(&key).unwrap().unwrap();
        let record = OutputRecord::from_tree(&file, true);
        assert!(record.private);
        // As a remote delivers it: the bytes alone, stored readable.
        store.put_object_bytes(&file.digest(), b"private key").unwrap();
        assert_eq!(mode(&store.object_path(&file.digest())), 0o444);
        std::fs::remove_file(&key).unwrap();
        store.restore(&record, &key).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&store.object_path(&file.digest())), 0o400);
        // Written only when set: other results read as before.
        assert_eq!(serde_json::to_value(&record).unwrap()["private"], true);
        let open = OutputRecord { private: false, ..record.clone() };
        assert!(serde_json::to_value(&open).unwrap().get("private").is_none());
        let readable = dir.path().join("readable");
        std::fs::write(&readable, "shared").unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!OutputRecord::from_tree(&hashing.hash(&readable).unwrap().unwrap(), true).private);
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
        let record = OutputRecord::from_tree(&tree, true);
        assert!(matches!(store.restore(&record, &file), Err(StoreError::Corrupt { .. })));
        assert!(!file.exists(), "nothing half-restored is left behind");
        assert!(!object.exists());
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_outputs_are_stored_and_restored_owner_only() {
        let (dir, store, hashing) = setup();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        for (name, mode) in [("secret", 0o600), ("tool", 0o700), ("shared", 0o644)] {
            std::fs::write(out.join(name), name).unwrap();
            std::fs::set_permissions(out.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "private key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

        let tree = hashing.hash(&out).unwrap().unwrap();
        let file = hashing.hash(&key).unwrap().unwrap();
        store.put(&out, &tree).unwrap();
        store.put(&key, &file).unwrap();
        let digest_of = |content: &[u8]| Hasher::digest_bytes(DigestAlgorithm::Blake3, content);
        assert_eq!(mode(&store.object_path(&digest_of(b"secret"))), 0o400);
        assert_eq!(mode(&store.object_path(&digest_of(b"tool"))), 0o400);
        assert_eq!(mode(&store.object_path(&digest_of(b"shared"))), 0o444);
        assert_eq!(mode(&store.object_path(&digest_of(b"private key"))), 0o400);

        std::fs::remove_dir_all(&out).unwrap();
        std::fs::remove_file(&key).unwrap();
        store.restore(&OutputRecord::from_tree(&tree, true), &out).unwrap();
        store.restore(&OutputRecord::from_tree(&file, true), &key).unwrap();
        assert_eq!(mode(&out.join("secret")), 0o600);
        assert_eq!(mode(&out.join("tool")), 0o700);
        assert_eq!(mode(&out.join("shared")), 0o644);
        assert_eq!(mode(&key), 0o600);
        assert_eq!(hashing.hash(&out).unwrap().unwrap(), tree);
    }

    #[test]
    fn private_bytes_stay_private_when_also_stored_readable() {
        let (dir, store, hashing) = setup();
        let public = dir.path().join("public");
        let private = dir.path().join("private");
        for (path, mode) in [(&public, 0o644), (&private, 0o600)] {
            std::fs::write(path, "same").unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let tree = hashing.hash(&public).unwrap().unwrap();
        store.put(&public, &tree).unwrap();
        store.put(&private, &hashing.hash(&private).unwrap().unwrap()).unwrap();
        assert_eq!(mode(&store.object_path(&tree.digest())), 0o400);
    }

    #[test]
    fn names_with_newlines_round_trip() {
        let (dir, store, hashing) = setup();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("a\nf - x b"), "1").unwrap();
        std::fs::write(out.join("a"), "2").unwrap();
        let tree = hashing.hash(&out).unwrap().unwrap();
        store.put(&out, &tree).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        store.restore(&OutputRecord::from_tree(&tree, true), &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a\nf - x b")).unwrap(), "1");
        assert_eq!(hashing.hash(&out).unwrap().unwrap(), tree);
    }

    #[test]
    fn listings_naming_paths_outside_their_folder_are_refused() {
        let (_dir, store, _hashing) = setup();
        for name in ["../escape", "/etc/passwd", "a/b", ".."] {
            let entries = vec![TreeEntry {
                name: name.to_string(),
                kind: EntryKind::File,
                executable: false,
                private: false,
                digest: Hasher::digest_bytes(DigestAlgorithm::Blake3, b"x"),
            }];
            let digest = gourd_digest::tree_digest(DigestAlgorithm::Blake3, &entries);
            let bytes = serde_json::to_vec(&entries).unwrap();
            assert!(matches!(store.put_tree_bytes(&digest, &bytes), Err(StoreError::Corrupt { .. })), "{name}");
        }
    }

    /// Watches `dir` for files created or moved into it (inotify).
    struct Watch(std::os::fd::OwnedFd);

    impl Watch {
        fn new(dir: &Path) -> Watch {
            Watch::events(dir, libc::IN_CREATE | libc::IN_MOVED_TO)
        }

        fn events(dir: &Path, mask: u32) -> Watch {
            use std::os::fd::FromRawFd;
            use std::os::unix::ffi::OsStrExt;
            // SAFETY: plain syscalls on a fresh fd and a NUL-terminated path.
            unsafe {
                let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
                assert!(fd >= 0);
                let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
                assert!(libc::inotify_add_watch(fd, path.as_ptr(), mask) >= 0);
                Watch(std::os::fd::OwnedFd::from_raw_fd(fd))
            }
        }

        /// The names of the events since the watch began.
        fn names(&self) -> Vec<String> {
            use std::os::fd::AsRawFd;
            let mut buf = vec![0u8; 64 * 1024];
            // SAFETY: reading into a buffer of the given length.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let mut names = Vec::new();
            let mut at = 0;
            while n > 0 && at < n as usize {
                // SAFETY: the kernel wrote whole events; the header may be unaligned in buf.
                let event: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let start = at + std::mem::size_of::<libc::inotify_event>();
                let name = &buf[start..start + event.len as usize];
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                names.push(String::from_utf8_lossy(name).into_owned());
                at = start + event.len as usize;
            }
            names
        }
    }

    #[test]
    fn restores_build_nothing_inside_the_outputs_folder() {
        let (dir, store, hashing) = setup();
        let parent = dir.path().join("data");
        let out = parent.join("out");
        std::fs::create_dir_all(out.join("nested")).unwrap();
        std::fs::write(out.join("nested/x"), "x").unwrap();
        std::fs::write(parent.join("model.bin"), "weights").unwrap();
        let folder = hashing.hash(&out).unwrap().unwrap();
        let file = hashing.hash(&parent.join("model.bin")).unwrap().unwrap();
        store.put(&out, &folder).unwrap();
        store.put(&parent.join("model.bin"), &file).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::remove_file(parent.join("model.bin")).unwrap();

        let watch = Watch::new(&parent);
        store.restore(&OutputRecord::from_tree(&folder, true), &out).unwrap();
        store.restore(&OutputRecord::from_tree(&file, true), &parent.join("model.bin")).unwrap();
        // Only the outputs themselves ever appear in their folder, each
        // by one rename: no half-built copy a killed restore could leave.
        assert_eq!(watch.names(), vec!["out", "model.bin"]);
        assert_eq!(std::fs::read_to_string(out.join("nested/x")).unwrap(), "x");
        assert!(std::fs::read_dir(store.root.join("tmp")).unwrap().next().is_none(), "tmp/ is left empty");
    }

    #[test]
    fn storing_a_file_creates_one_file_and_removes_none() {
        let (dir, store, hashing) = setup();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, "weights").unwrap();
        let tree = hashing.hash(&path).unwrap().unwrap();
        let watch = Watch::events(&store.root.join("tmp"), libc::IN_CREATE | libc::IN_DELETE);
        store.put(&path, &tree).unwrap();
        // The reflink is tried in the file the copy then fills: a file
        // made and removed for every object costs an inode each on a file
        // system that makes no reflinks.
        let events = watch.names();
        assert_eq!(events.len(), 1, "{events:?}");
        let Tree::File { digest, .. } = &tree else { panic!("a file") };
        assert_eq!(std::fs::read(store.object_path(digest)).unwrap(), b"weights");
    }

    #[test]
    fn verify_hashes_objects_and_removes_corrupt_ones() {
        let (dir, store, hashing) = setup();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("f"), "good").unwrap();
        let tree = hashing.hash(&out).unwrap().unwrap();
        store.put(&out, &tree).unwrap();
        let object = store.object_path(&Hasher::digest_bytes(DigestAlgorithm::Blake3, b"good"));
        std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&object, "evil").unwrap();
        assert!(store.has(EntryKind::Dir, &tree.digest()), "every object exists");

        let fresh = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
        assert!(matches!(fresh.verify(EntryKind::Dir, &tree.digest()), Err(StoreError::Corrupt { .. })));
        assert!(!object.exists(), "the corrupt object was removed");
        assert!(matches!(fresh.verify(EntryKind::Dir, &tree.digest()), Err(StoreError::Missing { .. })));
    }

    #[test]
    fn objects_hashed_once_are_believed_by_their_stamp_while_read_only_and_unchanged() {
        let (dir, store, hashing) = setup();
        let gourd = dir.path().join(".gourd");
        std::fs::create_dir_all(gourd.join("state-v1")).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "good").unwrap();
        let tree = hashing.hash(&file).unwrap().unwrap();
        store.put(&file, &tree).unwrap();
        let digest = tree.digest();
        let object = store.object_path(&digest);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let set_mtime = |time| std::fs::File::open(&object).unwrap().set_modified(time).unwrap();
        // Stored just now: hashed, but too fresh to stamp.
        store.verify(EntryKind::File, &digest).unwrap();
        assert!(store.stamps().lock().unwrap().objects.is_empty());
        set_mtime(old);
        let first = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        first.verify(EntryKind::File, &digest).unwrap();
        first.save_stamps().unwrap();
        let stamps_file = gourd.join("state-v1/verified-objects.json");
        assert!(stamps_file.exists());

        // Bytes replaced with the size, mtime and permissions kept: a later
        // process believes the stamp and does not read the object.
        let replace = |bytes: &str, mode: u32| {
            std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::write(&object, bytes).unwrap();
            set_mtime(old);
            std::fs::set_permissions(&object, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        replace("evil", 0o444);
        let believed = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        assert!(believed.verify(EntryKind::File, &digest).is_ok());
        // Writable, it is hashed again, found corrupt and removed.
        replace("evil", 0o644);
        let writable = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        assert!(matches!(writable.verify(EntryKind::File, &digest), Err(StoreError::Corrupt { .. })));
        assert!(!object.exists());
        writable.save_stamps().unwrap();
        store.put(&file, &tree).unwrap();
        set_mtime(old);
        let again = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        assert!(again.stamps().lock().unwrap().objects.is_empty(), "the corrupt object's stamp went with it");
        again.verify(EntryKind::File, &digest).unwrap();
        again.save_stamps().unwrap();

        // A changed mtime or size ends the stamp.
        replace("evil", 0o444);
        set_mtime(old + std::time::Duration::from_secs(1));
        let moved = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        assert!(matches!(moved.verify(EntryKind::File, &digest), Err(StoreError::Corrupt { .. })));
        store.put(&file, &tree).unwrap();
        set_mtime(old);
        let restamp = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        restamp.verify(EntryKind::File, &digest).unwrap();
        restamp.save_stamps().unwrap();
        replace("evil!", 0o444);
        let longer = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        assert!(matches!(longer.verify(EntryKind::File, &digest), Err(StoreError::Corrupt { .. })));

        // An edited stamps file is not believed.
        store.put(&file, &tree).unwrap();
        set_mtime(old);
        let stamped = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        stamped.verify(EntryKind::File, &digest).unwrap();
        stamped.save_stamps().unwrap();
        let text = std::fs::read_to_string(&stamps_file).unwrap();
        std::fs::write(&stamps_file, text.replace("\"size\":4", "\"size\":5")).unwrap();
        replace("evil!", 0o444);
        let edited = Store::open(&gourd, DigestAlgorithm::Blake3).unwrap();
        assert!(matches!(edited.verify(EntryKind::File, &digest), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn an_object_modified_within_the_racy_window_is_not_stamped_to_the_nanosecond() {
        let (dir, store, hashing) = setup();
        let file = dir.path().join("f");
        std::fs::write(&file, "bytes").unwrap();
        let tree = hashing.hash(&file).unwrap().unwrap();
        store.put(&file, &tree).unwrap();
        let object = store.object_path(&tree.digest());
        // Between 1.5 and 1.9 s ago, in the last nanosecond of its second:
        // within the window, and out of it if the nanoseconds were
        // subtracted rather than added.
        let since_epoch = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        while since_epoch().subsec_millis() < 500 || since_epoch().subsec_millis() > 850 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let now = since_epoch();
        let at = std::time::Duration::new(now.as_secs() - 2, 999_999_999);
        assert!(now - at < std::time::Duration::from_millis(1900), "{:?}", now - at);
        std::fs::File::open(&object).unwrap().set_modified(std::time::UNIX_EPOCH + at).unwrap();
        store.verify(EntryKind::File, &tree.digest()).unwrap();
        assert!(store.stamps().lock().unwrap().objects.is_empty(), "not stamped while racy");
    }

    #[test]
    fn stamps_are_kept_for_the_store_algorithm_only() {
        let dir = tempfile::tempdir().unwrap();
        let gourd = dir.path().join(".gourd");
        std::fs::create_dir_all(gourd.join("state-v1")).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "bytes").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let stamped = |algorithm| {
            let store = Store::open(&gourd, algorithm).unwrap();
            let tree = Hashing::open(dir.path().join("stat.json"), algorithm).hash(&file).unwrap().unwrap();
            store.put(&file, &tree).unwrap();
            std::fs::File::open(store.object_path(&tree.digest())).unwrap().set_modified(old).unwrap();
            store.verify(EntryKind::File, &tree.digest()).unwrap();
            store.save_stamps().unwrap();
            let reopened = Store::open(&gourd, algorithm).unwrap();
            let count = reopened.stamps().lock().unwrap().objects.len();
            count
        };
        assert_eq!(stamped(DigestAlgorithm::Sha256), 1, "a SHA-256 store keeps its stamps");
        // Another algorithm's stamps are not this store's: read as none.
        assert_eq!(stamped(DigestAlgorithm::Blake3), 1);
        let sha = Store::open(&gourd, DigestAlgorithm::Sha256).unwrap();
        assert!(sha.stamps().lock().unwrap().objects.is_empty());
    }

    #[test]
    fn hard_links_share_the_read_only_object_and_copies_are_files_of_their_own() {
        use std::os::unix::fs::MetadataExt;
        let (dir, store, hashing) = setup();
        let put = |name: &str, body: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let tree = hashing.hash(&path).unwrap().unwrap();
            store.put(&path, &tree).unwrap();
            (OutputRecord::from_tree(&tree, true), store.object_path(&tree.digest()))
        };
        let inode = |path: &Path| std::fs::metadata(path).unwrap().ino();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let out = dir.path().join("out");
        let (plain, object) = put("plain", "plain bytes", 0o644);

        // A hard link is the object itself, read-only.
        store.restore_linked(&plain, &out.join("linked"), Link::Hardlink).unwrap();
        assert_eq!(inode(&out.join("linked")), inode(&object));
        assert_eq!(mode(&out.join("linked")), 0o444);
        // A copy is a file of its own, with the output's permissions.
        store.restore_linked(&plain, &out.join("copied"), Link::Copy).unwrap();
        assert_ne!(inode(&out.join("copied")), inode(&object));
        assert_eq!(mode(&out.join("copied")), 0o644);
        assert_eq!(std::fs::read_to_string(out.join("copied")).unwrap(), "plain bytes");

        // An executable is copied even when a hard link is asked for: the
        // object holds no execute bit to share.
        let (exe, exe_object) = put("run.sh", "#!/bin/sh\n", 0o755);
        store.restore_linked(&exe, &out.join("run.sh"), Link::Hardlink).unwrap();
        assert_ne!(inode(&out.join("run.sh")), inode(&exe_object));
        assert_eq!(mode(&out.join("run.sh")), 0o755);

        // An object someone made writable is made read-only again before
        // it is shared.
        std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
        store.restore_linked(&plain, &out.join("again"), Link::Hardlink).unwrap();
        assert_eq!(mode(&object), 0o444);
        assert_eq!(inode(&out.join("again")), inode(&object));

        // A reflink where the file system makes none is the link's error,
        // not the cache's.
        match store.restore_linked(&plain, &out.join("reflinked"), Link::Reflink) {
            Ok(()) => assert_eq!(std::fs::read_to_string(out.join("reflinked")).unwrap(), "plain bytes"),
            Err(err) => assert!(matches!(err, StoreError::Link { link: Link::Reflink, .. }), "{err}"),
        }

        // No object: missing, for a link as for a copy.
        for (name, link) in [("gone-link", Link::Hardlink), ("gone-copy", Link::Copy)] {
            let fresh = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
            let (record, object) = put(name, name, 0o644);
            std::fs::remove_file(&object).unwrap();
            let err = fresh.restore_linked(&record, &out.join(name), link).unwrap_err();
            assert!(matches!(err, StoreError::Missing { .. }), "{name}: {err}");
            assert!(!out.join(name).exists());
        }
    }

    #[test]
    fn a_store_tells_its_algorithm_and_empties_its_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Sha256).unwrap();
        assert_eq!(store.algorithm(), DigestAlgorithm::Sha256);
        let tmp = dir.path().join(".gourd").join(Store::DIR).join("tmp");
        std::fs::write(tmp.join("left-over"), "x").unwrap();
        store.clean_tmp().unwrap();
        assert!(tmp.is_dir());
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn a_shard_that_is_not_a_folder_is_an_error_not_a_missing_entry() {
        // Missing means "run again"; a damaged store layout is said.
        let (dir, store, hashing) = setup();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("f"), "bytes").unwrap();
        let tree = hashing.hash(&out).unwrap().unwrap();
        store.put(&out, &tree).unwrap();
        let file_digest = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"bytes");
        for path in [store.object_path(&file_digest), store.tree_path(&tree.digest())] {
            let shard = path.parent().unwrap().to_path_buf();
            std::fs::remove_dir_all(&shard).unwrap();
            std::fs::write(&shard, "not a folder").unwrap();
        }
        let fresh = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
        let err = fresh.verify(EntryKind::File, &file_digest).unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err}");
        let err = fresh.verify(EntryKind::Dir, &tree.digest()).unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err}");
        let record = OutputRecord {
            kind: EntryKind::File,
            digest: file_digest,
            executable: false,
            private: false,
            cached: true,
        };
        let err = fresh.restore_linked(&record, &dir.path().join("linked"), Link::Hardlink).unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err}");
        // A listing that is simply not there is missing.
        let unknown = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"no such listing");
        assert!(matches!(fresh.verify(EntryKind::Dir, &unknown), Err(StoreError::Missing { .. })));
    }

    #[test]
    fn a_received_file_is_written_in_the_store_and_adopted_by_its_digest() {
        let (dir, store, _hashing) = setup();
        let (a, b) = (store.receiving_path(), store.receiving_path());
        assert_ne!(a, b);
        // In the store's scratch folder: on its file system, emptied by
        // the next run, never inside the workspace.
        assert_eq!(a.parent().unwrap(), dir.path().join(".gourd").join(Store::DIR).join("tmp"));
        std::fs::write(&a, "received").unwrap();
        let digest = store.adopt_object(&a).unwrap();
        assert_eq!(digest, Hasher::digest_bytes(DigestAlgorithm::Blake3, b"received"));
        assert!(!a.exists());
        let object = store.object_path(&digest);
        assert_eq!(std::fs::read_to_string(&object).unwrap(), "received");
        assert_eq!(std::fs::metadata(&object).unwrap().permissions().mode() & 0o777, 0o444);
    }

    #[test]
    fn listings_travel_as_bytes_and_are_searched_by_path() {
        let (dir, store, hashing) = setup();
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("sub")).unwrap();
        std::fs::write(out.join("sub/x"), "x").unwrap();
        std::fs::write(out.join("y"), "y").unwrap();
        let tree = hashing.hash(&out).unwrap().unwrap();
        store.put(&out, &tree).unwrap();
        let root = tree.digest();
        let x = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"x");
        assert_eq!(store.find_in_tree(&root, "sub/x"), Some((EntryKind::File, x)));
        assert_eq!(store.find_in_tree(&root, "/sub//x/"), Some((EntryKind::File, x)));
        assert!(matches!(store.find_in_tree(&root, "sub"), Some((EntryKind::Dir, _))));
        assert_eq!(store.find_in_tree(&root, ""), Some((EntryKind::Dir, root)));
        assert_eq!(store.find_in_tree(&root, "missing"), None);
        assert_eq!(store.find_in_tree(&root, "y/z"), None, "nothing lies under a file");

        // The bytes of a listing, received by another store: checked, and
        // installed there.
        let bytes = store.tree_bytes(&root).unwrap();
        assert_eq!(bytes, std::fs::read(store.tree_path(&root)).unwrap());
        let other = tempfile::tempdir().unwrap();
        let receiver = Store::open(&other.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
        let entries = receiver.put_tree_bytes(&root, &bytes).unwrap();
        assert_eq!(entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["sub", "y"]);
        assert_eq!(receiver.tree_bytes(&root).unwrap(), bytes);
        let wrong = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"another");
        assert!(matches!(receiver.put_tree_bytes(&wrong, &bytes), Err(StoreError::Corrupt { .. })));
        assert!(receiver.tree_bytes(&wrong).is_err());
        // Flushing the store's file system works (and says so).
        receiver.sync().unwrap();
    }

    #[test]
    fn action_results_that_do_not_match_their_seal_are_absent() {
        let (dir, store, _hashing) = setup();
        let key = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"key");
        let result = ActionResult {
            key,
            manifest: serde_json::json!({"cmd": "true"}),
            outputs: BTreeMap::new(),
            metrics: BTreeMap::new(),
            exit_code: 0,
            started_at: String::new(),
            finished_at: String::new(),
            duration_ms: 0,
        };
        store.put_action(&result).unwrap();
        assert!(store.action(&key).is_some());
        let path = store.action_path(&key);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(r#""true""#, r#""rm -rf ~""#)).unwrap();
        assert!(store.action(&key).is_none(), "an edited result");
        let (_header, body) = text.split_once('\n').unwrap();
        std::fs::write(&path, body).unwrap();
        assert!(store.action(&key).is_none(), "a result without its seal");
        drop(dir);
    }

    #[test]
    fn restores_across_file_systems_fall_back_to_beside() {
        use std::os::unix::fs::MetadataExt;
        let (dir, _store, hashing) = setup();
        // A store on another file system than the output, where there is one.
        let Ok(elsewhere) = tempfile::tempdir_in("/dev/shm") else { return };
        if std::fs::metadata(elsewhere.path()).unwrap().dev() == std::fs::metadata(dir.path()).unwrap().dev() {
            return;
        }
        let store = Store::open(&elsewhere.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
        let out = dir.path().join("data/out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("x"), "x").unwrap();
        let tree = hashing.hash(&out).unwrap().unwrap();
        store.put(&out, &tree).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        store.restore(&OutputRecord::from_tree(&tree, true), &out).unwrap();
        assert_eq!(hashing.hash(&out).unwrap().unwrap(), tree);
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("data")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["out"], "nothing is left beside the output");
        assert!(std::fs::read_dir(store.root.join("tmp")).unwrap().next().is_none());
    }
}
