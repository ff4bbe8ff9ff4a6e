//! `airlock image build` / `image list` against the real engine, with no registry.
//!
//! The shared images (`airlock/busybox`, `airlock/tiny`) are built through the harness and
//! never removed here: other tests use them. Everything else a test makes is named uniquely
//! (image folders `t<pid>-<n>-<what>`, bases `airlock/busybox:<unique>`) and removed by a
//! guard even when the test fails.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::{docker, repo, tiny_image, Root, Test};

fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Removes, on drop, every image built from the named folders, then the named references.
struct Cleanup {
    folders: Vec<String>,
    references: Vec<String>,
}

impl Cleanup {
    fn folders(names: &[&str]) -> Cleanup {
        Cleanup {
            folders: names.iter().map(|s| s.to_string()).collect(),
            references: Vec::new(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let run = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        for name in &self.folders {
            let filter = format!("label=airlock.image.name={name}");
            let ids = run(&["images", "-q", "--no-trunc", "--filter", &filter]);
            for id in ids.lines().collect::<std::collections::BTreeSet<_>>() {
                run(&["rmi", "-f", id]);
            }
        }
        for r in &self.references {
            run(&["rmi", r]);
        }
    }
}

/// Give the root its own `images/` folder (the harness links the repository's).
fn own_images(root: &Root) {
    let images = root.path().join("images");
    std::fs::remove_file(&images).unwrap();
    std::fs::create_dir(&images).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The `airlock/...` reference and `sha256:...` id of an `image build` result line.
fn reference_and_id(stdout: &str, name: &str) -> (String, String) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("image {name}: ")))
        .unwrap_or_else(|| panic!("no result line for {name} in {stdout:?}"));
    let word = |prefix: &str| {
        line.split_whitespace()
            .find(|w| w.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {line:?}"))
            .to_string()
    };
    (word("airlock/"), word("sha256:"))
}

fn inspect(reference: &str, format: &str) -> String {
    docker(&["image", "inspect", "--format", format, reference])
        .trim()
        .to_string()
}

fn build_in(root: &Root, name: &str) -> crate::harness::Output {
    Test::new().root(root).args(["image", "build", name]).run()
}

#[test]
fn tiny_builds_with_no_registry_and_a_second_build_is_a_no_op() {
    // The harness's own way (AIRLOCK_ROOT at the repository) must work: other tests rely on it.
    tiny_image();
    let again = || {
        Test::new()
            .env("AIRLOCK_ROOT", repo())
            .args(["image", "build", "tiny"])
            .run()
            .success()
            .stdout_has("image tiny: up to date")
            .stdout()
    };
    let (reference, id) = reference_and_id(&again(), "tiny");
    assert_eq!(
        reference_and_id(&again(), "tiny"),
        (reference.clone(), id.clone())
    );
    assert_eq!(inspect(&reference, "{{.Id}}"), id);
    assert_eq!(
        inspect(&reference, "{{index .Config.Labels \"airlock.managed\"}}"),
        "true"
    );
    assert_eq!(
        inspect(
            &reference,
            "{{index .Config.Labels \"airlock.image.name\"}}"
        ),
        "tiny"
    );

    // What tests and tasks rely on inside it.
    let script = "id agent; stat -c '%a %u:%g' /tmp /home/agent; \
                  for t in sh printf cat mkdir chown env id sleep nc; do which $t; done";
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        "airlock.managed=true",
        &reference,
        "sh",
        "-c",
        script,
    ]);
    assert!(out.contains("uid=1000(agent) gid=1000(agent)"), "{out}");
    assert!(out.contains("1777 0:0"), "{out}");
    assert!(out.contains("755 1000:1000"), "{out}");
    for tool in [
        "sh", "printf", "cat", "mkdir", "chown", "env", "id", "sleep", "nc",
    ] {
        let found = out
            .lines()
            .any(|l| l.starts_with('/') && l.ends_with(&format!("/{tool}")));
        assert!(found, "{tool} missing from tiny:\n{out}");
    }
}

#[test]
fn a_missing_busybox_base_is_bootstrapped_without_a_separate_step() {
    let name = unique("bb");
    // A tag of airlock/busybox no one else uses, so it is surely missing.
    let base = format!("airlock/busybox:{name}");
    let mut cleanup = Cleanup::folders(&[&name]);
    cleanup.references.push(base.clone());
    let root = Root::new();
    own_images(&root);
    root.write(
        &format!("images/{name}/Dockerfile"),
        format!("FROM {base}\nRUN id agent && test -d /home/agent\n"),
    );
    let out = build_in(&root, &name)
        .success()
        .stdout_has(&format!("bootstrapped {base}"))
        .stderr_has(&format!("bootstrapping {base}"));
    let (reference, _) = reference_and_id(&out.stdout(), &name);
    assert!(
        reference.starts_with(&format!("airlock/{name}:")),
        "{reference}"
    );
    assert_eq!(
        inspect(&base, "{{index .Config.Labels \"airlock.managed\"}}"),
        "true"
    );
    let how = inspect(
        &base,
        "{{index .Config.Labels \"airlock.image.bootstrap\"}}",
    );
    assert!(how.contains("busybox"), "{how}");
}

#[test]
fn a_changed_folder_rebuilds_and_list_shows_both() {
    tiny_image();
    let name = unique("copy");
    let _cleanup = Cleanup::folders(&[&name]);
    let root = Root::new();
    own_images(&root);
    let folder = root.path().join("images").join(&name);
    copy_dir(&repo().join("images/tiny"), &folder);

    let first = build_in(&root, &name)
        .success()
        .stdout_has("built")
        .stdout();
    let (ref1, id1) = reference_and_id(&first, &name);
    let second = build_in(&root, &name)
        .success()
        .stdout_has("up to date")
        .stdout();
    assert_eq!(
        reference_and_id(&second, &name),
        (ref1.clone(), id1.clone())
    );

    let dockerfile = folder.join("Dockerfile");
    let mut text = std::fs::read_to_string(&dockerfile).unwrap();
    text.push_str("RUN echo changed > /changed\n");
    std::fs::write(&dockerfile, text).unwrap();
    let third = build_in(&root, &name)
        .success()
        .stdout_has("built")
        .stdout();
    let (ref2, id2) = reference_and_id(&third, &name);
    assert_ne!(ref1, ref2);
    assert_ne!(id1, id2);
    let changed = docker(&["run", "--rm", "--network", "none", &ref2, "cat", "/changed"]);
    assert_eq!(changed.trim(), "changed");

    let list = Test::new()
        .root(&root)
        .args(["image", "list"])
        .run()
        .success()
        .stdout();
    let row = |reference: &str| {
        list.lines()
            .find(|l| l.contains(reference))
            .unwrap_or_else(|| panic!("{reference} not listed:\n{list}"))
            .to_string()
    };
    let new_row = row(&ref2);
    assert!(
        new_row.starts_with(&name) && new_row.ends_with("current"),
        "{new_row}"
    );
    let old_row = row(&ref1);
    assert!(old_row.ends_with("changed since"), "{old_row}");
    assert!(list.lines().next().unwrap().contains("HASH"), "{list}");
}

#[test]
fn an_unknown_image_is_a_clear_error() {
    let root = Root::new();
    let name = unique("nosuch");
    build_in(&root, &name)
        .code(78)
        .stderr_has(&format!("image \"{name}\" is not a folder under"))
        .stderr_has("not an image in the Docker engine")
        .stderr_has("nothing can be pulled here");

    // A folder with no Dockerfile says so.
    own_images(&root);
    std::fs::create_dir(root.path().join("images").join(&name)).unwrap();
    build_in(&root, &name)
        .code(78)
        .stderr_has("has no Dockerfile");
}

#[test]
fn a_failing_run_names_the_image_and_the_step() {
    tiny_image();
    let name = unique("fail");
    let _cleanup = Cleanup::folders(&[&name]);
    let marker = format!("marker-{name}");
    let root = Root::new();
    own_images(&root);
    root.write(
        &format!("images/{name}/Dockerfile"),
        format!("FROM airlock/busybox\nRUN echo {marker} && echo second-line && exit 3\n"),
    );
    build_in(&root, &name)
        .code(78)
        .stderr_has(&format!("building image {name} failed at Step 2/"))
        .stderr_has(&format!("RUN echo {marker}"))
        .stderr_has("    | second-line")
        .stderr_has("returned a non-zero code: 3");
    // forcerm: the failed step's container is gone, and no image was tagged.
    let commands = docker(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"]);
    assert!(
        !commands.contains(&marker),
        "a build container was left:\n{commands}"
    );
    let filter = format!("label=airlock.image.name={name}");
    assert_eq!(docker(&["images", "-q", "--filter", &filter]).trim(), "");
}

#[test]
fn a_base_that_is_neither_present_nor_bootstrappable_says_so() {
    let name = unique("nobase");
    let base = format!("airlock-test/{name}:1");
    let root = Root::new();
    own_images(&root);
    root.write(
        &format!("images/{name}/Dockerfile"),
        format!("FROM {base}\nRUN true\n"),
    );
    build_in(&root, &name)
        .code(78)
        .stderr_has(&format!("image {name}: its base {base}"))
        .stderr_has("is not in the Docker engine")
        .stderr_has("can't be pulled here")
        .stderr_has("debian:<suite>");
}

#[test]
fn two_builds_of_one_image_at_once_both_succeed() {
    tiny_image();
    let name = unique("twice");
    let _cleanup = Cleanup::folders(&[&name]);
    let root = Root::new();
    own_images(&root);
    root.write(
        &format!("images/{name}/Dockerfile"),
        "FROM airlock/busybox\nRUN sleep 1 && echo done > /done\n",
    );
    let spawn = || {
        Test::new()
            .root(&root)
            .args(["image", "build", &name])
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut refs = Vec::new();
    let mut outcomes = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "a concurrent build failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        refs.push(reference_and_id(&stdout, &name).0);
        outcomes.push(if stdout.contains("up to date") {
            "up to date"
        } else {
            "built"
        });
    }
    assert_eq!(refs[0], refs[1]);
    // The host lock: one built it, the other waited and found it built.
    outcomes.sort();
    assert_eq!(outcomes, ["built", "up to date"]);
}
