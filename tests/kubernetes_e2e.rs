//! The Kubernetes manifests of `docs/kubernetes.md` (issue 16), run here
//! without a cluster: a small stand-in for the kubelet reads
//! `docs/kubernetes/*.yaml` as they are and runs each pod's containers with
//! the binary the image holds, as Kubernetes would: init containers first and
//! in order, the arguments as written (paths under a volume's `mountPath`
//! mapped to a folder of the test), the environment from `env` (literal
//! values, the Downward API's labels, the Secret's keys) and `envFrom` and
//! nothing else, ConfigMap and emptyDir volumes, and standard input only
//! where `stdin: true` (what `kubectl attach -i` types).
//!
//! What the test changes, and nothing else: the Secret's placeholder values
//! (its own credentials and key, for the same keys), the addresses the
//! manifests give as literal `env` values (the test ground's broker,
//! registries and S3 bucket), the S3 endpoint (`AWS_ENDPOINT`), and the one
//! line of `backup.yaml` that names the topics.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::records::*;
use common::secrets::{Scanner, base64_padded, test_secret};
use common::*;
use serde_json::Value;

const IMAGE: &str = "registry.example.com/kafka-backup:0.1.0";

/// `docs/kubernetes/<file>` as JSON.
fn manifest(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/kubernetes")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let value: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for key in ["apiVersion", "kind", "metadata"] {
        assert!(value.get(key).is_some(), "{file}: no `{key}`");
    }
    value
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

/// What the kubelet stand-in needs besides the pod spec.
struct Cluster {
    dir: PathBuf,
    /// The Secret `kafka-backup-credentials` as the test created it.
    secret: BTreeMap<String, String>,
    /// The ConfigMap `kafka-backup`'s files, as the test edited them.
    config: BTreeMap<String, String>,
    /// Literal `env` values replaced by the test ground's.
    overrides: BTreeMap<&'static str, String>,
    /// Variables the pods get besides their own (the S3 stand-in's endpoint).
    extra: Vec<(&'static str, String)>,
}

/// A pod of a Job, ready to run its containers.
struct Pod<'a> {
    cluster: &'a Cluster,
    spec: Value,
    labels: BTreeMap<String, String>,
    volumes: BTreeMap<String, PathBuf>,
}

impl<'a> Pod<'a> {
    /// The pod a Job named `job` of `template` (a pod template) starts.
    fn new(cluster: &'a Cluster, template: &Value, job: &str) -> Self {
        let spec = template["spec"].clone();
        assert_eq!(spec["restartPolicy"], "Never", "{job}: a Job's pods");
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{job}");
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(template["metadata"]["labels"].clone()).unwrap();
        labels.insert("batch.kubernetes.io/job-name".into(), job.into());
        labels.insert("job-name".into(), job.into());
        let root = cluster.dir.join(unique(job));
        let mut volumes = BTreeMap::new();
        for volume in spec["volumes"].as_array().unwrap() {
            let name = str_of(volume, "/name");
            let path = root.join(name);
            std::fs::create_dir_all(&path).unwrap();
            if let Some(config_map) = volume.get("configMap") {
                assert_eq!(config_map["name"], "kafka-backup");
                for (file, text) in &cluster.config {
                    std::fs::write(path.join(file), text).unwrap();
                }
            } else {
                assert!(volume.get("emptyDir").is_some(), "{volume}: not emulated");
            }
            volumes.insert(name.to_owned(), path);
        }
        Self {
            cluster,
            spec,
            labels,
            volumes,
        }
    }

    fn init_containers(&self) -> Vec<Value> {
        self.spec["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn container(&self) -> Value {
        let containers = self.spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "one container");
        containers[0].clone()
    }

    /// The command Kubernetes runs for `container`.
    fn command(&self, container: &Value) -> Command {
        let name = str_of(container, "/name");
        assert_eq!(str_of(container, "/image"), IMAGE, "{name}");
        assert!(
            container.get("command").is_none(),
            "{name}: the image's entrypoint"
        );
        for key in ["requests", "limits"] {
            assert!(
                container["resources"][key]["memory"].is_string(),
                "{name}: resources.{key}.memory"
            );
        }
        assert!(
            container["resources"]["requests"]["cpu"].is_string(),
            "{name}"
        );
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );

        // paths under a mount are the volume's folder here
        let mounts: Vec<(String, PathBuf)> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    str_of(m, "/mountPath").to_owned(),
                    self.volumes[str_of(m, "/name")].clone(),
                )
            })
            .collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-backup"));
        command.env_clear();
        for arg in container["args"].as_array().unwrap() {
            let arg = arg.as_str().unwrap();
            assert!(!arg.contains("$("), "{name}: `{arg}`: not emulated");
            let mapped = mounts.iter().find_map(|(mount, dir)| {
                arg.strip_prefix(&format!("{mount}/"))
                    .map(|rest| dir.join(rest).display().to_string())
            });
            command.arg(mapped.unwrap_or_else(|| arg.to_owned()));
        }

        let mut overridden = Vec::new();
        for var in container["env"].as_array().unwrap() {
            let var_name = str_of(var, "/name");
            let value = if let Some(value) = var.get("value") {
                let value = value.as_str().unwrap();
                match self.cluster.overrides.get(var_name) {
                    Some(ours) => {
                        overridden.push(var_name);
                        ours.clone()
                    }
                    None => value.to_owned(),
                }
            } else if let Some(path) = var.pointer("/valueFrom/fieldRef/fieldPath") {
                let path = path.as_str().unwrap();
                let label = path
                    .strip_prefix("metadata.labels['")
                    .and_then(|l| l.strip_suffix("']"))
                    .unwrap_or_else(|| panic!("{name}: fieldRef `{path}`: not emulated"));
                self.labels[label].clone()
            } else if let Some(key) = var.pointer("/valueFrom/secretKeyRef") {
                assert_eq!(key["name"], "kafka-backup-credentials");
                self.cluster.secret[str_of(key, "/key")].clone()
            } else {
                panic!("{name}: {var}: not emulated");
            };
            command.env(var_name, value);
        }
        for from in container["envFrom"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            assert_eq!(from["secretRef"]["name"], "kafka-backup-credentials");
            for (key, value) in &self.cluster.secret {
                command.env(key, value);
            }
        }
        for wanted in self.cluster.overrides.keys() {
            assert!(
                overridden.contains(wanted),
                "{name}: the manifest no longer sets `{wanted}`"
            );
        }
        command.envs(self.cluster.extra.iter().map(|(k, v)| (k, v)));
        // the container's standard input is open only with `stdin: true`
        if container["stdin"] != true {
            command.stdin(Stdio::null());
        }
        command
    }

    /// Runs the init containers in order, then the container with `answer`
    /// on its standard input (`kubectl attach -i`; `None`: nobody attached
    /// and the input closed). Gives each container's name and output; stops
    /// at the first init container that fails, as the kubelet does.
    fn run(&self, answer: Option<&str>) -> Vec<(String, Output)> {
        use std::io::Write;
        let mut outputs = Vec::new();
        for init in self.init_containers() {
            let out = self.command(&init).output().unwrap();
            let failed = !out.status.success();
            outputs.push((str_of(&init, "/name").to_owned(), out));
            if failed {
                return outputs;
            }
        }
        let container = self.container();
        let mut command = self.command(&container);
        // standard input exists only where the manifest opens it
        let attachable = container["stdin"] == true;
        assert!(
            attachable || answer.is_none(),
            "an answer for a container without `stdin: true`"
        );
        if attachable {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut stdin) = child.stdin.take() {
            if let Some(answer) = answer {
                stdin.write_all(answer.as_bytes()).unwrap();
            }
            drop(stdin);
        }
        let out = child.wait_with_output().unwrap();
        outputs.push((str_of(&container, "/name").to_owned(), out));
        outputs
    }

    /// Starts the container (no init containers) and gives the process.
    fn start(&self) -> Child {
        assert!(self.init_containers().is_empty());
        self.command(&self.container())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Every stderr line is a JSON object (the containers run with
/// `--log-format=json`, for the cluster's log collector).
fn assert_json_logs(name: &str, out: &Output) {
    for line in stderr(out).lines() {
        assert!(
            serde_json::from_str::<serde_json::Map<String, Value>>(line).is_ok(),
            "{name}: a log line that is not JSON: {line}"
        );
    }
}

fn all_output(outputs: &[(String, Output)]) -> String {
    for (name, out) in outputs {
        assert_json_logs(name, out);
    }
    outputs
        .iter()
        .map(|(name, out)| format!("[{name}] {:?}\n{}{}", out.status, stdout(out), stderr(out)))
        .collect()
}

/// Scrapes `url` until the run it serves succeeded (it lingers then), and
/// gives that scrape; fails if `run` ends first.
async fn scrape_after_success(url: &str, run: &mut Child) -> String {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = run.try_wait() {
            panic!("the run ended ({status}) before it was scraped after its success");
        }
        if let Ok(response) = reqwest::get(url).await
            && let Ok(text) = response.text().await
            && sample(&text, "kafka_backup_last_success_timestamp_seconds").is_some_and(|t| t > 0.0)
        {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no success scraped at {url}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the sample `name` (with its labels) in an exposition text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l[name.len()..].trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_manifests_back_up_nightly_prune_and_restore_after_review() {
    // the Secret, with this test's values for the manifest's keys
    let secret_manifest = manifest("secret.yaml");
    let keys: Vec<String> = secret_manifest["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let user = "kafka-backup";
    let password = test_secret("sr-password");
    let key = base64_padded(&std::array::from_fn::<u8, 32, _>(|i| (i * 7 + 3) as u8));
    let values = [
        ("SR_USERNAME", user.to_owned()),
        ("SR_PASSWORD", password.clone()),
        ("AWS_ACCESS_KEY_ID", "kafka-backup-test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", test_secret("aws")),
        ("BACKUP_ENCRYPTION_KEY", key.clone()),
    ];
    assert_eq!(
        keys,
        {
            let mut k: Vec<String> = values.iter().map(|(k, _)| (*k).to_owned()).collect();
            k.sort();
            k
        },
        "the Secret's keys"
    );
    let secret: BTreeMap<String, String> = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();

    // the source: a registry that wants the Secret's credentials, a topic
    let basic = format!("{user}:{password}");
    let mut source = Registry::start_with(&["--basic-auth", &basic]);
    source.authorization = Some(format!("Basic {}", base64_padded(basic.as_bytes())));
    let fixture: kafka_backup::model::RegistrySnapshot = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plan/shifted-ids/backup.json"),
        )
        .unwrap(),
    )
    .unwrap();
    seed_from_fixture(&source, &fixture).await;
    let topic = unique("orders-k8s");
    create_topic(&topic, 3, &[]).await;
    let records: Vec<Rec> = (0..300).map(|i| record(i, 3, None)).collect();
    produce(&topic, &records).await;

    // the ConfigMap, its topic selection naming this test's topic
    let config_map = manifest("configmap.yaml");
    let mut config: BTreeMap<String, String> =
        serde_json::from_value(config_map["data"].clone()).unwrap();
    let selection = r#"include: ["orders-*", "payments-*"]"#;
    let backup_yaml = config.get_mut("backup.yaml").unwrap();
    assert_eq!(backup_yaml.matches(selection).count(), 1, "{backup_yaml}");
    *backup_yaml = backup_yaml.replace(selection, &format!("include: [\"{topic}\"]"));

    let (endpoint, bucket) = s3_bucket("kb-k8s").await;
    let storage = format!("s3://{bucket}/production");
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster {
        dir: dir.path().to_owned(),
        secret,
        config,
        overrides: [
            ("KAFKA_BOOTSTRAP", bootstrap()),
            ("SCHEMA_REGISTRY_URL", source.url.clone()),
            ("BACKUP_STORAGE_URL", storage.clone()),
        ]
        .into(),
        extra: vec![
            ("AWS_ENDPOINT", endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ],
    };
    let mut logs = String::new();

    // the nightly backup: the CronJob's Job, named for its scheduled minute
    let cron = manifest("backup-cronjob.yaml");
    assert_eq!(cron["kind"], "CronJob");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let template = &cron["spec"]["jobTemplate"]["spec"]["template"];
    let port = str_of(template, "/metadata/annotations/prometheus.io~1port").to_owned();
    let job = "kafka-backup-nightly-29420370";
    let pod = Pod::new(&cluster, template, job);
    let mut backup = pod.start();
    // scraped while it lingers: the records backed up, the run's success
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let label = format!("kafka_backup_records_total{{topic=\"{topic}\"}}");
    let text = scrape_after_success(&metrics_url, &mut backup).await;
    assert_eq!(sample(&text, &label), Some(300.0), "{text}");
    // the Job ends (a deadline, a drain) during the linger: the run's outcome stands
    let pid = backup.id().to_string();
    terminate(&pid);
    let signalled = Instant::now();
    let out = backup.wait_with_output().unwrap();
    // at the signal, not at the linger's end (60 s)
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "{:?}",
        signalled.elapsed()
    );
    assert!(
        stderr(&out).contains("metrics: terminated (SIGTERM): no more serving"),
        "{}",
        stderr(&out)
    );
    logs.push_str(&all_output(&[("backup".into(), out.clone())]));
    assert_eq!(out.status.code(), Some(0), "{logs}");
    assert!(
        stderr(&out).contains(&format!("backup `{job}` done")),
        "{logs}"
    );
    let described = kafka_backup_with_env(
        &[
            "describe",
            "--path",
            &storage,
            "--backup-id",
            job,
            "--format",
            "json",
        ],
        &[
            ("AWS_ENDPOINT", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "kafka-backup-test"),
            (
                "AWS_SECRET_ACCESS_KEY",
                &cluster.secret["AWS_SECRET_ACCESS_KEY"],
            ),
        ],
    );
    // sealed with the Secret's key: nothing is described without it
    assert_ne!(described.status.code(), Some(0), "{}", stdout(&described));
    assert!(
        stderr(&described).contains("encrypted"),
        "{}",
        stderr(&described)
    );

    // a second night, then retention: both kept (keep_last 14)
    let second = "kafka-backup-nightly-29421810";
    let mut next = Pod::new(&cluster, template, second).start();
    let text = scrape_after_success(&metrics_url, &mut next).await;
    assert_eq!(sample(&text, &label), Some(300.0), "{text}");
    terminate(&next.id().to_string());
    let out = next.wait_with_output().unwrap();
    logs.push_str(&all_output(&[("backup".into(), out.clone())]));
    assert_eq!(out.status.code(), Some(0), "{logs}");
    let prune = manifest("prune-cronjob.yaml");
    let template = &prune["spec"]["jobTemplate"]["spec"]["template"];
    let outputs = Pod::new(&cluster, template, "kafka-backup-prune-29420700").run(None);
    logs.push_str(&all_output(&outputs));
    let (_, out) = outputs.last().unwrap();
    assert_eq!(out.status.code(), Some(0), "{logs}");
    let said = format!("{}{}", stdout(out), stderr(out));
    for id in [job, second] {
        assert!(
            said.lines().any(|l| l.contains(id) && l.contains("keep")),
            "{said}"
        );
    }

    // disaster: the topic is gone; the registry is rebuilt empty
    let admin: rdkafka::admin::AdminClient<_> = client_config().create().unwrap();
    for result in admin
        .delete_topics(&[&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    let mut target = Registry::start_with(&["--basic-auth", &basic]);
    target.authorization = source.authorization.clone();
    cluster
        .overrides
        .insert("SCHEMA_REGISTRY_URL", target.url.clone());
    let restore = manifest("restore-job.yaml");
    let template = &restore["spec"]["template"];
    let mut restore_job = template.clone();
    // the Job names the backup to restore: this test's first
    let set_backup = |spec: &mut Value| {
        for list in ["initContainers", "containers"] {
            for c in spec["spec"][list].as_array_mut().unwrap() {
                for var in c["env"].as_array_mut().unwrap() {
                    if var["name"] == "BACKUP_ID" {
                        var["value"] = Value::from(job);
                    }
                }
            }
        }
    };
    set_backup(&mut restore_job);

    // nobody answers: the plan is printed, nothing is applied
    let outputs = Pod::new(&cluster, &restore_job, "kafka-restore").run(None);
    logs.push_str(&all_output(&outputs));
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["plan", "apply"], "{logs}");
    assert_eq!(outputs[0].1.status.code(), Some(0), "{logs}");
    assert!(stdout(&outputs[0].1).contains("to add"), "{logs}");
    assert_eq!(outputs[1].1.status.code(), Some(1), "{logs}");
    assert!(
        stderr(&outputs[1].1).contains("no answer on standard input"),
        "{logs}"
    );
    // answered otherwise: cancelled
    let outputs = Pod::new(&cluster, &restore_job, "kafka-restore").run(Some("no\n"));
    logs.push_str(&all_output(&outputs));
    assert_eq!(outputs[1].1.status.code(), Some(1), "{logs}");
    assert!(
        stderr(&outputs[1].1).contains("Apply cancelled: nothing was changed."),
        "{logs}"
    );
    let (status, subjects) = target.call(reqwest::Method::GET, "/subjects", None).await;
    assert_eq!((status, subjects), (200, serde_json::json!([])), "{logs}");

    // answered `yes` after the review: applied
    let outputs = Pod::new(&cluster, &restore_job, "kafka-restore").run(Some("yes\n"));
    logs.push_str(&all_output(&outputs));
    for (name, out) in &outputs {
        assert_eq!(out.status.code(), Some(0), "{name}: {logs}");
    }
    // record for record: the fixture's subjects are not this topic's, so
    // `rewrite_fields: auto` leaves the keys and values as they were and
    // rewrites the ID-form schema headers (restore_e2e.rs tests the rest)
    let restored = consume_all(&topic, 3);
    let map = seed_map();
    let mut want: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in &records {
        let headers_only = Rec {
            key: None,
            value: None,
            ..r.clone()
        };
        want.entry(r.partition).or_default().push(Rec {
            key: r.key.clone(),
            value: r.value.clone(),
            ..rewritten(headers_only, &map)
        });
    }
    assert_eq!(restored, want, "{logs}");

    // and it verifies, with the same pod's configuration and environment
    let pod = Pod::new(&cluster, &restore_job, "kafka-restore-verify");
    let mut verify = pod.container();
    verify["args"] = serde_json::json!([
        "--log-format=json",
        "verify",
        "-c",
        "/etc/kafka-backup/restore.yaml"
    ]);
    let out = pod.command(&verify).output().unwrap();
    logs.push_str(&all_output(&[("verify".into(), out.clone())]));
    assert_eq!(out.status.code(), Some(0), "{logs}");

    // no credential or key in any output
    let mut scan = Scanner::new();
    scan.add_basic("SR_PASSWORD", user, &password)
        .add(
            "AWS_SECRET_ACCESS_KEY",
            &cluster.secret["AWS_SECRET_ACCESS_KEY"],
        )
        .add("BACKUP_ENCRYPTION_KEY", &key);
    let hits = scan.scan("the pods' output", logs.as_bytes());
    assert!(hits.is_empty(), "{hits:?}");
}
