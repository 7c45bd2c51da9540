//! Hashing files and folders, and when the stat cache is believed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use gourd_core::hash::{Hashing, Tree, escaped};
use gourd_digest::{DigestAlgorithm, EntryKind, Hasher, tree_digest};

const FORMAT: &str = "gourd stat-cache v3";

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

/// A folder of old files, one of them in a subfolder.
fn old_folder(root: &Path) {
    fs::create_dir_all(root.join("sub")).unwrap();
    for (name, body) in [("a", "one"), ("b", "two"), ("sub/c", "three")] {
        fs::write(root.join(name), body).unwrap();
        set_old(&root.join(name), 60);
    }
}

#[test]
fn an_unchanged_folder_is_known_by_its_stat_data_alone() {
    use gourd_core::hash::Hashed;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    old_folder(&data);
    let cache = dir.path().join("stat.json");
    let hashing = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
    let full = hashing.hash(&data).unwrap().unwrap();
    // The first time, the folder is hashed; then its summary answers.
    assert_eq!(hashing.digest_of(&data).unwrap(), Some(Hashed::Tree(full.clone())));
    assert_eq!(hashing.digest_of(&data).unwrap(), Some(Hashed::Unchanged(full.digest())));
    hashing.save().unwrap();
    let reopened = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
    assert_eq!(reopened.digest_of(&data).unwrap(), Some(Hashed::Unchanged(full.digest())));
    // A file is a file, hashed as `hash` does; nothing there is None.
    let file = reopened.digest_of(&data.join("a")).unwrap().unwrap();
    assert_eq!(file.digest(), Hasher::digest_bytes(DigestAlgorithm::Blake3, b"one"));
    assert_eq!(reopened.digest_of(&dir.path().join("missing")).unwrap(), None);
}

#[test]
fn every_change_under_a_folder_ends_its_summary() {
    use gourd_core::hash::Hashed;
    // Each change, made to a fresh copy whose summary was recorded: the
    // digest given afterwards is the one a full hash gives.
    type Change = fn(&Path);
    let changes: [(&str, Change); 8] = [
        ("same size, old mtime put back", |d| {
            let mtime = fs::metadata(d.join("a")).unwrap().modified().unwrap();
            fs::write(d.join("a"), "ONE").unwrap();
            fs::File::options().write(true).open(d.join("a")).unwrap().set_modified(mtime).unwrap();
        }),
        ("a file deep inside", |d| fs::write(d.join("sub/c"), "3").unwrap()),
        ("a file added", |d| fs::write(d.join("new"), "n").unwrap()),
        ("a file removed", |d| fs::remove_file(d.join("b")).unwrap()),
        ("a file renamed", |d| fs::rename(d.join("b"), d.join("bb")).unwrap()),
        ("made private", |d| fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o600)).unwrap()),
        ("made executable", |d| fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o755)).unwrap()),
        ("a subfolder emptied and a file of its name made", |d| {
            fs::remove_dir_all(d.join("sub")).unwrap();
            fs::write(d.join("sub"), "three").unwrap();
        }),
    ];
    for (what, change) in changes {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        old_folder(&data);
        let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
        let before = hashing.digest_of(&data).unwrap().unwrap().digest();
        assert_eq!(hashing.digest_of(&data).unwrap(), Some(Hashed::Unchanged(before)), "{what}");
        change(&data);
        let after = hashing.digest_of(&data).unwrap().unwrap();
        assert!(matches!(after, Hashed::Tree(_)), "{what}: {after:?}");
        let fresh = Hashing::open(dir.path().join("fresh.json"), DigestAlgorithm::Blake3);
        assert_eq!(after.digest(), fresh.hash(&data).unwrap().unwrap().digest(), "{what}");
        assert_ne!(after.digest(), before, "{what}");
    }
}

#[test]
fn a_folder_with_a_fresh_file_gets_no_summary() {
    use gourd_core::hash::Hashed;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    old_folder(&data);
    // Written just now: a second write in the same clock tick would keep
    // every stat field, so nothing about this folder may be remembered.
    fs::write(data.join("sub/fresh"), "f").unwrap();
    let cache = dir.path().join("stat.json");
    let hashing = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
    assert!(matches!(hashing.digest_of(&data).unwrap(), Some(Hashed::Tree(_))));
    assert!(matches!(hashing.digest_of(&data).unwrap(), Some(Hashed::Tree(_))));
    set_old(&data.join("sub/fresh"), 60);
    let tree = hashing.digest_of(&data).unwrap().unwrap();
    assert_eq!(hashing.digest_of(&data).unwrap(), Some(Hashed::Unchanged(tree.digest())));
}

#[test]
fn a_forged_folder_summary_is_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    old_folder(&data);
    let cache = dir.path().join("stat.json");
    let hashing = Hashing::open(cache.clone(), DigestAlgorithm::Blake3);
    let real = hashing.digest_of(&data).unwrap().unwrap().digest();
    hashing.save().unwrap();
    // The summary's digest replaced, the seal left as it was.
    let bytes = fs::read(&cache).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let forged = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"forged").to_string();
    assert!(text.contains(&real.to_string()));
    fs::write(&cache, text.replace(&real.to_string(), &forged)).unwrap();
    let reopened = Hashing::open(cache, DigestAlgorithm::Blake3);
    assert_eq!(reopened.digest_of(&data).unwrap().unwrap().digest(), real);
}

#[test]
fn a_link_loop_inside_a_folder_is_an_error_naming_it() {
    // Not "nothing there", as a dangling link is: the folder cannot be
    // hashed, and saying so beats a digest that leaves a name out.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "a").unwrap();
    std::os::unix::fs::symlink("loop", data.join("loop")).unwrap();
    let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
    let err = hashing.hash(&data).unwrap_err().to_string();
    assert!(err.contains(&data.join("loop").display().to_string()), "{err}");
    let err = hashing.digest_of(&data).unwrap_err().to_string();
    assert!(err.contains(&data.join("loop").display().to_string()), "{err}");
}

#[test]
fn what_a_folder_holds_besides_files_and_folders_is_as_hash_sees_it() {
    use gourd_core::hash::Hashed;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    old_folder(&data);
    // A dangling link is nothing there, for the fingerprint as for the
    // digest: the folder still gets its summary.
    std::os::unix::fs::symlink("gone", data.join("dangling")).unwrap();
    let hashing = Hashing::open(dir.path().join("stat.json"), DigestAlgorithm::Blake3);
    let digest = hashing.digest_of(&data).unwrap().unwrap().digest();
    assert_eq!(hashing.digest_of(&data).unwrap(), Some(Hashed::Unchanged(digest)));
    // A fifo is ignored by both: the summary still holds.
    let fifo = std::ffi::CString::new(data.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    assert_eq!(hashing.digest_of(&data).unwrap(), Some(Hashed::Unchanged(digest)));
    // A link loop appearing in a summarised folder is an error, not a
    // summary that still holds.
    std::os::unix::fs::symlink("loop", data.join("loop")).unwrap();
    let err = hashing.digest_of(&data).unwrap_err().to_string();
    assert!(err.contains(&data.join("loop").display().to_string()), "{err}");
    // And the path asked about being a loop is an error too, not "missing".
    std::os::unix::fs::symlink("self", dir.path().join("self")).unwrap();
    assert!(hashing.digest_of(&dir.path().join("self")).is_err());
    assert!(hashing.hash(&dir.path().join("self")).is_err());
}
