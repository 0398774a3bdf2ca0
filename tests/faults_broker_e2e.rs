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
    for i in range {
        let key = format!("k{i}");
        let value = format!("v{i}");
        producer
            .send(
                FutureRecord::to(topic)
                    .partition((i % 3) as i32)
                    .key(&key)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
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
