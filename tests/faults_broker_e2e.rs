//! The broker half of the fault matrix's tooling (issue 9): a broker of the
//! test's own (`tests/common/broker.rs`) stopped and started again on the
//! same data directory and port keeps every topic, record and offset, and
//! refuses connections while it is down. Scenarios that restart it during a
//! backup or a restore build on this.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::broker::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

async fn produce(broker: &Broker, topic: &str, range: std::ops::Range<u32>) {
    let producer: FutureProducer = broker.client_config().create().unwrap();
    let texts: Vec<(String, String)> = range.map(|i| (format!("k{i}"), format!("v{i}"))).collect();
    let pending: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            let partition = key[1..].parse::<i32>().unwrap_or(i as i32) % 3;
            producer
                .send_result(
                    FutureRecord::to(topic)
                        .partition(partition)
                        .key(key)
                        .payload(value),
                )
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Per partition: (low, high) watermarks and every (offset, key, value).
type Contents = BTreeMap<i32, ((i64, i64), Vec<(i64, String, String)>)>;

fn contents(broker: &Broker, topic: &str) -> Contents {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", common::unique("broker-check"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut out = Contents::new();
    for p in 0..3 {
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
            let text = |b: Option<&[u8]>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            recs.push((m.offset(), text(m.key()), text(m.payload())));
        }
        out.insert(p, ((low, high), recs));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_broker_keeps_topics_records_and_offsets_and_refuses_while_down() {
    let broker = Broker::start();
    let topic = common::unique("restart");
    let admin: AdminClient<DefaultClientContext> = broker.client_config().create().unwrap();
    let created = admin
        .create_topics(
            [&NewTopic::new(&topic, 3, TopicReplication::Fixed(1)).set("retention.ms", "-1")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    created.into_iter().for_each(|r| {
        r.unwrap();
    });
    produce(&broker, &topic, 0..90).await;
    let before = contents(&broker, &topic);
    assert_eq!(before.values().map(|(_, r)| r.len()).sum::<usize>(), 90);

    broker.down();
    assert!(!broker.answers(), "connections are refused while down");
    broker.up();
    assert_eq!(contents(&broker, &topic), before, "everything kept");

    // a second restart with an outage, then writes go on after the kept offsets
    broker.restart(Duration::from_millis(300));
    produce(&broker, &topic, 90..120).await;
    let after = contents(&broker, &topic);
    for p in 0..3 {
        let ((low, high), recs) = &after[&p];
        assert_eq!((*low, *high), (0, 40), "partition {p}");
        assert_eq!(recs[..30], before[&p].1[..], "partition {p}");
    }
}

/// The broker refuses connections when a backup starts, and is back a
/// second later: the backup either waits for it and holds every record, or
/// fails and publishes no manifest.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_started_while_the_broker_is_down_waits_or_fails_clearly() {
    let broker = Broker::start();
    let topic = common::unique("restart-backup");
    let admin: AdminClient<DefaultClientContext> = broker.client_config().create().unwrap();
    for r in admin
        .create_topics(
            [&NewTopic::new(&topic, 3, TopicReplication::Fixed(1)).set("retention.ms", "-1")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    produce(&broker, &topic, 0..90).await;
    let before = contents(&broker, &topic);
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: r1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\n",
            broker.bootstrap,
            dir.path().join("store").display()
        ),
    );
    broker.down();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["backup", "-c", cfg.to_str().unwrap()])
        .env("KAFKA_BACKUP_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    broker.up();
    let out = child.wait_with_output().unwrap();
    eprintln!("backup: {}\n{}", out.status, common::stderr(&out));
    let manifest = dir.path().join("store/r1/manifest.json");
    if out.status.success() {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        for (p, ((low, high), recs)) in &before {
            let part = &m["topics"][&topic]["partitions"][p.to_string()];
            assert_eq!(part["low_watermark"], *low, "{p}");
            assert_eq!(part["high_watermark"], *high, "{p}");
            assert_eq!(part["record_count"], recs.len(), "{p}");
        }
    } else {
        let err = common::stderr(&out);
        assert!(
            err.contains(&broker.bootstrap) && err.contains("hint:"),
            "{err}"
        );
        assert!(!manifest.exists(), "a failed backup published its manifest");
    }
}
