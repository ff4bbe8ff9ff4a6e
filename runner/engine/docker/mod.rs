//! The Docker Engine API, through bollard: the one place airlock's typed specs become Docker's
//! request bodies, and Docker's errors become [`EngineError`]s.
//!
//! The engine is found the way Docker's own tools find it: `DOCKER_HOST`, else the default
//! local socket. The connection is made (version negotiated, pinged) on first use, once, and
//! shared by every run that holds the handle.

mod images;
mod objects;
mod streams;

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::errors::Error as B;

use super::{
    Attached, BuildSpec, Built, ByteStream, ContainerSpec, DownloadStream, Engine, EngineError,
    Exited, Image, ImportSpec, Object,
};

/// The address Docker's own tools use when `DOCKER_HOST` is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// A Docker (or Docker-API-compatible) engine.
pub struct Docker {
    host: String,
    client: std::sync::Arc<tokio::sync::OnceCell<bollard::Docker>>,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker").field("host", &self.host).finish()
    }
}

impl Docker {
    /// `DOCKER_HOST`, else [`DEFAULT_HOST`]; not contacted yet.
    pub fn from_env() -> Result<Docker, EngineError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Ok(Docker {
            host,
            client: Default::default(),
        })
    }

    /// The connected client: made, version-negotiated and pinged on first use.
    async fn client(&self) -> Result<&bollard::Docker, EngineError> {
        self.client.get_or_try_init(|| connect(&self.host)).await
    }
}

async fn connect(host: &str) -> Result<bollard::Docker, EngineError> {
    let unreachable = |source: B| EngineError::Unreachable {
        host: host.to_string(),
        source: Box::new(source),
    };
    let docker = bollard::Docker::connect_with_host(host).map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

/// Wrap an API error with what airlock was doing when it happened.
fn api(doing: impl Into<String>, source: B) -> EngineError {
    let doing = doing.into();
    match connection_failure(&source) {
        Some(cause) => EngineError::Lost {
            doing,
            cause,
            source: Box::new(source),
        },
        None => EngineError::Api {
            doing,
            source: Box::new(source),
        },
    }
}

/// The engine answered with this HTTP status.
fn status_is(e: &B, codes: &[u16]) -> bool {
    matches!(e, B::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

/// When `e` is the connection to the engine failing (refused, reset, closed, its socket
/// gone) rather than the engine answering with an error: the innermost cause, as text.
fn connection_failure(e: &B) -> Option<String> {
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

#[async_trait]
impl Engine for Docker {
    fn host(&self) -> &str {
        &self.host
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.client().await.map(|_| ())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        objects::create_container(self.client().await?, spec).await
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<Attached, EngineError> {
        streams::attach(self.client().await?, id, stdin).await
    }

    async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        objects::start_container(self.client().await?, id).await
    }

    async fn wait_container(&self, id: &str) -> Result<Exited, EngineError> {
        objects::wait_container(self.client().await?, id).await
    }

    async fn stop_container(&self, id: &str, grace_secs: i32) -> Result<(), EngineError> {
        objects::stop_container(self.client().await?, id, grace_secs).await
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        objects::remove_container(self.client().await?, id).await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerSpec, EngineError> {
        objects::inspect_container(self.client().await?, id).await
    }

    async fn commit_container(
        &self,
        id: &str,
        repo: &str,
        tag: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String, EngineError> {
        images::commit_container(self.client().await?, id, repo, tag, labels).await
    }

    async fn upload(&self, id: &str, path: &str, tar: ByteStream) -> Result<(), EngineError> {
        streams::upload(self.client().await?, id, path, tar).await
    }

    fn download(&self, id: &str, path: &str) -> DownloadStream {
        // The stream is lazy; it connects (once, shared) when first polled.
        use futures_util::TryStreamExt;
        let (id, path) = (id.to_string(), path.to_string());
        let (cell, host) = (self.client.clone(), self.host.clone());
        Box::pin(
            futures_util::stream::once(async move {
                let client = cell.get_or_try_init(|| connect(&host)).await?.clone();
                Ok::<_, EngineError>(streams::download(client, &id, &path))
            })
            .try_flatten(),
        )
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        objects::create_volume(self.client().await?, name, labels).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        objects::remove_volume(self.client().await?, name).await
    }

    async fn create_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        objects::create_network(self.client().await?, name, labels).await
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        objects::remove_network(self.client().await?, name).await
    }

    async fn list_labelled(&self, label_filters: &[String]) -> Result<Vec<Object>, EngineError> {
        objects::list_labelled(self.client().await?, label_filters).await
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<Image>, EngineError> {
        images::inspect_image(self.client().await?, reference).await
    }

    async fn list_images(&self, label_filters: &[String]) -> Result<Vec<Image>, EngineError> {
        images::list_images(self.client().await?, label_filters).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        images::remove_image(self.client().await?, reference).await
    }

    async fn build_image(
        &self,
        spec: BuildSpec,
        output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> Result<Built, EngineError> {
        images::build_image(self.client().await?, spec, output).await
    }

    async fn import_image(&self, spec: ImportSpec) -> Result<(), EngineError> {
        images::import_image(self.client().await?, spec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_is_told_apart_from_an_engine_answer() {
        let refused = B::IOError {
            err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let err = api("waiting for container x", refused);
        assert!(matches!(err, EngineError::Lost { .. }), "{err}");
        assert!(err.to_string().starts_with("lost the connection"), "{err}");
        assert!(err.to_string().contains("fix: "), "{err}");
        let answer = B::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        let err = api("starting container x", answer);
        assert!(matches!(err, EngineError::Api { .. }), "{err}");
        // An I/O error that is not about the connection (a file vanished) is not "lost".
        let other = B::IOError {
            err: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(matches!(api("uploading", other), EngineError::Api { .. }));
    }
}
