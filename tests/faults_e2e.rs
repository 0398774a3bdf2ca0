//! The fault matrix, against the live test ground and through the real
//! binary: a process killed (`SIGKILL`) at random points and run again must
//! end with every record and every schema exactly once and unchanged.
//! Each scenario runs `KB_FAULT_RUNS` times (a few in the suite, 20 from
//! `scripts/faults`, which tabulates the rows they report in
//! `docs/reliability.md`). Kill delays are seeded from the clock and printed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::matrix::{self, Tally};
use common::records::*;
use common::*;
use serde_json::json;

fn rng() -> fastrand::Rng {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill delays seeded with {seed}");
    fastrand::Rng::with_seed(seed)
}

/// Runs the binary and kills it after `delay` unless it ended first; true
/// when it was killed.
fn killed_after(args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(args)
        .env("KAFKA_BACKUP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if started.elapsed() >= delay {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long a full run of `args` takes (it must succeed).
fn timed(args: &[&str]) -> Duration {
    let started = Instant::now();
    success(&kafka_backup(args));
    started.elapsed()
}

fn backup_config(dir: &Path, id: &str, topic: &str, sr: &str) -> std::path::PathBuf {
    write(
        dir,
        &format!("{id}.yaml"),
        &format!(
            "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {sr}\n",
            bootstrap(),
            dir.join("store").display(),
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_backup_killed_at_random_points_and_rerun_holds_every_record_once() {
    let runs = matrix::runs(3);
    let mut rng = rng();
    // 1 KiB values on 2 of 5 records, 3 partitions: about 12 MB
    let records: Vec<Rec> = (0..30_000)
        .map(|i| record_padded(i, 3, None, 1024))
        .collect();
    let b = seeded_backup(unique("orders"), records).await;
    let dir = b.dir.path();
    let expected = by_partition(&b.records);
    let full = timed(&[
        "backup",
        "-c",
        backup_config(dir, "calibrate", &b.topic, &b.source.url)
            .to_str()
            .unwrap(),
    ]);
    eprintln!("a full backup takes {full:?}");

    let mut total = Tally::default();
    let mut killed = 0;
    for run in 0..runs {
        let id = format!("k{run}");
        let cfg = backup_config(dir, &id, &b.topic, &b.source.url);
        let cfg = cfg.to_str().unwrap();
        let delay = Duration::from_micros(rng.u64(0..full.as_micros() as u64));
        let was_killed = killed_after(&["backup", "-c", cfg], delay);
        let manifest = dir.join("store").join(&id).join("manifest.json");
        if was_killed {
            killed += 1;
            if !manifest.exists() {
                // an interrupted backup is flagged, never listed as usable
                let listed = success(&kafka_backup(&[
                    "list",
                    "--path",
                    dir.join("store").to_str().unwrap(),
                ]));
                let line = listed.lines().find(|l| l.contains(&id));
                assert!(line.is_none_or(|l| l.contains("interrupted")), "{listed}");
                success(&kafka_backup(&["backup", "-c", cfg]));
            }
        }
        eprintln!("run {run}: killed after {delay:?}: {was_killed}");
        success(&kafka_backup(&[
            "describe",
            "--path",
            dir.join("store").to_str().unwrap(),
            "--backup-id",
            &id,
            "--verify-files",
        ]));
        let got = backed_up(dir, &id, &b.topic).await;
        for (p, want) in &expected {
            let have = got.get(p).cloned().unwrap_or_default();
            total.add(matrix::tally(want, &have));
            assert_eq!(&have, want, "backup {id}, partition {p}");
        }
    }
    matrix::row(
        "backup killed (SIGKILL) at a random point, then rerun",
        runs,
        total,
        &format!("{killed} killed mid-run; every rerun complete, files verified"),
    );
    assert!(total.clean(), "{total:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_apply_killed_in_its_registry_half_and_rerun_registers_each_version_once() {
    let runs = matrix::runs(3);
    let mut rng = rng();
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start();
    // a target that hands out other IDs than the source
    let subjects = seed_growing_subjects(&source, 40).await;
    let topic = unique("small");
    create_topic(&topic, 1, &[]).await;
    let records: Vec<Rec> = (0..5).map(|i| record(i, 1, None)).collect();
    produce(&topic, &records).await;
    success(&kafka_backup(&[
        "backup",
        "-c",
        backup_config(dir.path(), "b1", &topic, &source.url)
            .to_str()
            .unwrap(),
    ]));
    let source_versions = versions(&source, &subjects).await;

    let restore_cfg = |name: &str, target: &Registry| {
        topic_restore_config(
            dir.path(),
            name,
            &topic,
            &format!("{topic}-{name}"),
            &target.url,
            "      strategy: preserve\n      rewrite_ids: true\n      missing_id_policy: passthrough\n",
        )
    };
    let calibrate = Registry::start();
    let full = timed(&[
        "apply",
        "-c",
        restore_cfg("calibrate", &calibrate).to_str().unwrap(),
        "--auto-approve",
    ]);
    eprintln!("a full apply takes {full:?}");

    let mut total = Tally::default();
    let mut killed = 0;
    for run in 0..runs {
        let target = Registry::start();
        // something in the target first, so that its IDs differ from the source's
        target
            .register("other-value", json!({"schema": growing_avro("Other", 1)}))
            .await;
        let cfg = restore_cfg(&format!("r{run}"), &target);
        let cfg = cfg.to_str().unwrap();
        let delay = Duration::from_micros(rng.u64(0..full.as_micros() as u64));
        let args = ["apply", "-c", cfg, "--auto-approve"];
        let was_killed = killed_after(&args, delay);
        killed += usize::from(was_killed);
        eprintln!("run {run}: killed after {delay:?}: {was_killed}");
        success(&kafka_backup(&args));
        let verified = success(&kafka_backup(&["verify", "-c", cfg]));
        assert!(
            verified.contains("the target matches the backup"),
            "{verified}"
        );
        let got = versions(&target, &subjects).await;
        total.add(matrix::tally(&source_versions, &got));
        assert_eq!(got, source_versions, "run {run}");
    }
    matrix::row(
        "apply killed (SIGKILL) at a random point (mostly its registry half), then rerun",
        runs,
        total,
        &format!("{killed} killed mid-run; every rerun verified"),
    );
    assert!(total.clean(), "{total:?}");
}

/// Every version of `subjects` (soft-deleted ones too) as (subject,
/// version, schema), in order.
async fn versions(sr: &Registry, subjects: &[String]) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    for s in subjects {
        let (status, list) = sr
            .call(
                reqwest::Method::GET,
                &format!("/subjects/{s}/versions?deleted=true"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{s}: {list}");
        for v in list.as_array().unwrap() {
            let v = v.as_u64().unwrap();
            let (status, body) = sr
                .call(
                    reqwest::Method::GET,
                    &format!("/subjects/{s}/versions/{v}?deleted=true"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{s} v{v}: {body}");
            out.push((s.clone(), v, body["schema"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// Waits until a lease file whose name starts with `prefix` appears under
/// `dir/store/leases/`, while `child` runs; false when it ended first.
fn lease_taken(dir: &Path, prefix: &str, child: &mut std::process::Child) -> bool {
    let leases = dir.join("store/leases");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let found = std::fs::read_dir(&leases)
            .into_iter()
            .flatten()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(prefix));
        if found {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no lease `{prefix}*` appeared");
}

fn spawn(args: &[&str]) -> std::process::Child {
    spawn_kafka_backup(&[], args)
}

/// SIGTERM (a Kubernetes Job's pod deleted, a node drained) stops a backup
/// with its lease released, so the Job's next pod, on another host, is not
/// refused for the lease's minute; before, the signal's default action ended
/// the process and left the lease behind.
#[tokio::test(flavor = "multi_thread")]
async fn fault_sigterm_stops_a_backup_and_releases_its_lease() {
    sigterm_stops_a_backup("sigterm", false).await;
}

/// The same as a container's first process (PID 1 of its own PID namespace,
/// `unshare --pid`), which has no default action for SIGTERM: before, the
/// signal was ignored and the backup ran on until the scheduler's SIGKILL.
#[tokio::test(flavor = "multi_thread")]
async fn fault_sigterm_stops_a_backup_running_as_pid_1() {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: `unshare --pid` is not permitted here (needs root or user namespaces)");
        return;
    }
    sigterm_stops_a_backup("sigterm-pid1", true).await;
}

/// A backup held by an open transaction, signalled once its lease is taken:
/// exit 143 at once, the lease released, no manifest; the retry completes.
async fn sigterm_stops_a_backup(id: &str, as_pid_1: bool) {
    use rdkafka::producer::Producer;
    let topic = unique(id);
    create_topic(&topic, 1, &[]).await;
    // an open transaction: the backup waits for it, still running when signalled
    let txn = open_transaction(&topic, 1, "open").await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        &format!("{id}.yaml"),
        &format!(
            "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\n  open_transaction_wait_secs: 60\nstorage:\n  path: {}\n",
            bootstrap(),
            dir.path().join("store").display(),
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let wrapper: &[&str] = if as_pid_1 {
        &["unshare", "--pid", "--fork", "--kill-child"]
    } else {
        &[]
    };
    let mut backup = spawn_kafka_backup(wrapper, &["backup", "-c", cfg]);
    assert!(
        lease_taken(dir.path(), &format!("backup-{id}"), &mut backup),
        "the backup ended before its lease was seen"
    );
    std::thread::sleep(Duration::from_millis(500));
    // the backup itself: under `unshare`, its child (PID 1 inside)
    let pid = if as_pid_1 {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", backup.id())).unwrap();
        children.split_whitespace().next().unwrap().to_owned()
    } else {
        backup.id().to_string()
    };
    terminate(&pid);
    let started = Instant::now();
    while backup.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(15) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("the backup ignored SIGTERM for 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = backup.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        err.contains(&format!(
            "terminated (SIGTERM): backup `{id}` stopped and not published"
        )),
        "{err}"
    );
    assert!(
        !dir.path()
            .join(format!("store/leases/backup-{id}.json"))
            .exists(),
        "the lease is released"
    );
    assert!(
        !dir.path()
            .join(format!("store/{id}/manifest.json"))
            .exists()
    );

    // the retry, once the transaction ended: not refused, complete
    txn.abort_transaction(Duration::from_secs(30)).unwrap();
    success(&kafka_backup(&["backup", "-c", cfg]));
    assert!(
        dir.path()
            .join(format!("store/{id}/manifest.json"))
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_a_second_backup_with_the_same_id_is_refused_while_the_first_runs() {
    let records: Vec<Rec> = (0..30_000)
        .map(|i| record_padded(i, 3, None, 1024))
        .collect();
    let b = seeded_backup(unique("orders"), records).await;
    let dir = b.dir.path();
    let cfg = backup_config(dir, "twice", &b.topic, &b.source.url);
    let cfg = cfg.to_str().unwrap();
    let mut first = spawn(&["backup", "-c", cfg, "--partition-concurrency", "1"]);
    assert!(
        lease_taken(dir, "backup-twice", &mut first),
        "the first backup ended before its lease was seen"
    );
    let second = kafka_backup(&["backup", "-c", cfg]);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("backup `twice`")
            && err.contains("is in use by `backup`")
            && err.contains("--force-unlock"),
        "{err}"
    );
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "the first backup: {}", stderr(&out));
    assert!(
        !dir.join("store/leases/backup-twice.json").exists(),
        "the lease is released"
    );
    success(&kafka_backup(&[
        "describe",
        "--path",
        dir.join("store").to_str().unwrap(),
        "--backup-id",
        "twice",
        "--verify-files",
    ]));
    let got = backed_up(dir, "twice", &b.topic).await;
    let t = matrix::tally_partitions(&by_partition(&b.records), &got);
    matrix::row(
        "a second backup with the same backup ID while the first runs",
        1,
        t,
        "the second refused, naming the holder; the first complete, files verified",
    );
    assert!(t.clean(), "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_a_second_apply_against_the_same_target_is_refused_while_the_first_runs() {
    let records: Vec<Rec> = (0..20_000)
        .map(|i| record_padded(i, 3, None, 2048))
        .collect();
    let b = seeded_backup(unique("orders"), records).await;
    let dir = b.dir.path();
    let target = Registry::start();
    let restored = format!("{}-restored", b.topic);
    let cfg = topic_restore_config(
        dir,
        "restore.yaml",
        &b.topic,
        &restored,
        &target.url,
        "      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {key: always, value: always}\n",
    );
    let cfg = cfg.to_str().unwrap();
    let args = [
        "apply",
        "-c",
        cfg,
        "--auto-approve",
        "--partition-concurrency",
        "1",
    ];
    let mut first = spawn(&args);
    assert!(
        lease_taken(dir, "cluster-", &mut first),
        "the first apply ended before its leases were seen"
    );
    let second = kafka_backup(&args);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is in use by `apply`") && err.contains("--force-unlock"),
        "{err}"
    );
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "the first apply: {}", stderr(&out));
    let verified = success(&kafka_backup(&["verify", "-c", cfg]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
    let got = consume_all(&restored, 3);
    let expected: Vec<Rec> = b
        .records
        .iter()
        .map(|r| rewritten(r.clone(), &seed_map()))
        .collect();
    let t = matrix::tally_partitions(&by_partition(&expected), &got);
    matrix::row(
        "a second apply against the same target while a restore runs",
        1,
        t,
        "the second refused, naming the holder; the first verified clean",
    );
    assert!(t.clean(), "{t:?}");
}
