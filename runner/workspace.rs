//! The task's workspace: packed from the host into the run, and described by a [`Manifest`]
//! at each point the patch needs (the original, the boundary, the end of the agent phase).
//!
//! The workspace is copied, never bind-mounted, so no container can write to the host tree.
//! Packing streams a tar built from the host folder (bounded memory whatever its size);
//! symlinks are packed as links and never followed; sockets, fifos and devices are skipped.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

/// One entry of a workspace, by its path relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        size: u64,
        hash: u128,
        executable: bool,
    },
    Dir,
    Symlink {
        target: Vec<u8>,
    },
}

/// The entries of a workspace, keyed by relative path (bytes: names need not be UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

impl Manifest {
    /// Paths whose entry differs between `self` (before) and `after`, added or removed,
    /// skipping anything under `.git/` (the agent phase can't write it).
    pub fn changed(&self, after: &Manifest) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (path, entry) in &after.entries {
            if self.entries.get(path) != Some(entry) && !matches!(entry, Entry::Dir) {
                out.push(path.clone());
            }
        }
        for (path, entry) in &self.entries {
            if !after.entries.contains_key(path) && !matches!(entry, Entry::Dir) {
                out.push(path.clone());
            }
        }
        out.retain(|p| !is_git_path(p));
        out.sort();
        out.dedup();
        out
    }
}

/// The entry at `rel` under the host folder `root` as it is now, recorded as [`pack`] records
/// one; `None` when nothing [`pack`] would copy is there.
pub fn entry_now(root: &Path, rel: &[u8]) -> io::Result<Option<Entry>> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = root.join(std::ffi::OsStr::from_bytes(rel));
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ft = meta.file_type();
    Ok(if ft.is_dir() {
        Some(Entry::Dir)
    } else if ft.is_symlink() {
        Some(Entry::Symlink {
            target: std::fs::read_link(&path)?.as_os_str().as_bytes().to_vec(),
        })
    } else if ft.is_file() {
        let mut reader = HashingReader {
            inner: std::fs::File::open(&path)?,
            hasher: Hasher::default(),
            bytes: 0,
        };
        io::copy(&mut reader, &mut io::sink())?;
        Some(Entry::File {
            size: reader.bytes,
            hash: reader.hasher.finish(),
            executable: meta.permissions().mode() & 0o111 != 0,
        })
    } else {
        None
    })
}

pub fn is_git_path(p: &[u8]) -> bool {
    p == b".git" || p.starts_with(b".git/")
}

/// A streaming hasher for file contents (xxh3-128: change detection, not security; an agent
/// that forged a collision would only hide its own change from its own patch).
pub struct Hasher(xxhash_rust::xxh3::Xxh3);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(xxhash_rust::xxh3::Xxh3::new())
    }
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    pub inner: R,
    pub hasher: Hasher,
    pub bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Pack `dir` as a tar stream (entries relative to `dir`, owned by root: the setup phase
/// hands them to the agent's user) and, when the stream is done, its manifest.
/// `exclude` lists host paths left out (e.g. the run record folder inside the workspace).
pub fn pack(
    dir: PathBuf,
    exclude: Vec<PathBuf>,
) -> (
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    tokio::task::JoinHandle<io::Result<Packed>>,
) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let handle = tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let mut packer = Packer {
            builder: tar::Builder::new(writer),
            manifest: Manifest::default(),
            skipped: Vec::new(),
            exclude,
        };
        let result = packer
            .walk(&dir, &dir)
            .and_then(|_| packer.builder.into_inner())
            .and_then(|mut w| w.flush());
        match result {
            Ok(()) => Ok(Packed {
                manifest: packer.manifest,
                skipped: packer.skipped,
            }),
            Err(e) => {
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    });
    let stream = tokio_stream_from(rx);
    (stream, handle)
}

/// What packing found.
#[derive(Debug, Default)]
pub struct Packed {
    pub manifest: Manifest,
    /// Special files (sockets, fifos, devices) that were not packed.
    pub skipped: Vec<PathBuf>,
}

fn tokio_stream_from(
    rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

const CHUNK: usize = 256 * 1024;

/// `Write` into a bounded channel of chunks (backpressure: the engine's pace sets ours).
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the engine stopped reading the workspace",
                )
            })?;
        }
        Ok(())
    }
}

struct Packer {
    builder: tar::Builder<ChannelWriter>,
    manifest: Manifest,
    skipped: Vec<PathBuf>,
    exclude: Vec<PathBuf>,
}

impl Packer {
    fn walk(&mut self, root: &Path, dir: &Path) -> io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let path = entry.path();
            if self.exclude.iter().any(|x| x == &path) {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("walk stays under root")
                .to_path_buf();
            let meta = std::fs::symlink_metadata(&path)?;
            let ft = meta.file_type();
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
            header.set_mtime(meta.mtime().max(0) as u64);
            header.set_uid(0);
            header.set_gid(0);
            let key = rel.as_os_str().as_bytes().to_vec();
            if ft.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                self.builder.append_data(&mut header, &rel, io::empty())?;
                self.manifest.entries.insert(key, Entry::Dir);
                self.walk(root, &path)?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path)?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                self.builder.append_link(&mut header, &rel, &target)?;
                self.manifest.entries.insert(
                    key,
                    Entry::Symlink {
                        target: target.as_os_str().as_bytes().to_vec(),
                    },
                );
            } else if ft.is_file() {
                let file = std::fs::File::open(&path)?;
                let mut reader = HashingReader {
                    inner: file,
                    hasher: Hasher::default(),
                    bytes: 0,
                };
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.len());
                // A file that changes size while packed would corrupt the tar: read exactly
                // the size in the header.
                self.builder
                    .append_data(&mut header, &rel, (&mut reader).take(meta.len()))?;
                if reader.bytes != meta.len() {
                    return Err(io::Error::other(format!(
                        "{} changed size while it was being copied",
                        path.display()
                    )));
                }
                let executable = meta.permissions().mode() & 0o111 != 0;
                self.manifest.entries.insert(
                    key,
                    Entry::File {
                        size: meta.len(),
                        hash: reader.hasher.finish(),
                        executable,
                    },
                );
            } else {
                self.skipped.push(path);
            }
        }
        Ok(())
    }
}

/// Turn an engine byte stream into a blocking reader (for the `tar` crate). Must be called in
/// async context; the reader must be used from a blocking thread.
pub fn blocking_reader<S, E>(stream: S) -> impl Read + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let stream = stream.map(|r| r.map_err(|e| io::Error::other(e.to_string())));
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

/// The manifest of a workspace tar stream as the archive API gives it (entries under
/// `<root_name>/`), with no path checks beyond staying under the root (used for the agent
/// phase's final workspace, which is only compared, never trusted).
pub fn manifest_of_tar(reader: impl Read, root_name: &str) -> io::Result<Manifest> {
    let mut archive = tar::Archive::new(reader);
    let mut manifest = Manifest::default();
    let prefix = format!("{root_name}/");
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = raw.strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        let rel = rel.strip_suffix(b"/").unwrap_or(rel).to_vec();
        if rel.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        let item = match kind {
            tar::EntryType::Directory => Entry::Dir,
            tar::EntryType::Symlink => Entry::Symlink {
                target: entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default(),
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                let mut r = HashingReader {
                    inner: &mut entry,
                    hasher: Hasher::default(),
                    bytes: 0,
                };
                io::copy(&mut r, &mut io::sink())?;
                Entry::File {
                    size: r.bytes,
                    hash: r.hasher.finish(),
                    executable,
                }
            }
            // A hard link's content is its target's: record it as a file with the target's
            // entry if known.
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let target = target
                    .strip_prefix(prefix.as_bytes())
                    .unwrap_or(&target)
                    .to_vec();
                match manifest.entries.get(&target) {
                    Some(e) => e.clone(),
                    None => continue,
                }
            }
            _ => continue,
        };
        manifest.entries.insert(rel, item);
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, hash: u128) -> Entry {
        Entry::File {
            size,
            hash,
            executable: false,
        }
    }

    #[test]
    fn changed_lists_added_modified_removed_but_not_git() {
        let mut a = Manifest::default();
        a.entries.insert(b"same".to_vec(), file(1, 1));
        a.entries.insert(b"mod".to_vec(), file(1, 1));
        a.entries.insert(b"gone".to_vec(), file(1, 1));
        a.entries.insert(b".git/HEAD".to_vec(), file(1, 1));
        let mut b = a.clone();
        b.entries.insert(b"mod".to_vec(), file(1, 2));
        b.entries.remove(b"gone".as_slice());
        b.entries.insert(b"new".to_vec(), file(3, 3));
        b.entries.insert(b".git/HEAD".to_vec(), file(9, 9));
        assert_eq!(
            a.changed(&b),
            vec![b"gone".to_vec(), b"mod".to_vec(), b"new".to_vec()]
        );
    }

    #[tokio::test]
    async fn pack_round_trips_through_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join(".airlock")).unwrap();
        let (stream, done) = pack(dir.path().to_path_buf(), vec![dir.path().join(".airlock")]);
        let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        let packed = done.await.unwrap().unwrap();
        let mut tar_bytes = b"".to_vec();
        // Re-root the entries under "workspace/" as the archive API would.
        let packed_bytes = chunks.concat();
        let mut archive = tar::Archive::new(&packed_bytes[..]);
        let mut builder = tar::Builder::new(&mut tar_bytes);
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut h = e.header().clone();
            let p = Path::new("workspace").join(e.path().unwrap());
            if h.entry_type() == tar::EntryType::Symlink {
                let l = e.link_name().unwrap().unwrap().into_owned();
                builder.append_link(&mut h, &p, &l).unwrap();
            } else {
                builder.append_data(&mut h, &p, &mut e).unwrap();
            }
        }
        builder.finish().unwrap();
        drop(builder);
        let m = manifest_of_tar(&tar_bytes[..], "workspace").unwrap();
        assert_eq!(m, packed.manifest);
        assert!(m.entries.contains_key(b"sub/a.txt".as_slice()));
        assert_eq!(
            m.entries.get(b"link".as_slice()),
            Some(&Entry::Symlink {
                target: b"/etc/shadow".to_vec()
            })
        );
        assert!(!m.entries.keys().any(|k| k.starts_with(b".airlock")));
    }
}
