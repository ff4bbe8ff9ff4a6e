//! Identities: the private keys that decrypt secrets.
//!
//! Each person (and each CI machine) has their own identity file, outside any repository, and
//! the store's `recipients.txt` lists the matching public keys. airlock looks for the file in
//! one fixed order ([`find_identities`]) so `airlock run` and `airlock secrets` agree on who
//! "you" are. The file format is age's own (what `age-keygen` writes: `#` comments and one
//! `AGE-SECRET-KEY-1…` line per identity), so the same file works with the age CLI.
//!
//! A line of an identity file may be a private key, so errors name lines by number and never
//! quote them, and the text read is zeroized.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use age::x25519;
use zeroize::Zeroizing;

use super::SecretError;

/// The environment variable that names an identity file.
pub const IDENTITY_ENV: &str = "AIRLOCK_IDENTITY";

/// The private keys found for this user, and the file they came from.
pub struct Identities {
    /// The identity file.
    pub path: PathBuf,
    keys: Vec<x25519::Identity>,
}

impl Identities {
    /// Parse identities from the text of an identity file (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Identities, SecretError> {
        let invalid = |line: usize, reason: &str| SecretError::IdentityInvalid {
            path: path.to_path_buf(),
            line,
            reason: reason.to_string(),
        };
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            let n = i + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("AGE-SECRET-KEY-1") {
                let key = line.parse::<x25519::Identity>().map_err(|_| {
                    invalid(
                        n,
                        "not a valid age identity (damaged AGE-SECRET-KEY-1… line)",
                    )
                })?;
                keys.push(key);
            } else if line.starts_with("AGE-PLUGIN-") {
                return Err(invalid(n, "age plugin identities are not supported; use an X25519 identity (`airlock secrets init` or age-keygen)"));
            } else if line.starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
                || line.starts_with("age-encryption.org/")
            {
                return Err(invalid(n, "this identity file is itself encrypted (passphrase-protected); airlock needs a plain identity file, e.g. `age -d FILE > identity.txt` kept with mode 0600"));
            } else if line.starts_with("-----BEGIN") || line.starts_with("ssh-") {
                return Err(invalid(n, "SSH keys are not supported; create an age identity with `airlock secrets init`"));
            } else {
                return Err(invalid(
                    n,
                    "not an age identity (expected AGE-SECRET-KEY-1…, # comments or blank lines)",
                ));
            }
        }
        if keys.is_empty() {
            return Err(SecretError::IdentityEmpty {
                path: path.to_path_buf(),
            });
        }
        Ok(Identities {
            path: path.to_path_buf(),
            keys,
        })
    }

    /// Read and parse an identity file.
    pub fn load(path: &Path) -> Result<Identities, SecretError> {
        let file = std::fs::File::open(path).map_err(|source| SecretError::IdentityRead {
            path: path.to_path_buf(),
            source,
        })?;
        if let Ok(meta) = file.metadata() {
            if meta.mode() & 0o077 != 0 {
                tracing::warn!(
                    "identity file {} can be read by other users (mode {:o}); run `chmod 600 {}`",
                    path.display(),
                    meta.mode() & 0o777,
                    path.display()
                );
            }
        }
        let bytes =
            super::read_value(file, 1 << 20).map_err(|source| SecretError::IdentityRead {
                path: path.to_path_buf(),
                source,
            })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| SecretError::IdentityInvalid {
            path: path.to_path_buf(),
            line: 1,
            reason: "the file is not text (an age identity file is UTF-8 text)".to_string(),
        })?;
        Identities::parse(path, text)
    }

    /// The public keys (`age1…`) of these identities, in file order.
    pub fn public_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    /// The identities, for age's decryptor.
    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k as &dyn age::Identity)
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("path", &self.path)
            .field("public_keys", &self.public_keys())
            .finish()
    }
}

/// What named the identity file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--identity FILE`.
    Flag,
    /// `AIRLOCK_IDENTITY`.
    Env,
    /// `~/.config/airlock/identity.txt`.
    Default,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Flag => "--identity",
            Source::Env => IDENTITY_ENV,
            Source::Default => "the default location",
        }
    }
}

/// Where the identity file is, and what said so: `explicit` (`--identity`), else
/// `AIRLOCK_IDENTITY`, else `~/.config/airlock/identity.txt` (under `$HOME`). `None` when
/// nothing names a file and `$HOME` is not set.
pub fn identity_path(explicit: Option<&Path>) -> Option<(PathBuf, Source)> {
    if let Some(path) = explicit {
        return Some((path.to_path_buf(), Source::Flag));
    }
    if let Some(path) = std::env::var_os(IDENTITY_ENV).filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(path), Source::Env));
    }
    default_identity_path().map(|p| (p, Source::Default))
}

/// `~/.config/airlock/identity.txt`.
pub fn default_identity_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| {
            PathBuf::from(home)
                .join(".config")
                .join("airlock")
                .join("identity.txt")
        })
}

/// Find and load this user's identities: `--identity FILE`, else `AIRLOCK_IDENTITY`, else
/// `~/.config/airlock/identity.txt`. A file named explicitly must exist; when the default
/// does not, the error says where airlock looked and how to create one.
pub fn find_identities(explicit: Option<&Path>) -> Result<Identities, SecretError> {
    match identity_path(explicit) {
        None => Err(SecretError::NoIdentity {
            looked: format!("--identity, {IDENTITY_ENV}; HOME is not set"),
        }),
        Some((path, Source::Default)) if !path.exists() => Err(SecretError::NoIdentity {
            looked: format!("--identity, {IDENTITY_ENV}, {}", path.display()),
        }),
        Some((path, from)) if !path.exists() => Err(SecretError::IdentityMissing {
            path,
            from: from.describe(),
        }),
        Some((path, _)) => Identities::load(&path),
    }
}

/// A new identity, written to `path` in age-keygen's format with mode 0600 (its missing
/// parent folders are made with mode 0700). Refuses to overwrite an existing file.
pub fn create_identity(path: &Path) -> Result<Identities, SecretError> {
    if path.exists() {
        let public = Identities::load(path)
            .ok()
            .and_then(|ids| ids.public_keys().into_iter().next())
            .unwrap_or_else(|| "age1…".to_string());
        return Err(SecretError::IdentityExists {
            path: path.to_path_buf(),
            public,
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| SecretError::io("create the folder", parent, e))?;
    }
    let key = x25519::Identity::generate();
    let public = key.to_public().to_string();
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        key.to_string().expose_secret()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SecretError::io("create the identity file", path, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| SecretError::io("write the identity file", path, e))?;
    Ok(Identities {
        path: path.to_path_buf(),
        keys: vec![key],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SK: &str = "AGE-SECRET-KEY-1GQ9778VQXMMJVE8SK7J6VT8UJ4HDQAJUVSFCWCM02D8GEWQ72PVQ2Y5J33";

    #[test]
    fn parses_age_keygen_format_and_several_keys() {
        let other = x25519::Identity::generate();
        let text = format!(
            "# created: 2024-01-01T00:00:00Z\n# public key: age1…\n{SK}\n\n{}\r\n",
            other.to_string().expose_secret()
        );
        let ids = Identities::parse(Path::new("id.txt"), &text).unwrap();
        assert_eq!(ids.public_keys().len(), 2);
        assert_eq!(ids.public_keys()[1], other.to_public().to_string());
        let debug = format!("{ids:?}");
        assert!(!debug.contains("AGE-SECRET-KEY"), "{debug}");
    }

    #[test]
    fn bad_lines_are_named_by_number_never_quoted() {
        let damaged = format!("# c\n{}X\n", &SK[..SK.len() - 1]);
        let err = Identities::parse(Path::new("id.txt"), &damaged)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains(&SK[20..40]), "{err}");
        let err = Identities::parse(Path::new("id.txt"), "hello\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && !err.contains("hello"), "{err}");
        let err = Identities::parse(Path::new("id.txt"), "# only comments\n").unwrap_err();
        assert!(matches!(err, SecretError::IdentityEmpty { .. }));
    }

    #[test]
    fn create_refuses_to_overwrite_and_sets_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/identity.txt");
        let ids = create_identity(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(tmp.path().join("a/b")).unwrap().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let loaded = Identities::load(&path).unwrap();
        assert_eq!(loaded.public_keys(), ids.public_keys());
        let before = std::fs::read(&path).unwrap();
        let err = create_identity(&path).unwrap_err();
        assert!(matches!(err, SecretError::IdentityExists { .. }));
        assert!(err.to_string().contains(&ids.public_keys()[0]));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
