//! How a run ends, and the exit code each ending has: one table, in one place.
//!
//! When the agent phase ran to its end, airlock exits with the agent command's own code
//! (`succeeded`, `failed`, `out_of_memory`). Every other ending has a code of its own, chosen
//! away from the codes commands commonly use, so a script driving airlock can tell "your
//! tests failed" from "setup failed" from "the engine went away". The README's table is
//! checked against [`TABLE`] by a test, so the two can't drift apart.
//!
//! Three words have fixed meanings everywhere (the CLI, the scheduler, the service):
//! - `interrupted`: the airlock process got SIGINT or SIGTERM;
//! - `cancelled`: someone cancelled the run through the run library's [`crate::run::Stop`]
//!   handle (the service's API, a schedule's `replace` policy, `airlock runs cancel`);
//! - `abandoned`: the process that owned the run died (kill -9, power loss, a worker whose
//!   lease expired); recorded afterwards by whoever finds the run (`gc`, a restarting service).

use serde::{Deserialize, Serialize};

/// How a run ended (`report.json`'s `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not ended: the run is still going, or airlock was killed before it could say how the
    /// run ended (then `airlock gc RUN-ID` removes what it left).
    Incomplete,
    /// The agent command exited 0.
    Succeeded,
    /// The agent command exited non-zero.
    Failed,
    /// The agent command exited non-zero after the kernel's OOM killer ended a process of
    /// the agent phase (it hit `limits.memory`). Told apart from `failed` so a script can
    /// raise the limit instead of reading the command's logs; the exit code is still the
    /// command's (137 when the command itself was the one killed).
    OutOfMemory,
    SetupFailed,
    BoundaryRefused,
    /// The agent phase ran to its end (its exit code is in `agent`), but `--apply` could not
    /// apply the patch to the host workspace, which is left untouched.
    ApplyFailed,
    /// The agent phase ran to its end (its exit code is in `agent`), but its changed files
    /// hold more than `limits.output_size`: nothing was copied back, and there is no patch.
    OutputTooLarge,
    TimedOut,
    Interrupted,
    Cancelled,
    Abandoned,
    EngineError,
    ConfigError,
    InternalError,
}

/// A signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// 128 + the signal's number, as shells report it.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }
}

/// Where an ending's exit code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The agent command's own exit code.
    Command,
    /// 128 + the signal's number.
    Signal,
    Fixed(i32),
}

/// Exit codes outside any run: the command line could not be parsed (clap's own code).
pub const USAGE: i32 = 2;

/// Every ending: its outcome, where its code comes from, and what it means (the README's
/// exit-code table, row by row).
pub const TABLE: &[(Outcome, Code, &str)] = &[
    (Outcome::Succeeded, Code::Command, "the agent phase ran to its end"),
    (Outcome::Failed, Code::Command, "the agent phase ran to its end"),
    (Outcome::OutOfMemory, Code::Command, "the agent phase ran to its end"),
    (
        Outcome::ConfigError,
        Code::Fixed(78),
        "configuration error: a parsed value is refused (environment, secrets, flags, record folder)",
    ),
    (
        Outcome::SetupFailed,
        Code::Fixed(80),
        "setup failed (script exited non-zero or timed out); the agent phase never started",
    ),
    (
        Outcome::BoundaryRefused,
        Code::Fixed(81),
        "the boundary refused the run (a secret value or an unsafe path would have crossed, or a `$AIRLOCK_ENV` line is invalid)",
    ),
    (
        Outcome::ApplyFailed,
        Code::Fixed(82),
        "`--apply` could not apply the patch (the workspace changed during the run): the workspace is untouched, the patch is in the record, the agent's exit code in `report.json`",
    ),
    (
        Outcome::Cancelled,
        Code::Fixed(83),
        "cancelled through the run library (the service's API, a schedule's `replace`, `airlock runs cancel`): everything removed, record written",
    ),
    (
        Outcome::Abandoned,
        Code::Fixed(84),
        "the process that owned the run died (kill -9, power loss, a lost worker); recorded afterwards by `gc` or a restarting service",
    ),
    (
        Outcome::OutputTooLarge,
        Code::Fixed(85),
        "the agent's changed files hold more than `limits.output_size` (default 256m): nothing was copied back, no patch; the agent's exit code in `report.json`",
    ),
    (Outcome::TimedOut, Code::Fixed(124), "the agent phase timed out"),
    (
        Outcome::EngineError,
        Code::Fixed(125),
        "the Docker engine failed or is unreachable",
    ),
    (
        Outcome::Interrupted,
        Code::Signal,
        "interrupted by SIGINT / SIGTERM (everything removed, record written)",
    ),
    (Outcome::InternalError, Code::Fixed(70), "internal error"),
];

impl Outcome {
    /// Where this ending's exit code comes from.
    pub fn code(self) -> Code {
        TABLE
            .iter()
            .find(|(o, _, _)| *o == self)
            .map(|(_, c, _)| *c)
            // Incomplete has no exit code of its own; a process that must exit while a run
            // is incomplete has failed internally.
            .unwrap_or(Code::Fixed(70))
    }

    /// The exit code, given the agent command's code and the interrupting signal where they
    /// apply.
    pub fn exit_code(self, command: Option<i32>, signal: Option<Signal>) -> i32 {
        match self.code() {
            Code::Fixed(c) => c,
            Code::Command => command.unwrap_or(70),
            Code::Signal => signal.unwrap_or(Signal::Int).exit_code(),
        }
    }

    /// Ended (not `incomplete`).
    pub fn is_final(self) -> bool {
        self != Outcome::Incomplete
    }

    /// The snake_case word `report.json` uses.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Incomplete => "incomplete",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::OutOfMemory => "out_of_memory",
            Outcome::SetupFailed => "setup_failed",
            Outcome::BoundaryRefused => "boundary_refused",
            Outcome::ApplyFailed => "apply_failed",
            Outcome::OutputTooLarge => "output_too_large",
            Outcome::TimedOut => "timed_out",
            Outcome::Interrupted => "interrupted",
            Outcome::Cancelled => "cancelled",
            Outcome::Abandoned => "abandoned",
            Outcome::EngineError => "engine_error",
            Outcome::ConfigError => "config_error",
            Outcome::InternalError => "internal_error",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// The README's exit-code rows, as `(code, meaning)`: rows that share a code and meaning
/// (the agent's own code) are one row.
pub fn readme_rows() -> Vec<(String, &'static str)> {
    let mut rows: Vec<(String, &'static str)> = Vec::new();
    for (_, code, meaning) in TABLE {
        let shown = match code {
            Code::Command => "the agent command's".to_string(),
            Code::Signal => "130 / 143".to_string(),
            Code::Fixed(c) => c.to_string(),
        };
        if !rows.iter().any(|(c, _)| *c == shown) {
            rows.push((shown, meaning));
        }
    }
    rows.push((
        USAGE.to_string(),
        "the command line can't be parsed (unknown flag, missing argument)",
    ));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_the_report_serialisation() {
        for (o, _, _) in TABLE {
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(json.as_str(), Some(o.word()));
        }
        assert_eq!(Outcome::Incomplete.word(), "incomplete");
    }

    #[test]
    fn every_final_outcome_has_one_row_and_codes_are_distinct() {
        let mut fixed = Vec::new();
        for (o, code, _) in TABLE {
            assert_eq!(TABLE.iter().filter(|(x, _, _)| x == o).count(), 1, "{o}");
            if let Code::Fixed(c) = code {
                assert!(!fixed.contains(c), "code {c} used twice");
                fixed.push(*c);
            }
        }
        assert_eq!(Outcome::Cancelled.exit_code(None, None), 83);
        assert_eq!(Outcome::Abandoned.exit_code(None, None), 84);
        assert_eq!(
            Outcome::Interrupted.exit_code(None, Some(Signal::Term)),
            143
        );
        assert_eq!(Outcome::Failed.exit_code(Some(3), None), 3);
    }

    /// The README's exit-code table says exactly what [`TABLE`] says.
    #[test]
    fn the_readme_table_is_this_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme
            .find("| code | meaning |")
            .expect("README has the exit-code table");
        let table: Vec<(String, String)> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                (cells[0].to_string(), cells[1..].join("|"))
            })
            .collect();
        let want: Vec<(String, String)> = readme_rows()
            .into_iter()
            .map(|(c, m)| (c, m.to_string()))
            .collect();
        assert_eq!(
            table, want,
            "README.md's exit-code table differs from outcome::TABLE"
        );
    }
}
