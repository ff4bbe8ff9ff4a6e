//! `airlock shell RUN-ID`: a shell in a kept run's final state.
//!
//! `airlock run --keep` leaves the agent container (stopped) and the run's volumes in place.
//! A shell commits that container to a throwaway image and starts a new container from it
//! with the same volumes, user and lock-down as the agent phase: still no network, still no
//! secrets (there never were any in the agent phase). The shell container and image are
//! removed when the shell exits; the kept run stays until `airlock gc --kept`.

use std::io::{IsTerminal, Read, Write};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::cleanup;
use crate::engine::{labels, ContainerSpec, Engine, EngineError, Network};

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("no kept run {0}: `airlock shell` needs a run made with `airlock run --keep` (and not yet removed by `airlock gc --kept`)")]
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
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi".into(),
        ],
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
    while let Some(chunk) = output.next().await {
        let Ok(chunk) = chunk else { break };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(chunk.bytes());
        let _ = out.flush();
    }
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
