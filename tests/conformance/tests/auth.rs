//! Authentication: with `SR_USERNAME` set the registry must refuse anonymous and wrong
//! credentials with 401 and accept the configured ones; without it, anonymous access must
//! work (the suite was told no credentials are needed). Only the status is checked on 401:
//! servers answer it from different layers, not always with a registry error body.

use sr_conformance::*;

#[test]
fn auth_basic_credentials_are_enforced_as_configured() {
    let r = registry();
    if r.has_credentials() {
        let anonymous = r.get_anonymous("/subjects");
        assert_eq!(
            anonymous.status, 401,
            "anonymous request must be refused\n{anonymous}"
        );
        let wrong = r.get_as("/subjects", "conformance-nobody", "wrong-password");
        assert_eq!(
            wrong.status, 401,
            "wrong credentials must be refused\n{wrong}"
        );
        let resp = r.get("/subjects");
        assert!(resp.ok().is_array(), "\n{resp}");
    } else {
        let resp = r.get_anonymous("/subjects");
        assert!(
            resp.ok().is_array(),
            "SR_USERNAME is not set, yet anonymous access fails: set SR_USERNAME/SR_PASSWORD\n{resp}"
        );
    }
}

#[test]
fn auth_schema_types_needs_the_same_credentials() {
    let r = registry();
    let resp = r.get("/schemas/types");
    assert!(resp.ok().is_array(), "\n{resp}");
    if r.has_credentials() {
        let anonymous = r.get_anonymous("/schemas/types");
        assert_eq!(anonymous.status, 401, "\n{anonymous}");
    }
}
