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

/// Files at least this large are hashed with memory maps on all cores.
const PARALLEL_HASH_THRESHOLD: u64 = 4 << 20;

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

    /// The content digest of a file. Large files are hashed with BLAKE3's
    /// memory-mapped, multi-threaded path.
    pub fn digest_file(algorithm: DigestAlgorithm, path: &Path) -> std::io::Result<Digest> {
        Hasher::digest_file_sized(algorithm, path, std::fs::metadata(path)?.len())
    }

    /// [`Hasher::digest_file`] for a file whose length the caller has just
    /// read from its stat data, to choose how the file is read: the digest
    /// covers what is read, to the end of the file, either way.
    pub fn digest_file_sized(algorithm: DigestAlgorithm, path: &Path, len: u64) -> std::io::Result<Digest> {
        if algorithm == DigestAlgorithm::Blake3 && len >= PARALLEL_HASH_THRESHOLD {
            let mut hasher = blake3::Hasher::new();
            hasher.update_mmap_rayon(path)?;
            return Ok(Digest(*hasher.finalize().as_bytes()));
        }
        // One buffer per thread: a workspace of small files is hashed a
        // file at a time on each core, and a fresh zeroed 64 KiB for each
        // file cost more than reading it.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
        }
        let mut hasher = Hasher::new(algorithm);
        let mut file = std::fs::File::open(path)?;
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
}
