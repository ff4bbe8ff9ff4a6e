//! The shape of an environment file, read with hand-written serde visitors.
//!
//! Why not `#[derive(Deserialize)]`: every check must run on the node it is about, inside the
//! visitor, so that serde_yaml stamps the error with that node's line and column (an error
//! raised after the deserializer returned would point at the enclosing mapping instead). The
//! same goes for the checks derive cannot do: unknown keys with a suggestion, duplicate keys in
//! maps (a `BTreeMap` would keep the last silently), a secret that is also a plain variable,
//! persisted paths that overlap. The visitors carry what they need from their siblings (the
//! secrets read so far, the paths listed above) so each check fires at the second of two
//! conflicting nodes, in one pass.
//!
//! Scalars are read with `deserialize_str`, which hands over the text exactly as written:
//! `VERSION: 1.10` is the text `1.10` (not the float 1.1), `ZIP: 01234` keeps its zero.

mod network;
mod read;
mod sections;

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::error::{shown, Expect, Fail};
use super::values;
use super::{AgentSettings, CaSource, CacheSettings, Limits, NetworkPolicy};
use read::{scalar, List, Nested, KEY, TOP};
use sections::Agent;

/// Everything read from one file, checked.
#[derive(Debug)]
pub(super) struct Parsed {
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub setup: Option<String>,
    pub persist: Vec<String>,
    pub ca_certificates: Vec<CaSource>,
    pub runtime: Option<String>,
    pub agent: AgentSettings,
    pub limits: Limits,
    /// `agent.user` runs as root (allowed; the caller warns).
    pub root_user: bool,
    pub cache: Option<CacheSettings>,
    pub maintenance: Option<String>,
}

/// The whole file.
pub(super) struct File<'a> {
    /// Where relative `ca_certificates` paths start (the config root).
    pub base_dir: &'a Path,
}

const FILE: Expect = Expect {
    what: "a mapping of settings such as `image: base`",
    fix: "an environment is a YAML mapping; start with `image: NAME`",
};

impl<'de> DeserializeSeed<'de> for File<'_> {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for File<'_> {
    type Value = Parsed;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", FILE)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Err(E::custom(Fail::new("the file has no settings").fix(
            "an environment needs at least an image, e.g. `image: base`",
        )))
    }
    fn visit_none<E: de::Error>(self) -> Result<Parsed, E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut seen = Vec::new();
        let mut image = None;
        let mut env: Option<BTreeMap<String, String>> = None;
        let mut secrets: Option<Vec<String>> = None;
        let mut setup = None;
        let mut persist = Vec::new();
        let mut ca_certificates = Vec::new();
        let mut runtime = None;
        let mut agent = Agent::new(self.base_dir);
        let mut limits = Limits::default();
        let mut cache = None;
        let mut maintenance = None;
        while let Some(key) = map.next_key_seed(scalar(KEY, |k| TOP.key(k, &seen)))? {
            seen.push(key);
            match key {
                "image" => image = Some(map.next_value_seed(scalar(IMAGE, values::image))?),
                "env" => {
                    env = Some(map.next_value_seed(Env {
                        secrets: secrets.as_deref().unwrap_or_default(),
                    })?)
                }
                "secrets" => {
                    let env = env.as_ref();
                    secrets = Some(map.next_value_seed(List {
                        expect: SECRETS,
                        item: SECRET,
                        check: |t: &str, before: &[String]| secret(t, before, env),
                        items: PhantomData,
                    })?)
                }
                "setup" => setup = map.next_value_seed(scalar(SETUP, setup_script))?,
                "persist" => {
                    persist = map.next_value_seed(List {
                        expect: PERSIST,
                        item: PATH,
                        check: persisted,
                        items: PhantomData,
                    })?
                }
                "ca_certificates" => {
                    let base = self.base_dir;
                    ca_certificates = map.next_value_seed(List {
                        expect: CAS,
                        item: CA,
                        check: |t: &str, before: &[CaSource]| ca(t, before, base),
                        items: PhantomData,
                    })?
                }
                "runtime" => runtime = Some(map.next_value_seed(scalar(RUNTIME, values::runtime))?),
                "agent" => {
                    let base = self.base_dir;
                    agent = map.next_value_seed(Nested {
                        expect: AGENT_MAP,
                        default: || Agent::new(base),
                    })?
                }
                "cache" => {
                    cache = Some(map.next_value_seed(Nested {
                        expect: CACHE_MAP,
                        default: CacheSettings::default,
                    })?)
                }
                "maintenance" => {
                    maintenance = map.next_value_seed(scalar(MAINTENANCE, setup_script))?
                }
                _ => {
                    limits = map.next_value_seed(Nested {
                        expect: LIMITS_MAP,
                        default: Limits::default,
                    })?
                }
            }
        }
        let Some(image) = image else {
            return Err(de::Error::custom(
                Fail::new("required key missing: every environment names the image it runs in")
                    .key("image")
                    .fix("add a line `image: base` (a folder under images/, or an image already in the engine)"),
            ));
        };
        let mut settings: AgentSettings = agent.settings;
        if let NetworkPolicy::Allowlist(list) = &mut settings.network {
            if !agent.network_ca_given {
                list.ca_certificates = if ca_certificates.is_empty() {
                    vec![CaSource::Host]
                } else {
                    ca_certificates.clone()
                };
            }
        }
        Ok(Parsed {
            image,
            env: env.unwrap_or_default(),
            secrets: secrets.unwrap_or_default(),
            setup,
            persist,
            ca_certificates,
            runtime,
            agent: settings,
            limits,
            root_user: agent.root_user,
            cache,
            maintenance,
        })
    }
}

const IMAGE: Expect = Expect {
    what: "an image name",
    fix: "write e.g. `image: base`",
};
const SETUP: Expect = Expect {
    what: "a bash script",
    fix: "write the script as a block: `setup: |` and the commands indented on the lines below",
};
const MAINTENANCE: Expect = Expect {
    what: "a bash script",
    fix:
        "write the script as a block: `maintenance: |` and the commands indented on the lines below",
};
const CACHE_MAP: Expect = Expect {
    what: "a mapping with `ttl`, `max_size` and `key_files`",
    fix: "write `cache:` and the keys indented below it, e.g. `  ttl: 12h`",
};
const RUNTIME: Expect = Expect {
    what: "an OCI runtime name",
    fix: "write e.g. `runtime: runsc`, or remove the key for the engine's default",
};
const AGENT_MAP: Expect = Expect {
    what: "a mapping with `network` and `user`",
    fix: "write `agent:` and the keys indented below it, e.g. `  user: \"1000:1000\"`",
};
const LIMITS_MAP: Expect = Expect {
    what: "a mapping of limits",
    fix: "write `limits:` and the keys indented below it, e.g. `  memory: 4g`",
};
const SECRETS: Expect = Expect {
    what: "a list of secret names",
    fix: "write e.g. `secrets: [CRATES_TOKEN]`",
};
const SECRET: Expect = Expect {
    what: "a secret name",
    fix: "write one name per item, e.g. `- CRATES_TOKEN`",
};
const PERSIST: Expect = Expect {
    what: "a list of absolute paths",
    fix: "write e.g. `persist: [/opt/cache]`",
};
const PATH: Expect = Expect {
    what: "an absolute path",
    fix: "write one path per item, e.g. `- /opt/cache`",
};
pub(super) const CAS: Expect = Expect {
    what: "a list of `host` or PEM file paths",
    fix: "write e.g. `ca_certificates: [host]`",
};
pub(super) const CA: Expect = Expect {
    what: "`host` or a PEM file path",
    fix: "write one per item, e.g. `- host` or `- certs/corp.pem`",
};
const ENV: Expect = Expect {
    what: "a mapping of variables",
    fix: "write `env:` and `NAME: value` lines indented below it",
};
const VAR: Expect = Expect {
    what: "a variable name",
    fix: "write `NAME: value`, one per line",
};
const VALUE: Expect = Expect {
    what: "a text value (numbers and booleans are taken as written)",
    fix: "write a single value on the name's line; quote it if it holds YAML syntax, e.g. `FLAGS: \"[a, b]\"`",
};

fn setup_script(text: &str) -> Result<Option<String>, Fail> {
    if text.contains('\0') {
        return Err(Fail::new("the script contains a NUL byte").fix("remove the \\0"));
    }
    Ok((!text.trim().is_empty()).then(|| text.to_string()))
}

fn secret(
    name: &str,
    before: &[String],
    env: Option<&BTreeMap<String, String>>,
) -> Result<String, Fail> {
    values::secret_name(name)?;
    if before.iter().any(|b| b == name) {
        return Err(Fail::new(format!("{name} is listed twice")).fix("list each secret once"));
    }
    if env.is_some_and(|e| e.contains_key(name)) {
        return Err(both(name));
    }
    Ok(name.to_string())
}

fn both(name: &str) -> Fail {
    Fail::new(format!("{name} is both a plain variable (env) and a secret")).fix(format!(
        "a name is one or the other: remove {name} from env if it is secret, or from secrets if it is not"
    ))
}

fn persisted(text: &str, before: &[String]) -> Result<String, Fail> {
    let path = values::persist_path(text)?;
    for (i, other) in before.iter().enumerate() {
        if *other == path {
            return Err(
                Fail::new(format!("{path} is listed twice (also persist[{i}])"))
                    .fix("list each path once"),
            );
        }
        if values::is_within(&path, other) {
            return Err(Fail::new(format!(
                "{path} is inside {other} (persist[{i}]), which crosses whole"
            ))
            .fix(format!(
                "remove {path}: persisting {other} carries it already"
            )));
        }
        if values::is_within(other, &path) {
            return Err(Fail::new(format!(
                "{path} contains {other} (persist[{i}]): persisted paths must not overlap"
            ))
            .fix(format!(
                "remove {other}: persisting {path} carries it already"
            )));
        }
    }
    Ok(path)
}

pub(super) fn ca(text: &str, before: &[CaSource], base: &Path) -> Result<CaSource, Fail> {
    let source = if text == "host" {
        CaSource::Host
    } else {
        if text.trim().is_empty() || text.contains('\0') {
            return Err(Fail::new(format!("{:?} is not a file path", shown(text)))
                .fix("write `host`, or the path of a PEM file (relative paths start at the config root)"));
        }
        let path = base.join(text);
        let bytes = std::fs::read(&path).map_err(|e| {
            Fail::new(format!("cannot read {}: {e}", shown(&path.to_string_lossy())))
                .fix("give the path of a PEM file that exists (relative paths start at the config root), or `host` for the host's CA bundle")
        })?;
        if !bytes
            .windows(27)
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(Fail::new(format!(
                "{} holds no PEM certificate",
                shown(&path.to_string_lossy())
            ))
            .fix("give a file with one or more `-----BEGIN CERTIFICATE-----` blocks"));
        }
        CaSource::File(path)
    };
    if before.contains(&source) {
        return Err(
            Fail::new(format!("{:?} is listed twice", shown(text))).fix("list each source once")
        );
    }
    Ok(source)
}

/// The `env:` mapping: names checked, duplicates and secret names refused.
struct Env<'a> {
    secrets: &'a [String],
}

impl<'de> DeserializeSeed<'de> for Env<'_> {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Env<'_> {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", ENV)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut env = BTreeMap::new();
        while let Some(name) = map.next_key_seed(scalar(VAR, |k| {
            values::var_name(k)?;
            if env.contains_key(k) {
                return Err(Fail::new(format!("duplicate variable: {k} is already set above"))
                    .fix(format!("keep one `{k}:` line; YAML keys must be unique, and a second one would silently replace the first")));
            }
            if self.secrets.iter().any(|s| s == k) {
                return Err(both(k));
            }
            Ok(k.to_string())
        }))? {
            let value = map.next_value_seed(scalar(VALUE, |v| values::var_value(&name, v)))?;
            env.insert(name, value);
        }
        Ok(env)
    }
}
