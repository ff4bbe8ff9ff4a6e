//! Limits: durations, sizes, CPUs and process counts, and how they are shown.

use std::time::Duration;

use super::super::error::{shown, Fail};

/// The longest timeout accepted: a week. Longer ones are almost certainly a typo, and keeping
/// them bounded keeps deadline arithmetic far from overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The smallest memory limit the Docker engine accepts (6 MiB).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// `20m`, `90s`, `1h30m`: a unit is required.
pub fn duration(text: &str) -> Result<Duration, Fail> {
    let t = text.trim();
    let example = "write a duration with a unit, e.g. 90s, 20m or 1h30m";
    if t.is_empty() {
        return Err(Fail::new("no duration given").fix(example));
    }
    if t.starts_with('-') {
        return Err(Fail::new(format!("{} is negative", shown(t))).fix(example));
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(Fail::new(format!("{} has no unit", shown(t))).fix(format!(
            "write {t}s for seconds, or use another unit, e.g. 20m or 1h"
        )));
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| Fail::new(format!("{} is not a duration ({e})", shown(t))).fix(example))?;
    if d.is_zero() {
        return Err(
            Fail::new("a timeout of zero would stop the phase before it starts")
                .fix("give a duration longer than zero, e.g. 20m"),
        );
    }
    if d > MAX_TIMEOUT {
        return Err(
            Fail::new(format!("{} is longer than the maximum of 7 days", shown(t)))
                .fix("give a duration of at most 7d, e.g. 2h"),
        );
    }
    Ok(d)
}

/// A size in bytes: `512m`, `4g`, `1.5g`, `1024k` or plain bytes. Units are binary (k = KiB,
/// m = MiB, g = GiB, t = TiB), case-insensitive, with an optional `b` or `ib` (`4GiB`, `512mb`).
pub fn size(text: &str) -> Result<u64, Fail> {
    let t = text.trim();
    let example = "write a size such as 512m, 4g, 1.5g, 1024k or a number of bytes";
    if t.is_empty() {
        return Err(Fail::new("no size given").fix(example));
    }
    if t.starts_with('-') {
        return Err(Fail::new(format!("{} is negative", shown(t))).fix(example));
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim().to_ascii_lowercase());
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(Fail::new(format!(
                "{} is not a size: unknown unit {:?}",
                shown(t),
                unit
            ))
            .fix(example))
        }
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.contains('.')
        || !whole.chars().all(|c| c.is_ascii_digit())
    {
        return Err(Fail::new(format!("{} is not a size", shown(t))).fix(example));
    }
    if shift == 0 && !frac.trim_end_matches('0').is_empty() {
        return Err(
            Fail::new(format!("{} is not a whole number of bytes", shown(t)))
                .fix("use a unit for fractions, e.g. 1.5g, or give whole bytes"),
        );
    }
    let too_big = || Fail::new(format!("{} is too large", shown(t))).fix(example);
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let frac_digits = &frac[..frac.len().min(12)];
    let frac_value: u128 = if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse().map_err(|_| too_big())?
    };
    let bytes = whole
        .checked_shl(shift)
        .filter(|b| b >> shift == whole)
        .ok_or_else(too_big)?
        + ((frac_value << shift) / 10u128.pow(frac_digits.len() as u32));
    let bytes = u64::try_from(bytes).map_err(|_| too_big())?;
    if bytes == 0 {
        return Err(Fail::new("a size of zero leaves no room at all")
            .fix("give a size larger than zero, e.g. 256m"));
    }
    Ok(bytes)
}

/// A size for display: `4 GiB`, `256 MiB`, `1.5 GiB`, `100 B`.
pub fn show_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        let one = 1u64 << shift;
        if bytes >= one {
            let value = format!("{:.2}", bytes as f64 / one as f64);
            let value = value.trim_end_matches('0').trim_end_matches('.');
            return format!("{value} {unit}");
        }
    }
    format!("{bytes} B")
}

/// A duration for display: `20m`, `1h 30m`.
pub fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `unlimited` (in any case), for limits that can be lifted.
pub fn is_unlimited(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("unlimited")
}

/// The memory limit: a size of at least 6 MiB.
pub fn memory(text: &str) -> Result<u64, Fail> {
    let bytes = size(text)?;
    if bytes < MIN_MEMORY {
        return Err(Fail::new(format!(
            "{} is below the 6 MiB the Docker engine needs at least",
            shown(text.trim())
        ))
        .fix("give at least 6m; 512m or more suits most tasks"));
    }
    Ok(bytes)
}

/// CPUs: a positive number, at least 0.01 (the engine's granularity).
pub fn cpus(text: &str) -> Result<f64, Fail> {
    let t = text.trim();
    let fix = "give a positive number of CPUs, e.g. 2 or 0.5, or `unlimited`";
    let value: f64 = t
        .parse()
        .map_err(|_| Fail::new(format!("{} is not a number", shown(t))).fix(fix))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(Fail::new(format!("{} is not a positive number", shown(t))).fix(fix));
    }
    if value < 0.01 {
        return Err(Fail::new(format!(
            "{} is below 0.01, the smallest CPU share the engine grants",
            shown(t)
        ))
        .fix(fix));
    }
    Ok(value)
}

/// The process limit: a positive whole number.
pub fn pids(text: &str) -> Result<i64, Fail> {
    let t = text.trim();
    let fix = "give a positive whole number of processes, e.g. 1024, or `unlimited`";
    let value: i64 = t
        .parse()
        .map_err(|_| Fail::new(format!("{} is not a whole number", shown(t))).fix(fix))?;
    if value <= 0 {
        return Err(Fail::new(format!("{value} is not a positive number")).fix(fix));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("20m").unwrap(), Duration::from_secs(1200));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration(" 90s ").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("7d").unwrap(), MAX_TIMEOUT);
        let no_unit = duration("600").unwrap_err();
        assert!(no_unit.fix.unwrap().contains("600s"));
        assert!(duration("0s").unwrap_err().message.contains("zero"));
        assert!(duration("-5m").unwrap_err().message.contains("negative"));
        assert!(duration("20 parsecs")
            .unwrap_err()
            .message
            .contains("not a duration"));
        assert!(duration("8d").unwrap_err().message.contains("7 days"));
        assert!(duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("512m").unwrap(), 512 << 20);
        assert_eq!(size("4g").unwrap(), 4 << 30);
        assert_eq!(size("4G").unwrap(), 4 << 30);
        assert_eq!(size("4GiB").unwrap(), 4 << 30);
        assert_eq!(size("512mb").unwrap(), 512 << 20);
        assert_eq!(size("1.5g").unwrap(), 3 << 29);
        assert_eq!(size("1024k").unwrap(), 1 << 20);
        assert_eq!(size("1048576").unwrap(), 1 << 20);
        assert_eq!(size("100b").unwrap(), 100);
        assert_eq!(size("2 g").unwrap(), 2 << 30);
        assert_eq!(size(".5k").unwrap(), 512);
        assert_eq!(size("1t").unwrap(), 1 << 40);
        for bad in [
            "",
            "g",
            "4x",
            "1.5",
            "1.2.3g",
            "-1g",
            "0",
            "0m",
            "four",
            "99999999999t",
        ] {
            assert!(size(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(size("0").unwrap_err().message.contains("zero"));
        assert!(size("1.5").unwrap_err().message.contains("whole"));
    }

    #[test]
    fn show_sizes() {
        assert_eq!(show_size(4 << 30), "4 GiB");
        assert_eq!(show_size(256 << 20), "256 MiB");
        assert_eq!(show_size(3 << 29), "1.5 GiB");
        assert_eq!(show_size(100), "100 B");
    }

    #[test]
    fn memory_floor() {
        assert!(memory("4m").unwrap_err().message.contains("6 MiB"));
        assert_eq!(memory("6m").unwrap(), MIN_MEMORY);
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(cpus("2").unwrap(), 2.0);
        assert_eq!(cpus("0.5").unwrap(), 0.5);
        for bad in ["0", "-1", "NaN", "inf", "two", "0.001", ""] {
            assert!(cpus(bad).is_err(), "{bad:?}");
        }
        assert_eq!(pids("1024").unwrap(), 1024);
        for bad in ["0", "-1", "1.5", "many", ""] {
            assert!(pids(bad).is_err(), "{bad:?}");
        }
        assert!(is_unlimited("Unlimited"));
    }
}
