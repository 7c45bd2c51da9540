//! A workspace: the folder holding `gourd.ncl`, and its `.gourd/` folder.
//!
//! ```text
//! .gourd/
//! ├── lock                     held by the one `gourd run` at a time
//! ├── cache-v1/                the store (see `store`)
//! ├── state-v1/
//! │   ├── stat-cache.json      file digests by stat data
//! │   └── stages/NAME.json     the manifest of each stage's last run
//! ├── params/NAME.json         the params handed to a running stage
//! └── logs/NAME.log            the last run's stdout and stderr
//! ```
//!
//! Everything under `.gourd/` can be deleted; that only costs re-runs.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use gourd_digest::{Digest, DigestAlgorithm};
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;
use crate::hash::{Hashing, Tree};
use crate::path::WsPath;
use crate::store::Store;

pub struct Workspace {
    pub root: PathBuf,
    pub gourd_dir: PathBuf,
    pub store: Store,
    pub hashing: Hashing,
}

/// The manifest and key of a stage's last successful run in this workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastRun {
    pub key: Digest,
    pub manifest: serde_json::Value,
    pub status: String,
    pub finished_at: String,
}

impl Workspace {
    pub fn open(root: &Path) -> io::Result<Workspace> {
        let root = fs_err::canonicalize(root)?;
        let gourd_dir = root.join(".gourd");
        let algorithm = DigestAlgorithm::Blake3;
        let store = Store::open(&gourd_dir, algorithm)?;
        let hashing = Hashing::open(gourd_dir.join("state-v1/stat-cache.json"), algorithm);
        Ok(Workspace { root, gourd_dir, store, hashing })
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
    pub fn hash_deps(&self, deps: &[WsPath]) -> io::Result<Result<BTreeMap<WsPath, Digest>, WsPath>> {
        let mut digests = BTreeMap::new();
        for dep in deps {
            match self.hash(dep)? {
                Some(tree) => {
                    digests.insert(dep.clone(), tree.digest());
                }
                None => return Ok(Err(dep.clone())),
            }
        }
        Ok(Ok(digests))
    }

    pub fn log_path(&self, stage: &str) -> PathBuf {
        self.gourd_dir.join("logs").join(format!("{stage}.log"))
    }

    pub fn params_path(&self, stage: &str) -> PathBuf {
        self.gourd_dir.join("params").join(format!("{stage}.json"))
    }

    fn last_run_path(&self, stage: &str) -> PathBuf {
        self.gourd_dir.join("state-v1/stages").join(format!("{stage}.json"))
    }

    pub fn last_run(&self, stage: &str) -> Option<LastRun> {
        let bytes = std::fs::read(self.last_run_path(stage)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn record_last_run(&self, stage: &str, last: &LastRun) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(last).map_err(io::Error::other)?;
        write_atomic(&self.last_run_path(stage), &bytes)
    }
}
