//! Shared by the end-to-end tests: the live test ground that `scripts/test`
//! starts (broker, registry), unique names, and the binary under test.
#![allow(dead_code)]

pub mod broker;
pub mod matrix;
pub mod records;
pub mod secrets;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// A variable of the test ground; its absence fails the test with a hint.
pub fn ground(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("`{name}` is not set: run the tests through `scripts/test`, which starts the broker and the registry")
    })
}

pub fn bootstrap() -> String {
    ground("KAFKA_BOOTSTRAP")
}

/// A name no other test (or earlier run on the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `python tests/clients/<script>` with the test ground's Python (the
/// independent clients), not yet run.
pub fn python_client(script: &str) -> Command {
    let mut command = Command::new(ground("KB_PYTHON"));
    command.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients")
            .join(script),
    );
    command
}

/// Runs `tests/clients/<script> ARGS`, which must succeed; gives the JSON it
/// printed.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = python_client(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script} {args:?} printed no JSON ({e}):\n{}", stdout(&out)))
}

/// Runs the `kafka-backup` binary.
pub fn kafka_backup(args: &[&str]) -> Output {
    kafka_backup_with_env(args, &[])
}

/// Runs the `kafka-backup` binary with extra environment variables.
pub fn kafka_backup_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(args)
        .env("KAFKA_BACKUP_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("the kafka-backup binary runs")
}

/// Starts the `kafka-backup` binary with its output piped, under `wrapper`
/// (a command and its arguments, e.g. `unshare --pid --fork`) if given.
pub fn spawn_kafka_backup(wrapper: &[&str], args: &[&str]) -> std::process::Child {
    let bin = env!("CARGO_BIN_EXE_kafka-backup");
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    command
        .args(args)
        .env("KAFKA_BACKUP_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM to process `pid`, as a scheduler stopping it does.
pub fn terminate(pid: &str) {
    let sent = Command::new("kill").args(["-TERM", pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
}

/// A new bucket of the test ground's S3 server (named from `prefix`): its
/// endpoint and name.
pub async fn s3_bucket(prefix: &str) -> (String, String) {
    let endpoint = ground("S3_ENDPOINT");
    let bucket = unique(prefix).to_lowercase();
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "creating bucket: {}",
        created.status()
    );
    (endpoint, bucket)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and gives stdout, printing both streams when it failed.
pub fn success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kafka-backup failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c.set("receive.message.max.bytes", "2147483647");
    c
}

/// Creates a topic that keeps old timestamps (the test broker enforces
/// retention at once).
pub async fn create_topic(name: &str, partitions: i32, extra: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().unwrap();
    let mut topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1");
    for (k, v) in extra {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic `{t}`: {e}"));
    }
}

/// A fresh test registry of our own (the `SR_BIN` that `scripts/test` exports),
/// for tests that need exact state; stopped when dropped.
pub struct Registry {
    child: std::process::Child,
    pub url: String,
    /// The `Authorization` header [`Registry::call`] sends, for a registry
    /// started with `--basic-auth` or `--bearer-token`.
    pub authorization: Option<String>,
}

impl Registry {
    /// A fresh test registry speaking Confluent's dialect.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A fresh test registry speaking `dialect` (`confluent`, `karapace-3.16`: see
    /// `tests/registry/src/dialect.rs`).
    pub fn start_dialect(dialect: &str) -> Self {
        Self::start_with(&["--dialect", dialect])
    }

    /// A registry started with extra flags (`--basic-auth USER:PASSWORD`,
    /// `--bearer-token TOKEN`, `--dialect DIALECT`).
    pub fn start_with(args: &[&str]) -> Self {
        use std::io::BufRead;
        let bin = ground("SR_BIN");
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting `{bin}`: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the registry: {line:?}"))
            .to_owned();
        Self {
            child,
            url,
            authorization: None,
        }
    }

    /// Sends a request and gives the status and the JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json");
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Registers a schema and gives its ID, failing the test otherwise.
    pub async fn register(&self, subject: &str, body: serde_json::Value) -> u64 {
        let path = format!("/subjects/{}/versions", encode(subject));
        let (status, reply) = self.call(reqwest::Method::POST, &path, Some(body)).await;
        assert_eq!(status, 200, "registering under `{subject}`: {reply}");
        reply["id"].as_u64().unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a path segment (subject names are arbitrary text).
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Seeds `sr` with exactly the state of a fixture snapshot, IDs and versions
/// included (IMPORT mode).
pub async fn seed_from_fixture(sr: &Registry, fixture: &kafka_backup::model::RegistrySnapshot) {
    use serde_json::json;
    let (status, body) = sr
        .call(
            reqwest::Method::PUT,
            "/mode",
            Some(json!({"mode": "IMPORT"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for subject in fixture.subjects.values() {
        for v in subject.versions.values() {
            let mut body = json!({"schema": v.schema, "id": v.id, "version": v.version, "references": v.references});
            if v.schema_type != kafka_backup::model::SchemaType::Avro {
                body["schemaType"] = json!(kafka_backup::model::schema_type_name(v.schema_type));
            }
            sr.register(&v.subject, body).await;
        }
    }
    let (status, body) = sr
        .call(
            reqwest::Method::PUT,
            "/mode",
            Some(json!({"mode": "READWRITE"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Seeds a fresh source registry with the `shifted-ids` fixture (the reference
/// page's example: IDs 1, 5, 2) and backs it up (registry only) as
/// `seed-example` under `dir/store`.
pub async fn backup_of_fixture(dir: &Path) -> (Registry, kafka_backup::model::RegistrySnapshot) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: kafka_backup::model::RegistrySnapshot = serde_json::from_slice(
        &std::fs::read(root.join("fixtures/plan/shifted-ids/backup.json")).unwrap(),
    )
    .unwrap();
    let source = Registry::start();
    seed_from_fixture(&source, &fixture).await;
    backup_registry(dir, "seed-example", &source.url);
    (source, fixture)
}

/// Backs up the registry at `url` alone as `backup_id` under `dir/store`.
pub fn backup_registry(dir: &Path, backup_id: &str, url: &str) {
    let cfg = write(
        dir,
        &format!("{backup_id}-backup.yaml"),
        &format!(
            // no `source`: a registry-only backup
            "backup_id: {backup_id}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {url}\n",
            dir.join("store").display(),
        ),
    );
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
}

/// A restore configuration for the `seed-example` backup into `target`, with
/// `force_register: true` (the temporary level `NONE` these tests check; the
/// default is tested in `tests/force_register_e2e.rs`).
pub fn restore_config(dir: &Path, name: &str, target: &str) -> PathBuf {
    write(
        dir,
        name,
        &format!(
            "mode: restore\nbackup_id: seed-example\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {target}\n    restore:\n      strategy: preserve\n      rewrite_ids: true\n      force_register: true\n",
            dir.join("store").display()
        ),
    )
}
