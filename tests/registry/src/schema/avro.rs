//! Avro: parsing and compatibility through the `apache-avro` crate.
//!
//! Referenced schemas are handed to the parser so their named types are visible. The stored
//! text is the crate's compact JSON serialization of the parsed schema (normalised key order,
//! no whitespace, referenced types written by name), which is also the canonical key. For
//! compatibility checks the references are inlined so each side is a self-contained schema.

use std::collections::{HashMap, HashSet};

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde_json::Value;

use super::{Parsed, ResolvedRef};

/// Parses `text` with `refs` in scope and returns its compact form.
pub fn parse(text: &str, refs: &[ResolvedRef]) -> Result<Parsed, String> {
    let schema = parse_with_refs(text, refs)?;
    let stored = serde_json::to_string(&schema).map_err(|e| e.to_string())?;
    // The compact form must itself parse (guards against lossy serialisation).
    parse_with_refs(&stored, refs)?;
    Ok(Parsed {
        canonical: stored.clone(),
        stored,
    })
}

fn parse_with_refs(text: &str, refs: &[ResolvedRef]) -> Result<Schema, String> {
    if refs.is_empty() {
        return Schema::parse_str(text).map_err(|e| e.to_string());
    }
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    Schema::parse_str_with_list(text, texts)
        .map(|(schema, _)| schema)
        .map_err(|e| e.to_string())
}

/// Builds a self-contained schema: referenced named types are inlined at first use.
fn standalone(text: &str, refs: &[ResolvedRef]) -> Result<Schema, String> {
    if refs.is_empty() {
        return Schema::parse_str(text).map_err(|e| e.to_string());
    }
    let mut definitions = HashMap::new();
    for reference in refs {
        let value: Value = serde_json::from_str(&reference.text).map_err(|e| e.to_string())?;
        collect_definitions(&value, None, &mut definitions);
    }
    let mut root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut defined = HashSet::new();
    inline(&mut root, None, &mut defined, &definitions);
    Schema::parse(&root).map_err(|e| e.to_string())
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn full_name(
    object: &serde_json::Map<String, Value>,
    namespace: Option<&str>,
) -> Option<(String, Option<String>)> {
    let name = object.get("name")?.as_str()?;
    if let Some(ix) = name.rfind('.') {
        return Some((name.to_string(), Some(name[..ix].to_string())));
    }
    let ns = object
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| namespace.map(str::to_string))
        .filter(|ns| !ns.is_empty());
    match ns {
        Some(ns) => Some((format!("{ns}.{name}"), Some(ns))),
        None => Some((name.to_string(), None)),
    }
}

/// Records every named type defined in `value` (top-level and nested) by full name.
fn collect_definitions(value: &Value, namespace: Option<&str>, out: &mut HashMap<String, Value>) {
    match value {
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_definitions(v, namespace, out)),
        Value::Object(object) => {
            let kind = object.get("type");
            match kind.and_then(Value::as_str) {
                Some("record" | "error" | "enum" | "fixed") => {
                    if let Some((name, ns)) = full_name(object, namespace) {
                        let mut definition = object.clone();
                        if let Some(ns) = &ns {
                            definition.insert("namespace".into(), Value::String(ns.clone()));
                        }
                        out.entry(name).or_insert(Value::Object(definition));
                        if let Some(Value::Array(fields)) = object.get("fields") {
                            for field in fields {
                                if let Some(t) = field.get("type") {
                                    collect_definitions(t, ns.as_deref(), out);
                                }
                            }
                        }
                    }
                }
                Some("array") => {
                    if let Some(items) = object.get("items") {
                        collect_definitions(items, namespace, out);
                    }
                }
                Some("map") => {
                    if let Some(values) = object.get("values") {
                        collect_definitions(values, namespace, out);
                    }
                }
                _ => {
                    if let Some(inner) = kind {
                        collect_definitions(inner, namespace, out);
                    }
                }
            }
        }
        _ => {}
    }
}

fn inline(
    node: &mut Value,
    namespace: Option<&str>,
    defined: &mut HashSet<String>,
    definitions: &HashMap<String, Value>,
) {
    match node {
        Value::String(name) => {
            if PRIMITIVES.contains(&name.as_str()) {
                return;
            }
            let mut candidates = vec![name.clone()];
            if !name.contains('.')
                && let Some(ns) = namespace
            {
                candidates.insert(0, format!("{ns}.{name}"));
            }
            for candidate in candidates {
                if defined.contains(&candidate) {
                    return;
                }
                if let Some(definition) = definitions.get(&candidate) {
                    *node = definition.clone();
                    inline(node, namespace, defined, definitions);
                    return;
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                inline(item, namespace, defined, definitions);
            }
        }
        Value::Object(object) => {
            let kind = object
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_string);
            match kind.as_deref() {
                Some("record" | "error" | "enum" | "fixed") => {
                    let (name, ns) = full_name(object, namespace).unwrap_or_default();
                    defined.insert(name);
                    if let Some(Value::Array(fields)) = object.get_mut("fields") {
                        for field in fields {
                            if let Some(t) = field.get_mut("type") {
                                inline(t, ns.as_deref(), defined, definitions);
                            }
                        }
                    }
                }
                Some("array") => {
                    if let Some(items) = object.get_mut("items") {
                        inline(items, namespace, defined, definitions);
                    }
                }
                Some("map") => {
                    if let Some(values) = object.get_mut("values") {
                        inline(values, namespace, defined, definitions);
                    }
                }
                _ => {
                    if let Some(inner) = object.get_mut("type") {
                        inline(inner, namespace, defined, definitions);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Why `reader` cannot read data written with `writer` (empty when it can).
pub fn incompatibilities(
    reader: &str,
    reader_refs: &[ResolvedRef],
    writer: &str,
    writer_refs: &[ResolvedRef],
) -> Vec<String> {
    let reader = match standalone(reader, reader_refs) {
        Ok(schema) => schema,
        Err(e) => return vec![format!("reader schema could not be resolved: {e}")],
    };
    let writer = match standalone(writer, writer_refs) {
        Ok(schema) => schema,
        Err(e) => return vec![format!("writer schema could not be resolved: {e}")],
    };
    match SchemaCompatibility::can_read(&writer, &reader) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SchemaType;

    fn avro_ref(name: &str, text: &str) -> ResolvedRef {
        ResolvedRef {
            name: name.into(),
            schema_type: SchemaType::Avro,
            text: text.into(),
        }
    }

    #[test]
    fn stored_form_is_compact_and_whitespace_insensitive() {
        let a = parse(
            r#"{ "type" : "record", "name":"R", "fields": [ {"name":"a","type":"int"} ] }"#,
            &[],
        )
        .unwrap();
        let b = parse(
            r#"{"name":"R","type":"record","fields":[{"type":"int","name":"a"}]}"#,
            &[],
        )
        .unwrap();
        assert_eq!(a, b);
        assert!(!a.stored.contains(' '));
        assert_eq!(parse(r#""string""#, &[]).unwrap().stored, r#""string""#);
        assert_eq!(
            parse(r#"{"type":"string"}"#, &[]).unwrap().stored,
            r#""string""#
        );
    }

    #[test]
    fn invalid_avro_is_rejected() {
        assert!(parse("{", &[]).is_err());
        assert!(parse(r#"{"type":"record","name":"R"}"#, &[]).is_err());
        assert!(
            parse(
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Missing"}]}"#,
                &[]
            )
            .is_err()
        );
    }

    #[test]
    fn referenced_named_types_are_visible() {
        let c = avro_ref(
            "C",
            r#"{"type":"record","name":"C","fields":[{"name":"x","type":"int"}]}"#,
        );
        let a = r#"{"type":"record","name":"A","fields":[{"name":"c","type":"C"}]}"#;
        let parsed = parse(a, std::slice::from_ref(&c)).unwrap();
        assert!(parsed.stored.contains(r#""type":"C""#), "{}", parsed.stored);
        assert!(parse(a, &[]).is_err());
    }

    #[test]
    fn compatibility_direction() {
        let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
        let v2_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
        let v2_no_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
        assert!(incompatibilities(v2_default, &[], v1, &[]).is_empty());
        assert!(!incompatibilities(v2_no_default, &[], v1, &[]).is_empty());
        // Old reader ignores the new field: forward compatible.
        assert!(incompatibilities(v1, &[], v2_no_default, &[]).is_empty());
    }

    #[test]
    fn compatibility_through_references() {
        let c1 = avro_ref(
            "C",
            r#"{"type":"record","name":"C","fields":[{"name":"x","type":"int"}]}"#,
        );
        let c2 = avro_ref(
            "C",
            r#"{"type":"record","name":"C","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}"#,
        );
        let a = r#"{"type":"record","name":"A","fields":[{"name":"c","type":"C"}]}"#;
        assert!(
            incompatibilities(a, std::slice::from_ref(&c1), a, std::slice::from_ref(&c1))
                .is_empty()
        );
        assert!(!incompatibilities(a, &[c2], a, &[c1]).is_empty());
    }
}
