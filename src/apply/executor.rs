//! Runs one plan step against a registry, idempotently: a step whose effect
//! is already there counts as done (a schema the subject already holds, a
//! version or subject already deleted, a subject-level setting already gone).

use crate::model::{SchemaType, split_context};
use crate::plan::{Step, StepKind};
use crate::registry::{RegisterRequest, RegistryApi, RegistryError, SchemaInput};

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDone {
    /// The effect was already there; nothing was changed.
    pub already: bool,
    /// A registration: source context, source ID, target ID, target version.
    pub registered: Option<Registration>,
}

/// Where a registered schema ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub source_context: String,
    pub source_id: u32,
    pub target_id: u32,
    pub target_version: Option<u32>,
}

/// Why a step could not run.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The step lacks what its kind needs (a plan made by another tool?).
    #[error("the step is malformed: {0}")]
    Malformed(String),
    /// The target holds the schema, but under another ID than the plan forces.
    #[error(
        "the target already holds this schema under ID {found}, the plan registers it under ID {planned}"
    )]
    IdMismatch { found: u32, planned: u32 },
}

/// The scope a settings step addresses: a subject, a context (`:.ctx:`) or global.
pub fn scope(step: &Step) -> Option<String> {
    match (&step.subject, &step.context) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(c)) => Some(format!(":{c}:")),
        (None, None) => None,
    }
}

fn schema_type(name: Option<&str>) -> SchemaType {
    match name {
        Some("JSON") => SchemaType::Json,
        Some("PROTOBUF") => SchemaType::Protobuf,
        _ => SchemaType::Avro,
    }
}

fn code_in(err: &RegistryError, codes: &[i64]) -> bool {
    err.error_code().is_some_and(|c| codes.contains(&c))
}

/// Runs `step` against `api`.
pub async fn run_step(api: &dyn RegistryApi, step: &Step) -> Result<StepDone, StepError> {
    let scope = scope(step);
    let scope = scope.as_deref();
    let body = step.request.body.as_ref();
    let delete = step.request.method.eq_ignore_ascii_case("DELETE");
    let query = step.request.path.split_once('?').map_or("", |(_, q)| q);
    let flag = |name: &str| query.split('&').any(|kv| kv == format!("{name}=true"));
    let plain = StepDone {
        already: false,
        registered: None,
    };
    let already = StepDone {
        already: true,
        registered: None,
    };
    match step.kind {
        StepKind::SetMode | StepKind::RestoreMode => {
            if delete {
                return match api.delete_mode(scope).await {
                    Ok(()) => Ok(plain),
                    // 40409: the scope has no mode of its own any more
                    Err(e) if code_in(&e, &[40409, 40401]) => Ok(already),
                    Err(e) => Err(e.into()),
                };
            }
            let mode = body
                .and_then(|b| b.mode)
                .ok_or_else(|| StepError::Malformed("a mode step without `mode`".into()))?;
            api.set_mode(scope, mode, flag("force")).await?;
            Ok(plain)
        }
        StepKind::SetCompatibility | StepKind::RestoreCompatibility => {
            if delete {
                return match api.delete_config(scope).await {
                    Ok(()) => Ok(plain),
                    // 40408: the scope has no level of its own any more
                    Err(e) if code_in(&e, &[40408, 40401]) => Ok(already),
                    Err(e) => Err(e.into()),
                };
            }
            let level = body.and_then(|b| b.compatibility).ok_or_else(|| {
                StepError::Malformed("a compatibility step without `compatibility`".into())
            })?;
            api.set_config(scope, level).await?;
            Ok(plain)
        }
        StepKind::DeleteVersion | StepKind::DeleteSubject => {
            let subject = step
                .subject
                .as_deref()
                .ok_or_else(|| StepError::Malformed("a delete without a subject".into()))?;
            let permanent = flag("permanent");
            let result = match (step.kind, step.version) {
                (StepKind::DeleteVersion, Some(v)) => {
                    api.delete_version(subject, v, permanent).await.map(|_| ())
                }
                (StepKind::DeleteVersion, None) => {
                    return Err(StepError::Malformed(
                        "a version delete without a version".into(),
                    ));
                }
                _ => api.delete_subject(subject, permanent).await.map(|_| ()),
            };
            match result {
                Ok(()) => Ok(plain),
                // already (soft-)deleted: 40404 subject / 40406 version soft-deleted
                // before; 40401 / 40402 gone altogether
                Err(e) if code_in(&e, &[40401, 40402, 40404, 40406]) => Ok(already),
                Err(e) => Err(e.into()),
            }
        }
        StepKind::Register => {
            let subject = step
                .subject
                .as_deref()
                .ok_or_else(|| StepError::Malformed("a registration without a subject".into()))?;
            let body =
                body.ok_or_else(|| StepError::Malformed("a registration without a body".into()))?;
            let source = step.source.as_ref().ok_or_else(|| {
                StepError::Malformed("a registration without its source version".into())
            })?;
            let input = SchemaInput {
                schema: body.schema.clone().ok_or_else(|| {
                    StepError::Malformed("a registration without `schema`".into())
                })?,
                schema_type: schema_type(body.schema_type.as_deref()),
                references: body.references.clone(),
            };
            let registration = |target_id, target_version| Registration {
                source_context: split_context(&source.subject).0.to_owned(),
                source_id: source.id,
                target_id,
                target_version,
            };
            if let Some(found) = api.lookup(subject, &input, false, false).await? {
                if let Some(planned) = body.id
                    && planned != found.id
                {
                    return Err(StepError::IdMismatch {
                        found: found.id,
                        planned,
                    });
                }
                return Ok(StepDone {
                    already: true,
                    registered: Some(registration(found.id, Some(found.version))),
                });
            }
            let done = api
                .register(
                    subject,
                    &RegisterRequest {
                        schema: input,
                        id: body.id,
                        version: body.version,
                        normalize: false,
                    },
                )
                .await?;
            Ok(StepDone {
                already: false,
                registered: Some(registration(done.id, done.version.or(step.version))),
            })
        }
    }
}
