//! End to end: `kafka-backup backup` reads a live registry (Avro, JSON Schema,
//! Protobuf, references with a diamond, soft-deleted versions, a context,
//! hostile names, per-subject settings) and writes it in the reference layout;
//! every file is checked against what the registry serves.

mod common;

use std::collections::BTreeMap;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn avro_record(name: &str, fields: Value) -> String {
    json!({"type": "record", "name": name, "namespace": "shop", "fields": fields}).to_string()
}

/// Seeds the registry and gives the subjects it made.
async fn seed(sr: &Registry) -> Vec<String> {
    let c = avro_record("C", json!([{"name": "c", "type": "string"}]));
    sr.register("c-value", json!({"schema": c})).await;
    let ref_c = json!([{"name": "shop.C", "subject": "c-value", "version": 1}]);
    let a = avro_record("A", json!([{"name": "c", "type": "shop.C"}]));
    sr.register("a-value", json!({"schema": a, "references": ref_c}))
        .await;
    let b = avro_record(
        "B",
        json!([{"name": "c", "type": "shop.C"}, {"name": "n", "type": "int"}]),
    );
    sr.register("b-value", json!({"schema": b, "references": ref_c}))
        .await;
    let d = avro_record(
        "D",
        json!([{"name": "a", "type": "shop.A"}, {"name": "b", "type": "shop.B"}]),
    );
    let refs_ab = json!([
        {"name": "shop.A", "subject": "a-value", "version": 1},
        {"name": "shop.B", "subject": "b-value", "version": 1}
    ]);
    sr.register("d-value", json!({"schema": d, "references": refs_ab}))
        .await;

    // orders: three versions, the second soft-deleted, its own level and mode
    for i in 1..=3 {
        let fields: Vec<Value> = (0..i)
            .map(|f| json!({"name": format!("f{f}"), "type": "string", "default": ""}))
            .collect();
        sr.register(
            "orders-value",
            json!({"schema": avro_record("Order", json!(fields))}),
        )
        .await;
    }
    let (status, _) = sr
        .call(Method::DELETE, "/subjects/orders-value/versions/2", None)
        .await;
    assert_eq!(status, 200);
    sr.call(
        Method::PUT,
        "/config/orders-value",
        Some(json!({"compatibility": "FULL"})),
    )
    .await;
    sr.call(
        Method::PUT,
        "/mode/orders-value",
        Some(json!({"mode": "READONLY"})),
    )
    .await;
    sr.call(
        Method::PUT,
        "/config",
        Some(json!({"compatibility": "BACKWARD_TRANSITIVE"})),
    )
    .await;

    let json_schema =
        json!({"type": "object", "properties": {"amount": {"type": "number"}}}).to_string();
    sr.register(
        "payments-value",
        json!({"schema": json_schema, "schemaType": "JSON"}),
    )
    .await;
    let common_proto = "syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; }\n";
    sr.register(
        "money.proto",
        json!({"schema": common_proto, "schemaType": "PROTOBUF"}),
    )
    .await;
    let event = "syntax = \"proto3\";\npackage shop;\nimport \"money.proto\";\nmessage Event { string name = 1; shop.Money price = 2; }\n";
    sr.register(
        "events-value",
        json!({"schema": event, "schemaType": "PROTOBUF",
               "references": [{"name": "money.proto", "subject": "money.proto", "version": 1}]}),
    )
    .await;

    sr.register(
        ":.eu:orders-value",
        json!({"schema": avro_record("EuOrder", json!([]))}),
    )
    .await;
    let long = format!("long-{}", "x".repeat(295));
    // (a subject named `..` alone cannot be addressed: URL parsers fold `%2E%2E`)
    let hostile = [
        "../x",
        "a/b",
        "ünïcødé ✓",
        ".hidden",
        long.as_str(),
        "%2e%2e",
    ];
    for (i, name) in hostile.iter().enumerate() {
        let schema = avro_record(&format!("H{i}"), json!([{"name": "h", "type": "long"}]));
        sr.register(name, json!({"schema": schema})).await;
    }
    let mut all: Vec<String> = [
        "a-value",
        "b-value",
        "c-value",
        "d-value",
        "orders-value",
        "payments-value",
        "money.proto",
        "events-value",
        ":.eu:orders-value",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(hostile.iter().map(|s| s.to_string()));
    all.sort();
    all
}

fn config(
    dir: &std::path::Path,
    backup_id: &str,
    sr_url: &str,
    backup_block: &str,
) -> std::path::PathBuf {
    write(
        dir,
        &format!("{backup_id}.yaml"),
        &format!(
            // no `source`: a registry-only backup
            "backup_id: {backup_id}\nstorage:\n  path: {}\nenterprise:\n  schema_registry:\n    enabled: true\n    url: {sr_url}\n    backup:\n{backup_block}",
            dir.join("store").display()
        ),
    )
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_subject_version_and_setting_lands_in_the_layout() {
    let sr = Registry::start();
    let subjects = seed(&sr).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "sr-all",
        &sr.url,
        "      include_soft_deleted: true\n",
    );
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));

    let root = dir.path().join("store/sr-all/schema-registry");
    let manifest = read_json(&root.join("_schemas.json"));
    let names: Vec<&str> = manifest["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        subjects.iter().map(String::as_str).collect::<Vec<_>>()
    );

    let mut seen_folders = BTreeMap::new();
    for entry in manifest["subjects"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let folder = entry["folder"].as_str().unwrap();
        assert!(
            !folder.contains('/') && folder != ".." && folder != ".",
            "{name} -> {folder}"
        );
        assert!(
            seen_folders
                .insert(folder.to_owned(), name.to_owned())
                .is_none(),
            "two subjects in {folder}"
        );
        let metadata = read_json(&root.join("subjects").join(folder).join("metadata.json"));
        assert_eq!(metadata["name"], name);
        assert_eq!(metadata["versions"], entry["versions"]);

        // every version the registry serves (soft-deleted included) is there, byte for byte
        let (status, served) = sr
            .call(
                Method::GET,
                &format!("/subjects/{}/versions?deleted=true", encode(name)),
                None,
            )
            .await;
        assert_eq!(status, 200, "{name}: {served}");
        let served: Vec<u64> = served
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let stored: Vec<u64> = entry["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(stored, served, "{name}");
        for v in entry["versions"].as_array().unwrap() {
            let path = format!(
                "/subjects/{}/versions/{}?deleted=true",
                encode(name),
                v["version"]
            );
            let (_, live) = sr.call(Method::GET, &path, None).await;
            let text =
                std::fs::read_to_string(root.join(v["schema_file"].as_str().unwrap())).unwrap();
            assert_eq!(
                text,
                live["schema"].as_str().unwrap(),
                "{name} v{}",
                v["version"]
            );
            assert_eq!(v["id"], live["id"]);
            assert_eq!(
                v["schema_type"],
                live.get("schemaType").cloned().unwrap_or(json!("AVRO"))
            );
            assert_eq!(
                v.get("references").cloned().unwrap_or(json!([])),
                live.get("references").cloned().unwrap_or(json!([]))
            );
            let ext = match v["schema_type"].as_str().unwrap() {
                "AVRO" => ".avsc",
                "JSON" => ".json",
                _ => ".proto",
            };
            assert!(v["schema_file"].as_str().unwrap().ends_with(ext));
        }
    }
    let orders = &manifest["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "orders-value")
        .unwrap();
    assert_eq!(orders["compatibility"], "FULL");
    assert_eq!(orders["mode"], "READONLY");
    assert_eq!(orders["versions"][1]["deleted"], true);
    let global = read_json(&root.join("config/global.json"));
    assert_eq!(global["compatibility"], "BACKWARD_TRANSITIVE");
    assert!(
        global["contexts"]
            .as_array()
            .unwrap()
            .contains(&json!(".eu")),
        "{global}"
    );
    assert_eq!(manifest["id_mapping"]["1"], "subjects/c-value/v1.avsc");
    assert!(
        manifest["id_mapping"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with(":.eu:"))
    );

    // describe shows the seed's block
    let out = kafka_backup(&[
        "describe",
        "--path",
        dir.path().join("store").to_str().unwrap(),
        "--backup-id",
        "sr-all",
        "--format",
        "json",
    ]);
    let d: Value = serde_json::from_str(&success(&out)).unwrap();
    assert_eq!(d["schema_registry"]["enabled"], true);
    assert_eq!(d["schema_registry"]["subjects_count"], subjects.len());
    let orders = d["schema_registry"]["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "orders-value")
        .unwrap()
        .clone();
    let (_, latest) = sr
        .call(Method::GET, "/subjects/orders-value/versions/latest", None)
        .await;
    assert_eq!(
        orders,
        json!({"name": "orders-value", "versions": 3, "latest_id": latest["id"]})
    );

    // the files read back into exactly the state they were written from
    let store = kafka_backup::storage::Location::parse(dir.path().join("store").to_str().unwrap())
        .unwrap()
        .open()
        .unwrap();
    let reader = kafka_backup::manifest::BackupReader::open(&store, "sr-all")
        .await
        .unwrap();
    let (snapshot, _) = kafka_backup::backup::registry::restore_snapshot(&reader)
        .await
        .unwrap();
    assert_eq!(snapshot.subjects.len(), subjects.len());
    assert_eq!(
        snapshot.version_count(),
        manifest["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["versions"].as_array().unwrap().len())
            .sum::<usize>()
    );

    // a deleted schema file is named by the reader
    let victim = root.join("subjects/d-value/v1.avsc");
    std::fs::remove_file(&victim).unwrap();
    let err = kafka_backup::backup::registry::restore_snapshot(&reader)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "`sr-all/schema-registry/subjects/d-value/v1.avsc` is listed in the manifest but missing from storage"
    );
    let out = kafka_backup(&[
        "describe",
        "--path",
        dir.path().join("store").to_str().unwrap(),
        "--backup-id",
        "sr-all",
        "--verify-files",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("schema-registry/subjects/d-value/v1.avsc"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn selection_pulls_in_references_and_says_why() {
    let sr = Registry::start();
    seed(&sr).await;
    let dir = tempfile::tempdir().unwrap();
    let block = "      subjects: [\"d-*\", \"orders-*\"]\n      exclude: [\"orders-*\"]\n      include_versions: latest\n";
    let cfg = config(dir.path(), "sr-sel", &sr.url, block);
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    let manifest = read_json(
        &dir.path()
            .join("store/sr-sel/schema-registry/_schemas.json"),
    );
    let names: Vec<&str> = manifest["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-value", "b-value", "c-value", "d-value"]);
    let pulled: Vec<(&str, Vec<&str>)> = manifest["pulled_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["subject"].as_str().unwrap(),
                p["referenced_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        pulled,
        vec![
            ("a-value", vec!["d-value v1"]),
            ("b-value", vec!["d-value v1"]),
            ("c-value", vec!["a-value v1", "b-value v1"]),
        ]
    );
}

/// `include_references: false` with a selection that leaves referenced
/// versions out: the backup fails naming each reference as left out by the
/// selection (the registry serves it), and how to take it.
#[tokio::test(flavor = "multi_thread")]
async fn references_left_out_by_the_selection_are_named_as_such() {
    let sr = Registry::start();
    seed(&sr).await;
    let dir = tempfile::tempdir().unwrap();
    let block = "      subjects: [\"d-*\"]\n      include_references: false\n";
    let cfg = config(dir.path(), "sr-noref", &sr.url, block);
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`d-value` v1 imports")
            && err.contains("from `a-value` version 1: left out by the selection")
            && err.contains("include_references: true"),
        "{err}"
    );
    assert!(
        !err.contains("does not serve") && !err.contains("MissingReference {"),
        "{err}"
    );
    assert!(!dir.path().join("store/sr-noref/manifest.json").exists());
}

/// The subjects a registry-only backup holds, from its `_schemas.json`.
fn backed_up_subjects(dir: &std::path::Path, backup_id: &str) -> Vec<String> {
    let manifest = read_json(
        &dir.join("store")
            .join(backup_id)
            .join("schema-registry/_schemas.json"),
    );
    manifest["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `protobuf.include_dependencies` decides whether the imports of Protobuf
/// schemas are taken (`events-value` imports `money.proto`), whatever
/// `include_references` says; the references of Avro schemas (`d-value`)
/// still follow `include_references`.
#[tokio::test(flavor = "multi_thread")]
async fn protobuf_include_dependencies_decides_for_protobuf_imports() {
    let sr = Registry::start();
    seed(&sr).await;
    let dir = tempfile::tempdir().unwrap();
    let protobuf = |on: bool| format!("    protobuf:\n      include_dependencies: {on}\n");

    // off: the import is left out, and the backup fails naming it and the key
    let block = format!(
        "      subjects: [\"events-*\", \"d-*\"]\n{}",
        protobuf(false)
    );
    let cfg = config(dir.path(), "pb-off", &sr.url, &block);
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "`events-value` v1 imports `money.proto` from `money.proto` version 1: left out by the selection"
        ),
        "{err}"
    );
    assert!(err.contains("protobuf.include_dependencies: true"), "{err}");
    // the Avro references were taken (`include_references` is on)
    assert!(!err.contains("`d-value` v1 imports"), "{err}");
    assert!(!err.contains("backup.include_references: true"), "{err}");
    assert!(!dir.path().join("store/pb-off/manifest.json").exists());

    // off, with the imported subject selected anyway: nothing is missing
    let block = format!(
        "      subjects: [\"events-*\", \"money.proto\"]\n{}",
        protobuf(false)
    );
    let cfg = config(dir.path(), "pb-off-sel", &sr.url, &block);
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    assert_eq!(
        backed_up_subjects(dir.path(), "pb-off-sel"),
        ["events-value", "money.proto"]
    );

    // on, with `include_references: false`: the import is pulled in; the
    // Avro references are not (and fail the backup as such)
    let block = format!(
        "      subjects: [\"events-*\"]\n      include_references: false\n{}",
        protobuf(true)
    );
    let cfg = config(dir.path(), "pb-on", &sr.url, &block);
    success(&kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]));
    assert_eq!(
        backed_up_subjects(dir.path(), "pb-on"),
        ["events-value", "money.proto"]
    );
    let block = format!(
        "      subjects: [\"events-*\", \"d-*\"]\n      include_references: false\n{}",
        protobuf(true)
    );
    let cfg = config(dir.path(), "pb-on-avro", &sr.url, &block);
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`d-value` v1 imports"), "{err}");
    assert!(!err.contains("`events-value` v1 imports"), "{err}");
    assert!(!err.contains("protobuf.include_dependencies"), "{err}");

    // unset, with `include_references: false`: the import is left out too
    let block = "      subjects: [\"events-*\"]\n      include_references: false\n";
    let cfg = config(dir.path(), "pb-unset", &sr.url, block);
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`events-value` v1 imports `money.proto`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_fails_the_backup_and_leaves_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "sr-down",
        "http://127.0.0.1:9",
        "      subjects: \"*\"\n",
    );
    let out = kafka_backup(&["backup", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot back up the schema registry"), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert!(!dir.path().join("store/sr-down/manifest.json").exists());
}
