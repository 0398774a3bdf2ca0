//! Which topics a restore writes and how: each backed-up topic's target
//! name (`target.topic_mapping`) and record transform ([`TopicJob`], from
//! the configuration and what the backup says of its schemas), the target
//! topics to create and the checks on those that exist, and creating them.
//! Pure but for [`Evidence::read`] and [`create_topics`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use super::RestoreError;
use super::fields;
use super::transform::{self, Transform};
use crate::apply::IdMap;
use crate::config::Config;
use crate::kafka::{self, Cluster, REQUEST_TIMEOUT};
use crate::manifest::{BackupReader, TopicManifest};

/// One backed-up topic and where it goes.
#[derive(Debug, Clone)]
pub struct TopicJob {
    pub source: String,
    pub target: String,
    pub manifest: TopicManifest,
    pub transform: Transform,
    /// Whether its keys and values carry schema IDs, and why (when IDs are
    /// rewritten at all).
    pub fields: Option<[fields::Decision; 2]>,
}

/// What the backup says of its schemas, for deciding which record fields
/// are framed ([`fields`]).
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Subjects of the default context (the one records' IDs come from).
    pub subjects: BTreeSet<String>,
    /// Schema IDs of the default context.
    pub ids: BTreeSet<i32>,
}

impl Evidence {
    /// What `reader`'s backup holds (nothing when it has no registry).
    pub async fn read(reader: &BackupReader) -> Result<Self, crate::backup::registry::LayoutError> {
        if reader.manifest.schema_registry.is_none() {
            return Ok(Self::default());
        }
        let (snapshot, _) = crate::backup::registry::restore_snapshot(reader).await?;
        Ok(Self::of(&snapshot))
    }

    /// What `snapshot`, the backup's registry, holds.
    pub fn of(snapshot: &crate::model::RegistrySnapshot) -> Self {
        let mut out = Self::default();
        for (name, subject) in &snapshot.subjects {
            let (context, bare) = crate::model::split_context(name);
            if context != crate::model::DEFAULT_CONTEXT {
                continue;
            }
            out.subjects.insert(bare.to_owned());
            out.ids.extend(
                subject
                    .versions
                    .values()
                    .filter_map(|v| i32::try_from(v.id).ok()),
            );
        }
        out
    }
}

/// The backed-up topics `target.topics` selects, by backed-up name, in
/// name order. A selection that takes none of them is an error when the
/// backup holds topics or the selection was narrowed (a backup without
/// topics under the default selection has simply nothing to restore).
pub fn selected<'m>(
    config: &Config,
    manifest: &'m crate::manifest::Manifest,
) -> Result<Vec<&'m str>, RestoreError> {
    let selection = config
        .target
        .as_ref()
        .map(|t| t.topics.clone())
        .unwrap_or_default();
    let names: Vec<&str> = manifest
        .topics
        .keys()
        .map(String::as_str)
        .filter(|name| selection.is_selected(name))
        .collect();
    if names.is_empty() && (!manifest.topics.is_empty() || !selection.is_all()) {
        let list = |items: Vec<String>| match items.is_empty() {
            true => "none".to_owned(),
            false => items.join(", "),
        };
        let globs = |g: &crate::config::OneOrMany<crate::config::Glob>| {
            list(g.iter().map(|g| format!("`{}`", g.as_str())).collect())
        };
        return Err(RestoreError::NoTopicSelected {
            include: globs(&selection.include),
            exclude: globs(&selection.exclude),
            backed_up: match manifest.topics.is_empty() {
                true => "no topic".to_owned(),
                false => list(manifest.topics.keys().map(|t| format!("`{t}`")).collect()),
            },
        });
    }
    Ok(names)
}

/// The topics of the backup `target.topics` selects ([`selected`]) and how
/// each is restored: renamed through `target.topic_mapping`, records
/// rewritten through `map` when `rewrite_ids` is on (in the fields
/// `evidence` and the configuration say are framed), with the topic's
/// missing-ID policy.
pub fn jobs(
    config: &Config,
    manifest: &crate::manifest::Manifest,
    map: Option<&IdMap>,
    to_timestamp: Option<i64>,
    evidence: &Evidence,
) -> Result<Vec<TopicJob>, RestoreError> {
    let selected = selected(config, manifest)?;
    let restore = &config.enterprise.schema_registry.restore;
    let rewrite = config.enterprise.schema_registry.enabled && restore.rewrite_ids();
    let record_map = map.filter(|_| rewrite).map(transform::record_map);
    let mapping = config
        .target
        .as_ref()
        .map(|t| &t.topic_mapping)
        .cloned()
        .unwrap_or_default();
    let registered = |id: i32| evidence.ids.contains(&id);
    Ok(manifest
        .topics
        .iter()
        .filter(|(name, _)| selected.contains(&name.as_str()))
        .map(|(name, topic)| {
            let modes = restore.rewrite_fields_for(name);
            // backups before format 2 did not record the IDs records carry
            let seen = (manifest.format_version >= 2).then(|| topic.schema_ids());
            let decisions = rewrite.then(|| {
                [
                    (fields::Field::Key, modes.key),
                    (fields::Field::Value, modes.value),
                ]
                .map(|(field, mode)| {
                    let ids = seen.as_ref().map(|s| match field {
                        fields::Field::Key => &s.key,
                        fields::Field::Value => &s.value,
                    });
                    fields::decide(mode, name, field, &evidence.subjects, ids, &registered)
                })
            });
            TopicJob {
                source: name.clone(),
                target: mapping
                    .get(name)
                    .map_or_else(|| name.clone(), |t| t.as_str().to_owned()),
                manifest: topic.clone(),
                transform: Transform {
                    map: if rewrite {
                        Some(record_map.clone().unwrap_or_default())
                    } else {
                        None
                    },
                    policy: transform::policy_for(restore, name),
                    to_timestamp,
                    rewrite_key: decisions.as_ref().is_some_and(|d| d[0].rewrite),
                    rewrite_value: decisions.as_ref().is_some_and(|d| d[1].rewrite),
                },
                fields: decisions,
            }
        })
        .collect())
}

/// Target topics written by more than one backed-up topic (a mapping
/// mistake the config check should have caught).
pub fn duplicate_targets(jobs: &[TopicJob]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut dup: Vec<String> = jobs
        .iter()
        .filter(|j| !seen.insert(j.target.clone()))
        .map(|j| j.target.clone())
        .collect();
    dup.sort();
    dup.dedup();
    dup
}

/// The jobs whose target topic the target cluster lacks (`existing`: its
/// topics and their partition counts), to create. A target topic with fewer
/// partitions than its backup is refused: records go back to the partition
/// they came from.
pub fn missing<'j>(
    jobs: &'j [TopicJob],
    existing: &BTreeMap<String, usize>,
) -> Result<Vec<&'j TopicJob>, RestoreError> {
    let mut to_create = Vec::new();
    for job in jobs {
        match existing.get(&job.target) {
            Some(&found) if found < job.manifest.partition_count as usize => {
                return Err(RestoreError::TooFewPartitions {
                    topic: job.target.clone(),
                    source_topic: job.source.clone(),
                    found,
                    expected: job.manifest.partition_count,
                });
            }
            Some(_) => {}
            None => to_create.push(job),
        }
    }
    Ok(to_create)
}

/// What a dry run shows: one line per topic, saying whether it would be
/// created.
pub fn preview(jobs: &[TopicJob], to_create: &[&TopicJob]) -> Vec<String> {
    jobs.iter()
        .map(|job| {
            let records = job.manifest.record_count();
            let verb = if to_create.iter().any(|j| j.target == job.target) {
                "create and restore"
            } else {
                "restore into"
            };
            format!(
                "{verb} topic `{}` ({} partition(s), {records} record(s) from `{}`)",
                job.target, job.manifest.partition_count, job.source
            )
        })
        .collect()
}

/// Creates the target topics of `to_create`, one after the other, logging
/// each; returns their names.
pub async fn create_topics(
    cluster: &Cluster,
    to_create: &[&TopicJob],
    brokers: usize,
    log: &(dyn Fn(String) + Sync),
) -> Result<Vec<String>, RestoreError> {
    let admin = cluster.admin()?;
    let mut created = Vec::new();
    for job in to_create {
        create_topic(&admin, cluster, job, brokers).await?;
        log(format!(
            "created topic `{}` ({} partition(s), {} config(s) from the backup)",
            job.target,
            job.manifest.partition_count,
            job.manifest.configs.len()
        ));
        created.push(job.target.clone());
    }
    // closing an admin client takes 100 ms: not on the way
    std::thread::spawn(move || drop(admin));
    Ok(created)
}

/// Creates `job.target` with the backup's partition count and configs, and
/// a replication factor no larger than the target has brokers. A topic that
/// appeared meanwhile is fine.
async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    cluster: &Cluster,
    job: &TopicJob,
    brokers: usize,
) -> Result<(), RestoreError> {
    let replication = (job.manifest.replication_factor.max(1) as usize).min(brokers) as i32;
    let mut topic = NewTopic::new(
        &job.target,
        job.manifest.partition_count as i32,
        TopicReplication::Fixed(replication),
    );
    for (k, v) in &job.manifest.configs {
        topic = topic.set(k, v);
    }
    let err = |reason: String| RestoreError::CreateTopic {
        topic: job.target.clone(),
        partitions: job.manifest.partition_count,
        configs: if job.manifest.configs.is_empty() {
            "none".into()
        } else {
            job.manifest
                .configs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        reason,
    };
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|e| err(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(err(code.to_string())),
        }
    }
    // wait until the new topic's partitions answer metadata requests
    let consumer = cluster.metadata_consumer()?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let found = kafka::layout(&consumer, cluster)?.topics;
        if found.get(&job.target).copied().unwrap_or(0) >= job.manifest.partition_count as usize {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(err(
                "the topic did not appear in the metadata within 30 s".into()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, MissingIdPolicy};
    use crate::manifest::{FieldIds, PartitionManifest, RecordIds, SourceInfo};

    fn config(yaml: &str) -> Config {
        crate::config::parse(yaml, Format::Yaml, "test.yaml", Box::new(|_| None))
            .unwrap()
            .config
    }

    /// Every non-null field framed, carrying `ids`.
    fn framed(ids: &[(i32, u64)]) -> FieldIds {
        let n = ids.iter().map(|(_, n)| n).sum();
        FieldIds {
            non_null: n,
            framed: n,
            ids: ids.iter().copied().collect(),
        }
    }

    fn topic(partitions: u32, key: FieldIds, value: FieldIds) -> TopicManifest {
        TopicManifest {
            partition_count: partitions,
            replication_factor: 3,
            configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            partitions: (0..partitions as i32)
                .map(|p| {
                    (
                        p,
                        PartitionManifest {
                            low_watermark: 0,
                            high_watermark: 10,
                            last_stable_offset: Some(10),
                            left_out_from: None,
                            continues_from: None,
                            record_count: 10,
                            segments: Vec::new(),
                            schema_ids: RecordIds {
                                key: key.clone(),
                                value: value.clone(),
                            },
                        },
                    )
                })
                .collect(),
        }
    }

    /// Three topics: `orders` under the TopicNameStrategy (a value subject
    /// only), `clicks` without subjects but every value framed with a
    /// registered ID, `payments` whose keys happen to start with 0x00 (kept
    /// unless the configuration says `always`).
    fn manifest(format_version: u32) -> crate::manifest::Manifest {
        crate::manifest::Manifest {
            format_version,
            tool_version: "test".into(),
            backup_id: "b".into(),
            started_at: String::new(),
            finished_at: String::new(),
            source: SourceInfo {
                bootstrap_servers: "source:9092".into(),
            },
            topics: BTreeMap::from([
                (
                    "orders".into(),
                    topic(2, FieldIds::default(), framed(&[(1, 15), (2, 5)])),
                ),
                (
                    "clicks".into(),
                    topic(1, FieldIds::default(), framed(&[(2, 10)])),
                ),
                (
                    "payments".into(),
                    topic(3, framed(&[(7, 30)]), framed(&[(3, 30)])),
                ),
            ]),
            schema_registry: None,
            consumer_groups: BTreeMap::new(),
            files: BTreeMap::new(),
            parent: None,
            selection: None,
            encryption: None,
        }
    }

    fn evidence() -> Evidence {
        Evidence {
            subjects: ["orders-value".into(), "payments-value".into()].into(),
            ids: [1, 2, 3].into(),
        }
    }

    /// The final ID map: default-context IDs 1, 2 and 3 moved by 100, and
    /// an ID of another context (never in records).
    fn id_map() -> IdMap {
        BTreeMap::from([
            (
                crate::model::DEFAULT_CONTEXT.to_owned(),
                BTreeMap::from([(1, 101), (2, 102), (3, 103)]),
            ),
            (".eu".to_owned(), BTreeMap::from([(4, 104)])),
        ])
    }

    /// One line per job and field: where it goes and what happens to it.
    fn render(jobs: &[TopicJob]) -> String {
        let mut out = String::new();
        for job in jobs {
            let t = &job.transform;
            out.push_str(&format!(
                "{} -> {}: map {:?}, policy {:?}, to_timestamp {:?}\n",
                job.source,
                job.target,
                t.sorted_map(),
                t.policy,
                t.to_timestamp
            ));
            match &job.fields {
                None => out.push_str("  fields: written as backed up\n"),
                Some([key, value]) => {
                    assert_eq!(
                        (key.rewrite, value.rewrite),
                        (t.rewrite_key, t.rewrite_value)
                    );
                    for (name, d) in [("key", key), ("value", value)] {
                        let verb = if d.rewrite { "rewritten" } else { "kept" };
                        out.push_str(&format!("  {name}: {verb} ({})\n", d.reason));
                    }
                }
            }
        }
        out
    }

    const REWRITING: &str = r#"
target:
  bootstrap_servers: target:9092
  topic_mapping:
    orders: orders-restored
enterprise:
  schema_registry:
    enabled: true
    url: http://registry:8081
    restore:
      rewrite_ids: true
      missing_id_policy_topics:
        "pay*": skip
      rewrite_fields_topics:
        payments:
          key: always
"#;

    #[test]
    fn jobs_rename_through_the_mapping_and_decide_each_field() {
        let jobs = jobs(
            &config(REWRITING),
            &manifest(2),
            Some(&id_map()),
            Some(1_700_000_000_000),
            &evidence(),
        )
        .unwrap();
        insta::assert_snapshot!(render(&jobs), @r"
        clicks -> clicks: map Some({1: 101, 2: 102, 3: 103}), policy Fail, to_timestamp Some(1700000000000)
          key: kept (no record has a key)
          value: rewritten (all 10 record(s) with a value carry a schema ID the backup holds)
        orders -> orders-restored: map Some({1: 101, 2: 102, 3: 103}), policy Fail, to_timestamp Some(1700000000000)
          key: kept (the backup holds `orders-value` but no `orders-key`: under the TopicNameStrategy a serializer of the key would have registered it)
          value: rewritten (the backup holds subject `orders-value`)
        payments -> payments: map Some({1: 101, 2: 102, 3: 103}), policy Skip, to_timestamp Some(1700000000000)
          key: rewritten (`always` in the configuration)
          value: rewritten (the backup holds subject `payments-value`)
        ");
    }

    #[test]
    fn without_the_ids_the_backup_saw_only_subjects_decide() {
        // a backup of format 1 did not record the IDs its records carry
        let jobs = jobs(
            &config(REWRITING),
            &manifest(1),
            Some(&id_map()),
            None,
            &evidence(),
        )
        .unwrap();
        insta::assert_snapshot!(render(&jobs), @r"
        clicks -> clicks: map Some({1: 101, 2: 102, 3: 103}), policy Fail, to_timestamp None
          key: kept (no subject `clicks-key` in the backup, and the backup did not record which IDs its records carry)
          value: kept (no subject `clicks-value` in the backup, and the backup did not record which IDs its records carry)
        orders -> orders-restored: map Some({1: 101, 2: 102, 3: 103}), policy Fail, to_timestamp None
          key: kept (the backup holds `orders-value` but no `orders-key`: under the TopicNameStrategy a serializer of the key would have registered it)
          value: rewritten (the backup holds subject `orders-value`)
        payments -> payments: map Some({1: 101, 2: 102, 3: 103}), policy Skip, to_timestamp None
          key: rewritten (`always` in the configuration)
          value: rewritten (the backup holds subject `payments-value`)
        ");
    }

    #[test]
    fn jobs_without_rewriting_write_records_as_backed_up() {
        let config = config(
            r#"
target:
  bootstrap_servers: target:9092
enterprise:
  schema_registry:
    enabled: true
    url: http://registry:8081
    restore:
      rewrite_ids: false
      missing_id_policy: passthrough
"#,
        );
        let kept = jobs(&config, &manifest(2), Some(&id_map()), None, &evidence()).unwrap();
        insta::assert_snapshot!(render(&kept), @r"
        clicks -> clicks: map None, policy Passthrough, to_timestamp None
          fields: written as backed up
        orders -> orders: map None, policy Passthrough, to_timestamp None
          fields: written as backed up
        payments -> payments: map None, policy Passthrough, to_timestamp None
          fields: written as backed up
        ");
        // no registry at all: the same
        let jobs = jobs(
            &config_without_registry(),
            &manifest(2),
            Some(&id_map()),
            None,
            &evidence(),
        )
        .unwrap();
        assert!(
            jobs.iter()
                .all(|j| j.transform.map.is_none() && j.fields.is_none())
        );
        assert!(
            jobs.iter()
                .all(|j| j.transform.policy == MissingIdPolicy::Fail)
        );
    }

    fn config_without_registry() -> Config {
        config("target:\n  bootstrap_servers: target:9092\n")
    }

    #[test]
    fn without_an_id_map_ids_are_rewritten_through_an_empty_one() {
        // `plan` builds the jobs before any map exists
        let jobs = jobs(&config(REWRITING), &manifest(2), None, None, &evidence()).unwrap();
        assert!(
            jobs.iter()
                .all(|j| j.transform.map.as_ref().is_some_and(|m| m.is_empty()))
        );
    }

    #[test]
    fn target_topics_select_by_backed_up_name_before_the_mapping() {
        let config = config(
            r#"
target:
  bootstrap_servers: target:9092
  topics:
    include: ["orders", "pay*"]
    exclude: payments
  topic_mapping:
    orders: orders-restored
"#,
        );
        let jobs = jobs(&config, &manifest(2), None, None, &evidence()).unwrap();
        let names: Vec<(&str, &str)> = jobs
            .iter()
            .map(|j| (j.source.as_str(), j.target.as_str()))
            .collect();
        assert_eq!(names, [("orders", "orders-restored")]);
        // the default takes every backed-up topic
        assert_eq!(
            selected(&config_without_registry(), &manifest(2)).unwrap(),
            ["clicks", "orders", "payments"]
        );
    }

    #[test]
    fn a_selection_that_takes_nothing_names_its_patterns_and_the_backed_up_topics() {
        let config = config(
            "target:\n  bootstrap_servers: target:9092\n  topics:\n    include: [\"orders-restored\", \"x*\"]\n",
        );
        let err = jobs(&config, &manifest(2), None, None, &evidence()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`target.topics` selects none of the backup's topics (include `orders-restored`, `x*`, exclude none); the backup holds `clicks`, `orders`, `payments`\nhint: the patterns match backed-up names, before `topic_mapping`; to restore only the registry, run `apply --registry-only`"
        );
        // a backup without topics: nothing to select, and nothing asked for
        let mut empty = manifest(2);
        empty.topics.clear();
        assert!(
            selected(&config_without_registry(), &empty)
                .unwrap()
                .is_empty()
        );
        let err = selected(&config, &empty).unwrap_err();
        assert!(
            err.to_string().contains("the backup holds no topic"),
            "{err}"
        );
    }

    fn job(source: &str, target: &str, partitions: u32) -> TopicJob {
        TopicJob {
            source: source.into(),
            target: target.into(),
            manifest: topic(partitions, FieldIds::default(), FieldIds::default()),
            transform: Transform {
                map: None,
                policy: MissingIdPolicy::Fail,
                to_timestamp: None,
                rewrite_key: false,
                rewrite_value: false,
            },
            fields: None,
        }
    }

    #[test]
    fn duplicate_targets_are_named_once_sorted() {
        let jobs = [
            job("a", "x", 1),
            job("b", "y", 1),
            job("c", "x", 1),
            job("d", "w", 1),
            job("e", "w", 1),
            job("f", "x", 1),
        ];
        assert_eq!(duplicate_targets(&jobs), ["w", "x"]);
        assert!(duplicate_targets(&jobs[..2]).is_empty());
    }

    #[test]
    fn missing_topics_are_created_and_existing_ones_need_every_partition() {
        let jobs = [job("a", "a", 3), job("b", "b2", 2), job("c", "c", 1)];
        let existing = BTreeMap::from([("a".to_owned(), 3), ("c".to_owned(), 4)]);
        let to_create = missing(&jobs, &existing).unwrap();
        assert_eq!(
            to_create
                .iter()
                .map(|j| j.target.as_str())
                .collect::<Vec<_>>(),
            ["b2"]
        );
        assert_eq!(
            preview(&jobs, &to_create),
            [
                "restore into topic `a` (3 partition(s), 30 record(s) from `a`)",
                "create and restore topic `b2` (2 partition(s), 20 record(s) from `b`)",
                "restore into topic `c` (1 partition(s), 10 record(s) from `c`)",
            ]
        );
        let fewer = BTreeMap::from([("a".to_owned(), 2)]);
        match missing(&jobs, &fewer) {
            Err(RestoreError::TooFewPartitions {
                topic,
                source_topic,
                found,
                expected,
            }) => assert_eq!(
                (topic.as_str(), source_topic.as_str(), found, expected),
                ("a", "a", 2, 3)
            ),
            other => panic!("expected TooFewPartitions, got {other:?}"),
        }
    }
}
