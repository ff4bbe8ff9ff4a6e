//! `airlock-forward`: the agent phase's only way to the egress proxy.
//!
//! An agent phase with an allowlist still has no network interface but its own loopback
//! (`--network none`). The proxy listens on a Unix socket in a volume the agent's container
//! mounts read-only; this program, the agent container's command, makes that socket reachable
//! where HTTP clients look for a proxy, `127.0.0.1:3128`, and then becomes the task's command:
//!
//! ```text
//! airlock-forward SOCKET ADDRESS -- COMMAND [ARG...]
//! ```
//!
//! It starts a copy of itself (`--serve`) that listens on ADDRESS and copies each connection
//! to and from a fresh connection to SOCKET, waits until that copy is listening, and then
//! `exec`s COMMAND: the command is the init process's child, exactly as without an allowlist,
//! so signals, exit codes and the OOM killer's choice behave the same. When the proxy is gone
//! a connection is accepted and closed at once: a client fails fast instead of hanging.
//!
//! Built by `runner/build.rs` as a static binary of `std` alone (it runs in whatever image
//! the environment names, the busybox one included), and copied into the agent container
//! before it starts, owned by root and not writable by the agent.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::thread;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve") if args.len() == 4 => serve(&args[2], &args[3]),
        _ => start(&args),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: airlock-forward SOCKET ADDRESS -- COMMAND [ARG...]");
    ExitCode::from(2)
}

/// Start the listener, wait for it, become the command.
fn start(args: &[String]) -> ExitCode {
    if args.len() < 5 || args[3] != "--" {
        return usage();
    }
    let (socket, address, command) = (&args[1], &args[2], &args[4..]);
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("airlock-forward: {e}");
            return ExitCode::from(126);
        }
    };
    let child = Command::new(me)
        .args(["--serve", socket, address])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("airlock-forward: cannot start the proxy forwarder: {e}");
            return ExitCode::from(126);
        }
    };
    // One byte when it listens; nothing (end of file) if it could not.
    let mut ready = [0u8; 1];
    let listening = child
        .stdout
        .take()
        .map(|mut out| out.read(&mut ready).unwrap_or(0) == 1)
        .unwrap_or(false);
    if !listening {
        eprintln!("airlock-forward: the proxy forwarder could not listen on {address}");
        return ExitCode::from(126);
    }
    // The forwarder goes on as the init process's child once this process is the command.
    let err = Command::new(&command[0]).args(&command[1..]).exec();
    eprintln!("airlock-forward: cannot run {}: {err}", command[0]);
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Listen on `address`; copy each connection to a new connection to `socket`.
fn serve(socket: &str, address: &str) -> ExitCode {
    let listener = match TcpListener::bind(address) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("airlock-forward: listen on {address}: {e}");
            return ExitCode::from(1);
        }
    };
    {
        let mut out = std::io::stdout();
        if out.write_all(b"r").and_then(|()| out.flush()).is_err() {
            return ExitCode::from(1);
        }
    }
    // Nothing more goes to the starter's pipe (it is the command now).
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let socket = socket.to_string();
        thread::spawn(move || connection(client, &socket));
    }
    ExitCode::SUCCESS
}

fn connection(client: TcpStream, socket: &str) {
    let _ = client.set_nodelay(true);
    let upstream = match UnixStream::connect(socket) {
        Ok(u) => u,
        // The proxy is gone: close, so the client fails now rather than waits.
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let (Ok(client_read), Ok(upstream_write)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || {
        pipe(client_read, &upstream_write);
        let _ = upstream_write.shutdown(Shutdown::Write);
    });
    pipe(upstream, &client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// Copy until end of file or an error.
fn pipe(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
