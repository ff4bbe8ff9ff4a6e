//! Containers, volumes and networks: creating them labelled, and removing them.

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

use super::{Engine, EngineError};

/// A volume mounted into a container.
#[derive(Debug, Clone)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
    /// Don't let the engine fill an empty volume from the image at mount time (that copy
    /// also resets the volume root's owner).
    pub no_copy: bool,
}

/// Everything airlock sets on a container. Built by the phases; nothing here knows what a
/// phase is.
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
    /// A network name, or `none`.
    pub network: String,
    pub volumes: Vec<VolumeMount>,
    /// `path → options` (e.g. `/tmp` → `rw,nosuid,nodev,size=268435456,mode=1777`).
    pub tmpfs: HashMap<String, String>,
    /// Drop every capability and forbid gaining privileges (setuid, file caps).
    pub locked_down: bool,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    /// Keep standard input open for one attach (how the setup phase receives its secrets).
    pub stdin_once: bool,
    pub tty: bool,
    pub runtime: Option<String>,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    pub code: i64,
    pub oom_killed: bool,
}

impl Engine {
    /// Create (not start) a container. Its output is never kept by the engine (log driver
    /// `none`): airlock reads it live through attach.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let mounts = spec
            .volumes
            .iter()
            .map(|v| Mount {
                target: Some(v.target.clone()),
                source: Some(v.volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(v.read_only),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(v.no_copy),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let host_config = HostConfig {
            mounts: Some(mounts),
            network_mode: Some(spec.network.clone()),
            tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone()),
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
            network_disabled: Some(spec.network == "none"),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .docker()
            .create_container(Some(opts), body)
            .await
            .map_err(|e| EngineError::api(format!("creating container {}", spec.name), e))?;
        Ok(created.id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.docker()
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| EngineError::api(format!("starting container {id}"), e))
    }

    /// Wait for a container to stop; its exit code and whether the kernel's OOM killer ended
    /// it. (bollard reports a non-zero exit as an error; that is an ordinary ending here.)
    pub async fn wait_container(&self, id: &str) -> Result<Exited, EngineError> {
        use futures_util::StreamExt;
        let mut stream = self
            .docker()
            .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        let code = match stream.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(EngineError::api(format!("waiting for container {id}"), e)),
            None => {
                return Err(EngineError::Other {
                    doing: format!("waiting for container {id}"),
                    message: "the engine closed the wait stream".into(),
                })
            }
        };
        let inspect = self
            .docker()
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| EngineError::api(format!("inspecting container {id}"), e))?;
        let oom_killed = inspect.state.and_then(|s| s.oom_killed).unwrap_or(false);
        Ok(Exited { code, oom_killed })
    }

    /// Stop a container: SIGTERM, then SIGKILL after `grace_secs`.
    pub async fn stop_container(&self, id: &str, grace_secs: i32) -> Result<(), EngineError> {
        let opts = StopContainerOptionsBuilder::new().t(grace_secs).build();
        match self.docker().stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped; 404: already gone.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(EngineError::api(format!("stopping container {id}"), e)),
        }
    }

    /// Remove a container, stopping it first if needed. A container already gone is fine.
    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        match self.docker().remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(EngineError::api(format!("removing container {id}"), e)),
        }
    }

    pub async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker()
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| EngineError::api(format!("creating volume {name}"), e))
    }

    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
        match self.docker().remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::api(format!("removing volume {name}"), e)),
        }
    }

    /// A bridge network of its own for one run (never the engine's default bridge).
    pub async fn create_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker()
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(|e| EngineError::api(format!("creating network {name}"), e))
    }

    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker().remove_network(name).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::api(format!("removing network {name}"), e)),
        }
    }

    /// Every container, network and volume carrying `label` filter values (`key=value`),
    /// with their labels.
    pub async fn list_labelled(
        &self,
        label_filters: &[String],
    ) -> Result<Vec<Object>, EngineError> {
        let filters = HashMap::from([("label".to_string(), label_filters.to_vec())]);
        // The three lists are independent: ask for them at once.
        let (containers, networks, volumes) = tokio::try_join!(
            async {
                self.docker()
                    .list_containers(Some(
                        ListContainersOptionsBuilder::new()
                            .all(true)
                            .filters(&filters)
                            .build(),
                    ))
                    .await
                    .map_err(|e| EngineError::api("listing containers", e))
            },
            async {
                self.docker()
                    .list_networks(Some(
                        ListNetworksOptionsBuilder::new().filters(&filters).build(),
                    ))
                    .await
                    .map_err(|e| EngineError::api("listing networks", e))
            },
            async {
                self.docker()
                    .list_volumes(Some(
                        ListVolumesOptionsBuilder::new().filters(&filters).build(),
                    ))
                    .await
                    .map_err(|e| EngineError::api("listing volumes", e))
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

    /// Remove one listed object (containers first is the caller's job: a volume in use by a
    /// container can't go).
    pub async fn remove_object(&self, obj: &Object) -> Result<(), EngineError> {
        match obj.kind {
            ObjectKind::Container => self.remove_container(&obj.id).await,
            ObjectKind::Network => self.remove_network(&obj.id).await,
            ObjectKind::Volume => self.remove_volume(&obj.id).await,
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
