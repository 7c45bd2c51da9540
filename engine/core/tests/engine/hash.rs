//! Hashing files and folders, and when the stat cache is believed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use gourd_core::hash::{Hashing, Tree, escaped};
use gourd_digest::{DigestAlgorithm, EntryKind, Hasher, tree_digest};

const FORMAT: &str = "gourd stat-cache v2";

fn set_old(path: &Path, ago: u64) {
    let old = SystemTime::now() - Duration::from_secs(ago);
    fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
}

#[test]
fn files_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("d/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("d/secret"), "s").unwrap();
    fs::set_permissions(root.join("d/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("d/sub/plain"), "p").unwrap();
    fs::write(root.join("target"), "t").unwrap();
    std::os::unix::fs::symlink(root.join("target"), root.join("d/link")).unwrap();
    std::os::unix::fs::symlink("gone", root.join("d/dangling")).unwrap();
    let fifo = std::ffi::CString::new(root.join("d/fifo").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

    let hashing = Hashing::open(root.join("stat.json"), DigestAlgorithm::Blake3);
    let file = hashing.hash(&root.join("d/sub/plain")).unwrap().unwrap();
    assert_eq!(file.digest(), Hasher::digest_bytes(DigestAlgorithm::Blake3, b"p"));
    assert_eq!(file.kind(), EntryKind::File);
    assert!(matches!(file, Tree::File { executable: false, private: false, .. }));
    assert!(matches!(hashing.hash(&root.join("d/run.sh")).unwrap().unwrap(), Tree::File { executable: true, .. }));
    assert!(matches!(hashing.hash(&root.join("d/secret")).unwrap().unwrap(), Tree::File { private: true, .. }));

    let Some(Tree::Dir { digest, children }) = hashing.hash(&root.join("d")).unwrap() else { panic!("a folder") };
    let names: Vec<&str> = children.iter().map(|(n, _)| n.as_str()).collect();
    // The link is followed; the dangling link and the fifo are left out.
    assert_eq!(names, ["link", "run.sh", "secret", "sub"]);
    assert_eq!(children[0].1.digest(), Hasher::digest_bytes(DigestAlgorithm::Blake3, b"t"));
    assert_eq!(children[3].1.kind(), EntryKind::Dir);
    let entries = Tree::entries(&children);
    assert_eq!(digest, tree_digest(DigestAlgorithm::Blake3, &entries));
    assert!(entries[1].executable && !entries[1].private);
    assert!(entries[2].private && !entries[2].executable);
    assert_eq!(entries[3].kind, EntryKind::Dir);
    assert_eq!(entries[3].digest, children[3].1.digest());

    // Another algorithm, other digests.
    let sha = Hashing::open(root.join("stat-sha.json"), DigestAlgorithm::Sha256);
    assert_eq!(sha.algorithm(), DigestAlgorithm::Sha256);
    assert_eq!(
        sha.hash(&root.join("d/sub/plain")).unwrap().unwrap().digest(),
        Hasher::digest_bytes(DigestAlgorithm::Sha256, b"p")
    );

    assert_eq!(hashing.hash(&root.join("missing")).unwrap(), None);
    let err = hashing.hash(&root.join("target/below")).unwrap_err();
    assert!(err.to_string().contains("target/below"), "{err}");
}

#[test]
fn the_cache_is_written_only_when_it_learnt_something_and_only_for_old_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("state/stat.json");
    fs::write(dir.path().join("fresh"), "new").unwrap();
    let hashing = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
    hashing.save().unwrap();
    assert!(!cache.exists(), "nothing learnt, nothing written");
    hashing.hash(&dir.path().join("fresh")).unwrap();
    hashing.save().unwrap();
    assert!(!cache.exists(), "a file written just now is not remembered");

    fs::write(dir.path().join("old"), "aaaa").unwrap();
    set_old(&dir.path().join("old"), 10);
    hashing.hash(&dir.path().join("old")).unwrap();
    hashing.save().unwrap();
    assert!(cache.exists());
    fs::remove_file(&cache).unwrap();
    hashing.save().unwrap();
    assert!(!cache.exists(), "saved once, not again until something is learnt");
}

#[test]
fn a_remembered_digest_is_used_only_while_every_stat_field_matches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    fs::write(&file, "aaaa").unwrap();
    set_old(&file, 10);
    let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
    let first = hashing.hash(&file).unwrap().unwrap().digest();
    // Same size, and the same mtime put back: only ctime tells.
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    fs::write(&file, "bbbb").unwrap();
    fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
    let second = hashing.hash(&file).unwrap().unwrap().digest();
    assert_ne!(first, second);
    assert_eq!(second, Hasher::digest_bytes(DigestAlgorithm::Blake3, b"bbbb"));
}

/// Rewrites every digest the saved cache holds, resealed: what a cache
/// that is believed would answer.
fn forge(cache: &Path, digest: &str) {
    let bytes = fs::read(cache).unwrap();
    let body = gourd_digest::unseal(FORMAT, &bytes).expect("a sealed cache");
    let mut json: serde_json::Value = serde_json::from_slice(body).unwrap();
    for entry in json["entries"].as_object_mut().unwrap().values_mut() {
        entry["digest"] = serde_json::Value::String(digest.to_string());
    }
    fs::write(cache, gourd_digest::seal(FORMAT, &serde_json::to_vec(&json).unwrap())).unwrap();
}

#[test]
fn a_saved_cache_is_believed_for_its_own_algorithm_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    fs::write(&file, "content").unwrap();
    set_old(&file, 10);
    let cache = dir.path().join("stat.json");
    let hashing = Hashing::open(cache.clone(), DigestAlgorithm::Blake3).with_root(dir.path());
    let real = hashing.hash(&file).unwrap().unwrap().digest();
    hashing.save().unwrap();
    let forged = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"forged");
    forge(&cache, &forged.to_string());
    // Read back (and sealed correctly): believed, the file is not read.
    let again = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
    assert_eq!(again.hash(&file).unwrap().unwrap().digest(), forged);
    assert_ne!(forged, real);
    // A cache made with another algorithm is not.
    let sha = Hashing::open(cache, DigestAlgorithm::Sha256);
    assert_eq!(sha.hash(&file).unwrap().unwrap().digest(), Hasher::digest_bytes(DigestAlgorithm::Sha256, b"content"));
}

#[test]
fn names_are_escaped_byte_by_byte() {
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(b"data/caf\xc3\xa9/\xff\xfeend"));
    assert_eq!(escaped(path), "data/café/\\xff\\xfeend");
    assert_eq!(escaped(Path::new("plain/name")), "plain/name");
}
