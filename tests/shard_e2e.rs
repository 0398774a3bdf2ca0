//! End to end: `apply --shard i/N` (issue 14). Three `apply` processes
//! restore one backup of a 6-partition topic of framed records at once:
//! shard 0 applies the plan's registry steps while shards 1 and 2, started
//! before it, wait for its journal; each restores only its own partitions,
//! and the one that finds every partition done sets the consumer group.
//! Every record must be in the target exactly once (`verify` exits 0), also
//! after a shard is killed with SIGKILL mid-run and rerun. `--shard N` takes
//! the index from `JOB_COMPLETION_INDEX`, as a Kubernetes Indexed Job sets it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::records::*;
use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;

struct Setup {
    b: SeededBackup,
    target: Registry,
    restored: String,
    group: String,
    /// What the group committed on the source, per partition.
    committed: BTreeMap<i32, i64>,
}

/// A source registry with the seed example (IDs 1, 5, 2), a topic of `n`
/// records over 6 partitions (`pad` more bytes in framed values) with a
/// consumer group's offsets on every partition, all backed up as `b1`; a
/// fresh target registry.
async fn setup(n: u32, pad: usize) -> Setup {
    let records: Vec<Rec> = (0..n)
        .map(|i| record_padded(i, PARTITIONS, None, pad))
        .collect();
    let b = seeded_source(unique("orders"), PARTITIONS, records).await;
    let group = unique("billing");
    let committed: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 1 + i64::from(p))).collect();
    commit(&group, &b.topic, &committed);
    back_up_b1(&b);
    Setup {
        restored: format!("{}-restored", b.topic),
        b,
        target: Registry::start(),
        group,
        committed,
    }
}

/// Commits `offsets` for `group` on `topic`, as a client that joins nothing.
fn commit(group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for (&p, &o) in offsets {
        list.add_partition_offset(topic, p, Offset::Offset(o))
            .unwrap();
    }
    consumer.commit(&list, CommitMode::Sync).unwrap();
}

/// What `group` has committed on `topic`, per partition (none: left out).
fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(topic, p);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

impl Setup {
    fn config(&self, name: &str) -> PathBuf {
        topic_restore_config(
            self.b.dir.path(),
            name,
            &self.b.topic,
            &self.restored,
            &self.target.url,
            // the test records mix framed, plain and null keys and values
            "      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {key: always, value: always}\n",
        )
    }

    /// The restore's configuration with the registry off: no registry step,
    /// records written as backed up.
    fn config_without_registry(&self, name: &str) -> PathBuf {
        let text = std::fs::read_to_string(self.config("with-registry.yaml"))
            .unwrap()
            .replace("    enabled: true\n", "    enabled: false\n");
        write(self.b.dir.path(), name, &text)
    }

    fn plan(&self, cfg: &Path) -> PathBuf {
        let path = self.b.dir.path().join("restore.plan.json");
        success(&kafka_backup(&[
            "plan",
            "-c",
            cfg.to_str().unwrap(),
            "-o",
            path.to_str().unwrap(),
        ]));
        path
    }

    /// Every backed-up record as the restore writes it, per partition.
    fn expected(&self, map: &BTreeMap<u32, u32>) -> BTreeMap<i32, Vec<Rec>> {
        let mut out: BTreeMap<i32, Vec<Rec>> = (0..PARTITIONS).map(|p| (p, vec![])).collect();
        for r in &self.b.records {
            out.get_mut(&r.partition)
                .unwrap()
                .push(rewritten(r.clone(), map));
        }
        out
    }

    fn journal_folder(&self) -> PathBuf {
        self.b.dir.path().join("store/b1/restore")
    }
}

/// A shard process whose standard output goes to a file, read while it runs.
struct ShardRun {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl ShardRun {
    /// Starts `apply PLAN -c CFG --shard SPEC --auto-approve` and `extra`.
    fn start(plan: &Path, cfg: &Path, spec: &str, extra: &[&str]) -> Self {
        let dir = cfg.parent().unwrap();
        let tag = spec.replace('/', "-of-");
        let (out, err) = (
            dir.join(format!("shard-{tag}.{}.out", unique("run"))),
            dir.join(format!("shard-{tag}.{}.err", unique("run"))),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
            .args(["apply", plan.to_str().unwrap(), "-c", cfg.to_str().unwrap()])
            .args(["--shard", spec, "--auto-approve"])
            .args(extra)
            .env("KAFKA_BACKUP_LOG", "warn")
            .env_remove("JOB_COMPLETION_INDEX")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Self { child, out, err }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap()
    }

    /// Waits until its output holds `needle`; fails if it exits first.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.stdout().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the shard exited ({status}) before printing {needle:?}:\n{}\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in 120 s:\n{}",
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for it to end (at most 5 minutes); gives stdout, failing the
    /// test unless it succeeded.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                panic!("the shard did not finish in 5 minutes:\n{}", self.stdout());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "the shard failed ({status}):\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
}

/// The partitions of `topic` the `restored T[p] -> ...` lines of `printed` name.
fn restored_partitions(printed: &str, topic: &str) -> BTreeSet<i32> {
    let prefix = format!("restored {topic}[");
    printed
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest[..rest.find(']').unwrap()].parse().unwrap())
        .collect()
}

/// Shard `i` of 3's partitions of a single 6-partition topic: `i` and `i + 3`.
fn partitions_of(i: i32) -> BTreeSet<i32> {
    [i, i + 3].into()
}

/// Records in `topic` now, per partition (0 where it does not exist yet).
fn counts(topic: &str) -> Vec<i64> {
    Counter::default().counts(topic)
}

/// Counts records fast enough to poll: one client, made again while the
/// topic is not there yet (a client caches that it is unknown).
#[derive(Default)]
struct Counter(Option<BaseConsumer>);

impl Counter {
    fn counts(&mut self, topic: &str) -> Vec<i64> {
        let consumer = self.0.get_or_insert_with(|| {
            client_config()
                .set("group.id", unique("count"))
                .create()
                .unwrap()
        });
        let counts: Vec<i64> = (0..PARTITIONS)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .map_or(0, |(low, high)| high - low)
            })
            .collect();
        if counts.iter().all(|&n| n == 0) {
            self.0 = None;
        }
        counts
    }
}

fn verify(cfg: &Path) -> Output {
    kafka_backup(&["verify", "-c", cfg.to_str().unwrap()])
}

/// `verify`, which must find the target matching the backup: its table.
fn verified(cfg: &Path) -> String {
    let out = verify(cfg);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The journal files of the restore (`<cluster>....json`, offset maps
/// left out) and the target partitions each holds.
fn journals(folder: &Path, restored: &str) -> BTreeMap<String, BTreeSet<i32>> {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".offsets.json"))
        .map(|name| {
            let journal: serde_json::Value =
                serde_json::from_slice(&std::fs::read(folder.join(&name)).unwrap()).unwrap();
            let partitions = journal["partitions"][restored]
                .as_object()
                .map(|ps| ps.keys().map(|p| p.parse().unwrap()).collect())
                .unwrap_or_default();
            // the cluster's part of the name is the same for all: keep the rest
            let short = name[name.find('.').unwrap()..].to_owned();
            (short, partitions)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_restore_disjoint_partitions_after_shard_0s_registry_half() {
    let s = setup(600, 0).await;
    let cfg = s.config("restore.yaml");
    let plan = s.plan(&cfg);

    // a dry run of a waiting shard does not wait: it shows its partitions
    // and the IDs the plan knows, and writes nothing
    let printed = success(&kafka_backup(&[
        "apply",
        plan.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
        "--shard",
        "1/3",
        "--dry-run",
    ]));
    assert!(
        printed.contains("Dry run, shard 1/3: the registry half is shard 0's and not applied yet")
            && printed.contains(&format!(
                "  {} -> {}: partition(s) 1, 4\n",
                s.b.topic, s.restored
            ))
            && printed.contains(&format!("create and restore topic `{}`", s.restored)),
        "{printed}"
    );
    assert_eq!(counts(&s.restored), vec![0; 6]);

    // a shard that waits longer than `--shard-wait` for shard 0 gives up,
    // saying what it waited for
    let alone = ShardRun::start(&plan, &cfg, "2/3", &["--shard-wait", "1"]);
    let status = { alone.child }.wait().unwrap();
    let err = std::fs::read_to_string(&alone.err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("shard 2/3 waited 1 s for shard 0 to apply the registry steps of the plan")
            && err.contains("no journal yet: shard 0 has not begun the registry steps")
            && err.contains("--shard 0/3"),
        "{err}"
    );

    // shards 1 and 2 first: they wait for shard 0's registry steps
    let mut waiting: Vec<ShardRun> = (1..3)
        .map(|i| ShardRun::start(&plan, &cfg, &format!("{i}/3"), &[]))
        .collect();
    for shard in &mut waiting {
        shard.wait_for("the registry steps are shard 0's; waiting for its journal");
    }
    // a second shard 1 is refused (its lease), and so is an apply without
    // --shard (it would write the shards' partitions)
    let twin = ShardRun::start(&plan, &cfg, "1/3", &[]);
    let mut twin_child = twin.child;
    let status = twin_child.wait().unwrap();
    let err = std::fs::read_to_string(&twin.err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("shard 1/3 of target cluster") && err.contains("is in use by `apply`"),
        "{err}"
    );
    let out = kafka_backup(&[
        "apply",
        plan.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
        "--auto-approve",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("restored by shard 1/3")
            || stderr(&out).contains("restored by shard 2/3"),
        "{}",
        stderr(&out)
    );
    // while they wait, nothing is written: no subject, no record
    std::thread::sleep(Duration::from_secs(2));
    let (status, subjects) = s.target.call(reqwest::Method::GET, "/subjects", None).await;
    assert_eq!((status, subjects), (200, serde_json::json!([])));
    assert_eq!(counts(&s.restored), vec![0; 6]);

    let first = ShardRun::start(&plan, &cfg, "0/3", &[]);
    let printed: Vec<String> = std::iter::once(first)
        .chain(waiting)
        .map(ShardRun::finish)
        .collect();
    let mut setters = 0;
    for (i, out) in printed.iter().enumerate() {
        eprintln!("--- shard {i}/3:\n{out}");
        assert!(
            out.contains(&format!(
                "Shard {i}/3: restores 2 of the 6 selected partition(s)"
            )) && out.contains(&format!(
                "  {} -> {}: partition(s) {}, {}\n",
                s.b.topic,
                s.restored,
                i,
                i + 3
            )),
            "{out}"
        );
        assert_eq!(
            restored_partitions(out, &s.b.topic),
            partitions_of(i as i32),
            "shard {i} restored other partitions than its own:\n{out}"
        );
        if i == 0 {
            assert!(out.contains("Registry applied:"), "{out}");
        } else {
            assert!(
                out.contains("the registry half is done (journal")
                    && !out.contains("Registry applied"),
                "{out}"
            );
        }
        // the last to finish sets the group; two finishing at once both
        // find every partition done, and the second finds the offsets there
        if out.contains(&format!("shard {i}/3 sets the offsets.")) {
            if out.contains(&format!("group `{}`: offsets set", s.group)) {
                setters += 1;
            } else {
                assert!(
                    out.contains("Consumer groups: 0 set now, 1 with nothing to commit"),
                    "{out}"
                );
            }
        } else {
            assert!(
                out.contains("Consumer groups: left to the shard that finishes last"),
                "{out}"
            );
        }
    }
    // (two deciding at the same instant may both commit the same offsets)
    assert!(setters >= 1, "no shard committed the consumer group");

    // every record once, IDs rewritten through shard 0's map; the group
    // where the records it had not read landed (the target topic starts at 0)
    assert_eq!(
        consume_all(&s.restored, PARTITIONS),
        s.expected(&seed_map())
    );
    assert_eq!(committed(&s.group, &s.restored), s.committed);
    let out = verified(&cfg);
    assert!(out.contains("the target matches the backup"), "{out}");

    // each shard wrote its own journal with its own partitions, none the
    // unsharded one
    let files = journals(&s.journal_folder(), &s.restored);
    let expected: BTreeMap<String, BTreeSet<i32>> = (0..3)
        .map(|i| (format!(".shard-{i}-of-3.json"), partitions_of(i)))
        .collect();
    assert_eq!(files, expected);

    // an apply of the same plan without --shard finds everything done
    let again = success(&kafka_backup(&[
        "apply",
        plan.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
        "--auto-approve",
    ]));
    assert!(
        again.contains("0 partition(s) now, 6 done in an earlier run; 0 record(s) written")
            && again.contains("Consumer groups: 0 set now, 1 with nothing to commit"),
        "{again}"
    );

    // a finished registry journal counts only while the target holds its
    // registrations: one lost since stops a waiting shard
    delete_subject(&s.target, "payments-value").await;
    let rerun = ShardRun::start(&plan, &cfg, "1/3", &[]);
    let status = { rerun.child }.wait().unwrap();
    let err = std::fs::read_to_string(&rerun.err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "the target registry lost 1 registration(s) shard 0's apply of this plan made"
        ) && err.contains("`payments-value` (ID 3)"),
        "{err}"
    );
    // all of them lost, the target as the plan was made against: shard 0
    // would apply the plan again, and a waiting shard waits for that
    delete_subject(&s.target, "orders-value").await;
    let rerun = ShardRun::start(&plan, &cfg, "1/3", &["--shard-wait", "1"]);
    let status = { rerun.child }.wait().unwrap();
    let out = std::fs::read_to_string(&rerun.out).unwrap();
    let err = std::fs::read_to_string(&rerun.err).unwrap();
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("the target registry is back in the state the plan was made against: waiting for shard 0 to apply it again")
            && err.contains("shard 1/3 waited 1 s"),
        "{out}{err}"
    );
}

/// Deletes `subject` from `sr` for good (soft, then permanently).
async fn delete_subject(sr: &Registry, subject: &str) {
    for path in [
        format!("/subjects/{subject}"),
        format!("/subjects/{subject}?permanent=true"),
    ] {
        let (status, body) = sr.call(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, 200, "DELETE {path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_a_shard_killed_mid_run_and_rerun_leaves_every_record_once() {
    // 2 KiB values on 2 of 5 records: about 16 MB
    let s = setup(20_000, 2048).await;
    // small producer batches: a partition's records arrive in many
    // requests, so that the kill lands inside one
    let text = std::fs::read_to_string(s.config("restore.yaml"))
        .unwrap()
        .replace(
            "target:\n",
            "target:\n  properties:\n    batch.size: \"8192\"\n",
        );
    let cfg = write(s.b.dir.path(), "small-batches.yaml", &text);
    let plan = s.plan(&cfg);
    let one_at_a_time = ["--partition-concurrency", "1"];
    let mut shards: Vec<ShardRun> = (0..3)
        .map(|i| ShardRun::start(&plan, &cfg, &format!("{i}/3"), &one_at_a_time))
        .collect();
    // shard 1 (partitions 1 and 4, one at a time, in that order) is killed
    // as soon as its records arrive, inside partition 1
    let expected = s.expected(&seed_map());
    let mut victim = shards.remove(1);
    let mut counter = Counter::default();
    let killed_at = loop {
        let now = counter.counts(&s.restored);
        if now[1] + now[4] > 0 {
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
            break counts(&s.restored);
        }
        assert!(
            victim.child.try_wait().unwrap().is_none(),
            "shard 1 finished before it could be killed:\n{}",
            victim.stdout()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    eprintln!("shard 1 killed with {killed_at:?} record(s) in the partitions");
    assert!(
        killed_at[1] < expected[&1].len() as i64 && killed_at[4] == 0,
        "shard 1 was not killed inside partition 1: {killed_at:?}"
    );
    for (i, shard) in [0, 2].into_iter().zip(shards) {
        let out = shard.finish();
        assert_eq!(
            restored_partitions(&out, &s.b.topic),
            partitions_of(i),
            "{out}"
        );
        assert!(
            out.contains("Consumer groups: left to the shard that finishes last")
                && out.contains(&format!("{}[1]", s.restored)),
            "{out}"
        );
    }
    // (a request the broker had taken before the kill may land after it)
    let before = counts(&s.restored);
    assert!(
        before[1] < expected[&1].len() as i64 && before[4] == 0,
        "{before:?}"
    );
    // not done: verify says so, and no group offset is set yet
    let out = verify(&cfg);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(committed(&s.group, &s.restored), BTreeMap::new());
    // an apply without --shard leaves the partition shard 1 began to shard 1
    let out = kafka_backup(&[
        "apply",
        plan.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
        "--auto-approve",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("was partly restored by another run")
            && stderr(&out).contains("with `--shard 1/3`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(counts(&s.restored), before, "it wrote nothing");

    // the rerun goes on where the killed one stopped, and, last, sets the group
    let out = ShardRun::start(&plan, &cfg, "1/3", &one_at_a_time).finish();
    eprintln!("{out}");
    assert_eq!(
        restored_partitions(&out, &s.b.topic),
        partitions_of(1),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "restored {}[1] -> {}[1]: {} record(s) written ({} by an earlier run)",
            s.b.topic,
            s.restored,
            expected[&1].len(),
            before[1]
        )),
        "{out}"
    );
    assert!(
        out.contains("shard 1/3 sets the offsets")
            && out.contains(&format!("group `{}`: offsets set", s.group)),
        "{out}"
    );
    assert_eq!(
        consume_all(&s.restored, PARTITIONS),
        s.expected(&seed_map())
    );
    assert_eq!(committed(&s.group, &s.restored), s.committed);
    verified(&cfg);
}

/// Runs `apply -c CFG --auto-approve` and `args` with `JOB_COMPLETION_INDEX`
/// set to `index` (or unset).
fn apply_indexed(cfg: &Path, args: &[&str], index: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-backup"));
    command
        .args(["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"])
        .args(args)
        .env("KAFKA_BACKUP_LOG", "warn")
        .env_remove("JOB_COMPLETION_INDEX");
    if let Some(i) = index {
        command.env("JOB_COMPLETION_INDEX", i);
    }
    command.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn shard_n_takes_its_index_from_job_completion_index() {
    let s = setup(60, 0).await;
    // refusals first: nothing is written by any of them
    let with_registry = s.config("restore.yaml");
    let out = apply_indexed(&with_registry, &["--shard", "0/3"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`--shard 0/3` needs a plan file")
            && stderr(&out).contains("hint: plan once, `kafka-backup plan -c"),
        "{}",
        stderr(&out)
    );
    let cfg = s.config_without_registry("topics-only.yaml");
    for (args, index, said) in [
        (
            &["--shard", "3"][..],
            None,
            "`--shard 3` takes the shard index from `JOB_COMPLETION_INDEX`, which is not set",
        ),
        (
            &["--shard", "3"][..],
            Some("3"),
            "`--shard 3`: shard 3 does not exist, shards are numbered 0 to 2",
        ),
        (
            &["--shard", "1/3", "--registry-only"][..],
            None,
            "`--registry-only` restores none",
        ),
    ] {
        let out = apply_indexed(&cfg, args, index);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(said), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(counts(&s.restored), vec![0; 6]);

    // the pod with index 1 restores partitions 1 and 4, and nothing else
    let original = consume_all(&s.b.topic, PARTITIONS);
    let out = apply_indexed(&cfg, &["--shard", "3"], Some("1"));
    let printed = success(&out);
    assert!(
        printed.contains("Shard 1/3: restores 2 of the 6 selected partition(s)"),
        "{printed}"
    );
    assert_eq!(restored_partitions(&printed, &s.b.topic), partitions_of(1));
    let after = consume_all(&s.restored, PARTITIONS);
    for p in 0..PARTITIONS {
        if partitions_of(1).contains(&p) {
            assert_eq!(after[&p], original[&p], "partition {p}");
        } else {
            assert!(after[&p].is_empty(), "partition {p}: {:?}", after[&p]);
        }
    }
    assert!(
        printed.contains("Consumer groups: left to the shard that finishes last"),
        "{printed}"
    );

    // `/3` the same way: indexes 2 and 0; the last sets the group
    success(&apply_indexed(&cfg, &["--shard", "/3"], Some("2")));
    let printed = success(&apply_indexed(&cfg, &["--shard", "/3"], Some("0")));
    assert_eq!(restored_partitions(&printed, &s.b.topic), partitions_of(0));
    assert!(
        printed.contains(&format!("group `{}`: offsets set", s.group)),
        "{printed}"
    );
    // without the registry the records go back as backed up
    assert_eq!(consume_all(&s.restored, PARTITIONS), original);
    assert_eq!(committed(&s.group, &s.restored), s.committed);
    verified(&cfg);
    // `offsets` reads every shard's map
    let shown = success(&kafka_backup(&["offsets", "-c", cfg.to_str().unwrap()]));
    for p in 0..PARTITIONS {
        assert!(
            shown.contains(&format!("{}[{p}] <- {}[{p}]", s.restored, s.b.topic)),
            "{shown}"
        );
    }
}
