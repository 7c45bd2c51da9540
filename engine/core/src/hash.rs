//! Hashing files and folders, with a persistent stat cache.
//!
//! A file's digest is the plain digest of its bytes. A folder's digest is a
//! Merkle node over its sorted entries (see `gourd_digest::tree_digest`).
//! Symlinks are followed; sockets, fifos and devices are ignored. Files in one
//! folder are hashed in parallel.
//!
//! The stat cache maps a path to `(size, mtime, ctime, inode) → digest`, so
//! that a run where nothing changed reads no file contents. An entry whose
//! mtime is within two seconds of the moment it was hashed is not kept: a
//! write in the same clock tick could otherwise go unnoticed ("racy" entries,
//! as git calls them).
//!
//! A folder hashed as a dep (see [`Hashing::digest_of`]) also gets a summary:
//! a fingerprint of the stat data of everything under it, with the digest
//! the folder had. When the fingerprint is unchanged the folder's digest is
//! known without looking anything up file by file, so the entries of the
//! files inside folders live in a second file, read only when some folder
//! did change: a no-op status over a million files in a thousand folders
//! stats each file once and holds a thousand summaries, not a million
//! entries.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use gourd_digest::{Digest, DigestAlgorithm, EntryKind, Hasher, TreeEntry, tree_digest};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::fsutil::{RootDir, write_replace};

/// A hashed file or folder, with the whole listing of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// `private`: the file's group or others could not read it (see
    /// `gourd_digest::is_private_mode`).
    File {
        digest: Digest,
        executable: bool,
        private: bool,
    },
    Dir {
        digest: Digest,
        children: Vec<(String, Tree)>,
    },
}

impl Tree {
    pub fn digest(&self) -> Digest {
        match self {
            Tree::File { digest, .. } | Tree::Dir { digest, .. } => *digest,
        }
    }

    pub fn kind(&self) -> EntryKind {
        match self {
            Tree::File { .. } => EntryKind::File,
            Tree::Dir { .. } => EntryKind::Dir,
        }
    }

    /// The listing of a folder, as stored in the cache.
    pub fn entries(children: &[(String, Tree)]) -> Vec<TreeEntry> {
        children
            .iter()
            .map(|(name, child)| TreeEntry {
                name: name.clone(),
                kind: child.kind(),
                executable: matches!(child, Tree::File { executable: true, .. }),
                private: matches!(child, Tree::File { private: true, .. }),
                digest: child.digest(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StatEntry {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    digest: Digest,
}

impl StatEntry {
    fn matches(&self, stat: &Stat) -> bool {
        self.size == stat.size
            && self.mtime_ns == stat.mtime_ns
            && self.ctime_ns == stat.ctime_ns
            && self.inode == stat.inode
    }
}

/// What `stat` says about a path (following symlinks).
#[derive(Debug, Clone, Copy)]
struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    mode: u32,
    device: u64,
}

impl Stat {
    fn from_metadata(meta: &std::fs::Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
            mode: meta.mode(),
            device: meta.dev(),
        }
    }

    fn from_libc(st: &libc::stat) -> Stat {
        Stat {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
            inode: st.st_ino,
            mode: st.st_mode,
            device: st.st_dev,
        }
    }

    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `stat` of the entry `name` of the open folder `folder`, following
/// symbolic links as `std::fs::metadata` does.
fn stat_in(folder: &std::fs::File, name: &str) -> io::Result<Stat> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    crate::fsutil::stat_at(folder, &c).map(|st| Stat::from_libc(&st))
}

const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// The largest file [`Hashing::prefetch`] hashes: stopping is checked
/// between files, and a guess that is wrong should cost little.
pub const PREFETCH_MAX: u64 = 8 << 20;

/// The stat cache decides which files are read at all, so a damaged or
/// edited one must not be believed: it is sealed (see `gourd_digest::seal`)
/// and a file that does not match its seal is an empty cache.
const STAT_CACHE_FORMAT: &str = "gourd stat-cache v3";
/// The entries of files inside folders, in sealed files of their own, one
/// per shard: a folder that changed reads the shard of its own files, not
/// the entries of every file in every folder.
const NESTED_FORMAT: &str = "gourd stat-cache nested v2";
/// Files are sharded by the folder they are in.
const NESTED_SHARDS: usize = 256;

/// A folder's digest, valid while the stat data under it hashes to
/// `fingerprint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FolderEntry {
    fingerprint: Digest,
    digest: Digest,
}

#[derive(Serialize, Deserialize, Default)]
struct StatCacheFile {
    algorithm: DigestAlgorithm,
    /// Files hashed on their own (outputs, file deps).
    entries: HashMap<PathBuf, StatEntry>,
    folders: HashMap<PathBuf, FolderEntry>,
}

#[derive(Serialize, Deserialize, Default)]
struct NestedFile {
    algorithm: DigestAlgorithm,
    entries: HashMap<PathBuf, StatEntry>,
}

/// A map of entries and whether it gained any since it was read. Split in
/// shards by path, each under its own lock: the deps of a run are hashed
/// on all cores, and one lock over thousands of inserts kept the cores
/// waiting on each other rather than hashing.
struct Entries<T> {
    shards: Box<[RwLock<HashMap<PathBuf, T>>]>,
    dirty: std::sync::atomic::AtomicBool,
}

/// Shards of an [`Entries`] map.
const ENTRY_SHARDS: usize = 64;

impl<T: Copy> Default for Entries<T> {
    fn default() -> Entries<T> {
        Entries::new(HashMap::new())
    }
}

impl<T: Copy> Entries<T> {
    fn new(map: HashMap<PathBuf, T>) -> Entries<T> {
        let mut shards: Vec<HashMap<PathBuf, T>> = (0..ENTRY_SHARDS).map(|_| HashMap::new()).collect();
        for (path, entry) in map {
            shards[Self::shard(&path)].insert(path, entry);
        }
        Entries { shards: shards.into_iter().map(RwLock::new).collect(), dirty: Default::default() }
    }

    /// FNV-1a over the path's bytes: cheap, and the same in every process.
    fn shard(path: &Path) -> usize {
        use std::os::unix::ffi::OsStrExt;
        let hash = path
            .as_os_str()
            .as_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
        (hash % ENTRY_SHARDS as u64) as usize
    }

    fn get(&self, path: &Path) -> Option<T> {
        self.shards[Self::shard(path)].read().unwrap().get(path).copied()
    }

    fn insert(&self, path: &Path, entry: T) {
        self.shards[Self::shard(path)].write().unwrap().insert(path.to_path_buf(), entry);
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every entry, in one map.
    fn snapshot(&self) -> HashMap<PathBuf, T> {
        let mut all = HashMap::new();
        for shard in &self.shards {
            all.extend(shard.read().unwrap().iter().map(|(path, &entry)| (path.clone(), entry)));
        }
        all
    }

    fn take_dirty(&self) -> bool {
        self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Hashes paths, remembering file digests by their stat data.
pub struct Hashing {
    algorithm: DigestAlgorithm,
    file: PathBuf,
    entries: Entries<StatEntry>,
    folders: Entries<FolderEntry>,
    /// Each shard is read on first use: a run where no folder changed
    /// reads none.
    nested: Box<[std::sync::OnceLock<Entries<StatEntry>>]>,
    root: Option<RootDir>,
    /// The workspace, its `.git` and `.gourd` (device, inode): a folder
    /// walked into through a link must be none of them (see
    /// [`Hashing::refuse_reserved`]).
    reserved: Vec<((u64, u64), &'static str)>,
    /// The workspace, resolved, and its `.git` and `.gourd`: a link inside
    /// a hashed folder must not lead to the workspace or above it, nor into
    /// `.git` or `.gourd` (see [`Hashing::refuse_reserved_link`]).
    workspace: Option<PathBuf>,
    reserved_paths: Vec<(PathBuf, &'static str)>,
    /// Folders that links lead into, resolved once each: a data folder of
    /// 20,000 links into one pool resolves the pool once, not each link
    /// (a `readlink` per part of each path, on every `status`).
    resolved_folders: std::sync::Mutex<HashMap<PathBuf, Option<PathBuf>>>,
}

/// What [`Hashing::digest_of`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hashed {
    /// A folder whose stat data is as when it was last hashed: its digest,
    /// without its listing.
    Unchanged(Digest),
    Tree(Tree),
}

impl Hashed {
    pub fn digest(&self) -> Digest {
        match self {
            Hashed::Unchanged(digest) => *digest,
            Hashed::Tree(tree) => tree.digest(),
        }
    }
}

impl Hashing {
    /// Opens the stat cache at `file`; a missing or unreadable cache is empty.
    pub fn open(file: PathBuf, algorithm: DigestAlgorithm) -> Hashing {
        let cache = std::fs::read(&file)
            .ok()
            .and_then(|bytes| {
                serde_json::from_slice::<StatCacheFile>(gourd_digest::unseal(STAT_CACHE_FORMAT, &bytes)?).ok()
            })
            .filter(|cache| cache.algorithm == algorithm)
            .unwrap_or_default();
        Hashing {
            algorithm,
            file,
            entries: Entries::new(cache.entries),
            folders: Entries::new(cache.folders),
            nested: (0..NESTED_SHARDS).map(|_| std::sync::OnceLock::new()).collect(),
            root: None,
            reserved: Vec::new(),
            workspace: None,
            reserved_paths: Vec::new(),
            resolved_folders: Default::default(),
        }
    }

    /// The folder of the nested shards, beside the stat cache.
    fn nested_dir(&self) -> PathBuf {
        self.file.with_extension("nested")
    }

    fn nested_file(&self, shard: usize) -> PathBuf {
        self.nested_dir().join(format!("{shard:02x}.json"))
    }

    /// The shard of the file `path`: by the folder it is in, so that the
    /// files of one folder are in one shard.
    fn shard_of(path: &Path) -> usize {
        use std::os::unix::ffi::OsStrExt;
        let folder = path.parent().unwrap_or(path);
        blake3::hash(folder.as_os_str().as_bytes()).as_bytes()[0] as usize % NESTED_SHARDS
    }

    /// The nested entries of the shard that holds `path`.
    fn nested(&self, path: &Path) -> &Entries<StatEntry> {
        let shard = Self::shard_of(path);
        self.nested[shard].get_or_init(|| {
            let map = std::fs::read(self.nested_file(shard))
                .ok()
                .and_then(|bytes| {
                    serde_json::from_slice::<NestedFile>(gourd_digest::unseal(NESTED_FORMAT, &bytes)?).ok()
                })
                .filter(|nested| nested.algorithm == self.algorithm)
                .map(|nested| nested.entries)
                .unwrap_or_default();
            Entries::new(map)
        })
    }

    /// Looks paths under `root` up relative to it (faster; same results).
    pub fn with_root(mut self, root: &Path) -> Hashing {
        use std::os::unix::fs::MetadataExt;
        self.root = RootDir::open(root);
        let places = [
            (root.to_path_buf(), "the whole workspace"),
            (root.join(".git"), "`.git`"),
            (root.join(".gourd"), "`.gourd`"),
        ];
        self.reserved = places
            .iter()
            .filter_map(|(path, what)| std::fs::metadata(path).ok().map(|m| ((m.dev(), m.ino()), *what)))
            .collect();
        self.workspace = std::fs::canonicalize(root).ok();
        self.reserved_paths = places[1..]
            .iter()
            .filter(|(path, _)| std::fs::metadata(path).is_ok_and(|m| m.is_dir()))
            .filter_map(|(path, what)| Some((std::fs::canonicalize(path).ok()?, *what)))
            .collect();
        self
    }

    /// A symbolic link inside a hashed folder must not lead into `.git` or
    /// `.gourd` (git and gourd write there while stages run: what holds it
    /// would never settle), nor to the workspace or a folder above it
    /// (which holds the workspace, so the walk would never end). Only links
    /// are resolved, when the folder is listed: a folder that is none of
    /// these places but holds a link can still lead into one.
    fn refuse_reserved_link(&self, link: &Path) -> io::Result<()> {
        // Without a workspace (`with_root`), nothing is reserved.
        if self.workspace.is_none() {
            return Ok(());
        }
        // Where it leads: the folder its target names, resolved (once per
        // folder), and the target's last part. A dangling link is skipped
        // by the walk, as before.
        let Ok(read) = std::fs::read_link(link) else { return Ok(()) };
        let joined = link.parent().unwrap_or(Path::new("/")).join(&read);
        // (A path ending in `..`, or `/`, has no last name: resolved whole.)
        let (Some(folder), Some(name)) = (joined.parent(), joined.file_name()) else {
            return match std::fs::canonicalize(link) {
                Ok(target) => self.refuse_reserved_target(link, &target),
                Err(_) => Ok(()),
            };
        };
        let folder = {
            let mut known = self.resolved_folders.lock().unwrap();
            known.entry(folder.to_path_buf()).or_insert_with(|| std::fs::canonicalize(folder).ok()).clone()
        };
        let Some(folder) = folder else { return Ok(()) };
        self.refuse_reserved_target(link, &folder.join(name))
    }

    /// [`Hashing::refuse_reserved_link`] for the link `link` leading to
    /// `target` (resolved).
    fn refuse_reserved_target(&self, link: &Path, target: &Path) -> io::Result<()> {
        let target = target.to_path_buf();
        // Inside the workspace is where links usually lead; to it or above
        // it, never.
        let above = self.workspace.as_ref().and_then(|workspace| match workspace.strip_prefix(&target) {
            Ok(rest) if rest.as_os_str().is_empty() => Some("the whole workspace".to_string()),
            Ok(_) => Some("a folder above the workspace".to_string()),
            Err(_) => None,
        });
        let found = above.or_else(|| {
            self.reserved_paths.iter().find_map(|(place, what)| match target.strip_prefix(place) {
                Ok(rest) if rest.as_os_str().is_empty() => Some(what.to_string()),
                Ok(_) => Some(format!("inside {what}")),
                Err(_) => None,
            })
        });
        match found {
            None => Ok(()),
            Some(what) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{}` is {what}, reached through a symbolic link: gourd and git write there while stages run, so what holds it would never settle (remove the link, or name what the stage reads)",
                    link.display()
                ),
            )),
        }
    }

    /// A folder hashed (a dep or an output, or one reached through a link
    /// inside it) must not be the workspace, `.git` or `.gourd`: gourd and
    /// git write there while stages run, so what holds it never settles
    /// (and the workspace inside itself never ends).
    fn refuse_reserved(&self, path: &Path, stat: &Stat) -> io::Result<()> {
        match self.reserved.iter().find(|(id, _)| *id == (stat.device, stat.inode)) {
            None => Ok(()),
            Some((_, what)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{}` is {what}, reached through a symbolic link: gourd and git write there while stages run, so what holds it would never settle (remove the link, or name what the stage reads)",
                    path.display()
                ),
            )),
        }
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        if let Some(result) = self.root.as_ref().and_then(|root| root.stat(path)) {
            return result.map(|st| Stat::from_libc(&st));
        }
        std::fs::metadata(path).map(|m| Stat::from_metadata(&m))
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// Writes the cache back if anything was added.
    pub fn save(&self) -> io::Result<()> {
        let mut wrote_nested = false;
        for (shard, nested) in self.nested.iter().enumerate() {
            if let Some(nested) = nested.get().filter(|nested| nested.take_dirty()) {
                let file = NestedFile { algorithm: self.algorithm, entries: nested.snapshot() };
                let body = serde_json::to_vec(&file).map_err(io::Error::other)?;
                write_replace(&self.nested_file(shard), &gourd_digest::seal(NESTED_FORMAT, &body), false)?;
                wrote_nested = true;
            }
        }
        if wrote_nested {
            // The one file of earlier versions is not read any more.
            let _ = std::fs::remove_file(self.file.with_extension("nested.json"));
        }
        // Both flags are taken: either one means the file is rewritten.
        let (entries, folders) = (self.entries.take_dirty(), self.folders.take_dirty());
        if !(entries || folders) {
            return Ok(());
        }
        let cache = StatCacheFile {
            algorithm: self.algorithm,
            entries: self.entries.snapshot(),
            folders: self.folders.snapshot(),
        };
        let body = serde_json::to_vec(&cache).map_err(io::Error::other)?;
        write_replace(&self.file, &gourd_digest::seal(STAT_CACHE_FORMAT, &body), false)
    }

    /// Hashes, one after the other, those of `paths` that are regular
    /// files of at most [`PREFETCH_MAX`] bytes, with no symbolic link on
    /// the way (each path must be its own canonical form), remembering
    /// their digests as [`Hashing::hash`] does; until `stop` is set. What a
    /// run will hash anyway, done while the core would wait: see
    /// `Workspace::prefetch`. Errors are left for the real hashing to meet.
    pub fn prefetch(&self, paths: &[PathBuf], stop: &std::sync::atomic::AtomicBool) -> usize {
        let mut hashed = 0;
        for path in paths {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let Ok(meta) = self.stat(path) else { continue };
            if !meta.is_file() || meta.size > PREFETCH_MAX {
                continue;
            }
            // No link on the way, the last part included: a folder link
            // could lead the guess into `.git`, out of the workspace, or to
            // `/proc`, whose files claim no size and may never end.
            if std::fs::canonicalize(path).ok().as_deref() != Some(path.as_path()) {
                continue;
            }
            if self.hash_with_meta(path, &meta, false, false).is_ok() {
                hashed += 1;
            }
        }
        hashed
    }

    /// How many file digests are remembered outside folders.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.entries.snapshot().len()
    }

    /// Hashes `path`; `None` when nothing is there.
    pub fn hash(&self, path: &Path) -> io::Result<Option<Tree>> {
        let meta = match self.stat(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(with_path(err, path)),
        };
        self.hash_with_meta(path, &meta, false, false).map(Some)
    }

    /// The digest of `path`, as [`Hashing::hash`] gives it; for a folder
    /// whose stat data (names, modes, sizes, times and inodes of everything
    /// under it) is as when it was last hashed here, without hashing or
    /// listing it again. `None` when nothing is there.
    pub fn digest_of(&self, path: &Path) -> io::Result<Option<Hashed>> {
        let meta = match self.stat(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(with_path(err, path)),
        };
        if !meta.is_dir() {
            return self.hash_with_meta(path, &meta, false, false).map(|tree| Some(Hashed::Tree(tree)));
        }
        self.refuse_reserved(path, &meta)?;
        // The fingerprint is taken before the contents are read: a file
        // changed in between leaves a fingerprint that no longer matches,
        // never a digest of contents newer than its fingerprint says.
        let (fingerprint, newest_ns) = self.fingerprint(path)?;
        // The folder's own mode too: closing it to others makes its files
        // private (see `private_folder`).
        let fingerprint = {
            let mut hasher = Hasher::new_domain(self.algorithm, "gourd stat fingerprint v1 with mode");
            hasher.update(fingerprint.as_bytes());
            hasher.update(&meta.mode.to_le_bytes());
            hasher.finalize()
        };
        if let Some(entry) = self.folders.get(path) {
            if entry.fingerprint == fingerprint {
                return Ok(Some(Hashed::Unchanged(entry.digest)));
            }
        }
        let tree = self.hash_dir(path, private_folder(meta.mode))?;
        if crate::time::now_ns() - newest_ns > RACY_WINDOW_NS {
            self.folders.insert(path, FolderEntry { fingerprint, digest: tree.digest() });
        }
        Ok(Some(Hashed::Tree(tree)))
    }

    /// The fingerprint of the stat data of everything under the folder
    /// `path`, as `hash_dir` would see it, and the newest mtime in it (the
    /// racy window applies to it as to a file's entry).
    fn fingerprint(&self, path: &Path) -> io::Result<(Digest, i64)> {
        let names = list(path)?;
        // Each name is looked up in the folder, by the folder's descriptor:
        // one path component per lookup, not the whole path from the root.
        let folder = std::fs::File::open(path).map_err(|e| with_path(e, path))?;
        let stats: Vec<Option<(String, Stat)>> = names
            .into_par_iter()
            .map(|(name, link)| match stat_in(&folder, &name) {
                // A link to a folder is walked into: where it leads is
                // checked first (a link to a file is checked when the folder
                // is hashed; a fingerprint that matches was checked then).
                Ok(stat) if stat.is_dir() && link => {
                    self.refuse_reserved_link(&path.join(&name))?;
                    Ok(Some((name, stat)))
                }
                Ok(stat) if stat.is_dir() || stat.is_file() => Ok(Some((name, stat))),
                Ok(_) => Ok(None),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(with_path(err, &path.join(&name))),
            })
            .collect::<io::Result<_>>()?;
        // The stat data is gathered, then hashed at once: BLAKE3 is slow on
        // many small updates.
        let mut data = Vec::with_capacity(stats.len() * 64);
        let mut newest = i64::MIN;
        for (name, stat) in stats.into_iter().flatten() {
            data.extend_from_slice(&(name.len() as u64).to_le_bytes());
            data.extend_from_slice(name.as_bytes());
            data.extend_from_slice(&stat.mode.to_le_bytes());
            if stat.is_dir() {
                self.refuse_reserved(&path.join(&name), &stat)?;
                let (sub, sub_newest) = self.fingerprint(&path.join(&name))?;
                data.extend_from_slice(sub.as_bytes());
                newest = newest.max(sub_newest);
            } else {
                for field in [stat.size as i64, stat.mtime_ns, stat.ctime_ns, stat.inode as i64] {
                    data.extend_from_slice(&field.to_le_bytes());
                }
                newest = newest.max(stat.mtime_ns);
            }
        }
        let mut hasher = Hasher::new_domain(self.algorithm, "gourd stat fingerprint v1");
        hasher.update(&data);
        Ok((hasher.finalize(), newest))
    }

    /// `private_above`: a folder above `path`, within what is hashed, is
    /// closed to others.
    fn hash_with_meta(&self, path: &Path, meta: &Stat, nested: bool, private_above: bool) -> io::Result<Tree> {
        if meta.is_dir() {
            self.refuse_reserved(path, meta)?;
            return self.hash_dir(path, private_above || private_folder(meta.mode));
        }
        // Reading a pipe or a device (a link to `/dev/zero`, say) would
        // wait or run forever.
        let special = match meta.mode & libc::S_IFMT {
            libc::S_IFREG => None,
            libc::S_IFIFO => Some("a named pipe"),
            libc::S_IFCHR => Some("a character device"),
            libc::S_IFBLK => Some("a block device"),
            libc::S_IFSOCK => Some("a socket"),
            _ => Some("not a regular file"),
        };
        if let Some(kind) = special {
            let message = format!("`{}` is {kind}: gourd hashes regular files and folders only", path.display());
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let executable = meta.mode & 0o111 != 0;
        let private = private_above || gourd_digest::is_private_mode(meta.mode);
        Ok(Tree::File { digest: self.hash_file(path, meta, nested)?, executable, private })
    }

    fn hash_file(&self, path: &Path, meta: &Stat, nested: bool) -> io::Result<Digest> {
        let entries = if nested { self.nested(path) } else { &self.entries };
        if let Some(entry) = entries.get(path) {
            if entry.matches(meta) {
                return Ok(entry.digest);
            }
        }
        let digest = Hasher::digest_file_sized(self.algorithm, path, meta.size).map_err(|e| with_path(e, path))?;
        // Re-read the stat data: if the file changed while being hashed, do
        // not remember a digest for it.
        let after = self.stat(path).map_err(|e| with_path(e, path))?;
        let entry = StatEntry {
            size: after.size,
            mtime_ns: after.mtime_ns,
            ctime_ns: after.ctime_ns,
            inode: after.inode,
            digest,
        };
        if entry.matches(meta) && crate::time::now_ns() - entry.mtime_ns > RACY_WINDOW_NS {
            entries.insert(path, entry);
        }
        Ok(digest)
    }

    /// `private`: this folder, or one above it within what is hashed, is
    /// closed to others, and so are its files (stored and restored so).
    fn hash_dir(&self, path: &Path, private: bool) -> io::Result<Tree> {
        let names = list(path)?;
        let children: Vec<Option<(String, Tree)>> = names
            .into_par_iter()
            .map(|(name, link)| {
                let child = path.join(&name);
                if link {
                    self.refuse_reserved_link(&child)?;
                }
                let meta = match self.stat(&child) {
                    Ok(meta) => meta,
                    // A dangling symlink, or a file removed while we list.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(err) => return Err(with_path(err, &child)),
                };
                if !meta.is_dir() && !meta.is_file() {
                    return Ok(None);
                }
                Ok(Some((name, self.hash_with_meta(&child, &meta, true, private)?)))
            })
            .collect::<io::Result<_>>()?;
        let children: Vec<(String, Tree)> = children.into_iter().flatten().collect();
        let digest = tree_digest(self.algorithm, &Tree::entries(&children));
        Ok(Tree::Dir { digest, children })
    }
}

/// Whether a folder with permission bits `mode` keeps its files from group
/// or others (either may not list or enter it): its files are then private
/// whatever their own modes, as the stage that closed it meant.
fn private_folder(mode: u32) -> bool {
    mode & 0o055 != 0o055
}

/// The names in the folder `path`, sorted, each with whether it is a
/// symbolic link (the listing says, without a `stat` on most file systems).
fn list(path: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| with_path(e, path))? {
        let entry = entry.map_err(|e| with_path(e, path))?;
        let link = entry.file_type().is_ok_and(|kind| kind.is_symlink());
        let name = match entry.file_name().into_string() {
            Ok(name) => name,
            // Folder listings hold names as UTF-8 text; a lossy
            // conversion would let two names collide, so refuse.
            Err(name) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "`{}` has a file name that is not valid UTF-8; gourd cannot hash or cache it (rename it)",
                        escaped(&path.join(name))
                    ),
                ));
            }
        };
        names.push((name, link));
    }
    names.sort();
    Ok(names)
}

/// `path` for a message, with every byte that is not UTF-8 written `\xNN`,
/// so that two different paths never print the same.
pub fn escaped(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

pub(crate) fn with_path(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{err} (at `{}`)", path.display()))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn folders_hash_by_content_and_cache_by_stat() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("d");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a"), "one").unwrap();
        std::fs::write(root.join("sub/b"), "two").unwrap();
        let cache_file = dir.path().join("stat.json");
        let hashing = Hashing::open(cache_file.clone(), DigestAlgorithm::Blake3);
        let first = hashing.hash(&root).unwrap().unwrap();

        // Same content elsewhere: same digest.
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(copy.join("sub")).unwrap();
        std::fs::write(copy.join("a"), "one").unwrap();
        std::fs::write(copy.join("sub/b"), "two").unwrap();
        assert_eq!(hashing.hash(&copy).unwrap().unwrap().digest(), first.digest());

        // A changed byte changes the digest.
        std::fs::write(root.join("sub/b"), "TWO").unwrap();
        assert_ne!(hashing.hash(&root).unwrap().unwrap().digest(), first.digest());
        assert_eq!(hashing.hash(&dir.path().join("missing")).unwrap(), None);
    }

    #[test]
    fn looking_up_relative_to_the_root_gives_the_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("d/e/f"), "x").unwrap();
        std::fs::write(root.join("g"), "y").unwrap();
        std::os::unix::fs::symlink(root.join("g"), root.join("d/link")).unwrap();
        let plain = Hashing::open(dir.path().join("a.json"), DigestAlgorithm::Blake3);
        let rooted = Hashing::open(dir.path().join("b.json"), DigestAlgorithm::Blake3).with_root(&root);
        for path in [root.join("d"), root.join("g"), root.join("d/link")] {
            assert_eq!(plain.hash(&path).unwrap(), rooted.hash(&path).unwrap(), "{}", path.display());
        }
        // A folder holding the workspace is never walked by a rooted hashing.
        assert!(plain.hash(dir.path()).is_ok());
        assert_eq!(rooted.hash(dir.path()).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(rooted.hash(&root.join("missing")).unwrap(), None);
        // A change deep in a folder reaches both, alike.
        let before = rooted.hash(&root.join("d")).unwrap();
        std::fs::write(root.join("d/e/f"), "changed").unwrap();
        let after = rooted.hash(&root.join("d")).unwrap();
        assert_ne!(after, before);
        assert_eq!(plain.hash(&root.join("d")).unwrap(), after);
    }

    #[test]
    fn stat_cache_is_trusted_only_for_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        hashing.hash(&file).unwrap();
        hashing.save().unwrap();
        let reopened = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        assert_eq!(reopened.entries.snapshot().len(), 1);

        // A fresh file is hashed but not remembered.
        let fresh = dir.path().join("g");
        std::fs::write(&fresh, "y").unwrap();
        reopened.hash(&fresh).unwrap();
        assert_eq!(reopened.entries.snapshot().len(), 1);
    }

    /// What a prefetch hashes is what hashing would find, remembered; a
    /// file changed after it is hashed again; links (also a folder link on
    /// the way), pipes, folders and large files are left alone (a pipe read
    /// would wait for ever); and it stops when told.
    #[test]
    fn a_prefetch_hashes_old_regular_files_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = &std::fs::canonicalize(dir.path()).unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        let aged = |path: &Path| {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
        };
        for name in ["a", "b"] {
            std::fs::write(root.join(name), name).unwrap();
            aged(&root.join(name));
        }
        std::fs::write(root.join("big"), vec![7u8; PREFETCH_MAX as usize + 1]).unwrap();
        aged(&root.join("big"));
        std::fs::write(root.join("edge"), vec![7u8; PREFETCH_MAX as usize]).unwrap();
        aged(&root.join("edge"));
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        std::fs::create_dir(root.join("folder")).unwrap();
        std::fs::write(root.join("folder/c"), "c").unwrap();
        aged(&root.join("folder/c"));
        // Files reached through a folder link: one that could be hashed,
        // and one of `/proc` (finite, but the kind that may not be).
        std::os::unix::fs::symlink("folder", root.join("folder-link")).unwrap();
        std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
        let pipe = std::ffi::CString::new(root.join("pipe").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; mkfifo only creates it.
        assert_eq!(unsafe { libc::mkfifo(pipe.as_ptr(), 0o600) }, 0);
        let names = ["a", "b", "big", "edge", "link", "folder", "pipe", "missing", "folder-link/c", "proc/self/status"];
        let paths: Vec<PathBuf> = names.iter().map(|name| root.join(name)).collect();

        let stop = std::sync::atomic::AtomicBool::new(false);
        let hashing = Hashing::open(root.join("stat.json"), DigestAlgorithm::Blake3);
        assert_eq!(hashing.prefetch(&paths, &stop), 3);
        let mut remembered: Vec<PathBuf> = hashing.entries.snapshot().into_keys().collect();
        remembered.sort();
        assert_eq!(remembered, vec![root.join("a"), root.join("b"), root.join("edge")]);
        let plain = Hashing::open(root.join("other.json"), DigestAlgorithm::Blake3);
        assert_eq!(hashing.hash(&root.join("a")).unwrap(), plain.hash(&root.join("a")).unwrap());

        // Changed after the prefetch: hashed again, not taken from it.
        std::fs::write(root.join("b"), "changed").unwrap();
        aged(&root.join("b"));
        assert_eq!(hashing.hash(&root.join("b")).unwrap(), plain.hash(&root.join("b")).unwrap());
        assert_ne!(hashing.hash(&root.join("b")).unwrap(), plain.hash(&root.join("a")).unwrap());

        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let stopped = Hashing::open(root.join("third.json"), DigestAlgorithm::Blake3);
        assert_eq!(stopped.prefetch(&paths, &stop), 0);
        assert!(stopped.entries.snapshot().is_empty());
    }

    /// The entries are split in shards: every entry is found again, in this
    /// process and after a save, and the shards are used.
    #[test]
    fn sharded_entries_keep_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        let files: Vec<PathBuf> = (0..200).map(|i| dir.path().join(format!("f{i}"))).collect();
        for (i, file) in files.iter().enumerate() {
            std::fs::write(file, i.to_string()).unwrap();
            std::fs::File::options().write(true).open(file).unwrap().set_modified(old).unwrap();
        }
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        let digests: Vec<_> = files.iter().map(|file| hashing.hash(file).unwrap()).collect();
        let used = hashing.entries.shards.iter().filter(|shard| !shard.read().unwrap().is_empty()).count();
        assert!(used > ENTRY_SHARDS / 2, "{used} shards used");
        hashing.save().unwrap();
        let reopened = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        assert_eq!(reopened.entries.snapshot().len(), files.len());
        for (file, digest) in files.iter().zip(&digests) {
            let Some(Tree::File { digest: remembered, .. }) = digest else { panic!("{file:?} is a file") };
            assert_eq!(reopened.entries.get(file).map(|entry| entry.digest), Some(*remembered));
        }
    }

    #[test]
    fn entries_inside_folders_are_read_only_when_a_folder_changed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        for name in ["a", "b"] {
            std::fs::write(data.join(name), name).unwrap();
            std::fs::File::options().write(true).open(data.join(name)).unwrap().set_modified(old).unwrap();
        }
        let cache = dir.path().join("stat.json");
        let hashing = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
        let digest = hashing.digest_of(&data).unwrap().unwrap().digest();
        hashing.save().unwrap();
        let shard = Hashing::shard_of(&data.join("a"));
        assert_eq!(shard, Hashing::shard_of(&data.join("b")), "the files of a folder share a shard");
        // Folders spread over the shards.
        let shards: std::collections::BTreeSet<usize> =
            (0..64).map(|i| Hashing::shard_of(&data.join(format!("s{i:04}")).join("f.txt"))).collect();
        assert!(shards.len() > 32 && shards.iter().all(|&s| s < NESTED_SHARDS), "{shards:?}");
        let shard_file = hashing.nested_file(shard);
        assert!(shard_file.exists());
        assert_eq!(std::fs::read_dir(hashing.nested_dir()).unwrap().count(), 1, "only that shard is written");
        assert_eq!(hashing.entries.snapshot().len(), 0, "the files are nested entries");

        let reopened = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
        assert_eq!(reopened.digest_of(&data).unwrap(), Some(Hashed::Unchanged(digest)));
        assert!(reopened.nested.iter().all(|shard| shard.get().is_none()), "not read for an unchanged folder");
        // One file changes: the other's digest comes from its entry.
        std::fs::write(data.join("a"), "A").unwrap();
        assert!(matches!(reopened.digest_of(&data).unwrap(), Some(Hashed::Tree(_))));
        assert_eq!(reopened.nested(&data.join("b")).snapshot().len(), 2);
        assert!(reopened.nested(&data.join("b")).get(&data.join("b")).is_some());
        let loaded: Vec<usize> = (0..NESTED_SHARDS).filter(|&i| reopened.nested[i].get().is_some()).collect();
        assert_eq!(loaded, [shard], "only the folder's shard is read");
        // Nothing learnt (the changed file is too fresh), nothing written.
        std::fs::remove_file(&shard_file).unwrap();
        reopened.save().unwrap();
        assert!(!shard_file.exists());
    }

    #[test]
    fn names_that_are_not_utf8_are_refused_naming_the_path() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        std::fs::create_dir_all(&root).unwrap();
        // Latin-1 "café" and "caf\u{FFFD}" would be one name after a lossy conversion.
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "1").unwrap();
        std::fs::write(root.join("caf\u{FFFD}"), "2").unwrap();
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        let err = hashing.hash(&root).unwrap_err().to_string();
        assert!(err.contains(&format!("`{}/caf\\xe9`", root.display())), "{err}");
        assert!(err.contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn private_files_are_told_apart_in_folder_digests() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("d");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f"), "x").unwrap();
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        let readable = hashing.hash(&root).unwrap().unwrap();
        std::fs::set_permissions(root.join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let private = hashing.hash(&root).unwrap().unwrap();
        assert_ne!(readable.digest(), private.digest());
        assert!(matches!(hashing.hash(&root.join("f")).unwrap().unwrap(), Tree::File { private: true, .. }));
    }

    #[test]
    fn a_folder_walked_into_git_gourd_or_the_workspace_through_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in [".git/refs", ".gourd/cache", "data/real", "other"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(root.join("data/real/x"), "x").unwrap();
        std::fs::write(root.join("other/y"), "y").unwrap();
        let hashing = Hashing::open(root.join(".gourd/stat.json"), DigestAlgorithm::Blake3).with_root(root);
        // Links to anything else are followed as before; a dangling one is
        // skipped.
        std::os::unix::fs::symlink("../other", root.join("data/other")).unwrap();
        std::os::unix::fs::symlink("../gone", root.join("data/gone")).unwrap();
        std::os::unix::fs::symlink("real/x", root.join("data/x")).unwrap();
        let before = hashing.hash(&root.join("data")).unwrap().unwrap();
        assert!(hashing.digest_of(&root.join("data")).unwrap().is_some());
        assert_eq!(hashing.hash(&root.join("data/other")).unwrap().unwrap().digest(), {
            let Tree::Dir { children, .. } = &before else { panic!("{before:?}") };
            assert!(children.iter().all(|(name, _)| name != "gone"), "{children:?}");
            children.iter().find(|(name, _)| name == "other").unwrap().1.digest()
        });
        // A dep that is such a link itself.
        std::os::unix::fs::symlink(".git", root.join("gl")).unwrap();
        let err = hashing.digest_of(&root.join("gl")).unwrap_err();
        assert!(err.to_string().contains("gl` is `.git`, reached through a symbolic link"), "{err}");
        assert!(hashing.hash(&root.join("gl")).is_err());
        for (n, target, what) in [
            ("../.git", "`.git`"),
            ("../.gourd", "`.gourd`"),
            ("..", "the whole workspace"),
            ("../.git/refs", "inside `.git`"),
            ("../.gourd/cache", "inside `.gourd`"),
            ("../../..", "a folder above the workspace"),
            // A file, checked when its folder is hashed.
            ("../.git/HEAD", "inside `.git`"),
        ]
        .into_iter()
        .enumerate()
        .map(|(n, (target, what))| (n, target, what))
        {
            let data = root.join(format!("data-{n}"));
            std::fs::create_dir_all(&data).unwrap();
            std::os::unix::fs::symlink(target, data.join("link")).unwrap();
            for err in [hashing.digest_of(&data).unwrap_err(), hashing.hash(&data).unwrap_err()] {
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{target}: {err}");
                let expected = format!("`{}` is {what}, reached through a symbolic link", data.join("link").display());
                assert!(err.to_string().contains(&expected), "{target}: {err}");
            }
        }
    }

    #[test]
    fn the_files_of_a_folder_closed_to_others_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        let private_files = |tree: &Tree| -> Vec<(String, bool)> {
            fn walk(prefix: &str, tree: &Tree, out: &mut Vec<(String, bool)>) {
                if let Tree::Dir { children, .. } = tree {
                    for (name, child) in children {
                        match child {
                            Tree::File { private, .. } => out.push((format!("{prefix}{name}"), *private)),
                            dir => walk(&format!("{prefix}{name}/"), dir, out),
                        }
                    }
                }
            }
            let mut out = Vec::new();
            walk("", tree, &mut out);
            out
        };
        let root = dir.path().join("out");
        std::fs::create_dir_all(root.join("vault/inner")).unwrap();
        for file in ["open", "vault/f", "vault/inner/g"] {
            std::fs::write(root.join(file), file).unwrap();
            std::fs::set_permissions(root.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let set_mode =
            |rel: &str, mode| std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode));
        set_mode("", 0o755).unwrap();
        set_mode("vault", 0o755).unwrap();
        let open = hashing.hash(&root).unwrap().unwrap();
        assert!(private_files(&open).iter().all(|(_, private)| !private), "{:?}", private_files(&open));
        // Closed below: what is under the closed folder only.
        set_mode("vault", 0o700).unwrap();
        let below = hashing.hash(&root).unwrap().unwrap();
        assert_eq!(
            private_files(&below),
            [("open".to_string(), false), ("vault/f".to_string(), true), ("vault/inner/g".to_string(), true)]
        );
        // Closed at the top: everything, and the folder's digest as
        // `digest_of` gives it sees the change of mode.
        set_mode("vault", 0o755).unwrap();
        // Old enough for `digest_of` to keep the folder's digest by its
        // fingerprint: closing the folder must still be seen.
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for file in ["open", "vault/f", "vault/inner/g"] {
            std::fs::File::options().write(true).open(root.join(file)).unwrap().set_modified(hour_ago).unwrap();
        }
        let before = hashing.digest_of(&root).unwrap().unwrap().digest();
        assert!(matches!(hashing.digest_of(&root).unwrap().unwrap(), Hashed::Unchanged(_)), "kept by fingerprint");
        set_mode("", 0o750).unwrap();
        let top = hashing.hash(&root).unwrap().unwrap();
        assert!(private_files(&top).iter().all(|(_, private)| *private), "{:?}", private_files(&top));
        assert_eq!(hashing.digest_of(&root).unwrap().unwrap().digest(), top.digest());
        assert_ne!(before, top.digest());
    }

    #[test]
    fn pipes_devices_and_sockets_are_named_not_read() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        let fifo = dir.path().join("pipe");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let mut cases = vec![("pipe", "a named pipe"), ("socket", "a socket"), ("zero", "a character device")];
        // A block device, where the machine shows one.
        let block = std::fs::read_dir("/dev")
            .into_iter()
            .flatten()
            .flatten()
            .find(|entry| entry.file_type().is_ok_and(|t| t.is_block_device()));
        if let Some(block) = block {
            std::os::unix::fs::symlink(block.path(), dir.path().join("disk")).unwrap();
            cases.push(("disk", "a block device"));
        }
        for (name, kind) in cases {
            let err = hashing.hash(&dir.path().join(name)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
            assert!(err.to_string().contains(&format!("{name}` is {kind}")), "{name}: {err}");
        }
    }

    #[test]
    fn an_edited_stat_cache_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let cache = dir.path().join("stat.json");
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::write(&file, "before").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
        let hashing = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
        let before = hashing.hash(&file).unwrap().unwrap().digest();
        hashing.save().unwrap();

        // The file changes; the cache is then edited to claim that the
        // file's new stat data goes with its old digest.
        std::fs::write(&file, "after!").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
        let stat = Stat::from_metadata(&std::fs::metadata(&file).unwrap());
        let bytes = std::fs::read(&cache).unwrap();
        let body = gourd_digest::unseal(STAT_CACHE_FORMAT, &bytes).unwrap();
        let mut forged: serde_json::Value = serde_json::from_slice(body).unwrap();
        let entry = &mut forged["entries"][file.to_str().unwrap()];
        entry["size"] = stat.size.into();
        entry["mtime_ns"] = stat.mtime_ns.into();
        entry["ctime_ns"] = stat.ctime_ns.into();
        entry["inode"] = stat.inode.into();
        let forged = serde_json::to_vec(&forged).unwrap();
        let (header, _) = bytes.split_at(bytes.iter().position(|&b| b == b'\n').unwrap() + 1);
        std::fs::write(&cache, [header, &forged].concat()).unwrap();

        let reopened = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
        let after = reopened.hash(&file).unwrap().unwrap().digest();
        assert_ne!(after, before, "the forged entry was not used");
        assert_eq!(after, Hasher::digest_bytes(DigestAlgorithm::Blake3, b"after!"));
    }
}
