//! `airlock runs ls [--schedule NAME] [--json]`: the run records in `.airlock/runs/`.
use super::Globals;
use crate::root::ConfigRoot;

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// The runs on record, oldest first.
    Ls {
        /// Only the runs of this schedule (their records are labelled `schedule: NAME`).
        #[arg(long, value_name = "NAME")]
        schedule: Option<String>,
        /// Each run's report.json, as one JSON array.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(c: RunsCommand, g: &Globals) -> anyhow::Result<i32> {
    let root = ConfigRoot::locate(g.root.as_deref(), None)?;
    let RunsCommand::Ls { schedule, json } = c;
    let mut reports = Vec::new();
    if let Ok(dir) = std::fs::read_dir(root.runs_dir()) {
        for entry in dir.filter_map(Result::ok) {
            let Ok(bytes) = std::fs::read(entry.path().join("report.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if let Some(s) = &schedule {
                if v["labels"]["schedule"].as_str() != Some(s.as_str()) {
                    continue;
                }
            }
            reports.push(v);
        }
    }
    let key = |v: &serde_json::Value| {
        (
            v["started"].as_str().unwrap_or("").to_string(),
            v["run_id"].as_str().unwrap_or("").to_string(),
        )
    };
    reports.sort_by_key(key);
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(0);
    }
    println!(
        "{:<24} {:<16} {:>4}  {:<24}  {:<12} ENV",
        "RUN", "OUTCOME", "EXIT", "STARTED", "SCHEDULE"
    );
    for v in &reports {
        let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<24} {:<16} {:>4}  {:<24}  {:<12} {}",
            s("run_id"),
            s("outcome"),
            v["exit_code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            s("started"),
            v["labels"]["schedule"].as_str().unwrap_or("-"),
            v["environment"]["name"].as_str().unwrap_or("-"),
        );
    }
    Ok(0)
}
