//! `restore.force_register`, end to end with the real binary (issue 12). By
//! default (`false`) the backup's history is registered under the level each
//! subject is restored with, never under a loosened one: the reference
//! page's example (whose `orders-value` v2 adds a field without a default)
//! is refused by an empty target's `BACKWARD` with a hint naming the key, and
//! leaves no temporary level behind; `force_register: true` registers it
//! under a temporary `NONE`, put back at the end. A backup whose subject has
//! its own level `NONE` is restored under that level, set first.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

fn config(
    dir: &std::path::Path,
    name: &str,
    backup_id: &str,
    target: &Registry,
    extra: &str,
) -> String {
    write(
        dir,
        name,
        &format!(
            "mode: restore\nbackup_id: {backup_id}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      strategy: preserve\n      rewrite_ids: true\n{extra}",
            dir.join("store").display(),
            target.url
        ),
    )
    .to_str()
    .unwrap()
    .to_owned()
}

fn apply(cfg: &str) -> std::process::Output {
    kafka_backup(&["apply", "-c", cfg, "--registry-only", "--auto-approve"])
}

/// The subject's own level in `sr`, if it has one.
async fn own_level(sr: &Registry, subject: &str) -> Option<String> {
    let (status, body) = sr
        .call(Method::GET, &format!("/config/{subject}"), None)
        .await;
    match status {
        200 => Some(body["compatibilityLevel"].as_str().unwrap().to_owned()),
        404 => None,
        _ => panic!("{subject}: {status} {body}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_a_history_the_target_level_refuses_fails_clearly_and_loosens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start();
    let cfg = config(dir.path(), "default.yaml", "seed-example", &target, "");

    let planned = success(&kafka_backup(&["plan", "-c", &cfg]));
    assert!(
        !planned.contains("-> NONE"),
        "no level is loosened:\n{planned}"
    );

    let out = apply(&cfg);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("register orders-value v2") && err.contains("40901"),
        "{err}"
    );
    assert!(
        err.contains("`force_register: true`") && err.contains("`set_compatibility`"),
        "{err}"
    );
    assert!(err.contains("this will not pass by itself"), "{err}");
    for subject in ["orders-value", "payments-value"] {
        assert_eq!(own_level(&target, subject).await, None, "{subject}");
    }

    // said so, the history goes in under a temporary NONE, put back after
    let forced = config(
        dir.path(),
        "forced.yaml",
        "seed-example",
        &target,
        "      force_register: true\n",
    );
    let printed = success(&apply(&forced));
    assert!(printed.contains("Registry applied"), "{printed}");
    for subject in ["orders-value", "payments-value"] {
        assert_eq!(own_level(&target, subject).await, None, "{subject}");
    }
    let verified = success(&kafka_backup(&["verify", "-c", &forced]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_a_subject_is_restored_under_its_own_level_set_first() {
    let dir = tempfile::tempdir().unwrap();
    let source = backup_of_fixture(dir.path()).await.0;
    // the source's orders-value has its own level NONE: back it up again
    let (status, body) = source
        .call(
            Method::PUT,
            "/config/orders-value",
            Some(json!({"compatibility": "NONE"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    backup_registry(dir.path(), "with-level", &source.url);

    let target = Registry::start();
    let cfg = config(dir.path(), "default.yaml", "with-level", &target, "");
    let planned = success(&kafka_backup(&["plan", "-c", &cfg]));
    assert!(
        planned.contains(
            "~ compatibility orders-value (not set) -> NONE: the backup's level (NONE), set before the registrations"
        ),
        "{planned}"
    );
    assert!(!planned.contains("temporary"), "{planned}");
    success(&apply(&cfg));
    assert_eq!(
        own_level(&target, "orders-value").await.as_deref(),
        Some("NONE")
    );
    assert_eq!(own_level(&target, "payments-value").await, None);
    let verified = success(&kafka_backup(&["verify", "-c", &cfg]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
}
