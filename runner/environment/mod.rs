//! Environment definitions: `envs/NAME.yaml`.
//!
//! An environment says what a task runs in: the image, the plain variables, the secrets and
//! the script of the setup phase, what crosses the boundary besides the workspace (`persist`),
//! and how the agent phase is sealed (network, user, limits). `envs/README.md` documents the
//! format for its authors; this module turns a file into a checked [`Environment`] or into one
//! [`EnvError`] that names the file, line, column and key, says what is wrong and how to fix it.
//!
//! The file is a trust boundary of its own: it decides what crosses into the sealed phase. So
//! nothing is guessed: unknown keys, duplicate keys, overlapping or odd persisted paths, names
//! that would shadow what the shell relies on are all refused, not repaired.
//!
//! - `values`: the leaf parsers (durations, sizes, names, users, paths);
//! - `schema`: the serde visitors that read the file's shape and run those parsers in place;
//! - `error`: [`EnvError`] and how a serde_yaml error becomes a precise message;
//! - `nesting`: the depth cap every YAML text passes before serde_yaml sees it.

mod error;
mod nesting;
mod schema;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{Deserialize, DeserializeSeed};

pub use error::{display_path, EnvError};
// What other YAML readers of the config root (schedules/) share with this one: the encoded
// in-visitor problem, its decoding into file:line:col errors, suggestions, the depth cap.
pub(crate) use error::{did_you_mean, from_yaml, shown, Expect, Fail};
pub(crate) use values::duration;
pub use values::{
    canonical as canonical_ip, is_name, is_reserved_secret_name, show_duration, show_size,
    var_fits, AddressClass, Cidr, HostPattern, Method, Target, MAX_VAR_LEN, METHODS, WORKSPACE,
};

use crate::root::ConfigRoot;

/// Where the agent phase may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// No network at all: only the container's own loopback.
    Off,
    /// Only what the allowlist names, through airlock's egress proxy, every request on record.
    Allowlist(Allowlist),
}

/// `agent.network` as a mapping: what the egress proxy lets through.
///
/// A request passes when no `deny` entry names it and an `allow` entry does, with its method
/// among that entry's methods (the entry's own, else the top-level `methods`, else all). The
/// proxy enforces it (`crate::proxy::policy`); this is what the file said, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    pub allow: Vec<AllowEntry>,
    /// Checked first: a denied destination is refused whatever `allow` says.
    pub deny: Vec<Target>,
    /// The default methods of `allow` entries; `None`: every method.
    pub methods: Option<Vec<Method>>,
    /// Names pinned to one address (as `--add-host`); that address, even a private one, is
    /// then reachable under that name only.
    pub hosts: BTreeMap<String, std::net::IpAddr>,
    /// What the proxy trusts upstream: `agent.network.ca_certificates`, else the
    /// environment's `ca_certificates`, else the host's bundle.
    pub ca_certificates: Vec<CaSource>,
}

/// One `allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// A destination, with the methods allowed to it when the entry names its own.
    Target {
        target: Target,
        methods: Option<Vec<Method>>,
    },
    /// `host-registries`: the package registries the host's own tools are configured to use,
    /// read when the run starts, GET and HEAD only.
    HostRegistries,
}

/// The name of the `allow` preset for the host's package registries.
pub const HOST_REGISTRIES: &str = "host-registries";

/// A CA certificate source to trust in the setup phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// The host's system bundle (e.g. /etc/ssl/certs/ca-certificates.crt).
    Host,
    /// A PEM file, resolved to an absolute host path.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    pub network: NetworkPolicy,
    /// `UID:GID` (numeric) or a user name known to the image.
    pub user: String,
}

/// The agent phase's user when the file names none: not root, and not any user an image is
/// likely to have given special rights.
pub const DEFAULT_USER: &str = "1000:1000";

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            network: NetworkPolicy::Off,
            user: DEFAULT_USER.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub setup_timeout: Duration,
    pub agent_timeout: Duration,
    /// Bytes.
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    /// Size of the agent phase's tmpfs `/tmp`, bytes.
    pub tmp_size: u64,
    /// The most the agent phase's changed files may hold, bytes: what comes back to the
    /// host for the patch. Past it the run ends `output_too_large` before anything is copied.
    pub output_size: u64,
}

impl Default for Limits {
    /// setup 20m, agent 30m, memory 4g, cpus: the engine's, pids 1024, /tmp 256m, output 256m.
    fn default() -> Self {
        Limits {
            setup_timeout: Duration::from_secs(20 * 60),
            agent_timeout: Duration::from_secs(30 * 60),
            memory: Some(4 << 30),
            cpus: None,
            pids: Some(1024),
            tmp_size: 256 << 20,
            output_size: 256 << 20,
        }
    }
}

/// A validated environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// The file's stem (`envs/base.yaml` → `base`).
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// sha256 of the file's bytes, hex.
    pub content_hash: String,
    /// `images/<image>/` folder name, or an image reference already in the engine.
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub setup: Option<String>,
    /// Absolute, normalised container paths (directories) that cross into the agent phase.
    pub persist: Vec<String>,
    pub ca_certificates: Vec<CaSource>,
    pub agent: AgentSettings,
    pub limits: Limits,
    /// An OCI runtime name for both phases (e.g. `runsc` for gVisor); None = engine default.
    pub runtime: Option<String>,
    /// The setup cache (`cache:`); `None`: off (every run runs setup).
    pub cache: Option<CacheSettings>,
    /// Runs instead of `setup` on a cache hit (network on, secrets present).
    pub maintenance: Option<String>,
    /// Non-fatal remarks (e.g. secrets listed with no setup script).
    pub warnings: Vec<String>,
}

/// `cache:`: what setup left is kept and reused while its key holds ([`crate::cache`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long an entry is used, counted from when it was made.
    pub ttl: Duration,
    /// The most this environment's entries may hold together, bytes; oldest go first.
    pub max_size: u64,
    /// Workspace files (relative paths) whose contents are part of the key.
    pub key_files: Vec<String>,
}

impl Default for CacheSettings {
    /// ttl 12h, max_size 10g, no key files.
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::from_secs(12 * 3600),
            max_size: 10 << 30,
            key_files: Vec::new(),
        }
    }
}

/// Environment files larger than this are refused (a definition is a few hundred bytes).
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Whether a command-line `ENV` is a file path rather than a name: it contains a `/`, or ends
/// in `.yaml`/`.yml`.
pub fn is_path_spec(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(".yaml") || spec.ends_with(".yml")
}

/// Resolve `spec` (a path to a YAML file, or a name looked up as `envs/<name>.yaml` under the
/// root) to a file path.
///
/// A name must match `[A-Za-z0-9][A-Za-z0-9_.-]*`, so it can never leave `envs/`; anything
/// with a `/` is taken as a path, as the user typed it.
pub fn resolve(root: Option<&ConfigRoot>, spec: &str) -> Result<PathBuf, EnvError> {
    if is_path_spec(spec) {
        let path = PathBuf::from(spec);
        if !path.exists() {
            let stem = spec.trim_end_matches(".yaml").trim_end_matches(".yml");
            let in_envs = root.is_some_and(|r| r.envs_dir().join(spec).is_file());
            let fix = if !spec.contains('/') && in_envs {
                format!("to name the environment envs/{spec}, drop the extension: `{stem}`")
            } else {
                "give the path of an environment file, or an environment's name (envs/NAME.yaml under the config root)".to_string()
            };
            return Err(EnvError::new(format!("no such file: {}", shown(spec))).fix(fix));
        }
        if !path.is_file() {
            return Err(EnvError::new(format!("{} is not a file", shown(spec)))
                .fix("give the path of an environment file (e.g. envs/base.yaml)"));
        }
        return Ok(path);
    }
    if !values::is_name(spec) {
        return Err(EnvError::new(format!("{:?} is not an environment name", shown(spec))).fix(
            "a name is letters, digits, '_', '.' and '-', starting with a letter or digit, and is looked up as envs/NAME.yaml; to use a file elsewhere, give its path (with a /)",
        ));
    }
    let Some(root) = root else {
        return Err(EnvError::new(format!(
            "cannot look up the environment {spec}: no config root"
        ))
        .fix("pass --root DIR or set AIRLOCK_ROOT to the folder holding envs/, or give the file's path"));
    };
    let path = root.envs_dir().join(format!("{spec}.yaml"));
    if path.is_file() {
        return Ok(path);
    }
    let known: Vec<String> = list(root)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let refs: Vec<&str> = known.iter().map(String::as_str).collect();
    let mut listing = refs.iter().take(12).copied().collect::<Vec<_>>().join(", ");
    if refs.len() > 12 {
        listing.push_str(", …");
    }
    let fix = if let Some(close) = did_you_mean(spec, &refs) {
        format!("did you mean {close}? (environments: {listing})")
    } else if known.is_empty() {
        format!("create {} (see envs/README.md)", display_path(&path))
    } else {
        format!("the environments there are: {listing}")
    };
    Err(EnvError::new(format!(
        "no environment {spec}: {} does not exist",
        display_path(&path)
    ))
    .fix(fix))
}

/// Every `envs/*.yaml` under the root, sorted by name.
pub fn list(root: &ConfigRoot) -> Result<Vec<PathBuf>, EnvError> {
    let dir = root.envs_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        EnvError::new(format!("cannot list {}: {e}", display_path(&dir))).fix(
            "create the envs/ folder under the config root, with one NAME.yaml per environment",
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Load and validate one environment file, resolving relative paths in it against `root`.
pub fn load_in(root: Option<&ConfigRoot>, path: &Path) -> Result<Environment, EnvError> {
    let (name, text) = read_named(path, "environment")?;
    let text = text.as_str();
    let base_dir = match root {
        Some(root) => root.dir().to_path_buf(),
        None => std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default(),
    };
    // serde_yaml hands over the events it parsed before a syntax error and raises the error
    // only at the end, so a semantic check could fire first and blame the wrong thing. Walk
    // the whole document once so YAML-level problems are reported as such.
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(yaml(path, text)?, &mut track);
    serde::de::IgnoredAny::deserialize(de)
        .map_err(|e| error::from_yaml(path, serde_path_to_error::Error::new(track.path(), e)))?;

    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(yaml(path, text)?, &mut track);
    let parsed = schema::File {
        base_dir: &base_dir,
    }
    .deserialize(de)
    .map_err(|e| error::from_yaml(path, serde_path_to_error::Error::new(track.path(), e)))?;

    let mut warnings = Vec::new();
    if !parsed.secrets.is_empty() && parsed.setup.is_none() {
        warnings.push(format!(
            "secrets are listed ({}) but there is no setup script: secrets exist only in the setup phase, so nothing will use them; add a setup script or remove them",
            parsed.secrets.join(", ")
        ));
    }
    if parsed.maintenance.is_some() && parsed.cache.is_none() {
        warnings.push("a maintenance script is set but there is no `cache:` key: it runs only on a cache hit, so it never runs; add `cache:` or remove it".to_string());
    }
    if parsed.root_user {
        warnings.push(format!(
            "agent.user is {:?}: the agent phase runs as root inside its container; prefer an unprivileged user such as \"{DEFAULT_USER}\"",
            parsed.agent.user
        ));
    }
    if let Some(script) = &parsed.setup {
        warnings.extend(plain_exports(script));
    }
    Ok(Environment {
        name,
        path: path.to_path_buf(),
        content_hash: crate::hex::sha256(text.as_bytes()),
        image: parsed.image,
        env: parsed.env,
        secrets: parsed.secrets,
        setup: parsed.setup,
        persist: parsed.persist,
        ca_certificates: parsed.ca_certificates,
        agent: parsed.agent,
        limits: parsed.limits,
        runtime: parsed.runtime,
        cache: parsed.cache,
        maintenance: parsed.maintenance,
        warnings,
    })
}

/// A setup script's `export NAME=…` lines: the variable lives and dies with the setup
/// phase's shell; only `$AIRLOCK_ENV` reaches the agent phase.
fn plain_exports(script: &str) -> Vec<String> {
    script
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let rest = line.trim_start().strip_prefix("export ")?;
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then(|| {
                format!(
                    "setup script line {}: `export {name}` sets {name} for the rest of the setup script only; the agent phase is a fresh shell and won't see it\n  fix: if the agent phase needs it, also write `echo \"{name}=${name}\" >> $AIRLOCK_ENV`",
                    i + 1
                )
            })
        })
        .collect()
}

/// A YAML file of the config root (`envs/NAME.yaml`, `schedules/NAME.yaml`): its name (the
/// file's stem, checked) and its text (UTF-8, checked), read within the size cap.
pub(crate) fn read_named(path: &Path, kind: &str) -> Result<(String, String), EnvError> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
        EnvError::new("the file is not UTF-8 text")
            .in_file(path)
            .at(line, column)
            .fix("save it as UTF-8")
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !values::is_name(&name) {
        return Err(EnvError::new(format!("{:?} is not a valid {kind} name", shown(&name)))
            .in_file(path)
            .fix("rename the file: letters, digits, '_', '.' and '-', starting with a letter or digit, ending in .yaml"));
    }
    Ok((name, text))
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, EnvError> {
    let fail = |what: String| {
        EnvError::new(what)
            .in_file(path)
            .fix("check that the file exists and is readable")
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(EnvError::new(format!(
            "the file is {} bytes; environment files are limited to 1 MiB",
            meta.len()
        ))
        .in_file(path)
        .fix("keep large scripts in the image or the workspace and call them from setup"));
    }
    std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// The one way airlock reads YAML: `text` (already under the size cap) measured for nesting
/// first, so serde_yaml, whose time grows with the square of the depth, never sees a text
/// nested past [`nesting::MAX_DEPTH`] levels.
pub(crate) fn yaml<'de>(
    path: &Path,
    text: &'de str,
) -> Result<serde_yaml::Deserializer<'de>, EnvError> {
    nesting::check(text).map_err(|at| {
        EnvError::new(format!(
            "the YAML nests more than {} levels deep here",
            nesting::MAX_DEPTH
        ))
        .in_file(path)
        .at(at.line, at.column)
        .fix("an environment needs a few levels (`env: {A: 1}` is two): flatten the lists and maps")
    })?;
    Ok(serde_yaml::Deserializer::from_str(text))
}

/// 1-based line and column just after `before`.
pub(crate) fn line_column(before: &[u8]) -> (usize, usize) {
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests;

/// A size as the environment file reads one (`512m`, `10g`), for flags that take one.
pub fn parse_size(text: &str) -> Result<u64, String> {
    values::size(text).map_err(|f| f.to_string())
}
