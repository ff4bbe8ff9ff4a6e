//! The setup phase's container and the program it runs.
//!
//! Secrets must reach the setup script's process and nothing else: not container env (that
//! shows in `docker inspect` and in the engine's state on disk), not labels, not command
//! arguments, not files. So the container's command is a constant bootstrap ([`BOOTSTRAP`])
//! that reads a small shell program from standard input, up to a per-run marker line, and
//! evaluates it. airlock writes that program over the attached stdin: it exports the secrets
//! (single-quoted: data, never interpreted), runs the environment's setup script with
//! `bash -e -o pipefail` (or `sh` where the image has no bash), then hands what crosses to
//! the agent's user. The engine's log driver is `none`, so no output is kept on disk either.

use zeroize::Zeroizing;

use secrecy::ExposeSecret;

use super::{RunNames, AIRLOCK_ENV_PATH, WORKSPACE};
use crate::boundary::{self, RootKind};
use crate::engine::{labels, ContainerSpec, VolumeMount};
use crate::environment::Environment;
use crate::secrets::SecretValue;

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

/// The setup container.
pub fn spec(
    names: &RunNames,
    image: &str,
    env: &Environment,
    has_git: bool,
    owner: &str,
    marker: &str,
) -> ContainerSpec {
    let mut vars: Vec<String> = env.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    vars.push(format!("AIRLOCK_ENV={AIRLOCK_ENV_PATH}"));
    ContainerSpec {
        name: names.container("setup"),
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
        labels: labels::for_run(&names.run_id, "setup", owner),
        network: names.network(),
        volumes: volumes(names, env, has_git, false),
        tmpfs: Default::default(),
        locked_down: false,
        memory: env.limits.memory,
        cpus: env.limits.cpus,
        pids: env.limits.pids,
        stdin_once: true,
        tty: false,
        runtime: env.runtime.clone(),
    }
}

/// The run's volumes as each phase mounts them: the workspace, its `.git` (read-only to the
/// agent), and one per persist path. The setup phase mounts each a second time under
/// [`boundary::CROSSING_DIR`], where the boundary reads them all at once.
pub fn volumes(
    names: &RunNames,
    env: &Environment,
    has_git: bool,
    agent: bool,
) -> Vec<VolumeMount> {
    // The engine fills an empty volume from the image at every mount while it stays empty,
    // resetting its root's owner too. The workspace and .git never want that; a persist
    // volume does in setup (the image's files at that path are kept), and never in the
    // agent phase (it must see exactly what setup left).
    let mut v = Vec::new();
    for root in boundary::roots(WORKSPACE, has_git, &env.persist) {
        let volume = names.volume(&root);
        let (read_only, no_copy) = match root.kind {
            RootKind::Workspace => (false, true),
            RootKind::Git => (agent, true),
            RootKind::Persist => (false, agent),
        };
        v.push(VolumeMount {
            volume: volume.clone(),
            target: root.path.clone(),
            read_only,
            no_copy,
        });
        if !agent {
            v.push(VolumeMount {
                volume,
                target: root.crossing_path(),
                read_only: false,
                no_copy: true,
            });
        }
    }
    v
}

/// The program sent over stdin: secrets, the script, the hand-over. Zeroized when dropped.
pub fn program(
    env: &Environment,
    secrets: &[(String, SecretValue)],
    marker: &str,
    with_ca: bool,
) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Vec::new());
    for (name, value) in secrets {
        p.extend_from_slice(format!("export {name}=").as_bytes());
        p.extend_from_slice(&shell_quote(value.expose_secret()));
        p.push(b'\n');
    }
    p.extend_from_slice(b"airlock_script=");
    p.extend_from_slice(&shell_quote(env.setup.as_deref().unwrap_or("").as_bytes()));
    p.push(b'\n');
    p.extend_from_slice(b"airlock_owner=");
    p.extend_from_slice(&shell_quote(env.agent.user.as_bytes()));
    p.push(b'\n');
    // A list of quoted paths, itself quoted, for `eval "set -- $airlock_paths"`.
    let mut paths = shell_quote(WORKSPACE.as_bytes());
    for path in &env.persist {
        paths.push(b' ');
        paths.extend_from_slice(&shell_quote(path.as_bytes()));
    }
    p.extend_from_slice(b"airlock_paths=");
    p.extend_from_slice(&shell_quote(&paths));
    p.push(b'\n');
    if with_ca {
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
/// to the agent phase's user (symlinks themselves, never their targets: `-h`).
const RUN_SCRIPT: &str = r#": > "$AIRLOCK_ENV"
cd /workspace
if command -v bash >/dev/null 2>&1; then airlock_sh=bash; else airlock_sh=sh; fi
"$airlock_sh" -e -o pipefail -c "$airlock_script" </dev/null
airlock_rc=$?
eval "set -- $airlock_paths"
chown -R -h "$airlock_owner" "$@" || echo "airlock: could not hand $* to user $airlock_owner" >&2
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
