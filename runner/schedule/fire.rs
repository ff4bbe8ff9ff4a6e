//! When a schedule fires: croner matches wall-clock times, jiff puts them on the time line.
//!
//! The cron expression is matched against the schedule's wall clock (croner, on
//! `jiff::civil::DateTime`, which has no transitions); each matching wall-clock time is then
//! placed in the schedule's zone (jiff, from the IANA database) with two rules, the
//! documented DST semantics:
//!
//! - a wall-clock time that a spring-forward transition skips (02:30 on a night the clock
//!   jumps from 02:00 to 03:00) fires at the first valid instant after it: the transition
//!   itself (03:00). Several skipped times fire once there, and a fire that falls exactly at
//!   the transition besides them is the same fire;
//! - a wall-clock time that a fall-back transition repeats (02:30 on a night the clock goes
//!   back from 03:00 to 02:00) fires once, at its first occurrence; the repeated hour fires
//!   nothing more, whatever the expression (`* * * * *` included).
//!
//! croner's own zoned search differs on purpose for interval expressions (it skips their
//! times in a gap and fires them in both passes of a repeated hour); airlock's rule is the
//! same for every expression, so "runs once a day at 02:30" and "every 15 minutes" both
//! mean exactly what the wall clock says, no more, no less.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, Zoned};

use super::definition::Schedule;

/// How many wall-clock matches a search looks at before giving up (a fall-back night makes a
/// seconds-level expression skip up to 3600 matches; nothing legitimate needs more).
const SEARCH_LIMIT: usize = 10_000;

/// The first fire strictly after `after`, or none (an expression that never matches again,
/// e.g. February 30th).
pub fn next_after(cron: &croner::Cron, tz: &TimeZone, after: Timestamp) -> Option<Zoned> {
    let civil = tz.to_datetime(after);
    for wall in cron.iter_after(civil).take(SEARCH_LIMIT) {
        let at = place(tz, wall)?;
        if at > after {
            return Some(at.to_zoned(tz.clone()));
        }
    }
    None
}

/// The next `count` fires after `after`.
pub fn next_n(s: &Schedule, after: Timestamp, count: usize) -> Vec<Zoned> {
    let mut out = Vec::with_capacity(count);
    let mut t = after;
    while out.len() < count {
        let Some(z) = next_after(&s.cron, &s.timezone, t) else {
            break;
        };
        t = z.timestamp();
        out.push(z);
    }
    out
}

/// The fires in `(after, until]`, summarised: the first, the newest and the one before it,
/// and how many (counting stops at [`WINDOW_LIMIT`]: a gap of months at one fire a second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub first: Option<Timestamp>,
    pub before_newest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
    pub count: u64,
}

pub const WINDOW_LIMIT: u64 = 2_000_000;

pub fn between(s: &Schedule, after: Timestamp, until: Timestamp) -> Window {
    let mut w = Window::default();
    let mut t = after;
    while let Some(z) = next_after(&s.cron, &s.timezone, t) {
        let ts = z.timestamp();
        if ts > until || w.count >= WINDOW_LIMIT {
            break;
        }
        w.first.get_or_insert(ts);
        w.before_newest = w.newest;
        w.newest = Some(ts);
        w.count += 1;
        t = ts;
    }
    w
}

/// The instant a wall-clock time fires at (see the module docs).
fn place(tz: &TimeZone, wall: DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(wall);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
            offset.to_timestamp(wall).ok()
        }
        AmbiguousOffset::Gap { before, .. } => {
            // Read with the offset before the gap, the wall time lies just past the
            // transition: the transition is the newest one at or before that instant.
            let past = before.to_timestamp(wall).ok()?;
            let at = past.checked_add(jiff::SignedDuration::from_nanos(1)).ok()?;
            tz.preceding(at).next().map(|t| t.timestamp())
        }
    }
}

/// RFC 3339 with the zone's offset, to the second (`2026-03-29T03:00:00+02:00`).
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fires(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
        let cron = super::super::definition::parse_cron(expr).unwrap();
        let tz = TimeZone::get(zone).unwrap();
        let mut t: Timestamp = after.parse().unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let z = next_after(&cron, &tz, t).unwrap();
            t = z.timestamp();
            out.push(rfc3339(&z));
        }
        out
    }

    #[test]
    fn spring_forward_fires_at_the_first_valid_instant() {
        // Europe/Berlin, 2026-03-29: 02:00 CET → 03:00 CEST.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
        // Every 15 minutes: the four skipped times fire once, at 03:00, which is a fire too.
        assert_eq!(
            fires("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:40:00Z", 3),
            [
                "2026-03-29T01:45:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:15:00+02:00"
            ]
        );
        // America/New_York, 2026-03-08: 02:00 EST → 03:00 EDT.
        assert_eq!(
            fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
        );
    }

    #[test]
    fn fall_back_fires_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST → 02:00 CET; 02:30 happens twice.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // Hourly: 02:00 fires in the first pass only, then 03:00.
        assert_eq!(
            fires("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 3),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T04:00:00+01:00"
            ]
        );
        // Starting inside the second pass: the repeated times already fired.
        assert_eq!(
            fires("*/20 * * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1),
            ["2026-10-25T03:00:00+01:00"]
        );
    }

    #[test]
    fn impossible_dates_never_fire() {
        let cron = super::super::definition::parse_cron("0 0 30 2 *").unwrap();
        assert!(next_after(&cron, &TimeZone::UTC, Timestamp::UNIX_EPOCH).is_none());
    }
}
