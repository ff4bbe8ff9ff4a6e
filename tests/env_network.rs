//! `airlock env check` on `agent.network` allowlists: a valid one is summarised entry by entry,
//! and each kind of bad entry is refused with the file, line and column, the key path and a
//! fix. No Docker needed.

use crate::harness::{Output, Root, Test};

fn check(yaml: &str) -> Output {
    let root = Root::new();
    root.write("envs/x.yaml", yaml);
    Test::new().root(&root).args(["env", "check", "x"]).run()
}

/// `network:` with `body` indented under it is refused with `at` (`envs/x.yaml:L:C: KEY: `),
/// `message` on that line and `fix` on the next.
#[track_caller]
fn refused(body: &str, at: &str, message: &str, fix: &str) {
    let yaml = format!("image: tiny\nagent:\n  network:\n{body}");
    let out = check(&yaml).code(1);
    let err = out.stderr();
    let Some(line) = err.lines().find(|l| l.contains(at)) else {
        panic!("stderr lacks {at:?} for\n{yaml}\n--- stderr:\n{err}");
    };
    assert!(line.contains(message), "{line:?} lacks {message:?}");
    let fix_line = err
        .lines()
        .skip_while(|l| !l.contains(at))
        .nth(1)
        .unwrap_or_default();
    assert!(
        fix_line.starts_with("  fix: ") && fix_line.contains(fix),
        "fix line lacks {fix:?}: {fix_line:?}"
    );
}

#[test]
fn an_allowlist_is_summarised() {
    check(
        "image: tiny\nagent:\n  network:\n    allow:\n      - registry.example.com\n      - \"*.example.org:443\"\n      - git.internal.example\n      - \"192.0.2.5:8080\"\n      - {host: git.example.com, methods: [GET, POST]}\n      - host-registries\n    deny: [uploads.example.org]\n    methods: [GET, HEAD, OPTIONS]\n    hosts: {git.internal.example: 192.0.2.7}\n    ca_certificates: [host]\n",
    )
    .success()
    .stdout_has("network allowlist (through the egress proxy), user 1000:1000")
    .stdout_has("  allow    registry.example.com, *.example.org:443, git.internal.example, 192.0.2.5:8080, git.example.com (GET, POST), host-registries (GET, HEAD)\n")
    .stdout_has("  deny     uploads.example.org\n")
    .stdout_has("  methods  GET, HEAD, OPTIONS\n")
    .stdout_has("  hosts    git.internal.example -> 192.0.2.7\n")
    .stdout_has("  upstream CAs host\n");
}

#[test]
fn off_and_false_stay_off_and_on_is_refused() {
    check("image: tiny\nagent:\n  network: off\n")
        .success()
        .stdout_has("network off");
    check("image: tiny\nagent:\n  network: false\n")
        .success()
        .stdout_has("network off");
    check("image: tiny\nagent:\n  network: on\n")
        .code(1)
        .stderr_has(
            "envs/x.yaml:3:12: agent.network: \"on\": the agent network is `off` or an allowlist",
        )
        .stderr_has("fix: list what the agent may reach");
}

#[test]
fn bad_hosts_are_refused_where_they_are_written() {
    refused(
        "    allow: [ok.example.com, \"a*.b\"]\n",
        "envs/x.yaml:4:29: agent.network.allow[1]: ",
        "\"a*.b\" is not a valid wildcard",
        "`*.` at the very start of a domain",
    );
    refused(
        "    allow:\n      - exa*mple.com\n",
        "envs/x.yaml:5:9: agent.network.allow[0]: ",
        "not a valid wildcard",
        "`*` alone for every public host",
    );
    refused(
        "    allow: [\"127.0.0.1:8080\"]\n",
        "envs/x.yaml:4:13: agent.network.allow[0]: ",
        "127.0.0.1 is a loopback address",
        "the proxy's own container",
    );
    refused(
        "    allow: [localhost]\n",
        "envs/x.yaml:4:13: agent.network.allow[0]: ",
        "loopback",
        "the proxy's own container",
    );
    refused(
        "    allow: [192.0.2.5/24]\n",
        "envs/x.yaml:4:13: agent.network.allow[0]: ",
        "192.0.2.5/24 has host bits set",
        "`192.0.2.0/24`",
    );
    refused(
        "    allow: [\"https://example.com/x\"]\n",
        "envs/x.yaml:4:13: agent.network.allow[0]: ",
        "is a URL, not a host",
        "write the host alone",
    );
    refused(
        "    allow: [\"example.com:99999\"]\n",
        "envs/x.yaml:4:13: agent.network.allow[0]: ",
        "\"99999\" is not a port number",
        "1 to 65535",
    );
    refused(
        "    allow: [x.example.com]\n    deny: [\"*\"]\n",
        "envs/x.yaml:5:12: agent.network.deny[0]: ",
        "`*` in deny would refuse everything",
        "network: off",
    );
    refused(
        "    deny: [x.example.com]\n    allow: [a.example.com, x.example.com]\n",
        "envs/x.yaml:5:28: agent.network.allow[1]: ",
        "x.example.com is both allowed and denied (also deny[0])",
        "deny is checked first",
    );
}

#[test]
fn bad_methods_are_refused() {
    refused(
        "    allow: [x.example.com]\n    methods: [GET, FETCH]\n",
        "envs/x.yaml:5:20: agent.network.methods[1]: ",
        "\"FETCH\" is not an HTTP method",
        "GET, HEAD, OPTIONS, POST",
    );
    refused(
        "    allow: [x.example.com]\n    methods: [post]\n",
        "envs/x.yaml:5:15: agent.network.methods[0]: ",
        "methods are upper case",
        "write POST",
    );
    refused(
        "    allow: [x.example.com]\n    methods: [GET, CONNECT]\n",
        "agent.network.methods[1]: ",
        "CONNECT is not a method",
        "remove CONNECT",
    );
    refused(
        "    allow: [x.example.com]\n    methods: []\n",
        "agent.network.methods: ",
        "an empty methods list lets no request through",
        "remove `methods` to allow all",
    );
    refused(
        "    allow:\n      - {host: git.example.com, methods: [GET, PUSH]}\n",
        "envs/x.yaml:5:48: agent.network.allow[0].methods[1]: ",
        "\"PUSH\" is not an HTTP method",
        "the methods are",
    );
    refused(
        "    allow:\n      - {host: host-registries, methods: [GET, POST]}\n",
        "agent.network.allow[0].host: ",
        "host-registries is GET and HEAD only",
        "plain entry",
    );
}

#[test]
fn pins_must_name_an_allowed_host_and_an_address_it_may_reach() {
    refused(
        "    allow: [x.example.com]\n    hosts: {y.example.com: 192.0.2.7}\n",
        "envs/x.yaml:5:13: agent.network.hosts.y.example.com: ",
        "y.example.com is pinned in hosts but no allow entry names it",
        "add `y.example.com` to allow",
    );
    refused(
        "    allow: [x.example.com]\n    hosts: {x.example.com: 127.0.0.1}\n",
        "agent.network.hosts.x.example.com: ",
        "127.0.0.1 is a loopback address",
        "the proxy's own container",
    );
    refused(
        "    allow: [x.example.com]\n    hosts: {x.example.com: 10.0.0.0/8}\n",
        "agent.network.hosts.x.example.com: ",
        "is not an IP address",
        "pin a name to one address",
    );
}

#[test]
fn the_shape_is_checked() {
    refused(
        "    deny: [x.example.com]\n",
        "agent.network: ",
        "an allowlist needs `allow`",
        "network: off",
    );
    refused(
        "    allow: [x.example.com]\n    metods: [GET]\n",
        "envs/x.yaml:5:5: agent.network.metods: ",
        "unknown key",
        "did you mean `methods`?",
    );
    refused(
        "    allow:\n      - {host: x.example.com, method: [GET]}\n",
        "agent.network.allow[0].method: ",
        "unknown key",
        "did you mean `methods`?",
    );
    refused(
        "    allow: [x.example.com, x.example.com]\n",
        "agent.network.allow[1]: ",
        "x.example.com is listed twice (also allow[0])",
        "list each host once",
    );
}
