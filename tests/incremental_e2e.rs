//! Incremental backups (issue 15): `incremental_from` takes only the records
//! after the parent's; every reader joins the chain, so a restore of any
//! member is the restore of one whole backup as of that member. Each test
//! runs the real binary against the test ground's broker and registries.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::records::*;
use common::*;
use kafka_backup::manifest::Manifest;

/// Record `i` of these tests: 3 partitions, timestamps 1 s apart.
fn records(range: std::ops::Range<u32>) -> Vec<Rec> {
    range.map(|i| record_padded(i, 3, None, 64)).collect()
}

fn backup_config(b: &SeededBackup, id: &str, from: Option<&str>, include: &str) -> String {
    let path = b.dir.path().join(format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "backup_id: {id}\n{}source:\n  bootstrap_servers: [{}]\n  topics:\n    include: [{include}]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            from.map(|f| format!("incremental_from: {f}\n")).unwrap_or_default(),
            bootstrap(),
            b.dir.path().join("store").display(),
            b.source.url
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn backup(b: &SeededBackup, id: &str, from: Option<&str>) -> Output {
    let cfg = backup_config(b, id, from, &format!("\"{}\"", b.topic));
    kafka_backup(&["backup", "-c", &cfg])
}

fn own_manifest(dir: &Path, id: &str) -> (Manifest, Vec<u8>) {
    let bytes = std::fs::read(dir.join("store").join(id).join("manifest.json")).unwrap();
    (serde_json::from_slice(&bytes).unwrap(), bytes)
}

/// A restore of backup `id` of `b` into `into`, registry into `target_url`.
fn restore_config(b: &SeededBackup, id: &str, into: &str, target_url: &str) -> String {
    let path = b.dir.path().join(format!("restore-{id}-{into}.yaml"));
    std::fs::write(
        &path,
        format!(
            "mode: restore\nbackup_id: {id}\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {}: {into}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {target_url}\n    restore:\n      force_register: true\n      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {{key: always, value: always}}\n",
            bootstrap(),
            b.topic,
            b.dir.path().join("store").display(),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// What a restore through the seeded registries writes for `records`, per partition.
fn expected(records: &[Rec]) -> BTreeMap<i32, Vec<Rec>> {
    let mut out: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition)
            .or_default()
            .push(rewritten(r.clone(), &seed_map()));
    }
    out
}

fn apply(cfg: &str, extra: &[&str]) -> String {
    let mut args = vec!["apply", "-c", cfg, "--auto-approve"];
    args.extend_from_slice(extra);
    success(&kafka_backup(&args))
}

fn verified(cfg: &str) {
    let out = success(&kafka_backup(&["verify", "-c", cfg]));
    assert!(out.contains("the target matches the backup"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_of_three_restores_exactly_the_union_and_any_member_restores_as_of_itself() {
    let all = records(0..900);
    let b = seeded_source(unique("chain"), 3, all[..300].to_vec()).await;
    success(&backup(&b, "b1", None));
    produce(&b.topic, &all[300..600]).await;
    let out = backup(&b, "b2", Some("b1"));
    success(&out);
    assert!(
        stderr(&out).contains("(incremental, after `b1`)"),
        "{}",
        stderr(&out)
    );
    // a backup of another selection, finished later, is not `latest` for this one
    let other = backup_config(
        &b,
        "other",
        None,
        &format!("\"{}\", \"no-such-*\"", b.topic),
    );
    success(&kafka_backup(&["backup", "-c", &other]));
    produce(&b.topic, &all[600..900]).await;
    success(&backup(&b, "b3", Some("latest")));

    let (b1, _) = own_manifest(b.dir.path(), "b1");
    let (b2, b2_bytes) = own_manifest(b.dir.path(), "b2");
    let (b3, _) = own_manifest(b.dir.path(), "b3");
    // each member holds only what came after its parent, and pins it
    for (m, parent, own) in [(&b2, &b1, 300), (&b3, &b2, 300)] {
        let t = &m.topics[&b.topic];
        assert_eq!(t.record_count(), own, "{}", m.backup_id);
        for (p, part) in &t.partitions {
            let before = &parent.topics[&b.topic].partitions[p];
            assert_eq!(part.continues_from, Some(before.high_watermark));
            let first = part.segments.first().unwrap().meta.first_offset;
            assert_eq!(
                first, before.high_watermark,
                "{} partition {p}",
                m.backup_id
            );
        }
    }
    assert!(b1.parent.is_none());
    let pinned = b3.parent.as_ref().expect("b3 continues b2");
    assert_eq!(pinned.backup_id, "b2", "latest is b2, not `other`");
    assert_eq!(
        pinned.manifest_sha256,
        kafka_backup::segment::sha256_hex(&b2_bytes)
    );

    // describe shows the chain and checks every member's files
    let store = b.dir.path().join("store");
    let out = kafka_backup(&[
        "describe",
        "--path",
        store.to_str().unwrap(),
        "--backup-id",
        "b3",
        "--verify-files",
    ]);
    let text = success(&out);
    assert!(text.contains("chain      b1 -> b2 -> b3"), "{text}");
    assert!(text.contains("900 records"), "{text}");
    let files: usize = [&b1, &b2, &b3].iter().map(|m| m.files.len()).sum();
    assert!(
        stderr(&out).contains(&format!("all {files} files match")),
        "{}",
        stderr(&out)
    );
    let listed = success(&kafka_backup(&["list", "--path", store.to_str().unwrap()]));
    assert!(listed.contains("incremental after `b2`"), "{listed}");

    // the whole chain, exactly once and in order
    let target = Registry::start();
    let into = format!("{}-all", b.topic);
    let cfg = restore_config(&b, "b3", &into, &target.url);
    apply(&cfg, &[]);
    assert_eq!(consume_all(&into, 3), expected(&all));
    verified(&cfg);

    // the middle member restores as of itself
    let into = format!("{}-b2", b.topic);
    let target_b2 = Registry::start();
    let cfg = restore_config(&b, "b2", &into, &target_b2.url);
    apply(&cfg, &[]);
    assert_eq!(consume_all(&into, 3), expected(&all[..600]));

    // a point in time inside the middle member, through the last one
    let cut = all[449].timestamp.unwrap();
    let into = format!("{}-cut", b.topic);
    let target_cut = Registry::start();
    let cfg = restore_config(&b, "b3", &into, &target_cut.url);
    let to = cut.to_string();
    apply(&cfg, &["--to-timestamp", &to]);
    let kept: Vec<Rec> = all
        .iter()
        .filter(|r| r.timestamp.unwrap() <= cut)
        .cloned()
        .collect();
    assert_eq!(kept.len(), 450);
    assert_eq!(consume_all(&into, 3), expected(&kept));

    // nothing new since b3: the next member takes no record and no segment
    success(&backup(&b, "b4", Some("b3")));
    let (b4, _) = own_manifest(b.dir.path(), "b4");
    assert_eq!(b4.topics[&b.topic].record_count(), 0);
    assert!(
        b4.topics[&b.topic]
            .partitions
            .values()
            .all(|p| p.segments.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_or_missing_parent_is_refused_before_anything_is_written() {
    let all = records(0..120);
    let b = seeded_source(unique("chain-tamper"), 3, all[..60].to_vec()).await;
    success(&backup(&b, "b1", None));
    produce(&b.topic, &all[60..]).await;
    success(&backup(&b, "b2", Some("b1")));

    // the same manifest, written again without the pretty layout: other bytes
    let store = b.dir.path().join("store");
    let path = store.join("b1/manifest.json");
    let original = std::fs::read(&path).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&original).unwrap();
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let out = kafka_backup(&[
        "describe",
        "--path",
        store.to_str().unwrap(),
        "--backup-id",
        "b2",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the parent was changed or replaced"),
        "{}",
        stderr(&out)
    );
    let into = format!("{}-restored", b.topic);
    let target = Registry::start();
    let cfg = restore_config(&b, "b2", &into, &target.url);
    let out = kafka_backup(&["apply", "-c", &cfg, "--auto-approve"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("changed or replaced"),
        "{}",
        stderr(&out)
    );
    // a new incremental backup will not continue a changed chain either
    let out = backup(&b, "b3", Some("b2"));
    assert!(!out.status.success());
    assert!(!store.join("b3/manifest.json").exists());
    let (status, subjects) = target.call(reqwest::Method::GET, "/subjects", None).await;
    assert_eq!(
        (status, subjects),
        (200, serde_json::json!([])),
        "the refused apply registered schemas"
    );
    assert!(
        !topic_exists(&into),
        "the refused apply created the target topic"
    );

    // the key is a backup's: a restore configuration with it is refused, not ignored
    let with_key = format!("{cfg}.with-key.yaml");
    std::fs::write(
        &with_key,
        format!(
            "incremental_from: b1\n{}",
            std::fs::read_to_string(&cfg).unwrap()
        ),
    )
    .unwrap();
    let out = kafka_backup(&["plan", "-c", &with_key]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only `backup` reads"),
        "{}",
        stderr(&out)
    );

    // the parent gone: the child names what it needs
    std::fs::remove_dir_all(store.join("b1")).unwrap();
    let out = kafka_backup(&["apply", "-c", &cfg, "--auto-approve"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("its chain needs backup `b1`"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_deleted_between_backups_are_a_gap_recorded_and_reported() {
    let all = records(0..600);
    let b = seeded_source(unique("chain-gap"), 3, all[..300].to_vec()).await;
    success(&backup(&b, "b1", None));
    produce(&b.topic, &all[300..]).await;
    // partition 0 ends at 100 in b1; records 100..149 go before b2
    let out = python_json(
        "consumer_group.py",
        &[
            "delete-records",
            "--bootstrap",
            &bootstrap(),
            "--topic",
            &b.topic,
            "--partition",
            "0",
            "--before",
            "150",
        ],
    );
    assert_eq!(out["low"].as_i64(), Some(150));
    let out = backup(&b, "b2", Some("b1"));
    let said = stderr(&success_output(out));
    assert!(
        said.contains(
            "partition 0: offsets 100..149 were deleted from the source since the parent"
        ),
        "{said}"
    );
    let (b2, _) = own_manifest(b.dir.path(), "b2");
    let p0 = &b2.topics[&b.topic].partitions[&0];
    assert_eq!((p0.continues_from, p0.low_watermark), (Some(100), 150));
    let store = b.dir.path().join("store");
    let text = success(&kafka_backup(&[
        "describe",
        "--path",
        store.to_str().unwrap(),
        "--backup-id",
        "b2",
    ]));
    assert!(
        text.contains("gap: ") && text.contains("offsets 100..149"),
        "{text}"
    );

    // the restore holds everything but the gap
    let into = format!("{}-restored", b.topic);
    let target = Registry::start();
    let cfg = restore_config(&b, "b2", &into, &target.url);
    apply(&cfg, &[]);
    let mut want = expected(&all);
    want.get_mut(&0).unwrap().drain(100..150);
    assert_eq!(consume_all(&into, 3), want);
    verified(&cfg);
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_that_went_back_stop_an_incremental_backup() {
    let b = seeded_source(unique("chain-recreated"), 3, records(0..90)).await;
    success(&backup(&b, "b1", None));
    // the topic deleted and created again, with fewer records than before
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        client_config().create().unwrap();
    for r in admin
        .delete_topics(&[&b.topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    create_topic(&b.topic, 3, &[]).await;
    produce(&b.topic, &records(0..9)).await;
    let out = backup(&b, "b2", Some("b1"));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("created again"), "{said}");
    assert!(said.contains("take a full backup"), "{said}");
    assert!(!b.dir.path().join("store/b2/manifest.json").exists());
}

fn success_output(out: Output) -> Output {
    success(&out);
    out
}

fn topic_exists(topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client_config().create().unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), std::time::Duration::from_secs(10))
        .unwrap();
    md.topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}
