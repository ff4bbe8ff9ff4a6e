//! `airlock/busybox`: a 2 MB base made from the host's static busybox, for fast small images.
//!
//! Debian's `busybox-static` package ships `/bin/busybox` with no dynamic dependencies, so
//! the binary alone is a working userland: the root filesystem is that binary, a symlink for
//! every applet at the path busybox itself names (`busybox --list-full`: `bin/sh`,
//! `usr/bin/env`, …, so `#!/usr/bin/env sh` works), a `root` and an `agent` (1000:1000)
//! user, `/tmp` (1777), `/home/agent` owned by the agent and `/root`. The tar is made in
//! memory and imported; nothing is written to the host.
//!
//! Known limit: busybox's `wget` crashes (static glibc has no resolver plugins to load);
//! `nc` works.

use std::io;
use std::path::{Path, PathBuf};

use super::super::context::CONTEXT_MTIME;
use super::super::ImageError;

/// Where Debian's `busybox-static` puts the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      agent:x:1000:1000:agent:/home/agent:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n";

/// The host's busybox, checked to be statically linked; plus its version line.
pub fn host_busybox() -> Result<(PathBuf, String), ImageError> {
    let path = PathBuf::from(HOST_BUSYBOX);
    let unavailable = |why: String| ImageError::BootstrapUnavailable {
        base: super::BUSYBOX_REPO.to_string(),
        fix: format!(
            "{why}; airlock makes {} from the host's static busybox: install it with \
             `sudo apt-get install busybox-static`",
            super::BUSYBOX_REPO
        ),
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            return Err(unavailable(format!(
                "{} can't be read ({e})",
                path.display()
            )))
        }
    };
    match is_static_elf(&bytes) {
        Some(true) => {}
        Some(false) => {
            return Err(unavailable(format!(
                "{} is dynamically linked (the `busybox` package, not `busybox-static`)",
                path.display()
            )))
        }
        None => {
            return Err(unavailable(format!(
                "{} is not an ELF binary",
                path.display()
            )))
        }
    }
    let version = std::process::Command::new(&path)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim_end_matches(" multi-call binary.").to_string())
        })
        .unwrap_or_default();
    Ok((path, version))
}

/// The applet paths busybox knows (`bin/sh`, `usr/bin/env`, …).
pub fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|source| ImageError::Io {
            doing: "running".into(),
            path: busybox.to_path_buf(),
            source,
        })?;
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        // Only applets in a folder: `linuxrc` at the root is for initrds.
        .filter(|l| l.contains('/') && !l.starts_with('/') && !l.contains(".."))
        .map(str::to_string)
        .collect();
    if !out.status.success() || !list.iter().any(|a| a == "bin/sh") {
        return Err(ImageError::BootstrapFailed {
            base: super::BUSYBOX_REPO.to_string(),
            message: format!(
                "`{} --list-full` gave no applet list with bin/sh",
                busybox.display()
            ),
            tail: Vec::new(),
        });
    }
    Ok(list)
}

/// The root filesystem as a tar.
pub fn rootfs_tar(busybox: &Path, applets: &[String]) -> io::Result<Vec<u8>> {
    let binary = std::fs::read(busybox)?;
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs: Vec<(&str, u32, u64)> = vec![
        ("bin", 0o755, 0),
        ("dev", 0o755, 0),
        ("etc", 0o755, 0),
        ("home", 0o755, 0),
        ("home/agent", 0o755, 1000),
        ("proc", 0o555, 0),
        ("root", 0o700, 0),
        ("sbin", 0o755, 0),
        ("sys", 0o555, 0),
        ("tmp", 0o1777, 0),
        ("usr", 0o755, 0),
        ("usr/bin", 0o755, 0),
        ("usr/sbin", 0o755, 0),
        ("var", 0o755, 0),
    ];
    for applet in applets {
        if let Some((dir, _)) = applet.rsplit_once('/') {
            if !dirs.iter().any(|(d, _, _)| *d == dir) {
                dirs.push((dir, 0o755, 0));
            }
        }
    }
    dirs.sort();
    for (dir, mode, owner) in dirs {
        let mut h = header(tar::EntryType::Directory, mode, owner, 0);
        b.append_data(&mut h, dir, io::empty())?;
    }
    let mut h = header(tar::EntryType::Regular, 0o755, 0, binary.len() as u64);
    b.append_data(&mut h, "bin/busybox", binary.as_slice())?;
    for (path, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let mut h = header(tar::EntryType::Regular, 0o644, 0, text.len() as u64);
        b.append_data(&mut h, path, text.as_bytes())?;
    }
    let mut sorted: Vec<&String> = applets.iter().filter(|a| *a != "bin/busybox").collect();
    sorted.sort();
    sorted.dedup();
    for applet in sorted {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0);
        b.append_link(&mut h, applet, "/bin/busybox")?;
    }
    b.into_inner()
}

fn header(kind: tar::EntryType, mode: u32, owner: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner);
    h.set_gid(owner);
    h.set_mtime(CONTEXT_MTIME);
    h.set_size(size);
    h
}

/// Whether an ELF file is statically linked (no `PT_INTERP` program header); `None` when it
/// is not an ELF file at all.
pub fn is_static_elf(bytes: &[u8]) -> Option<bool> {
    if bytes.len() < 0x40 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match bytes[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match bytes[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let read = |off: usize, len: usize| -> Option<u64> {
        let s = bytes.get(off..off + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if le { s[len - 1 - i] } else { s[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (read(0x20, 8)?, read(0x36, 2)?, read(0x38, 2)?)
    } else {
        (read(0x1c, 4)?, read(0x2a, 2)?, read(0x2c, 2)?)
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).ok()?;
        const PT_INTERP: u64 = 3;
        if read(at, 4)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        // The test binary itself is dynamically linked.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(is_static_elf(&me), Some(false));
        assert_eq!(is_static_elf(b"#!/bin/sh\necho not elf\n"), None);
        // Whatever busybox the host has (static or not), it is an ELF file.
        if let Ok(bb) = std::fs::read(HOST_BUSYBOX) {
            assert!(is_static_elf(&bb).is_some());
        }
    }

    #[test]
    fn rootfs_has_users_tmp_and_applets() {
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("busybox");
        std::fs::write(&fake, b"binary").unwrap();
        let applets = vec!["bin/sh".to_string(), "usr/bin/env".to_string()];
        let tar = rootfs_tar(&fake, &applets).unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut found = std::collections::HashMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let h = e.header().clone();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut e, &mut body).unwrap_or_default();
            found.insert(path, (h, body));
        }
        assert_eq!(found["tmp"].0.mode().unwrap(), 0o1777);
        assert_eq!(found["home/agent"].0.uid().unwrap(), 1000);
        assert_eq!(found["home/agent"].0.gid().unwrap(), 1000);
        assert!(found["etc/passwd"]
            .1
            .contains("agent:x:1000:1000:agent:/home/agent:/bin/sh"));
        assert!(found["etc/passwd"].1.starts_with("root:x:0:0"));
        let env = &found["usr/bin/env"].0;
        assert_eq!(env.entry_type(), tar::EntryType::Symlink);
        assert_eq!(
            env.link_name().unwrap().unwrap().to_string_lossy(),
            "/bin/busybox"
        );
        assert!(found.contains_key("root"));
    }
}
