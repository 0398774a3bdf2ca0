//! `s3://` storage against a real S3-compatible server (moto in server mode,
//! started by `scripts/services`), through the same code path as a local folder.

mod common;

use common::*;

const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "kafka-backup-test"),
    ("AWS_SECRET_ACCESS_KEY", "kafka-backup-test-secret"),
    ("AWS_REGION", "us-east-1"),
];

/// A new topic of `partitions` partitions holding `count` records
/// `value-0`, `value-1`, ... spread round-robin.
async fn topic_of(prefix: &str, partitions: i32, count: i32) -> String {
    let topic = unique(prefix);
    create_topic(&topic, partitions, &[]).await;
    let producer: rdkafka::producer::FutureProducer = client_config().create().unwrap();
    for i in 0..count {
        let payload = format!("value-{i}");
        producer
            .send(
                rdkafka::producer::FutureRecord::<(), _>::to(&topic)
                    .partition(i % partitions)
                    .payload(&payload),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    topic
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_to_s3_and_describe_from_it() {
    let (endpoint, bucket) = s3_bucket("kb").await;
    let topic = topic_of("s3-orders", 2, 40).await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "s3.yaml",
        &format!(
            "backup_id: s3-1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  backend: s3\n  bucket: {bucket}\n  prefix: prod/nightly\n  endpoint: {endpoint}\n  allow_http: true\n  region: us-east-1\n",
            bootstrap()
        ),
    );
    success(&kafka_backup_with_env(
        &["backup", "-c", cfg.to_str().unwrap()],
        &CREDENTIALS,
    ));

    // describe finds it by URL alone; the endpoint comes from the usual AWS variables
    let mut env = CREDENTIALS.to_vec();
    env.push(("AWS_ENDPOINT", &endpoint));
    env.push(("AWS_ALLOW_HTTP", "true"));
    let path = format!("s3://{bucket}/prod/nightly");
    let out = kafka_backup_with_env(
        &[
            "describe",
            "--path",
            &path,
            "--backup-id",
            "s3-1",
            "--format",
            "json",
            "--verify-files",
        ],
        &env,
    );
    let d: serde_json::Value = serde_json::from_str(&success(&out)).unwrap();
    assert_eq!(d["records"], 40);
    assert_eq!(d["files"], 2);
    assert!(
        stderr(&out).contains("all 2 files match the manifest"),
        "{}",
        stderr(&out)
    );

    // the objects really are in the bucket, under the prefix
    let listing = reqwest::Client::new()
        .get(format!(
            "{endpoint}/{bucket}?list-type=2&prefix=prod/nightly/s3-1/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains("prod/nightly/s3-1/manifest.json"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("prod/nightly/s3-1/kafka/{topic}/1/")),
        "{listing}"
    );

    // a wrong bucket is an error naming the location, not an empty backup
    let out = kafka_backup_with_env(
        &[
            "describe",
            "--path",
            &format!("s3://{bucket}-missing/x"),
            "--backup-id",
            "s3-1",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{bucket}-missing")),
        "{}",
        stderr(&out)
    );

    // restore from the bucket (no registry: the records go back unchanged),
    // the restore journal is written beside the backup in the bucket
    let restored = format!("{topic}-restored");
    let restore_cfg = write(
        dir.path(),
        "s3-restore.yaml",
        &format!(
            "mode: restore\nbackup_id: s3-1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {topic}: {restored}\nstorage:\n  url: s3://{bucket}/prod/nightly\n  endpoint: {endpoint}\n  allow_http: true\n  region: us-east-1\n",
            bootstrap()
        ),
    );
    let printed = success(&kafka_backup_with_env(
        &[
            "apply",
            "-c",
            restore_cfg.to_str().unwrap(),
            "--auto-approve",
        ],
        &CREDENTIALS,
    ));
    assert!(printed.contains("40 record(s) written"), "{printed}");
    let consumer: rdkafka::consumer::BaseConsumer = client_config()
        .set("group.id", unique("s3-count"))
        .create()
        .unwrap();
    let mut total = 0;
    for p in 0..2 {
        let (low, high) = rdkafka::consumer::Consumer::fetch_watermarks(
            &consumer,
            &restored,
            p,
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(high - low, 20, "partition {p}");
        total += high - low;
    }
    assert_eq!(total, 40);
    let listing = reqwest::Client::new()
        .get(format!(
            "{endpoint}/{bucket}?list-type=2&prefix=prod/nightly/s3-1/restore/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(".json</Key>"), "{listing}");
}

/// Server-side encryption options pass through `storage.options` to
/// object_store: every object of the backup is stored with the header the
/// option asks for (here SSE-S3, `AES256`), beside the client-side sealing.
#[tokio::test(flavor = "multi_thread")]
async fn server_side_encryption_options_reach_every_object() {
    let (endpoint, bucket) = s3_bucket("kb-sse").await;
    let topic = topic_of("s3-sse", 1, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "sse.yaml",
        &format!(
            "backup_id: sse-1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  url: s3://{bucket}/p\n  endpoint: {endpoint}\n  allow_http: true\n  region: us-east-1\n  options:\n    aws_server_side_encryption: AES256\n  encryption:\n    key: ${{BACKUP_KEY}}\n",
            bootstrap()
        ),
    );
    let mut env = CREDENTIALS.to_vec();
    env.push(("BACKUP_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
    success(&kafka_backup_with_env(
        &["backup", "-c", cfg.to_str().unwrap()],
        &env,
    ));
    let out = python_client("s3_objects.py")
        .args([&endpoint, &bucket, "p/sse-1/"])
        .envs(CREDENTIALS)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let objects: std::collections::BTreeMap<String, Option<String>> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        objects.keys().any(|k| k.ends_with("manifest.json"))
            && objects.keys().any(|k| k.ends_with(".seg.zst")),
        "{objects:?}"
    );
    for (key, sse) in &objects {
        assert_eq!(sse.as_deref(), Some("AES256"), "{key}");
    }
}
