//! The boundary between the setup and the agent phase.
//!
//! After the setup container has stopped, and before anything of it reaches the agent
//! phase, [`check`] reads everything that will cross, once, as tar streams from the engine's
//! archive API: the workspace, each `persist` path, and the `$AIRLOCK_ENV` file. Every entry
//! passes the path checks ([`paths`]: nothing escapes its root, no devices or fifos) and every
//! byte (contents, file names, symlink targets, variable names and values) passes the leak
//! check ([`crate::scan`]). A hit refuses the run, naming the secret and the place, never the
//! value. The files themselves cross in the run's volumes, which the agent phase mounts:
//! nothing is copied twice.

pub mod envfile;
pub mod paths;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::{Engine, EngineError};
use crate::record::CrossedPath;
use crate::scan::{Hit, SecretSet};
use crate::workspace::{blocking_reader, Entry, Hasher, HashingReader, Manifest};

/// The most `$AIRLOCK_ENV` may hold.
pub const ENV_FILE_MAX: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BoundaryError {
    #[error("the boundary refused the run: secret {secret} ({form} form) found in {location}\n  the agent phase did not start. fix: make the setup script keep the secret out of what crosses (the workspace, persist paths, $AIRLOCK_ENV), e.g. pass it on the command line of the one tool that needs it, or configure that tool outside the workspace")]
    Leak {
        secret: String,
        form: &'static str,
        location: String,
    },
    #[error("the boundary refused the run: {location} {why}\n  only plain files, folders and symlinks that stay inside their root may cross")]
    UnsafePath { location: String, why: String },
    #[error("the boundary refused the run: $AIRLOCK_ENV {0}")]
    EnvFile(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("reading {root} from the setup container: {message}")]
    Read { root: String, message: String },
}

/// What crossed.
#[derive(Debug, Default)]
pub struct Crossing {
    /// The workspace as the agent phase starts with it.
    pub workspace: Manifest,
    pub paths: Vec<CrossedPath>,
    /// Variables for the agent phase: the environment's, then `$AIRLOCK_ENV`'s.
    pub variables: Vec<(String, String)>,
    pub duration_ms: u64,
}

/// Check everything that would cross from the stopped setup container `setup_id`.
pub async fn check(
    engine: &Engine,
    setup_id: &str,
    workspace: &str,
    persist: &[String],
    secrets: Arc<SecretSet>,
    env: &BTreeMap<String, String>,
    env_file: &str,
) -> Result<Crossing, BoundaryError> {
    let clock = Instant::now();
    let mut crossing = Crossing::default();
    for (i, root) in std::iter::once(workspace)
        .chain(persist.iter().map(String::as_str))
        .enumerate()
    {
        let reader = blocking_reader(Box::pin(engine.download(setup_id, root)));
        let secrets = secrets.clone();
        let root_owned = root.to_string();
        let want_manifest = i == 0;
        let (crossed, manifest) = tokio::task::spawn_blocking(move || {
            scan_tree(reader, &root_owned, &secrets, want_manifest)
        })
        .await
        .map_err(|e| BoundaryError::Read {
            root: root.to_string(),
            message: e.to_string(),
        })??;
        if want_manifest {
            crossing.workspace = manifest;
        }
        crossing.paths.push(crossed);
    }

    let env_bytes = read_env_file(engine, setup_id, env_file).await?;
    if let Some(hit) = secrets.scan_bytes(&env_bytes) {
        return Err(leak(hit, "the $AIRLOCK_ENV file".into()));
    }
    let extra = envfile::parse(&env_bytes).map_err(|e| BoundaryError::EnvFile(e.to_string()))?;
    let mut vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != &k);
        vars.push((k, v));
    }
    for (k, v) in &vars {
        if let Some(hit) = secrets
            .scan_bytes(k.as_bytes())
            .or_else(|| secrets.scan_bytes(v.as_bytes()))
        {
            return Err(leak(hit, format!("variable {k}")));
        }
    }
    crossing.variables = vars;
    crossing.duration_ms = clock.elapsed().as_millis() as u64;
    Ok(crossing)
}

fn leak(hit: Hit, location: String) -> BoundaryError {
    BoundaryError::Leak {
        secret: hit.secret,
        form: hit.form,
        location,
    }
}

/// Scan one root's tar stream: path checks, leak check of names, link targets and contents,
/// and (for the workspace) its manifest.
fn scan_tree(
    reader: impl Read,
    root: &str,
    secrets: &SecretSet,
    want_manifest: bool,
) -> Result<(CrossedPath, Manifest), BoundaryError> {
    let root_name = root.rsplit('/').next().unwrap_or(root).to_string();
    let read_err = |e: std::io::Error| BoundaryError::Read {
        root: root.to_string(),
        message: e.to_string(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut crossed = CrossedPath {
        path: root.to_string(),
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
    };
    let mut manifest = Manifest::default();
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw_path = entry.path_bytes().into_owned();
        let kind = paths::tar_kind(entry.header().entry_type());
        if kind == paths::EntryKind::Metadata {
            continue;
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let checked =
            paths::check_entry(&root_name, &raw_path, kind, link.as_deref()).map_err(|e| {
                BoundaryError::UnsafePath {
                    location: format!("{root}: {}", e.entry),
                    why: e.reason.to_string(),
                }
            })?;
        let rel = checked.path.as_bytes().to_vec();
        let shown = display_path(root, &rel, secrets);
        if let Some(hit) = secrets.scan_bytes(&raw_path) {
            return Err(leak(hit, format!("the name of {shown}")));
        }
        if let Some(target) = &link {
            if let Some(hit) = secrets.scan_bytes(target) {
                return Err(leak(hit, format!("the link target of {shown}")));
            }
        }
        match kind {
            paths::EntryKind::Dir => {
                crossed.dirs += 1;
                if want_manifest && !rel.is_empty() {
                    manifest.entries.insert(rel, Entry::Dir);
                }
            }
            paths::EntryKind::Symlink => {
                crossed.symlinks += 1;
                if want_manifest {
                    manifest.entries.insert(
                        rel,
                        Entry::Symlink {
                            target: link.unwrap_or_default(),
                        },
                    );
                }
            }
            paths::EntryKind::File => {
                crossed.files += 1;
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                let mut reader = HashingReader {
                    inner: &mut entry,
                    hasher: Hasher::default(),
                    bytes: 0,
                };
                if let Some(hit) = secrets.scan_reader(&mut reader).map_err(read_err)? {
                    return Err(leak(hit, format!("file {shown}")));
                }
                std::io::copy(&mut reader, &mut std::io::sink()).map_err(read_err)?;
                crossed.bytes += reader.bytes;
                if want_manifest {
                    manifest.entries.insert(
                        rel,
                        Entry::File {
                            size: reader.bytes,
                            hash: reader.hasher.finish(),
                            executable,
                        },
                    );
                }
            }
            paths::EntryKind::HardLink => {
                crossed.files += 1;
                let target_rel = match &checked.link {
                    Some(paths::Link::HardLink(t)) => t.as_bytes().to_vec(),
                    _ => Vec::new(),
                };
                if want_manifest {
                    if let Some(e) = manifest.entries.get(&target_rel).cloned() {
                        manifest.entries.insert(rel, e);
                    }
                }
            }
            _ => {}
        }
    }
    Ok((crossed, manifest))
}

/// A path for messages: redacted (a file name may itself hold the secret) and with control
/// characters escaped.
fn display_path(root: &str, rel: &[u8], secrets: &SecretSet) -> String {
    let mut redactor = secrets.redactor();
    let mut clean = redactor.push(rel);
    clean.extend(redactor.finish());
    let mut out = Vec::new();
    crate::console::sanitize_into(&clean, &mut out);
    format!("{root}/{}", String::from_utf8_lossy(&out))
}

async fn read_env_file(
    engine: &Engine,
    setup_id: &str,
    path: &str,
) -> Result<Vec<u8>, BoundaryError> {
    let reader = blocking_reader(Box::pin(engine.download(setup_id, path)));
    let root = path.to_string();
    tokio::task::spawn_blocking(move || {
        let read_err = |e: std::io::Error| BoundaryError::Read {
            root: root.clone(),
            message: e.to_string(),
        };
        let mut archive = tar::Archive::new(reader);
        if let Some(entry) = archive.entries().map_err(read_err)?.next() {
            let entry = entry.map_err(read_err)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(BoundaryError::EnvFile("is not a plain file".into()));
            }
            if entry.size() > ENV_FILE_MAX {
                return Err(BoundaryError::EnvFile(format!(
                    "is {} bytes; at most {ENV_FILE_MAX} may cross",
                    entry.size()
                )));
            }
            let mut data = Vec::new();
            entry
                .take(ENV_FILE_MAX)
                .read_to_end(&mut data)
                .map_err(read_err)?;
            return Ok(data);
        }
        Ok(Vec::new())
    })
    .await
    .map_err(|e| BoundaryError::Read {
        root: path.to_string(),
        message: e.to_string(),
    })?
}
