//! Value types of the registry: schema types, references, compatibility levels, modes,
//! version ids and context-qualified subject names.

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// The default context's name.
pub const DEFAULT_CONTEXT: &str = ".";

/// Kind of schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemaType {
    /// Apache Avro (the default when `schemaType` is absent).
    Avro,
    /// JSON Schema.
    Json,
    /// Protocol Buffers.
    Protobuf,
}

impl SchemaType {
    /// Parses the request's `schemaType` (case-insensitive); `None` means AVRO.
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        match raw.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") | Some("") => Ok(Self::Avro),
            Some("JSON") => Ok(Self::Json),
            Some("PROTOBUF") => Ok(Self::Protobuf),
            Some(_) => Err(RegistryError::InvalidSchema(format!(
                "Invalid schema type {}",
                raw.unwrap_or_default()
            ))),
        }
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Json => "JSON",
            Self::Protobuf => "PROTOBUF",
        }
    }

    /// The `schemaType` to put in responses: Confluent omits it for AVRO.
    pub fn response_field(self) -> Option<&'static str> {
        (self != Self::Avro).then(|| self.as_str())
    }
}

/// A reference from one schema to a version of another subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Reference {
    /// Import name (Avro: the referenced type's full name; Protobuf: the import path).
    pub name: String,
    /// Referenced subject, relative to the referencing subject's context.
    pub subject: String,
    /// Referenced version.
    pub version: i32,
}

/// Compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// No checks.
    None,
    /// New reads the latest.
    Backward,
    /// New reads all previous.
    BackwardTransitive,
    /// Latest reads new.
    Forward,
    /// All previous read new.
    ForwardTransitive,
    /// Both directions with the latest.
    Full,
    /// Both directions with all previous.
    FullTransitive,
}

impl Compatibility {
    /// Parses a level name, case-insensitively (42203 otherwise).
    pub fn parse(raw: &str) -> Result<Self> {
        Ok(match raw.to_ascii_uppercase().as_str() {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibility),
        })
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the check runs against every live version rather than the latest only.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Whether the new schema must read data written with old ones.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether old schemas must read data written with the new one.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

/// Registry mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normal operation.
    ReadWrite,
    /// No writes.
    ReadOnly,
    /// No writes (override variant).
    ReadOnlyOverride,
    /// Writes with explicit ids and versions, no compatibility checks.
    Import,
}

impl Mode {
    /// Parses a mode name, case-insensitively (42204 otherwise).
    pub fn parse(raw: &str) -> Result<Self> {
        Ok(match raw.to_ascii_uppercase().as_str() {
            "READWRITE" => Self::ReadWrite,
            "READONLY" => Self::ReadOnly,
            "READONLY_OVERRIDE" => Self::ReadOnlyOverride,
            "IMPORT" => Self::Import,
            "FORWARD" => {
                return Err(RegistryError::InvalidMode(
                    "Forward mode only supported on global level".into(),
                ));
            }
            _ => {
                return Err(RegistryError::InvalidMode(
                    "Invalid mode. Valid values are READWRITE, READONLY, IMPORT and FORWARD."
                        .into(),
                ));
            }
        })
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWrite => "READWRITE",
            Self::ReadOnly => "READONLY",
            Self::ReadOnlyOverride => "READONLY_OVERRIDE",
            Self::Import => "IMPORT",
        }
    }

    /// READONLY or READONLY_OVERRIDE.
    pub fn is_read_only(self) -> bool {
        matches!(self, Self::ReadOnly | Self::ReadOnlyOverride)
    }
}

/// A version selector from a URL: a number or `latest` (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionId {
    /// The newest version.
    Latest,
    /// A concrete version, 1..=2^31-1.
    Number(i32),
}

impl VersionId {
    /// Parses `latest`, `-1` or a positive integer (42202 otherwise).
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.eq_ignore_ascii_case("latest") {
            return Ok(Self::Latest);
        }
        match raw.trim().parse::<i32>() {
            Ok(-1) => Ok(Self::Latest),
            Ok(n) if n > 0 => Ok(Self::Number(n)),
            _ => Err(RegistryError::InvalidVersion(raw.to_string())),
        }
    }

    /// The number Confluent prints in "Version N not found." (`-1` for latest).
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Latest => -1,
            Self::Number(n) => i64::from(n),
        }
    }
}

/// A subject split into its context and its name within that context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedSubject {
    /// Context name, `.` for the default context, otherwise starting with `.`.
    pub context: String,
    /// Subject name within the context (may be empty when the whole context is meant).
    pub name: String,
}

impl QualifiedSubject {
    /// Splits `:.ctx:name` into (`.ctx`, `name`); anything else is in the default context.
    pub fn parse(raw: &str) -> Self {
        if let Some(rest) = raw.strip_prefix(":.") {
            match rest.find(':') {
                Some(ix) => {
                    let context = format!(".{}", &rest[..ix]);
                    let name = rest[ix + 1..].to_string();
                    Self {
                        context: normalize_context(context),
                        name,
                    }
                }
                None => Self {
                    context: normalize_context(format!(".{rest}")),
                    name: String::new(),
                },
            }
        } else {
            Self {
                context: DEFAULT_CONTEXT.to_string(),
                name: raw.to_string(),
            }
        }
    }

    /// Whether this names a context rather than a subject (empty subject name).
    pub fn is_context_only(&self) -> bool {
        self.name.is_empty()
    }

    /// Whether this is the default context itself (the global scope).
    pub fn is_default_context_scope(&self) -> bool {
        self.context == DEFAULT_CONTEXT && self.name.is_empty()
    }

    /// The qualified subject string (`:.ctx:name`, or `name` in the default context).
    pub fn qualified(&self) -> String {
        format!("{}{}", context_prefix(&self.context), self.name)
    }

    /// Resolves a reference's subject relative to this (the referencing) subject's context.
    pub fn qualify_reference(&self, reference_subject: &str) -> QualifiedSubject {
        let parsed = QualifiedSubject::parse(reference_subject);
        if parsed.context == DEFAULT_CONTEXT && self.context != DEFAULT_CONTEXT {
            QualifiedSubject {
                context: self.context.clone(),
                name: parsed.name,
            }
        } else {
            parsed
        }
    }
}

fn normalize_context(context: String) -> String {
    if context == "." || context.is_empty() {
        DEFAULT_CONTEXT.to_string()
    } else {
        context
    }
}

/// Confluent's "qualified context" rendering: empty for the default context, `:.ctx:` otherwise.
pub fn context_prefix(context: &str) -> String {
    if context == DEFAULT_CONTEXT {
        String::new()
    } else {
        format!(":{context}:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_subjects_split_context_and_name() {
        let q = QualifiedSubject::parse(":.ctx:orders-value");
        assert_eq!(q.context, ".ctx");
        assert_eq!(q.name, "orders-value");
        assert_eq!(q.qualified(), ":.ctx:orders-value");
        let plain = QualifiedSubject::parse("orders");
        assert_eq!(plain.context, ".");
        assert_eq!(plain.qualified(), "orders");
        let ctx_only = QualifiedSubject::parse(":.ctx:");
        assert!(ctx_only.is_context_only());
        assert_eq!(ctx_only.context, ".ctx");
        assert!(QualifiedSubject::parse(":.:").is_default_context_scope());
        assert!(QualifiedSubject::parse("").is_default_context_scope());
    }

    #[test]
    fn references_inherit_the_referrers_context() {
        let referrer = QualifiedSubject::parse(":.ctx:a");
        assert_eq!(referrer.qualify_reference("c").qualified(), ":.ctx:c");
        assert_eq!(
            referrer.qualify_reference(":.other:c").qualified(),
            ":.other:c"
        );
        assert_eq!(
            QualifiedSubject::parse("a")
                .qualify_reference("c")
                .qualified(),
            "c"
        );
    }

    #[test]
    fn version_ids_follow_confluent_rules() {
        assert_eq!(VersionId::parse("latest").ok(), Some(VersionId::Latest));
        assert_eq!(VersionId::parse("-1").ok(), Some(VersionId::Latest));
        assert_eq!(VersionId::parse("3").ok(), Some(VersionId::Number(3)));
        for bad in ["0", "-2", "abc", "99999999999"] {
            assert_eq!(
                VersionId::parse(bad).map_err(|e| e.error_code()),
                Err(42202)
            );
        }
    }

    #[test]
    fn levels_and_modes_parse_case_insensitively() {
        assert_eq!(
            Compatibility::parse("full_transitive").ok(),
            Some(Compatibility::FullTransitive)
        );
        assert_eq!(
            Compatibility::parse("bogus").map_err(|e| e.error_code()),
            Err(42203)
        );
        assert_eq!(Mode::parse("import").ok(), Some(Mode::Import));
        assert_eq!(Mode::parse("nope").map_err(|e| e.error_code()), Err(42204));
        assert_eq!(
            Mode::parse("FORWARD").map_err(|e| e.error_code()),
            Err(42204)
        );
        assert_eq!(SchemaType::parse(None).ok(), Some(SchemaType::Avro));
        assert_eq!(
            SchemaType::parse(Some("xml")).map_err(|e| e.error_code()),
            Err(42201)
        );
    }
}
