//! What `airlock secrets list` and `airlock secrets check` report.
//!
//! Both look at every `*.age` file and keep going past the ones that fail: one damaged or
//! foreign file must not hide the state of the others. Neither ever holds a value: a secret
//! is decrypted only to learn that it can be, and its length.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use super::identity::Identities;
use super::sidecar::Sidecar;
use super::store::Store;
use super::SecretError;

/// One secret, as `list` shows it.
#[derive(Debug)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    /// The size of the `.age` file.
    pub file_size: u64,
    /// When the file last changed.
    pub modified: Option<SystemTime>,
    pub state: State,
}

/// Whether this identity can read a secret.
#[derive(Debug)]
pub enum State {
    /// It decrypts; the value is this many bytes.
    Readable { size: usize },
    /// It does not (wrong identity, damaged file, passphrase file, invalid name, …).
    Unreadable(SecretError),
    /// No identity to try with.
    Unknown,
}

/// One problem `check` found.
#[derive(Debug)]
pub enum Problem {
    /// The secret does not decrypt with this identity (or its name is invalid).
    Unreadable(SecretError),
    /// The file is not the one airlock last wrote, so its recipients are unknown.
    WrittenOutside { name: String },
    /// Encrypted to other keys than `recipients.txt` lists.
    RecipientsDiffer {
        /// In recipients.txt but cannot read the secret.
        missing: Vec<String>,
        /// Can read the secret but no longer in recipients.txt.
        extra: Vec<String>,
    },
    /// `recipients.txt` is missing, empty or invalid.
    Recipients(SecretError),
    /// This identity's key is not in `recipients.txt`.
    NotARecipient { ours: Vec<String>, path: PathBuf },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SYNC: &str = "`airlock secrets recipients sync`";
        match self {
            Problem::Unreadable(e) | Problem::Recipients(e) => write!(f, "{e}"),
            Problem::WrittenOutside { name } => write!(
                f,
                "written outside airlock; recipients unknown (the file is not the one airlock \
                 last wrote, or has no {name}.recipients record). Re-encrypt it to the keys in \
                 recipients.txt with {SYNC}, or set it again with `airlock secrets set {name}`"
            ),
            Problem::RecipientsDiffer { missing, extra } => {
                write!(f, "not encrypted to exactly the keys in recipients.txt:")?;
                if !missing.is_empty() {
                    write!(f, " cannot be read by {}", missing.join(", "))?;
                }
                if !extra.is_empty() {
                    if !missing.is_empty() {
                        write!(f, ";")?;
                    }
                    write!(
                        f,
                        " can still be read by {} (no longer listed)",
                        extra.join(", ")
                    )?;
                }
                write!(f, ". Re-encrypt with {SYNC}")
            }
            Problem::NotARecipient { ours, path } => write!(
                f,
                "your key ({}) is not in {}: secrets set from now on will not be readable \
                 by you. Add it: `airlock secrets recipients add {}`",
                ours.join(", "),
                path.display(),
                ours.first().map(String::as_str).unwrap_or("age1…")
            ),
        }
    }
}

/// One secret's problems.
#[derive(Debug)]
pub struct CheckItem {
    pub name: String,
    pub problems: Vec<Problem>,
}

/// Everything `check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The keys in recipients.txt.
    pub recipients: Vec<String>,
    /// Problems with the store as a whole (recipients.txt, this identity).
    pub store: Vec<Problem>,
    /// Every secret, with its problems (none when it is fine).
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.store.is_empty() && self.items.iter().all(|i| i.problems.is_empty())
    }
}

impl Store {
    /// Every `*.age` file, with its size, when it changed and whether `identities` (if any)
    /// can decrypt it.
    pub fn list(&self, identities: Option<&Identities>) -> Result<Vec<Listed>, SecretError> {
        let mut out = Vec::new();
        for name in self.names()? {
            let path = self.file_for(&name);
            let meta = std::fs::metadata(&path).ok();
            let state = if let Err(e) = super::validate_name(&name) {
                State::Unreadable(e)
            } else if let Some(ids) = identities {
                match self
                    .read_file(&name)
                    .and_then(|ct| self.decrypt_bytes(&name, &ct, ids))
                {
                    Ok(value) => State::Readable { size: value.len() },
                    Err(e) => State::Unreadable(e),
                }
            } else {
                State::Unknown
            };
            out.push(Listed {
                name,
                path,
                file_size: meta.as_ref().map_or(0, |m| m.len()),
                modified: meta.and_then(|m| m.modified().ok()),
                state,
            });
        }
        Ok(out)
    }

    /// Check the store: every secret decrypts with `identities` and is encrypted to exactly
    /// the keys in `recipients.txt` (as recorded when airlock wrote it).
    pub fn check(&self, identities: &Identities) -> Result<CheckReport, SecretError> {
        let mut store = Vec::new();
        let recipients = match self.recipients() {
            Ok(r) => match r.to_age() {
                Ok(_) => r.keys(),
                Err(e) => {
                    store.push(Problem::Recipients(e));
                    Vec::new()
                }
            },
            Err(e) => {
                store.push(Problem::Recipients(e));
                Vec::new()
            }
        };
        let ours = identities.public_keys();
        if !recipients.is_empty() && !ours.iter().any(|k| recipients.contains(k)) {
            store.push(Problem::NotARecipient {
                ours,
                path: self.recipients_path(),
            });
        }
        let mut items = Vec::new();
        for name in self.names()? {
            let mut problems = Vec::new();
            if let Err(e) = super::validate_name(&name) {
                problems.push(Problem::Unreadable(e));
                items.push(CheckItem { name, problems });
                continue;
            }
            let ciphertext = match self.read_file(&name) {
                Ok(ct) => ct,
                Err(e) => {
                    problems.push(Problem::Unreadable(e));
                    items.push(CheckItem { name, problems });
                    continue;
                }
            };
            // Whom it is encrypted to matters for a file that decrypts, or that is a sound
            // age file for other keys; a damaged file's message already says what to do.
            let decrypted = self.decrypt_bytes(&name, &ciphertext, identities);
            let wrong_identity = matches!(decrypted, Err(SecretError::WrongIdentity { .. }));
            if let Err(e) = decrypted {
                problems.push(Problem::Unreadable(e));
                if !wrong_identity {
                    items.push(CheckItem { name, problems });
                    continue;
                }
            }
            let recorded = Sidecar::load(&self.dir, &name);
            match recorded
                .as_ref()
                .and_then(|s| s.keys_if_matches(&ciphertext))
            {
                // The wrong-identity message already says the recipients are unknown.
                None if wrong_identity => {}
                None => problems.push(Problem::WrittenOutside { name: name.clone() }),
                Some(keys) if !recipients.is_empty() => {
                    let missing: Vec<String> = recipients
                        .iter()
                        .filter(|k| !keys.contains(k))
                        .cloned()
                        .collect();
                    let extra: Vec<String> = keys
                        .iter()
                        .filter(|k| !recipients.contains(k))
                        .cloned()
                        .collect();
                    if !missing.is_empty() || !extra.is_empty() {
                        problems.push(Problem::RecipientsDiffer { missing, extra });
                    }
                }
                Some(_) => {}
            }
            items.push(CheckItem { name, problems });
        }
        Ok(CheckReport {
            recipients,
            store,
            items,
        })
    }
}
