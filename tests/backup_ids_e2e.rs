//! End to end: a backup holds the schemas its records need and every record
//! below the end offsets it read first, or says what it could not take.
//!
//! - the watermarks are read before the registry snapshot (a proxy holds the
//!   registry's first connection while records are produced);
//! - the schema IDs framed keys and values carry are counted per partition;
//!   a version soft-deleted before the backup, or a subject the selection
//!   leaves out, is pulled in with the reason;
//! - an ID the registry never had fails the backup (no manifest) unless
//!   `allow_unknown_ids`;
//! - an open transaction is waited for, then fails the backup unless
//!   `allow_open_transactions`;
//! - a topic selection matching nothing fails unless `--allow-empty`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::records::open_transaction;
use common::*;
use kafka_backup::manifest::Manifest;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use reqwest::Method;
use serde_json::{Value, json};

fn avro(name: &str, fields: Value) -> Value {
    json!({"schema": json!({"type": "record", "name": name, "fields": fields}).to_string()})
}

/// A value in the Confluent wire format: 0x00, the ID, then the payload.
fn framed(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&u32::try_from(id).unwrap().to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A record's key and value.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Produces `(key, value)` records to partition 0 and waits for each.
async fn produce(topic: &str, records: &[KeyValue]) {
    let producer: FutureProducer = client_config().create().unwrap();
    for (key, value) in records {
        let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(0);
        if let Some(k) = key {
            r = r.key(k.as_slice());
        }
        if let Some(v) = value {
            r = r.payload(v.as_slice());
        }
        producer
            .send(r, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to `{topic}`: {e}"));
    }
}

/// A backup configuration; `source_extra` and `backup_extra` are indented
/// lines added to `source:` and `enterprise.schema_registry.backup:`.
fn config(
    dir: &Path,
    backup_id: &str,
    include: &str,
    sr_url: Option<&str>,
    source_extra: &str,
    backup_extra: &str,
) -> PathBuf {
    let registry = match sr_url {
        Some(url) => format!(
            "enterprise:\n  schema_registry:\n    enabled: true\n    url: {url}\n    backup:\n      include_references: true\n{backup_extra}"
        ),
        None => String::new(),
    };
    write(
        dir,
        &format!("{backup_id}.yaml"),
        &format!(
            "backup_id: {backup_id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{include}\"]\n{source_extra}storage:\n  path: {}\n{registry}",
            bootstrap(),
            dir.join("store").display()
        ),
    )
}

fn manifest(dir: &Path, backup_id: &str) -> Manifest {
    let path = dir.join("store").join(backup_id).join("manifest.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

fn schemas_json(dir: &Path, backup_id: &str) -> Value {
    let path = dir
        .join("store")
        .join(backup_id)
        .join("schema-registry/_schemas.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

fn has_manifest(dir: &Path, backup_id: &str) -> bool {
    dir.join("store")
        .join(backup_id)
        .join("manifest.json")
        .exists()
}

fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "kafka-backup succeeded:\nstderr:\n{}",
        stderr(out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    stderr(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_soft_deleted_or_left_out_are_pulled_in_for_the_ids_records_carry() {
    let sr = Registry::start();
    let topic = unique("ids-pull");
    create_topic(&topic, 1, &[]).await;
    let value_subject = format!("{topic}-value");
    let key_subject = format!("{topic}-key");
    let v1 = sr
        .register(
            &value_subject,
            avro("Order", json!([{"name": "a", "type": "string"}])),
        )
        .await;
    let v2 = sr
        .register(
            &value_subject,
            avro(
                "Order",
                json!([{"name": "a", "type": "string"}, {"name": "b", "type": "string", "default": ""}]),
            ),
        )
        .await;
    let k1 = sr
        .register(
            &key_subject,
            avro("OrderKey", json!([{"name": "k", "type": "long"}])),
        )
        .await;
    let (status, body) = sr
        .call(
            Method::PUT,
            &format!("/config/{}", encode(&key_subject)),
            Some(json!({"compatibility": "NONE"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // v1 is soft-deleted before the backup: `include_soft_deleted: false` leaves it out
    let (status, body) = sr
        .call(
            Method::DELETE,
            &format!("/subjects/{}/versions/1", encode(&value_subject)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut records = Vec::new();
    for i in 0..5u8 {
        records.push((Some(framed(k1, &[i])), Some(framed(v1, b"old"))));
    }
    for i in 0..3u8 {
        records.push((Some(framed(k1, &[i])), Some(framed(v2, b"new"))));
    }
    records.push((None, None)); // a tombstone without a key
    records.push((Some(b"raw".to_vec()), Some(framed(v2, b"new"))));
    produce(&topic, &records).await;

    let dir = tempfile::tempdir().unwrap();
    // the key subject is left out by the selection
    let cfg = config(
        dir.path(),
        "pull",
        &topic,
        Some(&sr.url),
        "",
        &format!("      exclude: [\"{key_subject}\"]\n"),
    );
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));

    let s = schemas_json(dir.path(), "pull");
    let subject = |name: &str| -> Value {
        s["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("`{name}` is not in the backup: {s:#}"))
            .clone()
    };
    let versions = subject(&value_subject)["versions"].clone();
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["id"], v1);
    assert_eq!(versions[0]["deleted"], true);
    assert_eq!(versions[1]["version"], 2);
    assert!(versions[1].get("deleted").is_none());
    let key = subject(&key_subject);
    assert_eq!(key["versions"][0]["id"], k1);
    assert_eq!(
        key["compatibility"], "NONE",
        "a pulled-in subject keeps its level"
    );
    let pulled = s["pulled_in"].as_array().unwrap();
    assert_eq!(
        pulled,
        &vec![
            json!({"subject": key_subject, "version": 1, "referenced_by": [],
                   "carried_by": [format!("schema ID {k1} is carried by records of `{topic}` (key, 8 record(s))")]}),
            json!({"subject": value_subject, "version": 1, "referenced_by": [],
                   "carried_by": [format!("schema ID {v1} is carried by records of `{topic}` (value, 5 record(s))")]}),
        ],
        "{s:#}"
    );
    let m = manifest(dir.path(), "pull");
    assert_eq!(m.format_version, 4);
    let p = &m.topics[&topic].partitions[&0];
    assert_eq!(p.record_count, 10);
    assert_eq!(p.last_stable_offset, Some(10));
    assert_eq!(p.left_out_from, None);
    let ids = &p.schema_ids;
    assert_eq!((ids.value.non_null, ids.value.framed), (9, 9));
    assert_eq!(
        ids.value
            .ids
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect::<Vec<_>>(),
        vec![(v1 as i32, 5), (v2 as i32, 4)]
    );
    assert!(ids.value.all_framed());
    assert_eq!((ids.key.non_null, ids.key.framed), (9, 8));
    assert_eq!(ids.key.ids[&(k1 as i32)], 8);
    assert_eq!(ids.key.unframed(), 1);
    assert_eq!(m.topics[&topic].schema_ids(), p.schema_ids);
    assert!(m.schema_registry.as_ref().unwrap().unknown_ids.is_empty());

    // the files read back into the same state, the pulled-in versions included
    let out = kafka_backup(&[
        "describe",
        "--path",
        dir.path().join("store").to_str().unwrap(),
        "--backup-id",
        "pull",
    ]);
    success(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_the_registry_never_had_fails_the_backup_unless_allowed() {
    let sr = Registry::start();
    let topic = unique("ids-unknown");
    create_topic(&topic, 1, &[]).await;
    let known = sr
        .register(&format!("{topic}-value"), avro("Known", json!([])))
        .await;
    let never = 987_654;
    produce(
        &topic,
        &[
            (None, Some(framed(known, b"x"))),
            (None, Some(framed(never, b"a"))),
            (None, Some(framed(never, b"b"))),
            (None, Some(framed(never, b"c"))),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "unknown", &topic, Some(&sr.url), "", "");
    let err = failure(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    assert!(
        err.contains(&format!(
            "schema ID {never}: `{topic}` partition 0 (value): 3 record(s)"
        )),
        "{err}"
    );
    assert!(err.contains("no manifest was written"), "{err}");
    assert!(err.contains("allow_unknown_ids"), "{err}");
    assert!(!has_manifest(dir.path(), "unknown"));

    let cfg = config(
        dir.path(),
        "unknown-allowed",
        &topic,
        Some(&sr.url),
        "",
        "      allow_unknown_ids: true\n",
    );
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    success(&out);
    let m = manifest(dir.path(), "unknown-allowed");
    assert_eq!(
        m.schema_registry.as_ref().unwrap().unknown_ids,
        vec![never as i32]
    );
    let p = &m.topics[&topic].partitions[&0];
    assert_eq!(p.record_count, 4);
    assert_eq!(p.schema_ids.value.ids[&(never as i32)], 3);
    assert_eq!(p.schema_ids.value.ids[&(known as i32)], 1);
    assert!(
        stderr(&out).contains(&format!("schema ID {never}")),
        "the allowed unknown ID is still reported: {}",
        stderr(&out)
    );
    let described = success(&kafka_backup(&[
        "describe",
        "--path",
        dir.path().join("store").to_str().unwrap(),
        "--backup-id",
        "unknown-allowed",
    ]));
    assert!(
        described.contains(&format!(
            "records carry schema IDs the registry did not serve: {never}"
        )),
        "{described}"
    );
}

/// A TCP proxy in front of `upstream` that holds its first connection until
/// released, and says when that connection arrived.
async fn holding_proxy(
    upstream: String,
) -> (
    String,
    tokio::sync::oneshot::Receiver<()>,
    std::sync::Arc<tokio::sync::Notify>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (arrived, arrival) = tokio::sync::oneshot::channel();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let released = std::sync::Arc::clone(&release);
    tokio::spawn(async move {
        let mut arrived = Some(arrived);
        let (first, _) = listener.accept().await.unwrap();
        arrived.take().unwrap().send(()).unwrap();
        released.notified().await;
        let mut pending = vec![first];
        loop {
            for mut inbound in pending.drain(..) {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
            let (next, _) = listener.accept().await.unwrap();
            pending.push(next);
        }
    });
    (url, arrival, release)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watermarks_are_read_before_the_registry() {
    let sr = Registry::start();
    let topic = unique("ids-order");
    create_topic(&topic, 1, &[]).await;
    let subject = format!("{topic}-value");
    let first = sr.register(&subject, avro("First", json!([]))).await;
    produce(
        &topic,
        &[
            (None, Some(framed(first, b"1"))),
            (None, Some(framed(first, b"2"))),
        ],
    )
    .await;
    let (proxy, arrival, release) =
        holding_proxy(sr.url.trim_start_matches("http://").to_owned()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "order", &topic, Some(&proxy), "", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["backup", "-c", cfg.to_str().unwrap()])
        .env("KAFKA_BACKUP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the backup reached the registry: it has read the watermarks already
    tokio::time::timeout(Duration::from_secs(60), arrival)
        .await
        .expect("the backup reaches the registry")
        .unwrap();
    let second = sr
        .register(
            &subject,
            avro("First", json!([{"name": "n", "type": "int", "default": 0}])),
        )
        .await;
    assert_ne!(first, second);
    produce(&topic, &[(None, Some(framed(second, b"3")))]).await;
    release.notify_one();
    let out = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(120) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    success(&out);

    let m = manifest(dir.path(), "order");
    let p = &m.topics[&topic].partitions[&0];
    // the record produced while the registry was being read is not taken ...
    assert_eq!(p.high_watermark, 2, "{p:?}");
    assert_eq!(p.record_count, 2);
    // ... and every ID the records carry was in the snapshot, none pulled in
    assert_eq!(
        p.schema_ids.value.ids.keys().copied().collect::<Vec<_>>(),
        vec![first as i32]
    );
    let s = schemas_json(dir.path(), "order");
    assert!(s.get("pulled_in").is_none(), "{s:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_transaction_is_waited_for_then_fails_the_backup_unless_allowed() {
    let topic = unique("ids-txn");
    create_topic(&topic, 1, &[]).await;
    produce(
        &topic,
        &[
            (None, Some(b"p0".to_vec())),
            (None, Some(b"p1".to_vec())),
            (None, Some(b"p2".to_vec())),
        ],
    )
    .await;
    let txn = open_transaction(&topic, 4, "t").await;

    let dir = tempfile::tempdir().unwrap();
    let wait = "  open_transaction_wait_secs: 2\n";
    let cfg = config(dir.path(), "txn", &topic, None, wait, "");
    let started = Instant::now();
    let err = failure(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited");
    assert!(
        err.contains(&format!("`{topic}` partition 0: offsets 3 to 6 not taken")),
        "{err}"
    );
    assert!(err.contains("no manifest was written"), "{err}");
    assert!(!has_manifest(dir.path(), "txn"));

    let allowed = format!("{wait}  allow_open_transactions: true\n");
    let cfg = config(dir.path(), "txn-allowed", &topic, None, &allowed, "");
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    let p = manifest(dir.path(), "txn-allowed").topics[&topic].partitions[&0].clone();
    assert_eq!(p.high_watermark, 7);
    assert_eq!(p.last_stable_offset, Some(3));
    assert_eq!(p.left_out_from, Some(3));
    assert_eq!(p.record_count, 3);
    let described = success(&kafka_backup(&[
        "describe",
        "--path",
        dir.path().join("store").to_str().unwrap(),
        "--backup-id",
        "txn-allowed",
    ]));
    assert!(
        described.contains("0..2  (left out: 3..6, a transaction still open)"),
        "{described}"
    );

    // a transaction that finishes within the wait is taken whole
    let cfg = config(
        dir.path(),
        "txn-finished",
        &topic,
        None,
        "  open_transaction_wait_secs: 60\n",
        "",
    );
    let backup =
        tokio::task::spawn_blocking(move || kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    txn.commit_transaction(Duration::from_secs(30)).unwrap();
    let out = backup.await.unwrap();
    success(&out);
    let p = manifest(dir.path(), "txn-finished").topics[&topic].partitions[&0].clone();
    assert_eq!(p.high_watermark, 7);
    assert_eq!(p.last_stable_offset, Some(3));
    assert_eq!(p.left_out_from, None);
    assert_eq!(p.record_count, 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_selection_matching_nothing_fails_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("{}-*", unique("nothing-here"));
    let cfg = config(dir.path(), "empty", &pattern, None, "", "");
    let err = failure(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    assert!(
        err.contains(&format!("include: `{pattern}`; exclude: none")),
        "{err}"
    );
    assert!(err.contains("--allow-empty"), "{err}");
    assert!(!has_manifest(dir.path(), "empty"));

    success(&kafka_backup(&[
        "backup",
        "-c",
        cfg.to_str().unwrap(),
        "--allow-empty",
    ]));
    assert!(manifest(dir.path(), "empty").topics.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_transaction_ends_the_wait_and_its_records_are_not_taken() {
    let topic = unique("ids-abort");
    create_topic(&topic, 1, &[]).await;
    produce(
        &topic,
        &[(None, Some(b"p0".to_vec())), (None, Some(b"p1".to_vec()))],
    )
    .await;
    let txn = open_transaction(&topic, 3, "aborted").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "abort",
        &topic,
        None,
        "  open_transaction_wait_secs: 60\n",
        "",
    );
    let started = Instant::now();
    let backup =
        tokio::task::spawn_blocking(move || kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    txn.abort_transaction(Duration::from_secs(30)).unwrap();
    success(&backup.await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the abort ended the wait"
    );
    let p = manifest(dir.path(), "abort").topics[&topic].partitions[&0].clone();
    assert_eq!(p.high_watermark, 5);
    assert_eq!(p.last_stable_offset, Some(2));
    assert_eq!(p.left_out_from, None);
    assert_eq!(p.record_count, 2, "aborted records are not backed up");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_keys_that_start_with_a_zero_byte_do_not_fail_the_backup() {
    let sr = Registry::start();
    let topic = unique("ids-raw-keys");
    create_topic(&topic, 1, &[]).await;
    let id = sr
        .register(&format!("{topic}-value"), avro("Order", json!([])))
        .await;
    // 8-byte account numbers: every one starts with 0x00, and bytes 1..5
    // read as IDs no registry ever handed out
    let records: Vec<KeyValue> = (0..40u64)
        .map(|i| {
            let account = 0x0000_1234_5600_0000u64 + (i << 32);
            (
                Some(account.to_be_bytes().to_vec()),
                Some(framed(id, &[i as u8])),
            )
        })
        .collect();
    produce(&topic, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "raw", &topic, Some(&sr.url), "", "");
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    success(&out);
    let m = manifest(dir.path(), "raw");
    assert!(m.schema_registry.as_ref().unwrap().unknown_ids.is_empty());
    // the keys are counted as they are: framed-looking, 40 distinct "IDs"
    let p = &m.topics[&topic].partitions[&0];
    assert_eq!(p.schema_ids.key.framed, 40);
    assert_eq!(p.schema_ids.key.ids.len(), 40);
    // ... and said to be taken as raw bytes
    assert!(
        stderr(&out).contains(&format!("`{topic}` key")) && stderr(&out).contains("raw"),
        "{}",
        stderr(&out)
    );
}
