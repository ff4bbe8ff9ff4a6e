//! `airlock env check [ENV...]`: validate environment definitions and summarise each.
//!
//! Every environment named is checked, even after one fails, so one run shows every problem.
//! Summaries go to stdout; errors and warnings to stderr. Exit 0 when all are valid, 1 when
//! any is not.

use std::path::Path;

use crate::environment::{self, AllowEntry, Allowlist, CaSource, Environment, NetworkPolicy};
use crate::root::ConfigRoot;

use super::Globals;

#[derive(Debug, clap::Subcommand)]
pub enum EnvCommand {
    /// Validate environment definitions and print a summary of each.
    Check {
        /// Environment files or names (envs/NAME.yaml under the config root) [default: all]
        envs: Vec<String>,
    },
}

pub async fn run(cmd: EnvCommand, g: &Globals) -> anyhow::Result<i32> {
    match cmd {
        EnvCommand::Check { envs } => check(&envs, g),
    }
}

fn check(specs: &[String], g: &Globals) -> anyhow::Result<i32> {
    let first_file = specs
        .iter()
        .find(|s| environment::is_path_spec(s))
        .map(Path::new);
    let only_paths = !specs.is_empty() && specs.iter().all(|s| environment::is_path_spec(s));
    let root = match ConfigRoot::locate(g.root.as_deref(), first_file) {
        Ok(root) => Some(root),
        // Files named by path can be checked without a root; names cannot.
        Err(_) if only_paths && g.root.is_none() => None,
        Err(e) => return Err(e.into()),
    };

    let specs: Vec<String> = if specs.is_empty() {
        let Some(root) = &root else {
            anyhow::bail!("no config root to list environments in");
        };
        let files = environment::list(root)?;
        if files.is_empty() {
            eprintln!(
                "airlock: error: no environments in {}\n  fix: add envs/NAME.yaml files (see envs/README.md)",
                root.envs_dir().display()
            );
            return Ok(1);
        }
        files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    } else {
        specs.to_vec()
    };

    let mut invalid = 0;
    for spec in &specs {
        let loaded = environment::resolve(root.as_ref(), spec)
            .and_then(|path| environment::load_in(root.as_ref(), &path));
        match loaded {
            Ok(env) => {
                print!("{}", summary(&env, root.as_ref()));
                let mut warnings = env.warnings.clone();
                warnings.extend(missing_secrets(&env, root.as_ref()));
                for warning in &warnings {
                    eprintln!(
                        "airlock: warning: {}: {warning}",
                        environment::display_path(&env.path)
                    );
                }
            }
            Err(e) => {
                invalid += 1;
                eprintln!("airlock: error: {e}");
            }
        }
    }
    if invalid > 0 {
        eprintln!(
            "airlock: {invalid} of {} environment{} invalid",
            specs.len(),
            if specs.len() == 1 { "" } else { "s" }
        );
        return Ok(1);
    }
    Ok(0)
}

/// Secrets the environment lists that have no `secrets/NAME.age` under the root: the run
/// would stop when it tries to decrypt them.
fn missing_secrets(env: &Environment, root: Option<&ConfigRoot>) -> Vec<String> {
    let Some(root) = root else {
        return Vec::new();
    };
    env.secrets
        .iter()
        .filter(|name| !root.secrets_dir().join(format!("{name}.age")).is_file())
        .map(|name| {
            format!(
                "secret {name} has no file secrets/{name}.age yet; add it with `airlock secrets set {name}` before running"
            )
        })
        .collect()
}

/// A short description of a valid environment, a line per aspect.
fn summary(env: &Environment, root: Option<&ConfigRoot>) -> String {
    let none = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let image_source = match root {
        Some(root)
            if environment::is_name(&env.image) && root.images_dir().join(&env.image).is_dir() =>
        {
            format!("built from images/{}/", env.image)
        }
        _ => "from the engine".to_string(),
    };
    let env_names: Vec<String> = env.env.keys().cloned().collect();
    let setup = match &env.setup {
        Some(script) => {
            let lines = script.lines().filter(|l| !l.trim().is_empty()).count();
            format!("{lines} line{} of bash", if lines == 1 { "" } else { "s" })
        }
        None => "none".into(),
    };
    let cas: Vec<String> = env.ca_certificates.iter().map(ca_source).collect();
    let network = match env.agent.network {
        NetworkPolicy::Off => "off",
        NetworkPolicy::Allowlist(_) => "allowlist (through the egress proxy)",
    };
    let l = &env.limits;
    let memory = l
        .memory
        .map(environment::show_size)
        .unwrap_or_else(|| "unlimited".into());
    let cpus = l
        .cpus
        .map(|c| c.to_string())
        .unwrap_or_else(|| "engine default".into());
    let pids = l
        .pids
        .map(|p| p.to_string())
        .unwrap_or_else(|| "unlimited".into());
    let mut out = format!(
        "{}: ok ({})\n",
        env.name,
        environment::display_path(&env.path)
    );
    let mut line = |key: &str, value: String| out.push_str(&format!("  {key:<9}{value}\n"));
    line("image", format!("{} ({image_source})", env.image));
    line("env", none(&env_names));
    line(
        "secrets",
        if env.secrets.is_empty() {
            "none".into()
        } else {
            format!("{} (setup phase only)", env.secrets.join(", "))
        },
    );
    line("setup", setup);
    line("persist", none(&env.persist));
    let slow = |r: &ConfigRoot| {
        crate::cache::last_setup_duration(r, &env.name).filter(|d| d.as_secs() >= 30)
    };
    if let (None, Some(took)) = (&env.cache, root.and_then(slow)) {
        line(
            "cache",
            format!(
                "off; the last run's setup took {}: `cache:` would let the next runs reuse what it left (see envs/README.md)",
                crate::cache::explain::age_words(took)
            ),
        );
    }
    if let Some(c) = &env.cache {
        line(
            "cache",
            format!(
                "on: ttl {}, max_size {}, key_files {}; maintenance {}",
                environment::show_duration(c.ttl),
                environment::show_size(c.max_size),
                none(&c.key_files),
                if env.maintenance.is_some() {
                    "script"
                } else {
                    "none"
                }
            ),
        );
    }
    line("ca", none(&cas));
    line(
        "runtime",
        env.runtime
            .clone()
            .unwrap_or_else(|| "engine default".into()),
    );
    line(
        "agent",
        format!("network {network}, user {}", env.agent.user),
    );
    if let NetworkPolicy::Allowlist(list) = &env.agent.network {
        for (key, value) in allowlist_lines(list) {
            line(key, value);
        }
    }
    line(
        "limits",
        format!(
            "setup {}, agent {}, memory {memory}, cpus {cpus}, pids {pids}, /tmp {}, output {}",
            environment::show_duration(l.setup_timeout),
            environment::show_duration(l.agent_timeout),
            environment::show_size(l.tmp_size),
            environment::show_size(l.output_size)
        ),
    );
    out
}

fn ca_source(c: &CaSource) -> String {
    match c {
        CaSource::Host => "host".to_string(),
        CaSource::File(p) => p.display().to_string(),
    }
}

/// The allowlist's summary lines: allow (with each entry's own methods), deny, methods, hosts
/// and the proxy's upstream CAs.
fn allowlist_lines(list: &Allowlist) -> Vec<(&'static str, String)> {
    let methods =
        |m: &[environment::Method]| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
    let allow: Vec<String> = list
        .allow
        .iter()
        .map(|a| match a {
            AllowEntry::Target {
                target,
                methods: Some(m),
            } => format!("{target} ({})", methods(m)),
            AllowEntry::Target { target, .. } => target.to_string(),
            AllowEntry::HostRegistries => {
                format!("{} (GET, HEAD)", environment::HOST_REGISTRIES)
            }
        })
        .collect();
    let deny: Vec<String> = list.deny.iter().map(ToString::to_string).collect();
    let hosts: Vec<String> = list
        .hosts
        .iter()
        .map(|(name, ip)| format!("{name} -> {ip}"))
        .collect();
    let none = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    vec![
        ("allow", allow.join(", ")),
        ("deny", none(deny)),
        (
            "methods",
            list.methods
                .as_deref()
                .map(methods)
                .unwrap_or_else(|| "all".into()),
        ),
        ("hosts", none(hosts)),
        (
            "upstream",
            format!(
                "CAs {}",
                list.ca_certificates
                    .iter()
                    .map(ca_source)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ]
}
