//! The Docker engine, reached through bollard.
//!
//! Everything airlock asks of the engine goes through [`Engine`], so the rest of the crate
//! never builds a raw API request and never forgets a label. The engine is found the way
//! Docker's own tools find it: `DOCKER_HOST`, else the default local socket. Every container,
//! network and volume airlock creates carries the labels in [`labels`]; that is what lets
//! [`crate::cleanup`] find and remove them later, even after airlock itself was killed.

pub mod labels;
mod objects;
mod streams;

pub use objects::{ContainerSpec, Exited, Object, ObjectKind, VolumeMount};
pub use streams::{Attached, Chunk};

use bollard::Docker;

/// An engine failure. Its message says what airlock was doing; the source says what the
/// engine answered.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {host}: {source}\n  fix: start the engine (e.g. `systemctl start docker`), or point DOCKER_HOST at a running one (e.g. DOCKER_HOST=unix:///var/run/docker.sock), and check that this user may use it")]
    Unreachable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker engine error while {doing}: {source}")]
    Api {
        doing: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker engine error while {doing}: {message}")]
    Other { doing: String, message: String },
}

impl EngineError {
    /// Wrap an API error with what airlock was doing when it happened.
    pub fn api(doing: impl Into<String>, source: bollard::errors::Error) -> Self {
        EngineError::Api {
            doing: doing.into(),
            source,
        }
    }
}

/// A connection to the engine, version-negotiated and checked with a ping.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("host", &self.host).finish()
    }
}

/// The address Docker's own tools use when `DOCKER_HOST` is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

impl Engine {
    /// Connect as the docker CLI would: `DOCKER_HOST`, else the default socket.
    pub async fn connect() -> Result<Engine, EngineError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let unreachable = |source| EngineError::Unreachable {
            host: host.clone(),
            source,
        };
        let docker = Docker::connect_with_host(&host).map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        Ok(Engine { docker, host })
    }

    /// The raw bollard client, for modules that own one kind of engine object (images).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Where the engine was reached (for messages and reports).
    pub fn host(&self) -> &str {
        &self.host
    }
}
