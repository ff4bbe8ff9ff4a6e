//! The agent phase with an allowlist: only through airlock's egress proxy, only what the
//! allowlist allows, every request on record, and no way around it.
//!
//! Every server here is one the test starts, on the host's bridge address (`docker0`) or in a
//! container on a network the test made; the package-index test reaches the real index,
//! whose host it reads from pip's own settings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{
    assert_run_gone, base_image, docker, repo, running_container_of, Fixture, Test,
};

/// The host's address on the engine's default bridge: reachable from containers on their
/// own bridge networks, so the proxy can reach a server there when an entry allows it.
pub fn bridge_ip() -> String {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .expect("ip");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("docker0 has an IPv4 address")
        .to_string()
}

/// A plain HTTP server of the test's own: answers every request `200 hello`, and keeps the
/// request lines it got.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(ip: &str) -> Server {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut first = String::new();
                    if reader.read_line(&mut first).is_err() {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    seen.lock().unwrap().push(first.trim().to_string());
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 22\r\nConnection: close\r\n\r\nhello from the server\n",
                    );
                });
            }
        });
        Server { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn agent_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("agent | "))
        .map(str::to_string)
        .collect()
}

/// The agent's first output line that starts with `prefix`.
fn agent_line(stderr: &str, prefix: &str) -> String {
    agent_lines(stderr)
        .into_iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{stderr}"))
}

fn record_lines(f: &Fixture) -> Vec<serde_json::Value> {
    String::from_utf8(f.record_file("network.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A raw request through the agent's proxy with busybox `nc`, so the test sees the
/// proxy's answer (status line and the `x-airlock-blocked` header) as the agent does
/// (busybox `nc` stops at the end of its input: the `sleep` keeps it open for the answer).
fn raw(method: &str, url: &str, host: &str) -> String {
    format!(
        "{{ printf '{method} {url} HTTP/1.1\\r\\nHost: {host}\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n'; sleep 1; }} | nc 127.0.0.1 3128 | grep -i -e '^HTTP/' -e '^x-airlock-blocked' | tr -d '\\r'"
    )
}

#[test]
fn only_allowed_hosts_and_methods_pass_deny_wins_and_every_request_is_on_record() {
    let ip = bridge_ip();
    let allowed = Server::start(&ip);
    let denied = Server::start(&ip);
    let f = Fixture::new();
    f.env(
        "t",
        &format!(
            "image: tiny\nagent:\n  network:\n    allow: [\"{ip}\"]\n    deny: [\"{ip}:{}\"]\n    methods: [GET, HEAD]\n",
            denied.port
        ),
    );
    let a = format!("http://{ip}:{}/ok", allowed.port);
    let d = format!("http://{ip}:{}/no", denied.port);
    let script = [
        format!("echo GET: $(wget -q -O - {a})"),
        format!("echo POST: $({})", raw("POST", &a, &ip)),
        format!("echo DENIED: $({})", raw("GET", &d, &ip)),
        format!(
            "echo UNLISTED: $({})",
            raw("GET", "http://unlisted.example/", "unlisted.example")
        ),
        // Around the proxy: no interface but loopback, so nothing to connect through.
        format!("nc -w 2 {ip} {} </dev/null; echo DIRECT=$?", allowed.port),
        "env -u http_proxy wget -q -T 2 -O - http://".to_string()
            + &format!("{ip}:{}/direct; echo NOPROXY=$?", allowed.port),
    ]
    .join("; ");
    let out = f.run("t", &["sh", "-c", &script]).run().success();
    let stderr = out.stderr();
    let line = |prefix: &str| agent_line(&stderr, prefix);
    assert_eq!(line("GET:"), "GET: hello from the server");
    assert_eq!(
        line("POST:"),
        "POST: HTTP/1.1 403 Forbidden x-airlock-blocked: method"
    );
    assert_eq!(
        line("DENIED:"),
        "DENIED: HTTP/1.1 403 Forbidden x-airlock-blocked: denied"
    );
    assert_eq!(
        line("UNLISTED:"),
        "UNLISTED: HTTP/1.1 403 Forbidden x-airlock-blocked: not-allowed"
    );
    assert_ne!(line("DIRECT="), "DIRECT=0");
    assert_ne!(line("NOPROXY="), "NOPROXY=0");
    // The servers saw exactly the one allowed request: the refusals never left the proxy.
    assert_eq!(allowed.requests(), ["GET /ok HTTP/1.1"]);
    assert!(denied.requests().is_empty(), "{:?}", denied.requests());
    // Every request on record, with its decision and reason.
    let record = record_lines(&f);
    let shown: Vec<(String, String, String, String)> = record
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("method"), s("host"), s("decision"), s("reason"))
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("GET".into(), ip.clone(), "allowed".into(), "".into()),
            ("POST".into(), ip.clone(), "denied".into(), "method".into()),
            ("GET".into(), ip.clone(), "denied".into(), "denied".into()),
            (
                "GET".into(),
                "unlisted.example".into(),
                "denied".into(),
                "not-allowed".into()
            ),
        ]
    );
    assert_eq!(record[0]["path"], "/ok");
    assert_eq!(record[0]["status"], 200);
    let report = f.report();
    let requests = &report["network"]["requests"];
    assert_eq!(
        (requests["allowed"].as_u64(), requests["denied"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(requests["proxy_died"], false);
    assert_eq!(
        report["network"]["agent"],
        "the allowlist, through airlock's egress proxy"
    );
    out.stderr_line(&format!(
        "airlock | agent network: 1 request allowed, 3 denied (POST {ip}: method; GET {ip}: denied; GET unlisted.example: not-allowed); see network.jsonl"
    ));
    assert_run_gone(report["run_id"].as_str().unwrap());
}

#[test]
fn private_addresses_are_refused_after_resolution_unless_named() {
    let ip = bridge_ip();
    let server = Server::start(&ip);
    // A server in a container on a network the test made.
    let net = format!("airlock-test-egress-{}", std::process::id());
    docker(&["network", "create", &net]);
    let other = format!("{net}-httpd");
    crate::harness::tiny_image();
    let tiny = docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "airlock/tiny",
    ]);
    let tiny = tiny.lines().next().expect("the tiny image").to_string();
    docker(&[
        "run",
        "-d",
        "--name",
        &other,
        "--network",
        &net,
        &tiny,
        "sh",
        "-c",
        "mkdir -p /w && echo other-container > /w/index.html && httpd -f -p 8080 -h /w",
    ]);
    let other_ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &other,
    ]);
    let other_ip = other_ip.trim().to_string();
    let f = Fixture::new();
    f.env(
        "t",
        &format!(
            "image: tiny\nagent:\n  network:\n    allow: [\"*\", pinned.test.example]\n    hosts: {{pinned.test.example: {ip}}}\n"
        ),
    );
    let p = server.port;
    let script = [
        // A name that resolves to loopback, inside the proxy's container.
        format!(
            "echo LOCALHOST: $({})",
            raw("GET", &format!("http://localhost:{p}/"), "localhost")
        ),
        // IP literals: the bridge address, another container, loopback.
        format!(
            "echo BRIDGE: $({})",
            raw("GET", &format!("http://{ip}:{p}/"), &ip)
        ),
        format!(
            "echo OTHER: $({})",
            raw("GET", &format!("http://{other_ip}:8080/"), &other_ip)
        ),
        format!("echo IPV6: $({})", raw("GET", "http://[::1]:80/", "[::1]")),
        // Pinned by `hosts:`: that address, for that name only.
        format!("echo PINNED: $(wget -q -O - http://pinned.test.example:{p}/pinned)"),
        // Directly: no interface to go out of.
        format!("nc -w 2 {other_ip} 8080 </dev/null; echo DIRECT_OTHER=$?"),
        // Raw sockets: no NET_RAW.
        format!("ping -c 1 -W 1 {ip} >/dev/null 2>&1; echo PING=$?"),
    ]
    .join("; ");
    let out = f.run("t", &["sh", "-c", &script]).run();
    docker(&["rm", "-f", &other]);
    docker(&["network", "rm", &net]);
    let out = out.success();
    let stderr = out.stderr();
    let line = |prefix: &str| agent_line(&stderr, prefix);
    assert_eq!(
        line("LOCALHOST:"),
        "LOCALHOST: HTTP/1.1 403 Forbidden x-airlock-blocked: private-address"
    );
    for what in ["BRIDGE:", "OTHER:", "IPV6:"] {
        assert_eq!(
            line(what),
            format!("{what} HTTP/1.1 403 Forbidden x-airlock-blocked: not-allowed"),
            "an IP literal that no IP entry names"
        );
    }
    assert_eq!(line("PINNED:"), "PINNED: hello from the server");
    assert_ne!(line("DIRECT_OTHER="), "DIRECT_OTHER=0");
    assert_ne!(line("PING="), "PING=0");
    assert_eq!(server.requests(), ["GET /pinned HTTP/1.1"]);
    assert_run_gone(f.report()["run_id"].as_str().unwrap());
}

/// HTTPS is read by the proxy with the run's CA, which the agent trusts (curl through
/// `SSL_CERT_FILE`/the system bundle); upstream, the proxy trusts what
/// `agent.network.ca_certificates` names. The CA's key is nowhere the agent can read.
#[test]
fn https_is_inspected_with_a_per_run_ca_whose_key_the_agent_cannot_read() {
    base_image();
    let ip = bridge_ip();
    let dir = tempfile::tempdir().unwrap();
    // A CA of the test's and a leaf for the bridge address signed by it (rustls refuses a CA
    // certificate as a server's own).
    let p = |name: &str| dir.path().join(name);
    let (key, cert, ca) = (p("key.pem"), p("cert.pem"), p("ca.pem"));
    std::fs::write(
        p("leaf.ext"),
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for args in [
        [
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=airlock test CA", "-keyout"],
        ]
        .concat(),
        [
            &["req", "-new"][..],
            &ec,
            &["-subj", "/CN=airlock test server", "-keyout"],
        ]
        .concat(),
    ] {
        let (k, o) = if args[1] == "-x509" {
            (p("ca.key"), ca.clone())
        } else {
            (key.clone(), p("leaf.csr"))
        };
        let made = Command::new("openssl")
            .args(&args)
            .arg(&k)
            .arg("-out")
            .arg(&o)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let signed = Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-in"])
        .arg(p("leaf.csr"))
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(p("leaf.ext"))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let server_code = [
        "import http.server, ssl, sys",
        "class H(http.server.BaseHTTPRequestHandler):",
        "    def do_GET(self):",
        "        body = b'hello over tls\\n'",
        "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)",
        "        sys.stderr.write('SEEN ' + self.path + '\\n'); sys.stderr.flush()",
        "    do_POST = do_GET",
        &format!("s = http.server.ThreadingHTTPServer(('{ip}', 0), H)"),
        &format!(
            "c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('{}', '{}')",
            cert.display(),
            key.display()
        ),
        "s.socket = c.wrap_socket(s.socket, server_side=True)",
        "print(s.server_address[1], flush=True)",
        "s.serve_forever()",
    ]
    .join("\n");
    let mut server = Command::new("python3")
        .args(["-c", &server_code])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port = port.trim().to_string();
    let f = Fixture::new();
    std::fs::copy(&ca, f.root.path().join("test-ca.pem")).unwrap();
    f.env(
        "t",
        &format!(
            "image: base\nagent:\n  network:\n    allow: [\"{ip}:{port}\"]\n    methods: [GET]\n    ca_certificates: [test-ca.pem]\n"
        ),
    );
    let url = format!("https://{ip}:{port}/secure/path?q=1");
    let script = [
        format!("echo GET: $(curl -sS {url})"),
        format!("curl -sS -o /dev/null -w 'POST: %{{http_code}}\\n' -X POST {url}"),
        format!("echo ISSUER: $(curl -sS -v -o /dev/null {url} 2>&1 | grep -o 'issuer: CN=airlock egress proxy' | head -1)"),
        // What the agent can see of the proxy: the socket and the public certificate.
        "echo RUN_AIRLOCK: $(ls /run/airlock)".into(),
        "touch /run/airlock/x 2>/dev/null; echo WRITE=$?".into(),
        "echo KEYS: $(grep -rl 'PRIVATE KEY' /run/airlock /etc/airlock /etc/ssl 2>/dev/null | wc -l)".into(),
        "echo PROCS: $(ls /proc | grep -c '^[0-9]')".into(),
    ]
    .join("; ");
    let out = f.run("t", &["bash", "-c", &script]).run();
    let _ = server.kill();
    let _ = server.wait();
    let mut seen = String::new();
    let _ = server.stderr.take().unwrap().read_to_string(&mut seen);
    let out = out.success();
    let stderr = out.stderr();
    let line = |prefix: &str| agent_line(&stderr, prefix);
    assert_eq!(line("GET:"), "GET: hello over tls");
    assert_eq!(line("POST:"), "POST: 403");
    assert_eq!(line("ISSUER:"), "ISSUER: issuer: CN=airlock egress proxy");
    assert_eq!(line("RUN_AIRLOCK:"), "RUN_AIRLOCK: ca.pem proxy.sock");
    assert_ne!(line("WRITE="), "WRITE=0");
    assert_eq!(line("KEYS:"), "KEYS: 0");
    // Only the agent's own processes (init, the forwarder, the shell, ls/grep): not the proxy.
    let procs: usize = line("PROCS:")
        .trim_start_matches("PROCS: ")
        .parse()
        .unwrap();
    assert!(procs <= 6, "{procs} processes visible");
    // The POST never reached the server; the GETs did, with their paths.
    assert_eq!(seen.matches("SEEN /secure/path?q=1").count(), 2, "{seen}");
    let record = record_lines(&f);
    assert_eq!(record[0]["scheme"], "https");
    assert_eq!(record[0]["path"], "/secure/path");
    assert_eq!(record[0]["query_len"], 3);
    assert_eq!(record[1]["method"], "POST");
    assert_eq!(record[1]["reason"], "method");
    assert_run_gone(f.report()["run_id"].as_str().unwrap());
}

/// The proxy killed mid-run: the agent's next request fails at once (no hang), the report
/// says the proxy died, the run still ends with a record, and nothing is left.
#[test]
fn a_proxy_that_dies_fails_requests_fast_and_is_reported() {
    let ip = bridge_ip();
    let server = Server::start(&ip);
    let f = Fixture::new();
    f.env(
        "t",
        &format!("image: tiny\nagent:\n  network:\n    allow: [\"{ip}:{}\"]\nlimits:\n  agent_timeout: 120s\n", server.port),
    );
    let url = format!("http://{ip}:{}/", server.port);
    let script = format!(
        "echo FIRST: $(wget -q -O - {url}); while [ ! -e /tmp/go ]; do sleep 0.1; done; \
         s=$(date +%s); wget -q -O - {url}; echo SECOND=$?; echo TOOK=$(( $(date +%s) - s ))"
    );
    let mut child = f
        .run("t", &["sh", "-c", &script])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (agent, run_id) = running_container_of(&mut child, "agent");
    // Wait for the first request, then kill the proxy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.requests().is_empty() {
        assert!(Instant::now() < deadline, "the first request never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    docker(&["kill", &format!("airlock-{run_id}-proxy")]);
    docker(&["exec", &agent, "touch", "/tmp/go"]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = agent_lines(&stderr);
    assert!(
        lines.iter().any(|l| l == "FIRST: hello from the server"),
        "{stderr}"
    );
    let second = lines
        .iter()
        .find(|l| l.starts_with("SECOND="))
        .expect("SECOND");
    assert_ne!(second, "SECOND=0", "{stderr}");
    let took: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("TOOK="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(took < 10, "the request after the proxy died took {took} s");
    let report = f.report();
    assert_eq!(report["network"]["requests"]["proxy_died"], true);
    assert_eq!(report["network"]["requests"]["allowed"], 1);
    assert!(
        stderr.contains("the proxy died during the agent phase, later requests failed"),
        "{stderr}"
    );
    assert_run_gone(&run_id);
}

/// airlock killed outright while its proxy runs: `gc` removes the proxy's container, network
/// and volume with the rest.
#[test]
fn kill_9_then_gc_leaves_no_proxy_network_or_volume() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nagent:\n  network:\n    allow: [\"unused.example\"]\nlimits:\n  agent_timeout: 120s\n",
    );
    let mut child = f
        .run("t", &["sleep", "100"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_, run_id) = running_container_of(&mut child, "agent");
    let filter = format!("label=airlock.run={run_id}");
    let proxy = docker(&[
        "ps",
        "-q",
        "--filter",
        &filter,
        "--filter",
        "label=airlock.phase=proxy",
    ]);
    assert!(
        !proxy.trim().is_empty(),
        "no proxy container while the agent ran"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    Test::new().root(&f.root).args(["gc"]).run().success();
    assert_run_gone(&run_id);
}

/// The real package index, allowed through `host-registries` (the preset reads pip's own
/// settings on this host; the test reads the index host the same independent way pip does):
/// pip installs from it with GET only; a POST to it and a host not on the list are refused
/// and on record. (The unlisted host is asked over plain HTTP: an HTTPS refusal is the CONNECT's
/// own 403, whose header `urllib` doesn't show.)
#[test]
fn pip_installs_from_the_real_index_through_host_registries_get_only() {
    Test::new()
        .env("AIRLOCK_ROOT", repo())
        .args(["image", "build", "python"])
        .run()
        .success();
    let probe = Command::new("python3")
        .args([
            "-c",
            "from pip._internal.models.index import PyPI; print(PyPI.netloc)",
        ])
        .output()
        .unwrap();
    assert!(probe.status.success());
    let index = String::from_utf8(probe.stdout).unwrap().trim().to_string();
    let f = Fixture::new();
    f.env(
        "t",
        "image: python\nagent:\n  network:\n    allow: [host-registries]\n  user: \"1000:1000\"\n",
    );
    let post = format!(
        "import urllib.request as u, urllib.error as e\n\
try:\n    u.urlopen(u.Request('https://{index}/simple/', data=b'x', method='POST'))\n\
except e.HTTPError as x:\n    print('POST:', x.code, x.headers.get('x-airlock-blocked'))\n\
try:\n    u.urlopen('http://not-on-the-list.example/')\n\
except e.HTTPError as x:\n    print('UNLISTED:', x.code, x.headers.get('x-airlock-blocked'))\n"
    );
    let script = format!(
        "python3 -m venv /tmp/v && /tmp/v/bin/python -m pip install --no-cache-dir --disable-pip-version-check -q six==1.16.0 && /tmp/v/bin/python -c 'import six; print(\"SIX\", six.__version__)'; python3 -c {}",
        shell_quote(&post)
    );
    let out = f.run("t", &["bash", "-c", &script]).run().success();
    let lines = agent_lines(&out.stderr());
    assert!(lines.iter().any(|l| l == "SIX 1.16.0"), "{}", out.stderr());
    assert!(
        lines.iter().any(|l| l == "POST: 403 method"),
        "{}",
        out.stderr()
    );
    assert!(
        lines.iter().any(|l| l == "UNLISTED: 403 not-allowed"),
        "{}",
        out.stderr()
    );
    let record = record_lines(&f);
    let allowed_gets = record
        .iter()
        .filter(|e| e["decision"] == "allowed")
        .inspect(|e| assert!(e["method"] == "GET" || e["method"] == "HEAD", "{e}"))
        .count();
    assert!(
        allowed_gets >= 2,
        "the index page and the wheel: {record:?}"
    );
    assert!(record
        .iter()
        .any(|e| e["host"] == index.as_str() && e["decision"] == "allowed"));
    assert!(record.iter().any(|e| e["host"] == index.as_str()
        && e["method"] == "POST"
        && e["decision"] == "denied"));
    assert!(record
        .iter()
        .any(|e| e["host"] == "not-on-the-list.example" && e["decision"] == "denied"));
    let report = f.report();
    let r = &report["network"]["requests"];
    assert_eq!(
        r["allowed"].as_u64().unwrap() + r["denied"].as_u64().unwrap(),
        record.len() as u64
    );
    assert_run_gone(report["run_id"].as_str().unwrap());
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A failing agent command and Ctrl-C during the agent phase: each run ends with its record
/// and leaves no proxy container, network or volume.
#[test]
fn failure_and_ctrl_c_leave_no_proxy_behind() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nagent:\n  network:\n    allow: [\"unused.example\"]\nlimits:\n  agent_timeout: 120s\n",
    );
    f.run("t", &["sh", "-c", "exit 3"]).run().code(3);
    let failed = f.report();
    assert_eq!(failed["outcome"], "failed");
    assert_run_gone(failed["run_id"].as_str().unwrap());

    let mut child = f
        .run("t", &["sleep", "100"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_, run_id) = running_container_of(&mut child, "agent");
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let report = f.report();
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["outcome"], "interrupted");
    assert_run_gone(&run_id);
}
