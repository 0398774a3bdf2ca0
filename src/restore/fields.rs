//! Which fields of a topic's records carry a schema ID, decided per topic and
//! field before anything is written, with the reason (shown before a restore
//! and by `verify`). Pure.
//!
//! A field whose first byte is `0x00` is not necessarily framed: an 8-byte
//! epoch-millisecond or long key starts with it, and so does about one random
//! UUID key in 256. Rewriting such a key whenever its accidental "ID" is in
//! the map would change data silently (and `verify`, using the same
//! transform, could not see it). So a field is rewritten only when the
//! configuration says `always`, or, under `auto`, when the backup shows that
//! it is framed: it holds the field's subject under the TopicNameStrategy
//! (`<topic>-key`, `<topic>-value`), or every record of the topic that has
//! the field carries a registered schema ID there (the IDs `backup` saw).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::FieldRewrite;

/// A record field that may carry a schema ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Key,
    Value,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Key => "key",
            Field::Value => "value",
        }
    }
}

/// What the backup saw of one field of a topic's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Records where the field is not null.
    pub present: u64,
    /// Of those, the ones that start with `0x00` and hold at least 5 bytes.
    pub framed: u64,
    /// The schema IDs of the framed ones, with their record counts.
    pub ids: BTreeMap<i32, u64>,
}

/// Whether a field is rewritten, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub rewrite: bool,
    pub reason: String,
}

/// Decides one field of `topic` (its backed-up name). `subjects` are the
/// subjects the backup holds; `seen` what the backup saw of the field
/// (`None`: a backup made before the IDs were collected); `registered`
/// whether the backup holds a schema of an ID.
pub fn decide(
    mode: FieldRewrite,
    topic: &str,
    field: Field,
    subjects: &BTreeSet<String>,
    seen: Option<&Seen>,
    registered: &dyn Fn(i32) -> bool,
) -> Decision {
    let name = field.name();
    match mode {
        FieldRewrite::Always => {
            return Decision {
                rewrite: true,
                reason: "`always` in the configuration".into(),
            };
        }
        FieldRewrite::Never => {
            return Decision {
                rewrite: false,
                reason: "`never` in the configuration".into(),
            };
        }
        FieldRewrite::Auto => {}
    }
    let subject = format!("{topic}-{name}");
    if subjects.contains(&subject) {
        return Decision {
            rewrite: true,
            reason: format!("the backup holds subject `{subject}`"),
        };
    }
    let Some(seen) = seen else {
        return Decision {
            rewrite: false,
            reason: format!(
                "no subject `{subject}` in the backup, and the backup did not record which IDs its records carry"
            ),
        };
    };
    if seen.present == 0 {
        return Decision {
            rewrite: false,
            reason: format!("no record has a {name}"),
        };
    }
    let unregistered: Vec<i32> = seen
        .ids
        .keys()
        .copied()
        .filter(|id| !registered(*id))
        .collect();
    if seen.framed == seen.present && unregistered.is_empty() {
        return Decision {
            rewrite: true,
            reason: format!(
                "all {} record(s) with a {name} carry a schema ID the backup holds",
                seen.present
            ),
        };
    }
    let why = if seen.framed < seen.present {
        format!(
            "{} of {} record(s) with a {name} are framed",
            seen.framed, seen.present
        )
    } else {
        let shown: Vec<String> = unregistered.iter().take(5).map(i32::to_string).collect();
        format!(
            "their leading bytes name ID(s) {} that the backup does not hold",
            shown.join(", ")
        )
    };
    Decision {
        rewrite: false,
        reason: format!("no subject `{subject}` in the backup, and {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subjects(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn registered(id: i32) -> bool {
        [1, 2, 5].contains(&id)
    }

    fn seen(present: u64, framed: u64, ids: &[(i32, u64)]) -> Seen {
        Seen {
            present,
            framed,
            ids: ids.iter().copied().collect(),
        }
    }

    #[test]
    fn the_configuration_decides_first() {
        let none = subjects(&[]);
        let d = decide(
            FieldRewrite::Always,
            "t",
            Field::Key,
            &none,
            None,
            &registered,
        );
        assert!(d.rewrite);
        let all = subjects(&["t-key"]);
        let d = decide(
            FieldRewrite::Never,
            "t",
            Field::Key,
            &all,
            None,
            &registered,
        );
        assert!(!d.rewrite);
        assert_eq!(d.reason, "`never` in the configuration");
    }

    #[test]
    fn a_subject_under_the_topic_name_strategy_makes_a_field_framed() {
        let s = subjects(&["orders-value"]);
        let value = decide(
            FieldRewrite::Auto,
            "orders",
            Field::Value,
            &s,
            None,
            &registered,
        );
        assert_eq!(
            value,
            Decision {
                rewrite: true,
                reason: "the backup holds subject `orders-value`".into()
            }
        );
        // raw keys of the same topic that happen to start with 0x00 are data
        let key = decide(
            FieldRewrite::Auto,
            "orders",
            Field::Key,
            &s,
            Some(&seen(1000, 4, &[(5, 4)])),
            &registered,
        );
        assert!(!key.rewrite);
        assert_eq!(
            key.reason,
            "no subject `orders-key` in the backup, and 4 of 1000 record(s) with a key are framed"
        );
    }

    #[test]
    fn every_record_framed_with_registered_ids_makes_a_field_framed() {
        // the record name strategy: subjects not named after the topic
        let s = subjects(&["com.example.Order"]);
        let d = decide(
            FieldRewrite::Auto,
            "orders",
            Field::Value,
            &s,
            Some(&seen(30, 30, &[(1, 10), (5, 20)])),
            &registered,
        );
        assert!(d.rewrite, "{d:?}");
        // one ID the backup does not hold: not proof enough
        let d = decide(
            FieldRewrite::Auto,
            "orders",
            Field::Value,
            &s,
            Some(&seen(30, 30, &[(1, 10), (77, 20)])),
            &registered,
        );
        assert!(!d.rewrite);
        assert!(
            d.reason
                .ends_with("name ID(s) 77 that the backup does not hold"),
            "{d:?}"
        );
        // no record has the field
        let d = decide(
            FieldRewrite::Auto,
            "orders",
            Field::Key,
            &s,
            Some(&seen(0, 0, &[])),
            &registered,
        );
        assert!(!d.rewrite);
        // nothing recorded (an older backup): left as it is
        let d = decide(
            FieldRewrite::Auto,
            "orders",
            Field::Key,
            &s,
            None,
            &registered,
        );
        assert!(!d.rewrite);
    }
}
