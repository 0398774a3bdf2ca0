//! `kafka-backup put-back -c CONFIG`: puts back the temporary modes and
//! compatibility levels that interrupted applies of the configuration's backup
//! left in its target registry (an apply killed with SIGKILL, or on a lost
//! machine), and registers nothing. `apply` does the same before anything
//! else; this command is for when the target must be made whole now and the
//! restore finished later, or not at all.

use std::process::ExitCode;

use anyhow::Context;

use super::PutBackArgs;
use super::apply::{registry_lease, target_name};
use crate::apply::{self, Journal, JournalStore};
use crate::config::Config;
use crate::plan::Plan;
use crate::planfile;
use crate::registry::HttpRegistry;
use crate::storage::{Location, Store};

pub fn run(args: &PutBackArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config, "put-back", crate::config::Mode::Restore)?;
    let cfg = &loaded.config;
    if !cfg.enterprise.schema_registry.enabled {
        anyhow::bail!(
            "`enterprise.schema_registry.enabled` is off in `{}`: an apply of it changes no registry, so there is nothing to put back",
            args.config.display()
        );
    }
    let backup_id = super::backup_id(
        cfg,
        "put-back",
        "the journals of the applies to put back are kept beside the backup",
    )?;
    let store = Location::from_config(cfg.storage.as_ref())?.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let lease = if args.dry_run {
        None
    } else {
        Some(registry_lease(
            cfg,
            &runtime,
            &store,
            "put-back",
            args.force_unlock,
        )?)
    };
    let result = interrupted(cfg, &runtime, &store, &backup_id, None, args.dry_run);
    if let Some(lease) = lease {
        runtime.block_on(lease.release());
    }
    let (found, left) = result?;
    let target = target_name(cfg);
    if !left.is_empty() {
        say!(
            "error: {} temporary setting(s) are still in `{target}`:{}\nhint: rerun `kafka-backup put-back -c {}` once the registry answers",
            left.len(),
            left.iter()
                .map(|l| format!("\n  - {l}"))
                .collect::<String>(),
            args.config.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.dry_run && found > 0 {
        println!("Dry run: nothing was changed.");
    } else {
        println!("Nothing temporary is left in `{target}` by an apply of backup `{backup_id}`.");
    }
    Ok(ExitCode::SUCCESS)
}

/// An unfinished apply journal of this backup and target whose temporary
/// settings are not all put back.
pub(super) struct Interrupted {
    pub journals: JournalStore,
    pub journal: Journal,
    pub plan: Plan,
    /// Its plan's digest, shortened for people.
    pub short: String,
}

impl Interrupted {
    /// The put-back steps still to run.
    pub fn pending(&self) -> Vec<&crate::plan::Step> {
        apply::outstanding(&self.plan, &self.journal)
    }
}

/// The unfinished journals of applies of this backup (killed, or on a lost
/// machine) that left temporary settings in this target registry, except the
/// one of the plan `except`.
pub(super) fn find(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    except: Option<&str>,
) -> anyhow::Result<Vec<Interrupted>> {
    let target = target_name(cfg);
    let mut out = Vec::new();
    for digest in runtime.block_on(apply::journal::applied_plans(store, backup_id, &target))? {
        if Some(digest.as_str()) == except {
            continue;
        }
        let mut journals = JournalStore::new(store.clone(), backup_id, &target, &digest);
        let Some(journal) = runtime.block_on(journals.load())? else {
            continue;
        };
        if journal.finished || journal.target.as_deref() != Some(target.as_str()) {
            continue;
        }
        let Some(bytes) = runtime.block_on(journals.load_plan())? else {
            anyhow::bail!(
                "the apply journal `{}` is unfinished and has no plan beside it, so the temporary settings it may have left in `{target}` cannot be known\nhint: check the target's modes and compatibility levels by hand, then delete `{}`",
                journals.display("journal.json"),
                journals.display("")
            );
        };
        let plan = planfile::read(&bytes)
            .with_context(|| format!("reading `{}`", journals.display("plan.json")))?;
        let found = Interrupted {
            journals,
            journal,
            plan,
            short: digest[..digest.len().min(12)].to_owned(),
        };
        if !found.pending().is_empty() {
            out.push(found);
        }
    }
    Ok(out)
}

/// Puts back what interrupted applies of this backup left temporary in this
/// target registry (see [`find`]). With `dry_run`, only says so. Returns how
/// many temporary settings were found, and those still in the target after
/// the put-back (empty: none is left).
pub(super) fn interrupted(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    backup_id: &str,
    except: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<(usize, Vec<String>)> {
    let mut client = None;
    let mut found = 0;
    let mut left = Vec::new();
    for mut run in find(cfg, runtime, store, backup_id, except)? {
        let pending = run.pending().len();
        found += pending;
        let journal_file = run.journals.display("journal.json");
        if dry_run {
            println!(
                "An interrupted apply (plan {}, journal `{journal_file}`) left {pending} temporary setting(s) in the target; they would be put back:",
                run.short
            );
            for step in run.pending() {
                println!("  {}", apply::describe(step));
            }
            continue;
        }
        say!(
            "an interrupted apply (plan {}, journal `{journal_file}`) left {pending} temporary setting(s) in the target; putting them back",
            run.short
        );
        let client = match &client {
            Some(c) => c,
            None => client.insert(HttpRegistry::new(&cfg.enterprise.schema_registry)?),
        };
        let mut log = |line: String| say!("{line}");
        let done = runtime.block_on(apply::put_back_interrupted(
            client,
            &run.plan,
            &mut run.journal,
            &mut log,
        ));
        for line in &done.lines {
            say!("  put back: {line}");
        }
        runtime.block_on(run.journals.save(&run.journal))?;
        left.extend(done.left);
    }
    Ok((found, left))
}
