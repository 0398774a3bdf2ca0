//! Karapace as a source and as a target, with the test registry's `--dialect karapace-3.16`
//! (`tests/registry/src/dialect.rs`; CI cannot install Karapace). Records written by the
//! real Python `confluent-kafka` serializers (Avro, JSON Schema, Protobuf, two schema
//! versions each, `--no-references`: Karapace 3.16 has no Avro or JSON references) are
//! backed up with the registry, soft-deleted versions included, restored into a
//! Confluent-dialect registry that hands out other IDs, and from there back into a
//! fresh Karapace-dialect one. On every target the same library's deserializers must
//! decode every record to what they decoded on the source, `verify` must find the target
//! matching the backup, and what was soft-deleted must stay soft-deleted.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

const COUNT: usize = 40;
const FORMATS: [&str; 3] = ["avro", "json", "protobuf"];
const KARAPACE: &str = "karapace-3.16";

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/confluent_roundtrip.py")
        .display()
        .to_string()
}

/// Runs the client with self-contained schemas; gives its JSON output.
fn client(command: &str, registry: &str, topic: &str, format: &str, extra: &[&str]) -> Value {
    let out = Command::new(ground("KB_PYTHON"))
        .arg(script())
        .args([command, "--bootstrap", &bootstrap(), "--registry", registry])
        .args(["--topic", topic, "--format", format, "--no-references"])
        .args(["--count", &COUNT.to_string()])
        .args(extra)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "confluent_roundtrip.py {command} {format} {topic} against {registry} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

/// Every record of `topic`, decoded against `registry`.
fn consume(registry: &str, topic: &str, format: &str) -> Vec<Value> {
    client("consume", registry, topic, format, &[])["records"]
        .as_array()
        .unwrap()
        .clone()
}

/// The decoded records without the schema ID (which differs by design).
fn decoded(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| json!({"partition": r["partition"], "offset": r["offset"], "key": r["key"], "value": r["value"]}))
        .collect()
}

fn ids(records: &[Value]) -> BTreeSet<u64> {
    records
        .iter()
        .map(|r| r["schema_id"].as_u64().unwrap())
        .collect()
}

/// `GET path` on `registry`, asserting 200.
async fn get(registry: &Registry, path: &str) -> Value {
    let (status, body) = registry.call(reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path} on {}: {body}", registry.url);
    body
}

/// The data of a scenario: topics written on the source and what they decode to.
struct Written {
    prefix: String,
    /// Per format: the records as the source decoded them.
    before: Vec<Vec<Value>>,
}

impl Written {
    fn topic(&self, format: &str) -> String {
        format!("{}-{format}", self.prefix)
    }

    /// The subjects whose state must come through: `-avro-value` (its version 1, which
    /// the first records were written with, soft-deleted) and `-gone` (soft-deleted
    /// whole).
    fn legacy(&self) -> String {
        format!("{}-avro-value", self.prefix)
    }

    fn gone(&self) -> String {
        format!("{}-gone", self.prefix)
    }
}

/// Fills `source`: four unrelated schemas first (so its IDs differ from a target's),
/// then the three topics through the client, then the soft deletes.
async fn write_source(source: &Registry, prefix: &str) -> Written {
    for i in 0..4 {
        let schema = json!({"type": "record", "name": format!("Pad{i}"), "fields": []});
        source
            .register(
                &format!("zz-padding-{i}"),
                json!({"schema": schema.to_string()}),
            )
            .await;
    }
    let mut written = Written {
        prefix: prefix.to_owned(),
        before: Vec::new(),
    };
    for format in FORMATS {
        let topic = written.topic(format);
        let produced = client(
            "produce",
            &source.url,
            &topic,
            format,
            &["--partitions", "3"],
        );
        assert_eq!(produced["produced"], COUNT);
        assert_eq!(
            produced["schema_ids"].as_array().unwrap().len(),
            2,
            "two schema versions: {produced}"
        );
    }
    // version 1 of the Avro value subject soft-deleted: the records written with it
    // must still decode, on the source and on every target
    let (status, body) = source
        .call(
            reqwest::Method::DELETE,
            &format!("/subjects/{}/versions/1", encode(&written.legacy())),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let gone = written.gone();
    let schema =
        json!({"type": "record", "name": "Gone", "fields": [{"name": "g", "type": "int"}]});
    source
        .register(&gone, json!({"schema": schema.to_string()}))
        .await;
    let (status, body) = source
        .call(
            reqwest::Method::DELETE,
            &format!("/subjects/{}", encode(&gone)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for format in FORMATS {
        written
            .before
            .push(consume(&source.url, &written.topic(format), format));
    }
    written
}

/// Backs up `source` (registry with soft-deleted versions, and `topics`) as `backup_id`,
/// restores it into `target` with the topics renamed `<topic><suffix>`; gives the restore
/// configuration (for [`assert_verified`]).
fn backup_and_restore(
    dir: &Path,
    backup_id: &str,
    source: &Registry,
    topics: &[String],
    target: &Registry,
    suffix: &str,
) -> PathBuf {
    let store = dir.join("store");
    let include: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    let backup = write(
        dir,
        &format!("{backup_id}-backup.yaml"),
        &format!(
            "backup_id: {backup_id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [{}]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    backup:\n      include_soft_deleted: true\n",
            bootstrap(),
            include.join(", "),
            store.display(),
            source.url
        ),
    );
    success(&kafka_backup(&["backup", "-c", backup.to_str().unwrap()]));
    let mapping: String = topics
        .iter()
        .map(|t| format!("    {t}: {t}{suffix}\n"))
        .collect();
    let restore = write(
        dir,
        &format!("{backup_id}-restore.yaml"),
        &format!(
            "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n{mapping}storage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      rewrite_ids: true\n",
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
    restore
}

/// `verify` finds the target of `restore` matching the backup.
fn assert_verified(restore: &Path) {
    let verified = success(&kafka_backup(&["verify", "-c", restore.to_str().unwrap()]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
}

/// Every record of the topics restored into `target` (`<topic><suffix>`) decodes to what
/// the source decoded, under IDs other than `source_ids` (per format).
fn assert_records_decode(
    written: &Written,
    target: &Registry,
    suffix: &str,
    source_ids: &[BTreeSet<u64>],
) -> Vec<BTreeSet<u64>> {
    let mut out = Vec::new();
    for (i, format) in FORMATS.iter().enumerate() {
        let after = consume(
            &target.url,
            &format!("{}{suffix}", written.topic(format)),
            format,
        );
        assert_eq!(
            decoded(&after),
            decoded(&written.before[i]),
            "{format}: decoded values differ on {}",
            target.url
        );
        assert_ne!(ids(&after), source_ids[i], "{format}: the IDs did not move");
        out.push(ids(&after));
    }
    out
}

/// The soft deletes of the source are soft deletes on `target` too.
async fn assert_soft_deletes_kept(written: &Written, target: &Registry) {
    let legacy = encode(&written.legacy());
    let live = get(target, &format!("/subjects/{legacy}/versions")).await;
    let all = get(target, &format!("/subjects/{legacy}/versions?deleted=true")).await;
    assert_eq!(
        (live, all),
        (json!([2]), json!([1, 2])),
        "{}: version 1 stays soft-deleted on {}",
        written.legacy(),
        target.url
    );
    let gone = json!(written.gone());
    let subjects = get(target, "/subjects").await;
    let with_deleted = get(target, "/subjects?deleted=true").await;
    assert!(
        !subjects.as_array().unwrap().contains(&gone),
        "{gone} is live on {}: {subjects}",
        target.url
    );
    assert!(
        with_deleted.as_array().unwrap().contains(&gone),
        "{gone} is gone for good from {}: {with_deleted}",
        target.url
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn karapace_source_restores_into_confluent_target() {
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start_dialect(KARAPACE);
    let written = write_source(&source, &unique("kara")).await;
    let source_ids: Vec<BTreeSet<u64>> = written.before.iter().map(|r| ids(r)).collect();

    let target = Registry::start();
    let topics: Vec<String> = FORMATS.iter().map(|f| written.topic(f)).collect();
    let restore = backup_and_restore(dir.path(), "kara", &source, &topics, &target, "-restored");
    assert_records_decode(&written, &target, "-restored", &source_ids);
    assert_soft_deletes_kept(&written, &target).await;
    assert_verified(&restore);
}

#[tokio::test(flavor = "multi_thread")]
async fn karapace_to_confluent_and_back_to_karapace() {
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start_dialect(KARAPACE);
    let written = write_source(&source, &unique("kback")).await;
    let source_ids: Vec<BTreeSet<u64>> = written.before.iter().map(|r| ids(r)).collect();

    let confluent = Registry::start();
    let topics: Vec<String> = FORMATS.iter().map(|f| written.topic(f)).collect();
    let there = backup_and_restore(dir.path(), "there", &source, &topics, &confluent, "-c");
    assert_verified(&there);
    let confluent_ids = assert_records_decode(&written, &confluent, "-c", &source_ids);
    assert_soft_deletes_kept(&written, &confluent).await;

    // back: the Confluent copy into a fresh Karapace
    let back = Registry::start_dialect(KARAPACE);
    // padding of its own, so its IDs are neither the source's nor the Confluent copy's
    for i in 0..7 {
        let schema = json!({"type": "record", "name": format!("Other{i}"), "fields": []});
        back.register(
            &format!("yy-other-{i}"),
            json!({"schema": schema.to_string()}),
        )
        .await;
    }
    let restored: Vec<String> = topics.iter().map(|t| format!("{t}-c")).collect();
    let restore = backup_and_restore(dir.path(), "back", &confluent, &restored, &back, "-k");
    assert_records_decode(&written, &back, "-c-k", &confluent_ids);
    assert_soft_deletes_kept(&written, &back).await;
    assert_verified(&restore);
}

/// Karapace has no subject-level modes (`GET /mode/{s}` answers the global mode): a
/// restore from it must not give the target's subjects modes of their own (and the way
/// back into Karapace must not try to set any: it has no `PUT /mode`).
#[tokio::test(flavor = "multi_thread")]
async fn karapace_source_gives_the_target_no_subject_modes() {
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start_dialect(KARAPACE);
    let written = write_source(&source, &unique("kmode")).await;
    let target = Registry::start();
    let topics: Vec<String> = FORMATS.iter().map(|f| written.topic(f)).collect();
    let restore = backup_and_restore(dir.path(), "kmode", &source, &topics, &target, "-restored");
    assert_verified(&restore);
    let subjects = get(&target, "/subjects?deleted=true").await;
    let mut own_modes = Vec::new();
    for subject in subjects.as_array().unwrap() {
        let subject = subject.as_str().unwrap();
        let (status, body) = target
            .call(
                reqwest::Method::GET,
                &format!("/mode/{}", encode(subject)),
                None,
            )
            .await;
        if status != 404 || body["error_code"] != json!(40409) {
            own_modes.push(format!("{subject}: {status} {body}"));
        }
    }
    assert!(
        own_modes.is_empty(),
        "subjects with a mode of their own on the target:\n{}",
        own_modes.join("\n")
    );
}

/// The Karapace leg alone: a Confluent source (no subject modes) restored into Karapace;
/// `verify` must not take Karapace's answer to `GET /mode/{s}` (the global mode) for a
/// mode of the subject's own.
#[tokio::test(flavor = "multi_thread")]
async fn confluent_source_restores_into_karapace_target() {
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start();
    let written = write_source(&source, &unique("ckara")).await;
    let source_ids: Vec<BTreeSet<u64>> = written.before.iter().map(|r| ids(r)).collect();

    let target = Registry::start_dialect(KARAPACE);
    for i in 0..7 {
        let schema = json!({"type": "record", "name": format!("Other{i}"), "fields": []});
        target
            .register(
                &format!("yy-other-{i}"),
                json!({"schema": schema.to_string()}),
            )
            .await;
    }
    let topics: Vec<String> = FORMATS.iter().map(|f| written.topic(f)).collect();
    let restore = backup_and_restore(dir.path(), "ckara", &source, &topics, &target, "-k");
    assert_records_decode(&written, &target, "-k", &source_ids);
    assert_soft_deletes_kept(&written, &target).await;
    assert_verified(&restore);
}

/// A plan needing what Karapace 3.16 lacks (IMPORT mode for `force_ids`) is
/// refused when it is made, naming the capability and the key that avoids
/// it, and `apply` writes nothing; without `force_ids` the same backup goes in.
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_karapace_cannot_run_is_refused_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let _source = backup_of_fixture(dir.path()).await.0;
    let target = Registry::start_dialect(KARAPACE);
    let config = |name: &str, extra: &str| {
        write(
            dir.path(),
            name,
            &format!(
                "mode: restore\nbackup_id: seed-example\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      force_register: true\n{extra}",
                dir.path().join("store").display(),
                target.url
            ),
        )
    };
    let forced = config("forced.yaml", "      force_ids: true\n");
    let forced = forced.to_str().unwrap();
    let out = kafka_backup(&["plan", "-c", forced]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}\n{}", stderr(&out));
    assert!(
        said.contains("[unsupported]") && said.contains("IMPORT mode"),
        "{said}"
    );
    assert!(
        said.contains("leave `force_ids` and `id_mapping_file` out"),
        "{said}"
    );
    assert!(
        said.contains("target registry answers a subject's mode with an inherited one"),
        "{said}"
    );
    let out = kafka_backup(&["apply", "-c", forced, "--registry-only", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(get(&target, "/subjects").await, json!([]));

    let plain = config("plain.yaml", "      rewrite_ids: true\n");
    let plain = plain.to_str().unwrap();
    success(&kafka_backup(&["plan", "-c", plain]));
    success(&kafka_backup(&[
        "apply",
        "-c",
        plain,
        "--registry-only",
        "--auto-approve",
    ]));
    assert_eq!(
        get(&target, "/subjects").await,
        json!(["orders-value", "payments-value"])
    );
}
