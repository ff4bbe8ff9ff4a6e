//! The proxy's image: this airlock binary and the libraries it loads, nothing else.
//!
//! The proxy runs in a container of its own, and its image must not depend on the
//! environment's (an environment on the busybox image gets the allowlist too) nor on a
//! registry. airlock links only the C library (its TLS is rustls on ring), so the image is the
//! running binary plus the few shared objects its loader names (`ldd`), imported as a
//! one-layer image like the sweep's. glibc ≥ 2.34 has its `files` and `dns` name services
//! built in, so the proxy's own lookups (it resolves every name itself, see
//! [`super::upstream`]) need only the engine's `/etc/resolv.conf` and the `nsswitch.conf`
//! written here. The tag is derived from the binary's path, size and modification time: a
//! rebuilt airlock imports its own image, a repeated run finds it in a few milliseconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::engine::{labels, Engine, EngineError, ImportSpec};

/// Where the airlock binary sits in the image.
pub const BINARY: &str = "/airlock";

fn fail(doing: &str, message: impl ToString) -> EngineError {
    EngineError::Other {
        doing: doing.to_string(),
        message: message.to_string(),
    }
}

/// The running binary and the image name it has.
fn identity() -> Result<(PathBuf, String), EngineError> {
    let exe = std::env::current_exe().map_err(|e| fail("finding the airlock binary", e))?;
    let meta = std::fs::metadata(&exe).map_err(|e| fail("reading the airlock binary", e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let stamp = format!(
        "{}\0{}\0{}\0{}",
        exe.display(),
        meta.len(),
        mtime,
        env!("CARGO_PKG_VERSION")
    );
    let tag = &crate::hex::sha256(stamp.as_bytes())[..16];
    Ok((exe, format!("airlock/proxy:{tag}")))
}

/// The proxy image's name for this airlock binary.
pub fn image() -> Result<String, EngineError> {
    identity().map(|(_, name)| name)
}

/// Import the proxy image if the engine doesn't have it yet.
pub async fn ensure_image(engine: &dyn Engine) -> Result<String, EngineError> {
    let (exe, reference) = identity()?;
    if engine.inspect_image(&reference).await?.is_some() {
        return Ok(reference);
    }
    let doing = format!("packing {reference}");
    let tar = tokio::task::spawn_blocking(move || pack(&exe))
        .await
        .map_err(|e| fail(&doing, e))?
        .map_err(|e| fail(&doing, e))?;
    engine
        .import_image(ImportSpec {
            reference: reference.clone(),
            changes: vec![
                format!("LABEL {}=true", labels::MANAGED),
                format!("LABEL {}=airlock/proxy", labels::IMAGE_NAME),
                format!(
                    "LABEL {}=\"imported from the airlock binary and the libraries it loads\"",
                    labels::IMAGE_BOOTSTRAP
                ),
            ],
            rootfs: Box::pin(futures_util::stream::once(async move {
                Ok(bytes::Bytes::from(tar))
            })),
        })
        .await?;
    Ok(reference)
}

/// The image's one layer.
fn pack(exe: &Path) -> Result<Vec<u8>, String> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path.trim_start_matches('/'), data)
            .map_err(|e| format!("{path}: {e}"))
    };
    let binary = std::fs::read(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    add(BINARY, &binary, 0o555)?;
    drop(binary);
    for lib in libraries(exe)? {
        let data = std::fs::read(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        add(&lib.to_string_lossy(), &data, 0o555)?;
    }
    add("/etc/nsswitch.conf", b"hosts: files dns\n", 0o444)?;
    add("/etc/passwd", b"root:x:0:0:root:/:/airlock\n", 0o444)?;
    tar.into_inner().map_err(|e| e.to_string())
}

/// The shared objects `exe` loads, by the paths its loader finds them at.
fn libraries(exe: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| format!("ldd (from libc-bin) is needed to pack the proxy image: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary: nothing to add.
        if text.contains("not a dynamic executable") || out.stderr.is_empty() {
            return Ok(Vec::new());
        }
        return Err(format!("ldd: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(parse_ldd(&text))
}

/// `name => /path (0x…)` and `/path (0x…)` lines; the vDSO has no file.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split(" (").next().unwrap_or_default().trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_name_the_files_to_copy() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f3)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f38)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f380d5db000)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn the_running_binary_names_its_image() {
        let name = image().unwrap();
        assert!(name.starts_with("airlock/proxy:"), "{name}");
        assert_eq!(name.len(), "airlock/proxy:".len() + 16);
        assert_eq!(image().unwrap(), name);
    }
}
