//! `airlock gc [--dry-run] [--kept] [RUN-ID...]`
use super::Globals;
use crate::cleanup;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove what `airlock run --keep` preserved.
    #[arg(long)]
    pub kept: bool,
    /// Only these runs (e.g. `airlock gc --kept RUN-ID` discards one kept run).
    #[arg(value_name = "RUN-ID")]
    pub runs: Vec<String>,
}

pub async fn run(args: GcArgs, g: &Globals) -> anyhow::Result<i32> {
    let engine = crate::engine::from_env()?;
    let report = cleanup::gc(&*engine, args.dry_run, args.kept, &args.runs).await?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for o in &report.removed {
        println!(
            "{verb} {} {} (run {})",
            o.kind,
            o.name,
            o.labels
                .get("airlock.run")
                .map(String::as_str)
                .unwrap_or("?")
        );
    }
    if !report.live.is_empty() {
        println!("left {} object(s) of live runs alone", report.live.len());
    }
    if !report.kept.is_empty() {
        println!(
            "left {} kept object(s) alone (airlock gc --kept removes them)",
            report.kept.len()
        );
    }
    // Records of the runs whose leftovers gc removed (their owner is dead: gc checked), that
    // never ended: `abandoned`, with when gc found them, instead of `incomplete` forever.
    if !args.dry_run {
        if let Ok(root) = crate::root::ConfigRoot::locate(g.root.as_deref(), None) {
            let mut runs: Vec<&str> = report
                .removed
                .iter()
                .filter_map(|o| o.labels.get("airlock.run").map(String::as_str))
                .collect();
            runs.sort();
            runs.dedup();
            let now = crate::record::timestamp(std::time::SystemTime::now());
            for id in runs {
                let why = format!("the process that ran it died before it ended; `airlock gc` found it at {now} and removed what it left");
                if let Ok(true) =
                    crate::record::mark_abandoned(&root.runs_dir().join(id), &why, &now)
                {
                    println!("recorded run {id} as abandoned");
                }
            }
        }
    }
    // The setup cache's broken objects: data volumes of fills that never finished.
    let cache = crate::cache::store::gc(&*engine, args.dry_run).await?;
    for name in &cache.removed {
        println!("{verb} volume {name} (a cache entry whose fill never finished)");
    }
    if report.removed.is_empty() && cache.removed.is_empty() {
        println!("nothing to remove");
    }
    for e in report.errors.iter().chain(&cache.errors) {
        eprintln!("airlock: error: {e}");
    }
    Ok(if report.errors.is_empty() && cache.errors.is_empty() {
        0
    } else {
        1
    })
}
