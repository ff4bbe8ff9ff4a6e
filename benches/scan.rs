//! Throughput of the boundary's leak scanner and of the output redactor, one thread.
//!
//! `cargo bench --bench scan` prints the pattern count, the automaton's size and MB/s for a
//! scan and a redaction of 256 MB of text-like bytes against 20 and 200 secrets of 16–64
//! bytes. (Plain `harness = false` main: no bench framework needed for two numbers.)
//!
//! MB/s are per second *on the CPU* (the thread's run time from `/proc/thread-self/schedstat`,
//! where the kernel has it; wall time otherwise): on a shared machine a bench that is
//! descheduled half the time would otherwise report half its speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use airlock::scan::SecretSet;

const DATA_MB: usize = 256;
const SECRETS: usize = 20;
const CHUNK: usize = 64 * 1024;

/// xorshift64*: deterministic, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Text-like bytes: words of lower-case letters, some capitals, digits, punctuation, spaces
/// and line breaks (roughly a build log).
fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    const LETTERS: &[u8] = b"etaoinshrdlucmfwypvbgkjqxz";
    const OTHER: &[u8] = b"0123456789.,:;-_/=()[]{}\"'ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let r = rng.next();
        for k in 0..8 {
            let x = (r >> (8 * k)) as u8;
            out.push(match x {
                0..=199 => LETTERS[usize::from(x) % 13 + usize::from(x % 2) * 13],
                200..=229 => b' ',
                230..=235 => b'\n',
                _ => OTHER[usize::from(x) % OTHER.len()],
            });
        }
    }
    out.truncate(len);
    out
}

fn secret(rng: &mut Rng) -> Vec<u8> {
    let len = 16 + rng.below(49) as usize;
    (0..len).map(|_| 0x21 + rng.below(94) as u8).collect()
}

/// The time this thread has run on a CPU, if the kernel says.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Run `f`, and how long it took: on the CPU where the kernel says, else on the wall clock.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    let out = f();
    let took = match (cpu, cpu_time()) {
        (Some(a), Some(b)) => b - a,
        _ => wall.elapsed(),
    };
    (out, took)
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

struct Row {
    secrets: usize,
    patterns: usize,
    kind: &'static str,
    memory_kib: usize,
    build: Duration,
    scan: f64,
    redact: f64,
}

/// Scan `data` and redact `with_secrets` against `count` secrets (the first `count` of
/// `values`).
fn measure(values: &[Vec<u8>], count: usize, data: &[u8], with_secrets: &[u8]) -> Row {
    let names: Vec<String> = (0..count).map(|i| format!("SECRET_{i}")).collect();
    let pairs: Vec<(&str, &[u8])> = names
        .iter()
        .zip(values)
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let (set, build) = timed(|| {
        let set = SecretSet::new(&pairs);
        drop(set.redactor().push(b"x")); // builds the redactor's hold table too
        set
    });

    let (hit, scan) = timed(|| {
        set.scan_reader(&mut black_box(data))
            .expect("reading a slice")
    });
    assert!(hit.is_none(), "the random text contains a secret");

    let (out_len, redact) = timed(|| {
        let mut redactor = set.redactor();
        let mut out_len = 0;
        for chunk in with_secrets.chunks(CHUNK) {
            out_len += black_box(redactor.push(black_box(chunk))).len();
        }
        out_len + redactor.finish().len()
    });
    assert!(out_len < with_secrets.len(), "nothing was redacted");

    Row {
        secrets: count,
        patterns: set.pattern_count(),
        kind: if set.is_dfa() { "DFA" } else { "NFA" },
        memory_kib: set.memory_usage() / 1024,
        build,
        scan: mb_per_s(data.len(), scan),
        redact: mb_per_s(with_secrets.len(), redact),
    }
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let values: Vec<Vec<u8>> = (0..200).map(|_| secret(&mut rng)).collect();
    let data = text(&mut rng, DATA_MB << 20);
    // For redaction: the same text with one of the first 20 secrets every ~1 MB.
    let mut with_secrets = data.clone();
    for (i, at) in (0..with_secrets.len() - 100).step_by(1 << 20).enumerate() {
        let v = &values[i % SECRETS];
        with_secrets[at..at + v.len()].copy_from_slice(v);
    }

    println!("{DATA_MB} MiB of text-like bytes, {} KiB chunks, one thread; secrets of 16-64 printable bytes; MB/s of {} time", CHUNK / 1024, if cpu_time().is_some() { "CPU" } else { "wall" });
    println!(
        "{:>8} {:>9} {:>5} {:>10} {:>9} {:>10} {:>11}",
        "secrets", "patterns", "kind", "automaton", "build", "scan MB/s", "redact MB/s"
    );
    for count in [SECRETS, 200] {
        let r = measure(&values, count, &data, &with_secrets);
        println!(
            "{:>8} {:>9} {:>5} {:>6} KiB {:>9.1?} {:>10.0} {:>11.0}",
            r.secrets, r.patterns, r.kind, r.memory_kib, r.build, r.scan, r.redact
        );
    }
    // The wrapped view's worst case: every line a long base64-alphabet run (a base64 blob, a
    // hex dump, minified code), so every line break is one it may take out.
    drop((data, with_secrets));
    let line = b"QWxhZGRpbjpvcGVuIHNlc2FtZQ0KYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo\n";
    let wrapped: Vec<u8> = line.iter().copied().cycle().take(DATA_MB << 20).collect();
    let r = measure(&values, SECRETS, &wrapped, &wrapped_with(&wrapped, &values));
    println!(
        "{:>8} {:>9} {:>5} {:>6} KiB {:>9.1?} {:>10.0} {:>11.0}  (64-column base64 lines)",
        r.secrets, r.patterns, r.kind, r.memory_kib, r.build, r.scan, r.redact
    );
}

/// `data` with one of the first 20 secrets every ~1 MB.
fn wrapped_with(data: &[u8], values: &[Vec<u8>]) -> Vec<u8> {
    let mut out = data.to_vec();
    for (i, at) in (0..out.len() - 100).step_by(1 << 20).enumerate() {
        let v = &values[i % SECRETS];
        out[at..at + v.len()].copy_from_slice(v);
    }
    out
}
