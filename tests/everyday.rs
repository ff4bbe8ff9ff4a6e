//! What a newcomer meets in the first hour: messages that say what failed and the fix, plain
//! output in a pipe, records that aren't overwritten by accident, a report on stdout for
//! `--json` whatever happens.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{Fixture, Test, SECRET};

fn env_tiny(f: &Fixture, name: &str, extra: &str) {
    f.env(name, &format!("image: tiny\n{extra}"));
}

/// One warning format, and no terminal colour codes when stderr is a file or a pipe.
#[test]
fn warnings_have_one_format_and_no_colour_in_a_pipe() {
    let f = Fixture::new();
    f.secret("TOKEN", SECRET.as_bytes());
    env_tiny(&f, "t", "secrets: [TOKEN]\n");
    std::fs::set_permissions(&f.identity, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = f.run("t", &["true"]).run().success();
    assert!(!out.stderr().contains('\u{1b}'), "{:?}", out.stderr());
    let id = f.identity.display();
    out.stderr_line(&format!(
        "airlock: warning: identity file {id} can be read by other users (mode 644); run `chmod 600 {id}`"
    ));
}

/// The agent's standard error is told apart from its standard output, in both phases.
#[test]
fn standard_error_lines_are_marked() {
    let f = Fixture::new();
    env_tiny(&f, "t", "setup: echo to-out; echo to-err >&2\n");
    f.run("t", &["sh", "-c", "echo agent-out; echo agent-err >&2"])
        .run()
        .success()
        .stderr_line("setup | to-out")
        .stderr_line("setup ! to-err")
        .stderr_line("agent | agent-out")
        .stderr_line("agent ! agent-err");
}

#[test]
fn an_out_folder_with_a_record_is_kept_unless_forced() {
    let f = Fixture::new();
    env_tiny(&f, "t", "");
    let out = f.root.path().join("rec");
    let run = |force: bool| {
        let mut t = Test::new()
            .root(&f.root)
            .args(["run", "t", "-w"])
            .arg(&f.ws)
            .arg("--out")
            .arg(&out);
        if force {
            t = t.arg("--force");
        }
        t.args(["--", "sh", "-c", "echo run"]).run()
    };
    run(false).success();
    let first = std::fs::read_to_string(out.join("report.json")).unwrap();
    std::fs::write(out.join("mine.txt"), "the user's").unwrap();
    run(false).code(78).stderr_is(&format!(
        "airlock: error: --out {} already holds a run record ({})\n  fix: pass --force to replace it, or give another --out folder\n",
        out.display(),
        out.join("report.json").display()
    ));
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        first
    );
    assert!(out.join("mine.txt").exists(), "nothing was touched");
    run(true).success();
    let second = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert_ne!(second, first);
    assert!(
        !out.join("mine.txt").exists(),
        "--force replaces the record whole"
    );
}

/// `--json` prints a report on stdout even when no run could start.
#[test]
fn json_prints_a_report_for_errors_before_any_run() {
    let f = Fixture::new();
    f.env("bad", "image: tiny\nlimits:\n  memory: lots\n");
    let out = Test::new()
        .root(&f.root)
        .args(["run", "bad", "--json", "-w"])
        .arg(&f.ws)
        .args(["--", "true"])
        .run()
        .code(78);
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(report["outcome"], "config_error");
    assert_eq!(report["exit_code"], 78);
    assert_eq!(report["run_id"], serde_json::Value::Null);
    assert!(report["error"]
        .as_str()
        .unwrap()
        .starts_with("envs/bad.yaml:3:11: limits.memory: lots is not a size"));
    let missing = Test::new()
        .root(&f.root)
        .args(["run", "no-such-env", "--json", "--", "true"])
        .run()
        .code(78);
    let report: serde_json::Value = serde_json::from_str(&missing.stdout()).unwrap();
    assert_eq!(report["outcome"], "config_error");
}

#[test]
fn a_shell_into_no_kept_run_is_refused_with_the_fix() {
    let f = Fixture::new();
    Test::new()
        .root(&f.root)
        .args(["shell", "no-such-run"])
        .run()
        .code(78)
        .stderr_line("airlock: error: no kept run named no-such-run")
        .stderr_line("  fix: `airlock shell` needs the id of a run made with `airlock run --keep` and not yet removed by `airlock gc --kept`");
}

/// A failing setup names the command and its line in the setup script (bash images).
#[test]
fn a_failing_setup_names_its_command_and_line() {
    crate::harness::base_image();
    let f = Fixture::new();
    f.env(
        "t",
        "image: base\nsetup: |\n  echo first\n  x=1\n  ls /no/such/folder\n  echo never\n",
    );
    let out = f
        .run("t", &["true"])
        .run()
        .code(80)
        .stderr_line("setup ! airlock: setup script line 3: ls /no/such/folder (exit code 2)");
    let log = f.out().join("setup.log");
    out.stderr_line(&format!(
        "airlock: error: setup failed: its script exited with code 2 (line 3: ls /no/such/folder (exit code 2)); the agent phase did not start (log: {})",
        log.display()
    ));
}

/// A setup that fails on a refused certificate (here: a server the test starts with a
/// certificate no one trusts) gets the `ca_certificates` fix.
#[test]
fn a_refused_certificate_in_setup_points_at_ca_certificates() {
    crate::harness::base_image();
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=untrusted",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success());
    let ip = crate::egress::bridge_ip();
    let port = std::net::TcpListener::bind((ip.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("{ip}:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let f = Fixture::new();
    f.env(
        "t",
        &format!("image: base\nsetup: curl -sS https://{ip}:{port}/\n"),
    );
    let out = f.run("t", &["true"]).run();
    let _ = server.kill();
    let _ = server.wait();
    out.code(80)
        .stderr_has("setup ! curl: (60)")
        .stderr_line("  fix: the log shows a TLS certificate refused (or pip finding no package, which is how a refused certificate looks to pip): if this machine reaches the internet through an inspecting proxy, trust its CA in the setup phase with `ca_certificates: [host]` (or a PEM file) in the environment");
}

/// The run id and the record folder are printed when the run starts.
#[test]
fn the_record_is_named_when_the_run_starts() {
    let f = Fixture::new();
    env_tiny(&f, "t", "");
    let out = f.run("t", &["true"]).run().success();
    let first = out.stderr().lines().next().unwrap_or_default().to_string();
    let id = f.report()["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        first,
        format!(
            "airlock | run {id}: started; record: {}",
            f.out().canonicalize().unwrap().display()
        )
    );
}

/// `export NAME=value` in `$AIRLOCK_ENV` is the variable NAME.
#[test]
fn export_lines_in_airlock_env_cross_as_variables() {
    let f = Fixture::new();
    env_tiny(&f, "t", "setup: echo 'export FOO=bar' >> $AIRLOCK_ENV\n");
    f.run("t", &["sh", "-c", "echo FOO=$FOO"])
        .run()
        .success()
        .stderr_line("agent | FOO=bar");
}

/// Exit 127 in the agent phase says where the command was looked for.
#[test]
fn a_command_not_found_gets_a_hint() {
    let f = Fixture::new();
    env_tiny(&f, "t", "");
    let out = f.run("t", &["no-such-tool", "--version"]).run().code(127);
    let stderr = out.stderr().to_string();
    let hint = stderr
        .lines()
        .find(|l| l.starts_with("airlock: warning: the agent command exited with 127"))
        .unwrap_or_else(|| panic!("no hint in:\n{stderr}"));
    assert!(
        hint.contains("is `no-such-tool` (or a command it runs) in image airlock/tiny:"),
        "{hint}"
    );
    assert!(hint.ends_with("and on the image's default PATH?"), "{hint}");
    out.stderr_line("  fix: install it in the image, or in a persist path from the setup script, and add its folder to PATH with `echo PATH=/opt/tool/bin:$PATH >> $AIRLOCK_ENV`");
}

/// kill -9 of airlock, then `airlock gc`: the run's record says `abandoned`, not
/// `incomplete` forever.
#[test]
fn gc_records_a_run_whose_owner_died_as_abandoned() {
    let f = Fixture::new();
    env_tiny(&f, "t", "limits:\n  agent_timeout: 120s\n");
    let mut child = Test::new()
        .root(&f.root)
        .args(["run", "t", "-w"])
        .arg(&f.ws)
        .args(["--", "sleep", "100"])
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (_, run_id) = crate::harness::running_container_of(&mut child, "agent");
    child.kill().unwrap();
    child.wait().unwrap();
    let record = f
        .root
        .path()
        .join(".airlock/runs")
        .join(&run_id)
        .join("report.json");
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(before["outcome"], "incomplete");
    Test::new()
        .root(&f.root)
        .args(["gc"])
        .run()
        .success()
        .stdout_has(&format!("recorded run {run_id} as abandoned"));
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(after["outcome"], "abandoned");
    assert_eq!(after["exit_code"], 84);
    assert!(after["error"]
        .as_str()
        .unwrap()
        .contains("`airlock gc` found it at"));
    assert!(after["finished"].is_string());
    crate::harness::assert_run_gone(&run_id);
}
