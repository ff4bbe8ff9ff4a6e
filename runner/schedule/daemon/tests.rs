//! The loop with a clock the test sets and runs that end when the test says.

use std::sync::Mutex as StdMutex;

use tokio::sync::{mpsc, watch};

use super::*;
use crate::outcome::Outcome;
use crate::schedule::definition::{Missed, Overlap};
use crate::schedule::policy::tests::schedule;

struct TestClock {
    now: watch::Sender<Timestamp>,
}

#[async_trait]
impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }
    async fn sleep_until(&self, t: Timestamp) {
        let mut rx = self.now.subscribe();
        while *rx.borrow_and_update() < t {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Runs that go on until the test finishes them or they are stopped.
struct TestLauncher {
    started: mpsc::UnboundedSender<Firing>,
    finish: StdMutex<BTreeMap<String, tokio::sync::oneshot::Sender<()>>>,
}

#[async_trait]
impl Launcher for TestLauncher {
    async fn launch(&self, _s: &Schedule, f: &Firing, stop: Stop) -> Ended {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.finish.lock().unwrap().insert(f.run_id.clone(), tx);
        let _ = self.started.send(f.clone());
        let (outcome, code) = tokio::select! {
            _ = rx => (Outcome::Succeeded, 0),
            why = stop.stopped() => match why {
                crate::run::StopReason::Cancelled => (Outcome::Cancelled, 83),
                crate::run::StopReason::Signal(s) => (Outcome::Interrupted, s.exit_code()),
            },
        };
        Ended {
            outcome,
            exit_code: code,
            duration_ms: 0,
            patch_bytes: None,
            branch: None,
            note: None,
        }
    }
    async fn abandoned(&self, _s: Option<&Schedule>, _r: &InFlight, _now: Timestamp) -> Ended {
        Ended {
            outcome: Outcome::Abandoned,
            exit_code: 84,
            duration_ms: 0,
            patch_bytes: None,
            branch: None,
            note: None,
        }
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    clock: Arc<TestClock>,
    launcher: Arc<TestLauncher>,
    started: mpsc::UnboundedReceiver<Firing>,
    lines: Arc<StdMutex<Vec<String>>>,
    sched: Scheduler,
}

/// No test here waits more than a few seconds for anything.
async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(5), f)
        .await
        .expect("timed out")
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn bench(s: Schedule, start: &str, last: Option<&str>) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let (now, _) = watch::channel(t(start));
    let clock = Arc::new(TestClock { now });
    let (started_tx, started) = mpsc::unbounded_channel();
    let launcher = Arc::new(TestLauncher {
        started: started_tx,
        finish: Default::default(),
    });
    let lines: Arc<StdMutex<Vec<String>>> = Default::default();
    let l = lines.clone();
    let store = Store::new(dir.path().join("state.json"));
    if let Some(last) = last {
        store
            .update(|st| st.schedules.entry(s.name.clone()).or_default().last = Some(t(last)))
            .unwrap();
    }
    let sched = Scheduler::new(
        BTreeMap::from([(s.name.clone(), s)]),
        store,
        History::new(dir.path().join("history")),
        dir.path().join("runs"),
        dir.path().join("work"),
        clock.clone(),
        launcher.clone(),
        Arc::new(move |line| l.lock().unwrap().push(line)),
    );
    Bench {
        _dir: dir,
        clock,
        launcher,
        started,
        lines,
        sched,
    }
}

impl Bench {
    fn set(&self, now: &str) {
        self.clock.now.send_replace(t(now));
    }
    fn finish(&self, run_id: &str) {
        let tx = self.launcher.finish.lock().unwrap().remove(run_id).unwrap();
        tx.send(()).unwrap();
    }
    async fn ended(&mut self) -> String {
        within(self.sched.ended_rx.recv()).await.unwrap()
    }
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
    fn history(&self) -> Vec<history::Entry> {
        self.sched.history.read("t")
    }
}

fn with_overlap(o: Overlap) -> Schedule {
    let mut s = schedule("* * * * *", Missed::Skip, None);
    s.overlap = o;
    s
}

#[tokio::test]
async fn forbid_skips_while_a_run_is_going() {
    let mut b = bench(
        with_overlap(Overlap::Forbid),
        "2026-01-01T10:00:30Z",
        Some("2026-01-01T10:00:00Z"),
    );
    b.set("2026-01-01T10:01:00Z");
    b.sched.pass(Pass::Running).unwrap();
    let first = within(b.started.recv()).await.unwrap();
    assert_eq!(first.fire, t("2026-01-01T10:01:00Z"));
    b.set("2026-01-01T10:02:01Z");
    b.sched.pass(Pass::Running).unwrap();
    assert!(b.started.try_recv().is_err(), "a second run started");
    let skip = format!(
        "2026-01-01T10:02:01Z t: skip 2026-01-01T10:02:00+00:00 (run {} still going; overlap: forbid)",
        first.run_id
    );
    assert!(b.lines().contains(&skip), "{:#?}", b.lines());
    let h = b.history();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].kind, history::Kind::Skipped);
    assert_eq!(h[0].fire, t("2026-01-01T10:02:00Z"));
    // The state lists the run in flight until it ends.
    assert_eq!(
        b.sched.store.read().unwrap().schedules["t"].in_flight.len(),
        1
    );
    b.finish(&first.run_id);
    assert_eq!(b.ended().await, first.run_id);
    assert!(b.sched.store.read().unwrap().schedules["t"]
        .in_flight
        .is_empty());
    b.set("2026-01-01T10:03:00Z");
    b.sched.pass(Pass::Running).unwrap();
    assert_eq!(
        within(b.started.recv()).await.unwrap().fire,
        t("2026-01-01T10:03:00Z")
    );
    let h = b.history();
    assert_eq!(h[1].kind, history::Kind::Run);
    assert_eq!(h[1].outcome.as_deref(), Some("succeeded"));
}

#[tokio::test]
async fn replace_cancels_the_running_one() {
    let mut b = bench(
        with_overlap(Overlap::Replace),
        "2026-01-01T10:00:30Z",
        Some("2026-01-01T10:00:00Z"),
    );
    b.set("2026-01-01T10:01:00Z");
    b.sched.pass(Pass::Running).unwrap();
    let first = within(b.started.recv()).await.unwrap();
    b.set("2026-01-01T10:02:00Z");
    b.sched.pass(Pass::Running).unwrap();
    let second = within(b.started.recv()).await.unwrap();
    assert_ne!(first.run_id, second.run_id);
    assert_ne!(
        first.workspace, second.workspace,
        "two fires never share a workspace"
    );
    assert_eq!(b.ended().await, first.run_id);
    let h = b.history();
    assert_eq!(h[0].run_id.as_ref(), Some(&first.run_id));
    assert_eq!(h[0].outcome.as_deref(), Some("cancelled"));
    assert!(b
        .lines()
        .iter()
        .any(|l| l.ends_with(&format!("cancel run {} (overlap: replace)", first.run_id))));
    assert_eq!(
        b.sched.running_of("t"),
        std::slice::from_ref(&second.run_id)
    );
}

#[tokio::test]
async fn allow_overlaps() {
    let mut b = bench(
        with_overlap(Overlap::Allow),
        "2026-01-01T10:00:30Z",
        Some("2026-01-01T10:00:00Z"),
    );
    for m in ["01", "02", "03"] {
        b.set(&format!("2026-01-01T10:{m}:00Z"));
        b.sched.pass(Pass::Running).unwrap();
        within(b.started.recv()).await.unwrap();
    }
    assert_eq!(b.sched.running_of("t").len(), 3);
    assert!(b.history().is_empty());
}

#[tokio::test]
async fn a_restart_across_fires_skips_or_catches_up_once() {
    // Stopped at 10:00:30 (last fire dealt with 10:00), started again at 10:03:30.
    let mut b = bench(
        schedule("* * * * *", Missed::Skip, None),
        "2026-01-01T10:03:30Z",
        Some("2026-01-01T10:00:00Z"),
    );
    b.sched.pass(Pass::Start).unwrap();
    assert!(b.started.try_recv().is_err());
    let h = b.history();
    assert_eq!(
        (h.len(), h[0].kind.clone(), h[0].count),
        (1, history::Kind::Missed, Some(3))
    );
    assert!(b.lines()[0].ends_with("t: missed 3 fire(s), 2026-01-01T10:01:00+00:00 to 2026-01-01T10:03:00+00:00: nothing runs for them (missed: skip)"), "{:?}", b.lines());
    // The gap is dealt with: the next pass fires only what comes after it.
    b.set("2026-01-01T10:04:00Z");
    b.sched.pass(Pass::Running).unwrap();
    assert_eq!(
        within(b.started.recv()).await.unwrap().fire,
        t("2026-01-01T10:04:00Z")
    );

    let mut b = bench(
        schedule("* * * * *", Missed::CatchUp, Some(600)),
        "2026-01-01T10:03:30Z",
        Some("2026-01-01T10:00:00Z"),
    );
    b.sched.pass(Pass::Start).unwrap();
    let f = within(b.started.recv()).await.unwrap();
    assert_eq!(
        (f.fire, f.trigger),
        (t("2026-01-01T10:03:00Z"), Trigger::CatchUp)
    );
    assert!(b.started.try_recv().is_err(), "caught up more than once");
    assert!(b.lines().iter().any(|l| l.contains(&format!(
        "t: catch-up 2026-01-01T10:03:00+00:00 → run {}",
        f.run_id
    ))));
}

#[tokio::test]
async fn the_loop_wakes_at_each_fire_and_stops_its_runs_on_sigterm() {
    let mut s = schedule("*/20 * * * * *", Missed::Skip, None);
    s.overlap = Overlap::Allow;
    let expected: Vec<Timestamp> = crate::schedule::fire::next_n(&s, t("2026-01-01T10:00:05Z"), 3)
        .iter()
        .map(|z| z.timestamp())
        .collect();
    let Bench {
        _dir,
        clock,
        mut started,
        mut sched,
        ..
    } = bench(s, "2026-01-01T10:00:05Z", None);
    let (tx, rx) = mpsc::unbounded_channel();
    let looping = tokio::spawn(async move {
        sched.run(rx).await.unwrap();
        sched
    });
    let mut fired = Vec::new();
    for want in &expected {
        // Let the loop go to sleep, then move the clock to the fire time.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        clock.now.send_replace(*want);
        let f = within(started.recv()).await.unwrap();
        fired.push(f.fire);
    }
    assert_eq!(fired, expected);
    tx.send(Control::Stop(crate::outcome::Signal::Term))
        .unwrap();
    let sched = within(looping).await.unwrap();
    assert_eq!(sched.running_count(), 0);
    let outcomes: Vec<Option<String>> = sched
        .history
        .read("t")
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, vec![Some("interrupted".to_string()); 3]);
    assert!(sched.store.read().unwrap().schedules["t"]
        .in_flight
        .is_empty());
}

#[tokio::test]
async fn runs_of_a_dead_scheduler_are_recorded_abandoned() {
    let mut b = bench(
        schedule("* * * * *", Missed::Skip, None),
        "2026-01-01T10:00:30Z",
        Some("2026-01-01T10:00:00Z"),
    );
    let host = crate::cleanup::owner_id();
    let host = host.split(':').next().unwrap();
    b.sched
        .store
        .update(|st| {
            st.schedules.get_mut("t").unwrap().in_flight.push(InFlight {
                run_id: "r-dead".into(),
                fire: t("2026-01-01T10:00:00Z"),
                started: t("2026-01-01T10:00:00Z"),
                owner: format!("{host}:1073741823:5"),
                record: "/nonexistent/r-dead".into(),
                workspace: "/nonexistent/w".into(),
                trigger: "on time".into(),
            })
        })
        .unwrap();
    b.sched.recover().await.unwrap();
    let h = b.history();
    assert_eq!(h[0].run_id.as_deref(), Some("r-dead"));
    assert_eq!(h[0].outcome.as_deref(), Some("abandoned"));
    assert!(b.sched.store.read().unwrap().schedules["t"]
        .in_flight
        .is_empty());
    let _ = &mut b;
}
