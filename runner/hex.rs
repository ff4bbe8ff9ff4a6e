//! Hex, the one way airlock writes digests and content hashes (image tags, environment
//! hashes, secret sidecars) and the hex forms the leak check looks for.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// `bytes` as lower-case hex.
pub fn lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `bytes` as upper-case hex.
pub fn upper(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The lower-case hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    lower(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::lower(&[0, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(super::upper(&[0, 0x0f, 0xab, 0xff]), "000FABFF");
        assert_eq!(
            super::sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
