//! Times the pure planner and the plan file on a synthetic registry:
//! 10,000 subjects x 5 versions, every tenth subject referencing a shared
//! one, the target holding half of the subjects already.
//!
//! `cargo bench --bench planner` (release profile). Target: planning <= 1 s.

use std::time::Instant;

use kafka_backup::model::{
    Reference, RegistrySnapshot, SchemaType, SchemaVersion, ScopeSettings, SubjectState,
};
use kafka_backup::plan::{PlanOptions, plan, render};
use kafka_backup::planfile;

const SUBJECTS: u32 = 10_000;
const VERSIONS: u32 = 5;

fn schema(subject: u32, version: u32, spaced: bool) -> String {
    let fields: Vec<String> = (0..version)
        .map(|f| format!(r#"{{"name":"f{f}","type":["null","string"],"default":null}}"#))
        .collect();
    let text = format!(
        r#"{{"type":"record","name":"S{subject}","namespace":"com.acme","fields":[{}]}}"#,
        fields.join(",")
    );
    if spaced {
        text.replace(',', ", ")
    } else {
        text
    }
}

fn snapshot(half: bool) -> RegistrySnapshot {
    let mut snap = RegistrySnapshot {
        global: ScopeSettings {
            compatibility: Some(kafka_backup::config::Compatibility::Backward),
            mode: None,
        },
        ..Default::default()
    };
    snap.contexts.insert(".".into());
    let mut common = SubjectState::new("common-value");
    common.versions.insert(
        1,
        SchemaVersion {
            subject: "common-value".into(),
            version: 1,
            id: 1,
            schema_type: SchemaType::Avro,
            schema: r#"{"type":"record","name":"Common","fields":[]}"#.into(),
            references: vec![],
            deleted: false,
        },
    );
    snap.subjects.insert("common-value".into(), common);
    let mut id = 2;
    for s in 0..SUBJECTS {
        let name = format!("topic-{s:05}-value");
        let mut subject = SubjectState::new(name.clone());
        for v in 1..=VERSIONS {
            let references = if s % 10 == 0 {
                vec![Reference {
                    name: "com.acme.Common".into(),
                    subject: "common-value".into(),
                    version: 1,
                }]
            } else {
                vec![]
            };
            subject.versions.insert(
                v,
                SchemaVersion {
                    subject: name.clone(),
                    version: v,
                    id,
                    schema_type: SchemaType::Avro,
                    schema: schema(s, v, half),
                    references,
                    deleted: false,
                },
            );
            id += 1;
        }
        if !half || s % 2 == 0 {
            snap.subjects.insert(name, subject);
        }
    }
    snap
}

fn main() {
    let t = Instant::now();
    let backup = snapshot(false);
    let target = snapshot(true);
    println!(
        "built snapshots: backup {} versions, target {} versions, in {:?}",
        backup.version_count(),
        target.version_count(),
        t.elapsed()
    );
    let options = PlanOptions::default();

    let mut best = std::time::Duration::MAX;
    let mut made = None;
    for _ in 0..3 {
        let t = Instant::now();
        let p = plan(&backup, &target, &options).expect("the synthetic plan succeeds");
        best = best.min(t.elapsed());
        made = Some(p);
    }
    let p = made.unwrap();
    println!(
        "plan:            {best:?} (best of 3; {} steps, {} conflicts; {})",
        p.steps.len(),
        p.conflicts.len(),
        render::totals_line(&p)
    );

    let t = Instant::now();
    let bytes = planfile::write(&p);
    println!("planfile::write: {:?} ({} bytes)", t.elapsed(), bytes.len());
    let t = Instant::now();
    let back = planfile::read(&bytes).expect("the plan reads back");
    println!("planfile::read:  {:?} (digest checked)", t.elapsed());
    assert_eq!(back.steps.len(), p.steps.len());
    let t = Instant::now();
    let text = render::text(&p);
    println!(
        "render::text:    {:?} ({} lines)",
        t.elapsed(),
        text.lines().count()
    );
    if best.as_secs_f64() > 1.0 {
        println!("WARNING: planning took more than the 1 s target");
    }
}
