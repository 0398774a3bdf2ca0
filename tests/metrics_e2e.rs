//! The Prometheus endpoint (issue 16): scraped while a backup runs and in the
//! seconds it lingers after, it shows the records taken per topic, the
//! segments stored, no lag left and the last success time; scraped while an
//! apply runs and after, the records and bytes the target acknowledged per
//! topic (the bytes summed here from the records produced) and the lag: what
//! an interrupted apply left, what its rerun had left, 0 at the end.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::records::*;
use common::*;

/// The value of the sample `name` (with its labels) in an exposition text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l[name.len()..].trim().parse().ok())
}

async fn scrape(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_is_scraped_while_it_runs_and_after_it_ends() {
    let topic = unique("metrics");
    create_topic(&topic, 3, &[]).await;
    let records: Vec<Rec> = (0..3000).map(|i| record_padded(i, 3, None, 200)).collect();
    produce(&topic, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: m1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\n",
            bootstrap(),
            dir.path().join("store").display()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["backup", "-c", cfg.to_str().unwrap()])
        .args(["--segment-bytes", "100000"])
        .args(["--metrics-addr", "127.0.0.1:0", "--metrics-linger", "4"])
        .env("KAFKA_BACKUP_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let next = |what: &str| -> String {
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no `{what}` line"));
            if line.contains(what) {
                return line;
            }
        }
    };
    let serving = next("metrics: serving on http://");
    let url = serving
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();

    // while it runs: the endpoint answers, in Prometheus' text format
    let during = scrape(&url).await;
    // (a family shows once it has a sample: the counters without labels always)
    assert!(
        during.contains("# TYPE kafka_backup_segments_stored counter"),
        "{during}"
    );
    assert!(during.ends_with("# EOF\n"), "{during}");

    next("backup `m1` done");
    let after = scrape(&url).await;
    let label = format!("{{topic=\"{topic}\"}}");
    assert_eq!(
        sample(&after, &format!("kafka_backup_records_total{label}")),
        Some(3000.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, &format!("kafka_backup_lag_records{label}")),
        Some(0.0),
        "{after}"
    );
    let segments = sample(&after, "kafka_backup_segments_stored_total").unwrap();
    let manifest: kafka_backup::manifest::Manifest =
        serde_json::from_slice(&std::fs::read(dir.path().join("store/m1/manifest.json")).unwrap())
            .unwrap();
    let stored: usize = manifest.topics[&topic]
        .partitions
        .values()
        .map(|p| p.segments.len())
        .sum();
    assert!(stored > 3, "small segments: several per partition");
    assert_eq!(segments, stored as f64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // set once the run returned, before the linger
    next("for 4 s more");
    let lingering = scrape(&url).await;
    let last = sample(&lingering, "kafka_backup_last_success_timestamp_seconds").unwrap();
    assert!((now - 60.0..=now + 1.0).contains(&last), "{last} vs {now}");

    // and it ends once the linger is over
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

/// The bytes the metrics count for `r`: its key, its value, and each
/// header's name and value.
fn rec_bytes(r: &Rec) -> u64 {
    let len = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, Vec::len);
    let headers: usize = r.headers.iter().map(|(n, v)| n.len() + len(v)).sum();
    (len(&r.key) + len(&r.value) + headers) as u64
}

/// A run of the binary with the metrics served, scraped as often as it
/// answers while it runs and once more while it lingers.
struct Scraped {
    during: Vec<String>,
    after: String,
    status: ExitStatus,
    output: String,
}

async fn run_scraped(args: &[&str]) -> Scraped {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0", "--metrics-linger", "3"])
        .env("KAFKA_BACKUP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let printed = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `metrics: serving on` line: {lines:?}"));
        if line.starts_with("metrics: serving on http://") {
            break line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap()
                .to_owned();
        }
        lines.push(line);
    };
    // until the run is over (its linger line), as often as it answers
    let mut during = Vec::new();
    let started = std::time::Instant::now();
    'run: loop {
        while let Ok(line) = rx.try_recv() {
            let over = line.starts_with("metrics: serving on") && line.ends_with("s more");
            lines.push(line);
            if over {
                break 'run;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the run did not end: {lines:?}"
        );
        during.push(scrape(&url).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = scrape(&url).await;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    lines.extend(rx.try_iter());
    let output = format!(
        "stdout:\n{}\nstderr:\n{}",
        printed.join().unwrap(),
        lines.join("\n")
    );
    Scraped {
        during,
        after,
        status,
        output,
    }
}

/// A seeded source (the reference page's registry, `n` records of 200-byte
/// padded values over 3 partitions) backed up as `b1` in segments of about
/// 40 kB, several per partition; `apply` configuration `restore.yaml`
/// restores it as `<topic>-restored` into a fresh target registry.
async fn seeded_apply(n: u32) -> (SeededBackup, Registry, String, std::path::PathBuf) {
    let topic = unique("metrics-apply");
    let records: Vec<Rec> = (0..n).map(|i| record_padded(i, 3, None, 200)).collect();
    let b = seeded_source(topic, 3, records).await;
    let cfg = write(
        b.dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{}\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            bootstrap(),
            b.topic,
            b.dir.path().join("store").display(),
            b.source.url
        ),
    );
    success(&kafka_backup(&[
        "backup",
        "-c",
        cfg.to_str().unwrap(),
        "--segment-bytes",
        "40000",
    ]));
    let target = Registry::start();
    let restored = format!("{}-restored", b.topic);
    let cfg = topic_restore_config(
        b.dir.path(),
        "restore.yaml",
        &b.topic,
        &restored,
        &target.url,
        "      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {key: always, value: always}\n",
    );
    (b, target, restored, cfg)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_counts_the_records_and_bytes_the_target_acknowledged_and_ends_without_lag() {
    let (b, _target, restored, cfg) = seeded_apply(3000).await;
    // a point in time: records 0..=2699 are written, the last 300 (100 in
    // each partition) left out, which the lag counts until their partition is done
    let to_timestamp = (1_700_000_000_000i64 + 2699 * 1000).to_string();
    let run = run_scraped(&[
        "apply",
        "-c",
        cfg.to_str().unwrap(),
        "--auto-approve",
        "--to-timestamp",
        &to_timestamp,
    ])
    .await;
    assert!(run.status.success(), "{}", run.output);
    let written: Vec<Rec> = b.records[..2700]
        .iter()
        .map(|r| rewritten(r.clone(), &seed_map()))
        .collect();
    let bytes: u64 = written.iter().map(rec_bytes).sum();
    // the rewrite keeps every size: the bytes are the ones produced
    assert_eq!(bytes, b.records[..2700].iter().map(rec_bytes).sum::<u64>());

    let label = format!("{{topic=\"{restored}\"}}");
    let records_name = format!("kafka_backup_records_total{label}");
    let bytes_name = format!("kafka_backup_bytes_total{label}");
    let lag_name = format!("kafka_backup_lag_records{label}");
    let after = &run.after;
    assert_eq!(sample(after, &records_name), Some(2700.0), "{after}");
    assert_eq!(sample(after, &bytes_name), Some(bytes as f64), "{after}");
    assert_eq!(sample(after, &lag_name), Some(0.0), "{after}");
    assert_eq!(
        consume_all(&restored, 3)
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        2700
    );

    // while it ran: never more than the backup holds (the lag, an upper
    // bound) or than the restore writes (the counters); whether a scrape
    // fell while records were left is up to the scheduler, so it is only shown
    let mut lag_seen = 0.0f64;
    for text in &run.during {
        let lag = sample(text, &lag_name).unwrap_or(0.0);
        lag_seen = lag_seen.max(lag);
        assert!((0.0..=3000.0).contains(&lag), "{text}");
        assert!(
            sample(text, &records_name).unwrap_or(0.0) <= 2700.0,
            "{text}"
        );
        assert!(
            sample(text, &bytes_name).unwrap_or(0.0) <= bytes as f64,
            "{text}"
        );
    }
    eprintln!(
        "{} scrape(s) during the apply, the largest lag {lag_seen}",
        run.during.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_apply_leaves_lag_and_its_rerun_counts_only_what_was_left() {
    let (b, _target, restored, cfg) = seeded_apply(3000).await;
    let total: u64 = b.records.iter().map(rec_bytes).sum();
    // the last segment of partition 1 damaged: the restore stops there
    let manifest: kafka_backup::manifest::Manifest = serde_json::from_slice(
        &std::fs::read(b.dir.path().join("store/b1/manifest.json")).unwrap(),
    )
    .unwrap();
    let segments = &manifest.topics[&b.topic].partitions[&1].segments;
    assert!(segments.len() > 2, "several segments: {segments:?}");
    let last = segments.last().unwrap();
    let path = b.dir.path().join("store/b1").join(&last.path);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();

    let label = format!("{{topic=\"{restored}\"}}");
    let records_name = format!("kafka_backup_records_total{label}");
    let bytes_name = format!("kafka_backup_bytes_total{label}");
    let lag_name = format!("kafka_backup_lag_records{label}");
    let apply = ["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"];

    let first = run_scraped(&apply).await;
    assert_eq!(first.status.code(), Some(1), "{}", first.output);
    assert!(first.output.contains("sha256"), "{}", first.output);
    let after = &first.after;
    let lag = sample(after, &lag_name).unwrap_or_else(|| panic!("{after}"));
    let records = sample(after, &records_name).unwrap_or(0.0);
    // the damaged segment's records were never confirmed; every other
    // record is either confirmed (counted) or still to write (lag)
    assert!(lag >= last.meta.record_count as f64, "{after}");
    assert_eq!(lag + records, 3000.0, "{after}");

    // what the target holds now, written by the first run (some of it
    // acknowledged after its journal was last saved, found by the rerun)
    std::fs::write(&path, &good).unwrap();
    let held = consume_all(&restored, 3);
    let held_records = held.values().map(Vec::len).sum::<usize>() as u64;
    let held_bytes: u64 = held.values().flatten().map(rec_bytes).sum();
    assert!(held_records < 3000);

    let second = run_scraped(&apply).await;
    assert!(second.status.success(), "{}", second.output);
    let after = &second.after;
    assert_eq!(
        sample(after, &records_name),
        Some((3000 - held_records) as f64),
        "{after}"
    );
    assert_eq!(
        sample(after, &bytes_name),
        Some((total - held_bytes) as f64),
        "{after}"
    );
    assert_eq!(sample(after, &lag_name), Some(0.0), "{after}");
    // while the rerun ran, its lag never counted the records the first run
    // had confirmed (its journal says which): it began at the first run's
    for text in &second.during {
        let now = sample(text, &lag_name).unwrap_or(0.0);
        assert!(now <= lag, "{now} > {lag}: {text}");
    }
    let mut expected = std::collections::BTreeMap::<i32, Vec<Rec>>::new();
    for r in &b.records {
        expected
            .entry(r.partition)
            .or_default()
            .push(rewritten(r.clone(), &seed_map()));
    }
    assert_eq!(consume_all(&restored, 3), expected);
}
