//! Avro compatibility under each of the seven levels, checked both with the dry run
//! `POST /compatibility/subjects/{s}/versions/latest` (`{is_compatible}`) and with a real
//! registration (200, or 409 with error_code 40901 on current Confluent / 409 on older
//! Confluent and Karapace); transitive levels check every live version, the others only
//! the latest; plus the check endpoint's 40402 / 42202 / 42201 errors
//! (registry-semantics.md "Writing state"; OpenAPI `/compatibility/...`, register 409).
//!
//! Every subject sets its own level, so the global level (which other tests may change)
//! never matters here.

use sr_conformance::*;

/// The evolutions of the base record `{id: string, old: int}` checked at every level.
#[derive(Clone, Copy, Debug)]
enum Evolution {
    AddFieldWithDefault,
    AddFieldWithoutDefault,
    RemoveField,
    ChangeFieldType,
}

const EVOLUTIONS: [Evolution; 4] = [
    Evolution::AddFieldWithDefault,
    Evolution::AddFieldWithoutDefault,
    Evolution::RemoveField,
    Evolution::ChangeFieldType,
];

fn base(s: &Scope) -> Value {
    s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "old", "type": "int" }]),
    )
}

fn evolve(s: &Scope, evolution: Evolution) -> Value {
    let fields = match evolution {
        Evolution::AddFieldWithDefault => json!([
            { "name": "id", "type": "string" },
            { "name": "old", "type": "int" },
            { "name": "extra", "type": "int", "default": 0 }
        ]),
        Evolution::AddFieldWithoutDefault => json!([
            { "name": "id", "type": "string" },
            { "name": "old", "type": "int" },
            { "name": "extra", "type": "int" }
        ]),
        Evolution::RemoveField => json!([{ "name": "id", "type": "string" }]),
        Evolution::ChangeFieldType => json!([
            { "name": "id", "type": "int" },
            { "name": "old", "type": "int" }
        ]),
    };
    s.record("Rec", fields)
}

/// Expected compatibility of each evolution against the base, in [`EVOLUTIONS`] order.
/// BACKWARD: the new schema reads old data; FORWARD: the old schema reads new data.
fn expected(level: &str) -> [bool; 4] {
    match level.trim_end_matches("_TRANSITIVE") {
        "NONE" => [true, true, true, true],
        "BACKWARD" => [true, false, true, false],
        "FORWARD" => [true, true, false, false],
        "FULL" => [true, false, false, false],
        other => panic!("unknown level {other}"),
    }
}

/// Asserts a registration was refused as incompatible.
#[track_caller]
fn assert_incompatible(resp: &Resp) {
    if karapace() {
        // `error_code` 409, "Incompatible schema, compatibility_mode=LEVEL <reason>"
        resp.expect_error(409, 409);
        let message = resp.body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Incompatible schema, compatibility_mode="),
            "\n{resp}"
        );
        return;
    }
    resp.expect_error_in(409, &INCOMPATIBLE_CODES);
}

/// For every evolution: a fresh subject at `level` holding the base, then the dry-run
/// check and the real registration must agree with [`expected`].
fn check_level(test: &str, level: &str) {
    let r = registry();
    let s = scope(test);
    for (evolution, compatible) in EVOLUTIONS.iter().zip(expected(level)) {
        let subject = s.subject(&format!("{evolution:?}").to_lowercase());
        r.set_compatibility(&subject, level);
        let base_id = r.register(&subject, &avro_body(&base(&s)));
        let body = avro_body(&evolve(&s, *evolution));
        let check = r.post(
            &format!("/compatibility/subjects/{subject}/versions/latest"),
            &body,
        );
        assert_eq!(
            check.ok()["is_compatible"],
            json!(compatible),
            "{level} {evolution:?}\n{check}"
        );
        let resp = r.post(&format!("/subjects/{subject}/versions"), &body);
        if compatible {
            let id = resp.ok()["id"].as_i64();
            assert!(
                id.is_some_and(|id| id != base_id),
                "{level} {evolution:?}: new schema, new id\n{resp}"
            );
            assert_eq!(
                r.versions(&subject, false),
                vec![1, 2],
                "{level} {evolution:?}"
            );
        } else {
            assert_incompatible(&resp);
            assert_eq!(
                r.versions(&subject, false),
                vec![1],
                "{level} {evolution:?}"
            );
        }
    }
}

#[test]
fn compatibility_none_accepts_everything() {
    check_level("compatibility_none_accepts_everything", "NONE");
}

#[test]
fn compatibility_backward() {
    check_level("compatibility_backward", "BACKWARD");
}

#[test]
fn compatibility_backward_transitive() {
    check_level("compatibility_backward_transitive", "BACKWARD_TRANSITIVE");
}

#[test]
fn compatibility_forward() {
    check_level("compatibility_forward", "FORWARD");
}

#[test]
fn compatibility_forward_transitive() {
    check_level("compatibility_forward_transitive", "FORWARD_TRANSITIVE");
}

#[test]
fn compatibility_full() {
    check_level("compatibility_full", "FULL");
}

#[test]
fn compatibility_full_transitive() {
    check_level("compatibility_full_transitive", "FULL_TRANSITIVE");
}

/// Registers `history` under a subject at `level`, then `last`; returns the response.
fn register_history(s: &Scope, level: &str, history: &[Value], last: &Value) -> Resp {
    let r = registry();
    let subject = s.subject(&level.to_lowercase());
    r.set_compatibility(&subject, level);
    for schema in history {
        r.register(&subject, &avro_body(schema));
    }
    r.post(&format!("/subjects/{subject}/versions"), &avro_body(last))
}

#[test]
fn compatibility_backward_transitive_checks_all_versions() {
    let s = scope("compatibility_backward_transitive_checks_all_versions");
    // v3 reads v2 data (v2 has `extra`) but not v1 data (no `extra`, no default).
    let v1 = s.record("Rec", json!([{ "name": "id", "type": "string" }]));
    let v2 = s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "extra", "type": "int", "default": 0 }]),
    );
    let v3 = s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "extra", "type": "int" }]),
    );
    let history = [v1, v2];
    register_history(&s, "BACKWARD", &history, &v3).ok();
    assert_incompatible(&register_history(&s, "BACKWARD_TRANSITIVE", &history, &v3));
}

#[test]
fn compatibility_forward_transitive_checks_all_versions() {
    let s = scope("compatibility_forward_transitive_checks_all_versions");
    // v2 reads v3 data (default for `old`); v1 cannot (`old` has no default there).
    let v1 = s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "old", "type": "int" }]),
    );
    let v2 = s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "old", "type": "int", "default": 0 }]),
    );
    let v3 = s.record("Rec", json!([{ "name": "id", "type": "string" }]));
    let history = [v1, v2];
    register_history(&s, "FORWARD", &history, &v3).ok();
    assert_incompatible(&register_history(&s, "FORWARD_TRANSITIVE", &history, &v3));
}

#[test]
fn compatibility_full_transitive_checks_all_versions() {
    let s = scope("compatibility_full_transitive_checks_all_versions");
    let v1 = s.record("Rec", json!([{ "name": "id", "type": "string" }]));
    let v2 = s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "extra", "type": "int", "default": 0 }]),
    );
    let v3 = s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "extra", "type": "int" }]),
    );
    let history = [v1, v2];
    register_history(&s, "FULL", &history, &v3).ok();
    assert_incompatible(&register_history(&s, "FULL_TRANSITIVE", &history, &v3));
}

#[test]
fn compatibility_check_against_a_specific_version() {
    let r = registry();
    let s = scope("compatibility_check_against_a_specific_version");
    let subject = s.subject("a");
    r.set_compatibility(&subject, "NONE");
    let string_id = s.record("Rec", json!([{ "name": "id", "type": "string" }]));
    let int_id = s.record("Rec", json!([{ "name": "id", "type": "int" }]));
    r.register(&subject, &avro_body(&string_id));
    r.register(&subject, &avro_body(&int_id));
    r.set_compatibility(&subject, "BACKWARD");
    let candidate = avro_body(&s.record(
        "Rec",
        json!([{ "name": "id", "type": "string" }, { "name": "extra", "type": "int", "default": 0 }]),
    ));
    for (version, compatible) in [("1", true), ("2", false), ("latest", false)] {
        let resp = r.post(
            &format!("/compatibility/subjects/{subject}/versions/{version}"),
            &candidate,
        );
        assert_eq!(resp.ok()["is_compatible"], json!(compatible), "\n{resp}");
    }
}

#[test]
fn compatibility_check_unknown_version_40402() {
    let r = registry();
    let s = scope("compatibility_check_unknown_version_40402");
    let subject = s.subject("a");
    r.register(&subject, &avro_body(&base(&s)));
    r.post(
        &format!("/compatibility/subjects/{subject}/versions/7"),
        &avro_body(&base(&s)),
    )
    .expect_error(404, 40402);
}

#[test]
fn compatibility_check_invalid_version_42202() {
    let r = registry();
    let s = scope("compatibility_check_invalid_version_42202");
    let subject = s.subject("a");
    r.register(&subject, &avro_body(&base(&s)));
    r.post(
        &format!("/compatibility/subjects/{subject}/versions/abc"),
        &avro_body(&base(&s)),
    )
    .expect_error(422, 42202);
}

#[test]
fn compatibility_check_invalid_schema_42201() {
    let r = registry();
    let s = scope("compatibility_check_invalid_schema_42201");
    let subject = s.subject("a");
    r.register(&subject, &avro_body(&base(&s)));
    r.post(
        &format!("/compatibility/subjects/{subject}/versions/latest"),
        &json!({ "schema": "{\"type\": \"record\", \"name\": " }),
    )
    .expect_error(422, 42201);
}
