//! The segment reader on arbitrary (decompressed) input: errors, never panics.
#![no_main]

use kafka_backup::segment::{MAGIC, SegmentReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut raw = MAGIC.to_vec();
    raw.extend_from_slice(data);
    let Ok(compressed) = zstd::encode_all(&raw[..], 1) else { return };
    if let Ok(reader) = SegmentReader::new(&compressed[..]) {
        for record in reader.take(10_000) {
            if record.is_err() {
                break;
            }
        }
    }
});
