//! One run, start to finish: the library the CLI, the scheduler and the service all drive.
//!
//! The order is the design, and [`execute`] reads as it:
//!
//! 0. the record exists before anything else (a killed airlock still leaves one);
//! 1. [`prepare`]: everything that can fail on bad input, before any container exists;
//! 2. [`setup`]: the run's objects, the workspace copied in, the setup script with secrets;
//! 3. [`boundary`]: what would cross is checked; the setup container goes;
//! 4. [`agent`]: the sealed agent phase;
//! 5. [`patch`]: the agent's changes as a patch (applied with `--apply`);
//! 6. [`outcome`]: how it ended; everything the run made is removed however it ended
//!    ([`crate::cleanup::remove_run`]: every object is labelled with the run id), and the
//!    record is written in every case.
//!
//! The library owns no process and no terminal: what a run needs from outside comes in its
//! [`Options`]: the engine handle (shared by many runs), an event sink, and a [`Stop`] handle
//! that interrupts or cancels it with the same cleanup and record as Ctrl-C.

pub mod agent;
pub mod boundary;
pub mod drive;
pub mod egress;
pub mod events;
pub mod outcome;
pub mod patch;
pub mod plan;
pub mod prepare;
pub mod setup;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rand::Rng;

pub use events::{Event, EventSink, Phase, Stop, StopReason, Stream};
pub use outcome::RunError;

use crate::cleanup;
use crate::engine::{Engine, EngineHandle};
use crate::environment::{Environment, NetworkPolicy};
use crate::outcome::Outcome;
use crate::record::{self, CappedLog, Record, Report};
use crate::root::ConfigRoot;
use drive::PhaseEnd;
use plan::{MountPlan, RunNames};

/// What to run.
#[derive(Debug, Clone)]
pub struct Task {
    pub env: Environment,
    pub workspace: PathBuf,
    pub command: Vec<String>,
}

/// How to run it, and what the run needs from its driver.
#[derive(Clone)]
pub struct Options {
    pub engine: EngineHandle,
    pub events: Arc<dyn EventSink>,
    pub stop: Stop,
    /// The run id; default a fresh one ([`new_run_id`]).
    pub run_id: Option<String>,
    /// The record folder; default `<root>/.airlock/runs/<run id>`.
    pub out: Option<PathBuf>,
    pub keep: bool,
    pub apply: bool,
    /// Trusted paths (see [`crate::trusted`]) whose changes the patch may carry and
    /// `--apply` may write (`--apply-trusted PATH`), relative to the workspace.
    pub apply_trusted: Vec<PathBuf>,
    pub identity: Option<PathBuf>,
    /// Tags for the record (`report.json`'s `labels`), e.g. `schedule: nightly`.
    pub labels: BTreeMap<String, String>,
    /// How the run uses the setup cache (`--no-cache`, `--refresh-cache`).
    pub cache: crate::cache::Mode,
}

impl Options {
    /// Defaults: a fresh id, the default record folder, events dropped, never stopped.
    pub fn new(engine: EngineHandle) -> Options {
        Options {
            engine,
            events: Arc::new(events::Discard),
            stop: Stop::new(),
            run_id: None,
            out: None,
            keep: false,
            apply: false,
            apply_trusted: Vec::new(),
            identity: None,
            labels: BTreeMap::new(),
            cache: crate::cache::Mode::Use,
        }
    }
}

/// How the run ended.
#[derive(Debug)]
pub struct Finished {
    pub report: Report,
    pub exit_code: i32,
    pub record_dir: Option<PathBuf>,
}

/// A fresh run id: sortable by time, unique enough for one engine.
pub fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    let suffix: u32 = rand::rng().random_range(0..0x100_0000);
    format!("{}-{}-{suffix:06x}", &stamp[..8], &stamp[8..14])
}

/// What every step of one run shares.
pub struct Ctx<'a> {
    pub engine: &'a dyn Engine,
    pub task: &'a Task,
    pub opts: &'a Options,
    pub names: RunNames,
    pub record: Record,
    pub events: &'a dyn EventSink,
    laps: std::sync::Mutex<Instant>,
}

impl Ctx<'_> {
    /// Step timings, logged at `-v`: where a run's time goes (see bench/run).
    pub(crate) fn lap(&self, step: &str) {
        if let Ok(mut last) = self.laps.lock() {
            let now = Instant::now();
            tracing::debug!("{step}: {} ms", (now - *last).as_millis());
            *last = now;
        }
    }

    fn log(&self, phase: &str) -> Result<CappedLog, RunError> {
        self.record
            .log(phase)
            .map_err(|e| RunError::Internal(format!("run record: {e}")))
    }

    /// Bring the record's report up to date while the run is still going (its outcome stays
    /// `incomplete`), so a killed airlock leaves a record of how far the run got. A failed
    /// write doesn't stop the run: the final write will say so.
    fn checkpoint(&self, report: &Report) {
        if let Err(e) = self.record.write_report(report) {
            tracing::debug!("could not update the report: {e}");
        }
    }

    fn phase_ended(&self, phase: Phase, end: &PhaseEnd) {
        self.events.event(&Event::PhaseEnded {
            phase,
            duration: std::time::Duration::from_millis(end.report.duration_ms.unwrap_or(0)),
            exit_code: Some(end.exited.code),
            timed_out: end.timed_out,
        });
    }
}

/// Run a task. Never panics on user input; every ending produces a report.
pub async fn execute(root: &ConfigRoot, task: Task, opts: Options) -> Finished {
    let run_id = opts.run_id.clone().unwrap_or_else(new_run_id);
    let events = opts.events.clone();
    let mut report = initial_report(&run_id, &task, &opts);
    let record_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| root.runs_dir().join(&run_id));
    // 0. The record exists from the start: if airlock is killed outright, it still names the
    // run and says it never ended.
    let created = Record::create(&record_dir).and_then(|r| r.write_report(&report).map(|()| r));
    let record = match created {
        Ok(r) => r,
        Err(e) => return finish(None, report, Err(RunError::Config(e.to_string())), &*events),
    };
    events.event(&Event::Started {
        run_id: &run_id,
        record: record.dir(),
    });
    let stop = opts.stop.clone();

    // 1. Prepare.
    let prepared = tokio::select! {
        r = prepare::prepare(root, &task, &opts) => r,
        why = stop.stopped() => Err(RunError::stopped(why, " before the setup phase started")),
    };
    let ready = match prepared {
        Ok(ready) => ready,
        Err(e) => return finish(Some(&record), report, Err(e), &*events),
    };
    report.secrets = ready.secrets.iter().map(|(n, _)| n.clone()).collect();
    report.image = Some(record::ImageReport {
        reference: ready.image.reference.clone(),
        id: ready.image.id.clone(),
    });
    let run = Ctx {
        engine: &*opts.engine,
        task: &task,
        opts: &opts,
        names: RunNames {
            run_id: run_id.clone(),
        },
        record: record.clone(),
        events: &*events,
        laps: std::sync::Mutex::new(Instant::now()),
    };
    if let Some(cache) = &ready.cache {
        report.cache = Some(cache.report());
        events.event(&Event::Note(cache.line()));
    }
    run.lap("prepare (secrets, engine, image)");
    run.checkpoint(&report);

    // 2–5. The phases, until they end or the run is stopped.
    let steps = phases(&run, &ready, &mut report);
    let ended = tokio::select! {
        ended = steps => ended,
        why = stop.stopped() => {
            let what = match why {
                StopReason::Signal(s) => format!("{} received", s.name()),
                StopReason::Cancelled => "cancelled".into(),
            };
            events.event(&Event::Note(format!("{what}: stopping run {run_id} and removing its containers")));
            Err(RunError::stopped(why, ""))
        }
    };

    // 6. However it ended: remove what the run made (kept objects stay). When that fails
    // (the engine went away), one line says what is left and how to remove it later.
    let settled = match &ended {
        Ok(_) => true,
        Err(RunError::Engine(_) | RunError::Stopped { .. }) => false,
        Err(_) => true,
    };
    let left = cleanup::remove_run(run.engine, &run_id, settled).await;
    run.lap("cleanup");
    if let Some(first) = left.first() {
        let why = first.to_string();
        let why = why.lines().next().unwrap_or_default();
        events.event(&Event::Warning(format!(
            "cleanup: could not remove everything run {run_id} made ({why}); `airlock gc {run_id}` removes it once the engine answers"
        )));
    }
    finish(Some(&record), report, ended, &*events)
}

/// Steps 2 to 5, and the agent's own ending.
async fn phases(
    run: &Ctx<'_>,
    ready: &prepare::Ready,
    report: &mut Report,
) -> Result<(Outcome, i32), RunError> {
    let has_git = std::fs::symlink_metadata(run.task.workspace.join(".git"))
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let plan = MountPlan::new(&run.names, has_git, &run.task.env.persist);
    // With an allowlist, the egress proxy starts while the setup phase runs.
    let egress = async {
        match &run.task.env.agent.network {
            NetworkPolicy::Allowlist(list) => egress::start(run, ready, list).await.map(Some),
            NetworkPolicy::Off => Ok(None),
        }
    };
    let (setup, egress) = tokio::try_join!(setup::run(run, ready, &plan, report), egress)?;
    let crossing = boundary::cross(run, ready, &plan, &setup, report).await?;
    crate::cache::after_boundary(run, ready, &plan, &setup, &crossing, report).await;
    let agent = agent::run(run, ready, &plan, &crossing, egress, report).await?;
    let apply_failed = patch::collect(run, ready, &agent, &setup, &crossing, report).await?;
    outcome::of_agent(&run.task.env, &agent, apply_failed)
}

/// What an OOM kill means, naming the limit that was hit.
fn oom_note(env: &Environment) -> String {
    let limit = env
        .limits
        .memory
        .map(crate::environment::show_size)
        .unwrap_or_else(|| "unlimited".into());
    format!("the kernel's OOM killer ended a process at the phase's memory limit (limits.memory: {limit})")
}

fn initial_report(run_id: &str, task: &Task, opts: &Options) -> Report {
    Report {
        run_id: run_id.to_string(),
        airlock_version: env!("CARGO_PKG_VERSION"),
        outcome: Outcome::Incomplete,
        exit_code: None,
        error: None,
        environment: record::EnvironmentReport {
            name: task.env.name.clone(),
            path: task.env.path.display().to_string(),
            content_hash: task.env.content_hash.clone(),
        },
        image: None,
        workspace: task.workspace.display().to_string(),
        command: task.command.clone(),
        started: record::timestamp(SystemTime::now()),
        finished: None,
        setup: Default::default(),
        boundary: Default::default(),
        agent: Default::default(),
        secrets: task.env.secrets.clone(),
        network: record::NetworkReport {
            setup: "a bridge network of its own".into(),
            agent: match &task.env.agent.network {
                crate::environment::NetworkPolicy::Off => "none".into(),
                crate::environment::NetworkPolicy::Allowlist(_) => {
                    "the allowlist, through airlock's egress proxy".into()
                }
            },
            requests: None,
        },
        setup_changed: Vec::new(),
        patch: None,
        kept: opts.keep,
        labels: opts.labels.clone(),
        cache: None,
    }
}

/// Write the final report and tell the driver.
fn finish(
    record: Option<&Record>,
    mut report: Report,
    ended: Result<(Outcome, i32), RunError>,
    events: &dyn EventSink,
) -> Finished {
    let (outcome, code, message) = match ended {
        Ok((outcome, code)) => (outcome, code, None),
        Err(e) => (e.outcome(), e.exit_code(), Some(e.to_string())),
    };
    report.outcome = outcome;
    report.exit_code = Some(code);
    report.error = message;
    report.finished = Some(record::timestamp(SystemTime::now()));
    if let Some(record) = record {
        if let Err(e) = record.write_report(&report) {
            events.event(&Event::Warning(format!("could not write the report: {e}")));
        }
    }
    events.event(&Event::Finished {
        outcome,
        exit_code: code,
    });
    Finished {
        report,
        exit_code: code,
        record_dir: record.map(|r| r.dir().to_path_buf()),
    }
}
