//! Step 4: the agent phase. A fresh container, sealed and unprivileged.
//!
//! A new container from the same image (nothing of the setup container's state but the
//! declared volumes), no network at all (only its own loopback), every capability dropped and
//! `no-new-privileges`, the environment's user and limits, a size-limited tmpfs `/tmp`, no
//! engine socket, no host mounts, and the workspace's `.git` mounted read-only. Its variables
//! are the environment's plus what setup wrote to `$AIRLOCK_ENV`, all checked against every
//! secret at the boundary.

use super::drive::{self, Drive, PhaseEnd};
use super::events::{Event, Phase};
use super::outcome::RunError;
use super::plan::{MountPlan, WORKSPACE};
use super::prepare::Ready;
use super::Ctx;
use crate::boundary::Crossing;
use crate::engine::{labels, ContainerSpec, Network, Tmpfs};
use crate::record::Report;

/// The agent phase's container (stopped, kept until the patch is read) and how it ended.
pub struct AgentDone {
    pub container: String,
    pub end: PhaseEnd,
}

pub async fn run(
    run: &Ctx<'_>,
    ready: &Ready,
    plan: &MountPlan,
    crossing: &Crossing,
    report: &mut Report,
) -> Result<AgentDone, RunError> {
    let engine = run.engine;
    let env = &run.task.env;
    let spec = spec(run, &ready.image.reference, plan, crossing, &ready.owner);
    let agent = async {
        let id = engine.create_container(&spec).await?;
        run.events.event(&Event::PhaseStarted {
            phase: Phase::Agent,
            detail: "no network, no secrets".into(),
        });
        let end = drive::drive(
            engine,
            &id,
            Drive {
                phase: Phase::Agent,
                stdin: None,
                secrets: &ready.scanner,
                log: run.log("agent")?,
                events: run.events,
                limit: env.limits.agent_timeout,
            },
        )
        .await?;
        Ok::<_, RunError>(AgentDone { container: id, end })
    };
    // The setup network served only the setup container, which is gone: removing it costs
    // the engine ~180 ms (the bridge and its firewall rules), which the agent phase (on no
    // network at all) need not wait for.
    let network = run.names.network();
    let teardown = engine.remove_network(&network);
    let (ran, torn) = tokio::join!(agent, teardown);
    let done = ran?;
    torn?;
    run.phase_ended(Phase::Agent, &done.end);
    report.agent = done.end.report.clone();
    report.kept = run.opts.keep;
    run.lap("agent phase");
    Ok(done)
}

fn spec(
    run: &Ctx<'_>,
    image: &str,
    plan: &MountPlan,
    crossing: &Crossing,
    owner: &str,
) -> ContainerSpec {
    let env = &run.task.env;
    let mut labels = labels::for_run(&run.names.run_id, "agent", owner);
    if run.opts.keep {
        labels.insert(labels::KEPT.into(), "true".into());
    }
    ContainerSpec {
        name: run.names.container("agent"),
        image: image.to_string(),
        cmd: run.task.command.clone(),
        env: crossing
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        user: Some(env.agent.user.clone()),
        working_dir: Some(WORKSPACE.into()),
        labels,
        network: Network::None,
        volumes: plan.agent_mounts(),
        tmpfs: vec![Tmpfs {
            path: "/tmp".into(),
            size: env.limits.tmp_size,
            mode: 0o1777,
        }],
        locked_down: true,
        memory: env.limits.memory,
        cpus: env.limits.cpus,
        pids: env.limits.pids,
        stdin_once: false,
        tty: false,
        runtime: env.runtime.clone(),
    }
}
