//! The agent phase's workspace changes as a git patch.
//!
//! What changed is found by comparing manifests: the workspace as it crossed the boundary
//! against the workspace when the agent phase ended. Paths the workspace's `.gitignore` rules
//! ignore (build output, dependency folders) and anything under a `.git` folder are left out.
//! The patch itself is made by git, in a private staging repository: the *original* host
//! versions of the changed paths are committed as one tree, the agent's final versions as
//! another, and `git diff --binary -M` between them gives new, deleted, renamed, binary and
//! mode changes in the form `git apply` takes, against the original workspace.
//! Symlinks are written into the staging tree as links and never followed, and no
//! `.gitattributes` in the tree changes what is staged or how it is shown. A hard link (the
//! agent phase may make them: `ln`, `cp -l`) is written as a copy of the file it links to,
//! so the patch shows the linked path with that content; the engine's archive sends only the
//! first path of a linked file with data, so a link whose target is unchanged takes a second
//! read of the archive to fetch it.
//!
//! [`apply`] is `--apply`: it refuses a patch that touches a `.git` folder or names a path
//! outside the workspace before `git apply` writes anything, and runs `git apply` as a plain
//! patch tool rooted at the workspace (never at an enclosing repository's top level, which
//! would make it skip every path silently when the workspace is a subfolder of a repository).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::boundary::paths;
use crate::engine::Engine;
use crate::trusted::Trusted;
use crate::workspace::{blocking_reader, manifest_of_tar, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("making the patch: {0}")]
    Io(#[from] std::io::Error),
    #[error("making the patch: git {args} failed: {stderr}\n  fix: airlock needs git on the host to write changes.patch (apt-get install git)")]
    Git { args: String, stderr: String },
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("the agent phase's changed files hold {} (the largest: {largest}, {}), more than limits.output_size ({}); nothing was copied back and there is no patch\n  fix: raise limits.output_size in the environment, or have the command write large output outside the workspace (e.g. /tmp, which never comes back)", crate::environment::show_size(*bytes), crate::environment::show_size(*largest_bytes), crate::environment::show_size(*limit))]
    TooLarge {
        bytes: u64,
        limit: u64,
        largest: String,
        largest_bytes: u64,
    },
    #[error("refused to apply {}: it touches `{path}`, and --apply never writes under a .git folder, into .airlock/, outside the workspace, or to what a later setup phase trusts (envs/, images/, secrets/, schedules/, .envrc, CI definitions) unless named with --apply-trusted PATH\n  fix: read the patch and apply what you want of it by hand", patch.display())]
    Refused { patch: PathBuf, path: String },
    #[error("git apply could not apply {} to {}:\n{stderr}\n  fix: did the workspace change while the run ran? the patch is kept: apply it by hand (git apply --3way PATCH)", patch.display(), workspace.display())]
    Apply {
        patch: PathBuf,
        workspace: PathBuf,
        stderr: String,
    },
}

/// The patch and what it covers.
#[derive(Debug, Default)]
pub struct Patch {
    pub bytes: Vec<u8>,
    pub files: Vec<String>,
    /// Changed paths whose host version is no longer the one the run started from (someone
    /// edited the workspace while the run ran): the patch's "before" side for them is the
    /// host's newer version, so `--apply` must not write it over that edit.
    pub host_changed: Vec<String>,
    /// Changed paths a later setup phase trusts ([`crate::trusted`]): left out of
    /// [`Patch::bytes`], in [`Patch::held_back_bytes`] for review.
    pub held_back: Vec<String>,
    pub held_back_bytes: Vec<u8>,
}

/// Paths in `before` (the original workspace) that `after` (the boundary) changed or removed.
pub fn changed_by_setup(original: &Manifest, boundary: &Manifest) -> Vec<String> {
    original
        .entries
        .iter()
        .filter(|(p, e)| !matches!(e, crate::workspace::Entry::Dir) && !is_private(p))
        .filter(|(p, e)| boundary.entries.get(*p) != Some(e))
        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// Paths the patch never carries and `--apply` never writes: any `.git` folder (the agent
/// could plant hooks or config that run on the host), and the workspace's top-level
/// `.airlock/` (where run records live when the workspace is the config root: an agent must
/// not be able to plant or rewrite them).
fn is_private(p: &[u8]) -> bool {
    p.split(|&b| b == b'/').any(|c| c == b".git") || p == b".airlock" || p.starts_with(b".airlock/")
}

/// What a patch is made against, and the rules it follows.
pub struct Against<'a> {
    /// The host workspace (the "before" side's files).
    pub original: &'a Path,
    /// The workspace as it was packed at the start.
    pub packed: &'a Manifest,
    /// The workspace as it crossed the boundary.
    pub boundary: &'a Manifest,
    /// Paths held back from the patch.
    pub trusted: &'a Trusted,
    /// The most the changed files may hold (`limits.output_size`).
    pub limit: u64,
}

/// Build the patch of the stopped agent container `agent_id` (its workspace at `workspace`)
/// against the original workspace.
pub async fn build(
    engine: &dyn Engine,
    agent_id: &str,
    workspace: &str,
    against: Against<'_>,
) -> Result<Patch, PatchError> {
    let Against {
        original,
        packed,
        boundary,
        trusted,
        limit,
    } = against;
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
        .filter(|p| !is_private(p))
        .collect();
    changed = drop_ignored(original, changed)?;
    if changed.is_empty() {
        return Ok(Patch::default());
    }
    // What would come back, before anything does: a sparse 2 GiB file is 8 KiB on the
    // agent's disk and 2 GiB here.
    let sizes = changed.iter().filter_map(|p| match after.entries.get(p) {
        Some(crate::workspace::Entry::File { size, .. }) => Some((p, *size)),
        _ => None,
    });
    let (total, largest) = sizes.fold((0u64, None::<(&Vec<u8>, u64)>), |(t, l), (p, s)| {
        let l = match l {
            Some((_, ls)) if ls >= s => l,
            _ => Some((p, s)),
        };
        (t.saturating_add(s), l)
    });
    if total > limit {
        let (largest, largest_bytes) = largest
            .map(|(p, s)| (paths::escape(p), s))
            .unwrap_or_default();
        return Err(PatchError::TooLarge {
            bytes: total,
            limit,
            largest,
            largest_bytes,
        });
    }
    let mut host_changed = Vec::new();
    for p in &changed {
        if crate::workspace::entry_now(original, p)?.as_ref() != packed.entries.get(p) {
            host_changed.push(String::from_utf8_lossy(p).into_owned());
        }
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
    let rn = root_name.clone();
    let pending = tokio::task::spawn_blocking(move || extract(reader, &rn, &wanted, &tree))
        .await
        .map_err(std::io::Error::other)??;
    if !pending.is_empty() {
        // Hard links to files the agent didn't change: read those files in a second pass.
        let side = staging.path().join("linked");
        std::fs::create_dir(&side)?;
        let targets: BTreeSet<Vec<u8>> = pending.iter().map(|(_, t)| t.clone()).collect();
        let reader = blocking_reader(Box::pin(engine.download(agent_id, workspace)));
        let s = side.clone();
        tokio::task::spawn_blocking(move || extract(reader, &root_name, &targets, &s))
            .await
            .map_err(std::io::Error::other)??;
        for (link, target) in &pending {
            let src = side.join(std::ffi::OsStr::from_bytes(target));
            let dst = safe_parent(&git.tree, Path::new(std::ffi::OsStr::from_bytes(link)))?;
            copy_file(&src, &dst)?;
        }
    }
    let after_tree = git.snapshot()?;
    let held: Vec<&Vec<u8>> = changed.iter().filter(|p| trusted.holds(p)).collect();
    let diff = |pathspecs: Vec<String>| {
        let mut args = vec![
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--binary",
            "--full-index",
            "-M",
            &before,
            &after_tree,
            "--",
        ];
        args.extend(pathspecs.iter().map(String::as_str));
        git.run(&args)
    };
    let literal = |magic: &str, p: &[u8]| format!(":({magic}){}", String::from_utf8_lossy(p));
    let (bytes, held_back_bytes) = if held.is_empty() {
        (diff(Vec::new())?, Vec::new())
    } else {
        let mut kept = vec![".".to_string()];
        kept.extend(held.iter().map(|p| literal("exclude,literal", p)));
        let only: Vec<String> = held.iter().map(|p| literal("literal", p)).collect();
        (diff(kept)?, diff(only)?)
    };
    let shown = |p: &Vec<u8>| String::from_utf8_lossy(p).into_owned();
    Ok(Patch {
        bytes,
        files: changed
            .iter()
            .filter(|p| !trusted.holds(p))
            .map(shown)
            .collect(),
        host_changed,
        held_back: held.into_iter().map(shown).collect(),
        held_back_bytes,
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
        // The staged trees may hold a `.gitattributes` the agent phase wrote. Its attributes
        // would rewrite what is staged (`text`/`eol`: line endings, `ident`: `$Id$`,
        // `working-tree-encoding`) or turn every diff into an unreadable binary one (`-diff`,
        // `binary`), so the patch would no longer be the agent's bytes, readably. This file
        // takes precedence over any in-tree one: no conversion, and binary detection by content.
        std::fs::create_dir_all(g.dir.join("info"))?;
        std::fs::write(
            g.dir.join("info/attributes"),
            "* -text -ident -filter -working-tree-encoding !diff !eol !crlf\n",
        )?;
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

/// Write the `wanted` entries of a workspace archive into `tree`: files (mode reduced to git's
/// 644/755), symlinks as links, and hard links as copies of the file they link to. Returns
/// the wanted hard links whose target was not wanted (so not written): `(link, target)`.
fn extract(
    reader: impl Read,
    root_name: &str,
    wanted: &BTreeSet<Vec<u8>>,
    tree: &Path,
) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut archive = tar::Archive::new(reader);
    let mut written = BTreeSet::new();
    let mut pending = Vec::new();
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
        match (kind, checked.link) {
            (paths::EntryKind::File, _) => {
                let mode = entry.header().mode().unwrap_or(0o644);
                let mut f = std::fs::File::create(&dst)?;
                std::io::copy(&mut entry, &mut f)?;
                std::fs::set_permissions(
                    &dst,
                    std::fs::Permissions::from_mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 }),
                )?;
                written.insert(rel);
            }
            (paths::EntryKind::Symlink, _) => {
                std::os::unix::fs::symlink(
                    std::ffi::OsStr::from_bytes(&link.unwrap_or_default()),
                    &dst,
                )?;
            }
            (paths::EntryKind::HardLink, Some(paths::Link::HardLink(target))) => {
                let target = target.as_bytes().to_vec();
                if written.contains(&target) {
                    copy_file(&tree.join(std::ffi::OsStr::from_bytes(&target)), &dst)?;
                    written.insert(rel);
                } else {
                    pending.push((rel, target));
                }
            }
            _ => {}
        }
    }
    Ok(pending)
}

/// Copy a regular file this module wrote (never through a symlink), with its mode.
fn copy_file(src: &Path, dst: &Path) -> std::io::Result<()> {
    if !std::fs::symlink_metadata(src)?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            src.display()
        )));
    }
    std::fs::copy(src, dst).map(|_| ())
}

/// Apply a patch to the host workspace (`--apply`): refuse it outright if any path it names
/// is under a `.git` folder, absolute, or has a `..` component; then `git apply`, which also
/// refuses paths outside the tree and never writes through a symlink, and checks every hunk
/// before writing anything.
pub fn apply(workspace: &Path, patch_file: &Path, trusted: &Trusted) -> Result<(), PatchError> {
    // git runs in the workspace: a relative patch path would be read from the wrong place.
    let patch_file = &std::path::absolute(patch_file)?;
    // GIT_CEILING_DIRECTORIES takes absolute paths only.
    let workspace = &std::path::absolute(workspace)?;
    let numstat = apply_command(workspace)
        .args(["apply", "--numstat", "-z"])
        .arg(patch_file)
        .output()?;
    if !numstat.status.success() {
        return Err(PatchError::Apply {
            patch: patch_file.clone(),
            workspace: workspace.to_path_buf(),
            stderr: shown(&numstat.stderr),
        });
    }
    // `-z` records are `added\tdeleted\tpath\0`, or `added\tdeleted\t\0old\0new\0` for a
    // rename or copy: every NUL-separated field's last tab-separated part is a path or empty.
    for field in numstat.stdout.split(|&b| b == 0) {
        let path = field.rsplit(|&b| b == b'\t').next().unwrap_or(field);
        if is_private(path)
            || trusted.holds(path)
            || path.starts_with(b"/")
            || path.split(|&b| b == b'/').any(|c| c == b"..")
        {
            return Err(PatchError::Refused {
                patch: patch_file.clone(),
                path: paths::escape(path),
            });
        }
    }
    let out = apply_command(workspace)
        .args(["apply", "--whitespace=nowarn"])
        .arg(patch_file)
        .output()?;
    if !out.status.success() {
        return Err(PatchError::Apply {
            patch: patch_file.clone(),
            workspace: workspace.to_path_buf(),
            stderr: shown(&out.stderr),
        });
    }
    Ok(())
}

/// `git` in the workspace, as a plain patch tool rooted there. In a git repository's
/// subfolder, `git apply` takes a git patch's paths as relative to the repository's top level
/// and silently skips every one outside the subfolder, so the search for a repository stops
/// at the workspace (`GIT_CEILING_DIRECTORIES`: its own `.git` is still used, an enclosing
/// one is not); and a `GIT_DIR` inherited from a hook must not point it at another repository.
fn apply_command(workspace: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(workspace)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null());
    if let Some(parent) = workspace.parent() {
        cmd.env("GIT_CEILING_DIRECTORIES", parent);
    }
    cmd
}

/// git's messages name the patch's paths, which the agent phase chose: shown line by line
/// with control characters escaped so they can't drive the terminal.
fn shown(stderr: &[u8]) -> String {
    stderr
        .trim_ascii()
        .split(|&b| b == b'\n')
        .map(paths::escape)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    //! `--apply` can't be reached with a hostile patch through a run: the patch airlock
    //! builds leaves every `.git` path out, and the agent phase names no path outside
    //! `/workspace`. So [`apply`]'s own refusal is proven here, with hand-made patches of the
    //! shapes a hostile patch could take, against a real `git`.

    use super::*;

    /// A workspace (a git repository, so `.git` is real) next to a folder outside it.
    struct Scene {
        _dir: tempfile::TempDir,
        ws: PathBuf,
        outside: PathBuf,
        patch: PathBuf,
    }

    fn scene() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&ws).unwrap();
        let out = Command::new("git")
            .args(["init", "-q"])
            .arg(&ws)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(ws.join("a.txt"), "a\n").unwrap();
        let patch = dir.path().join("changes.patch");
        Scene {
            _dir: dir,
            ws,
            outside,
            patch,
        }
    }

    /// Every file under `dir` (symlinks not followed) with its content or link target.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    stack.push(p.clone());
                    out.push((p, b"<dir>".to_vec()));
                } else if m.file_type().is_symlink() {
                    out.push((
                        p.clone(),
                        std::fs::read_link(&p)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                    ));
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn new_file(path: &str, line: &str) -> String {
        format!("diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+{line}\n")
    }

    const EDIT_A: &str =
        "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+changed\n";

    #[test]
    fn apply_refuses_every_hostile_patch_and_writes_nothing() {
        type Case = (&'static str, fn(&Scene) -> String, bool);
        let cases: Vec<Case> = vec![
            // (what, patch, refused by airlock's own check rather than by git)
            (
                "edit .git/config",
                |_| {
                    "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n@@ -1 +1,3 @@\n [core]\n+[core]\n+\thooksPath = /tmp\n".into()
                },
                true,
            ),
            (
                "new hook",
                |_| new_file(".git/hooks/post-checkout", "evil"),
                true,
            ),
            (
                "nested .git",
                |_| new_file("sub/.git/config", "[core]"),
                true,
            ),
            (
                "rename into .git",
                |_| {
                    "diff --git a/a.txt b/.git/hooks/pre-commit\nsimilarity index 100%\nrename from a.txt\nrename to .git/hooks/pre-commit\n".into()
                },
                true,
            ),
            (
                "a benign change beside a .git one",
                |_| format!("{EDIT_A}{}", new_file(".git/info/attributes", "* filter=x")),
                true,
            ),
            (
                "a forged run record",
                |_| new_file(".airlock/runs/x/report.json", "{}"),
                true,
            ),
            (
                "parent component",
                |_| new_file("../outside/escaped.txt", "x"),
                true,
            ),
            (
                "absolute path",
                |s| new_file(&s.outside.join("abs.txt").display().to_string(), "x"),
                true,
            ),
            (
                "through a new symlink",
                |s| {
                    format!(
                "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+{}\n\\ No newline at end of file\n{}",
                s.outside.display(), new_file("l/f.txt", "x"))
                },
                false,
            ),
            (
                "an escape sequence in the name",
                |_| new_file(".git/\u{1b}]0;pwned\u{7}", "x"),
                true,
            ),
        ];
        for (what, make, ours) in cases {
            let s = scene();
            std::fs::write(s.ws.join(".git/config"), "[core]\n").unwrap();
            std::fs::write(&s.patch, make(&s)).unwrap();
            let (before_ws, before_out) = (snapshot(&s.ws), snapshot(&s.outside));
            let err = apply(&s.ws, &s.patch, &Trusted::default()).expect_err(what);
            let msg = err.to_string();
            if ours {
                assert!(matches!(err, PatchError::Refused { .. }), "{what}: {msg}");
                assert!(
                    msg.contains(
                        "never writes under a .git folder, into .airlock/, outside the workspace"
                    ),
                    "{what}: {msg}"
                );
            } else {
                assert!(matches!(err, PatchError::Apply { .. }), "{what}: {msg}");
            }
            assert!(
                !msg.contains('\u{1b}') && !msg.contains('\u{7}'),
                "{what}: raw control bytes in {msg:?}"
            );
            assert_eq!(snapshot(&s.ws), before_ws, "{what}: the workspace changed");
            assert_eq!(
                snapshot(&s.outside),
                before_out,
                "{what}: outside the workspace changed"
            );
        }
    }

    #[test]
    fn apply_never_writes_through_a_symlink_already_in_the_workspace() {
        let s = scene();
        std::os::unix::fs::symlink(&s.outside, s.ws.join("l")).unwrap();
        std::fs::write(&s.patch, new_file("l/f.txt", "x")).unwrap();
        let err = apply(&s.ws, &s.patch, &Trusted::default()).unwrap_err();
        assert!(err.to_string().contains("beyond a symbolic link"), "{err}");
        assert!(snapshot(&s.outside).is_empty());
    }

    #[test]
    fn apply_writes_a_benign_patch_given_a_relative_path_and_in_a_repository_subfolder() {
        let s = scene();
        // The workspace is a subfolder of a repository, and the patch path is relative.
        let sub = s.ws.join("pkg");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("a.txt"), "a\n").unwrap();
        std::fs::write(&s.patch, format!("{EDIT_A}{}", new_file("new.txt", "n"))).unwrap();
        let cwd = std::env::current_dir().unwrap();
        let rel = pathdiff(&s.patch, &cwd);
        apply(&sub, &rel, &Trusted::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(sub.join("a.txt")).unwrap(),
            "changed\n"
        );
        assert_eq!(std::fs::read_to_string(sub.join("new.txt")).unwrap(), "n\n");
        // The repository's top level was not written.
        assert_eq!(std::fs::read_to_string(s.ws.join("a.txt")).unwrap(), "a\n");
        assert!(!s.ws.join("new.txt").exists());
    }

    /// `path` relative to `base` (both absolute).
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let mut rel = PathBuf::new();
        for _ in base.components().skip(1) {
            rel.push("..");
        }
        rel.join(path.strip_prefix("/").unwrap())
    }

    #[test]
    fn extract_writes_hard_links_as_copies_and_names_those_it_could_not() {
        let mut tar = tar::Builder::new(Vec::new());
        let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            tar.append_data(&mut h, path, data).unwrap();
        };
        let link = |tar: &mut tar::Builder<Vec<u8>>, path: &str, target: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            h.set_mode(0o644);
            tar.append_link(&mut h, path, target).unwrap();
        };
        file(&mut tar, "workspace/tool", b"#!/bin/sh\n", 0o755);
        file(&mut tar, "workspace/same", b"unchanged\n", 0o644);
        link(&mut tar, "workspace/tool-copy", "workspace/tool");
        link(&mut tar, "workspace/sub/same-link", "workspace/same");
        link(&mut tar, "workspace/escape", "../etc/passwd");
        let bytes = tar.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let wanted: BTreeSet<Vec<u8>> = ["tool", "tool-copy", "sub/same-link", "escape"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let pending = extract(&bytes[..], "workspace", &wanted, dir.path()).unwrap();
        let copy = dir.path().join("tool-copy");
        assert_eq!(std::fs::read(&copy).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(pending, vec![(b"sub/same-link".to_vec(), b"same".to_vec())]);
        assert!(!dir.path().join("escape").exists());
        assert!(!dir.path().join("sub/same-link").exists());
    }
}
