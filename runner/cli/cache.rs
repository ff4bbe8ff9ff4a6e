//! `airlock cache ls | why ENV [-w DIR] | rm ENV|KEY | prune [--max-size SIZE]`
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;

use super::Globals;
use crate::cache::{self, explain, store};
use crate::environment;
use crate::root::ConfigRoot;

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// List this config root's entries: environment, key, age, size, hits.
    Ls,
    /// Would the next run of ENV hit the cache, and if not, why.
    Why {
        /// The environment: a name (envs/NAME.yaml) or a YAML file.
        env: String,
        /// The workspace the run would use (its key_files are read) [default: the current directory]
        #[arg(short, long, value_name = "DIR")]
        workspace: Option<PathBuf>,
        /// The age identity file for the environment's secrets [default: AIRLOCK_IDENTITY, else ~/.config/airlock/identity.txt]
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
    /// Remove the entries of an environment, or the entry whose key starts with KEY.
    Rm {
        #[arg(value_name = "ENV|KEY")]
        target: String,
    },
    /// Remove expired entries, then the oldest until the rest fit in --max-size.
    Prune {
        /// The most all entries of this config root may hold together (e.g. 20g).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
    },
}

fn root_of(g: &Globals, env: Option<&str>) -> anyhow::Result<ConfigRoot> {
    let as_path = env.filter(|e| environment::is_path_spec(e));
    Ok(ConfigRoot::locate(
        g.root.as_deref(),
        as_path.map(std::path::Path::new),
    )?)
}

pub async fn run(command: CacheCommand, g: &Globals) -> anyhow::Result<i32> {
    let engine = crate::engine::from_env()?;
    let now = SystemTime::now();
    match command {
        CacheCommand::Ls => {
            let root = root_of(g, None)?;
            let scope = cache::key::scope(root.dir());
            let entries = store::list_scope(&*engine, &scope).await?;
            if entries.is_empty() {
                println!("no cache entries");
                return Ok(0);
            }
            println!(
                "{:<16} {:<12} {:>6} {:>10} {:>5}  STATE",
                "ENV", "KEY", "AGE", "SIZE", "HITS"
            );
            for e in &entries {
                let state = if e.expired(now) {
                    format!("expired (ttl {})", explain::age_words(e.ttl))
                } else {
                    "live".to_string()
                };
                println!(
                    "{:<16} {:<12} {:>6} {:>10} {:>5}  {state}",
                    e.env,
                    e.short(),
                    explain::age_words(e.age(now)),
                    environment::show_size(e.size),
                    store::hits(root.dir(), &e.key),
                );
            }
            Ok(0)
        }
        CacheCommand::Why {
            env: spec,
            workspace,
            identity,
        } => {
            let root = root_of(g, Some(&spec))?;
            let path = environment::resolve(Some(&root), &spec)?;
            let env = environment::load_in(Some(&root), &path)?;
            if env.cache.is_none() {
                println!("{}: no `cache:` key: every run runs setup", env.name);
                return Ok(0);
            }
            let workspace = match workspace {
                Some(w) => w,
                None => std::env::current_dir().context("the current directory")?,
            };
            let workspace = std::path::absolute(&workspace).unwrap_or(workspace);
            let image = crate::images::ensure(&*engine, &root, &env.image).await?;
            let secrets = if env.secrets.is_empty() {
                Vec::new()
            } else {
                let ids = crate::secrets::find_identities(identity.as_deref())?;
                crate::secrets::Store::open(&root.secrets_dir()).decrypt_all(&env.secrets, &ids)?
            };
            let ca = crate::run::prepare::read_ca(&env.ca_certificates)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (key, scope, parts) = cache::compute(
                root.dir(),
                &env,
                &workspace,
                &image.id,
                &ca,
                &secrets,
                identity.as_deref(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let entries = store::list_scope(&*engine, &scope).await?;
            match cache::decide(&entries, &env.name, &key, &parts, now) {
                (Some(e), _) => println!(
                    "{}: the next run would hit {} (made {} ago, ttl {})",
                    env.name,
                    e.short(),
                    explain::age_words(e.age(now)),
                    explain::age_words(e.ttl)
                ),
                (None, reason) => println!(
                    "{}: the next run would miss {}: {}",
                    env.name,
                    store::short(&key),
                    reason.unwrap_or_default()
                ),
            }
            Ok(0)
        }
        CacheCommand::Rm { target } => {
            let root = root_of(g, None)?;
            let scope = cache::key::scope(root.dir());
            let entries = store::list_scope(&*engine, &scope).await?;
            let chosen: Vec<_> = entries
                .iter()
                .filter(|e| e.env == target || target.len() >= 4 && e.key.starts_with(&target))
                .collect();
            if chosen.is_empty() {
                return Err(super::Refused {
                    outcome: crate::outcome::Outcome::ConfigError,
                    message: format!("no cache entry of an environment {target:?} nor with a key starting with it\n  fix: `airlock cache ls` lists the entries"),
                }
                .into());
            }
            for e in chosen {
                store::remove(&*engine, e).await?;
                println!("removed {} ({})", e.short(), e.env);
            }
            Ok(0)
        }
        CacheCommand::Prune { max_size } => {
            let root = root_of(g, None)?;
            let scope = cache::key::scope(root.dir());
            let max = match max_size {
                Some(text) => Some(environment::parse_size(&text).map_err(|e| super::Refused {
                    outcome: crate::outcome::Outcome::ConfigError,
                    message: format!("--max-size {text}: {e}"),
                })?),
                None => None,
            };
            let gone = store::prune(&*engine, &scope, None, max, None).await?;
            for e in &gone {
                let why = if e.expired(now) {
                    explain::expired(e.age(now), e.ttl)
                } else {
                    "past --max-size".to_string()
                };
                println!(
                    "removed {} ({}, {}): {why}",
                    e.short(),
                    e.env,
                    environment::show_size(e.size)
                );
            }
            if gone.is_empty() {
                println!("nothing to prune");
            }
            Ok(0)
        }
    }
}
