//! The REST layer: Confluent's routes, query flags, JSON shapes and error bodies on top of
//! the [`Registry`] state machine. [`karapace`] holds the Karapace dialect's.

mod karapace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::RegistryError;
use crate::registry::{DeletedFilter, Registry, SchemaRecord, SchemaRequest};
use crate::types::{Compatibility, Mode, Reference, VersionId};

/// Content type of every response.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Shared registry handle.
pub type SharedRegistry = Arc<Mutex<Registry>>;

type Params = Query<HashMap<String, String>>;

/// An HTTP error in Confluent's `{"error_code", "message"}` shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        Self::new(e.http_status(), e.error_code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

type ApiResult = Result<Response, ApiError>;

/// A JSON response with the registry content type.
pub fn respond(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: Value) -> ApiResult {
    Ok(respond(StatusCode::OK, body))
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn int_param(params: &HashMap<String, String>, name: &str, default: i64) -> i64 {
    params
        .get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Applies Confluent's `offset` / `limit` (negative limit = all).
fn page<T>(items: Vec<T>, params: &HashMap<String, String>) -> Vec<T> {
    let offset = usize::try_from(int_param(params, "offset", 0).max(0)).unwrap_or(0);
    let limit = int_param(params, "limit", -1);
    let iter = items.into_iter().skip(offset);
    match usize::try_from(limit) {
        Ok(n) if limit > 0 => iter.take(n).collect(),
        _ => iter.collect(),
    }
}

fn lock(state: &SharedRegistry) -> MutexGuard<'_, Registry> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(422, 422, "Request body is required"));
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::new(
                400,
                400,
                format!("Unexpected character in request body: {e}"),
            )
        } else {
            ApiError::new(422, 422, format!("Unrecognized request body: {e}"))
        }
    })
}

#[derive(Debug, Deserialize)]
struct RegisterBody {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    references: Option<Vec<Reference>>,
    id: Option<i32>,
    version: Option<i32>,
}

fn schema_request(body: &Bytes) -> Result<SchemaRequest, ApiError> {
    let b: RegisterBody = parse_body(body)?;
    Ok(SchemaRequest {
        schema: b.schema,
        schema_type: b.schema_type,
        references: b.references.unwrap_or_default(),
        id: b.id,
        version: b.version,
    })
}

fn references_json(refs: &[Reference]) -> Value {
    Value::Array(
        refs.iter()
            .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
            .collect(),
    )
}

/// `{subject, version, id, schemaType?, references?, schema}`.
fn record_json(r: &SchemaRecord) -> Value {
    let mut m = Map::new();
    m.insert("subject".into(), json!(r.subject));
    m.insert("version".into(), json!(r.version));
    m.insert("id".into(), json!(r.id));
    add_schema_fields(&mut m, r);
    Value::Object(m)
}

fn add_schema_fields(m: &mut Map<String, Value>, r: &SchemaRecord) {
    if let Some(t) = r.schema.schema_type.response_field() {
        m.insert("schemaType".into(), json!(t));
    }
    if !r.schema.references.is_empty() {
        m.insert("references".into(), references_json(&r.schema.references));
    }
    m.insert("schema".into(), json!(r.schema.text));
}

/// Applies `?format=` to a record read from the registry.
fn with_format(
    registry: &Registry,
    mut record: SchemaRecord,
    params: &HashMap<String, String>,
) -> Result<SchemaRecord, ApiError> {
    if let Some(format) = params.get("format") {
        record.schema.text = registry.formatted(&record, format)?;
    }
    Ok(record)
}

fn version_param(raw: &str) -> Result<VersionId, ApiError> {
    Ok(VersionId::parse(raw)?)
}

fn id_param(raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>()
        .map_err(|_| ApiError::new(404, 404, "HTTP 404 Not Found"))
}

/// Builds the router over a shared registry, with the routes of its dialect.
pub fn router(state: SharedRegistry) -> Router {
    if lock(&state).dialect().is_karapace() {
        return karapace::router(state);
    }
    Router::new()
        .route("/", get(root).post(root))
        .route("/v1/metadata/id", get(metadata_id))
        .route("/v1/metadata/version", get(metadata_version))
        .route("/contexts", get(contexts))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas", get(list_schemas))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_for_id))
        .route("/schemas/ids/{id}/versions", get(versions_for_id))
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route(
            "/mode",
            get(get_global_mode)
                .put(put_global_mode)
                .delete(delete_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(get_mode).put(put_mode).delete(delete_mode),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compat_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::new(404, 404, "HTTP 404 Not Found").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(405, 405, "HTTP 405 Method Not Allowed").into_response()
}

async fn root() -> ApiResult {
    ok(json!({}))
}

async fn metadata_id() -> ApiResult {
    ok(json!({
        "scope": {"path": [], "clusters": {"kafka-cluster": "sr-test-registry", "schema-registry-cluster": "schema-registry"}},
        "id": "sr-test-registry"
    }))
}

async fn metadata_version() -> ApiResult {
    ok(json!({"version": "7.9.0-sr-test-registry", "commitId": env!("CARGO_PKG_VERSION")}))
}

async fn contexts(State(s): State<SharedRegistry>, Query(p): Params) -> ApiResult {
    let prefix = p.get("contextPrefix").cloned().unwrap_or_default();
    let list: Vec<String> = lock(&s)
        .contexts()
        .into_iter()
        .filter(|c| c.starts_with(&prefix))
        .collect();
    ok(json!(page(list, &p)))
}

async fn list_subjects(State(s): State<SharedRegistry>, Query(p): Params) -> ApiResult {
    let filter = DeletedFilter::from_flags(flag(&p, "deleted"), flag(&p, "deletedOnly"));
    let list = lock(&s).list_subjects(p.get("subjectPrefix").map(String::as_str), filter);
    ok(json!(page(list, &p)))
}

async fn list_versions(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let filter = DeletedFilter::from_flags(flag(&p, "deleted"), flag(&p, "deletedOnly"));
    let list = lock(&s).list_versions(&subject, filter)?;
    ok(json!(page(list, &p)))
}

async fn get_version(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let v = version_param(&version)?;
    let registry = lock(&s);
    let record = registry.get_version(&subject, v, flag(&p, "deleted"))?;
    let record = with_format(&registry, record, &p)?;
    ok(record_json(&record))
}

async fn get_version_schema(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let v = version_param(&version)?;
    let registry = lock(&s);
    let record = registry.get_version(&subject, v, flag(&p, "deleted"))?;
    let record = with_format(&registry, record, &p)?;
    let mut response = (StatusCode::OK, record.schema.text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

async fn referenced_by(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let v = version_param(&version)?;
    let ids = lock(&s).referenced_by(&subject, v, flag(&p, "deleted"))?;
    ok(json!(page(ids, &p)))
}

async fn lookup(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    let request = schema_request(&body)?;
    let registry = lock(&s);
    let record = registry.lookup(
        &subject,
        &request,
        flag(&p, "normalize"),
        flag(&p, "deleted"),
    )?;
    let record = with_format(&registry, record, &p)?;
    ok(record_json(&record))
}

async fn register(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    let request = schema_request(&body)?;
    let record = lock(&s).register(&subject, &request, flag(&p, "normalize"))?;
    tracing::info!(subject = %record.subject, version = record.version, id = record.id, "registered");
    let mut m = Map::new();
    m.insert("id".into(), json!(record.id));
    m.insert("version".into(), json!(record.version));
    add_schema_fields(&mut m, &record);
    ok(Value::Object(m))
}

async fn delete_subject(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let versions = lock(&s).delete_subject(&subject, flag(&p, "permanent"))?;
    ok(json!(versions))
}

async fn delete_version(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let v = version_param(&version)?;
    let deleted = lock(&s).delete_version(&subject, v, flag(&p, "permanent"))?;
    ok(json!(deleted))
}

async fn list_schemas(State(s): State<SharedRegistry>, Query(p): Params) -> ApiResult {
    let registry = lock(&s);
    let records = registry.list_schemas(
        p.get("subjectPrefix").map(String::as_str),
        flag(&p, "deleted"),
        flag(&p, "latestOnly"),
    );
    let mut list = Vec::new();
    for record in page(records, &p) {
        list.push(record_json(&with_format(&registry, record, &p)?));
    }
    ok(Value::Array(list))
}

async fn schema_types() -> ApiResult {
    ok(json!(["JSON", "PROTOBUF", "AVRO"]))
}

async fn schema_by_id(
    State(s): State<SharedRegistry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = id_param(&id)?;
    let subject = p.get("subject").map(String::as_str);
    let registry = lock(&s);
    let record = registry.schema_by_id(id, subject)?;
    let record = with_format(&registry, record, &p)?;
    let mut m = Map::new();
    if subject.is_some() {
        m.insert("subject".into(), json!(record.subject));
        m.insert("version".into(), json!(record.version));
    }
    add_schema_fields(&mut m, &record);
    ok(Value::Object(m))
}

async fn schema_text_by_id(
    State(s): State<SharedRegistry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = id_param(&id)?;
    let registry = lock(&s);
    let record = registry.schema_by_id(id, p.get("subject").map(String::as_str))?;
    let record = with_format(&registry, record, &p)?;
    let mut response = (StatusCode::OK, record.schema.text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

async fn subjects_for_id(
    State(s): State<SharedRegistry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = id_param(&id)?;
    let list = lock(&s).subjects_for_id(
        id,
        p.get("subject").map(String::as_str),
        flag(&p, "deleted"),
    )?;
    ok(json!(page(list, &p)))
}

async fn versions_for_id(
    State(s): State<SharedRegistry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = id_param(&id)?;
    let list = lock(&s).versions_for_id(
        id,
        p.get("subject").map(String::as_str),
        flag(&p, "deleted"),
    )?;
    let list: Vec<Value> = page(list, &p)
        .into_iter()
        .map(|(s, v)| json!({"subject": s, "version": v}))
        .collect();
    ok(Value::Array(list))
}

#[derive(Debug, Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn config_get(s: &SharedRegistry, subject: Option<&str>, p: &HashMap<String, String>) -> ApiResult {
    let level = lock(s).get_config(subject, flag(p, "defaultToGlobal"))?;
    ok(json!({"compatibilityLevel": level.as_str()}))
}

fn config_put(s: &SharedRegistry, subject: Option<&str>, body: &Bytes) -> ApiResult {
    let b: ConfigBody = parse_body(body)?;
    match b.compatibility.or(b.compatibility_level) {
        Some(raw) => {
            let level = Compatibility::parse(&raw)?;
            lock(s).set_config(subject, level)?;
            ok(json!({"compatibility": level.as_str()}))
        }
        None => ok(json!({})),
    }
}

fn config_delete(s: &SharedRegistry, subject: Option<&str>) -> ApiResult {
    let old = lock(s).delete_config(subject)?;
    ok(json!({"compatibilityLevel": old.as_str()}))
}

async fn get_global_config(State(s): State<SharedRegistry>, Query(p): Params) -> ApiResult {
    config_get(&s, None, &p)
}
async fn put_global_config(State(s): State<SharedRegistry>, body: Bytes) -> ApiResult {
    config_put(&s, None, &body)
}
async fn delete_global_config(State(s): State<SharedRegistry>) -> ApiResult {
    config_delete(&s, None)
}
async fn get_config(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    config_get(&s, Some(&subject), &p)
}
async fn put_config(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    config_put(&s, Some(&subject), &body)
}
async fn delete_config(State(s): State<SharedRegistry>, Path(subject): Path<String>) -> ApiResult {
    config_delete(&s, Some(&subject))
}

#[derive(Debug, Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

fn mode_get(s: &SharedRegistry, subject: Option<&str>, p: &HashMap<String, String>) -> ApiResult {
    let mode = lock(s).get_mode(subject, flag(p, "defaultToGlobal"))?;
    ok(json!({"mode": mode.as_str()}))
}

fn mode_put(
    s: &SharedRegistry,
    subject: Option<&str>,
    p: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let b: ModeBody = parse_body(body)?;
    let raw = b.mode.unwrap_or_default();
    let mode = Mode::parse(&raw)?;
    lock(s).set_mode(subject, mode, flag(p, "force"))?;
    ok(json!({"mode": raw}))
}

fn mode_delete(s: &SharedRegistry, subject: Option<&str>) -> ApiResult {
    let old = lock(s).delete_mode(subject)?;
    ok(json!({"mode": old.as_str()}))
}

async fn get_global_mode(State(s): State<SharedRegistry>, Query(p): Params) -> ApiResult {
    mode_get(&s, None, &p)
}
async fn put_global_mode(
    State(s): State<SharedRegistry>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    mode_put(&s, None, &p, &body)
}
async fn delete_global_mode(State(s): State<SharedRegistry>) -> ApiResult {
    mode_delete(&s, None)
}
async fn get_mode(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    mode_get(&s, Some(&subject), &p)
}
async fn put_mode(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    mode_put(&s, Some(&subject), &p, &body)
}
async fn delete_mode(State(s): State<SharedRegistry>, Path(subject): Path<String>) -> ApiResult {
    mode_delete(&s, Some(&subject))
}

fn compat(
    s: &SharedRegistry,
    subject: &str,
    version: Option<VersionId>,
    p: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let request = schema_request(body)?;
    let verbose = flag(p, "verbose");
    let messages =
        match lock(s).check_compatibility(subject, version, &request, flag(p, "normalize")) {
            Ok(m) => m,
            Err(e) if verbose && e.error_code() == 42201 => vec![e.to_string()],
            Err(e) => return Err(e.into()),
        };
    let mut out = json!({"is_compatible": messages.is_empty()});
    if verbose {
        out["messages"] = json!(messages);
    }
    ok(out)
}

async fn compat_all(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    compat(&s, &subject, None, &p, &body)
}

async fn compat_version(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    let v = version_param(&version)?;
    compat(&s, &subject, Some(v), &p, &body)
}
