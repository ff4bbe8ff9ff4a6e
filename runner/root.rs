//! The config root: the folder that holds `envs/`, `secrets/` and `images/`.
//!
//! Everything a task runs in is defined by files in one folder, so a repository can carry its
//! own environments and a team can share them. The root is found once, here, in this order:
//! `--root DIR`, then `AIRLOCK_ROOT`, then (when an environment is named by a path) the parent
//! of the `envs/` folder that file sits in, then the current directory or the nearest parent
//! that has an `envs/` folder.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("config root {0} is not a folder (set by {1}); point --root or AIRLOCK_ROOT at a folder holding envs/, secrets/ and images/")]
    NotAFolder(PathBuf, &'static str),
    #[error("no config root found: no envs/ folder in {0} or any parent; pass --root DIR or set AIRLOCK_ROOT to a folder holding envs/, secrets/ and images/")]
    NotFound(PathBuf),
}

/// A located config root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRoot {
    dir: PathBuf,
}

impl ConfigRoot {
    /// A root at exactly this folder (no checks beyond existence).
    pub fn at(dir: impl Into<PathBuf>) -> Result<Self, RootError> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(RootError::NotAFolder(dir, "--root"));
        }
        Ok(ConfigRoot {
            dir: absolute(&dir),
        })
    }

    /// Find the root: `explicit` (from `--root`), `AIRLOCK_ROOT`, the parent of the `envs/`
    /// folder holding `env_file` (when the environment was named by a path), then the current
    /// directory and its parents.
    pub fn locate(explicit: Option<&Path>, env_file: Option<&Path>) -> Result<Self, RootError> {
        if let Some(dir) = explicit {
            return Self::at(dir);
        }
        if let Some(dir) = std::env::var_os("AIRLOCK_ROOT").filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(RootError::NotAFolder(dir, "AIRLOCK_ROOT"));
            }
            return Ok(ConfigRoot {
                dir: absolute(&dir),
            });
        }
        if let Some(file) = env_file {
            let file = absolute(file);
            if let Some(envs) = file.parent() {
                if envs.file_name().is_some_and(|n| n == "envs") {
                    if let Some(root) = envs.parent() {
                        return Ok(ConfigRoot {
                            dir: root.to_path_buf(),
                        });
                    }
                }
            }
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let mut here = Some(cwd.as_path());
        while let Some(dir) = here {
            if dir.join("envs").is_dir() {
                return Ok(ConfigRoot {
                    dir: dir.to_path_buf(),
                });
            }
            here = dir.parent();
        }
        Err(RootError::NotFound(cwd))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn envs_dir(&self) -> PathBuf {
        self.dir.join("envs")
    }
    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.join("secrets")
    }
    pub fn images_dir(&self) -> PathBuf {
        self.dir.join("images")
    }
    /// Where run records go when `--out` is not given.
    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join(".airlock").join("runs")
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_under_envs_names_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("envs")).unwrap();
        let file = tmp.path().join("envs").join("x.yaml");
        // AIRLOCK_ROOT may be set by a caller; this test only covers the file rule.
        if std::env::var_os("AIRLOCK_ROOT").is_none() {
            let root = ConfigRoot::locate(None, Some(&file)).unwrap();
            assert_eq!(root.dir(), tmp.path());
        }
    }

    #[test]
    fn explicit_root_must_be_a_folder() {
        let err = ConfigRoot::locate(Some(Path::new("/nonexistent/airlock")), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/airlock"), "{err}");
    }
}
