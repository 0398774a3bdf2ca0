//! The plan file: the bytes `plan -o FILE` writes and `apply FILE` reads.
//!
//! Pretty-printed JSON (one key per line, so a pull request shows a readable
//! diff; JSON rather than YAML because every tool reads it the same way, and
//! because the bytes must be exactly reproducible), fields in a fixed order,
//! maps sorted, no timestamp, no URL, no credential. The last field,
//! `digest`, is the SHA-256 of the file's bytes as they would be without it:
//! [`read`] recomputes it and refuses a file that was edited by hand. See
//! `docs/plan-format.md`.

use sha2::{Digest, Sha256};

use crate::plan::{PLAN_FORMAT, Plan, Totals};

/// A plan file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanFileError {
    /// Not JSON, or not a plan.
    #[error("the file is not a kafka-backup plan: {reason}")]
    NotAPlan {
        /// What the parser said.
        reason: String,
    },
    /// A plan of another format version.
    #[error(
        "the plan file has format `{found}`, this version of kafka-backup reads `{PLAN_FORMAT}`\nhint: make the plan again with this version (`kafka-backup plan`)"
    )]
    UnknownFormat {
        /// The file's `format`.
        found: String,
    },
    /// No `digest` field.
    #[error("the plan file has no `digest`\nhint: make the plan again with `kafka-backup plan`")]
    MissingDigest,
    /// The totals are not what the steps and subjects make.
    #[error(
        "the plan file's totals ({recorded}) are not what its steps make ({derived})\nhint: make the plan again with `kafka-backup plan` and review that one"
    )]
    Totals {
        /// As the file says them.
        recorded: String,
        /// As the steps make them.
        derived: String,
    },
    /// The digest does not match the content.
    #[error(
        "the plan file was edited after it was made (`digest` is `{recorded}`, the content hashes to `{computed}`)\nhint: make the plan again with `kafka-backup plan` and review that one"
    )]
    Edited {
        /// Digest in the file.
        recorded: String,
        /// Digest of the content.
        computed: String,
    },
}

/// The bytes the digest is taken over: the file without its `digest`.
pub fn canonical_bytes(plan: &Plan) -> Vec<u8> {
    let mut bare = plan.clone();
    bare.digest = None;
    to_bytes(&bare)
}

fn to_bytes(plan: &Plan) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(plan).expect("a plan always serializes");
    bytes.push(b'\n');
    bytes
}

/// SHA-256 (lowercase hex) of [`canonical_bytes`].
pub fn digest(plan: &Plan) -> String {
    hex::encode(Sha256::digest(canonical_bytes(plan)))
}

/// The plan file's bytes, `digest` filled in. Same plan, same bytes.
pub fn write(plan: &Plan) -> Vec<u8> {
    let mut sealed = plan.clone();
    sealed.digest = Some(digest(plan));
    to_bytes(&sealed)
}

/// Reads a plan file and checks its digest.
pub fn read(bytes: &[u8]) -> Result<Plan, PlanFileError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| PlanFileError::NotAPlan {
            reason: e.to_string(),
        })?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(PLAN_FORMAT) => {}
        Some(other) => {
            return Err(PlanFileError::UnknownFormat {
                found: other.to_owned(),
            });
        }
        None => {
            return Err(PlanFileError::NotAPlan {
                reason: "no `format` field".to_owned(),
            });
        }
    }
    let plan: Plan = serde_json::from_value(value).map_err(|e| PlanFileError::NotAPlan {
        reason: e.to_string(),
    })?;
    let recorded = plan.digest.clone().ok_or(PlanFileError::MissingDigest)?;
    let computed = digest(&plan);
    if recorded != computed {
        return Err(PlanFileError::Edited { recorded, computed });
    }
    let derived = Totals::of(&plan.steps, &plan.subjects);
    if plan.totals != derived {
        let show = |t: &Totals| {
            format!(
                "{} to add, {} to change, {} to destroy, {} unchanged",
                t.add, t.change, t.destroy, t.unchanged
            )
        };
        return Err(PlanFileError::Totals {
            recorded: show(&plan.totals),
            derived: show(&derived),
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RegistrySnapshot;
    use crate::plan::{PlanOptions, plan};

    fn sample() -> Plan {
        let backup: RegistrySnapshot =
            serde_json::from_str(include_str!("../fixtures/plan/shifted-ids/backup.json")).unwrap();
        plan(
            &backup,
            &RegistrySnapshot::default(),
            &PlanOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_written_plan_reads_back_equal() {
        let p = sample();
        let bytes = write(&p);
        let read_back = read(&bytes).unwrap();
        assert_eq!(read_back.digest.as_deref(), Some(digest(&p).as_str()));
        let mut without = read_back.clone();
        without.digest = None;
        assert_eq!(without, p);
        assert_eq!(
            write(&read_back),
            bytes,
            "reading and writing again changes nothing"
        );
    }

    #[test]
    fn an_edited_plan_is_refused() {
        let bytes = String::from_utf8(write(&sample())).unwrap();
        let edited = bytes.replacen("\"missing in target", "\"fine, trust me", 1);
        let edited = if edited == bytes {
            bytes.replacen("\"force_ids\": false", "\"force_ids\": true", 1)
        } else {
            edited
        };
        assert_ne!(edited, bytes);
        let err = read(edited.as_bytes()).unwrap_err();
        assert!(matches!(err, PlanFileError::Edited { .. }));
        assert!(
            err.to_string()
                .starts_with("the plan file was edited after it was made"),
            "{err}"
        );
        // whitespace alone is not an edit of the plan
        let reflowed = bytes.replace("\n  ", "\n    ");
        assert!(read(reflowed.as_bytes()).is_ok());
    }

    #[test]
    fn totals_that_are_not_the_steps_are_refused_even_when_sealed() {
        let mut p = sample();
        p.totals.destroy = 0;
        p.totals.add += 1;
        let err = read(&write(&p)).unwrap_err();
        assert!(matches!(err, PlanFileError::Totals { .. }), "{err}");
        assert!(
            err.to_string().contains("are not what its steps make"),
            "{err}"
        );
    }

    #[test]
    fn other_files_are_named_as_such() {
        assert!(matches!(
            read(b"not json"),
            Err(PlanFileError::NotAPlan { .. })
        ));
        assert_eq!(
            read(br#"{"format": "kafka-backup/plan/v9"}"#),
            Err(PlanFileError::UnknownFormat {
                found: "kafka-backup/plan/v9".into()
            })
        );
        let bytes = String::from_utf8(write(&sample())).unwrap();
        let start = bytes.find(",\n  \"digest\"").unwrap();
        let unsealed = format!("{}\n}}\n", &bytes[..start]);
        assert_eq!(read(unsealed.as_bytes()), Err(PlanFileError::MissingDigest));
        let extra = bytes.replacen("{\n", "{\n  \"url\": \"http://user:pw@x\",\n", 1);
        assert!(matches!(
            read(extra.as_bytes()),
            Err(PlanFileError::NotAPlan { .. })
        ));
    }
}
