//! The Prometheus endpoint (issue 16): scraped while a backup runs and in the
//! seconds it lingers after, it shows the records taken per topic, the
//! segments stored, no lag left and the last success time.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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
