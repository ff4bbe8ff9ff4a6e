//! `debian:<suite>` with no registry: `debootstrap --variant=minbase` into a temp folder.
//!
//! debootstrap builds a real Debian root filesystem from a package mirror (the host's own,
//! see [`super::apt_sources`]); the caller then imports it into the engine under the tag a
//! Dockerfile's `FROM` names, and the classic builder uses it without trying to pull. It needs
//! root (it creates files owned by other users and chroots to configure packages), so when
//! airlock isn't root, or debootstrap isn't installed, the error says exactly what to do; it
//! is a one-time step, after which the image is in the engine for everyone.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::super::progress::Progress;
use super::super::ImageError;

/// A debootstrapped root filesystem in a temp folder, removed on drop.
pub struct Debootstrapped {
    dir: tempfile::TempDir,
    /// The mirror it came from (`None`: debootstrap's default).
    pub mirror: Option<String>,
}

impl Debootstrapped {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

impl Drop for Debootstrapped {
    fn drop(&mut self) {
        // An interrupted debootstrap can leave /proc or /sys mounted inside the target;
        // removing the folder would then walk into the host's. Detach those first.
        for mount in mounts_under(self.dir.path()) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&mount)
                .status();
        }
    }
}

/// Mount points under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// debootstrap's path, once root and the program are both there.
pub fn prerequisites(base: &str) -> Result<PathBuf, ImageError> {
    let program = find_debootstrap();
    let root = nix::unistd::geteuid().is_root();
    let fix = match (&program, root) {
        (Some(p), true) => return Ok(p.clone()),
        (Some(_), false) => format!(
            "debootstrap needs root: run this once as root (e.g. `sudo airlock image build \
             NAME`); after that {base} is in the engine and nobody needs root for it again"
        ),
        (None, true) => {
            "debootstrap is not installed: `sudo apt-get install debootstrap`, then run this \
             again"
                .to_string()
        }
        (None, false) => format!(
            "debootstrap is not installed and it needs root: `sudo apt-get install \
             debootstrap`, then run this once as root (e.g. `sudo airlock image build NAME`); \
             after that {base} is in the engine for everyone"
        ),
    };
    Err(ImageError::BootstrapUnavailable {
        base: base.to_string(),
        fix,
    })
}

fn find_debootstrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("debootstrap"))
        .find(|p| p.is_file())
}

/// Run debootstrap for `suite`; its output feeds `progress`, and its last lines go into the
/// error when it fails.
pub async fn debootstrap(
    program: &Path,
    base: &str,
    suite: &str,
    progress: &mut Progress,
) -> Result<Debootstrapped, ImageError> {
    let dir = tempfile::Builder::new()
        .prefix("airlock-debootstrap-")
        .tempdir()
        .map_err(|source| ImageError::Io {
            doing: "making a temp folder for debootstrap in".into(),
            path: std::env::temp_dir(),
            source,
        })?;
    let mirror = super::apt_sources::host_mirror(suite);
    let out = Debootstrapped { dir, mirror };
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("--variant=minbase")
        .arg(suite)
        .arg(out.rootfs())
        .args(out.mirror.iter())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    progress.note(&format!(
        "bootstrapping {base}: debootstrap --variant=minbase {suite} from {} (about a minute; \
         once)",
        out.mirror
            .as_deref()
            .unwrap_or("debootstrap's default mirror")
    ));
    let failed = |message: String, tail: Vec<String>| ImageError::BootstrapFailed {
        base: base.to_string(),
        message,
        tail,
    };
    let mut child = cmd.spawn().map_err(|e| {
        failed(
            format!("can't start {}: {e}", program.display()),
            Vec::new(),
        )
    })?;
    let (tx, mut rx) = mpsc::channel::<String>(64);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_lines(stdout, tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_lines(stderr, tx.clone()));
    }
    drop(tx);
    let mut tail = std::collections::VecDeque::new();
    while let Some(line) = rx.recv().await {
        progress.output(&line);
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child
        .wait()
        .await
        .map_err(|e| failed(format!("waiting for debootstrap: {e}"), Vec::new()))?;
    if !status.success() {
        return Err(failed(
            format!("debootstrap --variant=minbase {suite} failed ({status})"),
            tail.into_iter().collect(),
        ));
    }
    Ok(out)
}

async fn forward_lines(reader: impl tokio::io::AsyncRead + Unpin, tx: mpsc::Sender<String>) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prerequisites_say_what_to_do() {
        match prerequisites("debian:bookworm") {
            Ok(p) => assert!(p.ends_with("debootstrap")),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("debian:bookworm"), "{msg}");
                assert!(
                    msg.contains("apt-get install debootstrap") || msg.contains("as root"),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn no_mounts_under_a_fresh_folder() {
        let t = tempfile::tempdir().unwrap();
        assert!(mounts_under(t.path()).is_empty());
        assert!(!mounts_under(Path::new("/")).is_empty());
    }
}
