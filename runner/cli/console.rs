//! The CLI's console: a run's events on the user's terminal (stderr).
//!
//! Each phase's lines behind a prefix (`setup | `, `agent | `; `setup ! `, `agent ! ` for
//! their standard error), sanitised so a hostile command
//! can't drive the terminal ([`crate::console::sanitize_into`]); airlock's own lines behind
//! `airlock | `; warnings as `airlock: warning: …`. On a terminal the boundary check shows a
//! spinner with its progress; in a pipe, plain lines only.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::console::{sanitize_into, show_bytes};
use crate::run::{Event, EventSink, Phase, Stream};

/// A status line from airlock itself (not from a phase).
pub fn note(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "airlock | {message}");
}

/// A warning, in the one format every airlock warning uses.
pub fn warning(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "airlock: warning: {message}");
}

/// The console sink of one `airlock run`.
pub struct Console {
    quiet: bool,
    terminal: bool,
    spinner: Mutex<Option<indicatif::ProgressBar>>,
}

impl Console {
    pub fn new(quiet: bool) -> Console {
        Console {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            spinner: Mutex::new(None),
        }
    }

    fn clear_spinner(&self) {
        if let Some(bar) = self.spinner.lock().ok().and_then(|mut s| s.take()) {
            bar.finish_and_clear();
        }
    }

    /// A phase's lines: `agent | ` for its standard output, `agent ! ` for its standard error
    /// (so the two stay apart when airlock's own stderr is read).
    fn output(&self, phase: Phase, stream: Stream, lines: &[u8]) {
        let prefix: &[u8] = match (phase, stream) {
            (Phase::Setup, Stream::Stdout) => b"setup | ",
            (Phase::Setup, Stream::Stderr) => b"setup ! ",
            (Phase::Agent, Stream::Stdout) => b"agent | ",
            (Phase::Agent, Stream::Stderr) => b"agent ! ",
        };
        let mut out = Vec::with_capacity(lines.len() + 16);
        let body = lines.strip_suffix(b"\n").unwrap_or(lines);
        for line in body.split(|&b| b == b'\n') {
            out.extend_from_slice(prefix);
            sanitize_into(line, &mut out);
            out.push(b'\n');
        }
        let _ = std::io::stderr().lock().write_all(&out);
    }
}

impl EventSink for Console {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::Warning(w) => warning(w),
            _ if self.quiet => {}
            Event::Started { run_id, record } => note(format!(
                "run {run_id}: started; record: {}",
                record.display()
            )),
            Event::Image { line } => eprintln!("{line}"),
            Event::PhaseStarted { phase, detail } => {
                note(format!("{}: started ({detail})", phase.name()))
            }
            Event::Output {
                phase,
                stream,
                lines,
            } => self.output(*phase, *stream, lines),
            Event::PhaseEnded {
                phase,
                duration,
                exit_code,
                timed_out,
            } => {
                let took = format!("{:.1} s", duration.as_secs_f64());
                let how = match (timed_out, exit_code) {
                    (true, _) => format!("timed out after {took}"),
                    (false, Some(0)) => format!("done in {took}"),
                    (false, Some(c)) => format!("exited with code {c} after {took}"),
                    (false, None) => format!("ended after {took}"),
                };
                note(format!("{}: {how}", phase.name()));
            }
            Event::BoundaryProgress { entries, bytes } => {
                if !self.terminal {
                    return;
                }
                let Ok(mut spinner) = self.spinner.lock() else {
                    return;
                };
                let bar = spinner.get_or_insert_with(|| {
                    let bar = indicatif::ProgressBar::new_spinner();
                    if let Ok(style) =
                        indicatif::ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}")
                    {
                        bar.set_style(style);
                    }
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    bar
                });
                bar.set_message(format!(
                    "boundary: checking what crosses: {entries} entries, {} read",
                    show_bytes(*bytes)
                ));
            }
            Event::BoundaryPassed {
                files,
                bytes,
                variables,
                duration,
            } => {
                self.clear_spinner();
                note(format!(
                    "boundary: {files} file{} ({}) and {variables} variable{} checked in {} ms; no secret value crosses",
                    if *files == 1 { "" } else { "s" },
                    show_bytes(*bytes),
                    if *variables == 1 { "" } else { "s" },
                    duration.as_millis()
                ));
            }
            Event::Note(n) => {
                self.clear_spinner();
                note(n)
            }
            Event::Finished { .. } => self.clear_spinner(),
        }
    }
}
