//! `airlock secrets ...` and the store `airlock run` decrypts from, against the real age CLI
//! (`age`, `age-keygen`) in both directions. Every test checks that no value is ever printed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use airlock::secrets::{find_identities, SecretError, Store};
use secrecy::ExposeSecret;

use crate::harness::{Output, Root, Test};

/// The config-error exit code (`exit::CONFIG_ERROR`).
const CONFIG: i32 = 78;

fn secrets(root: &Root) -> Test {
    Test::new().root(root).arg("secrets")
}

/// `airlock secrets init` in this root; returns the identity file and its public key.
fn init(root: &Root) -> (PathBuf, String) {
    let out = secrets(root).arg("init").run().success();
    let path = root.home().join(".config/airlock/identity.txt");
    let public = keygen_public(&path);
    out.stdout_has(&public).never_prints(b"AGE-SECRET-KEY");
    (path, public)
}

/// A new identity file made by age-keygen; returns it and its public key.
fn keygen(root: &Root, name: &str) -> (PathBuf, String) {
    let path = root.path().join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("run age-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = keygen_public(&path);
    (path, public)
}

fn keygen_public(identity: &Path) -> String {
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(identity)
        .output()
        .expect("run age-keygen -y");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `age -d -i IDENTITY FILE`: the plaintext, or None when age refuses.
fn age_decrypt(identity: &Path, file: &Path) -> Option<Vec<u8>> {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("run age");
    out.status.success().then_some(out.stdout)
}

/// `age [-a] -R RECIPIENTS -o OUT` with `value` on standard input.
fn age_encrypt(args: &[&str], value: &[u8], out_file: &Path) {
    use std::io::Write;
    let mut child = Command::new("age")
        .args(args)
        .arg("-o")
        .arg(out_file)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run age");
    child.stdin.take().unwrap().write_all(value).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set(root: &Root, name: &str, value: &[u8]) -> Output {
    secrets(root)
        .args(["set", name])
        .stdin(value.to_vec())
        .run()
        .never_prints(value)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file in the folder with its bytes, to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_in(dir)
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

fn store(root: &Root) -> Store {
    Store::open(&root.path().join("secrets"))
}

#[test]
fn init_creates_a_private_identity_and_adds_its_key() {
    let root = Root::new();
    let (path, public) = init(&root);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for dir in [".config", ".config/airlock"] {
        let mode = std::fs::metadata(root.home().join(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{dir}");
    }
    let recipients = root.read("secrets/recipients.txt");
    assert!(recipients.starts_with('#'), "{recipients}");
    assert_eq!(
        recipients
            .lines()
            .filter(|l| l.starts_with("age1"))
            .collect::<Vec<_>>(),
        vec![public.as_str()]
    );
    // Never overwrites.
    let before = std::fs::read(&path).unwrap();
    secrets(&root)
        .arg("init")
        .run()
        .code(CONFIG)
        .stderr_has("already exists")
        .stderr_has(&public)
        .never_prints(b"AGE-SECRET-KEY");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // --identity and AIRLOCK_IDENTITY name where it goes.
    let custom = root.path().join("keys/me.txt");
    secrets(&root)
        .arg("init")
        .arg("--identity")
        .arg(&custom)
        .run()
        .success();
    let from_env = root.path().join("env-id.txt");
    secrets(&root)
        .arg("init")
        .env("AIRLOCK_IDENTITY", &from_env)
        .run()
        .success();
    let keys = [keygen_public(&custom), keygen_public(&from_env)];
    let recipients = root.read("secrets/recipients.txt");
    for key in keys.iter().chain([&public]) {
        assert!(recipients.contains(key.as_str()), "{recipients}");
    }
}

#[test]
fn airlock_writes_what_the_age_cli_reads() {
    let root = Root::new();
    let (identity, _) = init(&root);
    let (other, other_public) = keygen(&root, "other.txt");
    secrets(&root)
        .args(["recipients", "add", &other_public])
        .run()
        .success();
    set(&root, "API_TOKEN", b"tok-1234567890\n").success();
    let file = root.path().join("secrets/API_TOKEN.age");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
        "{text}"
    );
    // Encrypted to every recipient; one trailing newline dropped by default.
    assert_eq!(age_decrypt(&identity, &file).unwrap(), b"tok-1234567890");
    assert_eq!(age_decrypt(&other, &file).unwrap(), b"tok-1234567890");
    // Multi-line, kept exactly with --raw.
    let pem = b"-----BEGIN KEY-----\nline one\nline two\n-----END KEY-----\n";
    secrets(&root)
        .args(["set", "PEM", "--raw"])
        .stdin(pem.to_vec())
        .run()
        .success()
        .never_prints(b"line one");
    let pem_file = root.path().join("secrets/PEM.age");
    assert_eq!(age_decrypt(&identity, &pem_file).unwrap(), pem);
    // ...and without --raw, only the last newline goes.
    set(&root, "PEM2", pem).success();
    assert_eq!(
        age_decrypt(&identity, &root.path().join("secrets/PEM2.age")).unwrap(),
        &pem[..pem.len() - 1]
    );
}

#[test]
fn files_the_age_cli_writes_are_read_by_airlock() {
    let root = Root::new();
    let (identity, _) = init(&root);
    let recipients = root.path().join("secrets/recipients.txt");
    let armored = root.path().join("secrets/FROM_AGE.age");
    let binary = root.path().join("secrets/BINARY_AGE.age");
    let r = recipients.to_str().unwrap();
    age_encrypt(&["-a", "-R", r], b"armored-value-123", &armored);
    age_encrypt(&["-R", r], b"binary-value-456", &binary);

    secrets(&root)
        .arg("list")
        .run()
        .success()
        .stdout_has("FROM_AGE")
        .stdout_has("17 B")
        .stdout_has("BINARY_AGE")
        .stdout_has("16 B")
        .stdout_has("can decrypt")
        .never_prints(b"armored-value-123")
        .never_prints(b"binary-value-456");
    // They decrypt, but airlock cannot know whom they are encrypted to.
    secrets(&root)
        .arg("check")
        .run()
        .code(1)
        .stdout_has("FROM_AGE: written outside airlock; recipients unknown")
        .stdout_has("recipients sync")
        .never_prints(b"armored-value-123");

    let ids = find_identities(Some(&identity)).unwrap();
    let values = store(&root)
        .decrypt_all(&["FROM_AGE".into(), "BINARY_AGE".into()], &ids)
        .unwrap();
    assert_eq!(values[0].0, "FROM_AGE");
    assert_eq!(values[0].1.expose_secret(), b"armored-value-123");
    assert_eq!(values[1].1.expose_secret(), b"binary-value-456");

    // `recipients sync` adopts them: re-encrypted and recorded.
    secrets(&root)
        .args(["recipients", "sync"])
        .run()
        .success()
        .stdout_has("re-encrypted 2 secret(s)");
    secrets(&root)
        .arg("check")
        .run()
        .success()
        .stdout_has("ok       FROM_AGE")
        .stdout_has("all fine");
    assert_eq!(
        age_decrypt(&identity, &binary).unwrap(),
        b"binary-value-456"
    );
}

#[test]
fn binary_values_with_nul_bytes_round_trip() {
    let root = Root::new();
    let (identity, _) = init(&root);
    let value: Vec<u8> = b"\0\x01binary\0value\xff\xfe\n\0\n".to_vec();
    let file = root.write("value.bin", &value);
    secrets(&root)
        .args(["set", "BLOB", "--raw", "--from-file"])
        .arg(&file)
        .run()
        .success()
        .never_prints(b"binary\0value");
    let age_file = root.path().join("secrets/BLOB.age");
    assert_eq!(age_decrypt(&identity, &age_file).unwrap(), value);
    let ids = find_identities(Some(&identity)).unwrap();
    let got = store(&root).decrypt_all(&["BLOB".into()], &ids).unwrap();
    assert_eq!(got[0].1.expose_secret(), &value[..]);
    secrets(&root)
        .arg("list")
        .run()
        .success()
        .stdout_has(&format!("{} B", value.len()));
    // Standard input carries binary as well.
    secrets(&root)
        .args(["set", "BLOB2", "--raw"])
        .stdin(value.clone())
        .run()
        .success();
    assert_eq!(
        age_decrypt(&identity, &root.path().join("secrets/BLOB2.age")).unwrap(),
        value
    );
}

#[test]
fn values_shorter_than_eight_bytes_are_refused_when_set_and_at_run_time() {
    let root = Root::new();
    let (identity, _) = init(&root);
    set(&root, "SHORT", b"1234567\n")
        .code(CONFIG)
        .stderr_has("7 byte(s)")
        .stderr_has("cannot reliably keep values this short out of the agent phase");
    set(&root, "EMPTY", b"")
        .code(CONFIG)
        .stderr_has("0 byte(s)");
    assert!(!root.path().join("secrets/SHORT.age").exists());
    // Exactly eight is fine.
    set(&root, "EIGHT", b"12345678").success();
    // A short value written with the age CLI is refused by the run.
    let r = root.path().join("secrets/recipients.txt");
    age_encrypt(
        &["-a", "-R", r.to_str().unwrap()],
        b"abc",
        &root.path().join("secrets/TINY.age"),
    );
    let ids = find_identities(Some(&identity)).unwrap();
    let err = store(&root)
        .decrypt_all(&["EIGHT".into(), "TINY".into()], &ids)
        .unwrap_err()
        .to_string();
    assert!(err.contains("TINY"), "{err}");
    assert!(
        err.contains("use a longer value") || err.contains("Use a longer value"),
        "{err}"
    );
    // Too large is refused too.
    secrets(&root)
        .args(["set", "HUGE"])
        .stdin(vec![b'x'; (1 << 20) + 1])
        .run()
        .code(CONFIG)
        .stderr_has("larger than");
}

#[test]
fn invalid_names_are_refused_and_write_nothing() {
    let root = Root::new();
    let (identity, _) = init(&root);
    let before = snapshot(&root.path().join("secrets"));
    for name in ["../x", "a/b", "lower", "1X", "A-B", "A.B", ""] {
        set(&root, name, b"a-long-enough-value")
            .code(CONFIG)
            .stderr_has("invalid secret name")
            .stderr_has("[A-Z_][A-Z0-9_]*");
        secrets(&root)
            .args(["rm", name])
            .run()
            .code(CONFIG)
            .stderr_has("invalid secret name");
    }
    // Names the setup phase relies on: refused with a way forward, as `env check` does.
    for name in ["PATH", "HOME", "LD_PRELOAD", "BASH_FUNC_X", "AIRLOCK_ENV"] {
        set(&root, name, b"a-long-enough-value")
            .code(CONFIG)
            .stderr_has(&format!("a secret named {name} would replace"))
            .stderr_has(&format!("MY_{name}"));
    }
    assert_eq!(snapshot(&root.path().join("secrets")), before);
    assert!(!root.path().join("x.age").exists());
    let ids = find_identities(Some(&identity)).unwrap();
    let err = store(&root)
        .decrypt_all(&["../x".into()], &ids)
        .unwrap_err();
    assert!(matches!(err, SecretError::InvalidName { .. }), "{err}");
}

#[test]
fn values_are_never_taken_from_the_command_line() {
    let root = Root::new();
    init(&root);
    Test::new()
        .root(&root)
        .args(["secrets", "set", "API_TOKEN", "hunter2hunter2"])
        .run()
        .code(CONFIG)
        .stderr_has("takes no value on the command line")
        .never_prints(b"hunter2hunter2");
    for args in [
        &["set", "API_TOKEN", "--raw", "-hunter2hunter2"][..],
        &["set", "--raw", "API_TOKEN", "hunter2", "hunter2hunter2"],
    ] {
        secrets(&root)
            .args(args)
            .run()
            .code(CONFIG)
            .never_prints(b"hunter2");
    }
    assert!(!root.path().join("secrets/API_TOKEN.age").exists());
}

#[test]
fn list_shows_names_sizes_and_access_never_values() {
    let root = Root::new();
    let (identity, _) = init(&root);
    secrets(&root)
        .arg("list")
        .run()
        .success()
        .stdout_has("no secrets");
    set(&root, "ONE", b"first-secret-value").success();
    set(&root, "TWO", b"second-secret-value\nline2").success();
    let out = secrets(&root)
        .arg("list")
        .run()
        .success()
        .stdout_has("NAME")
        .stdout_has("ONE")
        .stdout_has("18 B")
        .stdout_has("TWO")
        .stdout_has("25 B")
        .stdout_has("can decrypt")
        .never_prints(b"first-secret-value")
        .never_prints(b"second-secret-value");
    // The change time is shown (RFC 3339).
    assert!(
        out.stdout().contains('T') && out.stdout().contains('Z'),
        "{}",
        out.stdout()
    );
    // Without any identity it still lists, and says why it cannot tell.
    std::fs::remove_file(&identity).unwrap();
    secrets(&root)
        .arg("list")
        .run()
        .success()
        .stdout_has("ONE")
        .stdout_has("(file)")
        .stdout_has("no identity")
        .stderr_has("airlock secrets init")
        .never_prints(b"first-secret-value");
}

#[test]
fn a_wrong_identity_is_told_whose_keys_the_secret_has() {
    let root = Root::new();
    let (_, alice) = init(&root);
    set(&root, "API_TOKEN", b"alice-only-value").success();
    let (bob_id, bob) = keygen(&root, "bob.txt");
    let msg_has = |out: Output| {
        out.stdout_has("API_TOKEN")
            .stdout_has(&alice)
            .stdout_has(&bob)
            .stdout_has(&format!("airlock secrets recipients add {bob}"))
            .never_prints(b"alice-only-value")
            .never_prints(b"AGE-SECRET-KEY")
    };
    msg_has(
        secrets(&root)
            .args(["check", "--identity"])
            .arg(&bob_id)
            .run()
            .code(1),
    );
    secrets(&root)
        .arg("list")
        .env("AIRLOCK_IDENTITY", &bob_id)
        .run()
        .success()
        .stdout_has("not encrypted to your key")
        .never_prints(b"alice-only-value");
    let ids = find_identities(Some(&bob_id)).unwrap();
    let err = store(&root)
        .decrypt_all(&["API_TOKEN".into()], &ids)
        .unwrap_err()
        .to_string();
    for needle in ["API_TOKEN.age", alice.as_str(), bob.as_str()] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
    // A file written outside airlock: the recipients are not known, and it says so.
    let r = root.path().join("other-recipients.txt");
    std::fs::write(&r, format!("{alice}\n")).unwrap();
    age_encrypt(
        &["-a", "-R", r.to_str().unwrap()],
        b"outside-value-1",
        &root.path().join("secrets/OUTSIDE.age"),
    );
    let err = store(&root)
        .decrypt_all(&["OUTSIDE".into()], &ids)
        .unwrap_err()
        .to_string();
    assert!(err.contains("written outside airlock"), "{err}");
    assert!(err.contains(&bob), "{err}");
}

#[test]
fn damaged_and_foreign_files_are_named_and_the_rest_still_work() {
    let root = Root::new();
    let (identity, _) = init(&root);
    set(&root, "GOOD", b"good-secret-value").success();
    let good = std::fs::read(root.path().join("secrets/GOOD.age")).unwrap();
    root.write("secrets/TRUNCATED.age", &good[..good.len() / 2]);
    // One character of the payload's last armor line changed (a valid base64 character).
    let mut altered = good.clone();
    let end = String::from_utf8_lossy(&good).find("-----END").unwrap();
    let at = end - 8;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    root.write("secrets/ALTERED.age", &altered);
    root.write("secrets/PLAIN.age", "just some text, not age\n");
    root.write("secrets/EMPTY.age", "");
    secrets(&root)
        .arg("list")
        .run()
        .success()
        .stdout_has("can decrypt")
        .stdout_has("damaged or not an age file")
        .never_prints(b"good-secret-value");
    let out = secrets(&root)
        .arg("check")
        .run()
        .code(1)
        .stdout_has("ok       GOOD")
        .never_prints(b"good-secret-value");
    for name in ["TRUNCATED", "ALTERED", "PLAIN", "EMPTY"] {
        let line = format!("PROBLEM  {name}: secret {name} (");
        assert!(out.stdout().contains(&line), "{line}\n{}", out.stdout());
        assert!(
            out.stdout()
                .contains(&format!("{name}.age) is not a readable age file")),
            "{}",
            out.stdout()
        );
    }
    assert!(out.stdout().contains("not an age file"), "{}", out.stdout());
    let ids = find_identities(Some(&identity)).unwrap();
    let s = store(&root);
    assert_eq!(
        s.decrypt_all(&["GOOD".into()], &ids).unwrap()[0]
            .1
            .expose_secret(),
        b"good-secret-value"
    );
    let err = s
        .decrypt_all(&["GOOD".into(), "TRUNCATED".into(), "PLAIN".into()], &ids)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TRUNCATED.age") && err.contains("PLAIN.age"),
        "{err}"
    );
    assert!(!err.contains("good-secret-value"), "{err}");
}

#[test]
fn passphrase_files_are_rejected_with_a_way_forward() {
    use std::io::Write;
    let root = Root::new();
    let (identity, _) = init(&root);
    let mut recipient = age::scrypt::Recipient::new("a passphrase".into());
    recipient.set_work_factor(10);
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as _)).unwrap();
    let mut ct = vec![];
    let armor =
        age::armor::ArmoredWriter::wrap_output(&mut ct, age::armor::Format::AsciiArmor).unwrap();
    let mut w = enc.wrap_output(armor).unwrap();
    w.write_all(b"passphrase-protected").unwrap();
    w.finish().unwrap().finish().unwrap();
    root.write("secrets/PASS.age", &ct);
    secrets(&root)
        .arg("check")
        .run()
        .code(1)
        .stdout_has("PASS")
        .stdout_has("encrypted with a passphrase")
        .stdout_has("recipients.txt")
        .stdout_has("airlock secrets set PASS");
    let ids = find_identities(Some(&identity)).unwrap();
    let err = store(&root)
        .decrypt_all(&["PASS".into()], &ids)
        .unwrap_err();
    assert!(matches!(err, SecretError::Passphrase { .. }), "{err}");
}

#[test]
fn a_missing_secret_names_its_file_and_how_to_create_it() {
    let root = Root::new();
    let (identity, _) = init(&root);
    let ids = find_identities(Some(&identity)).unwrap();
    let err = store(&root)
        .decrypt_all(&["NOPE".into()], &ids)
        .unwrap_err()
        .to_string();
    assert!(err.contains("NOPE.age"), "{err}");
    assert!(err.contains("airlock secrets set NOPE"), "{err}");
    secrets(&root)
        .args(["rm", "NOPE"])
        .run()
        .code(CONFIG)
        .stderr_has("NOPE.age")
        .stderr_has("airlock secrets set NOPE");
}

#[test]
fn identities_are_found_in_order_and_their_absence_explained() {
    let root = Root::new();
    // Nothing anywhere: where it looked, and how to make one.
    secrets(&root)
        .arg("check")
        .run()
        .code(CONFIG)
        .stderr_has(".config/airlock/identity.txt")
        .stderr_has("AIRLOCK_IDENTITY")
        .stderr_has("airlock secrets init");
    // A named file that does not exist is an error, not a fallback.
    secrets(&root)
        .arg("check")
        .env("AIRLOCK_IDENTITY", root.path().join("missing.txt"))
        .run()
        .code(CONFIG)
        .stderr_has("missing.txt")
        .stderr_has("AIRLOCK_IDENTITY");
    let (default, _) = init(&root);
    let (env_id, _) = keygen(&root, "env.txt");
    let (flag_id, _) = keygen(&root, "flag.txt");
    let shown = |out: Output, path: &Path| {
        out.stdout_has(&format!("your identity: {}", path.display()));
    };
    shown(secrets(&root).arg("check").run(), &default);
    shown(
        secrets(&root)
            .arg("check")
            .env("AIRLOCK_IDENTITY", &env_id)
            .run(),
        &env_id,
    );
    shown(
        secrets(&root)
            .args(["check", "--identity"])
            .arg(&flag_id)
            .env("AIRLOCK_IDENTITY", &env_id)
            .run(),
        &flag_id,
    );
    // A broken identity file: named, line numbered, never quoted.
    let bad = root.write(
        "bad-id.txt",
        "# comment\nAGE-SECRET-KEY-1NOTAREALKEYATALL\n",
    );
    secrets(&root)
        .args(["check", "--identity"])
        .arg(&bad)
        .run()
        .code(CONFIG)
        .stderr_has("bad-id.txt, line 2")
        .never_prints(b"NOTAREALKEY");
}

#[test]
fn identity_files_with_several_keys_work() {
    let root = Root::new();
    let (first, _) = keygen(&root, "first.txt");
    let (second, second_public) = keygen(&root, "second.txt");
    secrets(&root)
        .args(["recipients", "add", &second_public])
        .run()
        .success();
    set(&root, "SHARED", b"shared-secret-value").success();
    // age-keygen's format (comments included), two identities in one file.
    let both = root.path().join("both.txt");
    let text = format!(
        "{}\n{}",
        std::fs::read_to_string(&first).unwrap(),
        std::fs::read_to_string(&second).unwrap()
    );
    std::fs::write(&both, text).unwrap();
    std::fs::set_permissions(&both, std::fs::Permissions::from_mode(0o600)).unwrap();
    secrets(&root)
        .args(["check", "--identity"])
        .arg(&both)
        .run()
        .success()
        .stdout_has("ok       SHARED");
    let ids = find_identities(Some(&both)).unwrap();
    assert_eq!(ids.public_keys().len(), 2);
    let got = store(&root).decrypt_all(&["SHARED".into()], &ids).unwrap();
    assert_eq!(got[0].1.expose_secret(), b"shared-secret-value");
}

#[test]
fn adding_and_removing_recipients_reencrypts_every_secret() {
    let root = Root::new();
    let (alice_id, alice) = init(&root);
    set(&root, "ONE", b"value-number-one").success();
    set(&root, "TWO", b"value-number-two").success();
    let (bob_id, bob) = keygen(&root, "bob.txt");
    let one = root.path().join("secrets/ONE.age");
    assert!(age_decrypt(&bob_id, &one).is_none());
    secrets(&root)
        .args(["recipients", "add", &bob])
        .run()
        .success()
        .stdout_has("re-encrypted 2 secret(s) to 2 recipient(s)");
    assert_eq!(age_decrypt(&bob_id, &one).unwrap(), b"value-number-one");
    secrets(&root)
        .args(["recipients", "add", &bob])
        .run()
        .success()
        .stdout_has("already");
    secrets(&root)
        .args(["recipients", "list"])
        .run()
        .success()
        .stdout_has(&format!("{alice}  (you)"))
        .stdout_has(&bob);
    secrets(&root)
        .args(["check", "--identity"])
        .arg(&bob_id)
        .run()
        .success();
    // Remove bob: he can no longer read the current files; rotate, says airlock.
    secrets(&root)
        .args(["recipients", "rm", &bob])
        .run()
        .success()
        .stdout_has("rotate")
        .stdout_has("ONE, TWO");
    assert!(age_decrypt(&bob_id, &one).is_none());
    assert_eq!(age_decrypt(&alice_id, &one).unwrap(), b"value-number-one");
    assert!(!root.read("secrets/recipients.txt").contains(&bob));
    secrets(&root).arg("check").run().success();
    // Refusals.
    secrets(&root)
        .args(["recipients", "rm", &bob])
        .run()
        .code(CONFIG)
        .stderr_has("is not in");
    secrets(&root)
        .args(["recipients", "rm", &alice])
        .run()
        .code(CONFIG)
        .stderr_has("only recipient");
    secrets(&root)
        .args(["recipients", "add", "age1notakey"])
        .run()
        .code(CONFIG)
        .stderr_has("not an age public key");
    let secret_key = std::fs::read_to_string(&bob_id).unwrap();
    let secret_key = secret_key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY"))
        .unwrap();
    secrets(&root)
        .args(["recipients", "add", secret_key])
        .run()
        .code(CONFIG)
        .stderr_has("private key")
        .never_prints(&secret_key.as_bytes()[16..]);
}

#[test]
fn a_change_of_recipients_is_all_or_nothing() {
    let root = Root::new();
    init(&root);
    set(&root, "MINE", b"mine-secret-value").success();
    // A secret this identity cannot read (encrypted to someone else only).
    let (_, carol) = keygen(&root, "carol.txt");
    age_encrypt(
        &["-a", "-r", &carol],
        b"carols-secret-value",
        &root.path().join("secrets/CAROLS.age"),
    );
    let dir = root.path().join("secrets");
    let before = snapshot(&dir);
    let (_, bob) = keygen(&root, "bob.txt");
    secrets(&root)
        .args(["recipients", "add", &bob])
        .run()
        .code(CONFIG)
        .stderr_has("nothing was changed")
        .stderr_has("CAROLS")
        .never_prints(b"mine-secret-value")
        .never_prints(b"carols-secret-value");
    assert_eq!(snapshot(&dir), before);
    secrets(&root)
        .args(["recipients", "sync"])
        .run()
        .code(CONFIG)
        .stderr_has("CAROLS");
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn check_finds_secrets_not_encrypted_to_the_current_recipients() {
    let root = Root::new();
    init(&root);
    set(&root, "API_TOKEN", b"the-token-value").success();
    secrets(&root)
        .arg("check")
        .run()
        .success()
        .stdout_has("all fine");
    // A teammate's key added by hand: the secret does not include it yet.
    let (_, dave) = keygen(&root, "dave.txt");
    let path = root.path().join("secrets/recipients.txt");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("# dave\n{dave}\n"));
    std::fs::write(&path, text).unwrap();
    secrets(&root)
        .arg("check")
        .run()
        .code(1)
        .stdout_has(&format!("API_TOKEN: not encrypted to exactly the keys in recipients.txt: cannot be read by {dave}"))
        .stdout_has("recipients sync");
    secrets(&root).args(["recipients", "sync"]).run().success();
    secrets(&root).arg("check").run().success();
    // The hand-written comment survived.
    assert!(root.read("secrets/recipients.txt").contains("# dave\n"));
    // A bad recipients file is reported, with its line.
    root.write("secrets/recipients.txt", "# x\nnot-a-key\n");
    secrets(&root)
        .arg("check")
        .run()
        .code(1)
        .stdout_has("recipients.txt, line 2");
    set(&root, "OTHER", b"another-value-1")
        .code(CONFIG)
        .stderr_has("recipients.txt, line 2");
}

#[test]
fn set_replaces_atomically_and_rm_removes() {
    let root = Root::new();
    let (identity, _) = init(&root);
    set(&root, "TOKEN", b"first-value-123")
        .success()
        .stdout_has("set TOKEN");
    set(&root, "TOKEN", b"second-value-456")
        .success()
        .stdout_has("replaced TOKEN");
    let file = root.path().join("secrets/TOKEN.age");
    assert_eq!(age_decrypt(&identity, &file).unwrap(), b"second-value-456");
    let dir = root.path().join("secrets");
    assert_eq!(
        files_in(&dir),
        vec!["TOKEN.age", "TOKEN.recipients", "recipients.txt"]
    );
    // A set that fails (no recipients to encrypt to) leaves the old file whole.
    let old = std::fs::read(&file).unwrap();
    let saved = root.read("secrets/recipients.txt");
    root.write("secrets/recipients.txt", "# nobody\n");
    set(&root, "TOKEN", b"third-value-789")
        .code(CONFIG)
        .stderr_has("no recipients");
    assert_eq!(std::fs::read(&file).unwrap(), old);
    root.write("secrets/recipients.txt", saved);
    // An unreadable --from-file: named, nothing written.
    secrets(&root)
        .args(["set", "TOKEN", "--from-file", "/nonexistent/value"])
        .run()
        .code(CONFIG)
        .stderr_has("/nonexistent/value");
    assert_eq!(std::fs::read(&file).unwrap(), old);
    assert_eq!(
        files_in(&dir),
        vec!["TOKEN.age", "TOKEN.recipients", "recipients.txt"]
    );
    secrets(&root)
        .args(["rm", "TOKEN"])
        .run()
        .success()
        .stdout_has("removed TOKEN");
    assert_eq!(files_in(&dir), vec!["recipients.txt"]);
}

#[test]
fn a_value_typed_at_a_terminal_is_read_without_echo() {
    use std::io::{Read, Write};
    let root = Root::new();
    let (identity, _) = init(&root);
    let pty = nix::pty::openpty(None, None).expect("open a pseudo-terminal");
    let mut cmd = secrets(&root).args(["set", "TYPED"]).command();
    cmd.stdin(Stdio::from(pty.slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn airlock");
    drop(cmd); // our copy of the terminal's far end: the child holds the only one now
    let mut stderr = child.stderr.take().unwrap();
    // The prompt comes once echo is off; type only then.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("not echoed") {
        let mut buf = [0u8; 256];
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let mut master = std::fs::File::from(pty.master);
    master.write_all(b"typed-secret-value\n\x04").unwrap();
    let status = child.wait().unwrap();
    stderr.read_to_end(&mut seen).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&seen)
    );
    // What the terminal would have shown: nothing of the value.
    let mut shown = Vec::new();
    let _ = master.read_to_end(&mut shown); // EIO once the far end is closed
    let shown = String::from_utf8_lossy(&shown);
    assert!(!shown.contains("typed-secret"), "echoed: {shown:?}");
    assert!(
        !stdout.contains("typed-secret")
            && !String::from_utf8_lossy(&seen).contains("typed-secret")
    );
    assert_eq!(
        age_decrypt(&identity, &root.path().join("secrets/TYPED.age")).unwrap(),
        b"typed-secret-value"
    );
}
