//! End to end: `kafka-backup apply FILE -c CONFIG --registry-only` against
//! live registries. The reference page's example (source IDs 1, 5, 2) is
//! backed up, planned into an empty target and applied: the target assigns
//! 1, 2, 3. A second apply changes nothing; a stale target is refused;
//! `--dry-run` sends nothing; an apply stopped by a refusing target is rerun
//! and finishes.

mod common;

use common::*;
use kafka_backup::apply::journal::target_key;
use reqwest::Method;
use serde_json::json;

/// Plans the backup into `target`; gives the config, the plan file and its digest.
fn plan_into(
    dir: &std::path::Path,
    target: &Registry,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let cfg = restore_config(dir, "restore.yaml", &target.url);
    let plan_file = dir.join("restore.plan.json");
    let out = kafka_backup(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        plan_file.to_str().unwrap(),
    ]);
    success(&out);
    let plan = kafka_backup::planfile::read(&std::fs::read(&plan_file).unwrap()).unwrap();
    (cfg, plan_file, plan.digest.unwrap())
}

fn apply(plan: &std::path::Path, cfg: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", plan.to_str().unwrap(), "-c", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    kafka_backup(&args)
}

async fn id_of(target: &Registry, subject: &str, version: u32) -> u64 {
    let (status, body) = target
        .call(
            Method::GET,
            &format!("/subjects/{}/versions/{version}", encode(subject)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{subject} v{version}: {body}");
    body["id"].as_u64().unwrap()
}

async fn subjects(target: &Registry) -> serde_json::Value {
    let (status, body) = target.call(Method::GET, "/subjects", None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn assert_seed_ids(target: &Registry, dir: &std::path::Path, digest: &str) {
    assert_eq!(id_of(target, "orders-value", 1).await, 1);
    assert_eq!(id_of(target, "orders-value", 2).await, 2);
    assert_eq!(id_of(target, "payments-value", 1).await, 3);
    let map: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.join("store/seed-example/apply")
                .join(target_key(&target.url))
                .join(digest)
                .join("id-map.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(map, json!({"1": 1, "5": 2, "2": 3}));
    // the temporary NONE level is gone again
    let (status, body) = target.call(Method::GET, "/config/orders-value", None).await;
    assert_eq!(status, 404, "no level of its own: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_restores_the_seed_example_and_a_second_apply_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let (cfg, plan_file, digest) = plan_into(dir.path(), &target);

    // without --registry-only, a config with no target cluster is refused
    // before touching anything
    let out = apply(&plan_file, &cfg, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no `target.bootstrap_servers`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(subjects(&target).await, json!([]));

    // --dry-run prints the requests and sends none
    let printed = success(&apply(&plan_file, &cfg, &["--registry-only", "--dry-run"]));
    eprintln!("dry run:\n{printed}");
    assert!(
        printed.contains("POST /subjects/orders-value/versions"),
        "{printed}"
    );
    assert!(printed.contains("PUT /config/orders-value"), "{printed}");
    assert_eq!(subjects(&target).await, json!([]));
    assert!(!dir.path().join("store/seed-example/apply").exists());

    let printed = success(&apply(&plan_file, &cfg, &["--registry-only"]));
    assert!(printed.contains("\"5\": 2"), "{printed}");
    assert_seed_ids(&target, dir.path(), &digest).await;

    // a second apply of the same plan changes nothing and says so
    let printed = success(&apply(&plan_file, &cfg, &["--registry-only"]));
    assert!(printed.contains("already applied"), "{printed}");
    assert!(printed.contains("nothing to change"), "{printed}");
    assert_seed_ids(&target, dir.path(), &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let (cfg, plan_file, _) = plan_into(dir.path(), &target);
    let other =
        json!({"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]})
            .to_string();
    target
        .register("other-value", json!({"schema": other}))
        .await;

    let out = apply(&plan_file, &cfg, &["--registry-only"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("plan is stale"), "{err}");
    assert!(
        err.contains("planned against:") && err.contains("target now:"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(subjects(&target).await, json!(["other-value"]));

    // --force applies it anyway: the target hands out the IDs after its own
    let printed = success(&apply(&plan_file, &cfg, &["--registry-only", "--force"]));
    assert!(printed.contains("\"1\": 2"), "{printed}");
    assert_eq!(id_of(&target, "orders-value", 1).await, 2);
    assert_eq!(id_of(&target, "payments-value", 1).await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_apply_is_rerun_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let (cfg, plan_file, digest) = plan_into(dir.path(), &target);

    // payments-value is in IMPORT mode on the target: its registration
    // without an ID (step 5, after orders-value's two) is refused
    let (status, body) = target
        .call(
            Method::PUT,
            "/mode/payments-value",
            Some(json!({"mode": "IMPORT"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = apply(&plan_file, &cfg, &["--registry-only", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    eprintln!("first apply:\n{}\n{err}", stdout(&out));
    assert!(
        err.contains("step 5 failed: register payments-value v1"),
        "{err}"
    );
    assert!(err.contains("42205"), "{err}");
    assert!(err.contains("payments-value"), "{err}");
    assert_eq!(id_of(&target, "orders-value", 2).await, 2);
    // the temporary levels were put back
    let (status, body) = target.call(Method::GET, "/config/orders-value", None).await;
    assert_eq!(status, 404, "{body}\n{err}");
    let (status, body) = target
        .call(Method::GET, "/config/payments-value", None)
        .await;
    assert_eq!(status, 404, "{body}\n{err}");
    assert!(
        dir.path()
            .join("store/seed-example/apply")
            .join(target_key(&target.url))
            .join(&digest)
            .join("journal.json")
            .exists()
    );

    // writable again: the rerun (no --force: the journal explains the change) finishes
    let (status, body) = target
        .call(Method::DELETE, "/mode/payments-value", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let printed = success(&apply(&plan_file, &cfg, &["--registry-only"]));
    eprintln!("rerun:\n{printed}");
    assert!(printed.contains("Registry applied"), "{printed}");
    assert!(printed.contains("2 done in an earlier run"), "{printed}");
    assert_seed_ids(&target, dir.path(), &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_of_another_backup_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let (cfg, plan_file, _) = plan_into(dir.path(), &target);

    // another backup in the same store, of another registry state
    let other_source = Registry::start();
    let schema = json!({"type": "record", "name": "Else", "fields": []}).to_string();
    other_source
        .register("else-value", json!({"schema": schema}))
        .await;
    let other_cfg = write(
        dir.path(),
        "other-backup.yaml",
        &format!(
            // no `source`: a registry-only backup
            "backup_id: other\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            dir.path().join("store").display(),
            other_source.url
        ),
    );
    success(&kafka_backup(&[
        "backup",
        "-c",
        other_cfg.to_str().unwrap(),
    ]));

    let wrong = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("backup_id: seed-example", "backup_id: other");
    let wrong_cfg = write(dir.path(), "wrong.yaml", &wrong);
    let out = apply(&plan_file, &wrong_cfg, &["--registry-only"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the plan was made from another backup state"),
        "{}",
        stderr(&out)
    );
    assert_eq!(subjects(&target).await, json!([]), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_steps_run_concurrently_and_give_a_consistent_map() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let (cfg, plan_file, digest) = plan_into(dir.path(), &target);
    let printed = success(&apply(
        &plan_file,
        &cfg,
        &["--registry-only", "--registry-concurrency", "8"],
    ));
    eprintln!("{printed}");
    // whatever order the independent subjects ran in, each source ID maps to
    // the ID the target serves for that version, and v1 came before v2
    let map: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("store/seed-example/apply")
                .join(target_key(&target.url))
                .join(&digest)
                .join("id-map.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(map["1"], id_of(&target, "orders-value", 1).await);
    assert_eq!(map["5"], id_of(&target, "orders-value", 2).await);
    assert_eq!(map["2"], id_of(&target, "payments-value", 1).await);
    let mut ids: Vec<u64> = ["1", "5", "2"]
        .iter()
        .map(|k| map[k].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
    assert!(
        id_of(&target, "orders-value", 1).await < id_of(&target, "orders-value", 2).await,
        "a subject's versions are registered in order"
    );
    let (status, body) = target.call(Method::GET, "/config/orders-value", None).await;
    assert_eq!(status, 404, "the temporary level is gone: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_plan_applied_to_two_registries_in_the_same_state_registers_in_both() {
    // a drill into one empty registry, then the real restore into another:
    // the two plans are the same (same backup, same target state, same
    // options), and the second must not be taken as already applied
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let drill = Registry::start();
    let (_, plan_file, digest) = plan_into(dir.path(), &drill);
    let prod = Registry::start();
    let prod_cfg = restore_config(dir.path(), "prod.yaml", &prod.url);
    let drill_cfg = restore_config(dir.path(), "drill.yaml", &drill.url);
    success(&apply(&plan_file, &drill_cfg, &["--registry-only"]));
    assert_seed_ids(&drill, dir.path(), &digest).await;

    let printed = success(&apply(&plan_file, &prod_cfg, &["--registry-only"]));
    assert!(!printed.contains("already applied"), "{printed}");
    assert_seed_ids(&prod, dir.path(), &digest).await;

    // the same plan again into the drill registry, still as it was left
    let printed = success(&apply(&plan_file, &drill_cfg, &["--registry-only"]));
    assert!(printed.contains("already applied"), "{printed}");
}

/// Issue 11's tampering: a plan file whose step was turned into a permanent
/// delete, its digest computed again (a checksum, not a signature), is
/// refused before any change because the planner would not make it.
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_file_edited_and_sealed_again_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let other =
        json!({"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]})
            .to_string();
    target
        .register("other-value", json!({"schema": other}))
        .await;
    let (cfg, plan_file, _) = plan_into(dir.path(), &target);
    let mut plan = kafka_backup::planfile::read(&std::fs::read(&plan_file).unwrap()).unwrap();
    let step = plan
        .steps
        .iter_mut()
        .find(|s| s.kind() == kafka_backup::plan::StepKind::RestoreCompatibility)
        .expect("the plan puts a level back");
    step.change = kafka_backup::plan::Change::DeleteSubject {
        subject: "other-value".into(),
        versions: vec![1],
        permanent: true,
        replace: false,
    };
    // the totals must be the steps' too, or the file is refused as edited
    plan.totals = kafka_backup::plan::Totals::of(&plan.steps, &plan.subjects);
    plan.digest = None;
    std::fs::write(&plan_file, kafka_backup::planfile::write(&plan)).unwrap();
    // the file reads as a sealed plan, and shows what it would do
    let shown = success(&kafka_backup(&["show", plan_file.to_str().unwrap()]));
    assert!(
        shown.contains("- delete subject other-value (hard)") && shown.contains("1 to destroy"),
        "{shown}"
    );

    let out = apply(&plan_file, &cfg, &["--registry-only"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is not what the planner makes") && err.contains("make it again"),
        "{err}"
    );
    assert_eq!(subjects(&target).await, json!(["other-value"]));
    // the plan as made applies
    let (cfg, plan_file, _) = plan_into(dir.path(), &target);
    success(&apply(&plan_file, &cfg, &["--registry-only"]));
}

/// `restore.id_mapping: false` keeps no ID map: the schemas are restored, no
/// `id-map.json` is written and none is printed.
#[tokio::test(flavor = "multi_thread")]
async fn id_mapping_false_writes_no_id_map() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let cfg = write(
        dir.path(),
        "no-map.yaml",
        &format!(
            "mode: restore\nbackup_id: seed-example\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      force_register: true\n      strategy: preserve\n      rewrite_ids: false\n      id_mapping: false\n",
            dir.path().join("store").display(),
            target.url
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let printed = success(&kafka_backup(&[
        "apply",
        "-c",
        cfg,
        "--registry-only",
        "--auto-approve",
    ]));
    assert!(printed.contains("No ID map kept"), "{printed}");
    assert!(
        !printed.contains("Source -> target schema IDs"),
        "{printed}"
    );
    assert_eq!(id_of(&target, "payments-value", 1).await, 3);
    let folder = dir
        .path()
        .join("store/seed-example/apply")
        .join(target_key(&target.url));
    let plans: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert_eq!(plans.len(), 1);
    let plan_folder = plans[0].as_ref().unwrap().path();
    assert!(plan_folder.join("journal.json").exists());
    assert!(!plan_folder.join("id-map.json").exists());
}

/// `restore -c FILE`, as users of the reference product type it, is `apply -c`.
#[tokio::test(flavor = "multi_thread")]
async fn restore_is_apply_under_the_reference_name() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let cfg = restore_config(dir.path(), "restore.yaml", &target.url);
    let printed = success(&kafka_backup(&[
        "restore",
        "-c",
        cfg.to_str().unwrap(),
        "--registry-only",
        "--auto-approve",
    ]));
    assert!(printed.contains("Plan: 3 to add"), "{printed}");
    assert!(printed.contains("Registry applied"), "{printed}");
    assert_eq!(id_of(&target, "payments-value", 1).await, 3);
}

/// `restore.restore_global_settings: true` restores the global level the
/// backup recorded; without it the target's is left alone.
#[tokio::test(flavor = "multi_thread")]
async fn restore_global_settings_restores_the_global_level_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let source = backup_of_fixture(dir.path()).await.0;
    let (status, body) = source
        .call(
            Method::PUT,
            "/config",
            Some(json!({"compatibility": "FULL"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // back up again, with the global level set
    backup_registry(dir.path(), "with-global", &source.url);
    let restore = |name: &str, target: &Registry, global: bool| {
        write(
            dir.path(),
            name,
            &format!(
                "mode: restore\nbackup_id: with-global\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      force_register: true\n      rewrite_ids: false\n      restore_global_settings: {global}\n",
                dir.path().join("store").display(),
                target.url
            ),
        )
    };
    for (global, level) in [(false, "BACKWARD"), (true, "FULL")] {
        let target = Registry::start();
        let cfg = restore(&format!("global-{global}.yaml"), &target, global);
        success(&kafka_backup(&[
            "apply",
            "-c",
            cfg.to_str().unwrap(),
            "--registry-only",
            "--auto-approve",
        ]));
        let (status, body) = target.call(Method::GET, "/config", None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["compatibilityLevel"], level,
            "restore_global_settings: {global}"
        );
        assert_eq!(id_of(&target, "payments-value", 1).await, 3);
    }
}
