//! `airlock image build` and `airlock image list`: thin shells around [`crate::images`].
//!
//! Results go to stdout, one line per image; build progress goes to stderr.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::Globals;
use crate::images::{self, EnsureOptions, ImageState, Outcome};
use crate::root::ConfigRoot;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Build images/NAME/ (a no-op when it is up to date; bootstraps a missing
    /// debian:<suite> or airlock/busybox base with no registry).
    Build {
        /// Image folders under images/ [default: all of them]
        names: Vec<String>,
        /// Rebuild even when up to date, ignoring the build cache.
        #[arg(long)]
        force: bool,
    },
    /// List airlock's images: name, tag, content hash, size, age, and whether the folder has
    /// changed since the image was built.
    List,
}

pub async fn run(cmd: ImageCommand, g: &Globals) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Build { names, force } => build(names, force, g).await,
        ImageCommand::List => list(g).await,
    }
}

async fn build(names: Vec<String>, force: bool, g: &Globals) -> anyhow::Result<i32> {
    let root = ConfigRoot::locate(g.root.as_deref(), None)?;
    let names = if names.is_empty() {
        let all = images::folders(&root);
        if all.is_empty() {
            anyhow::bail!(
                "no image folders in {} (each is images/NAME/Dockerfile)",
                root.images_dir().display()
            );
        }
        all
    } else {
        names
    };
    let engine = crate::engine::from_env()?;
    let options = EnsureOptions {
        force,
        ..EnsureOptions::default()
    };
    for name in names {
        let started = Instant::now();
        let done = images::ensure_with(&*engine, &root, &name, options.clone()).await?;
        let (reference, id) = (&done.image.reference, &done.image.id);
        match done.outcome {
            Outcome::UpToDate => println!("image {name}: up to date {reference} {id}"),
            Outcome::Built { bootstrapped } => {
                let bases = if bootstrapped.is_empty() {
                    String::new()
                } else {
                    format!(", bootstrapped {}", bootstrapped.join(", "))
                };
                println!(
                    "image {name}: built {reference} {id} ({:.1}s{bases})",
                    started.elapsed().as_secs_f64()
                );
            }
            Outcome::InEngine { bootstrapped } => {
                let how = if bootstrapped {
                    "bootstrapped into the engine"
                } else {
                    "already in the engine, not an image folder: nothing to build"
                };
                println!("image {name}: {how} {reference} {id}");
            }
        }
    }
    Ok(0)
}

async fn list(g: &Globals) -> anyhow::Result<i32> {
    let root = ConfigRoot::locate(g.root.as_deref(), None).ok();
    let engine = crate::engine::from_env()?;
    let found = images::list(&*engine, root.as_ref()).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut rows = vec![[
        "NAME".to_string(),
        "TAG".to_string(),
        "HASH".to_string(),
        "SIZE".to_string(),
        "CREATED".to_string(),
        "FOLDER".to_string(),
    ]];
    for img in found {
        let tag = if img.tags.is_empty() {
            "<replaced>".to_string()
        } else {
            img.tags.join(",")
        };
        let hash = img
            .hash
            .as_deref()
            .map(|h| h[..12.min(h.len())].to_string())
            .unwrap_or_else(|| "-".into());
        let state = match &img.state {
            ImageState::Current => "current".to_string(),
            ImageState::Changed => "changed since".to_string(),
            ImageState::NoFolder => "no folder here".to_string(),
            ImageState::Bootstrapped(how) => format!("bootstrapped: {how}"),
        };
        rows.push([
            img.name,
            tag,
            hash,
            size(img.size),
            age(now - img.created),
            state,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 5 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
    Ok(0)
}

fn size(bytes: i64) -> String {
    let mb = bytes as f64 / 1_000_000.0;
    if mb >= 10.0 {
        format!("{mb:.0} MB")
    } else {
        format!("{mb:.1} MB")
    }
}

fn age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
