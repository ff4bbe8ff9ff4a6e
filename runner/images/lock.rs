//! A host-wide lock per image, so two airlock processes don't build the same thing twice.
//!
//! Correctness doesn't depend on it: two concurrent builds of one image both succeed (the last
//! tag wins and both results are equivalent). The lock only saves the duplicate work, which
//! for a bootstrapped Debian is a minute of debootstrap and an extra dangling image. Whoever
//! waited re-checks the engine after taking the lock and usually finds the image ready.
//!
//! It is an `flock` on a file in the user's runtime folder (else the temp folder), named after
//! the engine and the image's name (not its content, so the files stay few). When the file can't be opened (another user's file, a read-only
//! folder), airlock goes on without the lock rather than fail.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

/// A held lock; released on drop.
pub struct HostLock {
    _lock: Option<Flock<File>>,
}

impl HostLock {
    /// Take the lock named by `engine_host` and `key` (an image name), calling `waiting`
    /// first when another process holds it.
    pub async fn acquire(engine_host: &str, key: &str, waiting: impl FnOnce()) -> HostLock {
        let path = lock_path(engine_host, key);
        let Some(file) = open(&path) else {
            return HostLock { _lock: None };
        };
        let first =
            tokio::task::spawn_blocking(move || Flock::lock(file, FlockArg::LockExclusiveNonblock))
                .await;
        let file = match first {
            Ok(Ok(lock)) => return HostLock { _lock: Some(lock) },
            Ok(Err((file, nix::errno::Errno::EWOULDBLOCK))) => file,
            Ok(Err((_, errno))) => {
                tracing::debug!("no lock on {}: {errno}", path.display());
                return HostLock { _lock: None };
            }
            Err(_) => return HostLock { _lock: None },
        };
        waiting();
        let lock = tokio::task::spawn_blocking(move || {
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, errno)| tracing::debug!("no lock on {}: {errno}", path.display()))
                .ok()
        })
        .await
        .ok()
        .flatten();
        HostLock { _lock: lock }
    }
}

fn lock_path(engine_host: &str, key: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let digest = Sha256::digest(format!("{engine_host}\0{key}").as_bytes());
    let short = crate::hex::lower(&digest[..8]);
    dir.join(format!("airlock-image-{short}.lock"))
}

fn open(path: &PathBuf) -> Option<File> {
    // O_NOFOLLOW: in a shared temp folder, never follow a link someone else planted.
    let nofollow = nix::libc::O_NOFOLLOW;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .custom_flags(nofollow)
        .open(path)
        .or_else(|_| {
            OpenOptions::new()
                .read(true)
                .custom_flags(nofollow)
                .open(path)
        })
        .map_err(|e| tracing::debug!("no lock file {}: {e}", path.display()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_lock_is_exclusive_and_released_on_drop() {
        let key = format!("test-{}", std::process::id());
        let first = HostLock::acquire("unit-test", &key, || panic!("nobody holds it")).await;
        assert!(first._lock.is_some());
        // A second open of the same file can't take the lock while the first holds it.
        let file = open(&lock_path("unit-test", &key)).unwrap();
        let busy = Flock::lock(file, FlockArg::LockExclusiveNonblock);
        assert!(busy.is_err());
        drop(first);
        let file = open(&lock_path("unit-test", &key)).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok());
        let _ = std::fs::remove_file(lock_path("unit-test", &key));
    }
}
