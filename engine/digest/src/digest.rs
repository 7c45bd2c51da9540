//! Digests with an explicit algorithm.
//!
//! The local cache uses BLAKE3; remote servers that speak the REAPI often
//! accept only SHA-256, so the algorithm is a value, never an assumption.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    #[default]
    Blake3,
    Sha256,
}

impl DigestAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Blake3 => "blake3",
            DigestAlgorithm::Sha256 => "sha256",
        }
    }
}

/// A 32-byte digest, printed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first characters of the hex form, for display.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Digests are printed by the ten thousand in a no-op run: no
        // per-byte formatting machinery.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, byte) in self.0.iter().enumerate() {
            out[2 * i] = HEX[(byte >> 4) as usize];
            out[2 * i + 1] = HEX[(byte & 15) as usize];
        }
        f.write_str(std::str::from_utf8(&out).expect("hex is ASCII"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a digest (64 lowercase hex digits)")]
pub struct DigestParseError(String);

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DigestParseError(s.to_string());
        if s.len() != 64 {
            return Err(err());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = s.get(2 * i..2 * i + 2).ok_or_else(err)?;
            if pair.bytes().any(|c| c.is_ascii_uppercase()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        Ok(Digest(bytes))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Files at least this large are hashed on all cores, as BLAKE3 subtrees.
const PARALLEL_HASH_THRESHOLD: u64 = 4 << 20;

/// The largest subtree one thread reads and hashes in one piece: a power of
/// two, so every piece the split below yields is a whole BLAKE3 subtree.
const SUBTREE_LEAF: u64 = 1 << 20;

/// An incremental hasher for one algorithm.
pub enum Hasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// A hasher for plain content (file bytes): no domain tag, so a file's
    /// digest equals `b3sum`'s or `sha256sum`'s.
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            DigestAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    /// A hasher whose digests cannot collide with another domain's.
    pub fn new_domain(algorithm: DigestAlgorithm, domain: &str) -> Self {
        match algorithm {
            DigestAlgorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new_derive_key(domain))),
            DigestAlgorithm::Sha256 => {
                let mut hasher = sha2::Sha256::new();
                hasher.update(domain.as_bytes());
                hasher.update([0u8]);
                Hasher::Sha256(hasher)
            }
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    pub fn finalize(self) -> Digest {
        match self {
            Hasher::Blake3(h) => Digest(*h.finalize().as_bytes()),
            Hasher::Sha256(h) => Digest(h.finalize().into()),
        }
    }

    pub fn digest_bytes(algorithm: DigestAlgorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finalize()
    }

    /// The content digest of a file. Large files are hashed with BLAKE3 on
    /// all cores.
    pub fn digest_file(algorithm: DigestAlgorithm, path: &Path) -> std::io::Result<Digest> {
        Hasher::digest_file_sized(algorithm, path, std::fs::metadata(path)?.len())
    }

    /// [`Hasher::digest_file`] for a file whose length the caller has just
    /// read from its stat data, to choose how the file is read: the digest
    /// covers the whole file either way.
    ///
    /// A large file is hashed on all cores, as BLAKE3 subtrees read in
    /// pieces by positioned reads; one shortened while it is read is an
    /// error. It is not memory-mapped: a mapped file that another process
    /// shortens kills the reader with SIGBUS, and a lease that would hold
    /// such a writer back also stalls or fails every other writer of the
    /// file while gourd hashes it.
    pub fn digest_file_sized(algorithm: DigestAlgorithm, path: &Path, len: u64) -> std::io::Result<Digest> {
        let mut file = std::fs::File::open(path)?;
        if algorithm == DigestAlgorithm::Blake3 && len >= PARALLEL_HASH_THRESHOLD {
            let len = file.metadata()?.len();
            if len >= PARALLEL_HASH_THRESHOLD {
                return Ok(Digest(blake3_parallel(&file, len)?));
            }
        }
        // One buffer per thread: a workspace of small files is hashed a
        // file at a time on each core, and a fresh zeroed 64 KiB for each
        // file cost more than reading it.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
        }
        let mut hasher = Hasher::new(algorithm);
        BUFFER.with_borrow_mut(|buf| {
            loop {
                let n = file.read(buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Ok::<(), std::io::Error>(())
        })?;
        Ok(hasher.finalize())
    }
}

/// The BLAKE3 digest of the first `len` (> [`SUBTREE_LEAF`]) bytes of
/// `file`, its two root subtrees hashed in parallel.
fn blake3_parallel(file: &std::fs::File, len: u64) -> std::io::Result<[u8; 32]> {
    use blake3::hazmat::{Mode, left_subtree_len, merge_subtrees_root};
    let left = left_subtree_len(len);
    let (l, r) = rayon::join(|| subtree(file, 0, left), || subtree(file, left, len - left));
    Ok(*merge_subtrees_root(&l?, &r?, Mode::Hash).as_bytes())
}

/// The chaining value of the subtree of `len` bytes at `offset`: split the
/// way BLAKE3's tree splits it until a piece fits one read.
fn subtree(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<blake3::hazmat::ChainingValue> {
    use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_non_root};
    use std::os::unix::fs::FileExt;
    if len <= SUBTREE_LEAF {
        thread_local! {
            static PIECE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        return PIECE.with_borrow_mut(|buf| {
            buf.resize(len as usize, 0);
            file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => std::io::Error::new(
                    e.kind(),
                    "the file was shortened while it was read: another process is writing it",
                ),
                _ => e,
            })?;
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(offset);
            hasher.update(buf);
            Ok(hasher.finalize_non_root())
        });
    }
    let left = left_subtree_len(len);
    let (l, r) = rayon::join(|| subtree(file, offset, left), || subtree(file, offset + left, len - left));
    Ok(merge_subtrees_non_root(&l?, &r?, Mode::Hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"gourd");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("xyz".parse::<Digest>().is_err());
        assert!(d.to_string().to_uppercase().parse::<Digest>().is_err());
    }

    #[test]
    fn large_files_hash_like_small_ones() {
        let dir = std::env::temp_dir().join(format!("gourd-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        let bytes: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let streamed = Hasher::digest_bytes(DigestAlgorithm::Blake3, &bytes);
        assert_eq!(Hasher::digest_file(DigestAlgorithm::Blake3, &path).unwrap(), streamed);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn large_files_of_any_length_hash_as_blake3_does() {
        let dir = std::env::temp_dir().join(format!("gourd-digest-lengths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        let bytes: Vec<u8> = (0..(9u32 << 20) + 4099).map(|i| (i % 253) as u8).collect();
        let whole = 4u64 << 20;
        for len in [whole, whole + 1, whole + 1023, whole + 1024, (5 << 20) + 1, (8 << 20) + 1025, bytes.len() as u64] {
            std::fs::write(&path, &bytes[..len as usize]).unwrap();
            let expected = Digest(*blake3::hash(&bytes[..len as usize]).as_bytes());
            assert_eq!(Hasher::digest_file(DigestAlgorithm::Blake3, &path).unwrap(), expected, "length {len}");
            // The pieces on their own.
            let file = std::fs::File::open(&path).unwrap();
            assert_eq!(Digest(blake3_parallel(&file, len).unwrap()), expected, "length {len}, read in pieces");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_large_file_shortened_and_rewritten_while_it_is_hashed_never_kills_the_hasher() {
        // Through a memory map, this ended the test process with SIGBUS in
        // most runs.
        let dir = std::env::temp_dir().join(format!("gourd-digest-shrink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        let bytes = vec![3u8; 32 << 20];
        std::fs::write(&path, &bytes).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
                    std::io::Write::write_all(&mut file, &bytes).unwrap();
                }
            });
            for _ in 0..30 {
                // Whole, or an error saying the file was shortened.
                if let Err(e) = Hasher::digest_file_sized(DigestAlgorithm::Blake3, &path, 32 << 20) {
                    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_large_file_shortened_while_it_is_read_is_an_error() {
        let dir = std::env::temp_dir().join(format!("gourd-digest-short-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        std::fs::write(&path, vec![7u8; 5 << 20]).unwrap();
        // Opened at 6 MiB, and 5 when read.
        let file = std::fs::File::open(&path).unwrap();
        let err = blake3_parallel(&file, 6 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("shortened while it was read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
