//! End to end with an independent client: records written by the real
//! Python `confluent-kafka` serializers (Avro, JSON Schema, Protobuf, each
//! with a reference and two schema versions) are backed up with the registry,
//! restored into a target registry that hands out other IDs, and read back by
//! the same library's deserializers against the target: the decoded values
//! must equal those read from the source.

mod common;

use common::*;
use serde_json::{Value, json};

/// Runs the client; gives its JSON output.
fn client(args: &[&str]) -> Value {
    python_json("confluent_roundtrip.py", args)
}

fn produce(registry: &str, topic: &str, format: &str, count: usize) -> Value {
    let n = count.to_string();
    let servers = bootstrap();
    let args = vec![
        "produce",
        "--bootstrap",
        &servers,
        "--registry",
        registry,
        "--topic",
        topic,
        "--format",
        format,
        "--count",
        &n,
        "--partitions",
        "3",
    ];
    client(&args)
}

fn consume(registry: &str, topic: &str, format: &str, count: usize) -> Vec<Value> {
    let n = count.to_string();
    let servers = bootstrap();
    let args = vec![
        "consume",
        "--bootstrap",
        &servers,
        "--registry",
        registry,
        "--topic",
        topic,
        "--format",
        format,
        "--count",
        &n,
    ];
    client(&args)["records"].as_array().unwrap().clone()
}

/// The decoded records without the schema ID (which differs by design).
fn decoded(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            json!({
                "partition": r["partition"],
                "offset": r["offset"],
                "key": r["key"],
                "value": r["value"],
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_real_serializers_decode_after_a_restore_with_other_ids() {
    const COUNT: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start();
    // four unrelated schemas first: the source's IDs start at 5; the target
    // gets the restored schemas first (subjects in name order, these last)
    for i in 0..4 {
        let schema = json!({"type": "record", "name": format!("Pad{i}"), "fields": []});
        source
            .register(
                &format!("zz-padding-{i}"),
                json!({"schema": schema.to_string()}),
            )
            .await;
    }
    let prefix = unique("serde");
    let formats = ["avro", "json", "protobuf"];
    let mut before = Vec::new();
    for format in formats {
        let topic = format!("{prefix}-{format}");
        let produced = produce(&source.url, &topic, format, COUNT);
        assert_eq!(produced["produced"], COUNT);
        assert_eq!(
            produced["schema_ids"].as_array().unwrap().len(),
            2,
            "two schema versions: {produced}"
        );
        before.push(consume(&source.url, &topic, format, COUNT));
    }

    let store = dir.path().join("store");
    let backup = write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: serde\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{prefix}-*\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            bootstrap(),
            store.display(),
            source.url
        ),
    );
    success(&kafka_backup(&["backup", "-c", backup.to_str().unwrap()]));

    let target = Registry::start();
    let mapping: String = formats
        .iter()
        .map(|f| format!("    {prefix}-{f}: {prefix}-{f}-restored\n"))
        .collect();
    let restore = write(
        dir.path(),
        "restore.yaml",
        &format!(
            "mode: restore\nbackup_id: serde\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n{mapping}storage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      rewrite_ids: true\n",
            bootstrap(),
            store.display(),
            target.url
        ),
    );
    let printed = success(&kafka_backup(&[
        "apply",
        "-c",
        restore.to_str().unwrap(),
        "--auto-approve",
    ]));
    eprintln!("{printed}");
    let verified = success(&kafka_backup(&["verify", "-c", restore.to_str().unwrap()]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );

    for (format, before) in formats.iter().zip(&before) {
        let restored = format!("{prefix}-{format}-restored");
        let after = consume(&target.url, &restored, format, COUNT);
        assert_eq!(
            decoded(&after),
            decoded(before),
            "{format}: decoded values differ"
        );
        // the IDs really moved, and every record points at the target's ID
        let ids = |rs: &[Value]| -> std::collections::BTreeSet<u64> {
            rs.iter()
                .map(|r| r["schema_id"].as_u64().unwrap())
                .collect()
        };
        assert_ne!(ids(&after), ids(before), "{format}: the IDs did not move");
        // read against the source registry, the restored records do not
        // decode as they were (their IDs name other schemas or none there)
        let out = python_client("confluent_roundtrip.py")
            .args([
                "consume",
                "--bootstrap",
                &bootstrap(),
                "--registry",
                &source.url,
                "--topic",
                &restored,
                "--format",
                format,
                "--count",
                &COUNT.to_string(),
                "--timeout-secs",
                "10",
            ])
            .output()
            .unwrap();
        let wrong = out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout)
                .map(|v| decoded(v["records"].as_array().unwrap()) == decoded(before))
                .unwrap_or(false);
        assert!(
            !wrong,
            "{format}: restored records decode the same against the source: the test would not see a wrong rewrite"
        );
    }
}
