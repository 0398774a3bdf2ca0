//! `kafka-backup plan -c FILE`: read the backup's registry snapshot and the
//! live target, plan the changes, print them and write the plan file.
//! `kafka-backup show FILE`: render a saved plan.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;

use super::{PlanArgs, PlanFormat, ShowArgs};
use crate::config;
use crate::gather;
use crate::model::SubjectState;
use crate::plan::{self, Change, Plan, PlanOptions, render};
use crate::planfile;
use crate::registry::{HttpRegistry, RegistryApi, SchemaInput, VersionRef};

/// Exit code of `--detailed-exitcode` when the plan has changes.
const CHANGES: u8 = 2;

/// What a plan covers besides the registry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// The registry alone (`--registry-only`): the topics are not restored,
    /// so a `target.topics` selecting none of them is no error.
    RegistryOnly,
    /// The topics too, but not the consumer groups (`verify` checks them on
    /// its own).
    NoGroups,
    /// Everything, the consumer groups' offsets planned for a restore with
    /// this `--to-timestamp`.
    All { to_timestamp: Option<i64> },
}

/// Plans the restore the configuration describes: the backup's registry
/// snapshot against the live target, the topics, and (for [`Scope::All`])
/// the consumer groups' offsets. Returns the plan and the target snapshot.
pub(crate) fn make(
    cfg: &config::Config,
    runtime: &tokio::runtime::Runtime,
    scope: Scope,
) -> anyhow::Result<(Plan, crate::model::RegistrySnapshot)> {
    let registry_only = matches!(scope, Scope::RegistryOnly);
    let restore = &cfg.enterprise.schema_registry.restore;
    let pinned = match &restore.id_mapping_file {
        Some(path) => {
            let bytes = std::fs::read(path.as_str())
                .with_context(|| format!("cannot read `id_mapping_file` `{path}`"))?;
            plan::parse_id_mapping_file(&bytes)
                .with_context(|| format!("`id_mapping_file` `{path}` is not valid"))?
        }
        None => Default::default(),
    };
    let options = PlanOptions::from_restore(restore, pinned);
    let (backup, _) = runtime.block_on(gather::backup_snapshot(cfg))?;
    let (target, requests) = runtime.block_on(gather::target_snapshot(cfg))?;
    tracing::info!(
        requests,
        subjects = target.subjects.len(),
        "target registry read"
    );
    let mut plan = plan::plan(&backup, &target, &options)?;
    if cfg.enterprise.schema_registry.restore.enabled {
        // what the target cannot run is a conflict now, not a failure mid-apply
        let client = HttpRegistry::new(&cfg.enterprise.schema_registry)?;
        let caps = runtime
            .block_on(crate::registry::capabilities(&client))
            .context("learning what the target registry supports")?;
        plan.conflicts
            .extend(plan::capabilities::check(&plan, &caps));
        plan.capabilities = Some(caps);
    }
    // the topics: which IDs their records carry that the map will not cover
    let store = crate::storage::Location::from_config(cfg.storage.as_ref())?.open()?;
    let backup_id = super::backup_id(cfg, "plan", "the backup to restore")?;
    let reader = runtime.block_on(crate::manifest::BackupReader::open(&store, &backup_id))?;
    let evidence = crate::restore::Evidence::of(&backup);
    let jobs = match crate::restore::jobs(cfg, &reader.manifest, None, None, &evidence) {
        Err(crate::restore::RestoreError::NoTopicSelected { .. }) if registry_only => Vec::new(),
        other => other?,
    };
    plan.topics = plan::topics::check(&plan, &jobs, &backup, &reader.manifest, restore);
    if let Scope::All { to_timestamp } = scope {
        plan_groups(
            cfg,
            runtime,
            &store,
            &reader,
            &mut plan,
            to_timestamp,
            &evidence,
        )?;
    }
    Ok((plan, target))
}

/// The consumer groups' offsets: where each committed offset lands in the
/// target, from the offset map of partitions already restored, predicted
/// from the backup and the target partition's end otherwise (with the
/// restore's transform: the records it leaves out move what follows).
fn plan_groups(
    cfg: &config::Config,
    runtime: &tokio::runtime::Runtime,
    store: &crate::storage::Store,
    reader: &crate::manifest::BackupReader,
    plan: &mut Plan,
    to_timestamp: Option<i64>,
    evidence: &crate::restore::Evidence,
) -> anyhow::Result<()> {
    use crate::restore::{self, groups};
    let selection = groups::selection(cfg);
    if reader.manifest.consumer_groups.is_empty() || !selection.enabled || cfg.target.is_none() {
        return Ok(());
    }
    // the IDs the restore will map: known now or assigned by a registration
    // (as `apply::final_id_map` will have them; the target IDs themselves do
    // not matter here, which records are left out depends on coverage alone)
    let covered: crate::apply::IdMap = plan
        .id_mapping
        .iter()
        .map(|(ctx, ids)| {
            let mapped = ids
                .iter()
                .filter(|(_, e)| e.target_id != plan::TargetId::Unmapped)
                .map(|(&id, _)| (id, id));
            (ctx.clone(), mapped.collect())
        })
        .collect();
    let jobs = restore::jobs(
        cfg,
        &reader.manifest,
        Some(&covered),
        to_timestamp,
        evidence,
    )?;
    let wanted = groups::wanted(&selection, &reader.manifest, &jobs);
    if wanted.is_empty() {
        return Ok(());
    }
    let cluster = restore::target_cluster(cfg)?;
    let key = restore::cluster_key(&cluster)?;
    let backup_id = &reader.manifest.backup_id;
    let journal =
        runtime.block_on(restore::DataJournalStore::new(store.clone(), backup_id, &key).load())?;
    let map = runtime.block_on(
        restore::offsets::OffsetMapStore::new(store.clone(), backup_id, &key)
            .load(journal.as_ref()),
    )?;
    let inputs = runtime
        .block_on(groups::inputs(
            &cluster,
            &jobs,
            wanted,
            journal.as_ref(),
            &map,
            groups::Source::Predicted { reader },
        ))
        .context("planning the consumer groups' offsets")?;
    let (planned, conflicts) = plan::groups::plan(&inputs);
    plan.groups = planned;
    plan.conflicts.extend(conflicts);
    plan.to_timestamp = to_timestamp;
    Ok(())
}

pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config, "plan", crate::config::Mode::Restore)?;
    let cfg = &loaded.config;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let scope = Scope::All {
        to_timestamp: args.to_timestamp,
    };
    let (plan, target) = make(cfg, &runtime, scope)?;
    let sr = &cfg.enterprise.schema_registry;
    if sr.enabled && sr.restore.enabled && refuse_temporary_target(cfg, &runtime, args)? {
        return Ok(ExitCode::FAILURE);
    }

    if let Some(out) = &args.out {
        let bytes = planfile::write(&plan);
        write_atomically(out, &bytes)
            .with_context(|| format!("cannot write the plan file `{}`", out.display()))?;
        say!("plan written to `{}`", out.display());
    }
    let artefact = args.out.as_ref().map(|p| p.display().to_string());
    print!("{}", rendered(&plan, args.format, artefact.as_deref()));

    let mut refused = 0;
    if args.check_compatibility {
        let client = HttpRegistry::new(&cfg.enterprise.schema_registry)?;
        refused = runtime.block_on(check_compatibility(&client, &plan, &target.subjects))?;
    }
    if !plan.conflicts.is_empty() {
        say!(
            "error: the plan has {} conflict(s); `apply` will refuse it\nhint: resolve them in the target, or choose another `strategy`, `subject_mapping` or ID option",
            plan.conflicts.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(t) = plan.topics.iter().find(|t| t.fails()) {
        say!(
            "error: records of `{}` carry schema IDs the restore cannot map, and its `missing_id_policy` is `fail`: `apply` will refuse this plan before writing anything\nhint: restore the subjects that hold them (see the causes above), or set `missing_id_policy_topics.\"{}\"` to `skip` or `passthrough`",
            t.topic,
            t.topic
        );
        return Ok(ExitCode::FAILURE);
    }
    if refused > 0 {
        say!(
            "error: the target would refuse {refused} registration(s) under its compatibility levels"
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.detailed_exitcode && plan.has_changes() {
        return Ok(ExitCode::from(CHANGES));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether interrupted applies of this backup left temporary settings in the
/// target: a plan made against them would take them for the target's own
/// (and keep them), so none is written.
fn refuse_temporary_target(
    cfg: &config::Config,
    runtime: &tokio::runtime::Runtime,
    args: &PlanArgs,
) -> anyhow::Result<bool> {
    let store = crate::storage::Location::from_config(cfg.storage.as_ref())?.open()?;
    let backup_id = super::backup_id(cfg, "plan", "the backup to restore")?;
    let left = super::put_back::find(cfg, runtime, &store, &backup_id, None)?;
    if left.is_empty() {
        return Ok(false);
    }
    let mut listed = String::new();
    for run in &left {
        for step in run.pending() {
            listed.push_str(&format!(
                "\n  - {} (journal `{}`)",
                crate::apply::describe(step),
                run.journals.display("journal.json")
            ));
        }
    }
    say!(
        "error: an interrupted apply of backup `{backup_id}` left temporary settings in the target, and a plan made now would take them for the target's own:{listed}\nhint: put them back first with `kafka-backup put-back -c {}`, then plan again",
        args.config.display()
    );
    Ok(true)
}

pub fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.plan)
        .with_context(|| format!("cannot read `{}`", args.plan.display()))?;
    let plan = planfile::read(&bytes)
        .with_context(|| format!("`{}` is not a usable plan file", args.plan.display()))?;
    let artefact = args.plan.display().to_string();
    print!("{}", rendered(&plan, args.format, Some(&artefact)));
    Ok(ExitCode::SUCCESS)
}

/// `plan` in `format`; Markdown within what a pull-request comment takes,
/// pointing at `artefact` (the plan file) when it had to be summarised.
fn rendered(plan: &Plan, format: PlanFormat, artefact: Option<&str>) -> String {
    match format {
        PlanFormat::Text => render::text(plan),
        PlanFormat::Markdown => render::markdown_within(plan, render::COMMENT_LIMIT, artefact),
        PlanFormat::Json => render::json(plan),
    }
}

/// Writes to a temporary file beside `path`, then renames it: a reader never
/// sees half a plan.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-kafka-backup");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Asks the target which planned registrations it would refuse: each one into
/// a subject that already has live versions is checked against the latest
/// with `POST /compatibility/subjects/{s}/versions/latest`, under the level
/// the target has now. Prints what it finds; returns how many were refused.
async fn check_compatibility(
    client: &HttpRegistry,
    plan: &Plan,
    target: &std::collections::BTreeMap<String, SubjectState>,
) -> anyhow::Result<usize> {
    let mut refused = 0;
    let mut checked = 0;
    for step in &plan.steps {
        let Change::Register {
            subject,
            schema,
            schema_type,
            references,
            ..
        } = &step.change
        else {
            continue;
        };
        if target
            .get(subject)
            .and_then(SubjectState::latest_live)
            .is_none()
        {
            continue;
        }
        let input = SchemaInput {
            schema: schema.clone(),
            schema_type: *schema_type,
            references: references.clone(),
        };
        checked += 1;
        let result = client
            .check_compatibility(subject, VersionRef::Latest, &input)
            .await
            .with_context(|| format!("checking step {} (`{subject}`)", step.id))?;
        if !result.is_compatible {
            refused += 1;
            println!(
                "! step {}: `{subject}` would refuse this version: {}",
                step.id,
                result.messages.join("; ")
            );
        }
    }
    println!(
        "Compatibility check: {checked} registration(s) into existing subjects checked, {refused} would be refused."
    );
    Ok(refused)
}
