//! The run's CA as a Java truststore, so JVM tools (Maven, Gradle, sbt) trust the proxy too.
//!
//! The JVM reads neither the system bundle nor `SSL_CERT_FILE`; it reads a keystore named by
//! `-Djavax.net.ssl.trustStore` (set in `JAVA_TOOL_OPTIONS`). A truststore holds only public
//! certificates, so the old JKS format, which every JVM still reads when told its type, is
//! enough and is simple to write exactly: a header, one trusted-certificate entry per
//! certificate, and a SHA-1 over the password (UTF-16BE), the phrase "Mighty Aphrodite" and
//! everything before it (the format's integrity check, not a secret: the password is the
//! JVM's well-known default).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha1::{Digest, Sha1};

/// The truststore's password, the JVM's default one (it protects nothing in a truststore).
pub const PASSWORD: &str = "changeit";

/// A JKS truststore holding every certificate of the PEM bundle `pem`, aliased
/// `airlock-0`, `airlock-1`, ….
pub fn jks(pem: &[u8], created_ms: u64) -> Result<Vec<u8>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in the bundle".into());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0xFEED_FEEDu32.to_be_bytes());
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&(certs.len() as u32).to_be_bytes());
    for (i, cert) in certs.iter().enumerate() {
        out.extend_from_slice(&2u32.to_be_bytes()); // a trusted certificate
        utf(&mut out, &format!("airlock-{i}"));
        out.extend_from_slice(&created_ms.to_be_bytes());
        utf(&mut out, "X.509");
        out.extend_from_slice(&(cert.len() as u32).to_be_bytes());
        out.extend_from_slice(cert);
    }
    let mut digest = Sha1::new();
    for unit in PASSWORD.encode_utf16() {
        digest.update(unit.to_be_bytes());
    }
    digest.update(b"Mighty Aphrodite");
    digest.update(&out);
    out.extend_from_slice(&digest.finalize());
    Ok(out)
}

/// Java's `writeUTF` for ASCII text: a 16-bit length, then the bytes.
fn utf(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JDK's own `keytool` reads the truststore, with its check, as one trusted entry.
    #[test]
    fn keytool_reads_it() {
        let ca = crate::proxy::ca::Ca::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem = std::fs::read(ca.write_cert(dir.path()).unwrap()).unwrap();
        let store = dir.path().join("truststore.jks");
        std::fs::write(&store, jks(&pem, 1_700_000_000_000).unwrap()).unwrap();
        let out = match std::process::Command::new("keytool")
            .args([
                "-list",
                "-storetype",
                "JKS",
                "-storepass",
                PASSWORD,
                "-keystore",
            ])
            .arg(&store)
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("keytool not installed: the JKS layout is checked by its bytes only");
                let bytes = std::fs::read(&store).unwrap();
                assert_eq!(
                    &bytes[..12],
                    &[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 1]
                );
                return;
            }
            Err(e) => panic!("keytool: {e}"),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Your keystore contains 1 entry"), "{text}");
        assert!(
            text.contains("airlock-0") && text.contains("trustedCertEntry"),
            "{text}"
        );
        // A wrong password fails the format's check: the digest is really verified.
        let bad = std::process::Command::new("keytool")
            .args([
                "-list",
                "-storetype",
                "JKS",
                "-storepass",
                "wrong-pass",
                "-keystore",
            ])
            .arg(&store)
            .output()
            .unwrap();
        assert!(!bad.status.success());
    }

    #[test]
    fn an_empty_bundle_is_refused() {
        assert!(jks(b"", 0).is_err());
    }
}
