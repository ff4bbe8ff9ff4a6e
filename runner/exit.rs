//! Exit codes: one place that says what each way of ending means.
//!
//! When the agent phase ran to its end, airlock exits with the agent command's own code. Every
//! other ending has a code of its own, chosen away from the codes commands commonly use, and
//! documented in the README. Errors anywhere in the library are mapped to these codes at the
//! top ([`code_for`]), so a script driving airlock can tell "your tests failed" from "setup
//! failed" from "the engine went away".

use std::fmt;

/// The run's setup phase failed (its script exited non-zero, or it timed out).
pub const SETUP_FAILED: i32 = 80;
/// The boundary refused the run: a secret value would have crossed, or a path was unsafe.
pub const BOUNDARY_REFUSED: i32 = 81;
/// `--apply` could not apply the agent phase's patch to the host workspace (it changed during
/// the run); the patch is in the record and the workspace is untouched.
pub const APPLY_FAILED: i32 = 82;
/// The agent phase hit its `agent_timeout` (as `timeout(1)` does).
pub const TIMED_OUT: i32 = 124;
/// The Docker engine failed or could not be reached (as `docker run` does).
pub const ENGINE_ERROR: i32 = 125;
/// Bad input: an environment definition, a secret, a flag (`EX_CONFIG` from sysexits.h).
pub const CONFIG_ERROR: i32 = 78;
/// Interrupted by SIGINT (Ctrl-C).
pub const INTERRUPTED: i32 = 130;
/// Interrupted by SIGTERM.
pub const TERMINATED: i32 = 143;
/// Anything else airlock could not do (an I/O error on the host, a bug).
pub const INTERNAL_ERROR: i32 = 70;

/// An error that knows how airlock should exit because of it.
///
/// Library errors that already carry a meaning wrap themselves in this (or are mapped in
/// [`code_for`]); the top of the program only needs to look for it in the chain.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The exit code for an error chain: the first [`Exit`] in it, else by the kind of library
/// error found, else [`INTERNAL_ERROR`].
pub fn code_for(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return exit.code;
        }
        if cause.downcast_ref::<crate::engine::EngineError>().is_some() {
            return ENGINE_ERROR;
        }
        if let Some(e) = cause.downcast_ref::<crate::images::ImageError>() {
            return e.exit_code();
        }
        if cause
            .downcast_ref::<crate::environment::EnvError>()
            .is_some()
            || cause
                .downcast_ref::<crate::secrets::SecretError>()
                .is_some()
            || cause.downcast_ref::<crate::root::RootError>().is_some()
        {
            return CONFIG_ERROR;
        }
    }
    INTERNAL_ERROR
}
