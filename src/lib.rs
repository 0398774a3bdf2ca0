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
//! - [`canonical`]: canonical forms of schema text, to compare schemas by meaning.
//! - [`graph`]: the dependency graph of schema versions (petgraph), cycles and order.
//! - [`plan`]: the pure planner (selection, diff, IDs, ordered steps) and its renderings.
//! - [`planfile`]: the plan file: deterministic JSON with a SHA-256 digest.
//! - [`model`]: registry snapshots as plain ordered data (subjects, versions, IDs,
//!   references, levels, modes) with a SHA-256 fingerprint.
//! - [`registry`]: the registry adapter: a small trait, its HTTP client (auth, TLS,
//!   retries) and the snapshot fetch with the reference closure.
//! - [`kafka`]: rdkafka clients, topic selection, watermarks, topic configs.
//! - [`interrupt`]: Ctrl-C and SIGTERM: the registry steps stop cleanly, putting back
//!   what they set temporarily.
//! - [`lease`]: one run at a time per backup ID and per target, through storage.
//! - [`segment`]: the record segment format (zstd, length-prefixed, SHA-256).
//! - [`manifest`]: `manifest.json`, written last; a reader that checks every file.
//! - [`backup`]: the `backup` command's work: topics into segments, the registry
//!   into the reference layout (`backup::registry`); `backup --group` shares one
//!   backup among processes through a Kafka consumer group (`backup::group`,
//!   with the shared `backup::frame` and the per-partition `backup::parts`).
//! - [`progress`]: progress bars on a terminal.
//! - [`gather`]: reads the planner's two inputs (backup snapshot, live target snapshot).
//! - [`wire`]: the Confluent wire format and the pure schema-ID rewrite.
//! - [`apply`]: the applier's registry half: runs a plan's steps, journalled, and writes the ID map.
//! - [`restore`]: the applier's data half: topics back into the target, schema IDs rewritten.
//! - [`verify`]: proves a restore: target registry and topics against the backup.

pub mod apply;
pub mod backup;
pub mod canonical;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod gather;
pub mod graph;
pub mod heap;
pub mod interrupt;
pub mod kafka;
pub mod lease;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod planfile;
pub mod progress;
pub mod prune;
pub mod registry;
pub mod restore;
pub mod segment;
pub mod signals;
pub mod storage;
pub mod verify;
pub mod wire;
