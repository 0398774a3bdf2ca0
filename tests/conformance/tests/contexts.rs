//! Contexts: a subject written `:.ctx:name` lives in context `.ctx`, IDs are counted per
//! context (so a fresh context starts at 1), `GET /contexts` lists contexts, and
//! qualified subjects are listed and readable like any other (registry-semantics.md
//! "Reading state": Contexts, "IDs and versions"; OpenAPI `/contexts`). Every test is
//! named `contexts_*` so registries without contexts can skip them.
//!
//! Karapace 3.16 ([`karapace`]) has no contexts: `GET /contexts` is aiohttp's 404,
//! `:.ctx:name` is a plain subject name in the one ID space (so no absolute IDs are
//! asserted for it), and `?subject=` on `/schemas/ids/{id}` is ignored.

use sr_conformance::*;

#[test]
fn contexts_ids_are_counted_per_context() {
    let r = registry();
    let s = scope("contexts_ids_are_counted_per_context");
    let (first, second) = (fresh_context(), fresh_context());
    if karapace() {
        // one ID space: the same schema has the same ID whatever the "context"
        let x = r.register(&in_context(&first, "a"), &avro_body(&s.simple("X")));
        let y = r.register(&in_context(&first, "b"), &avro_body(&s.simple("Y")));
        assert!(y > x, "a new schema gets a higher ID: {x} then {y}");
        assert_eq!(
            r.register(&in_context(&second, "a"), &avro_body(&s.simple("Y"))),
            y
        );
        assert_eq!(
            r.register(&in_context(&second, "b"), &avro_body(&s.simple("X"))),
            x
        );
        return;
    }
    assert_eq!(
        r.register(&in_context(&first, "a"), &avro_body(&s.simple("X"))),
        1
    );
    assert_eq!(
        r.register(&in_context(&first, "b"), &avro_body(&s.simple("Y"))),
        2
    );
    // The same schema in another context is counted there, from 1 again.
    assert_eq!(
        r.register(&in_context(&second, "a"), &avro_body(&s.simple("Y"))),
        1
    );
    assert_eq!(
        r.register(&in_context(&second, "b"), &avro_body(&s.simple("X"))),
        2
    );
}

#[test]
fn contexts_same_schema_in_one_context_shares_id() {
    let r = registry();
    let s = scope("contexts_same_schema_in_one_context_shares_id");
    let context = fresh_context();
    let (a, b) = (in_context(&context, "a"), in_context(&context, "b"));
    if karapace() {
        // the same rules without absolute IDs: plain subjects sharing the one ID space
        let x = r.register(&a, &avro_body(&s.simple("X")));
        assert_eq!(r.register(&b, &avro_body(&s.simple("X"))), x);
        assert_eq!(r.register(&a, &avro_body(&s.simple("X"))), x);
        r.set_compatibility(&a, "NONE");
        assert!(r.register(&a, &avro_body(&s.simple("Z"))) > x);
        assert_eq!(r.versions(&a, false), vec![1, 2]);
        assert_eq!(r.versions(&b, false), vec![1]);
        return;
    }
    assert_eq!(r.register(&a, &avro_body(&s.simple("X"))), 1);
    assert_eq!(r.register(&b, &avro_body(&s.simple("X"))), 1);
    // Re-registering creates nothing; a new schema gets the next ID.
    assert_eq!(r.register(&a, &avro_body(&s.simple("X"))), 1);
    r.set_compatibility(&a, "NONE");
    assert_eq!(r.register(&a, &avro_body(&s.simple("Z"))), 2);
    assert_eq!(r.versions(&a, false), vec![1, 2]);
    assert_eq!(r.versions(&b, false), vec![1]);
}

#[test]
fn contexts_listed_by_get_contexts() {
    let r = registry();
    let s = scope("contexts_listed_by_get_contexts");
    let context = fresh_context();
    let resp = r.get("/contexts");
    if karapace() {
        resp.expect_no_route(404);
        r.register(&in_context(&context, "a"), &avro_body(&s.simple("X")));
        r.get("/contexts").expect_no_route(404);
        return;
    }
    assert!(
        !string_list(resp.ok(), &resp).contains(&context),
        "context listed before use\n{resp}"
    );
    r.register(&in_context(&context, "a"), &avro_body(&s.simple("X")));
    let resp = r.get("/contexts");
    let contexts = string_list(resp.ok(), &resp);
    assert!(
        contexts.iter().any(|c| c == "."),
        "default context `.` missing\n{resp}"
    );
    assert!(contexts.contains(&context), "{context} missing\n{resp}");
}

#[test]
fn contexts_qualified_subject_is_listed_and_readable() {
    let r = registry();
    let s = scope("contexts_qualified_subject_is_listed_and_readable");
    let subject = in_context(&fresh_context(), "a");
    let id = r.register(&subject, &avro_body(&s.simple("X")));
    // Karapace: a plain subject, its ID from the one ID space
    let expected_id = if karapace() { id } else { 1 };
    assert!(
        r.subjects(false).contains(&subject),
        "{subject} not in GET /subjects"
    );
    assert_eq!(r.versions(&subject, false), vec![1]);
    let v = r.version(&subject, "1");
    assert_eq!(v["subject"], json!(subject), "{v}");
    assert_eq!(v["version"], json!(1), "{v}");
    assert_eq!(v["id"], json!(expected_id), "{v}");
    assert_same_json_schema(&v, &s.simple("X"));
    let resp = r.post(&format!("/subjects/{subject}"), &avro_body(&s.simple("X")));
    assert_eq!(resp.ok()["id"], json!(expected_id), "\n{resp}");
}

#[test]
fn contexts_schema_by_id_is_scoped_by_subject_parameter() {
    let r = registry();
    let s = scope("contexts_schema_by_id_is_scoped_by_subject_parameter");
    let (first, second) = (fresh_context(), fresh_context());
    let (a, b) = (in_context(&first, "a"), in_context(&second, "a"));
    let x = r.register(&a, &avro_body(&s.simple("X")));
    let y = r.register(&b, &avro_body(&s.simple("Y")));
    if karapace() {
        // `subject` is ignored: an ID names one schema, wherever its holder is
        let resp = r.get(&format!("/schemas/ids/{x}?subject={b}"));
        assert_same_json_schema(resp.ok(), &s.simple("X"));
        let resp = r.get(&format!("/schemas/ids/{y}?subject={a}"));
        assert_same_json_schema(resp.ok(), &s.simple("Y"));
        let resp = r.get(&format!("/schemas/ids/{y}/versions?subject={a}"));
        assert_eq!(
            resp.ok(),
            &json!([{ "subject": b, "version": 1 }]),
            "\n{resp}"
        );
        return;
    }
    // ID 1 means a different schema in each context.
    let resp = r.get(&format!("/schemas/ids/1?subject={a}"));
    assert_same_json_schema(resp.ok(), &s.simple("X"));
    let resp = r.get(&format!("/schemas/ids/1?subject={b}"));
    assert_same_json_schema(resp.ok(), &s.simple("Y"));
    let resp = r.get(&format!("/schemas/ids/1/versions?subject={b}"));
    assert_eq!(
        resp.ok(),
        &json!([{ "subject": b, "version": 1 }]),
        "\n{resp}"
    );
}
