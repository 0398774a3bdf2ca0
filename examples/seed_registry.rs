//! Seeds a registry for `scripts/bench-plan`: SUBJECTS subjects x VERSIONS
//! versions of Avro records shaped like those of `benches/planner.rs`, every
//! tenth subject referencing the shared `common-value`, written in IMPORT mode
//! with explicit ids and versions, CONCURRENCY requests in flight at once.
//!
//!     cargo run --release --example seed_registry -- URL [SUBJECTS [VERSIONS [CONCURRENCY]]]
//!
//! Defaults: 10000 subjects, 5 versions, 64 requests at once. The registry must
//! hold no live subject (IMPORT mode needs that). Prints
//! `seeded subjects=N versions=N requests=N seconds=S`.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

const COMMON_SUBJECT: &str = "common-value";
const COMMON_NAME: &str = "com.acme.Common";

/// The planner bench's schema of `subject` at `version`; a referencing
/// subject also has a field of the shared type.
fn schema(subject: u32, version: u32, referencing: bool) -> String {
    let mut fields: Vec<String> = (0..version)
        .map(|f| format!(r#"{{"name":"f{f}","type":["null","string"],"default":null}}"#))
        .collect();
    if referencing {
        fields.push(format!(r#"{{"name":"common","type":"{COMMON_NAME}"}}"#));
    }
    format!(
        r#"{{"type":"record","name":"S{subject}","namespace":"com.acme","fields":[{}]}}"#,
        fields.join(",")
    )
}

fn arg(args: &[String], i: usize, default: u32) -> Result<u32, String> {
    match args.get(i) {
        None => Ok(default),
        Some(a) => a
            .parse()
            .map_err(|_| format!("argument {i} must be a whole number, got `{a}`")),
    }
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> Result<(), String> {
    let response = client
        .request(method, &url)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("{url}: {status}: {text}"));
    }
    Ok(())
}

async fn run(args: &[String]) -> Result<(), String> {
    let base = args
        .get(1)
        .ok_or("usage: seed_registry URL [SUBJECTS [VERSIONS [CONCURRENCY]]]")?
        .trim_end_matches('/')
        .to_owned();
    let subjects = arg(args, 2, 10_000)?;
    let versions = arg(args, 3, 5)?;
    let concurrency = arg(args, 4, 64)?.max(1) as usize;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();

    send(
        &client,
        reqwest::Method::PUT,
        format!("{base}/mode"),
        json!({"mode": "IMPORT"}),
    )
    .await?;
    let common = json!({
        "schema": format!(
            r#"{{"type":"record","name":"Common","namespace":"com.acme","fields":[]}}"#
        ),
        "id": 1,
        "version": 1,
    });
    send(
        &client,
        reqwest::Method::POST,
        format!("{base}/subjects/{COMMON_SUBJECT}/versions"),
        common,
    )
    .await?;

    // ids: 1 is the shared schema, then 2, 3, ... subject by subject, version by version
    let jobs = (0..subjects).flat_map(|s| (1..=versions).map(move |v| (s, v)));
    stream::iter(jobs)
        .map(|(s, v)| {
            let referencing = s % 10 == 0;
            let mut body = json!({
                "schema": schema(s, v, referencing),
                "id": 2 + s * versions + (v - 1),
                "version": v,
            });
            if referencing {
                body["references"] =
                    json!([{"name": COMMON_NAME, "subject": COMMON_SUBJECT, "version": 1}]);
            }
            let url = format!("{base}/subjects/topic-{s:05}-value/versions");
            send(&client, reqwest::Method::POST, url, body)
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;

    send(
        &client,
        reqwest::Method::PUT,
        format!("{base}/mode"),
        json!({"mode": "READWRITE"}),
    )
    .await?;
    let total = u64::from(subjects) * u64::from(versions) + 1;
    println!(
        "seeded subjects={} versions={total} requests={} seconds={:.2}",
        subjects + 1,
        total + 2,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed_registry: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
