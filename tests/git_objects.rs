//! Git objects a setup script leaves in the workspace's `.git` are scanned inflated: a secret
//! committed and removed, staged and unstaged, or packed by `git gc` refuses the run, naming
//! the secret and the object's place. Objects the host's `.git` already had are not read
//! again: a host history that holds the value in a pack crosses (it was the host's).
//!
//! The setup scripts run the real git, in the base image (Debian, with git).

use std::path::Path;
use std::process::Command;

use crate::harness::base_image;
use crate::harness::{assert_run_gone, Fixture, SECRET};

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
        .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A workspace that is a git repository with one commit, and an environment on the base
/// image whose setup script runs `script` in it with git configured.
fn fixture(script: &str) -> Fixture {
    base_image();
    let f = Fixture::new();
    f.secret("TOKEN", SECRET.as_bytes());
    f.ws_file("README", "hello\n");
    git(&f.ws, &["init", "-q"]);
    git(&f.ws, &["add", "-A"]);
    git(&f.ws, &["commit", "-qm", "start"]);
    let mut yaml = String::from(
        "image: base\nsecrets: [TOKEN]\nsetup: |\n  cd /workspace\n  \
         git config --global safe.directory '*'\n  git config --global user.name setup\n  \
         git config --global user.email setup@example.com\n  git config --global gc.auto 0\n",
    );
    for line in script.lines() {
        yaml.push_str(&format!("  {line}\n"));
    }
    f.env("t", &yaml);
    f
}

/// The run is refused by the boundary (exit 81), naming the secret and `place`, never the
/// value, and nothing of it is left.
#[track_caller]
fn refused_at(f: &Fixture, place: &str) {
    let out = f
        .run("t", &["true"])
        .run()
        .code(81)
        .stderr_has("secret TOKEN")
        .stderr_has(place)
        .stderr_has("inflated)");
    out.never_prints(SECRET.as_bytes());
    let report = f.report();
    assert_eq!(report["outcome"], "boundary_refused", "{report}");
    assert!(report["boundary"]["refused"]
        .as_str()
        .unwrap()
        .contains(place));
    assert_run_gone(report["run_id"].as_str().unwrap());
}

#[test]
fn a_secret_committed_then_removed_by_setup_refuses_the_run_at_its_loose_object() {
    let f = fixture(
        "printf 'TOKEN=%s\\n' \"$TOKEN\" > config.env\ngit add config.env\n\
         git commit -qm 'with the token'\ngit rm -q config.env\ngit commit -qm without",
    );
    refused_at(&f, "/workspace/.git/objects/");
}

#[test]
fn a_secret_staged_then_unstaged_by_setup_refuses_the_run_at_its_loose_object() {
    let f = fixture(
        "printf '//registry.example.com/:_authToken=%s\\n' \"$TOKEN\" > .npmrc\n\
         git add .npmrc\ngit rm -q --cached .npmrc\nrm .npmrc",
    );
    refused_at(&f, "/workspace/.git/objects/");
}

#[test]
fn a_secret_packed_by_git_gc_in_setup_refuses_the_run_at_its_pack() {
    let f = fixture(
        "printf 'TOKEN=%s\\n' \"$TOKEN\" > config.env\ngit add config.env\n\
         git commit -qm 'with the token'\ngit rm -q config.env\ngit commit -qm without\n\
         git gc -q\ntest -z \"$(find .git/objects -path '*/objects/??/*')\"",
    );
    refused_at(&f, "/workspace/.git/objects/pack/pack-");
}

/// The host's own history (packed, with a large blob and, in an old commit, the value
/// itself) is what the run started with: its pack is skipped by name, so the run crosses,
/// while a setup that adds objects to the same repository is still scanned.
#[test]
fn packs_the_host_already_had_are_not_inflated_again() {
    let f = fixture("git status --short >/dev/null\necho setup done");
    let big: String = (0..200_000u64)
        .map(|i| format!("{:016x}\n", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    f.ws_file("big.txt", big);
    f.ws_file("old.env", format!("TOKEN={SECRET}\n"));
    git(&f.ws, &["add", "-A"]);
    git(&f.ws, &["commit", "-qm", "history"]);
    git(&f.ws, &["rm", "-q", "old.env"]);
    git(&f.ws, &["commit", "-qm", "removed"]);
    git(&f.ws, &["gc", "-q"]);
    let packs: Vec<_> = std::fs::read_dir(f.ws.join(".git/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".pack"))
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let out = f.run("t", &["true"]).run().success();
    out.never_prints(SECRET.as_bytes());
    let report = f.report();
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_run_gone(report["run_id"].as_str().unwrap());

    // The same repository, but setup commits the value anew: found, in a loose object.
    f.env(
        "t",
        "image: base\nsecrets: [TOKEN]\nsetup: |\n  cd /workspace\n  \
         git config --global safe.directory '*'\n  \
         printf 'AGAIN=%s\\n' \"$TOKEN\" > again.env\n  git add again.env\n  \
         git rm -q --cached again.env\n  rm again.env\n",
    );
    refused_at(&f, "/workspace/.git/objects/");
}
