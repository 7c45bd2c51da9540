//! Content digests and the stable stage-key encoding.
//!
//! Formats live in this small crate so that they change only on purpose: every
//! digest that is not a plain content digest carries a domain tag and a schema
//! version, and the golden tests below pin the bytes. Changing one of them is a
//! version bump, never a refactoring.

mod canonical;
mod digest;
mod seal;
mod tree;

pub use canonical::canonical_json;
pub use digest::{Digest, DigestAlgorithm, DigestParseError, Hasher};
pub use seal::{seal, unseal};
pub use tree::{EntryKind, ListingError, TREE_DOMAIN, TreeEntry, check_listing, is_private_mode, tree_digest};

/// Domain tag of stage keys. Bump the version when the manifest changes shape.
pub const STAGE_KEY_DOMAIN: &str = "gourd stage-key v1";
/// The key of a stage: the digest of its canonical manifest.
pub fn stage_key(algorithm: DigestAlgorithm, manifest: &serde_json::Value) -> Digest {
    let mut hasher = Hasher::new_domain(algorithm, STAGE_KEY_DOMAIN);
    hasher.update(canonical_json(manifest).as_bytes());
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Golden digests: if one of these changes, the cache of every user is
    // invalidated. Bump the domain version instead of editing the expectation.
    #[test]
    fn golden_stage_key() {
        let manifest = json!({
            "schema": 1,
            "cmd": {"shell": "echo hi > out.txt"},
            "deps": {"in.txt": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
            "outs": ["out.txt"],
            "params": {"lr": 0.01, "epochs": 3},
        });
        assert_eq!(
            stage_key(DigestAlgorithm::Blake3, &manifest).to_string(),
            "327fc4b6a6038ac56bf880e8e70d0d61275b464a2385f076167f0db13c546520"
        );
    }

    #[test]
    fn file_digests_are_plain_content_digests() {
        // Interoperable with b3sum and with REAPI's SHA-256 CAS.
        assert_eq!(
            Hasher::digest_bytes(DigestAlgorithm::Blake3, b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(
            Hasher::digest_bytes(DigestAlgorithm::Sha256, b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn key_ignores_map_order_but_not_values() {
        let a = json!({"x": 1, "y": {"b": 2, "a": 1}});
        let b = json!({"y": {"a": 1, "b": 2}, "x": 1});
        let c = json!({"y": {"a": 1, "b": 3}, "x": 1});
        let key = |v| stage_key(DigestAlgorithm::Blake3, v);
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        assert_ne!(stage_key(DigestAlgorithm::Blake3, &a), stage_key(DigestAlgorithm::Sha256, &a));
    }
}
