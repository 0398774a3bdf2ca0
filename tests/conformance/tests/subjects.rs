//! Reading subjects and versions: `GET /subjects[?deleted=true]`,
//! `GET /subjects/{s}/versions[?deleted=true]`, `GET /subjects/{s}/versions/{v}` with a
//! number, `latest` or `-1`, `GET /subjects/{s}/versions/{v}/schema`, and the lookup
//! `POST /subjects/{s}`, with their 40401 / 40402 / 40403 / 42202 errors
//! (registry-semantics.md "Reading state"; OpenAPI `/subjects...`).

use sr_conformance::*;

/// Registers `names.len()` distinct simple records under `subject` (compatibility NONE so
/// unrelated records may follow each other) and returns their IDs.
fn register_versions(s: &Scope, subject: &str, names: &[&str]) -> Vec<i64> {
    let r = registry();
    r.set_compatibility(subject, "NONE");
    names
        .iter()
        .map(|name| r.register(subject, &avro_body(&s.simple(name))))
        .collect()
}

#[test]
fn subjects_list_includes_registered_subject() {
    let r = registry();
    let s = scope("subjects_list_includes_registered_subject");
    let subject = s.subject("a");
    assert!(!r.subjects(false).contains(&subject));
    r.register(&subject, &avro_body(&s.simple("A")));
    assert!(r.subjects(false).contains(&subject));
}

#[test]
fn subjects_list_deleted_true_includes_soft_deleted() {
    let r = registry();
    let s = scope("subjects_list_deleted_true_includes_soft_deleted");
    let subject = s.subject("a");
    r.register(&subject, &avro_body(&s.simple("A")));
    let resp = r.delete(&format!("/subjects/{subject}"));
    assert_eq!(resp.ok(), &json!([1]), "\n{resp}");
    assert!(
        !r.subjects(false).contains(&subject),
        "soft-deleted subject still listed"
    );
    assert!(
        r.subjects(true).contains(&subject),
        "?deleted=true must list soft-deleted subjects"
    );
}

#[test]
fn versions_list_is_ascending() {
    let r = registry();
    let s = scope("versions_list_is_ascending");
    let subject = s.subject("a");
    register_versions(&s, &subject, &["A", "B", "C"]);
    assert_eq!(r.versions(&subject, false), vec![1, 2, 3]);
}

#[test]
fn versions_list_unknown_subject_40401() {
    let s = scope("versions_list_unknown_subject_40401");
    registry()
        .get(&format!("/subjects/{}/versions", s.subject("missing")))
        .expect_error(404, 40401);
}

#[test]
fn versions_list_deleted_true_includes_soft_deleted_version() {
    let r = registry();
    let s = scope("versions_list_deleted_true_includes_soft_deleted_version");
    let subject = s.subject("a");
    register_versions(&s, &subject, &["A", "B"]);
    let resp = r.delete(&format!("/subjects/{subject}/versions/1"));
    assert_eq!(resp.ok(), &json!(1), "\n{resp}");
    assert_eq!(r.versions(&subject, false), vec![2]);
    assert_eq!(r.versions(&subject, true), vec![1, 2]);
}

#[test]
fn version_get_by_number_returns_full_record() {
    let r = registry();
    let s = scope("version_get_by_number_returns_full_record");
    let subject = s.subject("a");
    let ids = register_versions(&s, &subject, &["A", "B"]);
    for (index, name) in ["A", "B"].iter().enumerate() {
        let version = index as i64 + 1;
        let v = r.version(&subject, &version.to_string());
        assert_eq!(v["subject"], json!(subject), "{v}");
        assert_eq!(v["version"], json!(version), "{v}");
        assert_eq!(v["id"], json!(ids[index]), "{v}");
        assert_same_json_schema(&v, &s.simple(name));
        assert_avro_type(&v);
        assert_eq!(references_of(&v), json!([]), "{v}");
    }
}

#[test]
fn version_get_latest_and_minus_one_mean_highest_live_version() {
    let r = registry();
    let s = scope("version_get_latest_and_minus_one_mean_highest_live_version");
    let subject = s.subject("a");
    let ids = register_versions(&s, &subject, &["A", "B", "C"]);
    for alias in ["latest", "-1"] {
        let v = r.version(&subject, alias);
        assert_eq!(v["version"], json!(3), "{alias}: {v}");
        assert_eq!(v["id"], json!(ids[2]), "{alias}: {v}");
        assert_same_json_schema(&v, &s.simple("C"));
    }
    // Soft-deleting the highest version makes the previous one `latest`.
    r.delete(&format!("/subjects/{subject}/versions/3")).ok();
    let v = r.version(&subject, "latest");
    assert_eq!(v["version"], json!(2), "{v}");
    assert_eq!(v["id"], json!(ids[1]), "{v}");
}

#[test]
fn version_get_unknown_version_40402() {
    let r = registry();
    let s = scope("version_get_unknown_version_40402");
    let subject = s.subject("a");
    register_versions(&s, &subject, &["A"]);
    r.get(&format!("/subjects/{subject}/versions/2"))
        .expect_error(404, 40402);
}

#[test]
fn version_get_unknown_subject_40401() {
    let r = registry();
    let s = scope("version_get_unknown_subject_40401");
    for version in ["1", "latest"] {
        r.get(&format!(
            "/subjects/{}/versions/{version}",
            s.subject("missing")
        ))
        .expect_error(404, 40401);
    }
}

#[test]
fn version_get_invalid_version_42202() {
    let r = registry();
    let s = scope("version_get_invalid_version_42202");
    let subject = s.subject("a");
    register_versions(&s, &subject, &["A"]);
    // Valid versions are 1..2^31-1, `latest` and -1 (OpenAPI, `version` path parameter).
    for bad in ["abc", "0", "-2"] {
        r.get(&format!("/subjects/{subject}/versions/{bad}"))
            .expect_error(422, 42202);
    }
}

#[test]
fn version_get_soft_deleted_version_only_with_deleted_true() {
    let r = registry();
    let s = scope("version_get_soft_deleted_version_only_with_deleted_true");
    let subject = s.subject("a");
    let ids = register_versions(&s, &subject, &["A", "B"]);
    r.delete(&format!("/subjects/{subject}/versions/1")).ok();
    r.get(&format!("/subjects/{subject}/versions/1"))
        .expect_error(404, 40402);
    let v = r.version(&subject, "1?deleted=true");
    assert_eq!(v["version"], json!(1), "{v}");
    assert_eq!(v["id"], json!(ids[0]), "{v}");
    assert_same_json_schema(&v, &s.simple("A"));
}

#[test]
fn version_schema_only_returns_raw_schema() {
    let r = registry();
    let s = scope("version_schema_only_returns_raw_schema");
    let subject = s.subject("a");
    register_versions(&s, &subject, &["A", "B"]);
    for (version, name) in [("1", "A"), ("latest", "B")] {
        let resp = r.get(&format!("/subjects/{subject}/versions/{version}/schema"));
        // The body is the schema itself, not an envelope.
        assert_eq!(resp.ok(), &s.simple(name), "\n{resp}");
    }
}

#[test]
fn version_schema_only_unknown_version_40402() {
    let r = registry();
    let s = scope("version_schema_only_unknown_version_40402");
    let subject = s.subject("a");
    register_versions(&s, &subject, &["A"]);
    r.get(&format!("/subjects/{subject}/versions/5/schema"))
        .expect_error(404, 40402);
    r.get(&format!(
        "/subjects/{}/versions/1/schema",
        s.subject("missing")
    ))
    .expect_error(404, 40401);
}

#[test]
fn lookup_registered_schema_returns_subject_version_id() {
    let r = registry();
    let s = scope("lookup_registered_schema_returns_subject_version_id");
    let subject = s.subject("a");
    let ids = register_versions(&s, &subject, &["A", "B"]);
    let resp = r.post(&format!("/subjects/{subject}"), &avro_body(&s.simple("A")));
    let found = resp.ok();
    assert_eq!(found["subject"], json!(subject), "\n{resp}");
    assert_eq!(found["version"], json!(1), "\n{resp}");
    assert_eq!(found["id"], json!(ids[0]), "\n{resp}");
    assert_same_json_schema(found, &s.simple("A"));
    // Lookup is read-only: no new version appeared.
    assert_eq!(r.versions(&subject, false), vec![1, 2]);
}

#[test]
fn lookup_matches_by_meaning_not_text() {
    let r = registry();
    let s = scope("lookup_matches_by_meaning_not_text");
    let subject = s.subject("a");
    let id = r.register(&subject, &avro_body(&s.simple("A")));
    // Same schema, pretty-printed: the registry compares parsed forms.
    let pretty = serde_json::to_string_pretty(&s.simple("A")).unwrap();
    let resp = r.post(
        &format!("/subjects/{subject}"),
        &json!({ "schema": pretty }),
    );
    assert_eq!(resp.ok()["id"], json!(id), "\n{resp}");
    assert_eq!(resp.body["version"], json!(1), "\n{resp}");
}

#[test]
fn lookup_unregistered_schema_40403() {
    let r = registry();
    let s = scope("lookup_unregistered_schema_40403");
    let subject = s.subject("a");
    register_versions(&s, &subject, &["A"]);
    r.post(
        &format!("/subjects/{subject}"),
        &avro_body(&s.simple("Other")),
    )
    .expect_error(404, 40403);
}

#[test]
fn lookup_unknown_subject_40401() {
    let r = registry();
    let s = scope("lookup_unknown_subject_40401");
    r.post(
        &format!("/subjects/{}", s.subject("missing")),
        &avro_body(&s.simple("A")),
    )
    .expect_error(404, 40401);
}

#[test]
fn lookup_soft_deleted_version_only_with_deleted_true() {
    let r = registry();
    let s = scope("lookup_soft_deleted_version_only_with_deleted_true");
    let subject = s.subject("a");
    let ids = register_versions(&s, &subject, &["A", "B"]);
    r.delete(&format!("/subjects/{subject}/versions/1")).ok();
    r.post(&format!("/subjects/{subject}"), &avro_body(&s.simple("A")))
        .expect_error(404, 40403);
    let resp = r.post(
        &format!("/subjects/{subject}?deleted=true"),
        &avro_body(&s.simple("A")),
    );
    assert_eq!(resp.ok()["version"], json!(1), "\n{resp}");
    assert_eq!(resp.body["id"], json!(ids[0]), "\n{resp}");
}
