//! What a run tells whoever drives it, and how they stop it.
//!
//! The run library owns no terminal and no process signal: a run reports what happens as
//! [`Event`]s to the [`EventSink`] its driver gives it (the CLI's console, the service's log
//! stream, a test's [`Memory`]), and it stops when its driver says so through [`Stop`] (the
//! CLI on SIGINT/SIGTERM, the service on an API cancel, a schedule's `replace`). Output
//! reaches a sink already redacted, in whole lines: nothing downstream ever holds a secret.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::outcome::{Outcome, Signal};

/// The two phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Setup,
    Agent,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Agent => "agent",
        }
    }
}

/// Which of a container's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Something that happened in a run, in the order it happened.
#[derive(Debug)]
pub enum Event<'a> {
    /// The record exists; nothing of the engine's yet.
    Started {
        run_id: &'a str,
        record: &'a Path,
    },
    /// A line of an image build (`image base: Step 2/5 : RUN …`).
    Image {
        line: &'a str,
    },
    PhaseStarted {
        phase: Phase,
        detail: String,
    },
    /// Whole lines of one stream (each ends in `\n`, except possibly a last piece of output
    /// that never ended its line), already redacted.
    Output {
        phase: Phase,
        stream: Stream,
        lines: &'a [u8],
    },
    PhaseEnded {
        phase: Phase,
        duration: Duration,
        exit_code: Option<i64>,
        timed_out: bool,
    },
    /// The boundary check is under way: entries seen and archive bytes read so far (sent
    /// about ten times a second while it runs).
    BoundaryProgress {
        entries: u64,
        bytes: u64,
    },
    /// The boundary let everything through.
    BoundaryPassed {
        files: u64,
        bytes: u64,
        variables: usize,
        duration: Duration,
    },
    /// Something the user should know that doesn't stop the run.
    Warning(String),
    /// A status line (what airlock is doing).
    Note(String),
    Finished {
        outcome: Outcome,
        exit_code: i32,
    },
}

/// Where a run's events go. Called from the run's task; keep it quick (a sink that does I/O
/// should buffer or hand off).
pub trait EventSink: Send + Sync {
    fn event(&self, event: &Event<'_>);
}

/// A sink that drops everything.
pub struct Discard;

impl EventSink for Discard {
    fn event(&self, _: &Event<'_>) {}
}

/// A sink that keeps every event as text, for tests: `kind` then its fields.
#[derive(Default)]
pub struct Memory {
    pub events: Mutex<Vec<String>>,
}

impl Memory {
    pub fn lines(&self) -> Vec<String> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl EventSink for Memory {
    fn event(&self, event: &Event<'_>) {
        let line = match event {
            Event::Started { run_id, .. } => format!("started {run_id}"),
            Event::Image { line } => format!("image {line}"),
            Event::PhaseStarted { phase, detail } => {
                format!("{} started ({detail})", phase.name())
            }
            Event::Output {
                phase,
                stream,
                lines,
            } => format!(
                "{} {:?} {}",
                phase.name(),
                stream,
                String::from_utf8_lossy(lines).trim_end()
            ),
            Event::PhaseEnded {
                phase,
                exit_code,
                timed_out,
                ..
            } => format!(
                "{} ended exit={exit_code:?} timed_out={timed_out}",
                phase.name()
            ),
            Event::BoundaryProgress { .. } => return,
            Event::BoundaryPassed {
                files, variables, ..
            } => format!("boundary passed files={files} variables={variables}"),
            Event::Warning(w) => format!("warning {w}"),
            Event::Note(n) => format!("note {n}"),
            Event::Finished { outcome, exit_code } => format!("finished {outcome} {exit_code}"),
        };
        if let Ok(mut events) = self.events.lock() {
            events.push(line);
        }
    }
}

/// Why a run was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The airlock process got a signal: outcome `interrupted`.
    Signal(Signal),
    /// Cancelled through the handle: outcome `cancelled`.
    Cancelled,
}

/// The handle that stops a run from outside: cheap to clone, one per run (or shared by runs
/// that stop together). The first reason given wins.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Cancel the run: it stops, removes what it made, writes its record as `cancelled`.
    pub fn cancel(&self) {
        self.stop(StopReason::Cancelled);
    }

    /// The process got `signal`: the run ends as `interrupted`.
    pub fn interrupt(&self, signal: Signal) {
        self.stop(StopReason::Signal(signal));
    }

    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Resolves when the run is to stop, with the reason.
    pub async fn stopped(&self) -> StopReason {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or(StopReason::Cancelled)
    }
}
