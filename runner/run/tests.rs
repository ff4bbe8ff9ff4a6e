//! The run library against the in-process fake engine: every way a run can end, its record,
//! its events and its cleanup, with no Docker at all (`cargo test --lib` needs none).

use std::sync::Arc;
use std::time::Duration;

use super::events::{Memory, Stop};
use super::{execute, Finished, Options, Task};
use crate::engine::fake::{FakeEngine, Play, Script};
use crate::outcome::{Outcome, Signal};
use crate::root::ConfigRoot;

const SECRET: &[u8] = b"fake-secret-Qw7Zr2Lp9x";

/// A config root with one environment (on the fake image) and, when asked, one secret.
struct Setup {
    dir: tempfile::TempDir,
    identity: std::path::PathBuf,
}

impl Setup {
    fn new(env_yaml: &str, with_secret: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["envs", "secrets", "ws"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("ws/readme.txt"), "hello\n").unwrap();
        std::fs::write(dir.path().join("envs/t.yaml"), env_yaml).unwrap();
        let identity = dir.path().join("identity.txt");
        if with_secret {
            let ids = crate::secrets::identity::create_identity(&identity).unwrap();
            let keys = ids.public_keys().join("\n");
            std::fs::write(
                dir.path().join("secrets/recipients.txt"),
                format!("{keys}\n"),
            )
            .unwrap();
            crate::secrets::Store::open(&dir.path().join("secrets"))
                .set("TOKEN", SECRET)
                .unwrap();
        }
        Setup { dir, identity }
    }

    async fn run(&self, engine: Arc<FakeEngine>, stop: Stop) -> (Finished, Vec<String>) {
        let root = ConfigRoot::at(self.dir.path()).unwrap();
        let env =
            crate::environment::load_in(Some(&root), &self.dir.path().join("envs/t.yaml")).unwrap();
        let task = Task {
            env,
            workspace: self.dir.path().join("ws"),
            command: vec!["true".into()],
        };
        let events = Arc::new(Memory::default());
        let mut opts = Options::new(engine);
        opts.events = events.clone();
        opts.stop = stop;
        opts.identity = Some(self.identity.clone());
        opts.out = Some(self.dir.path().join("out"));
        let done = execute(&root, task, opts).await;
        (done, events.lines())
    }

    fn report(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("out/report.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

const ENV: &str = "image: fake:latest\nlimits:\n  setup_timeout: 2s\n  agent_timeout: 2s\n";

fn play(output: &str, exit: i64) -> Play {
    Play {
        output: vec![(false, output.as_bytes().to_vec())],
        exit,
        ..Play::default()
    }
}

async fn ends(script: Script, stop: Stop) -> (Setup, Arc<FakeEngine>, Finished, Vec<String>) {
    let setup = Setup::new(ENV, false);
    let engine = Arc::new(FakeEngine::new(script));
    let (done, events) = setup.run(engine.clone(), stop).await;
    (setup, engine, done, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_succeeds_reports_its_steps_in_order_and_leaves_nothing() {
    let script = Script {
        setup: play("installing\n", 0),
        agent: Play {
            writes: vec![("/workspace/new.txt".into(), b"made\n".to_vec())],
            ..play("working\n", 0)
        },
        ..Script::default()
    };
    let (setup, engine, done, events) = ends(script, Stop::new()).await;
    assert_eq!(
        done.report.outcome,
        Outcome::Succeeded,
        "{:?}",
        done.report.error
    );
    assert_eq!(done.exit_code, 0);
    assert_eq!(engine.leftovers(), Vec::<String>::new());
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "started", "setup", "setup", "setup", "note", "boundary", "agent", "agent", "agent",
            "finished"
        ],
        "{events:#?}"
    );
    assert_eq!(events[2], "setup Stdout installing");
    assert_eq!(events[7], "agent Stdout working");
    assert_eq!(events.last().unwrap(), "finished succeeded 0");
    let patch = std::fs::read_to_string(setup.dir.path().join("out/changes.patch")).unwrap();
    assert!(patch.contains("+made"), "{patch}");
    assert_eq!(setup.report()["outcome"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_keeps_its_exit_code() {
    let script = Script {
        agent: play("", 3),
        ..Script::default()
    };
    let (_, engine, done, _) = ends(script, Stop::new()).await;
    assert_eq!(done.report.outcome, Outcome::Failed);
    assert_eq!(done.exit_code, 3);
    assert!(engine.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_failure_stops_before_the_agent_phase() {
    let script = Script {
        setup: play("boom\n", 2),
        ..Script::default()
    };
    let (_, engine, done, events) = ends(script, Stop::new()).await;
    assert_eq!(done.report.outcome, Outcome::SetupFailed);
    assert_eq!(done.exit_code, 80);
    assert!(done
        .report
        .error
        .as_deref()
        .unwrap()
        .contains("exited with code 2"));
    assert!(
        !events.iter().any(|e| e.starts_with("agent")),
        "{events:#?}"
    );
    assert!(engine.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_that_hangs_times_out() {
    let script = Script {
        setup: Play {
            hang: true,
            ..Play::default()
        },
        ..Script::default()
    };
    let (_, engine, done, _) = ends(script, Stop::new()).await;
    assert_eq!(done.report.outcome, Outcome::SetupFailed);
    assert!(done.report.error.as_deref().unwrap().contains("timed out"));
    assert!(engine.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_the_workspace_is_refused_at_the_boundary_and_never_in_an_event() {
    let setup = Setup::new(&format!("{ENV}secrets: [TOKEN]\n"), true);
    let mut out = b"token is ".to_vec();
    out.extend_from_slice(SECRET);
    out.push(b'\n');
    let script = Script {
        setup: Play {
            output: vec![(true, out)],
            writes: vec![("/workspace/leak.txt".into(), SECRET.to_vec())],
            ..Play::default()
        },
        ..Script::default()
    };
    let engine = Arc::new(FakeEngine::new(script));
    let (done, events) = setup.run(engine.clone(), Stop::new()).await;
    assert_eq!(
        done.report.outcome,
        Outcome::BoundaryRefused,
        "{:?}",
        done.report.error
    );
    assert_eq!(done.exit_code, 81);
    let secret = String::from_utf8_lossy(SECRET).to_string();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("setup Stderr token is")),
        "{events:#?}"
    );
    for e in &events {
        assert!(!e.contains(&secret), "an event holds the secret: {e}");
    }
    let log = std::fs::read_to_string(setup.dir.path().join("out/setup.log")).unwrap();
    assert!(!log.contains(&secret));
    assert!(engine.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_hangs_times_out_with_a_fix() {
    let script = Script {
        agent: Play {
            hang: true,
            ..Play::default()
        },
        ..Script::default()
    };
    let (_, engine, done, _) = ends(script, Stop::new()).await;
    assert_eq!(done.report.outcome, Outcome::TimedOut);
    assert_eq!(done.exit_code, 124);
    assert!(done
        .report
        .error
        .as_deref()
        .unwrap()
        .contains("fix: raise limits.agent_timeout"));
    assert!(engine.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_its_own_outcome() {
    let script = Script {
        agent: Play {
            exit: 137,
            oom_killed: true,
            ..Play::default()
        },
        ..Script::default()
    };
    let (_, _, done, _) = ends(script, Stop::new()).await;
    assert_eq!(done.report.outcome, Outcome::OutOfMemory);
    assert_eq!(done.exit_code, 137);
}

/// Cancelling through the handle removes everything and records `cancelled` (83); a signal
/// does the same as `interrupted` (143).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_interrupt_through_the_handle() {
    for (reason, outcome, code) in [
        (None, Outcome::Cancelled, 83),
        (Some(Signal::Term), Outcome::Interrupted, 143),
    ] {
        let script = Script {
            agent: Play {
                hang: true,
                ..Play::default()
            },
            ..Script::default()
        };
        let stop = Stop::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            match reason {
                None => trigger.cancel(),
                Some(s) => trigger.interrupt(s),
            }
        });
        let (setup, engine, done, events) = ends(script, stop).await;
        assert_eq!(done.report.outcome, outcome);
        assert_eq!(done.exit_code, code);
        assert!(engine.leftovers().is_empty(), "{:?}", engine.leftovers());
        assert_eq!(setup.report()["outcome"], outcome.word());
        assert!(
            events.iter().any(|e| e.contains("stopping run")),
            "{events:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_engine_mid_run_is_an_engine_error() {
    let script = Script {
        lose_at: Some("create agent".into()),
        ..Script::default()
    };
    let (setup, _, done, _) = ends(script, Stop::new()).await;
    assert_eq!(done.report.outcome, Outcome::EngineError);
    assert_eq!(done.exit_code, 125);
    assert!(done
        .report
        .error
        .as_deref()
        .unwrap()
        .starts_with("lost the connection"));
    assert_eq!(setup.report()["outcome"], "engine_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_that_no_longer_fits_is_apply_failed_and_touches_nothing() {
    let setup = Setup::new(ENV, false);
    let path = setup.dir.path().join("ws/readme.txt");
    let script = Script {
        agent: Play {
            writes: vec![("/workspace/readme.txt".into(), b"agent\n".to_vec())],
            exit: 5,
            ..Play::default()
        },
        host_edit: Some((path.clone(), b"host\n".to_vec())),
        ..Script::default()
    };
    let engine = Arc::new(FakeEngine::new(script));
    let root = ConfigRoot::at(setup.dir.path()).unwrap();
    let env =
        crate::environment::load_in(Some(&root), &setup.dir.path().join("envs/t.yaml")).unwrap();
    let task = Task {
        env,
        workspace: setup.dir.path().join("ws"),
        command: vec!["true".into()],
    };
    let mut opts = Options::new(engine.clone());
    opts.apply = true;
    opts.out = Some(setup.dir.path().join("out"));
    let done = execute(&root, task, opts).await;
    assert_eq!(
        done.report.outcome,
        Outcome::ApplyFailed,
        "{:?}",
        done.report.error
    );
    assert_eq!(done.exit_code, 82);
    assert_eq!(done.report.agent.exit_code, Some(5));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "host\n");
    assert!(engine.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_workspace_is_a_config_error_before_any_object() {
    let setup = Setup::new(ENV, false);
    let engine = Arc::new(FakeEngine::new(Script::default()));
    let root = ConfigRoot::at(setup.dir.path()).unwrap();
    let env =
        crate::environment::load_in(Some(&root), &setup.dir.path().join("envs/t.yaml")).unwrap();
    let task = Task {
        env,
        workspace: setup.dir.path().join("nope"),
        command: vec!["true".into()],
    };
    let mut opts = Options::new(engine.clone());
    opts.out = Some(setup.dir.path().join("out"));
    let done = execute(&root, task, opts).await;
    assert_eq!(done.report.outcome, Outcome::ConfigError);
    assert_eq!(done.exit_code, 78);
    assert!(done.report.error.unwrap().contains("does not exist"));
    assert!(engine.leftovers().is_empty());
}

/// The log keeps the output as it came (a line longer than the event limit stays one line);
/// events get an endless line in bounded pieces, stdout and stderr apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_keeps_long_lines_whole_and_events_split_them() {
    let long = "x".repeat(100 * 1024);
    let script = Script {
        agent: Play {
            output: vec![
                (false, long.clone().into_bytes()),
                (true, b"oops\n".to_vec()),
            ],
            ..Play::default()
        },
        ..Script::default()
    };
    let (setup, _, done, events) = ends(script, Stop::new()).await;
    assert_eq!(done.report.outcome, Outcome::Succeeded);
    let log = std::fs::read_to_string(setup.dir.path().join("out/agent.log")).unwrap();
    assert!(log.contains(&long), "the log split the line");
    let pieces = events
        .iter()
        .filter(|e| e.starts_with("agent Stdout x"))
        .count();
    assert_eq!(
        pieces, 2,
        "a 100 KiB unended line reaches events as two pieces"
    );
    assert!(
        events.iter().any(|e| e == "agent Stderr oops"),
        "{events:#?}"
    );
}

/// Changed files past `limits.output_size` end the run `output_too_large` (85) before
/// anything is copied back: no patch, the agent's code kept, nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_limit_is_output_too_large_with_no_patch() {
    let setup = Setup::new(
        "image: fake:latest\nlimits:\n  agent_timeout: 2s\n  output_size: 1k\n",
        false,
    );
    let script = Script {
        agent: Play {
            writes: vec![
                ("/workspace/big.bin".into(), vec![0u8; 2048]),
                ("/workspace/small.txt".into(), b"ok".to_vec()),
            ],
            exit: 3,
            ..Play::default()
        },
        ..Script::default()
    };
    let engine = Arc::new(FakeEngine::new(script));
    let (done, _) = setup.run(engine.clone(), Stop::new()).await;
    assert_eq!(
        done.report.outcome,
        Outcome::OutputTooLarge,
        "{:?}",
        done.report.error
    );
    assert_eq!(done.exit_code, 85);
    assert_eq!(done.report.agent.exit_code, Some(3));
    let error = done.report.error.clone().unwrap();
    assert!(
        error.contains("hold 2 KiB (the largest: big.bin, 2 KiB)"),
        "{error}"
    );
    assert!(error.contains("limits.output_size (1 KiB)"), "{error}");
    assert!(!setup.dir.path().join("out/changes.patch").exists());
    assert!(engine.leftovers().is_empty());
}
