//! A cache of evaluated pipelines.
//!
//! Nickel is pure: the only inputs of an evaluation are the files it reads.
//! The `__eval` child reports those files with their digests (see
//! [`crate::sources`]); an entry keeps them next to the export, and a later
//! load uses the export only if every one of them still has the same digest
//! (and every file that was absent still is). Entries live one per pipeline
//! file, named after its path, gourd's version and the standard library.
//!
//! ```text
//! .gourd/state-v1/eval/DIGEST.json
//!   gourd eval-cache v2 LEN DIGEST      the seal: see `gourd_digest::seal`
//!   [{"path":…,"digest":…},…]           the files read, on one line
//!   {…}                                 the export
//! ```
//!
//! An entry that does not match its seal (damaged, truncated, edited) is
//! absent: an edited export must never decide what runs.
//!
//! On a hit, evaluating a 500-stage pipeline costs reading the entry and
//! hashing the files it names instead of running the evaluator (about 0.15 s
//! in a release build).

use std::path::{Path, PathBuf};

use gourd_digest::{Digest, DigestAlgorithm, Hasher};

use crate::sources::Source;

const DOMAIN: &str = "gourd eval-cache v3";
const FORMAT: &str = "gourd eval-cache v2";

pub struct EvalCache {
    dir: PathBuf,
}

impl EvalCache {
    pub fn new(dir: PathBuf) -> EvalCache {
        EvalCache { dir }
    }

    fn path(&self, slot: &Digest) -> PathBuf {
        self.dir.join(format!("{slot}.json"))
    }

    /// The export stored for `slot`, and the files its evaluation read, if its
    /// seal matches and every one of those files still reads the same.
    pub fn get(&self, slot: &Digest) -> Option<(String, Vec<Source>)> {
        let bytes = std::fs::read(self.path(slot)).ok()?;
        let body = std::str::from_utf8(gourd_digest::unseal(FORMAT, &bytes)?).ok()?;
        let (sources, export) = body.split_once('\n')?;
        let sources: Vec<Source> = serde_json::from_str(sources).ok()?;
        sources.iter().all(Source::is_current).then(|| (export.to_string(), sources))
    }

    /// Best effort: a cache that cannot be written only costs time.
    pub fn put(&self, slot: &Digest, sources: &[Source], json: &str) {
        let write = || -> std::io::Result<()> {
            let mut body = serde_json::to_string(sources).map_err(std::io::Error::other)?;
            body.push('\n');
            body.push_str(json);
            // The export may hold values a pipeline keeps out of sight.
            create_private_dir(&self.dir)?;
            let tmp = self.dir.join(format!(".{slot}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, gourd_digest::seal(FORMAT, body.as_bytes()))?;
            std::fs::rename(&tmp, self.path(slot))
        };
        let _ = write();
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Where the evaluation of `file` (with the standard library installed in
/// `stdlib_dir`) is cached: one entry per pipeline file, gourd version and
/// standard library.
pub fn slot(file: &Path, stdlib_dir: &Path) -> Digest {
    let mut hasher = Hasher::new_domain(DigestAlgorithm::Blake3, DOMAIN);
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(b"\0");
    hasher.update(crate::STDLIB.as_bytes());
    for path in [file, stdlib_dir] {
        let bytes = path.as_os_str().as_encoded_bytes();
        hasher.update(format!("\0{}:", bytes.len()).as_bytes());
        hasher.update(bytes);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_used_only_while_their_files_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EvalCache::new(dir.path().join("eval"));
        let file = dir.path().join("gourd.ncl");
        std::fs::write(&file, "{}").unwrap();
        let slot = slot(&file, dir.path());
        let sources =
            vec![Source { path: file.clone(), digest: Some(Hasher::digest_bytes(DigestAlgorithm::Blake3, b"{}")) }];
        cache.put(&slot, &sources, r#"{"stages":{}}"#);
        // The export comes back with the files its evaluation read.
        assert_eq!(cache.get(&slot), Some((r#"{"stages":{}}"#.to_string(), sources)));
        std::fs::write(&file, "{ }").unwrap();
        assert_eq!(cache.get(&slot), None);
    }

    #[test]
    fn an_edited_entry_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EvalCache::new(dir.path().join("eval"));
        let slot = slot(&dir.path().join("gourd.ncl"), dir.path());
        cache.put(&slot, &[], r#"{"stages":{"s":{"cmd":"echo real"}}}"#);
        assert!(cache.get(&slot).is_some());
        let path = cache.path(&slot);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("echo real", "echo fake")).unwrap();
        assert_eq!(cache.get(&slot), None);
    }
}
