//! An image folder as the engine sees it: a tar build context, and the content hash that names it.
//!
//! Both are made from one walk of the folder, so "what was hashed" and "what was sent" can't
//! drift apart. Both are deterministic: entries sorted by path, a fixed mtime, uid/gid 0 and
//! modes normalised the way git stores them (`0755` for folders and executable files, `0644`
//! for the rest). Normalising matters twice: the hash is the same on every checkout of the
//! same commit whatever the umask, and the classic builder's cache (which keys `COPY` on file
//! headers) sees the same context for the same content, so a rebuild of an unchanged step is
//! a cache hit.
//!
//! The hash covers each entry's kind, relative path, normalised mode and content (or link
//! target), prefixed by a format version: any change to the folder (a byte, a rename, a new
//! empty folder, a `chmod +x`) gives a new hash and so a new tag, and nothing else does.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImageError;

/// The mtime every entry of a build context carries (2000-01-01T00:00:00Z): fixed for
/// determinism, and after 1980 because some tools (zip) reject older timestamps on files a
/// Dockerfile copies in.
pub const CONTEXT_MTIME: u64 = 946_684_800;

/// Bumped when the hash format changes, so every image is rebuilt once instead of being
/// wrongly reported as up to date.
const HASH_FORMAT: &[u8] = b"airlock-image-context-v1\0";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
}

/// One entry of the folder, with its path relative to the folder.
#[derive(Debug, Clone)]
struct Entry {
    rel: PathBuf,
    kind: Kind,
    mode: u32,
}

/// A walked image folder: what the hash covers and what the tar holds.
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    entries: Vec<Entry>,
}

impl Context {
    /// Walk `dir` (an `images/<name>/` folder). Sockets, fifos and devices are refused: they
    /// can't be part of a build context.
    pub fn walk(dir: &Path) -> Result<Context, ImageError> {
        let mut entries = Vec::new();
        walk_into(dir, Path::new(""), &mut entries)?;
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(Context {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// The full sha256 of the folder's content, as 64 lowercase hex digits.
    pub fn hash(&self) -> Result<String, ImageError> {
        let mut h = Sha256::new();
        h.update(HASH_FORMAT);
        for e in &self.entries {
            let path = e.rel.as_os_str().as_encoded_bytes();
            match &e.kind {
                Kind::Dir => {
                    h.update(b"d\0");
                    h.update(path);
                    h.update(format!("\0{:o}\0", e.mode).as_bytes());
                }
                Kind::Symlink(target) => {
                    h.update(b"l\0");
                    h.update(path);
                    h.update(b"\0");
                    h.update(target.as_os_str().as_encoded_bytes());
                    h.update(b"\0");
                }
                Kind::File => {
                    let full = self.dir.join(&e.rel);
                    let len = fs::metadata(&full).map_err(|s| io_err("reading", &full, s))?;
                    h.update(b"f\0");
                    h.update(path);
                    h.update(format!("\0{:o}\0{}\0", e.mode, len.len()).as_bytes());
                    let mut file =
                        fs::File::open(&full).map_err(|s| io_err("reading", &full, s))?;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut seen = 0u64;
                    loop {
                        let n = file
                            .read(&mut buf)
                            .map_err(|s| io_err("reading", &full, s))?;
                        if n == 0 {
                            break;
                        }
                        seen += n as u64;
                        h.update(&buf[..n]);
                    }
                    // A file that grew or shrank while we read it must not hash like a
                    // stable one of another length.
                    h.update(seen.to_le_bytes());
                }
            }
        }
        Ok(crate::hex::lower(&h.finalize()))
    }

    /// The build context as an uncompressed tar, in memory (image folders are small; a
    /// Dockerfile's `COPY` sources are meant to be).
    pub fn tar(&self) -> Result<Vec<u8>, ImageError> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(CONTEXT_MTIME);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mode(e.mode);
            let full = self.dir.join(&e.rel);
            let res = match &e.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    b.append_data(&mut header, &e.rel, io::empty())
                }
                Kind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    b.append_link(&mut header, &e.rel, target)
                }
                Kind::File => {
                    let file = fs::File::open(&full).map_err(|s| io_err("reading", &full, s))?;
                    let len = file
                        .metadata()
                        .map_err(|s| io_err("reading", &full, s))?
                        .len();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(len);
                    b.append_data(&mut header, &e.rel, file.take(len))
                }
            };
            res.map_err(|s| io_err("packing the build context with", &full, s))?;
        }
        b.into_inner()
            .map_err(|s| io_err("packing the build context of", &self.dir, s))
    }
}

fn walk_into(root: &Path, rel: &Path, out: &mut Vec<Entry>) -> Result<(), ImageError> {
    let dir = root.join(rel);
    let read = fs::read_dir(&dir).map_err(|s| io_err("listing", &dir, s))?;
    for item in read {
        let item = item.map_err(|s| io_err("listing", &dir, s))?;
        let rel_child = rel.join(item.file_name());
        let full = root.join(&rel_child);
        let meta = fs::symlink_metadata(&full).map_err(|s| io_err("reading", &full, s))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(|s| io_err("reading", &full, s))?;
            out.push(Entry {
                rel: rel_child,
                kind: Kind::Symlink(target),
                mode: 0o777,
            });
        } else if ft.is_dir() {
            out.push(Entry {
                rel: rel_child.clone(),
                kind: Kind::Dir,
                mode: 0o755,
            });
            walk_into(root, &rel_child, out)?;
        } else if ft.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            out.push(Entry {
                rel: rel_child,
                kind: Kind::File,
                mode: if exec { 0o755 } else { 0o644 },
            });
        } else {
            return Err(ImageError::BadFolder {
                path: full,
                reason: "it is a socket, fifo or device file, which can't be part of a build \
                         context; remove it from the image folder"
                    .into(),
            });
        }
    }
    Ok(())
}

fn io_err(doing: &str, path: &Path, source: io::Error) -> ImageError {
    ImageError::Io {
        doing: doing.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::create_dir(t.path().join("files")).unwrap();
        fs::write(t.path().join("files/a.txt"), "a\n").unwrap();
        t
    }

    fn hash(dir: &Path) -> String {
        Context::walk(dir).unwrap().hash().unwrap()
    }

    #[test]
    fn hash_is_stable_and_hex() {
        let t = folder();
        let h = hash(t.path());
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(h, hash(t.path()));
    }

    #[test]
    fn same_content_elsewhere_hashes_the_same() {
        let a = folder();
        let b = folder();
        // Different umask-style permissions that git would not record.
        fs::set_permissions(
            b.path().join("files/a.txt"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert_eq!(hash(a.path()), hash(b.path()));
    }

    #[test]
    fn every_kind_of_change_changes_the_hash() {
        let t = folder();
        let mut seen = vec![hash(t.path())];
        let mut check = |what: &str| {
            let h = hash(t.path());
            assert!(!seen.contains(&h), "{what} did not change the hash");
            seen.push(h);
        };
        fs::write(t.path().join("files/a.txt"), "b\n").unwrap();
        check("a content change");
        fs::set_permissions(
            t.path().join("files/a.txt"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        check("chmod +x");
        fs::rename(t.path().join("files/a.txt"), t.path().join("files/b.txt")).unwrap();
        check("a rename");
        fs::create_dir(t.path().join("empty")).unwrap();
        check("a new empty folder");
        std::os::unix::fs::symlink("b.txt", t.path().join("files/link")).unwrap();
        check("a new symlink");
    }

    #[test]
    fn tar_is_deterministic_and_sorted() {
        let t = folder();
        fs::write(t.path().join("0first"), "x").unwrap();
        let one = Context::walk(t.path()).unwrap().tar().unwrap();
        let two = Context::walk(t.path()).unwrap().tar().unwrap();
        assert_eq!(one, two);
        let mut ar = tar::Archive::new(one.as_slice());
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), CONTEXT_MTIME);
            assert_eq!(h.uid().unwrap(), 0);
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(names, ["0first", "Dockerfile", "files", "files/a.txt"]);
    }

    #[test]
    fn special_files_are_refused() {
        let t = folder();
        let sock = t.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = Context::walk(t.path()).unwrap_err();
        assert!(err.to_string().contains("s.sock"), "{err}");
    }
}
