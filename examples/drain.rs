//! Baseline for `scripts/bench-backup`: drains topics from their low to their
//! high watermark with bare rdkafka consumers and does nothing else with the
//! records than sum the lengths of their keys, values and headers.
//!
//! The consumer settings and the concurrency are those of `kafka-backup
//! backup` (src/backup/): one `BaseConsumer` per partition, assigned at the low
//! watermark, at most 4 partitions at a time (`--partition-concurrency`).
//!
//!     cargo run --release --example drain -- BOOTSTRAP TOPIC... [--partition-concurrency N]
//!
//! Prints `records=N bytes=N` (bytes: keys + header keys and values + values).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("receive.message.max.bytes", "2147483647")
        .set("group.id", "kafka-backup-drain")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "error");
    config
}

struct Job {
    topic: String,
    partition: i32,
    low: i64,
    high: i64,
}

/// Records and bytes of one partition, `[low, high)`.
fn drain(bootstrap: &str, job: &Job) -> Result<(u64, u64), String> {
    let consumer: BaseConsumer = config(bootstrap).create().map_err(|e| e.to_string())?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&job.topic, job.partition, Offset::Offset(job.low))
        .map_err(|e| e.to_string())?;
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let last_wanted = job.high - 1;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut last_seen = Instant::now();
    loop {
        let Some(polled) = consumer.poll(Duration::from_millis(500)) else {
            if last_seen.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "{}/{}: nothing for 120 s before offset {last_wanted}",
                    job.topic, job.partition
                ));
            }
            continue;
        };
        last_seen = Instant::now();
        let message = match polled {
            Ok(m) => m,
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => break,
            Err(e) => return Err(format!("{}/{}: {e}", job.topic, job.partition)),
        };
        if message.offset() > last_wanted {
            break;
        }
        records += 1;
        bytes += message.key().map_or(0, <[u8]>::len) as u64;
        bytes += message.payload().map_or(0, <[u8]>::len) as u64;
        if let Some(headers) = message.headers() {
            for h in headers.iter() {
                bytes += (h.key.len() + h.value.map_or(0, <[u8]>::len)) as u64;
            }
        }
        if message.offset() >= last_wanted {
            break;
        }
    }
    Ok((records, bytes))
}

fn main() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut concurrency = 4usize;
    if let Some(i) = args.iter().position(|a| a == "--partition-concurrency") {
        concurrency = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .ok_or("--partition-concurrency needs a number")?;
        args.drain(i..=i + 1);
    }
    let [bootstrap, topics @ ..] = args.as_slice() else {
        return Err("usage: drain BOOTSTRAP TOPIC... [--partition-concurrency N]".into());
    };
    if topics.is_empty() {
        return Err("usage: drain BOOTSTRAP TOPIC... [--partition-concurrency N]".into());
    }

    let metadata_consumer: BaseConsumer = config(bootstrap).create().map_err(|e| e.to_string())?;
    let mut jobs = VecDeque::new();
    for topic in topics {
        let metadata = metadata_consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| format!("{topic}: {e}"))?;
        let mut partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        partitions.sort_unstable();
        for partition in partitions {
            let (low, high) = metadata_consumer
                .fetch_watermarks(topic, partition, TIMEOUT)
                .map_err(|e| format!("{topic}/{partition}: {e}"))?;
            if high > low {
                jobs.push_back(Job {
                    topic: topic.clone(),
                    partition,
                    low,
                    high,
                });
            }
        }
    }

    let queue = Mutex::new(jobs);
    let totals = Mutex::new((0u64, 0u64));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    loop {
                        let Some(job) = queue.lock().unwrap().pop_front() else {
                            break;
                        };
                        let (records, bytes) = drain(bootstrap, &job)?;
                        let mut totals = totals.lock().unwrap();
                        totals.0 += records;
                        totals.1 += bytes;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "a worker panicked".to_owned())?)
    })?;
    let (records, bytes) = *totals.lock().unwrap();
    println!(
        "records={records} bytes={bytes} seconds={:.3}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
