//! `airlock secrets ...`: manage the age-encrypted secrets in `secrets/`.
//!
//! Thin: each subcommand finds the store and the identity, calls [`crate::secrets`], and
//! prints the outcome. A value is only ever read from standard input or a file, never from
//! the command line (where it would land in shell history and `ps` output), and never
//! printed.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Globals;
use crate::root::ConfigRoot;
use crate::secrets::{self, find_identities, identity, Identities, SecretError, State, Store};

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Create your age identity (private key) and add its public key to secrets/recipients.txt.
    Init(IdentityArg),
    /// Set a secret. The value is read from standard input (or --from-file), never from the
    /// command line; one trailing newline is dropped unless --raw.
    Set(SetArgs),
    /// List secrets: name, size, last change, and whether your identity can decrypt each.
    /// Never values.
    List(IdentityArg),
    /// Remove a secret.
    Rm {
        /// The secret's name.
        name: String,
    },
    /// Manage the public keys every secret is encrypted to (secrets/recipients.txt).
    Recipients {
        #[command(subcommand)]
        command: RecipientsCommand,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Check that every secret decrypts with your identity and is encrypted to exactly the
    /// keys in recipients.txt. Exits 1 if anything is wrong.
    Check(IdentityArg),
}

#[derive(Debug, clap::Subcommand)]
pub enum RecipientsCommand {
    /// List the public keys in recipients.txt.
    List,
    /// Add a public key (age1…) and re-encrypt every secret to the new set.
    Add {
        /// The public key, as `airlock secrets init` or `age-keygen -y FILE` print it.
        key: String,
    },
    /// Remove a public key and re-encrypt every secret to the rest (then rotate the values:
    /// old versions in version control stay readable with the removed key).
    Rm {
        /// The public key to remove.
        key: String,
    },
    /// Re-encrypt every secret to exactly the keys now in recipients.txt (after editing it by
    /// hand, after a teammate's `init`, or to adopt files written with the age CLI).
    Sync,
}

#[derive(Debug, clap::Args)]
pub struct IdentityArg {
    /// Your age identity file [default: AIRLOCK_IDENTITY, else ~/.config/airlock/identity.txt]
    #[arg(long, global = true, value_name = "FILE")]
    identity: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The secret's name: [A-Z_][A-Z0-9_]* (it becomes an environment variable in the setup
    /// phase).
    name: String,
    /// Read the value from this file instead of standard input.
    #[arg(long, value_name = "PATH")]
    from_file: Option<PathBuf>,
    /// Keep the value's bytes exactly: do not drop one trailing newline.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    identity: IdentityArg,
    /// Anything after the name: refused without being echoed (it is probably a value).
    #[arg(hide = true, allow_hyphen_values = true)]
    stray: Vec<std::ffi::OsString>,
}

pub async fn run(cmd: SecretsCommand, g: &Globals) -> anyhow::Result<i32> {
    match cmd {
        SecretsCommand::Init(id) => init(g, id.identity.as_deref()),
        SecretsCommand::Set(args) => set(g, args),
        SecretsCommand::List(id) => list(g, id.identity.as_deref()),
        SecretsCommand::Rm { name } => {
            let path = store(g)?.remove(&name)?;
            println!("removed {name} ({})", path.display());
            println!(
                "note: earlier versions stay in version-control history, readable by whoever \
                 could read them then"
            );
            Ok(0)
        }
        SecretsCommand::Recipients { command, identity } => {
            recipients(g, command, identity.identity.as_deref())
        }
        SecretsCommand::Check(id) => check(g, id.identity.as_deref()),
    }
}

fn store(g: &Globals) -> anyhow::Result<Store> {
    let root = ConfigRoot::locate(g.root.as_deref(), None)?;
    Ok(Store::open(&root.secrets_dir()))
}

/// The identity, when the store has secrets that a change of recipients must re-encrypt.
fn identities_if_needed(store: &Store, flag: Option<&Path>) -> anyhow::Result<Option<Identities>> {
    if store.secret_names()?.is_empty() {
        Ok(None)
    } else {
        Ok(Some(find_identities(flag)?))
    }
}

fn init(g: &Globals, flag: Option<&Path>) -> anyhow::Result<i32> {
    let Some((path, _)) = identity::identity_path(flag) else {
        return Err(SecretError::NoIdentity {
            looked: "HOME is not set, so there is no default location".to_string(),
        })
        .context("pass --identity FILE to say where to create the identity");
    };
    // Find the store (and check its recipients file parses) before creating anything.
    let store = ConfigRoot::locate(g.root.as_deref(), None)
        .ok()
        .map(|root| Store::open(&root.secrets_dir()));
    if let Some(store) = &store {
        store.recipients()?;
    }
    let ids = identity::create_identity(&path)?;
    let public = ids.public_keys().join(", ");
    println!(
        "created identity {} (mode 0600; keep it private)",
        path.display()
    );
    println!("public key: {public}");
    let Some(store) = store else {
        println!(
            "no config root here (no envs/ folder); to use this identity with a store, run \
             `airlock secrets recipients add {public}` there"
        );
        return Ok(0);
    };
    store.add_recipient_only(&public)?;
    println!("added it to {}", store.recipients_path().display());
    let existing = store.secret_names()?;
    if !existing.is_empty() {
        println!(
            "{} existing secret(s) are not encrypted to this key yet: commit recipients.txt, \
             and ask a teammate who can decrypt them to run `airlock secrets recipients sync`",
            existing.len()
        );
    }
    Ok(0)
}

fn set(g: &Globals, args: SetArgs) -> anyhow::Result<i32> {
    if !args.stray.is_empty() {
        // Not echoed: it is most likely the value itself.
        return Err(super::Refused {
            outcome: crate::outcome::Outcome::ConfigError,
            message: format!(
                "`airlock secrets set {}` takes no value on the command line (it would be \
                 kept in shell history and shown to other users by `ps`); pipe it in, e.g. \
                 `airlock secrets set {} < FILE`, use --from-file PATH, or type it when \
                 prompted. If that was a real value, treat it as exposed and rotate it",
                args.name, args.name
            ),
        }
        .into());
    }
    secrets::validate_new_name(&args.name)?;
    let store = store(g)?;
    let mut value = match &args.from_file {
        Some(path) => secrets::input::read_file(&args.name, path)?,
        None => secrets::input::read_stdin(&args.name)?,
    };
    if !args.raw {
        secrets::strip_one_newline(&mut value);
    }
    let outcome = store.set(&args.name, &value)?;
    drop(value);
    println!(
        "{} {} ({}): encrypted to {} recipient(s)",
        if outcome.replaced { "replaced" } else { "set" },
        args.name,
        outcome.path.display(),
        outcome.recipients.len()
    );
    if let Ok(ids) = find_identities(args.identity.identity.as_deref()) {
        let ours = ids.public_keys();
        if !ours.iter().any(|k| outcome.recipients.contains(k)) {
            eprintln!(
                "warning: your key ({}) is not among the recipients: you cannot decrypt {}",
                ours.join(", "),
                args.name
            );
        }
    }
    Ok(0)
}

fn list(g: &Globals, flag: Option<&Path>) -> anyhow::Result<i32> {
    let store = store(g)?;
    if store.names()?.is_empty() {
        println!(
            "no secrets in {}; add one with `airlock secrets set NAME`",
            store.dir().display()
        );
        return Ok(0);
    }
    let ids = match find_identities(flag) {
        Ok(ids) => Some(ids),
        Err(e @ SecretError::NoIdentity { .. }) => {
            eprintln!("note: {e}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let entries = store.list(ids.as_ref())?;
    let rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| {
            let (size, state) = match &e.state {
                State::Readable { size } => (format!("{size} B"), "can decrypt".to_string()),
                State::Unreadable(err) => (
                    format!("{} B (file)", e.file_size),
                    format!("cannot decrypt: {}", short_reason(err)),
                ),
                State::Unknown => (
                    format!("{} B (file)", e.file_size),
                    "? (no identity)".into(),
                ),
            };
            let changed = e
                .modified
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|| "?".into());
            [e.name.clone(), size, changed, state]
        })
        .collect();
    let header = ["NAME", "SIZE", "CHANGED", "YOUR IDENTITY"].map(String::from);
    print_table(&header, &rows);
    if entries
        .iter()
        .any(|e| matches!(e.state, State::Unreadable(_)))
    {
        println!("(`airlock secrets check` explains each problem and how to fix it)");
    }
    Ok(0)
}

/// A few words for the list's last column (`check` gives the whole message).
fn short_reason(err: &SecretError) -> &'static str {
    match err {
        SecretError::WrongIdentity { .. } => "not encrypted to your key",
        SecretError::Passphrase { .. } => "passphrase-encrypted",
        SecretError::Corrupt { .. } => "damaged or not an age file",
        SecretError::InvalidName { .. } | SecretError::ReservedName { .. } => "invalid name",
        _ => "unreadable",
    }
}

fn print_table(header: &[String; 4], rows: &[[String; 4]]) {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        println!("{}", line.trim_end());
    }
}

fn recipients(g: &Globals, cmd: RecipientsCommand, flag: Option<&Path>) -> anyhow::Result<i32> {
    let store = store(g)?;
    match cmd {
        RecipientsCommand::List => {
            let keys = store.recipients()?.keys();
            if keys.is_empty() {
                println!(
                    "no recipients in {}; run `airlock secrets init`",
                    store.recipients_path().display()
                );
            }
            let ours = find_identities(flag)
                .map(|ids| ids.public_keys())
                .unwrap_or_default();
            for key in keys {
                let you = if ours.contains(&key) { "  (you)" } else { "" };
                println!("{key}{you}");
            }
        }
        RecipientsCommand::Add { key } => {
            let ids = identities_if_needed(&store, flag)?;
            match store.add_recipient(&key, ids.as_ref())? {
                None => println!(
                    "{} is already in {}; nothing changed (`airlock secrets recipients sync` \
                     re-encrypts every secret to the listed keys)",
                    key.trim(),
                    store.recipients_path().display()
                ),
                Some(done) => println!(
                    "added {} to {}; re-encrypted {} secret(s) to {} recipient(s)",
                    key.trim(),
                    store.recipients_path().display(),
                    done.secrets.len(),
                    done.recipients.len()
                ),
            }
        }
        RecipientsCommand::Rm { key } => {
            let ids = identities_if_needed(&store, flag)?;
            let done = store.remove_recipient(&key, ids.as_ref())?;
            println!(
                "removed {} from {}; re-encrypted {} secret(s) to {} recipient(s)",
                key.trim(),
                store.recipients_path().display(),
                done.secrets.len(),
                done.recipients.len()
            );
            if !done.secrets.is_empty() {
                println!(
                    "rotate these values now: whoever holds the removed key can still decrypt \
                     the old versions in version-control history: {}",
                    done.secrets.join(", ")
                );
            }
            if ids.is_some_and(|ids| ids.public_keys().contains(&key.trim().to_string())) {
                eprintln!(
                    "warning: that was your own key: you can no longer decrypt these secrets"
                );
            }
        }
        RecipientsCommand::Sync => {
            let ids = identities_if_needed(&store, flag)?;
            let done = store.sync(ids.as_ref())?;
            println!(
                "re-encrypted {} secret(s) to the {} recipient(s) in {}",
                done.secrets.len(),
                done.recipients.len(),
                store.recipients_path().display()
            );
        }
    }
    Ok(0)
}

fn check(g: &Globals, flag: Option<&Path>) -> anyhow::Result<i32> {
    let store = store(g)?;
    let ids = find_identities(flag)?;
    let report = store.check(&ids)?;
    println!(
        "{} recipient(s) in {}; your identity: {} ({})",
        report.recipients.len(),
        store.recipients_path().display(),
        ids.path.display(),
        ids.public_keys().join(", ")
    );
    for problem in &report.store {
        println!("PROBLEM  {problem}");
    }
    for item in &report.items {
        if item.problems.is_empty() {
            println!("ok       {}", item.name);
        }
        for problem in &item.problems {
            println!("PROBLEM  {}: {problem}", item.name);
        }
    }
    let count = report.store.len() + report.items.iter().map(|i| i.problems.len()).sum::<usize>();
    if report.is_ok() {
        println!("{} secret(s), all fine", report.items.len());
        Ok(0)
    } else {
        println!("{} secret(s), {count} problem(s)", report.items.len());
        Ok(1)
    }
}
