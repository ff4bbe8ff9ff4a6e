//! The labels every engine object airlock creates carries.
//!
//! `airlock.managed=true` marks an object as airlock's; `airlock.run` and `airlock.phase` say
//! which run and phase made it; `airlock.owner` names the process that owns it
//! (`HOST:PID:START`), so `airlock gc` can tell a live run's objects (never touched) from the
//! leftovers of a run whose process died.

use std::collections::HashMap;

pub const MANAGED: &str = "airlock.managed";
pub const RUN: &str = "airlock.run";
pub const PHASE: &str = "airlock.phase";
pub const OWNER: &str = "airlock.owner";
/// Set on objects `--keep` preserves for `airlock shell`; `gc` leaves them unless asked.
pub const KEPT: &str = "airlock.kept";
/// On images: the content hash of the `images/<name>/` folder they were built from.
pub const IMAGE_HASH: &str = "airlock.image.hash";
/// On images: the `images/<name>` folder name they were built from.
pub const IMAGE_NAME: &str = "airlock.image.name";
/// On base images airlock bootstrapped (no registry): how it made them.
pub const IMAGE_BOOTSTRAP: &str = "airlock.image.bootstrap";

/// The label filter (`key=value`) that selects every object airlock manages.
pub fn managed_filter() -> String {
    format!("{MANAGED}=true")
}

/// Labels for an object of one run and phase.
pub fn for_run(run_id: &str, phase: &str, owner: &str) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED.to_string(), "true".to_string()),
        (RUN.to_string(), run_id.to_string()),
        (PHASE.to_string(), phase.to_string()),
        (OWNER.to_string(), owner.to_string()),
    ])
}
