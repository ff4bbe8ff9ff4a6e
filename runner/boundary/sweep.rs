//! What the archive can't show doesn't cross: sockets and extended attributes are removed.
//!
//! The leak check reads what crosses through the engine's archive API, which leaves out Unix
//! sockets and every extended attribute but `security.capability`; both would still reach the
//! agent phase through the shared volumes (a socket's name can be the secret; `curl --xattr`
//! keeps a URL with its token in `user.xdg.origin.url`). Scanning them would need a reader
//! other than the archive; removing them needs no trust in what setup left and costs one small
//! container, so that is what happens: after the setup container has stopped (nothing of the
//! setup phase runs any more) and while the boundary check reads the archive, a container of
//! the *sweep image* mounts every crossing volume and runs `airlock-sweep` over them
//! ([`program`]: a static binary of `std` alone, built by `runner/build.rs`, imported as an
//! image holding only that file, so no library or tool of the setup's image is used). It
//! removes every socket and every extended attribute (`user.*`, ACLs, `security.capability`:
//! file capabilities would be another way to carry bits), and reports each removal; the run
//! records them, redacted, in `boundary.removed`. If anything could not be removed the run
//! is refused: the agent phase must not see what was not checked.

#[cfg(test)]
mod program;

use crate::engine::{labels, ContainerSpec, Engine, EngineError, ImportSpec, Network, VolumeMount};
use crate::scan::SecretSet;

/// The static `airlock-sweep` binary.
const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/airlock-sweep"));

/// Where the program sits in its image.
const PATH: &str = "/airlock-sweep";

/// The sweep image: named by the program's hash, so a new airlock imports its own.
pub fn image() -> String {
    format!("airlock/sweep:{}", &crate::hex::sha256(PROGRAM)[..16])
}

/// Import the sweep image if the engine doesn't have it yet (a few milliseconds when it does).
pub async fn ensure_image(engine: &dyn Engine) -> Result<(), EngineError> {
    let reference = image();
    if engine.inspect_image(&reference).await?.is_some() {
        return Ok(());
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(PROGRAM.len() as u64);
    h.set_mode(0o555);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, PATH.trim_start_matches('/'), PROGRAM)
        .map_err(|e| EngineError::Other {
            doing: format!("packing {reference}"),
            message: e.to_string(),
        })?;
    let bytes = tar.into_inner().unwrap_or_default();
    engine
        .import_image(ImportSpec {
            reference,
            changes: vec![
                format!("LABEL {}=true", labels::MANAGED),
                format!("LABEL {}=airlock/sweep", labels::IMAGE_NAME),
                format!(
                    "LABEL {}=\"imported from airlock's own static airlock-sweep\"",
                    labels::IMAGE_BOOTSTRAP
                ),
            ],
            rootfs: Box::pin(futures_util::stream::once(async move {
                Ok(bytes::Bytes::from(bytes))
            })),
        })
        .await
}

/// One thing the sweep removed, as shown to people: redacted and escaped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    /// The path as the agent phase would have seen it.
    pub path: String,
    /// `socket`, or `extended attribute NAME`.
    pub what: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the boundary refused the run: {0}\n  the sockets and extended attributes of what crosses can't be checked, so they must be removed first, and this could not be")]
    Failed(String),
}

/// Run the sweep over `mounts` (each crossing volume, mounted at `folders`); `shown` maps a
/// swept path back to where the agent would see it.
pub async fn run(
    engine: &dyn Engine,
    run_id: &str,
    owner: &str,
    mounts: Vec<VolumeMount>,
    folders: Vec<String>,
    secrets: &SecretSet,
    shown: &(dyn Fn(&[u8]) -> Vec<u8> + Sync),
) -> Result<Vec<Removed>, SweepError> {
    let mut cmd = vec![PATH.to_string()];
    cmd.extend(folders);
    let spec = ContainerSpec {
        name: format!("airlock-{run_id}-sweep"),
        image: image(),
        cmd,
        user: Some("0:0".into()),
        labels: labels::for_run(run_id, "sweep", owner),
        network: Network::None,
        volumes: mounts,
        pids: Some(16),
        ..ContainerSpec::default()
    };
    let id = engine.create_container(&spec).await?;
    let result = drive(engine, &id).await;
    engine.remove_container(&id).await?;
    let (output, code) = result?;
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut words = line.split(|&b| b == b' ');
        let kind = words.next().unwrap_or_default();
        let fields: Vec<Vec<u8>> = words.map(unhex).collect();
        let path = || {
            redacted(
                &shown(fields.first().map(Vec::as_slice).unwrap_or_default()),
                secrets,
            )
        };
        match (kind, fields.len()) {
            (b"socket", 1) => removed.push(Removed {
                path: path(),
                what: "socket".into(),
            }),
            (b"xattr", 2) => removed.push(Removed {
                path: path(),
                what: format!("extended attribute {}", redacted(&fields[1], secrets)),
            }),
            (b"error", 2) => {
                failures.push(format!("{}: {}", path(), redacted(&fields[1], secrets)))
            }
            _ => failures.push(format!("unexpected output: {}", redacted(line, secrets))),
        }
    }
    if code != 0 && failures.is_empty() {
        failures.push(format!("the sweep exited with code {code}"));
    }
    if !failures.is_empty() {
        return Err(SweepError::Failed(failures.join("; ")));
    }
    Ok(removed)
}

/// Attach, start, read stdout to the end, wait.
async fn drive(engine: &dyn Engine, id: &str) -> Result<(Vec<u8>, i64), EngineError> {
    use futures_util::StreamExt;
    let mut attached = engine.attach(id, false).await?;
    engine.start_container(id).await?;
    let mut out = Vec::new();
    while let Some(chunk) = attached.output.next().await {
        if let crate::engine::Chunk::Stdout(b) = chunk? {
            out.extend_from_slice(&b);
        }
    }
    let exited = engine.wait_container(id).await?;
    Ok((out, exited.code))
}

fn unhex(word: &[u8]) -> Vec<u8> {
    word.chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

fn redacted(bytes: &[u8], secrets: &SecretSet) -> String {
    super::redacted(bytes, secrets)
}

/// A one-line summary of what was removed, for the run's events.
pub fn summary(removed: &[Removed]) -> String {
    let sockets = removed.iter().filter(|r| r.what == "socket").count();
    let xattrs = removed.len() - sockets;
    let mut shown: Vec<String> = removed
        .iter()
        .take(5)
        .map(|r| format!("{} ({})", r.path, r.what))
        .collect();
    if removed.len() > 5 {
        shown.push(format!("and {} more", removed.len() - 5));
    }
    format!(
        "boundary: removed {sockets} socket{} and {xattrs} extended attribute{} the leak check can't read (they don't cross): {}",
        if sockets == 1 { "" } else { "s" },
        if xattrs == 1 { "" } else { "s" },
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::program::{line, sweep, Swept};

    extern "C" {
        fn lsetxattr(
            path: *const std::ffi::c_char,
            name: *const std::ffi::c_char,
            value: *const std::ffi::c_void,
            size: usize,
            flags: i32,
        ) -> i32;
    }

    fn set_xattr(path: &std::path::Path, name: &str, value: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: NUL-terminated strings and a buffer of value.len() bytes.
        unsafe {
            lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ) == 0
        }
    }

    /// The program removes sockets and extended attributes, never follows a symlink, and
    /// reports each removal (run here on the host: the same code the static binary runs).
    #[test]
    fn the_sweep_removes_sockets_and_xattrs_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let sock = root.join("sub/token-sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let file = root.join("f.txt");
        std::fs::write(&file, b"x").unwrap();
        assert!(
            set_xattr(&file, "user.xdg.origin.url", b"https://x/?token=abc"),
            "the test's filesystem takes user extended attributes"
        );
        // A symlink out of the tree: its target is never visited.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let outside_sock = outside.join("s");
        let _l2 = std::os::unix::net::UnixListener::bind(&outside_sock).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        let mut found = Vec::new();
        sweep(&root, &mut |s| found.push(s));
        assert!(!sock.exists(), "the socket is gone");
        assert!(outside_sock.exists(), "nothing behind a symlink is touched");
        use std::os::unix::ffi::OsStrExt;
        assert!(found.contains(&Swept::Socket(sock.as_os_str().as_bytes().to_vec())));
        assert!(
            found.contains(&Swept::Xattr(
                file.as_os_str().as_bytes().to_vec(),
                b"user.xdg.origin.url".to_vec()
            )),
            "{found:?}"
        );
        assert!(
            !found.iter().any(|s| matches!(s, Swept::Error(..))),
            "{found:?}"
        );
        assert_eq!(
            line(&Swept::Socket(b"/a b\n".to_vec())),
            "socket 2f6120620a\n"
        );
    }

    #[test]
    fn the_summary_counts_and_names_a_few() {
        let r = |p: &str, w: &str| super::Removed {
            path: p.into(),
            what: w.into(),
        };
        let s = super::summary(&[
            r("/workspace/s", "socket"),
            r("/workspace/f", "extended attribute user.x"),
        ]);
        assert_eq!(s, "boundary: removed 1 socket and 1 extended attribute the leak check can't read (they don't cross): /workspace/s (socket), /workspace/f (extended attribute user.x)");
    }
}
