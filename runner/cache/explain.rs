//! Why a run would not use the cache: what changed since the newest entry of its
//! environment, in words (`setup script changed`, `secret API_TOKEN changed`,
//! `requirements.txt changed`, `image rebuilt`, `expired (13h old, ttl 12h)`, `no entry yet`).
//! Never a value: parts are digests, and only their names are shown.

use std::time::Duration;

use super::key::Parts;

/// What changed between the newest entry's parts (`then`) and this run's (`now`), one phrase
/// per changed part, in a fixed order, joined by `, `.
pub fn changes(then: &Parts, now: &Parts) -> String {
    let mut out = Vec::new();
    let fixed = [
        ("format", "airlock's cache format changed"),
        ("image", "image rebuilt"),
        ("setup", "setup script changed"),
        ("maintenance", "maintenance script changed"),
        ("persist", "persist paths changed"),
        ("user", "agent.user changed"),
        ("ca", "CA certificates changed"),
    ];
    for (part, words) in fixed {
        if then.get(part) != now.get(part) {
            out.push(words.to_string());
        }
    }
    let mut key_files_listed = false;
    for (prefix, what) in [("env:", "variable"), ("file:", ""), ("secret:", "secret")] {
        let names = |p: &Parts| -> Vec<String> {
            p.keys()
                .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
                .collect()
        };
        let mut all = names(then);
        all.extend(names(now));
        all.sort();
        all.dedup();
        for name in all {
            let part = format!("{prefix}{name}");
            let phrase = match (then.get(&part), now.get(&part)) {
                (Some(a), Some(b)) if a == b => continue,
                (Some(_), Some(_)) if what.is_empty() => format!("{name} changed"),
                (Some(_), Some(_)) => format!("{what} {name} changed"),
                _ if what.is_empty() => {
                    if key_files_listed {
                        continue;
                    }
                    key_files_listed = true;
                    "cache.key_files changed".to_string()
                }
                (None, _) => format!("{what} {name} added"),
                (_, None) => format!("{what} {name} removed"),
            };
            out.push(phrase);
        }
    }
    if out.is_empty() {
        // Same parts, another key: the entry belongs to another config root or format.
        return "key changed".into();
    }
    out.join(", ")
}

/// `expired (13h old, ttl 12h)`.
pub fn expired(age: Duration, ttl: Duration) -> String {
    format!("expired ({} old, ttl {})", age_words(age), age_words(ttl))
}

/// An age in its largest whole unit: `13h`, `5m`, `2s`, `3d`.
pub fn age_words(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d", s / 86_400)
    } else if s >= 3600 {
        format!("{}h", s / 3600)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(items: &[(&str, &str)]) -> Parts {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_changed_part_is_named_never_its_value() {
        let then = parts(&[
            ("image", "sha256:1"),
            ("setup", "a"),
            ("env:A", "1"),
            ("file:requirements.txt", "x"),
            ("secret:API_TOKEN", "h1"),
        ]);
        let change = |k: &str, v: &str| {
            let mut now = then.clone();
            now.insert(k.into(), v.into());
            changes(&then, &now)
        };
        assert_eq!(change("setup", "b"), "setup script changed");
        assert_eq!(change("image", "sha256:2"), "image rebuilt");
        assert_eq!(change("secret:API_TOKEN", "h2"), "secret API_TOKEN changed");
        assert_eq!(
            change("file:requirements.txt", "y"),
            "requirements.txt changed"
        );
        assert_eq!(change("env:A", "2"), "variable A changed");
        assert_eq!(change("env:B", "2"), "variable B added");
        assert_eq!(change("maintenance", "m"), "maintenance script changed");
        assert_eq!(change("secret:OTHER", "h"), "secret OTHER added");
        assert_eq!(change("file:Cargo.lock", "h"), "cache.key_files changed");
        let mut now = then.clone();
        now.remove("secret:API_TOKEN");
        now.insert("setup".into(), "c".into());
        assert_eq!(
            changes(&then, &now),
            "setup script changed, secret API_TOKEN removed"
        );
        assert_eq!(changes(&then, &then), "key changed");
        assert!(!change("secret:API_TOKEN", "h2").contains("h2"));
    }

    #[test]
    fn ages_read_in_their_largest_unit() {
        assert_eq!(
            expired(
                Duration::from_secs(13 * 3600 + 59),
                Duration::from_secs(12 * 3600)
            ),
            "expired (13h old, ttl 12h)"
        );
        assert_eq!(age_words(Duration::from_secs(2)), "2s");
        assert_eq!(age_words(Duration::from_secs(300)), "5m");
        assert_eq!(age_words(Duration::from_secs(3 * 86_400)), "3d");
    }
}
