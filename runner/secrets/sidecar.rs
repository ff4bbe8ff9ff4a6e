//! `NAME.recipients`: what airlock knows about a `NAME.age` it wrote.
//!
//! An age file does not say which public keys it was encrypted to (X25519 stanzas are
//! anonymous by design). airlock needs to know, to tell someone whose key a secret lacks and
//! for `airlock secrets check` to find secrets not encrypted to the current recipients. So
//! each time airlock writes `NAME.age` it writes this sidecar: the keys it used, and the
//! SHA-256 of the file exactly as written. If the file is later changed by anything else (the
//! age CLI, a bad merge), the hash no longer matches and the recorded keys are not trusted.
//!
//! One small file per secret, rather than one shared manifest, so two teammates adding
//! different secrets on different branches never conflict. The file is itself a valid age
//! recipients file (the hash is a comment), so `age -R secrets/NAME.recipients` also works.

use std::path::{Path, PathBuf};

use super::SecretError;

const HASH_PREFIX: &str = "# sha256: ";

/// The sidecar of `secrets/NAME.age`: `secrets/NAME.recipients`.
pub fn path_for(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.recipients"))
}

/// What a sidecar records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// SHA-256 (hex) of `NAME.age` as airlock wrote it.
    pub sha256: String,
    /// The public keys it was encrypted to.
    pub keys: Vec<String>,
}

impl Sidecar {
    pub fn render(&self, name: &str) -> String {
        let mut out = format!(
            "# Written by airlock: the age public keys {name}.age was encrypted to, and the\n\
             # SHA-256 of {name}.age as airlock wrote it. Do not edit: airlock rewrites it\n\
             # with {name}.age, and `airlock secrets check` compares them.\n\
             {HASH_PREFIX}{}\n",
            self.sha256
        );
        for key in &self.keys {
            out.push_str(key);
            out.push('\n');
        }
        out
    }

    /// Parse a sidecar; `None` when it is not one airlock wrote.
    pub fn parse(text: &str) -> Option<Sidecar> {
        let mut sha256 = None;
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(hash) = line.strip_prefix(HASH_PREFIX) {
                sha256 = Some(hash.trim().to_string());
            } else if line.starts_with("age1") {
                keys.push(line.to_string());
            } else if !line.is_empty() && !line.starts_with('#') {
                return None;
            }
        }
        Some(Sidecar {
            sha256: sha256?,
            keys,
        })
    }

    /// The sidecar of `NAME.age` in `dir`, if there is a readable one.
    pub fn load(dir: &Path, name: &str) -> Option<Sidecar> {
        let text = std::fs::read_to_string(path_for(dir, name)).ok()?;
        Sidecar::parse(&text)
    }

    /// The keys `ciphertext` was encrypted to, if this sidecar describes exactly it.
    pub fn keys_if_matches(&self, ciphertext: &[u8]) -> Option<&[String]> {
        (self.sha256 == crate::hex::sha256(ciphertext)).then_some(&self.keys[..])
    }

    pub fn save(&self, dir: &Path, name: &str) -> Result<(), SecretError> {
        let path = path_for(dir, name);
        super::atomic::write_atomically(&path, 0o644, |f| {
            std::io::Write::write_all(f, self.render(name).as_bytes())
        })
        .map_err(|e| SecretError::io("write", &path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_match() {
        let s = Sidecar {
            sha256: crate::hex::sha256(b"ciphertext"),
            keys: vec!["age1aaa".into(), "age1bbb".into()],
        };
        let parsed = Sidecar::parse(&s.render("X")).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(parsed.keys_if_matches(b"ciphertext").unwrap().len(), 2);
        assert!(parsed.keys_if_matches(b"other").is_none());
        assert!(Sidecar::parse("age1aaa\n").is_none(), "no hash");
        assert!(Sidecar::parse("garbage\n# sha256: 00\n").is_none());
    }
}
