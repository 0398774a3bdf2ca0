//! Canonical forms of schema text, so that two schemas are compared by meaning
//! and not by the bytes a registry happened to serve.
//!
//! Registries reformat what they store (Avro and JSON come back re-serialized,
//! Protobuf is re-printed), so a backup taken from one registry and a target
//! read from another seldom agree byte for byte. The forms here are small and
//! predictable rather than complete:
//!
//! - Avro: parsed JSON, `{"type": "string"}` written as `"string"` (the
//!   primitive shorthand), object keys sorted, array order kept (field order is
//!   meaningful), no whitespace.
//! - JSON Schema: parsed JSON, keys sorted, no whitespace.
//! - Protobuf: comments removed, whitespace kept only where it separates two
//!   words; string literals untouched.
//!
//! Two schemas whose canonical forms, types and references are equal are the
//! same schema to the planner ([`ContentKey`]).

use std::fmt::Write as _;

use serde_json::Value;

use crate::model::{SchemaType, schema_type_name};

/// A schema text that cannot be put in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Avro and JSON Schema texts must be JSON.
    #[error("the {kind} schema is not valid JSON: {reason}")]
    NotJson {
        /// `AVRO` or `JSON`.
        kind: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
}

/// The canonical form of `text` read as a schema of `schema_type`.
pub fn canonical(schema_type: SchemaType, text: &str) -> Result<String, CanonicalError> {
    match schema_type {
        SchemaType::Avro | SchemaType::Json => {
            let value: Value = serde_json::from_str(text).map_err(|e| CanonicalError::NotJson {
                kind: schema_type_name(schema_type),
                reason: e.to_string(),
            })?;
            let value = if schema_type == SchemaType::Avro {
                avro_normalise(value)
            } else {
                value
            };
            let mut out = String::with_capacity(text.len());
            write_sorted(&value, &mut out);
            Ok(out)
        }
        SchemaType::Protobuf => Ok(protobuf(text)),
    }
}

const AVRO_PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// `{"type": "<primitive>"}` and nothing else is the primitive's name.
fn avro_normalise(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| (k, avro_normalise(v)))
                .collect();
            if map.len() == 1
                && let Some(Value::String(t)) = map.get("type")
                && AVRO_PRIMITIVES.contains(&t.as_str())
            {
                return Value::String(t.clone());
            }
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(avro_normalise).collect()),
        other => other,
    }
}

/// Compact JSON with object keys sorted, whatever map type `serde_json` was
/// built with (another crate may turn on `preserve_order`).
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(v, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

/// Protobuf text without comments and without whitespace that separates no
/// two words.
fn protobuf(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut pending_space = false;
    let push = |out: &mut String, c: char, pending: &mut bool| {
        if *pending && out.chars().next_back().is_some_and(is_word) && is_word(c) {
            out.push(' ');
        }
        *pending = false;
        out.push(c);
    };
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                pending_space = true;
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = '\0';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                pending_space = true;
            }
            '"' | '\'' => {
                push(&mut out, c, &mut pending_space);
                let mut escaped = false;
                for n in chars.by_ref() {
                    out.push(n);
                    if escaped {
                        escaped = false;
                    } else if n == '\\' {
                        escaped = true;
                    } else if n == c {
                        break;
                    }
                }
            }
            c if c.is_whitespace() => pending_space = true,
            c => push(&mut out, c, &mut pending_space),
        }
    }
    out
}

/// What makes two schema versions "the same schema" to a registry: type,
/// canonical text and references (in order, each resolved to the qualified
/// subject and the version it points to in the target).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentKey {
    /// The schema type.
    pub schema_type: SchemaType,
    /// [`canonical`] of the text.
    pub canonical: String,
    /// `(name, qualified subject, version)`, in the order the schema lists
    /// them: reference order is part of a schema's meaning and is kept.
    pub references: Vec<(String, String, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_reformatting_is_the_same_schema() {
        let served = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"n","type":{"type":"int"}}]}"#;
        let written = r#"{
            "name": "Order",   "type": "record",
            "fields": [ {"type": {"type": "string"}, "name": "id"},
                        {"name": "n", "type": "int"} ]
        }"#;
        assert_eq!(
            canonical(SchemaType::Avro, served).unwrap(),
            canonical(SchemaType::Avro, written).unwrap()
        );
        assert_eq!(
            canonical(SchemaType::Avro, written).unwrap(),
            r#"{"fields":[{"name":"id","type":"string"},{"name":"n","type":"int"}],"name":"Order","type":"record"}"#
        );
        assert_eq!(
            canonical(SchemaType::Avro, "\"string\"").unwrap(),
            "\"string\""
        );
    }

    #[test]
    fn avro_field_order_and_logical_types_are_meaning() {
        let a = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
        let b = r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int"},{"name":"a","type":"int"}]}"#;
        assert_ne!(
            canonical(SchemaType::Avro, a).unwrap(),
            canonical(SchemaType::Avro, b).unwrap()
        );
        let date = r#"{"type":"int","logicalType":"date"}"#;
        assert_eq!(
            canonical(SchemaType::Avro, date).unwrap(),
            r#"{"logicalType":"date","type":"int"}"#
        );
    }

    #[test]
    fn json_schema_keys_are_sorted_and_arrays_kept() {
        let a = r#"{"type":"object","required":["b","a"],"properties":{"b":{"type":"string"},"a":{"type":"integer"}}}"#;
        let b = "{ \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"string\"}},\n \"required\": [\"b\", \"a\"], \"type\": \"object\" }";
        assert_eq!(
            canonical(SchemaType::Json, a).unwrap(),
            canonical(SchemaType::Json, b).unwrap()
        );
        let c = a.replace(r#"["b","a"]"#, r#"["a","b"]"#);
        assert_ne!(
            canonical(SchemaType::Json, a).unwrap(),
            canonical(SchemaType::Json, &c).unwrap()
        );
        // JSON Schema has no primitive shorthand to normalise
        assert_eq!(
            canonical(SchemaType::Json, r#"{"type":"string"}"#).unwrap(),
            r#"{"type":"string"}"#
        );
    }

    #[test]
    fn protobuf_comments_and_spacing_are_not_meaning() {
        let a = "syntax = \"proto3\";\n// an order\nmessage Order {\n  string id = 1; /* key */\n  int32  n = 2;\n}\n";
        let b = "syntax=\"proto3\"; message Order{string id=1;int32 n=2;}";
        assert_eq!(
            canonical(SchemaType::Protobuf, a).unwrap(),
            canonical(SchemaType::Protobuf, b).unwrap()
        );
        assert_eq!(
            canonical(SchemaType::Protobuf, b).unwrap(),
            "syntax=\"proto3\";message Order{string id=1;int32 n=2;}"
        );
        // text inside a string literal is kept, comment markers included
        let s = "option x = \"a  // b\";";
        assert_eq!(
            canonical(SchemaType::Protobuf, s).unwrap(),
            "option x=\"a  // b\";"
        );
        let renamed = b.replace("n=2", "m=2");
        assert_ne!(
            canonical(SchemaType::Protobuf, b).unwrap(),
            canonical(SchemaType::Protobuf, &renamed).unwrap()
        );
    }

    #[test]
    fn malformed_json_is_an_error_naming_the_type() {
        let err = canonical(SchemaType::Avro, "{not json").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the AVRO schema is not valid JSON")
        );
    }
}
