//! Which Debian mirror to bootstrap from: the one the host itself uses.
//!
//! A host that installs packages already has a mirror it can reach (often a local one, or the
//! only one a firewall lets through), so debootstrap should use that rather than a name baked
//! into airlock. The mirror is read from the host's apt configuration: one-line sources
//! (`/etc/apt/sources.list`, `/etc/apt/sources.list.d/*.list`) and deb822 sources
//! (`/etc/apt/sources.list.d/*.sources`, their `URIs:` field). The choice, in order:
//!
//! 1. a `deb` source that lists the wanted suite itself (it certainly carries it);
//! 2. on a Debian host, a `deb` source for a plain suite (not `-security`, `-updates`,
//!    `-backports`), i.e. the host's main archive, which carries every Debian suite;
//! 3. nothing: debootstrap then uses its own default.
//!
//! (An Ubuntu host's archive doesn't carry Debian suites, hence the Debian check in rule 2.)

use std::path::Path;

/// One `deb` source: where, and which suites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suites: Vec<String>,
}

/// The mirror to pass to debootstrap for `suite`, from the host's apt configuration.
pub fn host_mirror(suite: &str) -> Option<String> {
    let mut sources = Vec::new();
    let etc = Path::new("/etc/apt");
    if let Ok(text) = std::fs::read_to_string(etc.join("sources.list")) {
        sources.extend(parse_one_line(&text));
    }
    if let Ok(dir) = std::fs::read_dir(etc.join("sources.list.d")) {
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            match file.extension().and_then(|e| e.to_str()) {
                Some("list") => sources.extend(parse_one_line(&text)),
                Some("sources") => sources.extend(parse_deb822(&text)),
                _ => {}
            }
        }
    }
    let debian_host = std::fs::read_to_string("/etc/os-release")
        .map(|t| t.lines().any(|l| l.trim() == "ID=debian"))
        .unwrap_or(false);
    choose(&sources, suite, debian_host)
}

/// Rules 1 and 2 of the module docs.
pub fn choose(sources: &[Source], suite: &str, debian_host: bool) -> Option<String> {
    let usable = |s: &&Source| {
        ["http://", "https://", "file:/", "ftp://"]
            .iter()
            .any(|p| s.uri.starts_with(p))
    };
    if let Some(s) = sources
        .iter()
        .filter(usable)
        .find(|s| s.suites.iter().any(|x| x == suite))
    {
        return Some(s.uri.clone());
    }
    if !debian_host {
        return None;
    }
    sources
        .iter()
        .filter(usable)
        .find(|s| {
            s.suites
                .iter()
                .any(|x| !x.contains('-') && !x.contains('/'))
        })
        .map(|s| s.uri.clone())
}

/// `deb [options] URI SUITE COMPONENT...` lines.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => rest = rest[end + 1..].trim_start(),
                None => continue,
            }
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push(Source {
                uri: uri.trim_end_matches('/').to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    out
}

/// deb822 paragraphs: `Types:`, `URIs:`, `Suites:`, `Enabled:`.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut enabled = true;
        for line in para.lines() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let values = value.split_whitespace().map(str::to_string);
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types.extend(values),
                "uris" => uris.extend(values),
                "suites" => suites.extend(values),
                "enabled" => enabled = !value.trim().eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if !enabled || !types.iter().any(|t| t == "deb") {
            continue;
        }
        for uri in uris {
            out.push(Source {
                uri: uri.trim_end_matches('/').to_string(),
                suites: suites.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n\
        # a comment\n\
        URIs: http://mirror.example/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\n\
        Types: deb\n\
        URIs: http://mirror.example/debian-security\n\
        Suites: bookworm-security\n\n\
        Types: deb-src\n\
        URIs: http://src.example/debian\n\
        Suites: bookworm\n\n\
        Enabled: no\n\
        Types: deb\n\
        URIs: http://off.example/debian\n\
        Suites: trixie\n";

    #[test]
    fn deb822_paragraphs() {
        let s = parse_deb822(DEB822);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].uri, "http://mirror.example/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
    }

    #[test]
    fn one_line_sources() {
        let s = parse_one_line(
            "# deb http://commented.example/debian sid main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ trixie main\n\
             deb-src http://src.example/debian trixie main\n",
        );
        assert_eq!(
            s,
            [Source {
                uri: "http://mirror.example/debian".into(),
                suites: vec!["trixie".into()]
            }]
        );
    }

    #[test]
    fn choice_prefers_the_suite_then_a_debian_main_archive() {
        let s = parse_deb822(DEB822);
        assert_eq!(
            choose(&s, "bookworm", false).as_deref(),
            Some("http://mirror.example/debian")
        );
        // Another suite: the main archive on a Debian host, the default elsewhere.
        assert_eq!(
            choose(&s, "trixie", true).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(choose(&s, "trixie", false), None);
        let security_only = parse_deb822(
            "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n",
        );
        assert_eq!(choose(&security_only, "trixie", true), None);
        assert_eq!(choose(&[], "bookworm", true), None);
    }
}
