//! The automaton every form of every secret is compiled into, and the one loop that walks it.
//!
//! One pass over the bytes finds all patterns at once (Aho-Corasick). The loop is our own,
//! over the crate's low-level [`Automaton`] API, rather than the crate's `find` over a
//! buffer, because both users need to carry the automaton's state from one chunk to the next:
//! the scanner so a value split across reads is still one match (no overlap re-reading), the
//! redactor to know, after each chunk, how many trailing bytes could still be the start of a
//! secret ([`Engine::hold`]). The search is the `Standard` (overlapping-capable) kind, so every
//! occurrence of every pattern is reported, in order of where it ends.
//!
//! A DFA is a table lookup per byte and is used while its table stays small; a large pattern
//! set (hundreds of long secrets) falls back to the contiguous NFA, slower but compact.

use std::collections::VecDeque;
use std::sync::OnceLock;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{dfa, nfa::contiguous, Anchored, MatchKind, PatternID, StartKind};

/// Largest DFA transition table we build (estimated); above it, the NFA.
const DFA_BUDGET_BYTES: usize = 32 << 20;

pub(crate) enum Automata {
    Dfa(dfa::DFA),
    Nfa(contiguous::NFA),
}

/// Calls `$body` with `$aut` bound to the concrete automaton, so the hot loop is
/// monomorphised for each kind.
macro_rules! with_automaton {
    ($engine:expr, $aut:ident => $body:expr) => {
        match &$engine.automata {
            $crate::scan::engine::Automata::Dfa($aut) => $body,
            $crate::scan::engine::Automata::Nfa($aut) => $body,
        }
    };
}
pub(crate) use with_automaton;

pub(crate) struct Engine {
    pub(crate) automata: Automata,
    start: StateID,
    /// The bytes that occur in some pattern: every other byte sends every state to the start.
    alphabet: Vec<u8>,
    /// Per state, how many trailing bytes may still begin an occurrence (computed on first
    /// use: only the redactor needs it).
    hold: OnceLock<Vec<u16>>,
    max_len: usize,
}

/// Why an engine could not be built: only on the automaton's internal limits (billions of
/// states), which memory runs out long before.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("compiling the secret patterns failed: {0}")]
    Compile(#[from] aho_corasick::BuildError),
    #[error("the secret pattern automaton has no start state: {0}")]
    Start(#[from] aho_corasick::MatchError),
}

impl Engine {
    /// Compile `patterns` (each at least one byte long, no duplicates).
    pub(crate) fn build(patterns: &[&[u8]]) -> Result<Engine, BuildError> {
        let mut seen = [false; 256];
        let mut total = 0usize;
        let mut max_len = 0usize;
        for p in patterns {
            for &b in *p {
                seen[usize::from(b)] = true;
            }
            total += p.len();
            max_len = max_len.max(p.len());
        }
        let alphabet: Vec<u8> = (0..=255u8).filter(|&b| seen[usize::from(b)]).collect();
        // Byte classes: at most one per distinct byte, plus one for all the others; the DFA
        // pads its stride to a power of two; one u32 per transition.
        let stride = (alphabet.len() + 1).next_power_of_two();
        let estimate = (total + 1).saturating_mul(stride).saturating_mul(4);
        let automata = if estimate <= DFA_BUDGET_BYTES {
            Automata::Dfa(
                dfa::Builder::new()
                    .match_kind(MatchKind::Standard)
                    .start_kind(StartKind::Unanchored)
                    .prefilter(false)
                    .build(patterns)?,
            )
        } else {
            Automata::Nfa(
                contiguous::Builder::new()
                    .match_kind(MatchKind::Standard)
                    // Dense transitions for the shallow states, where text spends its time.
                    .dense_depth(4)
                    .prefilter(false)
                    .build(patterns)?,
            )
        };
        let start = match &automata {
            Automata::Dfa(a) => a.start_state(Anchored::No),
            Automata::Nfa(a) => a.start_state(Anchored::No),
        }?;
        Ok(Engine {
            automata,
            start,
            alphabet,
            hold: OnceLock::new(),
            max_len,
        })
    }

    pub(crate) fn start(&self) -> StateID {
        self.start
    }

    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether the fast (DFA) automaton was built.
    pub(crate) fn is_dfa(&self) -> bool {
        matches!(self.automata, Automata::Dfa(_))
    }

    pub(crate) fn memory_usage(&self) -> usize {
        match &self.automata {
            Automata::Dfa(a) => a.memory_usage(),
            Automata::Nfa(a) => a.memory_usage(),
        }
    }

    /// The length of the longest suffix of the input read so far (which led to `sid`) that is
    /// a proper prefix of some pattern: those bytes may still begin an occurrence, no earlier
    /// byte can.
    pub(crate) fn hold(&self, sid: StateID) -> usize {
        let table = self
            .hold
            .get_or_init(|| with_automaton!(self, a => self.hold_table(a)));
        match table.get(sid.as_usize()) {
            Some(&h) if h != u16::MAX => usize::from(h),
            // Not a state, or a hold too large for the table: holding back the most is safe.
            _ => self.max_len.saturating_sub(1),
        }
    }

    /// A state's depth is the length of the longest input suffix that is a prefix of some
    /// pattern, and equals its breadth-first distance from the start (the trie path is a
    /// shortest way there). A state's hold (the longest suffix that is a *proper* prefix) is
    /// one less than the depth of the deepest state it steps to. Breadth-first order knows
    /// every successor's depth when a state is visited: a successor is at most one deeper.
    ///
    /// State IDs index the automaton's own tables, so they are below its size in `u32`s and
    /// serve as indices here.
    fn hold_table<A: Automaton>(&self, aut: &A) -> Vec<u16> {
        const UNSEEN: u32 = u32::MAX;
        let size = aut.memory_usage() / 4 + 1;
        let mut depth = vec![UNSEEN; size];
        let mut hold = vec![u16::MAX; size];
        let mut queue = VecDeque::from([(self.start, 0u32)]);
        match depth.get_mut(self.start.as_usize()) {
            Some(slot) => *slot = 0,
            None => return Vec::new(),
        }
        while let Some((sid, d)) = queue.pop_front() {
            let mut deepest = 0;
            for &b in &self.alphabet {
                let next = aut.next_state(Anchored::No, sid, b);
                // An ID outside the table would break the assumption above: give up on the
                // table (every lookup then holds back the most).
                let Some(slot) = depth.get_mut(next.as_usize()) else {
                    return Vec::new();
                };
                if *slot == UNSEEN {
                    *slot = d + 1;
                    queue.push_back((next, d + 1));
                }
                deepest = deepest.max(*slot);
            }
            if let Some(h) = hold.get_mut(sid.as_usize()) {
                *h = u16::try_from(deepest.saturating_sub(1)).unwrap_or(u16::MAX);
            }
        }
        hold
    }
}

/// Walks `chunk` from state `*sid`, calling `on_match(state, index)`, in order of `index`, at
/// every byte `index` where one or more patterns end; stops early when it returns `true`.
/// Leaves `*sid` at the state after the last byte walked and returns whether it stopped early
/// (the state is then mid-chunk).
///
/// A DFA walk is bound by the latency of one table load per byte, each depending on the last.
/// Long chunks are therefore cut in [`LANES`] segments walked in lockstep, which gives the
/// processor independent loads to overlap. Each lane but the first starts `max_len` bytes
/// before its segment, from the start state: the state after a byte depends only on the last
/// `max_len` bytes (the longest suffix that is a prefix of a pattern), so once warmed up the
/// lane is in exactly the state a single walk would be. Matches a lane finds before its
/// segment are the previous lane's to report.
#[inline(always)]
pub(crate) fn walk<A: Automaton>(
    aut: &A,
    max_len: usize,
    sid: &mut StateID,
    chunk: &[u8],
    mut on_match: impl FnMut(StateID, usize) -> bool,
) -> bool {
    let min_segment = (4 * max_len).max(1024);
    let mut done = 0;
    for block in chunk.chunks(BLOCK) {
        let stopped = if block.len() < LANES * min_segment {
            walk_serial(aut, sid, block, |s, i| on_match(s, done + i))
        } else {
            walk_lanes(aut, max_len, sid, block, |s, i| on_match(s, done + i))
        };
        if stopped {
            return true;
        }
        done += block.len();
    }
    false
}

/// How many segments a long chunk is walked in, at once.
const LANES: usize = 4;
/// Long chunks are walked this much at a time (bounds the matches a lane buffers).
const BLOCK: usize = 256 * 1024;

#[inline(always)]
fn walk_serial<A: Automaton>(
    aut: &A,
    sid: &mut StateID,
    chunk: &[u8],
    mut on_match: impl FnMut(StateID, usize) -> bool,
) -> bool {
    let mut s = *sid;
    for (i, &b) in chunk.iter().enumerate() {
        s = aut.next_state(Anchored::No, s, b);
        // Unanchored, without prefilter: special means match (never dead, start unspecial).
        if aut.is_special(s) && aut.is_match(s) && on_match(s, i) {
            *sid = s;
            return true;
        }
    }
    *sid = s;
    false
}

/// [`walk`] for a chunk of at least `LANES` segments of `max_len` bytes or more. The four
/// lanes are spelled out (not an array) so their states stay in registers.
#[inline(always)]
fn walk_lanes<A: Automaton>(
    aut: &A,
    max_len: usize,
    sid: &mut StateID,
    chunk: &[u8],
    mut on_match: impl FnMut(StateID, usize) -> bool,
) -> bool {
    const _: () = assert!(LANES == 4);
    let segment = chunk.len() / LANES;
    // Lane `l` walks `from[l]..to[l]` and reports matches at `seg[l]..to[l]`.
    let seg = [0, segment, 2 * segment, 3 * segment];
    let from = seg.map(|s| s.saturating_sub(max_len));
    let to = [segment, 2 * segment, 3 * segment, chunk.len()];
    let steps = (0..LANES).map(|l| to[l] - from[l]).min().unwrap_or(0);
    let start = aut.start_state(Anchored::No).unwrap_or(*sid);
    let mut state = [*sid, start, start, start];
    // Matches of lanes after the first wait here until the lanes before them are done.
    let mut found: [Vec<(StateID, usize)>; LANES] = Default::default();
    {
        let [mut s0, mut s1, mut s2, mut s3] = state;
        let lane = |l: usize| &chunk[from[l]..from[l] + steps];
        let bytes = lane(0).iter().zip(lane(1)).zip(lane(2)).zip(lane(3));
        for (step, (((&b0, &b1), &b2), &b3)) in bytes.enumerate() {
            s0 = aut.next_state(Anchored::No, s0, b0);
            s1 = aut.next_state(Anchored::No, s1, b1);
            s2 = aut.next_state(Anchored::No, s2, b2);
            s3 = aut.next_state(Anchored::No, s3, b3);
            if aut.is_special(s0) | aut.is_special(s1) | aut.is_special(s2) | aut.is_special(s3) {
                for (l, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                    let i = from[l] + step;
                    if !(aut.is_special(s) && aut.is_match(s) && i >= seg[l]) {
                        continue;
                    }
                    if l > 0 {
                        found[l].push((s, i));
                    } else if on_match(s, i) {
                        *sid = s;
                        return true;
                    }
                }
            }
        }
        state = [s0, s1, s2, s3];
    }
    for l in 0..LANES {
        for &(s, i) in &found[l] {
            if on_match(s, i) {
                *sid = s;
                return true;
            }
        }
        let start = from[l] + steps;
        let mut s = state[l];
        let stopped = walk_serial(aut, &mut s, &chunk[start..to[l]], |s, i| {
            let i = start + i;
            i >= seg[l] && on_match(s, i)
        });
        if stopped {
            *sid = s;
            return true;
        }
        state[l] = s;
    }
    *sid = state[LANES - 1];
    false
}

/// The patterns that end in match state `sid`.
#[inline]
pub(crate) fn matches<A: Automaton>(aut: &A, sid: StateID) -> impl Iterator<Item = PatternID> + '_ {
    (0..aut.match_len(sid)).map(move |i| aut.match_pattern(sid, i))
}
