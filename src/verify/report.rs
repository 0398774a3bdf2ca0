//! `verify`'s output: a table for people, JSON with the same facts for machines.

use serde::Serialize;

use super::{Area, PartitionCheck, Report};

/// Hex digits of a stream SHA-256 shown in the table (the JSON has all 64).
const SHORT: usize = 12;

/// The table: registry counts, one row per partition, every difference, the result.
pub fn text(report: &Report) -> String {
    let mut out = String::from("Registry\n");
    match &report.registry {
        None => {
            let why = report
                .registry_not_checked
                .unwrap_or(super::NotChecked::RegistryOff);
            out.push_str(&format!("  not checked: {}\n", why.line()));
        }
        Some(r) => {
            let rows = [
                (
                    "subjects/versions",
                    format!(
                        "{} subject(s), {} version(s) checked, {} same",
                        r.subjects, r.versions_checked, r.versions_same
                    ),
                    r.count(Area::Versions),
                ),
                (
                    "schema IDs",
                    format!(
                        "{} source ID(s), {} mapped, {} serve the same schema",
                        r.ids, r.ids_mapped, r.ids_same
                    ),
                    r.count(Area::SchemaIds),
                ),
                (
                    "levels and modes",
                    format!(
                        "{} checked, {} as in the backup",
                        r.settings_checked, r.settings_same
                    ),
                    r.count(Area::Settings),
                ),
            ];
            for (name, line, differences) in rows {
                out.push_str(&format!("  {name:<19} {line}"));
                if differences > 0 {
                    out.push_str(&format!(" ({differences} difference(s))"));
                }
                out.push('\n');
            }
        }
    }

    out.push_str("Topics\n");
    if report.topics.partitions.is_empty() {
        out.push_str("  the backup holds none\n");
    } else {
        let header = [
            "TOPIC",
            "PARTITION",
            "BACKUP",
            "EXPECTED",
            "TARGET",
            "SHA-256",
        ];
        let rows: Vec<[String; 6]> = report.topics.partitions.iter().map(row).collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 6]| {
            let mut l = format!("  {:<w$}", cells[0], w = widths[0]);
            for i in 1..5 {
                l.push_str(&format!("  {:>w$}", cells[i], w = widths[i]));
            }
            l.push_str(&format!("  {}", cells[5]));
            l.push('\n');
            l
        };
        out.push_str(&line(header));
        for r in &rows {
            out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
        }
    }

    if let Some(groups) = &report.groups {
        out.push_str("Consumer groups\n");
        if groups.offsets.is_empty() {
            out.push_str("  none restored\n");
        }
        for o in &groups.offsets {
            let found = o.found.map_or("none".to_owned(), |f| f.to_string());
            let status = match o.status {
                super::groups::Status::Same => "same",
                super::groups::Status::ConsumedSince => "consumed since",
                super::groups::Status::Differs => "differs",
                super::groups::Status::Missing => "missing",
            };
            out.push_str(&format!(
                "  {} {}[{}]: backup {} -> expected {}, target {found} ({status})\n",
                o.group, o.target_topic, o.partition, o.committed, o.expected
            ));
        }
    }
    let differences = report.differences();
    if !differences.is_empty() {
        out.push_str("Differences\n");
        for d in &differences {
            let mut lines = d.message.lines();
            out.push_str(&format!("  - {}\n", lines.next().unwrap_or_default()));
            for l in lines {
                out.push_str(&format!("    {}\n", l.trim_start()));
            }
        }
        for p in report.topics.partitions.iter().filter(|p| !p.same()) {
            if p.target_records.is_some() && p.backup_sha256 != p.target_sha256 {
                out.push_str(&format!(
                    "  SHA-256 of `{}` partition {}: backup {}, target {}\n",
                    p.target_topic, p.partition, p.backup_sha256, p.target_sha256
                ));
            }
        }
    }
    if differences.is_empty() {
        out.push_str("Result: the target matches the backup.\n");
    } else {
        out.push_str(&format!(
            "Result: {} difference(s) between the target and the backup.\n",
            differences.len()
        ));
    }
    out
}

fn row(p: &PartitionCheck) -> [String; 6] {
    let topic = if p.source_topic == p.target_topic {
        p.target_topic.clone()
    } else {
        format!("{} -> {}", p.source_topic, p.target_topic)
    };
    let (target, sha) = match p.target_records {
        None => ("-".to_owned(), "missing".to_owned()),
        Some(n) => {
            let sha = if p.backup_sha256 == p.target_sha256 {
                format!("same ({})", &p.backup_sha256[..SHORT])
            } else {
                format!(
                    "differs ({} != {})",
                    &p.backup_sha256[..SHORT],
                    &p.target_sha256[..SHORT]
                )
            };
            (n.to_string(), sha)
        }
    };
    [
        topic,
        p.partition.to_string(),
        p.backup_records.to_string(),
        p.expected_records.to_string(),
        target,
        sha,
    ]
}

/// The same facts as JSON: `result` (`match` or `differs`), the number of
/// differences, the registry counts and differences, each partition.
pub fn json(report: &Report) -> String {
    #[derive(Serialize)]
    struct Json<'a> {
        result: &'static str,
        differences: usize,
        registry: Option<&'a super::RegistryCheck>,
        #[serde(skip_serializing_if = "Option::is_none")]
        registry_not_checked: Option<super::NotChecked>,
        topics: &'a super::TopicsCheck,
        #[serde(skip_serializing_if = "Option::is_none")]
        groups: Option<&'a super::groups::GroupsCheck>,
    }
    let differences = report.differences().len();
    let mut text = serde_json::to_string_pretty(&Json {
        result: if differences == 0 { "match" } else { "differs" },
        differences,
        registry: report.registry.as_ref(),
        registry_not_checked: report.registry_not_checked,
        topics: &report.topics,
        groups: report.groups.as_ref(),
    })
    .expect("a report serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Difference, RegistryCheck, TopicsCheck};

    fn partition(n: i32, target: Option<u64>, differences: Vec<Difference>) -> PartitionCheck {
        PartitionCheck {
            source_topic: "orders".into(),
            target_topic: "orders-r".into(),
            partition: n,
            backup_records: 30,
            expected_records: 30,
            target_records: target,
            target_start: target.map(|_| 0),
            backup_sha256: "a".repeat(64),
            target_sha256: if differences.is_empty() {
                "a".repeat(64)
            } else {
                "b".repeat(64)
            },
            differing_records: differences.len() as u64,
            differences,
        }
    }

    fn registry() -> RegistryCheck {
        RegistryCheck {
            subjects: 2,
            versions_checked: 3,
            versions_same: 3,
            ids: 3,
            ids_mapped: 3,
            ids_same: 3,
            settings_checked: 4,
            settings_same: 4,
            differences: vec![],
        }
    }

    #[test]
    fn a_match_is_a_table_and_one_result_line() {
        let report = Report {
            registry: Some(registry()),
            registry_not_checked: None,
            topics: TopicsCheck {
                partitions: vec![
                    partition(0, Some(30), vec![]),
                    partition(1, Some(30), vec![]),
                ],
                differences: vec![],
            },
            groups: None,
        };
        insta::assert_snapshot!(text(&report), @r"
        Registry
          subjects/versions   2 subject(s), 3 version(s) checked, 3 same
          schema IDs          3 source ID(s), 3 mapped, 3 serve the same schema
          levels and modes    4 checked, 4 as in the backup
        Topics
          TOPIC               PARTITION  BACKUP  EXPECTED  TARGET  SHA-256
          orders -> orders-r          0      30        30      30  same (aaaaaaaaaaaa)
          orders -> orders-r          1      30        30      30  same (aaaaaaaaaaaa)
        Result: the target matches the backup.
        ");
        assert!(report.matches());
    }

    #[test]
    fn differences_are_listed_with_both_stream_hashes() {
        let mut r = registry();
        r.settings_same = 3;
        r.differences.push(
            Difference::new(
                Area::Settings,
                "compatibility of `orders-value`: NONE in the target, the backup's is FULL",
            )
            .subject(Some("orders-value")),
        );
        let report = Report {
            registry: Some(r),
            registry_not_checked: None,
            topics: TopicsCheck {
                partitions: vec![
                    partition(
                        0,
                        Some(31),
                        vec![
                            Difference::new(Area::Topics, "`orders-r` partition 0 holds 31 restored record(s), 30 expected: 1 more from offset 30, which the backup does not have")
                                .partition("orders-r", 0)
                                .offset(30),
                        ],
                    ),
                    partition(
                        1,
                        None,
                        vec![Difference::new(Area::Topics, "`orders-r` partition 1 is not in the target (no such topic): 30 record(s) expected")],
                    ),
                ],
                differences: vec![],
            },
            groups: None,
        };
        insta::assert_snapshot!(text(&report), @r"
        Registry
          subjects/versions   2 subject(s), 3 version(s) checked, 3 same
          schema IDs          3 source ID(s), 3 mapped, 3 serve the same schema
          levels and modes    4 checked, 3 as in the backup (1 difference(s))
        Topics
          TOPIC               PARTITION  BACKUP  EXPECTED  TARGET  SHA-256
          orders -> orders-r          0      30        30      31  differs (aaaaaaaaaaaa != bbbbbbbbbbbb)
          orders -> orders-r          1      30        30       -  missing
        Differences
          - compatibility of `orders-value`: NONE in the target, the backup's is FULL
          - `orders-r` partition 0 holds 31 restored record(s), 30 expected: 1 more from offset 30, which the backup does not have
          - `orders-r` partition 1 is not in the target (no such topic): 30 record(s) expected
          SHA-256 of `orders-r` partition 0: backup aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, target bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
        Result: 3 difference(s) between the target and the backup.
        ");
        let json: serde_json::Value = serde_json::from_str(&json(&report)).unwrap();
        assert_eq!(json["result"], "differs");
        assert_eq!(json["differences"], 3);
        assert_eq!(json["topics"]["partitions"][0]["target_records"], 31);
        assert_eq!(
            json["topics"]["partitions"][0]["differences"][0]["offset"],
            30
        );
        assert_eq!(
            json["topics"]["partitions"][1]["target_records"],
            serde_json::Value::Null
        );
        assert_eq!(
            json["registry"]["differences"][0]["subject"],
            "orders-value"
        );
    }

    #[test]
    fn without_the_registry_or_topics_the_table_says_so() {
        let report = Report {
            registry: None,
            registry_not_checked: Some(super::super::NotChecked::RegistryOff),
            topics: TopicsCheck::default(),
            groups: None,
        };
        insta::assert_snapshot!(text(&report), @r"
        Registry
          not checked: `enterprise.schema_registry.enabled` is off
        Topics
          the backup holds none
        Result: the target matches the backup.
        ");
        let report = Report {
            registry_not_checked: Some(super::super::NotChecked::RestoreOff),
            ..report
        };
        insta::assert_snapshot!(text(&report), @r"
        Registry
          not checked: `enterprise.schema_registry.restore.enabled` is off: the restore does not write the registry, so its subjects are not compared; record IDs are checked against the IDs the target holds for identical schemas
        Topics
          the backup holds none
        Result: the target matches the backup.
        ");
        assert!(json(&report).contains("\"registry_not_checked\": \"restore_off\""));
    }
}
