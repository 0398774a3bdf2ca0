//! One small registry per rule: each test runs the passes before the phase
//! it checks, then that phase, and looks at the steps (one line each) and
//! at what the phase tells the next ones.

use super::*;
use crate::model::{Reference, SchemaType};
use crate::plan::{PinnedIds, diff, select};

/// An Avro record named `name`: same name, same content.
fn record(name: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","fields":[]}}"#)
}

/// Adds `subject` `version` holding `record(name)` under `id`.
fn put<'s>(
    snapshot: &'s mut RegistrySnapshot,
    subject: &str,
    version: u32,
    id: u32,
    name: &str,
) -> &'s mut SchemaVersion {
    let state = snapshot
        .subjects
        .entry(subject.to_owned())
        .or_insert_with(|| SubjectState::new(subject));
    state.versions.insert(
        version,
        SchemaVersion {
            subject: subject.to_owned(),
            version,
            id,
            schema_type: SchemaType::Avro,
            schema: record(name),
            references: Vec::new(),
            deleted: false,
        },
    );
    state.versions.get_mut(&version).unwrap()
}

/// A reference to `subject` `version`, imported as `name`.
fn reference(name: &str, subject: &str, version: i32) -> Reference {
    Reference {
        name: name.to_owned(),
        subject: subject.to_owned(),
        version,
    }
}

/// The subject's own level and mode.
fn set_own(
    snapshot: &mut RegistrySnapshot,
    subject: &str,
    level: Option<Compatibility>,
    mode: Option<Mode>,
) {
    let state = snapshot.subjects.get_mut(subject).unwrap();
    state.compatibility = level;
    state.mode = mode;
}

/// The default options with `force_register: true`: the step builder's
/// tests below predate its default, and test the temporary level `NONE`.
fn registering_by_force() -> PlanOptions {
    PlanOptions {
        force_register: true,
        ..PlanOptions::default()
    }
}

/// Runs selection and diff for restoring `backup` into `target`, and hands
/// the planner's inputs to `then`.
fn with_inputs<T>(
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
    options: &PlanOptions,
    then: impl FnOnce(Inputs<'_>) -> T,
) -> T {
    let selection = select::select(backup, target, options).unwrap();
    let decisions = diff::decide(&selection, target, options).unwrap();
    then(Inputs {
        selection: &selection,
        decisions: &decisions,
        backup,
        target,
        options,
    })
}

/// Decides the registrations for restoring `backup` into `target`, then
/// hands a fresh [`Build`] (and the target's referrers) to `phases`.
fn with_build<T>(
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
    options: &PlanOptions,
    phases: impl FnOnce(&mut Build<'_>, &Referrers) -> T,
) -> T {
    with_inputs(backup, target, options, |inputs| {
        let index = TargetIndex::new(inputs);
        let mut conflicts = inputs.decisions.conflicts.clone();
        let registrations = decide_registrations(inputs, &index, &mut conflicts);
        let mut build = Build::new(inputs, &registrations, conflicts);
        phases(&mut build, &index.referrers)
    })
}

/// The registrations decided for restoring `backup` into `target` (one line
/// each), and the conflicts found on the way.
fn registrations(
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
    options: &PlanOptions,
) -> (Vec<String>, Vec<String>) {
    with_inputs(backup, target, options, |inputs| {
        let index = TargetIndex::new(inputs);
        let mut conflicts = Vec::new();
        let registrations = decide_registrations(inputs, &index, &mut conflicts);
        let lines = registrations
            .values()
            .map(|r| {
                format!(
                    "{} -> {} v{} id {} ({:?}){}",
                    r.key,
                    r.key.target,
                    r.target_version,
                    r.target_id,
                    r.how,
                    r.import_id
                        .map_or_else(String::new, |i| format!(", sends id {i}"))
                )
            })
            .collect();
        (lines, conflict_lines(&conflicts))
    })
}

fn conflict_lines(conflicts: &[Conflict]) -> Vec<String> {
    conflicts
        .iter()
        .map(|c| format!("{:?}: {}", c.kind, c.message))
        .collect()
}

/// What the steps made so far count for (no subject summary yet: nothing unchanged).
fn totals(b: &Build) -> crate::plan::Totals {
    crate::plan::Totals::of(&b.steps.list, &[])
}

/// One line per step: id, request, what its body sets, what it waits for.
fn lines(steps: &Steps) -> Vec<String> {
    steps
        .list
        .iter()
        .map(|s| {
            let request = s.request();
            let body = match &request.body {
                None => String::new(),
                Some(b) => match (b.get("mode"), b.get("compatibility"), b.get("id")) {
                    (Some(m), _, _) => format!(" {}", m.as_str().unwrap()),
                    (_, Some(c), _) => format!(" {}", c.as_str().unwrap()),
                    (_, _, Some(id)) => format!(" id {id} v{}", b["version"]),
                    _ => String::new(),
                },
            };
            format!(
                "{} {} {}{body} after {:?}",
                s.id, request.method, request.path, s.depends_on
            )
        })
        .collect()
}

fn pinned(pairs: &[(u32, u32)]) -> PinnedIds {
    [(DEFAULT_CONTEXT.to_owned(), pairs.iter().copied().collect())].into()
}

// ---- phase 1: temporary settings ----

#[test]
fn temporary_settings_make_each_written_subject_writable() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "a-value", 1, 1, "A1");
    put(&mut backup, "a-value", 2, 2, "A2");
    put(&mut backup, "b-value", 1, 3, "B1");
    put(&mut backup, "b-value", 2, 4, "B2");
    put(&mut backup, "c-value", 1, 5, "C1");
    put(&mut backup, "d-value", 1, 6, "D1");
    let mut target = RegistrySnapshot::default();
    put(&mut target, "a-value", 1, 1, "A1");
    put(&mut target, "b-value", 1, 3, "B1");
    set_own(&mut target, "b-value", None, Some(Mode::ReadOnly));
    let options = PlanOptions {
        pinned_ids: pinned(&[(2, 200), (5, 500)]),
        ..registering_by_force()
    };
    with_build(&backup, &target, &options, |b, _| {
        b.set_temporary_settings();
        // a: pinned, with a live version (force); b: READONLY, checked;
        // c: pinned, new; d: already writable, checked
        assert_eq!(
            lines(&b.steps),
            [
                "1 PUT /mode/a-value?force=true IMPORT after []",
                "2 PUT /mode/b-value READWRITE after []",
                "3 PUT /config/b-value NONE after []",
                "4 PUT /mode/c-value IMPORT after []",
                "5 PUT /config/d-value NONE after []",
            ]
        );
        let import = Mode::Import;
        let rw = Mode::ReadWrite;
        assert_eq!(
            b.current_mode,
            [
                ("a-value", import),
                ("b-value", rw),
                ("c-value", import),
                ("d-value", rw)
            ]
            .into()
        );
        assert_eq!(b.temp_mode, ["a-value", "b-value", "c-value"].into());
        assert_eq!(b.temp_compat, ["b-value", "d-value"].into());
        assert_eq!(
            b.prepare,
            [
                ("a-value", vec![1]),
                ("b-value", vec![2, 3]),
                ("c-value", vec![4]),
                ("d-value", vec![5])
            ]
            .into()
        );
    });
}

/// Without `force_register` no level is loosened: a subject gets the level
/// it is restored with before its registrations, which are checked against
/// it, and phase 5 sets no level again; one already at it gets no step.
#[test]
fn without_force_register_registrations_run_under_the_restored_level() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "loose-value", 1, 1, "L1");
    put(&mut backup, "same-value", 1, 2, "S1");
    put(&mut backup, "pinned-value", 1, 3, "P1");
    set_own(&mut backup, "loose-value", Some(Compatibility::None), None);
    let target = RegistrySnapshot::default();
    let options = PlanOptions {
        pinned_ids: pinned(&[(3, 300)]),
        ..PlanOptions::default()
    };
    assert!(!options.force_register, "the default");
    with_build(&backup, &target, &options, |b, _| {
        b.set_temporary_settings();
        b.register_versions();
        b.put_back_subject_settings();
        // loose: the backup's NONE first; same: no level of its own in
        // either, nothing; pinned: IMPORT registrations are not checked
        assert_eq!(
            lines(&b.steps),
            [
                "1 PUT /config/loose-value NONE after []",
                "2 PUT /mode/pinned-value IMPORT after []",
                "3 POST /subjects/loose-value/versions after [1]",
                "4 POST /subjects/pinned-value/versions id 300 v1 after [2]",
                "5 POST /subjects/same-value/versions after []",
                "6 DELETE /mode/pinned-value after [2, 4]",
            ]
        );
        assert!(b.temp_compat.is_empty());
        assert_eq!(
            b.steps.list[0].line(),
            "~ compatibility loose-value (not set) -> NONE: the backup's level (NONE), set before the registrations: they are checked against it (`force_register: false`)"
        );
        // the level is the subject's for good: a change, counted once
        assert_eq!(totals(b).change, 1);
    });
}

#[test]
fn a_subject_only_deleted_from_needs_only_a_mode_that_accepts_deletes() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "e-value", 1, 1, "E1");
    put(&mut backup, "f-value", 1, 2, "F1");
    let mut target = backup.clone();
    put(&mut target, "e-value", 2, 3, "E2");
    put(&mut target, "f-value", 2, 4, "F2");
    set_own(&mut target, "e-value", None, Some(Mode::Import));
    set_own(&mut target, "f-value", None, Some(Mode::ReadOnly));
    let options = PlanOptions {
        strategy: Strategy::Overwrite,
        ..registering_by_force()
    };
    with_build(&backup, &target, &options, |b, _| {
        b.set_temporary_settings();
        // IMPORT accepts deletes; no registration, so no temporary level
        assert_eq!(lines(&b.steps), ["1 PUT /mode/f-value READWRITE after []"]);
    });
}

// ---- phase 2: deletes ----

#[test]
fn referrers_are_deleted_before_what_they_reference() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "base-value", 1, 1, "Base");
    put(&mut backup, "top-value", 1, 2, "Top").references =
        vec![reference("Base", "base-value", 1)];
    let mut target = RegistrySnapshot::default();
    put(&mut target, "base-value", 1, 1, "OldBase");
    put(&mut target, "top-value", 1, 2, "OldTop").references =
        vec![reference("Base", "base-value", 1)];
    let options = PlanOptions {
        strategy: Strategy::Overwrite,
        ..registering_by_force()
    };
    with_build(&backup, &target, &options, |b, referrers| {
        b.set_temporary_settings();
        b.delete_target_versions(referrers).unwrap();
        // whole subjects, top-value first; each deleted for good loses its
        // own level, so NONE is set again after the hard delete
        assert_eq!(
            lines(&b.steps),
            [
                "1 PUT /config/base-value NONE after []",
                "2 PUT /config/top-value NONE after []",
                "3 DELETE /subjects/top-value after [2]",
                "4 DELETE /subjects/top-value?permanent=true after [3]",
                "5 PUT /config/top-value NONE after [4]",
                "6 DELETE /subjects/base-value after [1, 4]",
                "7 DELETE /subjects/base-value?permanent=true after [6]",
                "8 PUT /config/base-value NONE after [7]",
            ]
        );
        assert!(b.conflicts.is_empty());
        assert_eq!(
            b.hard_deletes,
            [("base-value", vec![7]), ("top-value", vec![4])].into()
        );
        assert_eq!(b.prepare["base-value"], [1, 8]);
        assert_eq!(totals(b).destroy, 2);
    });
}

#[test]
fn a_target_referrer_that_stays_makes_the_delete_a_conflict() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "base-value", 1, 1, "Base");
    let mut target = backup.clone();
    put(&mut target, "base-value", 2, 2, "Base2");
    put(&mut target, "base-value", 3, 3, "Base3").deleted = true;
    put(&mut target, "other-value", 1, 4, "Other").references =
        vec![reference("Base", "base-value", 2)];
    let options = PlanOptions {
        strategy: Strategy::Overwrite,
        subjects: vec!["base-value".to_owned()],
        ..registering_by_force()
    };
    with_build(&backup, &target, &options, |b, referrers| {
        b.set_temporary_settings();
        b.delete_target_versions(referrers).unwrap();
        assert_eq!(
            conflict_lines(&b.conflicts),
            [
                "DeleteReferenced: `base-value` v2 must be deleted, but target `other-value` v1 references it and stays"
            ]
        );
        // v3 is soft-deleted already: only the hard delete
        assert_eq!(
            lines(&b.steps),
            [
                "1 DELETE /subjects/base-value/versions/2 after []",
                "2 DELETE /subjects/base-value/versions/2?permanent=true after [1]",
                "3 DELETE /subjects/base-value/versions/3?permanent=true after []",
            ]
        );
        assert_eq!(
            b.steps.list[2].line(),
            "- delete base-value v3 (hard): already soft-deleted; not in the backup"
        );
    });
}

// ---- phase 3: registrations ----

#[test]
fn a_registration_waits_for_its_references_and_its_previous_version() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "common-value", 1, 1, "Common");
    put(&mut backup, "left-value", 1, 2, "Left1").references =
        vec![reference("Common", "common-value", 1)];
    put(&mut backup, "left-value", 2, 3, "Left2").references =
        vec![reference("Common", "common-value", 1)];
    with_build(
        &backup,
        &RegistrySnapshot::default(),
        &registering_by_force(),
        |b, _| {
            b.set_temporary_settings();
            b.register_versions();
            assert_eq!(
                lines(&b.steps),
                [
                    "1 PUT /config/common-value NONE after []",
                    "2 PUT /config/left-value NONE after []",
                    "3 POST /subjects/common-value/versions after [1]",
                    "4 POST /subjects/left-value/versions after [2, 3]",
                    "5 POST /subjects/left-value/versions after [2, 3, 4]",
                ]
            );
            assert_eq!(totals(b).add, 3);
        },
    );
}

#[test]
fn a_subject_mixing_pinned_and_unpinned_ids_switches_mode_between_them() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "mix-value", 1, 1, "M1");
    put(&mut backup, "mix-value", 2, 2, "M2");
    put(&mut backup, "mix-value", 3, 3, "M3");
    let options = PlanOptions {
        pinned_ids: pinned(&[(1, 100), (3, 300)]),
        ..registering_by_force()
    };
    with_build(&backup, &RegistrySnapshot::default(), &options, |b, _| {
        b.set_temporary_settings();
        b.register_versions();
        assert_eq!(
            lines(&b.steps),
            [
                "1 PUT /mode/mix-value IMPORT after []",
                "2 PUT /config/mix-value NONE after []",
                "3 POST /subjects/mix-value/versions id 100 v1 after [1, 2]",
                "4 PUT /mode/mix-value READWRITE after [1, 2, 3]",
                "5 POST /subjects/mix-value/versions after [4]",
                "6 PUT /mode/mix-value IMPORT after [1, 2, 5]",
                "7 POST /subjects/mix-value/versions id 300 v3 after [6]",
            ]
        );
        assert_eq!(b.current_mode, [("mix-value", Mode::Import)].into());
        assert_eq!(b.temp_mode, ["mix-value"].into());
    });
}

// ---- phase 4: soft deletes ----

#[test]
fn a_version_registered_for_its_id_is_soft_deleted_after_its_referrers() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "base-value", 1, 1, "Base").deleted = true;
    put(&mut backup, "top-value", 1, 2, "Top").references =
        vec![reference("Base", "base-value", 1)];
    put(&mut backup, "gone-value", 1, 3, "Gone").deleted = true;
    let mut target = RegistrySnapshot::default();
    put(&mut target, "gone-value", 1, 3, "Gone");
    let options = PlanOptions {
        strategy: Strategy::Overwrite,
        ..registering_by_force()
    };
    with_build(&backup, &target, &options, |b, referrers| {
        b.set_temporary_settings();
        b.delete_target_versions(referrers).unwrap();
        b.register_versions();
        b.soft_delete_versions();
        // base-value v1 waits for top-value's registration (4), which
        // references it; gone-value v1 is live in the target: a change
        assert_eq!(
            lines(&b.steps),
            [
                "1 PUT /config/base-value NONE after []",
                "2 PUT /config/top-value NONE after []",
                "3 POST /subjects/base-value/versions after [1]",
                "4 POST /subjects/top-value/versions after [2, 3]",
                "5 DELETE /subjects/base-value/versions/1 after [1, 3, 4]",
                "6 DELETE /subjects/gone-value/versions/1 after []",
            ]
        );
        assert_eq!((totals(b).add, totals(b).change), (2, 1));
    });
}

// ---- phase 5: final subject settings ----

fn settings(level: Option<Compatibility>, mode: Option<Mode>) -> ScopeSettings {
    ScopeSettings {
        compatibility: level,
        mode,
    }
}

/// `s-value`'s own level and mode at the end of the plan, when the backup
/// gives it `backed_up` and the target `before` (`None`: the target does
/// not have the subject).
fn settings_after(
    backed_up: ScopeSettings,
    before: Option<ScopeSettings>,
    options: &PlanOptions,
) -> ScopeSettings {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "s-value", 1, 1, "S");
    set_own(
        &mut backup,
        "s-value",
        backed_up.compatibility,
        backed_up.mode,
    );
    let mut target = RegistrySnapshot::default();
    if let Some(before) = before {
        put(&mut target, "s-value", 1, 1, "S");
        set_own(&mut target, "s-value", before.compatibility, before.mode);
    }
    with_build(&backup, &target, options, |b, _| {
        let info = &b.inputs.selection.subjects["s-value"];
        b.final_settings("s-value", info).after
    })
}

#[test]
fn final_settings_follow_the_strategy() {
    use Compatibility::{Backward, Forward, Full};
    let strategy = |strategy| PlanOptions {
        strategy,
        ..registering_by_force()
    };
    let with_level = |strategy, level| PlanOptions {
        strategy,
        set_compatibility: Some(level),
        ..registering_by_force()
    };
    let backed_up = settings(Some(Backward), Some(Mode::ReadOnly));
    let own_level = settings(Some(Full), None);
    let cases = [
        // preserve: the backup's value only where the target has none
        (
            strategy(Strategy::Preserve),
            backed_up.clone(),
            Some(own_level.clone()),
            settings(Some(Full), Some(Mode::ReadOnly)),
        ),
        // overwrite: the backup's value, even "not set"
        (
            strategy(Strategy::Overwrite),
            settings(None, None),
            Some(settings(Some(Full), Some(Mode::ReadOnly))),
            settings(None, None),
        ),
        // skip: a subject the target has is left alone, a new one restored
        (
            strategy(Strategy::Skip),
            backed_up.clone(),
            Some(own_level.clone()),
            own_level.clone(),
        ),
        (
            strategy(Strategy::Skip),
            backed_up.clone(),
            None,
            backed_up.clone(),
        ),
        // set_compatibility replaces the level of a restored subject only
        (
            with_level(Strategy::Preserve, Forward),
            settings(Some(Backward), None),
            Some(own_level.clone()),
            settings(Some(Forward), None),
        ),
        (
            with_level(Strategy::Skip, Forward),
            settings(Some(Backward), None),
            Some(own_level.clone()),
            own_level.clone(),
        ),
    ];
    for (i, (options, backed_up, before, after)) in cases.into_iter().enumerate() {
        assert_eq!(
            settings_after(backed_up, before, &options),
            after,
            "case {i}"
        );
    }
}

#[test]
fn a_subject_pulled_in_by_a_reference_is_never_overwritten() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "base-value", 1, 1, "Base");
    set_own(&mut backup, "base-value", Some(Compatibility::Full), None);
    put(&mut backup, "top-value", 1, 2, "Top").references =
        vec![reference("Base", "base-value", 1)];
    let mut target = RegistrySnapshot::default();
    put(&mut target, "base-value", 1, 1, "Base");
    set_own(&mut target, "base-value", Some(Compatibility::None), None);
    let options = PlanOptions {
        strategy: Strategy::Overwrite,
        subjects: vec!["top-value".to_owned()],
        ..registering_by_force()
    };
    with_build(&backup, &target, &options, |b, _| {
        let info = &b.inputs.selection.subjects["base-value"];
        assert!(!info.selected);
        let after = b.final_settings("base-value", info).after;
        assert_eq!(after, settings(Some(Compatibility::None), None));
    });
}

#[test]
fn temporary_settings_are_put_back_after_every_other_step_mode_last() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "mix-value", 1, 1, "M1");
    put(&mut backup, "mix-value", 2, 2, "M2");
    set_own(&mut backup, "mix-value", Some(Compatibility::Full), None);
    let options = PlanOptions {
        pinned_ids: pinned(&[(1, 100)]),
        ..registering_by_force()
    };
    with_build(&backup, &RegistrySnapshot::default(), &options, |b, _| {
        b.set_temporary_settings();
        b.register_versions();
        b.put_back_subject_settings();
        let put_back: Vec<_> = b.steps.list[5..].iter().map(|s| s.line()).collect();
        assert_eq!(
            lines(&b.steps)[5..],
            [
                "6 PUT /config/mix-value FULL after [1, 2, 3, 4, 5]",
                "7 DELETE /mode/mix-value after [1, 2, 3, 4, 5, 6]",
            ]
        );
        assert_eq!(
            put_back,
            [
                "~ compatibility mix-value NONE -> FULL: the backup's level (FULL)",
                "~ mode mix-value READWRITE -> (not set): the subject had no mode of its own: the temporary one is removed",
            ]
        );
        // only the level ends different from the target's
        assert_eq!(totals(b).change, 1);
    });
}

// ---- phase 6: global and context settings ----

#[test]
fn global_settings_run_last_level_then_mode_per_scope() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "a-value", 1, 1, "A1");
    put(&mut backup, "a-value", 2, 2, "A2");
    backup.global = settings(Some(Compatibility::Full), Some(Mode::Import));
    let contexts = [
        (".prod", settings(Some(Compatibility::None), None)),
        (".flat", settings(Some(Compatibility::Forward), None)),
    ];
    for (ctx, s) in contexts {
        backup.context_settings.insert(ctx.to_owned(), s);
    }
    let mut target = RegistrySnapshot::default();
    put(&mut target, "a-value", 1, 1, "A1");
    target.global = settings(Some(Compatibility::Backward), Some(Mode::ReadWrite));
    let options = PlanOptions {
        restore_global_settings: true,
        context_mapping: [
            (".prod".to_owned(), ".dr".to_owned()),
            (".flat".to_owned(), DEFAULT_CONTEXT.to_owned()),
        ]
        .into(),
        ..registering_by_force()
    };
    with_build(&backup, &target, &options, |b, _| {
        b.set_temporary_settings();
        b.register_versions();
        b.put_back_subject_settings();
        b.restore_global_settings();
        // after step 3, the only step nothing waited for; `.flat` lands in
        // the default context, which is the global scope: left out
        assert_eq!(
            lines(&b.steps),
            [
                "1 PUT /config/a-value NONE after []",
                "2 POST /subjects/a-value/versions after [1]",
                "3 DELETE /config/a-value after [1, 2]",
                "4 PUT /config FULL after [3]",
                "5 PUT /mode?force=true IMPORT after [4]",
                "6 PUT /config/%3A.dr%3A NONE after [5]",
            ]
        );
        let scopes: Vec<_> = b.steps.list[3..]
            .iter()
            .map(|s| (s.subject(), s.context()))
            .collect();
        assert_eq!(scopes, [(None, None), (None, None), (None, Some(".dr"))]);
        assert_eq!(totals(b).change, 3);
    });
}

// ---- before the steps: versions and IDs ----

#[test]
fn registrations_take_the_next_version_unless_imported_into_a_free_number() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "a-value", 1, 1, "A1");
    put(&mut backup, "a-value", 3, 7, "A3");
    put(&mut backup, "b-value", 1, 9, "Shared");
    let mut target = RegistrySnapshot::default();
    put(&mut target, "a-value", 1, 1, "A1");
    put(&mut target, "other-value", 1, 42, "Shared");
    // the target holds b-value's content already: its ID is reused
    assert_eq!(
        registrations(&backup, &target, &PlanOptions::default()),
        (
            vec![
                "a-value v3 -> a-value v2 id known after apply (Assigned)".to_owned(),
                "b-value v1 -> b-value v1 id 42 (Existing)".to_owned(),
            ],
            vec![]
        )
    );
    let forced = PlanOptions {
        force_ids: true,
        ..PlanOptions::default()
    };
    assert_eq!(
        registrations(&backup, &target, &forced),
        (
            vec![
                "a-value v3 -> a-value v3 id 7 (Forced), sends id 7".to_owned(),
                "b-value v1 -> b-value v1 id 9 (Forced), sends id 9".to_owned(),
            ],
            vec![]
        )
    );
}

#[test]
fn a_forced_id_held_by_other_content_or_forced_twice_is_a_conflict() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, ":.one:a-value", 1, 5, "A");
    put(&mut backup, ":.two:b-value", 1, 5, "B");
    put(&mut backup, ":.two:c-value", 1, 6, "C");
    let mut target = RegistrySnapshot::default();
    put(&mut target, ":.dr:z-value", 1, 6, "Z");
    let options = PlanOptions {
        force_ids: true,
        context_mapping: [
            (".one".to_owned(), ".dr".to_owned()),
            (".two".to_owned(), ".dr".to_owned()),
        ]
        .into(),
        ..PlanOptions::default()
    };
    let (_, conflicts) = registrations(&backup, &target, &options);
    assert_eq!(
        conflicts,
        [
            "IdClash: `:.one:a-value v1` and `:.two:b-value v1` would both be registered as id 5 in context `.dr`, with different schemas",
            "IdTaken: `force_ids` keeps source ID 6 for `:.two:c-value v1`, but the target's context `.dr` holds 6 with another schema",
        ]
    );
}

#[test]
fn one_source_id_lands_on_one_target_id() {
    let mut backup = RegistrySnapshot::default();
    put(&mut backup, "a-value", 1, 5, "X");
    put(&mut backup, "b-value", 1, 5, "X");
    put(&mut backup, "c-value", 1, 6, "C");
    put(&mut backup, "d-value", 1, 6, "C");
    put(&mut backup, "e-value", 1, 7, "E");
    put(&mut backup, "f-value", 1, 7, "E");
    let mut target = RegistrySnapshot::default();
    put(&mut target, "a-value", 1, 10, "X");
    put(&mut target, "b-value", 1, 11, "X");
    put(&mut target, "d-value", 1, 20, "Other");
    put(&mut target, "e-value", 1, 21, "Other");
    let options = PlanOptions {
        strategy: Strategy::Skip,
        ..PlanOptions::default()
    };
    let (entries, conflicts) = with_inputs(&backup, &target, &options, |inputs| {
        let index = TargetIndex::new(inputs);
        let mut conflicts = Vec::new();
        let registrations = decide_registrations(inputs, &index, &mut conflicts);
        let map = map_ids(inputs, &registrations, &mut conflicts);
        let entries: Vec<String> = map[DEFAULT_CONTEXT]
            .iter()
            .map(|(id, e)| format!("{id} -> {} ({:?}) {:?}", e.target_id, e.how, e.used_by))
            .collect();
        (entries, conflict_lines(&conflicts))
    });
    // 5 goes to 10 and to 11: a conflict. 6 and 7 are each registered
    // from one subject and skipped in the other (mapping nowhere): no
    // conflict, whichever comes first
    assert_eq!(
        entries,
        [
            r#"5 -> 10 (Existing) ["a-value v1", "b-value v1"]"#,
            r#"6 -> known after apply (Assigned) ["c-value v1", "d-value v1"]"#,
            r#"7 -> known after apply (Assigned) ["e-value v1", "f-value v1"]"#,
        ]
    );
    assert_eq!(
        conflicts,
        ["IdDisagreement: source id 5 would point to 10 in `.` and to 11 in `.`"]
    );
}
