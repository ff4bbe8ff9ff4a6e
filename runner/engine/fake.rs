//! An in-process engine for unit tests: it plays each phase from a script instead of running
//! a container, so the run library's every ending (setup failed or timed out, boundary
//! refused, agent timed out or out of memory, cancelled, engine lost mid-run) is driven
//! without a daemon. It keeps volumes as in-memory file trees and serves the archive API
//! from them the way Docker does (`<basename>/…` entries), so the boundary check and the
//! patch read real tar streams.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::{
    labels, Attached, BuildSpec, Built, ByteStream, Chunk, ContainerSpec, DownloadStream, Engine,
    EngineError, Exited, Image, ImportSpec, Object, ObjectKind,
};

/// What one phase does when its container starts.
#[derive(Debug, Clone, Default)]
pub struct Play {
    /// Output, in order: `(stderr?, bytes)`.
    pub output: Vec<(bool, Vec<u8>)>,
    /// Files written (absolute container paths; under a mounted volume they land in it).
    pub writes: Vec<(String, Vec<u8>)>,
    pub exit: i64,
    pub oom_killed: bool,
    /// Run until stopped (then exit 137).
    pub hang: bool,
}

/// The whole script: one play per phase, and where the engine "goes away".
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub setup: Play,
    pub agent: Play,
    /// The boundary's sweep (default: nothing to remove).
    pub sweep: Play,
    /// The first request whose description starts with this fails as a lost connection
    /// (e.g. `create agent`), and every request after it.
    pub lose_at: Option<String>,
    /// A host file written when the agent phase starts (someone editing the workspace on the
    /// host while the run runs).
    pub host_edit: Option<(std::path::PathBuf, Vec<u8>)>,
}

#[derive(Default)]
struct Container {
    spec: ContainerSpec,
    phase: String,
    output: Option<mpsc::UnboundedSender<Result<Chunk, EngineError>>>,
    exited: Option<watch::Sender<Option<Exited>>>,
    stop: Option<Arc<tokio::sync::Notify>>,
    /// Files outside any volume (e.g. `/airlock/crossing/env`).
    rootfs: BTreeMap<String, Vec<u8>>,
}

/// A volume's files: path relative to its root → content.
type Files = BTreeMap<String, Vec<u8>>;

#[derive(Default)]
struct State {
    containers: HashMap<String, Container>,
    /// Volume name → labels, files (path relative to the volume root → content).
    volumes: HashMap<String, (HashMap<String, String>, Files)>,
    networks: HashMap<String, HashMap<String, String>>,
    lost: bool,
    next: u64,
}

/// The fake engine.
pub struct FakeEngine {
    script: Script,
    state: Arc<Mutex<State>>,
    images: HashSet<String>,
}

impl std::fmt::Debug for FakeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeEngine")
    }
}

impl FakeEngine {
    /// An engine holding the image `fake:latest`, playing `script`.
    pub fn new(script: Script) -> FakeEngine {
        FakeEngine {
            script,
            state: Default::default(),
            images: ["fake:latest".to_string()].into(),
        }
    }

    /// Every object still in the engine (what a run left behind).
    pub fn leftovers(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut v: Vec<String> = s.containers.values().map(|c| c.spec.name.clone()).collect();
        v.extend(s.volumes.keys().cloned());
        v.extend(s.networks.keys().cloned());
        v.sort();
        v
    }

    fn check(&self, doing: &str) -> Result<(), EngineError> {
        let mut s = self.state.lock().unwrap();
        if let Some(at) = &self.script.lose_at {
            if doing.starts_with(at.as_str()) {
                s.lost = true;
            }
        }
        if s.lost {
            return Err(EngineError::Lost {
                doing: doing.to_string(),
                cause: "Connection refused (os error 111)".into(),
                source: "connection refused".into(),
            });
        }
        Ok(())
    }

    fn phase_of(&self, id: &str) -> String {
        let s = self.state.lock().unwrap();
        s.containers
            .get(id)
            .map(|c| c.phase.clone())
            .unwrap_or_default()
    }
}

/// Write `data` at container path `path`: into the volume mounted over it, else the rootfs.
fn write_path(s: &mut State, id: &str, path: &str, data: Vec<u8>) {
    let Some(c) = s.containers.get(id) else {
        return;
    };
    let mount = c
        .spec
        .volumes
        .iter()
        .filter(|m| path.starts_with(&format!("{}/", m.target)))
        .max_by_key(|m| m.target.len())
        .map(|m| (m.volume.clone(), path[m.target.len() + 1..].to_string()));
    match mount {
        Some((volume, rel)) => {
            if let Some((_, files)) = s.volumes.get_mut(&volume) {
                files.insert(rel, data);
            }
        }
        None => {
            if let Some(c) = s.containers.get_mut(id) {
                c.rootfs.insert(path.to_string(), data);
            }
        }
    }
}

/// A tar of `files` (relative paths) under `top/`, with every folder as an entry, as the
/// engine's archive API sends it.
fn tar_of(top: &str, trees: &[(String, BTreeMap<String, Vec<u8>>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        let _ = b.append_data(&mut h, format!("{path}/"), std::io::empty());
    };
    dir(&mut b, top);
    for (prefix, files) in trees {
        let base = if prefix.is_empty() {
            top.to_string()
        } else {
            dir(&mut b, &format!("{top}/{prefix}"));
            format!("{top}/{prefix}")
        };
        let mut made: HashSet<String> = HashSet::new();
        for (rel, data) in files {
            let parts: Vec<&str> = rel.split('/').collect();
            for i in 1..parts.len() {
                let d = parts[..i].join("/");
                if made.insert(d.clone()) {
                    dir(&mut b, &format!("{base}/{d}"));
                }
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            let _ = b.append_data(&mut h, format!("{base}/{rel}"), &data[..]);
        }
    }
    b.into_inner().unwrap_or_default()
}

#[async_trait]
impl Engine for FakeEngine {
    fn host(&self) -> &str {
        "fake://"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.check("ping")
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let phase = spec.labels.get(labels::PHASE).cloned().unwrap_or_default();
        self.check(&format!("create {phase}"))?;
        let mut s = self.state.lock().unwrap();
        if s.containers.values().any(|c| c.spec.name == spec.name) {
            return Err(EngineError::Other {
                doing: format!("creating container {}", spec.name),
                message: "name in use".into(),
            });
        }
        s.next += 1;
        let id = format!("c{}", s.next);
        s.containers.insert(
            id.clone(),
            Container {
                spec: spec.clone(),
                phase,
                ..Default::default()
            },
        );
        Ok(id)
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<Attached, EngineError> {
        self.check(&format!("attach {}", self.phase_of(id)))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (etx, _) = watch::channel(None);
        let mut s = self.state.lock().unwrap();
        let c = s.containers.get_mut(id).ok_or_else(|| EngineError::Other {
            doing: format!("attaching to {id}"),
            message: "no such container".into(),
        })?;
        c.output = Some(tx);
        c.exited = Some(etx);
        c.stop = Some(Arc::new(tokio::sync::Notify::new()));
        let output = tokio_stream_from(rx);
        Ok(Attached {
            output,
            input: stdin.then(|| Box::pin(tokio::io::sink()) as _),
        })
    }

    async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        let phase = self.phase_of(id);
        self.check(&format!("start {phase}"))?;
        let play = match phase.as_str() {
            "setup" => self.script.setup.clone(),
            "sweep" => self.script.sweep.clone(),
            _ => self.script.agent.clone(),
        };
        if let (Some((path, data)), "agent") = (&self.script.host_edit, phase.as_str()) {
            std::fs::write(path, data).map_err(|e| EngineError::Other {
                doing: "editing the host workspace".into(),
                message: e.to_string(),
            })?;
        }
        let (tx, exited, stop) = {
            let mut s = self.state.lock().unwrap();
            let c = s.containers.get_mut(id).unwrap();
            (c.output.take(), c.exited.clone(), c.stop.clone())
        };
        let state = self.state.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            {
                let mut s = state.lock().unwrap();
                for (path, data) in &play.writes {
                    write_path(&mut s, &id, path, data.clone());
                }
            }
            if let Some(tx) = &tx {
                for (err, data) in &play.output {
                    let b = Bytes::from(data.clone());
                    let _ = tx.send(Ok(if *err {
                        Chunk::Stderr(b)
                    } else {
                        Chunk::Stdout(b)
                    }));
                }
            }
            let code = if play.hang {
                if let Some(stop) = stop {
                    stop.notified().await;
                }
                137
            } else {
                play.exit
            };
            drop(tx);
            if let Some(e) = exited {
                e.send_replace(Some(Exited {
                    code,
                    oom_killed: play.oom_killed,
                }));
            }
        });
        Ok(())
    }

    async fn wait_container(&self, id: &str) -> Result<Exited, EngineError> {
        self.check(&format!("wait {}", self.phase_of(id)))?;
        let rx = {
            let s = self.state.lock().unwrap();
            s.containers
                .get(id)
                .and_then(|c| c.exited.as_ref().map(|e| e.subscribe()))
        };
        let Some(mut rx) = rx else {
            return Ok(Exited {
                code: 0,
                oom_killed: false,
            });
        };
        loop {
            if let Some(e) = *rx.borrow() {
                return Ok(e);
            }
            if rx.changed().await.is_err() {
                return Err(EngineError::Other {
                    doing: format!("waiting for {id}"),
                    message: "gone".into(),
                });
            }
        }
    }

    async fn stop_container(&self, id: &str, _grace_secs: i32) -> Result<(), EngineError> {
        self.check(&format!("stop {}", self.phase_of(id)))?;
        let stop = {
            let s = self.state.lock().unwrap();
            s.containers.get(id).and_then(|c| c.stop.clone())
        };
        if let Some(stop) = stop {
            stop.notify_one();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        self.check("remove container")?;
        let mut s = self.state.lock().unwrap();
        if let Some(c) = s.containers.remove(id) {
            if let Some(stop) = c.stop {
                stop.notify_one();
            }
        }
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerSpec, EngineError> {
        let s = self.state.lock().unwrap();
        s.containers
            .get(id)
            .map(|c| c.spec.clone())
            .ok_or_else(|| EngineError::Other {
                doing: format!("inspecting {id}"),
                message: "no such container".into(),
            })
    }

    async fn commit_container(
        &self,
        _id: &str,
        repo: &str,
        tag: &str,
        _labels: &HashMap<String, String>,
    ) -> Result<String, EngineError> {
        Ok(format!("sha256:{repo}-{tag}"))
    }

    async fn upload(&self, id: &str, path: &str, tar: ByteStream) -> Result<(), EngineError> {
        self.check(&format!("upload {}", self.phase_of(id)))?;
        let mut data = Vec::new();
        let mut tar = tar;
        while let Some(chunk) = tar.next().await {
            data.extend_from_slice(&chunk.map_err(|e| EngineError::Other {
                doing: "uploading".into(),
                message: e.to_string(),
            })?);
        }
        let mut archive = tar::Archive::new(&data[..]);
        let mut s = self.state.lock().unwrap();
        for entry in archive.entries().into_iter().flatten().flatten() {
            let mut entry = entry;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let rel = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut content = Vec::new();
            let _ = std::io::Read::read_to_end(&mut entry, &mut content);
            let full = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                rel.trim_start_matches("./")
            );
            write_path(&mut s, id, &full, content);
        }
        Ok(())
    }

    fn download(&self, id: &str, path: &str) -> DownloadStream {
        let result = self.check(&format!("download {}", self.phase_of(id)));
        let s = self.state.lock().unwrap();
        let top = path.rsplit('/').next().unwrap_or(path).to_string();
        let tar = result.map(|()| {
            let Some(c) = s.containers.get(id) else {
                return tar_of(&top, &[]);
            };
            let mut trees = Vec::new();
            // The folder itself, when a volume is mounted there.
            if let Some(m) = c.spec.volumes.iter().find(|m| m.target == path) {
                let files = s
                    .volumes
                    .get(&m.volume)
                    .map(|v| v.1.clone())
                    .unwrap_or_default();
                trees.push((String::new(), files));
            }
            // Volumes mounted below it, and rootfs files below it.
            for m in &c.spec.volumes {
                if let Some(rel) = m.target.strip_prefix(&format!("{path}/")) {
                    let files = s
                        .volumes
                        .get(&m.volume)
                        .map(|v| v.1.clone())
                        .unwrap_or_default();
                    trees.push((rel.to_string(), files));
                }
            }
            let loose: BTreeMap<String, Vec<u8>> = c
                .rootfs
                .iter()
                .filter_map(|(p, d)| {
                    p.strip_prefix(&format!("{path}/"))
                        .map(|r| (r.to_string(), d.clone()))
                })
                .collect();
            if !loose.is_empty() {
                trees.push((String::new(), loose));
            }
            tar_of(&top, &trees)
        });
        Box::pin(futures_util::stream::once(
            async move { tar.map(Bytes::from) },
        ))
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        self.check("create volume")?;
        let mut s = self.state.lock().unwrap();
        s.volumes
            .insert(name.to_string(), (labels.clone(), BTreeMap::new()));
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.check("remove volume")?;
        self.state.lock().unwrap().volumes.remove(name);
        Ok(())
    }

    async fn create_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        self.check("create network")?;
        let mut s = self.state.lock().unwrap();
        s.networks.insert(name.to_string(), labels.clone());
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        self.check("remove network")?;
        self.state.lock().unwrap().networks.remove(name);
        Ok(())
    }

    async fn list_labelled(&self, label_filters: &[String]) -> Result<Vec<Object>, EngineError> {
        self.check("list")?;
        let s = self.state.lock().unwrap();
        let matches = |l: &HashMap<String, String>| {
            label_filters.iter().all(|f| {
                let (k, v) = f.split_once('=').unwrap_or((f, ""));
                l.get(k).is_some_and(|x| x == v)
            })
        };
        let mut out = Vec::new();
        for (id, c) in &s.containers {
            if matches(&c.spec.labels) {
                out.push(Object {
                    kind: ObjectKind::Container,
                    id: id.clone(),
                    name: c.spec.name.clone(),
                    labels: c.spec.labels.clone(),
                });
            }
        }
        for (name, l) in &s.networks {
            if matches(l) {
                out.push(Object {
                    kind: ObjectKind::Network,
                    id: name.clone(),
                    name: name.clone(),
                    labels: l.clone(),
                });
            }
        }
        for (name, (l, _)) in &s.volumes {
            if matches(l) {
                out.push(Object {
                    kind: ObjectKind::Volume,
                    id: name.clone(),
                    name: name.clone(),
                    labels: l.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<Image>, EngineError> {
        self.check("inspect image")?;
        Ok(self.images.contains(reference).then(|| Image {
            id: format!("sha256:{reference}"),
            tags: vec![reference.to_string()],
            labels: HashMap::new(),
            size: 0,
            created: 0,
        }))
    }

    async fn list_images(&self, _label_filters: &[String]) -> Result<Vec<Image>, EngineError> {
        Ok(Vec::new())
    }

    async fn remove_image(&self, _reference: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn build_image(
        &self,
        _spec: BuildSpec,
        _output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> Result<Built, EngineError> {
        Ok(Built::StepFailed("the fake engine builds nothing".into()))
    }

    async fn import_image(&self, _spec: ImportSpec) -> Result<(), EngineError> {
        Ok(())
    }
}

fn tokio_stream_from(
    mut rx: mpsc::UnboundedReceiver<Result<Chunk, EngineError>>,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Chunk, EngineError>> + Send>> {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}
