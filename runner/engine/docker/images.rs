//! Images: inspect, list, remove, build from a context tar, import a root filesystem, commit a
//! container.

use std::collections::HashMap;

use futures_util::StreamExt;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CommitContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;

use super::{api, status_is};
use crate::engine::{BuildSpec, Built, EngineError, Image, ImportSpec};

pub async fn inspect_image(docker: &Docker, reference: &str) -> Result<Option<Image>, EngineError> {
    match docker.inspect_image(reference).await {
        Ok(img) => Ok(Some(Image {
            id: img.id.unwrap_or_default(),
            tags: img.repo_tags.unwrap_or_default(),
            labels: img.config.and_then(|c| c.labels).unwrap_or_default(),
            size: img.size.unwrap_or_default(),
            created: img
                .created
                .as_deref()
                .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default(),
        })),
        Err(e) if status_is(&e, &[404]) => Ok(None),
        Err(e) => Err(api(format!("looking up image {reference}"), e)),
    }
}

pub async fn list_images(
    docker: &Docker,
    label_filters: &[String],
) -> Result<Vec<Image>, EngineError> {
    let filters = HashMap::from([("label".to_string(), label_filters.to_vec())]);
    let options = ListImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let summaries = docker
        .list_images(Some(options))
        .await
        .map_err(|e| api("listing airlock's images", e))?;
    Ok(summaries
        .into_iter()
        .map(|s| Image {
            id: s.id,
            tags: s
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            labels: s.labels,
            size: s.size,
            created: s.created,
        })
        .collect())
}

pub async fn remove_image(docker: &Docker, reference: &str) -> Result<(), EngineError> {
    let opts = RemoveImageOptionsBuilder::new().force(true).build();
    match docker.remove_image(reference, Some(opts), None).await {
        Ok(_) => Ok(()),
        Err(e) if status_is(&e, &[404]) => Ok(()),
        Err(e) => Err(api(format!("removing image {reference}"), e)),
    }
}

pub async fn build_image(
    docker: &Docker,
    spec: BuildSpec,
    output: &mut (dyn for<'s> FnMut(&'s str) + Send),
) -> Result<Built, EngineError> {
    let labels: HashMap<&str, &str> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&spec.tag)
        .rm(true)
        .forcerm(true)
        .nocache(spec.no_cache)
        .q(false)
        .labels(&labels)
        .build();
    let body = bollard::body_full(spec.context.into());
    // No registry credentials at all: an empty map (Podman refuses an empty header).
    let mut stream = docker.build_image(options, Some(HashMap::new()), Some(body));
    let mut id = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref() {
                    output(text);
                }
                if let Some(status) = info.status.as_deref() {
                    output(&format!("{status}\n"));
                }
                if let Some(aux_id) = info.aux.and_then(|a| a.id) {
                    id = Some(aux_id);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Ok(Built::StepFailed(error.trim().to_string()))
            }
            Err(source) => return Err(api(format!("building image {}", spec.tag), source)),
        }
    }
    Ok(Built::Image(id))
}

pub async fn import_image(docker: &Docker, spec: ImportSpec) -> Result<(), EngineError> {
    let (repo, tag) = match spec.reference.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (spec.reference.clone(), "latest".to_string()),
    };
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(&repo)
        .tag(&tag)
        .message("bootstrapped by airlock")
        .changes(spec.changes.clone())
        .build();
    let doing = || format!("importing the bootstrapped {}", spec.reference);
    let body = bollard::body_try_stream(spec.rootfs);
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(item) = stream.next().await {
        item.map_err(|source| api(doing(), source))?;
    }
    Ok(())
}

pub async fn commit_container(
    docker: &Docker,
    id: &str,
    repo: &str,
    tag: &str,
    labels: &HashMap<String, String>,
) -> Result<String, EngineError> {
    let commit = CommitContainerOptionsBuilder::new()
        .container(id)
        .repo(repo)
        .tag(tag)
        .pause(false)
        .build();
    let made = docker
        .commit_container(
            commit,
            bollard::models::ContainerConfig {
                labels: Some(labels.clone()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| api(format!("saving container {id} as an image"), e))?;
    Ok(made.id)
}
