//! What changed inside a folder dep, at the edges: a file turned folder and
//! back, empty folders added and removed.

use std::fs;

use gourd_core::changes::folder_changes;
use gourd_core::hash::Hashing;
use gourd_core::store::Store;
use gourd_digest::DigestAlgorithm;

#[test]
fn a_file_turned_folder_and_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("empty-gone")).unwrap();
    fs::create_dir_all(data.join("folder-to-file")).unwrap();
    fs::write(data.join("folder-to-file/inner"), "1").unwrap();
    fs::write(data.join("file-to-folder"), "2").unwrap();
    fs::write(data.join("same"), "3").unwrap();
    let hash = |path: &std::path::Path| {
        Hashing::open(dir.path().join("stat"), DigestAlgorithm::Blake3).hash(path).unwrap().unwrap()
    };
    let before = hash(&data);
    store.keep_listings(&before).unwrap();

    fs::remove_dir(data.join("empty-gone")).unwrap();
    fs::create_dir(data.join("empty-new")).unwrap();
    fs::remove_dir_all(data.join("folder-to-file")).unwrap();
    fs::write(data.join("folder-to-file"), "4").unwrap();
    fs::remove_file(data.join("file-to-folder")).unwrap();
    fs::create_dir(data.join("file-to-folder")).unwrap();
    fs::write(data.join("file-to-folder/x"), "5").unwrap();
    let after = hash(&data);

    let changes = folder_changes(&store, &before.digest(), &after).unwrap();
    assert_eq!(changes.added, ["empty-new/", "file-to-folder/x", "folder-to-file"]);
    assert_eq!(changes.removed, ["empty-gone/", "file-to-folder", "folder-to-file/inner"]);
    assert!(changes.modified.is_empty(), "{:?}", changes.modified);
    assert_eq!(changes.summary(), "3 files added, 3 removed");

    // A file is not a folder: no changes inside it to tell.
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    assert_eq!(folder_changes(&store, &before.digest(), &hash(&file)), None);
}

#[test]
fn a_folder_whose_old_listing_is_gone_is_said_modified_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("sub/a"), "1").unwrap();
    let hash = |path: &std::path::Path| {
        Hashing::open(dir.path().join("stat"), DigestAlgorithm::Blake3).hash(path).unwrap().unwrap()
    };
    let before = hash(&data);
    store.keep_listings(&before).unwrap();
    // Forget the listing of `sub` only.
    let gourd_core::hash::Tree::Dir { children, .. } = &before else { panic!("a folder") };
    let sub = children.iter().find(|(name, _)| name == "sub").unwrap().1.digest();
    let listing = dir.path().join(".gourd/cache-v1/trees").join(&sub.to_string()[..2]);
    let removed = fs::read_dir(&listing)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&sub.to_string()[2..]))
        .map(|p| fs::remove_file(p).unwrap())
        .count();
    assert_eq!(removed, 1);
    fs::write(data.join("sub/a"), "2").unwrap();
    let changes = folder_changes(&store, &before.digest(), &hash(&data)).unwrap();
    assert_eq!(changes.modified, ["sub/"]);
    assert_eq!(changes.summary(), "1 file modified");
}
