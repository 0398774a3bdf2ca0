//! Dialects: which real registry the test registry behaves like.
//!
//! [`Dialect::Confluent`] (the default) is Confluent Schema Registry, as the rest of this
//! crate describes it. [`Dialect::Karapace316`] (`--dialect karapace-3.16`) reproduces
//! where Karapace 3.16.0 answers differently, so that kafka-backup can be tested against a
//! Karapace-like source or target without Karapace (which CI cannot install). Each
//! deviation below was read in Karapace's source (tag `3.16.0`:
//! `schema_registry_apis.py`, `schema_registry.py`, `in_memory_database.py`,
//! `schema_reader.py`) and checked against a running Karapace 3.16.0
//! (`tests/conformance/KARAPACE.md` records the run).
//!
//! Routes:
//! - no `PUT`/`DELETE /mode[/{subject}]` and no `DELETE /config`: 405 with aiohttp's
//!   plain-text body `405: Method Not Allowed`;
//! - no `GET /contexts`, no `/v1/metadata/*`, no `POST /compatibility/subjects/{s}/versions`
//!   (only `.../versions/{version}`): 404 with the plain-text body `404: Not Found`;
//! - no `GET /schemas/ids/{id}/subjects` or `/schemas/ids/{id}/schema`: 404 with
//!   `{"error_code":404,"message":"HTTP 404 Not Found"}` (Karapace's `/schemas/ids/{id}`
//!   route swallows them and fails to parse the id).
//!
//! Subjects, modes and configs:
//! - no contexts: `:.ctx:name` is a plain subject name and shares the one ID counter;
//! - `GET /mode` is always READWRITE; `GET /mode/{subject}` answers the global mode for any
//!   subject Karapace knows (40401 for others), never 40409;
//! - a subject is known once it had a version or a config write (`PUT` or `DELETE
//!   /config/{subject}`, even for a subject without versions) and until its last version
//!   is deleted for good; `GET /subjects?deleted=true` lists the known ones, versionless
//!   included;
//! - `GET /config/{subject}`: 40401 for an unknown subject (Confluent: 40408, or the global
//!   level with `defaultToGlobal=true`); `PUT /config[/{subject}]` takes only
//!   `compatibility` (`compatibilityLevel` is 42203); `DELETE /config/{subject}` always
//!   answers `{"compatibility": <global level>}`, never 40401;
//! - `subjectPrefix`, `offset`, `limit`, `deletedOnly` and `defaultToGlobal` on mode reads
//!   are ignored.
//!
//! Schemas and IDs:
//! - registering answers `{"id": N}` only; a body field other than `schema`, `schemaType`,
//!   `references`, `metadata` and `ruleSet` (so `id` and `version`) is 422 with
//!   `error_code` 422 `Unrecognized field: X` (also on lookup); an unknown `schemaType` is
//!   422/422 `Invalid schemaType X`; references on a non-Protobuf schema are 422/44302
//!   (register, lookup, compatibility check);
//! - an incompatible schema is 409 with `error_code` 409 (Confluent: 40901), message
//!   `Incompatible schema, compatibility_mode=LEVEL <one reason>`;
//! - Avro and JSON Schema are stored as the submitted JSON re-encoded compactly with sorted
//!   keys (Python's `json.dumps(..., separators=(",", ":"), sort_keys=True)`, non-ASCII
//!   escaped); that text (with the references) is the schema's identity, so
//!   `{"type":"string"}` and `"string"` are two schemas with two IDs; lookup still matches
//!   by meaning;
//! - an ID is never forgotten: `GET /schemas/ids/{id}` still answers after every version
//!   holding it was deleted for good, and the same content registered again gets it back;
//!   `GET /schemas/ids/{id}/versions` of an unknown ID is 200 `[]`;
//! - re-registering a schema whose older version is soft-deleted keeps that old version
//!   (Confluent drops it);
//! - `GET /schemas` ignores `subjectPrefix`, `offset` and `limit`; without flags it lists
//!   every version, soft-deleted ones included, and with `deleted=true` only the live ones
//!   (the flag is inverted); `latestOnly=true` takes each subject's highest version, even a
//!   soft-deleted one; every entry carries `schemaType`, AVRO included;
//! - `GET /schemas/ids/{id}` ignores `subject`; lookup answers without `references`;
//!   `format` is honoured by `GET /schemas/ids/{id}` only, and only `serialized` on a
//!   Protobuf schema, with Karapace's defects: HTTP 500 for a schema with references, and
//!   a descriptor whose message- and enum-typed fields lack their `type` (see
//!   `schema::protobuf::karapace_serialized`);
//! - `POST /compatibility/subjects/{s}/versions/{v}` of an unknown subject or version is
//!   40402 (Confluent: compatible for `latest`) and answers `{"is_compatible"}` only;
//! - `referencedby` of a soft-deleted version is 40402 (40401 when the whole subject is);
//! - `GET /schemas/types` is `["JSON","AVRO","PROTOBUF"]`.
//!
//! Not reproduced: Karapace's own `.proto` re-printing (Protobuf text is stored as our
//! Confluent dialect stores it, so the type names of a serialized descriptor are a guess
//! at what the text wrote), the reasons in its 409 messages (ours are Confluent-shaped),
//! other error message texts than the ones named above, the order of subjects in listings
//! (Karapace: first registration; here: by name) and the references bookkeeping of soft
//! deletes.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// Which registry the server imitates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Confluent Schema Registry (the default).
    #[default]
    Confluent,
    /// Karapace 3.16.0.
    Karapace316,
}

impl Dialect {
    /// Every dialect, for `--help` and error messages.
    pub const ALL: [Dialect; 2] = [Dialect::Confluent, Dialect::Karapace316];

    /// The name `--dialect` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confluent => "confluent",
            Self::Karapace316 => "karapace-3.16",
        }
    }

    /// Whether this is a Karapace dialect.
    pub fn is_karapace(self) -> bool {
        matches!(self, Self::Karapace316)
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|d| d.as_str()).collect();
                format!("unknown dialect `{s}` (known: {})", names.join(", "))
            })
    }
}

/// Karapace's stored form of an Avro or JSON Schema document: Python's
/// `json.dumps(value, separators=(",", ":"), sort_keys=True)` (with `ensure_ascii`, so
/// every non-ASCII character is a `\uXXXX` escape, astral ones as surrogate pairs).
pub fn karapace_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(&map[key], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for d in Dialect::ALL {
            assert_eq!(d.as_str().parse::<Dialect>().unwrap(), d);
        }
        assert_eq!(
            "Karapace-3.16".parse::<Dialect>().unwrap(),
            Dialect::Karapace316
        );
        let e = "karapace-4".parse::<Dialect>().unwrap_err();
        assert!(e.contains("confluent, karapace-3.16"), "{e}");
    }

    #[test]
    fn karapace_json_is_pythons_sorted_compact_ascii_form() {
        // what Karapace 3.16.0 served for this schema (checked against a running one)
        let v: Value = serde_json::from_str(
            r#"{"type": "record", "name": "R", "fields": [{"name": "é", "type": "int", "doc": "ü"}]}"#,
        )
        .unwrap();
        assert_eq!(
            karapace_json(&v),
            r#"{"fields":[{"doc":"\u00fc","name":"\u00e9","type":"int"}],"name":"R","type":"record"}"#
        );
        assert_eq!(karapace_json(&json!("string")), r#""string""#);
        assert_eq!(
            karapace_json(&json!({"b": [1, 2.5, null, true], "a": "q\"\\\n\u{1}😀"})),
            r#"{"a":"q\"\\\n\u0001\ud83d\ude00","b":[1,2.5,null,true]}"#
        );
    }
}
