//! What a restore does to one record, on arbitrary records: never panics,
//! never changes a length, changes only the 4 ID bytes of framed keys, values
//! and ID-form schema headers, and only to the mapped ID; a record left out or
//! refused is untouched; under `fail` a record is refused exactly when one of
//! its IDs is missing from the map.
#![no_main]

use std::collections::HashMap;

use kafka_backup::config::MissingIdPolicy;
use kafka_backup::restore::transform::{Transform, Verdict};
use kafka_backup::segment::{Record, TimestampType};
use kafka_backup::wire::{VALUE_SCHEMA_ID_HEADER, schema_id};
use libfuzzer_sys::fuzz_target;

/// Splits `data` into up to `n` pieces, each preceded by its length byte.
fn pieces(mut data: &[u8], n: usize) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    while out.len() < n {
        let Some((&len, rest)) = data.split_first() else {
            out.push(None);
            continue;
        };
        if len == 0xff {
            out.push(None);
            data = rest;
            continue;
        }
        let len = (len as usize).min(rest.len());
        out.push(Some(rest[..len].to_vec()));
        data = &rest[len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let policy = match control % 3 {
        0 => MissingIdPolicy::Fail,
        1 => MissingIdPolicy::Passthrough,
        _ => MissingIdPolicy::Skip,
    };
    let map: HashMap<i32, i32> = (0..64).filter(|id| id % 3 != 0).map(|id| (id, id + 1000)).collect();
    let p = pieces(rest, 4);
    let record = Record {
        offset: 1,
        timestamp: Some(i64::from(control)),
        timestamp_type: TimestampType::CreateTime,
        key: p[0].clone(),
        value: p[1].clone(),
        headers: vec![
            (VALUE_SCHEMA_ID_HEADER.to_vec(), p[2].clone()),
            (b"other".to_vec(), p[3].clone()),
        ],
    };
    let (rewrite_key, rewrite_value) = (control & 0x20 == 0, control & 0x40 == 0);
    let transform = Transform {
        map: Some(map.clone()),
        policy,
        to_timestamp: (control & 0x80 != 0).then_some(100),
        rewrite_key,
        rewrite_value,
    };
    let mut out = record.clone();
    let verdict = transform.apply(&mut out);

    // a field that is not rewritten carries no ID, whatever its bytes
    let ids: Vec<i32> = [
        record.key.as_deref().filter(|_| rewrite_key),
        record.value.as_deref().filter(|_| rewrite_value),
    ]
    .into_iter()
        .flatten()
        .chain(record.headers[0].1.as_deref().filter(|v| v.len() == 5))
        .filter_map(schema_id)
        .collect();
    let missing = ids.iter().any(|id| !map.contains_key(id));
    let later = control & 0x80 != 0 && i64::from(control) > 100;

    match verdict {
        Verdict::Write { rewritten } => {
            assert!(!later);
            assert!(!missing || policy == MissingIdPolicy::Passthrough);
            let mut changed = 0;
            let parts = [
                (record.key.as_deref(), out.key.as_deref(), false, rewrite_key),
                (record.value.as_deref(), out.value.as_deref(), false, rewrite_value),
                (record.headers[0].1.as_deref(), out.headers[0].1.as_deref(), true, true),
            ];
            for (before, after, header, rewrites) in parts {
                match (before, after) {
                    (None, None) => {}
                    (Some(b), Some(a)) => {
                        assert_eq!(a.len(), b.len());
                        let framed = schema_id(b).filter(|_| rewrites && (!header || b.len() == 5));
                        match framed.and_then(|id| map.get(&id).map(|to| (id, *to))) {
                            Some((_, to)) => {
                                changed += 1;
                                assert_eq!(schema_id(a), Some(to));
                                assert_eq!(a[0], b[0]);
                                assert_eq!(a[5..], b[5..]);
                            }
                            None => assert_eq!(a, b),
                        }
                    }
                    _ => panic!("presence changed"),
                }
            }
            assert_eq!(rewritten, changed);
            assert_eq!(out.headers[1], record.headers[1], "other headers are data");
            assert_eq!(out.timestamp, record.timestamp);
        }
        Verdict::SkipLater => {
            assert!(later);
            assert_eq!(out, record);
        }
        Verdict::SkipMissing { id } => {
            assert_eq!(policy, MissingIdPolicy::Skip);
            assert!(!map.contains_key(&id) && ids.contains(&id));
            assert_eq!(out, record);
        }
        Verdict::Missing { id } => {
            assert_eq!(policy, MissingIdPolicy::Fail);
            assert!(!map.contains_key(&id) && ids.contains(&id));
            assert_eq!(out, record);
        }
    }
    if policy == MissingIdPolicy::Fail && !later {
        assert_eq!(matches!(verdict, Verdict::Missing { .. }), missing);
    }
});
