//! `kafka-backup validate -c FILE`: check a configuration file and print it
//! resolved, secrets redacted. Exit 0 when valid, 1 when not.

use std::process::ExitCode;

use anyhow::Context;

use super::{ConfigFormat, ValidateArgs};
use crate::config;

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(&args.config) {
        Ok(loaded) => loaded,
        Err(err) => {
            say!("error: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in loaded.render_warnings() {
        say!("warning: {}", warning.replace('\n', "\n  "));
    }
    let resolved = loaded.config.redacted();
    let text = match args.format {
        ConfigFormat::Json => serde_json::to_string_pretty(&resolved)? + "\n",
        ConfigFormat::Yaml => {
            serde_saphyr::to_string(&resolved).context("printing the configuration")?
        }
    };
    print!("{text}");
    say!("configuration `{}` is valid", loaded.file);
    Ok(ExitCode::SUCCESS)
}
