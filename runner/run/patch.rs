//! Step 5: the patch. The agent phase's changes to the workspace as a git patch against the
//! workspace as it was packed at the start ([`crate::patch`]), written to the record, and
//! applied to the host workspace with `--apply` (never over a host edit made meanwhile).

use super::agent::AgentDone;
use super::events::Event;
use super::outcome::RunError;
use super::plan::WORKSPACE;
use super::prepare::Ready;
use super::setup::SetupDone;
use super::Ctx;
use crate::boundary::Crossing;
use crate::patch;
use crate::record::{PatchReport, Report};

/// How applying went, when it was asked for and could not be done: the reason.
pub type ApplyFailure = Option<String>;

pub async fn collect(
    run: &Ctx<'_>,
    ready: &Ready,
    agent: &AgentDone,
    setup: &SetupDone,
    crossing: &Crossing,
    report: &mut Report,
) -> Result<ApplyFailure, RunError> {
    let made = patch::build(
        run.engine,
        &agent.container,
        WORKSPACE,
        patch::Against {
            original: &run.task.workspace,
            packed: &setup.packed,
            boundary: &crossing.workspace,
            trusted: &ready.trusted,
            limit: run.task.env.limits.output_size,
        },
    )
    .await
    .map_err(|e| match e {
        patch::PatchError::TooLarge { .. } => RunError::OutputTooLarge {
            message: format!(
                "{e}\n  the agent command exited with code {}",
                agent.end.exited.code
            ),
            code: agent.end.exited.code.clamp(0, 255) as i32,
        },
        e => RunError::Internal(format!("changes.patch: {e}")),
    })?;
    run.lap("patch built");
    let patch_path = run
        .record
        .write_file("changes.patch", &made.bytes)
        .map_err(|e| RunError::Internal(format!("run record: {e}")))?;
    let held_back_file = if made.held_back.is_empty() {
        None
    } else {
        let path = run
            .record
            .write_file("held-back.patch", &made.held_back_bytes)
            .map_err(|e| RunError::Internal(format!("run record: {e}")))?;
        run.events.event(&Event::Warning(format!(
            "held back from changes.patch, because a later setup phase trusts them: {}; review {} and rerun with --apply-trusted PATH to let a path through",
            made.held_back.iter().map(|p| crate::boundary::paths::escape(p.as_bytes())).collect::<Vec<_>>().join(", "),
            path.display()
        )));
        Some(path.display().to_string())
    };
    let mut applied = false;
    let mut failed = None;
    if run.opts.apply && !made.bytes.is_empty() {
        if made.host_changed.is_empty() {
            match patch::apply(&run.task.workspace, &patch_path, &ready.trusted) {
                Ok(()) => applied = true,
                Err(e) => failed = Some(e.to_string()),
            }
        } else {
            failed = Some(format!(
                "refused to apply {}: the workspace changed on the host while the run ran ({}), and applying would write over that\n  fix: read the patch and apply what you want of it by hand (git apply --3way)",
                patch_path.display(),
                made.host_changed.join(", ")
            ));
        }
    }
    report.patch = Some(PatchReport {
        file: patch_path.display().to_string(),
        files_changed: made.files.len(),
        host_changed: made.host_changed.clone(),
        bytes: made.bytes.len() as u64,
        applied,
        held_back: made.held_back.clone(),
        held_back_file,
    });
    if !run.opts.keep {
        run.engine.remove_container(&agent.container).await?;
        run.lap("agent container removed");
    }
    Ok(failed)
}
