//! What must survive a restart: `.airlock/schedules/state.json`.
//!
//! Per schedule: the newest fire time already dealt with (fired, skipped or missed), whether
//! it is paused, and the runs in flight with the process that owns them, so that a scheduler
//! killed outright leaves enough for the next start to record those runs as `abandoned`.
//! Every change is a read-modify-write under an exclusive lock (`state.lock`), and the file
//! is replaced atomically (written beside, synced, renamed, folder synced): a crash leaves
//! the old state or the new one, never half of either.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub schedules: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The newest fire time dealt with, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<jiff::Timestamp>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<InFlight>,
}

/// A run started and not yet known to have ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub run_id: String,
    pub fire: jiff::Timestamp,
    pub started: jiff::Timestamp,
    /// `host:pid:start` of the scheduler that runs it ([`crate::cleanup::owner_id`]).
    pub owner: String,
    pub record: PathBuf,
    /// The run's own checkout, removed when the run ends.
    pub workspace: PathBuf,
    /// `on time` or `catch-up`.
    pub trigger: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("schedule state {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("schedule state {}: not valid: {source}\n  fix: move the file aside (the schedules start afresh: what fell in the gap is not caught up)", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The state file and its lock.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: PathBuf) -> Store {
        Store { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The state as it is now (empty when there is none yet).
    pub fn read(&self) -> Result<State, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Change the state: read, `change`, write atomically, all under the lock.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T, StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let lock = File::options()
            .create(true)
            .append(true)
            .open(self.path.with_extension("lock"))
            .map_err(|e| self.io(e))?;
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| self.io(e.into()))?;
        let mut state = self.read()?;
        let out = change(&mut state);
        let json = serde_json::to_vec_pretty(&state).expect("the state always serialises");
        write_atomic(&self.path, &json).map_err(|e| self.io(e))?;
        Ok(out)
    }
}

/// Replace `path` with `data`: a sibling temp file, synced, renamed over it, folder synced.
pub use crate::record::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_survives_a_crash_mid_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("schedules/state.json"));
        assert_eq!(store.read().unwrap(), State::default());
        let t: jiff::Timestamp = "2026-03-29T01:00:00Z".parse().unwrap();
        store
            .update(|s| s.schedules.entry("a".into()).or_default().last = Some(t))
            .unwrap();
        assert_eq!(store.read().unwrap().schedules["a"].last, Some(t));

        // A writer that died before its rename leaves a temp file beside the state, which
        // changes nothing: the state is the old one, whole.
        std::fs::write(
            dir.path().join("schedules/.tmpXYZ"),
            b"{\"schedules\": {\"a\": {\"la",
        )
        .unwrap();
        assert_eq!(store.read().unwrap().schedules["a"].last, Some(t));
        // The file is only ever whole JSON, and no temp file of ours is left.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("schedules"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp") && n != ".tmpXYZ")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        serde_json::from_slice::<State>(&std::fs::read(store.path()).unwrap()).unwrap();
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state.json"));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for j in 0..10 {
                        store
                            .update(|s| {
                                s.schedules.insert(format!("s{i}-{j}"), Entry::default());
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.read().unwrap().schedules.len(), 80);
    }

    #[test]
    fn a_corrupt_state_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state.json"));
        std::fs::write(store.path(), b"{ half").unwrap();
        let e = store.read().unwrap_err().to_string();
        assert!(e.contains("\n  fix: move the file aside"), "{e}");
    }
}
