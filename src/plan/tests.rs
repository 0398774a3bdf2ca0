//! Fixture scenarios (`fixtures/plan/<scenario>/`: `backup.json`,
//! `target.json`, `options.yaml`, optional `id-mapping.json`), their
//! snapshots (plan file, text, Markdown), the example plans in `plans/`, and
//! the determinism properties.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::*;
use crate::model::{Mode, RegistrySnapshot, SubjectState};
use crate::planfile;

/// `options.yaml`: a `restore:` block in the configuration's syntax, plus
/// the planner's own knobs that the configuration does not have (yet).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureOptions {
    restore: RegistryRestore,
    #[serde(default)]
    plan: Knobs,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Knobs {
    include_references: Option<bool>,
    restore_global_settings: Option<bool>,
}

struct Scenario {
    name: String,
    backup: RegistrySnapshot,
    target: RegistrySnapshot,
    options: PlanOptions,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plan")
}

fn load(dir: &Path) -> Scenario {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
    };
    let fixture: FixtureOptions =
        serde_saphyr::from_str(&read("options.yaml")).expect("options.yaml");
    let pinned = match &fixture.restore.id_mapping_file {
        Some(file) => {
            parse_id_mapping_file(read(file.as_str()).as_bytes()).expect("id mapping file")
        }
        None => PinnedIds::new(),
    };
    let mut options = PlanOptions::from_restore(&fixture.restore, pinned);
    if let Some(v) = fixture.plan.include_references {
        options.include_references = v;
    }
    if let Some(v) = fixture.plan.restore_global_settings {
        options.restore_global_settings = v;
    }
    Scenario {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        backup: serde_json::from_str(&read("backup.json")).expect("backup.json"),
        target: serde_json::from_str(&read("target.json")).expect("target.json"),
        options,
    }
}

fn scenarios() -> Vec<Scenario> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("options.yaml").exists())
        .collect();
    dirs.sort();
    dirs.iter().map(|d| load(d)).collect()
}

/// The files `plans/` holds for a scenario: name to content.
fn example_files(s: &Scenario) -> Vec<(String, String)> {
    match plan(&s.backup, &s.target, &s.options) {
        Ok(p) => vec![
            (
                format!("{}.plan.json", s.name),
                String::from_utf8(planfile::write(&p)).unwrap(),
            ),
            (format!("{}.txt", s.name), render::text(&p)),
        ],
        Err(e) => vec![(format!("{}.error.txt", s.name), format!("error: {e}\n"))],
    }
}

#[test]
fn scenario_snapshots() {
    insta::glob!("../../fixtures/plan", "*/options.yaml", |path| {
        let s = load(path.parent().unwrap());
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(
            r#""tool_version": "[^"]+""#,
            r#""tool_version": "[version]""#,
        );
        settings.add_filter(r#""digest": "[0-9a-f]{64}""#, r#""digest": "[digest]""#);
        settings.add_filter(r"kafka-backup \d+\.\d+\.\d+\S*", "kafka-backup [version]");
        settings.bind(|| match plan(&s.backup, &s.target, &s.options) {
            Ok(p) => {
                insta::assert_snapshot!(
                    "plan_file",
                    String::from_utf8(planfile::write(&p)).unwrap()
                );
                insta::assert_snapshot!("text", render::text(&p));
                insta::assert_snapshot!("markdown", render::markdown(&p));
            }
            Err(e) => insta::assert_snapshot!("error", e.to_string()),
        });
    });
}

#[test]
fn example_plans_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let update = std::env::var_os("UPDATE_PLANS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    let mut expected = std::collections::BTreeSet::new();
    for s in scenarios() {
        for (name, content) in example_files(&s) {
            let path = dir.join(&name);
            expected.insert(name.clone());
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                if update {
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(&path, content).unwrap();
                } else {
                    stale.push(name);
                }
            }
        }
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".plan.json") || name.ends_with(".txt");
        if ours && !expected.contains(&name) {
            if update {
                std::fs::remove_file(dir.join(&name)).unwrap();
            } else {
                stale.push(format!("{name} (no scenario makes it)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "plans/ is out of date: {stale:?}\nregenerate with `UPDATE_PLANS=1 cargo test -p kafka-backup --lib plan::tests::example_plans_are_up_to_date`"
    );
}

/// The same state, built in another order: subjects, versions and settings
/// inserted shuffled, option lists shuffled. References keep their order
/// (it is part of a schema's meaning).
fn rebuilt(snapshot: &RegistrySnapshot, rng: &mut fastrand::Rng) -> RegistrySnapshot {
    let mut versions: Vec<_> = snapshot
        .subjects
        .values()
        .flat_map(|s| s.versions.values().cloned())
        .collect();
    rng.shuffle(&mut versions);
    let mut names: Vec<&SubjectState> = snapshot.subjects.values().collect();
    rng.shuffle(&mut names);
    let mut out = RegistrySnapshot {
        global: snapshot.global.clone(),
        server_version: snapshot.server_version.clone(),
        ..Default::default()
    };
    for s in names {
        let mut empty = SubjectState::new(s.name.clone());
        empty.compatibility = s.compatibility;
        empty.mode = s.mode;
        out.subjects.insert(s.name.clone(), empty);
    }
    for v in versions {
        out.subjects
            .get_mut(&v.subject)
            .unwrap()
            .versions
            .insert(v.version, v);
    }
    let mut contexts: Vec<_> = snapshot.contexts.iter().cloned().collect();
    rng.shuffle(&mut contexts);
    out.contexts.extend(contexts);
    let mut settings: Vec<_> = snapshot.context_settings.clone().into_iter().collect();
    rng.shuffle(&mut settings);
    out.context_settings.extend(settings);
    out
}

#[test]
fn same_inputs_give_the_same_bytes_whatever_the_order() {
    for s in scenarios() {
        let first = plan(&s.backup, &s.target, &s.options).map(|p| planfile::write(&p));
        let again = plan(&s.backup, &s.target, &s.options).map(|p| planfile::write(&p));
        assert_eq!(first, again, "{}: planning twice", s.name);
        for seed in 0..8 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let backup = rebuilt(&s.backup, &mut rng);
            let target = rebuilt(&s.target, &mut rng);
            let mut restore = RegistryRestore::default();
            let mut globs: Vec<_> = s.options.subjects.clone();
            globs.extend(s.options.subjects.iter().cloned()); // duplicates, too
            rng.shuffle(&mut globs);
            restore.subjects = crate::config::OneOrMany(
                globs
                    .iter()
                    .map(|g| crate::config::Glob::new(g).unwrap())
                    .collect(),
            );
            let mut options = PlanOptions::from_restore(&restore, s.options.pinned_ids.clone());
            options.subjects.clone_from(&s.options.subjects);
            assert_eq!(options.subjects, {
                let mut d = globs.clone();
                d.sort();
                d.dedup();
                d
            });
            let options = PlanOptions {
                subjects: options.subjects,
                ..s.options.clone()
            };
            let shuffled = plan(&backup, &target, &options).map(|p| planfile::write(&p));
            assert_eq!(first, shuffled, "{}: seed {seed}", s.name);
        }
    }
}

#[test]
fn reference_order_is_meaning() {
    let s = load(&root().join("diamond-references"));
    let before = planfile::write(&plan(&s.backup, &s.target, &s.options).unwrap());
    let mut backup = s.backup.clone();
    backup
        .subjects
        .get_mut("top-value")
        .unwrap()
        .versions
        .get_mut(&1)
        .unwrap()
        .references
        .reverse();
    let after = plan(&backup, &s.target, &s.options).unwrap();
    assert_ne!(planfile::write(&after), before);
    let register = after
        .steps
        .iter()
        .find(|st| st.subject() == Some("top-value") && st.kind() == StepKind::Register)
        .unwrap();
    let Change::Register { references, .. } = &register.change else {
        unreachable!("a registration")
    };
    let names: Vec<_> = references.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["com.acme.Right", "com.acme.Left"]);
}

/// Rules every plan keeps, checked on every scenario.
#[test]
fn every_plan_keeps_the_ordering_rules() {
    for s in scenarios() {
        let Ok(p) = plan(&s.backup, &s.target, &s.options) else {
            continue;
        };
        for (i, st) in p.steps.iter().enumerate() {
            assert_eq!(st.id as usize, i + 1, "{}: ids are positions", s.name);
            assert!(
                st.depends_on.iter().all(|d| *d < st.id),
                "{}: step {} depends on a later step",
                s.name,
                st.id
            );
            assert!(
                st.line().starts_with(st.action().symbol()),
                "{}: {}",
                s.name,
                st.line()
            );
            assert!(!st.request().path.contains("://"), "no URL in a plan");
        }
        // every temporary mode or level is followed by a final step on the same subject
        for st in &p.steps {
            let (temp, fin) = match st.kind() {
                StepKind::SetMode => (st, StepKind::RestoreMode),
                StepKind::SetCompatibility => (st, StepKind::RestoreCompatibility),
                _ => continue,
            };
            assert!(
                p.steps
                    .iter()
                    .any(|f| f.kind() == fin && f.subject() == temp.subject() && f.id > temp.id),
                "{}: step {} is never put back",
                s.name,
                temp.id
            );
        }
        // a READONLY or IMPORT mode is the last write to its subject
        for st in &p.steps {
            let sets_blocking = matches!(
                st.change,
                Change::RestoreMode {
                    after: Some(Mode::ReadOnly | Mode::Import),
                    ..
                }
            );
            if sets_blocking {
                assert!(
                    p.steps
                        .iter()
                        .all(|o| o.subject() != st.subject() || o.id <= st.id),
                    "{}: a write follows step {}",
                    s.name,
                    st.id
                );
            }
        }
        let registered = p
            .steps
            .iter()
            .filter(|s| s.kind() == StepKind::Register)
            .count();
        assert_eq!(p.totals.add, registered, "{}", s.name);
    }
}

#[test]
fn scenario_outcomes() {
    let by_name = |n: &str| {
        let s = load(&root().join(n));
        plan(&s.backup, &s.target, &s.options)
    };
    let same = by_name("same-ids").unwrap();
    assert!(!same.has_changes() && same.is_applicable());
    assert_eq!(same.totals.unchanged, 3);

    let diverged = by_name("diverged-version").unwrap();
    assert_eq!(diverged.conflicts.len(), 1);
    assert_eq!(diverged.conflicts[0].kind, ConflictKind::DivergedVersion);
    assert!(!diverged.is_applicable());

    let forced = by_name("import-collisions").unwrap();
    let kinds: Vec<_> = forced.conflicts.iter().map(|c| (c.kind, c.id)).collect();
    assert_eq!(kinds, [(ConflictKind::IdTaken, Some(5))]);

    let pinned = by_name("id-mapping-file-collision").unwrap();
    let kinds: Vec<_> = pinned.conflicts.iter().map(|c| (c.kind, c.id)).collect();
    assert_eq!(kinds, [(ConflictKind::IdTaken, Some(101))]);

    let err = by_name("missing-reference").unwrap_err();
    assert!(
        err.to_string()
            .contains("d-value v1 -> a-value v1 -> missing-value v3"),
        "{err}"
    );
    let err = by_name("cycle").unwrap_err();
    assert!(matches!(err, PlanError::Cycle { .. }), "{err}");

    let overwrite = by_name("overwrite").unwrap();
    assert_eq!((overwrite.totals.add, overwrite.totals.destroy), (1, 2));
}

/// The consumer-group section in every rendering: a set, an unchanged and a
/// clamped partition, a predicted one, a live group (a conflict), and the
/// plan file reads back with them.
#[test]
fn consumer_groups_render_in_text_markdown_and_the_plan_file() {
    use crate::kafka::groups::{Committed, GroupState};
    use crate::restore::offsets::{How, Translation};
    use groups::{Basis, Inputs, Wanted};

    let s = load(&root().join("empty-target"));
    let mut p = plan(&s.backup, &s.target, &s.options).unwrap();
    let wanted = |group: &str, partition: i32, committed: i64| Wanted {
        group: group.into(),
        topic: "orders".into(),
        target_topic: "orders-dr".into(),
        partition,
        committed,
        metadata: String::new(),
    };
    let mut inputs = Inputs {
        wanted: vec![
            wanted("billing", 0, 45),
            wanted("billing", 1, 80),
            wanted("billing", 2, 130),
            wanted("audit", 0, 12),
        ],
        ..Default::default()
    };
    let at = |target, how, basis| (Translation { target, how }, basis);
    for (partition, committed, landed) in [
        (0, 45, at(42, How::Mapped, Basis::Restored)),
        (1, 80, at(80, How::Mapped, Basis::Restored)),
        (2, 130, at(87, How::Cut, Basis::Predicted)),
        (0, 12, at(7, How::BeforeStart, Basis::Restored)),
    ] {
        inputs
            .translated
            .insert(("orders-dr".into(), partition, committed), landed);
    }
    inputs.current.insert(
        "billing".into(),
        [(
            "orders-dr".to_owned(),
            [(
                1,
                Committed {
                    offset: 80,
                    metadata: String::new(),
                },
            )]
            .into(),
        )]
        .into(),
    );
    inputs.target_state.insert(
        "audit".into(),
        GroupState {
            state: "Stable".into(),
            members: 3,
        },
    );
    let (planned, conflicts) = groups::plan(&inputs);
    p.groups = planned;
    p.conflicts.extend(conflicts);
    p.to_timestamp = Some(1_796_000_000_000);
    assert!(p.has_changes());
    assert!(!p.is_applicable(), "a live group refuses the plan");

    let text = render::text(&p);
    let section: String = text
        .lines()
        .skip_while(|l| !l.starts_with("Consumer groups"))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("groups_text", section);
    assert!(text.contains("consumer group `audit` is live in the target (Stable, 3 member(s))"));
    let md = render::markdown(&p);
    let table: String = md
        .lines()
        .skip_while(|l| !l.starts_with("#### Consumer groups"))
        .take_while(|l| !l.is_empty() || !l.starts_with("<details>"))
        .take_while(|l| !l.starts_with("<details>"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("groups_markdown", table);
    let back = planfile::read(&planfile::write(&p)).unwrap();
    assert_eq!(back.groups, p.groups);
    assert_eq!(back.to_timestamp, p.to_timestamp);
}

/// A backup of `n` subjects of one version each (the `empty-target`
/// scenario's `payments-value` under new names and IDs), into an empty target.
fn many_subjects(n: u32) -> Scenario {
    let mut s = load(&root().join("empty-target"));
    let template = s.backup.subjects["payments-value"].clone();
    s.backup.subjects.clear();
    for i in 0..n {
        let name = format!("team-{:03}.orders-{i:05}-value", i % 100);
        let mut subject = template.clone();
        subject.name = name.clone();
        for v in subject.versions.values_mut() {
            v.subject = name.clone();
            v.id = 1000 + i;
            v.schema = v.schema.replace("Payment", &format!("Payment{i}"));
        }
        s.backup.subjects.insert(name, subject);
    }
    s
}

#[test]
fn a_plan_too_large_for_a_comment_is_summarised_within_the_limit() {
    let s = many_subjects(10_000);
    let p = plan(&s.backup, &s.target, &s.options).unwrap();
    let full = render::markdown(&p);
    assert!(
        full.chars().count() > render::COMMENT_LIMIT,
        "the full Markdown of 10,000 subjects fits; the test needs one that does not"
    );
    let md = render::markdown_within(&p, render::COMMENT_LIMIT, Some("plan.json"));
    assert!(
        md.chars().count() <= render::COMMENT_LIMIT,
        "{} characters",
        md.chars().count()
    );
    assert!(md.starts_with("### Schema Registry plan (summary)"), "{md}");
    assert!(md.contains(&render::totals_line(&p)));
    assert!(md.contains("`kafka-backup show plan.json`"), "{md}");
    // the steps counted per kind add up to the plan's
    let registers = p
        .steps
        .iter()
        .filter(|st| st.kind() == step::StepKind::Register)
        .count();
    assert_eq!(registers, 10_000);
    assert!(
        md.contains(&format!("| `+` | register | {registers} |")),
        "{md}"
    );
    assert!(md.contains("Subjects: 10000 created."), "{md}");
    // a plan that fits is the full rendering, unchanged
    let small = load(&root().join("empty-target"));
    let p = plan(&small.backup, &small.target, &small.options).unwrap();
    assert_eq!(
        render::markdown_within(&p, render::COMMENT_LIMIT, None),
        render::markdown(&p)
    );
}

#[test]
fn conflicts_that_do_not_fit_are_counted_and_the_summary_still_fits() {
    let s = load(&root().join("diverged-version"));
    let mut p = plan(&s.backup, &s.target, &s.options).unwrap();
    let conflict = p
        .conflicts
        .first()
        .cloned()
        .expect("the scenario has a conflict");
    p.conflicts = vec![conflict; 5_000];
    let md = render::markdown_within(&p, render::COMMENT_LIMIT, None);
    assert!(md.chars().count() <= render::COMMENT_LIMIT);
    assert!(md.contains("**5000 conflict(s)**"), "{md}");
    let shown = md.lines().filter(|l| l.starts_with("- **")).count();
    assert!(shown > 10 && shown < 5_000, "{shown}");
    assert!(
        md.contains(&format!("- and {} more (in the plan file)", 5_000 - shown)),
        "{md}"
    );
}
