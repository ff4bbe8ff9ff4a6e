//! The decisions: which fires run (on time, caught up) or are missed, and what a fire does
//! to a run of the same schedule still going. Pure functions of times and the definition,
//! so they are tested without a clock or an engine.
//!
//! - **On time**: a scheduler that was running sees a fire within [`LATE`] of its time (the
//!   daemon wakes at it; `tick`, driven each minute by a timer, sees it within the minute).
//!   If it fell behind (a suspended machine, a slow tick) and several fires are due, the
//!   newest runs and the older ones are recorded as missed.
//! - **Missed**: fires that fell while no scheduler was running: everything between the
//!   newest fire dealt with and a daemon's start, and anything a running one sees more than
//!   [`LATE`] after its time. `missed: skip` runs nothing for them (one log line and one
//!   history entry, however many); `missed: catch-up` runs once, for the newest of them,
//!   when it is within `deadline`.
//! - **Overlap**, when a fire comes while a run of the schedule is going: `forbid` skips the
//!   fire, `replace` cancels the running run(s) and starts, `allow` starts beside them.

use std::time::Duration;

use jiff::Timestamp;

use super::definition::{Missed, Overlap, Schedule};

/// How late a running scheduler may see a fire and still call it on time.
pub const LATE: Duration = Duration::from_secs(60);

/// Which look at the schedule this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The daemon's first look after it started: the gap since the last fire dealt with is
    /// what it missed.
    Start,
    /// A running daemon waking for a fire, or a `tick`.
    Running,
}

/// Why a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    OnTime,
    CatchUp,
}

impl Trigger {
    pub fn word(self) -> &'static str {
        match self {
            Trigger::OnTime => "on time",
            Trigger::CatchUp => "catch-up",
        }
    }
}

/// What to do about the fires in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Fire {
        fire: Timestamp,
        trigger: Trigger,
    },
    /// Fires that run nothing: `count` of them, from `first` to `last`.
    Missed {
        first: Timestamp,
        last: Timestamp,
        count: u64,
        why: &'static str,
    },
}

/// The fires in `(last, now]` and what to do with each; and the new "last dealt with".
/// A schedule never seen before (`last` none) starts now: nothing before now is missed.
pub fn due(
    s: &Schedule,
    last: Option<Timestamp>,
    now: Timestamp,
    pass: Pass,
) -> (Vec<Decision>, Timestamp) {
    let Some(last) = last else {
        return (Vec::new(), now);
    };
    let w = super::fire::between(s, last, now);
    let (Some(first), Some(newest)) = (w.first, w.newest) else {
        return (Vec::new(), last);
    };
    let count = w.count;
    let age = now.duration_since(newest).unsigned_abs();
    let older = |why| {
        w.before_newest.map(|before| Decision::Missed {
            first,
            last: before,
            count: count - 1,
            why,
        })
    };
    let mut out = Vec::new();
    if pass == Pass::Running && age <= LATE {
        out.extend(older(
            "the scheduler fell behind; only the newest fire runs",
        ));
        out.push(Decision::Fire {
            fire: newest,
            trigger: Trigger::OnTime,
        });
        return (out, newest);
    }
    match s.missed {
        Missed::Skip => out.push(Decision::Missed {
            first,
            last: newest,
            count,
            why: "missed: skip",
        }),
        Missed::CatchUp if s.deadline.is_none_or(|d| age <= d) => {
            out.extend(older("missed: catch-up runs once, for the newest"));
            out.push(Decision::Fire {
                fire: newest,
                trigger: Trigger::CatchUp,
            });
        }
        Missed::CatchUp => out.push(Decision::Missed {
            first,
            last: newest,
            count,
            why: "missed: catch-up, but the newest is past the deadline",
        }),
    }
    (out, newest)
}

/// What a fire does given the runs of its schedule still going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlapAction {
    Start,
    /// Skip the fire: these runs are still going.
    Skip(Vec<String>),
    /// Cancel these runs, then start.
    Replace(Vec<String>),
}

pub fn overlap(policy: Overlap, running: &[String]) -> OverlapAction {
    if running.is_empty() {
        return OverlapAction::Start;
    }
    match policy {
        Overlap::Forbid => OverlapAction::Skip(running.to_vec()),
        Overlap::Replace => OverlapAction::Replace(running.to_vec()),
        Overlap::Allow => OverlapAction::Start,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schedule::definition::{ResultMode, DEFAULT_KEEP_HISTORY};

    pub(crate) fn schedule(cron: &str, missed: Missed, deadline: Option<u64>) -> Schedule {
        Schedule {
            name: "t".into(),
            path: "schedules/t.yaml".into(),
            env: "tiny".into(),
            repository: "/nonexistent".into(),
            git_ref: "HEAD".into(),
            command: vec!["true".into()],
            cron_text: cron.into(),
            cron: crate::schedule::definition::parse_cron(cron).unwrap(),
            timezone_name: "UTC".into(),
            timezone: jiff::tz::TimeZone::UTC,
            overlap: Overlap::Forbid,
            missed,
            deadline: deadline.map(Duration::from_secs),
            timeout: None,
            keep_history: DEFAULT_KEEP_HISTORY,
            result: ResultMode::None,
            on_failure: None,
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_schedule_starts_now() {
        let s = schedule("* * * * *", Missed::CatchUp, None);
        let (d, last) = due(&s, None, t("2026-01-01T10:00:30Z"), Pass::Start);
        assert!(d.is_empty());
        assert_eq!(last, t("2026-01-01T10:00:30Z"));
    }

    #[test]
    fn on_time_fires_run() {
        let s = schedule("* * * * *", Missed::Skip, None);
        let (d, last) = due(
            &s,
            Some(t("2026-01-01T09:59:00Z")),
            t("2026-01-01T10:00:02Z"),
            Pass::Running,
        );
        assert_eq!(
            d,
            [Decision::Fire {
                fire: t("2026-01-01T10:00:00Z"),
                trigger: Trigger::OnTime
            }]
        );
        assert_eq!(last, t("2026-01-01T10:00:00Z"));
        // Nothing due yet: nothing, and `last` stays.
        let (d, last) = due(&s, Some(last), t("2026-01-01T10:00:40Z"), Pass::Running);
        assert!(d.is_empty());
        assert_eq!(last, t("2026-01-01T10:00:00Z"));
    }

    #[test]
    fn skip_runs_nothing_for_a_gap() {
        let s = schedule("*/10 * * * *", Missed::Skip, None);
        // Stopped at 10:05, started at 11:02: 10:10 … 11:00 fell in the gap.
        let (d, last) = due(
            &s,
            Some(t("2026-01-01T10:00:00Z")),
            t("2026-01-01T11:02:00Z"),
            Pass::Start,
        );
        assert_eq!(
            d,
            [Decision::Missed {
                first: t("2026-01-01T10:10:00Z"),
                last: t("2026-01-01T11:00:00Z"),
                count: 6,
                why: "missed: skip"
            }]
        );
        assert_eq!(last, t("2026-01-01T11:00:00Z"));
    }

    #[test]
    fn catch_up_runs_once_within_the_deadline() {
        let s = schedule("*/10 * * * *", Missed::CatchUp, Some(3600));
        let (d, _) = due(
            &s,
            Some(t("2026-01-01T10:00:00Z")),
            t("2026-01-01T11:02:00Z"),
            Pass::Start,
        );
        assert_eq!(
            d,
            [
                Decision::Missed {
                    first: t("2026-01-01T10:10:00Z"),
                    last: t("2026-01-01T10:50:00Z"),
                    count: 5,
                    why: "missed: catch-up runs once, for the newest"
                },
                Decision::Fire {
                    fire: t("2026-01-01T11:00:00Z"),
                    trigger: Trigger::CatchUp
                },
            ]
        );
        // Past the deadline: nothing runs.
        let s = schedule("0 * * * *", Missed::CatchUp, Some(600));
        let (d, _) = due(
            &s,
            Some(t("2026-01-01T08:00:00Z")),
            t("2026-01-01T11:30:00Z"),
            Pass::Start,
        );
        assert_eq!(
            d,
            [Decision::Missed {
                first: t("2026-01-01T09:00:00Z"),
                last: t("2026-01-01T11:00:00Z"),
                count: 3,
                why: "missed: catch-up, but the newest is past the deadline"
            }]
        );
        // A start just after a fire still calls it missed (the scheduler wasn't there).
        let s = schedule("* * * * * *", Missed::Skip, None);
        let (d, _) = due(
            &s,
            Some(t("2026-01-01T10:00:00Z")),
            t("2026-01-01T10:00:01Z"),
            Pass::Start,
        );
        assert!(
            matches!(d[..], [Decision::Missed { count: 1, .. }]),
            "{d:?}"
        );
    }

    #[test]
    fn a_running_scheduler_late_past_the_tolerance_applies_the_missed_policy() {
        let s = schedule("0 * * * *", Missed::Skip, None);
        let (d, _) = due(
            &s,
            Some(t("2026-01-01T09:00:00Z")),
            t("2026-01-01T10:05:00Z"),
            Pass::Running,
        );
        assert!(
            matches!(d[..], [Decision::Missed { count: 1, .. }]),
            "{d:?}"
        );
    }

    #[test]
    fn a_huge_gap_is_counted_not_listed() {
        let s = schedule("* * * * * *", Missed::CatchUp, None);
        let (d, last) = due(
            &s,
            Some(t("2026-01-01T00:00:00Z")),
            t("2026-01-01T03:00:00Z"),
            Pass::Start,
        );
        assert_eq!(last, t("2026-01-01T03:00:00Z"));
        assert!(
            matches!(
                d[..],
                [
                    Decision::Missed { count: 10_799, .. },
                    Decision::Fire {
                        trigger: Trigger::CatchUp,
                        ..
                    }
                ]
            ),
            "{d:?}"
        );
    }

    #[test]
    fn overlap_policies() {
        let running = vec!["r1".to_string()];
        assert_eq!(overlap(Overlap::Forbid, &[]), OverlapAction::Start);
        assert_eq!(
            overlap(Overlap::Forbid, &running),
            OverlapAction::Skip(running.clone())
        );
        assert_eq!(
            overlap(Overlap::Replace, &running),
            OverlapAction::Replace(running.clone())
        );
        assert_eq!(overlap(Overlap::Allow, &running), OverlapAction::Start);
    }
}
