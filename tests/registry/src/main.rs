//! `sr-test-registry`: runs the in-memory Schema Registry until SIGTERM / SIGINT.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use sr_test_registry::{Dialect, ServeOptions, serve_with_shutdown, tls_config};
use tokio::net::TcpListener;

/// In-memory Confluent-compatible Schema Registry for tests and local runs.
#[derive(Debug, Parser)]
#[command(name = "sr-test-registry", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// Also write the bound port to this file.
    #[arg(long)]
    port_file: Option<std::path::PathBuf>,
    /// Require HTTP basic auth, given as `user:password`.
    #[arg(long, value_name = "USER:PASSWORD")]
    basic_auth: Option<String>,
    /// Require `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "TOKEN")]
    bearer_token: Option<String>,
    /// PEM certificate chain; enables HTTPS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<String>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<String>,
    /// PEM CA bundle; clients must present a certificate it signed (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<String>,
    /// Which registry to behave like: `confluent`, or `karapace-3.16` (Karapace 3.16.0's
    /// deviations from Confluent: no contexts, no writable modes, ...; see the README).
    #[arg(long, default_value = "confluent", value_name = "DIALECT")]
    dialect: Dialect,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

async fn run(cli: Cli) -> Result<(), String> {
    let basic_auth = match cli.basic_auth {
        None => None,
        Some(raw) => {
            let (user, password) = raw
                .split_once(':')
                .ok_or("--basic-auth must be USER:PASSWORD")?;
            Some((user.to_string(), password.to_string()))
        }
    };
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => {
            Some(tls_config(cert, key, cli.tls_client_ca.as_deref()).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = TcpListener::bind(&cli.listen)
        .await
        .map_err(|e| format!("cannot bind {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(path) = &cli.port_file {
        std::fs::write(path, addr.port().to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {scheme}://{addr}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    tracing::info!(dialect = %cli.dialect, "serving on {scheme}://{addr}");
    let options = ServeOptions {
        basic_auth,
        bearer_token: cli.bearer_token,
        tls,
        dialect: cli.dialect,
    };
    serve_with_shutdown(listener, options, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sr-test-registry: {e}");
            ExitCode::FAILURE
        }
    }
}
