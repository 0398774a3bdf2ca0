//! Kafka clients (rdkafka): client configuration from the config file, the
//! topic selection, partition and watermark metadata, topic configs.

pub mod groups;
pub mod headers;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::{ClientProperty, Glob, OneOrMany, REDACTED, Text, TopicSelection};

/// How long one metadata or admin request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why talking to Kafka failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("no `bootstrap_servers` given for the {side} cluster")]
    NoBootstrap { side: &'static str },
    #[error("cannot create a Kafka client for `{servers}`: {source}")]
    Client {
        servers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "cannot read metadata from `{servers}`: {source}\nhint: is the broker up and reachable from here?"
    )]
    Metadata {
        servers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot read the watermarks of `{topic}` partition {partition}: {source}")]
    Watermarks {
        topic: String,
        partition: i32,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot describe the configs of topic `{topic}`: {reason}")]
    DescribeConfigs { topic: String, reason: String },
    #[error(
        "consumer groups of `{servers}`: {reason}\nhint: the client needs DESCRIBE on the groups (and READ to commit offsets); `source.consumer_groups.enabled: false` (backup) or `target.consumer_groups.enabled: false` (restore) leaves the groups out"
    )]
    Groups { servers: String, reason: String },
}

/// `error` without the value of a client property librdkafka refused, unless
/// the property is known to hold nothing secret: the refusal
/// (`ClientConfig`: a misspelled `sasl.pasword`, a property this build of
/// librdkafka lacks) carries the value, which may be a password.
pub fn redact_config_error(error: rdkafka::error::KafkaError) -> rdkafka::error::KafkaError {
    match error {
        rdkafka::error::KafkaError::ClientConfig(code, description, key, value)
            if !ClientProperty::is_safe_kafka(&key) =>
        {
            let description = if value.is_empty() {
                description
            } else {
                description.replace(&value, REDACTED)
            };
            rdkafka::error::KafkaError::ClientConfig(code, description, key, REDACTED.to_owned())
        }
        other => other,
    }
}

/// Client context that does not report reaching the end of a partition as an
/// error: with `enable.partition.eof` it is how a backup knows it is done.
pub struct EofIsNormal;

impl rdkafka::ClientContext for EofIsNormal {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofIsNormal {}

/// Connection settings of one cluster (source or target).
#[derive(Debug, Clone)]
pub struct Cluster {
    pub servers: String,
    pub properties: BTreeMap<String, String>,
}

impl Cluster {
    pub fn new(
        side: &'static str,
        servers: &OneOrMany<Text>,
        properties: &BTreeMap<String, ClientProperty>,
    ) -> Result<Self, KafkaError> {
        let servers: Vec<&str> = servers
            .iter()
            .flat_map(|s| s.as_str().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(KafkaError::NoBootstrap { side });
        }
        let unverified = properties.iter().any(|(k, v)| {
            k == "enable.ssl.certificate.verification"
                && v.0.as_str().trim().eq_ignore_ascii_case("false")
        });
        if unverified {
            tracing::warn!(
                "`enable.ssl.certificate.verification: false` for the {side} cluster: its brokers' certificates are not verified"
            );
        }
        Ok(Self {
            servers: servers.join(","),
            properties: properties
                .iter()
                .map(|(k, v)| (k.clone(), v.0.to_string()))
                .collect(),
        })
    }

    /// Why a client of this cluster could not be created, with no secret
    /// property value in it ([`redact_config_error`]).
    pub fn client_error(&self, source: rdkafka::error::KafkaError) -> KafkaError {
        KafkaError::Client {
            servers: self.servers.clone(),
            source: redact_config_error(source),
        }
    }

    /// A client configuration with the user's properties on top of ours.
    pub fn client_config(&self, ours: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.servers);
        // some Kafka-protocol servers answer a fetch with the whole partition
        // tail whatever its size: let librdkafka take large responses
        config.set("receive.message.max.bytes", "2147483647");
        for (k, v) in ours {
            config.set(*k, *v);
        }
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    /// A client for metadata, watermarks and the cluster ID. It joins no
    /// group: a consumer with a `group.id` takes 100 ms to a second to close.
    /// Its watermarks are `read_committed` ones (librdkafka's default): the
    /// high one is the last stable offset.
    pub fn metadata_consumer(&self) -> Result<BaseConsumer, KafkaError> {
        self.client_config(&[("enable.auto.commit", "false")])
            .create()
            .map_err(|source| self.client_error(source))
    }

    /// Like [`Cluster::metadata_consumer`], with the isolation level set
    /// whatever the user's properties say: `read_committed` watermarks end at
    /// the last stable offset, `read_uncommitted` ones count the records of
    /// open transactions too.
    pub fn watermark_consumer(&self, committed: bool) -> Result<BaseConsumer, KafkaError> {
        let mut config = self.client_config(&[("enable.auto.commit", "false")]);
        let level = if committed {
            "read_committed"
        } else {
            "read_uncommitted"
        };
        config.set("isolation.level", level);
        config.create().map_err(|source| self.client_error(source))
    }

    pub fn admin(&self) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
        self.client_config(&[])
            .create()
            .map_err(|source| self.client_error(source))
    }
}

/// One topic as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<i32>,
    pub replication_factor: usize,
}

/// Whether `name` is selected by the include/exclude globs. Internal topics
/// (`_schemas`, `__consumer_offsets`) need an include pattern that starts with
/// `_`, or `include_internal`.
pub fn is_selected(selection: &TopicSelection, name: &str) -> bool {
    let included = |globs: &OneOrMany<Glob>| globs.iter().any(|g| g.is_match(name));
    if !included(&selection.include) || included(&selection.exclude) {
        return false;
    }
    if name.starts_with('_') && !selection.include_internal {
        return selection
            .include
            .iter()
            .any(|g| g.as_str().starts_with('_') && g.is_match(name));
    }
    true
}

/// The topics of the cluster that the selection takes, sorted by name.
pub fn list_topics(
    consumer: &BaseConsumer,
    cluster: &Cluster,
    selection: &TopicSelection,
) -> Result<Vec<TopicInfo>, KafkaError> {
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|source| KafkaError::Metadata {
            servers: cluster.servers.clone(),
            source,
        })?;
    let mut topics: Vec<TopicInfo> = metadata
        .topics()
        .iter()
        .filter(|t| is_selected(selection, t.name()))
        .map(|t| {
            let mut partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            partitions.sort_unstable();
            TopicInfo {
                name: t.name().to_owned(),
                replication_factor: t
                    .partitions()
                    .first()
                    .map_or(1, |p| p.replicas().len().max(1)),
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// What a cluster holds: topic names with their partition counts (topics
/// whose metadata is in error left out), and how many brokers answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub topics: BTreeMap<String, usize>,
    pub brokers: usize,
}

/// The cluster's [`Layout`], in one metadata request.
pub fn layout<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    cluster: &Cluster,
) -> Result<Layout, KafkaError> {
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|source| KafkaError::Metadata {
            servers: cluster.servers.clone(),
            source,
        })?;
    Ok(Layout {
        topics: metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect(),
        brokers: metadata.brokers().len().max(1),
    })
}

/// Low and high watermark of one partition.
pub fn watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    consumer
        .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
        .map_err(|source| KafkaError::Watermarks {
            topic: topic.to_owned(),
            partition,
            source,
        })
}

/// Where a partition starts and ends, read before anything else of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndOffsets {
    /// Low watermark: the first offset the partition still holds.
    pub low: i64,
    /// High watermark (`read_uncommitted`): the offset after the last record
    /// written, open transactions included.
    pub high: i64,
    /// Last stable offset (`read_committed` end offset): the first offset of
    /// the oldest open transaction, `high` when none is open.
    pub last_stable: i64,
}

/// Reads a partition's [`EndOffsets`]: the last stable offset with a
/// `read_committed` client, then the high watermark with a `read_uncommitted`
/// one (in this order, so that `last_stable <= high`).
pub fn end_offsets(
    committed: &BaseConsumer,
    uncommitted: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<EndOffsets, KafkaError> {
    let (_, last_stable) = watermarks(committed, topic, partition)?;
    let (low, high) = watermarks(uncommitted, topic, partition)?;
    Ok(EndOffsets {
        low,
        high,
        last_stable: last_stable.min(high),
    })
}

/// The configs of a topic that were set on it (not broker defaults), so that a
/// restore can create the topic alike. Sensitive values are left out.
pub async fn topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<BTreeMap<String, String>, KafkaError> {
    let err = |reason: String| KafkaError::DescribeConfigs {
        topic: topic.to_owned(),
        reason,
    };
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for result in results {
        let resource = result.map_err(|e| err(e.to_string()))?;
        for entry in resource.entries {
            let set_on_topic = matches!(entry.source, ConfigSource::DynamicTopic)
                || (matches!(entry.source, ConfigSource::Unknown) && !entry.is_default);
            if set_on_topic
                && !entry.is_sensitive
                && let Some(value) = entry.value
            {
                out.insert(entry.name, value);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(include: &[&str], exclude: &[&str]) -> TopicSelection {
        TopicSelection {
            include: OneOrMany(include.iter().map(|g| Glob::new(g).unwrap()).collect()),
            exclude: OneOrMany(exclude.iter().map(|g| Glob::new(g).unwrap()).collect()),
            include_internal: false,
        }
    }

    #[test]
    fn selection_follows_globs_and_keeps_internal_topics_out() {
        let s = selection(&["*"], &["*-test"]);
        assert!(is_selected(&s, "orders"));
        assert!(!is_selected(&s, "orders-test"));
        assert!(!is_selected(&s, "__consumer_offsets"));
        assert!(!is_selected(&s, "_schemas"));
        let s = selection(&["_schemas", "orders-*"], &[]);
        assert!(is_selected(&s, "_schemas"));
        assert!(is_selected(&s, "orders-eu"));
        assert!(!is_selected(&s, "payments"));
    }

    #[test]
    fn bootstrap_servers_accept_lists_and_commas() {
        let servers = OneOrMany(vec![Text("a:9092, b:9092".into()), Text("c:9092".into())]);
        let c = Cluster::new("source", &servers, &BTreeMap::new()).unwrap();
        assert_eq!(c.servers, "a:9092,b:9092,c:9092");
        assert!(Cluster::new("source", &OneOrMany(vec![]), &BTreeMap::new()).is_err());
    }

    /// A cluster whose properties are `props`.
    fn cluster(props: &[(&str, &str)]) -> Cluster {
        let properties = props
            .iter()
            .map(|(k, v)| (k.to_string(), ClientProperty(Text(v.to_string()))))
            .collect();
        Cluster::new(
            "source",
            &OneOrMany(vec![Text("a:9092".into())]),
            &properties,
        )
        .unwrap()
    }

    #[test]
    fn a_refused_property_shows_its_name_but_not_a_secret_value() {
        // misspelled, and one this build of librdkafka does not have: the
        // refusal names the property, never its value
        for key in ["sasl.pasword", "sasl.oauthbearer.client.secret"] {
            let Err(err) = cluster(&[(key, "hunter2-pw")]).metadata_consumer() else {
                panic!("librdkafka should refuse `{key}`");
            };
            let shown = err.to_string();
            assert!(shown.contains(key), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
        // the value of a property known to hold nothing secret still helps
        let Err(err) = cluster(&[("acks", "most")]).admin() else {
            panic!("librdkafka should refuse `acks: most`");
        };
        let shown = err.to_string();
        assert!(shown.contains("most"), "{shown}");
    }
}
