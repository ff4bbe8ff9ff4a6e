//! The forms a secret value is looked for in.
//!
//! A value rarely leaks verbatim only: setup scripts write credentials into config files
//! base64-encoded (HTTP basic auth, Kubernetes secrets, `.npmrc`), hex-dumped, or inside URLs
//! (`https://user:token@host`, query strings). So each value is expanded into every form it can
//! plausibly take, and all of them go into one multi-pattern automaton:
//!
//! - `raw`: the bytes as they are;
//! - `base64`: standard and URL-safe alphabets, in all three alignments. A value's base64 text
//!   depends on how many bytes precede it in the encoded input (0, 1 or 2 modulo 3) and on the
//!   bytes around it; the part of the encoding whose 6-bit groups come only from the value's
//!   own bits is the same whatever the neighbours are, so that part is the pattern;
//! - `hex`: lower and upper case;
//! - `url-encoded`: every byte outside the unreserved set `A-Za-z0-9-._~` as `%XX`, upper and
//!   lower hex digits, and the form-encoding variant that writes a space as `+`;
//! - `line`: each line (8+ bytes, trailing `\r` trimmed) of a multi-line value, because a PEM
//!   key or a `.netrc` leaks line by line as often as whole. A value that ends with a line
//!   break (secret files usually do) is also looked for without it, in every form.
//!
//! Forms shorter than [`MIN_SECRET_LEN`] are dropped: an 8-byte floor keeps patterns from
//! matching ordinary data everywhere. Duplicates are dropped too (the first form name wins).

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// Values (and forms) shorter than this are not scanned: they would match everywhere.
pub const MIN_SECRET_LEN: usize = 8;

/// Every form of `value`, in order, shorter ones and duplicates included (the caller filters).
pub(crate) fn forms(value: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    encoded_forms(value, "raw", &mut out);
    if value.contains(&b'\n') {
        for line in value.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.push(("line", line.to_vec()));
        }
    }
    let trimmed = trim_line_break(value);
    if trimmed.len() != value.len() {
        encoded_forms(trimmed, "line", &mut out);
    }
    out
}

/// `value` without one trailing `\n` or `\r\n`.
fn trim_line_break(value: &[u8]) -> &[u8] {
    let v = value.strip_suffix(b"\n").unwrap_or(value);
    if v.len() != value.len() {
        v.strip_suffix(b"\r").unwrap_or(v)
    } else {
        value
    }
}

/// The value itself (named `raw_name`) and its base64, hex and URL encodings.
fn encoded_forms(value: &[u8], raw_name: &'static str, out: &mut Vec<(&'static str, Vec<u8>)>) {
    out.push((raw_name, value.to_vec()));
    for align in 0..3 {
        out.push(("base64", base64_stable(value, align, false)));
        out.push(("base64", base64_stable(value, align, true)));
    }
    out.push(("hex", crate::hex::lower(value).into_bytes()));
    out.push(("hex", crate::hex::upper(value).into_bytes()));
    for digits in [b"0123456789ABCDEF", b"0123456789abcdef"] {
        out.push(("url-encoded", url_encode(value, digits, false)));
        out.push(("url-encoded", url_encode(value, digits, true)));
    }
}

/// The part of the base64 encoding of `value`, preceded by `align` other bytes, that does not
/// depend on the bytes before or after it.
///
/// Encoded character `j` carries bits `6j..6j+6` of the input; with `align` bytes before the
/// value, the value occupies bits `8*align..8*(align+len)`. The characters whose bits lie
/// wholly inside that range are the stable ones.
pub(crate) fn base64_stable(value: &[u8], align: usize, url_safe: bool) -> Vec<u8> {
    let mut input = vec![0u8; align];
    input.extend_from_slice(value);
    let encoded = if url_safe {
        URL_SAFE_NO_PAD.encode(&input)
    } else {
        STANDARD_NO_PAD.encode(&input)
    };
    let first = (8 * align).div_ceil(6);
    let end = (8 * input.len()) / 6;
    let stable = encoded
        .as_bytes()
        .get(first..end)
        .unwrap_or_default()
        .to_vec();
    zeroize::Zeroize::zeroize(&mut input);
    let mut encoded = encoded;
    zeroize::Zeroize::zeroize(&mut encoded);
    stable
}

/// Percent-encoding of every byte outside `A-Za-z0-9-._~`; with `plus`, a space is `+`.
pub(crate) fn url_encode(value: &[u8], digits: &[u8; 16], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else if plus && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 0xf)],
            ]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of<'a>(forms: &'a [(&'static str, Vec<u8>)], bytes: &[u8]) -> Vec<&'a str> {
        forms
            .iter()
            .filter(|(_, f)| f == bytes)
            .map(|(n, _)| *n)
            .collect()
    }

    #[test]
    fn base64_stable_parts_are_substrings_of_every_embedding() {
        let value = b"hunter2-is-not-a-good-password";
        for align in 0..3 {
            let stable = base64_stable(value, align, false);
            assert!(stable.len() >= value.len(), "align {align}: too short");
            // Whatever the neighbouring bytes, the stable part is in the encoding.
            for fill in [0u8, 0x55, 0xff] {
                for after in 0..3 {
                    let mut input = vec![fill; align];
                    input.extend_from_slice(value);
                    input.extend(std::iter::repeat_n(fill, after));
                    let enc = base64::engine::general_purpose::STANDARD.encode(&input);
                    assert!(
                        enc.contains(std::str::from_utf8(&stable).unwrap()),
                        "align {align}, fill {fill:#x}, after {after}: {enc} lacks stable part"
                    );
                }
            }
        }
    }

    #[test]
    fn base64_stable_part_lengths() {
        // 30 bytes at alignment 0: 40 characters, all stable (30 is a multiple of 3).
        assert_eq!(base64_stable(&[7u8; 30], 0, false).len(), 40);
        // Alignment 1: input 31 bytes = 248 bits; chars 2..41 are stable.
        assert_eq!(base64_stable(&[7u8; 30], 1, false).len(), 39);
        // Alignment 2: input 32 bytes = 256 bits; chars 3..42.
        assert_eq!(base64_stable(&[7u8; 30], 2, false).len(), 39);
    }

    #[test]
    fn url_safe_alphabet_differs_only_in_two_characters() {
        let value = [0xfbu8, 0xff, 0xbf, 0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf];
        let std = base64_stable(&value, 0, false);
        let url = base64_stable(&value, 0, true);
        assert_eq!(std, b"+/+/+/+/+/+/");
        assert_eq!(url, b"-_-_-_-_-_-_");
    }

    #[test]
    fn hex_and_url_forms() {
        let forms = forms(b"a b/c+d\x00");
        assert_eq!(names_of(&forms, b"6120622f632b6400"), ["hex"]);
        assert_eq!(names_of(&forms, b"6120622F632B6400"), ["hex"]);
        assert_eq!(names_of(&forms, b"a%20b%2Fc%2Bd%00"), ["url-encoded"]);
        assert_eq!(names_of(&forms, b"a%20b%2fc%2bd%00"), ["url-encoded"]);
        assert_eq!(names_of(&forms, b"a+b%2Fc%2Bd%00"), ["url-encoded"]);
        assert_eq!(names_of(&forms, b"a+b%2fc%2bd%00"), ["url-encoded"]);
    }

    #[test]
    fn unreserved_bytes_are_not_encoded() {
        assert_eq!(
            url_encode(b"AZaz09-._~", b"0123456789ABCDEF", true),
            b"AZaz09-._~"
        );
    }

    #[test]
    fn lines_of_multi_line_values() {
        let forms = forms(b"-----BEGIN KEY-----\r\nshort\nabcdefghijkl\n");
        assert_eq!(names_of(&forms, b"-----BEGIN KEY-----"), ["line"]);
        assert_eq!(names_of(&forms, b"abcdefghijkl"), ["line"]);
        assert_eq!(names_of(&forms, b"short"), ["line"]);
        // The value without its final line break, in every form.
        let trimmed = b"-----BEGIN KEY-----\r\nshort\nabcdefghijkl";
        assert_eq!(names_of(&forms, trimmed), ["line"]);
        assert!(names_of(&forms, crate::hex::lower(trimmed).as_bytes()).contains(&"hex"));
    }

    #[test]
    fn trailing_line_break_is_trimmed_once() {
        assert_eq!(trim_line_break(b"abc\r\n"), b"abc");
        assert_eq!(trim_line_break(b"abc\n\n"), b"abc\n");
        assert_eq!(trim_line_break(b"abc\r"), b"abc\r");
        assert_eq!(trim_line_break(b"abc"), b"abc");
    }
}
