//! What a build shows while it runs.
//!
//! An image build can take minutes (bootstrapping Debian, `apt-get install`), so silence would
//! look like a hang. On a terminal a spinner shows the current build step and its latest
//! output line; anywhere else (CI logs, a pipe) each step is one plain line on stderr, such as
//! `image base: Step 2/5 : RUN apt-get update`, and the command output is left out (it is kept
//! and shown when the step fails, see `super::build`). Everything goes to stderr, so a
//! command's stdout stays machine-readable.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Where a build's progress lines go when a program, not a person, is watching.
pub type ProgressSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// How progress is shown.
#[derive(Clone, Default)]
pub enum ProgressMode {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr.
    Plain,
    /// Nothing at all.
    Hidden,
    /// Each line (`image base: Step 2/5 : RUN ...`) handed to a sink; nothing on stderr (how
    /// the run library reports builds, as events).
    Sink(ProgressSink),
}

impl std::fmt::Debug for ProgressMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProgressMode::Auto => "Auto",
            ProgressMode::Plain => "Plain",
            ProgressMode::Hidden => "Hidden",
            ProgressMode::Sink(_) => "Sink",
        })
    }
}

/// The progress display of one image's build.
pub struct Progress {
    name: String,
    bar: Option<ProgressBar>,
    plain: bool,
    sink: Option<ProgressSink>,
    step: String,
}

impl Progress {
    pub fn new(name: &str, mode: ProgressMode) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let (bar, plain, sink) = match mode {
            ProgressMode::Auto if terminal => (Some(spinner(name)), false, None),
            ProgressMode::Auto | ProgressMode::Plain => (None, true, None),
            ProgressMode::Hidden => (None, false, None),
            ProgressMode::Sink(sink) => (None, false, Some(sink)),
        };
        Progress {
            name: name.to_string(),
            bar,
            plain,
            sink,
            step: String::new(),
        }
    }

    /// A line for everyone watching: the spinner's log, stderr, or the sink.
    fn line(&self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.println(line);
        } else if self.plain {
            eprintln!("{line}");
        } else if let Some(sink) = &self.sink {
            sink(line);
        }
    }

    /// A stage of the work that deserves its own line everywhere (bootstrapping a base,
    /// importing it).
    pub fn note(&self, msg: &str) {
        let line = format!("image {}: {msg}", self.name);
        self.line(&line);
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_string());
        }
        tracing::debug!("{line}");
    }

    /// A new build step (`Step 2/5 : RUN ...`).
    pub fn step(&mut self, step: &str) {
        self.step = step.to_string();
        let line = format!("image {}: {step}", self.name);
        match &self.bar {
            Some(bar) => bar.set_message(step.to_string()),
            None => self.line(&line),
        }
        tracing::debug!("{line}");
    }

    /// A line of the current step's output.
    pub fn output(&self, line: &str) {
        if let Some(bar) = &self.bar {
            if self.step.is_empty() {
                bar.set_message(line.to_string());
            } else {
                bar.set_message(format!("{} | {line}", self.step));
            }
        }
        tracing::trace!("image {}: | {line}", self.name);
    }

    /// Clear the spinner (it leaves no trace; the caller prints the outcome).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn spinner(name: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} image {prefix}: {wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
