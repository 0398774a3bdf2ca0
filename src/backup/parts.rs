//! `parts/<topic>/<partition>.json`: one partition of a group backup, done.
//! The worker that completes a partition writes its part create-only (the
//! partition's manifest entry, and who did it); the backup is complete when
//! every partition of the frame has one, and the manifest is assembled from
//! them ([`assemble`]) after checking each chain of segments against its
//! ends and against what storage holds ([`check`]).
//!
//! A worker that takes a partition over lists its stored segments, keeps the
//! chain from the low watermark ([`fit_chain`]), reads those back (their
//! counts and schema IDs: [`crate::segment::describe`]) and goes on after the
//! last one; a segment that does not fit the chain is deleted and rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::BackupError;
use super::frame::{Ends, Frame, Worker};
use super::topics::{Stored, segment_path};
use crate::manifest::{FileEntry, PartitionManifest, RecordIds, SegmentEntry, TopicManifest};
use crate::storage::Store;

/// `format` of every part this version writes.
pub const PART_FORMAT: &str = "kafka-backup/part/v1";

/// One completed partition of a group backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub format: String,
    pub topic: String,
    pub partition: i32,
    /// The worker that completed it, and when (RFC 3339).
    pub completed_by: Worker,
    pub completed_at: String,
    /// The offset it started consuming at: after the segments it found
    /// stored (`resumed_segments` of them), or the low watermark.
    pub started_at_offset: i64,
    pub resumed_segments: usize,
    /// The partition's entry in the manifest, as one run would have written it.
    pub manifest: PartitionManifest,
}

/// The part's path inside the backup folder.
pub fn part_path(topic: &str, partition: i32) -> String {
    format!("parts/{topic}/{partition}.json")
}

/// The folder of a partition's segments inside the backup folder.
fn segment_folder(topic: &str, partition: i32) -> String {
    format!("kafka/{topic}/{partition}/")
}

/// The offsets a segment's file name gives (`<first>-<last>.seg.zst`).
pub fn segment_offsets(file_name: &str) -> Option<(i64, i64)> {
    let stem = file_name.strip_suffix(".seg.zst")?;
    let (first, last) = stem.split_once('-')?;
    let parse = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    Some((parse(first)?, parse(last)?))
}

/// A stored segment as listed: its path relative to the backup folder,
/// offsets from its name, and size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub first: i64,
    pub last: i64,
    pub path: String,
    pub size: u64,
}

/// Splits the listed segments of a partition into the chain a worker goes
/// on from (from `low`, in offset order, each after the one before, all
/// below `high`) and the rest, which does not fit it. Offsets between two
/// segments of a chain need not be consecutive: transaction markers,
/// aborted and compacted records have offsets but are not consumed.
pub fn fit_chain(mut listed: Vec<Listed>, low: i64, high: i64) -> (Vec<Listed>, Vec<Listed>) {
    listed.sort();
    let (mut chain, mut rest) = (Vec::new(), Vec::new());
    let mut next = low;
    for l in listed {
        if rest.is_empty() && l.first >= next && l.last >= l.first && l.last < high {
            next = l.last + 1;
            chain.push(l);
        } else {
            rest.push(l);
        }
    }
    (chain, rest)
}

/// The segments stored under a partition's folder, with what is not a
/// segment (a name that does not parse) left out.
pub async fn list_segments(
    store: &Store,
    backup_id: &str,
    topic: &str,
    partition: i32,
) -> Result<Vec<Listed>, BackupError> {
    let folder = format!("{backup_id}/{}", segment_folder(topic, partition));
    let prefix = store.path(&folder);
    let base = store.path(backup_id);
    let mut listing = store.object_store().list(Some(&prefix));
    let mut out = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|source| BackupError::Storage {
            path: folder.clone(),
            source,
        })?;
        let Some(name) = meta.location.filename() else {
            continue;
        };
        let Some((first, last)) = segment_offsets(name) else {
            continue;
        };
        let relative: Vec<String> = meta
            .location
            .prefix_match(&base)
            .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
            .unwrap_or_default();
        out.push(Listed {
            first,
            last,
            path: relative.join("/"),
            size: meta.size,
        });
    }
    Ok(out)
}

/// What a worker taking `topic` `partition` on finds stored: the chain of
/// segments from the low watermark, read back. Segments that do not fit the
/// chain, or do not read back as what their name says, are deleted (this
/// worker owns the partition now; the group gives it to one at a time) and
/// their records consumed again. `None` when `stop` was set meanwhile.
pub fn resume(
    store: &Store,
    backup_id: &str,
    topic: &str,
    partition: i32,
    ends: &Ends,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) -> Result<Option<Stored>, BackupError> {
    let listed = runtime.block_on(list_segments(store, backup_id, topic, partition))?;
    let (chain, mut rest) = fit_chain(listed, ends.low, ends.high);
    let mut stored = Stored::default();
    let mut kept = 0;
    for l in &chain {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let shown = format!("{backup_id}/{}", l.path);
        let bytes = runtime
            .block_on(async {
                store
                    .object_store()
                    .get(&store.path(&shown))
                    .await?
                    .bytes()
                    .await
            })
            .map_err(|source| BackupError::Storage {
                path: shown.clone(),
                source,
            })?;
        let mut ids = RecordIds::default();
        let described = crate::segment::describe(&bytes, |r| {
            ids.key.observe(r.key.as_deref());
            ids.value.observe(r.value.as_deref());
        });
        match described {
            Ok(meta)
                if meta.first_offset == l.first
                    && meta.last_offset == l.last
                    && l.path == segment_path(topic, partition, l.first, l.last) =>
            {
                stored.schema_ids.merge(&ids);
                stored.segments.push(SegmentEntry {
                    path: l.path.clone(),
                    meta,
                });
                kept += 1;
            }
            other => {
                tracing::warn!(
                    topic,
                    partition,
                    segment = shown,
                    problem = ?other.err(),
                    "a stored segment does not read back as its name says: it and what follows are written again"
                );
                break;
            }
        }
    }
    rest.extend(chain.into_iter().skip(kept));
    for l in rest {
        let shown = format!("{backup_id}/{}", l.path);
        tracing::warn!(
            topic,
            partition,
            segment = shown,
            "deleting a stored segment that does not continue the partition's chain"
        );
        runtime
            .block_on(store.object_store().delete(&store.path(&shown)))
            .map_err(|source| BackupError::Storage {
                path: shown.clone(),
                source,
            })?;
    }
    Ok(Some(stored))
}

/// The part of one partition, when it was written.
pub async fn read(
    store: &Store,
    backup_id: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<Part>, BackupError> {
    let shown = format!("{backup_id}/{}", part_path(topic, partition));
    match store.object_store().get(&store.path(&shown)).await {
        Ok(got) => {
            let bytes = got.bytes().await.map_err(|source| BackupError::Storage {
                path: shown.clone(),
                source,
            })?;
            let part: Part = serde_json::from_slice(&bytes).map_err(|e| BackupError::BadFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            if part.format != PART_FORMAT || part.topic != topic || part.partition != partition {
                return Err(BackupError::BadFile {
                    path: shown,
                    reason: format!(
                        "it is a `{}` part of `{}` partition {}",
                        part.format, part.topic, part.partition
                    ),
                });
            }
            Ok(Some(part))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(BackupError::Storage {
            path: shown,
            source,
        }),
    }
}

/// Writes a part create-only; `false` when the partition was completed by
/// another worker first (its part stays).
pub async fn create(store: &Store, backup_id: &str, part: &Part) -> Result<bool, BackupError> {
    let shown = format!("{backup_id}/{}", part_path(&part.topic, part.partition));
    let bytes = serde_json::to_vec_pretty(part).expect("a part serializes");
    super::create_only(store, &shown, bytes).await
}

/// The partitions of `frame` that have a part, by listing `parts/`.
pub async fn completed(
    store: &Store,
    frame: &Frame,
) -> Result<BTreeSet<(String, i32)>, BackupError> {
    let folder = format!("{}/parts/", frame.backup_id);
    let mut listing = store.object_store().list(Some(&store.path(&folder)));
    let mut out = BTreeSet::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|source| BackupError::Storage {
            path: folder.clone(),
            source,
        })?;
        let parts: Vec<String> = meta
            .location
            .parts()
            .map(|p| p.as_ref().to_owned())
            .collect();
        let [.., topic, file] = parts.as_slice() else {
            continue;
        };
        let Some(partition) = file
            .strip_suffix(".json")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if frame.ends(topic, partition).is_some() {
            out.insert((topic.clone(), partition));
        }
    }
    Ok(out)
}

/// Checks one partition's part before it goes into the manifest: its ends
/// are the frame's; its segments are named for their offsets, lie in
/// `[low, high)`, each after the one before (no overlap) and add up to its
/// record count; storage holds each of them at its size, and no other
/// segment of the partition (one would be a second chain: two writers that
/// did not cut alike). The error says what is wrong.
pub fn check(
    topic: &str,
    partition: i32,
    ends: &Ends,
    part: &PartitionManifest,
    stored: &[Listed],
) -> Result<(), String> {
    if (
        part.low_watermark,
        part.high_watermark,
        part.last_stable_offset,
    ) != (ends.low, ends.high, Some(ends.last_stable))
    {
        return Err(format!(
            "its ends are [{}, {}) (last stable {:?}), the frame's [{}, {}) (last stable {})",
            part.low_watermark,
            part.high_watermark,
            part.last_stable_offset,
            ends.low,
            ends.high,
            ends.last_stable
        ));
    }
    let mut next = ends.low;
    let mut count = 0;
    for s in &part.segments {
        let m = &s.meta;
        let name = segment_path(topic, partition, m.first_offset, m.last_offset);
        if s.path != name {
            return Err(format!(
                "segment `{}` holds offsets {} to {}: it should be named `{name}`",
                s.path, m.first_offset, m.last_offset
            ));
        }
        if m.first_offset < next {
            return Err(format!(
                "segment `{}` overlaps what comes before it (it should start at {next} or after)",
                s.path
            ));
        }
        if m.last_offset < m.first_offset || m.last_offset >= ends.high {
            return Err(format!(
                "segment `{}` ends past the partition's end offset {}",
                s.path, ends.high
            ));
        }
        next = m.last_offset + 1;
        count += m.record_count;
    }
    if count != part.record_count {
        return Err(format!(
            "its segments hold {count} records, it says {}",
            part.record_count
        ));
    }
    let listed: BTreeMap<&str, u64> = stored.iter().map(|l| (l.path.as_str(), l.size)).collect();
    for s in &part.segments {
        match listed.get(s.path.as_str()) {
            None => return Err(format!("segment `{}` is not in storage", s.path)),
            Some(&size) if size != s.meta.size => {
                return Err(format!(
                    "segment `{}` is {size} bytes in storage, its part says {}",
                    s.path, s.meta.size
                ));
            }
            Some(_) => {}
        }
    }
    let chain: BTreeSet<&str> = part.segments.iter().map(|s| s.path.as_str()).collect();
    if let Some(other) = stored.iter().find(|l| !chain.contains(l.path.as_str())) {
        return Err(format!(
            "storage holds segment `{}`, which is not in its chain (two workers cut it differently)",
            other.path
        ));
    }
    Ok(())
}

/// The manifest's topics and segment files, from the frame and one part per
/// partition (every partition of the frame must have one).
pub fn assemble(
    frame: &Frame,
    parts: &BTreeMap<(String, i32), PartitionManifest>,
) -> (BTreeMap<String, TopicManifest>, BTreeMap<String, FileEntry>) {
    let mut topics = BTreeMap::new();
    let mut files = BTreeMap::new();
    for (name, t) in &frame.topics {
        let mut partitions = BTreeMap::new();
        for &p in t.partitions.keys() {
            let part = parts[&(name.clone(), p)].clone();
            for s in &part.segments {
                files.insert(
                    s.path.clone(),
                    FileEntry {
                        size: s.meta.size,
                        sha256: s.meta.sha256.clone(),
                    },
                );
            }
            partitions.insert(p, part);
        }
        topics.insert(
            name.clone(),
            TopicManifest {
                partition_count: t.partition_count,
                replication_factor: t.replication_factor,
                configs: t.configs.clone(),
                partitions,
            },
        );
    }
    (topics, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::SegmentMeta;

    fn listed(first: i64, last: i64) -> Listed {
        Listed {
            first,
            last,
            path: segment_path("t", 0, first, last),
            size: 10,
        }
    }

    fn entry(first: i64, last: i64, count: u64) -> SegmentEntry {
        SegmentEntry {
            path: segment_path("t", 0, first, last),
            meta: SegmentMeta {
                first_offset: first,
                last_offset: last,
                record_count: count,
                min_timestamp: None,
                max_timestamp: None,
                uncompressed_bytes: 1,
                size: 10,
                sha256: "00".into(),
            },
        }
    }

    fn part(segments: Vec<SegmentEntry>) -> PartitionManifest {
        PartitionManifest {
            low_watermark: 0,
            high_watermark: 300,
            last_stable_offset: Some(300),
            left_out_from: None,
            continues_from: None,
            record_count: segments.iter().map(|s| s.meta.record_count).sum(),
            segments,
            schema_ids: RecordIds::default(),
        }
    }

    const ENDS: Ends = Ends {
        low: 0,
        high: 300,
        last_stable: 300,
    };

    #[test]
    fn segment_names_give_their_offsets() {
        assert_eq!(
            segment_offsets("00000000000000000100-00000000000000000199.seg.zst"),
            Some((100, 199))
        );
        for bad in [
            "x.seg.zst",
            "1-2.json",
            "-1-2.seg.zst",
            "1-.seg.zst",
            "a-b.seg.zst",
        ] {
            assert_eq!(segment_offsets(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_chain_runs_from_low_and_stops_at_the_first_misfit() {
        // stored out of order; a gap in offsets (markers) is fine
        let (chain, rest) = fit_chain(
            vec![listed(100, 199), listed(0, 99), listed(205, 250)],
            0,
            300,
        );
        assert_eq!(
            chain,
            vec![listed(0, 99), listed(100, 199), listed(205, 250)]
        );
        assert!(rest.is_empty());
        // an overlapping segment (another cut) ends the chain: it and
        // everything after it are rewritten
        let (chain, rest) = fit_chain(
            vec![listed(0, 99), listed(50, 149), listed(150, 199)],
            0,
            300,
        );
        assert_eq!(chain, vec![listed(0, 99)]);
        assert_eq!(rest, vec![listed(50, 149), listed(150, 199)]);
        // below the low watermark (records deleted since) or past the end
        let (chain, rest) = fit_chain(vec![listed(0, 99), listed(100, 400)], 50, 300);
        assert!(chain.is_empty());
        assert_eq!(rest.len(), 2);
    }

    #[test]
    fn a_part_is_checked_against_its_ends_names_and_storage() {
        let good = part(vec![
            entry(0, 99, 100),
            entry(100, 199, 100),
            entry(200, 299, 100),
        ]);
        let stored: Vec<Listed> = good
            .segments
            .iter()
            .map(|s| listed(s.meta.first_offset, s.meta.last_offset))
            .collect();
        assert_eq!(check("t", 0, &ENDS, &good, &stored), Ok(()));

        let overlap = part(vec![entry(0, 99, 100), entry(90, 199, 110)]);
        let err = check("t", 0, &ENDS, &overlap, &stored).unwrap_err();
        assert!(err.contains("overlaps"), "{err}");

        let past = part(vec![entry(0, 99, 100), entry(100, 300, 201)]);
        let err = check("t", 0, &ENDS, &past, &stored).unwrap_err();
        assert!(err.contains("past the partition's end offset 300"), "{err}");

        let mut miscounted = good.clone();
        miscounted.record_count += 1;
        let err = check("t", 0, &ENDS, &miscounted, &stored).unwrap_err();
        assert!(err.contains("hold 300 records, it says 301"), "{err}");

        let err = check("t", 0, &ENDS, &good, &stored[..2]).unwrap_err();
        assert!(err.contains("is not in storage"), "{err}");

        let mut stray = stored.clone();
        stray.push(listed(100, 149));
        let err = check("t", 0, &ENDS, &good, &stray).unwrap_err();
        assert!(err.contains("not in its chain"), "{err}");

        let other_ends = Ends { high: 400, ..ENDS };
        let err = check("t", 0, &other_ends, &good, &stored).unwrap_err();
        assert!(err.contains("the frame's [0, 400)"), "{err}");
    }
}
