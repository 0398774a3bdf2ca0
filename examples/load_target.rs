//! Times the planner's I/O half for `scripts/bench-plan`: reads a live
//! registry's whole state with `kafka_backup::gather::target_snapshot`, as
//! `kafka-backup plan` does, RUNS times.
//!
//!     cargo run --release --example load_target -- URL [RUNS [MAX_CONCURRENCY]]
//!
//! Defaults: 3 runs, `max_concurrency` of the configuration's default (8).
//! Prints one line per run, then
//! `summary subjects=N versions=N requests=N median_s=S req_per_s=R max_concurrency=C`.

use std::time::Instant;

use kafka_backup::config::{self, Format};
use kafka_backup::gather::target_snapshot;

async fn run(args: &[String]) -> Result<(), String> {
    let url = args
        .get(1)
        .ok_or("usage: load_target URL [RUNS [MAX_CONCURRENCY]]")?;
    let runs: usize = match args.get(2) {
        Some(r) => r
            .parse()
            .map_err(|_| format!("RUNS: not a number: `{r}`"))?,
        None => 3,
    };
    let mut yaml = format!("enterprise:\n  schema_registry:\n    url: {url}\n");
    if let Some(c) = args.get(3) {
        yaml.push_str(&format!("    max_concurrency: {c}\n"));
    }
    let loaded = config::parse(&yaml, Format::Yaml, "load_target.yaml", Box::new(|_| None))
        .map_err(|e| e.to_string())?;
    let config = loaded.config;
    let concurrency = config.enterprise.schema_registry.max_concurrency;

    let mut walls = Vec::new();
    let mut seen = None;
    for run in 1..=runs.max(1) {
        let started = Instant::now();
        let (snapshot, requests) = target_snapshot(&config).await.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        })?;
        let wall = started.elapsed().as_secs_f64();
        let subjects = snapshot.subjects.len();
        let versions = snapshot.version_count();
        println!(
            "run {run}: subjects={subjects} versions={versions} requests={requests} seconds={wall:.3}"
        );
        walls.push(wall);
        seen = Some((subjects, versions, requests));
    }
    let (subjects, versions, requests) = seen.expect("at least one run");
    walls.sort_by(f64::total_cmp);
    let median = walls[walls.len() / 2];
    println!(
        "summary subjects={subjects} versions={versions} requests={requests} median_s={median:.3} req_per_s={:.0} max_concurrency={concurrency}",
        requests as f64 / median
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load_target: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
