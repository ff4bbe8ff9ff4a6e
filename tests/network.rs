//! The agent phase's network: nothing but its own loopback. Not the setup phase's network
//! or its gateway, not another run's containers, no name resolution, no IPv6 way out.
//!
//! A host server on the setup network's gateway is covered by
//! `run::setup_reaches_a_test_server_and_the_agent_phase_does_not`. Every server here is
//! one the test starts: a listener of the test process, or a server in a run the test
//! started.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::docker;
use crate::harness::{assert_run_gone, running_container_of, Fixture};

/// The agent's output lines (without the `agent | ` prefix).
fn agent_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("agent | "))
        .collect()
}

/// The agent's lines between a `BEGIN name` and an `END name` line.
fn section<'a>(stderr: &'a str, name: &str) -> Vec<&'a str> {
    let lines = agent_lines(stderr);
    let begin = format!("BEGIN {name}");
    let end = format!("END {name}");
    let start = lines
        .iter()
        .position(|l| *l == begin)
        .unwrap_or_else(|| panic!("no {begin} in the agent's output:\n{stderr}"));
    let stop = lines[start..]
        .iter()
        .position(|l| *l == end)
        .unwrap_or_else(|| panic!("no {end} in the agent's output:\n{stderr}"));
    lines[start + 1..start + stop].to_vec()
}

fn wait_output(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_agent_phase_has_only_loopback_no_route_to_setup_and_no_resolver() {
    let f = Fixture::new();
    // Setup hands its own address and its network's gateway to the agent phase.
    f.env(
        "t",
        "image: tiny\nsetup: |\n  echo SETUP_GW=$(ip route | awk '/default/ {print $3}') >> $AIRLOCK_ENV\n  echo SETUP_IP=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1) >> $AIRLOCK_ENV\n  cat $AIRLOCK_ENV\nlimits:\n  agent_timeout: 60s\n",
    );
    // The agent waits for the test to look at the engine, then reports what it can see.
    let agent = "while [ ! -e /tmp/go ]; do sleep 0.1; done; \
        echo BEGIN ifaces; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; echo END ifaces; \
        echo BEGIN routes; tail -n +2 /proc/net/route; echo END routes; \
        echo BEGIN resolv; cat /etc/resolv.conf; echo; echo END resolv; \
        echo CAPEFF=$(awk '/^CapEff/ {print $2}' /proc/self/status); \
        echo \"GW $SETUP_GW: $(nc -w 3 $SETUP_GW 9 </dev/null 2>&1 && echo CONNECTED)\"; \
        echo \"SETUP_IP $SETUP_IP: $(nc -w 3 $SETUP_IP 9 </dev/null 2>&1 && echo CONNECTED)\"; \
        nslookup airlock-made-up-name.invalid; echo NSLOOKUP_EXIT=$?; \
        ping -c 1 -W 1 airlock-made-up-name.invalid; echo PING_EXIT=$?";
    let mut child = f
        .run("t", &["sh", "-c", agent])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (agent_id, run_id) = running_container_of(&mut child, "agent");
    // While the agent phase runs: its setup container and setup network are gone, and the
    // agent container has no network and no capabilities (no NET_RAW: raw sockets reach
    // further than routes do).
    let gone = |what: &[&str]| {
        let mut args = what.to_vec();
        let filter = format!("label=airlock.run={run_id}");
        args.extend(["-q", "--filter", &filter]);
        docker(&args).trim().to_string()
    };
    // The setup container is removed before the agent phase starts; the setup network's
    // removal (slow: a bridge and its firewall rules) runs beside the agent phase's start, so
    // wait for it, a bounded while, as long as the agent is still running.
    let deadline = Instant::now() + Duration::from_secs(30);
    let networks_left = loop {
        let left = gone(&["network", "ls"]);
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let setup_left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=airlock.run={run_id}"),
        "--filter",
        "label=airlock.phase=setup",
    ]);
    let inspected = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.NetworkMode}}|{{range $k, $v := .NetworkSettings.Networks}}{{$k}},{{end}}|{{.HostConfig.CapDrop}}",
        &agent_id,
    ]);
    docker(&["exec", &agent_id, "touch", "/tmp/go"]);
    assert_eq!(
        networks_left, "",
        "the setup network outlives the agent phase's start"
    );
    assert_eq!(setup_left.trim(), "", "the setup container outlives setup");
    // Network mode none, attached to no network at all, every capability dropped.
    assert_eq!(
        inspected.trim(),
        "none||[ALL]",
        "agent container: {inspected}"
    );
    let (code, stderr) = wait_output(child);
    assert_eq!(code, 0, "{stderr}");

    assert_eq!(section(&stderr, "ifaces"), ["lo"], "{stderr}");
    assert!(
        section(&stderr, "routes").is_empty(),
        "IPv4 routes: {stderr}"
    );
    let resolv = section(&stderr, "resolv");
    for line in &resolv {
        if let Some(ns) = line.trim().strip_prefix("nameserver") {
            let ip: IpAddr = ns.trim().parse().expect("a nameserver address");
            assert!(
                ip.is_loopback(),
                "the agent's resolv.conf names a name server off its loopback: {resolv:?}"
            );
        }
    }
    assert!(
        stderr.contains("agent | CAPEFF=0000000000000000"),
        "{stderr}"
    );
    let lines = agent_lines(&stderr);
    for what in ["GW ", "SETUP_IP "] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what} line:\n{stderr}"));
        assert!(
            line.contains("Network is unreachable") && !line.contains("CONNECTED"),
            "the agent had a way to the setup network: {line}"
        );
        assert!(
            line.len() > what.len() + 8,
            "setup passed no address: {line}"
        );
    }
    assert!(!stderr.contains("agent | NSLOOKUP_EXIT=0"), "{stderr}");
    assert!(stderr.contains("agent | NSLOOKUP_EXIT="), "{stderr}");
    assert!(stderr.contains("agent | PING_EXIT=1"), "{stderr}");
    assert_eq!(f.report()["outcome"], "succeeded");
    assert_run_gone(&run_id);
}

#[test]
fn another_runs_setup_container_is_unreachable_from_both_phases() {
    const PORT: u16 = 7777;
    // Run B: its setup serves on its own network (one line in, "ack" out, each line kept)
    // until the test releases it, then prints what it received.
    let fb = Fixture::new();
    fb.env(
        "b",
        &format!(
            "image: tiny\nsetup: |\n  printf '#!/bin/sh\\nread line\\necho \"$line\" >> /tmp/hits\\necho ack\\n' > /tmp/h\n  chmod +x /tmp/h\n  nc -ll -p {PORT} -e /tmp/h &\n  while [ ! -e /tmp/release ]; do sleep 0.1; done\n  echo BEGIN hits; cat /tmp/hits; echo END hits\nlimits:\n  setup_timeout: 90s\n"
        ),
    );
    let mut b = fb
        .run("b", &["true"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (b_setup, b_run) = running_container_of(&mut b, "setup");
    let release = || docker(&["exec", &b_setup, "touch", "/tmp/release"]);
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &b_setup,
    ])
    .trim()
    .to_string();
    let ip: IpAddr = ip.parse().unwrap_or_else(|_| {
        release();
        panic!("run B's setup container has no address: {ip:?}")
    });

    // Control: the server answers at that address (from the host, which is on every
    // bridge), so a refusal below is isolation, not a dead server.
    let deadline = Instant::now() + Duration::from_secs(30);
    let control = loop {
        let attempt =
            TcpStream::connect_timeout(&SocketAddr::new(ip, PORT), Duration::from_secs(2))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    s.write_all(b"control\n")?;
                    let mut reply = String::new();
                    s.read_to_string(&mut reply)?;
                    Ok(reply)
                });
        match attempt {
            Ok(reply) if reply.contains("ack") => break reply,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => {
                release();
                panic!("run B's server never answered: {other:?}")
            }
        }
    };
    assert!(control.contains("ack"));

    // Run A, at the same time, tries B's server from both of its phases.
    let fa = Fixture::new();
    fa.env(
        "a",
        &format!(
            "image: tiny\nsetup: |\n  if echo from-a-setup | nc -w 3 {ip} {PORT}; then echo SETUP_REACHED; else echo SETUP_BLOCKED; fi\n"
        ),
    );
    let agent = format!(
        "if echo from-a-agent | nc -w 3 {ip} {PORT}; then echo AGENT_REACHED; else echo AGENT_BLOCKED; fi"
    );
    let a = fa.run("a", &["sh", "-c", &agent]).run();
    release();
    let (b_code, b_err) = wait_output(b);
    let a = a.success();
    let a_err = a.stderr();
    assert!(a_err.contains("agent | AGENT_BLOCKED"), "{a_err}");
    assert!(a_err.contains("setup | SETUP_BLOCKED"), "{a_err}");
    assert!(!a_err.contains("REACHED"), "{a_err}");
    assert_eq!(b_code, 0, "{b_err}");
    let hits: Vec<&str> = b_err
        .lines()
        .filter_map(|l| l.strip_prefix("setup | "))
        .skip_while(|l| *l != "BEGIN hits")
        .take_while(|l| *l != "END hits")
        .collect();
    assert_eq!(hits, ["BEGIN hits", "control"], "B's server saw:\n{b_err}");
    assert_run_gone(&b_run);
    assert_run_gone(fa.report()["run_id"].as_str().unwrap());
}

/// The host's global IPv6 addresses (from /proc/net/if_inet6: scope 00, not `lo`).
fn host_global_ipv6() -> Vec<Ipv6Addr> {
    let table = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[3] != "00" || f[5] == "lo" {
                return None;
            }
            u128::from_str_radix(f[0], 16).ok().map(Ipv6Addr::from)
        })
        .collect()
}

/// A host command that can run busybox's `nc` (the same applet as the tiny image's).
fn host_busybox() -> Option<&'static str> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
}

#[test]
fn the_agent_phase_has_no_ipv6_address_route_or_way_to_the_host() {
    let addrs = host_global_ipv6();
    let listener = TcpListener::bind("[::]:0");
    let (listener, port) = match listener {
        Ok(l) if !addrs.is_empty() => {
            let port = l.local_addr().unwrap().port();
            (Some(l), port)
        }
        _ => {
            eprintln!(
                "SKIPPED part: this host has no global IPv6 address or can't listen on [::]; \
                 only the agent's IPv6 tables are checked, no connection is tried"
            );
            (None, 0)
        }
    };
    let done = Arc::new(AtomicBool::new(false));
    let server = listener.map(|listener| {
        listener.set_nonblocking(true).unwrap();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut hits = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut s, from)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = String::new();
                        let _ = s.read_to_string(&mut buf);
                        hits.push(format!("{from}: {buf}"));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            hits
        })
    });

    // Controls: the listener answers on each address, from this process and from the same
    // busybox `nc` command the agent runs.
    let nc_cmd = |addr: &Ipv6Addr, who: &str| format!("echo {who} | nc -w 3 {addr} {port}");
    let mut controls = 0;
    if server.is_some() {
        for addr in &addrs {
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::new(IpAddr::V6(*addr), port),
                Duration::from_secs(3),
            )
            .unwrap_or_else(|e| panic!("the test's own listener at [{addr}]:{port}: {e}"));
            s.write_all(b"control").unwrap();
            controls += 1;
            match host_busybox() {
                Some(bb) => {
                    let st = Command::new(bb)
                        .args(["sh", "-c", &nc_cmd(addr, "control-nc")])
                        .status()
                        .unwrap();
                    assert!(
                        st.success(),
                        "busybox nc on the host reaches [{addr}]:{port}"
                    );
                    controls += 1;
                }
                None => eprintln!("no busybox on the host: skipping the nc control"),
            }
        }
    }

    let f = Fixture::new();
    f.env("t", "image: tiny\n");
    let mut agent = String::from(
        "echo BEGIN if_inet6; cat /proc/net/if_inet6; echo END if_inet6; \
         echo BEGIN ipv6_route; cat /proc/net/ipv6_route; echo END ipv6_route; ",
    );
    if server.is_some() {
        for addr in &addrs {
            agent.push_str(&format!(
                "if {}; then echo 'REACHED {addr}'; else echo 'BLOCKED {addr}'; fi; ",
                nc_cmd(addr, "from-agent")
            ));
        }
    }
    // One stream: the engine copies a container's stdout and stderr separately, so a probe's
    // error message could otherwise arrive inside an earlier section.
    let agent = format!("{{ {agent} }} 2>&1");
    let out = f.run("t", &["sh", "-c", &agent]).run().success();
    let stderr = out.stderr();
    done.store(true, Ordering::SeqCst);

    let if_inet6 = section(&stderr, "if_inet6");
    assert!(!if_inet6.is_empty(), "{stderr}");
    for line in &if_inet6 {
        assert!(
            line.split_whitespace().last() == Some("lo"),
            "the agent has an IPv6 address off its loopback: {line}"
        );
    }
    for line in section(&stderr, "ipv6_route") {
        assert!(
            line.split_whitespace().last() == Some("lo"),
            "the agent has an IPv6 route off its loopback: {line}"
        );
    }
    if let Some(server) = server {
        for addr in &addrs {
            assert!(
                stderr.contains(&format!("agent | BLOCKED {addr}")),
                "{stderr}"
            );
        }
        assert!(!stderr.contains("REACHED"), "{stderr}");
        let hits = server.join().unwrap();
        assert_eq!(hits.len(), controls, "the listener saw: {hits:?}");
        assert!(
            !hits.iter().any(|h| h.contains("from-agent")),
            "the agent phase reached the host over IPv6: {hits:?}"
        );
    }
    assert_run_gone(f.report()["run_id"].as_str().unwrap());
}
