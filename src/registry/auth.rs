//! Credentials sent to the registry: basic, a static bearer token, or an OAuth
//! client-credentials token fetched from `token_url`, cached, and refreshed
//! before it runs out. No credential reaches a log, an error or `Debug` output.

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
    /// The credentials `auth:` describes.
    pub(crate) fn from_config(auth: Option<&config::Auth>) -> Result<Self, RegistryError> {
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
                Credentials::OAuth(OAuthClient {
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
        http: &reqwest::Client,
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
        let fresh = self.fetch(http, counter).await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
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
        let response = http
            .post(self.token_url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| failure(None, super::client::transport_message(&e)))?;
        let status = response.status();
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

    #[test]
    fn debug_output_holds_no_secret() {
        let basic = Credentials::Basic {
            username: "admin".into(),
            password: Secret::new("hunter2"),
        };
        let bearer = Credentials::Bearer(Secret::new("tok-123"));
        let oauth = Credentials::OAuth(OAuthClient {
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
