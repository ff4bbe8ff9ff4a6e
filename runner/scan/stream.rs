//! One stream's search: every occurrence of every pattern, chunk by chunk, and how many
//! trailing bytes may still begin one. The scanner and the redactor are both built on it, so
//! they find exactly the same things.
//!
//! Two views of the stream are searched:
//!
//! - the bytes as they are: the automaton finds each pattern's key (see `engine.rs`) and the
//!   rest of the pattern is compared where the key ends; a comparison that runs past the end
//!   of the chunk is a [`Candidate`] carried into the next one;
//! - the bytes with line breaks inside base64-alphabet runs taken out (`wrapped.rs`), for
//!   the encodings tools wrap at 64 or 76 columns. Only occurrences that span such a line
//!   break come from there (the others are the first view's).
//!
//! Occurrences are reported per chunk in order of where they end, in positions of the
//! stream as it is.

use aho_corasick::automaton::StateID;

use super::engine::{matches, walk, with_automaton, BuildError, Engine};
use super::wrapped::{self, Unwrap, ViewEngine};

/// Everything a set of patterns is compiled into: the automaton for the stream, and the one
/// for its wrapped view (if any pattern can be found there).
pub(crate) struct Compiled {
    pub(crate) main: Engine,
    view: Option<ViewEngine>,
}

impl Compiled {
    pub(crate) fn build(patterns: &[&[u8]], dfa_budget: usize) -> Result<Compiled, BuildError> {
        Ok(Compiled {
            main: Engine::build(patterns, dfa_budget)?,
            view: ViewEngine::build(patterns)?,
        })
    }

    /// More than a stream ever holds back: the longest pattern, with room for the line breaks
    /// a wrapped occurrence may hold.
    pub(crate) fn max_held(&self) -> usize {
        self.main
            .max_len()
            .max(wrapped::max_held(self.main.max_len()))
    }

    pub(crate) fn memory_usage(&self) -> usize {
        self.main.memory_usage() + self.view.as_ref().map_or(0, ViewEngine::memory_usage)
    }
}

/// One occurrence of a pattern: stream positions `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Occurrence {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) pattern: u32,
    /// Found with line breaks taken out.
    pub(crate) wrapped: bool,
}

/// A pattern whose key was found at `start` and whose first `matched` bytes are there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) start: u64,
    pub(crate) pattern: u32,
    pub(crate) matched: u32,
}

pub(crate) struct Stream {
    sid: StateID,
    /// Bytes seen so far.
    pos: u64,
    pending: Vec<Candidate>,
    unwrap: Option<Unwrap>,
    /// Where keys ended in the last chunk (kept to reuse the allocation).
    walked: Vec<(StateID, usize)>,
    found: Vec<Occurrence>,
}

impl Stream {
    pub(crate) fn new(compiled: &Compiled) -> Stream {
        Stream {
            sid: compiled.main.start(),
            pos: 0,
            pending: Vec::new(),
            unwrap: compiled.view.as_ref().map(Unwrap::new),
            walked: Vec::new(),
            found: Vec::new(),
        }
    }

    /// The input bytes seen so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Search the next chunk; every occurrence that ends in it, in order of end (then
    /// pattern).
    pub(crate) fn feed(&mut self, compiled: &Compiled, chunk: &[u8]) -> &[Occurrence] {
        let engine = &compiled.main;
        let Stream {
            sid,
            pos,
            pending,
            unwrap,
            walked,
            found,
        } = self;
        found.clear();
        let base = *pos;
        let carried = std::mem::take(pending);
        for c in carried {
            compare(engine, c, chunk, base, found, pending);
        }
        walked.clear();
        with_automaton!(engine, aut => {
            walk(aut, engine.max_key(), sid, chunk, walked);
            for &(s, i) in walked.iter() {
                for pid in matches(aut, s) {
                    let pattern = pid.as_u32();
                    let key = engine.key_len(pattern);
                    let candidate = Candidate {
                        start: base + i as u64 + 1 - key as u64,
                        pattern,
                        matched: key as u32,
                    };
                    let next = base + i as u64 + 1;
                    compare(engine, candidate, &chunk[i + 1..], next, found, pending);
                }
            }
        });
        if let (Some(unwrap), Some(view), true) = (
            unwrap,
            &compiled.view,
            std::env::var_os("NOUNWRAP").is_none(),
        ) {
            unwrap.feed(view, chunk, base, found);
        }
        *pos += chunk.len() as u64;
        found.sort_unstable_by_key(|o| (o.end, o.pattern, o.wrapped));
        found
    }

    /// How many trailing bytes of the input so far may still begin an occurrence (in either
    /// view): no occurrence can start before them.
    pub(crate) fn hold(&self, compiled: &Compiled) -> usize {
        let key = compiled.main.hold(self.sid) as u64;
        let candidate = self
            .pending
            .iter()
            .map(|c| self.pos - c.start)
            .max()
            .unwrap_or(0);
        let wrapped = match (&self.unwrap, &compiled.view) {
            (Some(unwrap), Some(view)) => unwrap.earliest(view).map_or(0, |start| self.pos - start),
            _ => 0,
        };
        key.max(candidate).max(wrapped) as usize
    }
}

/// Compare the rest of candidate `c` with `next` (the bytes that follow what it matched so
/// far, starting at stream position `at`): an occurrence if all of it is there, still a
/// candidate if `next` ends first and agrees.
#[inline]
fn compare(
    engine: &Engine,
    c: Candidate,
    next: &[u8],
    at: u64,
    found: &mut Vec<Occurrence>,
    pending: &mut Vec<Candidate>,
) {
    let pattern = engine.pattern(c.pattern);
    let rest = &pattern[c.matched as usize..];
    if rest.len() <= next.len() {
        if next[..rest.len()] == *rest {
            found.push(Occurrence {
                start: c.start,
                end: at + rest.len() as u64,
                pattern: c.pattern,
                wrapped: false,
            });
        }
    } else if rest[..next.len()] == *next {
        pending.push(Candidate {
            matched: c.matched + next.len() as u32,
            ..c
        });
    }
}
