//! JSON Schema: validation, compact form and a documented subset of compatibility rules.
//!
//! The schema must be a JSON object or boolean. The stored form is the submitted JSON with
//! insignificant whitespace removed (key order kept); with `normalize` keys are sorted.
//!
//! Compatibility ("can `reader` validate everything `writer` accepts"), checked recursively
//! through `properties` and `items`:
//! - `type` narrowed (a writer type missing from the reader; `integer` widening to `number` is fine)
//! - a property required by the reader but not by the writer
//! - a writer property missing from a reader with a closed content model
//!   (`additionalProperties: false`)
//! - the content model closed (`additionalProperties` open in writer, `false` in reader)
//! - `enum` values of the writer missing from the reader
//! - reader schema `false` where the writer accepts something

use serde_json::{Map, Value};

use super::Parsed;

/// Validates and compacts a JSON Schema.
pub fn parse(text: &str, normalize: bool) -> Result<Parsed, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !(value.is_object() || value.is_boolean()) {
        return Err("a JSON Schema must be an object or a boolean".into());
    }
    if let Some(t) = value.get("type") {
        let ok = match t {
            Value::String(s) => is_json_type(s),
            Value::Array(items) => items.iter().all(|i| i.as_str().is_some_and(is_json_type)),
            _ => false,
        };
        if !ok {
            return Err(format!("invalid type {t}"));
        }
    }
    let stored = if normalize {
        value.to_string()
    } else {
        compact(text)
    };
    Ok(Parsed {
        canonical: stored.clone(),
        stored,
    })
}

fn is_json_type(s: &str) -> bool {
    matches!(
        s,
        "null" | "boolean" | "object" | "array" | "number" | "string" | "integer"
    )
}

/// Removes whitespace outside string literals, keeping everything else verbatim.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Why `reader` does not accept everything `writer` accepts (empty when it does).
pub fn incompatibilities(reader: &str, writer: &str) -> Vec<String> {
    match (
        serde_json::from_str::<Value>(reader),
        serde_json::from_str::<Value>(writer),
    ) {
        (Ok(r), Ok(w)) => {
            let mut out = Vec::new();
            check(&r, &w, "#", &mut out);
            out
        }
        _ => vec!["schema could not be parsed".into()],
    }
}

fn types_of(schema: &Map<String, Value>) -> Option<Vec<String>> {
    match schema.get("type")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

fn is_closed(schema: &Map<String, Value>) -> bool {
    matches!(schema.get("additionalProperties"), Some(Value::Bool(false)))
}

fn string_set(schema: &Map<String, Value>, key: &str) -> Vec<String> {
    match schema.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn check(reader: &Value, writer: &Value, path: &str, out: &mut Vec<String>) {
    let (r, w) = match (reader, writer) {
        (Value::Bool(true), _) | (_, Value::Bool(false)) => return,
        (Value::Bool(false), _) => {
            out.push(format!(
                "{path}: reader schema is false but writer accepts values"
            ));
            return;
        }
        (Value::Object(r), Value::Bool(true)) => {
            if r.contains_key("type") || r.contains_key("enum") || is_closed(r) {
                out.push(format!(
                    "{path}: reader constrains values the writer leaves open"
                ));
            }
            return;
        }
        (Value::Object(r), Value::Object(w)) => (r, w),
        _ => return,
    };
    if let Some(reader_types) = types_of(r) {
        match types_of(w) {
            None => out.push(format!(
                "{path}: TYPE_NARROWED (writer has no type, reader requires {reader_types:?})"
            )),
            Some(writer_types) => {
                for t in &writer_types {
                    let ok = reader_types.contains(t)
                        || (t == "integer" && reader_types.iter().any(|r| r == "number"));
                    if !ok {
                        out.push(format!("{path}: TYPE_CHANGED (writer type '{t}' not accepted by reader types {reader_types:?})"));
                    }
                }
            }
        }
    }
    let writer_required = string_set(w, "required");
    for name in string_set(r, "required") {
        if !writer_required.contains(&name) {
            out.push(format!("{path}: REQUIRED_ATTRIBUTE_ADDED ('{name}' is required by the reader but not by the writer)"));
        }
    }
    if let Some(Value::Array(reader_enum)) = r.get("enum") {
        match w.get("enum") {
            Some(Value::Array(writer_enum)) => {
                for v in writer_enum {
                    if !reader_enum.contains(v) {
                        out.push(format!(
                            "{path}: ENUM_ARRAY_NARROWED (value {v} missing from reader enum)"
                        ));
                    }
                }
            }
            _ => out.push(format!(
                "{path}: ENUM_ARRAY_NARROWED (reader adds an enum the writer lacks)"
            )),
        }
    }
    if is_closed(r) && !is_closed(w) {
        out.push(format!(
            "{path}: ADDITIONAL_PROPERTIES_NARROWED (reader closes the content model)"
        ));
    }
    let empty = Map::new();
    let reader_props = r
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let writer_props = w
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, writer_prop) in writer_props {
        match reader_props.get(name) {
            Some(reader_prop) => check(
                reader_prop,
                writer_prop,
                &format!("{path}/properties/{name}"),
                out,
            ),
            None if is_closed(r) => out.push(format!(
                "{path}: PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL ('{name}')"
            )),
            None => {}
        }
    }
    if let (Some(ri), Some(wi)) = (r.get("items"), w.get("items")) {
        check(ri, wi, &format!("{path}/items"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_without_touching_strings() {
        assert_eq!(compact("{ \"a b\" : [ 1 , 2 ] }"), "{\"a b\":[1,2]}");
        assert_eq!(compact(r#"{"x":"q\" y"}"#), r#"{"x":"q\" y"}"#);
    }

    #[test]
    fn validates_shape() {
        assert!(parse("true", false).is_ok());
        assert!(parse(r#"{"type":"object"}"#, false).is_ok());
        assert!(parse("[1]", false).is_err());
        assert!(parse("{", false).is_err());
        assert!(parse(r#"{"type":"thing"}"#, false).is_err());
        assert_eq!(
            parse(r#"{"b":1,"a":2}"#, true).unwrap().stored,
            r#"{"a":2,"b":1}"#
        );
    }

    #[test]
    fn detects_rule_subset() {
        let base = r#"{"type":"object","properties":{"a":{"type":"string"}}}"#;
        assert!(incompatibilities(base, base).is_empty());
        let changed = r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#;
        assert!(!incompatibilities(changed, base).is_empty());
        let required = r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#;
        assert!(!incompatibilities(required, base).is_empty());
        assert!(incompatibilities(base, required).is_empty());
        let closed = r#"{"type":"object","properties":{},"additionalProperties":false}"#;
        let closed_base = r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;
        assert!(!incompatibilities(closed, closed_base).is_empty());
        let widened = r#"{"type":"object","properties":{"a":{"type":["string","null"]}}}"#;
        assert!(incompatibilities(widened, base).is_empty());
        let num = r#"{"type":"number"}"#;
        let int = r#"{"type":"integer"}"#;
        assert!(incompatibilities(num, int).is_empty());
        assert!(!incompatibilities(int, num).is_empty());
        assert!(!incompatibilities(r#"{"enum":["a"]}"#, r#"{"enum":["a","b"]}"#).is_empty());
    }
}
