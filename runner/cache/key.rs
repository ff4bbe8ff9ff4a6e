//! The cache key: every input of the setup phase that can change what crosses, one digest
//! per part, so a miss can say which part changed ([`super::explain`]).
//!
//! Parts are named `image`, `setup`, `maintenance`, `persist`, `user`, `ca`, `env:NAME`,
//! `file:PATH` (a `key_files` entry; its digest is `absent` when the workspace has no such
//! file) and `secret:NAME`. A secret's part is an HMAC-SHA256 of its value under the cache
//! key file that lives beside the age identity ([`hmac_key`]): the labels the entry carries
//! reveal nothing about a value, and a changed value changes the key.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::environment::Environment;
use crate::secrets::SecretValue;

/// Bumped when what an entry holds or how it is restored changes.
pub const FORMAT: &str = "1";

/// The digest of each part of the key, by part name.
pub type Parts = BTreeMap<String, String>;

/// What the key is computed from (all known by the end of `prepare`).
pub struct Inputs<'a> {
    pub env: &'a Environment,
    pub image_id: &'a str,
    pub ca: &'a [(String, Vec<u8>)],
    pub secrets: &'a [(String, SecretValue)],
    /// The HMAC key for secret values; needed only when there are secrets.
    pub hmac_key: Option<&'a [u8]>,
    pub workspace: &'a Path,
}

/// The parts of the key.
pub fn parts(i: &Inputs<'_>) -> std::io::Result<Parts> {
    let env = i.env;
    let mut p = Parts::new();
    p.insert("format".into(), FORMAT.into());
    p.insert("image".into(), i.image_id.to_string());
    p.insert("setup".into(), digest(env.setup.as_deref().unwrap_or("")));
    p.insert(
        "maintenance".into(),
        digest(env.maintenance.as_deref().unwrap_or("")),
    );
    p.insert("persist".into(), digest(&env.persist.join("\n")));
    // What crosses is handed to the agent's user when the entry is made.
    p.insert("user".into(), digest(&env.agent.user));
    let mut ca = Sha256::new();
    for (name, pem) in i.ca {
        ca.update((name.len() as u64).to_le_bytes());
        ca.update(name.as_bytes());
        ca.update((pem.len() as u64).to_le_bytes());
        ca.update(pem);
    }
    p.insert("ca".into(), crate::hex::lower(&ca.finalize()));
    for (k, v) in &env.env {
        p.insert(format!("env:{k}"), digest(v));
    }
    if let Some(c) = &env.cache {
        for f in &c.key_files {
            let path = i.workspace.join(f);
            let d = match std::fs::read(&path) {
                Ok(bytes) => crate::hex::sha256(&bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "absent".into(),
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("cache.key_files: cannot read {}: {e}", path.display()),
                    ))
                }
            };
            p.insert(format!("file:{f}"), d);
        }
    }
    for (name, value) in i.secrets {
        let key = i.hmac_key.unwrap_or_default();
        p.insert(
            format!("secret:{name}"),
            crate::hex::lower(&hmac_sha256(key, value.expose_secret())),
        );
    }
    Ok(p)
}

/// The key: a digest of the parts and of the config root the entry belongs to (`scope`).
pub fn key(scope: &str, parts: &Parts) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    crate::hex::lower(&h.finalize())
}

/// A short name for a config root, so two roots on one engine never share entries.
pub fn scope(root_dir: &Path) -> String {
    let dir = root_dir
        .canonicalize()
        .unwrap_or_else(|_| root_dir.to_path_buf());
    crate::hex::sha256(dir.as_os_str().as_encoded_bytes())[..16].to_string()
}

fn digest(text: &str) -> String {
    crate::hex::sha256(text.as_bytes())
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// Where the HMAC key lives: beside the identity file (`cache.key`).
pub fn hmac_key_path(identity: &Path) -> PathBuf {
    identity
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("cache.key")
}

/// The HMAC key beside `identity`, made on first use (32 random bytes, hex, mode 0600).
pub fn hmac_key(identity: &Path) -> std::io::Result<Vec<u8>> {
    let path = hmac_key_path(identity);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let bytes: [u8; 32] = rand::random();
    let text = crate::hex::lower(&bytes);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(format!("{text}\n").as_bytes())?;
            f.sync_all()?;
            Ok(text.into_bytes())
        }
        // Another run made it at the same moment: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            crate::hex::lower(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            crate::hex::lower(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_key_depends_on_every_part_and_the_scope() {
        let mut p = Parts::new();
        p.insert("setup".into(), "a".into());
        let k = key("root1", &p);
        assert_ne!(k, key("root2", &p));
        p.insert("env:A".into(), "b".into());
        assert_ne!(k, key("root1", &p));
        // A part's name and value can't be shifted into each other.
        let mut q = Parts::new();
        q.insert("ab".into(), "c".into());
        let mut r = Parts::new();
        r.insert("a".into(), "bc".into());
        assert_ne!(key("s", &q), key("s", &r));
    }

    #[test]
    fn the_hmac_key_is_made_once_with_mode_600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("sub/identity.txt");
        let a = hmac_key(&id).unwrap();
        let b = hmac_key(&id).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(hmac_key_path(&id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
