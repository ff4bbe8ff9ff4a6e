//! `airlock shell RUN-ID`
use super::Globals;
use crate::shell;

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// The id of a run made with `airlock run --keep`.
    pub run_id: String,
}

pub async fn run(args: ShellArgs, _g: &Globals) -> anyhow::Result<i32> {
    let engine = crate::engine::from_env()?;
    super::console::note(
        "shell: offline, no secrets; the agent's startup files (~/.bashrc, ~/.profile, \
         ~/.inputrc, its history) are not read, and terminal sequences that write the \
         clipboard or the title or type into the shell are shown escaped",
    );
    match shell::open(&*engine, &args.run_id).await {
        Ok(code) => Ok(code),
        Err(e @ shell::ShellError::NotKept(_)) => Err(super::Refused {
            outcome: crate::outcome::Outcome::ConfigError,
            message: e.to_string(),
        }
        .into()),
        Err(e) => Err(e.into()),
    }
}
