//! Sealed files: state that gourd writes and later trusts (action results,
//! the stat cache, evaluated pipelines) carries a header naming its format,
//! its length and a digest of its body, and is used only if all three match.
//!
//! ```text
//! gourd stat-cache v2 1234 af1349b9…\n
//! {"algorithm":…}
//! ```
//!
//! This catches truncation, bit rot, a file from another version and a
//! hand edit that did not also recompute the digest. It is not a signature:
//! anyone who can write `.gourd/` can write a matching header.

use crate::{Digest, DigestAlgorithm, Hasher};

const SEAL_DOMAIN: &str = "gourd sealed-file v1";

fn body_digest(format: &str, body: &[u8]) -> Digest {
    let mut hasher = Hasher::new_domain(DigestAlgorithm::Blake3, SEAL_DOMAIN);
    hasher.update(format.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher.finalize()
}

fn header(format: &str, body: &[u8]) -> String {
    debug_assert!(!format.contains('\n'));
    format!("{format} {} {}\n", body.len(), body_digest(format, body))
}

/// `body` with a header for `format` (e.g. `"gourd stat-cache v2"`).
pub fn seal(format: &str, body: &[u8]) -> Vec<u8> {
    let mut out = header(format, body).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body of a file written by [`seal`] with the same `format`, or `None`
/// when the header is missing, names another format, or does not match the
/// body's length or digest.
pub fn unseal<'a>(format: &str, bytes: &'a [u8]) -> Option<&'a [u8]> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let (head, body) = (&bytes[..=newline], &bytes[newline + 1..]);
    (head == header(format, body).as_bytes()).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let sealed = seal("gourd test v1", b"{\"a\":1}\n");
        assert_eq!(unseal("gourd test v1", &sealed), Some(&b"{\"a\":1}\n"[..]));
        assert_eq!(unseal("gourd test v2", &sealed), None, "another format");
        assert_eq!(unseal("gourd test v1", b"{\"a\":1}\n"), None, "no header");
        assert_eq!(unseal("gourd test v1", &sealed[..sealed.len() - 1]), None, "truncated");
        let mut edited = sealed.clone();
        *edited.iter_mut().rev().find(|b| **b == b'1').unwrap() = b'2';
        assert_eq!(unseal("gourd test v1", &edited), None, "edited");
    }

    #[test]
    fn golden_header() {
        assert_eq!(
            String::from_utf8(seal("gourd test v1", b"x")).unwrap(),
            "gourd test v1 1 415674c795ebfe6320a38df8c7b973727363a4d1274e573d8be961c43ef2d9ef\nx"
        );
    }
}
