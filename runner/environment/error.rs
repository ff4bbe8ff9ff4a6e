//! Errors for environment files, and how a problem found deep inside YAML deserialization
//! becomes one precise message.
//!
//! Every check runs *inside* a serde visitor, on the node it is about, so serde_yaml stamps the
//! error with that node's line and column, and `serde_path_to_error` records its key path. What
//! comes back is a `serde_yaml::Error` whose only public faces are `location()` and a display
//! string `"{yaml path}: {message} at line L column C"`. To carry a structured problem (key,
//! message, fix) through that string, our checks raise it as a [`Fail`], whose display is the
//! fields between control characters (`\x01 key \x1f message \x1f fix \x02`); user text inside
//! a `Fail` is always passed through [`shown`], which escapes control characters, so the markers
//! cannot be forged. [`from_yaml`] finds the markers and rebuilds the problem. An error without
//! markers came from the YAML parser itself (bad indentation, an unknown anchor, ...).
//!
//! serde's own "invalid type" errors are made from a visitor's `expecting` text; ours writes a
//! [`Fail`] there too, so a list where a size belongs still gets our wording and our fix.

use std::fmt;
use std::path::Path;

/// An environment definition failed to resolve, load or validate.
///
/// Its display is the full user-facing message:
/// `FILE:LINE:COLUMN: KEY: MESSAGE` and, on the next line, `  fix: HOW`. The parts are in
/// `Problem` (reached through `Deref`, boxed to keep `Result`s small).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct EnvError(Box<Problem>);

/// The parts of an [`EnvError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as shown to the user (relative to the current directory when under it).
    pub file: Option<String>,
    /// 1-based line and column of the node at fault, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path, e.g. `limits.memory` or `persist[1]`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: Option<String>,
}

impl std::ops::Deref for EnvError {
    type Target = Problem;
    fn deref(&self) -> &Problem {
        &self.0
    }
}

impl std::ops::DerefMut for EnvError {
    fn deref_mut(&mut self) -> &mut Problem {
        &mut self.0
    }
}

impl EnvError {
    pub(crate) fn new(message: impl Into<String>) -> EnvError {
        EnvError(Box::new(Problem {
            file: None,
            line: None,
            column: None,
            key: None,
            message: message.into(),
            fix: None,
        }))
    }

    pub(crate) fn in_file(mut self, file: &Path) -> EnvError {
        self.file = Some(display_path(file));
        self
    }

    pub(crate) fn at(mut self, line: usize, column: usize) -> EnvError {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> EnvError {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            f.write_str(file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

/// A problem found by a check inside deserialization (see the module docs for why it is
/// encoded in its display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    /// A key to append to the path serde tracked (e.g. `image` when it is missing).
    pub key: Option<&'static str>,
    pub message: String,
    pub fix: Option<String>,
}

const START: char = '\u{1}';
const SEP: char = '\u{1f}';
const END: char = '\u{2}';

impl Fail {
    pub fn new(message: impl Into<String>) -> Fail {
        Fail {
            key: None,
            message: message.into(),
            fix: None,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Fail {
        self.fix = Some(fix.into());
        self
    }

    pub fn key(mut self, key: &'static str) -> Fail {
        self.key = Some(key);
        self
    }

    fn decode(encoded: &str) -> Fail {
        let mut parts = encoded.split(SEP);
        let key = parts.next().unwrap_or_default();
        let message = parts.next().unwrap_or_default().to_string();
        let fix = parts.next().filter(|f| !f.is_empty()).map(str::to_string);
        Fail {
            // Only our own static key names are ever encoded; map back to them.
            key: KNOWN_KEYS.iter().copied().find(|k| *k == key),
            message,
            fix,
        }
    }
}

/// Keys a [`Fail`] may name (those that can be missing).
const KNOWN_KEYS: &[&str] = &["image"];

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{START}{}{SEP}{}{SEP}{}{END}",
            self.key.unwrap_or_default(),
            self.message,
            self.fix.as_deref().unwrap_or_default()
        )
    }
}

/// What a visitor expects, written into serde's "invalid type" errors (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    /// e.g. "a size such as 512m or 4g".
    pub what: &'static str,
    /// e.g. "write one size on the key's line, e.g. `memory: 4g`".
    pub fix: &'static str,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Fail::new(self.what).fix(self.fix).fmt(f)
    }
}

/// Turn a failed deserialization into the user-facing error.
pub(crate) fn from_yaml(
    file: &Path,
    err: serde_path_to_error::Error<serde_yaml::Error>,
) -> EnvError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let location = inner.location().map(|l| (l.line(), l.column()));
    let mut text = inner.to_string();
    if let Some((line, column)) = location {
        text = text.replacen(&format!(" at line {line} column {column}"), "", 1);
    }
    let mut out = match (text.rfind(START), text.rfind(END)) {
        (Some(start), Some(end)) if start < end => {
            let fail = Fail::decode(&text[start + START.len_utf8()..end]);
            let before = &text[..start];
            let mut e = EnvError::new(fail.message.clone());
            // serde's "invalid type: FOUND, expected {our Expect}".
            if let Some(found) = before
                .find("invalid type: ")
                .map(|i| &before[i + "invalid type: ".len()..])
                .and_then(|rest| rest.strip_suffix(", expected "))
            {
                e.message = format!("expected {}, found {}", fail.message, friendly(found));
            }
            e.fix = fail.fix;
            e.key = key_path(&path, fail.key);
            e
        }
        _ => yaml_problem(&text, location.map(|l| l.0)),
    };
    out = out.in_file(file);
    if let Some((line, column)) = location {
        out = out.at(line, column);
    }
    out
}

/// An error from the YAML parser itself (no key path: the text is not YAML yet).
fn yaml_problem(text: &str, line: Option<usize>) -> EnvError {
    if text.contains("more than one document") {
        return EnvError::new("the file holds more than one YAML document")
            .fix("an environment is one document: remove the second `---` and what follows it, or split it into its own file");
    }
    if text.starts_with("EOF while parsing") {
        return EnvError::new("the file is empty")
            .fix("an environment needs at least `image: NAME`");
    }
    if text.starts_with("unknown anchor") {
        return EnvError::new(
            "invalid YAML: an alias (*name) refers to an anchor that is not defined",
        )
        .fix("define the anchor (&name) earlier in the file, or write the value out");
    }
    let near = line.map(|l| format!(" on line {l}")).unwrap_or_default();
    EnvError::new(format!("invalid YAML: {}", shown_long(text, 200))).fix(format!(
        "check the indentation (spaces, not tabs) and the quoting{near}; quote values that contain `: ` or start with a special character such as `*`, `&`, `!` or `%`"
    ))
}

fn key_path(tracked: &str, extra: Option<&str>) -> Option<String> {
    let tracked = (tracked != ".").then(|| shown_long(tracked, 120));
    match (tracked, extra) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (Some(t), None) => Some(t),
        (None, Some(k)) => Some(k.to_string()),
        (None, None) => None,
    }
}

/// serde's names for what it found, in words a YAML author uses.
fn friendly(found: &str) -> String {
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping (nested keys)".into(),
        "unit value" => "an empty value".into(),
        "enum" => "a tagged value".into(),
        other => {
            for (serde, ours) in [
                ("string ", "the text "),
                ("integer ", "the number "),
                ("floating point ", "the number "),
                ("boolean ", "the boolean "),
            ] {
                if let Some(rest) = other.strip_prefix(serde) {
                    return format!("{ours}{}", shown(rest.trim_matches('`')));
                }
            }
            other.to_string()
        }
    }
}

/// User text for a message: control characters escaped, cut to about 60 characters.
pub(crate) fn shown(text: &str) -> String {
    shown_long(text, 60)
}

pub(crate) fn shown_long(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A path as the user knows it: relative to the current directory when it is under it.
pub fn display_path(path: &Path) -> String {
    let shown_path = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            let abs = std::path::absolute(path).ok()?;
            abs.strip_prefix(&cwd).ok().map(Path::to_path_buf)
        })
        .filter(|p| !p.as_os_str().is_empty() && !p.is_absolute())
        .filter(|_| std::env::current_dir().is_ok_and(|cwd| cwd != Path::new("/")))
        .unwrap_or_else(|| path.to_path_buf());
    shown_long(&shown_path.to_string_lossy(), 200)
}

/// The closest candidates to `word` (edit distance at most a third of its length, and at
/// least 1), best first.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_ascii_lowercase(), c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, counting a swap of two neighbours as one edit (`imgae` → `image`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_round_trips_through_its_display() {
        let fail = Fail::new("is wrong").fix("do this").key("image");
        let text = format!("env.X: {fail} at line 3 column 4");
        let start = text.find(START).unwrap();
        let end = text.find(END).unwrap();
        assert_eq!(Fail::decode(&text[start + 1..end]), fail);
    }

    #[test]
    fn shown_escapes_markers_and_truncates() {
        assert_eq!(shown("a\u{1}b\u{2}"), "a\\u{1}b\\u{2}");
        assert_eq!(shown("x\ny"), "x\\ny");
        let long = "v".repeat(100);
        let s = shown(&long);
        assert_eq!(s.chars().count(), 61);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn suggestions() {
        let keys = ["image", "env", "secrets", "setup", "persist"];
        assert_eq!(did_you_mean("imgae", &keys), Some("image"));
        assert_eq!(did_you_mean("secret", &keys), Some("secrets"));
        assert_eq!(did_you_mean("Image", &keys), Some("image"));
        assert_eq!(did_you_mean("zzzzzz", &keys), None);
        assert_eq!(did_you_mean("x", &keys), None);
    }

    #[test]
    fn friendly_names() {
        assert_eq!(friendly("sequence"), "a list");
        assert_eq!(friendly("string \"x\""), "the text \"x\"");
        assert_eq!(friendly("integer `5`"), "the number 5");
        let long = format!("string {:?}", "x".repeat(500));
        assert!(friendly(&long).chars().count() < 80);
    }

    #[test]
    fn display_has_file_line_column_key_and_fix() {
        let mut e = EnvError::new("is bad").fix("change it").at(7, 5);
        e.file = Some("envs/x.yaml".into());
        e.key = Some("persist[1]".into());
        assert_eq!(
            e.to_string(),
            "envs/x.yaml:7:5: persist[1]: is bad\n  fix: change it"
        );
    }
}
