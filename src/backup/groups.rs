//! The consumer groups' committed offsets on the backed-up topics, read just
//! before the partitions' watermarks: an offset committed then is at most
//! the high watermark the backup reads next, so every record a group had
//! not consumed is below the backup's end or is one the backup holds.

use std::collections::BTreeMap;

use crate::config::GroupSelection;
use crate::kafka::{self, Cluster, KafkaError, TopicInfo};
use crate::manifest::GroupBackup;

/// The selected groups with an offset committed on one of `topics`' partitions.
pub fn read(
    cluster: &Cluster,
    selection: &GroupSelection,
    topics: &[TopicInfo],
) -> Result<BTreeMap<String, GroupBackup>, KafkaError> {
    let mut out = BTreeMap::new();
    if !selection.enabled || topics.is_empty() {
        return Ok(out);
    }
    let consumer = cluster.metadata_consumer()?;
    let groups = kafka::groups::list(&consumer, cluster)?;
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.clone(), p)))
        .collect();
    for (id, state) in groups {
        if !selection.is_selected(&id) {
            continue;
        }
        let offsets = kafka::groups::committed(cluster, &id, &partitions)?;
        if offsets.is_empty() {
            continue;
        }
        tracing::info!(
            group = id,
            state = state.state,
            members = state.members,
            partitions = offsets.values().map(|p| p.len()).sum::<usize>(),
            "consumer group offsets read"
        );
        out.insert(
            id,
            GroupBackup {
                state: state.state,
                members: state.members,
                offsets,
            },
        );
    }
    Ok(out)
}
