//! Faults around a run, against the real engine: SIGINT/SIGTERM and kill -9 at each point of
//! a run (image build, setup, boundary; the agent phase is covered in `run.rs`), the engine
//! connection dropping mid-run, a record folder that can't be written, and hostile variable
//! names and values.
//!
//! Tools the tests bring: [`Running`] (a started run whose stderr is read line by line, so a
//! signal can be sent at a precise point), [`Relay`] (a Unix-socket relay between airlock and
//! the engine that the test can cut, and that counts connections), and [`Mount`] (a tmpfs
//! unmounted on drop, even when a test panics).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sha2::{Digest, Sha256};

use crate::harness::{assert_run_gone, contains, Fixture, SECRET, TINY};
use crate::harness::{docker, Test};

/// How long any wait in this module may take before the test gives up (a hang guard, not a
/// timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

/// A started `airlock run`: its stderr is collected and handed over line by line.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Running {
    fn start(test: Test) -> Running {
        let mut child = test
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn airlock");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(String::new()));
        let log = seen.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Running {
            child,
            lines,
            seen,
            reader: Some(reader),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until airlock prints a line containing `needle`.
    #[track_caller]
    fn wait_line(&self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "airlock ended before printing {needle:?}:\n{}",
                        self.stderr()
                    )
                }
            }
            assert!(
                Instant::now() < deadline,
                "no line {needle:?} in time:\n{}",
                self.stderr()
            );
        }
    }

    fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Wait for the end (killing airlock if it hangs); its exit code and all its stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("airlock did not end:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status.code(), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave an airlock running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The running container of `phase` that airlock process `pid` owns: its run id.
fn wait_for_container(run: &Running, phase: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = docker(&[
            "ps",
            "--filter",
            &format!("label=airlock.phase={phase}"),
            "--format",
            "{{.Label \"airlock.owner\"}} {{.Label \"airlock.run\"}}",
        ]);
        let mine = format!(":{}:", run.pid());
        if let Some(line) = out.lines().find(|l| l.contains(&mine)) {
            return line.split_whitespace().nth(1).unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no running {phase} container:\n{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_id(report: &serde_json::Value) -> String {
    report["run_id"].as_str().expect("run_id").to_string()
}

fn unique() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What `airlock gc RUN-ID` (with the real engine) removes of one run; then nothing is left.
#[track_caller]
fn gc_removes(run_id: &str) -> String {
    let out = Test::new().args(["gc", run_id]).run().success();
    assert_run_gone(run_id);
    out.stdout()
}

// ---------------------------------------------------------------------------------------
// Image build

/// A fixture whose config root has a real `images/` folder holding one image whose build
/// sleeps in a `RUN` step; returns the folder's name and the step's unique token.
fn slow_image(f: &Fixture) -> (String, String) {
    let token = unique();
    let images = f.root.path().join("images");
    std::fs::remove_file(&images).unwrap(); // the harness links the repository's images/
    let name = format!("slow-{token}");
    f.root.write(
        &format!("images/{name}/Dockerfile"),
        format!("FROM airlock/busybox\nRUN echo {token} && sleep 30\n"),
    );
    f.env("t", &format!("image: {name}\nsetup: echo setup-ran\n"));
    (name, token)
}

/// Ids of containers (any label) whose command holds `token`.
fn containers_with(token: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.Command}}",
    ])
    .lines()
    .filter(|l| l.contains(token))
    .map(str::to_string)
    .collect()
}

/// The build's `RUN` step is running: its container's names.
fn wait_for_build_step(run: &Running, token: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(line) = containers_with(token).first() {
            return line.split('\t').nth(1).unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the build step never started:\n{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The engine removes a cancelled build's step container on its own, shortly after the
/// client goes away: wait for that (a hang guard, not a timing assertion).
#[track_caller]
fn assert_build_container_goes(token: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !containers_with(token).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the interrupted build left its step container: {:?}",
            containers_with(token)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigint_or_sigterm_during_an_image_build_stops_it_leaves_nothing_and_records_it() {
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let f = Fixture::new();
        let (name, token) = slow_image(&f);
        let run = Running::start(f.run("t", &["true"]));
        wait_for_build_step(&run, &token);
        run.signal(sig);
        let (status, stderr) = run.finish();
        assert_eq!(status, Some(code), "{sig}:\n{stderr}");
        assert!(!stderr.contains("setup-ran"), "{sig}: setup ran:\n{stderr}");
        let r = f.report();
        assert_eq!(r["outcome"], "interrupted", "{sig}: {r:#}");
        assert_eq!(r["exit_code"], code);
        assert!(r["setup"]["started"].is_null(), "{sig}: {r:#}");
        assert_build_container_goes(&token);
        assert!(
            docker(&["images", "-q", &format!("airlock/{name}")])
                .trim()
                .is_empty(),
            "{sig}: a half-built image was tagged"
        );
        assert_run_gone(&run_id(&r));
    }
}

#[test]
fn kill_9_during_an_image_build_leaves_nothing_and_gc_spares_the_build() {
    let f = Fixture::new();
    let (_, token) = slow_image(&f);
    let run = Running::start(f.run("t", &["true"]));
    let step = wait_for_build_step(&run, &token);
    // The step's container inherits airlock.managed from its base image, but it belongs to
    // a build in progress, not to a dead run: gc must not list it.
    let dry = Test::new().args(["gc", "--dry-run"]).run().success();
    assert!(
        !dry.stdout().contains(&step),
        "gc would remove a running build's container {step}:\n{}",
        dry.stdout()
    );
    run.signal(Signal::SIGKILL);
    let (status, _) = run.finish();
    assert_eq!(status, None, "killed by a signal");
    // The record was written when the run started, and says the run never ended.
    let r = f.report();
    assert_eq!(r["outcome"], "incomplete", "{r:#}");
    assert!(r["finished"].is_null(), "{r:#}");
    assert_build_container_goes(&token);
    let out = gc_removes(&run_id(&r));
    assert!(out.contains("nothing to remove"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Setup phase

#[test]
fn sigint_or_sigterm_during_setup_stops_it_removes_everything_and_records_it() {
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let f = Fixture::new();
        f.env(
            "t",
            "image: tiny\nsetup: |\n  echo setup-running\n  sleep 30\n",
        );
        let run = Running::start(f.run("t", &["sh", "-c", "echo AGENT-RAN"]));
        run.wait_line("setup | setup-running");
        let id = wait_for_container(&run, "setup");
        run.signal(sig);
        let (status, stderr) = run.finish();
        assert_eq!(status, Some(code), "{sig}:\n{stderr}");
        assert!(!stderr.contains("AGENT-RAN"), "{sig}:\n{stderr}");
        let r = f.report();
        assert_eq!(r["outcome"], "interrupted", "{sig}: {r:#}");
        assert_eq!(r["run_id"], id.as_str());
        assert!(r["agent"]["started"].is_null(), "{sig}: {r:#}");
        assert!(contains(&f.record_file("setup.log"), b"setup-running"));
        assert_run_gone(&id);
    }
}

#[test]
fn kill_9_during_setup_leaves_only_what_gc_run_id_removes() {
    let f = Fixture::new();
    f.env(
        "t",
        "image: tiny\nsetup: |\n  echo setup-running\n  sleep 30\n",
    );
    let run = Running::start(f.run("t", &["true"]));
    run.wait_line("setup | setup-running");
    let id = wait_for_container(&run, "setup");
    run.signal(Signal::SIGKILL);
    run.finish();
    let r = f.report();
    assert_eq!(r["outcome"], "incomplete", "{r:#}");
    assert_eq!(r["run_id"], id.as_str());
    assert!(r["exit_code"].is_null(), "{r:#}");
    let out = gc_removes(&id);
    for what in [
        format!("container airlock-{id}-setup"),
        format!("network airlock-{id}-setup"),
        format!("volume airlock-{id}-workspace"),
    ] {
        assert!(out.contains(&format!("removed {what}")), "{what}:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------
// Boundary

/// An environment whose setup leaves 300 MB in a persisted folder, so the boundary takes a
/// while to read and scan it.
fn big_boundary(f: &Fixture) {
    f.secret("API_TOKEN", SECRET.as_bytes());
    f.env(
        "t",
        "image: tiny\nsecrets: [API_TOKEN]\npersist: [/opt/big]\nsetup: |\n  mkdir -p /opt/big\n  dd if=/dev/zero of=/opt/big/blob bs=1M count=300 2>/dev/null\n",
    );
}

const BOUNDARY_LINE: &str = "boundary: checking what crosses";

#[test]
fn sigint_or_sigterm_during_the_boundary_stops_it_removes_everything_and_records_it() {
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let f = Fixture::new();
        big_boundary(&f);
        let run = Running::start(f.run("t", &["sh", "-c", "echo AGENT-RAN"]));
        run.wait_line(BOUNDARY_LINE);
        run.signal(sig);
        let (status, stderr) = run.finish();
        assert_eq!(status, Some(code), "{sig}:\n{stderr}");
        assert!(!stderr.contains("AGENT-RAN"), "{sig}:\n{stderr}");
        let r = f.report();
        assert_eq!(r["outcome"], "interrupted", "{sig}: {r:#}");
        // Setup had ended; the boundary had not.
        assert_eq!(r["setup"]["exit_code"], 0, "{sig}: {r:#}");
        assert!(r["boundary"]["duration_ms"].is_null(), "{sig}: {r:#}");
        assert!(r["agent"]["started"].is_null(), "{sig}: {r:#}");
        assert_run_gone(&run_id(&r));
    }
}

#[test]
fn kill_9_during_the_boundary_leaves_only_what_gc_run_id_removes() {
    let f = Fixture::new();
    big_boundary(&f);
    let run = Running::start(f.run("t", &["true"]));
    run.wait_line(BOUNDARY_LINE);
    run.signal(Signal::SIGKILL);
    run.finish();
    let r = f.report();
    assert_eq!(r["outcome"], "incomplete", "{r:#}");
    // The record was brought up to date when setup ended.
    assert_eq!(r["setup"]["exit_code"], 0, "{r:#}");
    assert!(r["boundary"]["duration_ms"].is_null(), "{r:#}");
    let id = run_id(&r);
    let out = gc_removes(&id);
    assert!(
        out.contains(&format!("removed volume airlock-{id}-persist0")),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// The engine connection

/// A Unix-socket relay to the real engine: airlock talks to it through `DOCKER_HOST`; the
/// test can count the connections made and cut them all (closing every open one and
/// refusing new ones).
struct Relay {
    dir: tempfile::TempDir,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
    accepted: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

/// The engine the docker CLI uses here.
fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

impl Relay {
    fn start() -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("engine.sock")).unwrap();
        listener.set_nonblocking(true).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (c, o, a) = (cut.clone(), open.clone(), accepted.clone());
        let acceptor = std::thread::spawn(move || {
            // Returning drops the listener: connections are refused from then on.
            while !c.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("relay accept: {e}"),
                };
                a.fetch_add(1, Ordering::SeqCst);
                client.set_nonblocking(false).unwrap();
                let Ok(engine) = UnixStream::connect(engine_socket()) else {
                    continue;
                };
                let mut open = o.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(engine.try_clone().unwrap());
                pump(client.try_clone().unwrap(), engine.try_clone().unwrap());
                pump(engine, client);
            }
        });
        Relay {
            dir,
            cut,
            open,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("engine.sock").display())
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The engine "goes away": every open connection is closed, new ones are refused.
    fn cut(&mut self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            t.join().unwrap();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copy one direction of a relayed connection.
fn pump(mut from: UnixStream, mut to: UnixStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// The lines airlock printed as errors.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("airlock: error:"))
        .collect()
}

#[test]
fn the_engine_going_away_mid_run_is_one_clear_error_exit_125_a_record_and_gc_cleans_up() {
    let f = Fixture::new();
    f.env("t", TINY);
    let mut relay = Relay::start();
    let run = Running::start(
        f.run("t", &["sh", "-c", "echo agent-running; sleep 60"])
            .env("DOCKER_HOST", relay.host()),
    );
    run.wait_line("agent | agent-running");
    assert!(relay.connections() > 0, "airlock went through the relay");
    relay.cut();
    let (status, stderr) = run.finish();
    assert_eq!(status, Some(125), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    assert!(errors[0].contains("Docker engine"), "{stderr}");
    let r = f.report();
    assert_eq!(r["outcome"], "engine_error", "{r:#}");
    assert_eq!(r["exit_code"], 125);
    let id = run_id(&r);
    assert!(
        stderr.contains(&format!("airlock gc {id}")),
        "airlock says how to remove what is left:\n{stderr}"
    );
    // The agent container is still there (airlock could not remove it); gc with the real
    // engine can.
    let out = gc_removes(&id);
    assert!(
        out.contains(&format!("removed container airlock-{id}-agent")),
        "{out}"
    );
}

#[test]
fn an_engine_that_is_not_there_is_one_line_naming_it_with_a_fix_and_exit_125() {
    let f = Fixture::new();
    f.env("t", TINY);
    let missing = f.root.path().join("no-engine.sock");
    let out = f
        .run("t", &["true"])
        .env("DOCKER_HOST", format!("unix://{}", missing.display()))
        .run()
        .code(125);
    let stderr = out.stderr();
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&missing.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("fix: "), "{stderr}");
    assert!(stderr.contains("DOCKER_HOST"), "{stderr}");
    assert_eq!(f.report()["outcome"], "engine_error");
}

// ---------------------------------------------------------------------------------------
// The record folder

/// A tmpfs mounted on a temp folder, unmounted on drop (also when the test panics).
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(options: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "airlock-test"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mount -t tmpfs -o {options} failed");
        Mount { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `airlock run t -w WS --out OUT -- true` through a relay that counts engine connections.
fn run_with_out(f: &Fixture, out: &Path, relay: &Relay) -> crate::harness::Output {
    Test::new()
        .root(&f.root)
        .env("AIRLOCK_IDENTITY", &f.identity)
        .env("DOCKER_HOST", relay.host())
        .args(["run", "t", "-w"])
        .arg(&f.ws)
        .arg("--out")
        .arg(out)
        .args(["--", "true"])
        .run()
}

#[track_caller]
fn assert_refused_before_the_engine(f: &Fixture, out: &Path, why: &str) {
    let relay = Relay::start();
    let res = run_with_out(f, out, &relay).code(78);
    let stderr = res.stderr();
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&out.display().to_string()) && errors[0].contains(why),
        "the error names the folder and why:\n{stderr}"
    );
    assert!(stderr.contains("fix: pass --out"), "{stderr}");
    assert_eq!(
        relay.connections(),
        0,
        "airlock reached the engine before refusing the record folder"
    );
}

#[test]
fn a_read_only_record_folder_is_refused_before_the_engine_is_touched() {
    let f = Fixture::new();
    f.env("t", TINY);
    // Root ignores permission bits, not a read-only file system.
    let ro = Mount::tmpfs("ro,size=1m");
    assert_refused_before_the_engine(&f, &ro.path().join("run"), "Read-only file system");
    assert_refused_before_the_engine(&f, ro.path(), "Read-only file system");
}

#[test]
fn a_full_disk_under_the_record_folder_is_refused_before_the_engine_is_touched() {
    let f = Fixture::new();
    f.env("t", TINY);
    let full = Mount::tmpfs("size=64k");
    let mut fill = std::fs::File::create(full.path().join("fill")).unwrap();
    let chunk = [0u8; 4096];
    while fill.write_all(&chunk).and_then(|_| fill.sync_all()).is_ok() {}
    assert!(
        std::fs::write(full.path().join("probe"), [0u8; 4096]).is_err(),
        "the tmpfs is really full"
    );
    assert_refused_before_the_engine(&f, &full.path().join("run"), "No space left on device");
    assert_refused_before_the_engine(&f, full.path(), "No space left on device");
}

// ---------------------------------------------------------------------------------------
// Hostile names and values

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A value of `len` bytes full of shell syntax.
fn hostile_filler(len: usize) -> String {
    let unit = "$(touch /workspace/pwned-long)`touch /workspace/pwned-long2`'\"\\ ${HOME} ";
    unit.repeat(len / unit.len() + 1)[..len].to_string()
}

/// The kernel takes one `NAME=value` string of at most 128 KiB, its NUL included.
const MAX_ARG_STRLEN: usize = 128 * 1024;

#[test]
fn hostile_values_arrive_verbatim_in_both_phases_and_are_never_run_by_a_shell() {
    let f = Fixture::new();
    let long_name = "H_LONG";
    let mut plain = vec![
        ("H_CMD", "$(touch /workspace/pwned-cmd)".to_string()),
        ("H_TICK", "`touch /workspace/pwned-tick`".to_string()),
        (
            "H_QUOTES",
            "it's \"double\" and 'single' \\ $HOME ${PATH} $((1+1)) ; touch /workspace/pwned-q"
                .to_string(),
        ),
        (
            "H_LINES",
            "one\ntwo; touch /workspace/pwned-nl\n\n".to_string(),
        ),
    ];
    // The longest value a variable can have.
    plain.push((
        long_name,
        hostile_filler(MAX_ARG_STRLEN - 1 - long_name.len() - 1),
    ));
    let secret = "$(touch /workspace/pwned-secret)'\"x7Kq\n`touch /workspace/pwned-secret2` zQ9";
    f.secret("H_SECRET", secret.as_bytes());
    let mut yaml = String::from("image: tiny\nsecrets: [H_SECRET]\nenv:\n");
    for (k, v) in &plain {
        // A JSON string is a YAML double-quoted scalar.
        yaml.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
    }
    // Each variable's hash as each phase sees it. The image has no printenv: `eval` reads
    // the variable named by `$n` (a fixed identifier of this test), and the value it copies
    // is not parsed again.
    let hashes = "for n in \"$@\"; do printf '%s %s ' \"$PHASE\" \"$n\"; eval \"v=\\${$n}\"; printf '%s' \"$v\" | sha256sum; done; \
                  echo \"$PHASE pwned: $(ls -a /workspace /tmp | grep -c pwned || true)\"";
    yaml.push_str(&format!(
        "setup: |\n  cat hostile.env >> \"$AIRLOCK_ENV\"\n  PHASE=setup sh -c {} sh H_CMD H_TICK H_QUOTES H_LINES H_LONG H_SECRET\n",
        String::from_utf8(airlock::run::setup::shell_quote(hashes.as_bytes())).unwrap()
    ));
    f.env("t", &yaml);
    // What setup hands over through $AIRLOCK_ENV: data too, never evaluated.
    let mut from_setup = vec![
        ("E_CMD", "$(touch /workspace/pwned-envfile)".to_string()),
        ("E_TICK", "`touch /workspace/pwned-envfile2`".to_string()),
        ("E_QUOTES", "it's \"q\" \\n ${HOME} '".to_string()),
    ];
    let e_long = "E_LONG";
    from_setup.push((
        e_long,
        hostile_filler(MAX_ARG_STRLEN - 1 - e_long.len() - 1),
    ));
    let mut envfile = String::new();
    for (k, v) in &from_setup {
        envfile.push_str(&format!("{k}={v}\n"));
    }
    let multi = "a $(touch /workspace/pwned-envfile3)\n`b`\n'c\"";
    envfile.push_str(&format!("E_MULTI<<EOF\n{multi}\nEOF\n"));
    from_setup.push(("E_MULTI", multi.to_string()));
    f.ws_file("hostile.env", &envfile);

    // The agent command is argv, not a shell string: a hostile argument is data too.
    let argv_value = "$(touch /workspace/pwned-argv)";
    let agent = format!(
        "export PHASE=agent; printf '%s' \"$1\" > argv.txt; shift; {hashes}; printf 'agent argv '; sha256sum < argv.txt"
    );
    // `sh -c SCRIPT sh ARGV NAMES...`: after `shift`, "$@" holds the names. The agent phase
    // must not have the secret: its hash there is the empty value's.
    let mut agent_cmd = vec!["sh", "-c", agent.as_str(), "sh", argv_value];
    agent_cmd.extend(plain.iter().chain(from_setup.iter()).map(|(k, _)| *k));
    agent_cmd.push("H_SECRET");
    let out = f.run("t", &agent_cmd).run().success();
    let stderr = out.stderr();
    for (k, v) in &plain {
        let want = format!("setup {k} {}", sha256_hex(v.as_bytes()));
        assert!(stderr.contains(&want), "setup saw {k} changed:\n{stderr}");
        let want = format!("agent {k} {}", sha256_hex(v.as_bytes()));
        assert!(stderr.contains(&want), "agent saw {k} changed:\n{stderr}");
    }
    let want = format!("setup H_SECRET {}", sha256_hex(secret.as_bytes()));
    assert!(stderr.contains(&want), "setup saw the secret changed");
    for (k, v) in &from_setup {
        let want = format!("agent {k} {}", sha256_hex(v.as_bytes()));
        assert!(stderr.contains(&want), "agent saw {k} changed:\n{stderr}");
    }
    let want = format!("agent argv {}", sha256_hex(argv_value.as_bytes()));
    assert!(stderr.contains(&want), "{stderr}");
    assert!(stderr.contains("setup | setup pwned: 0"), "{stderr}");
    assert!(stderr.contains("agent | agent pwned: 0"), "{stderr}");
    let want = format!("agent H_SECRET {}", sha256_hex(b""));
    assert!(stderr.contains(&want), "the agent phase had the secret");
    let patch = f.record_file("changes.patch");
    assert!(
        contains(&patch, b"b/argv.txt"),
        "the agent's change is recorded"
    );
    assert!(
        contains(&patch, argv_value.as_bytes()),
        "argv.txt holds the argument"
    );
    assert!(!contains(&patch, b" b/pwned"), "a pwned file was made");
    out.never_prints(secret.as_bytes());
}

#[test]
fn a_plain_value_one_byte_over_the_kernel_limit_is_refused_with_a_fix() {
    let f = Fixture::new();
    let v = "x".repeat(MAX_ARG_STRLEN - "V=".len());
    f.env("t", &format!("image: tiny\nenv:\n  V: {v}\n"));
    f.run("t", &["true"])
        .run()
        .code(78)
        .stderr_has("the value of V is")
        .stderr_has("128 KiB");
}

#[test]
fn secret_names_that_shadow_shell_or_loader_variables_are_refused_with_a_fix() {
    for name in ["PATH", "HOME", "LD_PRELOAD"] {
        let f = Fixture::new();
        f.secret(name, SECRET.as_bytes());
        f.env("t", &format!("image: tiny\nsecrets: [{name}]\n"));
        let out = f
            .run("t", &["true"])
            .run()
            .code(78)
            .stderr_has(&format!("a secret named {name}"))
            .stderr_has(&format!("MY_{name}"));
        out.never_prints(SECRET.as_bytes());
    }
}

#[test]
fn hostile_airlock_env_lines_refuse_the_run_naming_the_line() {
    let long = format!("OVER={}", "y".repeat(MAX_ARG_STRLEN - "OVER=".len()));
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "loader",
            b"OK=1\nLD_PRELOAD=/workspace/evil.so\n",
            "line 2: `LD_PRELOAD` is reserved",
        ),
        (
            "bash startup file",
            b"BASH_ENV=/workspace/evil.sh\n",
            "line 1: `BASH_ENV` is reserved",
        ),
        (
            "space in the name",
            b"BAD NAME=x\n",
            "line 1: `BAD NAME` is not a valid variable name",
        ),
        (
            "command as a name",
            b"$(touch /workspace/pwned)=x\n",
            "is not a valid variable name",
        ),
        ("NUL", b"A=x\0y\n", "line 1: contains a NUL byte"),
        (
            "unclosed heredoc",
            b"M<<EOF\n$(touch /workspace/pwned)\n",
            "never closed",
        ),
        (
            "over the kernel limit",
            long.as_bytes(),
            "line 1: the value of `OVER`",
        ),
    ];
    for (what, lines, message) in cases {
        let f = Fixture::new();
        f.ws_file("lines.env", lines);
        f.env(
            "t",
            "image: tiny\nsetup: cat lines.env >> \"$AIRLOCK_ENV\"\n",
        );
        let out = f.run("t", &["sh", "-c", "echo AGENT-RAN"]).run();
        assert_eq!(out.code, 81, "{what}:\n{}", out.stderr());
        let stderr = out.stderr();
        assert!(
            stderr.contains(message),
            "{what}: lacks {message:?}:\n{stderr}"
        );
        assert!(!stderr.contains("AGENT-RAN"), "{what}");
        let r = f.report();
        assert_eq!(r["outcome"], "boundary_refused", "{what}");
        assert_run_gone(&run_id(&r));
    }
}
