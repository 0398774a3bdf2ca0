//! The consumer-group half of a plan: for each backed-up group the restore
//! selects (`target.consumer_groups`) and each partition of a restored topic
//! it had committed on, the offset it committed in the source and the
//! target offset it becomes ([`crate::restore::offsets`]), through
//! `topic_mapping`. Pure: what the backup, the offset map (or the prediction
//! of it) and the target's groups say comes in.
//!
//! A group with members in the target is a conflict (its offsets are its
//! consumers' to move); a partition whose target offset is already the one
//! planned is unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Conflict, ConflictKind};
use crate::kafka::groups::{GroupOffsets, GroupState};
use crate::restore::offsets::{How, Translation};

/// One consumer group's offsets in the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPlan {
    pub group: String,
    /// Its state in the target when planned (`Dead`: it has none there).
    pub target_state: String,
    pub target_members: u32,
    pub partitions: Vec<GroupPartition>,
}

impl GroupPlan {
    /// Partitions whose offset the apply sets.
    pub fn changes(&self) -> usize {
        self.partitions.iter().filter(|p| p.change).count()
    }
}

/// One partition of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPartition {
    /// The backed-up topic, and the one it is restored into.
    pub topic: String,
    pub target_topic: String,
    pub partition: i32,
    /// The offset the group committed in the source (the next record it
    /// reads there), and the metadata committed with it.
    pub committed: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// The target offset it becomes.
    pub target_offset: i64,
    pub how: How,
    /// `restored`: read from the offset map of records already restored;
    /// `predicted`: worked out from the backup and the target partition's
    /// end now, and checked against the offset map by `apply` after the data.
    pub basis: Basis,
    /// The group's committed offset there now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    /// The apply sets it (`false`: it is there already).
    pub change: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Restored,
    Predicted,
}

/// A backed-up group's offset on one partition, with the restored topic it
/// goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub group: String,
    pub topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub committed: i64,
    pub metadata: String,
}

/// What the planner needs of the backup's groups and the target.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Every selected group's offset on a restored partition.
    pub wanted: Vec<Wanted>,
    /// Where each lands: `(target topic, partition, committed)`.
    pub translated: BTreeMap<(String, i32, i64), (Translation, Basis)>,
    /// The target's groups (absent ones have none there).
    pub target_state: BTreeMap<String, GroupState>,
    /// Their committed offsets there now, by target topic.
    pub current: BTreeMap<String, GroupOffsets>,
}

/// The groups' offsets in the target, in group, topic and partition order,
/// and the conflicts (live groups).
pub fn plan(inputs: &Inputs) -> (Vec<GroupPlan>, Vec<Conflict>) {
    let mut by_group: BTreeMap<&str, Vec<GroupPartition>> = BTreeMap::new();
    for w in &inputs.wanted {
        let Some((t, basis)) =
            inputs
                .translated
                .get(&(w.target_topic.clone(), w.partition, w.committed))
        else {
            continue;
        };
        let current = inputs
            .current
            .get(&w.group)
            .and_then(|g| g.get(&w.target_topic))
            .and_then(|p| p.get(&w.partition))
            .map(|c| c.offset);
        by_group.entry(&w.group).or_default().push(GroupPartition {
            topic: w.topic.clone(),
            target_topic: w.target_topic.clone(),
            partition: w.partition,
            committed: w.committed,
            metadata: w.metadata.clone(),
            target_offset: t.target,
            how: t.how,
            basis: *basis,
            current,
            change: current != Some(t.target),
        });
    }
    let mut groups = Vec::new();
    let mut conflicts = Vec::new();
    for (group, mut partitions) in by_group {
        partitions
            .sort_by(|a, b| (&a.target_topic, a.partition).cmp(&(&b.target_topic, b.partition)));
        let state = inputs
            .target_state
            .get(group)
            .cloned()
            .unwrap_or(GroupState {
                state: "Dead".to_owned(),
                members: 0,
            });
        if state.is_live() && partitions.iter().any(|p| p.change) {
            conflicts.push(Conflict {
                kind: ConflictKind::GroupLive,
                subject: None,
                version: None,
                id: None,
                message: format!(
                    "consumer group `{group}` is live in the target ({}, {} member(s)): its offsets are its consumers' to move",
                    state.state, state.members
                ),
                details: Vec::new(),
                hint: format!(
                    "stop the group's consumers in the target and plan again, or leave the group out with `target.consumer_groups.exclude: [\"{group}\"]`"
                ),
            });
        }
        groups.push(GroupPlan {
            group: group.to_owned(),
            target_state: state.state,
            target_members: state.members,
            partitions,
        });
    }
    (groups, conflicts)
}

/// The line a partition of a group is shown with: `~` set, `=` unchanged.
pub fn line(group: &str, p: &GroupPartition) -> String {
    let symbol = if p.change { "~" } else { "=" };
    let mut line = format!(
        "{symbol} group \"{group}\" {}[{}]: offset {} -> {}",
        p.target_topic, p.partition, p.committed, p.target_offset
    );
    if p.topic != p.target_topic {
        line.push_str(&format!(" (backed up from {})", p.topic));
    }
    if p.how != How::Mapped {
        line.push_str(&format!(", {}", p.how.as_str()));
    }
    match (p.change, p.current) {
        (false, _) => line.push_str(", already there"),
        (true, Some(c)) if c > p.target_offset => line.push_str(&format!(
            ", now {c}: moves the group back {} record(s), which it reads again",
            c - p.target_offset
        )),
        (true, Some(c)) => line.push_str(&format!(
            ", now {c}: moves the group forward {} record(s), which it does not read",
            p.target_offset - c
        )),
        (true, None) => {}
    }
    if p.basis == Basis::Predicted {
        line.push_str(" (predicted; checked after the data)");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(group: &str, partition: i32, committed: i64) -> Wanted {
        Wanted {
            group: group.into(),
            topic: "orders".into(),
            target_topic: "orders-dr".into(),
            partition,
            committed,
            metadata: String::new(),
        }
    }

    fn inputs() -> Inputs {
        let mut i = Inputs {
            wanted: vec![wanted("b", 1, 30), wanted("a", 0, 40), wanted("a", 1, 30)],
            ..Default::default()
        };
        let t = |target, how| (Translation { target, how }, Basis::Restored);
        i.translated
            .insert(("orders-dr".into(), 0, 40), t(30, How::Mapped));
        i.translated
            .insert(("orders-dr".into(), 1, 30), t(25, How::End));
        i
    }

    #[test]
    fn each_group_partition_gets_its_translated_offset() {
        let (groups, conflicts) = plan(&inputs());
        assert!(conflicts.is_empty());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].group, "a");
        let offsets: Vec<(i32, i64, i64)> = groups[0]
            .partitions
            .iter()
            .map(|p| (p.partition, p.committed, p.target_offset))
            .collect();
        assert_eq!(offsets, vec![(0, 40, 30), (1, 30, 25)]);
        assert!(groups[0].partitions.iter().all(|p| p.change));
        assert_eq!(
            line("a", &groups[0].partitions[1]),
            "~ group \"a\" orders-dr[1]: offset 30 -> 25 (backed up from orders), all consumed: end of the restored records"
        );
    }

    #[test]
    fn an_offset_already_there_is_unchanged_and_a_live_group_is_a_conflict() {
        let mut i = inputs();
        let mut now = GroupOffsets::new();
        now.entry("orders-dr".into()).or_default().insert(
            0,
            crate::kafka::groups::Committed {
                offset: 30,
                metadata: String::new(),
            },
        );
        i.current.insert("a".into(), now);
        let (groups, conflicts) = plan(&i);
        assert!(!groups[0].partitions[0].change);
        assert!(groups[0].partitions[1].change);
        assert_eq!(groups[0].changes(), 1);
        assert!(conflicts.is_empty());

        i.target_state.insert(
            "b".into(),
            GroupState {
                state: "Stable".into(),
                members: 2,
            },
        );
        let (_, conflicts) = plan(&i);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].kind, ConflictKind::GroupLive);
        assert!(
            conflicts[0].message.contains("`b` is live"),
            "{}",
            conflicts[0].message
        );
    }
}
