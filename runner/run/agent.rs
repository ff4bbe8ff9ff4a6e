//! Step 4: the agent phase. A fresh container, sealed and unprivileged.
//!
//! A new container from the same image (nothing of the setup container's state but the
//! declared volumes), no network at all (only its own loopback), every capability dropped and
//! `no-new-privileges`, the environment's user and limits, a size-limited tmpfs `/tmp`, no
//! engine socket, no host mounts, and the workspace's `.git` mounted read-only. Its variables
//! are the environment's plus what setup wrote to `$AIRLOCK_ENV`, all checked against every
//! secret at the boundary.

use super::drive::{self, Drive, PhaseEnd};
use super::egress::{self, Egress};
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
    egress: Option<Egress>,
    report: &mut Report,
) -> Result<AgentDone, RunError> {
    let engine = run.engine;
    let env = &run.task.env;
    let spec = spec(
        run,
        &ready.image.reference,
        plan,
        crossing,
        &ready.owner,
        egress.as_ref(),
    );
    let agent = async {
        let id = engine.create_container(&spec).await?;
        if let Some(egress) = &egress {
            // The forwarder and the CA, root's, before anything of the agent runs.
            engine
                .upload(&id, "/", egress::byte_stream(egress.files()?))
                .await?;
        }
        run.events.event(&Event::PhaseStarted {
            phase: Phase::Agent,
            detail: match egress {
                Some(_) => "the allowlist through the egress proxy, no secrets".into(),
                None => "no network, no secrets".into(),
            },
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
    if done.end.exited.code == 127 && !done.end.timed_out {
        run.events
            .event(&Event::Warning(not_found_hint(run, ready, crossing)));
    }
    if let Some(egress) = egress {
        let (requests, summary) = egress.finish(engine).await;
        if requests.proxy_died {
            run.events.event(&Event::Warning(summary));
        } else {
            run.events.event(&Event::Note(summary));
        }
        report.network.requests = Some(requests);
    }
    report.agent = done.end.report.clone();
    report.kept = run.opts.keep;
    run.lap("agent phase");
    Ok(done)
}

/// Exit 127 is "command not found" (from the shell, or from the init process when the
/// command itself is missing): say where the agent phase looked.
fn not_found_hint(run: &Ctx<'_>, ready: &Ready, crossing: &Crossing) -> String {
    let first = run.task.command.first().map(String::as_str).unwrap_or("");
    let path = crossing
        .variables
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| format!("PATH={v} (from the environment or $AIRLOCK_ENV)"))
        .unwrap_or_else(|| "the image's default PATH".into());
    format!(
        "the agent command exited with 127, \"command not found\": is `{}` (or a command it runs) in image {} or a persist path, and on {path}?\n  fix: install it in the image, or in a persist path from the setup script, and add its folder to PATH with `echo PATH=/opt/tool/bin:$PATH >> $AIRLOCK_ENV`",
        crate::boundary::paths::escape(first.as_bytes()),
        ready.image.reference
    )
}

fn spec(
    run: &Ctx<'_>,
    image: &str,
    plan: &MountPlan,
    crossing: &Crossing,
    owner: &str,
    egress: Option<&Egress>,
) -> ContainerSpec {
    let env = &run.task.env;
    let mut labels = labels::for_run(&run.names.run_id, "agent", owner);
    if run.opts.keep {
        labels.insert(labels::KEPT.into(), "true".into());
    }
    let mut env_vars: Vec<String> = crossing
        .variables
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut volumes = plan.agent_mounts();
    if let Some(e) = egress {
        // Later entries win: the proxy's variables over any the environment set.
        env_vars.extend(e.variables());
        volumes.push(e.mount());
    }
    ContainerSpec {
        name: run.names.container("agent"),
        image: image.to_string(),
        cmd: match egress {
            Some(e) => e.command(&run.task.command),
            None => run.task.command.clone(),
        },
        env: env_vars,
        user: Some(env.agent.user.clone()),
        working_dir: Some(WORKSPACE.into()),
        labels,
        network: Network::None,
        volumes,
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
