//! Attacks from the agent phase. The agent command is untrusted (it may be prompt-injected),
//! so each test here runs a hostile command through the real `airlock run`, against the real
//! engine, and checks one promise still holds:
//!
//! - it finds no secret, no host file and no engine socket, wherever it looks;
//! - it can't gain privileges (a setuid-root binary stays powerless), mount, change
//!   namespaces, or write outside the workspace in a way that reaches the host;
//! - what it prints can't drive the terminal, and the log keeps it byte for byte;
//! - the file names and links it makes cross into the patch as data (hard links as the
//!   content they share, symlinks as links), and `--apply` writes them only inside the
//!   workspace, follows no link, and never writes a `.git`;
//! - the patch is its bytes, readably: no `.gitattributes` it writes changes what the patch
//!   says.
//!
//! Each test makes one run that does many probes and writes what it found into the
//! workspace, so the findings cross into `changes.patch` (which is never redacted: a leak
//! there would be a real leak). Every run has a secret the setup phase uses. Probes that could
//! pass for the wrong reason come with a control that shows they can fail. `--apply`'s
//! refusal of patches touching `.git` or leaving the workspace can't be reached from a run
//! (the patch airlock builds never holds such a path); runner/patch.rs tests it with
//! hand-made hostile patches.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::harness::{assert_run_gone, contains, Fixture, SECRET};

/// A name no other test (or earlier run) uses: for files a probe must not find on the host.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("airlock-{what}-{}-{nanos}", std::process::id())
}

/// `value` as a shell expression that builds it from two quoted halves, so the full value is
/// never in the agent's command line (which the report records and `/proc` shows).
fn halves(value: &str) -> String {
    let (a, b) = value.split_at(value.len() / 2);
    format!("'{a}''{b}'")
}

/// The environment every attack runs in: the tiny image (or `image`), a secret the setup
/// script uses, and `extra` lines of setup script.
fn hostile_env(f: &Fixture, image: &str, extra: &str) {
    f.secret("TOKEN", SECRET.as_bytes());
    let mut yaml = format!(
        "image: {image}\nsecrets: [TOKEN]\nsetup: |\n  test \"${{#TOKEN}}\" -eq {}\n",
        SECRET.len()
    );
    for line in extra.lines() {
        yaml.push_str(&format!("  {line}\n"));
    }
    f.env("t", &yaml);
}

/// The secret is in none of airlock's output nor any file of the record.
#[track_caller]
fn assert_no_secret_anywhere(f: &Fixture, out: &crate::harness::Output) {
    assert!(
        !contains(&out.stdout, SECRET.as_bytes()) && !contains(&out.stderr, SECRET.as_bytes()),
        "airlock printed the secret"
    );
    for file in ["setup.log", "agent.log", "report.json", "changes.patch"] {
        assert!(
            !contains(&f.record_file(file), SECRET.as_bytes()),
            "{file} holds the secret"
        );
    }
}

fn ws_text(f: &Fixture, name: &str) -> String {
    std::fs::read_to_string(f.ws.join(name))
        .unwrap_or_else(|e| panic!("{name} did not reach the workspace through --apply: {e}"))
}

#[test]
fn the_agent_finds_no_secret_host_file_or_engine_socket_anywhere() {
    let f = Fixture::new();
    // Setup leaves the secret everywhere that does not cross: the agent phase must find it in
    // none of those places (nor anywhere else).
    hostile_env(
        &f,
        "tiny",
        "mkdir -p /run/secrets /etc/app /home/agent/.config\n\
         echo \"$TOKEN\" > /run/secrets/token\n\
         echo \"token=$TOKEN\" > /etc/app/conf\n\
         echo \"$TOKEN\" > /tmp/token\n\
         echo \"$TOKEN\" > /dev/shm/token\n\
         echo \"export TOKEN=$TOKEN\" >> /home/agent/.profile\n\
         echo \"curl -H 'Authorization: $TOKEN'\" > /home/agent/.ash_history\n\
         echo \"$TOKEN\" > /home/agent/.config/token\n\
         echo \"$TOKEN\" > /root/.ash_history\n\
         echo setup left the token outside what crosses",
    );
    // Things that exist only on the host: a marker file beside the workspace and the age
    // identity that decrypts the secrets.
    let marker = unique("host-only");
    f.root.write("host-only.txt", &marker);
    let identity = std::fs::read_to_string(&f.identity).unwrap();
    let key_prefix = "AGE-SECRET-KEY-";
    assert!(identity.contains(key_prefix));

    let hunt = format!(
        r#"S={secret}; H={marker}; K={key}
{{
  echo "== env"; env
  echo "== environ"; for p in /proc/[0-9]*/environ; do echo "-- $p"; tr '\0' '\n' < "$p"; echo; done
  echo "== cmdline"; for p in /proc/[0-9]*/cmdline; do echo "-- $p"; tr '\0' ' ' < "$p"; echo; done
  echo "== history"; for p in ~/.ash_history ~/.bash_history ~/.sh_history ~/.profile /root/.ash_history /root/.bash_history; do echo "-- $p"; cat "$p"; done
  echo "== run"; for d in /run /var/run; do ls -laR "$d"; find "$d" -type f -exec cat {{}} +; done
  echo "== scratch"; ls -laR /tmp /dev/shm /dev/mqueue /home
}} > /workspace/dump.txt 2>&1
{{
  for s in /var/run/docker.sock /run/docker.sock; do if [ -e "$s" ]; then echo "PRESENT $s"; else echo "absent $s"; fi; done
  echo "sockets:$(find / \( -path /proc -o -path /sys \) -prune -o -type s -print 2>/dev/null | tr '\n' ' ')"
  echo "hostname:$(hostname)"
}} > /workspace/answers.txt
cat /proc/self/mountinfo > /workspace/mountinfo.txt
# Search every file the agent can read (not /proc, /sys, /dev's devices). A planted control
# holding all three values proves the search finds what is there.
mkdir /tmp/control && printf '%s\n' "$S" "$H" "$K" > /tmp/control/planted
search() {{ for d in /* /.[!.]* /dev/shm /dev/mqueue; do case "$d" in /proc|/sys|/dev) ;; *) grep -rslF -e "$1" "$d" ;; esac; done | sort | tr '\n' ' '; }}
{{ echo "secret:$(search "$S")"; echo "host:$(search "$H")"; echo "identity:$(search "$K")"; }} > /workspace/hits.txt
rm -r /tmp/control
cat /workspace/answers.txt /workspace/hits.txt"#,
        secret = halves(SECRET),
        marker = halves(&marker),
        key = halves(key_prefix),
    );
    let out = f
        .run_with("t", &["--apply"], &["sh", "-c", &hunt])
        .run()
        .success()
        .stderr_has("setup | setup left the token outside what crosses");
    assert_no_secret_anywhere(&f, &out);
    let patch = f.record_file("changes.patch");
    for name in ["dump.txt", "answers.txt", "mountinfo.txt", "hits.txt"] {
        assert!(
            contains(&patch, format!("b/{name}").as_bytes()),
            "{name} is not in the patch"
        );
    }

    // The search worked (it found the control) and found nothing else.
    let hits = ws_text(&f, "hits.txt");
    for what in ["secret", "host", "identity"] {
        assert!(
            hits.contains(&format!("{what}:/tmp/control/planted \n")),
            "{what}: the search found more (or less) than the control:\n{hits}"
        );
    }
    let dump = std::fs::read(f.ws.join("dump.txt")).unwrap();
    assert!(
        contains(&dump, b"== environ") && contains(&dump, b"/proc/1/environ"),
        "the dump ran"
    );
    for (what, value) in [
        ("secret", SECRET),
        ("host marker", marker.as_str()),
        ("age identity", key_prefix),
    ] {
        assert!(
            !contains(&dump, value.as_bytes()),
            "the agent phase found the {what}"
        );
        assert!(
            !contains(&patch, value.as_bytes()),
            "the patch holds the {what}"
        );
    }

    // No engine socket, nor any socket at all.
    let answers = ws_text(&f, "answers.txt");
    assert!(
        answers.contains("absent /var/run/docker.sock")
            && answers.contains("absent /run/docker.sock"),
        "{answers}"
    );
    assert!(answers.contains("sockets:\n"), "{answers}");
    // Its own hostname, not the host's.
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let agent_name = answers
        .lines()
        .find_map(|l| l.strip_prefix("hostname:"))
        .unwrap();
    assert!(
        !agent_name.is_empty() && agent_name != host_name.trim(),
        "{answers}"
    );
    // Mounts: only what a container always has, plus the workspace; no host folder of the
    // user's, no engine socket.
    let mountinfo = ws_text(&f, "mountinfo.txt");
    let allowed = [
        "/",
        "/workspace",
        "/tmp",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/sbin/docker-init",
    ];
    for line in mountinfo.lines() {
        let point = line.split(' ').nth(4).unwrap_or("");
        let system = ["/proc", "/sys", "/dev"]
            .iter()
            .any(|p| point == *p || point.starts_with(&format!("{p}/")));
        assert!(
            system || allowed.contains(&point),
            "unexpected mount {point}: {line}"
        );
        for host in [f.ws.to_str().unwrap(), f.root.path().to_str().unwrap()] {
            assert!(!line.contains(host), "a host path is mounted: {line}");
        }
        for word in ["docker.sock", "containerd"] {
            assert!(!line.contains(word), "{word} is mounted: {line}");
        }
    }
    assert_run_gone(f.report()["run_id"].as_str().unwrap());
}

/// Removes, on drop, every image built from the named image folder.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let filter = format!("label=airlock.image.name={}", self.0);
        if let Ok(out) = std::process::Command::new("docker")
            .args(["images", "-q", "--no-trunc", "--filter", &filter])
            .output()
        {
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            for id in ids.lines().collect::<std::collections::BTreeSet<_>>() {
                let _ = std::process::Command::new("docker")
                    .args(["rmi", "-f", id])
                    .output();
            }
        }
    }
}

#[test]
fn the_agent_cannot_gain_privileges_or_write_outside_the_workspace() {
    let f = Fixture::new();
    // An image holding a setuid-root busybox that keeps root for `id`, `cat` and `mount`
    // (busybox.conf), and a file only root can read.
    let image = format!("t{}-suid", std::process::id());
    let _guard = ImageGuard(image.clone());
    let images = f.root.path().join("images");
    std::fs::remove_file(&images).unwrap();
    f.root.write(
        &format!("images/{image}/Dockerfile"),
        "FROM airlock/busybox\n\
         RUN mkdir -p /opt/suid && cp /bin/busybox /opt/suid/busybox && chmod 4755 /opt/suid/busybox \\\n\
          && printf '[SUID]\\nid = ssx root.root\\ncat = ssx root.root\\nmount = ssx root.root\\n' > /etc/busybox.conf \\\n\
          && chmod 600 /etc/busybox.conf && echo root-only-data > /root/only-root && chmod 600 /root/only-root\n",
    );
    // The control: where privileges may be gained (setup is not locked down), the binary
    // does give an unprivileged user root.
    hostile_env(
        &f,
        &image,
        "echo \"control: $(su -s /bin/sh agent -c '/opt/suid/busybox id')\"\n\
         su -s /bin/sh agent -c '/opt/suid/busybox cat /root/only-root'",
    );
    // A repository workspace: its .git is mounted read-only in the agent phase.
    f.ws_file(".git/config", "[core]\n");
    f.ws_file(".git/HEAD", "ref: refs/heads/main\n");
    let mark = unique("agent-was-here");
    let probes = format!(
        r#"B=/opt/suid/busybox; M={mark}
{{
  echo "uid:$(id -u)"
  echo "suid-id:$($B id)"
  $B cat /root/only-root || echo "suid-cat:denied"
  grep -E '^(NoNewPrivs|Cap[A-Za-z]+):' /proc/self/status
  if mount -t tmpfs none /home/agent; then echo MOUNTED; else echo "mount:denied"; fi
  if $B mount -t tmpfs none /home/agent; then echo SUID-MOUNTED; else echo "suid-mount:denied"; fi
  if unshare -r -m sh -c 'mount -t tmpfs none /home/agent'; then echo USERNS-MOUNTED; else echo "unshare:denied"; fi
  if chroot / true; then echo CHROOTED; else echo "chroot:denied"; fi
  if nsenter -t 1 -m true; then echo NSENTERED; else echo "nsenter:denied"; fi
  for d in / /etc /usr /bin /sbin /var /opt/suid /root /home; do
    if touch "$d/$M" 2>/dev/null; then echo "WROTE $d"; else echo "write $d:denied"; fi
  done
  if echo x >> /etc/passwd; then echo PASSWD-WRITTEN; fi
  touch "/tmp/$M" "/home/agent/$M" "/dev/shm/$M" && echo "scratch:written"
  if mv .git moved-git; then echo GIT-MOVED; else echo "git-move:denied"; fi
  if ln -s /tmp .git/hooks; then echo GIT-HOOKS-LINKED; else echo "git-hooks:denied"; fi
}} > /workspace/probes.txt 2>&1
cat /workspace/probes.txt"#
    );
    let out = f
        .run_with("t", &["--apply"], &["sh", "-c", &probes])
        .run()
        .success()
        .stderr_has("setup | control: uid=1000(agent) gid=1000(agent) euid=0(root)")
        .stderr_has("setup | root-only-data");
    assert_no_secret_anywhere(&f, &out);
    let p = ws_text(&f, "probes.txt");
    for line in [
        "uid:1000",
        "suid-id:uid=1000(agent) gid=1000(agent) groups=1000(agent)",
        "suid-cat:denied",
        "NoNewPrivs:\t1",
        "mount:denied",
        "suid-mount:denied",
        "unshare:denied",
        "chroot:denied",
        "nsenter:denied",
        "scratch:written",
        "git-move:denied",
        "git-hooks:denied",
    ] {
        assert!(p.lines().any(|l| l == line), "no line {line:?} in:\n{p}");
    }
    for d in [
        "/",
        "/etc",
        "/usr",
        "/bin",
        "/sbin",
        "/var",
        "/opt/suid",
        "/root",
        "/home",
    ] {
        assert!(
            p.lines().any(|l| l == format!("write {d}:denied")),
            "{d}:\n{p}"
        );
    }
    let caps: Vec<&str> = p.lines().filter(|l| l.starts_with("Cap")).collect();
    assert_eq!(caps.len(), 5, "{p}");
    for cap in caps {
        assert!(cap.ends_with("\t0000000000000000"), "a capability: {cap}");
    }
    for bad in [
        "euid=0",
        "root-only-data",
        "MOUNTED",
        "CHROOTED",
        "NSENTERED",
        "WROTE",
        "PASSWD-WRITTEN",
        "GIT-",
    ] {
        assert!(!p.contains(bad), "{bad}:\n{p}");
    }
    // What it wrote outside the workspace stayed in its container: not on the host.
    for place in ["/tmp", "/dev/shm", "/", "/etc"] {
        assert!(
            !Path::new(place).join(&mark).exists(),
            "{place}/{mark} reached the host"
        );
    }
    assert_eq!(ws_text(&f, ".git/config"), "[core]\n");
    assert!(!f.ws.join("moved-git").exists() && !f.ws.join(".git/hooks").exists());
    let r = f.report();
    assert_eq!(r["patch"]["files_changed"], 1, "{r:#}");
    assert_run_gone(r["run_id"].as_str().unwrap());
}

#[test]
fn agent_output_never_drives_the_terminal_and_the_log_keeps_it_exactly() {
    let f = Fixture::new();
    hostile_env(
        &f,
        "tiny",
        "printf 'setup \\033]0;setup-title\\007\\033[2J cleared\\n'",
    );
    // OSC title change + bell, clear screen, colour, carriage return over the prefix, the C1
    // CSI (U+009B), a bidi override, invalid UTF-8, and a last line with no newline.
    let noise = r#"printf '\033]0;pwned\007\033[2J\033[31mred\rover\n'
printf 'c1 \302\233 31m csi\n'
printf 'bidi \342\200\256 txt.exe\n' >&2
printf 'bad \377\376 utf8\n'
printf 'no newline \033[0m'"#;
    let out = f
        .run_with("t", &["--json"], &["sh", "-c", noise])
        .run()
        .success();
    assert_no_secret_anywhere(&f, &out);
    // Nothing that steers a terminal reaches airlock's stdout or stderr raw.
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for (what, seq) in [
            ("ESC", &b"\x1b"[..]),
            ("BEL", b"\x07"),
            ("CR", b"\r"),
            ("C1 CSI", b"\xc2\x9b"),
            ("raw 0x9b", b"\x9b"),
            ("bidi override", "\u{202e}".as_bytes()),
            ("invalid UTF-8", b"\xff"),
        ] {
            assert!(
                !contains(bytes, seq),
                "{what} reached airlock's {stream}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    // It is shown, made visible.
    let out = out
        .stderr_has("agent | \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{1b}[31mred\\rover")
        .stderr_has("agent | c1 \\u{9b} 31m csi")
        // (stderr's order against stdout is the engine's: no line prefix asserted here)
        .stderr_has("bidi \\u{202e} txt.exe")
        .stderr_has("agent | bad \\xff\\xfe utf8")
        .stderr_has("agent | no newline \\u{1b}[0m")
        .stderr_has("setup | setup \\u{1b}]0;setup-title\\u{7}");
    // --json's report on stdout is still valid JSON.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["outcome"], "succeeded");
    // The logs keep every byte as it was.
    let log = f.record_file("agent.log");
    for raw in [
        &b"\x1b]0;pwned\x07\x1b[2J\x1b[31mred\rover\n"[..],
        b"c1 \xc2\x9b 31m csi\n",
        "bidi \u{202e} txt.exe\n".as_bytes(),
        b"bad \xff\xfe utf8\n",
        b"no newline \x1b[0m",
    ] {
        assert!(
            contains(&log, raw),
            "agent.log lost {:?}: {:?}",
            String::from_utf8_lossy(raw),
            String::from_utf8_lossy(&log)
        );
    }
    assert!(contains(
        &f.record_file("setup.log"),
        b"setup \x1b]0;setup-title\x07\x1b[2J cleared\n"
    ));
    assert_run_gone(report["run_id"].as_str().unwrap());
}

/// `airlock ARGS` on a pseudo-terminal, as a person would run it: `input` is typed once the
/// output shows `ready`; returns the exit code and everything the terminal received.
fn on_a_terminal(args: &[&str], ready: &str, input: &[u8]) -> (i32, Vec<u8>) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut cmd = crate::harness::Test::new().args(args).command();
    for (i, stdio) in [0, 1, 2]
        .map(|_| pty.slave.try_clone().unwrap())
        .into_iter()
        .enumerate()
    {
        let stdio = std::process::Stdio::from(stdio);
        match i {
            0 => cmd.stdin(stdio),
            1 => cmd.stdout(stdio),
            _ => cmd.stderr(stdio),
        };
    }
    let mut child = cmd.spawn().expect("spawn airlock");
    // Only the child may hold the terminal's other end, or reading never sees its end.
    drop(cmd);
    drop(pty.slave);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut master = std::fs::File::from(pty.master);
    let mut typing = master.try_clone().unwrap();
    let (done, read_all) = std::sync::mpsc::channel();
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the last holder of the terminal's other end is gone.
            while let Ok(n @ 1..) = master.read(&mut buf) {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = done.send(());
        });
    }
    let start = Instant::now();
    let mut typed = false;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if !typed && contains(&seen.lock().unwrap(), ready.as_bytes()) {
            typing.write_all(input).unwrap();
            typed = true;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!(
                "airlock {args:?} on a terminal did not end:\n{}",
                String::from_utf8_lossy(&seen.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    read_all
        .recv_timeout(Duration::from_secs(10))
        .expect("the terminal's output never ended");
    let seen = seen.lock().unwrap().clone();
    (code, seen)
}

#[test]
fn a_shell_in_a_kept_run_reads_none_of_the_agents_startup_files_and_filters_its_output() {
    crate::harness::base_image();
    let f = Fixture::new();
    hostile_env(&f, "base", "echo setup done");
    // The agent leaves startup files that would print a marker and set the user's clipboard
    // (OSC 52) the moment the shell starts, and a file that does the same when shown.
    let agent = r#"cat > "$HOME/.bashrc" <<'RC'
echo RC-MARK""ER
printf '\033]52;c;cHduZWQ=\007'
RC
cp "$HOME/.bashrc" "$HOME/.profile"
cp "$HOME/.bashrc" "$HOME/.bash_profile"
printf 'echo %s-%s\n' HISTORY MARKER > "$HOME/.bash_history"
echo 'set bell-style visible' > "$HOME/.inputrc"
printf '\033]52;c;%s\007' "$(printf pwned | base64)" > clipboard.txt
printf '\033]0;title\007\033[6n\033P$q"p\033\\ colour \033[31mred\033[0m\n' >> clipboard.txt"#;
    f.run_with("t", &["--keep"], &["bash", "-c", agent])
        .run()
        .success();
    let run_id = f.report()["run_id"].as_str().unwrap().to_string();
    let typed = b"grep -c RC-MARK ~/.bashrc ~/.profile && echo RC-PRESENT-$((40+2))\n\
        grep -c HISTORY ~/.bash_history; grep -c bell ~/.inputrc; history; bind -v | grep bell-style\n\
        cat /workspace/clipboard.txt\n\
        echo \"vars $INPUTRC $HISTFILE ${BASH_ENV-none} $((6*7))\"\n\
        exit 5\n";
    let (code, seen) = on_a_terminal(&["shell", &run_id], "(airlock shell)", typed);
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(code, 5, "{text}");
    // The shell ran what was typed, in the agent's home, where the startup files are.
    assert!(text.contains("RC-PRESENT-42"), "{text}");
    assert!(text.contains("vars /dev/null /dev/null none 42"), "{text}");
    // None of them was read: no marker, no history, readline's own setting.
    for marker in ["RC-MARKER", "HISTORY-MARKER", "bell-style visible"] {
        assert!(!text.contains(marker), "{marker} ran:\n{text}");
    }
    assert!(text.contains("bell-style audible"), "{text}");
    // The clipboard write, the title, the status request and the DCS never reach the
    // terminal as sequences: they are shown, escaped. Colours still pass.
    for raw in [&b"\x1b]52"[..], b"\x1b]0;", b"\x1b[6n", b"\x1bP"] {
        assert!(
            !contains(&seen, raw),
            "{:?} reached the terminal:\n{text}",
            raw
        );
    }
    assert!(text.contains("\\u{1b}]52;c;cHduZWQ="), "{text}");
    assert!(contains(&seen, b"colour \x1b[31mred\x1b[0m"), "{text}");
    crate::harness::Test::new()
        .args(["gc", "--kept", &run_id])
        .run()
        .success();
    assert_run_gone(&run_id);
}

#[test]
fn hostile_names_and_links_cross_as_data_and_apply_only_inside_the_workspace() {
    let f = Fixture::new();
    hostile_env(&f, "tiny", "echo setup done");
    f.ws_file("a.txt", "original a\n");
    f.ws_file("b.txt", "original b\n");
    // A folder beside the workspace on the host, which links will point into.
    f.root
        .write("outside/private.txt", "outside-private-data\n");
    let long = "L".repeat(255);
    let long_dir = "D".repeat(255);
    let attack = format!(
        r#"printf 'newline\n' > "$(printf 'new\nline')"
printf 'latin1\n' > "$(printf 'caf\351')"
printf 'escape\n' > "$(printf 'e\033]0;pwned\007x')"
printf 'long\n' > {long}
mkdir {long_dir} && printf 'deep\n' > {long_dir}/{long}
ln -s /etc/shadow shadow
ln -s ../outside/private.txt up
ln -s ../outside up-dir
ln -f a.txt b.txt
ln a.txt c.txt
mkdir linked && ln a.txt linked/a-again
ls -la"#
    );
    let out = f
        .run_with("t", &["--apply"], &["sh", "-c", &attack])
        .run()
        .success();
    assert_no_secret_anywhere(&f, &out);
    assert!(
        !contains(&out.stderr, b"\x1b"),
        "a file name reached the terminal raw"
    );
    let r = f.report();
    assert_eq!(r["patch"]["applied"], true, "{r:#}");
    let patch = f.record_file("changes.patch");

    // Every name crossed, byte for byte, quoted in the patch as git does.
    let host_bytes = |name: &[u8]| std::fs::read(f.ws.join(OsStr::from_bytes(name)));
    for (name, quoted, content) in [
        (
            &b"new\nline"[..],
            &br#""b/new\nline""#[..],
            &b"newline\n"[..],
        ),
        (b"caf\xe9", br#""b/caf\351""#, b"latin1\n"),
        (
            b"e\x1b]0;pwned\x07x",
            br#""b/e\033]0;pwned\ax""#,
            b"escape\n",
        ),
        (long.as_bytes(), format!("b/{long}").as_bytes(), b"long\n"),
    ] {
        assert!(
            contains(&patch, quoted),
            "{:?} is not in the patch",
            String::from_utf8_lossy(quoted)
        );
        assert_eq!(
            host_bytes(name).ok().as_deref(),
            Some(content),
            "{:?} was not applied",
            String::from_utf8_lossy(name)
        );
    }
    assert_eq!(
        std::fs::read_to_string(f.ws.join(format!("{long_dir}/{long}"))).unwrap(),
        "deep\n"
    );
    assert!(
        !contains(&patch, b"\x1b"),
        "a raw ESC in the patch (names must be quoted)"
    );

    // Symlinks cross as links (mode 120000), whatever they point at, and are never followed:
    // neither the host's /etc/shadow nor the file outside the workspace is read or written.
    for (link, target) in [
        ("shadow", "/etc/shadow"),
        ("up", "../outside/private.txt"),
        ("up-dir", "../outside"),
    ] {
        let header = format!("diff --git a/{link} b/{link}\nnew file mode 120000\n");
        assert!(
            contains(&patch, header.as_bytes()),
            "{link} is not a new link in the patch"
        );
        let meta = std::fs::symlink_metadata(f.ws.join(link)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{link} was applied as a file"
        );
        assert_eq!(
            std::fs::read_link(f.ws.join(link)).unwrap(),
            Path::new(target)
        );
    }
    if let Ok(shadow) = std::fs::read("/etc/shadow") {
        let first = shadow.split(|&b| b == b'\n').next().unwrap_or_default();
        assert!(
            first.is_empty() || !contains(&patch, first),
            "the patch holds the host's /etc/shadow"
        );
    }
    assert!(!contains(&patch, b"outside-private-data"));
    assert_eq!(f.root.read("outside/private.txt"), "outside-private-data\n");
    assert_eq!(
        std::fs::read_dir(f.root.path().join("outside"))
            .unwrap()
            .count(),
        1
    );

    // Hard links cross as the content they share: an edit, new files, a file in a new folder.
    for name in ["a.txt", "b.txt", "c.txt", "linked/a-again"] {
        assert_eq!(ws_text(&f, name), "original a\n", "{name}");
    }
    assert_run_gone(r["run_id"].as_str().unwrap());
}

#[test]
fn a_git_folder_or_run_record_the_agent_makes_never_reaches_the_host() {
    let f = Fixture::new();
    hostile_env(&f, "tiny", "echo setup done");
    f.ws_file("a.txt", "a\n");
    // The host workspace is no repository, so `.git` is the agent's to create: a config that
    // would run a command on the host's next `git status`, hooks, nested repositories, and a
    // `.git` file pointing elsewhere.
    let attack = r#"mkdir -p .git/hooks sub/.git/hooks sub2 deep/er/.git
printf '[core]\n\tfsmonitor = touch /tmp/airlock-pwned\n\thooksPath = /tmp\n' > .git/config
printf '#!/bin/sh\ntouch /tmp/airlock-pwned\n' > .git/hooks/post-checkout
echo 'ref: refs/heads/main' > .git/HEAD
cp .git/config sub/.git/config
cp .git/hooks/post-checkout sub/.git/hooks/post-checkout
echo 'gitdir: /tmp/elsewhere' > sub2/.git
cp .git/config deep/er/.git/config
mkdir -p .airlock/runs/forged && echo '{"outcome":"succeeded"}' > .airlock/runs/forged/report.json
echo changed > a.txt"#;
    let out = f
        .run_with("t", &["--apply"], &["sh", "-c", attack])
        .run()
        .success();
    assert_no_secret_anywhere(&f, &out);
    let patch = String::from_utf8(f.record_file("changes.patch")).unwrap();
    assert!(patch.contains("b/a.txt"), "{patch}");
    assert!(
        !patch.contains(".git"),
        "the patch names a .git path:\n{patch}"
    );
    assert!(
        !patch.contains(".airlock"),
        "the patch forges a run record:\n{patch}"
    );
    assert!(!f.ws.join(".airlock").exists());
    assert_eq!(ws_text(&f, "a.txt"), "changed\n");
    for git in [".git", "sub/.git", "sub2/.git", "deep/er/.git"] {
        assert!(
            std::fs::symlink_metadata(f.ws.join(git)).is_err(),
            "{git} reached the host workspace"
        );
    }
    let r = f.report();
    assert_eq!(r["patch"]["files_changed"], 1, "{r:#}");
    assert_run_gone(r["run_id"].as_str().unwrap());
}

#[test]
fn the_patch_shows_the_agents_bytes_whatever_its_gitattributes_say() {
    let f = Fixture::new();
    hostile_env(&f, "tiny", "echo setup done");
    f.ws_file("a.txt", "original\n");
    // Attributes that would make git rewrite what it stages (line endings, `$Id$`) or show
    // every change as an unreadable binary blob.
    let attack = r#"printf '* text eol=lf -diff\n*.id ident\n*.bin binary\n' > .gitattributes
printf 'one\r\ntwo\r\n' > a.txt
printf '$Id: forged $\n' > x.id
printf 'plain text\n' > y.bin"#;
    let out = f
        .run_with("t", &["--apply"], &["sh", "-c", attack])
        .run()
        .success();
    assert_no_secret_anywhere(&f, &out);
    let patch = f.record_file("changes.patch");
    for line in [
        &b"+one\r\n+two\r\n"[..],
        b"+$Id: forged $\n",
        b"+plain text\n",
    ] {
        assert!(
            contains(&patch, line),
            "the patch lacks {:?}:\n{}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&patch)
        );
    }
    assert!(!contains(&patch, b"GIT binary patch"));
    assert_eq!(
        std::fs::read(f.ws.join("a.txt")).unwrap(),
        b"one\r\ntwo\r\n"
    );
    assert_eq!(ws_text(&f, "x.id"), "$Id: forged $\n");
    assert_run_gone(f.report()["run_id"].as_str().unwrap());
}
