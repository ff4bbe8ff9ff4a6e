//! The scheduler: `airlock schedule run` (a loop until SIGTERM) and `tick` (one pass).
//!
//! Time comes from a [`Clock`] and runs from a [`Launcher`], both injected, so the loop is
//! tested with a clock the test sets and runs that end when the test says. Each pass reads
//! the state, asks [`policy::due`] what each schedule's window holds, applies the overlap
//! policy to each fire, records in-flight runs in the state before they start, and logs one
//! line per fire, skip, catch-up, miss and cancel. A run's own task records its ending (the
//! history line, the state's in-flight entry removed) however it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::definition::Schedule;
use super::history::{self, History};
use super::policy::{self, Decision, OverlapAction, Pass, Trigger};
use super::state::{InFlight, StateError, Store};
use crate::run::Stop;

/// Where "now" comes from.
#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Resolve at `t` or later.
    async fn sleep_until(&self, t: Timestamp);
}

/// The machine's clock.
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    async fn sleep_until(&self, t: Timestamp) {
        loop {
            let left = t.duration_since(Timestamp::now());
            if left.is_negative() || left.is_zero() {
                return;
            }
            // Re-read the clock at least each minute: a wall clock set forward is noticed.
            let d = std::time::Duration::try_from(left).unwrap_or_default();
            tokio::time::sleep(d.min(std::time::Duration::from_secs(60))).await;
        }
    }
}

/// One fire about to run.
#[derive(Debug, Clone)]
pub struct Firing {
    pub run_id: String,
    pub fire: Timestamp,
    pub trigger: Trigger,
    pub record: std::path::PathBuf,
    pub workspace: std::path::PathBuf,
}

/// How a run ended, for the history.
#[derive(Debug, Clone)]
pub struct Ended {
    pub outcome: crate::outcome::Outcome,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub patch_bytes: Option<u64>,
    pub branch: Option<String>,
    pub note: Option<String>,
}

/// What runs a fire (the run library through a fresh checkout, or a test's stand-in).
#[async_trait]
pub trait Launcher: Send + Sync {
    async fn launch(&self, schedule: &Schedule, firing: &Firing, stop: Stop) -> Ended;
    /// A run found in flight whose scheduler died: record it `abandoned`, remove what it left.
    async fn abandoned(&self, schedule: Option<&Schedule>, run: &InFlight, now: Timestamp)
        -> Ended;
}

/// Where log lines go (stdout in the CLI, a vector in tests).
pub type Log = Arc<dyn Fn(String) + Send + Sync>;

/// Paths and policies shared by the loop and its runs.
pub struct Scheduler {
    pub schedules: BTreeMap<String, Schedule>,
    pub store: Store,
    pub history: History,
    pub runs_dir: std::path::PathBuf,
    pub work_dir: std::path::PathBuf,
    pub clock: Arc<dyn Clock>,
    pub launcher: Arc<dyn Launcher>,
    pub log: Log,
    pub owner: String,
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    ended_tx: mpsc::UnboundedSender<String>,
    ended_rx: mpsc::UnboundedReceiver<String>,
}

struct Running {
    schedule: String,
    stop: Stop,
}

/// What makes the loop do something other than wait for the next fire.
#[derive(Debug)]
pub enum Control {
    /// Reload definitions (SIGHUP): the new set.
    Reload(BTreeMap<String, Schedule>),
    /// Stop (SIGTERM/SIGINT): cancel running runs cleanly and return.
    Stop(crate::outcome::Signal),
}

impl Scheduler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        schedules: BTreeMap<String, Schedule>,
        store: Store,
        history: History,
        runs_dir: std::path::PathBuf,
        work_dir: std::path::PathBuf,
        clock: Arc<dyn Clock>,
        launcher: Arc<dyn Launcher>,
        log: Log,
    ) -> Scheduler {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        Scheduler {
            schedules,
            store,
            history,
            runs_dir,
            work_dir,
            clock,
            launcher,
            log,
            owner: crate::cleanup::owner_id(),
            running: Default::default(),
            ended_tx,
            ended_rx,
        }
    }

    fn say(&self, name: &str, what: String) {
        (self.log)(format!(
            "{} {name}: {what}",
            self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        ));
    }

    /// Runs of `name` going now (this process's).
    pub fn running_of(&self, name: &str) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .filter(|(_, r)| r.schedule == name)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn running_count(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Runs in the state whose scheduler is gone: recorded `abandoned`, their leftovers
    /// removed, their entries dropped.
    pub async fn recover(&self) -> Result<(), StateError> {
        let owner = self.owner.clone();
        let dead: Vec<(String, InFlight)> = self.store.update(|s| {
            let mut dead = Vec::new();
            for (name, e) in s.schedules.iter_mut() {
                e.in_flight.retain(|r| {
                    let gone = r.owner != owner && !crate::cleanup::owner_alive(&r.owner);
                    if gone {
                        dead.push((name.clone(), r.clone()));
                    }
                    !gone
                });
            }
            dead
        })?;
        for (name, run) in dead {
            let s = self.schedules.get(&name);
            let ended = self.launcher.abandoned(s, &run, self.clock.now()).await;
            self.say(
                &name,
                format!(
                    "run {} abandoned (the scheduler running it died); recorded",
                    run.run_id
                ),
            );
            let mut e = history::Entry::new(history::Kind::Run, run.fire, self.clock.now());
            e.trigger = Some(run.trigger.clone());
            e.run_id = Some(run.run_id.clone());
            e.record = Some(run.record.clone());
            fill(&mut e, &ended);
            let keep = s
                .map(|s| s.keep_history)
                .unwrap_or(super::definition::DEFAULT_KEEP_HISTORY);
            if let Err(err) = self.history.append(&name, &e, keep) {
                self.say(&name, format!("could not write the history: {err}"));
            }
        }
        Ok(())
    }

    /// Look at every schedule once at `now`.
    pub fn pass(&mut self, pass: Pass) -> Result<(), StateError> {
        let now = self.clock.now();
        let names: Vec<String> = self.schedules.keys().cloned().collect();
        for name in names {
            let s = self.schedules[&name].clone();
            let (decisions, paused) = self.store.update(|st| {
                let e = st.schedules.entry(name.clone()).or_default();
                let (decisions, last) = policy::due(&s, e.last, now, pass);
                e.last = Some(last);
                (decisions, e.paused)
            })?;
            for d in decisions {
                match d {
                    Decision::Missed {
                        first,
                        last,
                        count,
                        why,
                    } => {
                        let span = if count == 1 {
                            fmt_fire(&s, last)
                        } else {
                            format!("{} to {}", fmt_fire(&s, first), fmt_fire(&s, last))
                        };
                        self.say(
                            &name,
                            format!(
                                "missed {count} fire(s), {span}: nothing runs for them ({why})"
                            ),
                        );
                        let mut e = history::Entry::new(history::Kind::Missed, last, now);
                        e.count = Some(count);
                        e.note = Some(why.to_string());
                        self.record(&s, &e);
                    }
                    Decision::Fire { fire, trigger } if paused => {
                        self.say(&name, format!("skip {} (paused)", fmt_fire(&s, fire)));
                        let mut e = history::Entry::new(history::Kind::Skipped, fire, now);
                        e.trigger = Some(trigger.word().into());
                        e.note = Some("paused".into());
                        self.record(&s, &e);
                    }
                    Decision::Fire { fire, trigger } => self.fire(&s, fire, trigger)?,
                }
            }
        }
        Ok(())
    }

    fn record(&self, s: &Schedule, e: &history::Entry) {
        if let Err(err) = self.history.append(&s.name, e, s.keep_history) {
            self.say(&s.name, format!("could not write the history: {err}"));
        }
    }

    fn fire(&mut self, s: &Schedule, fire: Timestamp, trigger: Trigger) -> Result<(), StateError> {
        let now = self.clock.now();
        // Runs of this schedule still going, ours and other live schedulers' (a `tick`).
        let mut running = self.running_of(&s.name);
        let others: Vec<String> = self
            .store
            .read()?
            .schedules
            .get(&s.name)
            .map(|e| {
                e.in_flight
                    .iter()
                    .filter(|r| r.owner != self.owner && crate::cleanup::owner_alive(&r.owner))
                    .map(|r| r.run_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        running.extend(others.iter().cloned());
        match policy::overlap(s.overlap, &running) {
            OverlapAction::Skip(ids) => {
                self.say(
                    &s.name,
                    format!(
                        "skip {} (run {} still going; overlap: forbid)",
                        fmt_fire(s, fire),
                        ids.join(", ")
                    ),
                );
                let mut e = history::Entry::new(history::Kind::Skipped, fire, now);
                e.trigger = Some(trigger.word().into());
                e.note = Some(format!(
                    "run {} still going (overlap: forbid)",
                    ids.join(", ")
                ));
                self.record(s, &e);
                return Ok(());
            }
            OverlapAction::Replace(ids) => {
                let table = self.running.lock().unwrap_or_else(|e| e.into_inner());
                for id in &ids {
                    if let Some(r) = table.get(id) {
                        self.say(&s.name, format!("cancel run {id} (overlap: replace)"));
                        r.stop.cancel();
                    } else {
                        // Another scheduler's run: this process holds no handle to it.
                        self.say(&s.name, format!("run {id} belongs to another scheduler process; it goes on (overlap: replace cancels only this scheduler's runs)"));
                    }
                }
            }
            OverlapAction::Start => {}
        }
        let run_id = crate::run::new_run_id();
        let firing = Firing {
            run_id: run_id.clone(),
            fire,
            trigger,
            record: self.runs_dir.join(&run_id),
            workspace: self.work_dir.join(&run_id),
        };
        let flight = InFlight {
            run_id: run_id.clone(),
            fire,
            started: now,
            owner: self.owner.clone(),
            record: firing.record.clone(),
            workspace: firing.workspace.clone(),
            trigger: trigger.word().into(),
        };
        self.store.update(|st| {
            st.schedules
                .entry(s.name.clone())
                .or_default()
                .in_flight
                .push(flight)
        })?;
        let verb = match trigger {
            Trigger::OnTime => "fire",
            Trigger::CatchUp => "catch-up",
        };
        self.say(
            &s.name,
            format!("{verb} {} → run {run_id}", fmt_fire(s, fire)),
        );
        let stop = Stop::new();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                run_id.clone(),
                Running {
                    schedule: s.name.clone(),
                    stop: stop.clone(),
                },
            );
        let task = RunTask {
            schedule: s.clone(),
            firing,
            stop,
            launcher: self.launcher.clone(),
            store: self.store.clone(),
            history: self.history.clone(),
            clock: self.clock.clone(),
            log: self.log.clone(),
            running: self.running.clone(),
            ended: self.ended_tx.clone(),
        };
        tokio::spawn(task.go());
        Ok(())
    }

    /// The next fire of any schedule after its last one dealt with.
    fn next_wake(&self) -> Option<Timestamp> {
        let state = self.store.read().ok()?;
        let now = self.clock.now();
        self.schedules
            .values()
            .filter_map(|s| {
                let last = state
                    .schedules
                    .get(&s.name)
                    .and_then(|e| e.last)
                    .unwrap_or(now);
                super::fire::next_after(&s.cron, &s.timezone, last).map(|z| z.timestamp())
            })
            .min()
    }

    /// `tick`: recover, one pass, and wait for the runs it started (a `Stop` on `control`
    /// stops them cleanly, as the daemon's does).
    pub async fn tick(
        &mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> Result<(), StateError> {
        self.recover().await?;
        self.pass(Pass::Running)?;
        while self.running_count() > 0 {
            tokio::select! {
                ended = self.ended_rx.recv() => if ended.is_none() { break },
                Some(Control::Stop(signal)) = control.recv() => return self.shutdown(signal).await,
            }
        }
        Ok(())
    }

    /// The daemon: recover, the start pass, then wake at each fire until told to stop.
    pub async fn run(
        &mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> Result<(), StateError> {
        self.recover().await?;
        self.pass(Pass::Start)?;
        loop {
            let wake = self.next_wake();
            let clock = self.clock.clone();
            let sleep = async move {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {
                    if let Err(e) = self.pass(Pass::Running) {
                        // The state can't be kept (a full disk, a broken file): stop the runs
                        // cleanly rather than leave them to a process that is going away.
                        (self.log)(format!("{} cannot keep the schedule state: {e}; stopping", self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")));
                        self.shutdown(crate::outcome::Signal::Term).await?;
                        return Err(e);
                    }
                }
                Some(_) = self.ended_rx.recv() => {}
                c = control.recv() => match c {
                    Some(Control::Reload(set)) => {
                        let names: Vec<&str> = set.keys().map(String::as_str).collect();
                        (self.log)(format!("{} reloaded: {}", self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"), names.join(", ")));
                        self.schedules = set;
                    }
                    Some(Control::Stop(signal)) => return self.shutdown(signal).await,
                    None => return self.shutdown(crate::outcome::Signal::Term).await,
                },
            }
        }
    }

    async fn shutdown(&mut self, signal: crate::outcome::Signal) -> Result<(), StateError> {
        {
            let table = self.running.lock().unwrap_or_else(|e| e.into_inner());
            for (id, r) in table.iter() {
                self.say(
                    &r.schedule,
                    format!("{} received: stopping run {id}", signal.name()),
                );
                r.stop.interrupt(signal);
            }
        }
        while self.running_count() > 0 {
            if self.ended_rx.recv().await.is_none() {
                break;
            }
        }
        Ok(())
    }
}

/// A fire's run, on its own task: launch, then record how it ended.
struct RunTask {
    schedule: Schedule,
    firing: Firing,
    stop: Stop,
    launcher: Arc<dyn Launcher>,
    store: Store,
    history: History,
    clock: Arc<dyn Clock>,
    log: Log,
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    ended: mpsc::UnboundedSender<String>,
}

impl RunTask {
    async fn go(self) {
        let ended = self
            .launcher
            .launch(&self.schedule, &self.firing, self.stop.clone())
            .await;
        let name = &self.schedule.name;
        let id = &self.firing.run_id;
        let now = self.clock.now();
        let mut line = format!(
            "{} {name}: run {id} ended: {} (exit {})",
            now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ended.outcome.word().replace('_', " "),
            ended.exit_code
        );
        if let Some(b) = &ended.branch {
            line.push_str(&format!("; result: branch {b}"));
        }
        if let Some(n) = &ended.note {
            line.push_str(&format!("; {n}"));
        }
        (self.log)(line);
        let mut e = history::Entry::new(history::Kind::Run, self.firing.fire, now);
        e.trigger = Some(self.firing.trigger.word().into());
        e.run_id = Some(id.clone());
        e.record = Some(self.firing.record.clone());
        fill(&mut e, &ended);
        if let Err(err) = self.history.append(name, &e, self.schedule.keep_history) {
            (self.log)(format!("{name}: could not write the history: {err}"));
        }
        let _ = self.store.update(|st| {
            if let Some(s) = st.schedules.get_mut(name) {
                s.in_flight.retain(|r| &r.run_id != id);
            }
        });
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let _ = self.ended.send(id.clone());
    }
}

fn fill(e: &mut history::Entry, ended: &Ended) {
    e.outcome = Some(ended.outcome.word().to_string());
    e.exit_code = Some(ended.exit_code);
    e.duration_ms = Some(ended.duration_ms);
    e.patch_bytes = ended.patch_bytes;
    e.branch = ended.branch.clone();
    e.note = ended.note.clone();
}

/// A fire time in the schedule's zone, RFC 3339.
pub fn fmt_fire(s: &Schedule, t: Timestamp) -> String {
    super::fire::rfc3339(&t.to_zoned(s.timezone.clone()))
}

#[cfg(test)]
mod tests;
