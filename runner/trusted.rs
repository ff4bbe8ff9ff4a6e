//! What a later setup phase trusts, and so what the agent phase may not change.
//!
//! The setup phase runs with decrypted secrets and network. What it runs is defined by files:
//! the config root's `envs/` (the setup script itself), `images/` (whole build contexts: a
//! Dockerfile's `RUN` runs at build time), `secrets/` (recipients, and the `.age` files: anyone
//! can encrypt a value of their choosing to the public recipients), `schedules/`, and the
//! root's `.airlock/`. When the workspace holds the config root (a repository carrying its
//! own `envs/`, the default `-w .`), an agent that edits those files, and a `--apply` that
//! writes them to the host, would make the *next* run's trusted setup run the agent's code.
//! Files other tools run on the host or with CI secrets are the same way in: a `.envrc`
//! (direnv runs it on `cd`), CI definitions (`.github/workflows/`, `.gitlab-ci.yml`) that run
//! with secrets when a result branch is pushed. Any `.git` folder (hooks, `core.*` config) is
//! already read-only to the agent and never in a patch ([`crate::patch`]).
//!
//! So, for these paths ([`Trusted::for_run`]): the hand-over makes them read-only to the
//! agent's user (owned by root, no write bits; the agent has no capabilities to undo that);
//! whatever the agent still changes (it can rename a folder it can't write into) is left out
//! of `changes.patch`, written to `held-back.patch` for review, listed in the report, and never
//! applied by `--apply` unless the user names the path with `--apply-trusted PATH`.

use std::path::{Component, Path, PathBuf};

/// Paths under the config root that a setup phase trusts.
pub const ROOT_PATHS: &[&str] = &["envs", "images", "secrets", "schedules", ".airlock"];

/// Paths in any workspace that run on the host or in CI with secrets.
pub const WORKSPACE_PATHS: &[&str] = &[".envrc", ".github/workflows", ".gitlab-ci.yml"];

/// The trusted paths of one run, relative to its workspace, and those the user let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted {
    paths: Vec<Vec<u8>>,
    allowed: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
#[error("--apply-trusted {}: {why}\n  fix: name a path inside the workspace {}, e.g. --apply-trusted envs/ci.yaml", path.display(), workspace.display())]
pub struct AllowError {
    path: PathBuf,
    workspace: PathBuf,
    why: &'static str,
}

impl Trusted {
    /// The trusted paths when `workspace` runs with config root `root`: [`WORKSPACE_PATHS`],
    /// and [`ROOT_PATHS`] when the root is the workspace or inside it. `allowed` are the
    /// `--apply-trusted` paths (relative to the workspace, or absolute inside it).
    pub fn for_run(
        workspace: &Path,
        root: &Path,
        allowed: &[PathBuf],
    ) -> Result<Trusted, AllowError> {
        let mut paths: Vec<Vec<u8>> = WORKSPACE_PATHS
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        if let Some(inside) = relative_inside(workspace, root) {
            for p in ROOT_PATHS {
                paths.push(join(&inside, p.as_bytes()));
            }
        }
        let allowed = allowed
            .iter()
            .map(|a| {
                let err = |why| AllowError {
                    path: a.clone(),
                    workspace: workspace.to_path_buf(),
                    why,
                };
                let full = if a.is_absolute() {
                    a.clone()
                } else {
                    workspace.join(a)
                };
                let rel = relative_inside(workspace, &full)
                    .ok_or_else(|| err("is not inside the workspace"))?;
                if rel.is_empty() {
                    return Err(err(
                        "is the whole workspace; name the trusted paths one by one",
                    ));
                }
                Ok(rel)
            })
            .collect::<Result<_, _>>()?;
        Ok(Trusted { paths, allowed })
    }

    /// Whether workspace-relative `path` is, or is under, a trusted path the user did not let
    /// through.
    pub fn holds(&self, path: &[u8]) -> bool {
        let under = |prefix: &Vec<u8>| {
            path == &prefix[..]
                || (path.starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'))
        };
        self.paths.iter().any(under) && !self.allowed.iter().any(under)
    }

    /// The trusted paths, workspace-relative.
    pub fn paths(&self) -> &[Vec<u8>] {
        &self.paths
    }
}

/// `inner` relative to `outer` as `/`-joined bytes (empty when equal), if it is inside it.
/// Both are normalised lexically (`.` and `..` resolved); symlinks are not followed.
fn relative_inside(outer: &Path, inner: &Path) -> Option<Vec<u8>> {
    let outer = normalise(outer);
    let inner = normalise(inner);
    let rest = inner.strip_prefix(&outer).ok()?;
    let parts: Vec<&[u8]> = rest
        .components()
        .map(|c| c.as_os_str().as_encoded_bytes())
        .collect();
    Some(parts.join(&b'/'))
}

fn normalise(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn join(base: &[u8], rel: &[u8]) -> Vec<u8> {
    if base.is_empty() {
        rel.to_vec()
    } else {
        [base, b"/", rel].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_root_inside_the_workspace_is_trusted_wherever_it_sits() {
        let t = Trusted::for_run(Path::new("/src/repo"), Path::new("/src/repo"), &[]).unwrap();
        for p in [
            "envs",
            "envs/ci.yaml",
            "images/base/Dockerfile",
            "secrets/T.age",
            "secrets/recipients.txt",
            "schedules/n.yaml",
            ".airlock/x",
            ".envrc",
            ".github/workflows/ci.yml",
            ".gitlab-ci.yml",
        ] {
            assert!(t.holds(p.as_bytes()), "{p}");
        }
        for p in [
            "src/envs",
            "envsx",
            "README.md",
            ".github/CODEOWNERS",
            "images.txt",
        ] {
            assert!(!t.holds(p.as_bytes()), "{p}");
        }
        let nested = Trusted::for_run(
            Path::new("/src/repo"),
            Path::new("/src/repo/ci/../ops"),
            &[],
        )
        .unwrap();
        assert!(nested.holds(b"ops/envs/a.yaml"));
        assert!(!nested.holds(b"envs/a.yaml"));
        // A root outside the workspace: only the workspace's own paths.
        let outside =
            Trusted::for_run(Path::new("/src/repo"), Path::new("/etc/airlock"), &[]).unwrap();
        assert!(!outside.holds(b"envs/a.yaml"));
        assert!(outside.holds(b".envrc"));
    }

    #[test]
    fn apply_trusted_lets_named_paths_through_and_nothing_else() {
        let ws = Path::new("/src/repo");
        let t = Trusted::for_run(
            ws,
            ws,
            &[
                PathBuf::from("envs/ci.yaml"),
                PathBuf::from("/src/repo/images/base"),
            ],
        )
        .unwrap();
        assert!(!t.holds(b"envs/ci.yaml"));
        assert!(t.holds(b"envs/other.yaml"));
        assert!(!t.holds(b"images/base/Dockerfile"));
        assert!(t.holds(b"images/other/Dockerfile"));
        let err = Trusted::for_run(ws, ws, &[PathBuf::from("../elsewhere")]).unwrap_err();
        assert!(
            err.to_string().contains("is not inside the workspace"),
            "{err}"
        );
        assert!(Trusted::for_run(ws, ws, &[PathBuf::from(".")]).is_err());
    }
}
