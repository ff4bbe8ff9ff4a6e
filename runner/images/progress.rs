//! What a build shows while it runs.
//!
//! An image build can take minutes (bootstrapping Debian, `apt-get install`), so silence would
//! look like a hang. On a terminal a spinner shows the current build step and its latest
//! output line; anywhere else (CI logs, a pipe) each step is one plain line on stderr, such as
//! `image base: Step 2/5 : RUN apt-get update`, and the command output is left out (it is kept
//! and shown when the step fails, see [`super::build`]). Everything goes to stderr, so a
//! command's stdout stays machine-readable.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr.
    Plain,
    /// Nothing at all.
    Hidden,
}

/// The progress display of one image's build.
pub struct Progress {
    name: String,
    bar: Option<ProgressBar>,
    plain: bool,
    step: String,
}

impl Progress {
    pub fn new(name: &str, mode: ProgressMode) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            ProgressMode::Auto if terminal => (Some(spinner(name)), false),
            ProgressMode::Auto | ProgressMode::Plain => (None, true),
            ProgressMode::Hidden => (None, false),
        };
        Progress {
            name: name.to_string(),
            bar,
            plain,
            step: String::new(),
        }
    }

    /// A stage of the work that deserves its own line everywhere (bootstrapping a base,
    /// importing it).
    pub fn note(&self, msg: &str) {
        let line = format!("image {}: {msg}", self.name);
        if let Some(bar) = &self.bar {
            bar.println(&line);
            bar.set_message(msg.to_string());
        } else if self.plain {
            eprintln!("{line}");
        }
        tracing::debug!("{line}");
    }

    /// A new build step (`Step 2/5 : RUN ...`).
    pub fn step(&mut self, step: &str) {
        self.step = step.to_string();
        if let Some(bar) = &self.bar {
            bar.set_message(step.to_string());
        } else if self.plain {
            eprintln!("image {}: {step}", self.name);
        }
        tracing::debug!("image {}: {step}", self.name);
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
