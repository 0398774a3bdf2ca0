//! Shared helpers for the black-box conformance suite.
//!
//! The suite talks HTTP to whatever registry `SR_URL` points at (our in-memory test
//! registry, a real Confluent Schema Registry, Karapace) and checks the behaviour that
//! `/work/shared/spec/registry-semantics.md` and the upstream OpenAPI describe.
//!
//! Layout:
//! - [`registry`]: the process-wide client, configured from the environment only
//!   (`SR_URL`, `SR_USERNAME`/`SR_PASSWORD`, `SR_CA_CERT`, `SR_INSECURE`).
//! - [`Resp`]: one response with assertion helpers that print the whole exchange on failure.
//! - [`Scope`] and [`fresh_context`]: unique names, so tests can run in parallel against
//!   one shared, possibly non-empty registry.
//! - [`global_lock`]: serialises the few tests that touch or read GLOBAL config or mode.
//! - Schema helpers: request bodies and comparison by meaning rather than by raw text.
//! - [`dialect`] / [`karapace`]: which registry's behaviour the run expects
//!   (`SR_DIALECT`): Confluent's by default, or Karapace 3.16's where it deviates.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
pub use serde_json::{Value, json};

/// Media type the Confluent API documents for requests and responses.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The seven compatibility levels, in the order the OpenAPI lists them.
pub const LEVELS: [&str; 7] = [
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
];

/// Error codes a registration rejected for incompatibility may carry: current Confluent
/// (`Errors.INCOMPATIBLE_SCHEMA_ERROR_CODE`) sends 40901, older Confluent and Karapace 409.
pub const INCOMPATIBLE_CODES: [i64; 2] = [40901, 409];

/// The registry whose behaviour a run expects, from `SR_DIALECT`.
///
/// Every test checks Confluent's behaviour (the default, `SR_DIALECT=confluent`). Where
/// Karapace 3.16 answers differently, a test also holds the answer a real Karapace 3.16.0
/// gives (`SR_DIALECT=karapace-3.16`), observed on one and explained by its source (see
/// `KARAPACE.md`). These expectations record what Karapace does, not what a server should
/// do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Confluent Schema Registry.
    Confluent,
    /// Karapace 3.16.0.
    Karapace316,
}

/// The dialect of this run; panics (failing the test) on an unknown `SR_DIALECT`.
pub fn dialect() -> Dialect {
    static DIALECT: OnceLock<Result<Dialect, String>> = OnceLock::new();
    let parsed = DIALECT.get_or_init(|| {
        match std::env::var("SR_DIALECT")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "confluent" => Ok(Dialect::Confluent),
            "karapace-3.16" => Ok(Dialect::Karapace316),
            other => Err(format!(
                "SR_DIALECT `{other}` is not known: use `confluent` (the default) or `karapace-3.16`"
            )),
        }
    });
    match parsed {
        Ok(d) => *d,
        Err(message) => panic!("{message}"),
    }
}

/// Whether the run expects Karapace 3.16's behaviour.
pub fn karapace() -> bool {
    dialect() == Dialect::Karapace316
}

/// Client for the registry under test. Build it with [`registry`].
pub struct Registry {
    base: String,
    client: Client,
    auth: Option<(String, Option<String>)>,
}

/// The process-wide registry client, configured from the environment.
///
/// Panics (failing the calling test) when `SR_URL` is missing, so an unconfigured run
/// can never pass silently.
pub fn registry() -> &'static Registry {
    // an unknown `SR_DIALECT` fails every test, not only those with a dialect branch
    dialect();
    static REGISTRY: OnceLock<Result<Registry, String>> = OnceLock::new();
    match REGISTRY.get_or_init(Registry::from_env) {
        Ok(registry) => registry,
        Err(message) => panic!("{message}"),
    }
}

impl Registry {
    fn from_env() -> Result<Registry, String> {
        let base = std::env::var("SR_URL").map_err(|_| {
            "SR_URL is not set: point it at a Confluent-compatible Schema Registry \
             (e.g. `SR_URL=http://localhost:8081 cargo test -p sr-conformance`) or run \
             `scripts/test`, which starts our test registry and sets it"
                .to_string()
        })?;
        let base = base.trim().trim_end_matches('/').to_string();
        if base.is_empty() {
            return Err("SR_URL is empty: set it to the registry's base URL".to_string());
        }
        let mut builder = Client::builder().timeout(Duration::from_secs(30));
        if let Ok(path) = std::env::var("SR_CA_CERT") {
            let pem = std::fs::read(&path)
                .map_err(|e| format!("cannot read SR_CA_CERT `{path}`: {e}"))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("SR_CA_CERT `{path}` is not a PEM certificate: {e}"))?;
            builder = builder.add_root_certificate(cert);
        }
        if std::env::var("SR_INSECURE").is_ok_and(|v| v == "1") {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let auth = std::env::var("SR_USERNAME")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|user| (user, std::env::var("SR_PASSWORD").ok()));
        Ok(Registry { base, client, auth })
    }

    /// Whether `SR_USERNAME` was given, i.e. the registry is expected to require basic auth.
    pub fn has_credentials(&self) -> bool {
        self.auth.is_some()
    }

    fn builder(&self, method: Method, path: &str) -> RequestBuilder {
        assert!(path.starts_with('/'), "path `{path}` must start with `/`");
        self.client
            .request(method, format!("{}{}", self.base, path))
            .header("Accept", CONTENT_TYPE)
    }

    fn send(&self, method: Method, path: &str, body: Option<&Value>, auth: Auth<'_>) -> Resp {
        let mut request = self.builder(method.clone(), path);
        match auth {
            Auth::Configured => {
                if let Some((user, pass)) = &self.auth {
                    request = request.basic_auth(user, pass.as_deref());
                }
            }
            Auth::None => {}
            Auth::Explicit(user, pass) => request = request.basic_auth(user, Some(pass)),
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let status = response.status().as_u16();
        let text = response
            .text()
            .unwrap_or_else(|e| panic!("{method} {path}: cannot read the body: {e}"));
        Resp {
            request: format!("{method} {path}"),
            sent: body.map(Value::to_string).unwrap_or_default(),
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// `GET path` with the configured credentials.
    pub fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, Auth::Configured)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body), Auth::Configured)
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PUT, path, Some(body), Auth::Configured)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, Auth::Configured)
    }

    /// `GET path` without any credentials, whatever the environment says.
    pub fn get_anonymous(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, Auth::None)
    }

    /// `GET path` with the given basic-auth credentials.
    pub fn get_as(&self, path: &str, user: &str, password: &str) -> Resp {
        self.send(Method::GET, path, None, Auth::Explicit(user, password))
    }

    // ----- shortcuts for the calls nearly every test makes -----

    /// `POST /subjects/{subject}/versions`, asserting success; returns the schema ID.
    pub fn register(&self, subject: &str, body: &Value) -> i64 {
        let resp = self.post(&format!("/subjects/{subject}/versions"), body);
        let id = resp.ok()["id"].as_i64();
        match id {
            Some(id) if id >= 0 => id,
            _ => panic!("registration returned no non-negative `id`\n{resp}"),
        }
    }

    /// `PUT /config/{subject}` with `level`, asserting success.
    pub fn set_compatibility(&self, subject: &str, level: &str) {
        let resp = self.put(
            &format!("/config/{subject}"),
            &json!({ "compatibility": level }),
        );
        assert_eq!(resp.ok()["compatibility"], json!(level), "\n{resp}");
    }

    /// `GET /subjects/{subject}/versions[?deleted=true]`, asserting success.
    pub fn versions(&self, subject: &str, deleted: bool) -> Vec<i64> {
        let query = if deleted { "?deleted=true" } else { "" };
        let resp = self.get(&format!("/subjects/{subject}/versions{query}"));
        int_list(resp.ok(), &resp)
    }

    /// `GET /subjects[?deleted=true]`, asserting success.
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        let query = if deleted { "?deleted=true" } else { "" };
        let resp = self.get(&format!("/subjects{query}"));
        string_list(resp.ok(), &resp)
    }

    /// `GET /subjects/{subject}/versions/{version}`, asserting success.
    pub fn version(&self, subject: &str, version: &str) -> Value {
        self.get(&format!("/subjects/{subject}/versions/{version}"))
            .ok()
            .clone()
    }
}

enum Auth<'a> {
    Configured,
    None,
    Explicit(&'a str, &'a str),
}

/// One HTTP exchange. Its `Display` shows the request and the full response, and every
/// assertion helper prints it on failure.
#[derive(Debug, Clone)]
pub struct Resp {
    /// `METHOD path`.
    pub request: String,
    /// The JSON body sent, if any.
    pub sent: String,
    /// HTTP status code.
    pub status: u16,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The raw body.
    pub text: String,
}

impl Resp {
    /// Asserts a 200 and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200\n{self}");
        &self.body
    }

    /// Asserts `status` and an error body `{"error_code": code, "message": non-empty}`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: i64) {
        self.expect_error_in(status, &[code]);
    }

    /// Asserts the plain-text answer aiohttp gives Karapace for a route it does not have:
    /// `404: Not Found` or `405: Method Not Allowed` (no `error_code`).
    #[track_caller]
    pub fn expect_no_route(&self, status: u16) {
        let text = match status {
            404 => "404: Not Found",
            405 => "405: Method Not Allowed",
            _ => panic!("no aiohttp text for HTTP {status}"),
        };
        assert_eq!(
            (self.status, self.text.trim()),
            (status, text),
            "expected aiohttp's HTTP {status}\n{self}"
        );
    }

    /// Asserts `status` and an error body whose `error_code` is one of `codes`.
    #[track_caller]
    pub fn expect_error_in(&self, status: u16, codes: &[i64]) {
        assert_eq!(self.status, status, "expected HTTP {status}\n{self}");
        let code = self.body["error_code"].as_i64();
        assert!(
            code.is_some_and(|c| codes.contains(&c)),
            "expected error_code in {codes:?}\n{self}"
        );
        let message = self.body["message"].as_str();
        assert!(
            message.is_some_and(|m| !m.trim().is_empty()),
            "error body lacks a non-empty `message`\n{self}"
        );
    }

    /// The error code, for messages.
    pub fn error_code(&self) -> Option<i64> {
        self.body["error_code"].as_i64()
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request: {}", self.request)?;
        if !self.sent.is_empty() {
            write!(f, "\nbody sent: {}", self.sent)?;
        }
        write!(f, "\nresponse: HTTP {}\n{}", self.status, self.text)
    }
}

/// Reads a JSON array of integers, failing with the exchange shown.
#[track_caller]
pub fn int_list(value: &Value, resp: &Resp) -> Vec<i64> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array\n{resp}"))
        .iter()
        .map(|v| {
            v.as_i64()
                .unwrap_or_else(|| panic!("expected integers\n{resp}"))
        })
        .collect()
}

/// Reads a JSON array of strings, failing with the exchange shown.
#[track_caller]
pub fn string_list(value: &Value, resp: &Resp) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array\n{resp}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("expected strings\n{resp}"))
                .to_string()
        })
        .collect()
}

// ----- naming and isolation -----

/// A per-process random run id: 8 lowercase letters/digits, starting with a letter so it
/// is also a valid Avro/Protobuf name component.
pub fn run_id() -> &'static str {
    static RUN_ID: OnceLock<String> = OnceLock::new();
    RUN_ID.get_or_init(|| {
        let mut hasher = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        let mut n = hasher.finish();
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut id = String::with_capacity(8);
        id.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        for _ in 0..7 {
            id.push(ALPHABET[(n % 36) as usize] as char);
            n /= 36;
        }
        id
    })
}

/// Unique names for one test: subjects share `prefix`, schemas live in namespace `ns`, so
/// no two tests (or two runs) ever register the same schema or touch the same subject.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `conf-<runid>-<test>`: every subject of the test starts with it.
    pub prefix: String,
    /// `c<runid>.<test>`: Avro namespace / Protobuf package of the test's schemas.
    pub ns: String,
}

/// The [`Scope`] of the test named `test` (use the function name).
pub fn scope(test: &str) -> Scope {
    assert!(
        test.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && test.starts_with(|c: char| c.is_ascii_lowercase()),
        "test name `{test}` must be lowercase snake_case"
    );
    Scope {
        prefix: format!("conf-{}-{test}", run_id()),
        ns: format!("c{}.{test}", run_id()),
    }
}

impl Scope {
    /// A subject of this test: `<prefix>-<name>`.
    pub fn subject(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// An Avro record in this test's namespace.
    pub fn record(&self, name: &str, fields: Value) -> Value {
        json!({ "type": "record", "name": name, "namespace": self.ns, "fields": fields })
    }

    /// The full name `<ns>.<name>` of a record made with [`Scope::record`].
    pub fn full_name(&self, name: &str) -> String {
        format!("{}.{name}", self.ns)
    }

    /// A simple one-field Avro record whose identity is `name`.
    pub fn simple(&self, name: &str) -> Value {
        self.record(name, json!([{ "name": "f", "type": "string" }]))
    }
}

/// A context name nobody used before: `.conf-<runid>-<n>`. Register a subject
/// `:<context>:<name>` (see [`in_context`]) and ID counting starts afresh there.
pub fn fresh_context() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!(
        ".conf-{}-{}",
        run_id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The qualified subject `:<context>:<name>`.
pub fn in_context(context: &str, name: &str) -> String {
    format!(":{context}:{name}")
}

/// Held while a test changes or reads GLOBAL config or GLOBAL mode.
pub struct GlobalGuard {
    _thread: MutexGuard<'static, ()>,
    /// Locked (`flock`) while held; closing it unlocks.
    _file: std::fs::File,
}

/// Serialises the tests that change or read GLOBAL config or GLOBAL mode,
/// across threads and across processes: nextest runs every test in a
/// process of its own, so an in-process mutex alone let two of them race
/// (seen: a test read `BACKWARD` while another had set `FULL_TRANSITIVE`).
/// The file lock lives in the temporary folder, one per registry URL.
pub fn global_lock() -> GlobalGuard {
    static LOCK: Mutex<()> = Mutex::new(());
    let thread = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let url = std::env::var("SR_URL").unwrap_or_default();
    let name: String = url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = std::env::temp_dir().join(format!("sr-conformance-global-{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the lock file `{}`: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock `{}`: {e}", path.display()));
    GlobalGuard {
        _thread: thread,
        _file: file,
    }
}

// ----- request bodies -----

/// `{"schema": <avro>}` with `schemaType` omitted (which means AVRO).
pub fn avro_body(schema: &Value) -> Value {
    json!({ "schema": schema.to_string() })
}

/// `{"schemaType": kind, "schema": text}`.
pub fn typed_body(kind: &str, text: &str) -> Value {
    json!({ "schemaType": kind, "schema": text })
}

/// `{"schema": <avro>, "references": refs}`.
pub fn avro_body_with_refs(schema: &Value, refs: Value) -> Value {
    json!({ "schema": schema.to_string(), "references": refs })
}

/// One reference `{name, subject, version}`.
pub fn reference(name: &str, subject: &str, version: i64) -> Value {
    json!({ "name": name, "subject": subject, "version": version })
}

// ----- comparing by meaning -----

/// Parses a schema string returned by the registry as JSON (Avro and JSON Schema).
#[track_caller]
pub fn parse_schema(text: &Value) -> Value {
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("`schema` is not a string: {text}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("schema `{text}` is not JSON: {e}"))
}

/// Asserts that the `schema` string in `response` means the same as `expected` (Avro or
/// JSON Schema: compared as parsed JSON, so reformatting is allowed).
#[track_caller]
pub fn assert_same_json_schema(response: &Value, expected: &Value) {
    assert_eq!(
        &parse_schema(&response["schema"]),
        expected,
        "stored schema differs in meaning\nresponse: {response}"
    );
}

/// Removes all whitespace: Protobuf text may come back re-indented.
pub fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Asserts `schemaType` is absent or `AVRO` (absent means AVRO).
#[track_caller]
pub fn assert_avro_type(response: &Value) {
    let kind = &response["schemaType"];
    assert!(
        kind.is_null() || kind == "AVRO",
        "schemaType should be absent or AVRO\nresponse: {response}"
    );
}

/// The `references` of a response, with absent meaning `[]`.
pub fn references_of(response: &Value) -> Value {
    match &response["references"] {
        Value::Null => json!([]),
        refs => refs.clone(),
    }
}

/// Sorted copy, for comparing lists whose order the API does not promise.
pub fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort();
    items
}
