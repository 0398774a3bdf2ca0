//! Per-record cost of the restore's hot path without a broker: the schema-ID
//! rewrite (`restore::transform::Transform::apply`) on realistic records, and
//! for scale what surrounds it in `src/restore/`: decoding a record from a
//! segment (`SegmentReader::next_record`, zstd level 1 as `backup` writes) and
//! building the producer's `OwnedHeaders`.
//!
//! `cargo bench --bench rewrite` (release profile). Prints ns/record and
//! records/s, best of 5 passes. For scale: the bare producer of
//! scripts/bench-restore moves about 200k-300k such 1 KiB records/s on the
//! 2-core test machine (3-5 us a record), so the rewrite (tens of ns) is
//! about 1 % of that, decoding a segment (~0.8 us, mostly zstd) about 20 %.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use kafka_backup::config::MissingIdPolicy;
use kafka_backup::restore::transform::{Transform, Verdict};
use kafka_backup::segment::{Record, RecordRef, SegmentReader, SegmentWriter, TimestampType};
use kafka_backup::wire;
use rdkafka::message::{Header, OwnedHeaders};

const VALUE: usize = 1024;
/// Records per timed pass of the rewrite cases (each record is rewritten
/// in place pass after pass: the map swaps pairs of IDs, so every pass finds
/// a known ID, as the first did).
const PASSES: usize = 5;
const REWRITES: usize = 2_000_000;
/// Records in the segment of the decode case (about 20 MB, more than caches).
const SEGMENT_RECORDS: usize = 20_000;

fn framed(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![wire::MAGIC];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A JSON-ish payload of `len` bytes, like bench-backup's records.
fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut p = format!(
        r#"{{"id":{i},"customer":"cust-{:06}","country":"DE","status":"paid","amount":{}.{:02},"note":""#,
        i * 7919 % 1_000_000,
        i % 100_000,
        i % 100
    )
    .into_bytes();
    let mut x = i as u64 ^ 0x9e37_79b9_7f4a_7c15;
    while p.len() < len - 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(b"0123456789abcdef"[(x & 15) as usize]);
    }
    p.extend_from_slice(b"\"}");
    p.truncate(len);
    p
}

fn base(i: usize) -> Record {
    Record {
        offset: i as i64,
        timestamp: Some(1_700_000_000_000 + i as i64),
        timestamp_type: TimestampType::CreateTime,
        key: Some(format!("order-{i:08}").into_bytes()),
        value: Some(payload(i, VALUE)),
        headers: vec![(
            b"trace-id".to_vec(),
            Some(format!("{:032x}", i * 2_654_435_761).into_bytes()),
        )],
    }
}

/// A realistic map (1,000 source IDs), closed under itself: ID `2n` <-> `2n+1`.
fn map() -> HashMap<i32, i32> {
    (100..1_100)
        .map(|id| (id, if id % 2 == 0 { id + 1 } else { id - 1 }))
        .collect()
}

struct Case {
    name: &'static str,
    transform: Transform,
    make: fn(usize) -> Record,
    expect: fn(Verdict) -> bool,
}

fn cases() -> Vec<Case> {
    let rewrite = |policy| Transform {
        map: Some(map()),
        policy,
        to_timestamp: None,
        rewrite_key: true,
        rewrite_value: true,
    };
    vec![
        Case {
            name: "framed value 1 KiB (known ID), plain key, 1 header",
            transform: rewrite(MissingIdPolicy::Fail),
            make: |i| {
                let mut r = base(i);
                r.value = Some(framed(500, &payload(i, VALUE - 5)));
                r
            },
            expect: |v| v == Verdict::Write { rewritten: 1 },
        },
        Case {
            name: "framed key + framed value 1 KiB",
            transform: rewrite(MissingIdPolicy::Fail),
            make: |i| {
                let mut r = base(i);
                r.key = Some(framed(300, format!("order-{i:08}").as_bytes()));
                r.value = Some(framed(500, &payload(i, VALUE - 5)));
                r
            },
            expect: |v| v == Verdict::Write { rewritten: 2 },
        },
        Case {
            name: "ID-form __value_schema_id header, plain value",
            transform: rewrite(MissingIdPolicy::Fail),
            make: |i| {
                let mut r = base(i);
                r.headers.push((
                    wire::VALUE_SCHEMA_ID_HEADER.to_vec(),
                    Some(framed(500, b"")),
                ));
                r
            },
            expect: |v| v == Verdict::Write { rewritten: 1 },
        },
        Case {
            name: "unframed record (no ID anywhere)",
            transform: rewrite(MissingIdPolicy::Fail),
            make: base,
            expect: |v| v == Verdict::Write { rewritten: 0 },
        },
        Case {
            name: "missing ID under passthrough",
            transform: rewrite(MissingIdPolicy::Passthrough),
            make: |i| {
                let mut r = base(i);
                r.value = Some(framed(42, &payload(i, VALUE - 5)));
                r
            },
            expect: |v| v == Verdict::Write { rewritten: 0 },
        },
        Case {
            name: "rewrite_ids off (map: None), framed value",
            transform: Transform {
                map: None,
                policy: MissingIdPolicy::Fail,
                to_timestamp: None,
                rewrite_key: true,
                rewrite_value: true,
            },
            make: |i| {
                let mut r = base(i);
                r.value = Some(framed(500, &payload(i, VALUE - 5)));
                r
            },
            expect: |v| v == Verdict::Write { rewritten: 0 },
        },
    ]
}

fn line(name: &str, best: Duration, n: usize, note: &str) {
    let ns = best.as_nanos() as f64 / n as f64;
    println!(
        "{name:<68} {ns:>8.1} ns/record {:>11.0} records/s{note}",
        1e9 / ns
    );
}

fn main() {
    println!(
        "best of {PASSES} passes; ns/record = wall time / records; records of ~{VALUE} B values\n"
    );

    // the rewrite: a working set of 4,096 records (about 4 MiB: like records
    // streaming through, not all in L1), each pass over them many times
    const SET: usize = 4_096;
    for case in cases() {
        let mut records: Vec<Record> = (0..SET).map(case.make).collect();
        assert!((case.expect)(case.transform.apply(&mut records[0].clone())));
        let mut best = Duration::MAX;
        let mut rewritten = 0u64;
        for _ in 0..PASSES {
            let t = Instant::now();
            for k in 0..REWRITES {
                let r = &mut records[k % SET];
                if let Verdict::Write { rewritten: n } = case.transform.apply(black_box(r)) {
                    rewritten += u64::from(n);
                }
            }
            best = best.min(t.elapsed());
        }
        black_box(rewritten);
        line(
            &format!("Transform::apply: {}", case.name),
            best,
            REWRITES,
            "",
        );
    }
    println!();

    // decoding: a segment as `backup` writes it (zstd level 1)
    let mut writer = SegmentWriter::with_capacity(SEGMENT_RECORDS * (VALUE + 128));
    let source: Vec<Record> = (0..SEGMENT_RECORDS)
        .map(|i| {
            let mut r = base(i);
            r.value = Some(framed(500, &payload(i, VALUE - 5)));
            r
        })
        .collect();
    for r in &source {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_deref()))
            .collect();
        writer
            .push(&RecordRef {
                offset: r.offset,
                timestamp: r.timestamp,
                timestamp_type: r.timestamp_type,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &headers,
            })
            .unwrap();
    }
    let segment = writer.finish().compress(1).unwrap();
    let raw_len = zstd::bulk::decompress(&segment.bytes, 1 << 30)
        .unwrap()
        .len();
    println!(
        "segment: {SEGMENT_RECORDS} records, {} bytes stored, {raw_len} bytes raw",
        segment.bytes.len()
    );

    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let t = Instant::now();
        let mut reader = SegmentReader::new(&segment.bytes[..]).unwrap();
        let mut n = 0;
        while let Some(r) = reader.next_record().unwrap() {
            black_box(&r);
            n += 1;
        }
        assert_eq!(n, SEGMENT_RECORDS);
        best = best.min(t.elapsed());
    }
    line(
        "SegmentReader::next_record (decompress + decode)",
        best,
        SEGMENT_RECORDS,
        &format!(
            "  {:.0} MB/s raw",
            raw_len as f64 / best.as_secs_f64() / 1e6
        ),
    );

    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let t = Instant::now();
        let raw = zstd::bulk::decompress(&segment.bytes, raw_len).unwrap();
        black_box(&raw);
        best = best.min(t.elapsed());
    }
    line(
        "  for scale: zstd::bulk::decompress of it alone",
        best,
        SEGMENT_RECORDS,
        &format!(
            "  {:.0} MB/s raw",
            raw_len as f64 / best.as_secs_f64() / 1e6
        ),
    );

    // decode + rewrite, the restore's whole per-record CPU before the producer
    let transform = Transform {
        map: Some(map()),
        policy: MissingIdPolicy::Fail,
        to_timestamp: None,
        rewrite_key: true,
        rewrite_value: true,
    };
    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let t = Instant::now();
        let mut reader = SegmentReader::new(&segment.bytes[..]).unwrap();
        while let Some(mut r) = reader.next_record().unwrap() {
            assert!(transform.apply(&mut r).writes());
            black_box(&r);
        }
        best = best.min(t.elapsed());
    }
    line("next_record + Transform::apply", best, SEGMENT_RECORDS, "");

    // the producer's headers, built as Worker::send does (one C allocation
    // per record, a lossy UTF-8 copy of each name)
    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let t = Instant::now();
        for r in &source {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (name, value) in &r.headers {
                headers = headers.insert(Header {
                    key: &String::from_utf8_lossy(name),
                    value: value.as_deref(),
                });
            }
            black_box(&headers);
        }
        best = best.min(t.elapsed());
    }
    line(
        "OwnedHeaders build (1 header), as Worker::send",
        best,
        SEGMENT_RECORDS,
        "",
    );
}
