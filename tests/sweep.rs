//! What the archive can't show doesn't cross (SECURITY.md): sockets and extended attributes
//! that setup leaves in what crosses are removed before the agent phase, recorded redacted in
//! `boundary.removed`, and never reach the agent.

use crate::harness::{assert_run_gone, contains, Fixture, SECRET};

/// A socket named with the secret (busybox's syslogd makes `/dev/log`; `cp -a` makes another
/// socket wherever it is told), in the workspace and in a persist path.
#[test]
fn a_socket_named_with_the_secret_never_reaches_the_agent() {
    let f = Fixture::new();
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "t",
        "image: tiny\nsecrets: [API_TOKEN]\npersist: [/opt/deps]\nsetup: |\n  syslogd -n -O /dev/null &\n  while [ ! -S /dev/log ]; do sleep 0.1; done\n  cp -a /dev/log \"/workspace/sock-$API_TOKEN\"\n  mkdir -p /opt/deps/sub\n  cp -a /dev/log /opt/deps/sub/s2\n  echo setup-sees=$(ls -A /workspace | grep -c sock-)\n",
    );
    let out = f
        .run(
            "t",
            &[
                "sh",
                "-c",
                "echo agent-sees=$(ls -A /workspace | grep -c sock-) $(ls -A /opt/deps/sub | wc -l)",
            ],
        )
        .run()
        .success();
    let out = out
        .never_prints(SECRET.as_bytes())
        .stderr_has("boundary: removed 2 sockets and 0 extended attributes");
    // The same probe, in setup, is the control: it sees the socket.
    assert!(
        contains(&f.record_file("setup.log"), b"setup-sees=1"),
        "{}",
        out.stderr()
    );
    assert!(
        contains(&f.record_file("agent.log"), b"agent-sees=0 0"),
        "{}",
        out.stderr()
    );
    let r = f.report();
    let removed = r["boundary"]["removed"].as_array().unwrap();
    let paths: Vec<&str> = removed
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"/workspace/sock-[redacted:API_TOKEN]"),
        "{paths:?}"
    );
    assert!(paths.contains(&"/opt/deps/sub/s2"), "{paths:?}");
    assert!(removed.iter().all(|e| e["what"] == "socket"));
    assert!(!contains(&f.record_file("report.json"), SECRET.as_bytes()));
    assert_run_gone(r["run_id"].as_str().unwrap());
}

/// `curl --xattr` keeps the URL it fetched, token and all, in `user.xdg.origin.url`: the
/// attribute is removed before the agent phase and recorded (its value never is).
#[test]
fn an_extended_attribute_holding_a_token_never_reaches_the_agent() {
    let f = Fixture::new();
    crate::harness::Test::new()
        .env("AIRLOCK_ROOT", crate::harness::repo())
        .args(["image", "build", "base"])
        .run()
        .success();
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "t",
        "image: base\nsecrets: [API_TOKEN]\nsetup: |\n  curl -s --xattr -o /workspace/page \"file:///etc/hostname?token=$API_TOKEN\"\n",
    );
    let out = f.run("t", &["cat", "/workspace/page"]).run().success();
    out.never_prints(SECRET.as_bytes())
        .stderr_has("boundary: removed 0 sockets and 1 extended attribute")
        .stderr_has("/workspace/page (extended attribute user.xdg.origin.url)");
    let r = f.report();
    assert_eq!(
        r["boundary"]["removed"][0]["what"],
        "extended attribute user.xdg.origin.url"
    );
    assert!(!contains(&f.record_file("report.json"), SECRET.as_bytes()));
    assert_run_gone(r["run_id"].as_str().unwrap());
}
