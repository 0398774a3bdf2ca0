//! `kafka-backup prune` on chains of incremental backups (issue 15): what the
//! rules keep, what a kept backup continues, a running backup and an
//! interrupted one, `--dry-run`, the question, and the chain left readable.

mod common;

use std::path::Path;

use common::records::*;
use common::*;

fn backup(dir: &Path, topic: &str, id: &str, from: Option<&str>, include: &str) {
    let cfg = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "backup_id: {id}\n{}source:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"{include}]\nstorage:\n  path: {}\n",
            from.map(|f| format!("incremental_from: {f}\n")).unwrap_or_default(),
            bootstrap(),
            dir.join("store").display(),
        ),
    )
    .unwrap();
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
}

fn folders(store: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "leases")
        .collect();
    out.sort();
    out
}

fn prune(store: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["prune", "--path", store.to_str().unwrap()];
    all.extend_from_slice(args);
    kafka_backup(&all)
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_the_newest_and_every_backup_they_continue() {
    let topic = unique("prune");
    create_topic(&topic, 3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut next = 0u32;
    let mut more = |n: u32| {
        let records: Vec<Rec> = (next..next + n).map(|i| record(i, 3, None)).collect();
        next += n;
        records
    };
    // full-1 <- inc-1 <- inc-2, then full-2 <- inc-3; `other` is another series
    for (id, from) in [
        ("full-1", None),
        ("inc-1", Some("full-1")),
        ("inc-2", Some("inc-1")),
        ("full-2", None),
        ("inc-3", Some("full-2")),
    ] {
        produce(&topic, &more(30)).await;
        backup(dir.path(), &topic, id, from, "");
    }
    backup(dir.path(), &topic, "other", None, ", \"no-such-*\"");
    // an interrupted backup, and one a live run holds (its lease, as the
    // lease layer writes it, held by this test's process)
    for id in ["crashed", "running"] {
        std::fs::create_dir_all(store.join(id).join("kafka")).unwrap();
        std::fs::write(store.join(id).join("kafka/part.seg.zst"), b"partial").unwrap();
    }
    let now = chrono::Utc::now();
    let lease = serde_json::json!({
        "format": "kafka-backup/lease/v1",
        "resource": "backup `running`",
        "host": kafka_backup::lease::host_name(),
        "pid": std::process::id(),
        "command": "backup",
        "started_at": now.to_rfc3339(),
        "expires_at": (now + chrono::Duration::minutes(10)).to_rfc3339(),
        "token": "t",
    });
    std::fs::write(
        store.join("leases/backup-running.json"),
        serde_json::to_vec(&lease).unwrap(),
    )
    .unwrap();
    let everything = folders(&store);
    assert_eq!(everything.len(), 8, "{everything:?}");

    // without a rule: refused
    let out = prune(&store, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no retention rule"),
        "{}",
        stderr(&out)
    );

    // the plan, and nothing deleted
    let out = prune(&store, &["--keep-last", "1", "--dry-run"]);
    let plan = success(&out);
    for (action, id, why) in [
        ("keep  ", "inc-3", "one of the 1 newest of its series"),
        ("keep  ", "full-2", "`inc-3` (kept) continues it"),
        ("delete", "inc-2", "not one of the 1 newest of its series"),
        ("delete", "inc-1", "no kept backup continues it"),
        ("delete", "full-1", "no kept backup continues it"),
        ("keep  ", "other", "one of the 1 newest of its series"),
        (
            "delete",
            "crashed",
            "interrupted (no manifest) and no run holds its lease",
        ),
        ("keep  ", "running", "still running: `backup` on host"),
    ] {
        let line = plan
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{action} {id} ")))
            .unwrap_or_else(|| panic!("no `{action} {id}` line in:\n{plan}"));
        assert!(line.contains(why), "{line}");
    }
    assert!(plan.contains("4 to delete, 4 kept (dry run"), "{plan}");
    assert_eq!(folders(&store), everything);

    // asked, no answer: nothing deleted
    let out = prune(&store, &["--keep-last", "1"]);
    assert!(!out.status.success());
    assert_eq!(folders(&store), everything);

    // deleted, children before parents
    let out = prune(&store, &["--keep-last", "1", "--auto-approve"]);
    success(&out);
    let said = stderr(&out);
    let order: Vec<&str> = said
        .lines()
        .filter_map(|l| l.strip_prefix("deleted `"))
        .map(|l| l.split('`').next().unwrap())
        .collect();
    assert_eq!(order, ["crashed", "inc-2", "inc-1", "full-1"], "{said}");
    assert_eq!(folders(&store), ["full-2", "inc-3", "other", "running"]);

    // the kept chain reads whole: every file of both members checked
    let out = kafka_backup(&[
        "describe",
        "--path",
        store.to_str().unwrap(),
        "--backup-id",
        "inc-3",
        "--verify-files",
    ]);
    let text = success(&out);
    assert!(text.contains("chain      full-2 -> inc-3"), "{text}");
    // full-2 took the 120 records then in the topic, inc-3 the 30 after them
    assert!(text.contains("150 records"), "{text}");

    // the same rules from a configuration: keep everything of the last hour
    let cfg = dir.path().join("retention.yaml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  path: {}\nretention:\n  keep_within: 1h\n",
            store.display()
        ),
    )
    .unwrap();
    let out = kafka_backup(&["prune", "-c", cfg.to_str().unwrap(), "--auto-approve"]);
    let plan = success(&out);
    assert!(plan.contains("0 to delete"), "{plan}");
    assert_eq!(folders(&store), ["full-2", "inc-3", "other", "running"]);
}
