//! Git objects made by the real `git` CLI in a temporary repository: loose, packed by
//! `git gc` and `git repack -a -d`, and stored as a delta.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{scan, HostObjects, NewObjects, ObjectFile};
use crate::boundary::RootKind;
use crate::scan::SecretSet;

const SECRET: &str = "s3cr3t-Zq8vK2pLmN4xW7yT";

fn secrets() -> SecretSet {
    SecretSet::new(&[("TOKEN", SECRET.as_bytes())])
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
        .args(["-c", "gc.auto=0", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    dir
}

/// Every file under `.git/objects`, relative to `.git`.
fn object_files(repo: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo.join(".git/objects"), &repo.join(".git"), &mut out);
    out.sort();
    out
}

/// Scan every object file of `repo` as the boundary would, against `host`: the files that
/// hit and where.
fn hits(repo: &Path, host: &HostObjects) -> Vec<(String, String)> {
    let set = secrets();
    let mut found = Vec::new();
    for rel in object_files(repo) {
        let path = repo.join(".git").join(&rel);
        let size = std::fs::metadata(&path).unwrap().len();
        let objects = host.new_objects(RootKind::Git, rel.as_bytes(), size);
        let mut file = std::fs::File::open(&path).unwrap();
        if let Some((hit, detail)) = scan(objects, &mut file, &set).unwrap() {
            assert_eq!(hit.secret, "TOKEN");
            found.push((rel, detail));
        }
    }
    found
}

/// A host with no `.git`: every object is new.
fn no_host() -> HostObjects {
    HostObjects::new(PathBuf::from("/nonexistent/airlock-test/.git"))
}

/// The control: scanned only raw, as before, no object file shows the secret.
fn raw_hits(repo: &Path) -> usize {
    let set = secrets();
    object_files(repo)
        .iter()
        .filter(|rel| {
            let mut file = std::fs::File::open(repo.join(".git").join(rel)).unwrap();
            scan(None, &mut file, &set).unwrap().is_some()
        })
        .count()
}

fn commit_then_remove(dir: &Path) {
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    std::fs::write(dir.join("config.env"), format!("TOKEN={SECRET}\n")).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "with the token"]);
    git(dir, &["rm", "-q", "config.env"]);
    git(dir, &["commit", "-qm", "without"]);
}

#[test]
fn a_committed_then_removed_secret_is_found_in_its_loose_object() {
    let dir = repo();
    commit_then_remove(dir.path());
    assert_eq!(
        raw_hits(dir.path()),
        0,
        "compressed, the raw scan can't see it"
    );
    let found = hits(dir.path(), &no_host());
    assert_eq!(found.len(), 1, "{found:?}");
    let (rel, detail) = &found[0];
    assert!(
        rel.starts_with("objects/") && rel.len() == "objects/".len() + 41,
        "{rel}"
    );
    assert_eq!(detail, " (a git object, inflated)");
}

#[test]
fn a_secret_added_then_unstaged_is_found_in_its_loose_object() {
    let dir = repo();
    std::fs::write(
        dir.path().join(".npmrc"),
        format!("//r.invalid/:_authToken={SECRET}\n"),
    )
    .unwrap();
    git(dir.path(), &["add", ".npmrc"]);
    git(dir.path(), &["rm", "-q", "--cached", ".npmrc"]);
    std::fs::remove_file(dir.path().join(".npmrc")).unwrap();
    assert_eq!(raw_hits(dir.path()), 0);
    let found = hits(dir.path(), &no_host());
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn packs_made_by_gc_and_by_repack_are_parsed_and_every_object_inflated() {
    for pack in [&["gc", "-q"][..], &["repack", "-q", "-a", "-d"]] {
        let dir = repo();
        commit_then_remove(dir.path());
        // Some later history, so the secret's blob is one object among many.
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), format!("file {i}\n")).unwrap();
            git(dir.path(), &["add", "-A"]);
            git(dir.path(), &["commit", "-qm", &format!("c{i}")]);
        }
        git(dir.path(), pack);
        let files = object_files(dir.path());
        assert!(
            !files.iter().any(|f| f.len() == "objects/".len() + 41),
            "{pack:?} left loose objects: {files:?}"
        );
        assert_eq!(raw_hits(dir.path()), 0);
        let found = hits(dir.path(), &no_host());
        assert_eq!(found.len(), 1, "{pack:?}: {found:?}");
        let (rel, detail) = &found[0];
        assert!(
            rel.starts_with("objects/pack/pack-") && rel.ends_with(".pack"),
            "{rel}"
        );
        assert!(detail.starts_with(" (the git object at byte "), "{detail}");
    }
}

/// Deterministic text that deltas well and never contains the secret.
fn text(seed: u64, len: usize) -> String {
    let mut x = seed | 1;
    let mut out = String::new();
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("line {:016x}\n", x));
    }
    out
}

#[test]
fn a_secret_inserted_by_a_delta_is_found_even_across_two_inserts() {
    let dir = repo();
    let base = text(1, 8000);
    let (head, tail) = base.split_at(4000);
    // The version with the secret: a 115-byte run before it, so the secret straddles the
    // 127-byte insert instructions git cuts a longer insert into.
    let with = format!(
        "{head}{}{SECRET}{}{tail}",
        &text(2, 115)[..115],
        text(3, 200)
    );
    // A later, bigger version without it: git deltas the smaller one against it.
    let later = format!("{head}{tail}{}", text(4, 3000));
    std::fs::write(dir.path().join("data.txt"), &with).unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "with"]);
    let blob = git(dir.path(), &["hash-object", "data.txt"])
        .trim()
        .to_string();
    std::fs::write(dir.path().join("data.txt"), &later).unwrap();
    git(dir.path(), &["commit", "-qam", "later"]);
    git(dir.path(), &["repack", "-q", "-a", "-d", "-f"]);
    // The blob with the secret is a delta in the pack (verify-pack shows its base).
    let pack = object_files(dir.path())
        .into_iter()
        .find(|f| f.ends_with(".idx"))
        .unwrap();
    let listing = git(dir.path(), &["verify-pack", "-v", &format!(".git/{pack}")]);
    let line = listing.lines().find(|l| l.starts_with(&blob)).unwrap();
    assert_eq!(line.split_whitespace().count(), 7, "not a delta: {line}");
    assert_eq!(raw_hits(dir.path()), 0);
    let found = hits(dir.path(), &no_host());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].1.starts_with(" (the git delta at byte "),
        "{found:?}"
    );
}

#[test]
fn what_the_host_already_had_is_skipped_by_name_and_size() {
    let dir = repo();
    commit_then_remove(dir.path());
    git(dir.path(), &["gc", "-q"]);
    // A loose object too, alongside the pack.
    std::fs::write(dir.path().join("more"), format!("again {SECRET}\n")).unwrap();
    git(dir.path(), &["add", "more"]);
    let host = HostObjects::new(dir.path().join(".git"));
    for rel in object_files(dir.path()) {
        let size = std::fs::metadata(dir.path().join(".git").join(&rel))
            .unwrap()
            .len();
        assert_eq!(
            host.new_objects(RootKind::Git, rel.as_bytes(), size),
            None,
            "{rel}"
        );
    }
    assert!(hits(dir.path(), &host).is_empty());
    // The same history is found when the host did not have it.
    assert_eq!(hits(dir.path(), &no_host()).len(), 2);
    // A file under a known name but of another size is not what the host had.
    let pack = object_files(dir.path())
        .into_iter()
        .find(|f| f.ends_with(".pack"))
        .unwrap();
    assert_eq!(
        host.new_objects(RootKind::Git, pack.as_bytes(), 1),
        Some(NewObjects {
            file: ObjectFile::Pack,
            hash_len: 20
        })
    );
    // In the workspace root only its own `.git/` counts; persist paths are not inflated.
    let rel = format!(".git/{pack}");
    assert!(host
        .new_objects(RootKind::Workspace, rel.as_bytes(), 1)
        .is_some());
    assert_eq!(
        host.new_objects(RootKind::Workspace, pack.as_bytes(), 1),
        None
    );
    assert_eq!(host.new_objects(RootKind::Persist, rel.as_bytes(), 1), None);
}

#[test]
fn object_files_are_told_apart_by_path() {
    use super::object_file;
    let loose = "objects/ab/cdef0123456789abcdef0123456789abcdef01";
    assert_eq!(object_file(loose.as_bytes()), Some(ObjectFile::Loose));
    assert_eq!(
        object_file(b"objects/pack/pack-1.pack"),
        Some(ObjectFile::Pack)
    );
    assert_eq!(
        object_file(b"objects/pack/tmp_pack_x1"),
        Some(ObjectFile::Pack)
    );
    for other in [
        &b"objects/pack/pack-1.idx"[..],
        b"objects/info/packs",
        b"objects/abc/def",
        b"config",
        b"refs/heads/main",
        b"modules/sub/objects/ab/cd",
    ] {
        assert_eq!(
            object_file(other),
            None,
            "{}",
            String::from_utf8_lossy(other)
        );
    }
}

/// A delta's literals straddling two inserts, with a copy before and after, are found
/// whatever the chunking; the copy's argument bytes never join them.
#[test]
fn delta_literals_are_one_stream_whatever_the_chunking() {
    let (a, b) = SECRET.as_bytes().split_at(10);
    let mut delta = vec![0x90, 0x01, 0x85, 0x02]; // base size, result size (varints)
    delta.extend([0x91, 0x10, 0x20]); // copy: offset byte 0, size byte 0
    delta.push(a.len() as u8);
    delta.extend(a);
    delta.push(b.len() as u8);
    delta.extend(b);
    delta.extend([0xb3, 1, 2, 3, 4, 5]); // copy with four argument bytes
    let set = secrets();
    for cut in 0..=delta.len() {
        let mut scanner = set.scanner();
        let mut parser = super::Delta::default();
        let (x, y) = delta.split_at(cut);
        let hit = parser
            .literals(x, &mut scanner)
            .or_else(|| parser.literals(y, &mut scanner));
        assert_eq!(
            hit.map(|h| h.secret),
            Some("TOKEN".to_string()),
            "cut at {cut}"
        );
    }
    // Only literals count: the same bytes as copy arguments are not a hit.
    let mut copies = vec![0x05, 0x05];
    for &byte in SECRET.as_bytes() {
        copies.extend([0x81, byte]);
    }
    let mut scanner = set.scanner();
    assert_eq!(
        super::Delta::default().literals(&copies, &mut scanner),
        None
    );
}

/// Garbage where objects belong: no panic, nothing lost from the raw scan.
#[test]
fn malformed_objects_are_scanned_raw_and_inflated_as_far_as_they_go() {
    let set = secrets();
    let loose = NewObjects {
        file: ObjectFile::Loose,
        hash_len: 20,
    };
    let pack = NewObjects {
        file: ObjectFile::Pack,
        hash_len: 20,
    };
    let raw = format!("not zlib {SECRET}");
    for objects in [loose, pack] {
        let (hit, detail) = scan(Some(objects), &mut raw.as_bytes(), &set)
            .unwrap()
            .unwrap();
        assert_eq!((hit.secret.as_str(), detail.as_str()), ("TOKEN", ""));
        for junk in [
            &b""[..],
            b"PACK",
            b"PACK\0\0\0\x02\0\0\0\x05\x95",
            b"PACK\0\0\0\x02\xff\xff\xff\xff\x30\x78\x9c\x01",
        ] {
            assert_eq!(scan(Some(objects), &mut &junk[..], &set).unwrap(), None);
        }
    }
}
