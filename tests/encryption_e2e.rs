//! Encryption at rest (issue 15): a backup made with `storage.encryption`
//! holds no object a reader without the key can use, restores with the key
//! (a chain too), and is refused without it or with another one before
//! anything is written, naming the key it needs.

mod common;

use std::path::{Path, PathBuf};

use common::records::*;
use common::*;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
const OTHER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; // bytes 32..64

fn encryption(key_var: Option<&str>) -> String {
    key_var
        .map(|v| format!("  encryption:\n    key: ${{{v}}}\n    key_id: prod-2026\n"))
        .unwrap_or_default()
}

fn backup_config(b: &SeededBackup, id: &str, from: Option<&str>, key_var: Option<&str>) -> PathBuf {
    write(
        b.dir.path(),
        &format!("{id}.yaml"),
        &format!(
            "backup_id: {id}\n{}source:\n  bootstrap_servers: [{}]\n  topics:\n    include: [\"{}\"]\nstorage:\n  path: {}\n{}enterprise:\n  schema_registry:\n    enabled: true\n    url: {}\n",
            from.map(|f| format!("incremental_from: {f}\n"))
                .unwrap_or_default(),
            bootstrap(),
            b.topic,
            b.dir.path().join("store").display(),
            encryption(key_var),
            b.source.url
        ),
    )
}

fn restore_config(
    b: &SeededBackup,
    id: &str,
    into: &str,
    target: &str,
    key_var: Option<&str>,
) -> PathBuf {
    write(
        b.dir.path(),
        &format!("restore-{id}-{into}-{}.yaml", key_var.unwrap_or("none")),
        &format!(
            "mode: restore\nbackup_id: {id}\ntarget:\n  bootstrap_servers: [{}]\n  topic_mapping:\n    {}: {into}\nstorage:\n  path: {}\n{}enterprise:\n  schema_registry:\n    enabled: true\n    url: {target}\n    restore:\n      force_register: true\n      strategy: preserve\n      rewrite_ids: true\n      rewrite_fields: {{key: always, value: always}}\n",
            bootstrap(),
            b.topic,
            b.dir.path().join("store").display(),
            encryption(key_var),
        ),
    )
}

const ENV: &[(&str, &str)] = &[("BACKUP_KEY", KEY), ("OTHER_KEY", OTHER_KEY)];

/// Every output of the binary in this test, scanned for the keys at the end.
static OUTPUTS: std::sync::Mutex<Vec<(String, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());

fn run(args: &[&str]) -> std::process::Output {
    let out = kafka_backup_with_env(args, ENV);
    let mut seen = OUTPUTS.lock().unwrap();
    seen.push((format!("{args:?} stdout"), out.stdout.clone()));
    seen.push((format!("{args:?} stderr"), out.stderr.clone()));
    out
}

/// Every file of a backup folder, by path relative to it.
fn files(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(folder).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_backup_restores_with_its_key_and_is_refused_without_it() {
    let all: Vec<Rec> = (0..300).map(|i| record_padded(i, 3, None, 32)).collect();
    let b = seeded_source(unique("sealed"), 3, all[..200].to_vec()).await;
    let store = b.dir.path().join("store");
    // the same data without encryption: what a reader of the bucket would see
    let plain_cfg = backup_config(&b, "plain", None, None);
    success(&run(&["backup", "-c", plain_cfg.to_str().unwrap()]));
    let cfg = backup_config(&b, "b1", None, Some("BACKUP_KEY"));
    success(&run(&["backup", "-c", cfg.to_str().unwrap()]));

    // the plain backup shows its schemas and segment list; the sealed one
    // has every object but the manifest sealed, and an envelope that lists
    // no topic, file or schema
    let schema_text = "\"type\"";
    let plain = files(&store.join("plain"));
    assert!(
        plain
            .iter()
            .any(|(p, bytes)| p.starts_with("schema-registry") && contains(bytes, schema_text)),
        "the control: a plain backup's registry files hold the schemas"
    );
    let sealed = files(&store.join("b1"));
    assert_eq!(
        sealed.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        plain.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        "the same files, sealed"
    );
    for (path, bytes) in &sealed {
        if path == "manifest.json" {
            let envelope: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            let keys: Vec<&String> = envelope.as_object().unwrap().keys().collect();
            for hidden in ["topics", "files", "schema_registry", "consumer_groups"] {
                assert!(envelope.get(hidden).is_none(), "{hidden} in {keys:?}");
            }
            assert_eq!(envelope["encryption"]["key_id"], "prod-2026");
            assert_eq!(envelope["summary"]["records"], 200);
            assert!(!contains(bytes, "kafka/"), "segment paths in the envelope");
            continue;
        }
        assert!(bytes.starts_with(b"KBENC\x01"), "{path} is not sealed");
        assert!(!contains(bytes, schema_text), "{path} holds schema text");
        assert!(!contains(bytes, "avro-v"), "{path} holds record text");
    }

    // list and prune need no key
    let listed = success(&run(&["list", "--path", store.to_str().unwrap()]));
    let line = listed.lines().find(|l| l.starts_with("b1 ")).unwrap();
    assert!(
        line.contains("200 records") && line.contains("encrypted (key `prod-2026`)"),
        "{line}"
    );

    // without the key, with another one: refused before anything is written
    let target = Registry::start();
    let into = format!("{}-restored", b.topic);
    let no_key = restore_config(&b, "b1", &into, &target.url, None);
    let wrong = restore_config(&b, "b1", &into, &target.url, Some("OTHER_KEY"));
    for (cfg, why) in [
        (&no_key, "no key is configured"),
        (&wrong, "the configured key is another one"),
    ] {
        for args in [
            vec!["plan", "-c", cfg.to_str().unwrap()],
            vec!["apply", "-c", cfg.to_str().unwrap(), "--auto-approve"],
        ] {
            let command = args[0];
            let out = run(&args);
            assert!(!out.status.success(), "{command}");
            let said = stderr(&out);
            assert!(
                said.contains("backup `b1` is encrypted with key `prod-2026`")
                    && said.contains(why),
                "{command}: {said}"
            );
        }
    }
    let (status, subjects) = target.call(reqwest::Method::GET, "/subjects", None).await;
    assert_eq!((status, subjects), (200, serde_json::json!([])));
    let out = run(&[
        "describe",
        "--path",
        store.to_str().unwrap(),
        "--backup-id",
        "b1",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("prod-2026"), "{}", stderr(&out));
    let key_file = b.dir.path().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let text = success(&run(&[
        "describe",
        "--path",
        store.to_str().unwrap(),
        "--backup-id",
        "b1",
        "--verify-files",
        "--key-file",
        key_file.to_str().unwrap(),
    ]));
    assert!(
        text.contains("encrypted  aes-256-gcm-stream-64k with key `prod-2026`"),
        "{text}"
    );

    // an incremental backup on it, with the same key; the chain restores whole
    produce(&b.topic, &all[200..]).await;
    let cfg = backup_config(&b, "b2", Some("b1"), Some("BACKUP_KEY"));
    success(&run(&["backup", "-c", cfg.to_str().unwrap()]));
    let with_key = restore_config(&b, "b2", &into, &target.url, Some("BACKUP_KEY"));
    success(&run(&[
        "apply",
        "-c",
        with_key.to_str().unwrap(),
        "--auto-approve",
    ]));
    let mut want = std::collections::BTreeMap::<i32, Vec<Rec>>::new();
    for r in &all {
        want.entry(r.partition)
            .or_default()
            .push(rewritten(r.clone(), &seed_map()));
    }
    assert_eq!(consume_all(&into, 3), want);
    let verified = success(&run(&["verify", "-c", with_key.to_str().unwrap()]));
    assert!(
        verified.contains("the target matches the backup"),
        "{verified}"
    );

    // a sealed segment changed by one byte and its manifest entry left: refused
    let (seg, _) = files(&store.join("b1"))
        .into_iter()
        .find(|(p, _)| p.starts_with("kafka/"))
        .unwrap();
    let path = store.join("b1").join(&seg);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let out = run(&[
        "describe",
        "--path",
        store.to_str().unwrap(),
        "--backup-id",
        "b2",
        "--verify-files",
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&seg), "{}", stderr(&out));

    // the keys show nowhere: not in any output (validate included), not in
    // any stored file, in clear or encoded
    success(&run(&["validate", "-c", cfg.to_str().unwrap()]));
    let mut scanner = common::secrets::Scanner::new();
    scanner
        .add("the backup key", KEY)
        .add("the other key", OTHER_KEY);
    let mut hits = Vec::new();
    for (origin, bytes) in OUTPUTS.lock().unwrap().iter() {
        hits.extend(scanner.scan(origin, bytes));
    }
    for (path, bytes) in files(&store) {
        hits.extend(scanner.scan(&path, &bytes));
    }
    assert!(hits.is_empty(), "{hits:?}");
}
