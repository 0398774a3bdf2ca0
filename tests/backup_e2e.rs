//! End to end: the `kafka-backup` binary backs up topics from the live broker,
//! and the stored segments hold every record byte for byte; damaged backups are
//! refused with the file named.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kafka_backup::manifest::Manifest;
use kafka_backup::segment::{Record, SegmentReader, TimestampType, sha256_hex};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Key, value, headers and timestamp of one produced record.
type Sample = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    i64,
);

/// Records with every shape Kafka allows: null and empty keys and values,
/// framed values, duplicate and null headers, old timestamps.
fn sample(partition: i32, i: i64) -> Sample {
    let key = match i % 4 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("key-{partition}-{i}").into_bytes()),
    };
    let value = match i % 5 {
        0 => None,
        1 => Some(Vec::new()),
        2 => Some([&[0u8, 0, 0, 0, 7][..], &i.to_be_bytes()].concat()),
        _ => Some(vec![(i % 251) as u8; (i as usize * 37) % 3000]),
    };
    let headers = match i % 3 {
        0 => vec![],
        1 => vec![
            ("trace".to_owned(), Some(b"a".to_vec())),
            ("trace".to_owned(), None),
        ],
        _ => vec![
            ("".to_owned(), Some(Vec::new())),
            ("h".to_owned(), Some(vec![0xff, 0])),
        ],
    };
    // 2001-09-09 plus i seconds: old enough to be deleted at once without retention.ms=-1
    let timestamp = 1_000_000_000_000 + i * 1000;
    (key, value, headers, timestamp)
}

async fn produce(topic: &str, partitions: i32, per_partition: i64) -> BTreeMap<i32, Vec<Record>> {
    let producer: FutureProducer = client_config()
        .set("enable.idempotence", "true")
        .set("compression.type", "zstd")
        .create()
        .unwrap();
    let mut expected: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for partition in 0..partitions {
        for i in 0..per_partition {
            let (key, value, headers, timestamp) = sample(partition, i);
            let mut owned = OwnedHeaders::new();
            for (k, v) in &headers {
                owned = owned.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                .partition(partition)
                .timestamp(timestamp)
                .headers(owned);
            if let Some(k) = &key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &value {
                record = record.payload(v.as_slice());
            }
            let delivery = producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("producing to `{topic}`: {e}"));
            assert_eq!(delivery.partition, partition);
            let offset = delivery.offset;
            expected.entry(partition).or_default().push(Record {
                offset,
                timestamp: Some(timestamp),
                timestamp_type: TimestampType::CreateTime,
                key,
                value,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.into_bytes(), v))
                    .collect(),
            });
        }
    }
    expected
}

fn config(dir: &std::path::Path, backup_id: &str, include: &str) -> std::path::PathBuf {
    write(
        dir,
        "backup.yaml",
        &format!(
            "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers:\n    - {}\n  topics:\n    include:\n      - \"{include}\"\nstorage:\n  backend: filesystem\n  path: {}\n",
            bootstrap(),
            dir.join("store").display()
        ),
    )
}

fn read_manifest(dir: &std::path::Path, backup_id: &str) -> Manifest {
    let bytes = std::fs::read(dir.join("store").join(backup_id).join("manifest.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_takes_every_record_byte_for_byte() {
    let topic = unique("orders");
    create_topic(&topic, 3, &[("cleanup.policy", "delete")]).await;
    let expected = produce(&topic, 3, 120).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "e2e-1", &topic);

    // small segments so that every partition is cut into several
    success(&kafka_backup(&[
        "backup",
        "-c",
        cfg.to_str().unwrap(),
        "--segment-bytes",
        "20000",
    ]));

    let manifest = read_manifest(dir.path(), "e2e-1");
    assert_eq!(manifest.topics.len(), 1, "only the selected topic");
    let t = &manifest.topics[&topic];
    assert_eq!(t.partition_count, 3);
    assert_eq!(
        t.configs.get("retention.ms").map(String::as_str),
        Some("-1")
    );
    assert_eq!(
        t.configs.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );
    for (partition, records) in &expected {
        let p = &t.partitions[partition];
        assert_eq!(p.record_count, records.len() as u64);
        assert_eq!(p.high_watermark - p.low_watermark, records.len() as i64);
        assert!(
            p.segments.len() > 1,
            "partition {partition} was cut into segments"
        );
        let mut back = Vec::new();
        for seg in &p.segments {
            let bytes = std::fs::read(dir.path().join("store/e2e-1").join(&seg.path)).unwrap();
            assert_eq!(sha256_hex(&bytes), seg.meta.sha256);
            assert_eq!(manifest.files[&seg.path].sha256, seg.meta.sha256);
            let records: Vec<Record> = SegmentReader::new(&bytes[..])
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(records.len() as u64, seg.meta.record_count);
            assert_eq!(records.first().unwrap().offset, seg.meta.first_offset);
            back.extend(records);
        }
        assert_eq!(&back, records, "partition {partition} byte for byte");
    }

    let json = success(&kafka_backup(&[
        "describe",
        "--path",
        dir.path().join("store").to_str().unwrap(),
        "--backup-id",
        "e2e-1",
        "--format",
        "json",
        "--verify-files",
    ]));
    let d: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(d["records"], 360);
    assert_eq!(d["topics"][0]["name"], topic.as_str());
    assert_eq!(
        d["topics"][0]["partition_details"][1]["offsets"],
        serde_json::json!([0, 119])
    );
    assert_eq!(
        d["topics"][0]["partition_details"][0]["timestamps"],
        serde_json::json!([1_000_000_000_000i64, 1_000_000_119_000i64])
    );
    assert_eq!(
        d["schema_registry"],
        serde_json::json!({"enabled": false, "subjects_count": 0, "schemas_count": 0, "subjects": []})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_backups_are_refused_with_the_file_named() {
    let topic = unique("damage");
    create_topic(&topic, 1, &[]).await;
    produce(&topic, 1, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "e2e-2", &topic);
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    let store = dir.path().join("store");
    let describe = |extra: &[&str]| {
        let mut args = vec![
            "describe",
            "--path",
            store.to_str().unwrap(),
            "--backup-id",
            "e2e-2",
        ];
        args.extend_from_slice(extra);
        kafka_backup(&args)
    };
    success(&describe(&["--verify-files"]));

    let manifest = read_manifest(dir.path(), "e2e-2");
    let seg = &manifest.topics[&topic].partitions[&0].segments[0];
    let seg_file = store.join("e2e-2").join(&seg.path);
    let mut bytes = std::fs::read(&seg_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&seg_file, &bytes).unwrap();
    let out = describe(&["--verify-files"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "`e2e-2/{}` does not match the manifest: sha256 is",
            seg.path
        )),
        "{err}"
    );

    std::fs::remove_file(&seg_file).unwrap();
    let err = stderr(&describe(&["--verify-files"]));
    assert!(
        err.contains(&format!(
            "`e2e-2/{}` is listed in the manifest but missing",
            seg.path
        )),
        "{err}"
    );

    let manifest_file = store.join("e2e-2/manifest.json");
    let text = std::fs::read(&manifest_file).unwrap();
    std::fs::write(&manifest_file, &text[..text.len() / 2]).unwrap();
    let out = describe(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`e2e-2/manifest.json` is not a valid manifest: EOF"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_backup_is_cleared_and_a_finished_one_is_kept() {
    let topic = unique("rerun");
    create_topic(&topic, 2, &[]).await;
    produce(&topic, 2, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "e2e-3", &topic);
    // what a killed run leaves: files, no manifest
    let leftover = dir
        .path()
        .join("store/e2e-3/kafka/x/0/00000000000000000000-00000000000000000009.seg.zst");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, b"half a segment").unwrap();

    let store = dir.path().join("store");
    let list = || {
        let out = kafka_backup(&[
            "list",
            "--path",
            store.to_str().unwrap(),
            "--format",
            "json",
        ]);
        serde_json::from_str::<serde_json::Value>(&success(&out)).unwrap()
    };
    assert_eq!(
        list(),
        serde_json::json!([{"backup_id": "e2e-3", "complete": false, "files": 1, "bytes": 14}])
    );

    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    assert!(!leftover.exists(), "the interrupted run's file was cleared");
    let listed = list();
    assert_eq!(listed[0]["complete"], true);
    assert_eq!(listed[0]["records"], 20);
    assert_eq!(listed[0]["files"], 3, "two segments and the manifest");
    let manifest = read_manifest(dir.path(), "e2e-3");
    assert_eq!(manifest.files.len(), 2);
    for path in manifest.files.keys() {
        assert!(path.starts_with(&format!("kafka/{topic}/")), "{path}");
    }

    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("backup `e2e-3` already exists"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        read_manifest(dir.path(), "e2e-3"),
        manifest,
        "the finished backup is untouched"
    );
}

#[test]
fn validate_prints_the_resolved_config_or_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        "enterprise:\n  schema_registry:\n    url: http://sr:8081\n    auth:\n      type: basic\n      username: admin\n      password: ${KB_TEST_UNSET_PASSWORD:-hunter2}\n",
    );
    let out = kafka_backup(&["validate", "-c", good.to_str().unwrap(), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&success(&out)).unwrap();
    assert_eq!(
        json["enterprise"]["schema_registry"]["auth"]["password"],
        "<redacted>"
    );
    assert!(!stdout(&out).contains("hunter2") && !stderr(&out).contains("hunter2"));

    let bad = write(
        dir.path(),
        "bad.toml",
        "[enterprise.schema_registry]\nenabled = true\nurl = 5\n",
    );
    let out = kafka_backup(&["validate", "-c", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bad.toml:3: `enterprise.schema_registry.url`: invalid type: integer `5`, expected a string"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let out = kafka_backup(&["verify", "-c", "nothing.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nothing.yaml"), "{}", stderr(&out));
}

#[test]
fn credentials_over_plain_http_and_unverified_brokers_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    // the registry does not answer (nothing listens on port 1): the warning
    // comes before any request, and the password is never shown
    let cfg = write(
        dir.path(),
        "http.yaml",
        &format!(
            "backup_id: w1\nsource:\n  bootstrap_servers: [{}]\n  properties:\n    enable.ssl.certificate.verification: \"false\"\n  topics:\n    include: [\"no-such-topic-{}\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: http://127.0.0.1:1\n    request_timeout_secs: 1\n    auth:\n      type: basic\n      username: admin\n      password: S3CR3T-pw\n",
            bootstrap(),
            std::process::id(),
            dir.path().join("store").display()
        ),
    );
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap(), "--allow-empty"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("sends credentials to `http://127.0.0.1:1/` over plain HTTP"),
        "{err}"
    );
    assert!(
        err.contains("`enable.ssl.certificate.verification: false` for the source cluster"),
        "{err}"
    );
    assert!(
        !err.contains("S3CR3T") && !stdout(&out).contains("S3CR3T"),
        "{err}"
    );
}
