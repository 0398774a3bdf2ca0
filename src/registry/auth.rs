//! Credentials sent to the registry: basic, a static bearer token, or an OAuth
//! client-credentials token fetched from `token_url`, cached, and refreshed
//! before it runs out. No credential reaches a log, an error or `Debug` output.
//!
//! The token endpoint is another server than the registry, often a public
//! identity provider, so it has its own HTTP client: it trusts the system's
//! CAs plus the registry's `tls.ca_cert`, never inherits the registry's
//! `tls.insecure_skip_verify` (only `auth.token_insecure_skip_verify` turns
//! its verification off), presents no client certificate (the registry's mTLS
//! identity is for the registry), and follows no redirect (it would carry the
//! client secret to a URL nobody configured).

use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use super::error::{Failure, RegistryError};
use crate::config::{self, AuthKind, Secret};

/// How requests authenticate.
pub(crate) enum Credentials {
    /// Nothing (or mTLS, which lives in the TLS layer).
    None,
    /// `Authorization: Basic`.
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer` with a fixed token.
    Bearer(Secret),
    /// `Authorization: Bearer` with a token from an OAuth server.
    OAuth(OAuthClient),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &config::REDACTED)
                .finish(),
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&config::REDACTED).finish(),
            Credentials::OAuth(o) => fmt::Debug::fmt(o, f),
        }
    }
}

const AUTH: &str = "enterprise.schema_registry.auth";

impl Credentials {
    /// The credentials `auth:` describes. `ca_certs` (the registry's
    /// `tls.ca_cert`) are trusted by the token endpoint's client besides the
    /// system's CAs; `timeout` bounds a token request.
    pub(crate) fn from_config(
        auth: Option<&config::Auth>,
        ca_certs: &[reqwest::Certificate],
        timeout: Duration,
    ) -> Result<Self, RegistryError> {
        let Some(auth) = auth else {
            return Ok(Credentials::None);
        };
        let missing = |k: &str| RegistryError::Config {
            key: format!("{AUTH}.{k}"),
            message: format!("`type: {}` needs `{k}`", kind_name(auth.kind)),
        };
        Ok(match auth.kind {
            AuthKind::None | AuthKind::Mtls => Credentials::None,
            AuthKind::Basic => Credentials::Basic {
                username: auth
                    .username
                    .as_ref()
                    .ok_or_else(|| missing("username"))?
                    .0
                    .clone(),
                password: auth.password.clone().ok_or_else(|| missing("password"))?,
            },
            AuthKind::Bearer => {
                Credentials::Bearer(auth.token.clone().ok_or_else(|| missing("token"))?)
            }
            AuthKind::Oauth => {
                let raw = auth
                    .token_url
                    .as_ref()
                    .ok_or_else(|| missing("token_url"))?;
                let token_url = Url::parse(raw.as_str()).map_err(|e| RegistryError::Config {
                    key: format!("{AUTH}.token_url"),
                    message: format!("not a URL: {e}"),
                })?;
                if !matches!(token_url.scheme(), "http" | "https") {
                    return Err(RegistryError::Config {
                        key: format!("{AUTH}.token_url"),
                        message: format!(
                            "scheme `{}` is not supported: use `http` or `https`",
                            token_url.scheme()
                        ),
                    });
                }
                let http = token_client(
                    &token_url,
                    auth.token_insecure_skip_verify(),
                    ca_certs,
                    timeout,
                )?;
                Credentials::OAuth(OAuthClient {
                    http,
                    token_url,
                    client_id: auth
                        .client_id
                        .as_ref()
                        .ok_or_else(|| missing("client_id"))?
                        .0
                        .clone(),
                    client_secret: auth
                        .client_secret
                        .clone()
                        .ok_or_else(|| missing("client_secret"))?,
                    scope: auth.scope.as_ref().map(|s| s.0.clone()),
                    cache: tokio::sync::Mutex::new(None),
                })
            }
        })
    }
}

/// The token endpoint's own client (see the module's documentation).
fn token_client(
    token_url: &Url,
    skip_verify: bool,
    ca_certs: &[reqwest::Certificate],
    timeout: Duration,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder =
        super::client::client_builder(timeout).redirect(reqwest::redirect::Policy::none());
    match token_trust(token_url, skip_verify, !ca_certs.is_empty()) {
        TokenTrust::PlainHttp => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "`{AUTH}.token_url` sends `client_secret` to `{token_url}` over plain HTTP, readable by anyone on the way; use an `https://` URL"
                );
            });
        }
        TokenTrust::Unverified => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "`{AUTH}.token_insecure_skip_verify` is set: the certificate of `{token_url}` is not verified, and `client_secret` goes to whoever answers there"
                );
            });
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        TokenTrust::SystemAndRegistryCa => {
            builder = builder.tls_certs_merge(ca_certs.iter().cloned());
        }
        TokenTrust::System => {}
    }
    builder.build().map_err(|e| RegistryError::Config {
        key: format!("{AUTH}.token_url"),
        message: format!(
            "cannot build the HTTP client of the token endpoint: {}",
            super::client::transport_message(&e)
        ),
    })
}

/// Which certificates the token endpoint's client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenTrust {
    /// `http://`: no certificate at all (warned about).
    PlainHttp,
    /// `token_insecure_skip_verify: true`: any certificate (warned about).
    Unverified,
    /// The system's CAs and the registry's `tls.ca_cert`.
    SystemAndRegistryCa,
    /// The system's CAs.
    System,
}

/// The trust of the token endpoint: decided by its URL and its own key
/// alone; the registry's `tls.insecure_skip_verify` has no say.
fn token_trust(token_url: &Url, skip_verify: bool, has_ca_cert: bool) -> TokenTrust {
    if token_url.scheme() == "http" {
        TokenTrust::PlainHttp
    } else if skip_verify {
        TokenTrust::Unverified
    } else if has_ca_cert {
        TokenTrust::SystemAndRegistryCa
    } else {
        TokenTrust::System
    }
}

fn kind_name(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::None => "none",
        AuthKind::Basic => "basic",
        AuthKind::Bearer => "bearer",
        AuthKind::Oauth => "oauth",
        AuthKind::Mtls => "mtls",
    }
}

/// An OAuth 2 client-credentials client with a one-token cache.
pub(crate) struct OAuthClient {
    /// The token endpoint's own client, not the registry's.
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &config::REDACTED)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A token and the instant it should no longer be used.
#[derive(Clone)]
struct CachedToken {
    token: Secret,
    refresh_at: Option<Instant>,
}

/// How long before its expiry a token is replaced: a tenth of its lifetime,
/// at most a minute, so that a request never leaves with a token about to lapse.
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// The longest lifetime a token is trusted for, whatever the token server
/// says (an `expires_in` near `u64::MAX` overflowed `Instant + Duration`).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// When a token obtained at `obtained` and valid for `expires_in` seconds
/// should be replaced (at most a day on); `None` (no `expires_in`) keeps it
/// until a 401.
pub(crate) fn refresh_at(obtained: Instant, expires_in: Option<u64>) -> Option<Instant> {
    expires_in.map(|secs| {
        let lifetime = Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME);
        obtained + lifetime - refresh_margin(lifetime)
    })
}

/// Whether a token due for refresh at `refresh_at` can still be used at `now`.
pub(crate) fn is_fresh(now: Instant, refresh_at: Option<Instant>) -> bool {
    refresh_at.is_none_or(|at| now < at)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl OAuthClient {
    /// A usable token: the cached one while fresh, else a new one.
    /// `stale` is a token the registry just refused: it is never handed out again.
    pub(crate) async fn token(
        &self,
        counter: &std::sync::atomic::AtomicU64,
        stale: Option<&Secret>,
    ) -> Result<Secret, RegistryError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && is_fresh(Instant::now(), cached.refresh_at)
            && stale != Some(&cached.token)
        {
            return Ok(cached.token.clone());
        }
        let fresh = self.fetch(counter).await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    async fn fetch(
        &self,
        counter: &std::sync::atomic::AtomicU64,
    ) -> Result<CachedToken, RegistryError> {
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.client_id)
                .append_pair("client_secret", self.client_secret.expose());
            if let Some(scope) = &self.scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        let failure = |status: Option<u16>, message: String| {
            RegistryError::Token(Box::new(Failure {
                method: "POST".into(),
                path: self.token_url.path().to_owned(),
                status,
                code: None,
                message,
                attempts: 1,
            }))
        };
        let obtained = Instant::now();
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = self
            .http
            .post(self.token_url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| failure(None, send_error(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Err(failure(
                Some(status.as_u16()),
                format!(
                    "the token endpoint redirects to `{to}`: not followed, the client secret stays here; set `token_url` to the endpoint itself"
                ),
            ));
        }
        let body = response
            .text()
            .await
            .map_err(|e| failure(Some(status.as_u16()), super::client::transport_message(&e)))?;
        if !status.is_success() {
            // OAuth errors are `{"error": "...", "error_description": "..."}`: safe to show
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let error = v.get("error")?.as_str()?.to_owned();
                    Some(match v.get("error_description").and_then(|d| d.as_str()) {
                        Some(d) => format!("{error}: {d}"),
                        None => error,
                    })
                })
                .unwrap_or_else(|| "the token endpoint refused the request".into());
            return Err(failure(Some(status.as_u16()), message));
        }
        let parsed: TokenResponse = serde_json::from_str(&body).map_err(|e| {
            failure(
                Some(status.as_u16()),
                format!(
                    "the answer holds no `access_token`: {}",
                    super::client::json_error(&e)
                ),
            )
        })?;
        tracing::debug!(expires_in = ?parsed.expires_in, "obtained an oauth token");
        Ok(CachedToken {
            token: Secret::new(parsed.access_token),
            refresh_at: refresh_at(obtained, parsed.expires_in),
        })
    }
}

/// A failed token request; a certificate refused says what the endpoint is
/// checked against.
fn send_error(e: &reqwest::Error) -> String {
    let message = super::client::transport_message(e);
    if message.contains("certificate") {
        format!(
            "{message} (the token endpoint's certificate is checked against the system's CAs and `tls.ca_cert`, whatever `tls.insecure_skip_verify` says)"
        )
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let t0 = Instant::now();
        // an hour-long token is replaced a minute early
        let at = refresh_at(t0, Some(3600)).unwrap();
        assert_eq!(at - t0, Duration::from_secs(3540));
        assert!(is_fresh(t0 + Duration::from_secs(3539), Some(at)));
        assert!(!is_fresh(t0 + Duration::from_secs(3540), Some(at)));
        // a short one, a tenth of its life early
        let at = refresh_at(t0, Some(30)).unwrap();
        assert_eq!(at - t0, Duration::from_secs(27));
        // expires_in 0: never fresh
        let at = refresh_at(t0, Some(0)).unwrap();
        assert!(!is_fresh(t0, Some(at)));
        // a huge expires_in is capped at a day, not an overflow
        let at = refresh_at(t0, Some(u64::MAX)).unwrap();
        assert_eq!(at - t0, Duration::from_secs(24 * 3600 - 60));
        // no expires_in: fresh until the registry says otherwise
        assert!(is_fresh(
            t0 + Duration::from_secs(1 << 30),
            refresh_at(t0, None)
        ));
    }

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    #[test]
    fn the_token_endpoint_trusts_the_system_and_the_registry_ca_unless_told_otherwise() {
        let https = url("https://idp.example/oauth2/token");
        assert_eq!(token_trust(&https, false, false), TokenTrust::System);
        assert_eq!(
            token_trust(&https, false, true),
            TokenTrust::SystemAndRegistryCa
        );
        // only its own key turns verification off
        assert_eq!(token_trust(&https, true, false), TokenTrust::Unverified);
        assert_eq!(token_trust(&https, true, true), TokenTrust::Unverified);
        let http = url("http://127.0.0.1:8080/token");
        assert_eq!(token_trust(&http, false, true), TokenTrust::PlainHttp);
    }

    fn oauth(token_url: &str) -> config::Auth {
        config::Auth {
            kind: AuthKind::Oauth,
            username: None,
            password: None,
            token: None,
            token_url: Some(config::Text(token_url.into())),
            client_id: Some(config::Text("cid".into())),
            client_secret: Some(Secret::new("s3cret")),
            scope: None,
            token_insecure_skip_verify: None,
        }
    }

    #[test]
    fn a_token_url_is_http_or_https() {
        let timeout = Duration::from_secs(5);
        for (raw, wanted) in [
            ("ftp://idp.example/token", "scheme `ftp` is not supported"),
            ("idp.example/token", "not a URL"),
        ] {
            let err = Credentials::from_config(Some(&oauth(raw)), &[], timeout).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(
                    "invalid registry configuration `enterprise.schema_registry.auth.token_url`"
                ) && text.contains(wanted),
                "{text}"
            );
        }
        let ok = Credentials::from_config(Some(&oauth("https://idp.example/t")), &[], timeout);
        assert!(matches!(ok, Ok(Credentials::OAuth(_))), "{ok:?}");
    }

    /// A server answering every request with `head`, counting requests.
    async fn answering(head: String) -> (Url, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url(&format!("http://{}/", listener.local_addr().unwrap()));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let _ = stream.read(&mut buf).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn a_redirecting_token_endpoint_is_not_followed() {
        let ok = r#"{"access_token":"t","expires_in":60}"#;
        let (elsewhere, taken) = answering(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ok}",
            ok.len()
        ))
        .await;
        let (idp, asked) = answering(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ))
        .await;
        let Credentials::OAuth(client) = Credentials::from_config(
            Some(&oauth(idp.join("token").unwrap().as_str())),
            &[],
            Duration::from_secs(5),
        )
        .unwrap() else {
            unreachable!()
        };
        let counter = std::sync::atomic::AtomicU64::new(0);
        let err = client.token(&counter, None).await.unwrap_err();
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            taken.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "a 307 would have carried the client secret there"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("cannot get an oauth token: `POST /token` (http 307): the token endpoint redirects to `http://127.0.0.1:"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let basic = Credentials::Basic {
            username: "admin".into(),
            password: Secret::new("hunter2"),
        };
        let bearer = Credentials::Bearer(Secret::new("tok-123"));
        let oauth = Credentials::OAuth(OAuthClient {
            http: reqwest::Client::new(),
            token_url: Url::parse("https://auth.example/token").unwrap(),
            client_id: "cid".into(),
            client_secret: Secret::new("s3cret"),
            scope: Some("sr".into()),
            cache: tokio::sync::Mutex::new(Some(CachedToken {
                token: Secret::new("cached-token"),
                refresh_at: None,
            })),
        });
        let all = format!("{basic:?} {bearer:?} {oauth:?}");
        for secret in ["hunter2", "tok-123", "s3cret", "cached-token"] {
            assert!(!all.contains(secret), "{all}");
        }
        assert!(all.contains("admin") && all.contains("<redacted>"));
    }
}
