//! The Confluent wire format and the schema-ID rewrite: a pure function over
//! bytes, so that it can be tested and fuzzed alone.
//!
//! A framed key or value is `0x00`, a 4-byte big-endian signed schema ID, then
//! the payload (for Protobuf, a varint array of message indexes first: it is
//! part of the payload and never touched). Anything shorter than 5 bytes or
//! starting with another byte is not framed and passes unchanged.
//!
//! Newer clients may carry the schema identity in headers instead
//! (`__key_schema_id`, `__value_schema_id`): a value of `0x00` + 4-byte ID is
//! rewritten like a framed payload; `0x01` + 16-byte GUID names the schema by
//! GUID, which a registry keeps across IDs, so it passes unchanged.

/// First byte of a framed key or value (and of an ID-form schema header).
pub const MAGIC: u8 = 0x00;
/// First byte of a GUID-form schema header.
pub const MAGIC_GUID: u8 = 0x01;
/// Header names that carry a schema identity.
pub const KEY_SCHEMA_ID_HEADER: &[u8] = b"__key_schema_id";
pub const VALUE_SCHEMA_ID_HEADER: &[u8] = b"__value_schema_id";

/// The schema ID of a framed key or value, `None` when it is not framed.
/// Registries hand out IDs from 1: bytes that start with `0x00` but carry 0
/// or a negative number there are not framed (a big-endian long of a small
/// number, say) and pass unchanged.
pub fn schema_id(bytes: &[u8]) -> Option<i32> {
    match bytes {
        [MAGIC, a, b, c, d, ..] => Some(i32::from_be_bytes([*a, *b, *c, *d])).filter(|id| *id > 0),
        _ => None,
    }
}

/// What the rewrite did to one key, value or header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not in the wire format (or a GUID header): left as it was.
    NotFramed,
    /// The ID was replaced (`from` may equal `to`, when the map keeps it).
    Rewritten { from: i32, to: i32 },
    /// Framed, but the map has no target for this ID: left as it was.
    Missing { id: i32 },
}

/// Replaces the schema ID of `bytes` in place through `map`. Only bytes 1..5
/// can change; the length never does.
pub fn rewrite_in_place(bytes: &mut [u8], map: impl Fn(i32) -> Option<i32>) -> Outcome {
    let Some(from) = schema_id(bytes) else {
        return Outcome::NotFramed;
    };
    match map(from) {
        Some(to) => {
            bytes[1..5].copy_from_slice(&to.to_be_bytes());
            Outcome::Rewritten { from, to }
        }
        None => Outcome::Missing { id: from },
    }
}

/// Whether a header name carries a schema identity.
pub fn is_schema_header(name: &[u8]) -> bool {
    name == KEY_SCHEMA_ID_HEADER || name == VALUE_SCHEMA_ID_HEADER
}

/// Rewrites a schema header's value: the ID form exactly 5 bytes long is
/// rewritten; the GUID form and anything else pass unchanged.
pub fn rewrite_header_in_place(value: &mut [u8], map: impl Fn(i32) -> Option<i32>) -> Outcome {
    if value.len() != 5 {
        return Outcome::NotFramed;
    }
    rewrite_in_place(value, map)
}

/// The outcome of rewriting a whole record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordOutcome {
    pub rewritten: u32,
    /// The first ID the map lacked, if any.
    pub missing: Option<i32>,
}

impl RecordOutcome {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Rewritten { .. } => self.rewritten += 1,
            Outcome::Missing { id } => {
                self.missing.get_or_insert(id);
            }
            Outcome::NotFramed => {}
        }
    }
}

/// Rewrites key, value and schema headers of one record in place.
pub fn rewrite_record(
    key: Option<&mut [u8]>,
    value: Option<&mut [u8]>,
    headers: &mut [(Vec<u8>, Option<Vec<u8>>)],
    map: impl Fn(i32) -> Option<i32> + Copy,
) -> RecordOutcome {
    let mut outcome = RecordOutcome::default();
    if let Some(key) = key {
        outcome.add(rewrite_in_place(key, map));
    }
    if let Some(value) = value {
        outcome.add(rewrite_in_place(value, map));
    }
    for (name, value) in headers.iter_mut() {
        if is_schema_header(name)
            && let Some(value) = value
        {
            outcome.add(rewrite_header_in_place(value, map));
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's example: 1 -> 1, 5 -> 2, 2 -> 3.
    fn seed_map(id: i32) -> Option<i32> {
        match id {
            1 => Some(1),
            5 => Some(2),
            2 => Some(3),
            _ => None,
        }
    }

    #[test]
    fn framed_values_get_the_target_id() {
        let mut avro = vec![0, 0, 0, 0, 5, 0x02, b'x'];
        assert_eq!(
            rewrite_in_place(&mut avro, seed_map),
            Outcome::Rewritten { from: 5, to: 2 }
        );
        assert_eq!(avro, [0, 0, 0, 0, 2, 0x02, b'x']);
        let mut same = vec![0, 0, 0, 0, 1];
        assert_eq!(
            rewrite_in_place(&mut same, seed_map),
            Outcome::Rewritten { from: 1, to: 1 }
        );
        assert_eq!(same, [0, 0, 0, 0, 1]);
    }

    #[test]
    fn protobuf_message_indexes_are_untouched() {
        // ID 2, then message indexes [1, 0] as varints (2 entries: 0x04 0x02 0x00), then payload
        let mut proto = vec![0, 0, 0, 0, 2, 0x04, 0x02, 0x00, 0x0a, 0x01, b'a'];
        rewrite_in_place(&mut proto, seed_map);
        assert_eq!(proto, [0, 0, 0, 0, 3, 0x04, 0x02, 0x00, 0x0a, 0x01, b'a']);
    }

    #[test]
    fn unframed_and_short_bytes_pass_unchanged() {
        for bytes in [
            &b""[..],
            &[0],
            &[0, 0, 0, 5],
            &[1, 0, 0, 0, 5],
            b"{\"json\":1}",
        ] {
            let mut copy = bytes.to_vec();
            assert_eq!(rewrite_in_place(&mut copy, seed_map), Outcome::NotFramed);
            assert_eq!(copy, bytes);
        }
    }

    #[test]
    fn a_missing_id_is_reported_and_nothing_changes() {
        let mut v = vec![0, 0, 0, 0, 42, 9];
        assert_eq!(
            rewrite_in_place(&mut v, seed_map),
            Outcome::Missing { id: 42 }
        );
        assert_eq!(v, [0, 0, 0, 0, 42, 9]);
        // 0 and negative numbers are no schema IDs: not framed
        for mut bytes in [vec![0, 0xff, 0xff, 0xff, 0xff], 5i64.to_be_bytes().to_vec()] {
            let before = bytes.clone();
            assert_eq!(rewrite_in_place(&mut bytes, seed_map), Outcome::NotFramed);
            assert_eq!(bytes, before);
        }
    }

    #[test]
    fn schema_headers_in_id_form_are_rewritten_guid_form_kept() {
        let guid = [vec![MAGIC_GUID], vec![7u8; 16]].concat();
        let mut headers = vec![
            (VALUE_SCHEMA_ID_HEADER.to_vec(), Some(vec![0, 0, 0, 0, 5])),
            (KEY_SCHEMA_ID_HEADER.to_vec(), Some(guid.clone())),
            (b"other".to_vec(), Some(vec![0, 0, 0, 0, 5])),
            (VALUE_SCHEMA_ID_HEADER.to_vec(), None),
        ];
        let mut key = b"plain-key".to_vec();
        let out = rewrite_record(Some(&mut key), None, &mut headers, seed_map);
        assert_eq!(
            out,
            RecordOutcome {
                rewritten: 1,
                missing: None
            }
        );
        assert_eq!(headers[0].1.as_deref(), Some(&[0, 0, 0, 0, 2][..]));
        assert_eq!(headers[1].1.as_deref(), Some(&guid[..]));
        assert_eq!(
            headers[2].1.as_deref(),
            Some(&[0, 0, 0, 0, 5][..]),
            "other headers are data"
        );
    }

    #[test]
    fn key_and_value_are_independent() {
        let mut key = vec![0, 0, 0, 0, 2, b'k'];
        let mut value = vec![0, 0, 0, 0, 99, b'v'];
        let out = rewrite_record(Some(&mut key), Some(&mut value), &mut [], seed_map);
        assert_eq!(
            out,
            RecordOutcome {
                rewritten: 1,
                missing: Some(99)
            }
        );
        assert_eq!(key, [0, 0, 0, 0, 3, b'k']);
    }

    #[test]
    fn only_the_id_bytes_can_change_on_any_input() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..16);
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| if rng.u8(0..4) == 0 { 0 } else { rng.u8(..) })
                .collect();
            let before = bytes.clone();
            let out = rewrite_in_place(&mut bytes, |id| (id % 3 != 0).then(|| id % 1000 + 1));
            assert_eq!(bytes.len(), before.len());
            match out {
                Outcome::NotFramed | Outcome::Missing { .. } => assert_eq!(bytes, before),
                Outcome::Rewritten { from, to } => {
                    assert_eq!(schema_id(&before), Some(from));
                    assert_eq!(schema_id(&bytes), Some(to));
                    assert_eq!(bytes[0], before[0]);
                    assert_eq!(bytes[5..], before[5..]);
                }
            }
        }
    }
}
