//! The broker half of the fault matrix's tooling (issue 9): a broker of the
//! test's own (`tests/common/broker.rs`) stopped and started again on the
//! same data directory and port keeps every topic, record and offset, and
//! refuses connections while it is down. Scenarios that restart it during a
//! backup or a restore build on this.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::broker::Broker;
use common::matrix::{self, Tally};
use common::records::*;
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

/// Creates `topic` with 3 partitions on `broker`, keeping old timestamps.
async fn create_on(broker: &Broker, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = broker.client_config().create().unwrap();
    for r in admin
        .create_topics(
            [&NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("retention.ms", "-1")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

fn seed_rng() -> fastrand::Rng {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("restart points seeded with {seed}");
    fastrand::Rng::with_seed(seed)
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_source_broker_restarted_during_backup_loses_nothing() {
    let runs = matrix::runs(2);
    let mut rng = seed_rng();
    let broker = Broker::start();
    let topic = common::unique("restart-during-backup");
    create_on(&broker, &topic).await;
    // 1 KiB values on 2 of 5 records: about 14 MB over 3 partitions
    let records: Vec<Rec> = (0..36_000)
        .map(|i| record_padded(i, 3, None, 1024))
        .collect();
    produce_to(broker.client_config(), &topic, &records).await;
    let expected = by_partition(&records);
    let dir = tempfile::tempdir().unwrap();
    let config = |id: &str| {
        common::write(
            dir.path(),
            &format!("{id}.yaml"),
            &format!(
                "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\n",
                broker.bootstrap,
                dir.path().join("store").display()
            ),
        )
    };
    let backup = |id: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
            .args(["backup", "-c", config(id).to_str().unwrap()])
            .args(["--partition-concurrency", "1", "--segment-bytes", "1000000"])
            .env("KAFKA_BACKUP_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let out = backup("calibrate").wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let full = started.elapsed();
    eprintln!("a full backup takes {full:?}");

    let mut total = Tally::default();
    let (mut failed, mut during) = (0, 0);
    for run in 0..runs {
        let id = format!("r{run}");
        let mut child = backup(&id);
        std::thread::sleep(full.mul_f64(0.1 + rng.f64() * 0.5));
        during += usize::from(child.try_wait().unwrap().is_none());
        broker.restart(Duration::from_millis(500));
        let out = child.wait_with_output().unwrap();
        let manifest = dir.path().join(format!("store/{id}/manifest.json"));
        if !out.status.success() {
            failed += 1;
            let err = common::stderr(&out);
            eprintln!("run {run} failed: {err}");
            assert!(err.contains("hint:"), "{err}");
            assert!(!manifest.exists(), "a failed backup published its manifest");
            let out = backup(&id).wait_with_output().unwrap();
            assert!(out.status.success(), "{}", common::stderr(&out));
        }
        let got = backed_up(dir.path(), &id, &topic).await;
        for (p, want) in &expected {
            let have = got.get(p).cloned().unwrap_or_default();
            total.add(matrix::tally(want, &have));
            assert_eq!(&have, want, "run {run}, partition {p}");
        }
    }
    matrix::row(
        "source broker restarted (down 0.5 s, same data) during backup",
        runs,
        total,
        &format!(
            "{during} restart(s) while the backup ran; {failed} run(s) failed cleanly (no manifest) and were rerun, the others rode it out"
        ),
    );
    assert!(total.clean(), "{total:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_target_broker_restarted_during_restore_never_reports_done_with_records_missing() {
    let runs = matrix::runs(1);
    let mut rng = seed_rng();
    let mut total = Tally::default();
    let (mut failed, mut during, mut broker_lost) = (0, 0, 0);
    for run in 0..runs {
        let records: Vec<Rec> = (0..20_000)
            .map(|i| record_padded(i, 3, None, 2048))
            .collect();
        let b = seeded_backup(common::unique("orders"), records).await;
        let broker = Broker::start();
        let target = common::Registry::start();
        let restored = format!("{}-restored", b.topic);
        let cfg = common::write(
            b.dir.path(),
            "restore.yaml",
            &format!(
                "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {}: {restored}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      force_register: true\n      rewrite_ids: true\n      rewrite_fields: {{key: always, value: always}}\n",
                broker.bootstrap,
                b.topic,
                b.dir.path().join("store").display(),
                target.url
            ),
        );
        let apply = || {
            common::spawn_kafka_backup(
                &[],
                &[
                    "apply",
                    "-c",
                    cfg.to_str().unwrap(),
                    "--auto-approve",
                    "--partition-concurrency",
                    "1",
                ],
            )
        };
        let total_records = b.records.len() as i64;
        let at = total_records / 5 + rng.i64(0..total_records / 2);
        let mut child = apply();
        let mut counter: Option<BaseConsumer> = None;
        let mut now = 0;
        while child.try_wait().unwrap().is_none() && now < at {
            let c = counter.get_or_insert_with(|| broker.client_config().create().unwrap());
            now = (0..3)
                .map(|p| {
                    c.fetch_watermarks(&restored, p, Duration::from_millis(500))
                        .map_or(0, |(low, high)| high - low)
                })
                .sum();
            if now == 0 {
                counter = None; // a client caches that the topic is unknown
            }
        }
        // a restart after the restore ended tests the broker, not the
        // restore: noida-db can lose records it acknowledged just before it
        // stops (found while building this scenario; `verify` sees it)
        let running = child.try_wait().unwrap().is_none();
        eprintln!("run {run}: restart at {now} record(s), the restore still running: {running}");
        if running {
            during += 1;
            broker.restart(Duration::from_millis(500));
        }
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failed += 1;
            eprintln!("run {run} failed: {}", common::stderr(&out));
            let out = apply().wait_with_output().unwrap();
            // the rerun finishes, or refuses because the broker lost records
            // it had acknowledged before the restart (seen once: a partition
            // empty after it): the tally below finds them lost, and `verify`
            // and a further rerun must refuse them too
            let err = common::stderr(&out);
            assert!(
                out.status.success() || err.contains("the broker lost records it had acknowledged"),
                "{err}"
            );
        }
        let got = consume_all_from(broker.client_config(), &restored, 3);
        let map = seed_map();
        let mut run_tally = Tally::default();
        for (p, want) in by_partition(&b.records) {
            let want: Vec<Rec> = want.into_iter().map(|r| rewritten(r, &map)).collect();
            let have = got.get(&p).cloned().unwrap_or_default();
            let t = matrix::tally(&want, &have);
            // whatever is there is the backup's, once and in order
            assert_eq!(
                t.duplicated + t.changed,
                0,
                "run {run}, partition {p}: {t:?}"
            );
            assert_eq!(have[..], want[..have.len()], "run {run}, partition {p}");
            run_tally.add(t);
        }
        let verified = common::kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]);
        if run_tally.clean() {
            assert!(verified.status.success(), "{}", common::stdout(&verified));
        } else {
            // noida-db acknowledged records it did not keep through its
            // restart (it saves its state, then still serves until it
            // exits): the restore was told they landed. Nothing can say
            // "done" about it: `verify` fails, and so does a rerun
            broker_lost += run_tally.lost;
            assert_eq!(
                verified.status.code(),
                Some(1),
                "{}",
                common::stdout(&verified)
            );
            let rerun = apply().wait_with_output().unwrap();
            assert_eq!(rerun.status.code(), Some(1), "{}", common::stdout(&rerun));
            let err = common::stderr(&rerun);
            assert!(
                err.contains("the broker lost records it had acknowledged"),
                "{err}"
            );
            run_tally = Tally::default();
        }
        total.add(run_tally);
    }
    matrix::row(
        "target broker restarted (down 0.5 s, same data) during the restore",
        runs,
        total,
        &format!(
            "{during} restart(s) while the restore ran; {failed} run(s) failed cleanly and were rerun; `verify` clean after each, except where the test broker lost {broker_lost} record(s) it had acknowledged before its restart: `verify` and a rerun both refuse those partitions"
        ),
    );
    assert!(total.clean(), "{total:?}");
}
