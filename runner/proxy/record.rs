//! Every request on record: one JSON line per request, appended as it ends.
//!
//! A line holds the time the request arrived, the method, scheme (`http`, `https` for a
//! request inside an intercepted tunnel, `connect` for a tunnel refused or failed before any
//! request), host, port, path, the decision (`allowed` / `denied`), the rule that allowed it
//! or the reason it was refused (and a detail in words), the status sent back, and the bytes that went up (request
//! body) and came down (response body).
//!
//! The query string is not kept, only its length: queries carry tokens (signed URLs, API keys)
//! the record would otherwise spread to whoever reads it; the length still shows how much an
//! agent sent that way. An allowed tunnel is not a line of its own: its requests are.
//!
//! Lines are written whole with one `write` each on a file opened for appending, so a killed
//! proxy leaves at most its last line cut short, never lines mixed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use super::ProxyError;

/// One request, as recorded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// RFC 3339, UTC, milliseconds: when the request arrived.
    pub time: String,
    pub method: String,
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    /// The path without its query; `None` for a CONNECT line.
    pub path: Option<String>,
    /// Bytes of query string left out of `path` (0: none).
    pub query_len: usize,
    pub decision: Decision,
    /// For an allowed request, the allow entry that let it through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a denied one, why (`denied`, `not-allowed`, `method`, `private-address`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The status sent back to the agent; `None` when none could be (the connection failed).
    pub status: Option<u16>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Why it was refused, in words; or what went wrong after it was allowed (upstream
    /// unreachable, a TLS failure, a body cut short).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allowed,
    Denied,
}

/// Split a request target's path from its query: the path and the query's length.
pub fn split_query(path_and_query: &str) -> (String, usize) {
    match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), q.len()),
        None => (path_and_query.to_string(), 0),
    }
}

/// The time as the record writes it.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The record file.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    file: Mutex<File>,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder, ProxyError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ProxyError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Recorder {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Append one line. A failure to write is logged, not raised: a full disk must not turn
    /// into requests that hang; the caller sees it in the proxy's own log.
    pub fn write(&self, entry: &Entry) {
        let mut line = serde_json::to_vec(entry).expect("an entry serialises");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&line) {
            tracing::error!("cannot write {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network.jsonl");
        let r = Recorder::create(&path).unwrap();
        let (p, q) = split_query("/simple/x/?token=abc");
        assert_eq!((p.as_str(), q), ("/simple/x/", 9));
        let entry = Entry {
            time: now(),
            method: "GET".into(),
            scheme: "https",
            host: "x.example.com".into(),
            port: 443,
            path: Some(p),
            query_len: q,
            decision: Decision::Allowed,
            rule: Some("*.example.com".into()),
            reason: None,
            status: Some(200),
            bytes_up: 0,
            bytes_down: 5,
            detail: None,
            duration_ms: 3,
        };
        r.write(&entry);
        r.write(&entry);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["decision"], "allowed");
        assert_eq!(lines[0]["path"], "/simple/x/");
        assert!(!text.contains("token"));
        assert!(lines[0].get("reason").is_none());
    }
}
