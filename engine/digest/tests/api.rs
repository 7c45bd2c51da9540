//! The digest API as other crates use it: names, bytes, printed forms, and
//! files hashed by either path (streamed, or read in pieces on all cores) against the
//! algorithms' own crates (what `b3sum` and `sha256sum` print).

use gourd_digest::{Digest, DigestAlgorithm, Hasher};

#[test]
fn algorithms_have_the_names_written_into_keys() {
    assert_eq!(DigestAlgorithm::Blake3.name(), "blake3");
    assert_eq!(DigestAlgorithm::Sha256.name(), "sha256");
    assert_eq!(DigestAlgorithm::default(), DigestAlgorithm::Blake3);
}

#[test]
fn bytes_short_and_debug_forms_come_from_the_digest() {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(5);
    }
    let digest = Digest::from_bytes(bytes);
    assert_eq!(digest.as_bytes(), &bytes);
    let hex = digest.to_string();
    assert_eq!(hex.len(), 64);
    assert_eq!(&hex[..4], "052a");
    assert_eq!(digest.short(), hex[..12]);
    assert_eq!(format!("{digest:?}"), format!("Digest({hex})"));
}

#[test]
fn known_digests_of_plain_content() {
    let blake3 = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"gourd");
    let sha256 = Hasher::digest_bytes(DigestAlgorithm::Sha256, b"gourd");
    assert_eq!(blake3.to_string(), reference(DigestAlgorithm::Blake3, b"gourd"));
    assert_eq!(sha256.to_string(), reference(DigestAlgorithm::Sha256, b"gourd"));
    assert_ne!(blake3, sha256);
}

/// The digest by the algorithm's own crate, as hex.
fn reference(algorithm: DigestAlgorithm, bytes: &[u8]) -> String {
    match algorithm {
        DigestAlgorithm::Blake3 => blake3::hash(bytes).to_hex().to_string(),
        DigestAlgorithm::Sha256 => {
            use sha2::Digest as _;
            sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

#[test]
fn files_of_every_size_hash_to_their_contents_digest() {
    let dir = std::env::temp_dir().join(format!("gourd-digest-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Empty, one byte, across the 64 KiB read buffer, and past the 4 MiB
    // threshold for hashing on all cores.
    for len in [0usize, 1, 3, 65_535, 65_536, 200_003, (4 << 20) + 17] {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let path = dir.join(format!("f{len}"));
        std::fs::write(&path, &bytes).unwrap();
        for algorithm in [DigestAlgorithm::Blake3, DigestAlgorithm::Sha256] {
            let digest = Hasher::digest_file(algorithm, &path).unwrap();
            assert_eq!(digest, Hasher::digest_bytes(algorithm, &bytes), "{algorithm:?}, {len} bytes");
            assert_eq!(digest.to_string(), reference(algorithm, &bytes), "{algorithm:?}, {len} bytes");
        }
    }
    // The length a caller passes only chooses how the file is read.
    for len in [3usize, (4 << 20) + 17] {
        let path = dir.join(format!("f{len}"));
        let bytes = std::fs::read(&path).unwrap();
        for (algorithm, claimed) in
            [(DigestAlgorithm::Blake3, 0), (DigestAlgorithm::Blake3, 1 << 40), (DigestAlgorithm::Sha256, 1 << 40)]
        {
            let digest = Hasher::digest_file_sized(algorithm, &path, claimed).unwrap();
            assert_eq!(
                digest,
                Hasher::digest_bytes(algorithm, &bytes),
                "{algorithm:?}, {len} bytes said to be {claimed}"
            );
        }
    }
    assert!(Hasher::digest_file(DigestAlgorithm::Blake3, &dir.join("missing")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
