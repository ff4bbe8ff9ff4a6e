//! The automaton every form of every secret is compiled into, and the one loop that walks it.
//!
//! One pass over the bytes finds all patterns at once (Aho-Corasick). The loop is our own,
//! over the crate's low-level [`Automaton`] API, rather than the crate's `find` over a
//! buffer, because every user needs to carry the automaton's state from one chunk to the
//! next: the scanner so a value split across reads is still one match (no overlap
//! re-reading), the redactor to know, after each chunk, how many trailing bytes could still be
//! the start of a secret ([`Engine::hold`]). The search is the `Standard` (overlapping-capable)
//! kind, so every occurrence of every pattern is reported, in order of where it ends.
//!
//! **Keys.** The automaton is not built from the whole patterns but from a *key* of each: its
//! shortest prefix of at least [`KEY_LEN`] bytes that no other pattern starts with (or the
//! whole pattern, if that is shorter). Every form of every secret is a pattern of 10 to a few
//! hundred bytes; compiled whole, 200 secrets made a DFA of ~60 MiB (one dense row of
//! transitions per pattern byte), past any sensible budget, and the fallback NFA ran at a
//! tenth of the DFA's speed. Keys make the automaton the size of a few bytes per pattern, and
//! the rest of a pattern is compared directly where its key matched (`stream.rs`), which in
//! ordinary data is almost never. Each key belongs to exactly one pattern, and every
//! occurrence of a pattern starts with an occurrence of its key, so finding keys and then
//! comparing finds exactly the occurrences of the patterns.
//!
//! A DFA is a table lookup per byte and is used while its table stays small; a key set past
//! the budget (thousands of secrets) falls back to the contiguous NFA, slower but compact.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{dfa, nfa::contiguous, Anchored, MatchKind, PatternID, StartKind};

/// Largest DFA transition table we build (estimated); above it, the NFA.
pub(crate) const DFA_BUDGET_BYTES: usize = 32 << 20;

/// The shortest key: long enough that a key of an encoded random value almost never occurs
/// in ordinary data (each occurrence costs a comparison), short enough to keep the automaton
/// small.
pub(crate) const KEY_LEN: usize = 8;

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
    /// The bytes that occur in some key: every other byte sends every state to the start.
    alphabet: Vec<u8>,
    /// Every pattern's bytes, one after the other (`spans` says where each is).
    bytes: zeroize::Zeroizing<Vec<u8>>,
    /// Per pattern ID: where its bytes are in `bytes` (start, length), and its key's length.
    spans: Vec<(u32, u32, u32)>,
    /// Per state, how many trailing bytes may still begin a key (computed on first use: only
    /// the redactor needs it).
    hold: OnceLock<StateMap<u16>>,
    max_key: usize,
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
    /// Compile `patterns` (each at least one byte long, no duplicates): a DFA if its table
    /// would fit in `dfa_budget` bytes, else the NFA.
    pub(crate) fn build(patterns: &[&[u8]], dfa_budget: usize) -> Result<Engine, BuildError> {
        let key_lens = key_lengths(patterns);
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        let mut spans = Vec::with_capacity(patterns.len());
        for (p, &k) in patterns.iter().zip(&key_lens) {
            spans.push((bytes.len() as u32, p.len() as u32, k as u32));
            bytes.extend_from_slice(p);
        }
        let keys: Vec<&[u8]> = patterns
            .iter()
            .zip(&key_lens)
            .map(|(p, &k)| &p[..k])
            .collect();
        let mut seen = [false; 256];
        for k in &keys {
            for &b in *k {
                seen[usize::from(b)] = true;
            }
        }
        let alphabet: Vec<u8> = (0..=255u8).filter(|&b| seen[usize::from(b)]).collect();
        // One state per distinct key prefix (the trie); byte classes: at most one per distinct
        // byte, plus one for all the others; the DFA pads its stride to a power of two; one
        // u32 per transition.
        let stride = (alphabet.len() + 1).next_power_of_two();
        let estimate = (trie_size(&keys) + 1)
            .saturating_mul(stride)
            .saturating_mul(4);
        let automata = if estimate <= dfa_budget {
            Automata::Dfa(
                dfa::Builder::new()
                    .match_kind(MatchKind::Standard)
                    .start_kind(StartKind::Unanchored)
                    .prefilter(false)
                    .build(&keys)?,
            )
        } else {
            Automata::Nfa(
                contiguous::Builder::new()
                    .match_kind(MatchKind::Standard)
                    // Dense transitions for the shallow states, where text spends its time.
                    .dense_depth(4)
                    .prefilter(false)
                    .build(&keys)?,
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
            bytes,
            spans,
            hold: OnceLock::new(),
            max_key: key_lens.iter().copied().max().unwrap_or(0),
            max_len: patterns.iter().map(|p| p.len()).max().unwrap_or(0),
        })
    }

    pub(crate) fn start(&self) -> StateID {
        self.start
    }

    /// The longest pattern.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The longest key (what the automaton's state depends on).
    pub(crate) fn max_key(&self) -> usize {
        self.max_key
    }

    /// Pattern `pid`'s bytes.
    #[inline]
    pub(crate) fn pattern(&self, pid: u32) -> &[u8] {
        let (at, len, _) = self.spans[pid as usize];
        &self.bytes[at as usize..(at + len) as usize]
    }

    /// The length of pattern `pid`'s key (the prefix the automaton finds).
    #[inline]
    pub(crate) fn key_len(&self, pid: u32) -> usize {
        self.spans[pid as usize].2 as usize
    }

    /// Whether the fast (DFA) automaton was built.
    pub(crate) fn is_dfa(&self) -> bool {
        matches!(self.automata, Automata::Dfa(_))
    }

    /// The automaton, the patterns' bytes and the tables beside them.
    pub(crate) fn memory_usage(&self) -> usize {
        let automaton = match &self.automata {
            Automata::Dfa(a) => a.memory_usage(),
            Automata::Nfa(a) => a.memory_usage(),
        };
        let hold = self.hold.get().map_or(0, |h| h.capacity() * 8);
        automaton + self.bytes.capacity() + self.spans.capacity() * 12 + hold
    }

    /// The length of the longest suffix of the input read so far (which led to `sid`) that is
    /// a proper prefix of some key: those bytes may still begin an occurrence of a key, no
    /// earlier byte can. (A suffix that is a whole key followed by more of its pattern is a
    /// candidate the stream tracks itself.)
    pub(crate) fn hold(&self, sid: StateID) -> usize {
        let table = self
            .hold
            .get_or_init(|| with_automaton!(self, a => self.hold_table(a)));
        match table.get(&sid.as_u32()) {
            Some(&h) if h != u16::MAX => usize::from(h),
            // Not a state, or a hold too large for the table: holding back the most is safe.
            _ => self.max_key.saturating_sub(1),
        }
    }

    /// A state's depth is the length of the longest input suffix that is a prefix of some
    /// key, and equals its breadth-first distance from the start (the trie path is a shortest
    /// way there). A state's hold (the longest suffix that is a *proper* prefix) is one less
    /// than the depth of the deepest state it steps to. Breadth-first order knows every
    /// successor's depth when a state is visited: a successor is at most one deeper.
    fn hold_table<A: Automaton>(&self, aut: &A) -> StateMap<u16> {
        let mut depth = StateMap::<u32>::default();
        depth.insert(self.start.as_u32(), 0);
        let mut hold = StateMap::default();
        let mut queue = VecDeque::from([(self.start, 0u32)]);
        while let Some((sid, d)) = queue.pop_front() {
            let mut deepest = 0;
            for &b in &self.alphabet {
                let next = aut.next_state(Anchored::No, sid, b);
                let slot = depth.entry(next.as_u32()).or_insert_with(|| {
                    queue.push_back((next, d + 1));
                    d + 1
                });
                deepest = deepest.max(*slot);
            }
            hold.insert(
                sid.as_u32(),
                u16::try_from(deepest.saturating_sub(1)).unwrap_or(u16::MAX),
            );
        }
        hold.shrink_to_fit();
        hold
    }
}

/// A map keyed by state ID. State IDs are offsets into the automaton's table (a DFA's are
/// multiples of its stride), so a multiplicative hash spreads them well, at a fraction of the
/// default hasher's cost (the hold table visits every transition once).
type StateMap<V> = HashMap<u32, V, BuildHasherDefault<StateHasher>>;

#[derive(Default)]
struct StateHasher(u64);

impl Hasher for StateHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Each pattern's key length: at least [`KEY_LEN`], and one more than the longest prefix it
/// shares with any other pattern (so no two patterns have the same key), but never more than
/// the pattern. A pattern's longest shared prefix is with one of its neighbours in sorted
/// order.
fn key_lengths(patterns: &[&[u8]]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..patterns.len()).collect();
    order.sort_unstable_by(|&a, &b| patterns[a].cmp(patterns[b]));
    let mut shared = vec![0usize; patterns.len()];
    for pair in order.windows(2) {
        let (a, b) = (patterns[pair[0]], patterns[pair[1]]);
        let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        shared[pair[0]] = shared[pair[0]].max(common);
        shared[pair[1]] = shared[pair[1]].max(common);
    }
    patterns
        .iter()
        .zip(shared)
        .map(|(p, s)| p.len().min(KEY_LEN.max(s + 1)))
        .collect()
}

/// How many distinct non-empty prefixes `keys` have: the states of their trie, less the root.
fn trie_size(keys: &[&[u8]]) -> usize {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    let mut size = 0;
    let mut prev: &[u8] = &[];
    for k in sorted {
        let common = prev.iter().zip(k).take_while(|(x, y)| x == y).count();
        size += k.len() - common;
        prev = k;
    }
    size
}

/// Walks `chunk` from state `*sid`, appending `(state, index)` to `found`, in order of
/// `index`, for every byte `index` where one or more keys end, and leaves `*sid` at the state
/// after the last byte. (Matches are collected rather than handled in the loop: keys occur
/// rarely, and a loop that calls nothing keeps its states in registers.)
///
/// A DFA walk is bound by the latency of one table load per byte, each depending on the last.
/// Long chunks are therefore cut in [`LANES`] segments walked in lockstep, which gives the
/// processor independent loads to overlap. Each lane but the first starts `max_key` bytes
/// before its segment, from the start state: the state after a byte depends only on the last
/// `max_key` bytes (the longest suffix that is a prefix of a key), so once warmed up the
/// lane is in exactly the state a single walk would be. Matches a lane finds before its
/// segment are the previous lane's to report.
#[inline(always)]
pub(crate) fn walk<A: Automaton>(
    aut: &A,
    max_key: usize,
    sid: &mut StateID,
    chunk: &[u8],
    found: &mut Vec<(StateID, usize)>,
) {
    let min_segment = (4 * max_key).max(1024);
    let mut done = 0;
    for block in chunk.chunks(BLOCK) {
        let first = found.len();
        if block.len() < LANES * min_segment {
            walk_serial(aut, sid, block, 0, found);
        } else {
            walk_lanes(aut, max_key, sid, block, found);
        }
        for m in &mut found[first..] {
            m.1 += done;
        }
        done += block.len();
    }
}

/// How many segments a long chunk is walked in, at once.
const LANES: usize = 4;
/// Long chunks are walked this much at a time (bounds the matches a lane buffers).
const BLOCK: usize = 256 * 1024;

/// Walk `chunk` (whose byte 0 is byte `offset` of the block) from `*sid`.
#[inline(always)]
fn walk_serial<A: Automaton>(
    aut: &A,
    sid: &mut StateID,
    chunk: &[u8],
    offset: usize,
    found: &mut Vec<(StateID, usize)>,
) {
    let mut s = *sid;
    for (i, &b) in chunk.iter().enumerate() {
        s = aut.next_state(Anchored::No, s, b);
        // Unanchored, without prefilter: special means match (never dead, start unspecial).
        if aut.is_special(s) && aut.is_match(s) {
            found.push((s, offset + i));
        }
    }
    *sid = s;
}

/// [`walk`] for a block of at least `LANES` segments of `max_key` bytes or more. The four
/// lanes are spelled out (not an array) so their states stay in registers.
#[inline(always)]
fn walk_lanes<A: Automaton>(
    aut: &A,
    max_key: usize,
    sid: &mut StateID,
    chunk: &[u8],
    out: &mut Vec<(StateID, usize)>,
) {
    const _: () = assert!(LANES == 4);
    let segment = chunk.len() / LANES;
    // Lane `l` walks `from[l]..to[l]` and reports matches at `seg[l]..to[l]`.
    let seg = [0, segment, 2 * segment, 3 * segment];
    let from = seg.map(|s| s.saturating_sub(max_key));
    let to = [segment, 2 * segment, 3 * segment, chunk.len()];
    let steps = (0..LANES).map(|l| to[l] - from[l]).min().unwrap_or(0);
    let start = aut.start_state(Anchored::No).unwrap_or(*sid);
    let mut state = [*sid, start, start, start];
    // Each lane's matches, in order; the lanes' lists are joined at the end.
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
                    if aut.is_special(s) && aut.is_match(s) && i >= seg[l] {
                        found[l].push((s, i));
                    }
                }
            }
        }
        state = [s0, s1, s2, s3];
    }
    for l in 0..LANES {
        // The rest of each lane, alone (lanes after the first are `max_key` bytes longer,
        // which a segment of at least `max_key` bytes puts past the segment's start).
        let start = from[l] + steps;
        debug_assert!(start >= seg[l]);
        let mut s = state[l];
        walk_serial(aut, &mut s, &chunk[start..to[l]], start, &mut found[l]);
        state[l] = s;
        out.append(&mut found[l]);
    }
    *sid = state[LANES - 1];
}

/// The keys (= pattern IDs) that end in match state `sid`.
#[inline]
pub(crate) fn matches<A: Automaton>(aut: &A, sid: StateID) -> impl Iterator<Item = PatternID> + '_ {
    (0..aut.match_len(sid)).map(move |i| aut.match_pattern(sid, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_prefixes() {
        let patterns: [&[u8]; 5] = [
            b"abcdefghijkl",
            b"abcdefghijXY",
            b"abcdefgh",
            b"zzzzzzzzzzzzzzzz",
            b"short",
        ];
        let keys = key_lengths(&patterns);
        // The first two share ten bytes; the third is a prefix of both.
        assert_eq!(keys, [11, 11, 8, 8, 5]);
        let keys: Vec<&[u8]> = patterns.iter().zip(&keys).map(|(p, &k)| &p[..k]).collect();
        // abcdefghij + k, X; zzzzzzzz; short.
        assert_eq!(trie_size(&keys), 12 + 8 + 5);
    }
}
