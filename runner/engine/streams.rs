//! Streams to and from containers: attaching to a container's standard streams, and the
//! archive API (tar in, tar out) that moves files without any host mount.

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio::io::AsyncWrite;

use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};

use super::{Engine, EngineError};

/// A container's output, one chunk at a time, and (when asked for) its standard input.
pub struct Attached {
    pub output: std::pin::Pin<Box<dyn Stream<Item = Result<Chunk, EngineError>> + Send>>,
    pub input: Option<std::pin::Pin<Box<dyn AsyncWrite + Send>>>,
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

impl Engine {
    /// Attach to a created container's output (and input, if `stdin`); call before start so
    /// nothing is missed.
    pub async fn attach(&self, id: &str, stdin: bool) -> Result<Attached, EngineError> {
        let opts = AttachContainerOptionsBuilder::new()
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let res = self
            .docker()
            .attach_container(id, Some(opts))
            .await
            .map_err(|e| EngineError::api(format!("attaching to container {id}"), e))?;
        let id = id.to_string();
        let output = res
            .output
            .map_err(move |e| EngineError::api(format!("reading output of container {id}"), e))
            .filter_map(|item| async move {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Ok(Chunk::Stdout(message)))
                    }
                    Ok(LogOutput::StdErr { message }) => Some(Ok(Chunk::Stderr(message))),
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(e)),
                }
            });
        Ok(Attached {
            output: Box::pin(output),
            input: stdin.then_some(res.input),
        })
    }

    /// Extract a tar stream into `path` in a container (created or stopped; volumes mounted
    /// in it are written through).
    pub async fn upload(
        &self,
        id: &str,
        path: &str,
        tar: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), EngineError> {
        let opts = UploadToContainerOptionsBuilder::new().path(path).build();
        self.docker()
            .upload_to_container(id, Some(opts), bollard::body_try_stream(tar))
            .await
            .map_err(|e| {
                EngineError::api(format!("copying files into {path} of container {id}"), e)
            })
    }

    /// A tar stream of `path` in a container (its entries are named `<basename of path>/…`).
    pub fn download(
        &self,
        id: &str,
        path: &str,
    ) -> impl Stream<Item = Result<Bytes, EngineError>> + Send + 'static {
        let opts = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let doing = format!("reading {path} from container {id}");
        self.docker()
            .download_from_container(id, Some(opts))
            .map_err(move |e| EngineError::api(doing.clone(), e))
    }
}
