//! `airlock image list`: the images airlock manages, and whether their folders changed since.
//!
//! Found by the `airlock.managed` label; an image built from a folder carries that folder's
//! name and content hash, so comparing the hash with the folder's current one says whether
//! the next build will make a new image.

use std::collections::HashMap;

use super::{context, folder_of, ImageError};
use crate::engine::labels;
use crate::engine::Engine;
use crate::root::ConfigRoot;

/// One airlock-managed image in the engine.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// The image folder's name, or the base's reference for a bootstrapped base.
    pub name: String,
    /// Its tags (`airlock/tiny:0123456789ab`); empty when a rebuild took its tag.
    pub tags: Vec<String>,
    pub id: String,
    /// The folder content hash it was built from (none for bases).
    pub hash: Option<String>,
    /// Bytes.
    pub size: i64,
    /// Unix seconds.
    pub created: i64,
    pub state: ImageState,
}

/// How a listed image relates to the folders under `images/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    /// Built from the folder's current content.
    Current,
    /// The folder changed since (the next build makes a new image).
    Changed,
    /// No such folder under this root's `images/`.
    NoFolder,
    /// A base airlock bootstrapped (how, from its label).
    Bootstrapped(String),
}

/// The airlock-managed images in the engine, newest first. `root` (when known) lets each be
/// compared with its folder.
pub async fn list(
    engine: &dyn Engine,
    root: Option<&ConfigRoot>,
) -> Result<Vec<ImageInfo>, ImageError> {
    let summaries = engine.list_images(&[labels::managed_filter()]).await?;
    let mut hashes: HashMap<String, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for s in summaries {
        let label = |k: &str| s.labels.get(k).cloned();
        let tags = s.tags.clone();
        // An image built from a folder carries its hash; a base only how it was made (images
        // built on a base inherit that label too, so the hash decides).
        let (name, hash, state) = if let (Some(name), Some(hash)) =
            (label(labels::IMAGE_NAME), label(labels::IMAGE_HASH))
        {
            let current = hashes
                .entry(name.clone())
                .or_insert_with(|| root.and_then(|r| folder_hash(r, &name)));
            let state = match current {
                None => ImageState::NoFolder,
                Some(c) if *c == hash => ImageState::Current,
                Some(_) => ImageState::Changed,
            };
            (name, Some(hash), state)
        } else if let Some(how) = label(labels::IMAGE_BOOTSTRAP) {
            let name = label(labels::IMAGE_NAME)
                .or_else(|| tags.first().cloned())
                .unwrap_or_default();
            (name, None, ImageState::Bootstrapped(how))
        } else {
            // Managed, but not an image airlock builds (a run's committed state, say).
            continue;
        };
        out.push(ImageInfo {
            name,
            tags,
            id: s.id,
            hash,
            size: s.size,
            created: s.created,
            state,
        });
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
    Ok(out)
}

fn folder_hash(root: &ConfigRoot, name: &str) -> Option<String> {
    let dir = folder_of(root, name).ok().flatten()?;
    context::Context::walk(&dir).ok()?.hash().ok()
}
