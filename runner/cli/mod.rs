//! The command line: raw flags are parsed here, each subcommand lives in its own small file
//! that turns its flags into library calls, and errors become exit codes in one place
//! ([`main`]).

mod cache;
mod console;
mod env;
mod gc;
mod image;
mod proxy;
mod run;
mod runs;
mod schedule;
mod secrets;
mod shell;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::outcome::Outcome;

/// airlock runs a task in two phases: setup (network, secrets) and agent (sealed: no secrets,
/// no network), with a checked boundary between them.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None)]
pub struct Cli {
    /// The config root: the folder holding envs/, secrets/ and images/ [default: AIRLOCK_ROOT,
    /// else found from the environment file or the current directory]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    /// More log detail on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check environment definitions (envs/NAME.yaml).
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// Manage the age-encrypted secrets in secrets/.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Build and list the images tasks run in (images/NAME/).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Run a task: setup phase, boundary, agent phase.
    Run(run::RunArgs),
    /// The setup cache: list, explain, remove and prune entries.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Remove containers, networks and volumes that dead runs left behind.
    Gc(gc::GcArgs),
    /// Scheduled unattended runs (schedules/NAME.yaml).
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// The run records (.airlock/runs/).
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Open a shell in a kept run's final state (offline, no secrets).
    Shell(shell::ShellArgs),
    /// Run the egress proxy (started by runs with an agent network allowlist).
    #[command(hide = true)]
    Proxy(proxy::ProxyArgs),
}

/// Flags every subcommand may use.
#[derive(Debug, Clone)]
pub struct Globals {
    pub root: Option<PathBuf>,
}

/// Parse the command line, run, and return the process exit code.
pub fn main() -> std::process::ExitCode {
    let code = run_main();
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}

fn run_main() -> i32 {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let globals = Globals { root: cli.root };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("airlock: error: cannot start the async runtime: {e}");
            return Outcome::InternalError.exit_code(None, None);
        }
    };
    match runtime.block_on(dispatch(cli.command, globals)) {
        Ok(code) => code,
        Err(err) => {
            report_error(&err);
            outcome_of(&err).exit_code(None, None)
        }
    }
}

/// A command-line error that already knows how airlock ends because of it.
#[derive(Debug)]
pub struct Refused {
    pub outcome: Outcome,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// How a command that failed ends: by the first library error in the chain that says.
pub(super) fn outcome_of(err: &anyhow::Error) -> Outcome {
    for cause in err.chain() {
        if let Some(r) = cause.downcast_ref::<Refused>() {
            return r.outcome;
        }
        if cause.downcast_ref::<crate::engine::EngineError>().is_some() {
            return Outcome::EngineError;
        }
        if let Some(e) = cause.downcast_ref::<crate::images::ImageError>() {
            return e.outcome();
        }
        if cause
            .downcast_ref::<crate::environment::EnvError>()
            .is_some()
            || cause
                .downcast_ref::<crate::secrets::SecretError>()
                .is_some()
            || cause.downcast_ref::<crate::root::RootError>().is_some()
            || cause.downcast_ref::<crate::proxy::ProxyError>().is_some()
            || cause
                .downcast_ref::<crate::schedule::state::StateError>()
                .is_some()
        {
            return Outcome::ConfigError;
        }
    }
    Outcome::InternalError
}

async fn dispatch(command: Command, g: Globals) -> anyhow::Result<i32> {
    match command {
        Command::Env(c) => env::run(c, &g).await,
        Command::Secrets(c) => secrets::run(c, &g).await,
        Command::Image(c) => image::run(c, &g).await,
        Command::Run(a) => run::run(a, &g).await,
        Command::Cache(c) => cache::run(c, &g).await,
        Command::Gc(a) => gc::run(a, &g).await,
        Command::Shell(a) => shell::run(a, &g).await,
        Command::Schedule(c) => schedule::run(c, &g).await,
        Command::Runs(c) => runs::run(c, &g).await,
        Command::Proxy(a) => proxy::run(a).await,
    }
}

/// Print an error chain: the outermost message, then each cause on its own line.
fn report_error(err: &anyhow::Error) {
    eprintln!("airlock: error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Logging: at the default verbosity only warnings and errors, in the console's one format
/// (`airlock: warning: …`, `airlock: error: …`) and never coloured; with `-v`, tracing's own
/// format for debugging, coloured only on a terminal.
fn init_tracing(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "airlock=debug",
        _ => "airlock=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if verbose == 0 {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(Plain)
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init();
    }
}

/// `airlock: warning: MESSAGE` (the level's word, the event's fields), no colour, no time.
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "note",
            _ => "debug",
        };
        write!(writer, "airlock: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
