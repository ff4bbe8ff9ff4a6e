//! Parsers for the leaf values of an environment file: durations, sizes, names, users,
//! persisted paths and the agent network's allowlist entries.
//!
//! Each takes the value's text exactly as written in the YAML (so `memory: 4096` and
//! `memory: "4096"` read the same) and returns the value or a `Fail` that says what is
//! wrong and how to fix it. They know nothing about YAML, so they are tested here directly.

mod limits;
mod names;
mod network;
mod paths;

pub use limits::*;
pub use names::*;
pub use network::*;
pub use paths::*;
