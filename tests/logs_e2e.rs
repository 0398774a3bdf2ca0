//! Logs that read well where they are collected (issue 16): piped to a file
//! (a CI log, a pod's log) they hold no terminal escape codes, and with
//! `--log-format json` each log line, the failure's error included, is one
//! JSON object.

mod common;

use std::process::{Command, Output, Stdio};

use common::records::*;
use common::*;

/// The binary with stderr piped (not a terminal) and no log filter from the
/// environment, so that `-v` decides.
fn piped(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(args)
        .env_remove("KAFKA_BACKUP_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn backup_config(dir: &std::path::Path, topic: &str, id: &str) -> String {
    write(
        dir,
        &format!("{id}.yaml"),
        &format!(
            "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\n",
            bootstrap(),
            dir.join("store").display()
        ),
    )
    .to_str()
    .unwrap()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_on_a_pipe_hold_no_escape_codes_and_json_logs_are_json() {
    let topic = unique("logs");
    create_topic(&topic, 2, &[]).await;
    produce(
        &topic,
        &(0..20).map(|i| record(i, 2, None)).collect::<Vec<_>>(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();

    let out = piped(&[
        "backup",
        "-c",
        &backup_config(dir.path(), &topic, "text"),
        "-vv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("INFO"), "-vv logged nothing:\n{text}");
    assert!(
        !out.stderr.contains(&0x1b),
        "escape codes on a pipe:\n{text:?}"
    );

    let out = piped(&[
        "backup",
        "-c",
        &backup_config(dir.path(), &topic, "json"),
        "-v",
        "--log-format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // every line, the command's own result line included
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == "topics backed up"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("backup `json` done: 1 topics, 20 records"))),
        "{lines:#?}"
    );
    assert!(!out.stderr.contains(&0x1b));

    // a failure: its error is a JSON line too, not an `error:` text line
    let out = piped(&[
        "backup",
        "-c",
        &backup_config(dir.path(), "no-such-topic-*", "failed"),
        "--log-format",
        "json",
    ]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(!said.lines().any(|l| l.starts_with("error:")), "{said}");
    let error: serde_json::Value = said
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line in:\n{said}"));
    assert!(
        error["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("matches no topic"),
        "{error}"
    );

    // the scripts' own progress lines, on a pipe, are plain too
    let out = Command::new("bash")
        .args(["-c", "source scripts/lib.sh; log hello"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(stderr(&out), "==> hello\n");
}
