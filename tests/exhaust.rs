//! A hostile agent command trying to exhaust what it was given: processes, memory, `/tmp`,
//! the time limit, the output stream, airlock's own memory. Each test proves a limit holds,
//! the run still ends and is recorded, and nothing of the run is left in the engine.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock::record::LOG_CAP;
use airlock::run::drive::STOP_GRACE_SECS;

use crate::harness::{assert_run_gone, contains, Fixture, SECRET};

fn run_id(report: &serde_json::Value) -> String {
    report["run_id"]
        .as_str()
        .expect("report has a run id")
        .to_string()
}

/// The value of `KEY=<number>` in a log.
fn number_after(log: &str, key: &str) -> Option<u64> {
    let at = log.find(key)? + key.len();
    log[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[test]
fn a_fork_bomb_hits_the_pids_limit_and_the_run_still_ends_recorded() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nlimits:\n  pids: 64\n  cpus: 0.5\n  agent_timeout: 12s\n",
    );
    // Each bomb process forks two more, then holds its slot forever waiting with a builtin
    // (so the population stays at the limit instead of dying out). The main shell, using
    // only builtins (it can't fork any more either), samples how many processes its PID
    // namespace holds once a second, then waits forever: the time limit has to end it.
    let bomb = "mkfifo /tmp/tick; exec 3<>/tmp/tick; \
                b() { b & b & while :; do read -t 9 x <&3; done; }; (b) 2>/dev/null & \
                max=0; n=0; \
                while [ $n -lt 6 ]; do read -t 1 x <&3; set -- /proc/[0-9]*; \
                  [ $# -gt $max ] && max=$#; n=$((n+1)); done; \
                echo MAXPROCS=$max; \
                while :; do read -t 1 x <&3; done";
    let mut child = f
        .run("t", &["sh", "-c", bomb])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The host keeps working while the bomb goes off: it can still start processes.
    let mut host_forks = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the fork-bombed run never ended");
        let st = Command::new("true").status().expect("the host can fork");
        assert!(st.success());
        host_forks += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(host_forks > 0);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    let max = number_after(&stderr, "agent | MAXPROCS=")
        .unwrap_or_else(|| panic!("the agent reported no process count:\n{stderr}"));
    assert!(
        max <= 64,
        "the agent phase held {max} processes with limits.pids 64"
    );
    assert!(
        max > 32,
        "the bomb never got near the limit ({max} processes): the test proves nothing"
    );
    let r = f.report();
    assert_eq!(r["outcome"], "timed_out", "{r:#}");
    assert_eq!(r["exit_code"], 124);
    assert_eq!(r["agent"]["timed_out"], true);
    assert!(contains(&f.record_file("agent.log"), b"MAXPROCS="));
    assert_run_gone(&run_id(&r));
}

#[test]
fn a_memory_bomb_is_oom_killed_and_reported_as_out_of_memory() {
    let f = Fixture::new();
    f.env("t", "image: tiny\nlimits:\n  memory: 32m\n");
    // dd allocates its block size: 256 MiB against a 32 MiB limit.
    let out = f
        .run(
            "t",
            &[
                "sh",
                "-c",
                "echo allocating; dd if=/dev/zero of=/dev/null bs=256M count=1; exit $?",
            ],
        )
        .run()
        .code(137)
        .stderr_has("out of memory")
        .stderr_has("limits.memory: 32 MiB");
    drop(out);
    let r = f.report();
    assert_eq!(r["outcome"], "out_of_memory", "{r:#}");
    assert_eq!(r["exit_code"], 137);
    assert_eq!(r["agent"]["oom_killed"], true);
    assert_eq!(r["agent"]["exit_code"], 137);
    assert!(r["error"].as_str().unwrap().contains("limits.memory"));
    assert_run_gone(&run_id(&r));

    // Control: the same limit lets a small allocation through, and nothing says OOM.
    f.run(
        "t",
        &["sh", "-c", "dd if=/dev/zero of=/dev/null bs=4M count=1"],
    )
    .run()
    .success();
    let r = f.report();
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(r["agent"]["oom_killed"], false);

    // The setup phase has the same limit, and says so when it is hit.
    f.env(
        "s",
        "image: tiny\nsetup: dd if=/dev/zero of=/dev/null bs=256M count=1\nlimits:\n  memory: 32m\n",
    );
    f.run("s", &["true"])
        .run()
        .code(80)
        .stderr_has("out of memory");
    let r = f.report();
    assert_eq!(r["outcome"], "setup_failed");
    assert_eq!(r["setup"]["oom_killed"], true);
    assert!(r["agent"]["started"].is_null());
    assert_run_gone(&run_id(&r));
}

#[test]
fn filling_tmp_stops_at_its_size_and_the_run_completes() {
    let f = Fixture::new();
    f.env("t", "image: tiny\nlimits:\n  tmp_size: 8m\n");
    let fill = "dd if=/dev/zero of=/tmp/fill bs=1M count=64; echo DD_EXIT=$?; \
                echo TMP_BYTES=$(wc -c < /tmp/fill); echo still here > result.txt";
    let out = f
        .run("t", &["sh", "-c", fill])
        .run()
        .success()
        .stderr_has("No space left on device")
        .stderr_has("agent | DD_EXIT=1");
    let bytes = number_after(&out.stderr(), "agent | TMP_BYTES=").expect("TMP_BYTES");
    assert!(
        bytes > 0 && bytes <= 8 << 20,
        "/tmp took {bytes} bytes with tmp_size 8m"
    );
    let r = f.report();
    assert_eq!(r["outcome"], "succeeded");
    assert!(contains(&f.record_file("changes.patch"), b"still here"));
    assert_run_gone(&run_id(&r));
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let f = Fixture::new();
    f.env("t", "image: tiny\nlimits:\n  agent_timeout: 3s\n");
    f.run(
        "t",
        &["sh", "-c", "trap '' TERM; echo ignoring TERM; sleep 1000"],
    )
    .run()
    .code(124)
    .stderr_has("agent | ignoring TERM");
    let r = f.report();
    assert_eq!(r["outcome"], "timed_out", "{r:#}");
    assert_eq!(r["agent"]["timed_out"], true);
    // 137 = SIGKILL: SIGTERM was ignored, so only the kill after the grace ended it.
    assert_eq!(r["agent"]["exit_code"], 137);
    // It was given the whole grace period first (a lower bound, which can't flake).
    let ms = r["agent"]["duration_ms"].as_u64().unwrap();
    let floor = (3 + STOP_GRACE_SECS as u64) * 1000 - 500;
    assert!(
        ms >= floor,
        "the agent phase lasted {ms} ms: killed before the timeout plus the grace period"
    );
    assert_run_gone(&run_id(&r));
}

#[test]
fn a_background_child_holding_stdout_does_not_hang_either_phase() {
    let f = Fixture::new();
    // If airlock waited for the output stream to close, the sleeps would hold each phase
    // to its time limit: setup would fail (80), the agent phase would time out (124).
    f.env(
        "t",
        "image: tiny\nsetup: |\n  sleep 300 &\n  (while :; do echo tick; sleep 1; done) &\n  echo daemon started\nlimits:\n  setup_timeout: 45s\n  agent_timeout: 45s\n",
    );
    f.run("t", &["sh", "-c", "sleep 300 & echo done; exit 3"])
        .run()
        .code(3)
        .stderr_has("setup | daemon started")
        .stderr_has("agent | done");
    let r = f.report();
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["setup"]["timed_out"], false);
    assert_eq!(r["setup"]["exit_code"], 0);
    assert_eq!(r["agent"]["timed_out"], false);
    assert_eq!(r["agent"]["exit_code"], 3);
    assert_run_gone(&run_id(&r));
}

/// Peak resident memory (VmHWM) of a process, in KiB, while it lives.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_gigabyte_of_output_keeps_airlocks_memory_bounded_and_the_log_capped() {
    const GIB: u64 = 1 << 30;
    let f = Fixture::new();
    // A secret, so the redactor really scans every byte of the output.
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "t",
        "image: tiny\nsecrets: [API_TOKEN]\nsetup: test -n \"$API_TOKEN\"\nlimits:\n  agent_timeout: 5m\n",
    );
    // 1 MiB of 64-byte lines, written 1024 times.
    let flood = "yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa \
                 | head -c 1048576 > /tmp/block; i=0; \
                 while [ $i -lt 1024 ]; do cat /tmp/block; i=$((i+1)); done";
    // Quiet: in a debug build the console's per-character sanitising, not airlock's
    // memory, would dominate the time. The log and the redactor see every byte either way.
    let started = Instant::now();
    let mut child = f
        .run_with("t", &["--quiet"], &["sh", "-c", flood])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kib = 0;
    let mut samples = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak_kib = peak_kib.max(kib);
            samples += 1;
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the 1 GiB run never ended");
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    eprintln!(
        "1 GiB of agent output: {:.1} s, airlock peak RSS {} MiB ({samples} samples)",
        elapsed.as_secs_f64(),
        peak_kib / 1024
    );
    assert_eq!(status.code(), Some(0));
    assert!(samples > 10, "too few memory samples ({samples})");
    assert!(
        peak_kib < 200 * 1024,
        "airlock's peak RSS was {} MiB while passing 1 GiB of output",
        peak_kib / 1024
    );
    let r = f.report();
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert_eq!(r["agent"]["log_bytes_dropped"], GIB - LOG_CAP);
    let log = std::fs::read(f.out().join("agent.log")).unwrap();
    let note = format!(
        "\n[airlock: log capped at {LOG_CAP} bytes; {} more bytes not kept]\n",
        GIB - LOG_CAP
    );
    assert_eq!(log.len() as u64, LOG_CAP + note.len() as u64);
    assert!(log.ends_with(note.as_bytes()));
    assert!(log[..LOG_CAP as usize]
        .split(|&b| b == b'\n')
        .take(1000)
        .all(|l| l.is_empty() || l == &[b'a'; 63][..]));
    assert_run_gone(&run_id(&r));
}

/// A 300 MiB sparse file (8 KiB on the agent's disk; 2 GiB behaves the same, only slower) is
/// past `limits.output_size`: the run ends `output_too_large` (85) before anything is copied
/// to the host, with a reason, the agent's exit code, and nothing left behind. Under the limit, the same kind of file makes a patch.
#[test]
fn a_sparse_file_past_the_output_limit_ends_the_run_clearly_without_copying_it() {
    let f = Fixture::new();
    f.env("t", "image: tiny\nlimits:\n  agent_timeout: 60s\n");
    let out = f
        .run(
            "t",
            &[
                "sh",
                "-c",
                "truncate -s 300M /workspace/sparse.bin; echo done; exit 4",
            ],
        )
        .run()
        .code(85);
    out.stderr_line(
        "airlock: error: the agent phase's changed files hold 300 MiB (the largest: sparse.bin, 300 MiB), more than limits.output_size (256 MiB); nothing was copied back and there is no patch",
    );
    let r = f.report();
    assert_eq!(r["outcome"], "output_too_large");
    assert_eq!(r["agent"]["exit_code"], 4);
    assert!(r["patch"].is_null());
    assert!(!f.out().join("changes.patch").exists());
    assert_run_gone(r["run_id"].as_str().unwrap());

    // Under the limit (raised here), a sparse file is just a file in the patch.
    f.env(
        "t",
        "image: tiny\nlimits:\n  agent_timeout: 60s\n  output_size: 2m\n",
    );
    f.run(
        "t",
        &["truncate", "-s", "1M", "/workspace/small-sparse.bin"],
    )
    .run()
    .success();
    let patch = f.record_file("changes.patch");
    assert!(contains(&patch, b"small-sparse.bin"));
}
