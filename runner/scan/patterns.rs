//! The forms a secret value is looked for in.
//!
//! A value rarely leaks verbatim only: setup scripts write credentials into config files
//! base64-encoded (HTTP basic auth, Kubernetes secrets, `.npmrc`), hex-dumped, inside URLs
//! (`https://user:token@host`, query strings), inside XML (`settings.xml`, `NuGet.config`),
//! JSON, or shell scripts. Each of those tools changes a few bytes of the value in its own way,
//! so each value is expanded into the forms those tools produce, and all of them go into one
//! multi-pattern automaton:
//!
//! - `raw`: the bytes as they are;
//! - `base64`: standard and URL-safe alphabets, in all three alignments. A value's base64 text
//!   depends on how many bytes precede it in the encoded input (0, 1 or 2 modulo 3) and on the
//!   bytes around it; the part of the encoding whose 6-bit groups come only from the value's
//!   own bits is the same whatever the neighbours are, so that part is the pattern;
//! - `hex`: lower and upper case;
//! - `url-encoded`: percent-encoding as the common libraries write it ([`PERCENT`]): RFC 3986
//!   (every byte outside `A-Za-z0-9-._~` as `%XX`, upper and lower hex digits, a space as
//!   `%20` or `+`), and the partial forms that keep more bytes as they are: Python's `quote`
//!   (keeps `/`), JavaScript's `encodeURIComponent` and `encodeURI`, HTML forms and Java's
//!   `URLEncoder`, PHP's `urlencode`;
//! - `html-entity`: XML and HTML escaping ([`ENTITIES`]): the XML escapers of Maven's and
//!   NuGet's config writers, Python's `html.escape`, PHP's `htmlspecialchars`, Go's
//!   `html.EscapeString`, lodash's `escape`, OWASP's `&#x2F;` and all-numeric `&#47;` styles;
//! - `shell-quoted`: bash's `printf %q` (and its `$'…'` form for control bytes), a single
//!   quote written `'\''` or `'"'"'` inside single quotes (`${v@Q}`, Python's `shlex.quote`),
//!   and the backslashes of a double-quoted string (`\"`, `\\`, `\$`, `` \` ``);
//! - `json-escaped`: a JSON string's escapes as serde, JavaScript and jq write them, with
//!   Python's and PHP's `\uXXXX` for non-ASCII, PHP's `\/`, Go's `\u003c` for `<>&`;
//! - `line`: each line (8+ bytes, trailing `\r` trimmed) of a multi-line value, because a PEM
//!   key or a `.netrc` leaks line by line as often as whole. A value that ends with a line
//!   break (secret files usually do) is also looked for without it, in every form.
//!
//! An escaping form is only made where the value holds a byte that the escaping changes; a
//! token of letters, digits, `-` and `_` (most of them) has no percent, entity, shell or JSON
//! form besides its raw one, so the pattern count stays small. Forms shorter than
//! [`MIN_SECRET_LEN`] are dropped: an 8-byte floor keeps patterns from matching ordinary data
//! everywhere. Duplicates are dropped too (the first form name wins).
//!
//! Any form may also be found *wrapped*: split over lines, as `base64` (76 columns), PEM and
//! `openssl` (64), or `xxd -p` (60) write long encodings. That is not a list of patterns (the
//! place of the line breaks depends on where the value starts) but a second view of the
//! stream with those line breaks taken out: see `wrapped.rs`.

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

/// The name a form is reported under when it was found with line breaks taken out.
pub(crate) fn wrapped_name(form: &'static str) -> &'static str {
    match form {
        "raw" => "raw (wrapped)",
        "base64" => "base64 (wrapped)",
        "hex" => "hex (wrapped)",
        "url-encoded" => "url-encoded (wrapped)",
        "html-entity" => "html-entity (wrapped)",
        "shell-quoted" => "shell-quoted (wrapped)",
        "json-escaped" => "json-escaped (wrapped)",
        _ => "line (wrapped)",
    }
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

/// The value itself (named `raw_name`) and every encoding of it.
fn encoded_forms(value: &[u8], raw_name: &'static str, out: &mut Vec<(&'static str, Vec<u8>)>) {
    out.push((raw_name, value.to_vec()));
    for align in 0..3 {
        out.push(("base64", base64_stable(value, align, false)));
        out.push(("base64", base64_stable(value, align, true)));
    }
    out.push(("hex", crate::hex::lower(value).into_bytes()));
    out.push(("hex", crate::hex::upper(value).into_bytes()));
    for (keep, space) in PERCENT {
        out.push(("url-encoded", percent_encode(value, keep, UPPER, space)));
    }
    // Lower-case hex digits: RFC 3986 allows them; some hand-written encoders use them.
    out.push((
        "url-encoded",
        percent_encode(value, UNRESERVED, LOWER, b"%20"),
    ));
    out.push((
        "url-encoded",
        percent_encode(value, UNRESERVED, LOWER, b"+"),
    ));
    for table in ENTITIES {
        out.push(("html-entity", replace(value, table)));
    }
    out.push(("shell-quoted", printf_q(value)));
    out.push(("shell-quoted", replace(value, &[(b'\'', "'\\''")])));
    out.push(("shell-quoted", replace(value, &[(b'\'', "'\"'\"'")])));
    out.push(("shell-quoted", replace(value, DOUBLE_QUOTED)));
    if let Ok(text) = std::str::from_utf8(value) {
        for style in JSON {
            out.push(("json-escaped", json_escape(text, style)));
        }
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

pub(crate) const UPPER: &[u8; 16] = b"0123456789ABCDEF";
pub(crate) const LOWER: &[u8; 16] = b"0123456789abcdef";
/// RFC 3986's unreserved bytes besides letters and digits.
pub(crate) const UNRESERVED: &[u8] = b"-._~";

/// Percent-encoding as libraries write it: the bytes besides letters and digits each keeps
/// as they are, and how it writes a space. (Upper-case hex digits: all of these use them.)
pub(crate) const PERCENT: [(&[u8], &[u8]); 7] = [
    // RFC 3986: curl, Go's PathEscape, Python's quote(safe='').
    (UNRESERVED, b"%20"),
    // The same as a form value: Go's QueryEscape, Python's quote_plus.
    (UNRESERVED, b"+"),
    // Python's urllib.parse.quote, whose `safe` is "/" unless told otherwise.
    (b"-._~/", b"%20"),
    // JavaScript's encodeURIComponent.
    (b"-._~!*'()", b"%20"),
    // JavaScript's encodeURI (keeps every reserved byte).
    (b"-._~!*'();,/?:@&=+$#", b"%20"),
    // HTML forms (WHATWG), Java's URLEncoder: `~` is encoded, `*` is not.
    (b"-._*", b"+"),
    // PHP's urlencode.
    (b"-._", b"+"),
];

/// Percent-encoding of every byte that is not a letter, a digit or in `keep`; a space is
/// written as `space` (`%20` or `+`).
pub(crate) fn percent_encode(
    value: &[u8],
    keep: &[u8],
    digits: &[u8; 16],
    space: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b);
        } else if b == b' ' {
            out.extend_from_slice(space);
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

/// A byte and what an escaper writes for it.
type Table = &'static [(u8, &'static str)];

/// XML and HTML escapers: what each writes for the bytes it changes.
pub(crate) const ENTITIES: [Table; 9] = [
    // XML character data: Maven's settings.xml, .NET's XmlWriter (NuGet.config), Python's
    // xml.sax.saxutils.escape.
    &[(b'&', "&amp;"), (b'<', "&lt;"), (b'>', "&gt;")],
    // XML attribute values written in double quotes (.NET's XmlWriter: `value="…"`).
    &[
        (b'&', "&amp;"),
        (b'<', "&lt;"),
        (b'>', "&gt;"),
        (b'"', "&quot;"),
    ],
    // All five of XML's predefined entities (Java's escapeXml, Apache Commons Text).
    &[
        (b'&', "&amp;"),
        (b'<', "&lt;"),
        (b'>', "&gt;"),
        (b'"', "&quot;"),
        (b'\'', "&apos;"),
    ],
    // Python's html.escape.
    &[
        (b'&', "&amp;"),
        (b'<', "&lt;"),
        (b'>', "&gt;"),
        (b'"', "&quot;"),
        (b'\'', "&#x27;"),
    ],
    // PHP's htmlspecialchars (ENT_QUOTES, the default since PHP 8.1).
    &[
        (b'&', "&amp;"),
        (b'<', "&lt;"),
        (b'>', "&gt;"),
        (b'"', "&quot;"),
        (b'\'', "&#039;"),
    ],
    // lodash's escape.
    &[
        (b'&', "&amp;"),
        (b'<', "&lt;"),
        (b'>', "&gt;"),
        (b'"', "&quot;"),
        (b'\'', "&#39;"),
    ],
    // Go's html.EscapeString and html/template.
    &[
        (b'&', "&amp;"),
        (b'<', "&lt;"),
        (b'>', "&gt;"),
        (b'"', "&#34;"),
        (b'\'', "&#39;"),
    ],
    // OWASP's encoder (ESAPI) and older Underscore.js, which escape `/` too.
    &[
        (b'&', "&amp;"),
        (b'<', "&lt;"),
        (b'>', "&gt;"),
        (b'"', "&quot;"),
        (b'\'', "&#x27;"),
        (b'/', "&#x2F;"),
    ],
    // Numeric references only.
    &[
        (b'&', "&#38;"),
        (b'<', "&#60;"),
        (b'>', "&#62;"),
        (b'"', "&#34;"),
        (b'\'', "&#39;"),
        (b'/', "&#47;"),
    ],
];

/// Inside double quotes (sh, bash, Makefiles, most `.env` readers): these four take a
/// backslash.
const DOUBLE_QUOTED: Table = &[
    (b'\\', "\\\\"),
    (b'"', "\\\""),
    (b'$', "\\$"),
    (b'`', "\\`"),
];

/// `value` with each byte of `table` replaced as it says.
fn replace(value: &[u8], table: Table) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match table.iter().find(|(from, _)| *from == b) {
            Some((_, to)) => out.extend_from_slice(to.as_bytes()),
            None => out.push(b),
        }
    }
    out
}

/// bash's `printf %q` (and `${v@Q}`'s neighbour): a backslash before each byte the shell
/// would read specially, `#` at the start and `~` at the start or after `:` or `=`. A value
/// with control bytes is written `$'…'` instead, with C escapes; the pattern is what is
/// inside the quotes, so the value is found within a longer quoted string too.
pub(crate) fn printf_q(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    if value.iter().any(|&b| b < 0x20 || b == 0x7f) {
        for &b in value {
            match b {
                0x07 => out.extend_from_slice(b"\\a"),
                0x08 => out.extend_from_slice(b"\\b"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                0x0b => out.extend_from_slice(b"\\v"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\r' => out.extend_from_slice(b"\\r"),
                0x1b => out.extend_from_slice(b"\\E"),
                b'\\' | b'\'' => out.extend_from_slice(&[b'\\', b]),
                b if b < 0x20 || b == 0x7f => {
                    out.extend_from_slice(format!("\\{b:03o}").as_bytes())
                }
                b => out.push(b),
            }
        }
        return out;
    }
    for (i, &b) in value.iter().enumerate() {
        let special = b" !\"$&'()*,;<>?[\\]^`{|}".contains(&b)
            || (b == b'#' && i == 0)
            || (b == b'~' && (i == 0 || matches!(value[i - 1], b':' | b'=')));
        if special {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// How a JSON writer escapes a string besides `"`, `\` and control characters.
#[derive(Clone, Copy)]
pub(crate) struct JsonStyle {
    /// Non-ASCII characters as `\uXXXX` (Python's json.dumps, PHP's json_encode).
    ascii_only: bool,
    /// `/` as `\/` (PHP's json_encode).
    slash: bool,
    /// `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` (Go's encoding/json).
    html: bool,
}

pub(crate) const JSON: [JsonStyle; 4] = [
    // serde_json, JavaScript's JSON.stringify, jq.
    JsonStyle {
        ascii_only: false,
        slash: false,
        html: false,
    },
    // Python's json.dumps.
    JsonStyle {
        ascii_only: true,
        slash: false,
        html: false,
    },
    // PHP's json_encode.
    JsonStyle {
        ascii_only: true,
        slash: true,
        html: false,
    },
    // Go's encoding/json.
    JsonStyle {
        ascii_only: false,
        slash: false,
        html: true,
    },
];

/// `text` as the inside of a JSON string written in `style`.
pub(crate) fn json_escape(text: &str, style: JsonStyle) -> Vec<u8> {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '/' if style.slash => out.push_str("\\/"),
            '<' | '>' | '&' if style.html => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if !c.is_ascii() && style.ascii_only => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name `bytes` are found under (the first form that produces them), if any.
    fn name_of(forms: &[(&'static str, Vec<u8>)], bytes: &[u8]) -> Option<&'static str> {
        forms.iter().find(|(_, f)| f == bytes).map(|(n, _)| *n)
    }

    /// Every printable ASCII byte but the space, `!` to `~`.
    fn printable() -> Vec<u8> {
        (0x21..0x7f).collect()
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
        assert_eq!(name_of(&forms, b"6120622f632b6400"), Some("hex"));
        assert_eq!(name_of(&forms, b"6120622F632B6400"), Some("hex"));
        assert_eq!(name_of(&forms, b"a%20b%2Fc%2Bd%00"), Some("url-encoded"));
        assert_eq!(name_of(&forms, b"a%20b%2fc%2bd%00"), Some("url-encoded"));
        assert_eq!(name_of(&forms, b"a+b%2Fc%2Bd%00"), Some("url-encoded"));
        assert_eq!(name_of(&forms, b"a+b%2fc%2bd%00"), Some("url-encoded"));
        // Python's quote keeps `/`.
        assert_eq!(name_of(&forms, b"a%20b/c%2Bd%00"), Some("url-encoded"));
    }

    #[test]
    fn unreserved_bytes_are_not_encoded() {
        assert_eq!(
            percent_encode(b"AZaz09-._~", UNRESERVED, UPPER, b"+"),
            b"AZaz09-._~"
        );
    }

    #[test]
    fn lines_of_multi_line_values() {
        let forms = forms(b"-----BEGIN KEY-----\r\nshort\nabcdefghijkl\n");
        assert_eq!(name_of(&forms, b"-----BEGIN KEY-----"), Some("line"));
        assert_eq!(name_of(&forms, b"abcdefghijkl"), Some("line"));
        assert_eq!(name_of(&forms, b"short"), Some("line"));
        // The value without its final line break, in every form.
        let trimmed = b"-----BEGIN KEY-----\r\nshort\nabcdefghijkl";
        assert_eq!(name_of(&forms, trimmed), Some("line"));
        assert_eq!(
            name_of(&forms, crate::hex::lower(trimmed).as_bytes()),
            Some("hex")
        );
        assert_eq!(
            name_of(&forms, br"-----BEGIN KEY-----\r\nshort\nabcdefghijkl"),
            Some("shell-quoted")
        );
    }

    /// What the real tools printed for `!` to `~` (bash 5.2, Python 3.11), byte for byte.
    #[test]
    fn escaping_forms_are_what_the_tools_write() {
        let forms = forms(&printable());
        let cases: [(&str, &[u8]); 8] = [
            // urllib.parse.quote
            ("url-encoded", b"%21%22%23%24%25%26%27%28%29%2A%2B%2C-./0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%7B%7C%7D~"),
            // urllib.parse.quote_plus
            ("url-encoded", b"%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%7B%7C%7D~"),
            // html.escape
            ("html-entity", b"!&quot;#$%&amp;&#x27;()*+,-./0123456789:;&lt;=&gt;?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"),
            // xml.sax.saxutils.escape
            ("html-entity", b"!\"#$%&amp;'()*+,-./0123456789:;&lt;=&gt;?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"),
            // printf %q
            ("shell-quoted", br##"\!\"#\$%\&\'\(\)\*+\,-./0123456789:\;\<=\>\?@ABCDEFGHIJKLMNOPQRSTUVWXYZ\[\\\]\^_\`abcdefghijklmnopqrstuvwxyz\{\|\}~"##),
            // shlex.quote, inside its quotes
            ("shell-quoted", br##"!"#$%&'"'"'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~"##),
            // ${v@Q}, inside its quotes
            ("shell-quoted", br##"!"#$%&'\''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~"##),
            // json.dumps, inside its quotes
            ("json-escaped", br##"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"##),
        ];
        for (name, bytes) in cases {
            assert_eq!(
                name_of(&forms, bytes),
                Some(name),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn printf_q_follows_bash() {
        // Each checked against bash 5.2's `printf %q`.
        assert_eq!(printf_q(b"a b"), br"a\ b");
        assert_eq!(printf_q(b"#a~b=c"), br"\#a~b=c");
        assert_eq!(printf_q(b"x#y"), b"x#y");
        assert_eq!(printf_q(b"~x"), br"\~x");
        assert_eq!(printf_q(b"a=~b:~c"), br"a=\~b:\~c");
        assert_eq!(printf_q(b"it's"), br"it\'s");
        assert_eq!(
            printf_q(b"a\x01b\x1bc\x7fd\te\nf\\g'h i\"j"),
            br#"a\001b\Ec\177d\te\nf\\g\'h i"j"#
        );
    }

    #[test]
    fn entity_forms() {
        let forms = forms(b"p/w&<x>'\"");
        for bytes in [
            &b"p/w&amp;&lt;x&gt;'\""[..],
            b"p/w&amp;&lt;x&gt;&apos;&quot;",
            b"p&#x2F;w&amp;&lt;x&gt;&#x27;&quot;",
            b"p&#47;w&#38;&#60;x&#62;&#39;&#34;",
            b"p/w&amp;&lt;x&gt;&#039;&quot;",
            b"p/w&amp;&lt;x&gt;&#39;&#34;",
        ] {
            assert_eq!(
                name_of(&forms, bytes),
                Some("html-entity"),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn json_forms() {
        let forms = forms("tök/<en>\"\n".as_bytes());
        assert_eq!(
            name_of(&forms, br#"t\u00f6k\/<en>\"\n"#),
            Some("json-escaped")
        );
        assert_eq!(
            name_of(&forms, "tök/\\u003cen\\u003e\\\"\\n".as_bytes()),
            Some("json-escaped")
        );
        assert_eq!(
            name_of(&forms, br#"t\u00f6k/<en>\"\n"#),
            Some("json-escaped")
        );
    }

    #[test]
    fn a_token_without_special_bytes_has_no_escaping_forms() {
        let token = b"ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        let forms = forms(token);
        let mut distinct: Vec<&[u8]> = forms.iter().map(|(_, f)| f.as_slice()).collect();
        distinct.sort();
        distinct.dedup();
        // raw, base64 (three alignments, two alphabets where they differ), hex (two cases).
        assert!(distinct.len() <= 9, "{}", distinct.len());
    }

    #[test]
    fn trailing_line_break_is_trimmed_once() {
        assert_eq!(trim_line_break(b"abc\r\n"), b"abc");
        assert_eq!(trim_line_break(b"abc\n\n"), b"abc\n");
        assert_eq!(trim_line_break(b"abc\r"), b"abc\r");
        assert_eq!(trim_line_break(b"abc"), b"abc");
    }
}
