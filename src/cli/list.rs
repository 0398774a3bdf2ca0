//! `kafka-backup list --path URL`: the backups under a storage location, with
//! the folders of interrupted ones (no manifest) flagged.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use futures::TryStreamExt;
use serde::Serialize;

use super::{ListArgs, OutputFormat};
use crate::manifest::MANIFEST_FILE;
use crate::storage::Location;

#[derive(Debug, Serialize)]
struct Entry {
    backup_id: String,
    complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    /// The backup an incremental one continues (its records are those after
    /// the parent's; `records` counts its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    /// The key an encrypted backup is sealed with (its name).
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted_with: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<u64>,
    files: usize,
    bytes: u64,
}

pub fn run(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let store = Location::parse(&args.path)?.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let entries = runtime.block_on(async {
        // one listing of everything below the prefix: backup folders and their files
        let mut folders: BTreeMap<String, (bool, usize, u64)> = BTreeMap::new();
        let prefix_parts = store.prefix().parts().count();
        let mut listing = store.object_store().list(Some(store.prefix()));
        while let Some(meta) = listing
            .try_next()
            .await
            .with_context(|| format!("listing `{store}`"))?
        {
            let parts: Vec<_> = meta.location.parts().skip(prefix_parts).collect();
            let [id, rest @ ..] = parts.as_slice() else {
                continue;
            };
            let entry = folders.entry(id.as_ref().to_owned()).or_default();
            if rest.len() == 1 && rest[0].as_ref() == MANIFEST_FILE {
                entry.0 = true;
            }
            entry.1 += 1;
            entry.2 += meta.size;
        }
        let mut entries = Vec::new();
        for (id, (complete, files, bytes)) in folders {
            // each backup's own manifest: a chain is checked when it is read
            // (`describe --verify-files`), a broken one does not hide the others
            let (finished_at, records, parent, encrypted_with) = if complete {
                // what the manifest shows without a key (an encrypted
                // backup's envelope)
                let (head, _) = crate::manifest::read_head(&store, &id).await?;
                (
                    Some(head.finished_at),
                    Some(head.summary.records),
                    head.parent.map(|p| p.backup_id),
                    head.encryption.map(|e| e.key_id),
                )
            } else {
                (None, None, None, None)
            };
            entries.push(Entry {
                backup_id: id,
                complete,
                finished_at,
                parent,
                encrypted_with,
                records,
                files,
                bytes,
            });
        }
        anyhow::Ok(entries)
    })?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        OutputFormat::Text => {
            for e in &entries {
                match (&e.finished_at, e.records) {
                    (Some(at), Some(records)) => println!(
                        "{:<40} {at}  {records:>12} records  {:>6} files  {:>14} bytes{}",
                        e.backup_id,
                        e.files,
                        e.bytes,
                        e.parent
                            .as_ref()
                            .map(|p| format!("  incremental after `{p}`"))
                            .unwrap_or_default()
                            + &e.encrypted_with
                                .as_ref()
                                .map(|k| format!("  encrypted (key `{k}`)"))
                                .unwrap_or_default()
                    ),
                    _ => println!(
                        "{:<40} incomplete (no manifest: interrupted, or still running)  {} files",
                        e.backup_id, e.files
                    ),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
