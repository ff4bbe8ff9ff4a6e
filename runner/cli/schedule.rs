//! `airlock schedule check|ls|next|run|tick|pause|resume|history`: a thin driver of
//! [`crate::schedule`].
use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use super::{Globals, Refused};
use crate::outcome::{Outcome, Signal};
use crate::root::ConfigRoot;
use crate::schedule::{self, daemon, fire, Schedule};

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Check schedules/*.yaml (or the named ones): file:line errors, each with a fix.
    Check { names: Vec<String> },
    /// Each schedule, its next run (local and UTC), the last outcome.
    Ls,
    /// The next fire times of a schedule, one RFC 3339 timestamp per line.
    Next {
        name: String,
        /// How many.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Fires after this time (RFC 3339 with an offset) [default: now]
        #[arg(long, value_name = "RFC3339")]
        after: Option<String>,
    },
    /// The scheduler, in the foreground (SIGHUP reloads definitions; SIGTERM stops cleanly).
    Run {
        names: Vec<String>,
        /// The age identity file for the environments' secrets.
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
    },
    /// Fire whatever is due now, wait for those runs, and exit (for a systemd timer or cron).
    Tick {
        names: Vec<String>,
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
    },
    /// A paused schedule fires nothing.
    Pause { name: String },
    /// Fire again from now on (nothing of the pause is caught up).
    Resume { name: String },
    /// Past runs, skips and misses, newest first.
    History {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

fn refused(message: String) -> anyhow::Error {
    Refused {
        outcome: Outcome::ConfigError,
        message,
    }
    .into()
}

pub async fn run(c: ScheduleCommand, g: &Globals) -> anyhow::Result<i32> {
    let root = ConfigRoot::locate(g.root.as_deref(), None)?;
    match c {
        ScheduleCommand::Check { names } => check(&root, &names),
        ScheduleCommand::Ls => ls(&root),
        ScheduleCommand::Next { name, count, after } => next(&root, &name, count, after.as_deref()),
        ScheduleCommand::Run { names, identity } => daemon_run(&root, names, identity).await,
        ScheduleCommand::Tick { names, identity } => tick(&root, &names, identity).await,
        ScheduleCommand::Pause { name } => pause(&root, &name, true),
        ScheduleCommand::Resume { name } => pause(&root, &name, false),
        ScheduleCommand::History { name, json } => history(&root, &name, json),
    }
}

/// Load the schedules or refuse with every error.
fn load(root: &ConfigRoot, names: &[String]) -> anyhow::Result<BTreeMap<String, Schedule>> {
    let (good, bad) = schedule::load_all(root, names);
    if !bad.is_empty() {
        let all: Vec<String> = bad.iter().map(|e| e.to_string()).collect();
        return Err(refused(all.join("\n")));
    }
    if good.is_empty() {
        return Err(refused(format!(
            "no schedules in {}\n  fix: add schedules/NAME.yaml (see schedules/README.md)",
            crate::environment::display_path(&schedule::schedules_dir(root))
        )));
    }
    Ok(good)
}

fn one(root: &ConfigRoot, name: &str) -> anyhow::Result<Schedule> {
    Ok(load(root, &[name.to_string()])?
        .remove(name)
        .expect("loaded by name"))
}

fn check(root: &ConfigRoot, names: &[String]) -> anyhow::Result<i32> {
    let (good, mut bad) = schedule::load_all(root, names);
    for s in good.values() {
        // What only the whole picture can tell: the environment loads, the ref resolves.
        let env = crate::environment::resolve(Some(root), &s.env)
            .and_then(|p| crate::environment::load_in(Some(root), &p));
        if let Err(e) = env {
            bad.push(e);
            continue;
        }
        if let Err(e) = schedule::git::resolve(&s.repository, &s.git_ref) {
            eprintln!(
                "airlock: error: {}: ref: {e}\n  fix: name a branch, tag or commit of {}",
                crate::environment::display_path(&s.path),
                s.repository.display()
            );
            return Ok(Outcome::ConfigError.exit_code(None, None));
        }
        let next = fire::next_after(&s.cron, &s.timezone, jiff::Timestamp::now())
            .map(|z| fire::rfc3339(&z))
            .unwrap_or_else(|| "never".into());
        println!(
            "ok {}: {} ({}), next {next}",
            s.name, s.cron_text, s.timezone_name
        );
    }
    for e in &bad {
        eprintln!("airlock: error: {e}");
    }
    if !bad.is_empty() {
        return Ok(Outcome::ConfigError.exit_code(None, None));
    }
    if good.is_empty() {
        return Err(refused(
            "no schedules to check\n  fix: add schedules/NAME.yaml (see schedules/README.md)"
                .into(),
        ));
    }
    Ok(0)
}

fn ls(root: &ConfigRoot) -> anyhow::Result<i32> {
    let all = load(root, &[])?;
    let state = schedule::store(root).read()?;
    let h = schedule::history(root);
    let now = jiff::Timestamp::now();
    println!(
        "{:<20} {:<27} {:<22} {:<14} STATE",
        "NAME", "NEXT (LOCAL)", "NEXT (UTC)", "LAST"
    );
    for s in all.values() {
        let e = state.schedules.get(&s.name).cloned().unwrap_or_default();
        let next = fire::next_after(&s.cron, &s.timezone, now);
        let (local, utc) = match &next {
            Some(z) => (
                fire::rfc3339(z),
                z.timestamp().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
            None => ("never".into(), "never".into()),
        };
        let last = h
            .read(&s.name)
            .iter()
            .rev()
            .find(|e| e.kind == schedule::history::Kind::Run)
            .and_then(|e| e.outcome.clone())
            .unwrap_or_else(|| "-".into());
        let mut st = if e.paused {
            "paused".to_string()
        } else {
            "active".to_string()
        };
        if !e.in_flight.is_empty() {
            st.push_str(&format!(", {} running", e.in_flight.len()));
        }
        let (local, utc) = if e.paused {
            (format!("(paused) {local}"), utc)
        } else {
            (local, utc)
        };
        println!("{:<20} {:<27} {:<22} {:<14} {st}", s.name, local, utc, last);
    }
    Ok(0)
}

fn next(root: &ConfigRoot, name: &str, count: usize, after: Option<&str>) -> anyhow::Result<i32> {
    let s = one(root, name)?;
    let after = match after {
        None => jiff::Timestamp::now(),
        Some(text) => text.parse::<jiff::Timestamp>().map_err(|e| {
            refused(format!(
                "--after {text:?} is not an RFC 3339 time with an offset ({e})\n  fix: e.g. --after 2026-03-29T00:00:00+01:00 or --after 2026-03-28T23:00:00Z"
            ))
        })?,
    };
    for z in fire::next_n(&s, after, count) {
        println!("{}", fire::rfc3339(&z));
    }
    Ok(0)
}

fn pause(root: &ConfigRoot, name: &str, paused: bool) -> anyhow::Result<i32> {
    let s = one(root, name)?;
    let now = jiff::Timestamp::now();
    schedule::store(root).update(|st| {
        let e = st.schedules.entry(s.name.clone()).or_default();
        e.paused = paused;
        if !paused {
            // Nothing that fell during the pause counts as missed.
            e.last = Some(now);
        }
    })?;
    println!(
        "{} {}",
        s.name,
        if paused {
            "paused: it fires nothing until `airlock schedule resume`"
        } else {
            "resumed"
        }
    );
    Ok(0)
}

fn history(root: &ConfigRoot, name: &str, json: bool) -> anyhow::Result<i32> {
    let s = one(root, name)?;
    let mut entries = schedule::history(root).read(&s.name);
    // Runs still going come first, from the state.
    let state = schedule::store(root).read()?;
    for r in state
        .schedules
        .get(&s.name)
        .map(|e| e.in_flight.clone())
        .unwrap_or_default()
    {
        let mut e = schedule::history::Entry::new(schedule::history::Kind::Run, r.fire, r.started);
        e.trigger = Some(r.trigger.clone());
        e.run_id = Some(r.run_id.clone());
        e.record = Some(r.record.clone());
        e.outcome = Some(
            if crate::cleanup::owner_alive(&r.owner) {
                "running"
            } else {
                "incomplete"
            }
            .into(),
        );
        entries.push(e);
    }
    entries.reverse();
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(0);
    }
    println!(
        "{:<26} {:<9} {:<24} {:<14} {:>4} {:>9} {:>9}  RESULT",
        "FIRE", "KIND", "RUN", "OUTCOME", "EXIT", "DURATION", "PATCH"
    );
    for e in &entries {
        let kind = match e.kind {
            schedule::history::Kind::Run => e
                .trigger
                .clone()
                .unwrap_or_else(|| "run".into())
                .replace("on time", "run"),
            schedule::history::Kind::Skipped => "skipped".into(),
            schedule::history::Kind::Missed => format!("missed×{}", e.count.unwrap_or(1)),
        };
        let dash = || "-".to_string();
        println!(
            "{:<26} {:<9} {:<24} {:<14} {:>4} {:>9} {:>9}  {}",
            daemon::fmt_fire(&s, e.fire),
            kind,
            e.run_id.clone().unwrap_or_else(dash),
            e.outcome.clone().unwrap_or_else(dash),
            e.exit_code.map(|c| c.to_string()).unwrap_or_else(dash),
            e.duration_ms
                .map(|d| format!("{:.1}s", d as f64 / 1000.0))
                .unwrap_or_else(dash),
            e.patch_bytes.map(|b| format!("{b}B")).unwrap_or_else(dash),
            e.branch
                .clone()
                .or_else(|| e.note.clone())
                .unwrap_or_else(dash),
        );
    }
    Ok(0)
}

fn scheduler(
    root: &ConfigRoot,
    set: BTreeMap<String, Schedule>,
    identity: Option<std::path::PathBuf>,
) -> anyhow::Result<daemon::Scheduler> {
    let engine = crate::engine::from_env()?;
    let log: daemon::Log = Arc::new(|line: String| println!("{line}"));
    Ok(daemon::Scheduler::new(
        set,
        schedule::store(root),
        schedule::history(root),
        root.runs_dir(),
        schedule::work_dir(root),
        Arc::new(daemon::SystemClock),
        schedule::launch::launcher(root, engine, identity),
        log,
    ))
}

async fn tick(
    root: &ConfigRoot,
    names: &[String],
    identity: Option<std::path::PathBuf>,
) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let set = load(root, names)?;
    let mut sched = scheduler(root, set, identity)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        let signal = tokio::select! {
            _ = term.recv() => Signal::Term,
            _ = int.recv() => Signal::Int,
        };
        let _ = tx.send(daemon::Control::Stop(signal));
    });
    let done = sched.tick(rx).await;
    watcher.abort();
    done?;
    Ok(0)
}

async fn daemon_run(
    root: &ConfigRoot,
    names: Vec<String>,
    identity: Option<std::path::PathBuf>,
) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let set = load(root, &names)?;
    let listing: Vec<&str> = set.keys().map(String::as_str).collect();
    println!(
        "airlock schedule run: {} (pid {})",
        listing.join(", "),
        std::process::id()
    );
    let mut sched = scheduler(root, set, identity)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let root2 = root.clone();
    let watcher = tokio::spawn(async move {
        let current = names;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let (good, bad) = schedule::load_all(&root2, &current);
                    for e in &bad {
                        eprintln!("airlock: error: reload: {e}");
                    }
                    if bad.is_empty() {
                        let _ = tx.send(daemon::Control::Reload(good));
                    } else {
                        eprintln!("airlock: reload refused: the schedules stay as they were until the files are fixed");
                    }
                }
                _ = term.recv() => { let _ = tx.send(daemon::Control::Stop(Signal::Term)); }
                _ = int.recv() => { let _ = tx.send(daemon::Control::Stop(Signal::Int)); }
            }
        }
    });
    let done = sched.run(rx).await;
    watcher.abort();
    done?;
    println!("airlock schedule run: stopped");
    Ok(0)
}
