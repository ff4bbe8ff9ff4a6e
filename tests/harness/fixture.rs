//! The shared fixture of the run tests: a config root with the tiny image, an age identity
//! made by the real `age-keygen`, secrets stored by the real `age` CLI, a workspace folder,
//! and `airlock run` invocations on them.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{docker, tiny_image, Root, Test};

/// A secret value long and unusual enough that finding it anywhere is a leak.
pub const SECRET: &str = "s3cr3t-Zq8vK2pLmN4xW7yT";

/// A config root with the tiny image, an age identity and one secret (made with the real
/// `age` CLI), plus a workspace folder.
pub struct Fixture {
    pub root: Root,
    pub identity: PathBuf,
    pub ws: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        tiny_image();
        let root = Root::new();
        let identity = root.path().join("home/identity.txt");
        let out = Command::new("age-keygen")
            .arg("-o")
            .arg(&identity)
            .output()
            .expect("age-keygen");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = String::from_utf8_lossy(&out.stderr)
            .trim()
            .trim_start_matches("Public key: ")
            .to_string();
        root.write("secrets/recipients.txt", format!("{public}\n"));
        let ws = root.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        Fixture { root, identity, ws }
    }

    /// Store a secret with the age CLI (`age -a -R secrets/recipients.txt`).
    pub fn secret(&self, name: &str, value: &[u8]) {
        let mut child = Command::new("age")
            .args(["-a", "-R"])
            .arg(self.root.path().join("secrets/recipients.txt"))
            .arg("-o")
            .arg(self.root.path().join(format!("secrets/{name}.age")))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(value).unwrap();
        assert!(child.wait().unwrap().success());
    }

    pub fn env(&self, name: &str, yaml: &str) {
        self.root.write(&format!("envs/{name}.yaml"), yaml);
    }

    pub fn ws_file(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let p = self.ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    pub fn out(&self) -> PathBuf {
        self.root.path().join("out")
    }

    /// `airlock run ENV -w ws --out out -- COMMAND...`
    pub fn run(&self, env: &str, command: &[&str]) -> Test {
        self.run_with(env, &[], command)
    }

    /// `airlock run ENV -w ws --out out FLAGS... -- COMMAND...`
    pub fn run_with(&self, env: &str, flags: &[&str], command: &[&str]) -> Test {
        Test::new()
            .root(&self.root)
            .env("AIRLOCK_IDENTITY", &self.identity)
            .args(["run", env, "-w"])
            .arg(&self.ws)
            .arg("--out")
            .arg(self.out())
            // The fixture's record folder holds the latest run's record.
            .arg("--force")
            .args(flags)
            .arg("--")
            .args(command)
    }

    pub fn report(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.out().join("report.json")).expect("report.json");
        serde_json::from_str(&text).unwrap()
    }

    pub fn record_file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.out().join(name)).unwrap_or_default()
    }
}

/// No container, network or volume of this run is left.
#[track_caller]
pub fn assert_run_gone(run_id: &str) {
    let filter = format!("label=airlock.run={run_id}");
    let left = [
        docker(&["ps", "-aq", "--filter", &filter]),
        docker(&["network", "ls", "-q", "--filter", &filter]),
        docker(&["volume", "ls", "-q", "--filter", &filter]),
    ]
    .concat();
    assert!(
        left.trim().is_empty(),
        "run {run_id} left objects behind:\n{left}"
    );
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub const TINY: &str = "image: tiny\n";

/// The running container of `phase` that airlock process `pid` made: (container id, run id).
pub fn running_container_of(child: &mut std::process::Child, phase: &str) -> (String, String) {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = docker(&[
            "ps",
            "--no-trunc",
            "--filter",
            &format!("label=airlock.phase={phase}"),
            "--format",
            "{{.ID}} {{.Label \"airlock.owner\"}} {{.Label \"airlock.run\"}}",
        ]);
        if let Some(line) = out.lines().find(|l| l.contains(&format!(":{pid}:"))) {
            let mut words = line.split_whitespace();
            let id = words.next().unwrap().to_string();
            let run = words.nth(1).unwrap().to_string();
            return (id, run);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its {phase} phase was seen running"
        );
        assert!(Instant::now() < deadline, "the {phase} phase never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}
