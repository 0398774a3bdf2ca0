//! End to end: `kafka-backup verify` after `apply`, against the live broker
//! and live registries. The source registry holds the reference page's
//! example (IDs 1, 5, 2), the target hands out 1, 2, 3, so the restored
//! records differ from the backed-up ones in their ID bytes, and only there.
//! Every test changes one thing in the target and expects verify to name it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::records::*;
use common::*;

struct Setup {
    dir: tempfile::TempDir,
    _source: Registry,
    target: Registry,
    tag: String,
    topic: String,
    restored: String,
    records: Vec<Rec>,
}

/// A source registry with the seed example, a topic of 30 records over 3
/// partitions, both backed up as `b1`; an empty target registry.
async fn setup() -> Setup {
    // a tag of fixed length, so that the table's columns keep their widths
    // when the test replaces it
    let tag = format!("{:016x}", fastrand::u64(..));
    let b = seeded_backup(
        format!("orders-{tag}"),
        (0..30).map(|i| record(i, 3, None)).collect(),
    )
    .await;
    Setup {
        restored: format!("{}-restored", b.topic),
        tag,
        dir: b.dir,
        _source: b.source,
        target: Registry::start(),
        topic: b.topic,
        records: b.records,
    }
}

impl Setup {
    /// The restore configuration, the backed-up topic restored as `into`.
    fn config(&self, name: &str, into: &str) -> PathBuf {
        topic_restore_config(
            self.dir.path(),
            name,
            &self.topic,
            into,
            &self.target.url,
            // the test topic mixes framed, plain and null keys and values
            // (every shape a record can have): both fields said framed
            "      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {key: always, value: always}\n",
        )
    }

    /// Restores into `self.restored` with `apply -c`.
    fn apply(&self) -> PathBuf {
        let cfg = self.config("restore.yaml", &self.restored);
        success(&kafka_backup(&[
            "apply",
            "-c",
            cfg.to_str().unwrap(),
            "--auto-approve",
        ]));
        cfg
    }

    /// The output with the test's unique tag replaced by one of the same length.
    fn shown(&self, text: &str) -> String {
        text.replace(&self.tag, &"X".repeat(self.tag.len()))
    }
}

fn verify(cfg: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify", "-c", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    kafka_backup(&args)
}

/// Asserts exit code 1 and gives stdout (the table), printing both streams otherwise.
fn differs(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify should have failed:\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

macro_rules! assert_table {
    ($text:expr, @$snapshot:literal) => {
        insta::with_settings!({filters => vec![(r"\b[0-9a-f]{64}\b", "[sha256]"), (r"\b[0-9a-f]{12}\b", "[sha]")]}, {
            insta::assert_snapshot!($text, @$snapshot);
        })
    };
}

#[tokio::test(flavor = "multi_thread")]
async fn after_apply_verify_matches_and_shows_the_counts() {
    let s = setup().await;
    let cfg = s.apply();

    let printed = success(&verify(&cfg, &[]));
    assert_table!(s.shown(&printed), @r"
    Registry
      subjects/versions   2 subject(s), 3 version(s) checked, 3 same
      schema IDs          3 source ID(s), 3 mapped, 3 serve the same schema
      levels and modes    4 checked, 4 as in the backup
    Topics
      TOPIC                                                        PARTITION  BACKUP  EXPECTED  TARGET  SHA-256
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          0      10        10      10  same ([sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          1      10        10      10  same ([sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          2      10        10      10  same ([sha])
    Result: the target matches the backup.
    ");

    // the same facts as JSON
    let json: serde_json::Value =
        serde_json::from_str(&success(&verify(&cfg, &["--format", "json"]))).unwrap();
    assert_eq!(json["result"], "match");
    assert_eq!(json["registry"]["ids_same"], 3);
    let partitions = json["topics"]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    for p in partitions {
        assert_eq!(p["expected_records"], 10, "{p}");
        assert_eq!(p["target_records"], 10, "{p}");
        assert_eq!(p["backup_sha256"], p["target_sha256"], "{p}");
    }

    // a restore cut at a point in time expects fewer records: the rest are extra
    let out = verify(&cfg, &["--to-timestamp", "1700000019000"]);
    let printed = differs(&out);
    assert!(
        printed.contains(&format!(
            "`{}` partition 0 holds 10 restored record(s), 7 expected: 3 more from offset 7, which the backup does not have",
            s.restored
        )),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extra_record_in_a_restored_partition_is_named() {
    let s = setup().await;
    let cfg = s.apply();
    produce(&s.restored, &[rewritten(s.records[1].clone(), &seed_map())]).await;

    let printed = differs(&verify(&cfg, &[]));
    assert_table!(s.shown(&printed), @r"
    Registry
      subjects/versions   2 subject(s), 3 version(s) checked, 3 same
      schema IDs          3 source ID(s), 3 mapped, 3 serve the same schema
      levels and modes    4 checked, 4 as in the backup
    Topics
      TOPIC                                                        PARTITION  BACKUP  EXPECTED  TARGET  SHA-256
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          0      10        10      10  same ([sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          1      10        10      11  differs ([sha] != [sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          2      10        10      10  same ([sha])
    Differences
      - `orders-XXXXXXXXXXXXXXXX-restored` partition 1 holds 11 restored record(s), 10 expected: 1 more from offset 10, which the backup does not have
      SHA-256 of `orders-XXXXXXXXXXXXXXXX-restored` partition 1: backup [sha256], target [sha256]
    Result: 1 difference(s) between the target and the backup.
    ");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_byte_is_named_with_its_offset() {
    let s = setup().await;
    s.apply();
    // a restore written by hand: the records as the restore writes them...
    let expected: Vec<Rec> = s
        .records
        .iter()
        .map(|r| rewritten(r.clone(), &seed_map()))
        .collect();
    let by_hand = format!("{}-by-hand", s.topic);
    create_topic(&by_hand, 3, &[]).await;
    produce(&by_hand, &expected).await;
    success(&verify(&s.config("by-hand.yaml", &by_hand), &[]));

    // ...and once more with one byte of record 17 (partition 2, offset 5) changed
    let mut altered = expected.clone();
    let value = altered[17].value.as_mut().unwrap();
    assert_eq!(
        value[..5],
        framed(1, b"")[..],
        "record 17 is framed with ID 1"
    );
    *value.last_mut().unwrap() ^= 0x20;
    let changed = format!("{}-changed", s.topic);
    create_topic(&changed, 3, &[]).await;
    produce(&changed, &altered).await;
    let out = verify(&s.config("changed.yaml", &changed), &[]);
    let printed = differs(&out);
    assert_table!(s.shown(&printed), @r"
    Registry
      subjects/versions   2 subject(s), 3 version(s) checked, 3 same
      schema IDs          3 source ID(s), 3 mapped, 3 serve the same schema
      levels and modes    4 checked, 4 as in the backup
    Topics
      TOPIC                                                       PARTITION  BACKUP  EXPECTED  TARGET  SHA-256
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-changed          0      10        10      10  same ([sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-changed          1      10        10      10  same ([sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-changed          2      10        10      10  differs ([sha] != [sha])
    Differences
      - `orders-XXXXXXXXXXXXXXXX-changed` partition 2 offset 5: value differs at byte 14 (0x17, the backup's 0x37) (the record from `orders-XXXXXXXXXXXXXXXX` offset 5)
      SHA-256 of `orders-XXXXXXXXXXXXXXXX-changed` partition 2: backup [sha256], target [sha256]
    Result: 1 difference(s) between the target and the backup.
    ");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_level_changed_in_the_target_registry_is_named() {
    let s = setup().await;
    let cfg = s.apply();
    let (status, body) = s
        .target
        .call(
            reqwest::Method::PUT,
            "/config/orders-value",
            Some(serde_json::json!({"compatibility": "FULL"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let printed = differs(&verify(&cfg, &[]));
    assert_table!(s.shown(&printed), @r"
    Registry
      subjects/versions   2 subject(s), 3 version(s) checked, 3 same
      schema IDs          3 source ID(s), 3 mapped, 3 serve the same schema
      levels and modes    4 checked, 3 as in the backup (1 difference(s))
    Topics
      TOPIC                                                        PARTITION  BACKUP  EXPECTED  TARGET  SHA-256
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          0      10        10      10  same ([sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          1      10        10      10  same ([sha])
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          2      10        10      10  same ([sha])
    Differences
      - compatibility of `orders-value`: FULL in the target, the backup's is (not set) (if the target set it before the restore, `preserve` and `skip` keep it)
    Result: 1 difference(s) between the target and the backup.
    ");
}

#[tokio::test(flavor = "multi_thread")]
async fn before_any_apply_subjects_and_topics_are_missing() {
    let s = setup().await;
    let cfg = s.config("restore.yaml", &s.restored);

    let printed = differs(&verify(&cfg, &[]));
    assert_table!(s.shown(&printed), @r"
    Registry
      subjects/versions   2 subject(s), 3 version(s) checked, 0 same (3 difference(s))
      schema IDs          3 source ID(s), 0 mapped, 0 serve the same schema (3 difference(s))
      levels and modes    0 checked, 0 as in the backup
    Topics
      TOPIC                                                        PARTITION  BACKUP  EXPECTED  TARGET  SHA-256
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          0      10         0       -  missing
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          1      10         3       -  missing
      orders-XXXXXXXXXXXXXXXX -> orders-XXXXXXXXXXXXXXXX-restored          2      10         3       -  missing
    Differences
      - + register orders-value v1: new subject; id 1 -> known after apply
      - + register orders-value v2: new subject; id 5 -> known after apply
      - + register payments-value v1: new subject; id 2 -> known after apply
      - schema ID 1 (`orders-value v1`) has no ID in the target: known after apply
      - schema ID 2 (`payments-value v1`) has no ID in the target: known after apply
      - schema ID 5 (`orders-value v2`) has no ID in the target: known after apply
      - the record at `orders-XXXXXXXXXXXXXXXX` partition 0 offset 0 carries schema ID 2, which is not in the ID map (`missing_id_policy: fail`): the restore cannot have written it
      - `orders-XXXXXXXXXXXXXXXX-restored` partition 0 is not in the target (no such topic): 0 record(s) expected
      - the record at `orders-XXXXXXXXXXXXXXXX` partition 1 offset 0 carries schema ID 5, which is not in the ID map (`missing_id_policy: fail`): the restore cannot have written it
      - `orders-XXXXXXXXXXXXXXXX-restored` partition 1 is not in the target (no such topic): 3 record(s) expected
      - the record at `orders-XXXXXXXXXXXXXXXX` partition 2 offset 0 carries schema ID 1, which is not in the ID map (`missing_id_policy: fail`): the restore cannot have written it
      - `orders-XXXXXXXXXXXXXXXX-restored` partition 2 is not in the target (no such topic): 3 record(s) expected
    Result: 12 difference(s) between the target and the backup.
    ");
}
