//! Subject-level modes (READWRITE / READONLY): `GET/PUT/DELETE /mode/{s}`, 40409 for a
//! subject without its own mode, 42204 for an invalid mode, and READONLY refusing every
//! write with 42205 (registry-semantics.md "Reading state", "Writing state"; OpenAPI
//! `/mode`, `/mode/{subject}`; Confluent `ModeResource`, `checkRegisterMode`). All test
//! names start with `mode_` so registries without writable modes (Karapace) can skip them.
//! The GLOBAL mode is only read, under [`global_lock`].
//!
//! Karapace 3.16 ([`karapace`]) has `GET /mode` and `GET /mode/{s}` only: `PUT` and
//! `DELETE` are aiohttp's 405, so nothing is ever READONLY; `GET /mode/{s}` answers the
//! global mode for a subject it knows and 40401 for others, never 40409.

use sr_conformance::*;

/// Karapace 3.16: `PUT /mode/{subject}` is aiohttp's 405 and sets nothing.
#[track_caller]
fn expect_no_mode_writes(subject: &str, mode: &str) {
    let r = registry();
    r.put(&format!("/mode/{subject}"), &json!({ "mode": mode }))
        .expect_no_route(405);
    r.delete(&format!("/mode/{subject}")).expect_no_route(405);
}

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
    if karapace() {
        // an unknown subject: 40401; a known one: the global mode, as its own
        r.get(&format!("/mode/{subject}")).expect_error(404, 40401);
        r.get(&format!("/mode/{subject}?defaultToGlobal=true"))
            .expect_error(404, 40401);
        r.register(&subject, &avro_body(&s.simple("A")));
        for query in ["", "?defaultToGlobal=true"] {
            let resp = r.get(&format!("/mode/{subject}{query}"));
            assert_eq!(resp.ok(), &json!({ "mode": "READWRITE" }), "\n{resp}");
        }
        return;
    }
    r.get(&format!("/mode/{subject}")).expect_error(404, 40409);
    let resp = r.get(&format!("/mode/{subject}?defaultToGlobal=true"));
    assert_eq!(resp.ok()["mode"], json!("READWRITE"), "\n{resp}");
}

#[test]
fn mode_subject_set_get_delete_roundtrip() {
    let r = registry();
    let s = scope("mode_subject_set_get_delete_roundtrip");
    let subject = s.subject("a");
    if karapace() {
        expect_no_mode_writes(&subject, "READONLY");
        r.get(&format!("/mode/{subject}")).expect_error(404, 40401);
        return;
    }
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
    let resp = registry().delete(&format!("/mode/{}", s.subject("a")));
    if karapace() {
        resp.expect_no_route(405);
        return;
    }
    resp.expect_error(404, 40401);
}

#[test]
fn mode_invalid_mode_42204() {
    let r = registry();
    let s = scope("mode_invalid_mode_42204");
    let subject = s.subject("a");
    if karapace() {
        // no PUT to validate the mode in
        expect_no_mode_writes(&subject, "SIDEWAYS");
        r.get(&format!("/mode/{subject}")).expect_error(404, 40401);
        return;
    }
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
    if karapace() {
        // the subject cannot be made READONLY: writes go on
        expect_no_mode_writes(&subject, "READONLY");
        r.register(&subject, &avro_body(&s.simple("B")));
        assert_eq!(r.versions(&subject, false), vec![1, 2]);
        return;
    }
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
    if karapace() {
        expect_no_mode_writes(&locked, "READONLY");
        for subject in [&locked, &open] {
            r.register(subject, &avro_body(&s.simple("A")));
        }
        return;
    }
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
