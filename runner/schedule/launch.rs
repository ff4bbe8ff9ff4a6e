//! One fire through the run library: a fresh checkout of `ref`, [`crate::run::execute`] with
//! the record labelled `schedule: NAME`, `timeout` enforced through the run's [`Stop`], the
//! result branch, the checkout removed, and `on_failure` after a failed, timed-out or
//! abandoned run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use jiff::Timestamp;

use super::daemon::{Ended, Firing, Launcher};
use super::definition::{ResultMode, Schedule};
use super::git;
use super::state::InFlight;
use crate::engine::EngineHandle;
use crate::environment;
use crate::outcome::Outcome;
use crate::root::ConfigRoot;
use crate::run::{self, Stop};

/// The launcher `airlock schedule run` and `tick` use.
pub struct RunLauncher {
    pub root: ConfigRoot,
    pub engine: EngineHandle,
    pub identity: Option<std::path::PathBuf>,
}

/// A run that never reached the run library (no checkout, no environment): it still gets a
/// record beside the others, so `airlock runs ls --schedule NAME` shows it.
fn refused(s: &Schedule, f: &Firing, note: String, started: Instant) -> Ended {
    let now = crate::record::timestamp(std::time::SystemTime::now());
    let report = serde_json::json!({
        "run_id": f.run_id,
        "airlock_version": env!("CARGO_PKG_VERSION"),
        "outcome": Outcome::ConfigError.word(),
        "exit_code": Outcome::ConfigError.exit_code(None, None),
        "error": note,
        "environment": { "name": s.env },
        "workspace": f.workspace.display().to_string(),
        "command": s.command,
        "started": now,
        "finished": now,
        "labels": { "schedule": s.name },
    });
    if std::fs::create_dir_all(&f.record).is_ok() {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let _ = super::state::write_atomic(&f.record.join("report.json"), &json);
    }
    Ended {
        outcome: Outcome::ConfigError,
        exit_code: Outcome::ConfigError.exit_code(None, None),
        duration_ms: started.elapsed().as_millis() as u64,
        patch_bytes: None,
        branch: None,
        note: Some(note),
    }
}

#[async_trait]
impl Launcher for RunLauncher {
    async fn launch(&self, s: &Schedule, f: &Firing, stop: Stop) -> Ended {
        let started = Instant::now();
        let ended = self.execute(s, f, stop, started).await;
        let _ = std::fs::remove_dir_all(&f.workspace);
        self.after(s, &f.run_id, &f.record, ended).await
    }

    async fn abandoned(&self, s: Option<&Schedule>, r: &InFlight, now: Timestamp) -> Ended {
        let why = format!(
            "the scheduler running this run ({}) died before it ended; recorded when the next scheduler started",
            r.owner
        );
        let _ = crate::record::mark_abandoned(&r.record, &why, &now.to_string());
        let left = crate::cleanup::remove_run(&*self.engine, &r.run_id, true).await;
        let _ = std::fs::remove_dir_all(&r.workspace);
        let ended = Ended {
            outcome: Outcome::Abandoned,
            exit_code: Outcome::Abandoned.exit_code(None, None),
            duration_ms: now.duration_since(r.started).as_millis().max(0) as u64,
            patch_bytes: None,
            branch: None,
            note: left.first().map(|e| {
                format!(
                    "could not remove all it left ({e}); `airlock gc {}` removes it",
                    r.run_id
                )
            }),
        };
        match s {
            Some(s) => self.after(s, &r.run_id, &r.record, ended).await,
            None => ended,
        }
    }
}

impl RunLauncher {
    async fn execute(&self, s: &Schedule, f: &Firing, stop: Stop, started: Instant) -> Ended {
        let repo = s.repository.clone();
        let (git_ref, dest) = (s.git_ref.clone(), f.workspace.clone());
        let checked_out = tokio::task::spawn_blocking(move || {
            let commit = git::resolve(&repo, &git_ref)?;
            git::checkout(&repo, &commit, &dest)?;
            Ok::<_, git::GitError>(commit)
        })
        .await;
        let commit = match checked_out {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return refused(s, f, format!("checkout of {}: {e}", s.git_ref), started),
            Err(e) => return refused(s, f, format!("checkout: {e}"), started),
        };
        let env = environment::resolve(Some(&self.root), &s.env)
            .and_then(|p| environment::load_in(Some(&self.root), &p));
        let env = match env {
            Ok(env) => env,
            Err(e) => return refused(s, f, e.to_string(), started),
        };
        if matches!(env.agent.network, environment::NetworkPolicy::Allowlist(_)) {
            return refused(
                s,
                f,
                format!(
                    "{}: agent.network: runs don't enforce an allowlist yet",
                    s.env
                ),
                started,
            );
        }
        let task = run::Task {
            env,
            workspace: f.workspace.clone(),
            command: s.command.clone(),
        };
        let mut opts = run::Options::new(self.engine.clone());
        opts.run_id = Some(f.run_id.clone());
        opts.out = Some(f.record.clone());
        opts.stop = stop.clone();
        opts.identity = self.identity.clone();
        opts.labels.insert("schedule".into(), s.name.clone());
        let running = run::execute(&self.root, task, opts);
        tokio::pin!(running);
        let mut timed_out = false;
        let finished = match s.timeout {
            None => running.await,
            Some(limit) => tokio::select! {
                done = &mut running => done,
                () = tokio::time::sleep(limit) => {
                    timed_out = true;
                    stop.cancel();
                    running.await
                }
            },
        };
        let mut outcome = finished.report.outcome;
        let mut exit_code = finished.exit_code;
        if timed_out && outcome == Outcome::Cancelled {
            outcome = Outcome::TimedOut;
            exit_code = Outcome::TimedOut.exit_code(None, None);
            let limit = environment::show_duration(s.timeout.unwrap_or_default());
            rewrite_report(
                &f.record,
                outcome,
                exit_code,
                &format!(
                "the schedule's timeout ({limit}) ended the run; everything it made was removed"
            ),
            );
        }
        let patch_bytes = finished.report.patch.as_ref().map(|p| p.bytes);
        let mut branch = None;
        let mut note = None;
        let patch = f.record.join("changes.patch");
        if s.result == ResultMode::Branch && patch_bytes.unwrap_or(0) > 0 && patch.is_file() {
            let name = format!("airlock/{}/{}", s.name, f.run_id);
            let message = format!(
                "airlock schedule {}: run {} ({})\n\n{} at {}, {}\n",
                s.name,
                f.run_id,
                outcome.word(),
                s.command.join(" "),
                s.git_ref,
                &commit[..12.min(commit.len())]
            );
            let repo = s.repository.clone();
            let made = tokio::task::spawn_blocking(move || {
                git::branch(&repo, &commit, &patch, &name, &message).map(|_| name)
            })
            .await;
            match made {
                Ok(Ok(name)) => branch = Some(name),
                Ok(Err(e)) => note = Some(format!("no result branch: {e}")),
                Err(e) => note = Some(format!("no result branch: {e}")),
            }
        }
        Ended {
            outcome,
            exit_code,
            duration_ms: started.elapsed().as_millis() as u64,
            patch_bytes,
            branch,
            note,
        }
    }

    /// `on_failure`, after a run that did not succeed and was not stopped on purpose.
    async fn after(&self, s: &Schedule, run_id: &str, record: &Path, mut ended: Ended) -> Ended {
        let Some(argv) = &s.on_failure else {
            return ended;
        };
        if matches!(
            ended.outcome,
            Outcome::Succeeded | Outcome::Cancelled | Outcome::Interrupted
        ) {
            return ended;
        }
        let record_s = record.display().to_string();
        let fill = |a: &String| {
            a.replace("{schedule}", &s.name)
                .replace("{run_id}", run_id)
                .replace("{outcome}", ended.outcome.word())
                .replace("{record}", &record_s)
        };
        let argv: Vec<String> = argv.iter().map(fill).collect();
        let status = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(self.root.dir())
            .env("AIRLOCK_SCHEDULE", &s.name)
            .env("AIRLOCK_RUN_ID", run_id)
            .env("AIRLOCK_OUTCOME", ended.outcome.word())
            .env("AIRLOCK_RECORD", record)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .status();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(300), status).await;
        let problem = match waited {
            Ok(Ok(st)) if st.success() => None,
            Ok(Ok(st)) => Some(format!("on_failure exited {st}")),
            Ok(Err(e)) => Some(format!("on_failure could not start: {e}")),
            Err(_) => Some("on_failure ran past 5 minutes and was killed".into()),
        };
        if let Some(p) = problem {
            ended.note = Some(match ended.note.take() {
                Some(n) => format!("{n}; {p}"),
                None => p,
            });
        }
        ended
    }
}

/// Replace the final report's outcome (the schedule's own timeout).
fn rewrite_report(record: &Path, outcome: Outcome, exit_code: i32, error: &str) {
    let path = record.join("report.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return;
    };
    v["outcome"] = outcome.word().into();
    v["exit_code"] = exit_code.into();
    v["error"] = error.into();
    if let Ok(json) = serde_json::to_vec_pretty(&v) {
        let _ = super::state::write_atomic(&path, &json);
    }
}

/// The launcher the CLI gives the scheduler: fires through the run library on `engine`.
pub fn launcher(
    root: &ConfigRoot,
    engine: EngineHandle,
    identity: Option<std::path::PathBuf>,
) -> Arc<dyn Launcher> {
    Arc::new(RunLauncher {
        root: root.clone(),
        engine,
        identity,
    })
}
