//! `kafka-backup apply [FILE] -c CONFIG`: run a reviewed plan (or plan, show
//! and ask first), registry steps first, then the topic data with schema IDs
//! rewritten through the final ID map. Everything is journalled beside the
//! backup, so a rerun finishes what a killed or failed apply began.
//!
//! With `--shard i/N` the data half is split among N processes
//! ([`restore::shard`]): shard 0 runs the registry steps, the others wait for
//! its journal to say they are done ([`wait_for_registry`]); each restores
//! its own partitions under a lease of its own, and the shard that finds
//! every partition done after its own sets the consumer groups.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use crate::restore::shard::{self, Shard};
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
    let shard = match &args.shard {
        Some(spec) => Some(Shard::parse(
            spec,
            std::env::var(shard::INDEX_VARIABLE).ok().as_deref(),
        )?),
        None => None,
    };
    check_shard(cfg, args, shard)?;
    let store = Location::from_config(cfg.storage.as_ref())?.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if !args.registry_only && !args.dry_run {
        // fail before the registry steps when the data half cannot run
        restore::target_cluster(cfg)?;
    }

    // one apply per target registry and per target cluster (or shard of
    // it), whatever the plan
    let leases = if args.dry_run {
        Vec::new()
    } else {
        take_leases(cfg, &runtime, &store, args, shard)?
    };
    let interrupt = if args.dry_run {
        Interrupt::new()
    } else {
        Interrupt::install(&runtime).context("listening for Ctrl-C and SIGTERM")?
    };
    let result = apply_leased(args, cfg, &runtime, &store, &backup_id, &interrupt, shard);
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

/// Whether `--shard` goes with the rest of the command line.
fn check_shard(cfg: &Config, args: &ApplyArgs, shard: Option<Shard>) -> anyhow::Result<()> {
    let Some(shard) = shard else {
        return Ok(());
    };
    if args.registry_only {
        anyhow::bail!(
            "`--shard {shard}` splits the topic data among processes, and `--registry-only` restores none\nhint: run `apply --registry-only` without `--shard`"
        );
    }
    let sr = &cfg.enterprise.schema_registry;
    if shard.count > 1 && args.plan.is_none() && sr.enabled && sr.restore.enabled {
        anyhow::bail!(
            "`--shard {shard}` needs a plan file: every shard must restore through the registry steps of one plan, which shard 0 applies and the others wait for (`apply -c` alone would plan in each process)\nhint: plan once, `kafka-backup plan -c {cfg} -o restore.plan.json`, and give every shard that file: `kafka-backup apply restore.plan.json -c {cfg} --shard {shard}`",
            cfg = args.config.display()
        );
    }
    Ok(())
}

/// The leases of the targets this apply writes to: the target registry's
/// (unless a shard other than 0, which does not write to it) and the target
/// cluster's, or with `--shard` the shard's own lease of it.
fn take_leases(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    args: &ApplyArgs,
    shard: Option<Shard>,
) -> anyhow::Result<Vec<crate::lease::Lease>> {
    let mut leases = Vec::new();
    // with `restore.enabled: false` the registry is only read
    if cfg.enterprise.schema_registry.enabled
        && cfg.enterprise.schema_registry.restore.enabled
        && shard.is_none_or(|s| s.index == 0)
    {
        leases.push(registry_lease(
            cfg,
            runtime,
            store,
            "apply",
            args.force_unlock,
        )?);
    }
    if !args.registry_only {
        let taken = cluster_lease(cfg, runtime, store, args, shard);
        match taken {
            Ok(l) => leases.push(l),
            Err(e) => {
                for l in leases {
                    runtime.block_on(l.release());
                }
                return Err(e);
            }
        }
    }
    Ok(leases)
}

/// The target cluster's lease, or the shard's lease of it. Shards do not
/// block each other, but an apply without `--shard` and the shards of one
/// would write the same partitions: each refuses while the other kind
/// holds a live lease (unless `--force-unlock`).
fn cluster_lease(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    args: &ApplyArgs,
    shard: Option<Shard>,
) -> anyhow::Result<crate::lease::Lease> {
    use crate::lease::Lease;
    let cluster = restore::target_cluster(cfg)?;
    let key = restore::cluster_key(&cluster)?;
    let whole = format!("cluster-{}", apply::journal::target_key(&key));
    // the shard a lease name of this cluster's names
    let shard_of = |name: &str| {
        name.strip_prefix(&whole)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(Shard::from_tag)
    };
    let cluster_said = format!("target cluster `{}` ({key})", cluster.servers);
    let (name, resource) = match shard {
        None => (whole.clone(), cluster_said.clone()),
        Some(s) => (
            format!("{whole}-{}", s.tag()),
            format!("shard {s} of {cluster_said}"),
        ),
    };
    let lease = runtime.block_on(Lease::acquire(
        store,
        &name,
        &resource,
        "apply",
        args.force_unlock,
    ))?;
    if args.force_unlock {
        return Ok(lease);
    }
    let other = runtime.block_on(Lease::refuse_if_held(
        store,
        |n| match shard {
            None => shard_of(n).is_some(),
            Some(_) => n == whole,
        },
        |n| match shard_of(n) {
            Some(s) => format!(
                "{cluster_said}, restored by shard {s} (the shards of an apply and an apply without `--shard` would write the same partitions),"
            ),
            None => format!(
                "{cluster_said}, restored by an apply without `--shard` (its partitions are the shards' too),"
            ),
        },
    ));
    match other {
        Ok(()) => Ok(lease),
        Err(e) => {
            runtime.block_on(lease.release());
            Err(e.into())
        }
    }
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
    shard: Option<Shard>,
) -> anyhow::Result<ExitCode> {
    let registry_on = cfg.enterprise.schema_registry.enabled;
    // shards other than 0 leave the registry steps to shard 0
    let waits = shard.filter(|s| s.index > 0);
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
        // `--ask`: the saved plan is shown and answered before anything changes
        if args.ask
            && let Some(plan) = &own
        {
            print!("{}", render::text(plan));
            print_topics_after_registry(cfg, runtime, store, backup_id, args)?;
            if !super::confirmed("Apply this plan?", "Apply")? {
                return Ok(ExitCode::FAILURE);
            }
        }
        let left = match waits {
            Some(_) => Vec::new(),
            None => {
                super::put_back::interrupted(
                    cfg,
                    runtime,
                    store,
                    backup_id,
                    own.as_ref().and_then(|p| p.digest.as_deref()),
                    args.dry_run,
                )?
                .1
            }
        };
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
        Some(match waits {
            Some(shard) => wait_for_registry(cfg, runtime, store, backup_id, &plan, args, shard)?,
            None => apply_registry(cfg, runtime, store, backup_id, &plan, args, interrupt)?,
        })
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
            if !super::confirmed("Restore these topics?", "Apply")? {
                return Ok(ExitCode::FAILURE);
            }
        }
        None
    };
    if args.registry_only {
        return Ok(ExitCode::SUCCESS);
    }
    restore_data(cfg, runtime, store, backup_id, id_map.as_ref(), args, shard)?;
    set_groups(
        cfg,
        runtime,
        store,
        backup_id,
        planned_groups.as_deref(),
        args,
        shard,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The first five of `items` joined by `, `, and how many more there are.
fn first_five(items: &[String]) -> String {
    let mut shown = items
        .iter()
        .take(5)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 5 {
        shown.push_str(&format!(" and {} more", items.len() - 5));
    }
    shown
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
/// them), then each group is set ([`restore::groups::set`]). A shard sets
/// them only when every selected partition is done, its own and the other
/// shards' (the last shard to finish does: each saves its journal before it
/// looks at the others'); two shards finishing at once both commit the same
/// offsets, each journalled in its own file.
fn set_groups(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    planned: Option<&[crate::plan::groups::GroupPlan]>,
    args: &ApplyArgs,
    shard: Option<Shard>,
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
    let journals = DataJournalStore::new(store.clone(), backup_id, &key).for_shard(shard);
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
    if let Some(shard) = shard {
        let pending: Vec<String> = jobs
            .iter()
            .flat_map(|job| {
                job.manifest
                    .partitions
                    .keys()
                    .map(move |&p| (job.target.as_str(), p))
            })
            .filter(|(topic, p)| {
                !journal
                    .as_ref()
                    .and_then(|j| j.get(topic, *p))
                    .is_some_and(|e| e.done)
            })
            .map(|(topic, p)| format!("{topic}[{p}]"))
            .collect();
        if !pending.is_empty() {
            println!(
                "Consumer groups: left to the shard that finishes last; {} partition(s) of other shards are not restored yet ({}). Shard {shard} sets nothing: once every shard is done, the last one to finish sets them (or an `apply` of the same plan without `--shard`).",
                pending.len(),
                first_five(&pending)
            );
            return Ok(());
        }
        println!(
            "Consumer groups: every selected partition is restored (by every shard); shard {shard} sets the offsets."
        );
    }
    let map = runtime.block_on(
        restore::offsets::OffsetMapStore::new(store.clone(), backup_id, &key)
            .for_shard(shard)
            .load(journal.as_ref()),
    )?;
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
    if !args.auto_approve && !args.dry_run && !super::confirmed("Restore these topics?", "Apply")? {
        return Ok(None);
    }
    Ok(Some((
        apply::final_id_map(&plan, &IdMap::new()),
        plan.groups,
    )))
}

/// The topics an apply restores after the registry's steps, unless
/// `--registry-only`.
fn print_topics_after_registry(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    args: &ApplyArgs,
) -> anyhow::Result<()> {
    if args.registry_only {
        return Ok(());
    }
    print_topics(
        cfg,
        runtime,
        store,
        backup_id,
        args,
        "Topics to restore after the registry:",
    )
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
    print_topics_after_registry(cfg, runtime, store, backup_id, args)?;
    let bytes = planfile::write(&plan);
    let plan = planfile::read(&bytes).expect("a plan just written reads back");
    if !args.auto_approve && !args.dry_run && !super::confirmed("Apply this plan?", "Apply")? {
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
        say!(
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
            say!(
                "warning: the journal `{}` has {} registration(s) done that the target registry does not hold ({}): the target lost them since; every step runs again",
                journals.display("journal.json"),
                absent.len(),
                first_five(&absent)
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
        say!(
            "warning: with the target changed since the plan (--force), the plan's steps cannot be checked against the planner: they run as the file says"
        );
    }
    if resuming {
        say!(
            "resuming from the journal `{}` (the target moved since the plan: expected after a partial apply)",
            journals.display("journal.json")
        );
    } else if args.force && plan.target_fingerprint != target.fingerprint() {
        say!("warning: the target changed since the plan was made; applying anyway (--force)");
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

/// How often a shard waiting for shard 0's registry steps reads the journal.
const SHARD_POLL: Duration = Duration::from_secs(1);

/// How often a waiting shard says it still waits.
const SHARD_SAY_EVERY: Duration = Duration::from_secs(30);

/// Shards other than 0: the registry half is shard 0's. Waits (up to
/// `--shard-wait`) until the journal of the same plan in the same target
/// registry says every step is done, then gives the final ID map that apply
/// wrote (`id-map.json`: the plan's known IDs and the ones the target
/// assigned, which the journal records). A finished journal counts only
/// while the target registry holds every registration it says was done,
/// with its ID ([`apply::done_but_absent`]): one left from an earlier apply
/// of this plan into a registry emptied since would give IDs the target no
/// longer holds (and shard 0 applies the plan again when the target is back
/// in the state it was made against). Reads the target registry for that,
/// and never writes to it.
fn wait_for_registry(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    plan: &Plan,
    args: &ApplyArgs,
    shard: Shard,
) -> anyhow::Result<IdMap> {
    let digest = plan.digest.clone().expect("a read plan has its digest");
    let mut journals = JournalStore::new(store.clone(), backup_id, &target_name(cfg), &digest);
    let shown = journals.display("journal.json");
    let (_, schemas) = runtime.block_on(gather::backup_snapshot(cfg))?;
    if schemas.fingerprint != plan.backup_fingerprint {
        anyhow::bail!(
            "the plan was made from another backup state: it names backup fingerprint `{}`, backup `{backup_id}` has `{}`\nhint: check `backup_id` and `storage` in `{}`, or plan again (and give every shard the new plan)",
            plan.backup_fingerprint,
            schemas.fingerprint,
            args.config.display()
        );
    }
    if args.dry_run {
        let journal = runtime.block_on(journals.load())?;
        return Ok(match journal.filter(|j| j.finished) {
            Some(j) => {
                println!(
                    "Shard {shard}: the registry half was applied by shard 0 (journal `{shown}`); its ID map is used."
                );
                apply::final_id_map(plan, &j.assigned_ids)
            }
            None => {
                println!(
                    "Dry run, shard {shard}: the registry half is shard 0's and not applied yet (journal `{shown}`); the IDs shown are the ones the plan knows."
                );
                apply::final_id_map(plan, &IdMap::new())
            }
        });
    }
    println!(
        "Shard {shard}: the registry steps are shard 0's; waiting for its journal `{shown}` to say they are done (read every {} s, for up to {} s: `--shard-wait`).",
        SHARD_POLL.as_secs(),
        args.shard_wait
    );
    let started = Instant::now();
    let mut said = Instant::now();
    // the last finished journal checked against the target registry, and when
    let mut checked: Option<(Journal, Instant)> = None;
    loop {
        let journal = runtime.block_on(journals.load())?;
        let state = match &journal {
            None => "no journal yet: shard 0 has not begun the registry steps".to_owned(),
            Some(j) if !j.finished => {
                format!("{} of {} step(s) done", j.done.len(), plan.steps.len())
            }
            Some(_) => {
                "done in an earlier apply of this plan, whose registrations the target lost since"
                    .to_owned()
            }
        };
        if let Some(j) = journal.filter(|j| j.finished)
            && checked
                .as_ref()
                .is_none_or(|(c, at)| *c != j || at.elapsed() >= SHARD_SAY_EVERY)
        {
            let (target, _) = runtime.block_on(gather::target_snapshot(cfg))?;
            let absent = apply::done_but_absent(plan, &j, &target);
            if absent.is_empty() {
                println!(
                    "Shard {shard}: the registry half is done (journal `{shown}`, waited {} s); the records are rewritten through its ID map.",
                    started.elapsed().as_secs()
                );
                return Ok(apply::final_id_map(plan, &j.assigned_ids));
            }
            if target.fingerprint() != plan.target_fingerprint {
                anyhow::bail!(
                    "the target registry lost {} registration(s) shard 0's apply of this plan made (journal `{shown}`): {}; its ID map no longer holds, and no topic data was written\nhint: rerun shard 0 (`kafka-backup apply {} -c {} --shard 0/{}`), which says how the target moved, or make the plan again against the target as it is now and restart every shard with it",
                    absent.len(),
                    first_five(&absent),
                    plan_path(args),
                    args.config.display(),
                    shard.count
                );
            }
            if checked.is_none() {
                println!(
                    "Shard {shard}: the journal is of an earlier apply of this plan whose registrations the target lost ({}); the target registry is back in the state the plan was made against: waiting for shard 0 to apply it again.",
                    first_five(&absent)
                );
            }
            checked = Some((j, Instant::now()));
        }
        if started.elapsed() >= Duration::from_secs(args.shard_wait) {
            anyhow::bail!(
                "shard {shard} waited {} s for shard 0 to apply the registry steps of the plan (journal `{shown}`: {state}); no topic data was written\nhint: start shard 0 (`kafka-backup apply {} -c {} --shard 0/{}`) or see why it stopped, then rerun this shard; `--shard-wait SECS` waits longer",
                args.shard_wait,
                plan_path(args),
                args.config.display(),
                shard.count
            );
        }
        if said.elapsed() >= SHARD_SAY_EVERY {
            println!(
                "Shard {shard}: still waiting for shard 0's registry steps ({state}), {} s so far.",
                started.elapsed().as_secs()
            );
            said = Instant::now();
        }
        std::thread::sleep(SHARD_POLL);
    }
}

/// The plan file of the command line, as shown in hints.
fn plan_path(args: &ApplyArgs) -> String {
    args.plan
        .as_ref()
        .map_or_else(|| "PLAN".to_owned(), |p| p.display().to_string())
}

/// The data half: every backed-up topic into the target cluster (with
/// `--shard`, the shard's partitions of them).
fn restore_data(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    id_map: Option<&IdMap>,
    args: &ApplyArgs,
    shard: Option<Shard>,
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
    let jobs = match shard {
        Some(shard) => {
            let mine = shard::narrow(&jobs, shard);
            print!("{}", shard::describe(shard, &jobs, &mine));
            if mine.is_empty() {
                println!("Topics: nothing to restore in shard {shard}.");
                return Ok(());
            }
            mine
        }
        None => jobs,
    };
    if args.plan.is_some() {
        // `apply -c` showed them before asking
        for job in &jobs {
            println!("topic `{}` -> `{}`:", job.source, job.target);
            print_fields(job);
        }
    }
    let cluster = restore::target_cluster(cfg)?;
    let journals =
        DataJournalStore::new(store.clone(), backup_id, &restore::cluster_key(&cluster)?)
            .for_shard(shard);
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
    )
    .for_shard(shard);
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
