//! Compatibility configuration: `GET/PUT /config`, `GET/PUT/DELETE /config/{s}`,
//! `?defaultToGlobal=true`, 40408 for a subject without its own level, 42203 for an
//! invalid level, 40401 when deleting a level that is not set (registry-semantics.md
//! "Reading state", "Writing state"; OpenAPI `/config`, `/config/{subject}`; Confluent
//! `ConfigResource.deleteSubjectConfig`). Tests that change or read the GLOBAL level hold
//! [`global_lock`] and restore what they changed.
//!
//! Karapace 3.16 ([`karapace`]): `GET /config/{s}` answers 40401 for a subject it does not
//! know (no version and no config write ever; `config_subject_get` checks
//! `find_subject` first), and `DELETE /config/{s}` always answers
//! `{"compatibility": <global level>}` and makes the subject known.

use sr_conformance::*;

fn global_level() -> String {
    let resp = registry().get("/config");
    let level = resp.ok()["compatibilityLevel"]
        .as_str()
        .unwrap_or_else(|| panic!("no compatibilityLevel\n{resp}"))
        .to_string();
    assert!(LEVELS.contains(&level.as_str()), "unknown level\n{resp}");
    level
}

/// Some level other than `level`.
fn other_than(level: &str) -> &'static str {
    if level == "FULL_TRANSITIVE" {
        "FORWARD"
    } else {
        "FULL_TRANSITIVE"
    }
}

#[test]
fn config_global_get_returns_a_valid_level() {
    let _guard = global_lock();
    global_level();
}

#[test]
fn config_global_put_changes_level_then_restores() {
    let _guard = global_lock();
    let r = registry();
    let original = global_level();
    let changed = other_than(&original);
    let resp = r.put("/config", &json!({ "compatibility": changed }));
    let put_result = resp.ok()["compatibility"].clone();
    let read_back = global_level();
    // Restore before asserting, so a failure leaves the registry as it was.
    let restore = r.put("/config", &json!({ "compatibility": original }));
    assert_eq!(put_result, json!(changed), "PUT echoes the request\n{resp}");
    assert_eq!(read_back, changed);
    assert_eq!(
        restore.ok()["compatibility"],
        json!(original),
        "\n{restore}"
    );
    assert_eq!(global_level(), original);
}

#[test]
fn config_global_invalid_level_42203() {
    let _guard = global_lock();
    let r = registry();
    let original = global_level();
    let resp = r.put("/config", &json!({ "compatibility": "SIDEWAYS" }));
    if resp.status == 200 {
        r.put("/config", &json!({ "compatibility": original }));
    }
    resp.expect_error(422, 42203);
    assert_eq!(global_level(), original);
}

#[test]
fn config_subject_without_level_40408() {
    let s = scope("config_subject_without_level_40408");
    let resp = registry().get(&format!("/config/{}", s.subject("a")));
    if karapace() {
        // a subject Karapace does not know
        resp.expect_error(404, 40401);
        return;
    }
    resp.expect_error(404, 40408);
}

#[test]
fn config_subject_without_level_default_to_global() {
    let _guard = global_lock();
    let r = registry();
    let s = scope("config_subject_without_level_default_to_global");
    let global = global_level();
    let subject = s.subject("a");
    let resp = r.get(&format!("/config/{subject}?defaultToGlobal=true"));
    if karapace() {
        // unknown subject: 40401 even with defaultToGlobal; once registered, the global level
        resp.expect_error(404, 40401);
        r.register(&subject, &avro_body(&s.simple("A")));
        let resp = r.get(&format!("/config/{subject}?defaultToGlobal=true"));
        assert_eq!(resp.ok()["compatibilityLevel"], json!(global), "\n{resp}");
        return;
    }
    assert_eq!(resp.ok()["compatibilityLevel"], json!(global), "\n{resp}");
}

#[test]
fn config_subject_put_and_get_each_level() {
    let r = registry();
    let s = scope("config_subject_put_and_get_each_level");
    let subject = s.subject("a");
    for level in LEVELS {
        r.set_compatibility(&subject, level);
        let resp = r.get(&format!("/config/{subject}"));
        assert_eq!(resp.ok()["compatibilityLevel"], json!(level), "\n{resp}");
        let resp = r.get(&format!("/config/{subject}?defaultToGlobal=true"));
        assert_eq!(resp.ok()["compatibilityLevel"], json!(level), "\n{resp}");
    }
}

#[test]
fn config_subject_level_works_for_registered_subject() {
    let r = registry();
    let s = scope("config_subject_level_works_for_registered_subject");
    let subject = s.subject("a");
    r.register(&subject, &avro_body(&s.simple("A")));
    r.get(&format!("/config/{subject}"))
        .expect_error(404, 40408);
    r.set_compatibility(&subject, "FORWARD");
    let resp = r.get(&format!("/config/{subject}"));
    assert_eq!(
        resp.ok()["compatibilityLevel"],
        json!("FORWARD"),
        "\n{resp}"
    );
}

#[test]
fn config_subject_invalid_level_42203() {
    let r = registry();
    let s = scope("config_subject_invalid_level_42203");
    let subject = s.subject("a");
    r.put(
        &format!("/config/{subject}"),
        &json!({ "compatibility": "SIDEWAYS" }),
    )
    .expect_error(422, 42203);
    // nothing set (on Karapace the subject stays unknown: 40401)
    let code = if karapace() { 40401 } else { 40408 };
    r.get(&format!("/config/{subject}")).expect_error(404, code);
}

#[test]
fn config_subject_delete_returns_old_level_and_reverts_to_global() {
    let _guard = global_lock();
    let r = registry();
    let s = scope("config_subject_delete_returns_old_level_and_reverts_to_global");
    let subject = s.subject("a");
    let global = global_level();
    let level = other_than(&global);
    r.set_compatibility(&subject, level);
    let resp = r.delete(&format!("/config/{subject}"));
    if karapace() {
        // Karapace answers the global level, not the deleted one
        assert_eq!(resp.ok(), &json!({ "compatibility": global }), "\n{resp}");
    } else {
        // The OpenAPI documents the old level as a bare string; Confluent answers a Config
        // object `{"compatibilityLevel": ...}`. Both name the old level.
        let old = resp.ok();
        assert!(
            old == &json!(level) || old["compatibilityLevel"] == json!(level),
            "DELETE returns the old level\n{resp}"
        );
    }
    r.get(&format!("/config/{subject}"))
        .expect_error(404, 40408);
    let resp = r.get(&format!("/config/{subject}?defaultToGlobal=true"));
    assert_eq!(resp.ok()["compatibilityLevel"], json!(global), "\n{resp}");
}

#[test]
fn config_subject_delete_without_level_40401() {
    let s = scope("config_subject_delete_without_level_40401");
    let subject = s.subject("a");
    if karapace() {
        // 200 with the global level, and the subject is known from then on (40408)
        let _guard = global_lock();
        let r = registry();
        let global = global_level();
        let resp = r.delete(&format!("/config/{subject}"));
        assert_eq!(resp.ok(), &json!({ "compatibility": global }), "\n{resp}");
        r.get(&format!("/config/{subject}"))
            .expect_error(404, 40408);
        return;
    }
    registry()
        .delete(&format!("/config/{subject}"))
        .expect_error(404, 40401);
}
