//! Finding secret values in bytes: the boundary's leak check and the output redactor.
//!
//! The boundary's promise is that no secret value crosses from the setup phase to the agent
//! phase, and that no secret value reaches a log. Both come down to one question asked of a
//! stream of bytes: does any secret value occur in it, in any form it could plausibly have
//! been written in? [`SecretSet`] compiles every form of every value (see `patterns.rs`) into one
//! Aho-Corasick automaton (`engine.rs`) so that a single pass answers for all of them at once,
//! at memory speed, whatever the chunking of the stream; forms wrapped over lines are found in
//! a view of the stream with those line breaks taken out (`wrapped.rs`). Both users share one
//! search (`stream.rs`), so what the leak check finds is exactly what the redactor removes:
//!
//! - [`SecretSet::scan_reader`] / [`SecretSet::scanner`]: the leak check (first hit, or all);
//! - [`SecretSet::redactor`]: a streaming filter that replaces each occurrence with
//!   `[redacted:NAME]` and delays live output only while a secret could still be starting.
//!
//! Values shorter than [`MIN_SECRET_LEN`] bytes cannot be scanned for without matching
//! ordinary data everywhere; they are accepted here but listed by [`SecretSet::too_short`] so
//! callers can refuse them with a proper message before any phase runs.

mod engine;
mod patterns;
mod redact;
mod stream;
#[cfg(test)]
mod tests;
mod wrapped;

use std::io::{self, Read};
use std::sync::Arc;

pub use engine::BuildError;
pub use patterns::MIN_SECRET_LEN;
pub use redact::Redactor;
use stream::{Compiled, Occurrence, Stream};

/// A secret value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The secret's name (never its value).
    pub secret: String,
    /// Which form matched: "raw", "base64", "hex", "url-encoded", "html-entity",
    /// "shell-quoted", "json-escaped", "line", any of those followed by " (wrapped)" when it
    /// was split over lines (as "base64 (wrapped)"), or "unscannable" if the scanner could
    /// not be built (see [`SecretSet::new`]).
    pub form: &'static str,
}

/// Every secret value, with all the forms that are looked for. Cheap to clone (shared).
#[derive(Clone)]
pub struct SecretSet {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: State,
    /// Per pattern ID: which secret, which form.
    patterns: Vec<PatternInfo>,
    names: Vec<String>,
    too_short: Vec<String>,
    /// The bracket pair of the `[redacted:NAME]` marker (see [`marker_brackets`]).
    pub(crate) marker: (u8, u8),
}

/// The bracket pair for redaction markers: the first of `[]`, `<>`, `{}`, `()` whose bytes
/// occur in no secret value. A secret ending in `[` (or starting with `]`) could otherwise be
/// completed by the marker itself: the text before a redacted occurrence plus the marker's
/// first byte would spell the value again. (Encoded forms hold no brackets but the value's
/// own: base64, hex, percent-encoding and entities never produce them, and the escaping forms
/// only add backslashes, quotes and `&#;` to the value's bytes.) If every pair occurs, `[]`
/// is used.
pub(crate) fn marker_brackets(secrets: &[(&str, &[u8])]) -> (u8, u8) {
    const PAIRS: [(u8, u8); 4] = [(b'[', b']'), (b'<', b'>'), (b'{', b'}'), (b'(', b')')];
    PAIRS
        .into_iter()
        .find(|&(open, close)| {
            !secrets
                .iter()
                .any(|(_, v)| v.contains(&open) || v.contains(&close))
        })
        .unwrap_or(PAIRS[0])
}

pub(crate) enum State {
    /// No scannable value: nothing can ever match.
    Empty,
    Ready(Box<Compiled>),
    /// The automaton could not be built; every scan fails closed (reports a hit).
    Failed(String),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PatternInfo {
    pub(crate) secret: u32,
    pub(crate) form: &'static str,
}

impl SecretSet {
    /// Compile every form of every `(name, value)`. Values shorter than [`MIN_SECRET_LEN`] are
    /// not looked for (see [`SecretSet::too_short`]).
    ///
    /// This cannot fail in practice; if the automaton's internal limits were ever exceeded,
    /// the set fails closed: every scan reports a hit with form `"unscannable"` and the
    /// redactor withholds all output ([`SecretSet::build_error`] says why).
    pub fn new(secrets: &[(&str, &[u8])]) -> SecretSet {
        Self::build(secrets, engine::DFA_BUDGET_BYTES).unwrap_or_else(|(names, too_short, err)| {
            SecretSet {
                inner: Arc::new(Inner {
                    state: State::Failed(err.to_string()),
                    patterns: Vec::new(),
                    names,
                    too_short,
                    marker: marker_brackets(secrets),
                }),
            }
        })
    }

    #[allow(clippy::type_complexity)]
    fn build(
        secrets: &[(&str, &[u8])],
        dfa_budget: usize,
    ) -> Result<SecretSet, (Vec<String>, Vec<String>, BuildError)> {
        let list = PatternList::new(secrets);
        let state = if list.patterns.is_empty() {
            State::Empty
        } else {
            let refs: Vec<&[u8]> = list.patterns.iter().map(|p| p.bytes.as_slice()).collect();
            match Compiled::build(&refs, dfa_budget) {
                Ok(engine) => State::Ready(Box::new(engine)),
                Err(err) => return Err((list.names, list.too_short, err)),
            }
        };
        Ok(SecretSet {
            inner: Arc::new(Inner {
                state,
                patterns: list.patterns.iter().map(|p| p.info).collect(),
                names: list.names,
                too_short: list.too_short,
                marker: marker_brackets(secrets),
            }),
        })
    }

    /// Why the automaton could not be built, for a set that fails closed.
    pub fn build_error(&self) -> Option<&str> {
        match &self.inner.state {
            State::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// Names of the secrets whose values are too short (under [`MIN_SECRET_LEN`] bytes) to be
    /// looked for; callers should refuse them.
    pub fn too_short(&self) -> &[String] {
        &self.inner.too_short
    }

    /// True when nothing is looked for (no secret, or all too short).
    pub fn is_empty(&self) -> bool {
        matches!(self.inner.state, State::Empty)
    }

    /// How many distinct patterns (forms of values) are looked for.
    pub fn pattern_count(&self) -> usize {
        self.inner.patterns.len()
    }

    /// More than a [`Redactor`] ever holds back: the longest pattern, with room for the line
    /// breaks a wrapped occurrence of it may hold.
    pub fn longest_pattern(&self) -> usize {
        match &self.inner.state {
            State::Ready(compiled) => compiled.max_held() + 1,
            _ => 0,
        }
    }

    /// Whether the automaton is a DFA (small sets) rather than the compact NFA (huge ones).
    pub fn is_dfa(&self) -> bool {
        matches!(&self.inner.state, State::Ready(compiled) if compiled.main.is_dfa())
    }

    /// Heap memory used by the automaton and the patterns it checks, in bytes.
    pub fn memory_usage(&self) -> usize {
        match &self.inner.state {
            State::Ready(compiled) => compiled.memory_usage(),
            _ => 0,
        }
    }

    /// Scan everything `reader` yields (streaming). First hit, if any; reading stops there.
    pub fn scan_reader(&self, reader: &mut dyn Read) -> io::Result<Option<Hit>> {
        let mut scanner = self.scanner();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(hit) = scanner.feed(&buf[..n]) {
                return Ok(Some(hit));
            }
        }
    }

    /// Scan everything `reader` yields; every distinct (secret, form) found, in the order
    /// first found.
    pub fn scan_reader_all(&self, reader: &mut dyn Read) -> io::Result<Vec<Hit>> {
        let mut scanner = self.scanner();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(scanner.hits),
                Ok(n) => {
                    scanner.feed(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// First hit in `bytes`, if any.
    pub fn scan_bytes(&self, bytes: &[u8]) -> Option<Hit> {
        self.scanner().feed(bytes)
    }

    /// A streaming scanner: feed it chunks as they come (from an async stream, say).
    pub fn scanner(&self) -> Scanner {
        Scanner {
            stream: self.inner.stream(),
            inner: self.inner.clone(),
            hits: Vec::new(),
        }
    }

    /// A redactor for one output stream.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.inner.clone())
    }
}

/// The patterns of a set, in pattern-ID order: every form of every scannable value, minus
/// the short ones and the duplicates (the first secret and form to produce one keeps it).
pub(crate) struct PatternList {
    pub(crate) names: Vec<String>,
    pub(crate) too_short: Vec<String>,
    pub(crate) patterns: Vec<Pattern>,
}

pub(crate) struct Pattern {
    pub(crate) info: PatternInfo,
    pub(crate) bytes: zeroize::Zeroizing<Vec<u8>>,
}

impl PatternList {
    pub(crate) fn new(secrets: &[(&str, &[u8])]) -> PatternList {
        let mut names = Vec::new();
        let mut too_short = Vec::new();
        let mut candidates = Vec::new();
        for (name, value) in secrets {
            if value.len() < MIN_SECRET_LEN {
                too_short.push(name.to_string());
                continue;
            }
            let secret = names.len() as u32;
            names.push(name.to_string());
            for (form, bytes) in patterns::forms(value) {
                candidates.push(Pattern {
                    info: PatternInfo { secret, form },
                    bytes: zeroize::Zeroizing::new(bytes),
                });
            }
        }
        let mut seen = std::collections::HashSet::new();
        let keep: Vec<bool> = candidates
            .iter()
            .map(|c| c.bytes.len() >= MIN_SECRET_LEN && seen.insert(c.bytes.as_slice()))
            .collect();
        drop(seen);
        let mut keep = keep.into_iter();
        candidates.retain(|_| keep.next().unwrap_or(false));
        PatternList {
            names,
            too_short,
            patterns: candidates,
        }
    }
}

impl Inner {
    /// A new stream's search, if there is anything to search for.
    fn stream(&self) -> Option<Stream> {
        match &self.state {
            State::Ready(compiled) => Some(Stream::new(compiled)),
            _ => None,
        }
    }

    fn hit(&self, occ: &Occurrence) -> Hit {
        let info = self.patterns[occ.pattern as usize];
        Hit {
            secret: self.names[info.secret as usize].clone(),
            form: if occ.wrapped {
                patterns::wrapped_name(info.form)
            } else {
                info.form
            },
        }
    }

    fn failed_hit(&self) -> Hit {
        Hit {
            secret: self.names.first().cloned().unwrap_or_default(),
            form: "unscannable",
        }
    }
}

/// Scans a stream chunk by chunk; a value split across chunks is found like any other.
pub struct Scanner {
    inner: Arc<Inner>,
    stream: Option<Stream>,
    hits: Vec<Hit>,
}

impl Scanner {
    /// Scan the next chunk of the stream. Returns the first hit in this chunk (the
    /// occurrence that ends first), if any; every distinct hit so far is kept in
    /// [`Scanner::hits`].
    pub fn feed(&mut self, chunk: &[u8]) -> Option<Hit> {
        let inner = &*self.inner;
        let engine = match &inner.state {
            State::Empty => return None,
            State::Failed(_) => {
                let hit = inner.failed_hit();
                if self.hits.is_empty() {
                    self.hits.push(hit.clone());
                }
                return Some(hit);
            }
            State::Ready(engine) => engine,
        };
        let stream = self.stream.as_mut()?;
        let mut first = None;
        for occ in stream.feed(engine, chunk) {
            let hit = inner.hit(occ);
            if first.is_none() {
                first = Some(hit.clone());
            }
            if !self.hits.contains(&hit) {
                self.hits.push(hit);
            }
        }
        first
    }

    /// Every distinct (secret, form) found so far, in the order first found.
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// Forget the stream so far (state and hits): the next chunk starts a new stream.
    pub fn reset(&mut self) {
        self.stream = self.inner.stream();
        self.hits.clear();
    }
}
