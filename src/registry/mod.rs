//! The Schema Registry adapter: the [`RegistryApi`] trait (the minimum a
//! backup and a restore need from a registry), its HTTP implementation
//! [`HttpRegistry`], and [`snapshot::fetch`], which reads a whole registry
//! into a [`crate::model::RegistrySnapshot`] with few requests.
//!
//! The planner never sees this module: it works on snapshots. Only the backup
//! (reading) and the applier (writing) talk to a registry, through the trait,
//! so that tests can put a fake behind it.

mod auth;
mod client;
mod error;
pub mod retry;
pub mod snapshot;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use client::{HttpRegistry, encode_segment};
pub use error::{Failure, RegistryError};
pub use retry::RetryPolicy;
pub use snapshot::{FetchMethod, MissingReference, PulledIn, SelectionReport, capabilities, fetch};

use crate::model::{Compatibility, Mode, Reference, SchemaType, SchemaVersion};

/// Result of a registry call.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A version of a subject as an URL names it: a number or `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    /// A version number.
    Number(u32),
    /// The highest live version.
    Latest,
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionRef::Number(n) => write!(f, "{n}"),
            VersionRef::Latest => f.write_str("latest"),
        }
    }
}

/// One version as a read endpoint serves it (`GET /subjects/{s}/versions/{v}`,
/// an entry of `GET /schemas`). Whether it is soft-deleted is not in the
/// answer: the caller knows from which listing it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    /// Qualified subject name.
    pub subject: String,
    /// Version number.
    pub version: u32,
    /// Schema ID.
    pub id: u32,
    /// `AVRO` when the answer leaves `schemaType` out.
    pub schema_type: SchemaType,
    /// Schema text as served.
    pub schema: String,
    /// References as served.
    pub references: Vec<Reference>,
}

impl SchemaRecord {
    /// The snapshot form of this record.
    pub fn into_version(self, deleted: bool) -> SchemaVersion {
        SchemaVersion {
            subject: self.subject,
            version: self.version,
            id: self.id,
            schema_type: self.schema_type,
            schema: self.schema,
            references: self.references,
            deleted,
        }
    }
}

/// What `GET /schemas/ids/{id}` serves: the content an ID stands for, with
/// no subject or version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaById {
    /// `AVRO` when the answer leaves `schemaType` out.
    pub schema_type: SchemaType,
    /// Schema text as served.
    pub schema: String,
    /// References as served.
    pub references: Vec<Reference>,
}

/// A schema as sent to register, look up or check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInput {
    /// Schema text.
    pub schema: String,
    /// Its type.
    pub schema_type: SchemaType,
    /// Its references.
    pub references: Vec<Reference>,
}

impl From<&SchemaVersion> for SchemaInput {
    fn from(v: &SchemaVersion) -> Self {
        Self {
            schema: v.schema.clone(),
            schema_type: v.schema_type,
            references: v.references.clone(),
        }
    }
}

/// `POST /subjects/{s}/versions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// What to register.
    pub schema: SchemaInput,
    /// The ID to register under (IMPORT mode only).
    pub id: Option<u32>,
    /// The version to register as (IMPORT mode only).
    pub version: Option<u32>,
    /// `?normalize=true`: the registry stores its normalized form.
    pub normalize: bool,
}

/// What a registration returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The schema's ID (existing or new).
    pub id: u32,
    /// The version, when the registry says (newer registries do).
    pub version: Option<u32>,
}

/// What a compatibility check returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityCheck {
    /// The schema could be registered under the subject's level.
    pub is_compatible: bool,
    /// Why not, when the registry explains.
    pub messages: Vec<String>,
}

/// `GET /schemas`: one page of the bulk listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemasQuery {
    /// `subjectPrefix`: `:*:` for every context; `None` means the default context.
    pub subject_prefix: Option<String>,
    /// Include soft-deleted versions.
    pub deleted: bool,
    /// Index of the first entry.
    pub offset: usize,
    /// Entries per page.
    pub limit: usize,
}

/// The registry operations kafka-backup uses, and nothing more.
///
/// `scope` arguments are `None` for the global scope, a qualified subject
/// name, or a context written `:.ctx:`.
#[async_trait]
pub trait RegistryApi: Send + Sync {
    /// `GET /subjects[?deleted=true]`: subject names of every context.
    async fn subjects(&self, deleted: bool) -> Result<Vec<String>>;
    /// `GET /subjects/{s}/versions[?deleted=true]`.
    async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>>;
    /// `GET /subjects/{s}/versions/{v}[?deleted=true]`.
    async fn version(
        &self,
        subject: &str,
        version: VersionRef,
        deleted: bool,
    ) -> Result<SchemaRecord>;
    /// `GET /schemas?subjectPrefix=&deleted=&offset=&limit=`.
    async fn schemas_page(&self, query: &SchemasQuery) -> Result<Vec<SchemaRecord>>;
    /// `GET /config[/{scope}]`: `None` when the scope has no level of its own (40408).
    async fn config(&self, scope: Option<&str>) -> Result<Option<Compatibility>>;
    /// `GET /mode[/{scope}]`: `None` when the scope has no mode of its own (40409).
    async fn mode(&self, scope: Option<&str>) -> Result<Option<Mode>>;
    /// `GET /contexts`.
    async fn contexts(&self) -> Result<Vec<String>>;
    /// `GET /v1/metadata/version`: `None` when the registry does not say.
    async fn server_version(&self) -> Result<Option<String>>;
    /// `POST /subjects/{s}/versions[?normalize=true]`.
    async fn register(&self, subject: &str, request: &RegisterRequest) -> Result<Registered>;
    /// `POST /subjects/{s}`: the version already holding this schema, if any.
    async fn lookup(
        &self,
        subject: &str,
        schema: &SchemaInput,
        normalize: bool,
        deleted: bool,
    ) -> Result<Option<SchemaRecord>>;
    /// `POST /compatibility/subjects/{s}/versions/{v}?verbose=true`.
    async fn check_compatibility(
        &self,
        subject: &str,
        version: VersionRef,
        schema: &SchemaInput,
    ) -> Result<CompatibilityCheck>;
    /// `PUT /config[/{scope}]`.
    async fn set_config(&self, scope: Option<&str>, level: Compatibility) -> Result<()>;
    /// `DELETE /config[/{scope}]`: back to the scope above.
    async fn delete_config(&self, scope: Option<&str>) -> Result<()>;
    /// `PUT /mode[/{scope}][?force=true]`.
    async fn set_mode(&self, scope: Option<&str>, mode: Mode, force: bool) -> Result<()>;
    /// `DELETE /mode[/{scope}]`.
    async fn delete_mode(&self, scope: Option<&str>) -> Result<()>;
    /// `DELETE /subjects/{s}[?permanent=true]`: the versions deleted.
    async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>>;
    /// `DELETE /subjects/{s}/versions/{v}[?permanent=true]`.
    async fn delete_version(&self, subject: &str, version: u32, permanent: bool) -> Result<u32>;
    /// Whether the registry answers at all, asked once (`GET /config`) with
    /// no retry: any answer but a transient failure (server error, timeout,
    /// no connection) counts, a refusal too. For deciding quickly whether
    /// more requests are worth sending.
    async fn answers(&self) -> Result<()> {
        match self.config(None).await {
            Err(e) if e.is_transient() => Err(e),
            _ => Ok(()),
        }
    }
    /// `GET /schemas/ids/{id}[?subject=:.ctx:]`: the schema `id` serves in
    /// `context` (`.` is the default one). Only `verify` needs it, so an
    /// adapter without it answers [`RegistryError::EndpointNotFound`].
    async fn schema_by_id(&self, id: u32, context: &str) -> Result<SchemaById> {
        let _ = context;
        Err(RegistryError::EndpointNotFound(Box::new(Failure {
            method: "GET".into(),
            path: format!("/schemas/ids/{id}"),
            status: None,
            code: None,
            message: "this registry adapter does not read schemas by ID".into(),
            attempts: 0,
        })))
    }
    /// `GET /schemas/ids/{id}/versions[?deleted=true]`: the subject versions
    /// of the default context holding schema `id`. Only a backup needs it (to
    /// take the versions of IDs its records carry), so an adapter without it
    /// answers [`RegistryError::EndpointNotFound`].
    async fn schema_id_versions(&self, id: u32, deleted: bool) -> Result<Vec<(String, u32)>> {
        let _ = deleted;
        Err(RegistryError::EndpointNotFound(Box::new(Failure {
            method: "GET".into(),
            path: format!("/schemas/ids/{id}/versions"),
            status: None,
            code: None,
            message: "this registry adapter does not list the versions of an ID".into(),
            attempts: 0,
        })))
    }
}
