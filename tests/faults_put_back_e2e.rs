//! Temporary registry settings are always put back (issue 10), end to end
//! with the real binary: an apply stopped by Ctrl-C or SIGTERM puts back the
//! compatibility levels it set for the restore and exits 130 / 143; an apply
//! killed with SIGKILL leaves them, and `kafka-backup put-back` puts them
//! back without registering anything; a registry that stops answering is
//! asked once at put-back time, and the error lists what stays temporary and
//! the command that puts it back. Every scenario ends with a rerun of the
//! same apply that restores every version.

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::matrix::{self, Tally};
use common::records::*;
use common::*;
use faults::{Action, Fault, HttpProxy};
use reqwest::Method;

/// A backup `b1` of 30 subjects (2 versions each) and a small topic.
struct Source {
    dir: tempfile::TempDir,
    _registry: Registry,
    topic: String,
    subjects: Vec<String>,
}

async fn source() -> Source {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let subjects = seed_growing_subjects(&registry, 30).await;
    let topic = unique("putback");
    create_topic(&topic, 1, &[]).await;
    produce(
        &topic,
        &(0..5).map(|i| record(i, 1, None)).collect::<Vec<_>>(),
    )
    .await;
    let cfg = write(
        dir.path(),
        "backup.yaml",
        &format!(
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            bootstrap(),
            dir.path().join("store").display(),
            registry.url,
        ),
    );
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    Source {
        dir,
        _registry: registry,
        topic,
        subjects,
    }
}

/// A fresh target registry behind the fault proxy, where every registration
/// takes a while (so that a run can be stopped in its registry half), and
/// restore configs through the proxy and straight to the registry.
struct Target {
    registry: Registry,
    proxy: HttpProxy,
    through_proxy: PathBuf,
    direct: PathBuf,
}

fn target(s: &Source, name: &str) -> Target {
    let registry = Registry::start();
    let proxy = HttpProxy::start(&registry.url);
    proxy.inject(
        Fault::next(Action::Delay(Duration::from_millis(60)), 100_000).only("POST", "/subjects/"),
    );
    let cfg = |file: &str, url: &str| {
        topic_restore_config(
            s.dir.path(),
            file,
            &s.topic,
            &format!("{}-{name}", s.topic),
            url,
            "      strategy: preserve\n      rewrite_ids: true\n      missing_id_policy: passthrough\n",
        )
    };
    Target {
        through_proxy: cfg(&format!("{name}-proxy.yaml"), &proxy.url),
        direct: cfg(&format!("{name}.yaml"), &registry.url),
        registry,
        proxy,
    }
}

fn spawn(args: &[&str]) -> Child {
    spawn_kafka_backup(&[], args)
}

fn apply_args(cfg: &Path) -> Vec<String> {
    ["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"]
        .map(String::from)
        .to_vec()
}

/// Waits until `n` registrations went through the proxy while `child` runs.
fn registrations_seen(proxy: &HttpProxy, n: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = proxy
            .log()
            .iter()
            .filter(|(r, w)| {
                r.method == "POST"
                    && r.path().ends_with("/versions")
                    && (w.starts_with("forwarded") || w.starts_with("delayed"))
            })
            .count();
        if seen >= n {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the apply ended before {n} registrations"
        );
        assert!(Instant::now() < deadline, "{seen} registrations in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `apply` through `t`'s proxy, once 3 registrations went through: in the
/// middle of its registry half.
fn apply_in_flight(t: &Target) -> Child {
    let args = apply_args(&t.through_proxy);
    let mut child = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    registrations_seen(&t.proxy, 3, &mut child);
    child
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The subjects of `subjects` that have a compatibility level of their own
/// in `sr` (the restore sets none for good: the source had none).
async fn subject_levels(sr: &Registry, subjects: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in subjects {
        let (status, body) = sr.call(Method::GET, &format!("/config/{s}"), None).await;
        match status {
            404 => assert_eq!(body["error_code"], 40408, "{s}: {body}"),
            200 => out.push((s.clone(), body["compatibilityLevel"].to_string())),
            _ => panic!("{s}: {status} {body}"),
        }
    }
    out
}

/// (subject, version) pairs `sr` holds among `subjects`.
async fn registered(sr: &Registry, subjects: &[String]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for s in subjects {
        let (status, body) = sr
            .call(Method::GET, &format!("/subjects/{s}/versions"), None)
            .await;
        if status == 200 {
            for v in body.as_array().unwrap() {
                out.push((s.clone(), v.as_u64().unwrap()));
            }
        }
    }
    out
}

/// The same apply, run again straight against the registry, restores every
/// version and verifies clean; the tally counts versions missing.
async fn rerun_restores_everything(s: &Source, t: &Target) -> Tally {
    let args = apply_args(&t.direct);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    success(&kafka_backup(&args));
    let verified = success(&kafka_backup(&["verify", "-c", t.direct.to_str().unwrap()]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );
    let want: Vec<(String, u64)> = s
        .subjects
        .iter()
        .flat_map(|x| [(x.clone(), 1), (x.clone(), 2)])
        .collect();
    let got = registered(&t.registry, &s.subjects).await;
    assert!(subject_levels(&t.registry, &s.subjects).await.is_empty());
    matrix::tally(&want, &got)
}

fn finished(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_apply_stopped_by_sigint_or_sigterm_puts_back_and_exits_130_or_143() {
    let s = source().await;
    let mut total = Tally::default();
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let t = target(&s, &name.to_lowercase());
        let child = apply_in_flight(&t);
        assert!(
            !subject_levels(&t.registry, &s.subjects).await.is_empty(),
            "the temporary levels are set before the registrations"
        );
        signal(&child, name);
        let out = finished(child);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "SIG{name}: {err}");
        assert!(
            err.contains("no new step starts") && err.contains("stopped on request"),
            "SIG{name}: {err}"
        );
        assert!(err.contains("put back: step"), "SIG{name}: {err}");
        assert_eq!(
            subject_levels(&t.registry, &s.subjects).await,
            Vec::<(String, String)>::new(),
            "SIG{name}: a temporary level is left"
        );
        total.add(rerun_restores_everything(&s, &t).await);
    }
    matrix::row(
        "apply stopped by SIGINT, then by SIGTERM, in its registry half, then rerun",
        2,
        total,
        "exit 130 / 143 with no temporary level left; every rerun verified",
    );
    assert!(total.clean(), "{total:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_apply_killed_then_put_back_leaves_nothing_temporary_and_registers_nothing() {
    let s = source().await;
    let t = target(&s, "killed");
    let mut child = apply_in_flight(&t);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = subject_levels(&t.registry, &s.subjects).await;
    assert!(!left.is_empty(), "SIGKILL left no temporary level");
    let before = registered(&t.registry, &s.subjects).await;

    // the configuration the killed apply ran with (journals are kept per target URL)
    let cfg = t.through_proxy.to_str().unwrap();
    // a plan made now would take the temporary levels for the target's own
    let planned = kafka_backup(&["plan", "-c", cfg]);
    let err = stderr(&planned);
    assert_eq!(planned.status.code(), Some(1), "{err}");
    assert!(
        err.contains("left temporary settings in the target")
            && err.contains(&format!("kafka-backup put-back -c {cfg}")),
        "{err}"
    );
    // what it would do, changing nothing
    let dry = success(&kafka_backup(&["put-back", "-c", cfg, "--dry-run"]));
    assert!(dry.contains("they would be put back"), "{dry}");
    assert_eq!(subject_levels(&t.registry, &s.subjects).await, left);
    // the killed run's lease is taken over (its process is gone)
    let out = kafka_backup(&["put-back", "-c", cfg]);
    let said = success(&out);
    assert!(said.contains("Nothing temporary is left"), "{said}");
    assert!(stderr(&out).contains("put back: step"), "{}", stderr(&out));
    assert_eq!(
        subject_levels(&t.registry, &s.subjects).await,
        Vec::<(String, String)>::new()
    );
    assert_eq!(
        registered(&t.registry, &s.subjects).await,
        before,
        "put-back registered something"
    );
    // again: nothing to do
    let again = kafka_backup(&["put-back", "-c", cfg]);
    success(&again);
    assert!(
        !stderr(&again).contains("put back: step"),
        "{}",
        stderr(&again)
    );

    let total = rerun_restores_everything(&s, &t).await;
    matrix::row(
        "apply killed (SIGKILL) in its registry half, then `put-back`, then rerun",
        1,
        total,
        "put-back left no temporary level and registered nothing; the rerun verified",
    );
    assert!(total.clean(), "{total:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_a_registry_down_at_put_back_is_asked_once_and_the_command_is_named() {
    let s = source().await;
    let t = target(&s, "down");
    let child = apply_in_flight(&t);
    // the registry goes away for good
    t.proxy.clear();
    t.proxy.inject(Fault::next(Action::Status(503), 100_000));
    let went_down = t.proxy.requests();
    let out = finished(child);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let retries = err.lines().filter(|l| l.contains("retrying in")).count();
    let sent = t.proxy.requests() - went_down;
    // the failing step's retries, then one probe: no put-back step is tried
    assert!(
        sent <= 6,
        "{sent} requests after the registry went down:\n{err}"
    );
    assert!(retries <= 5, "{retries} retry warnings:\n{err}");
    assert!(
        err.contains("still in the target (the registry does not answer)"),
        "{err}"
    );
    let cfg = t.through_proxy.to_str().unwrap();
    assert!(
        err.contains(&format!("kafka-backup put-back -c {cfg}")),
        "{err}"
    );
    let listed = err.lines().filter(|l| l.starts_with("  - ")).count();
    let left = subject_levels(&t.registry, &s.subjects).await;
    assert!(!left.is_empty(), "{err}");
    eprintln!("{err}");
    assert_eq!(
        listed,
        left.len(),
        "every temporary level listed once:\n{err}"
    );

    // back up: the command named puts them back
    t.proxy.clear();
    success(&kafka_backup(&["put-back", "-c", cfg]));
    assert_eq!(
        subject_levels(&t.registry, &s.subjects).await,
        Vec::<(String, String)>::new()
    );
    let total = rerun_restores_everything(&s, &t).await;
    matrix::row(
        "target registry gone for good in the middle of apply's registry half, then back",
        1,
        total,
        "one probe, one list of what stayed temporary and the put-back command; put-back and rerun verified",
    );
    assert!(total.clean(), "{total:?}");
}
