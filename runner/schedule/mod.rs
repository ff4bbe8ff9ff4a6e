//! Scheduled unattended runs: `schedules/NAME.yaml` and `airlock schedule`.
//!
//! One file per concern:
//! - [`definition`]: the YAML, checked with file:line:col errors;
//! - [`fire`]: fire times (croner on the wall clock, jiff for the zone) and the DST rules;
//! - [`policy`]: on time, missed (skip, catch-up), overlap (forbid, replace, allow);
//! - [`state`]: what survives a restart, written atomically under a lock;
//! - [`history`]: each schedule's runs, skips and misses, bounded by `keep_history`;
//! - [`git`]: the fresh checkout per fire and the `result: branch` (plumbing only);
//! - [`launch`]: one fire through the run library;
//! - [`daemon`]: the loop (`run`) and the single pass (`tick`), with an injected clock.
//!
//! Everything a scheduler keeps is under `<root>/.airlock/schedules/`: `state.json`,
//! `history/NAME.jsonl`, and `work/RUN-ID/`, each fire's own checkout while it runs. Run
//! records stay with every other run's, in `.airlock/runs/`.

pub mod daemon;
pub mod definition;
pub mod fire;
pub mod git;
pub mod history;
pub mod launch;
pub mod policy;
pub mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use definition::Schedule;

use crate::environment::EnvError;
use crate::root::ConfigRoot;

/// `<root>/schedules/`.
pub fn schedules_dir(root: &ConfigRoot) -> PathBuf {
    root.dir().join("schedules")
}

/// `<root>/.airlock/schedules/`.
pub fn data_dir(root: &ConfigRoot) -> PathBuf {
    root.dir().join(".airlock").join("schedules")
}

pub fn store(root: &ConfigRoot) -> state::Store {
    state::Store::new(data_dir(root).join("state.json"))
}

pub fn history(root: &ConfigRoot) -> history::History {
    history::History::new(data_dir(root).join("history"))
}

pub fn work_dir(root: &ConfigRoot) -> PathBuf {
    data_dir(root).join("work")
}

/// Load the named schedules (all of `schedules/*.yaml` when `names` is empty): the good
/// ones, and an error for each bad one.
pub fn load_all(
    root: &ConfigRoot,
    names: &[String],
) -> (BTreeMap<String, Schedule>, Vec<EnvError>) {
    let mut good = BTreeMap::new();
    let mut bad = Vec::new();
    let paths: Vec<Result<PathBuf, EnvError>> = if names.is_empty() {
        definition::list(root).into_iter().map(Ok).collect()
    } else {
        names.iter().map(|n| definition::path_of(root, n)).collect()
    };
    for p in paths {
        match p.and_then(|p| definition::load(root, &p)) {
            Ok(s) => {
                good.insert(s.name.clone(), s);
            }
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}
