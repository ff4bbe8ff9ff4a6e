//! Running the two phases.
//!
//! Both phases are driven the same way ([`drive`]): attach to the created container, start
//! it, hand it its standard input (the setup phase's secrets travel only there), pass its
//! output through the redactor into the log and the console as it comes, and wait for it
//! under the phase's time limit. What differs is the container each phase gets:
//! [`setup::plan`] and [`agent::plan`].

pub mod agent;
pub mod setup;

use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use crate::console::PhaseConsole;
use crate::engine::{Engine, EngineError, Exited};
use crate::record::{timestamp, CappedLog, PhaseReport};
use crate::scan::Redactor;

/// Seconds between SIGTERM and SIGKILL when a phase is stopped.
pub const STOP_GRACE_SECS: i32 = 5;

/// How a phase ended.
#[derive(Debug, Clone)]
pub struct PhaseEnd {
    pub exited: Exited,
    pub timed_out: bool,
    pub report: PhaseReport,
}

/// Where a phase's output goes.
pub struct Sinks {
    pub redactor: Redactor,
    pub log: CappedLog,
    pub console: PhaseConsole,
}

/// Attach, start, feed stdin, pump output, wait (killing the container at `limit`).
pub async fn drive(
    engine: &Engine,
    id: &str,
    stdin: Option<Zeroizing<Vec<u8>>>,
    mut sinks: Sinks,
    limit: Duration,
) -> Result<PhaseEnd, EngineError> {
    let attached = engine.attach(id, stdin.is_some()).await?;
    let started_at = SystemTime::now();
    let clock = Instant::now();
    engine.start_container(id).await?;
    if let (Some(mut input), Some(data)) = (attached.input, stdin) {
        // The program is small; a container that exits before reading it all is a setup
        // failure the exit code will show, not an engine error.
        let _ = input.write_all(&data).await;
        let _ = input.flush().await;
        let _ = input.shutdown().await;
        drop(data); // zeroized here
    }
    let mut output = attached.output;
    let pump = async {
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(chunk) => {
                    let clean = sinks.redactor.push(chunk.bytes());
                    sinks.log.write(&clean);
                    sinks.console.push(&clean);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    let remaining = |spent: Duration| limit.saturating_sub(spent);
    let timed_out = match tokio::time::timeout(limit, pump).await {
        Ok(Ok(())) => false,
        Ok(Err(e)) => {
            tracing::debug!("output stream of {id} broke: {e}");
            false
        }
        Err(_) => true,
    };
    // Output closed (or broke); the process may still be running with its streams closed.
    // Wait for it for the rest of the limit, then stop it.
    let waited = if timed_out {
        None
    } else {
        let wait = engine.wait_container(id);
        match tokio::time::timeout(remaining(clock.elapsed()), wait).await {
            Ok(exited) => Some(exited?),
            Err(_) => None,
        }
    };
    let timed_out = waited.is_none();
    let exited = match waited {
        Some(exited) => exited,
        None => {
            engine.stop_container(id, STOP_GRACE_SECS).await?;
            engine.wait_container(id).await?
        }
    };
    let tail = sinks.redactor.finish();
    sinks.log.write(&tail);
    sinks.console.push(&tail);
    sinks.console.finish();
    let log_path = sinks.log.path().display().to_string();
    let (_, dropped) = sinks.log.finish();
    let finished = SystemTime::now();
    Ok(PhaseEnd {
        exited,
        timed_out,
        report: PhaseReport {
            started: Some(timestamp(started_at)),
            finished: Some(timestamp(finished)),
            duration_ms: Some(clock.elapsed().as_millis() as u64),
            exit_code: Some(exited.code),
            timed_out,
            oom_killed: exited.oom_killed,
            log: Some(log_path),
            log_bytes_dropped: dropped,
        },
    })
}

/// Names of one run's engine objects, derived from the run id in one place.
#[derive(Debug, Clone)]
pub struct RunNames {
    pub run_id: String,
}

impl RunNames {
    pub fn container(&self, phase: &str) -> String {
        format!("airlock-{}-{phase}", self.run_id)
    }
    pub fn network(&self) -> String {
        format!("airlock-{}-setup", self.run_id)
    }
    /// The volume that carries `root` across the boundary.
    pub fn volume(&self, root: &crate::boundary::Root) -> String {
        format!("airlock-{}-{}", self.run_id, root.alias)
    }
}

/// Where the workspace lives in both phases.
pub const WORKSPACE: &str = "/workspace";
/// Where the setup phase writes variables for the agent phase.
pub const AIRLOCK_ENV_PATH: &str = crate::boundary::ENV_FILE;
