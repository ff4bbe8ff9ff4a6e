//! Tests of the `$AIRLOCK_ENV` parser: each form, each error, and round trips.
use super::*;
use proptest::prelude::*;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn simple_assignments() {
    let file = b"A=1\nB=\nC=x=y==z\n\n  \n# comment\nD= spaced value \n_e9=last";
    assert_eq!(
        parse(file).unwrap(),
        vars(&[
            ("A", "1"),
            ("B", ""),
            ("C", "x=y==z"),
            ("D", " spaced value "),
            ("_e9", "last")
        ])
    );
}

/// `export NAME=value` (what a shell script would write) is the same variable; `export` as a
/// name of its own is not special.
#[test]
fn export_lines_are_the_same_variable() {
    let file = b"export A=1\nexport B<<EOF\ntwo\nEOF\nexport=3\n";
    assert_eq!(
        parse(file).unwrap(),
        vars(&[("A", "1"), ("B", "two"), ("export", "3")])
    );
    assert!(parse(b"export  A=1\n").is_err(), "two spaces: not a name");
}

#[test]
fn values_are_never_interpreted() {
    let file = br#"Q="quoted" 'single' $HOME `cmd` \n \t # not a comment"#;
    assert_eq!(
        parse(file).unwrap(),
        vars(&[(
            "Q",
            r#""quoted" 'single' $HOME `cmd` \n \t # not a comment"#
        )])
    );
}

#[test]
fn heredoc_values() {
    let file = b"KEY<<EOF\nline 1\n\n# not a comment\nA=not an assignment\nEOF\nNEXT=1\n";
    assert_eq!(
        parse(file).unwrap(),
        vars(&[
            ("KEY", "line 1\n\n# not a comment\nA=not an assignment"),
            ("NEXT", "1")
        ])
    );
    assert_eq!(parse(b"E<<END\nEND").unwrap(), vars(&[("E", "")]));
    assert_eq!(parse(b"E<<END\n\nEND").unwrap(), vars(&[("E", "")]));
    assert_eq!(parse(b"E<<END\n\n\nEND").unwrap(), vars(&[("E", "\n")]));
    // `=` before `<<` is an assignment; `<<` before `=` starts a heredoc.
    assert_eq!(parse(b"A=b<<c").unwrap(), vars(&[("A", "b<<c")]));
    assert_eq!(parse(b"A<<X=Y\nv\nX=Y").unwrap(), vars(&[("A", "v")]));
}

#[test]
fn later_assignments_replace_earlier_ones_in_first_seen_order() {
    let file = b"A=1\nB=2\nA<<X\nthree\nX\n";
    assert_eq!(parse(file).unwrap(), vars(&[("A", "three"), ("B", "2")]));
}

#[test]
fn empty_file() {
    assert_eq!(parse(b"").unwrap(), vec![]);
    assert_eq!(parse(b"\n\n# only comments\n").unwrap(), vec![]);
}

#[test]
fn invalid_names() {
    for (file, name) in [
        (&b"ok=1\n1A=x"[..], "1A"),
        (b"ok=1\nexport A B=x", "A B"),
        (b"ok=1\nA B=x", "A B"),
        (b"ok=1\n=x", ""),
        (b"ok=1\nA-B=x", "A-B"),
        (b"ok=1\n\xc3\xa9=x", "é"),
        (b"ok=1\nA\t<<EOF\nEOF", "A\\t"),
    ] {
        let err = parse(file).unwrap_err();
        assert_eq!(
            err,
            EnvFileError::InvalidName {
                line: 2,
                name: name.into()
            },
            "{:?}",
            String::from_utf8_lossy(file)
        );
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}

#[test]
fn reserved_names() {
    for name in [
        "AIRLOCK_ENV",
        "AIRLOCK_X",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "BASH_ENV",
        "ENV",
        "IFS",
        "BASH_FUNC_x",
        "SHELLOPTS",
    ] {
        let err = parse(format!("# c\n{name}=x\n").as_bytes()).unwrap_err();
        assert!(
            matches!(&err, EnvFileError::ReservedName { line: 2, name: n, .. } if n == name),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("reserved"), "{err}");
    }
    // Near misses are fine.
    assert!(parse(b"AIRLOCK=1\nENVIRONMENT=2\nMY_LD_PATH=3\nld_preload=4").is_ok());
}

#[test]
fn unterminated_heredoc_names_the_delimiter_and_its_line() {
    let err = parse(b"A=1\n\nKEY<<EOF\nvalue\nEOF \n").unwrap_err();
    assert_eq!(
        err,
        EnvFileError::UnterminatedHeredoc {
            line: 3,
            name: "KEY".into(),
            delimiter: "EOF".into(),
            hint: " (a line holds the delimiter followed by spaces)",
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("line 3") && msg.contains("`EOF`"), "{msg}");
    // Windows line endings throughout: the delimiter is `EOF\r` and so is its line; the
    // value keeps its `\r`s (verbatim, as in `NAME=value` lines).
    assert_eq!(
        parse(b"KEY<<EOF\r\nvalue\r\nEOF\r\n").unwrap(),
        vars(&[("KEY", "value\r")])
    );
    let err = parse(b"KEY<<EOF\r\nvalue\r\n").unwrap_err();
    assert!(
        matches!(&err, EnvFileError::UnterminatedHeredoc { delimiter, .. } if delimiter == "EOF\\r"),
        "{err:?}"
    );
    // Only the delimiter line has one: a hint.
    let err = parse(b"KEY<<EOF\nvalue\nEOF\r\n").unwrap_err();
    assert!(err.to_string().contains("Unix line endings"), "{err}");
}

#[test]
fn empty_delimiter() {
    assert_eq!(
        parse(b"KEY<<\nvalue\n").unwrap_err(),
        EnvFileError::EmptyDelimiter {
            line: 1,
            name: "KEY".into()
        }
    );
}

#[test]
fn line_without_assignment() {
    let err = parse(b"A=1\njust some words\n").unwrap_err();
    assert_eq!(err, EnvFileError::MissingAssignment { line: 2 });
    // The line's content (possibly a secret) is not in the message.
    assert!(!err.to_string().contains("words"), "{err}");
}

#[test]
fn non_utf8_and_nul() {
    assert_eq!(
        parse(b"A=1\nB=\xff\xfe").unwrap_err(),
        EnvFileError::NotUtf8 { line: 2 }
    );
    assert_eq!(
        parse(b"A=1\nK<<E\nok\n\xff\nE").unwrap_err(),
        EnvFileError::NotUtf8 { line: 4 }
    );
    assert_eq!(
        parse(b"A=1\nB=x\0y").unwrap_err(),
        EnvFileError::Nul { line: 2 }
    );
    assert_eq!(
        parse(b"K<<E\nok\nx\0\nE").unwrap_err(),
        EnvFileError::Nul { line: 3 }
    );
}

#[test]
fn values_too_long_for_an_environment_are_refused_at_their_line() {
    let max = crate::environment::MAX_VAR_LEN;
    // `A=` + value must stay under the kernel's limit (which counts a NUL).
    let fits = format!("A={}\n", "v".repeat(max - 3));
    assert_eq!(parse(fits.as_bytes()).unwrap()[0].1.len(), max - 3);
    let over = format!("OK=1\nA={}\n", "v".repeat(max - 2));
    assert_eq!(
        parse(over.as_bytes()).map(|v| v.len()).unwrap_err(),
        EnvFileError::TooLong {
            line: 2,
            name: "A".into(),
            bytes: max - 2
        }
    );
    let lines = "line\n".repeat(max / 5 + 1);
    let heredoc = format!("B<<EOF\n{lines}EOF\n");
    let err = parse(heredoc.as_bytes()).map(|v| v.len()).unwrap_err();
    assert!(
        matches!(err, EnvFileError::TooLong { line: 1, ref name, .. } if name == "B"),
        "{err}"
    );
    assert!(err.to_string().contains("128 KiB"), "{err}");
}

#[test]
fn errors_do_not_quote_values() {
    let err = parse(b"K<<E\nhunter2-secret\n").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

fn name() -> impl Strategy<Value = String> {
    // Lower-case names are never reserved.
    "[a-z_][a-z0-9_]{0,12}"
}

proptest! {
    #[test]
    fn heredoc_form_round_trips(
        pairs in prop::collection::vec((name(), "[^\0]{0,60}"), 0..8),
    ) {
        // Distinct names, in order (later values would replace earlier ones).
        let mut seen = std::collections::HashSet::new();
        let pairs: Vec<(String, String)> =
            pairs.into_iter().filter(|(n, _)| seen.insert(n.clone())).collect();
        let mut file = String::new();
        for (n, v) in &pairs {
            let mut delim = String::from("EOF");
            while v.contains(&delim) {
                delim.push('_');
            }
            file.push_str(&format!("{n}<<{delim}\n{v}\n{delim}\n"));
        }
        prop_assert_eq!(parse(file.as_bytes()).unwrap(), pairs);
    }

    #[test]
    fn assignment_form_round_trips(
        pairs in prop::collection::vec((name(), "[^\0\n]{0,60}"), 0..8),
    ) {
        let mut file = String::new();
        let mut expected: Vec<(String, String)> = Vec::new();
        for (n, v) in &pairs {
            file.push_str(&format!("{n}={v}\n"));
            match expected.iter_mut().find(|(e, _)| e == n) {
                Some(e) => e.1 = v.clone(),
                None => expected.push((n.clone(), v.clone())),
            }
        }
        prop_assert_eq!(parse(file.as_bytes()).unwrap(), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(vars) = parse(&bytes) {
            for (n, v) in vars {
                prop_assert!(check_name(0, &n).is_ok());
                prop_assert!(!v.contains('\0'));
            }
        }
    }

    #[test]
    fn structured_garbage_never_panics(
        lines in prop::collection::vec(
            prop_oneof!["[A-Z_]{0,4}", "[A-Z]{1,3}<<[A-Z]{0,2}", "[A-Z]{1,3}=[^\n]{0,5}", "#.*", "[ \r\t]*"],
            0..20,
        ),
    ) {
        let _ = parse(lines.join("\n").as_bytes());
    }
}
