//! In-memory, Confluent-compatible Schema Registry for tests and local runs.
//!
//! [`registry::Registry`] is the pure, synchronous state machine holding every rule;
//! [`http`] maps it onto Confluent's REST API and [`server`] serves that over HTTP(S)
//! with optional basic / bearer authentication and (mutual) TLS. [`dialect`] names the
//! registries it can imitate: Confluent (the default) and Karapace 3.16.

pub mod dialect;
pub mod error;
pub mod http;
pub mod registry;
pub mod schema;
pub mod server;
pub mod types;

pub use dialect::Dialect;
pub use server::{ServeOptions, serve, serve_with_shutdown, tls_config};
