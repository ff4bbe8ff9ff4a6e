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
    Ok(shell::open(&*engine, &args.run_id).await?)
}
