//! End to end: consumer group offsets (issue 13). A group of the real Python
//! `confluent-kafka` client (`tests/clients/consumer_group.py`) reads part of
//! a topic and commits; the topic and the group's committed offsets are
//! backed up and restored under another topic name; the same client then
//! reads on as that group from the restored topic. It must get exactly the
//! records it had not read on the source, each once: none lost, none read
//! twice, even when the restored offsets differ from the source's (records
//! deleted before the backup, records already in the target and `--append`,
//! a `--to-timestamp` cut, an apply killed before it committed the offsets).
//! A group with live members in the target is refused when planning.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Partitions of every test topic: record `i` goes to partition `i % 2`.
const PARTITIONS: i32 = 2;

/// Old timestamps for the `--to-timestamp` test (`produce` creates its topics
/// with `retention.ms=-1`, which the restore copies).
const BASE_TS: i64 = 1_700_000_000_000;

/// Runs the client; gives its JSON output.
fn client(args: &[&str]) -> Value {
    python_json("consumer_group.py", args)
}

/// One record as `produce` reported its delivery.
#[derive(Debug, Clone)]
struct Produced {
    value: String,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

/// Produces records `start..start + count` (value `r-i`, partition `i % 2`,
/// timestamp `BASE_TS + i` with `timestamps`), creating the topic when missing.
fn produce(topic: &str, start: usize, count: usize, timestamps: bool) -> Vec<Produced> {
    let (servers, parts, start, count) = (
        bootstrap(),
        PARTITIONS.to_string(),
        start.to_string(),
        count.to_string(),
    );
    let base = BASE_TS.to_string();
    let mut args = vec![
        "produce",
        "--bootstrap",
        &servers,
        "--topic",
        topic,
        "--partitions",
        &parts,
        "--count",
        &count,
        "--start",
        &start,
    ];
    if timestamps {
        args.extend(["--timestamp-ms", &base]);
    }
    let out = client(&args);
    out["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Produced {
            value: r["value"].as_str().unwrap().to_owned(),
            partition: r["partition"].as_i64().unwrap() as i32,
            offset: r["offset"].as_i64().unwrap(),
            timestamp: r["timestamp"].as_i64().unwrap(),
        })
        .collect()
}

/// What the group read on the source and committed.
#[derive(Debug, Clone)]
struct Consumed {
    values: Vec<String>,
    committed: BTreeMap<i32, i64>,
}

/// `topic` read as `group` from the start: `count` records, at most
/// `max_per_partition` (`M` or `P=M,P=M`) of each partition, then committed.
fn consume(topic: &str, group: &str, count: usize, max_per_partition: &str) -> Consumed {
    let (servers, n) = (bootstrap(), count.to_string());
    let out = client(&[
        "consume",
        "--bootstrap",
        &servers,
        "--topic",
        topic,
        "--group",
        group,
        "--count",
        &n,
        "--max-per-partition",
        max_per_partition,
    ]);
    Consumed {
        values: strings(&out["values"]),
        committed: out["committed"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
            .collect(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// `topic` read on as `group` (`auto.offset.reset=latest`: a partition where
/// the group has no usable committed offset gives nothing), to the end;
/// gives the values read per partition, in offset order.
fn drain(topic: &str, group: &str) -> BTreeMap<i32, Vec<String>> {
    let servers = bootstrap();
    let out = client(&[
        "drain",
        "--bootstrap",
        &servers,
        "--topic",
        topic,
        "--group",
        group,
        "--reset",
        "latest",
    ]);
    eprintln!(
        "drain {topic} as {group}: started at {}, high watermarks {}",
        out["started_at"], out["high_watermarks"]
    );
    let by_partition: BTreeMap<i32, Vec<String>> = out["by_partition"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, values)| (p.parse().unwrap(), strings(values)))
        .collect();
    let count: usize = by_partition.values().map(Vec::len).sum();
    assert_eq!(count, out["values"].as_array().unwrap().len());
    by_partition
}

/// Deletes the records of `topic` partition `partition` before `before`;
/// gives the new low watermark.
fn delete_records(topic: &str, partition: i32, before: i64) -> i64 {
    let (servers, p, o) = (bootstrap(), partition.to_string(), before.to_string());
    let out = client(&[
        "delete-records",
        "--bootstrap",
        &servers,
        "--topic",
        topic,
        "--partition",
        &p,
        "--before",
        &o,
    ]);
    out["low"].as_i64().unwrap()
}

/// The committed offsets of `group` on `topic`'s partitions (None: none).
fn committed(topic: &str, group: &str) -> BTreeMap<i32, Option<i64>> {
    let (servers, parts) = (bootstrap(), PARTITIONS.to_string());
    let out = client(&[
        "committed",
        "--bootstrap",
        &servers,
        "--topic",
        topic,
        "--group",
        group,
        "--partitions",
        &parts,
    ]);
    out["committed"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, o)| (p.parse().unwrap(), o.as_i64()))
        .collect()
}

/// A live member of `group` on `topic` (`consumer_group.py hold`), left
/// (SIGTERM, then the client leaves the group) when dropped.
struct Member {
    child: Child,
}

impl Member {
    fn join(topic: &str, group: &str) -> Self {
        use std::io::BufRead as _;
        let mut child = python_client("consumer_group.py")
            .args([
                "hold",
                "--bootstrap",
                &bootstrap(),
                "--topic",
                topic,
                "--group",
                group,
                "--seconds",
                "120",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let joined: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("`hold` printed {line:?} ({e}) instead of joining {group}")
        });
        assert_eq!(joined["joined"], true, "{joined}");
        Self { child }
    }

    /// Leaves the group; true when the client ended cleanly.
    fn leave(mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let ok = self.child.wait().unwrap().success();
        std::mem::forget(self);
        ok
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A source topic, the group that read part of it, and what the test did to
/// it before the backup.
struct Case {
    dir: tempfile::TempDir,
    topic: String,
    restored: String,
    group: String,
    /// Every record produced to `topic`.
    produced: Vec<Produced>,
    consumed: Consumed,
    /// Low watermarks after `delete-records` (partitions not named: 0).
    low: BTreeMap<i32, i64>,
    /// A registry of this test's own: backed up (empty) and restored into,
    /// so that no other test's subjects move the plan's target under it.
    registry: Registry,
}

/// 100 records over 2 partitions; the group reads `max_per_partition` of
/// them (`M` or `P=M,...`, `read` in all) and commits; 30 more records; then
/// the records of partition 0 before `delete_before` are deleted.
fn source(
    name: &str,
    read: usize,
    max_per_partition: &str,
    timestamps: bool,
    delete_before: Option<i64>,
) -> Case {
    let topic = unique(name);
    let group = unique(&format!("{name}-group"));
    let mut produced = produce(&topic, 0, 100, timestamps);
    let consumed = consume(&topic, &group, read, max_per_partition);
    assert_eq!(consumed.values.len(), read);
    produced.extend(produce(&topic, 100, 30, timestamps));
    let mut low = BTreeMap::new();
    if let Some(before) = delete_before {
        assert_eq!(delete_records(&topic, 0, before), before);
        low.insert(0, before);
    }
    eprintln!(
        "{topic}: group {group} committed {:?}, low watermarks {low:?}",
        consumed.committed
    );
    Case {
        dir: tempfile::tempdir().unwrap(),
        restored: format!("{topic}-restored"),
        topic,
        group,
        produced,
        consumed,
        low,
        registry: Registry::start(),
    }
}

impl Case {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Backs up the topic and its groups as `g1`; gives the manifest.
    fn backup(&self) -> Value {
        let cfg = write(
            self.dir.path(),
            "backup.yaml",
            &format!(
                "backup_id: g1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{}\"]\n  consumer_groups:\n    enabled: true\n    include: [\"*\"]\n    exclude: []\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
                bootstrap(),
                self.topic,
                self.store().display(),
                self.registry.url
            ),
        );
        success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
        serde_json::from_slice(&std::fs::read(self.store().join("g1/manifest.json")).unwrap())
            .unwrap()
    }

    /// The group's offsets as the manifest must hold them: every group with
    /// committed offsets on the backed-up topic (this test's group alone),
    /// with what it committed.
    fn check_manifest(&self, manifest: &Value) {
        let groups = manifest["consumer_groups"]
            .as_object()
            .unwrap_or_else(|| panic!("no `consumer_groups` in the manifest: {manifest}"));
        assert_eq!(
            groups.keys().collect::<Vec<_>>(),
            vec![&self.group],
            "{manifest}"
        );
        let offsets = &groups[&self.group]["offsets"];
        assert_eq!(
            offsets.as_object().unwrap().keys().collect::<Vec<_>>(),
            vec![&self.topic],
            "{offsets}"
        );
        for (p, o) in &self.consumed.committed {
            assert_eq!(
                offsets[&self.topic][p.to_string()]["offset"].as_i64(),
                Some(*o),
                "partition {p}: {offsets}"
            );
        }
    }

    /// A restore of `g1` into the same broker, the topic renamed, groups on.
    fn restore_config(&self) -> PathBuf {
        write(
            self.dir.path(),
            "restore.yaml",
            &format!(
                "mode: restore\nbackup_id: g1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {}: {}\n  consumer_groups:\n    enabled: true\n    include: [\"*\"]\n    exclude: []\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
                bootstrap(),
                self.topic,
                self.restored,
                self.store().display(),
                self.registry.url
            ),
        )
    }

    /// What the target must hold after the restore, and where the group
    /// must resume: `existing` records per partition were in the target
    /// topic before (`--append`), `cut` is the `--to-timestamp`.
    fn expect(&self, existing: &BTreeMap<i32, i64>, cut: Option<i64>) -> Expected {
        let consumed: BTreeSet<&str> = self.consumed.values.iter().map(String::as_str).collect();
        let mut unread: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        let mut target_offsets = BTreeMap::new();
        for p in 0..PARTITIONS {
            let low = self.low.get(&p).copied().unwrap_or(0);
            let mut restored: Vec<&Produced> = self
                .produced
                .iter()
                .filter(|r| r.partition == p && r.offset >= low)
                .filter(|r| cut.is_none_or(|cut| r.timestamp <= cut))
                .collect();
            restored.sort_by_key(|r| r.offset);
            // the group's committed offset on the source is the first record
            // it has not read: it resumes at the first restored record at or
            // after it, past the records the target held before
            let committed = self.consumed.committed[&p];
            let before = restored.iter().filter(|r| r.offset < committed).count() as i64;
            target_offsets.insert(p, existing.get(&p).copied().unwrap_or(0) + before);
            let values: Vec<String> = restored
                .iter()
                .filter(|r| !consumed.contains(r.value.as_str()))
                .map(|r| r.value.clone())
                .collect();
            if !values.is_empty() {
                unread.insert(p, values);
            }
        }
        Expected {
            unread,
            target_offsets,
        }
    }

    /// Checks the plan's `groups` entries of this test's group.
    fn check_plan(&self, plan: &Value, expected: &Expected, how: &[(i32, &str)]) {
        let groups = plan["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("no `groups` list in the JSON plan: {plan:#}"));
        let mine: BTreeMap<i64, &Value> = groups
            .iter()
            .filter(|g| g["group"] == self.group.as_str())
            .flat_map(|g| g["partitions"].as_array().into_iter().flatten())
            .map(|p| (p["partition"].as_i64().unwrap(), p))
            .collect();
        assert_eq!(
            mine.len(),
            PARTITIONS as usize,
            "one entry per partition for {}: {groups:#?}",
            self.group
        );
        for (p, entry) in &mine {
            let p = *p as i32;
            let said = format!("partition {p}: {entry}");
            assert_eq!(entry["topic"], self.topic.as_str(), "{said}");
            assert_eq!(entry["target_topic"], self.restored.as_str(), "{said}");
            assert_eq!(
                entry["committed"].as_i64(),
                Some(self.consumed.committed[&p]),
                "{said}"
            );
            assert_eq!(
                entry["target_offset"].as_i64(),
                Some(expected.target_offsets[&p]),
                "{said}"
            );
            assert_eq!(entry["change"], true, "{said}");
        }
        for (p, how) in how {
            assert_eq!(mine[&i64::from(*p)]["how"], *how, "partition {p}");
        }
    }

    /// Reads on as the group from the restored topic: exactly the records it
    /// had not read on the source, each once.
    fn check_resumes(&self, expected: &Expected) {
        let got = drain(&self.restored, &self.group);
        if got != expected.unread {
            let want: BTreeSet<&String> = expected.unread.values().flatten().collect();
            let all: Vec<&String> = got.values().flatten().collect();
            let seen: BTreeSet<&String> = all.iter().copied().collect();
            let lost: Vec<_> = want.difference(&seen).collect();
            let extra: Vec<_> = seen.difference(&want).collect();
            let consumed: BTreeSet<&String> = self.consumed.values.iter().collect();
            let again: Vec<_> = extra.iter().filter(|v| consumed.contains(**v)).collect();
            panic!(
                "the group did not resume where it stopped: {} read, {} expected; lost {lost:?}; not expected {extra:?} (read on the source already: {again:?}); read {} record(s) for {} distinct values\nread: {got:?}\nexpected: {:?}",
                all.len(),
                want.len(),
                all.len(),
                seen.len(),
                expected.unread
            );
        }
    }
}

struct Expected {
    /// Values the group must read on the target, per partition, in order.
    unread: BTreeMap<i32, Vec<String>>,
    /// Where the group's committed offset must be on the restored topic.
    target_offsets: BTreeMap<i32, i64>,
}

impl Expected {
    /// `target_offsets` as [`committed`] reads them back.
    fn committed(&self) -> BTreeMap<i32, Option<i64>> {
        self.target_offsets
            .iter()
            .map(|(p, o)| (*p, Some(*o)))
            .collect()
    }
}

/// `plan -c CFG -o FILE --format json`: the plan printed as JSON, and its file.
fn plan(case: &Case, cfg: &Path, extra: &[&str]) -> (Value, PathBuf) {
    let file = case.dir.path().join("plan.json");
    let mut args = vec![
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let printed = success(&kafka_backup(&args));
    let plan: Value = serde_json::from_str(&printed)
        .unwrap_or_else(|e| panic!("`plan --format json` printed no JSON ({e}):\n{printed}"));
    (plan, file)
}

fn apply_args<'a>(file: &'a Path, cfg: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "apply",
        file.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
        "--auto-approve",
    ];
    args.extend_from_slice(extra);
    args
}

fn verified(cfg: &Path) {
    let out = success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));
    eprintln!("{out}");
}

#[test]
fn a_group_resumes_on_the_target_where_it_stopped_on_the_source() {
    // the group reads 20 of each partition's first 50 and commits 20, 20;
    // partition 0 then loses its first 10 (read already): its restored
    // offsets are the source's minus 10
    let case = source("groups-a", 40, "20", false, Some(10));
    assert_eq!(case.consumed.committed, BTreeMap::from([(0, 20), (1, 20)]));
    let manifest = case.backup();
    case.check_manifest(&manifest);

    let cfg = case.restore_config();
    let expected = case.expect(&BTreeMap::new(), None);
    assert_eq!(expected.target_offsets, BTreeMap::from([(0, 10), (1, 20)]));
    let (planned, file) = plan(&case, &cfg, &[]);
    case.check_plan(&planned, &expected, &[(0, "mapped"), (1, "mapped")]);
    // planning changes nothing
    assert_eq!(
        committed(&case.restored, &case.group),
        BTreeMap::from([(0, None), (1, None)])
    );

    let printed = success(&kafka_backup(&apply_args(&file, &cfg, &[])));
    eprintln!("{printed}");
    assert_eq!(committed(&case.restored, &case.group), expected.committed());
    // the group's offsets on the source topic are left as they were
    assert_eq!(
        committed(&case.topic, &case.group),
        case.consumed
            .committed
            .iter()
            .map(|(p, o)| (*p, Some(*o)))
            .collect()
    );
    verified(&cfg);
    // planned again: every offset is there already, read from the offset map
    let (again, _) = plan(&case, &cfg, &[]);
    let entries: Vec<&Value> = again["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["partitions"].as_array().unwrap())
        .collect();
    assert_eq!(entries.len(), PARTITIONS as usize, "{again:#}");
    for e in entries {
        assert_eq!(e["change"], false, "{e}");
        assert_eq!(e["basis"], "restored", "{e}");
        assert_eq!(e["current"], e["target_offset"], "{e}");
    }
    let offsets = success(&kafka_backup(&[
        "offsets",
        "-c",
        cfg.to_str().unwrap(),
        "--format",
        "json",
    ]));
    let map: Value = serde_json::from_str(&offsets)
        .unwrap_or_else(|e| panic!("`offsets --format json` printed no JSON ({e}):\n{offsets}"));
    assert!(map.to_string().contains(&case.restored), "{map:#}");

    case.check_resumes(&expected);
    // the group has read on from where the apply put it: the restore is
    // still right, and `verify` says why the offsets are ahead
    let out = success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));
    assert!(out.contains("(consumed since)"), "{out}");
    // moved back behind the restored offset, it no longer matches
    rewind(&case.restored, &case.group, 0);
    let out = kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]);
    assert!(
        !out.status.success() && stdout(&out).contains("differs"),
        "verify accepts group offsets the restore did not set:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Commits `partition`'s offset 0 for `group` on `topic`, as a consumer
/// that joins nothing.
fn rewind(topic: &str, group: &str, partition: i32) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(0))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

#[test]
fn a_group_resumes_after_the_records_the_target_held_before_an_append() {
    let case = source("groups-b", 40, "20", false, Some(10));
    case.check_manifest(&case.backup());
    // 7 records in the target topic before the restore: 4 in partition 0, 3 in 1
    let before = produce(&case.restored, 1000, 7, false);
    let mut existing = BTreeMap::new();
    for r in &before {
        *existing.entry(r.partition).or_insert(0) += 1;
    }
    assert_eq!(existing, BTreeMap::from([(0, 4), (1, 3)]));

    let cfg = case.restore_config();
    let expected = case.expect(&existing, None);
    assert_eq!(expected.target_offsets, BTreeMap::from([(0, 14), (1, 23)]));
    let (planned, file) = plan(&case, &cfg, &[]);
    case.check_plan(&planned, &expected, &[(0, "mapped"), (1, "mapped")]);
    success(&kafka_backup(&apply_args(&file, &cfg, &["--append"])));
    verified(&cfg);
    // none of the 7 records that were there before: the group never read them
    case.check_resumes(&expected);
}

#[test]
fn a_group_resumes_at_the_cut_of_a_point_in_time_restore() {
    // record i has the timestamp BASE_TS + i; the group reads 25 of
    // partition 0 (even i up to 48) and 15 of partition 1 (odd i up to 29)
    let case = source("groups-c", 40, "0=25,1=15", true, None);
    assert_eq!(case.consumed.committed, BTreeMap::from([(0, 25), (1, 15)]));
    case.check_manifest(&case.backup());
    // cut after record 39: partition 0 keeps 20 records, all read (the group
    // had read past the cut); partition 1 keeps 20, of which 15 were read
    let cut = BASE_TS + 39;
    let to = cut.to_string();
    let cfg = case.restore_config();
    let expected = case.expect(&BTreeMap::new(), Some(cut));
    assert_eq!(expected.target_offsets, BTreeMap::from([(0, 20), (1, 15)]));
    assert_eq!(
        expected.unread,
        BTreeMap::from([(
            1,
            ["r-31", "r-33", "r-35", "r-37", "r-39"]
                .map(String::from)
                .to_vec()
        )])
    );
    let (planned, file) = plan(&case, &cfg, &["--to-timestamp", &to]);
    case.check_plan(&planned, &expected, &[(0, "cut"), (1, "mapped")]);
    success(&kafka_backup(&apply_args(
        &file,
        &cfg,
        &["--to-timestamp", &to],
    )));
    verified(&cfg);
    case.check_resumes(&expected);
}

#[test]
fn a_commit_on_deleted_records_resumes_at_the_first_record_kept() {
    // the group committed 20 on partition 0; records 0..25 of it are deleted,
    // 20..25 unread: they are gone, and the group resumes at the first kept
    let case = source("groups-f", 40, "20", false, Some(25));
    case.check_manifest(&case.backup());
    let cfg = case.restore_config();
    let expected = case.expect(&BTreeMap::new(), None);
    assert_eq!(expected.target_offsets, BTreeMap::from([(0, 0), (1, 20)]));
    let (planned, file) = plan(&case, &cfg, &[]);
    case.check_plan(&planned, &expected, &[(1, "mapped")]);
    success(&kafka_backup(&apply_args(&file, &cfg, &[])));
    verified(&cfg);
    case.check_resumes(&expected);
}

#[test]
fn a_live_group_in_the_target_is_refused_at_plan_time() {
    let case = source("groups-d", 40, "20", false, None);
    case.check_manifest(&case.backup());
    // the target topic exists, empty, and the group has a live member on it
    produce(&case.restored, 0, 0, false);
    let cfg = case.restore_config();
    let member = Member::join(&case.restored, &case.group);
    let out = kafka_backup(&["plan", "-c", cfg.to_str().unwrap()]);
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "consumer group `{}` is live in the target",
            case.group
        )) && said.contains("conflict"),
        "{said}"
    );
    assert_eq!(
        committed(&case.restored, &case.group),
        BTreeMap::from([(0, None), (1, None)])
    );
    // once the member left, the same plan is made
    assert!(member.leave(), "`hold` did not end cleanly");
    let (_, file) = plan(&case, &cfg, &[]);

    // a member that joins between plan and apply: the data is restored, the
    // group's offsets are not moved under it, and the apply fails saying so
    let member = Member::join(&case.restored, &case.group);
    let out = kafka_backup(&apply_args(&file, &cfg, &["--append"]));
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "consumer group `{}` is live in the target (Stable; 1 member(s) listed)",
            case.group
        )),
        "{said}"
    );
    assert!(said.contains("Topics restored"), "{said}");
    assert_eq!(
        committed(&case.restored, &case.group),
        BTreeMap::from([(0, None), (1, None)])
    );
    assert!(member.leave(), "`hold` did not end cleanly");
    // the rerun sets them
    success(&kafka_backup(&apply_args(&file, &cfg, &["--append"])));
    let expected = case.expect(&BTreeMap::new(), None);
    assert_eq!(committed(&case.restored, &case.group), expected.committed());
    verified(&cfg);
}

#[test]
fn fault_apply_killed_before_the_group_commit_and_rerun_resumes_the_group_exactly() {
    let case = source("groups-e", 40, "20", false, Some(10));
    case.check_manifest(&case.backup());
    let cfg = case.restore_config();
    let expected = case.expect(&BTreeMap::new(), None);
    let (planned, file) = plan(&case, &cfg, &[]);
    case.check_plan(&planned, &expected, &[(0, "mapped"), (1, "mapped")]);

    // the binary creates this file and sleeps right before it commits the
    // first group's offsets (debug builds, for tests only)
    let paused = case.dir.path().join("paused-before-group-commit");
    let child = paused_apply(
        &apply_args(&file, &cfg, &[]),
        "KB_TEST_PAUSE_BEFORE_GROUP_COMMIT",
        &paused,
    );
    // paused before the commit: nothing of the group is set yet
    assert_eq!(
        committed(&case.restored, &case.group),
        BTreeMap::from([(0, None), (1, None)])
    );
    kill(child);
    assert_eq!(
        committed(&case.restored, &case.group),
        BTreeMap::from([(0, None), (1, None)]),
        "the killed apply committed offsets"
    );

    // the same apply again (the killed run's lease is taken over: its process is gone)
    let printed = success(&kafka_backup(&apply_args(&file, &cfg, &[])));
    eprintln!("{printed}");
    assert_eq!(committed(&case.restored, &case.group), expected.committed());
    verified(&cfg);
    case.check_resumes(&expected);
}

#[test]
fn a_backup_without_the_registry_restores_the_groups_too_and_the_switch_turns_them_off() {
    // Kafka alone: no plan file, `apply -c` works the offsets out after the data
    let case = source("groups-g", 40, "20", false, Some(10));
    let backup = |id: &str, enabled: bool| {
        let cfg = write(
            case.dir.path(),
            &format!("{id}.yaml"),
            &format!(
                "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{}\"]\n  consumer_groups:\n    enabled: {enabled}\nstorage:\n  path: {}\n",
                bootstrap(),
                case.topic,
                case.store().display()
            ),
        );
        success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(case.store().join(format!("{id}/manifest.json"))).unwrap(),
        )
        .unwrap();
        manifest
    };
    // switched off: the manifest holds no group
    let off = backup("g0", false);
    assert!(off.get("consumer_groups").is_none(), "{off}");
    case.check_manifest(&backup("g1", true));

    let cfg = write(
        case.dir.path(),
        "restore-kafka.yaml",
        &format!(
            "mode: restore\nbackup_id: g1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {}: {}\nstorage:\n  path: {}\n",
            bootstrap(),
            case.topic,
            case.restored,
            case.store().display()
        ),
    );
    let out = success(&kafka_backup(&[
        "apply",
        "-c",
        cfg.to_str().unwrap(),
        "--auto-approve",
    ]));
    assert!(
        out.contains("Consumer groups: 1 set now, 0 with nothing to commit"),
        "{out}"
    );
    let expected = case.expect(&BTreeMap::new(), None);
    assert_eq!(committed(&case.restored, &case.group), expected.committed());
    verified(&cfg);
    case.check_resumes(&expected);
}

#[test]
fn a_group_that_read_on_after_a_lost_journal_entry_is_not_moved_back() {
    // the window between a group's commit and its journal entry: the apply
    // set the offsets, died before journalling them, and the group's
    // consumers read on. A rerun must not move the group back to the
    // restored offsets (its consumers would read those records twice).
    let case = source("groups-h", 40, "20", false, Some(10));
    case.check_manifest(&case.backup());
    let cfg = case.restore_config();
    let (_, file) = plan(&case, &cfg, &[]);
    success(&kafka_backup(&apply_args(&file, &cfg, &[])));
    let expected = case.expect(&BTreeMap::new(), None);
    case.check_resumes(&expected);
    let read_on = committed(&case.restored, &case.group);
    assert_ne!(read_on, expected.committed(), "the group read on");
    // the journal entry of the group is lost
    let journals: Vec<PathBuf> = std::fs::read_dir(case.store().join("g1/restore"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".json") && !name.ends_with(".offsets.json")
        })
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    let mut journal: Value = serde_json::from_slice(&std::fs::read(&journals[0]).unwrap()).unwrap();
    assert!(journal["groups"][&case.group].is_object(), "{journal:#}");
    journal.as_object_mut().unwrap().remove("groups");
    std::fs::write(&journals[0], serde_json::to_vec_pretty(&journal).unwrap()).unwrap();

    let out = kafka_backup(&apply_args(&file, &cfg, &[]));
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "consumer group `{}` committed other offsets in the target since the plan was made",
            case.group
        )),
        "{said}"
    );
    assert_eq!(
        committed(&case.restored, &case.group),
        read_on,
        "not moved back"
    );
    // planned again, the plan shows where the group stands and what it would do
    let (again, _) = plan(&case, &cfg, &[]);
    let currents: Vec<i64> = again["groups"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["current"].as_i64().unwrap())
        .collect();
    assert_eq!(
        currents,
        read_on.values().map(|o| o.unwrap()).collect::<Vec<_>>()
    );
}

/// Starts `kafka-backup ARGS` with `hook` set to `file`, and waits until the
/// binary created the file (it then sleeps 30 s there).
fn paused_apply(args: &[&str], hook: &str, file: &Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(args)
        .env("KAFKA_BACKUP_LOG", "warn")
        .env(hook, file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !file.exists() {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "apply ended ({}) without pausing at {hook}:\n{}\n{}",
                out.status,
                stdout(&out),
                stderr(&out)
            );
        }
        assert!(Instant::now() < deadline, "apply did not pause in 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// SIGKILL, and the process is gone.
fn kill(mut child: std::process::Child) {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "apply ended on its own: {status}");
}

#[test]
fn fault_apply_killed_after_the_group_commit_does_not_move_a_group_that_read_on() {
    // killed after the commit, before its journal entry; the group's
    // consumers read on; then the apply is run again the way an operator
    // would, without a plan file (planned again, so the plan sees the group
    // where its consumers left it): the journalled intent tells the rerun
    // that its own commit landed and the group moved on from it
    let case = source("groups-i", 40, "20", false, Some(10));
    case.check_manifest(&case.backup());
    let cfg = case.restore_config();
    let expected = case.expect(&BTreeMap::new(), None);
    let args = ["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"];
    let paused = case.dir.path().join("paused-after-group-commit");
    let child = paused_apply(&args, "KB_TEST_PAUSE_AFTER_GROUP_COMMIT", &paused);
    let set: BTreeMap<i32, Option<i64>> = expected.committed();
    assert_eq!(
        committed(&case.restored, &case.group),
        set,
        "committed before the pause"
    );
    kill(child);
    case.check_resumes(&expected);
    let read_on = committed(&case.restored, &case.group);
    assert_ne!(read_on, set, "the group read on");

    let out = success(&kafka_backup(&args));
    assert!(out.contains("read on from"), "{out}");
    assert!(
        out.contains("Consumer groups: 0 set now, 1 with nothing to commit"),
        "{out}"
    );
    assert_eq!(
        committed(&case.restored, &case.group),
        read_on,
        "not moved back"
    );
    // and the restore checks out, the group counted as having consumed since
    let out = success(&kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]));
    assert!(out.contains("(consumed since)"), "{out}");
}
