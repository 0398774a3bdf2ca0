//! Unit tests of the registry state machine.

use super::*;

fn avro(schema: &str) -> SchemaRequest {
    SchemaRequest {
        schema: Some(schema.into()),
        ..Default::default()
    }
}

fn with_refs(schema: &str, refs: &[(&str, &str, i32)]) -> SchemaRequest {
    SchemaRequest {
        schema: Some(schema.into()),
        references: refs
            .iter()
            .map(|(n, s, v)| Reference {
                name: (*n).into(),
                subject: (*s).into(),
                version: *v,
            })
            .collect(),
        ..Default::default()
    }
}

fn imported(schema: &str, id: i32, version: i32) -> SchemaRequest {
    SchemaRequest {
        schema: Some(schema.into()),
        id: Some(id),
        version: Some(version),
        ..Default::default()
    }
}

fn record(name: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","fields":[{fields}]}}"#)
}

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
const V2_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

fn code<T: std::fmt::Debug>(r: Result<T>) -> u32 {
    r.expect_err("expected an error").error_code()
}

#[test]
fn first_registration_gets_id_1_and_version_1() {
    let mut r = Registry::new();
    let rec = r.register("s", &avro(V1), false).unwrap();
    assert_eq!((rec.id, rec.version), (1, 1));
    assert!(!rec.schema.text.contains(' '));
}

#[test]
fn same_schema_under_two_subjects_shares_the_id() {
    let mut r = Registry::new();
    let a = r.register("a", &avro(V1), false).unwrap();
    let b = r
        .register("b", &avro(&V1.replace(',', " , ")), false)
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(b.version, 1);
    assert_eq!(
        r.subjects_for_id(a.id, None, false).unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(
        r.versions_for_id(a.id, None, false).unwrap(),
        vec![("a".into(), 1), ("b".into(), 1)]
    );
}

#[test]
fn re_registering_returns_existing_and_creates_nothing() {
    let mut r = Registry::new();
    let first = r.register("s", &avro(V1), false).unwrap();
    let again = r.register("s", &avro(V1), false).unwrap();
    assert_eq!(first, again);
    assert_eq!(r.list_versions("s", DeletedFilter::Live).unwrap(), vec![1]);
}

#[test]
fn versions_count_soft_deleted_ones() {
    let mut r = Registry::new();
    r.register("s", &avro(V1), false).unwrap();
    r.set_config(Some("s"), Compatibility::None).unwrap();
    r.register(
        "s",
        &avro(&record("R", r#"{"name":"z","type":"long"}"#)),
        false,
    )
    .unwrap();
    r.delete_version("s", VersionId::Number(2), false).unwrap();
    let third = r
        .register(
            "s",
            &avro(&record("R", r#"{"name":"q","type":"long"}"#)),
            false,
        )
        .unwrap();
    assert_eq!(third.version, 3);
    assert_eq!(third.id, 3);
}

#[test]
fn new_ids_skip_ids_in_use_and_follow_imported_maximum() {
    let mut r = Registry::new();
    r.set_mode(None, Mode::Import, false).unwrap();
    r.register("imp", &imported(V1, 100, 5), false).unwrap();
    r.set_mode(None, Mode::ReadWrite, false).unwrap();
    let next = r
        .register(
            "other",
            &avro(&record("X", r#"{"name":"a","type":"int"}"#)),
            false,
        )
        .unwrap();
    assert_eq!(next.id, 101);
    assert_eq!(
        r.list_versions("imp", DeletedFilter::Live).unwrap(),
        vec![5]
    );
}

#[test]
fn diamond_references_resolve_and_track_referrers() {
    let mut r = Registry::new();
    let c = r
        .register(
            "c",
            &avro(&record("C", r#"{"name":"x","type":"int"}"#)),
            false,
        )
        .unwrap();
    let a = r
        .register(
            "a",
            &with_refs(&record("A", r#"{"name":"c","type":"C"}"#), &[("C", "c", 1)]),
            false,
        )
        .unwrap();
    let b = r
        .register(
            "b",
            &with_refs(&record("B", r#"{"name":"c","type":"C"}"#), &[("C", "c", 1)]),
            false,
        )
        .unwrap();
    let d = r
        .register(
            "d",
            &with_refs(
                &record("D", r#"{"name":"a","type":"A"},{"name":"b","type":"B"}"#),
                &[("A", "a", 1), ("B", "b", 1)],
            ),
            false,
        )
        .unwrap();
    assert_eq!((c.id, a.id, b.id, d.id), (1, 2, 3, 4));
    assert_eq!(
        r.referenced_by("c", VersionId::Number(1), false).unwrap(),
        vec![2, 3]
    );
    assert_eq!(
        r.referenced_by("a", VersionId::Latest, false).unwrap(),
        vec![4]
    );
    assert_eq!(d.schema.references.len(), 2);
    // Referenced versions cannot be deleted.
    assert_eq!(
        code(r.delete_version("c", VersionId::Number(1), false)),
        42206
    );
    assert_eq!(code(r.delete_subject("a", false)), 42206);
    // Once the referrer is gone (soft), soft delete is allowed but hard delete is not.
    r.delete_subject("d", false).unwrap();
    r.delete_version("a", VersionId::Number(1), false).unwrap();
    assert_eq!(
        code(r.delete_version("a", VersionId::Number(1), true)),
        42206
    );
    r.delete_subject("d", true).unwrap();
    r.delete_version("a", VersionId::Number(1), true).unwrap();
}

#[test]
fn missing_reference_is_invalid_schema() {
    let mut r = Registry::new();
    let req = with_refs(
        &record("A", r#"{"name":"c","type":"C"}"#),
        &[("C", "nope", 1)],
    );
    assert_eq!(code(r.register("a", &req, false)), 42201);
    assert_eq!(
        code(r.register(
            "a",
            &avro(&record("A", r#"{"name":"c","type":"C"}"#)),
            false
        )),
        42201
    );
}

#[test]
fn invalid_schemas_are_rejected_for_each_type() {
    let mut r = Registry::new();
    assert_eq!(code(r.register("s", &avro("{not json"), false)), 42201);
    let json = SchemaRequest {
        schema: Some("[1,2]".into()),
        schema_type: Some("JSON".into()),
        ..Default::default()
    };
    assert_eq!(code(r.register("s", &json, false)), 42201);
    let proto = SchemaRequest {
        schema: Some("message {".into()),
        schema_type: Some("PROTOBUF".into()),
        ..Default::default()
    };
    assert_eq!(code(r.register("s", &proto, false)), 42201);
    assert_eq!(
        code(r.register("s", &SchemaRequest::default(), false)),
        42201
    );
    let bad_type = SchemaRequest {
        schema: Some(V1.into()),
        schema_type: Some("XML".into()),
        ..Default::default()
    };
    assert_eq!(code(r.register("s", &bad_type, false)), 42201);
}

#[test]
fn soft_then_hard_delete_rules() {
    let mut r = Registry::new();
    r.register("s", &avro(V1), false).unwrap();
    assert_eq!(
        code(r.delete_version("s", VersionId::Number(1), true)),
        40407
    );
    assert_eq!(code(r.delete_subject("s", true)), 40405);
    assert_eq!(
        r.delete_version("s", VersionId::Number(1), false).unwrap(),
        1
    );
    assert_eq!(
        code(r.delete_version("s", VersionId::Number(1), false)),
        40406
    );
    assert_eq!(code(r.get_version("s", VersionId::Number(1), false)), 40401);
    assert_eq!(
        r.get_version("s", VersionId::Number(1), true)
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        r.list_subjects(None, DeletedFilter::Live),
        Vec::<String>::new()
    );
    assert_eq!(
        r.list_subjects(None, DeletedFilter::IncludeDeleted),
        vec!["s"]
    );
    assert_eq!(r.list_subjects(None, DeletedFilter::DeletedOnly), vec!["s"]);
    assert_eq!(code(r.delete_subject("s", false)), 40404);
    assert_eq!(r.delete_subject("s", true).unwrap(), vec![1]);
    assert_eq!(code(r.get_version("s", VersionId::Number(1), true)), 40401);
    assert_eq!(code(r.schema_by_id(1, None)), 40403);
    assert_eq!(code(r.delete_subject("s", false)), 40401);
}

#[test]
fn version_and_subject_not_found_codes() {
    let mut r = Registry::new();
    assert_eq!(code(r.get_version("s", VersionId::Latest, false)), 40401);
    r.register("s", &avro(V1), false).unwrap();
    assert_eq!(code(r.get_version("s", VersionId::Number(7), false)), 40402);
    assert_eq!(
        r.get_version("s", VersionId::Latest, false)
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        code(r.delete_version("s", VersionId::Number(7), false)),
        40402
    );
    assert_eq!(code(r.list_versions("x", DeletedFilter::Live)), 40401);
}

#[test]
fn lookup_finds_registered_schema() {
    let mut r = Registry::new();
    assert_eq!(code(r.lookup("s", &avro(V1), false, false)), 40401);
    r.register("s", &avro(V1), false).unwrap();
    let found = r
        .lookup("s", &avro(&V1.replace(':', " : ")), false, false)
        .unwrap();
    assert_eq!((found.version, found.id), (1, 1));
    assert_eq!(code(r.lookup("s", &avro(V2_DEFAULT), false, false)), 40403);
    assert_eq!(code(r.lookup("s", &avro("{"), false, false)), 42201);
    r.delete_version("s", VersionId::Number(1), false).unwrap();
    assert_eq!(code(r.lookup("s", &avro(V1), false, false)), 40401);
    assert_eq!(r.lookup("s", &avro(V1), false, true).unwrap().version, 1);
}

#[test]
fn backward_rejects_field_without_default() {
    let mut r = Registry::new();
    r.register("s", &avro(V1), false).unwrap();
    let err = r.register("s", &avro(V2_NO_DEFAULT), false).unwrap_err();
    assert_eq!(err.error_code(), 40901);
    assert_eq!(err.http_status(), 409);
    assert!(err.to_string().contains("oldSchemaVersion: 1"), "{err}");
    assert!(err.to_string().starts_with(
        "Schema being registered is incompatible with an earlier schema for subject \"s\""
    ));
    assert_eq!(
        r.register("s", &avro(V2_DEFAULT), false).unwrap().version,
        2
    );
}

#[test]
fn forward_and_full_directions() {
    let mut r = Registry::new();
    r.set_config(Some("f"), Compatibility::Forward).unwrap();
    r.register("f", &avro(V1), false).unwrap();
    // Adding a field without default: old reader ignores it -> forward compatible.
    assert!(r.register("f", &avro(V2_NO_DEFAULT), false).is_ok());
    // Removing a field without default is not forward compatible.
    let removed = record("R", r#"{"name":"b","type":"string"}"#);
    assert_eq!(code(r.register("f", &avro(&removed), false)), 40901);

    r.set_config(Some("full"), Compatibility::Full).unwrap();
    r.register("full", &avro(V1), false).unwrap();
    assert_eq!(code(r.register("full", &avro(V2_NO_DEFAULT), false)), 40901);
    assert!(r.register("full", &avro(V2_DEFAULT), false).is_ok());
}

#[test]
fn transitive_checks_all_live_versions_and_skip_deleted() {
    let string_a = record("R", r#"{"name":"a","type":"string"}"#);
    let long_a = record("R", r#"{"name":"a","type":"long"}"#);
    // v1 int, v2 long (int->long promotion ok), v3 ... reading long from string fails.
    let mut r = Registry::new();
    r.set_config(Some("t"), Compatibility::BackwardTransitive)
        .unwrap();
    r.register("t", &avro(V1), false).unwrap();
    r.register("t", &avro(&long_a), false).unwrap();
    // float reads int and long: ok transitively.
    let float_a = record("R", r#"{"name":"a","type":"float"}"#);
    assert!(r.register("t", &avro(&float_a), false).is_ok());
    // Non-transitive BACKWARD only looks at the latest.
    let mut r2 = Registry::new();
    r2.register("t", &avro(&string_a), false).unwrap();
    r2.set_config(Some("t"), Compatibility::None).unwrap();
    r2.register("t", &avro(V1), false).unwrap();
    r2.set_config(Some("t"), Compatibility::Backward).unwrap();
    assert!(r2.register("t", &avro(&long_a), false).is_ok());
    r2.set_config(Some("t"), Compatibility::BackwardTransitive)
        .unwrap();
    let double_a = record("R", r#"{"name":"a","type":"double"}"#);
    assert_eq!(code(r2.register("t", &avro(&double_a), false)), 40901);
    // Soft-deleting the string version lets it through.
    r2.delete_version("t", VersionId::Number(1), false).unwrap();
    assert!(r2.register("t", &avro(&double_a), false).is_ok());
}

#[test]
fn compatibility_endpoint_checks() {
    let mut r = Registry::new();
    assert!(
        r.check_compatibility("s", Some(VersionId::Latest), &avro(V1), false)
            .unwrap()
            .is_empty()
    );
    r.register("s", &avro(V1), false).unwrap();
    assert!(
        !r.check_compatibility("s", Some(VersionId::Latest), &avro(V2_NO_DEFAULT), false)
            .unwrap()
            .is_empty()
    );
    assert!(
        r.check_compatibility("s", None, &avro(V2_DEFAULT), false)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(r.check_compatibility("s", Some(VersionId::Number(9)), &avro(V1), false)),
        40402
    );
    assert_eq!(
        code(r.check_compatibility("s", None, &avro("{"), false)),
        42201
    );
}

#[test]
fn config_levels_and_fallbacks() {
    let mut r = Registry::new();
    assert_eq!(r.get_config(None, false).unwrap(), Compatibility::Backward);
    assert_eq!(code(r.get_config(Some("s"), false)), 40408);
    assert_eq!(
        r.get_config(Some("s"), true).unwrap(),
        Compatibility::Backward
    );
    r.set_config(None, Compatibility::Full).unwrap();
    assert_eq!(r.get_config(Some("s"), true).unwrap(), Compatibility::Full);
    r.set_config(Some("s"), Compatibility::None).unwrap();
    assert_eq!(r.get_config(Some("s"), false).unwrap(), Compatibility::None);
    assert_eq!(r.delete_config(Some("s")).unwrap(), Compatibility::None);
    assert_eq!(code(r.delete_config(Some("s"))), 40401);
    assert_eq!(r.delete_config(None).unwrap(), Compatibility::Full);
    assert_eq!(r.get_config(None, false).unwrap(), Compatibility::Backward);
    // Context-level config applies to its subjects.
    r.set_config(Some(":.ctx:"), Compatibility::None).unwrap();
    assert_eq!(r.compatibility_in_scope(":.ctx:s"), Compatibility::None);
    assert_eq!(r.compatibility_in_scope("s"), Compatibility::Backward);
}

#[test]
fn mode_rules() {
    let mut r = Registry::new();
    assert_eq!(r.get_mode(None, false).unwrap(), Mode::ReadWrite);
    assert_eq!(code(r.get_mode(Some("s"), false)), 40409);
    assert_eq!(r.get_mode(Some("s"), true).unwrap(), Mode::ReadWrite);
    r.register("s", &avro(V1), false).unwrap();
    // IMPORT refused while live subjects exist, unless forced.
    assert_eq!(code(r.set_mode(None, Mode::Import, false)), 42205);
    assert_eq!(code(r.set_mode(Some("s"), Mode::Import, false)), 42205);
    r.set_mode(Some("other"), Mode::Import, false).unwrap();
    r.set_mode(None, Mode::Import, true).unwrap();
    assert_eq!(r.get_mode(Some("s"), true).unwrap(), Mode::Import);
    // In IMPORT without id: refused.
    let err = r.register("s", &avro(V2_DEFAULT), false).unwrap_err();
    assert_eq!(err.error_code(), 42205);
    assert!(
        err.to_string().contains("is not in read-write mode"),
        "{err}"
    );
    r.set_mode(None, Mode::ReadOnly, false).unwrap();
    let err = r.register("s", &avro(V2_DEFAULT), false).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    // An already registered schema is still returned in READONLY.
    assert!(r.register("s", &avro(V1), false).is_ok());
    assert_eq!(code(r.delete_subject("s", false)), 42205);
    assert_eq!(code(r.set_config(Some("s"), Compatibility::None)), 42205);
    assert_eq!(r.delete_mode(None).unwrap(), Mode::ReadOnly);
    assert_eq!(r.delete_mode(Some("other")).unwrap(), Mode::Import);
    assert_eq!(code(r.delete_mode(Some("other"))), 40401);
}

#[test]
fn id_outside_import_mode_is_refused() {
    let mut r = Registry::new();
    let err = r.register("s", &imported(V1, 5, 1), false).unwrap_err();
    assert_eq!(err.error_code(), 42205);
    assert_eq!(
        err.to_string(),
        "Subject s in context  is not in import mode"
    );
}

#[test]
fn import_mode_rules() {
    let mut r = Registry::new();
    r.set_mode(None, Mode::Import, false).unwrap();
    let a = r.register("a", &imported(V1, 10, 3), false).unwrap();
    assert_eq!((a.id, a.version), (10, 3));
    // Gaps allowed; no compatibility checks.
    let b = r
        .register("a", &imported(V2_NO_DEFAULT, 20, 7), false)
        .unwrap();
    assert_eq!((b.id, b.version), (20, 7));
    // Same id, different content: refused.
    let err = r
        .register("c", &imported(V2_DEFAULT, 10, 1), false)
        .unwrap_err();
    assert_eq!(err.error_code(), 42205);
    assert_eq!(
        err.to_string(),
        "Overwrite new schema with id 10 in context  is not permitted."
    );
    // Same content under another id: allowed.
    let dup = r.register("d", &imported(V1, 11, 1), false).unwrap();
    assert_eq!(dup.id, 11);
    // Same content with the same id under another subject: allowed.
    assert_eq!(r.register("e", &imported(V1, 10, 1), false).unwrap().id, 10);
    // Idempotent re-import.
    assert_eq!(r.register("a", &imported(V1, 10, 3), false).unwrap(), a);
    assert_eq!(r.schema_by_id(20, None).unwrap().schema.text, b.schema.text);
}

#[test]
fn switching_to_import_purges_soft_deleted_versions() {
    let mut r = Registry::new();
    r.register("s", &avro(V1), false).unwrap();
    r.delete_subject("s", false).unwrap();
    r.set_mode(None, Mode::Import, false).unwrap();
    assert!(
        r.list_subjects(None, DeletedFilter::IncludeDeleted)
            .is_empty()
    );
}

#[test]
fn contexts_have_their_own_ids() {
    let mut r = Registry::new();
    let a = r.register("a", &avro(V1), false).unwrap();
    let x = r.register(":.ctx:a", &avro(V1), false).unwrap();
    let y = r.register(":.ctx:b", &avro(V2_DEFAULT), false).unwrap();
    assert_eq!((a.id, x.id, y.id), (1, 1, 2));
    assert_eq!(x.subject, ":.ctx:a");
    assert_eq!(r.contexts(), vec![".", ".ctx"]);
    assert_eq!(
        r.list_subjects(None, DeletedFilter::Live),
        vec!["a", ":.ctx:a", ":.ctx:b"]
    );
    assert_eq!(
        r.list_subjects(Some(":.ctx:"), DeletedFilter::Live),
        vec![":.ctx:a", ":.ctx:b"]
    );
    assert_eq!(r.list_subjects(Some("a"), DeletedFilter::Live), vec!["a"]);
    assert_eq!(code(r.schema_by_id(2, None)), 40403);
    assert_eq!(
        r.schema_by_id(2, Some(":.ctx:")).unwrap().subject,
        ":.ctx:b"
    );
    assert_eq!(r.schema_by_id(2, Some("b")).unwrap().subject, ":.ctx:b");
    assert_eq!(r.list_schemas(None, false, false).len(), 1);
    assert_eq!(r.list_schemas(Some(":*:"), false, false).len(), 3);
}

#[test]
fn references_resolve_inside_the_context() {
    let mut r = Registry::new();
    r.register(
        ":.ctx:c",
        &avro(&record("C", r#"{"name":"x","type":"int"}"#)),
        false,
    )
    .unwrap();
    let req = with_refs(&record("A", r#"{"name":"c","type":"C"}"#), &[("C", "c", 1)]);
    assert!(r.register(":.ctx:a", &req, false).is_ok());
    assert_eq!(code(r.register("a", &req, false)), 42201);
    assert_eq!(
        r.referenced_by(":.ctx:c", VersionId::Number(1), false)
            .unwrap(),
        vec![2]
    );
}

#[test]
fn list_schemas_paging_inputs() {
    let mut r = Registry::new();
    r.register("a", &avro(V1), false).unwrap();
    r.register("a", &avro(V2_DEFAULT), false).unwrap();
    r.register("b", &avro(V1), false).unwrap();
    let all = r.list_schemas(None, false, false);
    assert_eq!(
        all.iter()
            .map(|s| (s.subject.as_str(), s.version))
            .collect::<Vec<_>>(),
        vec![("a", 1), ("a", 2), ("b", 1)]
    );
    let latest = r.list_schemas(None, false, true);
    assert_eq!(
        latest
            .iter()
            .map(|s| (s.subject.as_str(), s.version))
            .collect::<Vec<_>>(),
        vec![("a", 2), ("b", 1)]
    );
    r.delete_version("a", VersionId::Number(2), false).unwrap();
    assert_eq!(r.list_schemas(Some("a"), false, false).len(), 1);
    assert_eq!(r.list_schemas(Some("a"), true, false).len(), 2);
}

#[test]
fn json_and_protobuf_round_trip_and_compat() {
    let mut r = Registry::new();
    let json = |s: &str| SchemaRequest {
        schema: Some(s.into()),
        schema_type: Some("JSON".into()),
        ..Default::default()
    };
    let j1 = r
        .register(
            "j",
            &json(r#"{ "type": "object", "properties": { "a": { "type": "string" } } }"#),
            false,
        )
        .unwrap();
    assert_eq!(
        j1.schema.text,
        r#"{"type":"object","properties":{"a":{"type":"string"}}}"#
    );
    assert_eq!(j1.schema.schema_type, SchemaType::Json);
    let narrowed = json(r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#);
    assert_eq!(code(r.register("j", &narrowed, false)), 40901);
    let proto = |s: &str| SchemaRequest {
        schema: Some(s.into()),
        schema_type: Some("PROTOBUF".into()),
        ..Default::default()
    };
    let p1 = r
        .register(
            "p",
            &proto("syntax = \"proto3\";\nmessage M { string a = 1; }\n"),
            false,
        )
        .unwrap();
    let same = r
        .register(
            "p",
            &proto("syntax = \"proto3\"; // x\nmessage M {\n  string a = 1;\n}"),
            false,
        )
        .unwrap();
    assert_eq!(p1, same);
    assert_eq!(
        code(r.register(
            "p",
            &proto("syntax = \"proto3\"; message M { int32 a = 1; }"),
            false
        )),
        40901
    );
    // Type change against an existing subject is an incompatibility, not a crash.
    assert_eq!(code(r.register("p", &json("{}"), false)), 40901);
}

#[test]
fn protobuf_references_by_import() {
    let mut r = Registry::new();
    let proto = |s: &str, refs: Vec<Reference>| SchemaRequest {
        schema: Some(s.into()),
        schema_type: Some("PROTOBUF".into()),
        references: refs,
        ..Default::default()
    };
    r.register(
        "dep",
        &proto(
            "syntax = \"proto3\"; package d; message Dep { string a = 1; }",
            vec![],
        ),
        false,
    )
    .unwrap();
    let main = "syntax = \"proto3\"; import \"dep.proto\"; message M { d.Dep dep = 1; }";
    assert_eq!(code(r.register("m", &proto(main, vec![]), false)), 42201);
    let rec = r
        .register(
            "m",
            &proto(
                main,
                vec![Reference {
                    name: "dep.proto".into(),
                    subject: "dep".into(),
                    version: 1,
                }],
            ),
            false,
        )
        .unwrap();
    assert_eq!(rec.id, 2);

    // `format=serialized`: base64 of the FileDescriptorProto, imports kept.
    use base64::Engine as _;
    use prost::Message as _;
    let b64 = r.formatted(&rec, "serialized").unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .unwrap();
    let fd = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(fd.dependency, vec!["dep.proto"]);
    assert_eq!(fd.message_type[0].name(), "M");
    assert_eq!(r.formatted(&rec, "").unwrap(), main);
    // The same schema submitted as that descriptor is the same version (lookup and register).
    let dep_ref = vec![Reference {
        name: "dep.proto".into(),
        subject: "dep".into(),
        version: 1,
    }];
    let found = r
        .lookup("m", &proto(&b64, dep_ref.clone()), false, false)
        .unwrap();
    assert_eq!((found.id, found.version), (2, 1));
    let again = r.register("m", &proto(&b64, dep_ref), false).unwrap();
    assert_eq!((again.id, again.version), (2, 1));
    // Registered as a descriptor, stored as .proto text.
    let other = r.register("m2", &proto(&b64, vec![]), false);
    assert_eq!(code(other), 42201, "the import still needs its reference");
}

#[test]
fn explicit_version_outside_import_must_be_next() {
    let mut r = Registry::new();
    let req = SchemaRequest {
        schema: Some(V1.into()),
        version: Some(1),
        ..Default::default()
    };
    assert_eq!(r.register("s", &req, false).unwrap().version, 1);
    let req = SchemaRequest {
        schema: Some(V2_DEFAULT.into()),
        version: Some(5),
        ..Default::default()
    };
    assert_eq!(code(r.register("s", &req, false)), 42201);
}

#[test]
fn permanent_delete_drops_subject_config_and_mode() {
    let mut r = Registry::new();
    r.register("s", &avro(V1), false).unwrap();
    r.set_config(Some("s"), Compatibility::None).unwrap();
    r.delete_subject("s", false).unwrap();
    r.delete_subject("s", true).unwrap();
    assert_eq!(code(r.get_config(Some("s"), false)), 40408);
}

#[test]
fn reregistering_soft_deleted_schema_reuses_id_and_drops_old_version() {
    let mut r = Registry::new();
    r.register("s", &avro(V1), false).unwrap();
    r.delete_version("s", VersionId::Number(1), false).unwrap();
    let again = r.register("s", &avro(V1), false).unwrap();
    assert_eq!((again.id, again.version), (1, 2));
    assert_eq!(
        r.list_versions("s", DeletedFilter::IncludeDeleted).unwrap(),
        vec![2]
    );
}

// ----- the Karapace 3.16 dialect ------------------------------------------------------

fn karapace() -> Registry {
    Registry::with_dialect(Dialect::Karapace316)
}

#[test]
fn karapace_subject_mode_is_the_global_one_for_subjects_it_knows() {
    let mut r = karapace();
    assert_eq!(code(r.get_mode(Some("s"), false)), 40401);
    r.register("s", &avro(V1), false).unwrap();
    assert_eq!(r.get_mode(Some("s"), false).unwrap(), Mode::ReadWrite);
    assert_eq!(r.get_mode(None, false).unwrap(), Mode::ReadWrite);
}

#[test]
fn karapace_config_of_an_unknown_subject_is_40401_until_a_config_write() {
    let mut r = karapace();
    assert_eq!(code(r.get_config(Some("ghost"), false)), 40401);
    assert_eq!(code(r.get_config(Some("ghost"), true)), 40401);
    // deleting a level that was never set answers the global level and makes it known
    assert_eq!(
        r.delete_config(Some("ghost")).unwrap(),
        Compatibility::Backward
    );
    assert_eq!(code(r.get_config(Some("ghost"), false)), 40408);
    assert_eq!(
        r.get_config(Some("ghost"), true).unwrap(),
        Compatibility::Backward
    );
    assert_eq!(r.get_mode(Some("ghost"), false).unwrap(), Mode::ReadWrite);
    r.set_config(Some("other"), Compatibility::None).unwrap();
    // listed with deleted=true only, and still without versions
    assert!(r.list_subjects(None, DeletedFilter::Live).is_empty());
    assert_eq!(
        r.list_subjects(None, DeletedFilter::IncludeDeleted),
        vec!["ghost".to_string(), "other".to_string()]
    );
    assert_eq!(
        code(r.list_versions("other", DeletedFilter::IncludeDeleted)),
        40401
    );
    // a subject deleted for good is forgotten, its level with it
    r.register("other", &avro(V1), false).unwrap();
    r.delete_subject("other", false).unwrap();
    r.delete_subject("other", true).unwrap();
    assert_eq!(code(r.get_config(Some("other"), false)), 40401);
}

#[test]
fn karapace_delete_config_answers_the_global_level() {
    let mut r = karapace();
    r.register("s", &avro(V1), false).unwrap();
    r.set_config(None, Compatibility::Full).unwrap();
    r.set_config(Some("s"), Compatibility::None).unwrap();
    assert_eq!(r.delete_config(Some("s")).unwrap(), Compatibility::Full);
    assert_eq!(code(r.get_config(Some("s"), false)), 40408);
}

#[test]
fn karapace_schemas_listing_inverts_the_deleted_flag() {
    let mut r = karapace();
    r.set_config(Some("s"), Compatibility::None).unwrap();
    r.register("s", &avro(V1), false).unwrap();
    r.register(
        "s",
        &avro(&record("Q", r#"{"name":"q","type":"int"}"#)),
        false,
    )
    .unwrap();
    r.delete_version("s", VersionId::Number(2), false).unwrap();
    let versions = |records: Vec<SchemaRecord>| -> Vec<i32> {
        records.into_iter().map(|r| r.version).collect()
    };
    // no flag: soft-deleted versions included; deleted=true: left out
    assert_eq!(versions(r.list_schemas(None, false, false)), vec![1, 2]);
    assert_eq!(versions(r.list_schemas(None, true, false)), vec![1]);
    // latestOnly takes the highest version even when it is soft-deleted
    assert_eq!(versions(r.list_schemas(None, false, true)), vec![2]);
    assert!(r.list_schemas(None, true, true).is_empty());
}

#[test]
fn karapace_never_forgets_an_id() {
    let mut r = karapace();
    let first = r.register("s", &avro(V1), false).unwrap();
    r.delete_subject("s", false).unwrap();
    r.delete_subject("s", true).unwrap();
    let by_id = r.schema_by_id(first.id, None).unwrap();
    assert_eq!(by_id.schema.text, first.schema.text);
    assert!(r.versions_for_id(first.id, None, true).unwrap().is_empty());
    // unknown ids: 40403 by id, an empty list of versions
    assert_eq!(code(r.schema_by_id(99, None)), 40403);
    assert!(r.versions_for_id(99, None, true).unwrap().is_empty());
    // the same content elsewhere gets the id back
    let other = r.register("t", &avro(&record("Z", "")), false).unwrap();
    assert_eq!(other.id, 2);
    let again = r.register("u", &avro(V1), false).unwrap();
    assert_eq!(again.id, first.id);
}

#[test]
fn karapace_keeps_a_soft_deleted_version_when_its_schema_comes_back() {
    let mut r = karapace();
    r.register("s", &avro(V1), false).unwrap();
    r.delete_version("s", VersionId::Number(1), false).unwrap();
    let again = r.register("s", &avro(V1), false).unwrap();
    assert_eq!((again.id, again.version), (1, 2));
    assert_eq!(
        r.list_versions("s", DeletedFilter::IncludeDeleted).unwrap(),
        vec![1, 2]
    );
}

#[test]
fn karapace_stores_sorted_json_and_tells_schemas_apart_by_it() {
    let mut r = karapace();
    let spaced = r#"{"type": "record", "name": "R", "fields": [{"type": "int", "name": "a"}]}"#;
    let first = r.register("s", &avro(spaced), false).unwrap();
    assert_eq!(
        first.schema.text,
        r#"{"fields":[{"name":"a","type":"int"}],"name":"R","type":"record"}"#
    );
    // the same text in another key order is the same schema
    let same = r.register("s", &avro(V1), false).unwrap();
    assert_eq!((same.id, same.version), (1, 1));
    // the same meaning in other words is another schema, with its own id
    r.register("p", &avro(r#""string""#), false).unwrap();
    let long = r
        .register("p", &avro(r#"{"type":"string"}"#), false)
        .unwrap();
    assert_eq!((long.id, long.version), (3, 2));
    // a lookup matches by meaning and answers the newest such version
    let found = r.lookup("p", &avro(r#""string""#), false, false).unwrap();
    assert_eq!(found.version, 2);
}

#[test]
fn karapace_has_no_contexts() {
    let mut r = karapace();
    r.register("plain", &avro(V1), false).unwrap();
    let in_ctx = r
        .register(":.ctx:s", &avro(&record("C", "")), false)
        .unwrap();
    assert_eq!((in_ctx.subject.as_str(), in_ctx.id), (":.ctx:s", 2));
    assert_eq!(
        r.list_subjects(None, DeletedFilter::Live),
        vec![":.ctx:s".to_string(), "plain".to_string()]
    );
}

#[test]
fn karapace_compatibility_of_an_unknown_version_is_40402() {
    let mut r = karapace();
    assert_eq!(
        code(r.check_compatibility("nope", Some(VersionId::Latest), &avro(V1), false)),
        40402
    );
    r.register("s", &avro(V1), false).unwrap();
    assert_eq!(
        code(r.check_compatibility("s", Some(VersionId::Number(2)), &avro(V1), false)),
        40402
    );
    assert!(
        r.check_compatibility("s", Some(VersionId::Latest), &avro(V2_DEFAULT), false)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn karapace_referencedby_reads_live_versions_only() {
    let mut r = karapace();
    r.register("s", &avro(V1), false).unwrap();
    r.register("s", &avro(V2_DEFAULT), false).unwrap();
    r.delete_version("s", VersionId::Number(1), false).unwrap();
    assert_eq!(
        code(r.referenced_by("s", VersionId::Number(1), false)),
        40402
    );
    assert!(
        r.referenced_by("s", VersionId::Number(2), false)
            .unwrap()
            .is_empty()
    );
    r.delete_subject("s", false).unwrap();
    assert_eq!(code(r.referenced_by("s", VersionId::Latest, false)), 40401);
}
