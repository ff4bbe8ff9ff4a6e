//! Step 3: the boundary. Everything that would cross is read once from the stopped setup
//! container and checked ([`crate::boundary::check`]); at the same time, what the archive
//! can't show (sockets, extended attributes) is removed from the volumes
//! ([`crate::boundary::sweep`]); then the setup container goes, before anything of the agent
//! phase exists, whatever the check said.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::events::Event;
use super::outcome::RunError;
use super::plan::MountPlan;
use super::prepare::Ready;
use super::setup::SetupDone;
use super::Ctx;
use crate::boundary::sweep::{self, SweepError};
use crate::boundary::{self, BoundaryError, Crossing, Tally};
use crate::patch;
use crate::record::Report;

pub async fn cross(
    run: &Ctx<'_>,
    ready: &Ready,
    plan: &MountPlan,
    setup: &SetupDone,
    report: &mut Report,
) -> Result<Crossing, RunError> {
    let engine = run.engine;
    run.events.event(&Event::Note(
        "boundary: checking what crosses for secret values".into(),
    ));
    let tally = Arc::new(Tally::default());
    // While the archive is read: remove what it can't show (sockets, extended attributes).
    let (mounts, folders) = plan.sweep_mounts();
    let roots = plan.roots.clone();
    let shown = move |p: &[u8]| boundary::agent_path(&roots, p);
    // A cache hit with no maintenance script ran nothing but airlock's own copy: what it
    // copied was swept when the entry was made, and the host workspace (packed as a tar)
    // carries neither sockets nor extended attributes. So there is nothing to sweep.
    let swept_already = crate::cache::nothing_to_sweep(ready, &run.task.env);
    let sweep = async {
        if swept_already {
            return Ok(Vec::new());
        }
        sweep::run(
            engine,
            &run.names.run_id,
            &ready.owner,
            mounts,
            folders,
            &ready.scanner,
            &shown,
        )
        .await
    };
    let host_git = run.task.workspace.join(".git");
    let check = boundary::check(
        engine,
        &setup.container,
        &plan.roots,
        ready.scanner.clone(),
        &run.task.env.env,
        tally.clone(),
        &host_git,
    );
    // Progress while it reads, for a driver that shows it.
    let progress = async {
        tokio::pin!(check);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                done = &mut check => break done,
                _ = tick.tick() => run.events.event(&Event::BoundaryProgress {
                    entries: tally.entries.load(Ordering::Relaxed),
                    bytes: tally.bytes.load(Ordering::Relaxed),
                }),
            }
        }
    };
    let (checked, swept) = tokio::join!(progress, sweep);
    run.lap("boundary check and sweep");
    engine.remove_container(&setup.container).await?;
    let crossing = match checked {
        Ok(c) => c,
        Err(BoundaryError::Engine(e)) => return Err(RunError::Engine(e)),
        Err(e) => {
            report.boundary.refused = Some(e.to_string());
            return Err(RunError::Boundary(e.to_string()));
        }
    };
    let removed = match swept {
        Ok(removed) => removed,
        Err(SweepError::Engine(e)) => return Err(RunError::Engine(e)),
        Err(e) => {
            report.boundary.refused = Some(e.to_string());
            return Err(RunError::Boundary(e.to_string()));
        }
    };
    if !removed.is_empty() {
        run.events.event(&Event::Warning(sweep::summary(&removed)));
    }
    report.boundary.removed = removed;
    let (files, bytes) = crossing
        .paths
        .iter()
        .fold((0, 0), |(f, b), p| (f + p.files, b + p.bytes));
    run.events.event(&Event::BoundaryPassed {
        files,
        bytes,
        variables: crossing.variables.len(),
        duration: Duration::from_millis(crossing.duration_ms),
    });
    report.boundary.duration_ms = Some(crossing.duration_ms);
    report.boundary.paths = crossing.paths.clone();
    report.boundary.variables = crossing.variables.iter().map(|(k, _)| k.clone()).collect();
    report.setup_changed = patch::changed_by_setup(&setup.packed, &crossing.workspace);
    run.checkpoint(report);
    Ok(crossing)
}
