//! Reading a whole registry into a [`RegistrySnapshot`] with few requests,
//! and choosing the part a backup keeps.
//!
//! Reading prefers the bulk listing `GET /schemas?subjectPrefix=:*:` (every
//! version of every subject, many per request) for the schemas themselves,
//! but does not trust it to be complete or right: each subject's own
//! listings (`/subjects/{s}/versions`, and `?deleted=true` when soft-deleted
//! versions are wanted) decide which versions exist and which are
//! soft-deleted. Versions the bulk listing missed (older servers without the
//! endpoint or without contexts, servers ignoring `offset`, registrations
//! between two pages) are read one by one, `max_concurrency` requests at a
//! time; versions it has but the subject does not list are left out. The
//! choice itself ([`select`]) is a pure function over what was read, so it
//! is unit-tested on plain data.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use super::{RegistryApi, RegistryError, Result, SchemaRecord, SchemasQuery, VersionRef};
use crate::config::{IncludeVersions, Protobuf, RegistryBackup};
use crate::model::{
    self, DEFAULT_CONTEXT, RegistrySnapshot, SchemaType, SchemaVersion, ScopeSettings, SubjectState,
};

/// Entries asked for per `GET /schemas` page.
pub const DEFAULT_PAGE_SIZE: usize = 10_000;

/// Every version read, by subject and version, with its soft-deleted flag.
pub type Inventory = BTreeMap<String, BTreeMap<u32, SchemaVersion>>;

/// How the versions were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchMethod {
    /// All from the bulk listing `GET /schemas`.
    Bulk,
    /// The server has no usable bulk listing: subject by subject.
    PerSubject,
    /// The bulk listing missed some subjects; those were read one by one.
    Mixed,
}

/// A subject version that references one pulled into the backup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Referrer {
    /// Referencing subject.
    pub subject: String,
    /// Referencing version.
    pub version: u32,
    /// Import name of the reference.
    pub name: String,
}

/// A version taken only because a taken schema references it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PulledIn {
    /// Subject of the pulled-in version.
    pub subject: String,
    /// The version.
    pub version: u32,
    /// Taken versions that reference it.
    pub referenced_by: Vec<Referrer>,
    /// The subject is named by `exclude` (taken anyway: the referrer needs it).
    pub excluded: bool,
}

/// A reference of a taken version that the snapshot cannot satisfy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MissingReference {
    /// Referencing subject.
    pub from_subject: String,
    /// Referencing version.
    pub from_version: u32,
    /// Type of the referencing schema: which key decides whether its
    /// references are taken (`protobuf.include_dependencies` for Protobuf).
    pub from_type: SchemaType,
    /// Import name.
    pub name: String,
    /// Referenced subject (resolved in the referrer's context).
    pub subject: String,
    /// Referenced version as written.
    pub version: i32,
    /// `true`: the registry has it, but the selection left it out
    /// (`include_references: false`, or `protobuf.include_dependencies:
    /// false` for a Protobuf import); `false`: the registry does not have it
    /// at all.
    pub exists: bool,
}

/// What the selection did, for the user and the backup manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionReport {
    /// How versions were read.
    pub method: FetchMethod,
    /// Registry calls made by the fetch.
    pub api_calls: u64,
    /// Subjects with versions read one by one (missing from the bulk listing).
    pub fallback_subjects: BTreeSet<String>,
    /// Subjects taken because `subjects` names them and `exclude` does not.
    pub selected: BTreeSet<String>,
    /// Subjects `subjects` names but `exclude` removes.
    pub excluded: BTreeSet<String>,
    /// Versions left out because their type is not in `schema_types`.
    pub skipped_by_type: BTreeMap<String, BTreeSet<u32>>,
    /// Versions taken only because a taken version references them.
    pub pulled_in: Vec<PulledIn>,
    /// References the snapshot does not satisfy.
    pub missing_references: Vec<MissingReference>,
}

impl SelectionReport {
    /// Subjects present in the snapshot only through references.
    pub fn pulled_in_subjects(&self) -> BTreeSet<&str> {
        self.pulled_in
            .iter()
            .filter(|p| !self.selected.contains(&p.subject))
            .map(|p| p.subject.as_str())
            .collect()
    }
}

/// What [`select`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Taken versions by subject.
    pub versions: Inventory,
    /// The report, `method`, `api_calls` and `fallback_subjects` left empty.
    pub report: SelectionReport,
    /// Referenced versions absent from the inventory: worth one direct read
    /// (a soft-deleted version when soft-deleted ones were not listed).
    pub to_read: BTreeSet<(String, u32)>,
}

/// Tuning of [`fetch_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Registry calls in flight at once.
    pub concurrency: usize,
    /// Entries per `GET /schemas` page.
    pub page_size: usize,
}

fn wants_type(schema_types: Option<&[SchemaType]>, t: SchemaType) -> bool {
    schema_types.is_none_or(|types| types.contains(&t))
}

/// Which version a reference points to in `inventory` (`-1` is the latest live one).
fn resolve_version(inventory: &Inventory, subject: &str, version: i32) -> Option<u32> {
    if version == -1 {
        return inventory
            .get(subject)?
            .values()
            .rev()
            .find(|v| !v.deleted)
            .map(|v| v.version);
    }
    u32::try_from(version).ok()
}

/// Chooses the versions a backup keeps: `subjects`/`exclude` globs over the
/// qualified name, soft-deleted ones only with `include_soft_deleted`, the
/// latest live one only with `include_versions: latest`, `schema_types`,
/// then every version a taken one references, transitively, whatever the
/// rules above say of it: the imports of a Protobuf schema when
/// `protobuf.include_dependencies` says so (unset: `include_references`),
/// the references of the other types with `include_references`. Pure and
/// deterministic.
pub fn select(
    inventory: &Inventory,
    backup: &RegistryBackup,
    protobuf: &Protobuf,
    schema_types: Option<&[SchemaType]>,
) -> Selection {
    let mut report = SelectionReport {
        method: FetchMethod::Bulk,
        api_calls: 0,
        fallback_subjects: BTreeSet::new(),
        selected: BTreeSet::new(),
        excluded: BTreeSet::new(),
        skipped_by_type: BTreeMap::new(),
        pulled_in: Vec::new(),
        missing_references: Vec::new(),
    };
    let mut taken: Inventory = BTreeMap::new();
    for (subject, versions) in inventory {
        if !backup.subjects.iter().any(|g| g.is_match(subject)) {
            continue;
        }
        if backup.exclude.iter().any(|g| g.is_match(subject)) {
            report.excluded.insert(subject.clone());
            continue;
        }
        let candidates: Vec<&SchemaVersion> = match backup.include_versions {
            IncludeVersions::Latest => versions
                .values()
                .rev()
                .find(|v| !v.deleted)
                .into_iter()
                .collect(),
            IncludeVersions::All => versions
                .values()
                .filter(|v| backup.include_soft_deleted || !v.deleted)
                .collect(),
        };
        let mut kept = BTreeMap::new();
        for v in candidates {
            if wants_type(schema_types, v.schema_type) {
                kept.insert(v.version, v.clone());
            } else {
                report
                    .skipped_by_type
                    .entry(subject.clone())
                    .or_default()
                    .insert(v.version);
            }
        }
        if !kept.is_empty() {
            report.selected.insert(subject.clone());
            taken.insert(subject.clone(), kept);
        }
    }

    let chosen_by_rules: BTreeSet<(String, u32)> = taken
        .iter()
        .flat_map(|(s, vs)| vs.keys().map(move |v| (s.clone(), *v)))
        .collect();
    let protobuf_imports = protobuf.takes_imports(backup);
    let follows = |referrer: &SchemaVersion| match referrer.schema_type {
        SchemaType::Protobuf => protobuf_imports,
        SchemaType::Avro | SchemaType::Json => backup.include_references,
    };
    let mut to_read = BTreeSet::new();
    {
        let mut queue: VecDeque<(String, u32)> = chosen_by_rules.iter().cloned().collect();
        while let Some((subject, version)) = queue.pop_front() {
            let referrer = &taken[&subject][&version];
            if !follows(referrer) {
                continue;
            }
            let references = referrer.references.clone();
            for r in references {
                let target = model::resolve_reference_subject(&subject, &r.subject);
                let Some(v) = resolve_version(inventory, &target, r.version) else {
                    continue;
                };
                if taken.get(&target).is_some_and(|vs| vs.contains_key(&v)) {
                    continue;
                }
                match inventory.get(&target).and_then(|vs| vs.get(&v)) {
                    Some(found) => {
                        taken
                            .entry(target.clone())
                            .or_default()
                            .insert(v, found.clone());
                        queue.push_back((target, v));
                    }
                    None => {
                        to_read.insert((target, v));
                    }
                }
            }
        }
    }

    // why each pulled-in version is there: every taken version referencing it
    let mut pulled: BTreeMap<(String, u32), BTreeSet<Referrer>> = taken
        .iter()
        .flat_map(|(s, vs)| vs.keys().map(move |v| (s.clone(), *v)))
        .filter(|key| !chosen_by_rules.contains(key))
        .map(|key| (key, BTreeSet::new()))
        .collect();
    for (subject, versions) in &taken {
        for (version, sv) in versions {
            for r in &sv.references {
                let target = model::resolve_reference_subject(subject, &r.subject);
                let resolved = resolve_version(inventory, &target, r.version);
                let present = resolved.and_then(|v| taken.get(&target).and_then(|vs| vs.get(&v)));
                match (resolved, present) {
                    (Some(v), Some(_)) => {
                        if let Some(referrers) = pulled.get_mut(&(target.clone(), v)) {
                            referrers.insert(Referrer {
                                subject: subject.clone(),
                                version: *version,
                                name: r.name.clone(),
                            });
                        }
                    }
                    (resolved, _) => {
                        let exists = resolved.is_some_and(|v| {
                            inventory.get(&target).is_some_and(|vs| vs.contains_key(&v))
                        });
                        report.missing_references.push(MissingReference {
                            from_subject: subject.clone(),
                            from_version: *version,
                            from_type: sv.schema_type,
                            name: r.name.clone(),
                            subject: target,
                            version: r.version,
                            exists,
                        });
                    }
                }
            }
        }
    }
    report.pulled_in = pulled
        .into_iter()
        .map(|((subject, version), referrers)| PulledIn {
            excluded: backup.exclude.iter().any(|g| g.is_match(&subject)),
            subject,
            version,
            referenced_by: referrers.into_iter().collect(),
        })
        .collect();
    report.missing_references.sort();
    Selection {
        versions: taken,
        report,
        to_read,
    }
}

/// Counts the registry calls a fetch makes.
#[derive(Default)]
struct Calls(AtomicU64);

impl Calls {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// Every version of every context through `GET /schemas`, page by page, or
/// `None` when the server has no such listing. Stops on an empty page, and
/// copes with servers that ignore `limit` or `offset`.
async fn read_bulk<A: RegistryApi + ?Sized>(
    api: &A,
    deleted: bool,
    page_size: usize,
    calls: &Calls,
) -> Result<Option<Vec<SchemaRecord>>> {
    let mut out = Vec::new();
    let mut first_key = None;
    let mut offset = 0;
    loop {
        calls.add(1);
        let page = match api
            .schemas_page(&SchemasQuery {
                subject_prefix: Some(":*:".into()),
                deleted,
                offset,
                limit: page_size,
            })
            .await
        {
            Ok(page) => page,
            Err(RegistryError::EndpointNotFound(_) | RegistryError::Rejected(_)) if offset == 0 => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let Some(head) = page.first() else { break };
        let key = (head.subject.clone(), head.version);
        if offset > 0 && first_key.as_ref() == Some(&key) {
            break; // `offset` ignored: this is the first page again
        }
        first_key.get_or_insert(key);
        let ignores_limit = page.len() > page_size;
        offset += page.len();
        out.extend(page);
        if ignores_limit {
            break; // everything came at once
        }
    }
    Ok(Some(out))
}

/// What a subject's own listings say: its live versions and, when
/// soft-deleted ones are wanted, all of them (`None` otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listing {
    live: BTreeSet<u32>,
    all: Option<BTreeSet<u32>>,
}

impl Listing {
    /// The versions a snapshot holds for this subject, each with its
    /// soft-deleted flag.
    fn versions(&self) -> BTreeMap<u32, bool> {
        self.all
            .as_ref()
            .unwrap_or(&self.live)
            .iter()
            .map(|v| (*v, !self.live.contains(v)))
            .collect()
    }
}

/// `GET /subjects/{s}/versions` (and `?deleted=true` when soft-deleted
/// versions are wanted) of each subject, `concurrency` calls at a time. A
/// subject the registry no longer knows has no versions.
async fn read_listings<A: RegistryApi + ?Sized>(
    api: &A,
    subjects: &BTreeSet<String>,
    include_deleted: bool,
    concurrency: usize,
    calls: &Calls,
) -> Result<BTreeMap<String, Listing>> {
    let listing = |subject: String, deleted: bool| async move {
        calls.add(1);
        match api.versions(&subject, deleted).await {
            Ok(v) => Ok(v.into_iter().collect::<BTreeSet<u32>>()),
            Err(RegistryError::SubjectNotFound(_)) => Ok(BTreeSet::new()),
            Err(e) => Err(e),
        }
    };
    stream::iter(subjects.iter().cloned())
        .map(|subject| async move {
            let (live, all) = futures::try_join!(listing(subject.clone(), false), async {
                match include_deleted {
                    true => listing(subject.clone(), true).await.map(Some),
                    false => Ok(None),
                }
            })?;
            Ok::<_, RegistryError>((subject, Listing { live, all }))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Each `(subject, version, soft-deleted)` read with its own request,
/// `concurrency` calls at a time; a version deleted for good since its
/// listing is left out.
async fn read_versions<A: RegistryApi + ?Sized>(
    api: &A,
    wanted: Vec<(String, u32, bool)>,
    concurrency: usize,
    calls: &Calls,
) -> Result<Vec<SchemaVersion>> {
    let records: Vec<Option<SchemaVersion>> = stream::iter(wanted)
        .map(|(subject, version, deleted)| async move {
            calls.add(1);
            match api
                .version(&subject, VersionRef::Number(version), true)
                .await
            {
                Ok(r) => Ok(Some(r.into_version(deleted))),
                // deleted for good between the listing and now
                Err(RegistryError::VersionNotFound(_) | RegistryError::SubjectNotFound(_)) => {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok(records.into_iter().flatten().collect())
}

/// Where the bulk listing and the subjects' own listings disagree, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
struct Disagreement {
    /// Versions a subject lists that the bulk listing lacks: read one by one.
    unlisted: Vec<(String, u32)>,
    /// Versions the bulk listing has that the subject does not list (any more).
    extra: Vec<(String, u32)>,
    /// Versions whose soft-deleted flag the bulk listing had wrong.
    flag: Vec<(String, u32)>,
}

/// Merges the bulk listing (`bulk`: every version it gave, with the flag it
/// implied) with the subjects' own listings, which decide which versions
/// exist and which are soft-deleted. Gives the inventory of the versions the
/// bulk listing held and the versions still to read one by one. Pure.
fn reconcile(
    bulk: Inventory,
    listings: &BTreeMap<String, Listing>,
) -> (Inventory, Vec<(String, u32, bool)>, Disagreement) {
    let mut bulk = bulk;
    let mut inventory = Inventory::new();
    let mut to_read = Vec::new();
    let mut seen = Disagreement::default();
    for (subject, listing) in listings {
        let mut listed = bulk.remove(subject).unwrap_or_default();
        for (version, deleted) in listing.versions() {
            match listed.remove(&version) {
                Some(mut v) => {
                    if v.deleted != deleted {
                        seen.flag.push((subject.clone(), version));
                        v.deleted = deleted;
                    }
                    inventory
                        .entry(subject.clone())
                        .or_default()
                        .insert(version, v);
                }
                None => {
                    seen.unlisted.push((subject.clone(), version));
                    to_read.push((subject.clone(), version, deleted));
                }
            }
        }
        // listed by the bulk listing, but not (or not as wanted) by the subject:
        // soft-deleted ones listed as live, or versions deleted since
        for version in listed.keys() {
            seen.extra.push((subject.clone(), *version));
        }
    }
    // subjects no listing was read for (the caller lists every subject the
    // bulk listing has, so none): left out
    for (subject, versions) in bulk {
        seen.extra
            .extend(versions.into_keys().map(|v| (subject.clone(), v)));
    }
    (inventory, to_read, seen)
}

/// The own compatibility level and mode of each scope (a subject, or a
/// context written `:.ctx:`), keyed by `key`, `concurrency` scopes at a time.
async fn read_settings<A: RegistryApi + ?Sized>(
    api: &A,
    calls: &Calls,
    concurrency: usize,
    scopes: impl Iterator<Item = (String, String)>,
) -> Result<BTreeMap<String, ScopeSettings>> {
    stream::iter(scopes)
        .map(|(key, scope)| async move {
            calls.add(2);
            let (compatibility, mode) =
                futures::try_join!(api.config(Some(&scope)), api.mode(Some(&scope)))?;
            Ok::<_, RegistryError>((
                key,
                ScopeSettings {
                    compatibility,
                    mode,
                },
            ))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// A subject no registry holds, asked for its mode by [`own_modes_told_apart`].
const PROBE_SUBJECT: &str = "kafka-backup-probe-no-such-subject";

/// Whether the registry tells a subject's own mode from the one it inherits,
/// asked read-only with a subject that cannot exist: Confluent answers 40409
/// (no mode of its own); a registry that answers with a mode, or 40401 (it
/// resolves modes through the subject: Karapace 3.16, which answers
/// `GET /mode/{s}` with the global mode for every subject), does not, and the
/// modes it gives for subjects are taken as their own only where they differ
/// from the global one. Without mode endpoints, nothing is inherited.
async fn own_modes_told_apart<A: RegistryApi + ?Sized>(api: &A) -> Result<bool> {
    Ok(mode_probe(api).await? != ModeProbe::Inherited)
}

/// How a registry answers the mode of a subject that cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModeProbe {
    /// 40409, nothing set on it: Confluent.
    Own,
    /// A mode, or 40401: modes resolved through the subject (Karapace 3.16).
    Inherited,
    /// No mode endpoint at all.
    NoEndpoint,
}

async fn mode_probe<A: RegistryApi + ?Sized>(api: &A) -> Result<ModeProbe> {
    match api.mode(Some(PROBE_SUBJECT)).await {
        Ok(None) => Ok(ModeProbe::Own),
        Ok(Some(_)) | Err(RegistryError::SubjectNotFound(_)) => Ok(ModeProbe::Inherited),
        Err(RegistryError::EndpointNotFound(_)) => Ok(ModeProbe::NoEndpoint),
        Err(e) => Err(e),
    }
}

/// What the registry supports that a plan may need, learned read-only (two
/// requests): the mode of a subject that cannot exist (Confluent answers
/// 40409; a registry answering with a mode or 40401 resolves modes through
/// the subject and takes no mode writes, as Karapace 3.16, which also has no
/// IMPORT and takes references for Protobuf only) and `GET /contexts`.
pub async fn capabilities<A: RegistryApi + ?Sized>(
    api: &A,
) -> Result<crate::plan::capabilities::Capabilities> {
    use crate::plan::capabilities::Capabilities;
    let probe = mode_probe(api).await?;
    let contexts = match api.contexts().await {
        Ok(_) => true,
        Err(RegistryError::EndpointNotFound(_)) => false,
        Err(e) => return Err(e),
    };
    let mut caps = match probe {
        ModeProbe::Own => Capabilities::confluent(
            "answers a subject's mode as Confluent does (40409 where none is set): mode writes, IMPORT and references taken as supported",
        ),
        ModeProbe::Inherited => Capabilities::karapace(
            "answers a subject's mode with an inherited one, as Karapace 3.16 does: no mode writes, no IMPORT, references for Protobuf only",
        ),
        ModeProbe::NoEndpoint => Capabilities {
            mode_writes: false,
            import: false,
            ..Capabilities::confluent("has no mode endpoint: no mode writes, no IMPORT")
        },
    };
    caps.contexts = caps.contexts && contexts;
    Ok(caps)
}

/// [`fetch_with`] with the default page size.
pub async fn fetch<A: RegistryApi + ?Sized>(
    api: &A,
    backup: &RegistryBackup,
    protobuf: &Protobuf,
    schema_types: Option<&[SchemaType]>,
    concurrency: usize,
) -> Result<(RegistrySnapshot, SelectionReport)> {
    let options = FetchOptions {
        concurrency,
        page_size: DEFAULT_PAGE_SIZE,
    };
    fetch_with(api, backup, protobuf, schema_types, options).await
}

/// Reads the registry and keeps what `backup`, `protobuf` and `schema_types` select
/// (see [`select`]), with each taken subject's own compatibility and mode,
/// the global ones, the contexts and their own settings.
///
/// Requests: 7 fixed (version, global level and mode, contexts, subject
/// list, one more with soft-deleted ones, the mode probe of
/// [`own_modes_told_apart`]) + the `/schemas` pages (twice with
/// soft-deleted versions) + 1 per subject (its version list; 2 with
/// soft-deleted versions) + 2 per taken subject (its level and mode) + 2 per
/// non-default context, plus 1 per version the bulk listing misses.
pub async fn fetch_with<A: RegistryApi + ?Sized>(
    api: &A,
    backup: &RegistryBackup,
    protobuf: &Protobuf,
    schema_types: Option<&[SchemaType]>,
    options: FetchOptions,
) -> Result<(RegistrySnapshot, SelectionReport)> {
    let concurrency = options.concurrency.max(1);
    let page_size = options.page_size.max(1);
    let calls = Calls::default();
    let with_deleted = backup.include_soft_deleted;

    calls.add(5);
    let (server_version, global_compatibility, global_mode, contexts, live_subjects) = futures::try_join!(
        api.server_version(),
        api.config(None),
        api.mode(None),
        async {
            match api.contexts().await {
                Ok(c) => Ok(c),
                Err(RegistryError::EndpointNotFound(_)) => Ok(vec![DEFAULT_CONTEXT.to_owned()]),
                Err(e) => Err(e),
            }
        },
        api.subjects(false),
    )?;
    let mut expected: BTreeSet<String> = live_subjects.into_iter().collect();
    if with_deleted {
        calls.add(1);
        expected.extend(api.subjects(true).await?);
    }

    // the bulk listing: what it holds, as far as it can be trusted
    let live_bulk = read_bulk(api, false, page_size, &calls).await?;
    let all_bulk = match (&live_bulk, with_deleted) {
        (Some(_), true) => read_bulk(api, true, page_size, &calls).await?,
        _ => None,
    };
    let bulk_usable = live_bulk.is_some() && (!with_deleted || all_bulk.is_some());
    let mut bulk = Inventory::new();
    if bulk_usable {
        let live: BTreeSet<(String, u32)> = live_bulk
            .iter()
            .flatten()
            .map(|r| (r.subject.clone(), r.version))
            .collect();
        for r in live_bulk
            .into_iter()
            .flatten()
            .chain(all_bulk.into_iter().flatten())
        {
            let deleted = !live.contains(&(r.subject.clone(), r.version));
            bulk.entry(r.subject.clone())
                .or_default()
                .entry(r.version)
                .or_insert_with(|| r.into_version(deleted));
        }
    }

    // each subject's own listings decide which versions exist and which are
    // soft-deleted: a server ignoring `offset`, a registration between two
    // pages, or a listing disagreeing with the subject (Karapace lists
    // soft-deleted versions as live) would otherwise lose or change versions
    let subjects: BTreeSet<String> = expected.into_iter().chain(bulk.keys().cloned()).collect();
    let listings = read_listings(api, &subjects, with_deleted, concurrency, &calls).await?;
    let (mut inventory, to_read, disagreement) = reconcile(bulk, &listings);
    if bulk_usable && disagreement != Disagreement::default() {
        let shown = |list: &[(String, u32)]| {
            let mut names: Vec<String> = list.iter().map(|(s, v)| format!("{s} v{v}")).collect();
            if names.len() > 10 {
                let more = names.len() - 10;
                names.truncate(10);
                names.push(format!("and {more} more"));
            }
            names.join(", ")
        };
        tracing::warn!(
            "the registry's bulk listing `GET /schemas` disagrees with the subjects' own listings \
             (missing: [{}]; not listed by the subject: [{}]; soft-deleted flag wrong: [{}]): \
             the subjects' listings are followed, missing versions read one by one",
            shown(&disagreement.unlisted),
            shown(&disagreement.extra),
            shown(&disagreement.flag),
        );
    }
    let fallback: BTreeSet<String> = to_read.iter().map(|(s, _, _)| s.clone()).collect();
    let method = match (bulk_usable, fallback.is_empty()) {
        (false, _) => FetchMethod::PerSubject,
        (true, true) => FetchMethod::Bulk,
        (true, false) => FetchMethod::Mixed,
    };
    if !to_read.is_empty() {
        tracing::debug!(versions = to_read.len(), "reading versions one by one");
        for v in read_versions(api, to_read, concurrency, &calls).await? {
            inventory
                .entry(v.subject.clone())
                .or_default()
                .insert(v.version, v);
        }
    }

    // selection, reading referenced versions the listings did not hold
    let mut tried = BTreeSet::new();
    let selection = loop {
        let selection = select(&inventory, backup, protobuf, schema_types);
        let new: Vec<(String, u32)> = selection.to_read.difference(&tried).cloned().collect();
        if new.is_empty() {
            break selection;
        }
        tried.extend(new.iter().cloned());
        let found: Vec<Option<SchemaVersion>> = stream::iter(new)
            .map(|(subject, version)| {
                let calls = &calls;
                async move {
                    calls.add(1);
                    match api
                        .version(&subject, VersionRef::Number(version), true)
                        .await
                    {
                        // every live version is listed already: this one is soft-deleted
                        Ok(r) => Ok(Some(r.into_version(true))),
                        Err(
                            RegistryError::VersionNotFound(_) | RegistryError::SubjectNotFound(_),
                        ) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        for v in found.into_iter().flatten() {
            inventory
                .entry(v.subject.clone())
                .or_default()
                .insert(v.version, v);
        }
    };
    for m in &selection.report.missing_references {
        tracing::warn!(
            "`{}` version {} references `{}` version {} (`{}`), which the backup does not hold{}",
            m.from_subject,
            m.from_version,
            m.subject,
            m.version,
            m.name,
            match (m.exists, m.from_type) {
                (false, _) => "",
                (true, SchemaType::Protobuf) => ": set `protobuf.include_dependencies: true`",
                (true, _) => ": set `include_references: true`",
            }
        );
    }

    // settings of each taken subject and of each context
    let subject_scopes = selection.versions.keys().map(|s| (s.clone(), s.clone()));
    let mut settings = read_settings(api, &calls, concurrency, subject_scopes).await?;
    calls.add(1);
    if !own_modes_told_apart(api).await? {
        // a subject's mode as read is the global one unless it differs
        for own in settings.values_mut() {
            own.mode = own.mode.filter(|m| Some(*m) != global_mode);
        }
    }
    let contexts: BTreeSet<String> = contexts.into_iter().collect();
    let context_scopes = contexts
        .iter()
        .filter(|c| c.as_str() != DEFAULT_CONTEXT)
        .map(|c| (c.clone(), format!(":{c}:")));
    let context_settings = read_settings(api, &calls, concurrency, context_scopes).await?;

    let subjects = selection
        .versions
        .into_iter()
        .map(|(name, versions)| {
            let own = settings.remove(&name).unwrap_or_default();
            let state = SubjectState {
                name: name.clone(),
                versions,
                compatibility: own.compatibility,
                mode: own.mode,
            };
            (name, state)
        })
        .collect();
    let snapshot = RegistrySnapshot {
        subjects,
        global: ScopeSettings {
            compatibility: global_compatibility,
            mode: global_mode,
        },
        contexts,
        context_settings: context_settings
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .collect(),
        server_version,
    };
    let mut report = selection.report;
    report.method = method;
    report.fallback_subjects = fallback;
    report.api_calls = calls.0.load(Ordering::Relaxed);
    Ok((snapshot, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Glob, OneOrMany};
    use crate::model::Reference;

    fn v(
        subject: &str,
        version: u32,
        id: u32,
        t: SchemaType,
        deleted: bool,
        refs: &[(&str, i32)],
    ) -> SchemaVersion {
        SchemaVersion {
            subject: subject.into(),
            version,
            id,
            schema_type: t,
            schema: format!("schema-{id}"),
            references: refs
                .iter()
                .map(|(s, rv)| Reference {
                    name: format!("{s}.ref"),
                    subject: (*s).into(),
                    version: *rv,
                })
                .collect(),
            deleted,
        }
    }

    /// A diamond (`app` -> `left`, `right` -> `base`), a soft-deleted version
    /// referenced only by a soft-deleted one, a context subject referencing
    /// its context-local `common`, a JSON and a Protobuf subject.
    fn inventory() -> Inventory {
        use SchemaType::*;
        let all = [
            v("base", 1, 1, Avro, false, &[]),
            v("base", 2, 2, Avro, false, &[]),
            v("left", 1, 3, Avro, false, &[("base", 1)]),
            v("right", 1, 4, Avro, false, &[("base", 2)]),
            v("app", 1, 5, Avro, false, &[("left", 1), ("right", 1)]),
            v("old", 1, 6, Avro, true, &[]),
            v("old", 2, 7, Avro, false, &[]),
            v("ghost", 1, 8, Avro, true, &[("old", 1)]),
            v(":.ctx:common", 1, 1, Protobuf, false, &[]),
            v(":.ctx:orders", 1, 2, Protobuf, false, &[("common", 1)]),
            v("json-only", 1, 9, Json, false, &[]),
            v("mixed", 1, 10, Avro, false, &[]),
            v("mixed", 2, 11, Json, false, &[]),
        ];
        let mut inv = Inventory::new();
        for sv in all {
            inv.entry(sv.subject.clone())
                .or_default()
                .insert(sv.version, sv);
        }
        inv
    }

    /// [`select`] with the Protobuf defaults (imports follow `include_references`).
    fn sel(inv: &Inventory, b: &RegistryBackup, types: Option<&[SchemaType]>) -> Selection {
        select(inv, b, &Protobuf::default(), types)
    }

    fn globs(list: &[&str]) -> OneOrMany<Glob> {
        OneOrMany(list.iter().map(|g| Glob::new(g).unwrap()).collect())
    }

    fn backup(subjects: &[&str], exclude: &[&str]) -> RegistryBackup {
        RegistryBackup {
            subjects: globs(subjects),
            exclude: globs(exclude),
            ..RegistryBackup::default()
        }
    }

    fn keys(inv: &Inventory) -> Vec<String> {
        inv.iter()
            .flat_map(|(s, vs)| vs.keys().map(move |v| format!("{s}@{v}")))
            .collect()
    }

    #[test]
    fn everything_live_by_default() {
        let s = sel(&inventory(), &RegistryBackup::default(), None);
        assert_eq!(
            keys(&s.versions),
            [
                ":.ctx:common@1",
                ":.ctx:orders@1",
                "app@1",
                "base@1",
                "base@2",
                "json-only@1",
                "left@1",
                "mixed@1",
                "mixed@2",
                "old@2",
                "right@1"
            ]
        );
        assert!(s.report.pulled_in.is_empty());
        assert!(s.report.missing_references.is_empty());
        assert!(s.to_read.is_empty());
        assert!(!s.report.selected.contains("ghost"));
    }

    #[test]
    fn soft_deleted_versions_only_when_asked() {
        let b = RegistryBackup {
            include_soft_deleted: true,
            ..RegistryBackup::default()
        };
        let s = sel(&inventory(), &b, None);
        assert!(s.versions["old"][&1].deleted);
        assert!(s.versions["ghost"][&1].deleted);
        assert_eq!(s.versions.values().map(|v| v.len()).sum::<usize>(), 13);
    }

    #[test]
    fn references_are_closed_over_transitively_with_reasons() {
        let s = sel(&inventory(), &backup(&["app"], &[]), None);
        assert_eq!(
            keys(&s.versions),
            ["app@1", "base@1", "base@2", "left@1", "right@1"]
        );
        assert_eq!(s.report.selected, BTreeSet::from(["app".to_owned()]));
        let reasons: Vec<String> = s
            .report
            .pulled_in
            .iter()
            .map(|p| {
                let by: Vec<String> = p
                    .referenced_by
                    .iter()
                    .map(|r| format!("{}@{}", r.subject, r.version))
                    .collect();
                format!("{}@{} <- {}", p.subject, p.version, by.join(","))
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "base@1 <- left@1",
                "base@2 <- right@1",
                "left@1 <- app@1",
                "right@1 <- app@1"
            ]
        );
        assert_eq!(
            s.report.pulled_in_subjects(),
            BTreeSet::from(["base", "left", "right"])
        );
    }

    #[test]
    fn excluded_or_wrong_type_references_are_still_pulled_in() {
        let s = sel(
            &inventory(),
            &backup(&[":.ctx:*"], &[":.ctx:common"]),
            Some(&[SchemaType::Protobuf]),
        );
        assert_eq!(keys(&s.versions), [":.ctx:common@1", ":.ctx:orders@1"]);
        assert!(s.report.excluded.contains(":.ctx:common"));
        assert_eq!(s.report.pulled_in.len(), 1);
        assert!(s.report.pulled_in[0].excluded);

        // a reference from an AVRO schema to a subject of a type not selected
        let mut inv = inventory();
        inv.get_mut("app")
            .unwrap()
            .get_mut(&1)
            .unwrap()
            .references
            .push(Reference {
                name: "j".into(),
                subject: "json-only".into(),
                version: 1,
            });
        let s = sel(&inv, &backup(&["app"], &[]), Some(&[SchemaType::Avro]));
        assert!(s.versions.contains_key("json-only"));
    }

    #[test]
    fn without_closure_dangling_references_are_reported() {
        let b = RegistryBackup {
            include_references: false,
            ..backup(&["app"], &[])
        };
        let s = sel(&inventory(), &b, None);
        assert_eq!(keys(&s.versions), ["app@1"]);
        let missing: Vec<(String, bool)> = s
            .report
            .missing_references
            .iter()
            .map(|m| (m.subject.clone(), m.exists))
            .collect();
        assert_eq!(
            missing,
            [("left".to_owned(), true), ("right".to_owned(), true)]
        );
    }

    /// The Protobuf `:.ctx:orders` imports `:.ctx:common`; the Avro `app`
    /// references `left` and `right`.
    fn missing(s: &Selection) -> Vec<(String, SchemaType, bool)> {
        s.report
            .missing_references
            .iter()
            .map(|m| (m.subject.clone(), m.from_type, m.exists))
            .collect()
    }

    #[test]
    fn protobuf_include_dependencies_decides_for_protobuf_imports_only() {
        let b = backup(&["app", ":.ctx:orders"], &[]);
        let no_imports = Protobuf {
            include_dependencies: Some(false),
        };
        let s = select(&inventory(), &b, &no_imports, None);
        assert_eq!(
            keys(&s.versions),
            [
                ":.ctx:orders@1",
                "app@1",
                "base@1",
                "base@2",
                "left@1",
                "right@1"
            ]
        );
        assert_eq!(
            missing(&s),
            [(":.ctx:common".to_owned(), SchemaType::Protobuf, true)]
        );

        // an import selected anyway is in the backup: nothing missing
        let b_common = backup(&["app", ":.ctx:*"], &[]);
        let s = select(&inventory(), &b_common, &no_imports, None);
        assert!(s.versions.contains_key(":.ctx:common"));
        assert!(s.report.missing_references.is_empty());
        assert_eq!(
            s.report.pulled_in_subjects(),
            BTreeSet::from(["base", "left", "right"])
        );

        // set to true, it takes the imports even with `include_references: false`
        let no_refs = RegistryBackup {
            include_references: false,
            ..b.clone()
        };
        let imports = Protobuf {
            include_dependencies: Some(true),
        };
        let s = select(&inventory(), &no_refs, &imports, None);
        assert_eq!(
            keys(&s.versions),
            [":.ctx:common@1", ":.ctx:orders@1", "app@1"]
        );
        assert_eq!(
            s.report.pulled_in_subjects(),
            BTreeSet::from([":.ctx:common"])
        );
        assert_eq!(
            missing(&s),
            [
                ("left".to_owned(), SchemaType::Avro, true),
                ("right".to_owned(), SchemaType::Avro, true)
            ]
        );

        // unset, it follows `include_references`
        let s = select(&inventory(), &no_refs, &Protobuf::default(), None);
        assert_eq!(keys(&s.versions), [":.ctx:orders@1", "app@1"]);
        assert_eq!(s.report.missing_references.len(), 3);
        let s = select(&inventory(), &b, &Protobuf::default(), None);
        assert!(s.versions.contains_key(":.ctx:common"));
        assert!(s.report.missing_references.is_empty());
    }

    #[test]
    fn latest_keeps_the_latest_live_version_only() {
        let b = RegistryBackup {
            include_versions: IncludeVersions::Latest,
            include_soft_deleted: true,
            include_references: false,
            ..RegistryBackup::default()
        };
        let s = sel(&inventory(), &b, None);
        assert_eq!(s.versions["base"].keys().collect::<Vec<_>>(), [&2]);
        assert_eq!(s.versions["old"].keys().collect::<Vec<_>>(), [&2]);
        assert!(!s.versions.contains_key("ghost"));
        // with references on, an older version a latest one needs comes too
        let b = RegistryBackup {
            include_versions: IncludeVersions::Latest,
            ..backup(&["left"], &[])
        };
        let s = sel(&inventory(), &b, None);
        assert_eq!(keys(&s.versions), ["base@1", "left@1"]);
    }

    #[test]
    fn schema_types_filter_versions_and_report_them() {
        let s = sel(
            &inventory(),
            &backup(&["mixed", "json-only"], &[]),
            Some(&[SchemaType::Avro]),
        );
        assert_eq!(keys(&s.versions), ["mixed@1"]);
        assert_eq!(
            s.report.skipped_by_type,
            BTreeMap::from([
                ("json-only".to_owned(), BTreeSet::from([1])),
                ("mixed".to_owned(), BTreeSet::from([2])),
            ])
        );
    }

    #[test]
    fn references_outside_the_listing_are_asked_for() {
        // `ghost@1` (soft-deleted) references `old@1`; the inventory lacks old@1,
        // as when only live versions were listed
        let mut inv = inventory();
        inv.get_mut("old").unwrap().remove(&1);
        let b = RegistryBackup {
            include_soft_deleted: true,
            ..backup(&["ghost"], &[])
        };
        let s = sel(&inv, &b, None);
        assert_eq!(s.to_read, BTreeSet::from([("old".to_owned(), 1)]));
        assert_eq!(s.report.missing_references.len(), 1);
        assert!(!s.report.missing_references[0].exists);
    }

    #[test]
    fn latest_references_resolve_to_the_latest_live_version() {
        let mut inv = inventory();
        inv.get_mut("app").unwrap().get_mut(&1).unwrap().references = vec![Reference {
            name: "b".into(),
            subject: "base".into(),
            version: -1,
        }];
        let s = sel(&inv, &backup(&["app"], &[]), None);
        assert_eq!(keys(&s.versions), ["app@1", "base@2"]);
    }

    fn listing(live: &[u32], all: Option<&[u32]>) -> Listing {
        Listing {
            live: live.iter().copied().collect(),
            all: all.map(|a| a.iter().copied().collect()),
        }
    }

    #[test]
    fn the_subjects_listings_decide_over_the_bulk_listing() {
        use SchemaType::Avro;
        let mut bulk = Inventory::new();
        for sv in [
            v("a", 1, 1, Avro, false, &[]),
            v("a", 2, 2, Avro, false, &[]), // soft-deleted, listed as live
            v("a", 3, 3, Avro, false, &[]),
            v("b", 1, 4, Avro, false, &[]), // b v2 missing (a page lost)
            v("gone", 1, 5, Avro, false, &[]),
        ] {
            bulk.entry(sv.subject.clone())
                .or_default()
                .insert(sv.version, sv);
        }
        let with = |all: bool| {
            BTreeMap::from([
                ("a".to_owned(), listing(&[1, 3], all.then_some(&[1, 2, 3]))),
                ("b".to_owned(), listing(&[1, 2], all.then_some(&[1, 2]))),
                ("gone".to_owned(), listing(&[], all.then_some(&[]))),
            ])
        };
        let (inv, to_read, seen) = reconcile(bulk.clone(), &with(false));
        assert_eq!(keys(&inv), ["a@1", "a@3", "b@1"]);
        assert_eq!(to_read, [("b".to_owned(), 2, false)]);
        assert_eq!(seen.extra, [("a".to_owned(), 2), ("gone".to_owned(), 1)]);
        let (inv, to_read, seen) = reconcile(bulk, &with(true));
        assert_eq!(keys(&inv), ["a@1", "a@2", "a@3", "b@1"]);
        assert!(inv["a"][&2].deleted && !inv["a"][&3].deleted);
        assert_eq!(to_read, [("b".to_owned(), 2, false)]);
        assert_eq!(seen.flag, [("a".to_owned(), 2)]);
    }

    #[test]
    fn selection_is_deterministic() {
        let a = sel(&inventory(), &backup(&["app", ":.ctx:*"], &[]), None);
        let b = sel(&inventory(), &backup(&[":.ctx:*", "app"], &[]), None);
        assert_eq!(a, b);
    }
}
