//! The segment format: Kafka records of one topic-partition, exactly as
//! consumed (offset, timestamp and its type, key, value, headers with order,
//! duplicates and nulls), length-prefixed and zstd-compressed.
//!
//! ```text
//! segment  = zstd( MAGIC record* )
//! record   = u32 len, i64 offset, i64 timestamp (-1: none), u8 timestamp type,
//!            bytes? key, bytes? value, u32 header count, header*
//! header   = u32 name len, name, bytes? value
//! bytes?   = i32 len (-1: null), len bytes
//! ```
//! All integers big-endian. `len` covers the rest of the record, so a reader can
//! tell a truncated record from a corrupt one.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// First bytes of every decompressed segment: format name and version.
pub const MAGIC: &[u8; 6] = b"KBSEG\x01";

/// How the timestamp of a record was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampType {
    NotAvailable,
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    fn to_byte(self) -> u8 {
        match self {
            TimestampType::NotAvailable => 0,
            TimestampType::CreateTime => 1,
            TimestampType::LogAppendTime => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(TimestampType::NotAvailable),
            1 => Some(TimestampType::CreateTime),
            2 => Some(TimestampType::LogAppendTime),
            _ => None,
        }
    }
}

/// A record borrowed from the consumer, as it is written.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub timestamp_type: TimestampType,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

/// A record read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub timestamp_type: TimestampType,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// What the manifest says of one segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentMeta {
    pub first_offset: i64,
    pub last_offset: i64,
    pub record_count: u64,
    /// Smallest and largest record timestamps (ms), when records had any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timestamp: Option<i64>,
    /// Key, value and header bytes before compression.
    pub uncompressed_bytes: u64,
    /// Size of the stored (compressed) file.
    pub size: u64,
    /// SHA-256 of the stored file, hex.
    pub sha256: String,
}

/// A finished segment: the bytes to store and their description.
pub struct Segment {
    pub bytes: Vec<u8>,
    pub meta: SegmentMeta,
}

/// Builds one segment uncompressed; [`RawSegment::compress`] makes the stored
/// bytes in one call, on another thread if the caller likes. (One-shot
/// compression of a whole buffer is much cheaper than streaming it through
/// zstd's window, and it takes compression off the consumer's thread.)
pub struct SegmentWriter {
    raw: Vec<u8>,
    first_offset: Option<i64>,
    last_offset: i64,
    count: u64,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    payload_bytes: u64,
}

impl SegmentWriter {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A writer whose buffer is allocated once for about `bytes` of records.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut raw = Vec::with_capacity(bytes + MAGIC.len());
        raw.extend_from_slice(MAGIC);
        Self {
            raw,
            first_offset: None,
            last_offset: -1,
            count: 0,
            min_ts: None,
            max_ts: None,
            payload_bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn record_count(&self) -> u64 {
        self.count
    }

    /// Bytes of keys, values and headers taken so far (before compression).
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Bytes of the segment before compression: its magic and its records
    /// as framed.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether `r` goes into this segment without taking it past `limit`
    /// bytes before compression. An empty segment takes any record, so a
    /// record larger than the limit is a segment of its own.
    pub fn fits(&self, r: &RecordRef<'_>, limit: usize) -> bool {
        self.is_empty() || self.raw.len().saturating_add(encoded_len(r)) <= limit
    }

    pub fn push(&mut self, r: &RecordRef<'_>) -> io::Result<()> {
        // written straight into the segment (no copy through a scratch
        // buffer), the length patched in once the record is complete; a
        // record that cannot be encoded leaves nothing behind
        let start = self.raw.len();
        if let Err(e) = encode_record(&mut self.raw, r) {
            self.raw.truncate(start);
            return Err(e);
        }
        let len = match len_u32(self.raw.len() - start - 4) {
            Ok(len) => len,
            Err(e) => {
                self.raw.truncate(start);
                return Err(e);
            }
        };
        self.raw[start..start + 4].copy_from_slice(&len.to_be_bytes());

        self.first_offset.get_or_insert(r.offset);
        self.last_offset = r.offset;
        self.count += 1;
        if let Some(ts) = r.timestamp.filter(|t| *t >= 0) {
            self.min_ts = Some(self.min_ts.map_or(ts, |m| m.min(ts)));
            self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        }
        let header_bytes: usize = r
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.map_or(0, <[u8]>::len))
            .sum();
        self.payload_bytes +=
            (r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len) + header_bytes) as u64;
        Ok(())
    }

    /// Closes the segment: its records, uncompressed, with their description.
    pub fn finish(self) -> RawSegment {
        RawSegment {
            raw: self.raw,
            first_offset: self.first_offset.unwrap_or(-1),
            last_offset: self.last_offset,
            record_count: self.count,
            min_timestamp: self.min_ts,
            max_timestamp: self.max_ts,
            payload_bytes: self.payload_bytes,
        }
    }
}

impl Default for SegmentWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// A closed segment before compression.
pub struct RawSegment {
    raw: Vec<u8>,
    first_offset: i64,
    last_offset: i64,
    record_count: u64,
    min_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    payload_bytes: u64,
}

impl RawSegment {
    pub fn first_offset(&self) -> i64 {
        self.first_offset
    }

    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    /// Compresses the segment into the bytes to store, and hashes them.
    pub fn compress(self, level: i32) -> io::Result<Segment> {
        self.compress_then(level, |bytes| bytes)
    }

    /// Compresses the segment, passes the compressed bytes through `store`
    /// (sealing them, `crate::crypto`), and hashes what it gives: the bytes
    /// stored, hashed once.
    pub fn compress_then(
        self,
        level: i32,
        store: impl FnOnce(Vec<u8>) -> Vec<u8>,
    ) -> io::Result<Segment> {
        let mut bytes = zstd::bulk::compress(&self.raw, level)?;
        drop(self.raw);
        // zstd sized the buffer for incompressible input; what is kept until
        // stored is the compressed size (a shrink in place, no copy)
        bytes.shrink_to_fit();
        let bytes = store(bytes);
        let sha256 = sha256_hex(&bytes);
        Ok(Segment {
            meta: SegmentMeta {
                first_offset: self.first_offset,
                last_offset: self.last_offset,
                record_count: self.record_count,
                min_timestamp: self.min_timestamp,
                max_timestamp: self.max_timestamp,
                uncompressed_bytes: self.payload_bytes,
                size: bytes.len() as u64,
                sha256,
            },
            bytes,
        })
    }
}

/// The bytes [`encode_record`] writes for `r`.
pub fn encoded_len(r: &RecordRef<'_>) -> usize {
    let bytes = |b: Option<&[u8]>| 4 + b.map_or(0, <[u8]>::len);
    let headers: usize = r.headers.iter().map(|(n, v)| 4 + n.len() + bytes(*v)).sum();
    4 + 8 + 8 + 1 + bytes(r.key) + bytes(r.value) + 4 + headers
}

/// Appends one record with a zero length placeholder in front.
fn encode_record(out: &mut Vec<u8>, r: &RecordRef<'_>) -> io::Result<()> {
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&r.offset.to_be_bytes());
    out.extend_from_slice(&r.timestamp.unwrap_or(-1).to_be_bytes());
    out.push(r.timestamp_type.to_byte());
    put_bytes(out, r.key)?;
    put_bytes(out, r.value)?;
    out.extend_from_slice(&len_u32(r.headers.len())?.to_be_bytes());
    for (name, value) in r.headers {
        out.extend_from_slice(&len_u32(name.len())?.to_be_bytes());
        out.extend_from_slice(name);
        put_bytes(out, *value)?;
    }
    Ok(())
}

fn len_u32(len: usize) -> io::Result<u32> {
    u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "field longer than 4 GiB"))
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> io::Result<()> {
    match bytes {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(b) => {
            let len = i32::try_from(b.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "field longer than 2 GiB")
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Why a segment cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("checksum mismatch: expected sha256 `{expected}`, the file has `{actual}`")]
    Checksum { expected: String, actual: String },
    #[error("not a kafka-backup segment (bad magic bytes)")]
    BadMagic,
    #[error("corrupt record after offset {after}: {reason}")]
    Corrupt { after: i64, reason: String },
    #[error("cannot decompress: {0}")]
    Io(#[from] io::Error),
}

/// Reads the records of a stored segment after checking its SHA-256.
pub fn verify(bytes: &[u8], expected_sha256: &str) -> Result<(), SegmentError> {
    let actual = sha256_hex(bytes);
    if actual != expected_sha256 {
        return Err(SegmentError::Checksum {
            expected: expected_sha256.to_owned(),
            actual,
        });
    }
    Ok(())
}

/// Describes a stored segment from its bytes alone, as [`RawSegment::compress`]
/// described it when it was written (offsets, counts, timestamps, sizes,
/// SHA-256), handing each record to `each` on the way. A backup worker that
/// resumes a partition another one began reads its stored segments back so.
pub fn describe(bytes: &[u8], mut each: impl FnMut(&Record)) -> Result<SegmentMeta, SegmentError> {
    let mut reader = SegmentReader::new(bytes)?;
    let (mut first, mut last, mut count) = (None, -1, 0u64);
    let (mut min_ts, mut max_ts): (Option<i64>, Option<i64>) = (None, None);
    let mut payload = 0u64;
    while let Some(r) = reader.next_record()? {
        first.get_or_insert(r.offset);
        last = r.offset;
        count += 1;
        if let Some(ts) = r.timestamp.filter(|t| *t >= 0) {
            min_ts = Some(min_ts.map_or(ts, |m| m.min(ts)));
            max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
        }
        let headers: usize = r
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        payload += (r.key.as_ref().map_or(0, Vec::len)
            + r.value.as_ref().map_or(0, Vec::len)
            + headers) as u64;
        each(&r);
    }
    Ok(SegmentMeta {
        first_offset: first.unwrap_or(-1),
        last_offset: last,
        record_count: count,
        min_timestamp: min_ts,
        max_timestamp: max_ts,
        uncompressed_bytes: payload,
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    })
}

/// Streams the records of a segment, decompressing as it goes.
pub struct SegmentReader<R: Read> {
    decoder: zstd::Decoder<'static, io::BufReader<R>>,
    last_offset: i64,
    buf: Vec<u8>,
}

impl<R: Read> SegmentReader<R> {
    pub fn new(reader: R) -> Result<Self, SegmentError> {
        let mut decoder = zstd::Decoder::new(reader)?;
        let mut magic = [0u8; 6];
        decoder
            .read_exact(&mut magic)
            .map_err(|_| SegmentError::BadMagic)?;
        if &magic != MAGIC {
            return Err(SegmentError::BadMagic);
        }
        Ok(Self {
            decoder,
            last_offset: -1,
            buf: Vec::new(),
        })
    }

    fn corrupt(&self, reason: impl Into<String>) -> SegmentError {
        SegmentError::Corrupt {
            after: self.last_offset,
            reason: reason.into(),
        }
    }

    /// The next record, `None` at the clean end of the segment.
    pub fn next_record(&mut self) -> Result<Option<Record>, SegmentError> {
        let mut len = [0u8; 4];
        match read_full(&mut self.decoder, &mut len)? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(self.corrupt("truncated record length")),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len < 8 + 8 + 1 + 4 + 4 + 4 {
            return Err(self.corrupt(format!("record length {len} is too small")));
        }
        // grow with the bytes that really arrive: a corrupt length must not
        // allocate gigabytes before the stream turns out to be short
        self.buf.clear();
        (&mut self.decoder)
            .take(len as u64)
            .read_to_end(&mut self.buf)?;
        if self.buf.len() != len {
            return Err(self.corrupt("truncated record"));
        }
        let record = parse_record(&self.buf).map_err(|reason| self.corrupt(reason))?;
        self.last_offset = record.offset;
        Ok(Some(record))
    }
}

impl<R: Read> Iterator for SegmentReader<R> {
    type Item = Result<Record, SegmentError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!(
                "needs {n} more bytes, record has {}",
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(format!("negative length {n}")),
            n => Ok(Some(self.take(n as usize)?.to_vec())),
        }
    }
}

fn parse_record(buf: &[u8]) -> Result<Record, String> {
    let mut c = Cursor { buf };
    let offset = c.i64()?;
    let ts = c.i64()?;
    let ts_type = c.take(1)?[0];
    let timestamp_type = TimestampType::from_byte(ts_type)
        .ok_or_else(|| format!("unknown timestamp type {ts_type}"))?;
    let key = c.bytes()?;
    let value = c.bytes()?;
    let count = c.u32()? as usize;
    let mut headers = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let name_len = c.u32()? as usize;
        let name = c.take(name_len)?.to_vec();
        headers.push((name, c.bytes()?));
    }
    if !c.buf.is_empty() {
        return Err(format!(
            "{} bytes left over at the end of the record",
            c.buf.len()
        ));
    }
    Ok(Record {
        offset,
        timestamp: (ts >= 0).then_some(ts),
        timestamp_type,
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record {
                offset: 5,
                timestamp: Some(1_700_000_000_000),
                timestamp_type: TimestampType::CreateTime,
                key: Some(b"k".to_vec()),
                value: Some(vec![0, 0, 0, 0, 7, 1, 2]),
                headers: vec![
                    (b"h".to_vec(), Some(b"1".to_vec())),
                    (b"h".to_vec(), None),
                    (b"".to_vec(), Some(Vec::new())),
                ],
            },
            Record {
                offset: 9,
                timestamp: None,
                timestamp_type: TimestampType::NotAvailable,
                key: None,
                value: Some(Vec::new()),
                headers: vec![],
            },
            Record {
                offset: 10,
                timestamp: Some(3),
                timestamp_type: TimestampType::LogAppendTime,
                key: Some(Vec::new()),
                value: None,
                headers: vec![],
            },
        ]
    }

    fn write(records: &[Record]) -> Segment {
        let mut w = SegmentWriter::new();
        for r in records {
            as_ref(r, |r| w.push(r)).unwrap();
        }
        w.finish().compress(3).unwrap()
    }

    /// `f` of `r` borrowed as the writer takes a record.
    fn as_ref<T>(r: &Record, f: impl FnOnce(&RecordRef<'_>) -> T) -> T {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_deref()))
            .collect();
        f(&RecordRef {
            offset: r.offset,
            timestamp: r.timestamp,
            timestamp_type: r.timestamp_type,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &headers,
        })
    }

    #[test]
    fn encoded_len_is_what_push_writes_and_fits_keeps_a_segment_within_its_limit() {
        for r in sample() {
            as_ref(&r, |r| {
                let mut w = SegmentWriter::new();
                assert!(w.fits(r, 0), "an empty segment takes any record");
                w.push(r).unwrap();
                let one = w.len();
                assert_eq!(one, MAGIC.len() + encoded_len(r));
                assert!(w.fits(r, one + encoded_len(r)));
                assert!(!w.fits(r, one + encoded_len(r) - 1));
                w.push(r).unwrap();
                assert_eq!(w.len(), MAGIC.len() + 2 * encoded_len(r));
            });
        }
    }

    #[test]
    fn a_stored_segment_describes_itself_as_when_written() {
        let segment = write(&sample());
        let mut offsets = Vec::new();
        let meta = describe(&segment.bytes, |r| offsets.push(r.offset)).unwrap();
        assert_eq!(meta, segment.meta);
        assert_eq!(
            offsets,
            sample().iter().map(|r| r.offset).collect::<Vec<_>>()
        );
        let cut = &segment.bytes[..segment.bytes.len() / 2];
        assert!(
            describe(cut, |_| {}).is_err(),
            "a cut segment is no segment"
        );
    }

    #[test]
    fn records_round_trip_byte_for_byte() {
        let records = sample();
        let seg = write(&records);
        assert_eq!(seg.meta.first_offset, 5);
        assert_eq!(seg.meta.last_offset, 10);
        assert_eq!(seg.meta.record_count, 3);
        assert_eq!(seg.meta.min_timestamp, Some(3));
        assert_eq!(seg.meta.max_timestamp, Some(1_700_000_000_000));
        assert_eq!(seg.meta.sha256, sha256_hex(&seg.bytes));
        verify(&seg.bytes, &seg.meta.sha256).unwrap();
        let back: Vec<Record> = SegmentReader::new(&seg.bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let seg = write(&sample());
        let mut bytes = seg.bytes.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        assert!(matches!(
            verify(&bytes, &seg.meta.sha256),
            Err(SegmentError::Checksum { .. })
        ));
    }

    #[test]
    fn truncation_is_reported_not_hidden() {
        // a truncated *decompressed* stream: write a raw stream cut in a record
        let mut raw = MAGIC.to_vec();
        raw.extend_from_slice(&100u32.to_be_bytes());
        raw.extend_from_slice(&[0u8; 10]);
        let bytes = zstd::encode_all(&raw[..], 3).unwrap();
        let err = SegmentReader::new(&bytes[..])
            .unwrap()
            .next_record()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt record after offset -1: truncated record"
        );
        let not_ours = zstd::encode_all(&b"hello world"[..], 3).unwrap();
        assert!(matches!(
            SegmentReader::new(&not_ours[..]),
            Err(SegmentError::BadMagic)
        ));
    }

    #[test]
    fn a_huge_corrupt_length_does_not_allocate_it() {
        // the length the fuzzer found: 0x4AB1A385 bytes announced, none there
        let mut raw = MAGIC.to_vec();
        raw.extend_from_slice(&[74, 177, 163, 133]);
        let bytes = zstd::encode_all(&raw[..], 1).unwrap();
        let err = SegmentReader::new(&bytes[..])
            .unwrap()
            .next_record()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt record after offset -1: truncated record"
        );
    }

    #[test]
    fn an_empty_segment_reads_as_no_records() {
        let seg = write(&[]);
        assert_eq!(seg.meta.record_count, 0);
        assert_eq!(SegmentReader::new(&seg.bytes[..]).unwrap().count(), 0);
    }
}
