//! `kafka-backup apply FILE -c CONFIG --registry-only`: run a saved plan's
//! registry steps against the target named in the configuration, journalled
//! in the backup's storage. Restoring topic data is not built yet.

use std::process::ExitCode;

use anyhow::Context;

use super::ApplyArgs;
use crate::apply::{self, Journal, JournalStore};
use crate::config;
use crate::gather;
use crate::planfile;
use crate::registry::HttpRegistry;
use crate::storage::Location;

pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    if !args.registry_only {
        anyhow::bail!(
            "restoring topic data is not built yet (issue 5): rerun with --registry-only to restore the registry alone"
        );
    }
    let Some(plan_path) = &args.plan else {
        anyhow::bail!(
            "planning and applying in one go (`apply -c` without a plan file) is not built yet (issue 5)\nhint: run `kafka-backup plan -c CONFIG -o FILE`, review it, then `kafka-backup apply FILE -c CONFIG --registry-only`"
        );
    };
    let bytes = std::fs::read(plan_path)
        .with_context(|| format!("cannot read `{}`", plan_path.display()))?;
    let plan = planfile::read(&bytes)
        .with_context(|| format!("`{}` is not a usable plan file", plan_path.display()))?;
    let digest = plan.digest.clone().expect("a read plan has its digest");
    if !plan.is_applicable() {
        return Err(apply::ApplyError::Conflicts(plan.conflicts.len()).into());
    }

    let loaded = config::load(&args.config)?;
    for warning in loaded.render_warnings() {
        eprintln!("warning: {warning}");
    }
    let cfg = &loaded.config;
    let backup_id = cfg
        .backup_id
        .as_ref()
        .context("the configuration has no `backup_id`, which `apply` needs (the journal and ID map are kept beside the backup)")?
        .as_str()
        .to_owned();
    let store = Location::from_config(cfg.storage.as_ref())?.open()?;
    let mut journals = JournalStore::new(store, &backup_id, &digest);

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    // the plan must come from this backup: its registry state, as planned
    let (_, schemas) = runtime.block_on(gather::backup_snapshot(cfg))?;
    if schemas.fingerprint != plan.backup_fingerprint {
        anyhow::bail!(
            "the plan was made from another backup state: it names backup fingerprint `{}`, backup `{backup_id}` has `{}`\nhint: check `backup_id` and `storage` in `{}`, or plan again",
            plan.backup_fingerprint,
            schemas.fingerprint,
            args.config.display()
        );
    }
    let existing = runtime.block_on(journals.load())?;
    if existing.as_ref().is_some_and(|j| j.finished) {
        let journal = existing.expect("checked");
        let map = apply::final_id_map(&plan, &journal.assigned_ids);
        println!(
            "Nothing to do: this plan was already applied (journal `{}`); nothing changed.",
            journals.display("journal.json")
        );
        print_id_map(&map, &journals.display("id-map.json"), false);
        return Ok(ExitCode::SUCCESS);
    }

    let (target, _) = runtime.block_on(gather::target_snapshot(cfg))?;
    let resuming = existing.is_some();
    apply::check_applicable(&plan, &target.fingerprint(), resuming, args.force)?;
    if resuming {
        eprintln!(
            "resuming from the journal `{}` (the target moved since the plan: expected after a partial apply)",
            journals.display("journal.json")
        );
    } else if args.force && plan.target_fingerprint != target.fingerprint() {
        eprintln!("warning: the target changed since the plan was made; applying anyway (--force)");
    }
    let journal = existing.unwrap_or_else(|| Journal::new(&digest));

    let client = HttpRegistry::new(&cfg.enterprise.schema_registry)?;
    if args.dry_run {
        println!("Dry run: these requests would be sent, in this order; none is sent.");
    }
    let mut log = |line: String| println!("{line}");
    let outcome = runtime.block_on(apply::apply_registry(
        &client,
        &plan,
        journal,
        resuming,
        (!args.dry_run).then_some(&mut journals),
        args.dry_run,
        &mut log,
    ))?;
    if args.dry_run {
        println!("Dry run: nothing was sent.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Apply complete: {} step(s) changed the target, {} already there, {} done in an earlier run.",
        outcome.changed, outcome.already_there, outcome.skipped
    );
    print_id_map(&outcome.id_map, &journals.display("id-map.json"), true);
    Ok(ExitCode::SUCCESS)
}

fn print_id_map(map: &apply::IdMap, path: &str, written: bool) {
    let verb = if written { "written to" } else { "in" };
    println!("Source -> target schema IDs ({verb} `{path}`):");
    print!(
        "{}",
        String::from_utf8(apply::id_map_json(map)).expect("the ID map is UTF-8")
    );
}
