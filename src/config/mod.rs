//! The configuration file: the YAML of the reference page
//! (`schema-registry-integration.md`), or the same tree in TOML.
//!
//! Parsing happens in two passes over the same text: a typed pass (serde) whose
//! errors carry their own position, and a [`SourceMap`] pass that gives every
//! key its line, so that the checks made after parsing (contradictions, values
//! a command will need) name the line too.

mod source_map;
mod types;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};

pub use source_map::SourceMap;
pub use types::*;
pub use values::{Glob, OneOrMany, REDACTED, Secret, Text, expand};

/// The two syntaxes a configuration file may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    /// `.toml` is TOML; everything else (`.yaml`, `.yml`, no extension) is YAML.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Yaml,
        }
    }
}

/// One thing wrong (or worth a warning) in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the key, when the file has it.
    pub line: Option<usize>,
    /// Dotted path of the key (`enterprise.schema_registry.url`).
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            line: None,
            key: Some(key.to_owned()),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Writes the problem as `line N: `key`: message`, plus the hint line.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        match self.line {
            Some(line) => out.push_str(&format!("{file}:{line}: ")),
            None => out.push_str(&format!("{file}: ")),
        }
        if let Some(key) = &self.key {
            out.push_str(&format!("`{key}`: "));
        }
        // a message may carry its own hint after a newline (see `values::expand`)
        // (serde-saphyr hands custom messages back with the newline escaped)
        let full = self.message.replace("\\nhint: ", "\nhint: ");
        let (message, inline_hint) = match full.split_once("\nhint: ") {
            Some((m, h)) => (m, Some(h)),
            None => (full.as_str(), None),
        };
        out.push_str(message);
        if let Some(hint) = self.hint.as_deref().or(inline_hint) {
            out.push_str(&format!("\n  hint: {hint}"));
        }
        out
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = format!(
        "invalid configuration `{file}` ({} problem{})",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.render(file).replace('\n', "\n  "));
    }
    out
}

/// A parsed and checked configuration, with what was found worth a warning.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: String,
    pub warnings: Vec<Problem>,
}

impl Loaded {
    pub fn render_warnings(&self) -> Vec<String> {
        self.warnings.iter().map(|w| w.render(&self.file)).collect()
    }
}

/// Answers `${VAR}` look-ups while a file is parsed.
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// Reads, parses and checks a configuration file, taking `${VAR}` from the
/// process environment.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(
        &text,
        Format::from_path(path),
        &path.display().to_string(),
        Box::new(|name| std::env::var(name).ok()),
    )
}

/// Parses and checks configuration text; `env` answers `${VAR}` look-ups.
pub fn parse(
    text: &str,
    format: Format,
    file: &str,
    env: EnvLookup,
) -> Result<Loaded, ConfigError> {
    let source = match format {
        Format::Yaml => SourceMap::from_yaml(text),
        Format::Toml => SourceMap::from_toml(text),
    };
    let invalid = |problems| ConfigError::Invalid {
        file: file.to_owned(),
        problems,
    };
    let parsed = values::with_env(env, || parse_typed(text, format, &source));
    let mut config = parsed.map_err(|p| invalid(vec![p]))?;
    let mut findings = types::check(&config);
    for f in &mut findings.errors {
        locate(f, &source);
    }
    for f in &mut findings.warnings {
        locate(f, &source);
    }
    // in file order, so that a reader can walk down the file
    findings
        .errors
        .sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    findings
        .warnings
        .sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    if !findings.errors.is_empty() {
        return Err(invalid(findings.errors));
    }
    config.fill_defaults();
    Ok(Loaded {
        config,
        file: file.to_owned(),
        warnings: findings.warnings,
    })
}

fn locate(problem: &mut Problem, source: &SourceMap) {
    if problem.line.is_none()
        && let Some(key) = &problem.key
    {
        let path: Vec<&str> = key.split('.').collect();
        problem.line = source.line_of(&path);
    }
}

fn parse_typed(text: &str, format: Format, source: &SourceMap) -> Result<Config, Problem> {
    // an empty document is an empty configuration, in both syntaxes
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Ok(Config::default());
    }
    let (line, message) = match format {
        Format::Yaml => match serde_saphyr::from_str::<Config>(text) {
            Ok(config) => return Ok(config),
            Err(e) => {
                let line = e
                    .location()
                    .and_then(|l| usize::try_from(l.line()).ok())
                    .filter(|l| *l > 0);
                (line, strip_position(&e.without_snippet().to_string()))
            }
        },
        Format::Toml => match toml::from_str::<Config>(text) {
            Ok(config) => return Ok(config),
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                (line, e.message().trim().to_owned())
            }
        },
    };
    let key = line.and_then(|l| source.key_at_line(l));
    // a Kubernetes resource pasted as a configuration file
    let hint = (key.as_deref() == Some("apiVersion") || key.as_deref() == Some("kind")).then(|| {
        "this looks like a Kubernetes resource; kafka-backup reads the configuration tree itself (`mode`, `source`, `storage`, `enterprise`), and runs on Kubernetes as a CronJob or Job with that file in a ConfigMap, without an operator: see docs/kubernetes.md".to_owned()
    });
    Err(Problem {
        line,
        key,
        message,
        hint,
    })
}

/// serde-saphyr prefixes messages with `error: line L column C: `; the line is
/// reported separately, so keep only the message.
fn strip_position(message: &str) -> String {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    // and sometimes suffixes them with ` at line L, column C`
    let message = match message.rfind(" at line ") {
        Some(idx) if message[idx..].contains(", column ") => &message[..idx],
        _ => message,
    };
    if let Some(rest) = message.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return rest[idx + 2..].trim().to_owned();
    }
    message.trim().to_owned()
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "yaml",
            Format::Toml => "toml",
        })
    }
}

#[cfg(test)]
mod tests;
