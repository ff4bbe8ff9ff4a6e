//! Tests of the boundary's path checks: one per refusal, the accepted shapes, and properties
//! over arbitrary bytes.

use proptest::prelude::*;

use super::*;

fn ok(path: &[u8], kind: EntryKind, target: Option<&[u8]>) -> CheckedEntry {
    check_entry("workspace", path, kind, target)
        .unwrap_or_else(|e| panic!("{:?} refused: {e}", escape(path)))
}

fn refused(path: &[u8], kind: EntryKind, target: Option<&[u8]>) -> Refusal {
    match check_entry("workspace", path, kind, target) {
        Ok(c) => panic!("{:?} accepted as {c:?}", escape(path)),
        Err(e) => {
            assert_eq!(e.entry.0, path);
            e.reason
        }
    }
}

#[test]
fn files_and_directories_under_the_root() {
    assert_eq!(
        ok(b"workspace/src/main.rs", EntryKind::File, None)
            .path
            .as_bytes(),
        b"src/main.rs"
    );
    assert_eq!(
        ok(b"workspace/src/", EntryKind::Dir, None).path.as_bytes(),
        b"src"
    );
    // Doubled slashes and `.` components are normalised away.
    assert_eq!(
        ok(b"./workspace//a/./b", EntryKind::File, None)
            .path
            .as_bytes(),
        b"a/b"
    );
    // The root entry itself.
    let root = ok(b"workspace/", EntryKind::Dir, None);
    assert!(root.path.is_root());
    assert!(ok(b"workspace", EntryKind::Dir, None).path.is_root());
    // Names that merely start with dots are fine.
    assert_eq!(
        ok(b"workspace/..a/...", EntryKind::File, None)
            .path
            .as_bytes(),
        b"..a/..."
    );
}

#[test]
fn non_utf8_names_cross_unchanged() {
    let c = ok(b"workspace/caf\xe9/\xff\xfe.bin", EntryKind::File, None);
    assert_eq!(c.path.as_bytes(), b"caf\xe9/\xff\xfe.bin");
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(
        c.path.to_path_buf().as_os_str().as_bytes(),
        b"caf\xe9/\xff\xfe.bin"
    );
    assert_eq!(c.path.to_string(), "caf\\xe9/\\xff\\xfe.bin");
}

#[test]
fn persist_paths_have_their_own_root() {
    let c = check_entry("cache", b"cache/pip/wheel", EntryKind::File, None).unwrap();
    assert_eq!(c.path.as_bytes(), b"pip/wheel");
    let e = check_entry("cache", b"workspace/x", EntryKind::File, None).unwrap_err();
    assert_eq!(e.reason, Refusal::OutsideRoot("cache".into()));
    // A persisted single file is the root entry itself.
    assert!(
        check_entry("db.sqlite", b"db.sqlite", EntryKind::File, None)
            .unwrap()
            .path
            .is_root()
    );
}

#[test]
fn refuses_absolute_paths() {
    assert_eq!(
        refused(b"/workspace/a", EntryKind::File, None),
        Refusal::Absolute
    );
    assert_eq!(
        refused(b"/etc/passwd", EntryKind::File, None),
        Refusal::Absolute
    );
    assert_eq!(
        refused(b"//workspace", EntryKind::Dir, None),
        Refusal::Absolute
    );
}

#[test]
fn refuses_parent_components() {
    for p in [
        &b"workspace/../etc/passwd"[..],
        b"workspace/a/../../x",
        b"workspace/a/..",
        b"../workspace/a",
        b"workspace/..",
        b"workspace/a/b/../c",
    ] {
        assert_eq!(
            refused(p, EntryKind::File, None),
            Refusal::ParentComponent,
            "{p:?}"
        );
    }
}

#[test]
fn refuses_entries_outside_the_root() {
    for p in [
        &b"other/a"[..],
        b"workspacex/a",
        b"works/pace",
        b"Workspace/a",
        b".",
        b"./",
    ] {
        assert_eq!(
            refused(p, EntryKind::File, None),
            Refusal::OutsideRoot("workspace".into()),
            "{p:?}"
        );
    }
}

#[test]
fn refuses_empty_names_and_nul() {
    assert_eq!(refused(b"", EntryKind::File, None), Refusal::Empty);
    assert_eq!(
        refused(b"workspace/a\0b", EntryKind::File, None),
        Refusal::Nul
    );
}

#[test]
fn refuses_special_files() {
    for (kind, what) in [
        (EntryKind::CharDevice, "character device"),
        (EntryKind::BlockDevice, "block device"),
        (EntryKind::Fifo, "fifo (named pipe)"),
        (EntryKind::Other, "special file of an unknown type"),
        (EntryKind::Metadata, "tar metadata entry"),
    ] {
        let err = check_entry("workspace", b"workspace/dev/x", kind, None).unwrap_err();
        assert_eq!(err.reason, Refusal::Special(what));
        let msg = err.to_string();
        assert!(
            msg.contains("workspace/dev/x") && msg.contains(what),
            "{msg}"
        );
    }
}

#[test]
fn symlinks_cross_whatever_their_target() {
    for target in [
        &b"/etc/passwd"[..],
        b"../../../outside",
        b"relative/file",
        b"\xff",
    ] {
        let c = ok(b"workspace/link", EntryKind::Symlink, Some(target));
        assert_eq!(c.link, Some(Link::Symlink(target.to_vec())));
        assert_eq!(c.kind, EntryKind::Symlink);
    }
    assert_eq!(
        refused(b"workspace/link", EntryKind::Symlink, None),
        Refusal::MissingTarget("symlink")
    );
    assert_eq!(
        refused(b"workspace/link", EntryKind::Symlink, Some(b"")),
        Refusal::MissingTarget("symlink")
    );
}

#[test]
fn hard_links_must_stay_inside_the_root() {
    let c = ok(
        b"workspace/b",
        EntryKind::HardLink,
        Some(b"workspace/dir/a"),
    );
    assert_eq!(c.link, Some(Link::HardLink(RelPath(b"dir/a".to_vec()))));
    for (target, why) in [
        (&b"/etc/shadow"[..], "is an absolute path"),
        (b"workspace/../etc/shadow", "has a `..` component"),
        (b"workspace/a/../b", "has a `..` component"),
        (b"other/a", "is not under the copied directory"),
        (b"workspace", "is the copied directory itself"),
    ] {
        let reason = refused(b"workspace/b", EntryKind::HardLink, Some(target));
        assert_eq!(
            reason,
            Refusal::HardLinkTarget {
                target: EscapedName(target.to_vec()),
                why
            }
        );
    }
    assert_eq!(
        refused(b"workspace/b", EntryKind::HardLink, None),
        Refusal::MissingTarget("hard link")
    );
}

#[test]
fn refuses_a_bad_root_name() {
    for root in ["", ".", "..", "a/b"] {
        let err = check_entry(root, b"a", EntryKind::File, None).unwrap_err();
        assert!(matches!(err.reason, Refusal::BadRoot(_)), "{root}: {err}");
    }
}

#[test]
fn tar_kinds() {
    use tar::EntryType as T;
    assert_eq!(tar_kind(T::Regular), EntryKind::File);
    assert_eq!(tar_kind(T::Continuous), EntryKind::File);
    assert_eq!(tar_kind(T::GNUSparse), EntryKind::File);
    assert_eq!(tar_kind(T::Directory), EntryKind::Dir);
    assert_eq!(tar_kind(T::Symlink), EntryKind::Symlink);
    assert_eq!(tar_kind(T::Link), EntryKind::HardLink);
    assert_eq!(tar_kind(T::Char), EntryKind::CharDevice);
    assert_eq!(tar_kind(T::Block), EntryKind::BlockDevice);
    assert_eq!(tar_kind(T::Fifo), EntryKind::Fifo);
    assert_eq!(tar_kind(T::XGlobalHeader), EntryKind::Metadata);
    assert_eq!(tar_kind(T::new(b'Z')), EntryKind::Other);
}

#[test]
fn checks_a_real_tar_stream() {
    // Built with the tar crate the way the engine's archive API lays entries out.
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    builder
        .append_data(&mut dir, "workspace/", &[][..])
        .unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_size(5);
    builder
        .append_data(&mut file, "workspace/hello.txt", &b"hello"[..])
        .unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "workspace/to-etc", "/etc")
        .unwrap();
    let mut fifo = tar::Header::new_gnu();
    fifo.set_entry_type(tar::EntryType::Fifo);
    fifo.set_size(0);
    builder
        .append_data(&mut fifo, "workspace/pipe", &[][..])
        .unwrap();
    let bytes = builder.into_inner().unwrap();

    let mut archive = tar::Archive::new(&bytes[..]);
    let results: Vec<_> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let kind = tar_kind(e.header().entry_type());
            check_entry(
                "workspace",
                &e.path_bytes(),
                kind,
                e.link_name_bytes().as_deref(),
            )
        })
        .collect();
    assert!(results[0].as_ref().unwrap().path.is_root());
    assert_eq!(results[1].as_ref().unwrap().path.as_bytes(), b"hello.txt");
    assert_eq!(
        results[2].as_ref().unwrap().link,
        Some(Link::Symlink(b"/etc".to_vec()))
    );
    assert_eq!(
        results[3].as_ref().unwrap_err().reason,
        Refusal::Special("fifo (named pipe)")
    );
}

#[test]
fn escaping_for_display() {
    assert_eq!(escape(b"plain/name.txt"), "plain/name.txt");
    assert_eq!(escape("café".as_bytes()), "café");
    assert_eq!(escape(b"a\x1b[31mred"), "a\\u{1b}[31mred");
    assert_eq!(escape(b"new\nline\ttab"), "new\\u{a}line\\u{9}tab");
    assert_eq!(escape(b"back\\slash"), "back\\\\slash");
    assert_eq!(escape(b"\xff\xfe"), "\\xff\\xfe");
    assert_eq!(
        escape("evil\u{202e}txt.exe".as_bytes()),
        "evil\\u{202e}txt.exe"
    );
    let err = check_entry(
        "workspace",
        b"workspace/\x1b]0;pwned\x07",
        EntryKind::Fifo,
        None,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\x1b') && !msg.contains('\x07'), "{msg:?}");
}

fn kind() -> impl Strategy<Value = EntryKind> {
    prop::sample::select(vec![
        EntryKind::File,
        EntryKind::Dir,
        EntryKind::Symlink,
        EntryKind::HardLink,
        EntryKind::CharDevice,
        EntryKind::Fifo,
        EntryKind::Other,
    ])
}

/// Paths made of tricky components, so that acceptance is common enough to test.
fn tricky_path() -> impl Strategy<Value = Vec<u8>> {
    let component = prop::sample::select(vec![
        &b"workspace"[..],
        b"..",
        b".",
        b"",
        b"a",
        b"...",
        b"..a",
        b"\xff",
        b"cache",
    ]);
    (any::<bool>(), prop::collection::vec(component, 0..6)).prop_map(|(absolute, parts)| {
        let mut p = if absolute { b"/".to_vec() } else { Vec::new() };
        p.extend(parts.join(&b'/'));
        p
    })
}

fn assert_clean(rel: &RelPath) -> Result<(), TestCaseError> {
    let bytes = rel.as_bytes();
    prop_assert!(!bytes.starts_with(b"/"), "{:?}", rel);
    prop_assert!(!bytes.contains(&0), "{:?}", rel);
    for c in bytes.split(|&b| b == b'/') {
        prop_assert!(
            c != b".." && c != b"." && (c != b"" || bytes.is_empty()),
            "{:?}",
            rel
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_paths_are_clean(
        path in prop_oneof![prop::collection::vec(any::<u8>(), 0..40), tricky_path()],
        target in prop_oneof![prop::collection::vec(any::<u8>(), 0..40), tricky_path()],
        root in prop::sample::select(vec!["workspace", "cache"]),
        kind in kind(),
    ) {
        if let Ok(c) = check_entry(root, &path, kind, Some(&target)) {
            assert_clean(&c.path)?;
            if let Some(Link::HardLink(t)) = &c.link {
                assert_clean(t)?;
                prop_assert!(!t.is_root());
            }
            prop_assert!(matches!(c.kind, EntryKind::File | EntryKind::Dir | EntryKind::Symlink | EntryKind::HardLink));
            // Idempotent: the normalised path, under the root again, is accepted as itself.
            let again = [root.as_bytes(), b"/", c.path.as_bytes()].concat();
            prop_assert_eq!(check_entry(root, &again, kind, Some(&target)).unwrap().path, c.path);
        }
    }
}
