//! Why an image could not be made ready, and how airlock exits because of it.
//!
//! Each message names the image, says what went wrong and how to fix it; a failed build step
//! carries the step and the last lines it printed, since "returned a non-zero code" alone
//! doesn't tell anyone anything.

use std::path::{Path, PathBuf};

use crate::engine::EngineError;
use crate::outcome::Outcome;

/// Why an image could not be made ready. Each message says which image, what went wrong and
/// how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "image {image:?} is not a folder under {} and not an image in the Docker engine, and \
         nothing can be pulled here (airlock never uses a registry)\n  fix: create {}/NAME/Dockerfile \
         and use NAME, or name an image the engine has (`docker images`), or load one with \
         `docker load`", images_dir.display(), images_dir.display()
    )]
    NotFound { image: String, images_dir: PathBuf },
    #[error("image folder {}: {reason}", dir.display())]
    BadName { dir: PathBuf, reason: String },
    #[error("image folder {} has no Dockerfile\n  fix: add {}/Dockerfile (see images/tiny/Dockerfile for a small one)", dir.display(), dir.display())]
    NoDockerfile { dir: PathBuf },
    #[error("image folder entry {}: {reason}", path.display())]
    BadFolder { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    BadDockerfile { path: PathBuf, reason: String },
    #[error(
        "image {image}: its base {base} (the Dockerfile's FROM) is not in the Docker engine, \
         can't be pulled here (airlock never uses a registry), and is not a base airlock can \
         bootstrap\n  fix: start FROM debian:<suite> or FROM airlock/busybox (airlock makes \
         those itself), or load {base} into the engine with `docker load`"
    )]
    BaseUnavailable { image: String, base: String },
    #[error("{}", render_build_failed(name, dockerfile, step, message, tail))]
    BuildFailed {
        /// The `images/<name>` folder.
        name: String,
        /// Its Dockerfile.
        dockerfile: PathBuf,
        /// The failing step (`Step 2/3 : RUN ...`), empty if none had started.
        step: String,
        /// What the engine said.
        message: String,
        /// The step's last output lines.
        tail: Vec<String>,
    },
    #[error(
        "can't bootstrap the base image {base} (it is not in the Docker engine and nothing can \
         be pulled here)\n  fix: {fix}"
    )]
    BootstrapUnavailable { base: String, fix: String },
    #[error("{}", render_bootstrap_failed(base, message, tail))]
    BootstrapFailed {
        base: String,
        message: String,
        tail: Vec<String>,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{doing} {}: {source}", path.display())]
    Io {
        doing: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// How a run ends because of this error: the engine's fault, the image definition's
    /// (or the host's missing prerequisite), or something else.
    pub fn outcome(&self) -> Outcome {
        match self {
            ImageError::Engine(_) => Outcome::EngineError,
            ImageError::BootstrapFailed { .. } | ImageError::Io { .. } => Outcome::InternalError,
            _ => Outcome::ConfigError,
        }
    }
}

fn render_tail(out: &mut String, title: &str, tail: &[String]) {
    if !tail.is_empty() {
        out.push_str(&format!("\n  {title}:"));
        for line in tail {
            out.push_str(&format!("\n    | {line}"));
        }
    }
}

fn render_build_failed(
    name: &str,
    dockerfile: &Path,
    step: &str,
    message: &str,
    tail: &[String],
) -> String {
    let at = if step.is_empty() {
        String::new()
    } else {
        format!(" at {step}")
    };
    let mut out = format!("building image {name} failed{at}: {message}");
    render_tail(&mut out, "last output of that step", tail);
    out.push_str(&format!(
        "\n  fix: correct {} (or what it runs), then build again with `airlock image build \
         {name}`",
        dockerfile.display()
    ));
    out
}

fn render_bootstrap_failed(base: &str, message: &str, tail: &[String]) -> String {
    let mut out = format!("bootstrapping the base image {base} failed: {message}");
    render_tail(&mut out, "last output", tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_failures_show_step_and_tail() {
        let e = ImageError::BuildFailed {
            name: "tiny".into(),
            dockerfile: PathBuf::from("/r/images/tiny/Dockerfile"),
            step: "Step 2/2 : RUN false".into(),
            message: "The command '/bin/sh -c false' returned a non-zero code: 1".into(),
            tail: vec!["oops".into()],
        };
        let s = e.to_string();
        assert!(
            s.contains("building image tiny failed at Step 2/2 : RUN false"),
            "{s}"
        );
        assert!(s.contains("    | oops"), "{s}");
        assert!(s.contains("fix: correct /r/images/tiny/Dockerfile"), "{s}");
        assert_eq!(e.outcome(), Outcome::ConfigError);
    }
}
