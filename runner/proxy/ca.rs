//! The per-run certificate authority that lets the proxy read HTTPS.
//!
//! Made when the proxy starts, in memory: the key is generated here, signs leaf certificates
//! here, and is never serialised, written or returned, so it exists only inside the proxy's
//! process and is gone when the proxy ends. What leaves is the certificate ([`Ca::cert_pem`],
//! [`Ca::write_cert`]): the agent trusts it for the run, and nothing else can sign with it.
//!
//! A leaf is made per TLS name the agent asks for (the CONNECT target, or the SNI name when
//! it differs, so a refused mismatch can still answer a readable 403) and cached with the
//! server configuration built around it. All leaves share one key made at start-up: a leaf
//! key protects nothing the CA key doesn't, and one ECDSA key per host would only cost time.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

use super::{tls_provider, ProxyError};

/// How long the CA and its leaves are valid: longer than any run's agent phase is allowed to
/// last by default, short enough that a leaked certificate soon means nothing.
const VALIDITY: time::Duration = time::Duration::days(7);

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    leaf_key: KeyPair,
    configs: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Ca {
    /// The key is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn cert_error(e: rcgen::Error) -> ProxyError {
    ProxyError::Ca(e.to_string())
}

impl Ca {
    /// A fresh CA: a new P-256 key and a self-signed certificate, allowed to sign leaf
    /// certificates only (path length 0).
    pub fn generate() -> Result<Ca, ProxyError> {
        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let id: u32 = rand::random();
        dn.push(
            DnType::CommonName,
            format!("airlock egress proxy, one run ({id:08x})"),
        );
        dn.push(DnType::OrganizationName, "airlock");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + VALIDITY;
        let key = KeyPair::generate().map_err(cert_error)?;
        let cert = params.self_signed(&key).map_err(cert_error)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            leaf_key: KeyPair::generate().map_err(cert_error)?,
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM: what the agent trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Write the certificate (only the certificate) as `DIR/ca.pem`, readable by all.
    pub fn write_cert(&self, dir: &Path) -> Result<PathBuf, ProxyError> {
        let path = dir.join("ca.pem");
        let fail = |source| ProxyError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let tmp = dir.join(".ca.pem.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(fail)?;
        f.write_all(self.cert_pem.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        Ok(path)
    }

    /// The TLS server configuration that presents a leaf for `name` (a DNS name or an IP
    /// address), made on first use.
    pub fn server_config(&self, name: &str) -> Result<Arc<ServerConfig>, ProxyError> {
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = configs.get(name) {
            return Ok(c.clone());
        }
        let leaf = self.leaf(name)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(tls_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Ca(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![leaf], key)
            .map_err(|e| ProxyError::Ca(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        // Bounded: an agent naming endless hosts must not grow the proxy without end.
        if configs.len() >= 4096 {
            configs.clear();
        }
        configs.insert(name.to_string(), config.clone());
        Ok(config)
    }

    fn leaf(&self, name: &str) -> Result<CertificateDer<'static>, ProxyError> {
        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(cert_error)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + VALIDITY;
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(cert_error)?;
        Ok(cert.der().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_leaves_and_the_key_does_not() {
        let ca = Ca::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = ca.write_cert(dir.path()).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, ca.cert_pem());
        assert!(written.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!written.contains("PRIVATE KEY"));
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "only ca.pem");
        assert_eq!(format!("{ca:?}"), "Ca { .. }");
    }

    #[test]
    fn leaves_are_made_once_per_name() {
        let ca = Ca::generate().unwrap();
        let a = ca.server_config("a.example.com").unwrap();
        let b = ca.server_config("a.example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &ca.server_config("10.0.0.5").unwrap()));
        // Two CAs are two different authorities.
        assert_ne!(Ca::generate().unwrap().cert_pem(), ca.cert_pem());
    }
}
