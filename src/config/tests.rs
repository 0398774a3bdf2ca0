//! Every configuration example of the reference page loads (YAML, and the same
//! tree in TOML), and every kind of mistake names its key and line.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "SR_USERNAME" => Some("admin-user".into()),
        "SR_PASSWORD" => Some("pw-not-to-print".into()),
        "SR_CLIENT_ID" => Some("kafka-backup".into()),
        "SR_CLIENT_SECRET" => Some("secret-not-to-print".into()),
        _ => None,
    }
}

fn parse_text(text: &str, format: Format) -> Result<Loaded, ConfigError> {
    parse(text, format, "test.yaml", Box::new(env))
}

fn error(text: &str, format: Format) -> String {
    match parse_text(text, format) {
        Ok(loaded) => panic!("expected an error, got {:#?}", loaded.config),
        Err(e) => e.to_string(),
    }
}

fn resolved(loaded: &Loaded) -> String {
    serde_json::to_string_pretty(&loaded.config.redacted()).unwrap()
}

/// Converts a YAML document into the same tree written as TOML.
fn yaml_to_toml(text: &str) -> String {
    let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
    toml::to_string(&value).unwrap()
}

#[test]
fn every_example_of_the_reference_page_loads() {
    insta::glob!(
        "../../fixtures/config/seed",
        "*.yaml",
        |path: &std::path::Path| {
            let text = std::fs::read_to_string(path).unwrap();
            let loaded = parse_text(&text, Format::Yaml)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let out = resolved(&loaded);
            for secret in ["pw-not-to-print", "secret-not-to-print"] {
                assert!(!out.contains(secret), "{} printed a secret", path.display());
            }
            let warnings = loaded.render_warnings().join("\n");
            insta::assert_snapshot!(format!("{out}\n--- warnings\n{warnings}"));
        }
    );
}

#[test]
fn the_same_tree_in_toml_resolves_identically() {
    insta::glob!(
        "../../fixtures/config/seed",
        "*.yaml",
        |path: &std::path::Path| {
            let text = std::fs::read_to_string(path).unwrap();
            let from_yaml = resolved(&parse_text(&text, Format::Yaml).unwrap());
            let toml_text = yaml_to_toml(&text);
            let from_toml = parse_text(&toml_text, Format::Toml)
                .unwrap_or_else(|e| panic!("{} as TOML:\n{toml_text}\n{e}", path.display()));
            assert_eq!(from_yaml, resolved(&from_toml), "{}", path.display());
        }
    );
}

#[test]
fn kubernetes_resources_are_refused_with_a_hint() {
    insta::glob!(
        "../../fixtures/config/kubernetes",
        "*.yaml",
        |path: &std::path::Path| {
            let text = std::fs::read_to_string(path).unwrap();
            insta::assert_snapshot!(error(&text, Format::Yaml));
        }
    );
}

#[test]
fn empty_files_are_empty_configurations() {
    for text in ["", "# nothing\n", "---\n"] {
        let loaded = parse_text(text, Format::Yaml).unwrap();
        assert!(loaded.config.mode.is_none());
        assert!(!loaded.config.enterprise.schema_registry.enabled);
    }
    assert!(parse_text("", Format::Toml).is_ok());
}

#[test]
fn env_variables_expand_and_missing_ones_name_the_line() {
    let ok = "enterprise:\n  schema_registry:\n    auth:\n      type: basic\n      username: ${SR_USERNAME}\n      password: ${SR_PASSWORD}\n";
    let loaded = parse_text(ok, Format::Yaml).unwrap();
    let auth = loaded.config.enterprise.schema_registry.auth.unwrap();
    assert_eq!(auth.username.unwrap().as_str(), "admin-user");
    assert_eq!(auth.password.unwrap().expose(), "pw-not-to-print");

    let missing = ok.replace("${SR_PASSWORD}", "${SR_PASSWORD_TYPO}");
    insta::assert_snapshot!(error(&missing, Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:6: `enterprise.schema_registry.auth.password`: environment variable `SR_PASSWORD_TYPO` is not set
        hint: export `SR_PASSWORD_TYPO`, or write `${SR_PASSWORD_TYPO:-default}`
    ");
    let toml = "[enterprise.schema_registry.auth]\ntype = \"basic\"\nusername = \"u\"\npassword = \"${NOPE}\"\n";
    insta::assert_snapshot!(error(toml, Format::Toml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:4: `enterprise.schema_registry.auth.password`: environment variable `NOPE` is not set
        hint: export `NOPE`, or write `${NOPE:-default}`
    ");
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    let yaml = "mode: backup\nenterprise:\n  schema_registry:\n    backup:\n      subject: \"*\"\n";
    insta::assert_snapshot!(error(yaml, Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:5: `enterprise.schema_registry.backup.subject`: unknown field `subject`, expected one of subjects, exclude, include_soft_deleted, include_versions, include_references, allow_unknown_ids
    ");
    let toml = "mode = \"backup\"\n\n[enterprise.schema_registry.backup]\nsubject = \"*\"\n";
    insta::assert_snapshot!(error(toml, Format::Toml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:4: `enterprise.schema_registry.backup.subject`: unknown field `subject`, expected one of `subjects`, `exclude`, `include_soft_deleted`, `include_versions`, `include_references`, `allow_unknown_ids`
    ");
}

#[test]
fn wrong_types_and_values_name_the_key_and_line() {
    let cases = [
        "enterprise:\n  schema_registry:\n    enabled: maybe\n",
        "enterprise:\n  schema_registry:\n    restore:\n      strategy: merge\n",
        "enterprise:\n  schema_registry:\n    backup:\n      include_versions: 3\n",
        "enterprise:\n  schema_registry:\n    max_concurrency: -1\n",
        "enterprise:\n  schema_registry:\n    schema_types: [AVRO, XML]\n",
        "enterprise:\n  schema_registry:\n    restore:\n      set_compatibility: SOMETIMES\n",
        "mode: copy\n",
    ];
    let rendered: Vec<String> = cases.iter().map(|c| error(c, Format::Yaml)).collect();
    insta::assert_snapshot!(rendered.join("\n\n"));
}

#[test]
fn bad_globs_name_the_key_and_line() {
    let yaml = "source:\n  topics:\n    include:\n      - \"orders-*\"\n      - \"pay[ments\"\n";
    insta::assert_snapshot!(error(yaml, Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:5: `source.topics.include`: invalid glob `pay[ments`: unclosed character class; missing ']'
    ");
}

#[test]
fn contradictions_are_all_reported_with_lines() {
    let yaml = "\
storage:
  url: s3://bucket/x
  backend: s3
enterprise:
  schema_registry:
    url: http://user:pw@sr:8081
    auth:
      type: basic
      username: admin
      token_url: https://auth/token
    tls:
      client_cert: /c.crt
    restore:
      force_ids: true
      rewrite_ids: true
      id_mapping_file: ids.json
      subject_mapping:
        a: c
        b: c
";
    insta::assert_snapshot!(error(yaml, Format::Yaml));
}

#[test]
fn seed_defaults_follow_the_reference_page() {
    let loaded = parse_text(
        "enterprise:\n  schema_registry:\n    restore:\n      force_ids: true\n",
        Format::Yaml,
    )
    .unwrap();
    let restore = &loaded.config.enterprise.schema_registry.restore;
    assert!(
        !restore.rewrite_ids(),
        "force_ids alone turns rewriting off"
    );
    assert_eq!(restore.strategy, Strategy::Preserve);
    let backup = &loaded.config.enterprise.schema_registry.backup;
    assert!(backup.subjects.iter().any(|g| g.is_match("anything")));
}

#[test]
fn secrets_in_client_properties_are_redacted() {
    let yaml = "source:\n  bootstrap_servers: a:9092,b:9092\n  properties:\n    sasl.password: hunter2\n    security.protocol: SASL_SSL\n";
    let loaded = parse_text(yaml, Format::Yaml).unwrap();
    let out = resolved(&loaded);
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.contains("SASL_SSL"), "{out}");
}

#[test]
fn storage_locations_resolve() {
    let cases = [
        (
            "storage:\n  backend: s3\n  bucket: kafka-backups\n  prefix: production\n",
            "s3://kafka-backups/production",
        ),
        ("storage:\n  url: gs://b/p\n", "gs://b/p"),
        ("storage:\n  backend: azure\n  bucket: c\n", "az://c/"),
        ("storage:\n  backend: memory\n  prefix: x\n", "memory:///x"),
        (
            "storage:\n  path: /srv/backups\n  prefix: prod\n",
            "file:///srv/backups/prod/",
        ),
    ];
    for (yaml, url) in cases {
        let loaded = parse_text(yaml, Format::Yaml).unwrap();
        let location =
            crate::storage::Location::from_config(loaded.config.storage.as_ref()).unwrap();
        assert_eq!(location.url().as_str(), url, "{yaml}");
    }
}

#[test]
fn only_values_of_keys_known_to_be_safe_are_printed() {
    let yaml = "\
source:
  bootstrap_servers: a:9092
  properties:
    security.protocol: SASL_SSL
    sasl.mechanism: OAUTHBEARER
    sasl.oauthbearer.config: clientSecret=S3CR3T-oauthbearer
    sasl.oauthbearer.client.secret: S3CR3T-client-secret
    ssl.key.pem: S3CR3T-inline-key
    some.future.property: S3CR3T-unknown
    linger.ms: \"20\"
storage:
  backend: azure
  bucket: c
  options:
    region: eu-west-1
    aws_session_token: S3CR3T-session
    bearer_token: S3CR3T-bearer
    azure_storage_account_key: S3CR3T-account-key
    access_key: S3CR3T-access-key
    azure_storage_sas_key: S3CR3T-sas-key
    sas_token: S3CR3T-sas-token
    google_service_account_key: S3CR3T-gcp
    proxy_url: http://user:S3CR3T-proxy@proxy:3128
    azure_storage_account_name: acct
";
    let loaded = parse_text(yaml, Format::Yaml).unwrap();
    let out = resolved(&loaded);
    assert!(!out.contains("S3CR3T"), "{out}");
    for shown in ["SASL_SSL", "OAUTHBEARER", "\"20\"", "eu-west-1", "acct"] {
        assert!(out.contains(shown), "`{shown}` is safe to show:\n{out}");
    }
}

#[test]
fn a_bad_secret_value_is_not_echoed_in_the_error() {
    for yaml in [
        "enterprise:\n  schema_registry:\n    url: http://r:8081\n    auth:\n      type: basic\n      username: u\n      password: pw${S3CR3T-oops\n",
        "enterprise:\n  schema_registry:\n    url: http://r:8081\n    auth:\n      type: basic\n      username: u\n      password: pw${S3CR3T oops}\n",
        "source:\n  bootstrap_servers: a:9092\n  properties:\n    sasl.password: x${S3CR3T\n",
    ] {
        let err = match parse_text(yaml, Format::Yaml) {
            Ok(_) => panic!("`{yaml}` parsed"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains("S3CR3T"), "{err}");
        assert!(err.contains("not shown"), "{err}");
    }
}

#[test]
fn the_token_endpoint_keys_are_checked() {
    let yaml = "\
enterprise:
  schema_registry:
    url: https://sr:8443
    auth:
      type: oauth
      token_url: http://idp:8080/token
      client_id: c
      client_secret: ${SR_CLIENT_SECRET}
      token_insecure_skip_verify: true
";
    insta::assert_snapshot!(error(yaml, Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:9: `enterprise.schema_registry.auth.token_insecure_skip_verify`: an `http://` token_url has no certificate to verify
    ");
    let others = yaml
        .replace("http://idp:8080/token", "ftp://idp/token")
        .replace("token_insecure_skip_verify: true", "scope: sr");
    insta::assert_snapshot!(error(&others, Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:6: `enterprise.schema_registry.auth.token_url`: scheme `ftp` is not supported: use `http` or `https`
    ");
    let in_url = yaml.replace("http://idp:8080", "https://c:pw@idp");
    insta::assert_snapshot!(error(&in_url, Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:6: `enterprise.schema_registry.auth.token_url`: credentials in the URL would be printed and logged
        hint: use `client_id` and `client_secret`
    ");
    let basic = "enterprise:\n  schema_registry:\n    auth:\n      type: basic\n      username: u\n      password: p\n      token_insecure_skip_verify: false\n";
    insta::assert_snapshot!(error(basic, Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:7: `enterprise.schema_registry.auth.token_insecure_skip_verify`: `token_insecure_skip_verify` is not used by `type: basic`
    ");
}

#[test]
fn an_unverified_token_endpoint_is_printed_and_warned_about() {
    let yaml = "\
enterprise:
  schema_registry:
    url: https://sr:8443
    tls:
      insecure_skip_verify: true
    auth:
      type: oauth
      token_url: https://idp.internal/token
      client_id: c
      client_secret: ${SR_CLIENT_SECRET}
      token_insecure_skip_verify: true
";
    let loaded = parse_text(yaml, Format::Yaml).unwrap();
    let out = resolved(&loaded);
    assert!(!out.contains("secret-not-to-print"), "{out}");
    assert!(
        out.contains("\"token_insecure_skip_verify\": true"),
        "{out}"
    );
    insta::assert_snapshot!(loaded.render_warnings().join("\n"), @r"
    test.yaml:5: `enterprise.schema_registry.tls.insecure_skip_verify`: TLS certificate verification is turned off
    test.yaml:11: `enterprise.schema_registry.auth.token_insecure_skip_verify`: certificate verification of the token endpoint is turned off: `client_secret` goes to whoever answers at `token_url`
    ");
    let toml = parse_text(&yaml_to_toml(yaml), Format::Toml).unwrap();
    assert_eq!(resolved(&toml), out);
    // left out: `false`, shown for `type: oauth` only
    let default = parse_text(&yaml.replace("true\n", "false\n"), Format::Yaml).unwrap();
    let auth = default.config.enterprise.schema_registry.auth.unwrap();
    assert_eq!(auth.token_insecure_skip_verify, Some(false));
    let cut = yaml.replace("      token_insecure_skip_verify: true\n", "");
    let filled = parse_text(&cut, Format::Yaml).unwrap();
    let auth = filled.config.enterprise.schema_registry.auth.unwrap();
    assert_eq!(auth.token_insecure_skip_verify, Some(false));
    let basic = parse_text(
        "enterprise:\n  schema_registry:\n    auth:\n      type: basic\n      username: u\n      password: p\n",
        Format::Yaml,
    )
    .unwrap();
    let auth = basic.config.enterprise.schema_registry.auth.unwrap();
    assert_eq!(auth.token_insecure_skip_verify, None);
}

#[test]
fn a_secret_of_the_wrong_type_is_not_echoed_in_the_error() {
    // TOML has numbers and booleans, which serde's message would quote
    for toml in [
        "[enterprise.schema_registry.auth]\ntype = \"basic\"\nusername = \"u\"\npassword = 713371337133\n",
        "[enterprise.schema_registry.auth]\ntype = \"bearer\"\ntoken = 7133.7133\n",
        "[source.properties]\n\"sasl.password\" = 713371337133\n",
        "[storage.options]\naws_secret_access_key = 713371337133\n",
    ] {
        let err = error(toml, Format::Toml);
        assert!(!err.contains("7133"), "{err}");
        assert!(err.contains("expected a string, found"), "{err}");
        assert!(err.contains("hint: quote the value"), "{err}");
    }
    // a number in YAML is the string it is written as
    let yaml = "enterprise:\n  schema_registry:\n    auth:\n      type: basic\n      username: u\n      password: 713371337133\n";
    let loaded = parse_text(yaml, Format::Yaml).unwrap();
    let auth = loaded.config.enterprise.schema_registry.auth.unwrap();
    assert_eq!(auth.password.unwrap().expose(), "713371337133");
}

#[test]
fn credentials_in_a_url_are_refused_or_not_printed() {
    // refused where a URL of ours is configured
    for (yaml, key) in [
        (
            "enterprise:\n  schema_registry:\n    url: https://u:S3CR3T-url@r:8081\n",
            "`enterprise.schema_registry.url`",
        ),
        (
            "enterprise:\n  schema_registry:\n    url: https://r:8081\n    auth:\n      type: oauth\n      token_url: https://cid:S3CR3T-token-url@idp/token\n      client_id: cid\n      client_secret: s\n",
            "`enterprise.schema_registry.auth.token_url`",
        ),
        (
            "storage:\n  backend: s3\n  bucket: b\n  endpoint: http://ak:S3CR3T-endpoint@127.0.0.1:9000\n",
            "`storage.endpoint`",
        ),
    ] {
        let err = error(yaml, Format::Yaml);
        assert!(!err.contains("S3CR3T"), "{err}");
        assert!(
            err.contains(&format!(
                "{key}: credentials in the URL would be printed and logged"
            )),
            "{err}"
        );
    }
    // passed on, but not printed, where librdkafka or object_store reads it
    let yaml = "\
source:
  bootstrap_servers: a:9092
  properties:
    sasl.oauthbearer.token.endpoint.url: https://cid:S3CR3T-rdkafka@idp/token
    sasl.oauthbearer.method: oidc
storage:
  backend: s3
  bucket: b
  options:
    aws_endpoint: http://ak:S3CR3T-option@127.0.0.1:9000
    aws_metadata_endpoint: http://169.254.169.254
";
    let out = resolved(&parse_text(yaml, Format::Yaml).unwrap());
    assert!(!out.contains("S3CR3T"), "{out}");
    assert!(out.contains("http://169.254.169.254"), "{out}");
}

/// Every key of the configuration is read by the code that acts on it, not
/// only parsed and echoed by `validate`: each field of a struct of
/// `types.rs` is read (`.field`) somewhere under `src/` outside `config/`, or
/// through an accessor of `types.rs` that is (listed below).
#[test]
fn every_configuration_key_is_read_outside_the_config_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let types = std::fs::read_to_string(root.join("config/types.rs")).unwrap();
    let mut fields = Vec::new();
    let mut current: Option<&str> = None;
    for line in types.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            current = rest.strip_suffix(" {").map(str::trim);
        } else if line == "}" {
            current = None;
        } else if let (Some(s), Some(rest)) = (current, line.strip_prefix("    pub "))
            && let Some((name, _)) = rest.split_once(':')
        {
            fields.push((s, name.to_owned()));
        }
    }
    assert!(fields.len() > 60, "the scan found {} fields", fields.len());
    let mut sources = String::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != root.join("config") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let read = |name: &str| {
        sources.match_indices(&format!(".{name}")).any(|(i, m)| {
            let next = sources[i + m.len()..].chars().next();
            !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    };
    // fields read through an accessor of `types.rs`
    let accessors = [
        ("rewrite_fields", "rewrite_fields_for"),
        ("rewrite_fields_topics", "rewrite_fields_for"),
    ];
    let unread: Vec<String> = fields
        .iter()
        .filter(|(_, f)| {
            let via = accessors.iter().find(|(field, _)| field == f);
            !read(f) && !via.is_some_and(|(_, accessor)| read(accessor))
        })
        .map(|(s, f)| format!("{s}.{f}"))
        .collect();
    assert!(
        unread.is_empty(),
        "configuration keys parsed but read nowhere: {unread:?}"
    );
}

#[test]
fn consumer_group_selection_reads_from_yaml_and_toml_and_bad_keys_are_named() {
    let yaml = "source:\n  consumer_groups:\n    enabled: false\ntarget:\n  bootstrap_servers: [k:9092]\n  consumer_groups:\n    include: [\"billing-*\"]\n    exclude: billing-test\n";
    let toml = "[source.consumer_groups]\nenabled = false\n\n[target]\nbootstrap_servers = [\"k:9092\"]\n\n[target.consumer_groups]\ninclude = [\"billing-*\"]\nexclude = \"billing-test\"\n";
    for (text, format) in [(yaml, Format::Yaml), (toml, Format::Toml)] {
        let loaded = parse_text(text, format).unwrap();
        let source = loaded.config.source.as_ref().unwrap();
        assert!(!source.consumer_groups.enabled);
        assert!(
            !source.consumer_groups.is_selected("anything"),
            "off takes no group"
        );
        let target = &loaded.config.target.as_ref().unwrap().consumer_groups;
        assert!(target.enabled, "on unless said");
        assert!(target.is_selected("billing-eu"));
        assert!(!target.is_selected("billing-test"));
        assert!(!target.is_selected("audit"));
    }
    // the default: on, every group
    let loaded = parse_text("source:\n  bootstrap_servers: [k:9092]\n", Format::Yaml).unwrap();
    assert!(
        loaded
            .config
            .source
            .unwrap()
            .consumer_groups
            .is_selected("any")
    );
    insta::assert_snapshot!(error("target:\n  consumer_groups:\n    enable: true\n", Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:3: `target.consumer_groups.enable`: unknown field `enable`, expected one of enabled, include, exclude
    ");
    insta::assert_snapshot!(error("target:\n  consumer_groups:\n    include: [\"a[\"]\n", Format::Yaml), @r"
    invalid configuration `test.yaml` (1 problem)
      test.yaml:3: `target.consumer_groups.include`: invalid glob `a[`: unclosed character class; missing ']'
    ");
}
