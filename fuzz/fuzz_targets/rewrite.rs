//! The schema-ID rewrite on arbitrary bytes: never panics, never changes the
//! length, and changes nothing but bytes 1..5 of a framed value.
#![no_main]

use kafka_backup::wire::{Outcome, rewrite_in_place, schema_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    let outcome = rewrite_in_place(&mut bytes, |id| (id % 5 != 0).then(|| (id ^ 0x5a5a).max(1)));
    assert_eq!(bytes.len(), data.len());
    match outcome {
        Outcome::NotFramed | Outcome::Missing { .. } => assert_eq!(bytes, data),
        Outcome::Rewritten { from, to } => {
            assert_eq!(schema_id(data), Some(from));
            assert_eq!(schema_id(&bytes), Some(to));
            assert_eq!(bytes[5..], data[5..]);
        }
    }
});
