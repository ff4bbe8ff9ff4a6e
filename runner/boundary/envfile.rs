//! The `$AIRLOCK_ENV` file: how the setup phase hands variables to the agent phase.
//!
//! A setup script that installs a toolchain often needs to tell the agent phase about it
//! (`PATH` additions, `JAVA_HOME`, a cache location). It cannot export them — the setup
//! container is gone when the agent phase starts — so, as with GitHub Actions' `$GITHUB_ENV`,
//! it appends them to the file named by `$AIRLOCK_ENV`, and the boundary reads that file:
//!
//! ```text
//! NAME=value                # the value is the rest of the line, verbatim (may be empty,
//!                           # may contain `=`; a `\r` before the line break is kept)
//! NAME<<DELIMITER           # a multi-line value: the lines up to a line that is exactly
//! line one                  # DELIMITER, joined with `\n` (no trailing newline)
//! line two
//! DELIMITER
//! ```
//!
//! Blank lines and lines starting with `#` are skipped (not inside a heredoc value, where
//! every line is data). A later assignment to the same name replaces the earlier one. Values
//! are data, never interpreted: no quotes, no escapes, no expansion.
//!
//! The parser is strict, because what it accepts becomes the agent phase's environment:
//! names must be identifiers; airlock's own names (`AIRLOCK_*`) and names that change how the
//! dynamic loader or a shell behaves before any command runs (`LD_*`, `BASH_ENV`, `ENV`,
//! `BASH_FUNC_*`, `IFS`, ...) are refused; values must be UTF-8 without NUL bytes. Each error
//! names the line, says what is wrong and how to fix it, and never quotes a value (values
//! written during the setup phase may hold secrets). A value too long for a process
//! environment (see [`crate::environment::MAX_VAR_LEN`]) is refused here too: the agent
//! container could not even start, and that would look like the agent's command failing.

use std::collections::HashMap;

/// What is wrong with an `$AIRLOCK_ENV` file. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    #[error(
        "$AIRLOCK_ENV line {line}: `{name}` is not a valid variable name: use letters, digits \
         and `_`, not starting with a digit, and no spaces around `=` (`NAME=value`)"
    )]
    InvalidName { line: usize, name: String },

    #[error("$AIRLOCK_ENV line {line}: `{name}` is reserved ({why}); use another name")]
    ReservedName {
        line: usize,
        name: String,
        why: &'static str,
    },

    #[error(
        "$AIRLOCK_ENV line {line}: the value of `{name}` started by `{name}<<{delimiter}` is \
         never closed: no later line is exactly `{delimiter}`; end the value with a line that \
         holds only `{delimiter}`{hint}"
    )]
    UnterminatedHeredoc {
        /// The line of `NAME<<DELIMITER`.
        line: usize,
        name: String,
        delimiter: String,
        /// Extra advice when a near miss was seen (a `\r` or spaces after the delimiter).
        hint: &'static str,
    },

    #[error(
        "$AIRLOCK_ENV line {line}: `{name}<<` has no delimiter: write `{name}<<EOF`, then the \
         value's lines, then a line `EOF`"
    )]
    EmptyDelimiter { line: usize, name: String },

    #[error(
        "$AIRLOCK_ENV line {line}: expected `NAME=value` or `NAME<<DELIMITER`, found neither \
         `=` nor `<<`"
    )]
    MissingAssignment { line: usize },

    #[error(
        "$AIRLOCK_ENV line {line}: not valid UTF-8; environment variables here are text \
         (encode binary data, for example with base64)"
    )]
    NotUtf8 { line: usize },

    #[error(
        "$AIRLOCK_ENV line {line}: contains a NUL byte, which no environment variable can hold"
    )]
    Nul { line: usize },

    #[error(
        "$AIRLOCK_ENV line {line}: the value of `{name}` is {bytes} bytes, too long for an \
         environment variable (`NAME=value` must stay under 128 KiB); put the data in a file \
         under the workspace or a persist path and pass its path instead"
    )]
    TooLong {
        line: usize,
        name: String,
        bytes: usize,
    },
}

/// Names refused: `(name, is a prefix, why)`.
const RESERVED: &[(&str, bool, &str)] = &[
    ("AIRLOCK_", true, "airlock's own variables"),
    (
        "LD_",
        true,
        "read by the dynamic loader before any program runs",
    ),
    ("BASH_FUNC_", true, "bash imports these as functions"),
    ("BASH_ENV", false, "bash runs this file before any script"),
    ("ENV", false, "sh runs this file at startup"),
    ("IFS", false, "changes how shells split words"),
    ("SHELLOPTS", false, "turns on shell options in every bash"),
    ("BASHOPTS", false, "turns on shell options in every bash"),
    ("PS4", false, "bash expands it when tracing"),
    ("PROMPT_COMMAND", false, "bash runs it"),
    ("GLIBC_TUNABLES", false, "changes the C library's behaviour"),
    ("GCONV_PATH", false, "makes the C library load code"),
];

/// Parse an `$AIRLOCK_ENV` file: the variables in the order first assigned, each with its
/// last value.
pub fn parse(bytes: &[u8]) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    while let Some((n, raw)) = lines.next() {
        let line = text(n, raw)?;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        let (name, value) = match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                // `export NAME=value` is what a shell script would write: the same variable.
                let name = line[..e].strip_prefix("export ").unwrap_or(&line[..e]);
                check_name(n, name)?;
                (name, line[e + 1..].to_string())
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                let name = name.strip_prefix("export ").unwrap_or(name);
                check_name(n, name)?;
                if delimiter.is_empty() {
                    return Err(EnvFileError::EmptyDelimiter {
                        line: n,
                        name: name.to_string(),
                    });
                }
                (name, heredoc_value(n, name, delimiter, &mut lines)?)
            }
            _ => return Err(EnvFileError::MissingAssignment { line: n }),
        };
        if !crate::environment::var_fits(name, &value) {
            return Err(EnvFileError::TooLong {
                line: n,
                name: name.to_string(),
                bytes: value.len(),
            });
        }
        match index.get(name) {
            Some(&i) => vars[i].1 = value,
            None => {
                index.insert(name.to_string(), vars.len());
                vars.push((name.to_string(), value));
            }
        }
    }
    Ok(vars)
}

/// The lines after `NAME<<DELIMITER` (on line `start`) up to the delimiter line, joined.
fn heredoc_value<'a>(
    start: usize,
    name: &str,
    delimiter: &str,
    lines: &mut impl Iterator<Item = (usize, &'a [u8])>,
) -> Result<String, EnvFileError> {
    let mut value = String::new();
    let mut hint = "";
    let mut first = true;
    for (n, raw) in lines {
        if raw == delimiter.as_bytes() {
            return Ok(value);
        }
        let line = text(n, raw)?;
        if line.trim_end() == delimiter {
            hint = if line.ends_with('\r') {
                " (a line holds the delimiter followed by `\\r`: write the file with Unix line \
                 endings)"
            } else {
                " (a line holds the delimiter followed by spaces)"
            };
        }
        if !first {
            value.push('\n');
        }
        value.push_str(line);
        first = false;
    }
    Err(EnvFileError::UnterminatedHeredoc {
        line: start,
        name: name.to_string(),
        delimiter: shown(delimiter),
        hint,
    })
}

/// Line `n` as text: UTF-8, no NUL.
fn text(n: usize, raw: &[u8]) -> Result<&str, EnvFileError> {
    if raw.contains(&0) {
        return Err(EnvFileError::Nul { line: n });
    }
    std::str::from_utf8(raw).map_err(|_| EnvFileError::NotUtf8 { line: n })
}

fn check_name(line: usize, name: &str) -> Result<(), EnvFileError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(EnvFileError::InvalidName {
            line,
            name: shown(name),
        });
    }
    match reserved(name) {
        Some(why) => Err(EnvFileError::ReservedName {
            line,
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Why a variable of this name may not reach the agent phase, if it may not: the shell or
/// the dynamic loader reads it as an instruction (`airlock shell` leaves these out too).
pub fn reserved(name: &str) -> Option<&'static str> {
    RESERVED
        .iter()
        .find(|&&(reserved, prefix, _)| name == reserved || prefix && name.starts_with(reserved))
        .map(|&(_, _, why)| why)
}

/// A name or delimiter for an error message: control characters escaped, at most 64 chars.
fn shown(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(64) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
