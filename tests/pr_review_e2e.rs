//! The pull-request review steps of `docs/pr-review.md` (issue 16): the shell
//! steps the GitHub Actions and GitLab CI files run (`docs/ci/plan-review.sh`
//! and `docs/ci/apply-reviewed.sh`), run here against live registries (not
//! the CI services): the plan and its comment, the check's outcome for no
//! change, changes and a conflict, the apply of the saved plan file after the
//! merge, and a stale one refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::json;

fn step(script: &str, args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("bash")
        .arg(root.join("docs/ci").join(script))
        .args(args)
        .env("KAFKA_BACKUP", env!("CARGO_BIN_EXE_kafka-backup"))
        .env("KAFKA_BACKUP_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_steps_plan_comment_gate_and_apply_the_saved_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, _) = backup_of_fixture(dir.path()).await;
    let target = Registry::start();
    let cfg = restore_config(dir.path(), "restore.yaml", &target.url);
    let cfg = cfg.to_str().unwrap();
    let pr = dir.path().join("pr");
    let pr_dir = pr.to_str().unwrap();

    // the pull request: changes to review, the check passes
    let out = step("plan-review.sh", &[cfg, pr_dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "changes=true\n");
    let comment = std::fs::read_to_string(pr.join("plan.md")).unwrap();
    assert_eq!(
        comment.lines().next(),
        Some(format!("<!-- kafka-backup plan: {cfg} -->").as_str())
    );
    assert!(comment.contains("### Schema Registry plan"), "{comment}");
    assert!(
        comment.contains("| # | | Subject | Change | Needs |"),
        "{comment}"
    );
    assert!(comment.contains("3 to add"), "{comment}");
    assert!(pr.join("plan.json").is_file());

    // after the merge: the saved plan file is applied
    let out = step(
        "apply-reviewed.sh",
        // (the fixture's backup holds the registry alone)
        &[
            cfg,
            pr.join("plan.json").to_str().unwrap(),
            "--registry-only",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let (status, subjects) = target.call(reqwest::Method::GET, "/subjects", None).await;
    assert_eq!(status, 200);
    assert_eq!(subjects.as_array().unwrap().len(), 2, "{subjects}");

    // the next pull request: nothing to change
    let next = dir.path().join("next");
    let out = step("plan-review.sh", &[cfg, next.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "changes=false\n");
    let comment = std::fs::read_to_string(next.join("plan.md")).unwrap();
    assert!(comment.contains("No changes."), "{comment}");

    // a plan file reviewed before the target moved is refused after the merge
    let other_target = Registry::start();
    let other_cfg = restore_config(dir.path(), "other.yaml", &other_target.url);
    let other_cfg = other_cfg.to_str().unwrap();
    let stale = dir.path().join("stale");
    let out = step("plan-review.sh", &[other_cfg, stale.to_str().unwrap()]);
    assert_eq!(stdout(&out), "changes=true\n");
    let extra = json!({"type": "record", "name": "Late", "fields": [{"name": "y", "type": "int"}]})
        .to_string();
    other_target
        .register("late-value", json!({"schema": extra}))
        .await;
    let out = step(
        "apply-reviewed.sh",
        &[
            other_cfg,
            stale.join("plan.json").to_str().unwrap(),
            "--registry-only",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("stale"), "{}", stderr(&out));

    // a conflict: the check fails, and the comment says why
    let diverged = Registry::start();
    let other =
        json!({"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]})
            .to_string();
    diverged
        .register("orders-value", json!({"schema": other}))
        .await;
    let cfg = restore_config(dir.path(), "diverged.yaml", &diverged.url);
    let conflict = dir.path().join("conflict");
    let out = step(
        "plan-review.sh",
        &[cfg.to_str().unwrap(), conflict.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "changes=unknown\n");
    let comment = std::fs::read_to_string(conflict.join("plan.md")).unwrap();
    assert!(comment.contains("conflict(s)**"), "{comment}");
    assert!(comment.contains("orders-value"), "{comment}");
}
