//! airlock: a self-hosted, two-phase task runner.
//!
//! A **task** (a workspace and a command) runs in an **environment** (`envs/NAME.yaml`).
//! One execution of a task is a **run**, and a run has two **phases**, each in its own
//! container:
//!
//! 1. the **setup phase** ([`run::setup`]): network on, the environment's variables and its
//!    decrypted **secrets** ([`secrets`]) present, the environment's setup script installs what
//!    the task needs;
//! 2. the **boundary** ([`boundary`]): the setup container is torn down; only the workspace, the
//!    declared `persist` paths and the declared variables cross, and every byte that crosses is
//!    scanned ([`scan`]) for every secret value;
//! 3. the **agent phase** ([`run::agent`]): a fresh container with no secrets, no network,
//!    an unprivileged user and resource limits runs the command.
//!
//! The rest of the crate serves those three steps:
//! - [`root`]: where environments, secrets and images live (the config root);
//! - [`environment`]: loading and validating environment definitions;
//! - [`images`]: building the images tasks run in, offline;
//! - [`engine`]: the container engine behind one trait ([`engine::Engine`]; Docker through
//!   bollard, and an in-process fake for unit tests); every object airlock makes is labelled;
//! - [`record`]: the run record (`report.json`, logs, `changes.patch`);
//! - [`patch`]: the agent phase's workspace changes as a git patch;
//! - [`proxy`]: the egress proxy that enforces an agent network allowlist (`airlock proxy`);
//! - [`cache`]: the setup cache (`cache:` in an environment): repeat runs skip setup;
//! - [`cleanup`]: removing what a run made, now (guards) or later (`airlock gc`);
//! - [`run`]: the run library: one run, start to finish, one file per step; the CLI, the
//!   scheduler and the service drive it with an event sink and a stop handle;
//! - [`schedule`]: scheduled unattended runs (`schedules/NAME.yaml`, `airlock schedule`);
//! - [`outcome`]: how a run ends and the exit code of each ending (one table);
//! - [`cli`]: the command-line shell around all of it.

pub mod boundary;
pub mod cache;
pub mod cleanup;
pub mod cli;
pub mod console;
pub mod engine;
pub mod environment;
pub mod hex;
pub mod images;
pub mod outcome;
pub mod patch;
pub mod proxy;
pub mod record;
pub mod root;
pub mod run;
pub mod scan;
pub mod schedule;
pub mod secrets;
pub mod shell;
pub mod trusted;
pub mod workspace;
