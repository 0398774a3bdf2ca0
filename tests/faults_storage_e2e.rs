//! The storage row of the fault matrix (issue 9), end to end: the real binary
//! backs up to `s3://` on the test ground's S3-compatible server (moto)
//! through the fault proxy (`tests/common/faults.rs`), which refuses a segment
//! write or the manifest write for good (403, as a revoked permission does),
//! or answers 503 to every write for a while. A backup that could not write a
//! file must fail naming it and publish no manifest; the rerun must hold
//! every record; a short outage is ridden out.

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::collections::BTreeMap;
use std::time::Duration;

use common::matrix::{self, Tally};
use common::records::*;
use common::*;
use faults::{Action, Fault, HttpProxy};

const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "kafka-backup-test"),
    ("AWS_SECRET_ACCESS_KEY", "kafka-backup-test-secret"),
    ("AWS_REGION", "us-east-1"),
];

struct Ground {
    proxy: HttpProxy,
    bucket: String,
    topic: String,
    records: Vec<Rec>,
    dir: tempfile::TempDir,
}

/// A bucket on the S3 server, reached through a fresh proxy, and a topic of
/// 3 x 1,000 records with 1 KiB values (several segments per partition with
/// `--segment-bytes 200000`).
async fn ground_with_topic() -> Ground {
    let (endpoint, bucket) = s3_bucket("kbf").await;
    let topic = unique("s3-faults");
    create_topic(&topic, 3, &[]).await;
    let records: Vec<Rec> = (0..3000).map(|i| record_padded(i, 3, None, 1024)).collect();
    produce(&topic, &records).await;
    Ground {
        proxy: HttpProxy::start(&endpoint),
        bucket,
        topic,
        records,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Ground {
    fn config(&self, id: &str) -> std::path::PathBuf {
        write(
            self.dir.path(),
            &format!("{id}.yaml"),
            &format!(
                "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{}\"]\nstorage:\n  url: s3://{}/prod\n  endpoint: {}\n  allow_http: true\n  region: us-east-1\n",
                bootstrap(),
                self.topic,
                self.bucket,
                self.proxy.url
            ),
        )
    }

    fn backup(&self, id: &str) -> std::process::Output {
        kafka_backup_with_env(
            &[
                "backup",
                "-c",
                self.config(id).to_str().unwrap(),
                "--segment-bytes",
                "200000",
                "--partition-concurrency",
                "1",
            ],
            &CREDENTIALS,
        )
    }

    /// The prefix of backup `id`'s objects, as the proxy sees the paths.
    fn prefix(&self, id: &str, below: &str) -> String {
        format!("/{}/prod/{id}/{below}", self.bucket)
    }

    async fn has_manifest(&self, id: &str) -> bool {
        // the bucket listing (objects themselves need signed requests)
        let url = format!(
            "{}/{}?list-type=2&prefix=prod/{id}/manifest.json",
            ground("S3_ENDPOINT"),
            self.bucket
        );
        let listed = reqwest::get(url).await.unwrap().text().await.unwrap();
        assert!(listed.contains("<ListBucketResult"), "{listed}");
        listed.contains(&format!("<Key>prod/{id}/manifest.json</Key>"))
    }

    /// The backed-up records against the topic's, through `restore`-free
    /// reading: `describe --verify-files`, then every segment record counted.
    fn tally(&self, id: &str) -> Tally {
        let out = kafka_backup_with_env(
            &[
                "describe",
                "--path",
                &format!("s3://{}/prod", self.bucket),
                "--backup-id",
                id,
                "--format",
                "json",
                "--verify-files",
            ],
            &[
                CREDENTIALS[0],
                CREDENTIALS[1],
                CREDENTIALS[2],
                ("AWS_ENDPOINT", &ground("S3_ENDPOINT")),
                ("AWS_ALLOW_HTTP", "true"),
            ],
        );
        let described: serde_json::Value = serde_json::from_str(&success(&out)).unwrap();
        let mut got: BTreeMap<i32, u64> = BTreeMap::new();
        for t in described["topics"].as_array().into_iter().flatten() {
            for p in t["partition_details"].as_array().into_iter().flatten() {
                *got.entry(p["partition"].as_i64().unwrap() as i32)
                    .or_default() += p["records"].as_u64().unwrap();
            }
        }
        let mut want: BTreeMap<i32, u64> = BTreeMap::new();
        for r in &self.records {
            *want.entry(r.partition).or_default() += 1;
        }
        let mut t = Tally::default();
        for (p, n) in &want {
            let have = got.get(p).copied().unwrap_or(0);
            t.lost += n.saturating_sub(have) as usize;
            t.duplicated += have.saturating_sub(*n) as usize;
        }
        t
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_storage_refusing_a_segment_or_the_manifest_publishes_no_backup() {
    let g = ground_with_topic().await;
    let mut total = Tally::default();
    for (id, what) in [("seg", "kafka/"), ("man", "manifest.json")] {
        g.proxy
            .inject(Fault::next(Action::Status(403), 1).only("PUT", &g.prefix(id, what)));
        let out = g.backup(id);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("{id}/{what}")),
            "the failed write is named: {err}"
        );
        assert!(
            !g.has_manifest(id).await,
            "no manifest after a failed write ({what})"
        );
        g.proxy.clear();
        // the rerun clears what the failed run left and takes everything
        success(&g.backup(id));
        assert!(g.has_manifest(id).await);
        total.add(g.tally(id));
    }
    matrix::row(
        "storage refuses a segment write, or the manifest write (403), during backup",
        2,
        total,
        "backup failed naming the file, no manifest; the rerun complete",
    );
    assert!(total.clean(), "{total:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_storage_answering_503_for_a_while_is_ridden_out() {
    let g = ground_with_topic().await;
    g.proxy.inject(
        Fault::window(Action::Status(503), Duration::from_millis(1500))
            .only("PUT", &g.prefix("b503", "")),
    );
    success(&g.backup("b503"));
    let refused = g
        .proxy
        .log()
        .iter()
        .filter(|(_, what)| what == "answered 503")
        .count();
    assert!(refused > 0, "the outage hit no write");
    assert!(g.has_manifest("b503").await);
    let t = g.tally("b503");
    matrix::row(
        "storage answers 503 to every write for 1.5 s during backup",
        1,
        t,
        &format!("{refused} write(s) refused, retried; backup complete, files verified"),
    );
    assert!(t.clean(), "{t:?}");
}
