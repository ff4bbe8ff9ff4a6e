//! A root filesystem as a tar stream for the engine's import.
//!
//! A debootstrapped Debian is ≈ 200 MB on disk, so it is never held in memory: a blocking
//! thread walks the folder and writes the tar into a bounded channel, and the channel is the
//! body of the import request. Unlike a build context, a root filesystem keeps its real
//! owners, modes (setuid included) and mtimes, and its hard links stay links.
//!
//! Some paths are left out (see [`DEBIAN_EXCLUDES`]): the `.deb` files and package lists apt
//! downloaded (half the size, and re-fetched by `apt-get update` anyway), the host's own
//! `resolv.conf` and `hostname` that debootstrap copies in (the engine provides both in every
//! container), and the contents of `dev`, `proc` and `sys` (the engine mounts its own).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

/// What a Debian root filesystem's import leaves out: `(folder, file name pattern)`, where
/// the pattern is `*` (everything in it) or `*.ext`.
pub const DEBIAN_EXCLUDES: &[(&str, &str)] = &[
    ("var/cache/apt/archives", "*.deb"),
    ("var/lib/apt/lists", "*"),
    ("etc", "resolv.conf"),
    ("etc", "hostname"),
    ("dev", "*"),
    ("proc", "*"),
    ("sys", "*"),
];

fn excluded(rel: &Path, excludes: &[(&str, &str)]) -> bool {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return false;
    };
    let name = name.to_string_lossy();
    excludes.iter().any(|(dir, pattern)| {
        parent == Path::new(dir)
            && match pattern.strip_prefix('*') {
                Some(suffix) => name.ends_with(suffix),
                None => name == *pattern,
            }
    })
}

/// Write `root` as a tar to `out`, leaving out `excludes`.
pub fn write_tar(root: &Path, excludes: &[(&str, &str)], out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b.sparse(false);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&rel_dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        // Pushed in reverse so folders come out in sorted order.
        let mut subdirs = Vec::new();
        for name in names {
            let rel = rel_dir.join(&name);
            if excluded(&rel, excludes) {
                continue;
            }
            let full = root.join(&rel);
            let meta = fs::symlink_metadata(&full)?;
            let ft = meta.file_type();
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            if ft.is_symlink() {
                header.set_size(0);
                b.append_link(&mut header, &rel, fs::read_link(&full)?)?;
            } else if ft.is_dir() {
                header.set_size(0);
                b.append_data(&mut header, &rel, io::empty())?;
                subdirs.push(rel);
            } else if ft.is_file() {
                if meta.nlink() > 1 {
                    if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                        header.set_entry_type(tar::EntryType::Link);
                        header.set_size(0);
                        b.append_link(&mut header, &rel, first)?;
                        continue;
                    }
                    links.insert((meta.dev(), meta.ino()), rel.clone());
                }
                b.append_data(&mut header, &rel, fs::File::open(&full)?)?;
            } else {
                // Device nodes, fifos, sockets: none belong in an image's root filesystem
                // (the engine makes /dev), so they are left out.
                tracing::debug!("left out of the import: {} (special file)", rel.display());
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    b.into_inner()?.flush()
}

/// A `Write` that sends what it is given, in chunks, down a channel to an async reader.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    /// A writer and the stream of what it writes (at most a few chunks in flight).
    pub fn new() -> (
        ChannelWriter,
        impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(8);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (
            ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            },
            stream,
        )
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }

    /// Pass an error to the reader (so the request fails instead of ending early and clean).
    pub fn fail(self, err: io::Error) {
        let _ = self.tx.blocking_send(Err(err));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_links_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in [
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives",
            "etc",
            "bin",
        ] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::write(r.join("var/lib/apt/lists/x_Packages"), "p").unwrap();
        fs::write(r.join("var/cache/apt/archives/a.deb"), "deb").unwrap();
        fs::write(r.join("var/cache/apt/archives/lock"), "").unwrap();
        fs::write(r.join("etc/resolv.conf"), "nameserver").unwrap();
        fs::write(r.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(r.join("bin/tool"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(r.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(r.join("bin/tool"), r.join("bin/tool2")).unwrap();
        std::os::unix::fs::symlink("tool", r.join("bin/alias")).unwrap();

        let mut out = Vec::new();
        write_tar(r, DEBIAN_EXCLUDES, &mut out).unwrap();
        let mut ar = tar::Archive::new(out.as_slice());
        let mut seen = HashMap::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            seen.insert(
                e.path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string(),
                (h.entry_type(), h.mode().unwrap()),
            );
        }
        for gone in [
            "var/lib/apt/lists/x_Packages",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/a.deb",
            "etc/resolv.conf",
        ] {
            assert!(!seen.contains_key(gone), "{gone} was not left out");
        }
        for kept in [
            "var/lib/apt/lists",
            "var/cache/apt/archives/lock",
            "etc/passwd",
        ] {
            assert!(seen.contains_key(kept), "{kept} missing: {seen:?}");
        }
        assert_eq!(seen["bin/tool"].1 & 0o7777, 0o4755);
        assert_eq!(seen["bin/tool2"].0, tar::EntryType::Link);
        assert_eq!(seen["bin/alias"].0, tar::EntryType::Symlink);
    }
}
