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
    /// The engine was reachable, then the connection broke or was refused mid-run (the
    /// engine stopped or restarted, its socket went away). Told apart from [`EngineError::Api`]
    /// so the message says what happened in words, not as the HTTP client's error chain.
    #[error("lost the connection to the Docker engine while {doing}: {cause}\n  fix: check that the engine is running (e.g. `systemctl status docker`) and reachable through DOCKER_HOST; `airlock gc RUN-ID` removes what a run left once it answers again")]
    Lost {
        doing: String,
        /// The innermost cause (e.g. `Connection refused (os error 111)`).
        cause: String,
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
        let doing = doing.into();
        match connection_failure(&source) {
            Some(cause) => EngineError::Lost {
                doing,
                cause,
                source,
            },
            None => EngineError::Api { doing, source },
        }
    }
}

/// When `e` is the connection to the engine failing (refused, reset, closed, its socket
/// gone) rather than the engine answering with an error: the innermost cause, as text.
fn connection_failure(e: &bollard::errors::Error) -> Option<String> {
    use bollard::errors::Error as B;
    use std::io::ErrorKind;
    let mut connect = matches!(e, B::HyperLegacyError { err } if err.is_connect());
    // `IOError` is transparent: its io::Error is not in the `source()` chain, so start there.
    let mut innermost: &dyn std::error::Error = e;
    let mut cause: Option<&dyn std::error::Error> = match e {
        B::IOError { err } => Some(err),
        _ => Some(e),
    };
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            connect |= matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::NotConnected
                    | ErrorKind::BrokenPipe
            );
        }
        innermost = c;
        cause = c.source();
    }
    connect.then(|| innermost.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_is_told_apart_from_an_engine_answer() {
        let refused = bollard::errors::Error::IOError {
            err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let err = EngineError::api("waiting for container x", refused);
        assert!(matches!(err, EngineError::Lost { .. }), "{err}");
        assert!(err.to_string().starts_with("lost the connection"), "{err}");
        assert!(err.to_string().contains("fix: "), "{err}");
        let answer = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        let err = EngineError::api("starting container x", answer);
        assert!(matches!(err, EngineError::Api { .. }), "{err}");
        // An I/O error that is not about the connection (a file vanished) is not "lost".
        let other = bollard::errors::Error::IOError {
            err: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(matches!(
            EngineError::api("uploading", other),
            EngineError::Api { .. }
        ));
    }
}
