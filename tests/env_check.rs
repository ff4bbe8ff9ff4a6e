//! `airlock env check`: valid environments are summarised, and every kind of bad input gets
//! an error naming the file, line and column, the key path, and a fix. No Docker needed.

use crate::harness::{repo, Output, Root, Test};

/// Check `yaml` as `envs/x.yaml` in a fresh root.
fn check(yaml: &str) -> Output {
    let root = Root::new();
    root.write("envs/x.yaml", yaml);
    Test::new().root(&root).args(["env", "check", "x"]).run()
}

/// `yaml` is refused (exit 1) with `at` (`envs/x.yaml:LINE:COL: KEY: `) followed by
/// `message`, and a fix line containing `fix`.
#[track_caller]
fn refused(yaml: &str, at: &str, message: &str, fix: &str) -> Output {
    let out = check(yaml).code(1);
    let err = out.stderr();
    let Some(line) = err.lines().find(|l| l.contains(at)) else {
        panic!("stderr lacks {at:?} for\n{yaml}\n--- stderr:\n{err}");
    };
    assert!(
        line.contains(message),
        "error line lacks {message:?}: {line}\nfor\n{yaml}"
    );
    let fix_line = err
        .lines()
        .skip_while(|l| !l.contains(at))
        .nth(1)
        .unwrap_or_default();
    assert!(
        fix_line.starts_with("  fix: ") && fix_line.contains(fix),
        "fix line lacks {fix:?}: {fix_line:?}\nfor\n{yaml}"
    );
    out
}

#[test]
fn the_repository_examples_are_valid() {
    Test::new()
        .env("AIRLOCK_ROOT", repo())
        .cwd(repo())
        .args(["env", "check", "envs/base.yaml", "envs/tiny.yaml"])
        .run()
        .success()
        .stdout_has("base: ok (envs/base.yaml)")
        .stdout_has("tiny: ok (envs/tiny.yaml)")
        .stdout_has("persist  /opt/cache");
}

#[test]
fn with_no_env_every_file_is_checked_and_one_bad_file_does_not_stop_the_rest() {
    let root = Root::new();
    root.write("envs/a.yaml", "image: tiny\n");
    root.write("envs/b.yaml", "image: tiny\nlimits:\n  memory: lots\n");
    root.write("envs/c.yaml", "image: base\n");
    root.write("envs/notes.txt", "not an environment");
    let out = Test::new().root(&root).args(["env", "check"]).run().code(1);
    out.stdout_has("a: ok")
        .stdout_has("c: ok")
        .stderr_has("envs/b.yaml:3:11: limits.memory:")
        .stderr_has("1 of 3 environments invalid");
}

#[test]
fn summary_names_image_secrets_paths_network_user_limits_and_warnings() {
    let out = check(
        "image: base\nenv:\n  A: 1\nsecrets: [CRATES_TOKEN]\npersist: [/opt/cache/]\n\
         agent:\n  user: root\nlimits:\n  memory: 1.5g\n  cpus: 0.5\n  pids: unlimited\n  agent_timeout: 1h30m\n",
    )
    .success();
    out.stdout_has("x: ok (envs/x.yaml)")
        .stdout_has("image    base")
        .stdout_has("env      A")
        .stdout_has("secrets  CRATES_TOKEN (setup phase only)")
        // A trailing slash is normalised away.
        .stdout_has("persist  /opt/cache\n")
        .stdout_has("network off, user root")
        .stdout_has(
            "setup 20m, agent 1h 30m, memory 1.5 GiB, cpus 0.5, pids unlimited, /tmp 256 MiB",
        )
        // Warnings go to stderr: secrets with no setup script, and a root agent user.
        .stderr_has(
            "warning: envs/x.yaml: secrets are listed (CRATES_TOKEN) but there is no setup script",
        )
        .stderr_has("warning: envs/x.yaml: agent.user is \"root\"");
}

#[test]
fn root_by_uid_warns_too_and_false_means_network_off() {
    check("image: tiny\nagent:\n  network: false\n  user: \"0:0\"\n")
        .success()
        .stdout_has("network off, user 0:0")
        .stderr_has("agent.user is \"0:0\"");
}

#[test]
fn malformed_yaml() {
    refused(
        "image: base\nenv:\n  A: [1, 2\n",
        "envs/x.yaml:4:1: invalid YAML:",
        "did not find expected ',' or ']'",
        "indentation",
    );
    refused(
        "image: base\n  extra: indented\n",
        "envs/x.yaml:2:8: invalid YAML:",
        "mapping values are not allowed",
        "on line 2",
    );
    refused(
        "image: base\nenv:\n\tA: 1\n",
        "envs/x.yaml:3:1: invalid YAML:",
        "cannot start any token",
        "spaces, not tabs",
    );
    refused(
        "image: base\n---\nimage: tiny\n",
        "envs/x.yaml: the file holds more than one YAML document",
        "",
        "remove the second `---`",
    );
    refused(
        "image: *base\n",
        "envs/x.yaml:1:8: invalid YAML:",
        "not defined",
        "define the anchor",
    );
}

#[test]
fn empty_file_or_not_a_mapping() {
    refused(
        "",
        "envs/x.yaml:1:1: ",
        "the file has no settings",
        "image: base",
    );
    refused(
        "# nothing yet\n",
        "envs/x.yaml:2:1: ",
        "the file has no settings",
        "image: base",
    );
    refused(
        "- image: base\n",
        "envs/x.yaml:1:1: ",
        "expected a mapping of settings",
        "start with `image: NAME`",
    );
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    refused(
        "imgae: base\n",
        "envs/x.yaml:1:1: imgae: ",
        "unknown key",
        "did you mean `image`?",
    );
    refused(
        "image: base\nlimits:\n  memroy: 4g\n",
        "envs/x.yaml:3:3: limits.memroy: ",
        "unknown key",
        "did you mean `memory`?",
    );
    refused(
        "image: base\nmemory: 4g\n",
        "envs/x.yaml:2:1: memory: ",
        "unknown key",
        "`memory` belongs under `limits:`",
    );
    refused(
        "image: base\nflavour: mint\n",
        "envs/x.yaml:2:1: flavour: ",
        "unknown key",
        "the keys at the top level are: image, env, secrets",
    );
}

#[test]
fn duplicate_keys_at_the_top_and_in_env_and_sections() {
    refused(
        "image: base\nsetup: true\nimage: tiny\n",
        "envs/x.yaml:3:1: image: ",
        "duplicate key",
        "keep one `image:`",
    );
    refused(
        "image: base\nenv:\n  A: 1\n  B: 2\n  A: 3\n",
        "envs/x.yaml:5:3: env.A: ",
        "duplicate variable",
        "keep one `A:` line",
    );
    // Quoting does not make it another key.
    refused(
        "image: base\nenv: {A: 1, \"A\": 2}\n",
        "envs/x.yaml:2:13: env.A: ",
        "duplicate variable",
        "YAML keys must be unique",
    );
    refused(
        "image: base\nlimits:\n  pids: 10\n  pids: 20\n",
        "envs/x.yaml:4:3: limits.pids: ",
        "duplicate key",
        "keep one `pids:`",
    );
}

#[test]
fn wrong_types() {
    refused(
        "image: base\nsecrets: TOKEN\n",
        "envs/x.yaml:2:10: secrets: ",
        "expected a list of secret names, found the text \"TOKEN\"",
        "secrets: [CRATES_TOKEN]",
    );
    refused(
        "image: base\nlimits:\n  memory: [1, 2]\n",
        "envs/x.yaml:3:11: limits.memory: ",
        "expected a size such as 512m or 4g, found a list",
        "memory: 4g",
    );
    refused(
        "image: base\nenv:\n  A:\n    nested: x\n",
        "envs/x.yaml:4:5: env.A: ",
        "expected a text value",
        "quote it",
    );
    refused(
        "image: base\nlimits: 5\n",
        "envs/x.yaml:2:9: limits: ",
        "expected a mapping of limits, found the number 5",
        "memory: 4g",
    );
    refused(
        "image: [a, b]\n",
        "envs/x.yaml:1:8: image: ",
        "expected an image name, found a list",
        "image: base",
    );
}

#[test]
fn missing_image() {
    refused(
        "env:\n  A: 1\n",
        "envs/x.yaml:1:1: image: ",
        "required key missing",
        "add a line `image: base`",
    );
}

#[test]
fn bad_persist_paths() {
    let cases = [
        (
            "opt/cache",
            "\"opt/cache\" is not an absolute path",
            "e.g. /opt/cache",
        ),
        ("/a//b", "\"/a//b\" is not normalised", "/a/b"),
        ("/a/./b", "\"/a/./b\" is not normalised", "/a/b"),
        ("/a/../b", "contains '..'", "without '..'"),
        ("/", "the whole filesystem", "list the directories"),
        (
            "/proc/self",
            "/proc/self is under /proc",
            "a directory of your own",
        ),
        ("/sys", "/sys is under /sys", "a directory of your own"),
        (
            "/dev/shm",
            "/dev/shm is under /dev",
            "a directory of your own",
        ),
        ("/workspace", "in the workspace", "already"),
        ("/workspace/target", "in the workspace", "already"),
        (
            "/airlock/crossing",
            "/airlock/crossing is under /airlock",
            "a directory of your own",
        ),
        ("/tmp", "replaces with an empty tmpfs", "persist that"),
        ("/tmp/cache", "replaces with an empty tmpfs", "persist that"),
    ];
    for (path, message, fix) in cases {
        refused(
            &format!("image: base\npersist:\n  - /srv/ok\n  - {path}\n"),
            "envs/x.yaml:4:5: persist[1]: ",
            message,
            fix,
        );
    }
}

#[test]
fn overlapping_persist_paths() {
    refused(
        "image: base\npersist:\n  - /opt/a\n  - /opt/a/b\n",
        "envs/x.yaml:4:5: persist[1]: ",
        "/opt/a/b is inside /opt/a (persist[0])",
        "remove /opt/a/b",
    );
    refused(
        "image: base\npersist:\n  - /opt/a/b\n  - /srv\n  - /opt/a\n",
        "envs/x.yaml:5:5: persist[2]: ",
        "/opt/a contains /opt/a/b (persist[0])",
        "remove /opt/a/b",
    );
    refused(
        "image: base\npersist: [/opt/a, /opt/a/]\n",
        "envs/x.yaml:2:19: persist[1]: ",
        "listed twice",
        "once",
    );
    // A shared prefix is not an overlap.
    check("image: base\npersist: [/opt/a, /opt/ab]\n").success();
}

#[test]
fn bad_variable_names() {
    refused(
        "image: base\nenv:\n  1A: x\n",
        "envs/x.yaml:3:3: env.1A: ",
        "\"1A\" is not a valid variable name",
        "letters, digits and _",
    );
    refused(
        "image: base\nenv:\n  A-B: x\n",
        "envs/x.yaml:3:3: env.A-B: ",
        "not a valid variable name",
        "e.g. CARGO_HOME",
    );
    refused(
        "image: base\nenv:\n  AIRLOCK_ENV: x\n",
        "envs/x.yaml:3:3: env.AIRLOCK_ENV: ",
        "airlock reserves",
        "without the AIRLOCK_ prefix",
    );
}

#[test]
fn bad_secret_names() {
    refused(
        "image: base\nsecrets: [TOKEN, crates_token]\nsetup: true\n",
        "envs/x.yaml:2:18: secrets[1]: ",
        "\"crates_token\" is not a valid secret name",
        "write CRATES_TOKEN",
    );
    refused(
        "image: base\nsecrets:\n  - 9LIVES\nsetup: true\n",
        "envs/x.yaml:3:5: secrets[0]: ",
        "not a valid secret name",
        "upper-case letters",
    );
    refused(
        "image: base\nsecrets: [AIRLOCK_KEY]\nsetup: true\n",
        "envs/x.yaml:2:11: secrets[0]: ",
        "airlock reserves",
        "rename the secret",
    );
    refused(
        "image: base\nsecrets: [TOKEN, TOKEN]\nsetup: true\n",
        "envs/x.yaml:2:18: secrets[1]: ",
        "TOKEN is listed twice",
        "once",
    );
}

#[test]
fn secrets_that_would_shadow_shell_or_loader_variables() {
    for name in [
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
        "LD_AUDIT",
        "BASH_FUNC_X",
    ] {
        refused(
            &format!("image: base\nsetup: true\nsecrets:\n  - {name}\n"),
            "envs/x.yaml:4:5: secrets[0]: ",
            &format!(
                "a secret named {name} would replace a variable the shell or the dynamic loader relies on"
            ),
            &format!("rename the secret (e.g. MY_{name})"),
        );
    }
}

#[test]
fn a_name_in_both_env_and_secrets() {
    // Reported at whichever comes second.
    refused(
        "image: base\nsetup: true\nenv:\n  TOKEN: x\nsecrets: [TOKEN]\n",
        "envs/x.yaml:5:11: secrets[0]: ",
        "TOKEN is both a plain variable (env) and a secret",
        "remove TOKEN from env if it is secret",
    );
    refused(
        "image: base\nsetup: true\nsecrets: [TOKEN]\nenv:\n  TOKEN: x\n",
        "envs/x.yaml:5:3: env.TOKEN: ",
        "TOKEN is both a plain variable (env) and a secret",
        "or from secrets if it is not",
    );
}

#[test]
fn values_with_a_nul_byte() {
    refused(
        "image: base\nenv:\n  A: \"x\\0y\"\n",
        "envs/x.yaml:3:6: env.A: ",
        "contains a NUL byte",
        "remove the \\0",
    );
    refused(
        "image: base\nsetup: \"echo \\0\"\n",
        "envs/x.yaml:2:8: setup: ",
        "contains a NUL byte",
        "remove the \\0",
    );
}

#[test]
fn unparsable_durations_and_sizes() {
    refused(
        "image: base\nlimits:\n  agent_timeout: soon\n",
        "envs/x.yaml:3:18: limits.agent_timeout: ",
        "soon is not a duration",
        "e.g. 90s, 20m or 1h30m",
    );
    refused(
        "image: base\nlimits:\n  setup_timeout: 600\n",
        "envs/x.yaml:3:18: limits.setup_timeout: ",
        "600 has no unit",
        "write 600s for seconds",
    );
    refused(
        "image: base\nlimits:\n  memory: 4 gigs\n",
        "envs/x.yaml:3:11: limits.memory: ",
        "4 gigs is not a size: unknown unit \"gigs\"",
        "512m, 4g, 1.5g, 1024k",
    );
    refused(
        "image: base\nlimits:\n  tmp_size: 1.5\n",
        "envs/x.yaml:3:13: limits.tmp_size: ",
        "not a whole number of bytes",
        "1.5g",
    );
    refused(
        "image: base\nlimits:\n  memory: 2m\n",
        "envs/x.yaml:3:11: limits.memory: ",
        "below the 6 MiB",
        "at least 6m",
    );
}

#[test]
fn zero_and_negative_limits() {
    let cases = [
        ("setup_timeout: 0s", 18, "zero", "longer than zero"),
        ("agent_timeout: -5m", 18, "negative", "with a unit"),
        ("memory: 0", 11, "zero", "larger than zero"),
        ("memory: -1g", 11, "negative", "512m"),
        ("tmp_size: 0m", 13, "zero", "larger than zero"),
        ("cpus: 0", 9, "not a positive number", "e.g. 2 or 0.5"),
        ("cpus: -2", 9, "not a positive number", "e.g. 2 or 0.5"),
        ("pids: 0", 9, "not a positive number", "e.g. 1024"),
        ("pids: -1", 9, "not a positive number", "e.g. 1024"),
    ];
    for (line, column, message, fix) in cases {
        let key = line.split(':').next().unwrap();
        refused(
            &format!("image: base\nlimits:\n  {line}\n"),
            &format!("envs/x.yaml:3:{column}: limits.{key}: "),
            message,
            fix,
        );
    }
}

#[test]
fn network_other_than_off() {
    refused(
        "image: base\nagent:\n  network: on\n",
        "envs/x.yaml:3:12: agent.network: ",
        "the agent network is `off` or an allowlist",
        "allow: [\"*\"]",
    );
    // A bare list is not the allowlist: its entries go under `allow:` (tests/env_network.rs).
    refused(
        "image: base\nagent:\n  network:\n    - registry.example.com\n",
        "envs/x.yaml:4:5: agent.network: ",
        "expected `off` or an allowlist mapping, found a list",
        "`allow: [example.com]`",
    );
}

#[test]
fn malformed_agent_user() {
    for user in ["\"Bob Smith\"", "\"1000:\"", "-1", "Admin"] {
        refused(
            &format!("image: base\nagent:\n  user: {user}\n"),
            "envs/x.yaml:3:9: agent.user: ",
            "is not a valid",
            "UID:GID (e.g. 1000:1000)",
        );
    }
    // An unquoted UID:GID is text in YAML 1.2, and a plain number works too.
    check("image: base\nagent:\n  user: 1000:1000\n")
        .success()
        .stdout_has("user 1000:1000");
    check("image: base\nagent:\n  user: 1001\n")
        .success()
        .stdout_has("user 1001");
}

#[test]
fn ca_certificates_must_exist_and_hold_a_certificate() {
    let root = Root::new();
    root.write(
        "certs/corp.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    root.write("certs/empty.pem", "nothing here\n");
    root.write(
        "envs/ok.yaml",
        "image: base\nca_certificates: [host, certs/corp.pem]\n",
    );
    root.write(
        "envs/missing.yaml",
        "image: base\nca_certificates:\n  - certs/none.pem\n",
    );
    root.write(
        "envs/empty.yaml",
        "image: base\nca_certificates:\n  - certs/empty.pem\n",
    );
    let corp = root.path().join("certs/corp.pem");
    Test::new()
        .root(&root)
        .args(["env", "check", "ok"])
        .run()
        .success()
        .stdout_has(&format!("ca       host, {}", corp.display()));
    Test::new()
        .root(&root)
        .args(["env", "check", "missing", "empty"])
        .run()
        .code(1)
        .stderr_has("envs/missing.yaml:3:5: ca_certificates[0]: cannot read ")
        .stderr_has("certs/none.pem: No such file")
        .stderr_has("fix: give the path of a PEM file that exists")
        .stderr_has("envs/empty.yaml:3:5: ca_certificates[0]: ")
        .stderr_has("holds no PEM certificate");
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(300);
    let out = refused(
        &format!("image: base\npersist:\n  - {long}\n"),
        "envs/x.yaml:3:5: persist[0]: ",
        "is not an absolute path",
        "absolute path",
    );
    assert!(
        !out.stderr().contains(&long),
        "the whole value was echoed:\n{}",
        out.stderr()
    );
    out.stderr_has("…");
}

#[test]
fn names_are_resolved_under_envs_and_hostile_ones_refused() {
    let root = Root::new();
    root.write("envs/good.yaml", "image: tiny\n");
    let run = |arg: &str| Test::new().root(&root).args(["env", "check", arg]).run();
    // The message is the point: checked whole.
    let name_fix = "  fix: a name is letters, digits, '_', '.' and '-', starting with a letter or \
                    digit, and is looked up as envs/NAME.yaml; to use a file elsewhere, give its \
                    path (with a /)\n";
    let invalid = "airlock: 1 of 1 environment invalid\n";
    run("..").code(1).stderr_is(&format!(
        "airlock: error: \"..\" is not an environment name\n{name_fix}{invalid}"
    ));
    run("x\\y").code(1).stderr_is(&format!(
        "airlock: error: \"x\\\\y\" is not an environment name\n{name_fix}{invalid}"
    ));
    // With a slash it is a path, taken as the user typed it.
    run("../../etc/nothere").code(1).stderr_is(&format!(
        "airlock: error: no such file: ../../etc/nothere\n  fix: give the path of an \
         environment file, or an environment's name (envs/NAME.yaml under the config root)\n\
         {invalid}"
    ));
    run("godo").code(1).stderr_is(&format!(
        "airlock: error: no environment godo: envs/godo.yaml does not exist\n  fix: did you \
         mean good? (environments: good)\n{invalid}"
    ));
    run("envs/good.yaml").success().stdout_has("good: ok");
}

#[test]
fn a_file_that_is_not_utf8() {
    let root = Root::new();
    root.write("envs/x.yaml", b"image: base\nenv:\n  A: \xff\n");
    Test::new()
        .root(&root)
        .args(["env", "check", "x"])
        .run()
        .code(1)
        .stderr_is(
            "airlock: error: envs/x.yaml:3:6: the file is not UTF-8 text\n  fix: save it as \
             UTF-8\nairlock: 1 of 1 environment invalid\n",
        );
}

#[test]
fn a_listed_secret_without_a_file_in_secrets_is_a_warning() {
    let root = Root::new();
    root.write(
        "envs/x.yaml",
        "image: base\nsecrets: [HAVE, MISSING]\nsetup: true\n",
    );
    root.write(
        "secrets/HAVE.age",
        "stand-in: only its existence is checked",
    );
    let out = Test::new()
        .root(&root)
        .args(["env", "check", "x"])
        .run()
        .success()
        .stderr_has("warning: envs/x.yaml: secret MISSING has no file secrets/MISSING.age yet");
    assert!(!out.stderr().contains("secret HAVE"), "{}", out.stderr());
}

/// 100 000 levels of nesting (which kept serde_yaml busy for over a minute) are refused
/// before the YAML parser sees them: `env check` names the place and a fix, `run` exits 78.
#[test]
fn yaml_nested_past_sixty_four_levels_is_refused_naming_the_place() {
    let deep = 100_000;
    for (yaml, at) in [
        (
            format!(
                "image: base\nenv: {}1{}\n",
                "[".repeat(deep),
                "]".repeat(deep)
            ),
            "envs/x.yaml:2:69: the YAML nests more than 64 levels deep here",
        ),
        (
            format!("image: base\nenv:\n  {}1\n", "- ".repeat(deep)),
            "envs/x.yaml:3:129: the YAML nests more than 64 levels deep here",
        ),
    ] {
        refused(&yaml, at, "64 levels", "flatten");
        let root = Root::new();
        root.write("envs/x.yaml", &yaml);
        std::fs::create_dir(root.path().join("ws")).unwrap();
        Test::new()
            .root(&root)
            .args(["run", "x", "-w", "ws", "--", "true"])
            .run()
            .code(78)
            .stderr_has(at);
    }
}
