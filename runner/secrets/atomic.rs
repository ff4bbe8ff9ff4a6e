//! Replacing a file so that it is always either the old version or the new one.
//!
//! A secret's file is rewritten by `set` and by every change of recipients. If airlock is
//! killed, the disk fills up or the encryption fails half-way, the old `NAME.age` must still
//! be there, whole: the new contents go to a temporary file in the same folder, are flushed
//! to disk, and only then renamed over the old file (a rename within a folder is atomic).
//! Only ciphertext and public data are ever written this way; values never touch the disk.

use std::fs::{File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Write `path` atomically: `write` fills a temporary file next to it, which is synced and
/// renamed over `path`, then the folder is synced so the rename itself is durable. When
/// `write` (or anything else) fails, `path` is untouched and the temporary file is removed.
pub(crate) fn write_atomically(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    write(tmp.as_file_mut())?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("X.age");
        std::fs::write(&path, b"old contents").unwrap();
        let err = write_atomically(&path, 0o644, |f| {
            f.write_all(b"half of the new")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
        assert_eq!(entries(tmp.path()), vec!["X.age"]);
    }

    #[test]
    fn a_panicking_writer_leaves_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("X.age");
        std::fs::write(&path, b"old contents").unwrap();
        let result = std::panic::catch_unwind(|| {
            let _ = write_atomically(&path, 0o644, |f| {
                f.write_all(b"partial")?;
                panic!("killed mid-write");
            });
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
        assert_eq!(entries(tmp.path()), vec!["X.age"]);
    }

    #[test]
    fn a_successful_write_replaces_with_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("X.age");
        std::fs::write(&path, b"old").unwrap();
        write_atomically(&path, 0o644, |f| f.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(entries(tmp.path()), vec!["X.age"]);
    }
}
