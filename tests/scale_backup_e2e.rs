//! End to end (issue 14): `backup --group`, several worker processes of the
//! real binary sharing one backup through a Kafka consumer group, against
//! the live broker, a registry of the test's own and S3 (moto) or a local
//! folder.
//!
//! The kill scenario writes to S3 through the fault proxy
//! (`tests/common/faults.rs`), which holds every segment write for a while:
//! slow storage keeps each partition busy long enough to kill a worker that
//! owns partitions with some of their segments stored and none complete.
//!
//! The test broker (noida-db 0.2.3) never drops a member whose heartbeats
//! stop, whatever `session.timeout.ms` says: its partitions stay with it
//! until another member joins, and that rebalance waits for the dead member
//! up to the rebalance timeout (`max.poll.interval.ms`), then hands out
//! overlapping assignments for a few rounds before it settles. So after the
//! kill the test starts a replacement worker, as a Kubernetes Job does for
//! a failed pod; a real Kafka broker drops the dead member after
//! `session.timeout.ms` and the survivors take its partitions without one
//! (docs/scale.md).

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::records::*;
use common::*;
use faults::{Action, Fault, HttpProxy};
use kafka_backup::backup::parts;
use kafka_backup::manifest::{BackupReader, Manifest};
use kafka_backup::storage::Store;

const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "kafka-backup-test"),
    ("AWS_SECRET_ACCESS_KEY", "kafka-backup-test-secret"),
    ("AWS_REGION", "us-east-1"),
];

const PARTITIONS: i32 = 6;

/// A topic of framed records (the seed example's IDs 1, 5 and 2) over six
/// partitions, a source registry with the seed example, and a place to
/// store backups: a bucket reached through a fresh proxy, or a local folder.
struct Ground {
    dir: tempfile::TempDir,
    source: Registry,
    topic: String,
    records: Vec<Rec>,
    s3: Option<(HttpProxy, String)>,
}

async fn setup(records: u32, pad: usize, s3: bool) -> Ground {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: kafka_backup::model::RegistrySnapshot = serde_json::from_slice(
        &std::fs::read(root.join("fixtures/plan/shifted-ids/backup.json")).unwrap(),
    )
    .unwrap();
    let source = Registry::start();
    seed_from_fixture(&source, &fixture).await;
    let topic = unique("scale");
    create_topic(&topic, PARTITIONS, &[]).await;
    let records: Vec<Rec> = (0..records)
        .map(|i| record_padded(i, PARTITIONS, None, pad))
        .collect();
    produce(&topic, &records).await;
    let s3 = if s3 {
        let (endpoint, bucket) = s3_bucket("kbs").await;
        Some((HttpProxy::start(&endpoint), bucket))
    } else {
        None
    };
    Ground {
        dir: tempfile::tempdir().unwrap(),
        source,
        topic,
        records,
        s3,
    }
}

impl Ground {
    /// The `storage:` block; `direct` reaches S3 without the proxy.
    fn storage(&self, direct: bool) -> String {
        match &self.s3 {
            Some((proxy, bucket)) => format!(
                "storage:\n  url: s3://{bucket}/prod\n  endpoint: {}\n  allow_http: true\n  region: us-east-1\n",
                if direct {
                    ground("S3_ENDPOINT")
                } else {
                    proxy.url.clone()
                }
            ),
            None => format!(
                "storage:\n  path: {}\n",
                self.dir.path().join("store").display()
            ),
        }
    }

    /// A backup configuration of `include`; the group's members are dropped
    /// after 6 s without heartbeats (where the broker does that).
    fn backup_config(&self, id: &str, include: &str) -> PathBuf {
        write(
            self.dir.path(),
            &format!("{id}-{}.yaml", include.len()),
            &format!(
                "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{include}\"]\n  properties:\n    session.timeout.ms: \"6000\"\n    max.poll.interval.ms: \"10000\"\n{}enterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
                bootstrap(),
                self.storage(false),
                self.source.url
            ),
        )
    }

    /// The store, opened in this process (straight to S3, not through the proxy).
    fn store(&self) -> Store {
        let mut storage = self.storage(true);
        if self.s3.is_some() {
            storage.push_str("  options:\n    aws_access_key_id: kafka-backup-test\n    aws_secret_access_key: kafka-backup-test-secret\n");
        }
        let loaded = kafka_backup::config::parse(
            &format!("backup_id: x\n{storage}"),
            kafka_backup::config::Format::Yaml,
            "store.yaml",
            Box::new(|_| None),
        )
        .unwrap();
        kafka_backup::storage::Location::from_config(loaded.config.storage.as_ref())
            .unwrap()
            .open()
            .unwrap()
    }

    /// Starts a worker of the group backup, its log (info) into `log`.
    fn worker(&self, cfg: &Path, log: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
            .args(["backup", "-c", cfg.to_str().unwrap(), "--group"])
            .args(["--segment-bytes", "20000", "--partition-concurrency", "2"])
            .env("KAFKA_BACKUP_LOG", "info")
            .envs(CREDENTIALS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    /// Runs the binary to the end with the S3 credentials.
    fn run(&self, args: &[&str]) -> std::process::Output {
        kafka_backup_with_env(args, &CREDENTIALS)
    }
}

/// The partitions a worker holds now, from its log: what the last
/// assignments gave minus what was revoked since.
fn held(log: &Path) -> BTreeSet<i32> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let field = |line: &str, name: &str| -> Vec<i32> {
        let Some(start) = line.find(&format!("{name}=\"")) else {
            return Vec::new();
        };
        let rest = &line[start + name.len() + 2..];
        rest[..rest.find('"').unwrap_or(0)]
            .split(", ")
            .filter_map(|tp| tp.rsplit_once('[')?.1.strip_suffix(']')?.parse().ok())
            .collect()
    };
    let mut held = BTreeSet::new();
    for line in text.lines() {
        if line.contains("partitions assigned") {
            held.extend(field(line, "assigned"));
        } else if line.contains("partitions revoked") {
            for p in field(line, "revoked") {
                held.remove(&p);
            }
        }
    }
    held
}

/// When a worker joined the group (the RFC 3339 time of its log line).
fn joined_at(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.contains("joining the group backup"))?;
    Some(line.split_whitespace().next()?.to_owned())
}

/// The time (RFC 3339, comparable as text) of the last line of `log` that
/// says `what` of `partition`.
fn last_line_at(log: &Path, what: &str, partition: i32) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let field = format!("partition={partition}");
    text.lines()
        .rev()
        .find(|l| l.contains(what) && l.split_whitespace().any(|w| w == field))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

/// Waits for a worker to end; its exit status and log.
fn finished(
    child: &mut Child,
    log: &Path,
    deadline: Instant,
) -> (std::process::ExitStatus, String) {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, std::fs::read_to_string(log).unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let folder = log.parent().unwrap();
            let mut logs: Vec<PathBuf> = std::fs::read_dir(folder)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            logs.sort();
            panic!(
                "worker {} did not finish in time; the workers' logs:\n{}",
                child.id(),
                logs.iter()
                    .map(|l| format!(
                        "--- {}\n{}",
                        l.display(),
                        std::fs::read_to_string(l).unwrap()
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every partition's segments run from its low watermark to its last
/// offset, each starting right after the one before (the test topic has no
/// transactions and no compaction: its offsets are consecutive).
fn assert_contiguous(manifest: &Manifest, topic: &str) {
    for (p, partition) in &manifest.topics[topic].partitions {
        let mut next = partition.low_watermark;
        for s in &partition.segments {
            let (first, last) = parts::segment_offsets(s.path.rsplit('/').next().unwrap())
                .unwrap_or_else(|| panic!("`{}` is not a segment name", s.path));
            assert_eq!(
                first, next,
                "partition {p}: `{}` should start at {next} (a gap or an overlap)",
                s.path
            );
            assert_eq!((first, last), (s.meta.first_offset, s.meta.last_offset));
            next = last + 1;
        }
        assert_eq!(
            next,
            partition.high_watermark,
            "partition {p}: the segments end at {}, the partition at {}",
            next - 1,
            partition.high_watermark - 1
        );
    }
}

/// How the victim of [`one_worker_stops`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: it never leaves the group.
    Kill,
    /// SIGTERM: it stops its partitions and leaves the group, exit 143.
    Term,
}

/// Starts `n` workers on S3 with slow segment writes, stops one that holds
/// partitions with stored segments and none complete, lets the others
/// finish, and checks the backup: every record once, contiguous segments,
/// the victim's partitions taken up after its segments by another process;
/// then restores it and verifies the restore.
async fn one_worker_stops(n: usize, stop: Stop) {
    // 12,000 records, 2 in 5 with 1 KiB values: some 45 segments of 20 kB
    // per partition, each write held 150 ms by the proxy
    let g = setup(12_000, 1000, true).await;
    let store = g.store();
    // a backup ID (so a group) of this run's own: the broker outlives runs,
    // and an earlier run's group may still hold members that died
    let id = unique("k");
    let id = id.as_str();
    let (proxy, bucket) = g.s3.as_ref().unwrap();
    proxy.inject(
        Fault::window(
            Action::Delay(Duration::from_millis(150)),
            Duration::from_secs(600),
        )
        .only("PUT", &format!("/{bucket}/prod/{id}/kafka/")),
    );
    let cfg = g.backup_config(id, &g.topic);
    let logs: Vec<PathBuf> = (0..=n)
        .map(|i| g.dir.path().join(format!("worker-{i}.log")))
        .collect();
    let mut workers: Vec<Child> = (0..n).map(|i| g.worker(&cfg, &logs[i])).collect();

    // the victim: the worker that joined the group last (not its leader:
    // see the module's notes), once all of them hold partitions and it is
    // in the middle of some (segments stored, not complete); those are the
    // partitions checked below
    let deadline = Instant::now() + Duration::from_secs(120);
    let (victim, victim_partitions) = loop {
        assert!(
            Instant::now() < deadline,
            "the last worker to join was never in the middle of a partition; logs:\n{}",
            logs.iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        let holding: Vec<BTreeSet<i32>> = logs[..n].iter().map(|l| held(l)).collect();
        let joined: Vec<Option<String>> = logs[..n].iter().map(|l| joined_at(l)).collect();
        if holding.iter().all(|h| !h.is_empty()) && joined.iter().all(Option::is_some) {
            let last = (0..n).max_by_key(|&i| joined[i].clone()).unwrap();
            let mut midway = BTreeSet::new();
            for &p in &holding[last] {
                let stored = parts::list_segments(&store, id, &g.topic, p).await.unwrap();
                let done = parts::read(&store, id, &g.topic, p).await.unwrap();
                if !stored.is_empty() && done.is_none() {
                    midway.insert(p);
                }
            }
            if !midway.is_empty() {
                break (last, midway);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let victim_pid = workers[victim].id();
    let mut pids: Vec<u32> = workers.iter().map(Child::id).collect();
    match stop {
        Stop::Kill => {
            workers[victim].kill().unwrap(); // SIGKILL
            workers[victim].wait().unwrap();
            // what the Job controller does for a failed pod (see the
            // module's notes)
            tokio::time::sleep(Duration::from_secs(2)).await;
            workers.push(g.worker(&cfg, &logs[n]));
            pids.push(workers[n].id());
        }
        Stop::Term => {
            let sent = Command::new("kill")
                .args(["-TERM", &victim_pid.to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            let (status, log) = finished(
                &mut workers[victim],
                &logs[victim],
                Instant::now() + Duration::from_secs(60),
            );
            assert_eq!(status.code(), Some(143), "{log}");
            assert!(
                log.contains("partitions revoked") && log.contains("left its group"),
                "{log}"
            );
        }
    }
    eprintln!(
        "stopped worker {victim} (process {victim_pid}, {stop:?}) in the middle of partitions {victim_partitions:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(240);
    let mut published = 0;
    for (i, w) in workers.iter_mut().enumerate() {
        if i == victim {
            continue;
        }
        let (status, log) = finished(w, &logs[i], deadline);
        assert!(status.success(), "worker {i} failed ({status}):\n{log}");
        assert!(log.contains(&format!("backup `{id}` done")), "{log}");
        published += usize::from(log.contains("published by this worker"));
    }
    assert_eq!(published, 1, "exactly one worker publishes the manifest");

    // every record exactly once, in order, per partition
    let reader = BackupReader::open(&store, id).await.unwrap();
    let manifest = reader.manifest.clone();
    assert_eq!(
        backed_up_in(&store, id, &g.topic).await,
        by_partition(&g.records)
    );
    assert_contiguous(&manifest, &g.topic);
    assert_eq!(
        reader.verify_all().await.unwrap(),
        manifest.files.len() as u64
    );
    // the victim's partitions were taken up after the segments it had
    // stored, by another process
    let mut stopped_and_taken = 0;
    for p in &victim_partitions {
        let part = parts::read(&store, id, &g.topic, *p)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(part.completed_by.pid, victim_pid, "partition {p}");
        assert!(
            part.resumed_segments > 0 && part.started_at_offset > 0,
            "partition {p} was begun anew: {part:?}"
        );
        if stop == Stop::Term {
            // one writer at a time: the victim had stopped the partition
            // before the worker that completed it took it up
            let taker = pids
                .iter()
                .position(|&pid| pid == part.completed_by.pid)
                .expect("a worker of this test completed it");
            // (the test broker hands out overlapping assignments for a few
            // rounds: a partition the victim's log lists may have been
            // running elsewhere; the contiguity and exactly-once checks above
            // hold for every partition, this one for those it stopped)
            let Some(stopped) =
                last_line_at(&logs[victim], "stopped: the partition was revoked", *p)
            else {
                continue;
            };
            let taken = last_line_at(&logs[taker], "taking the partition up", *p)
                .unwrap_or_else(|| panic!("worker {taker} never took partition {p} up"));
            assert!(
                stopped < taken,
                "partition {p}: taken up at {taken}, stopped by the victim at {stopped}"
            );
            stopped_and_taken += 1;
        }
    }
    if stop == Stop::Term {
        assert!(
            stopped_and_taken > 0,
            "the victim stopped none of the partitions {victim_partitions:?} it was in the middle of"
        );
    }
    // the registry part was written by the publisher: the IDs the records carry
    let schemas = reader.read("schema-registry/_schemas.json").await.unwrap();
    let schemas: serde_json::Value = serde_json::from_slice(&schemas).unwrap();
    for id in ["1", "2", "5"] {
        assert!(schemas["id_mapping"].get(id).is_some(), "{schemas}");
    }

    // restore and verify it
    let target = Registry::start();
    let restored = format!("{}-restored", g.topic);
    let restore = write(
        g.dir.path(),
        "restore.yaml",
        &format!(
            "mode: restore\nbackup_id: {id}\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {}: {restored}\n{}enterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      force_register: true\n      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {{key: always, value: always}}\n",
            bootstrap(),
            g.topic,
            g.storage(true),
            target.url
        ),
    );
    let restore = restore.to_str().unwrap();
    success(&g.run(&["apply", "-c", restore, "--auto-approve"]));
    let verified = success(&g.run(&["verify", "-c", restore]));
    assert!(
        verified.contains("Result: the target matches the backup."),
        "{verified}"
    );
    for p in 0..PARTITIONS {
        let row = format!("{p}    2000      2000    2000  same");
        assert!(verified.contains(&row), "partition {p}: {verified}");
    }
    let map = seed_map();
    let expected: BTreeMap<i32, Vec<Rec>> = by_partition(&g.records)
        .into_iter()
        .map(|(p, rs)| (p, rs.into_iter().map(|r| rewritten(r, &map)).collect()))
        .collect();
    assert_eq!(consume_all(&restored, PARTITIONS), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_one_killed_every_record_backed_up_once() {
    one_worker_stops(3, Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_one_stopped_with_sigterm_the_other_takes_over() {
    one_worker_stops(2, Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_write_the_manifest_one_process_writes() {
    let g = setup(3000, 400, false).await;
    let store = g.store();
    let (gid, sid) = (unique("g"), unique("s"));
    let cfg = g.backup_config(&gid, &g.topic);
    let logs: Vec<PathBuf> = (0..2)
        .map(|i| g.dir.path().join(format!("worker-{i}.log")))
        .collect();
    let mut workers: Vec<Child> = (0..2).map(|i| g.worker(&cfg, &logs[i])).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (i, w) in workers.iter_mut().enumerate() {
        let (status, log) = finished(w, &logs[i], deadline);
        assert!(status.success(), "worker {i} failed ({status}):\n{log}");
    }
    let single = g.backup_config(&sid, &g.topic);
    success(&g.run(&[
        "backup",
        "-c",
        single.to_str().unwrap(),
        "--segment-bytes",
        "20000",
    ]));

    let group = BackupReader::open(&store, &gid).await.unwrap().manifest;
    let one = BackupReader::open(&store, &sid).await.unwrap().manifest;
    assert_eq!(
        backed_up_in(&store, &gid, &g.topic).await,
        by_partition(&g.records)
    );
    assert_eq!(
        backed_up_in(&store, &sid, &g.topic).await,
        by_partition(&g.records)
    );
    assert_contiguous(&group, &g.topic);
    // byte for byte, but for the times (and the schema manifest's
    // `backup_timestamp`, hence its hash)
    let comparable = |m: &Manifest| {
        let mut v = serde_json::to_value(m).unwrap();
        for key in ["backup_id", "started_at", "finished_at"] {
            v.as_object_mut().unwrap().remove(key);
        }
        v["files"]
            .as_object_mut()
            .unwrap()
            .remove("schema-registry/_schemas.json");
        v
    };
    assert_eq!(comparable(&group), comparable(&one));
    assert!(group.files.len() > 20, "several segments per partition");

    // the coordination files stay beside the backup, outside the manifest
    let frame = kafka_backup::backup::frame::read(&store, &gid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.group_id, format!("kafka-backup.{gid}"));
    assert_eq!(frame.segment_bytes, 20000);
    assert!(
        !group
            .files
            .keys()
            .any(|f| f.starts_with("parts/") || f == "frame.json")
    );
    for p in 0..PARTITIONS {
        assert!(
            parts::read(&store, &gid, &g.topic, p)
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_with_another_selection_is_refused_and_an_unfinished_group_backup_is_finished_by_the_group()
 {
    let g = setup(600, 0, false).await;
    let store = g.store();
    let id = unique("r");
    let id = id.as_str();
    let cfg = g.backup_config(id, &g.topic);
    let log = g.dir.path().join("worker.log");
    let (status, text) = finished(
        &mut g.worker(&cfg, &log),
        &log,
        Instant::now() + Duration::from_secs(120),
    );
    assert!(status.success(), "{text}");

    // another topic selection for the same backup: refused, both named
    let other = format!("{}-other", g.topic);
    let other_cfg = g.backup_config(id, &other);
    let out = g.run(&["backup", "-c", other_cfg.to_str().unwrap(), "--group"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "`source.topics.include`: the frame has [\"{}\"], this worker [\"{other}\"]",
            g.topic
        )) && err.contains("hint: every worker of a group backup needs the same configuration"),
        "{err}"
    );
    // ... and so is one in another group
    let out = g.run(&[
        "backup",
        "-c",
        cfg.to_str().unwrap(),
        "--group",
        "elsewhere",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "`--group`: the frame has \"kafka-backup.{id}\", this worker \"elsewhere\""
        )),
        "{}",
        stderr(&out)
    );

    // without its manifest the folder is an unfinished group backup: a
    // single run leaves it alone, the group finishes it from its parts
    let before = BackupReader::open(&store, id).await.unwrap().manifest;
    std::fs::remove_file(g.dir.path().join(format!("store/{id}/manifest.json"))).unwrap();
    let out = g.run(&["backup", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "is a group backup (`{id}/frame.json`) that did not finish"
        )) && stderr(&out).contains("run `kafka-backup backup --group`"),
        "{}",
        stderr(&out)
    );
    assert!(
        g.dir.path().join(format!("store/{id}/parts")).is_dir(),
        "the single run cleared nothing"
    );
    let out = success(&g.run(&["backup", "-c", cfg.to_str().unwrap(), "--group"]));
    drop(out);
    let after = BackupReader::open(&store, id).await.unwrap().manifest;
    assert_eq!(after.topics, before.topics);
    assert_eq!(after.files, before.files);
    assert_eq!(after.started_at, before.started_at, "the frame's start");
}
