//! Loading whole files: defaults, every key, and that values are read as written.

use super::*;

fn load_text(text: &str) -> Result<Environment, EnvError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, text).unwrap();
    let root = ConfigRoot::at(dir.path()).unwrap();
    load_in(Some(&root), &path)
}

#[test]
fn only_image_gives_the_defaults() {
    let env = load_text("image: tiny\n").unwrap();
    assert_eq!(env.name, "t");
    assert_eq!(env.image, "tiny");
    assert_eq!(env.agent, AgentSettings::default());
    assert_eq!(env.agent.user, "1000:1000");
    assert_eq!(env.limits, Limits::default());
    assert!(env.env.is_empty() && env.secrets.is_empty() && env.persist.is_empty());
    assert_eq!(env.setup, None);
    assert_eq!(env.runtime, None);
    assert!(env.warnings.is_empty());
    assert_eq!(env.content_hash.len(), 64);
}

#[test]
fn values_are_read_as_written() {
    let env = load_text(
        "image: tiny\nenv:\n  VERSION: 1.10\n  ZIP: 01234\n  FLAG: true\n  HEX: 0x1F\n  \
         EMPTY:\n  QUOTED: \"null\"\n  SPACED: '  a  '\n  MULTI: |\n    one\n    two\n",
    )
    .unwrap();
    let get = |k: &str| env.env.get(k).map(String::as_str);
    assert_eq!(get("VERSION"), Some("1.10"));
    assert_eq!(get("ZIP"), Some("01234"));
    assert_eq!(get("FLAG"), Some("true"));
    assert_eq!(get("HEX"), Some("0x1F"));
    assert_eq!(get("EMPTY"), Some(""));
    assert_eq!(get("QUOTED"), Some("null"));
    assert_eq!(get("SPACED"), Some("  a  "));
    assert_eq!(get("MULTI"), Some("one\ntwo\n"));
}

#[test]
fn every_key_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("envs")).unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.path().join("certs/corp.pem"), pem).unwrap();
    let text = "image: base\nenv:\n  B: 2\n  A: x\nsecrets: [CRATES_TOKEN, NPM_TOKEN]\n\
                setup: |\n  cargo fetch\npersist:\n  - /opt/cargo/registry/\n  - /srv/cache\n\
                ca_certificates: [host, certs/corp.pem]\nruntime: runsc\n\
                agent:\n  network: off\n  user: app\n\
                limits:\n  setup_timeout: 5m\n  agent_timeout: 2h\n  memory: 512m\n  \
                cpus: 1.5\n  pids: 64\n  tmp_size: 1g\n";
    let path = dir.path().join("envs/full.yaml");
    std::fs::write(&path, text).unwrap();
    let root = ConfigRoot::at(dir.path()).unwrap();
    let env = load_in(Some(&root), &path).unwrap();
    let expected = Environment {
        name: "full".into(),
        path: path.clone(),
        content_hash: crate::hex::sha256(text.as_bytes()),
        image: "base".into(),
        env: [("A", "x"), ("B", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: vec!["CRATES_TOKEN".into(), "NPM_TOKEN".into()],
        setup: Some("cargo fetch\n".into()),
        persist: vec!["/opt/cargo/registry".into(), "/srv/cache".into()],
        ca_certificates: vec![
            CaSource::Host,
            CaSource::File(root.dir().join("certs/corp.pem")),
        ],
        agent: AgentSettings {
            network: NetworkPolicy::Off,
            user: "app".into(),
        },
        limits: Limits {
            setup_timeout: Duration::from_secs(300),
            agent_timeout: Duration::from_secs(7200),
            memory: Some(512 << 20),
            cpus: Some(1.5),
            pids: Some(64),
            tmp_size: 1 << 30,
            output_size: 256 << 20,
        },
        runtime: Some("runsc".into()),
        cache: None,
        maintenance: None,
        warnings: vec![],
    };
    assert_eq!(env, expected);
    // Without an explicit root, the root is the folder holding envs/ (relative CA paths
    // still resolve), unless AIRLOCK_ROOT points elsewhere.
    if std::env::var_os("AIRLOCK_ROOT").is_none() {
        let root = ConfigRoot::locate(None, Some(&path)).ok();
        assert_eq!(load_in(root.as_ref(), &path).unwrap(), expected);
    }
}

#[test]
fn unlimited_lifts_limits() {
    let env = load_text(
        "image: tiny\nlimits:\n  memory: unlimited\n  pids: Unlimited\n  cpus: unlimited\n",
    )
    .unwrap();
    assert_eq!(env.limits.memory, None);
    assert_eq!(env.limits.pids, None);
    assert_eq!(env.limits.cpus, None);
}

#[test]
fn empty_sections_are_defaults() {
    let env =
        load_text("image: tiny\nenv:\nsecrets:\npersist:\nagent:\nlimits:\nsetup: ''\n").unwrap();
    assert!(env.env.is_empty() && env.secrets.is_empty() && env.persist.is_empty());
    assert_eq!(env.agent, AgentSettings::default());
    assert_eq!(env.limits, Limits::default());
    assert_eq!(env.setup, None);
}

#[test]
fn errors_carry_file_line_column_and_key() {
    let err = load_text("image: tiny\npersist:\n  - /ok\n  - opt/cache\n").unwrap_err();
    assert_eq!(
        err.file.as_deref().map(|f| f.ends_with("t.yaml")),
        Some(true)
    );
    assert_eq!((err.line, err.column), (Some(4), Some(5)));
    assert_eq!(err.key.as_deref(), Some("persist[1]"));
    assert_eq!(err.message, "\"opt/cache\" is not an absolute path");
    assert_eq!(
        err.fix.as_deref(),
        Some("write it as an absolute path inside the container, e.g. /opt/cache")
    );
}

#[test]
fn resolve_names_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("envs")).unwrap();
    std::fs::write(dir.path().join("envs/base.yaml"), "image: base\n").unwrap();
    let root = ConfigRoot::at(dir.path()).unwrap();
    assert_eq!(
        resolve(Some(&root), "base").unwrap(),
        root.envs_dir().join("base.yaml")
    );
    let by_path = dir.path().join("envs/base.yaml");
    assert_eq!(resolve(None, by_path.to_str().unwrap()).unwrap(), by_path);
    for hostile in ["..", ".", "", "-rf", "a b", "x\\y", ".hidden"] {
        let err = resolve(Some(&root), hostile).unwrap_err();
        assert!(
            err.message.contains("not an environment name"),
            "{hostile:?}: {err}"
        );
    }
    assert!(resolve(None, "base")
        .unwrap_err()
        .message
        .contains("no config root"));
    let err = resolve(Some(&root), "bsae").unwrap_err();
    assert!(err.fix.as_deref().unwrap().contains("did you mean base?"));
    assert_eq!(
        list(&root).unwrap(),
        vec![root.envs_dir().join("base.yaml")]
    );
    // `base.yaml` is a path (relative to the current directory); the fix points at the name.
    let err = resolve(Some(&root), "base.yaml").unwrap_err();
    assert!(err.fix.as_deref().unwrap().contains("`base`"), "{err}");
}

mod properties {
    //! The loader against arbitrary input: it never panics, every refusal names the file (and
    //! a line inside it when it gives one), and any valid variable map survives the trip
    //! through YAML unchanged.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const VALID: &str = "image: tiny\nenv:\n  A: one\n  B: \"two\"\nsecrets: [TOKEN]\n\
                         setup: |\n  echo hi\npersist:\n  - /opt/x\nagent:\n  network: off\n  \
                         user: \"1000:1000\"\nlimits:\n  memory: 64m\n  pids: 10\n";

    fn check(text: &str) {
        match load_text(text) {
            Ok(env) => assert!(!env.image.is_empty()),
            Err(e) => {
                assert!(
                    e.file.as_deref().is_some_and(|f| f.ends_with("t.yaml")),
                    "{e}"
                );
                assert!(!e.message.is_empty());
                if let Some(line) = e.line {
                    assert!(
                        line >= 1 && line <= text.lines().count() + 1,
                        "line {line}: {e}"
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_gives_an_environment_or_an_error_naming_the_file(text in "\\PC{0,200}") {
            check(&text);
        }

        #[test]
        fn a_damaged_valid_file_never_panics(
            at in 0usize..VALID.len(),
            cut in any::<bool>(),
            byte in prop::sample::select(b": -\n\"'[]{}|>&*!%@`#\t".to_vec()),
        ) {
            let mut text = VALID.as_bytes().to_vec();
            if cut {
                text.truncate(at);
            } else {
                text[at] = byte;
            }
            check(&String::from_utf8_lossy(&text));
        }

        #[test]
        fn any_variable_map_is_read_back_as_written(
            vars in prop::collection::btree_map(
                "[A-Z_][A-Z0-9_]{0,12}",
                "(\\PC|\n|\t| ){0,40}",
                0..6,
            )
        ) {
            let vars: BTreeMap<String, String> =
                vars.into_iter().filter(|(k, _)| !k.starts_with("AIRLOCK_")).collect();
            let doc = serde_yaml::to_string(&serde_yaml::Value::Mapping(
                [
                    ("image".into(), "tiny".into()),
                    (
                        "env".into(),
                        serde_yaml::Value::Mapping(
                            vars.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect(),
                        ),
                    ),
                ]
                .into_iter()
                .collect(),
            ))
            .unwrap();
            let env = load_text(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
            prop_assert_eq!(env.env, vars);
        }
    }
}

#[test]
fn the_network_allowlist_is_read() {
    let env = load_text(
        "image: tiny\nagent:\n  network:\n    allow:\n      - Registry.Example.com\n      - \"*.example.org:443\"\n      - 10.0.0.5:8080\n      - {host: git.example.com, methods: [GET, POST]}\n      - host-registries\n    deny: [uploads.example.org]\n    methods: [GET, HEAD]\n    hosts: {git.example.com: 10.0.0.7}\n",
    )
    .unwrap();
    let NetworkPolicy::Allowlist(list) = env.agent.network else {
        panic!("not an allowlist: {:?}", env.agent.network)
    };
    let target = |s: &str| s.parse::<Target>().unwrap();
    let method = |s: &str| s.parse::<Method>().unwrap();
    assert_eq!(
        list.allow,
        vec![
            AllowEntry::Target {
                target: target("registry.example.com"),
                methods: None
            },
            AllowEntry::Target {
                target: target("*.example.org:443"),
                methods: None
            },
            AllowEntry::Target {
                target: target("10.0.0.5:8080"),
                methods: None
            },
            AllowEntry::Target {
                target: target("git.example.com"),
                methods: Some(vec![method("GET"), method("POST")])
            },
            AllowEntry::HostRegistries,
        ]
    );
    assert_eq!(list.deny, vec![target("uploads.example.org")]);
    assert_eq!(list.methods, Some(vec![method("GET"), method("HEAD")]));
    assert_eq!(
        list.hosts.get("git.example.com"),
        Some(&"10.0.0.7".parse().unwrap())
    );
    // No CAs named anywhere: the proxy trusts the host's bundle upstream.
    assert_eq!(list.ca_certificates, vec![CaSource::Host]);
}

#[test]
fn the_proxy_trusts_the_environments_cas_unless_the_network_names_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.path().join("corp.pem"), pem).unwrap();
    let load = |text: &str| {
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, text).unwrap();
        let root = ConfigRoot::at(dir.path()).unwrap();
        match load_in(Some(&root), &path).unwrap().agent.network {
            NetworkPolicy::Allowlist(list) => list.ca_certificates,
            NetworkPolicy::Off => panic!("off"),
        }
    };
    let corp = CaSource::File(dir.path().join("corp.pem"));
    // The environment's CAs, whether they come before or after `agent:`.
    assert_eq!(
        load("image: tiny\nagent:\n  network:\n    allow: [x.example.com]\nca_certificates: [corp.pem]\n"),
        vec![corp.clone()]
    );
    assert_eq!(
        load("image: tiny\nca_certificates: [corp.pem, host]\nagent:\n  network:\n    allow: [x.example.com]\n"),
        vec![corp.clone(), CaSource::Host]
    );
    assert_eq!(
        load("image: tiny\nca_certificates: [corp.pem]\nagent:\n  network:\n    allow: [x.example.com]\n    ca_certificates: [host]\n"),
        vec![CaSource::Host]
    );
}

#[test]
fn network_errors_point_at_the_entry() {
    let err = load_text(
        "image: tiny\nagent:\n  network:\n    allow:\n      - ok.example.com\n      - exa*mple.com\n",
    )
    .unwrap_err();
    assert_eq!((err.line, err.column), (Some(6), Some(9)));
    assert_eq!(err.key.as_deref(), Some("agent.network.allow[1]"));
    assert!(
        err.message.contains("not a valid wildcard"),
        "{}",
        err.message
    );
    let err = load_text(
        "image: tiny\nagent:\n  network:\n    allow: [x.example.com]\n    methods: [GET, get]\n",
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("agent.network.methods[1]"));
    assert_eq!(err.fix.as_deref(), Some("write GET"));
}

#[test]
fn plain_exports_in_setup_are_warned_about_with_their_line() {
    let w = super::plain_exports(
        "echo hi\n  export PATH=/opt/x/bin:$PATH\nexport A B\necho export X=1\nexport\n",
    );
    assert_eq!(
        w,
        [
            "setup script line 2: `export PATH` sets PATH for the rest of the setup script only; the agent phase is a fresh shell and won't see it\n  fix: if the agent phase needs it, also write `echo \"PATH=$PATH\" >> $AIRLOCK_ENV`",
            "setup script line 3: `export A` sets A for the rest of the setup script only; the agent phase is a fresh shell and won't see it\n  fix: if the agent phase needs it, also write `echo \"A=$A\" >> $AIRLOCK_ENV`",
        ]
    );
}

#[test]
fn the_cache_is_off_unless_its_key_is_there_and_checked_in_place() {
    assert_eq!(load_text("image: tiny\n").unwrap().cache, None);
    let env = load_text("image: tiny\ncache:\n").unwrap();
    assert_eq!(env.cache, Some(CacheSettings::default()));
    let env = load_text(
        "image: tiny\ncache:\n  ttl: 90m\n  max_size: 2g\n  key_files: [requirements.txt, app/Cargo.lock/]\nmaintenance: |\n  pip install -r requirements.txt\n",
    )
    .unwrap();
    let c = env.cache.unwrap();
    assert_eq!(c.ttl, Duration::from_secs(5400));
    assert_eq!(c.max_size, 2 << 30);
    assert_eq!(c.key_files, ["requirements.txt", "app/Cargo.lock"]);
    assert_eq!(
        env.maintenance.as_deref(),
        Some("pip install -r requirements.txt\n")
    );
    for (text, line, key, what) in [
        (
            "image: tiny\ncache:\n  ttl: 12\n",
            3,
            "cache.ttl",
            "no unit",
        ),
        (
            "image: tiny\ncache:\n  key_files: [a, ../x]\n",
            3,
            "cache.key_files[1]",
            "not a normalised path",
        ),
        (
            "image: tiny\ncache:\n  key_files: [/etc/x]\n",
            3,
            "cache.key_files[0]",
            "absolute",
        ),
        (
            "image: tiny\ncache:\n  key_files: [a, a]\n",
            3,
            "cache.key_files[1]",
            "listed twice",
        ),
        (
            "image: tiny\ncache:\n  tll: 1h\n",
            3,
            "cache.tll",
            "unknown key",
        ),
        ("image: tiny\nttl: 1h\n", 2, "ttl", "unknown key"),
    ] {
        let err = load_text(text).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.line, Some(line), "{shown}");
        assert!(shown.contains(&format!("{key}: ")), "{shown}");
        assert!(shown.contains(what), "{shown}");
        assert!(shown.contains("fix: "), "{shown}");
    }
    let env = load_text("image: tiny\nmaintenance: echo hi\n").unwrap();
    assert!(
        env.warnings[0].contains("no `cache:` key"),
        "{:?}",
        env.warnings
    );
}
