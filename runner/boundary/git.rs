//! Git objects in what crosses: scanned inflated, not only as the compressed bytes they are.
//!
//! A setup script that runs git (common: a tool's version stamp, a generated file committed,
//! a `git add` to see what changed) can leave a secret in a git object even after it removes
//! the file: `git add` writes a loose object, a commit keeps it, `git rm --cached` or a later
//! commit leaves it there, and `git gc` moves it into a pack. Objects are zlib-compressed, so
//! the leak check's pass over the raw bytes never sees the value, and the agent reads it back
//! with `git cat-file`. So the files of the workspace's `.git` that hold objects are also
//! inflated and scanned:
//!
//! - a loose object (`objects/xx/yyyy…`) is one zlib stream;
//! - a pack (`objects/pack/*.pack`) is parsed (`PACK`, version, count, then per object a
//!   type-and-size header, a delta's base, one zlib stream) and every object inflated. A
//!   delta's inflated data is a list of instructions: copies from its base and inserted
//!   literal bytes; the literals are scanned as one stream (git cuts an insert at 127 bytes,
//!   so a value can straddle two). What a delta rebuilds by copying from its base is not
//!   re-assembled: a value made of bytes its base already had plus inserted ones is missed
//!   (SECURITY.md says so).
//!
//! Only objects the host's `.git` did not already have are inflated, so a repository with a
//! long history costs nothing more than before: a loose object whose path (its hash) exists
//! in the host workspace's `.git` with the same size, or a pack whose file name (the hash of
//! its content) does, is what the run started with, and is skipped. Everything else is read
//! once: the raw bytes go to the leak check as for any file, and the same bytes are inflated
//! on the way. A file that is not a well-formed object is inflated as far as it goes (git
//! could not read the rest either); its raw bytes are always scanned whole.
//!
//! Nothing here does I/O but [`HostObjects`] asking the host's `.git` what it has: readers
//! in, hits out.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::RootKind;
use crate::scan::{Hit, Scanner, SecretSet};

/// What the host workspace's `.git` already holds (the run's starting point).
#[derive(Debug, Clone)]
pub struct HostObjects {
    /// The host workspace's `.git` (need not exist).
    git_dir: PathBuf,
    /// The length of an object name in bytes: 20 (SHA-1), or 32 in a SHA-256 repository.
    hash_len: usize,
}

/// A file of the crossing's `.git` that holds objects the host did not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewObjects {
    pub file: ObjectFile,
    hash_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFile {
    /// `objects/xx/yyyy…`: one zlib stream.
    Loose,
    /// `objects/pack/*.pack` (or a `tmp_pack_*` git left behind).
    Pack,
}

impl HostObjects {
    /// The objects of the host workspace's `.git` at `git_dir`.
    pub fn new(git_dir: impl Into<PathBuf>) -> HostObjects {
        let git_dir = git_dir.into();
        let sha256 = std::fs::read_to_string(git_dir.join("config")).is_ok_and(|config| {
            config.lines().any(|line| {
                let line = line.trim().to_ascii_lowercase();
                line.split_once('=').is_some_and(|(key, value)| {
                    key.trim() == "objectformat" && value.trim() == "sha256"
                })
            })
        });
        HostObjects {
            git_dir,
            hash_len: if sha256 { 32 } else { 20 },
        }
    }

    /// The file at `rel` in a root of `kind` (of `size` bytes), if it holds objects the host
    /// did not have: under the `.git` root, or the workspace's own `.git/` when the host had
    /// none (setup ran `git init`).
    pub fn new_objects(&self, kind: RootKind, rel: &[u8], size: u64) -> Option<NewObjects> {
        let in_git = match kind {
            RootKind::Git => rel,
            RootKind::Workspace => rel.strip_prefix(b".git/")?,
            RootKind::Persist => return None,
        };
        let file = object_file(in_git)?;
        let host = self
            .git_dir
            .join(Path::new(std::str::from_utf8(in_git).ok()?));
        let known = std::fs::symlink_metadata(host).is_ok_and(|m| m.is_file() && m.len() == size);
        (!known).then_some(NewObjects {
            file,
            hash_len: self.hash_len,
        })
    }
}

/// What kind of object file `rel` (relative to a `.git`) is, if any.
fn object_file(rel: &[u8]) -> Option<ObjectFile> {
    let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    match parts[..] {
        [b"objects", b"pack", name]
            if name.ends_with(b".pack") || name.starts_with(b"tmp_pack_") =>
        {
            Some(ObjectFile::Pack)
        }
        [b"objects", dir, name]
            if dir.len() == 2 && dir.iter().all(u8::is_ascii_hexdigit) && !name.is_empty() =>
        {
            Some(ObjectFile::Loose)
        }
        _ => None,
    }
}

/// Scan a file that crosses: its raw bytes always, and, for `objects`, what they inflate to.
/// The first hit, with where in the file it was (empty for the raw bytes).
pub fn scan(
    objects: Option<NewObjects>,
    reader: &mut dyn Read,
    secrets: &SecretSet,
) -> io::Result<Option<(Hit, String)>> {
    let Some(objects) = objects else {
        return Ok(secrets.scan_reader(reader)?.map(|hit| (hit, String::new())));
    };
    let mut tee = Tee {
        inner: reader,
        raw: secrets.scanner(),
        hit: None,
        read: 0,
    };
    let mut inflated = secrets.scanner();
    let found = match objects.file {
        ObjectFile::Loose => {
            let mut z = flate2::read::ZlibDecoder::new(&mut tee);
            match inflate_into(&mut z, &mut |chunk| inflated.feed(chunk)) {
                Inflated::Hit(hit) => Some((hit, " (a git object, inflated)".to_string())),
                Inflated::End | Inflated::Broken => None,
            }
        }
        ObjectFile::Pack => scan_pack(&mut tee, objects.hash_len, &mut inflated),
    };
    // The raw bytes to the end, whatever the inflating made of them.
    io::copy(&mut tee, &mut io::sink())?;
    if let Some(hit) = tee.hit.take() {
        return Ok(Some((hit, String::new())));
    }
    Ok(found)
}

/// Passes reads through, scanning the raw bytes on the way (as any crossing file is).
struct Tee<'a> {
    inner: &'a mut dyn Read,
    raw: Scanner,
    hit: Option<Hit>,
    /// Bytes read so far: where in the file the reader is.
    read: u64,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.hit.is_none() {
            self.hit = self.raw.feed(&buf[..n]);
        }
        Ok(n)
    }
}

enum Inflated {
    Hit(Hit),
    /// The stream's end.
    End,
    /// Not a zlib stream, or a corrupt one: what could be inflated was scanned.
    Broken,
}

/// Read `z` to its end, handing each chunk to `scan`, up to the first hit.
fn inflate_into(z: &mut dyn Read, scan: &mut dyn FnMut(&[u8]) -> Option<Hit>) -> Inflated {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match z.read(&mut buf) {
            Ok(0) => return Inflated::End,
            Ok(n) => {
                if let Some(hit) = scan(&buf[..n]) {
                    return Inflated::Hit(hit);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Inflated::Broken,
        }
    }
}

/// Object types in a pack.
const OFS_DELTA: u8 = 6;
const REF_DELTA: u8 = 7;

/// Parse a pack, inflating each object into `inflated`; the first hit and where. A pack
/// that stops making sense stops being parsed (its raw bytes are scanned all the same).
fn scan_pack(tee: &mut Tee<'_>, hash_len: usize, inflated: &mut Scanner) -> Option<(Hit, String)> {
    let mut input = BufReader::with_capacity(64 * 1024, tee);
    let mut header = [0u8; 12];
    input.read_exact(&mut header).ok()?;
    let version = u32::from_be_bytes(header[4..8].try_into().ok()?);
    if &header[..4] != b"PACK" || !(2..=3).contains(&version) {
        return None;
    }
    let count = u32::from_be_bytes(header[8..12].try_into().ok()?);
    for _ in 0..count {
        let offset = input.get_ref().read - input.buffer().len() as u64;
        let kind = object_header(&mut input)?;
        match kind {
            1..=4 => {}
            OFS_DELTA => {
                // The base's distance back: a varint.
                while byte(&mut input)? & 0x80 != 0 {}
            }
            REF_DELTA => io::copy(&mut (&mut input).take(hash_len as u64), &mut io::sink())
                .ok()
                .filter(|&n| n == hash_len as u64)
                .map(drop)?,
            _ => return None,
        }
        inflated.reset();
        let mut z = flate2::bufread::ZlibDecoder::new(&mut input);
        let mut delta = Delta::default();
        let inflating = match kind {
            OFS_DELTA | REF_DELTA => inflate_into(&mut z, &mut |c| delta.literals(c, inflated)),
            _ => inflate_into(&mut z, &mut |chunk| inflated.feed(chunk)),
        };
        match inflating {
            Inflated::Hit(hit) => {
                let what = if kind >= OFS_DELTA { "delta" } else { "object" };
                return Some((hit, format!(" (the git {what} at byte {offset}, inflated)")));
            }
            Inflated::End => {}
            // Where the next object starts is lost with it.
            Inflated::Broken => return None,
        }
    }
    None
}

/// One byte from `input`.
fn byte(input: &mut impl BufRead) -> Option<u8> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b).ok()?;
    Some(b[0])
}

/// A pack object's header: its type (3 bits) and its size (a varint, skipped).
fn object_header(input: &mut impl BufRead) -> Option<u8> {
    let first = byte(input)?;
    let kind = (first >> 4) & 0b111;
    let mut more = first & 0x80 != 0;
    let mut len = 1;
    while more {
        more = byte(input)? & 0x80 != 0;
        len += 1;
        if len > 10 {
            return None; // no object is that large: not a pack header
        }
    }
    Some(kind)
}

/// A delta's instructions, read as they are inflated, handing on the literal bytes.
#[derive(Default)]
struct Delta {
    state: DeltaState,
}

#[derive(Default, Clone, Copy)]
enum DeltaState {
    /// Reading the base's size (0) or the result's (1), both varints.
    #[default]
    Sizes,
    Result,
    /// The next byte is an instruction.
    Op,
    /// Skipping the offset and size bytes of a copy.
    Copy(u32),
    /// This many literal bytes follow.
    Insert(usize),
    /// Not a delta after all: every byte is scanned as it is.
    Raw,
}

impl Delta {
    fn literals(&mut self, mut chunk: &[u8], scanner: &mut Scanner) -> Option<Hit> {
        use DeltaState::*;
        while let Some((&b, rest)) = chunk.split_first() {
            match self.state {
                Insert(n) => {
                    let take = n.min(chunk.len());
                    let hit = scanner.feed(&chunk[..take]);
                    self.state = if take == n { Op } else { Insert(n - take) };
                    chunk = &chunk[take..];
                    if hit.is_some() {
                        return hit;
                    }
                    continue;
                }
                Raw => return scanner.feed(chunk),
                Sizes if b & 0x80 == 0 => self.state = Result,
                Result if b & 0x80 == 0 => self.state = Op,
                Sizes | Result => {}
                Op if b & 0x80 != 0 => {
                    let args = (b & 0x7f).count_ones();
                    self.state = if args == 0 { Op } else { Copy(args) };
                }
                Op if b == 0 => {
                    self.state = Raw;
                    return scanner.feed(chunk);
                }
                Op => self.state = Insert(b as usize),
                Copy(1) => self.state = Op,
                Copy(n) => self.state = Copy(n - 1),
            }
            chunk = rest;
        }
        None
    }
}

#[cfg(test)]
mod tests;
