//! The schedule's repository: a fresh checkout per fire, and `result: branch`.
//!
//! A fire works on its own clone of `ref` in a folder of its own (never the live working
//! tree, never a folder another fire uses); the clone is made without templates and with
//! hooks off, so nothing of the host repository's `.git/hooks` runs. The result branch is
//! made with git plumbing in the host repository only: the patch's paths are checked (none
//! under a `.git` folder, none absolute or with `..`), the base tree is read into a private
//! index (`GIT_INDEX_FILE` in a temp folder), the patch applied to that index alone
//! (`git apply --cached`: blobs are written with `hash-object`'s machinery, no file of the
//! working tree is read or written), then `write-tree`, `commit-tree` and `update-ref` to
//! create `refs/heads/airlock/NAME/RUN-ID`. No command here runs a hook, checks anything out
//! in the user's tree or writes the repository's config.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {args} in {}: {stderr}", dir.display())]
    Failed {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
    #[error("running git: {0}\n  fix: install git on the host (apt-get install git)")]
    Spawn(std::io::Error),
    #[error("the run's patch touches `{0}`: a result branch never carries .git folders, absolute paths or `..`; no branch was made")]
    Refused(String),
}

/// `git` with nothing of the environment that could redirect it or run user code.
fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command, dir: &Path, what: &str) -> Result<Output, GitError> {
    let out = cmd.output().map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: what.to_string(),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn stdout(out: Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The commit `git_ref` names in `repo` now.
pub fn resolve(repo: &Path, git_ref: &str) -> Result<String, GitError> {
    let mut cmd = git(repo);
    cmd.args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{git_ref}^{{commit}}"));
    run(cmd, repo, &format!("rev-parse {git_ref}")).map(stdout)
}

/// A fresh checkout of `commit` from `repo` at `dest` (which must not exist).
pub fn checkout(repo: &Path, commit: &str, dest: &Path) -> Result<(), GitError> {
    let parent = dest.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(GitError::Spawn)?;
    let empty = tempfile::tempdir_in(parent).map_err(GitError::Spawn)?;
    let mut cmd = git(parent);
    cmd.args(["clone", "--quiet", "--no-checkout"])
        .arg(format!("--template={}", empty.path().display()))
        .arg("--")
        .arg(repo)
        .arg(dest);
    run(cmd, parent, "clone")?;
    let mut cmd = git(dest);
    cmd.args([
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "--quiet",
        "--detach",
        commit,
    ]);
    run(cmd, dest, &format!("checkout {commit}"))?;
    Ok(())
}

/// The paths a patch names, refused if any is unsafe for a branch.
fn check_paths(patch: &Path) -> Result<(), GitError> {
    let dir = patch.parent().unwrap_or(Path::new("/"));
    let mut cmd = git(dir);
    cmd.args(["apply", "--numstat", "-z"]).arg(patch);
    let out = run(cmd, dir, "apply --numstat")?;
    for field in out.stdout.split(|&b| b == 0) {
        let path = field.rsplit(|&b| b == b'\t').next().unwrap_or(field);
        let bad = path.starts_with(b"/")
            || path.split(|&b| b == b'/').any(|c| {
                c == b".." || c.eq_ignore_ascii_case(b".git") || c.eq_ignore_ascii_case(b".git~1")
            });
        if bad {
            return Err(GitError::Refused(
                String::from_utf8_lossy(path).into_owned(),
            ));
        }
    }
    Ok(())
}

/// Commit `patch` on top of `base` in `repo` as `refs/heads/<branch>`; the branch must not
/// exist yet. Returns the commit.
pub fn branch(
    repo: &Path,
    base: &str,
    patch: &Path,
    branch: &str,
    message: &str,
) -> Result<String, GitError> {
    check_paths(patch)?;
    let tmp = tempfile::tempdir().map_err(GitError::Spawn)?;
    let index = tmp.path().join("index");
    let with_index = |args: &[&str]| {
        let mut cmd = git(repo);
        cmd.env("GIT_INDEX_FILE", &index).args(args);
        cmd
    };
    run(with_index(&["read-tree", base]), repo, "read-tree")?;
    let mut apply = with_index(&["apply", "--cached", "--whitespace=nowarn", "--"]);
    apply.arg(patch);
    run(apply, repo, "apply --cached")?;
    let tree = stdout(run(with_index(&["write-tree"]), repo, "write-tree")?);
    let mut commit = git(repo);
    commit
        .env("GIT_AUTHOR_NAME", "airlock")
        .env("GIT_AUTHOR_EMAIL", "airlock@localhost")
        .env("GIT_COMMITTER_NAME", "airlock")
        .env("GIT_COMMITTER_EMAIL", "airlock@localhost")
        .args(["commit-tree", &tree, "-p", base, "-m", message]);
    let commit = stdout(run(commit, repo, "commit-tree")?);
    let mut update = git(repo);
    // The empty old value: create only, never move an existing branch.
    update
        .args(["update-ref", "-m", "airlock schedule result"])
        .arg(format!("refs/heads/{branch}"))
        .arg(&commit)
        .arg("");
    run(update, repo, "update-ref")?;
    Ok(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) -> String {
        let out = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn repo() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        sh(
            &repo,
            "git init -q -b main . && echo one > a.txt && git add a.txt && git commit -qm one",
        );
        (dir, repo)
    }

    #[test]
    fn a_checkout_is_fresh_and_runs_no_hook() {
        let (dir, repo) = repo();
        let marker = dir.path().join("hook-ran");
        std::fs::write(
            repo.join(".git/hooks/post-checkout"),
            format!("#!/bin/sh\ntouch {}\n", marker.display()),
        )
        .unwrap();
        sh(
            &repo,
            "chmod +x .git/hooks/post-checkout && echo dirty > a.txt",
        );
        let commit = resolve(&repo, "main").unwrap();
        let dest = dir.path().join("work/r1");
        checkout(&repo, &commit, &dest).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("a.txt")).unwrap(),
            "one\n"
        );
        assert!(!marker.exists(), "a hook ran");
        assert!(!dest.join(".git/hooks/post-checkout").exists());
        // The live tree is as it was.
        assert_eq!(
            std::fs::read_to_string(repo.join("a.txt")).unwrap(),
            "dirty\n"
        );
        assert!(resolve(&repo, "nope").is_err());
    }

    #[test]
    fn a_result_branch_holds_the_patch_and_nothing_of_git() {
        let (dir, repo) = repo();
        let base = resolve(&repo, "main").unwrap();
        let patch = dir.path().join("changes.patch");
        std::fs::write(
            &patch,
            "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\ndiff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+new\n",
        )
        .unwrap();
        let before = sh(&repo, "git status --porcelain; cat .git/index | sha256sum");
        let c = branch(&repo, &base, &patch, "airlock/s/r1", "m").unwrap();
        assert_eq!(sh(&repo, "git rev-parse airlock/s/r1").trim(), c);
        assert_eq!(sh(&repo, "git show airlock/s/r1:a.txt"), "two\n");
        assert_eq!(sh(&repo, "git show airlock/s/r1:new.txt"), "new\n");
        // The working tree and its index are untouched.
        assert_eq!(
            sh(&repo, "git status --porcelain; cat .git/index | sha256sum"),
            before
        );
        // Never over an existing branch.
        assert!(branch(&repo, &base, &patch, "airlock/s/r1", "m").is_err());

        let hook = dir.path().join("hook.patch");
        std::fs::write(
            &hook,
            "diff --git a/.git/hooks/pre-commit b/.git/hooks/pre-commit\nnew file mode 100755\n--- /dev/null\n+++ b/.git/hooks/pre-commit\n@@ -0,0 +1 @@\n+evil\n",
        )
        .unwrap();
        let e = branch(&repo, &base, &hook, "airlock/s/r2", "m").unwrap_err();
        assert!(matches!(e, GitError::Refused(_)), "{e}");
        assert!(resolve(&repo, "airlock/s/r2").is_err());
        assert!(!repo.join(".git/hooks/pre-commit").exists());
    }
}
