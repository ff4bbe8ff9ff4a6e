//! Step 1: everything that can fail on bad input, checked before any container exists.
//!
//! The workspace must exist; the environment's secrets are decrypted (and held in zeroizing
//! memory) and compiled into the run's leak check; no plain variable and no setup script may
//! hold a secret's value; the CA files the environment trusts are read; the engine must
//! answer; the image is made ready (built from its folder when it changed). A failure here
//! costs nothing to clean up.

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::ExposeSecret;

use super::outcome::RunError;
use super::{Options, Task};
use crate::cleanup;
use crate::environment::{CaSource, NetworkPolicy};
use crate::images::{self, EnsureOptions, ProgressMode};
use crate::root::ConfigRoot;
use crate::scan::SecretSet;
use crate::secrets::{self, SecretValue};
use crate::trusted::Trusted;

/// What a run needs before any container exists.
pub struct Ready {
    pub image: images::ReadyImage,
    pub secrets: Vec<(String, SecretValue)>,
    pub scanner: Arc<SecretSet>,
    /// CA certificates to trust in the setup phase: `(file name, PEM)`.
    pub ca: Vec<(String, Vec<u8>)>,
    /// This process, as the `airlock.owner` label names it (for `gc`'s liveness check).
    pub owner: String,
    /// What a later setup phase trusts: read-only to the agent, held back from the patch.
    pub trusted: Trusted,
    /// The setup cache's key and entry, when the environment has a cache.
    pub cache: Option<crate::cache::Lookup>,
}

pub async fn prepare(root: &ConfigRoot, task: &Task, opts: &Options) -> Result<Ready, RunError> {
    let env = &task.env;
    if !task.workspace.exists() {
        return Err(RunError::Config(format!(
            "workspace {} does not exist\n  fix: pass -w DIR with an existing folder",
            task.workspace.display()
        )));
    }
    if !task.workspace.is_dir() {
        return Err(RunError::Config(format!(
            "workspace {} is not a folder\n  fix: pass -w DIR with an existing folder",
            task.workspace.display()
        )));
    }
    let config = |e: &dyn std::fmt::Display| RunError::Config(e.to_string());
    let trusted = Trusted::for_run(&task.workspace, root.dir(), &opts.apply_trusted)
        .map_err(|e| config(&e))?;
    let secrets = if env.secrets.is_empty() {
        Vec::new()
    } else {
        let ids = secrets::find_identities(opts.identity.as_deref()).map_err(|e| config(&e))?;
        secrets::Store::open(&root.secrets_dir())
            .decrypt_all(&env.secrets, &ids)
            .map_err(|e| config(&e))?
    };
    for (name, value) in &secrets {
        if value.expose_secret().contains(&0) {
            return Err(RunError::Config(format!("secret {name} contains a NUL byte, so it can't be an environment variable of the setup script\n  fix: store it base64-encoded and decode it in the setup script")));
        }
    }
    let pairs: Vec<(&str, &[u8])> = secrets
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose_secret()))
        .collect();
    let scanner = Arc::new(SecretSet::new(&pairs));
    for (k, v) in &env.env {
        if let Some(hit) = scanner.scan_bytes(v.as_bytes()) {
            return Err(RunError::Config(format!(
                "{}: env.{k} holds the value of secret {} ({} form); plain variables are visible to the agent phase and in `docker inspect`\n  fix: remove it from env:",
                env.path.display(),
                hit.secret,
                hit.form
            )));
        }
    }
    for (which, script) in [("setup", &env.setup), ("maintenance", &env.maintenance)] {
        let Some(script) = script else { continue };
        if let Some(hit) = scanner.scan_bytes(script.as_bytes()) {
            return Err(RunError::Config(format!(
                "{}: the {which} script contains the value of secret {}\n  fix: refer to it as ${}",
                env.path.display(),
                hit.secret,
                hit.secret
            )));
        }
    }
    let ca = read_ca(&env.ca_certificates)?;
    let engine = &*opts.engine;
    engine.ping().await?;
    let events = opts.events.clone();
    let progress = ProgressMode::Sink(Arc::new(move |line: &str| {
        events.event(&super::events::Event::Image { line })
    }));
    let ensure = EnsureOptions {
        progress,
        ..EnsureOptions::default()
    };
    let proxy = async {
        match env.agent.network {
            NetworkPolicy::Allowlist(_) => {
                crate::proxy::image::ensure_image(engine).await.map(Some)
            }
            NetworkPolicy::Off => Ok(None),
        }
    };
    let (image, sweep, proxy) = tokio::join!(
        images::ensure_with(engine, root, &env.image, ensure),
        crate::boundary::sweep::ensure_image(engine),
        proxy
    );
    let image = image.map_err(RunError::Image)?.image;
    sweep?;
    proxy?;
    let cache = crate::cache::look_up(root, task, opts, &image.id, &ca, &secrets).await?;
    Ok(Ready {
        image,
        secrets,
        scanner,
        ca,
        owner: cleanup::owner_id(),
        trusted,
        cache,
    })
}

pub(crate) fn read_ca(sources: &[CaSource]) -> Result<Vec<(String, Vec<u8>)>, RunError> {
    let mut ca = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let path = match source {
            CaSource::Host => host_ca_bundle().ok_or_else(|| RunError::Config("ca_certificates: host: no system CA bundle found on this host (looked for /etc/ssl/certs/ca-certificates.crt and /etc/pki/tls/certs/ca-bundle.crt)".into()))?,
            CaSource::File(p) => p.clone(),
        };
        let pem = std::fs::read(&path).map_err(|e| {
            RunError::Config(format!(
                "ca_certificates: cannot read {}: {e}",
                path.display()
            ))
        })?;
        ca.push((format!("{i}.pem"), pem));
    }
    Ok(ca)
}

/// The host's system CA bundle (`ca_certificates: [host]`).
pub fn host_ca_bundle() -> Option<PathBuf> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}
