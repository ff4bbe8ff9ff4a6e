//! Containers, volumes and networks: Docker's request bodies for airlock's specs.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType, MountVolumeOptions,
    NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};
use bollard::Docker;

use super::{api, status_is};
use crate::engine::{
    ContainerSpec, EngineError, Exited, Network, Object, ObjectKind, Tmpfs, VolumeMount,
};

/// Create (not start) a container. Its output is never kept by the engine (log driver
/// `none`): airlock reads it live through attach.
pub async fn create_container(
    docker: &Docker,
    spec: &ContainerSpec,
) -> Result<String, EngineError> {
    let mounts = spec
        .volumes
        .iter()
        .map(|v| Mount {
            target: Some(v.target.clone()),
            source: Some(v.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(v.read_only),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(!v.fill_from_image),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let host_config = HostConfig {
        mounts: Some(mounts),
        network_mode: Some(match &spec.network {
            Network::None => "none".to_string(),
            Network::Named(name) => name.clone(),
        }),
        tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.iter().map(tmpfs_option).collect()),
        cap_drop: spec.locked_down.then(|| vec!["ALL".to_string()]),
        security_opt: spec
            .locked_down
            .then(|| vec!["no-new-privileges".to_string()]),
        memory: spec.memory.map(|m| m as i64),
        memory_swap: spec.memory.map(|m| m as i64),
        nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: spec.pids,
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        init: Some(true),
        runtime: spec.runtime.clone(),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        env: Some(spec.env.clone()),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        labels: Some(spec.labels.clone()),
        attach_stdin: Some(spec.stdin_once),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(spec.stdin_once || spec.tty),
        stdin_once: Some(spec.stdin_once),
        tty: Some(spec.tty),
        network_disabled: Some(spec.network == Network::None),
        host_config: Some(host_config),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::new()
        .name(&spec.name)
        .build();
    let created = docker
        .create_container(Some(opts), body)
        .await
        .map_err(|e| api(format!("creating container {}", spec.name), e))?;
    Ok(created.id)
}

pub async fn start_container(docker: &Docker, id: &str) -> Result<(), EngineError> {
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|e| api(format!("starting container {id}"), e))
}

/// Wait for a container to stop; its exit code and whether the kernel's OOM killer ended
/// it. (bollard reports a non-zero exit as an error; that is an ordinary ending here.)
pub async fn wait_container(docker: &Docker, id: &str) -> Result<Exited, EngineError> {
    use futures_util::StreamExt;
    let mut stream =
        docker.wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
    let code = match stream.next().await {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(api(format!("waiting for container {id}"), e)),
        None => {
            return Err(EngineError::Other {
                doing: format!("waiting for container {id}"),
                message: "the engine closed the wait stream".into(),
            })
        }
    };
    let inspect = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| api(format!("inspecting container {id}"), e))?;
    let oom_killed = inspect.state.and_then(|s| s.oom_killed).unwrap_or(false);
    Ok(Exited { code, oom_killed })
}

/// Stop a container: SIGTERM, then SIGKILL after `grace_secs`.
pub async fn stop_container(docker: &Docker, id: &str, grace_secs: i32) -> Result<(), EngineError> {
    let opts = StopContainerOptionsBuilder::new().t(grace_secs).build();
    match docker.stop_container(id, Some(opts)).await {
        Ok(()) => Ok(()),
        // 304: already stopped; 404: already gone.
        Err(e) if status_is(&e, &[304, 404]) => Ok(()),
        Err(e) => Err(api(format!("stopping container {id}"), e)),
    }
}

/// Remove a container, stopping it first if needed. A container already gone is fine.
pub async fn remove_container(docker: &Docker, id: &str) -> Result<(), EngineError> {
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(false)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if status_is(&e, &[404]) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message,
        }) if message.contains("already in progress") => Ok(()),
        Err(e) => Err(api(format!("removing container {id}"), e)),
    }
}

pub async fn create_volume(
    docker: &Docker,
    name: &str,
    labels: &HashMap<String, String>,
) -> Result<(), EngineError> {
    let req = VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    docker
        .create_volume(req)
        .await
        .map(|_| ())
        .map_err(|e| api(format!("creating volume {name}"), e))
}

pub async fn remove_volume(docker: &Docker, name: &str) -> Result<(), EngineError> {
    let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
    match docker.remove_volume(name, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if status_is(&e, &[404]) => Ok(()),
        Err(e) => Err(api(format!("removing volume {name}"), e)),
    }
}

/// A bridge network of its own for one run (never the engine's default bridge).
pub async fn create_network(
    docker: &Docker,
    name: &str,
    labels: &HashMap<String, String>,
) -> Result<(), EngineError> {
    let req = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    docker
        .create_network(req)
        .await
        .map(|_| ())
        .map_err(|e| api(format!("creating network {name}"), e))
}

pub async fn remove_network(docker: &Docker, name: &str) -> Result<(), EngineError> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if status_is(&e, &[404]) => Ok(()),
        Err(e) => Err(api(format!("removing network {name}"), e)),
    }
}

/// Every container, network and volume carrying `label` filter values (`key=value`),
/// with their labels.
pub async fn list_labelled(
    docker: &Docker,
    label_filters: &[String],
) -> Result<Vec<Object>, EngineError> {
    let filters = HashMap::from([("label".to_string(), label_filters.to_vec())]);
    // The three lists are independent: ask for them at once.
    let (containers, networks, volumes) = tokio::try_join!(
        async {
            docker
                .list_containers(Some(
                    ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(|e| api("listing containers", e))
        },
        async {
            docker
                .list_networks(Some(
                    ListNetworksOptionsBuilder::new().filters(&filters).build(),
                ))
                .await
                .map_err(|e| api("listing networks", e))
        },
        async {
            docker
                .list_volumes(Some(
                    ListVolumesOptionsBuilder::new().filters(&filters).build(),
                ))
                .await
                .map_err(|e| api("listing volumes", e))
        },
    )?;
    let mut out = Vec::new();
    for c in containers {
        out.push(Object {
            kind: ObjectKind::Container,
            id: c.id.unwrap_or_default(),
            name: c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            labels: c.labels.unwrap_or_default(),
        });
    }
    for n in networks {
        out.push(Object {
            kind: ObjectKind::Network,
            id: n.id.unwrap_or_default(),
            name: n.name.unwrap_or_default(),
            labels: n.labels.unwrap_or_default(),
        });
    }
    for v in volumes.volumes.unwrap_or_default() {
        out.push(Object {
            kind: ObjectKind::Volume,
            id: v.name.clone(),
            name: v.name,
            labels: v.labels,
        });
    }
    Ok(out)
}

/// Docker's tmpfs option string for one mount (always `nosuid,nodev`).
fn tmpfs_option(t: &Tmpfs) -> (String, String) {
    (
        t.path.clone(),
        format!("rw,nosuid,nodev,size={},mode={:o}", t.size, t.mode),
    )
}

/// Read one of [`tmpfs_option`]'s strings back (size and mode; defaults where absent).
fn tmpfs_of(path: String, options: &str) -> Tmpfs {
    let mut t = Tmpfs {
        path,
        size: 0,
        mode: 0o1777,
    };
    for opt in options.split(',') {
        if let Some(v) = opt.strip_prefix("size=") {
            t.size = v.parse().unwrap_or(0);
        } else if let Some(v) = opt.strip_prefix("mode=") {
            t.mode = u32::from_str_radix(v, 8).unwrap_or(0o1777);
        }
    }
    t
}

/// A container's settings read back as the spec that made it (for `airlock shell`).
pub async fn inspect_container(docker: &Docker, id: &str) -> Result<ContainerSpec, EngineError> {
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| api(format!("inspecting container {id}"), e))?;
    let config = info.config.unwrap_or_default();
    let host = info.host_config.unwrap_or_default();
    let volumes = info
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            Some(VolumeMount {
                volume: m.name?,
                target: m.destination?,
                read_only: !m.rw.unwrap_or(true),
                fill_from_image: false,
            })
        })
        .collect();
    let network = match host.network_mode.as_deref() {
        None | Some("none") => Network::None,
        Some(name) => Network::Named(name.to_string()),
    };
    Ok(ContainerSpec {
        name: info
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        env: config.env.unwrap_or_default(),
        user: config.user.filter(|u| !u.is_empty()),
        working_dir: config.working_dir.filter(|w| !w.is_empty()),
        labels: config.labels.unwrap_or_default(),
        network,
        volumes,
        tmpfs: host
            .tmpfs
            .unwrap_or_default()
            .into_iter()
            .map(|(p, o)| tmpfs_of(p, &o))
            .collect(),
        locked_down: host.cap_drop.is_some_and(|c| c.iter().any(|c| c == "ALL")),
        memory: host.memory.filter(|m| *m > 0).map(|m| m as u64),
        cpus: host.nano_cpus.filter(|n| *n > 0).map(|n| n as f64 / 1e9),
        pids: host.pids_limit.filter(|p| *p > 0),
        stdin_once: config.stdin_once.unwrap_or(false),
        tty: config.tty.unwrap_or(false),
        runtime: host.runtime.filter(|r| r != "runc"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_options_read_back_as_written() {
        let t = Tmpfs {
            path: "/tmp".into(),
            size: 268_435_456,
            mode: 0o1777,
        };
        let (path, opts) = tmpfs_option(&t);
        assert_eq!(opts, "rw,nosuid,nodev,size=268435456,mode=1777");
        assert_eq!(tmpfs_of(path, &opts), t);
    }
}
