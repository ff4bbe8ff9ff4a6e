//! The second view of a stream: with the line breaks that tools put into long encodings
//! taken out.
//!
//! coreutils' and busybox's `base64` wrap at 76 columns, PEM and `openssl base64` at 64,
//! MIME at 76 with CRLF, OpenSSH keys at 70, `xxd -p` at 60; so a value of 57 bytes or more
//! crosses a line break in its base64 form, and where the break falls depends on where the
//! value starts in the encoded input. No list of patterns covers that; a view of the stream
//! with those breaks removed does, for every form at once.
//!
//! **The rule** (one copy, here; the tests' reference follows it): a line break, `\n` or
//! `\r\n`, is taken out, together with up to [`MAX_INDENT`] spaces or tabs after it (an
//! indented block in YAML or XML), when the line before it ends in at least [`MIN_LINE`]
//! base64-alphabet bytes (`A-Za-z0-9+/-_`) and the next byte after the indentation is one too.
//! No common tool wraps an encoding narrower than that, and ordinary text rarely ends a line
//! in 32 letters without a space or a full stop, so the view differs from the stream almost
//! nowhere else. The view is searched for the forms made only of base64-alphabet bytes:
//! base64, hex (`xxd -p`), and a raw token of letters, digits, `-` and `_` folded over lines;
//! with its own automaton over just those (its keys, its hold table), so what it holds back
//! is exact.
//!
//! **The cost.** Outside such runs nothing is walked twice: the search looks for a line
//! break after a run of [`MIN_LINE`] bytes in the base64 range sixteen bytes at a time
//! (`next_break`), at a fraction of the automaton's cost per byte. At a break the rule may take
//! out, the view is walked byte by byte, from the start state over the base64 run before the
//! break (at most the longest such form: the stream keeps that many bytes), and on while the
//! run goes on and breaks keep coming within a form's length: through a wrapped blob, and
//! until the byte that ends it. An occurrence is reported from this view only if a removed
//! break lies inside it (the others are the stream's own); its positions are those of the
//! stream.
//!
//! Streaming: a break at the end of a chunk may not be decided yet (is the next byte base64?
//! is the `\r` followed by `\n`?); the view keeps it pending, and everything from the
//! earliest byte that may still begin an occurrence through the pending break is held back
//! by the redactor ([`Unwrap::earliest`]).

use std::collections::VecDeque;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::Anchored;

use super::engine::{matches, with_automaton, BuildError, Engine};
use super::stream::Occurrence;

/// A line break is only taken out after this many base64-alphabet bytes on its line.
pub(crate) const MIN_LINE: usize = 32;
/// The most spaces and tabs after a line break that are taken out with it.
pub(crate) const MAX_INDENT: usize = 32;
/// The view's automaton is a DFA while its table stays this small, else the compact NFA
/// (it is walked only near line breaks in base64 runs, where either is fast enough).
const DFA_BUDGET_BYTES: usize = 4 << 20;

/// The base64 alphabets, standard and URL-safe (hex digits are in it too).
#[inline]
pub(crate) fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

fn in_b64_range(b: u8) -> bool {
    (b'+'..=b'z').contains(&b)
}

/// The high bit of each of the eight bytes that is outside `+`..=`z`, the range the base64
/// alphabets lie in (bitwise, exact for each byte: no carry crosses a byte).
#[inline]
fn outside_b64_range(bytes: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let w = u64::from_le_bytes(bytes.try_into().expect("eight bytes"));
    // Below `+` (0x2b): the low seven bits less 0x2b borrow, and the high bit is clear.
    let below = !((w | HIGH) - ONES * 0x2b) & !w & HIGH;
    // Above `z` (0x7a): the low seven bits plus 5 carry into the high bit, or it is set.
    let above = (((w & !HIGH) + ONES * (0x7f - 0x7a)) | w) & HIGH;
    below | above
}

/// Whether a pattern can be found in the view: all of it base64-alphabet bytes.
pub(crate) fn wraps(pattern: &[u8]) -> bool {
    pattern.iter().all(|&b| is_b64(b))
}

/// How many bytes the redactor may hold back for an occurrence of `max_len` bytes found in
/// the view: the occurrence less one byte, every break that can lie inside it (one per
/// [`MIN_LINE`] bytes, and one more where it starts late on a line), and a pending break.
pub(crate) fn max_held(max_len: usize) -> usize {
    let breaks = max_len / MIN_LINE + 2;
    max_len + breaks * (2 + MAX_INDENT)
}

/// The view's automaton: over the patterns that [`wraps`], with their IDs in the whole set.
pub(crate) struct ViewEngine {
    engine: Engine,
    ids: Vec<u32>,
}

impl ViewEngine {
    /// The automaton for the patterns (with their IDs) that can be found in the view, if any.
    pub(crate) fn build(patterns: &[&[u8]]) -> Result<Option<ViewEngine>, BuildError> {
        let (ids, wrapping): (Vec<u32>, Vec<&[u8]>) = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| wraps(p))
            .map(|(i, p)| (i as u32, *p))
            .unzip();
        if wrapping.is_empty() {
            return Ok(None);
        }
        let engine = Engine::build(&wrapping, DFA_BUDGET_BYTES)?;
        Ok(Some(ViewEngine { engine, ids }))
    }

    pub(crate) fn memory_usage(&self) -> usize {
        self.engine.memory_usage() + self.ids.capacity() * 4
    }
}

pub(crate) struct Unwrap {
    /// The last `keep` bytes of the stream, to look back from a break found at the start of
    /// a chunk.
    tail: Vec<u8>,
    keep: usize,
    active: Option<Box<Active>>,
}

/// The view being walked, from the base64 run before a break.
struct Active {
    sid: StateID,
    /// Bytes of the view walked so far.
    n: u64,
    /// Where the view's byte 0 is in the stream, plus the breaks no longer in `breaks`.
    origin: u64,
    /// The breaks taken out that an occurrence may still span, in order.
    breaks: VecDeque<Break>,
    /// Patterns whose key was found in the view (start in view positions; view pattern IDs).
    cands: Vec<Cand>,
    /// Base64-alphabet bytes on the current line (at most [`MIN_LINE`]).
    line: usize,
    at: At,
    /// Where the break not decided yet starts in the stream.
    held_start: u64,
}

#[derive(Clone, Copy, Debug)]
struct Break {
    /// The view position of the byte after the break.
    at: u64,
    /// How many stream bytes were taken out.
    len: u64,
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    start: u64,
    pattern: u32,
    matched: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Inside a line.
    Line,
    /// After a `\r` that ends a long enough line.
    Cr,
    /// After the `\n` of such a line, and `indent` spaces or tabs.
    Lf { indent: usize },
}

impl Unwrap {
    pub(crate) fn new(view: &ViewEngine) -> Unwrap {
        Unwrap {
            tail: Vec::new(),
            keep: view.engine.max_len().max(MIN_LINE) + 2,
            active: None,
        }
    }

    /// Search the view of `chunk` (at stream position `base`); occurrences that span a
    /// break taken out go to `found`.
    pub(crate) fn feed(
        &mut self,
        view: &ViewEngine,
        chunk: &[u8],
        base: u64,
        found: &mut Vec<Occurrence>,
    ) {
        let mut i = 0;
        while i < chunk.len() {
            if let Some(active) = &mut self.active {
                let mut live = true;
                while live && i < chunk.len() {
                    live = active.byte(view, chunk[i], base + i as u64, found);
                    i += 1;
                }
                if !live {
                    self.active = None;
                }
                continue;
            }
            // Look for the next break the rule may take out.
            let Some((brk, last)) = self.next_break(chunk, i) else {
                break;
            };
            self.activate(view, chunk, base, brk, found);
            self.break_bytes(view, chunk, base, brk, last, found);
            i = last + 1;
        }
        self.keep_tail(chunk);
    }

    /// The stream position of the earliest byte that may still begin an occurrence in the
    /// view, if the view is being walked.
    pub(crate) fn earliest(&self, view: &ViewEngine) -> Option<u64> {
        let a = self.active.as_ref()?;
        let key = a.n - view.engine.hold(a.sid) as u64;
        let first = a
            .cands
            .iter()
            .map(|c| c.start)
            .min()
            .unwrap_or(key)
            .min(key);
        (first < a.n).then(|| a.position(first))
    }

    /// The first break in `chunk[from..]` the rule may take out (not decided yet, maybe): its
    /// first byte and the last of its line break (the `\n`, or a `\r` that ends the chunk).
    ///
    /// Such a break follows 32 bytes in the base64 range (`+`..`z`), and any 32 bytes hold a
    /// whole 16-byte block at a multiple of 16: so the search tests blocks, sixteen bytes with
    /// a few bitwise instructions and no branch on their kind, and only after a block all in
    /// range looks at the 17 bytes after it, where such a break would be the first byte out of
    /// range. Text, where a block holds a space or a byte out of range nine times in ten, goes
    /// by at a fraction of the automaton's cost. The first 48 bytes (whose run may begin
    /// before `from`) are looked at one by one.
    fn next_break(&self, chunk: &[u8], from: usize) -> Option<(isize, usize)> {
        let len = chunk.len();
        let head = (from + 48).min(len);
        for p in from..head {
            if matches!(chunk[p], b'\n' | b'\r') {
                if let Some(found) = self.break_at(chunk, p) {
                    return Some(found);
                }
            }
        }
        let mut block = from / 16 * 16;
        while block + 16 <= len {
            let flags = outside_b64_range(&chunk[block..block + 8])
                | outside_b64_range(&chunk[block + 8..block + 16]);
            if flags == 0 {
                let after = block + 16..(block + 33).min(len);
                let first = after.clone().find(|&q| !in_b64_range(chunk[q]));
                if let Some(q) = first.filter(|&q| q >= head && matches!(chunk[q], b'\n' | b'\r')) {
                    if let Some(found) = self.break_at(chunk, q) {
                        return Some(found);
                    }
                }
            }
            block += 16;
        }
        None
    }

    /// Whether a break the rule may take out starts at `p` (after a run of bytes in the
    /// base64 range): its first byte and the last of its line break.
    fn break_at(&self, chunk: &[u8], p: usize) -> Option<(isize, usize)> {
        let last = match chunk[p] {
            b'\n' => p,
            b'\r' if chunk.get(p + 1) == Some(&b'\n') => p + 1,
            b'\r' if p + 1 == chunk.len() => p,
            _ => return None,
        };
        let next = chunk.get(last + 1).copied();
        if next.is_some_and(|b| !is_b64(b) && b != b' ' && b != b'\t') {
            return None;
        }
        self.starts_break(chunk, p as isize)
            .then_some((p as isize, last))
    }

    /// Byte `j` of the stream relative to the chunk (negative: in the tail).
    fn byte_at(&self, chunk: &[u8], j: isize) -> Option<u8> {
        if j >= 0 {
            chunk.get(j as usize).copied()
        } else {
            let back = j.unsigned_abs();
            self.tail.len().checked_sub(back).map(|k| self.tail[k])
        }
    }

    /// How many base64-alphabet bytes end just before chunk-relative position `j` (at most
    /// `limit`).
    fn run_before(&self, chunk: &[u8], j: isize, limit: usize) -> usize {
        if j >= limit as isize {
            // All in the chunk: the common case, without the tail's bounds checks.
            let j = j as usize;
            return chunk[j - limit..j]
                .iter()
                .rev()
                .take_while(|&&b| is_b64(b))
                .count();
        }
        let mut n = 0;
        while n < limit && self.byte_at(chunk, j - 1 - n as isize).is_some_and(is_b64) {
            n += 1;
        }
        n
    }

    /// Whether a break starting at `j` (its `\r` or `\n`) ends a long enough line.
    #[inline]
    fn starts_break(&self, chunk: &[u8], j: isize) -> bool {
        if j >= MIN_LINE as isize {
            // Eight bytes at a time first: a line of text has a space or a byte outside
            // `+`..`z` in its last 32 bytes, and most lines end this way.
            let line = &chunk[j as usize - MIN_LINE..j as usize];
            if line.chunks_exact(8).any(|w| outside_b64_range(w) != 0) {
                return false;
            }
            return line.iter().all(|&b| is_b64(b));
        }
        self.run_before(chunk, j, MIN_LINE) == MIN_LINE
    }

    /// Start walking the view at a break starting at `brk` (chunk-relative): from the start
    /// state over the base64 run before it (as far back as an occurrence spanning the break
    /// may start; no break was taken out there).
    fn activate(
        &mut self,
        view: &ViewEngine,
        chunk: &[u8],
        base: u64,
        brk: isize,
        found: &mut Vec<Occurrence>,
    ) {
        let window = self.run_before(chunk, brk, view.engine.max_len().saturating_sub(1));
        let mut active = Box::new(Active {
            sid: view.engine.start(),
            n: 0,
            origin: stream_pos(base, brk - window as isize),
            breaks: VecDeque::new(),
            cands: Vec::new(),
            line: MIN_LINE,
            at: At::Line,
            held_start: 0,
        });
        for j in brk - window as isize..brk {
            let b = self.byte_at(chunk, j).expect("looked at already");
            active.step(view, b, stream_pos(base, j), found);
        }
        self.active = Some(active);
    }

    /// Feed the view the bytes `from..=to` (chunk-relative) of the break it was started at.
    fn break_bytes(
        &mut self,
        view: &ViewEngine,
        chunk: &[u8],
        base: u64,
        from: isize,
        to: usize,
        found: &mut Vec<Occurrence>,
    ) {
        for j in from..=to as isize {
            let b = self.byte_at(chunk, j).expect("looked at already");
            let active = self.active.as_mut().expect("started");
            active.byte(view, b, stream_pos(base, j), found);
        }
    }

    fn keep_tail(&mut self, chunk: &[u8]) {
        if chunk.len() >= self.keep {
            self.tail.clear();
            self.tail
                .extend_from_slice(&chunk[chunk.len() - self.keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > 2 * self.keep {
                let cut = self.tail.len() - self.keep;
                self.tail.drain(..cut);
            }
        }
    }
}

/// The stream position of chunk-relative position `j` (negative: before the chunk).
fn stream_pos(base: u64, j: isize) -> u64 {
    (base as i64 + j as i64) as u64
}

impl Active {
    /// Take the next stream byte (at stream position `pos`); false when the view no longer
    /// needs walking: the base64 run has ended (no form found here can go on), or no break
    /// taken out lies within a form's length.
    fn byte(&mut self, view: &ViewEngine, b: u8, pos: u64, found: &mut Vec<Occurrence>) -> bool {
        match self.at {
            At::Line if is_b64(b) => {
                self.step(view, b, pos, found);
                self.line = (self.line + 1).min(MIN_LINE);
                !self.breaks.is_empty()
            }
            At::Line if self.line >= MIN_LINE && (b == b'\n' || b == b'\r') => {
                self.held_start = pos;
                self.at = if b == b'\r' {
                    At::Cr
                } else {
                    At::Lf { indent: 0 }
                };
                true
            }
            At::Cr if b == b'\n' => {
                self.at = At::Lf { indent: 0 };
                true
            }
            At::Lf { indent } if (b == b' ' || b == b'\t') && indent < MAX_INDENT => {
                self.at = At::Lf { indent: indent + 1 };
                true
            }
            At::Lf { .. } if is_b64(b) => {
                self.breaks.push_back(Break {
                    at: self.n,
                    len: pos - self.held_start,
                });
                self.at = At::Line;
                self.step(view, b, pos, found);
                self.line = 1;
                true
            }
            // The run ends here (a break not taken out is no base64 byte either).
            _ => false,
        }
    }

    /// Walk one byte of the view (at stream position `pos`).
    fn step(&mut self, view: &ViewEngine, b: u8, pos: u64, found: &mut Vec<Occurrence>) {
        let engine = &view.engine;
        with_automaton!(engine, aut => {
            self.sid = aut.next_state(Anchored::No, self.sid, b);
        });
        self.n += 1;
        let mut k = 0;
        while k < self.cands.len() {
            let c = &mut self.cands[k];
            let pattern = engine.pattern(c.pattern);
            if pattern[c.matched as usize] != b {
                self.cands.swap_remove(k);
                continue;
            }
            c.matched += 1;
            if c.matched as usize == pattern.len() {
                let c = self.cands.swap_remove(k);
                self.report(view, c.start, c.pattern, pos, found);
                continue;
            }
            k += 1;
        }
        with_automaton!(engine, aut => {
            if aut.is_special(self.sid) && aut.is_match(self.sid) {
                for pid in matches(aut, self.sid) {
                    let pattern = pid.as_u32();
                    let key = engine.key_len(pattern) as u64;
                    let start = self.n - key;
                    if key as usize == engine.pattern(pattern).len() {
                        self.report(view, start, pattern, pos, found);
                    } else {
                        self.cands.push(Cand { start, pattern, matched: key as u32 });
                    }
                }
            }
        });
        // Breaks no occurrence can span any more (every later one starts after them).
        while let Some(&first) = self.breaks.front() {
            if first.at + engine.max_len() as u64 > self.n {
                break;
            }
            self.origin += first.len;
            self.breaks.pop_front();
        }
    }

    /// An occurrence of (view) pattern `pattern` in the view from `start` to the byte at
    /// stream position `last`: reported if a break taken out lies inside it.
    fn report(
        &self,
        view: &ViewEngine,
        start: u64,
        pattern: u32,
        last: u64,
        found: &mut Vec<Occurrence>,
    ) {
        if self.breaks.back().is_some_and(|b| b.at > start) {
            found.push(Occurrence {
                start: self.position(start),
                end: last + 1,
                pattern: view.ids[pattern as usize],
                wrapped: true,
            });
        }
    }

    /// The stream position of view byte `k` (one no pruned break lies after).
    fn position(&self, k: u64) -> u64 {
        let taken: u64 = self
            .breaks
            .iter()
            .take_while(|b| b.at <= k)
            .map(|b| b.len)
            .sum();
        self.origin + k + taken
    }
}
