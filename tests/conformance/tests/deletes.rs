//! Deletes: `DELETE /subjects/{s}[/versions/{v}]` is soft, `?permanent=true` after a soft
//! delete is hard; 40405 / 40407 for a hard delete without the soft one first, 40404 /
//! 40406 for soft-deleting twice, 40401 / 40402 / 42202 for unknown subject / version /
//! invalid version, and what `?deleted=true` shows afterwards (registry-semantics.md
//! "Deletes"; OpenAPI `DELETE /subjects/...`; Confluent `Errors.java` for 40404-40407).

use sr_conformance::*;

/// A subject with two versions (A, B) under compatibility NONE; returns (subject, ids).
fn two_versions(s: &Scope) -> (String, Vec<i64>) {
    let r = registry();
    let subject = s.subject("a");
    r.set_compatibility(&subject, "NONE");
    let ids = vec![
        r.register(&subject, &avro_body(&s.simple("A"))),
        r.register(&subject, &avro_body(&s.simple("B"))),
    ];
    (subject, ids)
}

#[test]
fn delete_version_soft_returns_number_and_hides_version() {
    let r = registry();
    let s = scope("delete_version_soft_returns_number_and_hides_version");
    let (subject, ids) = two_versions(&s);
    let resp = r.delete(&format!("/subjects/{subject}/versions/1"));
    assert_eq!(resp.ok(), &json!(1), "\n{resp}");
    assert_eq!(r.versions(&subject, false), vec![2]);
    assert_eq!(r.versions(&subject, true), vec![1, 2]);
    r.get(&format!("/subjects/{subject}/versions/1"))
        .expect_error(404, 40402);
    assert_eq!(r.version(&subject, "1?deleted=true")["id"], json!(ids[0]));
}

#[test]
fn delete_version_latest_resolves_to_its_number() {
    let r = registry();
    let s = scope("delete_version_latest_resolves_to_its_number");
    let (subject, _) = two_versions(&s);
    let resp = r.delete(&format!("/subjects/{subject}/versions/latest"));
    assert_eq!(resp.ok(), &json!(2), "\n{resp}");
    assert_eq!(r.versions(&subject, false), vec![1]);
}

#[test]
fn delete_subject_soft_returns_versions_and_hides_subject() {
    let r = registry();
    let s = scope("delete_subject_soft_returns_versions_and_hides_subject");
    let (subject, ids) = two_versions(&s);
    let resp = r.delete(&format!("/subjects/{subject}"));
    assert_eq!(resp.ok(), &json!([1, 2]), "\n{resp}");
    r.get(&format!("/subjects/{subject}/versions"))
        .expect_error(404, 40401);
    r.get(&format!("/subjects/{subject}/versions/1"))
        .expect_error(404, 40401);
    assert_eq!(r.versions(&subject, true), vec![1, 2]);
    assert_eq!(r.version(&subject, "2?deleted=true")["id"], json!(ids[1]));
    assert!(!r.subjects(false).contains(&subject));
    assert!(r.subjects(true).contains(&subject));
}

#[test]
fn delete_subject_soft_twice_40404() {
    let r = registry();
    let s = scope("delete_subject_soft_twice_40404");
    let (subject, _) = two_versions(&s);
    r.delete(&format!("/subjects/{subject}")).ok();
    r.delete(&format!("/subjects/{subject}"))
        .expect_error(404, 40404);
}

#[test]
fn delete_version_soft_twice_40406() {
    let r = registry();
    let s = scope("delete_version_soft_twice_40406");
    let (subject, _) = two_versions(&s);
    r.delete(&format!("/subjects/{subject}/versions/1")).ok();
    r.delete(&format!("/subjects/{subject}/versions/1"))
        .expect_error(404, 40406);
}

#[test]
fn delete_subject_permanent_without_soft_delete_40405() {
    let r = registry();
    let s = scope("delete_subject_permanent_without_soft_delete_40405");
    let (subject, _) = two_versions(&s);
    r.delete(&format!("/subjects/{subject}?permanent=true"))
        .expect_error(404, 40405);
    assert_eq!(
        r.versions(&subject, false),
        vec![1, 2],
        "nothing was deleted"
    );
}

#[test]
fn delete_version_permanent_without_soft_delete_40407() {
    let r = registry();
    let s = scope("delete_version_permanent_without_soft_delete_40407");
    let (subject, _) = two_versions(&s);
    r.delete(&format!("/subjects/{subject}/versions/1?permanent=true"))
        .expect_error(404, 40407);
    assert_eq!(
        r.versions(&subject, false),
        vec![1, 2],
        "nothing was deleted"
    );
}

#[test]
fn delete_subject_permanent_after_soft_removes_everything() {
    let r = registry();
    let s = scope("delete_subject_permanent_after_soft_removes_everything");
    let (subject, _) = two_versions(&s);
    r.delete(&format!("/subjects/{subject}")).ok();
    let resp = r.delete(&format!("/subjects/{subject}?permanent=true"));
    assert_eq!(resp.ok(), &json!([1, 2]), "\n{resp}");
    assert!(
        !r.subjects(true).contains(&subject),
        "hard-deleted subject still listed"
    );
    r.get(&format!("/subjects/{subject}/versions?deleted=true"))
        .expect_error(404, 40401);
}

#[test]
fn delete_version_permanent_after_soft_removes_version() {
    let r = registry();
    let s = scope("delete_version_permanent_after_soft_removes_version");
    let (subject, _) = two_versions(&s);
    r.delete(&format!("/subjects/{subject}/versions/1")).ok();
    let resp = r.delete(&format!("/subjects/{subject}/versions/1?permanent=true"));
    assert_eq!(resp.ok(), &json!(1), "\n{resp}");
    assert_eq!(r.versions(&subject, true), vec![2]);
    r.get(&format!("/subjects/{subject}/versions/1?deleted=true"))
        .expect_error(404, 40402);
}

#[test]
fn delete_permanent_of_only_use_removes_schema_id() {
    let r = registry();
    let s = scope("delete_permanent_of_only_use_removes_schema_id");
    let subject = s.subject("a");
    let id = r.register(&subject, &avro_body(&s.simple("A")));
    r.delete(&format!("/subjects/{subject}")).ok();
    r.get(&format!("/schemas/ids/{id}")).ok();
    r.delete(&format!("/subjects/{subject}?permanent=true"))
        .ok();
    if karapace() {
        // Karapace never prunes its id → schema map: the id still answers, no version
        // holds it, and the same schema registered again gets it back
        let resp = r.get(&format!("/schemas/ids/{id}"));
        assert_same_json_schema(resp.ok(), &s.simple("A"));
        let resp = r.get(&format!("/schemas/ids/{id}/versions?deleted=true"));
        assert_eq!(resp.ok(), &json!([]), "\n{resp}");
        assert_eq!(r.register(&s.subject("b"), &avro_body(&s.simple("A"))), id);
        return;
    }
    r.get(&format!("/schemas/ids/{id}"))
        .expect_error(404, 40403);
}

#[test]
fn delete_unknown_subject_40401() {
    let r = registry();
    let s = scope("delete_unknown_subject_40401");
    let missing = s.subject("missing");
    r.delete(&format!("/subjects/{missing}"))
        .expect_error(404, 40401);
    r.delete(&format!("/subjects/{missing}/versions/1"))
        .expect_error(404, 40401);
}

#[test]
fn delete_unknown_version_40402() {
    let r = registry();
    let s = scope("delete_unknown_version_40402");
    let (subject, _) = two_versions(&s);
    r.delete(&format!("/subjects/{subject}/versions/3"))
        .expect_error(404, 40402);
}

#[test]
fn delete_invalid_version_42202() {
    let r = registry();
    let s = scope("delete_invalid_version_42202");
    let (subject, _) = two_versions(&s);
    for bad in ["abc", "0"] {
        r.delete(&format!("/subjects/{subject}/versions/{bad}"))
            .expect_error(422, 42202);
    }
    assert_eq!(r.versions(&subject, false), vec![1, 2]);
}
