//! `kafka-backup apply [FILE] -c CONFIG`: run a reviewed plan (or plan, show
//! and ask first), registry steps first, then the topic data with schema IDs
//! rewritten through the final ID map. Everything is journalled beside the
//! backup, so a rerun finishes what a killed or failed apply began.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::ApplyArgs;
use crate::apply::{self, IdMap, Journal, JournalStore};
use crate::config::Config;
use crate::gather;
use crate::interrupt::Interrupt;
use crate::manifest::BackupReader;
use crate::plan::{Plan, render};
use crate::planfile;
use crate::registry::HttpRegistry;
use crate::restore::{self, DataJournalStore, RestoreOptions};
use crate::storage::{Location, Store};

pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config, "apply", crate::config::Mode::Restore)?;
    let cfg = &loaded.config;
    let backup_id = super::backup_id(
        cfg,
        "apply",
        "the journal and ID map are kept beside the backup",
    )?;
    let store = Location::from_config(cfg.storage.as_ref())?.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if !args.registry_only && !args.dry_run {
        // fail before the registry steps when the data half cannot run
        restore::target_cluster(cfg)?;
    }

    // one apply per target registry and per target cluster, whatever the plan
    let leases = if args.dry_run {
        Vec::new()
    } else {
        take_leases(cfg, &runtime, &store, args)?
    };
    let interrupt = if args.dry_run {
        Interrupt::new()
    } else {
        Interrupt::install(&runtime).context("listening for Ctrl-C and SIGTERM")?
    };
    let result = apply_leased(args, cfg, &runtime, &store, &backup_id, &interrupt);
    for lease in leases {
        runtime.block_on(lease.release());
    }
    match result {
        Err(e) if interrupt.requested() && is_interrupted(&e) => {
            super::report(&e);
            Ok(ExitCode::from(interrupt.exit_code()))
        }
        other => other,
    }
}

/// Whether the apply stopped because it was asked to.
fn is_interrupted(e: &anyhow::Error) -> bool {
    let apply = e
        .downcast_ref::<Hinted>()
        .map(|h| &h.error)
        .or_else(|| e.downcast_ref::<apply::ApplyError>());
    matches!(apply, Some(apply::ApplyError::Interrupted { .. }))
}

/// An apply error that left temporary settings behind, with the command
/// that puts them back.
#[derive(Debug, thiserror::Error)]
#[error("{error}\nhint: {hint}")]
struct Hinted {
    error: apply::ApplyError,
    hint: String,
}

/// `error`, with the `put-back` command when it left temporary settings.
fn with_put_back_hint(error: apply::ApplyError, config: &std::path::Path) -> anyhow::Error {
    if error.left_temporary().is_empty() {
        return error.into();
    }
    Hinted {
        error,
        hint: format!(
            "to put them back and change nothing else, once the registry answers: `kafka-backup put-back -c {}`",
            config.display()
        ),
    }
    .into()
}

/// The leases of the targets this apply writes to.
fn take_leases(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    args: &ApplyArgs,
) -> anyhow::Result<Vec<crate::lease::Lease>> {
    let mut leases = Vec::new();
    // with `restore.enabled: false` the registry is only read
    if cfg.enterprise.schema_registry.enabled && cfg.enterprise.schema_registry.restore.enabled {
        leases.push(registry_lease(
            cfg,
            runtime,
            store,
            "apply",
            args.force_unlock,
        )?);
    }
    if !args.registry_only {
        let cluster = restore::target_cluster(cfg)?;
        let key = restore::cluster_key(&cluster)?;
        let lease = runtime.block_on(crate::lease::Lease::acquire(
            store,
            &format!("cluster-{}", apply::journal::target_key(&key)),
            &format!("target cluster `{}` ({key})", cluster.servers),
            "apply",
            args.force_unlock,
        ));
        match lease {
            Ok(l) => leases.push(l),
            Err(e) => {
                for l in leases {
                    runtime.block_on(l.release());
                }
                return Err(e.into());
            }
        }
    }
    Ok(leases)
}

/// The lease of the target registry, held by `command`.
pub(super) fn registry_lease(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    command: &str,
    force_unlock: bool,
) -> anyhow::Result<crate::lease::Lease> {
    let target = target_name(cfg);
    Ok(runtime.block_on(crate::lease::Lease::acquire(
        store,
        &format!("registry-{}", apply::journal::target_key(&target)),
        &format!("target registry `{target}`"),
        command,
        force_unlock,
    ))?)
}

/// Registry steps, then the data, under the targets' leases.
fn apply_leased(
    args: &ApplyArgs,
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    interrupt: &Interrupt,
) -> anyhow::Result<ExitCode> {
    let registry_on = cfg.enterprise.schema_registry.enabled;
    // the consumer groups' offsets the plan shows (none without a registry:
    // they are worked out after the data then)
    let mut planned_groups = None;
    let id_map = if registry_on && !cfg.enterprise.schema_registry.restore.enabled {
        match registry_off(cfg, runtime, store, backup_id, args)? {
            Some((map, groups)) => {
                planned_groups = Some(groups);
                Some(map)
            }
            None => return Ok(ExitCode::FAILURE),
        }
    } else if registry_on {
        // what interrupted applies left temporary goes back before anything
        // is planned against (or applied to) the target
        let own = match &args.plan {
            Some(path) => Some(read_plan(path)?),
            None => None,
        };
        let (_, left) = super::put_back::interrupted(
            cfg,
            runtime,
            store,
            backup_id,
            own.as_ref().and_then(|p| p.digest.as_deref()),
            args.dry_run,
        )?;
        if !left.is_empty() {
            anyhow::bail!(
                "not every temporary setting interrupted applies left in the target could be put back; nothing else was changed{}\nhint: once the registry answers, rerun this `apply`, or put them back alone with `kafka-backup put-back -c {}`",
                left.iter()
                    .map(|l| format!("\n  - {l}"))
                    .collect::<String>(),
                args.config.display()
            );
        }
        let plan = match own {
            Some(plan) => plan,
            None => match plan_and_confirm(cfg, runtime, store, backup_id, args)? {
                Some(plan) => plan,
                None => return Ok(ExitCode::FAILURE),
            },
        };
        if !plan.groups.is_empty() && !args.registry_only && plan.to_timestamp != args.to_timestamp
        {
            let show = |t: Option<i64>| t.map_or("none".to_owned(), |t| t.to_string());
            anyhow::bail!(
                "the plan's consumer group offsets were planned for --to-timestamp {}, this apply has {}: the restored records would not be where the plan puts the groups; nothing was changed\nhint: apply with the plan's --to-timestamp, or plan again with this one",
                show(plan.to_timestamp),
                show(args.to_timestamp)
            );
        }
        if plan.groups.is_empty() && !args.registry_only {
            let wanted = wanted_groups(cfg, runtime, store, backup_id, args)?;
            if wanted > 0 {
                anyhow::bail!(
                    "the plan has no consumer group offsets, but `target.consumer_groups` selects {wanted} group offset(s) on the restored topics: the plan was made with another configuration (or by `apply --registry-only`, or an older version); nothing was changed\nhint: run `plan` again with this configuration, or set `target.consumer_groups.enabled: false` to restore without them"
                );
            }
        }
        planned_groups = Some(plan.groups.clone());
        Some(apply_registry(
            cfg, runtime, store, backup_id, &plan, args, interrupt,
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
            print_topics(cfg, runtime, store, backup_id, args, "Topics to restore:")?;
            if !confirmed("Restore these topics?")? {
                return Ok(ExitCode::FAILURE);
            }
        }
        None
    };
    if args.registry_only {
        return Ok(ExitCode::SUCCESS);
    }
    restore_data(cfg, runtime, store, backup_id, id_map.as_ref(), args)?;
    set_groups(
        cfg,
        runtime,
        store,
        backup_id,
        planned_groups.as_deref(),
        args,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// How many backed-up group offsets the configuration selects on the
/// topics it restores.
fn wanted_groups(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    args: &ApplyArgs,
) -> anyhow::Result<usize> {
    let selection = restore::groups::selection(cfg);
    let reader = runtime.block_on(BackupReader::open(store, backup_id))?;
    if reader.manifest.consumer_groups.is_empty() || !selection.enabled || cfg.target.is_none() {
        return Ok(0);
    }
    let evidence = runtime.block_on(restore::Evidence::read(&reader))?;
    let jobs = restore::jobs(cfg, &reader.manifest, None, args.to_timestamp, &evidence)?;
    Ok(restore::groups::wanted(&selection, &reader.manifest, &jobs).len())
}

/// After the data: the consumer groups' offsets, worked out from the offset
/// map of the restored records. They must be the plan's (a plan predicts
/// them before the data; anything that wrote to the target since moves
/// them), then each group is set ([`restore::groups::set`]).
fn set_groups(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    planned: Option<&[crate::plan::groups::GroupPlan]>,
    args: &ApplyArgs,
) -> anyhow::Result<()> {
    use restore::groups;
    let selection = groups::selection(cfg);
    let reader = runtime.block_on(BackupReader::open(store, backup_id))?;
    if reader.manifest.consumer_groups.is_empty() || !selection.enabled {
        return Ok(());
    }
    let evidence = runtime.block_on(restore::Evidence::read(&reader))?;
    let jobs = restore::jobs(cfg, &reader.manifest, None, args.to_timestamp, &evidence)?;
    let wanted = groups::wanted(&selection, &reader.manifest, &jobs);
    if wanted.is_empty() {
        return Ok(());
    }
    let cluster = restore::target_cluster(cfg)?;
    let key = restore::cluster_key(&cluster)?;
    let journals = DataJournalStore::new(store.clone(), backup_id, &key);
    if args.dry_run {
        println!(
            "Dry run: the offsets of {} consumer group(s) would be set after the data.",
            wanted
                .iter()
                .map(|w| w.group.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        return Ok(());
    }
    let journal = runtime.block_on(journals.load())?;
    let map = runtime
        .block_on(restore::offsets::OffsetMapStore::new(store.clone(), backup_id, &key).load())?;
    let inputs = runtime.block_on(groups::inputs(
        &cluster,
        &jobs,
        wanted,
        journal.as_ref(),
        &map,
        groups::Source::Restored,
    ))?;
    let (found, _) = crate::plan::groups::plan(&inputs);
    if let Some(planned) = planned {
        let differ = groups::disagreements(planned, &found);
        if !differ.is_empty() {
            anyhow::bail!(
                "the restored records put the consumer groups elsewhere than the plan said; no group offset was set (the data is restored){}\nhint: something wrote to the target partitions between `plan` and `apply`; run `plan` again (it reads where the records landed) and apply the new plan",
                differ
                    .iter()
                    .map(|d| format!("\n  - {d}"))
                    .collect::<String>()
            );
        }
    }
    let log = |line: String| println!("{line}");
    let outcome = runtime.block_on(groups::set(&cluster, &found, planned, &journals, &log))?;
    println!(
        "Consumer groups: {} set now, {} with nothing to commit (already there, set by an earlier run, or read on since).",
        outcome.set, outcome.unchanged
    );
    Ok(())
}

/// `restore.enabled: false`: no registry step, no journal, no put-back.
/// The plan (made the same way `plan` makes it) only reads the target: its
/// ID map holds the source IDs whose identical schema the target already
/// has, which the data half rewrites records through. `None`: the answer
/// was not `yes`.
fn registry_off(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    args: &ApplyArgs,
) -> anyhow::Result<Option<(IdMap, Vec<crate::plan::groups::GroupPlan>)>> {
    if args.plan.is_some() {
        anyhow::bail!(
            "a plan file is applied to the registry, but `enterprise.schema_registry.restore.enabled` is off in `{}`\nhint: run `apply -c {}` without a plan file: it restores the topics through the IDs the target already holds",
            args.config.display(),
            args.config.display()
        );
    }
    if args.registry_only {
        anyhow::bail!(
            "`--registry-only` with `restore.enabled: false`: the registry is not restored, nothing to do"
        );
    }
    let scope = super::plan::Scope::All {
        to_timestamp: args.to_timestamp,
    };
    let (plan, _) = super::plan::make(cfg, runtime, scope)?;
    print!("{}", render::text(&plan));
    if !plan.is_applicable() {
        return Err(apply::ApplyError::Conflicts(plan.blocking()).into());
    }
    print_topics(cfg, runtime, store, backup_id, args, "Topics to restore:")?;
    if !args.auto_approve && !args.dry_run && !confirmed("Restore these topics?")? {
        return Ok(None);
    }
    Ok(Some((
        apply::final_id_map(&plan, &IdMap::new()),
        plan.groups,
    )))
}

fn read_plan(path: &std::path::Path) -> anyhow::Result<Plan> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let plan = planfile::read(&bytes)
        .with_context(|| format!("`{}` is not a usable plan file", path.display()))?;
    if !plan.is_applicable() {
        return Err(apply::ApplyError::Conflicts(plan.blocking()).into());
    }
    Ok(plan)
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
    let scope = if args.registry_only {
        super::plan::Scope::RegistryOnly
    } else {
        super::plan::Scope::All {
            to_timestamp: args.to_timestamp,
        }
    };
    let (plan, _) = super::plan::make(cfg, runtime, scope)?;
    print!("{}", render::text(&plan));
    if !plan.is_applicable() {
        return Err(apply::ApplyError::Conflicts(plan.blocking()).into());
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
    Ok(Some(plan))
}

/// The target registry as apply journals name it (its URL: the config
/// checks keep credentials out of it).
pub(super) fn target_name(cfg: &Config) -> String {
    cfg.enterprise
        .schema_registry
        .url
        .as_ref()
        .map(|u| u.to_string().trim_end_matches('/').to_owned())
        .unwrap_or_default()
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
    let evidence = runtime.block_on(restore::Evidence::read(&reader))?;
    let jobs = restore::jobs(cfg, &reader.manifest, None, args.to_timestamp, &evidence)?;
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
        print_fields(job);
    }
    Ok(())
}

/// Which fields of a topic's records get their schema IDs rewritten, and why.
fn print_fields(job: &restore::TopicJob) {
    if let Some([key, value]) = &job.fields {
        for (name, d) in [("key", key), ("value", value)] {
            let verb = if d.rewrite {
                "schema IDs rewritten"
            } else {
                "written as backed up"
            };
            println!("      {name}: {verb} ({})", d.reason);
        }
    }
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
    interrupt: &Interrupt,
) -> anyhow::Result<IdMap> {
    let digest = plan.digest.clone().expect("a read plan has its digest");
    let mut journals = JournalStore::new(store.clone(), backup_id, &target_name(cfg), &digest);
    if !cfg.enterprise.schema_registry.restore.id_mapping {
        journals = journals.without_id_map();
    }
    // the plan must come from this backup: its registry state, as planned
    let (backup, schemas) = runtime.block_on(gather::backup_snapshot(cfg))?;
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
    if let Some(journal) = existing.take_if(|j| j.finished) {
        let now = target.fingerprint();
        if journal.final_target_fingerprint.as_deref() == Some(now.as_str()) {
            let map = apply::final_id_map(plan, &journal.assigned_ids);
            println!(
                "Registry: this plan was already applied (journal `{}`); nothing to change.",
                journals.display("journal.json")
            );
            if journals.keeps_id_map() {
                print_id_map(&map, &journals.display("id-map.json"), false);
            }
            return Ok(map);
        }
        if now != plan.target_fingerprint && !args.force {
            anyhow::bail!(
                "this plan was applied to the target before (journal `{}`), and the target changed since: it is neither as that apply left it nor as the plan was made against\nhint: make the plan again against the target as it is now, and review it",
                journals.display("journal.json")
            );
        }
        // the target is as the plan was made against again (emptied and
        // rebuilt, say): the plan is applied anew, not taken as done
        eprintln!(
            "the target is back in the state this plan was made against since it was applied (journal `{}`): applying it again",
            journals.display("journal.json")
        );
        journals.forget_version();
    }

    // an unfinished journal is trusted only where the target holds what it
    // says was registered (a registry emptied and rebuilt under this URL
    // since has lost them)
    if let Some(journal) = &existing {
        let absent = apply::done_but_absent(plan, journal, &target);
        if !absent.is_empty() {
            let shown: Vec<&str> = absent.iter().take(5).map(String::as_str).collect();
            let more = match absent.len() {
                n if n > 5 => format!(" and {} more", n - 5),
                _ => String::new(),
            };
            eprintln!(
                "warning: the journal `{}` has {} registration(s) done that the target registry does not hold ({}{more}): the target lost them since; every step runs again",
                journals.display("journal.json"),
                absent.len(),
                shown.join(", ")
            );
            existing = None;
            journals.forget_version();
        }
    }
    let resuming = existing.is_some();
    apply::check_applicable(plan, &target.fingerprint(), resuming, args.force)?;
    if plan.target_fingerprint == target.fingerprint() {
        // the steps must be the planner's own (a resumed plan was checked
        // when its apply began, against the target as it was then)
        apply::check_rederived(plan, &backup, &target)?;
    } else if !resuming {
        eprintln!(
            "warning: with the target changed since the plan (--force), the plan's steps cannot be checked against the planner: they run as the file says"
        );
    }
    if resuming {
        eprintln!(
            "resuming from the journal `{}` (the target moved since the plan: expected after a partial apply)",
            journals.display("journal.json")
        );
    } else if args.force && plan.target_fingerprint != target.fingerprint() {
        eprintln!("warning: the target changed since the plan was made; applying anyway (--force)");
    }
    let mut journal = existing.unwrap_or_else(|| Journal::new(&digest));
    if !args.dry_run {
        journal.target.get_or_insert_with(|| target_name(cfg));
        // beside the journal, so that what this apply sets temporarily can
        // be put back by a later one if it is killed
        runtime.block_on(journals.save_plan(&planfile::write(plan)))?;
    }

    let client = HttpRegistry::new(&cfg.enterprise.schema_registry)?;
    if args.dry_run {
        println!("Dry run: these requests would be sent, in this order; none is sent.");
    }
    let mut log = |line: String| println!("{line}");
    let forced_exit = format!(
        "temporary registry settings this apply set may still be in the target: put them back with `kafka-backup put-back -c {}`",
        args.config.display()
    );
    let outcome = interrupt
        .section(forced_exit, || {
            runtime.block_on(apply::apply_registry_concurrent(
                &client,
                plan,
                journal,
                resuming,
                (!args.dry_run).then_some(&mut journals),
                args.dry_run,
                args.registry_concurrency,
                interrupt,
                &mut log,
            ))
        })
        .map_err(|e| with_put_back_hint(e, &args.config))?;
    if args.dry_run {
        println!("Dry run: nothing was sent.");
        return Ok(outcome.id_map);
    }
    // how this apply leaves the target: a later apply of the same plan is
    // "already applied" only while the target is still so
    let (after, _) = runtime.block_on(gather::target_snapshot(cfg))?;
    if let Some(mut journal) = runtime.block_on(journals.load())? {
        journal.final_target_fingerprint = Some(after.fingerprint());
        runtime.block_on(journals.save(&journal))?;
    }
    println!(
        "Registry applied: {} step(s) changed the target, {} already there, {} done in an earlier run.",
        outcome.changed, outcome.already_there, outcome.skipped
    );
    if journals.keeps_id_map() {
        print_id_map(&outcome.id_map, &journals.display("id-map.json"), true);
    } else {
        println!("No ID map kept (`restore.id_mapping: false`).");
    }
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
    let evidence = runtime.block_on(restore::Evidence::read(&reader))?;
    let jobs = restore::jobs(cfg, &reader.manifest, id_map, args.to_timestamp, &evidence)?;
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
    if args.plan.is_some() {
        // `apply -c` showed them before asking
        for job in &jobs {
            println!("topic `{}` -> `{}`:", job.source, job.target);
            print_fields(job);
        }
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
    let maps = restore::offsets::OffsetMapStore::new(
        store.clone(),
        backup_id,
        &restore::cluster_key(&cluster)?,
    );
    let outcome = runtime.block_on(restore::restore(
        &cluster, reader, &jobs, &journals, &maps, &options, &log,
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
