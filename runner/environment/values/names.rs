//! Names: variables, secrets, the agent user, images, runtimes and environments.

use super::super::error::{shown, Fail};

/// The kernel's limit on one `NAME=value` string in a process environment (MAX_ARG_STRLEN),
/// its terminating NUL included: `NAME=value` itself must be shorter than this.
pub const MAX_VAR_LEN: usize = 128 * 1024;

/// Whether `NAME=value` fits in a process environment: at exactly [`MAX_VAR_LEN`] bytes the
/// NUL the kernel counts tips it over, and `exec` fails with "argument list too long".
pub fn var_fits(name: &str, value: &str) -> bool {
    name.len() + 1 + value.len() < MAX_VAR_LEN
}

/// Variables that the shell or the dynamic loader read as instructions. A secret with one of
/// these names would change how every command in the setup phase runs (or leak through it),
/// so they are refused, as are the whole `LD_*` and `BASH_FUNC_*` families and `AIRLOCK_*`.
pub const SHADOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "SHELL",
    "PWD",
    "IFS",
    "ENV",
    "BASH_ENV",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
];

/// Whether a secret may not have this name: the `SHADOWED` variables, the `LD_*` and
/// `BASH_FUNC_*` families, and airlock's own `AIRLOCK_*`. `airlock secrets set` and the
/// environment loader both ask this, so a secret that could never be used is never stored.
pub fn is_reserved_secret_name(name: &str) -> bool {
    SHADOWED.contains(&name)
        || name.starts_with("LD_")
        || name.starts_with("BASH_FUNC_")
        || name.starts_with("AIRLOCK_")
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_identifier(name: &str, upper_only: bool) -> bool {
    let mut chars = name.chars();
    let ok_first =
        |c: char| c == '_' || c.is_ascii_uppercase() || !upper_only && c.is_ascii_lowercase();
    let ok_rest = |c: char| ok_first(c) || c.is_ascii_digit();
    chars.next().is_some_and(ok_first) && chars.all(ok_rest)
}

/// A plain variable's name (a key under `env:`).
pub fn var_name(name: &str) -> Result<(), Fail> {
    if !is_identifier(name, false) {
        let mut fail = Fail::new(format!("{:?} is not a valid variable name", shown(name)));
        fail = if name == "<<" {
            fail.fix("YAML merge keys (<<) are not supported here; list each variable")
        } else {
            fail.fix("a name is letters, digits and _, not starting with a digit, e.g. CARGO_HOME")
        };
        return Err(fail);
    }
    if name.starts_with("AIRLOCK_") {
        return Err(Fail::new(format!(
            "{name} starts with AIRLOCK_, which airlock reserves"
        ))
        .fix("pick another name, e.g. without the AIRLOCK_ prefix"));
    }
    Ok(())
}

/// A secret's name (an entry of `secrets:`, and the file `secrets/NAME.age`).
pub fn secret_name(name: &str) -> Result<(), Fail> {
    if !is_identifier(name, true) {
        let hint = if is_identifier(name, false) {
            format!(
                "secret names are upper case: write {}",
                name.to_ascii_uppercase()
            )
        } else {
            "a secret name is upper-case letters, digits and _, not starting with a digit, e.g. CRATES_TOKEN".to_string()
        };
        return Err(Fail::new(format!("{:?} is not a valid secret name", shown(name))).fix(hint));
    }
    if name.starts_with("AIRLOCK_") {
        return Err(Fail::new(format!(
            "{name} starts with AIRLOCK_, which airlock reserves"
        ))
        .fix("rename the secret, e.g. without the AIRLOCK_ prefix"));
    }
    if is_reserved_secret_name(name) {
        return Err(Fail::new(format!(
            "a secret named {name} would replace a variable the shell or the dynamic loader relies on"
        ))
        .fix(format!(
            "rename the secret (e.g. MY_{name}) and use it from the setup script by that name"
        )));
    }
    Ok(())
}

/// A plain variable's value: any text without a NUL byte that fits in a process environment.
pub fn var_value(name: &str, value: &str) -> Result<String, Fail> {
    if value.contains('\0') {
        return Err(
            Fail::new(format!("the value of {name} contains a NUL byte"))
                .fix("remove the \\0: a process environment cannot hold NUL bytes"),
        );
    }
    if !var_fits(name, value) {
        return Err(Fail::new(format!("the value of {name} is {} bytes long", value.len()))
            .fix("keep it under 128 KiB (the kernel's limit for one variable); put large data in a file instead"));
    }
    Ok(value.to_string())
}

/// The agent phase's user: `UID`, `UID:GID` or a name `[a-z_][a-z0-9_-]*`. Returns whether it
/// is root (allowed, but the caller warns).
pub fn user(text: &str) -> Result<bool, Fail> {
    let fix = "write a numeric UID or UID:GID (e.g. 1000:1000), or a user name the image knows (e.g. app)";
    let id = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.len() <= 10 && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
            .filter(|&n| n != u32::MAX)
    };
    if text.is_empty() {
        return Err(Fail::new("no user given").fix(fix));
    }
    if let Some((uid, gid)) = text.split_once(':') {
        return match (id(uid), id(gid)) {
            (Some(uid), Some(_)) => Ok(uid == 0),
            _ => Err(Fail::new(format!("{:?} is not a valid UID:GID", shown(text))).fix(fix)),
        };
    }
    if let Some(uid) = id(text) {
        return Ok(uid == 0);
    }
    let mut chars = text.chars();
    let first = |c: char| c == '_' || c.is_ascii_lowercase();
    let valid = text.len() <= 32
        && chars.next().is_some_and(first)
        && chars.all(|c| first(c) || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(Fail::new(format!("{:?} is not a valid user", shown(text))).fix(fix));
    }
    Ok(text == "root")
}

/// An image: a folder name under `images/` or a reference the engine knows.
pub fn image(text: &str) -> Result<String, Fail> {
    let fix = "name a folder under images/ (e.g. base) or an image already in the engine (e.g. debian:bookworm)";
    if text.trim().is_empty() {
        return Err(Fail::new("no image given").fix(fix));
    }
    let ok = text.len() <= 255
        && !text.starts_with(['-', '.', '/', ':'])
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if !ok {
        return Err(Fail::new(format!("{:?} is not an image name", shown(text))).fix(fix));
    }
    Ok(text.to_string())
}

/// An OCI runtime name as the engine registers it (`runsc`, `io.containerd.runc.v2`).
pub fn runtime(text: &str) -> Result<String, Fail> {
    if !is_name(text) {
        return Err(
            Fail::new(format!("{:?} is not a runtime name", shown(text))).fix(
                "name a runtime the engine has registered (see `docker info`), e.g. runsc; remove the key for the engine's default",
            ),
        );
    }
    Ok(text.to_string())
}

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`: environment names and runtime names.
pub fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names() {
        for good in ["A", "_x", "cargo_home", "PATH", "A1"] {
            assert!(var_name(good).is_ok(), "{good}");
        }
        for bad in ["1A", "A-B", "", "A B", "<<", "é"] {
            assert!(var_name(bad).is_err(), "{bad:?}");
        }
        assert!(var_name("AIRLOCK_X")
            .unwrap_err()
            .message
            .contains("reserves"));
        assert!(var_name("<<").unwrap_err().fix.unwrap().contains("merge"));
    }

    #[test]
    fn secret_names() {
        assert!(secret_name("CRATES_TOKEN").is_ok());
        assert!(secret_name("_T1").is_ok());
        assert!(secret_name("token")
            .unwrap_err()
            .fix
            .unwrap()
            .contains("TOKEN"));
        assert!(secret_name("1TOKEN").is_err());
        assert!(secret_name("A-B").is_err());
        assert!(secret_name("AIRLOCK_TOKEN").is_err());
        for shadow in [
            "PATH",
            "HOME",
            "IFS",
            "BASH_ENV",
            "LD_PRELOAD",
            "LD_AUDIT",
            "BASH_FUNC_X",
            "ENV",
        ] {
            let fail = secret_name(shadow).unwrap_err();
            assert!(fail.message.contains("shell"), "{shadow}: {fail:?}");
        }
    }

    #[test]
    fn variable_values() {
        assert_eq!(var_value("A", "x y").unwrap(), "x y");
        assert!(var_value("A", "a\0b").unwrap_err().message.contains("NUL"));
        assert!(var_value("A", &"x".repeat(MAX_VAR_LEN)).is_err());
        // `A=` + value + the kernel's NUL: 128 KiB at most.
        assert!(var_value("A", &"x".repeat(MAX_VAR_LEN - 3)).is_ok());
        assert!(var_value("A", &"x".repeat(MAX_VAR_LEN - 2)).is_err());
    }

    #[test]
    fn users() {
        assert!(!user("1000:1000").unwrap());
        assert!(!user("1000").unwrap());
        assert!(!user("app").unwrap());
        assert!(!user("_svc-1").unwrap());
        assert!(user("root").unwrap());
        assert!(user("0").unwrap());
        assert!(user("0:0").unwrap());
        for bad in [
            "",
            "1000:",
            ":1000",
            "App",
            "a b",
            "1000:1000:1",
            "-1",
            "4294967295",
            "x:y",
            "1a",
        ] {
            assert!(user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert!(is_name("base"));
        assert!(is_name("rust-1.80_x"));
        assert!(!is_name("../etc"));
        assert!(!is_name(".hidden"));
        assert!(!is_name(""));
        assert!(image("debian:bookworm").is_ok());
        assert!(image("ghcr.io/a/b@sha256:00").is_ok());
        assert!(image("a b").is_err());
        assert!(image("--privileged").is_err());
        assert!(runtime("io.containerd.runc.v2").is_ok());
        assert!(runtime("run sc").is_err());
    }
}
