//! The `host-registries` preset: the package registries this host's own tools use.
//!
//! An environment that writes `host-registries` in its `allow` list means "whatever my pip,
//! apt and cargo are configured to fetch from", so that no registry's name has to be written
//! into a repository (and an internal mirror works unchanged). It is read when the run starts,
//! from each tool's own configuration:
//!
//! - **pip**: pip's own configuration (`pip.conf` files and `PIP_*` variables, through pip's
//!   `Configuration`), its `index-url` and `extra-index-url`; with no `index-url`, pip's
//!   built-in index and the host it serves files from (pip's own constants);
//! - **apt**: the `URIs` of `/etc/apt/sources.list` and `sources.list.d/` (both formats);
//! - **cargo**: `index` and `registry` URLs in `$CARGO_HOME/config.toml`, and every registry
//!   whose index cargo has cached (`$CARGO_HOME/registry/index/HOST-HASH/`), with the
//!   download and API hosts its cached `config.json` names.
//!
//! A tool that isn't installed contributes nothing. Each host is allowed on the port its URL
//! names (443 or 80 by scheme), GET and HEAD only ([`super::policy::REGISTRY_METHODS`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::environment::Target;

/// pip's index URLs and file host, as pip itself reports them.
const PIP_PROBE: &str = r#"
from pip._internal.configuration import Configuration
from pip._internal.models.index import PyPI
c = Configuration(isolated=False)
c.load()
index = None
for key, value in c.items():
    name = key.split(".", 1)[-1]
    if name == "index-url":
        index = value
    elif name == "extra-index-url":
        for url in value.split():
            print(url)
if index is None:
    print(PyPI.url)
    print("https://" + PyPI.file_storage_domain + "/")
else:
    print(index)
"#;

/// The hosts of the host's registries, as allow targets (sorted, no duplicates).
pub fn on_this_host() -> Vec<Target> {
    let mut urls = Vec::new();
    urls.extend(pip());
    urls.extend(apt(Path::new("/etc/apt")));
    urls.extend(cargo(&cargo_home()));
    targets(&urls)
}

/// `scheme://host[:port]/…` → `host:port` targets.
fn targets(urls: &[String]) -> Vec<Target> {
    let mut seen = BTreeSet::new();
    for url in urls {
        if let Some(hp) = host_port(url) {
            seen.insert(hp);
        }
    }
    seen.into_iter().filter_map(|hp| hp.parse().ok()).collect()
}

/// The `host:port` of a URL, the port from the scheme when it names none.
fn host_port(url: &str) -> Option<String> {
    let url = url
        .trim()
        .trim_start_matches("sparse+")
        .trim_start_matches("registry+");
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?; // no credentials
    if authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        (format!("[{h}]"), port.unwrap_or(default))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default),
        }
    };
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

fn pip() -> Vec<String> {
    let Ok(out) = Command::new("python3")
        .args(["-c", PIP_PROBE])
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        tracing::debug!(
            "host-registries: pip's configuration not read: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The URIs of apt's sources, one-line (`deb [opts] URI suite …`) and deb822 (`URIs:`).
fn apt(etc: &Path) -> Vec<String> {
    let mut files = vec![etc.join("sources.list")];
    if let Ok(dir) = std::fs::read_dir(etc.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    let mut urls = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let deb822 = file.extension().is_some_and(|e| e == "sources");
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if deb822 {
                if let Some(v) = line.strip_prefix("URIs:") {
                    urls.extend(v.split_whitespace().map(str::to_string));
                }
            } else if line.starts_with("deb") {
                let mut words = line.split_whitespace().skip(1);
                let mut word = words.next();
                if word.is_some_and(|w| w.starts_with('[')) {
                    // Options: up to the word that ends with `]`.
                    while let Some(w) = word {
                        word = words.next();
                        if w.ends_with(']') {
                            break;
                        }
                    }
                }
                urls.extend(word.map(str::to_string));
            }
        }
    }
    urls
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"))
}

/// Registry URLs cargo is configured with, and those whose index it has cached.
fn cargo(home: &Path) -> Vec<String> {
    let mut urls = Vec::new();
    for name in ["config.toml", "config"] {
        let Ok(text) = std::fs::read_to_string(home.join(name)) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            for key in ["index", "registry"] {
                if let Some(rest) = line.strip_prefix(key) {
                    if let Some(value) = rest.trim_start().strip_prefix('=') {
                        urls.push(value.trim().trim_matches(['"', '\'']).to_string());
                    }
                }
            }
        }
    }
    let Ok(dir) = std::fs::read_dir(home.join("registry/index")) else {
        return urls;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // HOST-HASH: the hash is cargo's 16 hex digits.
        if let Some((host, hash)) = name.rsplit_once('-') {
            if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                urls.push(format!("https://{host}/"));
            }
        }
        if let Ok(text) = std::fs::read_to_string(entry.path().join("config.json")) {
            if let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) {
                for key in ["dl", "api"] {
                    if let Some(url) = config.get(key).and_then(|v| v.as_str()) {
                        urls.push(url.to_string());
                    }
                }
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_host_and_port() {
        assert_eq!(
            host_port("https://Mirror.Example.com/simple/").as_deref(),
            Some("mirror.example.com:443")
        );
        assert_eq!(
            host_port("http://deb.example.org/debian").as_deref(),
            Some("deb.example.org:80")
        );
        assert_eq!(
            host_port("sparse+https://index.example.net/").as_deref(),
            Some("index.example.net:443")
        );
        assert_eq!(
            host_port("https://u:p@pkgs.example.com:8443/x").as_deref(),
            Some("pkgs.example.com:8443")
        );
        assert_eq!(host_port("file:///srv/mirror"), None);
        assert_eq!(host_port("/opt/wheels"), None);
    }

    #[test]
    fn apt_sources_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb http://deb.example.org/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] https://apt.example.com/repo stable main\ndeb-src http://src.example.org/debian bookworm main\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://a.example.org/debian http://b.example.org/debian\nSuites: bookworm\n",
        )
        .unwrap();
        assert_eq!(
            apt(dir.path()),
            [
                "http://deb.example.org/debian",
                "https://apt.example.com/repo",
                "http://src.example.org/debian",
                "http://a.example.org/debian",
                "http://b.example.org/debian",
            ]
        );
    }

    #[test]
    fn cargo_config_and_cached_indexes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[source.mirror]\nregistry = \"sparse+https://crates.example.com/index/\"\n[registries.corp]\nindex = \"https://git.example.com/index\"\n",
        )
        .unwrap();
        let cached = dir
            .path()
            .join("registry/index/index.example.net-1949cf8c6b5b557f");
        std::fs::create_dir_all(&cached).unwrap();
        std::fs::write(
            cached.join("config.json"),
            r#"{"dl":"https://dl.example.net/crates","api":"https://api.example.net"}"#,
        )
        .unwrap();
        let shown: Vec<String> = targets(&cargo(dir.path()))
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "api.example.net:443",
                "crates.example.com:443",
                "dl.example.net:443",
                "git.example.com:443",
                "index.example.net:443",
            ]
        );
    }

    /// On this host, pip's own answer is part of the preset (pip is how these machines install
    /// Python packages; a host without it contributes nothing, which `on_this_host` allows).
    #[test]
    fn pip_reports_its_index() {
        let urls = pip();
        if Command::new("python3")
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(!urls.is_empty(), "pip is installed, yet no index was read");
            assert!(urls.iter().all(|u| host_port(u).is_some()), "{urls:?}");
        }
    }
}
