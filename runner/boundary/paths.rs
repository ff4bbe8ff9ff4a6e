//! Path checks for what crosses the boundary.
//!
//! What crosses is read as tar streams from the engine's archive API: `GET
//! /containers/{id}/archive?path=/workspace` yields entries named `workspace/...`, a persist
//! path `/opt/cache` entries named `cache/...`. The setup phase controlled everything in
//! those trees, so every entry is checked before anything is written on the host or into the
//! agent phase's container:
//!
//! - its path must be relative, stay under the root (`root_name/`), and have no `..`
//!   component: nothing may name a place outside what is being copied;
//! - only regular files, directories, symlinks and hard links cross. Device nodes, fifos and
//!   other special files are refused: they are a way to reach the host's devices, or to block
//!   a reader, and no workspace needs one;
//! - a hard link must point inside the root, with no `..`: it is resolved by the extractor
//!   and would otherwise alias a file outside;
//! - a symlink crosses whatever its target: it is copied as a link and never followed on the
//!   host (an absolute target means the same thing inside the agent phase's container as it
//!   did in the setup phase's). Its target is returned so the caller can scan it for secret
//!   values like any other bytes.
//!
//! Nothing is extracted from these archives: what crosses stays in the run's volumes, so an
//! entry below a symlink (which a real filesystem can't produce anyway) writes nowhere.
//!
//! Names are bytes: non-UTF-8 file names are legal and cross unchanged. In messages they are
//! shown with non-printable bytes escaped, so a hostile name cannot drive the terminal.

use std::fmt;
use std::path::PathBuf;

/// The kind of a tar entry, as far as the boundary cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
    /// A tar-format header entry (pax or GNU extension), not a file; the `tar` crate applies
    /// the per-entry ones itself, and surfaces only pax global headers. Skip these.
    Metadata,
    /// Anything else (an entry type byte nobody defined).
    Other,
}

impl EntryKind {
    fn description(self) -> &'static str {
        match self {
            EntryKind::File => "regular file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink => "symlink",
            EntryKind::HardLink => "hard link",
            EntryKind::CharDevice => "character device",
            EntryKind::BlockDevice => "block device",
            EntryKind::Fifo => "fifo (named pipe)",
            EntryKind::Metadata => "tar metadata entry",
            EntryKind::Other => "special file of an unknown type",
        }
    }
}

/// The [`EntryKind`] of a tar entry type.
pub fn tar_kind(kind: tar::EntryType) -> EntryKind {
    use tar::EntryType as T;
    match kind {
        T::Regular | T::Continuous | T::GNUSparse => EntryKind::File,
        T::Directory => EntryKind::Dir,
        T::Symlink => EntryKind::Symlink,
        T::Link => EntryKind::HardLink,
        T::Char => EntryKind::CharDevice,
        T::Block => EntryKind::BlockDevice,
        T::Fifo => EntryKind::Fifo,
        T::GNULongName | T::GNULongLink | T::XGlobalHeader | T::XHeader => EntryKind::Metadata,
        _ => EntryKind::Other,
    }
}

/// A path relative to the root being copied: bytes, components joined by `/`, none of them
/// empty, `.` or `..`; empty for the root itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True for the root entry itself (`workspace/`).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// As a relative host path (the bytes unchanged; Unix only).
    pub fn to_path_buf(&self) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(&self.0))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.0))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", escape(&self.0))
    }
}

/// A link's target, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The target as written (any bytes; never followed on the host).
    Symlink(Vec<u8>),
    /// The file linked to, inside the same root.
    HardLink(RelPath),
}

/// An entry that may cross.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEntry {
    /// Where it goes, relative to the root.
    pub path: RelPath,
    pub kind: EntryKind,
    /// For links: the target (scan symlink targets for secrets like any other bytes).
    pub link: Option<Link>,
}

/// An entry the boundary refuses: which one (escaped for display) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the boundary refused the archive entry `{entry}`: {reason}")]
pub struct PathError {
    pub entry: EscapedName,
    pub reason: Refusal,
}

/// An entry name as bytes, shown with non-printable bytes escaped.
#[derive(Clone, PartialEq, Eq)]
pub struct EscapedName(pub Vec<u8>);

impl fmt::Display for EscapedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.0))
    }
}

impl fmt::Debug for EscapedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", escape(&self.0))
    }
}

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is an absolute path; entries must be relative to the copied directory")]
    Absolute,
    #[error("it has a `..` component; nothing may name a place outside the copied directory")]
    ParentComponent,
    #[error("it is not under `{0}/`, the directory being copied")]
    OutsideRoot(String),
    #[error("its name is empty")]
    Empty,
    #[error("its name contains a NUL byte")]
    Nul,
    #[error(
        "it is a {0}; only regular files, directories and links cross the boundary (remove it \
         in the setup script, or keep it out of the copied paths)"
    )]
    Special(&'static str),
    #[error("it is a {0} without a target")]
    MissingTarget(&'static str),
    #[error("it is a hard link to `{target}`, which {why}; hard links must stay inside the copied directory")]
    HardLinkTarget {
        target: EscapedName,
        why: &'static str,
    },
    #[error("`{0}` is not a valid root name (one path component, not `.` or `..`)")]
    BadRoot(String),
}

/// Check one archive entry taken from `root_name` (the last component of the copied path:
/// `workspace` for `/workspace`). `link_target` is the entry's link name, for links.
pub fn check_entry(
    root_name: &str,
    path: &[u8],
    kind: EntryKind,
    link_target: Option<&[u8]>,
) -> Result<CheckedEntry, PathError> {
    let refuse = |reason| PathError {
        entry: EscapedName(path.to_vec()),
        reason,
    };
    if root_name.is_empty()
        || root_name == "."
        || root_name == ".."
        || root_name.contains(['/', '\0'])
    {
        return Err(refuse(Refusal::BadRoot(
            root_name.escape_debug().to_string(),
        )));
    }
    let rel = relative(root_name, path).map_err(refuse)?;
    let link = match kind {
        EntryKind::File | EntryKind::Dir => None,
        EntryKind::Symlink => match link_target {
            Some(t) if t.contains(&0) => return Err(refuse(Refusal::Nul)),
            Some(t) if !t.is_empty() => Some(Link::Symlink(t.to_vec())),
            _ => return Err(refuse(Refusal::MissingTarget("symlink"))),
        },
        EntryKind::HardLink => {
            let target = match link_target {
                Some(t) if !t.is_empty() => t,
                _ => return Err(refuse(Refusal::MissingTarget("hard link"))),
            };
            let bad = |why| {
                refuse(Refusal::HardLinkTarget {
                    target: EscapedName(target.to_vec()),
                    why,
                })
            };
            let target_rel = relative(root_name, target).map_err(|r| {
                bad(match r {
                    Refusal::Absolute => "is an absolute path",
                    Refusal::ParentComponent => "has a `..` component",
                    Refusal::Nul => "contains a NUL byte",
                    _ => "is not under the copied directory",
                })
            })?;
            if target_rel.is_root() {
                return Err(bad("is the copied directory itself"));
            }
            Some(Link::HardLink(target_rel))
        }
        special => return Err(refuse(Refusal::Special(special.description()))),
    };
    Ok(CheckedEntry {
        path: rel,
        kind,
        link,
    })
}

/// `path` relative to `root_name/`, normalised (empty and `.` components dropped).
fn relative(root_name: &str, path: &[u8]) -> Result<RelPath, Refusal> {
    if path.is_empty() {
        return Err(Refusal::Empty);
    }
    if path.contains(&0) {
        return Err(Refusal::Nul);
    }
    if path.starts_with(b"/") {
        return Err(Refusal::Absolute);
    }
    let mut components = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".");
    let all: Vec<&[u8]> = components.by_ref().collect();
    if all.iter().any(|c| *c == b"..") {
        return Err(Refusal::ParentComponent);
    }
    match all.split_first() {
        Some((first, rest)) if *first == root_name.as_bytes() => Ok(RelPath(rest.join(&b'/'))),
        _ => Err(Refusal::OutsideRoot(root_name.escape_debug().to_string())),
    }
}

/// Bytes for display: printable text as is, `\` doubled, control and format characters as
/// `\u{..}` (so bidi overrides cannot reorder a message), invalid UTF-8 as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() || is_format(c) => {
                    out.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Invisible formatting characters (Unicode category Cf) that change how text displays.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

#[cfg(test)]
mod tests;
