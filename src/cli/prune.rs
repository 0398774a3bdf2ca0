//! `kafka-backup prune (-c FILE | --path URL) [--keep-last N] [--keep-within D]`:
//! the backups retention rules do not keep, shown with the reason for each
//! decision, then deleted (after `yes`, or with `--auto-approve`; never with
//! `--dry-run`).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::{OutputFormat, PruneArgs};
use crate::prune::{self, Action, Decision, Rules};
use crate::storage::Location;

#[derive(Debug, Serialize)]
struct Report<'a> {
    location: String,
    keep_last: Option<u32>,
    keep_within: Option<String>,
    dry_run: bool,
    decisions: &'a [Decision],
}

pub fn run(args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let (location, configured) = match (&args.config, &args.path) {
        (Some(path), _) => {
            let loaded = crate::config::load(path)?;
            for warning in loaded.render_warnings() {
                say!("warning: {warning}");
            }
            let location = Location::from_config(loaded.config.storage.as_ref())?;
            (
                location,
                loaded.config.retention.clone().unwrap_or_default(),
            )
        }
        (None, Some(url)) => (Location::parse(url)?, Default::default()),
        (None, None) => anyhow::bail!("give `-c FILE` or `--path URL`"),
    };
    let keep_last = args.keep_last.or(configured.keep_last);
    let within = args
        .keep_within
        .clone()
        .or_else(|| configured.keep_within.map(|t| t.as_str().to_owned()));
    if keep_last == Some(0) {
        anyhow::bail!(
            "`--keep-last 0` keeps no backup by count\nhint: give 1 or more; to delete every backup, delete the storage folder"
        );
    }
    let keep_within = within
        .as_deref()
        .map(prune::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--keep-within: {e}"))?;
    if keep_last.is_none() && keep_within.is_none() {
        anyhow::bail!(
            "no retention rule: give `--keep-last N` and/or `--keep-within DURATION` (or `retention:` in the configuration)\nhint: prune never deletes without a rule saying what to keep"
        );
    }
    let rules = Rules {
        keep_last,
        keep_within,
    };
    let store = location.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (found, held) = runtime.block_on(prune::survey(&store))?;
    let decisions = prune::decide(&found, rules, chrono::Utc::now(), &held);
    let report = Report {
        location: store.to_string(),
        keep_last,
        keep_within: keep_within.map(prune::show_duration),
        dry_run: args.dry_run,
        decisions: &decisions,
    };
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{}", render(&report)),
    }
    let order = prune::deletion_order(&decisions);
    if order.is_empty() || args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.auto_approve && !super::confirmed("Delete these backups?", "Prune")? {
        return Ok(ExitCode::FAILURE);
    }
    for d in order {
        match runtime.block_on(prune::delete(&store, &d.backup_id)) {
            Ok(n) => say!("deleted `{}` ({n} objects)", d.backup_id),
            Err(e) => {
                // a backup a run took meanwhile, or a storage error: stop,
                // since what comes next may be a backup this one continues
                say!(
                    "error: `{}` not deleted: {e}\nprune stopped: the backups not deleted yet are left as they were\nhint: run prune again once the cause is gone",
                    d.backup_id
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render(r: &Report<'_>) -> String {
    let mut out = String::new();
    let mut rules = Vec::new();
    if let Some(n) = r.keep_last {
        rules.push(format!("the last {n} of each series"));
    }
    if let Some(d) = &r.keep_within {
        rules.push(format!("those finished within {d}"));
    }
    let _ = writeln!(
        out,
        "Prune plan for `{}`: keep {}",
        r.location,
        rules.join(" and ")
    );
    let mut series: Option<&str> = None;
    let mut interrupted = false;
    for d in r.decisions {
        match (&d.series, series) {
            (Some(s), current) if current != Some(s.as_str()) => {
                let _ = writeln!(out, "\n  series: {s}");
                series = Some(s);
            }
            (None, _) if !interrupted => {
                let _ = writeln!(out, "\n  without a manifest:");
                interrupted = true;
            }
            _ => {}
        }
        let verb = match d.action {
            Action::Keep => "keep  ",
            Action::Delete => "delete",
        };
        let _ = writeln!(
            out,
            "    {verb} {:<32} {:<20}  {}",
            d.backup_id,
            d.finished_at.as_deref().unwrap_or("-"),
            d.reason
        );
    }
    let deleting = r
        .decisions
        .iter()
        .filter(|d| d.action == Action::Delete)
        .count();
    let _ = writeln!(
        out,
        "\n{deleting} to delete, {} kept{}",
        r.decisions.len() - deleting,
        if r.dry_run {
            " (dry run: nothing is deleted)"
        } else {
            ""
        }
    );
    out
}
