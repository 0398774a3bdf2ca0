//! Schema types: Avro with `schemaType` omitted or `AVRO`, JSON Schema and Protobuf
//! registration and read-back, `GET /schemas/types`, and 42201 for invalid schemas or
//! unknown types (registry-semantics.md "Reading state", "Error codes"; OpenAPI
//! `POST /subjects/{subject}/versions` 422, `/schemas/types`).

use sr_conformance::*;

fn json_schema(s: &Scope, title: &str) -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": format!("{}.{title}", s.ns),
        "type": "object",
        "properties": { "name": { "type": "string" }, "age": { "type": "integer" } },
        "required": ["name"],
        "additionalProperties": false
    })
}

fn proto_schema(s: &Scope, message: &str) -> String {
    format!(
        "syntax = \"proto3\";\npackage {};\n\nmessage {message} {{\n  string name = 1;\n  int64 count = 2;\n}}\n",
        s.ns
    )
}

#[test]
fn avro_schema_type_omitted_reads_back_as_avro() {
    let r = registry();
    let s = scope("avro_schema_type_omitted_reads_back_as_avro");
    let subject = s.subject("a");
    let id = r.register(&subject, &avro_body(&s.simple("A")));
    let v = r.version(&subject, "1");
    assert_eq!(v["id"], json!(id), "{v}");
    assert_avro_type(&v);
    assert_same_json_schema(&v, &s.simple("A"));
    let by_id = r.get(&format!("/schemas/ids/{id}"));
    assert_avro_type(by_id.ok());
    assert_same_json_schema(&by_id.body, &s.simple("A"));
}

#[test]
fn avro_explicit_schema_type_is_the_same_schema_as_omitted() {
    let r = registry();
    let s = scope("avro_explicit_schema_type_is_the_same_schema_as_omitted");
    let omitted = r.register(&s.subject("omitted"), &avro_body(&s.simple("A")));
    let explicit = r.register(
        &s.subject("explicit"),
        &typed_body("AVRO", &s.simple("A").to_string()),
    );
    assert_eq!(
        omitted, explicit,
        "AVRO and omitted schemaType are one schema"
    );
    let v = r.version(&s.subject("explicit"), "1");
    assert_avro_type(&v);
}

#[test]
fn json_schema_register_and_read_back() {
    let r = registry();
    let s = scope("json_schema_register_and_read_back");
    let subject = s.subject("a");
    let schema = json_schema(&s, "Person");
    let id = r.register(&subject, &typed_body("JSON", &schema.to_string()));
    let v = r.version(&subject, "1");
    assert_eq!(v["id"], json!(id), "{v}");
    assert_eq!(v["version"], json!(1), "{v}");
    assert_eq!(v["schemaType"], json!("JSON"), "{v}");
    assert_same_json_schema(&v, &schema);
    let by_id = r.get(&format!("/schemas/ids/{id}"));
    assert_eq!(by_id.ok()["schemaType"], json!("JSON"), "\n{by_id}");
    assert_same_json_schema(&by_id.body, &schema);
    // Re-registering is idempotent for JSON too.
    let again = r.register(&subject, &typed_body("JSON", &schema.to_string()));
    assert_eq!(again, id);
    assert_eq!(r.versions(&subject, false), vec![1]);
}

#[test]
fn protobuf_register_and_read_back() {
    let r = registry();
    let s = scope("protobuf_register_and_read_back");
    let subject = s.subject("a");
    let text = proto_schema(&s, "Thing");
    let id = r.register(&subject, &typed_body("PROTOBUF", &text));
    let v = r.version(&subject, "1");
    assert_eq!(v["id"], json!(id), "{v}");
    assert_eq!(v["schemaType"], json!("PROTOBUF"), "{v}");
    let stored = v["schema"].as_str().expect("schema string");
    assert_eq!(squash(stored), squash(&text), "{v}");
    let by_id = r.get(&format!("/schemas/ids/{id}"));
    assert_eq!(by_id.ok()["schemaType"], json!("PROTOBUF"), "\n{by_id}");
    assert_eq!(
        squash(by_id.body["schema"].as_str().unwrap_or_default()),
        squash(&text),
        "\n{by_id}"
    );
    let again = r.register(&subject, &typed_body("PROTOBUF", &text));
    assert_eq!(again, id);
    assert_eq!(r.versions(&subject, false), vec![1]);
}

#[test]
fn schema_types_lists_avro_json_protobuf() {
    let resp = registry().get("/schemas/types");
    let types = string_list(resp.ok(), &resp);
    for kind in ["AVRO", "JSON", "PROTOBUF"] {
        assert!(types.iter().any(|t| t == kind), "{kind} missing\n{resp}");
    }
}

#[test]
fn invalid_avro_schema_42201() {
    let r = registry();
    let s = scope("invalid_avro_schema_42201");
    let subject = s.subject("a");
    let bodies = [
        json!({ "schema": "{\"type\": \"record\", \"name\": \"X\"" }),
        json!({ "schema": "{\"type\": \"no_such_type\"}" }),
        json!({ "schema": "{\"type\": \"record\", \"name\": \"X\", \"fields\": [{\"name\": \"a\"}]}" }),
    ];
    for body in bodies {
        r.post(&format!("/subjects/{subject}/versions"), &body)
            .expect_error(422, 42201);
    }
    r.get(&format!("/subjects/{subject}/versions"))
        .expect_error(404, 40401);
}

#[test]
fn invalid_json_schema_42201() {
    let r = registry();
    let s = scope("invalid_json_schema_42201");
    r.post(
        &format!("/subjects/{}/versions", s.subject("a")),
        &typed_body("JSON", "{\"type\": \"object\", "),
    )
    .expect_error(422, 42201);
}

#[test]
fn invalid_protobuf_schema_42201() {
    let r = registry();
    let s = scope("invalid_protobuf_schema_42201");
    r.post(
        &format!("/subjects/{}/versions", s.subject("a")),
        &typed_body(
            "PROTOBUF",
            "syntax = \"proto3\";\nmessage {\n  string = ;\n",
        ),
    )
    .expect_error(422, 42201);
}

#[test]
fn unknown_schema_type_42201() {
    let r = registry();
    let s = scope("unknown_schema_type_42201");
    let resp = r.post(
        &format!("/subjects/{}/versions", s.subject("a")),
        &typed_body("XML", &s.simple("A").to_string()),
    );
    // Karapace: `error_code` 422, "Invalid schemaType XML"
    resp.expect_error(422, if karapace() { 422 } else { 42201 });
    r.get(&format!("/subjects/{}/versions", s.subject("a")))
        .expect_error(404, 40401);
}
