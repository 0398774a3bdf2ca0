//! [`HttpRegistry`]: the REST client behind [`RegistryApi`]. Owns the HTTP
//! details: URL building (subject names percent-encoded as one path segment),
//! authentication, TLS, timeouts, retries with backoff, error decoding, and
//! the request counter a benchmark reads.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use super::auth::Credentials;
use super::error::{Failure, RegistryError};
use super::retry::{Outcome, RetryPolicy};
use super::{
    CompatibilityCheck, RegisterRequest, Registered, RegistryApi, Result, SchemaById, SchemaInput,
    SchemaRecord, SchemasQuery, VersionRef,
};
use crate::config;
use crate::model::{self, Compatibility, Mode, Reference, SchemaType};

/// Media type of the registry's REST API.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Every byte but RFC 3986 unreserved ones (`A-Z a-z 0-9 - . _ ~`) is encoded,
/// so `/`, `%`, `:`, `?`, `#` and non-ASCII text stay inside their segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment for an arbitrary subject (or context) name. `.` and `..`
/// (also when encoded) are dot segments that URL parsers remove, and an empty
/// name would address another route: those are refused.
pub fn encode_segment(name: &str) -> Result<String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(RegistryError::UnaddressableSubject(name.to_owned()));
    }
    Ok(utf8_percent_encode(name, SEGMENT).to_string())
}

/// A request path, as segments already encoded, plus its query.
struct Route {
    path: String,
    query: Vec<(&'static str, String)>,
}

impl Route {
    fn new(path: String) -> Self {
        Self {
            path,
            query: Vec::new(),
        }
    }

    fn flag(mut self, name: &'static str, on: bool) -> Self {
        if on {
            self.query.push((name, "true".into()));
        }
        self
    }

    fn param(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn query_string(&self) -> Option<String> {
        (!self.query.is_empty()).then(|| {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.query {
                s.append_pair(k, v);
            }
            s.finish()
        })
    }
}

fn subject_route(subject: &str, rest: &str) -> Result<Route> {
    Ok(Route::new(format!(
        "/subjects/{}{rest}",
        encode_segment(subject)?
    )))
}

fn scope_route(root: &str, scope: Option<&str>) -> Result<Route> {
    Ok(Route::new(match scope {
        None => format!("/{root}"),
        Some(s) => format!("/{root}/{}", encode_segment(s)?),
    }))
}

/// A Confluent Schema Registry reached over HTTP(S).
pub struct HttpRegistry {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    retry: RetryPolicy,
    requests: Arc<AtomicU64>,
}

impl fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRegistry")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .field("requests", &self.request_count())
            .finish()
    }
}

const SR: &str = "enterprise.schema_registry";

fn read_pem(key: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| RegistryError::Config {
        key: format!("{SR}.tls.{key}"),
        message: format!("cannot read `{path}`: {e}"),
    })
}

/// What every HTTP client of ours starts from: timeouts and user agent, and
/// the TLS defaults (the system's CAs) until the caller changes them.
pub(crate) fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("kafka-backup/", env!("CARGO_PKG_VERSION")))
}

impl HttpRegistry {
    /// A client for the registry `config` describes (`url`, `auth`, `tls`,
    /// `request_timeout_secs`), with the default [`RetryPolicy`].
    pub fn new(config: &config::SchemaRegistry) -> Result<Self> {
        let raw = config.url.as_ref().ok_or_else(|| RegistryError::Config {
            key: format!("{SR}.url"),
            message: "not set".into(),
        })?;
        let base = Url::parse(raw.as_str()).map_err(|e| RegistryError::Config {
            key: format!("{SR}.url"),
            message: format!("not a URL: {e}"),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(RegistryError::Config {
                key: format!("{SR}.url"),
                message: format!(
                    "scheme `{}` is not supported: use `http` or `https`",
                    base.scheme()
                ),
            });
        }
        let sends_credentials = config
            .auth
            .as_ref()
            .is_some_and(|a| !matches!(a.kind, config::AuthKind::None | config::AuthKind::Mtls));
        if sends_credentials && base.scheme() == "http" {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "`{SR}.auth` sends credentials to `{base}` over plain HTTP, readable by anyone on the way; use an `https://` URL"
                );
            });
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(RegistryError::Config {
                key: format!("{SR}.url"),
                message: "credentials in the URL would be printed and logged: use `auth`".into(),
            });
        }
        let timeout = Duration::from_secs(config.request_timeout_secs.max(1));
        let mut builder = client_builder(timeout);
        // the CA that signed the registry's certificate; the token endpoint trusts it too
        let mut ca_certs = Vec::new();
        if let Some(tls) = &config.tls {
            if let Some(ca) = &tls.ca_cert {
                let pem = read_pem("ca_cert", ca.as_str())?;
                ca_certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    RegistryError::Config {
                        key: format!("{SR}.tls.ca_cert"),
                        message: format!("`{ca}` is not a PEM certificate bundle: {e}"),
                    }
                })?;
                if ca_certs.is_empty() {
                    return Err(RegistryError::Config {
                        key: format!("{SR}.tls.ca_cert"),
                        message: format!("`{ca}` holds no certificate"),
                    });
                }
                // for the registry, that CA and only it
                builder = builder.tls_certs_only(ca_certs.iter().cloned());
            }
            match (&tls.client_cert, &tls.client_key) {
                (Some(cert), Some(key)) => {
                    let mut pem = read_pem("client_cert", cert.as_str())?;
                    pem.push(b'\n');
                    pem.extend(read_pem("client_key", key.as_str())?);
                    let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                        RegistryError::Config {
                            key: format!("{SR}.tls.client_cert"),
                            message: format!(
                                "`{cert}` and `{key}` are not a PEM certificate and private key: {e}"
                            ),
                        }
                    })?;
                    builder = builder.identity(identity);
                }
                (None, None) => {}
                _ => {
                    return Err(RegistryError::Config {
                        key: format!("{SR}.tls.client_cert"),
                        message: "`client_cert` and `client_key` go together".into(),
                    });
                }
            }
            if tls.insecure_skip_verify {
                tracing::warn!(
                    "`{SR}.tls.insecure_skip_verify` is set: the registry's certificate is not verified (an oauth `token_url` still is)"
                );
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
        }
        let http = builder.build().map_err(|e| RegistryError::Config {
            key: format!("{SR}.tls"),
            message: format!("cannot build the HTTP client: {}", transport_message(&e)),
        })?;
        Ok(Self {
            http,
            base,
            credentials: Credentials::from_config(config.auth.as_ref(), &ca_certs, timeout)?,
            retry: RetryPolicy::default(),
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The same client with another retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// HTTP requests sent so far (retries and OAuth token requests included).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The shared counter behind [`Self::request_count`].
    pub fn request_counter(&self) -> Arc<AtomicU64> {
        self.requests.clone()
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, route: &Route) -> Url {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{}", route.path));
        url.set_query(route.query_string().as_deref());
        url
    }

    /// Sends one request (again, while the failure is worth retrying) and
    /// returns the body of the 2xx answer.
    async fn send(&self, method: Method, route: Route, body: Option<Value>) -> Result<Vec<u8>> {
        self.send_with(&self.retry, method, route, body).await
    }

    /// [`Self::send`] under the retry policy `retry`.
    async fn send_with(
        &self,
        retry: &RetryPolicy,
        method: Method,
        route: Route,
        body: Option<Value>,
    ) -> Result<Vec<u8>> {
        let url = self.url(&route);
        let shown = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let body = body.map(|b| b.to_string());
        let mut attempt = 0u32;
        let mut refused_token: Option<config::Secret> = None;
        let mut renewed_token = false;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(header::ACCEPT, format!("{CONTENT_TYPE}, application/json"));
            if let Some(body) = &body {
                request = request
                    .header(header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(body.clone());
            }
            let mut sent_token = None;
            request = match &self.credentials {
                Credentials::None => request,
                Credentials::Basic { username, password } => {
                    request.basic_auth(username, Some(password.expose()))
                }
                Credentials::Bearer(token) => request.bearer_auth(token.expose()),
                Credentials::OAuth(oauth) => {
                    let token = oauth.token(&self.requests, refused_token.as_ref()).await?;
                    let request = request.bearer_auth(token.expose());
                    sent_token = Some(token);
                    request
                }
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let failure = |status: Option<u16>, code: Option<i64>, message: String| Failure {
                method: method.to_string(),
                path: shown.clone(),
                status,
                code,
                message,
                attempts: attempt,
            };
            let mut retry_after = None;
            let (outcome, error) = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    crate::metrics::global().registry_answer(Some(status));
                    retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match response.bytes().await {
                        Ok(bytes) if (200..300).contains(&status) => {
                            tracing::debug!(%method, path = %shown, status, attempt, "registry request");
                            return Ok(bytes.to_vec());
                        }
                        Ok(bytes) => {
                            if status == 401 && sent_token.is_some() && !renewed_token {
                                // the token may have been revoked or expired early: once more with a new one
                                renewed_token = true;
                                refused_token = sent_token;
                                attempt -= 1;
                                tracing::debug!(path = %shown, "token refused, fetching a new one");
                                continue;
                            }
                            let (code, message) = error_body(&bytes);
                            let f = failure(Some(status), code, message);
                            (
                                Outcome::Status(status, code),
                                RegistryError::from_response(f),
                            )
                        }
                        Err(e) => (
                            Outcome::Connect,
                            RegistryError::Connect(Box::new(failure(
                                Some(status),
                                None,
                                transport_message(&e),
                            ))),
                        ),
                    }
                }
                Err(e) if e.is_timeout() => {
                    crate::metrics::global().registry_answer(None);
                    (
                        Outcome::Timeout,
                        RegistryError::Timeout(Box::new(failure(
                            None,
                            None,
                            transport_message(&e),
                        ))),
                    )
                }
                Err(e) if e.is_builder() => {
                    return Err(RegistryError::Config {
                        key: format!("{SR}.url"),
                        message: transport_message(&e),
                    });
                }
                Err(e) => {
                    crate::metrics::global().registry_answer(None);
                    (
                        Outcome::Connect,
                        RegistryError::Connect(Box::new(failure(
                            None,
                            None,
                            transport_message(&e),
                        ))),
                    )
                }
            };
            if !retry.should_retry(attempt, outcome) || !error.is_transient() {
                // a refused certificate is refused again: no retry
                return Err(error);
            }
            let delay = retry.delay_after(attempt, fastrand::f64(), retry_after);
            tracing::warn!(
                "registry request `{method} {shown}` failed ({outcome:?}), attempt {attempt} of {}; retrying in {delay:?}",
                retry.max_attempts
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        route: Route,
        body: Option<Value>,
    ) -> Result<T> {
        let shown = route.path.clone();
        let bytes = self.send(method.clone(), route, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::Decode(Box::new(Failure {
                method: method.to_string(),
                path: shown,
                status: None,
                code: None,
                message: json_error(&e),
                attempts: 1,
            }))
        })
    }

    async fn get<T: DeserializeOwned>(&self, route: Route) -> Result<T> {
        self.call(Method::GET, route, None).await
    }
}

/// `error_code` and `message` of an error body, or a short excerpt of a body
/// that is not the registry's JSON (a proxy's HTML page).
fn error_body(bytes: &[u8]) -> (Option<i64>, String) {
    #[derive(Deserialize)]
    struct ErrorBody {
        error_code: Option<i64>,
        message: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => (b.error_code, b.message.unwrap_or_default()),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let excerpt: String = text.chars().take(200).collect();
            (None, excerpt)
        }
    }
}

/// A transport error and its causes, without the URL (which the message names anyway).
pub(crate) fn transport_message(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    let head = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_decode() || e.is_body() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    if parts.is_empty() {
        head.to_owned()
    } else {
        format!("{head}: {}", parts.join(": "))
    }
}

/// A JSON error without the input text (it may be long; it is never a secret).
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    e.to_string()
}

#[derive(Deserialize)]
struct WireReference {
    name: String,
    subject: String,
    version: i32,
}

#[derive(Deserialize)]
struct WireRecord {
    subject: String,
    version: u32,
    id: u32,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<SchemaType>,
    #[serde(default)]
    references: Option<Vec<WireReference>>,
    schema: String,
}

impl From<WireRecord> for SchemaRecord {
    fn from(w: WireRecord) -> Self {
        SchemaRecord {
            subject: w.subject,
            version: w.version,
            id: w.id,
            schema_type: w.schema_type.unwrap_or(SchemaType::Avro),
            schema: w.schema,
            references: w
                .references
                .unwrap_or_default()
                .into_iter()
                .map(|r| Reference {
                    name: r.name,
                    subject: r.subject,
                    version: r.version,
                })
                .collect(),
        }
    }
}

fn schema_body(schema: &SchemaInput) -> serde_json::Map<String, Value> {
    let mut body = serde_json::Map::new();
    body.insert("schema".into(), json!(schema.schema));
    body.insert(
        "schemaType".into(),
        json!(model::schema_type_name(schema.schema_type)),
    );
    if !schema.references.is_empty() {
        body.insert(
            "references".into(),
            Value::Array(
                schema
                    .references
                    .iter()
                    .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
                    .collect(),
            ),
        );
    }
    body
}

/// `None` for the listed "not found" error codes.
fn absent_on<T>(result: Result<T>, codes: &[i64]) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.error_code().is_some_and(|c| codes.contains(&c)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl RegistryApi for HttpRegistry {
    async fn answers(&self) -> Result<()> {
        let once = RetryPolicy {
            max_attempts: 1,
            ..self.retry
        };
        match self
            .send_with(&once, Method::GET, Route::new("/config".into()), None)
            .await
        {
            Err(e) if e.is_transient() => Err(e),
            _ => Ok(()),
        }
    }

    async fn subjects(&self, deleted: bool) -> Result<Vec<String>> {
        self.get(Route::new("/subjects".into()).flag("deleted", deleted))
            .await
    }

    async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>> {
        self.get(subject_route(subject, "/versions")?.flag("deleted", deleted))
            .await
    }

    async fn version(
        &self,
        subject: &str,
        version: VersionRef,
        deleted: bool,
    ) -> Result<SchemaRecord> {
        let route =
            subject_route(subject, &format!("/versions/{version}"))?.flag("deleted", deleted);
        Ok(self.get::<WireRecord>(route).await?.into())
    }

    async fn schemas_page(&self, query: &SchemasQuery) -> Result<Vec<SchemaRecord>> {
        let mut route = Route::new("/schemas".into());
        if let Some(prefix) = &query.subject_prefix {
            route = route.param("subjectPrefix", prefix);
        }
        let route = route
            .flag("deleted", query.deleted)
            .param("offset", query.offset)
            .param("limit", query.limit);
        let records: Vec<WireRecord> = self.get(route).await?;
        Ok(records.into_iter().map(Into::into).collect())
    }

    async fn config(&self, scope: Option<&str>) -> Result<Option<Compatibility>> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(rename = "compatibilityLevel")]
            level: Option<Compatibility>,
        }
        let body = absent_on(
            self.get::<Body>(scope_route("config", scope)?).await,
            &[40408],
        )?;
        Ok(body.and_then(|b| b.level))
    }

    async fn mode(&self, scope: Option<&str>) -> Result<Option<Mode>> {
        #[derive(Deserialize)]
        struct Body {
            mode: Option<Mode>,
        }
        let body = absent_on(
            self.get::<Body>(scope_route("mode", scope)?).await,
            &[40409],
        )?;
        Ok(body.and_then(|b| b.mode))
    }

    async fn contexts(&self) -> Result<Vec<String>> {
        self.get(Route::new("/contexts".into())).await
    }

    async fn server_version(&self) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Body {
            version: Option<String>,
        }
        match self
            .get::<Body>(Route::new("/v1/metadata/version".into()))
            .await
        {
            Ok(b) => Ok(b.version),
            Err(RegistryError::EndpointNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn register(&self, subject: &str, request: &RegisterRequest) -> Result<Registered> {
        #[derive(Deserialize)]
        struct Body {
            id: u32,
            #[serde(default)]
            version: Option<u32>,
        }
        let mut body = schema_body(&request.schema);
        if let Some(id) = request.id {
            body.insert("id".into(), json!(id));
        }
        if let Some(version) = request.version {
            body.insert("version".into(), json!(version));
        }
        let route = subject_route(subject, "/versions")?.flag("normalize", request.normalize);
        let b: Body = self
            .call(Method::POST, route, Some(Value::Object(body)))
            .await?;
        Ok(Registered {
            id: b.id,
            version: b.version,
        })
    }

    async fn lookup(
        &self,
        subject: &str,
        schema: &SchemaInput,
        normalize: bool,
        deleted: bool,
    ) -> Result<Option<SchemaRecord>> {
        let route = subject_route(subject, "")?
            .flag("normalize", normalize)
            .flag("deleted", deleted);
        let found = self
            .call::<WireRecord>(
                Method::POST,
                route,
                Some(Value::Object(schema_body(schema))),
            )
            .await;
        Ok(absent_on(found, &[40401, 40403])?.map(Into::into))
    }

    async fn check_compatibility(
        &self,
        subject: &str,
        version: VersionRef,
        schema: &SchemaInput,
    ) -> Result<CompatibilityCheck> {
        #[derive(Deserialize)]
        struct Body {
            is_compatible: bool,
            #[serde(default)]
            messages: Vec<String>,
        }
        let route = Route::new(format!(
            "/compatibility/subjects/{}/versions/{version}",
            encode_segment(subject)?
        ))
        .flag("verbose", true);
        let b: Body = self
            .call(
                Method::POST,
                route,
                Some(Value::Object(schema_body(schema))),
            )
            .await?;
        Ok(CompatibilityCheck {
            is_compatible: b.is_compatible,
            messages: b.messages,
        })
    }

    async fn set_config(&self, scope: Option<&str>, level: Compatibility) -> Result<()> {
        let body = json!({"compatibility": model::compatibility_name(level)});
        self.send(Method::PUT, scope_route("config", scope)?, Some(body))
            .await
            .map(drop)
    }

    async fn delete_config(&self, scope: Option<&str>) -> Result<()> {
        self.send(Method::DELETE, scope_route("config", scope)?, None)
            .await
            .map(drop)
    }

    async fn set_mode(&self, scope: Option<&str>, mode: Mode, force: bool) -> Result<()> {
        let route = scope_route("mode", scope)?.flag("force", force);
        self.send(Method::PUT, route, Some(json!({"mode": mode.as_str()})))
            .await
            .map(drop)
    }

    async fn delete_mode(&self, scope: Option<&str>) -> Result<()> {
        self.send(Method::DELETE, scope_route("mode", scope)?, None)
            .await
            .map(drop)
    }

    async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let route = subject_route(subject, "")?.flag("permanent", permanent);
        self.call(Method::DELETE, route, None).await
    }

    async fn delete_version(&self, subject: &str, version: u32, permanent: bool) -> Result<u32> {
        let route =
            subject_route(subject, &format!("/versions/{version}"))?.flag("permanent", permanent);
        self.call(Method::DELETE, route, None).await
    }

    async fn schema_id_versions(&self, id: u32, deleted: bool) -> Result<Vec<(String, u32)>> {
        #[derive(Deserialize)]
        struct Pair {
            subject: String,
            version: u32,
        }
        let route = Route::new(format!("/schemas/ids/{id}/versions")).flag("deleted", deleted);
        let pairs: Vec<Pair> = self.get(route).await?;
        Ok(pairs.into_iter().map(|p| (p.subject, p.version)).collect())
    }

    async fn schema_by_id(&self, id: u32, context: &str) -> Result<SchemaById> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(rename = "schemaType", default)]
            schema_type: Option<SchemaType>,
            schema: String,
            #[serde(default)]
            references: Option<Vec<WireReference>>,
        }
        let mut route = Route::new(format!("/schemas/ids/{id}"));
        if context != model::DEFAULT_CONTEXT {
            // an ID lives in a context: name the context as a subject prefix
            route = route.param("subject", format!(":{context}:"));
        }
        let body: Body = self.get(route).await?;
        Ok(SchemaById {
            schema_type: body.schema_type.unwrap_or(SchemaType::Avro),
            schema: body.schema,
            references: body
                .references
                .unwrap_or_default()
                .into_iter()
                .map(|r| Reference {
                    name: r.name,
                    subject: r.subject,
                    version: r.version,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn registry(url: &str) -> HttpRegistry {
        HttpRegistry::new(&config::SchemaRegistry {
            url: Some(config::Text(url.into())),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn subject_names_stay_one_segment() {
        let cases = [
            ("orders-value", "orders-value"),
            ("a/b", "a%2Fb"),
            ("../x", "..%2Fx"),
            (":.ctx:orders", "%3A.ctx%3Aorders"),
            ("100%", "100%25"),
            ("a b?c#d&e=f+g", "a%20b%3Fc%23d%26e%3Df%2Bg"),
            ("ünï/код", "%C3%BCn%C3%AF%2F%D0%BA%D0%BE%D0%B4"),
            ("...", "..."),
            ("~x_y.z", "~x_y.z"),
        ];
        let r = registry("http://registry.example:8081/prefix/");
        for (name, encoded) in cases {
            assert_eq!(encode_segment(name).unwrap(), encoded, "{name}");
            let url = r.url(&subject_route(name, "/versions").unwrap());
            assert_eq!(
                url.path(),
                format!("/prefix/subjects/{encoded}/versions"),
                "{name}"
            );
            // the server sees exactly one segment that decodes back to the name
            let segments: Vec<_> = url.path_segments().unwrap().collect();
            assert_eq!(segments.len(), 4);
            let decoded = percent_encoding::percent_decode_str(segments[2])
                .decode_utf8()
                .unwrap();
            assert_eq!(decoded, name);
        }
        for bad in ["", ".", ".."] {
            assert!(matches!(
                encode_segment(bad),
                Err(RegistryError::UnaddressableSubject(_))
            ));
        }
    }

    #[test]
    fn queries_are_encoded_and_the_base_path_kept() {
        let r = registry("http://h:1");
        let route = Route::new("/schemas".into())
            .param("subjectPrefix", ":*:")
            .flag("deleted", true)
            .flag("latestOnly", false)
            .param("offset", 0);
        assert_eq!(
            r.url(&route).as_str(),
            "http://h:1/schemas?subjectPrefix=%3A*%3A&deleted=true&offset=0"
        );
        let r = registry("http://h:1/sr");
        assert_eq!(
            r.url(&Route::new("/config".into())).as_str(),
            "http://h:1/sr/config"
        );
    }

    #[test]
    fn bad_configurations_name_the_key() {
        let err = HttpRegistry::new(&config::SchemaRegistry::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid registry configuration `enterprise.schema_registry.url`: not set"
        );
        let err = HttpRegistry::new(&config::SchemaRegistry {
            url: Some(config::Text("http://u:pw@h".into())),
            ..Default::default()
        })
        .unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        let err = HttpRegistry::new(&config::SchemaRegistry {
            url: Some(config::Text("https://h".into())),
            tls: Some(config::Tls {
                ca_cert: Some(config::Text("/nonexistent/ca.pem".into())),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid registry configuration `enterprise.schema_registry.tls.ca_cert`: cannot read `/nonexistent/ca.pem`"),
            "{err}"
        );
    }

    /// A tiny HTTP/1.1 server, one connection per request: `handler` gets the
    /// request head and body and returns status and body.
    async fn stub_server(handler: impl Fn(&str, &str) -> (u16, String) + Send + 'static) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break buf.len(),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                let (status, answer) = handler(&head, &body);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        url
    }

    /// A server that answers with `responses` in turn, whatever the request.
    /// Returns its URL and a counter of requests.
    async fn scripted_server(responses: Vec<(u16, &'static str)>) -> (String, Arc<AtomicU64>) {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let url = stub_server(move |_, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
            let (status, body) = responses[n % responses.len()];
            (status, body.to_owned())
        })
        .await;
        (url, seen)
    }

    #[tokio::test]
    async fn oauth_tokens_are_cached_and_renewed_once_on_401() {
        use std::sync::Mutex;
        // the token server issues tok-1, tok-2, ...; the registry accepts only the newest
        let issued = Arc::new(Mutex::new((0u32, Vec::<String>::new(), false)));
        let state = issued.clone();
        let url = stub_server(move |head, body| {
            let mut state = state.lock().unwrap();
            if head.starts_with("POST /oauth/token ") {
                state.0 += 1;
                state.1.push(body.to_owned());
                return (
                    200,
                    format!(
                        r#"{{"access_token":"tok-{}","token_type":"Bearer","expires_in":3600}}"#,
                        state.0
                    ),
                );
            }
            if head.starts_with("POST /revoke ") {
                state.0 += 1; // the next token a client should use is newer
                return (200, "{}".into());
            }
            let expected = format!("authorization: bearer tok-{}", state.0);
            if !state.2 && head.to_ascii_lowercase().contains(&expected) {
                (200, "[]".into())
            } else {
                (401, r#"{"error_code":401,"message":"Unauthorized"}"#.into())
            }
        })
        .await;
        let config = config::SchemaRegistry {
            url: Some(config::Text(url.clone())),
            auth: Some(config::Auth {
                kind: config::AuthKind::Oauth,
                username: None,
                password: None,
                token: None,
                token_url: Some(config::Text(format!("{url}/oauth/token"))),
                client_id: Some(config::Text("backup-tool".into())),
                client_secret: Some(config::Secret::new("s3cr3t&=")),
                scope: Some(config::Text("schema-registry".into())),
                token_insecure_skip_verify: None,
            }),
            ..Default::default()
        };
        let r = HttpRegistry::new(&config).unwrap();
        for _ in 0..3 {
            r.subjects(false).await.unwrap();
        }
        assert_eq!(issued.lock().unwrap().1.len(), 1, "the token is cached");
        assert_eq!(r.request_count(), 4);
        assert_eq!(
            issued.lock().unwrap().1[0],
            "grant_type=client_credentials&client_id=backup-tool&client_secret=s3cr3t%26%3D&scope=schema-registry"
        );
        // the server moves on to another token: one 401, one new token, success
        reqwest::Client::new()
            .post(format!("{url}/revoke"))
            .send()
            .await
            .unwrap();
        r.subjects(false).await.unwrap();
        assert_eq!(issued.lock().unwrap().1.len(), 2);
        // a server refusing every token: one renewal, then the 401 is reported
        issued.lock().unwrap().2 = true;
        let before = r.request_count();
        let err = r.subjects(false).await.unwrap_err();
        assert!(matches!(err, RegistryError::Unauthorized(_)), "{err:?}");
        assert_eq!(r.request_count() - before, 3, "request, new token, request");
        assert!(!format!("{err} {err:?} {r:?}").contains("s3cr3t"));
    }

    #[tokio::test]
    async fn token_endpoint_failures_name_the_endpoint_not_the_secret() {
        let url = stub_server(|_, _| {
            (
                401,
                r#"{"error":"invalid_client","error_description":"bad secret"}"#.into(),
            )
        })
        .await;
        let config = config::SchemaRegistry {
            url: Some(config::Text(url.clone())),
            auth: Some(config::Auth {
                kind: config::AuthKind::Oauth,
                username: None,
                password: None,
                token: None,
                token_url: Some(config::Text(format!("{url}/realms/x/token"))),
                client_id: Some(config::Text("id".into())),
                client_secret: Some(config::Secret::new("very-secret")),
                scope: None,
                token_insecure_skip_verify: None,
            }),
            ..Default::default()
        };
        let err = HttpRegistry::new(&config)
            .unwrap()
            .contexts()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot get an oauth token: `POST /realms/x/token` (http 401): invalid_client: bad secret\n\
             hint: check `auth.token_url`, `auth.client_id`, `auth.client_secret` and `auth.scope`"
        );
    }

    fn fast_retries(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_success() {
        let unavailable = r#"{"error_code":50003,"message":"forwarding timed out"}"#;
        let (url, seen) = scripted_server(vec![
            (503, unavailable),
            (503, unavailable),
            (200, r#"["a","b"]"#),
        ])
        .await;
        let r = registry(&url).with_retry_policy(fast_retries(5));
        assert_eq!(r.subjects(false).await.unwrap(), vec!["a", "b"]);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert_eq!(r.request_count(), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded_and_client_errors_not_retried() {
        let (url, seen) = scripted_server(vec![(
            500,
            r#"{"error_code":50001,"message":"store error"}"#,
        )])
        .await;
        let r = registry(&url).with_retry_policy(fast_retries(3));
        let err = r.subjects(true).await.unwrap_err();
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert_eq!(
            err.to_string(),
            "registry server error: `GET /subjects?deleted=true` (http 500, error_code 50001, after 3 attempts): store error\n\
             hint: the registry or its Kafka store is unhealthy; retry later"
        );

        let (url, seen) = scripted_server(vec![(
            404,
            r#"{"error_code":40401,"message":"Subject 'x' not found."}"#,
        )])
        .await;
        let r = registry(&url).with_retry_policy(fast_retries(3));
        let err = r.versions("x", false).await.unwrap_err();
        assert!(matches!(err, RegistryError::SubjectNotFound(_)), "{err:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn timeouts_are_retried_then_reported() {
        // accepts connections and never answers
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        let r = HttpRegistry::new(&config::SchemaRegistry {
            url: Some(config::Text(url)),
            request_timeout_secs: 1,
            ..Default::default()
        })
        .unwrap()
        .with_retry_policy(fast_retries(2));
        let err = r.server_version().await.unwrap_err();
        assert!(matches!(err, RegistryError::Timeout(_)), "{err:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert!(
            err.to_string().starts_with(
                "registry request timed out: `GET /v1/metadata/version` (after 2 attempts): timed out"
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("hint: raise `enterprise.schema_registry.request_timeout_secs`")
        );
    }

    #[tokio::test]
    async fn missing_subject_level_settings_are_none() {
        let (url, _) = scripted_server(vec![
            (404, r#"{"error_code":40408,"message":"Subject 's' does not have subject-level compatibility configured"}"#),
            (404, r#"{"error_code":40409,"message":"Subject 's' does not have subject-level mode configured"}"#),
            (200, r#"{"compatibilityLevel":"FULL_TRANSITIVE"}"#),
            (200, r#"{"mode":"READONLY_OVERRIDE"}"#),
        ])
        .await;
        let r = registry(&url);
        assert_eq!(r.config(Some("s")).await.unwrap(), None);
        assert_eq!(r.mode(Some("s")).await.unwrap(), None);
        assert_eq!(
            r.config(None).await.unwrap(),
            Some(Compatibility::FullTransitive)
        );
        assert_eq!(r.mode(None).await.unwrap(), Some(Mode::ReadOnlyOverride));
    }

    #[tokio::test]
    async fn schemas_by_id_name_their_context() {
        use std::sync::Mutex;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let url = stub_server(move |head, _| {
            let line = head.lines().next().unwrap_or_default().to_owned();
            log.lock().unwrap().push(line.clone());
            if line.contains("/schemas/ids/9") {
                return (
                    404,
                    r#"{"error_code":40403,"message":"Schema 9 not found"}"#.to_owned(),
                );
            }
            (
                200,
                r#"{"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";","references":[{"name":"a.proto","subject":"a","version":2}]}"#
                    .to_owned(),
            )
        })
        .await;
        let r = registry(&url);
        let got = r.schema_by_id(7, ".dr").await.unwrap();
        assert_eq!(got.schema_type, SchemaType::Protobuf);
        assert_eq!(got.schema, "syntax = \"proto3\";");
        assert_eq!(
            got.references,
            vec![Reference {
                name: "a.proto".into(),
                subject: "a".into(),
                version: 2
            }]
        );
        let err = r.schema_by_id(9, ".").await.unwrap_err();
        assert!(matches!(err, RegistryError::SchemaNotFound(_)), "{err}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "GET /schemas/ids/7?subject=%3A.dr%3A HTTP/1.1",
                "GET /schemas/ids/9 HTTP/1.1"
            ]
        );
    }

    #[tokio::test]
    async fn connection_errors_are_retried_then_reported() {
        // a port nothing listens on
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let r = registry(&url).with_retry_policy(fast_retries(2));
        let err = r.contexts().await.unwrap_err();
        assert!(matches!(err, RegistryError::Connect(_)), "{err:?}");
        assert_eq!(r.request_count(), 2);
        assert!(
            err.to_string().starts_with(
                "cannot reach the registry: `GET /contexts` (after 2 attempts): connection failed"
            ),
            "{err}"
        );
    }
}
