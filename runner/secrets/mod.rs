//! The secret store: `secrets/NAME.age`, age-encrypted to every key in `secrets/recipients.txt`.
//!
//! Secrets live in the config root next to the environments that use them, so a team shares
//! them through version control like everything else: each value is one ASCII-armoured age
//! file, encrypted to the public key of every teammate (and CI machine) listed in
//! `recipients.txt`. Each person decrypts with their own private key (their **identity**,
//! [`find_identities`]); nobody shares a password, and the files are safe to commit.
//!
//! Decrypted values exist only in memory ([`SecretValue`], zeroized on drop, redacted in
//! `Debug`): airlock never writes a value to disk, never logs one, and never puts one in an
//! error message. The buffers values are read into (standard input, `--from-file`) are
//! zeroized too ([`input`]).
//!
//! age's X25519 stanzas do not reveal which keys a file was encrypted to. So that
//! `airlock secrets check` and the wrong-identity error can say whose key is missing, airlock
//! records, next to each `NAME.age` it writes, the keys it used and the file's hash
//! (`NAME.recipients`, see [`sidecar`]). A file changed by other tools still decrypts; it is
//! only reported as written outside airlock.
//!
//! The parts: [`identity`] (private keys), [`recipients`] (the public keys file), [`input`]
//! (reading a value from standard input, a terminal or a file), `crypto`
//! (age encryption and decryption in memory), `atomic` (replace a file without ever leaving a
//! half-written one), [`sidecar`], [`store`] (the operations the commands and `airlock run`
//! use) and `report` (what `list` and `check` find).

mod atomic;
mod crypto;
mod error;
pub mod identity;
pub mod input;
pub mod recipients;
mod report;
pub mod sidecar;
pub mod store;

use zeroize::Zeroizing;

pub use error::SecretError;
pub use identity::{find_identities, Identities};
pub use input::{read_value, strip_one_newline};
pub use recipients::Recipients;
pub use report::{CheckItem, CheckReport, Listed, Problem, State};
pub use store::{Reencrypted, SetOutcome, Store};

/// A decrypted secret value: only in memory, zeroized on drop, never in `Debug` output.
/// Read it with [`secrecy::ExposeSecret::expose_secret`].
pub type SecretValue = secrecy::SecretSlice<u8>;

/// The shortest value airlock accepts. The boundary scans every byte that leaves the setup
/// phase for every secret value; a value this short occurs by chance in ordinary files, so
/// the scan could neither refuse reliably nor stay quiet reliably.
pub const MIN_VALUE_LEN: usize = 8;

/// The largest value airlock accepts (secrets are keys, tokens and small files).
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// Whether `name` is a valid secret name: `[A-Z_][A-Z0-9_]*` (it becomes an environment
/// variable name in the setup phase, and a file name in `secrets/`).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_uppercase() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Refuse a name that is not `[A-Z_][A-Z0-9_]*` (this also rules out `../x`, `a/b`, …).
pub fn validate_name(name: &str) -> Result<(), SecretError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            name: name.to_string(),
        })
    }
}

/// What `set` asks of a name: valid, and not one the setup phase relies on (`PATH`,
/// `LD_PRELOAD`, …), which the environment loader would never let a task use. (Reading and
/// removing only need [`validate_name`], so such a file made earlier can still be removed.)
pub fn validate_new_name(name: &str) -> Result<(), SecretError> {
    validate_name(name)?;
    if crate::environment::is_reserved_secret_name(name) {
        return Err(SecretError::ReservedName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Refuse a value shorter than [`MIN_VALUE_LEN`] or longer than [`MAX_VALUE_LEN`].
pub fn validate_value(name: &str, value: &[u8]) -> Result<(), SecretError> {
    if value.len() < MIN_VALUE_LEN {
        return Err(SecretError::TooShort {
            name: name.to_string(),
            len: value.len(),
        });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(SecretError::TooLarge {
            name: name.to_string(),
            limit: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// A value as a [`SecretValue`], without leaving a copy behind: the bytes are copied once
/// into an allocation of exactly their size (so the secret box needs no reallocation, which
/// would free a copy unzeroized), and `value` is zeroized as it drops.
pub fn into_secret(value: Zeroizing<Vec<u8>>) -> SecretValue {
    let exact: Vec<u8> = value[..].to_vec();
    SecretValue::from(exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["A", "_", "API_TOKEN", "X1", "_PRIVATE_2"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "", "a", "Api", "1X", "../x", "a/b", "A/B", "A-B", "A.B", "A B", "É", "A\0",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
            let msg = validate_name(bad).unwrap_err().to_string();
            assert!(msg.contains("[A-Z_][A-Z0-9_]*"), "{msg}");
        }
    }

    #[test]
    fn values_too_short_are_refused() {
        let err = validate_value("X", b"1234567").unwrap_err().to_string();
        assert!(
            err.contains("cannot reliably keep values this short"),
            "{err}"
        );
        assert!(!err.contains("1234567"), "{err}");
        validate_value("X", b"12345678").unwrap();
    }

    #[test]
    fn secret_value_debug_is_redacted() {
        let v = into_secret(Zeroizing::new(b"hunter2hunter2".to_vec()));
        let shown = format!("{v:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
