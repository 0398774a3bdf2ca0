//! End to end: the restore options that decide what the target registry ends
//! up holding (`force_ids`, `subject_mapping`, `strategy`, `set_compatibility`,
//! `id_mapping_file`, `context_mapping`), through `kafka-backup plan`,
//! `apply -c` and `verify` against the live broker and live registries. The
//! source registry holds the reference page's example (orders-value v1 id 1,
//! v2 id 5, payments-value v1 id 2), or the `contexts` fixture for
//! `context_mapping`; each test gives the target its own starting state and
//! checks the IDs it serves, its levels, and the restored records byte for
//! byte.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::records::*;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use reqwest::Method;
use serde_json::{Value, json};

/// The backed-up orders-value v1 (source id 1).
const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"string"}]}"#;
/// The backed-up orders-value v2 (source id 5).
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"string"},{"name":"amount","type":{"type":"long"}}]}"#;
/// The backed-up payments-value v1 (source id 2).
const PAYMENT_V1: &str = r#"{"type":"record","name":"Payment","namespace":"com.acme","fields":[{"name":"id","type":"string"},{"name":"order","type":"string"}]}"#;
/// An orders-value v1 that diverged from the backup's.
const ORDER_DIVERGED: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"total","type":"double"}]}"#;
/// A schema the backup does not have.
const LEGACY: &str = r#"{"type":"record","name":"Legacy","namespace":"com.other","fields":[{"name":"x","type":"int"}]}"#;

/// The topic's partitions as the broker reports them (0 when it does not exist).
fn partition_count(topic: &str) -> usize {
    let consumer: BaseConsumer = client_config().create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len())
}

struct Setup {
    dir: tempfile::TempDir,
    _source: Registry,
    target: Registry,
    topic: String,
    restored: String,
    records: Vec<Rec>,
}

/// A source registry with the seed example, a topic of 30 records over 3
/// partitions, both backed up as `b1`; an empty target registry.
async fn setup() -> Setup {
    let b = seeded_backup(
        unique("orders"),
        (0..30).map(|i| record(i, 3, None)).collect(),
    )
    .await;
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
    /// A restore configuration; `restore` is the body of the `restore:`
    /// block, one option per line, indented by 6.
    fn config(&self, name: &str, restore: &str) -> PathBuf {
        // the test topic mixes framed, plain and null keys and values, to
        // exercise every shape a record can have: where IDs are rewritten,
        // both fields are said to be framed (detection has tests of its own)
        let rewrites =
            !restore.contains("force_ids: true") && !restore.contains("rewrite_ids: false");
        let fields = if rewrites {
            "      rewrite_fields: {key: always, value: always}\n"
        } else {
            ""
        };
        topic_restore_config(
            self.dir.path(),
            name,
            &self.topic,
            &self.restored,
            &self.target.url,
            &format!("{restore}{fields}"),
        )
    }

    /// The backed-up records per partition, IDs moved through `map`.
    fn expected(&self, map: &[(u32, u32)]) -> BTreeMap<i32, Vec<Rec>> {
        let map: BTreeMap<u32, u32> = map.iter().copied().collect();
        let mut out: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
        for r in &self.records {
            out.entry(r.partition)
                .or_default()
                .push(rewritten(r.clone(), &map));
        }
        out
    }

    /// The backed-up records per partition, as produced.
    fn originals(&self) -> BTreeMap<i32, Vec<Rec>> {
        self.expected(&[])
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.target.call(Method::GET, path, None).await
    }

    /// The ID the target serves for a live version.
    async fn id_of(&self, subject: &str, version: u32) -> u64 {
        let (status, body) = self
            .get(&format!("/subjects/{}/versions/{version}", encode(subject)))
            .await;
        assert_eq!(status, 200, "{subject} v{version}: {body}");
        body["id"].as_u64().unwrap()
    }

    /// The version and ID under which `subject` holds `schema` (soft-deleted
    /// versions included), as the target's own lookup compares schemas (by
    /// meaning: the registry keeps its parsed form, not the text sent).
    async fn found(&self, subject: &str, schema: &str) -> Option<(u64, u64)> {
        let (status, body) = self
            .target
            .call(
                Method::POST,
                &format!("/subjects/{}?deleted=true", encode(subject)),
                Some(json!({ "schema": schema })),
            )
            .await;
        match status {
            200 => Some((
                body["version"].as_u64().unwrap(),
                body["id"].as_u64().unwrap(),
            )),
            404 => None,
            _ => panic!("looking up a schema in `{subject}`: {status} {body}"),
        }
    }

    async fn subjects(&self) -> Value {
        let (status, body) = self.get("/subjects").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Version numbers of a subject, soft-deleted ones included.
    async fn versions(&self, subject: &str) -> Value {
        let (status, body) = self
            .get(&format!(
                "/subjects/{}/versions?deleted=true",
                encode(subject)
            ))
            .await;
        assert_eq!(status, 200, "{subject}: {body}");
        body
    }

    /// The subject has no level and no mode of its own (the temporary ones
    /// the restore set are gone again).
    async fn assert_no_own_settings(&self, subject: &str) {
        let (status, body) = self.get(&format!("/config/{}", encode(subject))).await;
        assert_eq!(status, 404, "{subject} keeps a level of its own: {body}");
        let (status, body) = self.get(&format!("/mode/{}", encode(subject))).await;
        assert_eq!(status, 404, "{subject} keeps a mode of its own: {body}");
    }

    /// Registers `schema` under `subject` in the target with the ID `id`
    /// (the subject in IMPORT mode for it, then without a mode again).
    async fn import(&self, subject: &str, schema: &str, id: u32) {
        let path = format!("/mode/{}", encode(subject));
        let (status, body) = self
            .target
            .call(Method::PUT, &path, Some(json!({"mode": "IMPORT"})))
            .await;
        assert_eq!(status, 200, "{body}");
        let got = self
            .target
            .register(subject, json!({"schema": schema, "id": id, "version": 1}))
            .await;
        assert_eq!(got, u64::from(id));
        let (status, body) = self.target.call(Method::DELETE, &path, None).await;
        assert_eq!(status, 200, "{body}");
    }

    /// The ID map `apply` kept: source ID to target ID.
    fn id_map(&self) -> BTreeMap<String, u64> {
        let apply = self
            .dir
            .path()
            .join("store/b1/apply")
            .join(kafka_backup::apply::journal::target_key(&self.target.url));
        let mut maps: Vec<BTreeMap<String, u64>> = std::fs::read_dir(&apply)
            .unwrap()
            .map(|d| d.unwrap().path().join("id-map.json"))
            .filter(|p| p.exists())
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect();
        assert_eq!(maps.len(), 1, "one applied plan under {}", apply.display());
        maps.pop().unwrap()
    }
}

fn apply_c(cfg: &Path) -> Output {
    kafka_backup(&["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"])
}

fn verify(cfg: &Path) -> Output {
    kafka_backup(&["verify", "-c", cfg.to_str().unwrap()])
}

/// `verify` passes.
fn verified(cfg: &Path) {
    let printed = success(&verify(cfg));
    assert!(
        printed.contains("the target matches the backup"),
        "{printed}"
    );
}

fn map_of(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn force_ids_into_an_empty_target_keeps_the_source_ids_and_the_record_bytes() {
    let s = setup().await;
    let cfg = s.config("force.yaml", "      force_ids: true\n");
    let printed = success(&apply_c(&cfg));
    eprintln!("{printed}");
    assert!(printed.contains("id 5 kept (IMPORT)"), "{printed}");

    // the source IDs, not the 1, 2, 3 the target would have handed out
    assert_eq!(s.id_of("orders-value", 1).await, 1);
    assert_eq!(s.id_of("orders-value", 2).await, 5);
    assert_eq!(s.id_of("payments-value", 1).await, 2);
    assert_eq!(s.id_map(), map_of(&[("1", 1), ("5", 5), ("2", 2)]));
    assert_eq!(s.found("orders-value", ORDER_V2).await, Some((2, 5)));
    assert_eq!(s.found("payments-value", PAYMENT_V1).await, Some((1, 2)));
    for subject in ["orders-value", "payments-value"] {
        s.assert_no_own_settings(subject).await;
    }

    // `rewrite_ids` defaults to false with force_ids: the records are the
    // backed-up bytes exactly
    let restored = consume_all(&s.restored, 3);
    assert_eq!(restored, s.originals());
    assert_eq!(restored.values().map(Vec::len).sum::<usize>(), 30);
    verified(&cfg);
}

#[tokio::test(flavor = "multi_thread")]
async fn force_ids_into_a_target_with_other_ids_keeps_them_and_leaves_the_rest() {
    let s = setup().await;
    s.import("legacy-value", LEGACY, 100).await;
    let cfg = s.config("force.yaml", "      force_ids: true\n");
    let printed = success(&apply_c(&cfg));
    eprintln!("{printed}");

    assert_eq!(s.id_of("orders-value", 1).await, 1);
    assert_eq!(s.id_of("orders-value", 2).await, 5);
    assert_eq!(s.id_of("payments-value", 1).await, 2);
    // the unrelated subject is as it was
    assert_eq!(
        s.subjects().await,
        json!(["legacy-value", "orders-value", "payments-value"])
    );
    assert_eq!(s.versions("legacy-value").await, json!([1]));
    assert_eq!(s.id_of("legacy-value", 1).await, 100);
    assert_eq!(s.found("legacy-value", LEGACY).await, Some((1, 100)));
    for subject in ["orders-value", "payments-value", "legacy-value"] {
        s.assert_no_own_settings(subject).await;
    }

    assert_eq!(consume_all(&s.restored, 3), s.originals());
    verified(&cfg);
}

#[tokio::test(flavor = "multi_thread")]
async fn force_ids_onto_an_id_the_target_uses_otherwise_is_refused_before_any_change() {
    let s = setup().await;
    s.import("legacy-value", LEGACY, 5).await;
    let cfg = s.config("force.yaml", "      force_ids: true\n");

    let out = kafka_backup(&["plan", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let printed = stdout(&out);
    assert!(printed.contains("[id_taken]"), "{printed}");
    assert!(
        printed.contains("`force_ids` keeps source ID 5 for `orders-value v2`"),
        "{printed}"
    );
    assert!(
        printed.contains("target `legacy-value` v1 holds id 5 with other content"),
        "{printed}"
    );
    assert!(stderr(&out).contains("1 conflict(s)"), "{}", stderr(&out));

    let out = apply_c(&cfg);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("[id_taken]"), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the plan has 1 conflict(s); it cannot be applied"),
        "{err}"
    );

    // nothing registered, no level or mode left behind, no topic made
    assert_eq!(s.subjects().await, json!(["legacy-value"]));
    assert_eq!(s.id_of("legacy-value", 1).await, 5);
    s.assert_no_own_settings("legacy-value").await;
    for subject in ["orders-value", "payments-value"] {
        s.assert_no_own_settings(subject).await;
    }
    assert_eq!(partition_count(&s.restored), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn subject_mapping_restores_under_the_new_names_with_the_targets_ids() {
    let s = setup().await;
    // a target that already handed out ID 1: every restored ID moves
    let legacy = s
        .target
        .register("legacy-value", json!({"schema": LEGACY}))
        .await;
    assert_eq!(legacy, 1);
    let cfg = s.config(
        "mapped.yaml",
        "      subject_mapping:\n        orders-value: restored-orders-value\n        payments-value: restored-payments-value\n",
    );
    let printed = success(&apply_c(&cfg));
    eprintln!("{printed}");
    assert!(
        printed.contains("+ register restored-orders-value v1: new subject; from `orders-value`"),
        "{printed}"
    );

    assert_eq!(
        s.subjects().await,
        json!([
            "legacy-value",
            "restored-orders-value",
            "restored-payments-value"
        ])
    );
    let v1 = s.id_of("restored-orders-value", 1).await;
    let v2 = s.id_of("restored-orders-value", 2).await;
    let payments = s.id_of("restored-payments-value", 1).await;
    assert_eq!(
        s.found("restored-orders-value", ORDER_V1).await,
        Some((1, v1))
    );
    assert_eq!(
        s.found("restored-orders-value", ORDER_V2).await,
        Some((2, v2))
    );
    assert_eq!(
        s.found("restored-payments-value", PAYMENT_V1).await,
        Some((1, payments))
    );
    let mut ids = vec![v1, v2, payments];
    ids.sort_unstable();
    assert_eq!(ids, [2, 3, 4], "the target's own IDs, after its ID 1");
    assert_eq!(s.id_map(), map_of(&[("1", v1), ("5", v2), ("2", payments)]));
    for subject in ["restored-orders-value", "restored-payments-value"] {
        s.assert_no_own_settings(subject).await;
    }

    // the records carry the target's IDs of the renamed subjects
    let restored = consume_all(&s.restored, 3);
    assert_eq!(
        restored,
        s.expected(&[(1, v1 as u32), (5, v2 as u32), (2, payments as u32)])
    );
    assert_ne!(restored, s.originals());
    verified(&cfg);
}

/// `strategy: overwrite` over a target whose orders-value v1 diverged from
/// the backup's; `global_level` is the target's global compatibility level.
async fn overwrite_a_diverged_subject(global_level: &str) {
    let s = setup().await;
    let (status, body) = s
        .target
        .call(
            Method::PUT,
            "/config",
            Some(json!({ "compatibility": global_level })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let old = s
        .target
        .register("orders-value", json!({"schema": ORDER_DIVERGED}))
        .await;
    assert_eq!(old, 1);
    let cfg = s.config("overwrite.yaml", "      strategy: overwrite\n");

    // the plan shows the replacement: every target version goes, so the
    // subject is deleted (soft, then hard), and the backup's v1 and v2 are
    // registered (plan-format.md, rules 2 and 3)
    let plan_file = s.dir.path().join("overwrite.plan.json");
    let out = kafka_backup(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        plan_file.to_str().unwrap(),
    ]);
    let planned = success(&out);
    eprintln!("{planned}");
    assert!(planned.contains("strategy overwrite"), "{planned}");
    assert!(planned.contains("# orders-value: changed"), "{planned}");
    for how in ["soft", "hard"] {
        assert!(
            planned.contains(&format!(
                "-/+ delete subject orders-value ({how}): all 1 target version(s) go (v1)"
            )),
            "{planned}"
        );
    }
    assert!(
        planned.contains("-/+ register orders-value v1: differs from the target's (id 1)"),
        "{planned}"
    );
    assert!(planned.contains("+ register orders-value v2"), "{planned}");
    assert!(!planned.contains("CONFLICT"), "{planned}");
    let plan = kafka_backup::planfile::read(&std::fs::read(&plan_file).unwrap()).unwrap();
    let deletes: Vec<String> = plan
        .steps
        .iter()
        .filter(|step| step.kind() == kafka_backup::plan::StepKind::DeleteSubject)
        .map(|step| step.request().path)
        .collect();
    assert_eq!(
        deletes,
        [
            "/subjects/orders-value",
            "/subjects/orders-value?permanent=true"
        ]
    );
    assert_eq!(plan.totals.destroy, 1, "{:?}", plan.totals);

    let printed = success(&apply_c(&cfg));
    eprintln!("{printed}");

    // the target's orders-value is the backup's now
    let v1 = s.id_of("orders-value", 1).await;
    let v2 = s.id_of("orders-value", 2).await;
    let payments = s.id_of("payments-value", 1).await;
    assert_eq!(s.found("orders-value", ORDER_V1).await, Some((1, v1)));
    assert_eq!(s.found("orders-value", ORDER_V2).await, Some((2, v2)));
    // the diverged version was deleted soft, then hard: not even
    // `?deleted=true` finds it, only the backup's two versions remain
    assert_eq!(s.found("orders-value", ORDER_DIVERGED).await, None);
    assert_eq!(s.versions("orders-value").await, json!([1, 2]));
    assert_ne!(v1, old, "the restored v1 has an ID of its own");
    assert_eq!(s.id_map(), map_of(&[("1", v1), ("5", v2), ("2", payments)]));
    for subject in ["orders-value", "payments-value"] {
        s.assert_no_own_settings(subject).await;
    }

    let restored = consume_all(&s.restored, 3);
    assert_eq!(
        restored,
        s.expected(&[(1, v1 as u32), (5, v2 as u32), (2, payments as u32)])
    );
    assert_ne!(restored, s.originals());
    verified(&cfg);
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_replaces_a_diverged_version_and_deletes_the_old_one_for_good() {
    // no compatibility check anywhere in the target: the registrations after
    // the subject delete need no temporary level
    overwrite_a_diverged_subject("NONE").await;
}

#[tokio::test(flavor = "multi_thread")]

async fn overwrite_of_a_subject_deleted_as_a_whole_keeps_its_temporary_level() {
    overwrite_a_diverged_subject("BACKWARD").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_leaves_an_existing_subject_and_its_ids_stay_unmapped() {
    let s = setup().await;
    // the target hands out 1 and 2 before the restore: payments-value gets 3
    let legacy = s
        .target
        .register("legacy-value", json!({"schema": LEGACY}))
        .await;
    let diverged = s
        .target
        .register("orders-value", json!({"schema": ORDER_DIVERGED}))
        .await;
    assert_eq!((legacy, diverged), (1, 2));
    let cfg = s.config("skip.yaml", "      strategy: skip\n");

    // default `missing_id_policy: fail`: the registry half runs, the data
    // half stops at the first record framed with orders-value's source IDs
    let out = apply_c(&cfg);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let printed = stdout(&out);
    eprintln!("{printed}");
    assert!(
        printed.contains("# orders-value: skipped (already in target)"),
        "{printed}"
    );
    let err = stderr(&out);
    eprintln!("{err}");
    // every partition's first record carries 1 or 5 (see `record`)
    let named = [(0, 5), (1, 5), (2, 1)].iter().any(|(p, id)| {
        err.contains(&format!(
            "schema ID {id} of the record at {} partition {p} offset 0 is not in the ID map",
            s.topic
        ))
    });
    assert!(named, "{err}");
    assert!(err.contains("missing_id_policy"), "{err}");

    // the registry half: orders-value untouched, payments-value restored
    assert_eq!(s.versions("orders-value").await, json!([1]));
    assert_eq!(s.id_of("orders-value", 1).await, 2);
    assert_eq!(s.found("orders-value", ORDER_DIVERGED).await, Some((1, 2)));
    assert_eq!(s.found("orders-value", ORDER_V1).await, None);
    let payments = s.id_of("payments-value", 1).await;
    assert_eq!(payments, 3);
    assert_eq!(s.id_map(), map_of(&[("2", 3)]));
    for subject in ["orders-value", "payments-value"] {
        s.assert_no_own_settings(subject).await;
    }
    let written: usize = consume_all(&s.restored, 3).values().map(Vec::len).sum();
    assert_eq!(written, 0, "every partition stopped at its first record");

    // passthrough: the rerun writes every record, the unmapped IDs unchanged
    let pass = s.config(
        "pass.yaml",
        "      strategy: skip\n      missing_id_policy: passthrough\n",
    );
    let printed = success(&apply_c(&pass));
    eprintln!("{printed}");
    assert!(printed.contains("30 record(s) written"), "{printed}");
    let restored = consume_all(&s.restored, 3);
    assert_eq!(restored, s.expected(&[(2, 3)]));
    assert_ne!(restored, s.originals());
    assert_eq!(s.versions("orders-value").await, json!([1]));

    // verify names the skipped subject's versions (the target's subject is
    // not the backup's) and the IDs skip left unmapped; the records match
    let out = verify(&pass);
    let table = stdout(&out);
    eprintln!("{table}\n{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{table}");
    for v in [1, 2] {
        assert!(
            table.contains(&format!(
                "`orders-value` v{v}: the target's subject does not hold this version as backed up (`skip` leaves a subject the target has as it is)"
            )),
            "{table}"
        );
    }
    for (id, v) in [(1, 1), (5, 2)] {
        assert!(
            table.contains(&format!(
                "schema ID {id} (`orders-value v{v}`) has no ID in the target: unmapped"
            )),
            "{table}"
        );
    }
    assert!(
        table.contains("3 version(s) checked, 1 same (2 difference(s))"),
        "{table}"
    );
    assert!(
        table.contains("Result: 4 difference(s) between the target and the backup."),
        "{table}"
    );
    assert!(!table.contains("payments-value"), "{table}");
    // the records are what the restore meant to write, IDs 1 and 5 passed through
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| {
            l.trim_start()
                .starts_with(&format!("{} -> {}", s.topic, s.restored))
        })
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows.iter().all(|r| r.contains("  same (")), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preserve_keeps_an_identical_version_under_the_targets_id() {
    let s = setup().await;
    // the target holds orders-value v1 as backed up, under an ID of its own
    s.import("orders-value", ORDER_V1, 40).await;
    let cfg = s.config("preserve.yaml", "      strategy: preserve\n");
    let printed = success(&apply_c(&cfg));
    eprintln!("{printed}");
    assert!(
        printed.contains("= v1: identical in target (id 40)"),
        "{printed}"
    );

    assert_eq!(s.versions("orders-value").await, json!([1, 2]));
    assert_eq!(s.id_of("orders-value", 1).await, 40);
    let v2 = s.id_of("orders-value", 2).await;
    let payments = s.id_of("payments-value", 1).await;
    for id in [v2, payments] {
        assert!(![1, 2, 5, 40].contains(&id), "a new ID: {id}");
    }
    assert_ne!(v2, payments);
    assert_eq!(s.found("orders-value", ORDER_V1).await, Some((1, 40)));
    assert_eq!(s.found("orders-value", ORDER_V2).await, Some((2, v2)));
    assert_eq!(s.id_map(), map_of(&[("1", 40), ("5", v2), ("2", payments)]));
    for subject in ["orders-value", "payments-value"] {
        s.assert_no_own_settings(subject).await;
    }

    let restored = consume_all(&s.restored, 3);
    assert_eq!(
        restored,
        s.expected(&[(1, 40), (5, v2 as u32), (2, payments as u32)])
    );
    verified(&cfg);
}

/// `set_compatibility: FULL`: every restored subject ends with level FULL of
/// its own, whatever the backup's (none) or the target's global level; the
/// registrations themselves pass (orders-value v2 adds a field without a
/// default, which FULL would refuse), and the records carry the target's IDs.
#[tokio::test(flavor = "multi_thread")]
async fn set_compatibility_leaves_every_restored_subject_at_that_level() {
    let s = setup().await;
    let cfg = s.config("full.yaml", "      set_compatibility: FULL\n");
    let planned = success(&kafka_backup(&["plan", "-c", cfg.to_str().unwrap()]));
    eprintln!("{planned}");
    assert!(!planned.contains("CONFLICT"), "{planned}");
    let printed = success(&apply_c(&cfg));
    eprintln!("{printed}");

    assert_eq!(
        s.subjects().await,
        json!(["orders-value", "payments-value"])
    );
    for subject in ["orders-value", "payments-value"] {
        let (status, body) = s.get(&format!("/config/{subject}")).await;
        assert_eq!(status, 200, "{subject}: {body}");
        assert_eq!(
            body["compatibilityLevel"],
            json!("FULL"),
            "{subject}: {body}"
        );
        // no temporary mode left behind
        let (status, body) = s.get(&format!("/mode/{subject}")).await;
        assert_eq!(status, 404, "{subject} keeps a mode of its own: {body}");
    }
    // the target's global level is its own still
    let (status, body) = s.get("/config").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["compatibilityLevel"], json!("BACKWARD"), "{body}");

    // an empty target hands out 1, 2, 3 in registration order
    assert_eq!(s.found("orders-value", ORDER_V1).await, Some((1, 1)));
    assert_eq!(s.found("orders-value", ORDER_V2).await, Some((2, 2)));
    assert_eq!(s.found("payments-value", PAYMENT_V1).await, Some((1, 3)));
    assert_eq!(s.id_map(), map_of(&[("1", 1), ("5", 2), ("2", 3)]));
    let restored = consume_all(&s.restored, 3);
    assert_eq!(restored, s.expected(&[(1, 1), (5, 2), (2, 3)]));
    verified(&cfg);
}

/// `id_mapping_file` (the reference page's example: 1 -> 100, 5 -> 101,
/// 2 -> 102): the target serves the pinned IDs (registered in IMPORT mode,
/// the mode put back afterwards), the ID map is the file's, and the records
/// carry the pinned IDs.
#[tokio::test(flavor = "multi_thread")]
async fn id_mapping_file_pins_the_target_ids_and_the_records_carry_them() {
    let s = setup().await;
    let pins = write(
        s.dir.path(),
        "id-mapping.json",
        r#"{"1": 100, "5": 101, "2": 102}"#,
    );
    let cfg = s.config(
        "pinned.yaml",
        &format!("      id_mapping_file: {}\n", pins.display()),
    );
    let planned = success(&kafka_backup(&["plan", "-c", cfg.to_str().unwrap()]));
    eprintln!("{planned}");
    assert!(planned.contains("id 1 -> 100 pinned (IMPORT)"), "{planned}");
    let printed = success(&apply_c(&cfg));
    eprintln!("{printed}");

    assert_eq!(s.found("orders-value", ORDER_V1).await, Some((1, 100)));
    assert_eq!(s.found("orders-value", ORDER_V2).await, Some((2, 101)));
    assert_eq!(s.found("payments-value", PAYMENT_V1).await, Some((1, 102)));
    assert_eq!(s.id_of("orders-value", 2).await, 101);
    assert_eq!(s.id_map(), map_of(&[("1", 100), ("5", 101), ("2", 102)]));
    for subject in ["orders-value", "payments-value"] {
        s.assert_no_own_settings(subject).await;
    }
    let restored = consume_all(&s.restored, 3);
    assert_eq!(restored, s.expected(&[(1, 100), (5, 101), (2, 102)]));
    assert_ne!(restored, s.originals());
    verified(&cfg);
}

/// `context_mapping: {".prod": ".dr"}` over the `contexts` fixture (context
/// `.prod` holds orders-value id 1 and payments-value id 2, which references
/// the context's own orders-value; the default context an orders-value id 1):
/// the target holds `.prod`'s subjects under `.dr` and nothing under `.prod`,
/// the reference resolves inside `.dr`, and the ID map is keyed by the
/// source context.
#[tokio::test(flavor = "multi_thread")]
async fn context_mapping_restores_a_context_under_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: kafka_backup::model::RegistrySnapshot = serde_json::from_slice(
        &std::fs::read(root.join("fixtures/plan/contexts/backup.json")).unwrap(),
    )
    .unwrap();
    let source = Registry::start();
    seed_from_fixture(&source, &fixture).await;
    let store = dir.path().join("store");
    let backup_cfg = write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: ctx\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            store.display(),
            source.url
        ),
    );
    success(&kafka_backup(&[
        "backup",
        "-c",
        backup_cfg.to_str().unwrap(),
    ]));

    let target = Registry::start();
    let cfg = write(
        dir.path(),
        "restore.yaml",
        &format!(
            "mode: restore\nbackup_id: ctx\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    restore:\n      context_mapping:\n        \".prod\": \".dr\"\n",
            store.display(),
            target.url
        ),
    );
    let planned = success(&kafka_backup(&["plan", "-c", cfg.to_str().unwrap()]));
    eprintln!("{planned}");
    assert!(
        planned
            .contains("register :.dr:payments-value v1: new subject; from `:.prod:payments-value`"),
        "{planned}"
    );
    let printed = success(&kafka_backup(&[
        "apply",
        "-c",
        cfg.to_str().unwrap(),
        "--auto-approve",
        "--registry-only",
    ]));
    eprintln!("{printed}");

    let (status, subjects) = target
        .call(Method::GET, "/subjects?subjectPrefix=:*:", None)
        .await;
    assert_eq!(status, 200, "{subjects}");
    assert_eq!(
        subjects,
        // the registry lists the default context first
        json!(["orders-value", ":.dr:orders-value", ":.dr:payments-value"])
    );
    let version = |subject: &'static str| {
        let target = &target;
        async move {
            let (status, body) = target
                .call(
                    Method::GET,
                    &format!("/subjects/{}/versions/1", encode(subject)),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{subject}: {body}");
            body
        }
    };
    let orders = version(":.dr:orders-value").await;
    let payments = version(":.dr:payments-value").await;
    let default_orders = version("orders-value").await;
    assert_eq!(
        payments["references"],
        json!([{"name": "com.acme.Order", "subject": "orders-value", "version": 1}]),
        "{payments}"
    );
    // IDs are counted per context: `.dr` starts at 1 like the default one
    let ids = (
        orders["id"].as_u64().unwrap(),
        payments["id"].as_u64().unwrap(),
        default_orders["id"].as_u64().unwrap(),
    );
    assert_eq!(ids, (1, 2, 1));

    // the map beside the journal: keyed by the source context, as the seed's
    // format writes other contexts (`":.ctx:5"`)
    let apply = store
        .join("ctx/apply")
        .join(kafka_backup::apply::journal::target_key(&target.url));
    let maps: Vec<BTreeMap<String, u64>> = std::fs::read_dir(&apply)
        .unwrap()
        .map(|d| d.unwrap().path().join("id-map.json"))
        .filter(|p| p.exists())
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(
        maps,
        [map_of(&[("1", 1), (":.prod:1", 1), (":.prod:2", 2)])]
    );
    verified(&cfg);
}
