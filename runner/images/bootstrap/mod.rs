//! Base images with no registry: the `FROM` images airlock can make on this host.
//!
//! Nothing can be pulled, so a Dockerfile's `FROM` image must already be in the engine. Two
//! kinds airlock makes itself, the first time they are needed, with no separate step:
//!
//! - `debian:<suite>` (e.g. `debian:bookworm`): debootstrapped from the host's own Debian
//!   mirror ([`debian`]), ≈ 120 MB, needs root and `debootstrap` once;
//! - `airlock/busybox` (any tag): the host's static busybox and nothing else ([`busybox`]),
//!   ≈ 2 MB, made in under a second; the base of the `tiny` image tests use.
//!
//! Both are imported through the engine API (`POST /images/create?fromSrc=-`, the root
//! filesystem streamed as a tar) under exactly the name the `FROM` line uses, with `PATH`, a
//! default `CMD` and the labels `airlock.managed=true` and `airlock.image.bootstrap` (how it
//! was made) applied by the import's `changes`. Any other missing base is an error that says
//! so: it is not in the engine, nothing can be pulled here, and what airlock can make instead.

pub mod apt_sources;
pub mod busybox;
pub mod debian;
pub mod rootfs;

use super::lock::HostLock;
use super::progress::Progress;
use super::ImageError;
use crate::engine::labels;
use crate::engine::{Engine, EngineError, ImportSpec};

/// The name of the busybox base (any tag).
pub const BUSYBOX_REPO: &str = "airlock/busybox";

/// The `PATH` both bases set (Debian's default).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A base airlock knows how to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    Debian { suite: String },
    Busybox,
}

/// The recipe for `reference`, if airlock has one.
pub fn recipe_for(reference: &str) -> Option<Recipe> {
    if reference.contains('@') {
        return None;
    }
    let short = ["docker.io/library/", "docker.io/", "library/"]
        .iter()
        .find_map(|p| reference.strip_prefix(p))
        .unwrap_or(reference);
    let (repo, tag) = split_tag(short);
    if repo == BUSYBOX_REPO {
        return Some(Recipe::Busybox);
    }
    let suite_like = !tag.is_empty()
        && tag.starts_with(|c: char| c.is_ascii_lowercase())
        && tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if repo == "debian" && tag != "latest" && suite_like {
        return Some(Recipe::Debian {
            suite: tag.to_string(),
        });
    }
    None
}

/// `repo:tag` split at the tag's colon (not a registry port's); the tag defaults to `latest`.
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

/// Whether `reference` is in the engine (its id if so).
pub async fn present(engine: &dyn Engine, reference: &str) -> Result<Option<String>, ImageError> {
    Ok(engine.inspect_image(reference).await?.map(|img| img.id))
}

/// Make sure the base `reference` (named by `image`'s Dockerfile) is in the engine,
/// bootstrapping it when airlock can. Whether it had to be made.
pub async fn ensure_base(
    engine: &dyn Engine,
    image: &str,
    reference: &str,
    progress: &mut Progress,
) -> Result<bool, ImageError> {
    if present(engine, reference).await?.is_some() {
        return Ok(false);
    }
    let Some(recipe) = recipe_for(reference) else {
        return Err(ImageError::BaseUnavailable {
            image: image.to_string(),
            base: reference.to_string(),
        });
    };
    // Two processes needing the same base: the second waits, then finds it made.
    let _lock = HostLock::acquire(engine.host(), &format!("base:{reference}"), || {
        progress.note(&format!(
            "waiting for another airlock process bootstrapping {reference}"
        ))
    })
    .await;
    if present(engine, reference).await?.is_some() {
        return Ok(false);
    }
    match recipe {
        Recipe::Busybox => bootstrap_busybox(engine, reference, progress).await?,
        Recipe::Debian { suite } => bootstrap_debian(engine, reference, &suite, progress).await?,
    }
    Ok(true)
}

async fn bootstrap_busybox(
    engine: &dyn Engine,
    reference: &str,
    progress: &mut Progress,
) -> Result<(), ImageError> {
    let (path, version) = busybox::host_busybox()?;
    let applets = busybox::applets(&path)?;
    progress.note(&format!(
        "bootstrapping {reference} from the host's {} ({} applets)",
        path.display(),
        applets.len()
    ));
    let tar = busybox::rootfs_tar(&path, &applets).map_err(|source| ImageError::Io {
        doing: "packing a root filesystem around".into(),
        path: path.clone(),
        source,
    })?;
    let how = format!("host {} ({version})", path.display());
    let changes = changes(reference, &how, "[\"/bin/sh\"]");
    import(engine, reference, changes, Body::Full(tar)).await
}

async fn bootstrap_debian(
    engine: &dyn Engine,
    reference: &str,
    suite: &str,
    progress: &mut Progress,
) -> Result<(), ImageError> {
    let program = debian::prerequisites(reference)?;
    let rootfs = debian::debootstrap(&program, reference, suite, progress).await?;
    progress.note(&format!("importing {reference} into the engine"));
    let how = format!(
        "debootstrap --variant=minbase {suite} {}",
        rootfs.mirror.as_deref().unwrap_or("(default mirror)")
    );
    let changes = changes(reference, &how, "[\"bash\"]");
    let (writer, stream) = rootfs::ChannelWriter::new();
    let dir = rootfs.rootfs();
    let producer = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        match rootfs::write_tar(&dir, rootfs::DEBIAN_EXCLUDES, &mut writer) {
            Ok(()) => Ok(()),
            Err(e) => {
                let shown = std::io::Error::new(e.kind(), e.to_string());
                writer.fail(e);
                Err(shown)
            }
        }
    });
    let imported = import(engine, reference, changes, Body::Stream(Box::pin(stream))).await;
    // A failure to read the root filesystem explains a failed import better than the
    // engine's "unexpected EOF".
    match producer.await {
        Ok(Err(source)) => {
            return Err(ImageError::Io {
                doing: "packing the debootstrapped root filesystem".into(),
                path: rootfs.rootfs(),
                source,
            })
        }
        Err(join) => {
            return Err(ImageError::BootstrapFailed {
                base: reference.to_string(),
                message: format!("packing the root filesystem stopped: {join}"),
                tail: Vec::new(),
            })
        }
        Ok(Ok(())) => {}
    }
    imported
}

/// The import's Dockerfile-style changes: `PATH`, the default command and the labels.
fn changes(reference: &str, how: &str, cmd: &str) -> Vec<String> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    vec![
        format!("ENV PATH={PATH}"),
        format!("CMD {cmd}"),
        format!("LABEL {}=\"true\"", labels::MANAGED),
        format!("LABEL {}={}", labels::IMAGE_BOOTSTRAP, quote(how)),
        format!("LABEL {}={}", labels::IMAGE_NAME, quote(reference)),
    ]
}

/// Import a root filesystem tar as `reference`.
async fn import(
    engine: &dyn Engine,
    reference: &str,
    changes: Vec<String>,
    body: Body,
) -> Result<(), ImageError> {
    let doing = || format!("importing the bootstrapped {reference}");
    let rootfs: crate::engine::ByteStream = match body {
        Body::Full(bytes) => Box::pin(futures_util::stream::once(async move {
            Ok(bytes::Bytes::from(bytes))
        })),
        Body::Stream(stream) => stream,
    };
    engine
        .import_image(ImportSpec {
            reference: reference.to_string(),
            changes,
            rootfs,
        })
        .await?;
    if present(engine, reference).await?.is_none() {
        return Err(EngineError::Other {
            doing: doing(),
            message: format!("the import finished but {reference} is not in the engine"),
        }
        .into());
    }
    Ok(())
}

/// A root filesystem tar to import: in memory, or streamed.
pub enum Body {
    Full(Vec<u8>),
    Stream(
        std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>,
    ),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes() {
        let debian = |s: &str| {
            Some(Recipe::Debian {
                suite: s.to_string(),
            })
        };
        assert_eq!(recipe_for("debian:bookworm"), debian("bookworm"));
        assert_eq!(
            recipe_for("docker.io/library/debian:trixie"),
            debian("trixie")
        );
        assert_eq!(recipe_for("debian"), None);
        assert_eq!(recipe_for("debian:latest"), None);
        assert_eq!(recipe_for("debian:12.5"), None);
        assert_eq!(recipe_for("debian@sha256:abcd"), None);
        assert_eq!(recipe_for("airlock/busybox"), Some(Recipe::Busybox));
        assert_eq!(recipe_for("airlock/busybox:t-1"), Some(Recipe::Busybox));
        assert_eq!(recipe_for("busybox"), None);
        assert_eq!(recipe_for("ubuntu:24.04"), None);
    }

    #[test]
    fn tags_split_at_the_right_colon() {
        assert_eq!(split_tag("debian:bookworm"), ("debian", "bookworm"));
        assert_eq!(split_tag("airlock/busybox"), ("airlock/busybox", "latest"));
        assert_eq!(split_tag("reg:5000/x"), ("reg:5000/x", "latest"));
        assert_eq!(split_tag("reg:5000/x:1"), ("reg:5000/x", "1"));
    }

    #[test]
    fn changes_quote_labels() {
        let c = changes("airlock/busybox", "host \"bb\" v1", "[\"/bin/sh\"]");
        assert!(c.contains(&"LABEL airlock.managed=\"true\"".to_string()));
        assert!(c
            .iter()
            .any(|l| l == "LABEL airlock.image.bootstrap=\"host \\\"bb\\\" v1\""));
    }
}
