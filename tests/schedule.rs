//! `airlock schedule` against the real engine: seconds-level schedules on the tiny image, a
//! real git repository, the real scheduler process (signalled, killed), and `croniter` as an
//! independent oracle for `schedule next`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{assert_run_gone, docker, Fixture, Test, TINY};

/// A config root with the tiny environment and a git repository to schedule runs on.
struct Sched {
    fx: Fixture,
    repo: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Sched {
    fn new() -> Sched {
        let fx = Fixture::new();
        fx.env("tiny", TINY);
        let repo = fx.root.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "one\n").unwrap();
        git(&repo, &["add", "a.txt"]);
        git(&repo, &["commit", "-qm", "one"]);
        Sched { fx, repo }
    }

    /// `schedules/t.yaml` with these keys besides env, repository, ref.
    fn schedule(&self, rest: &str) {
        self.fx.root.write(
            "schedules/t.yaml",
            format!("env: tiny\nrepository: repo\nref: main\n{rest}"),
        );
    }

    fn airlock(&self) -> Test {
        Test::new().root(&self.fx.root)
    }

    /// `airlock schedule run` in the background, its stdout to a file.
    fn start(&self) -> Daemon {
        let log = self.fx.root.path().join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let mut cmd = self.airlock().args(["schedule", "run"]).command();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let d = Daemon { child, log };
        d.wait_for(|l| l.starts_with("airlock schedule run: t"), 30);
        d
    }

    fn history(&self) -> Vec<serde_json::Value> {
        let out = self
            .airlock()
            .args(["schedule", "history", "t", "--json"])
            .run()
            .success();
        serde_json::from_str(&out.stdout()).unwrap()
    }

    fn report(&self, run_id: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(
            self.fx
                .root
                .path()
                .join(format!(".airlock/runs/{run_id}/report.json")),
        )
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

/// A test that fails while its scheduler runs still stops it cleanly (no orphan process
/// firing runs, nothing left in the engine).
impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The first log line `pred` accepts, waiting up to `secs`.
    #[track_caller]
    fn wait_for(&self, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no such log line in {secs} s; log:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> (i32, Vec<String>, String) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (st.code().unwrap_or(-1), self.lines(), err);
            }
            assert!(
                Instant::now() < deadline,
                "the scheduler did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The run id a `fire … → run ID` or `… run ID …` line names.
fn run_id_in(line: &str) -> String {
    let at = line.find("run ").unwrap() + 4;
    line[at..]
        .split([' ', ',', ')', ';'])
        .next()
        .unwrap()
        .to_string()
}

/// The fire time a `NAME: fire TIME → …` / `skip TIME …` line names.
fn fire_in(line: &str, verb: &str) -> String {
    let at = line.find(&format!(" {verb} ")).unwrap() + verb.len() + 2;
    line[at..].split(' ').next().unwrap().to_string()
}

fn no_leftovers_of(run_ids: &[String]) {
    for id in run_ids {
        assert_run_gone(id);
    }
}

#[test]
fn fire_times_are_what_next_prints_and_sigterm_stops_cleanly() {
    let s = Sched::new();
    s.schedule("command: [\"true\"]\ncron: \"*/4 * * * * *\"\noverlap: allow\n");
    let before = jiff_now();
    let d = s.start();
    let expected: Vec<String> = s
        .airlock()
        .args(["schedule", "next", "t", "--count", "8", "--after", &before])
        .run()
        .success()
        .stdout()
        .lines()
        .map(str::to_string)
        .collect();
    d.wait_for(|l| l.contains(" ended: "), 60);
    let third = d.wait_for(
        |l| {
            l.contains(" t: fire ")
                && d.lines().iter().filter(|x| x.contains(" t: fire ")).count() >= 3
        },
        60,
    );
    let (code, lines, _) = d.stop();
    assert_eq!(code, 0, "{lines:#?}");
    assert!(lines.last().unwrap().ends_with("stopped"), "{lines:#?}");
    let fired: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(" t: fire "))
        .map(|l| fire_in(l, "fire"))
        .collect();
    assert!(fired.len() >= 3, "{lines:#?} {third}");
    // The fires are consecutive times of `next` (the first one or two of `next` may fall
    // before the scheduler started, which the scheduler can't fire).
    let at = expected
        .iter()
        .position(|e| *e == fired[0])
        .unwrap_or_else(|| panic!("{fired:?} not in {expected:?}"));
    assert!(at <= 1, "{fired:?} vs {expected:?}");
    assert_eq!(fired[..], expected[at..at + fired.len()], "{lines:#?}");
    // Every run ended (to its end, or interrupted by SIGTERM), recorded and labelled, nothing left.
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(" t: fire "))
        .map(|l| run_id_in(l))
        .collect();
    let mut workspaces: Vec<String> = Vec::new();
    for id in &ids {
        let r = s.report(id);
        assert_eq!(r["labels"]["schedule"], "t");
        assert!(
            r["outcome"] == "succeeded" || r["outcome"] == "interrupted",
            "{r}"
        );
        // Each fire had a workspace of its own (a fresh checkout), never the repository's.
        let w = r["workspace"].as_str().unwrap().to_string();
        assert!(w.ends_with(&format!(".airlock/schedules/work/{id}")), "{w}");
        assert!(!workspaces.contains(&w), "{w} shared");
        workspaces.push(w);
    }
    assert!(ids.len() >= 3);
    no_leftovers_of(&ids);
    let listed = s
        .airlock()
        .args(["runs", "ls", "--schedule", "t", "--json"])
        .run()
        .success();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout()).unwrap();
    let mut listed: Vec<String> = listed
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed, want);
    // The checkouts are gone.
    let work = s.fx.root.path().join(".airlock/schedules/work");
    assert_eq!(std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0), 0);
}

fn jiff_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn forbid_skips_while_a_run_is_going() {
    let s = Sched::new();
    s.schedule("command: [\"sleep\", \"60\"]\ncron: \"*/2 * * * * *\"\noverlap: forbid\n");
    let d = s.start();
    let fired = d.wait_for(|l| l.contains(" t: fire "), 30);
    let id = run_id_in(&fired);
    let skip = d.wait_for(|l| l.contains(" t: skip "), 30);
    assert!(
        skip.ends_with(&format!("(run {id} still going; overlap: forbid)")),
        "{skip}"
    );
    // The history shows the run going (newest first), and the skip.
    let h = s.history();
    assert_eq!(h[0]["run_id"], id.as_str(), "{h:#?}");
    assert_eq!(h[0]["outcome"], "running");
    assert_eq!(h[1]["kind"], "skipped");
    let (code, lines, _) = d.stop();
    assert_eq!(code, 0);
    assert_eq!(
        lines.iter().filter(|l| l.contains(" t: fire ")).count(),
        1,
        "{lines:#?}"
    );
    let h = s.history();
    let skipped: Vec<_> = h.iter().filter(|e| e["kind"] == "skipped").collect();
    assert!(!skipped.is_empty(), "{h:#?}");
    assert_eq!(
        skipped[0]["note"],
        format!("run {id} still going (overlap: forbid)")
    );
    assert_eq!(s.report(&id)["outcome"], "interrupted");
    no_leftovers_of(&[id]);
}

#[test]
fn replace_cancels_the_running_run() {
    let s = Sched::new();
    s.schedule("command: [\"sleep\", \"60\"]\ncron: \"*/5 * * * * *\"\noverlap: replace\n");
    let d = s.start();
    let first = run_id_in(&d.wait_for(|l| l.contains(" t: fire "), 30));
    let cancel = d.wait_for(|l| l.contains(" t: cancel run "), 30);
    assert!(
        cancel.ends_with(&format!("cancel run {first} (overlap: replace)")),
        "{cancel}"
    );
    d.wait_for(
        |l| l.contains(&format!("run {first} ended: cancelled (exit 83)")),
        60,
    );
    let (code, lines, _) = d.stop();
    assert_eq!(code, 0, "{lines:#?}");
    let r = s.report(&first);
    assert_eq!(r["outcome"], "cancelled");
    assert_eq!(r["exit_code"], 83);
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(" t: fire "))
        .map(|l| run_id_in(l))
        .collect();
    assert!(ids.len() >= 2);
    no_leftovers_of(&ids);
}

/// Run the scheduler until one run has ended, stop it, wait across `gap` fires, restart it.
fn restart_across_fires(missed: &str) -> (Sched, Vec<String>, Vec<String>) {
    let s = Sched::new();
    s.schedule(&format!(
        "command: [\"true\"]\ncron: \"*/3 * * * * *\"\nmissed: {missed}\ndeadline: 1m\n"
    ));
    let d = s.start();
    d.wait_for(|l| l.contains(" ended: succeeded"), 60);
    let (_, first, _) = d.stop();
    std::thread::sleep(Duration::from_secs(7));
    let d = s.start();
    d.wait_for(
        |l| l.contains(" t: missed ") || l.contains(" t: catch-up "),
        30,
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, second, _) = d.stop();
    (s, first, second)
}

#[test]
fn a_restart_with_missed_skip_runs_nothing_for_the_gap() {
    let (s, _, second) = restart_across_fires("skip");
    let missed = second.iter().find(|l| l.contains(" t: missed ")).unwrap();
    assert!(
        missed.ends_with("nothing runs for them (missed: skip)"),
        "{missed}"
    );
    assert!(
        !second.iter().any(|l| l.contains("catch-up")),
        "{second:#?}"
    );
    let h = s.history();
    assert!(
        h.iter()
            .any(|e| e["kind"] == "missed" && e["count"].as_u64().unwrap() >= 2),
        "{h:#?}"
    );
}

#[test]
fn a_restart_with_missed_catch_up_runs_once() {
    let (s, _, second) = restart_across_fires("catch-up");
    let catch: Vec<&String> = second
        .iter()
        .filter(|l| l.contains(" t: catch-up "))
        .collect();
    assert_eq!(catch.len(), 1, "{second:#?}");
    let id = run_id_in(catch[0]);
    let h = s.history();
    let run = h.iter().find(|e| e["run_id"] == id.as_str()).unwrap();
    assert_eq!(run["trigger"], "catch-up");
    assert!(
        h.iter()
            .any(|e| e["kind"] == "missed"
                && e["note"] == "missed: catch-up runs once, for the newest"),
        "{h:#?}"
    );
}

#[test]
fn kill_9_then_gc_leaves_nothing_and_the_next_start_records_abandoned() {
    let s = Sched::new();
    let seen = s.fx.root.path().join("on-failure.txt");
    s.schedule(&format!(
        "command: [\"sleep\", \"60\"]\ncron: \"*/2 * * * * *\"\non_failure: [\"sh\", \"-c\", \"echo $AIRLOCK_RUN_ID $AIRLOCK_OUTCOME >> {}\"]\n",
        seen.display()
    ));
    let mut d = s.start();
    let id = run_id_in(&d.wait_for(|l| l.contains(" t: fire "), 30));
    // Wait for the agent phase's container, then kill the scheduler outright.
    let deadline = Instant::now() + Duration::from_secs(60);
    while docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=airlock.run={id}"),
        "--filter",
        "label=airlock.phase=agent",
    ])
    .trim()
    .is_empty()
    {
        assert!(Instant::now() < deadline, "no agent container for {id}");
        std::thread::sleep(Duration::from_millis(100));
    }
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    assert_eq!(s.report(&id)["outcome"], "incomplete");
    s.airlock()
        .arg("gc")
        .run()
        .success()
        .stdout_has(&format!("(run {id})"));
    assert_run_gone(&id);
    // The state still lists the run; the next start records it abandoned and removes its checkout.
    let work =
        s.fx.root
            .path()
            .join(format!(".airlock/schedules/work/{id}"));
    assert!(work.is_dir());
    s.fx.root.write(
        "schedules/t.yaml",
        s.fx.root
            .read("schedules/t.yaml")
            .replace("*/2 * * * * *", "0 0 1 1 *"),
    );
    let d = s.start();
    d.wait_for(
        |l| {
            l.ends_with(&format!(
                "t: run {id} abandoned (the scheduler running it died); recorded"
            ))
        },
        30,
    );
    let (code, _, _) = d.stop();
    assert_eq!(code, 0);
    let r = s.report(&id);
    assert_eq!(r["outcome"], "abandoned");
    assert_eq!(r["exit_code"], 84);
    assert!(!work.exists());
    let h = s.history();
    assert_eq!(h[0]["outcome"], "abandoned");
    assert_eq!(h[0]["run_id"], id.as_str());
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("{id} abandoned\n")
    );
}

#[test]
fn result_branch_holds_the_runs_patch_and_the_working_tree_is_untouched() {
    let s = Sched::new();
    // The agent also tries to plant a hook and a config change, in its checkout's .git and
    // in a nested one.
    s.schedule("command: [\"sh\", \"-c\", \"echo two > a.txt; echo new > b.txt; mkdir -p .git/hooks; printf '#!/bin/sh\\\\ntouch /tmp/pwned\\\\n' > .git/hooks/post-checkout; chmod +x .git/hooks/post-checkout; printf '[core]\\\\n\\\\thooksPath = /tmp\\\\n' >> .git/config; mkdir -p sub/.git/hooks; echo evil > sub/.git/hooks/post-checkout; echo '[core]' > sub/.git/config; ls sub/.git/hooks; true\"]\ncron: \"*/2 * * * * *\"\nresult: branch\n");
    std::fs::write(s.repo.join("a.txt"), "live edit\n").unwrap();
    let config = std::fs::read(s.repo.join(".git/config")).unwrap();
    let hooks = || {
        let mut names: Vec<String> = std::fs::read_dir(s.repo.join(".git/hooks"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let hooks_before = hooks();
    let status = git(&s.repo, &["status", "--porcelain"]);
    let base = git(&s.repo, &["rev-parse", "main"]).trim().to_string();
    let d = s.start();
    let ended = d.wait_for(|l| l.contains(" ended: succeeded"), 60);
    let (_, lines, _) = d.stop();
    let id = run_id_in(&ended);
    let branch = format!("airlock/t/{id}");
    assert!(
        ended.ends_with(&format!("result: branch {branch}")),
        "{lines:#?}"
    );
    assert_eq!(
        git(&s.repo, &["rev-parse", &format!("{branch}^")]).trim(),
        base
    );
    let diff = git(
        &s.repo,
        &[
            "diff",
            "--no-color",
            "--binary",
            "--full-index",
            "-M",
            &base,
            &branch,
        ],
    );
    let patch = std::fs::read_to_string(
        s.fx.root
            .path()
            .join(format!(".airlock/runs/{id}/changes.patch")),
    )
    .unwrap();
    assert!(patch.contains("+two") && patch.contains("+new"), "{patch}");
    assert_eq!(diff, patch);
    // The live working tree, its index and HEAD are as they were.
    assert_eq!(
        std::fs::read_to_string(s.repo.join("a.txt")).unwrap(),
        "live edit\n"
    );
    assert_eq!(git(&s.repo, &["status", "--porcelain"]), status);
    assert_eq!(git(&s.repo, &["rev-parse", "HEAD"]).trim(), base);
    let h = s.history();
    let run = h.iter().find(|e| e["run_id"] == id.as_str()).unwrap();
    assert_eq!(run["branch"], branch.as_str());
    assert!(run["patch_bytes"].as_u64().unwrap() > 0);
    // The checkout's own .git is read-only to the agent; a nested one it can make. Neither
    // reaches the branch or the repository.
    let log = std::fs::read_to_string(
        s.fx.root
            .path()
            .join(format!(".airlock/runs/{id}/agent.log")),
    )
    .unwrap();
    assert!(
        log.contains("can't create .git/config: Read-only file system"),
        "{log}"
    );
    assert!(log.lines().any(|l| l == "post-checkout"), "{log}");
    assert!(!patch.contains(".git/"), "{patch}");
    let tree = git(&s.repo, &["ls-tree", "-r", "--name-only", &branch]);
    assert_eq!(tree, "a.txt\nb.txt\n");
    assert_eq!(std::fs::read(s.repo.join(".git/config")).unwrap(), config);
    assert!(!s.repo.join(".git/hooks/post-checkout").exists());
    assert_eq!(hooks(), hooks_before);
}

#[test]
fn check_names_the_file_line_and_fix() {
    let s = Sched::new();
    let root = s.fx.root.path();
    std::fs::create_dir_all(root.join("schedules")).unwrap();
    s.fx.root.write(
        "schedules/a.yaml",
        "env: tiny\nrepository: repo\ncommand: [\"true\"]\ncron: \"0 25 * * *\"\n",
    );
    s.fx.root.write("schedules/b.yaml", "env: tiny\nrepository: repo\ncommand: [\"true\"]\ncron: \"@daily\"\ntimezone: Mars/Olympus\n");
    s.fx.root.write(
        "schedules/c.yaml",
        "env: tinny\nrepository: repo\ncommand: [\"true\"]\ncron: \"@hourly\"\n",
    );
    let out = s.airlock().args(["schedule", "check"]).run().code(78);
    let err = out.stderr();
    assert!(
        err.contains("schedules/a.yaml:4:7: cron: bad cron expression \"0 25 * * *\""),
        "{err}"
    );
    assert!(err.contains("schedules/b.yaml:5:11: timezone: unknown time zone \"Mars/Olympus\"\n  fix: use an IANA name"), "{err}");
    assert!(err.contains("schedules/c.yaml:1:6: env: no environment tinny: envs/tinny.yaml does not exist\n  fix: did you mean tiny?"), "{err}");
    assert_eq!(err.matches("\n  fix: ").count(), 3, "{err}");
    std::fs::remove_file(root.join("schedules/a.yaml")).unwrap();
    std::fs::remove_file(root.join("schedules/b.yaml")).unwrap();
    s.fx.root.write("schedules/c.yaml", "env: tiny\nrepository: repo\ncommand: [\"true\"]\ncron: \"30 2 * * *\"\ntimezone: Europe/Berlin\n");
    s.airlock()
        .args(["schedule", "check"])
        .run()
        .success()
        .stdout_has("ok c: 30 2 * * * (Europe/Berlin), next ");
    s.airlock()
        .args([
            "schedule",
            "next",
            "c",
            "--count",
            "3",
            "--after",
            "2026-03-27T12:00:00Z",
        ])
        .run()
        .success()
        .stdout_is(
            "2026-03-28T02:30:00+01:00\n2026-03-29T03:00:00+02:00\n2026-03-30T02:30:00+02:00\n",
        );
    s.airlock().args(["schedule", "pause", "c"]).run().success();
    s.airlock()
        .args(["schedule", "ls"])
        .run()
        .success()
        .stdout_has("paused");
    s.airlock()
        .args(["schedule", "resume", "c"])
        .run()
        .success();
    let ls = s
        .airlock()
        .args(["schedule", "ls"])
        .run()
        .success()
        .stdout();
    assert!(ls.contains(" active") && !ls.contains("paused"), "{ls}");
}

/// The independent implementation `schedule next` is held to: Python's `croniter`, in a
/// venv under the target folder (pip uses its own configuration to find the package).
fn croniter_python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("croniter-venv");
    let python = venv.join("bin/python");
    let has = |p: &Path| {
        Command::new(p)
            .args(["-c", "import croniter"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "python3 -m venv failed (apt-get install python3-venv)"
        );
        let out = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "croniter"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install croniter: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(has(&python));
    }
    python
}

/// Reads cases (expr, zone, after, count, airlock's times) on stdin; prints, for each,
/// croniter's next times, each flagged when it is the second occurrence of a wall-clock time
/// a fall-back transition repeats (zoneinfo's fold=1 offset), and airlock's times, each
/// flagged when it is the very instant of a spring-forward transition (the offset one second
/// earlier is smaller). Both flags come from Python's tz code, not airlock's.
const ORACLE: &str = r#"
import json, sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from croniter import croniter

out = []
for c in json.load(sys.stdin):
    fields = c["expr"].split()
    # airlock's sixth field is seconds FIRST; croniter's is seconds LAST.
    expr = " ".join(fields[1:] + fields[:1]) if len(fields) == 6 else c["expr"]
    tz = ZoneInfo(c["zone"])
    start = datetime.fromisoformat(c["after"].replace("Z", "+00:00")).astimezone(tz)
    it = croniter(expr, start)
    times = []
    for _ in range(c["count"]):
        t = it.get_next(datetime)
        wall = t.replace(tzinfo=None)
        first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
        repeat = first.utcoffset() != second.utcoffset() and t.utcoffset() == second.utcoffset()
        times.append([t.isoformat(), repeat])
    ours = []
    for a in c["ours"]:
        t = datetime.fromisoformat(a)
        before = (t - timedelta(seconds=1)).astimezone(tz)
        ours.append([a, before.utcoffset() < t.astimezone(tz).utcoffset()])
    out.append([times, ours])
json.dump(out, sys.stdout)
"#;

const EXPRESSIONS: &[&str] = &[
    "* * * * *",
    "*/5 * * * *",
    "*/15 * * * *",
    "*/20 * * * *",
    "0 * * * *",
    "30 * * * *",
    "5,35 * * * *",
    "0 */2 * * *",
    "0 1-3 * * *",
    "0-10/5 2 * * *",
    "*/10 2 * * *",
    "0 2 * * *",
    "15 2 * * *",
    "30 2 * * *",
    "59 1 * * *",
    "30 1 * * *",
    "0 3 * * *",
    "30 3 * * *",
    "0 0 * * *",
    "0 12 * * *",
    "45 23 * * *",
    "0 6,18 * * *",
    "0 0 29 * *",
    "0 0 30 * *",
    "0 0 31 * *",
    "0 12 29-31 * *",
    "30 2 31 * *",
    "0 0 28-31 2 *",
    "0 0 29 2 *",
    "0 0 L * *",
    "0 0 1 * *",
    "0 0 1,15 * *",
    "0 0 31 */2 *",
    "0 0 13 * 5",
    "0 0 * * 0",
    "0 0 * * 1-5",
    "30 2 * * 1-5",
    "0 9 * * MON",
    "0 2 * * SUN",
    "0 0 * * 6,0",
    "0 0 * * 5#2",
    "0 0 * 2 *",
    "@hourly",
    "@daily",
    "@weekly",
    "0 30 2 * * *",
    "*/30 * * * * *",
    "15 */30 * * * *",
    "0 0 */6 * * *",
    "30 0 0 * * *",
    "0 0 2 * * *",
    "*/30 * 2 * * *",
    "0 0 0 29-31 * *",
];

/// Every difference from croniter, by case: what it is, and the times it concerns. Two
/// kinds, both airlock's documented DST rules (schedules/README.md), on purpose:
/// - `repeated`: croniter also fires the second occurrence of a wall-clock time a fall-back
///   transition repeats; airlock fires a repeated time once;
/// - `skipped`: a wall-clock time the spring-forward transition skips; airlock fires it at
///   the first valid instant after it (the transition), croniter not at all.
const DIFFERENCES: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "*/15 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "*/15 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:00:00-05:00"],
    ),
    (
        "*/20 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00", "2026-10-25T02:20:00+01:00"],
    ),
    (
        "*/20 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:00:00-05:00", "2026-11-01T01:20:00-05:00"],
    ),
    (
        "0 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "0 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:00:00-05:00"],
    ),
    (
        "30 * * * *",
        "Europe/Berlin",
        "2026-03-29T00:00:00Z",
        "skipped",
        &["2026-03-29T03:00:00+02:00"],
    ),
    (
        "30 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:30:00+01:00"],
    ),
    (
        "30 * * * *",
        "America/New_York",
        "2026-03-08T06:00:00Z",
        "skipped",
        &["2026-03-08T03:00:00-04:00"],
    ),
    (
        "30 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:30:00-05:00"],
    ),
    (
        "5,35 * * * *",
        "Europe/Berlin",
        "2026-03-29T00:00:00Z",
        "skipped",
        &["2026-03-29T03:00:00+02:00"],
    ),
    (
        "5,35 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:05:00+01:00", "2026-10-25T02:35:00+01:00"],
    ),
    (
        "5,35 * * * *",
        "America/New_York",
        "2026-03-08T06:00:00Z",
        "skipped",
        &["2026-03-08T03:00:00-04:00"],
    ),
    (
        "5,35 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:05:00-05:00", "2026-11-01T01:35:00-05:00"],
    ),
    (
        "0 */2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "0 1-3 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "0 1-3 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "0 1-3 * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:00:00-05:00"],
    ),
    (
        "0 1-3 * * *",
        "America/New_York",
        "2026-10-31T16:00:00Z",
        "repeated",
        &["2026-11-01T01:00:00-05:00"],
    ),
    (
        "0-10/5 2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &[
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:05:00+01:00",
            "2026-10-25T02:10:00+01:00",
        ],
    ),
    (
        "0-10/5 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &[
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:05:00+01:00",
            "2026-10-25T02:10:00+01:00",
        ],
    ),
    (
        "0 2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "0 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "15 2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:15:00+01:00"],
    ),
    (
        "15 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &["2026-10-25T02:15:00+01:00"],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:30:00+01:00"],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &["2026-10-25T02:30:00+01:00"],
    ),
    (
        "59 1 * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:59:00-05:00"],
    ),
    (
        "59 1 * * *",
        "America/New_York",
        "2026-10-31T16:00:00Z",
        "repeated",
        &["2026-11-01T01:59:00-05:00"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:30:00-05:00"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T16:00:00Z",
        "repeated",
        &["2026-11-01T01:30:00-05:00"],
    ),
    (
        "0 2 * * SUN",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "0 2 * * SUN",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "@hourly",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "@hourly",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:00:00-05:00"],
    ),
    (
        "0 30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:30:00+01:00"],
    ),
    (
        "0 30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &["2026-10-25T02:30:00+01:00"],
    ),
    (
        "15 */30 * * * *",
        "Europe/Berlin",
        "2026-03-29T00:00:00Z",
        "skipped",
        &["2026-03-29T03:00:00+02:00"],
    ),
    (
        "15 */30 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:15+01:00", "2026-10-25T02:30:15+01:00"],
    ),
    (
        "15 */30 * * * *",
        "America/New_York",
        "2026-03-08T06:00:00Z",
        "skipped",
        &["2026-03-08T03:00:00-04:00"],
    ),
    (
        "15 */30 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        "repeated",
        &["2026-11-01T01:00:15-05:00", "2026-11-01T01:30:15-05:00"],
    ),
    (
        "0 0 2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
    (
        "0 0 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "repeated",
        &["2026-10-25T02:00:00+01:00"],
    ),
];

#[test]
fn next_agrees_with_croniter_except_where_the_dst_rules_differ_on_purpose() {
    let python = croniter_python();
    let root = crate::harness::Root::new();
    root.write("envs/tiny.yaml", TINY);
    std::fs::create_dir_all(root.path().join("repo/.git")).unwrap();
    let zones: &[(&str, &[&str])] = &[
        // Europe/Berlin: spring forward 2026-03-29 01:00Z, fall back 2026-10-25 01:00Z.
        (
            "Europe/Berlin",
            &[
                "2026-03-29T00:00:00Z",
                "2026-03-28T12:00:00Z",
                "2026-10-24T23:30:00Z",
                "2026-10-24T12:00:00Z",
                "2026-01-28T12:00:00Z",
                "2028-02-27T12:00:00Z",
                "2026-04-28T12:00:00Z",
            ],
        ),
        // America/New_York: spring forward 2026-03-08 07:00Z, fall back 2026-11-01 06:00Z.
        (
            "America/New_York",
            &[
                "2026-03-08T06:00:00Z",
                "2026-03-07T17:00:00Z",
                "2026-11-01T04:30:00Z",
                "2026-10-31T16:00:00Z",
                "2026-01-28T12:00:00Z",
                "2028-02-27T12:00:00Z",
                "2026-04-28T12:00:00Z",
            ],
        ),
        // Asia/Tokyo: no DST; the same instants as Berlin.
        (
            "Asia/Tokyo",
            &[
                "2026-03-29T00:00:00Z",
                "2026-03-28T12:00:00Z",
                "2026-10-24T23:30:00Z",
                "2026-10-24T12:00:00Z",
                "2026-01-28T12:00:00Z",
                "2028-02-27T12:00:00Z",
                "2026-04-28T12:00:00Z",
            ],
        ),
    ];
    const COUNT: usize = 6;
    let mut cases = Vec::new();
    for (i, expr) in EXPRESSIONS.iter().enumerate() {
        for (j, (zone, starts)) in zones.iter().enumerate() {
            let name = format!("c{i}z{j}");
            root.write(
                &format!("schedules/{name}.yaml"),
                format!("env: tiny\nrepository: repo\ncommand: [\"true\"]\ncron: \"{expr}\"\ntimezone: {zone}\n"),
            );
            for after in *starts {
                cases.push((name.clone(), *expr, *zone, *after));
            }
        }
    }
    let ours: Vec<Vec<String>> = cases
        .iter()
        .map(|(name, expr, zone, after)| {
            let times: Vec<String> = Test::new()
                .root(&root)
                .args([
                    "schedule",
                    "next",
                    name,
                    "--count",
                    &COUNT.to_string(),
                    "--after",
                    after,
                ])
                .run()
                .success()
                .stdout()
                .lines()
                .map(str::to_string)
                .collect();
            assert_eq!(times.len(), COUNT, "{expr} {zone} {after}");
            times
        })
        .collect();
    let input: Vec<serde_json::Value> = cases
        .iter()
        .zip(&ours)
        .map(|((_, expr, zone, after), ours)| serde_json::json!({"expr": expr, "zone": zone, "after": after, "count": COUNT, "ours": ours}))
        .collect();
    let mut child = Command::new(&python)
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    type Flagged = Vec<(String, bool)>;
    let oracle: Vec<(Flagged, Flagged)> = serde_json::from_slice(&out.stdout).unwrap();

    let mut differences: Vec<(String, String, String, String, Vec<String>)> = Vec::new();
    let mut compared = 0;
    for ((_, expr, zone, after), (theirs, ours)) in cases.iter().zip(&oracle) {
        let theirs_set: Vec<&String> = theirs.iter().map(|(t, _)| t).collect();
        let repeated: Vec<String> = theirs
            .iter()
            .filter(|(_, r)| *r)
            .map(|(t, _)| t.clone())
            .collect();
        let skipped: Vec<String> = ours
            .iter()
            .filter(|(t, at_transition)| *at_transition && !theirs_set.contains(&t))
            .map(|(t, _)| t.clone())
            .collect();
        // Without those, the two lists must be the same times in the same order (as far as
        // the shorter one goes).
        let a: Vec<&String> = ours
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !skipped.contains(t))
            .collect();
        let b: Vec<&String> = theirs
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !repeated.contains(t))
            .collect();
        let n = a.len().min(b.len());
        assert!(n >= COUNT / 2, "{expr} {zone} {after}");
        assert_eq!(
            a[..n],
            b[..n],
            "{expr} in {zone} after {after}: airlock {ours:?}, croniter {theirs:?}"
        );
        compared += 1;
        for (kind, times) in [("repeated", repeated), ("skipped", skipped)] {
            if !times.is_empty() {
                differences.push((
                    expr.to_string(),
                    zone.to_string(),
                    after.to_string(),
                    kind.to_string(),
                    times,
                ));
            }
        }
    }
    assert!(compared >= 50 * 3, "{compared}");
    let listed: Vec<(String, String, String, String, Vec<String>)> = DIFFERENCES
        .iter()
        .map(|(e, z, a, k, t)| {
            (
                e.to_string(),
                z.to_string(),
                a.to_string(),
                k.to_string(),
                t.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect();
    if differences != listed {
        let mut table = String::new();
        for (e, z, a, k, t) in &differences {
            table.push_str(&format!("    ({e:?}, {z:?}, {a:?}, {k:?}, &{t:?}),\n"));
        }
        panic!("the differences from croniter are not the ones listed; they are:\n{table}");
    }
    // Both DST zones have both kinds, the zone without DST has none.
    for zone in ["Europe/Berlin", "America/New_York"] {
        for kind in ["repeated", "skipped"] {
            assert!(
                differences.iter().any(|d| d.1 == zone && d.3 == kind),
                "{zone} {kind}"
            );
        }
    }
    assert!(!differences.iter().any(|d| d.1 == "Asia/Tokyo"));
}

#[test]
fn timeout_stops_the_run_and_on_failure_gets_its_names() {
    let s = Sched::new();
    let seen = s.fx.root.path().join("on-failure.txt");
    s.schedule(&format!(
        "command: [\"sleep\", \"60\"]\ncron: \"*/2 * * * * *\"\ntimeout: 3s\non_failure: [\"sh\", \"-c\", \"echo \\\"$AIRLOCK_SCHEDULE $AIRLOCK_RUN_ID $AIRLOCK_OUTCOME $AIRLOCK_RECORD {{outcome}}\\\" >> {}\"]\n",
        seen.display()
    ));
    let d = s.start();
    let id = run_id_in(&d.wait_for(|l| l.contains(" t: fire "), 30));
    let ended = d.wait_for(|l| l.contains(&format!("run {id} ended: ")), 60);
    let (_, lines, _) = d.stop();
    assert!(
        ended.contains(&format!("run {id} ended: timed out (exit 124)")),
        "{lines:#?}"
    );
    let r = s.report(&id);
    assert_eq!(r["outcome"], "timed_out");
    assert_eq!(r["exit_code"], 124);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("the schedule's timeout (3s)"),
        "{r}"
    );
    assert_run_gone(&id);
    let record =
        s.fx.root
            .path()
            .join(format!(".airlock/runs/{id}"))
            .canonicalize()
            .unwrap();
    let first = std::fs::read_to_string(&seen).unwrap();
    let first = first.lines().next().unwrap();
    assert_eq!(
        first,
        format!("t {id} timed_out {} timed_out", record.display())
    );
}

#[test]
fn tick_fires_what_is_due_and_waits_for_it() {
    let s = Sched::new();
    s.schedule("command: [\"true\"]\ncron: \"* * * * * *\"\n");
    // The first tick only starts the schedule's clock: nothing before it is due.
    s.airlock()
        .args(["schedule", "tick"])
        .run()
        .success()
        .stdout_is("");
    std::thread::sleep(Duration::from_millis(2100));
    let out = s.airlock().args(["schedule", "tick"]).run().success();
    let lines: Vec<String> = out.stdout().lines().map(str::to_string).collect();
    // Two or more fires fell since the first tick: the newest runs, the older are missed.
    assert!(
        lines[0].contains(" t: missed ")
            && lines[0].ends_with("(the scheduler fell behind; only the newest fire runs)"),
        "{lines:#?}"
    );
    assert!(lines[1].contains(" t: fire "), "{lines:#?}");
    let id = run_id_in(&lines[1]);
    assert!(
        lines[2].ends_with(&format!("t: run {id} ended: succeeded (exit 0)")),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(s.report(&id)["outcome"], "succeeded");
    assert_run_gone(&id);
    // Paused: the next tick fires nothing, and says so.
    s.airlock().args(["schedule", "pause", "t"]).run().success();
    std::thread::sleep(Duration::from_millis(1100));
    let out = s
        .airlock()
        .args(["schedule", "tick"])
        .run()
        .success()
        .stdout();
    assert!(
        out.contains("(paused)") && !out.contains(" t: fire "),
        "{out}"
    );
}

#[test]
fn sighup_reloads_the_definitions() {
    let s = Sched::new();
    s.schedule("command: [\"true\"]\ncron: \"0 0 1 1 *\"\n");
    let d = s.start();
    s.schedule("command: [\"true\"]\ncron: \"*/2 * * * * *\"\n");
    d.signal("-HUP");
    d.wait_for(|l| l.ends_with(" reloaded: t"), 30);
    let id = run_id_in(&d.wait_for(|l| l.contains(" t: fire "), 30));
    d.wait_for(|l| l.contains(&format!("run {id} ended: succeeded")), 60);
    // A broken file keeps the old set.
    s.schedule("command: [\"true\"]\ncron: \"*/2 * * * * * * *\"\n");
    d.signal("-HUP");
    std::thread::sleep(Duration::from_secs(1));
    let (code, _, err) = d.stop();
    assert_eq!(code, 0);
    assert!(
        err.contains(
            "airlock: reload refused: the schedules stay as they were until the files are fixed"
        ),
        "{err}"
    );
    assert!(
        err.contains("schedules/t.yaml:5:7: cron: the cron expression"),
        "{err}"
    );
}

#[test]
fn sigterm_to_tick_stops_its_run_cleanly() {
    let s = Sched::new();
    s.schedule("command: [\"sleep\", \"60\"]\ncron: \"* * * * * *\"\n");
    s.airlock().args(["schedule", "tick"]).run().success();
    std::thread::sleep(Duration::from_millis(1100));
    let log = s.fx.root.path().join("tick.log");
    let child = s
        .airlock()
        .args(["schedule", "tick"])
        .command()
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let d = Daemon { child, log };
    let id = run_id_in(&d.wait_for(|l| l.contains(" t: fire "), 30));
    let deadline = Instant::now() + Duration::from_secs(60);
    while docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=airlock.run={id}"),
        "--filter",
        "label=airlock.phase=agent",
    ])
    .trim()
    .is_empty()
    {
        assert!(Instant::now() < deadline, "no agent container for {id}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, lines, _) = d.stop();
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!("t: SIGTERM received: stopping run {id}"))),
        "{lines:#?}"
    );
    let r = s.report(&id);
    assert_eq!(r["outcome"], "interrupted");
    assert_eq!(r["exit_code"], 143);
    assert_run_gone(&id);
    assert!(s
        .airlock()
        .args(["schedule", "ls"])
        .run()
        .success()
        .stdout()
        .contains(" active\n"));
}

#[test]
fn a_fire_that_cannot_check_out_is_recorded_with_the_others() {
    let s = Sched::new();
    s.fx.root.write(
        "schedules/t.yaml",
        "env: tiny\nrepository: repo\nref: no-such-branch\ncommand: [\"true\"]\ncron: \"* * * * * *\"\n",
    );
    s.airlock()
        .args(["schedule", "check"])
        .run()
        .code(78)
        .stderr_has("ref: git rev-parse no-such-branch");
    s.airlock().args(["schedule", "tick"]).run().success();
    std::thread::sleep(Duration::from_millis(1100));
    let out = s
        .airlock()
        .args(["schedule", "tick"])
        .run()
        .success()
        .stdout();
    let ended = out
        .lines()
        .find(|l| l.contains(" ended: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        ended.contains(" ended: config error (exit 78); checkout of no-such-branch: "),
        "{ended}"
    );
    let id = run_id_in(ended);
    let listed = s
        .airlock()
        .args(["runs", "ls", "--schedule", "t"])
        .run()
        .success()
        .stdout();
    let row = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        row.contains(" config_error ") && row.contains(" 78 "),
        "{row}"
    );
    assert_eq!(s.report(&id)["labels"]["schedule"], "t");
}
