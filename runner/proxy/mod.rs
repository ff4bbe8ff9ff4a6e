//! The egress proxy: the only way out of an agent phase with an allowlist.
//!
//! An HTTP/1.1 forward proxy that decides every request by the run's [`policy::Policy`], reads
//! HTTPS by terminating TLS with a per-run CA ([`ca`]), verifies upstream certificates against
//! the CA bundle its caller names (the host's bundle by default: these machines reach the
//! internet through an inspecting proxy of their own, whose CA only that bundle holds), and
//! writes every request to a JSON-lines record ([`record`]).
//!
//! It is a component on its own: `airlock proxy` runs it from the airlock binary (so a run can
//! start it in a container of its own), listening on a TCP address or a Unix socket (a socket
//! in a volume shared with the agent's container, which then needs no network interface at
//! all: `shared/reference/engine-facts.md`, "Network isolation").
//!
//! - [`policy`]: the decision (deny wins, then allow; addresses after resolution; methods);
//! - [`upstream`]: resolving names (pins, the test-only loopback route) and connecting;
//! - [`server`]: the listener, plain HTTP forwarding, CONNECT and TLS interception;
//! - [`ca`]: the per-run CA and the leaf certificates it signs;
//! - [`record`]: the request record;
//! - [`image`]: the proxy's own image (this binary and its libraries);
//! - [`registries`]: what the `host-registries` preset stands for on this host;
//! - [`truststore`]: the run's CA for the JVM.
//!
//! How a run puts it between the agent and the network is `crate::run::egress`.
//!
//! Why hyper + rustls + rcgen rather than a MITM library: the library we looked at bundles
//! Mozilla's roots as its upstream trust and hides the order of the checks; here the order is
//! the policy's (CONNECT target first, before any tunnel opens; SNI and Host against it; the
//! method on each request inside) and the upstream trust is exactly the bundle named.

pub mod ca;
pub mod image;
pub mod policy;
pub mod record;
pub mod registries;
pub mod server;
pub mod truststore;
pub mod upstream;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::CipherSuite;

pub use policy::Policy;
pub use server::{Listener, Proxy};

/// The host bundle upstream certificates are checked against unless the caller names another.
pub const HOST_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the proxy needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// PEM bundle of the CAs trusted upstream.
    pub upstream_ca: PathBuf,
    /// The JSON-lines record, appended to.
    pub record: PathBuf,
    /// Where the run's CA certificate is written (`ca.pem`; never the key).
    pub ca_dir: PathBuf,
    /// Names routed to 127.0.0.1 with loopback allowed for them: the only way a test reaches
    /// a server it started on this machine's loopback. An environment can't set it: the policy
    /// has no such field and its entries refuse loopback; only the proxy's hidden command-line
    /// flag does.
    pub test_loopback: BTreeSet<String>,
    /// Networks of the machine the proxy serves (the engine host's own addresses and the
    /// networks they are on), refused like private addresses unless an IP/CIDR entry names
    /// them.
    pub local_networks: Vec<crate::environment::Cidr>,
}

/// Where the proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/run/proxy/proxy.sock".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(Listen::Tcp)
            .map_err(|_| format!("{s:?} is neither ADDRESS:PORT nor unix:PATH"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot make the run's certificate authority: {0}")]
    Ca(String),
    #[error("cannot write {}: {source}\n  fix: give a writable folder and file (--ca-dir, --record)", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the policy {}: {message}\n  fix: the policy is the JSON airlock writes from an environment's agent.network (allow, deny, hosts)", path.display())]
    Policy { path: PathBuf, message: String },
    #[error("cannot use the upstream CA bundle {}: {message}\n  fix: pass --upstream-ca FILE, a PEM file of the CAs to trust upstream (the host's is {HOST_BUNDLE})", path.display())]
    Bundle { path: PathBuf, message: String },
    #[error("cannot listen on {listen}: {source}\n  fix: pick a free ADDRESS:PORT, or a unix:PATH in a writable folder")]
    Listen {
        listen: Listen,
        source: std::io::Error,
    },
}

impl Policy {
    /// Read a policy file (JSON, entries read back with the environment's parsers).
    pub fn read(path: &Path) -> Result<Policy, ProxyError> {
        let fail = |message: String| ProxyError::Policy {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
    }
}

/// The one crypto provider every TLS configuration here is built with (ring), also installed
/// as the process default once, so nothing in the process can meet rustls without one.
pub fn tls_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::ring::default_provider();
            // AES-128-GCM first: every byte of an intercepted tunnel is decrypted and
            // encrypted again here, and it is the cheapest strong suite (AES-NI).
            provider.cipher_suites.sort_by_key(|s| {
                !matches!(
                    s.suite(),
                    CipherSuite::TLS13_AES_128_GCM_SHA256
                        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                )
            });
            let provider = Arc::new(provider);
            // Err only when a default is already installed: that one stays.
            let _ = CryptoProvider::install_default((*provider).clone());
            provider
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_comes_first() {
        let suites = &tls_provider().cipher_suites;
        assert_eq!(suites[0].suite(), CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(
            suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:3128".parse::<Listen>(),
            Ok(Listen::Tcp("127.0.0.1:3128".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/p.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/p.sock".into()))
        );
        assert!("unix:".parse::<Listen>().is_err());
        assert!("localhost:3128".parse::<Listen>().is_err());
    }
}
