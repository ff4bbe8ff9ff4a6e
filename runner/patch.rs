//! The agent phase's workspace changes as a git patch.
//!
//! What changed is found by comparing manifests: the workspace as it crossed the boundary
//! against the workspace when the agent phase ended. Paths the workspace's `.gitignore` rules
//! ignore (build output, dependency folders) and anything under a `.git` folder are left out.
//! The patch itself is made by git, in a private staging repository: the *original* host
//! versions of the changed paths are committed as one tree, the agent's final versions as
//! another, and `git diff --binary -M` between them gives new, deleted, renamed, binary and
//! mode changes in the form `git apply` takes, against the original workspace.
//! Symlinks are written into the staging tree as links and never followed.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::boundary::paths;
use crate::engine::Engine;
use crate::workspace::{blocking_reader, manifest_of_tar, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("making the patch: {0}")]
    Io(#[from] std::io::Error),
    #[error("making the patch: git {args} failed: {stderr}\n  fix: airlock needs git on the host to write changes.patch (apt-get install git)")]
    Git { args: String, stderr: String },
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// The patch and what it covers.
#[derive(Debug, Default)]
pub struct Patch {
    pub bytes: Vec<u8>,
    pub files: Vec<String>,
}

/// Paths in `before` (the original workspace) that `after` (the boundary) changed or removed.
pub fn changed_by_setup(original: &Manifest, boundary: &Manifest) -> Vec<String> {
    original
        .entries
        .iter()
        .filter(|(p, e)| !matches!(e, crate::workspace::Entry::Dir) && !has_git_component(p))
        .filter(|(p, e)| boundary.entries.get(*p) != Some(e))
        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

fn has_git_component(p: &[u8]) -> bool {
    p.split(|&b| b == b'/').any(|c| c == b".git")
}

/// Build the patch of the stopped agent container `agent_id` against the original workspace.
pub async fn build(
    engine: &Engine,
    agent_id: &str,
    workspace: &str,
    original: &Path,
    boundary: &Manifest,
) -> Result<Patch, PatchError> {
    let root_name = workspace
        .rsplit('/')
        .next()
        .unwrap_or("workspace")
        .to_string();
    let reader = blocking_reader(Box::pin(engine.download(agent_id, workspace)));
    let rn = root_name.clone();
    let after = tokio::task::spawn_blocking(move || manifest_of_tar(reader, &rn))
        .await
        .map_err(std::io::Error::other)??;
    let mut changed: Vec<Vec<u8>> = boundary
        .changed(&after)
        .into_iter()
        .filter(|p| !has_git_component(p))
        .collect();
    changed = drop_ignored(original, changed)?;
    if changed.is_empty() {
        return Ok(Patch::default());
    }
    let staging = tempfile::Builder::new()
        .prefix("airlock-patch-")
        .tempdir()?;
    let git = StagingGit::new(staging.path())?;
    // The "before" tree: the original host versions of the changed paths.
    for p in &changed {
        copy_original(original, &git.tree, p)?;
    }
    let before = git.snapshot()?;
    std::fs::remove_dir_all(&git.tree)?;
    std::fs::create_dir(&git.tree)?;
    // The "after" tree: the agent's final versions.
    let wanted: BTreeSet<Vec<u8>> = changed.iter().cloned().collect();
    let reader = blocking_reader(Box::pin(engine.download(agent_id, workspace)));
    let tree = git.tree.clone();
    tokio::task::spawn_blocking(move || extract(reader, &root_name, &wanted, &tree))
        .await
        .map_err(std::io::Error::other)??;
    let after_tree = git.snapshot()?;
    let bytes = git.run(&[
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--binary",
        "--full-index",
        "-M",
        &before,
        &after_tree,
    ])?;
    Ok(Patch {
        bytes,
        files: changed
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    })
}

/// Drop paths the workspace's own ignore rules ignore (only when it is a git work tree).
fn drop_ignored(original: &Path, paths: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, PatchError> {
    let inside = Command::new("git")
        .arg("-C")
        .arg(original)
        .args(["rev-parse", "--is-inside-work-tree"])
        .stderr(Stdio::null())
        .output();
    if !matches!(&inside, Ok(o) if o.status.success() && o.stdout.starts_with(b"true")) {
        return Ok(paths);
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(original)
        .args(["check-ignore", "-z", "--stdin"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut input = Vec::new();
    for p in &paths {
        input.extend_from_slice(p);
        input.push(0);
    }
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut out)?;
    child.wait()?;
    let _ = writer.join();
    let ignored: BTreeSet<&[u8]> = out.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    Ok(paths
        .into_iter()
        .filter(|p| !ignored.contains(p.as_slice()))
        .collect())
}

/// A throwaway repository whose work tree is the staging folder, isolated from the user's
/// git configuration.
struct StagingGit {
    dir: PathBuf,
    tree: PathBuf,
}

impl StagingGit {
    fn new(staging: &Path) -> Result<Self, PatchError> {
        let g = StagingGit {
            dir: staging.join("git"),
            tree: staging.join("tree"),
        };
        std::fs::create_dir(&g.tree)?;
        let out = Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&g.dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()?;
        if !out.status.success() {
            return Err(PatchError::Git {
                args: "init".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(g)
    }

    /// Stage the whole tree (ignore rules off: `-f`) and return its tree id.
    fn snapshot(&self) -> Result<String, PatchError> {
        self.run(&["add", "-A", "-f", "."])?;
        let id = self.run(&["write-tree"])?;
        Ok(String::from_utf8_lossy(&id).trim().to_string())
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>, PatchError> {
        let out = Command::new("git")
            .arg(format!("--git-dir={}", self.dir.display()))
            .arg(format!("--work-tree={}", self.tree.display()))
            .args([
                "-c",
                "core.autocrlf=false",
                "-c",
                "core.symlinks=true",
                "-c",
                "core.filemode=true",
                "-c",
                "core.quotepath=true",
            ])
            .args(args)
            .current_dir(&self.tree)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(PatchError::Git {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }
}

/// Make the parent folders of `rel` under `base`, refusing to pass through a symlink.
fn safe_parent(base: &Path, rel: &Path) -> std::io::Result<PathBuf> {
    let mut here = base.to_path_buf();
    if let Some(parent) = rel.parent() {
        for comp in parent.components() {
            here.push(comp);
            match std::fs::symlink_metadata(&here) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(std::io::Error::other(format!(
                        "{} is not a folder",
                        here.display()
                    )))
                }
                Err(_) => std::fs::create_dir(&here)?,
            }
        }
    }
    Ok(base.join(rel))
}

fn copy_original(original: &Path, tree: &Path, rel: &[u8]) -> std::io::Result<()> {
    let rel = Path::new(std::ffi::OsStr::from_bytes(rel));
    // Never follow a symlink in the original workspace either: each parent must be a folder.
    let mut src = original.to_path_buf();
    if let Some(parent) = rel.parent() {
        for comp in parent.components() {
            src.push(comp);
            match std::fs::symlink_metadata(&src) {
                Ok(m) if m.is_dir() => {}
                _ => return Ok(()), // not in the original: a new path
            }
        }
    }
    let src = original.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&src) else {
        return Ok(());
    };
    let dst = safe_parent(tree, rel)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
    } else if meta.is_file() {
        std::fs::copy(&src, &dst)?;
        std::fs::set_permissions(
            &dst,
            std::fs::Permissions::from_mode(meta.permissions().mode() & 0o777),
        )?;
    }
    Ok(())
}

fn extract(
    reader: impl Read,
    root_name: &str,
    wanted: &BTreeSet<Vec<u8>>,
    tree: &Path,
) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let kind = paths::tar_kind(entry.header().entry_type());
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let Ok(checked) = paths::check_entry(root_name, &raw, kind, link.as_deref()) else {
            continue;
        };
        let rel = checked.path.as_bytes().to_vec();
        if !wanted.contains(&rel) {
            continue;
        }
        let dst = safe_parent(tree, Path::new(std::ffi::OsStr::from_bytes(&rel)))?;
        match kind {
            paths::EntryKind::File => {
                let mode = entry.header().mode().unwrap_or(0o644);
                let mut f = std::fs::File::create(&dst)?;
                std::io::copy(&mut entry, &mut f)?;
                std::fs::set_permissions(
                    &dst,
                    std::fs::Permissions::from_mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 }),
                )?;
            }
            paths::EntryKind::Symlink => {
                std::os::unix::fs::symlink(
                    std::ffi::OsStr::from_bytes(&link.unwrap_or_default()),
                    &dst,
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `git apply` confined to the workspace. Without the ceiling, a workspace that is a folder
/// inside a larger repository makes git read the patch's paths from the repository's top and
/// silently skip every one outside the current folder: a "successful" apply that wrote
/// nothing. With it, git finds the workspace's own `.git` if it has one and otherwise works
/// like `patch`, relative to the workspace.
fn git_apply(workspace: &Path) -> Command {
    let mut git = Command::new("git");
    git.arg("apply")
        .current_dir(workspace)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    if let Some(parent) = workspace.parent() {
        git.env("GIT_CEILING_DIRECTORIES", parent);
    }
    git
}

/// Apply a patch to the host workspace with `git apply` (which refuses paths outside the
/// tree and writes through no symlink), after checking that it touches no `.git` folder.
pub fn apply(workspace: &Path, patch_file: &Path) -> Result<(), PatchError> {
    let workspace = &std::path::absolute(workspace)?;
    let numstat = git_apply(workspace)
        .arg("--numstat")
        .arg("-z")
        .arg(patch_file)
        .output()?;
    if !numstat.status.success() {
        return Err(PatchError::Git {
            args: "apply --numstat".into(),
            stderr: String::from_utf8_lossy(&numstat.stderr).into(),
        });
    }
    for field in numstat.stdout.split(|&b| b == 0) {
        let path = field.rsplit(|&b| b == b'\t').next().unwrap_or(field);
        if has_git_component(path)
            || path.starts_with(b"/")
            || path.split(|&b| b == b'/').any(|c| c == b"..")
        {
            return Err(PatchError::Git {
                args: "apply".into(),
                stderr: format!(
                    "refused: the patch touches {}, which --apply never writes",
                    String::from_utf8_lossy(path)
                ),
            });
        }
    }
    let out = git_apply(workspace)
        .arg("--whitespace=nowarn")
        .arg(patch_file)
        .output()?;
    if !out.status.success() {
        return Err(PatchError::Git {
            args: "apply".into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
