//! airlock: a self-hosted, two-phase task runner.
//!
//! A **task** (a workspace and a command) runs in an **environment** (`envs/NAME.yaml`).
//! One execution of a task is a **run**, and a run has two **phases**, each in its own
//! container:
//!
//! 1. the **setup phase** ([`phase::setup`]): network on, the environment's variables and its
//!    decrypted **secrets** ([`secrets`]) present, the environment's setup script installs what
//!    the task needs;
//! 2. the **boundary** ([`boundary`]): the setup container is torn down; only the workspace, the
//!    declared `persist` paths and the declared variables cross, and every byte that crosses is
//!    scanned ([`scan`]) for every secret value;
//! 3. the **agent phase** ([`phase::agent`]): a fresh container with no secrets, no network,
//!    an unprivileged user and resource limits runs the command.
//!
//! The rest of the crate serves those three steps:
//! - [`root`]: where environments, secrets and images live (the config root);
//! - [`environment`]: loading and validating environment definitions;
//! - [`images`]: building the images tasks run in, offline;
//! - [`engine`]: the Docker engine, reached through bollard; every object airlock makes is
//!   labelled there;
//! - [`record`]: the run record (`report.json`, logs, `changes.patch`);
//! - [`patch`]: the agent phase's workspace changes as a git patch;
//! - [`cleanup`]: removing what a run made, now (guards) or later (`airlock gc`);
//! - [`run`]: the orchestration of one run, start to finish;
//! - [`cli`]: the command-line shell around all of it.

pub mod boundary;
pub mod cleanup;
pub mod cli;
pub mod console;
pub mod engine;
pub mod environment;
pub mod exit;
pub mod images;
pub mod patch;
pub mod phase;
pub mod record;
pub mod root;
pub mod run;
pub mod scan;
pub mod secrets;
pub mod shell;
pub mod workspace;
