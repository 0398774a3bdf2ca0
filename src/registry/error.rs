//! What can go wrong talking to a registry, one variant per failure a user
//! can meet. Messages name the request (method and URL path, never a
//! credential), the HTTP status and the registry's own `error_code` and
//! message, then a `hint:` line saying what to do.

use std::fmt;

/// One failed HTTP exchange: enough to name it in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query as sent (percent-encoded), without scheme, host or credentials.
    pub path: String,
    /// HTTP status, when a response came back.
    pub status: Option<u16>,
    /// The registry's `error_code`, when the body had one.
    pub code: Option<i64>,
    /// The registry's `message` (or the transport error), verbatim.
    pub message: String,
    /// How many times the request was sent.
    pub attempts: u32,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{} {}`", self.method, self.path)?;
        let mut parts = Vec::new();
        if let Some(status) = self.status {
            parts.push(format!("http {status}"));
        }
        if let Some(code) = self.code {
            parts.push(format!("error_code {code}"));
        }
        if self.attempts > 1 {
            parts.push(format!("after {} attempts", self.attempts));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The configuration cannot make a client (no URL, bad URL, unreadable key).
    #[error("invalid registry configuration `{key}`: {message}")]
    Config {
        /// Dotted configuration key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A subject name that no URL can carry (`.` or `..` are dot segments).
    #[error(
        "subject `{0}` cannot be addressed in a registry URL\nhint: `.` and `..` are path segments every HTTP stack rewrites"
    )]
    UnaddressableSubject(String),
    /// 401: the registry did not accept the credentials (or none were sent).
    #[error(
        "registry refused the credentials for {0}\nhint: check `enterprise.schema_registry.auth` (type, username, password or token)"
    )]
    Unauthorized(Box<Failure>),
    /// 403: authenticated, but not allowed.
    #[error(
        "registry denied access to {0}\nhint: the principal lacks a permission (ACL / RBAC role) on this subject or operation"
    )]
    Forbidden(Box<Failure>),
    /// 40401.
    #[error(
        "subject not found: {0}\nhint: check the subject name (it is case-sensitive; contexts are written `:.ctx:name`)"
    )]
    SubjectNotFound(Box<Failure>),
    /// 40402.
    #[error(
        "version not found: {0}\nhint: the version may be soft-deleted (read it with `deleted=true`) or never existed"
    )]
    VersionNotFound(Box<Failure>),
    /// 40403.
    #[error("schema not found: {0}")]
    SchemaNotFound(Box<Failure>),
    /// 40404-40407: a soft/hard delete in the wrong order.
    #[error(
        "delete refused: {0}\nhint: a permanent delete needs a soft delete first; a soft-deleted item cannot be soft-deleted again"
    )]
    DeleteOrder(Box<Failure>),
    /// A 404 without a registry error code: the route does not exist here.
    #[error(
        "endpoint not found: {0}\nhint: check `enterprise.schema_registry.url` (a path prefix?) and the registry version"
    )]
    EndpointNotFound(Box<Failure>),
    /// 409 / 40901: the schema breaks the subject's compatibility level.
    #[error(
        "schema is incompatible: {0}\nhint: check the subject's compatibility level, or restore with `set_compatibility: NONE`"
    )]
    Incompatible(Box<Failure>),
    /// 42201 / 42202 and other 422s: the registry refused the content.
    #[error("registry rejected the request: {0}")]
    Invalid(Box<Failure>),
    /// 42205: the scope's mode forbids the operation.
    #[error(
        "operation not permitted by the registry mode: {0}\nhint: check `GET /mode` for the subject, its context and the global scope (READONLY, IMPORT)"
    )]
    NotPermitted(Box<Failure>),
    /// 42206: the version is still referenced by other schemas.
    #[error("schema is still referenced: {0}\nhint: delete or move the referencing schemas first")]
    ReferenceExists(Box<Failure>),
    /// 429 Too Many Requests, after every retry.
    #[error(
        "registry rate limit: {0}\nhint: the registry kept answering 429 Too Many Requests; lower `enterprise.schema_registry.max_concurrency` or retry later"
    )]
    RateLimited(Box<Failure>),
    /// Another 4xx.
    #[error("registry refused the request: {0}")]
    Rejected(Box<Failure>),
    /// 5xx (and 50001-50003) after every retry.
    #[error(
        "registry server error: {0}\nhint: the registry or its Kafka store is unhealthy; retry later"
    )]
    Server(Box<Failure>),
    /// No answer within `request_timeout_secs`, after every retry.
    #[error(
        "registry request timed out: {0}\nhint: raise `enterprise.schema_registry.request_timeout_secs` or check the network"
    )]
    Timeout(Box<Failure>),
    /// Could not connect or the TLS handshake failed, after every retry.
    #[error(
        "cannot reach the registry: {0}\nhint: check `enterprise.schema_registry.url` and `tls` (CA, client certificate)"
    )]
    Connect(Box<Failure>),
    /// A 2xx whose body is not what the API promises.
    #[error("unexpected registry response: {0}")]
    Decode(Box<Failure>),
    /// The OAuth token endpoint refused or failed.
    #[error(
        "cannot get an oauth token: {0}\nhint: check `auth.token_url`, `auth.client_id`, `auth.client_secret` and `auth.scope`"
    )]
    Token(Box<Failure>),
}

impl RegistryError {
    /// Whether the failure may pass by itself: the registry overloaded,
    /// unhealthy, slow or unreachable (after every retry), or a token server
    /// failing so. Every other failure is permanent: the same request fails
    /// the same way until the configuration or the registry changes.
    ///
    /// A connection refused for its certificate (rustls says "invalid peer
    /// certificate") is permanent: it fails the same way until `tls.ca_cert`
    /// or the server's certificate changes.
    pub fn is_transient(&self) -> bool {
        use RegistryError::*;
        match self {
            Connect(f) | Token(f) if f.message.contains("invalid peer certificate") => false,
            RateLimited(_) | Server(_) | Timeout(_) | Connect(_) => true,
            Token(f) => f.status.is_none_or(|s| s >= 500 || s == 429),
            _ => false,
        }
    }

    /// The exchange that failed, for the variants that have one.
    pub fn failure(&self) -> Option<&Failure> {
        use RegistryError::*;
        match self {
            Config { .. } | UnaddressableSubject(_) => None,
            Unauthorized(f) | Forbidden(f) | SubjectNotFound(f) | VersionNotFound(f)
            | SchemaNotFound(f) | DeleteOrder(f) | EndpointNotFound(f) | Incompatible(f)
            | Invalid(f) | NotPermitted(f) | ReferenceExists(f) | RateLimited(f) | Rejected(f)
            | Server(f) | Timeout(f) | Connect(f) | Decode(f) | Token(f) => Some(f),
        }
    }

    /// The registry's `error_code`, when it sent one.
    pub fn error_code(&self) -> Option<i64> {
        self.failure().and_then(|f| f.code)
    }

    /// The HTTP status, when a response came back.
    pub fn status(&self) -> Option<u16> {
        self.failure().and_then(|f| f.status)
    }

    /// Sorts an HTTP error response into its variant.
    pub(crate) fn from_response(failure: Failure) -> Self {
        let f = Box::new(failure);
        match (f.status.unwrap_or(0), f.code) {
            (401, _) => RegistryError::Unauthorized(f),
            (403, _) => RegistryError::Forbidden(f),
            (_, Some(40401)) => RegistryError::SubjectNotFound(f),
            (_, Some(40402)) => RegistryError::VersionNotFound(f),
            (_, Some(40403)) => RegistryError::SchemaNotFound(f),
            (_, Some(40404..=40407)) => RegistryError::DeleteOrder(f),
            (404, _) => RegistryError::EndpointNotFound(f),
            (409, _) | (_, Some(40901)) => RegistryError::Incompatible(f),
            (_, Some(42205)) => RegistryError::NotPermitted(f),
            (_, Some(42206)) => RegistryError::ReferenceExists(f),
            (422, _) => RegistryError::Invalid(f),
            (429, _) => RegistryError::RateLimited(f),
            (500..=599, _) | (_, Some(50001..=50003)) => RegistryError::Server(f),
            _ => RegistryError::Rejected(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_permanent_a_refused_connection_is_not() {
        let connect = |message: &str| Failure {
            method: "GET".into(),
            path: "/subjects".into(),
            status: None,
            code: None,
            message: message.into(),
            attempts: 5,
        };
        let refused = "connection failed: tcp connect error: Connection refused (os error 111)";
        let cert = "connection failed: invalid peer certificate: UnknownIssuer";
        assert!(RegistryError::Connect(Box::new(connect(refused))).is_transient());
        assert!(RegistryError::Token(Box::new(connect(refused))).is_transient());
        assert!(!RegistryError::Connect(Box::new(connect(cert))).is_transient());
        assert!(!RegistryError::Token(Box::new(connect(cert))).is_transient());
    }

    fn failure(status: u16, code: Option<i64>) -> Failure {
        Failure {
            method: "GET".into(),
            path: "/subjects/a%2Fb/versions".into(),
            status: Some(status),
            code,
            message: "Subject 'a/b' not found.".into(),
            attempts: 1,
        }
    }

    #[test]
    fn messages_name_the_request_status_and_code() {
        let e = RegistryError::from_response(failure(404, Some(40401)));
        assert!(matches!(e, RegistryError::SubjectNotFound(_)));
        assert_eq!(
            e.to_string(),
            "subject not found: `GET /subjects/a%2Fb/versions` (http 404, error_code 40401): Subject 'a/b' not found.\n\
             hint: check the subject name (it is case-sensitive; contexts are written `:.ctx:name`)"
        );
        let e = RegistryError::from_response(failure(401, Some(401)));
        assert!(e.to_string().starts_with(
            "registry refused the credentials for `GET /subjects/a%2Fb/versions` (http 401"
        ));
        assert!(
            e.to_string()
                .contains("hint: check `enterprise.schema_registry.auth`")
        );
    }

    #[test]
    fn responses_sort_into_variants() {
        let cases: [(u16, Option<i64>, &str); 12] = [
            (404, Some(40402), "VersionNotFound"),
            (404, Some(40405), "DeleteOrder"),
            (404, Some(404), "EndpointNotFound"),
            (409, Some(40901), "Incompatible"),
            (422, Some(42201), "Invalid"),
            (422, Some(42205), "NotPermitted"),
            (422, Some(42206), "ReferenceExists"),
            (500, Some(50001), "Server"),
            (400, Some(400), "Rejected"),
            (429, Some(42901), "RateLimited"),
            (429, None, "RateLimited"),
            (403, None, "Forbidden"),
        ];
        for (status, code, name) in cases {
            let e = RegistryError::from_response(failure(status, code));
            assert!(
                format!("{e:?}").starts_with(name),
                "{status} {code:?} -> {e:?}"
            );
            assert_eq!(e.status(), Some(status));
            assert_eq!(e.error_code(), code);
        }
    }
}
