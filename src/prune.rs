//! `prune`: which backups of a storage location to delete under retention
//! rules, and deleting them without breaking what is kept.
//!
//! [`decide`] is pure: the backups found (finished ones with their finish
//! time, parent and series; folders without a manifest), the leases of runs
//! still going, the rules and the time give one decision per backup with its
//! reason. The rules keep, per series (backups of one source cluster and
//! topic selection), the `keep_last` newest and every one finished within
//! `keep_within`; then every backup a kept one continues (its whole chain);
//! then every backup a live run holds. Folders without a manifest are
//! interrupted backups: deleted unless a run holds their lease or they are
//! an unfinished group backup (`frame.json`: its workers finish it).
//!
//! [`delete`] removes one backup under its lease (so no backup with that ID
//! starts meanwhile): its manifest first, so that it stops being a backup at
//! once (an interrupted prune leaves an interrupted folder the next prune
//! removes), then every other object under its folder. Children go before
//! their parents.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::lease::{Lease, LeaseError, LeaseRecord};
use crate::manifest::{self, MANIFEST_FILE};
use crate::storage::Store;

/// The retention rules; at least one must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub keep_last: Option<u32>,
    pub keep_within: Option<chrono::Duration>,
}

/// A backup folder of the location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Finished {
        backup_id: String,
        finished_at: DateTime<Utc>,
        parent: Option<String>,
        /// Backups of one series are counted together by `keep_last`.
        series: String,
    },
    /// A folder without a manifest.
    Interrupted {
        backup_id: String,
        /// `frame.json` is there: a group backup its workers may still finish.
        group: bool,
    },
}

impl Found {
    pub fn backup_id(&self) -> &str {
        match self {
            Found::Finished { backup_id, .. } | Found::Interrupted { backup_id, .. } => backup_id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Keep,
    Delete,
}

/// What prune does with one backup, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub backup_id: String,
    pub action: Action,
    pub reason: String,
    /// The series of a finished backup; none for an interrupted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// One decision per backup of `found`, in the order to carry them out:
/// series by series (newest first), then the interrupted folders; the
/// deletions are made in [`deletion_order`].
pub fn decide(
    found: &[Found],
    rules: Rules,
    now: DateTime<Utc>,
    held: &BTreeMap<String, String>,
) -> Vec<Decision> {
    let mut series: BTreeMap<&str, Vec<(&str, DateTime<Utc>)>> = BTreeMap::new();
    let mut parents: BTreeMap<&str, &str> = BTreeMap::new();
    for f in found {
        if let Found::Finished {
            backup_id,
            finished_at,
            parent,
            series: s,
        } = f
        {
            series.entry(s).or_default().push((backup_id, *finished_at));
            if let Some(p) = parent {
                parents.insert(backup_id, p);
            }
        }
    }
    let mut kept: BTreeMap<&str, String> = BTreeMap::new();
    for members in series.values_mut() {
        members.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(a.0)));
        for (rank, (id, at)) in members.iter().enumerate() {
            if let Some(n) = rules.keep_last
                && rank < n as usize
            {
                kept.insert(id, format!("one of the {n} newest of its series"));
            } else if let Some(d) = rules.keep_within
                && *at >= now - d
            {
                kept.insert(id, format!("finished within {}", show_duration(d)));
            }
        }
    }
    for (id, who) in held {
        if found.iter().any(|f| f.backup_id() == id) {
            kept.entry(id.as_str())
                .or_insert_with(|| format!("in use: {who}"));
        }
    }
    // what the kept ones continue, up their chains
    let roots: Vec<&str> = kept.keys().copied().collect();
    for id in roots {
        let mut child = id;
        let mut seen = BTreeSet::from([id]);
        while let Some(&parent) = parents.get(child) {
            if !seen.insert(parent) {
                break;
            }
            let needed = format!("`{child}` (kept) continues it");
            match kept.get(parent) {
                // kept for itself; its own chain is walked from it
                Some(reason) if !reason.contains("(kept) continues it") => break,
                _ => {
                    kept.insert(parent, needed);
                }
            }
            child = parent;
        }
    }
    let mut out = Vec::with_capacity(found.len());
    for (name, members) in &series {
        for (id, at) in members {
            let (action, reason) = match kept.get(id) {
                Some(reason) => (Action::Keep, reason.clone()),
                None => (Action::Delete, outside(rules)),
            };
            out.push(Decision {
                backup_id: (*id).to_owned(),
                action,
                reason,
                series: Some((*name).to_owned()),
                finished_at: Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            });
        }
    }
    for f in found {
        if let Found::Interrupted { backup_id, group } = f {
            let (action, reason) = if let Some(who) = held.get(backup_id) {
                (Action::Keep, format!("still running: {who}"))
            } else if *group {
                (
                    Action::Keep,
                    "an unfinished group backup (`frame.json`): `backup --group` finishes it; delete the folder by hand to give it up".to_owned(),
                )
            } else {
                (
                    Action::Delete,
                    "interrupted (no manifest) and no run holds its lease".to_owned(),
                )
            };
            out.push(Decision {
                backup_id: backup_id.clone(),
                action,
                reason,
                series: None,
                finished_at: None,
            });
        }
    }
    out
}

fn outside(rules: Rules) -> String {
    let mut parts = Vec::new();
    if let Some(n) = rules.keep_last {
        parts.push(format!("not one of the {n} newest of its series"));
    }
    if let Some(d) = rules.keep_within {
        parts.push(format!("finished more than {} ago", show_duration(d)));
    }
    parts.push("no kept backup continues it".to_owned());
    parts.join(", ")
}

/// The deletions of `decisions`, children before their parents: newest
/// first (a child always finishes after its parent), interrupted folders
/// (nobody's parent) first of all.
pub fn deletion_order(decisions: &[Decision]) -> Vec<&Decision> {
    let mut out: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.action == Action::Delete)
        .collect();
    out.sort_by(|a, b| {
        let key = |d: &Decision| {
            (
                d.finished_at.is_some(),
                std::cmp::Reverse(d.finished_at.clone()),
            )
        };
        key(a).cmp(&key(b)).then(a.backup_id.cmp(&b.backup_id))
    });
    out
}

/// `7d`, `36h`, `90m`, `2w`, `3600s`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (a number and s, m, h, d or w: `30d`)"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a duration (a number and s, m, h, d or w: `30d`)"
            ));
        }
    };
    n.checked_mul(seconds)
        .filter(|s| *s > 0)
        .map(chrono::Duration::seconds)
        .ok_or_else(|| format!("`{text}` is not a positive duration"))
}

pub fn show_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    for (unit, n) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// The series a finished backup counts in: its source cluster and topic selection.
pub fn series(m: &manifest::Head) -> String {
    let selection = match &m.selection {
        Some(s) => format!(
            "topics include {:?} exclude {:?}{}",
            s.include,
            s.exclude,
            if s.include_internal {
                " (internal too)"
            } else {
                ""
            }
        ),
        None => "topics as selected before format 4".to_owned(),
    };
    if m.source.bootstrap_servers.is_empty() {
        format!("registry only, {selection}")
    } else {
        format!("source `{}`, {selection}", m.source.bootstrap_servers)
    }
}

/// Why the backups of a location cannot be listed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("cannot list or delete in `{location}`: {source}")]
    Storage {
        location: String,
        source: object_store::Error,
    },
    #[error(transparent)]
    Read(#[from] manifest::ReadError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// Every backup folder of `store`, and the live runs by the backup ID they hold.
pub async fn survey(store: &Store) -> Result<(Vec<Found>, BTreeMap<String, String>), PruneError> {
    let storage = |source| PruneError::Storage {
        location: store.to_string(),
        source,
    };
    let prefix_parts = store.prefix().parts().count();
    let mut folders: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut listing = store.object_store().list(Some(store.prefix()));
    while let Some(meta) = listing.try_next().await.map_err(storage)? {
        let parts: Vec<_> = meta.location.parts().skip(prefix_parts).collect();
        let [id, rest @ ..] = parts.as_slice() else {
            continue;
        };
        if id.as_ref() == "leases" || rest.is_empty() {
            continue;
        }
        let entry = folders.entry(id.as_ref().to_owned()).or_default();
        if let [file] = rest {
            entry.0 |= file.as_ref() == MANIFEST_FILE;
            entry.1 |= file.as_ref() == "frame.json";
        }
    }
    let mut found = Vec::new();
    for (id, (finished, group)) in folders {
        if !finished {
            found.push(Found::Interrupted {
                backup_id: id,
                group,
            });
            continue;
        }
        let (m, _) = manifest::read_head(store, &id).await?;
        let finished_at = DateTime::parse_from_rfc3339(&m.finished_at)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| manifest::ReadError::BadManifest {
                path: format!("{id}/{MANIFEST_FILE}"),
                reason: format!("`finished_at` is not an RFC 3339 time: {e}"),
            })?;
        found.push(Found::Finished {
            series: series(&m),
            parent: m.parent.map(|p| p.backup_id),
            backup_id: id,
            finished_at,
        });
    }
    let held = Lease::live(store, |n| n.starts_with("backup-"))
        .await?
        .into_iter()
        .map(|(name, r)| (name["backup-".len()..].to_owned(), holder(&r)))
        .collect();
    Ok((found, held))
}

fn holder(r: &LeaseRecord) -> String {
    format!(
        "`{}` on host `{}` (process {}, since {})",
        r.command, r.host, r.pid, r.started_at
    )
}

/// Deletes backup `backup_id` under its lease: the manifest first, then
/// every other object of its folder. Gives the number of objects deleted.
pub async fn delete(store: &Store, backup_id: &str) -> Result<usize, PruneError> {
    let lease = Lease::acquire(
        store,
        &format!("backup-{backup_id}"),
        &format!("backup `{backup_id}` in `{store}`"),
        "prune",
        false,
    )
    .await?;
    let result = delete_folder(store, backup_id).await;
    lease.release().await;
    result
}

async fn delete_folder(store: &Store, backup_id: &str) -> Result<usize, PruneError> {
    let storage = |source| PruneError::Storage {
        location: store.to_string(),
        source,
    };
    let mut n = 0;
    match store
        .object_store()
        .delete(&store.path(&format!("{backup_id}/{MANIFEST_FILE}")))
        .await
    {
        Ok(()) => n += 1,
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(storage(e)),
    }
    let folder = store.path(backup_id);
    let objects: Vec<_> = store
        .object_store()
        .list(Some(&folder))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(storage)?;
    for path in objects {
        match store.object_store().delete(&path).await {
            Ok(()) => n += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(e)),
        }
    }
    if let Some(dir) = store.local_dir() {
        remove_empty_dirs(&dir.join(backup_id));
    }
    Ok(n)
}

/// Removes `dir` and the folders below it that hold no file (a file left
/// there keeps its folders).
fn remove_empty_dirs(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days_ago: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            - chrono::Duration::days(days_ago)
    }

    fn now() -> DateTime<Utc> {
        at(0)
    }

    fn finished(id: &str, days_ago: i64, parent: Option<&str>, series: &str) -> Found {
        Found::Finished {
            backup_id: id.into(),
            finished_at: at(days_ago),
            parent: parent.map(Into::into),
            series: series.into(),
        }
    }

    fn actions(d: &[Decision]) -> Vec<(&str, Action)> {
        d.iter().map(|d| (d.backup_id.as_str(), d.action)).collect()
    }

    #[test]
    fn keep_last_counts_per_series_and_keeps_what_a_kept_backup_continues() {
        use Action::*;
        let found = [
            finished("full-1", 9, None, "a"),
            finished("inc-1", 8, Some("full-1"), "a"),
            finished("inc-2", 7, Some("inc-1"), "a"),
            finished("full-2", 6, None, "a"),
            finished("inc-3", 5, Some("full-2"), "a"),
            finished("other", 30, None, "b"),
        ];
        let rules = Rules {
            keep_last: Some(2),
            keep_within: None,
        };
        let d = decide(&found, rules, now(), &BTreeMap::new());
        assert_eq!(
            actions(&d),
            [
                ("inc-3", Keep),
                ("full-2", Keep),
                ("inc-2", Delete),
                ("inc-1", Delete),
                ("full-1", Delete),
                ("other", Keep),
            ]
        );
        // keep the last one only: inc-3 needs full-2 all the same
        let d = decide(
            &found,
            Rules {
                keep_last: Some(1),
                keep_within: None,
            },
            now(),
            &BTreeMap::new(),
        );
        let full2 = d.iter().find(|d| d.backup_id == "full-2").unwrap();
        assert_eq!(full2.action, Keep);
        assert_eq!(full2.reason, "`inc-3` (kept) continues it");
        // keep within 7 days: inc-2 is kept, and with it inc-1 and full-1
        let d = decide(
            &found,
            Rules {
                keep_last: None,
                keep_within: Some(chrono::Duration::days(7)),
            },
            now(),
            &BTreeMap::new(),
        );
        assert_eq!(
            actions(&d),
            [
                ("inc-3", Keep),
                ("full-2", Keep),
                ("inc-2", Keep),
                ("inc-1", Keep),
                ("full-1", Keep),
                ("other", Delete),
            ]
        );
        assert_eq!(d[4].reason, "`inc-1` (kept) continues it");
        assert_eq!(
            d[5].reason,
            "finished more than 1w ago, no kept backup continues it"
        );
    }

    #[test]
    fn a_running_backup_and_an_unfinished_group_backup_are_kept() {
        use Action::*;
        let found = [
            finished("old", 40, None, "a"),
            finished("new", 1, None, "a"),
            Found::Interrupted {
                backup_id: "crashed".into(),
                group: false,
            },
            Found::Interrupted {
                backup_id: "running".into(),
                group: false,
            },
            Found::Interrupted {
                backup_id: "group".into(),
                group: true,
            },
        ];
        let held = BTreeMap::from([
            ("running".to_owned(), "`backup` on host `h`".to_owned()),
            ("old".to_owned(), "`backup` on host `h`".to_owned()),
        ]);
        let rules = Rules {
            keep_last: Some(1),
            keep_within: None,
        };
        let d = decide(&found, rules, now(), &held);
        assert_eq!(
            actions(&d),
            [
                ("new", Keep),
                ("old", Keep),
                ("crashed", Delete),
                ("running", Keep),
                ("group", Keep),
            ]
        );
        assert_eq!(d[1].reason, "in use: `backup` on host `h`");
        assert!(d[3].reason.starts_with("still running"));
        let order: Vec<&str> = deletion_order(&d)
            .iter()
            .map(|d| d.backup_id.as_str())
            .collect();
        assert_eq!(order, ["crashed"]);
    }

    #[test]
    fn children_are_deleted_before_their_parents() {
        let found = [
            finished("full", 9, None, "a"),
            finished("inc-1", 8, Some("full"), "a"),
            finished("inc-2", 7, Some("inc-1"), "a"),
            finished("keep", 1, None, "a"),
            Found::Interrupted {
                backup_id: "x".into(),
                group: false,
            },
        ];
        let d = decide(
            &found,
            Rules {
                keep_last: Some(1),
                keep_within: None,
            },
            now(),
            &BTreeMap::new(),
        );
        let order: Vec<&str> = deletion_order(&d)
            .iter()
            .map(|d| d.backup_id.as_str())
            .collect();
        assert_eq!(order, ["x", "inc-2", "inc-1", "full"]);
    }

    #[test]
    fn durations_read_and_show_in_their_units() {
        assert_eq!(parse_duration("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_duration("36h").unwrap(), chrono::Duration::hours(36));
        assert_eq!(parse_duration("2w").unwrap(), chrono::Duration::days(14));
        assert_eq!(
            parse_duration("90m").unwrap(),
            chrono::Duration::minutes(90)
        );
        assert_eq!(
            parse_duration("45s").unwrap(),
            chrono::Duration::seconds(45)
        );
        for bad in ["", "d", "30", "30y", "-1d", "0d", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(chrono::Duration::days(14)), "2w");
        assert_eq!(show_duration(chrono::Duration::hours(36)), "36h");
        assert_eq!(show_duration(chrono::Duration::seconds(61)), "61s");
    }
}
