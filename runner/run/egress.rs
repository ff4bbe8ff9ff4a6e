//! Beside step 2: the agent's only way out, when its environment has an allowlist.
//!
//! The agent container stays exactly as sealed as with `network: off` (`--network none`,
//! every capability dropped): it gets no interface to misuse, so there is no path around the
//! proxy to close. What it gets instead (design and measurements: `engine-facts.md`, "Network
//! isolation"):
//!
//! - a **proxy container** (`airlock proxy`, from the proxy image: this binary and its
//!   libraries, independent of the environment's image) on a bridge network of its own,
//!   holding no secret, listening on a Unix socket in a per-run volume; it is started while
//!   the setup phase runs, so the agent phase doesn't wait for it;
//! - that volume, mounted read-only in the agent container at [`SOCKET_DIR`], and the static
//!   `airlock-forward` ([`FORWARD`]) as the agent's command, which exposes the socket on the
//!   agent's own loopback ([`LISTEN`]) and then becomes the task's command;
//! - the run's CA (made inside the proxy, its key never leaves that process) trusted where
//!   tools look: the system bundle, the variables common tools read, a JVM truststore; and the
//!   proxy variables, for the JVM too.
//!
//! Every request the proxy decides is one JSON line on its standard output; airlock redacts
//! each into the record's `network.jsonl` as it comes and counts them for the report and the
//! console's summary line. A proxy that dies mid-run leaves the agent's requests failing at
//! once (the forwarder closes each connection it can't pass on), and the report says so.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::outcome::RunError;
use super::prepare::{self, Ready};
use super::Ctx;
use crate::engine::{labels, Chunk, ContainerSpec, Engine, EngineError, Network, VolumeMount};
use crate::environment::{AllowEntry, Allowlist, CaSource};
use crate::proxy::{self, registries, truststore, Policy};
use crate::record::RequestsReport;
use crate::scan::SecretSet;

/// The static forwarder, carried in this binary.
const FORWARD_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/airlock-forward"));

/// Where the proxy's socket volume is mounted, in both containers.
pub const SOCKET_DIR: &str = "/run/airlock";
/// The proxy's socket.
pub const SOCKET: &str = "/run/airlock/proxy.sock";
/// Where the agent's HTTP clients find the proxy.
pub const LISTEN: &str = "127.0.0.1:3128";
/// The forwarder, in the agent container.
pub const FORWARD: &str = "/etc/airlock/forward";
/// The run's CA alone, and with what the proxy trusts upstream.
const CA_FILE: &str = "/etc/airlock/proxy-ca.pem";
const BUNDLE_FILE: &str = "/etc/airlock/ca-bundle.pem";
const TRUSTSTORE_FILE: &str = "/etc/airlock/truststore.jks";
/// The system bundle most images' tools read (Debian's path; others symlink to it or read
/// `SSL_CERT_FILE`).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the policy and the upstream bundle are put in the proxy's container.
const PROXY_ETC: &str = "/etc/airlock-proxy";
/// How long the proxy may take to say it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Memory for the proxy container (its goal is far less: bench/run section 7).
const PROXY_MEMORY: u64 = 256 << 20;

/// The proxy of one run, running.
pub struct Egress {
    container: String,
    volume: String,
    ca_pem: Vec<u8>,
    upstream_pem: Vec<u8>,
    reader: JoinHandle<Tally>,
    /// The policy's `allow` entries as the report shows them (the preset expanded).
    allowed: Vec<String>,
}

/// What the proxy's record said, counted.
#[derive(Debug, Default)]
struct Tally {
    allowed: u64,
    denied: u64,
    /// `METHOD host: reason`, distinct, in order of first refusal.
    refusals: Vec<String>,
    /// Lines that were not a record entry (the proxy's own messages).
    other: u64,
}

/// Start the proxy for `list`: its network, its socket volume, its container; ready when
/// this returns.
pub async fn start(run: &Ctx<'_>, ready: &Ready, list: &Allowlist) -> Result<Egress, RunError> {
    let engine = run.engine;
    let run_id = &run.names.run_id;
    let registries = if list.allow.contains(&AllowEntry::HostRegistries) {
        tokio::task::spawn_blocking(registries::on_this_host)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let policy = Policy::from_allowlist(list, &registries);
    let allowed = policy.allow.iter().map(|r| r.target.to_string()).collect();
    let upstream_pem = upstream_bundle(&list.ca_certificates)?;
    let labels = labels::for_run(run_id, "proxy", &ready.owner);
    let network = format!("airlock-{run_id}-egress");
    let volume = format!("airlock-{run_id}-proxy");
    let mut volume_labels = labels.clone();
    if run.opts.keep {
        // A kept agent container mounts it; it goes with the kept run.
        volume_labels.insert(labels::KEPT.into(), "true".into());
    }
    let image = proxy::image::image().map_err(RunError::Engine)?;
    futures_util::future::try_join(
        engine.create_network(&network, &labels),
        engine.create_volume(&volume, &volume_labels),
    )
    .await?;
    let mut cmd: Vec<String> = [
        proxy::image::BINARY,
        "proxy",
        "--policy",
        "/etc/airlock-proxy/policy.json",
        "--upstream-ca",
        "/etc/airlock-proxy/upstream.pem",
        "--listen",
        &format!("unix:{SOCKET}"),
        "--record",
        "/dev/stdout",
        "--ca-dir",
        SOCKET_DIR,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for net in engine_host_networks(engine.host()) {
        cmd.extend(["--local-network".to_string(), net]);
    }
    let spec = ContainerSpec {
        name: run.names.container("proxy"),
        image,
        cmd,
        user: Some("0:0".into()),
        labels: labels.clone(),
        network: Network::Named(network),
        volumes: vec![VolumeMount {
            volume: volume.clone(),
            target: SOCKET_DIR.into(),
            read_only: false,
            fill_from_image: false,
        }],
        locked_down: true,
        memory: Some(PROXY_MEMORY),
        pids: Some(256),
        ..ContainerSpec::default()
    };
    let id = engine.create_container(&spec).await?;
    let policy_json = serde_json::to_vec_pretty(&policy)
        .map_err(|e| RunError::Internal(format!("the proxy's policy: {e}")))?;
    let files = tar_of(&[
        (&format!("{PROXY_ETC}/policy.json"), &policy_json, 0o444),
        (&format!("{PROXY_ETC}/upstream.pem"), &upstream_pem, 0o444),
    ])?;
    engine.upload(&id, "/", byte_stream(files)).await?;
    let attached = engine.attach(&id, false).await?;
    engine.start_container(&id).await?;
    let mut output = attached.output;
    let mut log = run.log("proxy")?;
    let secrets = ready.scanner.clone();
    // Its first line says it listens; anything before that is its error.
    let mut out = Lines::default();
    let listening = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(Chunk::Stdout(b)) => {
                    out.push(&b);
                    if let Some(line) = out.next_line() {
                        if line.starts_with(b"airlock proxy: listening on ") {
                            return Ok(());
                        }
                    }
                }
                Ok(Chunk::Stderr(b)) => log.write(&redact(&secrets, &b)),
                Err(e) => return Err(e),
            }
        }
        Err(EngineError::Other {
            doing: "starting the egress proxy".into(),
            message: "it ended before it listened (see proxy.log in the run record)".into(),
        })
    })
    .await;
    match listening {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(RunError::Engine(e)),
        Err(_) => {
            return Err(RunError::Internal(format!(
                "the egress proxy did not listen within {} s (see proxy.log in the run record)",
                READY_TIMEOUT.as_secs()
            )))
        }
    }
    let ca_pem = download_file(engine, &id, &format!("{SOCKET_DIR}/ca.pem")).await?;
    let record_path = run.record.path("network.jsonl");
    let reader = tokio::spawn(read_record(output, out, log, secrets, record_path));
    Ok(Egress {
        container: id,
        volume,
        ca_pem,
        upstream_pem,
        reader,
        allowed,
    })
}

impl Egress {
    /// The agent container's mount of the socket volume (read-only).
    pub fn mount(&self) -> VolumeMount {
        VolumeMount {
            volume: self.volume.clone(),
            target: SOCKET_DIR.into(),
            read_only: true,
            fill_from_image: false,
        }
    }

    /// The agent's command: the forwarder first.
    pub fn command(&self, command: &[String]) -> Vec<String> {
        let mut cmd = vec![
            FORWARD.to_string(),
            SOCKET.into(),
            LISTEN.into(),
            "--".into(),
        ];
        cmd.extend(command.iter().cloned());
        cmd
    }

    /// The agent's variables for the proxy and the CA (after the environment's: these win).
    pub fn variables(&self) -> Vec<String> {
        agent_variables()
    }

    /// What is copied into the agent container before it starts: the forwarder, the CA
    /// alone and in bundles, the JVM truststore.
    pub fn files(&self) -> Result<Vec<u8>, RunError> {
        let mut bundle = self.ca_pem.clone();
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(&self.upstream_pem);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let jks = truststore::jks(&self.ca_pem, created)
            .map_err(|e| RunError::Internal(format!("the JVM truststore: {e}")))?;
        tar_of(&[
            (FORWARD, FORWARD_PROGRAM, 0o555),
            (CA_FILE, &self.ca_pem, 0o444),
            (BUNDLE_FILE, &bundle, 0o444),
            (TRUSTSTORE_FILE, &jks, 0o444),
            (SYSTEM_BUNDLE, &bundle, 0o444),
        ])
    }

    /// After the agent phase: stop the proxy, read the rest of its record, count. Returns the
    /// report and the console's summary line.
    pub async fn finish(self, engine: &dyn Engine) -> (RequestsReport, String) {
        let died = self.reader.is_finished();
        let _ = engine.stop_container(&self.container, 2).await;
        let tally = match tokio::time::timeout(Duration::from_secs(10), self.reader).await {
            Ok(Ok(t)) => t,
            _ => Tally::default(),
        };
        let report = RequestsReport {
            allowed: tally.allowed,
            denied: tally.denied,
            record: "network.jsonl".into(),
            proxy_died: died,
            allow: self.allowed,
        };
        (report, summary(&tally, died))
    }
}

/// The console's line: counts, and what was refused.
fn summary(t: &Tally, died: bool) -> String {
    let mut line = format!(
        "agent network: {} request{} allowed, {} denied",
        t.allowed,
        if t.allowed == 1 { "" } else { "s" },
        t.denied
    );
    if !t.refusals.is_empty() {
        const SHOWN: usize = 5;
        let mut shown: Vec<String> = t.refusals.iter().take(SHOWN).cloned().collect();
        if t.refusals.len() > SHOWN {
            shown.push(format!("{} more", t.refusals.len() - SHOWN));
        }
        line.push_str(&format!(" ({})", shown.join("; ")));
    }
    if died {
        line.push_str("; the proxy died during the agent phase, later requests failed");
    }
    line.push_str("; see network.jsonl");
    line
}

/// The variables the agent phase gets with an allowlist.
pub fn agent_variables() -> Vec<String> {
    let proxy = format!("http://{LISTEN}");
    let (host, port) = LISTEN.split_once(':').unwrap_or((LISTEN, "3128"));
    let no_proxy = "localhost,127.0.0.1,::1";
    let java = format!(
        "-Dhttp.proxyHost={host} -Dhttp.proxyPort={port} -Dhttps.proxyHost={host} -Dhttps.proxyPort={port} -Dhttp.nonProxyHosts=localhost|127.0.0.1 -Djavax.net.ssl.trustStore={TRUSTSTORE_FILE} -Djavax.net.ssl.trustStoreType=JKS -Djavax.net.ssl.trustStorePassword={}",
        truststore::PASSWORD
    );
    let mut vars = BTreeMap::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        vars.insert(name, proxy.clone());
    }
    for name in ["NO_PROXY", "no_proxy"] {
        vars.insert(name, no_proxy.to_string());
    }
    for name in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "CURL_CA_BUNDLE",
        "CARGO_HTTP_CAINFO",
        "GIT_SSL_CAINFO",
    ] {
        vars.insert(name, BUNDLE_FILE.to_string());
    }
    vars.insert("NODE_EXTRA_CA_CERTS", CA_FILE.to_string());
    vars.insert("JAVA_TOOL_OPTIONS", java);
    vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// What the proxy trusts upstream: the named sources, else the host's bundle.
fn upstream_bundle(sources: &[CaSource]) -> Result<Vec<u8>, RunError> {
    let mut pem = Vec::new();
    let host = [CaSource::Host];
    let sources = if sources.is_empty() {
        &host[..]
    } else {
        sources
    };
    for (_, data) in prepare::read_ca(sources)? {
        pem.extend_from_slice(&data);
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
    }
    Ok(pem)
}

/// The engine host's own addresses with their prefixes (`IP/PREFIX`), when the engine is on
/// this machine: the proxy refuses them and the networks they are on like private ones (a host
/// with a public address, or its LAN neighbours, would otherwise be reachable through it).
/// Loopback is left out: the proxy refuses it anyway, and it would be the proxy's own.
fn engine_host_networks(engine_host: &str) -> Vec<String> {
    if !engine_host.starts_with("unix://") {
        return Vec::new();
    }
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut nets: Vec<String> = addrs
        .filter_map(|a| {
            let (addr, mask) = (a.address?, a.netmask?);
            let (ip, prefix) =
                if let (Some(v4), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                    (IpAddr::V4(v4.ip()), u32::from(m.ip()).count_ones())
                } else {
                    let (v6, m) = (addr.as_sockaddr_in6()?, mask.as_sockaddr_in6()?);
                    (IpAddr::V6(v6.ip()), u128::from(m.ip()).count_ones())
                };
            (!ip.is_loopback()).then(|| format!("{ip}/{prefix}"))
        })
        .collect();
    nets.sort();
    nets.dedup();
    nets
}

/// Whole lines out of a byte stream.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
    }

    fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.partial.iter().position(|&b| b == b'\n')?;
        let rest = self.partial.split_off(end + 1);
        let mut line = std::mem::replace(&mut self.partial, rest);
        line.pop();
        Some(line)
    }
}

/// The proxy's record, line by line, redacted into `network.jsonl`, until the proxy ends.
async fn read_record(
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<Chunk, EngineError>> + Send>,
    >,
    mut lines: Lines,
    mut log: crate::record::CappedLog,
    secrets: std::sync::Arc<SecretSet>,
    path: std::path::PathBuf,
) -> Tally {
    let mut tally = Tally::default();
    let mut file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("cannot write {}: {e}", path.display());
            None
        }
    };
    let mut take = |line: Vec<u8>, tally: &mut Tally| {
        // Whole lines are redacted one by one: a record line never holds a partial secret.
        let clean = redact(&secrets, &line);
        count(&clean, tally);
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(&clean).and_then(|()| f.write_all(b"\n"));
        }
    };
    while let Some(line) = lines.next_line() {
        take(line, &mut tally);
    }
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(Chunk::Stdout(b)) => {
                lines.push(&b);
                while let Some(line) = lines.next_line() {
                    take(line, &mut tally);
                }
            }
            Ok(Chunk::Stderr(b)) => log.write(&redact(&secrets, &b)),
            Err(_) => break,
        }
    }
    if !lines.partial.is_empty() {
        let rest = std::mem::take(&mut lines.partial);
        take(rest, &mut tally);
    }
    log.finish();
    tally
}

/// Count one record line.
fn count(line: &[u8], t: &mut Tally) {
    let Ok(entry) = serde_json::from_slice::<serde_json::Value>(line) else {
        t.other += 1;
        return;
    };
    match entry.get("decision").and_then(|d| d.as_str()) {
        Some("allowed") => t.allowed += 1,
        Some("denied") => {
            t.denied += 1;
            let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap_or("?");
            let refusal = format!("{} {}: {}", field("method"), field("host"), field("reason"));
            if !t.refusals.contains(&refusal) {
                t.refusals.push(refusal);
            }
        }
        _ => t.other += 1,
    }
}

/// `data` redacted as a whole.
fn redact(secrets: &SecretSet, data: &[u8]) -> Vec<u8> {
    let mut r = secrets.redactor();
    let mut out = r.push(data);
    out.extend(r.finish());
    out
}

fn tar_of(files: &[(&str, &[u8], u32)]) -> Result<Vec<u8>, RunError> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path.trim_start_matches('/'), *data)
            .map_err(|e| RunError::Internal(format!("packing {path}: {e}")))?;
    }
    tar.into_inner()
        .map_err(|e| RunError::Internal(format!("packing files: {e}")))
}

pub(super) fn byte_stream(data: Vec<u8>) -> crate::engine::ByteStream {
    Box::pin(futures_util::stream::once(async move {
        Ok(bytes::Bytes::from(data))
    }))
}

/// One file out of a container, through the archive API.
async fn download_file(engine: &dyn Engine, id: &str, path: &str) -> Result<Vec<u8>, RunError> {
    let mut stream = engine.download(id, path);
    let mut tar_bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar_bytes.extend_from_slice(&chunk?);
    }
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let fail = |e: std::io::Error| RunError::Internal(format!("reading {path}: {e}"));
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        if entry.header().entry_type().is_file() {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).map_err(fail)?;
            return Ok(data);
        }
    }
    Err(RunError::Internal(format!("{path}: not in the archive")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_are_counted_and_refusals_listed_once() {
        let mut t = Tally::default();
        for line in [
            r#"{"decision":"allowed","method":"GET","host":"a.example.com"}"#,
            r#"{"decision":"denied","method":"POST","host":"uploads.example.org","reason":"methods"}"#,
            r#"{"decision":"denied","method":"POST","host":"uploads.example.org","reason":"methods"}"#,
            r#"{"decision":"denied","method":"GET","host":"evil.example","reason":"not allowed"}"#,
            "not json",
        ] {
            count(line.as_bytes(), &mut t);
        }
        assert_eq!((t.allowed, t.denied, t.other), (1, 3, 1));
        assert_eq!(
            summary(&t, false),
            "agent network: 1 request allowed, 3 denied (POST uploads.example.org: methods; GET evil.example: not allowed); see network.jsonl"
        );
    }

    #[test]
    fn lines_are_cut_at_newlines_only() {
        let mut l = Lines::default();
        l.push(b"one\ntw");
        assert_eq!(l.next_line().as_deref(), Some(&b"one"[..]));
        assert_eq!(l.next_line(), None);
        l.push(b"o\n");
        assert_eq!(l.next_line().as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn the_agent_gets_the_proxy_and_the_ca_for_every_common_tool() {
        let vars = agent_variables();
        for want in [
            "HTTP_PROXY=http://127.0.0.1:3128",
            "https_proxy=http://127.0.0.1:3128",
            "NO_PROXY=localhost,127.0.0.1,::1",
            "SSL_CERT_FILE=/etc/airlock/ca-bundle.pem",
            "PIP_CERT=/etc/airlock/ca-bundle.pem",
            "NODE_EXTRA_CA_CERTS=/etc/airlock/proxy-ca.pem",
            "GIT_SSL_CAINFO=/etc/airlock/ca-bundle.pem",
            "CARGO_HTTP_CAINFO=/etc/airlock/ca-bundle.pem",
            "REQUESTS_CA_BUNDLE=/etc/airlock/ca-bundle.pem",
        ] {
            assert!(
                vars.iter().any(|v| v == want),
                "{want} missing from {vars:?}"
            );
        }
        let java = vars
            .iter()
            .find(|v| v.starts_with("JAVA_TOOL_OPTIONS="))
            .unwrap();
        assert!(
            java.contains("-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128"),
            "{java}"
        );
        assert!(
            java.contains("-Djavax.net.ssl.trustStore=/etc/airlock/truststore.jks"),
            "{java}"
        );
    }
}
