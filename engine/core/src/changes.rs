//! What changed inside a folder dep: the files added, removed and modified
//! between the listing the store kept when the folder was last hashed (see
//! [`Store::keep_listings`]) and the folder as it is now.

use gourd_digest::{Digest, EntryKind};

use crate::hash::Tree;
use crate::store::Store;

/// Paths relative to the folder, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

impl FolderChanges {
    /// `2 files added, 1 removed`: the counts, for a one-line reason.
    pub fn summary(&self) -> String {
        let files = |n: usize| if n == 1 { "1 file".to_string() } else { format!("{n} files") };
        let mut parts = Vec::new();
        for (list, what) in [(&self.added, "added"), (&self.removed, "removed"), (&self.modified, "modified")] {
            if !list.is_empty() {
                let count = if parts.is_empty() { files(list.len()) } else { list.len().to_string() };
                parts.push(format!("{count} {what}"));
            }
        }
        parts.join(", ")
    }
}

/// The changes from the folder whose digest was `old` to `new`, or `None`
/// when the store does not hold the old listing (it was never kept, or
/// `gourd gc` removed it) or `new` is not a folder.
pub fn folder_changes(store: &Store, old: &Digest, new: &Tree) -> Option<FolderChanges> {
    let Tree::Dir { children, .. } = new else { return None };
    let mut changes = FolderChanges::default();
    compare(store, old, children, "", &mut changes).ok()?;
    for list in [&mut changes.added, &mut changes.removed, &mut changes.modified] {
        list.sort();
    }
    Some(changes)
}

fn compare(
    store: &Store,
    old: &Digest,
    new: &[(String, Tree)],
    prefix: &str,
    changes: &mut FolderChanges,
) -> Result<(), crate::store::StoreError> {
    let old_entries = store.tree_entries(old)?;
    for entry in &old_entries {
        let path = format!("{prefix}{}", entry.name);
        match new.iter().find(|(name, _)| *name == entry.name) {
            None => removed(store, entry.kind, &entry.digest, &path, changes),
            Some((_, tree)) if tree.digest() == entry.digest => {}
            Some((_, Tree::Dir { children, .. })) if entry.kind == EntryKind::Dir => {
                if compare(store, &entry.digest, children, &format!("{path}/"), changes).is_err() {
                    changes.modified.push(format!("{path}/"));
                }
            }
            Some((_, tree)) => {
                if entry.kind == tree.kind() {
                    changes.modified.push(path);
                } else {
                    removed(store, entry.kind, &entry.digest, &path, changes);
                    added(tree, &path, changes);
                }
            }
        }
    }
    for (name, tree) in new {
        if !old_entries.iter().any(|e| e.name == *name) {
            added(tree, &format!("{prefix}{name}"), changes);
        }
    }
    Ok(())
}

fn added(tree: &Tree, path: &str, changes: &mut FolderChanges) {
    match tree {
        Tree::File { .. } => changes.added.push(path.to_string()),
        Tree::Dir { children, .. } if children.is_empty() => changes.added.push(format!("{path}/")),
        Tree::Dir { children, .. } => {
            for (name, child) in children {
                added(child, &format!("{path}/{name}"), changes);
            }
        }
    }
}

fn removed(store: &Store, kind: EntryKind, digest: &Digest, path: &str, changes: &mut FolderChanges) {
    match (kind, store.tree_entries(digest)) {
        (EntryKind::File, _) => changes.removed.push(path.to_string()),
        (EntryKind::Dir, Ok(entries)) if !entries.is_empty() => {
            for entry in entries {
                removed(store, entry.kind, &entry.digest, &format!("{path}/{}", entry.name), changes);
            }
        }
        (EntryKind::Dir, _) => changes.removed.push(format!("{path}/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hashing;
    use gourd_digest::DigestAlgorithm;

    #[test]
    fn files_added_removed_and_modified_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(data.join("gone")).unwrap();
        for (name, text) in
            [("a.csv", "1"), ("b.csv", "2"), ("sub/c.csv", "3"), ("sub/deeper/d.csv", "4"), ("gone/e", "5")]
        {
            std::fs::write(data.join(name), text).unwrap();
        }
        let hash = |path: &std::path::Path| {
            Hashing::open(dir.path().join("stat"), DigestAlgorithm::Blake3).hash(path).unwrap().unwrap()
        };
        let before = hash(&data);
        store.keep_listings(&before).unwrap();

        std::fs::write(data.join("a.csv"), "changed").unwrap();
        std::fs::remove_file(data.join("b.csv")).unwrap();
        std::fs::write(data.join("sub/deeper/d.csv"), "changed").unwrap();
        std::fs::write(data.join("new.csv"), "6").unwrap();
        std::fs::remove_dir_all(data.join("gone")).unwrap();
        std::fs::create_dir_all(data.join("fresh")).unwrap();
        std::fs::write(data.join("fresh/f"), "7").unwrap();
        let after = hash(&data);

        let changes = folder_changes(&store, &before.digest(), &after).unwrap();
        assert_eq!(changes.added, ["fresh/f", "new.csv"]);
        assert_eq!(changes.removed, ["b.csv", "gone/e"]);
        assert_eq!(changes.modified, ["a.csv", "sub/deeper/d.csv"]);
        assert_eq!(changes.summary(), "2 files added, 2 removed, 2 modified");
    }

    #[test]
    fn an_unknown_listing_gives_no_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".gourd"), DigestAlgorithm::Blake3).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let now = Hashing::open(dir.path().join("stat"), DigestAlgorithm::Blake3)
            .hash(&dir.path().join("data"))
            .unwrap()
            .unwrap();
        let never_kept = gourd_digest::Hasher::digest_bytes(DigestAlgorithm::Blake3, b"x");
        assert_eq!(folder_changes(&store, &never_kept, &now), None);
    }
}
