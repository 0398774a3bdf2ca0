//! The consumer groups: each restored group's committed offset in the target
//! against the one the offset map makes of its backed-up offset. An offset
//! ahead of it counts as the same when the restore journal records that the
//! apply set exactly that (the group's consumers have read on since);
//! anything else is a difference.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Area, Difference};
use crate::kafka::groups::GroupOffsets;
use crate::plan::groups::GroupPlan;

/// Every group partition checked, and the differences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupsCheck {
    pub offsets: Vec<GroupOffsetCheck>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
}

/// One group on one target partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupOffsetCheck {
    pub group: String,
    pub target_topic: String,
    pub partition: i32,
    /// Committed in the source.
    pub committed: i64,
    /// What it becomes in the target.
    pub expected: i64,
    /// What the group has committed there.
    pub found: Option<i64>,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Same,
    /// Ahead of the restored offset, which the apply set: consumed since.
    ConsumedSince,
    Differs,
    Missing,
}

/// Compares `expected` (worked out from the offset map) with `current`
/// (committed in the target now); `set` is what the restore journal says
/// the apply committed, per group.
pub fn check(
    expected: &[GroupPlan],
    current: &BTreeMap<String, GroupOffsets>,
    set: &BTreeMap<String, BTreeMap<String, BTreeMap<i32, i64>>>,
) -> GroupsCheck {
    let mut out = GroupsCheck::default();
    for g in expected {
        for p in &g.partitions {
            let found = current
                .get(&g.group)
                .and_then(|o| o.get(&p.target_topic))
                .and_then(|o| o.get(&p.partition))
                .map(|c| c.offset);
            let applied = set
                .get(&g.group)
                .and_then(|o| o.get(&p.target_topic))
                .and_then(|o| o.get(&p.partition))
                == Some(&p.target_offset);
            let status = match found {
                None => Status::Missing,
                Some(f) if f == p.target_offset => Status::Same,
                Some(f) if f > p.target_offset && applied => Status::ConsumedSince,
                Some(_) => Status::Differs,
            };
            if matches!(status, Status::Missing | Status::Differs) {
                let what = match found {
                    None => "has no committed offset".to_owned(),
                    Some(f) => format!("has offset {f}"),
                };
                out.differences.push(
                    Difference::new(
                        Area::Groups,
                        format!(
                            "consumer group `{}` on `{}` partition {} {what}; {} expected (offset {} in the backup)",
                            g.group, p.target_topic, p.partition, p.target_offset, p.committed
                        ),
                    )
                    .partition(&p.target_topic, p.partition),
                );
            }
            out.offsets.push(GroupOffsetCheck {
                group: g.group.clone(),
                target_topic: p.target_topic.clone(),
                partition: p.partition,
                committed: p.committed,
                expected: p.target_offset,
                found,
                status,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::groups::Committed;
    use crate::plan::groups::{Basis, GroupPartition};
    use crate::restore::offsets::How;

    fn expected() -> Vec<GroupPlan> {
        let p = |partition, target_offset| GroupPartition {
            topic: "t".into(),
            target_topic: "t-r".into(),
            partition,
            committed: 40,
            metadata: String::new(),
            target_offset,
            how: How::Mapped,
            basis: Basis::Restored,
            current: None,
            change: true,
        };
        vec![GroupPlan {
            group: "g".into(),
            target_state: "Empty".into(),
            target_members: 0,
            partitions: vec![p(0, 30), p(1, 10), p(2, 5)],
        }]
    }

    #[test]
    fn equal_same_ahead_after_the_apply_consumed_else_a_difference() {
        let mut now = GroupOffsets::new();
        for (p, o) in [(0, 30), (1, 12)] {
            now.entry("t-r".into()).or_default().insert(
                p,
                Committed {
                    offset: o,
                    metadata: String::new(),
                },
            );
        }
        let current = BTreeMap::from([("g".to_owned(), now)]);
        // the apply did not record setting them: ahead is a difference
        let c = check(&expected(), &current, &BTreeMap::new());
        let statuses: Vec<Status> = c.offsets.iter().map(|o| o.status).collect();
        assert_eq!(
            statuses,
            vec![Status::Same, Status::Differs, Status::Missing]
        );
        assert_eq!(c.differences.len(), 2);
        assert!(c.differences[1].message.contains("has no committed offset"));
        // recorded as set: ahead means consumed since
        let set = BTreeMap::from([(
            "g".to_owned(),
            BTreeMap::from([("t-r".to_owned(), BTreeMap::from([(0, 30), (1, 10), (2, 5)]))]),
        )]);
        let c = check(&expected(), &current, &set);
        let statuses: Vec<Status> = c.offsets.iter().map(|o| o.status).collect();
        assert_eq!(
            statuses,
            vec![Status::Same, Status::ConsumedSince, Status::Missing]
        );
        assert_eq!(c.differences.len(), 1);
    }
}
