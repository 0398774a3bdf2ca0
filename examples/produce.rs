//! Baseline for `scripts/bench-restore`: produces the records of one backed-up
//! topic with bare rdkafka producers, and nothing else: no registry, no
//! journal, no checksum, no rewrite.
//!
//!     cargo run --release --example produce -- BACKUP_DIR BACKUP_ID TOPIC BOOTSTRAP TARGET_TOPIC \
//!         [--partition-concurrency N] [--like-restore] [--stream] [--set KEY=VALUE]...
//!
//! What is timed. By default the backup's segments of TOPIC (a filesystem
//! backup: BACKUP_DIR/BACKUP_ID/manifest.json and the files it lists) are read
//! and decoded into memory FIRST, untimed: the restore's extra work (read,
//! check, decompress, decode, rewrite, per-record copies) is exactly what the
//! ratio of scripts/bench-restore measures, so the baseline holds the records
//! ready to send. The timed phase then creates the producers and TARGET_TOPIC
//! (the backup's partition count and configs, as the restore does) and
//! produces every record to the partition it came from, with its timestamp,
//! key, value and headers, until every one is acknowledged. Its peak RSS
//! therefore includes the decoded records (about the payload size).
//!
//! Producer settings are the restore's (src/restore/mod.rs, `Worker::new`):
//! `enable.idempotence=true`, `acks=all`, `linger.ms=20`, `batch.size=1000000`,
//! `queue.buffering.max.kbytes=16384`, `message.timeout.ms=300000`,
//! `compression.type=lz4`,
//! `receive.message.max.bytes=2147483647`; and its concurrency: one producer per
//! worker, at most N partitions at once (default 4), one partition after
//! another per worker. How the producers are driven is what a careful bare
//! client does, and avoids three fixed waits of rdkafka that are no cost of
//! restoring: the producers are created before the topic (an idempotent
//! producer's first send waits for its producer ID, up to ~0.5 s after
//! creation), they are `BaseProducer`s polled by the sending thread (dropping
//! an idempotent `ThreadedProducer` takes 100 ms: its poll thread's period),
//! and the end of a partition is its last acknowledgement, waited for by
//! polling (`flush()` rounds up to 100 ms). The producers are dropped after
//! the clock stops.
//!
//! `--like-restore` drives them as src/restore/mod.rs did before it avoided
//! those waits too (a diagnostic): a `ThreadedProducer` created by each worker
//! after the topic, `flush()` after each partition, dropped inside the timed
//! phase.
//! `--set KEY=VALUE` adds a producer property on top of those (as the
//! restore's `target.properties` do), e.g. `--set compression.type=zstd`, so
//! that both sides do the same work.
//! `--stream` decodes each segment while producing, inside the timed phase
//! (like the restore, minus checksum and rewrite): a diagnostic.
//!
//! Prints `records=N bytes=N seconds=S cpu_seconds=S create_seconds=S decode_seconds=S`:
//! bytes = keys + header names and values + values (as the drain counts);
//! seconds = the timed phase (topic creation included, create_seconds of it);
//! cpu_seconds = user + system CPU of the whole process (librdkafka's threads
//! too) in the timed phase, from /proc/self/stat (Linux, 100 ticks/s);
//! decode_seconds = the untimed read + decode (0 with --stream).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kafka_backup::manifest::{Manifest, TopicManifest};
use kafka_backup::segment::{Record, SegmentReader};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext,
    ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext};

const TIMEOUT: Duration = Duration::from_secs(30);

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("receive.message.max.bytes", "2147483647");
    config
}

#[derive(Default)]
struct Acks {
    acked: AtomicU64,
    errors: AtomicU64,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.failed
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = config(bootstrap);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "16384")
        .set("message.timeout.ms", "300000")
        .set("compression.type", "lz4");
    for (k, v) in EXTRA.get().into_iter().flatten() {
        c.set(k, v);
    }
    c
}

/// `--set KEY=VALUE` producer properties.
static EXTRA: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

type Rec<'a> = BaseRecord<'a, [u8], [u8], ()>;

/// A producer driven one way or the other (see the top of the file).
enum Prod {
    Polled(BaseProducer<Acks, NoCustomPartitioner>),
    Threaded(ThreadedProducer<Acks, NoCustomPartitioner>),
}

impl Prod {
    fn new(bootstrap: &str, threaded: bool) -> Result<Self, String> {
        let config = producer_config(bootstrap);
        Ok(if threaded {
            Prod::Threaded(
                config
                    .create_with_context(Acks::default())
                    .map_err(|e| e.to_string())?,
            )
        } else {
            Prod::Polled(
                config
                    .create_with_context(Acks::default())
                    .map_err(|e| e.to_string())?,
            )
        })
    }

    fn acks(&self) -> &Acks {
        match self {
            Prod::Polled(p) => p.context(),
            Prod::Threaded(p) => p.context(),
        }
    }

    /// rdkafka's own signature: a refused record comes back to be sent again.
    #[allow(clippy::result_large_err)]
    fn send<'a>(&self, record: Rec<'a>) -> Result<(), (KafkaError, Rec<'a>)> {
        match self {
            Prod::Polled(p) => {
                let sent = p.send(record);
                p.poll(Duration::ZERO);
                sent
            }
            Prod::Threaded(p) => p.send(record),
        }
    }

    /// Waits a little for room in the queue.
    fn wait(&self) {
        match self {
            Prod::Polled(p) => {
                p.poll(Duration::from_millis(2));
            }
            Prod::Threaded(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }

    /// Until `records` deliveries have been reported since the counters were reset.
    fn drain(&self, records: u64) -> Result<(), String> {
        match self {
            Prod::Polled(p) => {
                let deadline = Instant::now() + Duration::from_secs(300);
                let acks = p.context();
                while acks.acked.load(Ordering::Relaxed) + acks.errors.load(Ordering::Relaxed)
                    < records
                {
                    if Instant::now() > deadline {
                        return Err("no acknowledgement within 300 s".into());
                    }
                    p.poll(Duration::from_millis(5));
                }
                Ok(())
            }
            Prod::Threaded(p) => p
                .flush(Duration::from_secs(300))
                .map_err(|e| format!("flush: {e}")),
        }
    }
}

/// One record ready to send: header names already text.
struct Ready {
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl From<Record> for Ready {
    fn from(r: Record) -> Self {
        Ready {
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(n, v)| (String::from_utf8_lossy(&n).into_owned(), v))
                .collect(),
        }
    }
}

impl Ready {
    fn bytes(&self) -> u64 {
        let h: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        (self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len) + h) as u64
    }
}

/// What a worker produces for one partition.
enum Source {
    Decoded(Vec<Ready>),
    Segments(Vec<PathBuf>),
}

fn decode(path: &Path, out: &mut impl FnMut(Record) -> Result<(), String>) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader =
        SegmentReader::new(&data[..]).map_err(|e| format!("{}: {e}", path.display()))?;
    while let Some(r) = reader
        .next_record()
        .map_err(|e| format!("{}: {e}", path.display()))?
    {
        out(r)?;
    }
    Ok(())
}

fn send(producer: &Prod, topic: &str, partition: i32, r: &Ready) -> Result<(), String> {
    let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
    for (name, value) in &r.headers {
        headers = headers.insert(Header {
            key: name,
            value: value.as_deref(),
        });
    }
    let mut record: Rec<'_> = BaseRecord::to(topic).partition(partition).headers(headers);
    if let Some(k) = r.key.as_deref() {
        record = record.key(k);
    }
    if let Some(v) = r.value.as_deref() {
        record = record.payload(v);
    }
    if let Some(ts) = r.timestamp {
        record = record.timestamp(ts);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.wait();
            }
            Err((e, _)) => return Err(format!("{topic}/{partition}: {e}")),
        }
    }
}

/// Produces one partition's records and waits for them; returns records and bytes.
fn produce_partition(
    producer: &Prod,
    topic: &str,
    partition: i32,
    source: &Source,
) -> Result<(u64, u64), String> {
    producer.acks().acked.store(0, Ordering::Relaxed);
    producer.acks().errors.store(0, Ordering::Relaxed);
    let (mut records, mut bytes) = (0u64, 0u64);
    match source {
        Source::Decoded(list) => {
            for r in list {
                send(producer, topic, partition, r)?;
                records += 1;
                bytes += r.bytes();
            }
        }
        Source::Segments(paths) => {
            for path in paths {
                decode(path, &mut |r| {
                    let r = Ready::from(r);
                    send(producer, topic, partition, &r)?;
                    records += 1;
                    bytes += r.bytes();
                    Ok(())
                })?;
            }
        }
    }
    producer
        .drain(records)
        .map_err(|e| format!("{topic}/{partition}: {e}"))?;
    if let Some(e) = producer.acks().failed.lock().unwrap().take() {
        return Err(format!("{topic}/{partition}: {e}"));
    }
    let acked = producer.acks().acked.load(Ordering::Relaxed);
    if acked != records {
        return Err(format!(
            "{topic}/{partition}: {acked} of {records} records acknowledged"
        ));
    }
    Ok((records, bytes))
}

/// Creates the topic; returns the admin client, whose drop (100 ms: its poll
/// thread's period) belongs after the timed phase.
fn create_topic(
    bootstrap: &str,
    name: &str,
    manifest: &TopicManifest,
) -> Result<AdminClient<DefaultClientContext>, String> {
    let admin: AdminClient<DefaultClientContext> =
        config(bootstrap).create().map_err(|e| e.to_string())?;
    let mut topic = NewTopic::new(
        name,
        manifest.partition_count as i32,
        TopicReplication::Fixed(1),
    );
    for (k, v) in &manifest.configs {
        topic = topic.set(k, v);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let results = runtime
        .block_on(admin.create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        ))
        .map_err(|e| e.to_string())?;
    for result in results {
        if let Err((_, code)) = result {
            return Err(format!("cannot create `{name}`: {code}"));
        }
    }
    // until its partitions answer metadata requests, as the restore waits (the
    // restore polls every 100 ms; a careful client polls more often)
    let consumer: BaseConsumer = config(bootstrap).create().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let metadata = consumer
            .fetch_metadata(Some(name), TIMEOUT)
            .map_err(|e| e.to_string())?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if found >= manifest.partition_count as usize {
            return Ok(admin);
        }
        if Instant::now() > deadline {
            return Err(format!("`{name}` did not appear within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// User + system CPU seconds of this process so far (all threads), Linux only.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // after the command: state is field 3, utime 14, stime 15
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

const USAGE: &str = "usage: produce BACKUP_DIR BACKUP_ID TOPIC BOOTSTRAP TARGET_TOPIC [--partition-concurrency N] [--like-restore] [--stream] [--set KEY=VALUE]...";

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
    let concurrency = concurrency.max(1);
    let mut extra = Vec::new();
    while let Some(i) = args.iter().position(|a| a == "--set") {
        let kv = args.get(i + 1).ok_or("--set needs KEY=VALUE")?;
        let (k, v) = kv.split_once('=').ok_or("--set needs KEY=VALUE")?;
        extra.push((k.to_owned(), v.to_owned()));
        args.drain(i..=i + 1);
    }
    EXTRA.set(extra).expect("set once");
    let mut flag = |name: &str| match args.iter().position(|a| a == name) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let like_restore = flag("--like-restore");
    let stream = flag("--stream");
    let [dir, backup_id, topic, bootstrap, target] = args.as_slice() else {
        return Err(USAGE.into());
    };

    // untimed: the manifest, and (unless --stream) every record decoded into memory
    let folder = Path::new(dir).join(backup_id);
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(folder.join("manifest.json")).map_err(|e| format!("{dir}: {e}"))?,
    )
    .map_err(|e| format!("manifest.json: {e}"))?;
    let topic_manifest = manifest
        .topics
        .get(topic)
        .ok_or_else(|| format!("the backup has no topic `{topic}`"))?;
    let decode_start = Instant::now();
    let mut jobs = VecDeque::new();
    for (&partition, p) in &topic_manifest.partitions {
        let paths: Vec<PathBuf> = p.segments.iter().map(|s| folder.join(&s.path)).collect();
        let source = if stream {
            Source::Segments(paths)
        } else {
            let mut list = Vec::with_capacity(p.record_count as usize);
            for path in &paths {
                decode(path, &mut |r| {
                    list.push(Ready::from(r));
                    Ok(())
                })?;
            }
            Source::Decoded(list)
        };
        jobs.push_back((partition, source));
    }
    let decode_seconds = if stream {
        0.0
    } else {
        decode_start.elapsed().as_secs_f64()
    };

    // timed: producers, topic, every record produced and acknowledged
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let mut early: Vec<Prod> = if like_restore {
        Vec::new()
    } else {
        (0..concurrency)
            .map(|_| Prod::new(bootstrap, false))
            .collect::<Result<_, _>>()?
    };
    let create_start = Instant::now();
    let admin = create_topic(bootstrap, target, topic_manifest)?;
    let create_seconds = create_start.elapsed().as_secs_f64();
    let queue = Mutex::new(jobs);
    let totals = Mutex::new((0u64, 0u64));
    let producers = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let early = early.pop();
                let (queue, totals) = (&queue, &totals);
                scope.spawn(move || -> Result<Option<Prod>, String> {
                    let producer = match early {
                        Some(p) => p,
                        None => Prod::new(bootstrap, true)?,
                    };
                    loop {
                        let Some((partition, source)) = queue.lock().unwrap().pop_front() else {
                            break;
                        };
                        let (r, b) = produce_partition(&producer, target, partition, &source)?;
                        let mut t = totals.lock().unwrap();
                        t.0 += r;
                        t.1 += b;
                    }
                    // like the restore, a threaded producer is dropped by its worker
                    Ok(matches!(producer, Prod::Polled(_)).then_some(producer))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| "a worker panicked".to_owned())?)
            .collect::<Result<Vec<_>, String>>()
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    drop((producers, admin));
    let (records, bytes) = *totals.lock().unwrap();
    println!(
        "records={records} bytes={bytes} seconds={seconds:.3} cpu_seconds={cpu:.2} create_seconds={create_seconds:.3} decode_seconds={decode_seconds:.3}"
    );
    Ok(())
}
