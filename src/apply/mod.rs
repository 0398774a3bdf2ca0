//! The applier, registry half: runs a plan's steps against the target
//! registry, journalling each one in the backup's storage, and writes the
//! final source-to-target ID map. The data half is [`crate::restore`].
//!
//! - [`executor`]: one step, idempotently (already done = success).
//! - [`journal`]: `<backup_id>/apply/<target>/<plan digest>/journal.json`,
//!   `id-map.json` and `plan.json`.
//! - [`schedule`]: which steps may run at once (`depends_on`, plus the
//!   ordering the plan's order implies: per scope, IDs, deletions).
//!
//! Steps run in the plan's order; independent branches of the graph run
//! concurrently, up to a bound (with a bound of 1, strictly one after the
//! other in plan order).
//! When a step fails, the temporary modes and levels the plan set on scopes it
//! already touched are put back (their `restore_mode` / `restore_compatibility`
//! steps run), then the failure is reported; a rerun sets them again and goes on.

pub mod executor;
pub mod journal;
pub mod schedule;

use std::collections::{BTreeSet, VecDeque};

use futures::StreamExt;
use futures::future::{self, Either};
use futures::stream::FuturesUnordered;

use crate::interrupt::Interrupt;
use crate::model::RegistrySnapshot;
use crate::plan::{Change, IdMapEntry, Plan, Step, StepKind, TargetId};
use crate::registry::{RegistryApi, RegistryError};
pub use executor::{Registration, StepDone, StepError, run_step, scope};
pub use journal::{IdMap, Journal, JournalError, JournalStore, id_map_json};
use schedule::{Schedule, Scheduler};

/// Why an apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "the plan has {0} conflict(s); it cannot be applied\nhint: resolve them (registry conflicts, or topics whose records carry schema IDs the restore cannot map under `missing_id_policy: fail`), make the plan again and review it"
    )]
    Conflicts(usize),
    #[error(
        "plan is stale: the target registry changed since the plan was made\n  planned against: {planned}\n  target now:      {current}\nhint: make the plan again and review it, or rerun with `--force` to apply it anyway"
    )]
    Stale { planned: String, current: String },
    #[error(
        "the plan file is not what the planner makes from this backup and this target with the plan's options: {what}\nhint: a plan file is reviewed, not edited: make it again with `kafka-backup plan` (it was made by kafka-backup {tool_version}; another version may plan differently) and review that one"
    )]
    NotDerived { what: String, tool_version: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{}", step_failure(.step, .error, .hint, .cleanup))]
    StepFailed {
        step: Box<Step>,
        /// The registry's answer (shown in the message, with its own hint).
        error: StepError,
        hint: Option<String>,
        /// What was put back before stopping, and what was not.
        cleanup: Box<PutBack>,
    },
    #[error(
        "stopped on request after {done} of {total} step(s); no further step was started{cleanup}\nthe same `apply` goes on from here (progress is journalled)"
    )]
    Interrupted {
        done: usize,
        total: usize,
        cleanup: Box<PutBack>,
    },
    #[error(
        "the apply journal could not be saved, so the apply stopped: {error}{cleanup}\nhint: once the storage is writable again, the same `apply` goes on (steps whose journal entry was lost are found done in the target)"
    )]
    JournalUnsaved {
        error: JournalError,
        cleanup: Box<PutBack>,
    },
}

impl ApplyError {
    /// What an early stop left temporary in the target, if anything.
    pub fn left_temporary(&self) -> &[String] {
        match self {
            ApplyError::StepFailed { cleanup, .. }
            | ApplyError::Interrupted { cleanup, .. }
            | ApplyError::JournalUnsaved { cleanup, .. } => &cleanup.left,
            _ => &[],
        }
    }
}

fn step_failure(
    step: &Step,
    source: &StepError,
    hint: &Option<String>,
    cleanup: &PutBack,
) -> String {
    let mut out = format!("step {} failed: {}", step.id, describe(step));
    let (status, code) = match source {
        StepError::Registry(e) => (e.status(), e.error_code()),
        _ => (None, None),
    };
    if let Some(s) = status {
        out.push_str(&format!(" (http {s}"));
        if let Some(c) = code {
            out.push_str(&format!(", error_code {c}"));
        }
        out.push(')');
    }
    out.push_str(&format!("\n  {}", source.to_string().replace('\n', "\n  ")));
    if let Some(h) = hint {
        out.push_str(&format!("\nhint: {h}"));
    }
    out.push_str(&cleanup.to_string());
    let transient = matches!(source, StepError::Registry(e) if e.is_transient());
    if transient {
        out.push_str(
            "\nthis can pass by itself (the registry overloaded, unhealthy, slow or unreachable): rerun the same `apply` to go on from this step (progress is journalled)",
        );
    } else {
        out.push_str(
            "\nthis will not pass by itself: a rerun fails the same way until the cause above is fixed in the configuration or the target registry; then the same `apply` goes on from this step (progress is journalled)",
        );
    }
    out
}

/// `register orders-value v3`, `set_mode orders-value`, `restore_mode global`.
pub fn describe(step: &Step) -> String {
    let kind = serde_json::to_value(step.kind())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut out = format!("{kind} {}", step.scope().name());
    if let Some(v) = step.version() {
        out.push_str(&format!(" v{v}"));
    }
    out
}

/// A hint for failures with a known cause.
fn hint_for(step: &Step, err: &StepError) -> Option<String> {
    let StepError::Registry(e) = err else {
        return None;
    };
    let forced_id = match &step.change {
        Change::Register { import_id, .. } => *import_id,
        _ => None,
    };
    match (e, forced_id) {
        (RegistryError::Incompatible(_), _) => Some(
            "the subject's compatibility level refuses this version of the backup's history: versions are registered under the level each subject is restored with (`force_register: false`); set `force_register: true` under `restore:` to register the history under a temporary `NONE` level (put back at the end), or `set_compatibility` to choose the level, and plan again".into(),
        ),
        (RegistryError::NotPermitted(f), Some(id))
            if !f.message.to_lowercase().contains("not in import mode") =>
        {
            Some(format!(
                "schema ID {id} collided: the target holds other content under ID {id} (IMPORT mode keeps source IDs); free it, pin another ID with `id_mapping_file`, or restore without `force_ids`"
            ))
        }
        _ => None,
    }
}

/// Refuses a plan with conflicts, or one made against another target state
/// (unless `force`, or a journal shows an apply of it already began).
pub fn check_applicable(
    plan: &Plan,
    current_fingerprint: &str,
    journal_exists: bool,
    force: bool,
) -> Result<(), ApplyError> {
    if !plan.is_applicable() {
        return Err(ApplyError::Conflicts(plan.blocking()));
    }
    if !force && !journal_exists && plan.target_fingerprint != current_fingerprint {
        return Err(ApplyError::Stale {
            planned: plan.target_fingerprint.clone(),
            current: current_fingerprint.to_owned(),
        });
    }
    Ok(())
}

/// Refuses a plan file that is not what the planner makes: the pure planner
/// is run again on the backup's snapshot and the target's (the one the plan
/// was made against: the caller has compared the fingerprints) with the
/// plan's own options, and every step, conflict, subject summary and ID
/// mapping must come out the same. A plan file is then a review artifact: it
/// cannot carry a step the planner would not make (its digest is a checksum,
/// not a signature, so anyone can edit a file and seal it again).
pub fn check_rederived(
    plan: &Plan,
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
) -> Result<(), ApplyError> {
    let not_derived = |what: String| ApplyError::NotDerived {
        what,
        tool_version: plan.tool_version.clone(),
    };
    let fresh = crate::plan::plan(backup, target, &plan.options)
        .map_err(|e| not_derived(format!("the planner refuses its options: {e}")))?;
    let shown = |s: &Step| format!("step {}: {}", s.id, s.line());
    let longest = plan.steps.len().max(fresh.steps.len());
    for i in 0..longest {
        match (plan.steps.get(i), fresh.steps.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                return Err(not_derived(format!(
                    "the file's {} is, as the planner makes it, {}",
                    shown(a),
                    shown(b)
                )));
            }
            (Some(a), None) => {
                return Err(not_derived(format!(
                    "the file's {} is not made by the planner",
                    shown(a)
                )));
            }
            (None, Some(b)) => {
                return Err(not_derived(format!("the file lacks {}", shown(b))));
            }
            (None, None) => unreachable!("i is below the longer length"),
        }
    }
    let parts = [
        ("conflicts", plan.conflicts != fresh.conflicts),
        ("subjects", plan.subjects != fresh.subjects),
        ("id_mapping", plan.id_mapping != fresh.id_mapping),
        ("totals", plan.totals != fresh.totals),
        (
            "backup_fingerprint",
            plan.backup_fingerprint != fresh.backup_fingerprint,
        ),
    ];
    if let Some((name, _)) = parts.iter().find(|(_, differs)| *differs) {
        return Err(not_derived(format!(
            "its `{name}` differ from what the planner makes"
        )));
    }
    Ok(())
}

/// The final source-to-target map: IDs the plan knew, and those the target
/// assigned (from the journal).
pub fn final_id_map(plan: &Plan, assigned: &IdMap) -> IdMap {
    let mut map = IdMap::new();
    for (ctx, ids) in &plan.id_mapping {
        for (source, IdMapEntry { target_id, .. }) in ids {
            if let TargetId::Known(t) = target_id {
                map.entry(ctx.clone()).or_default().insert(*source, *t);
            }
        }
    }
    for (ctx, ids) in assigned {
        map.entry(ctx.clone()).or_default().extend(ids);
    }
    map
}

/// Registrations the journal has as done that the target does not hold,
/// one `subject (ID n)` each: the target lost them since the journal was
/// written (emptied and rebuilt under the same URL). Empty when the target
/// agrees with the journal. Versions a step of the plan deletes are not
/// checked (a permanent delete leaves nothing to see).
pub fn done_but_absent(plan: &Plan, journal: &Journal, target: &RegistrySnapshot) -> Vec<String> {
    let ids = final_id_map(plan, &journal.assigned_ids);
    let deleted: BTreeSet<(&str, Option<u32>)> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.kind(), StepKind::DeleteVersion | StepKind::DeleteSubject))
        .filter_map(|s| Some((s.subject()?, s.version())))
        .collect();
    let mut absent = Vec::new();
    for step in &plan.steps {
        if step.kind() != StepKind::Register || !journal.done.contains(&step.id) {
            continue;
        }
        let Some(subject) = step.subject() else {
            continue;
        };
        if deleted.contains(&(subject, None)) || deleted.contains(&(subject, step.version())) {
            continue;
        }
        let id = step.source().and_then(|src| {
            ids.get(crate::model::context_of(&src.subject))?
                .get(&src.id)
                .copied()
        });
        let versions = target.subjects.get(subject).map(|s| &s.versions);
        let held = versions.is_some_and(|vs| match (id, step.version()) {
            (Some(id), _) => vs.values().any(|v| v.id == id),
            (None, Some(version)) => vs.contains_key(&version),
            (None, None) => !vs.is_empty(),
        });
        if !held {
            absent.push(match id {
                Some(id) => format!("`{subject}` (ID {id})"),
                None => format!("`{subject}`"),
            });
        }
    }
    absent
}

/// How an apply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The journal said the plan was applied already: nothing was sent.
    pub already_applied: bool,
    /// Steps that changed the target in this run.
    pub changed: usize,
    /// Steps whose effect was already there.
    pub already_there: usize,
    /// Steps skipped because the journal had them done.
    pub skipped: usize,
    /// The final source-to-target ID map.
    pub id_map: IdMap,
}

/// Runs the plan's steps not yet in `journal`, one at a time in plan order;
/// see [`apply_registry_concurrent`].
pub async fn apply_registry(
    api: &dyn RegistryApi,
    plan: &Plan,
    journal: Journal,
    resuming: bool,
    store: Option<&mut JournalStore>,
    dry_run: bool,
    log: &mut dyn FnMut(String),
) -> Result<Outcome, ApplyError> {
    let interrupt = Interrupt::new();
    apply_registry_concurrent(
        api, plan, journal, resuming, store, dry_run, 1, &interrupt, log,
    )
    .await
}

/// Runs the plan's steps not yet in `journal`, up to `concurrency` at once
/// (0 counts as 1), each once every step it must follow has finished (see
/// [`schedule`]); with 1, strictly in plan order. The journal is saved after
/// each step (when `store` is given) and the ID map at the end. `log`
/// receives one line per step, as it finishes. With `dry_run`, prints the
/// requests in plan order and sends nothing.
///
/// On the first failure no further step starts; the running ones are waited
/// for (and journalled when they succeed), the temporary settings are put
/// back, and the failure is returned.
///
/// When `interrupt` is requested (Ctrl-C, SIGTERM), likewise: no further step
/// starts, the running ones finish, the temporary settings are put back and
/// [`ApplyError::Interrupted`] is returned. A journal that cannot be saved
/// stops the apply the same way. Whatever ends the apply early, the
/// temporary settings are put back before it returns.
#[allow(clippy::too_many_arguments)]
pub async fn apply_registry_concurrent(
    api: &dyn RegistryApi,
    plan: &Plan,
    mut journal: Journal,
    resuming: bool,
    mut store: Option<&mut JournalStore>,
    dry_run: bool,
    concurrency: usize,
    interrupt: &Interrupt,
    log: &mut dyn FnMut(String),
) -> Result<Outcome, ApplyError> {
    let mut outcome = Outcome {
        already_applied: journal.finished,
        changed: 0,
        already_there: 0,
        skipped: 0,
        id_map: IdMap::new(),
    };
    if journal.finished {
        outcome.skipped = plan.steps.len();
        outcome.id_map = final_id_map(plan, &journal.assigned_ids);
        return Ok(outcome);
    }
    if dry_run {
        for step in &plan.steps {
            if journal.done.contains(&step.id) {
                outcome.skipped += 1;
                log(format!("step {} (done already): {}", step.id, step.line()));
                continue;
            }
            let request = step.request();
            let body = request
                .body
                .as_ref()
                .map(|b| format!(" {b}"))
                .unwrap_or_default();
            log(format!(
                "step {}: {} {}{body}",
                step.id, request.method, request.path
            ));
        }
        outcome.id_map = final_id_map(plan, &journal.assigned_ids);
        return Ok(outcome);
    }
    if let Some(s) = store.as_deref_mut() {
        s.save(&journal).await?;
    }
    let total = plan.steps.len();
    let concurrency = concurrency.max(1);
    let order = Schedule::new(&plan.steps);
    let mut scheduler = Scheduler::new(&order, |j| journal.done.contains(&plan.steps[j].id));
    outcome.skipped = plan
        .steps
        .iter()
        .filter(|s| journal.done.contains(&s.id))
        .count();
    let mut running = FuturesUnordered::new();
    // steps that finished while the journal was being saved
    let mut finished: VecDeque<(usize, Result<StepDone, StepError>)> = VecDeque::new();
    let mut failure: Option<(usize, StepError)> = None;
    let mut unsaved: Option<JournalError> = None;
    loop {
        let halted = failure.is_some() || unsaved.is_some() || interrupt.requested();
        while !halted && running.len() < concurrency {
            let Some(j) = scheduler.next_ready() else {
                break;
            };
            scheduler.start(j);
            let step = &plan.steps[j];
            running.push(async move { (j, run_step_resuming(api, step, resuming).await) });
        }
        let (j, result) = match finished.pop_front() {
            Some(done) => done,
            None => match running.next().await {
                Some(done) => done,
                None => break,
            },
        };
        let step = &plan.steps[j];
        let counted = if result.is_ok() { "done" } else { "failed" };
        crate::metrics::global()
            .steps
            .get_or_create(&crate::metrics::OutcomeLabel { outcome: counted })
            .inc();
        match result {
            Ok(done) => {
                if let Some(r) = &done.registered {
                    journal
                        .assigned_ids
                        .entry(r.source_context.clone())
                        .or_default()
                        .insert(r.source_id, r.target_id);
                }
                let what = match (&done.registered, done.already) {
                    (Some(r), true) => format!("already there (id {})", r.target_id),
                    (Some(r), false) => format!("done (id {})", r.target_id),
                    (None, true) => "already there".to_owned(),
                    (None, false) => "done".to_owned(),
                };
                if done.already {
                    outcome.already_there += 1;
                } else {
                    outcome.changed += 1;
                }
                log(format!("[{}/{total}] {}: {what}", step.id, step.line()));
                journal.done.insert(step.id);
                scheduler.finish(j);
                if let Some(s) = store.as_deref_mut().filter(|_| unsaved.is_none()) {
                    // the running steps go on meanwhile; what they finish waits
                    let save = s.save(&journal);
                    futures::pin_mut!(save);
                    let saved = loop {
                        match future::select(save.as_mut(), running.next()).await {
                            Either::Left((saved, _)) => break saved,
                            Either::Right((Some(done), _)) => finished.push_back(done),
                            Either::Right((None, _)) => break save.await,
                        }
                    };
                    if let Err(e) = saved {
                        log(format!(
                            "the journal could not be saved: no further step starts ({})",
                            e.to_string().replace('\n', " ")
                        ));
                        unsaved = Some(e);
                    }
                }
            }
            Err(source) => {
                if failure.is_none() {
                    failure = Some((j, source));
                } else {
                    log(format!(
                        "[{}/{total}] {}: failed too: {}",
                        step.id,
                        step.line(),
                        source.to_string().replace('\n', " ")
                    ));
                }
            }
        }
    }
    if let Some((j, source)) = failure {
        let step = &plan.steps[j];
        let hint = hint_for(step, &source);
        let transient = matches!(&source, StepError::Registry(e) if e.is_transient());
        let cleanup = put_back(api, plan, &mut journal, Some(step.id), transient, log).await;
        save_after_put_back(store, &journal, log).await;
        return Err(ApplyError::StepFailed {
            step: Box::new(step.clone()),
            error: source,
            hint,
            cleanup: Box::new(cleanup),
        });
    }
    if let Some(error) = unsaved {
        let cleanup = put_back(api, plan, &mut journal, None, false, log).await;
        return Err(ApplyError::JournalUnsaved {
            error,
            cleanup: Box::new(cleanup),
        });
    }
    if !scheduler.all_finished() {
        // asked to stop: every step that ran is journalled
        let done = plan
            .steps
            .iter()
            .filter(|s| journal.done.contains(&s.id))
            .count();
        let cleanup = put_back(api, plan, &mut journal, None, false, log).await;
        save_after_put_back(store, &journal, log).await;
        return Err(ApplyError::Interrupted {
            done,
            total,
            cleanup: Box::new(cleanup),
        });
    }
    debug_assert!(scheduler.all_finished(), "every step ran");
    journal.finished = true;
    outcome.id_map = final_id_map(plan, &journal.assigned_ids);
    if let Some(s) = store {
        s.save_id_map(&outcome.id_map).await?;
        s.save(&journal).await?;
    }
    Ok(outcome)
}

/// A step; when resuming, a temporary IMPORT mode refused because the scope
/// now has live subjects (the earlier run registered them) is set with `force`.
async fn run_step_resuming(
    api: &dyn RegistryApi,
    step: &Step,
    resuming: bool,
) -> Result<StepDone, StepError> {
    let first = run_step(api, step).await;
    if let Err(StepError::Registry(RegistryError::NotPermitted(_))) = &first
        && resuming
        && let Change::SetMode { force: false, .. } = &step.change
    {
        let mut forced = step.clone();
        if let Change::SetMode { force, .. } = &mut forced.change {
            *force = true;
        }
        return run_step(api, &forced).await;
    }
    first
}

/// The steps that put back a temporary mode or level the journal says was
/// set and not yet put back, in plan order: what an interrupted apply of
/// `plan` left in the target.
pub fn outstanding<'p>(plan: &'p Plan, journal: &Journal) -> Vec<&'p Step> {
    let touched = |kind: StepKind| -> BTreeSet<Option<String>> {
        plan.steps
            .iter()
            .filter(|s| s.kind() == kind && journal.done.contains(&s.id))
            .map(scope)
            .collect()
    };
    let modes = touched(StepKind::SetMode);
    let levels = touched(StepKind::SetCompatibility);
    plan.steps
        .iter()
        .filter(|step| match step.kind() {
            StepKind::RestoreMode => modes.contains(&scope(step)),
            StepKind::RestoreCompatibility => levels.contains(&scope(step)),
            _ => false,
        })
        .filter(|step| !journal.done.contains(&step.id))
        .collect()
}

/// Puts back what an apply of `plan` that stopped without doing so (killed)
/// left temporary in the target, registering nothing; the journal then says
/// so (a rerun of the same plan sets them again). The registry is asked once
/// first whether it answers at all.
pub async fn put_back_interrupted(
    api: &dyn RegistryApi,
    plan: &Plan,
    journal: &mut Journal,
    log: &mut dyn FnMut(String),
) -> PutBack {
    put_back(api, plan, journal, None, true, log).await
}

/// What putting temporary settings back did.
#[derive(Debug, Default)]
pub struct PutBack {
    /// One line per put-back step that ran or failed.
    pub lines: Vec<String>,
    /// The temporary settings still in the target, in plan order, each as
    /// the change its put-back step makes (`compatibility orders-value NONE
    /// -> (not set)`).
    pub left: Vec<String>,
    /// The registry did not answer: the settings in `left` were not all tried.
    pub unreachable: bool,
}

impl std::fmt::Display for PutBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            write!(f, "\n  put back: {line}")?;
        }
        if !self.left.is_empty() {
            let why = if self.unreachable {
                "the registry does not answer"
            } else {
                "the registry refused to put them back"
            };
            write!(
                f,
                "\n{} temporary setting(s) still in the target ({why}):",
                self.left.len()
            )?;
            for step in &self.left {
                write!(f, "\n  - {step}")?;
            }
            write!(
                f,
                "\nthe next `apply` of this backup to this target puts them back first; `kafka-backup put-back` puts them back and does nothing else"
            )?;
        }
        Ok(())
    }
}

/// Runs the put-back steps of every scope whose temporary mode or level was
/// set (and not yet put back), and takes those temporary steps out of the
/// journal so that a rerun sets them again. The step `failed` (the one that
/// stopped the apply) is not run again. With `probe_first` (the registry was
/// just found unreachable), the registry is asked once whether it answers
/// before any step is sent; a put-back step that fails because the registry
/// does not answer ends the put-back there: the rest are listed, not tried
/// (each would wait through every retry).
async fn put_back(
    api: &dyn RegistryApi,
    plan: &Plan,
    journal: &mut Journal,
    failed: Option<u32>,
    probe_first: bool,
    log: &mut dyn FnMut(String),
) -> PutBack {
    let mut out = PutBack::default();
    let pending = outstanding(plan, journal);
    if pending.is_empty() {
        return out;
    }
    if probe_first && let Err(e) = api.answers().await {
        log(format!(
            "warning: the registry does not answer ({}): {} temporary setting(s) not put back",
            e.to_string().replace('\n', " "),
            pending.len()
        ));
        out.left = pending.iter().map(|s| change(s)).collect();
        out.unreachable = true;
        return out;
    }
    let mut restored: Vec<(StepKind, Option<String>)> = Vec::new();
    for (i, step) in pending.iter().enumerate() {
        let temp_kind = match step.kind() {
            StepKind::RestoreMode => StepKind::SetMode,
            _ => StepKind::SetCompatibility,
        };
        if Some(step.id) == failed {
            out.left.push(change(step));
            continue;
        }
        match run_step(api, step).await {
            Ok(_) => {
                out.lines.push(format!("step {}: {}", step.id, step.line()));
                restored.push((temp_kind, scope(step)));
            }
            Err(e) => {
                let line = format!(
                    "step {} ({}) could not run: {}",
                    step.id,
                    describe(step),
                    e.to_string().replace('\n', " ")
                );
                log(format!("warning: {line}"));
                out.lines.push(line);
                out.left.push(change(step));
                if matches!(&e, StepError::Registry(r) if r.is_transient()) {
                    // the registry stopped answering: the rest would wait through every retry too
                    out.unreachable = true;
                    out.left.extend(pending[i + 1..].iter().map(|s| change(s)));
                    break;
                }
            }
        }
    }
    for (kind, sc) in restored {
        for s in plan
            .steps
            .iter()
            .filter(|s| s.kind() == kind && scope(s) == sc)
        {
            journal.done.remove(&s.id);
        }
    }
    out
}

/// The change a put-back step makes: `compatibility orders-value NONE -> (not set)`.
fn change(step: &Step) -> String {
    step.summary()
}

/// Saves the journal after a put-back, when it can: if it cannot, the next
/// apply finds the temporary settings recorded as set and puts them back
/// again, which is harmless.
async fn save_after_put_back(
    store: Option<&mut JournalStore>,
    journal: &Journal,
    log: &mut dyn FnMut(String),
) {
    if let Some(s) = store
        && let Err(e) = s.save(journal).await
    {
        log(format!(
            "warning: the journal could not be saved after the put-back ({}); the next apply puts the same settings back again",
            e.to_string().replace('\n', " ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::model::{Compatibility, DEFAULT_CONTEXT, Mode, RegistrySnapshot};
    use crate::plan::{PlanOptions, plan};
    use crate::registry::{
        CompatibilityCheck, Failure, RegisterRequest, Registered, SchemaInput, SchemaRecord,
        SchemasQuery, VersionRef,
    };

    /// Records every write; `lookup` finds nothing unless told; the writes
    /// whose description starts with `fail` are refused with `code`. With
    /// `yields`, every call (lookups too) yields that many times (plus a
    /// little, varying per call) before it answers, and `events` records
    /// `start <key>` and `end <key>` around it (see [`key_of`]). From the
    /// first write starting with `down_from` on, every call (that one too,
    /// and `answers`) fails as an unreachable registry does. The first write
    /// starting with `hook`'s prefix runs its function first.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<String>>,
        found: Option<SchemaRecord>,
        fail: Option<(&'static str, i64)>,
        next_id: Mutex<u32>,
        yields: usize,
        events: Mutex<Vec<String>>,
        in_flight: Mutex<(usize, usize)>,
        down_from: Option<&'static str>,
        down: std::sync::atomic::AtomicBool,
        hook: Option<(&'static str, Hook)>,
        hooked: std::sync::atomic::AtomicBool,
    }

    type Hook = Box<dyn Fn() + Send + Sync>;

    fn unreachable(call: String) -> RegistryError {
        RegistryError::Connect(Box::new(Failure {
            method: "X".into(),
            path: call,
            status: None,
            code: None,
            message: "connection refused".into(),
            attempts: 5,
        }))
    }

    /// What [`Fake`] calls a step's requests in `events`.
    fn key_of(step: &Step) -> String {
        let scope = scope(step);
        match &step.change {
            Change::Register {
                subject, schema, ..
            } => format!("register {subject} {schema}"),
            Change::RestoreMode { after: None, .. } => format!("delete_mode {scope:?}"),
            Change::SetMode { to: m, .. } | Change::RestoreMode { after: Some(m), .. } => {
                format!("set_mode {scope:?} {m:?}")
            }
            Change::RestoreCompatibility { after: None, .. } => format!("delete_config {scope:?}"),
            Change::SetCompatibility { .. } => format!("set_config {scope:?} None"),
            Change::RestoreCompatibility { after: Some(c), .. } => {
                format!("set_config {scope:?} {c:?}")
            }
            Change::DeleteVersion {
                subject,
                version,
                permanent,
                ..
            } => format!("delete {subject} {:?} {permanent}", Some(version)),
            Change::SoftDeleteVersion {
                subject, version, ..
            } => format!("delete {subject} {:?} false", Some(version)),
            Change::DeleteSubject {
                subject, permanent, ..
            } => format!("delete {subject} None {permanent}"),
        }
    }

    impl Fake {
        /// Around one call: `start`, yields, `end`.
        async fn span(&self, key: String) {
            if self.yields == 0 {
                return;
            }
            self.events.lock().unwrap().push(format!("start {key}"));
            {
                let mut f = self.in_flight.lock().unwrap();
                f.0 += 1;
                f.1 = f.1.max(f.0);
            }
            for _ in 0..self.yields + key.len() % 3 {
                tokio::task::yield_now().await;
            }
            self.in_flight.lock().unwrap().0 -= 1;
            self.events.lock().unwrap().push(format!("end {key}"));
        }
        fn max_in_flight(&self) -> usize {
            self.in_flight.lock().unwrap().1
        }
        fn events(&self) -> Vec<String> {
            self.events.lock().unwrap().clone()
        }
        fn record(&self, call: String) -> crate::registry::Result<()> {
            use std::sync::atomic::Ordering::SeqCst;
            self.calls.lock().unwrap().push(call.clone());
            if let Some((prefix, f)) = &self.hook
                && call.starts_with(prefix)
                && !self.hooked.swap(true, SeqCst)
            {
                f();
            }
            if self.down_from.is_some_and(|p| call.starts_with(p)) {
                self.down.store(true, SeqCst);
            }
            if self.down.load(SeqCst) {
                return Err(unreachable(call));
            }
            match self.fail {
                Some((prefix, code)) if call.starts_with(prefix) => {
                    Err(RegistryError::from_response(Failure {
                        method: "X".into(),
                        path: call,
                        status: Some(match code {
                            40901 => 409,
                            50001..=50003 => 500,
                            _ => 422,
                        }),
                        code: Some(code),
                        message: "refused".into(),
                        attempts: 1,
                    }))
                }
                _ => Ok(()),
            }
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl RegistryApi for Fake {
        async fn answers(&self) -> crate::registry::Result<()> {
            self.calls.lock().unwrap().push("answers".into());
            match self.down.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err(unreachable("answers".into())),
                false => Ok(()),
            }
        }
        async fn subjects(&self, _: bool) -> crate::registry::Result<Vec<String>> {
            unimplemented!()
        }
        async fn versions(&self, _: &str, _: bool) -> crate::registry::Result<Vec<u32>> {
            unimplemented!()
        }
        async fn version(
            &self,
            _: &str,
            _: VersionRef,
            _: bool,
        ) -> crate::registry::Result<SchemaRecord> {
            unimplemented!()
        }
        async fn schemas_page(
            &self,
            _: &SchemasQuery,
        ) -> crate::registry::Result<Vec<SchemaRecord>> {
            unimplemented!()
        }
        async fn config(&self, _: Option<&str>) -> crate::registry::Result<Option<Compatibility>> {
            unimplemented!()
        }
        async fn mode(&self, _: Option<&str>) -> crate::registry::Result<Option<Mode>> {
            unimplemented!()
        }
        async fn contexts(&self) -> crate::registry::Result<Vec<String>> {
            unimplemented!()
        }
        async fn server_version(&self) -> crate::registry::Result<Option<String>> {
            unimplemented!()
        }
        async fn register(
            &self,
            subject: &str,
            request: &RegisterRequest,
        ) -> crate::registry::Result<Registered> {
            self.span(format!("register {subject} {}", request.schema.schema))
                .await;
            self.record(format!("register {subject} {:?}", request.id))?;
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            Ok(Registered {
                id: request.id.unwrap_or(*next),
                version: None,
            })
        }
        async fn lookup(
            &self,
            subject: &str,
            schema: &SchemaInput,
            _: bool,
            _: bool,
        ) -> crate::registry::Result<Option<SchemaRecord>> {
            self.span(format!("register {subject} {}", schema.schema))
                .await;
            Ok(self.found.clone())
        }
        async fn check_compatibility(
            &self,
            _: &str,
            _: VersionRef,
            _: &SchemaInput,
        ) -> crate::registry::Result<CompatibilityCheck> {
            unimplemented!()
        }
        async fn set_config(
            &self,
            scope: Option<&str>,
            level: Compatibility,
        ) -> crate::registry::Result<()> {
            self.span(format!("set_config {scope:?} {level:?}")).await;
            self.record(format!("set_config {scope:?} {level:?}"))
        }
        async fn delete_config(&self, scope: Option<&str>) -> crate::registry::Result<()> {
            self.span(format!("delete_config {scope:?}")).await;
            self.record(format!("delete_config {scope:?}"))
        }
        async fn set_mode(
            &self,
            scope: Option<&str>,
            mode: Mode,
            force: bool,
        ) -> crate::registry::Result<()> {
            self.span(format!("set_mode {scope:?} {mode:?}")).await;
            self.record(format!("set_mode {scope:?} {mode:?} {force}"))
        }
        async fn delete_mode(&self, scope: Option<&str>) -> crate::registry::Result<()> {
            self.span(format!("delete_mode {scope:?}")).await;
            self.record(format!("delete_mode {scope:?}"))
        }
        async fn delete_subject(&self, s: &str, p: bool) -> crate::registry::Result<Vec<u32>> {
            self.span(format!("delete {s} None {p}")).await;
            self.record(format!("delete_subject {s} {p}"))
                .map(|_| vec![])
        }
        async fn delete_version(&self, s: &str, v: u32, p: bool) -> crate::registry::Result<u32> {
            self.span(format!("delete {s} Some({v}) {p}")).await;
            self.record(format!("delete_version {s} {v} {p}"))
                .map(|_| v)
        }
    }

    fn shifted(force_ids: bool) -> Plan {
        let backup: RegistrySnapshot =
            serde_json::from_str(include_str!("../../fixtures/plan/shifted-ids/backup.json"))
                .unwrap();
        // the temporary settings these tests put back
        let options = PlanOptions {
            force_ids,
            force_register: true,
            ..PlanOptions::default()
        };
        plan(&backup, &RegistrySnapshot::default(), &options).unwrap()
    }

    fn shifted_backup() -> RegistrySnapshot {
        serde_json::from_str(include_str!("../../fixtures/plan/shifted-ids/backup.json")).unwrap()
    }

    #[test]
    fn a_plan_is_applied_only_as_the_planner_makes_it() {
        let backup = shifted_backup();
        let target = RegistrySnapshot::default();
        let plan = shifted(false);
        check_rederived(&plan, &backup, &target).unwrap();

        // the tampering: a settings step turned into a permanent delete
        let mut edited = plan.clone();
        let step = edited
            .steps
            .iter_mut()
            .find(|s| s.kind() == StepKind::RestoreCompatibility)
            .unwrap();
        step.change = Change::DeleteSubject {
            subject: "orders-value".into(),
            versions: vec![1, 2],
            permanent: true,
            replace: false,
        };
        let id = step.id;
        let err = check_rederived(&edited, &backup, &target).unwrap_err();
        assert!(
            matches!(&err, ApplyError::NotDerived { what, .. } if what.contains(&format!("step {id}"))),
            "{err}"
        );

        // a step added, a step taken away, another option
        let mut added = plan.clone();
        added.steps.push(plan.steps[0].clone());
        assert!(check_rederived(&added, &backup, &target).is_err());
        let mut removed = plan.clone();
        removed.steps.pop();
        assert!(check_rederived(&removed, &backup, &target).is_err());
        let mut other = plan.clone();
        other.options.force_ids = true;
        assert!(check_rederived(&other, &backup, &target).is_err());
        // an ID mapping that sends records elsewhere
        let mut remapped = plan.clone();
        let first = remapped.id_mapping.values_mut().next().unwrap();
        let entry = first.values_mut().next().unwrap();
        entry.target_id = TargetId::Known(999);
        let err = check_rederived(&remapped, &backup, &target).unwrap_err();
        assert!(err.to_string().contains("`id_mapping`"), "{err}");
    }

    fn run(
        fake: &Fake,
        plan: &Plan,
        journal: Journal,
    ) -> (Result<Outcome, ApplyError>, Vec<String>) {
        let mut lines = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = rt.block_on(apply_registry(
            fake,
            plan,
            journal,
            false,
            None,
            false,
            &mut |l| lines.push(l),
        ));
        (result, lines)
    }

    #[test]
    fn assigned_ids_make_the_map_and_a_journalled_step_is_skipped() {
        let plan = shifted(false);
        let fake = Fake::default();
        let (outcome, _) = run(&fake, &plan, Journal::new("d"));
        let outcome = outcome.unwrap();
        assert_eq!(
            outcome.id_map[DEFAULT_CONTEXT],
            [(1, 1), (5, 2), (2, 3)].into_iter().collect()
        );
        assert_eq!(outcome.changed, plan.steps.len());

        // a rerun with steps 1-3 journalled sends only the others
        let mut journal = Journal::new("d");
        journal.done.extend([1, 2, 3]);
        journal
            .assigned_ids
            .entry(".".into())
            .or_default()
            .insert(1, 1);
        let fake = Fake::default();
        let (outcome, _) = run(&fake, &plan, journal);
        assert_eq!(outcome.unwrap().skipped, 3);
        assert!(fake.calls().iter().all(|c| !c.starts_with("set_config")));
    }

    #[test]
    fn a_schema_already_there_is_taken_not_registered_again() {
        let plan = shifted(false);
        let fake = Fake {
            found: Some(SchemaRecord {
                subject: "orders-value".into(),
                version: 1,
                id: 40,
                schema_type: crate::model::SchemaType::Avro,
                schema: String::new(),
                references: vec![],
            }),
            ..Fake::default()
        };
        let (outcome, lines) = run(&fake, &plan, Journal::new("d"));
        let outcome = outcome.unwrap();
        assert!(fake.calls().iter().all(|c| !c.starts_with("register")));
        assert_eq!(outcome.id_map[DEFAULT_CONTEXT][&1], 40);
        assert!(lines.iter().any(|l| l.contains("already there (id 40)")));
    }

    #[test]
    fn a_failed_step_puts_temporary_settings_back_and_names_the_collision() {
        let plan = shifted(true);
        assert!(plan.steps.iter().any(|s| s.kind() == StepKind::SetMode));
        let fake = Fake {
            fail: Some(("register orders-value Some(5)", 42205)),
            ..Fake::default()
        };
        let (result, _) = run(&fake, &plan, Journal::new("d"));
        let err = result.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("register orders-value v2"), "{text}");
        assert!(text.contains("http 422, error_code 42205"), "{text}");
        assert!(text.contains("schema ID 5 collided"), "{text}");
        assert!(text.contains("put back"), "{text}");
        // a collision does not pass by itself: no bare "rerun"
        assert!(
            text.contains("this will not pass by itself") && !text.contains("this can pass"),
            "{text}"
        );
        let calls = fake.calls();
        let failed = calls.iter().position(|c| c.contains("Some(5)")).unwrap();
        let after = &calls[failed + 1..];
        assert!(
            after
                .iter()
                .any(|c| c.starts_with("delete_mode") || c.starts_with("set_mode")),
            "the temporary IMPORT mode is put back: {calls:?}"
        );
    }

    #[test]
    fn a_server_error_past_the_retries_says_a_rerun_goes_on() {
        let plan = shifted(false);
        let fake = Fake {
            fail: Some(("register payments-value", 50001)),
            ..Fake::default()
        };
        let (result, _) = run(&fake, &plan, Journal::new("d"));
        let text = result.unwrap_err().to_string();
        assert!(
            text.contains("this can pass by itself") && text.contains("rerun the same `apply`"),
            "{text}"
        );
    }

    /// The calls after the first one starting with `prefix`.
    fn calls_after(fake: &Fake, prefix: &str) -> Vec<String> {
        let calls = fake.calls();
        let at = calls.iter().position(|c| c.starts_with(prefix)).unwrap();
        calls[at + 1..].to_vec()
    }

    fn is_put_back(call: &str) -> bool {
        call.starts_with("delete_config")
            || call.starts_with("delete_mode")
            || call.starts_with("set_config")
            || call.starts_with("set_mode")
    }

    #[test]
    fn a_stop_request_starts_no_further_step_and_puts_back() {
        let plan = shifted(true);
        let interrupt = Interrupt::new();
        let asked = Arc::clone(&interrupt);
        let fake = Fake {
            hook: Some(("register orders-value", Box::new(move || asked.request()))),
            ..Fake::default()
        };
        let (result, _) = run_until(&fake, &plan, 1, None, &interrupt);
        let Err(ApplyError::Interrupted {
            done,
            total,
            cleanup,
        }) = result
        else {
            panic!("{result:?}");
        };
        assert!(done < total, "{done} of {total}");
        assert!(cleanup.left.is_empty(), "{cleanup:?}");
        assert!(
            !cleanup.lines.is_empty(),
            "the temporary settings are put back"
        );
        // the running registration finished; nothing but put-backs after it
        let after = calls_after(&fake, "register orders-value");
        assert!(
            !after.is_empty() && after.iter().all(|c| is_put_back(c)),
            "{after:?}"
        );
        let text = ApplyError::Interrupted {
            done,
            total,
            cleanup,
        }
        .to_string();
        assert!(
            text.contains("stopped on request") && text.contains("put back"),
            "{text}"
        );
    }

    #[test]
    fn a_registry_down_is_probed_once_and_what_stays_temporary_is_listed() {
        let plan = shifted(true);
        let fake = Fake {
            down_from: Some("register payments-value"),
            ..Fake::default()
        };
        let (result, _) = run(&fake, &plan, Journal::new("d"));
        let err = result.unwrap_err();
        let left = err.left_temporary().to_vec();
        assert!(!left.is_empty(), "{err}");
        // one probe, not a put-back attempt per setting through every retry
        assert_eq!(calls_after(&fake, "register payments-value"), ["answers"]);
        let text = err.to_string();
        assert!(
            text.contains("still in the target (the registry does not answer)"),
            "{text}"
        );
        for step in &left {
            assert!(text.contains(&format!("  - {step}")), "{step}: {text}");
        }
        assert!(text.contains("`kafka-backup put-back`"), "{text}");
    }

    #[test]
    fn a_registry_lost_during_the_put_back_leaves_the_rest_untried() {
        // the failure is permanent, so the put-back starts without a probe;
        // its first step finds the registry gone
        let plan = shifted(true);
        let fake = Fake {
            fail: Some(("register orders-value Some(5)", 42205)),
            down_from: Some("delete_mode"),
            ..Fake::default()
        };
        let (result, _) = run(&fake, &plan, Journal::new("d"));
        let err = result.unwrap_err();
        let after = calls_after(&fake, "register orders-value Some(5)");
        assert_eq!(after.len(), 1, "one put-back step tried: {after:?}");
        assert!(!err.left_temporary().is_empty(), "{err}");
    }

    #[test]
    fn a_journal_that_cannot_be_saved_stops_the_apply_and_puts_back() {
        let plan = shifted(true);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        std::fs::create_dir(&root).unwrap();
        let store = crate::storage::Location::parse(root.to_str().unwrap())
            .unwrap()
            .open()
            .unwrap();
        let mut journals = JournalStore::new(store, "b", "http://t", "d");
        // the storage breaks after the first registration: the backup's
        // folder becomes a file, so no journal write can succeed
        let broken = root.join("b");
        let fake = Fake {
            hook: Some((
                "register orders-value",
                Box::new(move || {
                    std::fs::remove_dir_all(&broken).unwrap();
                    std::fs::write(&broken, b"").unwrap();
                }),
            )),
            ..Fake::default()
        };
        let (result, _) = run_with(&fake, &plan, 1, Some(&mut journals));
        let Err(ApplyError::JournalUnsaved { cleanup, .. }) = &result else {
            panic!("{result:?}");
        };
        assert!(
            cleanup.left.is_empty() && !cleanup.lines.is_empty(),
            "{cleanup:?}"
        );
        let after = calls_after(&fake, "register orders-value");
        assert!(
            after.iter().all(|c| is_put_back(c)),
            "no step after the failed save: {after:?}"
        );
    }

    #[test]
    fn an_incompatible_registration_hints_at_set_compatibility() {
        let plan = shifted(false);
        let fake = Fake {
            fail: Some(("register payments-value", 40901)),
            ..Fake::default()
        };
        let (result, _) = run(&fake, &plan, Journal::new("d"));
        let text = result.unwrap_err().to_string();
        assert!(text.contains("http 409, error_code 40901"), "{text}");
        assert!(text.contains("set_compatibility: NONE"), "{text}");
    }

    #[test]
    fn deletes_already_done_count_as_success() {
        let mut plan = shifted(false);
        let mut step = plan.steps[0].clone();
        step.change = Change::DeleteVersion {
            subject: "orders-value".into(),
            version: 1,
            permanent: false,
            replace: false,
        };
        plan.steps = vec![step];
        plan.id_mapping.clear();
        let fake = Fake {
            fail: Some(("delete_version", 40406)),
            ..Fake::default()
        };
        let (outcome, _) = run(&fake, &plan, Journal::new("d"));
        assert_eq!(outcome.unwrap().already_there, 1);
    }

    fn run_with(
        fake: &Fake,
        plan: &Plan,
        concurrency: usize,
        store: Option<&mut JournalStore>,
    ) -> (Result<Outcome, ApplyError>, Vec<String>) {
        run_until(fake, plan, concurrency, store, &Interrupt::new())
    }

    fn run_until(
        fake: &Fake,
        plan: &Plan,
        concurrency: usize,
        store: Option<&mut JournalStore>,
        interrupt: &Interrupt,
    ) -> (Result<Outcome, ApplyError>, Vec<String>) {
        let mut lines = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = rt.block_on(apply_registry_concurrent(
            fake,
            plan,
            Journal::new("d"),
            false,
            store,
            false,
            concurrency,
            interrupt,
            &mut |l| lines.push(l),
        ));
        (result, lines)
    }

    /// Where each step's requests start and end in `events` (first start,
    /// last end); `None` when the plan has two steps with one key.
    fn spans(plan: &Plan, events: &[String]) -> Option<Vec<(usize, usize)>> {
        let keys: Vec<String> = plan.steps.iter().map(key_of).collect();
        if keys.iter().collect::<BTreeSet<_>>().len() != keys.len() {
            return None;
        }
        let spans = keys
            .iter()
            .map(|k| {
                let start = events.iter().position(|e| *e == format!("start {k}"));
                let end = events.iter().rposition(|e| *e == format!("end {k}"));
                (
                    start.unwrap_or_else(|| panic!("{k} never ran: {events:?}")),
                    end.unwrap(),
                )
            })
            .collect();
        Some(spans)
    }

    fn applicable_fixture_plans() -> Vec<(String, Plan)> {
        schedule::tests::fixture_plans()
            .into_iter()
            .filter(|(_, p)| p.is_applicable() && p.has_changes())
            .collect()
    }

    #[test]
    fn independent_subjects_run_at_once_with_a_bound_of_4() {
        let plan = shifted(false);
        let fake = Fake {
            yields: 3,
            ..Fake::default()
        };
        let (outcome, lines) = run_with(&fake, &plan, 4, None);
        let outcome = outcome.unwrap();
        assert!(fake.max_in_flight() > 1, "{:?}", fake.events());
        assert!(fake.max_in_flight() <= 4);
        assert_eq!(outcome.changed, plan.steps.len());
        assert_eq!(lines.len(), plan.steps.len(), "one line per step");
        // IDs may come out in another order, but every source ID is mapped
        let mut sources: Vec<u32> = outcome.id_map[DEFAULT_CONTEXT].keys().copied().collect();
        sources.sort();
        assert_eq!(sources, vec![1, 2, 5]);
        let mut targets: Vec<u32> = outcome.id_map[DEFAULT_CONTEXT].values().copied().collect();
        targets.sort();
        assert_eq!(targets, vec![1, 2, 3]);
    }

    #[test]
    fn no_step_starts_before_the_steps_it_follows_have_finished() {
        let mut checked = BTreeSet::new();
        for (name, plan) in applicable_fixture_plans() {
            for bound in [2, 4, 16] {
                let fake = Fake {
                    yields: 2,
                    ..Fake::default()
                };
                let (outcome, _) = run_with(&fake, &plan, bound, None);
                outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
                let events = fake.events();
                let Some(spans) = spans(&plan, &events) else {
                    continue;
                };
                checked.insert(name.clone());
                for (j, b) in plan.steps.iter().enumerate() {
                    for (i, a) in plan.steps[..j].iter().enumerate() {
                        let same_subject_registrations = a.kind() == StepKind::Register
                            && b.kind() == StepKind::Register
                            && a.subject() == b.subject();
                        if b.depends_on.contains(&a.id) || same_subject_registrations {
                            assert!(
                                spans[i].1 < spans[j].0,
                                "{name}, bound {bound}: step {} started before step {} finished: {events:#?}",
                                b.id,
                                a.id
                            );
                        }
                    }
                }
            }
        }
        for name in ["diamond-references", "shifted-ids", "renamed-subjects"] {
            assert!(checked.contains(name), "{name} checked: {checked:?}");
        }
    }

    #[test]
    fn a_failure_with_a_bound_of_4_puts_back_and_journals_exactly_what_succeeded() {
        let plan = shifted(true);
        let fake = Fake {
            fail: Some(("register orders-value Some(5)", 42205)),
            yields: 2,
            ..Fake::default()
        };
        let store = crate::storage::Location::parse("memory:///x")
            .unwrap()
            .open()
            .unwrap();
        let mut journals = JournalStore::new(store.clone(), "b", "http://t", "d");
        let (result, lines) = run_with(&fake, &plan, 4, Some(&mut journals));
        assert!(fake.max_in_flight() > 1, "{:?}", fake.events());
        let Err(ApplyError::StepFailed { step, cleanup, .. }) = result else {
            panic!("{result:?}");
        };
        assert_eq!(step.kind(), StepKind::Register);
        assert_eq!(step.version(), Some(2));

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let journal = rt
            .block_on(JournalStore::new(store, "b", "http://t", "d").load())
            .unwrap()
            .unwrap();
        let by_id = |id: u32| plan.steps.iter().find(|s| s.id == id).unwrap();
        let number = |line: &str, prefix: &str| -> Option<u32> {
            line.strip_prefix(prefix)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let succeeded: BTreeSet<u32> = lines.iter().filter_map(|l| number(l, "[")).collect();
        let put_back: BTreeSet<u32> = cleanup
            .lines
            .iter()
            .filter_map(|l| number(l, "step "))
            .collect();
        assert!(!put_back.is_empty(), "{cleanup:?}");
        // what succeeded, but the temporary modes put back (a rerun sets them again)
        let restored: BTreeSet<Option<String>> =
            put_back.iter().map(|&id| scope(by_id(id))).collect();
        let expected: BTreeSet<u32> = succeeded
            .iter()
            .copied()
            .filter(|&id| {
                let s = by_id(id);
                !(s.kind() == StepKind::SetMode && restored.contains(&scope(s)))
            })
            .collect();
        assert_eq!(
            journal.done, expected,
            "log: {lines:#?}\ncleanup: {cleanup:?}"
        );
        assert!(!journal.done.contains(&step.id));
        assert!(!journal.finished);
        // every scope whose temporary IMPORT mode was set has its mode back
        for s in plan.steps.iter().filter(|s| s.kind() == StepKind::SetMode) {
            if !succeeded.contains(&s.id) {
                continue;
            }
            let restore = plan
                .steps
                .iter()
                .find(|r| r.kind() == StepKind::RestoreMode && scope(r) == scope(s))
                .unwrap();
            assert!(
                journal.done.contains(&restore.id) || put_back.contains(&restore.id),
                "{} not put back",
                describe(s)
            );
        }
        // nothing started after the failure but the put-back
        let calls = fake.calls();
        let failed = calls.iter().position(|c| c.contains("Some(5)")).unwrap();
        assert!(
            calls[failed + 1..]
                .iter()
                .all(|c| !c.starts_with("register")),
            "{calls:?}"
        );
    }

    #[test]
    fn a_bound_of_1_sends_the_requests_in_plan_order() {
        let mut plans = vec![shifted(false), shifted(true)];
        plans.extend(applicable_fixture_plans().into_iter().map(|(_, p)| p));
        for plan in plans {
            let sequential = Fake::default();
            let _ = run(&sequential, &plan, Journal::new("d"));
            let bounded = Fake {
                yields: 2,
                ..Fake::default()
            };
            let _ = run_with(&bounded, &plan, 1, None);
            assert_eq!(bounded.calls(), sequential.calls());
            assert_eq!(bounded.max_in_flight(), 1);
            // each step's requests end before the next step's begin, in plan order
            let events = bounded.events();
            let mut order: Vec<String> = Vec::new();
            for e in events.iter().filter_map(|e| e.strip_prefix("start ")) {
                if order.last().map(String::as_str) != Some(e) {
                    order.push(e.to_owned());
                }
            }
            let keys: Vec<String> = plan.steps.iter().map(key_of).collect();
            assert_eq!(order, keys);
        }
        // and the same with a failure: the same requests, put-back included
        let fail = Some(("register orders-value Some(5)", 42205));
        let sequential = Fake {
            fail,
            ..Fake::default()
        };
        let (a, _) = run(&sequential, &shifted(true), Journal::new("d"));
        let bounded = Fake {
            fail,
            yields: 1,
            ..Fake::default()
        };
        let (b, _) = run_with(&bounded, &shifted(true), 1, None);
        assert_eq!(bounded.calls(), sequential.calls());
        assert_eq!(a.unwrap_err().to_string(), b.unwrap_err().to_string());
    }
}
