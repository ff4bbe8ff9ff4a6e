//! The `agent:` and `limits:` sections.

use std::path::Path;

use serde::de::MapAccess;

use super::super::error::Expect;
use super::super::error::Fail;
use super::super::values;
use super::super::{AgentSettings, CacheSettings, Limits};
use super::network::Network;
use super::read::{scalar, List, ReadSection, Section, AGENT, CACHE, LIMITS};

/// The agent section, plus whether its user is root and whether its network allowlist named
/// its own `ca_certificates`.
pub(super) struct Agent<'a> {
    pub(super) settings: AgentSettings,
    pub(super) root_user: bool,
    pub(super) network_ca_given: bool,
    /// Where relative `ca_certificates` paths start.
    pub(super) base_dir: &'a Path,
}

impl<'a> Agent<'a> {
    pub(super) fn new(base_dir: &'a Path) -> Agent<'a> {
        Agent {
            settings: AgentSettings::default(),
            root_user: false,
            network_ca_given: false,
            base_dir,
        }
    }
}

impl ReadSection for Agent<'_> {
    const SECTION: Section = AGENT;
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "network" => {
                let read = map.next_value_seed(Network {
                    base_dir: self.base_dir,
                })?;
                self.settings.network = read.policy;
                self.network_ca_given = read.ca_given;
            }
            _ => {
                let (user, root) = map.next_value_seed(scalar(USER, |t| {
                    values::user(t).map(|root| (t.to_string(), root))
                }))?;
                self.settings.user = user;
                self.root_user = root;
            }
        }
        Ok(())
    }
}

const USER: Expect = Expect {
    what: "a user (UID, UID:GID or a name)",
    fix: "write e.g. `user: \"1000:1000\"`",
};

impl ReadSection for Limits {
    const SECTION: Section = LIMITS;
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let unlimited = |t: &str| values::is_unlimited(t);
        match key {
            "setup_timeout" => {
                self.setup_timeout = map.next_value_seed(scalar(DURATION, values::duration))?
            }
            "agent_timeout" => {
                self.agent_timeout = map.next_value_seed(scalar(DURATION, values::duration))?
            }
            "memory" => {
                self.memory = map.next_value_seed(scalar(SIZE, |t| {
                    if unlimited(t) {
                        Ok(None)
                    } else {
                        values::memory(t).map(Some)
                    }
                }))?
            }
            "cpus" => {
                self.cpus = map.next_value_seed(scalar(NUMBER, |t| {
                    if unlimited(t) {
                        Ok(None)
                    } else {
                        values::cpus(t).map(Some)
                    }
                }))?
            }
            "pids" => {
                self.pids = map.next_value_seed(scalar(NUMBER, |t| {
                    if unlimited(t) {
                        Ok(None)
                    } else {
                        values::pids(t).map(Some)
                    }
                }))?
            }
            "tmp_size" => self.tmp_size = map.next_value_seed(scalar(SIZE, values::size))?,
            _ => self.output_size = map.next_value_seed(scalar(SIZE, values::size))?,
        }
        Ok(())
    }
}

impl ReadSection for CacheSettings {
    const SECTION: Section = CACHE;
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "ttl" => self.ttl = map.next_value_seed(scalar(TTL, values::duration))?,
            "max_size" => self.max_size = map.next_value_seed(scalar(SIZE, values::size))?,
            _ => {
                self.key_files = map.next_value_seed(List {
                    expect: KEY_FILES,
                    item: KEY_FILE,
                    check: key_file,
                    items: std::marker::PhantomData,
                })?
            }
        }
        Ok(())
    }
}

/// A `key_files` entry: a relative path inside the workspace, normalised, listed once.
fn key_file(text: &str, before: &[String]) -> Result<String, Fail> {
    let fix = "give a path relative to the workspace, e.g. `requirements.txt` or `app/Cargo.lock`";
    if text.is_empty() || text.contains('\0') || text.chars().any(char::is_control) {
        return Err(Fail::new(format!("{text:?} is not a file path")).fix(fix));
    }
    if text.starts_with('/') {
        return Err(
            Fail::new(format!("{text} is absolute: key files are workspace files")).fix(fix),
        );
    }
    let path = text.trim_end_matches('/');
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(Fail::new(format!(
            "{text} is not a normalised path inside the workspace (no `//`, `.` or `..`)"
        ))
        .fix(fix));
    }
    if before.iter().any(|b| b == path) {
        return Err(Fail::new(format!("{path} is listed twice")).fix("list each file once"));
    }
    Ok(path.to_string())
}

const TTL: Expect = Expect {
    what: "a duration such as 12h",
    fix: "write one duration on the key's line, e.g. `ttl: 12h`",
};
const KEY_FILES: Expect = Expect {
    what: "a list of workspace file paths",
    fix: "write e.g. `key_files: [requirements.txt, Cargo.lock]`",
};
const KEY_FILE: Expect = Expect {
    what: "a workspace file path",
    fix: "write one path per item, e.g. `- requirements.txt`",
};

const DURATION: Expect = Expect {
    what: "a duration such as 20m",
    fix: "write one duration on the key's line, e.g. `agent_timeout: 30m`",
};
const SIZE: Expect = Expect {
    what: "a size such as 512m or 4g",
    fix: "write one size on the key's line, e.g. `memory: 4g`",
};
const NUMBER: Expect = Expect {
    what: "a number",
    fix: "write one number on the key's line, e.g. `pids: 1024`",
};
