//! `kafka-backup`: back up a Kafka cluster together with its Confluent Schema
//! Registry and restore both, so that every restored record still decodes.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), one file per command; `anyhow` lives only there.
//! - [`config`]: the configuration file (YAML or TOML), `${VAR}` expansion, checks
//!   that name the key and the line.
//! - [`storage`]: backup locations through `object_store` (local folder by default,
//!   `s3://`, `gs://`, `az://`, `memory://`).
//!
//! The design these modules grow into (model, graph, plan, planfile, apply,
//! registry, backup, restore, wire) is described in `docs/`.

pub mod backup;
pub mod cli;
pub mod config;
pub mod kafka;
pub mod manifest;
pub mod model;
pub mod progress;
pub mod registry;
pub mod segment;
pub mod storage;
