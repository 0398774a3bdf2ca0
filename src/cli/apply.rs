//! `kafka-backup apply [FILE] -c CONFIG`: run a reviewed plan (or plan, show
//! and ask first), registry steps first, then the topic data with schema IDs
//! rewritten through the final ID map. Everything is journalled beside the
//! backup, so a rerun finishes what a killed or failed apply began.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use super::ApplyArgs;
use crate::apply::{self, IdMap, Journal, JournalStore};
use crate::config::Config;
use crate::gather;
use crate::manifest::BackupReader;
use crate::plan::{Plan, render};
use crate::planfile;
use crate::registry::HttpRegistry;
use crate::restore::{self, DataJournalStore, RestoreOptions};
use crate::storage::{Location, Store};

pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config)?;
    let cfg = &loaded.config;
    let backup_id = super::backup_id(
        cfg,
        "apply",
        "the journal and ID map are kept beside the backup",
    )?;
    let store = Location::from_config(cfg.storage.as_ref())?.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let registry_on = cfg.enterprise.schema_registry.enabled;
    if !args.registry_only && !args.dry_run {
        // fail before the registry steps when the data half cannot run
        restore::target_cluster(cfg)?;
    }

    let id_map = if registry_on {
        let unfinished = match &args.plan {
            Some(_) => None,
            None => unfinished_plan(cfg, &runtime, &store, &backup_id, &args.config)?,
        };
        let plan = match (&args.plan, unfinished) {
            (Some(path), _) => read_plan(path)?,
            (None, Some((plan, shown))) => {
                eprintln!(
                    "resuming the unfinished apply of `{shown}` (the plan an earlier `apply` stopped in): the steps it did are skipped, the temporary settings it made are put back\nhint: to plan afresh instead, let it finish, or delete its `journal.json`"
                );
                print!("{}", render::text(&plan));
                if !args.auto_approve && !args.dry_run && !confirmed("Apply this plan?")? {
                    return Ok(ExitCode::FAILURE);
                }
                plan
            }
            (None, None) => match plan_and_confirm(cfg, &runtime, &store, &backup_id, args)? {
                Some(plan) => plan,
                None => return Ok(ExitCode::FAILURE),
            },
        };
        Some(apply_registry(
            cfg, &runtime, &store, &backup_id, &plan, args,
        )?)
    } else {
        if args.plan.is_some() {
            anyhow::bail!(
                "a plan file restores a registry, but `enterprise.schema_registry.enabled` is off in `{}`",
                args.config.display()
            );
        }
        if args.registry_only {
            anyhow::bail!("`--registry-only` with the registry off: nothing to do");
        }
        if !args.auto_approve && !args.dry_run {
            print_topics(
                cfg,
                &runtime,
                &store,
                &backup_id,
                args,
                "Topics to restore:",
            )?;
            if !confirmed("Restore these topics?")? {
                return Ok(ExitCode::FAILURE);
            }
        }
        None
    };
    if args.registry_only {
        return Ok(ExitCode::SUCCESS);
    }
    restore_data(cfg, &runtime, &store, &backup_id, id_map.as_ref(), args)?;
    Ok(ExitCode::SUCCESS)
}

fn read_plan(path: &std::path::Path) -> anyhow::Result<Plan> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let plan = planfile::read(&bytes)
        .with_context(|| format!("`{}` is not a usable plan file", path.display()))?;
    if !plan.is_applicable() {
        return Err(apply::ApplyError::Conflicts(plan.conflicts.len()).into());
    }
    Ok(plan)
}

/// `apply -c` after an apply of this backup that stopped midway: the plan it
/// ran (kept beside its journal by `apply -c`) when its journal has steps
/// done and the target holds every registration it did, with where the plan
/// is kept. Running it again finishes it, temporary levels and modes put
/// back included; a new plan would take those for the target's own.
/// Several such applies: an error naming their plans.
fn unfinished_plan(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    config: &std::path::Path,
) -> anyhow::Result<Option<(Plan, String)>> {
    let objects = store.object_store();
    let root = store.path(&format!("{backup_id}/apply"));
    let listing = runtime
        .block_on(objects.list_with_delimiter(Some(&root)))
        .with_context(|| format!("cannot list the apply journals under `{backup_id}/apply/`"))?;
    let mut target = None;
    let mut found = Vec::new();
    for dir in listing.common_prefixes {
        let Some(digest) = dir.filename() else {
            continue;
        };
        let mut journals = JournalStore::new(store.clone(), backup_id, digest);
        let Some(journal) = runtime.block_on(journals.load())? else {
            continue;
        };
        if journal.finished || journal.done.is_empty() {
            continue;
        }
        let shown = journals.display("plan.json");
        let path = store.path(&format!("{backup_id}/apply/{digest}/plan.json"));
        let bytes = match runtime.block_on(async { objects.get(&path).await?.bytes().await }) {
            Ok(bytes) => bytes,
            // a plan file applied by path: its rerun names it again
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read `{shown}`")),
        };
        let plan = planfile::read(&bytes)
            .with_context(|| format!("`{shown}` is not a usable plan file"))?;
        if target.is_none() {
            target = Some(runtime.block_on(gather::target_snapshot(cfg))?.0);
        }
        let target = target.as_ref().expect("just read");
        if apply::done_but_absent(&plan, &journal, target).is_empty() {
            found.push((plan, shown));
        }
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|(_, shown)| shown.as_str()).collect();
        anyhow::bail!(
            "{} unfinished applies of backup `{backup_id}` to this target: {}\nhint: finish the right one with `kafka-backup apply <its plan.json> -c {}`",
            found.len(),
            names.join(", "),
            config.display()
        );
    }
    Ok(found.pop())
}

/// `apply -c` without a plan file: plans, shows the plan and the topics, asks
/// for `yes` (unless `--auto-approve` or `--dry-run`), keeps the plan file
/// beside the journal. `None`: the answer was not `yes`.
fn plan_and_confirm(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    args: &ApplyArgs,
) -> anyhow::Result<Option<Plan>> {
    let (plan, _) = super::plan::make(cfg, runtime)?;
    print!("{}", render::text(&plan));
    if !plan.is_applicable() {
        return Err(apply::ApplyError::Conflicts(plan.conflicts.len()).into());
    }
    if !args.registry_only {
        print_topics(
            cfg,
            runtime,
            store,
            backup_id,
            args,
            "Topics to restore after the registry:",
        )?;
    }
    let bytes = planfile::write(&plan);
    let plan = planfile::read(&bytes).expect("a plan just written reads back");
    if !args.auto_approve && !args.dry_run && !confirmed("Apply this plan?")? {
        return Ok(None);
    }
    if !args.dry_run {
        let digest = plan.digest.as_deref().expect("read plans have a digest");
        let path = store.path(&format!("{backup_id}/apply/{digest}/plan.json"));
        runtime
            .block_on(
                store
                    .object_store()
                    .put(&path, PutPayload::from(Bytes::from(bytes))),
            )
            .context("cannot keep the plan file beside the journal")?;
    }
    Ok(Some(plan))
}

/// Lists the backup's topics and where they go.
fn print_topics(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    args: &ApplyArgs,
    title: &str,
) -> anyhow::Result<()> {
    let reader = runtime.block_on(BackupReader::open(store, backup_id))?;
    let jobs = restore::jobs(cfg, &reader.manifest, None, args.to_timestamp);
    println!("\n{title}");
    for job in &jobs {
        let records = job.manifest.record_count();
        let rename = if job.source == job.target {
            String::new()
        } else {
            format!(" (from `{}`)", job.source)
        };
        println!(
            "  + {}{rename}: {} partition(s), {records} record(s)",
            job.target, job.manifest.partition_count
        );
    }
    Ok(())
}

/// Asks `question` and waits for `yes` on standard input.
fn confirmed(question: &str) -> anyhow::Result<bool> {
    print!("\n{question} Only `yes` is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() && answer.is_empty() {
        eprintln!(
            "error: no answer on standard input\nhint: pass `--auto-approve` to apply without asking"
        );
    } else {
        eprintln!("Apply cancelled: nothing was changed.");
    }
    Ok(false)
}

/// The registry half. Returns the final ID map (after a dry run: the IDs known so far).
fn apply_registry(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    plan: &Plan,
    args: &ApplyArgs,
) -> anyhow::Result<IdMap> {
    let digest = plan.digest.clone().expect("a read plan has its digest");
    let mut journals = JournalStore::new(store.clone(), backup_id, &digest);
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
    let mut existing = runtime.block_on(journals.load())?;
    let (target, _) = runtime.block_on(gather::target_snapshot(cfg))?;
    // the journal names the plan, not the registry: trusted only where the
    // target holds what it says was registered
    if let Some(journal) = &existing {
        let absent = apply::done_but_absent(plan, journal, &target);
        if !absent.is_empty() {
            let shown: Vec<&str> = absent.iter().take(5).map(String::as_str).collect();
            let more = match absent.len() {
                n if n > 5 => format!(" and {} more", n - 5),
                _ => String::new(),
            };
            eprintln!(
                "warning: the journal `{}` has {} registration(s) done that the target registry does not hold ({}{more}): it comes from an apply of this plan to another registry, or the target lost them; every step runs again",
                journals.display("journal.json"),
                absent.len(),
                shown.join(", ")
            );
            existing = None;
        }
    }
    if existing.as_ref().is_some_and(|j| j.finished) {
        let journal = existing.expect("checked");
        let map = apply::final_id_map(plan, &journal.assigned_ids);
        println!(
            "Registry: this plan was already applied (journal `{}`); nothing to change.",
            journals.display("journal.json")
        );
        print_id_map(&map, &journals.display("id-map.json"), false);
        return Ok(map);
    }

    let resuming = existing.is_some();
    apply::check_applicable(plan, &target.fingerprint(), resuming, args.force)?;
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
    let outcome = runtime.block_on(apply::apply_registry_concurrent(
        &client,
        plan,
        journal,
        resuming,
        (!args.dry_run).then_some(&mut journals),
        args.dry_run,
        args.registry_concurrency,
        &mut log,
    ))?;
    if args.dry_run {
        println!("Dry run: nothing was sent.");
        return Ok(outcome.id_map);
    }
    println!(
        "Registry applied: {} step(s) changed the target, {} already there, {} done in an earlier run.",
        outcome.changed, outcome.already_there, outcome.skipped
    );
    print_id_map(&outcome.id_map, &journals.display("id-map.json"), true);
    Ok(outcome.id_map)
}

/// The data half: every backed-up topic into the target cluster.
fn restore_data(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    id_map: Option<&IdMap>,
    args: &ApplyArgs,
) -> anyhow::Result<()> {
    let reader = Arc::new(runtime.block_on(BackupReader::open(store, backup_id))?);
    let jobs = restore::jobs(cfg, &reader.manifest, id_map, args.to_timestamp);
    let duplicates = restore::duplicate_targets(&jobs);
    if !duplicates.is_empty() {
        anyhow::bail!(
            "`target.topic_mapping` sends several backed-up topics to {}",
            duplicates.join(", ")
        );
    }
    if jobs.is_empty() {
        println!("Topics: the backup holds none; nothing to restore.");
        return Ok(());
    }
    let cluster = restore::target_cluster(cfg)?;
    let journals =
        DataJournalStore::new(store.clone(), backup_id, &restore::cluster_key(&cluster)?);
    let options = RestoreOptions {
        to_timestamp: args.to_timestamp,
        partition_concurrency: args.partition_concurrency,
        append: args.append,
        dry_run: args.dry_run,
    };
    let log = |line: String| println!("{line}");
    let outcome = runtime.block_on(restore::restore(
        &cluster, reader, &jobs, &journals, &options, &log,
    ))?;
    if args.dry_run {
        println!("Dry run: no topic was created, no record written.");
        return Ok(());
    }
    println!(
        "Topics restored: {} partition(s) now, {} done in an earlier run; {} record(s) written ({} MiB), {} schema ID(s) rewritten, {} left out. Journal `{}`.",
        outcome.partitions_restored,
        outcome.partitions_done_before,
        outcome.records_written,
        outcome.bytes / (1024 * 1024),
        outcome.ids_rewritten,
        outcome.records_skipped,
        journals.display()
    );
    Ok(())
}

fn print_id_map(map: &IdMap, path: &str, written: bool) {
    let verb = if written { "written to" } else { "in" };
    println!("Source -> target schema IDs ({verb} `{path}`):");
    print!(
        "{}",
        String::from_utf8(apply::id_map_json(map)).expect("the ID map is UTF-8")
    );
}
