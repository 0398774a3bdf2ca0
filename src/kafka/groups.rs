//! Consumer groups: which exist and in which state, the offsets a group has
//! committed, and committing offsets for a group without joining it (a
//! "simple" commit, generation -1, which the coordinator takes only while
//! the group has no members).

use std::collections::BTreeMap;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{Cluster, KafkaError, REQUEST_TIMEOUT};

/// A group as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupState {
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Dead`
    /// (as the broker spells it).
    pub state: String,
    /// Members joined now.
    pub members: u32,
}

impl GroupState {
    /// Consumers are joined: its offsets are theirs to move.
    pub fn is_live(&self) -> bool {
        self.members > 0
    }
}

/// One committed offset: the next record the group reads, and the metadata
/// string committed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Committed {
    pub offset: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
}

/// Topic, then partition, to the committed offset.
pub type GroupOffsets = BTreeMap<String, BTreeMap<i32, Committed>>;

/// The consumer groups of the cluster (those of the `consumer` protocol and
/// simple ones, which only commit), by group ID.
pub fn list(
    consumer: &BaseConsumer,
    cluster: &Cluster,
) -> Result<BTreeMap<String, GroupState>, KafkaError> {
    let list = consumer
        .client()
        .fetch_group_list(None, REQUEST_TIMEOUT)
        .map_err(|source| KafkaError::Groups {
            servers: cluster.servers.clone(),
            reason: source.to_string(),
        })?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| matches!(g.protocol_type(), "consumer" | ""))
        .map(|g| {
            (
                g.name().to_owned(),
                GroupState {
                    state: g.state().to_owned(),
                    members: g.members().len() as u32,
                },
            )
        })
        .collect())
}

/// The state of one group; a group the coordinator does not know is `Dead`
/// with no members.
pub fn state(
    consumer: &BaseConsumer,
    cluster: &Cluster,
    group: &str,
) -> Result<GroupState, KafkaError> {
    let list = consumer
        .client()
        .fetch_group_list(Some(group), REQUEST_TIMEOUT)
        .map_err(|source| KafkaError::Groups {
            servers: cluster.servers.clone(),
            reason: format!("describing group `{group}`: {source}"),
        })?;
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map(|g| GroupState {
            state: g.state().to_owned(),
            members: g.members().len() as u32,
        })
        .unwrap_or(GroupState {
            state: "Dead".to_owned(),
            members: 0,
        }))
}

/// A client that speaks for `group` without joining it.
fn group_client(cluster: &Cluster, group: &str) -> Result<BaseConsumer, KafkaError> {
    cluster
        .client_config(&[
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ])
        .set("group.id", group)
        .create()
        .map_err(|source| cluster.client_error(source))
}

/// Closes a group client off the caller's thread (it takes up to a second).
fn close(consumer: BaseConsumer) {
    std::thread::spawn(move || drop(consumer));
}

/// The offsets `group` has committed on `partitions`; partitions it has
/// committed nothing on are left out.
pub fn committed(
    cluster: &Cluster,
    group: &str,
    partitions: &[(String, i32)],
) -> Result<GroupOffsets, KafkaError> {
    let mut out = GroupOffsets::new();
    if partitions.is_empty() {
        return Ok(out);
    }
    let consumer = group_client(cluster, group)?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition(topic, *partition);
    }
    let got = consumer.committed_offsets(tpl, REQUEST_TIMEOUT);
    close(consumer);
    let got = got.map_err(|source| KafkaError::Groups {
        servers: cluster.servers.clone(),
        reason: format!("reading the committed offsets of group `{group}`: {source}"),
    })?;
    for elem in got.elements() {
        if let Err(e) = elem.error() {
            return Err(KafkaError::Groups {
                servers: cluster.servers.clone(),
                reason: format!(
                    "reading the committed offset of group `{group}` on `{}` partition {}: {e}",
                    elem.topic(),
                    elem.partition()
                ),
            });
        }
        if let Offset::Offset(offset) = elem.offset() {
            out.entry(elem.topic().to_owned()).or_default().insert(
                elem.partition(),
                Committed {
                    offset,
                    metadata: elem.metadata().to_owned(),
                },
            );
        }
    }
    Ok(out)
}

/// Why a commit was refused.
#[derive(Debug)]
pub enum CommitError {
    /// The coordinator says the group has members (or is rebalancing): a
    /// commit of a client outside it is not taken.
    Live(String),
    Other(KafkaError),
}

/// Commits `offsets` for `group` in one request, without joining it: the
/// coordinator refuses it while the group has members.
pub fn commit(cluster: &Cluster, group: &str, offsets: &GroupOffsets) -> Result<(), CommitError> {
    let consumer = group_client(cluster, group).map_err(CommitError::Other)?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partitions) in offsets {
        for (&partition, c) in partitions {
            tpl.add_partition_offset(topic, partition, Offset::Offset(c.offset))
                .expect("an offset is a valid position");
            if !c.metadata.is_empty()
                && let Some(mut elem) = tpl.find_partition(topic, partition)
            {
                elem.set_metadata(c.metadata.clone());
            }
        }
    }
    let done = consumer.commit(&tpl, CommitMode::Sync);
    close(consumer);
    done.map_err(|source| {
        use rdkafka::error::RDKafkaErrorCode as Code;
        match source.rdkafka_error_code() {
            Some(
                code @ (Code::UnknownMemberId
                | Code::IllegalGeneration
                | Code::RebalanceInProgress
                | Code::FencedInstanceId),
            ) => CommitError::Live(format!("the coordinator refused the commit: {code:?}")),
            _ => CommitError::Other(KafkaError::Groups {
                servers: cluster.servers.clone(),
                reason: format!("committing the offsets of group `{group}`: {source}"),
            }),
        }
    })
}
