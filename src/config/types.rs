//! The configuration tree, key for key as the reference page writes it, and
//! the checks that need more than one key (contradictions, missing partners).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Problem;
use super::values::{Glob, OneOrMany, Secret, Text};

/// A whole configuration file. Every block is optional so that each example of
/// the reference page loads on its own; a command asks for what it needs.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `backup` or `restore`: which job this file describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Name of the backup inside the storage prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<Text>,
    /// Make an incremental backup continuing this one (`latest`: the newest
    /// finished backup in the storage taken with the same topic selection):
    /// only the records after it are taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_from: Option<Text>,
    /// The Kafka cluster a backup reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<KafkaSource>,
    /// The Kafka cluster a restore writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<KafkaTarget>,
    /// Where backups live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Which backups `prune` keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// A Prometheus endpoint while `backup` or `apply` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    #[serde(default)]
    pub enterprise: Enterprise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Backup,
    Restore,
}

/// `source:`: the cluster to back up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSource {
    /// `host:port` list (or one comma-separated string).
    #[serde(default)]
    pub bootstrap_servers: OneOrMany<Text>,
    #[serde(default)]
    pub topics: TopicSelection,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, ClientProperty>,
    /// Seconds a backup waits, per partition, for a transaction still open
    /// below the high watermark read at its start to finish (0: no wait).
    #[serde(default = "default_transaction_wait")]
    pub open_transaction_wait_secs: u64,
    /// Finish a backup whose partitions still have an open transaction after
    /// the wait: the records from the last stable offset on are left out and
    /// recorded in the manifest (`left_out_from`). Without it such a backup
    /// fails and publishes no manifest.
    #[serde(default)]
    pub allow_open_transactions: bool,
    /// Which consumer groups' committed offsets on the backed-up topics the
    /// backup takes.
    #[serde(default)]
    pub consumer_groups: GroupSelection,
}

impl Default for KafkaSource {
    fn default() -> Self {
        Self {
            bootstrap_servers: OneOrMany::default(),
            topics: TopicSelection::default(),
            properties: BTreeMap::new(),
            open_transaction_wait_secs: default_transaction_wait(),
            allow_open_transactions: false,
            consumer_groups: GroupSelection::default(),
        }
    }
}

/// `source.consumer_groups` (which groups' offsets a backup takes) and
/// `target.consumer_groups` (which of the backed-up groups a restore sets):
/// by group ID, every group unless narrowed; `enabled: false` turns the
/// feature off on that side.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSelection {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "all")]
    pub include: OneOrMany<Glob>,
    #[serde(default)]
    pub exclude: OneOrMany<Glob>,
}

impl Default for GroupSelection {
    fn default() -> Self {
        Self {
            enabled: true,
            include: all(),
            exclude: OneOrMany::default(),
        }
    }
}

impl GroupSelection {
    /// Whether the group `id` is taken (the feature on, and the patterns).
    pub fn is_selected(&self, id: &str) -> bool {
        self.enabled
            && self.include.iter().any(|g| g.is_match(id))
            && !self.exclude.iter().any(|g| g.is_match(id))
    }
}

/// Longest `source.open_transaction_wait_secs` accepted: a day.
pub const MAX_TRANSACTION_WAIT_SECS: u64 = 86_400;

fn default_transaction_wait() -> u64 {
    60
}

/// `source.topics`: which topics a backup takes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSelection {
    #[serde(default = "all")]
    pub include: OneOrMany<Glob>,
    #[serde(default)]
    pub exclude: OneOrMany<Glob>,
    /// Topics starting with `_` or `__` (internal ones) are left out unless
    /// named by an include pattern that itself starts with `_`.
    #[serde(default)]
    pub include_internal: bool,
}

impl Default for TopicSelection {
    fn default() -> Self {
        Self {
            include: all(),
            exclude: OneOrMany::default(),
            include_internal: false,
        }
    }
}

fn all() -> OneOrMany<Glob> {
    OneOrMany(vec![Glob::new("*").expect("`*` is a valid glob")])
}

/// `target:`: the cluster a restore writes to.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTarget {
    #[serde(default)]
    pub bootstrap_servers: OneOrMany<Text>,
    /// Which backed-up topics are restored (all of them unless narrowed),
    /// chosen by their backed-up names, before `topic_mapping` renames them.
    #[serde(default)]
    pub topics: RestoreTopics,
    /// Backed-up topic name to the name it is restored under.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_mapping: BTreeMap<String, Text>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, ClientProperty>,
    /// Which backed-up consumer groups get their offsets set in the target,
    /// translated to where the restored records landed.
    #[serde(default)]
    pub consumer_groups: GroupSelection,
}

/// `target.topics`: which backed-up topics a restore writes, by their
/// backed-up names. Unlike `source.topics` there is no internal-topic rule:
/// a backup holds only what its own selection took.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTopics {
    #[serde(default = "all")]
    pub include: OneOrMany<Glob>,
    #[serde(default)]
    pub exclude: OneOrMany<Glob>,
}

impl Default for RestoreTopics {
    fn default() -> Self {
        Self {
            include: all(),
            exclude: OneOrMany::default(),
        }
    }
}

impl RestoreTopics {
    /// Whether the backed-up topic `name` is restored.
    pub fn is_selected(&self, name: &str) -> bool {
        self.include.iter().any(|g| g.is_match(name))
            && !self.exclude.iter().any(|g| g.is_match(name))
    }

    /// Whether this is the default (every backed-up topic).
    pub fn is_all(&self) -> bool {
        *self == Self::default()
    }
}

/// A librdkafka property or `object_store` option value. Printed only when
/// its key is known to hold nothing secret ([`ClientProperty::is_safe_kafka`],
/// [`ClientProperty::is_safe_storage`]); `<redacted>` otherwise. A parse
/// error never shows its text.
#[derive(Debug, Clone)]
pub struct ClientProperty(pub Text);

impl<'de> Deserialize<'de> for ClientProperty {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = super::values::secret_text(deserializer)?;
        super::values::expand_secret(&raw)
            .map(|v| ClientProperty(Text(v)))
            .map_err(serde::de::Error::custom)
    }
}

impl ClientProperty {
    /// librdkafka properties whose values are shown: addresses, names,
    /// file locations, switches, sizes and times. Anything else (passwords,
    /// inline keys and certificates, JAAS and OAuth configs, extensions, and
    /// properties this list does not know) is redacted.
    pub fn is_safe_kafka(name: &str) -> bool {
        const EXACT: &[&str] = &[
            "bootstrap.servers",
            "metadata.broker.list",
            "security.protocol",
            "sasl.mechanism",
            "sasl.mechanisms",
            "sasl.username",
            "sasl.kerberos.service.name",
            "sasl.kerberos.principal",
            "sasl.kerberos.keytab",
            "sasl.oauthbearer.method",
            "sasl.oauthbearer.client.id",
            "sasl.oauthbearer.scope",
            "sasl.oauthbearer.token.endpoint.url",
            "ssl.ca.location",
            "ssl.certificate.location",
            "ssl.key.location",
            "ssl.keystore.location",
            "ssl.crl.location",
            "ssl.endpoint.identification.algorithm",
            "ssl.cipher.suites",
            "ssl.curves.list",
            "ssl.sigalgs.list",
            "client.id",
            "client.rack",
            "group.id",
            "group.instance.id",
            "acks",
            "compression.type",
            "compression.codec",
            "isolation.level",
            "auto.offset.reset",
            "partition.assignment.strategy",
            "broker.address.family",
            "debug",
            "log_level",
            "retries",
        ];
        const SUFFIXES: &[&str] = &[
            ".ms",
            ".bytes",
            ".kbytes",
            ".messages",
            ".max",
            ".num",
            ".size",
            ".count",
            ".retries",
        ];
        const PREFIXES: &[&str] = &[
            "enable.",
            "socket.",
            "reconnect.",
            "topic.metadata.",
            "queue.",
            "fetch.",
            "batch.",
            "retry.",
            "max.in.flight",
            "metadata.",
            "api.version",
            "linger.",
        ];
        let n = name.to_ascii_lowercase();
        EXACT.contains(&n.as_str())
            || SUFFIXES.iter().any(|s| n.ends_with(s))
            || PREFIXES.iter().any(|p| n.starts_with(p))
    }

    /// `object_store` options whose values are shown: where and how to
    /// connect, never with what credentials (keys, tokens, secrets, SAS,
    /// service accounts, proxy URLs, which may carry a password).
    pub fn is_safe_storage(name: &str) -> bool {
        const EXACT: &[&str] = &[
            "region",
            "endpoint",
            "bucket",
            "bucket_name",
            "allow_http",
            "aws_region",
            "aws_default_region",
            "aws_endpoint",
            "aws_endpoint_url",
            "aws_bucket",
            "aws_bucket_name",
            "aws_virtual_hosted_style_request",
            "aws_s3_express",
            "aws_imdsv1_fallback",
            "aws_metadata_endpoint",
            "aws_unsigned_payload",
            "aws_checksum_algorithm",
            "aws_skip_signature",
            "aws_conditional_put",
            "aws_request_payer",
            "aws_allow_http",
            "google_bucket",
            "google_bucket_name",
            "azure_storage_account_name",
            "account_name",
            "azure_container_name",
            "container_name",
            "azure_endpoint",
            "azure_storage_endpoint",
            "azure_use_emulator",
            "azure_use_fabric_endpoint",
            "azure_allow_http",
            "timeout",
            "connect_timeout",
            "pool_idle_timeout",
            "pool_max_idle_per_host",
            "http2_keep_alive_interval",
            "http2_keep_alive_timeout",
            "http2_keep_alive_while_idle",
            "http1_only",
            "http2_only",
            "allow_invalid_certificates",
            "user_agent",
        ];
        EXACT.contains(&name.to_ascii_lowercase().as_str())
    }
}

impl Serialize for ClientProperty {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // the key is not known here; `redacted_properties` handles printing
        self.0.serialize(s)
    }
}

/// `metrics:`: where `backup` and `apply` serve their Prometheus metrics
/// (`--metrics-addr` and `--metrics-linger` override it).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to listen on (`0.0.0.0:9464`; port 0 picks one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<Text>,
    /// Seconds to keep serving after the run ends, for a last scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger_secs: Option<u64>,
}

/// `retention:`: what `kafka-backup prune` keeps (its flags override these).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep the newest N backups of each series (source cluster and topic selection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep every backup finished within this long (`30d`, `36h`, `2w`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Text>,
}

/// `storage:`: where backups are written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// `filesystem` (default), `s3`, `gcs`, `azure` or `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// A whole location as one URL (`s3://bucket/prefix`, `file:///backups`,
    /// a plain path); instead of `backend`/`bucket`/`path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Text>,
    /// Folder for the `filesystem` backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Text>,
    /// Bucket (S3, GCS) or container (Azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Text>,
    /// Key prefix inside the bucket or folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Text>,
    /// Endpoint of an S3-compatible server (`http://127.0.0.1:9000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Text>,
    /// Allow plain HTTP to `endpoint` (tests and private networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Further `object_store` options (`aws_access_key_id`, ...); printed
    /// only for keys known to hold nothing secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, ClientProperty>,
    /// Client-side encryption of what a backup writes (`docs/backup-format.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// `storage.encryption`: the key backups are sealed with and read back by.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// 32 bytes as base64 (`openssl rand -base64 32`) or 64 hex digits;
    /// usually `${VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// A file holding the key instead (a mounted secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<Text>,
    /// The key's name, recorded in the manifest and named when a restore
    /// lacks it (its fingerprint when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Text>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[serde(alias = "local", alias = "file")]
    Filesystem,
    S3,
    #[serde(alias = "gs")]
    Gcs,
    #[serde(alias = "az", alias = "abfs")]
    Azure,
    Memory,
}

/// `enterprise:`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Enterprise {
    #[serde(default)]
    pub schema_registry: SchemaRegistry,
}

/// `enterprise.schema_registry:`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistry {
    /// Back up / restore the registry together with the topics.
    #[serde(default)]
    pub enabled: bool,
    /// Base URL of the registry (`https://schema-registry:8081`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub backup: RegistryBackup,
    #[serde(default)]
    pub restore: RegistryRestore,
    /// Schema types taken; all three when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_types: Option<Vec<SchemaType>>,
    #[serde(default)]
    pub protobuf: Protobuf,
    /// Seconds before one registry request is given up (and retried).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Registry requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
}

impl Default for SchemaRegistry {
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            auth: None,
            tls: None,
            backup: RegistryBackup::default(),
            restore: RegistryRestore::default(),
            schema_types: None,
            protobuf: Protobuf::default(),
            request_timeout_secs: default_timeout(),
            max_concurrency: default_concurrency(),
        }
    }
}

fn default_timeout() -> u64 {
    30
}

fn default_concurrency() -> usize {
    16
}

/// `enterprise.schema_registry.auth:`. Kept flat, as written in the file;
/// which fields go with which `type` is checked after parsing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(rename = "type")]
    pub kind: AuthKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A static bearer token (`type: bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Text>,
    /// Turns certificate verification of `token_url` off (`type: oauth`),
    /// and only there: the registry's `tls.insecure_skip_verify` never
    /// reaches the token endpoint. Filled in (`false`) for `type: oauth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_insecure_skip_verify: Option<bool>,
}

impl Auth {
    /// Whether the token endpoint's certificate goes unverified.
    pub fn token_insecure_skip_verify(&self) -> bool {
        self.token_insecure_skip_verify.unwrap_or(false)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    None,
    Basic,
    Bearer,
    #[serde(alias = "oidc")]
    Oauth,
    Mtls,
}

/// `enterprise.schema_registry.tls:`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM file of the CA that signed the registry's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<Text>,
    /// PEM client certificate for mTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<Text>,
    /// PEM private key of `client_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<Text>,
    /// Turns certificate verification off. Named so that nobody does it by accident.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `enterprise.schema_registry.backup:`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryBackup {
    /// `"*"` or a list of subject globs.
    #[serde(default = "all")]
    pub subjects: OneOrMany<Glob>,
    #[serde(default)]
    pub exclude: OneOrMany<Glob>,
    #[serde(default)]
    pub include_soft_deleted: bool,
    #[serde(default)]
    pub include_versions: IncludeVersions,
    /// Also take every subject a selected schema references, transitively.
    /// For the imports of Protobuf schemas, `protobuf.include_dependencies`
    /// decides when it is set.
    #[serde(default = "yes")]
    pub include_references: bool,
    /// Finish a backup whose records carry schema IDs the registry does not
    /// serve (they are recorded in the manifest). Without it such a backup
    /// fails, naming topic, partition, field and record count, and publishes
    /// no manifest.
    #[serde(default)]
    pub allow_unknown_ids: bool,
}

impl Default for RegistryBackup {
    fn default() -> Self {
        Self {
            subjects: all(),
            exclude: OneOrMany::default(),
            include_soft_deleted: false,
            include_versions: IncludeVersions::All,
            include_references: true,
            allow_unknown_ids: false,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncludeVersions {
    #[default]
    All,
    Latest,
}

/// `enterprise.schema_registry.restore:`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryRestore {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub strategy: Strategy,
    /// Keep track of source ID to target ID (needed by `rewrite_ids`).
    #[serde(default = "yes")]
    pub id_mapping: bool,
    /// Rewrite the 4-byte schema ID of each restored record through the map.
    /// Defaults to the opposite of `force_ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_ids: Option<bool>,
    /// Register schemas under their source IDs (IMPORT mode).
    #[serde(default)]
    pub force_ids: bool,
    /// JSON file `{"<source id>": <target id>}` pinning IDs by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_mapping_file: Option<Text>,
    /// Backed-up subject name to the name it is restored under.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subject_mapping: BTreeMap<String, Text>,
    /// Backed-up context (`.prod`) to target context (`.dr`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context_mapping: BTreeMap<String, Text>,
    /// Subjects of the backup to restore.
    #[serde(default = "all")]
    pub subjects: OneOrMany<Glob>,
    #[serde(default)]
    pub exclude: OneOrMany<Glob>,
    /// Compatibility level set on every restored subject instead of the backed-up one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_compatibility: Option<Compatibility>,
    /// Register versions the target's compatibility level would refuse, by
    /// loosening the subject's level for the registration.
    #[serde(default)]
    pub force_register: bool,
    /// Also restore the global (and per-context) compatibility level and
    /// mode where the backup's differ from the target's. Off by default:
    /// they govern every subject of the target, not only restored ones.
    #[serde(default)]
    pub restore_global_settings: bool,
    /// What a record whose schema ID is not in the map does: `fail`,
    /// `passthrough` (written unchanged) or `skip` (left out).
    #[serde(default)]
    pub missing_id_policy: MissingIdPolicy,
    /// Per-topic overrides of `missing_id_policy` (topic glob to policy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_id_policy_topics: BTreeMap<String, MissingIdPolicy>,
    /// Which record fields carry a schema ID to rewrite: `key` and `value`,
    /// each `auto` (when the backup shows the field is framed: see
    /// `docs/restore.md`), `always` or `never`.
    #[serde(default)]
    pub rewrite_fields: RewriteFields,
    /// Per-topic overrides of `rewrite_fields` (topic glob to `key` and/or
    /// `value`): an exact name first, then the first glob in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rewrite_fields_topics: BTreeMap<String, RewriteFieldsOverride>,
}

/// `rewrite_fields`: how the key and the value of records are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteFields {
    #[serde(default)]
    pub key: FieldRewrite,
    #[serde(default)]
    pub value: FieldRewrite,
}

/// One entry of `rewrite_fields_topics`: what it leaves out follows
/// `rewrite_fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteFieldsOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<FieldRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<FieldRewrite>,
}

/// Whether a record field's leading `0x00` + 4 bytes are a schema ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldRewrite {
    /// Decided per topic from the backup (a subject for the field, or every
    /// record of it framed with a registered ID).
    #[default]
    Auto,
    /// Every framed value of the field is rewritten.
    Always,
    /// The field is written as backed up: a raw key that starts with 0x00
    /// is no schema ID.
    Never,
}

impl RegistryRestore {
    /// How `topic`'s key and value are treated: an exact key of
    /// `rewrite_fields_topics` first, then the first glob (in key order)
    /// that matches, each field falling back to `rewrite_fields`.
    pub fn rewrite_fields_for(&self, topic: &str) -> RewriteFields {
        let found = self.rewrite_fields_topics.get(topic).or_else(|| {
            self.rewrite_fields_topics
                .iter()
                .find(|(pattern, _)| Glob::new(pattern).is_ok_and(|g| g.is_match(topic)))
                .map(|(_, o)| o)
        });
        let d = self.rewrite_fields;
        match found {
            Some(o) => RewriteFields {
                key: o.key.unwrap_or(d.key),
                value: o.value.unwrap_or(d.value),
            },
            None => d,
        }
    }
}

impl Default for RegistryRestore {
    fn default() -> Self {
        Self {
            enabled: true,
            strategy: Strategy::Preserve,
            id_mapping: true,
            rewrite_ids: None,
            force_ids: false,
            id_mapping_file: None,
            subject_mapping: BTreeMap::new(),
            context_mapping: BTreeMap::new(),
            subjects: all(),
            exclude: OneOrMany::default(),
            set_compatibility: None,
            force_register: false,
            restore_global_settings: false,
            missing_id_policy: MissingIdPolicy::Fail,
            missing_id_policy_topics: BTreeMap::new(),
            rewrite_fields: RewriteFields::default(),
            rewrite_fields_topics: BTreeMap::new(),
        }
    }
}

impl RegistryRestore {
    /// `rewrite_ids` as it applies: written, or the opposite of `force_ids`.
    pub fn rewrite_ids(&self) -> bool {
        self.rewrite_ids.unwrap_or(!self.force_ids)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Keep what the target has, add what is missing.
    #[default]
    Preserve,
    /// Make each restored subject equal to the backup.
    Overwrite,
    /// Touch only subjects the target does not have.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingIdPolicy {
    #[default]
    Fail,
    Passthrough,
    Skip,
}

/// The seven compatibility levels of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    Avro,
    #[serde(alias = "JSONSCHEMA", alias = "JSON_SCHEMA")]
    Json,
    Protobuf,
}

/// `enterprise.schema_registry.protobuf:`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Protobuf {
    /// Take the `.proto` files a Protobuf schema imports (its references),
    /// transitively, whatever the selection says of their subjects. Decides
    /// for the imports of Protobuf schemas only; the references of Avro and
    /// JSON schemas follow `backup.include_references`. Unset, it follows
    /// `backup.include_references` too (so `true` unless that is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_dependencies: Option<bool>,
}

impl Protobuf {
    /// Whether a backup pulls in the imports of Protobuf schemas.
    pub fn takes_imports(&self, backup: &RegistryBackup) -> bool {
        self.include_dependencies
            .unwrap_or(backup.include_references)
    }
}

/// What the checks after parsing found.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

const SR: &str = "enterprise.schema_registry";

/// The checks that need more than one key. Positions are filled in by the caller.
pub(super) fn check(config: &Config) -> Findings {
    let mut f = Findings::default();
    let sr = &config.enterprise.schema_registry;
    let restore = &sr.restore;

    if restore.force_ids && restore.rewrite_ids == Some(true) {
        f.errors.push(
            Problem::at(
                &format!("{SR}.restore.force_ids"),
                "`force_ids: true` cannot be combined with `rewrite_ids: true`",
            )
            .hint("force_ids keeps the source IDs, so there is nothing to rewrite: drop one of the two"),
        );
    }
    if restore.rewrite_ids() && !restore.id_mapping {
        f.errors.push(
            Problem::at(
                &format!("{SR}.restore.id_mapping"),
                "`id_mapping: false` cannot be combined with rewriting IDs",
            )
            .hint("rewriting record IDs needs the source-to-target ID map: set `id_mapping: true` or `rewrite_ids: false`"),
        );
    }
    if restore.force_ids && restore.id_mapping_file.is_some() {
        f.errors.push(
            Problem::at(
                &format!("{SR}.restore.id_mapping_file"),
                "`id_mapping_file` cannot be combined with `force_ids: true`",
            )
            .hint("force_ids keeps every source ID; an ID map moves them"),
        );
    }
    check_mapping(
        &mut f,
        &format!("{SR}.restore.subject_mapping"),
        &restore.subject_mapping,
    );
    check_mapping(
        &mut f,
        &format!("{SR}.restore.context_mapping"),
        &restore.context_mapping,
    );
    for (key, value) in &restore.context_mapping {
        for (side, ctx) in [("key", key.as_str()), ("value", value.as_str())] {
            if !ctx.starts_with('.') || ctx.contains(':') {
                f.errors.push(Problem::at(
                    &format!("{SR}.restore.context_mapping"),
                    format!("context {side} `{ctx}` must start with `.` and hold no `:` (for example `.prod`)"),
                ));
            }
        }
    }
    for pattern in restore.missing_id_policy_topics.keys() {
        if let Err(e) = Glob::new(pattern) {
            f.errors.push(Problem::at(
                &format!("{SR}.restore.missing_id_policy_topics"),
                e,
            ));
        }
    }
    for pattern in restore.rewrite_fields_topics.keys() {
        if let Err(e) = Glob::new(pattern) {
            f.errors.push(Problem::at(
                &format!("{SR}.restore.rewrite_fields_topics"),
                e,
            ));
        }
    }
    let fields_set = restore.rewrite_fields != RewriteFields::default()
        || !restore.rewrite_fields_topics.is_empty();
    if fields_set && !restore.rewrite_ids() {
        f.errors.push(
            Problem::at(
                &format!("{SR}.restore.rewrite_fields"),
                "`rewrite_fields` / `rewrite_fields_topics` have no effect without rewriting IDs",
            )
            .hint("record IDs are rewritten only with `rewrite_ids: true` (the default unless `force_ids`): drop these keys or turn rewriting on"),
        );
    }
    if let Some(types) = &sr.schema_types
        && types.is_empty()
    {
        f.errors.push(
            Problem::at(
                &format!("{SR}.schema_types"),
                "an empty list selects no schema at all",
            )
            .hint("leave `schema_types` out to take AVRO, JSON and PROTOBUF"),
        );
    }
    if let Some(source) = &config.source
        && source.open_transaction_wait_secs > MAX_TRANSACTION_WAIT_SECS
    {
        f.errors.push(
            Problem::at(
                "source.open_transaction_wait_secs",
                format!(
                    "{} seconds is more than a day ({MAX_TRANSACTION_WAIT_SECS})",
                    source.open_transaction_wait_secs
                ),
            )
            .hint("a transaction open that long is hanging: set `allow_open_transactions: true` to back up without its records"),
        );
    }
    if sr.max_concurrency == 0 {
        f.errors.push(Problem::at(
            &format!("{SR}.max_concurrency"),
            "must be at least 1",
        ));
    }
    if sr.request_timeout_secs == 0 {
        f.errors.push(Problem::at(
            &format!("{SR}.request_timeout_secs"),
            "must be at least 1",
        ));
    }
    if let Some(url) = &sr.url {
        match url::Url::parse(url.as_str()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                if has_userinfo(&u) {
                    f.errors.push(
                        Problem::at(
                            &format!("{SR}.url"),
                            "credentials in the URL would be printed and logged",
                        )
                        .hint("use `auth: {type: basic, username: ..., password: ...}`"),
                    );
                }
            }
            Ok(u) => f.errors.push(Problem::at(
                &format!("{SR}.url"),
                format!(
                    "scheme `{}` is not supported: use `http` or `https`",
                    u.scheme()
                ),
            )),
            Err(e) => f
                .errors
                .push(Problem::at(&format!("{SR}.url"), format!("not a URL: {e}"))),
        }
    } else if sr.enabled {
        f.warnings.push(
            Problem::at(
                &format!("{SR}.enabled"),
                "the registry is enabled but `url` is not set",
            )
            .hint("backup, plan and apply will need `enterprise.schema_registry.url`"),
        );
    }
    if let Some(auth) = &sr.auth {
        check_auth(&mut f, auth, sr.tls.as_ref());
    }
    if let Some(tls) = &sr.tls {
        match (&tls.client_cert, &tls.client_key) {
            (Some(_), None) => f.errors.push(Problem::at(
                &format!("{SR}.tls.client_cert"),
                "`client_cert` needs `client_key`",
            )),
            (None, Some(_)) => f.errors.push(Problem::at(
                &format!("{SR}.tls.client_key"),
                "`client_key` needs `client_cert`",
            )),
            _ => {}
        }
        if tls.insecure_skip_verify && tls.ca_cert.is_some() {
            f.errors.push(Problem::at(
                &format!("{SR}.tls.insecure_skip_verify"),
                "`insecure_skip_verify: true` makes `ca_cert` pointless: certificates are not checked at all",
            ));
        }
        if tls.insecure_skip_verify {
            f.warnings.push(Problem::at(
                &format!("{SR}.tls.insecure_skip_verify"),
                "TLS certificate verification is turned off",
            ));
        }
    }
    if let Some(storage) = &config.storage {
        check_storage(&mut f, storage);
    }
    if let Some(target) = &config.target {
        check_mapping(&mut f, "target.topic_mapping", &target.topic_mapping);
    }
    if let Some(id) = &config.backup_id
        && let Err(e) = crate::storage::check_backup_id(id.as_str())
    {
        f.errors.push(Problem::at("backup_id", e));
    }
    if let Some(retention) = &config.retention {
        if retention.keep_last == Some(0) {
            f.errors.push(Problem::at(
                "retention.keep_last",
                "0 keeps no backup by count; give 1 or more (or leave it out)",
            ));
        }
        if let Some(within) = &retention.keep_within
            && let Err(e) = crate::prune::parse_duration(within.as_str())
        {
            f.errors.push(Problem::at("retention.keep_within", e));
        }
    }
    if let Some(from) = &config.incremental_from {
        if from.as_str() != crate::backup::incremental::LATEST
            && let Err(e) = crate::storage::check_backup_id(from.as_str())
        {
            f.errors.push(Problem::at("incremental_from", e));
        }
        if config.backup_id.as_ref().map(|b| b.as_str()) == Some(from.as_str()) {
            f.errors.push(Problem::at(
                "incremental_from",
                "names the backup itself (`backup_id`)",
            ));
        }
    }
    f
}

fn check_mapping(f: &mut Findings, key: &str, mapping: &BTreeMap<String, Text>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (from, to) in mapping {
        if from.is_empty() || to.as_str().is_empty() {
            f.errors
                .push(Problem::at(key, "names in a mapping cannot be empty"));
            continue;
        }
        if let Some(first) = seen.insert(to.as_str(), from) {
            f.errors.push(Problem::at(
                key,
                format!("`{first}` and `{from}` are both mapped to `{to}`"),
            ));
        }
    }
}

fn check_auth(f: &mut Findings, auth: &Auth, tls: Option<&Tls>) {
    let key = |k: &str| format!("{SR}.auth.{k}");
    let set: BTreeSet<&str> = [
        ("username", auth.username.is_some()),
        ("password", auth.password.is_some()),
        ("token", auth.token.is_some()),
        ("token_url", auth.token_url.is_some()),
        ("client_id", auth.client_id.is_some()),
        ("client_secret", auth.client_secret.is_some()),
        ("scope", auth.scope.is_some()),
        (
            "token_insecure_skip_verify",
            auth.token_insecure_skip_verify.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(k, is_set)| is_set.then_some(k))
    .collect();
    let (kind, needed, allowed): (&str, &[&str], &[&str]) = match auth.kind {
        AuthKind::None => ("none", &[], &[]),
        AuthKind::Basic => (
            "basic",
            &["username", "password"],
            &["username", "password"],
        ),
        AuthKind::Bearer => ("bearer", &["token"], &["token"]),
        AuthKind::Oauth => (
            "oauth",
            &["token_url", "client_id", "client_secret"],
            &[
                "token_url",
                "client_id",
                "client_secret",
                "scope",
                "token_insecure_skip_verify",
            ],
        ),
        AuthKind::Mtls => ("mtls", &[], &[]),
    };
    for k in needed {
        if !set.contains(k) {
            f.errors.push(Problem::at(
                &format!("{SR}.auth.type"),
                format!("`type: {kind}` needs `auth.{k}`"),
            ));
        }
    }
    for k in &set {
        if !allowed.contains(k) {
            f.errors.push(Problem::at(
                &key(k),
                format!("`{k}` is not used by `type: {kind}`"),
            ));
        }
    }
    if let Some(url) = &auth.token_url {
        match url::Url::parse(url.as_str()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                if !u.username().is_empty() || u.password().is_some() {
                    f.errors.push(
                        Problem::at(
                            &key("token_url"),
                            "credentials in the URL would be printed and logged",
                        )
                        .hint("use `client_id` and `client_secret`"),
                    );
                }
                if auth.token_insecure_skip_verify() && u.scheme() == "http" {
                    f.errors.push(Problem::at(
                        &key("token_insecure_skip_verify"),
                        "an `http://` token_url has no certificate to verify",
                    ));
                }
            }
            Ok(u) => f.errors.push(Problem::at(
                &key("token_url"),
                format!(
                    "scheme `{}` is not supported: use `http` or `https`",
                    u.scheme()
                ),
            )),
            Err(e) => f
                .errors
                .push(Problem::at(&key("token_url"), format!("not a URL: {e}"))),
        }
    }
    if auth.kind == AuthKind::Oauth && auth.token_insecure_skip_verify() {
        f.warnings.push(Problem::at(
            &key("token_insecure_skip_verify"),
            "certificate verification of the token endpoint is turned off: `client_secret` goes to whoever answers at `token_url`",
        ));
    }
    if auth.kind == AuthKind::Mtls && tls.is_none_or(|t| t.client_cert.is_none()) {
        f.errors.push(
            Problem::at(
                &format!("{SR}.auth.type"),
                "`type: mtls` needs `tls.client_cert` and `tls.client_key`",
            )
            .hint("add a `tls:` block beside `auth:`"),
        );
    }
}

/// Whether a URL carries a user name or password (`https://user:pw@host`).
fn has_userinfo(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

fn check_storage(f: &mut Findings, storage: &Storage) {
    if let Some(e) = &storage.encryption {
        match (&e.key, &e.key_file) {
            (Some(_), Some(_)) => f.errors.push(Problem::at(
                "storage.encryption.key_file",
                "`key` and `key_file` cannot both be set",
            )),
            (None, None) => f.errors.push(
                Problem::at("storage.encryption", "neither `key` nor `key_file` is set")
                    .hint("`key: ${BACKUP_KEY}` with a key from `openssl rand -base64 32`"),
            ),
            (Some(key), None) => {
                if let Err(reason) = crate::crypto::Key::parse(key.expose(), None) {
                    f.errors.push(Problem::at("storage.encryption.key", reason));
                }
            }
            (None, Some(_)) => {}
        }
    }
    if let Some(endpoint) = &storage.endpoint
        && url::Url::parse(endpoint.as_str()).is_ok_and(|u| has_userinfo(&u))
    {
        f.errors.push(
            Problem::at(
                "storage.endpoint",
                "credentials in the URL would be printed and logged",
            )
            .hint("use the usual environment variables or `storage.options`"),
        );
    }
    if let Some(url) = &storage.url {
        for (name, set) in [
            ("backend", storage.backend.is_some()),
            ("path", storage.path.is_some()),
            ("bucket", storage.bucket.is_some()),
        ] {
            if set {
                f.errors.push(
                    Problem::at(
                        &format!("storage.{name}"),
                        format!("`{name}` cannot be combined with `url`"),
                    )
                    .hint("`url` already names the whole location"),
                );
            }
        }
        if let Err(e) = crate::storage::Location::parse(url.as_str()) {
            f.errors.push(Problem::at("storage.url", e.to_string()));
        }
        return;
    }
    let backend = storage.backend.unwrap_or(Backend::Filesystem);
    match backend {
        Backend::Filesystem => {
            if storage.bucket.is_some() {
                f.errors.push(Problem::at(
                    "storage.bucket",
                    "the `filesystem` backend has no bucket: use `path`",
                ));
            }
        }
        Backend::Memory => {}
        Backend::S3 | Backend::Gcs | Backend::Azure => {
            if storage.bucket.is_none() {
                f.errors.push(Problem::at(
                    "storage.backend",
                    format!("backend `{}` needs `bucket`", backend_name(backend)),
                ));
            }
            if storage.path.is_some() {
                f.errors.push(Problem::at(
                    "storage.path",
                    "`path` is for the `filesystem` backend: use `prefix`",
                ));
            }
        }
    }
    if backend != Backend::S3 {
        for (name, set) in [
            ("region", storage.region.is_some()),
            ("endpoint", storage.endpoint.is_some()),
            ("allow_http", storage.allow_http.is_some()),
        ] {
            if set {
                f.errors.push(Problem::at(
                    &format!("storage.{name}"),
                    format!("`{name}` is only used by the `s3` backend"),
                ));
            }
        }
    }
}

pub(crate) fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Filesystem => "filesystem",
        Backend::S3 => "s3",
        Backend::Gcs => "gcs",
        Backend::Azure => "azure",
        Backend::Memory => "memory",
    }
}

impl Config {
    /// Writes the defaults that depend on other keys, so that the resolved
    /// configuration shows what will really be done.
    pub(super) fn fill_defaults(&mut self) {
        let restore = &mut self.enterprise.schema_registry.restore;
        restore.rewrite_ids = Some(restore.rewrite_ids());
        if let Some(auth) = &mut self.enterprise.schema_registry.auth
            && auth.kind == AuthKind::Oauth
        {
            auth.token_insecure_skip_verify = Some(auth.token_insecure_skip_verify());
        }
    }

    /// The configuration as `validate` prints it: resolved, secrets redacted.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("the configuration always serializes");
        type IsSafe = fn(&str) -> bool;
        let sections: [(&str, IsSafe); 3] = [
            ("/source/properties", ClientProperty::is_safe_kafka),
            ("/target/properties", ClientProperty::is_safe_kafka),
            ("/storage/options", ClientProperty::is_safe_storage),
        ];
        for (pointer, safe) in sections {
            if let Some(map) = value.pointer_mut(pointer).and_then(|v| v.as_object_mut()) {
                for (k, v) in map.iter_mut() {
                    // a URL is safe to show, unless it carries a password
                    let userinfo = v
                        .as_str()
                        .and_then(|text| url::Url::parse(text).ok())
                        .is_some_and(|u| has_userinfo(&u));
                    if !safe(k) || userinfo {
                        *v = serde_json::Value::String(super::REDACTED.into());
                    }
                }
            }
        }
        value
    }
}
