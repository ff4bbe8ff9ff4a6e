//! age encryption and decryption, in memory.
//!
//! Values are small, so a whole file is encrypted into a buffer and written in one go (see
//! `atomic`), and decrypted into a zeroizing buffer sized from the ciphertext (the plaintext
//! is never longer), so the plaintext is never reallocated and never left behind in freed
//! memory. Files are written ASCII-armoured (readable diffs, safe in any text tool) and read
//! armoured or binary, as the age CLI writes either.

use std::io::{self, Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::x25519;
use zeroize::Zeroizing;

use super::identity::Identities;

/// Why a file did not decrypt.
#[derive(Debug)]
pub(crate) enum Failure {
    /// None of the identities is a recipient of the file.
    NotARecipient,
    /// The file is passphrase-encrypted (age -p).
    Passphrase,
    /// Not an age file, or damaged (truncated, altered); the reason never holds plaintext.
    Corrupt(String),
}

/// Encrypt `value` to every recipient, ASCII-armoured.
pub(crate) fn encrypt(value: &[u8], recipients: &[x25519::Recipient]) -> io::Result<Vec<u8>> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::with_capacity(value.len() * 2 + 512);
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)?;
    let mut writer = encryptor.wrap_output(armor)?;
    writer.write_all(value)?;
    // Both layers must be finished: the stream writes its last chunk, the armor its footer.
    writer.finish()?.finish()?;
    Ok(out)
}

/// Decrypt a whole file (armoured or binary).
pub(crate) fn decrypt(
    ciphertext: &[u8],
    identities: &Identities,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    // An armoured file checked out with CRLF line endings is still the same file.
    let normalized;
    let mut input = ciphertext;
    if input.starts_with(b"-----BEGIN") && input.windows(2).any(|w| w == b"\r\n") {
        normalized = input
            .iter()
            .copied()
            .filter(|&b| b != b'\r')
            .collect::<Vec<u8>>();
        input = &normalized;
    }
    let trimmed = input.trim_ascii_start();
    if !trimmed.starts_with(b"age-encryption.org/") && !trimmed.starts_with(b"-----BEGIN AGE") {
        return Err(Failure::Corrupt(
            "not an age file: it starts with neither the age header nor the armor line".to_string(),
        ));
    }
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(input))
        .map_err(|e| Failure::Corrupt(describe(&e)))?;
    if decryptor.is_scrypt() {
        return Err(Failure::Passphrase);
    }
    let mut reader = decryptor
        .decrypt(identities.as_age())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Failure::NotARecipient,
            other => Failure::Corrupt(describe(&other)),
        })?;
    // The plaintext is shorter than the ciphertext: one buffer of that size never grows.
    let mut buf = Zeroizing::new(vec![0u8; input.len() + 1]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(Failure::Corrupt("plaintext longer than the file".into()));
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Corrupt(describe(&e))),
        }
    }
    Ok(Zeroizing::new(buf[..len].to_vec()))
}

fn describe(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let text = text.trim();
    if text.is_empty() {
        "damaged".to_string()
    } else {
        text.replace('\n', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ids(keys: &[&x25519::Identity]) -> Identities {
        use age::secrecy::ExposeSecret;
        let text: String = keys
            .iter()
            .map(|k| format!("{}\n", k.to_string().expose_secret()))
            .collect();
        Identities::parse(Path::new("test"), &text).unwrap()
    }

    #[test]
    fn round_trip_to_several_recipients() {
        let (a, b, c) = (
            x25519::Identity::generate(),
            x25519::Identity::generate(),
            x25519::Identity::generate(),
        );
        let value = b"line one\nline two\0\xff\n";
        let ct = encrypt(value, &[a.to_public(), b.to_public()]).unwrap();
        assert!(ct.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(ct.ends_with(b"-----END AGE ENCRYPTED FILE-----\n"));
        assert_eq!(&decrypt(&ct, &ids(&[&a])).unwrap()[..], value);
        assert_eq!(&decrypt(&ct, &ids(&[&c, &b])).unwrap()[..], value);
        assert!(matches!(
            decrypt(&ct, &ids(&[&c])),
            Err(Failure::NotARecipient)
        ));
        let crlf: Vec<u8> = String::from_utf8(ct.clone())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        assert_eq!(&decrypt(&crlf, &ids(&[&a])).unwrap()[..], value);
    }

    #[test]
    fn damaged_files_are_corrupt() {
        let a = x25519::Identity::generate();
        let ct = encrypt(b"0123456789abcdef", &[a.to_public()]).unwrap();
        for bad in [
            &ct[..ct.len() / 2],
            &b"not an age file at all"[..],
            &b""[..],
        ] {
            assert!(
                matches!(decrypt(bad, &ids(&[&a])), Err(Failure::Corrupt(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn passphrase_files_are_recognised() {
        let a = x25519::Identity::generate();
        let mut r = age::scrypt::Recipient::new("correct horse".into());
        r.set_work_factor(10); // fast; the default aims at a second of work
        let enc = age::Encryptor::with_recipients(std::iter::once(&r as _)).unwrap();
        let mut ct = vec![];
        let mut w = enc.wrap_output(&mut ct).unwrap();
        w.write_all(b"0123456789").unwrap();
        w.finish().unwrap();
        assert!(matches!(
            decrypt(&ct, &ids(&[&a])),
            Err(Failure::Passphrase)
        ));
    }
}
