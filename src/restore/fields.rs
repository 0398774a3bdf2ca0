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
//! (`<topic>-key`, `<topic>-value`), or, when it holds neither (another
//! naming strategy), every record of the topic that has the field carries a
//! registered schema ID there (the IDs `backup` saw). A field whose bytes
//! 1..5 happen to read as a registered ID in every record of a topic without
//! topic-named subjects cannot be told from a framed one: `never` says so.

use std::collections::BTreeSet;

use crate::config::FieldRewrite;
pub use crate::manifest::{Field, FieldIds};

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
    seen: Option<&FieldIds>,
    registered: &dyn Fn(i32) -> bool,
) -> Decision {
    let name = field.to_string();
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
    // the other field's subject named after the topic: the topic's
    // serializers use the TopicNameStrategy, which would have registered
    // this field's subject too
    let other = match field {
        Field::Key => Field::Value,
        Field::Value => Field::Key,
    };
    let other_subject = format!("{topic}-{other}");
    if subjects.contains(&other_subject) {
        return Decision {
            rewrite: false,
            reason: format!(
                "the backup holds `{other_subject}` but no `{subject}`: under the TopicNameStrategy a serializer of the {name} would have registered it"
            ),
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
    if seen.non_null == 0 {
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
    if seen.all_framed() && unregistered.is_empty() {
        return Decision {
            rewrite: true,
            reason: format!(
                "all {} record(s) with a {name} carry a schema ID the backup holds",
                seen.non_null
            ),
        };
    }
    let why = if seen.framed < seen.non_null {
        format!(
            "{} of {} record(s) with a {name} are framed",
            seen.framed, seen.non_null
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

    fn seen(non_null: u64, framed: u64, ids: &[(i32, u64)]) -> FieldIds {
        FieldIds {
            non_null,
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
        // raw keys of the same topic that happen to start with 0x00 and
        // read as a registered ID are data: the topic names its subjects
        let key = decide(
            FieldRewrite::Auto,
            "orders",
            Field::Key,
            &s,
            Some(&seen(1000, 1000, &[(5, 1000)])),
            &registered,
        );
        assert!(!key.rewrite);
        assert_eq!(
            key.reason,
            "the backup holds `orders-value` but no `orders-key`: under the TopicNameStrategy a serializer of the key would have registered it"
        );
        let mixed = decide(
            FieldRewrite::Auto,
            "payments",
            Field::Key,
            &subjects(&["com.example.Payment"]),
            Some(&seen(1000, 4, &[(5, 4)])),
            &registered,
        );
        assert_eq!(
            mixed.reason,
            "no subject `payments-key` in the backup, and 4 of 1000 record(s) with a key are framed"
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
