//! `airlock run` end to end against the real engine: the two phases, the boundary, the
//! record, the patch, and cleanup however a run ends.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{
    assert_run_gone, contains, docker, running_container_of, Fixture, Test, SECRET, TINY,
};

#[test]
fn hello_runs_both_phases_and_records_a_patch_that_applies() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nsetup: |\n  echo setting up\n  echo generated > from-setup.txt\n",
    );
    f.ws_file("keep.txt", "unchanged\n");
    f.ws_file("edit.txt", "before\n");
    f.ws_file("remove.txt", "bye\n");
    f.ws_file("tool.sh", "#!/bin/sh\necho tool\n");
    std::fs::write(f.ws.join("bin.dat"), [0u8, 159, 146, 150]).unwrap();
    let script = "echo after > edit.txt; rm remove.txt; echo new > new.txt; chmod +x tool.sh; \
                  printf '\\001\\002\\000' > bin.dat; mv keep.txt kept.txt; cat from-setup.txt; echo agent says hi";
    let out = f.run("t", &["sh", "-c", script]).run().success();
    out.stderr()
        .contains("setup | setting up")
        .then_some(())
        .expect("setup output is shown live");
    let out = out
        .stderr_has("agent | generated")
        .stderr_has("agent | agent says hi");
    let report = f.report();
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["agent"]["exit_code"], 0);
    assert_eq!(report["setup"]["exit_code"], 0);
    assert_eq!(report["network"]["agent"], "none");
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert!(contains(&f.record_file("setup.log"), b"setting up"));
    assert!(contains(&f.record_file("agent.log"), b"agent says hi"));
    drop(out);

    // The patch takes a copy of the original workspace to the agent's final state.
    let patch = f.out().join("changes.patch");
    let copy = f.root.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(&f.ws).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let st = Command::new("git")
        .arg("apply")
        .arg(&patch)
        .current_dir(&copy)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "git apply failed: {}\n{}",
        String::from_utf8_lossy(&st.stderr),
        String::from_utf8_lossy(&std::fs::read(&patch).unwrap())
    );
    assert_eq!(
        std::fs::read_to_string(copy.join("edit.txt")).unwrap(),
        "after\n"
    );
    assert!(!copy.join("remove.txt").exists());
    assert_eq!(
        std::fs::read_to_string(copy.join("new.txt")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(copy.join("kept.txt")).unwrap(),
        "unchanged\n"
    );
    assert!(!copy.join("keep.txt").exists());
    assert_eq!(
        std::fs::read(copy.join("bin.dat")).unwrap(),
        vec![1u8, 2, 0]
    );
    use std::os::unix::fs::PermissionsExt;
    assert!(
        std::fs::metadata(copy.join("tool.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111
            != 0
    );
    // What setup made is not the agent's change.
    assert!(!copy.join("from-setup.txt").exists());
    // The host workspace itself was never touched.
    assert_eq!(
        std::fs::read_to_string(f.ws.join("edit.txt")).unwrap(),
        "before\n"
    );
    assert_run_gone(&run_id);
}

#[test]
fn the_agent_commands_exit_code_is_airlocks() {
    let f = Fixture::new();
    f.env("t", TINY);
    f.run("t", &["sh", "-c", "exit 7"]).run().code(7);
    assert_eq!(f.report()["outcome"], "failed");
    assert_run_gone(f.report()["run_id"].as_str().unwrap());
}

#[test]
fn a_failing_setup_stops_the_run_before_the_agent_phase() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nsetup: |\n  echo one\n  false\n  echo never\n",
    );
    let out = f
        .run("t", &["sh", "-c", "echo agent ran"])
        .run()
        .code(80)
        .stderr_has("setup failed");
    assert!(
        !out.stderr().contains("agent ran") && !out.stderr().contains("never"),
        "{}",
        out.stderr()
    );
    let r = f.report();
    assert_eq!(r["outcome"], "setup_failed");
    assert!(r["agent"]["started"].is_null());
    assert_run_gone(r["run_id"].as_str().unwrap());
}

#[test]
fn a_setup_pipeline_failure_fails_setup_pipefail() {
    let f = Fixture::new();
    f.env("t", "image: tiny\nsetup: |\n  false | cat\n  echo after\n");
    f.run("t", &["true"]).run().code(80);
}

#[test]
fn secrets_reach_setup_only_and_never_the_agent_phase() {
    let f = Fixture::new();
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "t",
        "image: tiny\nsecrets: [API_TOKEN]\nsetup: |\n  test \"${#API_TOKEN}\" -eq 23\n  echo \"setup sees $API_TOKEN\"\n  echo \"$API_TOKEN\" | base64\n  echo \"checked\" > setup-ok\n",
    );
    // The agent looks everywhere it can and writes what it finds into the workspace, so the
    // patch (never redacted) would carry the secret out if it were anywhere.
    let hunt = "{ env; cat /proc/*/environ; cat /proc/*/cmdline; ls -la /run /tmp /airlock 2>&1; \
                cat /airlock/* 2>&1; find / -xdev -type f 2>/dev/null | grep -v '^/proc' | xargs cat 2>/dev/null; \
                ls /var/run/docker.sock 2>&1; } > dump.txt 2>&1; wc -c dump.txt";
    let out = f.run("t", &["sh", "-c", hunt]).run().success();
    let out = out
        .never_prints(SECRET.as_bytes())
        .stderr_has("setup | setup sees [redacted:API_TOKEN]");
    drop(out);
    let patch = f.record_file("changes.patch");
    assert!(
        contains(&patch, b"dump.txt"),
        "the hunt's findings are in the patch"
    );
    assert!(
        !contains(&patch, SECRET.as_bytes()),
        "the agent phase found the secret"
    );
    for file in ["setup.log", "agent.log", "report.json", "changes.patch"] {
        assert!(
            !contains(&f.record_file(file), SECRET.as_bytes()),
            "{file} holds the secret"
        );
    }
    assert!(contains(
        &f.record_file("setup.log"),
        b"[redacted:API_TOKEN]"
    ));
    let r = f.report();
    assert_eq!(r["secrets"], serde_json::json!(["API_TOKEN"]));
    assert_eq!(r["outcome"], "succeeded");
}

#[test]
fn docker_inspect_and_engine_state_never_hold_a_secret() {
    let f = Fixture::new();
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "t",
        "image: tiny\nsecrets: [API_TOKEN]\nsetup: |\n  sleep 3\n",
    );
    let mut child = f
        .run_with("t", &["--keep"], &["sleep", "3"])
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut inspected = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        for id in containers_of(pid) {
            if let Ok(out) = Command::new("docker").args(["inspect", &id]).output() {
                assert!(
                    !contains(&out.stdout, SECRET.as_bytes()),
                    "docker inspect shows the secret"
                );
                if !out.stdout.is_empty() && !inspected.contains(&id) {
                    inspected.push(id.clone());
                }
            }
            for file in ["config.v2.json", "hostconfig.json"] {
                let p = Path::new("/var/lib/docker/containers").join(&id).join(file);
                if let Ok(data) = std::fs::read(&p) {
                    assert!(
                        !contains(&data, SECRET.as_bytes()),
                        "{} holds the secret",
                        p.display()
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(child.wait().unwrap().success());
    assert!(
        inspected.len() >= 2,
        "inspected both phases' containers: {inspected:?}"
    );
    let report = f.report();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    // No image layer holds it: the run's image, saved whole, and no image made by the run.
    let image = report["image"]["id"]
        .as_str()
        .expect("image id in the report");
    let saved = Command::new("docker")
        .args(["save", image])
        .output()
        .unwrap();
    assert!(saved.status.success() && saved.stdout.len() > 1024);
    assert!(
        !contains(&saved.stdout, SECRET.as_bytes()),
        "an image layer holds the secret"
    );
    let made = docker(&[
        "images",
        "-q",
        "--filter",
        &format!("label=airlock.run={run_id}"),
    ]);
    assert!(made.trim().is_empty(), "the run made images: {made}");
    Test::new()
        .args(["gc", "--kept", &run_id])
        .run()
        .success()
        .stdout_has(&run_id);
    assert_run_gone(&run_id);
}

/// Containers whose airlock.owner label names process `pid`.
fn containers_of(pid: u32) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        "label=airlock.managed",
        "--format",
        "{{.ID}} {{.Label \"airlock.owner\"}}",
    ]);
    out.lines()
        .filter(|l| l.contains(&format!(":{pid}:")))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn setup_reaches_a_test_server_and_the_agent_phase_does_not() {
    let f = Fixture::new();
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let mut hits = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline && hits.len() < 2 {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = String::new();
                    let _ = s.read_to_string(&mut buf);
                    hits.push(buf);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        hits
    });
    // The host is this run's network gateway; setup hands its address to the agent phase.
    f.env(
        "t",
        &format!(
            "image: tiny\nsetup: |\n  gw=$(ip route | awk '/default/ {{print $3}}')\n  echo from-setup | nc -w 3 $gw {port}\n  echo GW=$gw >> $AIRLOCK_ENV\n"
        ),
    );
    let agent = format!("ip route; ip addr; if echo from-agent | nc -w 3 $GW {port}; then echo REACHED; else echo BLOCKED; fi");
    let out = f
        .run("t", &["sh", "-c", &agent])
        .run()
        .success()
        .stderr_has("agent | BLOCKED");
    assert!(!out.stderr().contains("REACHED"));
    let hits = server.join().unwrap();
    assert_eq!(
        hits.iter().filter(|h| h.contains("from-setup")).count(),
        1,
        "setup reached the server: {hits:?}"
    );
    assert!(
        !hits.iter().any(|h| h.contains("from-agent")),
        "the agent phase reached the server: {hits:?}"
    );
}

#[test]
fn only_declared_things_cross_the_boundary() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nenv:\n  PLAIN: visible\npersist: [/opt/deps]\nsetup: |\n  mkdir -p /opt/deps /opt/other\n  echo dep > /opt/deps/lib.txt\n  echo no > /opt/other/x\n  echo no > /etc/setup-was-here\n  echo ws > in-ws.txt\n  export EXPORTED=lost\n  echo HANDED=over >> $AIRLOCK_ENV\n  printf 'MULTI<<EOF\\nline one\\nline two\\nEOF\\n' >> $AIRLOCK_ENV\n",
    );
    let check = "cat /opt/deps/lib.txt in-ws.txt; ls /opt/other /etc/setup-was-here 2>&1; \
                 echo \"PLAIN=$PLAIN HANDED=$HANDED EXPORTED=${EXPORTED:-unset}\"; echo \"$MULTI\"; \
                 id -u; touch /opt/deps/agent-can-write && echo writable";
    f.run("t", &["sh", "-c", check])
        .run()
        .success()
        .stderr_has("agent | dep")
        .stderr_has("agent | ws")
        .stderr_has("agent | ls: /opt/other: No such file or directory")
        .stderr_has("agent | ls: /etc/setup-was-here: No such file or directory")
        .stderr_has("agent | PLAIN=visible HANDED=over EXPORTED=unset")
        .stderr_has("agent | line one")
        .stderr_has("agent | line two")
        .stderr_has("agent | 1000")
        .stderr_has("agent | writable");
    let r = f.report();
    let vars: Vec<&str> = r["boundary"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(vars, ["PLAIN", "HANDED", "MULTI"]);
    let paths: Vec<&str> = r["boundary"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/workspace", "/opt/deps"]);
}

#[test]
fn a_secret_in_what_crosses_refuses_the_run_naming_secret_and_place() {
    let cases = [
        ("persisted file", "mkdir -p /opt/deps; echo \"token=$API_TOKEN\" > /opt/deps/conf", "raw", "file /opt/deps/conf"),
        ("git config", "git_dir=.git; mkdir -p $git_dir; echo \"url = https://x:$API_TOKEN@example.invalid\" >> $git_dir/config", "raw", "file /workspace/.git/config"),
        ("AIRLOCK_ENV", "echo A=1 >> $AIRLOCK_ENV; echo \"TOKEN_COPY=$API_TOKEN\" >> $AIRLOCK_ENV", "raw", "the $AIRLOCK_ENV file, in the value of `TOKEN_COPY`"),
        ("base64", "echo \"$API_TOKEN\" | base64 > enc.txt", "base64", "file /workspace/enc.txt"),
        ("hex", "printf %s \"$API_TOKEN\" | od -A n -v -t x1 | tr -d ' \\n' > hex.txt", "hex", "file /workspace/hex.txt"),
        ("file name", "touch \"name-$API_TOKEN\"", "raw", "the name of /workspace/name-[redacted:API_TOKEN]"),
        ("symlink target", "ln -s \"/x/$API_TOKEN\" link", "raw", "the link target of /workspace/link"),
    ];
    for (what, script, form, place) in cases {
        let f = Fixture::new();
        std::fs::create_dir(f.ws.join(".git")).unwrap();
        f.secret("API_TOKEN", SECRET.as_bytes());
        f.env(
            "t",
            &format!(
                "image: tiny\nsecrets: [API_TOKEN]\npersist: [/opt/deps]\nsetup: |\n  {script}\n"
            ),
        );
        let out = f.run("t", &["sh", "-c", "echo AGENT-RAN"]).run().code(81);
        let out = out
            .stderr_line(&format!(
                "airlock: error: the boundary refused the run: secret API_TOKEN ({form} form) \
                 found in {place}"
            ))
            .never_prints(SECRET.as_bytes());
        assert!(
            !out.stderr().contains("AGENT-RAN"),
            "{what}: the agent phase ran"
        );
        let r = f.report();
        assert_eq!(r["outcome"], "boundary_refused", "{what}");
        assert!(r["agent"]["started"].is_null(), "{what}");
        assert!(!contains(&f.record_file("report.json"), SECRET.as_bytes()));
        assert_run_gone(r["run_id"].as_str().unwrap());
    }
}

/// The boundary reads what crosses where the setup container mounted each volume a second
/// time (`/airlock/crossing`). The setup script runs as root there and may move, fake or
/// replace that folder; whatever it does, the secret it writes into a volume is still found,
/// or the run is refused because the folder isn't what the boundary expects.
#[test]
fn the_setup_script_cannot_hide_what_crosses_from_the_boundary() {
    let cases = [
        (
            "moved away and faked",
            "mv /airlock/crossing /airlock/moved\n  mkdir -p /airlock/crossing/workspace /airlock/crossing/persist0\n  test -d /airlock/moved/workspace\n  echo \"$API_TOKEN\" > /workspace/leak.txt",
            "file /workspace/leak.txt",
        ),
        (
            "replaced by a symlink",
            "mv /airlock/crossing /airlock/moved\n  ln -s /airlock/moved /airlock/crossing\n  echo \"$API_TOKEN\" > /opt/deps/leak.txt",
            "/airlock/crossing is not a folder",
        ),
        (
            "env file as a symlink",
            "echo \"TOKEN=$API_TOKEN\" > /tmp/env\n  ln -sf /tmp/env \"$AIRLOCK_ENV\"",
            "$AIRLOCK_ENV is not a plain file",
        ),
    ];
    for (what, script, place) in cases {
        let f = Fixture::new();
        f.secret("API_TOKEN", SECRET.as_bytes());
        f.env(
            "t",
            &format!(
                "image: tiny\nsecrets: [API_TOKEN]\npersist: [/opt/deps]\nsetup: |\n  mkdir -p /opt/deps\n  {script}\n"
            ),
        );
        let out = f.run("t", &["sh", "-c", "echo AGENT-RAN"]).run().code(81);
        let out = out.stderr_has(place).never_prints(SECRET.as_bytes());
        assert!(
            !out.stderr().contains("AGENT-RAN"),
            "{what}: the agent phase ran"
        );
        assert_eq!(f.report()["outcome"], "boundary_refused", "{what}");
        assert_run_gone(f.report()["run_id"].as_str().unwrap());
    }
}

/// What the setup script leaves in the boundary's folder beside the volumes is not a volume:
/// it stays behind with the setup container, and the run goes on.
#[test]
fn files_beside_the_crossing_volumes_stay_behind() {
    let f = Fixture::new();
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "t",
        "image: tiny\nsecrets: [API_TOKEN]\nsetup: |\n  echo \"$API_TOKEN\" > /airlock/crossing/notes.txt\n  mkdir /airlock/crossing/extra && echo \"$API_TOKEN\" > /airlock/crossing/extra/f\n",
    );
    f.run(
        "t",
        &[
            "sh",
            "-c",
            "ls /airlock 2>&1; cat /airlock/crossing/notes.txt 2>&1; echo done",
        ],
    )
    .run()
    .success()
    .stderr_has("agent | ls: /airlock: No such file or directory")
    .stderr_has("agent | cat: can't open '/airlock/crossing/notes.txt': No such file or directory")
    .stderr_has("agent | done")
    .never_prints(SECRET.as_bytes());
}

/// The boundary's check of a large tree shows a live spinner on a terminal, cleared when it
/// ends; in a pipe (CI logs) it writes plain lines only. Both end with the same summary.
#[test]
fn the_boundary_shows_progress_on_a_terminal_and_plain_lines_elsewhere() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\npersist: [/opt/data]\nlimits:\n  memory: unlimited\nsetup: |\n  mkdir -p /opt/data && head -c 150000000 /dev/zero > /opt/data/big\n",
    );
    let summary = "airlock | boundary: 1 file (150.0 MB) and 0 variables checked in ";
    let plain = f
        .run("t", &["true"])
        .run()
        .success()
        .stderr_has("airlock | boundary: checking what crosses for secret values")
        .stderr_has(summary);
    assert!(
        !plain.stderr().contains("entries,") && !plain.stderr().contains("\x1b["),
        "a spinner in a pipe: {}",
        plain.stderr()
    );

    std::fs::remove_dir_all(f.out()).unwrap();
    let cmd = f.run("t", &["true"]).command();
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect();
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let out = script
        .output()
        .expect("script(1) runs airlock on a terminal");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("boundary: checking what crosses: ") && tty.contains(" entries, "),
        "no live progress on a terminal: {tty}"
    );
    assert!(
        tty.contains("\x1b[2K"),
        "the spinner was not cleared: {tty}"
    );
    assert!(tty.contains(summary), "{tty}");
}

/// A value with characters that URLs escape, written into a URL the way a setup script
/// building a registry URL would (`curl`'s `--data-urlencode`, Python's `quote`).
#[test]
fn a_url_encoded_secret_in_what_crosses_refuses_the_run() {
    let f = Fixture::new();
    f.secret("DB_PASSWORD", b"p@ss/w0rd+key=long");
    f.env(
        "t",
        "image: tiny\nsecrets: [DB_PASSWORD]\nsetup: |\n  \
         enc=$(printf %s \"$DB_PASSWORD\" | sed 's/@/%40/g; s#/#%2F#g; s/+/%2B/g; s/=/%3D/g')\n  \
         echo \"url = postgres://app:$enc@db.invalid/app\" > db.conf\n",
    );
    f.run("t", &["true"])
        .run()
        .code(81)
        .stderr_has("secret DB_PASSWORD")
        .stderr_has("url-encoded")
        .stderr_has("file /workspace/db.conf")
        .never_prints(b"p@ss/w0rd+key=long");
    assert_eq!(f.report()["outcome"], "boundary_refused");
}

#[test]
fn git_is_read_only_to_the_agent_phase() {
    let f = Fixture::new();
    f.ws_file(".git/config", "[core]\n");
    f.ws_file(".git/HEAD", "ref: refs/heads/main\n");
    f.ws_file("a.txt", "a\n");
    let attack = "chmod -R 777 .git 2>/dev/null && echo CHMOD-OK; echo x >> .git/config 2>/dev/null && echo WRITE-OK; \
                  rm -rf .git 2>/dev/null; ls .git/config && echo STILL-THERE; mkdir .git/hooks 2>/dev/null && echo MKDIR-OK; \
                  echo b > a.txt";
    let out = f.run("t", &["sh", "-c", attack]);
    f.env("t", TINY);
    let out = out.run().success().stderr_has("agent | STILL-THERE");
    for bad in ["CHMOD-OK", "WRITE-OK", "MKDIR-OK"] {
        assert!(!out.stderr().contains(bad), "{bad}: {}", out.stderr());
    }
    let patch = String::from_utf8(f.record_file("changes.patch")).unwrap();
    assert!(
        patch.contains("a/a.txt") && !patch.contains(".git/"),
        "{patch}"
    );
}

#[test]
fn an_agent_timeout_is_reported_and_cleaned_up() {
    let f = Fixture::new();
    f.env("t", "image: tiny\nlimits:\n  agent_timeout: 2s\n");
    f.run("t", &["sleep", "60"]).run().code(124);
    let r = f.report();
    assert_eq!(r["outcome"], "timed_out");
    assert_eq!(r["agent"]["timed_out"], true);
    assert_run_gone(r["run_id"].as_str().unwrap());
}

/// Start a run whose agent phase sleeps, wait until its agent container runs, and return
/// the child and the run id.
fn start_sleeping_run(f: &Fixture) -> (std::process::Child, String) {
    f.env("t", TINY);
    let mut child = f
        .run("t", &["sleep", "60"])
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (_, run_id) = running_container_of(&mut child, "agent");
    (child, run_id)
}

#[test]
fn ctrl_c_and_sigterm_stop_the_run_remove_everything_and_record_it() {
    for (signal, code) in [
        (nix::sys::signal::Signal::SIGINT, 130),
        (nix::sys::signal::Signal::SIGTERM, 143),
    ] {
        let f = Fixture::new();
        let (mut child, run_id) = start_sleeping_run(&f);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{signal}");
        let r = f.report();
        assert_eq!(r["outcome"], "interrupted");
        assert_eq!(r["run_id"], run_id.as_str());
        assert_run_gone(&run_id);
    }
}

#[test]
fn kill_9_leaves_only_what_gc_removes_and_gc_spares_live_runs() {
    let f = Fixture::new();
    let (mut child, run_id) = start_sleeping_run(&f);
    // A second, live run: gc must not touch it.
    let live = Fixture::new();
    let (mut live_child, live_id) = start_sleeping_run(&live);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=airlock.run={run_id}"),
    ]);
    assert!(
        !left.trim().is_empty(),
        "a killed run leaves its containers (gc's job)"
    );
    Test::new()
        .args(["gc", "--dry-run"])
        .run()
        .success()
        .stdout_has(&format!("would remove container airlock-{run_id}-agent"));
    Test::new().args(["gc"]).run().success().stdout_has(&run_id);
    assert_run_gone(&run_id);
    let still = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=airlock.run={live_id}"),
    ]);
    assert!(
        !still.trim().is_empty(),
        "gc removed a live run's container"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(live_child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    live_child.wait().unwrap();
    assert_run_gone(&live_id);
}

#[test]
fn keep_then_shell_opens_the_final_state_offline() {
    let f = Fixture::new();
    f.env("t", TINY);
    f.run_with(
        "t",
        &["--keep"],
        &["sh", "-c", "echo final > state.txt; exit 3"],
    )
    .run()
    .code(3)
    .stderr_has("airlock shell");
    let run_id = f.report()["run_id"].as_str().unwrap().to_string();
    Test::new()
        .args(["shell", &run_id])
        .stdin("cat /workspace/state.txt; id -u; ip route | wc -l\n")
        .run()
        .success()
        .stdout_has("final")
        .stdout_has("1000");
    Test::new()
        .args(["gc", "--kept", &run_id])
        .run()
        .success()
        .stdout_has(&run_id);
    assert_run_gone(&run_id);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn apply_writes_the_agents_changes_into_the_host_workspace() {
    let f = Fixture::new();
    f.env("t", TINY);
    f.ws_file("edit.txt", "before\n");
    f.ws_file("gone.txt", "bye\n");
    git(&f.ws, &["init", "-q"]);
    git(&f.ws, &["add", "-A"]);
    git(&f.ws, &["commit", "-qm", "start"]);
    f.run_with(
        "t",
        &["--apply"],
        &[
            "sh",
            "-c",
            "echo after > edit.txt; rm gone.txt; mkdir d; echo n > d/new.txt",
        ],
    )
    .run()
    .success();
    assert_eq!(f.report()["patch"]["applied"], true);
    assert_eq!(
        std::fs::read_to_string(f.ws.join("edit.txt")).unwrap(),
        "after\n"
    );
    assert!(!f.ws.join("gone.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.ws.join("d/new.txt")).unwrap(),
        "n\n"
    );
    // The host repository's history is untouched: the changes are in the work tree only.
    assert_eq!(git(&f.ws, &["rev-list", "--count", "HEAD"]).trim(), "1");
    let status = git(&f.ws, &["status", "--porcelain"]);
    assert!(status.contains(" M edit.txt"), "{status}");
    assert!(status.contains(" D gone.txt"), "{status}");
}

/// A workspace that is a folder inside a larger repository: `git apply` run there would
/// take the patch's paths as relative to the repository's top and silently skip them.
/// The host workspace changes while the agent phase runs (a person keeps working): the
/// patch no longer applies. `--apply` leaves the workspace untouched, keeps the patch, exits
/// 82, and the report still has the agent command's exit code.
#[test]
fn apply_that_no_longer_fits_leaves_the_workspace_untouched_and_exits_82() {
    let f = Fixture::new();
    f.env("t", TINY);
    f.ws_file("edit.txt", "before\n");
    let child = f
        .run_with(
            "t",
            &["--apply"],
            &["sh", "-c", "sleep 3; echo after > edit.txt"],
        )
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once setup has ended the workspace has been copied: change it on the host.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let done = std::fs::read_to_string(f.out().join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|r| !r["setup"]["finished"].is_null());
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "setup never ended");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f.ws_file("edit.txt", "the host's own edit\n");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(82), "{stderr}");
    assert!(
        stderr.contains("the workspace changed on the host while the run ran (edit.txt)"),
        "{stderr}"
    );
    assert!(stderr.contains("exited with code 0"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(f.ws.join("edit.txt")).unwrap(),
        "the host's own edit\n"
    );
    let r = f.report();
    assert_eq!(r["outcome"], "apply_failed");
    assert_eq!(r["exit_code"], 82);
    assert_eq!(r["agent"]["exit_code"], 0);
    assert_eq!(r["patch"]["applied"], false);
    assert_eq!(r["patch"]["host_changed"], serde_json::json!(["edit.txt"]));
    assert!(contains(&f.record_file("changes.patch"), b"+after"));
    assert_run_gone(r["run_id"].as_str().unwrap());
}

#[test]
fn apply_works_in_a_workspace_that_is_a_subfolder_of_a_repository() {
    let f = Fixture::new();
    f.env("t", TINY);
    f.ws_file("top.txt", "top\n");
    f.ws_file("sub/edit.txt", "before\n");
    git(&f.ws, &["init", "-q"]);
    git(&f.ws, &["add", "-A"]);
    git(&f.ws, &["commit", "-qm", "start"]);
    let sub = f.ws.join("sub");
    Test::new()
        .root(&f.root)
        .env("AIRLOCK_IDENTITY", &f.identity)
        .args(["run", "t", "--apply", "-w"])
        .arg(&sub)
        .arg("--out")
        .arg(f.out())
        .arg("--force")
        .args(["--", "sh", "-c", "echo after > edit.txt; echo n > new.txt"])
        .run()
        .success();
    assert_eq!(f.report()["patch"]["applied"], true);
    assert_eq!(
        std::fs::read_to_string(sub.join("edit.txt")).unwrap(),
        "after\n"
    );
    assert_eq!(std::fs::read_to_string(sub.join("new.txt")).unwrap(), "n\n");
    assert!(!f.ws.join("edit.txt").exists() && !f.ws.join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.ws.join("top.txt")).unwrap(),
        "top\n"
    );
}

#[test]
fn json_prints_the_report_and_nothing_else_on_stdout() {
    let f = Fixture::new();
    f.env("t", TINY);
    let out = f
        .run_with(
            "t",
            &["--json"],
            &["sh", "-c", "printf 'to-the-%s\\n' log; exit 4"],
        )
        .run()
        .code(4);
    let printed: serde_json::Value = serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", out.stdout()));
    assert_eq!(printed, f.report());
    assert_eq!(printed["outcome"], "failed");
    assert_eq!(printed["agent"]["exit_code"], 4);
    assert!(!out.stdout().contains("to-the-log"));
    assert!(out.stderr().contains("agent | to-the-log"));
}

/// An entry refused for its type (a FIFO here; a hard link out of its root is tested in
/// runner/boundary, since no real volume can hold one) is named redacted, on stderr and in the
/// record, even when its name is the secret.
#[test]
fn a_refusal_for_type_or_place_never_prints_the_secret() {
    for (what, script) in [
        ("fifo", "mkfifo \"/workspace/pipe-$API_TOKEN\""),
        (
            "fifo in persist",
            "mkdir -p /opt/deps; mkfifo \"/opt/deps/$API_TOKEN\"",
        ),
    ] {
        let f = Fixture::new();
        f.secret("API_TOKEN", SECRET.as_bytes());
        f.env(
            "t",
            &format!(
                "image: tiny\nsecrets: [API_TOKEN]\npersist: [/opt/deps]\nsetup: |\n  {script}\n"
            ),
        );
        let out = f.run("t", &["true"]).run().code(81);
        out.stderr_has("[redacted:API_TOKEN]")
            .never_prints(SECRET.as_bytes());
        let report = f.record_file("report.json");
        assert!(
            !contains(&report, SECRET.as_bytes()),
            "{what}: report.json names the secret"
        );
        assert!(contains(&report, b"[redacted:API_TOKEN]"), "{what}");
    }
}
