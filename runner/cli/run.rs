//! `airlock run ENV [-w DIR] [--out DIR] [--json] [--keep] [--apply] [--apply-trusted PATH]... -- COMMAND...`
use std::path::PathBuf;

use anyhow::Context;

use super::Globals;
use std::sync::Arc;

use super::console;
use crate::outcome::{Outcome, Signal};
use crate::run::Stop;
use crate::{environment, root::ConfigRoot, run};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The environment: a YAML file, or a name (envs/NAME.yaml under the config root).
    pub env: String,
    /// The workspace, copied into both phases at /workspace [default: the current directory]
    #[arg(short, long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Where to write the run record [default: <root>/.airlock/runs/<run id>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the report as JSON on stdout at the end (live output stays on stderr); also
    /// when the run can't start (a minimal report: outcome, exit code, error, no run id).
    #[arg(long)]
    pub json: bool,
    /// Replace the run record already in --out DIR.
    #[arg(long)]
    pub force: bool,
    /// No live output from the phases.
    #[arg(short, long)]
    pub quiet: bool,
    /// Keep the agent phase's final state for `airlock shell RUN-ID`.
    #[arg(long)]
    pub keep: bool,
    /// Apply changes.patch to the workspace after the run.
    #[arg(long)]
    pub apply: bool,
    /// Let the agent's changes to this trusted path (envs/, images/, secrets/, schedules/,
    /// .envrc, CI definitions: what a later setup phase trusts) into changes.patch and --apply.
    /// Repeatable; relative to the workspace.
    #[arg(long, value_name = "PATH")]
    pub apply_trusted: Vec<PathBuf>,
    /// The age identity file for the environment's secrets [default: AIRLOCK_IDENTITY, else ~/.config/airlock/identity.txt]
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Don't use the setup cache for this run: run setup, save nothing.
    #[arg(long, conflicts_with = "refresh_cache")]
    pub no_cache: bool,
    /// Run setup even when the cache has an entry, and replace that entry.
    #[arg(long)]
    pub refresh_cache: bool,
    /// The command the agent phase runs (argv, not a shell string: use `bash -c '...'` for shell syntax).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub async fn run(args: RunArgs, g: &Globals) -> anyhow::Result<i32> {
    let json = args.json;
    let result = run_task(args, g).await;
    if let (true, Err(e)) = (json, &result) {
        // No run exists yet: a report anyway, so a script reading stdout always gets one.
        let outcome = super::outcome_of(e);
        let error: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        let report = serde_json::json!({
            "run_id": null,
            "airlock_version": env!("CARGO_PKG_VERSION"),
            "outcome": outcome.word(),
            "exit_code": outcome.exit_code(None, None),
            "error": error.join("\n  caused by: "),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    result
}

async fn run_task(args: RunArgs, g: &Globals) -> anyhow::Result<i32> {
    // Signals are taken over first, so that one arriving while the run starts is not lost.
    let signals = Signals::install()?;
    let as_path = environment::is_path_spec(&args.env);
    let root = ConfigRoot::locate(
        g.root.as_deref(),
        as_path.then(|| std::path::Path::new(&args.env)),
    )?;
    let path = environment::resolve(Some(&root), &args.env)?;
    let env = environment::load_in(Some(&root), &path)?;
    for w in &env.warnings {
        console::warning(w);
    }
    let workspace = match args.workspace {
        Some(w) => w,
        None => std::env::current_dir().context("the current directory")?,
    };
    let workspace = std::path::absolute(&workspace).unwrap_or(workspace);
    if let Some(out) = &args.out {
        let existing = out.join("report.json");
        if existing.exists() && !args.force {
            return Err(super::Refused {
                outcome: crate::outcome::Outcome::ConfigError,
                message: format!(
                    "--out {} already holds a run record ({})\n  fix: pass --force to replace it, or give another --out folder",
                    out.display(),
                    existing.display()
                ),
            }
            .into());
        }
        if existing.exists() {
            // --force: the old record goes whole (its logs, patch and network.jsonl too), so
            // nothing of it is read as this run's.
            std::fs::remove_dir_all(out)
                .with_context(|| format!("removing the old run record in {}", out.display()))?;
        }
    }
    let task = run::Task {
        env,
        workspace,
        command: args.command,
    };
    let mut opts = run::Options::new(crate::engine::from_env()?);
    opts.events = Arc::new(console::Console::new(args.quiet));
    opts.out = args.out;
    opts.keep = args.keep;
    opts.apply = args.apply;
    opts.apply_trusted = args.apply_trusted;
    opts.identity = args.identity;
    opts.cache = if args.no_cache {
        crate::cache::Mode::Off
    } else if args.refresh_cache {
        crate::cache::Mode::Refresh
    } else {
        crate::cache::Mode::Use
    };
    let watcher = tokio::spawn(signals.stop_on_signal(opts.stop.clone()));
    let done = run::execute(&root, task, opts).await;
    watcher.abort();
    let r = &done.report;
    if args.json {
        println!("{}", serde_json::to_string_pretty(r)?);
    }
    let outcome = r.outcome.word().replace('_', " ");
    let mut line = format!("run {}: {outcome} (exit {})", r.run_id, done.exit_code);
    if let Some(dir) = &done.record_dir {
        line.push_str(&format!("; record: {}", dir.display()));
    }
    console::note(line);
    if let Some(e) = &r.error {
        if r.outcome != Outcome::Succeeded && r.outcome != Outcome::Failed {
            eprintln!("airlock: error: {e}");
        }
    }
    if r.kept {
        console::note(format!(
            "kept: open a shell in the final state with `airlock shell {0}`; discard it with `airlock gc --kept {0}`",
            r.run_id
        ));
    }
    Ok(done.exit_code)
}

/// SIGINT and SIGTERM, taken over from the default (which would kill airlock before it
/// removes what the run made).
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("handling SIGINT")?,
            term: signal(SignalKind::terminate()).context("handling SIGTERM")?,
        })
    }

    /// Interrupt `stop` at the first signal.
    pub async fn stop_on_signal(mut self, stop: Stop) {
        let signal = tokio::select! {
            _ = self.int.recv() => Signal::Int,
            _ = self.term.recv() => Signal::Term,
        };
        stop.interrupt(signal);
    }
}
