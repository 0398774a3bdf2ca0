//! Runs one plan step against a registry, idempotently: a step whose effect
//! is already there counts as done (a schema the subject already holds, a
//! version or subject already deleted, a subject-level setting already gone).

use crate::config::Compatibility;
use crate::model::split_context;
use crate::plan::{Change, Step};
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
    /// The target holds the schema, but under another ID than the plan forces.
    #[error(
        "the target already holds this schema under ID {found}, the plan registers it under ID {planned}"
    )]
    IdMismatch { found: u32, planned: u32 },
}

/// The scope a step addresses as the registry API names it: a subject, a
/// context (`:.ctx:`) or global (`None`).
pub fn scope(step: &Step) -> Option<String> {
    step.scope().api()
}

fn code_in(err: &RegistryError, codes: &[i64]) -> bool {
    err.error_code().is_some_and(|c| codes.contains(&c))
}

const PLAIN: StepDone = StepDone {
    already: false,
    registered: None,
};

const ALREADY: StepDone = StepDone {
    already: true,
    registered: None,
};

/// Runs `step` against `api`. What it sends is what its [`Change`] says,
/// nothing parsed back out of a path.
pub async fn run_step(api: &dyn RegistryApi, step: &Step) -> Result<StepDone, StepError> {
    let scope = scope(step);
    let scope = scope.as_deref();
    match &step.change {
        Change::SetMode { to, force, .. } => {
            api.set_mode(scope, *to, *force).await?;
            Ok(PLAIN)
        }
        Change::RestoreMode {
            after: Some(mode),
            force,
            ..
        } => {
            api.set_mode(scope, *mode, *force).await?;
            Ok(PLAIN)
        }
        Change::RestoreMode { after: None, .. } => match api.delete_mode(scope).await {
            Ok(()) => Ok(PLAIN),
            // 40409: the scope has no mode of its own any more
            Err(e) if code_in(&e, &[40409, 40401]) => Ok(ALREADY),
            Err(e) => Err(e.into()),
        },
        Change::SetCompatibility { .. } => {
            api.set_config(scope, Compatibility::None).await?;
            Ok(PLAIN)
        }
        Change::RestoreCompatibility {
            after: Some(level), ..
        } => {
            api.set_config(scope, *level).await?;
            Ok(PLAIN)
        }
        Change::RestoreCompatibility { after: None, .. } => {
            match api.delete_config(scope).await {
                Ok(()) => Ok(PLAIN),
                // 40408: the scope has no level of its own any more
                Err(e) if code_in(&e, &[40408, 40401]) => Ok(ALREADY),
                Err(e) => Err(e.into()),
            }
        }
        Change::DeleteVersion {
            subject,
            version,
            permanent,
            ..
        } => deleted(
            api.delete_version(subject, *version, *permanent)
                .await
                .map(|_| ()),
        ),
        Change::SoftDeleteVersion {
            subject, version, ..
        } => deleted(
            api.delete_version(subject, *version, false)
                .await
                .map(|_| ()),
        ),
        Change::DeleteSubject {
            subject, permanent, ..
        } => deleted(api.delete_subject(subject, *permanent).await.map(|_| ())),
        Change::Register {
            subject,
            version,
            source,
            schema,
            schema_type,
            references,
            import_id,
            ..
        } => {
            let input = SchemaInput {
                schema: schema.clone(),
                schema_type: *schema_type,
                references: references.clone(),
            };
            let registration = |target_id, target_version| Registration {
                source_context: split_context(&source.subject).0.to_owned(),
                source_id: source.id,
                target_id,
                target_version,
            };
            if let Some(found) = api.lookup(subject, &input, false, false).await? {
                if let Some(planned) = *import_id
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
                        id: *import_id,
                        version: import_id.map(|_| *version),
                        normalize: false,
                    },
                )
                .await?;
            Ok(StepDone {
                already: false,
                registered: Some(registration(done.id, done.version.or(Some(*version)))),
            })
        }
    }
}

/// A delete's outcome: already (soft-)deleted counts as done (40404 subject /
/// 40406 version soft-deleted before; 40401 / 40402 gone altogether).
fn deleted(result: Result<(), RegistryError>) -> Result<StepDone, StepError> {
    match result {
        Ok(()) => Ok(PLAIN),
        Err(e) if code_in(&e, &[40401, 40402, 40404, 40406]) => Ok(ALREADY),
        Err(e) => Err(e.into()),
    }
}
