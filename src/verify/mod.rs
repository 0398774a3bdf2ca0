//! `verify`: proves a restore, by comparing the target (registry and topics)
//! with the backup it came from.
//!
//! - [`registry`]: every restored subject/version is in the target with the
//!   same canonical schema and references, every mapped schema ID serves the
//!   schema its source ID stood for, and subject levels and modes are the
//!   backup's. It plans the restore again against the live target: after a
//!   complete restore that plan has no step and no conflict, and every ID is
//!   known.
//! - [`topics`]: every restored partition holds exactly the records the
//!   restore meant to write (the backup's, through the same
//!   [`crate::restore::transform::Transform`]), compared record by record in
//!   lockstep, so that the first difference is named by its offset, and as
//!   one normalised SHA-256 per side.
//! - [`report`]: the table for people and the JSON for machines.
//!
//! Gathering (HTTP, Kafka, storage) and deciding stay apart: the registry
//! check is a pure function over two snapshots, a plan and the answers the
//! target gave for each ID; the record comparison is a pure function over two
//! records.

pub mod groups;
pub mod registry;
pub mod report;
pub mod topics;

use serde::Serialize;

pub use registry::RegistryCheck;
pub use topics::{PartitionCheck, TopicsCheck, VerifyError};

/// Which part of the restore a difference is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Subjects and versions (schema text, references, soft-deletes).
    Versions,
    /// The source-to-target ID map and what each target ID serves.
    SchemaIds,
    /// Compatibility levels and modes.
    Settings,
    /// Topics, partitions, records.
    Topics,
    /// Consumer group offsets.
    Groups,
}

/// One way the target differs from the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// What it is about.
    pub area: Area,
    /// Target subject concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Version concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Source schema ID concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// Target topic concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Partition concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Target offset of the first differing record, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// One line (or a few): what differs, where.
    pub message: String,
}

impl Difference {
    /// A difference with only its area and message; the builders below add
    /// where it is.
    pub fn new(area: Area, message: impl Into<String>) -> Self {
        Self {
            area,
            subject: None,
            version: None,
            id: None,
            topic: None,
            partition: None,
            offset: None,
            message: message.into(),
        }
    }

    pub fn subject(mut self, subject: Option<&str>) -> Self {
        self.subject = subject.map(str::to_owned);
        self
    }

    pub fn version(mut self, version: Option<u32>) -> Self {
        self.version = version;
        self
    }

    pub fn id(mut self, id: u32) -> Self {
        self.id = Some(id);
        self
    }

    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.to_owned());
        self
    }

    pub fn partition(mut self, topic: &str, partition: i32) -> Self {
        self.topic = Some(topic.to_owned());
        self.partition = Some(partition);
        self
    }

    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// Why `verify` leaves the registry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotChecked {
    /// `enterprise.schema_registry.enabled` is off.
    RegistryOff,
    /// `restore.enabled` is off: the restore did not write the registry;
    /// only the record IDs were checked, against the IDs the target held.
    RestoreOff,
}

impl NotChecked {
    /// The line the table shows.
    pub fn line(self) -> &'static str {
        match self {
            NotChecked::RegistryOff => "`enterprise.schema_registry.enabled` is off",
            NotChecked::RestoreOff => {
                "`enterprise.schema_registry.restore.enabled` is off: the restore does not write the registry, so its subjects are not compared; record IDs are checked against the IDs the target holds for identical schemas"
            }
        }
    }
}

/// Everything `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `None` when the configuration leaves the registry out.
    pub registry: Option<RegistryCheck>,
    /// Why the registry was not checked, when it was not.
    pub registry_not_checked: Option<NotChecked>,
    /// Topics and partitions.
    pub topics: TopicsCheck,
    /// Consumer group offsets (`None`: the backup holds none, or
    /// `target.consumer_groups` leaves them all out).
    pub groups: Option<groups::GroupsCheck>,
}

impl Report {
    /// Every difference, registry first, then topics in table order.
    pub fn differences(&self) -> Vec<&Difference> {
        let registry = self.registry.iter().flat_map(|r| r.differences.iter());
        registry
            .chain(self.topics.differences.iter())
            .chain(
                self.topics
                    .partitions
                    .iter()
                    .flat_map(|p| p.differences.iter()),
            )
            .chain(self.groups.iter().flat_map(|g| g.differences.iter()))
            .collect()
    }

    /// The target matches the backup.
    pub fn matches(&self) -> bool {
        self.differences().is_empty()
    }
}
