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
    for id in &ids {
        let r = s.report(id);
        assert_eq!(r["labels"]["schedule"], "t");
        assert!(
            r["outcome"] == "succeeded" || r["outcome"] == "interrupted",
            "{r}"
        );
    }
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
    s.schedule("command: [\"sleep\", \"60\"]\ncron: \"*/2 * * * * *\"\n");
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
}

#[test]
fn result_branch_holds_the_runs_patch_and_the_working_tree_is_untouched() {
    let s = Sched::new();
    s.schedule("command: [\"sh\", \"-c\", \"echo two > a.txt; echo new > b.txt\"]\ncron: \"*/2 * * * * *\"\nresult: branch\n");
    std::fs::write(s.repo.join("a.txt"), "live edit\n").unwrap();
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
