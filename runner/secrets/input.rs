//! Reading a value in: from standard input, a terminal, or a file.
//!
//! A value passes through memory airlock controls: each buffer it is read into is zeroized when
//! dropped, including the smaller ones left behind as a buffer grows. At a terminal the value
//! is typed with echo off, so it never appears on screen or in scrollback. Values are never
//! taken from the command line (see `airlock secrets set`).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use super::{SecretError, MAX_VALUE_LEN};

/// Read a whole value from `input` (standard input, a file) into a buffer that is zeroized
/// when dropped. Growing the buffer copies into a new zeroizing buffer, so no copy of the
/// value is left behind in freed memory. Reads at most `limit + 1` bytes (one more than
/// allowed, so the caller can tell "too large").
pub fn read_value(mut input: impl Read, limit: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; 4096.min(limit + 1)]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len > limit {
                break;
            }
            let mut bigger = Zeroizing::new(vec![0u8; (buf.len() * 2).min(limit + 1)]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger; // the old buffer is zeroized as it drops
        }
        match input.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    // An exact-size copy: `SecretSlice::from(Vec)` then needs no reallocation.
    Ok(Zeroizing::new(buf[..len].to_vec()))
}

/// Drop one trailing newline (`\n` or `\r\n`) in place: `echo VALUE |` and editors add one,
/// and a value that becomes an environment variable almost never means to end with it.
pub fn strip_one_newline(value: &mut Zeroizing<Vec<u8>>) {
    if value.last() == Some(&b'\n') {
        value.pop();
        if value.last() == Some(&b'\r') {
            value.pop();
        }
    }
}

/// Read the value of secret `name` from a file.
pub fn read_file(name: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let from = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| SecretError::ReadValue {
        name: name.to_string(),
        from: from.clone(),
        source,
    })?;
    read_from(name, &from, file)
}

/// Read the value of secret `name` from standard input to its end; at a terminal, with echo
/// off and a prompt on standard error.
pub fn read_stdin(name: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return read_from(name, "standard input", stdin.lock());
    }
    // Echo goes off before the prompt, so nothing typed after the prompt is ever shown.
    let echo = NoEcho::new(&stdin);
    eprint!("value of {name} (not echoed; end with Enter, then Ctrl-D): ");
    let _ = std::io::stderr().flush();
    let value = read_from(name, "standard input", stdin.lock());
    drop(echo);
    eprintln!();
    value
}

fn read_from(name: &str, from: &str, input: impl Read) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    read_value(input, MAX_VALUE_LEN).map_err(|source| SecretError::ReadValue {
        name: name.to_string(),
        from: from.to_string(),
        source,
    })
}

/// Terminal echo off while it lives (restored on drop, even on error).
struct NoEcho(Option<nix::sys::termios::Termios>);

impl NoEcho {
    fn new(stdin: &std::io::Stdin) -> NoEcho {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let Ok(saved) = tcgetattr(stdin) else {
            return NoEcho(None);
        };
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        if tcsetattr(stdin, SetArg::TCSANOW, &quiet).is_err() {
            return NoEcho(None);
        }
        NoEcho(Some(saved))
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_value_grows_and_limits() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let got = read_value(&data[..], 20_000).unwrap();
        assert_eq!(&got[..], &data[..]);
        assert_eq!(got.len(), got.capacity());
        let over = read_value(&data[..], 5000).unwrap();
        assert_eq!(over.len(), 5001, "reads one byte past the limit");
        assert!(read_value(&b""[..], 10).unwrap().is_empty());
    }

    #[test]
    fn newline_stripping() {
        for (input, want) in [
            (&b"abc\n"[..], &b"abc"[..]),
            (b"abc\r\n", b"abc"),
            (b"abc\n\n", b"abc\n"),
            (b"abc", b"abc"),
            (b"", b""),
        ] {
            let mut v = Zeroizing::new(input.to_vec());
            strip_one_newline(&mut v);
            assert_eq!(&v[..], want);
        }
    }
}
