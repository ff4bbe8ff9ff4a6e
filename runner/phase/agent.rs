//! The agent phase's container: fresh, sealed, unprivileged.
//!
//! A new container from the same image (nothing of the setup container's state but the
//! declared volumes), no network at all (`none`: only its own loopback), every capability
//! dropped and `no-new-privileges`, the environment's user and limits, a size-limited tmpfs
//! `/tmp`, no engine socket, no host mounts, and the workspace's `.git` mounted read-only (a
//! read-only mount: `chmod` can't undo it). Its variables are the environment's plus what
//! setup wrote to `$AIRLOCK_ENV`, all checked against every secret at the boundary.

use super::{setup, RunNames, WORKSPACE};
use crate::engine::{labels, ContainerSpec};
use crate::environment::Environment;

pub fn spec(
    names: &RunNames,
    image: &str,
    env: &Environment,
    has_git: bool,
    variables: &[(String, String)],
    command: &[String],
    owner: &str,
) -> ContainerSpec {
    ContainerSpec {
        name: names.container("agent"),
        image: image.to_string(),
        cmd: command.to_vec(),
        env: variables.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        user: Some(env.agent.user.clone()),
        working_dir: Some(WORKSPACE.into()),
        labels: labels::for_run(&names.run_id, "agent", owner),
        network: "none".into(),
        volumes: setup::volumes(names, env, has_git, true),
        tmpfs: [(
            "/tmp".to_string(),
            format!("rw,nosuid,nodev,size={},mode=1777", env.limits.tmp_size),
        )]
        .into(),
        locked_down: true,
        memory: env.limits.memory,
        cpus: env.limits.cpus,
        pids: env.limits.pids,
        stdin_once: false,
        tty: false,
        runtime: env.runtime.clone(),
    }
}
