//! IMPORT mode, the restore path: switching is refused with 42205 while live subjects
//! exist in scope unless `?force=true`; in IMPORT `id` and `version` are taken as given
//! (gaps allowed) without compatibility checks; an `id` holding other content is 42205;
//! the same content may be imported under another id; a body without `id` in IMPORT, or
//! with `id` outside IMPORT, is 42205; after import, new IDs and versions continue from
//! the highest (registry-semantics.md "Writing state", "IDs and versions"; Confluent
//! `KafkaSchemaRegistry.setMode`, `checkRegisterMode`, `checkIfSchemaWithIdExist`).
//!
//! Every test is named `import_mode_*` and works in a fresh context, so explicit IDs never
//! collide with the (shared) default context; skip them on registries without IMPORT mode
//! or without contexts.
//!
//! Karapace 3.16 ([`karapace`]) has neither: `PUT /mode[/{s}]` is aiohttp's 405 (with or
//! without `force`), a body with `id` or `version` is 422 with `error_code` 422
//! `Unrecognized field: id`, and `:.ctx:name` is a plain subject name. Each test checks
//! that for its own subjects and stops.

use sr_conformance::*;

/// Karapace 3.16: `subject` cannot be put in IMPORT, and an import into it is refused
/// as an unknown field; when `exists` is false nothing was created.
#[track_caller]
fn expect_no_import(subject: &str, schema: &Value, exists: bool) {
    let r = registry();
    for query in ["", "?force=true"] {
        r.put(
            &format!("/mode/{subject}{query}"),
            &json!({ "mode": "IMPORT" }),
        )
        .expect_no_route(405);
    }
    let resp = import(subject, schema, 5, 3);
    assert_eq!(
        (resp.status, &resp.body),
        (
            422,
            &json!({ "error_code": 422, "message": "Unrecognized field: id" })
        ),
        "\n{resp}"
    );
    let mode = r.get(&format!("/mode/{subject}"));
    if exists {
        assert_eq!(mode.ok(), &json!({ "mode": "READWRITE" }), "\n{mode}");
    } else {
        mode.expect_error(404, 40401);
        r.get(&format!("/subjects/{subject}/versions"))
            .expect_error(404, 40401);
    }
}

/// A fresh context and a subject in it.
fn subject_in_fresh_context(name: &str) -> (String, String) {
    let context = fresh_context();
    let subject = in_context(&context, name);
    (context, subject)
}

fn set_mode(subject: &str, mode: &str) {
    let resp = registry().put(&format!("/mode/{subject}"), &json!({ "mode": mode }));
    assert_eq!(resp.ok()["mode"], json!(mode), "\n{resp}");
}

fn import(subject: &str, schema: &Value, id: i64, version: i64) -> Resp {
    registry().post(
        &format!("/subjects/{subject}/versions"),
        &json!({ "schema": schema.to_string(), "id": id, "version": version }),
    )
}

#[test]
fn import_mode_explicit_ids_and_versions_with_gaps() {
    let r = registry();
    let s = scope("import_mode_explicit_ids_and_versions_with_gaps");
    let (_, subject) = subject_in_fresh_context("a");
    if karapace() {
        return expect_no_import(&subject, &s.simple("A"), false);
    }
    set_mode(&subject, "IMPORT");
    let resp = r.get(&format!("/mode/{subject}"));
    assert_eq!(resp.ok(), &json!({ "mode": "IMPORT" }), "\n{resp}");
    let first = import(&subject, &s.simple("A"), 5, 3);
    assert_eq!(first.ok()["id"], json!(5), "\n{first}");
    let second = import(&subject, &s.simple("B"), 9, 7);
    assert_eq!(second.ok()["id"], json!(9), "\n{second}");
    assert_eq!(r.versions(&subject, false), vec![3, 7]);
    let v = r.version(&subject, "3");
    assert_eq!(v["id"], json!(5), "{v}");
    assert_eq!(v["subject"], json!(subject), "{v}");
    assert_same_json_schema(&v, &s.simple("A"));
    let v = r.version(&subject, "latest");
    assert_eq!(
        (v["version"].clone(), v["id"].clone()),
        (json!(7), json!(9)),
        "{v}"
    );
    let by_id = r.get(&format!("/schemas/ids/5?subject={subject}"));
    assert_same_json_schema(by_id.ok(), &s.simple("A"));
}

#[test]
fn import_mode_next_id_and_version_continue_after_highest() {
    let r = registry();
    let s = scope("import_mode_next_id_and_version_continue_after_highest");
    let (context, subject) = subject_in_fresh_context("a");
    if karapace() {
        return expect_no_import(&subject, &s.simple("A"), false);
    }
    r.set_compatibility(&subject, "NONE");
    set_mode(&subject, "IMPORT");
    import(&subject, &s.simple("A"), 5, 3).ok();
    import(&subject, &s.simple("B"), 9, 7).ok();
    set_mode(&subject, "READWRITE");
    // (highest ID in the context, imported ones included) + 1; (highest version) + 1.
    assert_eq!(r.register(&subject, &avro_body(&s.simple("C"))), 10);
    assert_eq!(r.version(&subject, "latest")["version"], json!(8));
    let other = in_context(&context, "b");
    assert_eq!(r.register(&other, &avro_body(&s.simple("D"))), 11);
    r.delete(&format!("/mode/{subject}")).ok();
}

#[test]
fn import_mode_skips_compatibility_checks() {
    let r = registry();
    let s = scope("import_mode_skips_compatibility_checks");
    let (_, subject) = subject_in_fresh_context("a");
    if karapace() {
        return expect_no_import(&subject, &s.simple("A"), false);
    }
    r.set_compatibility(&subject, "FULL_TRANSITIVE");
    set_mode(&subject, "IMPORT");
    import(
        &subject,
        &s.record("Rec", json!([{ "name": "x", "type": "string" }])),
        1,
        1,
    )
    .ok();
    // Changing the only field's type breaks every level but NONE.
    let resp = import(
        &subject,
        &s.record("Rec", json!([{ "name": "x", "type": "int" }])),
        2,
        2,
    );
    assert_eq!(resp.ok()["id"], json!(2), "\n{resp}");
    assert_eq!(r.versions(&subject, false), vec![1, 2]);
}

#[test]
fn import_mode_id_holding_other_content_42205() {
    let r = registry();
    let s = scope("import_mode_id_holding_other_content_42205");
    let (context, subject) = subject_in_fresh_context("a");
    if karapace() {
        return expect_no_import(&subject, &s.simple("A"), false);
    }
    let other = in_context(&context, "b");
    set_mode(&subject, "IMPORT");
    set_mode(&other, "IMPORT");
    import(&subject, &s.simple("A"), 3, 1).ok();
    import(&subject, &s.simple("B"), 3, 2).expect_error(422, 42205);
    import(&other, &s.simple("B"), 3, 1).expect_error(422, 42205);
    assert_eq!(r.versions(&subject, false), vec![1]);
    let by_id = r.get(&format!("/schemas/ids/3?subject={subject}"));
    assert_same_json_schema(by_id.ok(), &s.simple("A"));
}

#[test]
fn import_mode_same_content_under_another_id_allowed() {
    let r = registry();
    let s = scope("import_mode_same_content_under_another_id_allowed");
    let (context, subject) = subject_in_fresh_context("a");
    if karapace() {
        return expect_no_import(&subject, &s.simple("A"), false);
    }
    let other = in_context(&context, "b");
    set_mode(&subject, "IMPORT");
    set_mode(&other, "IMPORT");
    assert_eq!(import(&subject, &s.simple("A"), 3, 1).ok()["id"], json!(3));
    let resp = import(&other, &s.simple("A"), 4, 1);
    assert_eq!(resp.ok()["id"], json!(4), "\n{resp}");
    assert_eq!(r.version(&subject, "1")["id"], json!(3));
    assert_eq!(r.version(&other, "1")["id"], json!(4));
    // `?subject=` names a subject holding the ID: it selects the context to look in.
    for (id, holder) in [(3, &subject), (4, &other)] {
        let by_id = r.get(&format!("/schemas/ids/{id}?subject={holder}"));
        assert_same_json_schema(by_id.ok(), &s.simple("A"));
    }
}

#[test]
fn import_mode_registration_without_id_42205() {
    let r = registry();
    let s = scope("import_mode_registration_without_id_42205");
    let (_, subject) = subject_in_fresh_context("a");
    if karapace() {
        // not in IMPORT: the registration without `id` is an ordinary one
        expect_no_import(&subject, &s.simple("A"), false);
        r.register(&subject, &avro_body(&s.simple("A")));
        assert_eq!(r.versions(&subject, false), vec![1]);
        return;
    }
    set_mode(&subject, "IMPORT");
    r.post(
        &format!("/subjects/{subject}/versions"),
        &avro_body(&s.simple("A")),
    )
    .expect_error(422, 42205);
    r.get(&format!("/subjects/{subject}/versions"))
        .expect_error(404, 40401);
}

#[test]
fn import_mode_id_outside_import_42205() {
    let r = registry();
    let s = scope("import_mode_id_outside_import_42205");
    let (_, subject) = subject_in_fresh_context("a");
    if karapace() {
        return expect_no_import(&subject, &s.simple("A"), false);
    }
    let resp = import(&subject, &s.simple("A"), 7, 1);
    resp.expect_error(422, 42205);
    assert!(
        resp.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("import mode"),
        "message should say the subject is not in import mode\n{resp}"
    );
    r.get(&format!("/subjects/{subject}/versions"))
        .expect_error(404, 40401);
}

#[test]
fn import_mode_subject_switch_refused_with_live_versions_unless_forced() {
    let r = registry();
    let s = scope("import_mode_subject_switch_refused_with_live_versions_unless_forced");
    let (_, subject) = subject_in_fresh_context("a");
    r.register(&subject, &avro_body(&s.simple("A")));
    if karapace() {
        expect_no_import(&subject, &s.simple("B"), true);
        assert_eq!(r.versions(&subject, false), vec![1]);
        return;
    }
    r.put(&format!("/mode/{subject}"), &json!({ "mode": "IMPORT" }))
        .expect_error(422, 42205);
    r.get(&format!("/mode/{subject}")).expect_error(404, 40409);
    let resp = r.put(
        &format!("/mode/{subject}?force=true"),
        &json!({ "mode": "IMPORT" }),
    );
    assert_eq!(resp.ok()["mode"], json!("IMPORT"), "\n{resp}");
    let resp = r.get(&format!("/mode/{subject}"));
    assert_eq!(resp.ok()["mode"], json!("IMPORT"), "\n{resp}");
    // Forcing keeps the existing versions.
    assert_eq!(r.versions(&subject, false), vec![1]);
    r.delete(&format!("/mode/{subject}")).ok();
}

#[test]
fn import_mode_subject_switch_allowed_when_only_soft_deleted() {
    let r = registry();
    let s = scope("import_mode_subject_switch_allowed_when_only_soft_deleted");
    let (_, subject) = subject_in_fresh_context("a");
    r.register(&subject, &avro_body(&s.simple("A")));
    r.delete(&format!("/subjects/{subject}")).ok();
    if karapace() {
        // the soft-deleted subject is still known: its mode is the global one
        return expect_no_import(&subject, &s.simple("B"), true);
    }
    // Only *live* subjects block the switch.
    set_mode(&subject, "IMPORT");
    r.delete(&format!("/mode/{subject}")).ok();
}

#[test]
fn import_mode_context_switch_refused_with_live_subjects_unless_forced() {
    let r = registry();
    let s = scope("import_mode_context_switch_refused_with_live_subjects_unless_forced");
    let (context, subject) = subject_in_fresh_context("a");
    r.register(&subject, &avro_body(&s.simple("A")));
    let scope_path = format!("/mode/:{context}:");
    if karapace() {
        // `:.ctx:` is just a subject name, and modes cannot be written
        for query in ["", "?force=true"] {
            r.put(
                &format!("{scope_path}{query}"),
                &json!({ "mode": "IMPORT" }),
            )
            .expect_no_route(405);
        }
        r.get(&scope_path).expect_error(404, 40401);
        let resp = r.get(&format!("/mode/{subject}?defaultToGlobal=true"));
        assert_eq!(resp.ok(), &json!({ "mode": "READWRITE" }), "\n{resp}");
        return;
    }
    r.put(&scope_path, &json!({ "mode": "IMPORT" }))
        .expect_error(422, 42205);
    let resp = r.put(
        &format!("{scope_path}?force=true"),
        &json!({ "mode": "IMPORT" }),
    );
    assert_eq!(resp.ok()["mode"], json!("IMPORT"), "\n{resp}");
    // The context's mode now governs its subjects.
    let resp = r.get(&format!("/mode/{subject}?defaultToGlobal=true"));
    let governed = resp.ok()["mode"].clone();
    r.delete(&scope_path).ok();
    assert_eq!(governed, json!("IMPORT"), "\n{resp}");
}

#[test]
fn import_mode_global_switch_refused_while_subjects_exist() {
    let _guard = global_lock();
    let r = registry();
    let s = scope("import_mode_global_switch_refused_while_subjects_exist");
    // Make sure at least one live subject exists in the default context.
    r.register(&s.subject("a"), &avro_body(&s.simple("A")));
    let resp = r.put("/mode", &json!({ "mode": "IMPORT" }));
    if karapace() {
        resp.expect_no_route(405);
        let mode = r.get("/mode");
        assert_eq!(mode.ok(), &json!({ "mode": "READWRITE" }), "\n{mode}");
        return;
    }
    if resp.status == 200 {
        // Wrongly accepted: put the registry back before failing.
        r.put("/mode", &json!({ "mode": "READWRITE" }));
    }
    resp.expect_error(422, 42205);
    let mode = r.get("/mode");
    assert_eq!(mode.ok()["mode"], json!("READWRITE"), "\n{mode}");
}
