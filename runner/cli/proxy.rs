//! `airlock proxy` (hidden): run the egress proxy in the foreground, so a run can start it in
//! a container of its own from the airlock binary. Everything it does is in `crate::proxy`.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::environment::Cidr;
use crate::proxy::{self, Config, Listen, Policy, Proxy};

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// The policy: JSON written from an environment's agent.network (allow, deny, hosts)
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Where to listen: ADDRESS:PORT (port 0: any free port) or unix:PATH
    #[arg(long, value_name = "ADDR|unix:PATH")]
    listen: Listen,
    /// The request record, one JSON line per request (appended to)
    #[arg(long, value_name = "FILE")]
    record: PathBuf,
    /// Where the run's CA certificate is written, as ca.pem (the key stays in memory)
    #[arg(long, value_name = "DIR")]
    ca_dir: PathBuf,
    /// PEM bundle of the CAs trusted upstream
    #[arg(long, value_name = "FILE", default_value = proxy::HOST_BUNDLE)]
    upstream_ca: PathBuf,
    /// A network of the engine host (IP/PREFIX, or an IP alone), refused like a private one
    /// (repeatable)
    #[arg(long, value_name = "IP[/PREFIX]", value_parser = local_network)]
    local_network: Vec<Cidr>,
    /// Tests only: route NAME to 127.0.0.1 and allow loopback for it (repeatable)
    #[arg(long, value_name = "NAME", hide = true)]
    test_loopback: Vec<String>,
}

/// `IP` or `IP/PREFIX`, host bits allowed (an interface's address and its prefix).
fn local_network(text: &str) -> Result<Cidr, String> {
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= width)
            .ok_or_else(|| format!("{p:?} is not a prefix length of 0 to {width}"))?,
        None => width,
    };
    Ok(Cidr::network_of(ip, prefix))
}

pub async fn run(a: ProxyArgs) -> anyhow::Result<i32> {
    let policy = Policy::read(&a.policy)?;
    let proxy = Proxy::new(Config {
        policy,
        upstream_ca: a.upstream_ca,
        record: a.record,
        ca_dir: a.ca_dir,
        test_loopback: a
            .test_loopback
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect::<BTreeSet<_>>(),
        local_networks: a.local_network,
    })?;
    let listener = proxy.bind(&a.listen).await?;
    // The one line a caller waits for: the address (with the port filled in) and the CA.
    println!(
        "airlock proxy: listening on {} (CA {})",
        listener.address(),
        proxy.ca_cert().display()
    );
    std::io::stdout().flush()?;
    tokio::select! {
        r = proxy.serve(listener) => r?,
        _ = stop() => {}
    }
    Ok(0)
}

/// SIGTERM or SIGINT: every record line is already written whole, so just stop.
async fn stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
