//! `GET /schemas` listing: `subjectPrefix` filtering (always to this test's own prefix,
//! the registry may hold other data), `deleted=true`, and `offset`/`limit` paging
//! (registry-semantics.md "Reading state": "GET /schemas?deleted=true&offset=&limit=";
//! OpenAPI `/schemas`).
//!
//! Karapace 3.16 ([`karapace`]) ignores `subjectPrefix`, `offset` and `limit` (every
//! version of every subject comes back, so the tests look at their own subjects only),
//! inverts `deleted` (`find_schemas` keeps soft-deleted versions without it and drops
//! them with it), and names `schemaType` on every entry.

use sr_conformance::*;

/// The entries of `resp` whose subject starts with `prefix`, sorted.
fn own(resp: &Resp, prefix: &str) -> Vec<(String, i64, i64)> {
    let mut list: Vec<(String, i64, i64)> = entries(resp)
        .into_iter()
        .filter(|(subject, _, _)| subject.starts_with(prefix))
        .collect();
    list.sort();
    list
}

/// `(subject, version, id)` of every entry of a `/schemas` response, in response order.
fn entries(resp: &Resp) -> Vec<(String, i64, i64)> {
    resp.ok()
        .as_array()
        .unwrap_or_else(|| panic!("expected an array\n{resp}"))
        .iter()
        .map(|e| {
            let subject = e["subject"].as_str();
            let version = e["version"].as_i64();
            let id = e["id"].as_i64();
            assert!(
                e["schema"].is_string(),
                "every entry carries its schema\n{resp}"
            );
            match (subject, version, id) {
                (Some(s), Some(v), Some(i)) => (s.to_string(), v, i),
                _ => panic!("entry lacks subject/version/id: {e}\n{resp}"),
            }
        })
        .collect()
}

/// Three live versions over two subjects under the test's prefix, sorted.
fn populate(s: &Scope) -> Vec<(String, i64, i64)> {
    let r = registry();
    let (one, two) = (s.subject("one"), s.subject("two"));
    r.set_compatibility(&one, "NONE");
    let a = r.register(&one, &avro_body(&s.simple("A")));
    let b = r.register(&one, &avro_body(&s.simple("B")));
    let c = r.register(&two, &avro_body(&s.simple("C")));
    vec![(one.clone(), 1, a), (one, 2, b), (two, 1, c)]
}

#[test]
fn schemas_list_subject_prefix_returns_only_matching_versions() {
    let r = registry();
    let s = scope("schemas_list_subject_prefix_returns_only_matching_versions");
    let expected = populate(&s);
    if karapace() {
        // every prefix gives the whole listing
        for name in ["", "one", "none"] {
            let resp = r.get(&format!("/schemas?subjectPrefix={}-{name}", s.prefix));
            assert_eq!(own(&resp, &s.prefix), expected, "\n{resp}");
        }
        return;
    }
    let resp = r.get(&format!("/schemas?subjectPrefix={}-", s.prefix));
    assert_eq!(sorted(&entries(&resp)), expected, "\n{resp}");
    let one_only = r.get(&format!("/schemas?subjectPrefix={}", s.subject("one")));
    assert_eq!(
        sorted(&entries(&one_only)),
        expected[..2].to_vec(),
        "\n{one_only}"
    );
    let resp = r.get(&format!("/schemas?subjectPrefix={}", s.subject("none")));
    assert_eq!(resp.ok(), &json!([]), "\n{resp}");
}

#[test]
fn schemas_list_entries_carry_the_schema_text() {
    let r = registry();
    let s = scope("schemas_list_entries_carry_the_schema_text");
    populate(&s);
    let resp = r.get(&format!("/schemas?subjectPrefix={}", s.subject("two")));
    let mut list = resp.ok().as_array().cloned().unwrap_or_default();
    if karapace() {
        list.retain(|e| e["subject"] == json!(s.subject("two")));
        assert_eq!(list.len(), 1, "\n{resp}");
        assert_eq!(list[0]["schemaType"], json!("AVRO"), "\n{resp}");
    }
    assert_eq!(list.len(), 1, "\n{resp}");
    assert_same_json_schema(&list[0], &s.simple("C"));
    assert_avro_type(&list[0]);
}

#[test]
fn schemas_list_deleted_true_includes_soft_deleted() {
    let r = registry();
    let s = scope("schemas_list_deleted_true_includes_soft_deleted");
    let expected = populate(&s);
    r.delete(&format!("/subjects/{}/versions/1", s.subject("one")))
        .ok();
    let live = r.get(&format!("/schemas?subjectPrefix={}-", s.prefix));
    let all = r.get(&format!(
        "/schemas?subjectPrefix={}-&deleted=true",
        s.prefix
    ));
    if karapace() {
        // the other way round
        assert_eq!(own(&live, &s.prefix), expected, "\n{live}");
        assert_eq!(own(&all, &s.prefix), expected[1..].to_vec(), "\n{all}");
        return;
    }
    assert_eq!(sorted(&entries(&live)), expected[1..].to_vec(), "\n{live}");
    assert_eq!(sorted(&entries(&all)), expected, "\n{all}");
}

#[test]
fn schemas_list_offset_and_limit_page_through() {
    let r = registry();
    let s = scope("schemas_list_offset_and_limit_page_through");
    let expected = populate(&s);
    let base = format!("/schemas?subjectPrefix={}-", s.prefix);
    if karapace() {
        // every page is the whole listing
        for page in [
            "&offset=0&limit=2",
            "&offset=2&limit=2",
            "&offset=4&limit=2",
            "&limit=-1",
        ] {
            let resp = r.get(&format!("{base}{page}"));
            assert_eq!(own(&resp, &s.prefix), expected, "\n{resp}");
        }
        return;
    }
    let full = entries(&r.get(&base));
    assert_eq!(sorted(&full), expected);
    let first = r.get(&format!("{base}&offset=0&limit=2"));
    let second = r.get(&format!("{base}&offset=2&limit=2"));
    let third = r.get(&format!("{base}&offset=4&limit=2"));
    // Pages are consecutive slices of the full listing.
    assert_eq!(entries(&first), full[..2].to_vec(), "\n{first}");
    assert_eq!(entries(&second), full[2..].to_vec(), "\n{second}");
    assert_eq!(third.ok(), &json!([]), "\n{third}");
    // A negative limit is ignored (OpenAPI: "Ignored if negative").
    let unlimited = r.get(&format!("{base}&limit=-1"));
    assert_eq!(entries(&unlimited), full, "\n{unlimited}");
}
