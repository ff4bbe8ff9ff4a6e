//! Persisted paths: what may cross the boundary besides the workspace.

use super::super::error::{shown, Fail};

/// Where the workspace is mounted in both phases.
pub const WORKSPACE: &str = "/workspace";

/// A persisted path: absolute, normalised, and not where it could not or must not cross.
/// A trailing `/` is dropped (`/opt/cache/` is `/opt/cache`); `//`, `/./` and `..` are refused
/// rather than guessed at.
pub fn persist_path(text: &str) -> Result<String, Fail> {
    let t = text;
    if t.is_empty() {
        return Err(Fail::new("empty path")
            .fix("write an absolute directory inside the container, e.g. /opt/cache"));
    }
    if t.chars().any(char::is_control) {
        return Err(
            Fail::new(format!("{:?} contains a control character", shown(t)))
                .fix("write a plain absolute path, e.g. /opt/cache"),
        );
    }
    if t.contains(':') {
        return Err(Fail::new(format!("{:?} contains ':'", shown(t)))
            .fix("Docker mount specifications use ':' as a separator; pick a path without it"));
    }
    if !t.starts_with('/') {
        return Err(
            Fail::new(format!("{:?} is not an absolute path", shown(t))).fix(format!(
                "write it as an absolute path inside the container, e.g. /{}",
                shown(t.trim_start_matches("./"))
            )),
        );
    }
    let trimmed = if t.len() > 1 {
        t.trim_end_matches('/')
    } else {
        t
    };
    if trimmed.is_empty() || trimmed == "/" {
        return Err(Fail::new("\"/\" is the whole filesystem")
            .fix("list the directories that must cross, e.g. /opt/cache"));
    }
    let parts: Vec<&str> = trimmed[1..].split('/').collect();
    if parts.contains(&"..") {
        return Err(Fail::new(format!("{:?} contains '..'", shown(t)))
            .fix("write the directory it means, without '..'"));
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        let normal: Vec<&str> = parts
            .iter()
            .copied()
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        return Err(
            Fail::new(format!("{:?} is not normalised", shown(t))).fix(format!(
                "write it without empty or '.' parts: /{}",
                shown(&normal.join("/"))
            )),
        );
    }
    let path = trimmed.to_string();
    for (root, why) in [
        ("/proc", "the kernel's views, made fresh for each container"),
        ("/sys", "the kernel's views, made fresh for each container"),
        ("/dev", "device nodes, made fresh for each container"),
        (
            "/airlock",
            "airlock's own files in the setup phase ($AIRLOCK_ENV, CA certificates)",
        ),
    ] {
        if is_within(&path, root) {
            return Err(Fail::new(format!("{path} is under {root}: {why}"))
                .fix("persist a directory of your own, e.g. /opt/cache"));
        }
    }
    if is_within(&path, WORKSPACE) {
        return Err(
            Fail::new(format!("{path} is in the workspace, which always crosses"))
                .fix("remove it from persist: everything under /workspace is carried over already"),
        );
    }
    if is_within(&path, "/tmp") {
        return Err(Fail::new(format!(
            "{path} is under /tmp, which the agent phase replaces with an empty tmpfs"
        ))
        .fix("keep what must cross elsewhere, e.g. /opt/cache, and persist that"));
    }
    Ok(path)
}

/// `path` is `dir` or inside it (both normalised).
pub fn is_within(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_paths() {
        assert_eq!(persist_path("/opt/cache").unwrap(), "/opt/cache");
        assert_eq!(persist_path("/opt/cache/").unwrap(), "/opt/cache");
        assert_eq!(persist_path("/tmpfoo").unwrap(), "/tmpfoo");
        assert_eq!(persist_path("/workspaces").unwrap(), "/workspaces");
        let cases = [
            ("opt/cache", "not an absolute path"),
            ("/a//b", "not normalised"),
            ("/a/./b", "not normalised"),
            ("/a/../b", ".."),
            ("/", "whole filesystem"),
            ("//", "whole filesystem"),
            ("/proc/self", "/proc"),
            ("/sys", "/sys"),
            ("/dev/shm", "/dev"),
            ("/airlock", "airlock's own files"),
            ("/airlock/crossing/x", "airlock's own files"),
            ("/workspace", "workspace"),
            ("/workspace/target", "workspace"),
            ("/tmp", "tmpfs"),
            ("/tmp/x", "tmpfs"),
            ("/a:b", "':'"),
            ("/a\nb", "control"),
            ("", "empty"),
        ];
        for (input, want) in cases {
            let fail = persist_path(input).unwrap_err();
            assert!(fail.message.contains(want), "{input:?}: {fail:?}");
            assert!(fail.fix.is_some());
        }
        assert!(persist_path("opt/cache")
            .unwrap_err()
            .fix
            .unwrap()
            .contains("/opt/cache"));
        assert!(persist_path("/a//b")
            .unwrap_err()
            .fix
            .unwrap()
            .contains("/a/b"));
    }

    #[test]
    fn within() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
    }
}
