//! `airlock proxy` with real clients: curl through the proxy to HTTP and HTTPS servers the
//! test starts on loopback (their certificate made here with rcgen and trusted through the
//! upstream bundle the test names). Every destination is one of those servers; names that
//! must reach them are routed by the proxy's hidden test-only `--test-loopback` flag, and
//! everything else is refused before any lookup or connection.
//!
//! What is shown: an allowed domain and method pass on plain HTTP and inside intercepted
//! HTTPS; a denied domain, a method outside the policy (also after interception), an IP
//! literal, a name resolving to loopback, an SNI or Host other than the CONNECT target are
//! refused with a 403 and the `x-airlock-blocked` header; an upstream the bundle doesn't trust is
//! a 502 without it; every request is on the record; the CA key is nowhere on disk.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::harness::airlock_bin;

/// The names the test servers' certificate is valid for.
const UP: &str = "up.example.com";
const OTHER: &str = "other.example.com";

/// An HTTP and an HTTPS server on loopback, answering every request with what they saw
/// (`METHOD PATH host=HOST body=N`), or `n` bytes for `/bytes/N`.
pub struct Upstream {
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// The PEM of the CA that signed the HTTPS server's certificate.
    pub ca_pem: String,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    pub fn start() -> Upstream {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "airlock test upstream CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![UP.into(), OTHER.into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (http, https) = runtime.block_on(async {
            let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let secure = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (plain, secure)
        });
        let addrs = (http.local_addr().unwrap(), https.local_addr().unwrap());
        runtime.spawn(async move {
            loop {
                let Ok((s, _)) = http.accept().await else {
                    continue;
                };
                tokio::spawn(serve(s));
            }
        });
        runtime.spawn(async move {
            loop {
                let Ok((s, _)) = https.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(s).await {
                        serve(tls).await;
                    }
                });
            }
        });
        Upstream {
            http: addrs.0,
            https: addrs.1,
            ca_pem: ca_cert.pem(),
            _runtime: runtime,
        }
    }
}

async fn serve<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = req.into_body().collect().await.map(|b| b.to_bytes().len());
        let answer = match path
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Bytes::from(vec![b'x'; n]),
            None => Bytes::from(format!(
                "{method} {path} host={host} body={}\n",
                body.unwrap_or(0)
            )),
        };
        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(answer)))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A running `airlock proxy`, stopped when dropped.
pub struct Proxy {
    child: Child,
    /// `ADDRESS:PORT`, or `unix:PATH`.
    pub address: String,
    pub dir: tempfile::TempDir,
}

impl Proxy {
    /// Start the proxy with `policy` (JSON), trusting `bundle` upstream, with extra `args`.
    pub fn start(policy: &str, bundle: &str, args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.json"), policy).unwrap();
        std::fs::write(dir.path().join("bundle.pem"), bundle).unwrap();
        let listen = args
            .iter()
            .position(|a| *a == "--listen")
            .map(|i| args[i + 1].to_string());
        let mut cmd = Command::new(airlock_bin());
        cmd.arg("proxy")
            .arg("--policy")
            .arg(dir.path().join("policy.json"))
            .arg("--record")
            .arg(dir.path().join("network.jsonl"))
            .arg("--ca-dir")
            .arg(dir.path().join("ca"))
            .arg("--upstream-ca")
            .arg(dir.path().join("bundle.pem"));
        if listen.is_none() {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .strip_prefix("airlock proxy: listening on ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Proxy {
            child,
            address,
            dir,
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca/ca.pem")
    }

    /// The record, one JSON value per line.
    pub fn record(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("network.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// curl through the proxy, trusting the run's CA; returns (exit code, stdout, stderr).
    pub fn curl(&self, args: &[&str]) -> Curl {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(self.ca())
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
        cmd.args(["-x", &format!("http://{}", self.address)]);
        let out = cmd.args(args).output().unwrap();
        Curl {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Curl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Curl {
    #[track_caller]
    fn ok(&self) -> &Curl {
        assert_eq!(self.code, 0, "curl failed: {self:?}");
        self
    }

    /// A 403 from the proxy with this `x-airlock-blocked` (curl run with `-i`, or `-v` for
    /// CONNECT, whose response curl shows only on stderr).
    #[track_caller]
    fn blocked(&self, header: &str) -> &Curl {
        let all = format!("{}{}", self.stdout, self.stderr);
        assert!(all.contains("HTTP/1.1 403 Forbidden"), "no 403 in {self:?}");
        assert!(
            all.to_ascii_lowercase()
                .contains(&format!("x-airlock-blocked: {header}")),
            "no x-airlock-blocked: {header} in {self:?}"
        );
        self
    }
}

fn policy_up_get_only(upstream: &Upstream) -> String {
    let _ = upstream;
    format!(
        r#"{{"allow":[{{"target":"{UP}","methods":["GET","HEAD"]}},{{"target":"{OTHER}"}}],"deny":["denied.example.com"]}}"#
    )
}

fn lines_for<'a>(
    record: &'a [serde_json::Value],
    method: &str,
    path: &str,
) -> Vec<&'a serde_json::Value> {
    record
        .iter()
        .filter(|l| l["method"] == method && l["path"] == path)
        .collect()
}

#[test]
fn proxy_plain_http_allows_the_policy_and_refuses_the_rest() {
    let up = Upstream::start();
    let proxy = Proxy::start(
        &policy_up_get_only(&up),
        &up.ca_pem,
        &["--test-loopback", UP],
    );
    let port = up.http.port();
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");

    // Allowed domain and method: the server's answer, with its Host the URI's.
    let got = proxy.curl(&[&url(UP, "/hello?token=abc")]);
    assert_eq!(
        got.ok().stdout,
        format!("GET /hello host={UP}:{port} body=0\n")
    );
    // A Host header naming another host is replaced by the URI's, not passed on.
    let got = proxy.curl(&["-H", "Host: denied.example.com", &url(UP, "/fronted")]);
    assert_eq!(
        got.ok().stdout,
        format!("GET /fronted host={UP}:{port} body=0\n")
    );

    proxy
        .curl(&["-i", &url("denied.example.com", "/x")])
        .blocked("denied");
    proxy
        .curl(&["-i", &url("nowhere.example.com", "/x")])
        .blocked("not-allowed");
    let post = proxy.curl(&["-i", "-d", "payload", &url(UP, "/upload")]);
    post.blocked("method");
    assert!(post
        .stdout
        .contains("POST is not allowed to this host (allowed: GET, HEAD)"));
    // The IP literal of the very server the name reaches: refused.
    proxy
        .curl(&["-i", &url("127.0.0.1", "/literal")])
        .blocked("not-allowed");

    let record = proxy.record();
    let hello = lines_for(&record, "GET", "/hello");
    assert_eq!(hello.len(), 1, "{record:#?}");
    assert_eq!(hello[0]["decision"], "allowed");
    assert_eq!(hello[0]["status"], 200);
    assert_eq!(hello[0]["scheme"], "http");
    assert_eq!(hello[0]["host"], UP);
    assert_eq!(hello[0]["port"], port);
    assert_eq!(hello[0]["rule"], UP);
    assert_eq!(hello[0]["query_len"], 9, "the query's length, not its text");
    assert_eq!(
        hello[0]["bytes_down"].as_u64().unwrap() as usize,
        format!("GET /hello host={UP}:{port} body=0\n").len()
    );
    let reason = |path: &str| lines_for(&record, "GET", path)[0]["reason"].clone();
    assert_eq!(reason("/x"), "denied"); // the first /x line is denied.example.com
    assert_eq!(reason("/literal"), "ip-literal");
    let upload = lines_for(&record, "POST", "/upload");
    assert_eq!(upload[0]["reason"], "method");
    assert_eq!(upload[0]["decision"], "denied");
    assert_eq!(record.len(), 6, "every request, once: {record:#?}");
    assert!(
        !std::fs::read_to_string(proxy.dir.path().join("network.jsonl"))
            .unwrap()
            .contains("token=abc")
    );
}

#[test]
fn proxy_https_is_intercepted_and_each_request_inside_is_checked() {
    let up = Upstream::start();
    let proxy = Proxy::start(
        &policy_up_get_only(&up),
        &up.ca_pem,
        &["--test-loopback", UP, "--test-loopback", OTHER],
    );
    let port = up.https.port();
    let url = |host: &str, path: &str| format!("https://{host}:{port}{path}");

    // Two requests in one tunnel: both through, the leaf from the run's CA.
    let got = proxy.curl(&[&url(UP, "/one"), &url(UP, "/two")]);
    assert_eq!(
        got.ok().stdout,
        format!("GET /one host={UP}:{port} body=0\nGET /two host={UP}:{port} body=0\n")
    );
    // After interception, the method policy still holds: POST where only GET is allowed.
    let post = proxy.curl(&["-i", "-d", "payload", &url(UP, "/upload")]);
    post.blocked("method");
    // A host with no methods listed takes POST.
    let got = proxy.curl(&["-d", "abc", &url(OTHER, "/upload")]);
    assert_eq!(
        got.ok().stdout,
        format!("POST /upload host={OTHER}:{port} body=3\n")
    );
    // Refused at CONNECT, before any tunnel: curl shows the proxy's answer on stderr.
    let denied = proxy.curl(&["-v", &url("denied.example.com", "/x")]);
    assert_ne!(denied.code, 0);
    denied.blocked("denied");
    proxy
        .curl(&["-v", &url("nowhere.example.com", "/x")])
        .blocked("not-allowed");
    proxy
        .curl(&["-v", "-k", &url("127.0.0.1", "/x")])
        .blocked("not-allowed");
    // The proxy's certificate is from the run's CA: without trusting it, curl refuses.
    let untrusted = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-x",
            &format!("http://{}", proxy.address),
        ])
        .arg(url(UP, "/untrusted"))
        .env("CURL_CA_BUNDLE", proxy.dir.path().join("bundle.pem"))
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(60), "{untrusted:?}");

    let record = proxy.record();
    for path in ["/one", "/two"] {
        let l = lines_for(&record, "GET", path);
        assert_eq!(l.len(), 1, "{path}: {record:#?}");
        assert_eq!(l[0]["scheme"], "https");
        assert_eq!(l[0]["decision"], "allowed");
        assert_eq!(l[0]["status"], 200);
    }
    let upload: Vec<_> = lines_for(&record, "POST", "/upload");
    assert_eq!(upload.len(), 2);
    assert_eq!(upload[0]["reason"], "method");
    assert_eq!(upload[1]["decision"], "allowed");
    assert_eq!(upload[1]["host"], OTHER);
    assert_eq!(upload[1]["bytes_up"], 3);
    let connects: Vec<_> = record.iter().filter(|l| l["method"] == "CONNECT").collect();
    let reasons: Vec<_> = connects.iter().map(|l| l["reason"].clone()).collect();
    assert!(reasons.contains(&"denied".into()), "{connects:#?}");
    assert!(reasons.contains(&"not-allowed".into()), "{connects:#?}");
    assert!(reasons.contains(&"ip-literal".into()), "{connects:#?}");
    // The untrusted attempt: allowed at CONNECT, the agent's own TLS failed, on record.
    assert!(
        connects.iter().any(|l| l["decision"] == "allowed"
            && l["detail"]
                .as_str()
                .unwrap_or("")
                .contains("TLS handshake with the agent")),
        "{connects:#?}"
    );

    // Only the certificate is on disk: the CA key stayed in the proxy's memory.
    let files: Vec<_> = std::fs::read_dir(proxy.dir.path().join("ca"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec!["ca.pem"]);
    for entry in std::fs::read_dir(proxy.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!text.contains("PRIVATE KEY"), "{}", path.display());
        }
    }
}

#[test]
fn proxy_refuses_a_tls_name_or_host_other_than_the_connect_target() {
    let up = Upstream::start();
    let proxy = Proxy::start(
        &policy_up_get_only(&up),
        &up.ca_pem,
        &["--test-loopback", UP],
    );
    let port = up.https.port();
    // CONNECT up.example.com, TLS name denied.example.com.
    let sni = proxy.curl(&[
        "-i",
        "--connect-to",
        &format!("denied.example.com:{port}:{UP}:{port}"),
        &format!("https://denied.example.com:{port}/sni"),
    ]);
    sni.blocked("not-allowed");
    assert!(
        sni.stdout
            .contains("the TLS name denied.example.com is not the CONNECT target up.example.com"),
        "{sni:?}"
    );
    // TLS name right, Host header another host.
    let host = proxy.curl(&[
        "-i",
        "-H",
        "Host: denied.example.com",
        &format!("https://{UP}:{port}/host"),
    ]);
    host.blocked("not-allowed");
    let record = proxy.record();
    assert_eq!(
        lines_for(&record, "GET", "/sni")[0]["reason"],
        "sni-mismatch"
    );
    assert_eq!(
        lines_for(&record, "GET", "/host")[0]["reason"],
        "host-mismatch"
    );
}

#[test]
fn proxy_refuses_names_that_resolve_to_loopback_unless_the_test_opts_in() {
    let up = Upstream::start();
    // `*`: every public host. localhost resolves (through the system resolver) to loopback.
    let every = r#"{"allow":[{"target":"*"}]}"#;
    let proxy = Proxy::start(every, &up.ca_pem, &[]);
    let http = format!("http://localhost:{}/loop", up.http.port());
    let https = format!("https://localhost:{}/loop", up.https.port());
    let refused = proxy.curl(&["-i", &http]);
    refused.blocked("private-address");
    assert!(
        refused.stdout.contains("is a loopback address"),
        "{refused:?}"
    );
    proxy.curl(&["-v", &https]).blocked("private-address");
    let record = proxy.record();
    assert_eq!(record.len(), 2, "{record:#?}");
    assert!(record.iter().all(|l| l["reason"] == "private-address"));
    drop(proxy);

    // The test-only route, for that name only.
    let proxy = Proxy::start(every, &up.ca_pem, &["--test-loopback", "localhost"]);
    let got = proxy.curl(&[&http]);
    assert_eq!(
        got.ok().stdout,
        format!("GET /loop host=localhost:{} body=0\n", up.http.port())
    );
}

#[test]
fn proxy_verifies_upstreams_against_the_bundle_it_is_given() {
    let up = Upstream::start();
    // A bundle holding some other CA: the test server's certificate is not trusted.
    let other = Upstream::start();
    let proxy = Proxy::start(
        &policy_up_get_only(&up),
        &other.ca_pem,
        &["--test-loopback", UP],
    );
    let got = proxy.curl(&["-i", &format!("https://{UP}:{}/x", up.https.port())]);
    assert!(got.stdout.contains("HTTP/1.1 502 Bad Gateway"), "{got:?}");
    assert!(
        !got.stdout
            .to_ascii_lowercase()
            .contains("x-airlock-blocked"),
        "{got:?}"
    );
    let record = proxy.record();
    assert_eq!(record[0]["decision"], "allowed");
    assert_eq!(record[0]["status"], 502);
    assert!(
        record[0]["detail"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{record:#?}"
    );
}

#[test]
fn proxy_listens_on_a_unix_socket() {
    let up = Upstream::start();
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("proxy.sock");
    let listen = format!("unix:{}", sock.display());
    let proxy = Proxy::start(
        &policy_up_get_only(&up),
        &up.ca_pem,
        &["--listen", &listen, "--test-loopback", UP],
    );
    assert_eq!(proxy.address, listen);
    // What the agent's container will have: a forwarder from its loopback to the socket.
    let mut proxy = proxy;
    proxy.address = forward_to(&sock).to_string();
    let got = proxy.curl(&[&format!("http://{UP}:{}/sock", up.http.port())]);
    assert_eq!(
        got.ok().stdout,
        format!("GET /sock host={UP}:{} body=0\n", up.http.port())
    );
    let got = proxy.curl(&[&format!("https://{UP}:{}/sock", up.https.port())]);
    assert!(got.ok().stdout.starts_with("GET /sock"));
    assert_eq!(proxy.record().len(), 2);
}

#[test]
fn proxy_refuses_a_bad_policy_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.json");
    std::fs::write(&policy, r#"{"allow":[{"target":"a*.example.com"}]}"#).unwrap();
    let out = Command::new(airlock_bin())
        .arg("proxy")
        .arg("--policy")
        .arg(&policy)
        .args(["--listen", "127.0.0.1:0", "--record"])
        .arg(dir.path().join("r.jsonl"))
        .arg("--ca-dir")
        .arg(dir.path().join("ca"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("\"a*.example.com\" is not a valid wildcard"),
        "{err}"
    );
    assert!(err.contains("  fix: "), "{err}");
    // The test-only flag is not in the help an environment author reads.
    let help = Command::new(airlock_bin())
        .args(["proxy", "--help"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("test-loopback"));
    assert!(!Path::new(&dir.path().join("ca/ca.pem")).exists());
}

/// A loopback TCP port whose connections are relayed to the Unix socket `sock`.
fn forward_to(sock: &Path) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sock = sock.to_path_buf();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let Ok(unix) = std::os::unix::net::UnixStream::connect(&sock) else {
                continue;
            };
            let (mut tcp_r, mut unix_w) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
            let (mut unix_r, mut tcp_w) = (unix, tcp);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tcp_r, &mut unix_w);
                let _ = unix_w.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut unix_r, &mut tcp_w);
                let _ = tcp_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}
