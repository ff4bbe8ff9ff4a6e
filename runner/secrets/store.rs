//! The store: the operations on a `secrets/` folder that the commands and `airlock run` use.
//!
//! Every change holds an exclusive lock on the folder (`flock` on the folder itself, so no
//! lock file is left lying around), so two `airlock secrets` commands never interleave their
//! writes. Every file is replaced atomically. Changing the recipients re-encrypts every secret,
//! and decrypts them all first: if any cannot be decrypted, nothing changes.
//!
//! Listing and checking (`list`, `check`) are in the `report` module, built on the same helpers.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use zeroize::Zeroizing;

use super::crypto::{self, Failure};
use super::identity::Identities;
use super::recipients::{self, Recipients};
use super::sidecar::{self, Sidecar};
use super::{SecretError, SecretValue};

/// The largest `.age` file airlock reads (well above what [`super::MAX_VALUE_LEN`] encrypts to).
const MAX_FILE_LEN: u64 = 4 * super::MAX_VALUE_LEN as u64;

/// The store in a `secrets/` folder.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

/// What `set` did.
#[derive(Debug)]
pub struct SetOutcome {
    /// The file written.
    pub path: PathBuf,
    /// Whether it replaced an older value.
    pub replaced: bool,
    /// The public keys it was encrypted to.
    pub recipients: Vec<String>,
}

/// What a change of recipients did.
#[derive(Debug)]
pub struct Reencrypted {
    /// The secrets re-encrypted.
    pub secrets: Vec<String>,
    /// The recipients they are now encrypted to.
    pub recipients: Vec<String>,
}

impl Store {
    pub fn open(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `secrets/NAME.age`.
    pub fn file_for(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.age"))
    }

    /// `secrets/recipients.txt`.
    pub fn recipients_path(&self) -> PathBuf {
        self.dir.join("recipients.txt")
    }

    /// The recipients file (empty when it does not exist).
    pub fn recipients(&self) -> Result<Recipients, SecretError> {
        Recipients::load(&self.recipients_path())
    }

    /// The names of every `*.age` file in the store, sorted, including names that are not
    /// valid secret names (so list and check can point at them). No folder: no secrets.
    pub fn names(&self) -> Result<Vec<String>, SecretError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SecretError::io("list the folder", &self.dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SecretError::io("list the folder", &self.dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if let Some(stem) = file_name.strip_suffix(".age") {
                if !stem.is_empty() && !stem.starts_with('.') {
                    names.push(stem.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// The names of the secrets airlock can use (valid names only).
    pub fn secret_names(&self) -> Result<Vec<String>, SecretError> {
        Ok(self
            .names()?
            .into_iter()
            .filter(|n| super::is_valid_name(n))
            .collect())
    }

    /// The file of a secret, read whole.
    pub(crate) fn read_file(&self, name: &str) -> Result<Vec<u8>, SecretError> {
        let path = self.file_for(name);
        let too_large = |path: &Path| SecretError::Corrupt {
            name: name.to_string(),
            path: path.to_path_buf(),
            reason: format!(
                "larger than {MAX_FILE_LEN} bytes, more than any secret airlock writes"
            ),
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_FILE_LEN => return Err(too_large(&path)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretError::Missing {
                    name: name.to_string(),
                    path,
                })
            }
            Err(e) => return Err(SecretError::io("read", &path, e)),
        }
        std::fs::read(&path).map_err(|e| SecretError::io("read", &path, e))
    }

    /// Decrypt one file's bytes, mapping age's failures to messages that name the secret.
    pub(crate) fn decrypt_bytes(
        &self,
        name: &str,
        ciphertext: &[u8],
        identities: &Identities,
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let path = self.file_for(name);
        crypto::decrypt(ciphertext, identities).map_err(|failure| match failure {
            Failure::NotARecipient => SecretError::WrongIdentity {
                name: name.to_string(),
                theirs: Sidecar::load(&self.dir, name)
                    .and_then(|s| s.keys_if_matches(ciphertext).map(<[String]>::to_vec)),
                path,
                identity: identities.path.clone(),
                ours: identities.public_keys(),
            },
            Failure::Passphrase => SecretError::Passphrase {
                name: name.to_string(),
                path,
            },
            Failure::Corrupt(reason) => SecretError::Corrupt {
                name: name.to_string(),
                path,
                reason,
            },
        })
    }

    /// Decrypt one secret (whatever its length).
    pub fn decrypt(&self, name: &str, identities: &Identities) -> Result<SecretValue, SecretError> {
        super::validate_name(name)?;
        let ciphertext = self.read_file(name)?;
        let value = self.decrypt_bytes(name, &ciphertext, identities)?;
        Ok(super::into_secret(value))
    }

    /// Decrypt the named secrets, in order, for a run. Every name must be valid, exist,
    /// decrypt with `identities` and be at least [`super::MIN_VALUE_LEN`] bytes long; the
    /// error lists every secret that fails (by name and file, never a value).
    pub fn decrypt_all(
        &self,
        names: &[String],
        identities: &Identities,
    ) -> Result<Vec<(String, SecretValue)>, SecretError> {
        let mut values = Vec::with_capacity(names.len());
        let mut errors = Vec::new();
        for name in names {
            let checked = self.decrypt(name, identities).and_then(|value| {
                use secrecy::ExposeSecret;
                super::validate_value(name, value.expose_secret()).map(|()| value)
            });
            match checked {
                Ok(value) => values.push((name.clone(), value)),
                Err(e) => errors.push(e),
            }
        }
        match SecretError::collect(errors) {
            Some(e) => Err(e),
            None => Ok(values),
        }
    }

    /// Hold the store's lock (made folder and all, if need be) until the guard drops.
    fn lock(&self) -> Result<Flock<File>, SecretError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| SecretError::io("create the folder", &self.dir, e))?;
        let dir = File::open(&self.dir).map_err(|e| SecretError::io("open", &self.dir, e))?;
        Flock::lock(dir, FlockArg::LockExclusive)
            .map_err(|(_, errno)| SecretError::io("lock", &self.dir, errno.into()))
    }

    /// Encrypt `value` to `recipients` as `NAME.age`, atomically, and record the sidecar.
    fn write_secret(
        &self,
        name: &str,
        value: &[u8],
        recipients: &Recipients,
    ) -> Result<(), SecretError> {
        let keys = recipients.to_age()?;
        let ciphertext = crypto::encrypt(value, &keys).map_err(|source| SecretError::Encrypt {
            action: "encrypt the value",
            source,
        })?;
        let path = self.file_for(name);
        super::atomic::write_atomically(&path, 0o644, |f| {
            std::io::Write::write_all(f, &ciphertext)
        })
        .map_err(|e| SecretError::io("write", &path, e))?;
        Sidecar {
            sha256: crate::hex::sha256(&ciphertext),
            keys: recipients.keys(),
        }
        .save(&self.dir, name)
    }

    /// Set a secret: encrypt `value` to every key in `recipients.txt` and replace `NAME.age`
    /// atomically (a failure leaves the old file whole). Refuses invalid names and values
    /// shorter than [`super::MIN_VALUE_LEN`].
    pub fn set(&self, name: &str, value: &[u8]) -> Result<SetOutcome, SecretError> {
        super::validate_new_name(name)?;
        super::validate_value(name, value)?;
        let _lock = self.lock()?;
        let recipients = self.recipients()?;
        let path = self.file_for(name);
        let replaced = path.exists();
        self.write_secret(name, value, &recipients)?;
        Ok(SetOutcome {
            path,
            replaced,
            recipients: recipients.keys(),
        })
    }

    /// Remove a secret (its file and sidecar).
    pub fn remove(&self, name: &str) -> Result<PathBuf, SecretError> {
        super::validate_name(name)?;
        let _lock = self.lock()?;
        let path = self.file_for(name);
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SecretError::Missing {
                name: name.to_string(),
                path: path.clone(),
            },
            _ => SecretError::io("remove", &path, e),
        })?;
        let side = sidecar::path_for(&self.dir, name);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SecretError::io("remove", &side, e)),
        }
        Ok(path)
    }

    /// Add a public key to `recipients.txt` and re-encrypt every secret to the new set.
    /// `None` when the key is already there (nothing changes).
    pub fn add_recipient(
        &self,
        key: &str,
        identities: Option<&Identities>,
    ) -> Result<Option<Reencrypted>, SecretError> {
        let key =
            recipients::parse_key(key).map_err(|reason| SecretError::InvalidKey { reason })?;
        let _lock = self.lock()?;
        let mut recipients = self.recipients()?;
        if !recipients.add(&key) {
            return Ok(None);
        }
        self.reencrypt_to(&recipients, identities).map(Some)
    }

    /// Add a public key to `recipients.txt` without re-encrypting anything (what `init` does:
    /// the new key's owner cannot decrypt the existing secrets until someone who can runs
    /// [`Store::sync`]). Returns false when the key is already there.
    pub fn add_recipient_only(&self, key: &str) -> Result<bool, SecretError> {
        let key =
            recipients::parse_key(key).map_err(|reason| SecretError::InvalidKey { reason })?;
        let _lock = self.lock()?;
        let mut recipients = self.recipients()?;
        if !recipients.add(&key) {
            return Ok(false);
        }
        recipients.save()?;
        Ok(true)
    }

    /// Remove a public key from `recipients.txt` and re-encrypt every secret to the rest.
    pub fn remove_recipient(
        &self,
        key: &str,
        identities: Option<&Identities>,
    ) -> Result<Reencrypted, SecretError> {
        let key =
            recipients::parse_key(key).map_err(|reason| SecretError::InvalidKey { reason })?;
        let _lock = self.lock()?;
        let mut recipients = self.recipients()?;
        let present = recipients.keys();
        if !recipients.remove(&key) {
            return Err(SecretError::KeyAbsent {
                key: key.to_string(),
                path: self.recipients_path(),
                present,
            });
        }
        if recipients.keys().is_empty() {
            return Err(SecretError::LastRecipient {
                key: key.to_string(),
                path: self.recipients_path(),
            });
        }
        self.reencrypt_to(&recipients, identities)
    }

    /// Re-encrypt every secret to the keys now in `recipients.txt` (after a hand edit, a
    /// teammate's `init`, or to adopt files written outside airlock).
    pub fn sync(&self, identities: Option<&Identities>) -> Result<Reencrypted, SecretError> {
        let _lock = self.lock()?;
        let recipients = self.recipients()?;
        self.reencrypt_to(&recipients, identities)
    }

    /// Decrypt every secret, then (only if all decrypted) encrypt each to `recipients` and
    /// save `recipients.txt` last. The caller holds the lock.
    fn reencrypt_to(
        &self,
        recipients: &Recipients,
        identities: Option<&Identities>,
    ) -> Result<Reencrypted, SecretError> {
        recipients.to_age()?;
        let names = self.secret_names()?;
        let mut values = Vec::with_capacity(names.len());
        if !names.is_empty() {
            let Some(identities) = identities else {
                return Err(SecretError::NoIdentity {
                    looked: "nowhere: none was given, and re-encrypting needs one".to_string(),
                });
            };
            let mut errors = Vec::new();
            for name in &names {
                match self
                    .read_file(name)
                    .and_then(|ct| self.decrypt_bytes(name, &ct, identities))
                {
                    Ok(value) => values.push((name, value)),
                    Err(e) => errors.push(e),
                }
            }
            if !errors.is_empty() {
                return Err(SecretError::Reencrypt { errors });
            }
        }
        for (name, value) in &values {
            self.write_secret(name, value, recipients)?;
        }
        recipients.save()?;
        Ok(Reencrypted {
            secrets: names,
            recipients: recipients.keys(),
        })
    }
}
