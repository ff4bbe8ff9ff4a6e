//! One `docker build` through the engine API, with no registry and nothing left behind.
//!
//! The context is the in-process tar from [`super::context`]; the engine's classic builder
//! runs the Dockerfile (`rm` and `forcerm`, so no intermediate container survives even a
//! failed step; `pull` unset, so nothing is fetched: every base was made present beforehand by
//! [`super::bootstrap`]). The image is tagged `airlock/<name>:<hash12>` and labelled with the
//! folder name and full content hash, which is what the up-to-date check reads back.
//!
//! The builder's output stream is followed line by line: `Step N/M : ...` lines drive the
//! progress display, and the output of the current step is kept (its last lines) so that a
//! failing `RUN` is reported with the image, the step and what the step printed, not only
//! "returned a non-zero code".

use std::collections::{HashMap, VecDeque};

use super::progress::Progress;
use super::ImageError;
use crate::engine::labels;
use crate::engine::{BuildSpec, Built, Engine};

/// How many lines of a failed step's output an error shows.
const TAIL_LINES: usize = 25;

/// What to build.
pub struct BuildRequest<'a> {
    /// The `images/<name>` folder name.
    pub name: &'a str,
    /// Its Dockerfile (for messages).
    pub dockerfile: &'a std::path::Path,
    /// The tag to give the result (`airlock/<name>:<hash12>`).
    pub tag: &'a str,
    /// The folder's full content hash.
    pub hash: &'a str,
    /// The build context (a tar).
    pub context: Vec<u8>,
    /// Build every step again, ignoring the builder's cache.
    pub no_cache: bool,
}

/// Build and tag the image; the engine's id of the result when the builder reported it.
pub async fn build(
    engine: &dyn Engine,
    req: BuildRequest<'_>,
    progress: &mut Progress,
) -> Result<Option<String>, ImageError> {
    let labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::IMAGE_NAME.to_string(), req.name.to_string()),
        (labels::IMAGE_HASH.to_string(), req.hash.to_string()),
    ]);
    let spec = BuildSpec {
        tag: req.tag.to_string(),
        labels,
        context: req.context,
        no_cache: req.no_cache,
    };
    let mut log = StepLog::default();
    let built = engine
        .build_image(spec, &mut |text| log.feed(text, progress))
        .await?;
    log.flush(progress);
    match built {
        Built::Image(id) => Ok(id),
        Built::StepFailed(message) => Err(ImageError::BuildFailed {
            name: req.name.to_string(),
            dockerfile: req.dockerfile.to_path_buf(),
            step: log.step.clone(),
            message,
            tail: log.tail(),
        }),
    }
}

/// The builder's output, split into steps and lines.
#[derive(Default)]
struct StepLog {
    /// The current step (`Step 2/5 : RUN ...`), empty before the first.
    step: String,
    /// The current step's last output lines.
    lines: VecDeque<String>,
    /// A line not yet ended by a newline.
    pending: String,
}

impl StepLog {
    fn feed(&mut self, text: &str, progress: &mut Progress) {
        self.pending.push_str(text);
        while let Some(pos) = self.pending.find(['\n', '\r']) {
            let line: String = self.pending.drain(..=pos).collect();
            self.line(&strip_ansi(&line), progress);
        }
    }

    fn flush(&mut self, progress: &mut Progress) {
        let rest = std::mem::take(&mut self.pending);
        self.line(&strip_ansi(&rest), progress);
    }

    fn line(&mut self, line: &str, progress: &mut Progress) {
        if line.trim().is_empty() {
            return;
        }
        if line.starts_with("Step ") && line.contains(" : ") {
            self.step = line.to_string();
            self.lines.clear();
            progress.step(line);
            return;
        }
        // The builder's own bookkeeping, not the step's output.
        let own = line.starts_with(" ---> ")
            || line.starts_with("Removing intermediate container")
            || line.starts_with("Successfully built")
            || line.starts_with("Successfully tagged");
        if own {
            return;
        }
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_string());
        progress.output(line);
    }

    fn tail(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// The line without terminal escape sequences (the builder colours a step's stderr) and
/// trailing whitespace.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters, then one final byte in '@'..='~'.
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::super::progress::ProgressMode;
    use super::*;

    #[test]
    fn steps_and_output_are_told_apart() {
        let mut p = Progress::new("t", ProgressMode::Hidden);
        let mut log = StepLog::default();
        log.feed("Step 1/2 : FROM airlock/busybox\n ---> 1234\n", &mut p);
        log.feed(
            "Step 2/2 : RUN echo hi && false\n ---> Running in ab\nh",
            &mut p,
        );
        log.feed("i\nsecond line\r", &mut p);
        log.feed("third", &mut p);
        log.flush(&mut p);
        assert_eq!(log.step, "Step 2/2 : RUN echo hi && false");
        assert_eq!(log.tail(), ["hi", "second line", "third"]);
    }

    #[test]
    fn colours_are_stripped_and_bookkeeping_dropped() {
        let mut p = Progress::new("t", ProgressMode::Hidden);
        let mut log = StepLog::default();
        log.feed(
            "Step 1/1 : RUN ls /x\nhello\n\x1b[91mls: /x: No such file\n",
            &mut p,
        );
        log.feed("\x1b[0mRemoving intermediate container 96e1\n", &mut p);
        assert_eq!(log.tail(), ["hello", "ls: /x: No such file"]);
    }

    #[test]
    fn the_tail_is_bounded() {
        let mut p = Progress::new("t", ProgressMode::Hidden);
        let mut log = StepLog::default();
        log.feed("Step 1/1 : RUN seq 100\n", &mut p);
        for i in 0..100 {
            log.feed(&format!("{i}\n"), &mut p);
        }
        let tail = log.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().map(String::as_str), Some("99"));
    }
}
