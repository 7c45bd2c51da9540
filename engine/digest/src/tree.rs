//! Folder listings and their digests.
//!
//! A folder's digest is a Merkle node over its entries, so it must be a
//! function of the listing and nothing else, and two different listings must
//! never encode to the same bytes. Linux allows any byte but `/` and NUL in a
//! file name (`\n` and spaces included), so names are length-prefixed rather
//! than delimited.

use crate::{Digest, DigestAlgorithm, Hasher};

/// Domain tag of directory (tree) digests. v2: names are length-prefixed and
/// each file says whether it was private (unreadable by group or others).
pub const TREE_DOMAIN: &str = "gourd tree v2";

/// One entry of a directory listing, as it enters the directory's digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeEntry {
    pub name: String,
    pub kind: EntryKind,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// The file could not be read by its group or by others: it is stored
    /// and restored readable by its owner only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    pub digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
}

/// Whether a file with permission bits `mode` is private: readable by its
/// owner only, as far as gourd keeps track. Anything short of "group and
/// others may read" counts as private, so a restore never grants more than
/// the stage's own file did.
pub fn is_private_mode(mode: u32) -> bool {
    mode & 0o044 != 0o044
}

/// The digest of a directory: a Merkle node over its entries sorted by name
/// (bytewise).
///
/// Each entry is encoded as `KIND EXEC PRIVATE DIGEST LEN:NAME\n`: `f`/`d`,
/// `x`/`-`, `p`/`-`, the hex digest, the name's length in bytes (decimal)
/// and the name's bytes. The length prefix makes the encoding injective
/// whatever the name holds.
pub fn tree_digest(algorithm: DigestAlgorithm, entries: &[TreeEntry]) -> Digest {
    debug_assert!(entries.windows(2).all(|w| w[0].name < w[1].name));
    let mut hasher = Hasher::new_domain(algorithm, TREE_DOMAIN);
    for entry in entries {
        let kind = match entry.kind {
            EntryKind::File => 'f',
            EntryKind::Dir => 'd',
        };
        let executable = if entry.executable { 'x' } else { '-' };
        let private = if entry.private { 'p' } else { '-' };
        hasher.update(format!("{kind} {executable} {private} {} {}:", entry.digest, entry.name.len()).as_bytes());
        hasher.update(entry.name.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListingError {
    #[error("folder listing names an entry {0:?}, which is not a file name")]
    BadName(String),
    #[error("folder listing is not sorted by name, or names {0:?} twice")]
    Unsorted(String),
}

/// Checks a listing received from elsewhere (the store, a remote) before it
/// is used to write files: every name is one path component, and names are
/// strictly sorted (so the listing is the one its digest describes).
pub fn check_listing(entries: &[TreeEntry]) -> Result<(), ListingError> {
    for (i, entry) in entries.iter().enumerate() {
        let name = entry.name.as_str();
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(ListingError::BadName(name.to_string()));
        }
        if i > 0 && entries[i - 1].name.as_str() >= name {
            return Err(ListingError::Unsorted(name.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &[u8]) -> TreeEntry {
        TreeEntry {
            name: name.into(),
            kind: EntryKind::File,
            executable: false,
            private: false,
            digest: Hasher::digest_bytes(DigestAlgorithm::Blake3, content),
        }
    }

    // Golden digest: if this changes, the cache of every user is
    // invalidated. Bump the domain version instead of editing the expectation.
    #[test]
    fn golden_tree_digest() {
        let entries = vec![
            file("a.txt", b"a"),
            TreeEntry {
                name: "bin".into(),
                kind: EntryKind::Dir,
                executable: false,
                private: false,
                digest: tree_digest(DigestAlgorithm::Blake3, &[]),
            },
            TreeEntry { executable: true, private: true, ..file("run.sh", b"#!/bin/sh") },
        ];
        assert_eq!(
            tree_digest(DigestAlgorithm::Blake3, &entries).to_string(),
            "bbfb8c2be9dc056035fba3acdf6c30baeffee288f8c7fe89a4a5d428f118ef45"
        );
    }

    #[test]
    fn names_with_newlines_cannot_forge_entries() {
        // Under a line-per-entry encoding without lengths, one entry whose
        // name holds a newline and the text of a second entry encoded to
        // the same bytes as those two entries.
        let second = file("b", b"b");
        let forged_name = format!("a\nf - {} b", second.digest);
        let two = [file("a", b"a"), second];
        let one = [TreeEntry { name: forged_name, ..file("a", b"a") }];
        assert_ne!(tree_digest(DigestAlgorithm::Blake3, &two), tree_digest(DigestAlgorithm::Blake3, &one));
    }

    #[test]
    fn modes_enter_the_digest() {
        let plain = [file("f", b"x")];
        let executable = [TreeEntry { executable: true, ..file("f", b"x") }];
        let private = [TreeEntry { private: true, ..file("f", b"x") }];
        let digests: std::collections::HashSet<_> =
            [&plain, &executable, &private].iter().map(|e| tree_digest(DigestAlgorithm::Blake3, *e)).collect();
        assert_eq!(digests.len(), 3);
    }

    #[test]
    fn listings_are_checked() {
        assert_eq!(check_listing(&[file("a", b""), file("b", b"")]), Ok(()));
        for bad in ["", ".", "..", "a/b", "/etc", "nul\0"] {
            assert!(check_listing(&[file(bad, b"")]).is_err(), "{bad:?}");
        }
        assert!(check_listing(&[file("b", b""), file("a", b"")]).is_err());
        assert!(check_listing(&[file("a", b""), file("a", b"")]).is_err());
    }

    #[test]
    fn private_means_not_readable_by_group_and_others() {
        assert!(!is_private_mode(0o644));
        assert!(!is_private_mode(0o755));
        assert!(is_private_mode(0o600));
        assert!(is_private_mode(0o640));
        assert!(is_private_mode(0o604));
        assert!(is_private_mode(0o400));
    }
}
