//! The registry adapter against a live registry: each test starts its own
//! `sr-test-registry` (`SR_BIN`, exported by `scripts/test`), seeds exact
//! state through the adapter's write calls, and compares what the adapter
//! reads with what the registry serves to a plain HTTP client.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use kafka_backup::config::{
    self, Auth, AuthKind, Compatibility, IncludeVersions, Protobuf, RegistryBackup, SchemaType,
    Secret, Text, Tls,
};
use kafka_backup::model::{Mode, Reference, RegistrySnapshot, SchemaVersion, ScopeSettings};
use kafka_backup::registry::snapshot::{FetchOptions, fetch_with};
use kafka_backup::registry::{
    self, FetchMethod, HttpRegistry, RegisterRequest, RegistryApi, RegistryError, SchemaInput,
    SchemaRecord, SchemasQuery, VersionRef,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// a registry of our own

/// A running `sr-test-registry`, stopped when dropped.
struct Sr {
    child: Child,
    url: String,
}

impl Sr {
    fn start(args: &[&str]) -> Sr {
        let bin = std::env::var("SR_BIN").unwrap_or_else(|_| {
            panic!(
                "SR_BIN is not set: it must name the `sr-test-registry` binary \
                 (run the suite with `scripts/test`, or `cargo build -p sr-test-registry` and \
                 export SR_BIN=target/debug/sr-test-registry)"
            )
        });
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start SR_BIN `{bin}`: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("reading the registry's first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("`{bin}` did not print `listening on URL` but {line:?}")
            })
            .to_owned();
        Sr { child, url }
    }

    fn config(&self) -> config::SchemaRegistry {
        config::SchemaRegistry {
            enabled: true,
            url: Some(Text(self.url.clone())),
            request_timeout_secs: 10,
            ..Default::default()
        }
    }

    fn client(&self) -> HttpRegistry {
        HttpRegistry::new(&self.config()).expect("client for the test registry")
    }
}

impl Drop for Sr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// a plain HTTP client as the oracle

/// GET `segments` (each percent-encoded by `url`, independently of the adapter).
async fn raw_get(base: &str, segments: &[&str], query: &[(&str, &str)]) -> (u16, Value) {
    let mut url = url::Url::parse(base).unwrap();
    url.path_segments_mut()
        .unwrap()
        .pop_if_empty()
        .extend(segments);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The registry's state as the oracle reads it, one request per item.
async fn served_state(base: &str) -> BTreeMap<String, (Vec<SchemaVersion>, ScopeSettings)> {
    let (_, all) = raw_get(base, &["subjects"], &[("deleted", "true")]).await;
    let mut out = BTreeMap::new();
    for subject in all.as_array().unwrap() {
        let subject = subject.as_str().unwrap();
        let (_, live) = raw_get(base, &["subjects", subject, "versions"], &[]).await;
        let live: BTreeSet<u64> = live
            .as_array()
            .map(|a| a.iter().map(|v| v.as_u64().unwrap()).collect())
            .unwrap_or_default();
        let (_, every) = raw_get(
            base,
            &["subjects", subject, "versions"],
            &[("deleted", "true")],
        )
        .await;
        let mut versions = Vec::new();
        for v in every.as_array().unwrap() {
            let n = v.as_u64().unwrap();
            let (status, r) = raw_get(
                base,
                &["subjects", subject, "versions", &n.to_string()],
                &[("deleted", "true")],
            )
            .await;
            assert_eq!(status, 200, "{subject} v{n}: {r}");
            versions.push(SchemaVersion {
                subject: r["subject"].as_str().unwrap().into(),
                version: r["version"].as_u64().unwrap() as u32,
                id: r["id"].as_u64().unwrap() as u32,
                schema_type: serde_json::from_value(
                    r.get("schemaType").cloned().unwrap_or("AVRO".into()),
                )
                .unwrap(),
                schema: r["schema"].as_str().unwrap().into(),
                references: serde_json::from_value(
                    r.get("references").cloned().unwrap_or(Value::Array(vec![])),
                )
                .unwrap(),
                deleted: !live.contains(&n),
            });
        }
        let (status, c) = raw_get(base, &["config", subject], &[]).await;
        let compatibility = (status == 200)
            .then(|| serde_json::from_value(c["compatibilityLevel"].clone()).unwrap());
        let (status, m) = raw_get(base, &["mode", subject], &[]).await;
        let mode = (status == 200).then(|| serde_json::from_value(m["mode"].clone()).unwrap());
        out.insert(
            subject.to_owned(),
            (
                versions,
                ScopeSettings {
                    compatibility,
                    mode,
                },
            ),
        );
    }
    out
}

fn snapshot_state(
    snap: &RegistrySnapshot,
) -> BTreeMap<String, (Vec<SchemaVersion>, ScopeSettings)> {
    snap.subjects
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                (
                    s.versions.values().cloned().collect(),
                    ScopeSettings {
                        compatibility: s.compatibility,
                        mode: s.mode,
                    },
                ),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// seeding

fn avro(schema: &str, refs: &[(&str, &str, i32)]) -> SchemaInput {
    input(SchemaType::Avro, schema, refs)
}

fn input(schema_type: SchemaType, schema: &str, refs: &[(&str, &str, i32)]) -> SchemaInput {
    SchemaInput {
        schema: schema.into(),
        schema_type,
        references: refs
            .iter()
            .map(|(name, subject, version)| Reference {
                name: (*name).into(),
                subject: (*subject).into(),
                version: *version,
            })
            .collect(),
    }
}

async fn register(api: &HttpRegistry, subject: &str, schema: SchemaInput) -> u32 {
    api.register(
        subject,
        &RegisterRequest {
            schema,
            id: None,
            version: None,
            normalize: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("registering under `{subject}`: {e}"))
    .id
}

fn record(name: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","namespace":"com.x","fields":[{fields}]}}"#)
}

const HOSTILE: [&str; 4] = ["../x", "a/b", "ünïcødé-värde ☃", "50%off?x=1#y"];

fn long_name() -> String {
    format!("long-{}", "x".repeat(295))
}

fn hostile_names() -> Vec<String> {
    let mut names: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    names.push(long_name());
    names
}

/// Avro, JSON and Protobuf subjects; a reference diamond; soft-deleted
/// versions and a soft-deleted subject; a context with its own references;
/// hostile subject names; subject, context and global levels and modes.
async fn seed(api: &HttpRegistry) {
    let id_field = r#"{"name":"id","type":"string"}"#;
    register(api, "common", avro(&record("Common", id_field), &[])).await;
    let c = r#"{"name":"c","type":"com.x.Common"}"#;
    let common = [("com.x.Common", "common", 1)];
    register(api, "left", avro(&record("Left", c), &common)).await;
    register(api, "right", avro(&record("Right", c), &common)).await;
    let lr = r#"{"name":"l","type":"com.x.Left"},{"name":"r","type":"com.x.Right"}"#;
    register(
        api,
        "top",
        avro(
            &record("Top", lr),
            &[("com.x.Left", "left", 1), ("com.x.Right", "right", 1)],
        ),
    )
    .await;

    register(api, "orders-value", avro(&record("Order", id_field), &[])).await;
    let v2 = format!(r#"{id_field},{{"name":"n","type":"int","default":0}}"#);
    register(api, "orders-value", avro(&record("Order", &v2), &[])).await;
    let v3 = format!(r#"{v2},{{"name":"m","type":"int","default":1}}"#);
    register(api, "orders-value", avro(&record("Order", &v3), &[])).await;
    api.delete_version("orders-value", 2, false).await.unwrap();

    register(api, "gone", avro(&record("Gone", id_field), &[])).await;
    api.delete_subject("gone", false).await.unwrap();

    register(
        api,
        "json-value",
        input(
            SchemaType::Json,
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            &[],
        ),
    )
    .await;
    register(
        api,
        "money",
        input(
            SchemaType::Protobuf,
            "syntax = \"proto3\";\npackage p;\nmessage Money { int64 units = 1; }\n",
            &[],
        ),
    )
    .await;
    register(
        api,
        "payment",
        input(
            SchemaType::Protobuf,
            "syntax = \"proto3\";\npackage p;\nimport \"money.proto\";\nmessage Payment { Money total = 1; }\n",
            &[("money.proto", "money", 1)],
        ),
    )
    .await;

    register(api, ":.ctx:common", avro(&record("Common", id_field), &[])).await;
    register(
        api,
        ":.ctx:orders",
        avro(&record("CtxOrder", c), &[("com.x.Common", "common", 1)]),
    )
    .await;

    for (i, name) in hostile_names().iter().enumerate() {
        let fields = format!(r#"{{"name":"f{i}","type":"long"}}"#);
        register(api, name, avro(&record(&format!("H{i}"), &fields), &[])).await;
    }

    api.set_config(Some("orders-value"), Compatibility::Full)
        .await
        .unwrap();
    api.set_config(Some("a/b"), Compatibility::None)
        .await
        .unwrap();
    api.set_mode(Some("json-value"), Mode::ReadOnly, false)
        .await
        .unwrap();
    api.set_config(Some(":.ctx:"), Compatibility::ForwardTransitive)
        .await
        .unwrap();
    api.set_config(None, Compatibility::BackwardTransitive)
        .await
        .unwrap();
}

fn everything() -> RegistryBackup {
    RegistryBackup {
        include_soft_deleted: true,
        ..RegistryBackup::default()
    }
}

fn options(page_size: usize) -> FetchOptions {
    FetchOptions {
        concurrency: 4,
        page_size,
    }
}

// ---------------------------------------------------------------------------------------
// reading

#[tokio::test]
async fn snapshot_equals_what_the_registry_serves() {
    let sr = Sr::start(&[]);
    let api = sr.client();
    seed(&api).await;
    let before = api.request_count();
    let (snap, report) = fetch_with(
        &api,
        &everything(),
        &Protobuf::default(),
        None,
        options(1000),
    )
    .await
    .unwrap();
    let used = api.request_count() - before;

    assert_eq!(snapshot_state(&snap), served_state(&sr.url).await);
    assert_eq!(report.method, FetchMethod::Bulk);
    assert!(report.fallback_subjects.is_empty());
    assert_eq!(report.api_calls, used);
    let subjects = snap.subjects.len() as u64;
    assert_eq!(subjects, 16);
    // 7 fixed (the mode probe included) + 2 live pages + 2 deleted pages + 2
    // version lists (live, all) per subject + 2 settings per subject + 2 for `.ctx`
    assert_eq!(used, 7 + 4 + 2 * subjects + 2 * subjects + 2);

    assert_eq!(
        snap.global.compatibility,
        Some(Compatibility::BackwardTransitive)
    );
    assert_eq!(snap.global.mode, Some(Mode::ReadWrite));
    assert_eq!(
        snap.contexts,
        BTreeSet::from([".".to_owned(), ".ctx".to_owned()])
    );
    assert_eq!(
        snap.context_settings[".ctx"],
        ScopeSettings {
            compatibility: Some(Compatibility::ForwardTransitive),
            mode: None
        }
    );
    assert_eq!(
        snap.server_version.as_deref(),
        Some("7.9.0-sr-test-registry")
    );
    let orders = &snap.subjects["orders-value"];
    assert_eq!(
        orders
            .versions
            .values()
            .map(|v| (v.version, v.deleted))
            .collect::<Vec<_>>(),
        [(1, false), (2, true), (3, false)]
    );
    assert_eq!(orders.compatibility, Some(Compatibility::Full));
    assert_eq!(snap.subjects["json-value"].mode, Some(Mode::ReadOnly));
    assert!(snap.subjects["gone"].versions[&1].deleted);
    assert_eq!(
        snap.subjects["payment"].versions[&1].schema_type,
        SchemaType::Protobuf
    );
    assert_eq!(
        snap.subjects["json-value"].versions[&1].schema_type,
        SchemaType::Json
    );
    for name in hostile_names() {
        assert!(snap.subjects.contains_key(&name), "{name}");
    }
    assert_eq!(
        snap.subjects["a/b"].compatibility,
        Some(Compatibility::None)
    );

    // paging through small pages reads the same state
    let (paged, report) = fetch_with(&api, &everything(), &Protobuf::default(), None, options(3))
        .await
        .unwrap();
    assert_eq!(paged, snap);
    assert_eq!(paged.fingerprint(), snap.fingerprint());
    assert_eq!(report.method, FetchMethod::Bulk);
}

#[tokio::test]
async fn default_selection_leaves_soft_deleted_versions_out() {
    let sr = Sr::start(&[]);
    let api = sr.client();
    seed(&api).await;
    let (snap, report) = registry::fetch(
        &api,
        &RegistryBackup::default(),
        &Protobuf::default(),
        None,
        8,
    )
    .await
    .unwrap();
    assert!(!snap.subjects.contains_key("gone"));
    assert_eq!(
        snap.subjects["orders-value"]
            .versions
            .keys()
            .collect::<Vec<_>>(),
        [&1, &3]
    );
    assert!(
        snap.subjects
            .values()
            .flat_map(|s| s.versions.values())
            .all(|v| !v.deleted)
    );
    assert!(report.pulled_in.is_empty());
    assert!(report.missing_references.is_empty());

    let latest = RegistryBackup {
        include_versions: IncludeVersions::Latest,
        ..RegistryBackup::default()
    };
    let (snap, _) = registry::fetch(&api, &latest, &Protobuf::default(), None, 8)
        .await
        .unwrap();
    assert_eq!(
        snap.subjects["orders-value"]
            .versions
            .keys()
            .collect::<Vec<_>>(),
        [&3]
    );
}

#[tokio::test]
async fn references_are_pulled_in_with_their_reason() {
    let sr = Sr::start(&[]);
    let api = sr.client();
    seed(&api).await;
    let backup = RegistryBackup {
        subjects: config::OneOrMany(vec![
            config::Glob::new("top").unwrap(),
            config::Glob::new(":.ctx:orders").unwrap(),
            config::Glob::new("pay*").unwrap(),
        ]),
        ..RegistryBackup::default()
    };
    let (snap, report) = registry::fetch(&api, &backup, &Protobuf::default(), None, 4)
        .await
        .unwrap();
    assert_eq!(
        snap.subjects.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            ":.ctx:common",
            ":.ctx:orders",
            "common",
            "left",
            "money",
            "payment",
            "right",
            "top"
        ]
    );
    let reasons: Vec<String> = report
        .pulled_in
        .iter()
        .map(|p| {
            let by: Vec<String> = p
                .referenced_by
                .iter()
                .map(|r| format!("{}@{} as {}", r.subject, r.version, r.name))
                .collect();
            format!("{}@{} <- {}", p.subject, p.version, by.join(", "))
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ":.ctx:common@1 <- :.ctx:orders@1 as com.x.Common",
            "common@1 <- left@1 as com.x.Common, right@1 as com.x.Common",
            "left@1 <- top@1 as com.x.Left",
            "money@1 <- payment@1 as money.proto",
            "right@1 <- top@1 as com.x.Right",
        ]
    );
    assert_eq!(
        report.selected,
        BTreeSet::from([":.ctx:orders".into(), "payment".into(), "top".into()])
    );

    // only Protobuf: the Avro diamond goes, the Protobuf reference stays
    let (snap, _) = registry::fetch(
        &api,
        &backup,
        &Protobuf::default(),
        Some(&[SchemaType::Protobuf]),
        4,
    )
    .await
    .unwrap();
    assert_eq!(
        snap.subjects.keys().map(String::as_str).collect::<Vec<_>>(),
        ["money", "payment"]
    );
}

/// Hides the bulk listing (entirely, or some subjects of it) to exercise
/// the one-by-one reading.
struct NoBulk<'a> {
    inner: &'a HttpRegistry,
    hide: Option<fn(&str) -> bool>,
}

#[async_trait::async_trait]
impl RegistryApi for NoBulk<'_> {
    async fn subjects(&self, deleted: bool) -> registry::Result<Vec<String>> {
        self.inner.subjects(deleted).await
    }
    async fn versions(&self, subject: &str, deleted: bool) -> registry::Result<Vec<u32>> {
        self.inner.versions(subject, deleted).await
    }
    async fn version(
        &self,
        subject: &str,
        version: VersionRef,
        deleted: bool,
    ) -> registry::Result<SchemaRecord> {
        self.inner.version(subject, version, deleted).await
    }
    async fn schemas_page(&self, query: &SchemasQuery) -> registry::Result<Vec<SchemaRecord>> {
        match self.hide {
            None => Err(RegistryError::EndpointNotFound(Box::new(
                registry::Failure {
                    method: "GET".into(),
                    path: "/schemas".into(),
                    status: Some(404),
                    code: Some(404),
                    message: "HTTP 404 Not Found".into(),
                    attempts: 1,
                },
            ))),
            Some(hide) => {
                let mut page = self.inner.schemas_page(query).await?;
                page.retain(|r| !hide(&r.subject));
                Ok(page)
            }
        }
    }
    async fn config(&self, scope: Option<&str>) -> registry::Result<Option<Compatibility>> {
        self.inner.config(scope).await
    }
    async fn mode(&self, scope: Option<&str>) -> registry::Result<Option<Mode>> {
        self.inner.mode(scope).await
    }
    async fn contexts(&self) -> registry::Result<Vec<String>> {
        self.inner.contexts().await
    }
    async fn server_version(&self) -> registry::Result<Option<String>> {
        self.inner.server_version().await
    }
    async fn register(
        &self,
        subject: &str,
        request: &RegisterRequest,
    ) -> registry::Result<registry::Registered> {
        self.inner.register(subject, request).await
    }
    async fn lookup(
        &self,
        subject: &str,
        schema: &SchemaInput,
        normalize: bool,
        deleted: bool,
    ) -> registry::Result<Option<SchemaRecord>> {
        self.inner.lookup(subject, schema, normalize, deleted).await
    }
    async fn check_compatibility(
        &self,
        subject: &str,
        version: VersionRef,
        schema: &SchemaInput,
    ) -> registry::Result<registry::CompatibilityCheck> {
        self.inner
            .check_compatibility(subject, version, schema)
            .await
    }
    async fn set_config(&self, scope: Option<&str>, level: Compatibility) -> registry::Result<()> {
        self.inner.set_config(scope, level).await
    }
    async fn delete_config(&self, scope: Option<&str>) -> registry::Result<()> {
        self.inner.delete_config(scope).await
    }
    async fn set_mode(&self, scope: Option<&str>, mode: Mode, force: bool) -> registry::Result<()> {
        self.inner.set_mode(scope, mode, force).await
    }
    async fn delete_mode(&self, scope: Option<&str>) -> registry::Result<()> {
        self.inner.delete_mode(scope).await
    }
    async fn delete_subject(&self, subject: &str, permanent: bool) -> registry::Result<Vec<u32>> {
        self.inner.delete_subject(subject, permanent).await
    }
    async fn delete_version(
        &self,
        subject: &str,
        version: u32,
        permanent: bool,
    ) -> registry::Result<u32> {
        self.inner.delete_version(subject, version, permanent).await
    }
}

#[tokio::test]
async fn reading_one_by_one_gives_the_same_snapshot() {
    let sr = Sr::start(&[]);
    let api = sr.client();
    seed(&api).await;
    let (bulk, _) = fetch_with(
        &api,
        &everything(),
        &Protobuf::default(),
        None,
        options(1000),
    )
    .await
    .unwrap();

    let no_bulk = NoBulk {
        inner: &api,
        hide: None,
    };
    let before = api.request_count();
    let (one_by_one, report) = fetch_with(
        &no_bulk,
        &everything(),
        &Protobuf::default(),
        None,
        options(1000),
    )
    .await
    .unwrap();
    assert_eq!(report.method, FetchMethod::PerSubject);
    assert_eq!(one_by_one.fingerprint(), bulk.fingerprint());
    assert_eq!(one_by_one, bulk);
    let subjects = bulk.subjects.len() as u64;
    let versions = bulk.version_count() as u64;
    // 7 fixed + 2 listings and 2 settings per subject + 1 per version + 2 for `.ctx`
    // (the refused bulk page is not sent to the server)
    assert_eq!(
        api.request_count() - before,
        7 + 4 * subjects + versions + 2
    );
    assert_eq!(report.api_calls, 7 + 1 + 4 * subjects + versions + 2);

    // a bulk listing that misses subjects (as without contexts): those are read one by one
    let partial = NoBulk {
        inner: &api,
        hide: Some(|s| s.starts_with(":.") || s.contains('/')),
    };
    let (mixed, report) = fetch_with(
        &partial,
        &everything(),
        &Protobuf::default(),
        None,
        options(1000),
    )
    .await
    .unwrap();
    assert_eq!(report.method, FetchMethod::Mixed);
    assert_eq!(
        report.fallback_subjects,
        BTreeSet::from([
            ":.ctx:common".into(),
            ":.ctx:orders".into(),
            "../x".into(),
            "a/b".into()
        ])
    );
    assert_eq!(mixed, bulk);
}

#[tokio::test]
async fn hostile_subject_names_round_trip() {
    let sr = Sr::start(&[]);
    let api = sr.client();
    for (i, name) in hostile_names().iter().enumerate() {
        let fields = format!(r#"{{"name":"f{i}","type":"long"}}"#);
        let id = register(&api, name, avro(&record(&format!("H{i}"), &fields), &[])).await;
        assert_eq!(api.versions(name, false).await.unwrap(), [1], "{name}");
        let r = api.version(name, VersionRef::Latest, false).await.unwrap();
        assert_eq!((r.subject.as_str(), r.id), (name.as_str(), id));
        api.set_mode(Some(name), Mode::ReadOnly, false)
            .await
            .unwrap();
        assert_eq!(api.mode(Some(name)).await.unwrap(), Some(Mode::ReadOnly));
        // the oracle addresses the same subject
        let (status, body) = raw_get(&sr.url, &["subjects", name, "versions", "1"], &[]).await;
        assert_eq!((status, body["id"].as_u64()), (200, Some(u64::from(id))));
    }
    let listed: BTreeSet<String> = api.subjects(false).await.unwrap().into_iter().collect();
    assert_eq!(listed, hostile_names().into_iter().collect());
    // `..` would be rewritten by every URL parser: refused before sending
    let err = api.versions("..", false).await.unwrap_err();
    assert!(matches!(err, RegistryError::UnaddressableSubject(_)));
    let err = api.versions("", false).await.unwrap_err();
    assert!(matches!(err, RegistryError::UnaddressableSubject(_)));
}

// ---------------------------------------------------------------------------------------
// writing

#[tokio::test]
async fn write_calls_and_their_errors() {
    let sr = Sr::start(&[]);
    let api = sr.client();
    let v1 = avro(&record("W", r#"{"name":"a","type":"int"}"#), &[]);
    let id = register(&api, "w", v1.clone()).await;

    // lookup: found, and absent as `None`
    let found = api.lookup("w", &v1, false, false).await.unwrap().unwrap();
    assert_eq!((found.version, found.id), (1, id));
    let other = avro(&record("W", r#"{"name":"b","type":"string"}"#), &[]);
    assert_eq!(api.lookup("w", &other, false, false).await.unwrap(), None);
    assert_eq!(api.lookup("nope", &v1, false, false).await.unwrap(), None);

    // compatibility: an incompatible change is reported, and refused on registration
    let check = api
        .check_compatibility("w", VersionRef::Latest, &other)
        .await
        .unwrap();
    assert!(!check.is_compatible);
    let err = api
        .register(
            "w",
            &RegisterRequest {
                schema: other.clone(),
                id: None,
                version: None,
                normalize: false,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Incompatible(_)), "{err:?}");
    assert_eq!((err.status(), err.error_code()), (Some(409), Some(40901)));
    assert!(
        err.to_string().starts_with(
            "schema is incompatible: `POST /subjects/w/versions` (http 409, error_code 40901)"
        ),
        "{err}"
    );

    // an id outside IMPORT mode: 42205, then IMPORT mode with forced id and version
    let imported = RegisterRequest {
        schema: other.clone(),
        id: Some(100),
        version: Some(7),
        normalize: false,
    };
    let err = api.register("imp", &imported).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotPermitted(_)), "{err:?}");
    assert!(err.to_string().contains("hint: check `GET /mode`"));
    api.set_mode(Some("imp"), Mode::Import, false)
        .await
        .unwrap();
    let registered = api.register("imp", &imported).await.unwrap();
    assert_eq!(registered.id, 100);
    let r = api
        .version("imp", VersionRef::Number(7), false)
        .await
        .unwrap();
    assert_eq!((r.id, r.version), (100, 7));
    api.delete_mode(Some("imp")).await.unwrap();
    assert_eq!(api.mode(Some("imp")).await.unwrap(), None);

    // config set and delete
    api.set_config(Some("w"), Compatibility::None)
        .await
        .unwrap();
    assert_eq!(
        api.config(Some("w")).await.unwrap(),
        Some(Compatibility::None)
    );
    api.delete_config(Some("w")).await.unwrap();
    assert_eq!(api.config(Some("w")).await.unwrap(), None);

    // deletes: permanent needs soft first
    let err = api.delete_version("w", 1, true).await.unwrap_err();
    assert!(matches!(err, RegistryError::DeleteOrder(_)), "{err:?}");
    assert_eq!(api.delete_version("w", 1, false).await.unwrap(), 1);
    assert_eq!(api.versions("w", true).await.unwrap(), [1]);
    assert_eq!(api.delete_version("w", 1, true).await.unwrap(), 1);
    let err = api.versions("w", true).await.unwrap_err();
    assert!(matches!(err, RegistryError::SubjectNotFound(_)), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "subject not found: `GET /subjects/w/versions?deleted=true` (http 404, error_code 40401)"
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\nhint: "));
    assert_eq!(api.delete_subject("imp", false).await.unwrap(), [7]);
    assert_eq!(api.delete_subject("imp", true).await.unwrap(), [7]);
}

// ---------------------------------------------------------------------------------------
// authentication and TLS

fn with_auth(sr: &Sr, auth: Auth) -> HttpRegistry {
    HttpRegistry::new(&config::SchemaRegistry {
        auth: Some(auth),
        ..sr.config()
    })
    .unwrap()
}

fn auth(kind: AuthKind) -> Auth {
    Auth {
        kind,
        username: None,
        password: None,
        token: None,
        token_url: None,
        client_id: None,
        client_secret: None,
        scope: None,
        token_insecure_skip_verify: None,
    }
}

#[tokio::test]
async fn basic_auth_right_and_wrong() {
    let sr = Sr::start(&["--basic-auth", "admin:Pa55-w0rd"]);
    let right = with_auth(
        &sr,
        Auth {
            username: Some(Text("admin".into())),
            password: Some(Secret::new("Pa55-w0rd")),
            ..auth(AuthKind::Basic)
        },
    );
    assert_eq!(right.subjects(false).await.unwrap(), Vec::<String>::new());

    let wrong = with_auth(
        &sr,
        Auth {
            username: Some(Text("admin".into())),
            password: Some(Secret::new("not-the-Pa55")),
            ..auth(AuthKind::Basic)
        },
    );
    let err = wrong.subjects(true).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "registry refused the credentials for `GET /subjects?deleted=true` (http 401, error_code 401): Unauthorized\n\
         hint: check `enterprise.schema_registry.auth` (type, username, password or token)"
    );
    assert_eq!(wrong.request_count(), 1, "a 401 is not retried");
    let everything = format!("{err} {err:?} {wrong:?} {right:?}");
    assert!(!everything.contains("not-the-Pa55") && !everything.contains("Pa55-w0rd"));

    let none = sr.client();
    assert!(matches!(
        none.contexts().await.unwrap_err(),
        RegistryError::Unauthorized(_)
    ));
}

#[tokio::test]
async fn bearer_token_right_and_wrong() {
    let sr = Sr::start(&["--bearer-token", "tok-XYZ"]);
    let bearer = |t: &str| {
        with_auth(
            &sr,
            Auth {
                token: Some(Secret::new(t)),
                ..auth(AuthKind::Bearer)
            },
        )
    };
    register(&bearer("tok-XYZ"), "s", avro(&record("S", ""), &[])).await;
    let wrong = bearer("tok-nope");
    let err = wrong
        .version("s", VersionRef::Latest, false)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("`GET /subjects/s/versions/latest` (http 401")
    );
    assert!(!format!("{err} {err:?} {wrong:?}").contains("tok-nope"));
}

/// A token endpoint on a raw socket, handing out `token` and counting requests.
async fn token_endpoint(
    token: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = stream.read(&mut buf).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body =
                format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, hits)
}

#[tokio::test]
async fn oauth_client_credentials_against_the_registry() {
    let sr = Sr::start(&["--bearer-token", "issued-by-idp"]);
    let (token_url, hits) = token_endpoint("issued-by-idp").await;
    let api = with_auth(
        &sr,
        Auth {
            token_url: Some(Text(token_url)),
            client_id: Some(Text("kafka-backup".into())),
            client_secret: Some(Secret::new("client-secret-value")),
            scope: Some(Text("schema-registry".into())),
            ..auth(AuthKind::Oauth)
        },
    );
    register(&api, "o", avro(&record("O", ""), &[])).await;
    let (snap, _) = registry::fetch(
        &api,
        &RegistryBackup::default(),
        &Protobuf::default(),
        None,
        4,
    )
    .await
    .unwrap();
    assert_eq!(snap.subjects.len(), 1);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one token for every request"
    );
    assert!(!format!("{api:?}").contains("client-secret-value"));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // a name of its own: two CAs of one name make a refusal read `BadSignature`
        static CAS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("kafka-backup test CA {n}"),
        );
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["kafka-backup".into()]).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kafka-backup");
        let client = client_params.signed_by(&client_key, &issuer).unwrap();

        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());
        write("server.pem", server.pem());
        write("server.key", server_key.serialize_pem());
        write("client.pem", client.pem());
        write("client.key", client_key.serialize_pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn tls(&self, ca: bool, client: bool) -> Tls {
        Tls {
            ca_cert: ca.then(|| Text(self.path("ca.pem"))),
            client_cert: client.then(|| Text(self.path("client.pem"))),
            client_key: client.then(|| Text(self.path("client.key"))),
            insecure_skip_verify: false,
        }
    }
}

fn with_tls(sr: &Sr, tls: Tls) -> HttpRegistry {
    HttpRegistry::new(&config::SchemaRegistry {
        tls: Some(tls),
        ..sr.config()
    })
    .unwrap()
    .with_retry_policy(registry::RetryPolicy {
        max_attempts: 2,
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(10),
    })
}

#[tokio::test]
async fn tls_is_verified_against_the_configured_ca() {
    let pki = Pki::new();
    let sr = Sr::start(&[
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server.key"),
    ]);
    assert!(sr.url.starts_with("https://127.0.0.1:"), "{}", sr.url);

    let trusted = with_tls(&sr, pki.tls(true, false));
    register(&trusted, "t", avro(&record("T", ""), &[])).await;
    assert_eq!(trusted.subjects(false).await.unwrap(), ["t"]);

    // the system roots do not know our CA
    let untrusted = with_tls(&sr, Tls::default());
    let err = untrusted.subjects(false).await.unwrap_err();
    assert!(matches!(err, RegistryError::Connect(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot reach the registry: `GET /subjects`"),
        "{err}"
    );

    // ... unless verification is turned off by name
    let insecure = with_tls(
        &sr,
        Tls {
            insecure_skip_verify: true,
            ..Tls::default()
        },
    );
    assert_eq!(insecure.subjects(false).await.unwrap(), ["t"]);
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let sr = Sr::start(&[
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server.key"),
        "--tls-client-ca",
        &pki.path("ca.pem"),
    ]);
    let with_cert = with_tls(&sr, pki.tls(true, true));
    assert_eq!(with_cert.contexts().await.unwrap(), ["."]);
    let without = with_tls(&sr, pki.tls(true, false));
    let err = without.contexts().await.unwrap_err();
    assert!(matches!(err, RegistryError::Connect(_)), "{err:?}");

    // unreadable key material is a configuration error naming the key
    let err = HttpRegistry::new(&config::SchemaRegistry {
        tls: Some(Tls {
            client_key: Some(Text(pki.path("missing.key"))),
            ..pki.tls(true, true)
        }),
        ..sr.config()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid registry configuration `enterprise.schema_registry.tls.client_key`: cannot read"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// the OAuth token endpoint's own TLS client

/// What a token endpoint saw: connections tried, and the body of every
/// request that reached it (after a completed TLS handshake).
#[derive(Default)]
struct TokenSeen {
    connections: std::sync::atomic::AtomicU32,
    bodies: std::sync::Mutex<Vec<String>>,
}

impl TokenSeen {
    fn connections(&self) -> u32 {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// One HTTP request's body (head up to `\r\n\r\n`, then `content-length` bytes).
async fn read_body(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&buf[head_end..]).into_owned())
}

/// A token endpoint over HTTPS with the certificate and key of `pki`
/// (for 127.0.0.1), handing out `token`.
async fn tls_token_endpoint(pki: &Pki, token: &'static str) -> (String, std::sync::Arc<TokenSeen>) {
    use tokio::io::AsyncWriteExt;
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let certs = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/oauth2/token", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(TokenSeen::default());
    let state = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            state
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (acceptor, state) = (acceptor.clone(), state.clone());
            tokio::spawn(async move {
                // a client that refuses the certificate ends here: no request, no secret
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let Some(body) = read_body(&mut stream).await else {
                    return;
                };
                state.bodies.lock().unwrap().push(body);
                let answer = format!(
                    r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, seen)
}

/// A registry over HTTPS (certificate of `pki`) that wants the bearer token `token`.
fn tls_registry_wanting(pki: &Pki, token: &str) -> Sr {
    Sr::start(&[
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server.key"),
        "--bearer-token",
        token,
    ])
}

fn oauth(token_url: &str, skip_verify: Option<bool>) -> Auth {
    Auth {
        token_url: Some(Text(token_url.into())),
        client_id: Some(Text("kafka-backup".into())),
        client_secret: Some(Secret::new("client-secret-value")),
        token_insecure_skip_verify: skip_verify,
        ..auth(AuthKind::Oauth)
    }
}

#[tokio::test]
async fn the_registry_skip_verify_does_not_reach_the_token_endpoint() {
    let registry_pki = Pki::new();
    let unknown_pki = Pki::new(); // a CA nobody trusts
    let sr = tls_registry_wanting(&registry_pki, "issued-by-idp");
    let (token_url, seen) = tls_token_endpoint(&unknown_pki, "issued-by-idp").await;
    let client = |skip_verify: Option<bool>| {
        HttpRegistry::new(&config::SchemaRegistry {
            tls: Some(Tls {
                insecure_skip_verify: true,
                ..Tls::default()
            }),
            auth: Some(oauth(&token_url, skip_verify)),
            ..sr.config()
        })
        .unwrap()
    };

    for skip_verify in [None, Some(false)] {
        let api = client(skip_verify);
        let err = api.subjects(false).await.unwrap_err();
        assert!(matches!(err, RegistryError::Token(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("cannot get an oauth token: `POST /oauth2/token`: connection failed"),
            "{text}"
        );
        assert!(
            text.contains("invalid peer certificate: UnknownIssuer")
                && text.contains("checked against the system's CAs and `tls.ca_cert`, whatever `tls.insecure_skip_verify` says"),
            "{text}"
        );
        assert!(!format!("{text} {err:?}").contains("client-secret-value"));
    }
    assert!(seen.connections() >= 2, "the handshakes were tried");
    assert_eq!(
        seen.bodies(),
        Vec::<String>::new(),
        "no request, and no client secret, reached an unverified token endpoint"
    );

    // said for the token URL itself
    let api = client(Some(true));
    assert_eq!(api.subjects(false).await.unwrap(), Vec::<String>::new());
    let bodies = seen.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0].contains("client_secret=client-secret-value"),
        "{bodies:?}"
    );
}

#[tokio::test]
async fn the_token_endpoint_trusts_the_registry_ca() {
    let pki = Pki::new();
    let sr = tls_registry_wanting(&pki, "issued-by-idp");
    // an identity provider with a certificate of the registry's private CA
    let (token_url, seen) = tls_token_endpoint(&pki, "issued-by-idp").await;
    let api = HttpRegistry::new(&config::SchemaRegistry {
        tls: Some(pki.tls(true, false)),
        auth: Some(oauth(&token_url, None)),
        ..sr.config()
    })
    .unwrap();
    register(&api, "t", avro(&record("T", ""), &[])).await;
    assert_eq!(api.subjects(false).await.unwrap(), ["t"]);
    assert_eq!(seen.bodies().len(), 1, "one token for both requests");
}

/// The system's CAs cannot be changed in a test, but the process's view of
/// them can: `SSL_CERT_FILE` replaces the system store for the
/// `kafka-backup` binary run here (a registry-only backup).
#[tokio::test]
async fn the_token_endpoint_trusts_the_system_cas_besides_the_registry_ca() {
    let registry_pki = Pki::new();
    let public_pki = Pki::new(); // stands for a public CA, in the "system" store
    let sr = tls_registry_wanting(&registry_pki, "issued-by-idp");
    let seed = HttpRegistry::new(&config::SchemaRegistry {
        tls: Some(registry_pki.tls(true, false)),
        auth: Some(Auth {
            token: Some(Secret::new("issued-by-idp")),
            ..auth(AuthKind::Bearer)
        }),
        ..sr.config()
    })
    .unwrap();
    register(&seed, "s", avro(&record("S", ""), &[])).await;
    let (public_idp, public_seen) = tls_token_endpoint(&public_pki, "issued-by-idp").await;
    let (private_idp, private_seen) = tls_token_endpoint(&registry_pki, "issued-by-idp").await;

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let backup = |id: &str, token_url: &str, system_cas: &std::path::Path| {
        let cfg = dir.path().join(format!("{id}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "backup_id: {id}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    request_timeout_secs: 10\n    tls:\n      ca_cert: {}\n    auth:\n      type: oauth\n      token_url: {token_url}\n      client_id: kafka-backup\n      client_secret: client-secret-value\n",
                dir.path().join("store").display(),
                sr.url,
                registry_pki.path("ca.pem"),
            ),
        )
        .unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
            .args(["backup", "-c", cfg.to_str().unwrap()])
            .env("KAFKA_BACKUP_LOG", "warn")
            .env("SSL_CERT_FILE", system_cas)
            .env_remove("SSL_CERT_DIR")
            .output()
    };
    let show = |out: &std::process::Output| {
        format!(
            "status {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    // a token endpoint with a certificate of a CA the system trusts
    let public_ca = std::path::PathBuf::from(public_pki.path("ca.pem"));
    let out = backup("public-idp", &public_idp, &public_ca).await.unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(public_seen.bodies().len(), 1);
    // ... or of the registry's CA, the system's CAs still there
    let out = backup("private-idp", &private_idp, &public_ca)
        .await
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(private_seen.bodies().len(), 1);
    // a system store without the public CA: refused before the secret is sent
    let out = backup("no-public-ca", &public_idp, &empty).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = show(&out);
    assert!(
        text.contains("cannot get an oauth token: `POST /oauth2/token`: connection failed")
            && text.contains("invalid peer certificate: UnknownIssuer"),
        "{text}"
    );
    assert!(!text.contains("client-secret-value"), "{text}");
    assert_eq!(public_seen.bodies().len(), 1, "no new request");
}

// ---------------------------------------------------------------------------------------
// cost

/// Requests for a snapshot of N subjects, for the benchmark's record.
#[tokio::test]
async fn request_count_grows_with_subjects_not_versions() {
    let sr = Sr::start(&[]);
    let api = sr.client();
    let n = 40u64;
    for i in 0..n {
        for v in 0..3 {
            let mut fields = String::from(r#"{"name":"a","type":"int"}"#);
            for f in 0..v {
                fields.push_str(&format!(r#",{{"name":"f{f}","type":"int","default":0}}"#));
            }
            register(
                &api,
                &format!("s{i:03}"),
                avro(&record(&format!("R{i}"), &fields), &[]),
            )
            .await;
        }
    }
    let before = api.request_count();
    let (snap, report) = registry::fetch(
        &api,
        &RegistryBackup::default(),
        &Protobuf::default(),
        None,
        8,
    )
    .await
    .unwrap();
    let used = api.request_count() - before;
    assert_eq!(snap.version_count() as u64, 3 * n);
    // 6 fixed (the mode probe included) + 2 pages (120 entries, then an empty
    // page) + 1 version list per subject (the cross-check of the bulk listing)
    // + 2 settings per subject
    assert_eq!(used, 6 + 2 + n + 2 * n);
    assert_eq!(report.api_calls, used);
    eprintln!(
        "snapshot of {n} subjects / {} versions: {used} requests (bulk)",
        snap.version_count()
    );
}
