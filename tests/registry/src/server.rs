//! Serving: optional basic / bearer authentication, optional TLS and mutual TLS (rustls),
//! and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use base64::Engine;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::dialect::Dialect;
use crate::http::{self, respond};
use crate::registry::Registry;

/// How to serve.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Require `Authorization: Basic` with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Require `Authorization: Bearer` with this token.
    pub bearer_token: Option<String>,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<ServerConfig>>,
    /// Which registry to behave like.
    pub dialect: Dialect,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("basic_auth", &self.basic_auth.as_ref().map(|(u, _)| u))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field("tls", &self.tls.is_some())
            .field("dialect", &self.dialect)
            .finish()
    }
}

/// Errors while preparing TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn read_pem(path: &str) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.into(),
        source,
    })
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read_pem(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::Pem(format!("{path}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsSetupError::Pem(format!("{path}: no certificate found")));
    }
    Ok(certs)
}

/// Builds a rustls server configuration from PEM files; with `client_ca`, clients must
/// present a certificate signed by it.
pub fn tls_config(
    cert: &str,
    key: &str,
    client_ca: Option<&str>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(cert)?;
    let key_pem = read_pem(key)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsSetupError::Pem(format!("{key}: {e}")))?
        .ok_or_else(|| TlsSetupError::Pem(format!("{key}: no private key found")))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that completes the TLS handshake before handing connections to axum.
struct TlsListener {
    inner: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::warn!(%addr, "TLS handshake failed: {e}"),
                Err(_) => tracing::warn!(%addr, "TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[derive(Clone)]
struct Auth {
    basic: Option<String>,
    bearer: Option<String>,
}

async fn authenticate(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let allowed = presented.is_some_and(|value| {
        let basic_ok = auth.basic.as_ref().is_some_and(|expected| {
            value
                .strip_prefix("Basic ")
                .and_then(|b64| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .ok()
                })
                .is_some_and(|decoded| decoded == expected.as_bytes())
        });
        let bearer_ok = auth.bearer.as_ref().is_some_and(|token| {
            value
                .strip_prefix("Bearer ")
                .is_some_and(|t| t.trim() == token)
        });
        basic_ok || bearer_ok
    });
    if allowed {
        return next.run(request).await;
    }
    let mut response = respond(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({"error_code": 401, "message": "Unauthorized"}),
    );
    let challenge = if auth.basic.is_some() {
        "Basic realm=\"SchemaRegistry\""
    } else {
        "Bearer realm=\"SchemaRegistry\""
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
}

/// The full application: routes plus authentication when configured.
pub fn app(registry: Arc<Mutex<Registry>>, options: &ServeOptions) -> Router {
    let mut router = http::router(registry).layer(middleware::from_fn(log_request));
    if options.basic_auth.is_some() || options.bearer_token.is_some() {
        let auth = Arc::new(Auth {
            basic: options.basic_auth.as_ref().map(|(u, p)| format!("{u}:{p}")),
            bearer: options.bearer_token.clone(),
        });
        router = router.layer(middleware::from_fn_with_state(auth, authenticate));
    }
    router
}

/// Serves a fresh, empty registry on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, options: ServeOptions) -> io::Result<()> {
    serve_with_shutdown(listener, options, std::future::pending()).await
}

/// Serves a fresh, empty registry on `listener` until `shutdown` completes.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let registry = Arc::new(Mutex::new(Registry::with_dialect(options.dialect)));
    let app = app(registry, &options);
    match options.tls.clone() {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            let tls = TlsListener {
                inner: listener,
                acceptor: TlsAcceptor::from(config),
            };
            axum::serve(tls, app).with_graceful_shutdown(shutdown).await
        }
    }
}
