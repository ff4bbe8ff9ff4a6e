//! One run, start to finish.
//!
//! The order matters and is the design: everything that can fail on bad input (the record
//! folder, the environment, the secrets, the image) is checked before any container exists;
//! every engine object is labelled with the run id, so however the run ends (success,
//! failure, timeout, Ctrl-C/SIGTERM) [`cleanup::remove_run`] removes all of them; and the
//! record is written in every case.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rand::Rng;
use secrecy::ExposeSecret;

use crate::boundary::{self, BoundaryError};
use crate::cleanup;
use crate::console::{self, PhaseConsole};
use crate::engine::{labels, Engine, EngineError};
use crate::environment::{CaSource, Environment};
use crate::exit;
use crate::images;
use crate::patch;
use crate::phase::{self, agent, setup, RunNames, Sinks, WORKSPACE};
use crate::record::{self, Outcome, PatchReport, Record, Report};
use crate::root::ConfigRoot;
use crate::scan::SecretSet;
use crate::secrets::{self, SecretValue};
use crate::workspace;

/// What to run.
#[derive(Debug, Clone)]
pub struct Task {
    pub env: Environment,
    pub workspace: PathBuf,
    pub command: Vec<String>,
}

/// How to run it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The record folder; default `<root>/.airlock/runs/<run id>`.
    pub out: Option<PathBuf>,
    pub keep: bool,
    pub apply: bool,
    /// No live output (for `--json` consumers that only want the report).
    pub quiet: bool,
    pub identity: Option<PathBuf>,
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

/// Run a task. Never panics on user input; every ending produces a report.
pub async fn execute(root: &ConfigRoot, task: Task, opts: Options) -> Finished {
    let run_id = new_run_id();
    let mut laps = Laps::new();
    let mut report = initial_report(&run_id, &task, &opts);
    let record_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| root.runs_dir().join(&run_id));
    // The record exists from the start: if airlock is killed outright, it still names the
    // run and says it never ended.
    let created = Record::create(&record_dir).and_then(|r| r.write_report(&report).map(|()| r));
    let record = match created {
        Ok(r) => r,
        Err(e) => {
            return finish(
                None,
                report,
                Outcome::ConfigError,
                exit::CONFIG_ERROR,
                Some(e.to_string()),
            )
        }
    };
    let signal = wait_for_signal();
    tokio::pin!(signal);
    let prepared = tokio::select! {
        r = prepare(root, &task, &opts) => r,
        sig = &mut signal => return finish(Some(&record), report, Outcome::Interrupted, signal_exit(sig), Some(format!("interrupted by {sig} before the setup phase started"))),
    };
    let ctx = match prepared {
        Ok(ctx) => ctx,
        Err((outcome, code, message)) => {
            return finish(Some(&record), report, outcome, code, Some(message))
        }
    };
    laps.lap("prepare (secrets, engine, image)");
    report.secrets = ctx.secrets.iter().map(|(n, _)| n.clone()).collect();
    report.image = Some(record::ImageReport {
        reference: ctx.image.reference.clone(),
        id: ctx.image.id.clone(),
    });
    checkpoint(&record, &report);

    let names = RunNames {
        run_id: run_id.clone(),
    };
    let flow = phases(&ctx, &names, &task, &opts, &record, &mut report, &mut laps);
    let ended = tokio::select! {
        ended = flow => Ok(ended),
        sig = &mut signal => {
            console::note(format!("{sig} received: stopping run {run_id} and removing its containers"));
            Err(sig)
        }
    };
    // However it ended: remove what the run made (kept objects stay). When that fails (the
    // engine went away), one line says what is left and how to remove it later.
    let settled = match &ended {
        Ok(Ok(_)) => true,
        Ok(Err((outcome, _, _))) => *outcome != Outcome::EngineError,
        Err(_) => false,
    };
    let left = cleanup::remove_run(&ctx.engine, &run_id, settled).await;
    laps.lap("cleanup");
    if let Some(first) = left.first() {
        let why = first.to_string();
        let why = why.lines().next().unwrap_or_default();
        console::note(format!(
            "cleanup: could not remove everything run {run_id} made ({why}); `airlock gc {run_id}` removes it once the engine answers"
        ));
    }
    let (outcome, code, message) = match ended {
        Ok(Ok((outcome, code))) => (outcome, code, None),
        Ok(Err((outcome, code, message))) => (outcome, code, Some(message)),
        Err(sig) => (
            Outcome::Interrupted,
            signal_exit(sig),
            Some(format!("interrupted by {sig}")),
        ),
    };
    finish(Some(&record), report, outcome, code, message)
}

type Failure = (Outcome, i32, String);

/// What a run needs before any container exists.
struct Ready {
    engine: Engine,
    image: images::ReadyImage,
    secrets: Vec<(String, SecretValue)>,
    scanner: Arc<SecretSet>,
    ca: Vec<(String, Vec<u8>)>,
    owner: String,
}

async fn prepare(root: &ConfigRoot, task: &Task, opts: &Options) -> Result<Ready, Failure> {
    let config = |m: String| (Outcome::ConfigError, exit::CONFIG_ERROR, m);
    let env = &task.env;
    if !task.workspace.is_dir() {
        return Err(config(format!(
            "workspace {} is not a folder\n  fix: pass -w DIR with an existing folder",
            task.workspace.display()
        )));
    }
    let secrets = if env.secrets.is_empty() {
        Vec::new()
    } else {
        let ids = secrets::find_identities(opts.identity.as_deref())
            .map_err(|e| config(e.to_string()))?;
        secrets::Store::open(&root.secrets_dir())
            .decrypt_all(&env.secrets, &ids)
            .map_err(|e| config(e.to_string()))?
    };
    for (name, value) in &secrets {
        if value.expose_secret().contains(&0) {
            return Err(config(format!("secret {name} contains a NUL byte, so it can't be an environment variable of the setup script\n  fix: store it base64-encoded and decode it in the setup script")));
        }
    }
    let pairs: Vec<(&str, &[u8])> = secrets
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose_secret()))
        .collect();
    let scanner = Arc::new(SecretSet::new(&pairs));
    for (k, v) in &env.env {
        if let Some(hit) = scanner.scan_bytes(v.as_bytes()) {
            return Err(config(format!(
                "{}: env.{k} holds the value of secret {} ({} form); plain variables are visible to the agent phase and in `docker inspect`\n  fix: remove it from env:",
                env.path.display(),
                hit.secret,
                hit.form
            )));
        }
    }
    if let Some(script) = &env.setup {
        if let Some(hit) = scanner.scan_bytes(script.as_bytes()) {
            return Err(config(format!(
                "{}: the setup script contains the value of secret {}\n  fix: refer to it as ${}",
                env.path.display(),
                hit.secret,
                hit.secret
            )));
        }
    }
    let mut ca = Vec::new();
    for (i, source) in env.ca_certificates.iter().enumerate() {
        let path = match source {
            CaSource::Host => host_ca_bundle().ok_or_else(|| config("ca_certificates: host: no system CA bundle found on this host (looked for /etc/ssl/certs/ca-certificates.crt and /etc/pki/tls/certs/ca-bundle.crt)".into()))?,
            CaSource::File(p) => p.clone(),
        };
        let pem = std::fs::read(&path).map_err(|e| {
            config(format!(
                "ca_certificates: cannot read {}: {e}",
                path.display()
            ))
        })?;
        ca.push((format!("{i}.pem"), pem));
    }
    let engine_err = |e: EngineError| (Outcome::EngineError, exit::ENGINE_ERROR, e.to_string());
    let engine = Engine::connect().await.map_err(engine_err)?;
    let image = images::ensure(&engine, root, &env.image)
        .await
        .map_err(|e| {
            let err = anyhow::Error::new(e);
            let code = exit::code_for(&err);
            let outcome = if code == exit::ENGINE_ERROR {
                Outcome::EngineError
            } else {
                Outcome::ConfigError
            };
            (outcome, code, format!("{err:#}"))
        })?;
    Ok(Ready {
        engine,
        image,
        secrets,
        scanner,
        ca,
        owner: cleanup::owner_id(),
    })
}

fn host_ca_bundle() -> Option<PathBuf> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Setup phase, boundary, agent phase. Returns the outcome and exit code.
async fn phases(
    ctx: &Ready,
    names: &RunNames,
    task: &Task,
    opts: &Options,
    record: &Record,
    report: &mut Report,
    laps: &mut Laps,
) -> Result<(Outcome, i32), Failure> {
    let engine = &ctx.engine;
    let env = &task.env;
    let engine_err = |e: EngineError| (Outcome::EngineError, exit::ENGINE_ERROR, e.to_string());
    let io_err = |what: &str, e: &dyn std::fmt::Display| {
        (
            Outcome::InternalError,
            exit::INTERNAL_ERROR,
            format!("{what}: {e}"),
        )
    };
    let quiet = opts.quiet;

    // Objects: the setup network and the volumes that carry what crosses.
    let network_labels = labels::for_run(&names.run_id, "setup", &ctx.owner);
    let mut object_labels = network_labels.clone();
    if opts.keep {
        object_labels.insert(labels::KEPT.into(), "true".into());
    }
    let has_git = std::fs::symlink_metadata(task.workspace.join(".git"))
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let roots = boundary::roots(WORKSPACE, has_git, &env.persist);
    let volumes: Vec<String> = roots.iter().map(|r| names.volume(r)).collect();
    // Independent objects: made at once.
    let network_name = names.network();
    let network = engine.create_network(&network_name, &network_labels);
    let volumes = volumes
        .iter()
        .map(|v| engine.create_volume(v, &object_labels));
    futures_util::future::try_join(network, futures_util::future::try_join_all(volumes))
        .await
        .map_err(engine_err)?;
    laps.lap("network and volumes");

    // Setup phase.
    let marker = format!("__airlock_end_{:032x}__", rand::rng().random::<u128>());
    let spec = setup::spec(
        names,
        &ctx.image.reference,
        env,
        has_git,
        &ctx.owner,
        &marker,
    );
    let setup_id = engine.create_container(&spec).await.map_err(engine_err)?;
    laps.lap("setup container created");
    let exclude = vec![record.dir().to_path_buf(), task.workspace.join(".airlock")];
    let (tar, packed) = workspace::pack(task.workspace.clone(), exclude);
    engine
        .upload(&setup_id, WORKSPACE, tar)
        .await
        .map_err(engine_err)?;
    let packed = packed
        .await
        .map_err(|e| io_err("packing the workspace", &e))?
        .map_err(|e| io_err("packing the workspace", &e))?;
    for skipped in &packed.skipped {
        console::note(format!(
            "not copied (not a file, folder or symlink): {}",
            skipped.display()
        ));
    }
    if !ctx.ca.is_empty() {
        engine
            .upload(&setup_id, "/", ca_tar(&ctx.ca))
            .await
            .map_err(engine_err)?;
    }
    laps.lap("workspace uploaded");
    let program = setup::program(env, &ctx.secrets, &marker, !ctx.ca.is_empty());
    let sinks = Sinks {
        redactor: ctx.scanner.redactor(),
        log: record.log("setup").map_err(|e| io_err("run record", &e))?,
        console: PhaseConsole::new("setup | ", quiet),
    };
    let end = phase::drive(
        engine,
        &setup_id,
        Some(program),
        sinks,
        env.limits.setup_timeout,
    )
    .await
    .map_err(engine_err)?;
    report.setup = end.report.clone();
    laps.lap("setup phase");
    checkpoint(record, report);
    if end.timed_out || end.exited.code != 0 {
        let why = if end.timed_out {
            format!(
                "setup timed out after {}",
                humantime::format_duration(env.limits.setup_timeout)
            )
        } else {
            format!(
                "setup failed: its script exited with code {}{}",
                end.exited.code,
                if end.exited.oom_killed {
                    format!(" after running out of memory: {}", oom_note(env))
                } else {
                    String::new()
                }
            )
        };
        return Err((
            Outcome::SetupFailed,
            exit::SETUP_FAILED,
            format!(
                "{why}; the agent phase did not start (log: {})",
                record.path("setup.log").display()
            ),
        ));
    }

    // Boundary.
    if !quiet {
        console::note("boundary: checking what crosses for secret values");
    }
    let tally = Arc::new(boundary::Tally::default());
    let check = boundary::check(
        engine,
        &setup_id,
        &roots,
        ctx.scanner.clone(),
        &env.env,
        tally.clone(),
    );
    let crossing = console::with_spinner(check, quiet, || {
        format!(
            "boundary: checking what crosses: {} entries, {} read",
            tally.entries.load(Ordering::Relaxed),
            console::show_bytes(tally.bytes.load(Ordering::Relaxed))
        )
    })
    .await;
    laps.lap("boundary check");
    // The boundary's other half: the setup container goes before anything of the agent
    // phase exists (whatever the check said).
    engine
        .remove_container(&setup_id)
        .await
        .map_err(engine_err)?;
    let crossing = match crossing {
        Ok(c) => c,
        Err(BoundaryError::Engine(e)) => return Err(engine_err(e)),
        Err(e) => {
            report.boundary.refused = Some(e.to_string());
            return Err((
                Outcome::BoundaryRefused,
                exit::BOUNDARY_REFUSED,
                e.to_string(),
            ));
        }
    };
    if !quiet {
        let (files, bytes) = crossing
            .paths
            .iter()
            .fold((0, 0), |(f, b), p| (f + p.files, b + p.bytes));
        let vars = crossing.variables.len();
        console::note(format!(
            "boundary: {files} file{} ({}) and {vars} variable{} checked in {} ms; no secret value crosses",
            if files == 1 { "" } else { "s" },
            console::show_bytes(bytes),
            if vars == 1 { "" } else { "s" },
            crossing.duration_ms
        ));
    }
    report.boundary.duration_ms = Some(crossing.duration_ms);
    report.boundary.paths = crossing.paths.clone();
    report.boundary.variables = crossing.variables.iter().map(|(k, _)| k.clone()).collect();
    report.setup_changed = patch::changed_by_setup(&packed.manifest, &crossing.workspace);
    checkpoint(record, report);

    // Agent phase.
    let mut spec = agent::spec(
        names,
        &ctx.image.reference,
        env,
        has_git,
        &crossing.variables,
        &task.command,
        &ctx.owner,
    );
    if opts.keep {
        spec.labels.insert(labels::KEPT.into(), "true".into());
    }
    let agent_phase = async {
        let agent_id = engine.create_container(&spec).await.map_err(engine_err)?;
        let sinks = Sinks {
            redactor: ctx.scanner.redactor(),
            log: record.log("agent").map_err(|e| io_err("run record", &e))?,
            console: PhaseConsole::new("agent | ", quiet),
        };
        let end = phase::drive(engine, &agent_id, None, sinks, env.limits.agent_timeout)
            .await
            .map_err(engine_err)?;
        Ok::<_, Failure>((agent_id, end))
    };
    // The setup network served only the setup container, which is gone: removing it costs
    // the engine ~180 ms (the bridge and its firewall rules), which the agent phase (on no
    // network at all) need not wait for.
    let teardown = engine.remove_network(&network_name);
    let (ran, torn) = tokio::join!(agent_phase, teardown);
    let (agent_id, end) = ran?;
    torn.map_err(engine_err)?;
    report.agent = end.report.clone();
    laps.lap("agent phase");
    report.kept = opts.keep;

    // The patch, against the original workspace.
    let made = patch::build(
        engine,
        &agent_id,
        WORKSPACE,
        &task.workspace,
        &packed.manifest,
        &crossing.workspace,
    )
    .await;
    let made = made.map_err(|e| io_err("changes.patch", &e))?;
    laps.lap("patch built");
    let patch_path = record
        .write_file("changes.patch", &made.bytes)
        .map_err(|e| io_err("run record", &e))?;
    let mut applied = false;
    let mut apply_failed = None;
    if opts.apply && !made.bytes.is_empty() {
        if made.host_changed.is_empty() {
            match patch::apply(&task.workspace, &patch_path) {
                Ok(()) => applied = true,
                Err(e) => apply_failed = Some(e.to_string()),
            }
        } else {
            apply_failed = Some(format!(
                "refused to apply {}: the workspace changed on the host while the run ran ({}), and applying would write over that\n  fix: read the patch and apply what you want of it by hand (git apply --3way)",
                patch_path.display(),
                made.host_changed.join(", ")
            ));
        }
    }
    report.patch = Some(PatchReport {
        file: patch_path.display().to_string(),
        files_changed: made.files.len(),
        host_changed: made.host_changed.clone(),
        bytes: made.bytes.len() as u64,
        applied,
    });
    if !opts.keep {
        engine
            .remove_container(&agent_id)
            .await
            .map_err(engine_err)?;
        laps.lap("agent container removed");
    }

    if end.timed_out {
        return Ok((Outcome::TimedOut, exit::TIMED_OUT));
    }
    let code = end.exited.code.clamp(0, 255) as i32;
    if let Some(e) = apply_failed {
        return Err((
            Outcome::ApplyFailed,
            exit::APPLY_FAILED,
            format!(
                "--apply: {e}\n  the agent command exited with code {code}; the workspace is untouched"
            ),
        ));
    }
    if code != 0 && end.exited.oom_killed {
        return Err((
            Outcome::OutOfMemory,
            code,
            format!(
                "the agent command exited with code {code} after running out of memory: {}\n  fix: raise limits.memory in {}, or make the command use less",
                oom_note(env),
                env.path.display()
            ),
        ));
    }
    Ok((
        if code == 0 {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        },
        code,
    ))
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

/// A tar putting each CA file at /airlock/ca/<name>.
fn ca_tar(
    files: &[(String, Vec<u8>)],
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let _ = builder.append_data(&mut h, Path::new("airlock/ca").join(name), &data[..]);
    }
    let bytes = builder.into_inner().unwrap_or_default();
    futures_util::stream::once(async move { Ok(bytes::Bytes::from(bytes)) })
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
            agent: "none".into(),
        },
        setup_changed: Vec::new(),
        patch: None,
        kept: opts.keep,
    }
}

fn finish(
    record: Option<&Record>,
    mut report: Report,
    outcome: Outcome,
    code: i32,
    message: Option<String>,
) -> Finished {
    report.outcome = outcome;
    report.exit_code = Some(code);
    report.error = message;
    report.finished = Some(record::timestamp(SystemTime::now()));
    if let Some(record) = record {
        if let Err(e) = record.write_report(&report) {
            console::note(format!("could not write the report: {e}"));
        }
    }
    Finished {
        report,
        exit_code: code,
        record_dir: record.map(|r| r.dir().to_path_buf()),
    }
}

/// Bring the record's report up to date while the run is still going (its outcome stays
/// `incomplete`), so a killed airlock leaves a record of how far the run got. A failed write
/// doesn't stop the run: the final write will say so.
fn checkpoint(record: &Record, report: &Report) {
    if let Err(e) = record.write_report(report) {
        tracing::debug!("could not update the report: {e}");
    }
}

/// Resolves when SIGINT or SIGTERM arrives, with its name.
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn signal_exit(sig: &str) -> i32 {
    if sig == "SIGTERM" {
        exit::TERMINATED
    } else {
        exit::INTERRUPTED
    }
}

/// Step timings, logged at `-v`: where a run's time goes (see bench/run).
struct Laps {
    last: Instant,
}

impl Laps {
    fn new() -> Laps {
        Laps {
            last: Instant::now(),
        }
    }

    fn lap(&mut self, step: &str) {
        let now = Instant::now();
        tracing::debug!("{step}: {} ms", (now - self.last).as_millis());
        self.last = now;
    }
}
