//! The tool's own memory is bounded by its settings, not by the size of what
//! it backs up or restores (issue 14). The binary counts its heap
//! (`src/heap.rs`) and says the peak at `-v`; librdkafka's queues are C
//! allocations bounded by librdkafka's own settings (and noida-db answers a
//! fetch with a whole partition tail, which only librdkafka holds), so RSS
//! alone could not show this.
//!
//! One topic, then one 8 times larger: both are backed up and restored with
//! the same segment size and concurrency, and the peak heap of each run must
//! stay under what the settings allow, a bound far below the larger topic.

mod common;

use common::records::*;

/// The peak line only, whatever else `-v` would log.
const HEAP_LOG: &[(&str, &str)] = &[("KAFKA_BACKUP_LOG", "warn,kafka_backup::heap=info")];
const SEGMENT: u64 = 256 * 1024;
const CONCURRENCY: u64 = 3;
/// What a run holds besides its partition workers' buffers: the registry
/// snapshot, the plan, the manifest, the runtime.
const FIXED: u64 = 4 << 20;

/// Per partition worker at most four segment buffers at once: the backup's
/// one being filled, one handed over, one being compressed and its output;
/// the restore's one prefetched, one being read and the records in between.
fn bound() -> u64 {
    CONCURRENCY * 4 * SEGMENT + FIXED
}

fn peak_heap(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.contains("peak_heap_bytes="))
        .unwrap_or_else(|| panic!("no peak_heap_bytes in:\n{stderr}"));
    line.split("peak_heap_bytes=")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Backs up and restores `count` records of about 4 KiB (on 2 of 5), and
/// gives the payload and the peak heap of the backup and of the apply.
async fn round_trip(count: u32) -> (u64, u64, u64) {
    let records: Vec<Rec> = (0..count)
        .map(|i| record_padded(i, 3, None, 4096))
        .collect();
    let payload: u64 = records
        .iter()
        .map(|r| {
            (r.key.as_ref().map_or(0, Vec::len)
                + r.value.as_ref().map_or(0, Vec::len)
                + r.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()) as u64
        })
        .sum();
    let b = seeded_source(common::unique("memory"), 3, records).await;
    let backup = common::write(
        b.dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{}\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            common::bootstrap(),
            b.topic,
            b.dir.path().join("store").display(),
            b.source.url
        ),
    );
    let segment = SEGMENT.to_string();
    let concurrency = CONCURRENCY.to_string();
    let out = common::kafka_backup_with_env(
        &[
            "backup",
            "-c",
            backup.to_str().unwrap(),
            "--segment-bytes",
            &segment,
            "--partition-concurrency",
            &concurrency,
            "-v",
        ],
        HEAP_LOG,
    );
    common::success(&out);
    let backed_up = peak_heap(&common::stderr(&out));

    let target = common::Registry::start();
    let restored = format!("{}-restored", b.topic);
    let cfg = topic_restore_config(
        b.dir.path(),
        "restore.yaml",
        &b.topic,
        &restored,
        &target.url,
        "      rewrite_ids: true\n",
    );
    let out = common::kafka_backup_with_env(
        &[
            "apply",
            "-c",
            cfg.to_str().unwrap(),
            "--auto-approve",
            "--partition-concurrency",
            &concurrency,
            "-v",
        ],
        HEAP_LOG,
    );
    common::success(&out);
    let applied = peak_heap(&common::stderr(&out));
    // every record is there: the bound was not met by leaving some out
    let got: usize = consume_all(&restored, 3).values().map(Vec::len).sum();
    assert_eq!(got, count as usize);
    (payload, backed_up, applied)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tools_own_heap_is_bounded_by_its_settings_whatever_the_topic_size() {
    let (small_payload, small_backup, small_apply) = round_trip(2_000).await;
    let (big_payload, big_backup, big_apply) = round_trip(16_000).await;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "payload {:.1} / {:.1} MiB; backup peak heap {:.1} / {:.1} MiB; apply {:.1} / {:.1} MiB; bound {:.1} MiB",
        mib(small_payload),
        mib(big_payload),
        mib(small_backup),
        mib(big_backup),
        mib(small_apply),
        mib(big_apply),
        mib(bound())
    );
    // the larger topic would not fit under the bound: a run that held it
    // (or a growing part of it) would fail here
    assert!(
        big_payload > 2 * bound(),
        "the large topic is {big_payload} bytes"
    );
    for (what, peak) in [
        ("backup", small_backup),
        ("backup", big_backup),
        ("apply", small_apply),
        ("apply", big_apply),
    ] {
        assert!(
            peak <= bound(),
            "{what} peaked at {:.1} MiB, over the {:.1} MiB its settings allow",
            mib(peak),
            mib(bound())
        );
    }
}
