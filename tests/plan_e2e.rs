//! End to end: `kafka-backup plan` against live registries. A source registry
//! seeded with the reference page's example (IDs 1, 5, 2) is backed up, then
//! planned into an empty target; the plan must match the one made from the
//! `shifted-ids` fixture. Planned against the source itself, nothing changes.

mod common;

use common::*;
use kafka_backup::plan::Plan;
use serde_json::json;

/// What a reviewer reads in a plan, without the schema texts and fingerprints
/// (a live registry reformats text, so those differ from the fixture's).
fn shape(plan: &Plan) -> serde_json::Value {
    let steps: Vec<_> = plan
        .steps
        .iter()
        .map(|s| {
            let request = s.request();
            json!([
                s.id,
                s.kind(),
                s.action(),
                s.subject(),
                s.version(),
                s.source(),
                s.depends_on,
                request.method,
                request.path
            ])
        })
        .collect();
    json!({"steps": steps, "totals": plan.totals, "ids": plan.id_mapping, "conflicts": plan.conflicts.len()})
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_against_live_registries_matches_the_fixture() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected = kafka_backup::planfile::read(
        // `restore_config` says `force_register: true`, as this fixture does
        &std::fs::read(root.join("plans/force-register.plan.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = backup_of_fixture(dir.path()).await;

    // into an empty target: the seed's example, IDs known after apply
    let target = Registry::start();
    let cfg = restore_config(dir.path(), "restore.yaml", &target.url);
    let plan_file = dir.path().join("restore.plan.json");
    let out = kafka_backup(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        plan_file.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "changes: exit 2\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Plan: 3 to add, 0 to change, 0 to destroy. 0 unchanged."),
        "{}",
        stdout(&out)
    );
    let bytes = std::fs::read(&plan_file).unwrap();
    let plan = kafka_backup::planfile::read(&bytes).unwrap();
    assert_eq!(shape(&plan), shape(&expected));

    // the same inputs give the same bytes
    let again = dir.path().join("again.plan.json");
    kafka_backup(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&again).unwrap(), bytes);

    // `show` renders the saved plan; a hand-edited file is refused
    let shown = success(&kafka_backup(&[
        "show",
        plan_file.to_str().unwrap(),
        "--format",
        "markdown",
    ]));
    assert!(shown.contains("orders-value"), "{shown}");
    let edited = String::from_utf8(bytes.clone()).unwrap().replacen(
        "\"strategy\": \"preserve\"",
        "\"strategy\": \"overwrite\"",
        1,
    );
    assert_ne!(edited.as_bytes(), &bytes[..], "the edit applies");
    std::fs::write(&plan_file, edited).unwrap();
    let out = kafka_backup(&["show", plan_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("edited after it was made"),
        "{}",
        stderr(&out)
    );

    // planned against the registry it came from: nothing to do
    let cfg = restore_config(dir.path(), "same.yaml", &source.url);
    let out = kafka_backup(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "--detailed-exitcode",
        "--check-compatibility",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "no changes: exit 0\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("0 to add, 0 to change, 0 to destroy. 3 unchanged."),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diverged_target_is_a_conflict_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await;

    // the target already has orders-value v1 with other content
    let target = Registry::start();
    let other =
        json!({"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]})
            .to_string();
    target
        .register("orders-value", json!({"schema": other}))
        .await;
    let cfg = restore_config(dir.path(), "restore.yaml", &target.url);
    let out = kafka_backup(&["plan", "-c", cfg.to_str().unwrap(), "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    assert!(stdout(&out).contains("orders-value"), "{}", stdout(&out));
}

/// The top-level `mode:` is read: a file written for the other job is refused
/// before anything is read or written.
#[test]
fn a_configuration_for_the_other_job_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backup = write(
        dir.path(),
        "backup.yaml",
        "mode: backup\nbackup_id: b1\nstorage:\n  path: /nonexistent/store\n",
    );
    let restore = write(
        dir.path(),
        "restore.yaml",
        "mode: restore\nbackup_id: b1\nstorage:\n  path: /nonexistent/store\n",
    );
    for (command, cfg, says) in [
        ("plan", &backup, "`mode: backup`"),
        ("apply", &backup, "`mode: backup`"),
        ("verify", &backup, "`mode: backup`"),
        ("put-back", &backup, "`mode: backup`"),
        ("backup", &restore, "`mode: restore`"),
    ] {
        let out = kafka_backup(&[command, "-c", cfg.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains(says) && err.contains(&format!("`kafka-backup {command}` is a")),
            "{command}: {err}"
        );
    }
}
