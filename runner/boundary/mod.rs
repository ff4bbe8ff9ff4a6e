//! The boundary between the setup and the agent phase.
//!
//! After the setup container has stopped, and before anything of it reaches the agent
//! phase, [`check`] reads everything that will cross, once, as one tar stream from the
//! engine's archive API: the workspace, its `.git`, each `persist` path and the
//! `$AIRLOCK_ENV` file, side by side under [`CROSSING_DIR`] (the setup container mounts each
//! volume there a second time; the engine mounts them afresh for the read, so the setup
//! script can move or fake that folder but not make the read miss a volume). Every entry
//! passes the path checks ([`paths`]: nothing escapes its root, no devices or fifos) and every
//! byte (contents, file names, symlink targets, variable names and values) passes the leak
//! check ([`crate::scan`]). A hit refuses the run, naming the secret and the place, never the
//! value. The files themselves cross in the run's volumes, which the agent phase mounts:
//! nothing is copied twice.

pub mod envfile;
pub mod git;
pub mod paths;
pub mod sweep;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The message names `$AIRLOCK_ENV` itself.
    #[error("the boundary refused the run: {0}")]
    EnvFile(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("reading {root} from the setup container: {message}")]
    Read { root: String, message: String },
}

/// Where the setup container shows everything that crosses, side by side: the
/// `$AIRLOCK_ENV` file ([`ENV_FILE`]) and every crossing volume, mounted there a second time
/// under its [`Root::alias`]. The engine mounts (and unmounts) a stopped container's
/// filesystem for each archive request, which costs tens of milliseconds whatever the
/// size; so one request reads it all.
pub const CROSSING_DIR: &str = "/airlock/crossing";
/// The `$AIRLOCK_ENV` file, as the setup script sees it.
pub const ENV_FILE: &str = "/airlock/crossing/env";
/// [`ENV_FILE`]'s name inside [`CROSSING_DIR`].
const ENV_NAME: &[u8] = b"env";

/// One tree that crosses in a volume of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Its name under [`CROSSING_DIR`] (`workspace`, `git`, `persist0`, ...).
    pub alias: String,
    /// Where both phases mount it (`/workspace`, `/workspace/.git`, a persist path).
    pub path: String,
    pub kind: RootKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    Workspace,
    /// The workspace's `.git`, in a volume of its own (read-only to the agent phase); it is
    /// reported as part of the workspace.
    Git,
    Persist,
}

impl Root {
    /// Where the setup container mounts it a second time, for the boundary to read.
    pub fn crossing_path(&self) -> String {
        format!("{CROSSING_DIR}/{}", self.alias)
    }
}

/// Where the agent phase would see `path`, a path under [`CROSSING_DIR`] (as the sweep
/// reports them): `/airlock/crossing/persist0/x` is `/opt/deps/x`.
pub fn agent_path(roots: &[Root], path: &[u8]) -> Vec<u8> {
    for root in roots {
        let crossing = root.crossing_path();
        if let Some(rest) = path.strip_prefix(crossing.as_bytes()) {
            if rest.is_empty() || rest.starts_with(b"/") {
                return [root.path.as_bytes(), rest].concat();
            }
        }
    }
    path.to_vec()
}

/// The trees that cross, in a fixed order: the workspace, its `.git` when it has one, then
/// each persist path.
pub fn roots(workspace: &str, has_git: bool, persist: &[String]) -> Vec<Root> {
    let mut roots = vec![Root {
        alias: "workspace".into(),
        path: workspace.into(),
        kind: RootKind::Workspace,
    }];
    if has_git {
        roots.push(Root {
            alias: "git".into(),
            path: format!("{workspace}/.git"),
            kind: RootKind::Git,
        });
    }
    roots.extend(persist.iter().enumerate().map(|(i, p)| Root {
        alias: format!("persist{i}"),
        path: p.clone(),
        kind: RootKind::Persist,
    }));
    roots
}

/// How far a check has got, for a progress display: entries seen, archive bytes read.
#[derive(Debug, Default)]
pub struct Tally {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
}

/// A reader that adds what passes through it to a [`Tally`].
struct Counting<R> {
    inner: R,
    tally: Arc<Tally>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tally.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
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

/// Check everything that would cross from the stopped setup container `setup_id`, which
/// mounted `roots` under [`CROSSING_DIR`]. `host_git` is the host workspace's `.git` (need
/// not exist): the git objects it has are not inflated again ([`git`]).
pub async fn check(
    engine: &dyn Engine,
    setup_id: &str,
    roots: &[Root],
    secrets: Arc<SecretSet>,
    env: &BTreeMap<String, String>,
    tally: Arc<Tally>,
    host_git: &std::path::Path,
) -> Result<Crossing, BoundaryError> {
    let clock = Instant::now();
    let reader = Counting {
        inner: blocking_reader(Box::pin(engine.download(setup_id, CROSSING_DIR))),
        tally: tally.clone(),
    };
    let scanner = secrets.clone();
    let owned = roots.to_vec();
    let host = git::HostObjects::new(host_git);
    let scanned =
        tokio::task::spawn_blocking(move || scan_crossing(reader, &owned, &scanner, &tally, &host))
            .await
            .map_err(|e| BoundaryError::Read {
                root: CROSSING_DIR.into(),
                message: e.to_string(),
            })??;
    if let Some(hit) = secrets.scan_bytes(&scanned.env) {
        let place = env_file_place(&scanned.env, &secrets);
        return Err(leak(hit, place));
    }
    let extra = envfile::parse(&scanned.env)
        .map_err(|e| BoundaryError::EnvFile(redacted(e.to_string().as_bytes(), &secrets)))?;
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
    Ok(Crossing {
        workspace: scanned.workspace,
        paths: scanned.paths,
        variables: vars,
        duration_ms: clock.elapsed().as_millis() as u64,
    })
}

fn leak(hit: Hit, location: String) -> BoundaryError {
    BoundaryError::Leak {
        secret: hit.secret,
        form: hit.form,
        location,
    }
}

/// What one read of [`CROSSING_DIR`] found.
#[derive(Debug)]
struct Scanned {
    workspace: Manifest,
    /// One per root but `.git`, which counts as part of the workspace.
    paths: Vec<CrossedPath>,
    env: Vec<u8>,
}

/// Scan the tar stream of [`CROSSING_DIR`]: path checks, leak check of names, link targets
/// and contents, the workspace's manifest, and the env file. Entries under names that are
/// not a root (the setup script may put anything there) are not volumes and don't cross:
/// they are skipped. Every root must be there as a folder: it is a mount point, so anything
/// else means the tree the engine mounted was not the one read, and the run is refused.
fn scan_crossing(
    reader: impl Read,
    roots: &[Root],
    secrets: &SecretSet,
    tally: &Tally,
    host: &git::HostObjects,
) -> Result<Scanned, BoundaryError> {
    let top = CROSSING_DIR.rsplit('/').next().unwrap_or(CROSSING_DIR);
    let read_err = |e: std::io::Error| BoundaryError::Read {
        root: CROSSING_DIR.into(),
        message: e.to_string(),
    };
    let unsafe_path = |location: String, why: String| BoundaryError::UnsafePath { location, why };
    // Where each root is counted: the workspace's own entry for `.git`.
    let mut slot = Vec::with_capacity(roots.len());
    let mut paths: Vec<CrossedPath> = Vec::new();
    for root in roots {
        if root.kind == RootKind::Git {
            slot.push(0);
        } else {
            slot.push(paths.len());
            paths.push(CrossedPath {
                path: root.path.clone(),
                files: 0,
                dirs: 0,
                symlinks: 0,
                bytes: 0,
            });
        }
    }
    let mut seen = vec![false; roots.len()];
    let mut manifest = Manifest::default();
    let mut env = Vec::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        tally.entries.fetch_add(1, Ordering::Relaxed);
        let raw_path = entry.path_bytes().into_owned();
        let kind = paths::tar_kind(entry.header().entry_type());
        if kind == paths::EntryKind::Metadata {
            continue;
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        // The whole path first: relative, under the top folder, no `..`, no special files,
        // hard links inside.
        // Refused for its type or place: named only redacted (the name may be the secret).
        let checked = paths::check_entry(top, &raw_path, kind, link.as_deref()).map_err(|e| {
            let reason = match e.reason {
                paths::Refusal::HardLinkTarget { target, why } => paths::Refusal::HardLinkTarget {
                    target: paths::EscapedName(redact(&target.0, secrets)),
                    why,
                },
                other => other,
            };
            unsafe_path(
                format!("{CROSSING_DIR}: {}", redacted(&e.entry.0, secrets)),
                reason.to_string(),
            )
        })?;
        let mut parts = checked.path.as_bytes().splitn(2, |&b| b == b'/');
        let name = parts.next().unwrap_or_default();
        let rel = parts.next().unwrap_or_default().to_vec();
        if name.is_empty() {
            if kind != paths::EntryKind::Dir {
                return Err(unsafe_path(CROSSING_DIR.into(), "is not a folder".into()));
            }
            continue;
        }
        if name == ENV_NAME {
            if !rel.is_empty() {
                continue; // under an `env` that is a folder: refused at its own entry
            }
            env = read_env_entry(&mut entry, kind).map_err(|e| match e {
                EnvRead::Io(e) => read_err(e),
                EnvRead::Refused(why) => BoundaryError::EnvFile(why),
            })?;
            continue;
        }
        let Some(i) = roots.iter().position(|r| r.alias.as_bytes() == name) else {
            continue; // not a volume: stays behind
        };
        let root = &roots[i];
        let crossed = &mut paths[slot[i]];
        if rel.is_empty() {
            if kind != paths::EntryKind::Dir {
                return Err(unsafe_path(
                    root.path.clone(),
                    "is not a folder where the boundary reads it".into(),
                ));
            }
            seen[i] = true;
            continue;
        }
        let shown = display_path(&root.path, &rel, secrets);
        if let Some(hit) = secrets.scan_bytes(&raw_path) {
            return Err(leak(hit, format!("the name of {shown}")));
        }
        if let Some(target) = &link {
            if let Some(hit) = secrets.scan_bytes(target) {
                return Err(leak(hit, format!("the link target of {shown}")));
            }
        }
        let want_manifest = root.kind == RootKind::Workspace;
        match kind {
            paths::EntryKind::Dir => {
                crossed.dirs += 1;
                if want_manifest {
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
                // A git object the host did not have is scanned inflated too.
                let objects = host.new_objects(root.kind, &rel, reader.inner.size());
                if let Some((hit, how)) =
                    git::scan(objects, &mut reader, secrets).map_err(read_err)?
                {
                    return Err(leak(hit, format!("file {shown}{how}")));
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
                // Inside the top folder (checked above), and inside this root: each root
                // is a volume of its own, so a link between two would be forged.
                let target = match &checked.link {
                    Some(paths::Link::HardLink(t)) => t.as_bytes(),
                    _ => &[][..],
                };
                let target_rel = target
                    .strip_prefix(name)
                    .and_then(|t| t.strip_prefix(b"/"))
                    .ok_or_else(|| {
                        unsafe_path(
                            shown.clone(),
                            format!(
                                "is a hard link to `{}`, outside {}",
                                redacted(target, secrets),
                                root.path
                            ),
                        )
                    })?;
                if want_manifest {
                    if let Some(e) = manifest.entries.get(target_rel).cloned() {
                        manifest.entries.insert(rel, e);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(unsafe_path(
            roots[i].path.clone(),
            "was not found where the boundary reads it".into(),
        ));
    }
    Ok(Scanned {
        workspace: manifest,
        paths,
        env,
    })
}

enum EnvRead {
    Io(std::io::Error),
    Refused(String),
}

/// The `$AIRLOCK_ENV` file's bytes: a plain file of at most [`ENV_FILE_MAX`] bytes.
fn read_env_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    kind: paths::EntryKind,
) -> Result<Vec<u8>, EnvRead> {
    if kind != paths::EntryKind::File {
        return Err(EnvRead::Refused("$AIRLOCK_ENV is not a plain file".into()));
    }
    if entry.size() > ENV_FILE_MAX {
        return Err(EnvRead::Refused(format!(
            "$AIRLOCK_ENV is {} bytes; at most {ENV_FILE_MAX} may cross",
            entry.size()
        )));
    }
    let mut data = Vec::new();
    entry
        .take(ENV_FILE_MAX)
        .read_to_end(&mut data)
        .map_err(EnvRead::Io)?;
    Ok(data)
}

/// Where in the `$AIRLOCK_ENV` file a secret value was found, for the refusal: the variable
/// whose name or value holds it (a user with thirty lines wants to know which), else the
/// line. A name that is itself the secret is shown redacted.
fn env_file_place(bytes: &[u8], secrets: &SecretSet) -> String {
    if let Ok(vars) = envfile::parse(bytes) {
        for (name, value) in &vars {
            if secrets.scan_bytes(name.as_bytes()).is_some() {
                return format!(
                    "the $AIRLOCK_ENV file, in the name of variable `{}`",
                    redacted(name.as_bytes(), secrets)
                );
            }
            if secrets.scan_bytes(value.as_bytes()).is_some() {
                return format!("the $AIRLOCK_ENV file, in the value of `{name}`");
            }
        }
    }
    match bytes
        .split(|&b| b == b'\n')
        .position(|line| secrets.scan_bytes(line).is_some())
    {
        Some(i) => format!("the $AIRLOCK_ENV file, line {}", i + 1),
        None => "the $AIRLOCK_ENV file".into(),
    }
}

/// Text for a message: redacted, then escaped. Every name, link target or value from what
/// crosses passes here before it reaches a message or the record, whatever check refused it.
pub(crate) fn redacted(bytes: &[u8], secrets: &SecretSet) -> String {
    paths::escape(&redact(bytes, secrets))
}

fn redact(bytes: &[u8], secrets: &SecretSet) -> Vec<u8> {
    let mut redactor = secrets.redactor();
    let mut clean = redactor.push(bytes);
    clean.extend(redactor.finish());
    clean
}

/// A path for messages: redacted (a file name may itself hold the secret), then escaped by
/// the one escaper for names in messages ([`paths::escape`]).
fn display_path(root: &str, rel: &[u8], secrets: &SecretSet) -> String {
    format!("{root}/{}", redacted(rel, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret-value-for-tests";

    /// A tar of `/airlock/crossing` as the engine would send it: (name, kind, data or link).
    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            match *kind {
                tar::EntryType::Link | tar::EntryType::Symlink => {
                    h.set_size(0);
                    b.append_link(&mut h, name, std::str::from_utf8(data).unwrap())
                        .unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, name, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn scan(entries: &[(&str, tar::EntryType, &[u8])]) -> Result<Scanned, BoundaryError> {
        let set = SecretSet::new(&[("TOKEN", SECRET)]);
        let roots = roots("/workspace", true, &["/opt/deps".to_string()]);
        let host = git::HostObjects::new("/nonexistent/.git");
        scan_crossing(
            &archive(entries)[..],
            &roots,
            &set,
            &Tally::default(),
            &host,
        )
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F};

    fn base() -> Vec<(&'static str, tar::EntryType, &'static [u8])> {
        vec![
            ("crossing/", D, b""),
            ("crossing/env", F, b"A=1\n"),
            ("crossing/workspace/", D, b""),
            ("crossing/workspace/a.txt", F, b"hello"),
            ("crossing/git/", D, b""),
            ("crossing/git/HEAD", F, b"ref: refs/heads/main\n"),
            ("crossing/persist0/", D, b""),
            ("crossing/persist0/lib", F, b"dep"),
        ]
    }

    #[test]
    fn reads_every_root_and_the_env_file_in_one_stream() {
        let s = scan(&base()).unwrap();
        assert_eq!(s.env, b"A=1\n");
        assert_eq!(s.paths.len(), 2, "git counts as part of the workspace");
        assert_eq!(
            (s.paths[0].path.as_str(), s.paths[0].files),
            ("/workspace", 2)
        );
        assert_eq!(
            (s.paths[1].path.as_str(), s.paths[1].files),
            ("/opt/deps", 1)
        );
        assert!(s.workspace.entries.contains_key(&b"a.txt"[..]));
        assert!(!s.workspace.entries.keys().any(|k| k.starts_with(b"HEAD")));
    }

    #[test]
    fn a_secret_in_git_is_named_at_its_real_path() {
        let mut e = base();
        e.push(("crossing/git/config", F, SECRET));
        match scan(&e) {
            Err(BoundaryError::Leak { location, .. }) => {
                assert_eq!(location, "file /workspace/.git/config")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_is_beside_the_roots_is_skipped_not_scanned() {
        let mut e = base();
        e.push(("crossing/notes.txt", F, SECRET));
        e.push(("crossing/extra/", D, b""));
        e.push(("crossing/extra/f", F, SECRET));
        assert!(scan(&e).is_ok());
    }

    #[test]
    fn a_missing_or_replaced_root_refuses() {
        let missing: Vec<_> = base()
            .into_iter()
            .filter(|(n, _, _)| !n.starts_with("crossing/persist0"))
            .collect();
        let err = scan(&missing).unwrap_err().to_string();
        assert!(err.contains("/opt/deps was not found"), "{err}");

        let mut swapped = missing.clone();
        swapped.push(("crossing/persist0", tar::EntryType::Symlink, b"/elsewhere"));
        let err = scan(&swapped).unwrap_err().to_string();
        assert!(err.contains("/opt/deps is not a folder"), "{err}");

        let mut top = vec![("crossing", tar::EntryType::Symlink, &b"/x"[..])];
        top.extend(base().into_iter().skip(1));
        let err = scan(&top).unwrap_err().to_string();
        assert!(err.contains("/airlock/crossing is not a folder"), "{err}");
    }

    #[test]
    fn a_hard_link_between_two_roots_refuses() {
        let mut e = base();
        e.push(("crossing/workspace/alias", L, b"crossing/persist0/lib"));
        let err = scan(&e).unwrap_err().to_string();
        assert!(err.contains("outside /workspace"), "{err}");
        let mut ok = base();
        ok.push(("crossing/workspace/alias", L, b"crossing/workspace/a.txt"));
        let s = scan(&ok).unwrap();
        assert!(s.workspace.entries.contains_key(&b"alias"[..]));
    }

    #[test]
    fn a_secret_in_the_env_file_is_placed_at_its_variable_or_line() {
        let set = SecretSet::new(&[("TOKEN", SECRET)]);
        let secret = std::str::from_utf8(SECRET).unwrap();
        let file = format!("A=1\nB=x{secret}y\nC=3\n");
        assert_eq!(
            env_file_place(file.as_bytes(), &set),
            "the $AIRLOCK_ENV file, in the value of `B`"
        );
        let heredoc = format!("A=1\nM<<EOF\none\n{secret}\nEOF\n");
        assert_eq!(
            env_file_place(heredoc.as_bytes(), &set),
            "the $AIRLOCK_ENV file, in the value of `M`"
        );
        // Not parseable: the line, and never the value.
        let bad = format!("A=1\nnot an assignment\n{secret}\n");
        assert_eq!(
            env_file_place(bad.as_bytes(), &set),
            "the $AIRLOCK_ENV file, line 3"
        );
    }

    #[test]
    fn a_refusal_never_names_the_secret() {
        let secret = std::str::from_utf8(SECRET).unwrap();
        let fifo = format!("crossing/workspace/fifo-{secret}");
        let dev = format!("crossing/persist0/dev-{secret}");
        let link = format!("crossing/workspace/link-{secret}");
        let outside = format!("crossing/persist0/lib-{secret}");
        for (name, kind, data) in [
            (fifo.as_str(), tar::EntryType::Fifo, &b""[..]),
            (dev.as_str(), tar::EntryType::Char, b""),
            (link.as_str(), L, outside.as_bytes()),
            (
                "crossing/workspace/l2",
                L,
                format!("../../{secret}").as_bytes(),
            ),
        ] {
            let mut e = base();
            if kind == L && data.starts_with(b"crossing/persist0") {
                e.push((outside.as_str(), F, b"x"));
            }
            e.push((name, kind, data));
            let err = scan(&e).unwrap_err().to_string();
            assert!(!err.contains(secret), "{err}");
            assert!(err.contains("[redacted:TOKEN]"), "{err}");
        }
    }

    #[test]
    fn the_env_file_must_be_a_small_plain_file() {
        let mut e = base();
        e[1] = ("crossing/env", tar::EntryType::Symlink, b"/etc/passwd");
        assert!(scan(&e)
            .unwrap_err()
            .to_string()
            .contains("not a plain file"));
        let big = vec![b'x'; ENV_FILE_MAX as usize + 1];
        let mut e = base();
        e[1] = ("crossing/env", F, &big);
        assert!(scan(&e).unwrap_err().to_string().contains("at most"));
    }
}
