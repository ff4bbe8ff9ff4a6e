//! The run record: what a run leaves for people and scripts to read afterwards.
//!
//! `<out>/report.json` (machine-readable: what ran, how each phase ended, what crossed the
//! boundary, never a secret value), `setup.log` and `agent.log` (the phases' output, already
//! redacted, capped at [`LOG_CAP`] bytes each) and `changes.patch`. The folder is created and
//! checked for writability before any container starts, and the report is written however
//! the run ends.
//!
//! The report is first written when the run starts, with the outcome `incomplete` and no exit
//! code, and brought up to date as the run goes (after setup, after the boundary) before its
//! final version replaces it. An airlock killed outright (kill -9, power loss) can't finish
//! its record; what it leaves is still a record of the run, saying how far it got and that it
//! never ended, with the run id `airlock gc RUN-ID` needs.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// Logs keep at most this many bytes per phase; the rest is counted and a note closes the log.
pub const LOG_CAP: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot use {} for the run record: {source}\n  fix: pass --out DIR with a writable folder on a disk with free space", dir.display())]
    Unusable { dir: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// A run's record folder.
#[derive(Debug, Clone)]
pub struct Record {
    dir: PathBuf,
}

impl Record {
    /// Create the folder and prove it writable (a probe file is written, synced and removed),
    /// so a full disk or a read-only folder fails the run before anything starts.
    /// The folder is kept as a canonical path (absolute, no `..`, links resolved): the run
    /// compares it with workspace paths (to leave it out of the copy), `--apply` hands it to
    /// git running in the workspace, and it is what the user is shown.
    pub fn create(dir: &Path) -> Result<Record, RecordError> {
        let unusable = |source| RecordError::Unusable {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        let dir = &dir.canonicalize().map_err(unusable)?;
        let probe = dir.join(".probe");
        let mut f = File::create(&probe).map_err(unusable)?;
        f.write_all(&[0u8; 4096])
            .and_then(|_| f.sync_all())
            .map_err(unusable)?;
        drop(f);
        std::fs::remove_file(&probe).map_err(unusable)?;
        Ok(Record {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A capped log file for one phase.
    pub fn log(&self, phase: &str) -> Result<CappedLog, RecordError> {
        let path = self.dir.join(format!("{phase}.log"));
        let file = File::create(&path).map_err(|source| RecordError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(CappedLog {
            file: Some(io::BufWriter::new(file)),
            written: 0,
            dropped: 0,
            path,
        })
    }

    pub fn write_report(&self, report: &Report) -> Result<(), RecordError> {
        let path = self.dir.join("report.json");
        let json = serde_json::to_vec_pretty(report).expect("a report always serialises");
        write_atomic(&path, &json).map_err(|source| RecordError::Write { path, source })
    }

    pub fn write_file(&self, name: &str, data: &[u8]) -> Result<PathBuf, RecordError> {
        let path = self.dir.join(name);
        write_atomic(&path, data).map_err(|source| RecordError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// Replace `path` with `data` whole or not at all: a temporary file in the same folder,
/// synced, renamed over it, the folder synced (a crash leaves the old file or the new one).
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// A record whose run never ended (its report still `incomplete`: the process that owned it
/// died) is marked `abandoned`, with `why` as its error and `finished` as when that was found.
/// Returns whether it was marked (a record that ended, or none at all, is left alone).
pub fn mark_abandoned(dir: &Path, why: &str, finished: &str) -> io::Result<bool> {
    let path = dir.join("report.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if v["outcome"] != "incomplete" {
        return Ok(false);
    }
    v["outcome"] = Outcome::Abandoned.word().into();
    v["exit_code"] = Outcome::Abandoned.exit_code(None, None).into();
    v["error"] = why.into();
    v["finished"] = finished.into();
    let json = serde_json::to_vec_pretty(&v).expect("a JSON value serialises");
    write_atomic(&path, &json)?;
    Ok(true)
}

/// A log that keeps its first [`LOG_CAP`] bytes and counts the rest.
pub struct CappedLog {
    file: Option<io::BufWriter<File>>,
    written: u64,
    dropped: u64,
    path: PathBuf,
}

impl CappedLog {
    pub fn write(&mut self, data: &[u8]) {
        let room = LOG_CAP.saturating_sub(self.written) as usize;
        let keep = data.len().min(room);
        if keep > 0 {
            if let Some(f) = self.file.as_mut() {
                if f.write_all(&data[..keep]).is_err() {
                    self.file = None; // a failing disk must not stop the run; the report says so
                }
            }
            self.written += keep as u64;
        }
        self.dropped += (data.len() - keep) as u64;
    }

    /// Close the log, noting what the cap dropped. Returns (bytes kept, bytes dropped).
    pub fn finish(mut self) -> (u64, u64) {
        if let Some(mut f) = self.file.take() {
            if self.dropped > 0 {
                let _ = write!(
                    f,
                    "\n[airlock: log capped at {LOG_CAP} bytes; {} more bytes not kept]\n",
                    self.dropped
                );
            }
            let _ = f.flush();
        }
        (self.written, self.dropped)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub use crate::outcome::Outcome;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseReport {
    pub started: Option<String>,
    pub finished: Option<String>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub log: Option<String>,
    pub log_bytes_dropped: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrossedPath {
    /// The path in the containers (`/workspace`, or a persist path).
    pub path: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BoundaryReport {
    pub duration_ms: Option<u64>,
    pub paths: Vec<CrossedPath>,
    /// Names of the variables that crossed (the environment's plus `$AIRLOCK_ENV`'s).
    pub variables: Vec<String>,
    /// Why the boundary refused the run, if it did (names a secret and a place, never a value).
    pub refused: Option<String>,
    /// Sockets and extended attributes removed because the leak check can't read them
    /// (`boundary::sweep`), redacted.
    pub removed: Vec<crate::boundary::sweep::Removed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PatchReport {
    pub file: String,
    pub files_changed: usize,
    pub bytes: u64,
    pub applied: bool,
    /// Changed paths that were also changed on the host while the run ran (`--apply`
    /// refuses to write over them).
    pub host_changed: Vec<String>,
    /// Changed paths a later setup phase trusts, left out of the patch (`--apply-trusted`
    /// lets them through), and the file holding their changes for review.
    pub held_back: Vec<String>,
    pub held_back_file: Option<String>,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: String,
    pub airlock_version: &'static str,
    pub outcome: Outcome,
    /// airlock's exit code; none while the run is [`Outcome::Incomplete`].
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub environment: EnvironmentReport,
    pub image: Option<ImageReport>,
    pub workspace: String,
    pub command: Vec<String>,
    pub started: String,
    pub finished: Option<String>,
    pub setup: PhaseReport,
    pub boundary: BoundaryReport,
    pub agent: PhaseReport,
    /// Names of the secrets the setup phase had (never values).
    pub secrets: Vec<String>,
    pub network: NetworkReport,
    /// Files of the original workspace that the setup phase changed or removed.
    pub setup_changed: Vec<String>,
    pub patch: Option<PatchReport>,
    pub kept: bool,
    /// Tags the driver of the run gave it (e.g. `schedule: nightly`), for finding it later.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The setup cache, when the environment has one ([`crate::cache`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheReport>,
}

/// `report.json`'s `cache`: the key, whether it hit, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct CacheReport {
    pub key: String,
    pub hit: bool,
    /// Why the run did not hit (`setup script changed`, `no entry yet`, …); none on a hit.
    pub reason: Option<String>,
    /// Whether this run saved what crossed as the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentReport {
    pub name: String,
    pub path: String,
    pub content_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub reference: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkReport {
    pub setup: String,
    pub agent: String,
    /// With an allowlist: what the egress proxy decided (`network.jsonl` has each request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestsReport>,
}

/// `report.json`'s `network.requests`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RequestsReport {
    pub allowed: u64,
    pub denied: u64,
    /// The record, one JSON line per request.
    pub record: String,
    /// The proxy ended before the agent phase did: requests after that failed.
    pub proxy_died: bool,
    /// What the allowlist allowed, with `host-registries` read on this host.
    pub allow: Vec<String>,
}

/// RFC 3339 time, UTC, to the millisecond.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_the_cap_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Record::create(dir.path()).unwrap();
        let mut log = rec.log("agent").unwrap();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..(LOG_CAP / chunk.len() as u64 + 3) {
            log.write(&chunk);
        }
        let (kept, dropped) = log.finish();
        assert_eq!(kept, LOG_CAP);
        assert_eq!(dropped, 3 * 1024 * 1024);
        let len = std::fs::metadata(dir.path().join("agent.log"))
            .unwrap()
            .len();
        assert!(len > LOG_CAP && len < LOG_CAP + 200, "{len}");
    }

    #[test]
    fn the_folder_is_kept_normalised() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let rec = Record::create(&dir.path().join("a/../runs/r1")).unwrap();
        assert_eq!(
            rec.dir(),
            dir.path().canonicalize().unwrap().join("runs/r1")
        );
    }

    #[test]
    fn an_unwritable_folder_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Record::create(&file.join("run")).unwrap_err();
        assert!(err.to_string().contains("--out"), "{err}");
    }
}
