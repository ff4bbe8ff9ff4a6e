//! Redacting a live output stream.
//!
//! Logs are shown while the phase runs and stored afterwards; neither may show a secret
//! value in any of its forms. The redactor replaces every occurrence of every pattern with
//! `[redacted:NAME]`, chunk by chunk, and its output is the same whatever the chunking.
//!
//! What it replaces: the union of all occurrences. Occurrences that overlap (two secrets
//! sharing bytes, a secret's `line` inside its `raw`, a repeated value overlapping itself)
//! form one redacted span with one marker, named after the occurrence that starts first (the
//! longest of those, if several start together). Occurrences that merely touch get a marker
//! each. So no byte of any occurrence is ever shown.
//!
//! How it streams: after each chunk the search tells how long the longest suffix of the input
//! is that may still begin an occurrence: a proper prefix of some pattern, in the stream or
//! in its view with wrapping line breaks taken out, through a line break not decided yet
//! (`stream.rs`, `wrapped.rs`). No occurrence can start before that suffix, so everything
//! before it is final and is emitted at once. Only that suffix (fewer bytes than the longest
//! pattern, with its line breaks) is held back: output that cannot be the start of a secret is
//! never delayed. Bytes inside a span being
//! redacted are dropped as they come, so memory stays bounded even when a span grows
//! without end.
//!
//! One limit, inherent to any marker: a value that itself contains marker text (say, ends in
//! `[`) could be re-formed in the output by the bytes before a marker and the marker itself.

use std::collections::VecDeque;
use std::sync::Arc;

use super::stream::Stream;
use super::{Inner, State};

/// Redacts an output stream chunk by chunk; holds back only bytes that could still start a
/// secret. After [`Redactor::finish`] it is ready for a new stream.
pub struct Redactor {
    inner: Arc<Inner>,
    /// The search (none for a set with nothing to find, or one that failed to build).
    stream: Option<Stream>,
    /// Input bytes seen in this stream.
    pos: u64,
    /// The input bytes from `buf_start` to `pos` that are not decided yet.
    buf: Vec<u8>,
    buf_start: u64,
    /// Spans of overlapping occurrences that may still grow, in order, disjoint.
    spans: VecDeque<Span>,
    /// Only for a set that failed to build: whether anything was withheld.
    withheld: bool,
}

/// A merged span of occurrences `[start, end)`, named after its first-starting occurrence.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u64,
    end: u64,
    /// The naming occurrence (it starts at `start`): length and pattern.
    name_len: u32,
    name_pattern: u32,
    /// Whether the marker is out (the start and the name are then final).
    marked: bool,
}

impl Redactor {
    pub(crate) fn new(inner: Arc<Inner>) -> Redactor {
        Redactor {
            stream: inner.stream(),
            inner,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
            spans: VecDeque::new(),
            withheld: false,
        }
    }

    /// Take the next chunk of the stream; returns the bytes that are safe to emit now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let inner = Arc::clone(&self.inner);
        let engine = match &inner.state {
            State::Empty => return chunk.to_vec(),
            State::Failed(_) => {
                self.withheld |= !chunk.is_empty();
                return Vec::new();
            }
            State::Ready(engine) => engine,
        };
        let Some(stream) = self.stream.as_mut() else {
            return chunk.to_vec();
        };
        for occ in stream.feed(engine, chunk) {
            add_occurrence(
                &mut self.spans,
                Span {
                    start: occ.start,
                    end: occ.end,
                    // A wrapped occurrence is longer than its pattern: it is named by its
                    // length in the stream, as any other.
                    name_len: (occ.end - occ.start) as u32,
                    name_pattern: occ.pattern,
                    marked: false,
                },
            );
        }
        self.pos += chunk.len() as u64;
        debug_assert_eq!(self.pos, stream.pos());
        let frontier = self.pos - stream.hold(engine) as u64;
        self.drain(chunk, frontier)
    }

    /// End of stream: everything still held back, redacted. The redactor then starts over.
    pub fn finish(&mut self) -> Vec<u8> {
        let out = match &self.inner.state {
            State::Ready(_) => self.drain(&[], self.pos),
            State::Failed(_) if self.withheld => b"[redacted:unscannable]".to_vec(),
            _ => Vec::new(),
        };
        *self = Redactor::new(Arc::clone(&self.inner));
        out
    }

    /// How many input bytes are held back right now (always fewer than the longest pattern).
    pub fn held_back(&self) -> usize {
        self.buf.len()
    }

    /// Emit everything before `frontier` (no occurrence can start before it any more). The
    /// input not yet decided is `self.buf` followed by `chunk` (the last `chunk.len()` bytes
    /// up to `self.pos`); what stays undecided is kept in `self.buf`.
    fn drain(&mut self, chunk: &[u8], frontier: u64) -> Vec<u8> {
        let input = Undecided {
            buf: &self.buf,
            chunk,
            start: self.buf_start,
        };
        let mut out = Vec::with_capacity(self.buf.len() + chunk.len());
        let mut cursor = self.buf_start;
        loop {
            let Some(span) = self.spans.front_mut() else {
                input.copy(&mut out, cursor, frontier);
                cursor = cursor.max(frontier);
                break;
            };
            input.copy(&mut out, cursor, span.start.min(frontier));
            cursor = cursor.max(span.start.min(frontier));
            if frontier <= span.start {
                // A longer occurrence could still start earlier and rename the span.
                break;
            }
            if !span.marked {
                let info = self.inner.patterns[span.name_pattern as usize];
                let (open, close) = self.inner.marker;
                out.push(open);
                out.extend_from_slice(b"redacted:");
                out.extend_from_slice(self.inner.names[info.secret as usize].as_bytes());
                out.push(close);
                span.marked = true;
            }
            cursor = cursor.max(span.end);
            if span.end > frontier {
                // Still open: an occurrence starting before its end may extend it.
                break;
            }
            self.spans.pop_front();
        }
        let mut rest = Vec::new();
        input.copy(&mut rest, cursor, self.pos);
        self.buf = rest;
        self.buf_start = cursor;
        out
    }
}

/// The undecided input: `buf` then `chunk`, `buf` starting at stream position `start`.
struct Undecided<'a> {
    buf: &'a [u8],
    chunk: &'a [u8],
    start: u64,
}

impl Undecided<'_> {
    /// Append the input bytes at stream positions `from..to` (nothing if empty).
    fn copy(&self, out: &mut Vec<u8>, from: u64, to: u64) {
        if to <= from {
            return;
        }
        let (from, to) = ((from - self.start) as usize, (to - self.start) as usize);
        let split = self.buf.len();
        if from < split {
            out.extend_from_slice(&self.buf[from..to.min(split)]);
        }
        if to > split {
            out.extend_from_slice(&self.chunk[from.max(split) - split..to - split]);
        }
    }
}

/// Add an occurrence (found in order of end position) to the spans, merging every span it
/// overlaps.
fn add_occurrence(spans: &mut VecDeque<Span>, mut occ: Span) {
    while let Some(last) = spans.back() {
        // Every span ends no later than `occ` does, so it overlaps iff it ends after occ starts.
        if last.end <= occ.start {
            break;
        }
        let last = *last;
        spans.pop_back();
        occ.end = occ.end.max(last.end);
        // Name: the first-starting occurrence; among those, the longest; then the first pattern.
        let key = |s: &Span| (s.start, std::cmp::Reverse(s.name_len), s.name_pattern);
        if key(&last) < key(&occ) {
            occ.start = last.start;
            occ.name_len = last.name_len;
            occ.name_pattern = last.name_pattern;
            occ.marked = last.marked;
        }
    }
    spans.push_back(occ);
}
