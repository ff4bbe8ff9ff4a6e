//! The setup cache: repeat runs that skip setup, with every miss explained.
//!
//! Off unless the environment has a `cache:` key. What is cached is what crossed the
//! boundary, never the setup container: the persist paths, the variables setup handed over,
//! and what setup changed in the workspace, all of which passed the leak check. The run's
//! steps call three hooks, and nothing else of the cache:
//!
//! 1. [`look_up`] (end of prepare): the key ([`key`]: image id, scripts, variables, persist
//!    paths, `key_files` contents, CA settings, secrets' names and HMACs of their values) and
//!    whether an entry holds it; a miss says why ([`explain`]);
//! 2. in setup, on a hit: the setup container mounts the entry read-only and, instead of the
//!    setup script, lays it over the host workspace it was given ([`restore_script`]: setup's
//!    workspace changes, then the persist paths, then the handed-over variables) and runs the
//!    maintenance script (network and secrets, as setup). The boundary then checks
//!    everything that crosses, as on any run;
//! 3. [`after_boundary`]: on a miss, what crossed is saved as a new entry ([`store`]).

pub mod explain;
pub mod key;
pub mod store;

use std::path::PathBuf;
use std::time::SystemTime;

use crate::boundary::Crossing;
use crate::environment::Environment;
use crate::record::{CacheReport, Report};
use crate::run::events::Event;
use crate::run::outcome::RunError;
use crate::run::plan::MountPlan;
use crate::run::prepare::Ready;
use crate::run::setup::{shell_quote, SetupDone};
use crate::run::{Ctx, Options, Task};
use crate::secrets::SecretValue;
use key::Parts;
use store::Entry;

/// How a run uses the cache (`--no-cache`, `--refresh-cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Use,
    /// Neither read nor write it.
    Off,
    /// Run setup and replace the entry.
    Refresh,
}

/// The cache's part of one run, decided before any container exists.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub key: String,
    pub scope: String,
    pub parts: Parts,
    /// The entry to restore from.
    pub hit: Option<Entry>,
    /// Why there is no hit.
    pub reason: Option<String>,
    /// Save what crosses as an entry after the boundary.
    pub fill: bool,
    pub root_dir: PathBuf,
    pub started: SystemTime,
    pub mode: Mode,
}

impl Lookup {
    pub fn report(&self) -> CacheReport {
        CacheReport {
            key: self.key.clone(),
            hit: self.hit.is_some(),
            reason: self.reason.clone(),
            saved: None,
        }
    }

    /// The console's one line.
    pub fn line(&self) -> String {
        let key = store::short(&self.key);
        match (&self.hit, &self.reason) {
            (Some(e), _) => format!(
                "cache: hit {} (made {} ago): setup skipped",
                e.short(),
                explain::age_words(e.age(self.started)),
            ),
            _ if self.mode == Mode::Off => "cache: off for this run (--no-cache)".into(),
            _ if self.mode == Mode::Refresh => {
                format!("cache: refreshing {key} (--refresh-cache): setup runs, and what crosses replaces the entry")
            }
            (None, r) => format!(
                "cache: miss {key} ({}): setup runs, and what crosses is saved",
                r.as_deref().unwrap_or("no entry yet")
            ),
        }
    }
}

/// How long the setup phase of the newest recorded run of `env` took (of the last 50 records
/// under the config root), for `env check` to suggest the cache when setup is slow.
pub fn last_setup_duration(
    root: &crate::root::ConfigRoot,
    env: &str,
) -> Option<std::time::Duration> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.runs_dir())
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs.iter().take(50).find_map(|d| {
        let text = std::fs::read_to_string(d.join("report.json")).ok()?;
        let r: serde_json::Value = serde_json::from_str(&text).ok()?;
        if r["environment"]["name"] != env || r["cache"]["hit"] == true {
            return None;
        }
        let ms = r["setup"]["duration_ms"].as_u64()?;
        Some(std::time::Duration::from_millis(ms))
    })
}

/// Hit or miss, and why: `entries` are the config root's, newest first.
pub fn decide(
    entries: &[Entry],
    env: &str,
    key: &str,
    parts: &Parts,
    now: SystemTime,
) -> (Option<Entry>, Option<String>) {
    if let Some(e) = entries.iter().find(|e| e.key == key) {
        if e.expired(now) {
            return (None, Some(explain::expired(e.age(now), e.ttl)));
        }
        return (Some(e.clone()), None);
    }
    match entries.iter().find(|e| e.env == env) {
        Some(newest) => (None, Some(explain::changes(&newest.parts, parts))),
        None => (None, Some("no entry yet".into())),
    }
}

/// The key's parts and the key for one run of `env` in `workspace`.
pub fn compute(
    root_dir: &std::path::Path,
    env: &Environment,
    workspace: &std::path::Path,
    image_id: &str,
    ca: &[(String, Vec<u8>)],
    secrets: &[(String, SecretValue)],
    identity: Option<&std::path::Path>,
) -> Result<(String, String, Parts), RunError> {
    let hmac = if secrets.is_empty() {
        None
    } else {
        let (path, _) = crate::secrets::identity::identity_path(identity).ok_or_else(|| {
            RunError::Config(
                "cache: no place for the cache's HMAC key (HOME is not set and no identity is named)"
                    .into(),
            )
        })?;
        Some(key::hmac_key(&path).map_err(|e| {
            RunError::Config(format!(
                "cache: cannot read or create {}: {e}",
                key::hmac_key_path(&path).display()
            ))
        })?)
    };
    let parts = key::parts(&key::Inputs {
        env,
        image_id,
        ca,
        secrets,
        hmac_key: hmac.as_deref(),
        workspace,
    })
    .map_err(|e| RunError::Config(e.to_string()))?;
    let scope = key::scope(root_dir);
    Ok((key::key(&scope, &parts), scope, parts))
}

/// Hook 1, at the end of prepare: the key, and whether an entry holds it.
pub async fn look_up(
    root: &crate::root::ConfigRoot,
    task: &Task,
    opts: &Options,
    image_id: &str,
    ca: &[(String, Vec<u8>)],
    secrets: &[(String, SecretValue)],
) -> Result<Option<Lookup>, RunError> {
    let env = &task.env;
    if env.cache.is_none() {
        return Ok(None);
    }
    let started = SystemTime::now();
    let (key, scope, parts) = compute(
        root.dir(),
        env,
        &task.workspace,
        image_id,
        ca,
        secrets,
        opts.identity.as_deref(),
    )?;
    let (hit, reason, fill) = match opts.cache {
        Mode::Off => (None, Some("cache off (--no-cache)".to_string()), false),
        Mode::Refresh => (None, Some("refresh asked (--refresh-cache)".into()), true),
        Mode::Use => {
            let entries = store::list_scope(&*opts.engine, &scope).await?;
            let (hit, reason) = decide(&entries, &env.name, &key, &parts, started);
            let fill = hit.is_none();
            (hit, reason, fill)
        }
    };
    Ok(Some(Lookup {
        key,
        scope,
        parts,
        hit,
        reason,
        fill,
        root_dir: root.dir().to_path_buf(),
        started,
        mode: opts.cache,
    }))
}

/// On a hit, what the setup container runs before the maintenance script: the entry laid
/// over the host workspace it was given, the persist paths replaced by the entry's, the
/// handed-over variables written back to `$AIRLOCK_ENV`.
pub fn restore_script(env: &Environment) -> String {
    let m = store::MOUNT;
    let mut s = format!("cp -a {m}/workspace/. /workspace/ || exit 1\n");
    s.push_str(&format!(
        "while IFS= read -r p; do [ -n \"$p\" ] && rm -rf \"/workspace/$p\"; done < {m}/deleted\n"
    ));
    for (i, path) in env.persist.iter().enumerate() {
        let q = String::from_utf8_lossy(&shell_quote(path.as_bytes())).into_owned();
        s.push_str(&format!(
            "rm -rf {q}/* {q}/.[!.]* {q}/..?* && mkdir -p {q} && cp -a {m}/persist{i}/. {q}/ || exit 1\n"
        ));
    }
    s.push_str(&format!("cat {m}/env >> \"$AIRLOCK_ENV\" || exit 1\n"));
    s
}

/// Whether the boundary's sweep can be skipped: a hit with no maintenance script, where
/// nothing but airlock's restore ran in the setup container (see `run::boundary`).
pub fn nothing_to_sweep(ready: &Ready, env: &Environment) -> bool {
    ready.cache.as_ref().is_some_and(|c| c.hit.is_some()) && env.maintenance.is_none()
}

/// The mount of a hit's entry in the setup container.
pub fn entry_mount(entry: &Entry) -> crate::engine::VolumeMount {
    crate::engine::VolumeMount {
        volume: entry.volume.clone(),
        target: store::MOUNT.into(),
        read_only: true,
        fill_from_image: false,
    }
}

/// Hook 3, after the boundary passed: on a miss, save what crossed. A failure here never
/// fails the run (it only costs the next run a miss); it is said as a warning.
pub async fn after_boundary(
    run: &Ctx<'_>,
    ready: &Ready,
    plan: &MountPlan,
    setup: &SetupDone,
    crossing: &Crossing,
    report: &mut Report,
) {
    let Some(lookup) = &ready.cache else {
        return;
    };
    let env = &run.task.env;
    if lookup.hit.is_some() {
        store::record_hit(&lookup.root_dir, &lookup.key);
        return;
    }
    if !lookup.fill {
        return;
    }
    let settings = env.cache.clone().unwrap_or_default();
    let handed: Vec<(String, String)> = crossing
        .variables
        .iter()
        .filter(|(k, v)| env.env.get(k) != Some(v))
        .cloned()
        .collect();
    let filled = store::fill(
        run.engine,
        store::Fill {
            run_id: &run.names.run_id,
            owner: &ready.owner,
            key: &lookup.key,
            scope: &lookup.scope,
            env: &env.name,
            parts: &lookup.parts,
            ttl: settings.ttl,
            roots: &plan.roots,
            volumes: plan.volumes(),
            before: &setup.packed,
            after: &crossing.workspace,
            handed: &handed,
            refresh: run.opts.cache == Mode::Refresh,
            started: lookup.started,
        },
    )
    .await;
    run.lap("cache filled");
    match filled {
        Ok(store::Filled::Published { size }) => {
            run.events.event(&Event::Note(format!(
                "cache: saved {} ({})",
                store::short(&lookup.key),
                crate::environment::show_size(size)
            )));
            if let Some(c) = report.cache.as_mut() {
                c.saved = Some(true);
            }
            let pruned = store::prune(
                run.engine,
                &lookup.scope,
                Some(&env.name),
                Some(settings.max_size),
                Some(&lookup.key),
            )
            .await;
            if let Ok(gone) = pruned {
                for e in gone {
                    run.events.event(&Event::Note(format!(
                        "cache: removed {} of {} (past max_size {} or expired)",
                        e.short(),
                        e.env,
                        crate::environment::show_size(settings.max_size)
                    )));
                }
            }
        }
        Ok(store::Filled::Lost) => {
            if let Some(c) = report.cache.as_mut() {
                c.saved = Some(false);
            }
            run.events.event(&Event::Note(format!(
                "cache: another run saved {} at the same time; its entry is kept",
                store::short(&lookup.key)
            )))
        }
        Err(e) => {
            if let Some(c) = report.cache.as_mut() {
                c.saved = Some(false);
            }
            run.events.event(&Event::Warning(format!(
                "cache: could not save what crossed (the next run will miss): {e}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(key: &str, env: &str, created: u64, parts: &[(&str, &str)]) -> Entry {
        Entry {
            key: key.into(),
            scope: "s".into(),
            env: env.into(),
            created,
            ttl: Duration::from_secs(12 * 3600),
            size: 1,
            volume: format!("v-{key}"),
            marker: format!("m-{key}"),
            parts: parts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_run_hits_misses_or_finds_the_entry_expired() {
        let t0 = 1_700_000_000;
        let now = UNIX_EPOCH_PLUS(t0 + 60);
        let parts: Parts = [("setup".to_string(), "b".to_string())].into();
        let entries = vec![
            entry("k2", "py", t0, &[("setup", "a")]),
            entry("k1", "py", t0 - 100, &[("setup", "z")]),
        ];
        let (hit, why) = decide(&entries, "py", "k2", &parts, now);
        assert_eq!(hit.unwrap().key, "k2");
        assert_eq!(why, None);
        let (hit, why) = decide(&entries, "py", "k3", &parts, now);
        assert!(hit.is_none());
        assert_eq!(why.as_deref(), Some("setup script changed"));
        let (_, why) = decide(&entries, "other", "k3", &parts, now);
        assert_eq!(why.as_deref(), Some("no entry yet"));
        let later = UNIX_EPOCH_PLUS(t0 + 13 * 3600 + 5);
        let (hit, why) = decide(&entries, "py", "k2", &parts, later);
        assert!(hit.is_none());
        assert_eq!(why.as_deref(), Some("expired (13h old, ttl 12h)"));
    }

    #[allow(non_snake_case)]
    fn UNIX_EPOCH_PLUS(secs: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(secs)
    }
}
