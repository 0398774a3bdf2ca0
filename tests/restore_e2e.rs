//! End to end: `kafka-backup apply` restores topic data after the registry,
//! against the live broker and live registries. The source registry holds the
//! reference page's example (IDs 1, 5, 2); the target hands out 1, 2, 3; every
//! restored record must equal its original except the rewritten ID bytes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::records::*;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};

struct Setup {
    dir: tempfile::TempDir,
    _source: Registry,
    target: Registry,
    topic: String,
    restored: String,
    records: Vec<Rec>,
}

/// A source registry with the seed example, a topic of `n` records over 3
/// partitions, both backed up as `b1`; an empty target registry.
async fn setup(n: u32, extra_id: Option<u32>) -> Setup {
    setup_padded(n, extra_id, 0).await
}

async fn setup_padded(n: u32, extra_id: Option<u32>, pad: usize) -> Setup {
    let topic = unique("orders");
    let records: Vec<Rec> = (0..n).map(|i| record_padded(i, 3, extra_id, pad)).collect();
    let b = seeded_backup(topic, records).await;
    Setup {
        restored: format!("{}-restored", b.topic),
        dir: b.dir,
        _source: b.source,
        target: Registry::start(),
        topic: b.topic,
        records: b.records,
    }
}

impl Setup {
    fn config(&self, name: &str, extra_restore: &str) -> PathBuf {
        topic_restore_config(
            self.dir.path(),
            name,
            &self.topic,
            &self.restored,
            &self.target.url,
            // the test topic mixes framed, plain and null keys and values,
            // to exercise every shape a record can have; which fields are
            // framed has tests of its own
            &format!(
                "      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {{key: always, value: always}}\n{extra_restore}"
            ),
        )
    }

    fn expected(&self) -> BTreeMap<i32, Vec<Rec>> {
        let mut out: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
        for r in &self.records {
            out.entry(r.partition)
                .or_default()
                .push(rewritten(r.clone(), &seed_map()));
        }
        out
    }
}

fn apply_c(cfg: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"];
    args.extend_from_slice(extra);
    kafka_backup(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_restores_records_with_ids_rewritten_and_a_second_apply_writes_nothing() {
    let s = setup(90, None).await;
    let cfg = s.config("restore.yaml", "");

    // --dry-run lists the topic and creates nothing
    let printed = success(&apply_c(&cfg, &["--dry-run"]));
    assert!(
        printed.contains(&format!("create and restore topic `{}`", s.restored)),
        "{printed}"
    );
    assert!(printed.contains("90 record(s)"), "{printed}");

    let printed = success(&apply_c(&cfg, &[]));
    eprintln!("{printed}");
    assert!(printed.contains("\"5\": 2"), "{printed}");
    assert!(printed.contains("90 record(s) written"), "{printed}");
    let restored = consume_all(&s.restored, 3);
    assert_eq!(restored, s.expected());
    // the source is untouched, and differs from the restored records where IDs moved
    let original = consume_all(&s.topic, 3);
    assert_ne!(original, restored);

    // a second apply plans nothing new and writes no record twice
    let printed = success(&apply_c(&cfg, &[]));
    assert!(printed.contains("3 done in an earlier run"), "{printed}");
    assert!(printed.contains("0 record(s) written"), "{printed}");
    assert_eq!(consume_all(&s.restored, 3), s.expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_missing_from_the_map_stops_the_restore_or_follows_the_policy() {
    let s = setup(20, Some(42)).await;
    // record 7 (partition 1, its 3rd record: offset 2) carries ID 42, which
    // no subject holds: the plan says so, and refuses, before anything is written
    let out = apply_c(&s.config("fail.yaml", ""), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("! ID 42 in 1 record(s) is not in the ID map: the backup does not hold it: the source registry did not serve it when the backup was taken")
            && printed.contains("!! `missing_id_policy: fail`: the restore would stop at the first of 1 record(s); `apply` refuses the plan"),
        "{printed}"
    );
    assert!(
        stderr(&out).contains("the plan has 1 conflict(s)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(consume_count(&s.restored, 1), 0, "nothing written");
    // `plan` exits 1 on it too
    let cfg = s.config("fail.yaml", "");
    let out = kafka_backup(&["plan", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "records of `{}` carry schema IDs the restore cannot map",
            s.topic
        )),
        "{}",
        stderr(&out)
    );

    // skip for this topic: the rerun goes on after what the first run wrote
    let skip = s.config(
        "skip.yaml",
        &format!(
            "      missing_id_policy_topics:\n        \"{}\": skip\n",
            s.topic
        ),
    );
    let printed = success(&apply_c(&skip, &[]));
    assert!(printed.contains("1 left out"), "{printed}");
    let mut expected = s.expected();
    expected.get_mut(&1).unwrap().remove(2);
    assert_eq!(consume_all(&s.restored, 3), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_keeps_an_unknown_id_and_to_timestamp_cuts_the_tail() {
    let s = setup(30, Some(42)).await;
    let cfg = s.config("pass.yaml", "      missing_id_policy: passthrough\n");
    // records 0..=19 have timestamps up to base + 19 s
    let printed = success(&apply_c(&cfg, &["--to-timestamp", "1700000019000"]));
    assert!(printed.contains("10 left out"), "{printed}");
    let mut expected: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in s.records.iter().take(20) {
        expected
            .entry(r.partition)
            .or_default()
            .push(rewritten(r.clone(), &seed_map()));
    }
    let restored = consume_all(&s.restored, 3);
    assert_eq!(restored, expected);
    let unknown = &restored[&1][2];
    assert_eq!(unknown.value.as_deref(), Some(&framed(42, b"unknown")[..]));
    // verify takes the point in time from the restore's journal
    let verified = success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_that_already_holds_records_is_refused_unless_appending() {
    let s = setup(9, None).await;
    create_topic(&s.restored, 3, &[]).await;
    produce(&s.restored, &[record(0, 3, None)]).await;
    let cfg = s.config("restore.yaml", "");
    let out = apply_c(&cfg, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("already holds records"), "{err}");
    assert!(
        err.contains(&format!("{} partition 0: 1 record(s)", s.restored)),
        "{err}"
    );
    success(&apply_c(&cfg, &["--append"]));
    let restored = consume_all(&s.restored, 3);
    assert_eq!(restored[&0].len(), 4);
    assert_eq!(restored[&0][1..], s.expected()[&0][..]);

    // fewer partitions than the backup: refused with the counts
    let narrow = format!("{}-narrow", s.topic);
    create_topic(&narrow, 1, &[]).await;
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&s.restored, &narrow);
    let out = apply_c(&write(s.dir.path(), "narrow.yaml", &text), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has 1 partition(s), the backup of"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_c_asks_first_and_a_no_changes_nothing() {
    let s = setup(3, None).await;
    let cfg = s.config("restore.yaml", "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["apply", "-c", cfg.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let printed = stdout(&out);
    assert!(printed.contains("+ register orders-value v1"), "{printed}");
    assert!(printed.contains("Apply this plan?"), "{printed}");
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    let (status, body) = s.target.call(reqwest::Method::GET, "/subjects", None).await;
    assert_eq!((status, body), (200, serde_json::json!([])));
}

/// Kills `apply -c` at several points (registry steps, topic creation, mid
/// stream) and reruns it: the final target is exactly the backup, with no
/// schema version registered twice and no record written twice.
#[tokio::test(flavor = "multi_thread")]
async fn fault_apply_killed_at_random_points_and_rerun_ends_exactly_restored() {
    // 2 KiB values on 2 of 5 records: about 16 MB, a few dozen producer batches
    let s = setup_padded(20_000, None, 2048).await;
    let cfg = s.config("restore.yaml", "");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill delays seeded with {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let total = s.records.len();
    let mut counter = Counter::default();
    let mut killed = 0;
    // kill points: early (registry steps, topic creation) at a random delay,
    // then as soon as records arrive, then past a random share of them
    let runs = matrix::runs(3).max(3);
    let mut points = vec![
        Kill::After(Duration::from_millis(50 + rng.u64(0..400))),
        Kill::Records(1),
    ];
    // later kills spread over the partitions: each run resumes where the
    // last stopped
    let step = total / (runs - 1);
    for i in 1..runs - 1 {
        points.push(Kill::Records(step * i + rng.usize(0..step / 2)));
    }
    for point in points {
        let mut child = spawn_apply(&cfg);
        let started = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let due = match point {
                Kill::After(d) => started.elapsed() >= d,
                Kill::Records(n) => counter.count(&s.restored, 3) >= n,
            };
            if due {
                child.kill().unwrap();
                killed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.wait().unwrap();
        eprintln!(
            "{point:?}: stopped after {:?}, {} of {total} record(s) in the target",
            started.elapsed(),
            counter.count(&s.restored, 3)
        );
    }
    assert!(
        killed > 0,
        "no run was killed: the restore was faster than every delay"
    );

    let printed = success(&apply_c(&cfg, &[]));
    eprintln!("{printed}");
    let restored = consume_all(&s.restored, 3);
    let t = matrix::tally_partitions(&s.expected(), &restored);
    matrix::row(
        "apply killed (SIGKILL) during topic creation and mid partition, then rerun",
        runs,
        t,
        &format!("{killed} killed mid-run; the rerun verified"),
    );
    assert_eq!(restored, s.expected());
    let verified = success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
    for (subject, versions) in [("orders-value", 2), ("payments-value", 1)] {
        let (status, body) = s
            .target
            .call(
                reqwest::Method::GET,
                &format!("/subjects/{subject}/versions?deleted=true"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body.as_array().unwrap().len(),
            versions,
            "{subject}: {body}"
        );
    }
    // the IDs came out as in a run that was never interrupted
    let (_, body) = s
        .target
        .call(
            reqwest::Method::GET,
            "/subjects/orders-value/versions/2",
            None,
        )
        .await;
    assert_eq!(body["id"], 2);
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    After(Duration),
    Records(usize),
}

/// Counts records in a topic, fast enough to poll: one client, made again
/// while the topic is not there yet (a client caches that it is unknown).
#[derive(Default)]
struct Counter(Option<BaseConsumer>);

impl Counter {
    /// Records in `topic` now (0 when it does not exist yet).
    fn count(&mut self, topic: &str, partitions: i32) -> usize {
        let consumer = self.0.get_or_insert_with(|| {
            client_config()
                .set("group.id", unique("count"))
                .create()
                .unwrap()
        });
        let n = count(consumer, topic, partitions);
        if n == 0 {
            self.0 = None;
        }
        n
    }
}

fn count(consumer: &BaseConsumer, topic: &str, partitions: i32) -> usize {
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map_or(0, |(low, high)| (high - low) as usize)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_segment_stops_the_restore_naming_it_and_a_rerun_finishes() {
    let s = setup(30, None).await;
    let cfg = s.config("restore.yaml", "");
    let partition_dir = s.dir.path().join("store/b1/kafka").join(&s.topic).join("1");
    let segment = std::fs::read_dir(&partition_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&segment).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    std::fs::write(&segment, &bad).unwrap();

    let out = apply_c(&cfg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    assert!(err.contains("sha256"), "{err}");
    // nothing of partition 1 was written from the damaged segment
    let partial = consume_all(&s.restored, 3);
    assert!(partial[&1].is_empty(), "{:?}", partial[&1]);

    std::fs::write(&segment, &good).unwrap();
    success(&apply_c(&cfg, &[]));
    assert_eq!(consume_all(&s.restored, 3), s.expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_topic_deleted_since_is_refused_not_reported_done() {
    let s = setup(9, None).await;
    let cfg = s.config("restore.yaml", "");
    success(&apply_c(&cfg, &[]));
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        client_config().create().unwrap();
    admin
        .delete_topics(&[&s.restored], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    let out = apply_c(&cfg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("topic `{}` was restored to before", s.restored)),
        "{err}"
    );
    assert!(err.contains("restore/"), "names the journal: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_registry_apply_c_still_asks_first() {
    let s = setup(3, None).await;
    let text = std::fs::read_to_string(s.config("restore.yaml", ""))
        .unwrap()
        .replace("    enabled: true\n", "    enabled: false\n");
    let cfg = write(s.dir.path(), "topics-only.yaml", &text);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["apply", "-c", cfg.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let printed = stdout(&out);
    assert!(printed.contains(&format!("+ {}", s.restored)), "{printed}");
    assert!(printed.contains("Restore these topics?"), "{printed}");
    assert_eq!(
        Counter::default().count(&s.restored, 3),
        0,
        "nothing written"
    );
    // with yes, the records go back unchanged (no registry, no rewrite)
    let printed = success(&apply_c(&cfg, &[]));
    assert!(printed.contains("3 record(s) written"), "{printed}");
    let restored = consume_all(&s.restored, 3);
    let original = consume_all(&s.topic, 3);
    assert_eq!(restored, original);
}

/// Starts `apply -c CFG --auto-approve`, one partition at a time, quietly.
fn spawn_apply(cfg: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"])
        .args(["--partition-concurrency", "1"])
        .env("KAFKA_BACKUP_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs `apply -c` (one partition at a time) and kills it once `n` records
/// are in the restored topic; false when it finished first.
fn apply_killed_after(s: &Setup, cfg: &Path, n: usize, counter: &mut Counter) -> bool {
    let mut child = spawn_apply(cfg);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if counter.count(&s.restored, 3) >= n {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A record no backup holds, as another producer would write it.
fn foreign(partition: i32, i: usize) -> Rec {
    Rec {
        partition,
        timestamp: Some(1_600_000_000_000),
        key: Some(format!("foreign-{i}").into_bytes()),
        value: Some(b"written by another client".to_vec()),
        headers: vec![],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_records_another_producer_wrote_into_a_partly_restored_partition_are_refused() {
    let s = setup_padded(20_000, None, 2048).await;
    let cfg = s.config("restore.yaml", "");
    let expected = s.expected();
    let mut counter = Counter::default();
    // killed in the middle of partition 1 (one partition at a time, in order)
    assert!(
        apply_killed_after(&s, &cfg, s.records.len() / 2, &mut counter),
        "the restore finished before it could be killed"
    );
    // another client writes 10 records into every partition not yet complete
    let counts: Vec<usize> = (0..3).map(|p| consume_count(&s.restored, p)).collect();
    let partial: Vec<i32> = (0..3)
        .filter(|&p| counts[p as usize] < expected[&p].len())
        .collect();
    assert!(!partial.is_empty(), "every partition complete: {counts:?}");
    // one partition at a time, in order: the first one not complete is the
    // one the kill interrupted (midway, unless it landed between two)
    let midway = partial[0];
    eprintln!("killed with {counts:?} record(s) in the partitions");
    let extra: Vec<Rec> = partial
        .iter()
        .flat_map(|&p| (0..10).map(move |i| foreign(p, i)))
        .collect();
    produce(&s.restored, &extra).await;
    let before = consume_all(&s.restored, 3);

    // the rerun refuses, naming the partition and the way out, and writes nothing
    let out = apply_c(&cfg, &["--partition-concurrency", "1"]);
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", stdout(&out));
    assert!(
        err.contains(&format!(
            "`{}` partition {midway} holds a record this restore did not write, at offset {}",
            s.restored, counts[midway as usize]
        )) && err.contains("--append"),
        "{err}"
    );
    assert_eq!(consume_all(&s.restored, 3), before);

    // --append knowingly writes the rest after them: every backup record
    // exactly once, in order, and the foreign records where they were
    success(&apply_c(&cfg, &["--append"]));
    let after = consume_all(&s.restored, 3);
    let mut t = matrix::Tally::default();
    for p in 0..3 {
        let ours: Vec<Rec> = after[&p]
            .iter()
            .filter(|r| r.value.as_deref() != Some(&b"written by another client"[..]))
            .cloned()
            .collect();
        t.add(matrix::tally(&expected[&p], &ours));
    }
    matrix::row(
        "another producer writes into partly restored partitions, then the restore is rerun",
        1,
        t,
        "rerun refused, naming partition and offset; `--append` wrote the rest after them",
    );
    for p in 0..3 {
        let (theirs, ours): (Vec<Rec>, Vec<Rec>) = after[&p]
            .iter()
            .cloned()
            .partition(|r| r.value.as_deref() == Some(&b"written by another client"[..]));
        assert_eq!(ours, expected[&p], "partition {p}");
        let foreign_here = if partial.contains(&p) { 10 } else { 0 };
        assert_eq!(theirs.len(), foreign_here, "partition {p}");
    }
    // and verify does not call a partition with foreign records in it restored
    let out = kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

fn consume_count(topic: &str, partition: i32) -> usize {
    let consumer: BaseConsumer = client_config().create().unwrap();
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(5))
        .map_or(0, |(low, high)| (high - low) as usize)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_restored_with_other_settings_is_refused_not_reported_done() {
    // record 7 (partition 1) carries ID 42, which no subject holds
    let s = setup(20, Some(42)).await;
    let pass = s.config("pass.yaml", "      missing_id_policy: passthrough\n");
    success(&apply_c(&pass, &[]));
    // the same settings again: done, nothing written
    let printed = success(&apply_c(&pass, &[]));
    assert!(printed.contains("0 partition(s) now, 3 done"), "{printed}");

    // `skip` would have left record 7 out: partition 1 holds it, so the
    // restore is not what this run would write
    let skip = s.config("skip.yaml", "      missing_id_policy: skip\n");
    let out = apply_c(&skip, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", stdout(&out));
    assert!(
        err.contains(&format!("`{}` partition 0 was restored with other settings: it was restored with `missing_id_policy: passthrough`, this run has `skip`", s.restored)),
        "{err}"
    );
    // a point in time leaves records out that the restore wrote
    let out = apply_c(&pass, &["--to-timestamp", "1700000005000"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", stdout(&out));
    assert!(
        err.contains("was restored with --to-timestamp (none), this run has 1700000005000"),
        "{err}"
    );
    // nothing was written by the refused runs
    assert_eq!(consume_all(&s.restored, 3), s.expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn header_names_that_are_not_utf8_are_backed_up_and_restored_byte_for_byte() {
    use kafka_backup::kafka::headers;
    use rdkafka::Message;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let topic = unique("raw-headers");
    let restored = format!("{topic}-restored");
    create_topic(&topic, 1, &[]).await;
    type Headers = Vec<(Vec<u8>, Option<Vec<u8>>)>;
    let given: Vec<Headers> = vec![
        vec![(vec![0xff, 0xfe, b'x'], Some(b"latin-1".to_vec()))],
        vec![
            (b"trace".to_vec(), Some(b"t".to_vec())),
            (vec![0xc3, 0x28], None),
            (b"trace".to_vec(), Some(vec![0, 159, 146, 150])),
        ],
    ];
    let producer: BaseProducer = client_config().create().unwrap();
    for (i, h) in given.iter().enumerate() {
        let key = format!("k{i}");
        producer
            .send(
                BaseRecord::<str, str>::to(&topic)
                    .partition(0)
                    .key(&key)
                    .payload("v")
                    .headers(headers::owned(h)),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let backup = write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\n",
            bootstrap(),
            dir.path().join("store").display()
        ),
    );
    success(&kafka_backup(&["backup", "-c", backup.to_str().unwrap()]));
    let restore = write(
        dir.path(),
        "restore.yaml",
        &format!(
            "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {topic}: {restored}\nstorage:\n  path: {}\n",
            bootstrap(),
            dir.path().join("store").display()
        ),
    );
    success(&apply_c(&restore, &[]));

    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("raw"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&restored]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < given.len() {
        assert!(std::time::Instant::now() < deadline, "{restored} stalled");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            assert_eq!(m.key(), Some(format!("k{}", got.len()).as_bytes()));
            got.push(headers::read(&m));
        }
    }
    assert_eq!(got, given);
    let verified = success(&kafka_backup(&["verify", "-c", restore.to_str().unwrap()]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
}

/// A topic of 10 records with framed values, registered in a fresh source
/// under `subject(topic)`, and keys made by `key(value ID, i)`; backed up
/// as `b1`.
struct Accounts {
    dir: tempfile::TempDir,
    _source: Registry,
    topic: String,
    id: u32,
    records: Vec<Rec>,
}

async fn accounts(subject: impl Fn(&str) -> String, key: impl Fn(u32, u8) -> Vec<u8>) -> Accounts {
    use serde_json::json;
    let topic = unique("accounts");
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start();
    let schema =
        json!({"type": "record", "name": "Account", "fields": [{"name": "n", "type": "int"}]});
    let id = source
        .register(&subject(&topic), json!({"schema": schema.to_string()}))
        .await as u32;
    let records: Vec<Rec> = (0..10u8)
        .map(|i| Rec {
            partition: 0,
            timestamp: Some(1_700_000_000_000 + i64::from(i)),
            key: Some(key(id, i)),
            value: Some(framed(id, &[2 * i])),
            headers: vec![],
        })
        .collect();
    create_topic(&topic, 1, &[]).await;
    produce(&topic, &records).await;
    let backup = write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            bootstrap(),
            dir.path().join("store").display(),
            source.url
        ),
    );
    success(&kafka_backup(&["backup", "-c", backup.to_str().unwrap()]));
    Accounts {
        dir,
        _source: source,
        topic,
        id,
        records,
    }
}

impl Accounts {
    /// `apply -c` into a target that hands out other IDs, as `<topic>-restored`;
    /// gives the target, the restored topic, the config and what apply printed.
    async fn restore(&self) -> (Registry, String, PathBuf, String) {
        let target = shifted_target().await;
        let restored = format!("{}-restored", self.topic);
        let cfg = topic_restore_config(
            self.dir.path(),
            "restore.yaml",
            &self.topic,
            &restored,
            &target.url,
            "      strategy: preserve\n",
        );
        let printed = success(&apply_c(&cfg, &[]));
        (target, restored, cfg, printed)
    }
}

/// A target registry that hands out other IDs than the source.
async fn shifted_target() -> Registry {
    let target = Registry::start();
    target
        .register("other-value", serde_json::json!({"schema": "\"string\""}))
        .await;
    target
}

/// The ID `target` gave the first version of `subject`.
async fn first_id(target: &Registry, subject: &str) -> u32 {
    let (_, body) = target
        .call(
            reqwest::Method::GET,
            &format!("/subjects/{subject}/versions/1"),
            None,
        )
        .await;
    body["id"].as_u64().unwrap() as u32
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_keys_that_start_with_a_zero_byte_are_not_rewritten_unless_said() {
    // 8-byte long keys (account numbers) whose first five bytes read as
    // 0x00 + the value schema's ID
    let a = accounts(
        |topic| format!("{topic}-value"),
        |id, i| [&[0u8][..], &id.to_be_bytes(), &[0, 0, i]].concat(),
    )
    .await;
    let (topic, dir) = (&a.topic, a.dir.path());
    let (target, restored, cfg, printed) = a.restore().await;
    assert!(
        printed.contains(&format!(
            "key: written as backed up (the backup holds `{topic}-value` but no `{topic}-key`"
        )) && printed.contains(&format!(
            "value: schema IDs rewritten (the backup holds subject `{topic}-value`)"
        )),
        "{printed}"
    );
    let new_id = first_id(&target, &format!("{topic}-value")).await;
    assert_ne!(new_id, a.id);
    let got = consume_all(&restored, 1);
    assert_eq!(got[&0].len(), a.records.len());
    for (r, original) in got[&0].iter().zip(&a.records) {
        assert_eq!(r.key, original.key, "a raw key is data, kept byte for byte");
        assert_eq!(
            r.value.as_deref(),
            Some(&framed(new_id, &original.value.as_ref().unwrap()[5..])[..])
        );
    }
    success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));

    // said so for this topic: its keys are taken as framed
    let always = format!("{topic}-always");
    let cfg = topic_restore_config(
        dir,
        "always.yaml",
        topic,
        &always,
        &target.url,
        &format!(
            "      strategy: preserve\n      rewrite_fields_topics:\n        \"{topic}\": {{key: always}}\n"
        ),
    );
    let printed = success(&apply_c(&cfg, &[]));
    assert!(
        printed.contains("key: schema IDs rewritten (`always` in the configuration)"),
        "{printed}"
    );
    for r in &consume_all(&always, 1)[&0] {
        assert_eq!(&r.key.as_ref().unwrap()[..5], &framed(new_id, b"")[..]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn values_framed_in_every_record_are_rewritten_without_a_topic_named_subject() {
    // the record name strategy: the subject is not named after the topic
    let a = accounts(
        |_| "com.example.Account".to_owned(),
        |_, i| format!("acct-{i}").into_bytes(),
    )
    .await;
    let topic = &a.topic;
    let (target, restored, cfg, printed) = a.restore().await;
    assert!(
        printed.contains("value: schema IDs rewritten (all 10 record(s) with a value carry a schema ID the backup holds)")
            && printed.contains(&format!("key: written as backed up (no subject `{topic}-key` in the backup, and 0 of 10 record(s) with a key are framed)")),
        "{printed}"
    );
    let new_id = first_id(&target, "com.example.Account").await;
    assert_ne!(new_id, a.id);
    for (r, original) in consume_all(&restored, 1)[&0].iter().zip(&a.records) {
        assert_eq!(r.key, original.key);
        assert_eq!(
            r.value.as_deref(),
            Some(&framed(new_id, &original.value.as_ref().unwrap()[5..])[..])
        );
    }
    success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_of_an_excluded_subject_are_named_at_plan_time_with_the_cause() {
    let s = setup(30, None).await;
    // payments-value (source ID 2) is not restored: values and keys framed
    // with ID 2 cannot be mapped
    let cfg = s.config(
        "exclude.yaml",
        "      exclude: [\"payments-value\"]\n      missing_id_policy: skip\n",
    );
    let ids2 = |f: fn(&Rec) -> &Option<Vec<u8>>| {
        s.records
            .iter()
            .filter(|r| {
                f(r).as_deref()
                    .is_some_and(|b| b.len() >= 5 && b[..5] == [0, 0, 0, 0, 2])
            })
            .count()
    };
    let (keys, values) = (ids2(|r| &r.key), ids2(|r| &r.value));
    assert!(keys > 0 && values > 0);
    let printed = success(&apply_c(&cfg, &["--dry-run"]));
    for (field, n) in [("key", keys), ("value", values)] {
        assert!(
            printed.contains(&format!("{field}: IDs rewritten (`always` in the configuration)\n      ! ID 2 in {n} record(s) is not in the ID map: it is `payments-value` v1, which `restore.subjects` / `restore.exclude` leave out")),
            "{printed}"
        );
    }
    assert!(
        printed.contains(&format!(
            "`missing_id_policy: skip`: up to {} record(s) left out",
            keys + values
        )),
        "{printed}"
    );
    assert_eq!(consume_count(&s.restored, 0), 0, "a dry run writes nothing");
}

/// Topics of the cluster, by name.
fn cluster_topics() -> std::collections::BTreeSet<String> {
    let consumer: BaseConsumer = client_config().create().unwrap();
    consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap()
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn target_topics_restore_only_the_selected_backed_up_topics() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("sel");
    let (kept, left) = (format!("{prefix}-orders"), format!("{prefix}-clicks"));
    let records: Vec<Rec> = (0..12).map(|i| record(i, 3, None)).collect();
    for topic in [&kept, &left] {
        create_topic(topic, 3, &[]).await;
        produce(topic, &records).await;
    }
    let store = dir.path().join("store");
    let backup = write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{prefix}-*\"]\nstorage:\n  path: {}\n",
            bootstrap(),
            store.display()
        ),
    );
    success(&kafka_backup(&["backup", "-c", backup.to_str().unwrap()]));
    let restore = |name: &str, include: &str| {
        write(
            dir.path(),
            name,
            &format!(
                "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{include}\"]\n  topic_mapping:\n    {kept}: {kept}-restored\n    {left}: {left}-restored\nstorage:\n  path: {}\n",
                bootstrap(),
                store.display()
            ),
        )
    };

    // a selection that takes nothing is refused before anything is written
    let none = restore("none.yaml", &format!("{kept}-restored"));
    let out = apply_c(&none, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "`target.topics` selects none of the backup's topics (include `{kept}-restored`, exclude none); the backup holds `{left}`, `{kept}`"
        )),
        "{err}"
    );

    let cfg = restore("restore.yaml", &kept);
    let dry = success(&apply_c(&cfg, &["--dry-run"]));
    assert!(dry.contains(&format!("`{kept}-restored`")), "{dry}");
    assert!(
        !dry.contains(&left),
        "the dry run lists only the selection: {dry}"
    );
    let printed = success(&apply_c(&cfg, &[]));
    assert!(!printed.contains(&left), "{printed}");
    assert_eq!(
        consume_all(&format!("{kept}-restored"), 3),
        by_partition(&records)
    );
    let topics = cluster_topics();
    assert!(topics.contains(&format!("{kept}-restored")));
    assert!(
        !topics.contains(&format!("{left}-restored")),
        "the topic left out is not created"
    );

    let out = kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]);
    let report = success(&out);
    assert!(report.contains(&format!("{kept}-restored")), "{report}");
    assert!(
        !report.contains(&left),
        "verify checks only the selection: {report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_enabled_false_writes_no_registry_and_maps_only_what_the_target_holds() {
    let s = setup(20, None).await;
    // the target holds orders-value v1 (source ID 1), identical, under ID 2
    let v1 = serde_json::json!({
        "schema": r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"string"}]}"#
    });
    let other = serde_json::json!({"schema": r#"{"type":"string"}"#});
    assert_eq!(s.target.register("other-value", other).await, 1);
    assert_eq!(s.target.register("orders-value", v1).await, 2);
    let subjects = |reg: &Registry| {
        let reg = reg.url.clone();
        async move {
            let body = reqwest::get(format!("{reg}/subjects"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    let before = subjects(&s.target).await;
    let cfg = s.config(
        "off.yaml",
        "      enabled: false\n      missing_id_policy: skip\n",
    );

    let planned = success(&kafka_backup(&["plan", "-c", cfg.to_str().unwrap()]));
    assert!(
        planned.contains("Registry half off (`enterprise.schema_registry.restore.enabled: false`)"),
        "{planned}"
    );
    assert!(planned.contains(".: 1 -> 2 (existing)"), "{planned}");
    assert!(
        planned.contains(".: 5 -> unmapped (not_restored)"),
        "{planned}"
    );
    assert!(
        planned.contains("Plan: 0 to add, 0 to change, 0 to destroy."),
        "{planned}"
    );

    let printed = success(&apply_c(&cfg, &[]));
    assert!(printed.contains("Registry half off"), "{printed}");
    assert_eq!(
        subjects(&s.target).await,
        before,
        "the registry is unchanged"
    );
    assert!(
        !s.dir.path().join("store/b1/apply").exists(),
        "no registry journal"
    );

    // a record keeps only if every ID it carries is mapped (1 -> 2)
    let map: BTreeMap<u32, u32> = [(1, 2)].into_iter().collect();
    let ids = |r: &Rec| {
        let framed_id = |b: &Option<Vec<u8>>| {
            b.as_ref()
                .filter(|b| b.len() >= 5 && b[0] == 0)
                .map(|b| u32::from_be_bytes([b[1], b[2], b[3], b[4]]))
        };
        let mut out: Vec<u32> = [framed_id(&r.key), framed_id(&r.value)]
            .into_iter()
            .flatten()
            .collect();
        out.extend(
            r.headers
                .iter()
                .filter(|(n, _)| n == "__value_schema_id")
                .filter_map(|(_, v)| framed_id(v)),
        );
        out
    };
    // every partition, emptied or not
    let mut expected: BTreeMap<i32, Vec<Rec>> = (0..3).map(|p| (p, Vec::new())).collect();
    for r in &s.records {
        if ids(r).iter().all(|id| map.contains_key(id)) {
            expected
                .entry(r.partition)
                .or_default()
                .push(rewritten(r.clone(), &map));
        }
    }
    assert!(
        expected.values().flatten().any(|r| ids(r) == [2]),
        "some record is rewritten"
    );
    assert_eq!(consume_all(&s.restored, 3), expected);

    let verified = success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));
    assert!(
        verified.contains("not checked: `enterprise.schema_registry.restore.enabled` is off"),
        "{verified}"
    );
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
}
