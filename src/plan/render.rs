//! A plan for people and for machines: text like `terraform plan` (`+`
//! create, `~` update, `-` delete, `-/+` replace, a reason per line, grouped
//! per subject, conflicts first, a totals line; no colour needed), Markdown
//! for a pull-request comment, and JSON (the plan file itself).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Plan, SubjectOutcome};
use crate::model::compatibility_name;

/// What a plan with `restore.enabled: false` says first.
pub const REGISTRY_OFF: &str = "Registry half off (`enterprise.schema_registry.restore.enabled: false`): nothing is registered or changed in the target registry, and the plan has no step. Record IDs are rewritten only to the IDs the target already holds for identical schemas; records carrying any other ID follow `missing_id_policy`.";

/// The totals line: `Plan: 5 to add, 1 to change, 0 to destroy. 3 unchanged.`
pub fn totals_line(plan: &Plan) -> String {
    let t = plan.totals;
    format!(
        "Plan: {} to add, {} to change, {} to destroy. {} unchanged.",
        t.add, t.change, t.destroy, t.unchanged
    )
}

/// Control characters (a subject name is arbitrary text) shown escaped, so
/// that one line stays one line.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn outcome_words(o: SubjectOutcome) -> &'static str {
    match o {
        SubjectOutcome::Created => "new subject",
        SubjectOutcome::Changed => "changed",
        SubjectOutcome::Unchanged => "unchanged",
        SubjectOutcome::Skipped => "skipped (already in target)",
        SubjectOutcome::Conflict => "CONFLICT",
    }
}

fn options_line(plan: &Plan) -> String {
    let o = &plan.options;
    if !o.restore_registry {
        let ids = if o.rewrite_ids {
            "record IDs rewritten to the target's own"
        } else {
            "record IDs kept"
        };
        return format!("registry not restored, {ids}");
    }
    let mut parts = vec![format!(
        "strategy {}",
        match o.strategy {
            crate::config::Strategy::Preserve => "preserve",
            crate::config::Strategy::Overwrite => "overwrite",
            crate::config::Strategy::Skip => "skip",
        }
    )];
    parts.push(if o.force_ids {
        "source IDs forced (IMPORT)".to_owned()
    } else {
        "IDs from the target registry".to_owned()
    });
    parts.push(if o.rewrite_ids {
        "record IDs rewritten".to_owned()
    } else {
        "record IDs kept".to_owned()
    });
    let pinned: usize = o.pinned_ids.values().map(|m| m.len()).sum();
    if pinned > 0 {
        parts.push(format!("{pinned} ID(s) pinned by file"));
    }
    if let Some(c) = o.set_compatibility {
        parts.push(format!("set_compatibility {}", compatibility_name(c)));
    }
    if !o.include_references {
        parts.push("references not pulled in".to_owned());
    }
    if o.restore_global_settings {
        parts.push("global settings restored".to_owned());
    }
    parts.join(", ")
}

/// The plan as text, readable without colour.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Schema Registry plan (kafka-backup {})",
        plan.tool_version
    );
    let _ = writeln!(out, "  backup snapshot {}", plan.backup_fingerprint);
    let _ = writeln!(out, "  target snapshot {}", plan.target_fingerprint);
    if let Some(caps) = &plan.capabilities {
        let _ = writeln!(out, "  target registry {}", clean(&caps.learned));
    }
    let _ = writeln!(out, "  {}", options_line(plan));
    out.push('\n');
    if !plan.options.restore_registry {
        let _ = writeln!(out, "{REGISTRY_OFF}\n");
    }

    if !plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "!! {} CONFLICT(S): `apply` will refuse this plan until they are settled !!",
            plan.conflicts.len()
        );
        out.push('\n');
        for c in &plan.conflicts {
            let kind = serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(out, "  ! [{kind}] {}", clean(&c.message));
            for d in &c.details {
                let _ = writeln!(out, "      - {}", clean(d));
            }
            let _ = writeln!(out, "      hint: {}", clean(&c.hint));
        }
        out.push('\n');
    }

    if plan.steps.is_empty() && plan.conflicts.is_empty() && plan.options.restore_registry {
        out.push_str("No changes. The target registry already matches the backup.\n\n");
    }

    let mut by_subject: std::collections::BTreeMap<&str, Vec<&super::Step>> =
        std::collections::BTreeMap::new();
    for st in &plan.steps {
        if let Some(s) = st.subject() {
            by_subject.entry(s).or_default().push(st);
        }
    }
    for s in &plan.subjects {
        let steps = by_subject.remove(s.subject.as_str()).unwrap_or_default();
        let mut title = format!("  # {}: {}", clean(&s.subject), outcome_words(s.outcome));
        if s.source_subject != s.subject {
            let _ = write!(title, " (from `{}`)", clean(&s.source_subject));
        }
        if s.pulled_in {
            title.push_str(" (pulled in: referenced by a restored version)");
        }
        let _ = writeln!(out, "{title}");
        for st in steps {
            let _ = writeln!(out, "    {}  [step {}]", clean(&st.line()), st.id);
        }
        for u in &s.unchanged {
            let _ = writeln!(out, "    = {}", clean(u));
        }
        for n in &s.notes {
            let _ = writeln!(out, "    note: {}", clean(n));
        }
        out.push('\n');
    }
    // steps on subjects no summary names (the planner makes none; a file
    // that has them is shown whole all the same)
    for (subject, steps) in by_subject {
        let _ = writeln!(out, "  # {}: not a restored subject", clean(subject));
        for st in steps {
            let _ = writeln!(out, "    {}  [step {}]", clean(&st.line()), st.id);
        }
        out.push('\n');
    }
    let scoped: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.subject().is_none())
        .collect();
    if !scoped.is_empty() {
        let _ = writeln!(out, "  # global and context settings");
        for st in scoped {
            let _ = writeln!(out, "    {}  [step {}]", clean(&st.line()), st.id);
        }
        out.push('\n');
    }

    if !plan.id_mapping.is_empty() {
        let _ = writeln!(out, "ID mapping (source context: source ID -> target ID):");
        for (ctx, entries) in &plan.id_mapping {
            for (id, e) in entries {
                let ctx_note = if &e.target_context != ctx {
                    format!(" in `{}`", e.target_context)
                } else {
                    String::new()
                };
                let how = serde_json::to_value(e.how)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {ctx}: {id} -> {}{ctx_note} ({how}) {}",
                    e.target_id,
                    clean(&e.used_by.join(", "))
                );
            }
        }
        out.push('\n');
    }
    topics_text(plan, &mut out);
    groups_text(plan, &mut out);
    out.push_str(&totals_line(plan));
    out.push('\n');
    if !plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "{} conflict(s) must be settled before `apply`.",
            plan.conflicts.len()
        );
    }
    let failing = plan.topics.iter().filter(|t| t.fails()).count();
    if failing > 0 {
        let _ = writeln!(
            out,
            "{failing} topic(s) carry schema IDs the restore cannot map under `missing_id_policy: fail`: `apply` refuses this plan."
        );
    }
    out
}

/// What the restore does with the policy of a topic whose records carry IDs
/// the map will not cover.
fn policy_outcome(t: &super::topics::TopicCheck) -> String {
    let n = t.uncovered_records();
    match t.missing_id_policy {
        crate::config::MissingIdPolicy::Fail => format!(
            "!! `missing_id_policy: fail`: the restore would stop at the first of {n} record(s); `apply` refuses the plan"
        ),
        crate::config::MissingIdPolicy::Skip => {
            format!("`missing_id_policy: skip`: up to {n} record(s) left out")
        }
        crate::config::MissingIdPolicy::Passthrough => format!(
            "`missing_id_policy: passthrough`: up to {n} record(s) written with their source IDs"
        ),
    }
}

/// The topics: which fields get their IDs rewritten and why, and the IDs
/// the map will not cover.
fn topics_text(plan: &Plan, out: &mut String) {
    if plan.topics.is_empty() {
        return;
    }
    let _ = writeln!(out, "Topics (schema IDs in the records):");
    for t in &plan.topics {
        let rename = if t.target == t.topic {
            String::new()
        } else {
            format!(" -> `{}`", clean(&t.target))
        };
        let _ = writeln!(out, "  # `{}`{rename}", clean(&t.topic));
        for (name, f) in [("key", &t.key), ("value", &t.value)] {
            let verb = if f.rewrite {
                "IDs rewritten"
            } else {
                "written as backed up"
            };
            let _ = writeln!(out, "    {name}: {verb} ({})", clean(&f.reason));
            for u in &f.uncovered {
                let _ = writeln!(
                    out,
                    "      ! ID {} in {} record(s) is not in the ID map: {}",
                    u.id,
                    u.records,
                    clean(&u.cause)
                );
            }
        }
        if t.uncovered_records() > 0 {
            let _ = writeln!(out, "    {}", policy_outcome(t));
        }
    }
    out.push('\n');
}

/// The consumer groups: each partition's committed offset and the target
/// offset it becomes.
fn groups_text(plan: &Plan, out: &mut String) {
    if plan.groups.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}", groups_title(plan));
    for g in &plan.groups {
        for p in &g.partitions {
            let _ = writeln!(out, "  {}", clean(&super::groups::line(&g.group, p)));
        }
    }
    out.push('\n');
}

/// `Consumer groups (offsets set after the data): 3 to set, 1 unchanged.`
fn groups_title(plan: &Plan) -> String {
    let all: usize = plan.groups.iter().map(|g| g.partitions.len()).sum();
    let set: usize = plan.groups.iter().map(|g| g.changes()).sum();
    let mut title = format!(
        "Consumer groups (offsets set after the data): {set} to set, {} unchanged",
        all - set
    );
    if let Some(ts) = plan.to_timestamp {
        title.push_str(&format!("; planned for --to-timestamp {ts}"));
    }
    title.push('.');
    title
}

/// Text for a Markdown table cell or list item: no line breaks, no `|`, no HTML.
fn md(text: &str) -> String {
    clean(text)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The most characters a GitHub pull-request comment takes.
pub const COMMENT_LIMIT: usize = 65_536;

/// [`markdown`] when it fits in `limit` characters; otherwise a summary
/// that does: the totals, the conflicts (as many as fit), the steps counted
/// per kind, the subjects counted per outcome and those with the most steps,
/// and where the whole plan is (`artefact`, the plan file, when known).
pub fn markdown_within(plan: &Plan, limit: usize, artefact: Option<&str>) -> String {
    let full = markdown(plan);
    let size = full.chars().count();
    if size <= limit {
        return full;
    }
    let mut out = String::new();
    out.push_str("### Schema Registry plan (summary)\n\n");
    let _ = writeln!(out, "**{}**\n", totals_line(plan));
    let whole = match artefact {
        Some(a) => format!(
            "The whole plan is the artefact `{}` (`kafka-backup show {}`)",
            md(a),
            md(a)
        ),
        None => "The whole plan is the plan file of this run (`kafka-backup show PLAN`)".to_owned(),
    };
    let _ = writeln!(
        out,
        "> [!NOTE]\n> The plan in full is {size} characters, more than a comment takes ({limit}): this is its summary. {whole}.\n"
    );
    // the closing sections are written last and their room kept for them
    let mut tail = String::new();
    let mut kinds: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut per_subject: BTreeMap<String, usize> = BTreeMap::new();
    for st in &plan.steps {
        let kind = serde_json::to_value(st.kind())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *kinds.entry((st.action().symbol(), kind)).or_default() += 1;
        if let Some(s) = st.subject() {
            *per_subject.entry(s.to_owned()).or_default() += 1;
        }
    }
    tail.push_str("| | Step | Count |\n|:---:|---|---:|\n");
    for ((symbol, kind), n) in &kinds {
        let _ = writeln!(tail, "| `{symbol}` | {} | {n} |", md(kind));
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for s in &plan.subjects {
        let o = serde_json::to_value(s.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *outcomes.entry(o).or_default() += 1;
    }
    let _ = writeln!(
        tail,
        "\nSubjects: {}.\n",
        outcomes
            .iter()
            .map(|(o, n)| format!("{n} {}", md(o)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut busiest: Vec<(&String, &usize)> = per_subject.iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut listed = String::new();
    let mut shown = 0;
    for (s, n) in &busiest {
        let line = format!("| `{}` | {n} |\n", md(s).replace('`', "'"));
        if out.chars().count() + tail.chars().count() + listed.chars().count() + line.len() + 400
            > limit
        {
            break;
        }
        listed.push_str(&line);
        shown += 1;
    }
    // conflicts first: they are why a check fails; as many as fit, the rest counted
    if !plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> **{} conflict(s)**: `apply` will refuse this plan until they are settled.\n",
            plan.conflicts.len()
        );
        let room = limit.saturating_sub(tail.chars().count() + 600);
        let mut written = 0;
        for c in &plan.conflicts {
            let line = format!("- **{}**\n", md(&c.message));
            if out.chars().count() + line.chars().count() > room {
                break;
            }
            out.push_str(&line);
            written += 1;
        }
        if written < plan.conflicts.len() {
            let _ = writeln!(
                out,
                "- and {} more (in the plan file)",
                plan.conflicts.len() - written
            );
        }
        out.push('\n');
    }
    out.push_str(&tail);
    if shown > 0 && out.chars().count() + listed.chars().count() + 200 <= limit {
        let _ = writeln!(
            out,
            "<details><summary>Subjects with the most steps ({shown} of {})</summary>\n\n| Subject | Steps |\n|---|---:|\n{listed}\n</details>",
            busiest.len()
        );
    }
    out
}

/// The plan as Markdown, for a pull-request comment: the totals, conflicts,
/// a table of steps, then details.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    out.push_str("### Schema Registry plan\n\n");
    if !plan.options.restore_registry {
        let _ = writeln!(out, "> [!NOTE]\n> {REGISTRY_OFF}\n");
    }
    let _ = writeln!(out, "**{}**\n", totals_line(plan));
    if !plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> **{} conflict(s)**: `apply` will refuse this plan until they are settled.\n",
            plan.conflicts.len()
        );
        for c in &plan.conflicts {
            let _ = writeln!(out, "- **{}**", md(&c.message));
            for d in &c.details {
                let _ = writeln!(out, "  - {}", md(d));
            }
            let _ = writeln!(out, "  - _hint:_ {}", md(&c.hint));
        }
        out.push('\n');
    }
    if plan.steps.is_empty() {
        out.push_str("No changes.\n\n");
    } else {
        out.push_str("| # | | Subject | Change | Needs |\n|---:|:---:|---|---|---|\n");
        for st in &plan.steps {
            let scope = match (st.subject(), st.context()) {
                (Some(s), _) => format!("`{}`", md(s).replace('`', "'")),
                (None, Some(c)) => format!("context `{}`", md(c)),
                (None, None) => "global".to_owned(),
            };
            let reason = format!("{}: {}", st.summary(), st.why);
            let needs = st
                .depends_on
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "| {} | `{}` | {scope} | {} | {needs} |",
                st.id,
                st.action().symbol(),
                md(&reason)
            );
        }
        out.push('\n');
    }

    let unchanged: Vec<String> = plan
        .subjects
        .iter()
        .flat_map(|s| {
            s.unchanged
                .iter()
                .map(move |u| format!("`{}` {}", md(&s.subject), md(u)))
        })
        .collect();
    if !unchanged.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Unchanged ({})</summary>\n",
            unchanged.len()
        );
        for u in unchanged {
            let _ = writeln!(out, "- {u}");
        }
        out.push_str("\n</details>\n\n");
    }
    let notes: Vec<String> = plan
        .subjects
        .iter()
        .flat_map(|s| {
            s.notes
                .iter()
                .map(move |n| format!("`{}` {}", md(&s.subject), md(n)))
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("<details><summary>Notes</summary>\n\n");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push_str("\n</details>\n\n");
    }
    let count: usize = plan.id_mapping.values().map(|m| m.len()).sum();
    if count > 0 {
        let _ = writeln!(
            out,
            "<details><summary>ID mapping ({count})</summary>\n\n| Source context | Source ID | Target context | Target ID | How | Used by |\n|---|---:|---|---|---|---|"
        );
        for (ctx, entries) in &plan.id_mapping {
            for (id, e) in entries {
                let how = serde_json::to_value(e.how)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| `{}` | {id} | `{}` | {} | {how} | {} |",
                    md(ctx),
                    md(&e.target_context),
                    e.target_id,
                    md(&e.used_by.join(", "))
                );
            }
        }
        out.push_str("\n</details>\n\n");
    }
    if !plan.topics.is_empty() {
        out.push_str("#### Topics\n\n| Topic | Key | Value | IDs the map will not cover |\n|---|---|---|---|\n");
        for t in &plan.topics {
            let field = |f: &super::topics::FieldCheck| {
                format!(
                    "{} ({})",
                    if f.rewrite {
                        "IDs rewritten"
                    } else {
                        "as backed up"
                    },
                    md(&f.reason)
                )
            };
            let uncovered: Vec<String> = [&t.key, &t.value]
                .iter()
                .flat_map(|f| &f.uncovered)
                .map(|u| format!("ID {} ({} record(s)): {}", u.id, u.records, md(&u.cause)))
                .collect();
            let mut cell = uncovered.join("; ");
            if t.uncovered_records() > 0 {
                cell.push_str(&format!("; **{}**", md(&policy_outcome(t))));
            }
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                md(&t.topic).replace('`', "'"),
                field(&t.key),
                field(&t.value),
                if cell.is_empty() {
                    "none".to_owned()
                } else {
                    cell
                }
            );
        }
        out.push('\n');
    }
    if !plan.groups.is_empty() {
        let _ = writeln!(
            out,
            "#### {}\n\n| | Group | Partition | Source offset | Target offset | How |\n|---|---|---|---|---|---|",
            groups_title(plan).trim_end_matches('.')
        );
        for g in &plan.groups {
            for p in &g.partitions {
                let mut how = p.how.as_str().to_owned();
                if p.basis == super::groups::Basis::Predicted {
                    how.push_str(" (predicted)");
                }
                if !p.change {
                    how.push_str(", already there");
                }
                let _ = writeln!(
                    out,
                    "| {} | `{}` | `{}`[{}] | {} | {} | {} |",
                    if p.change { "~" } else { "=" },
                    md(&g.group).replace('`', "'"),
                    md(&p.target_topic).replace('`', "'"),
                    p.partition,
                    p.committed,
                    p.target_offset,
                    md(&how)
                );
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "<details><summary>Plan details</summary>\n\n- tool: kafka-backup {}\n- backup snapshot: `{}`\n- target snapshot: `{}`\n- options: {}\n\n</details>",
        plan.tool_version,
        plan.backup_fingerprint,
        plan.target_fingerprint,
        md(&options_line(plan))
    );
    out
}

/// The plan for machines: exactly the plan file's bytes, as text.
pub fn json(plan: &Plan) -> String {
    String::from_utf8(crate::planfile::write(plan)).expect("JSON is UTF-8")
}
