//! Schema references: an Avro record using a named type registered under another subject,
//! a diamond (two schemas sharing a base, a top schema using both), `referencedby`,
//! 42206 when deleting a referenced version or subject, and 42201 for a missing
//! reference or an undefined type (registry-semantics.md "Reading state", "Deletes",
//! "Error codes"; OpenAPI `SchemaReference`, `/subjects/{s}/versions/{v}/referencedby`).

//!
//! Karapace 3.16 ([`karapace`]) has references for Protobuf only (Avro ones came in 6.1):
//! an Avro registration, lookup or check with a non-empty `references` is refused with 422
//! and `error_code` 44302 before anything else, and creates nothing. The tests check that
//! and stop there.

use sr_conformance::*;

/// Registers `Address` under `<prefix>-addr` and `Person` (a field of type `Address`)
/// under `<prefix>-person`; returns (addr subject, person subject, address id, person id),
/// or `None` on Karapace, after checking that it refuses the reference.
fn address_and_person(s: &Scope) -> Option<(String, String, i64, i64)> {
    let r = registry();
    let (addr, person) = (s.subject("addr"), s.subject("person"));
    let address = s.record("Address", json!([{ "name": "street", "type": "string" }]));
    let address_id = r.register(&addr, &avro_body(&address));
    if karapace() {
        expect_no_avro_references(&person, &person_body(s, &addr));
        return None;
    }
    let person_id = r.register(&person, &person_body(s, &addr));
    Some((addr, person, address_id, person_id))
}

/// Karapace 3.16: registering `body` (an Avro schema with references) under `subject` is
/// 422/44302 and creates nothing.
#[track_caller]
fn expect_no_avro_references(subject: &str, body: &Value) {
    let r = registry();
    let resp = r.post(&format!("/subjects/{subject}/versions"), body);
    resp.expect_error(422, 44302);
    assert_eq!(
        resp.body["message"],
        json!("Schema references are not supported for 'AVRO' schema type"),
        "\n{resp}"
    );
    r.get(&format!("/subjects/{subject}/versions"))
        .expect_error(404, 40401);
}

fn person_body(s: &Scope, addr: &str) -> Value {
    avro_body_with_refs(
        &person_schema(s),
        json!([reference(&s.full_name("Address"), addr, 1)]),
    )
}

fn person_schema(s: &Scope) -> Value {
    s.record("Person", json!([{ "name": "home", "type": "Address" }]))
}

/// Asserts the stored schema is the record `name` whose first field has type `field_type`
/// (short or namespace-qualified: both mean the same named type).
fn assert_record_using(s: &Scope, response: &Value, name: &str, field_type: &str) {
    let schema = parse_schema(&response["schema"]);
    assert_eq!(schema["name"], json!(name), "{response}");
    let used = schema["fields"][0]["type"].as_str().unwrap_or_default();
    assert!(
        used == field_type || used == s.full_name(field_type),
        "field type should be {field_type}\n{response}"
    );
}

/// `GET /subjects/{subject}/versions/{version}/referencedby{query}`, sorted.
fn referenced_by_with(subject: &str, version: &str, query: &str) -> Vec<i64> {
    let resp = registry().get(&format!(
        "/subjects/{subject}/versions/{version}/referencedby{query}"
    ));
    sorted(&int_list(resp.ok(), &resp))
}

fn referenced_by(subject: &str, version: &str) -> Vec<i64> {
    referenced_by_with(subject, version, "")
}

#[test]
fn references_record_using_type_from_another_subject() {
    let r = registry();
    let s = scope("references_record_using_type_from_another_subject");
    let Some((addr, person, address_id, person_id)) = address_and_person(&s) else {
        return;
    };
    assert_ne!(address_id, person_id);
    let v = r.version(&person, "1");
    assert_eq!(v["id"], json!(person_id), "{v}");
    assert_eq!(
        references_of(&v),
        json!([{ "name": s.full_name("Address"), "subject": addr, "version": 1 }]),
        "{v}"
    );
    assert_record_using(&s, &v, "Person", "Address");
    let by_id = r.get(&format!("/schemas/ids/{person_id}"));
    assert_eq!(
        references_of(by_id.ok()),
        json!([{ "name": s.full_name("Address"), "subject": addr, "version": 1 }]),
        "\n{by_id}"
    );
}

#[test]
fn references_lookup_and_reregister_with_references_return_same_id() {
    let r = registry();
    let s = scope("references_lookup_and_reregister_with_references_return_same_id");
    let Some((addr, person, _, person_id)) = address_and_person(&s) else {
        return;
    };
    let resp = r.post(&format!("/subjects/{person}"), &person_body(&s, &addr));
    assert_eq!(resp.ok()["id"], json!(person_id), "\n{resp}");
    assert_eq!(resp.body["version"], json!(1), "\n{resp}");
    assert_eq!(r.register(&person, &person_body(&s, &addr)), person_id);
    assert_eq!(r.versions(&person, false), vec![1]);
}

#[test]
fn references_referencedby_lists_referrer_ids() {
    let s = scope("references_referencedby_lists_referrer_ids");
    let Some((addr, person, _, person_id)) = address_and_person(&s) else {
        return;
    };
    assert_eq!(referenced_by(&addr, "1"), vec![person_id]);
    assert_eq!(referenced_by(&addr, "latest"), vec![person_id]);
    assert_eq!(referenced_by(&person, "1"), Vec::<i64>::new());
}

#[test]
fn references_referencedby_unknown_subject_or_version() {
    let r = registry();
    let s = scope("references_referencedby_unknown_subject_or_version");
    let Some((addr, _, _, _)) = address_and_person(&s) else {
        return;
    };
    r.get(&format!(
        "/subjects/{}/versions/1/referencedby",
        s.subject("missing")
    ))
    .expect_error(404, 40401);
    r.get(&format!("/subjects/{addr}/versions/9/referencedby"))
        .expect_error(404, 40402);
}

#[test]
fn references_deleting_referenced_version_or_subject_42206() {
    let r = registry();
    let s = scope("references_deleting_referenced_version_or_subject_42206");
    let Some((addr, _, _, _)) = address_and_person(&s) else {
        return;
    };
    r.delete(&format!("/subjects/{addr}/versions/1"))
        .expect_error(422, 42206);
    r.delete(&format!("/subjects/{addr}"))
        .expect_error(422, 42206);
    assert_eq!(r.versions(&addr, false), vec![1], "nothing was deleted");
}

#[test]
fn references_soft_deleted_referrer_hidden_but_still_blocks_hard_delete() {
    let r = registry();
    let s = scope("references_soft_deleted_referrer_hidden_but_still_blocks_hard_delete");
    let Some((addr, person, _, person_id)) = address_and_person(&s) else {
        return;
    };
    r.delete(&format!("/subjects/{person}/versions/1")).ok();
    // `referencedby` hides soft-deleted referrers unless `?deleted=true`.
    assert_eq!(referenced_by(&addr, "1"), Vec::<i64>::new());
    assert_eq!(
        referenced_by_with(&addr, "1", "?deleted=true"),
        vec![person_id]
    );
    // With the referrer soft-deleted, a soft delete of the referenced version is allowed
    // (Confluent checks live referrers only) ...
    let resp = r.delete(&format!("/subjects/{addr}/versions/1"));
    assert_eq!(resp.ok(), &json!(1), "\n{resp}");
    // ... but a hard delete would orphan the soft-deleted referrer: still 42206.
    r.delete(&format!("/subjects/{addr}/versions/1?permanent=true"))
        .expect_error(422, 42206);
    assert_eq!(r.versions(&addr, true), vec![1]);
}

#[test]
fn references_missing_referenced_subject_42201() {
    let r = registry();
    let s = scope("references_missing_referenced_subject_42201");
    let body = avro_body_with_refs(
        &person_schema(&s),
        json!([reference(&s.full_name("Address"), &s.subject("missing"), 1)]),
    );
    if karapace() {
        // refused for being a reference, before it is resolved
        expect_no_avro_references(&s.subject("person"), &body);
        return;
    }
    r.post(
        &format!("/subjects/{}/versions", s.subject("person")),
        &body,
    )
    .expect_error(422, 42201);
}

#[test]
fn references_missing_referenced_version_42201() {
    let r = registry();
    let s = scope("references_missing_referenced_version_42201");
    let Some((addr, _, _, _)) = address_and_person(&s) else {
        return;
    };
    let body = avro_body_with_refs(
        &person_schema(&s),
        json!([reference(&s.full_name("Address"), &addr, 7)]),
    );
    r.post(
        &format!("/subjects/{}/versions", s.subject("person2")),
        &body,
    )
    .expect_error(422, 42201);
}

#[test]
fn references_undefined_type_without_reference_42201() {
    let r = registry();
    let s = scope("references_undefined_type_without_reference_42201");
    r.post(
        &format!("/subjects/{}/versions", s.subject("person")),
        &avro_body(&person_schema(&s)),
    )
    .expect_error(422, 42201);
}

#[test]
fn references_diamond() {
    let r = registry();
    let s = scope("references_diamond");
    let (base, left, right, top) = (
        s.subject("base"),
        s.subject("left"),
        s.subject("right"),
        s.subject("top"),
    );
    let base_id = r.register(
        &base,
        &avro_body(&s.record("Base", json!([{ "name": "id", "type": "string" }]))),
    );
    let base_ref = json!([reference(&s.full_name("Base"), &base, 1)]);
    if karapace() {
        expect_no_avro_references(
            &left,
            &avro_body_with_refs(
                &s.record("Left", json!([{ "name": "base", "type": "Base" }])),
                base_ref,
            ),
        );
        return;
    }
    let left_id = r.register(
        &left,
        &avro_body_with_refs(
            &s.record("Left", json!([{ "name": "base", "type": "Base" }])),
            base_ref.clone(),
        ),
    );
    let right_id = r.register(
        &right,
        &avro_body_with_refs(
            &s.record("Right", json!([{ "name": "base", "type": "Base" }])),
            base_ref,
        ),
    );
    let top_refs = json!([
        reference(&s.full_name("Left"), &left, 1),
        reference(&s.full_name("Right"), &right, 1),
    ]);
    let top_id = r.register(
        &top,
        &avro_body_with_refs(
            &s.record(
                "Top",
                json!([
                    { "name": "left", "type": "Left" },
                    { "name": "right", "type": "Right" }
                ]),
            ),
            top_refs.clone(),
        ),
    );
    let ids = sorted(&[base_id, left_id, right_id, top_id]);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "four distinct IDs: {ids:?}"
    );

    let v = r.version(&top, "1");
    assert_eq!(references_of(&v), top_refs, "{v}");
    assert_record_using(&s, &v, "Top", "Left");
    assert_eq!(referenced_by(&base, "1"), sorted(&[left_id, right_id]));
    assert_eq!(referenced_by(&left, "1"), vec![top_id]);
    assert_eq!(referenced_by(&right, "1"), vec![top_id]);
    assert_eq!(referenced_by(&top, "1"), Vec::<i64>::new());
    r.delete(&format!("/subjects/{base}/versions/1"))
        .expect_error(422, 42206);
    r.delete(&format!("/subjects/{left}/versions/1"))
        .expect_error(422, 42206);
}
