//! A small builder around the `airlock` binary, in the style of `just`'s test harness:
//!
//! ```ignore
//! let root = Root::new();
//! root.write("envs/x.yaml", "image: tiny\n");
//! Test::new().root(&root).args(["env", "check", "x"]).run().success().stdout_has("tiny");
//! ```
//!
//! Every test gets its own config root in a temp folder (with the repository's `images/`
//! linked in, so image builds are shared) and its own `HOME`, so nothing a test does touches
//! the user's real files.
#![allow(dead_code)]

mod fixture;
pub use fixture::{assert_run_gone, contains, running_container_of, Fixture, SECRET, TINY};

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

/// The repository this test binary was built from.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn airlock_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlock"))
}

/// A throwaway config root: `envs/`, `secrets/`, `images/` (linked to the repository's) and a
/// private `home/`.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        let dir = tempfile::Builder::new()
            .prefix("airlock-test-")
            .tempdir()
            .unwrap();
        for sub in ["envs", "secrets", "home"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(repo().join("images"), dir.path().join("images")).unwrap();
        Root { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Write a file under the root (folders made as needed); returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap()
    }
}

/// One invocation of `airlock`.
pub struct Test {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
        }
    }

    /// Use this root: `AIRLOCK_ROOT`, and its private `HOME`.
    pub fn root(self, root: &Root) -> Test {
        self.env("AIRLOCK_ROOT", root.path())
            .env("HOME", root.home())
            .cwd(root.path())
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Test {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Test {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Test {
        self.stdin = Some(data.into());
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Test {
        self.cwd = Some(dir.into());
        self
    }

    /// The command this test would run (for tests that need to signal it while it runs).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(airlock_bin());
        cmd.args(&self.args);
        cmd.env_remove("AIRLOCK_ROOT")
            .env_remove("AIRLOCK_IDENTITY")
            .env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    pub fn run(self) -> Output {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn airlock");
        if let Some(data) = self.stdin {
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        let out = child.wait_with_output().expect("wait for airlock");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
            args: self.args,
        }
    }
}

/// What one invocation printed and how it ended, with chainable assertions that show both
/// streams on failure.
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    args: Vec<OsString>,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "airlock {:?}\n--- exit code: {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args,
            self.code,
            self.stdout(),
            self.stderr()
        )
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Output {
        assert_eq!(
            self.code,
            expected,
            "unexpected exit code\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn success(self) -> Output {
        self.code(0)
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Output {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Output {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Standard output is exactly `expected`: for tests where the message is the point.
    #[track_caller]
    pub fn stdout_is(self, expected: &str) -> Output {
        assert_eq!(
            self.stdout(),
            expected,
            "stdout differs\n{}",
            self.describe()
        );
        self
    }

    /// Standard error is exactly `expected`.
    #[track_caller]
    pub fn stderr_is(self, expected: &str) -> Output {
        assert_eq!(
            self.stderr(),
            expected,
            "stderr differs\n{}",
            self.describe()
        );
        self
    }

    /// One line of standard error is exactly `expected` (the others are progress).
    #[track_caller]
    pub fn stderr_line(self, expected: &str) -> Output {
        assert!(
            self.stderr().lines().any(|l| l == expected),
            "no stderr line is exactly {expected:?}\n{}",
            self.describe()
        );
        self
    }

    /// Neither stream contains `needle` (as bytes).
    #[track_caller]
    pub fn never_prints(self, needle: &[u8]) -> Output {
        let found = |hay: &[u8]| hay.windows(needle.len().max(1)).any(|w| w == needle);
        assert!(
            !found(&self.stdout) && !found(&self.stderr),
            "output contains {:?}\n{}",
            String::from_utf8_lossy(needle),
            self.describe()
        );
        self
    }
}

/// Build the small busybox image tests use, once per test process.
pub fn tiny_image() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        Test::new()
            .env("AIRLOCK_ROOT", repo())
            .args(["image", "build", "tiny"])
            .run()
            .success();
    });
}

/// Build the Debian base image (bash, git), once per test process: for tests that need
/// what busybox lacks. The first build ever on a machine bootstraps Debian (minutes).
pub fn base_image() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        Test::new()
            .env("AIRLOCK_ROOT", repo())
            .args(["image", "build", "base"])
            .run()
            .success();
    });
}

/// Run a docker CLI command and return its stdout (tests use the CLI as an independent
/// witness of the engine's state).
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every container, network and volume labelled airlock.managed (ids).
pub fn managed_objects() -> Vec<String> {
    let mut all = Vec::new();
    for kind in [["ps", "-aq"], ["network", "ls"], ["volume", "ls"]] {
        let mut args: Vec<&str> = kind.to_vec();
        if kind[0] != "ps" {
            args.push("-q");
        }
        args.extend(["--filter", "label=airlock.managed"]);
        all.extend(docker(&args).lines().map(str::to_string));
    }
    all
}
