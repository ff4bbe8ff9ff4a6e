//! Where entries live: on the engine, as volumes, each published by a marker container.
//!
//! An entry is two objects, both labelled `airlock.managed=true` and `airlock.cache.*`:
//!
//! - its **data volume** (`airlock-cachedata-<key>-<run id>`), filled by one run after its
//!   boundary passed: `workspace/` (what setup changed in the workspace, and every folder),
//!   `persistN/` (each persist path whole), `env` (the variables setup handed over, as an
//!   `$AIRLOCK_ENV` file) and `deleted` (workspace paths setup removed). It carries the
//!   filling process as `airlock.owner`;
//! - its **marker** (`airlock-cache-<key>`), a container that is created and never started,
//!   mounting the data volume read-only. A container's name is unique on an engine, so
//!   creating it is the atomic step that publishes the entry: of two runs filling one key at
//!   once, one creates the marker, the other finds it and removes its own data volume. The
//!   marker's labels hold what `cache ls` and the explanations need (env, created, size, the
//!   key's parts); while it exists the engine refuses to remove the volume it mounts.
//!
//! So an entry is live exactly when its marker exists. `gc` removes a data volume that no
//! marker names once its filler is dead (a fill that never finished), and never a live one.
//! The agent phase never mounts an entry: a hit's setup container copies it into the run's
//! own volumes.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::boundary::{Root, RootKind};
use crate::engine::{
    labels, ContainerSpec, Engine, EngineError, Network, Object, ObjectKind, VolumeMount,
};
use crate::workspace::{blocking_reader, is_git_path, Manifest};

use super::key::Parts;

/// `entry` on markers, `data` on data volumes.
pub const KIND: &str = "airlock.cache";
pub const KEY: &str = "airlock.cache.key";
pub const SCOPE: &str = "airlock.cache.root";
pub const ENV: &str = "airlock.cache.env";
pub const CREATED: &str = "airlock.cache.created";
pub const TTL: &str = "airlock.cache.ttl";
pub const SIZE: &str = "airlock.cache.size";
pub const VOLUME: &str = "airlock.cache.volume";
pub const PARTS: &str = "airlock.cache.parts";

/// Where a hit's setup container sees the entry (read-only).
pub const MOUNT: &str = "/airlock/cache";

/// One published entry, as its marker describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub scope: String,
    pub env: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub ttl: Duration,
    pub size: u64,
    pub volume: String,
    pub marker: String,
    pub parts: Parts,
}

impl Entry {
    fn from_object(o: &Object) -> Option<Entry> {
        let l = &o.labels;
        let get = |k: &str| l.get(k).cloned();
        Some(Entry {
            key: get(KEY)?,
            scope: get(SCOPE)?,
            env: get(ENV)?,
            created: get(CREATED)?.parse().ok()?,
            ttl: Duration::from_secs(get(TTL)?.parse().ok()?),
            size: get(SIZE)?.parse().ok()?,
            volume: get(VOLUME)?,
            marker: o.name.clone(),
            parts: serde_json::from_str(&get(PARTS)?).ok()?,
        })
    }

    pub fn age(&self, now: SystemTime) -> Duration {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Duration::from_secs(now.saturating_sub(self.created))
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        self.age(now) > self.ttl
    }

    /// The key as people see it: its first 12 digits.
    pub fn short(&self) -> &str {
        short(&self.key)
    }
}

pub fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}

pub fn marker_name(key: &str) -> String {
    format!("airlock-cache-{}", &key[..key.len().min(32)])
}

/// Every published entry on the engine (of every config root), newest first.
pub async fn list(engine: &dyn Engine) -> Result<Vec<Entry>, EngineError> {
    let objects = engine.list_labelled(&[format!("{KIND}=entry")]).await?;
    let mut v: Vec<Entry> = objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Container)
        .filter_map(Entry::from_object)
        .collect();
    v.sort_by(|a, b| b.created.cmp(&a.created).then(a.key.cmp(&b.key)));
    Ok(v)
}

/// The entries of one config root.
pub async fn list_scope(engine: &dyn Engine, scope: &str) -> Result<Vec<Entry>, EngineError> {
    Ok(list(engine)
        .await?
        .into_iter()
        .filter(|e| e.scope == scope)
        .collect())
}

/// Remove an entry: its marker, then its data volume (which the engine keeps while a hit
/// still copies from it; `gc` removes it later).
pub async fn remove(engine: &dyn Engine, entry: &Entry) -> Result<(), EngineError> {
    engine.remove_container(&entry.marker).await?;
    engine.remove_volume(&entry.volume).await
}

/// What a fill needs.
pub struct Fill<'a> {
    pub run_id: &'a str,
    pub owner: &'a str,
    pub key: &'a str,
    pub scope: &'a str,
    pub env: &'a str,
    pub parts: &'a Parts,
    pub ttl: Duration,
    /// The run's crossing roots and their volumes (as setup left them).
    pub roots: &'a [Root],
    pub volumes: &'a [String],
    /// The workspace as packed (before setup) and as it crossed (after).
    pub before: &'a Manifest,
    pub after: &'a Manifest,
    /// The variables setup handed over (its `$AIRLOCK_ENV` lines).
    pub handed: &'a [(String, String)],
    /// Replace a live entry of the same key made before `started` (`--refresh-cache`).
    pub refresh: bool,
    pub started: SystemTime,
}

/// How a fill ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Filled {
    /// This run's entry is the published one.
    Published { size: u64 },
    /// Another run published the same key first; ours was discarded.
    Lost,
}

/// Copy what crossed into a new entry and publish it.
pub async fn fill(engine: &dyn Engine, f: Fill<'_>) -> Result<Filled, EngineError> {
    let data = format!("airlock-cachedata-{}-{}", short(f.key), f.run_id);
    let mut vol_labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (KIND.to_string(), "data".to_string()),
        (KEY.to_string(), f.key.to_string()),
        (SCOPE.to_string(), f.scope.to_string()),
        (ENV.to_string(), f.env.to_string()),
        (labels::OWNER.to_string(), f.owner.to_string()),
    ]);
    engine.create_volume(&data, &vol_labels).await?;
    let copied = copy_in(engine, &f, &data).await;
    let size = match copied {
        Ok(size) => size,
        Err(e) => {
            let _ = engine.remove_volume(&data).await;
            return Err(e);
        }
    };
    vol_labels.clear();
    let created = f
        .started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let marker_labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (KIND.to_string(), "entry".to_string()),
        (KEY.to_string(), f.key.to_string()),
        (SCOPE.to_string(), f.scope.to_string()),
        (ENV.to_string(), f.env.to_string()),
        (CREATED.to_string(), created.to_string()),
        (TTL.to_string(), f.ttl.as_secs().to_string()),
        (SIZE.to_string(), size.to_string()),
        (VOLUME.to_string(), data.clone()),
        (
            PARTS.to_string(),
            serde_json::to_string(f.parts).unwrap_or_default(),
        ),
    ]);
    let spec = ContainerSpec {
        name: marker_name(f.key),
        image: crate::boundary::sweep::image(),
        cmd: vec!["/airlock-sweep".into()],
        user: Some("0:0".into()),
        labels: marker_labels,
        network: Network::None,
        volumes: vec![VolumeMount {
            volume: data.clone(),
            target: "/entry".into(),
            read_only: true,
            fill_from_image: false,
        }],
        pids: Some(16),
        ..ContainerSpec::default()
    };
    for attempt in 0..2 {
        match engine.create_container(&spec).await {
            Ok(_) => return Ok(Filled::Published { size }),
            Err(e) => {
                let held = list(engine).await?.into_iter().find(|x| x.key == f.key);
                let Some(old) = held else {
                    let _ = engine.remove_volume(&data).await;
                    return Err(e);
                };
                let stale = old.expired(SystemTime::now()) || f.refresh && old.created <= created;
                if stale && attempt == 0 {
                    remove(engine, &old).await.ok();
                    continue;
                }
                let _ = engine.remove_volume(&data).await;
                return Ok(Filled::Lost);
            }
        }
    }
    let _ = engine.remove_volume(&data).await;
    Ok(Filled::Lost)
}

/// The data volume filled through a container that is created, never started (the archive
/// API reads and writes a created container's mounts): what crossed is read from the run's
/// volumes, filtered (the workspace down to what setup changed), and written into `data`.
async fn copy_in(engine: &dyn Engine, f: &Fill<'_>, data: &str) -> Result<u64, EngineError> {
    let mut volumes = vec![VolumeMount {
        volume: data.to_string(),
        target: "/to".into(),
        read_only: false,
        fill_from_image: false,
    }];
    for (root, volume) in f.roots.iter().zip(f.volumes) {
        if root.kind == RootKind::Git {
            continue;
        }
        volumes.push(VolumeMount {
            volume: volume.clone(),
            target: format!("/from/{}", root.alias),
            read_only: true,
            fill_from_image: false,
        });
    }
    let spec = ContainerSpec {
        name: format!("airlock-{}-cachefill", f.run_id),
        image: crate::boundary::sweep::image(),
        cmd: vec!["/airlock-sweep".into()],
        user: Some("0:0".into()),
        labels: labels::for_run(f.run_id, "cachefill", f.owner),
        network: Network::None,
        volumes,
        pids: Some(16),
        ..ContainerSpec::default()
    };
    let id = engine.create_container(&spec).await?;
    let result = async {
        let reader = blocking_reader(Box::pin(engine.download(&id, "/from")));
        let keep = Keep::new(f.before.clone(), f.after.clone());
        let env_file = env_file(f.handed);
        let other = |m: String| EngineError::Other {
            doing: "filling the cache entry".into(),
            message: m,
        };
        let (file, size) =
            tokio::task::spawn_blocking(move || filter(reader, &keep, env_file.as_bytes()))
                .await
                .map_err(|e| other(e.to_string()))?
                .map_err(|e| other(e.to_string()))?;
        let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
        let stream = futures_util::StreamExt::map(stream, |r| r);
        engine.upload(&id, "/to", Box::pin(stream)).await?;
        Ok::<u64, EngineError>(size)
    }
    .await;
    let removed = engine.remove_container(&id).await;
    let size = result?;
    removed?;
    Ok(size)
}

/// What of the workspace an entry keeps: what setup added or changed, and the folders
/// that hold it (with their state after setup); never a folder only the host had.
struct Keep {
    before: Manifest,
    after: Manifest,
    /// Folders above something kept.
    parents: std::collections::HashSet<Vec<u8>>,
}

impl Keep {
    fn new(before: Manifest, after: Manifest) -> Keep {
        let mut keep = Keep {
            before,
            after,
            parents: Default::default(),
        };
        let kept: Vec<Vec<u8>> = keep
            .after
            .entries
            .keys()
            .filter(|p| keep.changed(p))
            .cloned()
            .collect();
        for path in kept {
            let mut p = &path[..];
            while let Some(i) = p.iter().rposition(|&b| b == b'/') {
                p = &p[..i];
                if !keep.parents.insert(p.to_vec()) {
                    break;
                }
            }
        }
        keep
    }

    /// Added or changed by setup (a folder: made by setup).
    fn changed(&self, rel: &[u8]) -> bool {
        if is_git_path(rel) {
            return false;
        }
        match self.after.entries.get(rel) {
            Some(e) => self.before.entries.get(rel) != Some(e),
            None => false,
        }
    }

    fn keeps(&self, rel: &[u8]) -> bool {
        self.changed(rel) || !is_git_path(rel) && self.parents.contains(rel)
    }

    /// Workspace paths setup removed, one per line (a name with a line break can't be
    /// listed, and is left out: the host's copy of it then comes back on a hit).
    fn deleted(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for path in self.before.entries.keys() {
            if !self.after.entries.contains_key(path)
                && !is_git_path(path)
                && !path.contains(&b'\n')
            {
                out.extend_from_slice(path);
                out.push(b'\n');
            }
        }
        out
    }
}

/// The handed-over variables as an `$AIRLOCK_ENV` file (heredoc form, a delimiter no value
/// holds as a line).
fn env_file(vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in vars {
        let mut delim = "AIRLOCK_CACHE_EOF".to_string();
        while v.lines().any(|l| l == delim) {
            delim.push('_');
        }
        out.push_str(&format!("{k}<<{delim}\n"));
        if !v.is_empty() {
            out.push_str(v);
            out.push('\n');
        }
        out.push_str(&delim);
        out.push('\n');
    }
    out
}

/// Rewrite the tar of `/from` (entries `from/<alias>/…`) as the entry's tar (entries
/// `<alias>/…`, plus `env` and `deleted`) into a temporary file; returns it (rewound) and
/// the bytes of the files it holds.
fn filter(reader: impl Read, keep: &Keep, env: &[u8]) -> std::io::Result<(std::fs::File, u64)> {
    let mut out = tar::Builder::new(tempfile::tempfile()?);
    let mut size = 0u64;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path_bytes().into_owned();
        let Some(rest) = path.strip_prefix(b"from/") else {
            continue;
        };
        let mut parts = rest.splitn(2, |&b| b == b'/');
        let alias = parts.next().unwrap_or_default().to_vec();
        let rel = parts.next().unwrap_or_default();
        let rel = rel.strip_suffix(b"/").unwrap_or(rel).to_vec();
        let workspace = alias == b"workspace";
        if alias.is_empty() || workspace && !rel.is_empty() && !keep.keeps(&rel) {
            continue;
        }
        let name = if rel.is_empty() {
            alias.clone()
        } else {
            [&alias[..], b"/", &rel[..]].concat()
        };
        let name = std::path::PathBuf::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name),
        );
        // A fresh header with the entry's metadata: a copied ustar header would keep its
        // `prefix` field, which the new name would then be read under.
        let from = entry.header();
        let kind = from.entry_type();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(from.mode()?);
        header.set_uid(from.uid().unwrap_or(0));
        header.set_gid(from.gid().unwrap_or(0));
        header.set_mtime(from.mtime().unwrap_or(0));
        header.set_size(if kind.is_file() || kind == tar::EntryType::Continuous {
            entry.size()
        } else {
            0
        });
        match kind {
            tar::EntryType::Link | tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let link = if kind == tar::EntryType::Link {
                    let Some(t) = link.strip_prefix(b"from/") else {
                        continue;
                    };
                    if workspace {
                        let trel = t.strip_prefix(b"workspace/").unwrap_or(t);
                        if !keep.keeps(trel) {
                            continue;
                        }
                    }
                    t.to_vec()
                } else {
                    link
                };
                let link = std::path::PathBuf::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&link),
                );
                out.append_link(&mut header, &name, &link)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {
                if kind != tar::EntryType::Directory {
                    size += entry.size();
                }
                out.append_data(&mut header, &name, &mut entry)?;
            }
            _ => {} // the boundary refused anything else already
        }
    }
    for (name, data) in [("env", env), ("deleted", &keep.deleted()[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut h, name, data)?;
    }
    let mut file = out.into_inner()?;
    file.flush()?;
    file.rewind()?;
    Ok((file, size))
}

/// What `gc` found among the cache's objects.
#[derive(Debug, Default)]
pub struct Gc {
    /// Data volumes no marker names whose filler is gone (a fill that never finished).
    pub removed: Vec<String>,
    pub errors: Vec<EngineError>,
}

/// Remove the broken: data volumes that no marker publishes, once their filler is dead.
/// Never a live entry (its marker names its volume) nor a fill in progress.
pub async fn gc(engine: &dyn Engine, dry_run: bool) -> Result<Gc, EngineError> {
    let live: Vec<String> = list(engine).await?.into_iter().map(|e| e.volume).collect();
    let data = engine.list_labelled(&[format!("{KIND}=data")]).await?;
    let mut report = Gc::default();
    for o in data.iter().filter(|o| o.kind == ObjectKind::Volume) {
        if live.contains(&o.name) {
            continue;
        }
        let owner = o
            .labels
            .get(labels::OWNER)
            .map(String::as_str)
            .unwrap_or("");
        if crate::cleanup::owner_alive(owner) {
            continue;
        }
        if !dry_run {
            if let Err(e) = engine.remove_volume(&o.name).await {
                report.errors.push(e);
                continue;
            }
        }
        report.removed.push(o.name.clone());
    }
    Ok(report)
}

/// Remove expired entries of one config root, then the oldest until the rest hold at most
/// `max_size` bytes. Returns what went.
pub async fn prune(
    engine: &dyn Engine,
    scope: &str,
    env: Option<&str>,
    max_size: Option<u64>,
    keep_key: Option<&str>,
) -> Result<Vec<Entry>, EngineError> {
    let now = SystemTime::now();
    let entries: Vec<Entry> = list_scope(engine, scope)
        .await?
        .into_iter()
        .filter(|e| env.is_none_or(|n| e.env == n))
        .collect();
    let mut doomed = Vec::new();
    let mut total = 0u64;
    // Newest first: the newest stay while they fit.
    for e in entries {
        let keep = keep_key == Some(e.key.as_str());
        if !keep && e.expired(now) {
            doomed.push(e);
            continue;
        }
        total += e.size;
        if !keep && max_size.is_some_and(|m| total > m) {
            total -= e.size;
            doomed.push(e);
        }
    }
    for e in &doomed {
        remove(engine, e).await?;
    }
    Ok(doomed)
}

/// The file counting an entry's hits (one byte per hit), under the config root.
fn hits_file(root_dir: &Path, key: &str) -> PathBuf {
    root_dir
        .join(".airlock")
        .join("cache")
        .join("hits")
        .join(short(key))
}

pub fn record_hit(root_dir: &Path, key: &str) {
    let path = hits_file(root_dir, key);
    let _ = std::fs::create_dir_all(path.parent().unwrap_or(root_dir));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(b"+");
    }
}

pub fn hits(root_dir: &Path, key: &str) -> u64 {
    std::fs::metadata(hits_file(root_dir, key))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Entry as WsEntry;

    fn manifest(items: &[(&str, WsEntry)]) -> Manifest {
        Manifest {
            entries: items
                .iter()
                .map(|(p, e)| (p.as_bytes().to_vec(), e.clone()))
                .collect(),
        }
    }

    fn file(hash: u128) -> WsEntry {
        WsEntry::File {
            size: 1,
            hash,
            executable: false,
        }
    }

    #[test]
    fn an_entry_keeps_what_setup_changed_and_lists_what_it_removed() {
        let keep = Keep::new(
            manifest(&[
                ("src", WsEntry::Dir),
                ("src/a", file(1)),
                ("old", file(2)),
                ("docs", WsEntry::Dir),
            ]),
            manifest(&[
                ("src", WsEntry::Dir),
                ("src/a", file(1)),
                ("src/deep", WsEntry::Dir),
                ("src/deep/gen", file(3)),
                (".venv", WsEntry::Dir),
                ("docs", WsEntry::Dir),
            ]),
        );
        assert!(!keep.keeps(b"src/a"));
        assert!(keep.keeps(b"src/deep/gen"));
        assert!(keep.keeps(b"src/deep"));
        assert!(keep.keeps(b"src"), "a folder above a kept file");
        assert!(keep.keeps(b".venv"));
        assert!(!keep.keeps(b"docs"), "a folder only the host had");
        assert!(!keep.keeps(b".git/config"));
        assert_eq!(keep.deleted(), b"old\n");
    }

    #[test]
    fn the_entry_tar_keeps_long_names_whole_and_drops_what_setup_did_not_change() {
        let deep = format!("from/persist0/{}/file.py", "d".repeat(90));
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("from/", None),
            ("from/workspace/", None),
            ("from/workspace/host.txt", Some(&b"host"[..])),
            ("from/workspace/gen.txt", Some(b"gen")),
            ("from/persist0/", None),
            (deep.as_str(), Some(b"deep")),
        ] {
            // ustar headers, as the engine writes them: long paths go to the prefix field.
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_mtime(1);
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, name, d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, name, &b""[..]).unwrap();
                }
            }
        }
        let input = b.into_inner().unwrap();
        let keep = Keep::new(
            manifest(&[("host.txt", file(1))]),
            manifest(&[("host.txt", file(1)), ("gen.txt", file(2))]),
        );
        let (mut out, size) = filter(&input[..], &keep, b"A=1\n").unwrap();
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let e = e.unwrap();
            assert!(e.header().uid().unwrap() == 1000 || e.header().uid().unwrap() == 0);
            names.push(String::from_utf8(e.path_bytes().into_owned()).unwrap());
        }
        let long = format!("persist0/{}/file.py", "d".repeat(90));
        assert_eq!(
            names,
            [
                "workspace",
                "workspace/gen.txt",
                "persist0",
                &long,
                "env",
                "deleted"
            ]
        );
        assert_eq!(size, 7);
    }

    #[test]
    fn the_env_file_round_trips_through_the_boundary_parser() {
        let vars = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "two\nlines\n".to_string()),
            ("C".to_string(), String::new()),
            ("D".to_string(), "AIRLOCK_CACHE_EOF".to_string()),
        ];
        let text = env_file(&vars);
        let parsed = crate::boundary::envfile::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, vars);
    }
}
