//! Removing what runs make, now or later.
//!
//! Every container, network and volume of a run carries `airlock.run=<id>` and
//! `airlock.owner=<host>:<pid>:<start time>`. A run removes its own objects by the run label
//! when it ends, however it ends ([`remove_run`]). When the airlock process itself dies
//! (kill -9, power loss) its objects stay behind; [`gc`] finds them and removes those whose
//! owner process is no longer alive on this host, and never touches a live run's.
//!
//! `gc` looks only at objects that carry a run id. `airlock.managed=true` alone is not enough:
//! a container inherits its image's labels, and airlock's images carry that label, so the
//! engine's own step containers during an image build (and any container someone starts
//! from an airlock image by hand) have it too, with no run and no owner. Those are not a dead
//! run's leftovers; removing them would break a build in progress.

use std::time::Duration;

use crate::engine::{labels, Engine, EngineError, Object, ObjectKind};

/// This process, as written in the `airlock.owner` label: `HOST:PID:START` where START is
/// the process start time in clock ticks since boot (so a reused pid is not mistaken for us).
pub fn owner_id() -> String {
    let pid = std::process::id();
    format!("{}:{}:{}", hostname(), pid, process_start(pid).unwrap_or(0))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Field 22 of /proc/PID/stat: the process start time.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process an `airlock.owner` label names is alive. Owners on other hosts are
/// assumed alive: this host can't know.
pub fn owner_alive(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false; // malformed: nobody can own it
    };
    if host != hostname() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match process_start(pid) {
        Some(now) => start
            .parse::<u64>()
            .map(|s| s == now || s == 0)
            .unwrap_or(false),
        None => false,
    }
}

/// Remove every object of one run: containers first (they hold the volumes and the network).
/// Errors are collected, not fatal: as much as possible goes.
///
/// `settled` says the run's own requests all came back. When it is false (the run was
/// interrupted, or the engine failed mid-request), a create request may still be in flight
/// and land after the first listing, so a second pass follows a short pause. A run that
/// ended normally pays for one listing only.
pub async fn remove_run(engine: &dyn Engine, run_id: &str, settled: bool) -> Vec<EngineError> {
    let filter = vec![format!("{}={run_id}", labels::RUN)];
    let mut errors = Vec::new();
    let passes = if settled { 1 } else { 2 };
    for pass in 0..passes {
        if pass == 1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        match engine.list_labelled(&filter).await {
            Ok(objects) => errors.extend(
                remove_all(
                    engine,
                    objects.into_iter().filter(|o| !is_kept(o)).collect(),
                )
                .await,
            ),
            Err(e) => errors.push(e),
        }
    }
    errors
}

fn is_kept(o: &Object) -> bool {
    o.labels.get(labels::KEPT).is_some_and(|v| v == "true")
}

/// Containers first, all at once; then networks and volumes, all at once (a volume or
/// network in use by a container can't go, and nothing else orders them).
async fn remove_all(engine: &dyn Engine, objects: Vec<Object>) -> Vec<EngineError> {
    let (containers, rest): (Vec<Object>, Vec<Object>) = objects
        .into_iter()
        .partition(|o| o.kind == ObjectKind::Container);
    let mut errors = Vec::new();
    for group in [containers, rest] {
        let removals = group.iter().map(|o| engine.remove_object(o));
        errors.extend(
            futures_util::future::join_all(removals)
                .await
                .into_iter()
                .filter_map(Result::err),
        );
    }
    errors
}

/// What `gc` found.
#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: Vec<Object>,
    /// Objects of runs whose owner is alive (or on another host): left alone.
    pub live: Vec<Object>,
    /// Objects `--keep` preserved: left alone unless asked.
    pub kept: Vec<Object>,
    pub errors: Vec<EngineError>,
}

/// Remove objects of runs whose airlock process is gone. `dry_run` only lists them;
/// `include_kept` also removes what `--keep` preserved. A non-empty `runs` limits it to
/// those run ids (so one kept run can be discarded without touching another's).
pub async fn gc(
    engine: &dyn Engine,
    dry_run: bool,
    include_kept: bool,
    runs: &[String],
) -> Result<GcReport, EngineError> {
    let objects = engine.list_labelled(&[labels::managed_filter()]).await?;
    let mut report = GcReport::default();
    let mut doomed = Vec::new();
    for o in objects {
        let run = o.labels.get(labels::RUN).map(String::as_str).unwrap_or("");
        if run.is_empty() || !runs.is_empty() && !runs.iter().any(|r| r == run) {
            continue;
        }
        let owner = o
            .labels
            .get(labels::OWNER)
            .map(String::as_str)
            .unwrap_or("");
        if is_kept(&o) && !include_kept {
            report.kept.push(o);
        } else if !is_kept(&o) && owner_alive(owner) {
            report.live.push(o);
        } else {
            doomed.push(o);
        }
    }
    if !dry_run {
        report.errors = remove_all(engine, doomed.clone()).await;
    }
    report.removed = doomed;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        assert!(owner_alive(&owner_id()));
        let me = owner_id();
        let (host, _) = me.split_once(':').unwrap();
        // pid 0x3fffffff does not exist on Linux (pid_max is at most 2^22).
        assert!(!owner_alive(&format!("{host}:1073741823:5")));
        // Our own pid with another start time: a reused pid, not us.
        assert!(!owner_alive(&format!("{host}:{}:1", std::process::id())));
        assert!(!owner_alive("garbage"));
    }
}
