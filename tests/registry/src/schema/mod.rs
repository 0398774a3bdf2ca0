//! Schema parsing, canonical forms and compatibility checks for the three schema types.
//!
//! Each type provides: validation (422 42201 on failure), the text the registry stores and
//! serves, the canonical key used to decide whether two registrations are the same schema,
//! and a "can `reader` read data written with `writer`" check used by the compatibility levels.

pub mod avro;
pub mod json;
pub mod protobuf;

use crate::error::{RegistryError, Result};
use crate::types::SchemaType;

/// A referenced schema, already resolved to its stored text (transitively, dependencies first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRef {
    /// The reference's `name` (Avro full name or Protobuf import path).
    pub name: String,
    /// Type of the referenced schema.
    pub schema_type: SchemaType,
    /// Stored text of the referenced schema.
    pub text: String,
}

/// Result of parsing a submitted schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The text to store and serve.
    pub stored: String,
    /// The identity key: two schemas are the same when type, canonical key and references match.
    pub canonical: String,
}

/// Validates `text` and computes its stored form and canonical key.
pub fn parse(
    schema_type: SchemaType,
    text: &str,
    refs: &[ResolvedRef],
    normalize: bool,
) -> Result<Parsed> {
    let result = match schema_type {
        SchemaType::Avro => avro::parse(text, refs),
        SchemaType::Json => json::parse(text, normalize),
        SchemaType::Protobuf => protobuf::parse(text, refs, normalize),
    };
    result.map_err(|details| {
        RegistryError::InvalidSchema(format!(
            "Invalid schema of type {}, details: {details}",
            schema_type.as_str()
        ))
    })
}

/// Returns why `reader` cannot read data written with `writer` (empty when it can).
pub fn incompatibilities(
    schema_type: SchemaType,
    reader: &str,
    reader_refs: &[ResolvedRef],
    writer: &str,
    writer_refs: &[ResolvedRef],
) -> Vec<String> {
    match schema_type {
        SchemaType::Avro => avro::incompatibilities(reader, reader_refs, writer, writer_refs),
        SchemaType::Json => json::incompatibilities(reader, writer),
        SchemaType::Protobuf => protobuf::incompatibilities(reader, writer),
    }
}

/// The schema text in the `format` a read asked for (Confluent `formattedString`): for
/// Protobuf, `serialized` is base64 of the `FileDescriptorProto`; every other format and
/// type gets the stored text.
pub fn formatted(
    schema_type: SchemaType,
    text: &str,
    refs: &[ResolvedRef],
    format: &str,
) -> Result<String> {
    if schema_type != SchemaType::Protobuf || !format.trim().eq_ignore_ascii_case("serialized") {
        return Ok(text.to_string());
    }
    match protobuf::serialized(text, refs) {
        Ok(Some(b64)) => Ok(b64),
        Ok(None) => Ok(text.to_string()),
        Err(details) => Err(RegistryError::InvalidSchema(format!(
            "Invalid schema of type {}, details: {details}",
            schema_type.as_str()
        ))),
    }
}
