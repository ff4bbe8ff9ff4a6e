//! The way out: resolving a destination once, and connecting to exactly what was checked.
//!
//! The proxy resolves names itself (a pin from the environment's `hosts`, the test-only
//! loopback route, else the system resolver), hands the answer to the policy, and connects to
//! those addresses and no others: a rebinding DNS server gets one answer in, and it is the one
//! that was checked. TLS to the upstream is verified against the bundle the caller named,
//! with the name the agent asked for.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::policy::{Grant, Host, Resolution};
use super::{tls_provider, ProxyError};

/// How long one lookup or one connection attempt may take.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Upstream {
    tls: Arc<ClientConfig>,
    test_loopback: BTreeSet<String>,
    pub(super) local: Vec<crate::environment::Cidr>,
}

impl Upstream {
    /// Trust the PEM certificates in `bundle` upstream.
    pub fn new(
        bundle: &Path,
        test_loopback: BTreeSet<String>,
        local: Vec<crate::environment::Cidr>,
    ) -> Result<Upstream, ProxyError> {
        let fail = |message: String| ProxyError::Bundle {
            path: bundle.to_path_buf(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(bundle)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| fail(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(fail("it holds no usable certificate".into()));
        }
        let mut tls = ClientConfig::builder_with_provider(tls_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Upstream {
            tls: Arc::new(tls),
            test_loopback,
            local,
        })
    }

    /// The addresses to check and then connect to, and how they were found.
    pub async fn resolve(&self, grant: &Grant<'_>) -> Result<(Vec<IpAddr>, Resolution), String> {
        let name = match &grant.host {
            Host::Ip(ip) => return Ok((vec![*ip], Resolution::Dns)),
            Host::Name(n) => n,
        };
        if let Some(ip) = grant.pin() {
            return Ok((vec![ip], Resolution::Pinned));
        }
        if self.test_loopback.contains(name) {
            return Ok((
                vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
                Resolution::TestLoopback,
            ));
        }
        let found = tokio::time::timeout(
            TIMEOUT,
            tokio::net::lookup_host((name.as_str(), grant.port)),
        )
        .await
        .map_err(|_| format!("looking up {name} timed out"))?
        .map_err(|e| format!("cannot resolve {name}: {e}"))?;
        let mut addrs: Vec<IpAddr> = Vec::new();
        for a in found {
            if !addrs.contains(&a.ip()) {
                addrs.push(a.ip());
            }
        }
        if addrs.is_empty() {
            return Err(format!("{name} has no address"));
        }
        Ok((addrs, Resolution::Dns))
    }

    /// A TCP connection to the first of `addrs` that answers.
    pub async fn tcp(&self, addrs: &[IpAddr], port: u16) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for ip in addrs {
            let addr = SocketAddr::new(*ip, port);
            match tokio::time::timeout(TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = io::Error::new(e.kind(), format!("{addr}: {e}")),
                Err(_) => {
                    last = io::Error::new(io::ErrorKind::TimedOut, format!("{addr}: timed out"))
                }
            }
        }
        Err(last)
    }

    /// TLS over `tcp`, verified for `host` against the upstream bundle.
    pub async fn tls(&self, tcp: TcpStream, host: &Host) -> io::Result<TlsStream<TcpStream>> {
        let name = match host {
            Host::Name(n) => ServerName::try_from(n.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        tokio::time::timeout(
            TIMEOUT,
            TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}
