//! Step 2: the setup phase. Its container, the program it runs, and running it.
//!
//! Secrets must reach the setup script's process and nothing else: not container env (that
//! shows in `docker inspect` and in the engine's state on disk), not labels, not command
//! arguments, not files. So the container's command is a constant bootstrap ([`BOOTSTRAP`])
//! that reads a small shell program from standard input, up to a per-run marker line, and
//! evaluates it. airlock writes that program over the attached stdin: it exports the secrets
//! (single-quoted: data, never interpreted), runs the environment's setup script with
//! `bash -e -o pipefail` (or `sh` where the image has no bash), then hands what crosses to
//! the agent's user. The engine's log driver is `none`, so no output is kept on disk either.
//!
//! Before the container starts, the run's objects are made (the setup network and the
//! volumes of the [`MountPlan`]) and the workspace is copied in.

use std::path::Path;

use rand::Rng;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::drive::{self, Drive};
use super::events::{Event, Phase};
use super::outcome::RunError;
use super::plan::{MountPlan, WORKSPACE};
use super::prepare::Ready;
use super::Ctx;
use crate::boundary::ENV_FILE as AIRLOCK_ENV_PATH;
use crate::engine::{labels, ContainerSpec, Network};
use crate::environment::Environment;
use crate::record::Report;
use crate::workspace::{self, Manifest};

/// What the setup phase left: its (stopped) container and what was copied in.
pub struct SetupDone {
    pub container: String,
    /// The workspace as it was packed at the start (the patch's "before" side).
    pub packed: Manifest,
}

/// Make the run's objects, copy the workspace in, run the setup script to its end.
pub async fn run(
    run: &Ctx<'_>,
    ready: &Ready,
    plan: &MountPlan,
    report: &mut Report,
) -> Result<SetupDone, RunError> {
    let (engine, env) = (run.engine, &run.task.env);
    // Objects: the setup network and the volumes that carry what crosses, made at once.
    let network_labels = labels::for_run(&run.names.run_id, "setup", &ready.owner);
    let mut object_labels = network_labels.clone();
    if run.opts.keep {
        object_labels.insert(labels::KEPT.into(), "true".into());
    }
    // A cache hit ([`crate::cache`]) restores the entry instead of running setup; it needs
    // the network only for a maintenance script.
    let hit = ready.cache.as_ref().and_then(|c| c.hit.as_ref());
    let online = hit.is_none() || env.maintenance.is_some();
    let network_name = run.names.network();
    let network = async {
        if online {
            engine.create_network(&network_name, &network_labels).await
        } else {
            Ok(())
        }
    };
    let volumes = plan
        .volumes()
        .iter()
        .map(|v| engine.create_volume(v, &object_labels));
    futures_util::future::try_join(network, futures_util::future::try_join_all(volumes)).await?;
    run.lap("network and volumes");

    let marker = format!("__airlock_end_{:032x}__", rand::rng().random::<u128>());
    let mut spec = spec(run, &ready.image.reference, plan, &ready.owner, &marker);
    if let Some(entry) = hit {
        spec.volumes.push(crate::cache::entry_mount(entry));
        if !online {
            spec.network = Network::None;
            report.network.setup = "none (cache hit, no maintenance script)".into();
        }
    }
    let id = engine.create_container(&spec).await?;
    run.lap("setup container created");
    let exclude = vec![
        run.record.dir().to_path_buf(),
        run.task.workspace.join(".airlock"),
    ];
    let (tar, packed) = workspace::pack(run.task.workspace.clone(), exclude);
    engine.upload(&id, WORKSPACE, Box::pin(tar)).await?;
    let packed = packed
        .await
        .map_err(|e| RunError::Internal(format!("packing the workspace: {e}")))?
        .map_err(|e| RunError::Internal(format!("packing the workspace: {e}")))?;
    for skipped in &packed.skipped {
        run.events.event(&Event::Warning(format!(
            "not copied (not a file, folder or symlink): {}",
            skipped.display()
        )));
    }
    // CA certificates serve the network: a hit with no maintenance script has none.
    if !ready.ca.is_empty() && online {
        engine.upload(&id, "/", ca_tar(&ready.ca)).await?;
    }
    run.lap("workspace uploaded");

    let secrets = ready.secrets.len();
    let s = if secrets == 1 { "" } else { "s" };
    run.events.event(&Event::PhaseStarted {
        phase: Phase::Setup,
        detail: match hit {
            None => format!("network on, {secrets} secret{s}"),
            Some(_) if online => {
                format!(
                    "from the cache, then the maintenance script: network on, {secrets} secret{s}"
                )
            }
            Some(_) => "from the cache: no network".into(),
        },
    });
    let end = drive::drive(
        engine,
        &id,
        Drive {
            phase: Phase::Setup,
            stdin: Some(program(env, ready, &marker, hit.is_some())),
            secrets: &ready.scanner,
            log: run.log("setup")?,
            events: run.events,
            limit: env.limits.setup_timeout,
        },
    )
    .await?;
    run.phase_ended(Phase::Setup, &end);
    report.setup = end.report.clone();
    run.lap("setup phase");
    run.checkpoint(report);
    if end.timed_out || end.exited.code != 0 {
        let why = if end.timed_out {
            format!(
                "setup timed out after {}",
                humantime::format_duration(env.limits.setup_timeout)
            )
        } else {
            format!(
                "setup failed: {} exited with code {}{}",
                if hit.is_some() {
                    "the maintenance script (cache hit)"
                } else {
                    "its script"
                },
                end.exited.code,
                if end.exited.oom_killed {
                    format!(" after running out of memory: {}", super::oom_note(env))
                } else {
                    String::new()
                }
            )
        };
        let log = run.record.path("setup.log");
        let (failed_line, hint) = log_hints(&log, env.ca_certificates.is_empty());
        return Err(RunError::SetupFailed(format!(
            "{why}{}; the agent phase did not start (log: {}){}",
            failed_line.map(|l| format!(" ({l})")).unwrap_or_default(),
            log.display(),
            hint.unwrap_or_default()
        )));
    }
    Ok(SetupDone {
        container: id,
        packed: packed.manifest,
    })
}

/// What a failed setup's log (already redacted) says about why: the failing command's line
/// (from the ERR trap of [`RUN_SCRIPT`]), and a `fix:` when a TLS client refused a
/// certificate and the environment trusts no extra CA (an inspecting proxy on the way out).
fn log_hints(log: &Path, no_extra_ca: bool) -> (Option<String>, Option<String>) {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
        let _ = f.take(TAIL).read_to_end(&mut text);
    }
    let text = String::from_utf8_lossy(&text);
    let failed_line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("airlock: setup script "))
        .map(|l| {
            let mut out = Vec::new();
            crate::console::sanitize_into(l.as_bytes(), &mut out);
            String::from_utf8_lossy(&out).into_owned()
        });
    const TLS: &[&str] = &[
        "curl: (60)",
        "certificate verify failed",
        "CERTIFICATE_VERIFY_FAILED",
        "unable to get local issuer certificate",
        "self-signed certificate in certificate chain",
        "server certificate verification failed",
        "x509: certificate signed by unknown authority",
        "No matching distribution found",
    ];
    let hint = (no_extra_ca && TLS.iter().any(|m| text.contains(m))).then(|| {
        "\n  fix: the log shows a TLS certificate refused (or pip finding no package, which is how a refused certificate looks to pip): if this machine reaches the internet through an inspecting proxy, trust its CA in the setup phase with `ca_certificates: [host]` (or a PEM file) in the environment".to_string()
    });
    (failed_line, hint)
}

/// The setup container's command: read the program up to the marker (`$1`), run it.
pub const BOOTSTRAP: &str = r#"m="$1"; p=""
while IFS= read -r l; do [ "$l" = "$m" ] && break; p="$p$l
"; done
eval "$p""#;

/// Where extra CA certificates are put in the setup container.
pub const CA_DIR: &str = "/airlock/ca";

/// Quote a value for a POSIX shell: single quotes, with `'` written as `'\''`.
pub fn shell_quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// The setup container: root, the run's own network, the plan's setup mounts.
fn spec(run: &Ctx<'_>, image: &str, plan: &MountPlan, owner: &str, marker: &str) -> ContainerSpec {
    let env = &run.task.env;
    let mut vars: Vec<String> = env.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    vars.push(format!("AIRLOCK_ENV={AIRLOCK_ENV_PATH}"));
    ContainerSpec {
        name: run.names.container("setup"),
        image: image.to_string(),
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            BOOTSTRAP.into(),
            "airlock-setup".into(),
            marker.into(),
        ],
        env: vars,
        user: Some("0:0".into()),
        working_dir: Some(WORKSPACE.into()),
        labels: labels::for_run(&run.names.run_id, "setup", owner),
        network: Network::Named(run.names.network()),
        volumes: plan.setup_mounts(),
        tmpfs: Vec::new(),
        locked_down: false,
        memory: env.limits.memory,
        cpus: env.limits.cpus,
        pids: env.limits.pids,
        stdin_once: true,
        tty: false,
        runtime: env.runtime.clone(),
    }
}

/// A tar putting each CA file at /airlock/ca/<name>.
fn ca_tar(files: &[(String, Vec<u8>)]) -> crate::engine::ByteStream {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let _ = builder.append_data(&mut h, Path::new("airlock/ca").join(name), &data[..]);
    }
    let bytes = builder.into_inner().unwrap_or_default();
    Box::pin(futures_util::stream::once(async move {
        Ok(bytes::Bytes::from(bytes))
    }))
}

/// The program sent over stdin: secrets, the script, the hand-over. Zeroized when dropped.
/// On a cache hit the script is the maintenance script, after the entry is restored.
fn program(env: &Environment, ready: &Ready, marker: &str, hit: bool) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Vec::new());
    // A hit with no maintenance script runs nothing that needs the secrets: none are sent.
    let restored_only = hit && env.maintenance.is_none();
    for (name, value) in ready.secrets.iter().filter(|_| !restored_only) {
        p.extend_from_slice(format!("export {name}=").as_bytes());
        p.extend_from_slice(&shell_quote(value.expose_secret()));
        p.push(b'\n');
    }
    let script = if hit { &env.maintenance } else { &env.setup };
    p.extend_from_slice(b"airlock_script=");
    p.extend_from_slice(&shell_quote(script.as_deref().unwrap_or("").as_bytes()));
    p.push(b'\n');
    if hit {
        p.extend_from_slice(b"airlock_restore=");
        p.extend_from_slice(&shell_quote(crate::cache::restore_script(env).as_bytes()));
        p.push(b'\n');
    }
    p.extend_from_slice(b"airlock_owner=");
    p.extend_from_slice(&shell_quote(env.agent.user.as_bytes()));
    p.push(b'\n');
    // A list of quoted paths, itself quoted, for `eval "set -- $airlock_paths"`.
    let mut paths = shell_quote(WORKSPACE.as_bytes());
    // On a hit with no maintenance script the persist paths are the entry's copies, whose
    // files were handed to the agent's user when the entry was made (`cp -a` keeps owners).
    for path in env.persist.iter().filter(|_| !restored_only) {
        paths.push(b' ');
        paths.extend_from_slice(&shell_quote(path.as_bytes()));
    }
    p.extend_from_slice(b"airlock_paths=");
    p.extend_from_slice(&shell_quote(&paths));
    p.push(b'\n');
    let mut trusted = Vec::new();
    for rel in ready.trusted.paths() {
        trusted.push(b' ');
        trusted.extend_from_slice(&shell_quote(&[WORKSPACE.as_bytes(), b"/", rel].concat()));
    }
    p.extend_from_slice(b"airlock_trusted=");
    p.extend_from_slice(&shell_quote(&trusted));
    p.push(b'\n');
    if !ready.ca.is_empty() && !restored_only {
        p.extend_from_slice(CA_SETUP.as_bytes());
    }
    p.extend_from_slice(RUN_SCRIPT.as_bytes());
    p.extend_from_slice(marker.as_bytes());
    p.push(b'\n');
    p
}

/// Trust the CA certificates in /airlock/ca: into the system store where the image has one,
/// and a combined bundle pointed to by the variables common tools read.
const CA_SETUP: &str = r#"airlock_bundle=/airlock/ca-bundle.pem
if [ -d /usr/local/share/ca-certificates ] && command -v update-ca-certificates >/dev/null 2>&1; then
  for f in /airlock/ca/*.pem; do cp "$f" "/usr/local/share/ca-certificates/airlock-$(basename "$f" .pem).crt"; done
  update-ca-certificates >/dev/null 2>&1 || true
fi
{ [ -f /etc/ssl/certs/ca-certificates.crt ] && cat /etc/ssl/certs/ca-certificates.crt; cat /airlock/ca/*.pem; } > "$airlock_bundle"
export SSL_CERT_FILE="$airlock_bundle" REQUESTS_CA_BUNDLE="$airlock_bundle" PIP_CERT="$airlock_bundle" NODE_EXTRA_CA_CERTS="$airlock_bundle" CARGO_HTTP_CAINFO="$airlock_bundle" GIT_SSL_CAINFO="$airlock_bundle" CURL_CA_BUNDLE="$airlock_bundle"
"#;

/// Run the setup script in a fresh shell with errexit and pipefail, then give what crosses
/// to the agent phase's user (symlinks themselves, never their targets: `-h`), except what a
/// later setup trusts ([`crate::trusted`]): root's, with no write bits, so the agent's user
/// (no capabilities) can't change it.
const RUN_SCRIPT: &str = r#": > "$AIRLOCK_ENV"
cd /workspace
if [ -n "${airlock_restore-}" ]; then
  ( eval "$airlock_restore" ) || { echo "airlock: restoring the cache entry failed" >&2; exit 1; }
fi
airlock_trap=
if command -v bash >/dev/null 2>&1; then
  airlock_sh=bash
  # Which command failed, and on which line of the setup script (prepended to its first line,
  # so line numbers stay the script's own).
  airlock_trap='set -E; trap '\''airlock_c=$?; case $- in *e*) printf "airlock: setup script line %s: %s (exit code %s)\n" "$LINENO" "$BASH_COMMAND" "$airlock_c" >&2;; esac'\'' ERR; '
else
  airlock_sh=sh
fi
"$airlock_sh" -e -o pipefail -c "$airlock_trap$airlock_script" </dev/null
airlock_rc=$?
eval "set -- $airlock_paths"
chown -R -h "$airlock_owner" "$@" || echo "airlock: could not hand $* to user $airlock_owner" >&2
eval "set -- $airlock_trusted"
for t in "$@"; do
  if [ -e "$t" ] && [ ! -L "$t" ]; then chown -R -h 0:0 "$t" && chmod -R a-w "$t"; fi
done
exit $airlock_rc
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_any_bytes_as_data() {
        assert_eq!(shell_quote(b"a'b"), b"'a'\\''b'".to_vec());
        assert_eq!(
            shell_quote(b"$(rm -rf /)`x`\n"),
            b"'$(rm -rf /)`x`\n'".to_vec()
        );
    }

    /// The real shell reads back exactly what was quoted, for hostile values.
    #[test]
    fn sh_evaluates_quoted_values_verbatim() {
        for value in [
            &b"plain"[..],
            b"it's",
            b"$(touch /tmp/x)`id`",
            b"multi\nline\n\n",
            b"\\n \\' \"q\"",
            b"trailing\\",
        ] {
            let mut prog = b"v=".to_vec();
            prog.extend_from_slice(&shell_quote(value));
            prog.extend_from_slice(b"\nprintf %s \"$v\"");
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&prog))
                .output()
                .unwrap();
            assert_eq!(out.stdout, value, "{:?}", String::from_utf8_lossy(value));
        }
    }
}
