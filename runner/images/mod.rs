//! The images tasks run in: `images/<name>/Dockerfile`, built locally with no registry.
//!
//! An environment names its image. When the name is a folder under the config root's
//! `images/`, airlock owns that image: [`ensure`] builds it through the engine API when it is
//! missing or when the folder's content changed, and does nothing otherwise. The folder's
//! content hash (`context`) is the whole identity: the image is tagged
//! `airlock/<name>:<first 12 hex of the hash>` and labelled with the full hash, so "is it up
//! to date?" is one lookup of that tag, a second build is a no-op, and any change to the
//! folder (a byte, a rename, a `chmod +x`) makes a new tag. Any other name (`python:3.12`)
//! must already be in the engine: airlock never pulls.
//!
//! Nothing here needs a registry. A Dockerfile's `FROM` image that is missing is made on this
//! host when airlock knows how ([`bootstrap`]: `debian:<suite>` with debootstrap,
//! `airlock/busybox` from the host's static busybox), and refused with a clear error when it
//! doesn't. Builds use the engine's classic builder (`build`) with no pull and no leftover
//! containers; a host lock (`lock`) keeps two airlock processes from building the same
//! image twice at once, though both would succeed without it.

pub mod bootstrap;
mod build;
mod context;
mod dockerfile;
mod error;
mod list;
mod lock;
pub mod progress;

use std::path::{Path, PathBuf};

pub use error::ImageError;
pub use list::{list, ImageInfo, ImageState};
pub use progress::ProgressMode;

use crate::engine::labels;
use crate::engine::{Engine, EngineError};

use crate::root::ConfigRoot;
use lock::HostLock;
use progress::Progress;

/// An image ready to run.
#[derive(Debug, Clone)]
pub struct ReadyImage {
    /// The reference containers are created from (a tag such as `airlock/base:<hash12>`).
    pub reference: String,
    /// The engine's image id (`sha256:…`).
    pub id: String,
}

/// How [`ensure_with`] works.
#[derive(Debug, Clone, Default)]
pub struct EnsureOptions {
    /// Rebuild an image folder even when it is up to date, ignoring the builder's cache.
    pub force: bool,
    /// How the build shows its progress (on stderr).
    pub progress: ProgressMode,
}

/// What [`ensure_with`] had to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An image folder whose image was already built from its current content.
    UpToDate,
    /// An image folder built now; with the bases that had to be bootstrapped for it.
    Built { bootstrapped: Vec<String> },
    /// Not an image folder: an image already in the engine (or bootstrapped just now).
    InEngine { bootstrapped: bool },
}

/// A ready image and how it got ready.
#[derive(Debug, Clone)]
pub struct Ensured {
    pub image: ReadyImage,
    pub outcome: Outcome,
}

/// Make sure the environment's `image` exists in the engine: an `images/<name>/` folder is
/// built when missing or changed (bootstrapping its base offline when needed); any other
/// name must already be in the engine.
pub async fn ensure(
    engine: &dyn Engine,
    root: &ConfigRoot,
    image: &str,
) -> Result<ReadyImage, ImageError> {
    Ok(ensure_with(engine, root, image, EnsureOptions::default())
        .await?
        .image)
}

/// [`ensure`], with options, telling what it did.
pub async fn ensure_with(
    engine: &dyn Engine,
    root: &ConfigRoot,
    image: &str,
    options: EnsureOptions,
) -> Result<Ensured, ImageError> {
    match folder_of(root, image)? {
        Some(dir) => ensure_folder(engine, image, &dir, options).await,
        None => ensure_in_engine(engine, root, image, options).await,
    }
}

/// Whether `name` can be an image folder's name: it becomes part of the `airlock/<name>`
/// repository, which Docker wants lowercase.
fn valid_folder_name(name: &str) -> bool {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    ok_chars
        && alnum(name.chars().next())
        && alnum(name.chars().last())
        && !name.contains("..")
        && name.len() <= 100
}

/// The folder `image` names under `images/`, if it names one.
fn folder_of(root: &ConfigRoot, image: &str) -> Result<Option<PathBuf>, ImageError> {
    if image.is_empty() || image.contains(['/', ':', '@', '\\']) || image.starts_with('.') {
        return Ok(None);
    }
    let dir = root.images_dir().join(image);
    if !dir.is_dir() {
        return Ok(None);
    }
    if !valid_folder_name(image) {
        return Err(ImageError::BadName {
            dir,
            reason: "an image folder's name must be lowercase letters, digits, '.', '_' or '-', \
                     starting and ending with a letter or digit (it becomes the image name \
                     airlock/NAME)"
                .into(),
        });
    }
    Ok(Some(dir))
}

/// The tag an image folder with this content hash gets.
pub fn tag_for(name: &str, hash: &str) -> String {
    format!("airlock/{name}:{}", &hash[..12.min(hash.len())])
}

async fn ensure_folder(
    engine: &dyn Engine,
    name: &str,
    dir: &Path,
    options: EnsureOptions,
) -> Result<Ensured, ImageError> {
    let dockerfile = dir.join("Dockerfile");
    if !dockerfile.is_file() {
        return Err(ImageError::NoDockerfile {
            dir: dir.to_path_buf(),
        });
    }
    let ctx = context::Context::walk(dir)?;
    let hash = ctx.hash()?;
    let tag = tag_for(name, &hash);
    let ready = |id: String| ReadyImage {
        reference: tag.clone(),
        id,
    };
    if !options.force {
        if let Some(id) = built_from(engine, &tag, &hash).await? {
            return Ok(Ensured {
                image: ready(id),
                outcome: Outcome::UpToDate,
            });
        }
    }
    // Another airlock building the same image: wait for it, then look again.
    let mut progress = Progress::new(name, options.progress);
    let _lock = HostLock::acquire(engine.host(), &format!("build:{name}"), || {
        progress.note("waiting for another airlock process building this image")
    })
    .await;
    let before = built_from(engine, &tag, &hash).await?;
    if let (Some(id), false) = (&before, options.force) {
        return Ok(Ensured {
            image: ready(id.clone()),
            outcome: Outcome::UpToDate,
        });
    }
    let text = std::fs::read_to_string(&dockerfile).map_err(|source| ImageError::Io {
        doing: "reading".into(),
        path: dockerfile.clone(),
        source,
    })?;
    let bases = dockerfile::base_images(&text).map_err(|reason| ImageError::BadDockerfile {
        path: dockerfile.clone(),
        reason,
    })?;
    let mut bootstrapped = Vec::new();
    for base in bases {
        if bootstrap::ensure_base(engine, name, &base, &mut progress).await? {
            bootstrapped.push(base);
        }
    }
    let request = build::BuildRequest {
        name,
        dockerfile: &dockerfile,
        tag: &tag,
        hash: &hash,
        context: ctx.tar()?,
        no_cache: options.force,
    };
    build::build(engine, request, &mut progress).await?;
    progress.finish();
    let Some(id) = built_from(engine, &tag, &hash).await? else {
        return Err(EngineError::Other {
            doing: format!("building image {name}"),
            message: format!("the build finished but {tag} is not in the engine"),
        }
        .into());
    };
    // A forced rebuild replaced the tag: drop the image it pointed to (unless in use).
    if let Some(old) = before.filter(|old| *old != id) {
        let _ = engine.remove_image(&old).await;
    }
    Ok(Ensured {
        image: ready(id),
        outcome: Outcome::Built { bootstrapped },
    })
}

/// The id of `tag` when it exists and was built from content with this `hash`.
async fn built_from(
    engine: &dyn Engine,
    tag: &str,
    hash: &str,
) -> Result<Option<String>, ImageError> {
    Ok(engine.inspect_image(tag).await?.and_then(|img| {
        let labelled = img.labels.get(labels::IMAGE_HASH).map(String::as_str);
        (labelled == Some(hash)).then_some(img.id)
    }))
}

async fn ensure_in_engine(
    engine: &dyn Engine,
    root: &ConfigRoot,
    image: &str,
    options: EnsureOptions,
) -> Result<Ensured, ImageError> {
    let not_found = || ImageError::NotFound {
        image: image.to_string(),
        images_dir: root.images_dir(),
    };
    if image.is_empty() {
        return Err(not_found());
    }
    let mut bootstrapped = false;
    if bootstrap::present(engine, image).await?.is_none() {
        if bootstrap::recipe_for(image).is_none() {
            return Err(not_found());
        }
        let mut progress = Progress::new(image, options.progress);
        bootstrapped = bootstrap::ensure_base(engine, image, image, &mut progress).await?;
    }
    let Some(id) = bootstrap::present(engine, image).await? else {
        return Err(not_found());
    };
    Ok(Ensured {
        image: ReadyImage {
            reference: image.to_string(),
            id,
        },
        outcome: Outcome::InEngine { bootstrapped },
    })
}

/// The names of the image folders under the root's `images/` (sorted).
pub fn folders(root: &ConfigRoot) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.images_dir())
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Dockerfile").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        for ok in ["tiny", "base", "py3.12", "a_b-c", "x"] {
            assert!(valid_folder_name(ok), "{ok}");
        }
        for bad in ["Tiny", "-x", "x-", "a..b", "", "a b", "ü"] {
            assert!(!valid_folder_name(bad), "{bad}");
        }
    }

    #[test]
    fn folders_are_found_and_references_are_not_folders() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("images/tiny")).unwrap();
        std::fs::create_dir_all(t.path().join("images/Upper")).unwrap();
        std::fs::write(t.path().join("images/tiny/Dockerfile"), "FROM scratch\n").unwrap();
        let root = ConfigRoot::at(t.path()).unwrap();
        assert!(folder_of(&root, "tiny").unwrap().is_some());
        assert!(folder_of(&root, "debian:bookworm").unwrap().is_none());
        assert!(folder_of(&root, "../images/tiny").unwrap().is_none());
        assert!(folder_of(&root, "nope").unwrap().is_none());
        let err = folder_of(&root, "Upper").unwrap_err();
        assert!(err.to_string().contains("lowercase"), "{err}");
        assert_eq!(folders(&root), ["tiny"]);
    }

    #[test]
    fn tags_use_twelve_hex() {
        let h = "0123456789abcdef".repeat(4);
        assert_eq!(tag_for("tiny", &h), "airlock/tiny:0123456789ab");
    }
}
