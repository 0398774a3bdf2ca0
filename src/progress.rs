//! Progress bars for long work, drawn on stderr only when it is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::backup::topics::Progress;

/// Whether bars should be drawn at all.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// A handle that stops the bar's refresher when finished.
pub struct RecordsBar {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl RecordsBar {
    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// Records done out of `total`, with bytes, rate and ETA, refreshed from `progress`.
pub fn records_bar(total: u64, progress: Arc<Progress>) -> RecordsBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} records {msg} ({per_sec}, ETA {eta})",
        )
        .expect("the template is valid"),
    );
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            shown.set_position(progress.records.load(Ordering::Relaxed));
            let mib = progress.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
            shown.set_message(format!("{mib:.1} MiB"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    RecordsBar { bar, task }
}
