//! Every way the secret store can refuse, as one typed error.
//!
//! Each message is complete on its own: it names the secret and the file involved, says what
//! is wrong and how to fix it. No message ever contains a secret value, nor a line of an
//! identity file (which could be a private key): input that may be secret is described by
//! position ("line 3"), never quoted.

use std::io;
use std::path::PathBuf;

/// An error from the secret store. Its `Display` is the full user-facing message.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No identity file in any of the places airlock looks.
    #[error(
        "no age identity found (looked at {looked}); create one with `airlock secrets init`, \
         or point to an existing one with --identity FILE or AIRLOCK_IDENTITY=FILE"
    )]
    NoIdentity { looked: String },

    /// An identity file named explicitly (flag or variable) does not exist.
    #[error(
        "identity file {path} (from {from}) does not exist; create it with \
         `airlock secrets init` (which writes to that path), or fix the path"
    )]
    IdentityMissing { path: PathBuf, from: &'static str },

    #[error("cannot read identity file {path}: {source}")]
    IdentityRead { path: PathBuf, source: io::Error },

    /// A line of the identity file is not a usable identity. The line itself is never shown.
    #[error("identity file {path}, line {line}: {reason}")]
    IdentityInvalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error(
        "identity file {path} holds no age identity (no AGE-SECRET-KEY-1… line); create one \
         with `airlock secrets init`, or `age-keygen -o FILE` and pass --identity FILE"
    )]
    IdentityEmpty { path: PathBuf },

    #[error(
        "identity file {path} already exists (public key {public}); airlock never overwrites \
         an identity. To use it with this store, add its public key: \
         `airlock secrets recipients add {public}`"
    )]
    IdentityExists { path: PathBuf, public: String },

    #[error(
        "invalid secret name {name:?}: a secret's name becomes an environment variable in the \
         setup phase, so it must match [A-Z_][A-Z0-9_]* (capital letters, digits and \
         underscores, not starting with a digit), e.g. API_TOKEN"
    )]
    InvalidName { name: String },

    #[error(
        "a secret named {name} would replace a variable the shell, the dynamic loader or airlock          relies on in the setup phase (PATH, HOME, IFS, BASH_ENV, LD_*, BASH_FUNC_*, AIRLOCK_*, …);          rename it, e.g. MY_{name}, and use it from the setup script by that name"
    )]
    ReservedName { name: String },

    #[error(
        "secret {name} not found: there is no {}; create it with `airlock secrets set {name}` \
         (the value is read from standard input)",
        path.display()
    )]
    Missing { name: String, path: PathBuf },

    #[error(
        "the value of secret {name} is {len} byte(s); airlock needs at least {min}: the \
         boundary cannot reliably keep values this short out of the agent phase (they occur \
         by chance in ordinary files). Use a longer value: `airlock secrets set {name}`",
        min = super::MIN_VALUE_LEN
    )]
    TooShort { name: String, len: usize },

    #[error(
        "the value of secret {name} is larger than {limit} bytes; secrets are meant for keys, \
         tokens and small files (put larger data in the environment's setup script)"
    )]
    TooLarge { name: String, limit: usize },

    #[error(
        "no recipients in {}: secrets are encrypted to the age public keys listed there. \
         Run `airlock secrets init` to create your key and add it, or \
         `airlock secrets recipients add age1…`",
        path.display()
    )]
    NoRecipients { path: PathBuf },

    /// A line of recipients.txt is not an age X25519 public key.
    #[error(
        "{}, line {line}: {reason}; the file holds one age public key (age1…) per line, \
         with # comments and blank lines",
        path.display()
    )]
    RecipientsInvalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A key given on the command line is not an age X25519 public key.
    #[error("{reason}")]
    InvalidKey { reason: String },

    #[error(
        "{key} is not in {}; the recipients are: {}",
        path.display(),
        list_or_none(present)
    )]
    KeyAbsent {
        key: String,
        path: PathBuf,
        present: Vec<String>,
    },

    #[error(
        "{key} is the only recipient in {}; removing it would leave secrets nobody can \
         decrypt. Add the new key first (`airlock secrets recipients add age1…`), then remove \
         this one",
        path.display()
    )]
    LastRecipient { key: String, path: PathBuf },

    /// The identity is not among the keys the secret was encrypted to.
    #[error(
        "secret {name} ({}) cannot be decrypted with the identity in {} (public key {}): {}. \
         Ask someone who can decrypt it to add your key: \
         `airlock secrets recipients add {}`",
        path.display(),
        identity.display(),
        ours.join(", "),
        match theirs {
            Some(keys) => format!("it was encrypted to {}", list_or_none(keys)),
            None => "it was written outside airlock, so the keys it was encrypted to are not \
                     recorded".to_string(),
        },
        ours.first().map(String::as_str).unwrap_or("age1…")
    )]
    WrongIdentity {
        name: String,
        path: PathBuf,
        identity: PathBuf,
        ours: Vec<String>,
        theirs: Option<Vec<String>>,
    },

    #[error(
        "secret {name} ({}) is encrypted with a passphrase (age -p); airlock decrypts with \
         identities only, so secrets are encrypted to the keys in recipients.txt. \
         Re-encrypt it: `age -d {} | airlock secrets set {name}`",
        path.display(),
        path.display()
    )]
    Passphrase { name: String, path: PathBuf },

    #[error(
        "secret {name} ({}) is not a readable age file ({reason}); restore it from version \
         control, or set it again with `airlock secrets set {name}`",
        path.display()
    )]
    Corrupt {
        name: String,
        path: PathBuf,
        reason: String,
    },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("cannot {action}: {source}")]
    Encrypt {
        action: &'static str,
        source: io::Error,
    },

    #[error("cannot read the value of secret {name} from {from}: {source}")]
    ReadValue {
        name: String,
        from: String,
        source: io::Error,
    },

    /// Re-encrypting to a new set of recipients needs every secret decrypted first; these
    /// could not be, and nothing was changed.
    #[error(
        "cannot re-encrypt the secrets to the new recipients: {} secret(s) cannot be \
         decrypted, so nothing was changed:\n{}",
        errors.len(),
        bullets(errors)
    )]
    Reencrypt { errors: Vec<SecretError> },

    /// Several independent problems (e.g. more than one secret of a run failed).
    #[error("{} problems with secrets:\n{}", .0.len(), bullets(.0))]
    Several(Vec<SecretError>),
}

impl SecretError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SecretError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// One error for a list of them: the error itself when there is one.
    pub(crate) fn collect(mut errors: Vec<SecretError>) -> Option<SecretError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(SecretError::Several(errors)),
        }
    }
}

fn list_or_none(keys: &[String]) -> String {
    if keys.is_empty() {
        "(none)".to_string()
    } else {
        keys.join(", ")
    }
}

fn bullets(errors: &[SecretError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}
