//! A workspace: the folder holding `gourd.ncl`, and its `.gourd/` folder.
//!
//! ```text
//! .gourd/
//! ├── lock                     held by the one `gourd run` at a time
//! ├── cache-v1/                the store (see `store`)
//! ├── state-v1/
//! │   ├── stat-cache.json      file digests by stat data
//! │   ├── last-runs.json       each stage's last run: key, outcome, time
//! │   ├── journal-v1.jsonl     finished stages whose lineage is not recorded (see `journal`)
//! │   ├── runs/TOKEN           runs in progress or killed (see `orphans`)
//! │   └── eval/                evaluated pipelines, by the files they read
//! ├── params/DIGEST.json       params handed to running stages, by content
//! ├── steps/DIGEST.json        built-in steps' configurations, by content
//! └── logs/NAME.log            the last run's stdout and stderr
//! ```
//!
//! `logs/`, `params/`, `steps/`, `state-v1/` and the store's `tmp/` are
//! accessible to their owner only (0700): what they hold may come from a
//! stage's private data. Everything under `.gourd/` can be deleted; that
//! only costs re-runs.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gourd_digest::{Digest, DigestAlgorithm};
use serde::{Deserialize, Serialize};

use crate::fsutil::write_replace;
use crate::hash::{Hashed, Hashing, Tree};
use crate::path::WsPath;
use crate::store::Store;

pub struct Workspace {
    pub root: PathBuf,
    pub gourd_dir: PathBuf,
    pub store: Store,
    pub hashing: Hashing,
    last_runs: Mutex<LastRuns>,
    /// Stages whose outputs gourd cleared for a run that has not succeeded
    /// since, with what a failed run left at each output path: that, and
    /// only that, is the stage's own to remove.
    cleared: Mutex<Cleared>,
    /// Where the digests of outputs recorded outside `.gourd` are found
    /// (lineage, in git): what gourd wrote is known after `.gourd` is gone.
    recorded: std::sync::OnceLock<RecordedOutputs>,
    /// The files the pipeline is read from (see [`Workspace::set_sources`]).
    sources: std::sync::OnceLock<Vec<WsPath>>,
    /// Where git keeps the repository under another name than `.git` (see
    /// [`Workspace::set_git_dirs`]).
    git_dirs: std::sync::OnceLock<Vec<WsPath>>,
    /// Held while the state is saved (see [`Workspace::save_state`]).
    saving: Mutex<()>,
}

/// The digest recorded for a stage's output path, if any (`stage`, `path`).
pub type RecordedOutputs = Box<dyn Fn(&str, &str) -> Option<Digest> + Send + Sync>;

/// Output path → the digest of what a failed run left there (`None`:
/// nothing). A stage with no entry for a path (its run is under way, or was
/// killed) left nothing known there.
pub type Leftovers = BTreeMap<String, Option<Digest>>;

#[derive(Default)]
struct Cleared {
    stages: BTreeMap<String, Leftovers>,
    /// As read or last written: saved only when `stages` differs (a run
    /// whose stages all succeed leaves it as it was).
    saved: BTreeMap<String, Leftovers>,
}

/// The key of a stage's last successful run in this workspace; its manifest
/// is in the action result of that key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub key: Digest,
    pub status: String,
    pub finished_at: String,
}

#[derive(Default)]
struct LastRuns {
    stages: BTreeMap<String, LastRun>,
    dirty: bool,
}

/// How a workspace's files are hashed.
const ALGORITHM: DigestAlgorithm = DigestAlgorithm::Blake3;

impl Workspace {
    pub fn open(root: &Path) -> io::Result<Workspace> {
        Workspace::open_with(root, None)
    }

    /// Like [`Workspace::open`], hashing with `hashing` (from
    /// [`Workspace::open_hashing`], with what it already hashed).
    pub fn open_with(root: &Path, hashing: Option<Hashing>) -> io::Result<Workspace> {
        let root = fs_err::canonicalize(root)?;
        let gourd_dir = root.join(".gourd");
        let algorithm = ALGORITHM;
        let store = Store::open(&gourd_dir, algorithm)?;
        // Logs, params and state may hold what a stage keeps private; only
        // the owner may look inside.
        for private in ["logs", "params", "steps", "state-v1"] {
            crate::fsutil::create_private_dir(&gourd_dir.join(private))?;
        }
        let hashing = match hashing {
            // Made before `.gourd` may have existed: the places it must not
            // walk into are found again, now that the store made it.
            Some(hashing) => hashing.with_root(&root),
            None => Workspace::open_hashing(&root)?,
        };
        let stages = std::fs::read(gourd_dir.join(LAST_RUNS))
            .ok()
            .and_then(|bytes| serde_json::from_slice(gourd_digest::unseal(LAST_RUNS_FORMAT, &bytes)?).ok())
            .unwrap_or_default();
        let last_runs = Mutex::new(LastRuns { stages, dirty: false });
        let cleared: BTreeMap<String, Leftovers> = std::fs::read(gourd_dir.join(CLEARED))
            .ok()
            .and_then(|bytes| serde_json::from_slice(gourd_digest::unseal(CLEARED_FORMAT, &bytes)?).ok())
            .unwrap_or_default();
        let cleared = Mutex::new(Cleared { saved: cleared.clone(), stages: cleared });
        Ok(Workspace {
            root,
            gourd_dir,
            store,
            hashing,
            last_runs,
            cleared,
            recorded: std::sync::OnceLock::new(),
            sources: std::sync::OnceLock::new(),
            git_dirs: std::sync::OnceLock::new(),
            saving: Mutex::new(()),
        })
    }

    /// The hashing of the workspace at `root`, with its stat cache read;
    /// nothing is written.
    pub fn open_hashing(root: &Path) -> io::Result<Hashing> {
        let root = fs_err::canonicalize(root)?;
        Ok(Hashing::open(root.join(".gourd/state-v1/stat-cache.json"), ALGORITHM).with_root(&root))
    }

    /// Hashes the paths `find` gives (workspace paths, as a pipeline's
    /// source names them; those in a `.git` or `.gourd` folder are left
    /// out) on a thread of its own, `find` included (given the flag that
    /// [`Prefetch::finish`] sets, to stop early), until
    /// [`Prefetch::finish`]: what a cold run would hash after evaluating
    /// its pipeline, hashed while it is evaluated on another core. A path
    /// that turns out not to be a dep costs a read of at most
    /// [`crate::hash::PREFETCH_MAX`] bytes. None on one core, where the
    /// guess would slow the evaluation down.
    pub fn prefetch(
        root: &Path,
        find: impl FnOnce(&std::sync::atomic::AtomicBool) -> Vec<WsPath> + Send + 'static,
    ) -> Option<Prefetch> {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) == 1 {
            return None;
        }
        let root = fs_err::canonicalize(root).ok()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gourd-prefetch".into())
            .spawn(move || {
                let hashing = Workspace::open_hashing(&root).ok()?;
                let paths: Vec<PathBuf> = find(&stopped)
                    .iter()
                    .filter(|path| !path.as_str().split('/').any(|part| part == ".git" || part == ".gourd"))
                    .map(|path| path.to_path(&root))
                    .collect();
                hashing.prefetch(&paths, &stopped);
                Some(hashing)
            })
            .ok()?;
        Some(Prefetch { stop, thread })
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.hashing.algorithm()
    }

    pub fn abs(&self, path: &WsPath) -> PathBuf {
        path.to_path(&self.root)
    }

    /// Hashes a workspace path; `None` when it does not exist.
    pub fn hash(&self, path: &WsPath) -> io::Result<Option<Tree>> {
        self.hashing.hash(&self.abs(path))
    }

    /// Hashes every dep; the first missing one is returned as the error.
    /// The listings of folder deps are kept in the store (best effort), so
    /// that what changed in one can later be told file by file.
    pub fn hash_deps(&self, deps: &[WsPath]) -> io::Result<Result<BTreeMap<WsPath, Digest>, WsPath>> {
        let mut digests = BTreeMap::new();
        for dep in deps {
            match self.hashing.digest_of(&self.abs(dep))? {
                Some(Hashed::Tree(tree)) => {
                    // Only a saving for `gourd explain`: a full disk or a
                    // read-only cache must not stop a status or a run.
                    let _ = self.store.keep_listings(&tree);
                    digests.insert(dep.clone(), tree.digest());
                }
                // Its listing was kept when it was hashed.
                Some(Hashed::Unchanged(digest)) => {
                    digests.insert(dep.clone(), digest);
                }
                None => return Ok(Err(dep.clone())),
            }
        }
        Ok(Ok(digests))
    }

    pub fn log_path(&self, stage: &str) -> PathBuf {
        self.gourd_dir.join("logs").join(format!("{stage}.log"))
    }

    /// Where a stage's params are written for it: one file per distinct
    /// content, so re-running a stage creates no file.
    pub fn params_path(&self, params_json: &str) -> PathBuf {
        let digest = gourd_digest::Hasher::digest_bytes(self.algorithm(), params_json.as_bytes());
        self.gourd_dir.join("params").join(format!("{}.json", &digest.to_string()[..32]))
    }

    /// Where a built-in step's configuration is written for it, by content.
    pub fn step_config_path(&self, config_json: &str) -> PathBuf {
        let digest = gourd_digest::Hasher::digest_bytes(self.algorithm(), config_json.as_bytes());
        self.gourd_dir.join("steps").join(format!("{}.json", &digest.to_string()[..32]))
    }

    pub fn last_run(&self, stage: &str) -> Option<LastRun> {
        self.last_runs.lock().unwrap().stages.get(stage).cloned()
    }

    /// The key of every stage's last run here, of any pipeline file that
    /// ran in this folder (they share `.gourd`), in the order of the names.
    pub fn last_run_keys(&self) -> Vec<Digest> {
        self.last_runs.lock().unwrap().stages.values().map(|last| last.key).collect()
    }

    /// Remembers a stage's last run; written out by [`Workspace::save_state`].
    pub fn record_last_run(&self, stage: &str, last: LastRun) {
        {
            self.cleared.lock().unwrap().stages.remove(stage);
        }
        let mut runs = self.last_runs.lock().unwrap();
        if runs.stages.get(stage) != Some(&last) {
            runs.stages.insert(stage.to_string(), last);
            runs.dirty = true;
        }
    }

    /// Notes that gourd cleared the stage's outputs to run it (what a failed
    /// run of it left is forgotten); the whole note goes when a run of it
    /// succeeds ([`Workspace::record_last_run`]).
    pub fn mark_cleared(&self, stage: &str) {
        self.cleared.lock().unwrap().stages.insert(stage.to_string(), Leftovers::new());
    }

    /// Sets the files the pipeline is read from (workspace-relative): no
    /// output may replace them, by any name (see [`crate::guard`]); once.
    pub fn set_sources(&self, sources: Vec<WsPath>) {
        let _ = self.sources.set(sources);
    }

    /// Sets the folders inside the workspace where git keeps the repository
    /// under another name than `.git` (`git init --separate-git-dir`, a
    /// worktree's or a submodule's), workspace-relative: no output may be,
    /// hold or lie in one; once.
    pub fn set_git_dirs(&self, dirs: Vec<WsPath>) {
        let _ = self.git_dirs.set(dirs);
    }

    /// The folders set by [`Workspace::set_git_dirs`].
    pub fn git_dirs(&self) -> &[WsPath] {
        self.git_dirs.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// The files the pipeline is read from, as set by [`Workspace::set_sources`].
    pub fn sources(&self) -> &[WsPath] {
        self.sources.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// Sets where the digests of outputs recorded outside `.gourd` are
    /// looked up (see [`Workspace::recorded_output`]); once.
    pub fn set_recorded_outputs(&self, recorded: RecordedOutputs) {
        let _ = self.recorded.set(recorded);
    }

    /// The digest recorded outside `.gourd` (in lineage) for the stage's
    /// output `path`: what the stage last wrote there, even when `.gourd`
    /// was deleted since.
    pub fn recorded_output(&self, stage: &str, path: &str) -> Option<Digest> {
        self.recorded.get().and_then(|recorded| recorded(stage, path))
    }

    /// Whether gourd cleared the stage's outputs for a run that has not
    /// ended yet (nothing noted of what it left).
    pub fn clearing(&self, stage: &str) -> bool {
        self.cleared.lock().unwrap().stages.get(stage).is_some_and(Leftovers::is_empty)
    }

    /// Whether a run of the stage began here and none succeeded since (it
    /// failed, or was stopped).
    pub fn attempted(&self, stage: &str) -> bool {
        self.cleared.lock().unwrap().stages.contains_key(stage)
    }

    /// Notes what a failed run of the stage left at its output paths.
    pub fn note_leftovers(&self, stage: &str, leftovers: Leftovers) {
        self.cleared.lock().unwrap().stages.insert(stage.to_string(), leftovers);
    }

    /// What the last failed run of the stage left at its output paths, when
    /// no run of it succeeded since.
    pub fn leftovers(&self, stage: &str) -> Leftovers {
        self.cleared.lock().unwrap().stages.get(stage).cloned().unwrap_or_default()
    }

    /// Writes the state gathered in memory: last runs, the stamps of
    /// verified objects and the stat cache. A run saves from a thread of
    /// its own while stages go on: each file is serialized under its lock
    /// and written outside it, and saves take turns, so that a slower
    /// earlier save never lands after a later one.
    pub fn save_state(&self) -> io::Result<()> {
        let _turn = self.saving.lock().unwrap();
        let cleared = {
            let cleared = self.cleared.lock().unwrap();
            (cleared.stages != cleared.saved).then(|| cleared.stages.clone())
        };
        if let Some(stages) = cleared {
            let body = serde_json::to_vec(&stages).map_err(io::Error::other)?;
            write_replace(&self.gourd_dir.join(CLEARED), &gourd_digest::seal(CLEARED_FORMAT, &body), false)?;
            self.cleared.lock().unwrap().saved = stages;
        }
        let runs = {
            let mut runs = self.last_runs.lock().unwrap();
            let dirty = std::mem::take(&mut runs.dirty);
            dirty.then(|| serde_json::to_vec(&runs.stages).map_err(io::Error::other)).transpose()?
        };
        if let Some(body) = runs {
            let written =
                write_replace(&self.gourd_dir.join(LAST_RUNS), &gourd_digest::seal(LAST_RUNS_FORMAT, &body), false);
            if written.is_err() {
                self.last_runs.lock().unwrap().dirty = true;
            }
            written?;
        }
        self.store.save_stamps()?;
        self.hashing.save()
    }
}

const LAST_RUNS: &str = "state-v1/last-runs.json";
const CLEARED: &str = "state-v1/cleared.json";
/// Sealed like the last runs: a damaged or edited file is ignored (what is
/// at the stages' output paths is then moved aside, not removed).
const CLEARED_FORMAT: &str = "gourd cleared v1";
/// Sealed (see `gourd_digest::seal`): a damaged or edited file is ignored.
const LAST_RUNS_FORMAT: &str = "gourd last-runs v2";

/// Hashing that began before the workspace was opened: see
/// [`Workspace::prefetch`].
pub struct Prefetch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<Hashing>>,
}

impl Prefetch {
    /// Stops hashing (after the file in hand) and gives the hashing, for
    /// [`Workspace::open_with`].
    pub fn finish(self) -> Option<Hashing> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashing of a prefetch of `paths` in `root`, left to end on its
    /// own (`finish` stops it wherever it is).
    fn prefetched(root: &Path, paths: &[&str]) -> Option<Hashing> {
        let paths: Vec<WsPath> = paths.iter().map(|p| WsPath::new(p).unwrap()).collect();
        let prefetch = Workspace::prefetch(root, move |_| paths).expect("a prefetch on two cores");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !prefetch.thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        prefetch.finish()
    }

    /// A prefetch hashes the workspace paths it is given, and the
    /// workspace opened with its hashing has them.
    #[test]
    fn a_workspace_opened_after_a_prefetch_has_its_digests() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::create_dir(dir.path().join("data")).unwrap();
        for name in ["data/a", "data/b"] {
            std::fs::write(dir.path().join(name), name).unwrap();
            std::fs::File::options().write(true).open(dir.path().join(name)).unwrap().set_modified(old).unwrap();
        }
        let hashing = prefetched(dir.path(), &["data/a", "data/b", "data/missing"]);
        let ws = Workspace::open_with(dir.path(), hashing).unwrap();
        assert_eq!(ws.hashing.remembered(), 2);
        assert_eq!(
            ws.hash(&WsPath::new("data/a").unwrap()).unwrap(),
            Workspace::open(dir.path()).unwrap().hash(&WsPath::new("data/a").unwrap()).unwrap()
        );
    }

    /// A prefetch may begin before `.gourd` exists (a fresh clone): the
    /// workspace opened with its hashing still refuses a folder that leads
    /// into `.gourd` through a link; and nothing in `.git` or `.gourd` is
    /// prefetched.
    #[test]
    fn a_prefetch_before_gourd_exists_keeps_gourd_out_of_reach() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::create_dir_all(dir.path().join("sub/.git")).unwrap();
        for name in ["d/f", "sub/.git/config"] {
            std::fs::write(dir.path().join(name), name).unwrap();
            std::fs::File::options().write(true).open(dir.path().join(name)).unwrap().set_modified(old).unwrap();
        }
        let hashing = prefetched(dir.path(), &["d/f", "sub/.git/config"]);
        assert!(!dir.path().join(".gourd").exists(), "the prefetch creates nothing");
        let ws = Workspace::open_with(dir.path(), hashing).unwrap();
        assert_eq!(ws.hashing.remembered(), 1, "`sub/.git/config` is left out");
        std::fs::create_dir_all(ws.gourd_dir.join("inside")).unwrap();
        std::os::unix::fs::symlink("../.gourd/inside", dir.path().join("d/l")).unwrap();
        let err = ws.hash(&WsPath::new("d").unwrap()).unwrap_err();
        assert!(err.to_string().contains("`.gourd`"), "{err}");
    }

    /// Saves running on several threads while stages record their runs:
    /// once `save_state` returns, every run recorded before it was called
    /// is in the file, whichever save wrote it, and nothing is lost at the
    /// end.
    #[test]
    fn a_save_that_returns_has_written_what_came_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let ws = std::sync::Arc::new(Workspace::open(dir.path()).unwrap());
        let file = ws.gourd_dir.join(LAST_RUNS);
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let (ws, file) = (ws.clone(), file.clone());
                std::thread::spawn(move || {
                    for i in 0..150u8 {
                        let stage = format!("s{t}-{i:03}");
                        let last = LastRun {
                            key: Digest::from_bytes([t; 32]),
                            status: "ran".into(),
                            finished_at: i.to_string(),
                        };
                        ws.record_last_run(&stage, last);
                        ws.save_state().unwrap();
                        let saved = std::fs::read(&file).unwrap();
                        let quoted = format!("\"{stage}\"");
                        assert!(
                            saved.windows(quoted.len()).any(|w| w == quoted.as_bytes()),
                            "{stage} was recorded before the save returned, and is not in the file"
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        ws.save_state().unwrap();
        let again = Workspace::open(dir.path()).unwrap();
        let missing: Vec<String> = (0..4)
            .flat_map(|t| (0..150).map(move |i| format!("s{t}-{i:03}")))
            .filter(|s| again.last_run(s).is_none())
            .collect();
        assert!(missing.is_empty(), "{} runs lost, such as {:?}", missing.len(), missing.first());
    }
}
