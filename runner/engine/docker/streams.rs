//! Streams to and from containers: attaching to a container's standard streams, and the
//! archive API (tar in, tar out) that moves files without any host mount.

use futures_util::{StreamExt, TryStreamExt};

use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;

use super::api;
use crate::engine::{Attached, ByteStream, Chunk, DownloadStream, EngineError};

pub async fn attach(docker: &Docker, id: &str, stdin: bool) -> Result<Attached, EngineError> {
    let opts = AttachContainerOptionsBuilder::new()
        .stdin(stdin)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let res = docker
        .attach_container(id, Some(opts))
        .await
        .map_err(|e| api(format!("attaching to container {id}"), e))?;
    let id = id.to_string();
    let output = res
        .output
        .map_err(move |e| api(format!("reading output of container {id}"), e))
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

pub async fn upload(
    docker: &Docker,
    id: &str,
    path: &str,
    tar: ByteStream,
) -> Result<(), EngineError> {
    let opts = UploadToContainerOptionsBuilder::new().path(path).build();
    docker
        .upload_to_container(id, Some(opts), bollard::body_try_stream(tar))
        .await
        .map_err(|e| api(format!("copying files into {path} of container {id}"), e))
}

pub fn download(docker: Docker, id: &str, path: &str) -> DownloadStream {
    let opts = DownloadFromContainerOptionsBuilder::new()
        .path(path)
        .build();
    let doing = format!("reading {path} from container {id}");
    Box::pin(
        docker
            .download_from_container(id, Some(opts))
            .map_err(move |e| api(doing.clone(), e)),
    )
}
