//! Just enough Dockerfile reading to know which images a build starts `FROM`.
//!
//! The classic builder pulls a `FROM` image it doesn't have, and with no registry that pull
//! fails late and obscurely (or hangs on a network that drops packets). So before building,
//! airlock reads the `FROM` lines itself and makes sure every base is in the engine,
//! bootstrapping the ones it knows how to make. This is not a Dockerfile parser: it joins
//! continuation lines, skips comments, substitutes the defaults of `ARG`s declared before the
//! first `FROM`, and leaves out `scratch` and earlier build stages. A base it can't resolve
//! (a build argument with no default) is left to the builder.

use std::collections::HashMap;

/// The external images the Dockerfile's `FROM` lines name, in order, without duplicates.
///
/// Errs (with the reason) when the Dockerfile has no `FROM` at all.
pub fn base_images(text: &str) -> Result<Vec<String>, String> {
    let mut args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut bases: Vec<String> = Vec::new();
    let mut seen_from = false;
    for line in logical_lines(text) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("ARG") && !seen_from {
            for decl in words {
                if let Some((name, value)) = decl.split_once('=') {
                    args.insert(name.to_string(), unquote(value).to_string());
                }
            }
        } else if instruction.eq_ignore_ascii_case("FROM") {
            seen_from = true;
            let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
            let Some(image) = rest.first() else {
                return Err(format!("`{line}` names no image"));
            };
            let stage = match rest.get(1..3) {
                Some([as_kw, name]) if as_kw.eq_ignore_ascii_case("as") => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            if let Some(image) = substitute(image, &args) {
                let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
                if !is_stage && !image.eq_ignore_ascii_case("scratch") && !bases.contains(&image) {
                    bases.push(image);
                }
            }
            stages.extend(stage);
        }
    }
    if !seen_from {
        return Err("it has no FROM line (every Dockerfile starts from an image)".into());
    }
    Ok(bases)
}

/// Lines with `\` continuations joined and comment lines dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && !current.is_empty()) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            if !current.trim().is_empty() {
                out.push(current.trim().to_string());
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// `$NAME`, `${NAME}` and `${NAME:-default}` from the pre-`FROM` args; `None` when a name
/// has no value.
fn substitute(word: &str, args: &HashMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, default, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}')?;
            let inner = &braced[..end];
            match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d), end + 2),
                None => (inner, None, end + 2),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], None, end)
        };
        let value = args
            .get(name)
            .filter(|v| !v.is_empty())
            .map(String::as_str)
            .or(default)?;
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_from() {
        assert_eq!(
            base_images("# c\nFROM debian:bookworm\nRUN true\n").unwrap(),
            ["debian:bookworm"]
        );
    }

    #[test]
    fn stages_scratch_and_flags() {
        let df = "FROM --platform=linux/amd64 airlock/busybox AS build\n\
                  RUN echo \\\n  hi\n\
                  from scratch\n\
                  FROM build\n\
                  FROM debian:bookworm as other\n\
                  FROM airlock/busybox\n";
        assert_eq!(
            base_images(df).unwrap(),
            ["airlock/busybox", "debian:bookworm"]
        );
    }

    #[test]
    fn args_before_from_are_substituted() {
        let df = "ARG SUITE=bookworm\nARG REPO=\"debian\"\nFROM ${REPO}:$SUITE\n\
                  FROM x:${UNSET:-fallback}\nFROM y:$UNSET\n";
        assert_eq!(base_images(df).unwrap(), ["debian:bookworm", "x:fallback"]);
    }

    #[test]
    fn no_from_is_an_error() {
        assert!(base_images("RUN true\n").unwrap_err().contains("no FROM"));
        assert!(base_images("FROM\n")
            .unwrap_err()
            .contains("names no image"));
    }
}
