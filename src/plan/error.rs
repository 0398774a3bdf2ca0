//! Why no plan could be made at all. Anything a plan can still show (a
//! diverged version, an ID held by other content) is a [`super::Conflict`]
//! inside the plan instead, so that a reviewer sees all of them at once.

/// A failure that stops planning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A `subjects` or `exclude` pattern is not a glob.
    #[error("restore option `{key}`: {reason}")]
    InvalidGlob {
        /// `subjects` or `exclude`.
        key: &'static str,
        /// What the glob parser said.
        reason: String,
    },
    /// References go round in a circle.
    #[error(
        "schema references form a cycle: {chain}\nhint: a registry cannot hold such schemas; check the backup with `kafka-backup describe`"
    )]
    Cycle {
        /// `a-value v1 -> b-value v1 -> a-value v1`.
        chain: String,
    },
    /// A reference points to a version neither the backup nor the target has.
    #[error(
        "unresolved schema reference: {chain}\n`{subject}` version {version} is neither in the backup nor in the target registry\nhint: {hint}"
    )]
    UnresolvedReference {
        /// From a selected version to the missing one.
        chain: String,
        /// The missing subject (as named in the backup).
        subject: String,
        /// The missing version.
        version: i32,
        /// What to do about it.
        hint: String,
    },
    /// A schema text that cannot be read as its type.
    #[error("`{subject}` version {version} in the {side}: {reason}")]
    MalformedSchema {
        /// `backup` or `target`.
        side: &'static str,
        /// The subject holding it.
        subject: String,
        /// Its version.
        version: u32,
        /// Why it could not be read.
        reason: String,
    },
    /// Two subjects of the backup would be restored under one name.
    #[error(
        "`{first}` and `{second}` would both be restored as `{target}`\nhint: change `subject_mapping` or `context_mapping` so that each restored subject gets its own name"
    )]
    NameCollision {
        /// The first backed-up subject (name order).
        first: String,
        /// The second one.
        second: String,
        /// The name both map to.
        target: String,
    },
}

/// An `id_mapping_file` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdMappingFileError {
    /// Not the `{"<source id>": <target id>}` shape.
    #[error(
        "the ID mapping file is not valid: {reason}\nhint: write a JSON object such as `{{\"1\": 100, \"5\": 101}}` (keys of another context as `\":.ctx:5\"`)"
    )]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// A source ID listed twice.
    #[error("source ID `{key}` is listed twice in the ID mapping file")]
    DuplicateSource {
        /// The key as written.
        key: String,
    },
    /// Two source IDs pinned to the same target ID.
    #[error(
        "source IDs `{first}` and `{second}` are both pinned to target ID {target} in context `{context}`\nhint: every source schema needs its own target ID"
    )]
    DuplicateTarget {
        /// First source key (order of the file's keys, sorted).
        first: String,
        /// Second source key.
        second: String,
        /// The shared target ID.
        target: u32,
        /// The source context.
        context: String,
    },
}
