//! What a restore does to one backed-up record, as a pure function: rewrite
//! its schema IDs through the map, or leave it out (missing ID under the
//! `skip` policy, newer than `--to-timestamp`), or stop (missing ID under
//! `fail`). The restore and `verify` both use it, so that `verify` compares
//! the target with exactly what the restore meant to write.
//!
//! Also here: the normalised digest of a record stream, the same for a
//! stream read from segments and one consumed from the target.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::apply::IdMap;
use crate::config::{Glob, MissingIdPolicy, RegistryRestore};
use crate::model::DEFAULT_CONTEXT;
use crate::segment::{Record, TimestampType};
use crate::wire;

/// The policy for records of `topic` (backed-up name): an exact key of
/// `missing_id_policy_topics` first, then the first glob (in key order) that
/// matches, then `missing_id_policy`.
pub fn policy_for(restore: &RegistryRestore, topic: &str) -> MissingIdPolicy {
    if let Some(p) = restore.missing_id_policy_topics.get(topic) {
        return *p;
    }
    restore
        .missing_id_policy_topics
        .iter()
        .find(|(pattern, _)| Glob::new(pattern).is_ok_and(|g| g.is_match(topic)))
        .map_or(restore.missing_id_policy, |(_, p)| *p)
}

/// The map records are rewritten through. Records carry IDs of the source
/// registry's default context (a serializer writes the ID its registry
/// answered, and clients talk to the default context unless configured
/// otherwise), so that context's part of the ID map is used.
pub fn record_map(map: &IdMap) -> HashMap<i32, i32> {
    map.get(DEFAULT_CONTEXT)
        .into_iter()
        .flatten()
        .filter_map(|(s, t)| Some((i32::try_from(*s).ok()?, i32::try_from(*t).ok()?)))
        .collect()
}

/// How one topic's records are turned into restored records.
#[derive(Debug, Clone)]
pub struct Transform {
    /// `None`: records are written as they are (`rewrite_ids: false`).
    pub map: Option<HashMap<i32, i32>>,
    pub policy: MissingIdPolicy,
    /// Leave out records with a timestamp after this (ms since the epoch).
    pub to_timestamp: Option<i64>,
    /// Whether the key and the value carry schema IDs ([`super::fields`]):
    /// a field that does not is written as backed up, whatever its bytes.
    /// Schema-ID headers in ID form are rewritten either way.
    pub rewrite_key: bool,
    pub rewrite_value: bool,
}

/// What becomes of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Written (its IDs rewritten where it had any: `rewritten` of them).
    Write { rewritten: u32 },
    /// Left out: a schema ID the map lacks, under the `skip` policy.
    SkipMissing { id: i32 },
    /// Left out: newer than `--to-timestamp`.
    SkipLater,
    /// A schema ID the map lacks, under the `fail` policy: the restore stops.
    Missing { id: i32 },
}

impl Verdict {
    pub fn writes(self) -> bool {
        matches!(self, Verdict::Write { .. })
    }
}

impl Transform {
    /// The ID map in key order (`None` when IDs are not rewritten), as the
    /// restore journal records it.
    pub fn sorted_map(&self) -> Option<std::collections::BTreeMap<i32, i32>> {
        self.map
            .as_ref()
            .map(|m| m.iter().map(|(s, t)| (*s, *t)).collect())
    }

    /// Decides what becomes of `record` and, when it is written, rewrites it
    /// in place. A record left out or refused is not modified.
    pub fn apply(&self, record: &mut Record) -> Verdict {
        if let (Some(limit), Some(ts)) = (self.to_timestamp, record.timestamp)
            && ts > limit
        {
            return Verdict::SkipLater;
        }
        let Some(map) = &self.map else {
            return Verdict::Write { rewritten: 0 };
        };
        let lookup = |id: i32| map.get(&id).copied();
        // find a missing ID first, so that a refused record stays untouched
        if let Some(id) = self.first_missing(record, lookup) {
            return match self.policy {
                MissingIdPolicy::Fail => Verdict::Missing { id },
                MissingIdPolicy::Skip => Verdict::SkipMissing { id },
                // the IDs the map knows are still rewritten
                MissingIdPolicy::Passthrough => Verdict::Write {
                    rewritten: self.rewrite(record, lookup).rewritten,
                },
            };
        }
        Verdict::Write {
            rewritten: self.rewrite(record, lookup).rewritten,
        }
    }

    fn rewrite(
        &self,
        record: &mut Record,
        map: impl Fn(i32) -> Option<i32> + Copy,
    ) -> wire::RecordOutcome {
        wire::rewrite_record(
            record.key.as_deref_mut().filter(|_| self.rewrite_key),
            record.value.as_deref_mut().filter(|_| self.rewrite_value),
            &mut record.headers,
            map,
        )
    }

    fn first_missing(&self, record: &Record, map: impl Fn(i32) -> Option<i32>) -> Option<i32> {
        let key = record.key.as_deref().filter(|_| self.rewrite_key);
        let value = record.value.as_deref().filter(|_| self.rewrite_value);
        first_missing(key, value, &record.headers, map)
    }
}

fn first_missing(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(Vec<u8>, Option<Vec<u8>>)],
    map: impl Fn(i32) -> Option<i32>,
) -> Option<i32> {
    let framed = [key, value]
        .into_iter()
        .flatten()
        .filter_map(wire::schema_id);
    let headers = headers
        .iter()
        .filter(|(name, value)| {
            wire::is_schema_header(name) && value.as_ref().is_some_and(|v| v.len() == 5)
        })
        .filter_map(|(_, value)| value.as_deref().and_then(wire::schema_id));
    framed.chain(headers).find(|id| map(*id).is_none())
}

/// SHA-256 over a stream of records in a normalised form: timestamp (when
/// the producer set it: a log-append time is the target broker's to choose),
/// key, value and headers, each length-prefixed. Offsets are not part of it:
/// a restored partition starts at its own offsets.
#[derive(Clone, Default)]
pub struct StreamDigest {
    hasher: Sha256,
    pub records: u64,
}

impl StreamDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(
        &mut self,
        timestamp: Option<i64>,
        timestamp_type: TimestampType,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (impl AsRef<[u8]>, Option<impl AsRef<[u8]>>)>,
    ) {
        let h = &mut self.hasher;
        match (timestamp_type, timestamp) {
            (TimestampType::CreateTime, Some(ts)) => {
                h.update([1]);
                h.update(ts.to_be_bytes());
            }
            _ => h.update([0]),
        }
        bytes(h, key);
        bytes(h, value);
        let mut count = 0u32;
        let mut hh = Sha256::new();
        for (name, value) in headers {
            count += 1;
            bytes(&mut hh, Some(name.as_ref()));
            bytes(&mut hh, value.as_ref().map(|v| v.as_ref()));
        }
        h.update(count.to_be_bytes());
        h.update(hh.finalize());
        self.records += 1;
    }

    pub fn add_record(&mut self, r: &Record) {
        self.add(
            r.timestamp,
            r.timestamp_type,
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.iter().map(|(n, v)| (n, v.as_ref())),
        );
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

fn bytes(h: &mut Sha256, b: Option<&[u8]>) {
    match b {
        None => h.update((-1i32).to_be_bytes()),
        Some(b) => {
            h.update((b.len() as i32).to_be_bytes());
            h.update(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8], ts: i64) -> Record {
        Record {
            offset: 7,
            timestamp: Some(ts),
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k".to_vec()),
            value: Some(value.to_vec()),
            headers: vec![(
                wire::VALUE_SCHEMA_ID_HEADER.to_vec(),
                Some(value[..5.min(value.len())].to_vec()),
            )],
        }
    }

    fn seed() -> HashMap<i32, i32> {
        [(1, 1), (5, 2), (2, 3)].into_iter().collect()
    }

    fn transform(policy: MissingIdPolicy) -> Transform {
        Transform {
            map: Some(seed()),
            policy,
            to_timestamp: None,
            rewrite_key: true,
            rewrite_value: true,
        }
    }

    #[test]
    fn known_ids_are_rewritten_in_value_and_header() {
        let mut r = record(&[0, 0, 0, 0, 5, 9], 10);
        let v = transform(MissingIdPolicy::Fail).apply(&mut r);
        assert_eq!(v, Verdict::Write { rewritten: 2 });
        assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 2, 9][..]));
        assert_eq!(r.headers[0].1.as_deref(), Some(&[0, 0, 0, 0, 2][..]));
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]), "an unframed key passes");
    }

    #[test]
    fn a_missing_id_follows_the_policy_and_a_refused_record_is_untouched() {
        let original = record(&[0, 0, 0, 0, 42, 9], 10);
        let mut r = original.clone();
        assert_eq!(
            transform(MissingIdPolicy::Fail).apply(&mut r),
            Verdict::Missing { id: 42 }
        );
        assert_eq!(r, original);
        assert_eq!(
            transform(MissingIdPolicy::Skip).apply(&mut r),
            Verdict::SkipMissing { id: 42 }
        );
        assert_eq!(r, original);
        assert_eq!(
            transform(MissingIdPolicy::Passthrough).apply(&mut r),
            Verdict::Write { rewritten: 0 }
        );
        assert_eq!(r, original);

        // a known key ID is still rewritten under passthrough
        let mut r = original.clone();
        r.key = Some(vec![0, 0, 0, 0, 5]);
        assert_eq!(
            transform(MissingIdPolicy::Passthrough).apply(&mut r),
            Verdict::Write { rewritten: 1 }
        );
        assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, 0, 2][..]));
        // and under fail the whole record stays as it was
        let mut r2 = original.clone();
        r2.key = Some(vec![0, 0, 0, 0, 5]);
        let before = r2.clone();
        transform(MissingIdPolicy::Fail).apply(&mut r2);
        assert_eq!(r2, before);
    }

    #[test]
    fn without_rewriting_everything_passes_and_time_limits_apply() {
        let t = Transform {
            map: None,
            policy: MissingIdPolicy::Fail,
            to_timestamp: Some(100),
            rewrite_key: true,
            rewrite_value: true,
        };
        let mut r = record(&[0, 0, 0, 0, 42], 100);
        assert_eq!(t.apply(&mut r), Verdict::Write { rewritten: 0 });
        let mut later = record(&[0, 0, 0, 0, 42], 101);
        assert_eq!(t.apply(&mut later), Verdict::SkipLater);
        let mut untimed = record(b"x", 0);
        untimed.timestamp = None;
        assert!(t.apply(&mut untimed).writes());
    }

    #[test]
    fn topic_policies_exact_before_glob_before_default() {
        let mut restore = RegistryRestore::default();
        restore
            .missing_id_policy_topics
            .insert("logs-*".into(), MissingIdPolicy::Passthrough);
        restore
            .missing_id_policy_topics
            .insert("logs-audit".into(), MissingIdPolicy::Fail);
        restore.missing_id_policy = MissingIdPolicy::Skip;
        assert_eq!(
            policy_for(&restore, "logs-app"),
            MissingIdPolicy::Passthrough
        );
        assert_eq!(policy_for(&restore, "logs-audit"), MissingIdPolicy::Fail);
        assert_eq!(policy_for(&restore, "orders"), MissingIdPolicy::Skip);
    }

    #[test]
    fn the_digest_sees_every_part_but_offsets_and_append_times() {
        let digest = |r: &Record| {
            let mut d = StreamDigest::new();
            d.add_record(r);
            d.hex()
        };
        let base = record(&[0, 0, 0, 0, 5, 9], 10);
        let mut moved = base.clone();
        moved.offset = 99;
        assert_eq!(digest(&base), digest(&moved));
        let changes: [fn(&mut Record); 6] = [
            |r| r.timestamp = Some(11),
            |r| r.key = None,
            |r| r.key = Some(vec![]),
            |r| r.value.as_mut().unwrap()[4] = 6,
            |r| r.headers[0].1 = None,
            |r| r.headers.push((b"h".to_vec(), None)),
        ];
        for change in changes {
            let mut r = base.clone();
            change(&mut r);
            assert_ne!(digest(&base), digest(&r), "{r:?}");
        }
        let mut appended = base.clone();
        appended.timestamp_type = TimestampType::LogAppendTime;
        let mut appended_later = appended.clone();
        appended_later.timestamp = Some(12345);
        assert_eq!(digest(&appended), digest(&appended_later));
    }
}
