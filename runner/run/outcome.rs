//! Step 6: the outcome. Every way a run can end is a [`RunError`] variant or the agent
//! command's own exit, and each maps to one [`Outcome`], whose exit code lives in
//! [`crate::outcome`]: one error path from any step to the record and the exit code.

use super::agent::AgentDone;
use super::events::StopReason;
use crate::engine::EngineError;
use crate::environment::Environment;
use crate::images::ImageError;
use crate::outcome::Outcome;

/// Why a run ended before, or instead of, the agent command's own ending.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input: the environment, a secret, a flag, the record folder.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Image(ImageError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    SetupFailed(String),
    #[error("{0}")]
    Boundary(String),
    /// The agent phase ran out of time.
    #[error("{0}")]
    TimedOut(String),
    /// The agent command failed after the OOM killer ended one of its processes.
    #[error("{message}")]
    OutOfMemory { message: String, code: i32 },
    /// `--apply` could not apply the patch; the agent command's code is kept.
    #[error("{message}")]
    ApplyFailed { message: String, code: i32 },
    /// The agent's changed files exceed `limits.output_size`; the agent command's code is kept.
    #[error("{message}")]
    OutputTooLarge { message: String, code: i32 },
    /// Stopped from outside (a signal, a cancel).
    #[error("{message}")]
    Stopped { reason: StopReason, message: String },
    #[error("{0}")]
    Internal(String),
}

impl RunError {
    pub fn outcome(&self) -> Outcome {
        match self {
            RunError::Config(_) => Outcome::ConfigError,
            RunError::Image(e) => e.outcome(),
            RunError::Engine(_) => Outcome::EngineError,
            RunError::SetupFailed(_) => Outcome::SetupFailed,
            RunError::Boundary(_) => Outcome::BoundaryRefused,
            RunError::TimedOut(_) => Outcome::TimedOut,
            RunError::OutOfMemory { .. } => Outcome::OutOfMemory,
            RunError::ApplyFailed { .. } => Outcome::ApplyFailed,
            RunError::OutputTooLarge { .. } => Outcome::OutputTooLarge,
            RunError::Stopped {
                reason: StopReason::Signal(_),
                ..
            } => Outcome::Interrupted,
            RunError::Stopped {
                reason: StopReason::Cancelled,
                ..
            } => Outcome::Cancelled,
            RunError::Internal(_) => Outcome::InternalError,
        }
    }

    pub fn exit_code(&self) -> i32 {
        let (command, signal) = match self {
            RunError::OutOfMemory { code, .. }
            | RunError::ApplyFailed { code, .. }
            | RunError::OutputTooLarge { code, .. } => (Some(*code), None),
            RunError::Stopped {
                reason: StopReason::Signal(s),
                ..
            } => (None, Some(*s)),
            _ => (None, None),
        };
        self.outcome().exit_code(command, signal)
    }

    /// Stopped from outside, with a message saying when.
    pub fn stopped(reason: StopReason, when: &str) -> RunError {
        let message = match reason {
            StopReason::Signal(s) => format!("interrupted by {}{when}", s.name()),
            StopReason::Cancelled => format!("cancelled{when}"),
        };
        RunError::Stopped { reason, message }
    }
}

/// How the agent phase's own ending becomes the run's.
pub fn of_agent(
    env: &Environment,
    agent: &AgentDone,
    apply_failed: Option<String>,
) -> Result<(Outcome, i32), RunError> {
    let end = &agent.end;
    if end.timed_out {
        return Err(RunError::TimedOut(format!(
            "the agent phase timed out after {} and was stopped\n  fix: raise limits.agent_timeout in {}, or make the command finish sooner",
            humantime::format_duration(env.limits.agent_timeout),
            env.path.display()
        )));
    }
    let code = end.exited.code.clamp(0, 255) as i32;
    if let Some(e) = apply_failed {
        return Err(RunError::ApplyFailed {
            message: format!(
                "--apply: {e}\n  the agent command exited with code {code}; the workspace is untouched"
            ),
            code,
        });
    }
    if code != 0 && end.exited.oom_killed {
        return Err(RunError::OutOfMemory {
            message: format!(
                "the agent command exited with code {code} after running out of memory: {}\n  fix: raise limits.memory in {}, or make the command use less",
                super::oom_note(env),
                env.path.display()
            ),
            code,
        });
    }
    let outcome = if code == 0 {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    };
    Ok((outcome, code))
}
