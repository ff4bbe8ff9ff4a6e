//! The setup cache (`cache:` in an environment) end to end against the real engine: hits,
//! each explained miss, expiry, `--no-cache` and `--refresh-cache`, two runs filling one key
//! at once, a failing maintenance script, `gc` and `prune`, and the promises (no secret, no
//! network, nothing left) on a cached run.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{assert_run_gone, contains, docker, Fixture, Test, SECRET};

/// An environment that leaves something in each place that crosses: a persist path, a new
/// workspace folder, a changed and a removed workspace file, a handed-over variable.
const ENV: &str = "image: tiny
persist: [/opt/deps]
cache:
  key_files: [requirements.txt]
setup: |
  echo setup-ran
  mkdir -p /opt/deps && echo dep > /opt/deps/lib
  d=/opt/deps/$(printf '%040d' 0)/$(printf '%046d' 0) && mkdir -p $d && echo deep > $d/f
  mkdir -p .venv && echo venv > .venv/marker
  echo by-setup > edited.txt
  rm -f gone.txt
  echo FROM_SETUP=handed >> \"$AIRLOCK_ENV\"
";

/// Removes the test's entries however it ends (by environment name, through airlock).
struct Entries<'a> {
    f: &'a Fixture,
    envs: Vec<&'a str>,
}

impl Drop for Entries<'_> {
    fn drop(&mut self) {
        for env in &self.envs {
            let _ = cache(self.f, &["rm", env]).run();
        }
    }
}

fn cache(f: &Fixture, args: &[&str]) -> Test {
    Test::new()
        .root(&f.root)
        .env("AIRLOCK_IDENTITY", &f.identity)
        .arg("cache")
        .args(args)
}

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.ws_file("requirements.txt", "pytest==8\n");
    f.ws_file("edited.txt", "by-host\n");
    f.ws_file("gone.txt", "setup removes me\n");
    f.ws_file("main.txt", "v1\n");
    f.ws_file("docs/readme.txt", "docs\n");
    f
}

/// The report's `cache` object.
fn cached(f: &Fixture) -> serde_json::Value {
    f.report()["cache"].clone()
}

fn reason(f: &Fixture) -> String {
    cached(f)["reason"].as_str().unwrap_or("<none>").to_string()
}

fn setup_ran(f: &Fixture) -> bool {
    contains(&f.record_file("setup.log"), b"setup-ran")
}

/// The markers and data volumes of one key on the engine, as the docker CLI sees them.
fn objects_of(key: &str) -> (usize, usize) {
    let filter = format!("label=airlock.cache.key={key}");
    let markers = docker(&["ps", "-aq", "--filter", &filter]);
    let volumes = docker(&["volume", "ls", "-q", "--filter", &filter]);
    (markers.lines().count(), volumes.lines().count())
}

#[test]
fn env_check_suggests_the_cache_when_the_last_setup_was_slow() {
    let f = Fixture::new();
    f.env("slow", "image: tiny\nsetup: |\n  sleep 45\n");
    f.env("quick", "image: tiny\nsetup: |\n  true\n");
    for (id, env, ms) in [
        ("20261201-000000-aaaaaa", "slow", 45_000),
        ("20261201-000001-bbbbbb", "quick", 900),
    ] {
        f.root.write(
            &format!(".airlock/runs/{id}/report.json"),
            format!("{{\"environment\": {{\"name\": \"{env}\"}}, \"setup\": {{\"duration_ms\": {ms}}}}}"),
        );
    }
    let out = Test::new()
        .root(&f.root)
        .args(["env", "check", "slow", "quick"])
        .run()
        .success();
    let stdout = out.stdout();
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("  cache")).collect::<Vec<_>>(),
        ["  cache    off; the last run's setup took 45s: `cache:` would let the next runs reuse what it left (see envs/README.md)"],
        "{stdout}"
    );
}

#[test]
fn a_second_run_hits_and_the_agent_sees_what_setup_left_over_the_current_workspace() {
    let f = fixture();
    f.env("c", ENV);
    let _e = Entries {
        f: &f,
        envs: vec!["c"],
    };
    let agent = "cat /opt/deps/*/*/f /opt/deps/lib .venv/marker edited.txt main.txt; ls gone.txt 2>&1; ls -d docs 2>&1; echo \"var=$FROM_SETUP\"";
    let out = f.run("c", &["sh", "-c", agent]).run().success();
    let c = cached(&f);
    assert_eq!(c["hit"], false, "{c:#}");
    assert_eq!(c["reason"], "no entry yet");
    assert_eq!(c["saved"], true);
    let key = c["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    out.stderr_line(&format!(
        "airlock | cache: miss {} (no entry yet): setup runs, and what crosses is saved",
        &key[..12]
    ));
    assert_eq!(objects_of(&key), (1, 1));

    // The host workspace changed in a file that is not a key file: still a hit, and the
    // agent sees the host's new file with setup's changes over the rest.
    f.ws_file("main.txt", "v2\n");
    std::fs::remove_dir_all(f.ws.join("docs")).unwrap();
    let out = f.run("c", &["sh", "-c", agent]).run().success();
    let c = cached(&f);
    assert_eq!(c["hit"], true, "{c:#}");
    assert_eq!(c["key"], key.as_str());
    assert!(c["reason"].is_null());
    assert!(!setup_ran(&f), "setup ran on a hit");
    let stderr = out.stderr();
    assert!(
        stderr.contains(&format!("airlock | cache: hit {} (made ", &key[..12])),
        "{stderr}"
    );
    for line in [
        "agent | deep",
        "agent | dep",
        "agent | venv",
        "agent | by-setup",
        "agent | v2",
        "agent | var=handed",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "no {line:?} in\n{stderr}"
        );
    }
    assert!(stderr.contains("gone.txt: No such file"), "{stderr}");
    // A folder the host removed since stays removed: the entry holds only setup's changes.
    assert!(stderr.contains("docs: No such file"), "{stderr}");
    let report = f.report();
    assert_eq!(
        report["network"]["setup"],
        "none (cache hit, no maintenance script)"
    );
    assert_run_gone(report["run_id"].as_str().unwrap());
    // The agent changed nothing the patch should carry but what it did itself.
    let out = cache(&f, &["ls"]).run().success();
    let row = out
        .stdout()
        .lines()
        .find(|l| l.starts_with("c "))
        .unwrap_or_default()
        .to_string();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols.first(), Some(&"c"), "{}", out.stdout());
    assert_eq!(cols.get(1), Some(&&key[..12]));
    assert_eq!(cols.get(5), Some(&"1"), "one hit: {row}");
    assert_eq!(cols.get(6), Some(&"live"));
}

#[test]
fn each_change_is_named_in_the_miss() {
    let f = fixture();
    f.secret("API_TOKEN", SECRET.as_bytes());
    let tiny = docker(&[
        "images",
        "airlock/tiny",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    let tiny = tiny.lines().next().expect("the tiny image").to_string();
    let tag = format!("airlock-test-cache-{}:latest", std::process::id());
    let build = |n: u32| -> String {
        let mut child = std::process::Command::new("docker")
            .args(["build", "-q", "-t", &tag, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("FROM {tiny}\nLABEL airlock.test.rebuild={n}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "docker build");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    /// The test's images, removed however it ends (by id: a rebuild leaves the first untagged).
    struct Images(Vec<String>);
    impl Drop for Images {
        fn drop(&mut self) {
            for id in &self.0 {
                let _ = std::process::Command::new("docker")
                    .args(["rmi", "-f", id])
                    .output();
            }
        }
    }
    let mut images = Images(vec![tag.clone()]);
    images.0.push(build(1));
    let env = |setup: &str, var: &str, maintenance: &str| {
        format!(
            "image: {tag}\nenv:\n  A: \"{var}\"\nsecrets: [API_TOKEN]\ncache:\n  key_files: [requirements.txt]\nsetup: |\n  echo setup-ran {setup}\nmaintenance: |\n  echo {maintenance}\n"
        )
    };
    f.env("m", &env("one", "1", "m1"));
    let _e = Entries {
        f: &f,
        envs: vec!["m"],
    };
    let run = || f.run("m", &["true"]).run().success();
    run();
    assert_eq!(reason(&f), "no entry yet");
    run();
    assert_eq!(cached(&f)["hit"], true);

    f.env("m", &env("two", "1", "m1"));
    run();
    assert_eq!(reason(&f), "setup script changed");
    f.env("m", &env("two", "1", "m2"));
    run();
    assert_eq!(reason(&f), "maintenance script changed");
    f.env("m", &env("two", "2", "m2"));
    run();
    assert_eq!(reason(&f), "variable A changed");
    f.ws_file("requirements.txt", "pytest==9\n");
    let why = cache(&f, &["why", "m", "-w"]).arg(&f.ws).run().success();
    assert!(
        why.stdout().ends_with(": requirements.txt changed\n"),
        "{}",
        why.stdout()
    );
    run();
    assert_eq!(reason(&f), "requirements.txt changed");
    let new_value = "an0ther-Secret-Value-77";
    f.secret("API_TOKEN", new_value.as_bytes());
    let out = run();
    assert_eq!(reason(&f), "secret API_TOKEN changed");
    out.never_prints(new_value.as_bytes())
        .never_prints(SECRET.as_bytes());
    let report = std::fs::read(f.out().join("report.json")).unwrap();
    assert!(!contains(&report, new_value.as_bytes()));
    images.0.push(build(2));
    run();
    assert_eq!(reason(&f), "image rebuilt");
    run();
    assert_eq!(cached(&f)["hit"], true, "{:#}", cached(&f));
    let why = cache(&f, &["why", "m", "-w"]).arg(&f.ws).run().success();
    assert!(
        why.stdout().starts_with("m: the next run would hit "),
        "{}",
        why.stdout()
    );
    // Nothing on the engine names a secret's value in any form the labels could show.
    let labels = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=airlock.cache.env=m",
        "--format",
        "{{.Labels}}",
    ]);
    assert!(!labels.contains(SECRET) && !labels.contains(new_value));
}

#[test]
fn an_entry_expires_after_its_ttl_and_prune_removes_it() {
    let f = fixture();
    f.env(
        "t",
        "image: tiny\ncache:\n  ttl: 1s\nsetup: |\n  echo setup-ran\n",
    );
    let _e = Entries {
        f: &f,
        envs: vec!["t"],
    };
    f.run("t", &["true"]).run().success();
    std::thread::sleep(Duration::from_millis(2100));
    f.run("t", &["true"]).run().success();
    let why = reason(&f);
    let age: u64 = why
        .strip_prefix("expired (")
        .and_then(|r| r.strip_suffix("s old, ttl 1s)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an expiry: {why:?}"));
    assert!((2..=10).contains(&age), "{why}");
    assert!(setup_ran(&f));
    // The expired entry was replaced by the new one; once that one expires, prune removes it.
    let key = cached(&f)["key"].as_str().unwrap().to_string();
    assert_eq!(objects_of(&key), (1, 1));
    std::thread::sleep(Duration::from_millis(2100));
    let out = cache(&f, &["prune"]).run().success();
    assert!(
        out.stdout()
            .starts_with(&format!("removed {} (t, ", &key[..12])),
        "{}",
        out.stdout()
    );
    assert_eq!(objects_of(&key), (0, 0));
    cache(&f, &["ls"])
        .run()
        .success()
        .stdout_is("no cache entries\n");
}

#[test]
fn no_cache_neither_reads_nor_writes_and_refresh_replaces() {
    let f = fixture();
    f.env("n", ENV);
    let _e = Entries {
        f: &f,
        envs: vec!["n"],
    };
    f.run_with("n", &["--no-cache"], &["true"])
        .run()
        .success()
        .stderr_line("airlock | cache: off for this run (--no-cache)");
    assert_eq!(reason(&f), "cache off (--no-cache)");
    assert!(setup_ran(&f));
    cache(&f, &["ls"])
        .run()
        .success()
        .stdout_is("no cache entries\n");

    f.run("n", &["true"]).run().success();
    let key = cached(&f)["key"].as_str().unwrap().to_string();
    f.run_with("n", &["--no-cache"], &["true"]).run().success();
    assert_eq!(cached(&f)["hit"], false);
    assert!(setup_ran(&f), "--no-cache ran setup despite the entry");

    f.run_with("n", &["--refresh-cache"], &["true"])
        .run()
        .success();
    assert_eq!(reason(&f), "refresh asked (--refresh-cache)");
    assert_eq!(cached(&f)["saved"], true);
    assert!(setup_ran(&f));
    assert_eq!(
        objects_of(&key),
        (1, 1),
        "the refreshed entry replaced the old"
    );
    f.run("n", &["true"]).run().success();
    assert_eq!(cached(&f)["hit"], true);
}

#[test]
fn two_runs_filling_one_key_at_once_leave_one_entry_and_a_third_run_hits() {
    let f = fixture();
    f.env(
        "p",
        "image: tiny\ncache:\npersist: [/opt/deps]\nsetup: |\n  echo setup-ran\n  sleep 1\n  mkdir -p /opt/deps && echo dep > /opt/deps/lib\n",
    );
    let _e = Entries {
        f: &f,
        envs: vec!["p"],
    };
    let start = |out: &Path| {
        Test::new()
            .root(&f.root)
            .env("AIRLOCK_IDENTITY", &f.identity)
            .args(["run", "p", "-w"])
            .arg(&f.ws)
            .arg("--out")
            .arg(out)
            .args(["--", "cat", "/opt/deps/lib"])
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (f.root.path().join("a"), f.root.path().join("b"));
    let runs = [start(&a), start(&b)];
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
    };
    let (ra, rb) = (read(&a), read(&b));
    assert_eq!(ra["cache"]["hit"], false);
    assert_eq!(rb["cache"]["hit"], false);
    let key = ra["cache"]["key"].as_str().unwrap().to_string();
    assert_eq!(rb["cache"]["key"], key.as_str());
    assert_eq!(objects_of(&key), (1, 1), "exactly one entry remains");
    // Both filled; one published, the other found it and discarded its own.
    let mut saved = [&ra, &rb].map(|r| r["cache"]["saved"].as_bool());
    saved.sort();
    assert_eq!(saved, [Some(false), Some(true)], "{ra:#}\n{rb:#}");
    f.run("p", &["cat", "/opt/deps/lib"])
        .run()
        .success()
        .stderr_line("agent | dep");
    assert_eq!(cached(&f)["hit"], true);
    for r in [&ra, &rb] {
        assert_run_gone(r["run_id"].as_str().unwrap());
    }
}

#[test]
fn a_failing_maintenance_script_is_a_setup_failure_and_the_entry_stays() {
    let f = fixture();
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "f",
        "image: tiny\nsecrets: [API_TOKEN]\ncache:\nsetup: |\n  echo setup-ran\nmaintenance: |\n  test \"${#API_TOKEN}\" -eq 23 && echo maintenance-has-the-secret\n  exit 3\n",
    );
    let _e = Entries {
        f: &f,
        envs: vec!["f"],
    };
    f.run("f", &["true"]).run().success();
    let key = cached(&f)["key"].as_str().unwrap().to_string();
    let out = f.run("f", &["true"]).run().code(80);
    out.stderr_has("setup failed: the maintenance script (cache hit) exited with code 3")
        .stderr_has("setup | maintenance-has-the-secret")
        .never_prints(SECRET.as_bytes());
    let report = f.report();
    assert_eq!(report["outcome"], "setup_failed");
    assert_eq!(report["cache"]["hit"], true);
    assert_eq!(report["network"]["setup"], "a bridge network of its own");
    assert!(!setup_ran(&f));
    assert_eq!(objects_of(&key), (1, 1), "the entry stays");
    assert_run_gone(report["run_id"].as_str().unwrap());
}

#[test]
fn gc_removes_a_broken_fill_never_a_live_entry_or_a_fill_in_progress() {
    let f = fixture();
    f.env(
        "g",
        "image: tiny\ncache:\nsetup: |\n  head -c 3000 /dev/zero > big.bin\n",
    );
    f.env(
        "h",
        "image: tiny\ncache:\nsetup: |\n  head -c 3000 /dev/zero > big.bin\n  echo h\n",
    );
    let _e = Entries {
        f: &f,
        envs: vec!["g", "h"],
    };
    f.run("g", &["true"]).run().success();
    let live = cached(&f)["key"].as_str().unwrap().to_string();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let pid = std::process::id();
    let volume = |name: &str, owner: &str| {
        docker(&[
            "volume",
            "create",
            "--label",
            "airlock.managed=true",
            "--label",
            "airlock.cache=data",
            "--label",
            "airlock.cache.key=feedfacefeedface",
            "--label",
            &format!("airlock.owner={owner}"),
            name,
        ]);
    };
    let broken = format!("airlock-cachedata-test-broken-{pid}");
    let filling = format!("airlock-cachedata-test-filling-{pid}");
    volume(&broken, &format!("{host}:1073741823:5"));
    volume(&filling, &format!("{host}:{pid}:0"));
    let out = Test::new().root(&f.root).arg("gc").run().success();
    let _ = docker(&["volume", "rm", "-f", &filling]);
    let _ = docker(&["volume", "rm", "-f", &broken]);
    assert!(!out.stdout().contains(&filling), "{}", out.stdout());
    out.stdout_has(&format!(
        "removed volume {broken} (a cache entry whose fill never finished)"
    ));
    assert_eq!(objects_of(&live), (1, 1), "gc left the live entry");
    f.run("g", &["true"]).run().success();
    assert_eq!(cached(&f)["hit"], true);

    // prune --max-size: the oldest go first.
    std::thread::sleep(Duration::from_millis(1100));
    f.run("h", &["true"]).run().success();
    let newer = cached(&f)["key"].as_str().unwrap().to_string();
    let out = cache(&f, &["prune", "--max-size", "4k"]).run().success();
    assert_eq!(
        out.stdout(),
        format!("removed {} (g, 2.93 KiB): past --max-size\n", &live[..12])
    );
    assert_eq!(objects_of(&live), (0, 0));
    assert_eq!(objects_of(&newer), (1, 1));
}

#[test]
fn a_cached_run_is_as_sealed_as_an_uncached_one() {
    let f = fixture();
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "s",
        "image: tiny\nsecrets: [API_TOKEN]\npersist: [/opt/deps]\ncache:\nsetup: |\n  mkdir -p /opt/deps && echo dep > /opt/deps/lib\n  echo \"$API_TOKEN\" > /root/token-outside-what-crosses\nmaintenance: |\n  echo \"$API_TOKEN\" > /root/again\n",
    );
    let _e = Entries {
        f: &f,
        envs: vec!["s", "leaky"],
    };
    f.run("s", &["true"]).run().success();
    let hunt = format!(
        "env | grep -c {SECRET}; grep -rl {SECRET} /workspace /opt /tmp /root 2>/dev/null; \
         ls /airlock 2>&1; cat /proc/net/dev | grep -vc lo; echo done"
    );
    let out = f.run("s", &["sh", "-c", &hunt]).run().success();
    assert_eq!(cached(&f)["hit"], true);
    assert!(
        out.stderr().lines().any(|l| l == "agent | 2"),
        "{}",
        out.stderr()
    );
    out.never_prints(SECRET.as_bytes())
        .stderr_line("agent | 0")
        .stderr_line("agent | ls: /airlock: No such file or directory")
        .stderr_line("agent | done");
    // /proc/net/dev above: two header lines, no interface but lo.
    let report = f.report();
    assert_eq!(report["network"]["agent"], "none");
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert_run_gone(&run_id);
    // The report names the command, which holds the value to hunt for; nothing else does.
    let mut shown = report.clone();
    shown["command"] = serde_json::Value::Null;
    assert!(!shown.to_string().contains(SECRET), "{shown:#}");
    for file in ["setup.log", "agent.log", "changes.patch"] {
        assert!(!contains(&f.record_file(file), SECRET.as_bytes()), "{file}");
    }

    // A maintenance script that leaks the secret into what crosses is refused like setup.
    f.env(
        "leaky",
        "image: tiny\nsecrets: [API_TOKEN]\ncache:\nsetup: |\n  true\nmaintenance: |\n  echo \"$API_TOKEN\" > leaked.txt\n",
    );
    f.run("leaky", &["true"]).run().success();
    f.run("leaky", &["true"])
        .run()
        .code(81)
        .stderr_has("secret API_TOKEN")
        .stderr_has("/workspace/leaked.txt")
        .never_prints(SECRET.as_bytes());
    assert_run_gone(f.report()["run_id"].as_str().unwrap());
    // A setup that leaks it never makes an entry.
    f.env(
        "leaky",
        "image: tiny\nsecrets: [API_TOKEN]\ncache:\nsetup: |\n  echo \"$API_TOKEN\" > leaked.txt\n",
    );
    f.run("leaky", &["true"]).run().code(81);
    let key = cached(&f)["key"].as_str().unwrap().to_string();
    assert_eq!(objects_of(&key), (0, 0));
}
