//! Every encoding that feeds a digest is injective: two different folder
//! listings, or two different manifests, never encode to the same bytes, so
//! they never share a digest. Names are generated to attack a line- or
//! separator-based encoding: newlines, colons, spaces, digits, and text
//! that looks like another entry.
//!
//! `PROPTEST_CASES` sets how many inputs each property tries.

use std::collections::BTreeMap;

use gourd_digest::{DigestAlgorithm, EntryKind, Hasher, TreeEntry, canonical_json, stage_key, tree_digest};
use proptest::prelude::*;

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// File names built from pieces that a naive encoding would confuse.
fn name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\n".to_string()),
        Just(":".to_string()),
        Just(" ".to_string()),
        Just("f - - ".to_string()),
        Just("1".to_string()),
        Just("12:".to_string()),
        Just("a".to_string()),
        Just("é".to_string()),
        "[a-z0-9]{1,3}",
    ];
    prop::collection::vec(piece, 1..5)
        .prop_map(|pieces| pieces.concat())
        .prop_filter("a file name", |n| !n.contains('/') && n != "." && n != "..")
}

/// A listing: unique names, sorted, each with a kind, modes and one of a
/// few contents (so digests repeat across entries, as they do).
fn listing() -> impl Strategy<Value = Vec<TreeEntry>> {
    let entry = (name(), any::<bool>(), any::<bool>(), any::<bool>(), 0u8..4);
    prop::collection::vec(entry, 0..5).prop_map(|entries| {
        let unique: BTreeMap<String, (bool, bool, bool, u8)> =
            entries.into_iter().map(|(name, dir, x, p, content)| (name, (dir, x, p, content))).collect();
        unique
            .into_iter()
            .map(|(name, (dir, executable, private, content))| TreeEntry {
                name,
                kind: if dir { EntryKind::Dir } else { EntryKind::File },
                executable: executable && !dir,
                private: private && !dir,
                digest: Hasher::digest_bytes(DigestAlgorithm::Blake3, &[content]),
            })
            .collect()
    })
}

/// Moves text from the end of one name to the start of the next: the edit
/// that fools an encoding which does not delimit names unambiguously.
fn shift(entries: &[TreeEntry], at: usize, by: usize) -> Option<Vec<TreeEntry>> {
    let mut shifted = entries.to_vec();
    let (left, right) = (shifted.get(at)?.name.clone(), shifted.get(at + 1)?.name.clone());
    let cut = left.char_indices().rev().nth(by)?.0;
    if cut == 0 {
        return None;
    }
    shifted[at].name = left[..cut].to_string();
    shifted[at + 1].name = format!("{}{right}", &left[cut..]);
    shifted.sort_by(|a, b| a.name.cmp(&b.name));
    let unique = shifted.windows(2).all(|w| w[0].name != w[1].name);
    unique.then_some(shifted)
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn different_listings_have_different_digests(a in listing(), b in listing()) {
        if a != b {
            prop_assert_ne!(tree_digest(DigestAlgorithm::Blake3, &a), tree_digest(DigestAlgorithm::Blake3, &b));
        }
    }

    #[test]
    fn names_cannot_bleed_into_each_other(a in listing(), at in 0usize..4, by in 0usize..3) {
        if let Some(b) = shift(&a, at, by) {
            if b != a {
                prop_assert_ne!(tree_digest(DigestAlgorithm::Blake3, &a), tree_digest(DigestAlgorithm::Blake3, &b));
            }
        }
    }

    #[test]
    fn one_entry_or_two_that_spell_it(a in name(), b in name()) {
        // A single entry whose name holds a line that looks like a second
        // entry, against those two entries.
        let digest = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"x");
        let entry = |name: String| TreeEntry { name, kind: EntryKind::File, executable: false, private: false, digest };
        let mut two = vec![entry(a.clone()), entry(b.clone())];
        two.sort_by(|x, y| x.name.cmp(&y.name));
        if a == b || a > b {
            return Ok(());
        }
        // The second entry's line as any line-based encoding might spell it.
        for line in [
            format!("f - - {digest} {b}"),
            format!("f - {digest} {b}"),
            format!("f - - {digest} {}:{b}", b.len()),
            format!("f - {digest} {}:{b}", b.len()),
        ] {
            let forged = entry(format!("{a}\n{line}"));
            prop_assert_ne!(
                tree_digest(DigestAlgorithm::Blake3, &[forged]),
                tree_digest(DigestAlgorithm::Blake3, &two)
            );
        }
    }

    #[test]
    fn different_manifests_have_different_keys(a in manifest(), b in manifest()) {
        if canonical_json(&a) != canonical_json(&b) {
            prop_assert_ne!(stage_key(DigestAlgorithm::Blake3, &a), stage_key(DigestAlgorithm::Blake3, &b));
        }
        // Canonical text is a function of the value alone.
        if a == b {
            prop_assert_eq!(canonical_json(&a), canonical_json(&b));
        }
    }
}

/// Manifest-like JSON: strings full of quotes, escapes and separators.
fn manifest() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(|n| serde_json::json!(n)),
        name().prop_map(serde_json::Value::String),
        "[\",:{}\\[\\]\\\\ a]{0,6}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[\",:a-c]{0,3}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
