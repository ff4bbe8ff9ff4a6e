//! Text that is safe to show on a terminal: control characters made visible so a hostile
//! command can't drive the terminal (escape sequences, cursor moves, title changes); invalid
//! UTF-8 shown as `\xNN`. The logs keep the (redacted) bytes as they were; only what reaches
//! a terminal (the CLI's console, messages naming paths) is sanitised. Nothing here writes to
//! a terminal: the CLI does (`cli/console.rs`).

/// Copy `line` into `out`, showing control characters and invalid UTF-8 as escapes. Tabs
/// pass; a carriage return is shown as `\r` so it can't overwrite the prefix.
///
/// Printable ASCII, the bulk of any log, is copied in runs rather than char by char: an
/// agent that floods its output must not make airlock the bottleneck.
pub fn sanitize_into(line: &[u8], out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.reserve(line.len());
    for chunk in line.utf8_chunks() {
        let text = chunk.valid();
        let bytes = text.as_bytes();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            let b = bytes[i];
            if (0x20..0x7f).contains(&b) || b == b'\t' {
                i += 1;
                continue;
            }
            out.extend_from_slice(&bytes[start..i]);
            let c = text[i..].chars().next().unwrap_or_default();
            match c {
                c if c.is_control() => {
                    let _ = write!(out, "{}", c.escape_default());
                }
                // Unicode bidi overrides and other format characters could disguise text.
                '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                    let _ = write!(out, "{}", c.escape_unicode());
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            i += c.len_utf8().max(1);
            start = i;
        }
        out.extend_from_slice(&bytes[start..]);
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// A byte count for people: `512 B`, `3.4 kB`, `12.5 MB`, `1.02 GB` (decimal units).
pub fn show_bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1e3 {
        format!("{n} B")
    } else if n < 1e6 {
        format!("{:.1} kB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.2} GB", n / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_into;

    fn s(b: &[u8]) -> String {
        let mut out = Vec::new();
        sanitize_into(b, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn byte_counts_read_naturally() {
        use super::show_bytes;
        assert_eq!(show_bytes(0), "0 B");
        assert_eq!(show_bytes(999), "999 B");
        assert_eq!(show_bytes(3_400), "3.4 kB");
        assert_eq!(show_bytes(12_500_000), "12.5 MB");
        assert_eq!(show_bytes(1_020_000_000), "1.02 GB");
    }

    #[test]
    fn escapes_never_reach_the_terminal() {
        assert_eq!(s(b"\x1b]0;pwned\x07ok"), "\\u{1b}]0;pwned\\u{7}ok");
        assert_eq!(s(b"a\rb"), "a\\rb");
        assert_eq!(s(b"bad \xff\xfe utf8"), "bad \\xff\\xfe utf8");
        assert_eq!(s("naïve\ttab".as_bytes()), "naïve\ttab");
        assert!(!s(b"\x9b31m").contains('\u{9b}'));
        assert_eq!(s("\u{202e}evil\u{7f}".as_bytes()), "\\u{202e}evil\\u{7f}");
    }

    /// The run-copying fast path writes exactly what a char-by-char escape would, and
    /// nothing that can drive a terminal, for any bytes.
    #[test]
    fn the_fast_path_matches_char_by_char_escaping() {
        fn reference(line: &[u8]) -> String {
            let mut out = String::new();
            for chunk in line.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\t' => out.push('\t'),
                        c if c.is_control() => out.extend(c.escape_default()),
                        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                            out.extend(c.escape_unicode())
                        }
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: Vec<u8> = [
            &b"ab \t\r\n\x1b\x07\x7f\xff\xc3"[..],
            "é\u{202e}\u{9b}".as_bytes(),
        ]
        .concat();
        for _ in 0..2000 {
            let len = (x % 40) as usize;
            let mut line = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                line.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let got = s(&line);
            assert_eq!(got, reference(&line), "{line:?}");
            assert!(
                !got.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f),
                "{line:?}"
            );
        }
    }
}
