//! Subject-level modes (READWRITE / READONLY): `GET/PUT/DELETE /mode/{s}`, 40409 for a
//! subject without its own mode, 42204 for an invalid mode, and READONLY refusing every
//! write with 42205 (registry-semantics.md "Reading state", "Writing state"; OpenAPI
//! `/mode`, `/mode/{subject}`; Confluent `ModeResource`, `checkRegisterMode`). All test
//! names start with `mode_` so registries without writable modes (Karapace) can skip them.
//! The GLOBAL mode is only read, under [`global_lock`].

use sr_conformance::*;

#[test]
fn mode_global_is_readwrite() {
    let _guard = global_lock();
    let resp = registry().get("/mode");
    assert_eq!(resp.ok(), &json!({ "mode": "READWRITE" }), "\n{resp}");
}

#[test]
fn mode_subject_without_mode_40409() {
    let _guard = global_lock();
    let r = registry();
    let s = scope("mode_subject_without_mode_40409");
    let subject = s.subject("a");
    r.get(&format!("/mode/{subject}")).expect_error(404, 40409);
    let resp = r.get(&format!("/mode/{subject}?defaultToGlobal=true"));
    assert_eq!(resp.ok()["mode"], json!("READWRITE"), "\n{resp}");
}

#[test]
fn mode_subject_set_get_delete_roundtrip() {
    let r = registry();
    let s = scope("mode_subject_set_get_delete_roundtrip");
    let subject = s.subject("a");
    let resp = r.put(&format!("/mode/{subject}"), &json!({ "mode": "READONLY" }));
    assert_eq!(resp.ok(), &json!({ "mode": "READONLY" }), "\n{resp}");
    let resp = r.get(&format!("/mode/{subject}"));
    assert_eq!(resp.ok(), &json!({ "mode": "READONLY" }), "\n{resp}");
    let resp = r.put(&format!("/mode/{subject}"), &json!({ "mode": "READWRITE" }));
    assert_eq!(resp.ok(), &json!({ "mode": "READWRITE" }), "\n{resp}");
    let resp = r.delete(&format!("/mode/{subject}"));
    assert_eq!(
        resp.ok(),
        &json!({ "mode": "READWRITE" }),
        "returns the old mode\n{resp}"
    );
    r.get(&format!("/mode/{subject}")).expect_error(404, 40409);
}

#[test]
fn mode_subject_delete_without_mode_40401() {
    let s = scope("mode_subject_delete_without_mode_40401");
    registry()
        .delete(&format!("/mode/{}", s.subject("a")))
        .expect_error(404, 40401);
}

#[test]
fn mode_invalid_mode_42204() {
    let r = registry();
    let s = scope("mode_invalid_mode_42204");
    let subject = s.subject("a");
    r.put(&format!("/mode/{subject}"), &json!({ "mode": "SIDEWAYS" }))
        .expect_error(422, 42204);
    r.get(&format!("/mode/{subject}")).expect_error(404, 40409);
}

#[test]
fn mode_readonly_subject_refuses_writes_42205() {
    let r = registry();
    let s = scope("mode_readonly_subject_refuses_writes_42205");
    let subject = s.subject("a");
    r.set_compatibility(&subject, "NONE");
    let id = r.register(&subject, &avro_body(&s.simple("A")));
    r.put(&format!("/mode/{subject}"), &json!({ "mode": "READONLY" }))
        .ok();

    let register = r.post(
        &format!("/subjects/{subject}/versions"),
        &avro_body(&s.simple("B")),
    );
    let delete_version = r.delete(&format!("/subjects/{subject}/versions/1"));
    let delete_subject = r.delete(&format!("/subjects/{subject}"));
    let put_config = r.put(
        &format!("/config/{subject}"),
        &json!({ "compatibility": "FULL" }),
    );
    // Reads still work.
    let versions = r.versions(&subject, false);
    let latest = r.version(&subject, "latest");
    // Leave the subject writable before asserting.
    r.delete(&format!("/mode/{subject}")).ok();

    register.expect_error(422, 42205);
    delete_version.expect_error(422, 42205);
    delete_subject.expect_error(422, 42205);
    put_config.expect_error(422, 42205);
    assert_eq!(versions, vec![1]);
    assert_eq!(latest["id"], json!(id), "{latest}");
    // Back to READWRITE (global), writes work again.
    r.register(&subject, &avro_body(&s.simple("B")));
    assert_eq!(r.versions(&subject, false), vec![1, 2]);
}

#[test]
fn mode_readonly_is_scoped_to_its_subject() {
    let r = registry();
    let s = scope("mode_readonly_is_scoped_to_its_subject");
    let (locked, open) = (s.subject("locked"), s.subject("open"));
    r.put(&format!("/mode/{locked}"), &json!({ "mode": "READONLY" }))
        .ok();
    let refused = r.post(
        &format!("/subjects/{locked}/versions"),
        &avro_body(&s.simple("A")),
    );
    let accepted = r.post(
        &format!("/subjects/{open}/versions"),
        &avro_body(&s.simple("A")),
    );
    r.delete(&format!("/mode/{locked}")).ok();
    refused.expect_error(422, 42205);
    accepted.ok();
    r.get(&format!("/subjects/{locked}/versions"))
        .expect_error(404, 40401);
}
