//! The encodings common tools give a secret, made by those tools: each is written into the
//! workspace by a real setup script, and the boundary must refuse the run naming the secret
//! and the form, while `setup.log` shows `[redacted:NAME]` where the script printed it.
//!
//! The forms are made on the host with the real tools (coreutils' `base64`, `openssl`,
//! Python's `urllib`, `html`, `xml.sax.saxutils` and `email`, bash's `printf %q` and
//! `${v@Q}`) and carried into the setup phase gzip-compressed (a form the leak check can't
//! see, see SECURITY.md), where the script unpacks them into the workspace, deletes the
//! archive and prints what it wrote. One more is made in the setup container itself, by
//! busybox's `base64` (76 columns, as coreutils').

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{assert_run_gone, contains, Fixture};

/// 101 bytes, as long as a GitHub fine-grained token and then some, with a byte of each kind
/// the escapers change: its base64 crosses a line at 64 and at 76 columns whatever its
/// alignment.
const VALUE: &str =
    "github_pat_11AZ3QXKY0/s3cr&et<x>'q\"d$b`c~#9_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789AbCdEfGhIjKlMnO";

/// Run `program` with `args`, `input` on its standard input; its standard output.
fn tool(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed for this test: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn python(code: &str) -> Vec<u8> {
    tool("python3", &["-c", code], VALUE.as_bytes())
}

fn bash(code: &str) -> Vec<u8> {
    tool("bash", &["-c", code], VALUE.as_bytes())
}

/// One form: a name for the file it goes to, what the tool wrote, the form the boundary must
/// name.
struct Case {
    file: &'static str,
    bytes: Vec<u8>,
    form: &'static str,
}

fn host_made_forms() -> Vec<Case> {
    // The value after `user:` (HTTP basic auth), and after `u:` for another alignment.
    let basic = [b"user:".as_slice(), VALUE.as_bytes()].concat();
    let short = [b"u:".as_slice(), VALUE.as_bytes(), b"\n"].concat();
    let crlf = |text: Vec<u8>| {
        let text = String::from_utf8(text).unwrap();
        text.replace('\n', "\r\n").into_bytes()
    };
    let cases = vec![
        Case {
            file: "auth.b64",
            bytes: tool("base64", &[], &basic),
            form: "base64 (wrapped)",
        },
        Case {
            file: "auth-crlf.b64",
            bytes: crlf(tool("base64", &["-w", "64"], &short)),
            form: "base64 (wrapped)",
        },
        Case {
            file: "key.pem",
            bytes: tool("openssl", &["base64", "-e"], VALUE.as_bytes()),
            form: "base64 (wrapped)",
        },
        Case {
            file: "mail.eml",
            bytes: python(
                "import sys, email.base64mime as m; \
                 sys.stdout.write(m.body_encode(sys.stdin.buffer.read(), maxlinelen=76, eol='\\r\\n'))",
            ),
            form: "base64 (wrapped)",
        },
        Case {
            file: "url.txt",
            bytes: python(
                "import sys, urllib.parse as u; \
                 print('https://example.invalid/?next=' + u.quote(sys.stdin.read()))",
            ),
            form: "url-encoded",
        },
        Case {
            file: "settings.xml",
            bytes: python(
                "import sys, xml.sax.saxutils as x; \
                 print('<settings><server><password>' + x.escape(sys.stdin.read()) + '</password></server></settings>')",
            ),
            form: "html-entity",
        },
        Case {
            file: "NuGet.config",
            bytes: python(
                "import sys, xml.sax.saxutils as x; \
                 print('<add key=\"ClearTextPassword\" value=' + x.quoteattr(sys.stdin.read(), {'\"': '&quot;'}) + ' />')",
            ),
            form: "html-entity",
        },
        Case {
            file: "page.html",
            bytes: python(
                "import sys, html; print('<input value=\"' + html.escape(sys.stdin.read()) + '\">')",
            ),
            form: "html-entity",
        },
        Case {
            file: "env.sh",
            bytes: bash("v=$(cat); printf 'export TOKEN=%q\\n' \"$v\""),
            form: "shell-quoted",
        },
        Case {
            file: "quoted.sh",
            bytes: bash("v=$(cat); echo \"TOKEN=${v@Q}\""),
            form: "shell-quoted",
        },
    ];
    for c in &cases {
        assert!(
            !contains(&c.bytes, VALUE.as_bytes()),
            "{}: the tool wrote the value as it is",
            c.file
        );
    }
    cases
}

/// The environment: setup unpacks `incoming/FILE.gz` into `out/FILE` (or runs `script`),
/// deletes the archive and prints what it wrote.
fn refused(f: &Fixture, file: &str, script: &str, form: &str, printed: &[Vec<u8>]) {
    f.env(
        "t",
        &format!(
            "image: tiny\nsecrets: [TOKEN]\nsetup: |\n  test \"${{#TOKEN}}\" -eq {}\n  mkdir -p out\n  {script}\n  rm -rf incoming\n  cat out/{file}\n",
            VALUE.len()
        ),
    );
    let what = format!("{file} ({form})");
    let out = f.run("t", &["sh", "-c", "echo AGENT-RAN"]).run().code(81);
    let out = out
        .stderr_has(&format!(
            "secret TOKEN ({form} form) found in file /workspace/out/{file}"
        ))
        .never_prints(VALUE.as_bytes());
    assert!(
        !out.stderr().contains("AGENT-RAN"),
        "{what}: the agent phase ran"
    );
    let report = f.report();
    assert_eq!(report["outcome"], "boundary_refused", "{what}");
    let log = f.record_file("setup.log");
    assert!(
        contains(&log, b"[redacted:TOKEN]"),
        "{what}: setup.log lacks the marker:\n{}",
        String::from_utf8_lossy(&log)
    );
    for file in ["setup.log", "report.json"] {
        let text = f.record_file(file);
        assert!(
            !contains(&text, VALUE.as_bytes()),
            "{what}: {file} holds the value"
        );
        for form in printed {
            assert!(
                !contains(&text, form),
                "{what}: {file} shows {:?}",
                String::from_utf8_lossy(form)
            );
        }
    }
    assert_run_gone(report["run_id"].as_str().unwrap());
}

/// The pieces of a form that must not reach the log: a wrapped form line by line (each line
/// carries bits of the value), any other whole.
fn pieces(case: &Case) -> Vec<Vec<u8>> {
    if case.form.ends_with("(wrapped)") {
        let text = String::from_utf8(case.bytes.clone()).unwrap();
        let lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
        assert!(lines.len() >= 2, "{}: the tool did not wrap", case.file);
        assert!(
            lines[0].len() == 64 || lines[0].len() == 76,
            "{}: {} columns",
            case.file,
            lines[0].len()
        );
        lines
    } else {
        let text = case.bytes.strip_suffix(b"\n").unwrap_or(&case.bytes);
        vec![text.to_vec()]
    }
}

#[test]
fn forms_real_tools_give_a_secret_are_refused_at_the_boundary_and_redacted_in_setup_log() {
    for case in host_made_forms() {
        let f = Fixture::new();
        f.secret("TOKEN", VALUE.as_bytes());
        let gz = tool("gzip", &["-c"], &case.bytes);
        f.ws_file(&format!("incoming/{}.gz", case.file), gz);
        let script = format!("gunzip -c incoming/{0}.gz > out/{0}", case.file);
        refused(&f, case.file, &script, case.form, &pieces(&case));
    }
}

#[test]
fn busybox_base64_of_a_secret_in_setup_is_refused_and_redacted() {
    // Written by the setup script from the variable, as a script would; 76 columns.
    let f = Fixture::new();
    f.secret("TOKEN", VALUE.as_bytes());
    let expected = tool("base64", &[], VALUE.as_bytes());
    let lines: Vec<Vec<u8>> = String::from_utf8(expected)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    refused(
        &f,
        "token.b64",
        "printf %s \"$TOKEN\" | base64 > out/token.b64",
        "base64 (wrapped)",
        &lines,
    );
}
