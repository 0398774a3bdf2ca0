//! The registry half of the fault matrix (issue 9), end to end: the real
//! binary talks to a live registry through the fault proxy
//! (`tests/common/faults.rs`), which fails, delays or drops requests for a
//! while, or makes the bulk listing `GET /schemas` lie the ways real servers
//! do (ignoring `offset`, Karapace's soft-deleted versions, a registration
//! between two pages). Every backup is checked against what
//! `/subjects/{s}/versions` (and `?deleted=true`) says; every apply is checked
//! with `verify`.

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::matrix::{self, Tally};
use common::*;
use faults::{Action, Fault, HttpProxy, Request};
use reqwest::Method;
use serde_json::{Value, json};

fn avro(name: &str, fields: usize) -> String {
    let fields: Vec<Value> = (0..fields)
        .map(|f| json!({"name": format!("f{f}"), "type": "string", "default": ""}))
        .collect();
    json!({"type": "record", "name": name, "fields": fields}).to_string()
}

/// `subjects` subjects `s0`..., each with `versions` versions (IDs in
/// registration order: subject by subject).
async fn seed(sr: &Registry, subjects: usize, versions: usize) {
    for s in 0..subjects {
        for v in 1..=versions {
            sr.register(
                &format!("s{s}"),
                json!({"schema": avro(&format!("S{s}"), v)}),
            )
            .await;
        }
    }
}

/// A registry-only backup config through `url`.
fn backup_config(dir: &Path, backup_id: &str, url: &str, extra: &str) -> PathBuf {
    write(
        dir,
        &format!("{backup_id}.yaml"),
        &format!(
            "backup_id: {backup_id}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {url}\n    request_timeout_secs: 1\n{extra}",
            dir.join("store").display()
        ),
    )
}

/// subject -> version -> (id, soft-deleted) as the backup recorded it.
type Versions = BTreeMap<String, BTreeMap<u64, (u64, bool)>>;

fn backed_up(dir: &Path, backup_id: &str) -> Versions {
    let path = dir.join(format!("store/{backup_id}/schema-registry/_schemas.json"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut out = Versions::new();
    for s in manifest["subjects"].as_array().unwrap() {
        let versions = out
            .entry(s["name"].as_str().unwrap().to_owned())
            .or_default();
        for v in s["versions"].as_array().unwrap() {
            versions.insert(
                v["version"].as_u64().unwrap(),
                (
                    v["id"].as_u64().unwrap(),
                    v.get("deleted").and_then(Value::as_bool).unwrap_or(false),
                ),
            );
        }
    }
    out
}

async fn list(sr: &Registry, path: &str) -> Vec<Value> {
    let (status, body) = sr.call(Method::GET, path, None).await;
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{path}: {body}");
    body.as_array().unwrap().clone()
}

/// What the registry says a backup must hold: per subject, its live versions
/// (and, with `soft_deleted`, its soft-deleted ones, flagged), from
/// `/subjects/{s}/versions` and `?deleted=true`, with their IDs.
async fn served(sr: &Registry, soft_deleted: bool) -> Versions {
    let mut out = Versions::new();
    for s in list(sr, "/subjects?deleted=true").await {
        let s = s.as_str().unwrap();
        let live: Vec<u64> = list(sr, &format!("/subjects/{}/versions", encode(s)))
            .await
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let all: Vec<u64> = list(
            sr,
            &format!("/subjects/{}/versions?deleted=true", encode(s)),
        )
        .await
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
        for v in all {
            let deleted = !live.contains(&v);
            if deleted && !soft_deleted {
                continue;
            }
            let path = format!("/subjects/{}/versions/{v}?deleted=true", encode(s));
            let (_, record) = sr.call(Method::GET, &path, None).await;
            out.entry(s.to_owned())
                .or_default()
                .insert(v, (record["id"].as_u64().unwrap(), deleted));
        }
    }
    out
}

fn backup(cfg: &Path) -> std::process::Output {
    kafka_backup(&["backup", "-c", cfg.to_str().unwrap()])
}

/// `GET /schemas` pages of `limit` entries, whatever the client asked for.
fn small_pages(r: &mut Request, limit: usize) {
    if r.path() == "/schemas" {
        let mut q: Vec<(String, String)> = r
            .query()
            .into_iter()
            .filter(|(k, _)| k != "limit")
            .collect();
        q.push(("limit".into(), limit.to_string()));
        r.set_query(&q);
    }
}

// ---- point 6: the bulk listing is cross-checked, not trusted ----

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_ignoring_offset_loses_no_version() {
    let sr = Registry::start();
    seed(&sr, 4, 3).await;
    let proxy = HttpProxy::start(&sr.url);
    // pages of 5 that always start at the beginning: `s1` straddles the first page's end
    proxy.on_request(|r| {
        small_pages(r, 5);
        if r.path() == "/schemas" {
            let q: Vec<(String, String)> = r
                .query()
                .into_iter()
                .filter(|(k, _)| k != "offset")
                .collect();
            r.set_query(&q);
        }
        Vec::new()
    });
    let dir = tempfile::tempdir().unwrap();
    for (id, soft) in [("no-offset", false), ("no-offset-all", true)] {
        let extra = format!("    backup:\n      include_soft_deleted: {soft}\n");
        success(&backup(&backup_config(dir.path(), id, &proxy.url, &extra)));
        assert_eq!(backed_up(dir.path(), id), served(&sr, soft).await, "{id}");
    }
}

/// Karapace 3.16: `GET /schemas` lists a soft-deleted version as if live,
/// `GET /schemas?deleted=true` leaves it out.
#[tokio::test(flavor = "multi_thread")]
async fn a_soft_deleted_version_listed_as_live_is_flagged_or_left_out() {
    let sr = Registry::start();
    seed(&sr, 3, 3).await;
    let (status, body) = sr
        .call(Method::DELETE, "/subjects/s1/versions/2", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, hidden) = sr
        .call(Method::GET, "/subjects/s1/versions/2?deleted=true", None)
        .await;
    let proxy = HttpProxy::start(&sr.url);
    proxy.on_response(move |r, status, body| {
        if r.path() != "/schemas" || status != 200 {
            return body;
        }
        let mut list: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let is_hidden = |v: &Value| v["subject"] == "s1" && v["version"] == 2;
        if r.query().iter().any(|(k, v)| k == "deleted" && v == "true") {
            list.retain(|v| !is_hidden(v));
        } else if let Some(at) = list
            .iter()
            .position(|v| v["subject"] == "s1" && v["version"] == 3)
        {
            let mut entry = hidden.clone();
            entry.as_object_mut().unwrap().remove("deleted");
            list.insert(at, entry);
        }
        serde_json::to_vec(&list).unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    for (id, soft) in [("karapace-live", false), ("karapace-all", true)] {
        let extra = format!("    backup:\n      include_soft_deleted: {soft}\n");
        success(&backup(&backup_config(dir.path(), id, &proxy.url, &extra)));
        let expected = served(&sr, soft).await;
        assert_eq!(expected["s1"].get(&2).map(|v| v.1), soft.then_some(true));
        assert_eq!(backed_up(dir.path(), id), expected, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_registered_between_pages_is_in_the_backup() {
    let sr = Registry::start();
    seed(&sr, 4, 3).await;
    let proxy = HttpProxy::start(&sr.url);
    let registered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let once = registered.clone();
    proxy.on_request(move |r| {
        small_pages(r, 5);
        let later_page =
            r.path() == "/schemas" && r.query().iter().any(|(k, v)| k == "offset" && v != "0");
        if later_page && !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // s0 is on the first page, already read: its v4 would be missed
            return vec![Request {
                method: "POST".into(),
                target: "/subjects/s0/versions".into(),
                body: json!({"schema": avro("S0", 4)}).to_string().into_bytes(),
            }];
        }
        Vec::new()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = backup_config(dir.path(), "between-pages", &proxy.url, "");
    success(&backup(&cfg));
    assert!(registered.load(std::sync::atomic::Ordering::SeqCst));
    let expected = served(&sr, false).await;
    assert_eq!(expected["s0"].len(), 4);
    assert_eq!(backed_up(dir.path(), "between-pages"), expected);
}

// ---- the registry fails, times out or drops connections for a while ----

/// Faults the client's retries (5 attempts, about 1.5 s of backoff in all,
/// 1 s request timeout here) ride out: each on every request for a few
/// requests, or on one route.
fn short_faults() -> Vec<(&'static str, Fault)> {
    vec![
        ("500", Fault::next(Action::Status(500), 3)),
        ("503", Fault::next(Action::Status(503), 3)),
        ("429", Fault::next(Action::Status(429), 3)),
        ("drop", Fault::next(Action::Drop, 3)),
        ("drop-answer", Fault::next(Action::DropAnswer, 3)),
        (
            "timeout",
            Fault::next(Action::Delay(Duration::from_millis(1500)), 2),
        ),
        (
            "503-window",
            Fault::window(Action::Status(503), Duration::from_millis(400)),
        ),
    ]
}

/// Each short fault twice: on whatever request comes first, and on the
/// `GET` requests under one of `routes` (taken in turn); named `<fault>-<n>`.
fn spread(routes: &[&str]) -> Vec<(String, Fault)> {
    let mut out = Vec::new();
    for (i, (name, fault)) in short_faults().into_iter().enumerate() {
        let route = routes[i % routes.len()];
        let on_route = match fault.span {
            // a window starts when the fault is made: a fresh one
            faults::Span::Until(_) => {
                Fault::window(fault.action.clone(), Duration::from_millis(400)).only("GET", route)
            }
            faults::Span::Next(_) => fault.clone().only("GET", route),
        };
        out.push((format!("{name}-any"), fault));
        out.push((format!("{name}-{}", route.trim_matches('/')), on_route));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_backup_rides_out_short_registry_faults_and_is_complete() {
    let sr = Registry::start();
    seed(&sr, 6, 3).await;
    let (status, body) = sr
        .call(Method::DELETE, "/subjects/s2/versions/1", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let proxy = HttpProxy::start(&sr.url);
    let dir = tempfile::tempdir().unwrap();
    let extra = "    backup:\n      include_soft_deleted: true\n";
    let expected = served(&sr, true).await;
    // on whatever comes first, on the bulk pages, on the subjects' listings,
    // on one version read, on the settings
    let routes = ["/schemas", "/subjects/", "/config/", "/mode/", "/subjects"];
    let flat = |v: &Versions| -> Vec<(String, u64, u64, bool)> {
        v.iter()
            .flat_map(|(s, vs)| vs.iter().map(move |(n, (id, d))| (s.clone(), *n, *id, *d)))
            .collect()
    };
    let mut total = Tally::default();
    let cases = spread(&routes);
    let runs = cases.len();
    for (id, fault) in cases {
        proxy.inject(fault);
        let out = backup(&backup_config(dir.path(), &id, &proxy.url, extra));
        proxy.clear();
        success(&out);
        let got = backed_up(dir.path(), &id);
        total.add(matrix::tally(&flat(&expected), &flat(&got)));
        assert_eq!(got, expected, "{id}");
    }
    matrix::row(
        "registry answers 500, 503, 429, drops, loses answers or times out (one kind per run, on any or one route) during backup; counts are schema versions",
        runs,
        total,
        "retried; every backup equals the registry's own version lists",
    );
    let log = proxy.log();
    for what in ["answered 500", "answered 503", "answered 429", "dropped"] {
        assert!(log.iter().any(|(_, w)| w == what), "no request {what}");
    }
    assert!(log.iter().any(|(_, w)| w.starts_with("delayed")));
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_a_registry_failing_past_the_retries_fails_the_backup_with_no_manifest() {
    let sr = Registry::start();
    seed(&sr, 3, 2).await;
    let proxy = HttpProxy::start(&sr.url);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "503",
            Action::Status(503),
            "GET",
            "/subjects/s1/versions",
            "503",
        ),
        ("429", Action::Status(429), "GET", "/schemas", "429"),
        ("drop", Action::Drop, "GET", "/config/s0", "connection"),
    ];
    for (name, action, method, path, says) in cases {
        let id = format!("down-{name}");
        proxy.inject(Fault::next(action, 1000).only(method, path));
        let out = backup(&backup_config(dir.path(), &id, &proxy.url, ""));
        proxy.clear();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{id}: {err}");
        assert!(err.contains("cannot back up the schema registry"), "{err}");
        assert!(err.contains(&proxy.url), "the registry is named: {err}");
        assert!(err.contains(path), "the request is named: {err}");
        assert!(err.contains(says), "what failed is said: {err}");
        assert!(err.contains("hint:"), "{err}");
        assert!(
            !dir.path()
                .join(format!("store/{id}/manifest.json"))
                .exists(),
            "{id}: a manifest was published"
        );
    }
    matrix::row(
        "registry fails one route past the retries (503, 429, dropped connections) during backup",
        3,
        Tally::default(),
        "backup failed naming the registry, request and status; no manifest",
    );
}

/// A 429 with `Retry-After: 1` for 3.5 s: the client's own backoff (about
/// 3 s at most over its 5 attempts) would give up inside the window.
#[tokio::test(flavor = "multi_thread")]
async fn a_registry_asking_to_wait_with_retry_after_is_waited_for() {
    let sr = Registry::start();
    seed(&sr, 3, 2).await;
    let proxy = HttpProxy::start(&sr.url);
    let dir = tempfile::tempdir().unwrap();
    let cfg = backup_config(dir.path(), "rate-limited", &proxy.url, "");
    proxy.inject(
        Fault::window(Action::Status(429), Duration::from_millis(3500))
            .only("GET", "/subjects/s1/versions"),
    );
    success(&backup(&cfg));
    assert_eq!(
        backed_up(dir.path(), "rate-limited"),
        served(&sr, false).await
    );
    let refused = proxy
        .log()
        .iter()
        .filter(|(_, w)| w == "answered 429")
        .count();
    assert!((2..=4).contains(&refused), "{refused} requests refused");
}

// ---- plan and apply against a target registry that fails for a while ----

/// A restore config for `seeded_backup`'s `b1` into `into`, the target registry at `url`.
fn restore_config_at(dir: &Path, name: &str, topic: &str, into: &str, url: &str) -> PathBuf {
    write(
        dir,
        name,
        &format!(
            "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {topic}: {into}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {url}\n    request_timeout_secs: 1\n    restore:\n      force_register: true\n      strategy: preserve\n      rewrite_ids: true\n",
            bootstrap(),
            dir.join("store").display(),
        ),
    )
}

/// A target registry behind a proxy, and a restore config through it (and
/// one straight to the registry, for `verify`).
struct Target {
    registry: Registry,
    proxy: HttpProxy,
    through_proxy: PathBuf,
    direct: PathBuf,
}

fn target(b: &common::records::SeededBackup, name: &str) -> Target {
    let registry = Registry::start();
    let proxy = HttpProxy::start(&registry.url);
    let into = format!("{}-{name}", b.topic);
    let dir = b.dir.path();
    Target {
        through_proxy: restore_config_at(
            dir,
            &format!("{name}-proxy.yaml"),
            &b.topic,
            &into,
            &proxy.url,
        ),
        direct: restore_config_at(dir, &format!("{name}.yaml"), &b.topic, &into, &registry.url),
        registry,
        proxy,
    }
}

fn apply(cfg: &Path) -> std::process::Output {
    kafka_backup(&["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"])
}

fn plan(cfg: &Path, out: &Path) -> std::process::Output {
    kafka_backup(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
}

fn verify(cfg: &Path) {
    let out = kafka_backup(&["verify", "-c", cfg.to_str().unwrap()]);
    success(&out);
}

async fn seeded() -> common::records::SeededBackup {
    use common::records::*;
    seeded_backup(
        unique("faults-src"),
        (0..30).map(|i| record(i, 3, None)).collect(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_plan_rides_out_short_registry_faults_and_fails_clearly_past_them() {
    let b = seeded().await;
    let t = target(&b, "plan");
    let dir = b.dir.path();
    let clean = dir.join("clean.plan.json");
    success(&plan(&t.through_proxy, &clean));
    let clean = std::fs::read(&clean).unwrap();
    for (name, fault) in spread(&["/schemas", "/subjects"]) {
        let file = dir.join(format!("{name}.plan.json"));
        t.proxy.inject(fault);
        let out = plan(&t.through_proxy, &file);
        t.proxy.clear();
        success(&out);
        assert_eq!(std::fs::read(&file).unwrap(), clean, "{name}");
    }
    // past the retries: an error naming the registry and the request, no plan file
    t.proxy
        .inject(Fault::next(Action::Status(503), 1000).only("GET", "/subjects"));
    let file = dir.join("down.plan.json");
    let out = plan(&t.through_proxy, &file);
    t.proxy.clear();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&t.proxy.url) && err.contains("GET /subjects"),
        "{err}"
    );
    assert!(err.contains("503") && err.contains("hint:"), "{err}");
    assert!(!file.exists(), "a plan was written");
    drop(t.registry);
    matrix::row(
        "registry faults (as for backup) during plan, then one route failing past the retries",
        spread(&["/schemas", "/subjects"]).len() + 1,
        Tally::default(),
        "every plan file byte-identical to the fault-free one; past the retries: an error, no plan file",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_apply_rides_out_short_registry_faults_and_verifies_clean() {
    let b = seeded().await;
    let cases = [
        ("503-any", Fault::next(Action::Status(503), 3)),
        (
            "drop-register",
            Fault::next(Action::Drop, 2).only("POST", "/subjects/"),
        ),
        (
            "timeout-register",
            Fault::next(Action::Delay(Duration::from_millis(1500)), 2).only("POST", "/subjects/"),
        ),
        (
            "429-register",
            Fault::next(Action::Status(429), 3).only("POST", "/subjects/"),
        ),
        (
            "500-config",
            Fault::next(Action::Status(500), 3).only("PUT", "/config"),
        ),
        (
            "drop-lookup",
            Fault::next(Action::Drop, 2).only("POST", "/subjects/payments-value"),
        ),
        (
            "drop-put-back",
            Fault::next(Action::Drop, 2).only("DELETE", "/config"),
        ),
    ];
    for (name, fault) in cases {
        let t = target(&b, name);
        t.proxy.inject(fault);
        let out = apply(&t.through_proxy);
        let hit = t
            .proxy
            .log()
            .iter()
            .filter(|(_, w)| w != "forwarded")
            .count();
        success(&out);
        assert!(
            hit > 0,
            "{name}: the fault never fired: {:#?}\n{}",
            t.proxy.log(),
            stdout(&out)
        );
        verify(&t.direct);
    }
    matrix::row(
        "registry faults on registrations, lookups, level changes and put-backs during apply",
        7,
        Tally::default(),
        "retried; `verify` clean after every apply (registry and records)",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_apply_failing_past_the_retries_stops_clearly_and_a_rerun_finishes() {
    let b = seeded().await;
    let cases = [
        (
            "503-register",
            Fault::next(Action::Status(503), 1000).only("POST", "/subjects/"),
            "503",
        ),
        (
            "drop-register",
            Fault::next(Action::Drop, 1000).only("POST", "/subjects/payments-value"),
            "payments-value",
        ),
        (
            "429-config",
            Fault::next(Action::Status(429), 1000).only("PUT", "/config"),
            "429",
        ),
        (
            "503-put-back",
            Fault::next(Action::Status(503), 1000).only("DELETE", "/config"),
            "503",
        ),
    ];
    for (name, fault, says) in cases {
        let t = target(&b, name);
        t.proxy.inject(fault);
        let out = apply(&t.through_proxy);
        t.proxy.clear();
        let err = stderr(&out);
        eprintln!("{name}:\n{}\n{err}", stdout(&out));
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(says) && err.contains("hint:"), "{name}: {err}");
        // the rerun, once the registry is well again, finishes and verifies clean
        success(&apply(&t.through_proxy));
        verify(&t.direct);
    }
    matrix::row(
        "registry fails registrations, level changes or put-backs past the retries during apply, then rerun",
        4,
        Tally::default(),
        "apply stopped naming the step and a hint; the rerun verified clean",
    );
}

/// The journal is kept per plan, in the backup's storage: the same plan
/// (same backup, same empty target state) applied to a second registry must
/// not be taken as done there because it was done on the first one.
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_applied_to_one_registry_is_applied_again_to_another() {
    let b = seeded().await;
    let first = target(&b, "first");
    success(&apply(&first.direct));
    verify(&first.direct);
    let second = target(&b, "second");
    let printed = success(&apply(&second.direct));
    assert!(!printed.contains("already applied"), "{printed}");
    let (_, subjects) = second.registry.call(Method::GET, "/subjects", None).await;
    assert_eq!(subjects, json!(["orders-value", "payments-value"]));
    verify(&second.direct);
    // and a second apply to it changes nothing
    let printed = success(&apply(&second.direct));
    assert!(printed.contains("No changes"), "{printed}");
    drop(first.proxy);
}

/// The registry did it, the client never heard: every write answered into
/// a closed connection, so the retry finds it done (a registration gives
/// the same ID again, a delete finds the version deleted).
#[tokio::test(flavor = "multi_thread")]
async fn writes_whose_answers_are_lost_are_retried_as_done() {
    let source = Registry::start();
    seed(&source, 3, 3).await;
    for path in ["/subjects/s1/versions/2", "/subjects/s2"] {
        let (status, body) = source.call(Method::DELETE, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = "    backup:\n      include_soft_deleted: true\n";
    success(&backup(&backup_config(
        dir.path(),
        "lost",
        &source.url,
        extra,
    )));
    for (name, fault) in [
        (
            "register",
            Fault::next(Action::DropAnswer, 3).only("POST", "/subjects/s0/versions"),
        ),
        (
            "delete",
            Fault::next(Action::DropAnswer, 3).only("DELETE", "/subjects/"),
        ),
        (
            "config",
            Fault::next(Action::DropAnswer, 3).only("PUT", "/config"),
        ),
        ("any", Fault::next(Action::DropAnswer, 6)),
    ] {
        let target = Registry::start();
        let proxy = HttpProxy::start(&target.url);
        let cfg = |name: &str, url: &str| {
            write(
                dir.path(),
                name,
                &format!(
                    "mode: restore\nbackup_id: lost\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {url}\n    request_timeout_secs: 1\n    restore:\n      force_register: true\n      strategy: preserve\n",
                    dir.path().join("store").display()
                ),
            )
        };
        let through = cfg(&format!("{name}-proxy.yaml"), &proxy.url);
        let direct = cfg(&format!("{name}.yaml"), &target.url);
        proxy.inject(fault);
        let out = kafka_backup(&[
            "apply",
            "-c",
            through.to_str().unwrap(),
            "--auto-approve",
            "--registry-only",
        ]);
        success(&out);
        assert!(
            proxy
                .log()
                .iter()
                .any(|(_, w)| w.starts_with("answer dropped (2")),
            "{name}: no answer was lost: {:?}",
            proxy.log()
        );
        verify(&direct);
        assert_eq!(
            served(&target, true).await,
            served(&source, true).await,
            "{name}"
        );
    }
}

/// `verify` reads the target registry too: short faults do not change its
/// verdict, a registry failing past the retries is an error, never "same".
#[tokio::test(flavor = "multi_thread")]
async fn verify_rides_out_short_registry_faults_and_never_passes_on_a_failing_registry() {
    let b = seeded().await;
    let t = target(&b, "verify");
    success(&apply(&t.direct));
    let verify_through = || kafka_backup(&["verify", "-c", t.through_proxy.to_str().unwrap()]);
    let clean = success(&verify_through());
    // every other one of the spread: each fault once, on the first requests or a route
    for (_, (name, fault)) in spread(&["/schemas/ids", "/subjects", "/config"])
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (i / 2 + i % 2) % 2 == 0)
    {
        t.proxy.inject(fault);
        let out = verify_through();
        t.proxy.clear();
        assert_eq!(success(&out), clean, "{name}");
    }
    for route in ["/schemas/ids", "/subjects", "/config"] {
        t.proxy
            .inject(Fault::next(Action::Status(503), 1000).only("GET", route));
        let out = verify_through();
        t.proxy.clear();
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{route}: {}\n{err}",
            stdout(&out)
        );
        assert!(err.contains(route) && err.contains("503"), "{route}: {err}");
    }
}
