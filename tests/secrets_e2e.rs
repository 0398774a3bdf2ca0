//! Issue 10: no credential reaches any output. Known, distinctive test
//! credentials (registry basic auth, a static bearer token, an OAuth client
//! secret and the token it buys, secret librdkafka properties, secret storage
//! options) are planted in the configurations and the environment; every
//! command runs at `-vvv` (librdkafka with `debug: conf,security,broker`: it
//! logs its whole configuration), on its success and its failure paths; then every stdout, every stderr and every file the runs
//! left (the backup folder with its segments, manifests, leases, plan and
//! journal files, ID maps; the plan files) is searched for each credential in
//! clear, JSON-escaped, URL-encoded, base64 and hex (`common::secrets`).
//! A hit fails the test naming the output or file and the secret, never its
//! value. The configuration files themselves hold the secrets and are kept
//! out of the scanned folders.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::records::*;
use common::secrets::{Scanner, base64_padded, secret_core, test_secret};
use common::*;

// ---------------------------------------------------------------------------
// The scanner can fail the test: a planted secret is found in every form.
// ---------------------------------------------------------------------------

#[test]
fn the_scanner_finds_a_planted_secret_in_every_form() {
    let password = test_secret("scanner-check");
    let mut scanner = Scanner::new();
    scanner.add_basic("the password", "kb-user", &password);

    let json = serde_json::to_string(&serde_json::json!({ "password": password })).unwrap();
    let url: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
    let header = format!(
        "authorization: Basic {}",
        base64_padded(format!("kb-user:{password}").as_bytes())
    );
    let mut cases = vec![
        ("clear".to_owned(), format!("error: `{password}` refused")),
        ("json".to_owned(), json),
        (
            "form".to_owned(),
            format!("grant_type=x&client_secret={url}"),
        ),
        ("basic header".to_owned(), header),
        (
            "core only".to_owned(),
            format!("…{}…", secret_core("scanner-check")),
        ),
    ];
    // inside a longer base64 text, at each of the three alignments
    for lead in ["", "a", "ab"] {
        cases.push((
            format!("base64 after {} byte(s)", lead.len()),
            base64_padded(format!("{lead}{password} and more").as_bytes()),
        ));
    }
    for (what, text) in &cases {
        let hits = scanner.scan(what, text.as_bytes());
        assert!(!hits.is_empty(), "the scanner missed the secret in: {what}");
        for hit in &hits {
            let shown = hit.to_string();
            assert!(
                !shown.contains(&secret_core("scanner-check")),
                "a hit shows the secret"
            );
            assert!(
                shown.starts_with(&format!("{what}: the password")),
                "{shown}"
            );
        }
    }
    // and nothing where it is not
    let clean = "error: the registry answered 401 for `kb-user` (the password is not shown)";
    assert_eq!(scanner.scan("clean", clean.as_bytes()), vec![]);
    assert_eq!(
        scanner.scan("another run's secret", test_secret("other").as_bytes()),
        vec![]
    );
}

#[test]
fn the_scanner_walks_a_folder_and_names_the_file() {
    let secret = test_secret("folder-check");
    let mut scanner = Scanner::new();
    scanner.add("the token", &secret);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("b1/topics")).unwrap();
    std::fs::write(dir.path().join("b1/manifest.json"), b"{\"clean\": true}").unwrap();
    std::fs::write(
        dir.path().join("b1/topics/seg.bin"),
        [&[0u8, 1, 2][..], secret.as_bytes(), &[0xff]].concat(),
    )
    .unwrap();
    let (hits, files) = scanner.scan_dir(dir.path());
    assert_eq!(files, 2);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].origin.ends_with("seg.bin"), "{}", hits[0]);
    assert_eq!(hits[0].secret, "the token");
}

// ---------------------------------------------------------------------------
// The harness: runs at -vvv, keeps every output, masks secrets when it
// has to show an output, scans at the end.
// ---------------------------------------------------------------------------

/// The planted secrets and every output of the runs.
struct Leaks {
    scanner: Scanner,
    /// Secret values, to mask them in the messages of a failing test.
    values: Vec<(String, String)>,
    outputs: Vec<(String, Vec<u8>)>,
}

impl Leaks {
    fn new() -> Self {
        Self {
            scanner: Scanner::new(),
            values: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Plants a fresh [`test_secret`] named `name` and gives its value.
    fn secret(&mut self, name: &str, what: &str) -> String {
        let value = test_secret(what);
        self.plant(name, &value);
        value
    }

    /// Plants a value chosen by the caller.
    fn plant(&mut self, name: &str, value: &str) {
        self.scanner.add(name, value);
        self.values.push((name.to_owned(), value.to_owned()));
    }

    fn basic(&mut self, name: &str, user: &str, password: &str) {
        self.scanner.add_basic(name, user, password);
        self.values.push((name.to_owned(), password.to_owned()));
    }

    /// `text` with every planted secret (and its head) replaced by its name.
    fn mask(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (name, value) in &self.values {
            text = text.replace(value, &format!("[{name}]"));
            if let Some(core) = value.split('/').next() {
                text = text.replace(core, &format!("[{name}]"));
            }
        }
        text
    }

    /// Runs `kafka-backup -vvv ARGS` with `env` on top of the inherited
    /// environment (`KAFKA_BACKUP_LOG` removed: `-vvv` decides), and keeps
    /// both streams for the scan.
    fn run(&mut self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
            .arg("-vvv")
            .args(args)
            .env_remove("KAFKA_BACKUP_LOG")
            .envs(env.iter().copied())
            .output()
            .expect("the kafka-backup binary runs");
        let label = format!("`kafka-backup -vvv {}`", args.join(" "));
        self.outputs
            .push((format!("{label} stdout"), out.stdout.clone()));
        self.outputs
            .push((format!("{label} stderr"), out.stderr.clone()));
        out
    }

    /// [`Leaks::run`], which must succeed.
    fn ok(&mut self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "`kafka-backup -vvv {}` failed ({}); its output, secrets masked:\n{}",
            args.join(" "),
            out.status,
            self.tail(&out)
        );
        out
    }

    /// [`Leaks::run`], which must fail (exit 1) and say `expected` on stderr.
    fn fails(&mut self, args: &[&str], env: &[(&str, &str)], expected: &str) -> Output {
        let out = self.run(args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(1) && err.contains(expected),
            "`kafka-backup -vvv {}` should have failed with `{expected}` ({}); its output, secrets masked:\n{}",
            args.join(" "),
            out.status,
            self.tail(&out)
        );
        out
    }

    /// The end of both streams, secrets masked (a -vvv log is long).
    fn tail(&self, out: &Output) -> String {
        let tail = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        self.mask(&format!(
            "stdout:\n{}\nstderr (last 40 lines):\n{}",
            tail(&out.stdout),
            tail(&out.stderr)
        ))
    }

    /// Scans every output and every file under `dirs`; fails listing the
    /// hits (where, which secret, in which form).
    fn assert_clean(&self, dirs: &[&Path]) {
        let mut hits = Vec::new();
        for (label, bytes) in &self.outputs {
            hits.extend(self.scanner.scan(label, bytes));
        }
        let mut files = 0;
        for dir in dirs {
            let (found, n) = self.scanner.scan_dir(dir);
            hits.extend(found);
            files += n;
        }
        let listed: Vec<String> = hits.iter().map(|h| format!("  {h}")).collect();
        assert!(
            hits.is_empty(),
            "{} credential leak(s) in {} output(s) and {files} file(s):\n{}",
            hits.len(),
            self.outputs.len(),
            listed.join("\n")
        );
        eprintln!(
            "scanned {} output(s) and {files} file(s) for {} secret(s): {}",
            self.outputs.len(),
            self.scanner.secrets().len(),
            self.scanner.secrets().join(", ")
        );
    }
}

/// A YAML single-quoted string.
fn q(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The secret librdkafka properties of one side (`source` or `target`),
/// planted, as YAML lines indented by 4. `debug` makes librdkafka log its
/// whole configuration, its security (SASL, SSL) and broker events at `-vvv`
/// (`all` would add every protocol request: tens of MB, nothing more of the
/// configuration).
fn kafka_properties(leaks: &mut Leaks, side: &str) -> String {
    let mut yaml = "    debug: conf,security,broker\n".to_owned();
    for key in ["sasl.password", "ssl.key.password", "ssl.keystore.password"] {
        let value = leaks.secret(
            &format!("{side}.properties.{key}"),
            &format!("{side}-{key}"),
        );
        yaml.push_str(&format!("    {key}: {}\n", q(&value)));
    }
    let secret = leaks.secret(
        &format!("{side}.properties.sasl.oauthbearer.config"),
        &format!("{side}-oauthbearer-config"),
    );
    yaml.push_str(&format!(
        "    sasl.oauthbearer.config: {}\n",
        q(&format!("principal=kb-user secret={secret}"))
    ));
    yaml
}

/// Secret `object_store` options, planted, as a `storage:` block for a local
/// folder (which takes no credentials: they must still show nowhere).
fn storage_block(leaks: &mut Leaks, store: &Path) -> String {
    let mut yaml = format!("storage:\n  path: {}\n  options:\n", store.display());
    for key in [
        "aws_secret_access_key",
        "aws_session_token",
        "google_service_account_key",
        "azure_storage_account_key",
    ] {
        let value = leaks.secret(&format!("storage.options.{key}"), key);
        yaml.push_str(&format!("    {key}: {}\n", q(&value)));
    }
    yaml
}

/// A tiny HTTP/1.1 server on its own thread: `answer(request head, body)`
/// gives the status and the JSON body of each answer. Gives its base URL and
/// the number of requests served.
fn http_server(
    answer: impl Fn(&str, &[u8]) -> (u16, String) + Send + 'static,
) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let Some((head, body)) = read_request(&mut stream) else {
                continue;
            };
            let (status, body) = answer(&head, &body);
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (url, hits)
}

fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// An OAuth token endpoint: a client-credentials request with `client_secret`
/// gets `access_token`; any other gets 401 `invalid_client`.
fn token_endpoint(client_secret: &str, access_token: &str) -> (String, Arc<AtomicU32>) {
    let client_secret = client_secret.to_owned();
    let token = serde_json::to_string(access_token).unwrap();
    let (base, hits) = http_server(move |_, body| {
        let presented = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "client_secret")
            .map(|(_, v)| v.into_owned());
        if presented.as_deref() == Some(client_secret.as_str()) {
            (
                200,
                format!(r#"{{"access_token":{token},"token_type":"Bearer","expires_in":3600}}"#),
            )
        } else {
            (
                401,
                r#"{"error":"invalid_client","error_description":"client authentication failed"}"#
                    .to_owned(),
            )
        }
    });
    (format!("{base}/oauth2/token"), hits)
}

/// A URL on which nothing listens.
fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixture() -> kafka_backup::model::RegistrySnapshot {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(
        &std::fs::read(root.join("fixtures/plan/shifted-ids/backup.json")).unwrap(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------
// Every command, on its success path
// ---------------------------------------------------------------------------

/// Backup (registry with basic auth, one with a static bearer token), describe,
/// list, plan, show, apply (registry and topics, the target registry behind
/// OAuth) and verify, every output format, all at `-vvv` with librdkafka's
/// configuration dump on: no planted credential shows anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn every_command_at_trace_level_leaks_no_credential() {
    let mut leaks = Leaks::new();
    let basic_password = test_secret("basic-password");
    leaks.basic("registry basic auth password", "kb-user", &basic_password);
    let static_token = leaks.secret("registry bearer token", "bearer-token");
    let client_secret = leaks.secret("registry OAuth client_secret", "oauth-client-secret");
    let access_token = leaks.secret("registry OAuth access token", "oauth-access-token");

    // the source registry takes basic auth and the static token, the target
    // only the token the OAuth endpoint issues for the client secret
    let basic_flag = format!("kb-user:{basic_password}");
    let mut source =
        Registry::start_with(&["--basic-auth", &basic_flag, "--bearer-token", &static_token]);
    source.authorization = Some(format!("Bearer {static_token}"));
    seed_from_fixture(&source, &fixture()).await;
    let target = Registry::start_with(&["--bearer-token", &access_token]);
    let (token_url, token_requests) = token_endpoint(&client_secret, &access_token);

    let topic = unique("secrets-orders");
    let restored = format!("{topic}-restored");
    create_topic(&topic, 3, &[]).await;
    let records: Vec<Rec> = (0..30).map(|i| record(i, 3, None)).collect();
    produce(&topic, &records).await;

    // scanned: the store and the plans; not scanned: the configurations
    let scanned = tempfile::tempdir().unwrap();
    let store = scanned.path().join("store");
    let plans = scanned.path().join("plans");
    std::fs::create_dir_all(&plans).unwrap();
    let configs = tempfile::tempdir().unwrap();

    let source_properties = kafka_properties(&mut leaks, "source");
    let target_properties = kafka_properties(&mut leaks, "target");
    let storage = storage_block(&mut leaks, &store);
    let backup_cfg = write(
        configs.path(),
        "backup.yaml",
        &format!(
            "backup_id: b1\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\n  properties:\n{source_properties}{storage}enterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    auth:\n      type: basic\n      username: kb-user\n      password: {}\n",
            bootstrap(),
            source.url,
            q(&basic_password),
        ),
    );
    // a registry-only backup with the static token
    let bearer_cfg = write(
        configs.path(),
        "registry-only.yaml",
        &format!(
            "backup_id: b2\n{storage}enterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    auth:\n      type: bearer\n      token: {}\n",
            source.url,
            q(&static_token),
        ),
    );
    let restore_cfg = write(
        configs.path(),
        "restore.yaml",
        &format!(
            "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {topic}: {restored}\n  properties:\n{target_properties}{storage}enterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n    auth:\n      type: oauth\n      token_url: {token_url}\n      client_id: kafka-backup\n      client_secret: {}\n      scope: schema-registry\n    restore:\n      force_register: true\n      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {{key: always, value: always}}\n",
            bootstrap(),
            target.url,
            q(&client_secret),
        ),
    );
    let (backup_cfg, bearer_cfg, restore_cfg) =
        (path(&backup_cfg), path(&bearer_cfg), path(&restore_cfg));
    let store_path = path(&store);
    let plan_file = plans.join("plan.json");
    let plan_file = path(&plan_file);

    for cfg in [backup_cfg, bearer_cfg, restore_cfg] {
        let printed = leaks.ok(&["validate", "-c", cfg], &[]);
        assert!(
            String::from_utf8_lossy(&printed.stdout).contains("<redacted>"),
            "validate redacts the secrets"
        );
        leaks.ok(&["validate", "-c", cfg, "--format", "json"], &[]);
    }

    let backup = leaks.ok(&["backup", "-c", backup_cfg], &[]);
    // librdkafka printed its configuration (`debug: conf`) into what is scanned
    let log = String::from_utf8_lossy(&backup.stderr);
    assert!(
        log.contains("sasl.password = [redacted]"),
        "librdkafka dumped its configuration"
    );
    leaks.ok(&["backup", "-c", bearer_cfg], &[]);

    for id in ["b1", "b2"] {
        let base = ["describe", "--path", store_path, "--backup-id", id];
        leaks.ok(&base, &[]);
        leaks.ok(&[&base[..], &["--format", "json"]].concat(), &[]);
        leaks.ok(&[&base[..], &["--verify-files"]].concat(), &[]);
    }
    leaks.ok(&["list", "--path", store_path], &[]);
    leaks.ok(&["list", "--path", store_path, "--format", "json"], &[]);

    leaks.ok(&["plan", "-c", restore_cfg], &[]);
    leaks.ok(&["plan", "-c", restore_cfg, "--format", "json"], &[]);
    leaks.ok(&["plan", "-c", restore_cfg, "--format", "markdown"], &[]);
    leaks.ok(&["plan", "-c", restore_cfg, "--check-compatibility"], &[]);
    leaks.ok(&["plan", "-c", restore_cfg, "-o", plan_file], &[]);
    for format in ["text", "json", "markdown"] {
        leaks.ok(&["show", plan_file, "--format", format], &[]);
    }

    leaks.ok(&["apply", "-c", restore_cfg, "--dry-run"], &[]);
    leaks.ok(&["apply", plan_file, "-c", restore_cfg, "--dry-run"], &[]);
    leaks.ok(&["apply", plan_file, "-c", restore_cfg], &[]);
    assert_eq!(
        consume_all(&restored, 3)
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        30,
        "the restore wrote every record"
    );

    let verified = leaks.ok(&["verify", "-c", restore_cfg], &[]);
    assert!(String::from_utf8_lossy(&verified.stdout).contains("the target matches the backup"));
    leaks.ok(&["verify", "-c", restore_cfg, "--format", "json"], &[]);
    leaks.ok(&["offsets", "-c", restore_cfg], &[]);
    leaks.ok(&["offsets", "-c", restore_cfg, "--format", "json"], &[]);
    // after the restore: a plan with nothing to do, a list with its journal
    leaks.ok(&["plan", "-c", restore_cfg, "--format", "json"], &[]);
    leaks.ok(&["list", "--path", store_path, "--format", "json"], &[]);
    leaks.ok(&["put-back", "-c", restore_cfg, "--dry-run"], &[]);
    leaks.ok(&["put-back", "-c", restore_cfg], &[]);

    assert!(
        token_requests.load(Ordering::SeqCst) > 0,
        "the OAuth endpoint was asked for a token"
    );
    assert!(
        std::fs::read_dir(&store).unwrap().count() >= 2,
        "the store holds the backups"
    );
    leaks.assert_clean(&[scanned.path()]);
}

// ---------------------------------------------------------------------------
// Failure paths
// ---------------------------------------------------------------------------

/// A refused credential (401 on basic, bearer and OAuth, at the token
/// endpoint and at the registry), an unreachable registry or token endpoint,
/// a registry that answers 500, configuration errors in secret values, a
/// secret from `${ENV}`, a misspelled secret Kafka property, a storage that
/// cannot be opened: the errors name what failed, never the credential.
#[tokio::test(flavor = "multi_thread")]
async fn failures_leak_no_credential() {
    let mut leaks = Leaks::new();
    // the registry's password is given through the environment only
    let env_password = leaks.secret("registry password from ${KB_TEST_PASSWORD}", "env-password");
    let wrong_password = leaks.secret("a wrong registry password", "wrong-password");
    let wrong_token = leaks.secret("a wrong bearer token", "wrong-token");
    let client_secret = leaks.secret("OAuth client_secret", "oauth-client-secret");
    let wrong_client_secret = leaks.secret("a wrong OAuth client_secret", "wrong-client-secret");
    let refused_token = leaks.secret("an OAuth token the registry refuses", "refused-token");
    let basic_flag = format!("kb-user:{env_password}");
    let registry = Registry::start_with(&["--basic-auth", &basic_flag]);
    let good_token = leaks.secret("the second registry's bearer token", "good-token");
    let bearer_registry = Registry::start_with(&["--bearer-token", &good_token]);
    // a token endpoint whose tokens the registry refuses
    let (stale_token_url, _) = token_endpoint(&client_secret, &refused_token);
    // a registry that answers 500 to everything
    let (failing_registry, failing_hits) = http_server(|_, _| {
        (
            500,
            r#"{"error_code":50001,"message":"Error in the backend data store"}"#.to_owned(),
        )
    });
    let unreachable = closed_url();

    let scanned = tempfile::tempdir().unwrap();
    let store = scanned.path().join("store");
    let configs = tempfile::tempdir().unwrap();
    let storage = storage_block(&mut leaks, &store);
    let env = [("KB_TEST_PASSWORD", env_password.as_str())];
    let mut n = 0;
    let mut config = |text: String| -> String {
        n += 1;
        let name = if text.starts_with('[') {
            format!("c{n}.toml")
        } else {
            format!("c{n}.yaml")
        };
        path(&write(configs.path(), &name, &text)).to_owned()
    };
    let sr = |url: &str, auth: &str| {
        format!(
            "enterprise:\n  schema_registry:\n    enabled: true\n    url: {url}\n    request_timeout_secs: 5\n    auth: {auth}\n"
        )
    };
    let basic = |password: &str| {
        format!(
            "{{type: basic, username: kb-user, password: {}}}",
            q(password)
        )
    };
    let oauth = |token_url: &str, secret: &str| {
        format!(
            "{{type: oauth, token_url: '{token_url}', client_id: kafka-backup, client_secret: {}}}",
            q(secret)
        )
    };
    let restore = |sr_block: String| format!("mode: restore\nbackup_id: b1\n{storage}{sr_block}");

    // a secret from the environment works, and shows nowhere
    let cfg = config(format!(
        "backup_id: b1\n{storage}{}",
        sr(
            &registry.url,
            "{type: basic, username: kb-user, password: '${KB_TEST_PASSWORD}'}"
        )
    ));
    leaks.ok(&["validate", "-c", &cfg], &env);
    leaks.ok(&["backup", "-c", &cfg], &env);

    // 401: a wrong password, a wrong static token, a wrong client secret,
    // a token the registry refuses (fetched again, refused again)
    let cfg = config(format!(
        "backup_id: b2\n{storage}{}",
        sr(&registry.url, &basic(&wrong_password))
    ));
    leaks.fails(&["backup", "-c", &cfg], &[], "401");
    let cfg = config(restore(sr(
        &bearer_registry.url,
        &format!("{{type: bearer, token: {}}}", q(&wrong_token)),
    )));
    leaks.fails(&["plan", "-c", &cfg], &[], "401");
    leaks.fails(
        &["apply", "-c", &cfg, "--registry-only", "--auto-approve"],
        &[],
        "401",
    );
    let (token_url, _) = token_endpoint(&client_secret, &good_token);
    let cfg = config(restore(sr(
        &bearer_registry.url,
        &oauth(&token_url, &wrong_client_secret),
    )));
    leaks.fails(&["plan", "-c", &cfg], &[], "invalid_client");
    let cfg = config(restore(sr(
        &bearer_registry.url,
        &oauth(&stale_token_url, &client_secret),
    )));
    leaks.fails(&["plan", "-c", &cfg], &[], "401");

    // unreachable: the registry, the token endpoint
    let cfg = config(format!(
        "backup_id: b3\n{storage}{}",
        sr(&unreachable, &basic(&env_password))
    ));
    leaks.fails(&["backup", "-c", &cfg], &[], "error");
    let cfg = config(restore(sr(
        &bearer_registry.url,
        &oauth(&format!("{unreachable}/token"), &client_secret),
    )));
    leaks.fails(&["plan", "-c", &cfg], &[], "error");

    // a registry that answers 500, with basic auth and with a token
    let cfg = config(format!(
        "backup_id: b4\n{storage}{}",
        sr(&failing_registry, &basic(&env_password))
    ));
    leaks.fails(&["backup", "-c", &cfg], &[], "500");
    let cfg = config(restore(sr(
        &failing_registry,
        &format!("{{type: bearer, token: {}}}", q(&good_token)),
    )));
    leaks.fails(&["plan", "-c", &cfg], &[], "500");
    assert!(failing_hits.load(Ordering::SeqCst) > 0);

    // configuration errors in secret values: an unclosed `${`, an invalid
    // reference, in a password, a token, a client secret, a librdkafka
    // property, a storage option
    let unclosed = leaks.secret("a password with an unclosed ${", "unclosed");
    let cfg = config(format!(
        "backup_id: b5\n{storage}{}",
        sr(&registry.url, &basic(&format!("{unclosed}${{OPEN")))
    ));
    leaks.fails(&["validate", "-c", &cfg], &[], "unclosed");
    leaks.fails(&["backup", "-c", &cfg], &[], "unclosed");
    let invalid = leaks.secret("a token with an invalid ${...}", "invalid-reference");
    let cfg = config(restore(sr(
        &bearer_registry.url,
        &format!(
            "{{type: bearer, token: {}}}",
            q(&format!("{invalid}${{1{invalid}}}"))
        ),
    )));
    leaks.fails(
        &["validate", "-c", &cfg],
        &[],
        "not a valid environment variable reference",
    );
    leaks.fails(
        &["plan", "-c", &cfg],
        &[],
        "not a valid environment variable reference",
    );
    let in_secret = leaks.secret(
        "a client secret with an unclosed ${",
        "unclosed-client-secret",
    );
    let cfg = config(restore(sr(
        &bearer_registry.url,
        &oauth(&token_url, &format!("{in_secret}${{")),
    )));
    leaks.fails(&["validate", "-c", &cfg], &[], "unclosed");
    let in_property = leaks.secret(
        "a librdkafka property with an unclosed ${",
        "unclosed-property",
    );
    let cfg = config(format!(
        "source:\n  bootstrap_servers: [{}]\n  properties:\n    sasl.password: {}\n",
        bootstrap(),
        q(&format!("{in_property}${{X"))
    ));
    leaks.fails(&["validate", "-c", &cfg], &[], "unclosed");
    let in_option = leaks.secret("a storage option with an unclosed ${", "unclosed-option");
    let cfg = config(format!(
        "storage:\n  path: {}\n  options:\n    aws_secret_access_key: {}\n",
        store.display(),
        q(&format!("{in_option}${{X"))
    ));
    leaks.fails(&["validate", "-c", &cfg], &[], "unclosed");

    // a secret of the wrong type (TOML has numbers): the type error must not
    // quote it
    let numeric: String = (0..18)
        .map(|_| char::from(b'1' + fastrand::u8(..9)))
        .collect();
    leaks.plant("a numeric password in TOML", &numeric);
    let cfg = config(format!(
        "[enterprise.schema_registry]\nurl = \"{}\"\n\n[enterprise.schema_registry.auth]\ntype = \"basic\"\nusername = \"kb-user\"\npassword = {numeric}\n",
        registry.url
    ));
    leaks.fails(&["validate", "-c", &cfg], &[], "password");
    leaks.fails(&["backup", "-c", &cfg], &[], "password");
    let numeric_property: String = (0..18)
        .map(|_| char::from(b'1' + fastrand::u8(..9)))
        .collect();
    leaks.plant("a numeric librdkafka property in TOML", &numeric_property);
    let cfg = config(format!(
        "[source]\nbootstrap_servers = \"{}\"\n\n[source.properties]\n\"sasl.password\" = {numeric_property}\n",
        bootstrap()
    ));
    leaks.fails(&["validate", "-c", &cfg], &[], "sasl.password");

    // credentials in a URL's user info: the registry URL, the OAuth token
    // URL, the S3 endpoint, librdkafka's OAuth token endpoint
    for (name, what) in [
        ("a password in the registry URL", "url-password"),
        ("a password in the token URL", "token-url-password"),
        ("a password in the S3 endpoint", "endpoint-password"),
        (
            "a password in librdkafka's token endpoint URL",
            "rdkafka-url-password",
        ),
    ] {
        // URL-safe: user info holds no `/`
        let password = secret_core(what);
        leaks.plant(name, &password);
    }
    let userinfo = |what: &str| format!("kb-user:{}@", secret_core(what));
    let cfg = config(sr(
        &registry
            .url
            .replace("http://", &format!("http://{}", userinfo("url-password"))),
        "{type: none}",
    ));
    leaks.fails(&["validate", "-c", &cfg], &[], "credentials");
    leaks.fails(&["backup", "-c", &cfg], &[], "credentials");
    let cfg = config(restore(sr(
        &bearer_registry.url,
        &oauth(
            &token_url.replace(
                "http://",
                &format!("http://{}", userinfo("token-url-password")),
            ),
            &client_secret,
        ),
    )));
    leaks.fails(&["validate", "-c", &cfg], &[], "credentials");
    leaks.fails(&["plan", "-c", &cfg], &[], "credentials");
    let cfg = config(format!(
        "storage:\n  backend: s3\n  bucket: kb\n  endpoint: http://{}127.0.0.1:9\n",
        userinfo("endpoint-password")
    ));
    leaks.fails(&["validate", "-c", &cfg], &[], "credentials");
    // librdkafka's own URL property is passed on as it is, but not printed
    let cfg = config(format!(
        "source:\n  bootstrap_servers: [{}]\n  properties:\n    sasl.oauthbearer.token.endpoint.url: http://{}127.0.0.1:9/token\n",
        bootstrap(),
        userinfo("rdkafka-url-password")
    ));
    leaks.ok(&["validate", "-c", &cfg], &[]);

    // a secret librdkafka property under a misspelled name: librdkafka
    // refuses it, on the backup side and on the restore side
    let misspelled = leaks.secret(
        "a misspelled source.properties.sasl.pasword",
        "misspelled-source",
    );
    let cfg = config(format!(
        "backup_id: b6\nsource:\n  bootstrap_servers: [{}]\n  properties:\n    sasl.pasword: {}\n{storage}",
        bootstrap(),
        q(&misspelled)
    ));
    leaks.fails(&["backup", "-c", &cfg], &[], "sasl.pasword");
    // a secret property this build of librdkafka lacks (OIDC needs libcurl)
    let unsupported = leaks.secret(
        "source.properties.sasl.oauthbearer.client.secret",
        "unsupported",
    );
    let cfg = config(format!(
        "backup_id: b6\nsource:\n  bootstrap_servers: [{}]\n  properties:\n    sasl.oauthbearer.client.secret: {}\n{storage}",
        bootstrap(),
        q(&unsupported)
    ));
    leaks.fails(
        &["backup", "-c", &cfg],
        &[],
        "sasl.oauthbearer.client.secret",
    );
    let misspelled = leaks.secret(
        "a misspelled target.properties.ssl.key.pasword",
        "misspelled-target",
    );
    let cfg = config(format!(
        "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [{}]\n  properties:\n    ssl.key.pasword: {}\n{storage}",
        bootstrap(),
        q(&misspelled)
    ));
    leaks.fails(
        &["apply", "-c", &cfg, "--auto-approve"],
        &[],
        "ssl.key.pasword",
    );
    leaks.fails(&["verify", "-c", &cfg], &[], "ssl.key.pasword");

    // a storage that cannot be opened: its folder would be under a file
    let file = scanned.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let blocked = storage_block(&mut leaks, &file.join("store"));
    let cfg = config(format!(
        "backup_id: b7\n{blocked}{}",
        sr(
            &registry.url,
            "{type: basic, username: kb-user, password: '${KB_TEST_PASSWORD}'}"
        )
    ));
    leaks.fails(&["backup", "-c", &cfg], &env, "error");
    leaks.fails(
        &[
            "describe",
            "--path",
            path(&file.join("store")),
            "--backup-id",
            "b1",
        ],
        &env,
        "error",
    );

    leaks.assert_clean(&[scanned.path()]);
}

// ---------------------------------------------------------------------------
// S3 storage credentials
// ---------------------------------------------------------------------------

/// Secret S3 options (`aws_secret_access_key`, `aws_session_token`) in the
/// configuration and in the environment, on an S3-compatible server: backup,
/// describe, list and a failing backup (no such bucket) show neither.
#[tokio::test(flavor = "multi_thread")]
async fn s3_credentials_leak_nowhere() {
    let mut leaks = Leaks::new();
    let secret_key = leaks.secret("aws_secret_access_key", "aws-secret-access-key");
    let session_token = leaks.secret("aws_session_token", "aws-session-token");
    let (endpoint, bucket) = s3_bucket("kb-secrets").await;
    let topic = unique("secrets-s3");
    create_topic(&topic, 2, &[]).await;
    produce(
        &topic,
        &(0..10).map(|i| record(i, 2, None)).collect::<Vec<_>>(),
    )
    .await;

    let configs = tempfile::tempdir().unwrap();
    let storage = |bucket: &str| {
        format!(
            "storage:\n  backend: s3\n  bucket: {bucket}\n  prefix: nightly\n  endpoint: {endpoint}\n  allow_http: true\n  region: us-east-1\n  options:\n    aws_access_key_id: kb-test-access-key\n    aws_secret_access_key: {}\n    aws_session_token: {}\n",
            q(&secret_key),
            q(&session_token)
        )
    };
    let backup = |id: &str, bucket: &str| {
        format!(
            "backup_id: {id}\nsource:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{topic}\"]\n{}",
            bootstrap(),
            storage(bucket)
        )
    };
    let cfg = write(configs.path(), "s3.yaml", &backup("s3-1", &bucket));
    let missing = write(
        configs.path(),
        "missing.yaml",
        &backup("s3-2", &format!("{bucket}-missing")),
    );
    let (cfg, missing) = (path(&cfg), path(&missing));

    leaks.ok(&["validate", "-c", cfg], &[]);
    leaks.ok(&["validate", "-c", cfg, "--format", "json"], &[]);
    leaks.ok(&["backup", "-c", cfg], &[]);
    // describe and list read the credentials from the usual variables
    let env = [
        ("AWS_ACCESS_KEY_ID", "kb-test-access-key"),
        ("AWS_SECRET_ACCESS_KEY", secret_key.as_str()),
        ("AWS_SESSION_TOKEN", session_token.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let url = format!("s3://{bucket}/nightly");
    let described = leaks.ok(
        &[
            "describe",
            "--path",
            &url,
            "--backup-id",
            "s3-1",
            "--format",
            "json",
            "--verify-files",
        ],
        &env,
    );
    let d: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(d["records"], 10);
    leaks.ok(&["list", "--path", &url], &env);
    leaks.fails(&["backup", "-c", missing], &[], "error");
    leaks.fails(
        &[
            "describe",
            "--path",
            &format!("s3://{bucket}-missing/x"),
            "--backup-id",
            "s3-1",
        ],
        &env,
        "error",
    );
    leaks.assert_clean(&[]);
}
