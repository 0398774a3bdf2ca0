//! Protobuf schemas as serialized descriptors: registering and looking up a schema given as
//! base64 of a serialized `google.protobuf.FileDescriptorProto` (what the Python
//! `ProtobufSerializer` sends), and reading schemas back with `?format=serialized` (what
//! the Python deserializers ask for).
//!
//! Sources: the OpenAPI `format` query parameter of `GET /schemas/ids/{id}`,
//! `GET /subjects/{subject}/versions/{version}` and `POST /subjects/{subject}` ("Desired
//! output format, dependent on schema type"; Confluent documents `serialized` for
//! PROTOBUF), and Confluent's `ProtobufSchema`: `toProtoFile(String)` parses the text as
//! `.proto` and, when that fails, decodes it as base64 of a `FileDescriptorProto`; the
//! registry stores the `.proto` text; `formattedString("serialized")` is base64 of the
//! schema's `FileDescriptorProto`; other schema types ignore formats they do not know.
//!
//! The descriptors are built here with `prost-types`, never taken from the server. They
//! avoid `json_name` and relative type names where a test compares text or identity, so
//! Confluent's re-printed text is the plain `.proto` a person would write.
//!
//! Skippable by name: `protobuf_serialized_`.
//!
//! Karapace 3.16 ([`karapace`]) takes descriptors as Confluent does, but knows `format`
//! on `GET /schemas/ids/{id}` only (versions and lookups give the text), and its
//! `serialized` output has two defects (`protobuf/serialization.py`): fields of a message
//! or enum type have no `type` and name their type as the text wrote it, and a schema
//! with references is HTTP 500.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use sr_conformance::*;

/// Standard base64; padding optional when decoding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn field(name: &str, number: i32, label: Label, kind: Type) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

/// `message Thing { string name = 1; int64 count = 2; }` in package `s.ns`, proto3: the
/// same schema as [`thing_text`].
fn thing_descriptor(s: &Scope) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("thing.proto".into()),
        package: Some(s.ns.clone()),
        syntax: Some("proto3".into()),
        message_type: vec![DescriptorProto {
            name: Some("Thing".into()),
            field: vec![
                field("name", 1, Label::Optional, Type::String),
                field("count", 2, Label::Optional, Type::Int64),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn thing_text(s: &Scope) -> String {
    format!(
        "syntax = \"proto3\";\npackage {};\n\nmessage Thing {{\n  string name = 1;\n  int64 count = 2;\n}}\n",
        s.ns
    )
}

fn b64(fd: &FileDescriptorProto) -> String {
    B64.encode(fd.encode_to_vec())
}

/// Decodes a `schema` string that should be base64 of a `FileDescriptorProto`.
#[track_caller]
fn decode_descriptor(schema: &Value, context: &dyn std::fmt::Display) -> FileDescriptorProto {
    let text = schema
        .as_str()
        .unwrap_or_else(|| panic!("`schema` is not a string\n{context}"));
    let bytes = B64
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("`schema` is not base64 ({e})\n{context}"));
    FileDescriptorProto::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("`schema` is not a FileDescriptorProto ({e})\n{context}"))
}

fn message_names(fd: &FileDescriptorProto) -> Vec<&str> {
    fd.message_type.iter().map(|m| m.name()).collect()
}

/// (name, number) of each field of the first message.
fn fields_of(fd: &FileDescriptorProto) -> Vec<(String, i32)> {
    fd.message_type[0]
        .field
        .iter()
        .map(|f| (f.name().to_string(), f.number()))
        .collect()
}

#[test]
fn protobuf_serialized_register_descriptor_stores_proto_text() {
    let r = registry();
    let s = scope("protobuf_serialized_register_descriptor_stores_proto_text");
    let subject = s.subject("a");
    let id = r.register(
        &subject,
        &typed_body("PROTOBUF", &b64(&thing_descriptor(&s))),
    );
    let v = r.version(&subject, "1");
    assert_eq!(v["id"], json!(id), "{v}");
    assert_eq!(v["schemaType"], json!("PROTOBUF"), "{v}");
    let stored = v["schema"].as_str().expect("schema string");
    assert_eq!(squash(stored), squash(&thing_text(&s)), "{v}");
    let by_id = r.get(&format!("/schemas/ids/{id}"));
    assert_eq!(
        squash(by_id.ok()["schema"].as_str().unwrap_or_default()),
        squash(&thing_text(&s)),
        "\n{by_id}"
    );
    // Registering the same descriptor again is the same version.
    let again = r.register(
        &subject,
        &typed_body("PROTOBUF", &b64(&thing_descriptor(&s))),
    );
    assert_eq!(again, id);
    assert_eq!(r.versions(&subject, false), vec![1]);
}

#[test]
fn protobuf_serialized_text_and_descriptor_are_one_schema() {
    let r = registry();
    let s = scope("protobuf_serialized_text_and_descriptor_are_one_schema");
    let (a, b) = (s.subject("a"), s.subject("b"));
    let id = r.register(&a, &typed_body("PROTOBUF", &thing_text(&s)));
    let descriptor = typed_body("PROTOBUF", &b64(&thing_descriptor(&s)));
    // Lookup by descriptor finds the version registered as text.
    let found = r.post(&format!("/subjects/{a}"), &descriptor);
    assert_eq!(found.ok()["id"], json!(id), "\n{found}");
    assert_eq!(found.body["version"], json!(1), "\n{found}");
    // Registering the descriptor under the same subject creates nothing new ...
    assert_eq!(r.register(&a, &descriptor), id);
    assert_eq!(r.versions(&a, false), vec![1]);
    // ... and under another subject it reuses the id.
    assert_eq!(r.register(&b, &descriptor), id);
}

#[test]
fn protobuf_serialized_format_returns_base64_descriptor() {
    let r = registry();
    let s = scope("protobuf_serialized_format_returns_base64_descriptor");
    let subject = s.subject("a");
    let text = format!(
        "syntax = \"proto3\";\npackage {};\n\nmessage Order {{\n  string id = 1;\n  repeated Line lines = 2;\n  Status status = 3;\n  message Line {{\n    string sku = 1;\n    int32 qty = 2;\n  }}\n}}\n\nenum Status {{\n  STATUS_UNSPECIFIED = 0;\n  STATUS_OPEN = 1;\n}}\n",
        s.ns
    );
    let id = r.register(&subject, &typed_body("PROTOBUF", &text));
    let check = |resp: &Resp| {
        let fd = decode_descriptor(&resp.ok()["schema"], resp);
        assert_eq!(fd.package(), s.ns, "\n{resp}");
        assert_eq!(fd.syntax(), "proto3", "\n{resp}");
        assert_eq!(message_names(&fd), ["Order"], "\n{resp}");
        let order = &fd.message_type[0];
        let nested: Vec<&str> = order.nested_type.iter().map(|m| m.name()).collect();
        assert_eq!(nested, ["Line"], "\n{resp}");
        let enums: Vec<&str> = fd.enum_type.iter().map(|e| e.name()).collect();
        assert_eq!(enums, ["Status"], "\n{resp}");
        assert_eq!(
            fields_of(&fd),
            [
                ("id".to_string(), 1),
                ("lines".to_string(), 2),
                ("status".to_string(), 3)
            ],
            "\n{resp}"
        );
        assert_eq!(order.field[1].label(), Label::Repeated, "\n{resp}");
        assert_eq!(order.field[1].r#type(), Type::Message, "\n{resp}");
        assert_eq!(order.field[2].r#type(), Type::Enum, "\n{resp}");
    };
    let by_id = r.get(&format!("/schemas/ids/{id}?format=serialized"));
    if karapace() {
        // the typed fields lose their type; the text everywhere else
        let fd = decode_descriptor(&by_id.ok()["schema"], &by_id);
        assert_eq!(fd.package(), s.ns, "\n{by_id}");
        assert_eq!(message_names(&fd), ["Order"], "\n{by_id}");
        assert_eq!(
            fields_of(&fd),
            [
                ("id".to_string(), 1),
                ("lines".to_string(), 2),
                ("status".to_string(), 3)
            ],
            "\n{by_id}"
        );
        let order = &fd.message_type[0];
        assert_eq!(order.field[0].r#type(), Type::String, "\n{by_id}");
        for (field, name) in [(&order.field[1], "Line"), (&order.field[2], "Status")] {
            assert_eq!((field.r#type, field.type_name()), (None, name), "\n{by_id}");
        }
        for query in ["1?format=serialized", "latest?format=serialized"] {
            let v = r.get(&format!("/subjects/{subject}/versions/{query}"));
            assert_eq!(
                squash(v.ok()["schema"].as_str().unwrap_or_default()),
                squash(&text),
                "\n{v}"
            );
        }
        return;
    }
    check(&by_id);
    assert_eq!(by_id.body["schemaType"], json!("PROTOBUF"), "\n{by_id}");
    check(&r.get(&format!("/subjects/{subject}/versions/1?format=serialized")));
    check(&r.get(&format!(
        "/subjects/{subject}/versions/latest?format=serialized"
    )));
    // Without the parameter the text comes back.
    let plain = r.get(&format!("/schemas/ids/{id}"));
    assert_eq!(
        squash(plain.ok()["schema"].as_str().unwrap_or_default()),
        squash(&text),
        "\n{plain}"
    );
    // A soft-deleted version is served in the same form with `deleted=true`.
    r.delete(&format!("/subjects/{subject}/versions/1")).ok();
    check(&r.get(&format!(
        "/subjects/{subject}/versions/1?deleted=true&format=serialized"
    )));
}

#[test]
fn protobuf_serialized_with_references() {
    let r = registry();
    let s = scope("protobuf_serialized_with_references");
    let (dep_subject, main_subject) = (s.subject("dep"), s.subject("main"));
    let import = format!("{}/dep.proto", s.ns.replace('.', "/"));
    let dep_text = format!(
        "syntax = \"proto3\";\npackage {};\n\nmessage Dep {{\n  string street = 1;\n}}\n",
        s.ns
    );
    r.register(&dep_subject, &typed_body("PROTOBUF", &dep_text));
    // Shaped like the Python serializer's descriptors: json_name set on every field,
    // message types fully qualified with a leading dot.
    let mut main = FileDescriptorProto {
        name: Some(import.replace("dep.proto", "main.proto")),
        package: Some(s.ns.clone()),
        syntax: Some("proto3".into()),
        dependency: vec![import.clone()],
        message_type: vec![DescriptorProto {
            name: Some("Main".into()),
            field: vec![
                field("id", 1, Label::Optional, Type::Int64),
                FieldDescriptorProto {
                    type_name: Some(format!(".{}.Dep", s.ns)),
                    ..field("home_address", 2, Label::Optional, Type::Message)
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    main.message_type[0].field[0].json_name = Some("id".into());
    main.message_type[0].field[1].json_name = Some("homeAddress".into());
    let body = json!({
        "schemaType": "PROTOBUF",
        "schema": b64(&main),
        "references": [reference(&import, &dep_subject, 1)],
    });
    let id = r.register(&main_subject, &body);
    let v = r.version(&main_subject, "1");
    let stored = v["schema"].as_str().unwrap_or_default();
    assert!(
        stored.contains("message Main") && stored.contains(&format!("import \"{import}\"")),
        "stored as .proto text with its import\n{v}"
    );
    assert_eq!(
        references_of(&v),
        json!([reference(&import, &dep_subject, 1)]),
        "{v}"
    );
    // The same descriptor again: same id, no new version; lookup finds it.
    assert_eq!(r.register(&main_subject, &body), id);
    assert_eq!(r.versions(&main_subject, false), vec![1]);
    let found = r.post(&format!("/subjects/{main_subject}"), &body);
    assert_eq!(found.ok()["id"], json!(id), "\n{found}");
    // format=serialized for the referrer and for the reference (as a deserializer reads them).
    let resp = r.get(&format!("/schemas/ids/{id}?format=serialized"));
    if karapace() {
        assert_eq!(
            (resp.status, &resp.body),
            (
                500,
                &json!({ "error_code": 500, "message": "Internal server error" })
            ),
            "\n{resp}"
        );
        return;
    }
    let fd = decode_descriptor(&resp.ok()["schema"], &resp);
    assert_eq!(fd.dependency, vec![import.clone()], "\n{resp}");
    assert_eq!(message_names(&fd), ["Main"], "\n{resp}");
    assert_eq!(
        fields_of(&fd),
        [("id".to_string(), 1), ("home_address".to_string(), 2)],
        "\n{resp}"
    );
    let home = &fd.message_type[0].field[1];
    assert_eq!(home.r#type(), Type::Message, "\n{resp}");
    assert_eq!(home.type_name(), format!(".{}.Dep", s.ns), "\n{resp}");
    let resp = r.get(&format!(
        "/subjects/{dep_subject}/versions/1?deleted=true&format=serialized"
    ));
    let dep = decode_descriptor(&resp.ok()["schema"], &resp);
    assert_eq!(message_names(&dep), ["Dep"], "\n{resp}");
    assert_eq!(dep.package(), s.ns, "\n{resp}");
}

#[test]
fn protobuf_serialized_format_is_ignored_for_avro_and_json() {
    let r = registry();
    let s = scope("protobuf_serialized_format_is_ignored_for_avro_and_json");
    let avro = s.simple("A");
    let avro_id = r.register(&s.subject("avro"), &avro_body(&avro));
    let resp = r.get(&format!("/schemas/ids/{avro_id}?format=serialized"));
    assert_same_json_schema(resp.ok(), &avro);
    let json_schema = json!({"type": "object", "title": format!("{}.J", s.ns)});
    let json_id = r.register(
        &s.subject("json"),
        &typed_body("JSON", &json_schema.to_string()),
    );
    let resp = r.get(&format!(
        "/subjects/{}/versions/1?format=serialized",
        s.subject("json")
    ));
    assert_eq!(resp.ok()["id"], json!(json_id), "\n{resp}");
    assert_same_json_schema(&resp.body, &json_schema);
}

#[test]
fn protobuf_serialized_invalid_base64_or_descriptor_42201() {
    let r = registry();
    let s = scope("protobuf_serialized_invalid_base64_or_descriptor_42201");
    let subject = s.subject("a");
    // A descriptor whose field uses a type nobody defines.
    let broken = FileDescriptorProto {
        name: Some("broken.proto".into()),
        package: Some(s.ns.clone()),
        syntax: Some("proto3".into()),
        message_type: vec![DescriptorProto {
            name: Some("Broken".into()),
            field: vec![FieldDescriptorProto {
                type_name: Some(format!(".{}.Missing", s.ns)),
                ..field("m", 1, Label::Optional, Type::Message)
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for schema in [b64(&broken), "@@@not base64 or proto@@@".to_string()] {
        r.post(
            &format!("/subjects/{subject}/versions"),
            &typed_body("PROTOBUF", &schema),
        )
        .expect_error(422, 42201);
    }
    r.get(&format!("/subjects/{subject}/versions"))
        .expect_error(404, 40401);
}
