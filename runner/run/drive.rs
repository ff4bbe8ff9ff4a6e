//! Driving one phase's container: both phases are driven the same way.
//!
//! Attach to the created container, start it, hand it its standard input (the setup phase's
//! secrets travel only there), pass its output through the redactor (one per stream) into the
//! log and the run's events as whole lines, and wait for it under the phase's time limit,
//! stopping it when the limit is reached.

use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use super::events::{Event, EventSink, Phase, Stream};
use crate::engine::{Chunk, Engine, EngineError, Exited};
use crate::record::{timestamp, CappedLog, PhaseReport};
use crate::scan::{Redactor, SecretSet};

/// Seconds between SIGTERM and SIGKILL when a phase is stopped.
pub const STOP_GRACE_SECS: i32 = 5;

/// Lines longer than this are passed on in pieces, so one endless line can't grow memory.
const MAX_LINE: usize = 64 * 1024;

/// How a phase ended.
#[derive(Debug, Clone)]
pub struct PhaseEnd {
    pub exited: Exited,
    pub timed_out: bool,
    pub report: PhaseReport,
}

/// One output stream of a phase: redacted, cut into whole lines, logged, reported.
struct Output {
    stream: Stream,
    redactor: Redactor,
    partial: Vec<u8>,
}

impl Output {
    fn new(stream: Stream, secrets: &SecretSet) -> Output {
        Output {
            stream,
            redactor: secrets.redactor(),
            partial: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8], to: &mut Sinks<'_>) {
        let clean = self.redactor.push(data);
        // The log keeps the redacted bytes as they came; only events are cut into lines.
        to.log.write(&clean);
        self.lines(&clean, to);
    }

    fn lines(&mut self, clean: &[u8], to: &mut Sinks<'_>) {
        // Everything up to the last newline goes at once; the rest waits for its line's end.
        let cut = clean.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
        match cut {
            Some(cut) if self.partial.is_empty() => {
                to.emit(self.stream, &clean[..cut]);
                self.partial.extend_from_slice(&clean[cut..]);
            }
            Some(cut) => {
                self.partial.extend_from_slice(&clean[..cut]);
                let lines = std::mem::take(&mut self.partial);
                to.emit(self.stream, &lines);
                self.partial.extend_from_slice(&clean[cut..]);
            }
            None => self.partial.extend_from_slice(clean),
        }
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            let mut piece = std::mem::replace(&mut self.partial, rest);
            piece.push(b'\n');
            to.emit(self.stream, &piece);
        }
    }

    fn finish(&mut self, to: &mut Sinks<'_>) {
        let tail = self.redactor.finish();
        to.log.write(&tail);
        self.lines(&tail, to);
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            to.emit(self.stream, &rest);
        }
    }
}

/// Where a phase's (redacted) output goes: the log, as it came, and the events, in lines.
struct Sinks<'a> {
    phase: Phase,
    log: CappedLog,
    events: &'a dyn EventSink,
}

impl Sinks<'_> {
    fn emit(&mut self, stream: Stream, lines: &[u8]) {
        if lines.is_empty() {
            return;
        }
        self.events.event(&Event::Output {
            phase: self.phase,
            stream,
            lines,
        });
    }
}

/// What a phase's container is given and where its output goes.
pub struct Drive<'a> {
    pub phase: Phase,
    pub stdin: Option<Zeroizing<Vec<u8>>>,
    pub secrets: &'a SecretSet,
    pub log: CappedLog,
    pub events: &'a dyn EventSink,
    pub limit: Duration,
}

/// Attach, start, feed stdin, pump output, wait (stopping the container at the limit).
pub async fn drive(engine: &dyn Engine, id: &str, d: Drive<'_>) -> Result<PhaseEnd, EngineError> {
    let attached = engine.attach(id, d.stdin.is_some()).await?;
    let started_at = SystemTime::now();
    let clock = Instant::now();
    engine.start_container(id).await?;
    if let (Some(mut input), Some(data)) = (attached.input, d.stdin) {
        // The program is small; a container that exits before reading it all is a setup
        // failure the exit code will show, not an engine error.
        let _ = input.write_all(&data).await;
        let _ = input.flush().await;
        let _ = input.shutdown().await;
        drop(data); // zeroized here
    }
    let mut sinks = Sinks {
        phase: d.phase,
        log: d.log,
        events: d.events,
    };
    let mut out = Output::new(Stream::Stdout, d.secrets);
    let mut err = Output::new(Stream::Stderr, d.secrets);
    let mut output = attached.output;
    let limit = d.limit;
    let pump = async {
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(Chunk::Stdout(b)) => out.push(&b, &mut sinks),
                Ok(Chunk::Stderr(b)) => err.push(&b, &mut sinks),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
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
        let rest = limit.saturating_sub(clock.elapsed());
        match tokio::time::timeout(rest, engine.wait_container(id)).await {
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
    out.finish(&mut sinks);
    err.finish(&mut sinks);
    let log_path = sinks.log.path().display().to_string();
    let (_, dropped) = sinks.log.finish();
    Ok(PhaseEnd {
        exited,
        timed_out,
        report: PhaseReport {
            started: Some(timestamp(started_at)),
            finished: Some(timestamp(SystemTime::now())),
            duration_ms: Some(clock.elapsed().as_millis() as u64),
            exit_code: Some(exited.code),
            timed_out,
            oom_killed: exited.oom_killed,
            log: Some(log_path),
            log_bytes_dropped: dropped,
        },
    })
}
