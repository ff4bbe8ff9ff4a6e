//! `secrets/recipients.txt`: the public keys every secret is encrypted to.
//!
//! The file is in age's recipients-file format (one `age1…` key per line, `#` comments, blank
//! lines), so `age -R secrets/recipients.txt` encrypts exactly as airlock does. airlock edits
//! it in place, keeping every comment and blank line a person wrote: the file is also the
//! team's record of whose key is whose.
//!
//! Only X25519 keys are accepted: they are what `airlock secrets init` and `age-keygen` make,
//! and mixing in other kinds (SSH, plugins) would make some secrets unreadable to some tools.

use std::path::{Path, PathBuf};

use age::x25519;

use super::SecretError;

/// The header of a new recipients file.
pub const HEADER: &str = "\
# The age public keys every secret in this folder is encrypted to, one per line
# (age recipients-file format: `age -R secrets/recipients.txt` encrypts the same way).
# Add a teammate with `airlock secrets recipients add age1…` (re-encrypts every secret);
# after editing this file by hand, run `airlock secrets recipients sync`.
";

/// Parse one public key, with a message that says what is wrong. A private key passed by
/// mistake is recognised and never echoed.
pub fn parse_key(text: &str) -> Result<x25519::Recipient, String> {
    let text = text.trim();
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err(
            "that is a private key (AGE-SECRET-KEY-1…), which must never be shared; \
                    pass its public key (age1…), which `age-keygen -y FILE` prints"
                .to_string(),
        );
    }
    if text.starts_with("ssh-") || text.starts_with("ecdsa-") {
        return Err("SSH keys are not supported; use an age X25519 public key (age1…)".to_string());
    }
    if text.starts_with("age1") && text.len() > 62 {
        return Err(format!(
            "{text} is not an age X25519 public key (plugin and post-quantum keys are not \
             supported; an X25519 key is age1 followed by 58 characters)"
        ));
    }
    text.parse::<x25519::Recipient>().map_err(|reason| {
        format!(
            "{text:?} is not an age public key ({reason}); an age X25519 public key looks \
             like age1 followed by 58 characters, as `airlock secrets init` or \
             `age-keygen -y FILE` print"
        )
    })
}

#[derive(Debug, Clone)]
enum Line {
    /// A key, as parsed (canonical form).
    Key(String),
    /// A comment or blank line, kept as written.
    Other(String),
}

/// The parsed recipients file.
#[derive(Debug, Clone)]
pub struct Recipients {
    path: PathBuf,
    lines: Vec<Line>,
}

impl Recipients {
    /// Parse the text of a recipients file (`path` is for messages and for saving).
    pub fn parse(path: &Path, text: &str) -> Result<Recipients, SecretError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                lines.push(Line::Other(raw.trim_end().to_string()));
                continue;
            }
            let key = parse_key(line).map_err(|reason| SecretError::RecipientsInvalid {
                path: path.to_path_buf(),
                line: i + 1,
                // A line that holds a private key is not quoted.
                reason: if line.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                    reason
                } else {
                    format!("{line:?} is not an age X25519 public key")
                },
            })?;
            lines.push(Line::Key(key.to_string()));
        }
        Ok(Recipients {
            path: path.to_path_buf(),
            lines,
        })
    }

    /// Read `secrets/recipients.txt`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Recipients, SecretError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Recipients::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Recipients {
                path: path.to_path_buf(),
                lines: Vec::new(),
            }),
            Err(e) => Err(SecretError::io("read", path, e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys, in file order, without duplicates.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for line in &self.lines {
            if let Line::Key(k) = line {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys
    }

    /// The keys as age recipients; an empty list is an error that says how to add one.
    pub(crate) fn to_age(&self) -> Result<Vec<x25519::Recipient>, SecretError> {
        let keys = self.keys();
        if keys.is_empty() {
            return Err(SecretError::NoRecipients {
                path: self.path.clone(),
            });
        }
        keys.iter()
            .map(|k| {
                k.parse::<x25519::Recipient>()
                    .map_err(|reason| SecretError::InvalidKey {
                        reason: reason.to_string(),
                    })
            })
            .collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l, Line::Key(k) if k == key))
    }

    /// Add a key at the end (a new file gets the explanatory header first). Returns false
    /// when it is already there.
    pub fn add(&mut self, key: &x25519::Recipient) -> bool {
        let key = key.to_string();
        if self.contains(&key) {
            return false;
        }
        if self.lines.is_empty() {
            self.lines = HEADER.lines().map(|l| Line::Other(l.to_string())).collect();
        }
        self.lines.push(Line::Key(key));
        true
    }

    /// Remove every line holding `key`. Returns false when it was not there.
    pub fn remove(&mut self, key: &x25519::Recipient) -> bool {
        let key = key.to_string();
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Key(k) if *k == key));
        self.lines.len() != before
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Key(k) | Line::Other(k) => out.push_str(k),
            }
            out.push('\n');
        }
        out
    }

    /// Write the file atomically.
    pub fn save(&self) -> Result<(), SecretError> {
        super::atomic::write_atomically(&self.path, 0o644, |f| {
            std::io::Write::write_all(f, self.render().as_bytes())
        })
        .map_err(|e| SecretError::io("write", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> x25519::Recipient {
        x25519::Identity::generate().to_public()
    }

    #[test]
    fn keeps_comments_and_edits_keys() {
        let (a, b) = (key(), key());
        let text = format!("# team\n\n# alice\n{a}\n");
        let mut r = Recipients::parse(Path::new("r.txt"), &text).unwrap();
        assert_eq!(r.keys(), vec![a.to_string()]);
        assert!(r.add(&b));
        assert!(!r.add(&b));
        assert_eq!(r.render(), format!("{text}{b}\n"));
        assert!(r.remove(&a));
        assert!(!r.remove(&a));
        assert_eq!(r.render(), format!("# team\n\n# alice\n{b}\n"));
    }

    #[test]
    fn new_file_gets_header() {
        let mut r = Recipients::parse(Path::new("r.txt"), "").unwrap();
        assert!(matches!(r.to_age(), Err(SecretError::NoRecipients { .. })));
        let k = key();
        r.add(&k);
        assert!(r.render().starts_with("# The age public keys"));
        assert!(r.render().ends_with(&format!("{k}\n")));
    }

    #[test]
    fn bad_lines_and_keys() {
        let err = Recipients::parse(Path::new("r.txt"), "# x\nage1nope\n").unwrap_err();
        assert!(err.to_string().contains("r.txt, line 2"), "{err}");
        let sk = "AGE-SECRET-KEY-1GQ9778VQXMMJVE8SK7J6VT8UJ4HDQAJUVSFCWCM02D8GEWQ72PVQ2Y5J33";
        let err = Recipients::parse(Path::new("r.txt"), sk)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("private key") && !err.contains(&sk[16..]),
            "{err}"
        );
        let err = parse_key(sk).unwrap_err();
        assert!(
            err.contains("private key") && !err.contains(&sk[16..]),
            "{err}"
        );
        assert!(parse_key("ssh-ed25519 AAAA").unwrap_err().contains("SSH"));
        assert!(parse_key("hello")
            .unwrap_err()
            .contains("not an age public key"));
        let k = key().to_string();
        assert_eq!(parse_key(&format!("  {k}\n")).unwrap().to_string(), k);
    }
}
