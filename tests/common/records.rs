//! Records as the end-to-end tests write, restore and compare them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{client_config, unique};

/// One record as the tests compare it (offsets left out: a restored
/// partition has its own).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rec {
    pub partition: i32,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// `payload` in the Confluent wire format under schema ID `id`.
pub fn framed(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// The reference page's example: source IDs 1, 5, 2 become 1, 2, 3.
pub fn seed_map() -> BTreeMap<u32, u32> {
    [(1, 1), (5, 2), (2, 3)].into_iter().collect()
}

/// `r` as a restore through `map` must write it: framed keys and values and
/// ID-form `__value_schema_id` headers get the mapped ID; IDs the map lacks
/// and everything else stay as they are.
pub fn rewritten(mut r: Rec, map: &BTreeMap<u32, u32>) -> Rec {
    let rewrite = |b: &mut Vec<u8>| {
        if b.len() >= 5 && b[0] == 0 {
            let id = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
            if let Some(to) = map.get(&id) {
                b[1..5].copy_from_slice(&to.to_be_bytes());
            }
        }
    };
    if let Some(k) = r.key.as_mut() {
        rewrite(k);
    }
    if let Some(v) = r.value.as_mut() {
        rewrite(v);
    }
    for (name, value) in r.headers.iter_mut() {
        if name == "__value_schema_id"
            && let Some(v) = value.as_mut()
        {
            rewrite(v);
        }
    }
    r
}

/// Record `i` of a test topic: values framed with the source IDs 5, 1 and 2
/// (Protobuf-style message indexes after 2), unframed JSON, tombstones; keys
/// framed, plain or absent; headers with an ID-form schema header, duplicate
/// names and a null value. On 3 partitions, the first record of each
/// partition carries ID 5 (0: header, 1: value) or 1 (2: value); with
/// `extra_id`, record 7 carries that ID instead.
pub fn record(i: u32, partitions: i32, extra_id: Option<u32>) -> Rec {
    record_padded(i, partitions, extra_id, 0)
}

/// [`record`] with `pad` more bytes in each framed value.
pub fn record_padded(i: u32, partitions: i32, extra_id: Option<u32>, pad: usize) -> Rec {
    let value = match i % 5 {
        0 => Some(format!("{{\"plain\":{i}}}").into_bytes()),
        1 => Some(framed(
            5,
            format!("avro-v2-{i}{}", "x".repeat(pad)).as_bytes(),
        )),
        2 => Some(framed(
            1,
            format!("avro-v1-{i}{}", "y".repeat(pad)).as_bytes(),
        )),
        3 => Some(framed(2, &[0x04, 0x02, 0x00, b'p', i as u8])),
        _ => None,
    };
    let value = match extra_id {
        Some(id) if i == 7 => Some(framed(id, b"unknown")),
        _ => value,
    };
    let key = match i % 3 {
        0 => Some(framed(2, format!("k{i}").as_bytes())),
        1 => Some(format!("key-{i}").into_bytes()),
        _ => None,
    };
    let mut headers = vec![("trace".to_owned(), Some(format!("t{i}").into_bytes()))];
    if i.is_multiple_of(4) {
        headers.push(("__value_schema_id".to_owned(), Some(framed(5, b""))));
        headers.push(("trace".to_owned(), None));
    }
    Rec {
        partition: (i % partitions as u32) as i32,
        timestamp: Some(1_700_000_000_000 + i64::from(i) * 1000),
        key,
        value,
        headers,
    }
}

/// Produces `records` to their partitions, all in flight at once, and waits
/// for every delivery.
pub async fn produce(topic: &str, records: &[Rec]) {
    produce_to(client_config(), topic, records).await
}

/// [`produce`] through another client configuration (another broker).
pub async fn produce_to(config: rdkafka::ClientConfig, topic: &str, records: &[Rec]) {
    let producer: FutureProducer = config.create().unwrap();
    let mut pending = Vec::new();
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(r.partition)
            .headers(headers);
        if let Some(k) = &r.key {
            fr = fr.key(&k[..]);
        }
        if let Some(v) = &r.value {
            fr = fr.payload(&v[..]);
        }
        if let Some(ts) = r.timestamp {
            fr = fr.timestamp(ts);
        }
        pending.push(producer.send_result(fr).map_err(|(e, _)| e).unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Every record of `topic`, per partition in offset order.
pub fn consume_all(topic: &str, partitions: i32) -> BTreeMap<i32, Vec<Rec>> {
    consume_all_from(client_config(), topic, partitions)
}

/// [`consume_all`] through another client configuration (another broker).
pub fn consume_all_from(
    mut config: rdkafka::ClientConfig,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Vec<Rec>> {
    let consumer: BaseConsumer = config
        .set("group.id", unique("verify"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, p, Offset::Offset(low))
            .unwrap();
        consumer.assign(&list).unwrap();
        let mut recs = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (recs.len() as i64) < high - low {
            assert!(std::time::Instant::now() < deadline, "{topic}[{p}] stalled");
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m.unwrap();
            if m.partition() != p {
                continue;
            }
            recs.push(Rec {
                partition: p,
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        out.insert(p, recs);
    }
    out
}

/// A backup of the reference page's example: a source registry seeded with
/// `fixtures/plan/shifted-ids` (IDs 1, 5, 2) and a 3-partition topic of
/// framed records, both backed up as `b1` under `dir/store`.
pub struct SeededBackup {
    pub dir: tempfile::TempDir,
    pub source: super::Registry,
    pub topic: String,
    pub records: Vec<Rec>,
}

/// Seeds a fresh source registry, writes `records` to a new `topic` and backs both up.
pub async fn seeded_backup(topic: String, records: Vec<Rec>) -> SeededBackup {
    let b = seeded_source(topic, 3, records).await;
    back_up_b1(&b);
    b
}

/// [`seeded_backup`] before the backup: a fresh source registry seeded with
/// `fixtures/plan/shifted-ids` and `records` in a new `topic` of
/// `partitions` partitions (a test adds what the backup should see, then
/// calls [`back_up_b1`]).
pub async fn seeded_source(topic: String, partitions: i32, records: Vec<Rec>) -> SeededBackup {
    use super::*;
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: kafka_backup::model::RegistrySnapshot = serde_json::from_slice(
        &std::fs::read(root.join("fixtures/plan/shifted-ids/backup.json")).unwrap(),
    )
    .unwrap();
    let source = Registry::start();
    seed_from_fixture(&source, &fixture).await;
    create_topic(&topic, partitions, &[]).await;
    produce(&topic, &records).await;
    SeededBackup {
        dir,
        source,
        topic,
        records,
    }
}

/// Backs up the source registry and topic of `b` as `b1` under `dir/store`.
pub fn back_up_b1(b: &SeededBackup) {
    use super::*;
    let cfg = write(
        b.dir.path(),
        "backup.yaml",
        &format!(
            // records may carry an ID the source never had (`extra_id`), for
            // the restore's missing-ID policy: the backup keeps them knowingly
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{}\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    backup:\n      allow_unknown_ids: true\n",
            bootstrap(),
            b.topic,
            b.dir.path().join("store").display(),
            b.source.url
        ),
    );
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
}

/// A restore configuration of backup `b1` under `dir/store`: `topic` restored
/// as `into`, the registry into `target_url`; `restore` is the body of the
/// `restore:` block, one option per line, indented by 6, after
/// `force_register: true` (the temporary level `NONE` these tests were
/// written for; the default is tested in `tests/force_register_e2e.rs`).
pub fn topic_restore_config(
    dir: &std::path::Path,
    name: &str,
    topic: &str,
    into: &str,
    target_url: &str,
    restore: &str,
) -> std::path::PathBuf {
    super::write(
        dir,
        name,
        &format!(
            "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {topic}: {into}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {target_url}\n    restore:\n      force_register: true\n{restore}",
            super::bootstrap(),
            dir.join("store").display(),
        ),
    )
}

/// The records of `topic` in backup `id` under `dir/store`, per partition,
/// read through the library's checked reader.
pub async fn backed_up(dir: &std::path::Path, id: &str, topic: &str) -> BTreeMap<i32, Vec<Rec>> {
    let store = kafka_backup::storage::Location::parse(dir.join("store").to_str().unwrap())
        .unwrap()
        .open()
        .unwrap();
    backed_up_in(&store, id, topic).await
}

/// The records of `topic` in backup `id` of `store`, per partition, read
/// through the library's checked reader.
pub async fn backed_up_in(
    store: &kafka_backup::storage::Store,
    id: &str,
    topic: &str,
) -> BTreeMap<i32, Vec<Rec>> {
    let reader = kafka_backup::manifest::BackupReader::open(store, id)
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for (&p, partition) in &reader.manifest.topics[topic].partitions {
        let mut recs = Vec::new();
        for segment in &partition.segments {
            let bytes = reader.read(&segment.path).await.unwrap();
            let mut records = kafka_backup::segment::SegmentReader::new(&bytes[..]).unwrap();
            while let Some(r) = records.next_record().unwrap() {
                recs.push(Rec {
                    partition: p,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(n, v)| (String::from_utf8(n).unwrap(), v))
                        .collect(),
                });
            }
        }
        out.insert(p, recs);
    }
    out
}

/// `records` per partition, in order.
pub fn by_partition(records: &[Rec]) -> BTreeMap<i32, Vec<Rec>> {
    let mut out: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition).or_default().push(r.clone());
    }
    out
}

/// An Avro record schema with `fields` int fields named `f0..`, each after
/// the first with a default (so each version is compatible with the last).
pub fn growing_avro(name: &str, fields: usize) -> String {
    let fields: Vec<serde_json::Value> = (0..fields)
        .map(|i| match i {
            0 => serde_json::json!({"name": "f0", "type": "int"}),
            _ => serde_json::json!({"name": format!("f{i}"), "type": "int", "default": 0}),
        })
        .collect();
    serde_json::json!({"type": "record", "name": name, "fields": fields}).to_string()
}

/// Registers `count` subjects `s00-value`.. in `sr`, each with two
/// compatible versions ([`growing_avro`]); gives their names.
pub async fn seed_growing_subjects(sr: &super::Registry, count: usize) -> Vec<String> {
    let subjects: Vec<String> = (0..count).map(|i| format!("s{i:02}-value")).collect();
    for (i, s) in subjects.iter().enumerate() {
        for fields in 1..=2 {
            sr.register(
                s,
                serde_json::json!({"schema": growing_avro(&format!("R{i}"), fields)}),
            )
            .await;
        }
    }
    subjects
}

/// A transactional producer that has begun a transaction on partition 0 of
/// `topic` and sent `n` records (`<prefix>0`, ...) in it, open.
pub async fn open_transaction(topic: &str, n: usize, prefix: &str) -> FutureProducer {
    let txn: FutureProducer = client_config()
        .set("transactional.id", format!("{topic}-txn"))
        .set("transaction.timeout.ms", "120000")
        .create()
        .unwrap();
    txn.init_transactions(Duration::from_secs(30)).unwrap();
    txn.begin_transaction().unwrap();
    for i in 0..n {
        let value = format!("{prefix}{i}");
        txn.send(
            FutureRecord::<[u8], [u8]>::to(topic)
                .partition(0)
                .payload(value.as_bytes()),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("{e}"));
    }
    txn.flush(Duration::from_secs(10)).unwrap();
    txn
}
