//! The container engine, behind one seam.
//!
//! Everything airlock asks of an engine goes through the [`Engine`] trait: the run library,
//! images, `gc` and `shell` never build a raw API request, never forget a label, and never see
//! which engine answers. The specs handed over are typed ([`ContainerSpec`], [`Network`],
//! [`Tmpfs`]): how those become one engine's API (Docker's `HostConfig`, its tmpfs option
//! strings, `NoCopy`, runtime names) is that engine's business, in its own module:
//!
//! - [`docker`]: the Docker Engine API through bollard (also what Podman's service speaks);
//! - `fake` (unit tests only): an in-process engine that plays scripted phases, so every way a
//!   run can end is tested without a daemon (`cargo test --lib` needs no Docker).
//!
//! Every container, network and volume airlock creates carries the labels in [`labels`]; that
//! is what lets [`crate::cleanup`] find and remove them later, even after airlock was killed.

pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod labels;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncWrite;

/// A shared handle on an engine: many runs (a scheduler's, a service's) use one.
pub type EngineHandle = Arc<dyn Engine>;

/// A stream of bytes going into the engine (a tar to extract, a root filesystem to import).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A stream of bytes coming out of the engine (a tar of a container's files).
pub type DownloadStream = Pin<Box<dyn Stream<Item = Result<Bytes, EngineError>> + Send>>;

/// The cause an engine attached to an error (its own client error, boxed so that no engine's
/// types leak through the seam).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An engine failure. Its message says what airlock was doing; the source says what the
/// engine answered.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {host}: {source}\n  fix: start the engine (e.g. `systemctl start docker`), or point DOCKER_HOST at a running one (e.g. DOCKER_HOST=unix:///var/run/docker.sock), and check that this user may use it")]
    Unreachable {
        host: String,
        #[source]
        source: Cause,
    },
    /// The engine was reachable, then the connection broke or was refused mid-run (the
    /// engine stopped or restarted, its socket went away). Told apart from [`EngineError::Api`]
    /// so the message says what happened in words, not as the HTTP client's error chain.
    #[error("lost the connection to the Docker engine while {doing}: {cause}\n  fix: check that the engine is running (e.g. `systemctl status docker`) and reachable through DOCKER_HOST; `airlock gc RUN-ID` removes what a run left once it answers again")]
    Lost {
        doing: String,
        /// The innermost cause (e.g. `Connection refused (os error 111)`).
        cause: String,
        #[source]
        source: Cause,
    },
    #[error("Docker engine error while {doing}: {source}")]
    Api {
        doing: String,
        #[source]
        source: Cause,
    },
    #[error("Docker engine error while {doing}: {message}")]
    Other { doing: String, message: String },
}

/// Which network a container is on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// No network at all: only the container's own loopback.
    #[default]
    None,
    /// A network airlock created (by name).
    Named(String),
}

/// A volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
    /// Whether an empty volume is filled from the image's files at `target` when mounted
    /// (Docker does that by default, and resets the volume root's owner while doing it).
    pub fill_from_image: bool,
}

/// A memory-backed folder (never reaches the engine's disk, nor its archive API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub path: String,
    pub size: u64,
    /// Permission bits of its root (e.g. `0o1777` for `/tmp`).
    pub mode: u32,
}

/// Everything airlock sets on a container. Built by the run's steps; nothing here knows what
/// a phase is.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    /// `NAME=value` entries. Never a secret: container env shows in `docker inspect`.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub labels: HashMap<String, String>,
    pub network: Network,
    pub volumes: Vec<VolumeMount>,
    pub tmpfs: Vec<Tmpfs>,
    /// Drop every capability and forbid gaining privileges (setuid, file caps).
    pub locked_down: bool,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    /// Keep standard input open for one attach (how the setup phase receives its secrets).
    pub stdin_once: bool,
    pub tty: bool,
    /// An OCI runtime the engine knows by this name (e.g. `runsc`), else its default.
    pub runtime: Option<String>,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    pub code: i64,
    pub oom_killed: bool,
}

/// A container's output, one chunk at a time, and (when asked for) its standard input.
pub struct Attached {
    pub output: Pin<Box<dyn Stream<Item = Result<Chunk, EngineError>> + Send>>,
    pub input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
}

/// One piece of a container's output.
#[derive(Debug)]
pub enum Chunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

impl Chunk {
    pub fn bytes(&self) -> &Bytes {
        match self {
            Chunk::Stdout(b) | Chunk::Stderr(b) => b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    Container,
    Network,
    Volume,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Container => "container",
            ObjectKind::Network => "network",
            ObjectKind::Volume => "volume",
        })
    }
}

/// An engine object airlock made.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: ObjectKind,
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// An image as the engine describes it.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    pub size: i64,
    /// Seconds since the epoch.
    pub created: i64,
}

/// A Dockerfile build: a context tar with `Dockerfile` at its top.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub tag: String,
    pub labels: HashMap<String, String>,
    pub context: Vec<u8>,
    /// Build every step again, ignoring the builder's cache.
    pub no_cache: bool,
}

/// How a build ended, when the engine itself did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// The image was built (its id, when the builder said it).
    Image(Option<String>),
    /// A step failed; the builder's message.
    StepFailed(String),
}

/// A root filesystem to import as an image.
pub struct ImportSpec {
    pub reference: String,
    /// Dockerfile-style instructions applied to the import (`ENV …`, `CMD …`, `LABEL …`).
    pub changes: Vec<String>,
    pub rootfs: ByteStream,
}

/// What airlock needs from a container engine. Every method says, on failure, what it was
/// doing; "already gone" is success for every removal.
#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Where the engine is (for messages, reports and host-wide locks).
    fn host(&self) -> &str;

    /// Check that the engine answers.
    async fn ping(&self) -> Result<(), EngineError>;

    /// Create (not start) a container. Its output is never kept by the engine: airlock reads
    /// it live through [`Engine::attach`].
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError>;
    /// Attach to a created container's output (and input, if `stdin`); call before start so
    /// nothing is missed.
    async fn attach(&self, id: &str, stdin: bool) -> Result<Attached, EngineError>;
    async fn start_container(&self, id: &str) -> Result<(), EngineError>;
    /// Wait for a container to stop: its exit code and whether the OOM killer ended it.
    async fn wait_container(&self, id: &str) -> Result<Exited, EngineError>;
    /// Stop a container: SIGTERM, then SIGKILL after `grace_secs`.
    async fn stop_container(&self, id: &str, grace_secs: i32) -> Result<(), EngineError>;
    /// Remove a container, stopping it first if needed.
    async fn remove_container(&self, id: &str) -> Result<(), EngineError>;
    /// A container's settings, as a spec that would make the same container again.
    async fn inspect_container(&self, id: &str) -> Result<ContainerSpec, EngineError>;
    /// Save a (stopped) container's filesystem as an image `repo:tag`; its id.
    async fn commit_container(
        &self,
        id: &str,
        repo: &str,
        tag: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String, EngineError>;

    /// Extract a tar stream into `path` in a container (created or stopped; volumes mounted
    /// in it are written through).
    async fn upload(&self, id: &str, path: &str, tar: ByteStream) -> Result<(), EngineError>;
    /// A tar stream of `path` in a container (entries named `<basename of path>/…`).
    fn download(&self, id: &str, path: &str) -> DownloadStream;

    async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError>;
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError>;
    /// A bridge network of its own for one run (never the engine's default bridge).
    async fn create_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError>;
    async fn remove_network(&self, name: &str) -> Result<(), EngineError>;
    /// Every container, network and volume carrying all these `key=value` labels.
    async fn list_labelled(&self, label_filters: &[String]) -> Result<Vec<Object>, EngineError>;

    /// The image `reference` names, if the engine has it.
    async fn inspect_image(&self, reference: &str) -> Result<Option<Image>, EngineError>;
    /// Images carrying all these `key=value` labels.
    async fn list_images(&self, label_filters: &[String]) -> Result<Vec<Image>, EngineError>;
    async fn remove_image(&self, reference: &str) -> Result<(), EngineError>;
    /// Build an image, passing each line the builder prints to `output`.
    async fn build_image(
        &self,
        spec: BuildSpec,
        output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> Result<Built, EngineError>;
    async fn import_image(&self, spec: ImportSpec) -> Result<(), EngineError>;

    /// Remove one listed object (containers first is the caller's job: a volume in use by a
    /// container can't go).
    async fn remove_object(&self, obj: &Object) -> Result<(), EngineError> {
        match obj.kind {
            ObjectKind::Container => self.remove_container(&obj.id).await,
            ObjectKind::Network => self.remove_network(&obj.id).await,
            ObjectKind::Volume => self.remove_volume(&obj.id).await,
        }
    }
}

/// The engine the docker CLI would use: `DOCKER_HOST`, else the default local socket. Nothing
/// is contacted until the first request (so a run's record exists before an unreachable
/// engine is reported).
pub fn from_env() -> Result<EngineHandle, EngineError> {
    Ok(Arc::new(docker::Docker::from_env()?))
}
