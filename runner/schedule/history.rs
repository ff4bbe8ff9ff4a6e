//! A schedule's history: `.airlock/schedules/history/NAME.jsonl`, one JSON line per ended
//! run, skipped fire or missed window, oldest first. Runs keep their records with every
//! other run (`.airlock/runs/<id>/`, labelled `schedule: NAME`); the history holds what a
//! record can't (skips, misses) and a summary of each run so `history` reads one file.
//! `keep_history` bounds the runs kept: past it, the oldest run's line and its record folder
//! go (and skip lines older than the oldest run kept).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Run,
    Skipped,
    Missed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// The fire time (for a missed window, its newest).
    pub fire: jiff::Timestamp,
    /// When this was recorded.
    pub at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<PathBuf>,
    /// For a missed window: how many fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Why it was skipped or missed, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Entry {
    pub fn new(kind: Kind, fire: jiff::Timestamp, at: jiff::Timestamp) -> Entry {
        Entry {
            kind,
            fire,
            at,
            trigger: None,
            run_id: None,
            outcome: None,
            exit_code: None,
            duration_ms: None,
            patch_bytes: None,
            branch: None,
            record: None,
            count: None,
            note: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn new(dir: PathBuf) -> History {
        History { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.jsonl"))
    }

    /// Every entry, oldest first (a torn last line, from a crash mid-append, is ignored).
    pub fn read(&self, name: &str) -> Vec<Entry> {
        let Ok(text) = std::fs::read_to_string(self.file(name)) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Add an entry; then, past `keep` runs, drop the oldest runs and their records.
    pub fn append(&self, name: &str, entry: &Entry, keep: usize) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.file(name);
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        let mut line = Vec::new();
        // A crash mid-append leaves a torn last line: end it, so this entry stands alone.
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            std::os::unix::fs::FileExt::read_exact_at(&*file, &mut last, len - 1)?;
            if last[0] != b'\n' {
                line.push(b'\n');
            }
        }
        line.extend(serde_json::to_vec(entry).expect("an entry always serialises"));
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()?;
        self.prune(&path, keep)
    }

    fn prune(&self, path: &Path, keep: usize) -> std::io::Result<()> {
        let entries: Vec<Entry> = std::fs::read_to_string(path)?
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let runs = entries.iter().filter(|e| e.kind == Kind::Run).count();
        if runs <= keep {
            return Ok(());
        }
        // Keep from the oldest run kept on: older runs and the skips among them go.
        let first_kept = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == Kind::Run)
            .nth(runs - keep)
            .map(|(i, _)| i)
            .unwrap_or(0);
        for e in &entries[..first_kept] {
            if let Some(record) = &e.record {
                // Only a record folder of ours: it holds a report.json.
                if e.kind == Kind::Run && record.join("report.json").is_file() {
                    let _ = std::fs::remove_dir_all(record);
                }
            }
        }
        let kept = &entries[first_kept..];
        let mut text = Vec::new();
        for e in kept {
            text.extend(serde_json::to_vec(e).expect("an entry always serialises"));
            text.push(b'\n');
        }
        super::state::write_atomic(path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_history_drops_the_oldest_runs_and_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path().join("history"));
        let t: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        for i in 0..5 {
            let record = dir.path().join(format!("runs/r{i}"));
            std::fs::create_dir_all(&record).unwrap();
            std::fs::write(record.join("report.json"), "{}").unwrap();
            let mut e = Entry::new(Kind::Run, t, t);
            e.run_id = Some(format!("r{i}"));
            e.record = Some(record);
            h.append("s", &e, 3).unwrap();
            h.append("s", &Entry::new(Kind::Skipped, t, t), 3).unwrap();
        }
        let runs: Vec<String> = h
            .read("s")
            .iter()
            .filter_map(|e| e.run_id.clone())
            .collect();
        assert_eq!(runs, ["r2", "r3", "r4"]);
        assert!(!dir.path().join("runs/r1").exists());
        assert!(dir.path().join("runs/r2").exists());
        // A torn line (a crash mid-append) is ignored, not fatal.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("history/s.jsonl"))
            .unwrap()
            .write_all(b"{\"kind\":\"ru")
            .unwrap();
        assert_eq!(h.read("s").len(), 6);
    }
}
