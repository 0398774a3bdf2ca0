//! The REST layer of the Karapace 3.16 dialect ([`crate::dialect`] lists every deviation):
//! Karapace's routes, the checks it makes on request bodies before anything else, and its
//! response shapes. The state machine underneath is the same [`Registry`], built with
//! [`Dialect::Karapace316`](crate::dialect::Dialect::Karapace316).

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::{
    ApiError, ApiResult, Params, SharedRegistry, add_schema_fields, flag, id_param, lock, ok,
    parse_body, schema_request, version_param,
};
use crate::error::RegistryError;
use crate::registry::{DeletedFilter, SchemaRecord};
use crate::schema::protobuf;
use crate::types::{Compatibility, SchemaType};

/// Builds Karapace's route table over a shared registry.
pub fn router(state: SharedRegistry) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/subjects", get(list_subjects))
        .route(
            "/subjects/{subject}",
            post(lookup).delete(super::delete_subject),
        )
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
        .route("/schemas/ids/{id}/versions", get(versions_for_id))
        // Karapace's `/schemas/ids/<schema_id:path>` takes `1/subjects`, `1/schema`, ... as
        // the id and fails to parse it
        .route("/schemas/ids/{id}/{*rest}", get(unparsable_id))
        .route(
            "/config",
            get(super::get_global_config).put(put_global_config),
        )
        .route(
            "/config/{subject}",
            get(super::get_config).put(put_config).delete(delete_config),
        )
        .route("/mode", get(super::get_global_mode))
        .route("/mode/{subject}", get(super::get_mode))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// aiohttp's own answer for a route that does not exist: plain text, no `error_code`.
fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "404: Not Found")
}

async fn method_not_allowed() -> Response {
    plain(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed")
}

async fn unparsable_id() -> ApiResult {
    Err(ApiError::new(404, 404, "HTTP 404 Not Found"))
}

async fn root() -> Response {
    let mut response = (StatusCode::OK, "{}").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// What Karapace checks in a schema body before it looks at the registry, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyChecks {
    /// `POST /subjects/{s}/versions`: fields, `schemaType`, `schema` present, references.
    Register,
    /// `POST /subjects/{s}`: fields, `schemaType`, references.
    Lookup,
    /// `POST /compatibility/...`: `schemaType`, references.
    Compatibility,
}

const ALLOWED_FIELDS: [&str; 5] = ["schema", "schemaType", "references", "metadata", "ruleSet"];
const SCHEMA_TYPES: [&str; 3] = ["AVRO", "JSON", "PROTOBUF"];

fn check_body(body: &Bytes, checks: BodyChecks) -> Result<(), ApiError> {
    let value: Value = parse_body(body)?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::new(400, 400, "Malformed request"));
    };
    if checks != BodyChecks::Compatibility
        && let Some(field) = object
            .keys()
            .find(|k| !ALLOWED_FIELDS.contains(&k.as_str()))
    {
        return Err(ApiError::new(
            422,
            422,
            format!("Unrecognized field: {field}"),
        ));
    }
    let schema_type = match object.get("schemaType") {
        None => "AVRO",
        Some(Value::String(t)) if SCHEMA_TYPES.contains(&t.as_str()) => t.as_str(),
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_owned);
            return Err(ApiError::new(
                422,
                422,
                format!("Invalid schemaType {shown}"),
            ));
        }
    };
    if checks == BodyChecks::Register && !object.contains_key("schema") {
        return Err(ApiError::new(422, 42201, "Empty schema"));
    }
    match object.get("references") {
        None | Some(Value::Null) => {}
        Some(Value::Array(refs)) if refs.is_empty() || schema_type == "PROTOBUF" => {}
        Some(Value::Array(_)) => {
            return Err(ApiError::new(
                422,
                44302,
                format!("Schema references are not supported for '{schema_type}' schema type"),
            ));
        }
        Some(_) => {
            return Err(ApiError::new(400, 400, "Expected array of `references`"));
        }
    }
    Ok(())
}

/// Karapace's 409: `error_code` 409 and one reason.
fn incompatible(s: &SharedRegistry, e: RegistryError) -> ApiError {
    match e {
        RegistryError::Incompatible { subject, details } => {
            let level = lock(s).compatibility_in_scope(&subject);
            let reason = details.first().cloned().unwrap_or_default();
            ApiError::new(
                409,
                409,
                format!(
                    "Incompatible schema, compatibility_mode={} {reason}",
                    level.as_str()
                ),
            )
        }
        other => other.into(),
    }
}

/// Karapace names the version as the request wrote it (`latest`, not -1).
fn with_raw_version(e: RegistryError, raw: &str) -> ApiError {
    let (code, message) = match e {
        RegistryError::VersionNotFound(_) => (40402, format!("Version {raw} not found.")),
        RegistryError::VersionSoftDeleted(subject, _) => (
            40406,
            format!(
                "Subject '{subject}' Version {raw} was soft deleted. Set permanent=true to delete permanently"
            ),
        ),
        RegistryError::VersionNotSoftDeleted(subject, _) => (
            40407,
            format!(
                "Subject '{subject}' Version {raw} was not deleted first before being permanently deleted"
            ),
        ),
        other => return other.into(),
    };
    ApiError::new(404, code, message)
}

fn listing_filter(p: &HashMap<String, String>) -> DeletedFilter {
    // no `deletedOnly`
    DeletedFilter::from_flags(flag(p, "deleted"), false)
}

async fn list_subjects(State(s): State<SharedRegistry>, Query(p): Params) -> ApiResult {
    ok(json!(lock(&s).list_subjects(None, listing_filter(&p))))
}

async fn list_versions(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    ok(json!(lock(&s).list_versions(&subject, listing_filter(&p))?))
}

async fn get_version(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let v = version_param(&version)?;
    let record = lock(&s)
        .get_version(&subject, v, flag(&p, "deleted"))
        .map_err(|e| with_raw_version(e, &version))?;
    ok(super::record_json(&record))
}

async fn delete_version(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let v = version_param(&version)?;
    let deleted = lock(&s)
        .delete_version(&subject, v, flag(&p, "permanent"))
        .map_err(|e| with_raw_version(e, &version))?;
    ok(json!(deleted))
}

async fn get_version_schema(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    // no `deleted`, no `format`
    let v = version_param(&version)?;
    let record = lock(&s)
        .get_version(&subject, v, false)
        .map_err(|e| with_raw_version(e, &version))?;
    let mut response = (StatusCode::OK, record.schema.text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::CONTENT_TYPE),
    );
    Ok(response)
}

async fn referenced_by(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let v = version_param(&version)?;
    let ids = lock(&s)
        .referenced_by(&subject, v, false)
        .map_err(|e| with_raw_version(e, &version))?;
    ok(json!(ids))
}

async fn register(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    if subject
        .chars()
        .any(|c| (c as u32) <= 31 || (127..=159).contains(&(c as u32)))
    {
        return Err(RegistryError::InvalidSubject(subject).into());
    }
    check_body(&body, BodyChecks::Register)?;
    let request = schema_request(&body)?;
    let registered = lock(&s).register(&subject, &request, flag(&p, "normalize"));
    let record = registered.map_err(|e| incompatible(&s, e))?;
    tracing::info!(subject = %record.subject, version = record.version, id = record.id, "registered");
    ok(json!({"id": record.id}))
}

async fn lookup(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    // no `format`
    check_body(&body, BodyChecks::Lookup)?;
    let request = schema_request(&body)?;
    let record = lock(&s).lookup(
        &subject,
        &request,
        flag(&p, "normalize"),
        flag(&p, "deleted"),
    )?;
    ok(lookup_json(&record))
}

/// `POST /subjects/{s}`: `{subject, version, id, schema, schemaType?}`, no references.
fn lookup_json(r: &SchemaRecord) -> Value {
    let mut m = Map::new();
    m.insert("subject".into(), json!(r.subject));
    m.insert("version".into(), json!(r.version));
    m.insert("id".into(), json!(r.id));
    m.insert("schema".into(), json!(r.schema.text));
    if let Some(t) = r.schema.schema_type.response_field() {
        m.insert("schemaType".into(), json!(t));
    }
    Value::Object(m)
}

async fn list_schemas(State(s): State<SharedRegistry>, Query(p): Params) -> ApiResult {
    // no `subjectPrefix`, `offset`, `limit` or `format`; `deleted` inverted (see the registry)
    let records = lock(&s).list_schemas(None, flag(&p, "deleted"), flag(&p, "latestOnly"));
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("subject".into(), json!(r.subject));
            m.insert("version".into(), json!(r.version));
            m.insert("id".into(), json!(r.id));
            m.insert("schemaType".into(), json!(r.schema.schema_type.as_str()));
            if !r.schema.references.is_empty() {
                m.insert(
                    "references".into(),
                    super::references_json(&r.schema.references),
                );
            }
            m.insert("schema".into(), json!(r.schema.text));
            Value::Object(m)
        })
        .collect();
    ok(Value::Array(list))
}

async fn schema_types() -> ApiResult {
    ok(json!(["JSON", "AVRO", "PROTOBUF"]))
}

async fn schema_by_id(
    State(s): State<SharedRegistry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    // `subject` is ignored; of the formats only `serialized` is known, and only for
    // Protobuf, with Karapace's defects: HTTP 500 for a schema with references, a
    // descriptor without the types of message and enum fields otherwise
    let id = id_param(&id)?;
    let registry = lock(&s);
    let mut record = registry.schema_by_id(id, None)?;
    let serialized = p
        .get("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("serialized"))
        && record.schema.schema_type == SchemaType::Protobuf;
    if serialized {
        if !record.schema.references.is_empty() {
            // aiohttp's error middleware: plain `application/json`
            let mut response = (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error_code": 500, "message": "Internal server error"}).to_string(),
            )
                .into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(response);
        }
        let b64 = registry.formatted(&record, "serialized")?;
        record.schema.text = protobuf::karapace_serialized(&b64).unwrap_or(b64);
    }
    let mut m = Map::new();
    add_schema_fields(&mut m, &record);
    ok(Value::Object(m))
}

async fn versions_for_id(
    State(s): State<SharedRegistry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = id_param(&id)?;
    let list: Vec<Value> = lock(&s)
        .versions_for_id(id, None, flag(&p, "deleted"))?
        .into_iter()
        .map(|(s, v)| json!({"subject": s, "version": v}))
        .collect();
    ok(Value::Array(list))
}

/// Karapace reads only `compatibility`, and only an exact level name.
fn level_of(body: &Bytes, global: bool) -> Result<Compatibility, ApiError> {
    let value: Value = parse_body(body)?;
    let refused = || match global {
        true => ApiError::from(RegistryError::InvalidCompatibility),
        false => ApiError::new(422, 42203, "Invalid compatibility level"),
    };
    let raw = value
        .get("compatibility")
        .and_then(Value::as_str)
        .ok_or_else(refused)?;
    match Compatibility::parse(raw) {
        Ok(level) if level.as_str() == raw => Ok(level),
        _ => Err(refused()),
    }
}

async fn put_global_config(State(s): State<SharedRegistry>, body: Bytes) -> ApiResult {
    let level = level_of(&body, true)?;
    lock(&s).set_config(None, level)?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn put_config(
    State(s): State<SharedRegistry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = level_of(&body, false)?;
    lock(&s).set_config(Some(&subject), level)?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn delete_config(State(s): State<SharedRegistry>, Path(subject): Path<String>) -> ApiResult {
    let global = lock(&s).delete_config(Some(&subject))?;
    ok(json!({"compatibility": global.as_str()}))
}

async fn compat_version(
    State(s): State<SharedRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    check_body(&body, BodyChecks::Compatibility)?;
    let v = version_param(&version)?;
    let request = schema_request(&body)?;
    let messages = lock(&s)
        .check_compatibility(&subject, Some(v), &request, flag(&p, "normalize"))
        .map_err(|e| with_raw_version(e, &version))?;
    ok(json!({"is_compatible": messages.is_empty()}))
}
