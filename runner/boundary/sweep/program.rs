//! `airlock-sweep`: the program the boundary runs over the crossing volumes, in a container
//! of its own, to remove what the engine's archive API can't show the leak check: Unix
//! sockets (left out of the archive; a socket's *name* can carry a secret) and extended
//! attributes (every one but `security.capability` is left out; `curl --xattr` stores a URL,
//! query-string token included, in `user.xdg.origin.url`). What can't be scanned doesn't
//! cross.
//!
//! It is built by `runner/build.rs` as a static binary with no dependencies but `std`, so it
//! runs in an image holding nothing else and loads no library a setup script could have
//! replaced. It never follows a symlink (`lstat`, `llistxattr`, `lremovexattr`) and never
//! writes anything but removals. Arguments: the folders to sweep. Output, one line per
//! removal or failure, with every path and name hex-encoded (they are the setup phase's bytes,
//! and airlock redacts them before anyone sees them):
//!
//! ```text
//! socket <path>
//! xattr <path> <name>
//! error <path> <message>
//! ```
//!
//! It exits 0 when everything was swept, 1 when anything could not be.

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

extern "C" {
    fn llistxattr(path: *const std::ffi::c_char, list: *mut std::ffi::c_char, size: usize)
        -> isize;
    fn lremovexattr(path: *const std::ffi::c_char, name: *const std::ffi::c_char) -> i32;
}

/// What was removed, or could not be.
#[derive(Debug, PartialEq, Eq)]
pub enum Swept {
    Socket(Vec<u8>),
    Xattr(Vec<u8>, Vec<u8>),
    Error(Vec<u8>, String),
}

/// Sweep the tree at `root`: remove every socket and every extended attribute.
pub fn sweep(root: &Path, found: &mut dyn FnMut(Swept)) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let bytes = path.as_os_str().as_bytes().to_vec();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                found(Swept::Error(bytes, e.to_string()));
                continue;
            }
        };
        if meta.file_type().is_socket() {
            match std::fs::remove_file(&path) {
                Ok(()) => found(Swept::Socket(bytes)),
                Err(e) => found(Swept::Error(bytes, e.to_string())),
            }
            continue;
        }
        strip_xattrs(&path, found);
        if meta.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(entries) => {
                    for entry in entries {
                        match entry {
                            Ok(e) => stack.push(e.path()),
                            Err(e) => found(Swept::Error(bytes.clone(), e.to_string())),
                        }
                    }
                }
                Err(e) => found(Swept::Error(bytes, e.to_string())),
            }
        }
    }
}

fn strip_xattrs(path: &Path, found: &mut dyn FnMut(Swept)) {
    let bytes = path.as_os_str().as_bytes();
    let Ok(c_path) = CString::new(bytes) else {
        return found(Swept::Error(bytes.to_vec(), "NUL in path".into()));
    };
    let mut list = vec![0u8; 4096];
    let len = loop {
        // SAFETY: c_path is NUL-terminated; list is a writable buffer of list.len() bytes.
        let n = unsafe { llistxattr(c_path.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
        if n >= 0 {
            break n as usize;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            // ERANGE: the list grew; ask for its size and try again.
            Some(34) => {
                // SAFETY: a size query (null buffer, size 0).
                let need = unsafe { llistxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) };
                list = vec![0u8; need.max(0) as usize + 4096];
            }
            // ENOTSUP: the filesystem has no extended attributes, so nothing to strip.
            Some(95) => return,
            _ => return found(Swept::Error(bytes.to_vec(), err.to_string())),
        }
    };
    for name in list[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c_name = CString::new(name).expect("split on NUL");
        // SAFETY: both are NUL-terminated strings.
        if unsafe { lremovexattr(c_path.as_ptr(), c_name.as_ptr()) } == 0 {
            found(Swept::Xattr(bytes.to_vec(), name.to_vec()));
        } else {
            let err = std::io::Error::last_os_error();
            found(Swept::Error(
                bytes.to_vec(),
                format!("removing {}: {err}", String::from_utf8_lossy(name)),
            ));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One output line for `swept`.
pub fn line(swept: &Swept) -> String {
    match swept {
        Swept::Socket(p) => format!("socket {}\n", hex(p)),
        Swept::Xattr(p, n) => format!("xattr {} {}\n", hex(p), hex(n)),
        Swept::Error(p, m) => format!("error {} {}\n", hex(p), hex(m.as_bytes())),
    }
}

#[allow(dead_code)] // a binary's entry point; unit tests use the functions above
fn main() -> std::process::ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    for root in std::env::args_os().skip(1) {
        let root = PathBuf::from(OsStr::from_bytes(root.as_bytes()));
        sweep(&root, &mut |s| {
            failed |= matches!(s, Swept::Error(..));
            let _ = out.write_all(line(&s).as_bytes());
        });
    }
    if out.flush().is_err() || failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
