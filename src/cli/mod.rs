//! The command line: clap definitions, one file per command. `anyhow` is used
//! here only; the library returns typed errors.

/// `eprintln!` for what the commands tell the reader of stderr, which
/// `--log-format json` turns into JSON lines: see [`say`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say(&format!($($arg)*))
    };
}

mod apply;
mod backup;
mod describe;
mod list;
mod offsets;
mod plan;
mod prune;
mod put_back;
mod validate;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Back up a Kafka cluster together with its Confluent Schema Registry, and
/// restore both so that every restored record still decodes.
#[derive(Debug, Parser)]
#[command(name = "kafka-backup", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines on stderr as text (colours on a terminal only) or as JSON,
    /// one object per line, for log collectors (a failure's error too).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve Prometheus metrics on this `host:port` while `backup` or
    /// `apply` runs (`metrics.addr` in the configuration).
    #[arg(long, value_name = "ADDR", global = true)]
    pub metrics_addr: Option<String>,
    /// Keep serving the metrics this many seconds after the run ends, so
    /// that a scheduled job's last values are scraped.
    #[arg(long, value_name = "SECS", global = true)]
    pub metrics_linger: Option<u64>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up topics and registry state into a new backup in storage.
    Backup(BackupArgs),
    /// Show what a backup holds: topics, partitions, record counts, schemas.
    Describe(DescribeArgs),
    /// List the backups under a storage location.
    List(ListArgs),
    /// Delete the backups retention rules do not keep (never one a kept
    /// backup continues, nor one a run holds); shows what and why first.
    Prune(PruneArgs),
    /// Compare a backup with the live target registry and write a plan.
    Plan(PlanArgs),
    /// Run a plan: registry steps first, then the Kafka data with IDs rewritten.
    ///
    /// `kafka-backup restore -c FILE` is the same command, as the reference
    /// product names it: without a plan file it plans, shows the plan, asks,
    /// and applies.
    #[command(visible_alias = "restore")]
    Apply(ApplyArgs),
    /// Check a restored target (registry and topics) against its backup.
    Verify(VerifyArgs),
    /// Show where the restored records landed: backup offsets to target
    /// offsets, per partition (for consumers that keep offsets outside Kafka).
    Offsets(OffsetsArgs),
    /// Put back the temporary modes and compatibility levels an interrupted
    /// `apply` left in the target registry, and change nothing else.
    PutBack(PutBackArgs),
    /// Check a configuration file and print it resolved, secrets redacted.
    Validate(ValidateArgs),
    /// Render a saved plan file.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (YAML, or TOML when it ends in `.toml`).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Configuration file (YAML, or TOML when it ends in `.toml`).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Close a segment once it holds this many bytes of keys, values and headers.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub segment_bytes: u64,
    /// zstd level of the segments (1 fastest .. 19 smallest). Level 1 costs about half
    /// the CPU of level 3 on typical records and compresses them as well (see scripts/bench-backup).
    #[arg(long, value_name = "LEVEL", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// Partitions consumed at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub partition_concurrency: usize,
    /// Succeed when the topic selection matches no topic (a backup of the
    /// registry alone, or of a cluster with no topic yet). Without it such a
    /// backup fails: a missing DESCRIBE permission hides topics the same way.
    #[arg(long)]
    pub allow_empty: bool,
    /// Take the backup ID's lease even though another run holds it: only when
    /// that run is gone for good (its machine lost). A lease of a process of
    /// this host that no longer exists, or one that ran out, is taken anyway.
    #[arg(long)]
    pub force_unlock: bool,
    /// Back up together with other processes started with the same
    /// configuration (on this host or others): they join this Kafka consumer
    /// group (`kafka-backup.<backup_id>` when no value is given), which
    /// shares the partitions out; one of them publishes the manifest once
    /// every partition is stored. See docs/scale.md.
    #[arg(long, value_name = "GROUP_ID", num_args = 0..=1, default_missing_value = "")]
    pub group: Option<String>,
    /// With `--group`: how long a worker with nothing left to do waits while
    /// no partition of the backup advances, before it fails (default: 600
    /// plus `source.open_transaction_wait_secs`).
    #[arg(long, value_name = "SECS", requires = "group")]
    pub group_wait: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// Storage location holding backups: a path, file://, s3://, gs://, az:// or memory:// URL.
    #[arg(long, value_name = "URL")]
    pub path: String,
    /// The backup to describe.
    #[arg(long, value_name = "ID")]
    pub backup_id: String,
    /// Output for people (text) or machines (json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Also read every file of the backup and check its size and SHA-256.
    #[arg(long)]
    pub verify_files: bool,
    /// The key of an encrypted backup: a file holding it (base64 or hex),
    /// as `storage.encryption.key_file` would.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Storage location holding backups: a path, file://, s3://, gs://, az:// or memory:// URL.
    #[arg(long, value_name = "URL")]
    pub path: String,
    /// Output for people (text) or machines (json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Configuration file: its `storage` and `retention` (flags override them).
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "path",
        conflicts_with = "path"
    )]
    pub config: Option<PathBuf>,
    /// Storage location holding backups, instead of a configuration file.
    #[arg(long, value_name = "URL")]
    pub path: Option<String>,
    /// Keep the newest N backups of each series (source cluster and topic selection).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep every backup finished within this long (`30d`, `36h`, `2w`).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Show what would be deleted and why, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Output for people (text) or machines (json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Configuration file naming the backup, the target registry and restore options.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where to write the plan file.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How to print the plan.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Exit 0 when there is nothing to change, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Ask the target registry which registrations its final compatibility levels would refuse.
    #[arg(long)]
    pub check_compatibility: bool,
    /// The `--to-timestamp` the restore will run with (RFC 3339 or
    /// milliseconds since the epoch): the consumer groups' offsets are
    /// planned for it, and `apply` must use the same.
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
    pub to_timestamp: Option<i64>,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The reviewed plan file to run. Without it, `apply -c` plans, shows the
    /// plan and asks before applying it.
    #[arg(value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Configuration file naming the target registry and cluster and the
    /// backup's storage (the plan file holds no URL and no credential).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Restore the registry alone, no topic data.
    #[arg(long)]
    pub registry_only: bool,
    /// Run even though the target moved since the plan was made.
    #[arg(long)]
    pub force: bool,
    /// Take the target registry's and cluster's leases even though another
    /// apply holds them: only when that run is gone for good (its machine
    /// lost). A lease of a process of this host that no longer exists, or one
    /// that ran out, is taken anyway.
    #[arg(long)]
    pub force_unlock: bool,
    /// Apply without asking (`apply -c` shows the plan and waits for `yes` otherwise).
    #[arg(long)]
    pub auto_approve: bool,
    /// With a plan file: show it and wait for `yes` on standard input before
    /// changing anything (a saved plan is applied without asking otherwise),
    /// for a reviewer who answers a running process (`kubectl attach -i`).
    #[arg(long, requires = "plan", conflicts_with_all = ["auto_approve", "dry_run"])]
    pub ask: bool,
    /// Print every request that would be sent and the topics that would be
    /// restored, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Point in time: leave out records whose timestamp is after this
    /// (RFC 3339, e.g. 2026-11-25T10:00:00Z, or milliseconds since the epoch).
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
    pub to_timestamp: Option<i64>,
    /// Partitions restored at once (one idempotent producer each).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub partition_concurrency: usize,
    /// Registry steps run at once where the plan's graph allows (1: plan order,
    /// so that the IDs the target assigns come out the same on every run).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub registry_concurrency: usize,
    /// Restore into partitions that already hold records, after them
    /// (refused otherwise).
    #[arg(long)]
    pub append: bool,
    /// Restore only the partitions of shard I of N (0-based), so that N
    /// processes restore one backup at once: `I/N`, or `N` alone (or `/N`)
    /// to take I from `JOB_COMPLETION_INDEX`, the pod index of a Kubernetes
    /// Indexed Job. Shard 0 runs the registry steps; the others wait for its
    /// journal to say they are done, so every shard needs the same plan file
    /// (unless the registry is not restored). The shard that finishes last
    /// sets the consumer groups' offsets.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// How long a shard other than 0 waits for shard 0's registry steps, in
    /// seconds, before it gives up.
    #[arg(long, value_name = "SECS", default_value_t = 3600, requires = "shard")]
    pub shard_wait: u64,
}

#[derive(Debug, clap::Args)]
pub struct PutBackArgs {
    /// The configuration the interrupted `apply` ran with (its backup's
    /// storage, where the journals are, and the target registry).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Take the target registry's lease even though another apply holds it:
    /// only when that run is gone for good (its machine lost).
    #[arg(long)]
    pub force_unlock: bool,
    /// Say what would be put back, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The restore's configuration file: backup, target registry and cluster,
    /// `topic_mapping` and restore options, as `apply` used them.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Output for people (a table) or machines (json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// The `--to-timestamp` the restore ran with: records after it are not
    /// expected in the target (RFC 3339 or milliseconds since the epoch).
    /// Default: the one the restore's journal records.
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
    pub to_timestamp: Option<i64>,
    /// Partitions compared at once (one consumer each).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub partition_concurrency: usize,
}

#[derive(Debug, clap::Args)]
pub struct OffsetsArgs {
    /// The restore's configuration file: the backup's storage and the
    /// target cluster (whose cluster ID names the offset map).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only this target topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Output for people (text) or machines (json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// `--to-timestamp`: RFC 3339 or milliseconds since the epoch.
fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!("`{s}` is neither RFC 3339 (2026-11-25T10:00:00Z) nor milliseconds: {e}")
        })
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Configuration file (YAML, or TOML when it ends in `.toml`).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// How to print the resolved configuration.
    #[arg(long, value_enum, default_value_t = ConfigFormat::Yaml)]
    pub format: ConfigFormat,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The plan file.
    #[arg(value_name = "FILE")]
    pub plan: PathBuf,
    /// How to render it.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    Yaml,
    Json,
}

/// Runs the parsed command line and gives the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    // from the first moment: a container's first process has no default
    // action for SIGTERM (`crate::signals`)
    if let Err(e) = crate::signals::install() {
        say!("warning: not listening for SIGTERM and SIGINT: {e}");
    }
    let serves = matches!(cli.command, Command::Backup(_) | Command::Apply(_));
    if serves
        && let Some(addr) = &cli.metrics_addr
        && let Err(e) = start_metrics(addr, cli.metrics_linger)
    {
        report(&e);
        return ExitCode::FAILURE;
    }
    LINGER_FLAG.store(
        cli.metrics_linger.unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    let code = run_command(cli);
    if serves {
        finish_metrics(code == ExitCode::SUCCESS);
    }
    code
}

/// Where the metrics are served, and how long after the run.
static METRICS: std::sync::OnceLock<(std::net::SocketAddr, u64)> = std::sync::OnceLock::new();
/// `--metrics-linger` (`u64::MAX`: not given), which the configuration's
/// `metrics.linger_secs` does not override.
static LINGER_FLAG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Serves the metrics on `addr` (once per process: the flag first, then
/// the configuration) and says where on stderr.
fn start_metrics(addr: &str, linger: Option<u64>) -> anyhow::Result<()> {
    if METRICS.get().is_some() {
        return Ok(());
    }
    let bound = crate::metrics::serve(addr)
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on `{addr}`: {e}"))?;
    say!("metrics: serving on http://{bound}/metrics");
    let _ = METRICS.set((bound, linger.unwrap_or(0)));
    Ok(())
}

/// At the end of a run: the last success time, then the linger.
fn finish_metrics(succeeded: bool) {
    let Some((bound, linger)) = METRICS.get() else {
        return;
    };
    if succeeded {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        crate::metrics::global().last_success.set(now);
    }
    if *linger > 0 {
        say!("metrics: serving on http://{bound}/metrics for {linger} s more");
        linger_until_signal(std::time::Duration::from_secs(*linger));
    }
}

/// Sleeps `linger`, or until SIGTERM or SIGINT ends it early (or came during
/// the run): a scheduler that stops the pod during the linger (a Job's
/// deadline, a drained node) gets the run's own exit code (before, the signal
/// killed a backup that had finished, and its Job counted it as failed).
fn linger_until_signal(linger: std::time::Duration) {
    let _handling = crate::signals::handling();
    if let Some((name, _)) = crate::signals::received() {
        say!("metrics: {name} during the run: no lingering; the run's outcome stands");
        return;
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        std::thread::sleep(linger);
        return;
    };
    runtime.block_on(async {
        tokio::select! {
            () = tokio::time::sleep(linger) => {}
            (name, _) = crate::signals::requested() => {
                say!("metrics: {name}: no more serving; the run's outcome stands");
            }
        }
    });
}

fn run_command(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Backup(args) => backup::run(&args).inspect(|_| crate::heap::report("backup")),
        Command::Describe(args) => describe::run(&args),
        Command::List(args) => list::run(&args),
        Command::Prune(args) => prune::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Apply(args) => apply::run(&args).inspect(|_| crate::heap::report("apply")),
        Command::Verify(args) => verify::run(&args),
        Command::Offsets(args) => offsets::run(&args),
        Command::PutBack(args) => put_back::run(&args),
        Command::Show(args) => plan::show(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error and its causes to stderr, `error: ...` then `caused by: ...`.
pub fn report(err: &anyhow::Error) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
        tracing::error!(causes = ?causes, "{err}");
        return;
    }
    say!("error: {err}");
    for cause in err.chain().skip(1) {
        say!("  caused by: {cause}");
    }
}

/// Writes `text` for whoever reads stderr: as it is, or with `--log-format
/// json` as one JSON object shaped like the log lines (`timestamp`, `level`,
/// `fields.message`, `target`), its level from an `error: ` or `warning: `
/// prefix (then dropped), else `INFO`; so a log collector reads every line
/// of stderr as JSON (stdout stays the command's output: plans, tables).
pub(crate) fn say(text: &str) {
    if !JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{text}");
        return;
    }
    let (level, message) = if let Some(m) = text.strip_prefix("error: ") {
        ("ERROR", m)
    } else if let Some(m) = text.strip_prefix("warning: ") {
        ("WARN", m)
    } else {
        ("INFO", text)
    };
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": level,
        "fields": {"message": message},
        "target": "kafka_backup::cli",
    });
    eprintln!("{line}");
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Set by `--log-format json`: a failure is reported as a JSON log line.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets up logging on stderr for `cli`: the level from `-v` (or
/// `KAFKA_BACKUP_LOG`), text with colours only on a terminal (a CI log or a
/// pod's log holds no escape codes), or JSON lines.
pub fn init_logging(cli: &Cli) {
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAFKA_BACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            builder.json().with_ansi(false).init()
        }
    }
}

/// Asks `question` and waits for `yes` on standard input; `what` (`Apply`,
/// `Prune`) names the command in the answer to anything else.
fn confirmed(question: &str, what: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    print!("\n{question} Only `yes` is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() && answer.is_empty() {
        say!(
            "error: no answer on standard input\nhint: pass `--auto-approve` to {} without asking",
            what.to_lowercase()
        );
    } else {
        say!("{what} cancelled: nothing was changed.");
    }
    Ok(false)
}

/// Reads the configuration file for `command`, which does `job`, and prints
/// its warnings. A file whose top-level `mode:` names the other job is
/// refused: it was written for another command.
fn load_config(
    path: &Path,
    command: &str,
    job: crate::config::Mode,
) -> anyhow::Result<crate::config::Loaded> {
    let loaded = crate::config::load(path)?;
    if let Some(mode) = loaded.config.mode
        && mode != job
    {
        let name = |m: crate::config::Mode| match m {
            crate::config::Mode::Backup => "backup",
            crate::config::Mode::Restore => "restore",
        };
        anyhow::bail!(
            "`{}` says `mode: {}`, but `kafka-backup {command}` is a {} command\nhint: give `{command}` the {} configuration, or change or remove `mode:` in `{}`",
            path.display(),
            name(mode),
            name(job),
            name(job),
            path.display()
        );
    }
    if (command == "backup" || command == "apply")
        && let Some(m) = &loaded.config.metrics
        && let Some(addr) = &m.addr
    {
        let flag = LINGER_FLAG.load(std::sync::atomic::Ordering::Relaxed);
        let linger = if flag == u64::MAX {
            m.linger_secs
        } else {
            Some(flag)
        };
        start_metrics(addr.as_str(), linger)?;
    }
    if job == crate::config::Mode::Restore && loaded.config.incremental_from.is_some() {
        anyhow::bail!(
            "`{}` sets `incremental_from`, which only `backup` reads: `{command}` would ignore it\nhint: a restore reads an incremental backup's whole chain from `backup_id` by itself; remove `incremental_from` from this file",
            path.display()
        );
    }
    for warning in loaded.render_warnings() {
        say!("warning: {warning}");
    }
    Ok(loaded)
}

/// The configuration's `backup_id`; `command` needs it for `why`.
fn backup_id(cfg: &crate::config::Config, command: &str, why: &str) -> anyhow::Result<String> {
    Ok(cfg
        .backup_id
        .as_ref()
        .ok_or_else(|| {
            anyhow::anyhow!("the configuration has no `backup_id`, which `{command}` needs ({why})")
        })?
        .as_str()
        .to_owned())
}
