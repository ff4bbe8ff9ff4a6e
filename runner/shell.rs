//! `airlock shell RUN-ID`: a shell in a kept run's final state.
//!
//! `airlock run --keep` leaves the agent container (stopped) and the run's volumes in place.
//! A shell commits that container to a throwaway image and starts a new container from it
//! with the same volumes, user and lock-down as the agent phase: still no network, still no
//! secrets (there never were any in the agent phase). The shell container and image are
//! removed when the shell exits; the kept run stays until `airlock gc --kept`.
//!
//! The final state is the agent's, and the agent is untrusted: it may have written
//! `~/.bashrc`, `~/.profile`, `~/.inputrc` (key bindings that type commands) or a shell
//! history for the person who opens the shell. So the shell reads none of them: bash starts
//! with `--norc --noprofile`, `INPUTRC` and `HISTFILE` are `/dev/null`, and the variables
//! a shell or the dynamic loader reads as instructions (`BASH_ENV`, `ENV`, `PROMPT_COMMAND`,
//! `PS1`…, the image's included) are unset; the rest of the agent phase's variables stay, so
//! the shell sees what the agent saw. What the shell and the programs run in it print still
//! comes from the agent's state, so it reaches the user's terminal through
//! [`crate::console::TerminalFilter`]: drawing passes, the clipboard (OSC 52), titles,
//! hyperlinks and every request the terminal would answer into the shell's input do not.

use std::io::{IsTerminal, Read, Write};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::cleanup;
use crate::console::TerminalFilter;
use crate::engine::{labels, Chunk, ContainerSpec, Engine, EngineError, Network};

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("no kept run named {0}\n  fix: `airlock shell` needs the id of a run made with `airlock run --keep` and not yet removed by `airlock gc --kept`")]
    NotKept(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Open a shell in a kept run; returns the shell's exit code.
pub async fn open(engine: &dyn Engine, run_id: &str) -> Result<i32, ShellError> {
    let kept = engine
        .list_labelled(&[
            format!("{}={run_id}", labels::RUN),
            format!("{}=agent", labels::PHASE),
            format!("{}=true", labels::KEPT),
        ])
        .await?
        .into_iter()
        .find(|o| o.kind == crate::engine::ObjectKind::Container)
        .ok_or_else(|| ShellError::NotKept(run_id.to_string()))?;
    let kept_spec = engine.inspect_container(&kept.id).await?;
    let image = format!("airlock-shell:{run_id}");
    engine
        .commit_container(
            &kept.id,
            "airlock-shell",
            run_id,
            &labels::for_run(run_id, "shell", &cleanup::owner_id()),
        )
        .await?;
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let spec = ContainerSpec {
        name: format!("airlock-{run_id}-shell-{}", std::process::id()),
        image: image.clone(),
        cmd: command(&kept_spec.env),
        labels: labels::for_run(run_id, "shell", &cleanup::owner_id()),
        network: Network::None,
        locked_down: true,
        stdin_once: true,
        tty,
        ..kept_spec
    };
    let result = interact(engine, &spec, tty).await;
    let _ = engine.remove_container(&spec.name).await;
    let _ = engine.remove_image(&image).await;
    result
}

/// Variables an interactive shell reads at startup, beyond those that may never reach the
/// agent phase at all ([`crate::boundary::envfile::reserved`]).
const SHELL_STARTUP: &[&str] = &[
    "PS0", "PS1", "PS2", "PS3", "INPUTRC", "HISTFILE", "MAIL", "MAILPATH",
];

/// The shell's command: the agent phase's variables without the ones that instruct a shell,
/// then bash (or `sh` where the image has no bash) without any startup file.
fn command(env: &[String]) -> Vec<String> {
    let mut cmd = vec!["/usr/bin/env".to_string()];
    for name in env.iter().map(|v| v.split('=').next().unwrap_or_default()) {
        if crate::boundary::envfile::reserved(name).is_some() || SHELL_STARTUP.contains(&name) {
            cmd.extend(["-u".to_string(), name.to_string()]);
        }
    }
    cmd.extend(
        [
            "INPUTRC=/dev/null",
            "HISTFILE=/dev/null",
            "PS1=(airlock shell) \\w \\$ ",
            "/bin/sh",
            "-c",
            "if command -v bash >/dev/null 2>&1; then exec bash --norc --noprofile; else exec sh; fi",
        ]
        .map(String::from),
    );
    cmd
}

async fn interact(engine: &dyn Engine, spec: &ContainerSpec, tty: bool) -> Result<i32, ShellError> {
    let id = engine.create_container(spec).await?;
    let attached = engine.attach(&id, true).await?;
    engine.start_container(&id).await?;
    let _raw = if tty { RawMode::enable() } else { None };
    let mut input = attached.input.expect("attached with stdin");
    // Host stdin → container, on a thread (stdin reads block).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let feed = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if input.write_all(&data).await.is_err() {
                break;
            }
            let _ = input.flush().await;
        }
        let _ = input.shutdown().await;
    });
    let mut output = attached.output;
    // One filter per stream: a sequence cut between two chunks of stdout is held back until
    // its end arrives, whatever stderr prints meanwhile.
    let (mut stdout, mut stderr) = (TerminalFilter::new(), TerminalFilter::new());
    let mut shown = Vec::new();
    while let Some(chunk) = output.next().await {
        let Ok(chunk) = chunk else { break };
        shown.clear();
        match &chunk {
            Chunk::Stdout(b) => stdout.feed(b, &mut shown),
            Chunk::Stderr(b) => stderr.feed(b, &mut shown),
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&shown);
        let _ = out.flush();
    }
    shown.clear();
    stdout.finish(&mut shown);
    stderr.finish(&mut shown);
    let _ = std::io::stdout().lock().write_all(&shown);
    feed.abort();
    let exited = engine.wait_container(&id).await?;
    Ok(exited.code.clamp(0, 255) as i32)
}

/// The host terminal in raw mode while the shell runs (restored on drop).
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enable() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

#[cfg(test)]
mod tests {
    /// The image's and the run's variables stay, except those that instruct a shell; no
    /// startup file is named.
    #[test]
    fn the_shell_reads_no_startup_file_and_no_instructing_variable() {
        let env: Vec<String> = [
            "PATH=/usr/bin:/bin",
            "JAVA_HOME=/opt/jdk",
            "BASH_ENV=/home/agent/.evil",
            "ENV=/home/agent/.evil",
            "PROMPT_COMMAND=evil",
            "PS1=$(evil)",
            "BASH_FUNC_ls%%=() { evil; }",
            "LD_PRELOAD=/tmp/evil.so",
            "INPUTRC=/home/agent/.inputrc",
        ]
        .map(String::from)
        .to_vec();
        let cmd = super::command(&env);
        let unset: Vec<&str> = cmd
            .windows(2)
            .filter(|w| w[0] == "-u")
            .map(|w| w[1].as_str())
            .collect();
        for name in [
            "BASH_ENV",
            "ENV",
            "PROMPT_COMMAND",
            "PS1",
            "BASH_FUNC_ls%%",
            "LD_PRELOAD",
            "INPUTRC",
        ] {
            assert!(unset.contains(&name), "{name} not unset: {cmd:?}");
        }
        assert!(!unset.contains(&"PATH") && !unset.contains(&"JAVA_HOME"));
        assert!(cmd.contains(&"INPUTRC=/dev/null".to_string()));
        assert!(cmd.contains(&"HISTFILE=/dev/null".to_string()));
        assert!(cmd.last().unwrap().contains("bash --norc --noprofile"));
    }
}
