//! Schema IDs and version numbering in the default context: IDs are per schema (shared
//! across subjects), re-registering is idempotent, new schemas get higher IDs, new
//! versions are (highest incl. soft-deleted) + 1, and `GET /schemas/ids/{id}`,
//! `/schemas/ids/{id}/versions`, `/schemas/ids/{id}/subjects` (registry-semantics.md
//! "IDs and versions"; OpenAPI `/schemas/ids/...`). No absolute IDs are asserted here:
//! the registry may be shared and non-empty.
//!
//! Karapace 3.16 ([`karapace`]): no `/schemas/ids/{id}/subjects` (404 with `error_code`
//! 404), and `/schemas/ids/{id}/versions` of an unknown id is 200 `[]`.

use sr_conformance::*;

#[test]
fn ids_same_schema_under_two_subjects_shares_id() {
    let r = registry();
    let s = scope("ids_same_schema_under_two_subjects_shares_id");
    let first = r.register(&s.subject("one"), &avro_body(&s.simple("A")));
    let second = r.register(&s.subject("two"), &avro_body(&s.simple("A")));
    assert_eq!(first, second, "IDs are per schema, not per subject");
    assert_eq!(r.version(&s.subject("two"), "1")["id"], json!(first));
}

#[test]
fn ids_reregistering_returns_same_id_and_no_new_version() {
    let r = registry();
    let s = scope("ids_reregistering_returns_same_id_and_no_new_version");
    let subject = s.subject("a");
    r.set_compatibility(&subject, "NONE");
    let a = r.register(&subject, &avro_body(&s.simple("A")));
    let b = r.register(&subject, &avro_body(&s.simple("B")));
    // Re-registering an older version's schema returns that version's ID, creates nothing.
    assert_eq!(r.register(&subject, &avro_body(&s.simple("A"))), a);
    assert_eq!(r.register(&subject, &avro_body(&s.simple("B"))), b);
    assert_eq!(r.versions(&subject, false), vec![1, 2]);
    assert_eq!(r.version(&subject, "latest")["id"], json!(b));
}

#[test]
fn ids_new_schema_gets_a_higher_id() {
    let r = registry();
    let s = scope("ids_new_schema_gets_a_higher_id");
    let a = r.register(&s.subject("a"), &avro_body(&s.simple("A")));
    let b = r.register(&s.subject("b"), &avro_body(&s.simple("B")));
    let c = r.register(&s.subject("a2"), &avro_body(&s.simple("C")));
    assert!(a < b && b < c, "IDs must grow: {a}, {b}, {c}");
}

#[test]
fn ids_schema_by_id_returns_schema() {
    let r = registry();
    let s = scope("ids_schema_by_id_returns_schema");
    let id = r.register(&s.subject("a"), &avro_body(&s.simple("A")));
    let resp = r.get(&format!("/schemas/ids/{id}"));
    assert_same_json_schema(resp.ok(), &s.simple("A"));
    assert_avro_type(&resp.body);
    assert_eq!(references_of(&resp.body), json!([]), "\n{resp}");
}

#[test]
fn ids_schema_by_unknown_id_40403() {
    registry()
        .get("/schemas/ids/2147483000")
        .expect_error(404, 40403);
}

#[test]
fn ids_versions_lists_every_subject_version() {
    let r = registry();
    let s = scope("ids_versions_lists_every_subject_version");
    let (one, two) = (s.subject("one"), s.subject("two"));
    let id = r.register(&one, &avro_body(&s.simple("Shared")));
    r.set_compatibility(&two, "NONE");
    r.register(&two, &avro_body(&s.simple("Other")));
    assert_eq!(r.register(&two, &avro_body(&s.simple("Shared"))), id);
    let resp = r.get(&format!("/schemas/ids/{id}/versions"));
    let mut pairs: Vec<(String, i64)> = resp
        .ok()
        .as_array()
        .unwrap_or_else(|| panic!("expected an array\n{resp}"))
        .iter()
        .map(|p| {
            (
                p["subject"].as_str().unwrap_or_default().to_string(),
                p["version"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    pairs.sort();
    // The same ID holds version 1 of `one` and version 2 of `two`.
    assert_eq!(pairs, vec![(one, 1), (two, 2)], "\n{resp}");
}

#[test]
fn ids_subjects_lists_every_subject() {
    let r = registry();
    let s = scope("ids_subjects_lists_every_subject");
    let id = r.register(&s.subject("one"), &avro_body(&s.simple("Shared")));
    r.register(&s.subject("two"), &avro_body(&s.simple("Shared")));
    let resp = r.get(&format!("/schemas/ids/{id}/subjects"));
    if karapace() {
        // no such route: `/schemas/ids/<schema_id:path>` takes `{id}/subjects` as the id
        resp.expect_error(404, 404);
        return;
    }
    let subjects = string_list(resp.ok(), &resp);
    assert_eq!(
        sorted(&subjects),
        vec![s.subject("one"), s.subject("two")],
        "\n{resp}"
    );
}

#[test]
fn ids_versions_of_unknown_id_40403() {
    let resp = registry().get("/schemas/ids/2147483000/versions");
    if karapace() {
        // Karapace lists what holds the id: nothing
        assert_eq!(resp.ok(), &json!([]), "\n{resp}");
        return;
    }
    resp.expect_error(404, 40403);
}

#[test]
fn ids_versions_hide_soft_deleted_unless_deleted_true() {
    let r = registry();
    let s = scope("ids_versions_hide_soft_deleted_unless_deleted_true");
    let (one, two) = (s.subject("one"), s.subject("two"));
    let id = r.register(&one, &avro_body(&s.simple("Shared")));
    r.register(&two, &avro_body(&s.simple("Shared")));
    r.delete(&format!("/subjects/{two}/versions/1")).ok();
    let live = r.get(&format!("/schemas/ids/{id}/versions"));
    assert_eq!(
        live.ok(),
        &json!([{ "subject": one, "version": 1 }]),
        "\n{live}"
    );
    let all = r.get(&format!("/schemas/ids/{id}/versions?deleted=true"));
    let mut subjects: Vec<&str> = all
        .ok()
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["subject"].as_str()).collect())
        .unwrap_or_default();
    subjects.sort();
    assert_eq!(subjects, vec![one.as_str(), two.as_str()], "\n{all}");
}

#[test]
fn ids_schema_by_id_survives_soft_delete() {
    let r = registry();
    let s = scope("ids_schema_by_id_survives_soft_delete");
    let subject = s.subject("a");
    let id = r.register(&subject, &avro_body(&s.simple("A")));
    r.delete(&format!("/subjects/{subject}")).ok();
    // A soft delete keeps the ID decodable (OpenAPI, DELETE .../versions/{version}).
    let resp = r.get(&format!("/schemas/ids/{id}"));
    assert_same_json_schema(resp.ok(), &s.simple("A"));
}

#[test]
fn ids_new_version_after_soft_delete_is_highest_plus_one() {
    let r = registry();
    let s = scope("ids_new_version_after_soft_delete_is_highest_plus_one");
    let subject = s.subject("a");
    r.set_compatibility(&subject, "NONE");
    r.register(&subject, &avro_body(&s.simple("A")));
    r.register(&subject, &avro_body(&s.simple("B")));
    r.delete(&format!("/subjects/{subject}/versions/2")).ok();
    let c = r.register(&subject, &avro_body(&s.simple("C")));
    let latest = r.version(&subject, "latest");
    assert_eq!(
        latest["version"],
        json!(3),
        "soft-deleted 2 still counts\n{latest}"
    );
    assert_eq!(latest["id"], json!(c), "{latest}");
    assert_eq!(r.versions(&subject, false), vec![1, 3]);
    assert_eq!(r.versions(&subject, true), vec![1, 2, 3]);
}

#[test]
fn ids_new_version_after_whole_subject_soft_delete_continues_numbering() {
    let r = registry();
    let s = scope("ids_new_version_after_whole_subject_soft_delete_continues_numbering");
    let subject = s.subject("a");
    r.set_compatibility(&subject, "NONE");
    r.register(&subject, &avro_body(&s.simple("A")));
    r.register(&subject, &avro_body(&s.simple("B")));
    let resp = r.delete(&format!("/subjects/{subject}"));
    assert_eq!(resp.ok(), &json!([1, 2]), "\n{resp}");
    r.register(&subject, &avro_body(&s.simple("C")));
    assert_eq!(r.versions(&subject, false), vec![3]);
}

#[test]
fn ids_reregistering_soft_deleted_schema_keeps_id_in_new_version() {
    let r = registry();
    let s = scope("ids_reregistering_soft_deleted_schema_keeps_id_in_new_version");
    let subject = s.subject("a");
    r.set_compatibility(&subject, "NONE");
    r.register(&subject, &avro_body(&s.simple("A")));
    let b = r.register(&subject, &avro_body(&s.simple("B")));
    r.delete(&format!("/subjects/{subject}/versions/2")).ok();
    // The schema still exists (same ID), but the subject gets a fresh version for it.
    assert_eq!(r.register(&subject, &avro_body(&s.simple("B"))), b);
    let latest = r.version(&subject, "latest");
    assert_eq!(latest["version"], json!(3), "{latest}");
    assert_eq!(latest["id"], json!(b), "{latest}");
    assert_eq!(r.versions(&subject, false), vec![1, 3]);
}
