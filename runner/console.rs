//! Text that is safe to show on a terminal: control characters made visible so a hostile
//! command can't drive the terminal (escape sequences, cursor moves, title changes); invalid
//! UTF-8 shown as `\xNN`. The logs keep the (redacted) bytes as they were; only what reaches
//! a terminal (the CLI's console, messages naming paths) is sanitised. Nothing here writes to
//! a terminal: the CLI does (`cli/console.rs`).
//!
//! An interactive shell (`airlock shell`) needs more than lines: line editing moves the
//! cursor, `ls` colours its output. [`TerminalFilter`] lets through exactly those sequences
//! that only draw (cursor moves, erasing, colours, modes such as the alternate screen) and
//! hands everything else to the same [`sanitize_into`], so there is one rule for what is
//! dangerous and one way of showing it. What never passes: OSC (clipboard writes with OSC 52,
//! titles, hyperlinks, colour queries), DCS, SOS, PM and APC strings, and every request the
//! terminal answers by typing into the shell's input (device status and attributes, window
//! reports, `ESC Z`), as well as C1 controls, bidi overrides and invalid UTF-8.

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

/// The longest escape sequence [`TerminalFilter`] waits for; a longer one is shown escaped.
const MAX_SEQUENCE: usize = 64;

/// A terminal's output stream made safe for the user's terminal, chunk by chunk: a sequence
/// or a UTF-8 character split across chunks is held back until it is whole, so what passes
/// never depends on how the stream was cut (see the module docs for what passes).
#[derive(Debug, Default)]
pub struct TerminalFilter {
    held: Vec<u8>,
}

impl TerminalFilter {
    pub fn new() -> TerminalFilter {
        TerminalFilter::default()
    }

    /// Filter the next chunk into `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        let (mut plain, mut i) = (0, 0);
        while i < buf.len() {
            let pass = match buf[i] {
                b'\n' | b'\r' | 0x08 | 0x07 => Some(1),
                0x1b => match sequence(&buf[i..]) {
                    Sequence::Pass(n) => Some(n),
                    Sequence::Refuse => None,
                    Sequence::Incomplete => {
                        sanitize_into(&buf[plain..i], out);
                        self.held = buf[i..].to_vec();
                        return;
                    }
                },
                _ => None,
            };
            match pass {
                Some(n) => {
                    sanitize_into(&buf[plain..i], out);
                    out.extend_from_slice(&buf[i..i + n]);
                    i += n;
                    plain = i;
                }
                None => i += 1,
            }
        }
        let whole = plain + complete_utf8(&buf[plain..]);
        sanitize_into(&buf[plain..whole], out);
        self.held = buf[whole..].to_vec();
    }

    /// The end of the stream: whatever is still held back, shown escaped.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        sanitize_into(&std::mem::take(&mut self.held), out);
    }
}

enum Sequence {
    /// A whole sequence, this many bytes, that only draws.
    Pass(usize),
    /// Not one that passes: the ESC is shown escaped and the rest is text.
    Refuse,
    /// Could still become one that passes.
    Incomplete,
}

/// Classify the escape sequence at the start of `s` (`s[0]` is ESC).
fn sequence(s: &[u8]) -> Sequence {
    let wait = || {
        if s.len() < MAX_SEQUENCE {
            Sequence::Incomplete
        } else {
            Sequence::Refuse
        }
    };
    match s.get(1) {
        None => wait(),
        Some(b'[') => csi(s).unwrap_or_else(wait),
        // Save/restore cursor, reverse index, index, next line, tab set, keypad modes, reset.
        Some(b'7' | b'8' | b'M' | b'D' | b'E' | b'H' | b'=' | b'>' | b'c') => Sequence::Pass(2),
        // Character sets: ASCII and line drawing.
        Some(b'(' | b')') => match s.get(2) {
            None => wait(),
            Some(b'B' | b'0') => Sequence::Pass(3),
            Some(_) => Sequence::Refuse,
        },
        // OSC, DCS, SOS, PM, APC, `ESC Z` (identify) and everything else.
        Some(_) => Sequence::Refuse,
    }
}

/// A CSI sequence (`ESC [ params intermediates final`); `None` while it is incomplete.
fn csi(s: &[u8]) -> Option<Sequence> {
    let body = &s[2..];
    let params = body
        .iter()
        .take_while(|b| (0x30..=0x3f).contains(*b))
        .count();
    let inter = body[params..]
        .iter()
        .take_while(|b| (0x20..=0x2f).contains(*b))
        .count();
    let &last = body.get(params + inter)?;
    if !(0x40..=0x7e).contains(&last) {
        return Some(Sequence::Refuse);
    }
    let p = &body[..params];
    let pass = match (p.first(), &body[params..params + inter], last) {
        // The cursor's shape.
        (_, b" ", b'q') => true,
        (_, [_, ..], _) => false,
        // DEC private modes (cursor visibility, alternate screen, bracketed paste, ...) and
        // selective erase.
        (Some(b'?'), _, b'h' | b'l' | b'J' | b'K') => true,
        (Some(b'<' | b'=' | b'>' | b'?'), _, _) => false,
        // Push and pop the title stack (vim does): nothing is reported. Every other window
        // operation is refused, the reports above all (they type the title into the shell).
        (_, _, b't') => matches!(p.split(|&b| b == b';').next(), Some(b"22" | b"23")),
        // Cursor moves, erasing, inserting and deleting, scrolling, tab stops, modes, colours
        // (SGR), the scroll region, cursor save/restore. Not `n` (device status), `c`
        // (device attributes), `x` (terminal parameters) or anything else the terminal answers.
        (_, _, last) => b"@ABCDEFGHIJKLMPSTXZ`abdefghlmrsu".contains(&last),
    };
    Some(if pass {
        Sequence::Pass(2 + params + inter + 1)
    } else {
        Sequence::Refuse
    })
}

/// How many bytes of `s` end on a character boundary: a UTF-8 character cut off at the end
/// (what a later chunk completes) is left out.
fn complete_utf8(s: &[u8]) -> usize {
    for back in 1..=s.len().min(3) {
        let b = s[s.len() - back];
        if b & 0xc0 != 0x80 {
            let need = match b {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => 1,
            };
            return if need > back { s.len() - back } else { s.len() };
        }
    }
    s.len()
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

    fn filtered(chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = super::TerminalFilter::new();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    #[test]
    fn a_shell_draws_but_never_reaches_the_clipboard_title_or_input() {
        // What line editing, `ls --color` and full-screen programs send passes unchanged.
        let drawing: &[&[u8]] = &[
            b"\x1b[01;34mdir\x1b[0m\r\n",
            b"\x1b[K\x1b[3D\x1b[2J\x1b[H\x1b[10;20H\x1b[?25l\x1b[?25h",
            b"\x1b[?1049h\x1b[?2004h\x1b[1;24r\x1b7\x1b8\x1bM\x1b(B\x1b)0\x1b=\x1b>",
            b"\x1b[22;0t\x1b[23;0t\x1b[2 q\x08\x07\t",
            "naïve → ok".as_bytes(),
        ];
        for d in drawing {
            assert_eq!(filtered(&[d]), *d, "{:?}", String::from_utf8_lossy(d));
        }
        // Clipboard, title, hyperlink, DCS/APC strings, and every request the terminal answers
        // by typing into the shell: the ESC is shown escaped, so no sequence starts.
        let hostile: &[&[u8]] = &[
            b"\x1b]52;c;cHduZWQ=\x07",
            b"\x1b]52;c;cHduZWQ=\x1b\\",
            b"\x1b]0;title\x07",
            b"\x1b]8;;http://example.com\x1b\\link\x1b]8;;\x1b\\",
            b"\x1bP$q\"p\x1b\\",
            b"\x1b_apc\x1b\\",
            b"\x1b[6n",
            b"\x1b[c",
            b"\x1b[>c",
            b"\x1b[21t",
            b"\x1b[14t",
            b"\x1b[?1$p",
            b"\x1bZ",
            b"\x1b#8",
            "\u{9d}52;c;x\u{9c}\u{9b}6n".as_bytes(),
            b"\x9d52;c;x\x07",
            b"\x05",
        ];
        for h in hostile {
            let out = filtered(&[h]);
            assert!(!out.contains(&0x1b), "{:?} → {:?}", h, out);
            assert!(!String::from_utf8_lossy(&out).contains('\u{9d}'));
            assert!(!out.contains(&0x05));
        }
        assert_eq!(
            filtered(&[b"\x1b]52;c;cHduZWQ=\x07"]),
            b"\\u{1b}]52;c;cHduZWQ=\x07"
        );
    }

    /// Whatever the chunking, the filter writes what it writes for the whole stream at once,
    /// and every ESC it lets through starts a sequence that passes on its own.
    #[test]
    fn the_terminal_filter_does_not_depend_on_the_chunking() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pieces: &[&[u8]] = &[
            b"\x1b",
            b"[",
            b"]52;c;",
            b"?25h",
            b"6n",
            b"0m",
            b"(B",
            b"\x07",
            b"\r\n",
            b"ab",
            "é".as_bytes(),
            b"\xc3",
            b"\xe2\x86",
            b"\x92",
            b";",
            b"\x1b\\",
        ];
        for _ in 0..3000 {
            let mut stream = Vec::new();
            for _ in 0..next() % 24 {
                stream.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let whole = filtered(&[&stream]);
            let mut cuts: Vec<usize> = (0..next() % 6)
                .map(|_| (next() % (stream.len() as u64 + 1)) as usize)
                .collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&stream[at..c]);
                at = c;
            }
            chunks.push(&stream[at..]);
            assert_eq!(filtered(&chunks), whole, "{stream:?} cut {chunks:?}");
            // Re-filtering changes nothing: what came out holds only sequences that pass.
            assert_eq!(filtered(&[&whole]), whole, "{stream:?}");
            assert!(!whole.windows(2).any(|w| w == b"\x1b]"), "{stream:?}");
        }
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
